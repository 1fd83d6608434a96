//! The charm's options, validated: clustering and durability here, the
//! options that set PostgreSQL parameters in [`table`] (read by [`values`]),
//! the `cpu_*` workers, the LDAP options and the `plugin_*_enable` flags. An
//! invalid option blocks the charm with the option's name, and nothing is
//! applied (`docs/postgresql-flows.md`, "Configuration").

pub mod table;
pub mod values;

use charm::backend::JsonMap;
pub use charm::options::ConfigError;
use charm::options::Options;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Patroni's synchronous replication settings for the cluster as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synchronous {
    /// `synchronous_mode`: off for a member alone, which turns Patroni's
    /// `synchronous_standby_names` off with it (a strict `*` left from a
    /// departed replica would hold every commit).
    pub mode: bool,
    /// `synchronous_node_count`.
    pub node_count: u32,
    /// `synchronous_mode_strict`: commits wait while no standby confirms them.
    pub strict: bool,
}

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
#[derive(Clone, Debug, PartialEq)]
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
    /// `memory_shared_buffers`: shared buffers in 8 kB pages, instead of the
    /// profile's share of the memory.
    pub shared_buffers: Option<u64>,
    /// The parameters of the [`table::TUNING`] rows and of the `cpu_*`
    /// options, by parameter name.
    pub tuning: Map<String, Value>,
    /// `plugin_<name>_enable` by `<name>`: which PostgreSQL extensions the
    /// options ask for (`flows::extensions` creates and drops them).
    pub plugins: BTreeMap<&'static str, bool>,
}

/// The `cpu_*` options that take `auto` or a number of workers, with their
/// parameters; `cpu_max_worker_processes` comes first, the others default to it.
const WORKER_OPTIONS: &[(&str, &str)] = &[
    ("cpu_max_worker_processes", "max_worker_processes"),
    ("cpu_max_parallel_workers", "max_parallel_workers"),
    (
        "cpu_max_parallel_maintenance_workers",
        "max_parallel_maintenance_workers",
    ),
    (
        "cpu_max_logical_replication_workers",
        "max_logical_replication_workers",
    ),
    (
        "cpu_max_sync_workers_per_subscription",
        "max_sync_workers_per_subscription",
    ),
];

/// Parameters PostgreSQL reads only at start that no table row sets: the
/// memory, the workers and the connections the charm computes, and the
/// replication limits it fixes.
const RESTART_PARAMETERS: &[&str] = &[
    "max_connections",
    "shared_buffers",
    "max_worker_processes",
    "max_logical_replication_workers",
    "max_wal_senders",
    "max_replication_slots",
    "shared_preload_libraries",
];

/// The library PostgreSQL always loads at start: the
/// `optimizer_pg_stat_statements_*` options tune it.
pub const ALWAYS_PRELOADED: &str = "pg_stat_statements";

/// Sets `shared_preload_libraries`: [`ALWAYS_PRELOADED`], then `libraries`.
pub fn set_preload(parameters: &mut Map<String, Value>, libraries: &[&str]) {
    let mut all = vec![ALWAYS_PRELOADED];
    all.extend(libraries.iter().filter(|l| **l != ALWAYS_PRELOADED));
    parameters.insert("shared_preload_libraries".into(), json!(all.join(",")));
}

/// Whether PostgreSQL takes a new value of `parameter` only when it restarts.
pub fn needs_restart(parameter: &str) -> bool {
    RESTART_PARAMETERS.contains(&parameter)
        || table::TUNING
            .iter()
            .any(|t| t.restart && t.parameter == parameter)
}

/// The default time zone, which every PostgreSQL has.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// Bytes in one shared buffer page.
const PAGE_BYTES: u64 = 8192;

