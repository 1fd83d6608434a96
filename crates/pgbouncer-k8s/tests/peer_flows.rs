//! The `pgb-peers` relation's flows (`docs/pgbouncer-flows.md`) on the
//! in-memory model.
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | relation-created: save unit hostname in unit databag | `created_saves_the_hostname_on_every_unit` |
//! | is current unit leader? no → return | `created_saves_the_hostname_on_every_unit` |
//! | is pgbouncer config available? no → defer | `created_defers_while_the_config_is_invalid` |
//! | yes → update config in peer databag | `created_on_the_leader_publishes_the_config_then_defers_without_backend` |
//! | is backend database ready? no → defer | `created_on_the_leader_publishes_the_config_then_defers_without_backend` |
//! | yes → add auth file to secret store | `created_with_a_backend_stores_the_auth_file` |
//! | relation-changed: save unit hostname, update peer data | `changed_on_a_follower_saves_config_and_auth_then_acknowledges` |
//! | is current unit leader? yes → is local config available? no → defer | `changed_on_the_leader_defers_while_the_config_is_invalid` |
//! | yes → update pgbouncer config and leader hostname in app databag | `changed_on_the_leader_republishes_config_and_hostname` |
//! | no → is a valid config file in the app databag? yes → save config | `changed_on_a_follower_saves_config_and_auth_then_acknowledges` |
//! | no → (straight to the auth file) | `a_follower_with_only_the_auth_file_writes_it_and_reloads` |
//! | is a valid auth file in the app databag? yes → save auth file | `changed_on_a_follower_saves_config_and_auth_then_acknowledges`, `a_follower_with_only_the_auth_file_writes_it_and_reloads` |
//! | no → (straight to reload) | `a_follower_without_auth_file_still_serves_the_config` |
//! | if auth file or config have changed, reload pgbouncer | `followers_reload_only_what_changed`, `a_follower_with_only_the_auth_file_writes_it_and_reloads` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, Status};
use charm_testing::{event, ServiceOp, State};
use pgbouncer_k8s::state;
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::FakeConnector;
use support::*;

fn created(state: &State) -> Event {
    event::relation_created(state.relation(PEER_ID).unwrap())
}

fn changed(state: &State) -> Event {
    event::relation_changed(state.relation(PEER_ID).unwrap(), Some("pgbouncer-k8s/0"))
}

fn invalid_config(mut s: State) -> State {
    s.config.insert("pool_mode".into(), "sometimes".into());
    s
}

#[test]
fn created_saves_the_hostname_on_every_unit() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = unit(2, false);
    let out = go(&pg, &s, created(&s));
    assert_eq!(peer_unit(&out.state)[state::HOSTNAME], "192.0.2.10");
    assert_eq!(peer_unit(&out.state)[state::PROCESSES], "2");
    assert!(
        peer_app(&out.state).is_empty(),
        "a follower publishes nothing"
    );
    assert!(out.state.deferred.is_empty());
}

