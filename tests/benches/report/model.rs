//! The charms on the local model, with real etcd, Patroni, PostgreSQL and
//! PgBouncer: what each hook of a client relation's life costs (PgBouncer's
//! charm beside a Python `ops` provider on the published v0 library), how
//! soon a client's credentials work through 1, 3 and 5 PgBouncer units, and
//! how the charm fares with many client relations (clients that are a shell
//! script: they write their request and nothing else).

use e2e::credentials::{median, round};
use e2e::{
    active, charm, client_credentials, controller, converge, postgresql_cluster_with, python_charm,
    settle_timed, units, Scratch, TimedHook,
};
use local_model::agent::HookCost;
use local_model::controller::Controller;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const PGBOUNCER: &str = "pgbouncer-k8s";
pub const PYTHON_PROVIDER: &str = "pg-provider";
/// The events of a client relation's life, on the provider's side.
pub const EVENTS: [&str; 5] = [
    "database-relation-created",
    "database-relation-joined",
    "database-relation-changed",
    "database-relation-departed",
    "database-relation-broken",
];
const HOOK_ROUNDS: usize = 3;
/// PostgreSQL's charm options for this deployment: its default
/// `max_connections` (100 on this machine) runs out once every PgBouncer
/// process of five units keeps `min_pool_size` server connections for each
/// database a client logged in to (BENCHMARKS.md says more).
pub const PG_CONFIG: &[(&str, &str)] = &[("experimental_max_connections", "1000")];
const CREDENTIAL_ROUNDS: usize = 3;
pub const UNIT_COUNTS: [usize; 3] = [1, 3, 5];
/// PgBouncer units while many clients are related.
pub const SCALE_UNITS: usize = 3;

/// Medians over the hooks of one event on one charm.
pub struct HookRow {
    pub charm: &'static str,
    pub event: &'static str,
    pub hooks: usize,
    pub wall_ms: f64,
    pub cpu_ms: f64,
    pub peak_rss_mib: f64,
    pub tool_calls: usize,
}

pub struct CredentialRow {
    pub units: usize,
    pub published_s: f64,
    pub usable_s: f64,
    pub client_active_s: f64,
    pub hooks_until_usable: usize,
}

impl ScaleRow {
    /// The row of the many-clients table.
    pub fn table_row(&self) -> String {
        format!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {:.1} |",
            self.clients,
            self.hooks,
            self.hooks_total_ms,
            self.hook_max_ms,
            self.cfg_bytes,
            self.converge_s,
            self.batch_s_per_client,
            self.controller_ms_per_hook
        )
    }
}

pub struct ScaleRow {
    /// Client relations, the measured one included.
    pub clients: usize,
    /// PgBouncer's hooks for the last relation: how many, their total and
    /// their longest wall time.
    pub hooks: usize,
    pub hooks_total_ms: f64,
    pub hook_max_ms: f64,
    /// `cfg_file` as the leader publishes it to its peers.
    pub cfg_bytes: usize,
    /// From `integrate` to no hook due on any unit, hooks run as the daemon runs them.
    pub converge_s: f64,
    /// Seconds the clients before it took to relate and settle, per client.
    pub batch_s_per_client: f64,
    /// Meanwhile, the controller's own milliseconds a hook: picking it,
    /// preparing the unit's view, committing and saving the model.
    pub controller_ms_per_hook: f64,
}

pub struct Results {
    pub hooks: Vec<HookRow>,
    pub credentials: Vec<CredentialRow>,
    pub scale: Vec<ScaleRow>,
    pub deploy_s: f64,
    /// How long the many-clients section took.
    pub scale_s: f64,
}

