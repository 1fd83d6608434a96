//! Running a charm for one dispatch: replay the deferred events, handle the new one,
//! and keep what was deferred again.

use crate::backend::Backend;
use crate::context::Context;
use crate::defer;
use crate::event::Event;
use crate::hook::Hook;
use crate::hooktools::HookTools;
use crate::stats::STATS_FILE_VAR;
use crate::status::LogLevel;
use anyhow::Context as _;
use pebble_api::{PebbleSockets, Workloads};
use std::process::ExitCode;

/// What a handler did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Done with it.
    Done,
    /// Not now: run it again before the next event of the next dispatch.
    Deferred,
}

/// A charm: one handler for every event.
pub trait Charm {
    /// Handles one event. An error fails the hook: Juju discards its relation,
    /// secret and port changes, and retries it.
    fn handle(&mut self, hook: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled>;

    /// Runs once per dispatch, after every event was handled (actions excepted):
    /// the place to work out and set the unit's status from the state as it now is.
    fn collect_status(&mut self, _hook: &mut Hook<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Runs one dispatch: every deferred event (oldest first, unless the event is one
/// where Juju restricts the tools), then the new one, then the charm's status
/// collection. Returns the new queue.
pub fn run(
    charm: &mut dyn Charm,
    context: &Context,
    backend: &mut dyn Backend,
    workloads: &mut dyn Workloads,
    deferred: Vec<Event>,
) -> anyhow::Result<Vec<Event>> {
    let mut hook = Hook::new(context, backend, workloads);
    let mut queue = Vec::new();
    let (replay, mut queue_kept) = if context.event.replays_deferred() {
        (deferred, Vec::new())
    } else {
        (Vec::new(), deferred)
    };
    for event in replay {
        let handled = charm
            .handle(&mut hook, &event)
            .with_context(|| format!("deferred {} failed", describe(&event)))?;
        if handled == Handled::Deferred {
            defer::push(&mut queue, &event);
        }
    }
    queue.append(&mut queue_kept);
    let event = &context.event;
    let handled = charm
        .handle(&mut hook, event)
        .with_context(|| format!("{} failed", describe(event)))?;
    if handled == Handled::Deferred {
        if let Event::Action(a) = event {
            anyhow::bail!("action {} cannot be deferred", a.name);
        }
        defer::push(&mut queue, event);
    }
    if !matches!(event, Event::Action(_)) {
        charm
            .collect_status(&mut hook)
            .context("collecting the status failed")?;
    }
    hook.flush().context("writing relation data failed")?;
    Ok(queue)
}

fn describe(event: &Event) -> String {
    match event {
        Event::Action(a) => format!("action {}", a.name),
        other => format!("hook {}", other.hook_name()),
    }
}

/// The `main` of a charm's `dispatch` binary: reads Juju's environment, runs the
/// charm with the real hook tools and Pebble sockets, and saves the deferred events
/// when it succeeds. A failure is logged to Juju and ends the process with exit 1.
pub fn main(mut charm: impl Charm) -> ExitCode {
    let context = match Context::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut tools = HookTools::new();
    let mut pebble = PebbleSockets::default();
    let result = defer::load(&context.charm_dir)
        .map_err(anyhow::Error::from)
        .and_then(|queue| run(&mut charm, &context, &mut tools, &mut pebble, queue))
        .and_then(|queue| Ok(defer::save(&context.charm_dir, &queue)?));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("ERROR {message}");
            let _ = tools.juju_log(LogLevel::Error, &message);
            ExitCode::FAILURE
        }
    };
    if let Some(path) = std::env::var_os(STATS_FILE_VAR) {
        let json = serde_json::to_vec(tools.stats()).expect("stats serialise");
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!(
                "WARNING cannot write tool stats to {}: {e}",
                path.to_string_lossy()
            );
        }
    }
    code
}
