//! The legacy `db` and `db-admin` relations (interface `pgsql`, provider)
//! on the in-memory model (`docs/postgresql-flows.md`, legacy relations).
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | relation-changed: is this unit the leader? no → remove a stale copy of the answer from its unit bag | `a_follower_serves_nothing_and_clears_what_it_wrote_as_leader` |
//! | has the client asked (a `database` key)? no → return | `nothing_is_done_before_the_client_asks` |
//! | an empty `database`: the client application's name | `an_empty_database_is_named_after_the_client` |
//! | is the request valid? no (roles) → blocked, nothing created | `roles_are_refused_with_the_reference_text_and_nothing_is_created` |
//! | is the request valid? no (a database or extension name) → blocked, nothing created | `hostile_names_are_refused_and_nothing_is_created` |
//! | are the extensions enabled (their plugin options on)? no → blocked, nothing created; a config change serves the client | `plugin_flows.rs`: `a_legacy_client_asking_for_disabled_extensions_is_refused_until_enabled` |
//! | is the cluster initialised, with a primary? no → defer | `a_request_waits_for_the_initialised_cluster` |
//! | are the extensions available? no → blocked, nothing created | `unavailable_extensions_block_and_a_later_refresh_serves_the_client` |
//! | keep the password; create the user, the database and the extensions (and the enabled plugins') | `db_gets_a_login_user_its_database_and_extensions`, `db_admin_always_gets_a_superuser`, `the_password_is_kept_across_hooks` |
//! | PostgreSQL fails → waiting, defer | `a_database_error_defers_and_says_why` |
//! | publish `master`, `standbys` and the rest in the application and unit bags | `db_gets_a_login_user_its_database_and_extensions` |
//! | refresh: `master` follows the primary, `standbys` the replicas | `master_follows_a_failover_and_standbys_follow_scaling` |
//! | refresh: a refused request is tried again | `unavailable_extensions_block_and_a_later_refresh_serves_the_client` |
//! | relation-departed: is this unit departing? yes → flag | `a_departing_leader_keeps_the_user` |
//! | no, a client unit left → `allowed-units` and `allowed-subnets` updated | `allowed_units_and_subnets_follow_the_client_units` |
//! | relation-broken: leader, not departing → drop the user, keep the database | `relation_broken_drops_the_user_and_keeps_the_database` |
//! | relation-broken: departing (flag) → keep the user | `a_departing_leader_keeps_the_user` |
//! | a new cluster generation makes legacy users, databases and extensions again | `a_new_cluster_makes_legacy_clients_again` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, Status};
use charm_testing::{event, RelationState, State};
use client_interface::provider::secret_label;
use postgresql_k8s::state;
use postgresql_k8s::workload::{CONTAINER, SERVICE};
use support::*;

const DB: u64 = 7;
const ADMIN: u64 = 8;

/// A legacy client relation on `endpoint` whose leader asked for `database`
/// (and whose unit mirrors it, as `ops-lib-pgsql` does), with one unit.
fn legacy(endpoint: &str, id: u64, pairs: &[(&str, &str)]) -> RelationState {
    let mut unit = vec![
        ("egress-subnets", "10.9.0.1/32"),
        ("private-address", "10.9.0.1"),
    ];
    unit.extend_from_slice(pairs);
    RelationState::new(endpoint, id, "waltz")
        .remote_app_data(pairs)
        .remote_unit("waltz/0", &unit)
}

