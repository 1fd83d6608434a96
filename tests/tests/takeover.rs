//! Taking over a deployment of the reference charms end to end, one test per
//! charm. Each deploys this project's charm with a `postgresql_client` client
//! (v0, credentials in a secret) and a legacy `pgsql` client, each of which
//! writes a row; then the charm's state is rewritten, through the hook tools
//! in `juju exec` on each unit, into the layout Canonical's charm leaves
//! (`docs/takeover.md` says exactly what), and `refresh` upgrades it to this
//! charm. Each client's credentials, unchanged, log in through the endpoints
//! it is given and read the row written before; the reference's keys are
//! gone and the state is ours.
//!
//! - PgBouncer: two units over one PostgreSQL unit; every client through
//!   every PgBouncer unit.
//! - PostgreSQL: two units; the system users' passwords behind the URI older
//!   revisions kept in the peer bag (`internal-secret`), members by host
//!   name, the clients' endpoints as the reference's service names. The
//!   cluster stays the same one: both Patroni members run, the system
//!   identifier is unchanged, the system users keep their passwords.

#![allow(clippy::unwrap_used)]

use e2e::{action, active, address, charm, client_credentials, cluster_settled, controller};
use e2e::{
    converge, parse_conninfo, patroni_members, postgresql_cluster, primary, psql, psql_with,
};
use e2e::{python_charm, units, Scratch};
use local_model::controller::Controller;
use local_model::model::SecretOwnerRecord;
use std::time::{Duration, Instant};

const PGB: &str = "pgbouncer-k8s";
const PG: &str = "postgresql-k8s";

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

/// `s` quoted for the shell.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `script` in a hook context on `unit`; it must succeed.
fn exec(c: &mut Controller, unit: &str, script: &str) {
    let task = c.exec(unit, script).unwrap();
    assert!(task.succeeded(), "{unit}: {task:?}");
}

/// Where the reference left PgBouncer's application secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppSecret {
    /// Under the label (`pgb-peers.<app>.app`), as current revisions do.
    Labelled,
    /// Unlabelled, its URI in the peer bag (`internal-secret`), as older
    /// revisions did.
    BehindUri,
}

#[test]
fn pgbouncer_takes_over_the_reference_charms_state_and_every_client_keeps_working() {
    pgbouncer_takeover(AppSecret::Labelled);
}

#[test]
fn pgbouncer_takes_over_an_application_secret_kept_behind_internal_secret() {
    pgbouncer_takeover(AppSecret::BehindUri);
}

