//! The `backend-database` relation and the unit's lifecycle on the in-memory
//! model (`docs/pgbouncer-flows.md`).
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | backend relation-created: is this unit the leader? yes → ask for the pgbouncer database as SUPERUSER; no → return | `backend_created_asks_for_the_pgbouncer_database_as_superuser` |
//! | relation-changed: has PostgreSQL published endpoints and credentials? no → return, the status says what is missing or unusable (a user secret that cannot be read too) | `backend_data_that_is_incomplete_or_hostile_waits_with_a_reason` |
//! | is a PostgreSQL unit left in the relation? no → return; every unit waits with the reason, nothing is asked of PostgreSQL, clients keep their data | `a_backend_without_units_waits_on_every_unit_and_nothing_is_cleaned_up` |
//! | which cluster is it? none recorded, auth user not set up → set up the auth user and the auth file → record the cluster's identity → publish the configuration and serve it | `backend_changed_sets_up_the_auth_user_once_and_renders` |
//! | the one recorded, auth user set up → record → publish (new endpoints reach every file) | `the_same_cluster_returning_recreates_nothing`, `new_backend_endpoints_reach_every_file` |
//! | the primary moved (new `endpoints`) → publish; every process reloads (no restart, no client dropped) with the new host, and PgBouncer retries a pool whose server login failed after a second, not 15 | `a_primary_change_reloads_every_process_and_bounds_the_cached_login_failure` |
//! | none recorded, auth user set up (an older charm's state) → record, nothing recreated; converge records it too | `a_cluster_not_recorded_yet_is_recorded_without_recreating_anything` |
//! | another: a new cluster → recreate every client's user, with the password it has, and its database → set up the auth user → record → publish; followers follow | `a_new_cluster_gets_the_auth_user_and_every_client_back_with_the_passwords_they_have` |
//! | did PostgreSQL do all of it? no → is the auth user set up all the same? yes → publish, then defer (the identity unrecorded) | `a_client_that_cannot_be_recreated_holds_back_only_the_record` |
//! | cannot tell: PostgreSQL cannot be reached → set up before? no → defer; yes → publish the new endpoints, then defer | `a_backend_that_cannot_be_asked_defers_and_serves_new_endpoints_only_if_set_up_before` |
//! | relation-departed: is this unit departing? yes → add departing flag; relation-broken: is this unit departing (flag)? yes → return | `a_unit_leaving_the_backend_only_marks_itself` |
//! | relation-departed, no PostgreSQL unit left → return, nothing asked; relation-broken → forget the auth file, keep the console passwords and the cluster's identity → publish a configuration without databases and serve it | `backend_departing_last_unit_keeps_everything_and_broken_blocks` |
//! | relation-broken keeps the auth user's name; the next backend set up on the same cluster drops that user and its function | `a_backend_relation_made_again_drops_the_former_auth_user` |
//! | config-changed: an invalid option applies nothing | `invalid_config_blocks_with_the_option_and_applies_nothing` |
//! | pebble-ready: no peer relation or no container → defer | `pebble_ready_waits_for_the_container_and_the_peer_relation` |
//! | pebble-ready: the version read from the image, then converge (one service per process and the log rotation, started) | `pebble_ready_adds_one_service_per_process_and_the_log_rotation_and_starts_them`, `the_version_is_that_of_the_binary_first_on_path`, `an_image_with_pgbouncer_1_18_gets_files_it_accepts`, `an_image_without_pgbouncer_blocks` |
//! | upgrade-charm: the version read again, then converge | `upgrade_charm_reads_the_version_again` |
//! | upgrade-charm: then a rolling restart, one process at a time: SIGTERM (drain), then a start once it exited, or Pebble's restart after the drain time (its clients cut, a warning); the exporter stopped meanwhile | `upgrade_charm_drains_and_restarts_one_process_at_a_time` |
//! | rolling restart, before the first drain: the kernel's handover of queued connections (`net.ipv4.tcp_migrate_req`) off → turned on (logged); on → left; cannot be turned on → a warning that a connection may be reset | `a_rolling_restart_turns_on_the_handover_of_queued_connections`, `upgrade_charm_drains_and_restarts_one_process_at_a_time` |
//! | leader-elected: converge (the new leader publishes and points clients at itself) | `leader_elected_takes_over_publication_and_points_clients_at_itself` |
//! | the status, once per dispatch | `statuses_say_what_is_missing` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, LogLevel, Status};
use charm_testing::{event, ContainerState, ServiceOp, State};
use client_interface::provider::secret_label;
use pgbouncer_k8s::state::{self, BACKEND};
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::{FakeConnector, FakeServer, FIRST_CLUSTER};
use support::*;

