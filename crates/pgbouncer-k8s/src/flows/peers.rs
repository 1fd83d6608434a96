//! The `pgb-peers` relation (see `docs/pgbouncer-flows.md`): the leader is the
//! only writer of the shared configuration; every unit serves it and
//! acknowledges it; the last acknowledgement lets the leader hand out pending
//! credentials.

use super::backend::ensure_auth;
use super::{config, database, publish, serve, share_unit_data, Deps};
use crate::pgb::userlist::Userlist;
use crate::pgb::SharedConfig;
use crate::state;
use charm::{Handled, Hook, Relation};

/// peer-relation-created, node by node.
pub fn created(hook: &mut Hook<'_>, deps: &Deps, peers: &Relation) -> anyhow::Result<Handled> {
    // Save unit hostname in unit databag
    share_unit_data(hook, deps, peers)?;
    // Is current unit leader?
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    // Is pgbouncer config available?
    let Ok(config) = config(hook)? else {
        return Ok(Handled::Deferred);
    };
    // Update config in peer databag
    publish(hook, deps, peers, &config)?;
    // Is backend database ready?
    if !matches!(state::backend(hook)?, state::BackendState::Ready(_)) {
        return Ok(Handled::Deferred);
    }
    // Add auth file to secret store
    if !ensure_auth(hook, deps)? {
        return Ok(Handled::Deferred);
    }
    Ok(Handled::Done)
}

/// peer-relation-changed (and joined), node by node.
pub fn changed(hook: &mut Hook<'_>, deps: &Deps, peers: &Relation) -> anyhow::Result<Handled> {
    // Save unit hostname in unit databag; update peer data in relation databags
    share_unit_data(hook, deps, peers)?;
    // Is current unit leader?
    if hook.is_leader()? {
        // Is local pgbouncer config available?
        let Ok(config) = config(hook)? else {
            return Ok(Handled::Deferred);
        };
        // Update pgbouncer config and leader hostname in app databag
        let shared = publish(hook, deps, peers, &config)?;
        serve(hook, deps, peers, Some(&shared))?;
        // The units changed, or one acknowledged: clients get their credentials
        // (when every unit serves their database) and fresh endpoints.
        database::refresh_all(hook, deps)?;
        return Ok(Handled::Done);
    }
    follow(hook, deps, peers)?;
    Ok(Handled::Done)
}

/// A follower loads what the leader published: the config file if valid, the
/// auth file if valid, and reloads PgBouncer only if either changed.
pub fn follow(hook: &mut Hook<'_>, deps: &Deps, peers: &Relation) -> anyhow::Result<()> {
    // Is a valid config file in the app databag? → save config
    let shared: Option<SharedConfig> = state::published_config(hook, peers)?;
    // Is a valid auth file in the app databag? → save auth file
    let auth_ok = state::app_secret(hook)?
        .and_then(|c| c.get(state::AUTH_FILE).map(|t| Userlist::parse(t).is_ok()))
        .unwrap_or(false);
    // if auth file or config have changed, reload pgbouncer
    if shared.is_some() || auth_ok {
        serve(hook, deps, peers, shared.as_ref())?;
    }
    Ok(())
}

/// peer-relation-departed: a unit left. The leader republishes (the pool split
/// and the read-only endpoints change) and the departing unit's acknowledgement
/// no longer counts.
pub fn departed(hook: &mut Hook<'_>, deps: &Deps, peers: &Relation) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    let Ok(config) = config(hook)? else {
        return Ok(Handled::Done);
    };
    let shared = publish(hook, deps, peers, &config)?;
    serve(hook, deps, peers, Some(&shared))?;
    database::refresh_all(hook, deps)?;
    Ok(Handled::Done)
}
