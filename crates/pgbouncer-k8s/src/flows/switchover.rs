//! A planned switchover that clients do not notice (`docs/pgbouncer-flows.md`,
//! "A planned switchover, as clients see it"). Every unit says in its
//! `backend-database` unit bag that it pauses (`pause-on-switchover`). When a
//! PostgreSQL unit asks for a switchover to itself (`switchover-request`),
//! each unit pauses its processes (SIGUSR1, `PAUSE`), waits (bounded) for
//! them to close their server connections, acknowledges the request's id,
//! and arms a timer that bounds the pause. It resumes (SIGUSR2, `RESUME`)
//! once the request is gone and it serves the new primary, or when the timer
//! fires, whichever comes first.

use super::Deps;
use crate::pgb::pause::PauseState;
use crate::state::{self, BACKEND, PEERS};
use crate::workload::CONTAINER;
use charm::event::Notice;
use charm::{Bag, BagChanges, Hook, LogLevel, Relation};
use pebble_api::timer::Timer;
use serde::Deserialize;

/// How long the pools stay paused at most, whatever happens.
pub const PAUSE_BOUND_SECONDS: u64 = 45;

/// The notice the pause's timer records.
pub const PAUSE_EXPIRED_NOTICE: &str = "canonical.com/pgbouncer/switchover-pause-expired";

/// The timer's service.
pub const TIMER_SERVICE: &str = "switchover-pause-bound";

/// A PostgreSQL unit's switchover request, as much as PgBouncer reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Request {
    pub id: String,
    pub candidate: String,
    /// The candidate's endpoint (`host:port`), the primary to serve next.
    pub primary: String,
}

/// This unit's pause, as its bag records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paused {
    /// The request it paused for.
    pub id: String,
    /// The primary it waits to serve.
    pub primary: String,
}

/// What the unit does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A new request: pause, acknowledge, arm the bound.
    Pause(Request),
    /// The request is gone and the unit serves the new primary: resume.
    Resume,
    /// Nothing: no request, or paused and still waiting.
    Hold,
}

/// Decides from the request PostgreSQL shows, this unit's pause and whether
/// the unit serves the primary it waits for.
pub fn decide(request: Option<Request>, paused: Option<&Paused>, serves_awaited: bool) -> Step {
    match (request, paused) {
        (Some(r), Some(p)) if r.id == p.id => Step::Hold,
        (Some(r), _) => Step::Pause(r),
        (None, Some(_)) if serves_awaited => Step::Resume,
        (None, _) => Step::Hold,
    }
}

fn timer(deps: &Deps) -> String {
    deps.workload.pause_timer()
}

fn arm(hook: &mut Hook<'_>, deps: &Deps, id: &str) -> anyhow::Result<()> {
    let script = timer(deps);
    let t = Timer {
        service: TIMER_SERVICE,
        script: &script,
        key: PAUSE_EXPIRED_NOTICE,
    };
    t.arm(hook.container(CONTAINER), PAUSE_BOUND_SECONDS, id)?;
    Ok(())
}

fn disarm(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let script = timer(deps);
    let t = Timer {
        service: TIMER_SERVICE,
        script: &script,
        key: PAUSE_EXPIRED_NOTICE,
    };
    t.disarm(hook.container(CONTAINER))?;
    Ok(())
}

/// Whether a notice from `container` is the pause's bound.
pub fn is_expiry(container: &str, notice: &Notice) -> bool {
    container == CONTAINER && notice.key == PAUSE_EXPIRED_NOTICE
}

fn backend_relation(hook: &mut Hook<'_>) -> anyhow::Result<Option<Relation>> {
    Ok(hook.relations(BACKEND)?.into_iter().next())
}

/// Every unit: says in its backend bag that it pauses on a switchover.
pub fn advertise(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
    hook.update_unit_bag(
        relation,
        BagChanges::new().set(state::PAUSE_ON_SWITCHOVER, "true"),
    )?;
    Ok(())
}

