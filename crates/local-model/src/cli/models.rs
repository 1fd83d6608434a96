//! Verbs about the model and its controller: `bootstrap`, `add-model`,
//! `destroy-model`, `kill-controller`, `wait`, the hidden `_daemon` (the
//! controller process itself) and `_pebble` (one container's Pebble server,
//! which the controller starts).
//!
//! `destroy-model` and `kill-controller` also do their job with no
//! controller running (one killed with SIGKILL leaves its workloads
//! running): they stop what the model's containers run, and `destroy-model`
//! finishes removing a model whose controller died while destroying it.

use super::connect::switch;
use super::{parse, seconds, CliError, Outcome, Target};
use crate::api::Request;
use crate::tools::Kind;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `juju bootstrap [cloud] [name]`: nothing to do; every model has its own
/// controller, started on first use.
pub fn bootstrap(args: &[String]) -> Outcome {
    parse(
        args,
        &[(&["config"], Kind::Value), (&["no-switch"], Kind::Bool)],
    )?;
    eprintln!("The local model needs no bootstrap: each model's controller starts on first use.");
    Ok(())
}

/// The cloud names that make a Kubernetes model.
const KUBERNETES_CLOUDS: [&str; 3] = ["microk8s", "k8s", "kubernetes"];

/// `juju add-model [--no-switch] <name> [cloud]`: creates the model and starts
/// its controller; on a Kubernetes cloud ([`KUBERNETES_CLOUDS`]) the model
/// serves the Kubernetes API (`localhost`, the default, does not).
pub fn add_model(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            (&["no-switch"], Kind::Bool),
            (&["config"], Kind::Value),
            (&["c", "controller"], Kind::Value),
            (&["credential"], Kind::Value),
        ],
    )?;
    let Some(name) = p.positional.first() else {
        return Err(CliError::Usage("model name is required".into()));
    };
    let target = Target::named(name)?;
    if crate::store::state_path(&target.dir).exists() {
        return Err(CliError::Failed(format!(
            "model {:?} already exists",
            target.name
        )));
    }
    let cloud = p.positional.get(1).map_or("localhost", String::as_str);
    let kubernetes = KUBERNETES_CLOUDS.contains(&cloud);
    if !kubernetes && !matches!(cloud, "localhost" | "local" | "lxd") {
        return Err(CliError::Usage(format!(
            "unknown cloud {cloud:?}: use localhost, or a Kubernetes cloud ({})",
            KUBERNETES_CLOUDS.join(", ")
        )));
    }
    target.ensure_running()?;
    if kubernetes {
        target.call(&Request::UseKubernetes)?;
    }
    if !p.flag("no-switch") {
        switch(&target.name)?;
    }
    eprintln!("Added {:?} model on {cloud}/localhost", target.name);
    Ok(())
}

/// Waits until the model's controller process has gone (its lock is free),
/// up to ten minutes (its workloads may take their time to stop).
fn wait_gone(target: &Target) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && target.controller_alive() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `juju destroy-model <name> [--no-prompt] ...`: stops its controller and
/// workloads and removes the model.
pub fn destroy_model(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            (&["no-prompt", "y"], Kind::Bool),
            (&["force"], Kind::Bool),
            (&["no-wait"], Kind::Bool),
            (&["destroy-storage"], Kind::Bool),
            (&["release-storage"], Kind::Bool),
            (&["timeout"], Kind::Value),
        ],
    )?;
    let target = match p.positional.first() {
        Some(name) => Target::named(name)?,
        None => Target::from(&p)?,
    };
    if !target.dir.exists() {
        return Err(CliError::Failed(format!(
            "model {:?} not found",
            target.name
        )));
    }
    if target.running() {
        // A controller that dies on the way leaves the rest to do here.
        let _ = target.call(&Request::Shutdown { destroy: true });
        wait_gone(&target);
    }
    if target.dir.exists() {
        if crate::store::destroying_path(&target.dir).exists() {
            eprintln!(
                "Finishing the removal of model {:?}, which its controller left unfinished",
                target.name
            );
        }
        target.without_controller(|dir| {
            crate::store::write_private(&crate::store::destroying_path(dir), b"")?;
            crate::pebbles::stop_all(dir);
            crate::pebbles::unmount_all(dir);
            std::fs::remove_dir_all(dir)
        })?;
    }
    eprintln!("Model {:?} destroyed", target.name);
    Ok(())
}

/// `juju kill-controller`: stops the model's controller and its workloads,
/// keeping the model; the next command starts it again.
pub fn kill_controller(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            (&["no-prompt", "y"], Kind::Bool),
            (&["timeout", "t"], Kind::Value),
        ],
    )?;
    let target = Target::from(&p)?;
    if target.running() {
        let _ = target.call(&Request::Shutdown { destroy: false });
        wait_gone(&target);
    }
    if target.dir.exists() {
        target.without_controller(|dir| {
            crate::pebbles::stop_all(dir);
            Ok(())
        })?;
    }
    Ok(())
}

