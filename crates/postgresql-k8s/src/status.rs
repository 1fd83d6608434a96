//! The unit's status, collected once per dispatch from the state as it stands,
//! with the reference charm's messages: problems, how far the unit has come,
//! then its role; the most pressing candidate is shown.

use crate::dcs::{self, DcsState, NO_DCS};
use crate::flows::lifecycle::quiet_context;
use crate::flows::peers::MEMBER_STARTING;
use crate::flows::recovery::NewCluster;
use crate::flows::{
    backups, cluster_status, config, database, extensions, legacy, restore, unconfirmed_option,
    Ctx, Deps, Findings, Unconfirmed,
};
use crate::patroni::{Health, Role, DB_PORT};
use crate::postgres;
use crate::state;
use crate::workload::CONTAINER;
use charm::{Hook, Status};

/// Adds the unit's candidate statuses to the hook's collector, beside the
/// problems the flows met. A check that needs an earlier one to pass (the DCS
/// ready, the peer relation, the container up, ...) is skipped when it does not.
pub fn collect(hook: &mut Hook<'_>, deps: &Deps, findings: &Findings) -> anyhow::Result<()> {
    let config = match config(hook, deps)? {
        Ok(config) => config,
        Err(e) => {
            hook.add_status(Status::Blocked(e.to_string()));
            return Ok(());
        }
    };
    if let Unconfirmed::Refused(e) = unconfirmed_option(hook, deps, &config)? {
        hook.add_status(Status::Blocked(e.to_string()));
        return Ok(());
    }
    let dcs_ready = match dcs::choose(hook, deps.kubernetes.as_ref())? {
        DcsState::Missing => {
            hook.add_status(Status::Blocked(NO_DCS.into()));
            return Ok(());
        }
        DcsState::Waiting(why) => {
            hook.add_status(Status::Waiting(why));
            false
        }
        DcsState::Ready(_) => true,
    };
    if let Some(services) = crate::flows::services::status(hook)? {
        hook.add_status(services);
    }
    for refused in database::refusals(hook)? {
        hook.add_status(refused);
    }
    if let Some(refused) = legacy::refusals(hook)? {
        hook.add_status(Status::Blocked(refused));
    }
    if let Some(peers) = state::peers(hook)? {
        if let Some(failed) = restore::failed(hook, &peers)? {
            hook.add_status(Status::Blocked(failed));
        }
        if let Some(waiting) = restore::waiting(hook)? {
            hook.add_status(waiting);
        }
    }
    if let Some(problem) = backups::problem(hook)? {
        hook.add_status(Status::Blocked(problem));
    }
    if let Some(why) = extensions::blocked(hook)? {
        hook.add_status(Status::Blocked(why));
    }
    if let Some(waiting) = crate::flows::switchover::waiting(hook)? {
        hook.add_status(Status::Maintenance(waiting));
    }
    for status in crate::flows::rolling_restart::statuses(hook)? {
        hook.add_status(status);
    }
    if dcs_ready {
        let progress = cluster(hook, deps, findings)?;
        hook.add_status(progress);
    }
    Ok(())
}

/// How far this unit has come in the cluster, and its role once it serves.
fn cluster(hook: &mut Hook<'_>, deps: &Deps, findings: &Findings) -> anyhow::Result<Status> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Status::Waiting("waiting for the peer relation".into()));
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(Status::Waiting(
            "waiting for the postgresql container".into(),
        ));
    }
    let Some(ctx) = quiet_context(hook)? else {
        return Ok(Status::Waiting(
            "waiting for the leader to create the system users' passwords".into(),
        ));
    };
    let new_cluster = state::new_cluster(hook, &peers)?;
    if let Some(why) = new_cluster.as_deref().and_then(NewCluster::parse) {
        return Ok(Status::Maintenance(why.message().into()));
    }
    if !state::initialised(hook, &peers)? {
        return Ok(Status::Waiting(
            "waiting for the leader to initialise the cluster".into(),
        ));
    }
    if !state::members(hook, &peers)?.contains(&ctx.address) {
        return Ok(Status::Waiting(
            "waiting for the leader to add this unit to the cluster".into(),
        ));
    }
    // Patroni is asked only once its service runs: until then it cannot
    // answer, and asking (with retries) would hold up every hook of a new unit.
    let health = match &findings.health {
        Some(h) => Some(h.clone()),
        None if !deps
            .workload
            .running(hook.container(CONTAINER))
            .unwrap_or(false) =>
        {
            None
        }
        None => deps.patroni.health(ctx.api(), &ctx.address).ok(),
    };
    let tls_turn = hook
        .local_unit_bag(&peers)?
        .get(state::TLS_RESTART)
        .cloned();
    Ok(match health {
        Some(h) if h.started() && h.role() == Role::Replica && no_primary(hook, deps, &ctx)? => {
            Status::Waiting(NO_PRIMARY.into())
        }
        Some(h) if h.started() && tls_turn.is_some() => Status::Active(format!(
            "{}; {RESTART_PENDING} to turn TLS {}",
            role_message(&h),
            tls_turn.unwrap_or_default()
        )),
        Some(h) if h.started() && h.pending_restart => {
            Status::Active(restart_pending(deps, &ctx, role_message(&h)))
        }
        Some(h) if h.started() => Status::Active(role_message(&h).into()),
        _ => Status::Waiting(MEMBER_STARTING.into()),
    })
}

/// The active message of a member whose PostgreSQL runs with old values of
/// parameters it reads only at start, while it waits for its turn in the
/// rolling restart: the status names them (when PostgreSQL answers).
fn restart_pending(deps: &Deps, ctx: &Ctx, role: &str) -> String {
    let login = postgres::operator_login(&ctx.address, DB_PORT, ctx.passwords.get(state::OPERATOR));
    let names = deps
        .connector
        .connect(&login)
        .and_then(|mut pg| pg.pending_restart());
    match names {
        Ok(names) if !names.is_empty() => {
            format!("{role}; {RESTART_PENDING} for {}", names.join(", "))
        }
        _ => format!("{role}; {RESTART_PENDING}"),
    }
}

/// What the status says while PostgreSQL waits for a restart.
pub const RESTART_PENDING: &str = "PostgreSQL restart pending";

/// A replica's status while the cluster has no primary.
pub const NO_PRIMARY: &str = "no primary: Patroni promotes a synchronous standby once the old primary's lock expires (none if no standby was confirmed synchronous)";

/// Whether Patroni answers and names no primary; a replica then says so
/// rather than look healthy.
fn no_primary(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<bool> {
    Ok(cluster_status(hook, deps, ctx)?.is_some_and(|c| c.primary().is_none()))
}

/// The application's status, set by the leader: its own unit's, except that
/// an active cluster names its primary (`Primary: <unit>`), as the leader last
/// recorded it.
pub fn application(hook: &mut Hook<'_>, unit: &Status) -> anyhow::Result<Status> {
    if !matches!(unit, Status::Active(_)) {
        return Ok(unit.clone());
    }
    let primary = match state::peers(hook)? {
        Some(peers) => hook.local_app_bag(&peers)?.get(state::PRIMARY).cloned(),
        None => None,
    };
    Ok(Status::Active(
        primary
            .map(|member| format!("Primary: {}", state::unit_of_member(&member)))
            .unwrap_or_default(),
    ))
}

/// The active status names the member's role.
fn role_message(health: &Health) -> &'static str {
    match health.role() {
        Role::Primary => "Primary",
        Role::StandbyLeader => "Standby",
        Role::Replica => "Replica",
    }
}
