//! `juju run` (actions) and `juju exec` (commands in a hook context), with
//! the output Juju 3 prints: the results as YAML by default, or each unit's
//! task in `--format json|yaml`; a failed task ends with Juju's "the following
//! task failed" and exit code 1.

use super::{pair, parse, seconds, yaml, CliError, Outcome, Target, FORMAT};
use crate::api::Request;
use crate::tools::Kind;
use charm::backend::JsonMap;
use serde_json::{json, Map, Value};

/// Puts `a.b.c = v` into nested maps.
fn insert_dotted(map: &mut JsonMap, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            map.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

/// Prints a finished task in the asked format; an error if it failed.
fn report(task: &Value, format: Option<&str>) -> Outcome {
    let unit = task["unit"].as_str().unwrap_or_default().to_string();
    match format {
        Some("json") => println!("{}", json!({ unit: task })),
        Some("yaml") => print!("{}", yaml(&json!({ unit: task }))),
        None | Some("plain") => {
            let mut results = task["results"].as_object().cloned().unwrap_or_default();
            let stdout = results.remove("stdout");
            let stderr = results.remove("stderr");
            results.remove("return-code");
            for line in task["log"].as_array().into_iter().flatten() {
                eprintln!("{}", line.as_str().unwrap_or_default());
            }
            if !results.is_empty() {
                print!("{}", yaml(&Value::Object(results)));
            }
            if let Some(Value::String(s)) = stdout {
                print!("{s}");
            }
            if let Some(Value::String(s)) = stderr {
                eprint!("{s}");
            }
        }
        Some(f) => return Err(CliError::Usage(format!("invalid format {f:?}"))),
    }
    let code = task["results"]["return-code"].as_i64().unwrap_or(0);
    if task["status"] == "completed" && code == 0 {
        return Ok(());
    }
    let mut message = format!(
        "ERROR the following task failed:\n id {} with return code {code}",
        task["id"]
    );
    if let Some(m) = task["message"].as_str() {
        message.push_str(&format!("\n message: {m}"));
    }
    eprintln!("{message}\n\nuse 'juju show-task' to inspect the failure\n");
    Err(CliError::Exit(1))
}

/// `juju run <unit> <action> [k=v ...] [--params file] [--format ...] [--wait 60s]`.
pub fn run(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            FORMAT,
            (&["params"], Kind::Value),
            (&["wait"], Kind::Value),
            (&["string-args"], Kind::Bool),
            (&["background"], Kind::Bool),
            (&["color", "no-color"], Kind::Bool),
        ],
    )?;
    if p.flag("background") {
        return Err(CliError::Usage(
            "--background is not supported by the local model".into(),
        ));
    }
    let [unit, action, kvs @ ..] = p.positional.as_slice() else {
        return Err(CliError::Usage(
            "expected <unit> <action> [key=value ...]".into(),
        ));
    };
    let mut params = JsonMap::new();
    if let Some(file) = p.value("params") {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Failed(format!("cannot read {file}: {e}")))?;
        match yaml_serde::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => params.extend(m),
            Ok(Value::Null) => {}
            _ => return Err(CliError::Failed(format!("{file} is not a YAML mapping"))),
        }
    }
    for kv in kvs {
        let (k, v) = pair(kv)?;
        let value = if p.flag("string-args") {
            Value::String(v)
        } else {
            yaml_serde::from_str::<Value>(&v).unwrap_or(Value::String(v))
        };
        insert_dotted(&mut params, &k, value);
    }
    let task = Target::from(&p)?.call(&Request::Run {
        unit: unit.clone(),
        action: action.clone(),
        params,
        wait: seconds(&p, "wait", 60)?,
    })?;
    report(&task, p.value("format"))
}

/// `juju exec --unit <unit> [--format ...] [--wait 5m] -- <command> [args ...]`.
pub fn exec(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            FORMAT,
            (&["u", "unit"], Kind::Value),
            (&["wait"], Kind::Value),
            (&["color", "no-color"], Kind::Bool),
        ],
    )?;
    let unit = p
        .value("u")
        .ok_or_else(|| CliError::Usage("--unit is required on the local model".into()))?;
    if unit.contains(',') {
        return Err(CliError::Usage("exec runs on one unit at a time".into()));
    }
    if p.positional.is_empty() {
        return Err(CliError::Usage("no commands specified".into()));
    }
    let task = Target::from(&p)?.call(&Request::Exec {
        unit: unit.to_string(),
        command: p.positional.join(" "),
        wait: seconds(&p, "wait", 300)?,
    })?;
    report(&task, p.value("format"))
}
