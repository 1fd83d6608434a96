//! Building PgBouncer units on the in-memory model.

#![allow(dead_code, clippy::unwrap_used)]

pub mod services;
pub mod statefulset;

use charm::{Event, SecretContent, SecretId};
use charm_testing::{
    event, run, CharmState, ContainerState, Output, Owner, RelationState, SecretState, State,
};
use pgbouncer_k8s::flows::Deps;
use pgbouncer_k8s::pgb::Layout;
use pgbouncer_k8s::state::{self, BACKEND, DATABASE};
use pgbouncer_k8s::workload::{Workload, CONTAINER};
use pgbouncer_k8s::PgBouncerCharm;
use postgres_admin::testing::FakeConnector;
use std::path::Path;

pub const APP: &str = "pgbouncer-k8s";
pub const PEER_ID: u64 = 1;
pub const BACKEND_ID: u64 = 3;
pub const BACKEND_SECRET: &str = "c0000000000000000b0c";

/// The charm with a fake PostgreSQL behind it, and no network namespace
/// settings (a rolling restart cannot hand queued connections over).
pub fn charm(pg: &FakeConnector) -> PgBouncerCharm {
    charm_in(pg, Path::new("/nonexistent/net/ipv4"))
}

/// The charm with a fake PostgreSQL behind it, in a network namespace whose
/// IPv4 settings are in `net_ipv4`.
pub fn charm_in(pg: &FakeConnector, net_ipv4: &Path) -> PgBouncerCharm {
    PgBouncerCharm::new(Deps {
        connector: Box::new(pg.clone()),
        workload: Workload {
            layout: Layout::default(),
            processes: 2,
            user: Some("postgres".into()),
            drain: std::time::Duration::ZERO,
            pause_wait: std::time::Duration::ZERO,
            net_ipv4: net_ipv4.to_path_buf(),
        },
    })
}

/// A container whose image carries PgBouncer 1.24.1.
pub fn container() -> ContainerState {
    ContainerState::ready().with_file("/usr/bin/pgbouncer", b"\x7fELF...PgBouncer 1.24.1\0...")
}

/// Unit `n` of the application as Juju deploys it (the default configuration,
/// its peer relation, numbered [`PEER_ID`]), with PgBouncer in its container.
pub fn unit(n: u32, leader: bool) -> State {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charms/pgbouncer-k8s");
    State::from_charm_dir(dir, &format!("{APP}/{n}"))
        .unwrap()
        .leader(leader)
        .with_container(CONTAINER, container())
}

/// Adds the backend relation with PostgreSQL's published data and its user secret.
pub fn with_backend(state: State) -> State {
    with_backend_at(
        state,
        ("10.0.1.1:5432", "10.0.1.2:5432,10.0.1.3:5432"),
        ("relation_id_3", "backend-pw"),
    )
}

/// Adds the backend relation: PostgreSQL publishes its `(endpoints,
/// read-only-endpoints)` and, in its user secret, `(username, password)`.
pub fn with_backend_at(
    mut state: State,
    (endpoints, read_only): (&str, &str),
    (username, password): (&str, &str),
) -> State {
    let id = SecretId::parse(BACKEND_SECRET).unwrap();
    state.address = format!("10.0.0.{}", 10 + unit_number(&state));
    state
        .with_relation(
            RelationState::new(BACKEND, BACKEND_ID, "postgresql-k8s")
                .remote_app_data(&[
                    ("endpoints", endpoints),
                    ("read-only-endpoints", read_only),
                    ("version", "15.18"),
                    ("secret-user", &id.to_string()),
                ])
                .remote_unit("postgresql-k8s/0", &[]),
        )
        .with_secret(SecretState::new(
            id,
            Owner::Remote {
                app: "postgresql-k8s".into(),
                granted: true,
            },
            SecretContent::new()
                .with("username", username)
                .with("password", password),
        ))
}

/// The backend relation's PostgreSQL units are now `units` (none: every one
/// was removed), with the primary published at `primary`.
pub fn backend_units(mut state: State, units: &[&str], primary: &str) -> State {
    let backend = state
        .relations
        .iter_mut()
        .find(|r| r.endpoint == BACKEND)
        .unwrap();
    backend.remote_units = units
        .iter()
        .map(|u| (u.to_string(), Default::default()))
        .collect();
    backend
        .remote_app_data
        .insert("endpoints".into(), primary.into());
    state
}

fn unit_number(state: &State) -> u32 {
    state.unit.rsplit('/').next().unwrap().parse().unwrap()
}

/// A client relation whose application asked for `database`.
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

/// Runs one event, panicking with the error chain on failure.
pub fn go(pg: &FakeConnector, state: &State, event: Event) -> Output {
    run(&mut charm(pg), state, event).unwrap_or_else(|f| panic!("{f}"))
}

/// A leader with a backend whose auth user is set up.
pub fn ready_leader(pg: &FakeConnector) -> State {
    let state = with_backend(unit(0, true));
    let ev = event::relation_changed(state.relation(BACKEND_ID).unwrap(), None);
    go(pg, &state, ev).state
}

/// The peer application bag.
pub fn peer_app(state: &State) -> &charm::Databag {
    &state.relation(PEER_ID).unwrap().local_app_data
}

/// The peer unit bag of this unit.
pub fn peer_unit(state: &State) -> &charm::Databag {
    &state.relation(PEER_ID).unwrap().local_unit_data
}

/// Copies the leader's peer application bag and application secret into a
/// follower's state, as Juju would show them to it.
pub fn share_from_leader(leader: &State, mut follower: State) -> State {
    let app = peer_app(leader).clone();
    follower
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data = app;
    let label = state::app_secret_label(APP);
    if let Some(s) = leader.secret_by_label(&label) {
        follower.secrets.retain(|t| t.id != s.id);
        let mut copy = s.clone();
        copy.tracked = None;
        follower.secrets.push(copy);
    }
    follower
}

/// The ini file of process `i` in the unit's container.
pub fn ini(state: &State, i: u32) -> String {
    state
        .container(CONTAINER)
        .unwrap()
        .file_text(&format!("/var/lib/pgbouncer/instance_{i}/pgbouncer.ini"))
        .unwrap_or_default()
}
