//! Pool sizes. `max_db_connections` is a promise about the whole application, so
//! each process gets an equal share of it across every process of every unit.

/// The per-process pool settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pools {
    /// Per process; 0 means no limit.
    pub max_db_connections: u32,
    pub default_pool_size: u32,
    pub min_pool_size: u32,
    pub reserve_pool_size: u32,
}

impl Pools {
    /// Splits `max_db_connections` (0 = no limit) over `processes` processes. Each
    /// process gets at least one connection, so with fewer connections than
    /// processes the total is the process count.
    pub fn split(max_db_connections: u32, processes: u32) -> Pools {
        if max_db_connections == 0 {
            return Pools {
                max_db_connections: 0,
                default_pool_size: 20,
                min_pool_size: 10,
                reserve_pool_size: 10,
            };
        }
        let share = (max_db_connections / processes.max(1)).max(1);
        Pools {
            max_db_connections: share,
            default_pool_size: share.div_ceil(2),
            min_pool_size: share.div_ceil(4),
            reserve_pool_size: share.div_ceil(4),
        }
    }
}

/// How many PgBouncer processes a unit runs: one per core, two to four.
pub fn processes_for(cores: usize) -> u32 {
    cores.clamp(2, 4) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_never_passes_the_limit_when_it_can_be_kept() {
        for max in [1u32, 2, 7, 100, 535, 10_000] {
            for processes in 1u32..=16 {
                let p = Pools::split(max, processes);
                if max >= processes {
                    assert!(
                        p.max_db_connections * processes <= max,
                        "{max} over {processes}"
                    );
                } else {
                    assert_eq!(p.max_db_connections, 1);
                }
                assert!(p.default_pool_size <= p.max_db_connections);
                assert!(p.min_pool_size >= 1 && p.reserve_pool_size >= 1);
            }
        }
    }

    #[test]
    fn known_splits() {
        assert_eq!(
            Pools::split(100, 4),
            Pools {
                max_db_connections: 25,
                default_pool_size: 13,
                min_pool_size: 7,
                reserve_pool_size: 7
            }
        );
        assert_eq!(Pools::split(100, 6).max_db_connections, 16);
        assert_eq!(Pools::split(0, 4).default_pool_size, 20);
        assert_eq!(processes_for(1), 2);
        assert_eq!(processes_for(3), 3);
        assert_eq!(processes_for(64), 4);
    }
}
