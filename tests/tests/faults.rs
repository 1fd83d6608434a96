//! The fault run: the main job's deploy sequence (etcd, a PostgreSQL cluster
//! under Patroni, two PgBouncer units and a client, each related in turn)
//! driven through the `juju` CLI, with the controller killed with SIGKILL at
//! random points on the way. Each kill is followed by convergence, and by
//! checks that nothing was lost: every application, unit and relation sent
//! so far is there; every unit is active (one PostgreSQL primary); the
//! operator's row written on the primary is still there; and once the client
//! is related, its credentials log in through every PgBouncer unit with
//! `psql`, where every row written after an earlier kill reads back.
//!
//! A kill is either a crash point (`LOCAL_MODEL_CRASH_AT`: a deploy cut
//! short, a hook before, during or after its process, or once committed; the
//! n-th time it is reached) or a SIGKILL from outside after a random delay.
//!
//! Knobs: `LOCAL_MODEL_FAULTS` (how many kills, default 3),
//! `LOCAL_MODEL_FAULT_SEED` (the seed; printed, to replay a run: the same
//! kills at the same points, in a model whose hooks interleave as they
//! will), `LOCAL_MODEL_FAULT_TOPOLOGY=main` (the main job's three PostgreSQL
//! units instead of two).

#![allow(clippy::unwrap_used)]

use e2e::{charm, image_store, juju, psql, python_charm, Rng, Scratch};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The model the run deploys into.
const MODEL: &str = "faults";

/// One step of the deploy sequence.
#[derive(Clone, Debug)]
enum Step {
    Deploy {
        app: &'static str,
        charm: PathBuf,
        units: u32,
    },
    Integrate(&'static str, &'static str),
}

impl Step {
    fn args(&self) -> Vec<String> {
        match self {
            Step::Deploy { app, charm, units } => vec![
                "deploy".into(),
                charm.display().to_string(),
                app.to_string(),
                "-n".into(),
                units.to_string(),
            ],
            Step::Integrate(a, b) => vec!["integrate".into(), a.to_string(), b.to_string()],
        }
    }

    /// Whether the model already has what the step asks for.
    fn done(&self, status: &Value) -> bool {
        match self {
            Step::Deploy { app, .. } => status["applications"].get(*app).is_some(),
            Step::Integrate(a, b) => related(status, a, b),
        }
    }
}

/// Whether `a` (`app:endpoint`) is related to `b`'s application.
fn related(status: &Value, a: &str, b: &str) -> bool {
    let (app, endpoint) = a.split_once(':').unwrap_or((a, ""));
    let remote = b.split(':').next().unwrap_or(b);
    status["applications"][app]["relations"][endpoint]
        .as_array()
        .is_some_and(|ends| ends.iter().any(|e| e["related-application"] == remote))
}

/// How a kill happens.
#[derive(Clone, Debug)]
enum Kill {
    /// The controller kills itself at a crash point (`LOCAL_MODEL_CRASH_AT`).
    At(String),
    /// SIGKILL from outside, this long after the step was sent.
    After(Duration),
}

/// The points a kill may land on, and how many times each may be passed
/// before it does; the deploy points only while deploying.
const HOOK_POINTS: [(&str, u64); 4] = [
    ("hook-started", 4),
    ("hook-tool", 25),
    ("hook-exited", 4),
    ("hook-committed", 4),
];
const DEPLOY_POINTS: [&str; 3] = ["charm-copied", "deployed", "copying"];

