//! Exec through the client, against the server: commands run in the
//! container's root as their user, with their input, output, errors, exit
//! code, environment, working directory and timeout; and what is refused.
//! Needs root, as the sandbox does.

mod common;

use common::Harness;
use pebble_api::{Exec, FileOptions, Pebble, PebbleError};
use std::time::{Duration, Instant};

fn harness() -> Harness {
    assert!(
        common::is_root(),
        "the sandbox needs root (run the tests as root, as CI does)"
    );
    Harness::new(true)
}

fn sh(script: &str) -> Exec {
    Exec::new(&["sh", "-c", script])
}

#[test]
fn a_command_runs_in_the_container_with_its_output_and_exit_code() {
    let mut h = harness();
    h.client
        .push(
            "/etc/app.conf",
            b"inside\n",
            &FileOptions {
                make_parents: true,
                ..Default::default()
            },
        )
        .unwrap();
    let out = h
        .client
        .exec(&Exec::new(&["cat", "/etc/app.conf"]))
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert!(out.success());
    assert_eq!(
        out.stdout_text(),
        "inside\n",
        "the container's file, not the host's"
    );
    assert!(out.stderr.is_empty());

    let out = h
        .client
        .exec(&sh("echo to-out; echo to-err >&2; exit 3"))
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert!(!out.success());
    assert_eq!(out.stdout_text(), "to-out\n");
    assert_eq!(out.stderr_text(), "to-err\n");
}

#[test]
fn input_environment_directory_and_user_are_the_commands() {
    let mut h = harness();
    h.client
        .make_dir(
            "/srv/work",
            &FileOptions {
                make_parents: true,
                ..Default::default()
            },
        )
        .unwrap();
    let mut exec = sh("cat; echo \"$GREETING\"; pwd; id -un");
    exec.stdin = b"from stdin\n".to_vec();
    exec.environment.insert("GREETING".into(), "hello".into());
    exec.working_dir = Some("/srv/work".into());
    exec.user = Some("postgres".into());
    let out = h.client.exec(&exec).unwrap();
    assert_eq!(
        out.stdout_text(),
        "from stdin\nhello\n/srv/work\npostgres\n",
        "{}",
        out.stderr_text()
    );
    assert!(
        !format!("{exec:?}").contains("hello"),
        "Debug hides the environment's values"
    );
}

#[test]
fn large_output_on_both_streams_arrives_whole() {
    let mut h = harness();
    let out = h
        .client
        .exec(&sh(
            "i=0; while [ $i -lt 20000 ]; do echo line $i; echo err $i >&2; i=$((i+1)); done",
        ))
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout_text().lines().count(), 20000);
    assert_eq!(out.stderr_text().lines().count(), 20000);
    assert_eq!(out.stdout_text().lines().last(), Some("line 19999"));
}

#[test]
fn a_command_past_its_timeout_is_killed_and_said_so() {
    let mut h = harness();
    let mut exec = sh("sleep 30");
    exec.timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    let err = h.client.exec(&exec).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "killed, not waited out"
    );
    match err {
        PebbleError::Change { err, .. } => assert!(err.contains("timed out"), "{err}"),
        other => panic!("not a change error: {other}"),
    }
}

#[test]
fn a_missing_program_or_directory_is_refused() {
    let mut h = harness();
    match h.client.exec(&Exec::new(&["no-such-program"])).unwrap_err() {
        PebbleError::Api {
            status_code,
            message,
            ..
        } => {
            assert_eq!(status_code, 400);
            assert_eq!(message, "cannot find executable \"no-such-program\"");
        }
        other => panic!("{other}"),
    }
    let mut exec = Exec::new(&["true"]);
    exec.working_dir = Some("/no/such/dir".into());
    match h.client.exec(&exec).unwrap_err() {
        PebbleError::Api { message, .. } => {
            assert!(
                message.contains("cannot find working directory"),
                "{message}"
            )
        }
        other => panic!("{other}"),
    }
    match h.client.exec(&Exec::new::<&str>(&[])).unwrap_err() {
        PebbleError::Api { message, .. } => assert_eq!(message, "must specify command"),
        other => panic!("{other}"),
    }
}
