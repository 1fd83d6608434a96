//! The `database` relation: clients ask for a database; the leader creates it
//! with a user, adds it to PgBouncer on every unit, and hands the credentials
//! over once every unit serves it. The flowcharts, node by node, are in
//! `docs/pgbouncer-flows.md` (database-requested, -departed, -broken).

use super::{
    all_units_serve, certificates, client_endpoints, config, publish, ready_backend, serve, Deps,
};
use crate::flows::certificates::ClientTls;
use crate::pgb::SharedConfig;
use crate::state::{self, ClientEntry};
use charm::SecretId;
use charm::{Handled, Hook, Relation, RelationEvent, Status};
use client_interface::provider::{self, Answer, UriTarget};
use client_interface::{ClientEvent, Request};

/// The client relations' flows: a request runs database-requested (or
/// refreshes an answered client), then relation-departed and relation-broken.
pub fn handle(hook: &mut Hook<'_>, deps: &Deps, event: ClientEvent<'_>) -> anyhow::Result<Handled> {
    match event {
        ClientEvent::Request(relation) => changed(hook, deps, relation),
        ClientEvent::Departed(departure) => departed(hook, departure),
        ClientEvent::Broken(breakage) => broken(hook, deps, breakage),
    }
}

/// relation-changed (leader): a new request runs database-requested; an answered one gets
/// its connection information refreshed.
fn changed(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation) -> anyhow::Result<Handled> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Deferred);
    };
    if state::clients(hook, &peers)?
        .get(&relation.id)
        .is_some_and(|c| c.database.is_some())
    {
        publish_credentials(hook, relation)?;
        return Ok(Handled::Done);
    }
    requested(hook, deps, relation)
}

/// database-requested, node by node.
pub fn requested(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation) -> anyhow::Result<Handled> {
    // is this unit the leader
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    // Is backend database ready?
    let (Some((backend, _)), Some(peers)) = (ready_backend(hook)?, state::peers(hook)?) else {
        return Ok(Handled::Deferred);
    };
    // Get user data and generate password. A request the charm refuses creates
    // nothing; the record keeps the reason for the status.
    let remote = hook.remote_app_bag(relation)?.clone();
    let mut clients = state::clients(hook, &peers)?;
    let request = match state::client_request(&remote, relation.id) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(Handled::Done),
        Err(refusal) => {
            provider::refuse(hook, relation, &refusal)?;
            clients.insert(
                relation.id,
                ClientEntry {
                    refused: Some(refusal.to_string()),
                    ..ClientEntry::default()
                },
            );
            state::save_clients(hook, &peers, &clients)?;
            return Ok(Handled::Done);
        }
    };
    let Ok(config) = config(hook)? else {
        return Ok(Handled::Deferred);
    };
    let user = provider::relation_user(relation.id);
    let auth_user = backend.auth_user()?;
    let password = match clients.get(&relation.id).and_then(|c| c.secret.clone()) {
        Some(_) => kept_password(hook, relation)?,
        None => {
            // Kept in the relation's user secret from now on, so that a retry
            // uses the same password; handed over once every unit serves.
            let password = postgres_admin::password::generate();
            let endpoints = client_endpoints(hook, config.listen_port)?;
            let answer = answer(
                relation.id,
                &request,
                password.clone(),
                endpoints,
                None,
                &ClientTls::default(),
            );
            let id = provider::keep(hook, state::DATABASE, relation, &request, &answer)?;
            clients.insert(
                relation.id,
                ClientEntry {
                    secret: Some(id.to_string()),
                    ..ClientEntry::default()
                },
            );
            state::save_clients(hook, &peers, &clients)?;
            password
        }
    };
    // Create user and database
    let created = deps.connector.connect(&backend.login).and_then(|mut pg| {
        pg.create_user(&user, &password, &request.roles)?;
        pg.create_database(&request.database, &user)?;
        pg.grant_database(&request.database, &user)?;
        pg.install_auth_function(request.database.as_str(), &auth_user)
    });
    if let Err(e) = created {
        hook.add_problem(Status::Waiting(format!(
            "relation {}: cannot create database {}: {e}",
            relation.id, request.database
        )))?;
        return Ok(Handled::Deferred);
    }
    // Add user to pgbouncer config and peer databag
    clients.insert(
        relation.id,
        ClientEntry {
            database: Some(request.database.to_string()),
            privileged: request.roles.is_privileged(),
            secret: clients.get(&relation.id).and_then(|c| c.secret.clone()),
            ..ClientEntry::default()
        },
    );
    state::save_clients(hook, &peers, &clients)?;
    let shared = publish(hook, deps, &peers, &config)?;
    // Update pgbouncer config with updated connection information
    serve(hook, deps, &peers, Some(&shared))?;
    // Update relation databag with credentials and connection information, once
    // every unit serves the database (else the last acknowledgement does it).
    publish_credentials(hook, relation)?;
    Ok(Handled::Done)
}

