//! pgBackRest, the backup tool the charm drives in the workload container:
//! its configuration (one S3 repository, this cluster's stanza), the
//! command lines the charm runs, and what `info` reports, read into backups.
//! Everything here is pure; the flows run the commands through Pebble.
//!
//! The configuration file holds the repository's keys: it is written for
//! the workload's user alone, and no command line carries a key.

use pebble_api::timefmt::rfc3339_seconds;
use s3_interface::S3Parameters;
use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

/// The region pgBackRest is given when the provider names none: pgBackRest
/// needs one, and S3-compatible servers accept any.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An S3 endpoint pgBackRest cannot use; the text is fit for a status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("pgBackRest reaches S3 over https only; give the s3-integrator an https endpoint")]
    PlainHttp,
    #[error(
        "pgBackRest checks the endpoint's certificate by host name; give the s3-integrator \
         the endpoint's name, not an IP address"
    )]
    Address,
    #[error("the S3 endpoint must be https://host[:port], without a path")]
    Shape,
}

/// An S3 endpoint as pgBackRest takes it: a host name and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Reads `https://host[:port]` (the provider's URL, trailing slashes
    /// already removed).
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        if url.starts_with("http://") {
            return Err(EndpointError::PlainHttp);
        }
        let rest = url.strip_prefix("https://").ok_or(EndpointError::Shape)?;
        if rest.contains('/') || rest.is_empty() {
            return Err(EndpointError::Shape);
        }
        if rest.starts_with('[') {
            return Err(EndpointError::Address);
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or(EndpointError::Shape)?,
            ),
            None => (rest, 443),
        };
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(EndpointError::Address);
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if host.is_empty() || !host.chars().all(valid) {
            return Err(EndpointError::Shape);
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

/// This cluster's stanza: `<model>.patroni-<app>`, as the reference charm
/// names it, so that a repository it wrote is recognised.
pub fn stanza(model: &str, app: &str) -> String {
    format!("{model}.patroni-{app}")
}

/// Where this unit's PostgreSQL is, for pgBackRest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local<'a> {
    /// The data directory.
    pub data_dir: &'a str,
    /// The unix socket's directory.
    pub socket_dir: &'a str,
    /// PostgreSQL's port.
    pub port: u16,
    /// The user pgBackRest logs in as, over the socket.
    pub user: &'a str,
    /// Where pgBackRest keeps its logs and locks (a directory of its own).
    pub work_dir: &'a str,
}

/// pgBackRest's TLS server port, the same on every unit.
pub const SERVER_PORT: u16 = 8432;

/// The TLS files pgBackRest uses between units: this unit's certificate and
/// key, and the CA bundle the other side's certificate is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles<'a> {
    pub ca: &'a str,
    pub cert: &'a str,
    pub key: &'a str,
}

/// This unit's pgBackRest TLS server, through which another unit's
/// pgBackRest reaches this unit's PostgreSQL for a backup: on this unit's
/// address, open to the peers' certificates (by common name) for this
/// cluster's stanza alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server<'a> {
    pub address: &'a str,
    pub files: TlsFiles<'a>,
    /// The common names of the other units' certificates.
    pub peers: Vec<String>,
}

/// The configuration file: the repository in `[global]`, with this unit's
/// TLS server when it runs one, and this cluster in its stanza's section.
/// `ca_file` is where the provider's CA chain is written, when it gave one.
pub fn render(
    s3: &S3Parameters,
    stanza: &str,
    local: &Local<'_>,
    ca_file: Option<&str>,
    server: Option<&Server<'_>>,
) -> Result<String, EndpointError> {
    let endpoint = Endpoint::parse(&s3.endpoint)?;
    let mut out = String::from(
        "# Written by the PostgreSQL charm: one S3 repository, this cluster's stanza.\n[global]\n",
    );
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key}={value}");
    };
    line("repo1-type", "s3");
    line("repo1-path", &s3.path);
    line("repo1-s3-bucket", &s3.bucket);
    line("repo1-s3-endpoint", &endpoint.host);
    line("repo1-storage-port", &endpoint.port.to_string());
    line(
        "repo1-s3-region",
        s3.region.as_deref().unwrap_or(DEFAULT_REGION),
    );
    line("repo1-s3-uri-style", s3.uri_style.as_str());
    line("repo1-s3-key", &s3.access_key);
    line("repo1-s3-key-secret", &s3.secret_key);
    if let Some(ca) = ca_file {
        line("repo1-storage-ca-file", ca);
    }
    if let Some(days) = s3.retention_days {
        line("repo1-retention-full-type", "time");
        line("repo1-retention-full", &days.to_string());
    }
    line("repo1-retention-history", "365");
    line("compress-type", "zst");
    line("start-fast", "y");
    line("log-level-console", "warn");
    line("log-level-stderr", "off");
    line("log-level-file", "info");
    line("log-path", &format!("{}/log", local.work_dir));
    line("lock-path", &format!("{}/lock", local.work_dir));
    line("spool-path", &format!("{}/spool", local.work_dir));
    if let Some(server) = server {
        line("tls-server-address", server.address);
        line("tls-server-port", &SERVER_PORT.to_string());
        line("tls-server-ca-file", server.files.ca);
        line("tls-server-cert-file", server.files.cert);
        line("tls-server-key-file", server.files.key);
        for peer in &server.peers {
            line("tls-server-auth", &format!("{peer}={stanza}"));
        }
    }
    let _ = writeln!(out, "\n[{stanza}]");
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key}={value}");
    };
    line("pg1-path", local.data_dir);
    line("pg1-socket-path", local.socket_dir);
    line("pg1-port", &local.port.to_string());
    line("pg1-user", local.user);
    Ok(out)
}

