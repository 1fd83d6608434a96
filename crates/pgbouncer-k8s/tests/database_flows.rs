//! The `database` relation's flows (`docs/pgbouncer-flows.md`) on the
//! in-memory model.
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | database-requested: is this unit the leader? no → return | `requested_on_a_follower_does_nothing` |
//! | is backend database ready? no → defer | `requested_defers_until_the_backend_is_ready` |
//! | yes → get user data and generate password | `requested_creates_user_database_and_publishes` |
//! | create user and database | `requested_creates_user_database_and_publishes` |
//! | add user to pgbouncer config and peer databag | `requested_creates_user_database_and_publishes` |
//! | update pgbouncer config with updated connection information | `requested_creates_user_database_and_publishes` |
//! | update relation databag with credentials and connection information | `requested_creates_user_database_and_publishes`, `credentials_wait_for_every_unit_and_the_last_ack_publishes_them`, `without_requested_secrets_credentials_go_to_the_databag` |
//! | relation-departed: update connection information | `departed_refreshes_the_connection_information` |
//! | is this unit departing? yes → add departing flag | `departed_by_this_unit_sets_the_flag` |
//! | is this unit departing? no → return | `departed_by_the_client_sets_no_flag` |
//! | relation-broken: update connection information | `broken_removes_the_database_everywhere_drops_the_user_and_keeps_the_data` (the other client's endpoints stay current) |
//! | is the backend ready, and is this unit the leader? no → return | `broken_on_a_follower_or_without_backend_changes_nothing` |
//! | is this unit departing (flag)? yes → return | `broken_when_this_unit_departs_keeps_the_user` |
//! | no → remove user and database from pgb config | `broken_removes_the_database_everywhere_drops_the_user_and_keeps_the_data` |
//! | delete user from backend charm | `broken_removes_the_database_everywhere_drops_the_user_and_keeps_the_data` |
//!
//! What a broken relation leaves behind when nobody could delete its user then
//! (backend down, the leader leaving) goes with the next leader:
//! `what_a_broken_relation_left_behind_goes_with_the_next_leader`.
//!
//! Connection information lists a unit only once it serves the published
//! configuration: `a_new_unit_is_handed_out_once_it_serves_the_configuration`.

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, Status};
use charm_testing::{bag, event, RelationState};
use client_interface::provider::secret_label;
use pgbouncer_k8s::state::{self, DATABASE, PEERS};
use postgres_admin::testing::FakeConnector;
use support::*;

fn request(pg: &FakeConnector, state: &charm_testing::State, id: u64) -> charm_testing::Output {
    go(
        pg,
        state,
        event::relation_changed(state.relation(id).unwrap(), None),
    )
}

#[test]
fn requested_on_a_follower_does_nothing() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = with_backend(unit(1, false)).with_relation(client(4, "app_db", &[]));
    let out = request(&pg, &state, 4);
    assert!(!pg.server().users.contains_key("relation_id_4"));
    assert_eq!(out.state.relation(4).unwrap().local_app_data, bag(&[]));
    assert!(out.state.deferred.is_empty());
}

#[test]
fn requested_defers_until_the_backend_is_ready() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let state = unit(0, true).with_relation(client(4, "app_db", &[]));
    let out = request(&pg, &state, 4);
    assert_eq!(out.state.deferred.len(), 1, "deferred");
    assert!(pg.server().users.is_empty());
    assert_eq!(
        out.state.unit_status,
        Status::Blocked("waiting for backend database relation".into())
    );

    // The backend arrives: its relation-changed sets up auth and handles the
    // pending request at once; the deferred event then finds nothing to do.
    let mut with = with_backend(out.state);
    with.deferred.clear();
    let out = go(
        &pg,
        &with,
        event::relation_changed(with.relation(BACKEND_ID).unwrap(), None),
    );
    assert!(pg.server().users.contains_key("relation_id_4"));
    assert!(out
        .state
        .relation(4)
        .unwrap()
        .local_app_data
        .contains_key("secret-user"));
}