#[test]
fn backend_created_asks_for_the_pgbouncer_database_as_superuser() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = with_backend(unit(0, true));
    let out = go(
        &pg,
        &s,
        event::relation_created(s.relation(BACKEND_ID).unwrap()),
    );
    let ours = &out.state.relation(BACKEND_ID).unwrap().local_app_data;
    assert_eq!(ours["database"], "pgbouncer");
    assert_eq!(ours["extra-user-roles"], "SUPERUSER");
    let requested: Vec<String> = serde_json::from_str(&ours["requested-secrets"]).unwrap();
    assert!(requested.contains(&"password".to_string()));

    let follower = with_backend(unit(1, false));
    let out = go(
        &pg,
        &follower,
        event::relation_created(follower.relation(BACKEND_ID).unwrap()),
    );
    assert!(out
        .state
        .relation(BACKEND_ID)
        .unwrap()
        .local_app_data
        .is_empty());
}

#[test]
fn backend_changed_sets_up_the_auth_user_once_and_renders() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    let server = pg.server();
    assert!(
        !server.users["pgbouncer_auth_relation_id_3"]
            .1
            .contains("Superuser"),
        "the auth user is no superuser"
    );
    let cfg = &peer_app(&s)[state::CFG_FILE];
    assert!(cfg.contains("auth_user = pgbouncer_auth_relation_id_3"));
    assert!(cfg.contains(
        "auth_query = SELECT username, password FROM pgbouncer_auth_relation_id_3.get_auth($1)"
    ));
    assert!(ini(&s, 0).contains("auth_query"));
    assert_eq!(s.unit_status, Status::Active(String::new()));

    assert_eq!(
        peer_app(&s)[state::BACKEND_CLUSTER],
        FIRST_CLUSTER,
        "the cluster set up is recorded"
    );

    let again = go(
        &pg,
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), Some("postgresql-k8s/0")),
    );
    assert_eq!(
        without_sessions(pg.server()),
        without_sessions(server),
        "set up once"
    );
    assert_eq!(again.state.secrets, s.secrets);
}

/// The server's state, leaving out which sessions were opened.
fn without_sessions(server: FakeServer) -> FakeServer {
    FakeServer {
        sessions: Vec::new(),
        ..server
    }
}

#[test]
fn new_backend_endpoints_reach_every_file() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = ready_leader(&pg).with_relation(client(4, "app_db", &[]));
    s = go(
        &pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state;
    let backend = s
        .relations
        .iter_mut()
        .find(|r| r.endpoint == BACKEND)
        .unwrap();
    backend
        .remote_app_data
        .insert("endpoints".into(), "10.0.1.2:5432".into());
    backend
        .remote_app_data
        .insert("read-only-endpoints".into(), "10.0.1.1:5432".into());
    let out = go(
        &pg,
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
    );
    let ini = ini(&out.state, 1);
    assert!(ini.contains("app_db = host=10.0.1.2 port=5432"), "{ini}");
    assert!(ini.contains("app_db_readonly = host=10.0.1.1 port=5432"));
}

#[test]
fn a_primary_change_reloads_every_process_and_bounds_the_cached_login_failure() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = ready_leader(&pg).with_relation(client(4, "app_db", &[]));
    s = go(
        &pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state;
    let before = s.container(CONTAINER).unwrap().ops.len();
    let backend = s
        .relations
        .iter_mut()
        .find(|r| r.endpoint == BACKEND)
        .unwrap();
    let old = backend.remote_app_data["endpoints"].clone();
    backend
        .remote_app_data
        .insert("endpoints".into(), "10.0.1.9:5432".into());
    let out = go(
        &pg,
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
    );
    let ops = &out.state.container(CONTAINER).unwrap().ops[before..];
    for i in 0..2 {
        let ini = ini(&out.state, i);
        assert!(ini.contains("app_db = host=10.0.1.9 port=5432"), "{ini}");
        assert!(!ini.contains(&format!("host={}", old.split(':').next().unwrap())));
        assert!(ini.contains("server_login_retry = 1\n"), "{ini}");
        let service = format!("pgbouncer_{i}");
        assert!(
            ops.contains(&charm_testing::ServiceOp::Signal("SIGHUP".into(), service)),
            "{ops:?}"
        );
    }
    assert!(
        ops.iter()
            .all(|op| matches!(op, charm_testing::ServiceOp::Signal(sig, _) if sig == "SIGHUP")),
        "a reload, no restart: {ops:?}"
    );
}

#[test]
fn backend_data_that_is_incomplete_or_hostile_waits_with_a_reason() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    for (key, value, phrase) in [
        (
            "endpoints",
            "",
            "waiting for PostgreSQL to publish its endpoints",
        ),
        ("endpoints", "evil host:5432", "unusable endpoints"),
        ("read-only-endpoints", "a:1,b;c:2", "invalid endpoint"),
        ("secret-user", "not-a-secret", "invalid secret-user"),
        (
            "secret-user",
            "secret:c0000000000000000dea",
            "user secret cannot be read: it is gone or not granted yet",
        ),
    ] {
        let mut s = with_backend(unit(0, true));
        let data = &mut s
            .relations
            .iter_mut()
            .find(|r| r.endpoint == BACKEND)
            .unwrap()
            .remote_app_data;
        if value.is_empty() {
            data.remove(key);
        } else {
            data.insert(key.into(), value.into());
        }
        let out = go(
            &pg,
            &s,
            event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
        );
        assert!(pg.server().users.is_empty(), "{key}={value}");
        match &out.state.unit_status {
            Status::Waiting(m) => assert!(m.contains(phrase), "{m} lacks {phrase}"),
            other => panic!("{other:?}"),
        }
    }
}

