//! The PostgreSQL container: where things live, the Pebble layer that runs
//! Patroni, and the files the charm writes through Pebble.

use crate::patroni::API_PORT;
use crate::state::{TlsMaterial, OPERATOR};
use pebble_api::{
    Check, Exec, ExecOutput, FileOptions, HttpCheck, Layer, Pebble, PebbleError, Service,
};

/// The workload container's name.
pub const CONTAINER: &str = "postgresql";
/// The Pebble service that runs Patroni.
pub const SERVICE: &str = "postgresql";
/// The Pebble service (and its check) of PostgreSQL's Prometheus exporter.
pub const EXPORTER_SERVICE: &str = "metrics_server";
/// The Pebble service of pgBackRest's TLS server, through which another
/// unit takes a backup from a standby.
pub const PGBACKREST_SERVER: &str = "pgbackrest-server";
/// The exporter's port (the community exporter's).
pub const EXPORTER_PORT: u16 = 9187;
/// The time zone database PostgreSQL reads (Debian builds it on the system's).
pub const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";
/// PostgreSQL 15's binaries on Debian.
pub const DEBIAN_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The key of the Pebble custom notice Patroni's callbacks record when this
/// member starts or changes role, which wakes the charm.
pub const ROLE_CHANGE_NOTICE: &str = "canonical.com/postgresql/role-change";

/// Patroni's callback (`<script> <action> <role> <scope>`): records
/// [`ROLE_CHANGE_NOTICE`] with the action and role as data, with Juju's
/// `pebble` when the container has it, else by a POST to the Pebble socket
/// inside the container. It holds no secret.
pub fn notify_script() -> String {
    format!(
        "#!/bin/sh\n\
         # Patroni callback: <action> <role> <scope>. Records a Pebble custom notice, which\n\
         # runs the charm's postgresql-pebble-custom-notice hook.\n{}",
        pebble_api::notify::notify_lines(
            &format!("'{ROLE_CHANGE_NOTICE}'"),
            &["action=\"$1\"", "role=\"$2\""]
        )
    )
}

/// Patroni's launcher (`<launcher> <patroni.yml>`), the service's command.
/// When the charm has asked for it (the file [`Layout::move_aside_request`]
/// names the new path), it first moves the data directory aside (renamed,
/// never deleted) and makes it anew, empty, so that a new cluster can be
/// bootstrapped in it; then it runs Patroni. It holds no secret.
pub fn launcher_script(layout: &Layout) -> String {
    let request = layout.move_aside_request();
    let data = &layout.data_dir;
    let patroni = &layout.patroni;
    format!(
        r#"#!/bin/sh
# Runs Patroni with the configuration given. When the charm asked for it, first
# moves the data directory aside (renamed, never deleted) and makes it anew.
set -e
request='{request}'
data='{data}'
if [ -f "$request" ]; then
    target=$(cat "$request")
    if [ -e "$data" ]; then
        if [ -e "$target" ]; then
            target="$target.$$"
        fi
        mv "$data" "$target"
        echo "moved the data directory aside to $target"
    fi
    mkdir -m 0700 "$data"
    rm -f "$request"
fi
exec {patroni} "$@"
"#
    )
}

/// Patroni's cache of the cluster's dynamic settings, in the data directory.
const PATRONI_CACHE: &str = "patroni.dynamic.json";

/// How long a file operation or PostgreSQL's stop may take.
const SHORT: std::time::Duration = std::time::Duration::from_secs(300);

/// Why PostgreSQL's recovery stopped: its last fatal words in `log`.
fn recovery_failure(pebble: &mut dyn Pebble, log: &str) -> Result<String, PebbleError> {
    let text = pebble.read_text(log)?.unwrap_or_default();
    let fatal = text
        .lines()
        .rev()
        .find_map(|l| l.split_once("FATAL:"))
        .map(|(_, why)| why.trim().to_string());
    Ok(match fatal {
        Some(why) => format!("PostgreSQL's recovery failed: {why} (log: {log})"),
        None => format!("PostgreSQL's recovery did not finish (log: {log})"),
    })
}

/// What a data directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// Nothing (or no directory).
    Empty,
    /// Something, but not a whole cluster (`PG_VERSION` or
    /// `global/pg_control` is missing): an initdb or a copy that stopped
    /// half-way, or one in progress.
    Partial,
    /// A cluster PostgreSQL can start.
    Complete,
}

