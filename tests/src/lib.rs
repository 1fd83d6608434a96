//! Helpers for the end-to-end tests: build and pack the charms, run a local
//! model in a scratch directory, and wait for it to converge.

// The end-to-end tests' support: a failure here fails the test.
#![allow(clippy::unwrap_used)]

pub mod balancer;
pub mod credentials;
pub mod s3;

use local_model::agent::HookCost;
use local_model::controller::Controller;
use local_model::testing;
use pebble_api::{Pebble, PebbleClient};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo target profile directory these tests were built into.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> or target/<profile>/examples/<example> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("a target directory")
        .to_path_buf()
}

/// Builds the charms' dispatch binaries and the hook-tool shim, once per test binary.
fn build() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let ok = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .args(["build", "-q", "--locked"])
            // The profile these tests or benches were built with.
            .args(
                (bin_dir().file_name() == Some(std::ffi::OsStr::new("release")))
                    .then_some("--release"),
            )
            .args([
                "-p",
                "etcd-charm",
                "-p",
                "pgbouncer-k8s",
                "-p",
                "postgresql-k8s",
                "-p",
                "local-model",
                "-p",
                "pgbouncer-exporter",
            ])
            .arg("--bins")
            .status()
            .expect("cargo runs")
            .success();
        assert!(ok, "building the charms failed");
    });
}

/// A charm of this workspace: its binary's package and its project directory
/// (charmcraft.yaml and the YAML files).
fn project(name: &str) -> (&'static str, &'static str) {
    match name {
        "etcd" => ("etcd-charm", "charms/etcd"),
        "pgbouncer-k8s" => ("pgbouncer-k8s", "charms/pgbouncer-k8s"),
        "postgresql-k8s" => ("postgresql-k8s", "charms/postgresql-k8s"),
        other => panic!("no charm {other} in this workspace"),
    }
}

/// A charm of this workspace packed as Juju unpacks it: `dispatch` beside its YAML.
pub fn charm(scratch: &Path, name: &str) -> PathBuf {
    build();
    let (binary, files) = project(name);
    let dir = scratch.join("charms").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(bin_dir().join(binary), dir.join("dispatch")).unwrap();
    // PgBouncer's exporter ships in its charm, which pushes it into the container.
    if name == "pgbouncer-k8s" {
        let exporter = "pgbouncer-exporter";
        std::fs::copy(bin_dir().join(exporter), dir.join(exporter)).unwrap();
    }
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        let src = workspace().join(files).join(f);
        if src.exists() {
            std::fs::copy(src, dir.join(f)).unwrap();
        }
    }
    dir
}

/// A charm of this workspace as the `.charm` file users deploy: its
/// [`charm`] directory zipped by `scripts/pack-charm`, as
/// `scripts/build-charms` packs it (from this build's binaries).
pub fn packed_charm(scratch: &Path, name: &str) -> PathBuf {
    let dir = charm(scratch, name);
    let out = Command::new("python3")
        .arg(workspace().join("scripts/pack-charm"))
        .arg(&dir)
        .arg(workspace().join(project(name).1))
        .arg(scratch.join("charms"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "packing {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The python of the test charms' venv (`ops`, the data-platform libraries),
/// made on first use beside the cargo target's other scratch files (`target/tmp`).
pub fn ops_python() -> PathBuf {
    let tmp = bin_dir()
        .parent()
        .expect("the target directory")
        .join("tmp");
    testing::venv(&tmp.join("ops-venv"))
}

/// The Python test charm `name` (under `tests/charms`) packed for the local
/// model, on a venv with `ops` and the data-platform libraries from PyPI.
pub fn python_charm(scratch: &Path, name: &str) -> PathBuf {
    let python = ops_python();
    let lib = testing::v0_lib_dir(&python);
    testing::pack_python(
        &workspace().join("tests/charms").join(name),
        &scratch.join("charms").join(name),
        &python,
        &[lib],
    )
}

/// How `psql` secures its connection: libpq's `sslmode` and, for the
/// verifying modes, the CA file to trust (`sslrootcert`). Both go through the
/// environment (`PGSSLMODE`, `PGSSLROOTCERT`), like the password.
#[derive(Clone, Copy, Debug)]
pub struct PsqlTls<'a> {
    pub mode: &'a str,
    pub root_cert: Option<&'a Path>,
}

/// Runs `sql` with `psql` against `host:port` as `user` and returns its
/// unaligned, tuples-only output, or psql's error output. The password goes
/// through the environment, never the command line.
pub fn psql(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    database: &str,
    sql: &str,
) -> Result<String, String> {
    psql_tls(host, port, user, password, database, sql, None)
}

/// `pgbench` against `database` at `host:port` as `user`, with `args` before
/// the database name; the password goes through the environment, as
/// [`psql`]'s does. The caller runs it.
pub fn pgbench(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    database: &str,
    args: &[&str],
) -> Command {
    let mut cmd = Command::new("pgbench");
    cmd.args(["-h", host, "-p", &port.to_string(), "-U", user])
        .args(args)
        .arg(database)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5");
    cmd
}

/// [`psql`] with an explicit `sslmode` (and CA file); `None` leaves libpq's
/// defaults.
pub fn psql_tls(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    database: &str,
    sql: &str,
    tls: Option<PsqlTls<'_>>,
) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            database,
        ])
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5");
    if let Some(tls) = tls {
        cmd.env("PGSSLMODE", tls.mode);
        match tls.root_cert {
            Some(ca) => cmd.env("PGSSLROOTCERT", ca),
            None => cmd.env_remove("PGSSLROOTCERT"),
        };
    }
    let out = cmd.output().map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A libpq `key=value` string read as libpq reads it: values plain up to
