//! The legacy `db` and `db-admin` relations (interface `pgsql`, provider),
//! through `client_interface::pgsql`. A `db` client takes the path a
//! `database` client takes: the leader creates its backend user
//! (`<app>_user_<id>_<model>`) and database, records the client, adds the
//! database to the configuration every unit serves, and tells the client
//! nothing before every unit serves it; then `master` (the leader unit) and
//! `standbys` (the other units' `<db>_readonly` twin). A `db-admin` client
//! is refused: its superuser could not log in through PgBouncer. The
//! flowcharts are in `docs/pgbouncer-flows.md` (legacy relations).

use super::{
    all_units_serve, client_endpoints, config, database, publish, ready_backend, serve, Deps,
};
use crate::state::{self, ClientEntry, Clients};
use charm::{Handled, Hook, Relation, RelationEvent, Status};
use client_interface::endpoint::Endpoint;
use client_interface::pgsql::{self, Allowed, Answer, Kind, Refusal, Request, Target};
use client_interface::provider;
use client_interface::ClientEvent;
use postgres_admin::names::{ExtraRoles, RoleName};

/// What `state` tells a legacy client: the leader answers, as `master`.
const STATE: &str = "master";

/// A legacy relation's events: a request runs db-requested on the leader
/// (or refreshes an answered client); a departure marks a unit that leaves
/// and refreshes who may connect; the end of the relation takes the
/// `database` relation's path (`database::broken`).
pub fn handle(hook: &mut Hook<'_>, deps: &Deps, event: ClientEvent<'_>) -> anyhow::Result<Handled> {
    match event {
        ClientEvent::Request(relation) => changed(hook, deps, relation),
        ClientEvent::Departed(departure) => departed(hook, departure),
        ClientEvent::Broken(breakage) => database::broken(hook, deps, breakage),
    }
}

/// relation-departed, node by node.
fn departed(hook: &mut Hook<'_>, event: &RelationEvent) -> anyhow::Result<Handled> {
    // Update who may connect in the relation's bags
    if hook.is_leader()? {
        publish_answer(hook, &event.relation)?;
    }
    // Is this unit departing from the relation during this hook?
    if event.departing_unit.as_deref() == Some(hook.unit()) {
        // Add departing flag
        if let Some(peers) = state::peers(hook)? {
            hook.update_unit_bag(
                &peers,
                [(state::departing_key(&event.relation), Some("true".into()))],
            )?;
        }
    }
    Ok(Handled::Done)
}

/// relation-changed on the leader: a new request (or a changed one) runs
/// db-requested; an answered client gets its connection information
/// refreshed (a client unit joined, say).
pub fn changed(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation) -> anyhow::Result<Handled> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Deferred);
    };
    let entry = state::clients(hook, &peers)?.remove(&relation.id);
    if let Some(entry) = entry.filter(|e| e.database.is_some() && e.refused.is_none()) {
        let unchanged = match pgsql::read(hook, relation)? {
            Ok(Some(request)) => served_as(&entry, &request),
            Ok(None) | Err(_) => false,
        };
        if unchanged {
            publish_answer(hook, relation)?;
            return Ok(Handled::Done);
        }
    }
    requested(hook, deps, relation)
}

/// Whether the client's request is the one it was served for.
fn served_as(entry: &ClientEntry, request: &Request) -> bool {
    entry.database.as_deref() == Some(request.database.as_str())
        && entry.extensions.as_deref().unwrap_or_default() == request.extensions_raw
}