/// Paths in the container, and the binaries' places.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The storage mount (`pgdata`): configuration, TLS files, the data directory.
    pub storage_dir: String,
    /// PostgreSQL's data directory.
    pub data_dir: String,
    /// PostgreSQL's binaries.
    pub bin_dir: String,
    /// Where PostgreSQL puts its unix socket.
    pub socket_dir: String,
    /// The Patroni command.
    pub patroni: String,
    /// PostgreSQL's Prometheus exporter (`postgres_exporter`).
    pub exporter: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            storage_dir: "/var/lib/postgresql/data".into(),
            data_dir: "/var/lib/postgresql/data/pgdata".into(),
            bin_dir: DEBIAN_BIN_DIR.into(),
            socket_dir: "/var/lib/postgresql/data".into(),
            patroni: "patroni".into(),
            exporter: "prometheus-postgres-exporter".into(),
        }
    }
}

impl Layout {
    /// PostgreSQL's loadable modules: beside the binaries, in `lib`.
    pub fn lib_dir(&self) -> String {
        let base = self.bin_dir.strip_suffix("/bin").unwrap_or(&self.bin_dir);
        format!("{base}/lib")
    }
    /// `patroni.yml`.
    pub fn config_path(&self) -> String {
        format!("{}/patroni.yml", self.storage_dir)
    }
    /// Patroni's callback script ([`notify_script`]).
    pub fn notify_script(&self) -> String {
        format!("{}/notify-role-change", self.storage_dir)
    }
    /// The service's command ([`launcher_script`]).
    pub fn launcher(&self) -> String {
        format!("{}/start-patroni", self.storage_dir)
    }
    /// The charm's request that the launcher move the data directory aside:
    /// the file holds the path to move it to.
    pub fn move_aside_request(&self) -> String {
        format!("{}/move-aside", self.storage_dir)
    }
    /// Patroni's password file.
    pub fn pgpass(&self) -> String {
        format!("{}/pgpass", self.storage_dir)
    }
    /// The monitoring user's password, for the exporter (mode 0400).
    pub fn monitoring_password(&self) -> String {
        format!("{}/monitoring-password", self.storage_dir)
    }
    pub fn tls_key(&self) -> String {
        format!("{}/key.pem", self.storage_dir)
    }
    pub fn tls_cert(&self) -> String {
        format!("{}/cert.pem", self.storage_dir)
    }
    pub fn tls_ca(&self) -> String {
        format!("{}/ca.pem", self.storage_dir)
    }
    /// pgBackRest's configuration (it holds the repository's keys).
    pub fn pgbackrest_config(&self) -> String {
        format!("{}/pgbackrest.conf", self.storage_dir)
    }
    /// pgBackRest's own directory: logs, locks, spool, the S3 CA chain.
    pub fn pgbackrest_dir(&self) -> String {
        format!("{}/pgbackrest", self.storage_dir)
    }
    /// The CA chain the S3 provider gave, for pgBackRest.
    pub fn pgbackrest_ca(&self) -> String {
        format!("{}/s3-ca.pem", self.pgbackrest_dir())
    }
    /// The TLS files pgBackRest uses between units (copies of the unit's,
    /// so that its server restarts exactly when they change).
    pub fn pgbackrest_tls(&self) -> [String; 3] {
        ["ca", "cert", "key"].map(|f| format!("{}/tls-{f}.pem", self.pgbackrest_dir()))
    }
    /// The password file pgBackRest's server logs in to PostgreSQL with.
    pub fn pgbackrest_pgpass(&self) -> String {
        format!("{}/pgpass", self.pgbackrest_dir())
    }
}

/// A password as a libpq password file holds it: `\\` and `:` escaped.
fn pgpass_escape(password: &str) -> String {
    password.replace('\\', "\\\\").replace(':', "\\:")
}