#[test]
fn requested_creates_user_database_and_publishes() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader =
        ready_leader(&pg).with_relation(client(4, "app_db", &[("extra-user-roles", "CREATEDB")]));
    let out = request(&pg, &leader, 4);
    let server = pg.server();
    let (password, roles) = server.users["relation_id_4"].clone();
    assert_eq!(password.len(), 24);
    assert!(roles.contains("CreateDb"), "{roles}");
    assert!(server.databases.contains("app_db"));
    assert!(server
        .grants
        .contains(&("app_db".into(), "relation_id_4".into())));
    assert!(server
        .auth_functions
        .contains(&("app_db".into(), "pgbouncer_auth_relation_id_3".into())));

    let s = &out.state;
    let cfg = &peer_app(s)[state::CFG_FILE];
    assert!(
        cfg.contains("app_db = host=10.0.1.1 port=5432 dbname=app_db"),
        "{cfg}"
    );
    assert!(cfg.contains("app_db_readonly = host=10.0.1.2,10.0.1.3 port=5432 dbname=app_db"));
    assert!(
        cfg.contains("* = host=10.0.1.1 port=5432 auth_dbname=app_db"),
        "CREATEDB reaches every database"
    );
    assert_eq!(peer_unit(s)[state::SERVING], state::digest(cfg));
    for i in 0..2 {
        assert!(
            ini(s, i).contains("app_db_readonly"),
            "process {i} serves it"
        );
    }

    let app = &s.relation(4).unwrap().local_app_data;
    assert_eq!(app["database"], "app_db");
    assert_eq!(app["endpoints"], "10.0.0.10:6432");
    assert_eq!(
        app["read-only-endpoints"], "10.0.0.10:6432",
        "alone, the leader serves reads too"
    );
    assert_eq!(app["version"], "15.18");
    assert!(!app.contains_key("tls"), "asked for as a secret");
    let tls = s
        .secret_by_label(&secret_label(DATABASE, 4, "tls"))
        .unwrap();
    assert_eq!(app["secret-tls"], tls.id.to_string());
    assert!(tls.grants.contains(&(4, None)));
    assert_eq!(tls.latest_content().unwrap().get("tls"), Some("False"));
    assert!(!app.contains_key("password") && !app.contains_key("username"));
    let secret = s
        .secret_by_label(&secret_label(DATABASE, 4, "user"))
        .unwrap();
    assert_eq!(app["secret-user"], secret.id.to_string());
    assert!(secret.grants.contains(&(4, None)));
    let content = secret.latest_content().unwrap();
    assert_eq!(content.get("username"), Some("relation_id_4"));
    assert_eq!(content.get("password"), Some(password.as_str()));
    assert_eq!(
        content.get("uris"),
        Some(format!("postgresql://relation_id_4:{password}@10.0.0.10:6432/app_db").as_str())
    );
    assert_eq!(
        content.get("read-only-uris"),
        Some(
            format!("postgresql://relation_id_4:{password}@10.0.0.10:6432/app_db_readonly")
                .as_str()
        )
    );
    for (_, v) in peer_app(s).iter().chain(peer_unit(s)) {
        assert!(!v.contains(&password), "no client password in peer data");
    }
    assert!(
        out.calls.lines().iter().all(|l| !l.contains(&password)),
        "no password on a command line"
    );
    assert_eq!(s.unit_status, Status::Active(String::new()));

    let again = request(&pg, s, 4);
    assert_eq!(again.state.secrets.len(), s.secrets.len(), "answered once");
    assert_eq!(
        pg.server().users["relation_id_4"].0,
        password,
        "the password is kept"
    );
}

