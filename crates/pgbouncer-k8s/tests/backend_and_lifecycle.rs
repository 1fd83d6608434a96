//! The `backend-database` relation and the unit's lifecycle on the in-memory
//! model (`docs/pgbouncer-flows.md`).
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | backend relation-created: is this unit the leader? yes → ask for the pgbouncer database as SUPERUSER; no → return | `backend_created_asks_for_the_pgbouncer_database_as_superuser` |
//! | relation-changed: has PostgreSQL published endpoints and credentials? no → return, the status says what is missing or unusable | `backend_data_that_is_incomplete_or_hostile_waits_with_a_reason` |
//! | yes → set up the auth user and the auth file (once per backend user) → publish the configuration and serve it | `backend_changed_sets_up_the_auth_user_once_and_renders` |
//! | new endpoints → publish the configuration and serve it | `new_backend_endpoints_reach_every_file` |
//! | relation-departed: is this unit departing? yes → add departing flag; relation-broken: is this unit departing (flag)? yes → return | `a_unit_leaving_the_backend_only_marks_itself` |
//! | relation-departed, the leader with no PostgreSQL unit left → remove the auth function and drop the auth user; relation-broken → forget the auth file, keep the console passwords → publish a configuration without databases and serve it | `backend_departing_last_unit_cleans_up_and_broken_blocks` |
//! | config-changed: an invalid option applies nothing | `invalid_config_blocks_with_the_option_and_applies_nothing` |
//! | pebble-ready: no peer relation or no container → defer | `pebble_ready_waits_for_the_container_and_the_peer_relation` |
//! | pebble-ready: the version read from the image, then converge (one service per process, started) | `pebble_ready_adds_one_service_per_process_and_starts_them`, `the_version_is_that_of_the_binary_first_on_path`, `an_image_with_pgbouncer_1_18_gets_files_it_accepts`, `an_image_without_pgbouncer_blocks` |
//! | upgrade-charm: the version read again, then converge | `upgrade_charm_reads_the_version_again` |
//! | leader-elected: converge (the new leader publishes and points clients at itself) | `leader_elected_takes_over_publication_and_points_clients_at_itself` |
//! | the status, once per dispatch | `statuses_say_what_is_missing` |

mod support;

use charm::{Event, Status};
use charm_testing::{event, ContainerState, State};
use client_interface::provider::secret_label;
use pgbouncer_k8s::state::{self, BACKEND};
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::FakeConnector;
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

    let again = go(
        &pg,
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), Some("postgresql-k8s/0")),
    );
    assert_eq!(pg.server(), server, "set up once");
    assert_eq!(again.state.secrets, s.secrets);
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

#[test]
fn backend_departing_last_unit_cleans_up_and_broken_blocks() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg).with_relation(client(4, "app_db", &[]));
    let s = go(
        &pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state;
    let mut leaving = s.clone();
    leaving
        .relations
        .iter_mut()
        .find(|r| r.endpoint == BACKEND)
        .unwrap()
        .remote_units
        .clear();
    let ev = event::relation_departed(
        s.relation(BACKEND_ID).unwrap(),
        "postgresql-k8s/0",
        "postgresql-k8s/0",
    );
    let out = go(&pg, &leaving, ev);
    let server = pg.server();
    assert!(
        !server.users.contains_key("pgbouncer_auth_relation_id_3"),
        "auth user dropped"
    );
    assert!(
        server.auth_functions.is_empty(),
        "auth function removed everywhere"
    );
    assert!(
        server.users.contains_key("relation_id_4"),
        "client users are the clients' business"
    );

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
    assert!(
        !peer_app(&out.state)[state::CFG_FILE].contains("app_db"),
        "no backend, no databases"
    );
    assert_eq!(
        out.state.unit_status,
        Status::Blocked("waiting for backend database relation".into())
    );
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
fn pebble_ready_adds_one_service_per_process_and_starts_them() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let fresh = with_backend(unit(0, true));
    let out = go(&pg, &fresh, event::pebble_ready(CONTAINER));
    let web = out.state.container(CONTAINER).unwrap();
    let plan = web.current_plan();
    assert_eq!(
        plan.services.keys().collect::<Vec<_>>(),
        ["pgbouncer_0", "pgbouncer_1"]
    );
    assert_eq!(
        plan.services["pgbouncer_1"].command,
        "pgbouncer /var/lib/pgbouncer/instance_1/pgbouncer.ini"
    );
    assert_eq!(plan.services["pgbouncer_0"].user, "postgres");
    assert!(web.is_running("pgbouncer_0") && web.is_running("pgbouncer_1"));
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
