//! The PgBouncer container: its Pebble layer, its files and processes. Writing a
//! configuration touches only what changed, and reloads or restarts only the
//! processes that need it.
//!
//! A rolling restart ([`Workload::roll`]) restarts the processes one at a
//! time: each first drains (SIGTERM, which PgBouncer 1.23 and later take for
//! `SHUTDOWN WAIT_FOR_CLIENTS`: it stops listening, so the unit's other
//! processes, on the same port through `so_reuseport`, take the new
//! connections, and it exits once its last client left), then starts again.
//! Connections queued on the listener it closes move to the others where
//! the kernel allows ([`handover`](crate::handover)).

use crate::config::LogRotation;
use crate::handover::{enable_migration, Migration};
use crate::pgb::ini::{render_process, ProcessSpec};
use crate::pgb::pause::{pause_state, PauseState};
use crate::pgb::peering::Peering;
use crate::pgb::reload::{plan, ProcessAction};
use crate::pgb::{Layout, PgbVersion, SharedConfig};
use pebble_api::{Check, FileOptions, HttpCheck, Layer, Pebble, PebbleError, Service};
use tls_certificates::TlsFiles;

/// How long a rolling restart lets each process drain: clients that
/// connect anew (for each transaction, or as their pool renews connections)
/// leave within it; a connection held longer is cut.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The exporter's page at `address` (`host:port`), or `None` when it does
/// not answer within a second.
fn metrics_page(address: &str) -> Option<String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(1);
    let target = address.to_socket_addrs().ok()?.next()?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.to_string())
}

/// How long a pause for a switchover waits for the processes to close their
/// server connections (transactions in flight finish first).
pub const PAUSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The workload container's name.
pub const CONTAINER: &str = "pgbouncer";

/// Where the image may keep the PgBouncer binary, in the order of the `PATH`
/// that Pebble gives services, so the version found is that of the binary the
/// services run.
const BINARIES: &[&str] = &[
    "/usr/local/sbin/pgbouncer",
    "/usr/local/bin/pgbouncer",
    "/usr/sbin/pgbouncer",
    "/usr/bin/pgbouncer",
    "/sbin/pgbouncer",
    "/bin/pgbouncer",
];

/// The Pebble service (and its check) of the Prometheus exporter.
pub const EXPORTER_SERVICE: &str = "metrics_server";
/// The exporter's file name, in the charm directory and in the container.
pub const EXPORTER_BINARY: &str = "pgbouncer-exporter";

/// The Pebble service that rotates the processes' log files.
pub const LOGROTATE_SERVICE: &str = "logrotate";
/// `logrotate`'s configuration, at the reference charm's path.
pub const LOGROTATE_CONFIG: &str = "/etc/logrotate.d/pgbouncer";
/// How often the log files are checked.
pub const LOGROTATE_PERIOD_SECONDS: u32 = 15;

/// The Prometheus exporter of every process of the unit: what it runs and
/// logs in with. Its password goes in a file only its user reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exporter<'a> {
    /// The exporter binary in the charm, pushed into the container when its
    /// stamp (size and modification time) changes.
    pub binary: &'a std::path::Path,
    pub stamp: &'a str,
    /// `address:port` it serves `/metrics` on.
    pub listen: &'a str,
    /// PgBouncer's port (each process's unix socket is named after it).
    pub pgbouncer_port: u16,
    /// The console's stats user, and its password.
    pub user: &'a str,
    pub password: &'a str,
}

/// The Pebble service of process `index`.
pub fn service_name(index: u32) -> String {
    format!("pgbouncer_{index}")
}

/// How this unit runs PgBouncer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub layout: Layout,
    /// Processes on this unit.
    pub processes: u32,
    /// The OS user the processes and files belong to (`None`: Pebble's default).
    pub user: Option<String>,
    /// How long a rolling restart lets each process drain before Pebble
    /// restarts it all the same.
    pub drain: std::time::Duration,
    /// How long a pause for a switchover waits for the processes to close
    /// their server connections.
    pub pause_wait: std::time::Duration,
    /// The network namespace's IPv4 settings (`/proc/sys/net/ipv4`), where a
    /// rolling restart turns on the handover of queued connections.
    pub net_ipv4: std::path::PathBuf,
}

