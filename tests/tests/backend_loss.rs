//! PgBouncer losing its backend and getting another: a one-unit PostgreSQL
//! cluster under PgBouncer's two units, and a client on the v0 library. With
//! PostgreSQL's only unit removed, every PgBouncer unit waits and says why.
//! Twice a new cluster takes the lost one's place: PostgreSQL brought back
//! with `add-unit` (it bootstraps a new cluster), then a new PostgreSQL
//! application related instead. Each time the client logs in again through
//! every PgBouncer unit with the credentials it already had, to its database
//! and its read-only twin, recreated empty in the new cluster, as the debug
//! log says.

use e2e::{
    action, active, address, charm, client_credentials, controller, converge, postgresql_cluster,
    psql, Scratch,
};
use local_model::controller::Controller;
use std::time::{Duration, Instant};

const PGB_UNITS: [&str; 2] = ["pgbouncer-k8s/0", "pgbouncer-k8s/1"];

/// Whether `unit` waits with a message that contains `why`.
fn waits(c: &Controller, unit: &str, why: &str) -> bool {
    matches!(
        c.model.unit(unit).map(|u| &u.status),
        Some(charm::Status::Waiting(m)) if m.contains(why)
    )
}

/// Runs `sql` through `unit` as the client, retrying while PgBouncer may
/// still be taking in a change.
fn through(
    c: &Controller,
    unit: &str,
    user: &str,
    password: &str,
    database: &str,
    sql: &str,
) -> Result<String, String> {
    let host = address(c, unit);
    let mut result = Err(String::new());
    for _ in 0..50 {
        result = psql(&host, 6432, user, password, database, sql);
        if result.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    result
}

/// Whether the client, with the credentials it already had, logs in through
/// every PgBouncer unit to its database (there, without the table written
/// before) and to its read-only twin.
fn serves_the_client_again(c: &Controller, credentials: &e2e::Credentials) {
    let (user, password) = (&credentials.user, &credentials.password);
    assert_eq!(
        client_credentials(c, "client", "pgbouncer-k8s").as_ref(),
        Some(credentials),
        "the client was told nothing new"
    );
    for unit in PGB_UNITS {
        let tables = through(
            c,
            unit,
            user,
            password,
            "appdb",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'notes'",
        );
        assert_eq!(
            tables.as_deref().map(str::trim),
            Ok("0"),
            "{unit}: recreated empty"
        );
        let read = through(c, unit, user, password, "appdb_readonly", "SELECT 1");
        assert_eq!(read.as_deref().map(str::trim), Ok("1"), "{unit}: read-only");
    }
}

#[test]
fn pgbouncer_waits_for_a_lost_backend_and_serves_a_new_cluster_with_the_same_credentials() {
    let started = Instant::now();
    let scratch = Scratch::new("backend-loss");
    let pgbouncer = charm(scratch.path(), "pgbouncer-k8s");
    let client = e2e::python_charm(scratch.path(), "pg-client");
    let mut c = controller(&scratch);

    postgresql_cluster(&mut c, scratch.path(), 1);
    c.deploy(&pgbouncer, "pgbouncer-k8s", 2, &[]).unwrap();
    c.integrate("pgbouncer-k8s:backend-database", "postgresql-k8s:database")
        .unwrap();
    c.deploy(&client, "client", 1, &[]).unwrap();
    c.integrate("client:database", "pgbouncer-k8s:database")
        .unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        active(c, "client/0").is_some_and(|m| m.contains('@'))
            && PGB_UNITS.iter().all(|u| active(c, u).is_some())
    });
    let credentials =
        client_credentials(&c, "client", "pgbouncer-k8s").expect("credentials in a secret");
    let (user, password) = (credentials.user.clone(), credentials.password.clone());
    assert_eq!(credentials.database, "appdb");
    through(
        &c,
        PGB_UNITS[0],
        &user,
        &password,
        "appdb",
        "CREATE TABLE notes (v text); INSERT INTO notes VALUES ('before')",
    )
    .unwrap();
    println!("served: {:?}", started.elapsed());

    // PostgreSQL's only unit goes: every PgBouncer unit waits and says why.
    c.remove_unit("postgresql-k8s/0").unwrap();
    let gone = "waiting for the backend: postgresql-k8s has no units";
    converge(&mut c, Duration::from_secs(60), |c| {
        c.model.unit("postgresql-k8s/0").is_none() && PGB_UNITS.iter().all(|u| waits(c, u, gone))
    });
    assert!(PGB_UNITS.iter().all(|u| active(&c, u).is_none()));
    println!("waiting: {:?}", started.elapsed());

    // The cluster comes back with add-unit: PostgreSQL bootstraps a new
    // cluster, which PgBouncer recognises by its identity.
    c.add_unit("postgresql-k8s").unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        PGB_UNITS.iter().all(|u| active(c, u).is_some())
    });
    println!("active with the unit added: {:?}", started.elapsed());
    serves_the_client_again(&c, &credentials);

    // Another cluster takes its place: a new PostgreSQL application, related
    // to PgBouncer's backend-database.
    c.remove_application("postgresql-k8s").unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        !c.model.applications.contains_key("postgresql-k8s")
            && PGB_UNITS.iter().all(|u| active(c, u).is_none())
    });
    let postgresql = charm(scratch.path(), "postgresql-k8s");
    c.deploy(&postgresql, "postgresql-b", 1, &[]).unwrap();
    c.integrate("postgresql-b:etcd", "etcd:etcd").unwrap();
    c.integrate("pgbouncer-k8s:backend-database", "postgresql-b:database")
        .unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        PGB_UNITS.iter().all(|u| active(c, u).is_some())
    });
    println!("active with another application: {:?}", started.elapsed());
    serves_the_client_again(&c, &credentials);

    through(
        &c,
        PGB_UNITS[1],
        &user,
        &password,
        "appdb",
        "CREATE TABLE notes (v text); INSERT INTO notes VALUES ('after')",
    )
    .unwrap();
    let read = through(
        &c,
        PGB_UNITS[0],
        &user,
        &password,
        "appdb",
        "SELECT v FROM notes",
    );
    assert_eq!(read.as_deref().map(str::trim), Ok("after"));
    let task = action(&mut c, "client/0", "get-credentials", serde_json::json!({}));
    assert_eq!(task["password"], password.as_str(), "the client's own view");

    // The debug log says what was lost.
    let log = std::fs::read_to_string(local_model::store::debug_log_path(c.root())).unwrap();
    assert!(
        log.contains("database appdb was recreated empty: the backend is a new cluster"),
        "{log}"
    );
    println!("done: {:?}", started.elapsed());
}