#[test]
fn without_requested_secrets_credentials_go_to_the_databag() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let plain =
        RelationState::new("database", 5, "old-client").remote_app_data(&[("database", "old_db")]);
    let leader = ready_leader(&pg).with_relation(plain);
    let out = request(&pg, &leader, 5);
    let app = &out.state.relation(5).unwrap().local_app_data;
    assert_eq!(app["username"], "relation_id_5");
    assert_eq!(app["password"], pg.server().users["relation_id_5"].0);
    assert!(app["uris"].ends_with("@10.0.0.10:6432/old_db"));
    assert!(!app.contains_key("secret-user"));
}

#[test]
fn credentials_wait_for_every_unit_and_the_last_ack_publishes_them() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut leader = ready_leader(&pg).with_relation(client(4, "app_db", &[]));
    let peers = leader
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap();
    peers.remote_units.insert(
        "pgbouncer-k8s/1".into(),
        bag(&[("hostname", "10.0.0.11"), ("processes", "2")]),
    );

    let out = request(&pg, &leader, 4);
    assert!(pg.server().databases.contains("app_db"), "created at once");
    let app = &out.state.relation(4).unwrap().local_app_data;
    assert!(app.is_empty(), "unit 1 does not serve app_db yet: {app:?}");
    let clients: state::Clients =
        serde_json::from_str(&peer_app(&out.state)[state::CLIENTS]).unwrap();
    assert_eq!(clients[&4].database.as_deref(), Some("app_db"));
    assert_eq!(clients[&4].published, None);
    assert!(
        out.state.deferred.is_empty(),
        "no defer loop: the acknowledgement will trigger it"
    );

    // Unit 1 renders what the leader published and acknowledges it.
    let follower = share_from_leader(&out.state, with_backend(unit(1, false)));
    let served = go(
        &pg,
        &follower,
        event::relation_changed(follower.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/0")),
    );
    let ack = peer_unit(&served.state).clone();
    assert_eq!(
        ack[state::SERVING],
        state::digest(&peer_app(&out.state)[state::CFG_FILE])
    );
    assert!(ini(&served.state, 0).contains("app_db_readonly"));

    // Its acknowledgement reaches the leader as a peer relation-changed.
    let mut leader = out.state;
    let peers = leader
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap();
    peers.remote_units.insert("pgbouncer-k8s/1".into(), ack);
    let out = go(
        &pg,
        &leader,
        event::relation_changed(leader.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/1")),
    );
    let app = &out.state.relation(4).unwrap().local_app_data;
    assert!(
        app.contains_key("secret-user"),
        "published on the last acknowledgement"
    );
    assert_eq!(app["read-only-endpoints"], "10.0.0.11:6432");
    assert_eq!(app["endpoints"], "10.0.0.10:6432");
}

#[test]
fn hostile_requests_create_nothing_and_block_with_a_reason() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("database", "app'; DROP DATABASE x; --")],
            "invalid database name",
        ),
        (&[("database", "two words")], "invalid database name"),
        (&[("database", "été")], "invalid database name"),
        (&[("database", "")], "invalid database name"),
        (&[("database", &"d".repeat(64))], "invalid database name"),
        (&[("database", "postgres")], "\"postgres\""),
        (&[("database", "template0")], "\"template0\""),
        (&[("database", "pgbouncer")], "\"pgbouncer\""),
        (
            &[
                ("database", "ok_db"),
                ("extra-user-roles", "SUPERUSER; DROP ROLE admin"),
            ],
            "SUPERUSER; DROP ROLE admin",
        ),
        (
            &[
                ("database", "ok_db"),
                ("extra-user-roles", "'; COPY x TO PROGRAM 'sh'"),
            ],
            "COPY",
        ),
        (
            &[("database", "ok_db"), ("requested-secrets", "{not json")],
            "requested-secrets",
        ),
    ];
    for (data, phrase) in cases {
        let pg = FakeConnector::up_with(&["pgbouncer"]);
        let before = ready_leader(&pg);
        let server_before = pg.server();
        let rel = RelationState::new("database", 8, "evil").remote_app_data(data);
        let state = before.with_relation(rel);
        let out = request(&pg, &state, 8);
        assert_eq!(pg.server(), server_before, "{data:?} created something");
        // Nothing handed out; the client is told why, with a fatal code.
        assert_refused(&out.state.relation(8).unwrap().local_app_data, phrase);
        assert!(out.state.deferred.is_empty());
        match &out.state.unit_status {
            // Refused roles read as the PostgreSQL charm's do.
            Status::Blocked(m) => assert!(
                (m.starts_with("relation 8: ")
                    || m.starts_with("invalid role(s) for extra user roles: relation 8: "))
                    && m.contains(phrase),
                "{m} lacks {phrase}"
            ),
            other => panic!("{data:?}: {other:?}"),
        }
    }
}

