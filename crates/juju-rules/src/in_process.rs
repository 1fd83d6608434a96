//! One event through a charm in this process: the charm's own `dispatch::run`
//! over a [`MemoryBackend`] and [`MemoryWorkloads`] on a copy of the [`State`],
//! then Juju's transaction rule. A failed hook leaves the transactional state
//! (relation data, secrets, ports, the deferred queue) as it was; what Juju
//! applies at once (status, logs, workload version, what happened in the
//! containers) stays, as on a real unit.

use crate::backend::{ActionOutput, MemoryBackend};
use crate::pebble::MemoryWorkloads;
use crate::state::State;
use charm::backend::JsonMap;
use charm::dispatch::{self, Charm};
use charm::stats::ToolStats;
use charm::{ActionEvent, Context, Event};
use std::path::PathBuf;

/// A hook that succeeded: the new state and the calls it made.
#[derive(Debug)]
pub struct Output {
    /// The state after the hook.
    pub state: State,
    /// Every tool call the hook made, with its time.
    pub calls: ToolStats,
    /// For actions: results, failure message and logs.
    pub action: ActionOutput,
}

/// A hook that failed: the error, the state after Juju's rollback, and the calls.
#[derive(Debug)]
pub struct Failure {
    /// Why the hook failed.
    pub error: anyhow::Error,
    /// The state after Juju's rollback.
    pub state: State,
    /// Every tool call the hook made, with its time.
    pub calls: ToolStats,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hook failed: {:#}", self.error)
    }
}

/// Runs one event through the charm against `state`.
pub fn run(charm: &mut dyn Charm, state: &State, event: Event) -> Result<Output, Box<Failure>> {
    execute(charm, state, event, None)
}

/// Runs an action with its parameters (defaults already applied, as Juju does).
pub fn run_action(
    charm: &mut dyn Charm,
    state: &State,
    name: &str,
    params: JsonMap,
) -> Result<Output, Box<Failure>> {
    let event = Event::Action(ActionEvent {
        name: name.to_string(),
        id: "1".into(),
    });
    execute(charm, state, event, Some(params))
}

fn execute(
    charm: &mut dyn Charm,
    state: &State,
    event: Event,
    params: Option<JsonMap>,
) -> Result<Output, Box<Failure>> {
    let mut working = state.clone();
    let context = Context {
        unit: working.unit.clone(),
        app: working.app().to_string(),
        model_name: working.model_name.clone(),
        model_uuid: working.model_uuid.clone(),
        charm_dir: PathBuf::from("/var/lib/juju/charm"),
        juju_version: working.juju_version.clone(),
        event: event.clone(),
    };
    let declared: Vec<String> = working.containers.keys().cloned().collect();
    let mut workloads = MemoryWorkloads {
        containers: std::mem::take(&mut working.containers),
    };
    let deferred = working.deferred.clone();
    let mut backend = MemoryBackend::new(&mut working, event, params);
    let result = dispatch::run(charm, &context, &mut backend, &mut workloads, deferred);
    let calls = std::mem::take(&mut backend.calls);
    let action = std::mem::take(&mut backend.action);
    workloads
        .containers
        .retain(|name, _| declared.contains(name));
    working.containers = workloads.containers;
    match result {
        Ok(queue) => {
            working.deferred = queue;
            Ok(Output {
                state: working,
                calls,
                action,
            })
        }
        Err(error) => {
            let mut rolled_back = state.clone();
            rolled_back.unit_status = working.unit_status;
            rolled_back.app_status = working.app_status;
            rolled_back.workload_version = working.workload_version;
            rolled_back.logs = working.logs;
            rolled_back.containers = working.containers;
            Err(Box::new(Failure {
                error,
                state: rolled_back,
                calls,
            }))
        }
    }
}
