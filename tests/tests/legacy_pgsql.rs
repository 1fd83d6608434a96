//! The legacy `pgsql` interface end to end: a Python charm on the published
//! `ops-lib-pgsql` library relates to PostgreSQL's `db` and `db-admin` and to
//! PgBouncer's `db`, and `psql` connects with the `master` (and `standbys`)
//! connection strings each client was given, through every PgBouncer unit;
//! after a switchover the direct clients' `master` names the new primary
//! and works, and the pooled client carries on through PgBouncer. One
//! deployment for the whole test.

#![allow(clippy::unwrap_used)]

use e2e::{
    action, active, address, controller, converge, postgresql_cluster_with, python_charm, units,
};
use e2e::{charm, primary, psql_with, Scratch};
use local_model::controller::Controller;
use serde_json::json;
use std::time::{Duration, Instant};

const PG: &str = "postgresql-k8s";
const PGB: &str = "pgbouncer-k8s";

/// `sql`'s output once it is `want` (a replica catching up), or the last
/// answer after ten seconds.
fn eventually(conninfo: &str, host: Option<&str>, sql: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = psql_with(conninfo, host, sql).unwrap_or_else(|e| e);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What `provider` wrote to `client`'s relation in its application bag.
fn published(c: &Controller, client: &str, provider: &str, key: &str) -> String {
    c.model
        .relations
        .iter()
        .find(|r| r.end_of(client).is_some() && r.end_of(provider).is_some())
        .and_then(|r| r.app_bags.get(provider))
        .and_then(|b| b.data.get(key).cloned())
        .unwrap_or_default()
}

/// The `master` and `standbys` strings the client charm holds (its
/// `ops-lib-pgsql` events), once its master names `target`'s address.
fn client_strings(c: &mut Controller, client: &str, target: &str) -> (String, Vec<String>) {
    let unit = format!("{client}/0");
    let host = address(c, target);
    let needle = format!("host={host} ");
    for _ in 0..20 {
        let got = action(c, &unit, "get-master", json!({}));
        let master = got["master"].as_str().unwrap().to_string();
        let standbys = got["standbys"].as_str().unwrap_or_default();
        if master.contains(&needle) {
            return (master, standbys.lines().map(str::to_string).collect());
        }
        c.settle().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{client}'s master never named {host}");
}

#[test]
fn legacy_clients_connect_with_their_master_strings_and_follow_a_switchover() {
    let started = Instant::now();
    let scratch = Scratch::new("legacy-pgsql");
    let mut c = controller(&scratch);
    // The direct client asks for citext, which its plugin option enables.
    postgresql_cluster_with(
        &mut c,
        scratch.path(),
        2,
        &[("plugin_citext_enable", "true")],
    );
    c.deploy(&charm(scratch.path(), PGB), PGB, 2, &[]).unwrap();
    c.integrate(
        &format!("{PGB}:backend-database"),
        &format!("{PG}:database"),
    )
    .unwrap();
    let client = python_charm(scratch.path(), "pgsql-client");
    c.deploy(
        &client,
        "direct",
        1,
        &[("database", "directdb"), ("extensions", "citext")],
    )
    .unwrap();
    c.integrate("direct:db", &format!("{PG}:db")).unwrap();
    c.deploy(&client, "admin", 1, &[("database", "admindb")])
        .unwrap();
    c.integrate("admin:db", &format!("{PG}:db-admin")).unwrap();
    c.deploy(&client, "pooled", 1, &[("database", "pooleddb")])
        .unwrap();
    c.integrate("pooled:db", &format!("{PGB}:db")).unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        ["direct/0", "admin/0", "pooled/0"]
            .iter()
            .all(|u| active(c, u).as_deref() == Some("master ready"))
            && units(c, PGB).iter().all(|u| active(c, u).is_some())
    });
    let deployed = started.elapsed();

    // Direct: the master is the primary, the standby the replica; the
    // extension asked for is there; what is written is read on the replica.
    let old = primary(&mut c, &format!("{PG}/0"));
    let replica = units(&c, PG).into_iter().find(|u| *u != old).unwrap();
    let (master, standbys) = client_strings(&mut c, "direct", &old);
    assert_eq!(standbys.len(), 1, "{standbys:?}");
    assert!(standbys[0].contains(&format!("host={} ", address(&c, &replica))));
    assert_eq!(
        psql_with(
            &master,
            None,
            "CREATE TABLE t (v citext); INSERT INTO t VALUES ('Before'); \
             SELECT count(*) FROM t WHERE v = 'before'"
        )
        .unwrap(),
        "1"
    );
    assert_eq!(
        eventually(&standbys[0], None, "SELECT v FROM t", "Before"),
        "Before"
    );
    assert!(psql_with(&standbys[0], None, "INSERT INTO t VALUES ('x')").is_err());
    // The default plugin's extension (pgaudit, preloaded) is there too.
    assert_eq!(
        psql_with(
            &master,
            None,
            "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension"
        )
        .unwrap(),
        "citext,pgaudit,plpgsql"
    );

    // db-admin: a superuser, in its own database.
    let (admin_master, _) = client_strings(&mut c, "admin", &old);
    assert_eq!(
        psql_with(
            &admin_master,
            None,
            "CREATE TABLE a (n int); INSERT INTO a VALUES (1); \
             SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        .unwrap(),
        "t"
    );

    // Through PgBouncer: the master names the leader unit; every unit serves
    // the database with the same credentials; the standby names the other
    // unit's read-only twin.
    let pgb_leader = c.model.applications[PGB].leader.clone().unwrap();
    let (pooled, pooled_standbys) = client_strings(&mut c, "pooled", &pgb_leader);
    assert!(pooled.contains(" port=6432 "), "{pooled}");
    assert_eq!(
        psql_with(
            &pooled,
            None,
            "CREATE TABLE p (v text); INSERT INTO p VALUES ('pooled'); SELECT v FROM p"
        )
        .unwrap(),
        "pooled"
    );
    for unit in units(&c, PGB) {
        assert_eq!(
            psql_with(&pooled, Some(&address(&c, &unit)), "SELECT v FROM p").unwrap(),
            "pooled",
            "through {unit}"
        );
    }
    assert_eq!(pooled_standbys.len(), 1, "{pooled_standbys:?}");
    assert!(pooled_standbys[0].contains("dbname=pooleddb_readonly "));
    assert_eq!(
        eventually(&pooled_standbys[0], None, "SELECT v FROM p", "pooled"),
        "pooled"
    );

    // A switchover: the direct clients' master follows the new primary.
    converge(&mut c, Duration::from_secs(60), |c| {
        e2e::synchronous_standbys(c, &old).contains(&replica)
    });
    let switch = Instant::now();
    action(
        &mut c,
        &replica,
        "promote-to-primary",
        json!({"scope": "unit"}),
    );
    let new_host = format!("host={} ", address(&c, &replica));
    converge(&mut c, Duration::from_secs(60), |c| {
        ["direct", "admin"]
            .iter()
            .all(|client| published(c, client, PG, "master").contains(&new_host))
    });
    let followed = switch.elapsed();
    let (master, standbys) = client_strings(&mut c, "direct", &replica);
    assert!(standbys[0].contains(&format!("host={} ", address(&c, &old))));
    assert_eq!(
        psql_with(
            &master,
            None,
            "INSERT INTO t VALUES ('After'); SELECT string_agg(v::text, ',' ORDER BY v) FROM t"
        )
        .unwrap(),
        "After,Before"
    );
    assert_eq!(
        eventually(&standbys[0], None, "SELECT count(*) FROM t", "2"),
        "2"
    );
    let (admin_master, _) = client_strings(&mut c, "admin", &replica);
    assert_eq!(
        psql_with(
            &admin_master,
            None,
            "INSERT INTO a VALUES (2); SELECT sum(n) FROM a"
        )
        .unwrap(),
        "3"
    );
    // PgBouncer follows its backend's new primary: the pooled client writes
    // through every unit with the strings it has.
    converge(&mut c, Duration::from_secs(60), |c| {
        published(c, PGB, PG, "endpoints") == format!("{}:5432", address(c, &replica))
    });
    for unit in units(&c, PGB) {
        let wrote = eventually(
            &pooled,
            Some(&address(&c, &unit)),
            &format!("INSERT INTO p VALUES ('{unit}'); SELECT 'ok'"),
            "ok",
        );
        assert_eq!(wrote, "ok", "through {unit}");
    }
    assert_eq!(
        psql_with(&pooled, None, "SELECT count(*) FROM p").unwrap(),
        "3"
    );
    eprintln!(
        "deployed and served in {deployed:?}; master followed the switchover in {followed:?}; \
         {:?} in all",
        started.elapsed()
    );
}
