//! Verbs that show the model: `status`, `show-unit` and `version`.

use super::{parse, yaml, CliError, Outcome, Target, FORMAT};
use crate::api::Request;
use crate::tools::Kind;
use serde_json::json;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The Juju version the local model speaks.
const VERSION: &str = "3.6.4";

/// Set when SIGINT arrives during `juju status --watch`.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// `juju status [--format tabular|json|yaml] [--relations] [--watch <interval>]`:
/// with `--watch`, the status again every interval (the screen cleared first
/// on a terminal) until SIGINT, which ends it with success.
pub fn status(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            FORMAT,
            (&["relations"], Kind::Bool),
            (&["color", "no-color"], Kind::Bool),
            (&["utc"], Kind::Bool),
            (&["watch"], Kind::Value),
        ],
    )?;
    let target = Target::from(&p)?;
    let format = p.value("format").unwrap_or("tabular");
    if !matches!(format, "tabular" | "json" | "yaml") {
        return Err(invalid_format(format));
    }
    let request = Request::Status {
        format: format.into(),
        relations: p.flag("relations"),
    };
    let Some(every) = p.value("watch") else {
        print!("{}", target.call(&request)?.as_str().unwrap_or_default());
        return Ok(());
    };
    let every = crate::clock::parse_duration_ms(every)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "invalid value {every:?} for option --watch: time: invalid duration {every:?}"
            ))
        })?;
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        )
    };
    // SAFETY: isatty only reads the descriptor's state.
    let terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
    let mut out = std::io::stdout();
    while !INTERRUPTED.load(Ordering::SeqCst) {
        let text = target.call(&request)?;
        if terminal {
            print!("\x1b[H\x1b[2J");
        }
        print!("{}", text.as_str().unwrap_or_default());
        let _ = out.flush();
        let mut slept = 0;
        while slept < every && !INTERRUPTED.load(Ordering::SeqCst) {
            let step = (every - slept).min(50);
            std::thread::sleep(Duration::from_millis(step));
            slept += step;
        }
    }
    Ok(())
}

/// Juju's refusal of an output format it does not know.
fn invalid_format(format: &str) -> CliError {
    CliError::Usage(format!(
        "invalid value {format:?} for option --format: unknown format {format:?}"
    ))
}

/// `juju show-unit <unit>... [--format yaml|json] [--endpoint <name>]
/// [--related-unit <unit>] [--app]`.
pub fn show_unit(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            FORMAT,
            (&["endpoint"], Kind::Value),
            (&["related-unit"], Kind::Value),
            (&["app"], Kind::Bool),
        ],
    )?;
    if p.positional.is_empty() {
        return Err(CliError::Usage("an unit name must be supplied".into()));
    }
    let invalid: Vec<&str> = p
        .positional
        .iter()
        .filter(|u| !valid_unit(u))
        .map(String::as_str)
        .collect();
    match invalid.as_slice() {
        [] => {}
        [one] => return Err(CliError::Usage(format!("unit name {one} not valid"))),
        many => {
            return Err(CliError::Usage(format!(
                "unit names {} not valid",
                many.join(", ")
            )))
        }
    }
    if let Some(related) = p.value("related-unit").filter(|u| !valid_unit(u)) {
        return Err(CliError::Usage(format!(
            "related unit name {related} not valid"
        )));
    }
    let format = p.value("format").unwrap_or("yaml");
    if !matches!(format, "yaml" | "json") {
        return Err(invalid_format(format));
    }
    let answer = Target::from(&p)?.call(&Request::ShowUnit {
        units: p.positional.clone(),
        format: format.into(),
        endpoint: p.value("endpoint").map(str::to_string),
        related_unit: p.value("related-unit").map(str::to_string),
        app_only: p.flag("app"),
    })?;
    print!("{}", answer.as_str().unwrap_or_default());
    Ok(())
}

/// Whether `name` is a unit name (`app/N`, or `app/leader` as the local
/// model also takes).
fn valid_unit(name: &str) -> bool {
    let Some((app, n)) = name.split_once('/') else {
        return false;
    };
    let app_ok = app.starts_with(|c: char| c.is_ascii_lowercase())
        && app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !app.ends_with('-');
    app_ok && (n == "leader" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// `juju version [--format json|yaml] [--all]`.
pub fn version(args: &[String]) -> Outcome {
    let p = parse(args, &[FORMAT, (&["all"], Kind::Bool)])?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let full = format!("{VERSION}-genericlinux-{arch}");
    let all = json!({
        "version": full,
        "git-commit": "",
        "git-tree-state": "clean",
        "compiler": "rustc",
        "official": false,
    });
    match (p.value("format"), p.flag("all")) {
        (Some("json"), true) => println!("{all}"),
        (Some("json"), false) => println!("{}", json!(full)),
        (Some("yaml"), true) => print!("{}", yaml(&all)),
        _ => println!("{full}"),
    }
    Ok(())
}
