//! The PgBouncer charm under many interleavings: three units, a PostgreSQL
//! backend and a client whose data arrive at moments the seed picks; then a
//! new leader, a new unit, a second client and a backend that goes down and
//! comes back; then the first client's relation and the leader's unit removed
//! together. After every hook, and once the model settles, the invariants
//! below must hold; a failure prints the seed and the hooks that led to it.
//!
//! - No early credentials: while a client's credentials are published, every
//!   unit named in its endpoints serves the client's database.
//! - Settled: every unit serves each related client's database and its
//!   read-only twin; the client's `endpoints` name the leader and
//!   `read-only-endpoints` every other unit; PostgreSQL holds the database and
//!   the client's user, with the password the client reads. A client that left
//!   has no user and no entries any more, and its database stays.
//! - No hook fails, and the model settles.
//!
//! `SIMULATION_SEEDS=n` runs n seeds (default 100).

#![allow(clippy::unwrap_used)]

use charm::SecretContent;
use juju_rules::ContainerState;
use pgbouncer_k8s::flows::Deps;
use pgbouncer_k8s::pgb::Layout;
use pgbouncer_k8s::workload::{Workload, CONTAINER};
use pgbouncer_k8s::PgBouncerCharm;
use postgres_admin::testing::FakeConnector;
use simulator::Simulation;
use std::collections::BTreeMap;
use std::path::PathBuf;

const APP: &str = "pgbouncer-k8s";
const LIMIT: usize = 2_000;

struct World {
    sim: Simulation,
    pg: FakeConnector,
    backend: u64,
    /// Each client relation that asked, and its database.
    clients: Vec<(u64, &'static str)>,
}

fn charm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charms/pgbouncer-k8s")
}

fn world(seed: u64) -> World {
    let mut sim = Simulation::new(seed);
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let connector = pg.clone();
    let containers = BTreeMap::from([(
        CONTAINER.to_string(),
        ContainerState::ready().with_file("/usr/bin/pgbouncer", b"\x7fELF..PgBouncer 1.24.1\0.."),
    )]);
    sim.deploy(
        &charm_dir(),
        APP,
        3,
        containers,
        Box::new(move || {
            Box::new(PgBouncerCharm::new(Deps {
                connector: Box::new(connector.clone()),
                workload: Workload {
                    layout: Layout::default(),
                    processes: 2,
                    user: Some("postgres".into()),
                    drain: std::time::Duration::ZERO,
                    pause_wait: std::time::Duration::ZERO,
                    // No namespace settings: a rolling restart hands nothing over.
                    net_ipv4: "/nonexistent/net/ipv4".into(),
                },
            }))
        }),
    );
    sim.deploy_remote(
        "postgresql-k8s",
        "name: postgresql-k8s\nprovides:\n  database:\n    interface: postgresql_client\n",
        1,
    );
    let backend = sim.integrate((APP, "backend-database"), ("postgresql-k8s", "database"));
    World {
        sim,
        pg,
        backend,
        clients: Vec::new(),
    }
}

/// PostgreSQL answers PgBouncer's request, with the user in a secret.
fn backend_answers(w: &mut World) {
    let secret = w.sim.add_remote_secret(
        "postgresql-k8s",
        w.backend,
        SecretContent::new()
            .with("username", "relation_id_3")
            .with("password", "backend-pw"),
    );
    w.sim.set_app_data(
        w.backend,
        "postgresql-k8s",
        &[
            ("endpoints", "10.9.0.1:5432"),
            ("read-only-endpoints", "10.9.0.2:5432"),
            ("version", "15.18"),
            ("secret-user", &secret),
        ],
    );
}

/// A client application `app` relates and asks for `database`, with its
/// credentials in secrets.
fn client_asks(w: &mut World, app: &str, database: &'static str) -> u64 {
    w.sim.deploy_remote(
        app,
        &format!("name: {app}\nrequires:\n  database:\n    interface: postgresql_client\n"),
        1,
    );
    let relation = w.sim.integrate((app, "database"), (APP, "database"));
    w.sim.set_app_data(
        relation,
        app,
        &[
            ("database", database),
            (
                "requested-secrets",
                r#"["username","password","tls","tls-ca","uris"]"#,
            ),
        ],
    );
    w.clients.push((relation, database));
    relation
}

/// Runs `n` hooks (fewer if none is due), checking after each.
fn run(w: &mut World, n: u64) {
    for _ in 0..n {
        if w.sim.step().is_none() {
            return;
        }
        let last = w.sim.history.last().unwrap().clone();
        assert!(
            last.ok,
            "{} {}: {}\n{}",
            last.unit,
            last.hook,
            last.output,
            w.sim.trace()
        );
        no_early_credentials(&w.sim, &w.clients);
    }
}

fn settle(w: &mut World) {
    let clients = w.clients.clone();
    w.sim
        .settle(LIMIT, |sim| no_early_credentials(sim, &clients));
}

/// What PgBouncer published to a client.
fn published(sim: &Simulation, client: u64) -> BTreeMap<String, String> {
    sim.model
        .relation(client)
        .and_then(|r| r.app_bags.get(APP))
        .map(|b| b.data.clone())
        .unwrap_or_default()
}

/// The unit whose address is `host:port`, if it is still there.
fn unit_at(sim: &Simulation, endpoint: &str) -> Option<String> {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    sim.model.applications[APP]
        .units
        .iter()
        .find(|(_, u)| u.address == host)
        .map(|(n, _)| n.clone())
}

