//! Taking over a deployment of the reference charms end to end: PgBouncer (two
//! units over one PostgreSQL unit) serves a `postgresql_client` client (v0,
//! credentials in a secret) and a legacy `pgsql` client; each writes a row.
//! Then the PgBouncer application's state is rewritten, through the hook
//! tools in `juju exec` on each unit, into the layout Canonical's charm
//! leaves (`docs/takeover.md` says exactly what), and `refresh` upgrades it
//! to this charm. Each client's credentials, unchanged, log in through
//! every PgBouncer unit and read the row written before; the reference's
//! keys are gone and the state is ours.

#![allow(clippy::unwrap_used)]

use e2e::{active, address, charm, client_credentials, controller, converge, postgresql_cluster};
use e2e::{psql, python_charm, units, Scratch};
use local_model::controller::Controller;
use local_model::model::SecretOwnerRecord;
use std::time::{Duration, Instant};

const PGB: &str = "pgbouncer-k8s";

/// The id of the relation between `a` and `b` (a peer relation when the same).
fn relation_id(c: &Controller, a: &str, b: &str) -> u64 {
    c.model
        .relations
        .iter()
        .find(|r| r.end_of(a).is_some() && r.remote_app(a) == Some(b))
        .map(|r| r.id)
        .unwrap_or_else(|| panic!("no relation between {a} and {b}"))
}

/// The id, as hook tools take it, of the application secret labelled `label`.
fn secret_id(c: &Controller, app: &str, label: &str) -> Option<String> {
    c.model
        .secrets
        .iter()
        .find(|s| {
            s.owner_label.as_deref() == Some(label)
                && matches!(&s.owner, SecretOwnerRecord::App(a) if a == app)
        })
        .map(|s| format!("secret://{}/{}", c.model.uuid, s.xid))
}

/// The latest content of the secret labelled `label`.
fn secret_value(c: &Controller, label: &str, key: &str) -> Option<String> {
    let s = c
        .model
        .secrets
        .iter()
        .find(|s| s.owner_label.as_deref() == Some(label))?;
    s.revisions.values().last()?.get(key).map(str::to_string)
}

fn bag(c: &Controller, relation: u64, owner: &str) -> charm::Databag {
    let r = c.model.relation(relation).unwrap();
    r.app_bags
        .get(owner)
        .or_else(|| r.unit_bags.get(owner))
        .map(|b| b.data.clone())
        .unwrap_or_default()
}

/// Runs `script` in a hook context on `unit`; it must succeed.
fn exec(c: &mut Controller, unit: &str, script: &str) {
    let task = c.exec(unit, script).unwrap();
    assert!(task.succeeded(), "{unit}: {task:?}");
}

