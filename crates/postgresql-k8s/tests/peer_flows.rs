//! The `database-peers` relation's flows (`docs/postgresql-flows.md`) on the
//! in-memory model.
//!
//! Peer relation changed (also secret-changed):
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | Has cluster initialised? no → (leader) initialise it, then defer | `changed_leader_initialises_the_cluster_then_defers` |
//! | no → (leader) initialisation not possible yet → return, no defer | `changed_leader_without_a_running_primary_returns_without_defer` |
//! | no → (follower) return, no defer | `changed_follower_before_initialisation_returns` |
//! | yes → Is current unit leader? no → Is current unit part of the cluster? | `changed_follower_member_updates_config_and_goes_active` |
//! | leader: Are all the units part of the cluster? yes → Is current unit part of the cluster? | `changed_leader_with_every_unit_in_the_cluster_adds_nobody` |
//! | no → Are all cluster members ready? no → defer, then on to "part of the cluster?" (the chart's arrow) | `changed_leader_defers_adding_while_a_member_is_not_ready` |
//! | yes → Add unit to cluster | `changed_leader_adds_a_ready_unit_to_the_cluster` |
//! | Add unit → Patch pod labels of the new cluster member (Kubernetes) | `on_kubernetes_the_new_members_pod_is_labelled` |
//! | Patch pod labels on the local model: logged, no pods | `on_the_local_model_the_label_step_logs_that_there_are_no_pods` |
//! | Patch pod labels fails → Blocked with the error (the reference charm's message) | `a_failed_label_patch_blocks_with_the_error` |
//! | Patch pod labels → back to "Are all the units part of the cluster?" (one at a time) | `the_leader_adds_units_one_at_a_time`, `the_leader_adds_every_unit_whose_predecessor_runs` |
//! | Is current unit part of the cluster? no → return, no defer | `changed_on_a_unit_not_yet_in_the_cluster_returns` |
//! | yes → Update Patroni and PostgreSQL config | `changed_follower_member_updates_config_and_goes_active`, `changed_member_reloads_patroni_when_its_config_changes` |
//! | Restart PostgreSQL if TLS is turned on (in its turn of the rolling restart) | `turning_tls_on_restarts_postgresql_in_its_turn` |
//! | Restart PostgreSQL if TLS is turned off (clients told at once, the restart in its turn) | `turning_tls_off_restarts_postgresql_in_its_turn` |
//! | (TLS unchanged → no restart) | `tls_unchanged_does_not_restart` |
//! | Have Patroni and PostgreSQL started in the current unit? no → defer | `changed_defers_while_the_member_has_not_started`, `changed_defers_while_patronis_api_does_not_answer` |
//! | (the member has started: `member-of` records its cluster) | `changed_member_records_the_cluster_it_is_a_member_of` |
//! | yes → Update the read-only endpoint in the database relation | `changed_leader_updates_read_only_endpoints_of_clients` |
//! | (a follower cannot write the client relation) | `changed_follower_leaves_client_relations_alone` |
//! | Set Active Status (naming the role) → return | `changed_sets_active_with_the_role` |
//!
//! Peer relation departed:
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | Is leader and is not departing? no (a follower) → return | `departed_on_a_follower_does_nothing` |
//! | no (the leader is the one departing) → return | `departed_on_the_departing_leader_does_nothing` |
//! | yes → Has cluster initialised? no → defer | `departed_defers_before_initialisation` |
//! | yes → Update the read-only endpoint in the database relation | `departed_updates_read_only_endpoints_without_the_departed_unit` |
//! | Remove departing units from the cluster | `departed_removes_the_departed_unit_from_the_members` |
//! | (and the departed member's key from the DCS; a DCS that does not answer is logged) | `departed_deletes_the_departed_members_key_from_the_dcs` |
//! | Turn on/off synchronous_commit (Patroni's synchronous settings) → return | `departed_patches_synchronous_settings_for_the_smaller_cluster`, `departed_to_a_single_unit_turns_synchronous_replication_off` |
//! | (the settings cannot be sent → defer) | `departed_defers_when_patroni_cannot_take_the_settings` |
//! | (options invalid or refused by the container → no settings sent, the status names the option; the container cannot confirm them → defer) | `departed_sends_no_settings_from_options_it_cannot_apply` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::secret::SecretId;
use charm::{Event, SecretContent, Status};
use charm_testing::{bag, event, Owner, SecretState, ServiceOp, State};
use postgresql_k8s::flows::rolling_restart::{Grant, Roll, Step};
use postgresql_k8s::state;
use postgresql_k8s::workload::{CONTAINER, SERVICE};
use support::*;
use tls_certificates::testing::TestCa;
use tls_certificates::{PrivateKey, Subject};