fn pgbouncer_takeover(app_secret_layout: AppSecret) {
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
    // user (labelled, or behind the URI in the peer bag), and the legacy
    // client's password only in the relation's bag.
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
    let content = format!(
        "{} {} {} cfg-file=None",
        quoted(&format!("auth-file={auth_file}")),
        quoted(&format!("admin-password={admin}")),
        quoted(&format!("monitoring-password={stats}")),
    );
    let secret_script = match app_secret_layout {
        AppSecret::Labelled => format!("secret-set {app_secret} {content}\n"),
        AppSecret::BehindUri => format!(
            "uri=$(secret-add --owner application {content})\n\
             relation-set -r {peers} --app \"internal-secret=$uri\"\n\
             secret-remove {app_secret}\n"
        ),
    };
    exec(
        &mut c,
        &leader,
        &format!(
            "set -e\n\
             relation-set -r {peers} --app 'pgb_dbs_config={map}' current_port=6432 \
             clients= backend_cluster= cfg_file= leader_hostname=\n\
             {secret_script}\
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
    assert_eq!(
        seeded.contains_key("internal-secret"),
        app_secret_layout == AppSecret::BehindUri
    );
    assert_eq!(
        secret_id(&c, PGB, &format!("pgb-peers.{PGB}.app")).is_some(),
        app_secret_layout == AppSecret::Labelled
    );

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
    assert!(!app.contains_key("internal-secret"));
    let secret = |key: &str| secret_value(&c, &format!("pgb-peers.{PGB}.app"), key);
    assert_eq!(secret("cfg-file"), None);
    assert_eq!(secret("admin-password"), Some(admin));
    assert_eq!(secret("monitoring-password"), Some(stats));
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

/// `f` answered `Ok` within `timeout`, the model settling between tries;
/// the last answer otherwise.
fn eventually<T>(
    c: &mut Controller,
    timeout: Duration,
    f: impl Fn(&mut Controller) -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = f(c);
        if got.is_ok() || Instant::now() > deadline {
            return got;
        }
        c.settle().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The cluster's system identifier, asked of `host` as the operator.
fn system_identifier(c: &Controller, host: &str) -> String {
    let password =
        secret_value(c, &format!("database-peers.{PG}.app"), "operator-password").unwrap();
    psql(
        host,
        5432,
        "operator",
        &password,
        "postgres",
        "SELECT system_identifier FROM pg_control_system()",
    )
    .unwrap()
    .trim()
    .to_string()
}

/// The `master` string the legacy client holds, once it names `host`.
fn legacy_master(c: &mut Controller, unit: &str, host: &str) -> Result<String, String> {
    let got = action(c, unit, "get-master", serde_json::json!({}));
    let master = got["master"].as_str().unwrap_or_default().to_string();
    match master.contains(&format!("host={host} ")) {
        true => Ok(master),
        false => Err(master),
    }
}

/// The value of `key` in a libpq `key=value` string.
fn conninfo_value(conninfo: &str, key: &str) -> String {
    parse_conninfo(conninfo)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[test]
fn postgresql_takes_over_the_reference_charms_state_and_the_cluster_and_clients_carry_on() {
    let started = Instant::now();
    let scratch = Scratch::new("takeover-pg");
    let mut c = controller(&scratch);
    postgresql_cluster(&mut c, scratch.path(), 2);
    c.deploy(&python_charm(scratch.path(), "pg-client"), "modern", 1, &[])
        .unwrap();
    c.integrate("modern:database", &format!("{PG}:database"))
        .unwrap();
    c.deploy(
        &python_charm(scratch.path(), "pgsql-client"),
        "legacy",
        1,
        &[("database", "legacydb")],
    )
    .unwrap();
    c.integrate("legacy:db", &format!("{PG}:db")).unwrap();
    converge(&mut c, Duration::from_secs(180), |c| {
        active(c, "modern/0").is_some_and(|m| m.contains('@'))
            && active(c, "legacy/0").as_deref() == Some("master ready")
            && cluster_settled(c, 2)
    });
    let deployed = started.elapsed();

    // What the clients hold, a row each writes, and the cluster's identity.
    let first = units(&c, PG)[0].clone();
    let primary_unit = primary(&mut c, &first);
    let primary_host = address(&c, &primary_unit);
    let modern = client_credentials(&c, "modern", PG).unwrap();
    assert_eq!(modern.endpoints, format!("{primary_host}:5432"));
    let legacy_before = legacy_master(&mut c, "legacy/0", &primary_host).unwrap();
    psql(
        &primary_host,
        5432,
        &modern.user,
        &modern.password,
        "appdb",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('modern before')",
    )
    .unwrap();
    psql_with(
        &legacy_before,
        None,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('legacy before')",
    )
    .unwrap();
    let identifier = system_identifier(&c, &primary_host);
    assert!(!identifier.is_empty());
    let app_label = format!("database-peers.{PG}.app");
    let system_passwords: Vec<(String, String)> =
        ["operator", "replication", "rewind", "monitoring", "patroni"]
            .iter()
            .map(|u| {
                let key = format!("{u}-password");
                let value = secret_value(&c, &app_label, &key).unwrap();
                (key, value)
            })
            .collect();

    // The reference's layout. The application secret: an unlabelled copy
    // whose URI the peer bag keeps (`internal-secret`), with a removed field,
    // and ours gone. The members by host name, the reference's own keys in
    // every bag, ours that it never writes gone. The clients' endpoints name
    // its services; the legacy client's password is only in its bags.
    let peers = relation_id(&c, PG, PG);
    let database_id = relation_id(&c, PG, "modern");
    let legacy_id = relation_id(&c, PG, "legacy");
    let leader = c.model.applications[PG].leader.clone().unwrap();
    let app_secret = secret_id(&c, PG, &app_label).unwrap();
    let legacy_secret = secret_id(&c, PG, &format!("db.{legacy_id}.user.secret")).unwrap();
    let hosts: Vec<String> = units(&c, PG)
        .iter()
        .map(|u| format!("{}.{PG}-endpoints", u.replace('/', "-")))
        .collect();
    let service = |kind: &str| format!("{PG}-{kind}.{}.svc.cluster.local", c.model.name);
    let (primary_service, replicas_service) = (service("primary"), service("replicas"));
    let copied: Vec<String> = system_passwords
        .iter()
        .map(|(k, _)| format!("\"{k}=$(secret-get {app_secret} {k})\""))
        .collect();
    let legacy_bag = bag(&c, legacy_id, PG);
    let referenced = |conninfo: &str, host: &str| {
        conninfo.replace(&format!("host={primary_host} "), &format!("host={host} "))
    };
    let legacy_answer = format!(
        "master={} host={primary_service} standbys={}",
        quoted(&referenced(&legacy_bag["master"], &primary_service)),
        quoted(&format!(
            "dbname=legacydb host={replicas_service} password={} port=5432 user={}",
            legacy_bag["password"], legacy_bag["user"]
        )),
    );
    exec(
        &mut c,
        &leader,
        &format!(
            "set -e\n\
             uri=$(secret-add --owner application {} backup-password=None)\n\
             relation-set -r {peers} --app \"internal-secret=$uri\" {} \
             user_hash=0f1e2d3c4b5a69788796a5b4c3d2e1f0 ldap_enabled=False {} \
             primary= legacy-refusals=\n\
             secret-remove {app_secret}\n\
             secret-remove {legacy_secret}\n\
             relation-set -r {database_id} --app endpoints={primary_service}:5432 \
             read-only-endpoints={replicas_service}:5432\n\
             relation-set -r {legacy_id} --app {legacy_answer}\n\
             relation-set -r {legacy_id} {legacy_answer}\n",
            copied.join(" "),
            quoted(&format!(
                "endpoints={}",
                serde_json::to_string(&hosts).unwrap()
            )),
            quoted(&format!(
                r#"rel_databases={{"{database_id}": "appdb", "{legacy_id}": "legacydb"}}"#
            )),
        ),
    );
    for unit in units(&c, PG) {
        exec(
            &mut c,
            &unit,
            &format!(
                "relation-set -r {peers} user_hash=0f1e2d3c4b5a69788796a5b4c3d2e1f0 \
                 config_hash=5a4b3c2d1e0f5a4b3c2d1e0f5a4b3c2d connectivity=on \
                 authorisation-rules-observer-pid=4242 \
                 pg_hba_needs_update_timestamp=1767225600 member-of= role-changed="
            ),
        );
    }
    let seeded = bag(&c, peers, PG);
    assert!(seeded["endpoints"].contains("-endpoints\""), "{seeded:?}");
    assert!(secret_id(&c, PG, &app_label).is_none());
    let internal = seeded["internal-secret"].clone();
    let older = c
        .model
        .secrets
        .iter()
        .find(|s| internal.ends_with(&s.xid))
        .and_then(|s| s.revisions.values().last().cloned())
        .unwrap();
    for (k, v) in &system_passwords {
        assert_eq!(older.get(k), Some(v.as_str()), "{k} copied");
    }
    assert!(secret_id(&c, PG, &format!("db.{legacy_id}.user.secret")).is_none());
    assert!(bag(&c, database_id, PG)["endpoints"].contains("svc.cluster.local"));

    // The upgrade.
    let upgrade = Instant::now();
    assert_eq!(c.refresh(PG, &charm(scratch.path(), PG)).unwrap(), 1);
    converge(&mut c, Duration::from_secs(180), |c| {
        let app = bag(c, relation_id(c, PG, PG), PG);
        !app.contains_key("internal-secret")
            && app
                .get("endpoints")
                .is_some_and(|e| !e.contains("-endpoints"))
            && cluster_settled(c, 2)
            && bag(c, relation_id(c, PG, "modern"), PG)
                .get("endpoints")
                .is_some_and(|e| !e.contains("svc.cluster.local"))
    });
    let took_over = upgrade.elapsed();

    // The same cluster: both members run, the same system identifier, the
    // system users' passwords unchanged.
    let primary_unit = primary(&mut c, &first);
    let primary_host = address(&c, &primary_unit);
    let members = patroni_members(&c, &primary_unit);
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members
            .iter()
            .all(|m| matches!(m["state"].as_str(), Some("running" | "streaming"))),
        "{members:?}"
    );
    assert_eq!(system_identifier(&c, &primary_host), identifier);
    for (k, v) in &system_passwords {
        assert_eq!(
            secret_value(&c, &app_label, k).as_deref(),
            Some(v.as_str()),
            "{k}"
        );
    }

    // Every client's credentials, unchanged, through the endpoints it is
    // given now; the rows written before are there, and the primary takes
    // writes.
    let now = client_credentials(&c, "modern", PG).unwrap();
    assert_eq!((&now.user, &now.password), (&modern.user, &modern.password));
    assert_eq!(now.endpoints, format!("{primary_host}:5432"));
    let (host, port) = now.endpoints.rsplit_once(':').unwrap();
    assert_eq!(
        psql(
            host,
            port.parse().unwrap(),
            &now.user,
            &now.password,
            &now.database,
            "INSERT INTO t VALUES ('modern after'); SELECT string_agg(v, ',' ORDER BY v) FROM t"
        )
        .unwrap()
        .trim(),
        "modern after,modern before"
    );
    let legacy_after = eventually(&mut c, Duration::from_secs(30), |c| {
        legacy_master(c, "legacy/0", &primary_host)
    })
    .unwrap();
    for key in ["user", "password", "dbname"] {
        assert_eq!(
            conninfo_value(&legacy_after, key),
            conninfo_value(&legacy_before, key),
            "{key}"
        );
    }
    assert_eq!(
        psql_with(&legacy_after, None, "SELECT v FROM t").unwrap(),
        "legacy before"
    );

    // The state is ours: the members as addresses, the passwords under our
    // label, the legacy password in its user secret, none of the reference's
    // keys; each unit records its member again.
    let app = bag(&c, peers, PG);
    let mut listed: Vec<String> = serde_json::from_str(&app["endpoints"]).unwrap();
    listed.sort();
    let mut addresses: Vec<String> = units(&c, PG).iter().map(|u| address(&c, u)).collect();
    addresses.sort();
    assert_eq!(listed, addresses);
    for key in [
        "internal-secret",
        "user_hash",
        "ldap_enabled",
        "rel_databases",
    ] {
        assert!(!app.contains_key(key), "{key} left: {app:?}");
    }
    assert!(app.contains_key("cluster_initialised"));
    assert_eq!(secret_value(&c, &app_label, "backup-password"), None);
    assert_eq!(
        secret_value(&c, &format!("db.{legacy_id}.user.secret"), "password"),
        Some(conninfo_value(&legacy_before, "password"))
    );
    for unit in units(&c, PG) {
        let own = bag(&c, peers, &unit);
        for key in [
            "user_hash",
            "config_hash",
            "connectivity",
            "authorisation-rules-observer-pid",
            "pg_hba_needs_update_timestamp",
        ] {
            assert!(!own.contains_key(key), "{unit}: {key} left");
        }
        assert_eq!(
            own.get("member-of").map(String::as_str),
            Some(format!("patroni-{PG}").as_str()),
            "{unit}: {own:?}"
        );
    }
    eprintln!(
        "deployed in {deployed:?}; taken over in {took_over:?}; {:?} in all",
        started.elapsed()
    );
}
