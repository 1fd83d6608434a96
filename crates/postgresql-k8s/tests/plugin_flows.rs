//! The `plugin_*_enable` options' extensions on the in-memory model
//! (`docs/postgresql-flows.md`, configuration, "Plugins"). Against a real
//! PostgreSQL 15, with every plugin: `real_extensions.rs`.
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | leader? no → nothing | `a_follower_touches_no_extension` |
//! | options valid? no → nothing | `invalid_options_touch_no_extension` |
//! | changed since the last complete pass? no → nothing | `an_unchanged_pass_is_skipped_and_a_config_change_runs_again` |
//! | a primary? no → nothing, the next hook tries again | `without_a_primary_nothing_is_done_until_one_answers` |
//! | PostgreSQL fails → waiting, the next hook tries again | `a_database_error_waits_and_says_why` |
//! | enabled: created (with what it needs) in every client database and template1 | `enabled_plugins_reach_every_client_database_and_template1` |
//! | package missing → blocked naming it, the rest created | `a_plugin_without_its_package_blocks_naming_it` |
//! | library not loaded → waits for the restart, not blocked | `a_preloaded_plugin_waits_for_the_restart_it_needs` |
//! | disabled: dropped where present | `a_disabled_plugin_is_dropped_everywhere` |
//! | disabled, but what an enabled one needs → kept | `an_extension_an_enabled_one_needs_stays` |
//! | disabled, objects depend on it → blocked, dropped nowhere | `dependants_block_the_drop_until_they_are_gone` |
//! | record the pass (complete) or why not (blocked) | `an_unchanged_pass_is_skipped_and_a_config_change_runs_again`, `dependants_block_the_drop_until_they_are_gone` |
//! | a client database created → the enabled extensions in it | `a_new_client_database_gets_the_enabled_extensions` |
//! | a new cluster generation → a new pass | `a_new_cluster_generation_gets_its_extensions_again` |
//! | legacy client asking for disabled extensions → blocked (reference text), served once enabled | `a_legacy_client_asking_for_disabled_extensions_is_refused_until_enabled` |
//! | `shared_preload_libraries`: the library when the image has it; the restart it needs made by the rolling restart | `the_audit_library_is_preloaded_only_when_the_image_has_it` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, Status};
use charm_testing::{event, RelationState, State};
use postgresql_k8s::state;
use postgresql_k8s::status::RESTART_PENDING;
use postgresql_k8s::workload::{Layout, CONTAINER, SERVICE};
use serde_json::json;
use support::*;

const CLIENT: u64 = 5;
const LEGACY: u64 = 7;

/// Leader 0 of a one-unit initialised cluster, its Patroni running.
fn running() -> (World, State) {
    let w = World::new(&[(0, "leader", "running")]);
    w.pg.0.borrow_mut().admin_group = true;
    let mut s = initialised(unit(0, true), &[0]);
    let container = s.containers.get_mut(CONTAINER).unwrap();
    let mut layer = pebble_api::Layer::default();
    layer
        .services
        .insert(SERVICE.into(), pebble_api::Service::default());
    container.layers.push(("patroni".into(), layer));
    container
        .running
        .insert(SERVICE.into(), pebble_api::Service::default());
    (w, s)
}

/// The same, with a `database` client served its database `shop`.
fn serving() -> (World, State) {
    let (w, s) = running();
    let s = s.with_relation(client(CLIENT, "shop", &[]));
    let out = w.go(
        &s,
        event::relation_changed(s.relation(CLIENT).unwrap(), None),
    );
    assert!(w.pg.server().databases.contains("shop"));
    (w, out.state)
}

fn has(w: &World, db: &str, extension: &str) -> bool {
    w.pg.server()
        .extensions
        .contains(&(db.to_string(), extension.to_string()))
}

fn configured(w: &World, s: &State, options: &[(&str, bool)]) -> State {
    let mut s = s.clone();
    for (name, on) in options {
        s.config.insert(format!("plugin_{name}_enable"), json!(on));
    }
    w.go(&s, Event::ConfigChanged).state
}

