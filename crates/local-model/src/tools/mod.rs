//! Juju's hook tools, interpreted: a command line (and its stdin) becomes a call
//! on a [`Backend`], and the answer or the error becomes what the real tool would
//! print and its exit code. Defaults come from the hook's [`Context`] (the current
//! relation, the remote unit), as Juju's tools take them from the hook context.
//! Every tool Juju 3.6 offers a unit is here ([`tool_names`]); those the SDK
//! does not call answer through `juju_rules::MemoryBackend`'s own methods.

mod flags;
mod format;

pub use flags::{parse_bool, Kind, Parsed, Spec, UsageError};
pub use format::Format;

use base64::Engine as _;
use charm::backend::{Backend, Port};
use charm::secret::{Revision, Rotate, SecretMeta, SecretOwner, SecretRef};
use charm::{
    Bag, Context, Databag, Error, Event, LogLevel, Relation, SecretContent, SecretId, Status,
};
use juju_rules::MemoryBackend;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Juju 3.6's hook tools beyond those the SDK calls.
const BEYOND_SDK: &[&str] = &[
    "add-metric",
    "credential-get",
    "juju-reboot",
    "k8s-raw-get",
    "k8s-raw-set",
    "k8s-spec-get",
    "k8s-spec-set",
    "leader-get",
    "leader-set",
    "payload-register",
    "payload-status-set",
    "payload-unregister",
    "pod-spec-get",
    "pod-spec-set",
    "relation-model-get",
    "resource-get",
    "state-delete",
    "state-get",
    "state-set",
    "storage-add",
    "storage-get",
    "storage-list",
    "unit-get",
];

/// Every tool this interpreter knows: all of Juju 3.6's.
pub fn tool_names() -> impl Iterator<Item = &'static str> {
    charm::commands::TOOLS.iter().chain(BEYOND_SDK).copied()
}

/// One tool call as the shim forwards it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolRequest {
    pub tool: String,
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
}

/// What the tool prints and its exit code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolResponse {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// The hook a tool runs in.
pub struct Session<'a, 's> {
    pub context: &'a Context,
    /// Every endpoint of the charm, to find a relation given by number only.
    pub endpoints: &'a [String],
    pub backend: &'a mut MemoryBackend<'s>,
}

/// Why a call failed: the command line (exit 2) or what Juju said (exit 1).
enum Failure {
    Usage(String),
    Juju(Error),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Failure::Usage(e.0)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Juju(e)
    }
}

type Outcome = Result<String, Failure>;

fn usage<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Usage(message.into()))
}

fn juju<T>(tool: &str, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Juju(Error::from_tool_failure(
        tool,
        1,
        &format!("ERROR {}", message.into()),
    )))
}

const FORMAT: Spec = (&["format"], Kind::Value);
const RELATION: Spec = (&["r", "relation"], Kind::Value);

impl Session<'_, '_> {
    /// Runs one tool call.
    pub fn run(&mut self, request: &ToolRequest) -> ToolResponse {
        match self.dispatch(request) {
            Ok(stdout) => ToolResponse {
                stdout,
                ..ToolResponse::default()
            },
            Err(Failure::Usage(m)) => ToolResponse {
                stderr: format!("ERROR {m}\n"),
                code: 2,
                ..ToolResponse::default()
            },
            Err(Failure::Juju(e)) => ToolResponse {
                stderr: format!("ERROR {}\n", e.juju_message()),
                code: 1,
                ..ToolResponse::default()
            },
        }
    }

    fn parse(&self, request: &ToolRequest, spec: &[Spec]) -> Result<(Parsed, Format), Failure> {
        let parsed = Parsed::parse(&request.args, spec)?;
        let format = Format::parse(parsed.value("format")).ok_or_else(|| {
            Failure::Usage(format!(
                "invalid value {:?} for option --format",
                parsed.value("format").unwrap_or("")
            ))
        })?;
        Ok((parsed, format))
    }

