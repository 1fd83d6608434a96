//! The `juju` CLI against its controller daemon: deploy and wait, the state
//! surviving a controller killed with SIGKILL (restarted by the next command,
//! which carries on running hooks), debug-log, and destroy-model; and the test
//! controls: fail-next-hook with resolve (retried or skipped, as debug-log
//! tells), kill-workload, crash-unit, `remove-unit --force [--no-wait]`, and
//! set-seed; the addresses Juju writes into relation bags, as an ops charm and
//! `show-unit` see them; units running their hooks at the same time; the
//! model's files private to their owner (whatever the umask, and tightened on
//! start) with no secret in its logs; ten commands at once starting one
//! controller; a binary replaced while it runs still starting its controller;
//! a lost or corrupt state refused with what to do; and a charm's
//! source, or a packed charm without `dispatch`, refused at deploy with how to
//! build it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{pack, shell_charm, v0_lib_dir, venv};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

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

    /// A command that must fail: its exit code and its one stderr line.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "juju {args:?} succeeded: {stderr}");
        (out.status.code().unwrap_or(-1), stderr)
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
    /// Stops the controller the test left running and waits until it has
    /// stopped its workloads and exited.
    fn drop(&mut self) {
        if self.home.join("local/controller.pid").exists() {
            let pid = self.pid();
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            for _ in 0..300 {
                // SAFETY: as above; signal 0 only checks the process exists.
                if unsafe { libc::kill(pid, 0) } != 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn the_cli_drives_a_daemon_whose_state_survives_a_crash() {
    let scratch = TempDir::with_prefix("lm-cli-").unwrap();
    let python = venv();
    let charm = pack(
        scratch.path(),
        "ops-peer",
        "packed",
        &python,
        &[v0_lib_dir(&python)],
    );
    let cli = Cli {
        home: scratch.path().join("home"),
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

fn peer_charm(scratch: &TempDir) -> PathBuf {
    let python = venv();
    pack(
        scratch.path(),
        "ops-peer",
        "packed",
        &python,
        &[v0_lib_dir(&python)],
    )
}

/// `(unit, hook)` for each hook that ran, in order, from `debug-log`.
fn hooks_run(cli: &Cli) -> Vec<String> {
    cli.ok(&["debug-log", "--replay", "--no-tail"])
        .lines()
        .filter_map(|l| {
            let (entity, rest) = l.split_once(": ")?;
            let hook = rest.split_once("juju.worker.uniter.operation ran ")?.1;
            let hook = hook.trim_end_matches(" (via hook dispatching script: dispatch)");
            Some(format!("{entity} {hook}"))
        })
        .collect()
}

#[test]
fn a_failed_hook_is_retried_or_skipped_by_resolve() {
    let scratch = TempDir::with_prefix("lm-cli-fail-").unwrap();
    let charm = peer_charm(&scratch);
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&["deploy", charm.to_str().unwrap(), "peer", "-n", "2"]);
    cli.ok(&["wait", "--timeout", "120s"]);

    assert_eq!(
        cli.fails(&["fail-next-hook", "nope/0"]),
        (1, "ERROR unit \"nope/0\" not found\n".into())
    );
    assert_eq!(cli.fails(&["fail-next-hook"]).0, 2);
    assert_eq!(
        cli.fails(&["resolve", "peer/1"]),
        (1, "ERROR unit \"peer/1\" is not in an error state\n".into())
    );

    cli.ok(&["fail-next-hook", "peer/1"]);
    cli.ok(&["config", "peer", "greeting=retried"]);
    let (code, err) = cli.fails(&["wait", "--timeout", "60s"]);
    assert_eq!(
        (code, err.lines().last()),
        (1, Some("ERROR units in error: peer/1 (config-changed)"))
    );
    let unit = &cli.status()["applications"]["peer"]["units"]["peer/1"];
    assert_eq!(unit["workload-status"]["current"], "error");
    assert_eq!(
        unit["workload-status"]["message"],
        "hook failed: \"config-changed\""
    );
    let table = cli.ok(&["status"]);
    let line = table.lines().find(|l| l.starts_with("peer/1 ")).unwrap();
    assert!(
        line.contains(" error ") && line.ends_with("hook failed: \"config-changed\""),
        "{table}"
    );
    let log = cli.ok(&["debug-log", "--replay", "--no-tail", "--include", "peer/1"]);
    for expected in [
        "ERROR juju.worker.uniter.operation hook \"config-changed\" \
         (via hook dispatching script: dispatch) failed: exit status 1",
        "INFO juju.worker.uniter awaiting error resolution for \"config-changed\" hook",
    ] {
        assert!(log.contains(expected), "{expected}: {log}");
    }
    let errors = cli.ok(&[
        "debug-log",
        "--replay",
        "--no-tail",
        "--include",
        "peer/1",
        "--level",
        "ERROR",
    ]);
    assert!(
        errors
            .lines()
            .all(|l| l.starts_with("unit-peer-1: ") && l.contains(" ERROR ")),
        "{errors}"
    );
    assert!(errors.contains("failed: exit status 1"), "{errors}");

    // resolve: the hook runs again and its changes are committed.
    cli.ok(&["resolve", "peer/1"]);
    cli.ok(&["wait", "--timeout", "60s"]);
    let greeting = |cli: &Cli| {
        let shown: Value =
            serde_json::from_str(&cli.ok(&["show-unit", "peer/1", "--format", "json"])).unwrap();
        shown["peer/1"]["relation-info"][0]["local-unit"]["data"]["greeting"].clone()
    };
    assert_eq!(greeting(&cli), "retried");
    let unit = &cli.status()["applications"]["peer"]["units"]["peer/1"];
    assert_eq!(unit["workload-status"]["current"], "active");

    // resolve --no-retry: the failed hook counts as done and does not run again.
    cli.ok(&["fail-next-hook", "peer/1"]);
    cli.ok(&["config", "peer", "greeting=skipped"]);
    assert_eq!(cli.fails(&["wait", "--timeout", "60s"]).0, 1);
    cli.ok(&["resolve", "--no-retry", "peer/1"]);
    cli.ok(&["wait", "--timeout", "60s"]);
    assert_eq!(greeting(&cli), "retried");
    let unit = &cli.status()["applications"]["peer"]["units"]["peer/1"];
    assert_eq!(unit["workload-status"]["current"], "active");
    let log = cli.ok(&["debug-log", "--replay", "--no-tail", "--include", "peer/1"]);
    assert_eq!(
        log.matches("ran \"config-changed\" hook").count(),
        2,
        "the install-time run and the retry, not the skipped one: {log}"
    );
}

#[test]
fn remove_unit_force_no_wait_runs_no_hooks_and_the_others_see_it_go() {
    let scratch = TempDir::with_prefix("lm-cli-abrupt-").unwrap();
    let charm = peer_charm(&scratch);
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&["deploy", charm.to_str().unwrap(), "peer", "-n", "3"]);
    cli.ok(&["wait", "--timeout", "180s"]);
    assert_eq!(
        cli.fails(&["remove-unit", "peer/0", "--no-wait"]),
        (2, "ERROR --no-wait without --force not valid\n".into())
    );
    assert_eq!(
        cli.fails(&["remove-unit", "peer/7", "--force", "--no-wait"]),
        (1, "ERROR unit \"peer/7\" not found\n".into())
    );

    // The leader goes at once: no stop or remove hook; the others see it
    // depart, and one of them is elected.
    let before = hooks_run(&cli).len();
    cli.ok(&["remove-unit", "peer/0", "--force", "--no-wait"]);
    cli.ok(&["wait", "--timeout", "60s"]);
    let status = cli.status();
    let units = status["applications"]["peer"]["units"].as_object().unwrap();
    assert_eq!(
        units.keys().collect::<Vec<_>>(),
        ["peer/1", "peer/2"],
        "{status}"
    );
    assert_eq!(units["peer/1"]["leader"], true);
    let after = hooks_run(&cli)[before..].to_vec();
    assert!(
        !after.iter().any(|h| h.starts_with("unit-peer-0 ")),
        "{after:?}"
    );
    for expected in [
        "unit-peer-1 \"leader-elected\" hook",
        "unit-peer-1 \"replicas-relation-departed\" hook",
        "unit-peer-2 \"replicas-relation-departed\" hook",
    ] {
        assert!(after.iter().any(|h| h == expected), "{expected}: {after:?}");
    }
    assert!(!cli.home.join("local/units/peer-0").exists());

    // --force alone: a unit in error still leaves, running its hooks.
    cli.ok(&["fail-next-hook", "peer/2"]);
    cli.ok(&["config", "peer", "greeting=bye"]);
    assert_eq!(cli.fails(&["wait", "--timeout", "60s"]).0, 1);
    cli.ok(&["remove-unit", "peer/2", "--force"]);
    cli.ok(&["wait", "--timeout", "60s"]);
    let status = cli.status();
    let units = status["applications"]["peer"]["units"].as_object().unwrap();
    assert_eq!(units.keys().collect::<Vec<_>>(), ["peer/1"], "{status}");
    let hooks = hooks_run(&cli);
    assert!(hooks.iter().any(|h| h == "unit-peer-2 \"remove\" hook"));
}

/// The hooks a seeded model runs for three units, with the controller
/// restarted between set-seed and deploy when `restart` is set.
fn seeded_order(seed: &str, restart: bool) -> Vec<String> {
    let scratch = TempDir::with_prefix(format!("lm-cli-seed-{seed}-{restart}-")).unwrap();
    let charm = peer_charm(&scratch);
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&["set-seed", seed]);
    if restart {
        cli.ok(&["kill-controller", "--no-prompt"]);
    }
    cli.ok(&["deploy", charm.to_str().unwrap(), "peer", "-n", "3"]);
    cli.ok(&["wait", "--timeout", "180s"]);
    hooks_run(&cli)
}

#[test]
fn a_seed_fixes_the_hook_order_across_controller_restarts() {
    let scratch = TempDir::with_prefix("lm-cli-seed-usage-").unwrap();
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    assert_eq!(cli.fails(&["set-seed", "soon"]).0, 2);
    assert_eq!(cli.fails(&["set-seed"]).0, 2);
    let a = seeded_order("42", true);
    assert!(a.len() > 12, "{a:?}");
    assert_eq!(
        a,
        seeded_order("42", false),
        "the same seed, the same order"
    );
    assert_ne!(a, seeded_order("43", false), "another seed, another order");
}

/// Processes whose root is inside `dir` (a sandboxed service's root).
fn processes_in(dir: &Path) -> Vec<i32> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            let root = std::fs::read_link(e.path().join("root")).ok()?;
            root.starts_with(&dir).then_some(pid)
        })
        .collect()
}

