//! The main job: the whole system on the local model, driven through its `juju`
//! CLI the way a user drives Juju. In the model `demo` (under the user's
//! local-model home) it deploys etcd, a three-unit PostgreSQL cluster under
//! Patroni and two PgBouncer units in front of it, each from its `.charm` file
//! (packed as `scripts/build-charms` packs it), and a client application; waits
//! for the model to settle; shows `juju status`; then takes the client's
//! credentials and connects with `psql` through each PgBouncer unit, to the
//! client's database and to its read-only twin.
//!
//! The system is left running, and the job ends by printing how to use it and
//! the one command that tears it down. Run again, it finds what is already
//! deployed and related, adds only what is missing, and checks the system
//! again.
//!
//! Run with `./scripts/run`.

use e2e::{image_store, juju, packed_charm, psql, python_charm, Scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The model the system lives in.
const MODEL: &str = "demo";

/// The relations between the applications, as `juju integrate` takes them.
const RELATIONS: [(&str, &str); 3] = [
    ("postgresql-k8s:etcd", "etcd:etcd"),
    ("pgbouncer-k8s:backend-database", "postgresql-k8s:database"),
    ("client:database", "pgbouncer-k8s:database"),
];

/// Prints a command as a terminal would show it, runs it in the model, and
/// returns its output (printed too, unless it is asked for in a format).
fn run(args: &[&str]) -> Result<String> {
    let mut args = args.to_vec();
    if args[0] != "add-model" {
        args.extend(["-m", MODEL]);
    }
    println!("\n$ juju {}", args.join(" "));
    let out = Command::new(juju())
        .args(&args)
        .envs(image_store().map(|store| ("LOCAL_MODEL_IMAGES", store)))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !args.contains(&"--format") {
        print!("{stdout}");
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("juju {} failed", args.join(" ")).into());
    }
    Ok(stdout)
}

fn status() -> Result<Value> {
    Ok(serde_json::from_str(&run(&[
        "status", "--format", "json",
    ])?)?)
}

/// Whether `a` (`app:endpoint`) is related to `b`'s application.
fn related(status: &Value, a: &str, b: &str) -> bool {
    let (app, endpoint) = a.split_once(':').unwrap_or((a, ""));
    let remote = b.split(':').next().unwrap_or(b);
    status["applications"][app]["relations"][endpoint]
        .as_array()
        .is_some_and(|ends| ends.iter().any(|e| e["related-application"] == remote))
}

/// Deploys what is missing and relates what is not yet related.
fn converge(scratch: &Path) -> Result<()> {
    let home = local_model::store::home();
    if !local_model::store::state_path(&home.join(MODEL)).exists() {
        run(&["add-model", MODEL])?;
    }
    let status = status()?;
    let deployed = |app: &str| status["applications"].get(app).is_some();
    let path = |p: PathBuf| p.display().to_string();
    // Each application, its units, and its charm: one of this workspace's as
    // the `.charm` file users deploy, or a Python test charm's directory
    // (packed only when it is deployed).
    let applications = [
        ("etcd", "1", "etcd"),
        ("postgresql-k8s", "3", "postgresql-k8s"),
        ("pgbouncer-k8s", "2", "pgbouncer-k8s"),
        ("client", "1", "pg-client"),
    ];
    for (app, units, name) in applications {
        if !deployed(app) {
            let dir = if name == "pg-client" {
                python_charm(scratch, name)
            } else {
                packed_charm(scratch, name)
            };
            run(&["deploy", &path(dir), app, "-n", units])?;
        }
    }
    for (a, b) in RELATIONS {
        if !related(&status, a, b) {
            run(&["integrate", a, b])?;
        }
    }
    Ok(())
}

/// Connects through each PgBouncer unit: writes to the client's database and
/// reads it back from its read-only twin.
fn check(user: &str, password: &str, database: &str) -> Result<()> {
    let status = status()?;
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
        psql(host, 6432, user, password, database, &write)?;
        let read = "SELECT string_agg(DISTINCT via, ', ' ORDER BY via) FROM visits";
        let readonly = format!("{database}_readonly");
        println!("$ psql -h {host} -p 6432 -U {user} {readonly} -c \"{read}\"");
        let mut seen = String::new();
        for _ in 0..50 {
            seen = psql(host, 6432, user, password, &readonly, read)?;
            if seen.contains(unit.as_str()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        print!("{seen}");
    }
    Ok(())
}

/// How commands name the CLI: `juju` when the `juju` first on `PATH` is the
/// local model's (it has the `hook-tool` shim beside it), else its full path.
fn juju_command() -> String {
    let ours = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("juju"))
        .find(|j| j.is_file())
        .and_then(|j| j.canonicalize().ok())
        .is_some_and(|j| j.with_file_name("hook-tool").exists());
    if ours {
        "juju".into()
    } else {
        juju().display().to_string()
    }
}

/// What the user can do with the system now.
fn usage(user: &str, database: &str, host: &str) {
    let juju = juju_command();
    println!(
        "\n==> The system is up in the model {MODEL:?} and stays up.\n\
         \n\
         Its status:\n    {juju} status -m {MODEL}\n\
         \n\
         The client's password, as its charm was given it:\n    \
         {juju} run -m {MODEL} client/0 get-credentials\n\
         \n\
         psql through PgBouncer, with that password fetched for it:\n    \
         PGPASSWORD=\"$({juju} run -m {MODEL} client/0 get-credentials --format json \
         | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"client/0\"][\"results\"][\"password\"])')\" \
         psql -h {host} -p 6432 -U {user} {database}\n\
         \n\
         Tear it all down (the controller, every workload and the model's files):\n    \
         {juju} destroy-model {MODEL} --no-prompt"
    );
    if juju != "juju" {
        println!("\n(scripts/install puts `juju` on your PATH.)");
    }
}

fn main() -> Result<()> {
    let scratch = Scratch::new("demo");
    println!("==> the model {MODEL:?}: deploying and relating what is missing");
    converge(scratch.path())?;
    run(&["wait", "--timeout", "10m"])?;
    run(&["status"])?;

    let out = run(&["run", "client/0", "get-credentials", "--format", "json"])?;
    let parsed: Value = serde_json::from_str(&out)?;
    let creds = &parsed["client/0"]["results"];
    let field = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    let (user, password, database) = (field("username"), field("password"), field("database"));
    println!(
        "client/0 was given user {user} on database {database} at {} (read-only: {})",
        field("endpoints"),
        field("read-only-endpoints")
    );
    check(&user, &password, &database)?;
    let host = field("endpoints");
    let host = host.split(',').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    usage(&user, &database, host);
    Ok(())
}
