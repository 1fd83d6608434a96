//! Local model benchmarks:
//! - hook-tool round trip: `is-leader` through the shim and the agent, timed
//!   inside a hook, beside `/bin/true` run the same way (the cost of starting any
//!   process); target median under 1 ms;
//! - hooks per second for an empty Rust charm (`empty-charm`), through the whole
//!   path: resolver, view, process, commit; then again with 1 GiB more of the
//!   controller's memory in use, as a large model's controller has: starting
//!   a hook's process must not cost more in a larger controller (target: the
//!   rate within 1.2×); and in a model of 1,000 other applications, each with
//!   a peer relation holding 1 KB per unit, which the unit has nothing to do
//!   with: the agent's work per hook must not grow with the model (target:
//!   the rate within 1.2×).
//!
//! Run: `cargo bench -p local-model --bench agent`.

#![allow(clippy::unwrap_used)]

use local_model::agent::Agent;
use local_model::model::{Application, End, Model, RelationRecord, Unit, Versioned};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CALLS: u32 = 200;

/// A charm whose update-status times `CALLS` runs of a command.
const TIMER: &str = r#"#!/bin/sh
[ "$JUJU_HOOK_NAME" = update-status ] || exit 0
for cmd in is-leader /bin/true; do
  start=$(date +%s%N)
  i=0
  while [ $i -lt CALLS ]; do $cmd >/dev/null; i=$((i + 1)); done
  end=$(date +%s%N)
  echo "$cmd $((end - start))" >> times
done
"#;

fn model(charm_dir: &Path) -> Model {
    let mut app = Application {
        charm_dir: charm_dir.to_path_buf(),
        ..Application::default()
    };
    app.units.insert(
        "bench/0".into(),
        Unit {
            address: "127.0.9.1".into(),
            ..Unit::default()
        }
        .into(),
    );
    app.leader = Some("bench/0".into());
    let mut m = Model {
        name: "bench".into(),
        uuid: "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13".into(),
        juju_version: "3.6.4".into(),
        ..Model::default()
    };
    m.applications.insert("bench".into(), app.into());
    m
}

/// Adds `n` applications of three units, each with a peer relation whose
/// unit bags hold 1 KB.
fn crowd(m: &mut Model, n: usize) {
    for i in 0..n {
        let name = format!("other{i}");
        let mut app = Application::default();
        let mut relation = RelationRecord {
            id: 10_000 + i as u64,
            ends: vec![End {
                app: name.clone(),
                endpoint: "peers".into(),
            }],
            ..RelationRecord::default()
        };
        for u in 0..3 {
            let unit = format!("{name}/{u}");
            app.units.insert(unit.clone(), Unit::default().into());
            relation.scope.insert(unit.clone());
            let mut bag = charm::Databag::new();
            bag.insert("data".into(), "x".repeat(1024));
            relation.unit_bags.insert(
                unit,
                Versioned {
                    data: bag,
                    version: 1,
                },
            );
        }
        m.applications.insert(name, app.into());
        m.relations.push(relation.into());
    }
}

fn settle(agent: &Agent, m: &mut Model, dir: &Path) -> u32 {
    let mut n = 0;
    while let Some(run) = agent.run_next(m, "bench/0", dir, &[]).unwrap() {
        assert!(run.ok, "{}: {}", run.event.hook_name(), run.output);
        n += 1;
    }
    n
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let scratch = tempfile::TempDir::with_prefix("lm-bench-").unwrap();
    let root = scratch.path();
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "local-model",
            "--bin",
            "hook-tool",
            "-p",
            "example-charm",
            "--bin",
            "empty-charm",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let shim = target.join("hook-tool");
    let agent = Agent::start(&root.join("agent.socket"), &root.join("tools"), &shim).unwrap();

    // Round trip.
    let timer: PathBuf = root.join("timer");
    std::fs::create_dir_all(&timer).unwrap();
    std::fs::write(
        timer.join("dispatch"),
        TIMER.replace("CALLS", &CALLS.to_string()),
    )
    .unwrap();
    std::fs::set_permissions(
        timer.join("dispatch"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut m = model(&timer);
    settle(&agent, &mut m, &timer);
    for _ in 0..7 {
        m.status_tick += 1;
        settle(&agent, &mut m, &timer);
    }
    let times = std::fs::read_to_string(timer.join("times")).unwrap();
    let per_call = |cmd: &str| -> f64 {
        median(
            times
                .lines()
                .filter_map(|l| l.strip_prefix(cmd)?.trim().parse::<f64>().ok())
                .map(|ns| ns / f64::from(CALLS) / 1e6)
                .collect(),
        )
    };
    let (tool, baseline) = (per_call("is-leader "), per_call("/bin/true "));
    println!("hook-tool round trip (is-leader through the shim and agent, {CALLS} calls a hook, median of 7 hooks)");
    println!("  is-leader   {tool:.3} ms");
    println!("  /bin/true   {baseline:.3} ms  (starting any process here)");
    println!(
        "  ratio {:.2}x; target median under 1 ms: {}",
        tool / baseline,
        if tool < 1.0 { "met" } else { "MISSED" }
    );

    // Hooks per second, empty Rust charm.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(target.join("empty-charm"), empty.join("dispatch")).unwrap();
    let mut m = model(&empty);
    let started = Instant::now();
    let mut hooks = settle(&agent, &mut m, &empty);
    for _ in 0..300 {
        m.status_tick += 1;
        hooks += settle(&agent, &mut m, &empty);
    }
    let took: Duration = started.elapsed();
    let small = f64::from(hooks) / took.as_secs_f64();
    println!(
        "hooks per second, empty Rust charm: {small:.0} ({hooks} hooks in {:.2} s)",
        took.as_secs_f64()
    );

    // The same in a large model the unit has nothing to do with.
    let mut big = m.clone();
    crowd(&mut big, 1000);
    compare(
        small,
        "in a model of 1,000 other applications",
        rate(&agent, &mut big, &empty),
    );
    drop(big);

    // The same with 1 GiB more in use, every page touched.
    let ballast = vec![1u8; 1 << 30];
    let touched = (ballast
        .iter()
        .step_by(4096)
        .map(|b| usize::from(*b))
        .sum::<usize>()
        * 4096)
        >> 20;
    compare(
        small,
        &format!("with {touched} MiB more in the controller"),
        rate(&agent, &mut m, &empty),
    );
}

/// 300 rounds of update-status on `m`: hooks a second, hooks, seconds.
fn rate(agent: &Agent, m: &mut Model, charm: &Path) -> (f64, u32, f64) {
    let started = Instant::now();
    let mut hooks = 0;
    for _ in 0..300 {
        m.status_tick += 1;
        hooks += settle(agent, m, charm);
    }
    let took = started.elapsed().as_secs_f64();
    (f64::from(hooks) / took, hooks, took)
}

/// Prints a rate measured `what` against the `small` one, with the target.
fn compare(small: f64, what: &str, (rate, hooks, took): (f64, u32, f64)) {
    println!("  {what}: {rate:.0} ({hooks} hooks in {took:.2} s)");
    let ratio = small / rate;
    let verdict = if ratio <= 1.2 { "met" } else { "MISSED" };
    println!("  ratio {ratio:.2}x; target within 1.2x: {verdict}");
}