#[test]
fn kill_workload_kills_a_service_and_pebble_brings_it_back() {
    let ok = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "example-charm",
            "--bin",
            "example-charm",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let scratch = TempDir::with_prefix("lm-cli-kill-").unwrap();
    let charm = scratch.path().join("example-charm");
    std::fs::create_dir_all(&charm).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-charm/charm");
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        std::fs::copy(src.join(f), charm.join(f)).unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_hook-tool")).with_file_name("example-charm");
    std::fs::copy(&bin, charm.join("dispatch")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "web",
        "--config",
        &format!("port={port}"),
    ]);
    cli.ok(&["wait", "--timeout", "120s"]);
    let root = cli.home.join("local/units/web-0/rootfs/web");
    let before = processes_in(&root);
    assert!(!before.is_empty(), "the web service runs");

    for (args, error) in [
        (
            ["kill-workload", "web/9", "web", "web"],
            "ERROR unit \"web/9\" not found\n",
        ),
        (
            ["kill-workload", "web/0", "db", "web"],
            "ERROR unit \"web/0\" has no container \"db\"\n",
        ),
        (
            ["kill-workload", "web/0", "web", "nginx"],
            "ERROR container \"web\" of unit \"web/0\" has no service \"nginx\"\n",
        ),
    ] {
        assert_eq!(cli.fails(&args), (1, error.to_string()));
    }
    assert_eq!(cli.fails(&["kill-workload", "web/0", "web"]).0, 2);

    cli.ok(&["kill-workload", "web/0", "web", "web"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = processes_in(&root);
        if !now.is_empty() && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not come back: {before:?} then {now:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // The machine is lost: the workload dies with it and the unit is gone.
    assert_eq!(
        cli.fails(&["crash-unit", "web/9"]),
        (1, "ERROR unit \"web/9\" not found\n".to_string())
    );
    let running = processes_in(&root);
    cli.ok(&["crash-unit", "web/0"]);
    assert!(running
        .iter()
        .all(|p| !Path::new(&format!("/proc/{p}")).exists()));
    assert!(cli.status()["applications"]["web"]["units"]
        .as_object()
        .is_none_or(|units| units.is_empty()));
}

#[test]
fn relation_bags_carry_the_addresses_juju_writes_and_a_charm_may_overwrite() {
    let scratch = TempDir::with_prefix("lm-cli-addresses-").unwrap();
    let python = venv();
    let charm = pack(scratch.path(), "ops-address", "packed", &python, &[]);
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&["deploy", charm.to_str().unwrap(), "addr", "-n", "2"]);
    cli.ok(&["wait", "--timeout", "120s"]);
    let status = cli.status();
    let address = |unit: &str| {
        status["applications"]["addr"]["units"][unit]["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a0, a1) = (address("addr/0"), address("addr/1"));
    let message = |unit: &str| {
        cli.status()["applications"]["addr"]["units"][unit]["workload-status"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Each unit's ops charm read its peer's keys in the changed that follows
    // the join: they were written when the peer entered scope.
    assert_eq!(
        message("addr/0"),
        format!("addr/1 at {a1} from {a1} via {a1}/32")
    );
    assert_eq!(
        message("addr/1"),
        format!("addr/0 at {a0} from {a0} via {a0}/32")
    );
    let bags = |unit: &str| {
        serde_json::from_str::<Value>(&cli.ok(&["show-unit", unit, "--format", "json"])).unwrap()
            [unit]["relation-info"][0]
            .clone()
    };
    let settings = |a: &str| {
        serde_json::json!({
            "egress-subnets": format!("{a}/32"),
            "ingress-address": a,
            "private-address": a,
        })
    };
    let peers = bags("addr/0");
    assert_eq!(peers["local-unit"]["data"], settings(&a0));
    assert_eq!(peers["related-units"]["addr/1"]["data"], settings(&a1));
    // No relation-changed beyond the one per joined peer.
    let changed = |cli: &Cli| {
        hooks_run(cli)
            .iter()
            .filter(|h| h.ends_with(" \"replicas-relation-changed\" hook"))
            .count()
    };
    assert_eq!(changed(&cli), 2, "{:?}", hooks_run(&cli));

    // A charm may overwrite them; its peer hears of it.
    cli.ok(&["config", "addr", "advertise=10.9.9.9"]);
    cli.ok(&["wait", "--timeout", "60s"]);
    assert_eq!(
        message("addr/0"),
        format!("addr/1 at 10.9.9.9 from {a1} via {a1}/32")
    );
    let local = &bags("addr/0")["local-unit"]["data"];
    assert_eq!(
        (&local["ingress-address"], &local["private-address"]),
        (&serde_json::json!("10.9.9.9"), &serde_json::json!(a0))
    );
    assert_eq!(changed(&cli), 4);

    // Juju writes them again after a config-changed that leaves them alone.
    cli.ok(&["config", "addr", "--reset", "advertise"]);
    cli.ok(&["wait", "--timeout", "60s"]);
    assert_eq!(
        message("addr/0"),
        format!("addr/1 at {a1} from {a1} via {a1}/32")
    );
    assert_eq!(bags("addr/1")["local-unit"]["data"], settings(&a1));
    assert_eq!(changed(&cli), 6);
}

/// A charm whose every hook logs its unit, start and end (nanoseconds) to
/// `log`, half a second apart.
fn slow_charm(scratch: &TempDir, log: &Path) -> PathBuf {
    shell_charm(
        scratch.path(),
        "slow",
        &format!(
            "#!/bin/sh\n\
             echo \"$JUJU_UNIT_NAME start $(date +%s%N)\" >> {log}\n\
             sleep 0.5\n\
             echo \"$JUJU_UNIT_NAME end $(date +%s%N)\" >> {log}\n",
            log = log.display()
        ),
    )
}

/// Each unit's hooks as (start, end) intervals, from the slow charm's log.
fn hook_intervals(log: &Path) -> std::collections::BTreeMap<String, Vec<(u128, u128)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(u128, u128)>> = Default::default();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let mut f = line.split(' ');
        let (unit, what, at) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let at: u128 = at.parse().unwrap();
        let hooks = out.entry(unit.to_string()).or_default();
        match what {
            "start" => hooks.push((at, 0)),
            _ => hooks.last_mut().expect("a hook ends after it starts").1 = at,
        }
    }
    out
}

#[test]
fn units_run_their_hooks_at_the_same_time_and_each_one_at_a_time() {
    let scratch = TempDir::with_prefix("lm-cli-parallel-").unwrap();
    let log = scratch.path().join("hooks.log");
    let charm = slow_charm(&scratch, &log);
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&["deploy", charm.to_str().unwrap(), "slow", "-n", "2"]);
    cli.ok(&["wait", "--timeout", "120s"]);
    let hooks = hook_intervals(&log);
    let (a, b) = (&hooks["slow/0"], &hooks["slow/1"]);
    assert!(a.len() >= 3 && b.len() >= 3, "{hooks:?}");
    for unit in [a, b] {
        for pair in unit.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "one unit, one hook at a time: {unit:?}"
            );
        }
    }
    let overlapping = a.iter().any(|x| b.iter().any(|y| x.0 < y.1 && y.0 < x.1));
    assert!(
        overlapping,
        "the two units' hooks ran at the same time: {hooks:?}"
    );
}

