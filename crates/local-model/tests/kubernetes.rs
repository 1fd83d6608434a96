//! The model's Kubernetes API as the charms reach it: the charms' own client
//! (`k8s_incluster`) over TLS with a unit's service account, against a
//! Kubernetes started on a claimed address slice; and a Service's routes
//! carrying a TCP connection to the pod it selects.

#![allow(clippy::unwrap_used)]

use k8s_incluster::service::ensure;
use k8s_incluster::{
    Client, Config, Error, InCluster, ServiceApi, ServicePort, ServiceSpec, ServiceType,
};
use local_model::kube::objects::{Cluster, PodView};
use local_model::kube::Kubernetes;
use local_model::network::Network;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

struct Fixture {
    kubernetes: Kubernetes,
    dir: tempfile::TempDir,
    octet: u8,
    _network: Network,
}

/// Application `app` (one pod, `app-0`, at `127.<octet>.1.1`) and `other`
/// (untrusted, `other-0`), with `app` trusted when `trusted`.
fn cluster(octet: u8, trusted: bool) -> Cluster {
    let mut cluster = Cluster {
        namespace: "test".into(),
        octet,
        ..Cluster::default()
    };
    for (app, address) in [("app", 1), ("other", 2)] {
        cluster.sets.insert(app.into(), 3);
        cluster.pods.insert(
            format!("{app}-0"),
            PodView {
                app: app.into(),
                ordinal: 0,
                address: format!("127.{octet}.1.{address}"),
                revision: 3,
            },
        );
    }
    if trusted {
        cluster.trusted.insert("app".into());
    }
    cluster
}

fn fixture() -> Fixture {
    let network = Network::claim(None).unwrap();
    let octet = network.octet();
    let dir = tempfile::tempdir().unwrap();
    for pod in ["app-0", "other-0"] {
        std::fs::create_dir_all(dir.path().join("units").join(pod)).unwrap();
    }
    let kubernetes = Kubernetes::start(dir.path(), cluster(octet, true)).unwrap();
    kubernetes
        .sync(cluster(octet, true), &dir.path().join("units"))
        .unwrap();
    Fixture {
        kubernetes,
        dir,
        octet,
        _network: network,
    }
}

impl Fixture {
    /// The API as pod `pod`'s hooks find it.
    fn api(&self, pod: &str) -> InCluster {
        let env: BTreeMap<String, String> = self
            .kubernetes
            .env(&self.dir.path().join("units").join(pod))
            .into_iter()
            .collect();
        let account = k8s_incluster::config::service_account_dir(|k| env.get(k).cloned());
        InCluster::for_substrate(|k| env.get(k).cloned(), &account).expect("on Kubernetes")
    }

    fn client(&self, pod: &str) -> Client {
        self.api(pod).client().unwrap()
    }
}

fn spec(service_type: ServiceType, port: u16) -> ServiceSpec {
    ServiceSpec {
        service_type,
        ports: vec![ServicePort {
            name: "tcp".into(),
            port,
            node_port: None,
        }],
        selector: BTreeMap::from([("app.kubernetes.io/name".into(), "app".into())]),
        labels: BTreeMap::new(),
        annotations: BTreeMap::from([("example.com/a".into(), "1".into())]),
    }
}

