//! A Kubernetes model: the part of the Kubernetes API the charms call,
//! served over HTTPS on the model's node address, and the Services routed
//! to the pods they select, so that a charm's Kubernetes code runs as it
//! would in a cluster and clients connect through Service addresses.
//!
//! | module | concept |
//! |---|---|
//! | `objects.rs` | The objects in the API's shapes: pods and StatefulSets from the model, Services, pod labels and partitions the charms make; each request answered, with its RBAC refusal, 404, 409 or 422. |
//! | `routes.rs` | kube-proxy: a listener at each Service address, each connection to a selected pod. |
//! | `tls.rs` | The API server's CA and certificate. |
//!
//! Each application has a service account: a token, the CA and the
//! namespace in `serviceaccount/` under each unit's directory, named to its
//! hooks by `CHARM_SERVICE_ACCOUNT_DIR`. Without trust (`juju trust`, or
//! `deploy --trust`) the API refuses it everything (403), as Juju's default
//! role leaves a charm nothing it needs.

pub mod objects;
mod routes;
mod tls;

use http_exchange::server::{read_request, write_response, Response};
use k8s_incluster::config;
use objects::{Call, Cluster, Objects};
use openssl::ssl::{SslAcceptor, SslMethod};
use routes::Router;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file the charms' objects are kept in, under the controller's root.
const OBJECTS_FILE: &str = "kubernetes.json";

/// The service account directory's name under each unit's directory.
const ACCOUNT_DIR: &str = "serviceaccount";

/// The hosts file with the Services' cluster names, under the controller's
/// root.
pub const HOSTS_FILE: &str = "kubernetes-hosts";

/// What the API server, the routes and the controller share.
pub struct Shared {
    pub cluster: Cluster,
    pub objects: Objects,
    file: PathBuf,
}

impl Shared {
    /// Saves the objects, and the hosts file with the Services' names.
    fn save(&self) -> io::Result<()> {
        let text = serde_json::to_vec(&self.objects).map_err(io::Error::other)?;
        replace(&self.file, &text)?;
        replace(
            &self.file.with_file_name(HOSTS_FILE),
            self.hosts().as_bytes(),
        )
    }

    /// What cluster DNS would answer, as a hosts file: the machine's own
    /// entries, then each Service's cluster IP with its names
    /// (`<service>.<namespace>.svc.cluster.local`, `.svc`, `.<namespace>`).
    pub fn hosts(&self) -> String {
        let mut text = std::fs::read_to_string("/etc/hosts")
            .unwrap_or_else(|_| "127.0.0.1\tlocalhost\n".into());
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# The model's Kubernetes Services\n");
        let ns = &self.cluster.namespace;
        for (name, service) in &self.objects.services {
            if let Some(ip) = service["spec"]["clusterIP"].as_str() {
                text.push_str(&format!(
                    "{ip}\t{name}.{ns}.svc.cluster.local {name}.{ns}.svc {name}.{ns}\n"
                ));
            }
        }
        text
    }
}

/// Writes `path` whole, by a rename (a process that bound the old file keeps
/// it).
fn replace(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, content)?;
    std::fs::rename(&partial, path)
}

/// A model's Kubernetes: its API server and Service routes, running until
/// dropped.
pub struct Kubernetes {
    shared: Arc<Mutex<Shared>>,
    router: Arc<Mutex<Router>>,
    port: u16,
    ca_pem: Vec<u8>,
    /// The service accounts written so far: unit directory to token.
    accounts: Mutex<BTreeMap<PathBuf, String>>,
}

