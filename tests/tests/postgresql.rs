//! The PostgreSQL charm on the local model with real Patroni, etcd and
//! PostgreSQL: a switchover (then new system passwords reaching every member),
//! a failover, and scaling down to one unit and back up, with a
//! client related to it directly; no data is lost and the client's endpoints
//! follow the primary. Then options set with `juju config` reach every
//! member, and a parameter waiting for a restart shows in every unit's status.

#![allow(clippy::unwrap_used)]

use e2e::{
    action, address, cluster_settled, controller, converge, postgresql_cluster, primary, psql,
    python_charm, units, Scratch,
};
use local_model::controller::Controller;
use serde_json::json;
use std::time::Duration;

const APP: &str = "postgresql-k8s";

/// What the PostgreSQL charm published to the client: `endpoints` and
/// `read-only-endpoints`.
fn published(c: &Controller) -> (String, String) {
    let relation = c
        .model
        .relations
        .iter()
        .find(|r| r.end_of("client").is_some())
        .expect("the client relation");
    let bag = &relation.app_bags[APP].data;
    (
        bag.get("endpoints").cloned().unwrap_or_default(),
        bag.get("read-only-endpoints").cloned().unwrap_or_default(),
    )
}

/// A cluster of three with a client related to it; returns the operator password.
fn cluster_with_client(c: &mut Controller, scratch: &Scratch) -> String {
    postgresql_cluster(c, scratch.path(), 3);
    let client = python_charm(scratch.path(), "pg-client");
    c.deploy(&client, "client", 1, &[]).unwrap();
    c.integrate("client:database", &format!("{APP}:database"))
        .unwrap();
    converge(c, Duration::from_secs(60), |c| {
        e2e::active(c, "client/0").is_some_and(|m| m.contains('@'))
    });
    action(c, &format!("{APP}/0"), "get-password", json!({}))["password"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Rows of `t` as read on `unit`, once it has caught up to `want` rows.
fn rows_on(c: &Controller, unit: &str, password: &str, want: usize) -> Vec<String> {
    let host = address(c, unit);
    let mut rows = Vec::new();
    for _ in 0..100 {
        if let Ok(out) = psql(
            &host,
            5432,
            "operator",
            password,
            "postgres",
            "SELECT v FROM t ORDER BY v",
        ) {
            rows = out.lines().map(str::to_string).collect();
            if rows.len() >= want {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    rows
}

#[test]
fn promote_to_primary_switches_over_and_the_client_follows() {
    let scratch = Scratch::new("switchover");
    let mut c = controller(&scratch);
    let password = cluster_with_client(&mut c, &scratch);
    let old = primary(&mut c, &format!("{APP}/0"));
    assert_eq!(published(&c).0, format!("{}:5432", address(&c, &old)));
    // Patroni switches over only to a standby it has confirmed synchronous.
    converge(&mut c, Duration::from_secs(60), |c| {
        !e2e::synchronous_standbys(c, &old).is_empty()
    });
    let target = e2e::synchronous_standbys(&c, &old).remove(0);

    action(
        &mut c,
        &target,
        "promote-to-primary",
        json!({"scope": "unit"}),
    );
    converge(&mut c, Duration::from_secs(60), |c| {
        published(c).0 == format!("{}:5432", address(c, &target))
            && e2e::active(c, &target).as_deref() == Some("Primary")
    });
    assert_eq!(primary(&mut c, &old), target);
    let (_, read_only) = published(&c);
    assert!(read_only.contains(&address(&c, &old)), "{read_only}");
    psql(
        &address(&c, &target),
        5432,
        "operator",
        &password,
        "postgres",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('after the switchover')",
    )
    .unwrap();
    assert_eq!(rows_on(&c, &old, &password, 1), ["after the switchover"]);

    // New passwords for the operator and for replication reach every member:
    // the old operator password no longer works, and a replica whose Patroni
    // and PostgreSQL are killed comes back streaming with the new one.
    let leader = c.model.applications[APP].leader.clone().unwrap();
    let replication = "a-new-replication-password-0123";
    let operator = action(
        &mut c,
        &leader,
        "set-password",
        json!({"username": "operator"}),
    )["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(operator, password);
    action(
        &mut c,
        &leader,
        "set-password",
        json!({"username": "replication", "password": replication}),
    );
    converge(&mut c, Duration::from_secs(60), |c| cluster_settled(c, 3));
    assert!(psql(
        &address(&c, &target),
        5432,
        "operator",
        &password,
        "postgres",
        "SELECT 1"
    )
    .is_err());
    c.kill_workload(&old, "postgresql", "postgresql").unwrap();
    psql(
        &address(&c, &target),
        5432,
        "operator",
        &operator,
        "postgres",
        "INSERT INTO t VALUES ('with new passwords')",
    )
    .unwrap();
    assert_eq!(
        rows_on(&c, &old, &operator, 2),
        ["after the switchover", "with new passwords"]
    );
}

#[test]
fn scaling_three_to_one_to_three_loses_no_data() {
    let scratch = Scratch::new("scaling");
    let mut c = controller(&scratch);
    let password = cluster_with_client(&mut c, &scratch);
    let first = primary(&mut c, &format!("{APP}/0"));
    psql(
        &address(&c, &first),
        5432,
        "operator",
        &password,
        "postgres",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('1 before scaling')",
    )
    .unwrap();

    // Down to the primary alone: it serves reads too.
    for unit in units(&c, APP).into_iter().filter(|u| *u != first) {
        c.remove_unit(&unit).unwrap();
    }
    converge(&mut c, Duration::from_secs(120), |c| cluster_settled(c, 1));
    let alone = format!("{}:5432", address(&c, &first));
    converge(&mut c, Duration::from_secs(30), |c| {
        published(c) == (alone.clone(), alone.clone())
    });
    psql(
        &address(&c, &first),
        5432,
        "operator",
        &password,
        "postgres",
        "INSERT INTO t VALUES ('2 with one unit')",
    )
    .unwrap();

    // Back to three: the new replicas get every row.
    c.add_unit(APP).unwrap();
    c.add_unit(APP).unwrap();
    converge(&mut c, Duration::from_secs(180), |c| cluster_settled(c, 3));
    for unit in units(&c, APP) {
        assert_eq!(
            rows_on(&c, &unit, &password, 2),
            ["1 before scaling", "2 with one unit"],
            "{unit}"
        );
    }
    converge(&mut c, Duration::from_secs(30), |c| {
        let (_, read_only) = published(c);
        units(c, APP)
            .iter()
            .filter(|u| **u != first)
            .all(|u| read_only.contains(&address(c, u)))
    });

    // Options reach every member: the parameters PostgreSQL reloads take
    // effect, and one it reads only at start once the rolling restart has
    // restarted every member, without update-status.
    c.config(
        APP,
        &[
            ("vacuum_autovacuum_naptime", "61"),
            ("optimizer_enable_seqscan", "false"),
            ("optimizer_cursor_tuple_fraction", "0.25"),
            ("request_time_zone", "Europe/Paris"),
            ("logging_track_functions", "pl"),
            ("instance_max_locks_per_transaction", "128"),
        ],
    )
    .unwrap();
    let settings = |c: &Controller, unit: &str| {
        psql(
            &address(c, unit),
            5432,
            "operator",
            &password,
            "postgres",
            "SELECT concat_ws(' ', current_setting('autovacuum_naptime'), \
             current_setting('enable_seqscan'), current_setting('cursor_tuple_fraction'), \
             current_setting('TimeZone'), current_setting('track_functions'), \
             current_setting('max_locks_per_transaction'))",
        )
        .unwrap_or_default()
    };
    let wanted = "61s off 0.25 Europe/Paris pl 128";
    converge(&mut c, Duration::from_secs(120), |c| {
        units(c, APP).iter().all(|u| {
            settings(c, u).trim() == wanted
                && e2e::active(c, u).is_some_and(|m| !m.contains("restart pending"))
        }) && cluster_settled(c, units(c, APP).len())
    });
    for unit in units(&c, APP) {
        assert_eq!(settings(&c, &unit).trim(), wanted, "{unit}");
    }
    let log = std::fs::read_to_string(scratch.path().join("controller/debug.log")).unwrap();
    // The replicas restarted, then a switchover (whose demotion restarts the
    // old primary as a replica).
    assert!(
        log.matches("rolling restart: PostgreSQL restarted").count() >= units(&c, APP).len() - 1,
        "the replicas restarted"
    );
    assert!(
        log.contains("the next step (Switchover)"),
        "a switchover before the primary's restart"
    );
}

#[test]
fn losing_the_primary_promotes_a_replica_and_the_client_follows() {
    let scratch = Scratch::new("failover");
    let mut c = controller(&scratch);
    let password = cluster_with_client(&mut c, &scratch);
    let old = primary(&mut c, &format!("{APP}/0"));
    psql(
        &address(&c, &old),
        5432,
        "operator",
        &password,
        "postgres",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('before the failover')",
    )
    .unwrap();
    for unit in units(&c, APP) {
        assert_eq!(
            rows_on(&c, &unit, &password, 1),
            ["before the failover"],
            "{unit}"
        );
    }

    // The primary's machine is lost: Patroni and PostgreSQL are SIGKILLed,
    // nothing releases the leader lock, and the unit stays gone. A replica
    // takes over once the lock expires.
    c.crash_unit(&old).unwrap();
    // Every unit names its role again, the replica too, without update-status.
    converge(&mut c, Duration::from_secs(180), |c| {
        let (endpoints, _) = published(c);
        cluster_settled(c, 2)
            && units(c, APP).iter().any(|u| {
                endpoints == format!("{}:5432", address(c, u))
                    && e2e::active(c, u).as_deref() == Some("Primary")
            })
    });
    let new = units(&c, APP)
        .into_iter()
        .find(|u| e2e::active(&c, u).as_deref() == Some("Primary"))
        .unwrap();
    assert_ne!(new, old);
    psql(
        &address(&c, &new),
        5432,
        "operator",
        &password,
        "postgres",
        "INSERT INTO t VALUES ('on the new primary')",
    )
    .unwrap();
    for unit in units(&c, APP) {
        assert_eq!(
            rows_on(&c, &unit, &password, 2),
            ["before the failover", "on the new primary"],
            "{unit}"
        );
    }
}
