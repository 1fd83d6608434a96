//! A planned switchover on the in-memory model: PgBouncer's units pause their
//! pools for PostgreSQL's request, acknowledge it, and resume once they serve
//! the new primary or their bound expires.

#![allow(clippy::unwrap_used)]

mod support;

use charm::Status;
use charm_testing::{event, ServiceOp, State};
use pebble_api::{NoticeQuery, Pebble};
use pgbouncer_k8s::flows::switchover::{PAUSE_EXPIRED_NOTICE, TIMER_SERVICE};
use pgbouncer_k8s::state::{
    BACKEND, PAUSE_ON_SWITCHOVER, SWITCHOVER_PAUSED, SWITCHOVER_PRIMARY, SWITCHOVER_REQUEST,
};
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::FakeConnector;
use support::*;

const CANDIDATE: &str = "postgresql-k8s/1";
const NEW_PRIMARY: &str = "10.0.1.2:5432";

fn backend(state: &mut State) -> &mut charm_testing::RelationState {
    state
        .relations
        .iter_mut()
        .find(|r| r.endpoint == BACKEND)
        .unwrap()
}

/// PostgreSQL's candidate shows a request (or none) in its unit bag.
fn with_request(mut state: State, id: Option<&str>) -> State {
    let bag = backend(&mut state)
        .remote_units
        .entry(CANDIDATE.into())
        .or_default();
    match id {
        Some(id) => {
            let request = serde_json::json!({
                "id": id, "candidate": CANDIDATE, "primary": NEW_PRIMARY, "deadline": 4_000_000_000u64,
            });
            bag.insert(SWITCHOVER_REQUEST.into(), request.to_string());
        }
        None => {
            bag.remove(SWITCHOVER_REQUEST);
        }
    }
    state
}

fn backend_changed(pg: &FakeConnector, state: &State) -> State {
    go(
        pg,
        state,
        event::relation_changed(state.relation(BACKEND_ID).unwrap(), Some(CANDIDATE)),
    )
    .state
}

fn signals(before: &State, after: &State, signal: &str) -> Vec<String> {
    let start = before.container(CONTAINER).unwrap().ops.len();
    after.container(CONTAINER).unwrap().ops[start..]
        .iter()
        .filter_map(|op| match op {
            ServiceOp::Signal(s, service) if s == signal => Some(service.clone()),
            _ => None,
        })
        .collect()
}

fn own_backend_bag(state: &State) -> &charm::Databag {
    &state.relation(BACKEND_ID).unwrap().local_unit_data
}

/// The leader, serving a client's database.
fn serving_leader(pg: &FakeConnector) -> State {
    let s = ready_leader(pg).with_relation(client(4, "app_db", &[]));
    go(
        pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state
}

/// The leader, paused for request `r1`.
fn paused_leader(pg: &FakeConnector) -> State {
    let s = with_request(serving_leader(pg), Some("r1"));
    backend_changed(pg, &s)
}

#[test]
fn every_unit_says_it_pauses_on_a_switchover() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    assert_eq!(
        own_backend_bag(&s)
            .get(PAUSE_ON_SWITCHOVER)
            .map(String::as_str),
        Some("true")
    );
    let follower = with_backend(unit(1, false));
    let out = go(
        &pg,
        &follower,
        event::relation_created(follower.relation(BACKEND_ID).unwrap()),
    );
    assert_eq!(
        own_backend_bag(&out.state)
            .get(PAUSE_ON_SWITCHOVER)
            .map(String::as_str),
        Some("true")
    );
}

#[test]
fn a_new_request_pauses_every_process_acknowledges_and_arms_the_bound() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let before = with_request(serving_leader(&pg), Some("r1"));
    let after = backend_changed(&pg, &before);
    assert_eq!(
        signals(&before, &after, "SIGUSR1"),
        ["pgbouncer_0", "pgbouncer_1"]
    );
    let bag = own_backend_bag(&after);
    assert_eq!(bag.get(SWITCHOVER_PAUSED).map(String::as_str), Some("r1"));
    assert_eq!(
        bag.get(SWITCHOVER_PRIMARY).map(String::as_str),
        Some(NEW_PRIMARY)
    );
    let container = after.container(CONTAINER).unwrap();
    let timer = &container.running[TIMER_SERVICE];
    assert!(
        timer
            .command
            .ends_with(&format!(" 45 {PAUSE_EXPIRED_NOTICE} r1")),
        "{}",
        timer.command
    );
    assert_eq!(
        after.unit_status,
        Status::Maintenance(format!(
            "pools paused for a switchover: waiting to serve {NEW_PRIMARY}"
        ))
    );
}

#[test]
fn a_request_already_acknowledged_is_held() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let paused = paused_leader(&pg);
    let again = backend_changed(&pg, &paused);
    assert!(signals(&paused, &again, "SIGUSR1").is_empty());
    assert!(signals(&paused, &again, "SIGUSR2").is_empty());
    assert_eq!(
        own_backend_bag(&again)
            .get(SWITCHOVER_PAUSED)
            .map(String::as_str),
        Some("r1")
    );
}

