//! A new cluster generation (`docs/postgresql-flows.md`, "A new cluster
//! generation") on the in-memory model: the leader's questions, each branch
//! by name, what a new generation does, the new cluster's initialisation, and
//! the DCS keys removed when the last unit leaves.
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | no generation recorded → the scope used before generations | `without_a_generation_the_scope_is_the_one_used_before` |
//! | a started member records its cluster (`member-of`) | `a_started_member_records_the_cluster_it_is_a_member_of` |
//! | Does a unit hold a member of the current cluster? yes (this one) → none | `a_leader_that_is_a_member_keeps_the_cluster` |
//! | yes (a peer) → none | `a_peer_holding_a_member_keeps_the_cluster_for_a_new_leader` |
//! | Does this unit's data directory hold a whole cluster? yes → none | `a_leader_with_a_whole_data_directory_keeps_it` |
//! | Did every previous member depart? yes → Does any member still run or make PostgreSQL? no → lost | `every_member_lost_starts_a_new_generation` |
//! | yes: this unit's member (Patroni's `/cluster`) → none | `a_leader_whose_member_is_at_work_keeps_the_cluster` |
//! | yes: the leader key or a working member in the DCS → none | `a_departed_cluster_whose_leader_key_lives_is_not_lost_yet` |
//! | Has the cluster been initialised? yes → none | `an_initialised_cluster_is_never_taken_for_an_interrupted_bootstrap`, `a_replica_still_catching_up_is_left_alone` |
//! | Has it admitted members other than this unit? yes → none | `a_cluster_that_admitted_others_finished_its_bootstrap` |
//! | Does the DCS hold a stalled bootstrap? no: finished, led, in progress, unknown → none | `a_finished_bootstrap_is_not_interrupted`, `a_bootstrap_in_progress_is_not_interrupted`, `an_unreadable_dcs_decides_nothing` |
//! | Is this unit's member still idle a moment later? it does not answer → none | `a_silent_member_is_not_taken_for_a_stalled_one` |
//! | Has this application founded nothing yet, its scope holding a bootstrapped cluster nobody leads or runs? yes → abandoned | `a_new_application_on_an_abandoned_cluster_of_its_name_starts_a_new_generation` |
//! | no: led, a member at work → none | `a_new_application_waits_on_a_cluster_still_led_or_at_work` |
//! | yes → interrupted bootstrap: the half-made data directory is moved aside | `an_interrupted_bootstrap_starts_a_new_generation_and_moves_the_data_aside` |
//! | Start a new cluster generation: generation n + 1, Patroni restarted in the new scope | `a_new_generation_counts_on_and_restarts_patroni_in_the_new_scope` |
//! | while the new cluster bootstraps, a hook does not wait for its member (the status shows) | `while_a_new_cluster_bootstraps_no_hook_waits_for_its_member` |
//! | the new cluster's initialisation: clients' users made again with their passwords | `the_new_cluster_is_initialised_and_clients_get_their_users_back` |
//! | stop: the last unit leaving deletes the cluster's keys | `the_last_unit_leaving_deletes_the_clusters_keys` |
//! | stop: a unit that stops while others stay keeps them | `a_unit_stopping_while_others_stay_keeps_the_keys` |
//! | stop: the DCS does not answer → logged, the unit still goes | `the_last_unit_leaves_even_when_the_dcs_does_not_answer` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, LogLevel, Status};
use charm_testing::{event, ContainerState, ServiceOp, State};
use postgresql_k8s::dcs_keys::ScopeKeys;
use postgresql_k8s::flows::recovery::{ABANDONED, INTERRUPTED, LOST};
use postgresql_k8s::state;
use postgresql_k8s::workload::{CONTAINER, SERVICE};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::*;

const OLD_SCOPE: &str = "patroni-postgresql-k8s";
const GEN1: &str = "patroni-postgresql-k8s-gen1";
const CLIENT: u64 = 5;
const MOVE_ASIDE: &str = "/var/lib/postgresql/data/move-aside";

fn pebble_ready() -> Event {
    event::pebble_ready(CONTAINER)
}

fn peer_mut(s: &mut State) -> &mut charm_testing::RelationState {
    s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap()
}