impl CharmConfig {
    /// Validates what `config-get` printed, for a machine with `resources`
    /// (the `cpu_*` limits and the shared buffers' ceiling depend on it). The
    /// first bad option is reported.
    pub fn from_raw(raw: &JsonMap, resources: &Resources) -> Result<CharmConfig, ConfigError> {
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
        let profile_limit_memory = o
            .int("profile_limit_memory", 128, 9_999_999)?
            .map(|n| n as u64);
        let shared_buffers = o
            .int("memory_shared_buffers", 16, 1_073_741_823)?
            .map(|n| n as u64);
        if let Some(pages) = shared_buffers {
            let ceiling = memory_bytes(resources, profile_limit_memory) / 10 * 4;
            if pages * PAGE_BYTES > ceiling {
                return Err(ConfigError::new(
                    "memory_shared_buffers",
                    format!(
                        "{pages} pages of 8 kB exceed 40% of the memory ({} pages)",
                        ceiling / PAGE_BYTES
                    ),
                ));
            }
        }
        let mut tuning = Map::new();
        for t in table::TUNING {
            let value = values::read(&o, t)?;
            tuning.insert(t.parameter.into(), value);
        }
        // Two options set track_functions: the one changed from its default
        // wins; changed both ways, neither can.
        let logging = o.text("logging_track_functions")?.unwrap_or("none");
        let optimizer = o.text("optimizer_track_functions")?.unwrap_or("none");
        let track_functions = match (logging, optimizer) {
            (l, "none") => l,
            ("none", p) => p,
            (l, p) if l == p => l,
            (l, p) => {
                return Err(ConfigError::new(
                    "optimizer_track_functions",
                    format!(
                        "is {p:?} but logging_track_functions is {l:?}: both set track_functions, \
                         change one only"
                    ),
                ))
            }
        };
        tuning.insert("track_functions".into(), json!(track_functions));
        workers(&o, resources, &mut tuning)?;
        ldap(&o)?;
        let mut plugins = BTreeMap::new();
        for option in table::PLUGINS {
            let on = o.flag(option)?.unwrap_or(table::plugin_default(option));
            plugins.insert(table::plugin_name(option), on);
        }
        Ok(CharmConfig {
            synchronous_node_count,
            synchronous_mode_strict: o.flag("synchronous_mode_strict")?.unwrap_or(true),
            synchronous_commit,
            maximum_lag_on_failover: o
                .int("durability_maximum_lag_on_failover", 0, i64::MAX)?
                .unwrap_or(1_048_576) as u64,
            wal_keep_size: o
                .int("durability_wal_keep_size", 0, i32::MAX as i64)?
                .unwrap_or(4096) as u64,
            max_connections: o
                .int("experimental_max_connections", 1, 262_143)?
                .map(|n| n as u32),
            profile,
            profile_limit_memory,
            shared_buffers,
            tuning,
            plugins,
        })
    }

    /// The `request_time_zone` option's zone, which the workload's time zone
    /// database must have (checked where the container can be asked).
    pub fn time_zone(&self) -> &str {
        self.tuning["TimeZone"]
            .as_str()
            .unwrap_or(DEFAULT_TIME_ZONE)
    }

    /// Patroni's synchronous settings for a cluster planned at `planned` units
    /// with `members` members now.
    pub fn synchronous(&self, planned: usize, members: usize) -> Synchronous {
        let planned = planned as u32;
        let node_count = match self.synchronous_node_count {
            SyncNodeCount::All => planned.saturating_sub(1),
            SyncNodeCount::Majority => planned / 2,
            SyncNodeCount::Count(n) if (n as usize) < members.saturating_sub(1) => n,
            SyncNodeCount::Count(_) => planned.saturating_sub(1),
        };
        let mode = members > 1 && node_count > 0;
        Synchronous {
            mode,
            node_count,
            strict: mode && self.synchronous_mode_strict,
        }
    }

    /// The extensions of the plugins turned on (`on`) or off, each with its
    /// option, in the options' order.
    pub fn plugin_extensions(&self, on: bool) -> Vec<(&'static str, &'static str)> {
        table::PLUGINS
            .iter()
            .filter(|option| self.plugins.get(table::plugin_name(option)) == Some(&on))
            .flat_map(|option| {
                table::plugin_extensions(table::plugin_name(option))
                    .into_iter()
                    .map(move |e| (*option, e))
            })
            .collect()
    }

