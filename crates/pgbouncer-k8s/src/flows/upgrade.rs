//! The `pre-upgrade-check` action: before `juju refresh`, the leader checks that
//! the application is healthy and every unit serves the same configuration, so
//! that an upgrade starts from a known good state. The reference charm also
//! sets the StatefulSet's rolling-update partition here and lets
//! `resume-upgrade` lower it; this charm does not talk to the Kubernetes API,
//! so Juju rolls the pods itself and there is nothing to resume.

use super::{config, ready_backend, Deps};
use crate::state;
use crate::workload::CONTAINER;
use charm::{Handled, Hook, Status};

/// Runs the checks and answers the action: a result when ready, a failure
/// naming the first problem otherwise.
pub fn pre_upgrade_check(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    match check(hook, deps)? {
        Ok(()) => hook.action_set(
            &[(
                "result".to_string(),
                "the application is ready to be upgraded".to_string(),
            )]
            .into(),
        )?,
        Err(why) => hook.action_fail(&format!("not ready to upgrade: {why}"))?,
    }
    Ok(Handled::Done)
}

/// The checks, most basic first; `Err` names what is wrong.
fn check(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Result<(), String>> {
    if !hook.is_leader()? {
        return Ok(Err("run this action on the leader unit".into()));
    }
    if let Err(e) = config(hook)? {
        return Ok(Err(e.to_string()));
    }
    let Some((backend, _)) = ready_backend(hook)? else {
        return Ok(Err("the backend-database relation is not ready".into()));
    };
    if let Err(e) = deps
        .connector
        .connect(&backend.credentials)
        .and_then(|mut pg| pg.server_version())
    {
        return Ok(Err(format!("PostgreSQL cannot be reached: {e}")));
    }
    let Some(peers) = state::peers(hook)? else {
        return Ok(Err("the pgb-peers relation is not there yet".into()));
    };
    if hook.container(CONTAINER).system_info().is_err() {
        return Ok(Err("the pgbouncer container cannot be reached".into()));
    }
    if let Some(stopped) = deps.workload.stopped(hook.container(CONTAINER))? {
        return Ok(Err(format!(
            "PgBouncer service {stopped} is not running on {}",
            hook.unit()
        )));
    }
    let not_active: Vec<String> = hook
        .unit_statuses()?
        .into_iter()
        .filter(|(_, s)| !matches!(s, Status::Active(_)))
        .map(|(unit, s)| format!("{unit} is {} ({})", s.name(), s.message()))
        .collect();
    if !not_active.is_empty() {
        return Ok(Err(format!(
            "not every unit is active: {}",
            not_active.join(", ")
        )));
    }
    let Some(cfg) = hook.local_app_bag(&peers)?.get(state::CFG_FILE).cloned() else {
        return Ok(Err("no configuration has been published yet".into()));
    };
    let want = state::digest(&cfg);
    let mut behind: Vec<String> = state::peer_units(hook, &peers)?
        .into_iter()
        .filter(|u| u.serving.as_deref() != Some(want.as_str()))
        .map(|u| u.name)
        .collect();
    if hook.local_unit_bag(&peers)?.get(state::SERVING) != Some(&want) {
        behind.insert(0, hook.unit().to_string());
    }
    if !behind.is_empty() {
        return Ok(Err(format!(
            "not every unit serves the published configuration: {}",
            behind.join(", ")
        )));
    }
    Ok(Ok(()))
}