/// db-requested, node by node.
pub fn requested(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation) -> anyhow::Result<Handled> {
    // Is this unit the leader?
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    let kind = Kind::of(&relation.endpoint)
        .ok_or_else(|| anyhow::anyhow!("{} is no legacy endpoint", relation.endpoint))?;
    // Is backend database ready?
    let (Some((backend, _)), Some(peers)) = (ready_backend(hook)?, state::peers(hook)?) else {
        return Ok(Handled::Deferred);
    };
    let mut clients = state::clients(hook, &peers)?;
    // Is it db-admin? A superuser cannot log in through PgBouncer.
    if kind == Kind::DbAdmin {
        let client = hook.remote_app(relation)?;
        let refusal = Refusal::NotServed {
            relation: pgsql::relation_name(relation),
            why: format!(
                "a superuser cannot log in through PgBouncer: relate {client} to \
                 PostgreSQL's db-admin endpoint directly, or to db here for a user \
                 that is not a superuser"
            ),
        };
        return refuse(hook, &peers, &mut clients, relation, &refusal);
    }
    // Is the request valid?
    let request = match pgsql::read(hook, relation)? {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(Handled::Done),
        Err(refusal) => return refuse(hook, &peers, &mut clients, relation, &refusal),
    };
    if request.database.is_pgbouncer_console() {
        let refusal = Refusal::Invalid {
            relation: pgsql::relation_name(relation),
            detail: format!(
                "invalid database name {:?}: PgBouncer keeps it for its admin console",
                request.database.as_str()
            ),
        };
        return refuse(hook, &peers, &mut clients, relation, &refusal);
    }
    let Ok(config) = config(hook)? else {
        return Ok(Handled::Deferred);
    };
    // Do the extensions exist in the database?
    let mut pg = match deps.connector.connect(&backend.login) {
        Ok(pg) => pg,
        Err(e) => return cannot_serve(hook, relation, &request, &e),
    };
    if !request.extensions.is_empty() {
        let installed = match pg.installed_extensions(request.database.as_str()) {
            Ok(installed) => installed,
            Err(e) => return cannot_serve(hook, relation, &request, &e),
        };
        let missing: Vec<String> = request
            .extensions
            .iter()
            .map(|e| e.name().to_string())
            .filter(|name| !installed.contains(name))
            .collect();
        if !missing.is_empty() {
            let refusal = Refusal::Extensions {
                relation: pgsql::relation_name(relation),
                extensions: missing,
                why: format!(
                    "missing from database {} (PgBouncer creates none: create them in \
                     PostgreSQL, and the relation is served)",
                    request.database
                ),
            };
            return refuse(hook, &peers, &mut clients, relation, &refusal);
        }
    }
    // Keep the password; create user and database
    let password = pgsql::keep_password(hook, relation, postgres_admin::password::generate)?;
    let user = legacy_user(hook, relation)?;
    let auth_user = backend.auth_user()?;
    let created = pg
        .create_user(&user, &password, &ExtraRoles::default())
        .and_then(|()| pg.create_database(&request.database, &user))
        .and_then(|_| pg.grant_database(&request.database, &user))
        .and_then(|()| pg.install_auth_function(request.database.as_str(), &auth_user));
    if let Err(e) = created {
        return cannot_serve(hook, relation, &request, &e);
    }
    // Add user to pgbouncer config and peer databag
    let kept = clients.remove(&relation.id).unwrap_or_default();
    clients.insert(
        relation.id,
        ClientEntry {
            database: Some(request.database.to_string()),
            legacy: Some(relation.endpoint.clone()),
            extensions: Some(request.extensions_raw.clone()),
            published: kept
                .published
                .filter(|_| kept.database.as_deref() == Some(request.database.as_str())),
            ..ClientEntry::default()
        },
    );
    state::save_clients(hook, &peers, &clients)?;
    let shared = publish(hook, deps, &peers, &config)?;
    // Update pgbouncer config with updated connection information
    serve(hook, deps, &peers, Some(&shared))?;
    // Update the relation's bags, once every unit serves the database (else
    // the last acknowledgement does it)
    publish_answer(hook, relation)?;
    Ok(Handled::Done)
}

/// The backend user of a legacy relation.
fn legacy_user(hook: &Hook<'_>, relation: &Relation) -> anyhow::Result<RoleName> {
    Ok(state::legacy_user(
        hook.app(),
        relation.id,
        &hook.context().model_name,
    )?)
}

/// Leader: records why a legacy client is not served (the status names it);
/// what it was served before stays as it was.
fn refuse(
    hook: &mut Hook<'_>,
    peers: &Relation,
    clients: &mut Clients,
    relation: &Relation,
    refusal: &Refusal,
) -> anyhow::Result<Handled> {
    let entry = clients.entry(relation.id).or_default();
    entry.legacy = Some(relation.endpoint.clone());
    entry.refused = Some(refusal.to_string());
    state::save_clients(hook, peers, clients)?;
    Ok(Handled::Done)
}

