//! The application's Kubernetes Service on the in-memory model, with the
//! Kubernetes API faked at the adapter ([`FakeServices`]).
//!
//! k8s-service (leader, before the event's flow):
//!
//! | node or branch | test |
//! |---|---|
//! | off Kubernetes → nothing recorded, clients get unit addresses, the port is opened | `off_kubernetes_nothing_changes_and_the_port_is_opened` |
//! | a follower → no API call | `a_follower_leaves_the_service_to_the_leader` |
//! | `expose-external=false` → ClusterIP created; clients get its cluster DNS name | `cluster_ip_by_default_clients_get_the_services_dns_name` |
//! | nodeport → each unit's node with the node port | `nodeport_clients_get_each_nodes_address_with_the_node_port` |
//! | nodeport, no pod scheduled yet → waiting | `nodeport_waits_for_the_nodes_addresses` |
//! | loadbalancer without an address → waiting, clients told nothing new | `a_load_balancer_without_an_address_waits_and_clients_keep_what_they_had` |
//! | loadbalancer address appears → clients get it at update-status; annotations on it alone | `the_load_balancers_address_reaches_clients_at_update_status` |
//! | the option changes → the Service is patched | `a_changed_option_patches_the_service` |
//! | annotations someone else added → kept, no patch | `annotations_others_added_are_left_alone` |
//! | the API refuses the patch (422) → deleted and created | `a_type_change_the_api_refuses_is_made_by_delete_and_create` |
//! | 403 → blocked naming `juju trust`, the hook succeeds | `forbidden_blocks_with_the_trust_command_and_fails_no_hook` |
//! | another API error → waiting, retried at update-status | `another_api_error_waits_and_is_retried_at_update_status` |
//! | a new `listen_port` → the Service's port and the open port move | `a_new_listen_port_moves_the_service_port_and_the_open_port` |
//! | credentials still wait for every unit | `on_kubernetes_credentials_still_wait_for_every_unit` |
//!
//! remove:
//!
//! | node or branch | test |
//! |---|---|
//! | the application goes (no unit planned) → the Service is deleted | `removing_the_last_unit_deletes_the_service` |
//! | units remain → kept | `removing_one_unit_of_several_keeps_the_service` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::backend::Port;
use charm::{Event, Status};
use charm_testing::{bag, event, run, Output, State};
use k8s_incluster::ServiceType;
use pgbouncer_k8s::flows::expose::{Exposure, EXPOSURE};
use pgbouncer_k8s::state::{self, PEERS};
use postgres_admin::testing::FakeConnector;
use support::services::{FakeServices, NODE_PORT};
use support::*;

const SERVICE: &str = "pgbouncer-k8s-service";
const DNS: &str = "pgbouncer-k8s-service.test.svc.cluster.local:6432";

fn k8s(pg: &FakeConnector, api: &FakeServices, state: &State, event: Event) -> Output {
    let mut charm = charm(pg).with_services(api.boxed());
    run(&mut charm, state, event).unwrap_or_else(|f| panic!("{f}"))
}

fn with_option(mut state: State, key: &str, value: serde_json::Value) -> State {
    state.config.insert(key.into(), value);
    state
}

fn exposure(state: &State) -> Option<Exposure> {
    peer_app(state)
        .get(EXPOSURE)
        .map(|v| serde_json::from_str(v).unwrap())
}

fn client_bag(state: &State) -> &charm::Databag {
    &state.relation(4).unwrap().local_app_data
}

/// A ready leader on Kubernetes, after config-changed, with client 4 answered.
fn answered(pg: &FakeConnector, api: &FakeServices, leader: State) -> State {
    let state = k8s(pg, api, &leader, event::config_changed()).state;
    let state = state.with_relation(client(4, "app_db", &[]));
    k8s(
        pg,
        api,
        &state,
        event::relation_changed(state.relation(4).unwrap(), None),
    )
    .state
}

#[test]
fn off_kubernetes_nothing_changes_and_the_port_is_opened() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = go(&pg, &ready_leader(&pg), event::config_changed()).state;
    assert_eq!(exposure(&state), None);
    assert!(state.opened_ports.contains(&Port::tcp(6432)));
    let state = state.with_relation(client(4, "app_db", &[]));
    let out = go(
        &pg,
        &state,
        event::relation_changed(state.relation(4).unwrap(), None),
    );
    assert_eq!(client_bag(&out.state)["endpoints"], "10.0.0.10:6432");
}

#[test]
fn a_follower_leaves_the_service_to_the_leader() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let follower = with_backend(unit(1, false));
    for ev in [event::config_changed(), event::update_status()] {
        k8s(&pg, &api, &follower, ev);
    }
    assert!(api.calls.borrow().is_empty(), "{:?}", api.calls.borrow());
}

