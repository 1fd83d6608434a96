//! Helpers for the end-to-end tests: build and pack the charms, run a local
//! model in a scratch directory, and wait for it to converge.

use local_model::controller::Controller;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo target profile directory these tests were built into.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("a target directory")
        .to_path_buf()
}

/// Builds the charms' dispatch binaries and the hook-tool shim, once per test binary.
fn build() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let ok = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .args(["build", "-q", "--locked"])
            .args([
                "-p",
                "etcd-charm",
                "-p",
                "pgbouncer-k8s",
                "-p",
                "local-model",
            ])
            .arg("--bins")
            .status()
            .expect("cargo runs")
            .success();
        assert!(ok, "building the charms failed");
    });
}

/// A charm of this workspace packed as Juju unpacks it: `dispatch` beside its YAML.
pub fn charm(scratch: &Path, name: &str) -> PathBuf {
    build();
    let (binary, files) = match name {
        "etcd" => ("etcd-charm", "charms/etcd"),
        "pgbouncer-k8s" => ("pgbouncer-k8s", "charms/pgbouncer-k8s"),
        other => panic!("no charm {other} in this workspace"),
    };
    let dir = scratch.join("charms").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(bin_dir().join(binary), dir.join("dispatch")).unwrap();
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        let src = workspace().join(files).join(f);
        if src.exists() {
            std::fs::copy(src, dir.join(f)).unwrap();
        }
    }
    dir
}

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A controller over the scratch directory, with sandboxed workloads.
pub fn controller(scratch: &Scratch) -> Controller {
    build();
    Controller::new(
        &scratch.0.join("controller"),
        &bin_dir().join("hook-tool"),
        true,
    )
    .unwrap()
}

/// Runs hooks (and an update-status round every half second, as Juju's timer
/// would, for what waits on a workload) until `done` holds; panics with the
/// status table and the failed hooks after `timeout`.
pub fn converge(c: &mut Controller, timeout: Duration, done: impl Fn(&Controller) -> bool) {
    let start = Instant::now();
    let mut failures = Vec::new();
    loop {
        for (unit, run) in c.settle().unwrap() {
            if !run.ok {
                failures.push(format!("{unit} {}: {}", run.event.hook_name(), run.output));
            }
        }
        if done(c) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "not converged after {timeout:?}\n{}\nfailed hooks:\n{}",
            c.status(),
            failures.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
        c.tick();
    }
}