/// Sets keys of this unit's peer bag.
fn with_unit_bag(mut s: State, data: &[(&str, &str)]) -> State {
    for (k, v) in data {
        peer_mut(&mut s)
            .local_unit_data
            .insert(k.to_string(), v.to_string());
    }
    s
}

/// Sets keys of the peer application bag.
fn with_app_bag(mut s: State, data: &[(&str, &str)]) -> State {
    for (k, v) in data {
        peer_mut(&mut s)
            .local_app_data
            .insert(k.to_string(), v.to_string());
    }
    s
}

/// A data directory holding `files` (relative to it).
fn with_data(mut s: State, files: &[&str]) -> State {
    let mut container = s.container(CONTAINER).unwrap().clone();
    for f in files {
        container = container.with_file(&format!("{DATA_DIR}/{f}"), b"x");
    }
    s.containers.insert(CONTAINER.into(), container);
    s
}

/// A whole cluster's data directory.
fn whole(s: State) -> State {
    with_data(s, &["PG_VERSION", "global/pg_control", "base/1/112"])
}

/// An initdb that stopped half-way.
fn half_made(s: State) -> State {
    with_data(s, &["PG_VERSION", "base/1/112"])
}

/// Unit 1, the leader, alone after unit 0 (the only member of an initialised
/// cluster) is gone; its own Patroni, if started, waits in the old scope.
fn lost(members: &[(u32, &str, &str)]) -> (World, State) {
    let w = World::new(members);
    let s = initialised(unit(1, true), &[0]);
    (w, s)
}

/// Unit 0, the leader and the cluster's founder, its member stopped, the
/// DCS holding `keys` for the old scope.
fn founder(keys: ScopeKeys) -> (World, State) {
    let w = World::new(&[(0, "replica", "stopped")]);
    w.dcs.set(OLD_SCOPE, keys);
    let s = with_app_bag(
        unit(0, true),
        &[(
            state::ENDPOINTS,
            &serde_json::to_string(&[addr(0)]).unwrap(),
        )],
    );
    (w, s)
}

/// What a bootstrap killed half-way leaves in etcd.
fn stalled() -> ScopeKeys {
    ScopeKeys {
        initialize: Some(String::new()),
        leader: None,
        members: BTreeMap::from([(member(0), "stopped".to_string())]),
    }
}

fn no_new_generation(out: &State) {
    assert!(
        !peer_app(out).contains_key(state::GENERATION),
        "{:?}",
        peer_app(out)
    );
    assert!(!peer_app(out).contains_key(state::NEW_CLUSTER));
    assert!(
        !matches!(&out.unit_status, Status::Maintenance(m) if m.starts_with("bootstrapping a new cluster")),
        "{:?}",
        out.unit_status
    );
}

fn logged_at(s: &State, level: LogLevel, text: &str) -> bool {
    s.logs.iter().any(|(l, m)| *l == level && m.contains(text))
}

// ----- the scope and member-of -----

#[test]
fn without_a_generation_the_scope_is_the_one_used_before() {
    let w = World::new(&[(0, "leader", "running")]);
    let out = w.go(&initialised(unit(0, true), &[0]), pebble_ready());
    assert_eq!(patroni_doc(&out.state)["scope"], OLD_SCOPE);
    no_new_generation(&out.state);
}

#[test]
fn a_started_member_records_the_cluster_it_is_a_member_of() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = with_app_bag(
        initialised(with_peers(unit(1, false), &[0]), &[0, 1]),
        &[(state::GENERATION, "3")],
    );
    let out = w.go(&s, pebble_ready());
    let scope = "patroni-postgresql-k8s-gen3";
    assert_eq!(patroni_doc(&out.state)["scope"], scope);
    assert_eq!(peer_unit(&out.state)[state::MEMBER_OF], scope);

    // A member that has not started records nothing.
    w.set_members(&[(0, "leader", "running"), (1, "replica", "starting")]);
    let out = w.go(&s, pebble_ready());
    assert!(!peer_unit(&out.state).contains_key(state::MEMBER_OF));
}

// ----- the leader's questions: no new generation -----