#[test]
fn a_superuser_request_is_refused_before_any_user_is_created() {
    // The auth query never looks a superuser up, so credentials for one would
    // not work through PgBouncer: the client is told so instead.
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = ready_leader(&pg).with_relation(client(
        8,
        "app_db",
        &[("extra-user-roles", "createdb,superuser")],
    ));
    let server_before = pg.server();
    let out = request(&pg, &leader, 8);
    assert_eq!(pg.server(), server_before, "a user or database was created");
    assert_refused(
        &out.state.relation(8).unwrap().local_app_data,
        "a superuser cannot log in through PgBouncer",
    );
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(
            m.starts_with("invalid role(s) for extra user roles: relation 8: SUPERUSER"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // Without SUPERUSER the same client is served.
    let mut fixed = out.state.clone();
    let relation = fixed.relations.iter_mut().find(|r| r.id == 8).unwrap();
    relation
        .remote_app_data
        .insert("extra-user-roles".into(), "createdb".into());
    let out = request(&pg, &fixed, 8);
    assert!(out
        .state
        .relation(8)
        .unwrap()
        .local_app_data
        .contains_key("secret-user"));
    assert!(pg.server().users["relation_id_8"].1.contains("CreateDb"));
}

#[test]
fn every_refused_client_is_named_and_one_that_asks_again_is_served() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let bad_name =
        RelationState::new("database", 8, "evil").remote_app_data(&[("database", "a;b")]);
    let group = RelationState::new("database", 9, "groupie").remote_app_data(&[
        ("database", "ok_db"),
        ("entity-type", "GROUP"),
        ("extra-group-roles", "g"),
    ]);
    let state = ready_leader(&pg)
        .with_relation(bad_name)
        .with_relation(group);
    let out = request(&pg, &state, 8);
    let out = request(&pg, &out.state, 9);
    assert_refused(
        &out.state.relation(8).unwrap().local_app_data,
        "invalid database name",
    );
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(
            m.contains("relation 8: ")
                && m.contains("relation 9: ")
                && m.contains("an entity GROUP cannot log in"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // The first client fixes its request: it is served, and told nothing is wrong.
    let mut fixed = out.state.clone();
    let relation = fixed.relations.iter_mut().find(|r| r.id == 8).unwrap();
    relation
        .remote_app_data
        .insert("database".into(), "good_db".into());
    let out = request(&pg, &fixed, 8);
    let app = &out.state.relation(8).unwrap().local_app_data;
    assert!(
        app.contains_key("password") && !app.contains_key("status"),
        "{app:?}"
    );
    assert!(pg.server().databases.contains("good_db"));
}

#[test]
fn a_backend_that_is_down_defers_and_says_so() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = ready_leader(&pg).with_relation(client(4, "app_db", &[]));
    pg.0.borrow_mut().down = Some("connection refused".into());
    let out = request(&pg, &leader, 4);
    assert_eq!(out.state.deferred.len(), 1);
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(
            m.contains("cannot create database app_db") && m.contains("connection refused"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    pg.0.borrow_mut().down = None;
    let out = go(&pg, &out.state, Event::UpdateStatus);
    assert!(out.state.deferred.is_empty(), "the replay succeeded");
    assert!(out
        .state
        .relation(4)
        .unwrap()
        .local_app_data
        .contains_key("secret-user"));
}

fn answered(pg: &FakeConnector) -> charm_testing::State {
    let leader = ready_leader(pg)
        .with_relation(client(4, "app_db", &[]))
        .with_relation(client(6, "other_db", &[]));
    let out = request(pg, &leader, 4);
    request(pg, &out.state, 6).state
}

#[test]
fn departed_refreshes_the_connection_information() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = answered(&pg);
    let peers = s
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap();
    let served = peers.local_unit_data[state::SERVING].clone();
    peers.remote_units.insert(
        "pgbouncer-k8s/1".into(),
        bag(&[("hostname", "10.0.0.11"), (state::SERVING, &served)]),
    );
    let out = go(
        &pg,
        &s,
        event::relation_departed(s.relation(4).unwrap(), "client-app/0", "client-app/0"),
    );
    assert_eq!(
        out.state.relation(4).unwrap().local_app_data["read-only-endpoints"],
        "10.0.0.11:6432"
    );
}

#[test]
fn a_new_unit_is_handed_out_once_it_serves_the_configuration() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = answered(&pg);
    let peers = s
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap();
    let served = peers.local_unit_data[state::SERVING].clone();
    peers
        .remote_units
        .insert("pgbouncer-k8s/1".into(), bag(&[("hostname", "10.0.0.11")]));
    let joined = event::relation_changed(s.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/1"));
    let out = go(&pg, &s, joined.clone());
    let read_only = |st: &charm_testing::State| {
        st.relation(4).unwrap().local_app_data["read-only-endpoints"].clone()
    };
    assert_eq!(read_only(&out.state), "10.0.0.10:6432", "not serving yet");

    let mut s = out.state;
    s.relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap()
        .remote_units
        .get_mut("pgbouncer-k8s/1")
        .unwrap()
        .insert(state::SERVING.into(), served);
    let out = go(&pg, &s, joined);
    assert_eq!(read_only(&out.state), "10.0.0.11:6432");
}

#[test]
fn departed_by_this_unit_sets_the_flag() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg);
    let out = go(
        &pg,
        &s,
        event::relation_departed(s.relation(4).unwrap(), "client-app/0", "pgbouncer-k8s/0"),
    );
    assert_eq!(peer_unit(&out.state)["database_4_departing"], "true");
}

#[test]
fn departed_by_the_client_sets_no_flag() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg);
    let out = go(
        &pg,
        &s,
        event::relation_departed(s.relation(4).unwrap(), "client-app/0", "client-app/0"),
    );
    assert!(!peer_unit(&out.state).contains_key("database_4_departing"));
}

