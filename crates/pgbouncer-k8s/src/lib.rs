//! The PgBouncer charm.

pub mod config;
pub mod endpoint;
pub mod pgb;
pub mod postgres;
pub mod workload;
