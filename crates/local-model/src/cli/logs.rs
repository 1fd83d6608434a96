//! `juju debug-log`: the units' `juju-log` lines, hook output and hook results,
//! read from the model's `debug.log`, filtered as Juju filters them (a unit
//! named `unit-pg-0` or `pg/0`, an application by its name, a module and its
//! children, a level and those above).

use super::{parse, CliError, Outcome, Target};
use crate::tools::{Kind, Parsed};
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

/// The severities a line can have, least severe first.
const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

/// What `--include`, `--exclude`, the module options and `--level` let through.
struct Filter {
    include: Vec<Entity>,
    exclude: Vec<Entity>,
    include_module: Vec<String>,
    exclude_module: Vec<String>,
    level: usize,
}

/// An entity named on the command line: one unit (`unit-pg-0`, `pg/0`) or
/// every unit of an application (`pg`).
#[derive(Debug, PartialEq)]
enum Entity {
    Unit(String),
    Application(String),
}

impl Entity {
    fn parse(name: &str) -> Entity {
        if name.contains('/') {
            return Entity::Unit(format!("unit-{}", name.replace('/', "-")));
        }
        if let Some(app) = name.strip_prefix("application-") {
            return Entity::Application(app.into());
        }
        match name.strip_prefix("unit-") {
            Some(_) => Entity::Unit(name.into()),
            None => Entity::Application(name.into()),
        }
    }

    /// Whether a line's tag (`unit-pg-bouncer-0`) is this entity.
    fn matches(&self, tag: &str) -> bool {
        match self {
            Entity::Unit(u) => tag == u,
            Entity::Application(app) => tag
                .strip_prefix("unit-")
                .and_then(|t| t.rsplit_once('-'))
                .is_some_and(|(a, n)| a == app && n.bytes().all(|b| b.is_ascii_digit())),
        }
    }
}

