//! Pebble, the workload container's service manager: its types, the [`Pebble`]
//! trait a charm talks to, and [`PebbleClient`], which speaks Pebble's HTTP API over
//! its unix socket.

#![warn(missing_docs)]

mod client;
mod http;
pub mod multipart;
pub mod timefmt;
pub mod timer;
pub mod websocket;

pub use client::PebbleClient;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where Juju mounts each container's Pebble socket.
pub const DEFAULT_CONTAINERS_DIR: &str = "/charm/containers";

/// Overrides [`DEFAULT_CONTAINERS_DIR`] (the local model points it at its own sockets).
pub const CONTAINERS_DIR_VAR: &str = "CHARM_CONTAINERS_DIR";

/// The socket of `container`'s Pebble: `<dir>/<container>/pebble.socket`.
pub fn socket_path(container: &str) -> PathBuf {
    let dir = std::env::var_os(CONTAINERS_DIR_VAR)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTAINERS_DIR));
    dir.join(container).join("pebble.socket")
}

/// What went wrong talking to Pebble.
#[derive(Debug, thiserror::Error)]
pub enum PebbleError {
    /// The socket could not be reached (the container is not up yet).
    #[error("cannot connect to Pebble at {path}: {source}")]
    Connect {
        /// The socket's path.
        path: String,
        /// Why it could not be reached.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke or timed out mid-request.
    #[error("Pebble connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// Pebble answered with an error.
    #[error("Pebble API error {status_code} ({kind}): {message}")]
    Api {
        /// The HTTP status code.
        status_code: u16,
        /// Pebble's error kind (may be empty).
        kind: String,
        /// Pebble's message.
        message: String,
    },
    /// A change (start, stop, restart, replan) finished with an error.
    #[error("Pebble change {change} failed: {err}")]
    Change {
        /// The change's id.
        change: String,
        /// Its error.
        err: String,
    },
    /// A change did not finish in time.
    #[error("timed out waiting for Pebble change {0}")]
    Timeout(String),
    /// Pebble's answer could not be read.
    #[error("unexpected answer from Pebble: {0}")]
    Protocol(String),
    /// A file or path operation failed for one path.
    #[error("{path}: {message}")]
    Path {
        /// The path.
        path: String,
        /// What went wrong with it.
        message: String,
    },
}

/// A result of talking to Pebble.
pub type PebbleResult<T> = Result<T, PebbleError>;

/// A Pebble layer: services and checks, merged into the plan by label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// What the layer is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// A longer description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Services by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Service>,
    /// Health checks by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// Where services' output is forwarded, by target name.
    #[serde(
        default,
        rename = "log-targets",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub log_targets: BTreeMap<String, LogTarget>,
}

/// A service definition in a layer (field names as Pebble spells them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Service {
    /// `merge` or `replace`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r#override: String,
    /// A short description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// The command line, with optional `[ default arguments ]`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// `enabled` or `disabled`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub startup: String,
    /// Services this one starts after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Services this one starts before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Services that must run for this one to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The user the service runs as.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The group the service runs as.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The working directory.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `restart`, `shutdown` or `ignore`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub on_success: String,
    /// What to do when it exits non-zero: `restart`, `shutdown` or `ignore`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub on_failure: String,
    /// The first restart delay (a Go duration).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backoff_delay: String,
    /// How much each restart delay grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_factor: Option<f64>,
    /// The longest restart delay (a Go duration).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backoff_limit: String,
    /// How long after SIGTERM Pebble sends SIGKILL (a Go duration).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kill_delay: String,
}

/// A health check definition in a layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Check {
    /// `merge` or `replace`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r#override: String,
    /// `alive` or `ready`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub level: String,
    /// How often the check runs (a Go duration).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub period: String,
    /// How long one run may take (a Go duration).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timeout: String,
    /// Failures in a row before the check is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// A TCP connection check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// An HTTP GET check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// A command check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
}

/// A TCP check target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpCheck {
    /// The port to connect to.
    pub port: u16,
    /// The host (`localhost` when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// An HTTP check target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpCheck {
    /// The URL to GET; a 2xx answer is success.
    pub url: String,
}

/// A command check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecCheck {
    /// The command line; exit 0 is success.
    pub command: String,
}

