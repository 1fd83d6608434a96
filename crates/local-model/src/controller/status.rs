//! What `juju status` (table and JSON), `juju show-unit`, `juju config` and
//! `juju debug-log` show of the model.

use super::table::Table;
use super::{Controller, ControllerError};
use crate::agent::HookRun;
use crate::model::{Application, Life};
use charm::metadata::OptionType;
use charm::{Event, Status};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// Juju's order of severity, for an application status derived from its units.
fn severity(s: &Status) -> u8 {
    match s {
        Status::Error(_) => 6,
        Status::Blocked(_) => 5,
        Status::Maintenance(_) => 4,
        Status::Waiting(_) => 3,
        Status::Active(_) => 2,
        Status::Unknown(_) => 1,
    }
}

/// The application's status: the leader's, or if it never set one, its most
/// severe unit's (as Juju derives it).
pub fn app_status(app: &Application) -> Status {
    if !matches!(app.status, Status::Unknown(_)) {
        return app.status.clone();
    }
    app.units
        .values()
        .map(|u| u.status.clone())
        .max_by_key(severity)
        .unwrap_or_default()
}

fn status_info(s: &Status) -> Value {
    let mut v = json!({"current": s.name()});
    if !s.message().is_empty() {
        v["message"] = json!(s.message());
    }
    v
}

fn charm_url(app: &Application) -> String {
    format!("local:{}-0", app.files.meta.name)
}

impl Controller {
    /// The model as `juju status` prints it.
    pub fn status(&self) -> String {
        self.status_table(false)
    }

    /// The agent's state for a unit: `executing` while it runs something.
    fn agent_status(&self, unit: &str) -> (&'static str, String) {
        match self.running.get(unit) {
            Some(what) => ("executing", what.clone()),
            None => ("idle", String::new()),
        }
    }

    /// `juju status`, with the integrations section when `relations` is set,
    /// laid out as Juju 3.6 lays it out for a Kubernetes model.
    pub fn status_table(&self, relations: bool) -> String {
        let mut header = Table::new(
            &[
                "Model",
                "Controller",
                "Cloud/Region",
                "Version",
                "SLA",
                "Timestamp",
            ],
            &[],
        );
        header.row(vec![
            self.model.name.clone(),
            "local".into(),
            "local/localhost".into(),
            self.model.juju_version.clone(),
            "unsupported".into(),
            format!("{}Z", crate::clock::format_clock(self.model.now)),
        ]);
        let mut s = header.render();
        if self.model.applications.is_empty() {
            let _ = writeln!(s, "\nModel \"admin/{}\" is empty.", self.model.name);
            return s;
        }
        let mut apps = Table::new(
            &[
                "App", "Version", "Status", "Scale", "Charm", "Channel", "Rev", "Address",
                "Exposed", "Message",
            ],
            &[3, 6],
        );
        let mut units = Table::new(
            &["Unit", "Workload", "Agent", "Address", "Ports", "Message"],
            &[],
        );
        for (name, app) in &self.model.applications {
            let status = app_status(app);
            apps.row(vec![
                name.clone(),
                app.workload_version.clone(),
                status.name().into(),
                app.units.len().to_string(),
                app.files.meta.name.clone(),
                String::new(),
                "0".into(),
                String::new(),
                "no".into(),
                status.message().into(),
            ]);
            for (unit, u) in &app.units {
                let marker = if app.leader.as_deref() == Some(unit) {
                    "*"
                } else {
                    ""
                };
                let ports: Vec<String> = u.opened_ports.iter().map(|p| p.to_string()).collect();
                let (agent, doing) = self.agent_status(unit);
                // Juju puts what the agent is running before the message.
                let message = match doing.strip_prefix("running ") {
                    Some(what) => {
                        let what = what.strip_suffix(" hook").unwrap_or(what);
                        format!("({what}) {}", u.status.message())
                    }
                    None => u.status.message().to_string(),
                };
                units.row(vec![
                    format!("{unit}{marker}"),
                    u.status.name().into(),
                    agent.into(),
                    u.address.clone(),
                    ports.join(","),
                    message,
                ]);
            }
        }
        s.push('\n');
        s.push_str(&apps.render());
        s.push('\n');
        s.push_str(&units.render());
        if relations && !self.model.relations.is_empty() {
            let mut table = Table::new(
                &[
                    "Integration provider",
                    "Requirer",
                    "Interface",
                    "Type",
                    "Message",
                ],
                &[],
            );
            for r in &self.model.relations {
                let name = |e: &crate::model::End| format!("{}:{}", e.app, e.endpoint);
                let iface = r
                    .ends
                    .first()
                    .and_then(|e| self.model.applications.get(&e.app))
                    .and_then(|a| a.files.meta.interface(&r.ends[0].endpoint))
                    .unwrap_or("");
                let (provider, requirer, kind) = match r.ends.as_slice() {
                    [p] => (name(p), name(p), "peer"),
                    [a, b] => {
                        let a_provides = self
                            .model
                            .applications
                            .get(&a.app)
                            .is_some_and(|x| x.files.meta.provides.contains_key(&a.endpoint));
                        if a_provides {
                            (name(a), name(b), "regular")
                        } else {
                            (name(b), name(a), "regular")
                        }
                    }
                    _ => continue,
                };
                let message = if r.dying { "removing" } else { "" };
                table.row(vec![
                    provider,
                    requirer,
                    iface.into(),
                    kind.into(),
                    message.into(),
                ]);
            }
            s.push('\n');
            s.push_str(&table.render());
        }
        s
    }