#[test]
fn cluster_ip_by_default_clients_get_the_services_dns_name() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let state = answered(&pg, &api, ready_leader(&pg));
    let service = api.service(SERVICE).unwrap();
    assert_eq!(service.spec.service_type, ServiceType::ClusterIp);
    assert_eq!(service.spec.ports[0].port, 6432);
    assert_eq!(service.spec.ports[0].name, "pgbouncer");
    assert_eq!(
        service.spec.selector["app.kubernetes.io/name"],
        "pgbouncer-k8s"
    );
    assert!(service.spec.annotations.is_empty());
    assert_eq!(
        exposure(&state),
        Some(Exposure::Reachable {
            endpoints: DNS.into()
        })
    );
    assert_eq!(client_bag(&state)["endpoints"], DNS);
    assert_eq!(client_bag(&state)["read-only-endpoints"], DNS);
    assert!(client_bag(&state).contains_key("secret-user"));
    assert_eq!(state.unit_status, Status::Active(String::new()));
}

#[test]
fn nodeport_clients_get_each_nodes_address_with_the_node_port() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    api.nodes
        .borrow_mut()
        .insert("pgbouncer-k8s-0".into(), "192.168.1.5".into());
    api.nodes
        .borrow_mut()
        .insert("pgbouncer-k8s-1".into(), "192.168.1.4".into());
    let mut leader = with_option(ready_leader(&pg), "expose-external", "nodeport".into());
    let peers = leader
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap();
    peers
        .remote_units
        .insert("pgbouncer-k8s/1".into(), bag(&[]));
    let state = k8s(&pg, &api, &leader, event::config_changed()).state;
    assert_eq!(
        api.service(SERVICE).unwrap().spec.service_type,
        ServiceType::NodePort
    );
    assert_eq!(
        exposure(&state),
        Some(Exposure::Reachable {
            endpoints: format!("192.168.1.4:{NODE_PORT},192.168.1.5:{NODE_PORT}")
        })
    );
}

#[test]
fn nodeport_waits_for_the_nodes_addresses() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let leader = with_option(ready_leader(&pg), "expose-external", "nodeport".into());
    let out = k8s(&pg, &api, &leader, event::config_changed());
    assert_eq!(
        out.state.unit_status,
        Status::Waiting(format!(
            "waiting for the nodes' addresses of Kubernetes Service {SERVICE}"
        ))
    );
}

#[test]
fn a_load_balancer_without_an_address_waits_and_clients_keep_what_they_had() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let state = answered(&pg, &api, ready_leader(&pg));
    let state = with_option(state, "expose-external", "loadbalancer".into());
    let out = k8s(&pg, &api, &state, event::config_changed());
    assert_eq!(
        api.service(SERVICE).unwrap().spec.service_type,
        ServiceType::LoadBalancer
    );
    assert_eq!(
        out.state.unit_status,
        Status::Waiting(format!(
            "waiting for the load balancer address of Kubernetes Service {SERVICE}"
        ))
    );
    assert_eq!(client_bag(&out.state)["endpoints"], DNS, "nothing new");
}

#[test]
fn the_load_balancers_address_reaches_clients_at_update_status() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let state = answered(&pg, &api, ready_leader(&pg));
    let state = with_option(state, "expose-external", "loadbalancer".into());
    let state = with_option(
        state,
        "loadbalancer-extra-annotations",
        r#"{"metallb.universe.tf/address-pool": "db"}"#.into(),
    );
    let state = k8s(&pg, &api, &state, event::config_changed()).state;
    assert_eq!(
        api.service(SERVICE).unwrap().spec.annotations["metallb.universe.tf/address-pool"],
        "db"
    );
    *api.load_balancer.borrow_mut() = Some("203.0.113.7".into());
    let out = k8s(&pg, &api, &state, event::update_status());
    assert_eq!(client_bag(&out.state)["endpoints"], "203.0.113.7:6432");
    assert_eq!(
        client_bag(&out.state)["read-only-endpoints"],
        "203.0.113.7:6432"
    );
    assert_eq!(out.state.unit_status, Status::Active(String::new()));

    // Back to ClusterIP: the annotations go with the load balancer.
    let state = with_option(out.state, "expose-external", "false".into());
    k8s(&pg, &api, &state, event::config_changed());
    assert!(api.service(SERVICE).unwrap().spec.annotations.is_empty());
}

#[test]
fn a_changed_option_patches_the_service() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let state = k8s(&pg, &api, &ready_leader(&pg), event::config_changed()).state;
    assert_eq!(*api.calls.borrow(), ["get", "create"]);
    api.calls.borrow_mut().clear();
    k8s(&pg, &api, &state, event::update_status());
    assert_eq!(*api.calls.borrow(), ["get"], "kept as it is");
    api.calls.borrow_mut().clear();
    let state = with_option(state, "expose-external", "nodeport".into());
    k8s(&pg, &api, &state, event::config_changed());
    assert_eq!(api.calls.borrow()[..2], ["get", "patch"]);
    assert_eq!(
        api.service(SERVICE).unwrap().spec.service_type,
        ServiceType::NodePort
    );
}

