//! What a charm asks of PostgreSQL, behind a trait so that every flow can be
//! tested in memory: [`Postgres`] is one superuser session, [`Connector`]
//! opens one. [`RealConnector`] talks to a server through [`Admin`];
//! `testing::FakeConnector` keeps the same state in maps.

use crate::admin::{Admin, ConnectInfo, RoleIssue};
use crate::names::{DatabaseName, DatabasePrefix, Extension, ExtraRoles, MemberRole, RoleName};
use crate::permissions::Permission;

/// A PostgreSQL operation failed: what was being done and the server's answer,
/// never a password.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL: {0}")]
pub struct PgError(pub String);

impl From<crate::admin::AdminError> for PgError {
    fn from(e: crate::admin::AdminError) -> PgError {
        PgError(e.to_string())
    }
}

/// The administration the charms do, as a superuser.
pub trait Postgres {
    /// The server's version number, e.g. `15.18`.
    fn server_version(&mut self) -> Result<String, PgError>;
    /// The cluster's identity (`system_identifier`): the same on every
    /// member, another one for a cluster bootstrapped anew.
    fn system_identifier(&mut self) -> Result<String, PgError>;
    /// The names of the non-template databases, sorted.
    fn databases(&mut self) -> Result<Vec<String>, PgError>;
    /// Creates the login role, or updates its password and roles.
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError>;
    /// Changes an existing role's password only.
    fn set_password(&mut self, user: &RoleName, password: &str) -> Result<(), PgError>;
    /// Drops the role, keeping databases and data; returns whether it existed.
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError>;
    /// Creates the database if it is missing; returns whether it did.
    fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool, PgError>;
    /// Lets the user use the database.
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError>;
    /// Creates the `admin` group unless it exists; returns whether it did.
    fn create_admin_group(&mut self) -> Result<bool, PgError>;
    /// Installs PgBouncer's auth function in a database.
    fn install_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<(), PgError>;
    /// Removes it; returns whether there was one.
    fn remove_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<bool, PgError>;
    /// The extensions the server can create, sorted.
    fn available_extensions(&mut self) -> Result<Vec<String>, PgError>;
    /// The extensions created in a database (none if it does not exist), sorted.
    fn installed_extensions(&mut self, db: &str) -> Result<Vec<String>, PgError>;
    /// Creates an available extension in a database unless it is there.
    fn create_extension(
        &mut self,
        db: &DatabaseName,
        extension: &Extension,
        owner: &RoleName,
    ) -> Result<(), PgError>;
    /// Creates an extension (a name from the charm's own table) in a database
    /// or template unless it is there, with what it needs.
    fn enable_extension(&mut self, db: &str, name: &str) -> Result<(), PgError>;
    /// What depends on an extension in a database and is not part of it, sorted.
    fn extension_dependants(&mut self, db: &str, name: &str) -> Result<Vec<String>, PgError>;
    /// Drops an extension nothing depends on; returns whether it was there.
    fn drop_extension(&mut self, db: &str, name: &str) -> Result<bool, PgError>;
    /// The libraries the running server loaded at start.
    fn preloaded_libraries(&mut self) -> Result<Vec<String>, PgError>;
    /// Whether a role of that name exists.
    fn role_exists(&mut self, role: &RoleName) -> Result<bool, PgError>;
    /// The roles a client asked to join that cannot be granted, and why.
    fn unusable_roles(
        &mut self,
        roles: &[MemberRole],
    ) -> Result<Vec<(MemberRole, RoleIssue)>, PgError>;
    /// Creates a group role (NOLOGIN) unless it exists, member of `member_of`.
    fn create_group(&mut self, group: &RoleName, member_of: &[MemberRole]) -> Result<(), PgError>;
    /// Creates the missing `charmed_*` roles; returns those created.
    fn create_charmed_roles(&mut self) -> Result<Vec<String>, PgError>;
    /// The databases whose name starts with the prefix, sorted.
    fn databases_with_prefix(&mut self, prefix: &DatabasePrefix) -> Result<Vec<String>, PgError>;
    /// Creates the database, owned by the session's role, unless it exists.
    fn ensure_database(&mut self, db: &DatabaseName) -> Result<bool, PgError>;
    /// Gives the role exactly the listed privileges on each resource.
    fn grant_permissions(
        &mut self,
        role: &RoleName,
        db: &DatabaseName,
        permissions: &[Permission],
    ) -> Result<(), PgError>;
    /// The parameters whose new value waits for a restart, sorted.
    fn pending_restart(&mut self) -> Result<Vec<String>, PgError>;
}

/// Opens a session.
pub trait Connector {
    /// Connects where `info` says; the session lasts until it is dropped.
    fn connect(&self, info: &ConnectInfo) -> Result<Box<dyn Postgres>, PgError>;
    /// Checks that the server at `host:port` serves TLS with a certificate
    /// that `ca` (a PEM bundle) verifies and that names `host`, as libpq's
    /// and PgBouncer's `verify-full` do. The error says why not.
    fn verify_tls(&self, host: &str, port: u16, ca: &str) -> Result<(), PgError>;
}

