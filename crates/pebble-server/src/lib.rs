//! A Pebble-compatible API server for one container: layers and the plan, services
//! as real processes (optionally chrooted into the container's root), files under
//! that root, signals, health checks and notices, over HTTP/1.1 on a unix socket.
//! The same API is served inside the root too ([`CONTAINER_SOCKETS`]), so the
//! container's processes can record notices (`pebble notify`, or
//! `curl --unix-socket "$PEBBLE_SOCKET" -d '{"action":"add","type":"custom","key":"example.com/x"}' http://localhost/v1/notices`).
//! Whatever the umask, the root and the directories of those sockets are 0755,
//! and each overlay of the image shows its host directory's mode, so every user
//! in the container gets in.
//!
//! ```no_run
//! use pebble_server::{PebbleServer, ServerConfig};
//! let server = PebbleServer::start(ServerConfig {
//!     socket: "/tmp/unit-0/pebble.socket".into(),
//!     root: "/tmp/unit-0/root".into(),
//!     sandbox: false,
//!     image: None,
//!     pebble_cli: None,
//! })?;
//! // ... charms talk to it with pebble_api::PebbleClient ...
//! server.stop();
//! # Ok::<(), pebble_server::ServerError>(())
//! ```

mod api;
mod checks;
mod exec;
mod files;
mod image;
mod logs;
mod notices;
mod plan;
mod sandbox;
mod services;
pub use pebble_api::timefmt;

pub use api::VERSION;

use http_exchange::server;
use pebble_api::Notice;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connection may sit idle before it is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the container's own processes reach the API, inside its root: where Juju
/// puts a workload container's socket (`PEBBLE_SOCKET`, set for every service),
/// and Pebble's default, where `pebble` looks without it.
pub const CONTAINER_SOCKETS: [&str; 2] = [
    "/charm/container/pebble.socket",
    "/var/lib/pebble/default/.pebble.socket",
];

/// Where the server listens and what it manages.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The unix socket to listen on (parent directories are created).
    pub socket: PathBuf,
    /// The container's filesystem: container path `/x` is `<root>/x`.
    pub root: PathBuf,
    /// Give the container an image (the system directories of `image`, each
    /// through an overlay of its own under `root`) and run services in their
    /// own mount namespace, chrooted into `root` (needs root).
    pub sandbox: bool,
    /// The root filesystem the image's system directories come from; the
    /// host's (`/`) when `None`.
    pub image: Option<PathBuf>,
    /// Sandboxed, a program mounted read-only at `/charm/bin/pebble` in the
    /// container, as Juju mounts its Pebble there: what the workload runs for
    /// `pebble notify`.
    pub pebble_cli: Option<PathBuf>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("a server is already listening on {0}")]
    InUse(String),
}

/// Creates `dir` and its missing parents up to `root`, each 0755 whatever the
/// umask, so that every user in the container can pass through.
fn open_dirs(root: &Path, dir: &Path) -> io::Result<()> {
    if dir == root || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        open_dirs(root, parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A socket inside the container's root, reached through a descriptor of its
/// directory, so a root deeper than a socket address allows still works.
struct InnerSocket {
    dir: File,
    name: String,
}

impl InnerSocket {
    /// Binds the socket at container path `path` (world-writable, so that every
    /// user in the container can connect).
    fn bind(root: &Path, path: &str) -> io::Result<(InnerSocket, UnixListener)> {
        let host = root.join(path.trim_start_matches('/'));
        let (Some(parent), Some(name)) = (host.parent(), host.file_name()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, path));
        };
        open_dirs(root, parent)?;
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(parent)?;
        let socket = InnerSocket {
            dir,
            name: name.to_string_lossy().into_owned(),
        };
        let _ = std::fs::remove_file(socket.path());
        let listener = UnixListener::bind(socket.path())?;
        std::fs::set_permissions(socket.path(), std::fs::Permissions::from_mode(0o666))?;
        Ok((socket, listener))
    }

    /// A short path to the socket.
    fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/self/fd/{}/{}",
            self.dir.as_raw_fd(),
            self.name
        ))
    }
}

/// A running Pebble server; stopping it (or dropping it) stops every service and
/// removes the socket.
pub struct PebbleServer {
    socket: PathBuf,
    root: PathBuf,
    api: Arc<api::Api>,
    stopping: Arc<AtomicBool>,
    /// The sockets inside the root.
    inner: Vec<InnerSocket>,
    /// One accept loop per socket.
    accept: Vec<JoinHandle<()>>,
    /// The image's overlays, unmounted once the services are stopped.
    image: Option<image::Image>,
}

