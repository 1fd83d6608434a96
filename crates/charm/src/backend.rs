//! The [`Backend`] trait: everything a charm asks Juju for, one method per hook-tool
//! use. [`crate::hooktools::HookTools`] calls the real tools; the in-memory model
//! implements it over a state in tests.

use crate::error::Result;
use crate::relation::{Bag, Databag, Relation};
use crate::secret::{
    Revision, SecretContent, SecretId, SecretInfo, SecretMeta, SecretOwner, SecretRef,
};
use crate::status::{LogLevel, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A JSON object, as `config-get` and `action-get` print it.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// A port to open: `8080/tcp`, `53/udp`, a range `8000-8999/tcp`, or `icmp`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Port {
    /// TCP ports `from` to `to` (equal for one port).
    Tcp(u16, u16),
    /// UDP ports `from` to `to` (equal for one port).
    Udp(u16, u16),
    /// ICMP.
    Icmp,
}

impl Port {
    /// A single TCP port.
    pub fn tcp(port: u16) -> Port {
        Port::Tcp(port, port)
    }

    /// Parses Juju's form (`8080/tcp`, `8000-8999/udp`, `icmp`).
    pub fn parse(s: &str) -> Option<Port> {
        if s == "icmp" {
            return Some(Port::Icmp);
        }
        let (range, proto) = s.split_once('/')?;
        let (from, to) = match range.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let p = range.parse().ok()?;
                (p, p)
            }
        };
        if from == 0 || from > to {
            return None;
        }
        match proto {
            "tcp" => Some(Port::Tcp(from, to)),
            "udp" => Some(Port::Udp(from, to)),
            _ => None,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, proto) = match self {
            Port::Icmp => return f.write_str("icmp"),
            Port::Tcp(a, b) => (a, b, "tcp"),
            Port::Udp(a, b) => (a, b, "udp"),
        };
        if a == b {
            write!(f, "{a}/{proto}")
        } else {
            write!(f, "{a}-{b}/{proto}")
        }
    }
}

impl From<Port> for String {
    fn from(p: Port) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for Port {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Port::parse(&s).ok_or_else(|| format!("invalid port {s:?}"))
    }
}

/// `status-get` for the unit: its status and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusInfo {
    /// The status.
    pub status: Status,
    /// For the application status: each unit's status.
    pub units: BTreeMap<String, Status>,
}

/// `network-get` output (the parts charms use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Network {
    /// The interfaces the unit's addresses are bound to.
    #[serde(default)]
    pub bind_addresses: Vec<BindAddress>,
    /// The subnets the unit's traffic leaves from (CIDRs).
    #[serde(default)]
    pub egress_subnets: Vec<String>,
    /// The addresses other units reach this one on.
    #[serde(default)]
    pub ingress_addresses: Vec<String>,
}

/// One interface in `network-get`'s `bind-addresses`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BindAddress {
    /// The interface's MAC address.
    #[serde(default)]
    pub mac_address: String,
    /// The interface's name.
    #[serde(default)]
    pub interface_name: String,
    /// Its addresses.
    #[serde(default)]
    pub addresses: Vec<Address>,
}

/// One address of an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The address's host name, when Juju knows one.
    #[serde(default)]
    pub hostname: String,
    /// The address.
    pub value: String,
    /// Its subnet (CIDR).
    #[serde(default)]
    pub cidr: String,
}

/// `goal-state`: the units and relations Juju is converging to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalState {
    /// This application's units, by name.
    #[serde(default)]
    pub units: BTreeMap<String, GoalStatus>,
    /// Each endpoint's related units and applications, by name.
    #[serde(default)]
    pub relations: BTreeMap<String, BTreeMap<String, GoalStatus>>,
}

/// A unit's or relation member's goal status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalStatus {
    /// `waiting`, `joining`, `joined`, `active`, `dying`, ...
    pub status: String,
    /// When the status last changed.
    #[serde(default)]
    pub since: Option<String>,
}

impl GoalState {
    /// Units of this application that are not going away (`planned_units` in ops).
    pub fn planned_units(&self) -> usize {
        self.units.values().filter(|u| u.status != "dying").count()
    }
}