#[test]
fn created_defers_while_the_config_is_invalid() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = invalid_config(unit(0, true));
    let out = go(&pg, &s, created(&s));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(peer_app(&out.state).is_empty());
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(m.contains("pool_mode"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn created_on_the_leader_publishes_the_config_then_defers_without_backend() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = unit(0, true);
    let out = go(&pg, &s, created(&s));
    let cfg = &peer_app(&out.state)[state::CFG_FILE];
    assert!(
        cfg.contains("listen_port = 6432") && !cfg.contains("auth_query"),
        "{cfg}"
    );
    assert_eq!(peer_app(&out.state)[state::LEADER_HOSTNAME], "192.0.2.10");
    assert_eq!(out.state.deferred.len(), 1, "waits for the backend");
}

#[test]
fn created_with_a_backend_stores_the_auth_file() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = with_backend(unit(0, true));
    let out = go(&pg, &s, created(&s));
    assert!(out.state.deferred.is_empty());
    let secret = out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap();
    let content = secret.latest_content().unwrap();
    let auth = content.get(state::AUTH_FILE).unwrap();
    let auth_password = pg.server().users["pgbouncer_auth_relation_id_3"].0.clone();
    assert!(auth.contains(&format!(
        "\"pgbouncer_auth_relation_id_3\" \"{auth_password}\""
    )));
    assert!(auth.contains("\"pgbouncer_admin_pgbouncer_k8s\" \"SCRAM-SHA-256$4096:"));
    assert!(auth.contains("\"pgbouncer_stats_pgbouncer_k8s\" \"SCRAM-SHA-256$4096:"));
    for db in ["pgbouncer", "postgres"] {
        assert!(pg
            .server()
            .auth_functions
            .contains(&(db.into(), "pgbouncer_auth_relation_id_3".into())));
    }
    assert!(
        peer_app(&out.state)
            .values()
            .all(|v| !v.contains(&auth_password)),
        "no password in the databag"
    );
}

#[test]
fn changed_on_the_leader_defers_while_the_config_is_invalid() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = invalid_config(ready_leader(&pg));
    let before = peer_app(&s).clone();
    let out = go(&pg, &s, changed(&s));
    assert_eq!(out.state.deferred.len(), 1);
    assert_eq!(peer_app(&out.state), &before);
}

#[test]
fn changed_on_the_leader_republishes_config_and_hostname() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = ready_leader(&pg);
    s.address = "10.9.9.9".into();
    let peers = s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap();
    peers.remote_units.insert(
        "pgbouncer-k8s/1".into(),
        charm_testing::bag(&[("processes", "4")]),
    );
    let out = go(&pg, &s, changed(&s));
    assert_eq!(peer_app(&out.state)[state::LEADER_HOSTNAME], "10.9.9.9");
    let cfg = &peer_app(&out.state)[state::CFG_FILE];
    assert!(
        cfg.contains("max_db_connections = 16"),
        "100 over 2 + 4 processes: {cfg}"
    );
}

/// Adds another unit to the peer relation, with what it wrote in its bag.
fn with_peer_unit(mut s: State, name: &str, data: &[(&str, &str)]) -> State {
    let peers = s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap();
    peers
        .remote_units
        .insert(name.into(), charm_testing::bag(data));
    s
}

/// The `[peers]` section of process `i`'s ini file.
fn peers_section(state: &State, i: u32) -> String {
    let ini = ini(state, i);
    ini[ini.find("[peers]").expect("a [peers] section")..].to_string()
}