/// Whether `module` is `prefix` or one of its children (`juju.worker` takes in
/// `juju.worker.uniter`).
fn in_module(module: &str, prefix: &str) -> bool {
    module == prefix
        || module
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

impl Filter {
    /// Whether a line (`<tag>: <time> <LEVEL> <module> <message>`) passes.
    fn wants(&self, line: &str) -> bool {
        let Some((tag, rest)) = line.split_once(": ") else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let level = fields
            .nth(1)
            .and_then(|l| LEVELS.iter().position(|x| *x == l))
            .unwrap_or(0);
        let module = fields.next().unwrap_or_default();
        (self.include.is_empty() || self.include.iter().any(|e| e.matches(tag)))
            && !self.exclude.iter().any(|e| e.matches(tag))
            && (self.include_module.is_empty()
                || self.include_module.iter().any(|m| in_module(module, m)))
            && !self.exclude_module.iter().any(|m| in_module(module, m))
            && level >= self.level
    }
}

/// A level as Juju reads it (any case; `WARN` for `WARNING`).
fn parse_level(l: &str) -> Result<usize, CliError> {
    let upper = l.to_ascii_uppercase();
    let upper = if upper == "WARN" {
        "WARNING".into()
    } else {
        upper
    };
    LEVELS.iter().position(|x| *x == upper).ok_or_else(|| {
        let all: Vec<String> = LEVELS.iter().map(|x| format!("{x:?}")).collect();
        CliError::Usage(format!(
            "level value {l:?} is not one of {}",
            all.join(", ")
        ))
    })
}

/// A whole-number option.
fn count(p: &Parsed, flag: &str) -> Result<Option<usize>, CliError> {
    p.value(flag)
        .map(|n| {
            n.parse().map_err(|_| {
                CliError::Usage(format!(
                    "invalid value {n:?} for option --{flag}: strconv.ParseUint: parsing {n:?}: \
                     invalid syntax"
                ))
            })
        })
        .transpose()
}

/// `juju debug-log`: the last lines (`-n`, 10 by default; all with `--replay`)
/// that pass the filters (`--include`/`--exclude` a unit or application,
/// `--include-module`/`--exclude-module`, `--level` and above), then new ones
/// as they come unless `--no-tail`; `--limit` stops after that many lines.
pub fn debug_log(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            (&["replay"], Kind::Bool),
            (&["no-tail"], Kind::Bool),
            (&["tail"], Kind::Bool),
            (&["n", "lines"], Kind::Value),
            (&["limit"], Kind::Value),
            (&["i", "include"], Kind::Value),
            (&["x", "exclude"], Kind::Value),
            (&["include-module"], Kind::Value),
            (&["exclude-module"], Kind::Value),
            (&["l", "level"], Kind::Value),
            (&["color", "no-color"], Kind::Bool),
            (&["utc"], Kind::Bool),
        ],
    )?;
    let target = Target::from(&p)?;
    let path = crate::store::debug_log_path(&target.dir);
    let list = |flag: &str| -> Vec<String> {
        p.values(flag)
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    };
    let filter = Filter {
        include: list("i").iter().map(|e| Entity::parse(e)).collect(),
        exclude: list("x").iter().map(|e| Entity::parse(e)).collect(),
        include_module: list("include-module"),
        exclude_module: list("exclude-module"),
        level: p.value("l").map(parse_level).transpose()?.unwrap_or(0),
    };
    let lines = match count(&p, "n")? {
        _ if p.flag("replay") => None,
        Some(n) => Some(n),
        None => Some(10),
    };
    let mut left = count(&p, "limit")?;
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(_) if target.dir.exists() => crate::store::private_file(&path)
            .and_then(|_| std::fs::File::open(&path))
            .map_err(|e| CliError::Failed(e.to_string()))?,
        Err(_) => {
            return Err(CliError::Failed(format!(
                "model {:?} not found",
                target.name
            )))
        }
    };
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))?;
    let shown: Vec<&str> = text.lines().filter(|l| filter.wants(l)).collect();
    let skip = lines.map_or(0, |n| shown.len().saturating_sub(n));
    for line in &shown[skip..] {
        if left == Some(0) {
            return Ok(());
        }
        println!("{line}");
        left = left.map(|n| n - 1);
    }
    if p.flag("no-tail") || left == Some(0) {
        return Ok(());
    }
    let mut offset = text.len() as u64;
    let mut partial = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(mut f) = std::fs::File::open(&path) else {
            return Ok(());
        };
        let mut more = String::new();
        if f.seek(SeekFrom::Start(offset)).is_err() || f.read_to_string(&mut more).is_err() {
            continue;
        }
        offset += more.len() as u64;
        partial.push_str(&more);
        while let Some(at) = partial.find('\n') {
            let line: String = partial.drain(..=at).collect();
            let line = line.trim_end_matches('\n');
            if filter.wants(line) {
                println!("{line}");
                left = left.map(|n| n.saturating_sub(1));
                if left == Some(0) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str], modules: &[&str], level: &str) -> Filter {
        Filter {
            include: include.iter().map(|e| Entity::parse(e)).collect(),
            exclude: exclude.iter().map(|e| Entity::parse(e)).collect(),
            include_module: modules.iter().map(|m| m.to_string()).collect(),
            exclude_module: Vec::new(),
            level: parse_level(level).unwrap(),
        }
    }

    const PG: &str = "unit-pg-0: 12:00:00 INFO juju.worker.uniter.operation ran \"start\" hook";
    const PGB: &str = "unit-pg-bouncer-1: 12:00:01 WARNING unit.pg-bouncer/1.start oops";

    #[test]
    fn units_are_named_three_ways_and_applications_by_name() {
        for name in ["unit-pg-0", "pg/0", "pg"] {
            let f = filter(&[name], &[], &[], "TRACE");
            assert!(f.wants(PG), "{name}");
            assert!(!f.wants(PGB), "{name}");
        }
        assert!(filter(&["pg-bouncer"], &[], &[], "DEBUG").wants(PGB));
        assert!(!filter(&[], &["pg-bouncer/1"], &[], "DEBUG").wants(PGB));
        assert!(filter(&[], &["pg-bouncer/1"], &[], "DEBUG").wants(PG));
    }

    #[test]
    fn levels_and_modules_filter() {
        assert!(!filter(&[], &[], &[], "warning").wants(PG));
        assert!(filter(&[], &[], &[], "WARN").wants(PGB));
        assert!(filter(&[], &[], &["juju.worker"], "INFO").wants(PG));
        assert!(!filter(&[], &[], &["juju.work"], "INFO").wants(PG));
        assert!(!filter(&[], &[], &["juju.worker"], "INFO").wants(PGB));
        let Err(CliError::Usage(m)) = parse_level("loud") else {
            panic!("loud is no level");
        };
        assert_eq!(
            m,
            "level value \"loud\" is not one of \"TRACE\", \"DEBUG\", \"INFO\", \"WARNING\", \
             \"ERROR\", \"CRITICAL\""
        );
    }
}
