//! A planned switchover on the in-memory model: `promote-to-primary` waits
//! for the poolers that pause (PgBouncer) and switches over once each one
//! acknowledged, or at its deadline.

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, Status};
use charm_testing::{event, RelationState, State};
use pebble_api::{NoticeQuery, Pebble};
use postgresql_k8s::flows::switchover::{DEADLINE_NOTICE, TIMER_SERVICE};
use postgresql_k8s::state::{DATABASE, PAUSE_ON_SWITCHOVER, SWITCHOVER_PAUSED, SWITCHOVER_REQUEST};
use postgresql_k8s::workload::CONTAINER;
use serde_json::json;
use support::*;

const CLIENT_ID: u64 = 5;
const POOLER: &str = "pgbouncer-k8s/0";

fn cluster() -> World {
    World::new(&[
        (0, "leader", "running"),
        (1, "sync_standby", "streaming"),
        (2, "replica", "streaming"),
    ])
}

/// Unit `n` of the three-member cluster, related to a pooler whose unit bag
/// holds `pooler`.
fn related_unit(n: u32, pooler: &[(&str, &str)]) -> State {
    let others: Vec<u32> = (0..3).filter(|m| *m != n).collect();
    initialised(with_peers(unit(n, false), &others), &[0, 1, 2]).with_relation(
        RelationState::new(DATABASE, CLIENT_ID, "pgbouncer-k8s")
            .remote_app_data(&[("database", "pgbouncer")])
            .remote_unit(POOLER, pooler),
    )
}

fn pausing() -> Vec<(&'static str, &'static str)> {
    vec![(PAUSE_ON_SWITCHOVER, "true")]
}

fn client(state: &mut State) -> &mut RelationState {
    state
        .relations
        .iter_mut()
        .find(|r| r.id == CLIENT_ID)
        .unwrap()
}

fn own_bag(state: &State) -> &charm::Databag {
    &state.relation(CLIENT_ID).unwrap().local_unit_data
}

/// The candidate (unit 1) with request `r1`, due at `deadline`, and the
/// pooler's acknowledgement when `acknowledged`.
fn waiting_candidate(deadline: u64, acknowledged: bool) -> State {
    let mut pooler = pausing();
    if acknowledged {
        pooler.push((SWITCHOVER_PAUSED, "r1"));
    }
    let mut s = related_unit(1, &pooler);
    let request = json!({
        "id": "r1", "candidate": unit_name(1), "primary": format!("{}:5432", addr(1)),
        "deadline": deadline,
    });
    client(&mut s)
        .local_unit_data
        .insert(SWITCHOVER_REQUEST.into(), request.to_string());
    s
}

fn changed(state: &State) -> Event {
    event::relation_changed(state.relation(CLIENT_ID).unwrap(), Some(POOLER))
}

#[test]
fn without_a_pooler_that_pauses_the_switchover_is_at_once() {
    let w = cluster();
    let s = related_unit(1, &[]);
    let out = w.action(&s, "promote-to-primary", json!({"scope": "unit"}));
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["result"],
        "postgresql-k8s/1 is the primary"
    );
    assert_eq!(
        w.patroni.cluster_state().switchovers,
        [(member(0), Some(member(1)))]
    );
    assert_eq!(own_bag(&out.state).get(SWITCHOVER_REQUEST), None);
}

#[test]
fn with_a_pooler_that_pauses_the_switchover_is_scheduled() {
    let w = cluster();
    let s = related_unit(1, &pausing());
    let out = w.action(&s, "promote-to-primary", json!({"scope": "unit"}));
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["result"],
        "switchover to postgresql-k8s/1 scheduled: pausing 1 pooler units first"
    );
    assert_eq!(out.action.results["poolers"], "1");
    assert!(w.patroni.cluster_state().switchovers.is_empty());
    let request: serde_json::Value =
        serde_json::from_str(&own_bag(&out.state)[SWITCHOVER_REQUEST]).unwrap();
    assert_eq!(request["candidate"], unit_name(1));
    assert_eq!(request["primary"], format!("{}:5432", addr(1)));
    assert_eq!(request["id"], out.action.results["request"]);
    let timer = &out.state.container(CONTAINER).unwrap().running[TIMER_SERVICE];
    assert!(
        timer.command.ends_with(&format!(
            " 16 {DEADLINE_NOTICE} {}",
            out.action.results["request"]
        )),
        "{}",
        timer.command
    );
    // A second request while this one is pending is refused.
    let again = w.action(&out.state, "promote-to-primary", json!({"scope": "unit"}));
    assert_eq!(
        again.action.failure.as_deref(),
        Some("A switchover to this unit is already scheduled")
    );
}

#[test]
fn a_replica_that_is_not_a_synchronous_standby_is_refused_before_any_pause() {
    let w = cluster();
    let s = related_unit(2, &pausing());
    let out = w.action(&s, "promote-to-primary", json!({"scope": "unit"}));
    assert_eq!(
        out.action.failure.as_deref(),
        Some("Unit is not sync standby")
    );
    assert_eq!(own_bag(&out.state).get(SWITCHOVER_REQUEST), None);
}

#[test]
fn the_candidate_waits_while_a_pooler_has_not_acknowledged() {
    let w = cluster();
    let s = waiting_candidate(4_000_000_000, false);
    let out = w.go(&s, changed(&s));
    assert!(w.patroni.cluster_state().switchovers.is_empty());
    assert!(own_bag(&out.state).get(SWITCHOVER_REQUEST).is_some());
    assert_eq!(
        out.state.unit_status,
        Status::Maintenance(
            "switchover to this unit: waiting for 1 of 1 pooler units to pause".into()
        )
    );
}

#[test]
fn the_candidate_switches_over_once_every_pooler_acknowledged() {
    let w = cluster();
    let s = waiting_candidate(4_000_000_000, true);
    let out = w.go(&s, changed(&s));
    assert_eq!(
        w.patroni.cluster_state().switchovers,
        [(member(0), Some(member(1)))]
    );
    assert_eq!(own_bag(&out.state).get(SWITCHOVER_REQUEST), None);
    assert!(logged(
        &out.state,
        "switchover r1: postgresql-k8s/1 is the primary"
    ));
    assert!(!logged(&out.state, "by the deadline"));
}

#[test]
fn the_candidate_switches_over_at_its_deadline_with_a_warning() {
    let w = cluster();
    let mut s = waiting_candidate(1, false);
    let container = s.containers.get_mut(CONTAINER).unwrap();
    *container = container
        .clone()
        .with_notice(DEADLINE_NOTICE, &[("id", "r1")]);
    let notice = container
        .notices(&NoticeQuery::default())
        .unwrap()
        .remove(0);
    let out = w.go(&s, event::pebble_custom_notice(CONTAINER, &notice));
    assert_eq!(
        w.patroni.cluster_state().switchovers,
        [(member(0), Some(member(1)))]
    );
    assert_eq!(own_bag(&out.state).get(SWITCHOVER_REQUEST), None);
    assert!(logged(
        &out.state,
        "switchover r1: no acknowledgement from pgbouncer-k8s/0 by the deadline; switching over"
    ));
}
