//! The observability flows on the in-memory model: `logging` (each Loki unit a
//! Pebble log target of the container; the leader's topology in the relation),
//! `metrics-endpoint` and `grafana-dashboard`.
//!
//! | flow, branch | test |
//! |---|---|
//! | logging: a provider unit publishes its endpoint | `a_loki_unit_becomes_a_log_target_labelled_with_the_topology` |
//! | logging: the leader publishes metadata and alert rules | `a_loki_unit_becomes_a_log_target_labelled_with_the_topology`, `a_follower_forwards_but_writes_no_application_bag` |
//! | logging: a provider unit leaves | `a_loki_unit_that_leaves_has_its_target_disabled` |
//! | logging: the relation is removed | `the_relation_removed_disables_every_target` |
//! | logging: a malformed endpoint | `a_malformed_endpoint_changes_nothing_and_says_so` |
//! | logging: the container not up yet, then pebble-ready | `a_container_that_comes_up_later_gets_its_targets_at_pebble_ready` |
//! | metrics-endpoint: jobs, metadata, rules, each unit's address | `metrics_endpoint_carries_the_job_rules_and_the_units_address` |
//! | grafana-dashboard: the dashboard, resent only when it changes | `grafana_dashboard_carries_the_dashboard_once` |
//! | log rotation: each process's log file, by size and age, the options followed | `a_serving_unit_rotates_each_process_log` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::Status;
use charm_testing::{event, ContainerState, RelationState, State};
use cos_interface::logging::LOGGING;
use pebble_api::LogTarget;
use pgbouncer_k8s::workload::{CONTAINER, LOGROTATE_CONFIG, LOGROTATE_SERVICE};
use postgres_admin::testing::FakeConnector;
use serde_json::Value;
use support::*;

const LOGGING_ID: u64 = 9;
const URL_0: &str = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push";
const URL_1: &str = "http://loki-1.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push";

fn endpoint(url: &str) -> String {
    serde_json::json!({ "url": url }).to_string()
}

/// The `logging` relation with Loki units `(name, endpoint)`.
fn logging(units: &[(&str, &str)]) -> RelationState {
    let mut relation = RelationState::new(LOGGING, LOGGING_ID, "loki");
    for (unit, value) in units {
        relation = relation.remote_unit(unit, &[("endpoint", value)]);
    }
    relation
}

fn targets(state: &State) -> std::collections::BTreeMap<String, LogTarget> {
    state
        .container(CONTAINER)
        .unwrap()
        .current_plan()
        .log_targets
}

/// A leader serving its backend (or a follower) with the `logging` relation,
/// after its changed event.
fn related(leader: bool, units: &[(&str, &str)]) -> State {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let base = if leader {
        ready_leader(&pg)
    } else {
        unit(1, false)
    };
    let state = base.with_relation(logging(units));
    let (first, _) = units[0];
    go(
        &pg,
        &state,
        event::relation_changed(state.relation(LOGGING_ID).unwrap(), Some(first)),
    )
    .state
}

#[test]
fn a_loki_unit_becomes_a_log_target_labelled_with_the_topology() {
    let state = related(true, &[("loki/0", &endpoint(URL_0))]);
    let container = state.container(CONTAINER).unwrap();
    assert!(container
        .layers
        .iter()
        .any(|(label, _)| label == "pgbouncer-log-forwarding"));
    let target = &targets(&state)["loki/0"];
    assert_eq!(target.kind, "loki");
    assert_eq!(target.location, URL_0);
    assert_eq!(target.services, ["all"]);
    assert_eq!(target.labels["juju_unit"], "pgbouncer-k8s/0");
    assert_eq!(target.labels["juju_application"], "pgbouncer-k8s");
    assert_eq!(target.labels["juju_model"], "test");
    assert_eq!(target.labels["charm"], "pgbouncer-k8s");
    assert_eq!(target.labels["product"], "Juju");

    let bag = &state.relation(LOGGING_ID).unwrap().local_app_data;
    let metadata: Value = serde_json::from_str(&bag["metadata"]).unwrap();
    assert_eq!(metadata["application"], "pgbouncer-k8s");
    assert_eq!(metadata["charm_name"], "pgbouncer-k8s");
    assert_eq!(bag["alert_rules"], "{}");
    assert_eq!(state.unit_status, Status::Active(String::new()));
}