    /// The libraries the plugins turned on need loaded at start.
    pub fn preload_libraries(&self) -> Vec<&'static str> {
        self.plugins
            .iter()
            .filter(|(_, on)| **on)
            .filter_map(|(name, _)| table::plugin_preload(name))
            .collect()
    }

    /// The PostgreSQL parameters these options set on a machine with `resources`.
    pub fn parameters(&self, resources: &Resources) -> Map<String, Value> {
        let max_connections = self
            .max_connections
            .unwrap_or_else(|| (4 * resources.cpu_cores).max(100));
        let mut p = self.tuning.clone();
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
        set_preload(&mut p, &self.preload_libraries());
        let memory_mb = memory_bytes(resources, self.profile_limit_memory) / (1024 * 1024);
        match (self.shared_buffers, self.profile) {
            (Some(pages), Profile::Production) => {
                p.insert("shared_buffers".into(), json!(pages));
                let shared_mb = pages * PAGE_BYTES / (1024 * 1024);
                let cache = memory_mb.saturating_sub(shared_mb).max(128);
                p.insert("effective_cache_size".into(), json!(format!("{cache}MB")));
            }
            (Some(pages), Profile::Testing) => {
                p.insert("shared_buffers".into(), json!(pages));
            }
            (None, Profile::Production) => {
                let shared = (memory_mb / 4).max(128);
                p.insert("shared_buffers".into(), json!(format!("{shared}MB")));
                let cache = memory_mb.saturating_sub(shared).max(128);
                p.insert("effective_cache_size".into(), json!(format!("{cache}MB")));
            }
            (None, Profile::Testing) => {}
        }
        p
    }
}

/// The memory the options may assume: the machine's, capped by
/// `profile_limit_memory` (megabytes).
fn memory_bytes(resources: &Resources, limit_mb: Option<u64>) -> u64 {
    let limit = limit_mb.map_or(u64::MAX, |mb| mb * 1024 * 1024);
    resources.memory_bytes.min(limit)
}

/// The `cpu_*` worker options: `auto` or a number from 2 to 10 per core.
/// `max_worker_processes` on auto is two per core, at most 8; the others on
/// auto follow it, and `max_parallel_workers` never exceeds it.
fn workers(
    o: &Options<'_>,
    resources: &Resources,
    tuning: &mut Map<String, Value>,
) -> Result<(), ConfigError> {
    let cores = u64::from(resources.cpu_cores.max(1));
    let mut max_worker_processes = (2 * cores).min(8);
    for (i, (option, parameter)) in WORKER_OPTIONS.iter().enumerate() {
        let text = o.text(option)?.unwrap_or("auto");
        let value = if text == "auto" {
            max_worker_processes
        } else {
            let limit = 10 * cores;
            match text.parse::<u64>() {
                Ok(n) if (2..=limit).contains(&n) => n,
                _ => {
                    return Err(ConfigError::new(
                        option,
                        format!(
                            "must be auto or a whole number from 2 to {limit} (10 per CPU \
                             core), got {text:?}"
                        ),
                    ))
                }
            }
        };
        let value = match i {
            0 => {
                max_worker_processes = value;
                value
            }
            1 => value.min(max_worker_processes),
            _ => value,
        };
        tuning.insert((*parameter).into(), json!(value));
    }
    Ok(())
}

