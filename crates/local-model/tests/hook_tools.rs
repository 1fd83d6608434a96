//! Juju 3.6's hook tools beyond the common ones, called by an unmodified Python
//! `ops` charm (`ops-tools`) on the controller: storage attached before install
//! and added by `storage-add`, leader settings written by the leader (refused to
//! the others) and announced to the others, the unit's charm state, the cloud
//! credential with and without `--trust`, and the rest with Juju's formats and
//! errors; and an action that leaves a child holding its stdout still ends.

#![allow(clippy::unwrap_used)]

mod common;

use common::{pack, v0_lib_dir, venv};
use local_model::controller::Controller;
use serde_json::{json, Value};
use std::path::Path;
use tempfile::TempDir;

fn probe(c: &mut Controller, unit: &str) -> Value {
    let task = c.run_action(unit, "probe", Default::default()).unwrap();
    assert!(task.succeeded(), "{task:?}");
    serde_json::from_str(task.results["report"].as_str().unwrap()).unwrap()
}

fn out(report: &Value, call: &str) -> (i64, String, String) {
    let r = &report[call];
    (
        r["rc"].as_i64().unwrap(),
        r["out"].as_str().unwrap().to_string(),
        r["err"].as_str().unwrap().to_string(),
    )
}

fn ok(report: &Value, call: &str) -> String {
    let (rc, stdout, stderr) = out(report, call);
    assert_eq!(rc, 0, "{call}: {stderr}");
    stdout
}

fn failed(report: &Value, call: &str, code: i64) -> String {
    let (rc, stdout, stderr) = out(report, call);
    assert_eq!((rc, stdout.as_str()), (code, ""), "{call}: {stderr}");
    stderr
}

