//! The charm's options for clustering and durability, validated. An invalid
//! option blocks the charm with the option's name, and nothing is applied.

use charm::backend::JsonMap;
pub use charm::options::ConfigError;
use charm::options::Options;
use serde_json::{json, Map, Value};

/// How many replicas must confirm a commit (`synchronous_node_count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncNodeCount {
    /// Every other planned unit.
    All,
    /// Half of the planned units, rounded down.
    Majority,
    Count(u32),
}

/// PostgreSQL's `synchronous_commit` (`durability_synchronous_commit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynchronousCommit {
    On,
    RemoteApply,
    RemoteWrite,
}

impl SynchronousCommit {
    pub fn as_str(self) -> &'static str {
        match self {
            SynchronousCommit::On => "on",
            SynchronousCommit::RemoteApply => "remote_apply",
            SynchronousCommit::RemoteWrite => "remote_write",
        }
    }
}

/// How much of the machine PostgreSQL takes (`profile`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// A quarter of the memory for shared buffers.
    Production,
    /// PostgreSQL's small defaults.
    Testing,
}

/// The validated options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharmConfig {
    pub synchronous_node_count: SyncNodeCount,
    pub synchronous_mode_strict: bool,
    pub synchronous_commit: SynchronousCommit,
    /// Bytes a replica may lag and still be promoted.
    pub maximum_lag_on_failover: u64,
    /// Megabytes of WAL kept for replicas.
    pub wal_keep_size: u64,
    /// Overrides the computed `max_connections`.
    pub max_connections: Option<u32>,
    pub profile: Profile,
    /// Megabytes the production profile may assume, when less than the machine has.
    pub profile_limit_memory: Option<u64>,
}

impl CharmConfig {
    /// Validates what `config-get` printed. The first bad option is reported.
    pub fn from_raw(raw: &JsonMap) -> Result<CharmConfig, ConfigError> {
        let o = Options(raw);
        let count = o.text("synchronous_node_count")?.unwrap_or("all");
        let synchronous_node_count = match count {
            "all" => SyncNodeCount::All,
            "majority" => SyncNodeCount::Majority,
            n => match n.parse::<u32>() {
                Ok(n) if n > 0 => SyncNodeCount::Count(n),
                _ => {
                    return Err(ConfigError::new(
                        "synchronous_node_count",
                        format!("must be all, majority or a positive whole number, got {n:?}"),
                    ))
                }
            },
        };
        let synchronous_commit = o.choice(
            "durability_synchronous_commit",
            "on",
            &[
                ("on", SynchronousCommit::On),
                ("remote_apply", SynchronousCommit::RemoteApply),
                ("remote_write", SynchronousCommit::RemoteWrite),
            ],
        )?;
        let profile = o.choice(
            "profile",
            "production",
            &[
                ("production", Profile::Production),
                ("testing", Profile::Testing),
            ],
        )?;
        Ok(CharmConfig {
            synchronous_node_count,
            synchronous_mode_strict: o.flag("synchronous_mode_strict")?.unwrap_or(true),
            synchronous_commit,
            maximum_lag_on_failover: o
                .int("durability_maximum_lag_on_failover", 0, i64::MAX)?
                .unwrap_or(1_048_576) as u64,
            wal_keep_size: o
                .int("durability_wal_keep_size", 0, 1 << 40)?
                .unwrap_or(4096) as u64,
            max_connections: o
                .int("experimental_max_connections", 1, 262_143)?
                .map(|n| n as u32),
            profile,
            profile_limit_memory: o
                .int("profile_limit_memory", 128, 9_999_999)?
                .map(|n| n as u64),
        })
    }

    /// Patroni's synchronous settings for a cluster planned at `planned` units
    /// with `members` members now: the node count, and whether strict mode is
    /// on.
    pub fn synchronous(&self, planned: usize, members: usize) -> (u32, bool) {
        let planned = planned as u32;
        let count = match self.synchronous_node_count {
            SyncNodeCount::All => planned.saturating_sub(1),
            SyncNodeCount::Majority => planned / 2,
            SyncNodeCount::Count(n) if (n as usize) < members.saturating_sub(1) => n,
            SyncNodeCount::Count(_) => planned.saturating_sub(1),
        };
        let strict = members > 1 && self.synchronous_mode_strict && count > 0;
        (count, strict)
    }

