//! PgBouncer's ini files.
//!
//! The leader builds the part every unit shares ([`SharedConfig`]: the databases and
//! the common `[pgbouncer]` settings) and publishes it as `cfg_file`. Each unit then
//! renders one file per process with [`render_process`]: the shared part, filtered
//! down to what its PgBouncer version understands, plus the process's own socket,
//! pid and log paths, its `peer_id`, its TLS files and the `[peers]` section
//! (see [`super::peering`]).

use super::peering::Peering;
use super::pools::Pools;
use super::version::PgbVersion;
use crate::config::CharmConfig;
use client_interface::Endpoint;
use std::fmt::Write as _;

/// Where PgBouncer's files live in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub data_dir: String,
    pub log_dir: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            data_dir: "/var/lib/pgbouncer".into(),
            log_dir: "/var/log/pgbouncer".into(),
        }
    }
}

impl Layout {
    /// A process's own directory: its unix socket and pid file.
    pub fn process_dir(&self, index: u32) -> String {
        format!("{}/instance_{index}", self.data_dir)
    }

    /// A process's ini file.
    pub fn ini_path(&self, index: u32) -> String {
        format!("{}/pgbouncer.ini", self.process_dir(index))
    }

    /// A process's log directory.
    pub fn log_dir(&self, index: u32) -> String {
        format!("{}/instance_{index}", self.log_dir)
    }

    /// The userlist.
    pub fn auth_file(&self) -> String {
        format!("{}/userlist.txt", self.data_dir)
    }

    /// The TLS files: key, CA, certificate.
    pub fn tls_files(&self) -> [String; 3] {
        ["key.pem", "ca.pem", "cert.pem"].map(|f| format!("{}/{f}", self.data_dir))
    }

    /// The CA the backend's certificate is verified with.
    pub fn backend_ca_file(&self) -> String {
        format!("{}/backend-ca.pem", self.data_dir)
    }
}

/// One `[databases]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseEntry {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The server database; `None` passes the client's database name through.
    pub dbname: Option<String>,
    /// Where the auth query runs, when not in the target database.
    pub auth_dbname: Option<String>,
}

impl DatabaseEntry {
    fn render(&self, with_auth_dbname: bool) -> String {
        let mut s = format!("{} = host={} port={}", self.name, self.host, self.port);
        if let Some(d) = &self.dbname {
            let _ = write!(s, " dbname={d}");
        }
        if let (Some(a), true) = (&self.auth_dbname, with_auth_dbname) {
            let _ = write!(s, " auth_dbname={a}");
        }
        s
    }

    fn parse(line: &str) -> Result<DatabaseEntry, CfgError> {
        let bad = || CfgError(format!("bad [databases] line {line:?}"));
        let (name, params) = line.split_once('=').ok_or_else(bad)?;
        let name = name.trim();
        if !valid_word(name) && name != "*" {
            return Err(bad());
        }
        let mut entry = DatabaseEntry {
            name: name.to_string(),
            host: String::new(),
            port: 0,
            dbname: None,
            auth_dbname: None,
        };
        for param in params.split_whitespace() {
            let (k, v) = param.split_once('=').ok_or_else(bad)?;
            match k {
                "host" => entry.host = v.to_string(),
                "port" => entry.port = v.parse().map_err(|_| bad())?,
                "dbname" => entry.dbname = Some(v.to_string()),
                "auth_dbname" => entry.auth_dbname = Some(v.to_string()),
                _ => return Err(bad()),
            }
        }
        if entry.host.is_empty() || entry.port == 0 {
            return Err(bad());
        }
        Ok(entry)
    }
}

fn valid_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// `cfg_file` cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid PgBouncer configuration in the peer databag: {0}")]
pub struct CfgError(pub String);

/// The backend PgBouncer sends clients to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendTarget {
    pub primary: Endpoint,
    /// Replicas; empty means reads go to the primary too.
    pub read_only: Vec<Endpoint>,
    /// The role PgBouncer logs in as to look up client passwords.
    pub auth_user: String,
    /// Whether the backend serves TLS with a CA to verify it by (written to
    /// [`Layout::backend_ca_file`]).
    pub verify_tls: bool,
}

/// A client's database, as a `database` relation asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientDatabase {
    pub relation_id: u64,
    /// Already validated (see `postgres_admin::names::DatabaseName`).
    pub name: String,
    /// Whether the client asked for privileges that reach every database
    /// (it then also gets the `*` entry).
    pub privileged: bool,
}

/// Everything the shared configuration is built from.
pub struct SharedInput<'a> {
    pub config: &'a CharmConfig,
    pub app: &'a str,
    pub backend: Option<&'a BackendTarget>,
    pub clients: &'a [ClientDatabase],
    /// The backend's other databases, reached read-only through the wildcard's
    /// auth database (`readonly_dbs`).
    pub readonly_dbs: &'a [String],
    /// Processes across every unit, for the pool split.
    pub total_processes: u32,
    pub layout: &'a Layout,
}