/// Leader 0 of a two-unit initialised cluster (unit 1 a replica), with the
/// relations given.
fn two_units(relations: Vec<RelationState>) -> (World, State) {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let mut s = initialised(with_peers(unit(0, true), &[1]), &[0, 1]);
    // Patroni runs in the leader's container, as its member's role says.
    let container = s
        .containers
        .get_mut(CONTAINER)
        .expect("the postgresql container");
    let mut layer = pebble_api::Layer::default();
    layer
        .services
        .insert(SERVICE.into(), pebble_api::Service::default());
    container.layers.push(("patroni".into(), layer));
    container
        .running
        .insert(SERVICE.into(), pebble_api::Service::default());
    for r in relations {
        s = s.with_relation(r);
    }
    (w, s)
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

#[test]
fn db_gets_a_login_user_its_database_and_extensions() {
    let (w, s) = two_units(vec![legacy(
        "db",
        DB,
        &[
            ("database", "waltz_db"),
            ("roles", ""),
            ("extensions", "citext,pg_trgm:search"),
        ],
    )]);
    let s = with_plugins(s, &["citext", "pg_trgm"]);
    let out = w.go(&s, changed(&s, DB));
    let server = w.pg.server();
    let (password, roles) = server.users["relation_id_7"].clone();
    assert!(!roles.contains("Superuser"), "{roles}");
    assert!(server.databases.contains("waltz_db"));
    assert!(server
        .grants
        .contains(&("waltz_db".into(), "relation_id_7".into())));
    assert!(server
        .extensions
        .contains(&("waltz_db".into(), "citext".into())));
    assert!(server
        .extensions
        .contains(&("waltz_db".into(), "pg_trgm:search".into())));
    assert_eq!(server.sessions, [addr(0)], "on the primary");

    let app = app_bag(&out.state, DB);
    assert_eq!(
        app["master"],
        format!(
            "dbname=waltz_db fallback_application_name=waltz host={} password={password} \
             port=5432 user=relation_id_7",
            addr(0)
        )
    );
    assert_eq!(
        app["standbys"],
        format!(
            "dbname=waltz_db fallback_application_name=waltz host={} password={password} \
             port=5432 user=relation_id_7",
            addr(1)
        )
    );
    assert_eq!(app["host"], addr(0));
    assert_eq!(app["port"], "5432");
    assert_eq!(app["user"], "relation_id_7");
    assert_eq!(app["password"], password);
    assert_eq!(app["database"], "waltz_db");
    assert_eq!(app["allowed-subnets"], "10.9.0.1/32");
    assert_eq!(app["allowed-units"], "waltz/0");
    assert_eq!(
        app["extensions"], "citext,pg_trgm:search",
        "echoed verbatim"
    );
    assert_eq!(app["version"], "15.18");
    assert!(!app.contains_key("roles") && !app.contains_key("state"));
    assert_eq!(
        &out.state.relation(DB).unwrap().local_unit_data,
        app,
        "the leader's unit bag holds the same"
    );
    // The password lives in the relation's user secret, never on a command line.
    let secret = out
        .state
        .secret_by_label(&secret_label("db", DB, "user"))
        .unwrap();
    assert_eq!(
        secret.latest_content().unwrap().get("password"),
        Some(password.as_str())
    );
    assert!(secret.grants.is_empty(), "granted to no one");
    assert!(out.calls.lines().iter().all(|l| !l.contains(&password)));
    assert!(out.state.logs.iter().all(|(_, m)| !m.contains(&password)));
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
}

#[test]
fn db_admin_always_gets_a_superuser() {
    let (w, s) = two_units(vec![legacy("db-admin", ADMIN, &[("database", "ops_db")])]);
    let out = w.go(&s, changed(&s, ADMIN));
    let roles = &w.pg.server().users["relation_id_8"].1;
    assert!(roles.contains("Superuser"), "{roles}");
    assert!(app_bag(&out.state, ADMIN)["master"].contains("user=relation_id_8"));
    // Served again (a refused request retried, a client unit joining): still a superuser.
    let again = w.go(&out.state, event::update_status());
    let again = w.go(&again.state, changed(&again.state, ADMIN));
    assert!(w.pg.server().users["relation_id_8"].1.contains("Superuser"));
    assert_eq!(app_bag(&again.state, ADMIN), app_bag(&out.state, ADMIN));
}

#[test]
fn the_password_is_kept_across_hooks() {
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])]);
    let first = w.go(&s, changed(&s, DB));
    let password = app_bag(&first.state, DB)["password"].clone();
    let second = w.go(&first.state, changed(&first.state, DB));
    assert_eq!(app_bag(&second.state, DB)["password"], password);
    assert_eq!(w.pg.server().users["relation_id_7"].0, password);
    assert_eq!(second.state.secrets.len(), first.state.secrets.len());
}