fn changed(s: &State) -> Event {
    event::relation_changed(s.relation(PEER_ID).unwrap(), Some(&unit_name(1)))
}

fn departed(s: &State, leaving: u32, departing: &str) -> Event {
    event::relation_departed(s.relation(PEER_ID).unwrap(), &unit_name(leaving), departing)
}

/// Sets only the members (a cluster not initialised yet).
fn founded(mut s: State, members: &[u32]) -> State {
    let list: Vec<String> = members.iter().map(|n| addr(*n)).collect();
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .insert(
            state::ENDPOINTS.into(),
            serde_json::to_string(&list).unwrap(),
        );
    s
}

fn waiting(s: &State) -> String {
    match &s.unit_status {
        Status::Waiting(m) => m.clone(),
        other => panic!("not waiting: {other:?}"),
    }
}

// ----- relation-changed -----

#[test]
fn changed_leader_initialises_the_cluster_then_defers() {
    let w = World::new(&[(0, "leader", "running")]);
    let s = founded(with_peers(unit(0, true), &[1]), &[0]);
    let out = w.go(&s, changed(&s));
    assert_eq!(peer_app(&out.state)[state::CLUSTER_INITIALISED], "True");
    assert_eq!(out.state.deferred.len(), 1, "runs again initialised");
    let server = w.pg.server();
    assert_eq!(server.users["monitoring"].0, "monitoring-pw");
    assert!(server.admin_group);
    // The predefined roles clients may ask for.
    assert_eq!(server.groups["charmed_stats"], ["pg_monitor"]);
    assert_eq!(
        server.groups["charmed_read"],
        ["pg_read_all_data", "charmed_stats"]
    );
    assert_eq!(
        server.groups["charmed_dml"],
        ["pg_write_all_data", "charmed_read"]
    );
    assert_eq!(server.sessions, [addr(0)], "on the primary");
}

#[test]
fn changed_leader_without_a_running_primary_returns_without_defer() {
    let w = World::new(&[(0, "leader", "starting")]);
    let s = founded(with_peers(unit(0, true), &[1]), &[0]);
    let out = w.go(&s, changed(&s));
    assert!(!peer_app(&out.state).contains_key(state::CLUSTER_INITIALISED));
    assert!(out.state.deferred.is_empty());
    assert_eq!(
        waiting(&out.state),
        "awaiting for primary endpoint to be ready"
    );
    assert!(w.pg.server().sessions.is_empty());
}

#[test]
fn changed_follower_before_initialisation_returns() {
    let w = World::new(&[(0, "leader", "running")]);
    let s = with_peers(unit(1, false), &[0]);
    let out = w.go(&s, changed(&s));
    assert!(out.state.deferred.is_empty());
    assert_eq!(patroni_yml(&out.state), None, "nothing rendered");
    assert_eq!(
        peer_unit(&out.state)[state::ADDRESS],
        addr(1),
        "address published"
    );
}