#[test]
fn annotations_others_added_are_left_alone() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let state = with_option(ready_leader(&pg), "expose-external", "loadbalancer".into());
    let state = with_option(
        state,
        "loadbalancer-extra-annotations",
        r#"{"metallb.universe.tf/address-pool": "db"}"#.into(),
    );
    let state = k8s(&pg, &api, &state, event::config_changed()).state;
    let added = "metallb.universe.tf/ip-allocated-from-pool";
    api.services
        .borrow_mut()
        .get_mut(SERVICE)
        .unwrap()
        .spec
        .annotations
        .insert(added.into(), "default".into());
    api.calls.borrow_mut().clear();
    k8s(&pg, &api, &state, event::update_status());
    assert_eq!(*api.calls.borrow(), ["get"], "nothing to patch");
    assert_eq!(
        api.service(SERVICE).unwrap().spec.annotations[added],
        "default"
    );
}

#[test]
fn a_type_change_the_api_refuses_is_made_by_delete_and_create() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let state = k8s(&pg, &api, &ready_leader(&pg), event::config_changed()).state;
    *api.refuse_patch.borrow_mut() = true;
    api.calls.borrow_mut().clear();
    let state = with_option(state, "expose-external", "loadbalancer".into());
    k8s(&pg, &api, &state, event::config_changed());
    assert_eq!(*api.calls.borrow(), ["get", "patch", "delete", "create"]);
    assert_eq!(
        api.service(SERVICE).unwrap().spec.service_type,
        ServiceType::LoadBalancer
    );
}

#[test]
fn forbidden_blocks_with_the_trust_command_and_fails_no_hook() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    *api.fail.borrow_mut() = Some(403);
    let state = answered(&pg, &api, ready_leader(&pg));
    assert_eq!(
        state.unit_status,
        Status::Blocked(format!(
            "the Kubernetes API refuses to manage Service {SERVICE}: run `juju trust pgbouncer-k8s --scope=cluster`"
        ))
    );
    assert!(
        !client_bag(&state).contains_key("endpoints"),
        "no endpoint handed out: {:?}",
        client_bag(&state)
    );
    assert!(pg.server().databases.contains("app_db"), "the flows go on");

    // Trusted: the next config-changed creates the Service and answers.
    *api.fail.borrow_mut() = None;
    let out = k8s(&pg, &api, &state, event::config_changed());
    assert_eq!(client_bag(&out.state)["endpoints"], DNS);
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn another_api_error_waits_and_is_retried_at_update_status() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    *api.fail.borrow_mut() = Some(500);
    let out = k8s(&pg, &api, &ready_leader(&pg), event::config_changed());
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(
            m.starts_with(&format!("cannot set up Kubernetes Service {SERVICE}: "))
                && m.contains("HTTP 500"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    *api.fail.borrow_mut() = None;
    let out = k8s(&pg, &api, &out.state, event::update_status());
    assert_eq!(
        exposure(&out.state),
        Some(Exposure::Reachable {
            endpoints: DNS.into()
        })
    );
}

#[test]
fn a_new_listen_port_moves_the_service_port_and_the_open_port() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let state = answered(&pg, &api, ready_leader(&pg));
    assert!(state.opened_ports.contains(&Port::tcp(6432)));
    let state = with_option(state, "listen_port", 7432.into());
    let out = k8s(&pg, &api, &state, event::config_changed());
    assert_eq!(api.service(SERVICE).unwrap().spec.ports[0].port, 7432);
    assert_eq!(
        out.state.opened_ports.iter().collect::<Vec<_>>(),
        [&Port::tcp(7432)]
    );
    assert_eq!(
        client_bag(&out.state)["endpoints"],
        "pgbouncer-k8s-service.test.svc.cluster.local:7432"
    );
}

#[test]
fn on_kubernetes_credentials_still_wait_for_every_unit() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let mut leader = ready_leader(&pg);
    let peers = leader
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap();
    peers.remote_units.insert(
        "pgbouncer-k8s/1".into(),
        bag(&[("hostname", "10.0.0.11"), ("processes", "2")]),
    );
    let state = answered(&pg, &api, leader);
    assert!(pg.server().databases.contains("app_db"));
    assert!(
        client_bag(&state).is_empty(),
        "unit 1 does not serve app_db yet: {:?}",
        client_bag(&state)
    );
    let clients: state::Clients = serde_json::from_str(&peer_app(&state)[state::CLIENTS]).unwrap();
    assert_eq!(clients[&4].published, None);
}

#[test]
fn removing_the_last_unit_deletes_the_service() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let mut state = k8s(&pg, &api, &ready_leader(&pg), event::config_changed()).state;
    assert!(api.service(SERVICE).is_some());
    state.dying_units.insert(state.unit.clone());
    let out = k8s(&pg, &api, &state, Event::Remove);
    assert!(api.service(SERVICE).is_none());
    assert!(out
        .state
        .logs
        .iter()
        .any(|(_, m)| m == &format!("deleted Kubernetes Service {SERVICE}")));
}

#[test]
fn removing_one_unit_of_several_keeps_the_service() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let api = FakeServices::default();
    let mut state = k8s(&pg, &api, &ready_leader(&pg), event::config_changed()).state;
    let peers = state
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap();
    peers
        .remote_units
        .insert("pgbouncer-k8s/1".into(), bag(&[]));
    state.dying_units.insert(state.unit.clone());
    k8s(&pg, &api, &state, Event::Remove);
    assert!(api.service(SERVICE).is_some());
}
