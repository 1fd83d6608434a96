//! The fault suite: one system on the local model (etcd, PostgreSQL with two
//! units under Patroni, PgBouncer with two units, and two clients, on the v0
//! and v1 libraries), driven through one random fault per seed: a unit
//! removed while a hook runs, `remove-unit --force`, a hook failure then
//! `resolve`, a workload SIGKILLed, a unit's machine lost, the backend
//! application removed and deployed again, a leader change, a relation
//! removed and added again. After each fault the topology is restored and the
//! model converges, then the checks say what users can still do: every
//! client's credentials log in through every PgBouncer unit to its database
//! and its read-only twin, no acknowledged write is lost, no client user or
//! database is leaked or lost on the backend, and no unit that says it is
//! active fails a login through it.
//!
//! Knobs: `FAULT_SUITE_SEEDS` (how many seeds, default 50) and
//! `FAULT_SUITE_SEED` (the first seed, printed: 1000 when unset, so the test
//! command repeats itself; `random` takes one from the clock to explore). Seeds
//! run in turn on the same system, so a failing seed is replayed with the
//! run that led to it (`FAULT_SUITE_SEED=<first> FAULT_SUITE_SEEDS=<n>`), or
//! alone on a fresh system (`FAULT_SUITE_SEED=<seed> FAULT_SUITE_SEEDS=1`).

use e2e::{action, active, address, charm, controller, python_charm, Rng, Scratch};
use local_model::agent::HookRun;
use local_model::controller::{Controller, Due, Ran};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PG: &str = "postgresql-k8s";
const PGB: &str = "pgbouncer-k8s";
/// How many units PostgreSQL and PgBouncer have between faults.
const UNITS: usize = 2;
/// How long a login may keep failing once the model has converged: a
/// PgBouncer unit may still be taking a change in, and PgBouncer tries a
/// server whose login failed again only after `server_login_retry` (1 s as
/// the charm sets it).
const LOGIN_PATIENCE: Duration = Duration::from_secs(30);
/// How long Patroni takes to notice a member's PostgreSQL died (its
/// `loop_wait`, 10 s, and a margin).
const PATRONI_LOOP: Duration = Duration::from_secs(12);
/// How many units run hooks at once, as in the controller daemon.
const HOOKS_AT_ONCE: usize = 4;
/// How often update-status runs while the model converges.
const UPDATE_STATUS: Duration = Duration::from_secs(20);
/// How long the model may take to converge after a fault.
const CONVERGENCE: Duration = Duration::from_secs(180);

/// A client application: its name, its test charm and the database it asks
/// for.
struct ClientApp {
    app: &'static str,
    charm: &'static str,
    database: &'static str,
}

const CLIENTS: [ClientApp; 2] = [
    ClientApp {
        app: "client",
        charm: "pg-client",
        database: "appdb",
    },
    ClientApp {
        app: "client-v1",
        charm: "pg-client-v1",
        database: "v1db",
    },
];

/// A client's credentials, as its `get-credentials` action reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Login {
    user: String,
    password: String,
}

/// A row whose INSERT through PgBouncer returned OK: it must read back.
struct Acknowledged {
    database: &'static str,
    table: String,
    value: String,
}

