//! `juju status` as Juju 3.6 prints it for a Kubernetes model: the structure
//! its `--format json` and `--format yaml` serialize (fields in Juju's order,
//! empty ones left out as Juju leaves them out), and the table drawn from it.

use super::table::Table;
use charm::backend::Port;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The whole status.
#[derive(Debug, Serialize)]
pub struct FullStatus {
    pub model: ModelStatus,
    pub machines: BTreeMap<String, ()>,
    pub applications: BTreeMap<String, ApplicationStatus>,
    pub storage: BTreeMap<String, ()>,
    pub controller: ControllerStatus,
    /// The table's integrations section (not in JSON or YAML, as in Juju).
    #[serde(skip)]
    pub relations: Vec<RelationRow>,
}

/// The `model` block.
#[derive(Debug, Serialize)]
pub struct ModelStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub controller: String,
    pub cloud: String,
    pub region: String,
    pub version: String,
    #[serde(rename = "model-status")]
    pub model_status: StatusInfo,
    pub sla: String,
}

/// The `controller` block: the time the status was taken.
#[derive(Debug, Serialize)]
pub struct ControllerStatus {
    pub timestamp: String,
}

/// A status block (`application-status`, `workload-status`, `juju-status`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatusInfo {
    pub current: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub since: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub life: String,
}

/// The OS base a charm runs on.
#[derive(Debug, Serialize)]
pub struct Base {
    pub name: String,
    pub channel: String,
}

/// One application.
#[derive(Debug, Serialize)]
pub struct ApplicationStatus {
    pub charm: String,
    pub base: Base,
    #[serde(rename = "charm-origin")]
    pub charm_origin: String,
    #[serde(rename = "charm-name")]
    pub charm_name: String,
    #[serde(rename = "charm-rev")]
    pub charm_rev: u32,
    pub scale: usize,
    pub exposed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub life: String,
    #[serde(rename = "application-status")]
    pub application_status: StatusInfo,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub relations: BTreeMap<String, Vec<RelatedApplication>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub units: BTreeMap<String, UnitStatus>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(rename = "endpoint-bindings")]
    pub endpoint_bindings: BTreeMap<String, String>,
}

/// One relation of an application's endpoint.
#[derive(Debug, Serialize)]
pub struct RelatedApplication {
    #[serde(rename = "related-application")]
    pub related_application: String,
    pub interface: String,
    pub scope: String,
}

/// One unit.
#[derive(Debug, Serialize)]
pub struct UnitStatus {
    #[serde(rename = "workload-status")]
    pub workload_status: StatusInfo,
    #[serde(rename = "juju-status")]
    pub juju_status: StatusInfo,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leader: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(rename = "provider-id")]
    pub provider_id: String,
    #[serde(rename = "open-ports", skip_serializing_if = "Vec::is_empty")]
    pub open_ports: Vec<String>,
    /// The ports as opened, for the table's grouping.
    #[serde(skip)]
    pub ports: Vec<Port>,
}

/// A row of the table's integrations section.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RelationRow {
    pub provider: String,
    pub requirer: String,
    pub interface: String,
    pub kind: String,
    /// The relation's status when it is not `joined`.
    pub status: String,
}

/// Juju's time of a status change, `24 Feb 2025 12:02:57Z` (UTC).
pub fn since(at: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
    let stamp = pebble_server::timefmt::rfc3339(time);
    let field = |from: usize, to: usize| stamp.get(from..to).unwrap_or_default();
    let month = field(5, 7)
        .parse::<usize>()
        .ok()
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .copied()
        .unwrap_or_default();
    format!(
        "{} {month} {} {}Z",
        field(8, 10),
        field(0, 4),
        field(11, 19)
    )
}

/// What the agent is running, as the table puts it before a unit's message: a
/// hook Juju knows by its bare name (`install`, `relation-changed`), or an
/// action. Hooks named after an endpoint or container are not recognised, as
/// in Juju.
fn agent_doing(juju: &StatusInfo) -> Option<&str> {
    const HOOKS: &[&str] = &[
        "install",
        "start",
        "config-changed",
        "upgrade-charm",
        "stop",
        "remove",
        "leader-elected",
        "leader-settings-changed",
        "update-status",
        "collect-metrics",
        "meter-status-changed",
        "pre-series-upgrade",
        "post-series-upgrade",
        "secret-changed",
        "secret-expired",
        "secret-remove",
        "secret-rotate",
        "relation-created",
        "relation-joined",
        "relation-changed",
        "relation-departed",
        "relation-broken",
    ];
    if juju.current != "executing" {
        return None;
    }
    if let Some(hook) = juju
        .message
        .strip_prefix("running ")
        .and_then(|m| m.strip_suffix(" hook"))
    {
        return HOOKS.contains(&hook).then_some(hook);
    }
    juju.message.strip_prefix("running action ")
}

/// A unit's ports as the table groups them: per protocol, consecutive ports
/// as a range, the protocol once at the end (`5432,6432/tcp 53/udp icmp`).
pub fn grouped_ports(ports: &[Port]) -> String {
    let mut groups = Vec::new();
    for proto in ["tcp", "udp"] {
        let mut ranges: Vec<(u16, u16)> = ports
            .iter()
            .filter_map(|p| match (p, proto) {
                (Port::Tcp(a, b), "tcp") | (Port::Udp(a, b), "udp") => Some((*a, *b)),
                _ => None,
            })
            .collect();
        ranges.sort_unstable();
        // (first, last, whether a run of single ports that may grow)
        let mut merged: Vec<(u16, u16, bool)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(run) if a == b && run.2 && u32::from(run.1) + 1 == u32::from(a) => run.1 = a,
                _ => merged.push((a, b, a == b)),
            }
        }
        if merged.is_empty() {
            continue;
        }
        let list: Vec<String> = merged
            .iter()
            .map(|(a, b, _)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        groups.push(format!("{}/{proto}", list.join(",")));
    }
    if ports.contains(&Port::Icmp) {
        groups.push("icmp".into());
    }
    groups.join(" ")
}

