//! New cluster generations on the local model with real etcd, Patroni and
//! PostgreSQL. A PostgreSQL application that lost every member: the only
//! unit is removed (its cluster's keys leave etcd with it), `add-unit` brings
//! a unit that bootstraps a new cluster, saying so while it does, and the
//! client's credentials work again; what the old cluster held is gone, as the
//! charm warned. A bootstrap interrupted during initdb (etcd holds its
//! unfinished `initialize` key, the data directory is half made): the leader
//! bootstraps a new cluster, the half-made directory moved aside, not deleted.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use charm::{LogLevel, Status};
use e2e::{
    action, active, address, charm, client_credentials, cluster_settled, controller, converge,
    pebble, postgresql_cluster, psql, python_charm, units, Credentials, Scratch,
};
use local_model::controller::Controller;
use pebble_api::{FileOptions, Pebble};
use postgresql_k8s::dcs::{parse_etcd_endpoints, Dcs};
use postgresql_k8s::dcs_keys::{DcsKeys, EtcdKeys, ScopeKeys};
use postgresql_k8s::flows::recovery::{INTERRUPTED, LOST};
use std::time::{Duration, Instant};

const APP: &str = "postgresql-k8s";

/// The etcd PostgreSQL was given.
fn etcd(c: &Controller) -> Dcs {
    let relation = c
        .model
        .relations
        .iter()
        .find(|r| r.end_of("etcd").is_some() && r.end_of(APP).is_some())
        .expect("the etcd relation");
    let raw = &relation.app_bags["etcd"].data["endpoints"];
    let (protocol, hosts) = parse_etcd_endpoints(raw).unwrap();
    Dcs::Etcd { protocol, hosts }
}

fn keys(c: &Controller, scope: &str) -> ScopeKeys {
    EtcdKeys::default().read(&etcd(c), scope).unwrap()
}

/// Writes a key in the etcd at `host` (`address:port`) through its gateway.
fn etcd_put(host: &str, key: &str, value: &str) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let body = serde_json::json!({"key": b64(key), "value": b64(value)}).to_string();
    let stream = std::net::TcpStream::connect(host).unwrap();
    let headers = [("Content-Type", "application/json")];
    let r = http_exchange::exchange(
        stream,
        host,
        "POST",
        "/v3/kv/put",
        &headers,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// `host` and `port` of the first endpoint.
fn first_endpoint(credentials: &Credentials) -> (String, u16) {
    let first = credentials.endpoints.split(',').next().unwrap();
    let (host, port) = first.rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap())
}