impl Results {
    pub fn to_json(&self) -> Value {
        json!({
            "deploy_s": self.deploy_s,
            "scale_s": self.scale_s,
            "hooks": self.hooks.iter().map(|h| json!({
                "charm": h.charm, "event": h.event, "hooks": h.hooks,
                "wall_ms": h.wall_ms, "cpu_ms": h.cpu_ms,
                "peak_rss_mib": h.peak_rss_mib, "tool_calls": h.tool_calls,
            })).collect::<Vec<_>>(),
            "credentials": self.credentials.iter().map(|r| json!({
                "units": r.units, "published_s": r.published_s, "usable_s": r.usable_s,
                "client_active_s": r.client_active_s, "hooks_until_usable": r.hooks_until_usable,
            })).collect::<Vec<_>>(),
            "scale": self.scale.iter().map(|s| json!({
                "clients": s.clients, "hooks": s.hooks, "hooks_total_ms": s.hooks_total_ms,
                "hook_max_ms": s.hook_max_ms, "cfg_bytes": s.cfg_bytes,
                "converge_s": s.converge_s, "batch_s_per_client": s.batch_s_per_client,
                "controller_ms_per_hook": s.controller_ms_per_hook,
            })).collect::<Vec<_>>(),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A client charm that is a shell script: on `database` relation-created it
/// asks for a database named after its application, as the v0 library's
/// requirer does, and does nothing else.
fn light_client(scratch: &Path) -> PathBuf {
    let dir = scratch.join("charms/light-client");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        "name: light-client\nsummary: Asks for a database, nothing else.\n\
         description: A shell script.\nrequires:\n  database:\n    interface: postgresql_client\n    limit: 1\n",
    )
    .unwrap();
    let dispatch = dir.join("dispatch");
    std::fs::write(
        &dispatch,
        "#!/bin/sh\n[ \"$JUJU_HOOK_NAME\" = database-relation-created ] || exit 0\n\
         exec relation-set -r \"$JUJU_RELATION_ID\" --app database=\"${JUJU_UNIT_NAME%/*}\" \
         requested-secrets='[\"username\",\"password\"]'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The provider's hooks of a relation's life, kept by event.
fn keep(into: &mut BTreeMap<(&'static str, &'static str), Vec<TimedHook>>, ran: Vec<TimedHook>) {
    for h in ran {
        for charm in [PGBOUNCER, PYTHON_PROVIDER] {
            if !h.unit.starts_with(&format!("{charm}/")) {
                continue;
            }
            if let Some(event) = EVENTS.iter().find(|e| **e == h.hook) {
                into.entry((charm, event)).or_default().push(h.clone());
            }
        }
    }
}

fn hook_costs(c: &mut Controller, scratch: &Path) -> Vec<HookRow> {
    let client = python_charm(scratch, "pg-client");
    let mut by_event = BTreeMap::new();
    for i in 0..HOOK_ROUNDS {
        for provider in [PGBOUNCER, PYTHON_PROVIDER] {
            let app = format!("hooks-{provider}-r{i}");
            c.deploy(&client, &app, 1, &[("database", &format!("hooks{i}"))])
                .unwrap();
            settle_timed(c);
            c.integrate(&format!("{app}:database"), &format!("{provider}:database"))
                .unwrap();
            let ran = settle_timed(c);
            keep(&mut by_event, ran);
            c.remove_relation(&format!("{app}:database"), &format!("{provider}:database"))
                .unwrap();
            let ran = settle_timed(c);
            keep(&mut by_event, ran);
        }
    }
    let mut rows = Vec::new();
    for charm in [PGBOUNCER, PYTHON_PROVIDER] {
        for event in EVENTS {
            let hooks = by_event.get(&(charm, event)).cloned().unwrap_or_default();
            rows.push(HookRow {
                charm,
                event,
                hooks: hooks.len(),
                wall_ms: median_f(hooks.iter().map(|h| ms(h.wall)).collect()),
                cpu_ms: median_f(hooks.iter().map(|h| ms(h.cost.cpu)).collect()),
                peak_rss_mib: median_f(
                    hooks
                        .iter()
                        .map(|h| h.cost.peak_rss_kib as f64 / 1024.0)
                        .collect(),
                ),
                tool_calls: median_f(hooks.iter().map(|h| h.cost.tool_calls as f64).collect())
                    as usize,
            });
        }
    }
    rows
}

fn all_active(c: &Controller, app: &str, n: usize) -> bool {
    let us = units(c, app);
    us.len() == n && us.iter().all(|u| active(c, u).is_some())
}

fn credentials(c: &mut Controller, scratch: &Path) -> Vec<CredentialRow> {
    let client = python_charm(scratch, "pg-client");
    let mut rows = Vec::new();
    for n in UNIT_COUNTS {
        while units(c, PGBOUNCER).len() < n {
            c.add_unit(PGBOUNCER).unwrap();
        }
        converge(c, Duration::from_secs(300), |c| all_active(c, PGBOUNCER, n));
        let mut rounds = Vec::new();
        for r in 0..CREDENTIAL_ROUNDS {
            let app = format!("creds{n}-r{r}");
            c.deploy(&client, &app, 1, &[("database", &format!("creds{n}_{r}"))])
                .unwrap();
            converge(c, Duration::from_secs(120), |c| {
                all_active(c, PGBOUNCER, n) && c.model.unit(&format!("{app}/0")).is_some()
            });
            let got = round(c, &app, PGBOUNCER);
            eprintln!(
                "  {n} units, round {r}: usable after {:.2} s",
                got.usable.unwrap().0.as_secs_f64()
            );
            rounds.push(got);
        }
        let med = |f: fn(&e2e::credentials::Round) -> Option<(Duration, usize)>| {
            median(rounds.iter().map(|r| f(r).unwrap()).collect())
        };
        let usable = med(|r| r.usable);
        rows.push(CredentialRow {
            units: n,
            published_s: med(|r| r.published).0.as_secs_f64(),
            usable_s: usable.0.as_secs_f64(),
            client_active_s: med(|r| r.client_active).0.as_secs_f64(),
            hooks_until_usable: usable.1,
        });
    }
    rows
}

/// One hook [`run_until_idle`] ran.
struct RanHook {
    unit: String,
    hook: String,
    /// From its start to its end.
    wall: Duration,
    /// What its process and its hook-tool calls cost.
    cost: HookCost,
}

/// What [`run_until_idle`] ran.
struct Idle {
    /// From the first hook's start to no hook due.
    took: Duration,
    /// Each hook, in the order they finished.
    ran: Vec<RanHook>,
    /// The controller's own time: picking and preparing hooks, committing
    /// them and saving the model.
    controller: Duration,
}

/// Runs hooks as the daemon does (up to four units at once, each unit one
/// hook at a time) until none is due.
fn run_until_idle(c: &mut Controller) -> Idle {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let mut in_flight = 0;
    let mut ran = Vec::new();
    let mut controller = Duration::ZERO;
    loop {
        while in_flight < e2e::credentials::HOOKS_AT_ONCE {
            let picking = Instant::now();
            let next = c.next_due();
            controller += picking.elapsed();
            let Some(due) = next else { break };
            in_flight += 1;
            let tx = tx.clone();
            std::thread::spawn(move || {
                let began = Instant::now();
                let executed = due.execute();
                let _ = tx.send((due, executed, began.elapsed()));
            });
        }
        if in_flight == 0 {
            return Idle {
                took: start.elapsed(),
                ran,
                controller,
            };
        }
        let (due, executed, took) = rx.recv().unwrap();
        in_flight -= 1;
        let unit = due.unit.clone();
        let committing = Instant::now();
        let run = c.finish(due, executed).unwrap();
        controller += committing.elapsed();
        assert!(run.ok, "{unit} {}: {}", run.event.hook_name(), run.output);
        ran.push(RanHook {
            unit,
            hook: run.event.hook_name(),
            wall: took,
            cost: run.cost,
        });
    }
}

/// The hooks of one kind a batch of clients cost.
#[derive(Default)]
struct Spent {
    hooks: usize,
    wall: Duration,
    cpu: Duration,
    tool_calls: usize,
}

fn cfg_bytes(c: &Controller) -> usize {
    c.model
        .relations
        .iter()
        .find(|r| {
            r.is_peer()
                && r.end_of(PGBOUNCER)
                    .is_some_and(|e| e.endpoint == "pgb-peers")
        })
        .and_then(|r| r.app_bags.get(PGBOUNCER))
        .and_then(|b| b.data.get("cfg_file"))
        .map_or(0, String::len)
}

fn scale(c: &mut Controller, scratch: &Path, counts: &[usize]) -> Vec<ScaleRow> {
    while units(c, PGBOUNCER).len() > SCALE_UNITS {
        let last = units(c, PGBOUNCER).into_iter().max_by_key(|u| {
            u.rsplit('/')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        });
        c.remove_unit(&last.unwrap()).unwrap();
        converge(c, Duration::from_secs(120), |_| true);
    }
    while units(c, PGBOUNCER).len() < SCALE_UNITS {
        c.add_unit(PGBOUNCER).unwrap();
    }
    converge(c, Duration::from_secs(300), |c| {
        all_active(c, PGBOUNCER, SCALE_UNITS)
    });
    let light = light_client(scratch);
    let mut related = 0;
    let mut rows = Vec::new();
    for &target in counts {
        let batch = Instant::now();
        let before = related;
        // Where the hooks' time goes while the others are related: by charm
        // and hook, how many, their total wall and CPU time and their
        // hook-tool calls.
        let mut spent: BTreeMap<(String, String), Spent> = BTreeMap::new();
        let mut controller = (0, Duration::ZERO);
        let mut keep = |idle: Idle| {
            controller.0 += idle.ran.len();
            controller.1 += idle.controller;
            for RanHook {
                unit,
                hook,
                wall,
                cost,
            } in idle.ran
            {
                let charm = match unit.split('/').next().unwrap_or("") {
                    a if a.starts_with("light") => "client".to_string(),
                    a => a.to_string(),
                };
                let entry = spent.entry((charm, hook)).or_default();
                entry.hooks += 1;
                entry.wall += wall;
                entry.cpu += cost.cpu;
                entry.tool_calls += cost.tool_calls;
            }
        };
        while related + 1 < target {
            let app = format!("light{related}");
            c.deploy(&light, &app, 1, &[]).unwrap();
            c.integrate(&format!("{app}:database"), &format!("{PGBOUNCER}:database"))
                .unwrap();
            related += 1;
            if related % 10 == 0 {
                keep(run_until_idle(c));
            }
        }
        keep(run_until_idle(c));
        let mut by_time: Vec<_> = spent.into_iter().collect();
        by_time.sort_by_key(|(_, spent)| std::cmp::Reverse(spent.wall));
        for ((charm, hook), spent) in by_time.iter().take(8) {
            let n = spent.hooks as f64;
            eprintln!(
                "    relating up to {target}: {charm} {hook}: {} hooks, {:.1} s, {:.0} ms each \
                 ({:.0} ms CPU, {:.1} hook-tool calls)",
                spent.hooks,
                spent.wall.as_secs_f64(),
                ms(spent.wall) / n,
                ms(spent.cpu) / n,
                spent.tool_calls as f64 / n
            );
        }
        let per_client = batch.elapsed().as_secs_f64() / (related - before).max(1) as f64;
        let app = format!("light{related}");
        c.deploy(&light, &app, 1, &[]).unwrap();
        run_until_idle(c);
        c.integrate(&format!("{app}:database"), &format!("{PGBOUNCER}:database"))
            .unwrap();
        let Idle { took, ran, .. } = run_until_idle(c);
        related += 1;
        let creds = client_credentials(c, &app, PGBOUNCER).expect("credentials published");
        assert!(
            e2e::credentials::usable(c, PGBOUNCER, &creds),
            "the last client's credentials log in through every unit"
        );
        let ours: Vec<Duration> = ran
            .iter()
            .filter(|h| h.unit.starts_with(&format!("{PGBOUNCER}/")))
            .map(|h| h.wall)
            .collect();
        let row = ScaleRow {
            clients: target,
            hooks: ours.len(),
            hooks_total_ms: ours.iter().map(|d| ms(*d)).sum(),
            hook_max_ms: ours.iter().map(|d| ms(*d)).fold(0.0, f64::max),
            cfg_bytes: cfg_bytes(c),
            converge_s: took.as_secs_f64(),
            batch_s_per_client: per_client,
            controller_ms_per_hook: ms(controller.1) / controller.0.max(1) as f64,
        };
        eprintln!(
            "  {target} clients: {} hooks, longest {:.0} ms, cfg {} bytes, converged in {:.2} s \
             ({:.2} s a client before, the controller's own {:.1} ms a hook)",
            row.hooks,
            row.hook_max_ms,
            row.cfg_bytes,
            row.converge_s,
            row.batch_s_per_client,
            row.controller_ms_per_hook
        );
        rows.push(row);
    }
    rows
}

/// The many-clients section alone (`REPORT_SECTIONS=scale`): PostgreSQL and
/// PgBouncer deployed, then the clients related.
pub fn scale_only(counts: &[usize]) -> Vec<ScaleRow> {
    let scratch = Scratch::new("bench-scale");
    let mut c = controller(&scratch);
    deploy_pooler(&mut c, scratch.path());
    converge(&mut c, Duration::from_secs(300), |c| {
        all_active(c, PGBOUNCER, 1)
    });
    scale(&mut c, scratch.path(), counts)
}

/// PostgreSQL and one PgBouncer unit, related.
fn deploy_pooler(c: &mut Controller, scratch: &Path) {
    postgresql_cluster_with(c, scratch, 1, PG_CONFIG);
    c.deploy(&charm(scratch, PGBOUNCER), PGBOUNCER, 1, &[])
        .unwrap();
    c.integrate(
        &format!("{PGBOUNCER}:backend-database"),
        "postgresql-k8s:database",
    )
    .unwrap();
}

pub fn run(scale_counts: &[usize]) -> Results {
    let scratch = Scratch::new("bench-report");
    let mut c = controller(&scratch);
    let start = Instant::now();
    deploy_pooler(&mut c, scratch.path());
    let provider = python_charm(scratch.path(), PYTHON_PROVIDER);
    c.deploy(&provider, PYTHON_PROVIDER, 1, &[]).unwrap();
    converge(&mut c, Duration::from_secs(300), |c| {
        all_active(c, PGBOUNCER, 1) && all_active(c, PYTHON_PROVIDER, 1)
    });
    let deploy_s = start.elapsed().as_secs_f64();
    eprintln!("deployed in {deploy_s:.1} s; hook costs");
    let hooks = hook_costs(&mut c, scratch.path());
    eprintln!("time to credentials");
    let credentials = credentials(&mut c, scratch.path());
    eprintln!("many clients");
    let started = Instant::now();
    let scale = scale(&mut c, scratch.path(), scale_counts);
    Results {
        hooks,
        credentials,
        scale,
        deploy_s,
        scale_s: started.elapsed().as_secs_f64(),
    }
}
