//! Running Python `ops` charms on the local model in tests: a venv from PyPI,
//! packed per-unit charm directories, and a model to deploy and relate them in.

#![allow(dead_code, clippy::unwrap_used)]

use local_model::agent::Agent;
use local_model::model::{Application, End, Model, Unit};
use local_model::testing;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The venv with `ops` and the published libraries
/// ([`local_model::testing::PACKAGES`]) in the target's scratch directory, shared
/// with the end-to-end tests; returns its python.
pub fn venv() -> PathBuf {
    testing::venv(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-venv"))
}

pub use testing::v0_lib_dir;

/// Packs the test charm `name` (under `tests/charms`) for one unit, with a
/// dispatch like charmcraft's.
pub fn pack(root: &Path, name: &str, unit: &str, python: &Path, pythonpath: &[PathBuf]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/charms")
        .join(name);
    testing::pack_python(&src, &root.join(unit.replace('/', "-")), python, pythonpath)
}

/// A charm in shell under `root`: `metadata.yaml` naming it, and `dispatch`.
pub fn shell_charm(root: &Path, name: &str, dispatch: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        format!("name: {name}\nsummary: A test charm in shell\ndescription: {name}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("dispatch"), dispatch).unwrap();
    std::fs::set_permissions(dir.join("dispatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A model with the agent, and each unit's charm directory.
pub struct Lab {
    pub model: Model,
    pub agent: Agent,
    pub dirs: BTreeMap<String, PathBuf>,
    pub scratch: TempDir,
    python: PathBuf,
    pythonpath: Vec<PathBuf>,
}

impl Lab {
    pub fn new(name: &str) -> Lab {
        let scratch = TempDir::with_prefix(format!("lm-{name}-")).unwrap();
        let python = venv();
        let pythonpath = vec![v0_lib_dir(&python)];
        let agent = Agent::start(
            &scratch.path().join("agent.socket"),
            &scratch.path().join("tools"),
            Path::new(env!("CARGO_BIN_EXE_hook-tool")),
        )
        .unwrap();
        Lab {
            model: Model {
                name: "test".into(),
                uuid: "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13".into(),
                juju_version: "3.6.4".into(),
                ..Model::default()
            },
            agent,
            dirs: BTreeMap::new(),
            scratch,
            python,
            pythonpath,
        }
    }

    /// Deploys `units` units of the test charm `charm` as `app` (unit 0 leads).
    pub fn deploy(&mut self, charm: &str, app: &str, units: u32) {
        let mut a = Application::default();
        for n in 0..units {
            let unit = format!("{app}/{n}");
            let dir = pack(
                self.scratch.path(),
                charm,
                &unit,
                &self.python,
                &self.pythonpath,
            );
            if n == 0 {
                a.files = charm::metadata::CharmFiles::load(&dir).unwrap().into();
            }
            self.dirs.insert(unit.clone(), dir);
            let index = self.model.applications.len() + 1;
            a.units.insert(
                unit,
                Unit {
                    address: format!("127.0.{index}.{}", n + 1),
                    ..Unit::default()
                }
                .into(),
            );
        }
        a.leader = Some(format!("{app}/0"));
        self.model.add_application(app, a);
    }

    /// Relates `a:endpoint` with `b:endpoint`.
    pub fn integrate(&mut self, a: (&str, &str), b: (&str, &str)) -> u64 {
        let end = |(app, endpoint): (&str, &str)| End {
            app: app.into(),
            endpoint: endpoint.into(),
        };
        self.model.add_relation(vec![end(a), end(b)])
    }

    /// Runs every unit's hooks, round after round, until none is due; returns
    /// `unit hook` lines. Panics on a failed hook, with its output.
    pub fn settle(&mut self) -> Vec<String> {
        let mut hooks = Vec::new();
        loop {
            let mut progressed = false;
            for (unit, dir) in self.dirs.clone() {
                while let Some(run) = self
                    .agent
                    .run_next(&mut self.model, &unit, &dir, &[])
                    .unwrap()
                {
                    assert!(
                        run.ok,
                        "{unit} {}: {}
{:#?}",
                        run.event.hook_name(),
                        run.output,
                        run.logs
                    );
                    hooks.push(format!("{unit} {}", run.event.hook_name()));
                    progressed = true;
                    assert!(hooks.len() < 200, "no end: {hooks:?}");
                }
            }
            if !progressed {
                return hooks;
            }
        }
    }
}