#[test]
fn broken_removes_the_database_everywhere_drops_the_user_and_keeps_the_data() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg);
    let out = go(&pg, &s, event::relation_broken(s.relation(4).unwrap()));
    let server = pg.server();
    assert!(!server.users.contains_key("relation_id_4"), "user deleted");
    assert!(
        server.databases.contains("app_db"),
        "the database and its data stay"
    );
    assert!(!server
        .auth_functions
        .contains(&("app_db".into(), "pgbouncer_auth_relation_id_3".into())));
    assert!(
        server.users.contains_key("relation_id_6"),
        "the other client keeps its user"
    );
    let cfg = &peer_app(&out.state)[state::CFG_FILE];
    assert!(!cfg.contains("app_db") && cfg.contains("other_db"), "{cfg}");
    assert!(!ini(&out.state, 1).contains("app_db"));
    assert!(
        out.state
            .secret_by_label(&secret_label(DATABASE, 4, "user"))
            .is_none(),
        "its secret is removed"
    );
    assert!(out
        .state
        .relation(6)
        .unwrap()
        .local_app_data
        .contains_key("secret-user"));
}

#[test]
fn broken_when_this_unit_departs_keeps_the_user() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg);
    let departed = go(
        &pg,
        &s,
        event::relation_departed(s.relation(4).unwrap(), "client-app/0", "pgbouncer-k8s/0"),
    )
    .state;
    let out = go(
        &pg,
        &departed,
        event::relation_broken(departed.relation(4).unwrap()),
    );
    assert!(
        pg.server().users.contains_key("relation_id_4"),
        "the next leader cleans up (see what_a_broken_relation_left_behind_goes_with_the_next_leader)"
    );
    assert!(peer_app(&out.state)[state::CFG_FILE].contains("app_db"));
}

