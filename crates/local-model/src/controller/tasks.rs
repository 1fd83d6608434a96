//! Tasks: actions (`juju run`) and commands (`juju exec`) run on a unit in a
//! hook context. An action's parameters are checked against `actions.yaml`
//! (types, `required`, `additionalProperties`, defaults applied) before it runs;
//! the result has the shape `juju run --format json` prints.

use super::{io, Controller, ControllerError};
use crate::agent::{Agent, Executed, Prepared, Work};
use crate::model::Model;
use charm::backend::JsonMap;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;

/// Why a task could not start.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("action {action:?} not defined on unit {unit:?}")]
    NoAction { action: String, unit: String },
    #[error("validation failed: {0}")]
    Params(String),
    #[error("cannot read {path}: {message}")]
    Actions { path: String, message: String },
}

/// Whether a task is an action or a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    Action,
    Exec,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: String,
    pub unit: String,
    pub kind: TaskKind,
    /// `completed` or `failed`.
    pub status: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// What `action-set` set (dotted keys nested).
    pub results: Map<String, Value>,
    /// The `action-fail` message, or why the action failed.
    pub message: String,
    pub log: Vec<String>,
}

impl Task {
    /// Whether it completed with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.status == "completed" && self.code == 0
    }

    /// One unit's entry in `juju run --format json` / `juju exec --format json`.
    pub fn to_json(&self) -> Value {
        let mut results = self.results.clone();
        results.insert("return-code".into(), json!(self.code));
        if !self.stdout.is_empty() || self.kind == TaskKind::Exec {
            results.insert("stdout".into(), json!(self.stdout));
        }
        if !self.stderr.is_empty() {
            results.insert("stderr".into(), json!(self.stderr));
        }
        let mut v = json!({
            "id": self.id,
            "results": results,
            "status": self.status,
            "unit": self.unit,
        });
        if !self.message.is_empty() {
            v["message"] = json!(self.message);
        }
        if !self.log.is_empty() {
            v["log"] = json!(self.log);
        }
        v
    }
}

/// A task ready to run without the controller ([`PreparedTask::execute`]),
/// then handed back to [`Controller::finish_task`].
pub struct PreparedTask {
    id: String,
    prepared: Prepared,
    agent: Arc<Agent>,
}

impl PreparedTask {
    /// The unit it runs on.
    pub fn unit(&self) -> &str {
        &self.prepared.unit
    }

    /// Runs its process.
    pub fn execute(&self) -> std::io::Result<Executed> {
        self.agent.execute(&self.prepared)
    }
}

/// Checks `params` against one action's declaration and applies its defaults.
fn validate(spec: &Value, params: &mut JsonMap) -> Result<(), String> {
    let declared = spec.get("params").and_then(Value::as_object);
    let empty = Map::new();
    let declared = declared.unwrap_or(&empty);
    let given = Value::Object(params.clone());
    for (name, schema) in declared {
        if let (false, Some(default)) = (params.contains_key(name), schema.get("default")) {
            params.insert(name.clone(), default.clone());
        }
    }
    for required in spec
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !params.contains_key(required) {
            return Err(format!(
                "(root) : {required:?} property is missing and required, given {given}"
            ));
        }
    }
    let open = spec
        .get("additionalProperties")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (name, value) in params.iter() {
        let Some(schema) = declared.get(name) else {
            if open {
                continue;
            }
            return Err(format!(
                "(root) : additional property {name:?} is not allowed, given {given}"
            ));
        };
        let fits = match schema.get("type").and_then(Value::as_str) {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        if !fits {
            return Err(format!(
                "(root).{name} : must be of type {}, given {value}",
                schema["type"].as_str().unwrap_or("")
            ));
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                return Err(format!(
                    "(root).{name} : must be one of {}, given {value}",
                    Value::Array(allowed.clone())
                ));
            }
        }
    }
    Ok(())
}

/// `action-set` keys with dots (`a.b=c`) as nested maps.
fn nest(flat: &std::collections::BTreeMap<String, String>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in flat {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut map = &mut out;
        for p in parts {
            let entry = map
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().expect("an object");
        }
        map.insert(last.to_string(), json!(value));
    }
    out
}

impl Controller {
    /// `app/leader` as the leader's name; any other unit name as it is.
    pub fn unit_name(&self, unit: &str) -> Result<String, ControllerError> {
        let name = match unit.strip_suffix("/leader") {
            Some(app) => self
                .model
                .applications
                .get(app)
                .and_then(|a| a.leader.clone())
                .ok_or_else(|| ControllerError::NoUnit(unit.into()))?,
            None => unit.to_string(),
        };
        self.unit(&name)?;
        Ok(name)
    }

    fn new_task_id(&mut self) -> String {
        self.model.next_task += 1;
        self.model.next_task.to_string()
    }

