//! The options that become PostgreSQL parameters, in one table: each row names
//! the option, the parameter it sets, what values it takes, its default (the
//! one `config.yaml` declares) and whether PostgreSQL needs a restart to take
//! a new value (a `postmaster` parameter).
//!
//! The parameter is the option's name without its first word (`vacuum_`,
//! `optimizer_`, ...), except `request_date_style` (`DateStyle`),
//! `request_time_zone` (`TimeZone`) and `optimizer_pg_stat_statements_*`
//! (`pg_stat_statements.*`); a test holds every row to that rule. Two
//! options set `track_functions`: see
//! [`super::CharmConfig::from_raw`]. The options computed from the machine
//! (`cpu_max_*`, `memory_shared_buffers`, `experimental_max_connections`,
//! `durability_wal_keep_size`) and those that are not parameters are read in
//! [`super`].

/// What values an option takes, and its default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// `true` or `false`, written `on`/`off`.
    Flag(bool),
    /// A whole number within `min..=max` (the parameter's base unit).
    Int { default: i64, min: i64, max: i64 },
    /// A number within `min..=max`.
    Float { default: f64, min: f64, max: f64 },
    /// One of a fixed set of words.
    Word {
        default: &'static str,
        words: &'static [&'static str],
    },
    /// PostgreSQL's `DateStyle`: an output format and/or a field order.
    DateStyle(&'static str),
    /// A time zone name (`TimeZone`).
    TimeZone(&'static str),
}

/// One option that sets one PostgreSQL parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    pub option: &'static str,
    pub parameter: &'static str,
    pub kind: Kind,
    /// PostgreSQL reads a new value only when it restarts.
    pub restart: bool,
}

const INT_MAX: i64 = i32::MAX as i64;

const fn flag(option: &'static str, parameter: &'static str, default: bool) -> Tuning {
    Tuning {
        option,
        parameter,
        kind: Kind::Flag(default),
        restart: false,
    }
}

const fn int(
    option: &'static str,
    parameter: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Tuning {
    Tuning {
        option,
        parameter,
        kind: Kind::Int { default, min, max },
        restart: false,
    }
}

const fn float(
    option: &'static str,
    parameter: &'static str,
    default: f64,
    min: f64,
    max: f64,
) -> Tuning {
    Tuning {
        option,
        parameter,
        kind: Kind::Float { default, min, max },
        restart: false,
    }
}

const fn word(
    option: &'static str,
    parameter: &'static str,
    default: &'static str,
    words: &'static [&'static str],
) -> Tuning {
    Tuning {
        option,
        parameter,
        kind: Kind::Word { default, words },
        restart: false,
    }
}

impl Tuning {
    /// The same row, for a parameter PostgreSQL reads only at start.
    const fn restart(self) -> Tuning {
        Tuning {
            restart: true,
            ..self
        }
    }
}

const MESSAGE_LEVELS: &[&str] = &[
    "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error",
];
const TRACK_FUNCTIONS: &[&str] = &["none", "pl", "all"];
/// The locales every PostgreSQL container has. Others depend on what the
/// image generated, which the charm cannot see, and PostgreSQL refuses to
/// start with a locale it lacks: they are refused.
const LOCALES: &[&str] = &["C", "POSIX", "C.UTF-8", "C.utf8"];
/// PostgreSQL 15's built-in text search configurations.
const TEXT_SEARCH_CONFIGS: &[&str] = &[
    "pg_catalog.simple",
    "pg_catalog.arabic",
    "pg_catalog.armenian",
    "pg_catalog.basque",
    "pg_catalog.catalan",
    "pg_catalog.danish",
    "pg_catalog.dutch",
    "pg_catalog.english",
    "pg_catalog.finnish",
    "pg_catalog.french",
    "pg_catalog.german",
    "pg_catalog.greek",
    "pg_catalog.hindi",
    "pg_catalog.hungarian",
    "pg_catalog.indonesian",
    "pg_catalog.irish",
    "pg_catalog.italian",
    "pg_catalog.lithuanian",
    "pg_catalog.nepali",
    "pg_catalog.norwegian",
    "pg_catalog.portuguese",
    "pg_catalog.romanian",
    "pg_catalog.russian",
    "pg_catalog.serbian",
    "pg_catalog.spanish",
    "pg_catalog.swedish",
    "pg_catalog.tamil",
    "pg_catalog.turkish",
    "pg_catalog.yiddish",
];

