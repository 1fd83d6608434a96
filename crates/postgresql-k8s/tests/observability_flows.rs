//! The observability flows on the in-memory model: `logging` (each Loki unit a
//! Pebble log target of the postgresql container, so Patroni's output, with
//! PostgreSQL's, and the exporter's reach Loki; the leader's topology in the
//! relation), `metrics-endpoint` (the exporter's and Patroni's jobs) and
//! `grafana-dashboard`.
//!
//! | flow, branch | test |
//! |---|---|
//! | logging: a provider unit publishes its endpoint | `a_loki_unit_becomes_a_log_target_of_the_postgresql_container` |
//! | logging: a provider unit leaves | `a_loki_unit_that_leaves_has_its_target_disabled` |
//! | logging: a malformed endpoint | `a_malformed_endpoint_changes_nothing_and_says_so` |
//! | metrics-endpoint: both jobs and the unit's address | `metrics_endpoint_carries_the_exporter_and_patroni_jobs` |
//! | grafana-dashboard: the dashboard | `grafana_dashboard_carries_the_dashboard` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::Status;
use charm_testing::{event, RelationState, State};
use cos_interface::logging::LOGGING;
use pebble_api::LogTarget;
use postgresql_k8s::workload::CONTAINER;
use serde_json::Value;
use std::collections::BTreeMap;
use support::*;

const LOGGING_ID: u64 = 9;
const URL: &str = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push";

fn logging(units: &[(&str, &str)]) -> RelationState {
    let mut relation = RelationState::new(LOGGING, LOGGING_ID, "loki");
    for (unit, value) in units {
        relation = relation.remote_unit(unit, &[("endpoint", value)]);
    }
    relation
}

fn targets(state: &State) -> BTreeMap<String, LogTarget> {
    state
        .container(CONTAINER)
        .unwrap()
        .current_plan()
        .log_targets
}

/// An initialised primary, after the `logging` relation's changed event.
fn joined(w: &World, endpoint: &str) -> State {
    let state = initialised(unit(0, true), &[0]).with_relation(logging(&[("loki/0", endpoint)]));
    let ev = event::relation_changed(state.relation(LOGGING_ID).unwrap(), Some("loki/0"));
    w.go(&state, ev).state
}

#[test]
fn a_loki_unit_becomes_a_log_target_of_the_postgresql_container() {
    let w = World::new(&[(0, "leader", "running")]);
    let state = joined(&w, &serde_json::json!({ "url": URL }).to_string());
    let target = &targets(&state)["loki/0"];
    assert_eq!(target.location, URL);
    assert_eq!(target.services, ["all"]);
    assert!(target.forwards("postgresql") && target.forwards("metrics_server"));
    assert_eq!(target.labels["juju_unit"], unit_name(0));
    assert_eq!(target.labels["charm"], "postgresql-k8s");
    let bag = &state.relation(LOGGING_ID).unwrap().local_app_data;
    let metadata: Value = serde_json::from_str(&bag["metadata"]).unwrap();
    assert_eq!(metadata["charm_name"], "postgresql-k8s");
    assert_eq!(bag["alert_rules"], "{}");
}

#[test]
fn a_loki_unit_that_leaves_has_its_target_disabled() {
    let w = World::new(&[(0, "leader", "running")]);
    let mut state = joined(&w, &serde_json::json!({ "url": URL }).to_string());
    let relation = state
        .relations
        .iter_mut()
        .find(|r| r.id == LOGGING_ID)
        .unwrap();
    relation.remote_units.clear();
    let ev = event::relation_departed(state.relation(LOGGING_ID).unwrap(), "loki/0", "loki/0");
    let state = w.go(&state, ev).state;
    let target = &targets(&state)["loki/0"];
    assert_eq!(target.services, ["-all"]);
    assert_eq!(target.location, URL);
}

#[test]
fn a_malformed_endpoint_changes_nothing_and_says_so() {
    let w = World::new(&[(0, "leader", "running")]);
    let state = joined(&w, r#"{"url": "loki:3100"}"#);
    assert!(targets(&state).is_empty());
    assert!(logged(&state, "logs not forwarded to loki/0"));
    assert!(
        !matches!(state.unit_status, Status::Blocked(_)),
        "a bad endpoint does not block the unit: {:?}",
        state.unit_status
    );
}

#[test]
fn metrics_endpoint_carries_the_exporter_and_patroni_jobs() {
    let w = World::new(&[(0, "leader", "running")]);
    let state = unit(0, true).with_relation(
        RelationState::new("metrics-endpoint", 10, "prometheus").remote_unit("prometheus/0", &[]),
    );
    let ev = event::relation_joined(state.relation(10).unwrap(), "prometheus/0");
    let out = w.go(&state, ev).state;
    let relation = out.relation(10).unwrap();
    let jobs: Value = serde_json::from_str(&relation.local_app_data["scrape_jobs"]).unwrap();
    let targets: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["static_configs"][0]["targets"][0].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["*:9187", "*:8008"]);
    assert_eq!(jobs[1]["scheme"], "http");
    let rules: Value = serde_json::from_str(&relation.local_app_data["alert_rules"]).unwrap();
    let rules = rules.to_string();
    assert!(rules.contains("PatroniNoPrimary") && rules.contains("PostgreSQLDown"));
    assert_eq!(
        relation.local_unit_data["prometheus_scrape_unit_address"],
        addr(0)
    );
}

#[test]
fn grafana_dashboard_carries_the_dashboard() {
    let w = World::new(&[(0, "leader", "running")]);
    let state = unit(0, true).with_relation(RelationState::new("grafana-dashboard", 11, "grafana"));
    let out = w
        .go(&state, event::relation_created(state.relation(11).unwrap()))
        .state;
    let dashboards: Value =
        serde_json::from_str(&out.relation(11).unwrap().local_app_data["dashboards"]).unwrap();
    assert_eq!(
        dashboards["templates"]["file:postgresql-metrics"]["charm"],
        "postgresql-k8s"
    );
}
