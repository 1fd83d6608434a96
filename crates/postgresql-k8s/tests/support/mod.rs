//! Building PostgreSQL units on the in-memory model, with fakes for Patroni,
//! PostgreSQL and the pod API.

#![allow(dead_code, clippy::unwrap_used)]

pub mod dcs;
pub mod options;
pub mod patroni;
pub mod pods;

use charm::backend::JsonMap;
use charm::{Event, SecretContent, SecretId};
use charm_testing::{
    run, run_action, CharmState, Output, Owner, RelationState, SecretState, State,
};
use dcs::FakeDcsKeys;
use patroni::FakePatroni;
use pods::FakePods;
use postgres_admin::testing::FakeConnector;
use postgresql_k8s::config::Resources;
use postgresql_k8s::dcs::Kubernetes;
use postgresql_k8s::flows::Deps;
use postgresql_k8s::pods::{NoPods, Pods};
use postgresql_k8s::state::{self, DATABASE, ETCD};
use postgresql_k8s::workload::{Workload, CONTAINER};
use postgresql_k8s::PostgresqlCharm;
use std::time::Duration;

pub const APP: &str = "postgresql-k8s";
pub const PEER_ID: u64 = 1;
pub const ETCD_ID: u64 = 2;
pub const PATRONI_PW: &str = "patroni-pw";
pub const OPERATOR_PW: &str = "operator-pw";
pub const APP_SECRET: &str = "c0000000000000000a01";
pub const CONFIG_PATH: &str = "/var/lib/postgresql/data/patroni.yml";
pub const LAUNCHER: &str = "/var/lib/postgresql/data/start-patroni";
pub const DATA_DIR: &str = "/var/lib/postgresql/data/pgdata";

/// Unit `n`'s address (the local model gives each unit its own loopback address).
pub fn addr(n: u32) -> String {
    format!("127.0.1.{}", n + 1)
}

/// Unit `n`'s name.
pub fn unit_name(n: u32) -> String {
    format!("{APP}/{n}")
}

/// Unit `n`'s Patroni member name.
pub fn member(n: u32) -> String {
    format!("{APP}-{n}")
}

/// The fakes one test shares between its units.
#[derive(Clone, Default)]
pub struct World {
    pub pg: FakeConnector,
    pub patroni: FakePatroni,
    pub dcs: FakeDcsKeys,
    /// `Some` when the units run on Kubernetes (pods get labelled).
    pub pods: Option<FakePods>,
    /// How long a hook waits for its member to start (none by default).
    pub start_timeout: Duration,
}

impl World {
    /// A server that is up and a cluster whose members are `(n, role, state)`.
    pub fn new(members: &[(u32, &str, &str)]) -> World {
        let world = World {
            pg: FakeConnector::up(),
            ..World::default()
        };
        world.set_members(members);
        world.patroni.0.borrow_mut().password = Some(PATRONI_PW.into());
        world
    }

    /// The same, on Kubernetes.
    pub fn on_kubernetes(members: &[(u32, &str, &str)]) -> World {
        World {
            pods: Some(FakePods::default()),
            ..World::new(members)
        }
    }

    /// Replaces Patroni's members: `(n, role, state)`.
    pub fn set_members(&self, members: &[(u32, &str, &str)]) {
        let owned: Vec<(String, String, &str, &str)> = members
            .iter()
            .map(|(n, role, st)| (member(*n), addr(*n), *role, *st))
            .collect();
        let refs: Vec<(&str, &str, &str, &str)> = owned
            .iter()
            .map(|(m, a, r, s)| (m.as_str(), a.as_str(), *r, *s))
            .collect();
        self.patroni.set_members(&refs);
    }

    pub fn charm(&self) -> PostgresqlCharm {
        let pods: Box<dyn Pods> = match &self.pods {
            Some(p) => Box::new(p.clone()),
            None => Box::new(NoPods),
        };
        PostgresqlCharm::new(Deps {
            connector: Box::new(self.pg.clone()),
            patroni: Box::new(self.patroni.clone()),
            pods,
            dcs_keys: Box::new(self.dcs.clone()),
            workload: Workload::default(),
            kubernetes: self.pods.as_ref().map(|_| Kubernetes {
                namespace: "test".into(),
            }),
            resources: Resources {
                cpu_cores: 2,
                memory_bytes: 4 << 30,
            },
            start_timeout: self.start_timeout,
        })
    }

    /// Runs one event, panicking with the error chain on failure.
    pub fn go(&self, state: &State, event: Event) -> Output {
        run(&mut self.charm(), state, event).unwrap_or_else(|f| panic!("{f}"))
    }

    /// Runs an action.
    pub fn action(&self, state: &State, name: &str, params: serde_json::Value) -> Output {
        let params: JsonMap = params.as_object().unwrap().clone();
        run_action(&mut self.charm(), state, name, params).unwrap_or_else(|f| panic!("{f}"))
    }
}

/// The application secret with every system user's password.
pub fn app_secret() -> SecretState {
    let mut content = SecretContent::new();
    for user in state::SECRET_USERS {
        content.insert(state::password_key(user), format!("{user}-pw"));
    }
    let mut s = SecretState::new(SecretId::parse(APP_SECRET).unwrap(), Owner::App, content);
    s.owner_label = Some(state::app_secret_label(APP));
    s
}