/// Sorts names with their numbers compared as numbers (`app/2` before `app/10`).
pub fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    key.push((text, digits.parse().unwrap_or(0)));
    key
}

impl FullStatus {
    /// The table `juju status` prints, with the integrations section when
    /// `relations` is set.
    pub fn tabular(&self, relations: bool) -> String {
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
        let m = &self.model;
        header.row(vec![
            m.name.clone(),
            m.controller.clone(),
            format!("{}/{}", m.cloud, m.region),
            m.version.clone(),
            m.sla.clone(),
            self.controller.timestamp.clone(),
        ]);
        let mut s = header.render();
        if self.applications.is_empty() {
            let _ = writeln!(s, "\nModel \"admin/{}\" is empty.", m.name);
            return s;
        }
        let mut apps = Table::new(
            &[
                "App", "Version", "Status", "Scale", "Charm", "Channel", "Rev", "Address",
                "Exposed", "Message",
            ],
            &[3, 6],
        );
        let mut names: Vec<&String> = self.applications.keys().collect();
        names.sort_by_key(|n| natural_key(n));
        let mut units: Vec<(&String, &UnitStatus)> = Vec::new();
        for name in names {
            let app = &self.applications[name];
            let available = app
                .units
                .values()
                .filter(|u| matches!(u.juju_status.current.as_str(), "idle" | "executing"))
                .count();
            let scale = if available == app.scale {
                app.scale.to_string()
            } else {
                format!("{available}/{}", app.scale)
            };
            apps.row(vec![
                name.clone(),
                app.version.lines().next().unwrap_or_default().into(),
                app.application_status.current.clone(),
                scale,
                app.charm_name.clone(),
                String::new(),
                app.charm_rev.to_string(),
                String::new(),
                if app.exposed { "yes" } else { "no" }.into(),
                app.application_status.message.clone(),
            ]);
            units.extend(app.units.iter());
        }
        units.sort_by_key(|(n, _)| natural_key(n));
        let mut table = Table::new(
            &["Unit", "Workload", "Agent", "Address", "Ports", "Message"],
            &[],
        );
        for (name, u) in units {
            let mut message = u.workload_status.message.clone();
            if let Some(doing) = agent_doing(&u.juju_status) {
                message = format!("({doing}) {message}");
            }
            table.row(vec![
                format!("{name}{}", if u.leader { "*" } else { "" }),
                u.workload_status.current.clone(),
                u.juju_status.current.clone(),
                u.address.clone(),
                grouped_ports(&u.ports),
                message,
            ]);
        }
        s.push('\n');
        s.push_str(&apps.render());
        s.push('\n');
        s.push_str(&table.render());
        if relations && !self.relations.is_empty() {
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
            let mut rows: Vec<&RelationRow> = self.relations.iter().collect();
            rows.sort();
            for r in rows {
                table.row(vec![
                    r.provider.clone(),
                    r.requirer.clone(),
                    r.interface.clone(),
                    r.kind.clone(),
                    r.status.clone(),
                ]);
            }
            s.push('\n');
            s.push_str(&table.render());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_as_juju_writes_it() {
        assert_eq!(since(1_740_355_377), "24 Feb 2025 00:02:57Z");
        assert_eq!(since(0), "01 Jan 1970 00:00:00Z");
    }

    #[test]
    fn ports_are_grouped_by_protocol_with_runs_as_ranges() {
        let ports = [
            Port::tcp(6432),
            Port::tcp(5432),
            Port::tcp(8001),
            Port::tcp(8000),
            Port::tcp(8002),
            Port::Udp(53, 53),
            Port::Tcp(9000, 9100),
            Port::Icmp,
        ];
        assert_eq!(
            grouped_ports(&ports),
            "5432,6432,8000-8002,9000-9100/tcp 53/udp icmp"
        );
        assert_eq!(grouped_ports(&[]), "");
    }

    #[test]
    fn the_agent_doing_a_known_hook_or_an_action_is_shown() {
        let executing = |m: &str| StatusInfo {
            current: "executing".into(),
            message: m.into(),
            ..StatusInfo::default()
        };
        assert_eq!(
            agent_doing(&executing("running config-changed hook")),
            Some("config-changed")
        );
        assert_eq!(
            agent_doing(&executing("running action greet")),
            Some("greet")
        );
        assert_eq!(
            agent_doing(&executing("running db-relation-changed hook")),
            None
        );
        assert_eq!(agent_doing(&executing("running juju-exec")), None);
        let idle = StatusInfo {
            current: "idle".into(),
            message: "running install hook".into(),
            ..StatusInfo::default()
        };
        assert_eq!(agent_doing(&idle), None);
    }

    #[test]
    fn names_sort_with_numbers_as_numbers() {
        let mut units = vec!["pg/10", "pg/2", "pgbouncer/0", "pg/1"];
        units.sort_by_key(|n| natural_key(n));
        assert_eq!(units, ["pg/1", "pg/2", "pg/10", "pgbouncer/0"]);
    }
}
