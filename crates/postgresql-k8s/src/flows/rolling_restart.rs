//! The rolling restart (`docs/postgresql-flows.md`, "Rolling restart"): a
//! member whose PostgreSQL waits for a restart (Patroni's `pending_restart`,
//! after a change to a parameter read only at start, or TLS turned on or
//! off, [`state::TLS_RESTART`]) is restarted, one
//! member at a time, replicas first, the primary last after a planned
//! switchover to a restarted replica (which the poolers pause for, as for
//! `promote-to-primary`).
//!
//! Each unit reports in its peer bag whether its member waits for a restart
//! ([`state::RESTART_PENDING`]); the leader, woken by that, grants one step
//! at a time in the peer application bag ([`state::ROLLING_RESTART`]: the
//! unit, the step and a generation); the granted unit restarts its own
//! member (or switches over to itself) and reports the generation done in
//! its peer bag ([`state::RESTART_DONE`]), which wakes the leader for the
//! next step. [`decide`] is the leader's choice, pure.

use super::lifecycle::quiet_context;
use super::{
    cluster_status, database, member_started, switchover, tls_applied, Ctx, Deps, Findings,
};
use crate::state;
use crate::workload::CONTAINER;
use charm::{Bag, BagChanges, Hook, LogLevel, Status};
use pebble_api::timer::Timer;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The notice the restart check's timer records.
pub const CHECK_NOTICE: &str = "canonical.com/postgresql/restart-check";

/// The restart check's timer service.
pub const TIMER_SERVICE: &str = "restart-check";

/// How long after a change to a start-only parameter a unit looks again for
/// its member's pending restart, when Patroni has not reported it yet (its
/// loop runs every ten seconds).
pub const CHECK_SECONDS: u64 = 12;

/// How often the leader looks again while the roll waits on what no event
/// announces (a member to run again, a switchover to take effect).
pub const RECHECK_SECONDS: u64 = 5;

/// How long, at most, a unit waits for Patroni to report the pending restart
/// a change it just applied calls for (no longer than it waits for its
/// member to start), before leaving it to the timer.
const PENDING_WAIT: Duration = Duration::from_secs(3);

/// What one granted unit does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Restart its own member.
    Restart,
    /// Switch over to itself (the primary restarts next, as a replica).
    Switchover,
}

/// The step granted to one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub unit: String,
    pub step: Step,
}

/// Why the roll does not go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "why", content = "unit")]
pub enum Halt {
    /// The granted unit's member did not come back running (or its step
    /// failed): nothing else restarts until it runs.
    Stopped(String),
    /// Another member does not run: nothing restarts until it does.
    NotRunning(String),
    /// No member leads the cluster.
    NoPrimary,
}

/// The roll as the leader records it ([`state::ROLLING_RESTART`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roll {
    /// Raised with each grant; a unit reports the generation it completed.
    pub generation: u64,
    /// The step in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    /// Members restarted since the roll began.
    #[serde(default)]
    pub restarted: u32,
    /// Members to restart in this roll (the restarted ones included).
    #[serde(default)]
    pub total: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<Halt>,
}

/// What a unit reports of its granted step ([`state::RESTART_DONE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub generation: u64,
    /// The member runs after its restart (or the switchover was made or
    /// scheduled).
    pub ok: bool,
}

/// One member as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    pub unit: String,
    pub primary: bool,
    pub sync_standby: bool,
    /// Its PostgreSQL runs (or streams).
    pub running: bool,
    /// Its PostgreSQL waits for a restart.
    pub pending: bool,
    /// What its unit last reported done.
    pub done: Option<Done>,
}

/// The leader's choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// No member waits for a restart: the roll is over (or never began).
    Idle,
    /// The granted step is not reported done yet (or, a switchover, has not
    /// taken effect yet).
    Wait(Grant),
    /// The roll stops (see [`Halt`]).
    Halted(Halt),
    /// Grant this step next.
    Grant(Grant),
}