/// What a rolling restart did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roll {
    /// Whether connections queued on a draining process move to the others
    /// (`None`: one process, no other to take them).
    pub migration: Option<Migration>,
    /// Each process, in the order they restarted.
    pub processes: Vec<Rolled>,
}

/// How one process went through a rolling restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rolled {
    /// It drained (its last client left) and started again.
    Drained(String),
    /// It still had clients after the drain time (persistent connections):
    /// Pebble stopped it, cutting them, and started it again.
    Cut(String),
}

/// What every process file of this unit says beyond the shared configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serving<'a> {
    /// The PgBouncer version the unit runs.
    pub version: PgbVersion,
    /// Whether the unit's TLS key, CA and certificate are in place.
    pub tls: bool,
    /// The address the unit listens on.
    pub listen_addr: &'a str,
    /// The unit's number and the other units, for forwarding cancel requests.
    pub peering: &'a Peering,
}

/// What applying a configuration did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub restarted: Vec<String>,
    pub reloaded: Vec<String>,
    pub auth_file_changed: bool,
}

impl Workload {
    fn file_options(&self, mode: u32) -> FileOptions {
        FileOptions {
            permissions: Some(mode),
            user: self.user.clone(),
            group: self.user.clone(),
            make_parents: true,
        }
    }

    /// The layer with one service per process.
    pub fn layer(&self) -> Layer {
        let mut layer = Layer {
            summary: "pgbouncer layer".into(),
            description: "pebble config layer for pgbouncer".into(),
            ..Layer::default()
        };
        for i in 0..self.processes {
            layer.services.insert(
                service_name(i),
                Service {
                    r#override: "replace".into(),
                    summary: format!("pgbouncer service {i}"),
                    command: format!("pgbouncer {}", self.layout.ini_path(i)),
                    startup: "enabled".into(),
                    user: self.user.clone().unwrap_or_default(),
                    group: self.user.clone().unwrap_or_default(),
                    ..Service::default()
                },
            );
        }
        layer
    }

    fn exporter_dir(&self) -> String {
        format!("{}/exporter", self.layout.data_dir)
    }

    /// The exporter's layer: the service, over every process's socket, and
    /// an HTTP check on its port.
    pub fn exporter_layer(&self, exporter: &Exporter<'_>) -> Layer {
        let dir = self.exporter_dir();
        let mut command = format!(
            "{dir}/{EXPORTER_BINARY} --listen {} --port {} --user {} --password-file {dir}/password",
            exporter.listen, exporter.pgbouncer_port, exporter.user
        );
        for i in 0..self.processes {
            command.push_str(" --socket-dir ");
            command.push_str(&self.layout.process_dir(i));
        }
        let mut layer = Layer {
            summary: "pgbouncer exporter layer".into(),
            description: "the Prometheus exporter of every PgBouncer process".into(),
            ..Layer::default()
        };
        layer.services.insert(
            EXPORTER_SERVICE.into(),
            Service {
                r#override: "replace".into(),
                summary: "Prometheus exporter of PgBouncer".into(),
                command,
                startup: "enabled".into(),
                user: self.user.clone().unwrap_or_default(),
                group: self.user.clone().unwrap_or_default(),
                ..Service::default()
            },
        );
        layer.checks.insert(
            EXPORTER_SERVICE.into(),
            Check {
                r#override: "replace".into(),
                level: "alive".into(),
                http: Some(HttpCheck {
                    url: format!("http://{}/", exporter.listen),
                }),
                ..Check::default()
            },
        );
        layer
    }

    /// Pushes the exporter (when its digest changed) and its password file
    /// (mode 0400, when it changed), adds its layer when the plan differs,
    /// and starts it, or restarts it when its binary or layer changed.
    /// Returns whether it (re)started.
    pub fn apply_exporter(
        &self,
        pebble: &mut dyn Pebble,
        exporter: &Exporter<'_>,
    ) -> anyhow::Result<bool> {
        let dir = self.exporter_dir();
        pebble.make_dir(&dir, &self.file_options(0o700))?;
        let marker = format!("{dir}/{EXPORTER_BINARY}.stamp");
        let mut changed = false;
        if pebble.read_text(&marker)?.as_deref() != Some(exporter.stamp) {
            let binary = std::fs::read(exporter.binary)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", exporter.binary.display()))?;
            let path = format!("{dir}/{EXPORTER_BINARY}");
            pebble.push(&path, &binary, &self.file_options(0o500))?;
            pebble.push(
                &marker,
                exporter.stamp.as_bytes(),
                &self.file_options(0o400),
            )?;
            changed = true;
        }
        let password_file = format!("{dir}/password");
        if pebble.read_text(&password_file)?.as_deref() != Some(exporter.password) {
            pebble.push(
                &password_file,
                exporter.password.as_bytes(),
                &self.file_options(0o400),
            )?;
        }
        let layer = self.exporter_layer(exporter);
        Ok(pebble_api::ensure_service(
            pebble,
            EXPORTER_SERVICE,
            &layer,
            changed,
        )?)
    }