    /// `juju status --format json`.
    pub fn status_json(&self) -> Value {
        let mut apps = Map::new();
        for (name, app) in &self.model.applications {
            let mut relations: Map<String, Value> = Map::new();
            for r in self.model.relations_of(name) {
                let end = r.end_of(name).expect("relations_of");
                let remote = r.remote_app(name).unwrap_or(name);
                let list = relations
                    .entry(end.endpoint.clone())
                    .or_insert_with(|| json!([]));
                if let Value::Array(items) = list {
                    items.push(json!({
                        "related-application": remote,
                        "interface": app.files.meta.interface(&end.endpoint).unwrap_or(""),
                        "scope": "global",
                    }));
                }
            }
            let mut units = Map::new();
            for (unit, u) in &app.units {
                let (agent, message) = self.agent_status(unit);
                let mut juju_status = json!({"current": agent, "version": self.model.juju_version});
                if !message.is_empty() {
                    juju_status["message"] = json!(message);
                }
                let mut entry = json!({
                    "workload-status": status_info(&u.status),
                    "juju-status": juju_status,
                    "leader": app.leader.as_deref() == Some(unit),
                    "address": u.address,
                    "provider-id": unit.replace('/', "-"),
                });
                if !u.opened_ports.is_empty() {
                    let ports: Vec<String> = u.opened_ports.iter().map(|p| p.to_string()).collect();
                    entry["open-ports"] = json!(ports);
                }
                if u.life == Life::Dying {
                    entry["life"] = json!("dying");
                }
                units.insert(unit.clone(), entry);
            }
            let mut bindings = Map::new();
            bindings.insert(String::new(), json!("alpha"));
            let meta = &app.files.meta;
            for ep in meta
                .provides
                .keys()
                .chain(meta.requires.keys())
                .chain(meta.peers.keys())
            {
                bindings.insert(ep.clone(), json!("alpha"));
            }
            let mut entry = json!({
                "charm": charm_url(app),
                "charm-origin": "local",
                "charm-name": app.files.meta.name,
                "charm-rev": 0,
                "exposed": false,
                "base": {"name": "ubuntu", "channel": "22.04"},
                "scale": app.units.len(),
                "application-status": status_info(&app_status(app)),
                "relations": relations,
                "units": units,
                "endpoint-bindings": bindings,
            });
            if !app.workload_version.is_empty() {
                entry["version"] = json!(app.workload_version);
            }
            if app.dying {
                entry["life"] = json!("dying");
            }
            apps.insert(name.clone(), entry);
        }
        json!({
            "model": {
                "name": self.model.name,
                "type": "caas",
                "controller": "local",
                "cloud": "local",
                "region": "localhost",
                "version": self.model.juju_version,
                "model-status": {"current": "available"},
                "sla": "unsupported",
            },
            "machines": {},
            "applications": apps,
            "controller": {"timestamp": format!("{}Z", crate::clock::format_clock(self.model.now))},
        })
    }