/// Decides the roll's next step from its record and the members (the units
/// that are gone left out), and the record to keep.
pub fn decide(roll: &Roll, members: &[MemberView]) -> (Next, Roll) {
    let pending = members.iter().filter(|m| m.pending).count() as u32;
    let mut restarted = roll.restarted;
    let holder = roll
        .grant
        .as_ref()
        .and_then(|g| members.iter().find(|m| m.unit == g.unit).map(|m| (g, m)));
    if let Some((grant, member)) = holder {
        match member.done.filter(|d| d.generation == roll.generation) {
            None => {
                let kept = Roll {
                    total: restarted + pending,
                    halt: None,
                    ..roll.clone()
                };
                return (Next::Wait(grant.clone()), kept);
            }
            Some(done) if !done.ok => {
                let halt = Halt::Stopped(grant.unit.clone());
                let kept = Roll {
                    halt: Some(halt.clone()),
                    ..roll.clone()
                };
                return (Next::Halted(halt), kept);
            }
            Some(_) => {}
        }
        let old_primary_waits = members
            .iter()
            .any(|m| m.primary && m.pending && m.unit != grant.unit);
        if grant.step == Step::Switchover && old_primary_waits {
            let kept = Roll {
                total: restarted + pending,
                halt: None,
                ..roll.clone()
            };
            return (Next::Wait(grant.clone()), kept);
        }
        if grant.step == Step::Restart {
            restarted += 1;
        }
    }
    if pending == 0 {
        let over = Roll {
            generation: roll.generation,
            ..Roll::default()
        };
        return (Next::Idle, over);
    }
    let halted = |halt: Halt| {
        let record = Roll {
            generation: roll.generation,
            grant: None,
            restarted,
            total: restarted + pending,
            halt: Some(halt.clone()),
        };
        (Next::Halted(halt), record)
    };
    if let Some(down) = members.iter().find(|m| !m.running) {
        return halted(Halt::NotRunning(down.unit.clone()));
    }
    let Some(primary) = members.iter().find(|m| m.primary) else {
        return halted(Halt::NoPrimary);
    };
    // Replicas first, the asynchronous ones before the synchronous standbys.
    let mut replicas: Vec<&MemberView> =
        members.iter().filter(|m| m.pending && !m.primary).collect();
    replicas.sort_by_key(|m| (m.sync_standby, m.unit.clone()));
    let grant = match replicas.first() {
        Some(replica) => Grant {
            unit: replica.unit.clone(),
            step: Step::Restart,
        },
        None => {
            // Only the primary waits: a switchover to a restarted replica
            // (a synchronous standby when there is one), or, alone, in place.
            let any_sync = members.iter().any(|m| m.sync_standby);
            let mut candidates: Vec<&MemberView> = members
                .iter()
                .filter(|m| !m.primary && (m.sync_standby || !any_sync))
                .collect();
            candidates.sort_by_key(|m| m.unit.clone());
            match candidates.first() {
                Some(candidate) => Grant {
                    unit: candidate.unit.clone(),
                    step: Step::Switchover,
                },
                None => Grant {
                    unit: primary.unit.clone(),
                    step: Step::Restart,
                },
            }
        }
    };
    let record = Roll {
        generation: roll.generation + 1,
        grant: Some(grant.clone()),
        restarted,
        total: restarted + pending,
        halt: None,
    };
    (Next::Grant(grant), record)
}

/// The roll the leader recorded (none yet: the default).
pub fn roll(hook: &mut Hook<'_>, peers: &charm::Relation) -> anyhow::Result<Roll> {
    match hook.local_app_bag(peers)?.get(state::ROLLING_RESTART) {
        None => Ok(Roll::default()),
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            anyhow::anyhow!(
                "the peer {} record is not valid: {e}",
                state::ROLLING_RESTART
            )
        }),
    }
}

fn done_of(bag: &charm::Databag) -> Option<Done> {
    bag.get(state::RESTART_DONE)
        .and_then(|raw| serde_json::from_str(raw).ok())
}

fn timer(deps: &Deps) -> (String, &'static str) {
    (
        format!("{}/restart-check-timer", deps.workload.layout.storage_dir),
        TIMER_SERVICE,
    )
}

/// Whether a notice from `container` is the restart check's timer.
pub fn is_check(container: &str, notice: &charm::event::Notice) -> bool {
    container == CONTAINER && notice.key == CHECK_NOTICE
}

fn arm(hook: &mut Hook<'_>, deps: &Deps, seconds: u64) -> anyhow::Result<()> {
    let (script, service) = timer(deps);
    let t = Timer {
        service,
        script: &script,
        key: CHECK_NOTICE,
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(());
    }
    if let Err(e) = t.arm(hook.container(CONTAINER), seconds, "check") {
        hook.log(
            LogLevel::Warning,
            &format!("cannot arm the restart check's timer: {e}; update-status looks again"),
        )?;
    }
    Ok(())
}

