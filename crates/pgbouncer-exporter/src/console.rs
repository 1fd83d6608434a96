//! The PgBouncer admin consoles: one session per process, kept between
//! scrapes and opened again after an error, and what their `SHOW` commands
//! answer turned into metrics.

use crate::text::Page;
use postgres::{Client, Config, NoTls, SimpleQueryMessage};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A row of a `SHOW` command, by column name.
pub type Row = BTreeMap<String, String>;

/// A console session's failure, without the password.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot read the password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("PgBouncer process {process}: {source}")]
    Postgres {
        process: u32,
        source: postgres::Error,
    },
}

/// One PgBouncer process: its number and its unix socket's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub index: u32,
    pub socket_dir: PathBuf,
}

/// The consoles of a unit's processes.
pub struct Console {
    pub port: u16,
    pub user: String,
    /// The file holding the user's password (read at each new session, so a
    /// new password needs no restart).
    pub password_file: PathBuf,
    pub processes: Vec<Process>,
    sessions: Vec<Option<Client>>,
}

/// How `SHOW POOLS` columns become metrics: column, name, help.
const POOLS: &[(&str, &str, &str)] = &[
    (
        "cl_active",
        "pgbouncer_pools_client_active_connections",
        "Client connections linked to a server connection and able to process queries.",
    ),
    (
        "cl_waiting",
        "pgbouncer_pools_client_waiting_connections",
        "Client connections waiting for a server connection.",
    ),
    (
        "sv_active",
        "pgbouncer_pools_server_active_connections",
        "Server connections linked to a client.",
    ),
    (
        "sv_idle",
        "pgbouncer_pools_server_idle_connections",
        "Server connections unused and immediately usable for client queries.",
    ),
    (
        "sv_used",
        "pgbouncer_pools_server_used_connections",
        "Server connections idle longer than server_check_delay, to be checked before use.",
    ),
    (
        "sv_tested",
        "pgbouncer_pools_server_testing_connections",
        "Server connections running server_reset_query or server_check_query.",
    ),
    (
        "sv_login",
        "pgbouncer_pools_server_login_connections",
        "Server connections logging in.",
    ),
];

/// How `SHOW STATS` columns become counters: column, name, help, divisor.
const STATS: &[(&str, &str, &str, f64)] = &[
    (
        "total_query_count",
        "pgbouncer_stats_queries_pooled_total",
        "SQL queries pooled.",
        1.0,
    ),
    (
        "total_xact_count",
        "pgbouncer_stats_sql_transactions_pooled_total",
        "SQL transactions pooled.",
        1.0,
    ),
    (
        "total_query_time",
        "pgbouncer_stats_queries_duration_seconds_total",
        "Time spent by PgBouncer actively querying PostgreSQL.",
        1e6,
    ),
    (
        "total_xact_time",
        "pgbouncer_stats_sql_transactions_duration_seconds_total",
        "Time spent by PgBouncer in transactions with PostgreSQL.",
        1e6,
    ),
    (
        "total_wait_time",
        "pgbouncer_stats_client_wait_seconds_total",
        "Time spent by clients waiting for a server.",
        1e6,
    ),
    (
        "total_received",
        "pgbouncer_stats_received_bytes_total",
        "Bytes received from clients.",
        1.0,
    ),
    (
        "total_sent",
        "pgbouncer_stats_sent_bytes_total",
        "Bytes sent to clients.",
        1.0,
    ),
];

/// How `SHOW DATABASES` columns become metrics: column, name, help.
const DATABASES: &[(&str, &str, &str)] = &[
    (
        "pool_size",
        "pgbouncer_databases_pool_size",
        "Maximum server connections per user of the database.",
    ),
    (
        "current_connections",
        "pgbouncer_databases_current_connections",
        "Current server connections of the database.",
    ),
    (
        "max_connections",
        "pgbouncer_databases_max_connections",
        "Maximum server connections of the database (0: unlimited).",
    ),
];