/// Every file and directory under `dir` whose mode lets its group or others
/// in, as `path mode`; a container's root (`units/<unit>/rootfs/<container>`)
/// is the workload's filesystem and is not walked.
fn open_to_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut open = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            open.push(format!("{} {mode:o}", path.display()));
        }
        let container_roots = path.file_name().is_some_and(|n| n == "rootfs");
        if meta.is_dir() && !container_roots {
            for entry in std::fs::read_dir(&path).unwrap() {
                todo.push(entry.unwrap().path());
            }
        }
    }
    open
}

/// Runs `juju` with umask `mask` (000: only the modes it sets keep files
/// private; 077: only those it sets let the workloads' users in).
fn run_with_umask(cli: &Cli, mask: libc::mode_t, args: &[&str]) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_juju"));
    command
        .args(args)
        .env("LOCAL_MODEL_HOME", &cli.home)
        .env_remove("JUJU_MODEL");
    // SAFETY: umask is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_model_is_private_and_its_logs_hold_no_secret() {
    let scratch = TempDir::with_prefix("lm-cli-private-").unwrap();
    let python = venv();
    let peer = pack(
        scratch.path(),
        "ops-peer",
        "peer",
        &python,
        &[v0_lib_dir(&python)],
    );
    let notice = pack(scratch.path(), "ops-notice", "notice", &python, &[]);
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    // The controller starts with umask 000: every mode is set explicitly.
    run_with_umask(
        &cli,
        0,
        &["deploy", peer.to_str().unwrap(), "peer", "-n", "2"],
    );
    cli.ok(&["deploy", notice.to_str().unwrap(), "notice"]);
    cli.ok(&["wait", "--timeout", "120s"]);
    let status = cli.status();
    // The follower copied the leader's secret into its relation bag, and the
    // workload (a service pushed through Pebble, run as nobody) woke its charm.
    assert_eq!(
        status["applications"]["peer"]["units"]["peer/1"]["workload-status"]["message"],
        "has the token"
    );
    let notice_status = &status["applications"]["notice"]["units"]["notice/0"];
    assert!(
        notice_status["workload-status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("notice "),
        "{notice_status}"
    );
    let secret = "s3cret-token";
    let model = cli.home.join("local");
    let state = std::fs::read_to_string(model.join("model.json")).unwrap();
    assert!(state.contains(secret), "the state holds the secret");
    for log in ["debug.log", "controller.log"] {
        let text = std::fs::read_to_string(model.join(log)).unwrap();
        assert!(!text.is_empty() && !text.contains(secret), "{log}: {text}");
    }
    assert_eq!(open_to_others(&cli.home), Vec::<String>::new());
    // Nobody else reaches the state or the files pushed into a container.
    let layers = model.join("units/notice-0/rootfs");
    for path in [model.join("model.json"), layers] {
        let other = Command::new("runuser")
            .args(["-u", "nobody", "--", "ls", "-d"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!other.status.success(), "nobody reached {}", path.display());
    }

    // A model left with open modes is made private when its controller starts.
    cli.ok(&["kill-controller", "--no-prompt"]);
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        ("model.json", 0o644),
        ("debug.log", 0o644),
        ("units", 0o755),
        ("units/peer-0/charm", 0o755),
        ("charms/peer/metadata.yaml", 0o664),
    ] {
        std::fs::set_permissions(model.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    assert_eq!(open_to_others(&cli.home).len(), 5);
    // Started with umask 077 this time, the controller still lets a new
    // unit's workload, run as nobody, into its container and its socket.
    run_with_umask(&cli, 0o077, &["status"]);
    assert_eq!(open_to_others(&cli.home), Vec::<String>::new());
    cli.ok(&["deploy", notice.to_str().unwrap(), "late"]);
    cli.ok(&["wait", "--timeout", "120s"]);
    let late = &cli.status()["applications"]["late"]["units"]["late/0"];
    assert!(
        late["workload-status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("notice "),
        "{late}"
    );
    assert_eq!(open_to_others(&cli.home), Vec::<String>::new());
}

/// The controller processes running for `home`: `juju _daemon` with
/// `LOCAL_MODEL_HOME=<home>` in its environment.
fn daemons(home: &Path) -> Vec<i32> {
    let want = format!("LOCAL_MODEL_HOME={}", home.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let has = |bytes: &[u8], s: &str| bytes.split(|b| *b == 0).any(|w| w == s.as_bytes());
        if has(&cmdline, "_daemon") && has(&environ, &want) {
            pids.push(pid);
        }
    }
    pids
}

/// `juju status --format json` started with `juju`, on the model of `cli`.
fn start_status(juju: &Path, cli: &Cli) -> std::process::Child {
    Command::new(juju)
        .args(["status", "--format", "json"])
        .env("LOCAL_MODEL_HOME", &cli.home)
        .env_remove("JUJU_MODEL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Asserts a started `juju status` succeeded and showed the model.
fn status_answered(status: std::process::Child) {
    let out = status.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["model"]["name"], "local");
}

/// Starts `n` `juju status` at once and asserts each succeeds.
fn statuses_at_once(cli: &Cli, n: usize) {
    let juju = Path::new(env!("CARGO_BIN_EXE_juju"));
    let children: Vec<_> = (0..n).map(|_| start_status(juju, cli)).collect();
    for child in children {
        status_answered(child);
    }
}

#[test]
fn commands_started_at_once_start_one_controller() {
    let scratch = TempDir::with_prefix("lm-cli-cold-").unwrap();
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    statuses_at_once(&cli, 10);
    assert_eq!(daemons(&cli.home), vec![cli.pid()]);
    let log = std::fs::read_to_string(cli.home.join("local/controller.log")).unwrap();
    assert_eq!(
        log.matches("controller for local started").count(),
        1,
        "{log}"
    );
    // With the controller up, as many again find it.
    statuses_at_once(&cli, 10);
    assert_eq!(daemons(&cli.home), vec![cli.pid()]);
}

#[test]
fn a_juju_binary_replaced_while_it_runs_starts_the_controller_from_its_path() {
    use std::os::fd::AsRawFd;
    let scratch = TempDir::with_prefix("lm-cli-replaced-").unwrap();
    let bin = scratch.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let hook_tool = Path::new(env!("CARGO_BIN_EXE_hook-tool"));
    std::fs::copy(hook_tool, bin.join("hook-tool")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_juju"), bin.join("juju")).unwrap();
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    // The test holds the lock a command takes before it starts the
    // controller, so the command waits there, running the file that is then
    // replaced (as a rebuild or an upgrade replaces it).
    let model = cli.home.join("local");
    std::fs::create_dir_all(&model).unwrap();
    let lock = std::fs::File::create(model.join("start.lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let status = start_status(&bin.join("juju"), &cli);
    std::fs::remove_file(bin.join("juju")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_juju"), bin.join("juju")).unwrap();
    drop(lock);
    status_answered(status);
    let exe = std::fs::read_link(format!("/proc/{}/exe", cli.pid())).unwrap();
    assert_eq!(exe, bin.join("juju"));
}

#[test]
fn a_lost_or_broken_state_stops_the_controller_with_what_to_do() {
    let scratch = TempDir::with_prefix("lm-cli-state-").unwrap();
    let charm = shell_charm(scratch.path(), "quiet", "#!/bin/sh\n");
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&["deploy", charm.to_str().unwrap(), "quiet"]);
    cli.ok(&["wait", "--timeout", "60s"]);
    cli.ok(&["kill-controller", "--no-prompt"]);
    let model = cli.home.join("local");
    let state = model.join("model.json");
    let saved = std::fs::read(&state).unwrap();

    std::fs::remove_file(&state).unwrap();
    let (code, missing) = cli.fails(&["status"]);
    assert_eq!(code, 1);
    assert!(
        missing.starts_with("ERROR cannot start model \"local\": ")
            && missing.contains(&format!("not their state, {}", state.display()))
            && missing.contains("juju destroy-model local --no-prompt"),
        "{missing}"
    );
    assert!(!state.exists(), "no empty model was saved in its place");
    assert!(daemons(&cli.home).is_empty());
    assert!(!model.join("controller.pid").exists());

    std::fs::write(&state, "{\"name\": \"local\", ").unwrap();
    let (_, corrupt) = cli.fails(&["status"]);
    assert!(
        corrupt.contains(&format!("{} is not a model's state", state.display()))
            && corrupt.contains("juju destroy-model local --no-prompt")
            && !corrupt.contains("exited"),
        "{corrupt}"
    );
    assert!(daemons(&cli.home).is_empty());

    // One that cannot be read at all (a directory in its place).
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let (_, unreadable) = cli.fails(&["status"]);
    assert!(
        unreadable.contains(&format!("cannot read {}", state.display()))
            && unreadable.contains("juju destroy-model local --no-prompt"),
        "{unreadable}"
    );
    assert!(daemons(&cli.home).is_empty());
    std::fs::remove_dir(&state).unwrap();

    // With its state back, the model carries on.
    std::fs::write(&state, saved).unwrap();
    assert_eq!(
        cli.status()["applications"]["quiet"]["units"]["quiet/0"]["juju-status"]["current"],
        "idle"
    );
}

#[test]
fn a_charm_source_is_refused_with_how_to_build_it() {
    let scratch = TempDir::with_prefix("lm-cli-source-").unwrap();
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for source in ["crates/pgbouncer-k8s", "charms/pgbouncer-k8s"] {
        let dir = workspace.join(source);
        assert!(dir.join("src").exists() || dir.join("metadata.yaml").exists());
        let (code, refused) = cli.fails(&["deploy", dir.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(
            refused.contains("no executable `dispatch`")
                && refused.contains("scripts/build-charms"),
            "{refused}"
        );
    }
    // A packed charm without a `dispatch` too.
    let unbuilt = scratch.path().join("unbuilt.charm");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&unbuilt).unwrap());
    zip.start_file("metadata.yaml", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"name: unbuilt\n").unwrap();
    zip.finish().unwrap();
    let (code, refused) = cli.fails(&["deploy", unbuilt.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        refused.contains("unbuilt.charm: it has no executable `dispatch`")
            && refused.contains("scripts/build-charms"),
        "{refused}"
    );
    assert!(!cli.home.join("local/model.json").exists());
}
