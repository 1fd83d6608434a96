//! Notices: recorded through the API with Pebble's rules and filters, and from a
//! service inside the container through the sockets in its root.

#![allow(clippy::unwrap_used)]

mod common;

use common::{wait_until, Harness};
use pebble_api::{FileOptions, NoticeQuery, Notify, Pebble, PebbleError};
use pebble_server::CONTAINER_SOCKETS;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn notify(key: &str) -> Notify {
    Notify {
        key: key.into(),
        ..Notify::default()
    }
}

/// Posts a JSON body to `/v1/notices`; returns the status and the envelope.
fn post(h: &Harness, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = UnixStream::connect(h.client.socket()).unwrap();
    write!(
        stream,
        "POST /v1/notices HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn a_notice_per_key_counts_occurrences_and_keeps_its_id() {
    let mut h = Harness::new(false);
    let a = h.client.notify(&notify("example.com/a")).unwrap();
    let mut with_data = notify("example.com/b");
    with_data.data.insert("path".into(), "/tmp/x".into());
    let b = h.client.notify(&with_data).unwrap();
    assert_ne!(a, b);
    assert_eq!(h.client.notify(&notify("example.com/a")).unwrap(), a);
    let all = h.client.notices(&NoticeQuery::default()).unwrap();
    let order: Vec<(&str, u64)> = all
        .iter()
        .map(|n| (n.key.as_str(), n.occurrences))
        .collect();
    assert_eq!(order, [("example.com/b", 1), ("example.com/a", 2)]);
    let b_notice = &all[0];
    assert_eq!(b_notice.kind, "custom");
    assert_eq!(b_notice.user_id, None);
    assert_eq!(b_notice.last_data["path"], "/tmp/x");
    assert_eq!(b_notice.expire_after.as_deref(), Some("168h0m0s"));
    assert_eq!(h.client.notice(&a).unwrap(), all[1]);
    // Within repeat-after: counted, but not repeated.
    let mut held = notify("example.com/a");
    held.repeat_after = Some("1h".into());
    h.client.notify(&held).unwrap();
    let again = h.client.notice(&a).unwrap();
    assert_eq!(again.occurrences, 3);
    assert_eq!(again.last_repeated, all[1].last_repeated);
    assert_ne!(again.last_occurred, all[1].last_occurred);
    assert_eq!(again.repeat_after.as_deref(), Some("1h0m0s"));
}

#[test]
fn notices_filter_by_type_key_and_last_repeat() {
    let mut h = Harness::new(false);
    h.client.notify(&notify("example.com/a")).unwrap();
    h.client.notify(&notify("example.com/b")).unwrap();
    let all = h.client.notices(&NoticeQuery::default()).unwrap();
    let query = |types: &[&str], keys: &[&str], after: Option<&str>| NoticeQuery {
        types: types.iter().map(|t| t.to_string()).collect(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        after: after.map(str::to_string),
    };
    let keys = |q: NoticeQuery, h: &mut Harness| -> Vec<String> {
        h.client
            .notices(&q)
            .unwrap()
            .into_iter()
            .map(|n| n.key)
            .collect()
    };
    assert_eq!(
        keys(query(&["custom"], &["example.com/b"], None), &mut h),
        ["example.com/b"]
    );
    assert!(keys(query(&["warning"], &[], None), &mut h).is_empty());
    assert!(keys(query(&["no-such-type"], &[], None), &mut h).is_empty());
    assert_eq!(
        keys(query(&[], &[], Some(&all[0].last_repeated)), &mut h),
        ["example.com/b"]
    );
    // A repeat moves a notice past `after` again.
    h.client.notify(&notify("example.com/a")).unwrap();
    assert_eq!(
        keys(query(&[], &[], Some(&all[1].last_repeated)), &mut h),
        ["example.com/a"]
    );
    match h.client.notices(&query(&[], &[], Some("yesterday"))) {
        Err(PebbleError::Api {
            status_code: 400,
            message,
            ..
        }) => assert!(message.contains("invalid \"after\" timestamp"), "{message}"),
        other => panic!("{other:?}"),
    }
    match h.client.notice("99") {
        Err(PebbleError::Api {
            status_code: 404,
            message,
            ..
        }) => assert_eq!(message, "cannot find notice with ID \"99\""),
        other => panic!("{other:?}"),
    }
}

#[test]
fn adding_a_notice_checks_the_request() {
    let h = Harness::new(false);
    let refused = [
        (
            json!({"action": "remove", "type": "custom", "key": "example.com/a"}),
            "invalid action",
        ),
        (
            json!({"action": "add", "type": "warning", "key": "example.com/a"}),
            "can only add \"custom\" notices",
        ),
        (
            json!({"action": "add", "type": "custom", "key": "no-domain"}),
            "must be in \"domain.com/key\" format",
        ),
        (
            json!({"action": "add", "type": "custom", "key": "example.com/a", "repeat-after": "soon"}),
            "invalid repeat-after",
        ),
        (
            json!({"action": "add", "type": "custom", "key": "example.com/a", "data": {"n": 1}}),
            "cannot decode notice data",
        ),
        (
            json!({"action": "add", "type": "custom", "key": "example.com/a", "data": {"big": "x".repeat(5000)}}),
            "4096 bytes or less",
        ),
    ];
    for (body, message) in refused {
        let (status, envelope) = post(&h, &body);
        assert_eq!(status, 400, "{body}");
        let got = envelope["result"]["message"].as_str().unwrap();
        assert!(got.contains(message), "{body}: {got}");
    }
    let (status, envelope) = post(
        &h,
        &json!({"action": "add", "type": "custom", "key": "example.com/a", "data": {"k": "v"}, "repeat-after": "30s"}),
    );
    assert_eq!(status, 200);
    assert_eq!(envelope["result"], json!({"id": "1"}));
}

#[test]
fn waiting_for_notices_returns_when_one_occurs() {
    let h = Harness::new(false);
    let socket = h.client.socket().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let mut stream = UnixStream::connect(socket).unwrap();
        let request =
            "GET /v1/notices?timeout=10s&keys=example.com/late HTTP/1.1\r\nHost: x\r\n\r\n";
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut client = h.client.clone();
    client.notify(&notify("example.com/late")).unwrap();
    let response = waiter.join().unwrap();
    assert!(
        response.contains("\"key\":\"example.com/late\""),
        "{response}"
    );
}

/// A service posts a notice through a socket inside the container, with `curl`
/// on Pebble's default socket and with Python on `$PEBBLE_SOCKET`, as an
/// unprivileged user, chrooted.
#[test]
fn a_sandboxed_service_records_notices_from_inside_the_container() {
    assert!(
        common::is_root(),
        "the sandbox needs root (run the tests as root, as CI does)"
    );
    let mut h = Harness::new(true);
    for path in CONTAINER_SOCKETS {
        assert!(h.host(path).exists(), "{path}");
    }
    let python = r#"python3 -c 'import os, socket; s = socket.socket(socket.AF_UNIX); s.connect(os.environ["PEBBLE_SOCKET"]); b = b"{\"action\":\"add\",\"type\":\"custom\",\"key\":\"example.com/python\"}"; s.sendall(b"POST /v1/notices HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(b) + b); print(s.recv(4096).decode())'"#;
    let curl = r#"curl -sS --unix-socket /var/lib/pebble/default/.pebble.socket -XPOST -d '{"action":"add","type":"custom","key":"example.com/curl","data":{"role":"primary"}}' http://localhost/v1/notices"#;
    let mut services = vec![("python", python)];
    if std::path::Path::new("/usr/bin/curl").exists() {
        services.push(("curl", curl));
    }
    let mut yaml = "services:\n".to_string();
    for (name, command) in &services {
        let script = format!("/{name}.sh");
        let options = FileOptions {
            permissions: Some(0o755),
            ..FileOptions::default()
        };
        let text = format!("{command}\nexec sleep 60\n");
        h.client.push(&script, text.as_bytes(), &options).unwrap();
        yaml.push_str(&format!(
            "  {name}:\n    override: replace\n    command: /bin/sh {script}\n    user: nobody\n"
        ));
    }
    h.layer("notify", &yaml, false);
    let names: Vec<&str> = services.iter().map(|(n, _)| *n).collect();
    h.client.start(&names).unwrap();
    let keys = |h: &mut Harness| -> Vec<String> {
        let found = h.client.notices(&NoticeQuery::default()).unwrap();
        let mut keys: Vec<String> = found.into_iter().map(|n| n.key).collect();
        keys.sort();
        keys
    };
    let mut expected: Vec<String> = names.iter().map(|s| format!("example.com/{s}")).collect();
    expected.sort();
    assert!(
        wait_until(Duration::from_secs(10), || keys(&mut h) == expected),
        "python: {}\ncurl: {}",
        h.log("python"),
        h.log("curl")
    );
    if names.contains(&"curl") {
        let curl = h
            .client
            .notices(&NoticeQuery {
                keys: vec!["example.com/curl".into()],
                ..NoticeQuery::default()
            })
            .unwrap();
        assert_eq!(curl[0].last_data["role"], "primary");
    }
    let inner: Vec<_> = CONTAINER_SOCKETS.iter().map(|p| h.host(p)).collect();
    h.stop_server();
    for path in inner {
        assert!(!path.exists(), "{} left behind", path.display());
    }
}
