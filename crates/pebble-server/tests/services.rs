//! Layers, the plan, and services as real processes, driven by `PebbleClient`.

mod common;

use common::{alive, pids, wait_until, Harness};
use pebble_api::{Pebble, PebbleError};
use std::time::{Duration, Instant};

/// A service that records its pid in `file` and then sleeps.
fn recording(name: &str, file: &std::path::Path, extra: &str) -> String {
    format!(
        "services:\n  {name}:\n    override: replace\n    command: sh -c 'echo $$ >> {}; exec sleep 30'\n{extra}",
        file.display()
    )
}

#[test]
fn layers_combine_into_the_plan() {
    let mut h = Harness::new(false);
    assert_eq!(
        h.client.system_info().unwrap().version,
        pebble_server::VERSION
    );
    assert!(h.client.plan().unwrap().services.is_empty());
    h.layer(
        "base",
        "summary: base\nservices:\n  app:\n    override: replace\n    command: sleep 30\n    startup: enabled\n    environment: {A: '1'}\n  other:\n    override: replace\n    command: sleep 31\n    user: nobody\n",
        false,
    );
    h.layer(
        "top",
        "services:\n  app:\n    override: merge\n    environment: {B: '2'}\n    after: [other]\n  other:\n    override: replace\n    command: sleep 32\n",
        false,
    );
    let plan = h.client.plan().unwrap();
    let app = &plan.services["app"];
    assert_eq!(app.command, "sleep 30");
    assert_eq!(app.startup, "enabled");
    assert_eq!(app.environment.len(), 2);
    assert_eq!(app.after, ["other"]);
    let other = &plan.services["other"];
    assert_eq!(other.command, "sleep 32");
    assert_eq!(other.user, "", "replace drops the old fields");

    // The same label again: an error without combine, a merge with it.
    let layer: pebble_api::Layer = Default::default();
    let err = h.client.add_layer("top", &layer, false).unwrap_err();
    assert!(
        matches!(
            err,
            PebbleError::Api {
                status_code: 400,
                ..
            }
        ),
        "{err}"
    );
    h.layer(
        "top",
        "services:\n  other:\n    override: merge\n    working-dir: /tmp\n",
        true,
    );
    let plan = h.client.plan().unwrap();
    assert_eq!(plan.services["other"].working_dir, "/tmp");
    assert_eq!(plan.services["other"].command, "sleep 32");

    // A layer without override, or a plan without a command, is refused.
    for bad in [
        "services:\n  x:\n    command: sleep 1\n",
        "services:\n  x:\n    override: merge\n",
    ] {
        let layer: pebble_api::Layer = yaml_serde::from_str(bad).unwrap();
        let err = h.client.add_layer("bad", &layer, false).unwrap_err();
        assert!(
            matches!(
                err,
                PebbleError::Api {
                    status_code: 400,
                    ..
                }
            ),
            "{err}"
        );
    }
    let infos = h.client.services(&[]).unwrap();
    let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["app", "other"]);
    assert_eq!(infos[0].startup, "enabled");
    assert_eq!(infos[1].startup, "disabled");
    assert!(infos.iter().all(|i| i.current == "inactive"));
}

#[test]
fn start_stop_restart() {
    let mut h = Harness::new(false);
    let file = h.dir.path().join("pids");
    h.layer("base", &recording("sleeper", &file, ""), false);
    let started = Instant::now();
    h.client.start(&["sleeper"]).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waits out the okay delay"
    );
    assert_eq!(h.current("sleeper"), "active");
    let first = pids(&file);
    assert_eq!(first.len(), 1);
    assert!(alive(first[0]));
    // Starting an active service changes nothing.
    h.client.start(&["sleeper"]).unwrap();
    assert_eq!(pids(&file), first);

    h.client.stop(&["sleeper"]).unwrap();
    assert_eq!(h.current("sleeper"), "inactive");
    assert!(!alive(first[0]));
    h.client.stop(&["sleeper"]).unwrap();

    h.client.start(&["sleeper"]).unwrap();
    h.client.restart(&["sleeper"]).unwrap();
    let all = pids(&file);
    assert_eq!(all.len(), 3);
    assert!(!alive(all[1]) && alive(all[2]));
    assert_eq!(h.current("sleeper"), "active");

    let err = h.client.start(&["nope"]).unwrap_err();
    assert!(
        matches!(&err, PebbleError::Api { status_code: 400, message, .. } if message.contains("nope")),
        "{err}"
    );
}