/// Every unit, after the other flows of its hook: reports whether its member
/// waits for a restart, carries out a step granted to it, and, on the
/// leader, grants the next one.
pub fn converge(hook: &mut Hook<'_>, deps: &Deps, findings: &mut Findings) -> anyhow::Result<()> {
    let Some(ctx) = quiet_context(hook)? else {
        return Ok(());
    };
    if !state::initialised(hook, &ctx.peers)?
        || !state::members(hook, &ctx.peers)?.contains(&ctx.address)
        || !deps
            .workload
            .running(hook.container(CONTAINER))
            .unwrap_or(false)
    {
        return Ok(());
    }
    report(hook, deps, findings, &ctx)?;
    // The leader may grant itself a step: it carries it out at once. Each
    // pass grants a new step or stops; a roll has at most two per member.
    let bound = 2 * state::members(hook, &ctx.peers)?.len() + 2;
    for _ in 0..bound {
        carry_out(hook, deps, findings, &ctx)?;
        if !hook.is_leader()? || !lead(hook, deps, &ctx)? {
            break;
        }
    }
    Ok(())
}

/// Writes this unit's [`state::RESTART_PENDING`] from its member's health;
/// after a change that calls for a restart, waits a little for Patroni to
/// report it, then leaves it to a timer.
fn report(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + deps.start_timeout.min(PENDING_WAIT);
    let pending = loop {
        let health = match findings.health.clone() {
            Some(h) => Some(h),
            None => deps.patroni.health(ctx.api(), &ctx.address).ok(),
        };
        let pending = health.as_ref().is_some_and(|h| h.pending_restart);
        findings.health = health;
        if pending || !findings.restart_expected || Instant::now() >= deadline {
            break pending;
        }
        std::thread::sleep(Duration::from_millis(250));
        findings.health = None;
    };
    if findings.restart_expected && !pending {
        arm(hook, deps, CHECK_SECONDS)?;
    }
    set_pending(hook, ctx, pending)
}

/// Whether a unit's peer bag says its member waits for a restart: for its
/// parameters (as its unit reported Patroni's word) or to turn TLS on or off.
fn waits_in(bag: &charm::Databag) -> bool {
    bag.get(state::RESTART_PENDING).is_some_and(|v| v == "true")
        || bag.contains_key(state::TLS_RESTART)
}

/// Writes this unit's [`state::RESTART_PENDING`]: Patroni's `pending`, or a
/// TLS change waiting for the restart.
fn set_pending(hook: &mut Hook<'_>, ctx: &Ctx, pending: bool) -> anyhow::Result<()> {
    let pending = pending
        || hook
            .local_unit_bag(&ctx.peers)?
            .contains_key(state::TLS_RESTART);
    let reported =
        hook.local_unit_bag(&ctx.peers)?.get(state::RESTART_PENDING) == Some(&"true".to_string());
    if reported != pending {
        hook.update_unit_bag(
            &ctx.peers,
            BagChanges::new()
                .set_or_unset(state::RESTART_PENDING, pending.then(|| "true".to_string())),
        )?;
    }
    Ok(())
}

/// Carries out the step granted to this unit, once per generation; a
/// restart that left the member stopped is looked at again until it runs.
fn carry_out(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let roll = roll(hook, &ctx.peers)?;
    let Some(grant) = roll.grant.filter(|g| g.unit == hook.unit()) else {
        return Ok(());
    };
    let done =
        done_of(hook.local_unit_bag(&ctx.peers)?).filter(|d| d.generation == roll.generation);
    let ok = match (done, grant.step) {
        (Some(d), _) if d.ok => return Ok(()),
        (Some(_), Step::Restart) => {
            // Not running after its restart: is it now?
            findings.health = None;
            if !member_started(deps, findings, ctx, Duration::ZERO) {
                return Ok(());
            }
            hook.log(LogLevel::Info, "rolling restart: PostgreSQL runs again")?;
            true
        }
        (_, Step::Restart) => restart(hook, deps, findings, ctx)?,
        (_, Step::Switchover) => match switch_over(hook, deps, ctx)? {
            Some(ok) => ok,
            None => {
                // Not a synchronous standby yet: Patroni names it one a
                // loop after it streams again; the timer tries again.
                return arm(hook, deps, RECHECK_SECONDS);
            }
        },
    };
    // A member that runs after its restart serves the TLS it was given; the
    // leader tells clients at once (another unit's change wakes it).
    if ok && grant.step == Step::Restart && tls_applied(hook, ctx)? {
        hook.log(
            LogLevel::Info,
            "rolling restart: PostgreSQL serves the TLS it was given",
        )?;
        if hook.is_leader()? {
            database::refresh_all(hook, deps, ctx, None)?;
        }
    }
    let pending = findings.health.as_ref().is_some_and(|h| h.pending_restart);
    let done = serde_json::to_string(&Done {
        generation: roll.generation,
        ok,
    })?;
    hook.update_unit_bag(&ctx.peers, BagChanges::new().set(state::RESTART_DONE, done))?;
    set_pending(hook, ctx, pending)
}

