//! The benchmark report: one run measures pooling and connection set-up
//! (pgbench straight to PostgreSQL and through PgBouncer), the hook cost of
//! the PgBouncer charm beside a Python `ops` provider, the time from
//! `integrate` to working credentials through 1, 3 and 5 PgBouncer units,
//! the charm with many client relations, and what clients see of changes
//! under load (the `under_load` end-to-end test's figures); it writes
//! `BENCHMARKS.md` at the
//! workspace root, the figures as `docs/benchmarks/results.json` and the
//! plots (`docs/benchmarks/*.png`, drawn by `scripts/bench-plots` with
//! matplotlib in the test charms' venv).
//!
//! Run with `cargo bench -p e2e --bench report`. `REPORT_SECONDS` sets each
//! pgbench run's length (10 by default); `REPORT_CLIENTS` the client
//! relation counts (`10,100,1000` by default).
//! `REPORT_SECTIONS=changes` measures only the changes under load again and
//! replaces that section of `BENCHMARKS.md` and its part of `results.json`;
//! `REPORT_SECTIONS=scale` measures only the many clients and prints their
//! rows, with where the hooks' time goes while they are related.

#![allow(clippy::unwrap_used)]

mod changes;
mod markdown;
mod model;
mod pooling;

use std::process::Command;
use std::time::Instant;

/// What plots need beside the test charms' packages, pinned.
const MATPLOTLIB: &str = "matplotlib==3.9.2";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let counts: Vec<usize> = std::env::var("REPORT_CLIENTS")
        .unwrap_or_else(|_| "10,100,1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    match std::env::var("REPORT_SECTIONS").as_deref() {
        Ok("changes") => return changes_only(),
        Ok("scale") => return scale_only(&counts),
        _ => {}
    }
    let started = Instant::now();
    let seconds: u64 = env_or("REPORT_SECONDS", 10);
    let files = pooling::raise_file_limit();
    let machine = markdown::Machine::probe(files);
    let mut sections = markdown::Sections::default();
    eprintln!("pooling and connection set-up ({seconds} s per pgbench run)");
    let pooled = sections.time("pooling and connection set-up", || pooling::run(seconds));
    eprintln!("the charms on the local model");
    let modelled = sections.time("the charms on the local model", || model::run(&counts));
    eprintln!("changes under load");
    let changed = sections.time("changes under load", changes::run);
    let took = started.elapsed();
    let root = e2e::workspace();
    let out = root.join("docs/benchmarks");
    std::fs::create_dir_all(&out).unwrap();
    let results = serde_json::json!({
        "pooling": pooled.pooled.iter().map(|p| {
            let mut v = p.run.to_json();
            v["workload"] = p.workload.into();
            v["target"] = p.target.name().into();
            v["clients"] = p.clients.into();
            v
        }).collect::<Vec<_>>(),
        "setup": pooled.setup.iter().map(|s| {
            let mut v = s.run.to_json();
            v["what"] = s.what.into();
            v
        }).collect::<Vec<_>>(),
        "model": modelled.to_json(),
        "changes": changed.to_json(),
        "seconds": took.as_secs_f64(),
        "sections": sections.to_json(),
    });
    let json_path = out.join("results.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&results).unwrap() + "\n",
    )
    .unwrap();
    let text = markdown::render(
        &machine.finish(),
        &pooled,
        &modelled,
        &changed,
        &sections,
        &counts,
    );
    std::fs::write(root.join("BENCHMARKS.md"), text).unwrap();
    plot(&root, &json_path, &out);
    eprintln!(
        "wrote BENCHMARKS.md and docs/benchmarks/ in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Measures the many-clients section alone and prints its rows (the file
/// is left as it is).
fn scale_only(counts: &[usize]) {
    pooling::raise_file_limit();
    let started = Instant::now();
    eprintln!("many clients, alone");
    let rows = model::scale_only(counts);
    for r in &rows {
        println!("{}", r.table_row());
    }
    eprintln!("measured in {:.0} s", started.elapsed().as_secs_f64());
}

/// Measures the changes under load again and replaces their section of
/// `BENCHMARKS.md` and their part of `results.json`.
fn changes_only() {
    let root = e2e::workspace();
    eprintln!("changes under load");
    let changed = changes::run();
    let json_path = root.join("docs/benchmarks/results.json");
    let mut results: serde_json::Value = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    results["changes"] = changed.to_json();
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&results).unwrap() + "\n",
    )
    .unwrap();
    let md = root.join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&md).unwrap_or_default();
    let section = markdown::changes_section(&changed, true);
    std::fs::write(&md, markdown::splice_changes(&text, &section)).unwrap();
    eprintln!("wrote the changes section of BENCHMARKS.md");
}

/// Draws the plots with matplotlib, installed into the test charms' venv.
fn plot(root: &std::path::Path, json: &std::path::Path, out: &std::path::Path) {
    let python = e2e::ops_python();
    let pip = Command::new(&python)
        .args(["-m", "pip", "install", "-q", MATPLOTLIB])
        .status()
        .expect("pip runs");
    assert!(pip.success(), "pip install {MATPLOTLIB} failed");
    let ok = Command::new(&python)
        .arg(root.join("scripts/bench-plots"))
        .arg(json)
        .arg(out)
        .status()
        .expect("the plot script runs")
        .success();
    assert!(ok, "scripts/bench-plots failed");
}
