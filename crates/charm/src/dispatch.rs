//! Running a charm for one dispatch: replay the deferred events, handle the new one,
//! set the status collected on the way, and keep what was deferred again.

use crate::backend::Backend;
use crate::commands;
use crate::context::Context;
use crate::defer;
use crate::event::Event;
use crate::hook::Hook;
use crate::hooktools::{HookTools, ProcessRunner, ToolRunner};
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
    /// the place to add the unit's candidate statuses, worked out from the state
    /// as it now is, with [`Hook::add_status`]. Dispatch then sets the highest of
    /// these and those the handlers added ([`crate::status::StatusCollector`]).
    fn collect_status(&mut self, _hook: &mut Hook<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Runs one dispatch: every deferred event (oldest first, unless the event is one
/// where Juju restricts the tools), then the new one, then the charm's status
/// collection, setting the collected status that wins. Returns the new queue.
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
        if let Some(status) = hook.statuses().highest().cloned() {
            hook.set_status(status)
                .context("setting the collected status failed")?;
        }
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
/// when it succeeds. A failure is logged to Juju and ends the process with exit 1;
/// so is a panic ([`log_panics`]), which then ends it as panics do.
pub fn main(mut charm: impl Charm) -> ExitCode {
    log_panics();
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

/// Installs a panic hook that sends the panic's message and location to
/// `juju-log` at ERROR, then runs the hook that was there before (which prints
/// it to stderr). Best effort: when `juju-log` cannot run, nothing more is tried.
/// The log carries only what the panic carried.
pub fn log_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = panic_message(info);
        let _ = ProcessRunner::default().run(&commands::juju_log(LogLevel::Error, &message));
        previous(info);
    }));
}

/// `panicked at <file>:<line>:<column>: <message>`, as Rust prints a panic.
fn panic_message(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    match info.location() {
        Some(at) => format!(
            "panicked at {}:{}:{}: {what}",
            at.file(),
            at.line(),
            at.column()
        ),
        None => format!("panicked: {what}"),
    }
}