#[test]
fn changed_member_records_the_cluster_it_is_a_member_of() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    let out = w.go(&s, changed(&s));
    assert_eq!(
        peer_unit(&out.state)[state::MEMBER_OF],
        "patroni-postgresql-k8s"
    );
    w.set_members(&[(0, "leader", "running"), (1, "replica", "starting")]);
    let out = w.go(&s, changed(&s));
    assert!(!peer_unit(&out.state).contains_key(state::MEMBER_OF));
}

#[test]
fn changed_follower_member_updates_config_and_goes_active() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    let out = w.go(&s, changed(&s));
    let doc = patroni_doc(&out.state);
    assert_eq!(doc["name"], "postgresql-k8s-1");
    assert_eq!(doc["postgresql"]["listen"], "127.0.1.2:5432");
    assert_eq!(doc["restapi"]["listen"], "127.0.1.2:8008");
    assert_eq!(doc["etcd3"]["hosts"][0], "127.0.2.1:2379");
    assert!(doc["postgresql"]["pg_hba"]
        .as_array()
        .unwrap()
        .contains(&"host replication replication 127.0.1.1/32 scram-sha-256".into()));
    assert_eq!(
        doc["postgresql"]["authentication"]["superuser"]["password"],
        "operator-pw"
    );
    let container = out.state.container(CONTAINER).unwrap();
    assert_eq!(container.files[CONFIG_PATH].permissions, 0o600);
    assert_eq!(
        container.files[CONFIG_PATH].user.as_deref(),
        Some("postgres")
    );
    let service = &container.running[SERVICE];
    assert_eq!(
        service.command,
        format!("patroni {CONFIG_PATH}"),
        "without a generation, the command it ran before generations"
    );
    assert_eq!(service.user, "postgres");
    assert_eq!(
        container.files[LAUNCHER].permissions, 0o755,
        "the launcher is pushed beside patroni.yml"
    );
    assert!(container.dirs.contains("/var/lib/postgresql/data/pgdata"));
    assert_eq!(out.state.unit_status, Status::Active("Replica".into()));
    assert!(out.state.deferred.is_empty());
    assert!(
        w.patroni.cluster_state().patches.is_empty(),
        "only the leader patches"
    );
    assert!(out
        .state
        .logs
        .iter()
        .all(|(_, m)| !m.contains("operator-pw")));
}

#[test]
fn changed_leader_with_every_unit_in_the_cluster_adds_nobody() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = initialised(with_peers(unit(0, true), &[1]), &[0, 1]);
    let out = w.go(&s, changed(&s));
    assert_eq!(members(&out.state), [addr(0), addr(1)]);
    assert!(!logged(&out.state, "added"));
    let patches = w.patroni.cluster_state().patches;
    assert_eq!(
        patches.len(),
        1,
        "the leader sends the cluster-wide settings"
    );
    assert_eq!(patches[0]["synchronous_node_count"], 1);
    assert_eq!(patches[0]["synchronous_mode_strict"], true);
    assert_eq!(
        patches[0]["postgresql"]["parameters"]["max_connections"],
        100
    );
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
}

#[test]
fn changed_leader_defers_adding_while_a_member_is_not_ready() {
    let w = World::new(&[(0, "leader", "running"), (1, "replica", "starting")]);
    let s = initialised(with_peers(unit(0, true), &[1, 2]), &[0, 1]);
    let out = w.go(&s, changed(&s));
    assert_eq!(members(&out.state), [addr(0), addr(1)], "unit 2 waits");
    assert_eq!(out.state.deferred.len(), 1);
    // The flow goes on: the leader is a member, so it renders and reports its role.
    assert!(patroni_yml(&out.state).is_some());
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
}