    /// The PostgreSQL parameters these options set on a machine with `resources`.
    pub fn parameters(&self, resources: &Resources) -> Map<String, Value> {
        let max_connections = self
            .max_connections
            .unwrap_or_else(|| (4 * resources.cpu_cores).max(100));
        let mut p = Map::new();
        p.insert("max_connections".into(), json!(max_connections));
        p.insert(
            "synchronous_commit".into(),
            json!(self.synchronous_commit.as_str()),
        );
        p.insert(
            "wal_keep_size".into(),
            json!(format!("{}MB", self.wal_keep_size)),
        );
        p.insert("max_wal_senders".into(), json!(25));
        p.insert("max_replication_slots".into(), json!(25));
        if self.profile == Profile::Production {
            let mut memory_mb = resources.memory_bytes / (1024 * 1024);
            if let Some(limit) = self.profile_limit_memory {
                memory_mb = memory_mb.min(limit);
            }
            let shared = (memory_mb / 4).max(128);
            p.insert("shared_buffers".into(), json!(format!("{shared}MB")));
            let cache = memory_mb.saturating_sub(shared).max(128);
            p.insert("effective_cache_size".into(), json!(format!("{cache}MB")));
        }
        p
    }
}

/// What the unit's machine offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu_cores: u32,
    pub memory_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<CharmConfig, ConfigError> {
        CharmConfig::from_raw(v.as_object().unwrap())
    }

    const SMALL: Resources = Resources {
        cpu_cores: 2,
        memory_bytes: 4 << 30,
    };

    #[test]
    fn defaults_are_the_reference_ones() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c.synchronous_node_count, SyncNodeCount::All);
        assert!(c.synchronous_mode_strict);
        assert_eq!(c.synchronous_commit, SynchronousCommit::On);
        assert_eq!(
            (c.maximum_lag_on_failover, c.wal_keep_size),
            (1_048_576, 4096)
        );
        assert_eq!(c.max_connections, None);
        assert_eq!(c.profile, Profile::Production);
    }

    #[test]
    fn each_invalid_option_is_named() {
        for (raw, option) in [
            (
                json!({"synchronous_node_count": "some"}),
                "synchronous_node_count",
            ),
            (
                json!({"synchronous_node_count": "0"}),
                "synchronous_node_count",
            ),
            (
                json!({"synchronous_node_count": "-2"}),
                "synchronous_node_count",
            ),
            (
                json!({"synchronous_mode_strict": "yes"}),
                "synchronous_mode_strict",
            ),
            (
                json!({"durability_synchronous_commit": "off"}),
                "durability_synchronous_commit",
            ),
            (
                json!({"durability_maximum_lag_on_failover": -1}),
                "durability_maximum_lag_on_failover",
            ),
            (
                json!({"experimental_max_connections": 0}),
                "experimental_max_connections",
            ),
            (json!({"profile": "tiny"}), "profile"),
            (json!({"profile_limit_memory": 64}), "profile_limit_memory"),
        ] {
            let e = parse(raw.clone()).unwrap_err();
            assert_eq!(e.option, option, "{raw}");
            assert!(e.to_string().contains(option));
        }
    }

    #[test]
    fn synchronous_settings_follow_the_reference() {
        let with = |count: &str, strict: bool| {
            parse(json!({"synchronous_node_count": count, "synchronous_mode_strict": strict}))
                .unwrap()
        };
        assert_eq!(with("all", true).synchronous(3, 3), (2, true));
        assert_eq!(with("majority", true).synchronous(3, 3), (1, true));
        assert_eq!(with("1", true).synchronous(3, 3), (1, true));
        // A count the members cannot meet falls back to every other planned unit.
        assert_eq!(with("2", true).synchronous(3, 3), (2, true));
        assert_eq!(with("5", true).synchronous(3, 3), (2, true));
        // Alone: nothing to wait for, never strict.
        assert_eq!(with("all", true).synchronous(1, 1), (0, false));
        assert_eq!(with("all", false).synchronous(3, 3), (2, false));
        assert_eq!(with("all", true).synchronous(2, 1), (1, false));
    }

    #[test]
    fn parameters_follow_the_options_and_the_machine() {
        let c = parse(json!({})).unwrap();
        let p = c.parameters(&SMALL);
        assert_eq!(p["max_connections"], 100);
        assert_eq!(p["synchronous_commit"], "on");
        assert_eq!(p["shared_buffers"], "1024MB");
        assert_eq!(p["effective_cache_size"], "3072MB");
        assert_eq!(p["wal_keep_size"], "4096MB");
        let big = Resources {
            cpu_cores: 64,
            memory_bytes: 4 << 30,
        };
        assert_eq!(c.parameters(&big)["max_connections"], 256);
        let c = parse(
            json!({"experimental_max_connections": 42, "profile_limit_memory": 1024,
                             "durability_synchronous_commit": "remote_apply"}),
        )
        .unwrap();
        let p = c.parameters(&SMALL);
        assert_eq!(p["max_connections"], 42);
        assert_eq!(p["shared_buffers"], "256MB");
        assert_eq!(p["synchronous_commit"], "remote_apply");
        let testing = parse(json!({"profile": "testing"}))
            .unwrap()
            .parameters(&SMALL);
        assert!(!testing.contains_key("shared_buffers"));
    }
}