impl PebbleServer {
    /// Listens on the socket and starts serving.
    pub fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let create = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|source| ServerError::Create {
                path: path.display().to_string(),
                source,
            })
        };
        create(&config.root)?;
        // A container's `/` is 0755 as in any image, whatever the umask: its
        // services' users must get in.
        std::fs::set_permissions(&config.root, std::fs::Permissions::from_mode(0o755)).map_err(
            |source| ServerError::Create {
                path: config.root.display().to_string(),
                source,
            },
        )?;
        let root = config
            .root
            .canonicalize()
            .map_err(|source| ServerError::Create {
                path: config.root.display().to_string(),
                source,
            })?;
        if let Some(parent) = config.socket.parent() {
            create(parent)?;
        }
        if config.socket.exists() {
            if UnixStream::connect(&config.socket).is_ok() {
                return Err(ServerError::InUse(config.socket.display().to_string()));
            }
            let _ = std::fs::remove_file(&config.socket);
        }
        let listener =
            UnixListener::bind(&config.socket).map_err(|source| ServerError::Listen {
                path: config.socket.display().to_string(),
                source,
            })?;
        let image = if config.sandbox {
            let failed = |source| ServerError::Create {
                path: root.display().to_string(),
                source,
            };
            let base = config.image.as_deref().unwrap_or(Path::new("/"));
            let mut image = image::Image::mount(&root, base).map_err(failed)?;
            if let Some(cli) = &config.pebble_cli {
                image.mount_pebble_cli(&root, cli).map_err(failed)?;
            }
            Some(image)
        } else {
            None
        };
        let sandbox = sandbox::Sandbox {
            root: root.clone(),
            enabled: config.sandbox,
        };
        let mut listeners = vec![listener];
        let mut inner = Vec::new();
        for path in CONTAINER_SOCKETS {
            let (socket, listener) =
                InnerSocket::bind(&root, path).map_err(|source| ServerError::Listen {
                    path: root
                        .join(path.trim_start_matches('/'))
                        .display()
                        .to_string(),
                    source,
                })?;
            inner.push(socket);
            listeners.push(listener);
        }
        let services = services::Services::new(sandbox.clone());
        let api = Arc::new(api::Api {
            executions: exec::Executions::new(sandbox.clone(), Arc::clone(&services)),
            services,
            checks: checks::Checks::new(sandbox.clone()),
            files: files::Files::new(root.clone(), sandbox.accounts()),
            notices: notices::Notices::default(),
            logs: logs::Forwarder::start(root.join(services::LOG_DIR)),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let accept = listeners
            .into_iter()
            .map(|listener| {
                let api = Arc::clone(&api);
                let stopping = Arc::clone(&stopping);
                std::thread::spawn(move || accept_loop(listener, api, stopping))
            })
            .collect();
        Ok(Self {
            socket: config.socket,
            root,
            api,
            stopping,
            inner,
            accept,
            image,
        })
    }

    /// Every custom notice the container has recorded (expired ones aside),
    /// oldest last repeat first: what `GET /v1/notices?types=custom` answers,
    /// without a round trip.
    pub fn custom_notices(&self) -> Vec<Notice> {
        self.api.notices.list(&notices::Filter {
            types: vec![notices::CUSTOM.into()],
            ..notices::Filter::default()
        })
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The container's root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a service's output goes: `<root>/var/log/pebble/<service>.log`.
    pub fn log_path(&self, service: &str) -> PathBuf {
        self.root
            .join(services::LOG_DIR)
            .join(format!("{service}.log"))
    }

    /// Stops serving, stops every service (SIGTERM, then SIGKILL after its kill
    /// delay) and removes the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Kills every service with SIGKILL at once (a lost machine: nothing
    /// gets to clean up), then stops serving and removes the socket.
    pub fn crash(mut self) {
        self.api.services.crash();
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loops so they see the flag.
        let paths: Vec<PathBuf> = std::iter::once(self.socket.clone())
            .chain(self.inner.iter().map(InnerSocket::path))
            .collect();
        for path in &paths {
            let _ = UnixStream::connect(path);
        }
        for accept in self.accept.drain(..) {
            let _ = accept.join();
        }
        for path in &paths {
            let _ = std::fs::remove_file(path);
        }
        self.inner.clear();
        self.api.checks.shutdown();
        self.api.services.shutdown();
        self.api.logs.stop();
        self.image = None;
    }
}

impl Drop for PebbleServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: UnixListener, api: Arc<api::Api>, stopping: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            continue;
        };
        let api = Arc::clone(&api);
        std::thread::spawn(move || serve(stream, &api));
    }
}

/// The task and websocket a websocket handshake asks for
/// (`GET /v1/tasks/<task>/websocket/<name>`).
fn websocket_target(request: &server::Request) -> Option<(&str, &str)> {
    let rest = request.path.strip_prefix("/v1/tasks/")?;
    let (task, name) = rest.split_once("/websocket/")?;
    let upgrade = request
        .header("Upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    (request.method == "GET" && upgrade).then_some((task, name))
}

/// Serves one connection: one request, one response (or, for an exec's
/// websocket, the connection handed to the command).
fn serve(stream: UnixStream, api: &api::Api) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let response = match server::read_request(&stream) {
        Ok(Some(request)) => match websocket_target(&request) {
            Some((task, name)) => match stream.try_clone() {
                Ok(taken) => match api.executions.connect(task, name, taken, &request) {
                    Ok(()) => return,
                    Err((status, message)) => api::error_response(status, &message),
                },
                Err(e) => api::error_response(500, &e.to_string()),
            },
            None => api.handle(&request),
        },
        Ok(None) => return,
        Err(message) => server::Response {
            status: 400,
            content_type: "application/json".into(),
            body: serde_json::json!({
                "type": "error", "status-code": 400, "status": "Bad Request",
                "result": {"message": message},
            })
            .to_string()
            .into_bytes(),
        },
    };
    let _ = server::write_response(&stream, &response);
}
