//! PostgreSQL administration for the PgBouncer and PostgreSQL charms.
//!
//! - [`names`]: database and role names, and `extra-user-roles`, validated
//!   before any SQL is built.
//! - [`verifier`]: SCRAM-SHA-256 password verifiers, computed locally (by
//!   `postgres-protocol`).
//! - [`admin`]: [`Admin`], a superuser connection that creates databases and
//!   users and installs PgBouncer's auth function.
//! - [`testing`]: [`testing::TestCluster`], a throwaway PostgreSQL for tests.

pub mod admin;
pub mod names;
pub mod password;
pub mod testing;
pub mod verifier;

pub use admin::{Admin, AdminError, ConnectInfo};
pub use names::{Attribute, DatabaseName, ExtraRoles, NameError, RoleError, RoleName};