/// One fault, picked and parametrised by a seed.
#[derive(Debug)]
enum Fault {
    /// `remove-unit` (with `--force` or not) while the unit runs a hook: its
    /// update-status, or the leader-elected of leadership just handed to it.
    RemovedMidHook {
        unit: String,
        force: bool,
        leader_elected: bool,
        after: Duration,
    },
    /// `remove-unit --force` at rest, the leaving hook failing or not.
    ForceRemoved { unit: String, failing: bool },
    /// The unit's next hook fails (its update-status, or the first hook of
    /// one of its relations removed and added again); then `juju resolve`.
    HookFailedThenResolved {
        unit: String,
        rerelated: Option<Relation>,
    },
    /// A workload process SIGKILLed.
    WorkloadKilled { unit: String, process: Process },
    /// The unit's machine lost: every workload SIGKILLed, the unit gone,
    /// then a new unit added.
    MachineLost { unit: String },
    /// Every PostgreSQL unit removed at once (`remove-unit --force
    /// --no-wait`), then as many added: PgBouncer waits while its backend has
    /// no units, and PostgreSQL bootstraps a new cluster generation under the
    /// same relation (the clients' databases recreated empty).
    BackendLost,
    /// `remove-application postgresql-k8s`, then PostgreSQL deployed and
    /// related again: a new cluster, the clients' old credentials working
    /// again on their databases recreated empty.
    BackendReplaced,
    /// Leadership handed to another unit of the application.
    LeaderMoved { app: &'static str, to: String },
    /// A relation removed, then added again.
    Rerelated(Relation),
}

/// A process a fault kills.
#[derive(Debug)]
enum Process {
    /// Patroni, the PostgreSQL container's service (PostgreSQL with it).
    Patroni,
    /// The postmaster alone (Patroni starts it again).
    Postmaster,
    /// One of PgBouncer's processes.
    PgBouncer,
}

/// A relation a fault removes and adds again.
#[derive(Debug)]
enum Relation {
    /// A client's `database` relation with PgBouncer.
    Client(&'static str),
    /// PgBouncer's `backend-database` relation with PostgreSQL.
    Backend,
}

impl Relation {
    fn ends(&self) -> (String, String) {
        match self {
            Relation::Client(app) => (format!("{app}:database"), format!("{PGB}:database")),
            Relation::Backend => (format!("{PGB}:backend-database"), format!("{PG}:database")),
        }
    }
}

impl Fault {
    /// The seed's fault on the system as it stands; the costly ones (a new
    /// cluster, a primary's lock left to expire) less often.
    fn pick(rng: &mut Rng, suite: &Suite) -> Fault {
        let pg = e2e::units(&suite.c, PG);
        let pgb = e2e::units(&suite.c, PGB);
        let any_unit = |rng: &mut Rng| -> String {
            let all: Vec<&String> = pg.iter().chain(&pgb).collect();
            rng.pick(&all).to_string()
        };
        match rng.below(100) {
            0..=14 => Fault::RemovedMidHook {
                unit: any_unit(rng),
                force: rng.below(2) == 0,
                leader_elected: rng.below(2) == 0,
                after: Duration::from_millis(rng.below(400)),
            },
            15..=26 => Fault::ForceRemoved {
                unit: any_unit(rng),
                failing: rng.below(2) == 0,
            },
            27..=38 => {
                let unit = any_unit(rng);
                let rerelated = (rng.below(2) == 0).then(|| match unit.starts_with(PGB) {
                    true => Relation::Client(rng.pick(&CLIENTS).app),
                    false => Relation::Backend,
                });
                Fault::HookFailedThenResolved { unit, rerelated }
            }
            39..=52 => {
                let process =
                    rng.pick(&[Process::Patroni, Process::Postmaster, Process::PgBouncer]);
                let unit = match process {
                    Process::PgBouncer => rng.pick(&pgb).clone(),
                    _ => rng.pick(&pg).clone(),
                };
                let process = match process {
                    Process::Patroni => Process::Patroni,
                    Process::Postmaster => Process::Postmaster,
                    Process::PgBouncer => Process::PgBouncer,
                };
                Fault::WorkloadKilled { unit, process }
            }
            53..=62 => Fault::MachineLost {
                unit: any_unit(rng),
            },
            63..=64 => Fault::BackendLost,
            65..=66 => Fault::BackendReplaced,
            67..=80 => {
                let app = *rng.pick(&[PG, PGB]);
                let leader = suite.leader(app);
                let others: Vec<String> = e2e::units(&suite.c, app)
                    .into_iter()
                    .filter(|u| Some(u) != leader.as_ref())
                    .collect();
                Fault::LeaderMoved {
                    app,
                    to: rng.pick(&others).clone(),
                }
            }
            _ => Fault::Rerelated(match rng.below(3) {
                0 => Relation::Backend,
                n => Relation::Client(CLIENTS[n as usize - 1].app),
            }),
        }
    }
}

/// The system the seeds run on, and what the checks expect of it.
struct Suite {
    c: Controller,
    scratch: Scratch,
    /// The seed running, for failures' messages.
    seed: u64,
    /// How to run the seeds up to this one again.
    replay: String,
    /// Each client's credentials, from its action, kept until its relation
    /// is made again.
    logins: Vec<Option<Login>>,
    /// Every acknowledged write since the backend cluster was made.
    ledger: Vec<Acknowledged>,
    /// How many writes so far, to name each row.
    writes: u64,
    /// The backend's operator password, once asked.
    operator: Option<String>,
}

impl Suite {
    /// Deploys the system and waits until it serves every client.
    fn deploy(scratch: Scratch, first: u64) -> Suite {
        let mut c = controller(&scratch);
        e2e::postgresql_cluster(&mut c, scratch.path(), UNITS as u32);
        c.deploy(&charm(scratch.path(), PGB), PGB, UNITS as u32, &[])
            .expect("deploying PgBouncer");
        c.integrate(
            &format!("{PGB}:backend-database"),
            &format!("{PG}:database"),
        )
        .expect("relating PgBouncer to PostgreSQL");
        for client in &CLIENTS {
            let dir = python_charm(scratch.path(), client.charm);
            c.deploy(&dir, client.app, 1, &[("database", client.database)])
                .expect("deploying a client");
            c.integrate(
                &format!("{}:database", client.app),
                &format!("{PGB}:database"),
            )
            .expect("relating a client to PgBouncer");
        }
        let mut suite = Suite {
            c,
            scratch,
            seed: first,
            replay: format!("FAULT_SUITE_SEED={first} FAULT_SUITE_SEEDS=1 (the deploy)"),
            logins: vec![None; CLIENTS.len()],
            ledger: Vec::new(),
            writes: 0,
            operator: None,
        };
        suite.converge("the deploy");
        suite
    }

