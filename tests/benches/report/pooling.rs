//! Pooling and connection set-up: pgbench straight to PostgreSQL and through
//! PgBouncer, run as plain processes on this machine. PostgreSQL 15 is a
//! throwaway cluster (`postgres_admin::testing::TestCluster`); PgBouncer 1.24
//! runs as many processes as the charm would on this machine's cores, each
//! with the ini file the charm's own code renders (`pgbouncer_k8s::pgb::ini`),
//! its `auth_query` through the function the charm installs
//! (`Admin::install_auth_function`).

use e2e::pgbench;
use pgbouncer_k8s::config::CharmConfig;
use pgbouncer_k8s::pgb::ini::{
    render_process, BackendTarget, ClientDatabase, ProcessSpec, SharedConfig, SharedInput,
};
use pgbouncer_k8s::pgb::peering::Peering;
use pgbouncer_k8s::pgb::pools::processes_for;
use pgbouncer_k8s::pgb::userlist::Userlist;
use pgbouncer_k8s::pgb::{Layout, PgbVersion};
use postgres_admin::testing::{free_port, is_root, postgres_ids, TestCluster};
use postgres_admin::Admin;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PGBOUNCER: &str = "/opt/pgbouncer/bin/pgbouncer";
const DATABASE: &str = "bench";
/// The role the benchmark logs in as (SCRAM over TCP).
const USER: &str = "bench";
/// A role PostgreSQL trusts over TCP: connection set-up without SCRAM.
const TRUSTED: &str = "bench_trust";
const AUTH_USER: &str = "pgbouncer_auth_bench";
/// PostgreSQL's `max_connections`: room for 1,000 clients straight to it.
const MAX_CONNECTIONS: &str = "1100";
/// pgbench's scale: 10 branches, a million accounts.
const SCALE: &str = "10";
pub const CLIENTS: [u32; 3] = [10, 100, 1000];

/// Where a pgbench run connects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    Direct,
    Session,
    Transaction,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Session => "pgbouncer-session",
            Target::Transaction => "pgbouncer-transaction",
        }
    }
}

/// The PostgreSQL cluster and the passwords of its roles.
struct Server {
    cluster: TestCluster,
    password: String,
    auth_password: String,
}

fn password() -> String {
    // A throwaway password, unique enough for a bench cluster that lives minutes.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("pw{nanos:x}{}", std::process::id())
}

fn server() -> Server {
    let cluster = TestCluster::start_with(
        &[
            ("max_connections", MAX_CONNECTIONS),
            ("shared_buffers", "256MB"),
        ],
        &[&format!("host all {TRUSTED} 127.0.0.1/32 trust")],
    )
    .expect("a PostgreSQL cluster starts");
    let server = Server {
        cluster,
        password: password(),
        auth_password: format!("auth{}", password()),
    };
    // Over the protocol, not psql's command line: the passwords stay off it.
    let mut client = server.cluster.connect_info("postgres").connect().unwrap();
    for sql in [
        format!("CREATE ROLE {USER} LOGIN PASSWORD '{}'", server.password),
        format!("CREATE ROLE {TRUSTED} LOGIN IN ROLE {USER}"),
        format!(
            "CREATE ROLE {AUTH_USER} LOGIN PASSWORD '{}'",
            server.auth_password
        ),
        format!("CREATE DATABASE {DATABASE} OWNER {USER}"),
    ] {
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("setting up the bench cluster: {e}"));
    }
    let mut admin = Admin::connect(&server.cluster.connect_info("postgres")).unwrap();
    let auth_user = postgres_admin::RoleName::parse(AUTH_USER).unwrap();
    admin.install_auth_function(DATABASE, &auth_user).unwrap();
    let init = pgbench(
        "127.0.0.1",
        server.cluster.port(),
        USER,
        &server.password,
        DATABASE,
        &["-i", "-q", "-s", SCALE],
    )
    .output()
    .unwrap();
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    server
}