/// The kills of a run: for each, the step it lands in, and how. Kills go to
/// different steps while there are steps without one; a step's first kill
/// lands during the step, its others (timed from the kill before) during
/// the recovery from it.
fn plan(seed: u64, faults: usize, steps: &[Step]) -> Vec<(usize, Kill)> {
    let mut rng = Rng::new(seed);
    let mut free: Vec<usize> = Vec::new();
    let mut kills: Vec<(usize, Kill)> = (0..faults)
        .map(|_| {
            if free.is_empty() {
                free = (0..steps.len()).collect();
            }
            let step = free.remove(rng.below(free.len() as u64) as usize);
            let deploying = matches!(steps[step], Step::Deploy { .. });
            let kill = match rng.below(if deploying { 4 } else { 3 }) {
                0 => Kill::After(Duration::from_millis(rng.below(6000))),
                1 | 2 => {
                    let (point, most) = HOOK_POINTS[rng.below(HOOK_POINTS.len() as u64) as usize];
                    Kill::At(format!("{point}@{}", 1 + rng.below(most)))
                }
                _ => {
                    let point = DEPLOY_POINTS[rng.below(DEPLOY_POINTS.len() as u64) as usize];
                    Kill::At(point.to_string())
                }
            };
            (step, kill)
        })
        .collect();
    kills.sort_by_key(|(step, _)| *step);
    // A step's later kills are timed, from the kill before.
    for i in 1..kills.len() {
        if kills[i].0 == kills[i - 1].0 {
            kills[i].1 = Kill::After(Duration::from_millis(rng.below(6000)));
        }
    }
    kills
}

/// The `juju` CLI on the run's model, in a home of its own; the model is
/// destroyed (with or without a controller running) when dropped.
struct Juju {
    home: PathBuf,
}

impl Juju {
    fn dir(&self) -> PathBuf {
        self.home.join(MODEL)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(juju());
        command
            .args(args)
            .env("LOCAL_MODEL_HOME", &self.home)
            .env("JUJU_MODEL", MODEL)
            .envs(image_store().map(|store| ("LOCAL_MODEL_IMAGES", store)))
            .env_remove("LOCAL_MODEL_CRASH_AT");
        command
    }