#[test]
fn a_leader_that_is_a_member_keeps_the_cluster() {
    // Even with every listed member gone and etcd stalled: it holds the cluster.
    let (w, s) = lost(&[]);
    w.dcs.set(OLD_SCOPE, stalled());
    let s = with_unit_bag(s, &[(state::MEMBER_OF, OLD_SCOPE)]);
    let out = w.go(&s, pebble_ready());
    no_new_generation(&out.state);
    assert_eq!(patroni_doc(&out.state)["scope"], OLD_SCOPE);
}

#[test]
fn a_peer_holding_a_member_keeps_the_cluster_for_a_new_leader() {
    let (w, s) = lost(&[]);
    let mut s = with_peers(s, &[2]);
    peer_mut(&mut s)
        .remote_units
        .get_mut(&unit_name(2))
        .unwrap()
        .insert(state::MEMBER_OF.into(), OLD_SCOPE.into());
    let out = w.go(&s, pebble_ready());
    no_new_generation(&out.state);
}

#[test]
fn a_leader_with_a_whole_data_directory_keeps_it() {
    let (w, s) = lost(&[(1, "replica", "stopped")]);
    let out = w.go(&whole(s), pebble_ready());
    no_new_generation(&out.state);
    let container = out.state.container(CONTAINER).unwrap();
    assert!(
        !container.files.contains_key(MOVE_ASIDE),
        "never moved aside"
    );
    assert_eq!(patroni_doc(&out.state)["scope"], OLD_SCOPE);
}

#[test]
fn a_leader_whose_member_is_at_work_keeps_the_cluster() {
    let (w, s) = lost(&[(1, "replica", "creating replica")]);
    let out = w.go(&half_made(s), pebble_ready());
    no_new_generation(&out.state);
}

#[test]
fn a_departed_cluster_whose_leader_key_lives_is_not_lost_yet() {
    // The old primary's lock has not expired: it may still be running.
    let (w, s) = lost(&[(1, "replica", "stopped")]);
    w.dcs.set(
        OLD_SCOPE,
        ScopeKeys {
            initialize: Some("7301234567890123456".into()),
            leader: Some(member(0)),
            members: BTreeMap::new(),
        },
    );
    let out = w.go(&s, pebble_ready());
    no_new_generation(&out.state);
    // Nor one whose member the DCS says is at work.
    w.dcs.set(
        OLD_SCOPE,
        ScopeKeys {
            members: BTreeMap::from([(member(0), "running".to_string())]),
            ..ScopeKeys::default()
        },
    );
    let out = w.go(&s, pebble_ready());
    no_new_generation(&out.state);
}

#[test]
fn a_cluster_that_admitted_others_finished_its_bootstrap() {
    let (w, s) = founder(stalled());
    let s = with_app_bag(
        with_peers(s, &[1]),
        &[(
            state::ENDPOINTS,
            &serde_json::to_string(&[addr(0), addr(1)]).unwrap(),
        )],
    );
    let out = w.go(&half_made(s), pebble_ready());
    no_new_generation(&out.state);
}

#[test]
fn an_initialised_cluster_is_never_taken_for_an_interrupted_bootstrap() {
    // A deployment from before `member-of`: nothing recorded, etcd looks
    // stalled, the member stopped, its data half there; but the cluster was
    // initialised, so its bootstrap finished.
    let (w, s) = founder(stalled());
    let s = half_made(with_app_bag(s, &[(state::CLUSTER_INITIALISED, "True")]));
    let out = w.go(&s, pebble_ready());
    no_new_generation(&out.state);
}

#[test]
fn a_replica_still_catching_up_is_left_alone() {
    // The leader unit is a new replica copying the primary: half its data
    // is there, it records no membership yet.
    let w = World::new(&[(0, "leader", "running"), (1, "replica", "creating replica")]);
    w.dcs.set(
        OLD_SCOPE,
        ScopeKeys {
            initialize: Some("7301234567890123456".into()),
            leader: Some(member(0)),
            members: BTreeMap::from([(member(0), "running".to_string())]),
        },
    );
    let s = half_made(initialised(with_peers(unit(1, true), &[0]), &[0, 1]));
    let out = w.go(&s, pebble_ready());
    no_new_generation(&out.state);
    // Even were the primary's member silent and etcd to look stalled.
    w.set_members(&[(1, "replica", "stopped")]);
    w.dcs.set(OLD_SCOPE, stalled());
    let out = w.go(&s, pebble_ready());
    no_new_generation(&out.state);
}