    /// `juju show-unit <unit> --format json`.
    pub fn show_unit(&self, unit: &str) -> Result<Value, ControllerError> {
        let u = self.unit(unit)?;
        let app_name = charm::relation::app_of(unit);
        let app = &self.model.applications[app_name];
        let mut info = Vec::new();
        let mut relations: Vec<_> = self.model.relations_of(app_name).collect();
        relations.sort_by_key(|r| r.id);
        for r in relations {
            let end = r.end_of(app_name).expect("relations_of");
            let remote = r.remote_app(app_name).unwrap_or(app_name);
            let related_endpoint = r
                .ends
                .iter()
                .find(|e| e.app == remote)
                .map_or(end.endpoint.as_str(), |e| e.endpoint.as_str());
            let bag = |owner: &str, app_bag: bool| {
                let bags = if app_bag { &r.app_bags } else { &r.unit_bags };
                json!(bags.get(owner).map(|b| b.data.clone()).unwrap_or_default())
            };
            let mut entry = json!({
                "relation-id": r.id,
                "endpoint": end.endpoint,
                "related-endpoint": related_endpoint,
                "application-data": bag(remote, true),
                "local-unit": {"in-scope": r.scope.contains(unit), "data": bag(unit, false)},
            });
            let related: Map<String, Value> = r
                .scope
                .iter()
                .filter(|m| charm::relation::app_of(m) == remote && m.as_str() != unit)
                .map(|m| (m.clone(), json!({"in-scope": true, "data": bag(m, false)})))
                .collect();
            if !related.is_empty() {
                entry["related-units"] = Value::Object(related);
            }
            info.push(entry);
        }
        let ports: Vec<String> = u.opened_ports.iter().map(|p| p.to_string()).collect();
        let mut body = json!({
            "opened-ports": ports,
            "charm": charm_url(app),
            "leader": app.leader.as_deref() == Some(unit),
            "life": if u.life == Life::Dying { "dying" } else { "alive" },
            "relation-info": info,
            "provider-id": unit.replace('/', "-"),
            "address": u.address,
        });
        if !app.workload_version.is_empty() {
            body["workload-version"] = json!(app.workload_version);
        }
        Ok(json!({ unit: body }))
    }

    /// `juju config <app> --format json`: each option with its type, default,
    /// source and value, and the application's own settings (trust).
    pub fn config_json(&self, app: &str) -> Result<Value, ControllerError> {
        let a = self.app(app)?;
        let mut settings = Map::new();
        for (name, option) in &a.files.config.options {
            let kind = match option.kind {
                OptionType::String => "string",
                OptionType::Int => "int",
                OptionType::Float => "float",
                OptionType::Boolean => "boolean",
                OptionType::Secret => "secret",
            };
            let mut entry = json!({"description": option.description, "type": kind});
            if let Some(d) = &option.default {
                entry["default"] = d.clone();
            }
            match (a.config.get(name), &option.default) {
                (Some(v), _) => {
                    entry["source"] = json!("user");
                    entry["value"] = v.clone();
                }
                (None, Some(d)) => {
                    entry["source"] = json!("default");
                    entry["value"] = d.clone();
                }
                (None, None) => entry["source"] = json!("unset"),
            }
            settings.insert(name.clone(), entry);
        }
        Ok(json!({
            "application": app,
            "charm": a.files.meta.name,
            "application-config": {
                "trust": {
                    "default": false,
                    "description": "Does this application have access to trusted credentials",
                    "source": if a.trust { "user" } else { "default" },
                    "type": "bool",
                    "value": a.trust,
                },
            },
            "settings": settings,
        }))
    }
}

/// How Juju 3.6's uniter names the script it ran a hook with.
const VIA: &str = "(via hook dispatching script: dispatch)";

/// The start of a debug-log line: the unit's tag and the time.
fn prefix(unit: &str, now: u64) -> String {
    format!(
        "unit-{}: {}",
        unit.replace('/', "-"),
        crate::clock::format_clock(now)
    )
}

