//! The charms on a Kubernetes model: the local model serves the Kubernetes
//! API the charms call (over TLS, with each application's service account),
//! routes each Service's addresses to the pods it selects, and resolves the
//! Services' cluster names for hooks and containers. PostgreSQL's clients
//! are given its `-primary` and `-replicas` Services, which follow a
//! switchover and a failover with nothing changed on the client's side.
//! PgBouncer deployed without trust blocks with the command that fixes it;
//! trusted, it creates its Service, and a client connects through the
//! Service's address in each `expose-external` mode, switched back and
//! forth, and through a rolling upgrade held by the StatefulSet's
//! partition; the Service goes with the application.

use e2e::{
    action, active, assert_runs_on_image, blocked, charm, client_credentials, controller, converge,
    python_charm, Scratch,
};
use local_model::controller::{Controller, DeployOptions};
use std::time::Duration;

const PG: &str = "postgresql-k8s";
const PGB: &str = "pgbouncer-k8s";
const SERVICE: &str = "pgbouncer-k8s-service";

/// What the client was told, once every PgBouncer unit is active and the
/// endpoints satisfy `want`.
fn told(c: &mut Controller, want: impl Fn(&str) -> bool) -> e2e::Credentials {
    converge(c, Duration::from_secs(120), |c| {
        e2e::units(c, PGB).iter().all(|u| active(c, u).is_some())
            && client_credentials(c, "client", PGB).is_some_and(|cr| want(&cr.endpoints))
    });
    client_credentials(c, "client", PGB).expect("credentials")
}

