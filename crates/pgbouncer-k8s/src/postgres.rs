//! How the charm logs in to its backend: as the user PostgreSQL created for
//! it over `backend-database`, to the `pgbouncer` database it asked for, on
//! the primary. The session itself is `postgres_admin::session`'s.

use client_interface::requirer::Credentials;
use client_interface::Endpoint;
use postgres_admin::ConnectInfo;
use std::time::Duration;

/// The database the charm asks its backend for, and administers from.
pub const BACKEND_DATABASE: &str = "pgbouncer";

/// The login for the charm's administration on the backend's primary.
pub fn backend_login(primary: &Endpoint, credentials: &Credentials) -> ConnectInfo {
    ConnectInfo {
        host: primary.host.clone(),
        port: primary.port,
        user: credentials.username.clone(),
        password: credentials.password.clone(),
        dbname: BACKEND_DATABASE.into(),
        connect_timeout: Duration::from_secs(5),
    }
}
