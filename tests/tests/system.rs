//! The whole system on the local model: etcd, a three-unit PostgreSQL cluster
//! under Patroni, PgBouncer in front of it, and a client application on the
//! published v0 library; real `psql` connects through every PgBouncer unit, and
//! cancels a query through a load balancer that sends the cancel request to the
//! other unit; sessions open through each unit carry on while another
//! application relates and every unit reloads PgBouncer. Clients on both
//! published libraries, v0 (`data_interfaces`) and v1
//! (`dpcharmlibs-interfaces`), get working credentials from PgBouncer and
//! from PostgreSQL directly. A client asking for a superuser is refused by
//! PgBouncer, where such a user could not log in, and served by PostgreSQL.

use e2e::balancer::RoundRobin;
use e2e::{
    action, active, address, assert_runs_on_image, charm, client_credentials, controller, converge,
    postgresql_cluster, primary, psql, python_charm, Scratch,
};
use local_model::controller::Controller;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many times each PgBouncer unit's processes reloaded their configuration,
/// from PgBouncer's own logs in the units' containers.
fn reloads(scratch: &Path) -> Vec<usize> {
    ["pgbouncer-k8s-0", "pgbouncer-k8s-1"]
        .iter()
        .map(|unit| {
            let logs = scratch
                .join("controller/units")
                .join(unit)
                .join("rootfs/pgbouncer/var/log/pgbouncer");
            std::fs::read_dir(&logs)
                .unwrap_or_else(|e| panic!("{}: {e}", logs.display()))
                .flatten()
                .map(|d| {
                    std::fs::read_to_string(d.path().join("pgbouncer.log"))
                        .unwrap_or_default()
                        .matches("got SIGHUP")
                        .count()
                })
                .sum()
        })
        .collect()
}

