//! Juju's rules, in memory, in one place: the [`State`] one unit sees (its
//! relations and their bags, secrets, ports, statuses, containers),
//! [`MemoryBackend`], which answers every hook tool on it under Juju's rules and
//! with Juju's error phrases (those the SDK does not call in `unit_tools.rs`), [`MemoryWorkloads`], Pebble over each
//! [`ContainerState`], and [`run`]/[`run_action`], which run one event through a
//! charm in this process under Juju's transaction rule.
//!
//! The local model answers real hooks with [`MemoryBackend`] on each unit's view,
//! the simulator runs charms in process with [`run`], and `charm-testing` offers
//! all of it to unit tests.

#![warn(missing_docs)]

mod backend;
mod in_process;
mod pebble;
mod state;
mod unit_tools;

pub use backend::{ActionOutput, MemoryBackend};
pub use in_process::{run, run_action, Failure, Output};
pub use pebble::MemoryWorkloads;
pub use state::{
    bag, ContainerState, FileState, Owner, PayloadState, RelationState, SecretState, ServiceOp,
    State, StorageState, MODEL_UUID,
};
pub use unit_tools::PAYLOAD_STATUSES;