#[test]
fn an_empty_database_is_named_after_the_client() {
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "")])]);
    let out = w.go(&s, changed(&s, DB));
    assert!(w.pg.server().databases.contains("waltz"));
    assert!(app_bag(&out.state, DB)["master"].contains("dbname=waltz "));
}

#[test]
fn nothing_is_done_before_the_client_asks() {
    let (w, s) = two_units(vec![RelationState::new("db", DB, "waltz")
        .remote_unit("waltz/0", &[("egress-subnets", "10.9.0.1/32")])]);
    let out = w.go(&s, changed(&s, DB));
    assert!(w.pg.server().users.is_empty());
    assert!(app_bag(&out.state, DB).is_empty());
    assert!(out.state.deferred.is_empty());
}

#[test]
fn roles_are_refused_with_the_reference_text_and_nothing_is_created() {
    let (w, s) = two_units(vec![legacy(
        "db",
        DB,
        &[("database", "waltz_db"), ("roles", "reader,writer")],
    )]);
    let before = w.pg.server();
    let out = w.go(&s, changed(&s, DB));
    assert_eq!(w.pg.server().users, before.users);
    assert!(app_bag(&out.state, DB).is_empty());
    assert_eq!(
        blocked(&out.state),
        "relation db:7: roles requested through relation, use postgresql_client interface instead"
    );
    // The client drops its roles: it is served, and the status clears.
    let mut fixed = out.state.clone();
    let r = fixed.relations.iter_mut().find(|r| r.id == DB).unwrap();
    r.remote_app_data.insert("roles".into(), String::new());
    let out = w.go(&fixed, changed(&fixed, DB));
    assert!(app_bag(&out.state, DB).contains_key("master"));
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
    assert!(!peer_app(&out.state).contains_key(state::LEGACY_REFUSALS));
}

#[test]
fn hostile_names_are_refused_and_nothing_is_created() {
    for (pairs, phrase) in [
        (
            vec![("database", "x'; DROP DATABASE y; --")],
            "invalid database name",
        ),
        (vec![("database", "template1")], "\"template1\""),
        (
            vec![("database", "ok"), ("extensions", "citext; DROP TABLE t")],
            "invalid extension name",
        ),
        (
            vec![("database", "ok"), ("extensions", "citext:pg_catalog")],
            "invalid schema name",
        ),
    ] {
        let (w, s) = two_units(vec![legacy("db-admin", ADMIN, &pairs)]);
        let out = w.go(&s, changed(&s, ADMIN));
        assert!(w.pg.server().users.is_empty(), "{pairs:?}");
        assert!(app_bag(&out.state, ADMIN).is_empty());
        let m = blocked(&out.state);
        assert!(
            m.starts_with("relation db-admin:8: ") && m.contains(phrase),
            "{m}"
        );
    }
}

#[test]
fn a_request_waits_for_the_initialised_cluster() {
    let (w, mut s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])]);
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .remove(state::CLUSTER_INITIALISED);
    let out = w.go(&s, changed(&s, DB));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(w.pg.server().users.is_empty());
    // No primary: the same.
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])]);
    w.set_members(&[(0, "replica", "running"), (1, "replica", "streaming")]);
    let out = w.go(&s, changed(&s, DB));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(w.pg.server().users.is_empty());
}

#[test]
fn unavailable_extensions_block_and_a_later_refresh_serves_the_client() {
    let (w, s) = two_units(vec![legacy(
        "db",
        DB,
        &[("database", "geo"), ("extensions", "citext,postgis")],
    )]);
    let s = with_plugins(s, &["citext", "postgis"]);
    let out = w.go(&s, changed(&s, DB));
    assert!(w.pg.server().users.is_empty(), "nothing created");
    assert!(!w.pg.server().databases.contains("geo"));
    assert!(app_bag(&out.state, DB).is_empty());
    assert_eq!(
        blocked(&out.state),
        "relation db:7: extensions requested through relation not available on this server: postgis"
    );
    // The image gains the extension; the next refresh serves the client.
    w.pg.0
        .borrow_mut()
        .available_extensions
        .insert("postgis".into());
    let out = w.go(&out.state, event::update_status());
    assert!(w
        .pg
        .server()
        .extensions
        .contains(&("geo".into(), "postgis".into())));
    assert_eq!(app_bag(&out.state, DB)["extensions"], "citext,postgis");
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
}

