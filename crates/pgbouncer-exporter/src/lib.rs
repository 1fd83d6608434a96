//! A Prometheus exporter for the PgBouncer processes of one unit.
//!
//! Each scrape asks every process's admin console (over its unix socket, as
//! a `stats_users` user) `SHOW POOLS`, `SHOW STATS`, `SHOW DATABASES` and
//! `SHOW CONFIG`, and renders one Prometheus text page for them all, each
//! series labelled with its `process`; a process that does not answer shows
//! `pgbouncer_up{process="N"} 0`. The metric names follow the community
//! `pgbouncer_exporter`'s.

pub mod console;
pub mod text;

pub use console::{Console, Process};
pub use text::{Family, Page};
