//! A planned switchover that the poolers' clients do not notice
//! (`docs/postgresql-flows.md`, "A switchover, as PgBouncer's clients see
//! it"). A client unit that can pause its pools says so in its unit bag
//! (`pause-on-switchover`). When one does, `promote-to-primary` does not
//! switch over at once: the candidate writes a request (an id, itself, its
//! endpoint, a deadline) in its unit bag on every `database` relation, and
//! arms a timer for the deadline. Each pooler pauses and acknowledges the id;
//! once every one has (or the deadline passed), the candidate switches over
//! through Patroni and clears the request. The poolers resume once they
//! serve the new primary.

use super::{cluster_status, Ctx, Deps};
use crate::patroni::{Cluster, PatroniError};
use crate::state::{self, DATABASE};
use crate::workload::CONTAINER;
use charm::{BagChanges, Hook, LogLevel, Relation};
use pebble_api::timer::Timer;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long the candidate waits for the poolers' acknowledgements.
pub const ACK_WAIT_SECONDS: u64 = 15;

/// The notice the candidate's timer records at the request's deadline.
pub const DEADLINE_NOTICE: &str = "canonical.com/postgresql/switchover-deadline";

/// The timer's service.
pub const TIMER_SERVICE: &str = "switchover-deadline";

/// A switchover the candidate waits to make, as written on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per request: the poolers acknowledge it.
    pub id: String,
    /// The unit to promote.
    pub candidate: String,
    /// Its endpoint (`host:port`), as `endpoints` will name it.
    pub primary: String,
    /// Seconds since the epoch after which the candidate switches over
    /// without the missing acknowledgements.
    pub deadline: u64,
}

/// A remote unit that pauses its pools on a switchover, and whether it
/// acknowledged the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pooler {
    pub unit: String,
    pub acknowledged: bool,
}

/// What the candidate does next about its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Some poolers have not acknowledged yet, and the deadline is ahead.
    Wait { missing: Vec<String> },
    /// Switch over: every pooler acknowledged (`late` empty), or the
    /// deadline passed without the units named.
    SwitchOver { late: Vec<String> },
}

