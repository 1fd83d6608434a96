//! A Pebble-compatible API server for one container: layers and the plan, services
//! as real processes (optionally chrooted into the container's root), files under
//! that root, signals and health checks, over HTTP/1.1 on a unix socket.
//!
//! ```no_run
//! use pebble_server::{PebbleServer, ServerConfig};
//! let server = PebbleServer::start(ServerConfig {
//!     socket: "/tmp/unit-0/pebble.socket".into(),
//!     root: "/tmp/unit-0/root".into(),
//!     sandbox: false,
//! })?;
//! // ... charms talk to it with charm::pebble::PebbleClient ...
//! server.stop();
//! # Ok::<(), pebble_server::ServerError>(())
//! ```

mod api;
mod checks;
mod files;
mod http;
mod image;
mod plan;
mod sandbox;
mod services;
mod timefmt;

pub use api::VERSION;

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connection may sit idle before it is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the server listens and what it manages.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The unix socket to listen on (parent directories are created).
    pub socket: PathBuf,
    /// The container's filesystem: container path `/x` is `<root>/x`.
    pub root: PathBuf,
    /// Give the container an image (the host's system directories, each through
    /// an overlay of its own under `root`) and run services in their own mount
    /// namespace, chrooted into `root` (needs root).
    pub sandbox: bool,
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

/// A running Pebble server; stopping it (or dropping it) stops every service and
/// removes the socket.
pub struct PebbleServer {
    socket: PathBuf,
    root: PathBuf,
    api: Arc<api::Api>,
    stopping: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
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
            Some(
                image::Image::mount(&root).map_err(|source| ServerError::Create {
                    path: root.display().to_string(),
                    source,
                })?,
            )
        } else {
            None
        };
        let sandbox = sandbox::Sandbox {
            root: root.clone(),
            enabled: config.sandbox,
        };
        let api = Arc::new(api::Api {
            services: services::Services::new(sandbox.clone()),
            checks: checks::Checks::new(sandbox),
            files: files::Files::new(root.clone()),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let accept = {
            let api = Arc::clone(&api);
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || accept_loop(listener, api, stopping))
        };
        Ok(Self {
            socket: config.socket,
            root,
            api,
            stopping,
            accept: Some(accept),
            image,
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
            .join("var/log/pebble")
            .join(format!("{service}.log"))
    }

    /// Stops serving, stops every service (SIGTERM, then SIGKILL after its kill
    /// delay) and removes the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        self.api.checks.shutdown();
        self.api.services.shutdown();
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

/// Serves one connection: one request, one response.
fn serve(stream: UnixStream, api: &api::Api) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let response = match http::read_request(&stream) {
        Ok(Some(request)) => api.handle(&request),
        Ok(None) => return,
        Err(message) => http::Response {
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
    let _ = http::write_response(&stream, &response);
}
