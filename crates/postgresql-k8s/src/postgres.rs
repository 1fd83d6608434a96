//! How the charm logs in to PostgreSQL: as its superuser `operator`, to the
//! `postgres` database, on the member it names (the primary, for writes).
//! The session itself is `postgres_admin::session`'s.

use postgres_admin::ConnectInfo;
use std::time::Duration;

/// The login for the charm's administration on `host:port`.
pub fn operator_login(host: &str, port: u16, operator_password: &str) -> ConnectInfo {
    ConnectInfo {
        host: host.to_string(),
        port,
        user: crate::state::OPERATOR.into(),
        password: operator_password.to_string(),
        dbname: "postgres".into(),
        connect_timeout: Duration::from_secs(5),
    }
}
