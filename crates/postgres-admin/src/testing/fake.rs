//! An in-memory server for flow tests: what a PostgreSQL server would hold
//! after a charm's calls, and a switch that takes it down.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::admin::{ConnectInfo, RoleIssue, ADMIN_GROUP};
use crate::names::{
    DatabaseName, DatabasePrefix, Extension, ExtraRoles, MemberRole, RoleName, CHARMED_ROLES,
    GRANTABLE_PREDEFINED,
};
use crate::permissions::Permission;
use crate::session::{Connector, PgError, Postgres};

/// The extensions a server [`FakeConnector::up_with`] starts offers.
pub const AVAILABLE_EXTENSIONS: [&str; 7] = [
    "citext",
    "hstore",
    "pg_trgm",
    "pgaudit",
    "plpgsql",
    "unaccent",
    "uuid-ossp",
];

/// The extensions that a real server creates only once their library is
/// preloaded.
pub const PRELOADED_ONLY: [&str; 2] = ["pgaudit", "timescaledb"];

/// What a server [`FakeConnector::up_with`] starts has preloaded.
pub const PRELOADED: [&str; 2] = ["pg_stat_statements", "pgaudit"];

/// The identity of the cluster [`FakeConnector::up_with`] starts with.
pub const FIRST_CLUSTER: &str = "7300000000000000001";

/// What a server would hold after the charm's calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeServer {
    /// What `server_version` answers.
    pub version: String,
    /// What `system_identifier` answers: the cluster's identity.
    pub system_identifier: String,
    /// The non-template databases.
    pub databases: BTreeSet<String>,
    /// User to (password, roles as given).
    pub users: BTreeMap<String, (String, String)>,
    /// (database, user) grants.
    pub grants: BTreeSet<(String, String)>,
    /// (database, auth user) PgBouncer auth functions.
    pub auth_functions: BTreeSet<(String, String)>,
    /// Whether the `admin` group exists.
    pub admin_group: bool,
    /// The extensions the server can create.
    pub available_extensions: BTreeSet<String>,
    /// (database, extension) created; the extension as asked (`name[:schema]`).
    pub extensions: BTreeSet<(String, String)>,
    /// (database, extension) to the objects that depend on it there.
    pub dependants: BTreeMap<(String, String), Vec<String>>,
    /// The libraries loaded at start (`shared_preload_libraries`).
    pub preloaded: Vec<String>,
    /// Other group roles (NOLOGIN), each with the roles it is a member of.
    pub groups: BTreeMap<String, Vec<String>>,
    /// (role, database, permission) as granted.
    pub permissions: BTreeSet<(String, String, String)>,
    /// When set, every call fails with this message (a server that is down).
    pub down: Option<String>,
    /// The hosts sessions were opened on, in order.
    pub sessions: Vec<String>,
    /// The parameters whose new value waits for a restart.
    pub pending_restart: Vec<String>,
    /// When set, `verify_tls` fails with this message (a certificate that
    /// does not verify).
    pub tls_unverified: Option<String>,
    /// The (host, CA) pairs `verify_tls` was asked about, in order.
    pub tls_checks: Vec<(String, String)>,
}

/// A connector over a shared [`FakeServer`]; clones share the server.
#[derive(Clone, Default)]
pub struct FakeConnector(pub Rc<RefCell<FakeServer>>);

impl FakeConnector {
    /// A server that is up, with the `postgres` database.
    pub fn up() -> FakeConnector {
        FakeConnector::up_with(&[])
    }

    /// A server that is up, with the given databases besides `postgres`, and
    /// the [`AVAILABLE_EXTENSIONS`].
    pub fn up_with(databases: &[&str]) -> FakeConnector {
        let server = FakeServer {
            version: "15.18".into(),
            system_identifier: FIRST_CLUSTER.into(),
            databases: ["postgres"]
                .iter()
                .chain(databases)
                .map(|d| d.to_string())
                .collect(),
            available_extensions: AVAILABLE_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
            preloaded: PRELOADED.iter().map(|l| l.to_string()).collect(),
            ..FakeServer::default()
        };
        FakeConnector(Rc::new(RefCell::new(server)))
    }

