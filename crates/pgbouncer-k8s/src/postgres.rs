//! What the charm asks of PostgreSQL, behind a trait so that every flow can be
//! tested in memory. [`RealPostgres`] talks to a server through
//! `postgres_admin::Admin`; [`FakePostgres`] keeps the same state in maps.

use postgres_admin::admin::{Admin, ConnectInfo};
use postgres_admin::names::{DatabaseName, ExtraRoles, RoleName};
use std::collections::{BTreeMap, BTreeSet};

/// A PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL: {0}")]
pub struct PgError(pub String);

/// The backend's connection details, from the `backend-database` relation.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendCredentials {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BackendCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendCredentials")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The administration the charm does on the backend, as its superuser.
pub trait Postgres {
    /// `SELECT version()`'s number, e.g. `15.18`.
    fn server_version(&mut self) -> Result<String, PgError>;
    /// The names of the non-template databases, sorted.
    fn databases(&mut self) -> Result<Vec<String>, PgError>;
    /// Creates the database if it is missing; returns whether it did.
    fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool, PgError>;
    /// Creates the login role (or updates its password and roles).
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError>;
    /// Lets the user use the database.
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError>;
    /// Drops the role, keeping databases and data; returns whether it existed.
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError>;
    /// Installs PgBouncer's auth function in a database.
    fn install_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<(), PgError>;
    /// Removes it; returns whether there was one.
    fn remove_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<bool, PgError>;
}

/// Opens a session with the backend.
pub trait Connector {
    fn connect(&self, creds: &BackendCredentials) -> Result<Box<dyn Postgres>, PgError>;
}

/// The real server.
pub struct RealPostgres(Admin);

/// Connects to real servers, in the `pgbouncer` database (the one the backend
/// relation asks for).
pub struct RealConnector;

impl Connector for RealConnector {
    fn connect(&self, creds: &BackendCredentials) -> Result<Box<dyn Postgres>, PgError> {
        let info = ConnectInfo {
            host: creds.host.clone(),
            port: creds.port,
            user: creds.username.clone(),
            password: creds.password.clone(),
            dbname: "pgbouncer".into(),
            connect_timeout: std::time::Duration::from_secs(5),
        };
        Ok(Box::new(RealPostgres(Admin::connect(&info).map_err(err)?)))
    }
}

fn err(e: impl std::fmt::Display) -> PgError {
    PgError(e.to_string())
}

impl Postgres for RealPostgres {
    fn server_version(&mut self) -> Result<String, PgError> {
        self.0.server_version().map_err(err)
    }
    fn databases(&mut self) -> Result<Vec<String>, PgError> {
        self.0.databases().map_err(err)
    }
    fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool, PgError> {
        self.0.create_database(db, owner).map_err(err)
    }
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError> {
        self.0.create_user(user, password, roles).map_err(err)
    }
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError> {
        self.0.grant_database(db, user).map_err(err)
    }
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError> {
        self.0.drop_user(user).map_err(err)
    }
    fn install_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<(), PgError> {
        self.0.install_auth_function(db, auth_user).map_err(err)
    }
    fn remove_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<bool, PgError> {
        self.0.remove_auth_function(db, auth_user).map_err(err)
    }
}

/// An in-memory backend for flow tests: what a server would hold after the
/// charm's calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeServer {
    pub version: String,
    pub databases: BTreeSet<String>,
    /// User to (password, roles as given).
    pub users: BTreeMap<String, (String, String)>,
    /// (database, user) grants.
    pub grants: BTreeSet<(String, String)>,
    /// (database, auth user) auth functions.
    pub auth_functions: BTreeSet<(String, String)>,
    /// When set, every call fails with this message (a backend that is down).
    pub down: Option<String>,
    /// Sessions opened so far.
    pub connections: u32,
}

/// A connector over a shared [`FakeServer`].
#[derive(Clone, Default)]
pub struct FakeConnector(pub std::rc::Rc<std::cell::RefCell<FakeServer>>);

impl FakeConnector {
    /// A server that is up, with the `pgbouncer` and `postgres` databases.
    pub fn up() -> FakeConnector {
        let server = FakeServer {
            version: "15.18".into(),
            databases: ["pgbouncer", "postgres"].map(String::from).into(),
            ..FakeServer::default()
        };
        FakeConnector(std::rc::Rc::new(std::cell::RefCell::new(server)))
    }

    /// A copy of the server's state.
    pub fn server(&self) -> FakeServer {
        self.0.borrow().clone()
    }
}

struct FakeSession(std::rc::Rc<std::cell::RefCell<FakeServer>>);

impl Connector for FakeConnector {
    fn connect(&self, _: &BackendCredentials) -> Result<Box<dyn Postgres>, PgError> {
        self.0.borrow_mut().connections += 1;
        if let Some(why) = &self.0.borrow().down {
            return Err(PgError(why.clone()));
        }
        Ok(Box::new(FakeSession(self.0.clone())))
    }
}

impl FakeSession {
    fn with<T>(&self, f: impl FnOnce(&mut FakeServer) -> T) -> Result<T, PgError> {
        let mut s = self.0.borrow_mut();
        if let Some(why) = &s.down {
            return Err(PgError(why.clone()));
        }
        Ok(f(&mut s))
    }
}

impl Postgres for FakeSession {
    fn server_version(&mut self) -> Result<String, PgError> {
        self.with(|s| s.version.clone())
    }
    fn databases(&mut self) -> Result<Vec<String>, PgError> {
        self.with(|s| s.databases.iter().cloned().collect())
    }
    fn create_database(&mut self, db: &DatabaseName, _: &RoleName) -> Result<bool, PgError> {
        self.with(|s| s.databases.insert(db.to_string()))
    }
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError> {
        self.with(|s| {
            s.users.insert(
                user.to_string(),
                (password.to_string(), format!("{roles:?}")),
            );
        })
    }
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError> {
        self.with(|s| {
            s.grants.insert((db.to_string(), user.to_string()));
        })
    }
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError> {
        self.with(|s| {
            s.grants.retain(|(_, u)| u != user.as_str());
            s.users.remove(user.as_str()).is_some()
        })
    }
    fn install_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<(), PgError> {
        self.with(|s| {
            s.auth_functions
                .insert((db.to_string(), auth_user.to_string()));
        })
    }
    fn remove_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<bool, PgError> {
        self.with(|s| {
            s.auth_functions
                .remove(&(db.to_string(), auth_user.to_string()))
        })
    }
}