/// Restarts this unit's member through Patroni; whether it runs after.
fn restart(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    ctx: &Ctx,
) -> anyhow::Result<bool> {
    hook.set_status(Status::Maintenance(RESTARTING.into()))?;
    if let Err(e) = deps.patroni.restart(ctx.api(), &ctx.address) {
        hook.log(
            LogLevel::Error,
            &format!("rolling restart: Patroni did not restart PostgreSQL: {e}"),
        )?;
    }
    findings.health = None;
    let started = member_started(deps, findings, ctx, deps.start_timeout);
    let ok = started;
    hook.log(
        if ok { LogLevel::Info } else { LogLevel::Error },
        &format!(
            "rolling restart: {}",
            if ok {
                "PostgreSQL restarted"
            } else {
                "PostgreSQL is not running after its restart"
            }
        ),
    )?;
    Ok(ok)
}

/// Switches over to this unit: at once without poolers that pause, else
/// scheduled as `promote-to-primary` schedules it. Whether it was made or
/// scheduled; `None` while Patroni refuses it because this member is not a
/// synchronous standby yet (it becomes one a loop after it streams again).
fn switch_over(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<Option<bool>> {
    if switchover::pending(hook)?.is_some() {
        return Ok(Some(true));
    }
    let Some(cluster) = cluster_status(hook, deps, ctx)? else {
        return Ok(Some(false));
    };
    let me = state::member_name(hook.unit());
    let Some(own) = cluster.members.iter().find(|m| m.name == me) else {
        return Ok(Some(false));
    };
    let poolers = switchover::poolers(hook, None)?;
    if poolers.is_empty() {
        return Ok(match switchover::switch_over(hook, deps, ctx, &cluster)? {
            Ok(what) => {
                hook.log(LogLevel::Info, &format!("rolling restart: {what}"))?;
                Some(true)
            }
            Err(why) if why == switchover::NOT_SYNC_STANDBY => {
                hook.log(
                    LogLevel::Info,
                    "rolling restart: waiting for Patroni to make this member a synchronous \
                     standby before the switchover",
                )?;
                None
            }
            Err(why) => {
                hook.log(
                    LogLevel::Error,
                    &format!("rolling restart: the switchover to this unit failed: {why}"),
                )?;
                Some(false)
            }
        });
    }
    let endpoint = own.endpoint();
    let request = switchover::schedule(hook, deps, endpoint)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "rolling restart: switchover {} to {me} scheduled before the primary restarts: \
             waiting for {} pooler units to pause",
            request.id,
            poolers.len()
        ),
    )?;
    Ok(Some(true))
}