/// The LDAP options: a search filter in parentheses; a group map of
/// `ldapgroup=pgrole` pairs, which blocks while the charm has no LDAP support.
fn ldap(o: &Options<'_>) -> Result<(), ConfigError> {
    let filter = o.text("ldap_search_filter")?.unwrap_or("(uid=$username)");
    let mut depth = 0i32;
    for c in filter.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            break;
        }
    }
    if !filter.starts_with('(') || !filter.ends_with(')') || depth != 0 {
        return Err(ConfigError::new(
            "ldap_search_filter",
            format!("must be an LDAP filter in balanced parentheses, got {filter:?}"),
        ));
    }
    match o.text("ldap_map")? {
        None | Some("") => Ok(()),
        Some(map) => {
            let pairs_ok = map.split(',').all(|pair| {
                pair.split_once('=').is_some_and(|(ldap, pg)| {
                    !ldap.trim().is_empty() && !pg.trim().is_empty() && !pg.contains('=')
                })
            });
            if !pairs_ok {
                return Err(ConfigError::new(
                    "ldap_map",
                    format!("must be ldapgroup=pgrole pairs separated by commas, got {map:?}"),
                ));
            }
            Err(ConfigError::new(
                "ldap_map",
                "LDAP is not supported yet: unset it",
            ))
        }
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
        CharmConfig::from_raw(v.as_object().unwrap(), &SMALL)
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
        assert_eq!(c.tuning["autovacuum_naptime"], 60);
        assert_eq!(c.tuning["log_connections"], "on");
        assert_eq!(c.tuning["DateStyle"], "ISO, MDY");
        assert_eq!(c.tuning["cpu_tuple_cost"], 0.01);
        assert_eq!(c.plugins.len(), 53);
        assert_eq!(
            c.plugins.iter().filter(|(_, on)| **on).collect::<Vec<_>>(),
            [(&"audit", &true)]
        );
    }

    #[test]
    fn workers_follow_the_cores() {
        // Two cores: auto is four workers everywhere; a number may be up to 20.
        let c = parse(json!({})).unwrap();
        for (_, parameter) in WORKER_OPTIONS {
            assert_eq!(c.tuning[*parameter], 4, "{parameter}");
        }
        let one = Resources {
            cpu_cores: 1,
            ..SMALL
        };
        let raw = json!({});
        let c = CharmConfig::from_raw(raw.as_object().unwrap(), &one).unwrap();
        assert_eq!(c.tuning["max_worker_processes"], 2);
        let many = Resources {
            cpu_cores: 16,
            ..SMALL
        };
        let c = CharmConfig::from_raw(raw.as_object().unwrap(), &many).unwrap();
        assert_eq!(c.tuning["max_worker_processes"], 8);
        let c = parse(
            json!({"cpu_max_worker_processes": "20", "cpu_max_parallel_workers": "auto",
                             "cpu_max_sync_workers_per_subscription": "3"}),
        )
        .unwrap();
        assert_eq!(c.tuning["max_worker_processes"], 20);
        assert_eq!(c.tuning["max_parallel_workers"], 20);
        assert_eq!(c.tuning["max_logical_replication_workers"], 20);
        assert_eq!(c.tuning["max_sync_workers_per_subscription"], 3);
        // max_parallel_workers never exceeds max_worker_processes.
        let c = parse(json!({"cpu_max_worker_processes": "3", "cpu_max_parallel_workers": "12"}))
            .unwrap();
        assert_eq!(c.tuning["max_parallel_workers"], 3);
    }

    #[test]
    fn restart_parameters_are_the_tables_and_the_computed_ones() {
        for name in [
            "max_locks_per_transaction",
            "old_snapshot_threshold",
            "shared_buffers",
            "max_connections",
            "max_worker_processes",
            "shared_preload_libraries",
        ] {
            assert!(needs_restart(name), "{name}");
        }
        for name in [
            "work_mem",
            "autovacuum_naptime",
            "max_parallel_workers",
            "TimeZone",
        ] {
            assert!(!needs_restart(name), "{name}");
        }
    }

    #[test]
    fn plugins_choose_their_extensions_and_libraries() {
        let c = parse(json!({})).unwrap();
        assert_eq!(
            c.plugin_extensions(true),
            [("plugin_audit_enable", "pgaudit")]
        );
        assert_eq!(c.preload_libraries(), ["pgaudit"]);
        let p = c.parameters(&SMALL);
        assert_eq!(p["shared_preload_libraries"], "pg_stat_statements,pgaudit");
        let c = parse(json!({
            "plugin_audit_enable": false,
            "plugin_spi_enable": true,
            "plugin_timescaledb_enable": true,
        }))
        .unwrap();
        assert_eq!(
            c.plugin_extensions(true),
            [
                ("plugin_spi_enable", "refint"),
                ("plugin_spi_enable", "autoinc"),
                ("plugin_spi_enable", "insert_username"),
                ("plugin_spi_enable", "moddatetime"),
                ("plugin_timescaledb_enable", "timescaledb"),
            ]
        );
        assert!(c
            .plugin_extensions(false)
            .contains(&("plugin_audit_enable", "pgaudit")));
        let p = c.parameters(&SMALL);
        assert_eq!(
            p["shared_preload_libraries"],
            "pg_stat_statements,timescaledb"
        );
        let mut p = Map::new();
        set_preload(&mut p, &["pg_stat_statements"]);
        assert_eq!(p["shared_preload_libraries"], "pg_stat_statements");
    }

    #[test]
    fn track_functions_takes_the_changed_option() {
        let tf = |raw: Value| parse(raw).unwrap().tuning["track_functions"].clone();
        assert_eq!(tf(json!({})), "none");
        assert_eq!(tf(json!({"logging_track_functions": "pl"})), "pl");
        assert_eq!(tf(json!({"optimizer_track_functions": "all"})), "all");
        assert_eq!(
            tf(json!({"logging_track_functions": "all", "optimizer_track_functions": "all"})),
            "all"
        );
    }

    #[test]
    fn ldap_defaults_and_an_empty_map_are_accepted() {
        parse(
            json!({"ldap_search_filter": "(&(uid=$username)(objectClass=person))", "ldap_map": ""}),
        )
        .unwrap();
        let e = parse(json!({"ldap_map": "staff=admins,ops=operators"})).unwrap_err();
        assert!(e.message.contains("LDAP is not supported yet"), "{e}");
    }

    #[test]
    fn shared_buffers_from_the_option_leave_the_rest_for_the_cache() {
        let c = parse(json!({"memory_shared_buffers": 65_536})).unwrap();
        let p = c.parameters(&SMALL);
        assert_eq!(p["shared_buffers"], 65_536);
        assert_eq!(p["effective_cache_size"], "3584MB");
        let c = parse(json!({"memory_shared_buffers": 65_536, "profile": "testing"})).unwrap();
        let p = c.parameters(&SMALL);
        assert_eq!(p["shared_buffers"], 65_536);
        assert!(!p.contains_key("effective_cache_size"));
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
            (
                json!({"vacuum_autovacuum_naptime": 0}),
                "vacuum_autovacuum_naptime",
            ),
            (
                json!({"logging_client_min_messages": "loud"}),
                "logging_client_min_messages",
            ),
            (
                json!({"optimizer_geqo_seed": "half"}),
                "optimizer_geqo_seed",
            ),
            (
                json!({"optimizer_geqo_selection_bias": 1.2}),
                "optimizer_geqo_selection_bias",
            ),
            (json!({"optimizer_jit": "yes"}), "optimizer_jit"),
            (
                json!({"request_date_style": "ISO, SQL"}),
                "request_date_style",
            ),
            (json!({"request_time_zone": "../x"}), "request_time_zone"),
            (json!({"response_lc_time": "xx_YY"}), "response_lc_time"),
            (
                json!({"plugin_citext_enable": "on"}),
                "plugin_citext_enable",
            ),
            (
                json!({"cpu_max_worker_processes": "1"}),
                "cpu_max_worker_processes",
            ),
            (
                json!({"cpu_max_worker_processes": "21"}),
                "cpu_max_worker_processes",
            ),
            (
                json!({"cpu_max_parallel_workers": "many"}),
                "cpu_max_parallel_workers",
            ),
            (json!({"memory_shared_buffers": 8}), "memory_shared_buffers"),
            (
                json!({"memory_shared_buffers": 300_000}),
                "memory_shared_buffers",
            ),
            (
                json!({"ldap_search_filter": "(uid=$username"}),
                "ldap_search_filter",
            ),
            (json!({"ldap_map": "staff"}), "ldap_map"),
            (json!({"ldap_map": "staff=admins"}), "ldap_map"),
            (
                json!({"logging_track_functions": "pl", "optimizer_track_functions": "all"}),
                "optimizer_track_functions",
            ),
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
        let on = |node_count, strict| Synchronous {
            mode: true,
            node_count,
            strict,
        };
        assert_eq!(with("all", true).synchronous(3, 3), on(2, true));
        assert_eq!(with("majority", true).synchronous(3, 3), on(1, true));
        assert_eq!(with("1", true).synchronous(3, 3), on(1, true));
        // A count the members cannot meet falls back to every other planned unit.
        assert_eq!(with("2", true).synchronous(3, 3), on(2, true));
        assert_eq!(with("5", true).synchronous(3, 3), on(2, true));
        assert_eq!(with("all", false).synchronous(3, 3), on(2, false));
        // Alone, planned so or not: synchronous replication off, never strict.
        let off = |node_count| Synchronous {
            mode: false,
            node_count,
            strict: false,
        };
        assert_eq!(with("all", true).synchronous(1, 1), off(0));
        assert_eq!(with("all", true).synchronous(2, 1), off(1));
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
