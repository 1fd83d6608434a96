//! What the charm's backups cost against pgBackRest run directly, on the same
//! data, the same repository and in the same run: one PostgreSQL unit on the
//! local model loaded with a pgbench database (scale 70 by default, a little
//! over 1 GB), related to `s3-provider` (the published data-platform S3
//! library) with moto's S3 over HTTPS as the repository.
//!
//! Full backups are taken in the order charm, direct, direct, charm, so that
//! neither side gains from going second (the page cache, the repository's
//! size). "Charm" is the `create-backup` action, timed from the request until
//! its answer: the action's dispatch, the charm's checks (the primary, where
//! to take it from), pgBackRest run through Pebble and the repository's
//! `info` after, to answer the backup's id.
//! "Direct" is the same pgBackRest command line, with the charm's own
//! configuration, run as `postgres` inside the unit's container (entering the
//! namespaces of its PostgreSQL) and nothing else.
//!
//! Then the first backup is restored, in the same order. "Charm" is the
//! `restore` action with its `backup-id`, timed from the request until the
//! database answers again as a primary (the charm stops Patroni, moves the
//! data directory aside, restores, lets PostgreSQL recover to the backup's
//! end and promote, and starts a new cluster generation on it). "Direct" is
//! pgBackRest's restore of the same backup with the same options into an
//! empty directory of the container, then PostgreSQL started on it until it
//! has recovered, promoted and answers. The charm's own log of each step's
//! time is printed after each of its restores.
//!
//! Target: the charm within 1.2× of pgBackRest run directly, for each.
//!
//! Run with `cargo bench -p e2e --bench backups` as root (PostgreSQL runs as
//! `postgres`); `BACKUP_BENCH_SCALE` sets pgbench's scale.

#![allow(clippy::unwrap_used)]

use e2e::s3::S3Server;
use e2e::{action, address, controller, converge, converge_polling, psql, Scratch};
use local_model::controller::Controller;
use std::process::Command;
use std::time::{Duration, Instant};

