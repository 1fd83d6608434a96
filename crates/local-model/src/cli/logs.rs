//! `juju debug-log`: the units' `juju-log` lines, hook output and hook results,
//! read from the model's `debug.log`.

use super::{parse, CliError, Outcome, Target};
use crate::tools::Kind;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

const LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

/// Whether a line passes `--include` and `--level`.
fn wanted(line: &str, include: &[String], level: usize) -> bool {
    let entity = line.split(':').next().unwrap_or_default();
    let included = include.is_empty()
        || include.iter().any(|i| {
            let tag = format!("unit-{}", i.replace('/', "-"));
            entity == tag || entity.starts_with(&format!("{tag}-"))
        });
    let line_level = line
        .split_whitespace()
        .nth(2)
        .and_then(|l| LEVELS.iter().position(|x| *x == l))
        .unwrap_or(0);
    included && line_level >= level
}

/// `juju debug-log [--replay] [--no-tail] [-n N] [--include unit|app] [--level L]`.
pub fn debug_log(args: &[String]) -> Outcome {
    let p = parse(
        args,
        &[
            (&["replay"], Kind::Bool),
            (&["no-tail"], Kind::Bool),
            (&["tail"], Kind::Bool),
            (&["n", "lines", "limit"], Kind::Value),
            (&["i", "include"], Kind::Value),
            (&["l", "level"], Kind::Value),
            (&["color", "no-color"], Kind::Bool),
        ],
    )?;
    let target = Target::from(&p)?;
    let path = crate::store::debug_log_path(&target.dir);
    let level = match p.value("l") {
        None => 0,
        Some(l) => LEVELS
            .iter()
            .position(|x| x.eq_ignore_ascii_case(l))
            .ok_or_else(|| CliError::Usage(format!("invalid level {l:?}")))?,
    };
    let include: Vec<String> = p
        .values("i")
        .iter()
        .flat_map(|i| i.split(','))
        .map(str::to_string)
        .collect();
    let lines: Option<usize> = match p.value("n") {
        Some(n) => Some(
            n.parse()
                .map_err(|_| CliError::Usage(format!("invalid value {n:?} for --lines")))?,
        ),
        None if p.flag("replay") => None,
        None => Some(10),
    };
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
    let shown: Vec<&str> = text
        .lines()
        .filter(|l| wanted(l, &include, level))
        .collect();
    let skip = lines.map_or(0, |n| shown.len().saturating_sub(n));
    for line in &shown[skip..] {
        println!("{line}");
    }
    if p.flag("no-tail") {
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
            if wanted(line, &include, level) {
                println!("{line}");
            }
        }
    }
}
