//! Problems found in the reference charm, numbered, and the test that shows
//! each is not in this one.
//!
//! | # | problem in the reference charm | here |
//! |---|---|---|
//! | 1 | `[peers]` rendered as `host=0`, `host=1` | `bug_01_peers_point_at_socket_directories` |
//! | 2 | no peering across pods | `peer_flows::every_process_forwards_cancel_requests_to_every_unit`; end to end, `e2e` `system` cancels through another unit |
//! | 3 | `max_db_connections` applied per process | `bug_03_max_db_connections_holds_for_the_whole_application` |
//! | 4 | process count from the node's CPUs | the dispatch binary uses `available_parallelism` (the unit's CPU set), clamped to 2..4; `pgb::pools` tests the clamp |
//! | 5 | wildcard `auth_dbname` from a leftover loop variable, never recomputed | `bug_05_the_wildcard_follows_the_privileged_client_and_leaves_with_it` |
//! | 6 | `return` instead of `continue` in `update_endpoints` | `bug_06_one_unanswered_client_does_not_stop_the_others` |
//! | 7 | the leader keeps a removed database until some later render | `bug_07_the_leader_drops_a_removed_database_at_once` |
//! | 8 | legacy `db` handlers | the legacy `db` relations are not provided |
//! | 9 | followers miss auth-file changes | `bug_09_followers_follow_auth_file_changes` |
//! | 10 | a new auth-file path on every pebble-ready | `bug_10_the_auth_file_keeps_its_path` |
//! | 11 | a port change only reloads followers | `peer_flows::followers_reload_only_what_changed` |
//! | 12 | a missing backend version crashes | `bug_12_a_backend_without_version_still_works` |
//! | 13 | `sync_hba` compares versions as strings | no such wait here: credentials go out once every unit serves the database |
//! | 14 | the departing flag needs a non-empty databag | `bug_14_the_departing_flag_needs_no_other_data` |
//! | 15 | the auth user's password kept only as md5 | `bug_15_the_auth_user_logs_in_with_scram` |
//! | 16 | the auth function returns superusers | `postgres-admin` test `pgbouncer_auth_function` (superusers, replication and NOLOGIN roles get nothing) |
//! | 17 | `server_reset_query` needs `login_hook` | `bug_17_no_login_hook` |
//! | 18 | the monitoring password on a command line | `bug_18_no_password_on_any_command_line` |
//! | 19, 20 | tests that cannot fail; stale comments | this suite's tests assert outcomes |
//! | 21 | PostgreSQL errors fail hooks | `database_flows::a_backend_that_is_down_defers_and_says_so` |
//! | 22 | readiness opens a connection each time it is asked | `bug_22_the_status_opens_no_connection` |
//! | 23 | NodePort endpoints `-1` after rescale | not applicable: endpoints are unit addresses |

#![allow(clippy::unwrap_used)]

mod support;

use charm::Event;
use charm_testing::{event, ServiceOp, State};
use client_interface::provider::secret_label;
use pgbouncer_k8s::config::CharmConfig;
use pgbouncer_k8s::pgb::ini::{render_process, ProcessSpec, SharedConfig, SharedInput};
use pgbouncer_k8s::pgb::peering::Peering;
use pgbouncer_k8s::pgb::{Layout, PgbVersion};
use pgbouncer_k8s::state::{self, BACKEND, DATABASE};
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::FakeConnector;
use support::*;

/// A client: relation id, database, extra fields of its request.
type Client<'a> = (u64, &'a str, &'a [(&'a str, &'a str)]);