#[test]
fn changed_leader_adds_a_ready_unit_to_the_cluster() {
    let w = World::new(&[(0, "leader", "running")]);
    let s = initialised(with_peers(unit(0, true), &[1]), &[0]);
    let out = w.go(&s, changed(&s));
    assert_eq!(members(&out.state), [addr(0), addr(1)]);
    assert!(logged(
        &out.state,
        "added postgresql-k8s/1 (127.0.1.2) to the cluster"
    ));
    assert!(out.state.deferred.is_empty());
    // The leader's own configuration now allows replication from the new member.
    assert!(patroni_yml(&out.state)
        .unwrap()
        .contains("host replication replication 127.0.1.2/32"));
}

#[test]
fn on_kubernetes_the_new_members_pod_is_labelled() {
    let w = World::on_kubernetes(&[(0, "leader", "running")]);
    let s = initialised(with_peers(unit_without_etcd(0, true), &[1]), &[0]);
    let out = w.go(&s, changed(&s));
    assert_eq!(members(&out.state), [addr(0), addr(1)]);
    let patched = w.pods.as_ref().unwrap().patched.borrow().clone();
    assert_eq!(patched.len(), 1);
    assert_eq!(patched[0].0, "postgresql-k8s-1");
    assert_eq!(
        patched[0].1,
        [
            ("application", "patroni"),
            ("cluster-name", "patroni-postgresql-k8s")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into()
    );
    let doc = patroni_doc(&out.state);
    assert_eq!(doc["kubernetes"]["namespace"], "test", "{doc}");
    assert!(doc.get("etcd3").is_none());
}

#[test]
fn on_the_local_model_the_label_step_logs_that_there_are_no_pods() {
    let w = World::new(&[(0, "leader", "running")]);
    let s = initialised(with_peers(unit(0, true), &[1]), &[0]);
    let out = w.go(&s, changed(&s));
    assert!(logged(
        &out.state,
        "pod labels for postgresql-k8s/1: this unit does not run on Kubernetes"
    ));
}

#[test]
fn a_failed_label_patch_blocks_with_the_error() {
    let w = World::on_kubernetes(&[(0, "leader", "running")]);
    *w.pods.as_ref().unwrap().fail.borrow_mut() = Some("403 Forbidden".into());
    let s = initialised(with_peers(unit_without_etcd(0, true), &[1]), &[0]);
    let out = w.go(&s, changed(&s));
    assert_eq!(members(&out.state), [addr(0), addr(1)]);
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(
            m.starts_with("failed to patch pod with error") && m.contains("403 Forbidden"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_leader_adds_units_one_at_a_time() {
    // Units 1 and 2 wait; 1 is added, then 2 waits for 1's member to run.
    let w = World::new(&[(0, "leader", "running")]);
    let s = initialised(with_peers(unit(0, true), &[1, 2]), &[0]);
    let out = w.go(&s, changed(&s));
    assert_eq!(members(&out.state), [addr(0), addr(1)]);
    assert_eq!(out.state.deferred.len(), 1);
    // Once 1 streams, the next change adds 2.
    w.set_members(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let again = State {
        deferred: Vec::new(),
        ..out.state
    };
    let out = w.go(&again, changed(&again));
    assert_eq!(members(&out.state), [addr(0), addr(1), addr(2)]);
}

#[test]
fn the_leader_adds_every_unit_whose_predecessor_runs() {
    let w = World::new(&[(0, "leader", "running"), (1, "replica", "streaming")]);
    let s = initialised(with_peers(unit(0, true), &[1, 2]), &[0]);
    let out = w.go(&s, changed(&s));
    assert_eq!(members(&out.state), [addr(0), addr(1), addr(2)]);
    assert!(out.state.deferred.is_empty());
}

#[test]
fn changed_on_a_unit_not_yet_in_the_cluster_returns() {
    let w = World::new(&[(0, "leader", "running"), (1, "replica", "streaming")]);
    let s = initialised(with_peers(unit(2, false), &[0, 1]), &[0, 1]);
    let out = w.go(&s, changed(&s));
    assert!(out.state.deferred.is_empty());
    assert_eq!(patroni_yml(&out.state), None);
    assert!(!out.state.container(CONTAINER).unwrap().is_running(SERVICE));
    assert_eq!(
        waiting(&out.state),
        "waiting for the leader to add this unit to the cluster"
    );
}

#[test]
fn changed_member_reloads_patroni_when_its_config_changes() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = initialised(with_peers(unit(1, false), &[0, 2]), &[0, 1]);
    let first = w.go(&s, changed(&s)).state;
    let ops = |s: &State| s.container(CONTAINER).unwrap().ops.clone();
    // Patroni, then the exporter beside it.
    assert_eq!(
        ops(&first),
        [
            ServiceOp::Start(SERVICE.into()),
            ServiceOp::Start(postgresql_k8s::workload::EXPORTER_SERVICE.into())
        ]
    );
    // Nothing changed: nothing sent.
    let same = w.go(&first, changed(&first)).state;
    assert_eq!(ops(&same), ops(&first));
    // The leader admitted unit 2: replication from it is allowed after a reload.
    let grown = initialised(same, &[0, 1, 2]);
    let out = w.go(&grown, changed(&grown)).state;
    assert!(patroni_yml(&out)
        .unwrap()
        .contains("host replication replication 127.0.1.3/32"));
    assert_eq!(
        ops(&out).last(),
        Some(&ServiceOp::Signal("SIGHUP".into(), SERVICE.into()))
    );
}

/// The unit secret with a key and a certificate issued for it; returns the
/// certificate too.
fn with_tls(s: State) -> (State, String) {
    let key = PrivateKey::generate().unwrap();
    let subject = Subject::new("pg-1", vec![], &addr(1));
    let cert = TestCa::new("ca").issue(&tls_certificates::csr(&key, &subject).unwrap(), 30);
    let content = SecretContent::new()
        .with("key", key.pem())
        .with("cert", cert.as_str())
        .with("cauth", "CA");
    let mut secret = SecretState::new(
        SecretId::parse("c0000000000000000b01").unwrap(),
        Owner::Unit,
        content,
    );
    secret.owner_label = Some(state::unit_secret_label(APP));
    (s.with_secret(secret), cert)
}

fn running_member() -> (World, State) {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    (w, s)
}

/// The leader's grant of unit 1's turn in the rolling restart, as unit 1
/// sees it in the peer application bag.
fn granted_its_turn(mut s: State) -> State {
    let roll = Roll {
        generation: 1,
        grant: Some(Grant {
            unit: unit_name(1),
            step: Step::Restart,
        }),
        restarted: 0,
        total: 1,
        halt: None,
    };
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .insert(
            state::ROLLING_RESTART.into(),
            serde_json::to_string(&roll).unwrap(),
        );
    s
}

#[test]
fn turning_tls_on_restarts_postgresql_in_its_turn() {
    let (w, s) = running_member();
    let (s, cert) = with_tls(s);
    let out = w.go(&s, changed(&s));
    // The configuration and files at once (a reload); the restart waits for
    // its turn.
    assert!(w.patroni.cluster_state().restarts.is_empty());
    assert_eq!(peer_unit(&out.state)[state::TLS_RESTART], "on");
    assert_eq!(peer_unit(&out.state)[state::RESTART_PENDING], "true");
    assert!(!peer_unit(&out.state).contains_key(state::TLS_CA));
    assert_eq!(w.patroni.cluster_state().last_ca.as_deref(), Some("CA"));
    let doc = patroni_doc(&out.state);
    assert_eq!(doc["postgresql"]["parameters"]["ssl"], "on", "{doc}");
    assert_eq!(
        doc["restapi"]["certfile"],
        "/var/lib/postgresql/data/cert.pem"
    );
    // TLS is offered, not required: the charms' own sessions do not use it.
    assert!(doc["postgresql"]["pg_hba"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap() == "host all all 0.0.0.0/0 scram-sha-256"));
    let file = &out.state.container(CONTAINER).unwrap().files["/var/lib/postgresql/data/cert.pem"];
    assert_eq!(
        (file.content.as_slice(), file.permissions),
        (cert.as_bytes(), 0o400)
    );
    // Its turn: restarted, it serves TLS.
    let s = granted_its_turn(out.state);
    let out = w.go(&s, changed(&s));
    assert_eq!(w.patroni.cluster_state().restarts, [addr(1)]);
    assert_eq!(peer_unit(&out.state)[state::TLS], "enabled");
    assert_eq!(peer_unit(&out.state)[state::TLS_CA], "CA");
    assert!(!peer_unit(&out.state).contains_key(state::TLS_RESTART));
    // Done once: the next change does not restart again.
    w.go(&out.state, changed(&out.state));
    assert_eq!(w.patroni.cluster_state().restarts.len(), 1);
}

#[test]
fn turning_tls_off_restarts_postgresql_in_its_turn() {
    let (w, mut s) = running_member();
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_unit_data = bag(&[(state::TLS, "enabled"), (state::TLS_CA, "CA")]);
    let out = w.go(&s, changed(&s));
    // The reload stopped serving TLS: `tls-ca` goes at once, so that clients
    // are told; the restart waits for its turn.
    assert!(w.patroni.cluster_state().restarts.is_empty());
    assert!(!peer_unit(&out.state).contains_key(state::TLS_CA));
    assert_eq!(peer_unit(&out.state)[state::TLS_RESTART], "off");
    assert!(!patroni_yml(&out.state).unwrap().contains("ssl: "));
    let s = granted_its_turn(out.state);
    let out = w.go(&s, changed(&s));
    assert_eq!(w.patroni.cluster_state().restarts, [addr(1)]);
    assert!(!peer_unit(&out.state).contains_key(state::TLS));
    assert!(!peer_unit(&out.state).contains_key(state::TLS_RESTART));
}

#[test]
fn tls_unchanged_does_not_restart() {
    let (w, s) = running_member();
    w.go(&s, changed(&s));
    assert!(w.patroni.cluster_state().restarts.is_empty());
}

#[test]
fn changed_defers_while_the_member_has_not_started() {
    let w = World::new(&[(0, "leader", "running"), (1, "replica", "starting")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    let out = w.go(&s, changed(&s));
    assert_eq!(out.state.deferred.len(), 1);
    assert_eq!(waiting(&out.state), "awaiting for member to start");
    assert!(
        patroni_yml(&out.state).is_some(),
        "configured before waiting"
    );
}

#[test]
fn changed_defers_while_patronis_api_does_not_answer() {
    let (w, s) = running_member();
    w.patroni.set_down(&addr(1), true);
    let out = w.go(&s, changed(&s));
    assert_eq!(out.state.deferred.len(), 1);
    assert_eq!(waiting(&out.state), "awaiting for member to start");
}

/// A client relation already served, without secrets, with stale endpoints.
fn served_client(s: State) -> State {
    let mut relation = charm_testing::RelationState::new(state::DATABASE, 5, "client-app")
        .remote_app_data(&[("database", "shop")])
        .remote_unit("client-app/0", &[]);
    relation.local_app_data = bag(&[
        ("database", "shop"),
        ("username", "relation_id_5"),
        ("password", "client-pw"),
        ("endpoints", "127.0.1.1:5432"),
        ("read-only-endpoints", "127.0.1.1:5432"),
        (
            "uris",
            "postgresql://relation_id_5:client-pw@127.0.1.1:5432/shop",
        ),
    ]);
    s.with_relation(relation)
}

#[test]
fn changed_leader_updates_read_only_endpoints_of_clients() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = served_client(initialised(with_peers(unit(0, true), &[1]), &[0, 1]));
    let out = w.go(&s, changed(&s));
    let client = &out.state.relation(5).unwrap().local_app_data;
    assert_eq!(client["read-only-endpoints"], "127.0.1.2:5432");
    assert_eq!(client["endpoints"], "127.0.1.1:5432");
    assert_eq!(client["password"], "client-pw", "credentials kept");
}

#[test]
fn changed_follower_leaves_client_relations_alone() {
    let (w, s) = running_member();
    let s = served_client(s);
    let before = s.relation(5).unwrap().local_app_data.clone();
    let out = w.go(&s, changed(&s));
    assert_eq!(out.state.relation(5).unwrap().local_app_data, before);
}

#[test]
fn changed_sets_active_with_the_role() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let leader = initialised(with_peers(unit(0, true), &[1]), &[0, 1]);
    assert_eq!(
        w.go(&leader, changed(&leader)).state.unit_status,
        Status::Active("Primary".into())
    );
    let follower = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    assert_eq!(
        w.go(&follower, changed(&follower)).state.unit_status,
        Status::Active("Replica".into())
    );
    // secret-changed runs the same flow.
    let app_secret = follower
        .secret(&SecretId::parse(APP_SECRET).unwrap())
        .unwrap();
    assert_eq!(
        w.go(&follower, event::secret_changed(app_secret))
            .state
            .unit_status,
        Status::Active("Replica".into())
    );
}

// ----- relation-departed -----

/// Leader 0 with units 1 and 2 (2 leaving) and a served client.
fn shrinking() -> (World, State) {
    let w = World::new(&[
        (0, "leader", "running"),
        (1, "sync_standby", "streaming"),
        (2, "sync_standby", "streaming"),
    ]);
    let mut s = served_client(initialised(with_peers(unit(0, true), &[1, 2]), &[0, 1, 2]));
    s.dying_units.insert(unit_name(2));
    (w, s)
}

#[test]
fn departed_on_a_follower_does_nothing() {
    let (w, s) = shrinking();
    let s = State { leader: false, ..s };
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    assert_eq!(members(&out.state), [addr(0), addr(1), addr(2)]);
    assert!(out.state.deferred.is_empty());
    assert!(w.patroni.cluster_state().patches.is_empty());
}

#[test]
fn departed_on_the_departing_leader_does_nothing() {
    let (w, s) = shrinking();
    let out = w.go(&s, departed(&s, 2, &unit_name(0)));
    assert_eq!(members(&out.state), [addr(0), addr(1), addr(2)]);
    assert!(w.patroni.cluster_state().patches.is_empty());
}

#[test]
fn departed_defers_before_initialisation() {
    let (w, s) = shrinking();
    let s = founded(
        {
            let mut s = s;
            s.relations
                .iter_mut()
                .find(|r| r.id == PEER_ID)
                .unwrap()
                .local_app_data
                .clear();
            s
        },
        &[0, 1, 2],
    );
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    assert_eq!(out.state.deferred.len(), 1);
    assert_eq!(members(&out.state), [addr(0), addr(1), addr(2)]);
}

#[test]
fn departed_updates_read_only_endpoints_without_the_departed_unit() {
    let (w, s) = shrinking();
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    let client = &out.state.relation(5).unwrap().local_app_data;
    assert_eq!(client["read-only-endpoints"], "127.0.1.2:5432");
}

#[test]
fn departed_removes_the_departed_unit_from_the_members() {
    let (w, s) = shrinking();
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    assert_eq!(members(&out.state), [addr(0), addr(1)]);
    assert!(out.state.deferred.is_empty());
}

#[test]
fn departed_deletes_the_departed_members_key_from_the_dcs() {
    let (w, s) = shrinking();
    let scope = "patroni-postgresql-k8s";
    w.dcs.set(
        scope,
        postgresql_k8s::dcs_keys::ScopeKeys {
            members: [(member(2), "running".to_string())].into(),
            ..Default::default()
        },
    );
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    assert_eq!(
        w.dcs.store().deleted_members,
        [(scope.to_string(), member(2))]
    );
    assert!(logged(
        &out.state,
        "deleted member postgresql-k8s-2's key from cluster patroni-postgresql-k8s"
    ));
    // In the cluster's current generation; a DCS that does not answer is
    // logged and holds nothing up.
    let (w, s) = shrinking();
    let mut s = s;
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .insert(state::GENERATION.into(), "2".into());
    w.dcs.0.borrow_mut().down = true;
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    assert!(out.state.deferred.is_empty());
    assert!(logged(
        &out.state,
        "cannot delete member postgresql-k8s-2's key from cluster patroni-postgresql-k8s-gen2"
    ));
}

#[test]
fn departed_patches_synchronous_settings_for_the_smaller_cluster() {
    let (w, s) = shrinking();
    w.go(&s, departed(&s, 2, &unit_name(2)));
    let patches = w.patroni.cluster_state().patches;
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0]["synchronous_node_count"], 1,
        "all = the other planned unit"
    );
    assert_eq!(patches[0]["synchronous_mode_strict"], true);
    // majority of 2 planned units is 1; strict off by option.
    let (w, mut s) = shrinking();
    s.config
        .insert("synchronous_node_count".into(), "majority".into());
    s.config
        .insert("synchronous_mode_strict".into(), false.into());
    w.go(&s, departed(&s, 2, &unit_name(2)));
    let patch = &w.patroni.cluster_state().patches[0];
    assert_eq!(
        (
            patch["synchronous_node_count"].clone(),
            patch["synchronous_mode_strict"].clone()
        ),
        (1.into(), false.into())
    );
}

#[test]
fn departed_to_a_single_unit_turns_synchronous_replication_off() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let mut s = initialised(with_peers(unit(0, true), &[1]), &[0, 1]);
    s.dying_units.insert(unit_name(1));
    let out = w.go(&s, departed(&s, 1, &unit_name(1)));
    assert_eq!(members(&out.state), [addr(0)]);
    let patch = &w.patroni.cluster_state().patches[0];
    assert_eq!(patch["synchronous_node_count"], 0);
    assert_eq!(patch["synchronous_mode_strict"], false);
}

#[test]
fn departed_defers_when_patroni_cannot_take_the_settings() {
    let (w, s) = shrinking();
    for n in 0..3 {
        w.patroni.set_down(&addr(n), true);
    }
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(waiting(&out.state).starts_with("cannot update the synchronous settings"));
    assert_eq!(
        members(&out.state),
        [addr(0), addr(1)],
        "the earlier steps stand"
    );
}

#[test]
fn departed_sends_no_settings_from_options_it_cannot_apply() {
    // An invalid option, and a time zone the container lacks: the members
    // shrink, no settings are sent, the status names the option.
    for (option, value) in [
        ("vacuum_autovacuum_naptime", serde_json::json!(0)),
        ("request_time_zone", serde_json::json!("Europe/Atlantis")),
    ] {
        let (w, mut s) = shrinking();
        s.config.insert(option.into(), value);
        let out = w.go(&s, departed(&s, 2, &unit_name(2)));
        assert_eq!(members(&out.state), [addr(0), addr(1)]);
        assert!(w.patroni.cluster_state().patches.is_empty(), "{option}");
        assert!(out.state.deferred.is_empty(), "{option}");
        assert!(
            matches!(&out.state.unit_status, Status::Blocked(m) if m.contains(option)),
            "{option}: {:?}",
            out.state.unit_status
        );
    }
    // A time zone the container cannot confirm yet: the settings wait.
    let (w, mut s) = shrinking();
    s.config
        .insert("request_time_zone".into(), "Europe/Paris".into());
    s.containers.get_mut(CONTAINER).unwrap().can_connect = false;
    let out = w.go(&s, departed(&s, 2, &unit_name(2)));
    assert!(w.patroni.cluster_state().patches.is_empty());
    assert_eq!(out.state.deferred.len(), 1);
}