#[test]
fn a_finished_bootstrap_is_not_interrupted() {
    for keys in [
        ScopeKeys {
            initialize: Some("7301234567890123456".into()),
            ..stalled()
        },
        ScopeKeys {
            leader: Some(member(0)),
            ..stalled()
        },
        ScopeKeys::default(),
    ] {
        let (w, s) = founder(keys.clone());
        let out = w.go(&half_made(s), pebble_ready());
        no_new_generation(&out.state);
        let container = out.state.container(CONTAINER).unwrap();
        assert!(!container.files.contains_key(MOVE_ASIDE), "{keys:?}");
    }
}

#[test]
fn a_bootstrap_in_progress_is_not_interrupted() {
    // Patroni has taken `initialize` and runs initdb: its member says so.
    let (w, s) = founder(stalled());
    w.set_members(&[(0, "replica", "initializing new cluster")]);
    let out = w.go(&half_made(s.clone()), pebble_ready());
    no_new_generation(&out.state);
    // The DCS may say so before the member's API does.
    w.set_members(&[(0, "replica", "stopped")]);
    w.dcs.set(
        OLD_SCOPE,
        ScopeKeys {
            members: BTreeMap::from([(member(0), "initializing new cluster".to_string())]),
            ..stalled()
        },
    );
    let out = w.go(&half_made(s), pebble_ready());
    no_new_generation(&out.state);
}

#[test]
fn an_unreadable_dcs_decides_nothing() {
    let (w, s) = founder(stalled());
    w.dcs.0.borrow_mut().down = true;
    let out = w.go(&half_made(s), pebble_ready());
    no_new_generation(&out.state);
    assert!(logged(
        &out.state,
        "cannot read cluster patroni-postgresql-k8s's keys"
    ));
}

#[test]
fn a_silent_member_is_not_taken_for_a_stalled_one() {
    let (w, s) = founder(stalled());
    w.set_members(&[]);
    let out = w.go(&half_made(s), pebble_ready());
    no_new_generation(&out.state);
}

/// What a removed application of the same name leaves in etcd: its
/// cluster bootstrapped, its leader key deleted, its members stopped.
fn abandoned() -> ScopeKeys {
    ScopeKeys {
        initialize: Some("7301234567890123456".into()),
        leader: None,
        members: BTreeMap::from([(member(0), "stopped".to_string())]),
    }
}

#[test]
fn a_new_application_on_an_abandoned_cluster_of_its_name_starts_a_new_generation() {
    // A new application's leader: no member founded yet, Patroni stopped.
    let w = World::new(&[(0, "replica", "stopped")]);
    w.dcs.set(OLD_SCOPE, abandoned());
    let out = w.go(&unit(0, true), pebble_ready());
    let app = peer_app(&out.state);
    assert_eq!(app[state::GENERATION], "1");
    assert_eq!(app[state::NEW_CLUSTER], "abandoned");
    assert_eq!(members(&out.state), [addr(0)], "founded by this unit");
    assert_eq!(patroni_doc(&out.state)["scope"], GEN1);
    assert_eq!(out.state.unit_status, Status::Maintenance(ABANDONED.into()));
    assert!(logged_at(
        &out.state,
        LogLevel::Warning,
        "the DCS holds cluster patroni-postgresql-k8s, bootstrapped before this application founded anything"
    ));
}

#[test]
fn a_new_generation_skips_the_scopes_earlier_applications_of_its_name_left() {
    // The application was removed and deployed again twice: generation 0 and
    // generation 1 are both abandoned in the DCS.
    let w = World::new(&[(0, "replica", "stopped")]);
    w.dcs.set(OLD_SCOPE, abandoned());
    w.dcs.set(GEN1, abandoned());
    let out = w.go(&unit(0, true), pebble_ready());
    let app = peer_app(&out.state);
    assert_eq!(app[state::GENERATION], "2");
    assert_eq!(app[state::NEW_CLUSTER], "abandoned");
    assert_eq!(
        patroni_doc(&out.state)["scope"],
        "patroni-postgresql-k8s-gen2"
    );
    assert!(logged_at(
        &out.state,
        LogLevel::Info,
        "cluster patroni-postgresql-k8s-gen1 is taken in the DCS: skipping its generation"
    ));
}

