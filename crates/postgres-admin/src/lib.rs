//! PostgreSQL administration for the PgBouncer and PostgreSQL charms.
//!
//! - [`names`]: database and role names, and `extra-user-roles`, validated
//!   before any SQL is built.
//! - [`permissions`]: entity permissions (privileges on databases, schemas,
//!   tables, sequences), validated before any GRANT is built.
//! - [`verifier`]: SCRAM-SHA-256 password verifiers, computed locally (by
//!   `postgres-protocol`).
//! - [`admin`]: [`Admin`], a superuser connection that creates databases and
//!   users and installs PgBouncer's auth function.
//! - [`session`]: the [`Postgres`] and [`Connector`] traits the charms' flows
//!   call, so that they run against a real server or an in-memory one.
//! - [`tls_probe`]: whether a server's certificate verifies (`verify-full`),
//!   behind `Connector::verify_tls`.
//! - `testing` (feature `testing`): a throwaway PostgreSQL for tests and an
//!   in-memory server behind the session traits.

pub mod admin;
pub mod names;
pub mod password;
pub mod permissions;
pub mod session;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls_probe;
pub mod verifier;

pub use admin::{Admin, AdminError, ConnectInfo, RoleIssue};
pub use names::{
    Attribute, DatabaseName, DatabasePrefix, Extension, ExtraRoles, MemberRole, NameError,
    RoleError, RoleName,
};
pub use permissions::{Permission, PermissionError, ResourceType};
pub use session::{Connector, PgError, Postgres, RealConnector};