/// The request a PostgreSQL unit shows, if any.
fn request(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<Option<Request>> {
    for unit in hook.relation_units(relation)? {
        let bag = hook.bag(relation, &Bag::Unit(unit))?;
        if let Some(r) = bag
            .get(state::SWITCHOVER_REQUEST)
            .and_then(|raw| serde_json::from_str(raw).ok())
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// This unit's pause, from its backend bag.
pub fn paused(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<Option<Paused>> {
    let bag = hook.local_unit_bag(relation)?;
    Ok(bag.get(state::SWITCHOVER_PAUSED).map(|id| Paused {
        id: id.clone(),
        primary: bag
            .get(state::SWITCHOVER_PRIMARY)
            .cloned()
            .unwrap_or_default(),
    }))
}

/// Whether this unit serves the published configuration and it sends the
/// databases to `primary` (`host:port`), or has none.
fn serves(hook: &mut Hook<'_>, primary: &str) -> anyhow::Result<bool> {
    let Some((host, port)) = primary.rsplit_once(':') else {
        return Ok(false);
    };
    let Some(peers) = hook.relations(PEERS)?.into_iter().next() else {
        return Ok(false);
    };
    let Some(cfg) = hook.local_app_bag(&peers)?.get(state::CFG_FILE).cloned() else {
        return Ok(false);
    };
    let serving = hook.local_unit_bag(&peers)?.get(state::SERVING).cloned();
    let to_primary = cfg.contains(&format!("host={host} port={port}")) || !cfg.contains("host=");
    Ok(serving == Some(state::digest(&cfg)) && to_primary)
}

/// After a backend or peer relation-changed (once this unit served what it
/// was given): pauses for a new request, or resumes once the request is
/// gone and the unit serves the new primary.
pub fn converge(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let Some(relation) = backend_relation(hook)? else {
        return Ok(());
    };
    advertise(hook, &relation)?;
    let request = request(hook, &relation)?;
    let paused = paused(hook, &relation)?;
    let serves_awaited = match &paused {
        Some(p) => serves(hook, &p.primary)?,
        None => false,
    };
    match decide(request, paused.as_ref(), serves_awaited) {
        Step::Hold => Ok(()),
        Step::Pause(r) => pause(hook, deps, &relation, &r),
        Step::Resume => resume(hook, deps, &relation, "it serves the new primary"),
    }
}

/// Pauses every process, waits for them to close their server
/// connections, acknowledges and arms the bound.
fn pause(
    hook: &mut Hook<'_>,
    deps: &Deps,
    relation: &Relation,
    request: &Request,
) -> anyhow::Result<()> {
    let pebble_up = hook.container(CONTAINER).can_connect();
    let what = if pebble_up {
        // Armed first: starting its service takes Pebble's okay delay, which
        // clients need not wait through.
        arm(hook, deps, &request.id)?;
        let paused = deps
            .workload
            .signal_running(hook.container(CONTAINER), "SIGUSR1")?;
        let exporter = format!(
            "{}:{}",
            super::own_address(hook)?,
            super::metrics::EXPORTER_PORT
        );
        let state = if paused.is_empty() {
            PauseState::Paused
        } else {
            deps.workload.wait_paused(&exporter)
        };
        match state {
            PauseState::Paused => format!("{} processes paused", paused.len()),
            PauseState::Draining(n) => format!(
                "{} processes pausing, {n} server connections still open",
                paused.len()
            ),
            PauseState::Unknown => format!(
                "{} processes told to pause (the exporter could not confirm it)",
                paused.len()
            ),
        }
    } else {
        "the container does not answer: nothing to pause".to_string()
    };
    hook.log(
        LogLevel::Info,
        &format!("switchover {} to {}: {what}", request.id, request.candidate),
    )?;
    hook.update_unit_bag(
        relation,
        BagChanges::new()
            .set(state::SWITCHOVER_PAUSED, &request.id)
            .set(state::SWITCHOVER_PRIMARY, &request.primary),
    )?;
    Ok(())
}

/// Resumes every process and clears the acknowledgement.
fn resume(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation, why: &str) -> anyhow::Result<()> {
    if hook.container(CONTAINER).can_connect() {
        deps.workload
            .signal_running(hook.container(CONTAINER), "SIGUSR2")?;
        disarm(hook, deps)?;
    }
    hook.update_unit_bag(
        relation,
        BagChanges::new()
            .unset(state::SWITCHOVER_PAUSED)
            .unset(state::SWITCHOVER_PRIMARY),
    )?;
    hook.log(LogLevel::Info, &format!("pools resumed: {why}"))?;
    Ok(())
}

/// The pause's bound fired: resumes whatever happened, when the pause it
/// bounds is still on.
pub fn expired(hook: &mut Hook<'_>, deps: &Deps, notice: &Notice) -> anyhow::Result<()> {
    let Some(relation) = backend_relation(hook)? else {
        return Ok(());
    };
    let Some(paused) = paused(hook, &relation)? else {
        return Ok(());
    };
    let id = hook
        .container(CONTAINER)
        .notice(&notice.id)
        .ok()
        .and_then(|n| n.last_data.get("id").cloned());
    if id.is_some_and(|id| id != paused.id) {
        return Ok(());
    }
    hook.log(
        LogLevel::Warning,
        &format!(
            "switchover {}: pools paused for {PAUSE_BOUND_SECONDS} s without serving {}; resuming",
            paused.id, paused.primary
        ),
    )?;
    resume(hook, deps, &relation, "the pause's bound expired")
}

/// The status while paused.
pub fn status(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    let Some(relation) = backend_relation(hook)? else {
        return Ok(None);
    };
    Ok(paused(hook, &relation)?.map(|p| {
        format!(
            "pools paused for a switchover: waiting to serve {}",
            p.primary
        )
    }))
}