/// Runs due hooks one at a time until `done` holds, and returns every status
/// a PostgreSQL unit had after a hook, and every line the charms logged.
fn converge_watching(
    c: &mut Controller,
    timeout: Duration,
    done: impl Fn(&Controller) -> bool,
) -> (Vec<Status>, Vec<(LogLevel, String)>) {
    let start = Instant::now();
    let (mut statuses, mut logs, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        while let Some(due) = c.next_due() {
            let unit = due.unit.clone();
            let executed = due.execute();
            let run = c.finish(due, executed).unwrap();
            if !run.ok {
                failures.push(format!("{unit} {}: {}", run.event.hook_name(), run.output));
            }
            logs.extend(run.logs);
            for u in units(c, APP) {
                statuses.push(c.model.unit(&u).unwrap().status.clone());
            }
        }
        if done(c) {
            return (statuses, logs);
        }
        assert!(
            start.elapsed() < timeout,
            "not converged after {timeout:?}\n{}\nfailed hooks:\n{}",
            c.status(),
            failures.join("\n")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_postgresql_that_lost_every_member_comes_back_with_add_unit() {
    let scratch = Scratch::new("cluster-lost");
    let mut c = controller(&scratch);
    postgresql_cluster(&mut c, scratch.path(), 1);
    let client = python_charm(scratch.path(), "pg-client");
    c.deploy(&client, "client", 1, &[]).unwrap();
    c.integrate("client:database", &format!("{APP}:database"))
        .unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        active(c, "client/0").is_some_and(|m| m.contains('@'))
    });
    let before = client_credentials(&c, "client", APP).unwrap();
    let (host, port) = first_endpoint(&before);
    psql(
        &host,
        port,
        &before.user,
        &before.password,
        &before.database,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('before the loss')",
    )
    .unwrap();
    assert!(keys(&c, "patroni-postgresql-k8s").leader.is_some());

    // The only unit goes; its cluster's keys leave etcd with it.
    c.remove_unit(&format!("{APP}/0")).unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        units(c, APP).is_empty()
    });
    assert_eq!(keys(&c, "patroni-postgresql-k8s"), ScopeKeys::default());

    // A new unit bootstraps a new cluster generation, and says so meanwhile.
    let unit = c.add_unit(APP).unwrap();
    let (statuses, logs) = converge_watching(&mut c, Duration::from_secs(90), |c| {
        cluster_settled(c, 1)
            && client_credentials(c, "client", APP)
                .is_some_and(|cr| cr.endpoints.starts_with(&e2e::address(c, &unit)))
    });
    assert!(
        statuses.contains(&Status::Maintenance(LOST.into())),
        "{statuses:?}"
    );
    assert!(
        logs.iter().any(|(level, m)| *level == LogLevel::Warning
            && m.contains("the data the old cluster held is gone")),
        "{logs:?}"
    );
    let gen1 = keys(&c, "patroni-postgresql-k8s-gen1");
    assert_eq!(
        gen1.leader.as_deref(),
        Some(unit.replace('/', "-").as_str()),
        "{gen1:?}"
    );

    // The client's credentials work again, on the new primary; the row is
    // gone with the old cluster.
    let after = client_credentials(&c, "client", APP).unwrap();
    assert_eq!(
        (&after.user, &after.password, &after.database),
        (&before.user, &before.password, &before.database)
    );
    let (host, port) = first_endpoint(&after);
    assert_eq!(host, e2e::address(&c, &unit));
    let login = psql(
        &host,
        port,
        &after.user,
        &after.password,
        &after.database,
        "SELECT current_user",
    );
    assert_eq!(login.unwrap().trim(), after.user);
    let gone = psql(
        &host,
        port,
        &after.user,
        &after.password,
        &after.database,
        "SELECT v FROM t",
    )
    .unwrap_err();
    assert!(gone.contains(r#"relation "t" does not exist"#), "{gone}");
    psql(
        &host,
        port,
        &after.user,
        &after.password,
        &after.database,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('after')",
    )
    .unwrap();
}

#[test]
fn an_interrupted_bootstrap_is_bootstrapped_again_in_a_new_generation() {
    let scratch = Scratch::new("bootstrap-interrupted");
    let mut c = controller(&scratch);
    c.deploy(&charm(scratch.path(), "etcd"), "etcd", 1, &[])
        .unwrap();
    converge(&mut c, Duration::from_secs(30), |c| {
        active(c, "etcd/0").is_some()
    });
    // What a machine lost during initdb leaves: etcd holds the `initialize`
    // key without a system identifier, and no leader...
    let etcd_host = format!("{}:2379", address(&c, "etcd/0"));
    etcd_put(&etcd_host, "/service/patroni-postgresql-k8s/initialize", "");
    // ...and the unit's data directory is half made.
    c.deploy(&charm(scratch.path(), APP), APP, 1, &[]).unwrap();
    let unit = format!("{APP}/0");
    let mut pg = pebble(&c, &unit, "postgresql");
    let owned = |mode: u32| FileOptions {
        permissions: Some(mode),
        user: Some("postgres".into()),
        group: Some("postgres".into()),
        make_parents: true,
    };
    pg.make_dir("/var/lib/postgresql/data", &owned(0o750))
        .unwrap();
    pg.make_dir("/var/lib/postgresql/data/pgdata", &owned(0o700))
        .unwrap();
    pg.push(
        "/var/lib/postgresql/data/pgdata/PG_VERSION",
        b"15\n",
        &owned(0o600),
    )
    .unwrap();
    c.integrate(&format!("{APP}:etcd"), "etcd:etcd").unwrap();

    // Patroni waits for a leader that can never come; the leader finds the
    // bootstrap stalled and starts anew.
    let (statuses, _) =
        converge_watching(&mut c, Duration::from_secs(90), |c| cluster_settled(c, 1));
    assert!(
        statuses.contains(&Status::Maintenance(INTERRUPTED.into())),
        "{statuses:?}"
    );
    let gen1 = keys(&c, "patroni-postgresql-k8s-gen1");
    assert_eq!(gen1.leader.as_deref(), Some("postgresql-k8s-0"), "{gen1:?}");
    // The half-made directory was moved aside, not deleted.
    let aside = "/var/lib/postgresql/data/pgdata.before-patroni-postgresql-k8s-gen1";
    let kept = pg.list_files(aside, None).unwrap();
    assert!(
        kept.iter().any(|f| f.path.ends_with("/PG_VERSION")),
        "{kept:?}"
    );
    // The new cluster serves.
    let password = action(&mut c, &unit, "get-password", serde_json::json!({}))["password"]
        .as_str()
        .unwrap()
        .to_string();
    let out = psql(
        &address(&c, &unit),
        5432,
        "operator",
        &password,
        "postgres",
        "SELECT 1",
    )
    .unwrap();
    assert_eq!(out.trim(), "1");
}