#[test]
fn broken_on_a_follower_or_without_backend_changes_nothing() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg);
    let mut follower = s.clone();
    follower.leader = false;
    let before = pg.server();
    let out = go(
        &pg,
        &follower,
        event::relation_broken(follower.relation(4).unwrap()),
    );
    assert_eq!(pg.server(), before);
    assert_eq!(peer_app(&out.state), peer_app(&follower));

    let mut no_backend = s.clone();
    no_backend
        .relations
        .retain(|r| r.endpoint != "backend-database");
    let out = go(
        &pg,
        &no_backend,
        event::relation_broken(no_backend.relation(4).unwrap()),
    );
    assert_eq!(pg.server(), before);
    assert!(out
        .state
        .secret_by_label(&secret_label(DATABASE, 4, "user"))
        .is_some());
}

/// A relation that broke while nobody could remove its user (the backend was
/// down, or the unit that led was leaving) leaves its record behind; the next
/// leader that is staying removes the user and its secret, keeps the data,
/// and forgets the record. Until it can, the record stays.
#[test]
fn what_a_broken_relation_left_behind_goes_with_the_next_leader() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg);
    let mut gone = s.clone();
    gone.relations.retain(|r| r.id != 4);
    let recorded =
        |state: &charm_testing::State| peer_app(state)[state::CLIENTS].contains("\"4\":");

    let mut leaving = gone.clone();
    leaving.dying_units.insert(leaving.unit.clone());
    let out = go(&pg, &leaving, Event::LeaderElected);
    assert!(
        pg.server().users.contains_key("relation_id_4"),
        "a leaving leader leaves it"
    );
    assert!(recorded(&out.state));

    pg.0.borrow_mut().down = Some("connection refused".into());
    let out = go(&pg, &gone, Event::LeaderElected);
    pg.0.borrow_mut().down = None;
    assert!(pg.server().users.contains_key("relation_id_4"));
    assert!(recorded(&out.state), "kept for the next try");

    let out = go(&pg, &out.state, Event::LeaderElected);
    let server = pg.server();
    assert!(!server.users.contains_key("relation_id_4"), "user removed");
    assert!(server.databases.contains("app_db"), "the data stays");
    assert!(
        server.users.contains_key("relation_id_6"),
        "the live client stays"
    );
    assert!(!recorded(&out.state), "record forgotten");
    assert!(out
        .state
        .secret_by_label(&secret_label(DATABASE, 4, "user"))
        .is_none());
    assert!(!ini(&out.state, 0).contains("app_db ="));
}

/// The bag a refused client sees: only a `status` list with one fatal code
/// whose message names the relation and `phrase`.
fn assert_refused(bag: &charm::Databag, phrase: &str) {
    assert_eq!(bag.keys().collect::<Vec<_>>(), ["status"], "{bag:?}");
    let status: serde_json::Value = serde_json::from_str(&bag["status"]).unwrap();
    let entry = &status[0];
    assert_eq!(entry["code"].as_u64().unwrap() / 1000, 5, "{status}");
    let message = entry["message"].as_str().unwrap();
    assert!(
        message.contains("relation 8: ") && message.contains(phrase),
        "{message}"
    );
    assert!(entry["resolution"].as_str().is_some_and(|r| !r.is_empty()));
}