/// A log target in a layer: where Pebble pushes the output of the services it
/// names (`all`, a service, or either with `-` to leave it out; the last word
/// about a service wins).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTarget {
    /// `merge` or `replace`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r#override: String,
    /// The receiver's kind: `loki`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The receiver's URL (for Loki, its push API).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// The services whose output goes there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Labels sent with every line (Pebble adds `pebble_service`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl LogTarget {
    /// Overlays `upper` as Pebble's `override: merge` does: its type and
    /// location when given, its services appended, its labels added.
    pub fn merge(&mut self, upper: &LogTarget) {
        for (field, value) in [
            (&mut self.r#override, &upper.r#override),
            (&mut self.kind, &upper.kind),
            (&mut self.location, &upper.location),
        ] {
            if !value.is_empty() {
                field.clone_from(value);
            }
        }
        self.services.extend(upper.services.iter().cloned());
        self.labels.extend(upper.labels.clone());
    }

    /// Whether the output of `service` goes to this target.
    pub fn forwards(&self, service: &str) -> bool {
        let mut on = false;
        for word in &self.services {
            match word.strip_prefix('-') {
                Some(name) if name == "all" || name == service => on = false,
                None if word == "all" || word == service => on = true,
                _ => {}
            }
        }
        on
    }
}

/// Merges a layer's log targets (`upper`) into `targets`, each by its
/// `override`.
pub fn merge_log_targets(
    targets: &mut BTreeMap<String, LogTarget>,
    upper: &BTreeMap<String, LogTarget>,
) {
    for (name, target) in upper {
        match targets.get_mut(name) {
            Some(existing) if target.r#override == "merge" => existing.merge(target),
            _ => {
                targets.insert(name.clone(), target.clone());
            }
        }
    }
}

/// The combined plan of all layers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Services by name, merged from every layer.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Health checks by name, merged from every layer.
    #[serde(default)]
    pub checks: BTreeMap<String, Check>,
    /// Log targets by name, merged from every layer.
    #[serde(
        default,
        rename = "log-targets",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub log_targets: BTreeMap<String, LogTarget>,
}

/// A service's state as `GET /v1/services` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// `enabled` or `disabled`.
    pub startup: String,
    /// `active`, `inactive`, `backoff` or `error`.
    pub current: String,
}

impl ServiceInfo {
    /// Whether the service is running.
    pub fn is_running(&self) -> bool {
        self.current == "active"
    }
}

/// A check's state as `GET /v1/checks` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// `alive`, `ready` or empty.
    #[serde(default)]
    pub level: String,
    /// `up` or `down`.
    pub status: String,
    /// Failures in a row so far.
    #[serde(default)]
    pub failures: u32,
    /// Failures in a row before it is down.
    #[serde(default)]
    pub threshold: u32,
}

/// Pebble's own description (`GET /v1/system-info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Pebble's version.
    pub version: String,
}

/// A notice as `GET /v1/notices` reports it: one per type and key, counting its
/// occurrences. Times are RFC 3339 in UTC, as Pebble writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Notice {
    /// The notice's id.
    pub id: String,
    /// The user the notice belongs to; `None` for a public notice.
    #[serde(default)]
    pub user_id: Option<u32>,
    /// `custom`, `change-update` or `warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The notice's key (for a custom notice, `domain.com/path`).
    pub key: String,
    /// When it first occurred.
    pub first_occurred: String,
    /// When it last occurred.
    pub last_occurred: String,
    /// When it last repeated (first occurred, or occurred again after `repeat-after`).
    pub last_repeated: String,
    /// How many times it occurred.
    pub occurrences: u64,
    /// The data of the last occurrence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_data: BTreeMap<String, String>,
    /// A Go duration such as `1h0m0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_after: Option<String>,
    /// How long after its last occurrence it expires (a Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<String>,
}

/// Which notices to list; empty lists match every type and key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeQuery {
    /// Only these types.
    pub types: Vec<String>,
    /// Only these keys.
    pub keys: Vec<String>,
    /// Only notices last repeated after this RFC 3339 time.
    pub after: Option<String>,
}

/// A custom notice to record (`pebble notify`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// `domain.com/path`.
    pub key: String,
    /// The occurrence's data.
    pub data: BTreeMap<String, String>,
    /// A Go duration such as `1h`: a reoccurrence within it does not repeat the notice.
    pub repeat_after: Option<String>,
}

/// A command to run in the container (Pebble's exec): no terminal, its
/// output and errors apart. `Debug` shows the environment's names, not its
/// values (they may be secrets).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Exec {
    /// The program (looked up on the container's `PATH`) and its arguments.
    pub command: Vec<String>,
    /// The environment, beyond what Pebble sets.
    pub environment: BTreeMap<String, String>,
    /// The working directory; Pebble's default (the user's home) when `None`.
    pub working_dir: Option<String>,
    /// The user to run as.
    pub user: Option<String>,
    /// The group to run as.
    pub group: Option<String>,
    /// Killed after this long; Pebble's default (none) when `None`.
    pub timeout: Option<std::time::Duration>,
    /// What the command reads on its standard input.
    pub stdin: Vec<u8>,
}