#[test]
fn a_service_account_reads_and_changes_what_its_charm_may() {
    let f = fixture();
    let account = f.dir.path().join("units/app-0/serviceaccount");
    assert_eq!(
        std::fs::read_to_string(account.join("namespace")).unwrap(),
        "test"
    );
    let mode =
        |p: &Path| std::os::unix::fs::PermissionsExt::mode(&p.metadata().unwrap().permissions());
    assert_eq!(mode(&account.join("token")) & 0o077, 0);
    let client = f.client("app-0");

    let pod = client.get_pod("app-0").unwrap();
    assert_eq!(pod.labels["app.kubernetes.io/name"], "app");
    assert_eq!(pod.host_ip, Some(format!("127.{}.0.1", f.octet)));
    let labels = BTreeMap::from([("role".to_string(), "primary".to_string())]);
    let pod = client.patch_pod_labels("app-0", &labels).unwrap();
    assert_eq!(pod.labels["role"], "primary");
    assert_eq!(
        pod.labels["app.kubernetes.io/name"], "app",
        "other labels stay"
    );
    let bad = BTreeMap::from([("role".to_string(), "-not a value-".to_string())]);
    assert!(matches!(
        client.patch_pod_labels("app-0", &bad),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        client.get_pod("app-9"),
        Err(Error::NotFound { message, .. }) if message == "pods \"app-9\" not found"
    ));

    let set = client.get_stateful_set("app").unwrap();
    assert_eq!((set.replicas, set.partition), (1, 0));
    assert_eq!(set.update_revision.as_deref(), Some("app-3"));
    assert_eq!(client.set_partition("app", 1).unwrap().partition, 1);
    assert_eq!(client.get_stateful_set("app").unwrap().partition, 1);

    // Services: made, kept, refused, patched from one type to another,
    // given a load balancer's address, deleted.
    let made = ensure(&client, "app-service", &spec(ServiceType::ClusterIp, 5000)).unwrap();
    assert!(matches!(made, k8s_incluster::service::Ensured::Created(_)));
    let ip = made.service().cluster_ip.clone().expect("a cluster IP");
    assert!(ip.starts_with(&format!("127.{}.0.", f.octet)), "{ip}");
    let again = ensure(&client, "app-service", &spec(ServiceType::ClusterIp, 5000)).unwrap();
    assert!(matches!(again, k8s_incluster::service::Ensured::Kept(_)));
    assert!(matches!(
        client.create_service("app-service", &spec(ServiceType::ClusterIp, 5000)),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        client.create_service("Not_A_Name", &spec(ServiceType::ClusterIp, 5003)),
        Err(Error::Invalid { message, .. }) if message.contains("DNS-1035")
    ));

    let node_port = ensure(&client, "app-service", &spec(ServiceType::NodePort, 5000)).unwrap();
    assert!(matches!(
        node_port,
        k8s_incluster::service::Ensured::Patched(_)
    ));
    assert!(node_port.service().node_port(5000).is_some());
    let back = ensure(&client, "app-service", &spec(ServiceType::ClusterIp, 5000)).unwrap();
    assert!(matches!(back, k8s_incluster::service::Ensured::Patched(_)));
    assert_eq!(back.service().node_port(5000), None);
    assert_eq!(
        back.service().cluster_ip.as_ref(),
        Some(&ip),
        "the cluster IP stays"
    );
    let balanced = ensure(
        &client,
        "app-service",
        &spec(ServiceType::LoadBalancer, 5000),
    )
    .unwrap();
    assert_eq!(balanced.service().load_balancer_address(), None);
    let found = client.get_service("app-service").unwrap().unwrap();
    assert_eq!(
        found.load_balancer_address(),
        Some(format!("127.{}.255.1", f.octet).as_str())
    );
    assert!(client.delete_service("app-service").unwrap());
    assert!(!client.delete_service("app-service").unwrap());
    assert_eq!(client.get_service("app-service").unwrap(), None);
}

#[test]
fn without_trust_or_a_token_the_api_refuses() {
    let f = fixture();
    let other = f.client("other-0");
    let refused = other.get_service("app-service").unwrap_err();
    let Error::Forbidden {
        status, message, ..
    } = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(*status, 403);
    assert!(
        message.contains("\"system:serviceaccount:test:other\" cannot get resource \"services\""),
        "{message}"
    );

    // Trust given: the same account may.
    let mut trusted = cluster(f.octet, true);
    trusted.trusted.insert("other".into());
    f.kubernetes
        .sync(trusted, &f.dir.path().join("units"))
        .unwrap();
    assert_eq!(other.get_service("app-service").unwrap(), None);

    // A token the API does not know.
    let account = f.dir.path().join("forged");
    std::fs::create_dir_all(&account).unwrap();
    std::fs::write(account.join("token"), "not-a-token").unwrap();
    std::fs::copy(
        f.dir.path().join("units/app-0/serviceaccount/ca.crt"),
        account.join("ca.crt"),
    )
    .unwrap();
    std::fs::write(account.join("namespace"), "test").unwrap();
    let env: BTreeMap<String, String> = f
        .kubernetes
        .env(&f.dir.path().join("units/app-0"))
        .into_iter()
        .collect();
    let config = Config::from_env(|k| env.get(k).cloned(), &account).unwrap();
    let forged = Client::new(config).unwrap();
    assert!(matches!(
        forged.get_pod("app-0"),
        Err(Error::Forbidden { status: 401, .. })
    ));
}

#[test]
fn a_service_address_reaches_the_pod_it_selects() {
    let f = fixture();
    // The pod `app-0` serves an echo on its address.
    let pod = TcpListener::bind(format!("127.{}.1.1:0", f.octet)).unwrap();
    let port = pod.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in pod.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 64];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let client = f.client("app-0");
    let service = ensure(&client, "echo", &spec(ServiceType::NodePort, port))
        .unwrap()
        .service()
        .clone();
    let node_port = service.node_port(port).unwrap();
    let ip = service.cluster_ip.clone().unwrap();
    for address in [
        format!("{ip}:{port}"),
        format!("127.{}.0.1:{node_port}", f.octet),
    ] {
        let mut conn = TcpStream::connect(&address).unwrap();
        conn.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello", "through {address}");
    }
    assert_eq!(
        f.kubernetes.resolve("echo.test.svc.cluster.local"),
        Some(ip.clone())
    );
    assert_eq!(f.kubernetes.resolve("echo"), Some(ip));
    assert_eq!(
        f.kubernetes.resolve("echo.elsewhere.svc.cluster.local"),
        None
    );

    // Deleted, the Service's address is no longer served.
    assert!(client.delete_service("echo").unwrap());
    let gone = TcpStream::connect(format!("{}:{port}", service.cluster_ip.unwrap()));
    assert!(gone.is_err(), "{gone:?}");
}
