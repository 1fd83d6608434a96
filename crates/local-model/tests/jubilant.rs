//! `jubilant` (from PyPI) drives the local model through its `juju`: add-model,
//! deploy, wait, config, add-unit, remove-unit, run, exec, integrate,
//! show-unit and destroy-model, with Python ops charms (tests/jubilant/drive.py).

mod common;

use common::{pack, v0_lib_dir, venv};
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

/// Stops the controller the CLI started, if the test left it running.
struct Daemon(std::path::PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("controller.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
    }
}

#[test]
fn jubilant_drives_the_local_model() {
    let scratch = TempDir::with_prefix("lm-jubilant-").unwrap();
    let python = venv();
    let lib = [v0_lib_dir(&python)];
    let charms = scratch.path().join("charms");
    let peer = pack(&charms, "ops-peer", "peer", &python, &lib);
    let provider = pack(&charms, "db-provider-v0", "provider", &python, &lib);
    let requirer = pack(&charms, "db-requirer-v0", "requirer", &python, &lib);
    let home = scratch.path().join("home");
    let _daemon = Daemon(home.join("jubilant"));
    let bin = Path::new(env!("CARGO_BIN_EXE_juju")).parent().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jubilant/drive.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["jubilant"])
        .args([&peer, &provider, &requirer])
        .env("LOCAL_MODEL_HOME", &home)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("JUJU_MODEL")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(home.join("jubilant/controller.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}\ncontroller log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !home.join("jubilant").exists(),
        "destroy-model removed the model"
    );
}