/// Every option that sets a PostgreSQL parameter directly.
pub const TUNING: &[Tuning] = &[
    int(
        "connection_authentication_timeout",
        "authentication_timeout",
        60,
        1,
        600,
    ),
    int(
        "connection_statement_timeout",
        "statement_timeout",
        0,
        0,
        INT_MAX,
    ),
    flag(
        "cpu_parallel_leader_participation",
        "parallel_leader_participation",
        true,
    ),
    flag("cpu_wal_compression", "wal_compression", true),
    word(
        "instance_default_text_search_config",
        "default_text_search_config",
        "pg_catalog.simple",
        TEXT_SEARCH_CONFIGS,
    ),
    int(
        "instance_max_locks_per_transaction",
        "max_locks_per_transaction",
        64,
        64,
        INT_MAX,
    )
    .restart(),
    word(
        "instance_password_encryption",
        "password_encryption",
        "scram-sha-256",
        &["md5", "scram-sha-256"],
    ),
    flag(
        "instance_synchronize_seqscans",
        "synchronize_seqscans",
        true,
    ),
    word(
        "logging_client_min_messages",
        "client_min_messages",
        "notice",
        MESSAGE_LEVELS,
    ),
    flag("logging_log_connections", "log_connections", true),
    flag("logging_log_disconnections", "log_disconnections", true),
    flag("logging_log_lock_waits", "log_lock_waits", false),
    int(
        "logging_log_min_duration_statement",
        "log_min_duration_statement",
        -1,
        -1,
        INT_MAX,
    ),
    word(
        "logging_track_functions",
        "track_functions",
        "none",
        TRACK_FUNCTIONS,
    ),
    int(
        "memory_maintenance_work_mem",
        "maintenance_work_mem",
        65536,
        1024,
        INT_MAX,
    ),
    int(
        "memory_max_prepared_transactions",
        "max_prepared_transactions",
        0,
        0,
        262_143,
    )
    .restart(),
    int(
        "memory_temp_buffers",
        "temp_buffers",
        1024,
        100,
        1_073_741_823,
    ),
    int("memory_work_mem", "work_mem", 4096, 64, INT_MAX),
    word(
        "optimizer_constraint_exclusion",
        "constraint_exclusion",
        "partition",
        &["on", "off", "partition"],
    ),
    float(
        "optimizer_cpu_index_tuple_cost",
        "cpu_index_tuple_cost",
        0.005,
        0.0,
        f64::MAX,
    ),
    float(
        "optimizer_cpu_operator_cost",
        "cpu_operator_cost",
        0.0025,
        0.0,
        f64::MAX,
    ),
    float(
        "optimizer_cpu_tuple_cost",
        "cpu_tuple_cost",
        0.01,
        0.0,
        f64::MAX,
    ),
    float(
        "optimizer_cursor_tuple_fraction",
        "cursor_tuple_fraction",
        0.1,
        0.0,
        1.0,
    ),
    int(
        "optimizer_default_statistics_target",
        "default_statistics_target",
        100,
        1,
        10_000,
    ),
    flag("optimizer_enable_async_append", "enable_async_append", true),
    flag("optimizer_enable_bitmapscan", "enable_bitmapscan", true),
    flag("optimizer_enable_gathermerge", "enable_gathermerge", true),
    flag("optimizer_enable_hashagg", "enable_hashagg", true),
    flag("optimizer_enable_hashjoin", "enable_hashjoin", true),
    flag(
        "optimizer_enable_incremental_sort",
        "enable_incremental_sort",
        true,
    ),
    flag(
        "optimizer_enable_indexonlyscan",
        "enable_indexonlyscan",
        true,
    ),
    flag("optimizer_enable_indexscan", "enable_indexscan", true),
    flag("optimizer_enable_material", "enable_material", true),
    flag("optimizer_enable_memoize", "enable_memoize", true),
    flag("optimizer_enable_mergejoin", "enable_mergejoin", true),
    flag("optimizer_enable_nestloop", "enable_nestloop", true),
    flag(
        "optimizer_enable_parallel_append",
        "enable_parallel_append",
        true,
    ),
    flag(
        "optimizer_enable_parallel_hash",
        "enable_parallel_hash",
        true,
    ),
    flag(
        "optimizer_enable_partition_pruning",
        "enable_partition_pruning",
        true,
    ),
    flag(
        "optimizer_enable_partitionwise_aggregate",
        "enable_partitionwise_aggregate",
        false,
    ),
    flag(
        "optimizer_enable_partitionwise_join",
        "enable_partitionwise_join",
        false,
    ),
    flag("optimizer_enable_seqscan", "enable_seqscan", true),
    flag("optimizer_enable_sort", "enable_sort", true),
    flag("optimizer_enable_tidscan", "enable_tidscan", true),
    int(
        "optimizer_from_collapse_limit",
        "from_collapse_limit",
        8,
        1,
        INT_MAX,
    ),
    flag("optimizer_geqo", "geqo", true),
    int("optimizer_geqo_effort", "geqo_effort", 5, 1, 10),
    int(
        "optimizer_geqo_generations",
        "geqo_generations",
        0,
        0,
        INT_MAX,
    ),
    int("optimizer_geqo_pool_size", "geqo_pool_size", 0, 0, INT_MAX),
    float("optimizer_geqo_seed", "geqo_seed", 0.0, 0.0, 1.0),
    float(
        "optimizer_geqo_selection_bias",
        "geqo_selection_bias",
        2.0,
        1.5,
        2.0,
    ),
    int("optimizer_geqo_threshold", "geqo_threshold", 12, 2, INT_MAX),
    flag("optimizer_jit", "jit", true),
    float(
        "optimizer_jit_above_cost",
        "jit_above_cost",
        100_000.0,
        -1.0,
        f64::MAX,
    ),
    float(
        "optimizer_jit_inline_above_cost",
        "jit_inline_above_cost",
        500_000.0,
        -1.0,
        f64::MAX,
    ),
    float(
        "optimizer_jit_optimize_above_cost",
        "jit_optimize_above_cost",
        500_000.0,
        -1.0,
        f64::MAX,
    ),
    int(
        "optimizer_join_collapse_limit",
        "join_collapse_limit",
        8,
        1,
        INT_MAX,
    ),
    int(
        "optimizer_min_parallel_index_scan_size",
        "min_parallel_index_scan_size",
        64,
        0,
        715_827_882,
    ),
    int(
        "optimizer_min_parallel_table_scan_size",
        "min_parallel_table_scan_size",
        1024,
        0,
        715_827_882,
    ),
    float(
        "optimizer_parallel_setup_cost",
        "parallel_setup_cost",
        1000.0,
        0.0,
        f64::MAX,
    ),
    float(
        "optimizer_parallel_tuple_cost",
        "parallel_tuple_cost",
        0.1,
        0.0,
        f64::MAX,
    ),
    word(
        "optimizer_pg_stat_statements_track",
        "pg_stat_statements.track",
        "top",
        &["none", "top", "all"],
    ),
    flag(
        "optimizer_pg_stat_statements_track_utility",
        "pg_stat_statements.track_utility",
        true,
    ),
    flag(
        "optimizer_pg_stat_statements_save",
        "pg_stat_statements.save",
        false,
    ),
    flag("optimizer_track_io_timing", "track_io_timing", false),
    flag(
        "optimizer_track_wal_io_timing",
        "track_wal_io_timing",
        false,
    ),
    word(
        "optimizer_track_functions",
        "track_functions",
        "none",
        TRACK_FUNCTIONS,
    ),
    flag("request_array_nulls", "array_nulls", true),
    word(
        "request_backslash_quote",
        "backslash_quote",
        "safe_encoding",
        &["safe_encoding", "on", "off"],
    ),
    Tuning {
        option: "request_date_style",
        parameter: "DateStyle",
        kind: Kind::DateStyle("ISO, MDY"),
        restart: false,
    },
    int(
        "request_deadlock_timeout",
        "deadlock_timeout",
        1000,
        1,
        INT_MAX,
    ),
    flag(
        "request_default_transaction_deferrable",
        "default_transaction_deferrable",
        false,
    ),
    word(
        "request_default_transaction_isolation",
        "default_transaction_isolation",
        "read committed",
        &[
            "serializable",
            "repeatable read",
            "read committed",
            "read uncommitted",
        ],
    ),
    flag(
        "request_default_transaction_read_only",
        "default_transaction_read_only",
        false,
    ),
    flag(
        "request_escape_string_warning",
        "escape_string_warning",
        true,
    ),
    int("request_lock_timeout", "lock_timeout", 0, 0, INT_MAX),
    flag(
        "request_standard_conforming_strings",
        "standard_conforming_strings",
        true,
    ),
    Tuning {
        option: "request_time_zone",
        parameter: "TimeZone",
        kind: Kind::TimeZone("UTC"),
        restart: false,
    },
    int(
        "request_track_activity_query_size",
        "track_activity_query_size",
        1024,
        100,
        1_048_576,
    )
    .restart(),
    flag(
        "request_transform_null_equals",
        "transform_null_equals",
        false,
    ),
    word(
        "request_xmlbinary",
        "xmlbinary",
        "base64",
        &["base64", "hex"],
    ),
    word(
        "request_xmloption",
        "xmloption",
        "content",
        &["content", "document"],
    ),
    word(
        "response_bytea_output",
        "bytea_output",
        "hex",
        &["escape", "hex"],
    ),
    flag("response_exit_on_error", "exit_on_error", false),
    int(
        "response_extra_float_digits",
        "extra_float_digits",
        1,
        -15,
        3,
    ),
    int(
        "response_gin_fuzzy_search_limit",
        "gin_fuzzy_search_limit",
        0,
        0,
        INT_MAX,
    ),
    word("response_lc_monetary", "lc_monetary", "C", LOCALES),
    word("response_lc_numeric", "lc_numeric", "C", LOCALES),
    word("response_lc_time", "lc_time", "C", LOCALES),
    int(
        "session_idle_in_transaction_session_timeout",
        "idle_in_transaction_session_timeout",
        0,
        0,
        INT_MAX,
    ),
    int(
        "storage_bgwriter_lru_maxpages",
        "bgwriter_lru_maxpages",
        100,
        0,
        1_073_741_823,
    ),
    float(
        "storage_bgwriter_lru_multiplier",
        "bgwriter_lru_multiplier",
        2.0,
        0.0,
        10.0,
    ),
    word(
        "storage_default_table_access_method",
        "default_table_access_method",
        "heap",
        &["heap"],
    ),
    int(
        "storage_gin_pending_list_limit",
        "gin_pending_list_limit",
        4096,
        64,
        INT_MAX,
    ),
    flag(
        "storage_hot_standby_feedback",
        "hot_standby_feedback",
        false,
    ),
    int(
        "storage_old_snapshot_threshold",
        "old_snapshot_threshold",
        -1,
        -1,
        86_400,
    )
    .restart(),
    float(
        "vacuum_autovacuum_analyze_scale_factor",
        "autovacuum_analyze_scale_factor",
        0.1,
        0.0,
        100.0,
    ),
    int(
        "vacuum_autovacuum_analyze_threshold",
        "autovacuum_analyze_threshold",
        50,
        0,
        INT_MAX,
    ),
    int(
        "vacuum_autovacuum_freeze_max_age",
        "autovacuum_freeze_max_age",
        200_000_000,
        100_000,
        2_000_000_000,
    )
    .restart(),
    int(
        "vacuum_autovacuum_naptime",
        "autovacuum_naptime",
        60,
        1,
        2_147_483,
    ),
    float(
        "vacuum_autovacuum_vacuum_cost_delay",
        "autovacuum_vacuum_cost_delay",
        2.0,
        -1.0,
        100.0,
    ),
    int(
        "vacuum_autovacuum_vacuum_cost_limit",
        "autovacuum_vacuum_cost_limit",
        -1,
        -1,
        10_000,
    ),
    float(
        "vacuum_autovacuum_vacuum_insert_scale_factor",
        "autovacuum_vacuum_insert_scale_factor",
        0.2,
        0.0,
        100.0,
    ),
    int(
        "vacuum_autovacuum_vacuum_insert_threshold",
        "autovacuum_vacuum_insert_threshold",
        1000,
        -1,
        INT_MAX,
    ),
    float(
        "vacuum_autovacuum_vacuum_scale_factor",
        "autovacuum_vacuum_scale_factor",
        0.2,
        0.0,
        100.0,
    ),
    int(
        "vacuum_autovacuum_vacuum_threshold",
        "autovacuum_vacuum_threshold",
        50,
        0,
        INT_MAX,
    ),
    float(
        "vacuum_vacuum_cost_delay",
        "vacuum_cost_delay",
        0.0,
        0.0,
        100.0,
    ),
    int(
        "vacuum_vacuum_cost_limit",
        "vacuum_cost_limit",
        200,
        1,
        10_000,
    ),
    int(
        "vacuum_vacuum_cost_page_dirty",
        "vacuum_cost_page_dirty",
        20,
        0,
        10_000,
    ),
    int(
        "vacuum_vacuum_cost_page_hit",
        "vacuum_cost_page_hit",
        1,
        0,
        10_000,
    ),
    int(
        "vacuum_vacuum_cost_page_miss",
        "vacuum_cost_page_miss",
        2,
        0,
        10_000,
    ),
    int(
        "vacuum_vacuum_failsafe_age",
        "vacuum_failsafe_age",
        1_600_000_000,
        0,
        2_100_000_000,
    ),
    int(
        "vacuum_vacuum_freeze_min_age",
        "vacuum_freeze_min_age",
        50_000_000,
        0,
        1_000_000_000,
    ),
    int(
        "vacuum_vacuum_freeze_table_age",
        "vacuum_freeze_table_age",
        150_000_000,
        0,
        2_000_000_000,
    ),
    int(
        "vacuum_vacuum_multixact_failsafe_age",
        "vacuum_multixact_failsafe_age",
        1_600_000_000,
        0,
        2_100_000_000,
    ),
    int(
        "vacuum_vacuum_multixact_freeze_min_age",
        "vacuum_multixact_freeze_min_age",
        5_000_000,
        0,
        1_000_000_000,
    ),
    int(
        "vacuum_vacuum_multixact_freeze_table_age",
        "vacuum_multixact_freeze_table_age",
        150_000_000,
        0,
        2_000_000_000,
    ),
];