impl Server {
    /// The one value `sql` returns, as the superuser.
    fn value(&self, sql: &str) -> String {
        let mut client = self.cluster.connect_info("postgres").connect().unwrap();
        client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// The role's SCRAM verifier, as PostgreSQL keeps it.
    fn verifier(&self, role: &str) -> String {
        self.value(&format!(
            "SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"
        ))
    }
}

/// PgBouncer's processes for one pool mode, stopped when dropped.
struct Bouncer {
    port: u16,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// PgBouncer's configuration as the charm renders it for one unit on this
/// machine, serving the bench database; `in_userlist` puts the bench role's
/// verifier in the auth file (else `auth_query` finds it).
pub fn rendered(layout: &Layout, mode: &str, port: u16, backend_port: u16) -> (SharedConfig, u32) {
    let mut raw = serde_json::Map::new();
    raw.insert("pool_mode".into(), json!(mode));
    raw.insert("listen_port".into(), json!(port));
    let config = CharmConfig::from_raw(&raw).unwrap();
    let processes = processes_for(cores());
    let backend = BackendTarget {
        primary: client_interface::Endpoint::parse(&format!("127.0.0.1:{backend_port}")).unwrap(),
        read_only: Vec::new(),
        auth_user: AUTH_USER.into(),
        verify_tls: false,
    };
    let shared = SharedConfig::build(&SharedInput {
        config: &config,
        app: "pgbouncer-k8s",
        backend: Some(&backend),
        clients: &[ClientDatabase {
            relation_id: 1,
            name: DATABASE.into(),
            privileged: false,
        }],
        readonly_dbs: &[],
        total_processes: processes,
        layout,
    });
    (shared, processes)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn bouncer(server: &Server, mode: &str, in_userlist: bool) -> Bouncer {
    let dir = tempfile::TempDir::with_prefix("bench-pgbouncer-").unwrap();
    let base = dir.path().display().to_string();
    let layout = Layout {
        data_dir: format!("{base}/lib"),
        log_dir: format!("{base}/log"),
    };
    let port = free_port().unwrap();
    let (shared, processes) = rendered(&layout, mode, port, server.cluster.port());
    let mut users = Userlist::default();
    users.set(AUTH_USER, &server.auth_password);
    if in_userlist {
        users.set(USER, &server.verifier(USER));
    }
    write(&layout.auth_file(), &users.render());
    let peering = Peering::default();
    for i in 0..processes {
        let spec = ProcessSpec {
            index: i,
            count: processes,
            version: PgbVersion::new(1, 24, 1),
            tls: false,
            listen_addr: "127.0.0.1",
            layout: &layout,
            peering: &peering,
        };
        write(&layout.ini_path(i), &render_process(&shared, &spec));
        std::fs::create_dir_all(layout.log_dir(i)).unwrap();
    }
    let mut children = Vec::new();
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {}", dir.path().display());
    }
    for i in 0..processes {
        let mut cmd = Command::new(PGBOUNCER);
        cmd.arg(layout.ini_path(i)).stderr(Stdio::null());
        if is_root() {
            let (uid, gid) = postgres_ids().unwrap();
            cmd.uid(uid).gid(gid);
        }
        children.push(cmd.spawn().unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..processes {
        let log = format!("{}/pgbouncer.log", layout.log_dir(i));
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("process up")
        {
            assert!(
                Instant::now() < deadline,
                "PgBouncer process {i} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Bouncer {
        port,
        children,
        _dir: dir,
    }
}

fn write(path: &str, text: &str) {
    std::fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// What one pgbench run measured.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub tps: f64,
    pub transactions: u64,
    pub failed: u64,
    /// Clients pgbench reported aborted (or all of them when it could not start).
    pub aborted: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Average time to open a connection, as pgbench reports it.
    pub connection_ms: f64,
}

impl Run {
    pub fn to_json(&self) -> Value {
        json!({
            "tps": self.tps,
            "transactions": self.transactions,
            "failed": self.failed,
            "aborted_clients": self.aborted,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "connection_ms": self.connection_ms,
        })
    }
}

fn field(stdout: &str, prefix: &str) -> Option<f64> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The latencies (ms) of every transaction in pgbench's per-transaction logs
/// under `dir`: the third column, in microseconds (`failed` or `skipped`
/// for a transaction that did not complete).
fn latencies(dir: &Path) -> Vec<f64> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        all.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2))
                .filter_map(|t| t.parse::<f64>().ok())
                .map(|us| us / 1000.0),
        );
    }
    all.sort_by(f64::total_cmp);
    all
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Seconds added to a run of `clients` for their logins: over twice
/// what pgbench reported for 1,000 SCRAM logins (9 s, a thread per core) on a
/// busy 2-core machine.
pub fn connecting(clients: u32) -> u64 {
    u64::from(clients) * 20 / 1000
}

/// Runs pgbench for `seconds` with `clients` clients against `port` as
/// `user`; `extra` adds options (`-S`, `-C`).
fn run_pgbench(
    port: u16,
    user: &str,
    pass: &str,
    clients: u32,
    seconds: u64,
    extra: &[&str],
) -> Run {
    let logs = tempfile::TempDir::with_prefix("bench-pgbench-log-").unwrap();
    let prefix = logs.path().join("tx");
    let c = clients.to_string();
    // pgbench's clock starts before its clients connect, and tps leaves the
    // connection time out: give 1,000 SCRAM logins time to finish first.
    let t = (seconds + connecting(clients)).to_string();
    let jobs = cores().min(clients as usize).to_string();
    let log_prefix = format!("--log-prefix={}", prefix.display());
    let mut args = vec!["-n", "-c", &c, "-j", &jobs, "-T", &t, "--log", &log_prefix];
    args.extend_from_slice(extra);
    let out = pgbench("127.0.0.1", port, user, pass, DATABASE, &args)
        .env("PGCONNECT_TIMEOUT", "30")
        .stdin(Stdio::null())
        .output()
        .expect("pgbench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let aborted = stderr.lines().filter(|l| l.contains(" aborted")).count() as u64;
    let Some(tps) = field(&stdout, "tps =") else {
        let why: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("error"))
            .take(2)
            .collect();
        eprintln!("    pgbench ran no transaction: {}", why.join(" / "));
        return Run {
            aborted: if out.status.success() {
                aborted
            } else {
                u64::from(clients)
            },
            ..Run::default()
        };
    };
    let lat = latencies(logs.path());
    Run {
        tps,
        transactions: field(&stdout, "number of transactions actually processed:").unwrap_or(0.0)
            as u64,
        failed: field(&stdout, "number of failed transactions:").unwrap_or(0.0) as u64,
        aborted,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        connection_ms: field(&stdout, "average connection time =")
            .or_else(|| field(&stdout, "initial connection time ="))
            .unwrap_or(0.0),
    }
}

/// Raises the open-file limit to its hard limit: 1,000 clients, their
/// server connections and PgBouncer's need more than the usual 1,024.
/// Children (pgbench, PgBouncer, PostgreSQL) inherit it.
pub fn raise_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a valid, owned struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// One row of the pooling table.
pub struct Pooled {
    pub workload: &'static str,
    pub target: Target,
    pub clients: u32,
    pub run: Run,
}

/// One row of the connection set-up table.
pub struct Setup {
    pub what: &'static str,
    pub run: Run,
}

pub struct Results {
    pub pooled: Vec<Pooled>,
    pub setup: Vec<Setup>,
    pub postgres_version: String,
    pub processes: u32,
    pub seconds: u64,
    pub ini: String,
}

pub fn run(seconds: u64) -> Results {
    let server = server();
    let postgres_version = server.value("SHOW server_version");
    let port = server.cluster.port();
    let mut pooled = Vec::new();
    let mut ini = String::new();
    let mut processes = 0;
    for target in [Target::Direct, Target::Session, Target::Transaction] {
        let bouncer = match target {
            Target::Direct => None,
            Target::Session => Some(bouncer(&server, "session", false)),
            Target::Transaction => Some(bouncer(&server, "transaction", false)),
        };
        if target == Target::Transaction {
            let layout = Layout {
                data_dir: "/var/lib/pgbouncer".into(),
                log_dir: "/var/log/pgbouncer".into(),
            };
            let (shared, n) = rendered(&layout, "transaction", 6432, 5432);
            ini = shared.render();
            processes = n;
        }
        let at = bouncer.as_ref().map_or(port, |b| b.port);
        for (workload, extra) in [("select-only", &["-S"][..]), ("tpcb-like", &[][..])] {
            for clients in CLIENTS {
                eprintln!("  pgbench {workload} {} {clients} clients", target.name());
                let run = run_pgbench(at, USER, &server.password, clients, seconds, extra);
                eprintln!(
                    "    {:.0} tps, p50 {:.2} ms, p99 {:.2} ms, {} failed, {} aborted",
                    run.tps, run.p50_ms, run.p99_ms, run.failed, run.aborted
                );
                pooled.push(Pooled {
                    workload,
                    target,
                    clients,
                    run,
                });
            }
        }
    }
    let mut setup = Vec::new();
    let connect = |what: &'static str, port: u16, user: &str, setup: &mut Vec<Setup>| {
        eprintln!("  pgbench -C {what}");
        let run = run_pgbench(port, user, &server.password, 10, seconds, &["-S", "-C"]);
        eprintln!(
            "    {:.0} tps, {:.2} ms a connection",
            run.tps, run.connection_ms
        );
        setup.push(Setup { what, run });
    };
    connect("direct, trust", port, TRUSTED, &mut setup);
    connect("direct, SCRAM", port, USER, &mut setup);
    {
        let b = bouncer(&server, "transaction", true);
        connect(
            "PgBouncer, SCRAM, role in the userlist",
            b.port,
            USER,
            &mut setup,
        );
    }
    {
        let b = bouncer(&server, "transaction", false);
        connect(
            "PgBouncer, SCRAM, role by auth_query",
            b.port,
            USER,
            &mut setup,
        );
    }
    Results {
        pooled,
        setup,
        postgres_version,
        processes,
        seconds,
        ini,
    }
}