    /// Fails the run, naming the seed and how to replay it.
    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {}: {what}\nreplay: {}\n{}",
            self.seed,
            self.replay,
            self.c.status()
        )
    }

    /// Does something to the model; a refusal fails the run.
    fn act<T, E: std::fmt::Display>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Controller) -> Result<T, E>,
    ) -> T {
        match f(&mut self.c) {
            Ok(v) => v,
            Err(e) => self.fail(&format!("{what}: {e}")),
        }
    }

    fn leader(&self, app: &str) -> Option<String> {
        self.c.model.applications.get(app)?.leader.clone()
    }

    /// Whether a relation between the two applications is there.
    fn relation_id(&self, a: &str, b: &str) -> Option<u64> {
        self.c
            .model
            .relations
            .iter()
            .find(|r| r.end_of(a).is_some() && r.end_of(b).is_some())
            .map(|r| r.id)
    }

    /// Why the system is not yet what the checks expect, or `None`: both
    /// applications with their units, all active, one primary, PgBouncer
    /// related to PostgreSQL, every client related and served, no unit in
    /// error.
    fn unhealthy(&self) -> Option<String> {
        for app in self.c.model.applications.values() {
            for (name, unit) in &app.units {
                if let Some(hook) = &unit.failed {
                    return Some(format!("{name} is in error on {hook}"));
                }
            }
        }
        let pg = e2e::units(&self.c, PG);
        if !e2e::cluster_settled(&self.c, UNITS) {
            return Some(format!("PostgreSQL is not settled: {pg:?}"));
        }
        // Until Patroni has confirmed a synchronous standby, a lost primary
        // leaves the cluster without one, by design: no seed starts so.
        if !e2e::synchronous_standby_runs(&self.c, &pg[0]) {
            return Some("Patroni names no synchronous standby yet".into());
        }
        if !e2e::replicas_caught_up(&self.c, &pg[0]) {
            return Some("a replica has not replayed all the primary wrote".into());
        }
        let pgb = e2e::units(&self.c, PGB);
        if pgb.len() != UNITS || pgb.iter().any(|u| active(&self.c, u).is_none()) {
            return Some(format!("PgBouncer is not active on {pgb:?}"));
        }
        if self.relation_id(PGB, PG).is_none() {
            return Some("PgBouncer has no backend".into());
        }
        for client in &CLIENTS {
            if self.relation_id(client.app, PGB).is_none() {
                return Some(format!("{} is not related", client.app));
            }
            let unit = format!("{}/0", client.app);
            if !active(&self.c, &unit).is_some_and(|m| m.contains('@')) {
                return Some(format!("{unit} is not served"));
            }
        }
        None
    }

    /// Runs due hooks until `done` says nothing is missing, failing the run
    /// after [`CONVERGENCE`].
    fn settle_until(&mut self, what: &str, done: impl Fn(&Suite) -> Option<String>) {
        let start = Instant::now();
        let mut ticked = Instant::now();
        let mut failures = Vec::new();
        loop {
            // Juju's update-status, sooner: a change no event announces (a
            // lock expiring) is seen.
            if ticked.elapsed() > UPDATE_STATUS {
                self.c.tick();
                ticked = Instant::now();
            }
            let ran = self.run_due_hooks();
            for (unit, run) in ran.iter().filter(|(_, r)| !r.ok) {
                failures.push(format!("{unit} {}: {}", run.event.hook_name(), run.output));
            }
            let Some(why) = done(self) else {
                return;
            };
            if start.elapsed() > CONVERGENCE {
                self.fail(&format!(
                    "not converged {CONVERGENCE:?} after {what}: {why}\nfailed hooks:\n{}",
                    failures.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Runs every due hook, several units' at once as the controller daemon
    /// does ([`HOOKS_AT_ONCE`]), until none is due; returns what ran.
    fn run_due_hooks(&mut self) -> Vec<(String, HookRun)> {
        let mut ran = Vec::new();
        loop {
            let batch: Vec<Due> = std::iter::from_fn(|| self.c.next_due())
                .take(HOOKS_AT_ONCE)
                .collect();
            if batch.is_empty() {
                return ran;
            }
            let results: Vec<Ran> = std::thread::scope(|s| {
                let running: Vec<_> = batch.iter().map(|due| s.spawn(|| due.execute())).collect();
                running
                    .into_iter()
                    .map(|h| h.join().expect("a hook's thread"))
                    .collect()
            });
            for (due, result) in batch.into_iter().zip(results) {
                let unit = due.unit.clone();
                let run = self.act("finishing a hook", |c| c.finish(due, result));
                ran.push((unit, run));
            }
        }
    }

    /// Waits until the system is whole and healthy again.
    fn converge(&mut self, what: &str) {
        self.settle_until(what, Suite::unhealthy);
    }

    /// Runs due hooks until none is due.
    fn settle(&mut self) {
        self.settle_until("settling", |_| None);
    }

    /// Adds units back until PostgreSQL and PgBouncer have [`UNITS`] each,
    /// and makes any relation missing again.
    fn restore(&mut self) {
        for app in [PG, PGB] {
            let alive = self.c.model.applications[app]
                .units
                .values()
                .filter(|u| u.life == local_model::model::Life::Alive)
                .count();
            for _ in alive..UNITS {
                let unit = self.act("add-unit", |c| c.add_unit(app));
                println!("  added {unit}");
            }
        }
    }

    /// The operator's password, from the PostgreSQL leader (asked again
    /// once the application is deployed again).
    fn operator_password(&mut self) -> String {
        if let Some(password) = &self.operator {
            return password.clone();
        }
        let leader = self
            .leader(PG)
            .unwrap_or_else(|| self.fail("PostgreSQL has no leader"));
        let password = action(&mut self.c, &leader, "get-password", serde_json::json!({}))
            ["password"]
            .as_str()
            .expect("the operator's password")
            .to_string();
        self.operator = Some(password.clone());
        password
    }

    /// The primary's address, from the units' status.
    fn primary_address(&self) -> String {
        let primary = e2e::units(&self.c, PG)
            .into_iter()
            .find(|u| active(&self.c, u).as_deref() == Some("Primary"))
            .unwrap_or_else(|| self.fail("no PostgreSQL unit says it is the primary"));
        address(&self.c, &primary)
    }

    /// A client's credentials (asked again once its relation was made again).
    fn login(&mut self, i: usize) -> Login {
        if let Some(login) = &self.logins[i] {
            return login.clone();
        }
        let unit = format!("{}/0", CLIENTS[i].app);
        let creds = action(&mut self.c, &unit, "get-credentials", serde_json::json!({}));
        let field = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
        let login = Login {
            user: field("username"),
            password: field("password"),
        };
        self.logins[i] = Some(login.clone());
        login
    }

    /// [`pooled`] through a PgBouncer unit.
    fn through(
        &self,
        unit: &str,
        login: &Login,
        database: &str,
        sql: &str,
    ) -> Result<String, String> {
        pooled(&address(&self.c, unit), login, database, sql)
    }

    /// Every client's credentials log in through every PgBouncer unit to its
    /// database and its read-only twin.
    fn check_logins(&mut self) {
        let logins: Vec<Login> = (0..CLIENTS.len()).map(|i| self.login(i)).collect();
        let mut tries = Vec::new();
        for (client, login) in CLIENTS.iter().zip(&logins) {
            for unit in e2e::units(&self.c, PGB) {
                for database in [
                    client.database.to_string(),
                    format!("{}_readonly", client.database),
                ] {
                    let host = address(&self.c, &unit);
                    tries.push((client.app, login, unit.clone(), host, database));
                }
            }
        }
        // All at once: a unit still taking a change in costs one wait, not one each.
        let failures: Vec<String> = std::thread::scope(|s| {
            let running: Vec<_> = tries
                .iter()
                .map(|(app, login, unit, host, database)| {
                    s.spawn(move || {
                        pooled(host, login, database, "SELECT 1").err().map(|e| {
                            format!(
                                "{app} ({}) cannot log in through {unit} to {database}: {e}",
                                login.user
                            )
                        })
                    })
                })
                .collect();
            running
                .into_iter()
                .filter_map(|h| h.join().expect("a login's thread"))
                .collect()
        });
        if !failures.is_empty() {
            self.fail(&failures.join("\n"));
        }
    }

    /// Every PgBouncer unit that says it is active serves every related
    /// client whose credentials are known.
    fn check_active_units_serve(&mut self) {
        for unit in e2e::units(&self.c, PGB) {
            if active(&self.c, &unit).is_none() {
                continue;
            }
            for (i, client) in CLIENTS.iter().enumerate() {
                let Some(login) = self.logins[i].clone() else {
                    continue;
                };
                if self.relation_id(client.app, PGB).is_none() {
                    continue;
                }
                if let Err(e) = self.through(&unit, &login, client.database, "SELECT 1") {
                    self.fail(&format!(
                        "{unit} is active but {} cannot log in through it: {e}",
                        client.app
                    ));
                }
            }
        }
    }

    /// Writes one row per client through a PgBouncer unit the seed picks,
    /// keeping it in the ledger when its INSERT returned OK.
    fn write(&mut self, rng: &mut Rng) {
        let pgb = e2e::units(&self.c, PGB);
        for (i, client) in CLIENTS.iter().enumerate() {
            let login = self.login(i);
            let unit = rng.pick(&pgb).clone();
            self.writes += 1;
            let table = format!("ledger_{}", login.user);
            let value = format!("seed {} write {} via {unit}", self.seed, self.writes);
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {table} (v text); INSERT INTO {table} VALUES ('{value}')"
            );
            match self.through(&unit, &login, client.database, &sql) {
                Ok(_) => self.ledger.push(Acknowledged {
                    database: client.database,
                    table,
                    value,
                }),
                Err(e) => self.fail(&format!("{} cannot write through {unit}: {e}", client.app)),
            }
        }
    }

    /// Every acknowledged write reads back on the primary.
    fn check_ledger(&mut self) {
        let password = self.operator_password();
        let host = self.primary_address();
        for client in &CLIENTS {
            let tables: BTreeSet<&str> = self
                .ledger
                .iter()
                .filter(|w| w.database == client.database)
                .map(|w| w.table.as_str())
                .collect();
            if tables.is_empty() {
                continue;
            }
            let sql = tables
                .iter()
                .map(|t| format!("SELECT v FROM {t}"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let read = e2e::psql(&host, 5432, "operator", &password, client.database, &sql)
                .unwrap_or_else(|e| {
                    self.fail(&format!("reading the ledger of {}: {e}", client.database))
                });
            let rows: BTreeSet<&str> = read.lines().collect();
            let lost: Vec<&str> = self
                .ledger
                .iter()
                .filter(|w| w.database == client.database && !rows.contains(w.value.as_str()))
                .map(|w| w.value.as_str())
                .collect();
            if !lost.is_empty() {
                self.fail(&format!(
                    "acknowledged writes lost in {}: {lost:?}",
                    client.database
                ));
            }
        }
    }

    /// The backend's client users and databases are exactly what the
    /// relations ask for: a user for each related client and for PgBouncer,
    /// none for a relation gone; each related client's database.
    fn check_roles(&mut self) {
        let password = self.operator_password();
        let host = self.primary_address();
        let query = |sql: &str| -> BTreeSet<String> {
            e2e::psql(&host, 5432, "operator", &password, "postgres", sql)
                .unwrap_or_else(|e| self.fail(&format!("{sql}: {e}")))
                .lines()
                .map(str::to_string)
                .collect()
        };
        let users = query(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'relation\\_id\\_%' \
             OR rolname LIKE 'pgbouncer\\_auth\\_%'",
        );
        let backend = self
            .relation_id(PGB, PG)
            .unwrap_or_else(|| self.fail("no backend relation"));
        let mut expected: BTreeSet<String> = [
            format!("relation_id_{backend}"),
            format!("pgbouncer_auth_relation_id_{backend}"),
        ]
        .into();
        for client in &CLIENTS {
            if let Some(id) = self.relation_id(client.app, PGB) {
                expected.insert(format!("relation_id_{id}"));
            }
        }
        if users != expected {
            self.fail(&format!(
                "the backend's users are {users:?}, not {expected:?} (leaked: {:?}, lost: {:?})",
                users.difference(&expected).collect::<Vec<_>>(),
                expected.difference(&users).collect::<Vec<_>>()
            ));
        }
        let databases = query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'",
        );
        for client in &CLIENTS {
            if !databases.contains(client.database) {
                self.fail(&format!(
                    "the database {} is lost: {databases:?}",
                    client.database
                ));
            }
        }
        // PgBouncer's own database, from its backend request, and the clients'.
        let known: BTreeSet<String> = CLIENTS
            .iter()
            .map(|c| c.database.to_string())
            .chain(["pgbouncer".to_string()])
            .collect();
        let unknown: Vec<&String> = databases.difference(&known).collect();
        if !unknown.is_empty() {
            self.fail(&format!("unknown databases on the backend: {unknown:?}"));
        }
    }

    /// What users can do, after a fault and convergence.
    /// (Every PgBouncer unit is active once converged: the logins are the
    /// check that active units serve.)
    fn check(&mut self, rng: &mut Rng) {
        self.check_logins();
        self.write(rng);
        self.check_ledger();
        self.check_roles();
    }
}

/// Runs `sql` as the client through PgBouncer at `host`, retrying for
/// [`LOGIN_PATIENCE`] (a unit may still be taking a change in).
fn pooled(host: &str, login: &Login, database: &str, sql: &str) -> Result<String, String> {
    let deadline = Instant::now() + LOGIN_PATIENCE;
    loop {
        match e2e::psql(host, 6432, &login.user, &login.password, database, sql) {
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
            result => return result,
        }
    }
}

/// The faults themselves.
impl Suite {
    fn inflict(&mut self, fault: &Fault) {
        match fault {
            Fault::RemovedMidHook {
                unit,
                force,
                leader_elected,
                after,
            } => self.remove_mid_hook(unit, *force, *leader_elected, *after),
            Fault::ForceRemoved { unit, failing } => {
                if *failing {
                    self.act("fail-next-hook", |c| c.fail_next_hook(unit));
                }
                self.act("remove-unit --force", |c| c.force_remove_unit(unit));
                self.settle_until("a forced removal", |s| {
                    s.c.model
                        .unit(unit)
                        .map(|_| format!("{unit} is still there"))
                });
            }
            Fault::HookFailedThenResolved { unit, rerelated } => {
                self.fail_then_resolve(unit, rerelated.as_ref())
            }
            Fault::WorkloadKilled { unit, process } => self.kill(unit, process),
            // No check before convergence: until a lost primary's lock
            // expires nothing serves, and no hook tells PgBouncer so.
            Fault::MachineLost { unit } => {
                self.act("crash-unit", |c| c.crash_unit(unit));
                self.settle();
            }
            Fault::BackendLost => self.lose_backend(),
            Fault::BackendReplaced => self.replace_backend(),
            Fault::LeaderMoved { app, to } => {
                self.hand_leadership(app, to);
                self.settle();
            }
            Fault::Rerelated(relation) => self.rerelate(relation),
        }
    }

    fn hand_leadership(&mut self, app: &str, to: &str) {
        self.c
            .model
            .applications
            .get_mut(app)
            .expect("the application")
            .leader = Some(to.to_string());
        self.act("saving the model", Controller::save);
    }

    /// Runs due hooks until `unit`'s next one starts, and removes the unit
    /// `after` into it, while its process runs.
    fn remove_mid_hook(&mut self, unit: &str, force: bool, leader_elected: bool, after: Duration) {
        let app = charm::relation::app_of(unit).to_string();
        if leader_elected && self.leader(&app).as_deref() != Some(unit) {
            self.hand_leadership(&app, unit);
        } else {
            self.c.tick();
        }
        loop {
            let Some(due) = self.c.next_due() else {
                self.fail(&format!("no hook ran on {unit}"));
            };
            if due.unit != unit {
                let ran = due.execute();
                self.act("finishing a hook", |c| c.finish(due, ran));
                continue;
            }
            println!("  removing {unit} during its {} hook", due.hook_name());
            let c = &mut self.c;
            let ran = std::thread::scope(|s| {
                let running = s.spawn(|| due.execute());
                std::thread::sleep(after);
                match force {
                    true => c.force_remove_unit(unit),
                    false => c.remove_unit(unit),
                }
                .expect("remove-unit during a hook");
                running.join().expect("the hook's thread")
            });
            self.act("finishing a hook", |c| c.finish(due, ran));
            break;
        }
        self.settle_until("a removal mid-hook", |s| {
            s.c.model
                .unit(unit)
                .map(|_| format!("{unit} is still there"))
        });
    }

    /// Fails `unit`'s next hook, brings one on (update-status, or a client's
    /// relation made again), then resolves it.
    fn fail_then_resolve(&mut self, unit: &str, rerelated: Option<&Relation>) {
        match rerelated {
            Some(relation) => {
                self.unrelate(relation);
                self.act("fail-next-hook", |c| c.fail_next_hook(unit));
                self.relate(relation);
            }
            None => {
                self.act("fail-next-hook", |c| c.fail_next_hook(unit));
                self.c.tick();
            }
        }
        self.settle();
        let failed = self.c.model.unit(unit).and_then(|u| u.failed.clone());
        let Some(hook) = failed else {
            self.fail(&format!("{unit}'s hook did not fail"));
        };
        if active(&self.c, unit).is_some() {
            self.fail(&format!(
                "{unit} is in error on {hook} but says it is active"
            ));
        }
        println!("  {unit} in error on {hook}; resolving");
        self.check_active_units_serve();
        self.act("resolve", |c| c.resolve(unit));
    }

    /// SIGKILLs a workload process, and lets Pebble and Patroni bring it back.
    fn kill(&mut self, unit: &str, process: &Process) {
        match process {
            Process::Patroni => self.act("kill-workload", |c| {
                c.kill_workload(unit, "postgresql", "postgresql")
            }),
            Process::PgBouncer => self.act("kill-workload", |c| {
                c.kill_workload(unit, "pgbouncer", "pgbouncer_0")
            }),
            Process::Postmaster => {
                let dir = self
                    .scratch
                    .path()
                    .join("controller/units")
                    .join(unit.replace('/', "-"));
                let found = Command::new("find")
                    .arg(&dir)
                    .args(["-name", "postmaster.pid"])
                    .output()
                    .expect("find runs");
                let path = String::from_utf8_lossy(&found.stdout)
                    .lines()
                    .next()
                    .map(PathBuf::from);
                let pid = path
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .and_then(|s| s.lines().next().map(str::to_string))
                    .unwrap_or_else(|| self.fail(&format!("no postmaster.pid for {unit}")));
                let ok = Command::new("kill")
                    .args(["-KILL", &pid])
                    .status()
                    .expect("kill runs")
                    .success();
                if !ok {
                    self.fail(&format!("kill -KILL {pid} ({unit}'s postmaster) failed"));
                }
            }
        }
        self.settle();
        if !matches!(process, Process::PgBouncer) {
            // Patroni notices within its loop; a primary it restarts goes
            // through recovery and a new timeline, and answers meanwhile.
            std::thread::sleep(PATRONI_LOOP);
            self.wait_for_postgresql(unit);
        }
    }

    /// Waits until PostgreSQL answers on `unit` again (Patroni starts it
    /// again within its loop; no hook runs meanwhile).
    fn wait_for_postgresql(&mut self, unit: &str) {
        let password = self.operator_password();
        let host = address(&self.c, unit);
        let start = Instant::now();
        while let Err(e) = e2e::psql(&host, 5432, "operator", &password, "postgres", "SELECT 1") {
            if start.elapsed() > CONVERGENCE {
                self.fail(&format!("PostgreSQL on {unit} does not come back: {e}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Removes every PostgreSQL unit at once, checks that every PgBouncer
    /// unit waits, and lets [`Suite::restore`] add new ones.
    fn lose_backend(&mut self) {
        for unit in e2e::units(&self.c, PG) {
            self.act("remove-unit --force --no-wait", |c| {
                c.remove_unit_abruptly(&unit)
            });
        }
        self.settle();
        if let Some(unit) = e2e::units(&self.c, PGB)
            .into_iter()
            .find(|u| active(&self.c, u).is_some())
        {
            self.fail(&format!(
                "{unit} says it is active while its backend has no units"
            ));
        }
        self.reset_ledger("every member of the backend cluster was lost");
    }

    /// Forgets the acknowledged writes of a backend cluster that is gone.
    fn reset_ledger(&mut self, why: &str) {
        println!(
            "  ledger reset ({why}): {} acknowledged writes",
            self.ledger.len()
        );
        self.ledger.clear();
    }

    /// Removes PostgreSQL, checks that no PgBouncer unit claims to serve,
    /// then deploys it again with its relations: a new cluster, where the
    /// clients' databases are recreated empty (the ledger starts again).
    fn replace_backend(&mut self) {
        self.act("remove-application", |c| c.remove_application(PG));
        self.settle_until("removing PostgreSQL", |s| {
            s.c.model
                .applications
                .contains_key(PG)
                .then(|| "PostgreSQL is still there".into())
        });
        if let Some(unit) = e2e::units(&self.c, PGB)
            .into_iter()
            .find(|u| active(&self.c, u).is_some())
        {
            self.fail(&format!("{unit} says it is active with no backend"));
        }
        let postgresql = charm(self.scratch.path(), PG);
        self.act("deploy", |c| c.deploy(&postgresql, PG, UNITS as u32, &[]));
        self.act("integrate", |c| {
            c.integrate(&format!("{PG}:etcd"), "etcd:etcd")
        });
        self.relate(&Relation::Backend);
        self.reset_ledger("the backend application was removed");
        self.operator = None;
    }

    /// Removes a relation and makes it again.
    fn rerelate(&mut self, relation: &Relation) {
        self.unrelate(relation);
        self.relate(relation);
    }

    fn relate(&mut self, relation: &Relation) {
        let (a, b) = relation.ends();
        self.act("integrate", |c| c.integrate(&a, &b));
    }

    /// Removes a relation and checks what must go with it: a client's user,
    /// PgBouncer's claim to serve.
    fn unrelate(&mut self, relation: &Relation) {
        let (a, b) = relation.ends();
        self.act("remove-relation", |c| c.remove_relation(&a, &b));
        let (app_a, app_b) = (
            a.split(':').next().unwrap_or_default().to_string(),
            b.split(':').next().unwrap_or_default().to_string(),
        );
        self.settle_until("removing a relation", |s| {
            s.relation_id(&app_a, &app_b)
                .map(|_| "the relation is still there".into())
        });
        self.check_active_units_serve();
        match relation {
            Relation::Client(app) => {
                let i = CLIENTS
                    .iter()
                    .position(|c| c.app == *app)
                    .expect("a client");
                self.logins[i] = None;
                self.check_roles();
            }
            Relation::Backend => {
                if let Some(unit) = e2e::units(&self.c, PGB)
                    .into_iter()
                    .find(|u| active(&self.c, u).is_some())
                {
                    self.fail(&format!(
                        "{unit} says it is active with no backend relation"
                    ));
                }
            }
        }
    }
}

fn main_seeds() -> (u64, u64) {
    let count = std::env::var("FAULT_SUITE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let first = match std::env::var("FAULT_SUITE_SEED").ok().as_deref() {
        Some("random") => e2e::clock_seed() % 1_000_000,
        Some(seed) => seed
            .parse()
            .unwrap_or_else(|_| panic!("FAULT_SUITE_SEED={seed:?}: a number or `random`")),
        None => DEFAULT_FIRST_SEED,
    };
    (first, count)
}

/// The first seed of a run that names none: the test command runs the same
/// faults every time, so a failure there is a regression, not a new find.
const DEFAULT_FIRST_SEED: u64 = 1000;

#[test]
fn users_keep_their_service_through_random_faults() {
    let (first, count) = main_seeds();
    println!("fault suite: FAULT_SUITE_SEED={first} FAULT_SUITE_SEEDS={count}");
    let started = Instant::now();
    let mut suite = Suite::deploy(Scratch::new("fault-suite"), first);
    let mut rng = Rng::mixed(first);
    suite.check(&mut rng);
    println!(
        "deployed and checked in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    for seed in first..first + count {
        suite.seed = seed;
        suite.replay = format!(
            "FAULT_SUITE_SEED={first} FAULT_SUITE_SEEDS={} cargo test -p e2e --test fault_suite -- --nocapture \
             (this seed alone: FAULT_SUITE_SEED={seed} FAULT_SUITE_SEEDS=1)",
            seed - first + 1
        );
        let mut rng = Rng::mixed(seed);
        let fault = Fault::pick(&mut rng, &suite);
        let at = Instant::now();
        println!("seed {seed}: {fault:?}");
        suite.inflict(&fault);
        let inflicted = at.elapsed().as_secs_f64();
        suite.restore();
        suite.converge(&format!("{fault:?}"));
        let converged = at.elapsed().as_secs_f64();
        suite.check(&mut rng);
        println!(
            "  inflicted in {inflicted:.1}s, converged at {converged:.1}s, checked at {:.1}s \
             ({} seeds in {:.0}s)",
            at.elapsed().as_secs_f64(),
            seed - first + 1,
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "fault suite passed {count} seeds in {:.0}s (FAULT_SUITE_SEED={first} FAULT_SUITE_SEEDS={count})",
        started.elapsed().as_secs_f64()
    );
}