/// Beyond the required flows, and unlike the reference charm, which peers only
/// the processes of one unit: a client's cancel request may reach any process
/// of any unit (a load balancer or the kernel picks), so every process lists
/// every process of the application: its siblings by socket directory, the
/// other units' by address. Units that have not said where they
/// are, or whose PgBouncer reads other cancel keys, are left out; a unit that
/// leaves is dropped with a reload, not a restart.
#[test]
fn every_process_forwards_cancel_requests_to_every_unit() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = leader_with_db(&pg);
    let remote = [
        ("hostname", "10.0.0.11"),
        ("processes", "3"),
        ("pgbouncer_version", "1.24.1"),
    ];
    s = with_peer_unit(s, "pgbouncer-k8s/1", &remote);
    s = with_peer_unit(
        s,
        "pgbouncer-k8s/2",
        &[
            ("hostname", "10.0.0.12"),
            ("processes", "2"),
            ("pgbouncer_version", "1.20.0"),
        ],
    );
    s = with_peer_unit(s, "pgbouncer-k8s/3", &[("processes", "2")]);
    let out = go(&pg, &s, changed(&s)).state;
    for i in 0..2 {
        assert!(ini(&out, i).contains(&format!("peer_id = {}", i + 1)));
        assert_eq!(
            peers_section(&out, i),
            "[peers]\n\
             1 = host=/var/lib/pgbouncer/instance_0 port=6432\n\
             2 = host=/var/lib/pgbouncer/instance_1 port=6432\n\
             9 = host=10.0.0.11 port=6432\n\
             10 = host=10.0.0.11 port=6432\n\
             11 = host=10.0.0.11 port=6432\n"
        );
    }

    // A follower numbers its processes after its unit, and lists the leader.
    let follower = share_from_leader(&out, with_backend(unit(1, false)));
    let follower = with_peer_unit(
        follower,
        "pgbouncer-k8s/0",
        &[
            ("hostname", "10.0.0.10"),
            ("processes", "2"),
            ("pgbouncer_version", "1.24.1"),
        ],
    );
    let served = go(&pg, &follower, changed(&follower)).state;
    assert!(ini(&served, 1).contains("peer_id = 10"));
    assert!(peers_section(&served, 1).starts_with(
        "[peers]\n1 = host=10.0.0.10 port=6432\n2 = host=10.0.0.10 port=6432\n\
         9 = host=/var/lib/pgbouncer/instance_0 port=6432\n"
    ));

    // Unit 1 leaves: the leader drops it from [peers] with a reload.
    let mut gone = out.clone();
    gone.containers.get_mut(CONTAINER).unwrap().ops.clear();
    gone.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .remote_units
        .remove("pgbouncer-k8s/1");
    let ev = event::relation_departed(
        gone.relation(PEER_ID).unwrap(),
        "pgbouncer-k8s/1",
        "pgbouncer-k8s/1",
    );
    let after = go(&pg, &gone, ev).state;
    assert!(!peers_section(&after, 0).contains("10.0.0.11"));
    let ops = &after.container(CONTAINER).unwrap().ops;
    assert!(ops.contains(&ServiceOp::Signal("SIGHUP".into(), "pgbouncer_0".into())));
    assert!(
        !ops.iter().any(|o| matches!(o, ServiceOp::Restart(_))),
        "{ops:?}"
    );
}

fn leader_with_db(pg: &FakeConnector) -> State {
    let s = ready_leader(pg).with_relation(client(4, "app_db", &[]));
    go(
        pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state
}

#[test]
fn changed_on_a_follower_saves_config_and_auth_then_acknowledges() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = leader_with_db(&pg);
    let follower = share_from_leader(&leader, with_backend(unit(1, false)));
    let out = go(&pg, &follower, changed(&follower));
    let s = &out.state;
    // The same file as the leader's, but each listens on its own address and
    // numbers its processes after its unit.
    let own = |state: &State| {
        let text = ini(state, 0);
        let listen = format!("listen_addr = {}\n", state.address);
        assert!(text.contains(&listen), "{text}");
        let text = text.replace(&listen, "");
        text[..text.find("peer_id = ").unwrap()].to_string()
    };
    assert_eq!(own(s), own(&leader));
    assert_ne!(s.address, leader.address);
    let web = s.container(CONTAINER).unwrap();
    let auth = web.files.get("/var/lib/pgbouncer/userlist.txt").unwrap();
    assert_eq!(auth.permissions, 0o400);
    assert_eq!(auth.user.as_deref(), Some("postgres"));
    assert_eq!(
        web.files["/var/lib/pgbouncer/instance_1/pgbouncer.ini"].permissions,
        0o400
    );
    assert_eq!(
        web.ops,
        vec![
            ServiceOp::Start("pgbouncer_0".into()),
            ServiceOp::Start("pgbouncer_1".into()),
            ServiceOp::Start("logrotate".into())
        ],
        "first start, then the log rotation"
    );
    assert_eq!(
        peer_unit(s)[state::SERVING],
        state::digest(&peer_app(&leader)[state::CFG_FILE])
    );
    assert_eq!(s.unit_status, Status::Active(String::new()));
}

