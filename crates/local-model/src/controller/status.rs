//! What `juju status` (built as [`FullStatus`]), `juju show-unit`, `juju config`
//! and `juju debug-log` show of the model.

use super::formatted::{
    since, ApplicationStatus, Base, ControllerStatus, FullStatus, ModelStatus, RelatedApplication,
    RelationRow, StatusInfo, UnitStatus,
};
use super::{Controller, ControllerError};
use crate::agent::HookRun;
use crate::model::{Application, Life, RelationRecord, Since};
use charm::metadata::OptionType;
use charm::{Event, Status};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn charm_url(app: &Application) -> String {
    format!("local:{}-{}", app.files.meta.name, app.charm_revision)
}

/// The first base the charm's manifest names; `ubuntu@22.04` for a charm
/// directory without one.
fn base(app: &Application) -> Base {
    app.files.manifest.bases.first().map_or_else(
        || Base {
            name: "ubuntu".into(),
            channel: "22.04".into(),
        },
        |b| Base {
            name: b.name.clone(),
            channel: b.channel.clone(),
        },
    )
}

/// A status block with its `since` (the stamp when it matches, else now).
fn status_info(s: &Status, stamp: Option<&Since>, now: u64) -> StatusInfo {
    let at = stamp.filter(|st| st.status == *s).map_or(now, |st| st.at);
    StatusInfo {
        current: s.name().into(),
        message: s.message().into(),
        since: since(at),
        ..StatusInfo::default()
    }
}

/// What `juju show-unit` prints of one unit, fields in Juju's order.
#[derive(Debug, Serialize)]
pub struct UnitInfo {
    #[serde(rename = "workload-version", skip_serializing_if = "String::is_empty")]
    pub workload_version: String,
    #[serde(rename = "opened-ports")]
    pub opened_ports: Vec<String>,
    pub charm: String,
    pub leader: bool,
    pub life: String,
    #[serde(rename = "relation-info", skip_serializing_if = "Vec::is_empty")]
    pub relation_info: Vec<RelationInfo>,
    #[serde(rename = "provider-id")]
    pub provider_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
}

/// One relation of a unit in `juju show-unit`.
#[derive(Debug, Serialize)]
pub struct RelationInfo {
    #[serde(rename = "relation-id")]
    pub relation_id: u64,
    pub endpoint: String,
    #[serde(rename = "related-endpoint")]
    pub related_endpoint: String,
    #[serde(rename = "application-data")]
    pub application_data: BTreeMap<String, String>,
    #[serde(rename = "local-unit")]
    pub local_unit: UnitData,
    #[serde(rename = "related-units", skip_serializing_if = "BTreeMap::is_empty")]
    pub related_units: BTreeMap<String, UnitData>,
}

/// A unit's side of a relation: whether it is in scope, and its bag.
#[derive(Debug, Serialize)]
pub struct UnitData {
    #[serde(rename = "in-scope")]
    pub in_scope: bool,
    pub data: BTreeMap<String, String>,
}

/// What `juju show-unit` narrows its relations to.
#[derive(Debug, Default)]
pub struct ShowUnitFilter {
    /// Only relations on this endpoint (`--endpoint`).
    pub endpoint: Option<String>,
    /// Only this related unit's data (`--related-unit`).
    pub related_unit: Option<String>,
    /// Only the application data (`--app`).
    pub app_only: bool,
}

impl Controller {
    /// The model as `juju status` prints it.
    pub fn status(&self) -> String {
        self.status_table(false)
    }

    /// `juju status`, with the integrations section when `relations` is set,
    /// laid out as Juju 3.6 lays it out for a Kubernetes model.
    pub fn status_table(&self, relations: bool) -> String {
        self.full_status().tabular(relations)
    }

    /// `juju status --format json`, as a JSON value.
    pub fn status_json(&self) -> Value {
        serde_json::to_value(self.full_status()).unwrap_or_default()
    }

    /// The agent's state for a unit: `executing` while it runs something,
    /// with what it runs and since when.
    fn agent_status(&self, unit: &str, since_then: u64) -> StatusInfo {
        let (current, message) = match self.running.get(unit) {
            Some(what) => ("executing", what.clone()),
            None => ("idle", String::new()),
        };
        StatusInfo {
            current: current.into(),
            message,
            since: since(since_then),
            version: self.model.juju_version.clone(),
            life: String::new(),
        }
    }

