//! Handing queued connections over when a process stops listening.
//!
//! A unit's processes listen on one port through `so_reuseport`, and the
//! kernel spreads new connections over their listeners. A connection the
//! kernel has queued on a listener that then closes (a process draining in a
//! rolling restart) is reset, unless the network namespace's
//! `net.ipv4.tcp_migrate_req` is 1 (Linux 5.14 and later): the kernel then
//! moves it to another listener on the port. A rolling restart turns the
//! setting on where it may. The charm shares the workload's network
//! namespace: on Kubernetes the pod's, on the local model the machine's.

use std::path::Path;

/// Where a process finds its network namespace's IPv4 settings.
pub const NET_IPV4: &str = "/proc/sys/net/ipv4";

/// The setting's file among them.
const MIGRATE_REQ: &str = "tcp_migrate_req";

/// Whether connections queued on a closing listener move to the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// They do: the setting was already on.
    On,
    /// They do now: the charm turned the setting on.
    TurnedOn,
    /// They are reset: the setting is missing (a kernel before 5.14) or may
    /// not be changed here (a read-only `/proc/sys`, no `CAP_NET_ADMIN`).
    Unavailable(String),
}

/// Turns `tcp_migrate_req` on in `net_ipv4` (a namespace's
/// `/proc/sys/net/ipv4`) unless it is on already.
pub fn enable_migration(net_ipv4: &Path) -> Migration {
    let file = net_ipv4.join(MIGRATE_REQ);
    match std::fs::read_to_string(&file) {
        Ok(value) if value.trim() == "1" => Migration::On,
        Ok(_) => match std::fs::write(&file, "1\n") {
            Ok(()) => Migration::TurnedOn,
            Err(e) => Migration::Unavailable(format!("cannot write {}: {e}", file.display())),
        },
        Err(e) => Migration::Unavailable(format!("cannot read {}: {e}", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_off_setting_is_turned_on_and_an_on_one_left() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(MIGRATE_REQ);
        std::fs::write(&file, "0\n").unwrap();
        assert_eq!(enable_migration(dir.path()), Migration::TurnedOn);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1\n");
        assert_eq!(enable_migration(dir.path()), Migration::On);
    }

    #[test]
    fn a_missing_or_unwritable_setting_is_unavailable_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let Migration::Unavailable(why) = enable_migration(dir.path()) else {
            panic!("a kernel without the setting cannot migrate");
        };
        assert!(
            why.starts_with("cannot read ") && why.contains(MIGRATE_REQ),
            "{why}"
        );
        // A file that reads but cannot be written, whoever runs the test.
        let unwritable = dir.path().join("unwritable");
        std::fs::create_dir(&unwritable).unwrap();
        std::os::unix::fs::symlink("/proc/version", unwritable.join(MIGRATE_REQ)).unwrap();
        let Migration::Unavailable(why) = enable_migration(&unwritable) else {
            panic!("a read-only setting cannot be turned on");
        };
        assert!(why.starts_with("cannot write "), "{why}");
    }
}
