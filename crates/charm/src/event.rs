//! Typed events: every hook Juju runs, and actions.
//!
//! An event is read from the environment Juju sets for the hook process
//! ([`Event::from_vars`]) and can be written back to it ([`Event::env`]), which the
//! in-memory and local models use to start a hook.

use crate::relation::Relation;
use crate::secret::SecretId;
use serde::{Deserialize, Serialize};

/// A relation event's data (`JUJU_RELATION`, `JUJU_RELATION_ID`, `JUJU_REMOTE_*`,
/// `JUJU_DEPARTING_UNIT`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationEvent {
    /// The relation.
    pub relation: Relation,
    /// The remote application.
    pub remote_app: String,
    /// The remote unit that triggered the hook; `None` for created, broken and
    /// application-databag changes.
    pub remote_unit: Option<String>,
    /// In relation-departed: the unit that leaves. It is this unit's own name when
    /// this unit (or its application) is going away.
    pub departing_unit: Option<String>,
}

/// A secret event's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEvent {
    /// The secret.
    pub id: SecretId,
    /// Its label for this unit, when it has one.
    pub label: Option<String>,
    /// Set for secret-remove and secret-expired.
    pub revision: Option<u64>,
}

/// A Pebble notice (`<container>-pebble-custom-notice`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The notice's id.
    pub id: String,
    /// Its type (`custom`).
    pub kind: String,
    /// Its key (`domain.com/path`).
    pub key: String,
}

/// An action invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// The action's name.
    pub name: String,
    /// The action's id.
    pub id: String,
}

/// Everything Juju can dispatch to a charm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// `install`.
    Install,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `remove`.
    Remove,
    /// `config-changed`.
    ConfigChanged,
    /// `update-status`.
    UpdateStatus,
    /// `upgrade-charm`.
    UpgradeCharm,
    /// `leader-elected`.
    LeaderElected,
    /// `leader-settings-changed`.
    LeaderSettingsChanged,
    /// `collect-metrics`.
    CollectMetrics,
    /// `pre-series-upgrade`.
    PreSeriesUpgrade,
    /// `post-series-upgrade`.
    PostSeriesUpgrade,
    /// `<endpoint>-relation-created`.
    RelationCreated(RelationEvent),
    /// `<endpoint>-relation-joined`.
    RelationJoined(RelationEvent),
    /// `<endpoint>-relation-changed`.
    RelationChanged(RelationEvent),
    /// `<endpoint>-relation-departed`.
    RelationDeparted(RelationEvent),
    /// `<endpoint>-relation-broken`.
    RelationBroken(RelationEvent),
    /// `<container>-pebble-ready`.
    PebbleReady {
        /// The container.
        container: String,
    },
    /// `<container>-pebble-custom-notice`.
    PebbleCustomNotice {
        /// The container.
        container: String,
        /// The notice.
        notice: Notice,
    },
    /// `<container>-pebble-check-failed`.
    PebbleCheckFailed {
        /// The container.
        container: String,
        /// The check's name.
        check: String,
    },
    /// `<container>-pebble-check-recovered`.
    PebbleCheckRecovered {
        /// The container.
        container: String,
        /// The check's name.
        check: String,
    },
    /// `secret-changed` (to a consumer: a new revision).
    SecretChanged(SecretEvent),
    /// `secret-rotate` (to the owner: rotation is due).
    SecretRotate(SecretEvent),
    /// `secret-remove` (to the owner: a revision no one tracks).
    SecretRemove(SecretEvent),
    /// `secret-expired` (to the owner: a revision expired).
    SecretExpired(SecretEvent),
    /// `<storage>-storage-attached`.
    StorageAttached {
        /// The storage's name.
        storage: String,
        /// Where it is mounted.
        location: String,
    },
    /// `<storage>-storage-detaching`.
    StorageDetaching {
        /// The storage's name.
        storage: String,
        /// Where it is mounted.
        location: String,
    },
    /// An action.
    Action(ActionEvent),
    /// A hook this SDK does not know (for example one fired by hand); charms ignore it.
    Other {
        /// The hook's name.
        hook: String,
    },
}

