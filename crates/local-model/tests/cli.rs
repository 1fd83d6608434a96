//! The `juju` CLI against its controller daemon: deploy and wait, the state
//! surviving a controller killed with SIGKILL (restarted by the next command,
//! which carries on running hooks), debug-log, and destroy-model.

mod common;

use common::{pack, v0_lib_dir, venv, Scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Cli {
    home: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_juju"))
            .args(args)
            .env("LOCAL_MODEL_HOME", &self.home)
            .env_remove("JUJU_MODEL")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "juju {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.home.join("local/controller.log")).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format", "json"])).unwrap()
    }

    fn pid(&self) -> i32 {
        std::fs::read_to_string(self.home.join("local/controller.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        if self.home.join("local/controller.pid").exists() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

#[test]
fn the_cli_drives_a_daemon_whose_state_survives_a_crash() {
    let scratch = Scratch::new("cli");
    let python = venv();
    let charm = pack(
        &scratch.0,
        "ops-peer",
        "packed",
        &python,
        &[v0_lib_dir(&python)],
    );
    let cli = Cli {
        home: scratch.0.join("home"),
    };
    let usage = cli.run(&["deploy"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).starts_with("ERROR "));

    cli.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "peer",
        "-n",
        "2",
        "--config",
        "greeting=hi",
    ]);
    cli.ok(&["wait", "--timeout", "120s"]);
    let status = cli.status();
    let units = &status["applications"]["peer"]["units"];
    assert_eq!(units["peer/0"]["leader"], true);
    assert_eq!(
        units["peer/1"]["workload-status"]["message"],
        "has the token"
    );
    assert_eq!(units["peer/0"]["juju-status"]["current"], "idle");
    let state = Path::new(&cli.home).join("local/model.json");
    assert!(state.exists());

    // A crash loses nothing: the next command starts a new controller from the
    // saved model, and it carries on running hooks.
    let old = cli.pid();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(old, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let after = cli.status();
    assert_ne!(cli.pid(), old);
    assert_eq!(after["applications"]["peer"]["units"], *units);
    cli.ok(&["config", "peer", "greeting=after"]);
    assert_eq!(cli.ok(&["config", "peer", "greeting"]), "after\n");
    cli.ok(&["wait", "--timeout", "60s"]);
    let shown: Value =
        serde_json::from_str(&cli.ok(&["show-unit", "peer/1", "--format", "json"])).unwrap();
    let replicas = &shown["peer/1"]["relation-info"][0];
    assert_eq!(replicas["endpoint"], "replicas");
    assert_eq!(replicas["local-unit"]["data"]["greeting"], "after");
    assert_eq!(
        replicas["related-units"]["peer/0"]["data"]["greeting"],
        "after"
    );
    assert!(replicas["application-data"]["token-id"].is_string());

    let log = cli.ok(&["debug-log", "--replay", "--no-tail"]);
    assert!(log.contains("unit-peer-0: "), "{log}");
    assert!(log.contains("ran \"install\" hook"), "{log}");
    let table = cli.ok(&["status"]);
    assert!(
        table.contains("peer/0*") && table.contains("greeting after"),
        "{table}"
    );

    cli.ok(&["destroy-model", "local", "--no-prompt"]);
    assert!(!cli.home.join("local").exists());
}