#[test]
fn replan_starts_enabled_and_restarts_changed() {
    let mut h = Harness::new(false);
    let (a, b, c) = (
        h.dir.path().join("a"),
        h.dir.path().join("b"),
        h.dir.path().join("c"),
    );
    let enabled = "    startup: enabled\n";
    let yaml = format!(
        "{}{}{}",
        recording("a", &a, enabled),
        recording("b", &b, enabled).replacen("services:\n", "", 1),
        recording("c", &c, "").replacen("services:\n", "", 1),
    );
    h.layer("base", &yaml, false);
    h.client.replan().unwrap();
    assert_eq!(h.current("a"), "active");
    assert_eq!(h.current("b"), "active");
    assert_eq!(h.current("c"), "inactive", "disabled services stay down");

    // Change b's environment: replan restarts b only.
    h.layer(
        "env",
        "services:\n  b:\n    override: merge\n    environment: {X: y}\n",
        false,
    );
    h.client.replan().unwrap();
    assert_eq!(pids(&a).len(), 1, "unchanged service left alone");
    let b_pids = pids(&b);
    assert_eq!(b_pids.len(), 2, "changed service restarted");
    assert!(!alive(b_pids[0]) && alive(b_pids[1]));
    let environ = std::fs::read(format!("/proc/{}/environ", b_pids[1])).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.split('\0').any(|v| v == "X=y"), "{environ}");
    assert!(environ
        .split('\0')
        .any(|v| v.starts_with("PATH=/usr/local/sbin")));

    // autostart starts the enabled ones too (already running: nothing to do).
    h.client.stop(&["a"]).unwrap();
    assert_eq!(h.current("a"), "inactive");
    h.client.replan().unwrap();
    assert_eq!(h.current("a"), "active");
}

#[test]
fn a_command_that_exits_at_once_fails_its_start() {
    let mut h = Harness::new(false);
    h.layer(
        "base",
        "services:\n  quick:\n    override: replace\n    command: sh -c 'echo something broke >&2; exit 3'\n    on-failure: ignore\n  missing:\n    override: replace\n    command: /no/such/binary\n",
        false,
    );
    let started = Instant::now();
    let err = h.client.start(&["quick"]).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "fails as soon as it exits"
    );
    let PebbleError::Change { err, .. } = &err else {
        panic!("{err}");
    };
    assert!(err.contains("Start service \"quick\""), "{err}");
    assert!(err.contains("exited quickly with code 3"), "{err}");
    assert!(
        err.contains("something broke"),
        "the log tail is quoted: {err}"
    );
    assert_eq!(h.current("quick"), "error");
    assert!(h.log("quick").contains("something broke"));

    let err = h.client.start(&["missing"]).unwrap_err();
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    assert_eq!(h.current("missing"), "inactive");
}

