//! Every option in `config.yaml`, and the test that shows the charm honours
//! it (`HONOURED`, checked against `config.yaml` both ways); the flows that
//! apply options, refuse bad values and report a pending restart. The
//! parameters' values on real PostgreSQL 15 are checked with `SHOW` on every
//! member in `real_patroni.rs`.

mod support;

use charm::metadata::CharmFiles;
use charm::{Event, Status};
use charm_testing::event;
use postgresql_k8s::config::table::{Kind, PLUGINS, TUNING};
use postgresql_k8s::status::RESTART_PENDING;
use postgresql_k8s::workload::{CONTAINER, ZONEINFO_DIR};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::Path;
use support::options::changed_values;
use support::*;

/// The options besides the table's rows and the plugins, each with the test
/// (in this file) that shows it honoured. Every row of `TUNING` is shown by
/// `every_tuning_option_reaches_patroni_and_the_cluster`; every plugin by
/// `every_plugin_is_created_and_dropped_or_named_missing` in
/// `real_extensions.rs` (its extensions created and dropped on a real
/// PostgreSQL, or its missing package named), with its flows in
/// `plugin_flows.rs`.
const HONOURED: &[(&str, &str)] = &[
    (
        "synchronous_node_count",
        "clustering_options_reach_the_cluster",
    ),
    (
        "synchronous_mode_strict",
        "clustering_options_reach_the_cluster",
    ),
    (
        "durability_synchronous_commit",
        "clustering_options_reach_the_cluster",
    ),
    (
        "durability_maximum_lag_on_failover",
        "clustering_options_reach_the_cluster",
    ),
    (
        "durability_wal_keep_size",
        "clustering_options_reach_the_cluster",
    ),
    (
        "experimental_max_connections",
        "clustering_options_reach_the_cluster",
    ),
    (
        "cpu_max_worker_processes",
        "worker_options_follow_the_cores",
    ),
    (
        "cpu_max_parallel_workers",
        "worker_options_follow_the_cores",
    ),
    (
        "cpu_max_parallel_maintenance_workers",
        "worker_options_follow_the_cores",
    ),
    (
        "cpu_max_logical_replication_workers",
        "worker_options_follow_the_cores",
    ),
    (
        "cpu_max_sync_workers_per_subscription",
        "worker_options_follow_the_cores",
    ),
    ("profile", "memory_options_size_the_buffers"),
    ("profile_limit_memory", "memory_options_size_the_buffers"),
    ("memory_shared_buffers", "memory_options_size_the_buffers"),
    (
        "ldap_map",
        "ldap_options_are_checked_and_an_ldap_map_blocks",
    ),
    (
        "ldap_search_filter",
        "ldap_options_are_checked_and_an_ldap_map_blocks",
    ),
];

/// Every option and its test.
fn honoured() -> Vec<(String, &'static str)> {
    let mut all: Vec<(String, &'static str)> =
        HONOURED.iter().map(|(o, t)| (o.to_string(), *t)).collect();
    all.extend(TUNING.iter().map(|t| {
        (
            t.option.to_string(),
            "every_tuning_option_reaches_patroni_and_the_cluster",
        )
    }));
    all.extend(PLUGINS.iter().map(|p| (p.to_string(), PLUGIN_TEST)));
    all
}

/// The test, in `real_extensions.rs`, that shows every plugin option honoured.
const PLUGIN_TEST: &str = "every_plugin_is_created_and_dropped_or_named_missing";

#[test]
fn every_option_in_config_yaml_has_a_test_and_no_other() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charms/postgresql-k8s");
    let files = CharmFiles::load(&dir).unwrap();
    let in_yaml: BTreeSet<String> = files.config.options.keys().cloned().collect();
    let all = honoured();
    let in_table: BTreeSet<String> = all.iter().map(|(o, _)| o.clone()).collect();
    assert_eq!(in_table.len(), all.len(), "an option is listed twice");
    let missing: Vec<_> = in_yaml.difference(&in_table).collect();
    let extra: Vec<_> = in_table.difference(&in_yaml).collect();
    assert!(missing.is_empty(), "options without a test: {missing:?}");
    assert!(
        extra.is_empty(),
        "tests of options config.yaml lacks: {extra:?}"
    );
    assert_eq!(in_yaml.len(), 186);
    // Each named test is in this file, the plugins' in real_extensions.rs.
    let source = include_str!("config_options.rs");
    let plugins = include_str!("real_extensions.rs");
    for (option, test) in all {
        let file = match option.starts_with("plugin_") {
            true => plugins,
            false => source,
        };
        assert!(file.contains(&format!("fn {test}()")), "{option}: {test}");
    }
    // config.yaml's types are the table's.
    for t in TUNING {
        let kind = format!("{:?}", files.config.options[t.option].kind).to_lowercase();
        let want = match t.kind {
            Kind::Flag(_) => "boolean",
            Kind::Int { .. } => "int",
            Kind::Float { .. } => "float",
            Kind::Word { .. } | Kind::DateStyle(_) | Kind::TimeZone(_) => "string",
        };
        assert_eq!(kind, want, "{}", t.option);
    }
}

