//! What the metrics exporters cost, on the local model: etcd, one PostgreSQL
//! unit and one PgBouncer unit with a client (the published v0 library), and
//! pgbench through PgBouncer with the client's credentials.
//!
//! Two load windows of the same length run one after the other: in the first
//! nothing scrapes; in the second every exporter of both units is scraped
//! once a second (a sixtieth of the scrape interval the charms publish, so a
//! worst case). For each window the bench reads the CPU time (user and
//! system, from `/proc`) of every workload process of both units, grouped by
//! program, and their resident memory at its end; for each scrape it times
//! the answer of PgBouncer's exporter, PostgreSQL's exporter and Patroni's
//! `/metrics`.
//!
//! Targets: the exporters' CPU under 5% of PgBouncer's own under the same
//! load, and every scrape under 1 s.
//!
//! Run with `cargo bench -p e2e --bench exporters` (`EXPORTERS_BENCH_SECONDS`
//! sets the length of each window; 20 by default).

#![allow(clippy::unwrap_used)]

use e2e::{active, address, charm, client_credentials, controller, converge, postgresql_cluster};
use e2e::{python_charm, Credentials, Scratch};
use local_model::controller::Controller;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PGBOUNCER: &str = "pgbouncer-k8s";
const POSTGRESQL: &str = "postgresql-k8s";
const CLIENT: &str = "client";

/// Clock ticks per second, as `/proc/<pid>/stat` counts CPU time
/// (`getconf CLK_TCK`; Linux's 100 when it cannot tell).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A workload process of a unit: its pid and the program it runs.
struct Process {
    pid: u32,
    program: String,
}

/// The processes whose root, working directory or command line lies in
/// `unit`'s directory of the local model: the unit's workloads.
fn unit_processes(scratch: &Path, unit: &str) -> Vec<Process> {
    let dir = scratch
        .join("controller/units")
        .join(unit.replace('/', "-"));
    let dir = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let proc_dir = entry.path();
        let inside = |link: &str| {
            std::fs::read_link(proc_dir.join(link))
                .map(|p| p.to_string_lossy().starts_with(&dir))
                .unwrap_or(false)
        };
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !(inside("root") || inside("cwd") || cmdline.contains(&dir)) {
            continue;
        }
        let Some(program) = program_of(&cmdline) else {
            continue;
        };
        found.push(Process { pid, program });
    }
    found
}

/// The program a command line runs, named as the table names it; `None` for
/// what is not a workload (the Pebble server, shells).
fn program_of(cmdline: &str) -> Option<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let first = base(words.first()?);
    let program = if first.starts_with("python") {
        base(words.get(1)?)
    } else {
        // A PostgreSQL backend's title reads `postgres: <what it does>`.
        first.trim_end_matches(':').to_string()
    };
    match program.as_str() {
        "pebble" | "pebble-server" | "sh" | "bash" => None,
        "postgres" | "postmaster" => Some("postgres".into()),
        p if p.contains("postgres_exporter") || p.contains("postgres-exporter") => {
            Some("postgres_exporter".into())
        }
        _ => Some(program),
    }
}

/// CPU seconds (user and system) of a process so far; `None` once it is gone.
fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One window's figures per program: CPU seconds, resident memory (KiB) at
/// its end, and how many processes.
#[derive(Default)]
struct Usage {
    cpu: f64,
    rss: u64,
    processes: usize,
}

/// The workloads' CPU over a window and their memory at its end, by unit and
/// program: every process alive at its end, for the part of the window it
/// ran (a backend that started within it, for all of its life).
struct Window {
    ticks: f64,
    before: BTreeMap<u32, f64>,
}

impl Window {
    fn open(processes: &[(String, Process)]) -> Window {
        let ticks = ticks_per_second();
        Window {
            ticks,
            before: processes
                .iter()
                .filter_map(|(_, p)| Some((p.pid, cpu_seconds(p.pid, ticks)?)))
                .collect(),
        }
    }