#[test]
fn on_failure_restarts_a_killed_process() {
    let mut h = Harness::new(false);
    let file = h.dir.path().join("pids");
    h.layer(
        "base",
        &recording("worker", &file, "    backoff-delay: 100ms\n"),
        false,
    );
    h.client.start(&["worker"]).unwrap();
    let first = pids(&file)[0];
    unsafe {
        libc::kill(first, libc::SIGKILL);
    }
    assert!(
        wait_until(Duration::from_secs(5), || pids(&file).len() == 2),
        "restarted after the backoff delay"
    );
    assert!(wait_until(Duration::from_secs(2), || h.current("worker") == "active"));
    assert!(alive(pids(&file)[1]));

    // With on-failure: ignore, a killed process stays down, in error.
    h.layer(
        "ignore",
        "services:\n  worker:\n    override: merge\n    on-failure: ignore\n",
        false,
    );
    h.client.replan().unwrap();
    let now = *pids(&file).last().unwrap();
    unsafe {
        libc::kill(now, libc::SIGKILL);
    }
    assert!(wait_until(Duration::from_secs(2), || h.current("worker") == "error"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(pids(&file).len(), 3, "not restarted");
}

#[test]
fn stop_escalates_to_sigkill_after_the_kill_delay() {
    let mut h = Harness::new(false);
    let file = h.dir.path().join("pids");
    let yaml = format!(
        "services:\n  stubborn:\n    override: replace\n    command: sh -c 'trap \"\" TERM; echo $$ >> {}; while true; do sleep 0.1; done'\n    kill-delay: 300ms\n",
        file.display()
    );
    h.layer("base", &yaml, false);
    h.client.start(&["stubborn"]).unwrap();
    let pid = pids(&file)[0];
    let started = Instant::now();
    h.client.stop(&["stubborn"]).unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!alive(pid));
    assert_eq!(h.current("stubborn"), "inactive");
}

#[test]
fn signals_reach_the_service() {
    let mut h = Harness::new(false);
    let marker = h.dir.path().join("hup.txt");
    let script = format!(
        "#!/bin/sh\ntrap 'echo hup >> {}' HUP\nwhile true; do sleep 0.1; done\n",
        marker.display()
    );
    h.client
        .push(
            "/usr/local/bin/hup.sh",
            script.as_bytes(),
            &pebble_api::FileOptions {
                permissions: Some(0o755),
                make_parents: true,
                ..Default::default()
            },
        )
        .unwrap();
    let yaml = format!(
        "services:\n  hup:\n    override: replace\n    command: {}\n",
        h.host("/usr/local/bin/hup.sh").display()
    );
    h.layer("base", &yaml, false);
    let err = h.client.send_signal("SIGHUP", &["hup"]).unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");
    h.client.start(&["hup"]).unwrap();
    h.client.send_signal("SIGHUP", &["hup"]).unwrap();
    assert!(wait_until(Duration::from_secs(3), || {
        std::fs::read_to_string(&marker).is_ok_and(|s| s.contains("hup"))
    }));
    assert_eq!(h.current("hup"), "active", "the trap kept it alive");
    let err = h.client.send_signal("SIGNOPE", &["hup"]).unwrap_err();
    assert!(
        matches!(
            err,
            PebbleError::Api {
                status_code: 400,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn stopping_the_server_leaves_no_process_behind() {
    let mut h = Harness::new(false);
    let (a, b) = (h.dir.path().join("a"), h.dir.path().join("b"));
    let yaml = format!(
        "{}{}",
        recording("a", &a, "    startup: enabled\n"),
        recording("b", &b, "    startup: enabled\n").replacen("services:\n", "", 1),
    );
    h.layer("base", &yaml, false);
    h.client.replan().unwrap();
    let running = [pids(&a)[0], pids(&b)[0]];
    assert!(running.iter().all(|p| alive(*p)));
    let socket = h.client.socket().to_path_buf();
    h.stop_server();
    assert!(running.iter().all(|p| !alive(*p)));
    assert!(!socket.exists(), "socket removed");
    let err = h.client.system_info().unwrap_err();
    assert!(matches!(err, PebbleError::Connect { .. }), "{err}");
}

#[test]
fn a_crash_kills_every_service_at_once_without_sigterm() {
    let mut h = Harness::new(false);
    let (file, marker) = (h.dir.path().join("pids"), h.dir.path().join("terminated"));
    // It would note a SIGTERM, and take its 30 s kill delay to go.
    let yaml = format!(
        "services:\n  careful:\n    override: replace\n    startup: enabled\n    command: sh -c 'trap \"echo term >> {}\" TERM; echo $$ >> {}; while true; do sleep 0.1; done'\n    kill-delay: 30s\n",
        marker.display(),
        file.display()
    );
    h.layer("base", &yaml, false);
    h.client.replan().unwrap();
    let pid = pids(&file)[0];
    let started = Instant::now();
    h.crash_server();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(2), || !alive(pid)));
    assert!(!marker.exists(), "the service saw no SIGTERM");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(pids(&file), [pid], "and was not restarted");
}
