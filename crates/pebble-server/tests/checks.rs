//! Health checks against real listeners and commands.

#![allow(clippy::unwrap_used)]

mod common;

use common::{wait_until, Harness};
use pebble_api::Pebble;
use std::net::TcpListener;
use std::time::Duration;

fn status(h: &mut Harness, name: &str) -> (String, u32) {
    let checks = h.client.checks(None, &[name]).unwrap();
    (checks[0].status.clone(), checks[0].failures)
}

#[test]
fn tcp_check_goes_down_when_the_listener_closes() {
    let mut h = Harness::new(false);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "checks:\n  db:\n    override: replace\n    level: ready\n    period: 50ms\n    timeout: 200ms\n    threshold: 2\n    tcp:\n      port: {port}\n      host: 127.0.0.1\n  alive:\n    override: replace\n    level: alive\n    period: 50ms\n    exec:\n      command: 'true'\n"
    );
    h.layer("checks", &yaml, false);
    let all = h.client.checks(None, &[]).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|c| c.status == "up"));
    let ready = h.client.checks(Some("ready"), &[]).unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].name, "db");
    assert_eq!(ready[0].threshold, 2);

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        status(&mut h, "db"),
        ("up".into(), 0),
        "the listener answers"
    );
    drop(listener);
    assert!(wait_until(Duration::from_secs(3), || status(&mut h, "db")
        .0
        == "down"));
    assert!(status(&mut h, "db").1 >= 2);
    assert_eq!(status(&mut h, "alive"), ("up".into(), 0));

    // Listening again brings it back up.
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert!(wait_until(Duration::from_secs(3), || status(&mut h, "db")
        == ("up".into(), 0)));
}

#[test]
fn exec_and_http_checks_fail_and_count() {
    let mut h = Harness::new(false);
    let yaml = "checks:\n  bad:\n    override: replace\n    period: 50ms\n    exec:\n      command: 'false'\n  web:\n    override: replace\n    period: 50ms\n    timeout: 200ms\n    http:\n      url: http://127.0.0.1:1/health\n";
    h.layer("checks", yaml, false);
    assert!(wait_until(Duration::from_secs(3), || {
        let checks = h.client.checks(None, &[]).unwrap();
        checks.iter().all(|c| c.status == "down" && c.failures >= 3)
    }));
    // Replacing a check restarts its count.
    h.layer(
        "fix",
        "checks:\n  bad:\n    override: replace\n    period: 50ms\n    exec:\n      command: 'true'\n",
        false,
    );
    assert_eq!(status(&mut h, "bad"), ("up".into(), 0));
}