/// A leader serving client 4 (`app_db`) and client 5 (`other_db`, CREATEDB),
/// both answered.
fn serving_two_clients(pg: &FakeConnector) -> State {
    let mut s = ready_leader(pg)
        .with_relation(client(4, "app_db", &[]))
        .with_relation(client(5, "other_db", &[("extra-user-roles", "CREATEDB")]));
    for id in [4, 5] {
        s = go(
            pg,
            &s,
            event::relation_changed(s.relation(id).unwrap(), None),
        )
        .state;
    }
    assert!(s
        .relation(5)
        .unwrap()
        .local_app_data
        .contains_key("secret-user"));
    s
}

/// The password a client was handed, from its relation's user secret.
fn client_password(s: &State, id: u64) -> String {
    s.secret_by_label(&secret_label(state::DATABASE, id, "user"))
        .unwrap()
        .latest_content()
        .unwrap()
        .get("password")
        .unwrap()
        .to_string()
}

fn waiting_for_the_backend() -> Status {
    Status::Waiting("waiting for the backend: postgresql-k8s has no units".into())
}

#[test]
fn a_backend_without_units_waits_on_every_unit_and_nothing_is_cleaned_up() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = serving_two_clients(&pg);
    let server = pg.server();
    let ev = event::relation_departed(
        s.relation(BACKEND_ID).unwrap(),
        "postgresql-k8s/0",
        "postgresql-k8s/0",
    );

    // The leader: waits, opens no session, drops nothing, keeps serving its
    // configuration with the clients' databases, and keeps the clients' data.
    let gone = backend_units(s.clone(), &[], "10.0.1.1:5432");
    let out = go(&pg, &gone, ev.clone());
    assert_eq!(out.state.unit_status, waiting_for_the_backend());
    assert_eq!(
        pg.server(),
        server,
        "nothing asked of a backend that is gone"
    );
    assert_eq!(
        out.state.secrets, s.secrets,
        "the clients' passwords are kept"
    );
    for id in [4, 5] {
        assert_eq!(
            out.state.relation(id).unwrap().local_app_data,
            s.relation(id).unwrap().local_app_data,
            "client {id} keeps what it was told"
        );
    }
    assert_eq!(peer_app(&out.state), peer_app(&s));
    assert!(ini(&out.state, 0).contains("app_db = host=10.0.1.1"));

    // Whatever happens next asks nothing of it either: a new client waits, the
    // lifecycle converges without it, and the backend's data changing while
    // no unit is there reaches no session.
    let asking = out.state.clone().with_relation(client(6, "new_db", &[]));
    let asked = go(
        &pg,
        &asking,
        event::relation_changed(asking.relation(6).unwrap(), None),
    );
    assert_eq!(
        asked.state.deferred.len(),
        1,
        "the request waits for the backend"
    );
    for event in [
        Event::UpdateStatus,
        Event::ConfigChanged,
        Event::LeaderElected,
        event::relation_changed(gone.relation(BACKEND_ID).unwrap(), None),
    ] {
        let out = go(&pg, &out.state, event.clone());
        assert_eq!(
            out.state.unit_status,
            waiting_for_the_backend(),
            "{event:?}"
        );
    }
    assert_eq!(pg.server(), server, "no session opened");

    // A follower: waits with the same reason, and tries nothing.
    let follower = backend_units(
        share_from_leader(&s, with_backend(unit(1, false))),
        &[],
        "10.0.1.1:5432",
    );
    let out = go(&pg, &follower, ev);
    assert_eq!(out.state.unit_status, waiting_for_the_backend());
    assert_eq!(pg.server(), server);
}