/// Why the environment does not describe an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// A variable Juju always sets is missing.
    #[error("{0} is not set: this program must be started by Juju (as the charm's dispatch)")]
    Missing(&'static str),
    /// A variable has a value that cannot be read.
    #[error("{var} has an invalid value {value:?}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

const RELATION_SUFFIXES: [&str; 5] = [
    "-relation-created",
    "-relation-joined",
    "-relation-changed",
    "-relation-departed",
    "-relation-broken",
];

impl Event {
    /// Reads the event from Juju's variables (`lookup` returns a variable's value;
    /// empty values count as unset).
    pub fn from_vars(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Event, EventError> {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let need = |k: &'static str| get(k).ok_or(EventError::Missing(k));
        let path = need("JUJU_DISPATCH_PATH")?;
        if let Some(name) = path.strip_prefix("actions/") {
            return Ok(Event::Action(ActionEvent {
                name: name.to_string(),
                id: get("JUJU_ACTION_UUID").unwrap_or_default(),
            }));
        }
        let hook = path
            .strip_prefix("hooks/")
            .ok_or(EventError::Invalid {
                var: "JUJU_DISPATCH_PATH",
                value: path.clone(),
            })?
            .to_string();
        let simple = match hook.as_str() {
            "install" => Some(Event::Install),
            "start" => Some(Event::Start),
            "stop" => Some(Event::Stop),
            "remove" => Some(Event::Remove),
            "config-changed" => Some(Event::ConfigChanged),
            "update-status" => Some(Event::UpdateStatus),
            "upgrade-charm" => Some(Event::UpgradeCharm),
            "leader-elected" => Some(Event::LeaderElected),
            "leader-settings-changed" => Some(Event::LeaderSettingsChanged),
            "collect-metrics" => Some(Event::CollectMetrics),
            "pre-series-upgrade" => Some(Event::PreSeriesUpgrade),
            "post-series-upgrade" => Some(Event::PostSeriesUpgrade),
            _ => None,
        };
        if let Some(e) = simple {
            return Ok(e);
        }
        if hook.starts_with("secret-") {
            let id_raw = need("JUJU_SECRET_ID")?;
            let id = SecretId::parse(&id_raw).map_err(|_| EventError::Invalid {
                var: "JUJU_SECRET_ID",
                value: id_raw,
            })?;
            let revision = match get("JUJU_SECRET_REVISION") {
                Some(r) => Some(r.parse().map_err(|_| EventError::Invalid {
                    var: "JUJU_SECRET_REVISION",
                    value: r,
                })?),
                None => None,
            };
            let ev = SecretEvent {
                id,
                label: get("JUJU_SECRET_LABEL"),
                revision,
            };
            match hook.as_str() {
                "secret-changed" => return Ok(Event::SecretChanged(ev)),
                "secret-rotate" => return Ok(Event::SecretRotate(ev)),
                "secret-remove" => return Ok(Event::SecretRemove(ev)),
                "secret-expired" => return Ok(Event::SecretExpired(ev)),
                _ => {}
            }
        }
        if let Some(i) = RELATION_SUFFIXES.iter().position(|s| hook.ends_with(s)) {
            let endpoint = need("JUJU_RELATION")?;
            let rid = need("JUJU_RELATION_ID")?;
            let id =
                rid.rsplit(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or(EventError::Invalid {
                        var: "JUJU_RELATION_ID",
                        value: rid.clone(),
                    })?;
            let ev = RelationEvent {
                relation: Relation::new(endpoint, id),
                remote_app: get("JUJU_REMOTE_APP").unwrap_or_default(),
                remote_unit: get("JUJU_REMOTE_UNIT"),
                departing_unit: get("JUJU_DEPARTING_UNIT"),
            };
            return Ok(match i {
                0 => Event::RelationCreated(ev),
                1 => Event::RelationJoined(ev),
                2 => Event::RelationChanged(ev),
                3 => Event::RelationDeparted(ev),
                _ => Event::RelationBroken(ev),
            });
        }
        let workload = || need("JUJU_WORKLOAD_NAME");
        if hook.ends_with("-pebble-ready") {
            return Ok(Event::PebbleReady {
                container: workload()?,
            });
        }
        if hook.ends_with("-pebble-custom-notice") {
            return Ok(Event::PebbleCustomNotice {
                container: workload()?,
                notice: Notice {
                    id: need("JUJU_NOTICE_ID")?,
                    kind: get("JUJU_NOTICE_TYPE").unwrap_or_else(|| "custom".into()),
                    key: need("JUJU_NOTICE_KEY")?,
                },
            });
        }
        for (suffix, failed) in [
            ("-pebble-check-failed", true),
            ("-pebble-check-recovered", false),
        ] {
            if hook.ends_with(suffix) {
                let container = workload()?;
                let check = need("JUJU_PEBBLE_CHECK_NAME")?;
                return Ok(if failed {
                    Event::PebbleCheckFailed { container, check }
                } else {
                    Event::PebbleCheckRecovered { container, check }
                });
            }
        }
        for (suffix, attached) in [("-storage-attached", true), ("-storage-detaching", false)] {
            if hook.ends_with(suffix) {
                let storage = need("JUJU_STORAGE_ID")?;
                let location = get("JUJU_STORAGE_LOCATION").unwrap_or_default();
                return Ok(if attached {
                    Event::StorageAttached { storage, location }
                } else {
                    Event::StorageDetaching { storage, location }
                });
            }
        }
        Ok(Event::Other { hook })
    }

    /// The hook name (`JUJU_HOOK_NAME`); empty for actions.
    pub fn hook_name(&self) -> String {
        let fixed = |s: &str| s.to_string();
        match self {
            Event::Install => fixed("install"),
            Event::Start => fixed("start"),
            Event::Stop => fixed("stop"),
            Event::Remove => fixed("remove"),
            Event::ConfigChanged => fixed("config-changed"),
            Event::UpdateStatus => fixed("update-status"),
            Event::UpgradeCharm => fixed("upgrade-charm"),
            Event::LeaderElected => fixed("leader-elected"),
            Event::LeaderSettingsChanged => fixed("leader-settings-changed"),
            Event::CollectMetrics => fixed("collect-metrics"),
            Event::PreSeriesUpgrade => fixed("pre-series-upgrade"),
            Event::PostSeriesUpgrade => fixed("post-series-upgrade"),
            Event::RelationCreated(r) => format!("{}-relation-created", r.relation.endpoint),
            Event::RelationJoined(r) => format!("{}-relation-joined", r.relation.endpoint),
            Event::RelationChanged(r) => format!("{}-relation-changed", r.relation.endpoint),
            Event::RelationDeparted(r) => format!("{}-relation-departed", r.relation.endpoint),
            Event::RelationBroken(r) => format!("{}-relation-broken", r.relation.endpoint),
            Event::PebbleReady { container } => format!("{container}-pebble-ready"),
            Event::PebbleCustomNotice { container, .. } => {
                format!("{container}-pebble-custom-notice")
            }
            Event::PebbleCheckFailed { container, .. } => {
                format!("{container}-pebble-check-failed")
            }
            Event::PebbleCheckRecovered { container, .. } => {
                format!("{container}-pebble-check-recovered")
            }
            Event::SecretChanged(_) => fixed("secret-changed"),
            Event::SecretRotate(_) => fixed("secret-rotate"),
            Event::SecretRemove(_) => fixed("secret-remove"),
            Event::SecretExpired(_) => fixed("secret-expired"),
            Event::StorageAttached { storage, .. } => {
                format!("{}-storage-attached", storage_name(storage))
            }
            Event::StorageDetaching { storage, .. } => {
                format!("{}-storage-detaching", storage_name(storage))
            }
            Event::Action(_) => String::new(),
            Event::Other { hook } => hook.clone(),
        }
    }

    /// `JUJU_DISPATCH_PATH` for this event.
    pub fn dispatch_path(&self) -> String {
        match self {
            Event::Action(a) => format!("actions/{}", a.name),
            other => format!("hooks/{}", other.hook_name()),
        }
    }

    /// The event-specific variables Juju sets for this event, including
    /// `JUJU_DISPATCH_PATH` and `JUJU_HOOK_NAME`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("JUJU_DISPATCH_PATH", self.dispatch_path()),
            ("JUJU_HOOK_NAME", self.hook_name()),
        ];
        match self {
            Event::RelationCreated(r)
            | Event::RelationJoined(r)
            | Event::RelationChanged(r)
            | Event::RelationDeparted(r)
            | Event::RelationBroken(r) => {
                v.push(("JUJU_RELATION", r.relation.endpoint.clone()));
                v.push(("JUJU_RELATION_ID", r.relation.to_string()));
                v.push(("JUJU_REMOTE_APP", r.remote_app.clone()));
                v.push((
                    "JUJU_REMOTE_UNIT",
                    r.remote_unit.clone().unwrap_or_default(),
                ));
                if let Some(d) = &r.departing_unit {
                    v.push(("JUJU_DEPARTING_UNIT", d.clone()));
                }
            }
            Event::PebbleReady { container } => v.push(("JUJU_WORKLOAD_NAME", container.clone())),
            Event::PebbleCustomNotice { container, notice } => {
                v.push(("JUJU_WORKLOAD_NAME", container.clone()));
                v.push(("JUJU_NOTICE_ID", notice.id.clone()));
                v.push(("JUJU_NOTICE_TYPE", notice.kind.clone()));
                v.push(("JUJU_NOTICE_KEY", notice.key.clone()));
            }
            Event::PebbleCheckFailed { container, check }
            | Event::PebbleCheckRecovered { container, check } => {
                v.push(("JUJU_WORKLOAD_NAME", container.clone()));
                v.push(("JUJU_PEBBLE_CHECK_NAME", check.clone()));
            }
            Event::SecretChanged(s)
            | Event::SecretRotate(s)
            | Event::SecretRemove(s)
            | Event::SecretExpired(s) => {
                v.push(("JUJU_SECRET_ID", s.id.to_string()));
                v.push(("JUJU_SECRET_LABEL", s.label.clone().unwrap_or_default()));
                if let Some(r) = s.revision {
                    v.push(("JUJU_SECRET_REVISION", r.to_string()));
                }
            }
            Event::StorageAttached { storage, location }
            | Event::StorageDetaching { storage, location } => {
                v.push(("JUJU_STORAGE_ID", storage.clone()));
                v.push(("JUJU_STORAGE_LOCATION", location.clone()));
                v.push(("JUJU_STORAGE_KIND", "filesystem".into()));
            }
            Event::Action(a) => {
                v.push(("JUJU_ACTION_NAME", a.name.clone()));
                v.push(("JUJU_ACTION_UUID", a.id.clone()));
                v.push(("JUJU_ACTION_TAG", format!("action-{}", a.id)));
            }
            _ => {}
        }
        v
    }

    /// The relation event data, for relation events.
    pub fn relation(&self) -> Option<&RelationEvent> {
        match self {
            Event::RelationCreated(r)
            | Event::RelationJoined(r)
            | Event::RelationChanged(r)
            | Event::RelationDeparted(r)
            | Event::RelationBroken(r) => Some(r),
            _ => None,
        }
    }

    /// Whether deferred events are replayed before this one. Juju restricts the hook
    /// tools in collect-metrics, so ops skips the replay there; so do we.
    pub fn replays_deferred(&self) -> bool {
        !matches!(self, Event::CollectMetrics)
    }
}

fn storage_name(id: &str) -> &str {
    id.split_once('/').map_or(id, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Event, EventError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Event::from_vars(&|k| map.get(k).cloned())
    }

    fn roundtrip(e: Event) {
        let vars = e.env();
        let map: HashMap<&str, String> = vars.into_iter().collect();
        let back = Event::from_vars(&|k| map.get(k).cloned()).unwrap();
        assert_eq!(back, e);
    }

    const XID: &str = "d0rtp2cs1tj5qbo1s2ug";

    #[test]
    fn every_event_roundtrips_through_the_environment() {
        let rel = RelationEvent {
            relation: Relation::new("backend-database", 3),
            remote_app: "postgresql-k8s".into(),
            remote_unit: Some("postgresql-k8s/0".into()),
            departing_unit: Some("postgresql-k8s/0".into()),
        };
        let sec = SecretEvent {
            id: SecretId::parse(&format!("secret://uuid/{XID}")).unwrap(),
            label: Some("pgb-peers.pgbouncer-k8s.app".into()),
            revision: Some(2),
        };
        let all = vec![
            Event::Install,
            Event::Start,
            Event::Stop,
            Event::Remove,
            Event::ConfigChanged,
            Event::UpdateStatus,
            Event::UpgradeCharm,
            Event::LeaderElected,
            Event::LeaderSettingsChanged,
            Event::CollectMetrics,
            Event::PreSeriesUpgrade,
            Event::PostSeriesUpgrade,
            Event::RelationCreated(rel.clone()),
            Event::RelationJoined(rel.clone()),
            Event::RelationChanged(rel.clone()),
            Event::RelationDeparted(rel.clone()),
            Event::RelationBroken(rel),
            Event::PebbleReady {
                container: "pgbouncer".into(),
            },
            Event::PebbleCustomNotice {
                container: "pgbouncer".into(),
                notice: Notice {
                    id: "7".into(),
                    kind: "custom".into(),
                    key: "example.com/reload".into(),
                },
            },
            Event::PebbleCheckFailed {
                container: "pgbouncer".into(),
                check: "up".into(),
            },
            Event::PebbleCheckRecovered {
                container: "pgbouncer".into(),
                check: "up".into(),
            },
            Event::SecretChanged(sec.clone()),
            Event::SecretRotate(sec.clone()),
            Event::SecretRemove(sec.clone()),
            Event::SecretExpired(sec),
            Event::StorageAttached {
                storage: "data/0".into(),
                location: "/var/lib/data".into(),
            },
            Event::StorageDetaching {
                storage: "data/0".into(),
                location: "/var/lib/data".into(),
            },
            Event::Action(ActionEvent {
                name: "get-password".into(),
                id: "12".into(),
            }),
            Event::Other {
                hook: "something-new".into(),
            },
        ];
        for e in all {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
            roundtrip(e);
        }
    }

    #[test]
    fn relation_changed_from_an_app_bag_has_no_remote_unit() {
        let e = parse(&[
            ("JUJU_DISPATCH_PATH", "hooks/database-relation-changed"),
            ("JUJU_RELATION", "database"),
            ("JUJU_RELATION_ID", "database:4"),
            ("JUJU_REMOTE_APP", "first-database"),
            ("JUJU_REMOTE_UNIT", ""),
        ])
        .unwrap();
        let r = e.relation().unwrap();
        assert_eq!(r.relation, Relation::new("database", 4));
        assert_eq!(r.remote_unit, None);
    }

    #[test]
    fn endpoint_names_may_contain_dashes_and_hook_words() {
        let e = parse(&[
            ("JUJU_DISPATCH_PATH", "hooks/pgb-peers-relation-departed"),
            ("JUJU_RELATION", "pgb-peers"),
            ("JUJU_RELATION_ID", "2"),
            ("JUJU_REMOTE_APP", "pgbouncer-k8s"),
            ("JUJU_REMOTE_UNIT", "pgbouncer-k8s/1"),
            ("JUJU_DEPARTING_UNIT", "pgbouncer-k8s/0"),
        ])
        .unwrap();
        let Event::RelationDeparted(r) = e else {
            panic!("{e:?}")
        };
        assert_eq!(r.relation.id, 2);
        assert_eq!(r.departing_unit.as_deref(), Some("pgbouncer-k8s/0"));
    }

    #[test]
    fn missing_and_invalid_variables_are_named() {
        assert_eq!(parse(&[]), Err(EventError::Missing("JUJU_DISPATCH_PATH")));
        assert_eq!(
            parse(&[("JUJU_DISPATCH_PATH", "hooks/db-relation-joined")]),
            Err(EventError::Missing("JUJU_RELATION"))
        );
        assert!(matches!(
            parse(&[
                ("JUJU_DISPATCH_PATH", "hooks/db-relation-joined"),
                ("JUJU_RELATION", "db"),
                ("JUJU_RELATION_ID", "db:x"),
            ]),
            Err(EventError::Invalid {
                var: "JUJU_RELATION_ID",
                ..
            })
        ));
        assert!(matches!(
            parse(&[
                ("JUJU_DISPATCH_PATH", "hooks/secret-changed"),
                ("JUJU_SECRET_ID", "not-a-secret"),
            ]),
            Err(EventError::Invalid {
                var: "JUJU_SECRET_ID",
                ..
            })
        ));
        assert!(matches!(
            parse(&[("JUJU_DISPATCH_PATH", "bin/thing")]),
            Err(EventError::Invalid { .. })
        ));
    }
}