/// Whether `path` is a file (or a link to one) in the container.
fn is_file(pebble: &mut dyn Pebble, path: &str) -> Result<bool, PebbleError> {
    match pebble.list_files(path, None) {
        Ok(entries) => Ok(entries.len() == 1 && entries[0].kind != "directory"),
        Err(PebbleError::Path { .. })
        | Err(PebbleError::Api {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `path` exists in the container.
pub(crate) fn exists(pebble: &mut dyn Pebble, path: &str) -> Result<bool, PebbleError> {
    match pebble.list_files(path, None) {
        Ok(_) => Ok(true),
        Err(PebbleError::Path { .. })
        | Err(PebbleError::Api {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How this unit runs PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub layout: Layout,
    /// The OS user owning the files and running Patroni.
    pub user: String,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            layout: Layout::default(),
            user: "postgres".into(),
        }
    }
}

impl Workload {
    /// Whether the container's time zone database has `zone` (a file, or a
    /// link to one, under [`ZONEINFO_DIR`]): PostgreSQL refuses to start with
    /// a time zone it cannot load.
    pub fn has_time_zone(&self, pebble: &mut dyn Pebble, zone: &str) -> Result<bool, PebbleError> {
        is_file(pebble, &format!("{ZONEINFO_DIR}/{zone}"))
    }

    /// Whether the container has PostgreSQL's module `library` (the package
    /// that ships it is installed): PostgreSQL refuses to start when a
    /// library it must preload is missing.
    pub fn has_library(&self, pebble: &mut dyn Pebble, library: &str) -> Result<bool, PebbleError> {
        is_file(pebble, &format!("{}/{library}.so", self.layout.lib_dir()))
    }

    fn options(&self, mode: u32) -> FileOptions {
        FileOptions {
            permissions: Some(mode),
            user: Some(self.user.clone()),
            group: Some(self.user.clone()),
            make_parents: true,
        }
    }

    /// The layer: Patroni as `postgresql`, with a readiness check on its API;
    /// through the launcher ([`launcher_script`]) once the cluster has a
    /// generation, so that a deployment made before generations keeps the
    /// command it runs (and Patroni is not restarted by an upgrade).
    pub fn layer(&self, address: &str, launcher: bool) -> Layer {
        let program = match launcher {
            true => self.layout.launcher(),
            false => self.layout.patroni.clone(),
        };
        let mut layer = Layer {
            summary: "postgresql layer".into(),
            description: "Patroni running PostgreSQL".into(),
            ..Layer::default()
        };
        layer.services.insert(
            SERVICE.into(),
            Service {
                r#override: "replace".into(),
                summary: "Patroni and PostgreSQL".into(),
                command: format!("{} {}", program, self.layout.config_path()),
                startup: "enabled".into(),
                user: self.user.clone(),
                group: self.user.clone(),
                ..Service::default()
            },
        );
        layer.checks.insert(
            SERVICE.into(),
            Check {
                r#override: "replace".into(),
                level: "ready".into(),
                http: Some(HttpCheck {
                    url: format!("http://{address}:{API_PORT}/health"),
                }),
                ..Check::default()
            },
        );
        layer
    }

    /// The exporter's layer: `postgres_exporter` on `address`, logging in
    /// as `monitoring` (`pg_monitor` only) with the password in a file, over
    /// TLS when the server requires it, with an HTTP check on its port.
    pub fn exporter_layer(&self, address: &str, tls: bool) -> Layer {
        let sslmode = if tls { "require" } else { "disable" };
        let environment = [
            (
                "DATA_SOURCE_URI",
                format!("{address}:5432/postgres?sslmode={sslmode}"),
            ),
            ("DATA_SOURCE_USER", crate::state::MONITORING.to_string()),
            ("DATA_SOURCE_PASS_FILE", self.layout.monitoring_password()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let listen = format!("{address}:{EXPORTER_PORT}");
        let mut layer = Layer {
            summary: "postgresql exporter layer".into(),
            description: "the Prometheus exporter of PostgreSQL".into(),
            ..Layer::default()
        };
        layer.services.insert(
            EXPORTER_SERVICE.into(),
            Service {
                r#override: "replace".into(),
                summary: "Prometheus exporter of PostgreSQL".into(),
                command: format!("{} --web.listen-address={listen}", self.layout.exporter),
                startup: "enabled".into(),
                user: self.user.clone(),
                group: self.user.clone(),
                environment,
                ..Service::default()
            },
        );
        layer.checks.insert(
            EXPORTER_SERVICE.into(),
            Check {
                r#override: "replace".into(),
                level: "alive".into(),
                http: Some(HttpCheck {
                    url: format!("http://{listen}/"),
                }),
                ..Check::default()
            },
        );
        layer
    }

    /// Writes the monitoring password file when it differs, adds the
    /// exporter's layer when the plan differs, and starts the exporter, or
    /// restarts it when its layer or password changed (it reads the file
    /// when it starts). Returns whether it (re)started.
    pub fn apply_exporter(
        &self,
        pebble: &mut dyn Pebble,
        address: &str,
        tls: bool,
        password: &str,
    ) -> Result<bool, PebbleError> {
        let path = self.layout.monitoring_password();
        let mut changed = false;
        if pebble.read_text(&path)?.as_deref() != Some(password) {
            pebble.push(&path, password.as_bytes(), &self.options(0o400))?;
            changed = true;
        }
        let layer = self.exporter_layer(address, tls);
        pebble_api::ensure_service(pebble, EXPORTER_SERVICE, &layer, changed)
    }

    /// Makes the storage and data directories, owned by the workload's user,
    /// and writes Patroni's launcher and callback scripts when they differ.
    pub fn prepare(&self, pebble: &mut dyn Pebble) -> Result<(), PebbleError> {
        pebble.make_dir(&self.layout.storage_dir, &self.options(0o750))?;
        pebble.make_dir(&self.layout.data_dir, &self.options(0o700))?;
        let scripts = [
            (self.layout.notify_script(), notify_script()),
            (self.layout.launcher(), launcher_script(&self.layout)),
        ];
        for (path, script) in scripts {
            if pebble.read_text(&path)?.as_deref() != Some(script.as_str()) {
                pebble.push(&path, script.as_bytes(), &self.options(0o755))?;
            }
        }
        Ok(())
    }

    /// What the data directory holds.
    pub fn data_dir(&self, pebble: &mut dyn Pebble) -> Result<DataDir, PebbleError> {
        let data = &self.layout.data_dir;
        if !exists(pebble, data)? || pebble.list_files(data, None)?.is_empty() {
            return Ok(DataDir::Empty);
        }
        let complete = exists(pebble, &format!("{data}/PG_VERSION"))?
            && exists(pebble, &format!("{data}/global/pg_control"))?;
        Ok(if complete {
            DataDir::Complete
        } else {
            DataDir::Partial
        })
    }

    /// Asks the launcher to move the data directory aside to `target` the
    /// next time it starts Patroni.
    pub fn request_move_aside(
        &self,
        pebble: &mut dyn Pebble,
        target: &str,
    ) -> Result<(), PebbleError> {
        let path = self.layout.move_aside_request();
        pebble.push(&path, target.as_bytes(), &self.options(0o644))
    }

    /// The `patroni.yml` written last, if any.
    pub fn configured(&self, pebble: &mut dyn Pebble) -> Result<Option<String>, PebbleError> {
        pebble.read_text(&self.layout.config_path())
    }

    /// Writes `patroni.yml` (readable by its owner only: it holds passwords)
    /// when it differs. Returns whether it changed.
    pub fn write_config(&self, pebble: &mut dyn Pebble, text: &str) -> Result<bool, PebbleError> {
        let path = self.layout.config_path();
        if pebble.read_text(&path)?.as_deref() == Some(text) {
            return Ok(false);
        }
        pebble.push(&path, text.as_bytes(), &self.options(0o600))?;
        Ok(true)
    }

    /// Writes the TLS files, or removes them when TLS is off. Returns whether
    /// any changed.
    pub fn write_tls(
        &self,
        pebble: &mut dyn Pebble,
        tls: Option<&TlsMaterial>,
    ) -> Result<bool, PebbleError> {
        let mut changed = false;
        let l = &self.layout;
        let files = [
            (l.tls_key(), tls.map(|t| &t.key)),
            (l.tls_cert(), tls.map(|t| &t.cert)),
            (l.tls_ca(), tls.map(|t| &t.ca)),
        ];
        for (path, content) in files {
            match content {
                Some(c) if pebble.read_text(&path)?.as_deref() != Some(c.as_str()) => {
                    pebble.push(&path, c.as_bytes(), &self.options(0o400))?;
                    changed = true;
                }
                Some(_) => {}
                None if pebble.read_text(&path)?.is_some() => {
                    pebble.remove_path(&path, false)?;
                    changed = true;
                }
                None => {}
            }
        }
        Ok(changed)
    }

    /// Adds the layer if the plan lacks it and replans (which starts Patroni,
    /// or restarts it with the new layer). Returns whether it replanned:
    /// Patroni has then just read its configuration.
    pub fn start(
        &self,
        pebble: &mut dyn Pebble,
        address: &str,
        launcher: bool,
    ) -> Result<bool, PebbleError> {
        let layer = self.layer(address, launcher);
        let plan = pebble.plan()?;
        let same = layer
            .services
            .iter()
            .all(|(n, s)| plan.services.get(n) == Some(s))
            && layer
                .checks
                .iter()
                .all(|(n, c)| plan.checks.get(n) == Some(c));
        if same && self.running(pebble)? {
            return Ok(false);
        }
        pebble.add_layer(SERVICE, &layer, true)?;
        pebble.replan()?;
        Ok(true)
    }

    /// Restarts a running Patroni (a new scope cannot be reloaded). Returns
    /// whether it ran.
    pub fn restart(&self, pebble: &mut dyn Pebble) -> Result<bool, PebbleError> {
        if !self.running(pebble)? {
            return Ok(false);
        }
        pebble.restart(&[SERVICE])?;
        Ok(true)
    }

    /// Stops Patroni (and its PostgreSQL) if it runs.
    pub fn stop(&self, pebble: &mut dyn Pebble) -> Result<(), PebbleError> {
        if self.running(pebble)? {
            pebble.stop(&[SERVICE])?;
        }
        Ok(())
    }

    /// `pg_ctl <command> -D <data directory> <extra>`, as the workload runs it.
    fn pg_ctl(&self, command: &str, extra: &[&str]) -> Vec<String> {
        let mut argv = vec![
            format!("{}/pg_ctl", self.layout.bin_dir),
            command.into(),
            "-D".into(),
            self.layout.data_dir.clone(),
        ];
        argv.extend(extra.iter().map(|a| a.to_string()));
        argv
    }

    /// Stops PostgreSQL at once (immediate mode: no shutdown checkpoint, the
    /// longest part of a clean stop; the data directory, about to be set
    /// aside, recovers as after a crash if it is ever started again), then
    /// Patroni, killed (its clean shutdown takes seconds and leaves nothing
    /// the restore needs: the restored cluster starts under a scope of its
    /// own, and one that does not restore takes its own leader key back),
    /// then PostgreSQL again if it still runs on the data directory (Patroni
    /// restarted it meanwhile, or was killed before it could stop it):
    /// nothing may run on the directory when it is moved or restored into.
    /// `Err` says why PostgreSQL could not be stopped.
    pub fn stop_postgresql(
        &self,
        pebble: &mut dyn Pebble,
    ) -> Result<Result<(), String>, PebbleError> {
        let data = &self.layout.data_dir;
        let on = |command: &str, extra: &[&str]| self.pg_ctl(command, extra);
        // `pg_ctl status` answers 0 only while a server runs on the directory.
        let ran = self.run(pebble, on("status", &[]), SHORT)?.success();
        if ran {
            self.run(pebble, on("stop", &["-m", "immediate", "-w"]), SHORT)?;
        }
        if self.running(pebble)? {
            pebble.send_signal("SIGKILL", &[SERVICE])?;
            // Stopped even if Pebble already saw it exit: that keeps Pebble
            // from starting it again.
            pebble.stop(&[SERVICE])?;
        }
        if !ran || !self.run(pebble, on("status", &[]), SHORT)?.success() {
            return Ok(Ok(()));
        }
        let stopped = self.run(
            pebble,
            on("stop", &["-m", "fast", "-w", "-t", "300"]),
            SHORT,
        )?;
        Ok(match stopped.success() {
            true => Ok(()),
            false => Err(format!(
                "PostgreSQL still runs on {data} and did not stop: {}",
                stopped.stderr_text().trim()
            )),
        })
    }

    /// Whether Patroni's service runs.
    pub fn running(&self, pebble: &mut dyn Pebble) -> Result<bool, PebbleError> {
        Ok(pebble.services(&[SERVICE])?.iter().any(|s| s.is_running()))
    }

    /// Makes a running Patroni reload its configuration (SIGHUP).
    pub fn reload(&self, pebble: &mut dyn Pebble) -> Result<bool, PebbleError> {
        if !self.running(pebble)? {
            return Ok(false);
        }
        pebble.send_signal("SIGHUP", &[SERVICE])?;
        Ok(true)
    }

    /// Writes pgBackRest's configuration and the S3 CA chain (each readable
    /// by the workload's user alone) when they differ, or removes them when
    /// `files` is `None`. Returns whether anything changed.
    pub fn write_pgbackrest(
        &self,
        pebble: &mut dyn Pebble,
        files: Option<(&str, Option<&str>)>,
    ) -> Result<bool, PebbleError> {
        let l = &self.layout;
        let wanted = [
            (l.pgbackrest_config(), files.map(|(config, _)| config)),
            (l.pgbackrest_ca(), files.and_then(|(_, ca)| ca)),
        ];
        let mut changed = false;
        for (path, content) in wanted {
            changed |= self.write_private(pebble, &path, content)?;
        }
        if changed && files.is_some() {
            // pgBackRest makes none of its directories itself.
            pebble.make_dir(&l.pgbackrest_dir(), &self.options(0o700))?;
            for sub in ["log", "lock", "spool"] {
                let dir = format!("{}/{sub}", l.pgbackrest_dir());
                pebble.make_dir(&dir, &self.options(0o700))?;
            }
        }
        Ok(changed)
    }

    /// pgBackRest's TLS server's layer: the server on the address and port
    /// `pgbackrest.conf` names, logging in to PostgreSQL with the password
    /// in its own file.
    pub fn pgbackrest_server_layer(&self, enabled: bool) -> Layer {
        let mut layer = Layer {
            summary: "pgbackrest server layer".into(),
            description: "pgBackRest's TLS server, for backups taken from a standby".into(),
            ..Layer::default()
        };
        layer.services.insert(
            PGBACKREST_SERVER.into(),
            Service {
                r#override: "replace".into(),
                summary: "pgBackRest TLS server".into(),
                command: format!(
                    "pgbackrest --config={} server",
                    self.layout.pgbackrest_config()
                ),
                startup: if enabled { "enabled" } else { "disabled" }.into(),
                user: self.user.clone(),
                group: self.user.clone(),
                environment: [("PGPASSFILE".to_string(), self.layout.pgbackrest_pgpass())].into(),
                ..Service::default()
            },
        );
        layer
    }

    /// Runs pgBackRest's TLS server with `tls` (this unit's material) and
    /// `password` (the user it logs in as), restarted when they or the
    /// configuration (`config_changed`) changed; with `None`, stops it and
    /// removes its files. Returns whether it (re)started.
    pub fn serve_pgbackrest(
        &self,
        pebble: &mut dyn Pebble,
        serve: Option<(&TlsMaterial, &str)>,
        config_changed: bool,
    ) -> Result<bool, PebbleError> {
        let l = &self.layout;
        let [ca, cert, key] = l.pgbackrest_tls();
        let pgpass =
            serve.map(|(_, password)| format!("*:*:*:{OPERATOR}:{}\n", pgpass_escape(password)));
        let wanted = [
            (ca, serve.map(|(tls, _)| tls.ca.clone())),
            (cert, serve.map(|(tls, _)| tls.cert.clone())),
            (key, serve.map(|(tls, _)| tls.key.clone())),
        ];
        let mut changed = config_changed;
        for (path, content) in wanted {
            changed |= self.write_private(pebble, &path, content.as_deref())?;
        }
        // libpq reads the password file at each login: no restart for it.
        self.write_private(pebble, &l.pgbackrest_pgpass(), pgpass.as_deref())?;
        if serve.is_none() {
            // Kept in the plan but disabled, so that no replan starts it.
            let plan = pebble.plan()?;
            if let Some(service) = plan.services.get(PGBACKREST_SERVER) {
                let layer = self.pgbackrest_server_layer(false);
                if Some(service) != layer.services.get(PGBACKREST_SERVER) {
                    pebble.add_layer(PGBACKREST_SERVER, &layer, true)?;
                }
                let running = pebble
                    .services(&[PGBACKREST_SERVER])?
                    .iter()
                    .any(|s| s.is_running());
                if running {
                    pebble.stop(&[PGBACKREST_SERVER])?;
                }
            }
            return Ok(false);
        }
        let layer = self.pgbackrest_server_layer(true);
        pebble_api::ensure_service(pebble, PGBACKREST_SERVER, &layer, changed)
    }

    /// Writes `content` to `path` (the workload's user's alone) when it
    /// differs, or removes the file with `None`. Returns whether it changed.
    fn write_private(
        &self,
        pebble: &mut dyn Pebble,
        path: &str,
        content: Option<&str>,
    ) -> Result<bool, PebbleError> {
        let current = pebble.read_text(path)?;
        match content {
            Some(c) if current.as_deref() != Some(c) => {
                pebble.push(path, c.as_bytes(), &self.options(0o600))?;
                Ok(true)
            }
            None if current.is_some() => {
                pebble.remove_path(path, false)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Runs `argv` in the container as the workload's user, for at most
    /// `timeout`.
    fn run(
        &self,
        pebble: &mut dyn Pebble,
        argv: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<ExecOutput, PebbleError> {
        pebble.exec(&Exec {
            command: argv,
            user: Some(self.user.clone()),
            group: Some(self.user.clone()),
            timeout: Some(timeout),
            ..Exec::default()
        })
    }

    /// Moves the data directory to `target` (renamed, never deleted) and
    /// makes it anew, empty; `Err` says why it could not.
    pub fn move_data_aside(
        &self,
        pebble: &mut dyn Pebble,
        target: &str,
    ) -> Result<Result<(), String>, PebbleError> {
        if exists(pebble, target)? {
            return Ok(Err(format!("{target} exists already")));
        }
        let data = self.layout.data_dir.clone();
        let argv = vec!["mv".into(), data.clone(), target.into()];
        let moved = self.run(pebble, argv, SHORT)?;
        if !moved.success() {
            return Ok(Err(format!(
                "cannot move {data} to {target}: {}",
                moved.stderr_text().trim()
            )));
        }
        if let Err(e) = pebble.make_dir(&data, &self.options(0o700)) {
            return Ok(Err(format!(
                "moved {data} to {target}, but cannot make it anew: {e}"
            )));
        }
        Ok(Ok(()))
    }

    /// Empties the data directory of what a failed restore left there (a
    /// partial restore, never a cluster's own data: that was moved aside
    /// first); `Err` says why it could not.
    pub fn clear_failed_restore(
        &self,
        pebble: &mut dyn Pebble,
    ) -> Result<Result<(), String>, PebbleError> {
        let data = self.layout.data_dir.clone();
        let removed = self.run(pebble, vec!["rm".into(), "-rf".into(), data.clone()], SHORT)?;
        if !removed.success() {
            return Ok(Err(format!(
                "cannot empty {data}: {}",
                removed.stderr_text().trim()
            )));
        }
        pebble.make_dir(&data, &self.options(0o700))?;
        Ok(Ok(()))
    }

    /// Where [`Workload::recover`] has PostgreSQL write its log.
    pub fn recovery_log(&self) -> String {
        format!("{}/restore-recovery.log", self.layout.storage_dir)
    }

    /// Runs PostgreSQL on the restored data directory, outside Patroni and
    /// listening on its socket only, until its recovery reaches the target
    /// and it promotes (PostgreSQL then removes `recovery.signal`; `pg_ctl
    /// start -w` returns at the consistent point already), gives the system
    /// `users` (role, password) the passwords the charm holds now (the
    /// backup's may be older, or another application's), then stops it
    /// cleanly and removes Patroni's cache of the old cluster's dynamic
    /// settings. `Err` says what failed (PostgreSQL's last fatal words, from
    /// its log).
    pub fn recover(
        &self,
        pebble: &mut dyn Pebble,
        timeout: std::time::Duration,
        users: &[(&str, &str)],
    ) -> Result<Result<(), String>, PebbleError> {
        let data = &self.layout.data_dir;
        let log = self.recovery_log();
        let pg_ctl_on = |command: &str, extra: &[&str]| self.pg_ctl(command, extra);
        // The charm's superuser logs in over the socket as the workload's
        // own user (peer authentication), whatever password the restored
        // data holds; no statement is logged.
        let (hba, ident) = self.recovery_access_files();
        pebble.push(
            &hba,
            format!("local all {OPERATOR} peer map=recovery\n").as_bytes(),
            &self.options(0o600),
        )?;
        pebble.push(
            &ident,
            format!("recovery {} {OPERATOR}\n", self.user).as_bytes(),
            &self.options(0o600),
        )?;
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c hot_standby=off -c ssl=off \
             -c hba_file='{hba}' -c ident_file='{ident}' -c log_statement=none \
             -c log_min_duration_statement=-1 -c log_min_error_statement=panic",
            self.layout.socket_dir
        );
        let seconds = timeout.as_secs().to_string();
        let start = pg_ctl_on("start", &["-w", "-t", &seconds, "-l", &log, "-o", &options]);
        if !self.run(pebble, start, timeout + SHORT)?.success() {
            return Ok(Err(recovery_failure(pebble, &log)?));
        }
        let signal = format!("{data}/recovery.signal");
        let deadline = std::time::Instant::now() + timeout;
        while exists(pebble, &signal)? {
            if !self.run(pebble, pg_ctl_on("status", &[]), SHORT)?.success() {
                return Ok(Err(recovery_failure(pebble, &log)?));
            }
            if std::time::Instant::now() >= deadline {
                self.run(pebble, pg_ctl_on("stop", &["-m", "fast", "-w"]), SHORT)?;
                return Ok(Err(format!(
                    "PostgreSQL did not reach the target within {} s (log: {log})",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // PostgreSQL removes the signal file as it promotes, a moment before
        // it accepts connections.
        let pg_isready = format!("{}/pg_isready", self.layout.bin_dir);
        let ready = vec![
            pg_isready,
            "-q".into(),
            "-h".into(),
            self.layout.socket_dir.clone(),
        ];
        while !self.run(pebble, ready.clone(), SHORT)?.success() {
            if std::time::Instant::now() >= deadline
                || !self.run(pebble, pg_ctl_on("status", &[]), SHORT)?.success()
            {
                self.run(pebble, pg_ctl_on("stop", &["-m", "fast", "-w"]), SHORT)?;
                return Ok(Err(recovery_failure(pebble, &log)?));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let passwords = self.set_passwords(pebble, users)?;
        let stopped = self.run(pebble, pg_ctl_on("stop", &["-m", "fast", "-w"]), SHORT)?;
        for file in [&hba, &ident] {
            pebble.remove_path(file, false)?;
        }
        if let Err(why) = passwords {
            return Ok(Err(why));
        }
        if !stopped.success() {
            return Ok(Err(format!(
                "PostgreSQL recovered but did not stop: {}",
                stopped.stderr_text().trim()
            )));
        }
        // The old cluster's settings as Patroni cached them: Patroni would
        // take them for the new cluster's (a strict synchronous mode that
        // suited several members stops every commit of one).
        let cached = format!("{data}/{PATRONI_CACHE}");
        if exists(pebble, &cached)? {
            pebble.remove_path(&cached, false)?;
        }
        Ok(Ok(()))
    }

    /// The authentication files PostgreSQL's recovery runs with (see
    /// [`Workload::recover`]).
    fn recovery_access_files(&self) -> (String, String) {
        let dir = &self.layout.storage_dir;
        (
            format!("{dir}/recovery-hba.conf"),
            format!("{dir}/recovery-ident.conf"),
        )
    }

    /// Gives each of `users` that exists its password (as a SCRAM verifier:
    /// the password itself is sent nowhere), through `psql` on the socket,
    /// the statements on its standard input.
    fn set_passwords(
        &self,
        pebble: &mut dyn Pebble,
        users: &[(&str, &str)],
    ) -> Result<Result<(), String>, PebbleError> {
        // The restored configuration may name synchronous standbys that do
        // not run: the commits are this member's alone.
        let mut sql = String::from("SET synchronous_commit = local;\n");
        for (role, password) in users {
            let verifier = postgres_admin::verifier::scram_sha_256_random_salt(password);
            sql.push_str(&format!(
                "DO $body$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') \
                 THEN ALTER ROLE \"{role}\" PASSWORD '{verifier}'; END IF; END $body$;\n"
            ));
        }
        let psql = format!("{}/psql", self.layout.bin_dir);
        let argv = [
            psql.as_str(),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &self.layout.socket_dir,
            "-U",
            OPERATOR,
            "-d",
            "postgres",
            "-f",
            "-",
        ];
        let out = pebble.exec(&Exec {
            command: argv.iter().map(|a| a.to_string()).collect(),
            user: Some(self.user.clone()),
            group: Some(self.user.clone()),
            timeout: Some(SHORT),
            stdin: sql.into_bytes(),
            ..Exec::default()
        })?;
        Ok(if out.success() {
            Ok(())
        } else {
            Err(format!(
                "the system users' passwords could not be set: {}",
                out.stderr_text().trim()
            ))
        })
    }

    /// Runs pgBackRest's `argv` (see `pgbackrest::command`) as the
    /// workload's user, for at most `timeout`, logging in to PostgreSQL with
    /// `password` (in the command's environment, never on its command line).
    pub fn pgbackrest(
        &self,
        pebble: &mut dyn Pebble,
        argv: Vec<String>,
        password: &str,
        timeout: std::time::Duration,
    ) -> Result<ExecOutput, PebbleError> {
        pebble.exec(&Exec {
            command: argv,
            environment: [("PGPASSWORD".to_string(), password.to_string())].into(),
            user: Some(self.user.clone()),
            group: Some(self.user.clone()),
            timeout: Some(timeout),
            ..Exec::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_escapes_colons_and_backslashes() {
        assert_eq!(pgpass_escape("plain"), "plain");
        assert_eq!(pgpass_escape(r"a:b\c"), r"a\:b\\c");
    }
}
