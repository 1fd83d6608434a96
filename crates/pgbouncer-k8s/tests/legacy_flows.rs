//! The legacy `db` and `db-admin` relations (interface `pgsql`, provider)
//! on the in-memory model (`docs/pgbouncer-flows.md`, legacy relations).
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | db-requested: is this unit the leader? no → remove a stale copy of the answer from its unit bag | `a_follower_serves_nothing_and_clears_what_it_wrote_as_leader` |
//! | is backend database ready? no → defer | `a_request_waits_for_the_backend` |
//! | is it db-admin? yes → blocked (relate to PostgreSQL's db-admin), nothing created | `db_admin_is_refused_and_nothing_is_created` |
//! | is the request valid? no → blocked, nothing created | `roles_and_hostile_names_are_refused_and_nothing_is_created` |
//! | do the extensions exist in the database? no → blocked, nothing created | `missing_extensions_block_until_they_exist_in_the_database` |
//! | keep the password; create user and database | `db_gets_its_user_and_database_through_the_backend` |
//! | PostgreSQL fails → waiting, defer | `a_backend_that_is_down_defers_and_says_so` |
//! | add user to pgbouncer config and peer databag | `db_gets_its_user_and_database_through_the_backend` |
//! | update the relation's bags once every unit serves the database | `db_gets_its_user_and_database_through_the_backend`, `nothing_is_told_before_every_unit_serves_the_database` |
//! | refresh: `master` and `standbys` follow the units and the listen port | `master_and_standbys_follow_the_units_and_the_port` |
//! | relation-departed: update who may connect | `allowed_units_and_subnets_follow_the_client_units` |
//! | is this unit departing? yes → add departing flag | `a_departing_leader_keeps_the_user` |
//! | relation-broken (the `database` path): remove the database from the config, drop the user, keep the data | `broken_drops_the_user_and_keeps_the_data` |
//! | relation-broken: this unit departing (flag) → keep the user | `a_departing_leader_keeps_the_user` |
//! | a new backend cluster: the legacy user and database made again | `a_new_backend_cluster_gets_the_legacy_user_back` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, Status};
use charm_testing::{bag, event, RelationState, State};
use client_interface::provider::secret_label;
use pgbouncer_k8s::state::{self, PEERS};
use postgres_admin::testing::FakeConnector;
use support::*;

const DB: u64 = 7;
const ADMIN: u64 = 8;
/// The backend user of relation 7: `<app>_user_<id>_<model>`.
const USER: &str = "pgbouncer_k8s_user_7_test";

/// A legacy client relation on `endpoint` whose leader asked with `pairs`
/// (its unit mirrors them, as `ops-lib-pgsql` does).
fn legacy(endpoint: &str, id: u64, pairs: &[(&str, &str)]) -> RelationState {
    let mut unit = vec![("egress-subnets", "10.9.0.1/32")];
    unit.extend_from_slice(pairs);
    RelationState::new(endpoint, id, "waltz")
        .remote_app_data(pairs)
        .remote_unit("waltz/0", &unit)
}

fn changed(s: &State, id: u64) -> Event {
    event::relation_changed(s.relation(id).unwrap(), Some("waltz/0"))
}

fn app_bag(s: &State, id: u64) -> &charm::Databag {
    &s.relation(id).unwrap().local_app_data
}

fn blocked(s: &State) -> String {
    match &s.unit_status {
        Status::Blocked(m) => m.clone(),
        other => panic!("not blocked: {other:?}"),
    }
}

fn record(s: &State, id: u64) -> Option<state::ClientEntry> {
    let clients: state::Clients = serde_json::from_str(&peer_app(s)[state::CLIENTS]).unwrap();
    clients.get(&id).cloned()
}

/// A leader serving relation 7 (`db`, database `waltz_db`).
fn served(pg: &FakeConnector) -> State {
    let s = ready_leader(pg).with_relation(legacy("db", DB, &[("database", "waltz_db")]));
    go(pg, &s, changed(&s, DB)).state
}

