//! PgBouncer under load, on one deployment of the local model: etcd,
//! PostgreSQL with three units under Patroni (synchronous standbys confirmed),
//! PgBouncer with one unit (transaction pooling), and a client on the v0
//! library.
//!
//! - A second client relates while `pgbench` runs through PgBouncer with the
//!   first client's credentials: PgBouncer reloads its configuration, and no
//!   pgbench client aborts and no transaction fails.
//! - PgBouncer's charm is refreshed while `pgbench` runs, each client
//!   connecting anew for each transaction (`-C`): upgrade-charm restarts the
//!   unit's PgBouncer processes one at a time, each draining first (SIGTERM)
//!   while the others take the new connections, and no pgbench client aborts
//!   and no transaction fails. Meanwhile a prober connects in a tight loop:
//!   every connection is answered, none reset as a process stops listening
//!   (the charm has the kernel hand queued connections over). The slowest
//!   second is printed.
//! - A planned switchover (`promote-to-primary` on the replica) while
//!   `pgbench` runs with persistent clients: PgBouncer pauses its pools before PostgreSQL switches over and
//!   resumes once it serves the new primary, so no pgbench client aborts and
//!   no transaction fails; a client writes and reads through PgBouncer
//!   after. The slowest second is printed.
//! - An option PostgreSQL reads only at start (`max_connections`) is changed
//!   while `pgbench` runs with persistent clients: the charm restarts the
//!   members one at a time, the replicas first, the primary last after a
//!   switchover PgBouncer pauses for, until no member waits for a restart and
//!   every member shows the new value; no pgbench client aborts, no
//!   transaction fails, and every transaction pgbench counted is in
//!   `pgbench_history`.
//! - The primary's machine is lost while a writer inserts through PgBouncer,
//!   one `psql` per row: once Patroni promotes the replica and the model
//!   converges, writes through PgBouncer resume and every acknowledged row is
//!   on the new primary. How long clients saw errors after the promotion is
//!   printed, not asserted.
//!
//! With `UNDER_LOAD_FIGURES` naming a file, each change's figures (what
//! clients saw) are appended to it as JSON lines, before they are asserted:
//! the benchmark report runs this test for its section on changes under load.

use e2e::{
    action, active, address, charm, controller, converge_polling, patroni_members, psql,
    python_charm, Scratch,
};
use local_model::controller::Controller;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PG: &str = "postgresql-k8s";
const PGB: &str = "pgbouncer-k8s";
const CLIENT: &str = "client";
const DATABASE: &str = "appdb";
const SECOND_CLIENT: &str = "client2";
const SECOND_DATABASE: &str = "otherdb";
/// How long pgbench runs: long enough for the second client's relation to
/// be served while it runs (checked).
const PGBENCH_SECONDS: u64 = 25;
/// How long pgbench runs while PgBouncer's processes restart: long enough
/// for the refresh to be taken in (checked).
const ROLLING_PGBENCH_SECONDS: u64 = 15;
/// How long pgbench runs through a planned switchover: long enough for
/// PgBouncer to pause, PostgreSQL to switch over and PgBouncer to resume
/// (checked).
const SWITCHOVER_PGBENCH_SECONDS: u64 = 20;
/// How long pgbench runs through PostgreSQL's rolling restart: long enough
/// for every member to restart and the switchover before the primary's
/// (checked; Patroni restarts a synchronous standby only once the primary
/// has released it, up to its 10 s loop, and the roll took 42 s).
const RESTART_PGBENCH_SECONDS: u64 = 60;
/// The PostgreSQL members.
const MEMBERS: usize = 3;

/// A client's credentials.
#[derive(Clone)]
struct Login {
    user: String,
    password: String,
}

fn login(c: &mut Controller, unit: &str) -> Login {
    let creds = action(c, unit, "get-credentials", serde_json::json!({}));
    let text = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    Login {
        user: text("username"),
        password: text("password"),
    }
}

