//! Cancel requests across processes and units.
//!
//! A client cancels a query by opening a new connection, which the kernel
//! (`so_reuseport`) or a load balancer in front of the units may hand to any
//! process of any unit. PgBouncer (1.19 and later) writes the `peer_id` of the
//! process that holds the client into the cancel key it gives out, and a process
//! that receives a key it does not own forwards the request to that peer. So every
//! process lists every process of the application in `[peers]`: its siblings by
//! their socket directories, other units' processes by their unit's address. A
//! request forwarded to another unit lands on any of its processes, which
//! forwards it once more through the socket directory (PgBouncer allows three
//! hops).
//!
//! Peer ids must be unique across the application and stable for a process's
//! life, so they derive from the unit number: unit `n` owns the ids
//! `n * IDS_PER_UNIT + 1 ..= (n + 1) * IDS_PER_UNIT`. A unit whose number leaves
//! no room under PgBouncer's limit peers only with its own processes.

use super::Layout;
use std::fmt::Write as _;

/// Peer ids reserved for each unit: more than the processes a unit runs.
pub const IDS_PER_UNIT: u32 = 8;

/// The largest `peer_id` PgBouncer accepts.
pub const MAX_PEER_ID: u32 = 16383;

/// Another unit whose processes take forwarded cancel requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUnit {
    /// Its unit number (`pgbouncer-k8s/3` is 3).
    pub unit: u32,
    /// The address it listens on.
    pub host: String,
    /// How many processes it runs.
    pub processes: u32,
}

/// This unit's place among the peered processes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peering {
    /// This unit's number.
    pub unit: u32,
    /// The other units, in any order.
    pub remote: Vec<RemoteUnit>,
}

/// The id of process `index` on unit `unit`, when the unit's number leaves room.
fn id(unit: u32, index: u32) -> Option<u32> {
    if index >= IDS_PER_UNIT {
        return None;
    }
    unit.checked_mul(IDS_PER_UNIT)
        .and_then(|base| base.checked_add(index + 1))
        .filter(|id| *id <= MAX_PEER_ID)
}

/// Whether all of a unit's processes get ids in the shared numbering.
fn numbered(unit: u32, processes: u32) -> bool {
    processes > 0 && id(unit, processes - 1).is_some()
}

impl Peering {
    /// The unit number in a unit name such as `pgbouncer-k8s/3`.
    pub fn unit_number(unit_name: &str) -> Option<u32> {
        unit_name.rsplit_once('/')?.1.parse().ok()
    }

    /// The `peer_id` of this unit's process `index` (of `processes`).
    pub fn own_id(&self, index: u32, processes: u32) -> u32 {
        id(self.unit, index)
            .filter(|_| numbered(self.unit, processes))
            .unwrap_or(index + 1)
    }

    /// The `[peers]` section for this unit's processes, which all share it:
    /// every process of this unit and of the other numbered units, by id.
    pub fn section(&self, processes: u32, layout: &Layout, port: u16) -> String {
        let mut entries: Vec<(u32, String)> = (0..processes)
            .map(|i| (self.own_id(i, processes), layout.process_dir(i)))
            .collect();
        if numbered(self.unit, processes) {
            for r in &self.remote {
                if r.unit == self.unit || !numbered(r.unit, r.processes) {
                    continue;
                }
                entries.extend(
                    (0..r.processes).filter_map(|i| Some((id(r.unit, i)?, r.host.clone()))),
                );
            }
        }
        entries.sort();
        entries.dedup_by_key(|(id, _)| *id);
        let mut s = String::from("[peers]\n");
        for (id, host) in entries {
            let _ = writeln!(s, "{id} = host={host} port={port}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(unit: u32, host: &str, processes: u32) -> RemoteUnit {
        RemoteUnit {
            unit,
            host: host.into(),
            processes,
        }
    }

    #[test]
    fn unit_numbers_come_from_unit_names() {
        assert_eq!(Peering::unit_number("pgbouncer-k8s/12"), Some(12));
        assert_eq!(Peering::unit_number("pgbouncer-k8s"), None);
        assert_eq!(Peering::unit_number("a/b"), None);
    }

    #[test]
    fn ids_are_unique_across_units_and_stay_under_the_limit() {
        let mut seen = std::collections::BTreeSet::new();
        for unit in [0, 1, 2, 100, 2047] {
            let p = Peering {
                unit,
                remote: vec![],
            };
            for i in 0..4 {
                let id = p.own_id(i, 4);
                assert!((1..=MAX_PEER_ID).contains(&id));
                assert!(seen.insert(id), "{unit}/{i}");
            }
        }
    }

    #[test]
    fn the_section_lists_siblings_by_socket_and_other_units_by_address() {
        let layout = Layout::default();
        let p = Peering {
            unit: 1,
            remote: vec![remote(3, "10.0.0.3", 3), remote(0, "10.0.0.0", 2)],
        };
        assert_eq!(
            p.section(2, &layout, 6432),
            "[peers]\n\
             1 = host=10.0.0.0 port=6432\n\
             2 = host=10.0.0.0 port=6432\n\
             9 = host=/var/lib/pgbouncer/instance_0 port=6432\n\
             10 = host=/var/lib/pgbouncer/instance_1 port=6432\n\
             25 = host=10.0.0.3 port=6432\n\
             26 = host=10.0.0.3 port=6432\n\
             27 = host=10.0.0.3 port=6432\n"
        );
    }

    #[test]
    fn a_unit_beyond_the_numbering_peers_only_with_its_own_processes() {
        let layout = Layout::default();
        let far = Peering {
            unit: 5000,
            remote: vec![remote(0, "10.0.0.0", 2)],
        };
        assert_eq!(far.own_id(1, 2), 2);
        assert_eq!(
            far.section(2, &layout, 6432),
            "[peers]\n\
             1 = host=/var/lib/pgbouncer/instance_0 port=6432\n\
             2 = host=/var/lib/pgbouncer/instance_1 port=6432\n"
        );
        let near = Peering {
            unit: 0,
            remote: vec![remote(5000, "10.0.0.9", 2)],
        };
        assert!(!near.section(2, &layout, 6432).contains("10.0.0.9"));
    }
}