    fn close(self, scratch: &Path) -> BTreeMap<(String, String), Usage> {
        let mut usage: BTreeMap<(String, String), Usage> = BTreeMap::new();
        for (unit, p) in workloads(scratch) {
            let Some(now) = cpu_seconds(p.pid, self.ticks) else {
                continue;
            };
            let u = usage.entry((unit, p.program)).or_default();
            u.cpu += now - self.before.get(&p.pid).copied().unwrap_or(0.0);
            u.rss += rss_kib(p.pid);
            u.processes += 1;
        }
        usage
    }
}

/// Every workload process of the measured units.
fn workloads(scratch: &Path) -> Vec<(String, Process)> {
    [format!("{PGBOUNCER}/0"), format!("{POSTGRESQL}/0")]
        .into_iter()
        .flat_map(|unit| {
            unit_processes(scratch, &unit)
                .into_iter()
                .map(move |p| (unit.clone(), p))
        })
        .collect()
}

/// Times one scrape of `http://host:port/path`; `Err` when it fails or
/// answers anything but 200 with a body.
fn scrape(host: &str, port: u16, path: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let stream = TcpStream::connect((host, port)).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let answer = http_exchange::exchange(stream, host, "GET", path, &[], b"")
        .map_err(|e| format!("scrape: {e}"))?;
    if answer.status != 200 || answer.body.is_empty() {
        return Err(format!("status {}", answer.status));
    }
    Ok(start.elapsed())
}

/// The scrape targets: a name, host, port and path.
fn targets(c: &Controller) -> Vec<(&'static str, String, u16, &'static str)> {
    let pgb = address(c, &format!("{PGBOUNCER}/0"));
    let pg = address(c, &format!("{POSTGRESQL}/0"));
    vec![
        ("pgbouncer exporter", pgb, 9127, "/metrics"),
        ("postgres_exporter", pg.clone(), 9187, "/metrics"),
        ("patroni /metrics", pg, 8008, "/metrics"),
    ]
}

/// pgbench's command, through PgBouncer with the client's credentials.
fn pgbench(c: &Controller, creds: &Credentials, args: &[&str]) -> Command {
    let host = address(c, &format!("{PGBOUNCER}/0"));
    e2e::pgbench(
        &host,
        6432,
        &creds.user,
        &creds.password,
        &creds.database,
        args,
    )
}

/// What one load window measured.
struct Run {
    /// CPU and memory by unit and program.
    usage: BTreeMap<(String, String), Usage>,
    /// Each scrape's duration, by target.
    scrapes: BTreeMap<&'static str, Vec<Duration>>,
    /// pgbench's transactions per second.
    tps: f64,
}