/// How `SHOW CONFIG` settings become metrics: key, name, help.
const CONFIG: &[(&str, &str, &str)] = &[
    (
        "max_client_conn",
        "pgbouncer_config_max_client_connections",
        "Maximum client connections allowed.",
    ),
    (
        "default_pool_size",
        "pgbouncer_config_default_pool_size",
        "Server connections allowed per user and database by default.",
    ),
];

fn labels(process: u32, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = vec![("process".to_string(), process.to_string())];
    out.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    out
}

fn value(row: &Row, column: &str) -> Option<f64> {
    row.get(column).and_then(|v| v.trim().parse().ok())
}

/// `SHOW POOLS`: per database and user.
pub fn add_pools(page: &mut Page, process: u32, rows: &[Row]) {
    for row in rows {
        let (Some(db), Some(user)) = (row.get("database"), row.get("user")) else {
            continue;
        };
        let l = labels(process, &[("database", db), ("user", user)]);
        for (column, name, help) in POOLS {
            if let Some(v) = value(row, column) {
                page.add(name, help, "gauge", l.clone(), v);
            }
        }
        if let Some(wait) = value(row, "maxwait") {
            let us = value(row, "maxwait_us").unwrap_or(0.0);
            page.add(
                "pgbouncer_pools_client_maxwait_seconds",
                "Age of the oldest waiting client.",
                "gauge",
                l,
                wait + us / 1e6,
            );
        }
    }
}

/// `SHOW STATS`: per database, totals since start.
pub fn add_stats(page: &mut Page, process: u32, rows: &[Row]) {
    for row in rows {
        let Some(db) = row.get("database") else {
            continue;
        };
        let l = labels(process, &[("database", db)]);
        for (column, name, help, divisor) in STATS {
            if let Some(v) = value(row, column) {
                page.add(name, help, "counter", l.clone(), v / divisor);
            }
        }
    }
}

/// `SHOW DATABASES`: per database.
pub fn add_databases(page: &mut Page, process: u32, rows: &[Row]) {
    for row in rows {
        let Some(db) = row.get("name") else {
            continue;
        };
        let l = labels(process, &[("database", db)]);
        for (column, name, help) in DATABASES {
            if let Some(v) = value(row, column) {
                page.add(name, help, "gauge", l.clone(), v);
            }
        }
    }
}

/// `SHOW CONFIG`: the limits.
pub fn add_config(page: &mut Page, process: u32, rows: &[Row]) {
    for row in rows {
        let Some(key) = row.get("key") else {
            continue;
        };
        for (setting, name, help) in CONFIG {
            if key == setting {
                if let Some(v) = value(row, "value") {
                    page.add(name, help, "gauge", labels(process, &[]), v);
                }
            }
        }
    }
}

fn rows(client: &mut Client, command: &str) -> Result<Vec<Row>, postgres::Error> {
    let mut out = Vec::new();
    for message in client.simple_query(command)? {
        if let SimpleQueryMessage::Row(row) = message {
            let mut r = Row::new();
            for (i, column) in row.columns().iter().enumerate() {
                if let Some(v) = row.get(i) {
                    r.insert(column.name().to_string(), v.to_string());
                }
            }
            out.push(r);
        }
    }
    Ok(out)
}

impl Console {
    /// The consoles of `processes`, no session open yet.
    pub fn new(
        port: u16,
        user: String,
        password_file: PathBuf,
        processes: Vec<Process>,
    ) -> Console {
        let sessions = processes.iter().map(|_| None).collect();
        Console {
            port,
            user,
            password_file,
            processes,
            sessions,
        }
    }

    fn connect(&self, process: &Process) -> Result<Client, ConsoleError> {
        let password = std::fs::read_to_string(&self.password_file).map_err(|source| {
            ConsoleError::PasswordFile {
                path: self.password_file.clone(),
                source,
            }
        })?;
        Config::new()
            .host_path(&process.socket_dir)
            .port(self.port)
            .user(&self.user)
            .password(password.trim_end_matches('\n'))
            .dbname("pgbouncer")
            .application_name("pgbouncer-exporter")
            .connect_timeout(Duration::from_secs(3))
            .connect(NoTls)
            .map_err(|source| ConsoleError::Postgres {
                process: process.index,
                source,
            })
    }

