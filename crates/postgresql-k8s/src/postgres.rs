//! What the charm asks of PostgreSQL, behind a trait so that every flow can be
//! tested in memory. [`RealConnector`] talks to the primary through
//! `postgres_admin::Admin`; [`FakeConnector`] keeps the same state in maps.

use postgres_admin::admin::{Admin, ConnectInfo};
use postgres_admin::names::{DatabaseName, ExtraRoles, RoleName};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// A PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL: {0}")]
pub struct PgError(pub String);

/// Where the charm's superuser logs in: the primary's `host:port` and the
/// `operator` password. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub password: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({}:{})", self.host, self.port)
    }
}

/// The administration the charm does, as its superuser.
pub trait Postgres {
    /// The server's version number, e.g. `15.18`.
    fn server_version(&mut self) -> Result<String, PgError>;
    /// Creates or updates a login role with the client's roles.
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError>;
    /// Creates the database if missing; returns whether it did.
    fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool, PgError>;
    /// Lets the user use the database.
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError>;
    /// Drops the role, keeping databases and data; returns whether it existed.
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError>;
    /// Changes an existing role's password only.
    fn set_password(&mut self, user: &RoleName, password: &str) -> Result<(), PgError>;
    /// Creates the `admin` group unless it exists.
    fn create_admin_group(&mut self) -> Result<bool, PgError>;
}

/// Opens a session on the primary.
pub trait Connector {
    fn connect(&self, target: &Target) -> Result<Box<dyn Postgres>, PgError>;
}

/// Connects to the real primary, database `postgres`, as `operator`.
pub struct RealConnector;

struct RealPostgres(Admin);

fn err(e: impl std::fmt::Display) -> PgError {
    PgError(e.to_string())
}

impl Connector for RealConnector {
    fn connect(&self, target: &Target) -> Result<Box<dyn Postgres>, PgError> {
        let info = ConnectInfo {
            host: target.host.clone(),
            port: target.port,
            user: crate::state::OPERATOR.into(),
            password: target.password.clone(),
            dbname: "postgres".into(),
            connect_timeout: Duration::from_secs(5),
        };
        Ok(Box::new(RealPostgres(Admin::connect(&info).map_err(err)?)))
    }
}

impl Postgres for RealPostgres {
    fn server_version(&mut self) -> Result<String, PgError> {
        self.0.server_version().map_err(err)
    }
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError> {
        self.0.create_user(user, password, roles).map_err(err)
    }
    fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool, PgError> {
        self.0.create_database(db, owner).map_err(err)
    }
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError> {
        self.0.grant_database(db, user).map_err(err)
    }
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError> {
        self.0.drop_user(user).map_err(err)
    }
    fn set_password(&mut self, user: &RoleName, password: &str) -> Result<(), PgError> {
        self.0.set_password(user, password).map_err(err)
    }
    fn create_admin_group(&mut self) -> Result<bool, PgError> {
        self.0.create_admin_group().map_err(err)
    }
}

/// What a server would hold after the charm's calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeServer {
    pub version: String,
    pub databases: BTreeSet<String>,
    /// User to (password, roles as given).
    pub users: BTreeMap<String, (String, String)>,
    /// (database, user) grants.
    pub grants: BTreeSet<(String, String)>,
    pub admin_group: bool,
    /// When set, every call fails with this message (a server that is down).
    pub down: Option<String>,
    /// The hosts sessions were opened on, in order.
    pub sessions: Vec<String>,
}

/// A connector over a shared [`FakeServer`].
#[derive(Clone, Default)]
pub struct FakeConnector(pub Rc<RefCell<FakeServer>>);

impl FakeConnector {
    /// A server that is up.
    pub fn up() -> FakeConnector {
        let server = FakeServer {
            version: "15.18".into(),
            databases: ["postgres".to_string()].into(),
            ..FakeServer::default()
        };
        FakeConnector(Rc::new(RefCell::new(server)))
    }

    /// A copy of the server's state.
    pub fn server(&self) -> FakeServer {
        self.0.borrow().clone()
    }
}

struct FakeSession(Rc<RefCell<FakeServer>>);

impl Connector for FakeConnector {
    fn connect(&self, target: &Target) -> Result<Box<dyn Postgres>, PgError> {
        self.0.borrow_mut().sessions.push(target.host.clone());
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
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError> {
        let needs_admin = roles.memberships().contains(&"admin");
        self.with(|s| {
            if needs_admin && !s.admin_group {
                return Err(PgError(format!(
                    "cannot make {user} a member of \"admin\": no such role"
                )));
            }
            s.users.insert(
                user.to_string(),
                (password.to_string(), format!("{roles:?}")),
            );
            Ok(())
        })?
    }
    fn create_database(&mut self, db: &DatabaseName, _: &RoleName) -> Result<bool, PgError> {
        self.with(|s| s.databases.insert(db.to_string()))
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
    fn set_password(&mut self, user: &RoleName, password: &str) -> Result<(), PgError> {
        self.with(|s| match s.users.get_mut(user.as_str()) {
            Some(entry) => {
                entry.0 = password.to_string();
                Ok(())
            }
            None => Err(PgError(format!("no role {user}"))),
        })?
    }
    fn create_admin_group(&mut self) -> Result<bool, PgError> {
        self.with(|s| !std::mem::replace(&mut s.admin_group, true))
    }
}