/// The value PostgreSQL's parameter takes from an option's value.
fn expected(kind: Kind, value: &Value) -> Value {
    match kind {
        Kind::Flag(_) => json!(if value == &json!(true) { "on" } else { "off" }),
        _ => value.clone(),
    }
}

/// A primary running, whose container's time zone database has Europe/Paris.
fn running() -> (World, charm_testing::State) {
    let w = World::new(&[(0, "leader", "running")]);
    let mut s = initialised(unit(0, true), &[0]);
    let container = s.containers.remove(CONTAINER).unwrap_or_default();
    let zone = format!("{ZONEINFO_DIR}/Europe/Paris");
    s.containers
        .insert(CONTAINER.into(), container.with_file(&zone, b"TZif2"));
    let s = w.go(&s, event::pebble_ready(CONTAINER)).state;
    (w, s)
}

fn configured(
    w: &World,
    s: &charm_testing::State,
    raw: &Map<String, Value>,
) -> charm_testing::State {
    let mut s = s.clone();
    s.config.extend(raw.clone());
    w.go(&s, Event::ConfigChanged).state
}

#[test]
fn every_tuning_option_reaches_patroni_and_the_cluster() {
    let (w, s) = running();
    let raw = changed_values();
    let out = configured(&w, &s, &raw);
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
    let doc = patroni_doc(&out);
    let patch = w.patroni.cluster_state().patches.last().cloned().unwrap();
    for t in TUNING {
        let want = expected(t.kind, &raw[t.option]);
        for (place, parameters) in [
            ("patroni.yml", &doc["postgresql"]["parameters"]),
            (
                "bootstrap",
                &doc["bootstrap"]["dcs"]["postgresql"]["parameters"],
            ),
            ("PATCH /config", &patch["postgresql"]["parameters"]),
        ] {
            assert_eq!(parameters[t.parameter], want, "{} in {place}", t.option);
        }
    }
    assert_eq!(doc["postgresql"]["parameters"]["track_functions"], "pl");
}

#[test]
fn clustering_options_reach_the_cluster() {
    let (w, s) = running();
    let raw = json!({
        "synchronous_node_count": "majority",
        "synchronous_mode_strict": false,
        "durability_synchronous_commit": "remote_write",
        "durability_maximum_lag_on_failover": 4096,
        "durability_wal_keep_size": 512,
        "experimental_max_connections": 150,
    });
    let out = configured(&w, &s, raw.as_object().unwrap());
    let patch = w.patroni.cluster_state().patches.last().cloned().unwrap();
    assert_eq!(patch["synchronous_node_count"], 0);
    assert_eq!(patch["synchronous_mode_strict"], false);
    assert_eq!(patch["maximum_lag_on_failover"], 4096);
    let p = &patch["postgresql"]["parameters"];
    assert_eq!(p["synchronous_commit"], "remote_write");
    assert_eq!(p["wal_keep_size"], "512MB");
    assert_eq!(p["max_connections"], 150);
    assert_eq!(
        patroni_doc(&out)["bootstrap"]["dcs"]["maximum_lag_on_failover"],
        4096
    );
}

#[test]
fn worker_options_follow_the_cores() {
    // The model's machine has two cores: auto is four, a number is at most 20.
    let (w, s) = running();
    let out = configured(&w, &s, &Map::new());
    let p = &patroni_doc(&out)["postgresql"]["parameters"];
    assert_eq!(p["max_worker_processes"], 4);
    assert_eq!(p["max_logical_replication_workers"], 4);
    let raw = json!({
        "cpu_max_worker_processes": "12",
        "cpu_max_parallel_workers": "20",
        "cpu_max_parallel_maintenance_workers": "3",
        "cpu_max_logical_replication_workers": "auto",
        "cpu_max_sync_workers_per_subscription": "2",
    });
    let out = configured(&w, &s, raw.as_object().unwrap());
    let p = &patroni_doc(&out)["postgresql"]["parameters"];
    assert_eq!(p["max_worker_processes"], 12);
    assert_eq!(
        p["max_parallel_workers"], 12,
        "never above max_worker_processes"
    );
    assert_eq!(p["max_parallel_maintenance_workers"], 3);
    assert_eq!(p["max_logical_replication_workers"], 12);
    assert_eq!(p["max_sync_workers_per_subscription"], 2);
}

