//! The unit's lifecycle: leadership, the container, configuration, the DCS
//! relation, the cluster's initialisation (and a new cluster generation when
//! the old one cannot come back), and the last unit's departure.

use super::peers::MEMBER_STARTING;
use super::{
    add_members, cluster_status, config, context, database, ensure_passwords, extensions, legacy,
    member_started, record_membership, recovery, restart_on_tls_change, update_config, Ctx, Deps,
    Findings,
};
use crate::dcs_keys::DcsKeysError;
use crate::patroni::render;
use crate::postgres;
use crate::state;
use crate::workload::CONTAINER;
use charm::{BagChanges, Handled, Hook, LogLevel, SecretEvent, Status};
use postgres_admin::names::{ExtraRoles, RoleName};
use std::time::Duration;

/// The waiting message while the leader waits for the primary.
pub const PRIMARY_STARTING: &str = "awaiting for primary endpoint to be ready";

/// Leader: the cluster's initialisation (the reference charm's
/// `_initialize_cluster`), once Patroni has bootstrapped a primary: the
/// `monitoring` user and the `admin` group, the users and databases of the
/// clients already served (a new cluster generation makes them again, with
/// the passwords the clients hold), then `cluster_initialised`. Returns
/// whether it is done.
pub fn initialise(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<bool> {
    let primary = cluster_status(hook, deps, ctx)?
        .and_then(|c| c.primary().filter(|p| p.is_ready()).cloned());
    let Some(primary) = primary else {
        hook.add_problem(Status::Waiting(PRIMARY_STARTING.into()))?;
        return Ok(false);
    };
    let target = postgres::operator_login(
        &primary.host,
        primary.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let monitoring = RoleName::parse(state::MONITORING)?;
    let roles = ExtraRoles::parse("pg_monitor")?;
    let mut clients = database::served_clients(hook)?;
    clients.extend(legacy::served_clients(hook)?);
    let done = deps.connector.connect(&target).and_then(|mut pg| {
        pg.create_user(&monitoring, ctx.passwords.get(state::MONITORING), &roles)?;
        pg.create_admin_group()?;
        pg.create_charmed_roles()?;
        for client in &clients {
            client.create(pg.as_mut())?;
        }
        Ok(())
    });
    if let Err(e) = done {
        hook.add_problem(Status::Waiting(format!(
            "cannot initialise the cluster: {e}"
        )))?;
        return Ok(false);
    }
    let new_cluster = state::new_cluster(hook, &ctx.peers)?;
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new()
            .set(state::CLUSTER_INITIALISED, "True")
            .unset(state::NEW_CLUSTER)
            .unset(state::EXTENSIONS_APPLIED),
    )?;
    hook.log(
        LogLevel::Info,
        &format!("cluster initialised on {}", primary.name),
    )?;
    if new_cluster.is_some() {
        for client in &clients {
            hook.log(
                LogLevel::Warning,
                &format!(
                    "relation {}: {} and database {} made again in the new cluster, \
                     with the password the client holds; the data they held is gone",
                    client.relation_id,
                    client.user,
                    client.resource()
                ),
            )?;
        }
    }
    Ok(true)
}

/// Brings the unit to where the model says it should be: the leader creates
/// the passwords and admits members; a member renders, starts and reloads
/// Patroni; the leader initialises the cluster once its primary runs and
/// refreshes the clients' endpoints. Used by every lifecycle event.
fn converge(hook: &mut Hook<'_>, deps: &Deps, findings: &mut Findings) -> anyhow::Result<Handled> {
    // An invalid option applies nothing (the status names it).
    if config(hook, deps)?.is_err() {
        return Ok(Handled::Done);
    }
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Deferred);
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(Handled::Deferred);
    }
    let leader = hook.is_leader()?;
    if leader {
        ensure_passwords(hook)?;
    }
    let Some(ctx) = context(hook)? else {
        return Ok(Handled::Deferred);
    };
    // A new cluster generation? Render and start its first member; the
    // member's start (Patroni's callback) wakes the charm to initialise it.
    if leader {
        if let Some(why) = recovery::check(hook, deps, &ctx)? {
            recovery::start_new_cluster(hook, deps, &ctx, why)?;
            update_config(hook, deps, findings, &ctx)?;
            return Ok(Handled::Deferred);
        }
    }
    let initialised = state::initialised(hook, &peers)?;
    // A follower starts nothing before the leader has initialised the cluster.
    if !leader && !initialised {
        return Ok(Handled::Deferred);
    }
    if leader {
        forget_departed(hook, &ctx)?;
        // The first leader founds the cluster with itself.
        if state::members(hook, &peers)?.is_empty() {
            state::save_members(hook, &peers, std::slice::from_ref(&ctx.address))?;
        }
    }
    if !state::members(hook, &peers)?.contains(&ctx.address) {
        return Ok(Handled::Done);
    }
    if !update_config(hook, deps, findings, &ctx)? {
        return Ok(Handled::Done);
    }
    // While a new cluster generation bootstraps, the hook does not wait for
    // its member: the status says what happens, and the member's start
    // (Patroni's callback) wakes the charm.
    let wait = match state::new_cluster(hook, &peers)? {
        Some(_) => Duration::ZERO,
        None => deps.start_timeout,
    };
    if !member_started(deps, findings, &ctx, wait) {
        hook.add_problem(Status::Waiting(MEMBER_STARTING.into()))?;
        return Ok(Handled::Deferred);
    }
    record_membership(hook, &ctx)?;
    super::services::label_pod(hook, deps, findings, &ctx)?;
    restart_on_tls_change(hook, findings, &ctx)?;
    if !leader {
        return Ok(Handled::Done);
    }
    if !initialised && !initialise(hook, deps, &ctx)? {
        return Ok(Handled::Deferred);
    }
    let all_in = add_members(hook, deps, &ctx)?;
    database::refresh_all(hook, deps, &ctx, None)?;
    extensions::apply(hook, deps, &ctx)?;
    Ok(if all_in {
        Handled::Done
    } else {
        Handled::Deferred
    })
}

