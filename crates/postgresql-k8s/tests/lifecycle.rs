//! Bootstrap, the DCS choice and configuration on the in-memory model.

mod support;

use charm::{Event, Status};
use charm_testing::event;
use postgresql_k8s::state;
use postgresql_k8s::workload::{CONTAINER, SERVICE};
use support::*;

fn pebble_ready() -> Event {
    event::pebble_ready(CONTAINER)
}

#[test]
fn the_first_leader_founds_and_initialises_the_cluster() {
    let w = World::new(&[(0, "leader", "running")]);
    w.patroni.0.borrow_mut().password = None;
    let mut s = unit(0, true);
    s.secrets.clear();
    let out = w.go(&s, pebble_ready());
    let secret = out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .expect("passwords created");
    let content = secret.latest_content().unwrap();
    for user in state::SECRET_USERS {
        assert_eq!(
            content.get(&state::password_key(user)).unwrap().len(),
            24,
            "{user}"
        );
    }
    assert_eq!(members(&out.state), [addr(0)]);
    assert_eq!(peer_app(&out.state)[state::CLUSTER_INITIALISED], "True");
    assert!(out.state.container(CONTAINER).unwrap().is_running(SERVICE));
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
    assert!(out.state.deferred.is_empty());
    assert_eq!(
        patroni_doc(&out.state)["restapi"]["authentication"]["password"],
        content.get("patroni-password").unwrap()
    );
    assert!(peer_app(&out.state)
        .values()
        .all(|v| !v.contains(content.get("operator-password").unwrap())));
}

#[test]
fn the_leader_waits_for_its_member_to_start() {
    let w = World::new(&[(0, "leader", "starting")]);
    let out = w.go(&unit(0, true), pebble_ready());
    assert_eq!(out.state.deferred.len(), 1);
    assert_eq!(
        out.state.unit_status,
        Status::Waiting("awaiting for member to start".into())
    );
    assert!(!peer_app(&out.state).contains_key(state::CLUSTER_INITIALISED));
}

#[test]
fn a_follower_starts_nothing_before_the_cluster_is_initialised() {
    let w = World::new(&[(0, "leader", "running")]);
    let s = with_peers(unit(1, false), &[0]);
    let out = w.go(&s, pebble_ready());
    assert_eq!(out.state.deferred.len(), 1);
    assert!(!out.state.container(CONTAINER).unwrap().is_running(SERVICE));
    assert_eq!(
        out.state.unit_status,
        Status::Waiting("waiting for the leader to initialise the cluster".into())
    );
}

#[test]
fn without_a_dcs_the_unit_blocks_with_an_actionable_message() {
    let w = World::new(&[]);
    let out = w.go(&unit_without_etcd(0, true), pebble_ready());
    assert_eq!(
        out.state.unit_status,
        Status::Blocked("waiting for a DCS: integrate with etcd".into())
    );
    assert_eq!(patroni_yml(&out.state), None);
}

#[test]
fn an_etcd_without_endpoints_is_waited_for() {
    let w = World::new(&[]);
    let mut s = unit(0, true);
    s.relations
        .iter_mut()
        .find(|r| r.id == ETCD_ID)
        .unwrap()
        .remote_app_data
        .clear();
    let out = w.go(&s, pebble_ready());
    assert_eq!(
        out.state.unit_status,
        Status::Waiting("waiting for etcd to publish its endpoints".into())
    );
    assert_eq!(patroni_yml(&out.state), None);
}

#[test]
fn new_etcd_endpoints_reach_patroni_yml() {
    let w = World::new(&[(0, "leader", "running")]);
    let first = w
        .go(&initialised(unit(0, true), &[0]), pebble_ready())
        .state;
    let mut s = first;
    s.relations
        .iter_mut()
        .find(|r| r.id == ETCD_ID)
        .unwrap()
        .remote_app_data = charm_testing::bag(&[("endpoints", "http://127.0.2.9:2379")]);
    let out = w.go(
        &s,
        event::relation_changed(s.relation(ETCD_ID).unwrap(), None),
    );
    let doc = patroni_doc(&out.state);
    assert_eq!(
        doc["etcd3"]["hosts"],
        serde_json::json!(["127.0.2.9:2379"]),
        "{doc}"
    );
}

#[test]
fn an_invalid_option_blocks_naming_it_and_applies_nothing() {
    let w = World::new(&[(0, "leader", "running")]);
    let running = w
        .go(&initialised(unit(0, true), &[0]), pebble_ready())
        .state;
    let before = patroni_yml(&running);
    let patches = w.patroni.cluster_state().patches.len();
    for (option, value) in [
        ("synchronous_node_count", serde_json::json!("several")),
        ("durability_synchronous_commit", serde_json::json!("off")),
        ("experimental_max_connections", serde_json::json!(0)),
        ("profile", serde_json::json!("fast")),
    ] {
        let mut s = running.clone();
        s.config.insert(option.into(), value);
        let out = w.go(&s, Event::ConfigChanged);
        match &out.state.unit_status {
            Status::Blocked(m) => assert!(m.contains(option), "{m}"),
            other => panic!("{option}: {other:?}"),
        }
        assert_eq!(patroni_yml(&out.state), before, "{option}: nothing applied");
        assert_eq!(w.patroni.cluster_state().patches.len(), patches);
    }
}

#[test]
fn a_valid_option_reaches_patroni_and_the_cluster() {
    let w = World::new(&[(0, "leader", "running")]);
    let mut s = w
        .go(&initialised(unit(0, true), &[0]), pebble_ready())
        .state;
    s.config.insert(
        "durability_synchronous_commit".into(),
        "remote_apply".into(),
    );
    s.config
        .insert("experimental_max_connections".into(), 300.into());
    let out = w.go(&s, Event::ConfigChanged);
    let parameters = &patroni_doc(&out.state)["postgresql"]["parameters"];
    assert_eq!(
        parameters["synchronous_commit"], "remote_apply",
        "{parameters}"
    );
    assert_eq!(parameters["max_connections"], 300, "{parameters}");
    let patch = w.patroni.cluster_state().patches.last().cloned().unwrap();
    assert_eq!(
        patch["postgresql"]["parameters"]["synchronous_commit"],
        "remote_apply"
    );
    assert_eq!(patch["postgresql"]["parameters"]["max_connections"], 300);
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
}

#[test]
fn a_new_leader_forgets_units_that_are_gone() {
    let w = World::new(&[(1, "leader", "running")]);
    let s = initialised(unit(1, true), &[0, 1]);
    let out = w.go(&s, Event::LeaderElected);
    assert_eq!(members(&out.state), [addr(1)]);
}
