//! The actions, with the reference charm's names: `get-password`,
//! `set-password`, `get-primary` and `promote-to-primary` (which, when
//! poolers pause on a switchover, schedules it: `switchover`) here, and the
//! backup actions in `backups` and `restore`.

use super::lifecycle::quiet_context;
use super::switchover;
use super::{all_members_ready, cluster_status, save_app_secret, update_config, Deps, Findings};
use crate::postgres;
use crate::state;
use charm::{Handled, Hook, LogLevel};
use postgres_admin::names::RoleName;
use serde::Deserialize;

#[derive(Deserialize)]
struct Username {
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct SetPassword {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
struct Promote {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    force: Option<bool>,
}

fn result(hook: &mut Hook<'_>, key: &str, value: String) -> anyhow::Result<Handled> {
    hook.action_set([(key, value)])?;
    Ok(Handled::Done)
}

fn fail(hook: &mut Hook<'_>, message: &str) -> anyhow::Result<Handled> {
    hook.action_fail(message)?;
    Ok(Handled::Done)
}

/// Runs one action.
pub fn run(hook: &mut Hook<'_>, deps: &Deps, name: &str) -> anyhow::Result<Handled> {
    match name {
        "get-password" => get_password(hook),
        "set-password" => set_password(hook, deps),
        "get-primary" => get_primary(hook, deps),
        "promote-to-primary" => promote_to_primary(hook, deps),
        "create-backup" => super::backups::create_backup(hook, deps),
        "list-backups" => super::backups::list_backups(hook, deps),
        "restore" => super::restore::restore(hook, deps),
        other => anyhow::bail!("unknown action {other}"),
    }
}

/// get-password: a system user's password (default `operator`), on any unit.
fn get_password(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    let params: Username = hook.action_params()?;
    let user = params.username.unwrap_or_else(|| state::OPERATOR.into());
    if !state::SECRET_USERS.contains(&user.as_str()) {
        return fail(
            hook,
            &format!(
                "The action can be run only for system users or Patroni: {}",
                state::SECRET_USERS.join(", ")
            ),
        );
    }
    match state::app_secret(hook)?
        .and_then(|c| c.get(&state::password_key(&user)).map(str::to_string))
    {
        Some(password) => result(hook, "password", password),
        None => fail(
            hook,
            "no password yet: the leader has not created the system users' passwords",
        ),
    }
}

/// set-password (leader): changes a system user's password in PostgreSQL, then
/// in the application secret, then in this unit's Patroni configuration (the
/// other units follow on secret-changed).
fn set_password(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        return fail(hook, "The action can be run only on leader unit");
    }
    let params: SetPassword = hook.action_params()?;
    let Some(user) = params.username.filter(|u| !u.is_empty()) else {
        return fail(hook, "The action requires a username");
    };
    if !state::SETTABLE_USERS.contains(&user.as_str()) {
        return fail(
            hook,
            &format!(
                "The action can be run only for system users: {}",
                state::SETTABLE_USERS.join(", ")
            ),
        );
    }
    let password = params
        .password
        .filter(|p| !p.is_empty())
        .unwrap_or_else(postgres_admin::password::generate);
    let Some(ctx) = quiet_context(hook)? else {
        return fail(hook, "the cluster is not set up yet");
    };
    if ctx.passwords.get(&user) == password {
        hook.log(
            LogLevel::Info,
            &format!("the password of {user} is already the one given"),
        )?;
        return result(hook, "password", password);
    }
    if !all_members_ready(hook, deps, &ctx)? {
        return fail(
            hook,
            "Failed changing the password: Not all members healthy or finished initial sync.",
        );
    }
    let Some(primary) = cluster_status(hook, deps, &ctx)?.and_then(|c| c.primary().cloned()) else {
        return fail(hook, "Failed changing the password: no primary");
    };
    let target = postgres::operator_login(
        &primary.host,
        primary.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let role = RoleName::parse(&user)?;
    if let Err(e) = deps
        .connector
        .connect(&target)
        .and_then(|mut pg| pg.set_password(&role, &password))
    {
        hook.log(
            LogLevel::Error,
            &format!("cannot change the password of {user}: {e}"),
        )?;
        return fail(
            hook,
            &format!("Failed changing the password of {user}: check the logs"),
        );
    }
    let existing = state::app_secret(hook)?;
    let mut content = existing.clone().unwrap_or_default();
    content.insert(state::password_key(&user), password.clone());
    save_app_secret(hook, existing.as_ref(), &content)?;
    if let Some(ctx) = quiet_context(hook)? {
        update_config(hook, deps, &mut Findings::default(), &ctx)?;
    }
    result(hook, "password", password)
}

/// get-primary: the unit whose member leads the cluster.
fn get_primary(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    let Some(ctx) = quiet_context(hook)? else {
        return fail(hook, "the cluster is not set up yet");
    };
    match cluster_status(hook, deps, &ctx)?.and_then(|c| c.primary().map(|p| p.name.clone())) {
        Some(name) => result(hook, "primary", state::unit_of_member(&name)),
        None => fail(hook, "Failed to get primary: no member leads the cluster"),
    }
}

/// promote-to-primary: scope `unit` switches over to this unit.
fn promote_to_primary(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    let params: Promote = hook.action_params()?;
    match params.scope.as_deref() {
        Some("unit") => {}
        Some("cluster") => {
            return fail(
                hook,
                "Promoting a cluster needs async replication, which this charm does not provide",
            )
        }
        _ => return fail(hook, "Scope should be either cluster or unit"),
    }
    if params.force.is_some() {
        return fail(hook, "Superfluous force flag with unit scope");
    }
    let Some(ctx) = quiet_context(hook)? else {
        return fail(hook, "the cluster is not set up yet");
    };
    let me = state::member_name(hook.unit());
    let Some(cluster) = cluster_status(hook, deps, &ctx)? else {
        return fail(
            hook,
            "Switchover failed or timed out, check the logs for details",
        );
    };
    if cluster.primary().is_some_and(|p| p.name == me) {
        return result(
            hook,
            "result",
            format!("{} is already the primary", hook.unit()),
        );
    }
    let poolers = switchover::poolers(hook, None)?;
    if poolers.is_empty() {
        return match switchover::switch_over(hook, deps, &ctx, &cluster)? {
            Ok(what) => result(hook, "result", what),
            Err(why) => fail(hook, &why),
        };
    }
    // The poolers pause first: refuse now what Patroni would refuse then.
    let Some(own) = cluster.members.iter().find(|m| m.name == me) else {
        return fail(hook, "This unit is not a member of the cluster");
    };
    let synchronous = cluster.members.iter().any(|m| m.role == "sync_standby");
    if synchronous && own.role != "sync_standby" {
        return fail(hook, "Unit is not sync standby");
    }
    if switchover::pending(hook)?.is_some() {
        return fail(hook, "A switchover to this unit is already scheduled");
    }
    let endpoint = own.endpoint();
    let request = switchover::schedule(hook, deps, endpoint)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "switchover {} to {me} scheduled: waiting for {} pooler units to pause",
            request.id,
            poolers.len()
        ),
    )?;
    hook.action_set([
        (
            "result",
            format!(
                "switchover to {} scheduled: pausing {} pooler units first",
                hook.unit(),
                poolers.len()
            ),
        ),
        ("poolers", poolers.len().to_string()),
        ("request", request.id),
    ])?;
    Ok(Handled::Done)
}
