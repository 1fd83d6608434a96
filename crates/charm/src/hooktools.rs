//! The [`Backend`] that runs Juju's hook tools (found on `PATH`), and the parsers
//! for what they print.

use crate::backend::{Backend, GoalState, JsonMap, Network, Port, StatusInfo};
use crate::commands::{self, Command};
use crate::error::{Error, Result};
use crate::relation::{Bag, Databag, Relation};
use crate::secret::{
    Revision, SecretContent, SecretId, SecretInfo, SecretMeta, SecretOwner, SecretRef,
};
use crate::stats::ToolStats;
use crate::status::{LogLevel, Status};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::Instant;

/// What running one hook-tool command gave: its output and exit code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawOutput {
    /// What it printed on stdout.
    pub stdout: Vec<u8>,
    /// What it printed on stderr.
    pub stderr: Vec<u8>,
    /// Its exit code.
    pub code: i32,
}

/// Runs hook-tool commands. [`ProcessRunner`] starts the real tools; a hook-tool
/// emulator can run them in-process instead.
pub trait ToolRunner {
    /// Runs `cmd` and collects what it gave.
    fn run(&mut self, cmd: &Command) -> std::io::Result<RawOutput>;
}

/// Starts each tool as a process, found on `PATH` or in a given directory.
#[derive(Clone, Debug, Default)]
pub struct ProcessRunner {
    dir: Option<PathBuf>,
}

impl ToolRunner for ProcessRunner {
    fn run(&mut self, cmd: &Command) -> std::io::Result<RawOutput> {
        let mut process = match &self.dir {
            Some(dir) => Process::new(dir.join(&cmd.tool)),
            None => Process::new(&cmd.tool),
        };
        let stdin = if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        process
            .args(&cmd.args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process.spawn()?;
        if let (Some(input), Some(mut pipe)) = (&cmd.stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok(RawOutput {
            stdout: out.stdout,
            stderr: out.stderr,
            code: out.status.code().unwrap_or(-1),
        })
    }
}

/// Calls the hook tools, counting and timing each call.
pub struct HookTools<R: ToolRunner = ProcessRunner> {
    runner: R,
    stats: ToolStats,
    secret_dir: Option<PathBuf>,
    files_written: u64,
}

impl Default for HookTools {
    fn default() -> Self {
        HookTools::with_runner(ProcessRunner::default())
    }
}

impl HookTools {
    /// Finds the tools on `PATH`, where Juju puts them.
    pub fn new() -> Self {
        HookTools::default()
    }

    /// Runs the tools found in `dir` instead (stand-ins in tests).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        HookTools::with_runner(ProcessRunner {
            dir: Some(dir.into()),
        })
    }
}

impl<R: ToolRunner> HookTools<R> {
    /// Runs the tools with `runner`.
    pub fn with_runner(runner: R) -> Self {
        HookTools {
            runner,
            stats: ToolStats::default(),
            secret_dir: None,
            files_written: 0,
        }
    }

    /// The calls made so far.
    pub fn stats(&self) -> &ToolStats {
        &self.stats
    }

    /// Runs a tool and returns its stdout; a non-zero exit becomes a typed [`Error`].
    fn run(&mut self, cmd: &Command) -> Result<String> {
        let started = Instant::now();
        let out = self.runner.run(cmd).map_err(|source| Error::Spawn {
            tool: cmd.tool.clone(),
            source,
        })?;
        self.stats.record(cmd, started.elapsed());
        if out.code != 0 {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(Error::from_tool_failure(&cmd.tool, out.code, &stderr));
        }
        String::from_utf8(out.stdout).map_err(|_| Error::Output {
            tool: cmd.tool.clone(),
            detail: "not UTF-8".into(),
        })
    }

    fn json<T: DeserializeOwned>(&mut self, cmd: Command) -> Result<T> {
        let out = self.run(&cmd)?;
        parse_json(&cmd.tool, &out)
    }

