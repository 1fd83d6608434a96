//! The client against a real HTTPS server on 127.0.0.1 that plays the API
//! server: it checks what arrives (method, path, headers, body) and answers as
//! Kubernetes does. The test makes its own CA and server certificate.

#![allow(clippy::unwrap_used)]

use k8s_incluster::{
    Client, Config, Error, Service, ServiceApi, ServicePort, ServiceSpec, ServiceType,
};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.sa-token-never-shown";
const NAMESPACE: &str = "prod";

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `key` named `name`, signed by `issuer` (self-signed
/// when `None`), a CA or a server certificate for 127.0.0.1.
fn certificate(name: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut subject = X509NameBuilder::new().unwrap();
    subject.append_entry_by_nid(Nid::COMMONNAME, name).unwrap();
    let subject = subject.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_serial()).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.set_issuer_name(&subject).unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.sign(key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).unwrap();
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    b.build()
}

fn rand_serial() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A request as the server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// The stand-in API server: its address, the CA that signed its certificate,
/// and the requests it received.
struct ApiServer {
    port: u16,
    ca_pem: Vec<u8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Serves one connection per answer `(status, body)`, in order.
    fn start(answers: Vec<(u16, Value)>) -> ApiServer {
        let ca_key = key();
        let ca = certificate("test cluster CA", &ca_key, None);
        let server_key = key();
        let server_cert = certificate("kube-apiserver", &server_key, Some((&ca, &ca_key)));
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor.set_private_key(&server_key).unwrap();
        acceptor.set_certificate(&server_cert).unwrap();
        let acceptor = acceptor.build();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let thread = std::thread::spawn(move || {
            for (status, body) in answers {
                let (tcp, _) = listener.accept().unwrap();
                let Ok(mut tls) = acceptor.accept(tcp) else {
                    continue; // the client refused our certificate
                };
                let Some(request) = read_request(&mut tls) else {
                    continue;
                };
                record.lock().unwrap().push(request);
                let body = body.to_string();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                tls.write_all(head.as_bytes()).unwrap();
                tls.write_all(body.as_bytes()).unwrap();
                let _ = tls.shutdown();
            }
        });
        ApiServer {
            port,
            ca_pem: ca.to_pem().unwrap(),
            seen,
            thread: Some(thread),
        }
    }

    /// The requests, once the server has answered them all.
    fn finish(mut self) -> Vec<Seen> {
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn read_request(stream: &mut impl Read) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = request.parse(&buf).ok()? {
            let headers: BTreeMap<String, String> = request
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers.get("content-length")?.parse().ok()?;
            let method = request.method?.to_string();
            let path = request.path?.to_string();
            let mut body = buf.split_off(len);
            while body.len() < length {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return Some(Seen {
                method,
                path,
                headers,
                body,
            });
        }
    }
}

/// A service account directory with the token and `ca_pem` (removed when the
/// directory is dropped); the config points at it and at `port` on 127.0.0.1.
fn config(port: u16, ca_pem: &[u8]) -> (Config, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca_pem).unwrap();
    std::fs::write(dir.path().join("namespace"), NAMESPACE).unwrap();
    let env = move |name: &str| match name {
        "KUBERNETES_SERVICE_HOST" => Some("127.0.0.1".to_string()),
        "KUBERNETES_SERVICE_PORT" => Some(port.to_string()),
        _ => None,
    };
    let mut config = Config::from_env(env, dir.path()).unwrap();
    config.timeout = Duration::from_secs(5);
    (config, dir)
}

fn pod_json(name: &str, labels: Value) -> Value {
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels}, "spec": {}, "status": {}})
}

fn stateful_set_json(partition: u32) -> Value {
    json!({
        "kind": "StatefulSet", "apiVersion": "apps/v1",
        "metadata": {"name": "pgbouncer-k8s", "namespace": NAMESPACE},
        "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}},
        "status": {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "pgbouncer-k8s-7d9", "updateRevision": "pgbouncer-k8s-5f4"}
    })
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code})
}

/// Every request carries the bearer token and asks for JSON.
fn assert_authenticated(seen: &Seen) {
    assert_eq!(seen.headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(seen.headers["accept"], "application/json");
    assert!(seen.headers["host"].starts_with("127.0.0.1:"));
}

fn assert_no_token(err: &Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains("sa-token-never-shown"), "{shown}");
}

