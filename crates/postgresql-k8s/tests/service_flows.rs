//! The cluster's Kubernetes Services on the in-memory model, with the
//! Kubernetes API faked at the adapter ([`FakeServices`]).
//!
//! k8s-services (leader, before the event's flow):
//!
//! | node or branch | test |
//! |---|---|
//! | off Kubernetes → nothing recorded, clients get member addresses, the port is opened | `off_kubernetes_nothing_changes_and_the_port_is_opened` |
//! | a follower → no API call | `a_follower_leaves_the_services_to_the_leader` |
//! | created/kept, selecting the roles Patroni labels | `the_leader_creates_primary_and_replicas_selecting_the_role_labels` |
//! | ready, Kubernetes DCS → clients get the Services' DNS names | `clients_get_the_services_dns_names` |
//! | ready, one member → read-only is the primary Service | `alone_the_read_only_endpoint_is_the_primary_service` |
//! | ready, etcd DCS → clients get the Services' DNS names too | `with_etcd_as_the_dcs_each_member_labels_its_role_and_clients_get_the_services` |
//! | 403 → blocked naming `juju trust`, the hook succeeds; trusted → clients move to the Services | `forbidden_blocks_with_the_trust_command_until_trusted` |
//! | another API error → waiting, retried at update-status | `another_api_error_waits_and_is_retried_at_update_status` |
//!
//! pod labels (every started member, after its membership is recorded):
//!
//! | node or branch | test |
//! |---|---|
//! | off Kubernetes → no API call | `off_kubernetes_nothing_changes_and_the_port_is_opened` |
//! | etcd DCS → member labels and the role, once per change | `with_etcd_as_the_dcs_each_member_labels_its_role_and_clients_get_the_services` |
//! | Kubernetes DCS → member labels only (Patroni writes the role) | `with_kubernetes_as_the_dcs_the_member_leaves_the_role_to_patroni` |
//! | the patch fails → logged, tried again at the next hook | `a_failed_pod_label_is_tried_again` |
//!
//! remove:
//!
//! | node or branch | test |
//! |---|---|
//! | the application goes (no unit planned) → both deleted | `removing_the_last_unit_deletes_both_services` |
//! | units remain → kept | `removing_one_unit_of_several_keeps_the_services` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::backend::Port;
use charm::{Event, Status};
use charm_testing::{event, run, Output, State};
use k8s_incluster::{Error, Service, ServiceApi, ServiceSpec, ServiceType};
use postgresql_k8s::flows::services::{Recorded, SERVICES};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use support::*;

const CLIENT: u64 = 5;
const PRIMARY: &str = "postgresql-k8s-primary";
const REPLICAS: &str = "postgresql-k8s-replicas";

/// Services in memory; `fail` answers every call with that HTTP status.
#[derive(Clone, Default)]
struct FakeServices {
    services: Rc<RefCell<BTreeMap<String, Service>>>,
    calls: Rc<RefCell<Vec<String>>>,
    fail: Rc<RefCell<Option<u16>>>,
}

impl FakeServices {
    fn call(&self, what: &str) -> Result<(), Error> {
        self.calls.borrow_mut().push(what.into());
        let action = format!("{what} a Service");
        match *self.fail.borrow() {
            None => Ok(()),
            Some(403) => Err(Error::Forbidden {
                action,
                status: 403,
                message: "services is forbidden".into(),
            }),
            Some(status) => Err(Error::Api {
                action,
                status,
                message: "refused".into(),
            }),
        }
    }

    fn store(&self, name: &str, spec: &ServiceSpec) -> Service {
        let service = Service {
            name: name.into(),
            managed_annotations: spec.annotations.keys().cloned().collect(),
            spec: spec.clone(),
            cluster_ip: Some("10.152.183.9".into()),
            ingress: Vec::new(),
        };
        self.services
            .borrow_mut()
            .insert(name.into(), service.clone());
        service
    }

    fn service(&self, name: &str) -> Option<Service> {
        self.services.borrow().get(name).cloned()
    }
}

impl ServiceApi for FakeServices {
    fn get_service(&self, name: &str) -> Result<Option<Service>, Error> {
        self.call("get")?;
        Ok(self.service(name))
    }
    fn create_service(&self, name: &str, spec: &ServiceSpec) -> Result<Service, Error> {
        self.call("create")?;
        Ok(self.store(name, spec))
    }
    fn patch_service(&self, name: &str, spec: &ServiceSpec, _: &Service) -> Result<Service, Error> {
        self.call("patch")?;
        Ok(self.store(name, spec))
    }
    fn delete_service(&self, name: &str) -> Result<bool, Error> {
        self.call("delete")?;
        Ok(self.services.borrow_mut().remove(name).is_some())
    }
}

fn k8s(w: &World, api: &FakeServices, state: &State, event: Event) -> Output {
    let mut charm = w.charm().with_services(Some(Box::new(api.clone())));
    run(&mut charm, state, event).unwrap_or_else(|f| panic!("{f}"))
}