#[test]
fn the_request_gone_before_the_new_primary_is_served_keeps_the_pause() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let paused = paused_leader(&pg);
    let gone = with_request(paused.clone(), None);
    let after = backend_changed(&pg, &gone);
    assert!(signals(&gone, &after, "SIGUSR2").is_empty());
    assert_eq!(
        own_backend_bag(&after)
            .get(SWITCHOVER_PAUSED)
            .map(String::as_str),
        Some("r1")
    );
}

#[test]
fn the_unit_resumes_once_the_request_is_gone_and_it_serves_the_new_primary() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let paused = paused_leader(&pg);
    let mut switched = with_request(paused, None);
    backend(&mut switched)
        .remote_app_data
        .insert("endpoints".into(), NEW_PRIMARY.into());
    let after = backend_changed(&pg, &switched);
    assert!(ini(&after, 0).contains("app_db = host=10.0.1.2 port=5432"));
    assert_eq!(
        signals(&switched, &after, "SIGUSR2"),
        ["pgbouncer_0", "pgbouncer_1"]
    );
    let bag = own_backend_bag(&after);
    assert_eq!(bag.get(SWITCHOVER_PAUSED), None);
    assert_eq!(bag.get(SWITCHOVER_PRIMARY), None);
    let start = switched.container(CONTAINER).unwrap().ops.len();
    assert!(after.container(CONTAINER).unwrap().ops[start..]
        .contains(&ServiceOp::Stop(TIMER_SERVICE.into())));
    assert!(after
        .logs
        .iter()
        .any(|(_, m)| m.contains("pools resumed: it serves the new primary")));
    assert_eq!(after.unit_status, Status::Active(String::new()));
}

fn expiry(state: &State, id: &str) -> (State, charm::Event) {
    let mut state = state.clone();
    let container = state.containers.get_mut(CONTAINER).unwrap();
    *container = container
        .clone()
        .with_notice(PAUSE_EXPIRED_NOTICE, &[("id", id)]);
    let notice = container
        .notices(&NoticeQuery::default())
        .unwrap()
        .into_iter()
        .find(|n| n.key == PAUSE_EXPIRED_NOTICE)
        .unwrap();
    let ev = event::pebble_custom_notice(CONTAINER, &notice);
    (state, ev)
}

#[test]
fn the_bound_resumes_whatever_happened() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let paused = paused_leader(&pg);
    let (s, ev) = expiry(&paused, "r1");
    let after = go(&pg, &s, ev).state;
    assert_eq!(
        signals(&s, &after, "SIGUSR2"),
        ["pgbouncer_0", "pgbouncer_1"]
    );
    assert_eq!(own_backend_bag(&after).get(SWITCHOVER_PAUSED), None);
    assert!(after
        .logs
        .iter()
        .any(|(_, m)| m.contains("paused for 45 s without serving 10.0.1.2:5432")));
}

#[test]
fn the_bound_of_an_earlier_pause_is_ignored() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let paused = paused_leader(&pg);
    let (s, ev) = expiry(&paused, "r0");
    let after = go(&pg, &s, ev).state;
    assert!(signals(&s, &after, "SIGUSR2").is_empty());
    assert_eq!(
        own_backend_bag(&after)
            .get(SWITCHOVER_PAUSED)
            .map(String::as_str),
        Some("r1")
    );
}

fn peers_changed(pg: &FakeConnector, state: &State) -> State {
    go(
        pg,
        state,
        event::relation_changed(state.relation(PEER_ID).unwrap(), None),
    )
    .state
}

#[test]
fn a_follower_resumes_once_it_serves_the_leaders_new_configuration() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = serving_leader(&pg);
    let follower = peers_changed(
        &pg,
        &share_from_leader(&leader, with_backend(unit(1, false))),
    );
    assert!(ini(&follower, 0).contains("app_db = host=10.0.1.1 port=5432"));
    // The request: the follower pauses like the leader.
    let asked = with_request(follower, Some("r1"));
    let paused = backend_changed(&pg, &asked);
    assert_eq!(
        signals(&asked, &paused, "SIGUSR1"),
        ["pgbouncer_0", "pgbouncer_1"]
    );
    // PostgreSQL switched over and published the new primary: the follower
    // still serves the leader's old configuration, and holds.
    let mut switched = with_request(paused, None);
    backend(&mut switched)
        .remote_app_data
        .insert("endpoints".into(), NEW_PRIMARY.into());
    let held = backend_changed(&pg, &switched);
    assert!(signals(&switched, &held, "SIGUSR2").is_empty());
    // The leader publishes the new configuration; the follower serves it and
    // resumes.
    let mut new_leader = with_request(leader, None);
    backend(&mut new_leader)
        .remote_app_data
        .insert("endpoints".into(), NEW_PRIMARY.into());
    let new_leader = backend_changed(&pg, &new_leader);
    let shared = share_from_leader(&new_leader, held);
    let resumed = peers_changed(&pg, &shared);
    assert!(ini(&resumed, 0).contains("app_db = host=10.0.1.2 port=5432"));
    assert_eq!(
        signals(&shared, &resumed, "SIGUSR2"),
        ["pgbouncer_0", "pgbouncer_1"]
    );
    assert_eq!(own_backend_bag(&resumed).get(SWITCHOVER_PAUSED), None);
}