fn answered(pg: &FakeConnector, clients: &[Client<'_>]) -> State {
    let mut s = ready_leader(pg);
    for (id, db, extra) in clients {
        s = s.with_relation(client(*id, db, extra));
        s = go(
            pg,
            &s,
            event::relation_changed(s.relation(*id).unwrap(), None),
        )
        .state;
    }
    s
}

#[test]
fn bug_01_peers_point_at_socket_directories() {
    let s = ready_leader(&FakeConnector::up_with(&["pgbouncer"]));
    let ini = ini(&s, 1);
    assert!(
        ini.contains("1 = host=/var/lib/pgbouncer/instance_0 port=6432"),
        "{ini}"
    );
    assert!(ini.contains("2 = host=/var/lib/pgbouncer/instance_1 port=6432"));
    assert!(ini.contains("peer_id = 2"));
}

#[test]
fn bug_03_max_db_connections_holds_for_the_whole_application() {
    let config = CharmConfig::from_raw(
        serde_json::json!({"max_db_connections": 100})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    let layout = Layout::default();
    for (units, processes) in [(1u32, 2u32), (3, 4), (5, 3)] {
        let shared = SharedConfig::build(&SharedInput {
            config: &config,
            app: APP,
            backend: None,
            clients: &[],
            readonly_dbs: &[],
            total_processes: units * processes,
            layout: &layout,
        });
        let spec = ProcessSpec {
            index: 0,
            count: processes,
            version: PgbVersion::new(1, 24, 0),
            tls: false,
            listen_addr: "127.0.0.1",
            layout: &layout,
            peering: &Peering::default(),
        };
        let ini = render_process(&shared, &spec);
        let per: u32 = ini
            .lines()
            .find_map(|l| l.strip_prefix("max_db_connections = "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            per * units * processes <= 100,
            "{units}x{processes}: {per} each"
        );
    }
}

#[test]
fn bug_05_the_wildcard_follows_the_privileged_client_and_leaves_with_it() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(
        &pg,
        &[
            (4, "plain_db", &[]),
            (6, "admin_db", &[("extra-user-roles", "createdb")]),
        ],
    );
    assert!(
        peer_app(&s)[state::CFG_FILE].contains("* = host=10.0.1.1 port=5432 auth_dbname=admin_db")
    );
    let out = go(&pg, &s, event::relation_broken(s.relation(6).unwrap()));
    assert!(
        !peer_app(&out.state)[state::CFG_FILE].contains("* ="),
        "no stale wildcard"
    );
}

#[test]
fn bug_06_one_unanswered_client_does_not_stop_the_others() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = answered(&pg, &[(4, "first_db", &[]), (6, "second_db", &[])]);
    // Relation 4 loses its stored credentials: it cannot be updated.
    let label = secret_label(DATABASE, 4, "user");
    s.secrets
        .retain(|x| x.owner_label.as_deref() != Some(label.as_str()));
    s.address = "10.0.0.99".into();
    let out = go(&pg, &s, Event::LeaderElected);
    assert_eq!(
        out.state.relation(6).unwrap().local_app_data["endpoints"],
        "10.0.0.99:6432"
    );
}

#[test]
fn bug_07_the_leader_drops_a_removed_database_at_once() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg, &[(4, "gone_db", &[])]);
    let out = go(&pg, &s, event::relation_broken(s.relation(4).unwrap()));
    for i in 0..2 {
        assert!(
            !ini(&out.state, i).contains("gone_db"),
            "process {i} still serves it"
        );
    }
    let web = out.state.container(CONTAINER).unwrap();
    assert!(web.ops.ends_with(&[
        ServiceOp::Signal("SIGHUP".into(), "pgbouncer_0".into()),
        ServiceOp::Signal("SIGHUP".into(), "pgbouncer_1".into())
    ]));
}

#[test]
fn bug_09_followers_follow_auth_file_changes() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = answered(&pg, &[(4, "app_db", &[])]);
    let follower = share_from_leader(&leader, with_backend(unit(1, false)));
    let serving = go(
        &pg,
        &follower,
        event::relation_changed(follower.relation(PEER_ID).unwrap(), None),
    )
    .state;
    let mut rotated = serving.clone();
    let label = state::app_secret_label(APP);
    let secret = rotated
        .secrets
        .iter_mut()
        .find(|s| s.owner_label.as_deref() == Some(label.as_str()))
        .unwrap();
    let mut content = secret.latest_content().unwrap().clone();
    content.insert(
        state::AUTH_FILE,
        "\"pgbouncer_auth_relation_id_3\" \"new\"\n",
    );
    secret.revisions.insert(secret.latest() + 1, content);
    let ev = event::secret_changed(secret);
    let out = go(&pg, &rotated, ev);
    let web = out.state.container(CONTAINER).unwrap();
    assert_eq!(
        web.file_text("/var/lib/pgbouncer/userlist.txt").unwrap(),
        "\"pgbouncer_auth_relation_id_3\" \"new\"\n"
    );
    assert!(web
        .ops
        .contains(&ServiceOp::Signal("SIGHUP".into(), "pgbouncer_0".into())));
}

