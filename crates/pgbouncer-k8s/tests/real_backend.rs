//! The backend flows against real PostgreSQL 15 clusters ([`TestCluster`]):
//! the charm, on the in-memory model, sets up a first cluster and a client in
//! it; a second cluster takes the backend's place, and the charm recognises
//! it by its system identifier and recreates the auth user and function and
//! the client's user and database there. The client then logs in to the new
//! cluster with the password it already had, and PgBouncer's auth query finds
//! it, as PgBouncer itself would run it.

#![allow(clippy::unwrap_used)]

mod support;

use charm::{LogLevel, SecretContent, SecretId};
use charm_testing::{event, State};
use pgbouncer_k8s::flows::Deps;
use pgbouncer_k8s::pgb::userlist::Userlist;
use pgbouncer_k8s::pgb::Layout;
use pgbouncer_k8s::state;
use pgbouncer_k8s::workload::Workload;
use pgbouncer_k8s::PgBouncerCharm;
use postgres_admin::testing::TestCluster;
use postgres_admin::{Admin, ConnectInfo, DatabaseName, RealConnector, RoleName};
use support::*;

/// The charm talking to real servers.
fn real_charm() -> PgBouncerCharm {
    PgBouncerCharm::new(Deps {
        connector: Box::new(RealConnector),
        workload: Workload {
            layout: Layout::default(),
            processes: 2,
            user: Some("postgres".into()),
            drain: std::time::Duration::ZERO,
            pause_wait: std::time::Duration::ZERO,
            // No namespace settings: a rolling restart hands nothing over.
            net_ipv4: "/nonexistent/net/ipv4".into(),
        },
    })
}

fn run(state: &State, event: charm::Event) -> State {
    charm_testing::run(&mut real_charm(), state, event)
        .unwrap_or_else(|f| panic!("{f}"))
        .state
}

/// A cluster as PostgreSQL's charm leaves it for PgBouncer: the `pgbouncer`
/// database it asked for exists.
fn cluster() -> TestCluster {
    let cluster = TestCluster::start().unwrap();
    let mut admin = Admin::connect(&cluster.connect_info("postgres")).unwrap();
    let owner = RoleName::parse(cluster.superuser()).unwrap();
    admin
        .create_database(&DatabaseName::parse("pgbouncer").unwrap(), &owner)
        .unwrap();
    cluster
}

fn endpoint(cluster: &TestCluster) -> String {
    format!("127.0.0.1:{}", cluster.port())
}

/// A login to `db` on `cluster` as `user`.
fn login(cluster: &TestCluster, user: &str, password: &str, db: &str) -> ConnectInfo {
    ConnectInfo {
        user: user.into(),
        password: password.into(),
        ..cluster.connect_info(db)
    }
}

/// The backend relation now points at `cluster`: its endpoint, and a new
/// revision of the user secret with its superuser's password.
fn point_at(mut s: State, cluster: &TestCluster) -> State {
    let backend = s.relations.iter_mut().find(|r| r.id == BACKEND_ID).unwrap();
    for key in ["endpoints", "read-only-endpoints"] {
        backend
            .remote_app_data
            .insert(key.into(), endpoint(cluster));
    }
    let secret = s
        .secrets
        .iter_mut()
        .find(|t| t.id == SecretId::parse(BACKEND_SECRET).unwrap())
        .unwrap();
    let next = secret.revisions.keys().max().unwrap() + 1;
    secret.revisions.insert(
        next,
        SecretContent::new()
            .with("username", cluster.superuser())
            .with("password", cluster.password()),
    );
    s
}

#[test]
fn a_new_cluster_in_the_backends_place_serves_the_clients_credentials_again() {
    let first = cluster();
    let s = with_backend_at(
        unit(0, true),
        (&endpoint(&first), &endpoint(&first)),
        (first.superuser(), first.password()),
    );
    let s = run(
        &s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
    );
    let first_id = Admin::connect(&first.connect_info("postgres"))
        .unwrap()
        .system_identifier()
        .unwrap();
    assert_eq!(peer_app(&s)[state::BACKEND_CLUSTER], first_id);

    // A client gets a database and writes to it.
    let s = s.with_relation(client(4, "app_db", &[]));
    let s = run(&s, event::relation_changed(s.relation(4).unwrap(), None));
    let password = s
        .secret_by_label(&client_interface::provider::secret_label(
            state::DATABASE,
            4,
            "user",
        ))
        .unwrap()
        .latest_content()
        .unwrap()
        .get("password")
        .unwrap()
        .to_string();
    let mut as_client = login(&first, "relation_id_4", &password, "app_db")
        .connect()
        .unwrap();
    as_client
        .batch_execute("CREATE TABLE notes (n int); INSERT INTO notes VALUES (1)")
        .unwrap();

    // Another cluster takes the backend's place.
    let second = cluster();
    let second_id = Admin::connect(&second.connect_info("postgres"))
        .unwrap()
        .system_identifier()
        .unwrap();
    assert_ne!(second_id, first_id);
    let moved = point_at(s, &second);
    let s = run(
        &moved,
        event::relation_changed(moved.relation(BACKEND_ID).unwrap(), None),
    );
    assert_eq!(peer_app(&s)[state::BACKEND_CLUSTER], second_id);
    assert!(s.logs.iter().any(|(level, m)| *level == LogLevel::Warning
        && m == "database app_db was recreated empty: the backend is a new cluster"));

    // The client's password works in the new cluster, on its database, which
    // is there and empty.
    let mut as_client = login(&second, "relation_id_4", &password, "app_db")
        .connect()
        .unwrap();
    let tables: i64 = as_client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "recreated empty");
    as_client
        .batch_execute("CREATE TABLE notes (n int); INSERT INTO notes VALUES (2)")
        .unwrap();

    // PgBouncer's auth query, as the auth user with the password in the auth
    // file, finds the client's verifier in each database it serves.
    let auth_file = s
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap()
        .latest_content()
        .unwrap()
        .get(state::AUTH_FILE)
        .unwrap()
        .to_string();
    let auth_user = format!("pgbouncer_auth_{}", second.superuser());
    let userlist = Userlist::parse(&auth_file).unwrap();
    let auth_password = userlist.get(&auth_user).unwrap();
    for db in ["app_db", "pgbouncer", "postgres"] {
        let mut auth = login(&second, &auth_user, auth_password, db)
            .connect()
            .unwrap_or_else(|e| panic!("{db}: {e}"));
        let row = auth
            .query_one(
                &format!("SELECT username, password FROM {auth_user}.get_auth($1)"),
                &[&"relation_id_4"],
            )
            .unwrap_or_else(|e| panic!("{db}: {e}"));
        let (user, verifier): (String, String) = (row.get(0), row.get(1));
        assert_eq!(user, "relation_id_4");
        assert!(verifier.starts_with("SCRAM-SHA-256$"), "{db}");
    }

    // The first cluster kept its data: nothing was dropped there.
    let mut old = login(&first, "relation_id_4", &password, "app_db")
        .connect()
        .unwrap();
    let n: i32 = old.query_one("SELECT n FROM notes", &[]).unwrap().get(0);
    assert_eq!(n, 1);
}