/// `sql` through PgBouncer at `host` as `login`, retried for a while (a
/// unit may still be taking a change in).
fn pooled(host: &str, login: &Login, database: &str, sql: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match psql(host, 6432, &login.user, &login.password, database, sql) {
            Ok(out) => return out,
            Err(e) if Instant::now() > deadline => panic!("{sql} through {host}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// How many times PgBouncer's processes on `unit` reloaded, from their logs.
fn reloads(scratch: &Path, unit: &str) -> usize {
    e2e::pgbouncer_logged(scratch, unit, "got SIGHUP")
}

/// How many times PgBouncer's processes on `unit` were told to drain.
fn drains(scratch: &Path, unit: &str) -> usize {
    e2e::pgbouncer_logged(scratch, unit, "got SIGTERM")
}

/// Connections made in a tight loop to `host`:6432 until stopped, each
/// asking for TLS (PostgreSQL's SSLRequest) and reading PgBouncer's one-byte
/// answer: a connection reset or refused while a process stops listening is
/// a client dropped.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Prober {
    fn start(host: &str) -> Prober {
        use std::io::{Read, Write};
        let address: std::net::SocketAddr = format!("{host}:6432")
            .parse()
            .expect("an IPv4 unit address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
            let timeout = Duration::from_secs(5);
            let (mut made, mut failures) = (0, Vec::new());
            while !stopped.load(Ordering::Relaxed) {
                made += 1;
                let answered = std::net::TcpStream::connect_timeout(&address, timeout).and_then(
                    |mut stream| {
                        stream.set_read_timeout(Some(timeout))?;
                        stream.write_all(&SSL_REQUEST)?;
                        let mut answer = [0u8; 1];
                        stream.read_exact(&mut answer)?;
                        Ok(answer[0])
                    },
                );
                match answered {
                    Ok(b'S' | b'N') => {}
                    Ok(other) => failures.push(format!("answered {other:#x}")),
                    Err(e) => failures.push(e.to_string()),
                }
                // Fast enough to meet a process closing its listener, slow
                // enough not to run out of local ports.
                std::thread::sleep(Duration::from_millis(1));
            }
            (made, failures)
        });
        Prober { stop, thread }
    }

    /// Stops the loop: how many connections it made, and each that failed.
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the prober ends")
    }
}

/// How many processes PgBouncer runs on `unit`: one log directory each.
fn processes(scratch: &Path, unit: &str) -> usize {
    let logs = scratch
        .join("controller/units")
        .join(unit.replace('/', "-"))
        .join("rootfs/pgbouncer/var/log/pgbouncer");
    std::fs::read_dir(&logs)
        .unwrap_or_else(|e| panic!("{}: {e}", logs.display()))
        .count()
}

/// Waits for pgbench, records its figures (see [`record`]) and asserts that
/// it ran transactions, that no client aborted and that no transaction
/// failed; answers its summary, the slowest second of its progress report
/// (`-P 1`) and the report's lines.
fn clean_run(bench: Child, what: &str) -> (String, String, Vec<String>) {
    let Output {
        status,
        stdout,
        stderr,
    } = bench
        .wait_with_output()
        .unwrap_or_else(|e| panic!("pgbench {what}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).to_string(),
        String::from_utf8_lossy(&stderr).to_string(),
    );
    let processed = summary_number(&stdout, "number of transactions actually processed:");
    let failed = summary_number(&stdout, "number of failed transactions:");
    let aborted = stderr
        .lines()
        .filter(|l| l.contains(" aborted in command "))
        .count();
    let progress: Vec<String> = stderr
        .lines()
        .filter(|l| l.starts_with("progress:"))
        .map(str::to_string)
        .collect();
    let slowest = progress
        .iter()
        .min_by(|a, b| {
            let tps = |l: &str| {
                l.split(", ")
                    .find_map(|f| f.strip_suffix(" tps"))
                    .and_then(|n| n.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            tps(a).total_cmp(&tps(b))
        })
        .cloned()
        .unwrap_or_default();
    record(serde_json::json!({
        "change": what,
        "transactions": processed,
        "failed": failed,
        "aborted": aborted,
        "slowest_second": slowest,
        "longest_stall_s": longest_stall(&progress).0,
    }));
    assert!(
        status.success(),
        "pgbench {what} failed: {stdout}\n{stderr}"
    );
    assert!(
        aborted == 0 && !stdout.contains("aborted"),
        "a pgbench client aborted {what}: {stderr}"
    );
    assert_eq!(failed, Some(0), "{stdout}");
    assert!(processed.is_some_and(|n| n > 0), "{stdout}");
    (stdout, slowest, progress)
}

/// The longest run of seconds without a transaction in pgbench's progress
/// report (`-P 1`): how many, and the line that ended it (its latency is
/// that of the transactions that waited).
fn longest_stall(progress: &[String]) -> (usize, String) {
    let idle = |l: &str| l.contains(", 0.0 tps,");
    let mut best = (0, String::new());
    let mut run = 0;
    for line in progress {
        if idle(line) {
            run += 1;
        } else {
            if run > best.0 {
                best = (run, line.clone());
            }
            run = 0;
        }
    }
    best
}

/// Appends `figures` as one JSON line to the file `UNDER_LOAD_FIGURES`
/// names, when set: the benchmark report runs this test to measure what
/// clients see of each change, and reads them from there.
fn record(figures: serde_json::Value) {
    let Some(path) = std::env::var_os("UNDER_LOAD_FIGURES") else {
        return;
    };
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&path).display()));
    writeln!(file, "{figures}").expect("the figures are written");
}