#[test]
fn gets_a_pod() {
    let server = ApiServer::start(vec![(
        200,
        pod_json(
            "postgresql-k8s-1",
            json!({"app.kubernetes.io/name": "postgresql-k8s"}),
        ),
    )]);
    let (config, _account) = config(server.port, &server.ca_pem);
    let client = Client::new(config).unwrap();
    assert_eq!(client.namespace(), NAMESPACE);
    let pod = client.get_pod("postgresql-k8s-1").unwrap();
    assert_eq!(pod.name, "postgresql-k8s-1");
    assert_eq!(pod.labels["app.kubernetes.io/name"], "postgresql-k8s");
    let seen = server.finish();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].path,
        "/api/v1/namespaces/prod/pods/postgresql-k8s-1"
    );
    assert_authenticated(&seen[0]);
    assert!(seen[0].body.is_empty());
    assert!(!seen[0].headers.contains_key("content-type"));
}

#[test]
fn merges_labels_into_a_pod() {
    let server = ApiServer::start(vec![(
        200,
        pod_json(
            "postgresql-k8s-1",
            json!({"application": "patroni", "cluster-name": "patroni-postgresql-k8s", "role": "replica"}),
        ),
    )]);
    let (config, _account) = config(server.port, &server.ca_pem);
    let client = Client::new(config).unwrap();
    let labels = BTreeMap::from([
        ("application".to_string(), "patroni".to_string()),
        (
            "cluster-name".to_string(),
            "patroni-postgresql-k8s".to_string(),
        ),
    ]);
    let pod = client
        .patch_pod_labels("postgresql-k8s-1", &labels)
        .unwrap();
    assert_eq!(pod.labels["role"], "replica", "other labels stay");
    let seen = server.finish();
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(
        seen[0].path,
        "/api/v1/namespaces/prod/pods/postgresql-k8s-1"
    );
    assert_authenticated(&seen[0]);
    assert_eq!(
        seen[0].headers["content-type"],
        "application/merge-patch+json"
    );
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({"metadata": {"labels": {"application": "patroni", "cluster-name": "patroni-postgresql-k8s"}}})
    );
}

#[test]
fn reads_and_sets_a_statefulsets_partition() {
    let server = ApiServer::start(vec![
        (200, stateful_set_json(0)),
        (200, stateful_set_json(2)),
    ]);
    let (config, _account) = config(server.port, &server.ca_pem);
    let client = Client::new(config).unwrap();
    let set = client.get_stateful_set("pgbouncer-k8s").unwrap();
    assert_eq!((set.replicas, set.partition), (3, 0));
    assert_eq!(set.update_revision.as_deref(), Some("pgbouncer-k8s-5f4"));
    assert_eq!(
        client.set_partition("pgbouncer-k8s", 2).unwrap().partition,
        2
    );
    let seen = server.finish();
    let path = "/apis/apps/v1/namespaces/prod/statefulsets/pgbouncer-k8s";
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", path)
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("PATCH", path)
    );
    for s in &seen {
        assert_authenticated(s);
    }
    assert_eq!(
        seen[1].headers["content-type"],
        "application/merge-patch+json"
    );
    let body: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(
        body,
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}}}})
    );
}

