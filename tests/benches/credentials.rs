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

use e2e::credentials::{median, round};
use e2e::{active, charm, controller, converge, postgresql_cluster, python_charm, Scratch};
use std::time::Duration;

const PGBOUNCER: &str = "pgbouncer-k8s";
const ROUNDS: usize = 5;

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
        let r = round(&mut c, &client, PGBOUNCER);
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