#[test]
fn the_same_cluster_returning_recreates_nothing() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = serving_two_clients(&pg);
    let gone = backend_units(s.clone(), &[], "10.0.1.1:5432");
    let gone = go(
        &pg,
        &gone,
        event::relation_departed(
            s.relation(BACKEND_ID).unwrap(),
            "postgresql-k8s/0",
            "postgresql-k8s/0",
        ),
    )
    .state;
    let server = pg.server();
    let back = backend_units(gone, &["postgresql-k8s/1"], "10.0.1.1:5432");
    let out = go(
        &pg,
        &back,
        event::relation_changed(back.relation(BACKEND_ID).unwrap(), Some("postgresql-k8s/1")),
    );
    assert_eq!(
        pg.server().sessions.len(),
        server.sessions.len() + 1,
        "asked which cluster"
    );
    assert_eq!(
        without_sessions(pg.server()),
        without_sessions(server),
        "nothing recreated"
    );
    assert_eq!(out.state.secrets, s.secrets, "the auth file stays");
    assert_eq!(peer_app(&out.state)[state::BACKEND_CLUSTER], FIRST_CLUSTER);
    assert!(!out
        .state
        .logs
        .iter()
        .any(|(_, m)| m.contains("new cluster")));
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn a_new_cluster_gets_the_auth_user_and_every_client_back_with_the_passwords_they_have() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = serving_two_clients(&pg);
    let peers = s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap();
    peers
        .local_app_data
        .insert(state::READONLY_DBS.into(), r#"["reports"]"#.into());
    let passwords = [client_password(&s, 4), client_password(&s, 5)];
    let old_auth = s
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap()
        .latest_content()
        .unwrap()
        .get(state::AUTH_FILE)
        .unwrap()
        .to_string();

    // The only PostgreSQL unit goes; a new one bootstraps a new cluster (with
    // the `pgbouncer` database PostgreSQL creates for PgBouncer's request).
    let gone = backend_units(s.clone(), &[], "10.0.1.1:5432");
    let gone = go(
        &pg,
        &gone,
        event::relation_departed(
            s.relation(BACKEND_ID).unwrap(),
            "postgresql-k8s/0",
            "postgresql-k8s/0",
        ),
    )
    .state;
    pg.replace_cluster("7300000000000000002", &["pgbouncer"]);
    let back = backend_units(gone, &["postgresql-k8s/1"], "10.0.1.5:5432");
    let out = go(
        &pg,
        &back,
        event::relation_changed(back.relation(BACKEND_ID).unwrap(), Some("postgresql-k8s/1")),
    );
    let server = pg.server();

    // Every client's user with the password it already has, its database,
    // its grant; the auth user and its function everywhere.
    assert_eq!(server.users["relation_id_4"].0, passwords[0]);
    assert_eq!(server.users["relation_id_5"].0, passwords[1]);
    assert!(
        server.users["relation_id_5"].1.contains("CreateDb"),
        "its roles too"
    );
    for (db, user) in [("app_db", "relation_id_4"), ("other_db", "relation_id_5")] {
        assert!(server.databases.contains(db), "{db}");
        assert!(server.grants.contains(&(db.into(), user.into())), "{db}");
    }
    for db in ["pgbouncer", "postgres", "app_db", "other_db"] {
        assert!(
            server
                .auth_functions
                .contains(&(db.into(), "pgbouncer_auth_relation_id_3".into())),
            "the auth function in {db}"
        );
    }
    assert!(server.users.contains_key("pgbouncer_auth_relation_id_3"));
    for db in ["app_db", "other_db"] {
        let said = format!("database {db} was recreated empty: the backend is a new cluster");
        assert!(
            out.state
                .logs
                .iter()
                .any(|(level, m)| *level == LogLevel::Warning && m == &said),
            "{said}: {:?}",
            out.state.logs
        );
    }
    let app = peer_app(&out.state);
    assert_eq!(app[state::BACKEND_CLUSTER], "7300000000000000002");
    assert!(
        !app.contains_key(state::READONLY_DBS),
        "the old cluster's databases are forgotten"
    );
    assert!(app[state::CFG_FILE].contains("app_db = host=10.0.1.5 port=5432"));
    let new_auth = out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap()
        .latest_content()
        .unwrap()
        .get(state::AUTH_FILE)
        .unwrap()
        .to_string();
    assert_ne!(new_auth, old_auth, "the auth user's new password");
    assert!(new_auth.contains(&server.users["pgbouncer_auth_relation_id_3"].0));
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
    // The clients were told nothing new: their credentials work again as they are.
    for id in [4, 5] {
        assert_eq!(
            out.state.relation(id).unwrap().local_app_data,
            s.relation(id).unwrap().local_app_data
        );
    }

    // A follower takes the new auth file and endpoints, and serves again.
    let follower = backend_units(
        share_from_leader(&s, with_backend(unit(1, false))),
        &["postgresql-k8s/0"],
        "10.0.1.1:5432",
    );
    let served = go(
        &pg,
        &follower,
        event::relation_changed(follower.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/0")),
    )
    .state;
    let moved = backend_units(
        share_from_leader(&out.state, served),
        &["postgresql-k8s/1"],
        "10.0.1.5:5432",
    );
    let secret = moved
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap()
        .clone();
    let followed = go(&pg, &moved, event::secret_changed(&secret)).state;
    let files = followed.container(CONTAINER).unwrap();
    assert_eq!(
        files
            .file_text("/var/lib/pgbouncer/userlist.txt")
            .as_deref(),
        Some(new_auth.as_str())
    );
    assert!(ini(&followed, 1).contains("app_db = host=10.0.1.5 port=5432"));
    assert_eq!(followed.unit_status, Status::Active(String::new()));
}

#[test]
fn a_client_that_cannot_be_recreated_holds_back_only_the_record() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = serving_two_clients(&pg);
    // Client 7 is in the `admin` group, which the new cluster lacks at first.
    let mut s = s.with_relation(client(7, "admin_db", &[("extra-user-roles", "admin")]));
    pg.0.borrow_mut().admin_group = true;
    s = go(
        &pg,
        &s,
        event::relation_changed(s.relation(7).unwrap(), None),
    )
    .state;
    pg.replace_cluster("7300000000000000002", &["pgbouncer"]);
    let changed = event::relation_changed(s.relation(BACKEND_ID).unwrap(), None);
    let out = go(&pg, &s, changed.clone());
    let server = pg.server();
    assert!(!server.users.contains_key("relation_id_7"));
    assert!(
        server.users.contains_key("relation_id_4"),
        "the others are recreated"
    );
    assert!(server
        .auth_functions
        .contains(&("app_db".into(), "pgbouncer_auth_relation_id_3".into())));
    assert_eq!(
        peer_app(&out.state)[state::BACKEND_CLUSTER],
        FIRST_CLUSTER,
        "not recorded: the next try starts over"
    );
    assert_eq!(out.state.deferred.len(), 1);
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(
            m.contains("relation 7: cannot recreate user relation_id_7 and database admin_db"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }

    // Once the cluster has the group, the next try finishes and records it.
    pg.0.borrow_mut().admin_group = true;
    let mut retry = out.state.clone();
    retry.deferred.clear();
    let out = go(&pg, &retry, changed);
    assert!(pg.server().users.contains_key("relation_id_7"));
    assert!(pg.server().databases.contains("admin_db"));
    assert_eq!(
        peer_app(&out.state)[state::BACKEND_CLUSTER],
        "7300000000000000002"
    );
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn a_cluster_not_recorded_yet_is_recorded_without_recreating_anything() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    // A client without the wildcard: update-status has nothing to ask then.
    let mut s = ready_leader(&pg).with_relation(client(4, "app_db", &[]));
    s = go(
        &pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state;
    // As an older charm left it: set up, no identity recorded.
    let peers = s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap();
    peers.local_app_data.remove(state::BACKEND_CLUSTER);
    let server = pg.server();
    for event in [
        Event::UpgradeCharm,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
    ] {
        let out = go(&pg, &s, event.clone());
        assert_eq!(
            peer_app(&out.state)[state::BACKEND_CLUSTER],
            FIRST_CLUSTER,
            "{event:?}"
        );
        assert_eq!(
            without_sessions(pg.server()),
            without_sessions(server.clone())
        );
        assert_eq!(
            out.state.secrets, s.secrets,
            "{event:?}: the auth file stays"
        );
        assert!(!out
            .state
            .logs
            .iter()
            .any(|(_, m)| m.contains("new cluster")));
        // Recorded, the next update-status asks nothing of PostgreSQL.
        let before = pg.server().sessions.len();
        go(&pg, &out.state, Event::UpdateStatus);
        assert_eq!(pg.server().sessions.len(), before);
    }
}

#[test]
fn a_backend_that_cannot_be_asked_defers_and_serves_new_endpoints_only_if_set_up_before() {
    // Never set up: nothing is published, the event waits.
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    pg.set_down(Some("connection refused"));
    let fresh = with_backend(unit(0, true));
    let out = go(
        &pg,
        &fresh,
        event::relation_changed(fresh.relation(BACKEND_ID).unwrap(), None),
    );
    assert_eq!(out.state.deferred.len(), 1);
    assert!(out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .is_none());
    assert!(!peer_app(&out.state).contains_key(state::CFG_FILE));
    assert!(!peer_app(&out.state).contains_key(state::BACKEND_CLUSTER));

    // Set up before: the new endpoints are served all the same.
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = serving_two_clients(&pg);
    pg.set_down(Some("connection refused"));
    let moved = backend_units(s, &["postgresql-k8s/1"], "10.0.1.7:5432");
    let out = go(
        &pg,
        &moved,
        event::relation_changed(
            moved.relation(BACKEND_ID).unwrap(),
            Some("postgresql-k8s/1"),
        ),
    );
    assert!(ini(&out.state, 0).contains("app_db = host=10.0.1.7 port=5432"));
    assert_eq!(
        out.state.deferred.len(),
        1,
        "asked again with the next event"
    );
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(
            m.contains("waiting for the backend: cannot reach PostgreSQL")
                && m.contains("connection refused"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn backend_departing_last_unit_keeps_everything_and_broken_blocks() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = serving_two_clients(&pg);
    let leaving = backend_units(s.clone(), &[], "10.0.1.1:5432");
    let ev = event::relation_departed(
        s.relation(BACKEND_ID).unwrap(),
        "postgresql-k8s/0",
        "postgresql-k8s/0",
    );
    let server = pg.server();
    let out = go(&pg, &leaving, ev);
    assert_eq!(pg.server(), server, "the auth user stays: nothing asked");

    let mut gone = out.state.clone();
    let broken = event::relation_broken(gone.relation(BACKEND_ID).unwrap());
    gone.deferred.clear();
    let out = go(&pg, &gone, broken);
    let secret = out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap();
    assert!(
        secret
            .latest_content()
            .unwrap()
            .get(state::AUTH_FILE)
            .is_none(),
        "the auth file is forgotten"
    );
    let app = peer_app(&out.state);
    assert!(
        !app[state::CFG_FILE].contains("app_db"),
        "no backend, no databases"
    );
    assert_eq!(
        app[state::BACKEND_CLUSTER],
        FIRST_CLUSTER,
        "kept, to tell whether the next backend is the same cluster"
    );
    assert_eq!(
        client_password(&out.state, 4),
        client_password(&s, 4),
        "the clients keep their credentials"
    );
    assert_eq!(
        out.state.unit_status,
        Status::Blocked("waiting for backend database relation".into())
    );
}

#[test]
fn a_backend_relation_made_again_drops_the_former_auth_user() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = serving_two_clients(&pg);
    assert!(pg
        .server()
        .users
        .contains_key("pgbouncer_auth_relation_id_3"));
    let broken = event::relation_broken(s.relation(BACKEND_ID).unwrap());
    let out = go(&pg, &s, broken);
    assert_eq!(
        app_secret(&out.state).get(state::FORMER_AUTH_USER),
        Some("pgbouncer_auth_relation_id_3")
    );

    // The relation made again: PostgreSQL gives it another user.
    let mut again = out.state.clone();
    again.relations.retain(|r| r.id != BACKEND_ID);
    again
        .secrets
        .retain(|x| !x.id.to_string().contains(BACKEND_SECRET));
    let again = with_backend_at(
        again,
        ("10.0.1.1:5432", "10.0.1.2:5432,10.0.1.3:5432"),
        ("relation_id_9", "backend-pw-9"),
    );
    let out = go(
        &pg,
        &again,
        event::relation_changed(
            again.relation(BACKEND_ID).unwrap(),
            Some("postgresql-k8s/0"),
        ),
    );
    let server = pg.server();
    assert!(
        server.users.contains_key("pgbouncer_auth_relation_id_9"),
        "{:?} {:?}",
        out.state.unit_status,
        out.state.logs
    );
    assert!(
        !server.users.contains_key("pgbouncer_auth_relation_id_3"),
        "the former auth user is dropped: {:?}",
        server.users.keys().collect::<Vec<_>>()
    );
    assert!(out.state.logs.iter().any(|(_, m)| m
        == "dropped pgbouncer_auth_relation_id_3, the auth user of a backend relation that ended"));
    assert!(
        app_secret(&out.state)
            .get(state::FORMER_AUTH_USER)
            .is_none(),
        "forgotten"
    );
}

/// The application secret's latest content.
fn app_secret(s: &State) -> charm::secret::SecretContent {
    s.secret_by_label(&state::app_secret_label(APP))
        .and_then(|x| x.latest_content())
        .expect("the application secret")
        .clone()
}

#[test]
fn a_unit_leaving_the_backend_only_marks_itself() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    let before = pg.server();
    let ev = event::relation_departed(
        s.relation(BACKEND_ID).unwrap(),
        "postgresql-k8s/0",
        "pgbouncer-k8s/0",
    );
    let out = go(&pg, &s, ev);
    assert_eq!(
        peer_unit(&out.state)["backend-database_3_departing"],
        "true"
    );
    let out = go(
        &pg,
        &out.state,
        event::relation_broken(s.relation(BACKEND_ID).unwrap()),
    );
    assert_eq!(pg.server(), before);
    assert!(out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap()
        .latest_content()
        .unwrap()
        .get(state::AUTH_FILE)
        .is_some());
}

#[test]
fn invalid_config_blocks_with_the_option_and_applies_nothing() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    for (key, value) in [
        ("listen_port", serde_json::json!(0)),
        ("pool_mode", serde_json::json!("sessions")),
        ("max_db_connections", serde_json::json!(-1)),
        ("max_prepared_statements", serde_json::json!(1001)),
        ("expose-external", serde_json::json!("ingress")),
    ] {
        let mut bad = s.clone();
        bad.config.insert(key.into(), value);
        let out = go(&pg, &bad, Event::ConfigChanged);
        match &out.state.unit_status {
            Status::Blocked(m) => assert!(m.contains(key), "{m}"),
            other => panic!("{key}: {other:?}"),
        }
        assert_eq!(
            peer_app(&out.state),
            peer_app(&s),
            "{key}: nothing published"
        );
        assert_eq!(
            out.state.container(CONTAINER),
            s.container(CONTAINER),
            "{key}: nothing rendered"
        );
    }
}

#[test]
fn pebble_ready_adds_one_service_per_process_and_the_log_rotation_and_starts_them() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let fresh = with_backend(unit(0, true));
    let out = go(&pg, &fresh, event::pebble_ready(CONTAINER));
    let web = out.state.container(CONTAINER).unwrap();
    let plan = web.current_plan();
    assert_eq!(
        plan.services.keys().collect::<Vec<_>>(),
        ["logrotate", "pgbouncer_0", "pgbouncer_1"]
    );
    assert_eq!(
        plan.services["pgbouncer_1"].command,
        "pgbouncer /var/lib/pgbouncer/instance_1/pgbouncer.ini"
    );
    assert_eq!(plan.services["pgbouncer_0"].user, "postgres");
    assert!(web.is_running("pgbouncer_0") && web.is_running("pgbouncer_1"));
    assert!(web.is_running("logrotate"));
    assert_eq!(peer_unit(&out.state)[state::PGB_VERSION], "1.24.1");
    assert!(web.dirs.contains("/var/log/pgbouncer/instance_1"));
}