#[test]
fn an_ops_charm_uses_every_other_hook_tool() {
    let scratch = TempDir::with_prefix("lm-tools-").unwrap();
    let python = venv();
    let charm = pack(
        scratch.path(),
        "ops-tools",
        "packed",
        &python,
        &[v0_lib_dir(&python)],
    );
    let mut c = Controller::new(
        &scratch.path().join("controller"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
        false,
    )
    .unwrap();
    c.deploy(&charm, "tools", 2, &[]).unwrap();
    let ran = c.settle().unwrap();
    let hooks = |unit: &str| -> Vec<String> {
        ran.iter()
            .filter(|(u, _)| u == unit)
            .map(|(_, r)| r.event.hook_name())
            .collect()
    };
    // Storage attaches first: one instance each (the range's minimum), numbered
    // across the model, in a directory under the unit's.
    assert_eq!(hooks("tools/0")[..2], ["data-storage-attached", "install"]);
    assert_eq!(hooks("tools/1")[..2], ["data-storage-attached", "install"]);
    let location = |unit: &str, id: &str| c.model.unit(unit).unwrap().storage[id].location.clone();
    let data0 = location("tools/0", "data/0");
    assert!(
        data0.starts_with(c.root().join("units/tools-0").to_str().unwrap()),
        "{data0}"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&data0).join("owner")).unwrap(),
        "tools/0"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&location("tools/1", "data/1")).join("owner")).unwrap(),
        "tools/1"
    );
    assert_eq!(
        c.model.unit("tools/0").unwrap().status,
        charm::Status::Maintenance("installed with data/0".into())
    );
    // The follower's leader-settings-changed found no token yet.
    assert_eq!(
        c.model.unit("tools/1").unwrap().status,
        charm::Status::Active("token=".into())
    );

    let report = probe(&mut c, "tools/0");
    assert_eq!(
        ok(&report, "unit-get"),
        format!("{}\n", c.model.unit("tools/0").unwrap().address)
    );
    assert_eq!(
        failed(&report, "unit-get-bad", 2),
        "ERROR unknown setting \"no-such-setting\"\n"
    );
    assert_eq!(ok(&report, "leader-get"), "{}\n");
    assert_eq!(ok(&report, "state-set"), "");
    assert_eq!(ok(&report, "state-get"), "blue\n");
    assert_eq!(
        serde_json::from_str::<Value>(&ok(&report, "state-get-all")).unwrap(),
        json!({"attached": "data/0", "colour": "blue"})
    );
    assert_eq!(ok(&report, "state-delete"), "");
    assert_eq!(
        failed(&report, "state-get-strict", 1),
        "ERROR key \"colour\" not found\n"
    );
    assert_eq!(ok(&report, "storage-list"), "[\"data/0\"]\n");
    assert_eq!(ok(&report, "storage-list-smart"), "data/0\n");
    assert_eq!(
        failed(&report, "storage-get-bad", 1),
        "ERROR storage \"data/99\" not found\n"
    );
    assert_eq!(report["ops-storage"], json!([data0]));
    assert_eq!(
        failed(&report, "credential-get", 1),
        "ERROR cannot access cloud credentials: permission denied\n"
    );
    assert_eq!(
        report["cloud-spec"].as_str().unwrap(),
        "ModelError: ERROR cannot access cloud credentials: permission denied\n"
    );
    assert_eq!(
        failed(&report, "add-metric", 1),
        "ERROR metrics not allowed in this context\n"
    );
    assert_eq!(ok(&report, "juju-reboot"), "");
    assert_eq!(ok(&report, "k8s-spec-set"), "");
    assert_eq!(ok(&report, "k8s-spec-get"), "version: 3\ncontainers: []\n");
    assert_eq!(ok(&report, "pod-spec-get"), "version: 3\ncontainers: []\n");
    assert_eq!(ok(&report, "k8s-raw-set"), "");
    assert_eq!(ok(&report, "k8s-raw-get"), "kind: List\n");
    for call in [
        "payload-register",
        "payload-status-set",
        "payload-unregister",
    ] {
        assert_eq!(ok(&report, call), "", "{call}");
    }
    assert_eq!(
        failed(&report, "payload-status-bad", 1),
        "ERROR status \"sleeping\" not supported; expected one of [starting, running, stopping, stopped]\n"
    );
    assert_eq!(
        failed(&report, "payload-unregister-again", 1),
        "ERROR payload \"db/p1\" not found\n"
    );
    assert_eq!(
        failed(&report, "resource-get", 1),
        "ERROR could not download resource: resource \"image\" not found\n"
    );
    assert_eq!(ok(&report, "is-leader"), "True\n");
    let goal: Value = serde_json::from_str(&ok(&report, "goal-state")).unwrap();
    assert_eq!(goal["units"]["tools/0"]["status"], "active", "{goal}");
    assert_eq!(ok(&report, "config-get"), "{}\n");
    assert_eq!(ok(&report, "opened-ports"), "[]\n");
    let status: Value = serde_json::from_str(&ok(&report, "status-get")).unwrap();
    assert_eq!(status["status"], "maintenance");
    assert_eq!(
        failed(&report, "unknown", 2),
        "ERROR expected \"key=value\", got \"no-equals-sign\"\n"
    );
    // The action committed: the state it left, the specs, the log line.
    let unit = c.model.unit("tools/0").unwrap();
    assert_eq!(unit.charm_state["attached"], "data/0");
    assert!(!unit.charm_state.contains_key("colour"));
    assert!(unit.payloads.is_empty());
    assert_eq!(
        c.model.applications["tools"].k8s_raw_spec.as_deref(),
        Some("kind: List\n")
    );

    // Trusted, the application gets the local model's cloud.
    c.set_trust("tools", true).unwrap();
    // Juju tells the units of a change of trust with config-changed.
    let ran: Vec<String> = c
        .settle()
        .unwrap()
        .iter()
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect();
    assert_eq!(ran, ["tools/0 config-changed", "tools/1 config-changed"]);
    let report = probe(&mut c, "tools/1");
    let spec: Value = serde_json::from_str(&ok(&report, "credential-get")).unwrap();
    assert_eq!(spec["type"], "local");
    assert_eq!(spec["credential"]["auth-type"], "empty");
    assert_eq!(report["cloud-spec"], "local");
    assert_eq!(ok(&report, "is-leader"), "False\n");
    assert_eq!(ok(&report, "storage-list"), "[\"data/1\"]\n");
    // A follower may not set a pod spec.
    assert_eq!(
        failed(&report, "k8s-spec-set", 1),
        "ERROR this unit is not the leader\n"
    );

    // Leader settings: the leader writes them, the other unit hears of it.
    let share = |c: &mut Controller, unit: &str| {
        let params = json!({"token": "t0k3n"}).as_object().unwrap().clone();
        c.run_action(unit, "share", params).unwrap()
    };
    let follower = share(&mut c, "tools/1");
    assert!(follower.succeeded(), "{follower:?}");
    assert_eq!(follower.results["rc"], json!("1"));
    assert_eq!(
        follower.results["err"],
        json!("ERROR cannot write leadership settings: cannot write settings: not the leader\n")
    );
    assert!(c.model.applications["tools"].leader_settings.is_empty());
    let leader = share(&mut c, "tools/0");
    assert_eq!(leader.results["rc"], json!("0"), "{leader:?}");
    let ran = c.settle().unwrap();
    let names: Vec<String> = ran
        .iter()
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect();
    assert_eq!(names, ["tools/1 leader-settings-changed"]);
    assert_eq!(
        c.model.unit("tools/1").unwrap().status,
        charm::Status::Active("token=t0k3n".into())
    );
    let report = probe(&mut c, "tools/1");
    assert_eq!(ok(&report, "leader-get"), "{\"token\":\"t0k3n\"}\n");

    // storage-add: one more instance, attached once the action commits.
    let added = c
        .run_action("tools/0", "add-data", Default::default())
        .unwrap();
    assert!(added.succeeded(), "{added:?}");
    let ran = c.settle().unwrap();
    let names: Vec<String> = ran
        .iter()
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect();
    assert_eq!(names, ["tools/0 data-storage-attached"]);
    assert_eq!(
        c.model.unit("tools/0").unwrap().charm_state["attached"],
        "data/0 data/2"
    );
    let report = probe(&mut c, "tools/0");
    assert_eq!(ok(&report, "storage-list"), "[\"data/0\",\"data/2\"]\n");
}

#[test]
fn an_action_ends_when_its_process_does_though_a_child_holds_stdout() {
    let scratch = TempDir::with_prefix("lm-tools-bg-").unwrap();
    let python = venv();
    let charm = pack(
        scratch.path(),
        "ops-tools",
        "packed",
        &python,
        &[v0_lib_dir(&python)],
    );
    let mut c = Controller::new(
        &scratch.path().join("controller"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
        false,
    )
    .unwrap();
    c.deploy(&charm, "tools", 1, &[]).unwrap();
    c.settle().unwrap();
    let task = c
        .run_action("tools/0", "background", Default::default())
        .unwrap();
    let child: i32 = task.results["child"].as_str().unwrap().parse().unwrap();
    // SAFETY: kill(2) of the writer the action reported starting.
    unsafe { libc::kill(child, libc::SIGKILL) };
    assert!(task.succeeded(), "{task:?}");
    assert!(task.stdout.contains("started\n"), "{:?}", task.stdout);
}