fn recorded(state: &State) -> Option<Recorded> {
    peer_app(state)
        .get(SERVICES)
        .map(|v| serde_json::from_str(v).unwrap())
}

fn client_bag(s: &State) -> &charm::Databag {
    &s.relation(CLIENT).unwrap().local_app_data
}

fn request(s: &State) -> Event {
    event::relation_changed(s.relation(CLIENT).unwrap(), None)
}

/// Leader 0 of an initialised cluster of `units` on Kubernetes (Patroni's
/// state in Kubernetes), a client asking for `shop`.
fn on_kubernetes(units: &[u32]) -> (World, State) {
    let members: Vec<(u32, &str, &str)> = units
        .iter()
        .map(|n| match n {
            0 => (0, "leader", "running"),
            n => (*n, "sync_standby", "streaming"),
        })
        .collect();
    let w = World::on_kubernetes(&members);
    w.pg.0.borrow_mut().admin_group = true;
    let s = initialised(with_peers(unit_without_etcd(0, true), &units[1..]), units)
        .with_relation(client(CLIENT, "shop", &[]));
    (w, s)
}

#[test]
fn off_kubernetes_nothing_changes_and_the_port_is_opened() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    w.pg.0.borrow_mut().admin_group = true;
    let s = initialised(with_peers(unit(0, true), &[1]), &[0, 1]).with_relation(client(
        CLIENT,
        "shop",
        &[],
    ));
    let s = w.go(&s, Event::ConfigChanged).state;
    assert!(s.opened_ports.contains(&Port::tcp(5432)));
    assert_eq!(recorded(&s), None);
    let out = w.go(&s, request(&s));
    assert_eq!(client_bag(&out.state)["endpoints"], "127.0.1.1:5432");
}

#[test]
fn a_follower_leaves_the_services_to_the_leader() {
    let (w, _) = on_kubernetes(&[0, 1]);
    let api = FakeServices::default();
    let follower = initialised(with_peers(unit_without_etcd(1, false), &[0]), &[0, 1]);
    for ev in [Event::ConfigChanged, Event::UpdateStatus] {
        k8s(&w, &api, &follower, ev);
    }
    assert!(api.calls.borrow().is_empty(), "{:?}", api.calls.borrow());
}

#[test]
fn the_leader_creates_primary_and_replicas_selecting_the_role_labels() {
    let (w, s) = on_kubernetes(&[0, 1]);
    let api = FakeServices::default();
    let s = k8s(&w, &api, &s, Event::ConfigChanged).state;
    for (name, role) in [(PRIMARY, "primary"), (REPLICAS, "replica")] {
        let service = api.service(name).unwrap();
        assert_eq!(service.spec.service_type, ServiceType::ClusterIp);
        assert_eq!(service.spec.ports[0].port, 5432);
        let selector: Vec<(&str, &str)> = service
            .spec
            .selector
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            selector,
            [
                ("app.kubernetes.io/name", "postgresql-k8s"),
                ("application", "patroni"),
                ("cluster-name", "patroni-postgresql-k8s"),
                ("role", role),
            ]
        );
    }
    assert_eq!(
        recorded(&s),
        Some(Recorded::Ready {
            namespace: "test".into()
        })
    );
    api.calls.borrow_mut().clear();
    k8s(&w, &api, &s, Event::UpdateStatus);
    assert_eq!(*api.calls.borrow(), ["get", "get"], "kept as they are");
}

#[test]
fn clients_get_the_services_dns_names() {
    let (w, s) = on_kubernetes(&[0, 1]);
    let api = FakeServices::default();
    let out = k8s(&w, &api, &s, request(&s));
    let bag = client_bag(&out.state);
    assert_eq!(
        bag["endpoints"],
        "postgresql-k8s-primary.test.svc.cluster.local:5432"
    );
    assert_eq!(
        bag["read-only-endpoints"],
        "postgresql-k8s-replicas.test.svc.cluster.local:5432"
    );
    assert!(w.pg.server().databases.contains("shop"));
}

#[test]
fn alone_the_read_only_endpoint_is_the_primary_service() {
    let (w, s) = on_kubernetes(&[0]);
    let api = FakeServices::default();
    let out = k8s(&w, &api, &s, request(&s));
    assert_eq!(
        client_bag(&out.state)["read-only-endpoints"],
        "postgresql-k8s-primary.test.svc.cluster.local:5432"
    );
}

/// The labels the charm patched onto `pod`, merged in order.
fn labels_of(w: &World, pod: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (patched, set) in w.pods.as_ref().unwrap().patched.borrow().iter() {
        if patched == pod {
            labels.extend(set.clone());
        }
    }
    labels
}

