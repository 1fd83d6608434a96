//! A Python `ops` charm, unmodified, on the local model: install, leader-elected,
//! config-changed, start, a peer relation and an application secret, over real
//! processes and the hook-tool shim. The test makes a venv with `ops` from PyPI.

use local_model::agent::Agent;
use local_model::model::{Application, End, Model, RelationRecord, Unit};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const OPS: &str = "ops==3.9.0";

/// The venv with `ops`, made once per target directory.
fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-venv");
    let python = dir.join("bin/python3");
    let ready = dir.join(".ready");
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3")
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&python)
            .args(["-m", "pip", "install", "-q", OPS])
            .status()
            .expect("pip")
            .success();
        assert!(ok, "pip install {OPS} failed (PyPI must be reachable)");
        std::fs::write(&ready, "").unwrap();
    }
    python
}

/// A packed copy of the test charm for one unit (ops keeps its state in the charm directory).
fn charm_dir(root: &Path, unit: &str, python: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charms/ops-peer");
    let dir = root.join(unit.replace('/', "-"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for f in ["metadata.yaml", "config.yaml", "src/charm.py"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let dispatch = format!("#!/bin/sh\nJUJU_DISPATCH_PATH=\"${{JUJU_DISPATCH_PATH:-$0}}\" PYTHONPATH=lib:venv exec {} ./src/charm.py\n", python.display());
    std::fs::write(dir.join("dispatch"), dispatch).unwrap();
    std::fs::set_permissions(dir.join("dispatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn an_ops_charm_runs_unmodified() {
    let python = venv();
    let root = std::env::temp_dir().join(format!("lm-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let units = ["ops-peer/0", "ops-peer/1"];
    let dirs: Vec<PathBuf> = units.iter().map(|u| charm_dir(&root, u, &python)).collect();
    let mut m = Model {
        name: "test".into(),
        uuid: "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13".into(),
        juju_version: "3.6.4".into(),
        ..Model::default()
    };
    let mut app = Application {
        files: charm::metadata::CharmFiles::load(&dirs[0]).unwrap(),
        ..Application::default()
    };
    for (n, u) in units.iter().enumerate() {
        app.units.insert(
            u.to_string(),
            Unit {
                address: format!("127.0.2.{}", n + 1),
                ..Unit::default()
            },
        );
    }
    app.leader = Some(units[0].into());
    m.applications.insert("ops-peer".into(), app);
    m.relations.push(RelationRecord {
        id: 1,
        ends: vec![End {
            app: "ops-peer".into(),
            endpoint: "replicas".into(),
        }],
        scope: units.iter().map(|u| u.to_string()).collect(),
        ..RelationRecord::default()
    });
    let agent = Agent::start(
        &root.join("agent.socket"),
        &root.join("tools"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
    )
    .unwrap();

    let mut hooks: Vec<String> = Vec::new();
    for _ in 0..10 {
        let mut progressed = false;
        for (unit, dir) in units.iter().zip(&dirs) {
            while let Some(run) = agent.run_next(&mut m, unit, dir, &[]).unwrap() {
                assert!(run.ok, "{unit} {}: {}", run.event.hook_name(), run.output);
                hooks.push(format!("{unit} {}", run.event.hook_name()));
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    for expected in [
        "ops-peer/0 install",
        "ops-peer/0 leader-elected",
        "ops-peer/0 config-changed",
        "ops-peer/0 start",
        "ops-peer/1 leader-settings-changed",
    ] {
        assert!(
            hooks.contains(&expected.to_string()),
            "{expected} missing from {hooks:?}"
        );
    }
    let peers = m.relation(1).unwrap();
    assert!(
        peers.app_bags["ops-peer"].data["token-id"].starts_with("secret:"),
        "{:?}",
        peers.app_bags
    );
    assert_eq!(peers.unit_bags["ops-peer/0"].data["greeting"], "hello");
    assert_eq!(
        peers.unit_bags["ops-peer/1"].data["token-seen"], "s3cret-token",
        "the follower read the app secret"
    );
    assert_eq!(
        m.applications["ops-peer"].status,
        charm::Status::Active("leading".into())
    );
    assert_eq!(
        m.unit("ops-peer/1").unwrap().status,
        charm::Status::Active("has the token".into())
    );
}