    /// Runs a command: its stdout, or its stderr.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self.command(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs a command until it gets an answer from a controller that stays
    /// up for it (one killed meanwhile hangs up).
    fn retrying(&self, args: &[&str]) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.run(args) {
                Err(e) if lost(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn status(&self) -> Value {
        let out = self
            .retrying(&["status", "--format", "json"])
            .unwrap_or_else(|e| panic!("juju status: {e}{}", self.log()));
        serde_json::from_str(&out).unwrap()
    }

    /// Kills the controller with SIGKILL, if one runs.
    fn kill(&self) {
        kill_controller(&self.dir());
    }

    /// Kills the controller and starts one that kills itself at `point`.
    fn arm(&self, point: &str) {
        self.kill();
        let out = self
            .command(&["status"])
            .env("LOCAL_MODEL_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", self.log());
    }

    /// The controller's log from `offset` on.
    fn log_since(&self, offset: usize) -> String {
        let log = std::fs::read(self.dir().join("controller.log")).unwrap_or_default();
        String::from_utf8_lossy(&log[offset.min(log.len())..]).into_owned()
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(self.dir().join("controller.log")).map_or(0, |m| m.len() as usize)
    }

    /// The end of the controller's log, for a failure's message.
    fn log(&self) -> String {
        let log = self.log_since(0);
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "\ncontroller.log:\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// Sends a step until the model has it (a command whose controller
    /// dies may or may not have done it).
    fn ensure(&self, step: &Step) {
        let args = step.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for _ in 0..20 {
            if step.done(&self.status()) {
                return;
            }
            match self.run(&args) {
                Ok(_) => return,
                Err(e) if lost(&e) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => panic!("juju {args:?}: {e}{}", self.log()),
            }
        }
        panic!("juju {args:?} never got through{}", self.log());
    }

    /// Waits until no hook is due (again after a controller's death).
    fn wait_idle(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match self.run(&["wait", "--timeout", "10m"]) {
                Ok(_) => return Ok(()),
                Err(e) if lost(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs an action; its results.
    fn action(&self, unit: &str, action: &str) -> Value {
        let out = self
            .retrying(&["run", unit, action, "--format", "json"])
            .unwrap_or_else(|e| panic!("juju run {unit} {action}: {e}{}", self.log()));
        let parsed: Value = serde_json::from_str(&out).unwrap();
        parsed
            .as_object()
            .and_then(|units| units.values().next())
            .map(|task| task["results"].clone())
            .unwrap_or_default()
    }
}

impl Drop for Juju {
    fn drop(&mut self) {
        if self.dir().exists() {
            let _ = self.run(&["destroy-model", MODEL, "--no-prompt"]);
        }
    }
}

/// Kills the controller of the model in `dir` with SIGKILL, if one runs,
/// and waits until it is gone.
fn kill_controller(dir: &std::path::Path) {
    let pid = std::fs::read_to_string(dir.join("controller.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !local_model::pebbles::gone(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether a command failed because its controller was lost (killed while
/// it answered, or not yet back).
fn lost(stderr: &str) -> bool {
    stderr.contains("the controller hung up") || stderr.contains("cannot reach the controller")
}

/// What the model must look like once converged, given the steps done.
struct Expected<'a> {
    steps: &'a [Step],
    done: usize,
}

impl Expected<'_> {
    fn has(&self, app: &str) -> bool {
        self.steps[..self.done]
            .iter()
            .any(|s| matches!(s, Step::Deploy { app: a, .. } if *a == app))
    }

    fn related(&self, a: &str, b: &str) -> bool {
        self.steps[..self.done]
            .iter()
            .any(|s| matches!(s, Step::Integrate(x, y) if x.starts_with(a) && y.starts_with(b)))
    }

    /// Why the status does not match yet, or `None` when it does: every
    /// application with all its units, every relation, and each part
    /// that can be active active.
    fn unmet(&self, status: &Value) -> Option<String> {
        let apps = &status["applications"];
        for step in &self.steps[..self.done] {
            match step {
                Step::Deploy { app, units, .. } => {
                    let names: Vec<String> = apps[app]["units"]
                        .as_object()
                        .map(|u| u.keys().cloned().collect())
                        .unwrap_or_default();
                    let want: Vec<String> = (0..*units).map(|n| format!("{app}/{n}")).collect();
                    if names != want {
                        return Some(format!("{app} has units {names:?}, not {want:?}"));
                    }
                }
                Step::Integrate(a, b) if !related(status, a, b) => {
                    return Some(format!("{a} is not related to {b}"));
                }
                Step::Integrate(..) => {}
            }
        }
        let messages = |app: &str| -> Vec<(String, String)> {
            apps[app]["units"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, u)| {
                    (
                        u["workload-status"]["current"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        u["workload-status"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect()
        };
        let all_active = |app: &str| messages(app).iter().all(|(s, _)| s == "active");
        if self.has("etcd") && !all_active("etcd") {
            return Some("etcd is not active".into());
        }
        if self.related("postgresql-k8s", "etcd") {
            let roles = messages("postgresql-k8s");
            let primaries = roles.iter().filter(|(_, m)| m == "Primary").count();
            if !all_active("postgresql-k8s") || primaries != 1 {
                return Some(format!("the PostgreSQL cluster is not settled: {roles:?}"));
            }
        }
        if self.related("pgbouncer-k8s", "postgresql-k8s") && !all_active("pgbouncer-k8s") {
            return Some(format!(
                "PgBouncer is not active: {:?}",
                messages("pgbouncer-k8s")
            ));
        }
        if self.related("client", "pgbouncer-k8s")
            && !messages("client")
                .iter()
                .all(|(s, m)| s == "active" && m.contains('@'))
        {
            return Some(format!(
                "the client has no database: {:?}",
                messages("client")
            ));
        }
        None
    }
}

/// What was written, to read back after every later kill.
#[derive(Default)]
struct Written {
    /// The operator's password and the row written on the primary.
    operator: Option<(String, String)>,
    /// Rows written through PgBouncer as the client.
    rows: Vec<String>,
}

/// `host:port` of the primary, as `get-primary` names it.
fn primary_address(juju: &Juju) -> String {
    let primary = juju.action("postgresql-k8s/leader", "get-primary")["primary"]
        .as_str()
        .expect("get-primary names the primary")
        .to_string();
    juju.status()["applications"]["postgresql-k8s"]["units"][&primary]["address"]
        .as_str()
        .expect("the primary's address")
        .to_string()
}

/// Runs `sql`, retrying a while (a server may still be picking a user up).
fn psql_retrying(host: &str, port: u16, user: &str, password: &str, db: &str, sql: &str) -> String {
    let mut result = Err(String::new());
    for _ in 0..100 {
        result = psql(host, port, user, password, db, sql);
        if result.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    result.unwrap_or_else(|e| panic!("psql on {host}:{port} as {user} to {db}: {e}"))
}

/// What a user can do: the operator's row is on the primary; the client's
/// credentials log in through every PgBouncer unit, where each row written
/// so far reads back, and a new row is written for the next check.
fn check(juju: &Juju, expected: &Expected<'_>, written: &mut Written, label: &str) {
    if expected.related("postgresql-k8s", "etcd") {
        let host = primary_address(juju);
        match &written.operator {
            None => {
                let password = juju.action("postgresql-k8s/leader", "get-password")["password"]
                    .as_str()
                    .expect("the operator's password")
                    .to_string();
                let row = format!("written after {label}");
                psql_retrying(
                    &host,
                    5432,
                    "operator",
                    &password,
                    "postgres",
                    &format!("CREATE TABLE faults (v text); INSERT INTO faults VALUES ('{row}')"),
                );
                written.operator = Some((password, row));
            }
            Some((password, row)) => {
                let read = psql_retrying(
                    &host,
                    5432,
                    "operator",
                    password,
                    "postgres",
                    "SELECT v FROM faults",
                );
                assert_eq!(read.trim(), row, "the operator's row on the primary {host}");
            }
        }
    }
    if !expected.related("client", "pgbouncer-k8s") {
        return;
    }
    let creds = juju.action("client/0", "get-credentials");
    let field = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    let (user, password, database) = (field("username"), field("password"), field("database"));
    assert!(!user.is_empty(), "client/0 has no credentials: {creds}");
    let status = juju.status();
    let units = status["applications"]["pgbouncer-k8s"]["units"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let row = format!("written after {label}");
    for (unit, info) in &units {
        let host = info["address"].as_str().unwrap_or_default();
        let read = psql_retrying(
            host,
            6432,
            &user,
            &password,
            &database,
            "CREATE TABLE IF NOT EXISTS faults (v text); SELECT v FROM faults",
        );
        for earlier in &written.rows {
            assert!(
                read.lines().any(|l| l == earlier),
                "{earlier:?} is not read back through {unit}: {read}"
            );
        }
        psql_retrying(
            host,
            6432,
            &user,
            &password,
            &database,
            &format!("INSERT INTO faults VALUES ('{row} via {unit}')"),
        );
    }
    written
        .rows
        .extend(units.keys().map(|unit| format!("{row} via {unit}")));
}

/// Waits until the model has converged to what the steps done ask for.
fn converge(juju: &Juju, expected: &Expected<'_>, label: &str) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        if let Err(e) = juju.wait_idle() {
            panic!("after {label}: {e}{}", juju.log());
        }
        let status = juju.status();
        match expected.unmet(&status) {
            None => {
                println!(
                    "  converged after {label} in {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            Some(why) if Instant::now() >= deadline => panic!(
                "not converged after {label}: {why}\n{}{}",
                juju.run(&["status"]).unwrap_or_default(),
                juju.log()
            ),
            Some(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// Lands a kill: for a crash point, waits until the controller reaches it
/// (or kills it from outside if the model settles first); for a delay, kills
/// it once the delay since `sent` is up.
fn land(juju: &Juju, kill: &Kill, sent: Instant, armed_at: usize) {
    match kill {
        Kill::After(delay) => {
            std::thread::sleep(delay.saturating_sub(sent.elapsed()));
            juju.kill();
            println!(
                "  killed {:.1}s after the step",
                sent.elapsed().as_secs_f64()
            );
        }
        Kill::At(point) => {
            let _ = juju.wait_idle();
            let log = juju.log_since(armed_at);
            match log.lines().find(|l| l.contains("killing the controller")) {
                Some(line) => println!("  {line}"),
                None => {
                    juju.kill();
                    println!("  {point} not reached before the model settled: killed at rest");
                }
            }
        }
    }
}

#[test]
fn the_deploy_sequence_survives_the_controller_killed_at_random_points() {
    let faults: usize = std::env::var("LOCAL_MODEL_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("LOCAL_MODEL_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(e2e::clock_seed);
    let main = std::env::var("LOCAL_MODEL_FAULT_TOPOLOGY").as_deref() == Ok("main");
    println!(
        "fault run: {faults} kills, LOCAL_MODEL_FAULT_SEED={seed}{}",
        if main {
            ", the main job's topology"
        } else {
            ""
        }
    );

    let scratch = Scratch::new("faults");
    let juju = Juju {
        home: scratch.path().join("home"),
    };
    let steps = [
        Step::Deploy {
            app: "etcd",
            charm: charm(scratch.path(), "etcd"),
            units: 1,
        },
        Step::Deploy {
            app: "postgresql-k8s",
            charm: charm(scratch.path(), "postgresql-k8s"),
            units: if main { 3 } else { 2 },
        },
        Step::Integrate("postgresql-k8s:etcd", "etcd:etcd"),
        Step::Deploy {
            app: "pgbouncer-k8s",
            charm: charm(scratch.path(), "pgbouncer-k8s"),
            units: 2,
        },
        Step::Integrate("pgbouncer-k8s:backend-database", "postgresql-k8s:database"),
        Step::Deploy {
            app: "client",
            charm: python_charm(scratch.path(), "pg-client"),
            units: 1,
        },
        Step::Integrate("client:database", "pgbouncer-k8s:database"),
    ];
    let kills = plan(seed, faults, &steps);
    for (step, kill) in &kills {
        println!(
            "  planned: {kill:?} while `juju {}`",
            steps[*step].args()[..2].join(" ")
        );
    }
    juju.run(&["add-model", MODEL])
        .unwrap_or_else(|e| panic!("add-model: {e}"));
    let started = Instant::now();
    let mut written = Written::default();
    let mut kills = kills.into_iter().peekable();
    for (i, step) in steps.iter().enumerate() {
        let expected = Expected {
            steps: &steps,
            done: i + 1,
        };
        let Some((_, first)) = kills.next_if(|(at, _)| *at == i) else {
            println!("step: juju {}", step.args().join(" "));
            juju.ensure(step);
            converge(&juju, &expected, &format!("step {}", i + 1));
            continue;
        };
        let armed_at = juju.log_len();
        if let Kill::At(point) = &first {
            juju.arm(point);
        }
        let sent = Instant::now();
        println!("step: juju {}", step.args().join(" "));
        juju.ensure(step);
        land(&juju, &first, sent, armed_at);
        let mut label = format!("{first:?} during step {}", i + 1);
        while let Some((_, kill)) = kills.next_if(|(at, _)| *at == i) {
            // Killed again while it recovers.
            let Kill::After(delay) = kill else {
                unreachable!("a step's later kills are timed")
            };
            let timer = std::thread::spawn({
                let dir = juju.dir();
                move || {
                    std::thread::sleep(delay);
                    kill_controller(&dir);
                }
            });
            converge(&juju, &expected, &label);
            timer.join().unwrap();
            println!(
                "  killed again {:.1}s into the recovery",
                delay.as_secs_f64()
            );
            label = format!("{label}, then {kill:?} into the recovery");
        }
        converge(&juju, &expected, &label);
        check(&juju, &expected, &mut written, &label);
    }
    let done = Expected {
        steps: &steps,
        done: steps.len(),
    };
    check(&juju, &done, &mut written, "the last step");
    // One more kill at rest, and everything is still there.
    juju.kill();
    converge(&juju, &done, "a last kill at rest");
    check(&juju, &done, &mut written, "a last kill at rest");
    println!(
        "fault run passed in {:.0}s (LOCAL_MODEL_FAULT_SEED={seed})",
        started.elapsed().as_secs_f64()
    );
}