/// Decides for a pending request.
pub fn decide(request: &Request, poolers: &[Pooler], now: u64) -> Next {
    let missing: Vec<String> = poolers
        .iter()
        .filter(|p| !p.acknowledged)
        .map(|p| p.unit.clone())
        .collect();
    if missing.is_empty() || now >= request.deadline {
        Next::SwitchOver { late: missing }
    } else {
        Next::Wait { missing }
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn timer(deps: &Deps) -> (String, &'static str) {
    (
        format!("{}/switchover-timer", deps.workload.layout.storage_dir),
        TIMER_SERVICE,
    )
}

/// Whether a notice from `container` is the candidate's deadline.
pub fn is_deadline(container: &str, notice: &charm::event::Notice) -> bool {
    container == CONTAINER && notice.key == DEADLINE_NOTICE
}

/// The remote units of every `database` relation that pause their pools on a
/// switchover, with whether they acknowledged `id`.
pub fn poolers(hook: &mut Hook<'_>, id: Option<&str>) -> anyhow::Result<Vec<Pooler>> {
    let mut out = Vec::new();
    for relation in hook.relations(DATABASE)? {
        for unit in hook.relation_units(&relation)? {
            let bag = hook.bag(&relation, &charm::Bag::Unit(unit.clone()))?;
            if bag.get(state::PAUSE_ON_SWITCHOVER).map(String::as_str) != Some("true") {
                continue;
            }
            let acknowledged = id.is_some_and(|id| {
                bag.get(state::SWITCHOVER_PAUSED).map(String::as_str) == Some(id)
            });
            out.push(Pooler { unit, acknowledged });
        }
    }
    Ok(out)
}

/// This unit's pending request, if any (the same in each of its bags).
pub fn pending(hook: &mut Hook<'_>) -> anyhow::Result<Option<Request>> {
    for relation in hook.relations(DATABASE)? {
        if let Some(raw) = hook
            .local_unit_bag(&relation)?
            .get(state::SWITCHOVER_REQUEST)
        {
            if let Ok(request) = serde_json::from_str(raw) {
                return Ok(Some(request));
            }
        }
    }
    Ok(None)
}

fn write(hook: &mut Hook<'_>, relations: &[Relation], value: Option<String>) -> anyhow::Result<()> {
    for relation in relations {
        hook.update_unit_bag(
            relation,
            BagChanges::new().set_or_unset(state::SWITCHOVER_REQUEST, value.clone()),
        )?;
    }
    Ok(())
}

/// promote-to-primary, with `poolers` pausing: writes the request in this
/// unit's bag on every `database` relation and arms the deadline's timer.
pub fn schedule(hook: &mut Hook<'_>, deps: &Deps, endpoint: String) -> anyhow::Result<Request> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let request = Request {
        id: since_epoch.as_millis().to_string(),
        candidate: hook.unit().to_string(),
        primary: endpoint,
        deadline: since_epoch.as_secs() + ACK_WAIT_SECONDS,
    };
    let relations = hook.relations(DATABASE)?;
    write(hook, &relations, Some(serde_json::to_string(&request)?))?;
    let (script, service) = timer(deps);
    let t = Timer {
        service,
        script: &script,
        key: DEADLINE_NOTICE,
    };
    // The timer wakes this unit at the deadline; one more second so that
    // the deadline has passed when it does.
    if let Err(e) = t.arm(hook.container(CONTAINER), ACK_WAIT_SECONDS + 1, &request.id) {
        hook.log(
            LogLevel::Warning,
            &format!("cannot arm the switchover's timer: {e}; a pooler's acknowledgement or update-status goes on with it"),
        )?;
    }
    Ok(request)
}

/// Why Patroni refused a switchover to a member that is not a synchronous
/// standby (in synchronous mode).
pub const NOT_SYNC_STANDBY: &str = "Unit is not sync standby";

/// Switches over to this unit through Patroni now. `Ok` is what happened
/// (for the action's result), `Err` why not (for its failure).
pub fn switch_over(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    cluster: &Cluster,
) -> anyhow::Result<Result<String, String>> {
    const FAILED: &str = "Switchover failed or timed out, check the logs for details";
    let me = state::member_name(hook.unit());
    let Some(primary) = cluster.primary().cloned() else {
        return Ok(Err(FAILED.into()));
    };
    if primary.name == me {
        return Ok(Ok(format!("{} is already the primary", hook.unit())));
    }
    match deps
        .patroni
        .switchover(ctx.api(), &primary.host, &primary.name, Some(&me))
    {
        Ok(()) => {
            hook.log(
                LogLevel::Info,
                &format!("switched over from {} to {me}", primary.name),
            )?;
            Ok(Ok(format!("{} is the primary", hook.unit())))
        }
        Err(PatroniError::NotSyncStandby) => Ok(Err(NOT_SYNC_STANDBY.into())),
        Err(e) => {
            hook.log(LogLevel::Error, &format!("switchover to {me} failed: {e}"))?;
            Ok(Err(FAILED.into()))
        }
    }
}

/// On a `database` relation-changed or the deadline's notice: switches over
/// once every pooler acknowledged the pending request (or its deadline
/// passed), then clears the request.
pub fn progress(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let Some(request) = pending(hook)? else {
        return Ok(());
    };
    let poolers = poolers(hook, Some(&request.id))?;
    let late = match decide(&request, &poolers, now()) {
        Next::Wait { .. } => return Ok(()),
        Next::SwitchOver { late } => late,
    };
    if !late.is_empty() {
        hook.log(
            LogLevel::Warning,
            &format!(
                "switchover {}: no acknowledgement from {} by the deadline; switching over",
                request.id,
                late.join(", ")
            ),
        )?;
    }
    let outcome = match super::lifecycle::quiet_context(hook)? {
        Some(ctx) => match cluster_status(hook, deps, &ctx)? {
            Some(cluster) => switch_over(hook, deps, &ctx, &cluster)?,
            None => Err("the cluster's state cannot be read".to_string()),
        },
        None => Err("the cluster is not set up".to_string()),
    };
    match outcome {
        Ok(what) => hook.log(
            LogLevel::Info,
            &format!("switchover {}: {what}", request.id),
        )?,
        Err(why) => hook.log(
            LogLevel::Error,
            &format!("switchover {} to {}: {why}", request.id, request.candidate),
        )?,
    }
    let relations = hook.relations(DATABASE)?;
    write(hook, &relations, None)?;
    let (script, service) = timer(deps);
    let t = Timer {
        service,
        script: &script,
        key: DEADLINE_NOTICE,
    };
    if hook.container(CONTAINER).can_connect() {
        t.disarm(hook.container(CONTAINER))?;
    }
    Ok(())
}

/// The status while a request is pending: what the candidate waits for.
pub fn waiting(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    let Some(request) = pending(hook)? else {
        return Ok(None);
    };
    let poolers = poolers(hook, Some(&request.id))?;
    let missing = poolers.iter().filter(|p| !p.acknowledged).count();
    Ok(Some(format!(
        "switchover to this unit: waiting for {missing} of {} pooler units to pause",
        poolers.len()
    )))
}