    /// `logrotate`'s configuration: each process's log file rotated daily or
    /// past `max_size_kb`, `keep` old files kept (uncompressed, suffixed
    /// with the date and time), and the process told to reopen its file
    /// (SIGHUP, by its pid file) once its file was renamed.
    pub fn logrotate_config(&self, rotation: &LogRotation) -> String {
        let mut text = String::from("# Written by the pgbouncer-k8s charm.\n");
        for i in 0..self.processes {
            text.push_str(&format!(
                "{log}/pgbouncer.log {{\n    daily\n    maxsize {size}k\n    rotate {keep}\n    missingok\n    notifempty\n    nocompress\n    nocreate\n    dateext\n    dateformat -%Y%m%d_%H%M%S\n    postrotate\n        kill -HUP \"$(cat {dir}/pgbouncer.pid)\" 2>/dev/null || true\n    endscript\n}}\n",
                log = self.layout.log_dir(i),
                dir = self.layout.process_dir(i),
                size = rotation.max_size_kb,
                keep = rotation.keep,
            ));
        }
        text
    }

    /// The rotation service: `logrotate` every
    /// [`LOGROTATE_PERIOD_SECONDS`], its state beside the processes' data.
    pub fn logrotate_layer(&self) -> Layer {
        let command = format!(
            "sh -c 'while :; do logrotate -s {}/logrotate.status {LOGROTATE_CONFIG}; sleep {LOGROTATE_PERIOD_SECONDS}; done'",
            self.layout.data_dir
        );
        let mut layer = Layer {
            summary: "pgbouncer log rotation".into(),
            description: "each PgBouncer process's log file rotated by size and age".into(),
            ..Layer::default()
        };
        layer.services.insert(
            LOGROTATE_SERVICE.into(),
            Service {
                r#override: "replace".into(),
                summary: "rotates the PgBouncer log files".into(),
                command,
                startup: "enabled".into(),
                ..Service::default()
            },
        );
        layer
    }

    /// Writes `logrotate`'s configuration when it changed (the next round
    /// reads it) and keeps the rotation service running. Returns whether the
    /// configuration changed.
    pub fn apply_log_rotation(
        &self,
        pebble: &mut dyn Pebble,
        rotation: &LogRotation,
    ) -> Result<bool, PebbleError> {
        let text = self.logrotate_config(rotation);
        let changed = pebble.read_text(LOGROTATE_CONFIG)?.as_deref() != Some(text.as_str());
        if changed {
            let options = FileOptions {
                permissions: Some(0o644),
                make_parents: true,
                ..FileOptions::default()
            };
            pebble.push(LOGROTATE_CONFIG, text.as_bytes(), &options)?;
        }
        pebble_api::ensure_service(pebble, LOGROTATE_SERVICE, &self.logrotate_layer(), false)?;
        Ok(changed)
    }

