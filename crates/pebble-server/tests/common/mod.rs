//! A server on a socket in a fresh temporary directory, and a client of it.

#![allow(dead_code, clippy::unwrap_used)]

use pebble_api::{Layer, Pebble, PebbleClient};
use pebble_server::{PebbleServer, ServerConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct Harness {
    /// Removed on drop, after the server has stopped.
    pub dir: TempDir,
    pub server: Option<PebbleServer>,
    pub client: PebbleClient,
}

impl Harness {
    pub fn new(sandbox: bool) -> Self {
        let dir = TempDir::with_prefix("pebble-server-test-").unwrap();
        let socket = dir.path().join("socket/pebble.socket");
        let server = PebbleServer::start(ServerConfig {
            socket: socket.clone(),
            root: dir.path().join("root"),
            sandbox,
            image: None,
            pebble_cli: None,
        })
        .unwrap();
        Self {
            dir,
            client: PebbleClient::new(socket),
            server: Some(server),
        }
    }

    pub fn server(&self) -> &PebbleServer {
        self.server.as_ref().unwrap()
    }

    /// The container's root on the host.
    pub fn root(&self) -> PathBuf {
        self.server().root().to_path_buf()
    }

    /// Where container path `path` is on the host.
    pub fn host(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// Adds a layer written in YAML.
    pub fn layer(&mut self, label: &str, yaml: &str, combine: bool) {
        let layer: Layer = yaml_serde::from_str(yaml).unwrap();
        self.client.add_layer(label, &layer, combine).unwrap();
    }

    pub fn current(&mut self, service: &str) -> String {
        self.client.services(&[service]).unwrap()[0].current.clone()
    }

    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.server().log_path(service)).unwrap_or_default()
    }

    pub fn crash_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.crash();
        }
    }

    pub fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// Polls `f` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids a service wrote, one a line, to `file`.
pub fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