/// The line of pgbench's summary starting with `prefix`, its first number.
fn summary_number(out: &str, prefix: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.starts_with(prefix))?;
    line[prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())?
        .parse()
        .ok()
}

fn pgbench(host: &str, login: &Login, args: &[&str]) -> Command {
    e2e::pgbench(host, 6432, &login.user, &login.password, DATABASE, args)
}

/// pgbench's default TPC-B-like load through PgBouncer, 4 clients on 2
/// threads for `seconds`, started in the background with its output kept;
/// `extra` adds options (`-C`, `-P 1`).
fn load(host: &str, login: &Login, extra: &[&str], seconds: u64) -> Child {
    let seconds = seconds.to_string();
    let mut args = vec!["-n", "-c", "4", "-j", "2", "-T", &seconds];
    args.extend_from_slice(extra);
    pgbench(host, login, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgbench starts")
}

fn served(c: &Controller, unit: &str) -> bool {
    active(c, unit).is_some_and(|m| m.contains('@'))
}

/// The PostgreSQL unit whose status says it is the primary.
fn primary_unit(c: &Controller) -> Option<String> {
    e2e::units(c, PG)
        .into_iter()
        .find(|u| active(c, u).as_deref() == Some("Primary"))
}

/// The `endpoints` PostgreSQL publishes to PgBouncer.
fn published_endpoints(c: &Controller) -> Option<String> {
    let relation = c
        .model
        .relations
        .iter()
        .find(|r| r.end_of(PG).is_some() && r.end_of(PGB).is_some())?;
    relation.app_bags.get(PG)?.data.get("endpoints").cloned()
}

/// Waits for every PostgreSQL member to run, a synchronous standby among
/// them, caught up.
fn settled_with_a_synchronous_standby(c: &mut Controller) {
    converge_polling(
        c,
        Duration::from_secs(120),
        Duration::from_millis(300),
        |c| {
            let pg = e2e::units(c, PG);
            e2e::cluster_settled(c, MEMBERS)
                && e2e::synchronous_standby_runs(c, &pg[0])
                && e2e::replicas_caught_up(c, &pg[0])
        },
    );
}

/// One INSERT of the writer: its row, when it ended, and PgBouncer's or
/// psql's error if it failed.
struct Attempt {
    id: u64,
    at: Instant,
    error: Option<String>,
}

#[test]
fn clients_keep_their_service_under_load() {
    let scratch = Scratch::new("under-load");
    let mut c = controller(&scratch);
    e2e::postgresql_cluster(&mut c, scratch.path(), MEMBERS as u32);
    // Transaction pooling: a pause for a switchover completes as the
    // transactions in flight end (a session holds its server until it leaves).
    c.deploy(
        &charm(scratch.path(), PGB),
        PGB,
        1,
        &[("pool_mode", "transaction")],
    )
    .unwrap();
    c.integrate(
        &format!("{PGB}:backend-database"),
        &format!("{PG}:database"),
    )
    .unwrap();
    let client_charm = python_charm(scratch.path(), "pg-client");
    c.deploy(&client_charm, CLIENT, 1, &[("database", DATABASE)])
        .unwrap();
    c.integrate(&format!("{CLIENT}:database"), &format!("{PGB}:database"))
        .unwrap();
    // The second client deployed now, related under load.
    c.deploy(
        &client_charm,
        SECOND_CLIENT,
        1,
        &[("database", SECOND_DATABASE)],
    )
    .unwrap();
    let pgb_unit = format!("{PGB}/0");
    converge_polling(
        &mut c,
        Duration::from_secs(180),
        Duration::from_millis(300),
        |c| {
            served(c, &format!("{CLIENT}/0"))
                && active(c, &pgb_unit).is_some()
                && c.model
                    .unit(&format!("{SECOND_CLIENT}/0"))
                    .is_some_and(|u| matches!(u.status, charm::Status::Blocked(_)))
        },
    );
    let host = address(&c, &pgb_unit);
    let client = login(&mut c, &format!("{CLIENT}/0"));

    // (a) A client relates while pgbench runs through PgBouncer.
    pooled(&host, &client, DATABASE, "SELECT 1");
    let init = pgbench(&host, &client, &["-i", "-q", "-s", "1"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let reloads_before = reloads(scratch.path(), &pgb_unit);
    let mut bench = load(&host, &client, &[], PGBENCH_SECONDS);
    std::thread::sleep(Duration::from_secs(2));
    c.integrate(
        &format!("{SECOND_CLIENT}:database"),
        &format!("{PGB}:database"),
    )
    .unwrap();
    converge_polling(
        &mut c,
        Duration::from_secs(60),
        Duration::from_millis(300),
        |c| served(c, &format!("{SECOND_CLIENT}/0")),
    );
    let second = login(&mut c, &format!("{SECOND_CLIENT}/0"));
    assert_eq!(
        pooled(&host, &second, SECOND_DATABASE, "SELECT current_user").trim(),
        second.user,
        "the second client logs in to its database through PgBouncer"
    );
    let reloaded = reloads(scratch.path(), &pgb_unit) - reloads_before;
    assert!(
        bench.try_wait().unwrap().is_none(),
        "pgbench ended before the second client was served: raise PGBENCH_SECONDS"
    );
    assert!(reloaded > 0, "PgBouncer reloaded while pgbench ran");
    let (stdout, _, _) = clean_run(bench, "while a client related");
    println!("pgbench while {SECOND_CLIENT} related ({reloaded} reloads):\n{stdout}");

    // (b) PgBouncer's charm refreshed while pgbench runs: a rolling restart.
    let rolled = processes(scratch.path(), &pgb_unit);
    let drains_before = drains(scratch.path(), &pgb_unit);
    let mut bench = load(&host, &client, &["-C", "-P", "1"], ROLLING_PGBENCH_SECONDS);
    std::thread::sleep(Duration::from_secs(2));
    let prober = Prober::start(&host);
    let refreshed_at = Instant::now();
    c.refresh(PGB, &charm(scratch.path(), PGB)).unwrap();
    converge_polling(
        &mut c,
        Duration::from_secs(60),
        Duration::from_millis(300),
        |c| {
            drains(scratch.path(), &pgb_unit) >= drains_before + rolled
                && active(c, &pgb_unit).is_some()
        },
    );
    let took = refreshed_at.elapsed();
    let (probes, dropped) = prober.finish();
    assert!(
        bench.try_wait().unwrap().is_none(),
        "pgbench ended before the rolling restart: raise ROLLING_PGBENCH_SECONDS"
    );
    assert!(
        dropped.is_empty(),
        "{} of {probes} connections made in a tight loop during the rolling restart \
         were dropped: {dropped:?}",
        dropped.len()
    );
    assert!(probes > 100, "the prober connected {probes} times");
    // The charm had the kernel hand queued connections over: the local
    // model's units share the machine's network namespace.
    let setting = Path::new(pgbouncer_k8s::handover::NET_IPV4).join("tcp_migrate_req");
    let migrate = std::fs::read_to_string(setting).unwrap();
    assert_eq!(
        migrate.trim(),
        "1",
        "net.ipv4.tcp_migrate_req after the roll"
    );
    let log = std::fs::read_to_string(scratch.path().join("controller/debug.log")).unwrap();
    assert!(!log.contains("may be reset"), "{log}");
    assert_eq!(
        log.matches("drained and restarted").count(),
        rolled,
        "every process drained before it restarted, none cut: {log}"
    );
    let (stdout, slowest, _) = clean_run(bench, "during the rolling restart");
    println!(
        "pgbench while {rolled} processes restarted one at a time ({:.1} s from the refresh, \
         {probes} connections probed, none dropped):\n{stdout}slowest second: {slowest}",
        took.as_secs_f64()
    );

    // (c) A planned switchover while pgbench runs: PgBouncer pauses first.
    let case_started = Instant::now();
    settled_with_a_synchronous_standby(&mut c);
    let before = primary_unit(&c).expect("a primary");
    let candidate = e2e::synchronous_standbys(&c, &before)
        .into_iter()
        .next()
        .expect("a synchronous standby");
    let candidate_address = address(&c, &candidate);
    let bench = load(&host, &client, &["-P", "1"], SWITCHOVER_PGBENCH_SECONDS);
    std::thread::sleep(Duration::from_secs(2));
    let asked_at = Instant::now();
    let result = action(
        &mut c,
        &candidate,
        "promote-to-primary",
        serde_json::json!({"scope": "unit"}),
    );
    assert_eq!(
        result["poolers"], "1",
        "the switchover waits for PgBouncer's unit: {result:?}"
    );
    converge_polling(
        &mut c,
        Duration::from_secs(90),
        Duration::from_millis(300),
        |c| {
            primary_unit(c).as_deref() == Some(candidate.as_str())
                && published_endpoints(c)
                    .is_some_and(|e| e.starts_with(&format!("{candidate_address}:")))
                && active(c, &pgb_unit).is_some()
        },
    );
    let took = asked_at.elapsed();
    let mut bench = bench;
    assert!(
        bench.try_wait().unwrap().is_none(),
        "pgbench ended before the switchover was over: raise SWITCHOVER_PGBENCH_SECONDS"
    );
    let log = std::fs::read_to_string(scratch.path().join("controller/debug.log")).unwrap();
    assert!(
        log.contains("pools resumed: it serves the new primary"),
        "PgBouncer resumed once it served the new primary, not on its bound"
    );
    let (stdout, _, progress) = clean_run(bench, "during the planned switchover");
    let (stalled, ended_by) = longest_stall(&progress);
    println!(
        "pgbench through a planned switchover from {before} to {candidate} ({:.1} s from the \
         action to the model converged):\n{stdout}longest stall: {stalled} s without a \
         transaction, ended by: {ended_by}",
        took.as_secs_f64()
    );
    pooled(
        &host,
        &client,
        DATABASE,
        "CREATE TABLE switched (v int); INSERT INTO switched VALUES (7)",
    );
    assert_eq!(
        pooled(&host, &client, DATABASE, "SELECT v FROM switched").trim(),
        "7",
        "a client writes and reads through PgBouncer after the switchover"
    );
    println!(
        "the planned switchover's case took {:.1} s",
        case_started.elapsed().as_secs_f64()
    );

    // (d) An option PostgreSQL reads only at start changed while pgbench
    // runs: the rolling restart.
    let case_started = Instant::now();
    settled_with_a_synchronous_standby(&mut c);
    let operator = action(
        &mut c,
        &format!("{PG}/0"),
        "get-password",
        serde_json::json!({}),
    )["password"]
        .as_str()
        .expect("the operator's password")
        .to_string();
    let show = |c: &Controller, unit: &str| {
        psql(
            &address(c, unit),
            5432,
            "operator",
            &operator,
            "postgres",
            "SHOW max_connections",
        )
        .unwrap_or_default()
        .trim()
        .to_string()
    };
    let history = || -> u64 {
        pooled(
            &host,
            &client,
            DATABASE,
            "SELECT count(*) FROM pgbench_history",
        )
        .trim()
        .parse()
        .expect("a count")
    };
    let before = primary_unit(&c).expect("a primary");
    let rows_before = history();
    let bench = load(&host, &client, &["-P", "1"], RESTART_PGBENCH_SECONDS);
    std::thread::sleep(Duration::from_secs(2));
    let changed_at = Instant::now();
    c.config(PG, &[("experimental_max_connections", "150")])
        .unwrap();
    converge_polling(
        &mut c,
        Duration::from_secs(120),
        Duration::from_millis(300),
        |c| {
            let pg = e2e::units(c, PG);
            pg.iter().all(|u| show(c, u) == "150")
                && patroni_members(c, &pg[0])
                    .iter()
                    .all(|m| m.get("pending_restart").is_none())
                && e2e::cluster_settled(c, MEMBERS)
                && active(c, &pgb_unit).is_some()
        },
    );
    let took = changed_at.elapsed();
    let mut bench = bench;
    assert!(
        bench.try_wait().unwrap().is_none(),
        "pgbench ended before the rolling restart was over: raise RESTART_PGBENCH_SECONDS"
    );
    let after = primary_unit(&c).expect("a primary");
    assert_ne!(
        after, before,
        "the primary restarted last, after a switchover"
    );
    let log = std::fs::read_to_string(scratch.path().join("controller/debug.log")).unwrap();
    assert!(
        log.contains("before the primary restarts: waiting for 1 pooler units to pause"),
        "the switchover before the primary's restart waited for PgBouncer"
    );
    let restarts = log.matches("rolling restart: PostgreSQL restarted").count();
    let (stdout, _, progress) = clean_run(bench, "during PostgreSQL's rolling restart");
    let processed = summary_number(&stdout, "number of transactions actually processed:")
        .expect("pgbench's count");
    assert_eq!(
        history() - rows_before,
        processed,
        "every transaction pgbench counted is in pgbench_history"
    );
    let (stalled, ended_by) = longest_stall(&progress);
    println!(
        "pgbench through PostgreSQL's rolling restart ({restarts} restarts, switchover from \
         {before} to {after}; {:.1} s from the option to the model converged):\n{stdout}\
         longest stall: {stalled} s without a transaction, ended by: {ended_by}",
        took.as_secs_f64()
    );
    println!(
        "the rolling restart's case took {:.1} s",
        case_started.elapsed().as_secs_f64()
    );

    // (e) The primary's machine lost while a writer inserts through PgBouncer.
    settled_with_a_synchronous_standby(&mut c);
    pooled(
        &host,
        &client,
        DATABASE,
        "CREATE TABLE ledger (id bigint PRIMARY KEY)",
    );
    let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (attempts, stop, host, client) = (
            Arc::clone(&attempts),
            Arc::clone(&stop),
            host.clone(),
            client.clone(),
        );
        std::thread::spawn(move || {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let sql = format!("INSERT INTO ledger VALUES ({id})");
                let result = psql(&host, 6432, &client.user, &client.password, DATABASE, &sql);
                let error = result.err();
                let failed = error.is_some();
                attempts.lock().unwrap().push(Attempt {
                    id,
                    at: Instant::now(),
                    error,
                });
                if failed {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let old = primary_unit(&c).expect("a primary");
    let replicas: Vec<String> = e2e::units(&c, PG)
        .into_iter()
        .filter(|u| *u != old)
        .collect();
    let lost_at = Instant::now();
    c.crash_unit(&old).unwrap();
    println!("lost {old}'s machine; {replicas:?} are the replicas");
    // The replica Patroni promotes, asked on every replica.
    let leader_of = |c: &Controller| {
        replicas.iter().find_map(|asked| {
            patroni_members(c, asked)
                .iter()
                .find(|m| m["role"] == "leader" && m["state"] == "running")
                .and_then(|m| m["name"].as_str())
                .and_then(|name| name.rsplit_once('-'))
                .map(|(app, n)| format!("{app}/{n}"))
                .filter(|u| *u != old)
        })
    };
    let survivor_found: Mutex<Option<String>> = Mutex::default();
    let promoted: Mutex<Option<Instant>> = Mutex::default();
    let published: Mutex<Option<Instant>> = Mutex::default();
    converge_polling(
        &mut c,
        Duration::from_secs(150),
        Duration::from_millis(200),
        |c| {
            let now = Instant::now();
            let mut promoted = promoted.lock().unwrap();
            let mut survivor = survivor_found.lock().unwrap();
            if promoted.is_none() {
                if let Some(leader) = leader_of(c) {
                    *promoted = Some(now);
                    *survivor = Some(leader);
                }
            }
            let mut published = published.lock().unwrap();
            if published.is_none()
                && survivor.as_ref().is_some_and(|s| {
                    published_endpoints(c)
                        .is_some_and(|e| e.starts_with(&format!("{}:", address(c, s))))
                })
            {
                *published = Some(now);
            }
            let resumed = promoted.is_some_and(|p| {
                attempts
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|a| a.at > p && a.error.is_none())
            });
            resumed && published.is_some() && active(c, &pgb_unit).is_some()
        },
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let promoted = promoted.into_inner().unwrap().expect("the promotion seen");
    let survivor = survivor_found
        .into_inner()
        .unwrap()
        .expect("the promoted replica");
    let survivor_address = address(&c, &survivor);
    let published = published.into_inner().unwrap().expect("the endpoints seen");

    let attempts = attempts.lock().unwrap();
    let acknowledged: Vec<u64> = attempts
        .iter()
        .filter(|a| a.error.is_none())
        .map(|a| a.id)
        .collect();
    let errors: Vec<&Attempt> = attempts.iter().filter(|a| a.error.is_some()).collect();
    let last_error = errors.iter().map(|a| a.at).max();
    let secs = |a: Instant, b: Instant| a.saturating_duration_since(b).as_secs_f64();
    println!(
        "writer: {} inserts acknowledged, {} failed; Patroni promoted {survivor} {:.1} s after \
         the loss, PostgreSQL published it {:.1} s after the promotion",
        acknowledged.len(),
        errors.len(),
        secs(promoted, lost_at),
        secs(published, promoted),
    );
    // Every acknowledged row is on the new primary, asked directly.
    let rows = psql(
        &survivor_address,
        5432,
        &client.user,
        &client.password,
        DATABASE,
        "SELECT id FROM ledger ORDER BY id",
    )
    .expect("reading the ledger on the new primary");
    let on_primary: std::collections::BTreeSet<u64> =
        rows.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let missing: Vec<&u64> = acknowledged
        .iter()
        .filter(|id| !on_primary.contains(id))
        .collect();
    record(serde_json::json!({
        "change": "the primary's machine lost",
        "acknowledged": acknowledged.len(),
        "failed": errors.len(),
        "promoted_after_loss_s": secs(promoted, lost_at),
        "published_after_promotion_s": secs(published, promoted),
        "errors_after_promotion_s": last_error.map(|last| secs(last, promoted)),
        "lost": missing.len(),
    }));
    match last_error {
        Some(last) => println!(
            "client errors lasted until {:.1} s after the promotion ({:.1} s after the \
             endpoints were published); the last: {}",
            last.saturating_duration_since(promoted).as_secs_f64(),
            last.saturating_duration_since(published).as_secs_f64(),
            errors
                .last()
                .and_then(|a| a.error.as_deref())
                .unwrap_or_default()
                .trim()
        ),
        None => println!("no client error"),
    }
    assert!(
        acknowledged
            .iter()
            .any(|id| { attempts.iter().any(|a| a.id == *id && a.at > promoted) }),
        "writes through PgBouncer resumed after the promotion"
    );
    drop(attempts);

    assert!(
        missing.is_empty(),
        "acknowledged rows missing on the new primary: {missing:?}"
    );
    assert_eq!(
        pooled(&host, &client, DATABASE, "SELECT pg_is_in_recovery()").trim(),
        "f",
        "PgBouncer sends writes to a primary"
    );
    assert_eq!(
        pooled(&host, &client, DATABASE, "SELECT inet_server_addr()")
            .trim()
            .split('/')
            .next(),
        Some(survivor_address.as_str()),
        "PgBouncer sends the client to the new primary"
    );
}