#[test]
fn memory_options_size_the_buffers() {
    // Four GiB: a quarter for shared buffers, the rest for the cache.
    let (w, s) = running();
    let p = |out: &charm_testing::State| patroni_doc(out)["postgresql"]["parameters"].clone();
    let out = configured(
        &w,
        &s,
        json!({"profile_limit_memory": 2048}).as_object().unwrap(),
    );
    assert_eq!(p(&out)["shared_buffers"], "512MB");
    assert_eq!(p(&out)["effective_cache_size"], "1536MB");
    let out = configured(
        &w,
        &s,
        json!({"memory_shared_buffers": 32768}).as_object().unwrap(),
    );
    assert_eq!(p(&out)["shared_buffers"], 32768);
    assert_eq!(p(&out)["effective_cache_size"], "3840MB");
    let out = configured(&w, &s, json!({"profile": "testing"}).as_object().unwrap());
    assert!(p(&out).get("shared_buffers").is_none());
    assert!(p(&out).get("effective_cache_size").is_none());
}

#[test]
fn ldap_options_are_checked_and_an_ldap_map_blocks() {
    let (w, s) = running();
    // The defaults (as config-get prints them) do not block.
    let raw = json!({"ldap_search_filter": "(uid=$username)"});
    let out = configured(&w, &s, raw.as_object().unwrap());
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
    let before = patroni_yml(&s);
    let patches = w.patroni.cluster_state().patches.len();
    for (raw, why) in [
        (
            json!({"ldap_search_filter": "uid=$username"}),
            "ldap_search_filter",
        ),
        (
            json!({"ldap_map": "staff=admins"}),
            "LDAP is not supported yet",
        ),
    ] {
        let out = configured(&w, &s, raw.as_object().unwrap());
        match &out.unit_status {
            Status::Blocked(m) => assert!(m.contains(why), "{m}"),
            other => panic!("{raw}: {other:?}"),
        }
        assert_eq!(patroni_yml(&out), before);
    }
    assert_eq!(w.patroni.cluster_state().patches.len(), patches);
}

#[test]
fn plugin_options_are_parsed_with_their_defaults() {
    use postgresql_k8s::config::{CharmConfig, Resources};
    let machine = Resources {
        cpu_cores: 2,
        memory_bytes: 4 << 30,
    };
    let mut raw = Map::new();
    for p in PLUGINS {
        raw.insert(p.to_string(), json!(true));
    }
    raw.insert("plugin_audit_enable".into(), json!(false));
    let c = CharmConfig::from_raw(&raw, &machine).unwrap();
    assert_eq!(c.plugins.len(), PLUGINS.len());
    assert!(!c.plugins["audit"]);
    assert!(
        c.plugins["uuid_ossp"] && c.plugins["spi"] && c.plugins["address_standardizer_data_us"]
    );
    // A bad value blocks like any option's (the flow test below).
}

