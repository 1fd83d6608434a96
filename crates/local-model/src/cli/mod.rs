//! The local model's `juju` command: Juju's verbs and flags, answered by the
//! model's controller daemon ([`crate::daemon`]) over its socket, which this
//! starts in the background when none runs (its output goes to
//! `<model dir>/controller.log`).
//!
//! The model is `--model`/`-m`, else `$JUJU_MODEL`, else the one `add-model`
//! last switched to, else `local`; models live under [`crate::store::home`].
//! Errors print one `ERROR ...` line and exit 1 (2 for a command line the verb
//! cannot take).

mod apps;
mod connect;
mod controls;
mod logs;
mod models;
mod show;
mod tasks;

use crate::tools::{Kind, Parsed, Spec};
use std::path::PathBuf;
use std::process::ExitCode;

pub use connect::Target;

/// This process's binary. When the file was replaced while it ran (a rebuild
/// or an upgrade of the binaries in place), Linux names the old one
/// `<path> (deleted)`; the path without that suffix holds the new one, which
/// is the one to run or to find siblings beside.
pub fn this_binary() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let replaced = exe
        .to_str()
        .and_then(|s| s.strip_suffix(" (deleted)"))
        .map(PathBuf::from);
    Ok(match replaced {
        Some(path) if !exe.exists() => path,
        _ => exe,
    })
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command could not do its job (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Already reported; exit with this code.
    #[error("exit {0}")]
    Exit(u8),
}

impl From<crate::api::CallError> for CliError {
    fn from(e: crate::api::CallError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<crate::tools::UsageError> for CliError {
    /// The hook tools' flag parser speaks of `flag ... -name`; Juju's CLI of
    /// `option ... --name` (one dash for a one-letter option).
    fn from(e: crate::tools::UsageError) -> Self {
        let message = e.0.replacen("flag ", "option ", 1);
        let message = match message.rsplit_once(" -") {
            Some((head, name)) if name.chars().count() > 1 && !name.starts_with('-') => {
                format!("{head} --{name}")
            }
            _ => message,
        };
        CliError::Usage(message)
    }
}

/// What a verb returns.
pub type Outcome = Result<(), CliError>;

const MODEL: Spec = (&["m", "model"], Kind::Value);
const FORMAT: Spec = (&["format", "o"], Kind::Value);

/// Parses a verb's arguments with `--model` accepted everywhere.
fn parse(args: &[String], spec: &[Spec]) -> Result<Parsed, CliError> {
    let mut all = spec.to_vec();
    all.push(MODEL);
    Ok(Parsed::parse(args, &all)?)
}

/// What `juju help` prints.
const HELP: &str = "\
Usage: juju <command> [flags]

Commands:
    add-model, add-unit, bootstrap, config, debug-log, deploy, destroy-model, exec,
    integrate (relate), kill-controller, refresh (upgrade-charm), remove-application,
    remove-relation, remove-unit, resolve (resolved), run, show-unit, status, trust,
    version, wait

A model added on a Kubernetes cloud (`add-model <name> microk8s`, or `k8s`,
`kubernetes`) serves the Kubernetes API to its charms and routes its Services.

Test controls (local model only):
    advance-clock <duration>                    move the model's clock ahead
    set-seed <n> | --reset                      fix the order units run hooks in
    fail-next-hook <unit>                       make the unit's next hook fail
    kill-workload <unit> <container> <service>  SIGKILL a workload service
    remove-unit <unit> --force --no-wait        remove a unit without its hooks
    crash-unit <unit>                           lose a unit's machine: SIGKILL
                                                its workloads, no hooks

Every command takes --model (-m); the default is $JUJU_MODEL, else the last
add-model, else \"local\".";

/// Runs `juju <args>`; `args` excludes the program name.
pub fn main(args: Vec<String>) -> ExitCode {
    let Some((verb, rest)) = args.split_first() else {
        eprintln!("{HELP}");
        return ExitCode::from(2);
    };
    let result = match verb.as_str() {
        "deploy" => apps::deploy(rest),
        "add-unit" => apps::add_unit(rest),
        "remove-unit" => apps::remove_unit(rest),
        "remove-application" => apps::remove_application(rest),
        "refresh" | "upgrade-charm" => apps::refresh(rest),
        "trust" => apps::trust(rest),
        "integrate" | "relate" => apps::integrate(rest),
        "remove-relation" => apps::remove_relation(rest),
        "config" => apps::config(rest),
        "resolve" | "resolved" => apps::resolve(rest),
        "status" => show::status(rest),
        "show-unit" => show::show_unit(rest),
        "version" => show::version(rest),
        "run" => tasks::run(rest),
        "exec" => tasks::exec(rest),
        "debug-log" => logs::debug_log(rest),
        "bootstrap" => models::bootstrap(rest),
        "add-model" => models::add_model(rest),
        "destroy-model" => models::destroy_model(rest),
        "kill-controller" => models::kill_controller(rest),
        "wait" => models::wait(rest),
        "advance-clock" => controls::advance_clock(rest),
        "set-seed" => controls::set_seed(rest),
        "fail-next-hook" => controls::fail_next_hook(rest),
        "kill-workload" => controls::kill_workload(rest),
        "crash-unit" => controls::crash_unit(rest),
        "_daemon" => models::daemon(rest),
        crate::pebbles::VERB => models::pebble(rest),
        "help" | "--help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        other => Err(CliError::Usage(format!(
            "juju: {other:?} is not a juju command. See \"juju --help\"."
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(m)) => {
            eprintln!("ERROR {m}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(m)) => {
            eprintln!("ERROR {m}");
            ExitCode::from(1)
        }
        Err(CliError::Exit(code)) => ExitCode::from(code),
    }
}

/// `k=v` into its parts.
fn pair(kv: &str) -> Result<(String, String), CliError> {
    kv.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| CliError::Usage(format!("expected \"key=value\", got {kv:?}")))
}

/// A Go duration flag (`--timeout 10m`, `--wait 60s`) in seconds.
fn seconds(p: &Parsed, flag: &str, default: u64) -> Result<u64, CliError> {
    match p.value(flag) {
        None => Ok(default),
        Some(v) => crate::clock::parse_duration(v)
            .ok_or_else(|| CliError::Usage(format!("invalid duration {v:?} for --{flag}"))),
    }
}

/// Renders a value as YAML (Juju's default for structured output).
fn yaml(value: &serde_json::Value) -> String {
    crate::tools::Format::Yaml.render(value)
}