    /// The model's status as Juju's `juju status` structures it.
    pub fn full_status(&self) -> FullStatus {
        let now = self.model.now;
        let mut applications = BTreeMap::new();
        for (name, app) in &self.model.applications {
            let mut relations: BTreeMap<String, Vec<RelatedApplication>> = BTreeMap::new();
            for r in self.model.relations_of(name) {
                let Some(end) = r.end_of(name) else { continue };
                relations
                    .entry(end.endpoint.clone())
                    .or_default()
                    .push(RelatedApplication {
                        related_application: r.remote_app(name).unwrap_or(name).into(),
                        interface: app
                            .files
                            .meta
                            .interface(&end.endpoint)
                            .unwrap_or_default()
                            .into(),
                        scope: "global".into(),
                    });
            }
            let mut units = BTreeMap::new();
            for (unit, u) in &app.units {
                let workload = status_info(&u.status, u.status_since.as_ref(), now);
                let agent_since = match u.agent_since {
                    0 => u.status_since.as_ref().map_or(now, |s| s.at),
                    at => at,
                };
                units.insert(
                    unit.clone(),
                    UnitStatus {
                        workload_status: workload,
                        juju_status: self.agent_status(unit, agent_since),
                        leader: app.leader.as_deref() == Some(unit),
                        address: u.address.clone(),
                        provider_id: unit.replace('/', "-"),
                        open_ports: u.opened_ports.iter().map(ToString::to_string).collect(),
                        ports: u.opened_ports.iter().cloned().collect(),
                    },
                );
            }
            let meta = &app.files.meta;
            let endpoint_bindings = std::iter::once(String::new())
                .chain(meta.provides.keys().cloned())
                .chain(meta.requires.keys().cloned())
                .chain(meta.peers.keys().cloned())
                .map(|ep| (ep, "alpha".to_string()))
                .collect();
            let mut application_status =
                status_info(&app.shown_status(), app.status_since.as_ref(), now);
            if app.dying {
                application_status.life = "dying".into();
            }
            applications.insert(
                name.clone(),
                ApplicationStatus {
                    charm: charm_url(app),
                    base: base(app),
                    charm_origin: "local".into(),
                    charm_name: meta.name.clone(),
                    charm_rev: u32::try_from(app.charm_revision).unwrap_or(u32::MAX),
                    scale: app.units.len(),
                    exposed: false,
                    life: if app.dying {
                        "dying".into()
                    } else {
                        String::new()
                    },
                    application_status,
                    relations,
                    units,
                    version: app.workload_version.clone(),
                    endpoint_bindings,
                },
            );
        }
        FullStatus {
            model: ModelStatus {
                name: self.model.name.clone(),
                kind: "caas".into(),
                controller: "local".into(),
                cloud: "local".into(),
                region: "localhost".into(),
                version: self.model.juju_version.clone(),
                model_status: StatusInfo {
                    current: "available".into(),
                    since: since(if self.model.created == 0 {
                        now
                    } else {
                        self.model.created
                    }),
                    ..StatusInfo::default()
                },
                sla: "unsupported".into(),
            },
            machines: BTreeMap::new(),
            applications,
            storage: BTreeMap::new(),
            controller: ControllerStatus {
                timestamp: format!("{}Z", crate::clock::format_clock(now)),
            },
            relations: self
                .model
                .relations
                .iter()
                .filter_map(|r| self.relation_row(r))
                .collect(),
        }
    }

    /// A relation as the table's integrations section shows it: the providing
    /// end first (a peer relation's one end twice).
    fn relation_row(&self, r: &RelationRecord) -> Option<RelationRow> {
        let name = |e: &crate::model::End| format!("{}:{}", e.app, e.endpoint);
        let first = r.ends.first()?;
        let interface = self
            .model
            .applications
            .get(&first.app)
            .and_then(|a| a.files.meta.interface(&first.endpoint))
            .unwrap_or_default()
            .to_string();
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
            _ => return None,
        };
        Some(RelationRow {
            provider,
            requirer,
            interface,
            kind: kind.into(),
            status: if r.dying {
                "broken".into()
            } else {
                String::new()
            },
        })
    }

    /// `juju show-unit <unit>`: the unit, its charm, leadership and each
    /// relation's data as Juju shows it (a relation with no data at all is left
    /// out unless `--endpoint` names it).
    pub fn show_unit(
        &self,
        unit: &str,
        filter: &ShowUnitFilter,
    ) -> Result<UnitInfo, ControllerError> {
        let u = self.unit(unit)?;
        let app_name = charm::relation::app_of(unit);
        let app = self.app(app_name)?;
        let mut info = Vec::new();
        let mut relations: Vec<_> = self.model.relations_of(app_name).collect();
        relations.sort_by_key(|r| r.id);
        for r in relations {
            let Some(end) = r.end_of(app_name) else {
                continue;
            };
            if filter.endpoint.as_ref().is_some_and(|e| *e != end.endpoint) {
                continue;
            }
            let remote = r.remote_app(app_name).unwrap_or(app_name);
            let related_endpoint = r
                .ends
                .iter()
                .find(|e| e.app == remote)
                .map_or(end.endpoint.as_str(), |e| e.endpoint.as_str());
            let bag = |owner: &str, app_bag: bool| -> BTreeMap<String, String> {
                let bags = if app_bag { &r.app_bags } else { &r.unit_bags };
                bags.get(owner)
                    .map(|b| b.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default()
            };
            let mut entry = RelationInfo {
                relation_id: r.id,
                endpoint: end.endpoint.clone(),
                related_endpoint: related_endpoint.into(),
                application_data: bag(remote, true),
                local_unit: UnitData {
                    in_scope: false,
                    data: BTreeMap::new(),
                },
                related_units: BTreeMap::new(),
            };
            if !filter.app_only {
                if filter.related_unit.is_none() {
                    entry.local_unit = UnitData {
                        in_scope: r.scope.contains(unit),
                        data: bag(unit, false),
                    };
                }
                entry.related_units = r
                    .scope
                    .iter()
                    .filter(|m| charm::relation::app_of(m) == remote && m.as_str() != unit)
                    .filter(|m| filter.related_unit.as_ref().is_none_or(|x| x == *m))
                    .map(|m| {
                        let data = UnitData {
                            in_scope: true,
                            data: bag(m, false),
                        };
                        (m.clone(), data)
                    })
                    .collect();
            }
            let named = filter.endpoint.as_deref() == Some(end.endpoint.as_str());
            if named
                || !entry.application_data.is_empty()
                || !entry.related_units.is_empty()
                || !entry.local_unit.data.is_empty()
            {
                info.push(entry);
            }
        }
        Ok(UnitInfo {
            workload_version: app.workload_version.clone(),
            opened_ports: u.opened_ports.iter().map(ToString::to_string).collect(),
            charm: charm_url(app),
            leader: app.leader.as_deref() == Some(unit),
            life: if u.life == Life::Dying {
                "dying"
            } else {
                "alive"
            }
            .into(),
            relation_info: info,
            provider_id: unit.replace('/', "-"),
            address: u.address.clone(),
        })
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
            cost: Default::default(),
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