/// The `plugin_<name>_enable` options, each a boolean that turns a
/// PostgreSQL extension on in every database; all default to false except
/// `plugin_audit_enable`.
pub const PLUGINS: &[&str] = &[
    "plugin_address_standardizer_data_us_enable",
    "plugin_address_standardizer_enable",
    "plugin_audit_enable",
    "plugin_bloom_enable",
    "plugin_bool_plperl_enable",
    "plugin_btree_gin_enable",
    "plugin_btree_gist_enable",
    "plugin_citext_enable",
    "plugin_cube_enable",
    "plugin_debversion_enable",
    "plugin_dict_int_enable",
    "plugin_dict_xsyn_enable",
    "plugin_earthdistance_enable",
    "plugin_fuzzystrmatch_enable",
    "plugin_hll_enable",
    "plugin_hstore_enable",
    "plugin_hypopg_enable",
    "plugin_icu_ext_enable",
    "plugin_intarray_enable",
    "plugin_ip4r_enable",
    "plugin_isn_enable",
    "plugin_jsonb_plperl_enable",
    "plugin_lo_enable",
    "plugin_ltree_enable",
    "plugin_old_snapshot_enable",
    "plugin_orafce_enable",
    "plugin_pg_freespacemap_enable",
    "plugin_pg_similarity_enable",
    "plugin_pg_trgm_enable",
    "plugin_pg_visibility_enable",
    "plugin_pgrowlocks_enable",
    "plugin_pgstattuple_enable",
    "plugin_pg_stat_statements_enable",
    "plugin_plperl_enable",
    "plugin_plpython3u_enable",
    "plugin_pltcl_enable",
    "plugin_postgis_enable",
    "plugin_postgis_raster_enable",
    "plugin_postgis_tiger_geocoder_enable",
    "plugin_postgis_topology_enable",
    "plugin_prefix_enable",
    "plugin_rdkit_enable",
    "plugin_seg_enable",
    "plugin_spi_enable",
    "plugin_tablefunc_enable",
    "plugin_tcn_enable",
    "plugin_tds_fdw_enable",
    "plugin_timescaledb_enable",
    "plugin_tsm_system_rows_enable",
    "plugin_tsm_system_time_enable",
    "plugin_unaccent_enable",
    "plugin_uuid_ossp_enable",
    "plugin_vector_enable",
];