impl Exec {
    /// `command` with no other setting.
    pub fn new<S: AsRef<str>>(command: &[S]) -> Exec {
        Exec {
            command: command.iter().map(|c| c.as_ref().to_string()).collect(),
            ..Exec::default()
        }
    }
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("command", &self.command)
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("working_dir", &self.working_dir)
            .field("user", &self.user)
            .field("group", &self.group)
            .field("timeout", &self.timeout)
            .field("stdin", &self.stdin.len())
            .finish()
    }
}

/// What a command run by [`Pebble::exec`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (-1 when it was killed by a signal or its timeout).
    pub exit_code: i32,
    /// What it wrote on its standard output.
    pub stdout: Vec<u8>,
    /// What it wrote on its standard error.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Its standard output as text (lossily decoded).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Its standard error as text (lossily decoded).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Ownership and mode for pushed files and made directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// Octal mode such as `0o600`; Pebble's default when `None`.
    pub permissions: Option<u32>,
    /// The owner's user name.
    pub user: Option<String>,
    /// The owner's group name.
    pub group: Option<String>,
    /// Create missing parent directories.
    pub make_parents: bool,
}

/// An entry from a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The entry's full path.
    pub path: String,
    /// The entry's name in its directory.
    pub name: String,
    /// `file`, `directory`, `symlink`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The size in bytes, for a file.
    #[serde(default)]
    pub size: Option<u64>,
    /// Octal string such as `600`.
    pub permissions: String,
    /// The owner's user name.
    #[serde(default)]
    pub user: Option<String>,
    /// The owner's group name.
    #[serde(default)]
    pub group: Option<String>,
}