#[test]
fn db_gets_its_user_and_database_through_the_backend() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg).with_relation(legacy(
        "db",
        DB,
        &[("database", "waltz_db"), ("roles", ""), ("extensions", "")],
    ));
    let out = go(&pg, &s, changed(&s, DB));
    let server = pg.server();
    let (password, roles) = server.users[USER].clone();
    assert!(!roles.contains("Superuser"), "{roles}");
    assert!(server.databases.contains("waltz_db"));
    assert!(server.grants.contains(&("waltz_db".into(), USER.into())));
    assert!(server
        .auth_functions
        .contains(&("waltz_db".into(), "pgbouncer_auth_relation_id_3".into())));

    let s = &out.state;
    let cfg = &peer_app(s)[state::CFG_FILE];
    assert!(cfg.contains("waltz_db = host=10.0.1.1 port=5432 dbname=waltz_db"));
    assert!(cfg.contains("waltz_db_readonly = host=10.0.1.2,10.0.1.3 port=5432 dbname=waltz_db"));
    assert!(!cfg.contains("* ="), "no wildcard for a legacy client");
    assert!(ini(s, 0).contains("waltz_db_readonly"));
    let entry = record(s, DB).unwrap();
    assert_eq!(entry.legacy.as_deref(), Some("db"));
    assert_eq!(entry.database.as_deref(), Some("waltz_db"));

    let app = app_bag(s, DB);
    assert_eq!(
        app["master"],
        format!(
            "dbname=waltz_db fallback_application_name=waltz host=10.0.0.10 \
             password={password} port=6432 user={USER}"
        )
    );
    assert_eq!(
        app["standbys"],
        format!(
            "dbname=waltz_db_readonly fallback_application_name=waltz host=10.0.0.10 \
             password={password} port=6432 user={USER}"
        ),
        "alone, the leader serves reads too"
    );
    assert_eq!(app["host"], "10.0.0.10");
    assert_eq!(app["port"], "6432");
    assert_eq!(app["user"], USER);
    assert_eq!(app["password"], password);
    assert_eq!(app["database"], "waltz_db");
    assert_eq!(app["allowed-units"], "waltz/0");
    assert_eq!(app["allowed-subnets"], "10.9.0.1/32");
    assert_eq!(app["version"], "15.18");
    assert_eq!(app["state"], "master");
    assert!(!app.contains_key("extensions"), "none asked for");
    assert_eq!(&s.relation(DB).unwrap().local_unit_data, app);
    // The password is kept in the relation's user secret, in no peer data and
    // on no command line.
    let secret = s.secret_by_label(&secret_label("db", DB, "user")).unwrap();
    assert_eq!(
        secret.latest_content().unwrap().get("password"),
        Some(password.as_str())
    );
    for (_, v) in peer_app(s).iter().chain(peer_unit(s)) {
        assert!(!v.contains(&password));
    }
    assert!(out.calls.lines().iter().all(|l| !l.contains(&password)));
    assert_eq!(s.unit_status, Status::Active(String::new()));

    // Asked again: the same answer, the same password.
    let again = go(&pg, s, changed(s, DB));
    assert_eq!(app_bag(&again.state, DB), app);
    assert_eq!(pg.server().users[USER].0, password);
}

#[test]
fn nothing_is_told_before_every_unit_serves_the_database() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut leader = ready_leader(&pg).with_relation(legacy("db", DB, &[("database", "waltz_db")]));
    leader
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap()
        .remote_units
        .insert(
            "pgbouncer-k8s/1".into(),
            bag(&[("hostname", "10.0.0.11"), ("processes", "2")]),
        );
    let out = go(&pg, &leader, changed(&leader, DB));
    assert!(
        pg.server().databases.contains("waltz_db"),
        "created at once"
    );
    assert!(
        app_bag(&out.state, DB).is_empty(),
        "unit 1 does not serve it yet"
    );
    assert!(out.state.relation(DB).unwrap().local_unit_data.is_empty());
    assert!(out.state.deferred.is_empty());

    // Unit 1 serves what the leader published; its acknowledgement arrives.
    let follower = share_from_leader(&out.state, with_backend(unit(1, false)));
    let served = go(
        &pg,
        &follower,
        event::relation_changed(follower.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/0")),
    );
    assert!(ini(&served.state, 0).contains("waltz_db_readonly"));
    let ack = peer_unit(&served.state).clone();
    let mut leader = out.state;
    leader
        .relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap()
        .remote_units
        .insert("pgbouncer-k8s/1".into(), ack);
    let out = go(
        &pg,
        &leader,
        event::relation_changed(leader.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/1")),
    );
    let app = app_bag(&out.state, DB);
    assert!(app["master"].contains("host=10.0.0.10 "), "{app:?}");
    assert!(app["standbys"].contains("host=10.0.0.11 "));
    assert!(app["standbys"].contains("dbname=waltz_db_readonly "));
    assert_eq!(app["standbys"].lines().count(), 1);
}

#[test]
fn a_request_waits_for_the_backend() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = unit(0, true).with_relation(legacy("db", DB, &[("database", "waltz_db")]));
    let out = go(&pg, &s, changed(&s, DB));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(pg.server().users.is_empty());
    // The backend arrives: its relation-changed serves the pending client.
    let mut with = with_backend(out.state);
    with.deferred.clear();
    let out = go(
        &pg,
        &with,
        event::relation_changed(with.relation(BACKEND_ID).unwrap(), None),
    );
    assert!(pg.server().users.contains_key(USER));
    assert!(app_bag(&out.state, DB).contains_key("master"));
}