/// Whether every process file of the unit has `database` in `[databases]`.
fn serves(sim: &Simulation, unit: &str, database: &str) -> bool {
    let Some(container) = sim.container(unit, CONTAINER) else {
        return false;
    };
    (0..2).all(|i| {
        container
            .file_text(&format!("/var/lib/pgbouncer/instance_{i}/pgbouncer.ini"))
            .is_some_and(|ini| ini.lines().any(|l| l.starts_with(&format!("{database} ="))))
    })
}

fn no_early_credentials(sim: &Simulation, clients: &[(u64, &str)]) {
    for (client, database) in clients {
        let bag = published(sim, *client);
        if !bag.contains_key("secret-user") {
            continue;
        }
        for list in ["endpoints", "read-only-endpoints"] {
            // A unit that has gone stays named until the leader (perhaps a
            // new one) runs its next hook; nothing can serve there meanwhile.
            for unit in bag[list].split(',').filter_map(|e| unit_at(sim, e)) {
                assert!(
                    serves(sim, &unit, database),
                    "credentials out while {unit} ({list}) does not serve {database}\n{}",
                    sim.trace()
                );
            }
        }
    }
}

/// A settled model serves each client that is still related, everywhere.
fn settled(w: &World) {
    let sim = &w.sim;
    let app = &sim.model.applications[APP];
    let leader = app.leader.clone().unwrap();
    let server = w.pg.server();
    for (client, database) in &w.clients {
        for unit in app.units.keys() {
            for db in [database.to_string(), format!("{database}_readonly")] {
                assert!(
                    serves(sim, unit, &db),
                    "{unit} serves {db}\n{}",
                    sim.trace()
                );
            }
        }
        let bag = published(sim, *client);
        assert!(
            bag.contains_key("secret-user"),
            "credentials published: {bag:?}\n{}",
            sim.trace()
        );
        assert_eq!(
            unit_at(sim, &bag["endpoints"]),
            Some(leader.clone()),
            "{bag:?}\n{}",
            sim.trace()
        );
        let mut readers: Vec<String> = bag["read-only-endpoints"]
            .split(',')
            .map(|e| unit_at(sim, e).unwrap_or_else(|| panic!("no unit at {e}: {bag:?}")))
            .collect();
        readers.sort();
        let others: Vec<String> = app
            .units
            .keys()
            .filter(|u| **u != leader)
            .cloned()
            .collect();
        assert_eq!(readers, others, "{bag:?}\n{}", sim.trace());
        assert!(server.databases.contains(*database));
        // The password the client reads is the one PostgreSQL holds.
        let label = client_interface::provider::secret_label(
            pgbouncer_k8s::state::DATABASE,
            *client,
            "user",
        );
        let secret = sim
            .model
            .secrets
            .iter()
            .find(|s| s.owner_label.as_deref() == Some(label.as_str()))
            .unwrap_or_else(|| panic!("the user secret {label}"));
        let given = secret.revisions[&secret.latest()].get("password");
        let held = server
            .users
            .get(&format!("relation_id_{client}"))
            .map(|(password, _)| password.as_str());
        assert!(given.is_some() && given == held, "{label}\n{}", sim.trace());
    }
}

fn scenario(seed: u64) {
    let mut w = world(seed);
    // The backend and the first client answer at moments the seed picks.
    run(&mut w, seed % 23);
    backend_answers(&mut w);
    run(&mut w, (seed / 23) % 17);
    let first = client_asks(&mut w, "client", "appdb");
    settle(&mut w);
    settled(&w);

    // Leadership moves, a unit joins, a second client asks, and the backend
    // goes down meanwhile.
    w.sim.set_leader(APP, "pgbouncer-k8s/2");
    w.sim.add_unit(APP);
    run(&mut w, seed % 7);
    client_asks(&mut w, "other", "otherdb");
    run(&mut w, seed % 5);
    w.pg.0.borrow_mut().down = Some("connection refused".into());
    run(&mut w, seed % 11);
    w.pg.0.borrow_mut().down = None;
    settle(&mut w);
    // Deferred work (a backend that was down) runs again at the next event.
    w.sim.tick();
    settle(&mut w);
    settled(&w);

    // The first client leaves while the leader's unit goes: another unit
    // leads, serves the second client, and drops the first client's user and
    // entries but never its database.
    w.sim.remove_relation(first);
    w.clients.retain(|(id, _)| *id != first);
    run(&mut w, seed % 13);
    w.sim.remove_unit("pgbouncer-k8s/2");
    settle(&mut w);
    w.sim.tick();
    settle(&mut w);
    settled(&w);
    assert_eq!(w.sim.model.applications[APP].units.len(), 3);
    let server = w.pg.server();
    assert!(server.databases.contains("appdb"), "the data stays");
    assert!(
        !server.users.contains_key(&format!("relation_id_{first}")),
        "the user goes\n{}",
        w.sim.trace()
    );
    for unit in w.sim.model.applications[APP].units.keys() {
        assert!(
            !serves(&w.sim, unit, "appdb"),
            "{unit} no longer serves appdb\n{}",
            w.sim.trace()
        );
    }
}

#[test]
fn every_interleaving_keeps_the_invariants() {
    let seeds: u64 = std::env::var("SIMULATION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    for seed in 0..seeds {
        let outcome = std::panic::catch_unwind(|| scenario(seed));
        if let Err(e) = outcome {
            eprintln!("seed {seed} broke an invariant");
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn a_seed_gives_one_order_and_another_seed_another() {
    let order = |seed| {
        let mut w = world(seed);
        backend_answers(&mut w);
        client_asks(&mut w, "client", "appdb");
        settle(&mut w);
        w.sim.trace()
    };
    assert_eq!(order(7), order(7));
    assert_ne!(order(7), order(8));
}