#[test]
fn a_follower_forwards_but_writes_no_application_bag() {
    let state = related(false, &[("loki/0", &endpoint(URL_0))]);
    assert_eq!(targets(&state)["loki/0"].location, URL_0);
    assert!(state
        .relation(LOGGING_ID)
        .unwrap()
        .local_app_data
        .is_empty());
}

#[test]
fn a_loki_unit_that_leaves_has_its_target_disabled() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut state = related(
        true,
        &[("loki/0", &endpoint(URL_0)), ("loki/1", &endpoint(URL_1))],
    );
    assert_eq!(targets(&state).len(), 2);
    let relation = state
        .relations
        .iter_mut()
        .find(|r| r.id == LOGGING_ID)
        .unwrap();
    relation.remote_units.remove("loki/0");
    let ev = event::relation_departed(state.relation(LOGGING_ID).unwrap(), "loki/0", "loki/0");
    let state = go(&pg, &state, ev).state;
    let targets = targets(&state);
    assert_eq!(targets["loki/0"].services, ["-all"]);
    assert!(targets["loki/0"].labels.is_empty());
    assert!(!targets["loki/0"].forwards("pgbouncer_0"));
    assert_eq!(targets["loki/1"].services, ["all"]);
    assert_eq!(targets["loki/1"].location, URL_1);
}

#[test]
fn the_relation_removed_disables_every_target() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = related(true, &[("loki/0", &endpoint(URL_0))]);
    let relation = state.relation(LOGGING_ID).unwrap().clone();
    let mut gone = state.clone();
    gone.relations.retain(|r| r.id != LOGGING_ID);
    let out = go(&pg, &gone, event::relation_broken(&relation));
    assert_eq!(targets(&out.state)["loki/0"].services, ["-all"]);
    // Once disabled, nothing more is added.
    let again = go(&pg, &out.state, event::update_status());
    let layer = |s: &State| {
        s.container(CONTAINER)
            .unwrap()
            .layers
            .iter()
            .find(|(label, _)| label == "pgbouncer-log-forwarding")
            .cloned()
    };
    assert_eq!(layer(&again.state), layer(&out.state));
}

