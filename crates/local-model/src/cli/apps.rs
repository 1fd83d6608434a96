//! Verbs that change applications, units and relations: `deploy`, `add-unit`,
//! `remove-unit`, `remove-application`, `refresh`, `integrate`,
//! `remove-relation`, `config` and `resolve`.

use super::{pair, parse, yaml, CliError, Outcome, Target, FORMAT};
use crate::api::Request;
use crate::tools::Kind;
use serde_json::Value;
use std::path::PathBuf;

/// Flags Juju takes that mean nothing on one machine; accepted and ignored
/// (but `remove-unit` and `remove-application` act on `--force`).
const IGNORED: &[crate::tools::Spec] = &[
    (&["base"], Kind::Value),
    (&["channel"], Kind::Value),
    (&["revision"], Kind::Value),
    (&["constraints"], Kind::Value),
    (&["to"], Kind::Value),
    (&["bind"], Kind::Value),
    (&["storage"], Kind::Value),
    (&["attach-storage"], Kind::Value),
    (&["force"], Kind::Bool),
    (&["no-prompt"], Kind::Bool),
    (&["destroy-storage"], Kind::Bool),
];

/// `--no-wait`, which `remove-unit` and `remove-application` take with `--force`.
const NO_WAIT: crate::tools::Spec = (&["no-wait"], Kind::Bool);

/// `--force` (hooks that fail are skipped) and `--no-wait` (with `--force`: no
/// hooks run at all, as when a machine is lost).
fn removal(p: &crate::tools::Parsed) -> Result<(bool, bool), CliError> {
    let (force, no_wait) = (p.flag("force"), p.flag("no-wait"));
    if no_wait && !force {
        return Err(CliError::Usage(
            "--no-wait without --force not valid".into(),
        ));
    }
    Ok((force, no_wait))
}

fn spec(own: &[crate::tools::Spec]) -> Vec<crate::tools::Spec> {
    own.iter().chain(IGNORED).copied().collect()
}

fn count(p: &crate::tools::Parsed, default: u32) -> Result<u32, CliError> {
    match p.value("n") {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| CliError::Usage(format!("invalid value {v:?} for -n"))),
    }
}

/// `juju deploy <charm> [app] [-n N] [--config k=v|file ...] [--trust]
/// [--resource <name>=<dir> ...]`: the charm is a built charm directory or a
/// `.charm` file; a resource is a workload image's root filesystem.
pub fn deploy(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &spec(&[
            (&["n", "num-units"], Kind::Value),
            (&["config"], Kind::Value),
            (&["trust"], Kind::Bool),
            (&["resource"], Kind::Value),
        ]),
    )?;
    let (charm, app) = match p.positional.as_slice() {
        [charm] => (charm, None),
        [charm, app] => (charm, Some(app.clone())),
        _ => {
            return Err(CliError::Usage(
                "expected <charm> [application name] (a .charm file or a built charm \
                 directory)"
                    .into(),
            ))
        }
    };
    let charm = std::fs::canonicalize(charm)
        .map_err(|e| CliError::Failed(format!("cannot read charm {charm:?}: {e}")))?;
    let files =
        crate::controller::read_built(&charm).map_err(|e| CliError::Failed(e.to_string()))?;
    let app = app.unwrap_or_else(|| files.meta.name.clone());
    let mut config = Vec::new();
    for c in p.values("config") {
        if c.contains('=') {
            config.push(pair(c)?);
        } else {
            config.extend(config_file(c, &app)?);
        }
    }
    eprintln!(
        "Located local charm {:?}, revision 0\nDeploying {app:?} from local charm {:?}, revision 0",
        files.meta.name, files.meta.name
    );
    Target::from(&p)?.call(&Request::Deploy {
        charm,
        app,
        units: count(&p, 1)?,
        config,
        trust: p.flag("trust"),
        resources: resources(&p)?,
    })?;
    Ok(())
}

/// Each `--resource <name>=<dir>`, the directory made absolute (the
/// controller may run elsewhere).
fn resources(p: &crate::tools::Parsed) -> Result<Vec<(String, PathBuf)>, CliError> {
    p.values("resource")
        .iter()
        .map(|r| {
            let (name, dir) = pair(r)?;
            let dir = std::fs::canonicalize(&dir)
                .map_err(|e| CliError::Failed(format!("cannot read resource {name}={dir}: {e}")))?;
            Ok((name, dir))
        })
        .collect()
}