/// A plugin option's `<name>`.
pub fn plugin_name(option: &'static str) -> &'static str {
    option
        .strip_prefix("plugin_")
        .and_then(|o| o.strip_suffix("_enable"))
        .unwrap_or(option)
}

/// A plugin option's default: only `plugin_audit_enable` is on.
pub fn plugin_default(option: &str) -> bool {
    option == "plugin_audit_enable"
}

/// The extensions a plugin option's `<name>` creates: its name, but for
/// `audit` (`pgaudit`), `uuid_ossp` (`uuid-ossp`) and `spi` (four).
pub fn plugin_extensions(name: &'static str) -> Vec<&'static str> {
    match name {
        "audit" => vec!["pgaudit"],
        "uuid_ossp" => vec!["uuid-ossp"],
        "spi" => vec!["refint", "autoinc", "insert_username", "moddatetime"],
        other => vec![other],
    }
}

/// The extensions an extension needs (its control file's `requires`), which
/// `CREATE EXTENSION ... CASCADE` creates with it and which stay while it does.
pub fn extension_requires(extension: &str) -> &'static [&'static str] {
    match extension {
        "earthdistance" => &["cube"],
        "bool_plperl" | "jsonb_plperl" => &["plperl"],
        "postgis_raster" | "postgis_topology" => &["postgis"],
        "postgis_tiger_geocoder" => &["postgis", "fuzzystrmatch"],
        _ => &[],
    }
}

/// The library a plugin's extension can be created with only once
/// PostgreSQL has loaded it at start (`shared_preload_libraries`).
pub fn plugin_preload(name: &str) -> Option<&'static str> {
    match name {
        "audit" => Some("pgaudit"),
        "timescaledb" => Some("timescaledb"),
        _ => None,
    }
}