#[test]
fn bug_10_the_auth_file_keeps_its_path() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    let again = go(&pg, &s, event::pebble_ready(CONTAINER)).state;
    let files: Vec<&String> = again
        .container(CONTAINER)
        .unwrap()
        .files
        .keys()
        .filter(|p| p.contains("userlist"))
        .collect();
    assert_eq!(files, ["/var/lib/pgbouncer/userlist.txt"]);
    assert_eq!(ini(&again, 0), ini(&s, 0));
}

#[test]
fn bug_12_a_backend_without_version_still_works() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = with_backend(unit(0, true)).with_relation(client(4, "app_db", &[]));
    s.relations
        .iter_mut()
        .find(|r| r.endpoint == BACKEND)
        .unwrap()
        .remote_app_data
        .remove("version");
    let s = go(
        &pg,
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
    )
    .state;
    let app = &s.relation(4).unwrap().local_app_data;
    assert!(app.contains_key("secret-user"));
    assert!(!app.contains_key("version"));
}

#[test]
fn bug_14_the_departing_flag_needs_no_other_data() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = unit(0, false).with_relation(client(4, "app_db", &[]));
    assert!(peer_unit(&s).is_empty());
    let out = go(
        &pg,
        &s,
        event::relation_departed(s.relation(4).unwrap(), "client-app/0", "pgbouncer-k8s/0"),
    );
    assert_eq!(peer_unit(&out.state)["database_4_departing"], "true");
}

#[test]
fn bug_15_the_auth_user_logs_in_with_scram() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    let auth = s
        .container(CONTAINER)
        .unwrap()
        .file_text("/var/lib/pgbouncer/userlist.txt")
        .unwrap();
    let line = auth
        .lines()
        .find(|l| l.starts_with("\"pgbouncer_auth_"))
        .unwrap();
    assert!(
        !line.contains("\"md5"),
        "PgBouncer holds the password, so it can answer SCRAM: {line}"
    );
    assert!(ini(&s, 0).contains("auth_type = scram-sha-256"));
}

#[test]
fn bug_17_no_login_hook() {
    let s = ready_leader(&FakeConnector::up_with(&["pgbouncer"]));
    assert!(ini(&s, 0).contains("server_reset_query = DISCARD ALL\n"));
    assert!(!ini(&s, 0).contains("login_hook"));
}

#[test]
fn bug_18_no_password_on_any_command_line() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = with_backend(unit(0, true)).with_relation(client(4, "app_db", &[]));
    let first = go(
        &pg,
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
    );
    let out = go(
        &pg,
        &first.state,
        event::relation_changed(s.relation(4).unwrap(), None),
    );
    let server = pg.server();
    let passwords: Vec<&String> = server.users.values().map(|(p, _)| p).collect();
    let plan = out.state.container(CONTAINER).unwrap().current_plan();
    for line in first
        .calls
        .lines()
        .iter()
        .chain(out.calls.lines().iter())
        .chain(plan.services.values().map(|s| &s.command))
    {
        for p in &passwords {
            assert!(!line.contains(p.as_str()), "{line}");
        }
    }
}

#[test]
fn bug_22_the_status_opens_no_connection() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = answered(&pg, &[(4, "app_db", &[])]);
    let before = pg.server().sessions.len();
    let out = go(&pg, &s, Event::UpdateStatus);
    assert_eq!(out.state.unit_status, charm::Status::Active(String::new()));
    assert_eq!(
        pg.server().sessions.len(),
        before,
        "update-status with nothing to do connects to nothing"
    );
}