/// The password kept in a client relation's user secret.
fn kept_password(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<String> {
    provider::kept_password(hook, state::DATABASE, relation)?.ok_or_else(|| {
        anyhow::anyhow!(
            "relation {}: its user secret holds no password",
            relation.id
        )
    })
}

/// What a client is told: its database through PgBouncer's units, and the
/// read-only twin `<db>_readonly` for its read-only URI.
fn answer(
    relation_id: u64,
    request: &Request,
    password: String,
    (rw, ro): (String, String),
    version: Option<String>,
    tls: &ClientTls,
) -> Answer {
    let read_only_uri = UriTarget {
        hosts: ro.clone(),
        database: format!("{}_readonly", request.database),
    };
    Answer {
        version,
        tls: tls.for_clients(),
        ..Answer::new(relation_id, request, password, (rw, ro), read_only_uri)
    }
}

/// Leader: hands a created database's credentials to the client once every unit
/// serves it, all in one write (the requirer's library needs them together); for
/// a client already answered, rewrites what changed when the endpoints move.
pub fn publish_credentials(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(());
    };
    let mut clients = state::clients(hook, &peers)?;
    let Some(entry) = clients
        .get(&relation.id)
        .filter(|e| e.legacy.is_none())
        .cloned()
    else {
        return Ok(());
    };
    let (Some(_), Some(shared)) = (
        entry.database.clone(),
        state::published_config(hook, &peers)?,
    ) else {
        return Ok(());
    };
    let (rw, ro) = client_endpoints(hook, shared.listen_port())?;
    let endpoints = format!("{rw} {ro}");
    let tls = certificates::client_tls(hook, &peers)?;
    if entry.published.as_deref() == Some(endpoints.as_str())
        && entry.tls.as_deref() == Some(tls.digest().as_str())
    {
        return Ok(());
    }
    if entry.published.is_none() && !all_units_serve(hook, &peers)? {
        return Ok(());
    }
    let remote = hook.remote_app_bag(relation)?.clone();
    let Ok(Some(request)) = state::client_request(&remote, relation.id) else {
        return Ok(());
    };
    let password = kept_password(hook, relation)?;
    let version = match state::backend(hook)? {
        state::BackendState::Ready(b) => b.version,
        _ => provider::published(hook, relation)?.version,
    };
    let answer = answer(relation.id, &request, password, (rw, ro), version, &tls);
    let kept = entry.secret.as_deref().map(SecretId::parse).transpose()?;
    provider::publish(
        hook,
        state::DATABASE,
        relation,
        &request,
        &answer,
        kept.as_ref(),
    )?;
    clients.insert(
        relation.id,
        ClientEntry {
            published: Some(endpoints),
            tls: Some(tls.digest()),
            ..entry
        },
    );
    state::save_clients(hook, &peers, &clients)?;
    Ok(())
}

/// Leader: every created client gets its credentials (when due) or fresh
/// connection information; requests not handled yet are handled now. The
/// legacy clients too (`legacy::refresh_all`).
pub fn refresh_all(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let (true, Some(peers)) = (hook.is_leader()?, state::peers(hook)?) else {
        return Ok(());
    };
    clean_up_departed(hook, deps)?;
    let clients = state::clients(hook, &peers)?;
    for relation in hook.relations(state::DATABASE)? {
        match clients.get(&relation.id) {
            Some(c) if c.database.is_some() => {
                // One client's trouble must not hold the others back.
                if let Err(e) = publish_credentials(hook, &relation) {
                    hook.add_problem(Status::Waiting(format!(
                        "relation {}: cannot update its credentials: {e:#}",
                        relation.id
                    )))?;
                }
            }
            Some(_) => {}
            None => {
                requested(hook, deps, &relation)?;
            }
        }
    }
    super::legacy::refresh_all(hook, deps)
}

