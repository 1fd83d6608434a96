//! Pebble custom notices on the controller: a sandboxed workload service records
//! one through the socket in its container, and the unit's
//! `<container>-pebble-custom-notice` hook runs without any other event, with
//! the notice in its environment (and `ops` fetches the rest from Pebble); a
//! notice Pebble holds counts as due work (`pending`) before it runs.

#![allow(clippy::unwrap_used)]

mod common;

use common::{pack, venv};
use local_model::controller::Controller;
use pebble_api::{Notify, Pebble, PebbleClient};
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Runs due hooks until the unit's status says `want`, for up to ten seconds.
fn settle_until(c: &mut Controller, unit: &str, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut hooks = Vec::new();
    loop {
        for (u, run) in c.settle().unwrap() {
            assert!(
                run.ok,
                "{u} {}: {}\n{:?}",
                run.event.hook_name(),
                run.output,
                run.logs
            );
            hooks.push(format!("{u} {}", run.event.hook_name()));
        }
        let status = c.model.unit(unit).unwrap().status.message().to_string();
        if status == want {
            return hooks;
        }
        assert!(
            Instant::now() < deadline,
            "status {status:?}, want {want:?}; hooks {hooks:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_workload_notice_runs_the_custom_notice_hook() {
    let scratch = TempDir::with_prefix("lm-ctl-notice-").unwrap();
    let python = venv();
    let charm = pack(scratch.path(), "ops-notice", "packed", &python, &[]);
    let mut c = Controller::new(
        &scratch.path().join("controller"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
        true,
    )
    .unwrap();
    c.deploy(&charm, "notice", 1, &[]).unwrap();
    let hooks = settle_until(
        &mut c,
        "notice/0",
        "notice 1 custom example.com/workload/ready x1 from workload",
    );
    assert!(
        hooks.contains(&"notice/0 workload-pebble-custom-notice".to_string()),
        "{hooks:?}"
    );
    assert!(c.settle().unwrap().is_empty(), "one hook per notice");
    assert_eq!(c.pending(), (vec![], vec![]));

    // The charm's side of the socket records notices too; a repeat runs the
    // hook again.
    let socket = c
        .root()
        .join("units/notice-0/containers/workload/pebble.socket");
    let mut client = PebbleClient::new(socket);
    let again = Notify {
        key: "example.com/workload/ready".into(),
        data: [("from".to_string(), "the test".to_string())].into(),
        repeat_after: None,
    };
    client.notify(&again).unwrap();
    // `juju wait` is not idle: the notice Pebble holds counts before the
    // controller next runs anything.
    assert_eq!(c.pending(), (vec!["notice/0".to_string()], vec![]));
    let hooks = settle_until(
        &mut c,
        "notice/0",
        "notice 1 custom example.com/workload/ready x2 from the test",
    );
    assert_eq!(hooks, ["notice/0 workload-pebble-custom-notice"]);
}
