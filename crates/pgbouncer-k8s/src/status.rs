//! The unit's status, worked out once per dispatch from the state as it stands.

use crate::flows::{config, database, ready_backend, Deps, Issues};
use crate::state::{self, BackendState};
use crate::workload::CONTAINER;
use charm::{Hook, Status};

/// The status, most pressing problem first.
pub fn decide(hook: &mut Hook<'_>, deps: &Deps, issues: &Issues) -> anyhow::Result<Status> {
    if let Err(e) = config(hook)? {
        return Ok(Status::Blocked(e.to_string()));
    }
    match state::backend(hook)? {
        BackendState::Missing => {
            return Ok(Status::Blocked(
                "waiting for backend database relation".into(),
            ))
        }
        BackendState::Incomplete(why) => return Ok(Status::Waiting(why)),
        BackendState::Ready(_) => {}
    }
    if let Some(issue) = issues.0.last() {
        return Ok(Status::Waiting(issue.clone()));
    }
    if ready_backend(hook)?.is_none() {
        return Ok(Status::Waiting(
            "initialising the backend-database relation".into(),
        ));
    }
    let container = hook.container(CONTAINER);
    if container.system_info().is_err() {
        return Ok(Status::Waiting(
            "waiting for the pgbouncer container".into(),
        ));
    }
    if let Some(peers) = state::peers(hook)? {
        if state::recorded_version(hook, &peers)?.is_none() {
            return Ok(Status::Blocked(
                "no PgBouncer binary found in the pgbouncer container".into(),
            ));
        }
    }
    if let Some(stopped) = deps.workload.stopped(hook.container(CONTAINER))? {
        return Ok(Status::Maintenance(format!(
            "PgBouncer service {stopped} is not running"
        )));
    }
    if let Some(refused) = database::refused_request(hook)? {
        return Ok(Status::Blocked(refused));
    }
    Ok(Status::Active(String::new()))
}
