//! The status collection: the flows' problems and the collection's checks are
//! candidates, and the most pressing one is shown (blocked over maintenance over
//! waiting over active; the first met among equals). A follower's hook for a
//! client relation created, joined or changed keeps the status it has; the
//! leader's collects it, and so does a follower's for a client relation
//! departing or broken.

#![allow(clippy::unwrap_used)]

mod support;

use charm::Status;
use charm_testing::{event, ContainerState, RelationState};
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::FakeConnector;
use support::*;

/// The leader, after refusing relation 8's request for an invalid database name.
fn refused_leader(pg: &FakeConnector) -> charm_testing::State {
    let state = ready_leader(pg).with_relation(
        RelationState::new("database", 8, "evil").remote_app_data(&[("database", "two words")]),
    );
    let out = go(
        pg,
        &state,
        event::relation_changed(state.relation(8).unwrap(), None),
    );
    assert!(matches!(out.state.unit_status, Status::Blocked(_)));
    out.state
}

#[test]
fn a_refused_request_outranks_waiting_for_the_container() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = refused_leader(&pg).with_container(CONTAINER, ContainerState::unreachable());
    let out = go(&pg, &state, event::update_status());
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(m.contains("invalid database name"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_request_outranks_a_problem_met_on_the_way() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = refused_leader(&pg).with_relation(client(4, "app_db", &[]));
    pg.0.borrow_mut().down = Some("connection refused".into());
    let out = go(
        &pg,
        &state,
        event::relation_changed(state.relation(4).unwrap(), None),
    );
    assert!(
        out.state
            .logs
            .iter()
            .any(|(_, m)| m.contains("cannot create database app_db")),
        "the problem is logged"
    );
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(m.contains("invalid database name"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_first_problem_met_is_shown() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = ready_leader(&pg)
        .with_relation(client(4, "first_db", &[]))
        .with_relation(client(5, "second_db", &[]));
    pg.0.borrow_mut().down = Some("connection refused".into());
    let state = go(
        &pg,
        &state,
        event::relation_changed(state.relation(4).unwrap(), None),
    )
    .state;
    let out = go(
        &pg,
        &state,
        event::relation_changed(state.relation(5).unwrap(), None),
    );
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(m.contains("cannot create database first_db"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_followers_client_relation_hooks_keep_its_status_and_a_break_collects_it() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = refused_leader(&pg);
    let evil = leader.relation(8).unwrap().clone();
    let follower = share_from_leader(&leader, with_backend(unit(1, false))).with_relation(evil);
    // Collected, the follower's status shows the leader's refusal.
    let mut kept = go(&pg, &follower, event::update_status()).state;
    match &kept.unit_status {
        Status::Blocked(m) => assert!(m.contains("invalid database name"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Set aside, to see whether a hook collects it again.
    let aside = Status::Maintenance("as it was".into());
    kept.unit_status = aside.clone();
    let relation = kept.relation(8).unwrap().clone();
    for ev in [
        event::relation_created(&relation),
        event::relation_joined(&relation, "evil/0"),
        event::relation_changed(&relation, None),
    ] {
        let out = go(&pg, &kept, ev.clone());
        assert_eq!(out.state.unit_status, aside, "{ev:?} on a follower");
    }
    // The relation broken: collected, and its refusal no longer shown.
    let out = go(&pg, &kept, event::relation_broken(&relation));
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
    // The leader's hook for the same relation collects it.
    let mut leader = leader;
    leader.unit_status = aside.clone();
    let relation = leader.relation(8).unwrap().clone();
    let out = go(&pg, &leader, event::relation_changed(&relation, None));
    assert!(matches!(out.state.unit_status, Status::Blocked(_)));
}