/// Leader: decides and records the next step; `true` when it granted a new
/// step to this unit (to carry out in the same hook).
fn lead(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<bool> {
    let roll = roll(hook, &ctx.peers)?;
    let mut units = vec![hook.unit().to_string()];
    units.extend(
        state::peer_units(hook, &ctx.peers)?
            .into_iter()
            .map(|u| u.name),
    );
    let mut flagged = false;
    let mut bags = Vec::new();
    for unit in &units {
        let bag = if unit == hook.unit() {
            hook.local_unit_bag(&ctx.peers)?.clone()
        } else {
            hook.bag(&ctx.peers, &Bag::Unit(unit.clone()))?.clone()
        };
        flagged |= waits_in(&bag);
        bags.push((unit.clone(), bag));
    }
    if roll.grant.is_none() && roll.halt.is_none() && !flagged {
        return Ok(false);
    }
    let Some(cluster) = cluster_status(hook, deps, ctx)? else {
        return Ok(false);
    };
    let mut members = Vec::new();
    for m in &cluster.members {
        let unit = state::unit_of_member(&m.name);
        let Some((_, bag)) = bags.iter().find(|(u, _)| *u == unit) else {
            continue;
        };
        let health = deps.patroni.health(ctx.api(), &m.host).ok();
        members.push(MemberView {
            unit,
            primary: m.is_leader(),
            sync_standby: m.role == "sync_standby",
            running: m.is_ready() && health.as_ref().is_some_and(|h| h.started()),
            pending: health.as_ref().is_some_and(|h| h.pending_restart)
                || bag.contains_key(state::TLS_RESTART),
            done: done_of(bag),
        });
    }
    members.sort_by(|a, b| a.unit.cmp(&b.unit));
    let (next, record) = decide(&roll, &members);
    if record != roll {
        hook.update_app_bag(
            &ctx.peers,
            BagChanges::new().set(state::ROLLING_RESTART, serde_json::to_string(&record)?),
        )?;
        let what = match &next {
            Next::Idle => "over: no member waits for a restart".to_string(),
            Next::Wait(g) => format!("waiting for {} ({:?})", g.unit, g.step),
            Next::Halted(h) => halt_message(h),
            Next::Grant(g) => format!(
                "{} of {} members restarted; granted {} the next step ({:?})",
                record.restarted, record.total, g.unit, g.step
            ),
        };
        hook.log(LogLevel::Info, &format!("rolling restart: {what}"))?;
    }
    match &next {
        Next::Halted(Halt::NotRunning(_) | Halt::NoPrimary) => arm(hook, deps, RECHECK_SECONDS)?,
        Next::Wait(g) if g.step == Step::Switchover => arm(hook, deps, RECHECK_SECONDS)?,
        _ => {}
    }
    Ok(matches!(&next, Next::Grant(g) if g.unit == hook.unit()))
}

/// The status of a unit restarting its member.
pub const RESTARTING: &str = "rolling restart: restarting PostgreSQL";

/// The status a halted roll shows on the leader.
pub fn halt_message(halt: &Halt) -> String {
    match halt {
        Halt::Stopped(unit) => format!(
            "rolling restart stopped: {unit}'s step failed (its PostgreSQL is not running \
             after its restart, or its switchover failed: see its status and log); it goes on \
             once {unit} reports it done"
        ),
        Halt::NotRunning(unit) => {
            format!("rolling restart: waiting for {unit}'s PostgreSQL to run")
        }
        Halt::NoPrimary => "rolling restart: waiting for a primary".into(),
    }
}

/// The statuses the roll adds: on the leader, its progress (or why it
/// stopped); on the granted unit whose member did not come back, what to do.
pub fn statuses(hook: &mut Hook<'_>) -> anyhow::Result<Vec<Status>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Vec::new());
    };
    let roll = roll(hook, &peers)?;
    let mut out = Vec::new();
    if let Some(grant) = roll.grant.as_ref().filter(|g| g.unit == hook.unit()) {
        let done = done_of(hook.local_unit_bag(&peers)?);
        let failed = done.is_some_and(|d| d.generation == roll.generation && !d.ok);
        if failed && grant.step == Step::Restart {
            out.push(Status::Blocked(format!(
                "rolling restart: PostgreSQL is not running after its restart; check \
                 Patroni's log in the {CONTAINER} container (the roll goes on once it runs)"
            )));
        } else if failed {
            out.push(Status::Blocked(
                "rolling restart: the switchover to this unit before the primary's restart \
                 failed (see the log); it is tried again at this unit's next hook"
                    .into(),
            ));
        } else if done.is_none_or(|d| d.generation != roll.generation)
            && grant.step == Step::Restart
        {
            out.push(Status::Maintenance(RESTARTING.into()));
        }
    }
    if !hook.is_leader()? {
        return Ok(out);
    }
    match (&roll.halt, &roll.grant) {
        (Some(halt @ Halt::Stopped(_)), _) => out.push(Status::Blocked(halt_message(halt))),
        (Some(halt), _) => out.push(Status::Waiting(halt_message(halt))),
        (None, Some(grant)) => {
            let mut text = format!(
                "rolling restart: {} of {} members restarted",
                roll.restarted, roll.total
            );
            if grant.step == Step::Switchover {
                text.push_str(&format!(
                    ", switching over to {} before the primary restarts",
                    grant.unit
                ));
            }
            out.push(Status::Maintenance(text));
        }
        (None, None) => {}
    }
    Ok(out)
}
