//! Backups with real parts, moto's S3 over HTTPS as the repository.
//!
//! - pgBackRest (Debian's package) and PostgreSQL 15 alone, with the
//!   configuration the PostgreSQL charm renders from an `s3` provider's
//!   databag, its command lines, and its reading of `info`: rows are written,
//!   a full backup taken, the time noted, more rows written, a differential
//!   taken; `info` lists both; then the cluster is restored to the noted time
//!   and holds exactly the first rows.
//! - The charm on the local model, two units, related to `s3-provider` (the
//!   published data-platform S3 library): a bucket that does not exist
//!   blocks the primary with pgBackRest's reason and leaves archiving off,
//!   and so do keys the server refuses (moto checking keys, as S3 does);
//!   the right bucket and keys make the stanza, every member archives WAL to it,
//!   `create-backup` on the primary answers a backup that `list-backups` on
//!   the replica lists, and `create-backup` on the replica is refused, TLS
//!   named. With a CA charm's certificates (TLS between the units), a
//!   differential backup is taken on the replica from its standby, the
//!   primary reached through its pgBackRest server, as pgBackRest's log on
//!   the replica shows. Then `restore`: rows are written after a noted
//!   time and archived; on two units a restore to that time (the
//!   differential on top of the full, then WAL) is scheduled (the replica
//!   stops, the leader restores, the replica copies the result) and both
//!   units find exactly the rows before it; on the leader alone, the operator's password changed and
//!   rows written again, a restore of the backup (made with the old
//!   password) finds the backup's rows, logged in with the new one; a backup
//!   after the restores is taken and listed. Then a new application related
//!   to the same repository is blocked (another cluster's), lists that
//!   cluster's backups and restores the latest into itself: its own users
//!   log in and find the rows, and it still writes nothing to the
//!   repository. Last, retention: the provider keeps full backups a day;
//!   with the clock the leader's workload sees three days ahead (libfaketime,
//!   a local-model control), the next backup expires every older one.
//!
//! Runs as root (PostgreSQL and pgBackRest run as `postgres`).

#![allow(clippy::unwrap_used)]

use e2e::s3::S3Server;
use e2e::{
    action, active, address, blocked, controller, converge, converge_polling, psql, units, Scratch,
};
use local_model::controller::Controller;
use postgres_admin::testing::{free_port, is_root};
use postgresql_k8s::flows::backups::ANOTHER_CLUSTER;
use postgresql_k8s::pgbackrest::{
    archive_command, command, parse_info, render, stanza, table, BackupType, Local,
};
use s3_interface::{parse, Parameters};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const BUCKET: &str = "backups";