/// whitespace or quoted in `'`, a backslash escaping the next character.
pub fn parse_conninfo(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return out;
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        chars.next();
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '\'' if quoted => break,
                c if c.is_whitespace() && !quoted => break,
                c => value.push(c),
            }
        }
        out.push((key.trim().to_string(), value));
    }
}

/// Writes a `key=value` string back (values quoted, as libpq accepts them).
fn render_conninfo(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `sql` with `psql` given the connection string `conninfo` (the
/// password taken out of it into the environment, off the command line),
/// optionally with its host replaced; returns the unaligned output.
pub fn psql_with(conninfo: &str, host: Option<&str>, sql: &str) -> Result<String, String> {
    let mut pairs = parse_conninfo(conninfo);
    let password = pairs
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.clone())
        .expect("a password in the connection string");
    pairs.retain(|(k, _)| k != "password");
    if let Some(h) = host {
        for (k, v) in pairs.iter_mut() {
            if k == "host" {
                *v = h.to_string();
            }
        }
    }
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg(render_conninfo(&pairs))
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// The local model's `juju` CLI, as built beside these tests.
pub fn juju() -> PathBuf {
    build();
    bin_dir().join("juju")
}

/// xorshift64*: a small generator, repeatable for a seed; the fault runs
/// draw their plans from it.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A generator from `seed` mixed first (splitmix64), so that nearby
    /// seeds start far apart.
    pub fn mixed(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng::new(z ^ (z >> 31))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A seed from the clock, for a run not given one.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// A scratch directory, removed when dropped.
pub struct Scratch(TempDir);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        Scratch(TempDir::with_prefix(format!("e2e-{name}-")).unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    /// Keeps the directory when a test failed and `E2E_KEEP` is set: its logs
    /// and unit directories stay for a post-mortem.
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("E2E_KEEP").is_some() {
            eprintln!("kept {}", self.path().display());
            self.0.disable_cleanup(true);
        }
    }
}

/// The workload images `scripts/build-images` builds, which sandboxed
/// containers run on, as they run in their pods: required when the tests run
/// as root (sandboxed); `None` otherwise, when workloads run on the host.
pub fn image_store() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let store = workspace().join("target/images");
    for image in ["etcd", "pgbouncer", "postgresql"] {
        assert!(
            store.join(image).join("rootfs/usr").is_dir(),
            "the workload image {image} is not built: run scripts/build-images (as root)"
        );
    }
    Some(store)
}

/// A controller over the scratch directory, with sandboxed workloads on
/// the workload images.
pub fn controller(scratch: &Scratch) -> Controller {
    build();
    let mut c = Controller::new(
        &scratch.path().join("controller"),
        &bin_dir().join("hook-tool"),
        true,
    )
    .unwrap();
    if let Some(store) = image_store() {
        c.use_image_store(&store);
    }
    c
}

/// A client of a unit's container's Pebble, once it answers.
pub fn pebble(c: &Controller, unit: &str, container: &str) -> PebbleClient {
    let socket = c
        .root()
        .join("units")
        .join(unit.replace('/', "-"))
        .join("containers")
        .join(container)
        .join("pebble.socket");
    let mut client = PebbleClient::new(socket);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.can_connect() {
        assert!(Instant::now() < deadline, "{unit}'s Pebble does not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    client
}

/// Asserts that a unit's container runs on the workload image `image`: the
/// Debian packages its processes see are those the image was built with
/// (`target/images/<image>/manifest`), not the machine's. Sandboxed only;
/// unsandboxed, workloads run on the host.
pub fn assert_runs_on_image(c: &Controller, unit: &str, container: &str, image: &str) {
    let Some(store) = image_store() else {
        return;
    };
    let output = pebble(c, unit, container)
        .exec(&pebble_api::Exec {
            command: ["dpkg-query", "-W", "-f=${Package} ${Version}\\n"]
                .map(String::from)
                .to_vec(),
            ..pebble_api::Exec::default()
        })
        .unwrap();
    assert_eq!(
        output.exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    let seen = sorted(&String::from_utf8_lossy(&output.stdout));
    let built = sorted(&std::fs::read_to_string(store.join(image).join("manifest")).unwrap());
    assert_eq!(
        seen, built,
        "{unit}'s {container} container is not the {image} image"
    );
}

/// A unit's workload message when it is active.
pub fn active(c: &Controller, unit: &str) -> Option<String> {
    match &c.model.unit(unit)?.status {
        charm::Status::Active(m) => Some(m.clone()),
        _ => None,
    }
}

/// A unit's blocked message, if it is blocked.
pub fn blocked(c: &Controller, unit: &str) -> Option<String> {
    match &c.model.unit(unit)?.status {
        charm::Status::Blocked(m) => Some(m.clone()),
        _ => None,
    }
}

/// How many times `phrase` is in the logs of PgBouncer's processes on `unit`
/// (one log file per process, in its container under `scratch`).
pub fn pgbouncer_logged(scratch: &Path, unit: &str, phrase: &str) -> usize {
    let logs = scratch
        .join("controller/units")
        .join(unit.replace('/', "-"))
        .join("rootfs/pgbouncer/var/log/pgbouncer");
    std::fs::read_dir(&logs)
        .unwrap_or_else(|e| panic!("{}: {e}", logs.display()))
        .flatten()
        .map(|d| {
            std::fs::read_to_string(d.path().join("pgbouncer.log"))
                .unwrap_or_default()
                .matches(phrase)
                .count()
        })
        .sum()
}

/// A unit's address.
pub fn address(c: &Controller, unit: &str) -> String {
    c.model
        .unit(unit)
        .expect("a unit of the model")
        .address
        .clone()
}

/// Whether Patroni, asked on `unit`'s REST API, names a synchronous standby
/// that runs (Patroni 3.0 says `running`, later ones `streaming`). Until it
/// does, Patroni promotes no replica when the primary is lost: none is known
/// to hold every committed transaction.
pub fn synchronous_standby_runs(c: &Controller, unit: &str) -> bool {
    !synchronous_standbys(c, unit).is_empty()
}

/// The units Patroni, asked on `unit`'s REST API, names as running
/// synchronous standbys: the ones a switchover may promote.
pub fn synchronous_standbys(c: &Controller, unit: &str) -> Vec<String> {
    let members = patroni_members(c, unit);
    members
        .iter()
        .filter(|m| {
            m["role"] == "sync_standby"
                && matches!(m["state"].as_str(), Some("running" | "streaming"))
        })
        .filter_map(|m| m["name"].as_str())
        .filter_map(|name| name.rsplit_once('-'))
        .map(|(app, n)| format!("{app}/{n}"))
        .collect()
}

/// The members Patroni's `/cluster` lists, asked on `unit`'s REST API;
/// none when it does not answer.
pub fn patroni_members(c: &Controller, unit: &str) -> Vec<serde_json::Value> {
    let host = address(c, unit);
    let Ok(stream) = std::net::TcpStream::connect((host.as_str(), 8008)) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(answer) = http_exchange::exchange(stream, &host, "GET", "/cluster", &[], b"") else {
        return Vec::new();
    };
    let cluster: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    cluster["members"].as_array().cloned().unwrap_or_default()
}

/// Whether every replica Patroni lists, asked on `unit`'s REST API, has
/// replayed all the primary wrote (`lag` 0): a replica behind is no
/// candidate for promotion.
pub fn replicas_caught_up(c: &Controller, unit: &str) -> bool {
    let members = patroni_members(c, unit);
    !members.is_empty()
        && members
            .iter()
            .filter(|m| m["role"] != "leader")
            .all(|m| m["lag"].as_u64() == Some(0))
}

/// Runs an action on a unit; it must succeed. Returns its results.
pub fn action(
    c: &mut Controller,
    unit: &str,
    name: &str,
    params: serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    let params = params.as_object().cloned().unwrap_or_default();
    let task = c.run_action(unit, name, params).expect("the action runs");
    assert!(task.succeeded(), "{name} on {unit}: {task:?}");
    task.results
}

/// The units of an application, by name.
pub fn units(c: &Controller, app: &str) -> Vec<String> {
    c.model
        .applications
        .get(app)
        .map(|a| a.units.keys().cloned().collect())
        .unwrap_or_default()
}

/// What a provider published to the `client` application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub endpoints: String,
    pub database: String,
}

/// The credentials `provider` published to the `client` application, read
/// from the user secret it granted; `None` until they are there.
pub fn client_credentials(c: &Controller, client: &str, provider: &str) -> Option<Credentials> {
    let relation = c
        .model
        .relations
        .iter()
        .find(|r| r.end_of(client).is_some() && r.end_of(provider).is_some())?;
    let bag = &relation.app_bags.get(provider)?.data;
    let secret_id = bag.get("secret-user")?;
    let xid = secret_id.rsplit(['/', ':']).next()?;
    let secret = c.model.secrets.iter().find(|s| s.xid == xid)?;
    let content = secret.revisions.values().last()?;
    Some(Credentials {
        user: content.get("username")?.to_string(),
        password: content.get("password")?.to_string(),
        endpoints: bag.get("endpoints")?.clone(),
        database: bag.get("database")?.clone(),
    })
}

/// Deploys etcd and an `n`-unit PostgreSQL cluster over it, and waits until
/// every unit is active with exactly one primary.
pub fn postgresql_cluster(c: &mut Controller, scratch: &Path, n: u32) {
    postgresql_cluster_with(c, scratch, n, &[]);
}

/// [`postgresql_cluster`] with PostgreSQL's charm options `config`.
pub fn postgresql_cluster_with(
    c: &mut Controller,
    scratch: &Path,
    n: u32,
    config: &[(&str, &str)],
) {
    c.deploy(&charm(scratch, "etcd"), "etcd", 1, &[]).unwrap();
    c.deploy(
        &charm(scratch, "postgresql-k8s"),
        "postgresql-k8s",
        n,
        config,
    )
    .unwrap();
    c.integrate("postgresql-k8s:etcd", "etcd:etcd").unwrap();
    converge(c, Duration::from_secs(180), |c| {
        cluster_settled(c, n as usize)
    });
}

/// Whether the PostgreSQL application has `n` units, all active, one of them
/// the primary.
pub fn cluster_settled(c: &Controller, n: usize) -> bool {
    let roles: Vec<Option<String>> = units(c, "postgresql-k8s")
        .iter()
        .map(|u| active(c, u))
        .collect();
    roles.len() == n
        && roles.iter().all(Option::is_some)
        && roles
            .iter()
            .filter(|r| r.as_deref() == Some("Primary"))
            .count()
            == 1
}

/// The primary, as the `get-primary` action on `unit` reports it.
pub fn primary(c: &mut Controller, unit: &str) -> String {
    action(c, unit, "get-primary", serde_json::json!({}))["primary"]
        .as_str()
        .expect("get-primary names the primary")
        .to_string()
}

/// Runs every due hook until `done` holds, polling twice a second; panics with
/// the status table and the failed hooks after `timeout`. No update-status is
/// run: what the charms do must follow from the events themselves.
pub fn converge(c: &mut Controller, timeout: Duration, done: impl Fn(&Controller) -> bool) {
    converge_polling(c, timeout, Duration::from_millis(500), done);
}

/// [`converge`], looking every `poll`.
pub fn converge_polling(
    c: &mut Controller,
    timeout: Duration,
    poll: Duration,
    done: impl Fn(&Controller) -> bool,
) {
    let start = Instant::now();
    let mut failures = Vec::new();
    loop {
        for (unit, run) in c.settle().unwrap() {
            if !run.ok {
                failures.push(format!("{unit} {}: {}", run.event.hook_name(), run.output));
            }
        }
        if done(c) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "not converged after {timeout:?}\n{}\nfailed hooks:\n{}",
            c.status(),
            failures.join("\n")
        );
        std::thread::sleep(poll);
    }
}

/// One hook the model ran alone: where, which, how long it took from start to
/// exit, and what its process cost.
#[derive(Clone, Debug)]
pub struct TimedHook {
    pub unit: String,
    pub hook: String,
    pub wall: Duration,
    pub cost: HookCost,
}

/// Runs every due hook one at a time (so that none shares the machine with
/// another) until none is due; every hook must succeed. Returns them timed.
pub fn settle_timed(c: &mut Controller) -> Vec<TimedHook> {
    let mut ran = Vec::new();
    while let Some(due) = c.next_due() {
        let unit = due.unit.clone();
        let start = Instant::now();
        let executed = due.execute();
        let wall = start.elapsed();
        let run = c.finish(due, executed).unwrap();
        assert!(
            run.ok,
            "{unit} {} failed: {}",
            run.event.hook_name(),
            run.output
        );
        ran.push(TimedHook {
            unit,
            hook: run.event.hook_name(),
            wall,
            cost: run.cost,
        });
    }
    ran
}
