//! The main job: the whole system on the local model, driven through its `juju`
//! CLI the way a user drives Juju. It deploys etcd, a three-unit PostgreSQL
//! cluster under Patroni, two PgBouncer units in front of it and a client
//! application; waits for the model to settle; shows `juju status`; then takes
//! the client's credentials and connects with `psql` through each PgBouncer
//! unit, to the client's database and to its read-only twin. The model is
//! destroyed at the end.
//!
//! Run with `./scripts/run`.

use e2e::{charm, juju, psql, python_charm, Scratch};
use std::process::Command;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Prints a command as a terminal would show it, runs it, and returns its output.
fn run(home: &std::path::Path, args: &[&str]) -> Result<String> {
    println!("\n$ juju {}", args.join(" "));
    let out = Command::new(juju())
        .args(args)
        .env("LOCAL_MODEL_HOME", home)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let quiet = args.contains(&"--format");
    if !quiet {
        print!("{stdout}");
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("juju {} failed", args.join(" ")).into());
    }
    Ok(stdout)
}

fn main() -> Result<()> {
    let scratch = Scratch::new("demo");
    let home = scratch.path().join("home");
    println!("==> packing the charms");
    let etcd = charm(scratch.path(), "etcd");
    let postgresql = charm(scratch.path(), "postgresql-k8s");
    let pgbouncer = charm(scratch.path(), "pgbouncer-k8s");
    let client = python_charm(scratch.path(), "pg-client");
    let path = |p: &std::path::Path| p.display().to_string();

    let result = (|| -> Result<()> {
        run(&home, &["add-model", "demo"])?;
        run(&home, &["deploy", &path(&etcd), "etcd"])?;
        run(
            &home,
            &["deploy", &path(&postgresql), "postgresql-k8s", "-n", "3"],
        )?;
        run(&home, &["integrate", "postgresql-k8s:etcd", "etcd:etcd"])?;
        run(
            &home,
            &["deploy", &path(&pgbouncer), "pgbouncer-k8s", "-n", "2"],
        )?;
        run(
            &home,
            &[
                "integrate",
                "pgbouncer-k8s:backend-database",
                "postgresql-k8s:database",
            ],
        )?;
        run(&home, &["deploy", &path(&client), "client"])?;
        run(
            &home,
            &["integrate", "client:database", "pgbouncer-k8s:database"],
        )?;
        run(&home, &["wait", "--timeout", "10m"])?;
        run(&home, &["status"])?;

        let out = run(
            &home,
            &["run", "client/0", "get-credentials", "--format", "json"],
        )?;
        let parsed: serde_json::Value = serde_json::from_str(&out)?;
        let creds = &parsed["client/0"]["results"];
        let field = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
        let (user, password, database) = (field("username"), field("password"), field("database"));
        println!(
            "client/0 was given user {user} on database {database} at {} (read-only: {})",
            field("endpoints"),
            field("read-only-endpoints")
        );
        let status: serde_json::Value =
            serde_json::from_str(&run(&home, &["status", "--format", "json"])?)?;
        let units = status["applications"]["pgbouncer-k8s"]["units"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (unit, info) in &units {
            let host = info["address"].as_str().unwrap_or_default();
            let write = format!(
                "CREATE TABLE IF NOT EXISTS visits (via text); INSERT INTO visits VALUES ('{unit}')"
            );
            println!("\n$ psql -h {host} -p 6432 -U {user} {database} -c \"{write}\"");
            psql(host, 6432, &user, &password, &database, &write)?;
            let read = "SELECT string_agg(via, ', ' ORDER BY via) FROM visits";
            let readonly = format!("{database}_readonly");
            println!("$ psql -h {host} -p 6432 -U {user} {readonly} -c \"{read}\"");
            let mut seen = String::new();
            for _ in 0..50 {
                seen = psql(host, 6432, &user, &password, &readonly, read)?;
                if seen.contains(unit.as_str()) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            print!("{seen}");
        }
        Ok(())
    })();
    run(&home, &["destroy-model", "demo", "--no-prompt"])?;
    result
}