/// A command run as `postgres`, its stdout; panics with its stderr.
fn as_postgres(argv: &[String]) -> String {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(argv)
        .output()
        .expect("runuser runs");
    assert!(
        out.status.success(),
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// One PostgreSQL data directory and its server.
struct Server {
    data: PathBuf,
    socket: PathBuf,
    port: u16,
}

impl Server {
    fn start(&self) {
        as_postgres(&argv(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            self.data.to_str().unwrap(),
            "-l",
            self.socket.join("server.log").to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "start",
        ]));
    }

    fn stop(&self) {
        as_postgres(&argv(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            self.data.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]));
    }

    fn sql(&self, sql: &str) -> String {
        as_postgres(&argv(&[
            "psql",
            "-h",
            self.socket.to_str().unwrap(),
            "-p",
            &self.port.to_string(),
            "-d",
            "postgres",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]))
        .trim()
        .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn chown_postgres(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {}", path.display());
}

#[test]
fn the_charms_pgbackrest_configuration_backs_up_and_restores_to_a_time() {
    assert!(is_root(), "runs as root: PostgreSQL runs as postgres");
    let scratch = Scratch::new("backups");
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s3 = S3Server::start(&scratch.path().join("s3"));
    s3.create_bucket(BUCKET);

    // The provider's databag, as the s3-integrator writes it.
    let bag: charm::Databag = [
        ("bucket", BUCKET.to_string()),
        ("access-key", "test-access".into()),
        ("secret-key", "test-secret".into()),
        ("endpoint", s3.endpoint()),
        ("path", "pg/test".into()),
        ("s3-uri-style", "path".into()),
        ("delete-older-than-days", "7".into()),
        (
            "tls-ca-chain",
            serde_json::to_string(&[s3.ca_pem()]).unwrap(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let Ok(Parameters::Ready(params)) = parse(&bag) else {
        panic!("the provider's bag is complete")
    };

    let root = scratch.path().join("pg");
    let work = root.join("pgbackrest");
    std::fs::create_dir_all(&work).unwrap();
    let server = Server {
        data: root.join("data"),
        socket: root.clone(),
        port: free_port().unwrap(),
    };
    let stanza = stanza("test-model", "postgresql-k8s");
    let config = root.join("pgbackrest.conf");
    let ca = root.join("s3-ca.pem");
    std::fs::write(&ca, params.tls_ca_chain.join("\n") + "\n").unwrap();
    let text = render(
        &params,
        &stanza,
        &Local {
            data_dir: server.data.to_str().unwrap(),
            socket_dir: root.to_str().unwrap(),
            port: server.port,
            user: "postgres",
            work_dir: work.to_str().unwrap(),
        },
        Some(ca.to_str().unwrap()),
        None,
    )
    .unwrap();
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown_postgres(&root);
    let config = config.to_str().unwrap();
    let pgbackrest = |cmd: &str, extra: &[&str]| as_postgres(&command(config, &stanza, cmd, extra));

    as_postgres(&argv(&[
        &format!("{BIN}/initdb"),
        "-D",
        server.data.to_str().unwrap(),
        "-A",
        "trust",
    ]));
    let settings = format!(
        "port = {}\nlisten_addresses = ''\nunix_socket_directories = '{}'\n\
         archive_mode = on\narchive_command = '{}'\n",
        server.port,
        root.display(),
        archive_command(config, &stanza)
    );
    let conf = server.data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&settings);
    std::fs::write(&conf, text).unwrap();
    server.start();

    pgbackrest("stanza-create", &[]);
    pgbackrest("check", &[]);

    server.sql("CREATE TABLE ledger (id int PRIMARY KEY)");
    server.sql("INSERT INTO ledger SELECT generate_series(1, 10)");
    pgbackrest(
        "backup",
        &[&format!("--type={}", BackupType::Full.pgbackrest())],
    );
    let between = server.sql("SELECT now()");
    std::thread::sleep(Duration::from_millis(1100));
    server.sql("INSERT INTO ledger SELECT generate_series(11, 20)");
    pgbackrest(
        "backup",
        &[&format!("--type={}", BackupType::Differential.pgbackrest())],
    );

    let info = pgbackrest("info", &["--output=json"]);
    let info = parse_info(&info, &stanza)
        .unwrap()
        .expect("the stanza is in the repository");
    assert_eq!(info.status.0, 0, "{:?}", info.status);
    assert!(info.other_stanzas.is_empty());
    let [full, diff] = info.backups.as_slice() else {
        panic!("a full and a differential: {:?}", info.backups)
    };
    assert_eq!(full.kind, BackupType::Full);
    assert_eq!(diff.kind, BackupType::Differential);
    assert_eq!(diff.reference.as_ref(), Some(&full.id));
    assert_eq!(full.timeline, 1);
    let system_id = server.sql("SELECT system_identifier FROM pg_control_system()");
    assert_eq!(info.system_id.map(|id| id.to_string()), Some(system_id));
    println!("{}", table(&info.backups));

    // Restore to the time between the two writes, into a fresh directory
    // (the old one moved aside, as the charm will).
    server.stop();
    std::fs::rename(&server.data, root.join("data.before-restore")).unwrap();
    std::fs::create_dir(&server.data).unwrap();
    std::fs::set_permissions(&server.data, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_postgres(&server.data);
    pgbackrest(
        "restore",
        &[
            &format!("--set={}", full.label),
            "--type=time",
            &format!("--target={between}"),
            "--target-action=promote",
        ],
    );
    server.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.sql("SELECT pg_is_in_recovery()") != "f" {
        assert!(
            Instant::now() < deadline,
            "the restored server never promoted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        server.sql("SELECT count(*), min(id), max(id) FROM ledger"),
        "10|1|10",
        "exactly the rows written before the noted time"
    );
}

const PG: &str = "postgresql-k8s";
const PROVIDER: &str = "s3-provider";
/// The new application a backup is restored into.
const RESTORED: &str = "pg-restored";

/// The PostgreSQL application's peer relation.
fn peers(c: &Controller) -> Option<&local_model::model::RelationRecord> {
    c.model
        .relations
        .iter()
        .find(|r| r.end_of(PG).is_some_and(|e| e.endpoint == "database-peers"))
        .map(|r| &**r)
}

/// What the leader recorded for the application in the peer relation.
fn recorded(c: &Controller, key: &str) -> Option<String> {
    peers(c)?.app_bags.get(PG)?.data.get(key).cloned()
}

/// `key` in `unit`'s bag of the PostgreSQL peer relation.
fn unit_bag(c: &Controller, unit: &str, key: &str) -> Option<String> {
    peers(c)?.unit_bags.get(unit)?.data.get(key).cloned()
}

#[test]
fn the_charm_archives_and_backs_up_into_the_repository() {
    let scratch = Scratch::new("charm-backups");
    let s3 = S3Server::start(&scratch.path().join("s3"));
    s3.create_bucket(BUCKET);
    let mut c = controller(&scratch);
    e2e::postgresql_cluster(&mut c, scratch.path(), 2);
    let pg = units(&c, PG);
    let primary = e2e::primary(&mut c, &pg[0]);
    let replica = pg.iter().find(|u| **u != primary).unwrap().clone();
    let password = action(&mut c, &primary, "get-password", serde_json::json!({}))["password"]
        .as_str()
        .unwrap()
        .to_string();
    let password = std::cell::RefCell::new(password);
    let show = |c: &Controller, unit: &str| {
        psql(
            &address(c, unit),
            5432,
            "operator",
            &password.borrow(),
            "postgres",
            "SHOW archive_command",
        )
        .unwrap()
        .trim()
        .to_string()
    };

    s3.provide(
        &mut c,
        scratch.path(),
        (PROVIDER, PG),
        ("no-such-bucket", "pg/e2e"),
    );
    converge(&mut c, Duration::from_secs(120), |c| {
        blocked(c, &primary).is_some_and(|m| m.starts_with("failed to"))
    });
    let why = blocked(&c, &primary).unwrap();
    assert!(!why.contains("test-secret"), "no key in a status: {why}");
    println!("a missing bucket: {why}");
    assert_eq!(recorded(&c, "stanza"), None);
    assert_eq!(
        show(&c, &primary),
        "/bin/true",
        "no archiving to a repository not made"
    );

    // The right bucket, keys the repository refuses: blocked with S3's
    // words, still nothing written, and the database serves on.
    let (access, secret) = s3.require_keys();
    c.config(PROVIDER, &[("bucket", BUCKET)]).unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        blocked(c, &primary).is_some_and(|m| m.starts_with("failed to") && m != why)
    });
    let refused = blocked(&c, &primary).unwrap();
    assert!(
        !refused.contains("test-secret") && !refused.contains(&secret),
        "no key in a status: {refused}"
    );
    println!("keys refused: {refused}");
    assert_eq!(recorded(&c, "stanza"), None);
    assert_eq!(show(&c, &primary), "/bin/true");

    // Keys it accepts: the stanza, and every member archives there.
    c.config(
        PROVIDER,
        &[
            ("access-key", access.as_str()),
            ("secret-key", secret.as_str()),
        ],
    )
    .unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        recorded(c, "stanza").is_some() && units(c, PG).iter().all(|u| active(c, u).is_some())
    });
    let stanza = recorded(&c, "stanza").unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        units(c, PG)
            .iter()
            .all(|u| show(c, u).starts_with("pgbackrest "))
    });
    for unit in &pg {
        assert!(show(&c, unit).contains(&format!("--stanza={stanza} archive-push")));
    }

    psql(
        &address(&c, &primary),
        5432,
        "operator",
        &password.borrow(),
        "postgres",
        "CREATE TABLE ledger (id int); INSERT INTO ledger SELECT generate_series(1, 100)",
    )
    .unwrap();
    let made = action(&mut c, &primary, "create-backup", serde_json::json!({}));
    assert_eq!(made["backup-status"], "backup created");
    let id = made["backup-id"].as_str().unwrap().to_string();
    let listed = action(&mut c, &replica, "list-backups", serde_json::json!({}));
    let table = listed["backups"].as_str().unwrap();
    println!("{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("| full ")),
        "{table}"
    );
    let refused = c
        .run_action(&replica, "create-backup", serde_json::Map::new())
        .unwrap();
    assert!(!refused.succeeded());
    assert!(
        format!("{refused:?}").contains("without TLS between the units"),
        "{refused:?}"
    );

    // With TLS between the units, every unit serves pgBackRest to the
    // others, and the replica takes a backup itself: its standby's files,
    // the backup started and stopped on the primary through the primary's
    // server. Turning TLS on restarts the members, the primary last after a
    // switchover: the roles are read again.
    let provider = e2e::python_charm(scratch.path(), "tls-provider");
    c.deploy(&provider, "tls-provider", 1, &[]).unwrap();
    c.integrate(&format!("{PG}:certificates"), "tls-provider:certificates")
        .unwrap();
    converge(&mut c, Duration::from_secs(300), |c| {
        units(c, PG).iter().all(|u| {
            active(c, u).is_some_and(|m| !m.contains("restart"))
                && unit_bag(c, u, "tls").as_deref() == Some("enabled")
                && unit_bag(c, u, "pgbackrest-server").is_some()
        })
    });
    let primary = e2e::primary(&mut c, &pg[0]);
    let replica = pg.iter().find(|u| **u != primary).unwrap().clone();
    let from_standby = action(
        &mut c,
        &replica,
        "create-backup",
        serde_json::json!({"type": "differential"}),
    );
    assert_eq!(from_standby["backup-status"], "backup created");
    assert_eq!(from_standby["taken-from"], format!("{replica} (replica)"));
    let log = scratch
        .path()
        .join("controller/units")
        .join(replica.replace('/', "-"))
        .join("rootfs/postgresql/var/lib/postgresql/data/pgbackrest/log")
        .join(format!("{stanza}-backup.log"));
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("replay on the standby reached"),
        "pgBackRest copied from the standby:\n{log}"
    );
    let table = action(&mut c, &primary, "list-backups", serde_json::json!({}))["backups"]
        .as_str()
        .unwrap()
        .to_string();
    let differential = from_standby["backup-id"].as_str().unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(differential) && l.contains("| differential ")),
        "{table}"
    );
    println!("a differential backup taken on {replica}, from its standby");

    // Restore. The backup holds rows 1 to 100; a time is noted, rows 101
    // to 200 are written after it and archived.
    let started = Instant::now();
    let sql = |c: &Controller, unit: &str, sql: &str| {
        psql(
            &address(c, unit),
            5432,
            "operator",
            &password.borrow(),
            "postgres",
            sql,
        )
        .map(|out| out.trim().to_string())
    };
    // pgBackRest takes a time for a backup's end in whole seconds: the time
    // is noted once the clock has left the last backup's last second.
    let finished = table
        .lines()
        .find(|l| l.starts_with(differential))
        .and_then(|l| l.split('|').nth(5))
        .unwrap()
        .trim()
        .to_string();
    let after = format!("SELECT now() >= '{finished}'::timestamptz + interval '1 second'");
    converge_polling(
        &mut c,
        Duration::from_secs(10),
        Duration::from_millis(100),
        |c| sql(c, &primary, &after).is_ok_and(|t| t == "t"),
    );
    let between = sql(&c, &primary, "SELECT now()").unwrap();
    sql(
        &c,
        &primary,
        "INSERT INTO ledger SELECT generate_series(101, 200)",
    )
    .unwrap();
    let segment = sql(&c, &primary, "SELECT pg_walfile_name(pg_switch_wal())").unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        sql(
            c,
            &primary,
            "SELECT last_archived_wal FROM pg_stat_archiver",
        )
        .is_ok_and(|last| last.as_str() >= segment.as_str())
    });

    // On two units, scheduled: the replica stops and moves its data aside,
    // the leader restores to the noted time, and the replica copies the
    // restored cluster.
    let leader = c
        .model
        .applications
        .get(PG)
        .unwrap()
        .leader
        .clone()
        .unwrap();
    let other = pg.iter().find(|u| **u != leader).unwrap().clone();
    let serving = |c: &Controller| {
        active(c, &leader).is_some_and(|m| m.starts_with("Primary"))
            && active(c, &other).is_some_and(|m| m.starts_with("Replica"))
            && sql(c, &leader, "SELECT pg_is_in_recovery()").is_ok_and(|r| r == "f")
    };
    let rows = |c: &Controller, unit: &str| {
        sql(c, unit, "SELECT count(*), min(id), max(id) FROM ledger").unwrap()
    };
    assert_eq!(rows(&c, &leader), "200|1|200");
    let scheduled = action(
        &mut c,
        &leader,
        "restore",
        serde_json::json!({"restore-to-time": between}),
    );
    assert_eq!(scheduled["restore-status"], "scheduled", "{scheduled:?}");
    assert_eq!(scheduled["waiting-for"], other.as_str());
    println!("{}", scheduled["message"]);
    converge(&mut c, Duration::from_secs(180), serving);
    // Every unit serves exactly the rows written before the noted time (the
    // replica once it has replayed them).
    assert_eq!(
        rows(&c, &leader),
        "100|1|100",
        "exactly the rows before the noted time"
    );
    converge(&mut c, Duration::from_secs(60), |c| {
        let r = sql(c, &other, "SELECT count(*), min(id), max(id) FROM ledger");
        if r.as_deref() != Ok("100|1|100") {
            eprintln!("the replica answers {r:?}");
        }
        r.is_ok_and(|r| r == "100|1|100")
    });
    println!(
        "restored to {between} on two units: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // The leader alone from here on.
    c.remove_unit(&other).unwrap();
    let serving = |c: &Controller| {
        units(c, PG).len() == 1
            && active(c, &leader).is_some_and(|m| m.starts_with("Primary"))
            && sql(c, &leader, "SELECT pg_is_in_recovery()").is_ok_and(|r| r == "f")
    };
    converge(&mut c, Duration::from_secs(120), serving);
    let rows = |c: &Controller| rows(c, &leader);

    // To the backup, after a new password and more rows: the backup's rows
    // again, and the charm's users log in with the passwords it holds now.
    let changed = "a-password-the-backup-never-had";
    action(
        &mut c,
        &leader,
        "set-password",
        serde_json::json!({"password": changed}),
    );
    *password.borrow_mut() = changed.to_string();
    sql(
        &c,
        &leader,
        "INSERT INTO ledger SELECT generate_series(1001, 1010)",
    )
    .unwrap();
    assert_eq!(rows(&c), "110|1|1010");
    let restored = action(
        &mut c,
        &leader,
        "restore",
        serde_json::json!({"backup-id": id}),
    );
    assert_eq!(restored["restore-status"], "restored");
    converge(&mut c, Duration::from_secs(120), serving);
    assert_eq!(rows(&c), "100|1|100", "the backup's rows");

    // Backups go on after a restore, into the same stanza.
    converge(&mut c, Duration::from_secs(60), |c| {
        recorded(c, "stanza").as_deref() == Some(stanza.as_str())
    });
    let made = action(&mut c, &leader, "create-backup", serde_json::json!({}));
    assert_eq!(made["backup-status"], "backup created");
    let table = action(&mut c, &leader, "list-backups", serde_json::json!({}))["backups"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        table.contains(made["backup-id"].as_str().unwrap()) && table.contains(&id),
        "{table}"
    );
    println!(
        "restores (two on two units and on one, a backup): {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // Into a new application pointed at the same repository: blocked, it
    // writes nothing there; it lists the old cluster's backups and restores
    // the latest into itself.
    let started = Instant::now();
    let latest = made["backup-id"].as_str().unwrap().to_string();
    c.deploy(&e2e::charm(scratch.path(), PG), RESTORED, 1, &[])
        .unwrap();
    c.integrate(&format!("{RESTORED}:etcd"), "etcd:etcd")
        .unwrap();
    c.integrate(
        &format!("{RESTORED}:s3-parameters"),
        &format!("{PROVIDER}:s3-credentials"),
    )
    .unwrap();
    let new_unit = format!("{RESTORED}/0");
    converge(&mut c, Duration::from_secs(180), |c| {
        blocked(c, &new_unit).as_deref() == Some(ANOTHER_CLUSTER)
    });
    let listed = action(&mut c, &new_unit, "list-backups", serde_json::json!({}));
    assert_eq!(listed["stanza"], stanza.as_str());
    assert!(
        listed["backups"].as_str().unwrap().contains(&latest),
        "{listed:?}"
    );
    let restored = action(
        &mut c,
        &new_unit,
        "restore",
        serde_json::json!({"backup-id": latest}),
    );
    assert_eq!(restored["restore-status"], "restored");
    assert_eq!(restored["restored-from"], stanza.as_str());
    let own = action(&mut c, &new_unit, "get-password", serde_json::json!({}))["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(own, changed);
    let ledger = |c: &Controller| {
        psql(
            &address(c, &new_unit),
            5432,
            "operator",
            &own,
            "postgres",
            "SELECT count(*), min(id), max(id) FROM ledger",
        )
        .map(|out| out.trim().to_string())
    };
    converge(&mut c, Duration::from_secs(120), |c| {
        ledger(c).is_ok_and(|rows| rows == "100|1|100")
    });
    // Still blocked: the repository stays the old cluster's.
    converge(&mut c, Duration::from_secs(60), |c| {
        blocked(c, &new_unit).as_deref() == Some(ANOTHER_CLUSTER)
    });
    let table = action(&mut c, &leader, "list-backups", serde_json::json!({}))["backups"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        table.lines().filter(|l| l.contains("| full ")).count(),
        2,
        "the old cluster's repository as it was: {table}"
    );
    println!(
        "restored into a new application: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // Retention: the provider keeps full backups one day. Backups younger
    // than that stay; three days later (the clock the leader's workload
    // sees moved ahead), the next backup expires every full backup older
    // than the retention, and what builds on them.
    c.config(PROVIDER, &[("delete-older-than-days", "1")])
        .unwrap();
    let config = scratch
        .path()
        .join("controller/units")
        .join(leader.replace('/', "-"))
        .join("rootfs/postgresql/var/lib/postgresql/data/pgbackrest.conf");
    converge(&mut c, Duration::from_secs(60), |_| {
        std::fs::read_to_string(&config).is_ok_and(|text| text.contains("repo1-retention-full=1\n"))
    });
    let young = action(&mut c, &leader, "create-backup", serde_json::json!({}));
    let table = action(&mut c, &leader, "list-backups", serde_json::json!({}))["backups"]
        .as_str()
        .unwrap()
        .to_string();
    let before: Vec<String> = backup_ids(&table);
    assert!(
        before.len() >= 4 && before.contains(&young["backup-id"].as_str().unwrap().to_string()),
        "nothing younger than the retention expires: {table}"
    );
    c.shift_workload_clock(&leader, "postgresql", 3 * 24 * 3600)
        .unwrap();
    let later = action(&mut c, &leader, "create-backup", serde_json::json!({}));
    c.shift_workload_clock(&leader, "postgresql", 0).unwrap();
    let kept = action(&mut c, &leader, "list-backups", serde_json::json!({}))["backups"]
        .as_str()
        .unwrap()
        .to_string();
    println!("{kept}");
    assert_eq!(
        backup_ids(&kept),
        [later["backup-id"].as_str().unwrap().to_string()],
        "every backup older than the retention expired: {kept}"
    );
    psql(
        &address(&c, &leader),
        5432,
        "operator",
        &password.borrow(),
        "postgres",
        "SELECT count(*) FROM ledger",
    )
    .unwrap();
    println!("expired by retention: {} backups", before.len());
}

/// The backup ids a `list-backups` table lists.
fn backup_ids(table: &str) -> Vec<String> {
    table
        .lines()
        .filter(|l| {
            l.contains("| full ") || l.contains("| incremental ") || l.contains("| differential ")
        })
        .filter_map(|l| l.split('|').next())
        .map(|id| id.trim().to_string())
        .collect()
}