#[test]
fn pebble_ready_waits_for_the_container_and_the_peer_relation() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let down = unit(0, true).with_container(CONTAINER, ContainerState::unreachable());
    let out = go(&pg, &down, event::pebble_ready(CONTAINER));
    assert_eq!(out.state.deferred.len(), 1);
    let mut no_peers = unit(0, true);
    no_peers.relations.clear();
    let out = go(&pg, &no_peers, event::pebble_ready(CONTAINER));
    assert_eq!(out.state.deferred.len(), 1);
}

#[test]
fn an_image_with_pgbouncer_1_18_gets_files_it_accepts() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let old = with_backend(unit(0, true)).with_container(
        CONTAINER,
        ContainerState::ready().with_file("/usr/sbin/pgbouncer", b"...PgBouncer 1.18.0..."),
    );
    let out = go(&pg, &old, event::pebble_ready(CONTAINER));
    let ini = ini(&out.state, 0);
    assert!(
        !ini.contains("[peers]")
            && !ini.contains("peer_id")
            && !ini.contains("max_prepared_statements")
    );
    assert_eq!(peer_unit(&out.state)[state::PGB_VERSION], "1.18.0");
}

#[test]
fn the_version_is_that_of_the_binary_first_on_path() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let both = with_backend(unit(0, true)).with_container(
        CONTAINER,
        ContainerState::ready()
            .with_file("/usr/sbin/pgbouncer", b"...PgBouncer 1.18.0...")
            .with_file("/usr/local/bin/pgbouncer", b"...PgBouncer 1.24.1..."),
    );
    let out = go(&pg, &both, event::pebble_ready(CONTAINER));
    assert_eq!(peer_unit(&out.state)[state::PGB_VERSION], "1.24.1");
    let command = &out.state.container(CONTAINER).unwrap().running["pgbouncer_0"].command;
    assert!(
        command.starts_with("pgbouncer "),
        "found on PATH: {command}"
    );
}

