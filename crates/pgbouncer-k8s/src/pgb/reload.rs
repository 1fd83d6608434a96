//! What a unit does to each PgBouncer process after writing its files: nothing,
//! a reload (SIGHUP), or a restart for the settings PgBouncer reads only at start.

/// What to do to one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessAction {
    Nothing,
    /// SIGHUP: PgBouncer rereads the ini and the auth file.
    Reload,
    /// Stop and start: a setting changed that PgBouncer reads only at start.
    Restart,
}

/// Settings a reload does not apply.
const RESTART_KEYS: &[&str] = &[
    "listen_addr",
    "listen_port",
    "unix_socket_dir",
    "unix_socket_mode",
    "unix_socket_group",
    "so_reuseport",
    "pidfile",
    "user",
    "pkt_buf",
];

fn setting<'a>(ini: &'a str, key: &str) -> Option<&'a str> {
    ini.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Decides for one process. `old` is the file it runs with (`None` when there is
/// none yet), `running` whether its service is up.
pub fn plan(old: Option<&str>, new: &str, running: bool, auth_file_changed: bool) -> ProcessAction {
    let Some(old) = old else {
        return ProcessAction::Restart;
    };
    if !running
        || RESTART_KEYS
            .iter()
            .any(|k| setting(old, k) != setting(new, k))
    {
        return ProcessAction::Restart;
    }
    if old != new || auth_file_changed {
        ProcessAction::Reload
    } else {
        ProcessAction::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[pgbouncer]\nlisten_port = 6432\npool_mode = session\n";

    #[test]
    fn each_branch() {
        assert_eq!(plan(None, BASE, true, false), ProcessAction::Restart);
        assert_eq!(plan(Some(BASE), BASE, false, false), ProcessAction::Restart);
        assert_eq!(plan(Some(BASE), BASE, true, false), ProcessAction::Nothing);
        assert_eq!(plan(Some(BASE), BASE, true, true), ProcessAction::Reload);
        let mode = BASE.replace("session", "transaction");
        assert_eq!(plan(Some(BASE), &mode, true, false), ProcessAction::Reload);
        let port = BASE.replace("6432", "6433");
        assert_eq!(plan(Some(BASE), &port, true, false), ProcessAction::Restart);
    }
}