    fn dispatch(&mut self, req: &ToolRequest) -> Outcome {
        let tool = req.tool.as_str();
        match tool {
            "is-leader" => {
                let (_, f) = self.parse(req, &[FORMAT])?;
                Ok(f.render(&json!(self.backend.is_leader()?)))
            }
            "relation-ids" => self.relation_ids(req),
            "relation-list" => self.relation_list(req),
            "relation-get" => self.relation_get(req),
            "relation-set" => self.relation_set(req),
            "relation-model-get" => {
                // Every relation is within this one model.
                let (p, f) = self.parse(req, &[FORMAT, RELATION])?;
                self.relation("relation-model-get", p.value("r"))?;
                Ok(f.render(&json!({"uuid": self.context.model_uuid})))
            }
            "config-get" => self.config_get(req),
            "status-get" => self.status_get(req),
            "status-set" => self.status_set(req),
            "juju-log" => self.juju_log(req),
            "application-version-set" => {
                let (p, _) = self.parse(req, &[])?;
                self.backend
                    .application_version_set(&p.positional.join(" "))?;
                Ok(String::new())
            }
            "open-port" | "close-port" => self.port(req),
            "opened-ports" => {
                let (_, f) = self.parse(req, &[FORMAT, (&["endpoints"], Kind::Bool)])?;
                let ports: Vec<String> = self
                    .backend
                    .opened_ports()?
                    .iter()
                    .map(Port::to_string)
                    .collect();
                Ok(match f {
                    Format::Smart => ports.iter().map(|p| format!("{p}\n")).collect(),
                    _ => f.render(&json!(ports)),
                })
            }
            "network-get" => self.network_get(req),
            "goal-state" => {
                let (_, f) = self.parse(req, &[FORMAT])?;
                Ok(f.render(
                    &serde_json::to_value(self.backend.goal_state()?).expect("serialisable"),
                ))
            }
            "action-get" => self.action_get(req),
            "action-set" => {
                let (p, _) = self.parse(req, &[])?;
                let mut results = BTreeMap::new();
                for kv in &p.positional {
                    let (k, v) = kv.split_once('=').ok_or_else(|| {
                        Failure::Usage(format!("argument {kv:?} must be of the form key=value"))
                    })?;
                    results.insert(k.to_string(), v.to_string());
                }
                self.backend.action_set(&results)?;
                Ok(String::new())
            }
            "action-fail" => {
                let (p, _) = self.parse(req, &[])?;
                let message = if p.positional.is_empty() {
                    "action failed without reason given, check action for errors".to_string()
                } else {
                    p.positional.join(" ")
                };
                self.backend.action_fail(&message)?;
                Ok(String::new())
            }
            "action-log" => {
                let (p, _) = self.parse(req, &[])?;
                self.backend.action_log(&p.positional.join(" "))?;
                Ok(String::new())
            }
            "secret-add" => self.secret_add(req),
            "secret-get" => self.secret_get(req),
            "secret-info-get" => self.secret_info_get(req),
            "secret-set" => self.secret_set(req),
            "secret-grant" | "secret-revoke" => self.secret_grant(req),
            "secret-remove" => {
                let (p, _) = self.parse(req, &[(&["revision"], Kind::Value)])?;
                let id = secret_id(tool, p.positional.first())?;
                let revision = p
                    .value("revision")
                    .map(|r| r.parse::<u64>())
                    .transpose()
                    .map_err(|_| Failure::Usage("invalid revision".into()))?;
                self.backend.secret_remove(&id, revision)?;
                Ok(String::new())
            }
            "secret-ids" => {
                let (_, f) = self.parse(req, &[FORMAT])?;
                let ids: Vec<String> = self
                    .backend
                    .secret_ids()?
                    .iter()
                    .map(|i| i.xid().to_string())
                    .collect();
                Ok(f.render(&json!(ids)))
            }
            "leader-get" => self.leader_get(req),
            "leader-set" => {
                let (p, _) = self.parse(req, &[])?;
                let settings = key_values(&p.positional)?;
                self.backend.leader_set(&settings)?;
                Ok(String::new())
            }
            "state-get" => self.state_get(req),
            "state-set" => {
                let (p, _) = self.parse(req, &[(&["file"], Kind::Value)])?;
                let mut changes = match p.value("file") {
                    Some(file) => {
                        string_map(&read_file(file, &req.stdin)?).map_err(Failure::Usage)?
                    }
                    None => Databag::new(),
                };
                changes.extend(key_values(&p.positional)?);
                self.backend.state_set(&changes)?;
                Ok(String::new())
            }
            "state-delete" => {
                let (p, _) = self.parse(req, &[])?;
                let [key] = p.positional.as_slice() else {
                    return usage("specify a key");
                };
                self.backend.state_delete(key)?;
                Ok(String::new())
            }
            "storage-list" => {
                let (p, f) = self.parse(req, &[FORMAT])?;
                let ids = self
                    .backend
                    .storage_list(p.positional.first().map(String::as_str))?;
                Ok(lines_or(f, &ids))
            }
            "storage-get" => self.storage_get(req),
            "storage-add" => {
                let (p, _) = self.parse(req, &[])?;
                if p.positional.is_empty() {
                    return usage("storage add requires a storage directive");
                }
                for directive in &p.positional {
                    let (name, count) = match directive.split_once('=') {
                        Some((name, count)) => (
                            name,
                            count.parse::<u64>().map_err(|_| {
                                Failure::Usage(format!("cannot parse count {count:?}"))
                            })?,
                        ),
                        None => (directive.as_str(), 1),
                    };
                    self.backend.storage_add(name, count)?;
                }
                Ok(String::new())
            }
            "credential-get" => {
                let (p, f) = self.parse(req, &[FORMAT])?;
                no_args(&p)?;
                Ok(f.render(&self.backend.credential_get()?))
            }
            "unit-get" => {
                let (p, f) = self.parse(req, &[FORMAT])?;
                match p.positional.as_slice() {
                    [] => usage("no setting specified"),
                    [s] if s == "private-address" || s == "public-address" => {
                        Ok(f.render(&json!(self.backend.unit_address()?)))
                    }
                    [s] => usage(format!("unknown setting {s:?}")),
                    [_, rest @ ..] => usage(format!("unrecognized args: {rest:?}")),
                }
            }
            "add-metric" => {
                let (p, _) = self.parse(req, &[(&["l", "labels"], Kind::Value)])?;
                if p.positional.is_empty() {
                    return usage("no metrics specified");
                }
                self.backend.add_metric()?;
                Ok(String::new())
            }
            "juju-reboot" => {
                let (p, _) = self.parse(req, &[(&["now"], Kind::Bool)])?;
                no_args(&p)?;
                // Units share this machine: the reboot is logged, never done.
                let when = if p.flag("now") {
                    "now"
                } else {
                    "after this hook"
                };
                self.backend.juju_log(
                    LogLevel::Warning,
                    &format!("juju-reboot ({when}) asked for: the local model does not reboot its machine"),
                )?;
                Ok(String::new())
            }
            "k8s-spec-set" | "pod-spec-set" | "k8s-raw-set" => {
                let (p, _) = self.parse(
                    req,
                    &[(&["file"], Kind::Value), (&["k8s-resources"], Kind::Value)],
                )?;
                no_args(&p)?;
                let spec = read_file(p.value("file").unwrap_or("-"), &req.stdin)?;
                let parsed: Value = yaml_serde::from_str(&spec)
                    .map_err(|e| Failure::Usage(format!("invalid spec: {e}")))?;
                if !parsed.is_object() {
                    return usage("invalid spec: not a mapping");
                }
                self.backend
                    .k8s_spec_set(tool, tool == "k8s-raw-set", &spec)?;
                Ok(String::new())
            }
            "k8s-spec-get" | "pod-spec-get" | "k8s-raw-get" => {
                let (p, _) = self.parse(req, &[])?;
                no_args(&p)?;
                let spec = self.backend.k8s_spec_get(tool == "k8s-raw-get")?;
                Ok(spec
                    .map(|s| if s.ends_with('\n') { s } else { s + "\n" })
                    .unwrap_or_default())
            }
            "resource-get" => {
                let (p, _) = self.parse(req, &[])?;
                let [name] = p.positional.as_slice() else {
                    return usage("missing required resource name");
                };
                // The local model stores no resources.
                juju(
                    tool,
                    format!("could not download resource: resource {name:?} not found"),
                )
            }
            "payload-register" => {
                let (p, _) = self.parse(req, &[])?;
                let [kind, class, id, tags @ ..] = p.positional.as_slice() else {
                    return usage("missing required arguments");
                };
                self.backend.payload_register(kind, class, id, tags)?;
                Ok(String::new())
            }
            "payload-status-set" => {
                let (p, _) = self.parse(req, &[])?;
                let [class, id, status] = p.positional.as_slice() else {
                    return usage("expected <class> <id> <status>");
                };
                self.backend.payload_status_set(class, id, status)?;
                Ok(String::new())
            }
            "payload-unregister" => {
                let (p, _) = self.parse(req, &[])?;
                let [class, id] = p.positional.as_slice() else {
                    return usage("expected <class> <id>");
                };
                self.backend.payload_unregister(class, id)?;
                Ok(String::new())
            }
            other => usage(format!("unknown hook tool {other:?}")),
        }
    }