impl Kubernetes {
    /// Starts the API server on the cluster's node address (a port of its
    /// own) with the objects kept under `root`, and routes their Services.
    pub fn start(root: &Path, cluster: Cluster) -> io::Result<Kubernetes> {
        let file = root.join(OBJECTS_FILE);
        let objects = match std::fs::read(&file) {
            Ok(text) => serde_json::from_slice(&text)
                .map_err(|e| io::Error::other(format!("cannot read {}: {e}", file.display())))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Objects::default(),
            Err(e) => return Err(e),
        };
        let node = cluster.node();
        let tls = tls::issue(&node).map_err(io::Error::other)?;
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .map_err(io::Error::other)?;
        acceptor
            .set_private_key(&tls.key)
            .map_err(io::Error::other)?;
        acceptor
            .set_certificate(&tls.cert)
            .map_err(io::Error::other)?;
        let acceptor = acceptor.build();
        let listener =
            TcpListener::bind(SocketAddr::new(node.parse().map_err(io::Error::other)?, 0))?;
        let port = listener.local_addr()?.port();
        let shared = Shared {
            cluster,
            objects,
            file,
        };
        shared.save()?;
        let shared = Arc::new(Mutex::new(shared));
        let router = Arc::new(Mutex::new(Router::default()));
        let kubernetes = Kubernetes {
            shared: shared.clone(),
            router: router.clone(),
            port,
            ca_pem: tls.ca_pem,
            accounts: Mutex::new(BTreeMap::new()),
        };
        kubernetes.reroute();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (acceptor, shared, router) = (acceptor.clone(), shared.clone(), router.clone());
                std::thread::spawn(move || {
                    if let Ok(mut stream) = acceptor.accept(tcp) {
                        let response = answer(&shared, &router, &mut stream);
                        let _ = write_response(&mut stream, &response);
                        let _ = stream.shutdown();
                    }
                });
            }
        });
        Ok(kubernetes)
    }

    /// Takes the model's pods, StatefulSets and trust as they are now, gives
    /// each new application a token and each unit directory (under `units`)
    /// its service account, and routes the Services to the pods as they are.
    pub fn sync(&self, cluster: Cluster, units: &Path) -> io::Result<()> {
        let mut shared = self.shared.lock().expect("the cluster");
        let mut changed = false;
        for app in cluster.sets.keys() {
            if !shared.objects.tokens.contains_key(app) {
                shared.objects.tokens.insert(app.clone(), new_token()?);
                changed = true;
            }
        }
        let mut accounts = self.accounts.lock().expect("the accounts");
        for (pod, view) in &cluster.pods {
            let dir = units.join(pod).join(ACCOUNT_DIR);
            let token = &shared.objects.tokens[&view.app];
            if accounts.get(&dir) != Some(token) && dir.parent().is_some_and(Path::exists) {
                write_account(&dir, token, &self.ca_pem, &cluster.namespace)?;
                accounts.insert(dir, token.clone());
            }
        }
        accounts.retain(|dir, _| dir.exists());
        let moved = shared.cluster != cluster;
        shared.cluster = cluster;
        if changed || moved {
            shared.save()?;
        }
        drop(shared);
        if moved || changed {
            self.reroute();
        }
        Ok(())
    }

    fn reroute(&self) {
        let routes = {
            let shared = self.shared.lock().expect("the cluster");
            shared.objects.routes(&shared.cluster)
        };
        self.router
            .lock()
            .expect("the routes")
            .reconcile(routes, &self.shared);
    }

    /// The environment a unit's hooks get (the unit's directory is `home`):
    /// where the API is and where its service account is.
    pub fn env(&self, home: &Path) -> Vec<(String, String)> {
        let node = self.shared.lock().expect("the cluster").cluster.node();
        vec![
            (config::SERVICE_HOST.to_string(), node),
            (config::SERVICE_PORT.to_string(), self.port.to_string()),
            (
                config::SERVICE_ACCOUNT_DIR_VAR.to_string(),
                home.join(ACCOUNT_DIR).display().to_string(),
            ),
        ]
    }

    /// The cluster IP of the Service a cluster DNS name names.
    pub fn resolve(&self, host: &str) -> Option<String> {
        let shared = self.shared.lock().expect("the cluster");
        shared.objects.resolve(&shared.cluster, host)
    }

    /// The hosts file with the Services' names (see [`HOSTS_FILE`]), as it
    /// is now.
    pub fn hosts(&self) -> String {
        self.shared.lock().expect("the cluster").hosts()
    }

    /// Each StatefulSet's rolling-update partition, as the charms set it.
    pub fn partitions(&self) -> BTreeMap<String, u32> {
        self.shared
            .lock()
            .expect("the cluster")
            .objects
            .partitions
            .clone()
    }

    /// The Services as the API serves them.
    pub fn services(&self) -> Vec<serde_json::Value> {
        let shared = self.shared.lock().expect("the cluster");
        shared.objects.services.values().cloned().collect()
    }
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        self.router.lock().expect("the routes").stop();
    }
}

/// One request read and answered; what changed is saved and rerouted.
fn answer(
    shared: &Arc<Mutex<Shared>>,
    router: &Arc<Mutex<Router>>,
    stream: &mut impl io::Read,
) -> Response {
    let request = match read_request(stream) {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => {
            return Response {
                status: 400,
                content_type: "application/json".into(),
                body: br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"BadRequest","code":400}"#.to_vec(),
            }
        }
    };
    let call = Call {
        method: &request.method,
        path: &request.path,
        authorization: request.header("authorization"),
        content_type: request.header("content-type"),
        body: &request.body,
    };
    let (answer, routes) = {
        let mut guard = shared.lock().expect("the cluster");
        let Shared {
            cluster, objects, ..
        } = &mut *guard;
        let (answer, changed) = objects.handle(cluster, &call);
        let routes = changed.then(|| objects.routes(cluster));
        if changed {
            if let Err(e) = guard.save() {
                eprintln!("cannot save the Kubernetes objects: {e}");
            }
        }
        (answer, routes)
    };
    if let Some(routes) = routes {
        router.lock().expect("the routes").reconcile(routes, shared);
    }
    Response {
        status: answer.code,
        content_type: "application/json".into(),
        body: answer.body.to_string().into_bytes(),
    }
}

/// A service account token: 32 random bytes, hex.
fn new_token() -> io::Result<String> {
    use io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a service account directory: `token` (0600), `ca.crt` and
/// `namespace`.
fn write_account(dir: &Path, token: &str, ca: &[u8], namespace: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    crate::store::private_dir(dir)?;
    let write = |name: &str, content: &[u8]| -> io::Result<()> {
        let partial = dir.join(format!(".{name}.partial"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        io::Write::write_all(&mut file, content)?;
        std::fs::rename(&partial, dir.join(name))
    };
    write("token", token.as_bytes())?;
    write("ca.crt", ca)?;
    write("namespace", namespace.as_bytes())
}