/// `juju wait [--timeout 10m]`: until no unit has a hook due or running;
/// fails when a unit is left in error.
pub fn wait(args: &[String]) -> Outcome {
    let p = parse(args, &[(&["timeout"], Kind::Value)])?;
    let target = Target::from(&p)?;
    let timeout = Duration::from_secs(seconds(&p, "timeout", 600)?);
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let pending = target.call(&Request::Pending)?;
        let names = |key: &str| -> Vec<String> {
            pending[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| match v {
                    serde_json::Value::Array(pair) => format!(
                        "{} ({})",
                        pair[0].as_str().unwrap_or_default(),
                        pair[1].as_str().unwrap_or_default()
                    ),
                    other => other.as_str().unwrap_or_default().to_string(),
                })
                .collect()
        };
        let (due, failed) = (names("due"), names("failed"));
        if due.is_empty() && failed.is_empty() {
            eprintln!("idle after {:.1}s", start.elapsed().as_secs_f64());
            return Ok(());
        }
        if due.is_empty() {
            return Err(CliError::Failed(format!(
                "units in error: {}",
                failed.join(", ")
            )));
        }
        let now = format!("waiting for {}", due.join(", "));
        if now != last {
            eprintln!("{now}");
            last = now;
        }
        if start.elapsed() >= timeout {
            return Err(CliError::Failed(format!(
                "timed out after {}s {last}",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `juju _daemon --model <name>`: runs the model's controller in the
/// foreground. The CLI starts it; `LOCAL_MODEL_HOOK_TOOL` names the shim (else
/// `hook-tool` beside this binary), `LOCAL_MODEL_SANDBOX=0|1` overrides the
/// sandbox (on when run as root), `LOCAL_MODEL_UPDATE_STATUS_INTERVAL` (a Go
/// duration, default 5m) sets how often update-status runs,
/// `LOCAL_MODEL_HOOKS_AT_ONCE` (default 4) how many units may run hooks at
/// once, and `LOCAL_MODEL_IMAGES` where deploy finds workload images (as
/// `scripts/build-images` lays them out; without it, containers run on the
/// host's system directories unless `deploy --resource` gives an image).
pub fn daemon(args: &[String]) -> Outcome {
    let p = parse(args, &[])?;
    let target = Target::from(&p)?;
    let exe = super::this_binary()
        .map_err(|e| CliError::Failed(format!("cannot find this binary: {e}")))?;
    let shim = std::env::var_os("LOCAL_MODEL_HOOK_TOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.with_file_name("hook-tool"));
    if !shim.exists() {
        return Err(CliError::Failed(format!(
            "the hook-tool shim is missing at {}",
            shim.display()
        )));
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let sandbox = match std::env::var("LOCAL_MODEL_SANDBOX").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => root,
    };
    let every = std::env::var("LOCAL_MODEL_UPDATE_STATUS_INTERVAL")
        .ok()
        .and_then(|v| crate::clock::parse_duration(&v))
        .unwrap_or(300)
        .max(1);
    let hooks_at_once = std::env::var("LOCAL_MODEL_HOOKS_AT_ONCE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(4)
        .max(1);
    crate::daemon::run(crate::daemon::Options {
        dir: target.dir,
        name: target.name,
        shim,
        sandbox,
        update_status_every: Duration::from_secs(every),
        hooks_at_once,
        pebble_exe: exe,
        images: std::env::var_os("LOCAL_MODEL_IMAGES").map(PathBuf::from),
    })
    .map_err(|e| match e {
        crate::daemon::DaemonError::AlreadyRunning(_) => {
            eprintln!("ERROR {e}");
            CliError::Exit(super::connect::ALREADY_RUNNING)
        }
        e => CliError::Failed(e.to_string()),
    })
}

/// `juju _pebble --socket <path> --root <dir> --hold <lock> [--sandbox]
/// [--image <rootfs>] [--pebble-cli <program>]`: one
/// container's Pebble server, in the foreground until SIGTERM or SIGUSR1
/// (see [`crate::pebbles`]). The controller starts it.
pub fn pebble(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            (&["socket"], Kind::Value),
            (&["root"], Kind::Value),
            (&["hold"], Kind::Value),
            (&["sandbox"], Kind::Bool),
            (&["image"], Kind::Value),
            (&["pebble-cli"], Kind::Value),
        ],
    )?;
    let path = |flag: &str| {
        p.value(flag)
            .map(PathBuf::from)
            .ok_or_else(|| CliError::Usage(format!("--{flag} is required")))
    };
    let spec = crate::pebbles::Spec {
        socket: path("socket")?,
        root: path("root")?,
        hold: path("hold")?,
        sandbox: p.flag("sandbox"),
        image: p.value("image").map(PathBuf::from),
        pebble_cli: p.value("pebble-cli").map(PathBuf::from),
    };
    crate::pebbles::serve(&spec).map_err(|e| CliError::Failed(e.to_string()))
}
