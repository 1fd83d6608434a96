//! Test doubles and fixtures, for this crate's tests and other crates' (the
//! `testing` feature): [`TestCluster`], a throwaway PostgreSQL, and
//! [`FakeConnector`], an in-memory server behind the [`crate::session`] traits.

mod cluster;
mod fake;

pub use cluster::{free_port, is_root, postgres_ids, TestCluster};
pub use fake::{FakeConnector, FakeServer, AVAILABLE_EXTENSIONS, FIRST_CLUSTER};
