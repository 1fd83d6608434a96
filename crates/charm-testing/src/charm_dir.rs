//! A unit's state as Juju first shows it to a charm, built from the charm's own
//! `metadata.yaml` and `config.yaml` ([`CharmState`]), so tests start from
//! what the charm declares rather than from a hand-written copy of it.

use charm::metadata::{CharmFiles, MetadataError};
use juju_rules::{ContainerState, RelationState, State};
use std::path::Path;

/// Builds a [`State`] for a charm: `State::from_charm_dir(dir, "app/0")`.
pub trait CharmState {
    /// Reads the charm directory's `metadata.yaml` (and `config.yaml`,
    /// `actions.yaml` when there) and builds [`CharmState::for_charm`].
    fn from_charm_dir(dir: impl AsRef<Path>, unit: &str) -> Result<State, MetadataError>;

    /// Unit `unit` of the charm, as Juju shows it once deployed: the
    /// configuration at its defaults, every container of `containers:` with
    /// Pebble up, and every peer endpoint's relation, this unit alone in it
    /// (numbered from 1 in name order: relation ids are a model-wide sequence
    /// in Juju, and a test adds its other relations with other ids). The unit is
    /// not the leader; the rest is [`State::new`]'s.
    fn for_charm(files: &CharmFiles, unit: &str) -> State;
}

impl CharmState for State {
    fn from_charm_dir(dir: impl AsRef<Path>, unit: &str) -> Result<State, MetadataError> {
        Ok(State::for_charm(&CharmFiles::load(dir.as_ref())?, unit))
    }

    fn for_charm(files: &CharmFiles, unit: &str) -> State {
        let mut state = State::new(unit).with_config(files.config.defaults());
        let app = state.app().to_string();
        for (id, endpoint) in (1..).zip(files.meta.peers.keys()) {
            state = state.with_relation(RelationState::peer(endpoint, id, &app));
        }
        for container in files.meta.containers.keys() {
            state = state.with_container(container, ContainerState::ready());
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use charm::metadata::parse_yaml;
    use serde_json::json;

    fn files() -> CharmFiles {
        CharmFiles {
            meta: parse_yaml(
                "name: web\n\
                 containers: {app: {resource: img}, sidecar: {resource: img}}\n\
                 peers: {replicas: {interface: r}, cluster: {interface: c}}\n\
                 provides: {db: {interface: d}}\n",
                "metadata.yaml",
            )
            .unwrap(),
            config: parse_yaml(
                "options:\n  port: {type: int, default: 8080}\n  name: {type: string}\n",
                "config.yaml",
            )
            .unwrap(),
            actions: Default::default(),
            manifest: Default::default(),
        }
    }

    #[test]
    fn a_unit_of_the_charm_as_juju_deploys_it() {
        let state = State::for_charm(&files(), "web/2");
        assert_eq!(state.unit, "web/2");
        assert!(!state.leader);
        assert_eq!(
            serde_json::Value::Object(state.config.clone()),
            json!({"port": 8080}),
            "defaults only: an option without one is unset"
        );
        let peers: Vec<(u64, &str, &str, bool)> = state
            .relations
            .iter()
            .map(|r| (r.id, r.endpoint.as_str(), r.remote_app.as_str(), r.peer))
            .collect();
        assert_eq!(
            peers,
            [(1, "cluster", "web", true), (2, "replicas", "web", true)]
        );
        assert!(state.relations.iter().all(|r| r.remote_units.is_empty()
            && r.local_app_data.is_empty()
            && r.local_unit_data.is_empty()));
        assert_eq!(
            state.containers.keys().collect::<Vec<_>>(),
            ["app", "sidecar"]
        );
        assert!(state.containers.values().all(|c| c.can_connect));
    }

    #[test]
    fn the_charm_directory_is_read_from_disk() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-charm/charm");
        let state = State::from_charm_dir(&dir, "example/0").unwrap();
        assert_eq!(
            state.relations[0].handle(),
            charm::Relation::new("replicas", 1)
        );
        assert_eq!(state.config["port"], 8080);
        assert!(state.containers.contains_key("web"));
        assert!(State::from_charm_dir(dir.join("missing"), "example/0").is_err());
    }
}