    fn collect(&mut self, slot: usize, page: &mut Page) -> Result<(), ConsoleError> {
        let process = self.processes[slot].clone();
        if self.sessions[slot].as_ref().is_none_or(Client::is_closed) {
            self.sessions[slot] = Some(self.connect(&process)?);
        }
        let Some(client) = self.sessions[slot].as_mut() else {
            return Ok(());
        };
        let index = process.index;
        let failed = |source| ConsoleError::Postgres {
            process: index,
            source,
        };
        let pools = rows(client, "SHOW POOLS").map_err(failed)?;
        let stats = rows(client, "SHOW STATS").map_err(failed)?;
        let databases = rows(client, "SHOW DATABASES").map_err(failed)?;
        let config = rows(client, "SHOW CONFIG").map_err(failed)?;
        add_pools(page, index, &pools);
        add_stats(page, index, &stats);
        add_databases(page, index, &databases);
        add_config(page, index, &config);
        Ok(())
    }

    /// Asks every process; returns the page and the errors met (a process
    /// that failed shows `pgbouncer_up 0` and its session is closed).
    pub fn scrape(&mut self) -> (Page, Vec<ConsoleError>) {
        let mut page = Page::default();
        let mut errors = Vec::new();
        for slot in 0..self.processes.len() {
            let mut own = Page::default();
            let up = match self.collect(slot, &mut own) {
                Ok(()) => {
                    page.merge(own);
                    1.0
                }
                Err(e) => {
                    self.sessions[slot] = None;
                    errors.push(e);
                    0.0
                }
            };
            page.add(
                "pgbouncer_up",
                "Whether the PgBouncer process answered on its admin console.",
                "gauge",
                labels(self.processes[slot].index, &[]),
                up,
            );
        }
        (page, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pools_stats_databases_and_config_become_metrics() {
        let mut page = Page::default();
        add_pools(
            &mut page,
            1,
            &[row(&[
                ("database", "app"),
                ("user", "u"),
                ("cl_active", "2"),
                ("cl_waiting", "3"),
                ("sv_active", "2"),
                ("maxwait", "1"),
                ("maxwait_us", "500000"),
            ])],
        );
        add_stats(
            &mut page,
            1,
            &[row(&[("database", "app"), ("total_query_time", "2500000")])],
        );
        add_databases(
            &mut page,
            1,
            &[row(&[("name", "app"), ("pool_size", "10")])],
        );
        add_config(
            &mut page,
            1,
            &[row(&[("key", "max_client_conn"), ("value", "100")])],
        );
        let text = page.render();
        for line in [
            "pgbouncer_pools_client_waiting_connections{process=\"1\",database=\"app\",user=\"u\"} 3",
            "pgbouncer_pools_client_maxwait_seconds{process=\"1\",database=\"app\",user=\"u\"} 1.5",
            "pgbouncer_stats_queries_duration_seconds_total{process=\"1\",database=\"app\"} 2.5",
            "pgbouncer_databases_pool_size{process=\"1\",database=\"app\"} 10",
            "pgbouncer_config_max_client_connections{process=\"1\"} 100",
            "# TYPE pgbouncer_stats_queries_duration_seconds_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn a_process_that_does_not_answer_is_down() {
        let dir = std::env::temp_dir().join("pgbouncer-exporter-no-such-dir");
        let mut console = Console::new(
            6432,
            "stats".into(),
            dir.join("password"),
            vec![Process {
                index: 0,
                socket_dir: dir,
            }],
        );
        let (page, errors) = console.scrape();
        assert_eq!(errors.len(), 1);
        assert!(page.render().contains("pgbouncer_up{process=\"0\"} 0"));
    }
}