/// The other member of a backup taken from a standby, reached through its
/// unit's pgBackRest TLS server: the primary when this unit's member is the
/// standby, a standby when it is the primary. Its PostgreSQL is laid out as
/// this unit's (`local`), and its server reads the same configuration path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote<'a> {
    pub address: &'a str,
    pub local: &'a Local<'a>,
    pub config: &'a str,
    pub files: TlsFiles<'a>,
}

/// The options of a backup taken from a standby (`backup` on the command
/// line, the configuration file unchanged): pgBackRest tells primary from
/// standby itself, starts and stops the backup on the primary and copies
/// the replicated files, nearly all of them, from the standby.
pub fn standby_options(remote: &Remote<'_>) -> Vec<String> {
    let Remote {
        address,
        local,
        config,
        files,
    } = remote;
    [
        "--backup-standby".to_string(),
        format!("--pg2-host={address}"),
        "--pg2-host-type=tls".into(),
        format!("--pg2-host-port={SERVER_PORT}"),
        format!("--pg2-host-config={config}"),
        format!("--pg2-host-ca-file={}", files.ca),
        format!("--pg2-host-cert-file={}", files.cert),
        format!("--pg2-host-key-file={}", files.key),
        format!("--pg2-path={}", local.data_dir),
        format!("--pg2-socket-path={}", local.socket_dir),
        format!("--pg2-port={}", local.port),
        format!("--pg2-user={}", local.user),
    ]
    .into()
}

/// The label of the backup `backup` made, from its console output at
/// `info` (`new backup label = <label>`).
pub fn new_backup_label(console: &str) -> Option<String> {
    console.lines().find_map(|line| {
        let (_, label) = line.split_once("new backup label = ")?;
        Some(label.trim().to_string()).filter(|l| !l.is_empty())
    })
}

/// PostgreSQL's `archive_command` while there is no repository: every WAL
/// segment counts as archived.
pub const NO_ARCHIVE: &str = "/bin/true";

/// PostgreSQL's `archive_command` once the stanza exists: each WAL segment
/// pushed to the repository.
pub fn archive_command(config: &str, stanza: &str) -> String {
    format!("pgbackrest --config={config} --stanza={stanza} archive-push %p")
}

/// The kinds of backup `create-backup` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupType {
    Full,
    Differential,
    Incremental,
}

impl BackupType {
    /// The action's word for it.
    pub fn parse(word: &str) -> Result<BackupType, String> {
        match word {
            "full" => Ok(BackupType::Full),
            "differential" => Ok(BackupType::Differential),
            "incremental" => Ok(BackupType::Incremental),
            other => Err(format!(
                "Invalid backup type: {other}. Possible values: full, differential, incremental."
            )),
        }
    }

    /// pgBackRest's `--type`.
    pub fn pgbackrest(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Differential => "diff",
            BackupType::Incremental => "incr",
        }
    }

    /// How `list-backups` names it.
    pub fn describe(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Differential => "differential",
            BackupType::Incremental => "incremental",
        }
    }
}

/// A pgBackRest command line for this cluster: `pgbackrest --config=…
/// --stanza=… <command> <extra>`.
pub fn command(config: &str, stanza: &str, command: &str, extra: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "pgbackrest".to_string(),
        format!("--config={config}"),
        format!("--stanza={stanza}"),
    ];
    argv.push(command.to_string());
    argv.extend(extra.iter().map(|a| a.to_string()));
    argv
}

/// `info` of the whole repository, every stanza in it (asked about one,
/// pgBackRest shows that one alone).
pub fn repository_info(config: &str) -> Vec<String> {
    [
        "pgbackrest",
        &format!("--config={config}"),
        "info",
        "--output=json",
    ]
    .map(str::to_string)
    .to_vec()
}

/// One backup in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// pgBackRest's label (`20240502-101112F`, `…_20240502-110000D`).
    pub label: String,
    /// Its id for users: the start time, `2024-05-02T10:11:12Z`.
    pub id: String,
    pub kind: BackupType,
    /// The backup it depends on, by id.
    pub reference: Option<String>,
    /// Start and stop, in seconds since the epoch.
    pub start: u64,
    pub stop: u64,
    /// The database's size, and what the backup takes in the repository.
    pub size: u64,
    pub repository_size: u64,
    /// The timeline it was taken on (from its first WAL segment).
    pub timeline: u32,
    /// pgBackRest marked it as holding a page checksum error.
    pub error: bool,
}