    /// The server now runs a cluster bootstrapped anew, with identity
    /// `system_identifier`: only `postgres` and the given databases, no users,
    /// grants, auth functions nor `admin` group. The sessions' record goes on.
    pub fn replace_cluster(&self, system_identifier: &str, databases: &[&str]) {
        let mut server = self.0.borrow_mut();
        let fresh = FakeConnector::up_with(databases).server();
        *server = FakeServer {
            system_identifier: system_identifier.into(),
            version: server.version.clone(),
            down: server.down.clone(),
            sessions: std::mem::take(&mut server.sessions),
            ..fresh
        };
    }

    /// A copy of the server's state.
    pub fn server(&self) -> FakeServer {
        self.0.borrow().clone()
    }

    /// Adds a group role, as an administrator would.
    pub fn add_group(&self, group: &str, member_of: &[&str]) {
        let member_of = member_of.iter().map(|m| m.to_string()).collect();
        self.0.borrow_mut().groups.insert(group.into(), member_of);
    }

    /// Parameters now wait for a restart (none when empty).
    pub fn set_pending_restart(&self, parameters: &[&str]) {
        self.0.borrow_mut().pending_restart = parameters.iter().map(|p| p.to_string()).collect();
    }

    /// An object in `db` now depends on `extension` (a table with a column
    /// of its type, say).
    pub fn add_dependant(&self, db: &str, extension: &str, what: &str) {
        self.0
            .borrow_mut()
            .dependants
            .entry((db.into(), extension.into()))
            .or_default()
            .push(what.into());
    }

    /// Takes the server down (every call fails with `why`), or back up.
    pub fn set_down(&self, why: Option<&str>) {
        self.0.borrow_mut().down = why.map(str::to_string);
    }
}

struct FakeSession(Rc<RefCell<FakeServer>>);

impl Connector for FakeConnector {
    fn connect(&self, info: &ConnectInfo) -> Result<Box<dyn Postgres>, PgError> {
        self.0.borrow_mut().sessions.push(info.host.clone());
        if let Some(why) = &self.0.borrow().down {
            return Err(PgError(why.clone()));
        }
        Ok(Box::new(FakeSession(self.0.clone())))
    }

    fn verify_tls(&self, host: &str, port: u16, ca: &str) -> Result<(), PgError> {
        let mut s = self.0.borrow_mut();
        s.tls_checks.push((host.to_string(), ca.to_string()));
        match &s.tls_unverified {
            Some(why) => Err(PgError(format!("{host}:{port}: {why}"))),
            None => Ok(()),
        }
    }
}

impl FakeSession {
    fn with<T>(&self, f: impl FnOnce(&mut FakeServer) -> Result<T, PgError>) -> Result<T, PgError> {
        let mut s = self.0.borrow_mut();
        if let Some(why) = &s.down {
            return Err(PgError(why.clone()));
        }
        f(&mut s)
    }
}

impl FakeServer {
    /// Why `role` cannot be granted, if it cannot: a user can log in (too
    /// powerful), and a role the server lacks is missing.
    fn issue(&self, role: &str) -> Option<RoleIssue> {
        let group = (role == ADMIN_GROUP && self.admin_group)
            || self.groups.contains_key(role)
            || GRANTABLE_PREDEFINED.contains(&role);
        match (group, self.users.contains_key(role)) {
            (_, true) => Some(RoleIssue::TooPowerful),
            (true, false) => None,
            (false, false) => Some(RoleIssue::Missing),
        }
    }

    fn check_roles(&self, member: &RoleName, roles: &[MemberRole]) -> Result<(), PgError> {
        match roles
            .iter()
            .find_map(|r| self.issue(r.as_str()).map(|i| (r, i)))
        {
            Some((role, issue)) => Err(PgError(format!(
                "cannot make {member} a member of \"{role}\": {issue}"
            ))),
            None => Ok(()),
        }
    }
}