/// A container's Pebble, as a charm uses it.
pub trait Pebble {
    /// Pebble's version.
    fn system_info(&mut self) -> PebbleResult<SystemInfo>;
    /// Whether Pebble answers (its API can be used now).
    fn can_connect(&mut self) -> bool {
        self.system_info().is_ok()
    }
    /// Adds (or with `combine`, merges into) the layer with this label.
    fn add_layer(&mut self, label: &str, layer: &Layer, combine: bool) -> PebbleResult<()>;
    /// The combined plan.
    fn plan(&mut self) -> PebbleResult<Plan>;
    /// The state of the named services (all when `names` is empty).
    fn services(&mut self, names: &[&str]) -> PebbleResult<Vec<ServiceInfo>>;
    /// Starts the services and waits for the change to finish.
    fn start(&mut self, names: &[&str]) -> PebbleResult<()>;
    /// Stops the services and waits for the change to finish.
    fn stop(&mut self, names: &[&str]) -> PebbleResult<()>;
    /// Restarts the services and waits for the change to finish.
    fn restart(&mut self, names: &[&str]) -> PebbleResult<()>;
    /// Starts or restarts whatever the plan changed, and waits.
    fn replan(&mut self) -> PebbleResult<()>;
    /// Writes a file.
    fn push(&mut self, path: &str, content: &[u8], options: &FileOptions) -> PebbleResult<()>;
    /// Reads a file.
    fn pull(&mut self, path: &str) -> PebbleResult<Vec<u8>>;
    /// A file's text (lossily decoded), or `None` when it does not exist.
    fn read_text(&mut self, path: &str) -> PebbleResult<Option<String>> {
        match self.pull(path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(PebbleError::Path { .. })
            | Err(PebbleError::Api {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
    /// Lists a directory (or, with `pattern`, the matching entries).
    fn list_files(&mut self, path: &str, pattern: Option<&str>) -> PebbleResult<Vec<FileInfo>>;
    /// Makes a directory.
    fn make_dir(&mut self, path: &str, options: &FileOptions) -> PebbleResult<()>;
    /// Removes a path.
    fn remove_path(&mut self, path: &str, recursive: bool) -> PebbleResult<()>;
    /// Sends a signal such as `SIGHUP` to the services' processes.
    fn send_signal(&mut self, signal: &str, services: &[&str]) -> PebbleResult<()>;
    /// The state of the named checks (all when `names` is empty), optionally only one level.
    fn checks(&mut self, level: Option<&str>, names: &[&str]) -> PebbleResult<Vec<CheckInfo>>;
    /// The notices matching `query`, oldest last repeat first.
    fn notices(&mut self, query: &NoticeQuery) -> PebbleResult<Vec<Notice>>;
    /// One notice by id.
    fn notice(&mut self, id: &str) -> PebbleResult<Notice>;
    /// Records an occurrence of a custom notice; returns the notice's id.
    fn notify(&mut self, notify: &Notify) -> PebbleResult<String>;
    /// Runs a command in the container and waits for it. A command that
    /// runs and fails is an [`ExecOutput`] with its exit code, not an error;
    /// one that cannot start (no such program) is an error.
    fn exec(&mut self, exec: &Exec) -> PebbleResult<ExecOutput>;
}

/// Makes service `name` run as `layer` says: the layer is added (under the
/// service's name) when the plan's service or check of that name differs,
/// and the service is started, or restarted when the layer changed or
/// `changed` says something it reads at start changed. Returns whether it
/// (re)started.
pub fn ensure_service(
    pebble: &mut dyn Pebble,
    name: &str,
    layer: &Layer,
    mut changed: bool,
) -> PebbleResult<bool> {
    let plan = pebble.plan()?;
    if plan.services.get(name) != layer.services.get(name)
        || plan.checks.get(name) != layer.checks.get(name)
    {
        pebble.add_layer(name, layer, true)?;
        changed = true;
    }
    let running = pebble.services(&[name])?.iter().any(|s| s.is_running());
    match (running, changed) {
        (true, false) => Ok(false),
        (true, true) => pebble.restart(&[name]).map(|()| true),
        (false, _) => pebble.start(&[name]).map(|()| true),
    }
}

/// Hands out each container's Pebble.
pub trait Workloads {
    /// The Pebble of the named container.
    fn pebble(&mut self, container: &str) -> &mut dyn Pebble;
}

/// The real containers: a [`PebbleClient`] per container socket.
#[derive(Default)]
pub struct PebbleSockets {
    clients: BTreeMap<String, PebbleClient>,
}

impl Workloads for PebbleSockets {
    fn pebble(&mut self, container: &str) -> &mut dyn Pebble {
        self.clients
            .entry(container.to_string())
            .or_insert_with(|| PebbleClient::new(socket_path(container)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(services: &[&str]) -> LogTarget {
        LogTarget {
            r#override: "replace".into(),
            kind: "loki".into(),
            location: "http://loki:3100/loki/api/v1/push".into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn the_last_word_about_a_service_wins() {
        assert!(target(&["all"]).forwards("a"));
        assert!(!target(&["all", "-a"]).forwards("a"));
        assert!(target(&["all", "-a"]).forwards("b"));
        assert!(!target(&["-all"]).forwards("a"));
        assert!(target(&["-all", "a"]).forwards("a"));
        assert!(!target(&["a", "-all"]).forwards("a"));
        assert!(!target(&["b"]).forwards("a"));
        assert!(!target(&[]).forwards("a"));
    }

    #[test]
    fn merge_overlays_and_replace_swaps() {
        let mut base = target(&["a"]);
        base.labels.insert("x".into(), "1".into());
        let mut targets = BTreeMap::from([("t".to_string(), base)]);
        let mut upper = LogTarget {
            r#override: "merge".into(),
            location: "http://other/push".into(),
            services: vec!["-a".into(), "b".into()],
            ..LogTarget::default()
        };
        upper.labels.insert("y".into(), "2".into());
        merge_log_targets(&mut targets, &BTreeMap::from([("t".to_string(), upper)]));
        let t = &targets["t"];
        assert_eq!(t.kind, "loki");
        assert_eq!(t.location, "http://other/push");
        assert_eq!(t.services, ["a", "-a", "b"]);
        assert_eq!(t.labels.len(), 2);
        assert!(!t.forwards("a") && t.forwards("b"));
        merge_log_targets(
            &mut targets,
            &BTreeMap::from([("t".to_string(), target(&["-all"]))]),
        );
        assert_eq!(targets["t"].services, ["-all"]);
        assert!(targets["t"].labels.is_empty());
    }

    #[test]
    fn log_targets_are_spelt_as_pebble_spells_them() {
        let layer: Layer = serde_json::from_str(
            r#"{"log-targets": {"loki/0": {"override": "replace", "type": "loki",
                "location": "http://l/push", "services": ["all"], "labels": {"a": "b"}}}}"#,
        )
        .unwrap_or_default();
        let t = &layer.log_targets["loki/0"];
        assert_eq!((t.kind.as_str(), t.services.len()), ("loki", 1));
        let back = serde_json::to_value(&layer).unwrap_or_default();
        assert_eq!(back["log-targets"]["loki/0"]["type"], "loki");
    }
}