#[test]
fn an_image_without_pgbouncer_blocks() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let empty = with_backend(unit(0, true)).with_container(CONTAINER, ContainerState::ready());
    let out = go(&pg, &empty, event::pebble_ready(CONTAINER));
    assert_eq!(
        out.state.unit_status,
        Status::Blocked("no PgBouncer binary found in the pgbouncer container".into())
    );
}

#[test]
fn upgrade_charm_reads_the_version_again() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    let mut upgraded = s.clone();
    upgraded.containers.insert(
        CONTAINER.into(),
        s.container(CONTAINER)
            .unwrap()
            .clone()
            .with_file("/usr/bin/pgbouncer", b"PgBouncer 1.25.2"),
    );
    let out = go(&pg, &upgraded, Event::UpgradeCharm);
    assert_eq!(peer_unit(&out.state)[state::PGB_VERSION], "1.25.2");
}

#[test]
fn upgrade_charm_drains_and_restarts_one_process_at_a_time() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = ready_leader(&pg);
    let web = s.containers.get_mut(CONTAINER).unwrap();
    web.ops.clear();
    // The exporter, running (its console sessions would hold the processes).
    let exporter = pebble_api::Service {
        command: "pgbouncer-exporter".into(),
        ..Default::default()
    };
    let mut layer = pebble_api::Layer::default();
    layer
        .services
        .insert("metrics_server".into(), exporter.clone());
    web.layers.push(("exporter".into(), layer));
    web.running.insert("metrics_server".into(), exporter);
    let out = go(&pg, &s, Event::UpgradeCharm);
    let web = out.state.container(CONTAINER).unwrap();
    // The in-memory Pebble runs no PgBouncer to exit on SIGTERM: each process
    // outlasts the (zero) drain time and is restarted all the same.
    assert_eq!(
        web.ops,
        [
            ServiceOp::Stop("metrics_server".into()),
            ServiceOp::Signal("SIGTERM".into(), "pgbouncer_0".into()),
            ServiceOp::Restart("pgbouncer_0".into()),
            ServiceOp::Signal("SIGTERM".into(), "pgbouncer_1".into()),
            ServiceOp::Restart("pgbouncer_1".into()),
            ServiceOp::Start("metrics_server".into()),
        ]
    );
    assert!(web.is_running("pgbouncer_0") && web.is_running("pgbouncer_1"));
    let warned = |text: &str| {
        out.state
            .logs
            .iter()
            .any(|(level, m)| *level == LogLevel::Warning && m.starts_with(text))
    };
    assert!(warned(
        "pgbouncer_0 still had clients after the drain time: restarted, cutting them"
    ));
    // The support charm's namespace has no settings: nothing is handed over.
    assert!(warned(
        "a connection arriving just as a process stops listening may be reset: \
         net.ipv4.tcp_migrate_req cannot be turned on (cannot read /nonexistent/net/ipv4/"
    ));
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn a_rolling_restart_turns_on_the_handover_of_queued_connections() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    let net_ipv4 = tempfile::tempdir().unwrap();
    let setting = net_ipv4.path().join("tcp_migrate_req");
    std::fs::write(&setting, "0\n").unwrap();
    let upgrade = |s: &State| {
        charm_testing::run(&mut charm_in(&pg, net_ipv4.path()), s, Event::UpgradeCharm)
            .unwrap_or_else(|f| panic!("{f}"))
    };
    let turned_on = "net.ipv4.tcp_migrate_req turned on: connections queued on a draining \
                     process move to the unit's other processes";
    let out = upgrade(&s);
    assert_eq!(std::fs::read_to_string(&setting).unwrap(), "1\n");
    assert!(out
        .state
        .logs
        .iter()
        .any(|(level, m)| *level == LogLevel::Info && m == turned_on));
    assert!(!out
        .state
        .logs
        .iter()
        .any(|(_, m)| m.contains("may be reset")));
    // Already on: left as it is, and nothing said.
    let mut before = out.state;
    before.logs.clear();
    let again = upgrade(&before);
    assert!(!again
        .state
        .logs
        .iter()
        .any(|(_, m)| m.contains("tcp_migrate_req")));
}

