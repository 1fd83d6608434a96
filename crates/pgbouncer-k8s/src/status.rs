//! The unit's status, collected once per dispatch from the state as it stands.
//! Each check adds a candidate to the hook's collector, beside the problems the
//! flows met (`Hook::add_problem`); the most pressing one is shown.
//! A check that needs an earlier one to pass (valid options, a backend, the
//! container up and PgBouncer meant to serve) is skipped when it does not.
//!
//! A follower's hook for a client relation created, joined or changed keeps
//! the status it has ([`leaves_followers_status`]): none of its inputs
//! changed, and collecting it would cost a dozen hook-tool calls in eight of
//! the fourteen hooks a new client brings PgBouncer's units.

use crate::flows::{config, database, initialised_backend, Deps};
use crate::state::{self, BackendState, DATABASE};
use crate::workload::CONTAINER;
use charm::{Event, Hook, Status};

/// Whether `event` leaves the status of a unit that is not the leader as it
/// was: a client relation created, joined or changed. Only the leader
/// answers clients; what it records of them (a refused request) reaches the
/// followers through the peer relation, with an event of its own, as every
/// other input of the status does (the options, the backend, the container,
/// the peers' records). A client relation departing or broken may drop a
/// refusal from the status, so it is collected then.
pub fn leaves_followers_status(event: &Event) -> bool {
    match event {
        Event::RelationCreated(r) | Event::RelationJoined(r) | Event::RelationChanged(r) => {
            r.relation.endpoint == DATABASE
        }
        _ => false,
    }
}

/// Adds the unit's candidate statuses.
pub fn collect(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    if let Err(e) = config(hook)? {
        hook.add_status(Status::Blocked(e.to_string()));
        return Ok(());
    }
    if let Some(service) = crate::flows::expose::status(hook)? {
        hook.add_status(service);
    }
    let backend_ready = match state::backend(hook)? {
        BackendState::Missing => {
            hook.add_status(Status::Blocked(
                "waiting for backend database relation".into(),
            ));
            return Ok(());
        }
        BackendState::Incomplete(why) => {
            hook.add_status(Status::Waiting(why));
            false
        }
        BackendState::Ready(_) => {
            if let Some(why) = state::backend_gone(hook)? {
                hook.add_status(Status::Waiting(why));
                return Ok(());
            }
            let initialised = initialised_backend(hook)?.is_some();
            if !initialised {
                hook.add_status(Status::Waiting(
                    "initialising the backend-database relation".into(),
                ));
            }
            initialised
        }
    };
    if !hook.container(CONTAINER).can_connect() {
        hook.add_status(Status::Waiting(
            "waiting for the pgbouncer container".into(),
        ));
    } else if backend_ready {
        workload(hook, deps)?;
    }
    if let Some(paused) = crate::flows::switchover::status(hook)? {
        hook.add_status(Status::Maintenance(paused));
    }
    for refused in database::refused_requests(hook)? {
        hook.add_status(refused);
    }
    hook.add_status(Status::Active(String::new()));
    Ok(())
}

/// The container's checks, once PgBouncer should serve (the backend is
/// initialised): the PgBouncer version it records when serving, and every
/// process running.
fn workload(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    if let Some(peers) = state::peers(hook)? {
        if state::recorded_version(hook, &peers)?.is_none() {
            hook.add_status(Status::Blocked(
                "no PgBouncer binary found in the pgbouncer container".into(),
            ));
            return Ok(());
        }
    }
    if let Some(stopped) = deps.workload.stopped(hook.container(CONTAINER))? {
        hook.add_status(Status::Maintenance(format!(
            "PgBouncer service {stopped} is not running"
        )));
    }
    Ok(())
}