#[test]
fn pgbouncer_takes_over_the_reference_charms_state_and_every_client_keeps_working() {
    let started = Instant::now();
    let scratch = Scratch::new("takeover");
    let mut c = controller(&scratch);
    postgresql_cluster(&mut c, scratch.path(), 1);
    let pgbouncer = charm(scratch.path(), PGB);
    c.deploy(&pgbouncer, PGB, 2, &[]).unwrap();
    c.integrate(
        &format!("{PGB}:backend-database"),
        "postgresql-k8s:database",
    )
    .unwrap();
    c.deploy(&python_charm(scratch.path(), "pg-client"), "modern", 1, &[])
        .unwrap();
    c.integrate("modern:database", &format!("{PGB}:database"))
        .unwrap();
    c.deploy(
        &python_charm(scratch.path(), "pgsql-client"),
        "legacy",
        1,
        &[("database", "legacydb")],
    )
    .unwrap();
    c.integrate("legacy:db", &format!("{PGB}:db")).unwrap();
    converge(&mut c, Duration::from_secs(180), |c| {
        active(c, "modern/0").is_some_and(|m| m.contains('@'))
            && active(c, "legacy/0").as_deref() == Some("master ready")
            && units(c, PGB).iter().all(|u| active(c, u).is_some())
    });
    let deployed = started.elapsed();

    // What the clients hold, and a row each writes.
    let modern = client_credentials(&c, "modern", PGB).unwrap();
    let database_id = relation_id(&c, PGB, "modern");
    let legacy_id = relation_id(&c, PGB, "legacy");
    let legacy_bag = bag(&c, legacy_id, PGB);
    let (legacy_user, legacy_password) =
        (legacy_bag["user"].clone(), legacy_bag["password"].clone());
    let leader_host = address(&c, &format!("{PGB}/0"));
    let sql = |user: &str, password: &str, db: &str, host: &str, q: &str| {
        psql(host, 6432, user, password, db, q)
    };
    sql(
        &modern.user,
        &modern.password,
        "appdb",
        &leader_host,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('modern before')",
    )
    .unwrap();
    sql(
        &legacy_user,
        &legacy_password,
        "legacydb",
        &leader_host,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('legacy before')",
    )
    .unwrap();

    // The reference's layout: its map of clients instead of our record, its
    // unit keys instead of ours, an application secret without our auth
    // user, and the legacy client's password only in the relation's bag.
    let peers = relation_id(&c, PGB, PGB);
    let leader = c.model.applications[PGB].leader.clone().unwrap();
    let map = format!(
        r#"{{"{database_id}": {{"name": "appdb", "legacy": false}}, "{legacy_id}": {{"name": "legacydb", "legacy": true}}}}"#
    );
    let app_secret = secret_id(&c, PGB, &format!("pgb-peers.{PGB}.app")).unwrap();
    let secret = |key: &str| secret_value(&c, &format!("pgb-peers.{PGB}.app"), key).unwrap();
    let (auth_file, admin, stats) = (
        secret("auth-file"),
        secret("admin-password"),
        secret("monitoring-password"),
    );
    let legacy_secret = secret_id(&c, PGB, &format!("db.{legacy_id}.user.secret")).unwrap();
    exec(
        &mut c,
        &leader,
        &format!(
            "set -e\n\
             relation-set -r {peers} --app 'pgb_dbs_config={map}' current_port=6432 \
             clients= backend_cluster= cfg_file= leader_hostname=\n\
             secret-set {app_secret} 'auth-file={auth_file}' 'admin-password={admin}' \
             'monitoring-password={stats}' cfg-file=None\n\
             secret-remove {legacy_secret}\n"
        ),
    );
    for unit in units(&c, PGB) {
        exec(
            &mut c,
            &unit,
            &format!(
                "relation-set -r {peers} userlist_nonce=Ab3dEf6hIj9kLm2nOp5qRs8t \
                 container_initialised=True pgb_dbs=3c1b3b0d2c5e4f1a9b8c7d6e5f4a3b2c \
                 hostname= processes= cfg_hash= pgbouncer_version= tls_ca="
            ),
        );
    }
    let seeded = bag(&c, peers, PGB);
    assert!(seeded.contains_key("pgb_dbs_config") && !seeded.contains_key("clients"));
    assert!(secret_id(&c, PGB, &format!("db.{legacy_id}.user.secret")).is_none());

    // The upgrade.
    let upgrade = Instant::now();
    assert_eq!(c.refresh(PGB, &pgbouncer).unwrap(), 1);
    converge(&mut c, Duration::from_secs(120), |c| {
        let app = bag(c, relation_id(c, PGB, PGB), PGB);
        app.contains_key("clients")
            && !app.contains_key("pgb_dbs_config")
            && units(c, PGB).iter().all(|u| {
                active(c, u).is_some()
                    && bag(c, relation_id(c, PGB, PGB), u).contains_key("cfg_hash")
            })
    });
    let took_over = upgrade.elapsed();

    // Every client's credentials, unchanged, through every unit; the rows
    // written before are there.
    assert_eq!(client_credentials(&c, "modern", PGB).unwrap(), modern);
    let legacy_bag = bag(&c, legacy_id, PGB);
    assert_eq!(legacy_bag["password"], legacy_password);
    assert_eq!(legacy_bag["user"], legacy_user);
    for unit in units(&c, PGB) {
        let host = address(&c, &unit);
        let mut read = Err(String::new());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            read = sql(
                &modern.user,
                &modern.password,
                "appdb",
                &host,
                "SELECT v FROM t",
            )
            .and_then(|m| {
                sql(
                    &legacy_user,
                    &legacy_password,
                    "legacydb",
                    &host,
                    "SELECT v FROM t",
                )
                .map(|l| format!("{}|{}", m.trim(), l.trim()))
            });
            if read.is_ok() {
                break;
            }
            c.settle().unwrap();
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(
            read.unwrap(),
            "modern before|legacy before",
            "through {unit}"
        );
    }

    // The state is ours: the clients' record, the legacy password in its
    // user secret, our unit keys and none of the reference's.
    let app = bag(&c, peers, PGB);
    let clients: serde_json::Value = serde_json::from_str(&app["clients"]).unwrap();
    assert_eq!(clients[database_id.to_string()]["database"], "appdb");
    assert_eq!(clients[legacy_id.to_string()]["database"], "legacydb");
    assert!(!app.contains_key("current_port"));
    assert!(app.contains_key("backend_cluster"));
    assert_eq!(
        secret_value(&c, &format!("db.{legacy_id}.user.secret"), "password"),
        Some(legacy_password)
    );
    assert_eq!(
        secret_value(&c, &format!("pgb-peers.{PGB}.app"), "cfg-file"),
        None
    );
    for unit in units(&c, PGB) {
        let own = bag(&c, peers, &unit);
        for key in ["userlist_nonce", "container_initialised", "pgb_dbs"] {
            assert!(!own.contains_key(key), "{unit}: {key} left");
        }
        assert!(own.contains_key("hostname"), "{unit}: {own:?}");
    }
    eprintln!(
        "deployed in {deployed:?}; taken over in {took_over:?}; {:?} in all",
        started.elapsed()
    );
}