/// What `pgbackrest info --output=json` says of this cluster's stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// pgBackRest's status code for the stanza (0: ok) and its message.
    pub status: (i64, String),
    /// The system identifier of the cluster the stanza was made for.
    pub system_id: Option<u64>,
    /// The other stanzas in the repository, by name.
    pub other_stanzas: Vec<String>,
    /// Its backups, oldest first.
    pub backups: Vec<Backup>,
}

/// `info`'s output that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("pgBackRest's info output: {0}")]
pub struct InfoError(String);

/// Reads `pgbackrest info --output=json` for `stanza`; `None` when the
/// repository has no such stanza.
pub fn parse_info(json: &str, stanza: &str) -> Result<Option<Info>, InfoError> {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| InfoError(e.to_string()))?;
    let other_stanzas = all
        .iter()
        .filter_map(|s| s["name"].as_str())
        .filter(|name| *name != stanza)
        .map(str::to_string)
        .collect();
    // Asked about a stanza it lacks, pgBackRest lists it with status 1
    // ("missing stanza path") or 3 ("missing stanza data").
    let Some(this) = all
        .iter()
        .find(|s| s["name"] == stanza && !matches!(s["status"]["code"].as_i64(), Some(1 | 3)))
    else {
        return Ok(None);
    };
    let labels: Vec<(&str, u64)> = this["backup"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(|b| Some((b["label"].as_str()?, b["timestamp"]["start"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let id_of = |label: &str| {
        labels
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, start)| backup_id(*start))
    };
    let mut backups = Vec::new();
    for b in this["backup"].as_array().into_iter().flatten() {
        let field = |what: &str| InfoError(format!("a backup without {what}"));
        let label = b["label"].as_str().ok_or_else(|| field("a label"))?;
        let kind = match b["type"].as_str() {
            Some("full") => BackupType::Full,
            Some("diff") => BackupType::Differential,
            Some("incr") => BackupType::Incremental,
            _ => return Err(field("a known type")),
        };
        let start = b["timestamp"]["start"]
            .as_u64()
            .ok_or_else(|| field("a start"))?;
        let stop = b["timestamp"]["stop"]
            .as_u64()
            .ok_or_else(|| field("a stop"))?;
        let timeline = b["archive"]["start"]
            .as_str()
            .and_then(|segment| segment.get(..8))
            .and_then(|tl| u32::from_str_radix(tl, 16).ok())
            .ok_or_else(|| field("a WAL segment"))?;
        backups.push(Backup {
            label: label.to_string(),
            id: backup_id(start),
            kind,
            reference: b["prior"].as_str().and_then(id_of),
            start,
            stop,
            size: b["info"]["size"].as_u64().unwrap_or(0),
            repository_size: b["info"]["repository"]["size"].as_u64().unwrap_or(0),
            timeline,
            error: b["error"].as_bool().unwrap_or(false),
        });
    }
    backups.sort_by_key(|b| b.start);
    Ok(Some(Info {
        status: (
            this["status"]["code"].as_i64().unwrap_or(-1),
            this["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        system_id: this["db"]
            .as_array()
            .and_then(|dbs| dbs.first())
            .and_then(|db| db["system-id"].as_u64()),
        other_stanzas,
        backups,
    }))
}

/// Why the repository cannot be read, when `info` of the whole repository
/// says so (pgBackRest then lists a stanza named `[invalid]`): S3's error
/// code and message when the server sent them, else pgBackRest's first line.
pub fn repository_error(json: &str) -> Option<String> {
    let all: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    let invalid = all.iter().find(|s| s["name"] == "[invalid]")?;
    let message = invalid["repo"]
        .as_array()
        .and_then(|repos| repos.iter().find_map(|r| r["status"]["message"].as_str()))
        .or_else(|| invalid["status"]["message"].as_str())
        .unwrap_or("unknown error");
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = message.find(&open)? + open.len();
        let end = message[start..].find(&format!("</{name}>"))? + start;
        Some(&message[start..end])
    };
    Some(match (tag("Code"), tag("Message")) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        _ => message.lines().next().unwrap_or_default().to_string(),
    })
}

/// A backup's id: its start time in UTC, to the second.
pub fn backup_id(start: u64) -> String {
    rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(start))
}

/// The `list-backups` table: one row a backup, oldest first.
pub fn table(backups: &[Backup]) -> String {
    let mut out = format!(
        "{:<20} | {:<12} | {:<8} | {:<20} | {:<20} | {:<20} | {:>10} | {:>8}\n",
        "backup-id",
        "type",
        "status",
        "reference-backup-id",
        "start-time",
        "finish-time",
        "size",
        "timeline"
    );
    out.push_str(&"-".repeat(out.len() - 1));
    out.push('\n');
    for b in backups {
        let _ = writeln!(
            out,
            "{:<20} | {:<12} | {:<8} | {:<20} | {:<20} | {:<20} | {:>10} | {:>8}",
            b.id,
            b.kind.describe(),
            if b.error { "error" } else { "finished" },
            b.reference.as_deref().unwrap_or("-"),
            backup_id(b.start),
            backup_id(b.stop),
            size(b.size),
            b.timeline
        );
    }
    out
}

/// A byte count for people: `22.0MB`.
fn size(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", units[unit])
    }
}