fn blocked(s: &State) -> String {
    match &s.unit_status {
        Status::Blocked(m) => m.clone(),
        other => panic!("not blocked: {other:?}"),
    }
}

#[test]
fn enabled_plugins_reach_every_client_database_and_template1() {
    let (w, s) = serving();
    // A legacy client's database too.
    let legacy = RelationState::new("db", LEGACY, "waltz")
        .remote_app_data(&[("database", "waltz_db")])
        .remote_unit("waltz/0", &[("private-address", "10.9.0.1")]);
    let s = s.with_relation(legacy);
    let s = w
        .go(
            &s,
            event::relation_changed(s.relation(LEGACY).unwrap(), Some("waltz/0")),
        )
        .state;
    let out = configured(&w, &s, &[("citext", true), ("uuid_ossp", true)]);
    for db in ["shop", "waltz_db", "template1"] {
        for e in ["citext", "uuid-ossp", "pgaudit"] {
            assert!(has(&w, db, e), "{e} in {db}");
        }
    }
    assert!(!has(&w, "postgres", "citext"), "not in postgres");
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
    assert!(logged(&out, "created extension citext in waltz_db"));
    assert_eq!(
        peer_app(&out)[state::EXTENSIONS_APPLIED],
        "pgaudit,citext,uuid-ossp in shop,template1,waltz_db"
    );
}

#[test]
fn a_follower_touches_no_extension() {
    let (w, s) = running();
    let mut s = s;
    s.leader = false;
    let out = configured(&w, &s, &[("citext", true)]);
    assert!(w.pg.server().extensions.is_empty());
    assert!(!peer_app(&out).contains_key(state::EXTENSIONS_APPLIED));
}

#[test]
fn invalid_options_touch_no_extension() {
    let (w, s) = running();
    let mut s = s;
    s.config
        .insert("plugin_citext_enable".into(), json!("yes please"));
    let out = w.go(&s, Event::ConfigChanged);
    assert!(w.pg.server().extensions.is_empty());
    assert!(blocked(&out.state).contains("plugin_citext_enable"));
}

#[test]
fn an_unchanged_pass_is_skipped_and_a_config_change_runs_again() {
    let (w, s) = running();
    let s = configured(&w, &s, &[("hstore", true)]);
    assert!(has(&w, "template1", "hstore"));
    // Someone drops it by hand: the options and databases did not change,
    // so the next hooks leave it.
    w.pg.0.borrow_mut().extensions.clear();
    let s = w.go(&s, event::update_status()).state;
    assert!(!has(&w, "template1", "hstore"));
    // A change of the options runs a full pass again.
    configured(&w, &s, &[("hstore", true), ("pg_trgm", true)]);
    assert!(has(&w, "template1", "hstore") && has(&w, "template1", "pg_trgm"));
}

#[test]
fn without_a_primary_nothing_is_done_until_one_answers() {
    let (w, s) = running();
    w.set_members(&[(0, "replica", "streaming")]);
    let s = configured(&w, &s, &[("hstore", true)]);
    assert!(!has(&w, "template1", "hstore"));
    assert!(!peer_app(&s).contains_key(state::EXTENSIONS_APPLIED));
    w.set_members(&[(0, "leader", "running")]);
    w.go(&s, event::update_status());
    assert!(has(&w, "template1", "hstore"));
}