#[test]
fn a_new_application_waits_on_a_cluster_still_led_or_at_work() {
    for keys in [
        ScopeKeys {
            leader: Some(member(0)),
            ..abandoned()
        },
        ScopeKeys {
            members: BTreeMap::from([(member(0), "running".to_string())]),
            ..abandoned()
        },
    ] {
        let w = World::new(&[(0, "replica", "stopped")]);
        w.dcs.set(OLD_SCOPE, keys.clone());
        let out = w.go(&unit(0, true), pebble_ready());
        no_new_generation(&out.state);
    }
}

// ----- a new generation -----

#[test]
fn every_member_lost_starts_a_new_generation() {
    // Unit 1's Patroni waits in the old scope for a leader that never comes.
    let (w, s) = lost(&[(1, "replica", "stopped")]);
    let s = with_app_bag(s, &[(state::PRIMARY, &member(0))]);
    let out = w.go(&s, pebble_ready());
    let app = peer_app(&out.state);
    assert_eq!(app[state::GENERATION], "1");
    assert_eq!(app[state::NEW_CLUSTER], "lost");
    assert_eq!(members(&out.state), [addr(1)], "founded by this unit");
    assert!(!app.contains_key(state::CLUSTER_INITIALISED));
    assert!(!app.contains_key(state::PRIMARY));
    assert_eq!(patroni_doc(&out.state)["scope"], GEN1);
    assert_eq!(out.state.unit_status, Status::Maintenance(LOST.into()));
    assert_eq!(out.state.app_status, Status::Maintenance(LOST.into()));
    assert_eq!(out.state.deferred.len(), 1, "its start wakes the charm");
    assert!(logged_at(
        &out.state,
        LogLevel::Warning,
        "every member of cluster patroni-postgresql-k8s was lost: bootstrapping cluster patroni-postgresql-k8s-gen1; the data the old cluster held is gone"
    ));
    let container = out.state.container(CONTAINER).unwrap();
    assert!(container.is_running(SERVICE));
    assert_eq!(
        container.running[SERVICE].command,
        format!("{LAUNCHER} {CONFIG_PATH}"),
        "through the launcher from the first generation on"
    );
    assert!(!container.files.contains_key(MOVE_ASIDE), "nothing to move");
    // A follower sees it too.
    let follower = with_app_bag(
        with_peers(unit(2, false), &[1]),
        &peer_app(&out.state)
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let seen = w.go(&follower, event::update_status());
    assert_eq!(seen.state.unit_status, Status::Maintenance(LOST.into()));
}

#[test]
fn an_interrupted_bootstrap_starts_a_new_generation_and_moves_the_data_aside() {
    let (w, s) = founder(stalled());
    let out = w.go(&half_made(s), pebble_ready());
    let app = peer_app(&out.state);
    assert_eq!(app[state::GENERATION], "1");
    assert_eq!(app[state::NEW_CLUSTER], "interrupted-bootstrap");
    assert_eq!(members(&out.state), [addr(0)]);
    assert_eq!(patroni_doc(&out.state)["scope"], GEN1);
    assert_eq!(
        out.state.unit_status,
        Status::Maintenance(INTERRUPTED.into())
    );
    let container = out.state.container(CONTAINER).unwrap();
    let target = format!("{DATA_DIR}.before-{GEN1}");
    assert_eq!(
        container.file_text(MOVE_ASIDE).as_deref(),
        Some(target.as_str())
    );
    assert!(
        container
            .files
            .contains_key(&format!("{DATA_DIR}/PG_VERSION")),
        "nothing deleted"
    );
    assert!(logged_at(
        &out.state,
        LogLevel::Warning,
        &format!("moved aside to {target} (kept, not deleted)")
    ));
    // The launcher moves it when Patroni starts in the new scope.
    let launcher = container.file_text(LAUNCHER).unwrap();
    assert!(
        launcher.contains(&format!("request='{MOVE_ASIDE}'")),
        "{launcher}"
    );
    assert!(launcher.contains(r#"mv "$data" "$target""#), "{launcher}");
    assert!(!launcher.contains("rm -r"), "never deletes data");
}

#[test]
fn a_new_generation_counts_on_and_restarts_patroni_in_the_new_scope() {
    // Generation 4's only member was lost; this unit's Patroni ran in it.
    let w = World::new(&[(1, "replica", "stopped")]);
    let s = with_app_bag(
        initialised(unit(1, true), &[0]),
        &[(state::GENERATION, "4")],
    );
    let first = w.go(&s, event::config_changed());
    assert_eq!(peer_app(&first.state)[state::GENERATION], "5");
    let scope = "patroni-postgresql-k8s-gen5";
    assert_eq!(patroni_doc(&first.state)["scope"], scope);

    // A unit whose Patroni already runs in an older scope restarts it: a
    // reload cannot change the scope.
    let mut s = with_app_bag(
        initialised(unit(1, true), &[0]),
        &[(state::GENERATION, "4")],
    );
    let mut container = first.state.container(CONTAINER).unwrap().clone();
    let old = container
        .file_text(CONFIG_PATH)
        .unwrap()
        .replace(scope, "patroni-postgresql-k8s-gen4");
    container = container.with_file(CONFIG_PATH, old.as_bytes());
    container.ops.clear();
    s.containers.insert(CONTAINER.into(), container);
    let out = w.go(&s, event::config_changed());
    let ops = &out.state.container(CONTAINER).unwrap().ops;
    assert!(ops.contains(&ServiceOp::Restart(SERVICE.into())), "{ops:?}");
    assert!(
        !ops.iter().any(|o| matches!(o, ServiceOp::Signal(..))),
        "{ops:?}"
    );
    assert!(logged(
        &out.state,
        &format!("Patroni restarted in cluster {scope}")
    ));
}

#[test]
fn while_a_new_cluster_bootstraps_no_hook_waits_for_its_member() {
    let (mut w, s) = lost(&[(1, "replica", "stopped")]);
    w.start_timeout = Duration::from_secs(2);
    let out = w.go(&s, pebble_ready());
    assert_eq!(peer_app(&out.state)[state::GENERATION], "1");
    // Patroni runs initdb in the new scope; another hook comes meanwhile.
    w.set_members(&[(1, "replica", "initializing new cluster")]);
    let started = Instant::now();
    let next = w.go(&half_made(out.state), event::update_status());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(next.state.unit_status, Status::Maintenance(LOST.into()));
    assert!(!next.state.deferred.is_empty(), "its start wakes the charm");
    // Outside a new generation, the hook waits for the member as before.
    let first = initialised(unit(1, true), &[1]);
    let started = Instant::now();
    let out = w.go(&first, pebble_ready());
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        out.state.unit_status,
        Status::Waiting("awaiting for member to start".into())
    );
}

#[test]
fn the_new_cluster_is_initialised_and_clients_get_their_users_back() {
    // A client served by the old cluster on unit 0.
    let w0 = World::new(&[(0, "leader", "running")]);
    w0.pg.0.borrow_mut().admin_group = true;
    let s0 = initialised(unit(0, true), &[0]).with_relation(client(CLIENT, "shop", &[]));
    let served = w0.go(
        &s0,
        event::relation_changed(s0.relation(CLIENT).unwrap(), None),
    );
    let password = w0.pg.server().users["relation_id_5"].0.clone();

    // Unit 0 is lost; unit 1 leads, with the client's relation and secrets.
    let (w, mut s) = lost(&[(1, "replica", "stopped")]);
    s.relations
        .push(served.state.relation(CLIENT).unwrap().clone());
    s.secrets = served.state.secrets.clone();
    let out = w.go(&s, pebble_ready());
    assert_eq!(out.state.unit_status, Status::Maintenance(LOST.into()));
    assert!(
        w.pg.server().users.is_empty(),
        "nothing made before the primary runs"
    );

    // Patroni has bootstrapped the new cluster; its start wakes the charm.
    w.set_members(&[(1, "leader", "running")]);
    let mut next = out.state.clone();
    next.containers.insert(
        CONTAINER.into(),
        whole(out.state.clone())
            .container(CONTAINER)
            .unwrap()
            .clone(),
    );
    let done = w.go(&next, event::update_status());
    let app = peer_app(&done.state);
    assert_eq!(app[state::CLUSTER_INITIALISED], "True");
    assert!(!app.contains_key(state::NEW_CLUSTER));
    assert_eq!(app[state::GENERATION], "1");
    assert_eq!(peer_unit(&done.state)[state::MEMBER_OF], GEN1);
    assert_eq!(done.state.unit_status, Status::Active("Primary".into()));
    let server = w.pg.server();
    assert_eq!(
        server.users["relation_id_5"].0, password,
        "the password the client holds"
    );
    assert!(server.databases.contains("shop"));
    assert!(server
        .grants
        .contains(&("shop".into(), "relation_id_5".into())));
    assert!(server.users.contains_key("monitoring"));
    assert!(logged_at(
        &done.state,
        LogLevel::Warning,
        "relation 5: relation_id_5 and database shop made again in the new cluster"
    ));
    assert!(done.state.logs.iter().all(|(_, m)| !m.contains(&password)));
    // The client is sent to the new primary.
    let bag = &done.state.relation(CLIENT).unwrap().local_app_data;
    assert_eq!(bag["endpoints"], format!("{}:5432", addr(1)));
    // The next hook finds the cluster held: nothing new.
    let again = w.go(&done.state, event::update_status());
    assert_eq!(peer_app(&again.state)[state::GENERATION], "1");
    assert_eq!(again.state.unit_status, Status::Active("Primary".into()));
}

// ----- the last unit leaves -----

fn leaving(w: &World, others: &[u32]) -> State {
    let s = initialised(with_peers(unit(0, true), others), &[0]);
    let mut s = w.go(&s, pebble_ready()).state;
    s.dying_units.insert(unit_name(0));
    s
}

#[test]
fn the_last_unit_leaving_deletes_the_clusters_keys() {
    let w = World::new(&[(0, "leader", "running")]);
    w.dcs.set(OLD_SCOPE, stalled());
    let s = leaving(&w, &[]);
    let out = w.go(&s, Event::Stop);
    assert_eq!(w.dcs.store().deleted_clusters, [OLD_SCOPE]);
    assert!(w.dcs.store().scopes.is_empty());
    assert!(!out.state.container(CONTAINER).unwrap().is_running(SERVICE));
    assert!(logged(
        &out.state,
        "the last unit leaves: deleted cluster patroni-postgresql-k8s's"
    ));
}

#[test]
fn a_unit_stopping_while_others_stay_keeps_the_keys() {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = leaving(&w, &[1]);
    let out = w.go(&s, Event::Stop);
    assert!(w.dcs.store().deleted_clusters.is_empty());
    assert!(out.state.container(CONTAINER).unwrap().is_running(SERVICE));
    // Nor does the last unit when it only restarts (it is not going away).
    let w = World::new(&[(0, "leader", "running")]);
    let mut s = leaving(&w, &[]);
    s.dying_units.clear();
    w.go(&s, Event::Stop);
    assert!(w.dcs.store().deleted_clusters.is_empty());
}

#[test]
fn the_last_unit_leaves_even_when_the_dcs_does_not_answer() {
    let w = World::new(&[(0, "leader", "running")]);
    let s = leaving(&w, &[]);
    w.dcs.0.borrow_mut().down = true;
    let out = w.go(&s, Event::Stop);
    assert!(out.state.deferred.is_empty());
    assert!(logged_at(
        &out.state,
        LogLevel::Warning,
        "the last unit leaves, but cluster patroni-postgresql-k8s's keys stay in the DCS"
    ));
}

#[test]
fn a_container_without_patroni_yml_has_nothing_to_clean() {
    let w = World::new(&[]);
    let mut s = unit(0, true);
    s.dying_units.insert(unit_name(0));
    s.containers
        .insert(CONTAINER.into(), ContainerState::ready());
    let out = w.go(&s, Event::Stop);
    assert!(w.dcs.store().deleted_clusters.is_empty());
    assert!(out.state.logs.iter().all(|(l, _)| *l != LogLevel::Warning));
}