/// A `--config` YAML file: `{app: {key: value}}` (or a flat mapping).
fn config_file(path: &str, app: &str) -> Result<Vec<(String, String)>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Failed(format!("cannot read {path}: {e}")))?;
    let value: Value = yaml_serde::from_str(&text)
        .map_err(|e| CliError::Failed(format!("invalid config file {path}: {e}")))?;
    let map = value
        .get(app)
        .and_then(Value::as_object)
        .or(value.as_object())
        .cloned()
        .unwrap_or_default();
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, s)
        })
        .collect())
}

/// `juju add-unit <app> [-n N]`.
pub fn add_unit(args: &[String]) -> Outcome {
    let p = parse(args, &spec(&[(&["n", "num-units"], Kind::Value)]))?;
    let [app] = p.positional.as_slice() else {
        return Err(CliError::Usage("expected one application name".into()));
    };
    Target::from(&p)?.call(&Request::AddUnit {
        app: app.clone(),
        units: count(&p, 1)?,
    })?;
    Ok(())
}

/// `juju refresh <app> --path <charm>` (or `--switch <charm>`): the
/// application moves to another built charm (a `.charm` file or a directory);
/// each unit runs upgrade-charm.
pub fn refresh(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &spec(&[(&["path"], Kind::Value), (&["switch"], Kind::Value)]),
    )?;
    let [app] = p.positional.as_slice() else {
        return Err(CliError::Usage("expected one application name".into()));
    };
    let Some(path) = p.value("path").or(p.value("switch")) else {
        return Err(CliError::Usage(
            "a built charm is needed: --path <charm> (a .charm file or a built charm \
             directory; charms from a store are not supported)"
                .into(),
        ));
    };
    let charm = std::fs::canonicalize(path)
        .map_err(|e| CliError::Failed(format!("cannot read charm {path:?}: {e}")))?;
    let files =
        crate::controller::read_built(&charm).map_err(|e| CliError::Failed(e.to_string()))?;
    let revision = Target::from(&p)?.call(&Request::Refresh {
        app: app.clone(),
        charm,
    })?;
    eprintln!(
        "Added local charm {:?}, revision {}, to the model",
        files.meta.name,
        revision.as_u64().unwrap_or_default()
    );
    Ok(())
}

/// `juju trust <app> [--scope cluster|namespace] [--remove]`: what the
/// application's Kubernetes service account may do (everything, or nothing
/// with `--remove`); its units see config-changed.
pub fn trust(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[(&["scope"], Kind::Value), (&["remove"], Kind::Bool)],
    )?;
    let [app] = p.positional.as_slice() else {
        return Err(CliError::Usage("expected one application name".into()));
    };
    if let Some(scope) = p
        .value("scope")
        .filter(|s| !matches!(*s, "cluster" | "namespace"))
    {
        return Err(CliError::Usage(format!(
            "--scope must be \"cluster\" or \"namespace\", not {scope:?}"
        )));
    }
    Target::from(&p)?.call(&Request::Trust {
        app: app.clone(),
        trusted: !p.flag("remove"),
    })?;
    Ok(())
}

/// `juju remove-unit <unit> ... [--force [--no-wait]]` or
/// `juju remove-unit <app> --num-units N`.
pub fn remove_unit(args: &[String]) -> Outcome {
    let p = parse(args, &spec(&[(&["num-units"], Kind::Value), NO_WAIT]))?;
    let (force, no_wait) = removal(&p)?;
    if p.positional.is_empty() {
        return Err(CliError::Usage("no units specified".into()));
    }
    let n = match p.value("num-units") {
        None => 0,
        Some(v) => v
            .parse()
            .map_err(|_| CliError::Usage(format!("invalid value {v:?} for --num-units")))?,
    };
    if n > 0 && p.positional.len() != 1 {
        return Err(CliError::Usage(
            "--num-units takes exactly one application name".into(),
        ));
    }
    let removed = Target::from(&p)?.call(&Request::RemoveUnit {
        names: p.positional.clone(),
        count: n,
        force,
        no_wait,
    })?;
    for u in removed.as_array().into_iter().flatten() {
        eprintln!("will remove unit {}", u.as_str().unwrap_or_default());
    }
    Ok(())
}