/// PostgreSQL could not do what a request needs: a problem, and a retry.
fn cannot_serve(
    hook: &mut Hook<'_>,
    relation: &Relation,
    request: &Request,
    error: &postgres_admin::PgError,
) -> anyhow::Result<Handled> {
    hook.add_problem(Status::Waiting(format!(
        "relation {}: cannot create database {}: {error}",
        pgsql::relation_name(relation),
        request.database
    )))?;
    Ok(Handled::Deferred)
}

/// Leader: writes a created client's connection information once every unit
/// serves its database (the credential barrier), and keeps it current
/// afterwards: `master` on the leader unit, one `standbys` line per other
/// unit (the leader when alone) to `<db>_readonly`, who may connect, the
/// backend's version.
pub fn publish_answer(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(());
    };
    let mut clients = state::clients(hook, &peers)?;
    let Some(entry) = clients.get(&relation.id).cloned() else {
        return Ok(());
    };
    let (Some(database), Some(shared)) = (
        entry.database.clone(),
        state::published_config(hook, &peers)?,
    ) else {
        return Ok(());
    };
    let Some((rw, ro)) = client_endpoints(hook, shared.listen_port())? else {
        return Ok(());
    };
    if entry.published.is_none() && !all_units_serve(hook, &peers)? {
        return Ok(());
    }
    let Some(password) = provider::kept_password(hook, &relation.endpoint, relation)? else {
        anyhow::bail!(
            "relation {}: no password kept for its user",
            pgsql::relation_name(relation)
        );
    };
    let target = |e: Endpoint, dbname: String| Target {
        host: e.host,
        port: e.port,
        dbname,
    };
    // On Kubernetes a NodePort Service is reached at several nodes: the
    // master line names the first.
    let master = Endpoint::parse(rw.split(',').next().unwrap_or_default())?;
    let standbys = Endpoint::parse_list(&ro)?
        .into_iter()
        .map(|e| target(e, format!("{database}_readonly")))
        .collect();
    let version = match state::backend(hook)? {
        state::BackendState::Ready(b) => b.version,
        _ => hook.local_app_bag(relation)?.get("version").cloned(),
    };
    let answer = Answer {
        user: legacy_user(hook, relation)?.to_string(),
        password,
        master: target(master, database.clone()),
        standbys,
        client_app: hook.remote_app(relation)?,
        allowed: Allowed::read(hook, relation)?,
        extensions: entry.extensions.clone().unwrap_or_default(),
        version,
        state: Some(STATE.into()),
        database,
    };
    pgsql::publish(hook, relation, &answer)?;
    let endpoints = format!("{rw} {ro}");
    if entry.published.as_deref() != Some(endpoints.as_str()) {
        clients.insert(
            relation.id,
            ClientEntry {
                published: Some(endpoints),
                ..entry
            },
        );
        state::save_clients(hook, &peers, &clients)?;
    }
    Ok(())
}

/// Leader: every legacy client gets its answer (when due) or fresh
/// connection information; a request not handled yet, or refused (an
/// extension may exist now), is handled again. One client's trouble does
/// not hold the others back.
pub fn refresh_all(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let (true, Some(peers)) = (hook.is_leader()?, state::peers(hook)?) else {
        return Ok(());
    };
    let clients = state::clients(hook, &peers)?;
    for endpoint in pgsql::ENDPOINTS {
        for relation in hook.relations(endpoint)? {
            let outcome = match clients.get(&relation.id) {
                Some(c) if c.database.is_some() && c.refused.is_none() => {
                    publish_answer(hook, &relation)
                }
                _ => requested(hook, deps, &relation).map(|_| ()),
            };
            if let Err(e) = outcome {
                hook.add_problem(Status::Waiting(format!(
                    "relation {}: cannot update its connection information: {e:#}",
                    pgsql::relation_name(&relation)
                )))?;
            }
        }
    }
    Ok(())
}

/// relation-changed on a follower: it removes what it wrote to its unit bag
/// when it led, so that no client reads a stale copy.
pub fn follower_changed(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<Handled> {
    pgsql::clear(hook, relation)?;
    Ok(Handled::Done)
}