/// The plugin option that creates `extension`, if one does.
pub fn plugin_option_of(extension: &str) -> Option<&'static str> {
    PLUGINS
        .iter()
        .copied()
        .find(|option| plugin_extensions(plugin_name(option)).contains(&extension))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefixes whose first word the name rule drops.
    const PREFIXES: &[&str] = &[
        "connection",
        "cpu",
        "durability",
        "instance",
        "logging",
        "memory",
        "optimizer",
        "request",
        "response",
        "session",
        "storage",
        "vacuum",
    ];

    /// The parameter an option's name gives (the rule the table follows, checked
    /// by the tests): the name without its first word, with the renames.
    fn parameter_by_name(option: &str) -> Option<String> {
        let (prefix, rest) = option.split_once('_')?;
        if !PREFIXES.contains(&prefix) {
            return None;
        }
        Some(match rest {
            "date_style" => "DateStyle".into(),
            "time_zone" => "TimeZone".into(),
            _ => match rest.strip_prefix("pg_stat_statements_") {
                Some(field) => format!("pg_stat_statements.{field}"),
                None => rest.into(),
            },
        })
    }

    #[test]
    fn each_row_follows_the_name_rule() {
        for t in TUNING {
            assert_eq!(
                parameter_by_name(t.option).as_deref(),
                Some(t.parameter),
                "{}",
                t.option
            );
        }
        assert_eq!(parameter_by_name("profile_limit_memory"), None);
        assert_eq!(parameter_by_name("ldap_map"), None);
    }

    #[test]
    fn each_option_has_one_row_and_each_default_is_valid() {
        let mut names: Vec<&str> = TUNING.iter().map(|t| t.option).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TUNING.len());
        for t in TUNING {
            match t.kind {
                Kind::Int { default, min, max } => assert!((min..=max).contains(&default)),
                Kind::Float { default, min, max } => assert!((min..=max).contains(&default)),
                Kind::Word { default, words } => assert!(words.contains(&default)),
                Kind::Flag(_) | Kind::DateStyle(_) | Kind::TimeZone(_) => {}
            }
        }
        assert_eq!(PLUGINS.len(), 53);
        assert_eq!(TUNING.len(), 117);
    }

    #[test]
    fn each_extension_has_one_plugin() {
        let all: Vec<&str> = PLUGINS
            .iter()
            .flat_map(|o| plugin_extensions(plugin_name(o)))
            .collect();
        assert_eq!(all.len(), 56);
        for e in &all {
            let option = plugin_option_of(e).unwrap_or_default();
            assert!(plugin_extensions(plugin_name(option)).contains(e), "{e}");
            for needed in extension_requires(e) {
                assert!(all.contains(needed), "{e} needs {needed}");
            }
        }
        assert_eq!(
            plugin_option_of("uuid-ossp"),
            Some("plugin_uuid_ossp_enable")
        );
        assert_eq!(plugin_option_of("moddatetime"), Some("plugin_spi_enable"));
        assert_eq!(plugin_option_of("pgaudit"), Some("plugin_audit_enable"));
        assert_eq!(plugin_option_of("plpgsql"), None);
    }
}
