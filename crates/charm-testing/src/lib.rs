//! Testing charms on an in-memory Juju model, in the spirit of ops' Scenario:
//! build a [`State`] (by hand, or from the charm's own files with
//! [`CharmState`]), run one event through a charm with [`run`] (events built
//! with [`event`]; an action with [`run_action`]), and get back the new state
//! and every hook-tool call the charm made. The model itself, Juju's rules and
//! error phrases and the rollback of a failed hook, is `juju-rules`,
//! re-exported here so that a test needs this crate alone; [`standin`] adds
//! stand-in hook tools for testing the real adapter.
//!
//! For tests only: crates take it as a dev-dependency.

#![warn(missing_docs)]

mod charm_dir;
pub mod event;
pub mod standin;

pub use charm_dir::CharmState;
pub use juju_rules::{
    bag, run, run_action, ActionOutput, ContainerState, Failure, FileState, MemoryBackend,
    MemoryWorkloads, Output, Owner, RelationState, SecretState, ServiceOp, State, MODEL_UUID,
};