#[test]
fn refusals_become_typed_errors_a_user_can_act_on() {
    let server = ApiServer::start(vec![
        (
            403,
            status_json(403, "Forbidden", "pods \"pg-1\" is forbidden: User \"system:serviceaccount:prod:pg\" cannot patch resource \"pods\""),
        ),
        (401, status_json(401, "Unauthorized", "Unauthorized")),
        (
            404,
            status_json(404, "NotFound", "statefulsets.apps \"gone\" not found"),
        ),
        (
            422,
            status_json(422, "Invalid", &format!("rejected token {TOKEN} for no reason")),
        ),
        (200, json!({"not": "a pod"})),
    ]);
    let (config, _account) = config(server.port, &server.ca_pem);
    let client = Client::new(config).unwrap();
    let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);

    let err = client.patch_pod_labels("pg-1", &labels).unwrap_err();
    assert!(
        matches!(err, Error::Forbidden { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "forbidden: the Kubernetes API refused to patch the labels of pod pg-1 in namespace prod (HTTP 403); deploy the application with --trust, or run `juju trust <application> --scope=cluster`"
    );
    assert_no_token(&err);

    let err = client.get_pod("pg-1").unwrap_err();
    assert!(
        matches!(err, Error::Forbidden { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--trust"));
    assert_no_token(&err);

    let err = client.get_stateful_set("gone").unwrap_err();
    match &err {
        Error::NotFound { message, .. } => {
            assert_eq!(message, "statefulsets.apps \"gone\" not found")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "cannot read StatefulSet gone in namespace prod: not found"
    );

    let err = client.set_partition("pgb", 1).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot set the rolling-update partition of StatefulSet pgb in namespace prod: invalid: rejected token <token> for no reason"
    );
    assert_no_token(&err);

    let err = client.get_pod("pg-1").unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert_no_token(&err);
    assert_eq!(server.finish().len(), 5);
}

#[test]
fn a_server_the_ca_did_not_sign_is_refused() {
    let server = ApiServer::start(vec![(200, pod_json("p", json!({})))]);
    let other_key = key();
    let other_ca = certificate("another CA", &other_key, None);
    let (config, _account) = config(server.port, &other_ca.to_pem().unwrap());
    let client = Client::new(config).unwrap();
    let err = client.get_pod("p").unwrap_err();
    match &err {
        Error::Connection { address, message } => {
            assert_eq!(address, &format!("127.0.0.1:{}", server.port));
            assert!(message.contains("certificate verify failed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_token(&err);
    assert!(server.finish().is_empty(), "no request went out");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(1));
        drop(socket);
    });
    let key = key();
    let ca = certificate("CA", &key, None);
    let (mut config, _account) = config(port, &ca.to_pem().unwrap());
    config.timeout = Duration::from_millis(300);
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    let err = client.get_stateful_set("pgb").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    match &err {
        Error::Connection { message, .. } => assert!(message.contains("timed out"), "{message}"),
        other => panic!("{other:?}"),
    }
    hold.join().unwrap();
}

#[test]
fn nothing_listening_is_a_connection_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = key();
    let ca = certificate("CA", &key, None);
    let (config, _account) = config(port, &ca.to_pem().unwrap());
    let client = Client::new(config).unwrap();
    let err = client.get_pod("p").unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!(
        "cannot reach the Kubernetes API at 127.0.0.1:{port}: "
    )));
}

#[test]
fn missing_or_bad_service_account_files_are_named() {
    let key = key();
    let ca = certificate("CA", &key, None);
    let (good, _account) = config(1, &ca.to_pem().unwrap());

    let mut no_token = good.clone();
    no_token.token_file = good.token_file.with_file_name("absent");
    let err = Client::new(no_token).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("absent"));

    let empty = good.token_file.with_file_name("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let err = Client::new(Config {
        token_file: empty,
        ..good.clone()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid in-cluster configuration: the service account token is empty"
    );

    let bad_ca = good.ca_file.with_file_name("bad-ca.crt");
    std::fs::write(&bad_ca, "not a certificate").unwrap();
    let err = Client::new(Config {
        ca_file: bad_ca,
        ..good.clone()
    })
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_no_token(&err);

    let client = Client::new(good).unwrap();
    assert!(!format!("{client:?}").contains(TOKEN));
}

fn service_json(kind: &str, node_port: Option<u16>, ingress: Value) -> Value {
    let mut port =
        json!({"name": "pgbouncer", "protocol": "TCP", "port": 6432, "targetPort": 6432});
    if let Some(n) = node_port {
        port["nodePort"] = json!(n);
    }
    json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "pgbouncer-k8s-service", "namespace": NAMESPACE, "uid": "5a0e", "resourceVersion": "4411",
            "creationTimestamp": "2026-12-06T06:00:00Z", "labels": {"app.kubernetes.io/name": "pgbouncer-k8s"}},
        "spec": {"ports": [port], "selector": {"app.kubernetes.io/name": "pgbouncer-k8s"},
            "clusterIP": "10.152.183.77", "clusterIPs": ["10.152.183.77"], "type": kind,
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": ingress}
    })
}

fn pgbouncer_spec(service_type: ServiceType) -> ServiceSpec {
    let name = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        "pgbouncer-k8s".to_string(),
    )]);
    ServiceSpec {
        service_type,
        ports: vec![ServicePort {
            name: "pgbouncer".into(),
            port: 6432,
            node_port: None,
        }],
        selector: name.clone(),
        labels: name,
        annotations: BTreeMap::new(),
    }
}