const PG: &str = "postgresql-k8s";
const UNIT: &str = "postgresql-k8s/0";
const PROVIDER: &str = "s3-provider";
const BUCKET: &str = "backups";
/// The charm's pgBackRest configuration, in the container.
const CONFIG: &str = "/var/lib/postgresql/data/pgbackrest.conf";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale: u32 = std::env::var("BACKUP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(70);
    let scratch = Scratch::new("backup-bench");
    let s3 = S3Server::start(&scratch.path().join("s3"));
    s3.create_bucket(BUCKET);
    let mut c = controller(&scratch);
    e2e::postgresql_cluster(&mut c, scratch.path(), 1);
    let password = action(&mut c, UNIT, "get-password", serde_json::json!({}))["password"]
        .as_str()
        .unwrap()
        .to_string();
    let host = address(&c, UNIT);
    let sql = |sql: &str| {
        psql(&host, 5432, "operator", &password, "postgres", sql)
            .unwrap()
            .trim()
            .to_string()
    };

    // The data, loaded before the repository is related: its WAL is not
    // archived, as with a database that exists before backups are set up.
    println!("loading pgbench at scale {scale}...");
    let loading = Instant::now();
    let loaded = Command::new("pgbench")
        .args(["-i", "-q", "-I", "dtGvp", "-s", &scale.to_string()])
        .args(["-h", &host, "-p", "5432", "-U", "operator", "postgres"])
        .env("PGPASSWORD", &password)
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    let bytes: u64 = sql("SELECT pg_database_size('postgres')").parse().unwrap();
    println!(
        "loaded {:.2} GB in {:.0} s",
        bytes as f64 / 1e9,
        loading.elapsed().as_secs_f64()
    );

    s3.provide(&mut c, scratch.path(), (PROVIDER, PG), (BUCKET, "pg/bench"));
    converge(&mut c, Duration::from_secs(300), |c| stanza(c).is_some());
    let stanza = stanza(&c).unwrap();
    converge(&mut c, Duration::from_secs(120), |_| {
        sql("SHOW archive_command").starts_with("pgbackrest ")
    });

    // The unit's PostgreSQL: a long-lived process in its container.
    let inside: u32 = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
        .parse()
        .unwrap();
    let mut charm = Vec::new();
    let mut direct = Vec::new();
    for (round, by_charm) in [true, false, false, true].into_iter().enumerate() {
        let started = Instant::now();
        match by_charm {
            true => {
                let made = action(&mut c, UNIT, "create-backup", serde_json::json!({}));
                assert_eq!(made["backup-status"], "backup created", "{made:?}");
            }
            false => backup_directly(inside, &stanza, &password),
        }
        let seconds = started.elapsed().as_secs_f64();
        let who = if by_charm { "charm" } else { "direct" };
        println!("round {}: {who} full backup in {seconds:.1} s", round + 1);
        match by_charm {
            true => charm.push(seconds),
            false => direct.push(seconds),
        }
    }
    let listed = action(&mut c, UNIT, "list-backups", serde_json::json!({}));
    let table = listed["backups"].as_str().unwrap();
    let ids: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("| full "))
        .map(|l| l.split('|').next().unwrap().trim())
        .collect();
    assert_eq!(ids.len(), 4, "{table}");
    let backup = ids[0].to_string();

    let rows = sql("SELECT count(*) FROM pgbench_accounts");
    let mut charm_restore = Vec::new();
    let mut direct_restore = Vec::new();
    for (round, by_charm) in [true, false, false, true].into_iter().enumerate() {
        let started = Instant::now();
        let seconds = match by_charm {
            true => {
                let done = action(
                    &mut c,
                    UNIT,
                    "restore",
                    serde_json::json!({ "backup-id": backup }),
                );
                assert_eq!(done["restore-status"], "restored", "{done:?}");
                // The database's first answer as a primary, apart from the
                // unit's status saying the restore is over (the charm has
                // initialised the new cluster), which is what is counted.
                let answering = std::cell::Cell::new(None);
                converge_polling(
                    &mut c,
                    Duration::from_secs(600),
                    Duration::from_millis(100),
                    |c| {
                        let primary = psql(
                            &host,
                            5432,
                            "operator",
                            &password,
                            "postgres",
                            "SELECT NOT pg_is_in_recovery()",
                        )
                        .is_ok_and(|o| o.trim() == "t");
                        if primary && answering.get().is_none() {
                            answering.set(Some(started.elapsed().as_secs_f64()));
                        }
                        primary && e2e::active(c, UNIT).is_some()
                    },
                );
                let seconds = started.elapsed().as_secs_f64();
                println!(
                    "round {}: the database answered as a primary after {:.1} s",
                    round + 1,
                    answering.get().unwrap_or(seconds)
                );
                // The charm logs how long each step of its restore took.
                let log = std::fs::read_to_string(scratch.path().join("controller/debug.log"))
                    .unwrap_or_default();
                if let Some(phases) = log
                    .lines()
                    .rev()
                    .find_map(|l| l.split_once("restore took "))
                {
                    println!("round {}: the charm's restore took {}", round + 1, phases.1);
                }
                assert_eq!(sql("SELECT count(*) FROM pgbench_accounts"), rows);
                seconds
            }
            false => {
                let inside: u32 =
                    sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
                        .parse()
                        .unwrap();
                restore_directly(inside, &stanza, &backup, &password, &rows, started)
            }
        };
        let who = if by_charm { "charm" } else { "direct" };
        println!("round {}: {who} restore in {seconds:.1} s", round + 1);
        match by_charm {
            true => charm_restore.push(seconds),
            false => direct_restore.push(seconds),
        }
    }

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rows_of = |what: &str, charm: &[f64], direct: &[f64]| {
        let (charm, direct) = (mean(charm), mean(direct));
        let ratio = charm / direct;
        let verdict = if ratio <= 1.2 { "met" } else { "missed" };
        println!(
            "| {what} | {scale} | {:.2} | {charm:.1} | {direct:.1} | {ratio:.2}× | {verdict} |",
            bytes as f64 / 1e9
        );
    };
    println!();
    println!("| | pgbench scale | database GB | charm s | pgBackRest directly s | charm / direct | target ≤ 1.2× |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    rows_of("full backup", &charm, &direct);
    rows_of("restore", &charm_restore, &direct_restore);
}