/// Unit `n` as Juju deploys it (the default configuration, its peer relation,
/// numbered [`PEER_ID`], the container up), with its address, a related etcd
/// and the system users' passwords.
pub fn unit(n: u32, leader: bool) -> State {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charms/postgresql-k8s");
    let mut s = State::from_charm_dir(dir, &unit_name(n))
        .unwrap()
        .leader(leader)
        .with_relation(
            RelationState::new(ETCD, ETCD_ID, "etcd")
                .remote_app_data(&[("endpoints", "http://127.0.2.1:2379,http://127.0.2.2:2379")])
                .remote_unit("etcd/0", &[]),
        )
        .with_secret(app_secret());
    s.address = addr(n);
    s
}

/// Unit `n` without an etcd relation (for the DCS tests).
pub fn unit_without_etcd(n: u32, leader: bool) -> State {
    let mut s = unit(n, leader);
    s.relations.retain(|r| r.id != ETCD_ID);
    s
}

/// The peer relation of a unit's state.
pub fn peer_mut(state: &mut State) -> &mut RelationState {
    state
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
}

/// Adds the other units `ns` to the peer relation, each with its address published.
pub fn with_peers(mut state: State, ns: &[u32]) -> State {
    for n in ns {
        peer_mut(&mut state).remote_units.insert(
            unit_name(*n),
            charm_testing::bag(&[(state::ADDRESS, &addr(*n))]),
        );
    }
    state
}

/// Sets the cluster's members (`endpoints`) and marks it initialised.
pub fn initialised(mut state: State, members: &[u32]) -> State {
    let list: Vec<String> = members.iter().map(|n| addr(*n)).collect();
    let bag = &mut peer_mut(&mut state).local_app_data;
    bag.insert(
        state::ENDPOINTS.into(),
        serde_json::to_string(&list).unwrap(),
    );
    bag.insert(state::CLUSTER_INITIALISED.into(), "True".into());
    state
}

/// The peer application bag.
pub fn peer_app(state: &State) -> &charm::Databag {
    &state.relation(PEER_ID).unwrap().local_app_data
}

/// This unit's peer bag.
pub fn peer_unit(state: &State) -> &charm::Databag {
    &state.relation(PEER_ID).unwrap().local_unit_data
}

/// The members in the peer application bag.
pub fn members(state: &State) -> Vec<String> {
    peer_app(state)
        .get(state::ENDPOINTS)
        .map(|raw| serde_json::from_str(raw).unwrap())
        .unwrap_or_default()
}

/// A client relation whose application asked for `database`, with secrets.
pub fn client(id: u64, database: &str, extra: &[(&str, &str)]) -> RelationState {
    let mut data = vec![
        ("database", database),
        (
            "requested-secrets",
            r#"["username","password","tls","tls-ca","uris","read-only-uris"]"#,
        ),
    ];
    data.extend_from_slice(extra);
    RelationState::new(DATABASE, id, "client-app")
        .remote_app_data(&data)
        .remote_unit("client-app/0", &[])
}

/// `patroni.yml` in the unit's container.
pub fn patroni_yml(state: &State) -> Option<String> {
    state.container(CONTAINER).unwrap().file_text(CONFIG_PATH)
}

/// `patroni.yml` as the document Patroni reads.
pub fn patroni_doc(state: &State) -> serde_json::Value {
    let text = patroni_yml(state).expect("patroni.yml written");
    yaml_serde::from_str(&text).expect("patroni.yml is YAML")
}

/// Whether the unit logged something containing `text`.
pub fn logged(state: &State, text: &str) -> bool {
    state.logs.iter().any(|(_, m)| m.contains(text))
}

/// The state with the plugin options `plugin_<name>_enable` of `names` on.
pub fn with_plugins(mut state: State, names: &[&str]) -> State {
    for name in names {
        state
            .config
            .insert(format!("plugin_{name}_enable"), serde_json::json!(true));
    }
    state
}

/// Unit `n`'s secret holding a key and a certificate `ca` issued for it:
/// TLS turned on for its PostgreSQL.
pub fn with_certificate(s: State, n: u32, ca: &mut tls_certificates::testing::TestCa) -> State {
    let key = tls_certificates::PrivateKey::generate().unwrap();
    let csr = tls_certificates::csr(
        &key,
        &postgresql_k8s::flows::certificates::unit_subject(APP, n, "m", &addr(n)),
    )
    .unwrap();
    let mut content = SecretContent::new();
    content.insert(tls_certificates::SECRET_KEY, key.pem());
    content.insert(tls_certificates::SECRET_CERT, ca.issue(&csr, 90));
    content.insert(tls_certificates::SECRET_CA, ca.pem());
    let id = SecretId::parse(&format!("c0000000000000000b0{n}")).unwrap();
    let mut secret = SecretState::new(id, Owner::Unit, content);
    secret.owner_label = Some(state::unit_secret_label(APP));
    s.with_secret(secret)
}