#[test]
fn a_database_error_waits_and_says_why() {
    let (w, s) = running();
    w.pg.set_down(Some("connection refused"));
    let out = configured(&w, &s, &[("hstore", true)]);
    match &out.unit_status {
        Status::Waiting(m) => assert!(
            m.starts_with("cannot update the plugins' extensions: ")
                && m.contains("connection refused"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    w.pg.set_down(None);
    w.go(&out, event::update_status());
    assert!(has(&w, "template1", "hstore"));
}

#[test]
fn a_plugin_without_its_package_blocks_naming_it() {
    let (w, s) = running();
    let out = configured(&w, &s, &[("postgis", true), ("hstore", true)]);
    assert_eq!(
        blocked(&out),
        "extensions not installed in the PostgreSQL image: postgis (plugin_postgis_enable); \
         set those options to false"
    );
    assert!(has(&w, "template1", "hstore"), "the others are created");
    // Turned off again: the block goes.
    let out = configured(&w, &out, &[("postgis", false)]);
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
    assert!(!peer_app(&out).contains_key(state::EXTENSIONS_BLOCKED));
}

#[test]
fn a_preloaded_plugin_waits_for_the_restart_it_needs() {
    let (w, s) = running();
    w.pg.0.borrow_mut().preloaded = vec!["pg_stat_statements".into()];
    let out = configured(&w, &s, &[("hstore", true)]);
    assert!(!has(&w, "template1", "pgaudit") && has(&w, "template1", "hstore"));
    assert!(logged(
        &out,
        "extensions pgaudit wait for PostgreSQL to restart"
    ));
    assert_eq!(
        out.unit_status,
        Status::Active("Primary".into()),
        "no block"
    );
    assert!(!peer_app(&out).contains_key(state::EXTENSIONS_APPLIED));
    // Restarted with the library: the next hook creates it.
    w.pg.0.borrow_mut().preloaded.push("pgaudit".into());
    w.go(&out, event::update_status());
    assert!(has(&w, "template1", "pgaudit"));
}

#[test]
fn a_disabled_plugin_is_dropped_everywhere() {
    let (w, s) = serving();
    let s = configured(&w, &s, &[("citext", true)]);
    assert!(has(&w, "shop", "citext"));
    let out = configured(&w, &s, &[("citext", false), ("audit", false)]);
    for db in ["shop", "template1"] {
        assert!(!has(&w, db, "citext") && !has(&w, db, "pgaudit"), "{db}");
    }
    assert!(logged(&out, "dropped extension citext from shop"));
}

#[test]
fn an_extension_an_enabled_one_needs_stays() {
    let (w, s) = running();
    {
        let mut server = w.pg.0.borrow_mut();
        server.available_extensions.insert("cube".into());
        server.available_extensions.insert("earthdistance".into());
    }
    let s = configured(&w, &s, &[("cube", true), ("earthdistance", true)]);
    let out = configured(&w, &s, &[("cube", false)]);
    assert!(has(&w, "template1", "cube") && has(&w, "template1", "earthdistance"));
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
}

#[test]
fn dependants_block_the_drop_until_they_are_gone() {
    let (w, s) = serving();
    let s = configured(&w, &s, &[("citext", true), ("hstore", true)]);
    w.pg.add_dependant("shop", "citext", "column name of table people");
    let out = configured(&w, &s, &[("citext", false), ("hstore", false)]);
    assert_eq!(
        blocked(&out),
        "cannot drop extension citext (plugin_citext_enable is false): used by column name \
         of table people in database shop; drop or change those objects, or set \
         plugin_citext_enable=true"
    );
    assert!(has(&w, "shop", "citext") && has(&w, "template1", "citext"));
    assert!(!has(&w, "shop", "hstore"), "the others go");
    // The table changed, the next hook drops it and the block goes.
    w.pg.0.borrow_mut().dependants.clear();
    let out = w.go(&out, event::update_status()).state;
    assert!(!has(&w, "shop", "citext") && !has(&w, "template1", "citext"));
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
}

#[test]
fn a_new_client_database_gets_the_enabled_extensions() {
    let (w, s) = running();
    let s = configured(&w, &s, &[("pg_trgm", true)]);
    let s = s.with_relation(client(CLIENT, "shop", &[]));
    let out = w.go(
        &s,
        event::relation_changed(s.relation(CLIENT).unwrap(), None),
    );
    assert!(has(&w, "shop", "pg_trgm") && has(&w, "shop", "pgaudit"));
    assert!(logged(&out.state, "created extension pg_trgm in shop"));
}

#[test]
fn a_new_cluster_generation_gets_its_extensions_again() {
    let (w, s) = serving();
    let s = configured(&w, &s, &[("hstore", true)]);
    w.pg.replace_cluster("7300000000000000002", &[]);
    let mut s = s;
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .remove(state::CLUSTER_INITIALISED);
    w.go(&s, event::update_status());
    assert!(has(&w, "shop", "hstore") && has(&w, "template1", "hstore"));
}

#[test]
fn a_legacy_client_asking_for_disabled_extensions_is_refused_until_enabled() {
    let (w, s) = running();
    let legacy = RelationState::new("db", LEGACY, "waltz")
        .remote_app_data(&[
            ("database", "geo"),
            ("extensions", "citext,uuid-ossp,plpgsql"),
        ])
        .remote_unit("waltz/0", &[("private-address", "10.9.0.1")]);
    let s = s.with_relation(legacy);
    let out = w.go(
        &s,
        event::relation_changed(s.relation(LEGACY).unwrap(), Some("waltz/0")),
    );
    assert_eq!(
        blocked(&out.state),
        "relation db:7: extensions requested through relation that are disabled (set \
         plugin_citext_enable=true, plugin_uuid_ossp_enable=true; no plugin option creates \
         plpgsql): citext, uuid-ossp, plpgsql"
    );
    assert!(!w.pg.server().databases.contains("geo"), "nothing created");
    // Enabled (and the request without plpgsql), the client is served.
    let mut s = out.state;
    s.relations
        .iter_mut()
        .find(|r| r.id == LEGACY)
        .unwrap()
        .remote_app_data
        .insert("extensions".into(), "citext,uuid-ossp".into());
    let out = configured(&w, &s, &[("citext", true), ("uuid_ossp", true)]);
    assert!(has(&w, "geo", "citext") && has(&w, "geo", "uuid-ossp"));
    assert!(out
        .relation(LEGACY)
        .unwrap()
        .local_app_data
        .contains_key("master"));
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
}

#[test]
fn the_audit_library_is_preloaded_only_when_the_image_has_it() {
    let (w, s) = running();
    w.pg.0.borrow_mut().preloaded = vec!["pg_stat_statements".into()];
    let out = w.go(&s, event::pebble_ready(CONTAINER)).state;
    let preload = |s: &State| {
        patroni_doc(s)["postgresql"]["parameters"]["shared_preload_libraries"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(preload(&out), "pg_stat_statements", "no pgaudit.so");
    // The image has the library: it is preloaded, which waits for a restart.
    let mut s = out;
    let lib = format!("{}/pgaudit.so", Layout::default().lib_dir());
    let container = s.containers.remove(CONTAINER).unwrap();
    s.containers
        .insert(CONTAINER.into(), container.with_file(&lib, b"\x7fELF"));
    let out = w.go(&s, Event::ConfigChanged).state;
    assert_eq!(preload(&out), "pg_stat_statements,pgaudit");
    assert!(logged(&out, "shared_preload_libraries changed"));
    // Patroni and PostgreSQL report the restart it waits for, as for any
    // start-only parameter; pgaudit waits for it, without blocking, and the
    // rolling restart restarts the only member.
    w.patroni.set_pending_restart(&addr(0));
    w.pg.set_pending_restart(&["shared_preload_libraries"]);
    let out = w.go(&out, event::update_status()).state;
    assert!(!has(&w, "template1", "pgaudit"));
    assert_eq!(w.patroni.cluster_state().restarts, [addr(0)]);
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
    assert!(!out.unit_status.message().contains(RESTART_PENDING));
    // Turned off, it goes again.
    let out = configured(&w, &out, &[("audit", false)]);
    assert_eq!(preload(&out), "pg_stat_statements");
}