/// The stanza the charm made, once the leader recorded it.
fn stanza(c: &Controller) -> Option<String> {
    let peers = c
        .model
        .relations
        .iter()
        .find(|r| r.end_of(PG).is_some_and(|e| e.endpoint == "database-peers"))?;
    peers.app_bags.get(PG)?.data.get("stanza").cloned()
}

/// `argv` run as `postgres` in the container of the process `inside` (its
/// mount namespace and root), from the container's `/` (nsenter's own
/// working directory would be the host's, outside that root, where `pg_ctl`
/// cannot find itself), with `password` for PostgreSQL; its output.
fn in_container(inside: u32, argv: &[String], password: &str) -> std::process::Output {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    Command::new("nsenter")
        .args(["--target", &inside.to_string(), "--mount", "--root"])
        .args(["--setuid", &id("-u"), "--setgid", &id("-g"), "--"])
        .args(["sh", "-c", "cd / && exec \"$@\"", "sh"])
        .args(argv)
        .env("PGPASSWORD", password)
        .output()
        .unwrap()
}

/// [`in_container`], which must succeed: its standard output.
fn in_container_ok(inside: u32, argv: &[String], password: &str) -> String {
    let out = in_container(inside, argv, password);
    assert!(
        out.status.success(),
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The charm's backup command line run in the unit's container, and nothing
/// else.
fn backup_directly(inside: u32, stanza: &str, password: &str) {
    let argv = postgresql_k8s::pgbackrest::command(CONFIG, stanza, "backup", &["--type=full"]);
    in_container_ok(inside, &argv, password);
}

/// The backup `id` restored with the charm's options into an empty
/// directory of the unit's container, then PostgreSQL started on it (on a
/// socket of its own, archiving off) until it has promoted and answers with
/// `rows` accounts; then stopped and removed. Answers the seconds from
/// `started` until it answered (the stop and the removal are not counted).
fn restore_directly(
    inside: u32,
    stanza: &str,
    id: &str,
    password: &str,
    rows: &str,
    started: Instant,
) -> f64 {
    use postgresql_k8s::flows::restore::{resolve, Request};
    use postgresql_k8s::pgbackrest::{command, parse_info};
    let bin = postgresql_k8s::workload::DEBIAN_BIN_DIR;
    let dir = "/var/lib/postgresql/data/bench-restore";
    let info = in_container_ok(
        inside,
        &command(CONFIG, stanza, "info", &["--output=json"]),
        password,
    );
    let backups = parse_info(&info, stanza).unwrap().unwrap().backups;
    let target = resolve(&Request::Backup(id.to_string()), &backups).unwrap();
    in_container_ok(inside, &strings(&["mkdir", "-m", "0700", dir]), password);
    let mut options = vec![format!("--pg1-path={dir}")];
    options.extend(target.options());
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    in_container_ok(
        inside,
        &command(CONFIG, stanza, "restore", &options),
        password,
    );
    let pg_ctl = format!("{bin}/pg_ctl");
    let settings = "-p 5499 -c listen_addresses='' -c unix_socket_directories='/tmp' \
                    -c hot_standby=off -c ssl=off -c archive_mode=off";
    let log = "/tmp/bench-restore.log";
    in_container_ok(
        inside,
        &strings(&[
            &pg_ctl, "start", "-D", dir, "-w", "-t", "600", "-l", log, "-o", settings,
        ]),
        password,
    );
    let count = strings(&[
        "psql",
        "-X",
        "-A",
        "-t",
        "-h",
        "/tmp",
        "-p",
        "5499",
        "-U",
        "operator",
        "-d",
        "postgres",
        "-c",
        "SELECT count(*) FROM pgbench_accounts",
    ]);
    let deadline = Instant::now() + Duration::from_secs(600);
    let answered = loop {
        let out = in_container(inside, &count, password);
        if out.status.success() {
            let answered = started.elapsed().as_secs_f64();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), rows);
            break answered;
        }
        assert!(
            Instant::now() < deadline,
            "the direct restore never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stop = strings(&[&pg_ctl, "stop", "-D", dir, "-m", "fast", "-w"]);
    in_container_ok(inside, &stop, password);
    in_container_ok(inside, &strings(&["rm", "-rf", dir]), password);
    answered
}