    /// The relation `-r` names, or the hook's own relation.
    fn relation(&mut self, tool: &str, value: Option<&str>) -> Result<Relation, Failure> {
        let raw = match value {
            Some(v) => v.to_string(),
            None => match self.context.event.relation() {
                Some(r) => return Ok(r.relation.clone()),
                None => return usage("no relation id specified"),
            },
        };
        let id: u64 = raw
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "invalid value {raw:?} for option -r: invalid relation id"
                ))
            })?;
        let endpoints: Vec<String> = match raw.rsplit_once(':') {
            Some((endpoint, _)) => vec![endpoint.to_string()],
            None => self.endpoints.to_vec(),
        };
        for endpoint in endpoints {
            if let Some(r) = self
                .backend
                .relation_ids(&endpoint)?
                .into_iter()
                .find(|r| r.id == id)
            {
                return Ok(r);
            }
        }
        if let Some(r) = self
            .context
            .event
            .relation()
            .filter(|r| r.relation.id == id)
        {
            return Ok(r.relation.clone());
        }
        juju(tool, format!("relation {id} not found"))
    }

    fn relation_ids(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT])?;
        let endpoint = match (p.positional.first(), self.context.event.relation()) {
            (Some(e), _) => e.clone(),
            (None, Some(r)) => r.relation.endpoint.clone(),
            (None, None) => return usage("no endpoint name specified"),
        };
        let ids: Vec<String> = self
            .backend
            .relation_ids(&endpoint)?
            .iter()
            .map(Relation::to_string)
            .collect();
        Ok(match f {
            Format::Smart => ids.iter().map(|i| format!("{i}\n")).collect(),
            _ => f.render(&json!(ids)),
        })
    }

    fn relation_list(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT, RELATION, (&["app"], Kind::Bool)])?;
        let relation = self.relation("relation-list", p.value("r"))?;
        if p.flag("app") {
            return Ok(f.render(&json!(self.backend.relation_remote_app(&relation)?)));
        }
        let units = self.backend.relation_list(&relation)?;
        Ok(match f {
            Format::Smart => units.iter().map(|u| format!("{u}\n")).collect(),
            _ => f.render(&json!(units)),
        })
    }

    fn relation_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT, RELATION, (&["app"], Kind::Bool)])?;
        let relation = self.relation("relation-get", p.value("r"))?;
        let key = p.positional.first().filter(|k| *k != "-").cloned();
        let name = match p.positional.get(1) {
            Some(n) => n.clone(),
            None => {
                let event = self
                    .context
                    .event
                    .relation()
                    .filter(|r| r.relation == relation);
                match (p.flag("app"), event) {
                    (true, Some(r)) if !r.remote_app.is_empty() => r.remote_app.clone(),
                    (true, _) => self.backend.relation_remote_app(&relation)?,
                    (false, Some(r)) if r.remote_unit.is_some() => {
                        r.remote_unit.clone().unwrap_or_default()
                    }
                    (false, _) => return usage("no unit id specified"),
                }
            }
        };
        let bag = if p.flag("app") {
            Bag::App(charm::relation::app_of(&name).to_string())
        } else {
            Bag::Unit(name)
        };
        let data = self.backend.relation_get(&relation, &bag)?;
        Ok(match key {
            Some(k) => f.render(&data.get(&k).map_or(Value::Null, |v| json!(v))),
            None => f.render(&json!(data)),
        })
    }

    fn relation_set(&mut self, req: &ToolRequest) -> Outcome {
        let (p, _) = self.parse(
            req,
            &[
                RELATION,
                (&["app"], Kind::Bool),
                (&["file"], Kind::Value),
                FORMAT,
            ],
        )?;
        let relation = self.relation("relation-set", p.value("r"))?;
        let mut changes = Databag::new();
        if let Some(file) = p.value("file") {
            let text = if file == "-" {
                String::from_utf8_lossy(&req.stdin).into_owned()
            } else {
                std::fs::read_to_string(file)
                    .map_err(|e| Failure::Usage(format!("cannot read {file}: {e}")))?
            };
            changes.extend(string_map(&text).map_err(Failure::Usage)?);
        }
        for kv in &p.positional {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Failure::Usage(format!("expected \"key=value\", got {kv:?}")))?;
            changes.insert(k.to_string(), v.to_string());
        }
        self.backend
            .relation_set(&relation, p.flag("app"), &changes)?;
        Ok(String::new())
    }

    fn config_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT, (&["a", "all"], Kind::Bool)])?;
        let config = self.backend.config_get()?;
        Ok(match p.positional.first() {
            Some(k) => f.render(config.get(k).unwrap_or(&Value::Null)),
            None => f.render(&Value::Object(config)),
        })
    }

    fn status_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(
            req,
            &[
                FORMAT,
                (&["include-data"], Kind::Bool),
                (&["application"], Kind::Bool),
            ],
        )?;
        let info = self.backend.status_get(p.flag("application"))?;
        let one =
            |s: &Status| json!({"status": s.name(), "message": s.message(), "status-data": {}});
        if !p.flag("include-data") && !p.flag("application") {
            return Ok(f.render(&json!(info.status.name())));
        }
        if p.flag("application") {
            let mut app = one(&info.status);
            let units: Map<String, Value> = info
                .units
                .iter()
                .map(|(u, s)| (u.clone(), one(s)))
                .collect();
            app["units"] = Value::Object(units);
            return Ok(f.render(&json!({"application-status": app})));
        }
        Ok(f.render(&one(&info.status)))
    }

    fn status_set(&mut self, req: &ToolRequest) -> Outcome {
        let (p, _) = self.parse(req, &[(&["application"], Kind::Bool)])?;
        let Some(name) = p.positional.first() else {
            return usage("invalid args, require <status> [message] [data]");
        };
        let message = p.positional[1..].join(" ");
        let status = Status::from_parts(name, message)
            .filter(Status::settable)
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "invalid status {name:?}, expected one of [maintenance blocked waiting active]"
                ))
            })?;
        self.backend.status_set(p.flag("application"), &status)?;
        Ok(String::new())
    }

    fn juju_log(&mut self, req: &ToolRequest) -> Outcome {
        let (p, _) = self.parse(
            req,
            &[
                (&["l", "log-level"], Kind::Value),
                (&["debug"], Kind::Bool),
                FORMAT,
            ],
        )?;
        let level = match p.value("l").map(str::to_ascii_uppercase).as_deref() {
            _ if p.flag("debug") => LogLevel::Debug,
            Some("DEBUG" | "TRACE") => LogLevel::Debug,
            Some("WARNING" | "WARN") => LogLevel::Warning,
            Some("ERROR") => LogLevel::Error,
            Some("CRITICAL") => LogLevel::Critical,
            _ => LogLevel::Info,
        };
        self.backend.juju_log(level, &p.positional.join(" "))?;
        Ok(String::new())
    }

    fn port(&mut self, req: &ToolRequest) -> Outcome {
        let (p, _) = self.parse(req, &[(&["endpoints"], Kind::Value), FORMAT])?;
        let raw = p
            .positional
            .first()
            .ok_or_else(|| Failure::Usage("no port or range specified".into()))?;
        let spec = if raw.contains('/') || raw == "icmp" {
            raw.clone()
        } else {
            format!("{raw}/tcp")
        };
        let port = Port::parse(&spec)
            .ok_or_else(|| Failure::Usage(format!("invalid port or range {raw:?}")))?;
        if req.tool == "open-port" {
            self.backend.open_port(&port)?;
        } else {
            self.backend.close_port(&port)?;
        }
        Ok(String::new())
    }

    fn network_get(&mut self, req: &ToolRequest) -> Outcome {
        let spec: &[Spec] = &[
            FORMAT,
            RELATION,
            (&["primary-address"], Kind::Bool),
            (&["bind-address"], Kind::Bool),
            (&["ingress-address"], Kind::Bool),
            (&["egress-subnets"], Kind::Bool),
        ];
        let (p, f) = self.parse(req, spec)?;
        let binding = p
            .positional
            .first()
            .ok_or_else(|| Failure::Usage("no arguments specified".into()))?;
        let relation = match p.value("r") {
            Some(r) => Some(
                r.rsplit(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| Failure::Usage(format!("invalid relation id {r:?}")))?,
            ),
            None => None,
        };
        let network = self.backend.network_get(binding, relation)?;
        let first_bind = network
            .bind_addresses
            .first()
            .and_then(|b| b.addresses.first())
            .map(|a| a.value.clone());
        let value = if p.flag("primary-address") || p.flag("bind-address") {
            json!(first_bind)
        } else if p.flag("ingress-address") {
            json!(network.ingress_addresses.first())
        } else if p.flag("egress-subnets") {
            json!(network.egress_subnets.join(","))
        } else {
            serde_json::to_value(&network).expect("serialisable")
        };
        Ok(f.render(&value))
    }

    fn action_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT])?;
        let params = Value::Object(self.backend.action_get()?);
        Ok(match p.positional.first() {
            Some(path) => f.render(
                path.split('.')
                    .try_fold(&params, |v, k| v.get(k))
                    .unwrap_or(&Value::Null),
            ),
            None => f.render(&params),
        })
    }

    fn leader_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT])?;
        let key = match p.positional.as_slice() {
            [] => None,
            [k] if k == "-" => None,
            [k] if k.contains('=') => return usage(format!("invalid key {k:?}")),
            [k] => Some(k.clone()),
            [_, rest @ ..] => return usage(format!("unrecognized args: {rest:?}")),
        };
        let settings = self.backend.leader_get()?;
        Ok(match key {
            Some(k) => f.render(&settings.get(&k).map_or(Value::Null, |v| json!(v))),
            None => f.render(&json!(settings)),
        })
    }

    fn state_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT, (&["strict"], Kind::Bool)])?;
        let state = self.backend.state_get()?;
        Ok(match p.positional.first().filter(|k| *k != "-") {
            Some(k) => match state.get(k) {
                Some(v) => f.render(&json!(v)),
                None if p.flag("strict") => {
                    return juju("state-get", format!("key {k:?} not found"))
                }
                None => f.render(&Value::Null),
            },
            None => f.render(&json!(state)),
        })
    }

    fn storage_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT, (&["s"], Kind::Value)])?;
        let id = match (p.value("s"), &self.context.event) {
            (Some(id), _) => id.to_string(),
            (
                None,
                Event::StorageAttached { storage, .. } | Event::StorageDetaching { storage, .. },
            ) => storage.clone(),
            (None, _) => return usage("no storage instance specified"),
        };
        let storage = self.backend.storage_get(&id)?;
        let values = json!({"kind": storage.kind, "location": storage.location});
        match p.positional.first() {
            None => Ok(f.render(&values)),
            Some(key) => match values.get(key) {
                Some(v) => Ok(f.render(v)),
                None => juju("storage-get", format!("invalid storage attribute {key:?}")),
            },
        }
    }

    fn meta(p: &Parsed) -> Result<SecretMeta, Failure> {
        let rotate = match p.value("rotate") {
            Some(r) => Some(
                Rotate::parse(r)
                    .ok_or_else(|| Failure::Usage(format!("invalid rotate policy {r:?}")))?,
            ),
            None => None,
        };
        Ok(SecretMeta {
            label: p.value("label").map(str::to_string),
            description: p.value("description").map(str::to_string),
            expire: p.value("expire").map(str::to_string),
            rotate,
        })
    }

    /// Reads `key=value`, `key#base64=...` and `key#file=path` arguments.
    fn content(args: &[String]) -> Result<SecretContent, Failure> {
        let mut content = SecretContent::new();
        for arg in args {
            let (k, v) = arg.split_once('=').ok_or_else(|| {
                Failure::Usage(format!("key value {arg:?} must be of the form key=value"))
            })?;
            if let Some(key) = k.strip_suffix("#file") {
                let v = std::fs::read_to_string(v)
                    .map_err(|e| Failure::Usage(format!("cannot read {v}: {e}")))?;
                content.insert(key, v);
            } else if let Some(key) = k.strip_suffix("#base64") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| Failure::Usage(format!("invalid base64 value for {key}")))?;
                content.insert(key, String::from_utf8_lossy(&bytes).into_owned());
            } else {
                content.insert(k, v);
            }
        }
        Ok(content)
    }

    const META: [Spec; 5] = [
        (&["label"], Kind::Value),
        (&["description"], Kind::Value),
        (&["expire"], Kind::Value),
        (&["rotate"], Kind::Value),
        (&["owner"], Kind::Value),
    ];

    fn secret_add(&mut self, req: &ToolRequest) -> Outcome {
        let (p, _) = self.parse(req, &Self::META)?;
        let owner = match p.value("owner") {
            None | Some("application") => SecretOwner::Application,
            Some("unit") => SecretOwner::Unit,
            Some(o) => return usage(format!("invalid owner {o:?}")),
        };
        let content = Self::content(&p.positional)?;
        if content.is_empty() {
            return usage("missing secret value");
        }
        let id = self.backend.secret_add(&content, owner, &Self::meta(&p)?)?;
        Ok(format!("{id}\n"))
    }

    fn secret_ref(&self, tool: &str, p: &Parsed) -> Result<SecretRef, Failure> {
        match (p.positional.first(), p.value("label")) {
            (Some(id), label) => Ok(SecretRef::Id(
                secret_id(tool, Some(id))?,
                label.map(str::to_string),
            )),
            (None, Some(label)) => Ok(SecretRef::Label(label.to_string())),
            (None, None) => usage("require either a secret URI or label"),
        }
    }

    fn secret_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(
            req,
            &[
                FORMAT,
                (&["label"], Kind::Value),
                (&["refresh"], Kind::Bool),
                (&["peek"], Kind::Bool),
            ],
        )?;
        let revision = match (p.flag("refresh"), p.flag("peek")) {
            (true, true) => return usage("specify one of --peek or --refresh but not both"),
            (true, false) => Revision::Refresh,
            (false, true) => Revision::Peek,
            (false, false) => Revision::Tracked,
        };
        let secret = self.secret_ref("secret-get", &p)?;
        let content = self.backend.secret_get(&secret, revision)?;
        let map: Map<String, Value> = content.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        Ok(match p.positional.get(1) {
            Some(key) => f.render(map.get(key).unwrap_or(&Value::Null)),
            None => f.render(&Value::Object(map)),
        })
    }

    fn secret_info_get(&mut self, req: &ToolRequest) -> Outcome {
        let (p, f) = self.parse(req, &[FORMAT, (&["label"], Kind::Value)])?;
        let secret = self.secret_ref("secret-info-get", &p)?;
        let info = self.backend.secret_info_get(&secret)?;
        let xid = info
            .id
            .as_ref()
            .map(|i| i.xid().to_string())
            .unwrap_or_default();
        let mut body = serde_json::to_value(&info).expect("serialisable");
        if let Value::Object(m) = &mut body {
            m.retain(|_, v| !v.is_null());
        }
        Ok(f.render(&json!({ xid: body })))
    }

    fn secret_set(&mut self, req: &ToolRequest) -> Outcome {
        let (p, _) = self.parse(req, &Self::META)?;
        let id = secret_id("secret-set", p.positional.first())?;
        let content = Self::content(&p.positional[1..])?;
        let content = (!content.is_empty()).then_some(content);
        self.backend
            .secret_set(&id, content.as_ref(), &Self::meta(&p)?)?;
        Ok(String::new())
    }

    fn secret_grant(&mut self, req: &ToolRequest) -> Outcome {
        let (p, _) = self.parse(req, &[RELATION, (&["unit"], Kind::Value)])?;
        let id = secret_id(&req.tool, p.positional.first())?;
        let raw = p
            .value("r")
            .ok_or_else(|| Failure::Usage("missing relation".into()))?;
        let relation = raw
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Failure::Usage(format!("invalid relation id {raw:?}")))?;
        if req.tool == "secret-grant" {
            self.backend.secret_grant(&id, relation, p.value("unit"))?;
        } else {
            self.backend.secret_revoke(&id, relation, p.value("unit"))?;
        }
        Ok(String::new())
    }
}

