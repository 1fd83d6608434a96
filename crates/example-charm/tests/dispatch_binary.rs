//! The example charm's real `dispatch` binary, run the way Juju runs it (a fresh
//! environment, the charm directory as working directory, hook tools on `PATH`),
//! against stand-in tools that record each call and answer from fixtures.

#![allow(clippy::unwrap_used)]

use charm::stats::ToolStats;
use charm::Event;
use charm_testing::standin::StandIn;
use std::path::PathBuf;
use std::process::{Command, Output};
use tempfile::TempDir;

const UUID: &str = "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13";
const URI: &str = "secret://6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13/d0rtp2cs1tj5qbo1s2ug";

struct Unit {
    tools: StandIn,
    dir: TempDir,
}

impl Unit {
    fn new(name: &str) -> Unit {
        let dir = TempDir::with_prefix(format!("example-unit-{name}-")).unwrap();
        std::fs::create_dir(dir.path().join("charm")).unwrap();
        std::fs::create_dir(dir.path().join("containers")).unwrap();
        Unit {
            tools: StandIn::new().unwrap(),
            dir,
        }
    }

    fn charm_dir(&self) -> PathBuf {
        self.dir.path().join("charm")
    }

    fn dispatch(&self, vars: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_example-charm"));
        cmd.env_clear()
            .current_dir(self.charm_dir())
            .env("PATH", self.tools.path_var())
            .env("JUJU_UNIT_NAME", "example/0")
            .env("JUJU_MODEL_NAME", "test")
            .env("JUJU_MODEL_UUID", UUID)
            .env("JUJU_CHARM_DIR", self.charm_dir())
            .env("JUJU_VERSION", "3.6.4")
            .env("CHARM_CONTAINERS_DIR", self.dir.path().join("containers"))
            .env("CHARM_TOOL_STATS", self.dir.path().join("stats.json"));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn hook(&self, name: &str) -> Output {
        self.dispatch(&[
            ("JUJU_DISPATCH_PATH", &format!("hooks/{name}")),
            ("JUJU_HOOK_NAME", name),
        ])
    }

    fn stats(&self) -> ToolStats {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("stats.json")).unwrap()).unwrap()
    }

    fn queue(&self) -> Vec<Event> {
        charm::defer::load(&self.charm_dir()).unwrap()
    }

    fn lines(&self) -> Vec<String> {
        self.tools.calls().iter().map(|c| c.line()).collect()
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_runs_with_only_path_tools_and_reports_its_calls() {
    let u = Unit::new("install");
    ok(&u.hook("install"));
    assert_eq!(
        u.lines(),
        [
            "status-set --application=false maintenance -- installing",
            "juju-log --log-level INFO -- installed"
        ]
    );
    let stats = u.stats();
    assert_eq!(stats.count(), 2);
    assert_eq!(stats.lines(), u.lines());
    assert!(!u.charm_dir().join(charm::defer::QUEUE_FILE).exists());
}

#[test]
fn leader_elected_creates_a_secret_through_files_and_publishes_its_id() {
    let mut u = Unit::new("leader");
    u.tools.answer(
        "relation-ids",
        Some(&["replicas", "--format=json"]),
        r#"["replicas:1"]"#,
    );
    u.tools.answer("is-leader", None, "true");
    u.tools.answer(
        "relation-get",
        Some(&["--format=json", "-r", "replicas:1", "--app", "-", "example"]),
        "{}",
    );
    u.tools.answer("secret-add", None, &format!("{URI}\n"));
    ok(&u.hook("leader-elected"));
    let calls = u.tools.calls();
    let add = calls.iter().find(|c| c.tool == "secret-add").unwrap();
    assert_eq!(
        add.args[..3],
        [
            "--label=example.admin",
            "--description=admin password of the example application",
            "--owner=application"
        ]
    );
    let password = &add.files["password"];
    assert_eq!(password.len(), 24);
    assert!(calls
        .iter()
        .all(|c| !c.line().contains(password.as_str()) && !c.stdin.contains(password.as_str())));
    let set = calls.iter().find(|c| c.tool == "relation-set").unwrap();
    assert_eq!(set.line(), "relation-set -r replicas:1 --app --file -");
    assert_eq!(set.stdin, format!(r#"{{"admin-secret":"{URI}"}}"#));
    let lines = u.lines();
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "status-set --application=true active -- ",
            "relation-set -r replicas:1 --app --file -"
        ],
        "databag writes go out once, when the hook is done"
    );
}

#[test]
fn deferral_persists_in_the_charm_dir_and_is_saved_only_on_success() {
    let mut u = Unit::new("defer");
    u.tools
        .answer("config-get", None, r#"{"port":8080,"greeting":"hello"}"#);
    ok(&u.hook("config-changed"));
    assert_eq!(
        u.queue(),
        vec![Event::ConfigChanged],
        "no Pebble socket: config-changed waits"
    );
    assert!(u.lines().contains(
        &"status-set --application=false waiting -- waiting for the web container".to_string()
    ));

    charm::defer::save(&u.charm_dir(), &[Event::ConfigChanged, Event::Start]).unwrap();
    u.tools
        .fail("status-set", None, 1, "ERROR connection refused\n");
    let failed = u.hook("update-status");
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("deferred hook config-changed failed")
            && stderr.contains("connection refused"),
        "{stderr}"
    );
    assert_eq!(
        u.queue(),
        vec![Event::ConfigChanged, Event::Start],
        "a failed dispatch keeps the old queue"
    );
    assert!(u
        .lines()
        .last()
        .unwrap()
        .starts_with("juju-log --log-level ERROR -- "));

    u.tools.answer("status-set", None, "");
    u.tools.clear_calls();
    ok(&u.hook("update-status"));
    assert_eq!(
        u.queue(),
        vec![Event::ConfigChanged],
        "start was handled; config-changed still waits"
    );
    assert_eq!(
        u.lines()[0],
        "config-get --format=json",
        "the deferred event runs first"
    );
}

#[test]
fn relation_events_read_their_environment_and_juju_errors_fail_the_hook() {
    let mut u = Unit::new("relation");
    u.tools.answer("is-leader", None, "true");
    u.tools
        .fail("relation-get", None, 1, "ERROR permission denied\n");
    let out = u.dispatch(&[
        ("JUJU_DISPATCH_PATH", "hooks/db-relation-changed"),
        ("JUJU_HOOK_NAME", "db-relation-changed"),
        ("JUJU_RELATION", "db"),
        ("JUJU_RELATION_ID", "db:4"),
        ("JUJU_REMOTE_APP", "client"),
        ("JUJU_REMOTE_UNIT", ""),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("relation-get: permission denied"));
    assert_eq!(
        u.lines()[1],
        "relation-get --format=json -r db:4 --app - client",
        "the remote app comes from the environment"
    );
}

#[test]
fn actions_read_params_and_set_results() {
    let mut u = Unit::new("action");
    u.tools.answer("relation-ids", None, r#"["replicas:1"]"#);
    u.tools.answer(
        "relation-get",
        None,
        &format!(r#"{{"admin-secret":"{URI}"}}"#),
    );
    u.tools
        .answer("secret-get", None, r#"{"password":"pw-from-secret"}"#);
    ok(&u.dispatch(&[
        ("JUJU_DISPATCH_PATH", "actions/get-admin-password"),
        ("JUJU_ACTION_NAME", "get-admin-password"),
        ("JUJU_ACTION_UUID", "7"),
    ]));
    let lines = u.lines();
    assert_eq!(
        lines[2],
        format!("secret-get --format=json {URI} --label=example.admin")
    );
    assert_eq!(lines[3], "action-set password=pw-from-secret");
}

#[test]
fn a_panic_is_logged_to_juju_and_fails_the_hook() {
    let u = Unit::new("panic");
    let out = u.hook(example_charm::PANIC_HOOK);
    assert!(!out.status.success(), "exit {:?}", out.status.code());
    let logged: Vec<String> = u
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("juju-log --log-level ERROR -- "))
        .collect();
    assert_eq!(logged.len(), 1, "{:?}", u.lines());
    let message = &logged[0]["juju-log --log-level ERROR -- ".len()..];
    assert!(
        message.starts_with("panicked at crates/example-charm/src/lib.rs:")
            && message.ends_with(": the test-panic hook always panics"),
        "{message}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the test-panic hook always panics"),
        "Rust's own report still goes to stderr: {stderr}"
    );
}

#[test]
fn a_panic_without_juju_log_still_fails_the_hook() {
    let mut u = Unit::new("panic-no-log");
    u.tools.fail("juju-log", None, 1, "ERROR cannot log\n");
    let out = u.hook(example_charm::PANIC_HOOK);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the test-panic hook always panics"));
}

#[test]
fn outside_juju_the_binary_says_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-charm"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JUJU_UNIT_NAME is not set"));
}