/// Everything a charm asks Juju for. Each method is one hook-tool call.
pub trait Backend {
    /// `is-leader`.
    fn is_leader(&mut self) -> Result<bool>;
    /// `relation-ids <endpoint>`.
    fn relation_ids(&mut self, endpoint: &str) -> Result<Vec<Relation>>;
    /// `relation-list -r <rel>`: the remote units in scope.
    fn relation_list(&mut self, relation: &Relation) -> Result<Vec<String>>;
    /// `relation-list --app -r <rel>`: the remote application.
    fn relation_remote_app(&mut self, relation: &Relation) -> Result<String>;
    /// `relation-get - <unit>` or `relation-get --app - <app>`.
    fn relation_get(&mut self, relation: &Relation, bag: &Bag) -> Result<Databag>;
    /// `relation-set [--app] --file -`: merge `changes` (an empty value deletes the key).
    fn relation_set(&mut self, relation: &Relation, app: bool, changes: &Databag) -> Result<()>;
    /// `config-get`.
    fn config_get(&mut self) -> Result<JsonMap>;
    /// `status-get` for the unit, or with `app` for the application (leader only).
    fn status_get(&mut self, app: bool) -> Result<StatusInfo>;
    /// `status-set` for the unit, or with `app` for the application (leader only).
    fn status_set(&mut self, app: bool, status: &Status) -> Result<()>;
    /// `juju-log`.
    fn juju_log(&mut self, level: LogLevel, message: &str) -> Result<()>;
    /// `application-version-set`.
    fn application_version_set(&mut self, version: &str) -> Result<()>;
    /// `open-port`.
    fn open_port(&mut self, port: &Port) -> Result<()>;
    /// `close-port`.
    fn close_port(&mut self, port: &Port) -> Result<()>;
    /// `opened-ports`.
    fn opened_ports(&mut self) -> Result<Vec<Port>>;
    /// `network-get <binding> [-r <id>]`.
    fn network_get(&mut self, binding: &str, relation: Option<u64>) -> Result<Network>;
    /// `goal-state`.
    fn goal_state(&mut self) -> Result<GoalState>;
    /// `action-get`: the parameters with defaults applied.
    fn action_get(&mut self) -> Result<JsonMap>;
    /// `action-set`: flat, dotted keys.
    fn action_set(&mut self, results: &BTreeMap<String, String>) -> Result<()>;
    /// `action-fail`.
    fn action_fail(&mut self, message: &str) -> Result<()>;
    /// `action-log`.
    fn action_log(&mut self, message: &str) -> Result<()>;
    /// `secret-add`: returns the new secret's id.
    fn secret_add(
        &mut self,
        content: &SecretContent,
        owner: SecretOwner,
        meta: &SecretMeta,
    ) -> Result<SecretId>;
    /// `secret-get`.
    fn secret_get(&mut self, secret: &SecretRef, revision: Revision) -> Result<SecretContent>;
    /// `secret-info-get` (owners only).
    fn secret_info_get(&mut self, secret: &SecretRef) -> Result<SecretInfo>;
    /// `secret-set`: new content (a new revision) and/or metadata.
    fn secret_set(
        &mut self,
        id: &SecretId,
        content: Option<&SecretContent>,
        meta: &SecretMeta,
    ) -> Result<()>;
    /// `secret-grant --relation <id> [--unit <unit>]`.
    fn secret_grant(&mut self, id: &SecretId, relation: u64, unit: Option<&str>) -> Result<()>;
    /// `secret-revoke --relation <id> [--unit <unit>]`.
    fn secret_revoke(&mut self, id: &SecretId, relation: u64, unit: Option<&str>) -> Result<()>;
    /// `secret-remove [--revision N]`.
    fn secret_remove(&mut self, id: &SecretId, revision: Option<u64>) -> Result<()>;
    /// `secret-ids`: the secrets this unit or its application owns.
    fn secret_ids(&mut self) -> Result<Vec<SecretId>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_and_print_as_juju_does() {
        for s in ["8080/tcp", "53/udp", "8000-8999/tcp", "icmp"] {
            assert_eq!(Port::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Port::parse("6432/tcp"), Some(Port::tcp(6432)));
        for bad in [
            "",
            "0/tcp",
            "9-8/tcp",
            "80/sctp",
            "80",
            "x/tcp",
            "70000/tcp",
        ] {
            assert_eq!(Port::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn planned_units_skip_dying_ones() {
        let g: GoalState = serde_json::from_str(
            r#"{"units":{"a/0":{"status":"active","since":"2026-11-22 10:00:00Z"},
                        "a/1":{"status":"dying","since":"2026-11-22T10:00:00+01:00"},
                        "a/2":{"status":"waiting"}},
                "relations":{}}"#,
        )
        .unwrap();
        assert_eq!(g.planned_units(), 2);
    }
}