/// A list as Juju's formats print it: one item a line in `smart`.
fn lines_or(f: Format, items: &[String]) -> String {
    match f {
        Format::Smart => items.iter().map(|i| format!("{i}\n")).collect(),
        _ => f.render(&json!(items)),
    }
}

/// Fails on arguments a tool takes none of.
fn no_args(p: &Parsed) -> Result<(), Failure> {
    if p.positional.is_empty() {
        Ok(())
    } else {
        usage(format!("unrecognized args: {:?}", p.positional))
    }
}

/// A `--file` argument's text: the file, or stdin for `-`.
fn read_file(file: &str, stdin: &[u8]) -> Result<String, Failure> {
    if file == "-" {
        Ok(String::from_utf8_lossy(stdin).into_owned())
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| Failure::Usage(format!("cannot read {file}: {e}")))
    }
}

/// `key=value` arguments, as Juju reads them (each key once).
fn key_values(args: &[String]) -> Result<Databag, Failure> {
    let mut out = Databag::new();
    for kv in args {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("expected \"key=value\", got {kv:?}")))?;
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return usage(format!("key {k:?} specified more than once"));
        }
    }
    Ok(out)
}

fn secret_id(tool: &str, raw: Option<&String>) -> Result<SecretId, Failure> {
    let raw = raw.ok_or_else(|| Failure::Usage("missing secret URI".into()))?;
    SecretId::parse(raw).or_else(|_| juju(tool, format!("secret {raw:?} not found")))
}

/// Reads a YAML (or JSON) mapping of strings, as Juju reads `--file`. Scalars
/// become strings; null deletes the key (an empty value).
fn string_map(text: &str) -> Result<Databag, String> {
    if text.trim().is_empty() {
        return Ok(Databag::new());
    }
    let value: Value = yaml_serde::from_str(text).map_err(|e| format!("invalid settings: {e}"))?;
    let Value::Object(map) = value else {
        return Err("settings must be a mapping".into());
    };
    map.into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::Null => String::new(),
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                // Named by its kind: the value itself may be a secret.
                Value::Array(_) => {
                    return Err(format!("value of {k:?} must be a string, not a list"))
                }
                Value::Object(_) => {
                    return Err(format!("value of {k:?} must be a string, not a mapping"))
                }
            };
            Ok((k, s))
        })
        .collect()
}