/// The debug-log lines for what ran on a unit, the way Juju 3.6 writes them:
/// its `juju-log` lines (after `<endpoint>:<id>: ` in a relation hook), its
/// stdout at DEBUG and stderr at WARNING (logger `unit.<unit>.<hook>`), and
/// how it ended (`juju.worker.uniter.operation`).
pub fn log_lines(unit: &str, run: &HookRun, now: u64) -> Vec<String> {
    let prefix = prefix(unit, now);
    let source = match &run.event {
        Event::Action(a) => a.name.clone(),
        Event::Other { .. } => "juju-exec".into(),
        e => e.hook_name(),
    };
    let relation = run
        .event
        .relation()
        .map(|r| format!("{}:{}: ", r.relation.endpoint, r.relation.id))
        .unwrap_or_default();
    let mut lines: Vec<String> = run
        .logs
        .iter()
        .flat_map(|(level, message)| {
            message
                .lines()
                .map(|l| {
                    format!(
                        "{prefix} {} unit.{unit}.juju-log {relation}{l}",
                        level.as_str()
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let stdout = run.output.strip_suffix(&run.stderr).unwrap_or(&run.output);
    for (level, text) in [("DEBUG", stdout), ("WARNING", &run.stderr)] {
        lines.extend(
            text.lines()
                .map(|l| format!("{prefix} {level} unit.{unit}.{source} {l}")),
        );
    }
    let (info, error) = (
        format!("{prefix} INFO juju.worker.uniter.operation"),
        format!("{prefix} ERROR juju.worker.uniter.operation"),
    );
    lines.push(match (&run.event, run.ok) {
        (Event::Action(a), true) => format!("{info} ran {:?} action", a.name),
        (Event::Action(a), false) => format!("{error} {:?} action failed", a.name),
        (Event::Other { .. }, true) => format!("{info} ran juju-exec command"),
        (Event::Other { .. }, false) => format!("{error} juju-exec command failed"),
        (e, true) => format!("{info} ran {:?} hook {VIA}", e.hook_name()),
        (e, false) => {
            let cause = if run.code >= 0 {
                format!("exit status {}", run.code)
            } else {
                "signal: killed".to_string()
            };
            format!("{error} hook {:?} {VIA} failed: {cause}", e.hook_name())
        }
    });
    lines
}

/// The line Juju's uniter logs while a unit waits in error, naming the hook's
/// kind (`relation-changed`, not `db-relation-changed`).
pub fn awaiting_resolution(unit: &str, event: &Event, now: u64) -> String {
    let name = event.hook_name();
    let kind = match event {
        Event::RelationCreated(r)
        | Event::RelationJoined(r)
        | Event::RelationChanged(r)
        | Event::RelationDeparted(r)
        | Event::RelationBroken(r) => name.strip_prefix(&format!("{}-", r.relation.endpoint)),
        Event::PebbleReady { container }
        | Event::PebbleCustomNotice { container, .. }
        | Event::PebbleCheckFailed { container, .. }
        | Event::PebbleCheckRecovered { container, .. } => {
            name.strip_prefix(&format!("{container}-"))
        }
        _ => None,
    };
    format!(
        "{} INFO juju.worker.uniter awaiting error resolution for {:?} hook",
        prefix(unit, now),
        kind.unwrap_or(&name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use charm::relation::Relation;
    use charm::{LogLevel, RelationEvent};

    const NOON: u64 = 12 * 3600;

    fn run(event: Event, code: i32, stdout: &str, stderr: &str) -> HookRun {
        HookRun {
            event,
            ok: code == 0,
            output: format!("{stdout}{stderr}"),
            stderr: stderr.into(),
            code,
            logs: vec![(LogLevel::Info, "hello".into())],
        }
    }

    #[test]
    fn a_hook_that_ran_is_logged_as_juju_does() {
        let lines = log_lines("web/0", &run(Event::ConfigChanged, 0, "out\n", ""), NOON);
        assert_eq!(
            lines,
            [
                "unit-web-0: 12:00:00 INFO unit.web/0.juju-log hello",
                "unit-web-0: 12:00:00 DEBUG unit.web/0.config-changed out",
                "unit-web-0: 12:00:00 INFO juju.worker.uniter.operation ran \"config-changed\" \
                 hook (via hook dispatching script: dispatch)",
            ]
        );
    }

    #[test]
    fn a_failed_relation_hook_names_its_relation_exit_status_and_kind() {
        let event = Event::RelationChanged(RelationEvent {
            relation: Relation::new("db", 7),
            remote_app: "pg".into(),
            remote_unit: Some("pg/0".into()),
            departing_unit: None,
        });
        let lines = log_lines("web/0", &run(event.clone(), 1, "", "Traceback\n"), NOON);
        assert_eq!(
            lines,
            [
                "unit-web-0: 12:00:00 INFO unit.web/0.juju-log db:7: hello",
                "unit-web-0: 12:00:00 WARNING unit.web/0.db-relation-changed Traceback",
                "unit-web-0: 12:00:00 ERROR juju.worker.uniter.operation hook \
                 \"db-relation-changed\" (via hook dispatching script: dispatch) failed: \
                 exit status 1",
            ]
        );
        assert_eq!(
            awaiting_resolution("web/0", &event, NOON),
            "unit-web-0: 12:00:00 INFO juju.worker.uniter awaiting error resolution for \
             \"relation-changed\" hook"
        );
        assert_eq!(
            awaiting_resolution("web/0", &Event::Start, NOON),
            "unit-web-0: 12:00:00 INFO juju.worker.uniter awaiting error resolution for \
             \"start\" hook"
        );
    }
}