#[test]
fn a_malformed_endpoint_changes_nothing_and_says_so() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut state = related(true, &[("loki/0", &endpoint(URL_0))]);
    let before = state.container(CONTAINER).unwrap().layers.clone();
    let relation = state
        .relations
        .iter_mut()
        .find(|r| r.id == LOGGING_ID)
        .unwrap();
    relation
        .remote_units
        .get_mut("loki/0")
        .unwrap()
        .insert("endpoint".into(), "http://not-json".into());
    let ev = event::relation_changed(state.relation(LOGGING_ID).unwrap(), Some("loki/0"));
    let out = go(&pg, &state, ev);
    assert_eq!(out.state.container(CONTAINER).unwrap().layers, before);
    assert_eq!(targets(&out.state)["loki/0"].location, URL_0);
    match &out.state.unit_status {
        Status::Active(m) => assert!(
            m.contains("logs not forwarded to loki/0") && m.contains("not JSON"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(out
        .state
        .logs
        .iter()
        .any(|(_, m)| m.contains("logs not forwarded to loki/0")));

    // A new unit with a bad endpoint gets no target at all.
    let state = unit(0, true).with_relation(logging(&[("loki/0", r#"{"url": 3100}"#)]));
    let ev = event::relation_changed(state.relation(LOGGING_ID).unwrap(), Some("loki/0"));
    let out = go(&pg, &state, ev);
    assert!(targets(&out.state).is_empty());
}

#[test]
fn a_container_that_comes_up_later_gets_its_targets_at_pebble_ready() {
    let pg = FakeConnector::up();
    let state = unit(0, true)
        .with_container(CONTAINER, ContainerState::unreachable())
        .with_relation(logging(&[("loki/0", &endpoint(URL_0))]));
    let ev = event::relation_changed(state.relation(LOGGING_ID).unwrap(), Some("loki/0"));
    let mut state = go(&pg, &state, ev).state;
    assert!(state.container(CONTAINER).unwrap().layers.is_empty());
    state.containers.insert(CONTAINER.into(), container());
    let state = go(&pg, &state, event::pebble_ready(CONTAINER)).state;
    assert_eq!(targets(&state)["loki/0"].location, URL_0);
}

#[test]
fn metrics_endpoint_carries_the_job_rules_and_the_units_address() {
    let pg = FakeConnector::up();
    let state = unit(0, true).with_relation(
        RelationState::new("metrics-endpoint", 10, "prometheus").remote_unit("prometheus/0", &[]),
    );
    let ev = event::relation_joined(state.relation(10).unwrap(), "prometheus/0");
    let out = go(&pg, &state, ev).state;
    let relation = out.relation(10).unwrap();
    let jobs: Value = serde_json::from_str(&relation.local_app_data["scrape_jobs"]).unwrap();
    assert_eq!(
        jobs,
        serde_json::json!([{"metrics_path": "/metrics", "static_configs": [{"targets": ["*:9127"]}]}])
    );
    let rules: Value = serde_json::from_str(&relation.local_app_data["alert_rules"]).unwrap();
    let names: Vec<&str> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("_HostHealth_rules")),
        "{names:?}"
    );
    assert!(names.len() >= 2, "{names:?}");
    let metadata: Value =
        serde_json::from_str(&relation.local_app_data["scrape_metadata"]).unwrap();
    assert_eq!(metadata["unit"], "pgbouncer-k8s/0");
    assert_eq!(
        relation.local_unit_data["prometheus_scrape_unit_name"],
        "pgbouncer-k8s/0"
    );
    assert!(!relation.local_unit_data["prometheus_scrape_unit_address"].is_empty());

    // A follower writes its own address only.
    let follower = unit(1, false).with_relation(
        RelationState::new("metrics-endpoint", 10, "prometheus").remote_unit("prometheus/0", &[]),
    );
    let ev = event::relation_joined(follower.relation(10).unwrap(), "prometheus/0");
    let out = go(&pg, &follower, ev).state;
    let relation = out.relation(10).unwrap();
    assert!(relation.local_app_data.is_empty());
    assert_eq!(
        relation.local_unit_data["prometheus_scrape_unit_name"],
        "pgbouncer-k8s/1"
    );
}

#[test]
fn grafana_dashboard_carries_the_dashboard_once() {
    let pg = FakeConnector::up();
    let state = unit(0, true).with_relation(RelationState::new("grafana-dashboard", 11, "grafana"));
    let out = go(
        &pg,
        &state,
        event::relation_created(state.relation(11).unwrap()),
    )
    .state;
    let text = out.relation(11).unwrap().local_app_data["dashboards"].clone();
    let dashboards: Value = serde_json::from_str(&text).unwrap();
    let template = &dashboards["templates"]["file:pgbouncer-metrics"];
    assert_eq!(template["charm"], "pgbouncer-k8s");
    assert!(!template["content"].as_str().unwrap().is_empty());
    assert!(dashboards["uuid"].is_string());
    let again = go(&pg, &out, event::config_changed()).state;
    assert_eq!(
        again.relation(11).unwrap().local_app_data["dashboards"],
        text,
        "unchanged dashboards are not resent"
    );
}

#[test]
fn a_serving_unit_rotates_each_process_log() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = ready_leader(&pg);
    let container = state.container(CONTAINER).unwrap();
    assert!(container.is_running(LOGROTATE_SERVICE));
    let config = container.file_text(LOGROTATE_CONFIG).unwrap();
    for i in 0..2 {
        assert!(
            config.contains(&format!("/var/log/pgbouncer/instance_{i}/pgbouncer.log {{")),
            "{config}"
        );
        assert!(config.contains(&format!(
            "kill -HUP \"$(cat /var/lib/pgbouncer/instance_{i}/pgbouncer.pid)\""
        )));
    }
    assert!(config.contains("maxsize 10240k") && config.contains("rotate 10"));
    assert!(config.contains("daily"));
    let command = &container.current_plan().services[LOGROTATE_SERVICE].command;
    assert!(command.contains(&format!(
        "logrotate -s /var/lib/pgbouncer/logrotate.status {LOGROTATE_CONFIG}"
    )));

    let mut options = state.clone();
    options
        .config
        .insert("log_rotation_size".into(), serde_json::json!(64));
    options
        .config
        .insert("log_rotation_files".into(), serde_json::json!(3));
    let out = go(&pg, &options, event::config_changed()).state;
    let config = out
        .container(CONTAINER)
        .unwrap()
        .file_text(LOGROTATE_CONFIG)
        .unwrap();
    assert!(
        config.contains("maxsize 64k") && config.contains("rotate 3"),
        "{config}"
    );
    assert!(out
        .container(CONTAINER)
        .unwrap()
        .is_running(LOGROTATE_SERVICE));
}