#[test]
fn db_admin_is_refused_and_nothing_is_created() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg).with_relation(legacy("db-admin", ADMIN, &[("database", "ops_db")]));
    let before = pg.server();
    let out = go(&pg, &s, changed(&s, ADMIN));
    assert_eq!(pg.server().users, before.users);
    assert_eq!(pg.server().databases, before.databases);
    assert!(
        app_bag(&out.state, ADMIN).is_empty(),
        "no credentials that cannot work"
    );
    let m = blocked(&out.state);
    assert!(
        m.starts_with("relation db-admin:8: a superuser cannot log in through PgBouncer")
            && m.contains("relate waltz to PostgreSQL's db-admin endpoint directly"),
        "{m}"
    );
    // Every later hook keeps it so.
    let out = go(&pg, &out.state, Event::UpdateStatus);
    assert!(app_bag(&out.state, ADMIN).is_empty());
    assert!(blocked(&out.state).contains("db-admin:8"));
    // The relation removed: the status clears, nothing to drop.
    let gone = go(
        &pg,
        &out.state,
        event::relation_broken(out.state.relation(ADMIN).unwrap()),
    );
    let mut after = gone.state.clone();
    after.relations.retain(|r| r.id != ADMIN);
    let out = go(&pg, &after, Event::UpdateStatus);
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn roles_and_hostile_names_are_refused_and_nothing_is_created() {
    for (pairs, phrase) in [
        (
            vec![("database", "waltz_db"), ("roles", "reader")],
            "roles requested through relation, use postgresql_client interface instead",
        ),
        (
            vec![("database", "x'; DROP DATABASE y")],
            "invalid database name",
        ),
        (vec![("database", "pgbouncer")], "admin console"),
        (
            vec![("database", "ok"), ("extensions", "citext;DROP")],
            "invalid extension name",
        ),
    ] {
        let pg = FakeConnector::up_with(&["pgbouncer"]);
        let s = ready_leader(&pg).with_relation(legacy("db", DB, &pairs));
        let before = pg.server();
        let out = go(&pg, &s, changed(&s, DB));
        assert_eq!(pg.server().users, before.users, "{pairs:?}");
        assert!(app_bag(&out.state, DB).is_empty());
        let m = blocked(&out.state);
        assert!(
            m.starts_with("relation db:7: ") && m.contains(phrase),
            "{m}"
        );
    }
}

