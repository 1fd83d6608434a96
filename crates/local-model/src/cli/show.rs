//! Verbs that show the model: `status`, `show-unit` and `version`.

use super::{parse, yaml, CliError, Outcome, Target, FORMAT};
use crate::api::Request;
use crate::tools::Kind;
use serde_json::json;

/// The Juju version the local model speaks.
const VERSION: &str = "3.6.4";

/// `juju status [--format tabular|json|yaml] [--relations]`.
pub fn status(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            FORMAT,
            (&["relations"], Kind::Bool),
            (&["color", "no-color"], Kind::Bool),
            (&["watch"], Kind::Value),
        ],
    )?;
    let target = Target::from(&p)?;
    let format = p.value("format").unwrap_or("tabular");
    let table = match format {
        "tabular" => true,
        "json" | "yaml" => false,
        f => return Err(CliError::Usage(format!("invalid format {f:?}"))),
    };
    let answer = target.call(&Request::Status {
        table,
        relations: p.flag("relations"),
    })?;
    match format {
        "tabular" => print!("{}", answer.as_str().unwrap_or_default()),
        "json" => println!("{answer}"),
        _ => print!("{}", yaml(&answer)),
    }
    Ok(())
}

/// `juju show-unit <unit> [--format yaml|json]`.
pub fn show_unit(args: &[String]) -> Outcome {
    let p = parse(args, &[FORMAT])?;
    let [unit] = p.positional.as_slice() else {
        return Err(CliError::Usage("expected one unit name".into()));
    };
    let answer = Target::from(&p)?.call(&Request::ShowUnit { unit: unit.clone() })?;
    match p.value("format") {
        Some("json") => println!("{answer}"),
        None | Some("yaml") => print!("{}", yaml(&answer)),
        Some(f) => return Err(CliError::Usage(format!("invalid format {f:?}"))),
    }
    Ok(())
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