#[test]
fn a_bad_value_of_each_kind_blocks_naming_it_and_changes_nothing() {
    let (w, s) = running();
    let before = patroni_yml(&s);
    let patches = w.patroni.cluster_state().patches.len();
    for (option, value, why) in [
        (
            "vacuum_autovacuum_naptime",
            json!(0),
            "must be between 1 and 2147483, got 0",
        ),
        ("memory_work_mem", json!("lots"), "expected a whole number"),
        (
            "request_xmlbinary",
            json!("octal"),
            "must be one of base64, hex",
        ),
        (
            "optimizer_cursor_tuple_fraction",
            json!(1.5),
            "must be between 0 and 1",
        ),
        (
            "optimizer_cpu_tuple_cost",
            json!("cheap"),
            "expected a number",
        ),
        ("optimizer_geqo", json!("yes"), "expected true or false"),
        (
            "plugin_vector_enable",
            json!("true"),
            "expected true or false",
        ),
        ("cpu_max_worker_processes", json!("1"), "from 2 to 20"),
        ("cpu_max_parallel_workers", json!("21"), "from 2 to 20"),
        (
            "cpu_max_sync_workers_per_subscription",
            json!("automatic"),
            "must be auto",
        ),
        (
            "request_date_style",
            json!("ISO, SQL"),
            "two output formats",
        ),
        (
            "request_time_zone",
            json!("Mars/Olympus Mons"),
            "time zone name",
        ),
        (
            "response_lc_numeric",
            json!("fr_FR.UTF-8"),
            "must be one of C, POSIX",
        ),
        (
            "memory_shared_buffers",
            json!(262_144),
            "exceed 40% of the memory",
        ),
    ] {
        let mut raw = Map::new();
        raw.insert(option.into(), value.clone());
        let out = configured(&w, &s, &raw);
        match &out.unit_status {
            Status::Blocked(m) => {
                assert!(m.contains(option) && m.contains(why), "{option}: {m}")
            }
            other => panic!("{option} = {value}: {other:?}"),
        }
        assert_eq!(patroni_yml(&out), before, "{option}: nothing rendered");
        assert_eq!(
            w.patroni.cluster_state().patches.len(),
            patches,
            "{option}: nothing patched"
        );
    }
    // A zone the container's time zone database lacks (PostgreSQL would not
    // start with it).
    let raw = json!({"request_time_zone": "Europe/Atlantis"});
    let out = configured(&w, &s, raw.as_object().unwrap());
    assert_eq!(
        out.unit_status,
        Status::Blocked(
            "invalid config option request_time_zone: PostgreSQL's container has no time \
             zone \"Europe/Atlantis\""
                .into()
        )
    );
    assert_eq!(patroni_yml(&out), before);
    assert_eq!(w.patroni.cluster_state().patches.len(), patches);
    // The status says so after any hook, not only those that configure.
    let later = w.go(&out, Event::Stop).state;
    assert_eq!(later.unit_status, out.unit_status);
    // The two track_functions options set to different values.
    let raw = json!({"logging_track_functions": "pl", "optimizer_track_functions": "all"});
    let out = configured(&w, &s, raw.as_object().unwrap());
    assert!(
        matches!(&out.unit_status, Status::Blocked(m) if m.contains("track_functions")),
        "{:?}",
        out.unit_status
    );
    assert_eq!(patroni_yml(&out), before);
}

#[test]
fn a_changed_parameter_that_needs_a_restart_is_logged() {
    let (w, s) = running();
    let raw = json!({"instance_max_locks_per_transaction": 128, "memory_work_mem": 8192,
                     "cpu_max_worker_processes": "6"});
    let out = configured(&w, &s, raw.as_object().unwrap());
    let p = &patroni_doc(&out)["postgresql"]["parameters"];
    assert_eq!(
        (
            p["max_locks_per_transaction"].clone(),
            p["work_mem"].clone()
        ),
        (json!(128), json!(8192))
    );
    for name in ["max_locks_per_transaction", "max_worker_processes"] {
        assert!(
            logged(
                &out,
                &format!("{name} changed: PostgreSQL takes the new value when it restarts")
            ),
            "{name}: {:?}",
            out.logs
        );
    }
    assert!(!logged(&out, "work_mem changed"));
    // The same options again: nothing changes, nothing is logged.
    let again = w.go(&out, Event::ConfigChanged).state;
    assert!(!again.logs[out.logs.len()..]
        .iter()
        .any(|(_, m)| m.contains("changed: PostgreSQL takes")));
}

#[test]
fn a_pending_restart_shows_in_the_status_with_its_parameters() {
    // A replica waiting for its turn in the rolling restart (the leader has
    // granted it nothing yet).
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    let s = w.go(&s, event::pebble_ready(CONTAINER)).state;
    w.patroni.set_pending_restart(&addr(1));
    w.pg.set_pending_restart(&["max_connections", "shared_buffers"]);
    let out = w.go(&s, Event::UpdateStatus);
    assert_eq!(
        out.state.unit_status,
        Status::Active(format!(
            "Replica; {RESTART_PENDING} for max_connections, shared_buffers"
        ))
    );
    assert!(w.patroni.cluster_state().restarts.is_empty());
    // PostgreSQL cannot say which: the status still says a restart is pending.
    w.pg.set_down(Some("connection refused"));
    let out = w.go(&s, Event::UpdateStatus);
    assert_eq!(
        out.state.unit_status,
        Status::Active(format!("Replica; {RESTART_PENDING}"))
    );
}