    /// An action with checked parameters (defaults applied), ready to run.
    pub fn prepare_action(
        &mut self,
        unit: &str,
        action: &str,
        mut params: JsonMap,
    ) -> Result<PreparedTask, ControllerError> {
        let unit = self.unit_name(unit)?;
        let app = &self.model.applications[charm::relation::app_of(&unit)];
        let path = app.charm_dir.join("actions.yaml");
        let declared: Value = match std::fs::read_to_string(&path) {
            Ok(text) => yaml_serde::from_str(&text).map_err(|e| TaskError::Actions {
                path: path.display().to_string(),
                message: e.to_string(),
            })?,
            Err(_) => Value::Null,
        };
        let spec = declared.get(action).ok_or_else(|| TaskError::NoAction {
            action: action.into(),
            unit: unit.clone(),
        })?;
        validate(spec, &mut params).map_err(TaskError::Params)?;
        self.prepare_task(
            unit,
            format!("running action {action}"),
            |model, unit, id, charm_dir, env| {
                Agent::prepare_action(model, unit, id, action, params, charm_dir, env)
            },
        )
    }

    /// A command to run in a hook context on the unit, ready to run.
    pub fn prepare_exec(
        &mut self,
        unit: &str,
        command: &str,
    ) -> Result<PreparedTask, ControllerError> {
        let unit = self.unit_name(unit)?;
        self.prepare_task(
            unit,
            "running juju-exec".into(),
            |model, unit, _, charm_dir, env| {
                Agent::prepare_exec(model, unit, command, charm_dir, env)
            },
        )
    }

    /// A task on the unit, under a new id, prepared by `prepare` (given the
    /// model, the unit, the id, the unit's charm directory and environment);
    /// the unit is busy with `what` until [`Controller::finish_task`].
    fn prepare_task(
        &mut self,
        unit: String,
        what: String,
        prepare: impl FnOnce(&mut Model, &str, &str, &Path, &[(String, String)]) -> Option<Prepared>,
    ) -> Result<PreparedTask, ControllerError> {
        let id = self.new_task_id();
        let (charm_dir, env) = self
            .unit_env(&unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.clone()))?;
        let prepared = prepare(&mut self.model, &unit, &id, &charm_dir, &env)
            .ok_or_else(|| ControllerError::NoUnit(unit.clone()))?;
        self.set_running(&unit, Some(what));
        Ok(PreparedTask {
            id,
            prepared,
            agent: self.agent.clone(),
        })
    }

    /// Commits a task that exited 0, logs it and saves the model.
    pub fn finish_task(
        &mut self,
        task: PreparedTask,
        executed: std::io::Result<Executed>,
    ) -> Result<Task, ControllerError> {
        let unit = task.prepared.unit.clone();
        self.set_running(&unit, None);
        let kind = match task.prepared.work {
            Work::Exec(_) => TaskKind::Exec,
            _ => TaskKind::Action,
        };
        let executed = executed.map_err(io(format!("running a task on {unit}")))?;
        let run = Agent::finish(&mut self.model, task.prepared, &executed);
        self.attach_storage(&unit)?;
        self.snapshot_plans(&unit);
        crate::store::append_log(
            &self.root,
            &super::status::log_lines(&unit, &run, self.model.now),
        );
        self.save()?;
        let action = &executed.action;
        let (status, message) = match (kind, &action.failure, executed.code) {
            (TaskKind::Exec, _, _) => ("completed", String::new()),
            (_, Some(m), _) => ("failed", m.clone()),
            (_, None, 0) => ("completed", String::new()),
            (_, None, code) => ("failed", format!("exit status {code}")),
        };
        Ok(Task {
            id: task.id,
            unit,
            kind,
            status: status.into(),
            code: executed.code,
            stdout: executed.stdout.clone(),
            stderr: executed.stderr.clone(),
            results: nest(&action.results),
            message,
            log: action.logs.clone(),
        })
    }

    /// `juju run <unit> <action> k=v ...`: runs the action now.
    pub fn run_action(
        &mut self,
        unit: &str,
        action: &str,
        params: JsonMap,
    ) -> Result<Task, ControllerError> {
        let task = self.prepare_action(unit, action, params)?;
        let executed = task.execute();
        self.finish_task(task, executed)
    }

    /// `juju exec --unit <unit> -- <command>`: runs the command now.
    pub fn exec(&mut self, unit: &str, command: &str) -> Result<Task, ControllerError> {
        let task = self.prepare_exec(unit, command)?;
        let executed = task.execute();
        self.finish_task(task, executed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_defaulted() {
        let spec: Value = yaml_serde::from_str(
            "params:\n  name: {type: string, default: world}\n  n: {type: integer}\nrequired: [n]\n",
        )
        .unwrap();
        let mut p = JsonMap::new();
        p.insert("n".into(), json!(2));
        validate(&spec, &mut p).unwrap();
        assert_eq!(p["name"], "world");
        let mut missing = JsonMap::new();
        assert!(validate(&spec, &mut missing)
            .unwrap_err()
            .contains("\"n\" property is missing"));
        let mut wrong = JsonMap::new();
        wrong.insert("n".into(), json!("two"));
        assert!(validate(&spec, &mut wrong)
            .unwrap_err()
            .contains("must be of type integer"));
        let mut extra = p.clone();
        extra.insert("x".into(), json!(1));
        assert!(validate(&spec, &mut extra)
            .unwrap_err()
            .contains("additional property \"x\""));
    }

    #[test]
    fn dotted_results_nest() {
        let flat = [
            ("a.b".to_string(), "1".to_string()),
            ("c".into(), "2".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            Value::Object(nest(&flat)),
            json!({"a": {"b": "1"}, "c": "2"})
        );
    }
}
