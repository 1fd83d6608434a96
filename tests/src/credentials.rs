//! How soon a client's credentials work: one round relates a client
//! application to PgBouncer and runs hooks as the local model's daemon does,
//! noting when the credentials were published, when they logged in through
//! every PgBouncer unit and when the client charm reported them. The
//! `credentials` and `report` benches share it.

use crate::{active, address, client_credentials, psql, units, Credentials};
use local_model::controller::Controller;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// As many units at once as the daemon runs hooks for.
pub const HOOKS_AT_ONCE: usize = 4;

/// When each milestone of one round was reached: time since `integrate`, less
/// the time the bench spent checking (its own logins), and hooks finished by then.
#[derive(Default)]
pub struct Round {
    pub published: Option<(Duration, usize)>,
    pub usable: Option<(Duration, usize)>,
    pub client_active: Option<(Duration, usize)>,
    /// The hooks that finished until the login worked: unit, hook, when it
    /// started (since `integrate`) and how long it took.
    pub ran: Vec<(String, String, Duration, Duration)>,
}

/// Whether the credentials log in through every unit of `provider`, to the
/// database and to its read-only twin.
pub fn usable(c: &Controller, provider: &str, creds: &Credentials) -> bool {
    login_errors(c, provider, creds).is_empty()
}

/// What `psql` said where the credentials did not log in through a unit of
/// `provider` (to the database or its read-only twin): unit, database, error.
pub fn login_errors(c: &Controller, provider: &str, creds: &Credentials) -> Vec<String> {
    let mut errors = Vec::new();
    for unit in units(c, provider) {
        let host = address(c, &unit);
        for db in [
            creds.database.clone(),
            format!("{}_readonly", creds.database),
        ] {
            if let Err(e) = psql(&host, 6432, &creds.user, &creds.password, &db, "SELECT 1") {
                errors.push(format!("{unit} {db}: {}", e.trim()));
            }
        }
    }
    errors
}

/// Relates `client` to `provider` and runs hooks as the daemon does (up to
/// [`HOOKS_AT_ONCE`] units at once, each in a thread), checking after each
/// hook that finishes.
pub fn round(c: &mut Controller, client: &str, provider: &str) -> Round {
    let start = Instant::now();
    c.integrate(
        &format!("{client}:database"),
        &format!("{provider}:database"),
    )
    .unwrap();
    let mut r = Round::default();
    let mut hooks = 0;
    let mut checking = Duration::ZERO;
    let (done_tx, done_rx) = mpsc::channel();
    let mut in_flight = 0;
    let pending = |r: &Round| r.client_active.is_none() || r.usable.is_none();
    while pending(&r) || in_flight > 0 {
        while in_flight < HOOKS_AT_ONCE && pending(&r) {
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
                "no progress:\n{}\nlogins: {:?}",
                c.status(),
                client_credentials(c, client, provider).map(|k| login_errors(c, provider, &k))
            );
            // No hook due: a workload may still be loading what the last one wrote.
            let check = Instant::now();
            if r.usable.is_none()
                && client_credentials(c, client, provider).is_some_and(|k| usable(c, provider, &k))
            {
                r.usable = Some((start.elapsed() - checking, hooks));
            }
            checking += check.elapsed();
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
            let creds = client_credentials(c, client, provider);
            if r.published.is_none() && creds.is_some() {
                r.published = Some(at);
            }
            if creds.as_ref().is_some_and(|k| usable(c, provider, k)) {
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

/// The median of the rounds' figures.
pub fn median(mut v: Vec<(Duration, usize)>) -> (Duration, usize) {
    v.sort();
    v[v.len() / 2]
}