#[test]
fn statuses_say_what_is_missing() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let cases: Vec<(State, Status)> = vec![
        (
            unit(0, true),
            Status::Blocked("waiting for backend database relation".into()),
        ),
        (
            with_backend(unit(0, true)).with_container(CONTAINER, ContainerState::unreachable()),
            Status::Waiting("waiting for the pgbouncer container".into()),
        ),
        (
            with_backend(unit(1, false)),
            Status::Waiting("initialising the backend-database relation".into()),
        ),
    ];
    for (state, want) in cases {
        let out = go(&pg, &state, Event::UpdateStatus);
        assert_eq!(out.state.unit_status, want);
    }
    let mut stopped = ready_leader(&pg);
    stopped
        .containers
        .get_mut(CONTAINER)
        .unwrap()
        .running
        .remove("pgbouncer_1");
    let mut charm = charm(&pg);
    let out = charm_testing::run(&mut charm, &stopped, Event::Install).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Maintenance("PgBouncer service pgbouncer_1 is not running".into())
    );
    let out = go(&pg, &stopped, Event::UpdateStatus);
    assert_eq!(
        out.state.unit_status,
        Status::Active(String::new()),
        "update-status converges: it starts it again"
    );
}

#[test]
fn leader_elected_takes_over_publication_and_points_clients_at_itself() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let old = ready_leader(&pg).with_relation(client(4, "app_db", &[]));
    let old = go(
        &pg,
        &old,
        event::relation_changed(old.relation(4).unwrap(), None),
    )
    .state;
    let mut new = old.clone();
    new.unit = "pgbouncer-k8s/1".into();
    new.address = "10.0.0.11".into();
    let peers = new.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap();
    // The old leader serves on what it served as leader.
    let mut served = std::mem::take(&mut peers.local_unit_data);
    assert!(served.contains_key(state::SERVING), "{served:?}");
    served.insert("hostname".into(), "10.0.0.10".into());
    peers.remote_units.insert("pgbouncer-k8s/0".into(), served);
    let out = go(&pg, &new, Event::LeaderElected);
    assert_eq!(peer_app(&out.state)[state::LEADER_HOSTNAME], "10.0.0.11");
    let app = &out.state.relation(4).unwrap().local_app_data;
    assert_eq!(app["endpoints"], "10.0.0.11:6432");
    assert_eq!(app["read-only-endpoints"], "10.0.0.10:6432");
    let uris = out
        .state
        .secret_by_label(&secret_label(state::DATABASE, 4, "user"))
        .unwrap()
        .latest_content()
        .unwrap()
        .get("uris")
        .unwrap()
        .to_string();
    assert!(
        uris.contains("@10.0.0.11:6432/app_db"),
        "the secret's uris follow"
    );
}