impl Postgres for FakeSession {
    fn pending_restart(&mut self) -> Result<Vec<String>, PgError> {
        self.with(|s| Ok(s.pending_restart.clone()))
    }
    fn server_version(&mut self) -> Result<String, PgError> {
        self.with(|s| Ok(s.version.clone()))
    }
    fn system_identifier(&mut self) -> Result<String, PgError> {
        self.with(|s| Ok(s.system_identifier.clone()))
    }
    fn databases(&mut self) -> Result<Vec<String>, PgError> {
        self.with(|s| Ok(s.databases.iter().cloned().collect()))
    }
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError> {
        self.with(|s| {
            s.check_roles(user, roles.memberships())?;
            s.users.insert(
                user.to_string(),
                (password.to_string(), format!("{roles:?}")),
            );
            Ok(())
        })
    }
    fn set_password(&mut self, user: &RoleName, password: &str) -> Result<(), PgError> {
        self.with(|s| match s.users.get_mut(user.as_str()) {
            Some(entry) => {
                entry.0 = password.to_string();
                Ok(())
            }
            None => Err(PgError(format!("no role {user}"))),
        })
    }
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError> {
        self.with(|s| {
            s.grants.retain(|(_, u)| u != user.as_str());
            Ok(s.users.remove(user.as_str()).is_some())
        })
    }
    fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool, PgError> {
        self.with(|s| {
            if !s.users.contains_key(owner.as_str()) {
                return Err(PgError(format!("role \"{owner}\" does not exist")));
            }
            Ok(s.databases.insert(db.to_string()))
        })
    }
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError> {
        self.with(|s| {
            s.grants.insert((db.to_string(), user.to_string()));
            Ok(())
        })
    }
    fn create_admin_group(&mut self) -> Result<bool, PgError> {
        self.with(|s| Ok(!std::mem::replace(&mut s.admin_group, true)))
    }
    fn install_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<(), PgError> {
        self.with(|s| {
            if !s.databases.contains(db) {
                return Err(PgError(format!("database \"{db}\" does not exist")));
            }
            if !s.users.contains_key(auth_user.as_str()) {
                return Err(PgError(format!("role \"{auth_user}\" does not exist")));
            }
            s.auth_functions
                .insert((db.to_string(), auth_user.to_string()));
            Ok(())
        })
    }
    fn remove_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<bool, PgError> {
        self.with(|s| {
            Ok(s.auth_functions
                .remove(&(db.to_string(), auth_user.to_string())))
        })
    }
    fn available_extensions(&mut self) -> Result<Vec<String>, PgError> {
        self.with(|s| Ok(s.available_extensions.iter().cloned().collect()))
    }
    fn installed_extensions(&mut self, db: &str) -> Result<Vec<String>, PgError> {
        self.with(|s| {
            Ok(s.extensions
                .iter()
                .filter(|(d, _)| d == db)
                .map(|(_, e)| e.split(':').next().unwrap_or(e).to_string())
                .collect())
        })
    }
    fn create_extension(
        &mut self,
        db: &DatabaseName,
        extension: &Extension,
        owner: &RoleName,
    ) -> Result<(), PgError> {
        self.with(|s| {
            if !s.databases.contains(db.as_str()) {
                return Err(PgError(format!("database \"{db}\" does not exist")));
            }
            if !s.available_extensions.contains(extension.name()) {
                return Err(PgError(format!(
                    "extension {:?} is not available on this server",
                    extension.name()
                )));
            }
            if extension.schema().is_some() && !s.users.contains_key(owner.as_str()) {
                return Err(PgError(format!("role \"{owner}\" does not exist")));
            }
            s.extensions.insert((db.to_string(), extension.to_string()));
            Ok(())
        })
    }
    fn enable_extension(&mut self, db: &str, name: &str) -> Result<(), PgError> {
        self.with(|s| {
            if !s.databases.contains(db) && db != "template1" {
                return Err(PgError(format!("database \"{db}\" does not exist")));
            }
            if !s.available_extensions.contains(name) {
                return Err(PgError(format!(
                    "extension {name:?} is not available on this server"
                )));
            }
            if PRELOADED_ONLY.contains(&name) && !s.preloaded.iter().any(|l| l == name) {
                return Err(PgError(format!(
                    "{name} must be loaded via shared_preload_libraries"
                )));
            }
            s.extensions.insert((db.to_string(), name.to_string()));
            Ok(())
        })
    }
    fn extension_dependants(&mut self, db: &str, name: &str) -> Result<Vec<String>, PgError> {
        self.with(|s| {
            let mut out = s
                .dependants
                .get(&(db.to_string(), name.to_string()))
                .cloned()
                .unwrap_or_default();
            out.sort();
            Ok(out)
        })
    }
    fn drop_extension(&mut self, db: &str, name: &str) -> Result<bool, PgError> {
        self.with(|s| {
            let key = (db.to_string(), name.to_string());
            if s.dependants.get(&key).is_some_and(|d| !d.is_empty()) {
                return Err(PgError(format!(
                    "cannot drop extension {name} because other objects depend on it"
                )));
            }
            let before = s.extensions.len();
            s.extensions
                .retain(|(d, e)| !(d == db && e.split(':').next() == Some(name)));
            Ok(s.extensions.len() < before)
        })
    }
    fn preloaded_libraries(&mut self) -> Result<Vec<String>, PgError> {
        self.with(|s| Ok(s.preloaded.clone()))
    }
    fn role_exists(&mut self, role: &RoleName) -> Result<bool, PgError> {
        self.with(|s| {
            let name = role.as_str();
            Ok(s.users.contains_key(name)
                || s.groups.contains_key(name)
                || (name == ADMIN_GROUP && s.admin_group))
        })
    }
    fn unusable_roles(
        &mut self,
        roles: &[MemberRole],
    ) -> Result<Vec<(MemberRole, RoleIssue)>, PgError> {
        self.with(|s| {
            Ok(roles
                .iter()
                .filter_map(|r| s.issue(r.as_str()).map(|i| (r.clone(), i)))
                .collect())
        })
    }
    fn create_group(&mut self, group: &RoleName, member_of: &[MemberRole]) -> Result<(), PgError> {
        self.with(|s| {
            if s.users.contains_key(group.as_str()) {
                return Err(PgError(format!("{group} exists and can log in")));
            }
            s.check_roles(group, member_of)?;
            let member_of = member_of.iter().map(|m| m.to_string()).collect();
            s.groups.insert(group.to_string(), member_of);
            Ok(())
        })
    }
    fn create_charmed_roles(&mut self) -> Result<Vec<String>, PgError> {
        self.with(|s| {
            let mut created = Vec::new();
            for (role, member_of) in CHARMED_ROLES {
                if !s.groups.contains_key(role) {
                    let member_of = member_of.iter().map(|m| m.to_string()).collect();
                    s.groups.insert(role.to_string(), member_of);
                    created.push(role.to_string());
                }
            }
            Ok(created)
        })
    }
    fn databases_with_prefix(&mut self, prefix: &DatabasePrefix) -> Result<Vec<String>, PgError> {
        self.with(|s| {
            Ok(s.databases
                .iter()
                .filter(|d| prefix.matches(d))
                .cloned()
                .collect())
        })
    }
    fn ensure_database(&mut self, db: &DatabaseName) -> Result<bool, PgError> {
        self.with(|s| Ok(s.databases.insert(db.to_string())))
    }
    fn grant_permissions(
        &mut self,
        role: &RoleName,
        db: &DatabaseName,
        permissions: &[Permission],
    ) -> Result<(), PgError> {
        self.with(|s| {
            for p in permissions {
                s.permissions
                    .insert((role.to_string(), db.to_string(), p.to_string()));
            }
            Ok(())
        })
    }
}