#[test]
fn missing_extensions_block_until_they_exist_in_the_database() {
    let pg = FakeConnector::up_with(&["pgbouncer", "waltz_db"]);
    pg.0.borrow_mut()
        .extensions
        .insert(("waltz_db".into(), "citext".into()));
    let s = ready_leader(&pg).with_relation(legacy(
        "db",
        DB,
        &[("database", "waltz_db"), ("extensions", "citext,pg_trgm")],
    ));
    let out = go(&pg, &s, changed(&s, DB));
    assert!(!pg.server().users.contains_key(USER), "nothing created");
    assert!(app_bag(&out.state, DB).is_empty());
    assert_eq!(
        blocked(&out.state),
        "relation db:7: extensions requested through relation missing from database \
         waltz_db (PgBouncer creates none: create them in PostgreSQL, and the relation \
         is served): pg_trgm"
    );
    // An operator creates it in PostgreSQL; the next refresh serves the client.
    pg.0.borrow_mut()
        .extensions
        .insert(("waltz_db".into(), "pg_trgm".into()));
    let out = go(&pg, &out.state, Event::UpdateStatus);
    let app = app_bag(&out.state, DB);
    assert_eq!(app["extensions"], "citext,pg_trgm", "echoed verbatim");
    assert!(app.contains_key("master"));
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn a_backend_that_is_down_defers_and_says_so() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg).with_relation(legacy("db", DB, &[("database", "waltz_db")]));
    pg.set_down(Some("connection refused"));
    let out = go(&pg, &s, changed(&s, DB));
    assert_eq!(out.state.deferred.len(), 1);
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(
            m.contains("relation db:7: cannot create database waltz_db")
                && m.contains("connection refused"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    pg.set_down(None);
    let out = go(&pg, &out.state, Event::UpdateStatus);
    assert!(out.state.deferred.is_empty());
    assert!(app_bag(&out.state, DB).contains_key("master"));
}

#[test]
fn master_and_standbys_follow_the_units_and_the_port() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = served(&pg);
    let ack = peer_unit(&s)[state::SERVING].clone();
    // A second unit serves the configuration: it takes the standbys.
    s.relations
        .iter_mut()
        .find(|r| r.endpoint == PEERS)
        .unwrap()
        .remote_units
        .insert(
            "pgbouncer-k8s/1".into(),
            bag(&[
                ("hostname", "10.0.0.11"),
                ("processes", "2"),
                (state::SERVING, &ack),
            ]),
        );
    let out = go(
        &pg,
        &s,
        event::relation_changed(s.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/1")),
    );
    let app = app_bag(&out.state, DB);
    assert!(app["standbys"].contains("host=10.0.0.11 "), "{app:?}");
    assert!(app["master"].contains("host=10.0.0.10 "));
    // A new listen port reaches the client.
    let mut s = out.state.clone();
    s.config
        .insert("listen_port".into(), serde_json::json!(7432));
    let out = go(&pg, &s, Event::ConfigChanged);
    let app = app_bag(&out.state, DB);
    assert!(app["master"].contains(" port=7432 "), "{app:?}");
    assert!(app["standbys"].contains(" port=7432 "));
    assert_eq!(app["port"], "7432");
}

#[test]
fn allowed_units_and_subnets_follow_the_client_units() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let relation = legacy("db", DB, &[("database", "waltz_db")]).remote_unit(
        "waltz/1",
        &[("egress-subnets", "10.9.0.2/32"), ("database", "waltz_db")],
    );
    let s = ready_leader(&pg).with_relation(relation);
    let s = go(&pg, &s, changed(&s, DB)).state;
    assert_eq!(app_bag(&s, DB)["allowed-units"], "waltz/0,waltz/1");
    let mut left = s.clone();
    left.relations
        .iter_mut()
        .find(|r| r.id == DB)
        .unwrap()
        .remote_units
        .remove("waltz/1");
    let ev = event::relation_departed(left.relation(DB).unwrap(), "waltz/1", "waltz/1");
    let out = go(&pg, &left, ev);
    for bag in [
        app_bag(&out.state, DB),
        &out.state.relation(DB).unwrap().local_unit_data,
    ] {
        assert_eq!(bag["allowed-units"], "waltz/0");
        assert_eq!(bag["allowed-subnets"], "10.9.0.1/32");
    }
    assert!(!peer_unit(&out.state).contains_key("db_7_departing"));
}

#[test]
fn a_follower_serves_nothing_and_clears_what_it_wrote_as_leader() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = with_backend(unit(1, false)).with_relation(
        legacy("db", DB, &[("database", "waltz_db")])
            .local_unit_data(&[("master", "host=old"), ("password", "old")]),
    );
    let out = go(&pg, &s, changed(&s, DB));
    assert!(pg.server().users.is_empty());
    assert!(out.state.relation(DB).unwrap().local_unit_data.is_empty());
    assert!(out.state.deferred.is_empty());
}

#[test]
fn broken_drops_the_user_and_keeps_the_data() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = served(&pg);
    let out = go(&pg, &s, event::relation_broken(s.relation(DB).unwrap()));
    let server = pg.server();
    assert!(!server.users.contains_key(USER), "user dropped");
    assert!(server.databases.contains("waltz_db"), "the data stays");
    assert!(!peer_app(&out.state)[state::CFG_FILE].contains("waltz_db"));
    assert!(record(&out.state, DB).is_none(), "forgotten");
    assert!(out
        .state
        .secret_by_label(&secret_label("db", DB, "user"))
        .is_none());
}

#[test]
fn a_departing_leader_keeps_the_user() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = served(&pg);
    let ev = event::relation_departed(s.relation(DB).unwrap(), "waltz/0", "pgbouncer-k8s/0");
    let departed = go(&pg, &s, ev).state;
    assert_eq!(peer_unit(&departed)["db_7_departing"], "true");
    go(
        &pg,
        &departed,
        event::relation_broken(departed.relation(DB).unwrap()),
    );
    assert!(pg.server().users.contains_key(USER));
}

#[test]
fn a_new_backend_cluster_gets_the_legacy_user_back() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = served(&pg);
    let password = pg.server().users[USER].0.clone();
    pg.replace_cluster("7300000000000000002", &["pgbouncer"]);
    let out = go(
        &pg,
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), Some("postgresql-k8s/0")),
    );
    let server = pg.server();
    assert_eq!(server.users[USER].0, password, "the password it holds");
    assert!(server.databases.contains("waltz_db"));
    assert!(server.grants.contains(&("waltz_db".into(), USER.into())));
    assert!(server
        .auth_functions
        .contains(&("waltz_db".into(), "pgbouncer_auth_relation_id_3".into())));
    assert_eq!(app_bag(&out.state, DB)["password"], password);
}