/// The part of the configuration every unit shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedConfig {
    pub databases: Vec<DatabaseEntry>,
    /// `[pgbouncer]` settings, in order.
    pub settings: Vec<(String, String)>,
}

/// The admin-console user of an application (`-` becomes `_`).
pub fn admin_user(app: &str) -> String {
    format!("pgbouncer_admin_{}", app.replace('-', "_"))
}

/// The stats user of an application.
pub fn stats_user(app: &str) -> String {
    format!("pgbouncer_stats_{}", app.replace('-', "_"))
}

/// Seconds PgBouncer waits, after a server login failed, before it tries
/// that pool's server again (`server_login_retry`; PgBouncer's own default is
/// 15). Meanwhile it answers new clients with the cached error
/// ("server login has been failing"), and a reload does not clear it: after
/// a failover the pools that failed against the lost primary would keep
/// failing for up to 15 s once they point at the new one. One second bounds
/// that; a dead server is then tried once a second per pool, one attempt at
/// a time.
pub const SERVER_LOGIN_RETRY: u32 = 1;

/// The longest database name PgBouncer and PostgreSQL accept.
const MAX_NAME: usize = 63;

impl SharedConfig {
    /// Builds the shared part from the charm's state.
    pub fn build(input: &SharedInput<'_>) -> SharedConfig {
        let c = input.config;
        let pools = Pools::split(c.max_db_connections, input.total_processes);
        let mut databases = Vec::new();
        if let Some(b) = input.backend {
            let (ro_hosts, ro_port) = match b.read_only.first() {
                Some(first) => {
                    let mut hosts: Vec<&str> = b
                        .read_only
                        .iter()
                        .filter(|e| e.port == first.port)
                        .map(|e| e.host.as_str())
                        .collect();
                    hosts.sort_unstable();
                    hosts.dedup();
                    (hosts.join(","), first.port)
                }
                None => (b.primary.host.clone(), b.primary.port),
            };
            let mut names: Vec<&ClientDatabase> = input.clients.iter().collect();
            names.sort_by(|a, b| a.name.cmp(&b.name));
            names.dedup_by(|a, b| a.name == b.name);
            for client in &names {
                databases.push(DatabaseEntry {
                    name: client.name.clone(),
                    host: b.primary.host.clone(),
                    port: b.primary.port,
                    dbname: Some(client.name.clone()),
                    auth_dbname: None,
                });
                let readonly = format!("{}_readonly", client.name);
                if readonly.len() <= MAX_NAME {
                    databases.push(DatabaseEntry {
                        name: readonly,
                        host: ro_hosts.clone(),
                        port: ro_port,
                        dbname: Some(client.name.clone()),
                        auth_dbname: None,
                    });
                }
            }
            if let Some(privileged) = input
                .clients
                .iter()
                .filter(|c| c.privileged)
                .min_by_key(|c| c.relation_id)
            {
                databases.push(DatabaseEntry {
                    name: "*".into(),
                    host: b.primary.host.clone(),
                    port: b.primary.port,
                    dbname: None,
                    auth_dbname: Some(privileged.name.clone()),
                });
                // The wildcard reaches every database on the primary; its
                // read-only twins go to the replicas, when there are any.
                if !b.read_only.is_empty() {
                    let mut extras: Vec<&String> = input.readonly_dbs.iter().collect();
                    extras.sort();
                    extras.dedup();
                    for name in extras {
                        let readonly = format!("{name}_readonly");
                        if readonly.len() > MAX_NAME
                            || !valid_word(name)
                            || databases.iter().any(|d| d.name == readonly)
                        {
                            continue;
                        }
                        databases.push(DatabaseEntry {
                            name: readonly,
                            host: ro_hosts.clone(),
                            port: ro_port,
                            dbname: Some(name.clone()),
                            auth_dbname: Some(privileged.name.clone()),
                        });
                    }
                }
            }
        }
        let mut settings: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| settings.push((k.to_string(), v));
        set("listen_port", c.listen_port.to_string());
        set("auth_type", "scram-sha-256".into());
        set("auth_file", input.layout.auth_file());
        if let Some(b) = input.backend {
            set("auth_user", b.auth_user.clone());
            set(
                "auth_query",
                format!(
                    "SELECT username, password FROM {}.get_auth($1)",
                    b.auth_user
                ),
            );
        }
        set("admin_users", admin_user(input.app));
        set("stats_users", stats_user(input.app));
        set("max_client_conn", "10000".into());
        set(
            "ignore_startup_parameters",
            "extra_float_digits,options".into(),
        );
        // A backend that serves TLS with a CA is verified, its name included
        // (`verify-full`): PostgreSQL's certificates name the address
        // clients are given, an IP address included. Otherwise TLS is used
        // when the server offers it.
        match input.backend.filter(|b| b.verify_tls) {
            Some(_) => {
                set("server_tls_sslmode", "verify-full".into());
                set("server_tls_ca_file", input.layout.backend_ca_file());
            }
            None => set("server_tls_sslmode", "prefer".into()),
        }
        set("so_reuseport", "1".into());
        set("pool_mode", c.pool_mode.as_str().into());
        set("max_db_connections", pools.max_db_connections.to_string());
        set("default_pool_size", pools.default_pool_size.to_string());
        set("min_pool_size", pools.min_pool_size.to_string());
        set("reserve_pool_size", pools.reserve_pool_size.to_string());
        set(
            "max_prepared_statements",
            c.max_prepared_statements.to_string(),
        );
        set("server_reset_query", "DISCARD ALL".into());
        set("server_login_retry", SERVER_LOGIN_RETRY.to_string());
        SharedConfig {
            databases,
            settings,
        }
    }