#[test]
fn a_database_error_defers_and_says_why() {
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])]);
    w.pg.set_down(Some("connection refused"));
    let out = w.go(&s, changed(&s, DB));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(app_bag(&out.state, DB).is_empty());
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(
            m.contains("relation db:7: cannot create database waltz_db")
                && m.contains("connection refused"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    w.pg.set_down(None);
    let out = w.go(&out.state, event::update_status());
    assert!(out.state.deferred.is_empty());
    assert!(app_bag(&out.state, DB).contains_key("master"));
}

#[test]
fn master_follows_a_failover_and_standbys_follow_scaling() {
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])]);
    let served = w.go(&s, changed(&s, DB)).state;
    let password = app_bag(&served, DB)["password"].clone();

    // Unit 1 is promoted: update-status (or the role-change notice) refreshes.
    w.set_members(&[(0, "sync_standby", "streaming"), (1, "leader", "running")]);
    let out = w.go(&served, event::update_status());
    let app = app_bag(&out.state, DB);
    assert!(
        app["master"].contains(&format!("host={} ", addr(1))),
        "{app:?}"
    );
    assert!(app["standbys"].contains(&format!("host={} ", addr(0))));
    assert_eq!(app["host"], addr(1));
    assert_eq!(app["password"], password, "the same password");
    assert_eq!(&out.state.relation(DB).unwrap().local_unit_data, app);

    // A third unit joins the cluster as a replica: two standbys, one per line.
    w.set_members(&[
        (0, "sync_standby", "streaming"),
        (1, "leader", "running"),
        (2, "replica", "streaming"),
    ]);
    let s3 = initialised(with_peers(out.state.clone(), &[2]), &[0, 1, 2]);
    let out = w.go(&s3, event::update_status());
    let standbys = app_bag(&out.state, DB)["standbys"].clone();
    assert_eq!(standbys.lines().count(), 2, "{standbys}");
    assert!(standbys.contains(&format!("host={} ", addr(2))));

    // It leaves: the peer departure refreshes the standbys at once.
    let mut gone = out.state.clone();
    gone.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .remote_units
        .remove(&unit_name(2));
    let departed = event::relation_departed(
        gone.relation(PEER_ID).unwrap(),
        &unit_name(2),
        &unit_name(2),
    );
    let out = w.go(&gone, departed);
    let standbys = &app_bag(&out.state, DB)["standbys"];
    assert_eq!(standbys.lines().count(), 1, "{standbys}");
    assert!(standbys.contains(&format!("host={} ", addr(0))));
}

#[test]
fn allowed_units_and_subnets_follow_the_client_units() {
    let mut relation = legacy("db", DB, &[("database", "waltz_db")]);
    relation = relation.remote_unit(
        "waltz/1",
        &[("egress-subnets", "10.9.0.2/32"), ("database", "waltz_db")],
    );
    let (w, s) = two_units(vec![relation]);
    let served = w.go(&s, changed(&s, DB)).state;
    assert_eq!(app_bag(&served, DB)["allowed-units"], "waltz/0,waltz/1");
    assert_eq!(
        app_bag(&served, DB)["allowed-subnets"],
        "10.9.0.1/32,10.9.0.2/32"
    );
    // waltz/1 leaves: Juju no longer lists it in relation-departed.
    let mut left = served.clone();
    left.relations
        .iter_mut()
        .find(|r| r.id == DB)
        .unwrap()
        .remote_units
        .remove("waltz/1");
    let ev = event::relation_departed(left.relation(DB).unwrap(), "waltz/1", "waltz/1");
    let out = w.go(&left, ev);
    for bag in [
        app_bag(&out.state, DB),
        &out.state.relation(DB).unwrap().local_unit_data,
    ] {
        assert_eq!(bag["allowed-units"], "waltz/0");
        assert_eq!(bag["allowed-subnets"], "10.9.0.1/32");
    }
    // Even when Patroni does not answer.
    let mut left_again = out.state.clone();
    left_again
        .relations
        .iter_mut()
        .find(|r| r.id == DB)
        .unwrap()
        .remote_units
        .clear();
    w.patroni.set_down(&addr(0), true);
    w.patroni.set_down(&addr(1), true);
    let ev = event::relation_departed(left_again.relation(DB).unwrap(), "waltz/0", "waltz/0");
    let out = w.go(&left_again, ev);
    assert!(!app_bag(&out.state, DB).contains_key("allowed-units"));
    assert!(!app_bag(&out.state, DB).contains_key("allowed-subnets"));
}