/// Writes and reads a row through `endpoint` (`host:port`; a cluster DNS
/// name is looked up as the cluster's DNS would), as a new connection;
/// tries for a while (a Service's pods may be changing). Answers the
/// address of the PostgreSQL server that took the row.
fn round_trip(c: &Controller, credentials: &e2e::Credentials, endpoint: &str, row: &str) -> String {
    let (host, port) = endpoint.rsplit_once(':').expect("host:port");
    let kubernetes = c.kubernetes().expect("a Kubernetes model");
    let address = kubernetes.resolve(host).unwrap_or_else(|| host.to_string());
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS rows (v text); INSERT INTO rows VALUES ('{row}'); \
         SELECT count(*), host(inet_server_addr()) FROM rows WHERE v = '{row}'"
    );
    let mut last = String::new();
    for _ in 0..120 {
        match e2e::psql(
            &address,
            port.parse().expect("a port"),
            &credentials.user,
            &credentials.password,
            &credentials.database,
            &sql,
        ) {
            Ok(out) => {
                let (count, server) = out.trim().split_once('|').expect("two columns");
                assert_eq!(count, "1", "{out}");
                return server.to_string();
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("no SQL through {endpoint} ({address}): {last}");
}

/// The `read-only-endpoints` `provider` published to `client`.
fn read_only(c: &Controller, client: &str, provider: &str) -> Option<String> {
    let relation = c
        .model
        .relations
        .iter()
        .find(|r| r.end_of(client).is_some() && r.end_of(provider).is_some())?;
    relation
        .app_bags
        .get(provider)?
        .data
        .get("read-only-endpoints")
        .cloned()
}

/// The unit whose status says it is the primary.
fn primary_unit(c: &Controller) -> Option<String> {
    e2e::units(c, PG)
        .into_iter()
        .find(|u| active(c, u).as_deref() == Some("Primary"))
}

fn service_type(c: &Controller) -> Option<String> {
    c.kubernetes()?
        .services()
        .iter()
        .find(|s| s["metadata"]["name"] == SERVICE)
        .map(|s| s["spec"]["type"].as_str().unwrap_or_default().to_string())
}

#[test]
fn pgbouncer_is_reached_through_its_service_in_each_exposure() {
    let scratch = Scratch::new("kubernetes");
    let mut c = controller(&scratch);
    c.use_kubernetes().unwrap();
    let namespace = c.model.name.clone();
    let node = format!("127.{}.0.1", c.model.network);

    c.deploy(&charm(scratch.path(), "etcd"), "etcd", 1, &[])
        .unwrap();
    c.deploy_with(
        &charm(scratch.path(), PG),
        PG,
        2,
        &[],
        &DeployOptions {
            trust: true,
            ..DeployOptions::default()
        },
    )
    .unwrap();
    c.integrate("postgresql-k8s:etcd", "etcd:etcd").unwrap();
    let client = python_charm(scratch.path(), "pg-client");
    c.deploy(&client, "direct", 1, &[("database", "directdb")])
        .unwrap();
    c.integrate("direct:database", "postgresql-k8s:database")
        .unwrap();
    c.deploy(&charm(scratch.path(), PGB), PGB, 2, &[]).unwrap();
    c.integrate("pgbouncer-k8s:backend-database", "postgresql-k8s:database")
        .unwrap();
    c.deploy(&client, "client", 1, &[("database", "appdb")])
        .unwrap();
    c.integrate("client:database", "pgbouncer-k8s:database")
        .unwrap();

    // PostgreSQL's clients are given its Services by their cluster names.
    let service = |suffix: &str| format!("{PG}-{suffix}.{namespace}.svc.cluster.local:5432");
    converge(&mut c, Duration::from_secs(240), |c| {
        e2e::cluster_settled(c, 2)
            && client_credentials(c, "direct", PG)
                .is_some_and(|cr| cr.endpoints == service("primary"))
            && read_only(c, "direct", PG).is_some_and(|ro| ro == service("replicas"))
    });
    let direct = client_credentials(&c, "direct", PG).expect("credentials");
    let first = primary_unit(&c).expect("a primary");
    let served = round_trip(&c, &direct, &direct.endpoints, "primary");
    assert_eq!(served, e2e::address(&c, &first));
    let replica = e2e::units(&c, PG)
        .into_iter()
        .find(|u| *u != first)
        .unwrap();
    let (host, _) = direct.endpoints.rsplit_once(':').unwrap();
    let replicas = c
        .kubernetes()
        .unwrap()
        .resolve(&host.replace("-primary", "-replicas"))
        .unwrap();
    let read = e2e::psql(
        &replicas,
        5432,
        &direct.user,
        &direct.password,
        &direct.database,
        "SELECT pg_is_in_recovery(), host(inet_server_addr())",
    )
    .unwrap();
    assert_eq!(read.trim(), format!("t|{}", e2e::address(&c, &replica)));

    // A switchover: the -primary Service follows, the client changes nothing.
    converge(&mut c, Duration::from_secs(60), |c| {
        !e2e::synchronous_standbys(c, &first).is_empty()
    });
    action(
        &mut c,
        &replica,
        "promote-to-primary",
        serde_json::json!({"scope": "unit"}),
    );
    converge(&mut c, Duration::from_secs(60), |c| {
        primary_unit(c).as_deref() == Some(replica.as_str())
    });
    assert_eq!(client_credentials(&c, "direct", PG), Some(direct.clone()));
    let served = round_trip(&c, &direct, &direct.endpoints, "after-switchover");
    assert_eq!(served, e2e::address(&c, &replica));

    // Without trust, the API refuses PgBouncer's service account, and
    // another PostgreSQL's: the units say which command fixes it, and the
    // client is told nothing.
    c.deploy(&charm(scratch.path(), PG), "untrusted", 1, &[])
        .unwrap();
    c.integrate("untrusted:etcd", "etcd:etcd").unwrap();
    let fix = format!("juju trust {PGB} --scope=cluster");
    converge(&mut c, Duration::from_secs(180), |c| {
        e2e::units(c, PGB)
            .iter()
            .all(|u| blocked(c, u).is_some_and(|m| m.contains(&fix)))
            && blocked(c, "untrusted/0")
                .is_some_and(|m| m.contains("juju trust untrusted --scope=cluster"))
    });
    // The pods' containers run on the workload images.
    assert_runs_on_image(&c, &format!("{PGB}/0"), "pgbouncer", "pgbouncer");
    assert_runs_on_image(&c, &format!("{PG}/1"), "postgresql", "postgresql");
    // Trusted, it has its Services.
    c.set_trust("untrusted", true).unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        blocked(c, "untrusted/0").is_none()
            && c.kubernetes().is_some_and(|k| {
                k.services()
                    .iter()
                    .any(|s| s["metadata"]["name"] == "untrusted-primary")
            })
    });
    c.remove_application("untrusted").unwrap();
    assert_eq!(client_credentials(&c, "client", PGB), None);
    assert_eq!(service_type(&c), None);

    // Trusted: a ClusterIP Service, named to the client by its cluster DNS
    // name, and reached at its cluster IP.
    c.set_trust(PGB, true).unwrap();
    let cluster_name = format!("{SERVICE}.{namespace}.svc.cluster.local:6432");
    let credentials = told(&mut c, |e| e == cluster_name);
    assert_eq!(service_type(&c).as_deref(), Some("ClusterIP"));
    round_trip(&c, &credentials, &credentials.endpoints, "cluster-ip");
    // PgBouncer reaches PostgreSQL through its -primary Service too.
    let backend = client_credentials(&c, PGB, PG).expect("PgBouncer's backend credentials");
    assert_eq!(backend.endpoints, service("primary"));

    // NodePort: the node's address and the node port.
    c.config(PGB, &[("expose-external", "nodeport")]).unwrap();
    let credentials = told(&mut c, |e| e.starts_with(&format!("{node}:3")));
    assert_eq!(service_type(&c).as_deref(), Some("NodePort"));
    round_trip(&c, &credentials, &credentials.endpoints, "node-port");

    // LoadBalancer: waiting until the load balancer has an address, which
    // the next update-status finds.
    c.config(PGB, &[("expose-external", "loadbalancer")])
        .unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        service_type(c).as_deref() == Some("LoadBalancer")
            && c.model.unit("pgbouncer-k8s/0").is_some_and(|u| {
                matches!(&u.status, charm::Status::Waiting(m) if m.contains("load balancer address"))
            })
    });
    c.tick();
    let balancer = format!("127.{}.255.", c.model.network);
    let credentials = told(&mut c, |e| e.starts_with(&balancer));
    round_trip(&c, &credentials, &credentials.endpoints, "load-balancer");

    // Back to ClusterIP: the API refuses to patch node ports away, so the
    // Service is made again; the client is told the DNS name again and
    // reconnects through it.
    c.config(PGB, &[("expose-external", "false")]).unwrap();
    let credentials = told(&mut c, |e| e == cluster_name);
    assert_eq!(service_type(&c).as_deref(), Some("ClusterIP"));
    round_trip(&c, &credentials, &credentials.endpoints, "cluster-ip-again");

    // A rolling upgrade through the StatefulSet's partition: pre-upgrade-check
    // holds every unit but the highest back, so `refresh` upgrades that one
    // alone; resume-upgrade lowers the partition and the other follows. The
    // client is served throughout.
    let revision = |c: &Controller, unit: &str| c.model.unit(unit).unwrap().seen.charm_revision;
    let checked = action(
        &mut c,
        "pgbouncer-k8s/0",
        "pre-upgrade-check",
        serde_json::json!({}),
    );
    assert_eq!(checked["partition"], "1", "{checked:?}");
    c.refresh(PGB, &charm(scratch.path(), PGB)).unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        revision(c, "pgbouncer-k8s/1") == 1 && active(c, "pgbouncer-k8s/1").is_some()
    });
    assert_eq!(
        revision(&c, "pgbouncer-k8s/0"),
        0,
        "held back by the partition"
    );
    round_trip(&c, &credentials, &credentials.endpoints, "half-upgraded");
    let resumed = action(
        &mut c,
        "pgbouncer-k8s/0",
        "resume-upgrade",
        serde_json::json!({}),
    );
    assert_eq!(
        resumed["message"], "Upgrade will resume on unit 0",
        "{resumed:?}"
    );
    converge(&mut c, Duration::from_secs(120), |c| {
        revision(c, "pgbouncer-k8s/0") == 1 && active(c, "pgbouncer-k8s/0").is_some()
    });
    round_trip(&c, &credentials, &credentials.endpoints, "upgraded");

    // Every pod is behind the Service: with one PgBouncer unit gone, the
    // Service still reaches the other.
    c.remove_unit("pgbouncer-k8s/0").unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        e2e::units(c, PGB) == ["pgbouncer-k8s/1"] && active(c, "pgbouncer-k8s/1").is_some()
    });
    round_trip(&c, &credentials, &credentials.endpoints, "one-unit");

    // The Service goes with the application.
    c.remove_application(PGB).unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        !c.model.applications.contains_key(PGB)
    });
    assert_eq!(service_type(&c), None);

    // The primary's machine is lost: once Patroni promotes the other member,
    // the -primary Service reaches it, the client unchanged; every row
    // written through the Services is there.
    converge(&mut c, Duration::from_secs(60), |c| {
        !e2e::synchronous_standbys(c, &replica).is_empty()
    });
    c.crash_unit(&replica).unwrap();
    converge(&mut c, Duration::from_secs(180), |c| {
        primary_unit(c).as_deref() == Some(first.as_str())
    });
    assert_eq!(client_credentials(&c, "direct", PG), Some(direct.clone()));
    let served = round_trip(&c, &direct, &direct.endpoints, "after-failover");
    assert_eq!(served, e2e::address(&c, &first));
    let rows = e2e::psql(
        &e2e::address(&c, &first),
        5432,
        &direct.user,
        &direct.password,
        &direct.database,
        "SELECT string_agg(v, ',' ORDER BY v) FROM rows",
    )
    .unwrap();
    assert_eq!(rows.trim(), "after-failover,after-switchover,primary");
}
