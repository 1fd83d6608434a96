//! Patroni's callbacks wake the charm: the script the charm pushes records a
//! Pebble custom notice, and its hook moves the clients' endpoints (leader) or
//! tells the leader through the peer bag (follower), without waiting for
//! update-status.

#![allow(clippy::unwrap_used)]

mod support;

use charm::event::Notice;
use charm::{Event, Status};
use charm_testing::{event, State};
use pebble_api::{NoticeQuery, Pebble};
use postgresql_k8s::state;
use postgresql_k8s::status::NO_PRIMARY;
use postgresql_k8s::workload::{notify_script, CONTAINER, ROLE_CHANGE_NOTICE};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;
use support::*;

const CLIENT: u64 = 5;
const SCRIPT: &str = "/var/lib/postgresql/data/notify-role-change";

/// The state with the role-change notice recorded in its container, and the
/// hook Juju runs for it.
fn notified(mut s: State, key: &str) -> (State, Event) {
    let container = s.containers.get_mut(CONTAINER).unwrap();
    *container = container
        .clone()
        .with_notice(key, &[("action", "on_role_change"), ("role", "master")]);
    let notice = container
        .notices(&NoticeQuery::default())
        .unwrap()
        .remove(0);
    let event = Event::PebbleCustomNotice {
        container: CONTAINER.into(),
        notice: Notice {
            id: notice.id,
            kind: notice.kind,
            key: notice.key,
        },
    };
    (s, event)
}

/// Leader 0 of a two-unit cluster serving a client `shop`.
fn served() -> (World, State) {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    w.pg.0.borrow_mut().admin_group = true;
    let s = initialised(with_peers(unit(0, true), &[1]), &[0, 1]).with_relation(client(
        CLIENT,
        "shop",
        &[],
    ));
    let changed = event::relation_changed(s.relation(CLIENT).unwrap(), None);
    let out = w.go(&s, changed);
    (w, out.state)
}

#[test]
fn on_the_leader_the_clients_endpoints_follow_the_new_primary() {
    let (w, s) = served();
    let bag = &s.relation(CLIENT).unwrap().local_app_data;
    assert_eq!(bag["endpoints"], "127.0.1.1:5432");
    w.set_members(&[(0, "sync_standby", "streaming"), (1, "leader", "running")]);
    let (s, event) = notified(s, ROLE_CHANGE_NOTICE);
    let out = w.go(&s, event);
    let bag = &out.state.relation(CLIENT).unwrap().local_app_data;
    assert_eq!(bag["endpoints"], "127.0.1.2:5432");
    assert_eq!(bag["read-only-endpoints"], "127.0.1.1:5432");
    assert_eq!(out.state.unit_status, Status::Active("Replica".into()));
    assert!(!peer_unit(&out.state).contains_key(state::ROLE_CHANGED));
    // Every unit hears of the new primary, to name its own role, and the
    // application names it.
    assert_eq!(peer_app(&out.state)[state::PRIMARY], "postgresql-k8s-1");
    assert_eq!(
        out.state.app_status,
        Status::Active("Primary: postgresql-k8s/1".into())
    );
}

#[test]
fn a_follower_refreshes_its_status_and_tells_the_leader() {
    let w = World::new(&[(0, "sync_standby", "streaming"), (1, "leader", "running")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    let (s, event) = notified(s, ROLE_CHANGE_NOTICE);
    let out = w.go(&s, event.clone());
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
    let repeated = s.container(CONTAINER).unwrap().notices[0]
        .last_repeated
        .clone();
    assert_eq!(peer_unit(&out.state)[state::ROLE_CHANGED], repeated);
    // The same notice again (a replayed event) changes nothing more.
    let again = w.go(&out.state, event);
    assert_eq!(
        again.state.relation(PEER_ID).unwrap().local_unit_data,
        out.state.relation(PEER_ID).unwrap().local_unit_data
    );
}

#[test]
fn a_replica_says_when_the_cluster_has_no_primary() {
    // The primary's member is gone and Patroni has promoted nobody (yet, or
    // at all when no standby was confirmed synchronous): the replica does not
    // look healthy.
    let w = World::new(&[(0, "replica", "running"), (1, "replica", "running")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    let out = w.go(&s, Event::UpdateStatus);
    assert_eq!(out.state.unit_status, Status::Waiting(NO_PRIMARY.into()));

    // A member is promoted and its role-change notice wakes the other.
    w.set_members(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let (s, event) = notified(out.state, ROLE_CHANGE_NOTICE);
    let out = w.go(&s, event);
    assert_eq!(out.state.unit_status, Status::Active("Replica".into()));
}

#[test]
fn other_notices_are_not_role_changes() {
    let w = World::new(&[(0, "sync_standby", "streaming"), (1, "leader", "running")]);
    let s = initialised(with_peers(unit(1, false), &[0]), &[0, 1]);
    let (s, event) = notified(s, "example.com/something-else");
    let out = w.go(&s, event);
    assert!(!peer_unit(&out.state).contains_key(state::ROLE_CHANGED));
    assert!(patroni_yml(&out.state).is_none(), "nothing converged");
}

#[test]
fn patroni_calls_the_pushed_script_which_holds_no_secret() {
    let w = World::new(&[(0, "leader", "running")]);
    let out = w.go(&unit(0, true), event::pebble_ready(CONTAINER));
    let container = out.state.container(CONTAINER).unwrap();
    let file = &container.files[SCRIPT];
    assert_eq!(file.permissions, 0o755);
    assert_eq!(file.user.as_deref(), Some("postgres"));
    let text = String::from_utf8(file.content.clone()).unwrap();
    assert_eq!(text, notify_script());
    assert!(text.contains(ROLE_CHANGE_NOTICE));
    assert_eq!(
        patroni_doc(&out.state)["postgresql"]["callbacks"]["on_role_change"],
        SCRIPT
    );
    let passwords = out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap()
        .latest_content()
        .unwrap()
        .clone();
    for user in state::SECRET_USERS {
        let password = passwords.get(&state::password_key(user)).unwrap();
        assert!(!text.contains(password), "{user}'s password in the script");
    }
}

/// The script, as Patroni runs it (`<action> <role> <scope>`), posts the notice
/// to the Pebble socket named by `PEBBLE_SOCKET`.
#[test]
fn the_script_records_the_notice_on_the_pebble_socket() {
    assert!(
        !std::path::Path::new("/charm/bin/pebble").exists(),
        "this test exercises the fallback without Juju's pebble"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("notify-role-change");
    std::fs::write(&script, notify_script()).unwrap();
    let socket = dir.path().join("pebble.socket");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut chunk = [0; 4096];
        while !String::from_utf8_lossy(&request).contains("}}") {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "request cut short");
            request.extend_from_slice(&chunk[..n]);
        }
        let body = r#"{"type":"sync","status-code":200,"status":"OK","result":{"id":"1"}}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).unwrap();
        String::from_utf8(request).unwrap()
    });
    let out = Command::new("sh")
        .arg(&script)
        .args(["on_role_change", "master", "patroni-postgresql-k8s"])
        .env("PEBBLE_SOCKET", &socket)
        .output()
        .unwrap();
    let request = server.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /v1/notices HTTP/1.1\r\n"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "action": "add", "type": "custom", "key": ROLE_CHANGE_NOTICE,
            "data": {"action": "on_role_change", "role": "master"},
        })
    );
}