    /// The text published as `cfg_file`.
    pub fn render(&self) -> String {
        let mut s = String::from("[databases]\n");
        for d in &self.databases {
            s.push_str(&d.render(true));
            s.push('\n');
        }
        s.push_str("\n[pgbouncer]\n");
        for (k, v) in &self.settings {
            let _ = writeln!(s, "{k} = {v}");
        }
        s
    }

    /// Reads `cfg_file` back ("is a valid config file in the app databag?").
    pub fn parse(text: &str) -> Result<SharedConfig, CfgError> {
        let mut section = "";
        let mut cfg = SharedConfig {
            databases: Vec::new(),
            settings: Vec::new(),
        };
        let mut seen = [false, false];
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line {
                "[databases]" => {
                    section = "databases";
                    seen[0] = true;
                }
                "[pgbouncer]" => {
                    section = "pgbouncer";
                    seen[1] = true;
                }
                _ if section == "databases" => cfg.databases.push(DatabaseEntry::parse(line)?),
                _ if section == "pgbouncer" => {
                    let (k, v) = line
                        .split_once('=')
                        .ok_or_else(|| CfgError(format!("bad [pgbouncer] line {line:?}")))?;
                    let k = k.trim();
                    if !valid_word(k) {
                        return Err(CfgError(format!("bad setting name {k:?}")));
                    }
                    cfg.settings.push((k.to_string(), v.trim().to_string()));
                }
                _ => return Err(CfgError(format!("unexpected line {line:?}"))),
            }
        }
        if !seen[0] || !seen[1] || cfg.setting("listen_port").is_none() {
            return Err(CfgError(
                "missing [databases], [pgbouncer] or listen_port".into(),
            ));
        }
        Ok(cfg)
    }

    /// A `[pgbouncer]` setting.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The port every process listens on.
    pub fn listen_port(&self) -> u16 {
        self.setting("listen_port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(6432)
    }
}

/// What makes one process's file different from its siblings'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec<'a> {
    pub index: u32,
    /// Processes on this unit.
    pub count: u32,
    pub version: PgbVersion,
    /// Whether this unit has TLS key, CA and certificate in place.
    pub tls: bool,
    /// The address this unit listens on: the one it hands out to clients
    /// (on one machine, several units share port numbers).
    pub listen_addr: &'a str,
    pub layout: &'a Layout,
    /// The unit's number and the other units, for `peer_id` and `[peers]`.
    pub peering: &'a Peering,
}

/// Whether a `[pgbouncer]` setting is understood by `version`.
fn supported(key: &str, version: PgbVersion) -> bool {
    match key {
        "max_prepared_statements" => version.has_prepared_statements(),
        _ => true,
    }
}

/// Renders one process's ini file.
pub fn render_process(shared: &SharedConfig, spec: &ProcessSpec<'_>) -> String {
    let v = spec.version;
    let mut s = String::from("[databases]\n");
    for d in &shared.databases {
        s.push_str(&d.render(v.has_auth_dbname()));
        s.push('\n');
    }
    s.push_str("\n[pgbouncer]\n");
    let _ = writeln!(s, "listen_addr = {}", spec.listen_addr);
    for (k, val) in shared.settings.iter().filter(|(k, _)| supported(k, v)) {
        let _ = writeln!(s, "{k} = {val}");
    }
    let l = spec.layout;
    let dir = l.process_dir(spec.index);
    let _ = writeln!(s, "unix_socket_dir = {dir}");
    let _ = writeln!(s, "pidfile = {dir}/pgbouncer.pid");
    let _ = writeln!(s, "logfile = {}/pgbouncer.log", l.log_dir(spec.index));
    if v.has_peers() {
        let _ = writeln!(
            s,
            "peer_id = {}",
            spec.peering.own_id(spec.index, spec.count)
        );
    }
    if spec.tls {
        let [key, ca, cert] = l.tls_files();
        let _ = writeln!(s, "client_tls_sslmode = prefer");
        let _ = writeln!(s, "client_tls_key_file = {key}");
        let _ = writeln!(s, "client_tls_ca_file = {ca}");
        let _ = writeln!(s, "client_tls_cert_file = {cert}");
    }
    if v.has_peers() {
        s.push('\n');
        s.push_str(&spec.peering.section(spec.count, l, shared.listen_port()));
    }
    s
}