#[test]
fn a_follower_serves_nothing_and_clears_what_it_wrote_as_leader() {
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])
        .local_unit_data(&[("master", "host=old"), ("password", "old")])]);
    let s = State { leader: false, ..s };
    let out = w.go(&s, changed(&s, DB));
    assert!(w.pg.server().users.is_empty());
    assert!(out.state.relation(DB).unwrap().local_unit_data.is_empty());
    assert!(out.state.deferred.is_empty());
}

#[test]
fn relation_broken_drops_the_user_and_keeps_the_database() {
    let (w, s) = two_units(vec![legacy("db-admin", ADMIN, &[("database", "ops_db")])]);
    let served = w.go(&s, changed(&s, ADMIN)).state;
    let out = w.go(
        &served,
        event::relation_broken(served.relation(ADMIN).unwrap()),
    );
    let server = w.pg.server();
    assert!(!server.users.contains_key("relation_id_8"));
    assert!(server.databases.contains("ops_db"));
    assert!(out
        .state
        .secret_by_label(&secret_label("db-admin", ADMIN, "user"))
        .is_none());
    // A follower drops nothing.
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])]);
    let served = w.go(&s, changed(&s, DB)).state;
    let follower = State {
        leader: false,
        ..served
    };
    w.go(
        &follower,
        event::relation_broken(follower.relation(DB).unwrap()),
    );
    assert!(w.pg.server().users.contains_key("relation_id_7"));
}

#[test]
fn a_departing_leader_keeps_the_user() {
    let (w, s) = two_units(vec![legacy("db", DB, &[("database", "waltz_db")])]);
    let served = w.go(&s, changed(&s, DB)).state;
    let ev = event::relation_departed(served.relation(DB).unwrap(), "waltz/0", &unit_name(0));
    let departed = w.go(&served, ev).state;
    assert_eq!(peer_unit(&departed)[state::DEPARTING], "True");
    w.go(
        &departed,
        event::relation_broken(departed.relation(DB).unwrap()),
    );
    assert!(w.pg.server().users.contains_key("relation_id_7"));
}

#[test]
fn a_new_cluster_makes_legacy_clients_again() {
    let (w, s) = two_units(vec![legacy(
        "db-admin",
        ADMIN,
        &[("database", "ops_db"), ("extensions", "hstore")],
    )]);
    let s = with_plugins(s, &["hstore"]);
    let served = w.go(&s, changed(&s, ADMIN)).state;
    let password = w.pg.server().users["relation_id_8"].0.clone();
    // The cluster is bootstrapped anew (a new generation): the leader
    // initialises it again, with the clients it served.
    w.pg.replace_cluster("7300000000000000002", &[]);
    let mut s = served.clone();
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .remove(state::CLUSTER_INITIALISED);
    let out = w.go(&s, event::update_status());
    assert_eq!(peer_app(&out.state)[state::CLUSTER_INITIALISED], "True");
    let server = w.pg.server();
    let (kept, roles) = &server.users["relation_id_8"];
    assert_eq!(kept, &password, "the password the client holds");
    assert!(roles.contains("Superuser"));
    assert!(server.databases.contains("ops_db"));
    assert!(server
        .extensions
        .contains(&("ops_db".into(), "hstore".into())));
}
