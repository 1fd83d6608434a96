//! A pause for a planned switchover: PgBouncer's `PAUSE` (SIGUSR1) lets the
//! transactions in flight finish, closes every server connection, and keeps
//! new queries waiting; `RESUME` (SIGUSR2) lets them go on. A process has
//! paused once it holds no server connection; the unit's exporter tells,
//! from every process's `SHOW POOLS`.

/// The exporter's families that count server connections.
const SERVER_FAMILIES: &[&str] = &[
    "pgbouncer_pools_server_active_connections",
    "pgbouncer_pools_server_idle_connections",
    "pgbouncer_pools_server_used_connections",
    "pgbouncer_pools_server_testing_connections",
    "pgbouncer_pools_server_login_connections",
];

/// What the exporter's page says of the pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseState {
    /// Every process answered, and none holds a server connection.
    Paused,
    /// This many server connections are still open.
    Draining(u64),
    /// A process did not answer (or the page lists none): nothing to tell.
    Unknown,
}

/// Reads the exporter's page (Prometheus' text format).
pub fn pause_state(page: &str) -> PauseState {
    let mut processes = 0;
    let mut servers = 0.0;
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_labels.split('{').next().unwrap_or_default();
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if name == "pgbouncer_up" {
            if value != 1.0 {
                return PauseState::Unknown;
            }
            processes += 1;
        } else if SERVER_FAMILIES.contains(&name) {
            servers += value;
        }
    }
    match (processes, servers) {
        (0, _) => PauseState::Unknown,
        (_, s) if s <= 0.0 => PauseState::Paused,
        (_, s) => PauseState::Draining(s as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state() {
        let up = "# TYPE pgbouncer_up gauge\npgbouncer_up{process=\"0\"} 1\npgbouncer_up{process=\"1\"} 1\n";
        assert_eq!(pause_state(up), PauseState::Paused);
        let busy = format!(
            "{up}pgbouncer_pools_server_active_connections{{process=\"0\",database=\"db\",user=\"u\"}} 2\n\
             pgbouncer_pools_server_idle_connections{{process=\"1\",database=\"db\",user=\"u\"}} 1\n\
             pgbouncer_pools_client_waiting_connections{{process=\"1\",database=\"db\",user=\"u\"}} 4\n"
        );
        assert_eq!(pause_state(&busy), PauseState::Draining(3));
        let down = "pgbouncer_up{process=\"0\"} 1\npgbouncer_up{process=\"1\"} 0\n";
        assert_eq!(pause_state(down), PauseState::Unknown);
        assert_eq!(pause_state(""), PauseState::Unknown);
    }
}