    /// Writes each secret value to its own private file (mode 0600 in a 0700
    /// directory), runs the command built from the file paths, then removes them.
    fn with_content_files(
        &mut self,
        content: &SecretContent,
        build: impl FnOnce(&[(String, String)]) -> Command,
    ) -> Result<String> {
        content.check()?;
        let dir = self.secret_dir()?;
        let mut files = Vec::new();
        let mut written = Vec::new();
        let result = (|| {
            for (key, value) in content.iter() {
                self.files_written += 1;
                let path = dir.join(format!("{}-{}", self.files_written, key));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| io_invalid("cannot write a secret value file", e))?;
                written.push(path.clone());
                f.write_all(value.as_bytes())
                    .map_err(|e| io_invalid("cannot write a secret value file", e))?;
                files.push((key.clone(), path.display().to_string()));
            }
            let cmd = build(&files);
            self.run(&cmd)
        })();
        for p in written {
            let _ = std::fs::remove_file(p);
        }
        result
    }

    fn secret_dir(&mut self) -> Result<PathBuf> {
        if let Some(d) = &self.secret_dir {
            return Ok(d.clone());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("charm-secret-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_invalid("cannot create a private directory for secret values", e))?;
        self.secret_dir = Some(dir.clone());
        Ok(dir)
    }
}

impl<R: ToolRunner> Drop for HookTools<R> {
    fn drop(&mut self) {
        if let Some(d) = &self.secret_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn io_invalid(what: &str, e: std::io::Error) -> Error {
    Error::Invalid(format!("{what}: {e}"))
}

/// Parses a tool's `--format=json` output; `null` reads as the type's default.
pub fn parse_json<T: DeserializeOwned>(tool: &str, out: &str) -> Result<T> {
    serde_json::from_str::<Option<T>>(out.trim())
        .map_err(|e| Error::Output {
            tool: tool.to_string(),
            detail: e.to_string(),
        })?
        .ok_or_else(|| Error::Output {
            tool: tool.to_string(),
            detail: "null where a value was expected".into(),
        })
}

fn parse_json_or_default<T: DeserializeOwned + Default>(tool: &str, out: &str) -> Result<T> {
    if out.trim() == "null" || out.trim().is_empty() {
        return Ok(T::default());
    }
    parse_json(tool, out)
}

/// `relation-ids` prints `["endpoint:id", ...]`.
pub fn parse_relation_ids(out: &str) -> Result<Vec<Relation>> {
    let ids: Vec<String> = parse_json_or_default("relation-ids", out)?;
    ids.iter()
        .map(|s| {
            Relation::parse(s).ok_or_else(|| Error::Output {
                tool: "relation-ids".into(),
                detail: format!("{s:?} is not endpoint:id"),
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct RawStatus {
    status: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "status-data", default)]
    _data: serde_json::Value,
}

impl RawStatus {
    fn status(&self) -> Result<Status> {
        Status::from_parts(&self.status, self.message.clone()).ok_or_else(|| Error::Output {
            tool: "status-get".into(),
            detail: format!("unknown status {:?}", self.status),
        })
    }
}

#[derive(serde::Deserialize)]
struct RawAppStatus {
    #[serde(flatten)]
    app: RawStatus,
    #[serde(default)]
    units: BTreeMap<String, RawStatus>,
}

/// `status-get --include-data` prints `{"status","message","status-data"}` for the
/// unit, and `{"application-status": {..., "units": {...}}}` for the application.
pub fn parse_status(app: bool, out: &str) -> Result<StatusInfo> {
    if !app {
        let raw: RawStatus = parse_json("status-get", out)?;
        return Ok(StatusInfo {
            status: raw.status()?,
            units: BTreeMap::new(),
        });
    }
    #[derive(serde::Deserialize)]
    struct Wrapper {
        #[serde(rename = "application-status")]
        application_status: RawAppStatus,
    }
    let w: Wrapper = parse_json("status-get", out)?;
    let mut units = BTreeMap::new();
    for (name, s) in &w.application_status.units {
        units.insert(name.clone(), s.status()?);
    }
    Ok(StatusInfo {
        status: w.application_status.app.status()?,
        units,
    })
}

/// `opened-ports` prints `["8080/tcp", "icmp", ...]`.
pub fn parse_ports(out: &str) -> Result<Vec<Port>> {
    let raw: Vec<String> = parse_json_or_default("opened-ports", out)?;
    raw.iter()
        .map(|s| {
            Port::parse(s).ok_or_else(|| Error::Output {
                tool: "opened-ports".into(),
                detail: format!("{s:?} is not a port"),
            })
        })
        .collect()
}

/// `secret-add` prints the new URI on one line.
pub fn parse_secret_uri(tool: &str, out: &str) -> Result<SecretId> {
    SecretId::parse(out.trim()).map_err(|e| Error::Output {
        tool: tool.to_string(),
        detail: e.to_string(),
    })
}

/// `secret-info-get` prints `{"<xid>": {"revision", "label", "owner", ...}}`.
pub fn parse_secret_info(out: &str) -> Result<SecretInfo> {
    let map: BTreeMap<String, SecretInfo> = parse_json("secret-info-get", out)?;
    let mut entries = map.into_iter();
    match (entries.next(), entries.next()) {
        (Some((id, mut info)), None) => {
            info.id = Some(parse_secret_uri("secret-info-get", &id)?);
            Ok(info)
        }
        _ => Err(Error::Output {
            tool: "secret-info-get".into(),
            detail: "expected exactly one secret".into(),
        }),
    }
}

/// `secret-ids` prints a list of ids, bare or as URIs.
pub fn parse_secret_ids(out: &str) -> Result<Vec<SecretId>> {
    let raw: Vec<String> = parse_json_or_default("secret-ids", out)?;
    raw.iter()
        .map(|s| parse_secret_uri("secret-ids", s))
        .collect()
}

impl<R: ToolRunner> Backend for HookTools<R> {
    fn is_leader(&mut self) -> Result<bool> {
        self.json(commands::is_leader())
    }

    fn relation_ids(&mut self, endpoint: &str) -> Result<Vec<Relation>> {
        let out = self.run(&commands::relation_ids(endpoint))?;
        parse_relation_ids(&out)
    }

    fn relation_list(&mut self, relation: &Relation) -> Result<Vec<String>> {
        let out = self.run(&commands::relation_list(relation))?;
        parse_json_or_default("relation-list", &out)
    }

    fn relation_remote_app(&mut self, relation: &Relation) -> Result<String> {
        self.json(commands::relation_remote_app(relation))
    }

    fn relation_get(&mut self, relation: &Relation, bag: &Bag) -> Result<Databag> {
        let out = self.run(&commands::relation_get(relation, bag))?;
        parse_json_or_default("relation-get", &out)
    }

    fn relation_set(&mut self, relation: &Relation, app: bool, changes: &Databag) -> Result<()> {
        self.run(&commands::relation_set(relation, app, changes))
            .map(drop)
    }

    fn config_get(&mut self) -> Result<JsonMap> {
        let out = self.run(&commands::config_get())?;
        parse_json_or_default("config-get", &out)
    }

    fn status_get(&mut self, app: bool) -> Result<StatusInfo> {
        let out = self.run(&commands::status_get(app))?;
        parse_status(app, &out)
    }

    fn status_set(&mut self, app: bool, status: &Status) -> Result<()> {
        self.run(&commands::status_set(app, status)).map(drop)
    }

    fn juju_log(&mut self, level: LogLevel, message: &str) -> Result<()> {
        self.run(&commands::juju_log(level, message)).map(drop)
    }

    fn application_version_set(&mut self, version: &str) -> Result<()> {
        self.run(&commands::application_version_set(version))
            .map(drop)
    }

    fn open_port(&mut self, port: &Port) -> Result<()> {
        self.run(&commands::open_port(port)).map(drop)
    }

    fn close_port(&mut self, port: &Port) -> Result<()> {
        self.run(&commands::close_port(port)).map(drop)
    }

    fn opened_ports(&mut self) -> Result<Vec<Port>> {
        let out = self.run(&commands::opened_ports())?;
        parse_ports(&out)
    }

    fn network_get(&mut self, binding: &str, relation: Option<u64>) -> Result<Network> {
        self.json(commands::network_get(binding, relation))
    }

    fn goal_state(&mut self) -> Result<GoalState> {
        self.json(commands::goal_state())
    }

    fn action_get(&mut self) -> Result<JsonMap> {
        let out = self.run(&commands::action_get())?;
        parse_json_or_default("action-get", &out)
    }

    fn action_set(&mut self, results: &BTreeMap<String, String>) -> Result<()> {
        self.run(&commands::action_set(results)).map(drop)
    }

    fn action_fail(&mut self, message: &str) -> Result<()> {
        self.run(&commands::action_fail(message)).map(drop)
    }

    fn action_log(&mut self, message: &str) -> Result<()> {
        self.run(&commands::action_log(message)).map(drop)
    }

    fn secret_add(
        &mut self,
        content: &SecretContent,
        owner: SecretOwner,
        meta: &SecretMeta,
    ) -> Result<SecretId> {
        let out =
            self.with_content_files(content, |files| commands::secret_add(owner, meta, files))?;
        parse_secret_uri("secret-add", &out)
    }

    fn secret_get(&mut self, secret: &SecretRef, revision: Revision) -> Result<SecretContent> {
        self.json(commands::secret_get(secret, revision))
    }

    fn secret_info_get(&mut self, secret: &SecretRef) -> Result<SecretInfo> {
        let out = self.run(&commands::secret_info_get(secret))?;
        parse_secret_info(&out)
    }

    fn secret_set(
        &mut self,
        id: &SecretId,
        content: Option<&SecretContent>,
        meta: &SecretMeta,
    ) -> Result<()> {
        match content {
            Some(c) => self
                .with_content_files(c, |files| commands::secret_set(id, meta, files))
                .map(drop),
            None => self.run(&commands::secret_set(id, meta, &[])).map(drop),
        }
    }

    fn secret_grant(&mut self, id: &SecretId, relation: u64, unit: Option<&str>) -> Result<()> {
        self.run(&commands::secret_grant(id, relation, unit))
            .map(drop)
    }

    fn secret_revoke(&mut self, id: &SecretId, relation: u64, unit: Option<&str>) -> Result<()> {
        self.run(&commands::secret_revoke(id, relation, unit))
            .map(drop)
    }

    fn secret_remove(&mut self, id: &SecretId, revision: Option<u64>) -> Result<()> {
        self.run(&commands::secret_remove(id, revision)).map(drop)
    }

    fn secret_ids(&mut self) -> Result<Vec<SecretId>> {
        let out = self.run(&commands::secret_ids())?;
        parse_secret_ids(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unit_and_application_status() {
        let u = parse_status(
            false,
            r#"{"status":"blocked","message":"no backend","status-data":{}}"#,
        )
        .unwrap();
        assert_eq!(u.status, Status::Blocked("no backend".into()));
        let a = parse_status(
            true,
            r#"{"application-status":{"status":"active","message":"","status-data":{},
                "units":{"a/0":{"status":"waiting","message":"x","status-data":{}}}}}"#,
        )
        .unwrap();
        assert_eq!(a.status, Status::Active(String::new()));
        assert_eq!(a.units["a/0"], Status::Waiting("x".into()));
        assert!(parse_status(false, r#"{"status":"sleepy","message":""}"#).is_err());
    }

    #[test]
    fn reads_relation_ids_ports_and_secret_outputs() {
        assert_eq!(
            parse_relation_ids(r#"["database:4","database:12"]"#).unwrap(),
            vec![Relation::new("database", 4), Relation::new("database", 12)]
        );
        assert!(parse_relation_ids("[]").unwrap().is_empty());
        assert!(parse_relation_ids(r#"["nope"]"#).is_err());
        assert_eq!(
            parse_ports(r#"["6432/tcp","icmp","8000-8010/udp"]"#).unwrap(),
            vec![Port::tcp(6432), Port::Icmp, Port::Udp(8000, 8010)]
        );
        assert!(parse_ports("null").unwrap().is_empty());
        let id = parse_secret_uri(
            "secret-add",
            "secret://6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13/d0rtp2cs1tj5qbo1s2ug\n",
        )
        .unwrap();
        assert_eq!(id.xid(), "d0rtp2cs1tj5qbo1s2ug");
        let info = parse_secret_info(
            r#"{"d0rtp2cs1tj5qbo1s2ug":{"revision":3,"label":"pgb-peers.pgbouncer-k8s.app","owner":"application","rotation":"never"}}"#,
        )
        .unwrap();
        assert_eq!(info.revision, 3);
        assert_eq!(info.owner, SecretOwner::Application);
        assert_eq!(info.id, Some(id));
        assert!(parse_secret_info("{}").is_err());
        assert_eq!(
            parse_secret_ids(r#"["d0rtp2cs1tj5qbo1s2ug","secret:d0rtp2cs1tj5qbo1s2u0"]"#)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn json_null_is_an_error_where_a_value_is_needed() {
        assert!(parse_json::<bool>("is-leader", "null").is_err());
        assert!(parse_json::<bool>("is-leader", "true\n").unwrap());
        assert!(matches!(
            parse_json::<bool>("is-leader", "yes"),
            Err(Error::Output { .. })
        ));
    }
}