#[test]
fn followers_reload_only_what_changed() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = leader_with_db(&pg);
    let follower = share_from_leader(&leader, with_backend(unit(1, false)));
    let mut serving = go(&pg, &follower, changed(&follower)).state;
    serving.containers.get_mut(CONTAINER).unwrap().ops.clear();

    let same = go(&pg, &serving, changed(&serving)).state;
    assert!(
        same.container(CONTAINER).unwrap().ops.is_empty(),
        "nothing changed, nothing reloaded"
    );

    let mut pool = leader.clone();
    pool.config.insert("pool_mode".into(), "transaction".into());
    let pool = go(&pg, &pool, Event::ConfigChanged).state;
    let next = share_from_leader(&pool, serving.clone());
    let out = go(&pg, &next, changed(&next)).state;
    let ops = &out.container(CONTAINER).unwrap().ops;
    assert_eq!(
        ops,
        &vec![
            ServiceOp::Signal("SIGHUP".into(), "pgbouncer_0".into()),
            ServiceOp::Signal("SIGHUP".into(), "pgbouncer_1".into()),
        ]
    );

    let mut port = leader.clone();
    port.config.insert("listen_port".into(), 7432.into());
    let port = go(&pg, &port, Event::ConfigChanged).state;
    let next = share_from_leader(&port, serving);
    let out = go(&pg, &next, changed(&next)).state;
    assert_eq!(
        out.container(CONTAINER).unwrap().ops,
        vec![
            ServiceOp::Restart("pgbouncer_0".into()),
            ServiceOp::Restart("pgbouncer_1".into())
        ],
        "a new port restarts every process on followers too"
    );
}

#[test]
fn a_follower_with_only_the_auth_file_writes_it_and_reloads() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = leader_with_db(&pg);
    let follower = share_from_leader(&leader, with_backend(unit(1, false)));
    let mut serving = go(&pg, &follower, changed(&follower)).state;
    serving.containers.get_mut(CONTAINER).unwrap().ops.clear();
    let peers = serving
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap();
    peers
        .local_app_data
        .insert(state::CFG_FILE.into(), "[garbage".into());
    let label = state::app_secret_label(APP);
    let secret = serving
        .secrets
        .iter_mut()
        .find(|s| s.owner_label.as_deref() == Some(label.as_str()))
        .unwrap();
    let mut content = secret.latest_content().unwrap().clone();
    content.insert(
        state::AUTH_FILE,
        "\"pgbouncer_auth_relation_id_3\" \"rotated\"\n",
    );
    secret.revisions.insert(secret.latest() + 1, content);
    let out = go(&pg, &serving, changed(&serving)).state;
    let web = out.container(CONTAINER).unwrap();
    assert_eq!(
        web.file_text("/var/lib/pgbouncer/userlist.txt").unwrap(),
        "\"pgbouncer_auth_relation_id_3\" \"rotated\"\n"
    );
    assert_eq!(
        web.ops.len(),
        2,
        "both processes reread the auth file: {:?}",
        web.ops
    );
    assert!(web
        .ops
        .iter()
        .all(|op| matches!(op, ServiceOp::Signal(s, _) if s == "SIGHUP")));
    assert_eq!(
        ini(&out, 0),
        ini(&serving, 0),
        "an invalid config file is not applied"
    );
}

#[test]
fn a_follower_without_auth_file_still_serves_the_config() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = go(&pg, &unit(0, true), Event::ConfigChanged).state;
    let follower = share_from_leader(&leader, unit(1, false));
    let out = go(&pg, &follower, changed(&follower)).state;
    assert!(ini(&out, 0).contains("listen_port = 6432"));
    assert!(out
        .container(CONTAINER)
        .unwrap()
        .file_text("/var/lib/pgbouncer/userlist.txt")
        .is_none());
    assert_eq!(
        peer_unit(&out)[state::SERVING],
        state::digest(&peer_app(&leader)[state::CFG_FILE])
    );
}