/// Leader: drops from the members the addresses of units that are gone.
fn forget_departed(hook: &mut Hook<'_>, ctx: &Ctx) -> anyhow::Result<()> {
    let mut live = vec![ctx.address.clone()];
    live.extend(
        state::peer_units(hook, &ctx.peers)?
            .into_iter()
            .filter_map(|u| u.address),
    );
    let members = state::members(hook, &ctx.peers)?;
    let kept: Vec<String> = members
        .iter()
        .filter(|m| live.contains(m))
        .cloned()
        .collect();
    if kept != members {
        state::save_members(hook, &ctx.peers, &kept)?;
    }
    Ok(())
}

/// postgresql-pebble-ready, config-changed, update-status, upgrade-charm, and
/// the etcd relation's events.
pub fn pebble_ready(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
) -> anyhow::Result<Handled> {
    converge(hook, deps, findings)
}

/// config-changed: new options reach `patroni.yml` and Patroni's dynamic
/// configuration; an invalid option applies nothing.
pub fn config_changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
) -> anyhow::Result<Handled> {
    converge(hook, deps, findings)
}

/// update-status: a safety net that converges again, and refreshes the
/// clients' endpoints after a failover.
pub fn update_status(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
) -> anyhow::Result<Handled> {
    converge(hook, deps, findings)
}

/// leader-elected: the new leader creates missing passwords, forgets departed
/// units, founds or extends the cluster.
pub fn leader_elected(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
) -> anyhow::Result<Handled> {
    converge(hook, deps, findings)
}

/// The etcd relation changed: Patroni gets the new DCS hosts.
pub fn dcs_changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
) -> anyhow::Result<Handled> {
    converge(hook, deps, findings)
}

/// stop: when this unit is the last one going (Juju plans no unit of the
/// application), its cluster goes with it: Patroni stops, and the cluster's
/// keys are deleted from the DCS (the scope and DCS as this unit's
/// `patroni.yml` names them), so that no later unit waits on them. A unit
/// that only stops (a restart) leaves everything. Failures are logged: a
/// later unit starts a new cluster generation anyway.
pub fn stop(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    if hook.planned_units()? > 0 || !hook.container(CONTAINER).can_connect() {
        return Ok(Handled::Done);
    }
    let w = &deps.workload;
    let pebble = hook.container(CONTAINER);
    let Some(text) = pebble.read_text(&w.layout.config_path())? else {
        return Ok(Handled::Done);
    };
    let (Some(scope), Some(dcs)) = (render::scope_of(&text), render::etcd_of(&text)) else {
        return Ok(Handled::Done);
    };
    w.stop(pebble)?;
    match deps.dcs_keys.delete_cluster(&dcs, &scope) {
        Ok(n) => hook.log(
            LogLevel::Info,
            &format!("the last unit leaves: deleted cluster {scope}'s {n} keys from the DCS"),
        )?,
        Err(DcsKeysError::Unsupported(_)) => {}
        Err(e) => hook.log(
            LogLevel::Warning,
            &format!("the last unit leaves, but cluster {scope}'s keys stay in the DCS: {e}"),
        )?,
    }
    Ok(Handled::Done)
}

/// secret-remove: nobody tracks an old revision of a secret this application owns.
pub fn secret_remove(hook: &mut Hook<'_>, event: &SecretEvent) -> anyhow::Result<Handled> {
    if let Some(revision) = event.revision {
        hook.remove_secret(&event.id, Some(revision))?;
    }
    Ok(Handled::Done)
}

/// A context for the status and actions, without publishing anything.
pub fn quiet_context(hook: &mut Hook<'_>) -> anyhow::Result<Option<Ctx>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(None);
    };
    let Some(passwords) = state::passwords(hook)? else {
        return Ok(None);
    };
    let address = super::own_address(hook)?;
    let api = super::api_access(hook, &passwords)?;
    Ok(Some(Ctx {
        peers,
        address,
        passwords,
        api,
    }))
}
