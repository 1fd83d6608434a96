//! The etcd charm on the in-memory model.

#![allow(clippy::unwrap_used)]

use charm::backend::JsonMap;
use charm::{Event, Status};
use charm_testing::{event, run, CharmState, ContainerState, RelationState, State};
use etcd_charm::*;
use serde_json::json;

fn config(client: i64, peer: i64) -> JsonMap {
    json!({"client-port": client, "peer-port": peer})
        .as_object()
        .unwrap()
        .clone()
}

/// The leader or a follower as Juju deploys it (the default ports, the
/// container up), with a client related.
fn unit(leader: bool) -> State {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charms/etcd");
    let mut s = State::from_charm_dir(dir, "etcd/0")
        .unwrap()
        .leader(leader)
        .with_relation(
            RelationState::new(ETCD, 3, "postgresql-k8s").remote_unit("postgresql-k8s/0", &[]),
        );
    s.address = "127.0.1.1".into();
    s
}

fn pebble_ready() -> Event {
    event::pebble_ready(CONTAINER)
}

#[test]
fn the_leader_runs_etcd_on_its_address_and_tells_clients() {
    let out = run(&mut EtcdCharm, &unit(true), pebble_ready()).unwrap();
    let etcd = out.state.container(CONTAINER).unwrap();
    let service = etcd.running.get(SERVICE).expect("etcd runs");
    assert!(service
        .command
        .contains("--listen-client-urls=http://127.0.1.1:2379"));
    assert!(service
        .command
        .contains("--initial-cluster=etcd-0=http://127.0.1.1:2380"));
    assert_eq!(service.user, USER);
    assert!(etcd.dirs.contains(DATA_DIR));
    let bag = &out.state.relation(3).unwrap().local_app_data;
    assert_eq!(
        bag.get(ENDPOINTS).map(String::as_str),
        Some("http://127.0.1.1:2379")
    );
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn a_follower_stands_by_and_runs_nothing() {
    let out = run(&mut EtcdCharm, &unit(false), pebble_ready()).unwrap();
    assert!(out.state.container(CONTAINER).unwrap().running.is_empty());
    assert!(out.state.relation(3).unwrap().local_app_data.is_empty());
    assert_eq!(
        out.state.unit_status,
        Status::Active("standby: etcd runs on the leader unit".into())
    );
}

#[test]
fn a_new_client_gets_the_endpoints() {
    let state = unit(true);
    let joined = event::relation_joined(state.relation(3).unwrap(), "postgresql-k8s/0");
    let out = run(&mut EtcdCharm, &state, joined).unwrap();
    let bag = &out.state.relation(3).unwrap().local_app_data;
    assert_eq!(
        bag.get(ENDPOINTS).map(String::as_str),
        Some("http://127.0.1.1:2379")
    );
}

#[test]
fn invalid_ports_block_with_the_option_and_apply_nothing() {
    for (client, peer, option) in [
        (80, 2380, "client-port"),
        (2379, 70000, "peer-port"),
        (2379, 2379, "peer-port must differ"),
    ] {
        let state = unit(true).with_config(config(client, peer));
        let out = run(&mut EtcdCharm, &state, Event::ConfigChanged).unwrap();
        match &out.state.unit_status {
            Status::Blocked(m) => assert!(m.contains(option), "{m}"),
            other => panic!("{client}/{peer}: {other:?}"),
        }
        let etcd = out.state.container(CONTAINER).unwrap();
        assert!(etcd.layers.is_empty() && etcd.running.is_empty());
        assert!(out.state.relation(3).unwrap().local_app_data.is_empty());
    }
}

#[test]
fn without_its_container_the_leader_waits() {
    let state = unit(true).with_container(CONTAINER, ContainerState::unreachable());
    let out = run(&mut EtcdCharm, &state, Event::ConfigChanged).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Waiting("waiting for the etcd container".into())
    );
}

#[test]
fn a_stopped_service_shows_in_the_status() {
    let mut state = unit(true);
    state.containers.get_mut(CONTAINER).unwrap().layers.push((
        "etcd".into(),
        layer("etcd/0", "127.0.1.1", Config::validate(2379, 2380).unwrap()),
    ));
    let out = run(&mut EtcdCharm, &state, Event::UpdateStatus).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Maintenance("etcd is not running".into())
    );
}