#[test]
fn with_etcd_as_the_dcs_each_member_labels_its_role_and_clients_get_the_services() {
    let w = World::on_kubernetes(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    w.pg.0.borrow_mut().admin_group = true;
    let s = initialised(with_peers(unit(0, true), &[1]), &[0, 1]).with_relation(client(
        CLIENT,
        "shop",
        &[],
    ));
    let api = FakeServices::default();
    let out = k8s(&w, &api, &s, request(&s));
    assert!(api.service(PRIMARY).is_some(), "the Services exist");
    assert_eq!(
        client_bag(&out.state)["endpoints"],
        "postgresql-k8s-primary.test.svc.cluster.local:5432"
    );
    // A member converging labels its own pod.
    let out = k8s(&w, &api, &out.state, Event::UpdateStatus);
    let labels = labels_of(&w, "postgresql-k8s-0");
    assert_eq!(labels["role"], "primary");
    assert_eq!(labels["application"], "patroni");
    assert!(labels.contains_key("cluster-name"), "{labels:?}");
    // Nothing changed: no second patch.
    let patches = w.pods.as_ref().unwrap().patched.borrow().len();
    k8s(&w, &api, &out.state, Event::UpdateStatus);
    assert_eq!(w.pods.as_ref().unwrap().patched.borrow().len(), patches);
}

#[test]
fn with_kubernetes_as_the_dcs_the_member_leaves_the_role_to_patroni() {
    let (w, s) = on_kubernetes(&[0, 1]);
    let api = FakeServices::default();
    k8s(&w, &api, &s, Event::UpdateStatus);
    let labels = labels_of(&w, "postgresql-k8s-0");
    assert_eq!(labels["application"], "patroni");
    assert!(!labels.contains_key("role"), "{labels:?}");
}

#[test]
fn a_failed_pod_label_is_tried_again() {
    let (w, s) = on_kubernetes(&[0]);
    let api = FakeServices::default();
    let pods = w.pods.clone().unwrap();
    *pods.fail.borrow_mut() = Some("the API is away".into());
    let out = k8s(&w, &api, &s, Event::UpdateStatus);
    assert!(pods.patched.borrow().is_empty());
    *pods.fail.borrow_mut() = None;
    k8s(&w, &api, &out.state, Event::UpdateStatus);
    assert_eq!(labels_of(&w, "postgresql-k8s-0")["application"], "patroni");
}

#[test]
fn forbidden_blocks_with_the_trust_command_until_trusted() {
    let (w, s) = on_kubernetes(&[0, 1]);
    let api = FakeServices::default();
    *api.fail.borrow_mut() = Some(403);
    let out = k8s(&w, &api, &s, request(&s));
    assert_eq!(
        out.state.unit_status,
        Status::Blocked(format!(
            "the Kubernetes API refuses to manage Services {PRIMARY} and {REPLICAS}: run `juju trust postgresql-k8s --scope=cluster`"
        ))
    );
    assert_eq!(
        client_bag(&out.state)["endpoints"],
        "127.0.1.1:5432",
        "served meanwhile at the member's address"
    );

    *api.fail.borrow_mut() = None;
    let out = k8s(&w, &api, &out.state, Event::UpdateStatus);
    assert_eq!(
        client_bag(&out.state)["endpoints"],
        "postgresql-k8s-primary.test.svc.cluster.local:5432"
    );
    assert!(!matches!(out.state.unit_status, Status::Blocked(_)));
}

#[test]
fn another_api_error_waits_and_is_retried_at_update_status() {
    let (w, s) = on_kubernetes(&[0, 1]);
    let api = FakeServices::default();
    *api.fail.borrow_mut() = Some(500);
    let out = k8s(&w, &api, &s, Event::ConfigChanged);
    match recorded(&out.state) {
        Some(Recorded::Waiting { message }) => assert!(
            message.starts_with("cannot set up the Kubernetes Services of postgresql-k8s: ")
                && message.contains("HTTP 500"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(out.state.unit_status, Status::Waiting(_)));
    *api.fail.borrow_mut() = None;
    let out = k8s(&w, &api, &out.state, Event::UpdateStatus);
    assert_eq!(
        recorded(&out.state),
        Some(Recorded::Ready {
            namespace: "test".into()
        })
    );
}

#[test]
fn removing_the_last_unit_deletes_both_services() {
    let (w, s) = on_kubernetes(&[0]);
    let api = FakeServices::default();
    let mut s = k8s(&w, &api, &s, Event::ConfigChanged).state;
    assert!(api.service(PRIMARY).is_some());
    s.dying_units.insert(s.unit.clone());
    k8s(&w, &api, &s, Event::Remove);
    assert!(api.services.borrow().is_empty());
}

#[test]
fn removing_one_unit_of_several_keeps_the_services() {
    let (w, s) = on_kubernetes(&[0, 1]);
    let api = FakeServices::default();
    let mut s = k8s(&w, &api, &s, Event::ConfigChanged).state;
    s.dying_units.insert(s.unit.clone());
    k8s(&w, &api, &s, Event::Remove);
    assert!(api.service(PRIMARY).is_some() && api.service(REPLICAS).is_some());
}
