//! Events built from the state a test runs them on, the way Juju would send
//! them: a relation event carries its relation's endpoint, id and remote
//! application; a secret event its secret's id and the label this unit knows it
//! by; a notice event the notice's id, type and key.
//!
//! ```
//! use charm_testing::{event, RelationState};
//! let db = RelationState::new("db", 4, "client").remote_unit("client/0", &[]);
//! let changed = event::relation_changed(&db, Some("client/0"));
//! assert_eq!(changed.hook_name(), "db-relation-changed");
//! ```

use charm::event::Notice;
use charm::{ActionEvent, Event, RelationEvent, SecretEvent};
use juju_rules::{RelationState, SecretState};

/// The relation part of an event on `relation`.
fn on(
    relation: &RelationState,
    remote_unit: Option<&str>,
    departing: Option<&str>,
) -> RelationEvent {
    RelationEvent {
        relation: relation.handle(),
        remote_app: relation.remote_app.clone(),
        remote_unit: remote_unit.map(str::to_string),
        departing_unit: departing.map(str::to_string),
    }
}

/// `<endpoint>-relation-created`: the relation exists; no remote unit yet.
pub fn relation_created(relation: &RelationState) -> Event {
    Event::RelationCreated(on(relation, None, None))
}

/// `<endpoint>-relation-joined`: `remote_unit` entered the relation.
pub fn relation_joined(relation: &RelationState, remote_unit: &str) -> Event {
    Event::RelationJoined(on(relation, Some(remote_unit), None))
}

/// `<endpoint>-relation-changed`: a remote unit's bag changed (`Some(unit)`),
/// or the remote application's (`None`).
pub fn relation_changed(relation: &RelationState, remote_unit: Option<&str>) -> Event {
    Event::RelationChanged(on(relation, remote_unit, None))
}

/// `<endpoint>-relation-departed`: `remote_unit` left; `departing` is the unit
/// that goes away (this unit's own name when it is the one leaving).
pub fn relation_departed(relation: &RelationState, remote_unit: &str, departing: &str) -> Event {
    Event::RelationDeparted(on(relation, Some(remote_unit), Some(departing)))
}

/// `<endpoint>-relation-broken`: the relation is going away.
pub fn relation_broken(relation: &RelationState) -> Event {
    Event::RelationBroken(on(relation, None, None))
}

/// `config-changed`.
pub fn config_changed() -> Event {
    Event::ConfigChanged
}

/// `leader-elected`.
pub fn leader_elected() -> Event {
    Event::LeaderElected
}

/// `update-status`.
pub fn update_status() -> Event {
    Event::UpdateStatus
}

/// `<container>-pebble-ready`.
pub fn pebble_ready(container: &str) -> Event {
    Event::PebbleReady {
        container: container.to_string(),
    }
}

/// `<container>-pebble-custom-notice` for a notice the container recorded
/// (for example with [`ContainerState::with_notice`](crate::ContainerState::with_notice)).
pub fn pebble_custom_notice(container: &str, notice: &pebble_api::Notice) -> Event {
    Event::PebbleCustomNotice {
        container: container.to_string(),
        notice: Notice {
            id: notice.id.clone(),
            kind: notice.kind.clone(),
            key: notice.key.clone(),
        },
    }
}

/// The label this unit knows a secret by: its own label as a consumer, else
/// the owner's.
fn label(secret: &SecretState) -> Option<String> {
    secret
        .consumer_label
        .clone()
        .or_else(|| secret.owner_label.clone())
}

/// `secret-changed`: the owner published a new revision of a secret this
/// unit reads.
pub fn secret_changed(secret: &SecretState) -> Event {
    Event::SecretChanged(SecretEvent {
        id: secret.id.clone(),
        label: label(secret),
        revision: None,
    })
}

/// `secret-remove`: no one tracks `revision` of a secret this unit owns any more.
pub fn secret_remove(secret: &SecretState, revision: u64) -> Event {
    Event::SecretRemove(SecretEvent {
        id: secret.id.clone(),
        label: label(secret),
        revision: Some(revision),
    })
}