#[test]
fn creates_reads_patches_and_deletes_a_service() {
    let deleted = json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
        "details": {"name": "pgbouncer-k8s-service", "kind": "services", "uid": "5a0e"}});
    let server = ApiServer::start(vec![
        (201, service_json("ClusterIP", None, json!({}))),
        (200, service_json("NodePort", Some(31632), json!({}))),
        (
            200,
            service_json(
                "LoadBalancer",
                Some(31632),
                json!({"ingress": [{"ip": "192.0.2.50", "ipMode": "VIP"}]}),
            ),
        ),
        (200, deleted),
        (
            404,
            status_json(
                404,
                "NotFound",
                "services \"pgbouncer-k8s-service\" not found",
            ),
        ),
        (
            404,
            status_json(
                404,
                "NotFound",
                "services \"pgbouncer-k8s-service\" not found",
            ),
        ),
    ]);
    let (config, _account) = config(server.port, &server.ca_pem);
    let client = Client::new(config).unwrap();
    let name = "pgbouncer-k8s-service";

    let created = client
        .create_service(name, &pgbouncer_spec(ServiceType::ClusterIp))
        .unwrap();
    assert_eq!(created.spec.service_type, ServiceType::ClusterIp);
    assert_eq!(created.cluster_ip.as_deref(), Some("10.152.183.77"));

    let read = client.get_service(name).unwrap().unwrap();
    assert_eq!(read.spec.service_type, ServiceType::NodePort);
    assert_eq!(read.node_port(6432), Some(31632));

    let patched = client
        .patch_service(name, &pgbouncer_spec(ServiceType::LoadBalancer), &read)
        .unwrap();
    assert_eq!(patched.load_balancer_address(), Some("192.0.2.50"));

    assert!(client.delete_service(name).unwrap());
    assert!(!client.delete_service(name).unwrap(), "already gone");
    assert_eq!(client.get_service(name).unwrap(), None);

    let seen = server.finish();
    let path = format!("/api/v1/namespaces/prod/services/{name}");
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/api/v1/namespaces/prod/services"),
            ("GET", path.as_str()),
            ("PATCH", path.as_str()),
            ("DELETE", path.as_str()),
            ("DELETE", path.as_str()),
            ("GET", path.as_str()),
        ]
    );
    for s in &seen {
        assert_authenticated(s);
    }
    assert_eq!(seen[0].headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "pgbouncer-k8s"},
                "annotations": {"k8s-incluster/managed-annotations": ""}},
            "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "pgbouncer-k8s"},
                "ports": [{"name": "pgbouncer", "protocol": "TCP", "port": 6432, "targetPort": 6432}]}
        })
    );
    assert_eq!(
        seen[2].headers["content-type"],
        "application/merge-patch+json"
    );
    let body: Value = serde_json::from_slice(&seen[2].body).unwrap();
    assert_eq!(body["spec"]["type"], "LoadBalancer");
    assert_eq!(
        body["spec"]["ports"],
        json!([{"name": "pgbouncer", "protocol": "TCP", "port": 6432, "targetPort": 6432}]),
        "node ports are the server's to keep or choose"
    );
}

#[test]
fn service_refusals_keep_the_apis_status_message() {
    let server = ApiServer::start(vec![
        (
            403,
            status_json(403, "Forbidden", "services is forbidden: User \"system:serviceaccount:prod:pgbouncer-k8s\" cannot create resource \"services\" in API group \"\" in the namespace \"prod\""),
        ),
        (
            409,
            status_json(409, "AlreadyExists", "services \"pgbouncer-k8s-service\" already exists"),
        ),
        (
            422,
            status_json(422, "Invalid", "Service \"pgbouncer-k8s-service\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
        ),
        (
            500,
            status_json(500, "InternalError", "etcdserver: request timed out"),
        ),
    ]);
    let (config, _account) = config(server.port, &server.ca_pem);
    let client = Client::new(config).unwrap();
    let name = "pgbouncer-k8s-service";
    let spec = pgbouncer_spec(ServiceType::ClusterIp);

    let err = client.create_service(name, &spec).unwrap_err();
    match &err {
        Error::Forbidden {
            status, message, ..
        } => {
            assert_eq!(*status, 403);
            assert!(
                message.contains("cannot create resource \"services\""),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("juju trust"), "{err}");

    let err = client.create_service(name, &spec).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot create Service pgbouncer-k8s-service in namespace prod: conflict: services \"pgbouncer-k8s-service\" already exists"
    );

    let current = Service::from_json(
        service_json("NodePort", Some(30001), json!({}))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let err = client.patch_service(name, &spec, &current).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string().ends_with("invalid: Service \"pgbouncer-k8s-service\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
        "{err}"
    );

    let err = client.get_service(name).unwrap_err();
    assert!(matches!(err, Error::Api { status: 500, .. }), "{err:?}");
    assert!(err.to_string().contains("etcdserver: request timed out"));
    assert_eq!(server.finish().len(), 4);
}
