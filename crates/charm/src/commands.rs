//! The command line of every hook-tool call, built in one place so that the real
//! adapter runs exactly what the in-memory model records.

use crate::backend::Port;
use crate::relation::{Bag, Databag, Relation};
use crate::secret::{Revision, SecretId, SecretMeta, SecretOwner, SecretRef};
use crate::status::{LogLevel, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One hook-tool invocation: the tool, its arguments and what it reads on stdin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The tool's name (`relation-get`, ...).
    pub tool: String,
    /// Its arguments, in order.
    pub args: Vec<String>,
    /// Sent on stdin (`relation-set --file -`); never recorded, it may hold credentials.
    #[serde(skip)]
    pub stdin: Option<String>,
}

impl Command {
    fn new<I, S>(tool: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            tool: tool.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// The command line as a shell would show it (arguments space-separated).
    pub fn line(&self) -> String {
        let mut s = self.tool.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Every hook tool the SDK calls.
pub const TOOLS: &[&str] = &[
    "action-fail",
    "action-get",
    "action-log",
    "action-set",
    "application-version-set",
    "close-port",
    "config-get",
    "goal-state",
    "is-leader",
    "juju-log",
    "network-get",
    "open-port",
    "opened-ports",
    "relation-get",
    "relation-ids",
    "relation-list",
    "relation-set",
    "secret-add",
    "secret-get",
    "secret-grant",
    "secret-ids",
    "secret-info-get",
    "secret-remove",
    "secret-revoke",
    "secret-set",
    "status-get",
    "status-set",
];

const JSON: &str = "--format=json";

fn flag(name: &str, value: &str) -> String {
    // `--name=value` keeps a value that starts with '-' from reading as a flag.
    format!("--{name}={value}")
}

/// `is-leader`.
pub fn is_leader() -> Command {
    Command::new("is-leader", [JSON])
}

/// `relation-ids`: the relations on `endpoint`.
pub fn relation_ids(endpoint: &str) -> Command {
    Command::new("relation-ids", [endpoint, JSON])
}

/// `relation-list`: the remote units in `relation`.
pub fn relation_list(relation: &Relation) -> Command {
    Command::new(
        "relation-list",
        [JSON.to_string(), "-r".into(), relation.to_string()],
    )
}

/// `relation-list --app`: the remote application of `relation`.
pub fn relation_remote_app(relation: &Relation) -> Command {
    Command::new(
        "relation-list",
        [
            JSON.to_string(),
            "--app".into(),
            "-r".into(),
            relation.to_string(),
        ],
    )
}

/// `relation-get`: one application's or unit's whole bag.
pub fn relation_get(relation: &Relation, bag: &Bag) -> Command {
    let mut args = vec![JSON.to_string(), "-r".into(), relation.to_string()];
    if let Bag::App(_) = bag {
        args.push("--app".into());
    }
    args.push("-".into());
    args.push(bag.name().to_string());
    Command::new("relation-get", args)
}

/// `relation-set --file -`: `changes` (an empty value deletes its key) to this unit's bag, or the application's when `app`.
pub fn relation_set(relation: &Relation, app: bool, changes: &Databag) -> Command {
    let mut args = vec!["-r".to_string(), relation.to_string()];
    if app {
        args.push("--app".into());
    }
    args.push("--file".into());
    args.push("-".into());
    let mut c = Command::new("relation-set", args);
    c.stdin = Some(serde_json::to_string(changes).expect("a string map serialises"));
    c
}

/// `config-get`: every option.
pub fn config_get() -> Command {
    Command::new("config-get", [JSON])
}

/// `status-get` for the unit, or the application when `app`.
pub fn status_get(app: bool) -> Command {
    Command::new(
        "status-get",
        [
            "--include-data".to_string(),
            JSON.to_string(),
            format!("--application={app}"),
        ],
    )
}

/// `status-set` for the unit, or the application when `app`.
pub fn status_set(app: bool, status: &Status) -> Command {
    Command::new(
        "status-set",
        [
            format!("--application={app}"),
            status.name().to_string(),
            "--".into(),
            status.message().to_string(),
        ],
    )
}

/// `juju-log` at `level`.
pub fn juju_log(level: LogLevel, message: &str) -> Command {
    Command::new("juju-log", ["--log-level", level.as_str(), "--", message])
}

/// `application-version-set`.
pub fn application_version_set(version: &str) -> Command {
    Command::new("application-version-set", ["--", version])
}

/// `open-port`.
pub fn open_port(port: &Port) -> Command {
    Command::new("open-port", [port.to_string()])
}

/// `close-port`.
pub fn close_port(port: &Port) -> Command {
    Command::new("close-port", [port.to_string()])
}

/// `opened-ports`.
pub fn opened_ports() -> Command {
    Command::new("opened-ports", [JSON])
}

/// `network-get` for `binding`, as seen from `relation` when given.
pub fn network_get(binding: &str, relation: Option<u64>) -> Command {
    let mut args = vec![JSON.to_string()];
    if let Some(id) = relation {
        args.push("-r".into());
        args.push(id.to_string());
    }
    args.push(binding.to_string());
    Command::new("network-get", args)
}

/// `goal-state`.
pub fn goal_state() -> Command {
    Command::new("goal-state", [JSON])
}

/// `action-get`: every parameter.
pub fn action_get() -> Command {
    Command::new("action-get", [JSON])
}

/// `action-set`: each `key=value`.
pub fn action_set(results: &BTreeMap<String, String>) -> Command {
    Command::new(
        "action-set",
        results.iter().map(|(k, v)| format!("{k}={v}")),
    )
}

/// `action-fail` with `message`.
pub fn action_fail(message: &str) -> Command {
    Command::new("action-fail", ["--", message])
}

/// `action-log` with `message`.
pub fn action_log(message: &str) -> Command {
    Command::new("action-log", ["--", message])
}

fn meta_flags(meta: &SecretMeta, args: &mut Vec<String>) {
    if let Some(l) = &meta.label {
        args.push(flag("label", l));
    }
    if let Some(d) = &meta.description {
        args.push(flag("description", d));
    }
    if let Some(e) = &meta.expire {
        args.push(flag("expire", e));
    }
    if let Some(r) = meta.rotate {
        args.push(flag("rotate", r.as_str()));
    }
}

/// Each value travels in a file (`key#file=<path>`), never on the command line.
fn content_args(files: &[(String, String)], args: &mut Vec<String>) {
    args.extend(files.iter().map(|(k, path)| format!("{k}#file={path}")));
}

/// `files` pairs each content key with the path of the file holding its value.
pub fn secret_add(owner: SecretOwner, meta: &SecretMeta, files: &[(String, String)]) -> Command {
    let mut args = Vec::new();
    meta_flags(meta, &mut args);
    args.push(flag("owner", owner.as_str()));
    content_args(files, &mut args);
    Command::new("secret-add", args)
}

fn secret_ref(secret: &SecretRef, args: &mut Vec<String>) {
    match secret {
        SecretRef::Id(id, label) => {
            args.push(id.to_string());
            if let Some(l) = label {
                args.push(flag("label", l));
            }
        }
        SecretRef::Label(l) => args.push(flag("label", l)),
    }
}

/// `secret-get`: the content of `revision`.
pub fn secret_get(secret: &SecretRef, revision: Revision) -> Command {
    let mut args = vec![JSON.to_string()];
    secret_ref(secret, &mut args);
    match revision {
        Revision::Tracked => {}
        Revision::Peek => args.push("--peek".into()),
        Revision::Refresh => args.push("--refresh".into()),
    }
    Command::new("secret-get", args)
}

/// `secret-info-get` (for the owner).
pub fn secret_info_get(secret: &SecretRef) -> Command {
    let mut args = vec![JSON.to_string()];
    match secret {
        SecretRef::Id(id, _) => args.push(id.to_string()),
        SecretRef::Label(l) => args.push(flag("label", l)),
    }
    Command::new("secret-info-get", args)
}

/// `secret-set`: a new revision from `files` (key and file path pairs) and metadata.
pub fn secret_set(id: &SecretId, meta: &SecretMeta, files: &[(String, String)]) -> Command {
    let mut args = Vec::new();
    meta_flags(meta, &mut args);
    args.push(id.to_string());
    content_args(files, &mut args);
    Command::new("secret-set", args)
}

fn grant_args(id: &SecretId, relation: u64, unit: Option<&str>) -> Vec<String> {
    let mut args = vec!["--relation".to_string(), relation.to_string()];
    if let Some(u) = unit {
        args.push("--unit".into());
        args.push(u.to_string());
    }
    args.push(id.to_string());
    args
}

/// `secret-grant` to `relation`'s application, or one `unit` of it.
pub fn secret_grant(id: &SecretId, relation: u64, unit: Option<&str>) -> Command {
    Command::new("secret-grant", grant_args(id, relation, unit))
}

/// `secret-revoke` from `relation`'s application, or one `unit` of it.
pub fn secret_revoke(id: &SecretId, relation: u64, unit: Option<&str>) -> Command {
    Command::new("secret-revoke", grant_args(id, relation, unit))
}

/// `secret-remove`: one revision, or every one.
pub fn secret_remove(id: &SecretId, revision: Option<u64>) -> Command {
    let mut args = vec![id.to_string()];
    if let Some(r) = revision {
        args.push("--revision".into());
        args.push(r.to_string());
    }
    Command::new("secret-remove", args)
}

/// `secret-ids`: the secrets this unit or its application owns.
pub fn secret_ids() -> Command {
    Command::new("secret-ids", [JSON])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretId;

    #[test]
    fn every_command_built_names_a_listed_tool() {
        let rel = Relation::new("db", 1);
        let id = SecretId::parse("d0rtp2cs1tj5qbo1s2ug").unwrap();
        let label = SecretRef::Label("l".into());
        let meta = SecretMeta::default();
        let commands = [
            is_leader(),
            relation_ids("db"),
            relation_list(&rel),
            relation_remote_app(&rel),
            relation_get(&rel, &Bag::Unit("a/0".into())),
            relation_set(&rel, false, &Databag::new()),
            config_get(),
            status_get(false),
            status_set(false, &Status::Active(String::new())),
            juju_log(LogLevel::Info, "m"),
            application_version_set("1"),
            open_port(&Port::tcp(1)),
            close_port(&Port::tcp(1)),
            opened_ports(),
            network_get("db", None),
            goal_state(),
            action_get(),
            action_set(&BTreeMap::new()),
            action_fail("m"),
            action_log("m"),
            secret_add(SecretOwner::Unit, &meta, &[]),
            secret_get(&label, Revision::Tracked),
            secret_info_get(&label),
            secret_set(&id, &meta, &[]),
            secret_grant(&id, 1, None),
            secret_revoke(&id, 1, None),
            secret_remove(&id, None),
            secret_ids(),
        ];
        for c in &commands {
            assert!(
                TOOLS.contains(&c.tool.as_str()),
                "{} is not in TOOLS",
                c.tool
            );
        }
        let built: std::collections::BTreeSet<&str> =
            commands.iter().map(|c| c.tool.as_str()).collect();
        assert_eq!(
            built.len(),
            TOOLS.len(),
            "TOOLS lists a tool nothing builds"
        );
    }
}
