//! Dispatch cost of an empty hook: the release `dispatch` binary started the way
//! Juju starts it, for an event the charm ignores (no hook-tool calls), timed from
//! process start to exit. Reports the median and 90th percentile, the binary's
//! size and its peak memory, each beside `/bin/true` (the cost of starting any
//! process here) and, when present, `python3 -c pass` (the floor of any Python
//! charm, before it imports anything), measured in the same run, so the figures
//! read as ratios.
//!
//! Run: `cargo bench -p example-charm --bench dispatch` (`RUNS=N` to change the count).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET_MEDIAN: Duration = Duration::from_millis(3);

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs `cmd` once and waits with `wait4` to read the child's peak resident size.
fn run_once(cmd: &mut Command) -> Sample {
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; status and usage are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "non-zero exit: {status}"
    );
    std::mem::forget(child);
    Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
    }
}

fn measure(runs: usize, mut make: impl FnMut() -> Command) -> (Duration, Duration, i64) {
    for _ in 0..5 {
        run_once(&mut make());
    }
    let mut samples: Vec<Sample> = (0..runs).map(|_| run_once(&mut make())).collect();
    samples.sort_by_key(|s| s.wall);
    let median = samples[runs / 2].wall;
    let p90 = samples[runs * 9 / 10].wall;
    let rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    (median, p90, rss)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let binary = Path::new(env!("CARGO_BIN_EXE_example-charm"));
    let scratch = tempfile::TempDir::with_prefix("dispatch-bench-").expect("charm dir");
    let charm_dir = scratch.path();

    let dispatch = || {
        let mut c = Command::new(binary);
        c.env_clear()
            .current_dir(charm_dir)
            .env("PATH", "/usr/bin:/bin")
            .env("JUJU_UNIT_NAME", "example/0")
            .env("JUJU_MODEL_NAME", "bench")
            .env("JUJU_MODEL_UUID", "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13")
            .env("JUJU_CHARM_DIR", charm_dir)
            .env("JUJU_VERSION", "3.6.4")
            .env("JUJU_DISPATCH_PATH", "hooks/benchmark-noop")
            .env("JUJU_HOOK_NAME", "benchmark-noop");
        c
    };
    let (d_med, d_p90, d_rss) = measure(runs, dispatch);
    let (t_med, t_p90, t_rss) = measure(runs, || Command::new("/bin/true"));
    // The interpreter itself, not a version manager's shim in front of it.
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let py = python.map(|exe| {
        measure(runs / 3, || {
            let mut c = Command::new(&exe);
            c.args(["-c", "pass"]);
            c
        })
    });
    let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);

    println!("dispatch of an empty hook ({runs} runs, process start to exit)");
    println!(
        "{:<22} {:>12} {:>12} {:>14}",
        "", "median", "p90", "peak RSS"
    );
    println!(
        "{:<22} {:>12} {:>12} {:>10} KiB",
        "example-charm",
        ms(d_med),
        ms(d_p90),
        d_rss
    );
    println!(
        "{:<22} {:>12} {:>12} {:>10} KiB",
        "/bin/true",
        ms(t_med),
        ms(t_p90),
        t_rss
    );
    if let Some((p_med, p_p90, p_rss)) = py {
        println!(
            "{:<22} {:>12} {:>12} {:>10} KiB",
            "python3 -c pass",
            ms(p_med),
            ms(p_p90),
            p_rss
        );
    }
    println!(
        "ratio to /bin/true: median {:.2}x, peak RSS {:.2}x",
        d_med.as_secs_f64() / t_med.as_secs_f64(),
        d_rss as f64 / t_rss.max(1) as f64
    );
    if let Some((p_med, _, p_rss)) = py {
        println!(
            "ratio to python3 -c pass: median {:.2}x, peak RSS {:.2}x",
            d_med.as_secs_f64() / p_med.as_secs_f64(),
            d_rss as f64 / p_rss.max(1) as f64
        );
    }
    println!("release binary size: {:.1} KiB", size as f64 / 1024.0);
    let verdict = if d_med < TARGET_MEDIAN {
        "met"
    } else {
        "MISSED"
    };
    println!("target median under {}: {verdict}", ms(TARGET_MEDIAN));
}