/// Runs `sql` as the client `unit` (through its `get-credentials` action) on
/// `host:port`, retrying while the server may still be picking the user up.
fn as_client(
    c: &mut Controller,
    unit: &str,
    host: &str,
    port: u16,
    database: &str,
    sql: &str,
) -> Result<String, String> {
    let creds = action(c, unit, "get-credentials", serde_json::json!({}));
    let text = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    let (user, password) = (text("username"), text("password"));
    let mut result = Err(String::new());
    for _ in 0..50 {
        result = psql(host, port, &user, &password, database, sql);
        if result.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    result
}

#[test]
fn a_client_reaches_its_database_through_every_pgbouncer_unit() {
    let scratch = Scratch::new("system");
    let pgbouncer = charm(scratch.path(), "pgbouncer-k8s");
    let client = python_charm(scratch.path(), "pg-client");
    let mut c = controller(&scratch);

    // A PostgreSQL cluster: one primary and two replicas, over etcd.
    postgresql_cluster(&mut c, scratch.path(), 3);
    let primary = primary(&mut c, "postgresql-k8s/0");
    let operator = action(
        &mut c,
        "postgresql-k8s/0",
        "get-password",
        serde_json::json!({}),
    )["password"]
        .as_str()
        .unwrap()
        .to_string();
    let primary_address = address(&c, &primary);
    psql(
        &primary_address,
        5432,
        "operator",
        &operator,
        "postgres",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('written on the primary')",
    )
    .unwrap();
    for n in 0..3 {
        let unit = format!("postgresql-k8s/{n}");
        if unit == primary {
            continue;
        }
        let replica = address(&c, &unit);
        let mut read = Err(String::new());
        for _ in 0..50 {
            read = psql(
                &replica,
                5432,
                "operator",
                &operator,
                "postgres",
                "SELECT v FROM t",
            );
            if read.as_deref().is_ok_and(|r| r.contains("written")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(read.unwrap().trim(), "written on the primary", "{unit}");
    }

    // PgBouncer in front of it, and a client asking for a database.
    c.deploy(&pgbouncer, "pgbouncer-k8s", 2, &[]).unwrap();
    c.integrate("pgbouncer-k8s:backend-database", "postgresql-k8s:database")
        .unwrap();
    c.deploy(&client, "client", 1, &[]).unwrap();
    c.integrate("client:database", "pgbouncer-k8s:database")
        .unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        active(c, "client/0").is_some_and(|m| m.contains('@'))
            && active(c, "pgbouncer-k8s/0").is_some()
            && active(c, "pgbouncer-k8s/1").is_some()
    });
    println!("{}", c.status());
    // Each workload runs on its image, as in its pod.
    assert_runs_on_image(&c, "etcd/0", "etcd", "etcd");
    assert_runs_on_image(&c, "postgresql-k8s/0", "postgresql", "postgresql");
    assert_runs_on_image(&c, "pgbouncer-k8s/1", "pgbouncer", "pgbouncer");
    let credentials =
        client_credentials(&c, "client", "pgbouncer-k8s").expect("credentials in a secret");
    let (user, password, endpoints, database) = (
        credentials.user,
        credentials.password,
        credentials.endpoints,
        credentials.database,
    );
    assert_eq!(database, "appdb");
    assert_eq!(
        endpoints,
        format!("{}:6432", address(&c, "pgbouncer-k8s/0"))
    );

    // Through each PgBouncer unit: the database, and its read-only twin.
    for unit in ["pgbouncer-k8s/0", "pgbouncer-k8s/1"] {
        let host = address(&c, unit);
        psql(
            &host,
            6432,
            &user,
            &password,
            "appdb",
            &format!(
                "CREATE TABLE IF NOT EXISTS notes (unit text); INSERT INTO notes VALUES ('{unit}')"
            ),
        )
        .unwrap_or_else(|e| panic!("{unit}: {e}"));
        let mut seen = String::new();
        for _ in 0..50 {
            seen = psql(
                &host,
                6432,
                &user,
                &password,
                "appdb_readonly",
                "SELECT count(*) FROM notes",
            )
            .unwrap_or_else(|e| e);
            if seen.trim() != "0" && !seen.contains("ERROR") && !seen.contains("error") {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            seen.trim().parse::<u32>().is_ok_and(|n| n >= 1),
            "{unit} readonly: {seen}"
        );
        let refused = psql(
            &host,
            6432,
            &user,
            &password,
            "appdb_readonly",
            "INSERT INTO notes VALUES ('x')",
        );
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("read-only")),
            "{unit}: the read-only database takes no writes: {refused:?}"
        );
    }

    // A query cancelled through another unit: behind a load balancer, the
    // cancel request lands on the unit that does not hold the client, which
    // forwards it to the one that does.
    let units: Vec<SocketAddr> = ["pgbouncer-k8s/0", "pgbouncer-k8s/1"]
        .iter()
        .map(|u| format!("{}:6432", address(&c, u)).parse().unwrap())
        .collect();
    let balancer = RoundRobin::start(units.clone()).unwrap();
    let started = Instant::now();
    let sleeper = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", &balancer.address.port().to_string()])
        .args(["-U", &user, "-d", "appdb", "-c", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", &password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = false;
    for _ in 0..100 {
        running = psql(
            &primary_address,
            5432,
            "operator",
            &operator,
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'",
        )
        .is_ok_and(|n| n.trim() == "1");
        if running {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running, "the query reached PostgreSQL");
    // psql sends a cancel request on SIGINT, on a new connection.
    let sent = Command::new("kill")
        .args(["-INT", &sleeper.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = sleeper.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(50));
    assert_eq!(
        balancer.routes(),
        units,
        "the query went to one unit, the cancel request to the other"
    );
    drop(balancer);

    // Another application relates while a session is open through each unit:
    // every unit reloads its configuration for the new database, and the open
    // sessions carry on.
    let sessions: Vec<Child> = ["pgbouncer-k8s/0", "pgbouncer-k8s/1"]
        .iter()
        .map(|unit| {
            let mut session = Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", &address(&c, unit), "-p", "6432"])
                .args(["-U", &user, "-d", "appdb"])
                .env("PGPASSWORD", &password)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = session.stdin.as_mut().unwrap();
            stdin
                .write_all(b"SELECT 'before ' || pg_backend_pid();\n")
                .unwrap();
            stdin.flush().unwrap();
            session
        })
        .collect();
    let reloads_before = reloads(scratch.path());
    c.deploy(&client, "other", 1, &[("database", "otherdb")])
        .unwrap();
    c.integrate("other:database", "pgbouncer-k8s:database")
        .unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        active(c, "other/0").is_some_and(|m| m.contains('@'))
    });
    for mut session in sessions {
        let stdin = session.stdin.as_mut().unwrap();
        stdin
            .write_all(b"SELECT 'after ' || pg_backend_pid();\n")
            .unwrap();
        drop(session.stdin.take());
        let out = session.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the session survived: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pids: Vec<&str> = stdout
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(pids.len(), 2, "{stdout}");
        assert_eq!(
            pids[0], pids[1],
            "one server connection throughout: {stdout}"
        );
    }
    let reloads_after = reloads(scratch.path());
    for (before, after) in reloads_before.iter().zip(&reloads_after) {
        assert!(
            after > before,
            "each unit reloads PgBouncer for the new database: {reloads_before:?} -> {reloads_after:?}"
        );
    }

    // A switchover: PgBouncer follows the new primary, and the client's
    // endpoints (PgBouncer's own) stay as they were.
    // Patroni switches over only to a standby it has confirmed synchronous.
    converge(&mut c, Duration::from_secs(60), |c| {
        !e2e::synchronous_standbys(c, &primary).is_empty()
    });
    let target = e2e::synchronous_standbys(&c, &primary).remove(0);
    action(
        &mut c,
        &target,
        "promote-to-primary",
        serde_json::json!({"scope": "unit"}),
    );
    let target_address = address(&c, &target);
    converge(&mut c, Duration::from_secs(60), |c| {
        c.model.relations.iter().any(|r| {
            r.end_of("pgbouncer-k8s").is_some()
                && r.app_bags
                    .get("postgresql-k8s")
                    .and_then(|b| b.data.get("endpoints"))
                    == Some(&format!("{target_address}:5432"))
        })
    });
    for unit in ["pgbouncer-k8s/0", "pgbouncer-k8s/1"] {
        let host = address(&c, unit);
        let mut wrote = Err(String::new());
        for _ in 0..100 {
            wrote = psql(
                &host,
                6432,
                &user,
                &password,
                "appdb",
                "INSERT INTO notes VALUES ('after the switchover')",
            );
            if wrote.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        wrote.unwrap_or_else(|e| panic!("{unit} after the switchover: {e}"));
    }
    assert_eq!(
        client_credentials(&c, "client", "pgbouncer-k8s").map(|c| c.endpoints),
        Some(endpoints)
    );

    // Clients on the v1 library, through PgBouncer and straight to
    // PostgreSQL, and one on the v0 library straight to PostgreSQL: each gets
    // a user that logs in where its endpoints say, to its own database.
    let client_v1 = python_charm(scratch.path(), "pg-client-v1");
    c.deploy(&client_v1, "v1-pooled", 1, &[("database", "pooleddb")])
        .unwrap();
    c.integrate("v1-pooled:database", "pgbouncer-k8s:database")
        .unwrap();
    c.deploy(&client_v1, "v1-direct", 1, &[("database", "directdb")])
        .unwrap();
    c.integrate("v1-direct:database", "postgresql-k8s:database")
        .unwrap();
    c.deploy(&client, "v0-direct", 1, &[("database", "legacydb")])
        .unwrap();
    c.integrate("v0-direct:database", "postgresql-k8s:database")
        .unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        ["v1-pooled/0", "v1-direct/0", "v0-direct/0"]
            .iter()
            .all(|u| active(c, u).is_some_and(|m| m.contains('@')))
    });
    let creds = action(
        &mut c,
        "v1-pooled/0",
        "get-credentials",
        serde_json::json!({}),
    );
    assert_eq!(creds["database"], "pooleddb");
    assert!(
        creds["username"]
            .as_str()
            .is_some_and(|u| u.starts_with("relation_id_")),
        "{creds:?}"
    );
    for unit in ["pgbouncer-k8s/0", "pgbouncer-k8s/1"] {
        let host = address(&c, unit);
        as_client(
            &mut c,
            "v1-pooled/0",
            &host,
            6432,
            "pooleddb",
            "CREATE TABLE IF NOT EXISTS v1 (n int); INSERT INTO v1 VALUES (1)",
        )
        .unwrap_or_else(|e| panic!("v1 client through {unit}: {e}"));
        let read = as_client(
            &mut c,
            "v1-pooled/0",
            &host,
            6432,
            "pooleddb_readonly",
            "SELECT count(*) > 0 FROM v1",
        );
        assert!(
            read.as_deref().is_ok_and(|r| r.trim() == "t"),
            "v1 client through {unit}, read-only: {read:?}"
        );
    }
    let new_primary = address(&c, &target);
    for (unit, database) in [("v1-direct/0", "directdb"), ("v0-direct/0", "legacydb")] {
        let creds = action(&mut c, unit, "get-credentials", serde_json::json!({}));
        assert_eq!(
            creds["endpoints"],
            format!("{new_primary}:5432"),
            "{unit}: the primary"
        );
        let wrote = as_client(
            &mut c,
            unit,
            &new_primary,
            5432,
            database,
            "CREATE TABLE t (n int); INSERT INTO t VALUES (1); SELECT count(*) FROM t",
        );
        assert_eq!(wrote.as_deref().map(str::trim), Ok("1"), "{unit}");
    }

    // A superuser cannot log in through PgBouncer, so PgBouncer refuses to
    // create one, says why, and serves its other clients; PostgreSQL's own
    // endpoints serve the same request with a superuser that works there.
    let superuser = [("database", "admindb"), ("extra-user-roles", "SUPERUSER")];
    c.deploy(&client, "admin-pooled", 1, &superuser).unwrap();
    c.integrate("admin-pooled:database", "pgbouncer-k8s:database")
        .unwrap();
    c.deploy(&client, "admin-direct", 1, &superuser).unwrap();
    c.integrate("admin-direct:database", "postgresql-k8s:database")
        .unwrap();
    let refused = |c: &Controller| {
        ["pgbouncer-k8s/0", "pgbouncer-k8s/1"].iter().all(|u| {
            matches!(
                c.model.unit(u).map(|u| &u.status),
                Some(charm::Status::Blocked(m)) if m.contains("a superuser cannot log in through PgBouncer")
            )
        })
    };
    converge(&mut c, Duration::from_secs(120), |c| {
        refused(c) && active(c, "admin-direct/0").is_some_and(|m| m.contains('@'))
    });
    let task = c
        .run_action("admin-pooled/0", "get-credentials", Default::default())
        .unwrap();
    assert!(!task.succeeded(), "handed credentials: {task:?}");
    let is_superuser = as_client(
        &mut c,
        "admin-direct/0",
        &new_primary,
        5432,
        "admindb",
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
    );
    assert_eq!(is_superuser.as_deref().map(str::trim), Ok("t"));
    let host = address(&c, "pgbouncer-k8s/1");
    let served = as_client(&mut c, "v1-pooled/0", &host, 6432, "pooleddb", "SELECT 1");
    assert_eq!(served.as_deref().map(str::trim), Ok("1"), "another client");
}
