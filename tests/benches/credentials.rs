//! How soon a client's credentials work, on the local model with real
//! PostgreSQL under Patroni, two PgBouncer units and a Python client on the
//! published v0 library. From `integrate client:database pgbouncer-k8s:database`
//! to:
//!
//! - the credentials published in the client relation (in a user secret);
//! - a login with them through every PgBouncer unit, to the database and its
//!   read-only twin;
//! - the client charm reporting them (its own `database-created` event).
//!
//! The target: usable within a second. Hooks run as the local model's
//! daemon runs them (several units at once, each unit one hook at a time);
//! each figure also counts the hooks that had finished, and the last round's
//! hooks are listed with their start and duration. Each round relates a new
//! client application; the figures are medians over the rounds.
//!
//! Run with `cargo bench -p e2e --bench credentials`.

#![allow(clippy::unwrap_used)]

use e2e::{
    active, address, charm, client_credentials, controller, converge, postgresql_cluster, psql,
    python_charm, Credentials, Scratch,
};
use local_model::controller::Controller;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PGBOUNCER: &str = "pgbouncer-k8s";
const ROUNDS: usize = 5;
/// As many units at once as the daemon runs hooks for.
const HOOKS_AT_ONCE: usize = 4;

/// When each milestone of one round was reached: time since `integrate`, less
/// the time the bench spent checking (its own logins), and hooks finished by then.
#[derive(Default)]
struct Round {
    published: Option<(Duration, usize)>,
    usable: Option<(Duration, usize)>,
    client_active: Option<(Duration, usize)>,
    /// The hooks that finished until the login worked: unit, hook, when it
    /// started (since `integrate`) and how long it took.
    ran: Vec<(String, String, Duration, Duration)>,
}

/// Whether the credentials log in through every PgBouncer unit, to the
/// database and to its read-only twin.
fn usable(c: &Controller, creds: &Credentials) -> bool {
    ["pgbouncer-k8s/0", "pgbouncer-k8s/1"].iter().all(|unit| {
        let host = address(c, unit);
        [
            creds.database.clone(),
            format!("{}_readonly", creds.database),
        ]
        .iter()
        .all(|db| psql(&host, 6432, &creds.user, &creds.password, db, "SELECT 1").is_ok())
    })
}

/// Relates `client` and runs hooks as the daemon does (up to `HOOKS_AT_ONCE`
/// units at once, each in a thread), checking after each hook that finishes.
fn round(c: &mut Controller, client: &str) -> Round {
    let start = Instant::now();
    c.integrate(
        &format!("{client}:database"),
        &format!("{PGBOUNCER}:database"),
    )
    .unwrap();
    let mut r = Round::default();
    let mut hooks = 0;
    let mut checking = Duration::ZERO;
    let (done_tx, done_rx) = mpsc::channel();
    let mut in_flight = 0;
    while r.client_active.is_none() || in_flight > 0 {
        while in_flight < HOOKS_AT_ONCE && r.client_active.is_none() {
            let Some(due) = c.next_due() else { break };
            in_flight += 1;
            let done = done_tx.clone();
            let began = start.elapsed();
            std::thread::spawn(move || {
                let ran = due.execute();
                let _ = done.send((due, ran, began));
            });
        }
        if in_flight == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no progress:\n{}",
                c.status()
            );
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let (due, ran, began) = done_rx.recv().unwrap();
        in_flight -= 1;
        let unit = due.unit.clone();
        let took = start.elapsed() - began;
        let run = c.finish(due, ran).unwrap();
        assert!(run.ok, "a hook failed: {}", run.output);
        hooks += 1;
        let at = (start.elapsed() - checking, hooks);
        let check = Instant::now();
        if r.usable.is_none() {
            r.ran.push((unit, run.event.hook_name(), began, took));
            let creds = client_credentials(c, client, PGBOUNCER);
            if r.published.is_none() && creds.is_some() {
                r.published = Some(at);
            }
            if creds.as_ref().is_some_and(|k| usable(c, k)) {
                r.usable = Some(at);
            }
        }
        if r.client_active.is_none()
            && active(c, &format!("{client}/0")).is_some_and(|m| m.contains('@'))
        {
            r.client_active = Some(at);
        }
        checking += check.elapsed();
    }
    r
}

fn median(mut v: Vec<(Duration, usize)>) -> (Duration, usize) {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let scratch = Scratch::new("bench-credentials");
    let mut c = controller(&scratch);
    postgresql_cluster(&mut c, scratch.path(), 1);
    c.deploy(&charm(scratch.path(), PGBOUNCER), PGBOUNCER, 2, &[])
        .unwrap();
    c.integrate(
        &format!("{PGBOUNCER}:backend-database"),
        "postgresql-k8s:database",
    )
    .unwrap();
    let client_charm = python_charm(scratch.path(), "pg-client");
    let mut rounds = Vec::new();
    for n in 0..ROUNDS {
        let client = format!("client{n}");
        let database = format!("appdb{n}");
        c.deploy(&client_charm, &client, 1, &[("database", &database)])
            .unwrap();
        converge(&mut c, Duration::from_secs(120), |c| {
            active(c, "pgbouncer-k8s/0").is_some()
                && active(c, "pgbouncer-k8s/1").is_some()
                && c.model.unit(&format!("{client}/0")).is_some()
        });
        let r = round(&mut c, &client);
        eprintln!(
            "round {n}: usable after {:.2} s, {} hooks",
            r.usable.unwrap().0.as_secs_f64(),
            r.usable.unwrap().1
        );
        rounds.push(r);
    }

    let secs = |d: Duration| d.as_secs_f64();
    let line = |what: &str, (d, hooks): (Duration, usize)| {
        println!("  {what:<52} {:>6.2} s  {hooks:>3} hooks", secs(d));
    };
    println!(
        "Credentials on the local model: PostgreSQL 15 under Patroni, 2 PgBouncer units, \
         a Python client (median of {ROUNDS} rounds)"
    );
    line(
        "integrate to credentials published:",
        median(rounds.iter().map(|r| r.published.unwrap()).collect()),
    );
    let usable = median(rounds.iter().map(|r| r.usable.unwrap()).collect());
    line("integrate to a login through every PgBouncer unit:", usable);
    println!("    ({:.2}x the 1 s target)", secs(usable.0));
    line(
        "integrate to the client charm reporting them:",
        median(rounds.iter().map(|r| r.client_active.unwrap()).collect()),
    );
    println!("  the hooks that finished until the login worked, last round:");
    println!(
        "    {:<18} {:<36} {:>8} {:>8}",
        "unit", "hook", "start", "took"
    );
    for (unit, hook, began, took) in &rounds.last().unwrap().ran {
        println!(
            "    {unit:<18} {hook:<36} {:>5.0} ms {:>5.0} ms",
            1000.0 * secs(*began),
            1000.0 * secs(*took)
        );
    }
}