/// Connects to real servers.
pub struct RealConnector;

impl Connector for RealConnector {
    fn connect(&self, info: &ConnectInfo) -> Result<Box<dyn Postgres>, PgError> {
        Ok(Box::new(Admin::connect(info)?))
    }

    fn verify_tls(&self, host: &str, port: u16, ca: &str) -> Result<(), PgError> {
        crate::tls_probe::verify(host, port, ca, std::time::Duration::from_secs(5))
    }
}

impl Postgres for Admin {
    fn server_version(&mut self) -> Result<String, PgError> {
        Ok(Admin::server_version(self)?)
    }
    fn system_identifier(&mut self) -> Result<String, PgError> {
        Ok(Admin::system_identifier(self)?)
    }
    fn databases(&mut self) -> Result<Vec<String>, PgError> {
        Ok(Admin::databases(self)?)
    }
    fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        roles: &ExtraRoles,
    ) -> Result<(), PgError> {
        Ok(Admin::create_user(self, user, password, roles)?)
    }
    fn set_password(&mut self, user: &RoleName, password: &str) -> Result<(), PgError> {
        Ok(Admin::set_password(self, user, password)?)
    }
    fn drop_user(&mut self, user: &RoleName) -> Result<bool, PgError> {
        Ok(Admin::drop_user(self, user)?)
    }
    fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool, PgError> {
        Ok(Admin::create_database(self, db, owner)?)
    }
    fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<(), PgError> {
        Ok(Admin::grant_database(self, db, user)?)
    }
    fn create_admin_group(&mut self) -> Result<bool, PgError> {
        Ok(Admin::create_admin_group(self)?)
    }
    fn install_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<(), PgError> {
        Ok(Admin::install_auth_function(self, db, auth_user)?)
    }
    fn remove_auth_function(&mut self, db: &str, auth_user: &RoleName) -> Result<bool, PgError> {
        Ok(Admin::remove_auth_function(self, db, auth_user)?)
    }
    fn available_extensions(&mut self) -> Result<Vec<String>, PgError> {
        Ok(Admin::available_extensions(self)?)
    }
    fn pending_restart(&mut self) -> Result<Vec<String>, PgError> {
        Ok(Admin::pending_restart(self)?)
    }
    fn installed_extensions(&mut self, db: &str) -> Result<Vec<String>, PgError> {
        Ok(Admin::installed_extensions(self, db)?)
    }
    fn create_extension(
        &mut self,
        db: &DatabaseName,
        extension: &Extension,
        owner: &RoleName,
    ) -> Result<(), PgError> {
        Ok(Admin::create_extension(self, db, extension, owner)?)
    }
    fn enable_extension(&mut self, db: &str, name: &str) -> Result<(), PgError> {
        Ok(Admin::enable_extension(self, db, name)?)
    }
    fn extension_dependants(&mut self, db: &str, name: &str) -> Result<Vec<String>, PgError> {
        Ok(Admin::extension_dependants(self, db, name)?)
    }
    fn drop_extension(&mut self, db: &str, name: &str) -> Result<bool, PgError> {
        Ok(Admin::drop_extension(self, db, name)?)
    }
    fn preloaded_libraries(&mut self) -> Result<Vec<String>, PgError> {
        Ok(Admin::preloaded_libraries(self)?)
    }
    fn role_exists(&mut self, role: &RoleName) -> Result<bool, PgError> {
        Ok(Admin::role_exists(self, role)?)
    }
    fn unusable_roles(
        &mut self,
        roles: &[MemberRole],
    ) -> Result<Vec<(MemberRole, RoleIssue)>, PgError> {
        Ok(Admin::unusable_roles(self, roles)?)
    }
    fn create_group(&mut self, group: &RoleName, member_of: &[MemberRole]) -> Result<(), PgError> {
        Ok(Admin::create_group(self, group, member_of)?)
    }
    fn create_charmed_roles(&mut self) -> Result<Vec<String>, PgError> {
        Ok(Admin::create_charmed_roles(self)?)
    }
    fn databases_with_prefix(&mut self, prefix: &DatabasePrefix) -> Result<Vec<String>, PgError> {
        Ok(Admin::databases_with_prefix(self, prefix)?)
    }
    fn ensure_database(&mut self, db: &DatabaseName) -> Result<bool, PgError> {
        Ok(Admin::ensure_database(self, db)?)
    }
    fn grant_permissions(
        &mut self,
        role: &RoleName,
        db: &DatabaseName,
        permissions: &[Permission],
    ) -> Result<(), PgError> {
        Ok(Admin::grant_permissions(self, role, db, permissions)?)
    }
}
