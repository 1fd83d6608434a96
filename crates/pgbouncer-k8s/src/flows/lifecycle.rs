//! The unit's lifecycle: configuration, the container, leadership, upgrades.

use super::backend::{self, ensure_auth};
use super::peers::follow;
use super::takeover;
use super::{
    certificates, config, database, pgbouncer_version, publish, ready_backend, serve,
    share_unit_data, Deps,
};
use crate::handover::Migration;
use crate::state::{self, BackendState};
use crate::workload::{Rolled, CONTAINER};
use charm::{BagChanges, Handled, Hook, LogLevel, SecretEvent};
use client_interface::provider::secret_label;

/// Renders what this unit should serve: the leader sets up the backend if it can,
/// builds the configuration and publishes it; a follower takes what the leader
/// published.
fn converge(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Deferred);
    };
    if hook.is_leader()? {
        let Ok(config) = config(hook)? else {
            return Ok(Handled::Done);
        };
        if matches!(state::backend(hook)?, state::BackendState::Ready(_)) {
            ensure_auth(hook, deps)?;
        }
        let shared = publish(hook, deps, &peers, &config)?;
        serve(hook, deps, &peers, Some(&shared))?;
        database::refresh_all(hook, deps)?;
    } else {
        follow(hook, deps, &peers)?;
    }
    Ok(Handled::Done)
}

/// config-changed: an invalid option applies nothing (the status names it).
/// Otherwise every unit renders; a new `listen_port` restarts the processes on
/// every unit as it renders, and clients get the new endpoints.
pub fn config_changed(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    if config(hook)?.is_err() {
        return Ok(Handled::Done);
    }
    if let Some(peers) = state::peers(hook)? {
        share_unit_data(hook, deps, &peers)?;
    }
    converge(hook, deps)
}

/// pebble-ready: record the PgBouncer version in the image, then render and start.
pub fn pebble_ready(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Deferred);
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(Handled::Deferred);
    }
    pgbouncer_version(hook, deps, &peers, true)?;
    converge(hook, deps)
}

/// leader-elected: the new leader takes over publication and refreshes every
/// client relation's endpoints (they point at the leader).
pub fn leader_elected(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    converge(hook, deps)
}

/// upgrade-charm: the state a previous charm left is taken over
/// ([`takeover::run`]); the image may carry another PgBouncer, so its
/// version is read again, and the unit publishes its address and processes.
/// Once the unit has converged, its processes go through a rolling restart
/// ([`Workload::roll`](crate::workload::Workload::roll)), one at a time, so
/// they run the image's binary under this revision's service definitions.
pub fn upgrade_charm(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    takeover::run(hook)?;
    if let Some(peers) = state::peers(hook)? {
        share_unit_data(hook, deps, &peers)?;
        if hook.container(CONTAINER).can_connect() {
            pgbouncer_version(hook, deps, &peers, true)?;
        }
    }
    let handled = converge(hook, deps)?;
    if hook.container(CONTAINER).can_connect() {
        let roll = deps.workload.roll(hook.container(CONTAINER))?;
        match roll.migration {
            Some(Migration::TurnedOn) => hook.log(
                LogLevel::Info,
                "net.ipv4.tcp_migrate_req turned on: connections queued on a draining \
                 process move to the unit's other processes",
            )?,
            Some(Migration::Unavailable(why)) => hook.log(
                LogLevel::Warning,
                &format!(
                    "a connection arriving just as a process stops listening may be reset: \
                     net.ipv4.tcp_migrate_req cannot be turned on ({why})"
                ),
            )?,
            Some(Migration::On) | None => {}
        }
        for rolled in roll.processes {
            let (level, message) = match rolled {
                Rolled::Drained(service) => {
                    (LogLevel::Info, format!("{service} drained and restarted"))
                }
                Rolled::Cut(service) => (
                    LogLevel::Warning,
                    format!(
                        "{service} still had clients after the drain time: restarted, cutting them"
                    ),
                ),
            };
            hook.log(level, &message)?;
        }
    }
    Ok(handled)
}

/// update-status: a safety net that converges again (the status is collected
/// after): the leader refreshes the backend's other databases first, every
/// unit checks that a backend serving TLS still verifies (a certificate
/// replaced by one the CA did not sign makes PgBouncer refuse it), and a
/// certificate due for renewal is renewed.
pub fn update_status(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    collect_readonly_dbs(hook, deps)?;
    let handled = converge(hook, deps)?;
    if let BackendState::Ready(backend) = state::backend(hook)? {
        if state::backend_gone(hook)?.is_none() {
            backend::tls_verifies(hook, deps, &backend)?;
        }
    }
    if let Some(relation) = hook.relation(state::CERTIFICATES)? {
        certificates::changed(hook, deps, &relation)?;
    }
    Ok(handled)
}

/// Leader: records the backend's databases that no client relation created
/// (nor `postgres` or `pgbouncer`), for the wildcard's read-only entries. It
/// asks PostgreSQL only when those entries exist (a wildcard, and replicas);
/// when PostgreSQL cannot be asked, the last list stays.
fn collect_readonly_dbs(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let (true, Some(peers)) = (hook.is_leader()?, state::peers(hook)?) else {
        return Ok(());
    };
    let Some((backend, _)) = ready_backend(hook)? else {
        return Ok(());
    };
    let clients = state::client_databases(hook)?;
    if backend.read_only.is_empty() || !clients.iter().any(|c| c.privileged) {
        return Ok(());
    }
    let listed = deps
        .connector
        .connect(&backend.login)
        .and_then(|mut pg| pg.databases());
    let all = match listed {
        Ok(all) => all,
        Err(e) => {
            hook.log(
                LogLevel::Warning,
                &format!("cannot list the backend's databases: {e}"),
            )?;
            return Ok(());
        }
    };
    let mut others: Vec<String> = all
        .into_iter()
        .filter(|d| !clients.iter().any(|c| &c.name == d) && d != "postgres" && d != "pgbouncer")
        .collect();
    others.sort();
    hook.update_app_bag(
        &peers,
        BagChanges::new().set(state::READONLY_DBS, serde_json::to_string(&others)?),
    )?;
    Ok(())
}

/// secret-changed: the leader rewrote the application secret (the auth file),
/// or the backend changed its TLS secret (TLS turned on or off, a new CA).
pub fn secret_changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    event: &SecretEvent,
) -> anyhow::Result<Handled> {
    let label = event.label.as_deref();
    // The backend's TLS secret: whether it serves TLS and its CA, as the
    // backend's relation data (the leader republishes; each unit writes the
    // CA it verifies the backend with).
    let backend_tls = match hook.relations(state::BACKEND)?.first() {
        Some(r) => label == Some(secret_label(state::BACKEND, r.id, "tls").as_str()),
        None => false,
    };
    if backend_tls && hook.is_leader()? {
        return super::backend::changed(hook, deps);
    }
    if !backend_tls && label != Some(state::app_secret_label(hook.app()).as_str()) {
        return Ok(Handled::Done);
    }
    if let Some(peers) = state::peers(hook)? {
        follow(hook, deps, &peers)?;
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
