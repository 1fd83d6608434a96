//! The `database` relation: clients ask for a database; the leader creates it
//! with a user, adds it to PgBouncer on every unit, and hands the credentials
//! over once every unit serves it. The flowcharts, node by node, are in
//! `docs/pgbouncer-flows.md` (database-requested, -departed, -broken).

use super::{
    all_units_serve, certificates, client_endpoints, config, publish, ready_backend, serve, Deps,
    Issues,
};
use crate::pgb::SharedConfig;
use crate::state::{self, ClientEntry};
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{Handled, Hook, Relation, RelationEvent, SecretContent, SecretId, SecretOwner};

/// relation-changed: a new request runs database-requested; an answered one gets
/// its connection information refreshed.
pub fn changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    issues: &mut Issues,
    relation: &Relation,
) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
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
    requested(hook, deps, issues, relation)
}

/// database-requested, node by node.
pub fn requested(
    hook: &mut Hook<'_>,
    deps: &Deps,
    issues: &mut Issues,
    relation: &Relation,
) -> anyhow::Result<Handled> {
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
    let request = match state::request(&remote, relation.id) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(Handled::Done),
        Err(reason) => {
            clients.insert(
                relation.id,
                ClientEntry {
                    refused: Some(reason),
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
    let user = state::relation_user(relation.id);
    let auth_user = backend.auth_user()?;
    let password = match clients.get(&relation.id).and_then(|c| c.secret.clone()) {
        Some(id) => stored_password(hook, &id)?,
        None => {
            let password = postgres_admin::password::generate();
            let (rw, ro) = client_endpoints(hook, config.listen_port)?;
            let fields = credential_fields(relation.id, &request, &password, &rw, &ro);
            let meta = SecretMeta {
                label: Some(state::user_secret_label(relation.id)),
                ..SecretMeta::default()
            };
            let id = hook.add_secret(&fields, SecretOwner::Application, &meta)?;
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
    let created = deps
        .connector
        .connect(&backend.credentials)
        .and_then(|mut pg| {
            pg.create_user(&user, &password, &request.roles)?;
            pg.create_database(&request.database, &user)?;
            pg.grant_database(&request.database, &user)?;
            pg.install_auth_function(request.database.as_str(), &auth_user)
        });
    if let Err(e) = created {
        issues.add(
            hook,
            format!(
                "relation {}: cannot create database {}: {e}",
                relation.id, request.database
            ),
        )?;
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

/// The password held in a relation's user secret.
fn stored_password(hook: &mut Hook<'_>, id: &str) -> anyhow::Result<String> {
    let content = hook.secret(&SecretRef::Id(SecretId::parse(id)?, None), Revision::Peek)?;
    content
        .get("password")
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the user secret {id} holds no password"))
}

/// What the `user` secret group holds for a client: its user, password and URIs
/// (the read-only one when asked for).
fn credential_fields(
    relation_id: u64,
    request: &state::Request,
    password: &str,
    rw: &str,
    ro: &str,
) -> SecretContent {
    let user = state::relation_user(relation_id);
    let db = &request.database;
    let mut fields = SecretContent::new()
        .with("username", user.as_str())
        .with("password", password)
        .with("uris", format!("postgresql://{user}:{password}@{rw}/{db}"));
    if request.secret_fields.iter().any(|f| f == "read-only-uris") {
        fields.insert(
            "read-only-uris",
            format!("postgresql://{user}:{password}@{ro}/{db}_readonly"),
        );
    }
    fields
}

/// Leader: hands a created database's credentials to the client once every unit
/// serves it, all in one write (the requirer's library needs them together); for
/// a client already answered, rewrites what changed when the endpoints move.
pub fn publish_credentials(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
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
    let Ok(Some(request)) = state::request(&hook.remote_app_bag(relation)?.clone(), relation.id)
    else {
        return Ok(());
    };
    let id = match &entry.secret {
        Some(id) => SecretId::parse(id)?,
        None => secret_id(hook, &state::user_secret_label(relation.id))?,
    };
    let stored = hook.secret(&SecretRef::Id(id.clone(), None), Revision::Peek)?;
    let password = stored.get("password").unwrap_or_default().to_string();
    let fields = credential_fields(relation.id, &request, &password, &rw, &ro);
    let mut bag: Vec<(String, Option<String>)> = vec![
        ("database".into(), Some(database)),
        ("endpoints".into(), Some(rw)),
        ("read-only-endpoints".into(), Some(ro)),
    ];
    certificates::client_tls_fields(hook, relation, &request.secret_fields, &tls, &mut bag)?;
    if let state::BackendState::Ready(b) = state::backend(hook)? {
        bag.push(("version".into(), b.version));
    }
    if request
        .secret_fields
        .iter()
        .any(|f| f == "username" || f == "password")
    {
        if fields != stored {
            hook.set_secret(&id, Some(&fields), &SecretMeta::default())?;
        }
        if entry.published.is_none() {
            hook.grant_secret(&id, relation, None)?;
        }
        bag.push(("secret-user".into(), Some(id.to_string())));
    } else {
        bag.extend(fields.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    }
    hook.update_app_bag(relation, bag)?;
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

fn secret_id(hook: &mut Hook<'_>, label: &str) -> anyhow::Result<SecretId> {
    hook.secret_info(&SecretRef::Label(label.into()))?
        .id
        .ok_or_else(|| anyhow::anyhow!("Juju gave no id for secret {label}"))
}

/// Leader: every created client gets its credentials (when due) or fresh
/// connection information; requests not handled yet are handled now.
pub fn refresh_all(hook: &mut Hook<'_>, deps: &Deps, issues: &mut Issues) -> anyhow::Result<()> {
    let (true, Some(peers)) = (hook.is_leader()?, state::peers(hook)?) else {
        return Ok(());
    };
    clean_up_departed(hook, deps, issues)?;
    let clients = state::clients(hook, &peers)?;
    for relation in hook.relations(state::DATABASE)? {
        match clients.get(&relation.id) {
            Some(c) if c.database.is_some() => {
                // One client's trouble must not hold the others back.
                if let Err(e) = publish_credentials(hook, &relation) {
                    issues.add(
                        hook,
                        format!(
                            "relation {}: cannot update its credentials: {e:#}",
                            relation.id
                        ),
                    )?;
                }
            }
            Some(_) => {}
            None => {
                requested(hook, deps, issues, &relation)?;
            }
        }
    }
    Ok(())
}

/// relation-departed, node by node.
pub fn departed(hook: &mut Hook<'_>, event: &RelationEvent) -> anyhow::Result<Handled> {
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

/// relation-broken, node by node. The database and its data stay.
pub fn broken(
    hook: &mut Hook<'_>,
    deps: &Deps,
    issues: &mut Issues,
    event: &RelationEvent,
) -> anyhow::Result<Handled> {
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
    if !remove_client(hook, deps, issues, &peers, &backend, relation.id)? {
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
    issues: &mut Issues,
    peers: &Relation,
    backend: &state::Backend,
    relation_id: u64,
) -> anyhow::Result<bool> {
    let database = state::departed_clients(hook, peers)?
        .get(&relation_id)
        .and_then(|c| c.database.clone());
    let live = state::client_databases(hook)?;
    let still_used = database
        .as_ref()
        .is_some_and(|db| live.iter().any(|c| c.name == *db));
    let user = state::relation_user(relation_id);
    let auth_user = backend.auth_user()?;
    let dropped = deps
        .connector
        .connect(&backend.credentials)
        .and_then(|mut pg| {
            pg.drop_user(&user)?;
            if let (Some(db), false) = (&database, still_used) {
                pg.remove_auth_function(db, &auth_user)?;
            }
            Ok(())
        });
    if let Err(e) = dropped {
        issues.add(
            hook,
            format!("relation {relation_id}: cannot remove user {user}: {e}"),
        )?;
        return Ok(false);
    }
    for label in [
        state::user_secret_label(relation_id),
        certificates::tls_secret_label(relation_id),
    ] {
        if let Ok(id) = secret_id(hook, &label) {
            hook.remove_secret(&id, None)?;
        }
    }
    state::forget_client(hook, peers, relation_id)?;
    Ok(true)
}

/// Leader, and not leaving: removes what client relations that are gone left
/// behind because nobody could remove it when they broke (the backend was
/// down, or the unit that led was itself leaving).
pub fn clean_up_departed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    issues: &mut Issues,
) -> anyhow::Result<()> {
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
        if !remove_client(hook, deps, issues, &peers, &backend, *id)? {
            break;
        }
    }
    Ok(())
}

/// The first client request the charm refused, for the status.
pub fn refused_request(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(None);
    };
    Ok(state::clients(hook, &peers)?
        .into_values()
        .find_map(|c| c.refused))
}