/// relation-departed, node by node.
fn departed(hook: &mut Hook<'_>, event: &RelationEvent) -> anyhow::Result<Handled> {
    // Update connection information in relation databag
    if hook.is_leader()? {
        publish_credentials(hook, &event.relation)?;
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

/// relation-broken, node by node (legacy relations' too). The database and
/// its data stay.
pub fn broken(hook: &mut Hook<'_>, deps: &Deps, event: &RelationEvent) -> anyhow::Result<Handled> {
    let relation = &event.relation;
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Done);
    };
    // Update connection information in relation databag (the other clients').
    if hook.is_leader()? {
        for other in hook.relations(state::DATABASE)? {
            publish_credentials(hook, &other)?;
        }
    }
    // Is the backend ready, and is this unit the leader?
    let Some((backend, _)) = ready_backend(hook)? else {
        return Ok(Handled::Done);
    };
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    // Is this unit departing, according to the flag set in the departed hook?
    if hook
        .local_unit_bag(&peers)?
        .contains_key(&state::departing_key(relation))
    {
        return Ok(Handled::Done);
    }
    // Remove user and database from pgb config, on every unit: the relation is
    // no longer live, so the configuration leaves its database out.
    let Ok(config) = config(hook)? else {
        return Ok(Handled::Deferred);
    };
    let shared: SharedConfig = publish(hook, deps, &peers, &config)?;
    serve(hook, deps, &peers, Some(&shared))?;
    // Delete user from backend charm
    if !remove_client(hook, deps, &peers, &backend, relation.id)? {
        return Ok(Handled::Deferred);
    }
    Ok(Handled::Done)
}

/// Leader: removes a gone relation's user from PostgreSQL (and the auth
/// function from its database, if no live client uses it), removes its
/// secrets, and forgets its record. Answers false, keeping the record for a
/// later try, when PostgreSQL cannot be reached.
fn remove_client(
    hook: &mut Hook<'_>,
    deps: &Deps,
    peers: &Relation,
    backend: &state::Backend,
    relation_id: u64,
) -> anyhow::Result<bool> {
    let entry = state::departed_clients(hook, peers)?
        .remove(&relation_id)
        .unwrap_or_default();
    let database = entry.database.clone();
    let live = state::client_databases(hook)?;
    let still_used = database
        .as_ref()
        .is_some_and(|db| live.iter().any(|c| c.name == *db));
    let user = state::client_user(hook, relation_id, &entry)?;
    let auth_user = backend.auth_user()?;
    let dropped = deps.connector.connect(&backend.login).and_then(|mut pg| {
        pg.drop_user(&user)?;
        if let (Some(db), false) = (&database, still_used) {
            pg.remove_auth_function(db, &auth_user)?;
        }
        Ok(())
    });
    if let Err(e) = dropped {
        hook.add_problem(Status::Waiting(format!(
            "relation {relation_id}: cannot remove user {user}: {e}"
        )))?;
        return Ok(false);
    }
    provider::remove_secrets(hook, entry.endpoint(), relation_id)?;
    state::forget_client(hook, peers, relation_id)?;
    Ok(true)
}

/// Leader, and not leaving: removes what client relations that are gone left
/// behind because nobody could remove it when they broke (the backend was
/// down, or the unit that led was itself leaving).
pub fn clean_up_departed(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let (true, Some(peers)) = (hook.is_leader()?, state::peers(hook)?) else {
        return Ok(());
    };
    let departed = state::departed_clients(hook, &peers)?;
    if departed.is_empty() {
        return Ok(());
    }
    // A unit on its way out may already have left relations that live on.
    let me = hook.unit().to_string();
    if hook
        .goal_state()?
        .units
        .get(&me)
        .is_some_and(|u| u.status == "dying")
    {
        return Ok(());
    }
    let Some((backend, _)) = ready_backend(hook)? else {
        return Ok(());
    };
    for id in departed.keys() {
        if !remove_client(hook, deps, &peers, &backend, *id)? {
            break;
        }
    }
    Ok(())
}

/// Every client request the charm refused, for the status (each names its
/// relation).
pub fn refused_requests(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(None);
    };
    let refused: Vec<String> = state::clients(hook, &peers)?
        .into_values()
        .filter_map(|c| c.refused)
        .collect();
    Ok((!refused.is_empty()).then(|| refused.join("; ")))
}
