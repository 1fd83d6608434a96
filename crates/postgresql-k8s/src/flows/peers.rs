//! The `database-peers` relation (see `docs/postgresql-flows.md`): the leader
//! admits units into the cluster one at a time; every member keeps Patroni's
//! configuration current; departures shrink the cluster and its synchronous
//! settings.

use super::{
    add_members, config, context, database, member_started, ready_dcs, record_membership,
    restart_on_tls_change, synchronous, unconfirmed_option, update_config, Ctx, Deps, Findings,
    Unconfirmed,
};
use crate::dcs_keys::DcsKeysError;
use crate::patroni::render::dynamic_config;
use crate::state;
use charm::{Handled, Hook, LogLevel, RelationEvent, Status};

/// The waiting message while this unit's member starts.
pub const MEMBER_STARTING: &str = "awaiting for member to start";

/// peer-relation-changed (also secret-changed: the application secret holds the
/// passwords every member's configuration needs), node by node.
pub fn changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
) -> anyhow::Result<Handled> {
    let Some(ctx) = context(hook)? else {
        return Ok(Handled::Deferred);
    };
    // Has cluster initialised?
    if !state::initialised(hook, &ctx.peers)? {
        // no → the leader initialises it and defers to run again initialised;
        // when it cannot yet, it returns, and so does a follower, without
        // deferring: the leader's write to the peer application bag wakes them.
        if hook.is_leader()? && super::lifecycle::initialise(hook, deps, &ctx)? {
            return Ok(Handled::Deferred);
        }
        return Ok(Handled::Done);
    }
    // Is current unit leader? yes → Are all the units part of the cluster?
    // no → Are all cluster members ready? no → defer (and go on, as the
    // flowchart's arrow does); yes → Add unit to cluster →
    // Patch pod labels of the new cluster member → (back to the question).
    let mut handled = Handled::Done;
    if hook.is_leader()? && !add_members(hook, deps, &ctx)? {
        handled = Handled::Deferred;
    }
    member_steps(hook, deps, findings, &ctx, handled)
}

/// From "Is current unit part of the cluster?" to the end of the flow.
fn member_steps(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    ctx: &Ctx,
    handled: Handled,
) -> anyhow::Result<Handled> {
    // Is current unit part of the cluster? no → return (re-triggered when the
    // leader adds it: the peer application bag changes).
    if !state::members(hook, &ctx.peers)?.contains(&ctx.address) {
        return Ok(handled);
    }
    // Update Patroni and PostgreSQL config
    if !update_config(hook, deps, findings, ctx)? {
        return Ok(handled);
    }
    // Have Patroni and PostgreSQL started in the current unit? (Asked before the
    // TLS step, which restarts only a running PostgreSQL.)
    let started = member_started(deps, findings, ctx, deps.start_timeout);
    // Restart PostgreSQL if TLS is turned on/off
    restart_on_tls_change(hook, findings, ctx)?;
    // no → defer
    if !started {
        hook.add_problem(Status::Waiting(MEMBER_STARTING.into()))?;
        return Ok(Handled::Deferred);
    }
    // (The member has started in the current cluster: recorded as `member-of`.)
    record_membership(hook, ctx)?;
    // Update the read-only endpoint in the database relation (leader)
    database::refresh_all(hook, deps, ctx, None)?;
    // Set Active Status: the status collection names the role from the
    // member's health read above.
    Ok(handled)
}

/// Deletes a departed unit's member key (`/service/<scope>/members/<name>`)
/// from the DCS. A failure is logged, not retried: Patroni's key expires
/// anyway once the member's Patroni has stopped.
fn forget_member_key(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    unit: &str,
) -> anyhow::Result<()> {
    let Some(dcs) = ready_dcs(hook, deps)? else {
        return Ok(());
    };
    let scope = state::scope(hook, &ctx.peers)?;
    let member = state::member_name(unit);
    match deps.dcs_keys.delete_member(&dcs, &scope, &member) {
        Ok(true) => hook.log(
            LogLevel::Info,
            &format!("deleted member {member}'s key from cluster {scope}"),
        )?,
        Ok(false) | Err(DcsKeysError::Unsupported(_)) => {}
        Err(e) => hook.log(
            LogLevel::Warning,
            &format!("cannot delete member {member}'s key from cluster {scope}: {e}"),
        )?,
    }
    Ok(())
}

/// peer-relation-departed, node by node.
pub fn departed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    event: &RelationEvent,
) -> anyhow::Result<Handled> {
    // Is leader and is not departing?
    let departing_self = event.departing_unit.as_deref() == Some(hook.unit());
    if !hook.is_leader()? || departing_self {
        return Ok(Handled::Done);
    }
    let Some(ctx) = context(hook)? else {
        return Ok(Handled::Done);
    };
    // Has cluster initialised? no → defer
    if !state::initialised(hook, &ctx.peers)? {
        return Ok(Handled::Deferred);
    }
    // The members that stay: this unit and the peers still in the relation.
    let mut staying = vec![ctx.address.clone()];
    staying.extend(
        state::peer_units(hook, &ctx.peers)?
            .into_iter()
            .filter_map(|u| u.address),
    );
    let members = state::members(hook, &ctx.peers)?;
    let remaining: Vec<String> = members
        .iter()
        .filter(|m| staying.contains(m))
        .cloned()
        .collect();
    // Update the read-only endpoint in the database relation
    database::refresh_all(hook, deps, &ctx, Some(&remaining))?;
    // Remove departing units from the cluster, and the departed member's key
    // from the DCS
    if remaining != members {
        let gone: Vec<&String> = members.iter().filter(|m| !remaining.contains(m)).collect();
        hook.log(
            LogLevel::Info,
            &format!("removing {gone:?} from the cluster"),
        )?;
        state::save_members(hook, &ctx.peers, &remaining)?;
    }
    if let Some(unit) = event.departing_unit.as_ref().or(event.remote_unit.as_ref()) {
        forget_member_key(hook, deps, &ctx, unit)?;
    }
    // Turn on/off PostgreSQL synchronous_commit configuration: the synchronous
    // settings for the cluster as it now is, through Patroni's API (a failure
    // defers).
    // Options that are invalid or refused apply nothing (the status names
    // them); a container that cannot confirm them yet defers.
    let Ok(config) = config(hook, deps)? else {
        return Ok(Handled::Done);
    };
    match unconfirmed_option(hook, deps, &config)? {
        Unconfirmed::No => {}
        Unconfirmed::Refused(_) => return Ok(Handled::Done),
        Unconfirmed::CannotAsk => return Ok(Handled::Deferred),
    }
    let patch = dynamic_config(
        &config.parameters(&deps.resources),
        synchronous(hook, &config, remaining.len())?,
        config.maximum_lag_on_failover,
    );
    let mut hosts = vec![ctx.address.clone()];
    hosts.extend(remaining.iter().filter(|m| **m != ctx.address).cloned());
    if let Err(e) = deps.patroni.patch_config(ctx.api(), &hosts, &patch) {
        hook.add_problem(Status::Waiting(format!(
            "cannot update the synchronous settings: {e}"
        )))?;
        return Ok(Handled::Deferred);
    }
    Ok(Handled::Done)
}