/// `secret-rotate`: a secret this unit owns is due for rotation.
pub fn secret_rotate(secret: &SecretState) -> Event {
    Event::SecretRotate(SecretEvent {
        id: secret.id.clone(),
        label: label(secret),
        revision: None,
    })
}

/// `secret-expired`: `revision` of a secret this unit owns expired.
pub fn secret_expired(secret: &SecretState, revision: u64) -> Event {
    Event::SecretExpired(SecretEvent {
        id: secret.id.clone(),
        label: label(secret),
        revision: Some(revision),
    })
}

/// The event of action `name`, as [`run_action`](crate::run_action) sends it
/// (which also takes the parameters).
pub fn action(name: &str) -> Event {
    Event::Action(ActionEvent {
        name: name.to_string(),
        id: "1".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use charm::{Relation, SecretContent, SecretId};
    use juju_rules::Owner;

    fn db() -> RelationState {
        RelationState::new("db", 4, "client").remote_unit("client/0", &[])
    }

    #[test]
    fn relation_events_carry_the_relation_and_units() {
        let want = |remote_unit: Option<&str>, departing: Option<&str>| RelationEvent {
            relation: Relation::new("db", 4),
            remote_app: "client".into(),
            remote_unit: remote_unit.map(str::to_string),
            departing_unit: departing.map(str::to_string),
        };
        assert_eq!(
            relation_created(&db()),
            Event::RelationCreated(want(None, None))
        );
        assert_eq!(
            relation_joined(&db(), "client/0"),
            Event::RelationJoined(want(Some("client/0"), None))
        );
        assert_eq!(
            relation_changed(&db(), None),
            Event::RelationChanged(want(None, None))
        );
        assert_eq!(
            relation_departed(&db(), "client/0", "client/0"),
            Event::RelationDeparted(want(Some("client/0"), Some("client/0")))
        );
        assert_eq!(
            relation_broken(&db()),
            Event::RelationBroken(want(None, None))
        );
    }

    #[test]
    fn secret_events_use_the_label_this_unit_knows() {
        let id = SecretId::parse("c0000000000000000042").unwrap();
        let mut secret = SecretState::new(id.clone(), Owner::App, SecretContent::new());
        assert_eq!(
            secret_remove(&secret, 1),
            Event::SecretRemove(SecretEvent {
                id: id.clone(),
                label: None,
                revision: Some(1),
            })
        );
        secret.owner_label = Some("owned".into());
        assert_eq!(
            secret_rotate(&secret),
            Event::SecretRotate(SecretEvent {
                id: id.clone(),
                label: Some("owned".into()),
                revision: None,
            })
        );
        secret.consumer_label = Some("read".into());
        assert_eq!(
            secret_changed(&secret),
            Event::SecretChanged(SecretEvent {
                id: id.clone(),
                label: Some("read".into()),
                revision: None,
            })
        );
        assert_eq!(secret_expired(&secret, 2).hook_name(), "secret-expired");
    }

    #[test]
    fn a_notice_event_names_the_recorded_notice() {
        let web = crate::ContainerState::ready().with_notice("example.com/k", &[]);
        let event = pebble_custom_notice("web", &web.notices[0]);
        assert_eq!(
            event,
            Event::PebbleCustomNotice {
                container: "web".into(),
                notice: Notice {
                    id: "1".into(),
                    kind: "custom".into(),
                    key: "example.com/k".into(),
                },
            }
        );
    }

    #[test]
    fn simple_events_name_their_hook() {
        assert_eq!(config_changed().hook_name(), "config-changed");
        assert_eq!(leader_elected().hook_name(), "leader-elected");
        assert_eq!(update_status().hook_name(), "update-status");
        assert_eq!(pebble_ready("web").hook_name(), "web-pebble-ready");
        assert_eq!(
            action("get-password"),
            Event::Action(ActionEvent {
                name: "get-password".into(),
                id: "1".into(),
            })
        );
    }
}