    /// Reads the PgBouncer version from the binary in the image.
    pub fn probe_version(
        &self,
        pebble: &mut dyn Pebble,
    ) -> Result<Option<PgbVersion>, PebbleError> {
        for path in BINARIES {
            match pebble.pull(path) {
                Ok(bytes) => return Ok(PgbVersion::find(&bytes)),
                Err(PebbleError::Path { .. }) => continue,
                Err(PebbleError::Api {
                    status_code: 404, ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Makes the directories, adds the layer if the plan lacks it, writes the auth
    /// file and (with a shared configuration) every process's ini file, then reloads
    /// or restarts what needs it. Without a shared configuration only the auth file
    /// is written, and the running processes reload it if it changed.
    pub fn apply(
        &self,
        pebble: &mut dyn Pebble,
        shared: Option<&SharedConfig>,
        userlist: Option<&str>,
        serving: &Serving<'_>,
    ) -> Result<Applied, PebbleError> {
        let mut applied = Applied::default();
        for i in 0..self.processes {
            for dir in [self.layout.process_dir(i), self.layout.log_dir(i)] {
                pebble.make_dir(&dir, &self.file_options(0o700))?;
            }
        }
        if let Some(text) = userlist {
            let path = self.layout.auth_file();
            if pebble.read_text(&path)?.as_deref() != Some(text) {
                pebble.push(&path, text.as_bytes(), &self.file_options(0o400))?;
                applied.auth_file_changed = true;
            }
        }
        let Some(shared) = shared else {
            if applied.auth_file_changed {
                let running = self.running(pebble)?;
                let refs: Vec<&str> = running.iter().map(String::as_str).collect();
                if !refs.is_empty() {
                    pebble.send_signal("SIGHUP", &refs)?;
                }
                applied.reloaded = running;
            }
            return Ok(applied);
        };
        let layer = self.layer();
        let plan_now = pebble.plan()?;
        if layer
            .services
            .iter()
            .any(|(n, s)| plan_now.services.get(n) != Some(s))
        {
            pebble.add_layer("pgbouncer", &layer, true)?;
        }
        let running = self.running(pebble)?;
        for i in 0..self.processes {
            let spec = ProcessSpec {
                index: i,
                count: self.processes,
                version: serving.version,
                tls: serving.tls,
                listen_addr: serving.listen_addr,
                layout: &self.layout,
                peering: serving.peering,
            };
            let new = render_process(shared, &spec);
            let path = self.layout.ini_path(i);
            let old = pebble.read_text(&path)?;
            if old.as_deref() != Some(new.as_str()) {
                pebble.push(&path, new.as_bytes(), &self.file_options(0o400))?;
            }
            let service = service_name(i);
            match plan(
                old.as_deref(),
                &new,
                running.contains(&service),
                applied.auth_file_changed,
            ) {
                ProcessAction::Restart => {
                    pebble.restart(&[&service])?;
                    applied.restarted.push(service);
                }
                ProcessAction::Reload => {
                    pebble.send_signal("SIGHUP", &[&service])?;
                    applied.reloaded.push(service);
                }
                ProcessAction::Nothing => {}
            }
        }
        Ok(applied)
    }

    /// Writes the TLS key, certificate and CA bundle (mode 0400), or removes
    /// them when there are none. Returns whether anything changed.
    pub fn write_tls(
        &self,
        pebble: &mut dyn Pebble,
        files: Option<&TlsFiles>,
    ) -> Result<bool, PebbleError> {
        let [key, ca, cert] = self.layout.tls_files();
        let mut changed = false;
        for (path, text) in [
            (key, files.map(|f| f.key.as_str())),
            (ca, files.map(|f| f.ca.as_str())),
            (cert, files.map(|f| f.cert.as_str())),
        ] {
            let old = pebble.read_text(&path)?;
            match text {
                Some(t) if old.as_deref() != Some(t) => {
                    pebble.push(&path, t.as_bytes(), &self.file_options(0o400))?;
                    changed = true;
                }
                None if old.is_some() => {
                    pebble.remove_path(&path, false)?;
                    changed = true;
                }
                _ => {}
            }
        }
        Ok(changed)
    }

    /// Writes the CA the backend is verified with (mode 0400), or removes it.
    /// Returns whether it changed.
    pub fn write_backend_ca(
        &self,
        pebble: &mut dyn Pebble,
        ca: Option<&str>,
    ) -> Result<bool, PebbleError> {
        let path = self.layout.backend_ca_file();
        let old = pebble.read_text(&path)?;
        match ca {
            Some(ca) if old.as_deref() != Some(ca) => {
                pebble.push(&path, ca.as_bytes(), &self.file_options(0o400))?;
                Ok(true)
            }
            None if old.is_some() => {
                pebble.remove_path(&path, false)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Reloads the running processes that [`Workload::apply`] left alone (for
    /// files PgBouncer rereads on SIGHUP, such as the TLS files).
    pub fn reload_others(
        &self,
        pebble: &mut dyn Pebble,
        applied: &mut Applied,
    ) -> Result<(), PebbleError> {
        let rest: Vec<String> = self
            .running(pebble)?
            .into_iter()
            .filter(|s| !applied.restarted.contains(s) && !applied.reloaded.contains(s))
            .collect();
        if !rest.is_empty() {
            let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
            pebble.send_signal("SIGHUP", &refs)?;
            applied.reloaded.extend(rest);
        }
        Ok(())
    }

    /// The processes whose services are running.
    pub fn running(&self, pebble: &mut dyn Pebble) -> Result<Vec<String>, PebbleError> {
        let names: Vec<String> = (0..self.processes).map(service_name).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(pebble
            .services(&refs)?
            .into_iter()
            .filter(|s| s.is_running())
            .map(|s| s.name)
            .collect())
    }

    /// Sends `signal` to every running process; returns them.
    pub fn signal_running(
        &self,
        pebble: &mut dyn Pebble,
        signal: &str,
    ) -> Result<Vec<String>, PebbleError> {
        let running = self.running(pebble)?;
        if !running.is_empty() {
            let refs: Vec<&str> = running.iter().map(String::as_str).collect();
            pebble.send_signal(signal, &refs)?;
        }
        Ok(running)
    }

    /// Waits up to [`Workload::pause_wait`] for every process to have closed
    /// its server connections, as the exporter listening on `exporter`
    /// (`address:port`) reports them; answers the last state seen.
    pub fn wait_paused(&self, exporter: &str) -> PauseState {
        let deadline = std::time::Instant::now() + self.pause_wait;
        let mut state = PauseState::Unknown;
        while std::time::Instant::now() < deadline {
            state = metrics_page(exporter).map_or(PauseState::Unknown, |p| pause_state(&p));
            if state == PauseState::Paused {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        state
    }

    /// The timer that bounds how long the pools stay paused.
    pub fn pause_timer(&self) -> String {
        format!("{}/switchover-timer", self.layout.data_dir)
    }

    /// The first process that is not running, if any.
    pub fn stopped(&self, pebble: &mut dyn Pebble) -> Result<Option<String>, PebbleError> {
        let running = self.running(pebble)?;
        Ok((0..self.processes)
            .map(service_name)
            .find(|n| !running.contains(n)))
    }

    /// Restarts the running processes one at a time, each after draining it:
    /// SIGTERM, then up to [`Workload::drain`] for its clients to leave and
    /// it to exit, then a start (or, if it still runs, Pebble's restart: its
    /// SIGTERM, a second one, is PgBouncer's immediate shutdown, then a
    /// start). The exporter is stopped meanwhile, since its console sessions
    /// would hold every process, and started again after. With more than one
    /// process, the kernel is first asked to hand the connections queued on
    /// a draining process's listener over to the others.
    pub fn roll(&self, pebble: &mut dyn Pebble) -> Result<Roll, PebbleError> {
        let running = self.running(pebble)?;
        let mut roll = Roll {
            migration: None,
            processes: Vec::new(),
        };
        if running.is_empty() {
            return Ok(roll);
        }
        if running.len() > 1 {
            roll.migration = Some(enable_migration(&self.net_ipv4));
        }
        // Every service asked for: the exporter may not be in the plan.
        let exporter = pebble
            .services(&[])?
            .iter()
            .any(|s| s.name == EXPORTER_SERVICE && s.is_running());
        if exporter {
            pebble.stop(&[EXPORTER_SERVICE])?;
        }
        for service in running {
            pebble.send_signal("SIGTERM", &[&service])?;
            let deadline = std::time::Instant::now() + self.drain;
            let drained = loop {
                if !pebble.services(&[&service])?.iter().any(|s| s.is_running()) {
                    break true;
                }
                if std::time::Instant::now() >= deadline {
                    break false;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            };
            roll.processes.push(if drained {
                // Exited: Pebble may be about to restart it (its on-success);
                // a start does it now, or nothing if Pebble already has.
                pebble.start(&[&service])?;
                Rolled::Drained(service)
            } else {
                pebble.restart(&[&service])?;
                Rolled::Cut(service)
            });
        }
        if exporter {
            pebble.start(&[EXPORTER_SERVICE])?;
        }
        Ok(roll)
    }
}