/// Runs a select-only pgbench for `seconds` through PgBouncer; when
/// `scraping`, scrapes every target once a second meanwhile.
fn load(c: &Controller, scratch: &Path, creds: &Credentials, seconds: u64, scraping: bool) -> Run {
    let window = Window::open(&workloads(scratch));
    let bench = pgbench(
        c,
        creds,
        &[
            "-S",
            "-n",
            "-c",
            "10",
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("pgbench runs");
    let mut scrapes: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let tick = Instant::now();
        if scraping {
            for (name, host, port, path) in targets(c) {
                let took = scrape(&host, port, path)
                    .unwrap_or_else(|e| panic!("scraping {name} at {host}:{port}{path}: {e}"));
                scrapes.entry(name).or_default().push(took);
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    let out = bench.wait_with_output().unwrap();
    let usage = window.close(scratch);
    assert!(
        out.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench's output: {stdout}"));
    Run {
        usage,
        scrapes,
        tps,
    }
}

fn is_exporter(program: &str) -> bool {
    program.contains("exporter")
}

/// Prints a window's table; resident memory counts shared pages (PostgreSQL's
/// shared buffers) once per process.
fn print_usage(title: &str, usage: &BTreeMap<(String, String), Usage>) {
    println!("{title}");
    println!(
        "  {:<18} {:<20} {:>9} {:>10} {:>9}",
        "unit", "program", "processes", "CPU s", "RSS MiB*"
    );
    for ((unit, program), u) in usage {
        println!(
            "  {unit:<18} {program:<20} {:>9} {:>10.2} {:>9.1}",
            u.processes,
            u.cpu,
            u.rss as f64 / 1024.0
        );
    }
}

fn cpu_where(usage: &BTreeMap<(String, String), Usage>, which: impl Fn(&str) -> bool) -> f64 {
    usage
        .iter()
        .filter(|((_, program), _)| which(program))
        .map(|(_, u)| u.cpu)
        .sum()
}

fn main() {
    let seconds: u64 = std::env::var("EXPORTERS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let scratch = Scratch::new("exporters-bench");
    let mut c = controller(&scratch);
    eprintln!("deploying etcd, {POSTGRESQL}, {PGBOUNCER} and a client");
    postgresql_cluster(&mut c, scratch.path(), 1);
    c.deploy(&charm(scratch.path(), PGBOUNCER), PGBOUNCER, 1, &[])
        .unwrap();
    c.integrate(
        &format!("{PGBOUNCER}:backend-database"),
        &format!("{POSTGRESQL}:database"),
    )
    .unwrap();
    let client_charm = python_charm(scratch.path(), "pg-client");
    c.deploy(&client_charm, CLIENT, 1, &[("database", "benchdb")])
        .unwrap();
    c.integrate(
        &format!("{CLIENT}:database"),
        &format!("{PGBOUNCER}:database"),
    )
    .unwrap();
    converge(&mut c, Duration::from_secs(180), |c| {
        active(c, &format!("{PGBOUNCER}/0")).is_some()
            && client_credentials(c, CLIENT, PGBOUNCER).is_some()
    });
    let creds = client_credentials(&c, CLIENT, PGBOUNCER).unwrap();
    for (name, host, port, path) in targets(&c) {
        let start = Instant::now();
        while let Err(e) = scrape(&host, port, path) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{name} does not answer at {host}:{port}{path}: {e}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    eprintln!("pgbench -i through {PGBOUNCER}/0");
    let init = pgbench(&c, &creds, &["-i", "-s", "5", "-q"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );

    eprintln!("{seconds} s of select-only load, nothing scraping");
    let Run {
        usage: quiet,
        tps: quiet_tps,
        ..
    } = load(&c, scratch.path(), &creds, seconds, false);
    eprintln!("{seconds} s of the same load, every exporter scraped each second");
    let Run {
        usage: scraped,
        scrapes,
        tps: scraped_tps,
    } = load(&c, scratch.path(), &creds, seconds, true);

    println!(
        "Exporters under load: pgbench -S -c 10 through PgBouncer ({PGBOUNCER}/0, one \
         {POSTGRESQL} unit), {seconds} s windows, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print_usage(&format!("\nNothing scraping ({quiet_tps:.0} tps):"), &quiet);
    print_usage(
        &format!("\nEvery exporter scraped each second ({scraped_tps:.0} tps):"),
        &scraped,
    );

    let pgbouncer_cpu = cpu_where(&scraped, |p| p == "pgbouncer");
    let exporters_cpu = cpu_where(&scraped, is_exporter);
    let pgb_exporter_cpu = cpu_where(&scraped, |p| p == "pgbouncer-exporter");
    let all_cpu = cpu_where(&scraped, |p| !is_exporter(p));
    println!("  (* resident memory counts shared pages once per process)");
    println!("\nScraped each second:");
    println!(
        "  PgBouncer's exporter: {pgb_exporter_cpu:.2} CPU s = {:.1}% of PgBouncer's own ({pgbouncer_cpu:.2} s)",
        100.0 * pgb_exporter_cpu / pgbouncer_cpu
    );
    println!(
        "  every exporter of both units: {exporters_cpu:.2} CPU s = {:.1}% of PgBouncer's own, \
         {:.1}% of every other workload process ({all_cpu:.2} s)",
        100.0 * exporters_cpu / pgbouncer_cpu,
        100.0 * exporters_cpu / all_cpu
    );
    println!(
        "  throughput scraped / not scraped: {:.2}x",
        scraped_tps / quiet_tps
    );
    println!("\nScrape durations (target under 1 s):");
    println!(
        "  {:<20} {:>7} {:>9} {:>9}",
        "target", "scrapes", "median", "max"
    );
    for (name, mut times) in scrapes {
        times.sort();
        println!(
            "  {name:<20} {:>7} {:>7.1}ms {:>7.1}ms",
            times.len(),
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times.last().unwrap().as_secs_f64() * 1000.0
        );
    }
}