/// `juju remove-application <app> ... [--force [--no-wait]]`.
pub fn remove_application(args: &[String]) -> Outcome {
    let p = parse(args, &spec(&[NO_WAIT]))?;
    let (force, no_wait) = removal(&p)?;
    if p.positional.is_empty() {
        return Err(CliError::Usage("no application specified".into()));
    }
    Target::from(&p)?.call(&Request::RemoveApplication {
        apps: p.positional.clone(),
        force,
        no_wait,
    })?;
    for a in &p.positional {
        eprintln!("will remove application {a}");
    }
    Ok(())
}

fn two(p: &crate::tools::Parsed) -> Result<(String, String), CliError> {
    match p.positional.as_slice() {
        [a, b] => Ok((a.clone(), b.clone())),
        _ => Err(CliError::Usage(
            "expected two application names, each with an optional :endpoint".into(),
        )),
    }
}

/// `juju integrate a[:endpoint] b[:endpoint]`.
pub fn integrate(args: &[String]) -> Outcome {
    let p = parse(args, &spec(&[(&["via"], Kind::Value)]))?;
    let (a, b) = two(&p)?;
    Target::from(&p)?.call(&Request::Integrate { a, b })?;
    Ok(())
}

/// `juju remove-relation a[:endpoint] b[:endpoint]`.
pub fn remove_relation(args: &[String]) -> Outcome {
    let p = parse(args, &spec(&[]))?;
    let (a, b) = two(&p)?;
    Target::from(&p)?.call(&Request::RemoveRelation { a, b })?;
    Ok(())
}

/// `juju config <app> [k=v ...] [--reset k1,k2] [--format json|yaml] [key]`.
pub fn config(args: &[String]) -> Outcome {
    let p = parse(args, &spec(&[FORMAT, (&["reset"], Kind::Value)]))?;
    let Some((app, rest)) = p.positional.split_first() else {
        return Err(CliError::Usage("no application name specified".into()));
    };
    let set: Vec<(String, String)> = rest
        .iter()
        .filter(|a| a.contains('='))
        .map(|a| pair(a))
        .collect::<Result<_, _>>()?;
    let keys: Vec<&String> = rest.iter().filter(|a| !a.contains('=')).collect();
    let reset: Vec<String> = p
        .values("reset")
        .iter()
        .flat_map(|r| r.split(','))
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if !keys.is_empty() && (!set.is_empty() || keys.len() > 1) {
        return Err(CliError::Usage(
            "give either one key to read or key=value pairs to set".into(),
        ));
    }
    let changing = !set.is_empty() || !reset.is_empty();
    let config = Target::from(&p)?.call(&Request::Config {
        app: app.clone(),
        set,
        reset,
    })?;
    if changing {
        return Ok(());
    }
    if let Some(key) = keys.first() {
        let value = config["settings"]
            .get(key.as_str())
            .ok_or_else(|| CliError::Failed(format!("key {key:?} not found in {app:?} config")))?;
        match value.get("value") {
            Some(Value::String(s)) => println!("{s}"),
            Some(v) => println!("{v}"),
            None => println!(),
        }
        return Ok(());
    }
    match p.value("format") {
        Some("json") => println!("{config}"),
        None | Some("yaml") => print!("{}", yaml(&config)),
        Some(f) => return Err(CliError::Usage(format!("invalid format {f:?}"))),
    }
    Ok(())
}

/// `juju resolve <unit> [--no-retry]`.
pub fn resolve(args: &[String]) -> Outcome {
    let p = parse(args, &[(&["no-retry"], Kind::Bool), (&["all"], Kind::Bool)])?;
    let target = Target::from(&p)?;
    let units: Vec<String> = if p.flag("all") {
        let pending = target.call(&Request::Pending)?;
        pending["failed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f[0].as_str().map(str::to_string))
            .collect()
    } else {
        p.positional.clone()
    };
    if units.is_empty() {
        return Err(CliError::Usage("no unit specified".into()));
    }
    for unit in units {
        target.call(&Request::Resolve {
            unit,
            retry: !p.flag("no-retry"),
        })?;
    }
    Ok(())
}
