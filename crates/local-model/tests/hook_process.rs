//! Hooks as processes: a charm's `dispatch` runs with Juju's environment, its hook
//! tools reach the agent through the shim, and a hook that exits 0 is committed
//! while one that fails blocks the unit and commits nothing.

#![allow(clippy::unwrap_used)]

use local_model::agent::Agent;
use local_model::model::{Application, End, Model, RelationRecord, Unit};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tempfile::TempDir;

const DISPATCH: &str = r#"#!/bin/sh
set -e
case "$JUJU_DISPATCH_PATH" in
  hooks/install) status-set maintenance "installing things" ;;
  hooks/replicas-relation-created)
    relation-set -r "$JUJU_RELATION_ID" "address=$(network-get replicas --ingress-address)" ;;
  hooks/leader-elected)
    [ "$(is-leader)" = "True" ]
    relation-set -r "$(relation-ids replicas)" --app "leader=$JUJU_UNIT_NAME" ;;
  hooks/config-changed) status-set active "port $(config-get port)" ;;
  hooks/start)
    if [ -e fail-start ]; then relation-set -r "$(relation-ids replicas)" half=done; exit 3; fi ;;
esac
juju-log -- "ran $JUJU_HOOK_NAME"
"#;

fn setup(name: &str) -> (TempDir, Model, Agent) {
    let dir = TempDir::with_prefix(format!("lm-hooks-{name}-")).unwrap();
    let charm = dir.path().join("charm");
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(charm.join("dispatch"), DISPATCH).unwrap();
    std::fs::set_permissions(
        charm.join("dispatch"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut m = Model {
        name: "test".into(),
        uuid: "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13".into(),
        juju_version: "3.6.4".into(),
        ..Model::default()
    };
    let mut app = Application {
        charm_dir: charm,
        ..Application::default()
    };
    app.files.config = charm::metadata::parse_yaml(
        "options:\n  port: {type: int, default: 8080}\n",
        "config.yaml",
    )
    .unwrap();
    app.units.insert(
        "web/0".into(),
        Unit {
            address: "127.0.1.1".into(),
            ..Unit::default()
        }
        .into(),
    );
    app.leader = Some("web/0".into());
    m.applications.insert("web".into(), app.into());
    let replicas = RelationRecord {
        id: 1,
        ends: vec![End {
            app: "web".into(),
            endpoint: "replicas".into(),
        }],
        scope: ["web/0".to_string()].into(),
        ..RelationRecord::default()
    };
    m.relations.push(replicas.into());
    let agent = Agent::start(
        &dir.path().join("agent.socket"),
        &dir.path().join("tools"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
    )
    .unwrap();
    (dir, m, agent)
}

fn run_all(agent: &Agent, m: &mut Model) -> Vec<(String, bool)> {
    let charm = m.applications["web"].charm_dir.clone();
    let mut ran = Vec::new();
    while let Some(run) = agent.run_next(m, "web/0", &charm, &[]).unwrap() {
        assert!(
            run.ok || run.event.hook_name() == "start",
            "{}: {}",
            run.event.hook_name(),
            run.output
        );
        ran.push((run.event.hook_name(), run.ok));
        assert!(ran.len() < 20);
    }
    ran
}

#[test]
fn a_unit_starts_through_real_processes_and_tools() {
    let (_dir, mut m, agent) = setup("start");
    let ran = run_all(&agent, &mut m);
    let names: Vec<&str> = ran.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "install",
            "replicas-relation-created",
            "leader-elected",
            "config-changed",
            "start"
        ]
    );
    let peers = m.relation(1).unwrap();
    assert_eq!(peers.unit_bags["web/0"].data["address"], "127.0.1.1");
    assert_eq!(peers.app_bags["web"].data["leader"], "web/0");
    assert_eq!(
        m.unit("web/0").unwrap().status,
        charm::Status::Active("port 8080".into())
    );
}

#[test]
fn a_failed_hook_commits_nothing_and_blocks_until_resolved() {
    let (dir, mut m, agent) = setup("fail");
    std::fs::write(dir.path().join("charm/fail-start"), "").unwrap();
    let ran = run_all(&agent, &mut m);
    assert_eq!(ran.last().unwrap(), &("start".to_string(), false));
    let unit = m.unit("web/0").unwrap();
    assert_eq!(unit.failed.as_deref(), Some("start"));
    assert_eq!(
        unit.status,
        charm::Status::Error("hook failed: \"start\"".into())
    );
    assert!(
        !m.relation(1).unwrap().unit_bags["web/0"]
            .data
            .contains_key("half"),
        "rolled back"
    );
    assert!(!unit.seen.started);

    // Resolved: the hook runs again and succeeds.
    std::fs::remove_file(dir.path().join("charm/fail-start")).unwrap();
    m.unit_mut("web/0").unwrap().failed = None;
    assert_eq!(run_all(&agent, &mut m), [("start".to_string(), true)]);
}
