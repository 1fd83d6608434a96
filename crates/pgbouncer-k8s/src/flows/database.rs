//! The `database` relation (seeds 000 and 002): clients ask for a database; the
//! leader creates it with a user, adds it to PgBouncer on every unit, and hands
//! the credentials over once every unit serves it.

use super::{
    all_units_serve, client_endpoints, config, publish, ready_backend, serve, Deps, Issues,
};
use crate::pgb::SharedConfig;
use crate::state;
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{Databag, Handled, Hook, Relation, RelationEvent, SecretContent, SecretOwner};
use postgres_admin::names::DatabaseName;

/// Client fields that travel in the `user` secret group.
const USER_FIELDS: [&str; 4] = ["username", "password", "uris", "read-only-uris"];

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
    if hook.local_app_bag(relation)?.contains_key("database") {
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
    let Some((backend, _)) = ready_backend(hook)? else {
        return Ok(Handled::Deferred);
    };
    // Get user data and generate password (a request the charm refuses creates
    // nothing; the status names it).
    let remote = hook.remote_app_bag(relation)?.clone();
    let request = match state::request(&remote, relation.id) {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => return Ok(Handled::Done),
    };
    let Ok(Ok(config)) = config(hook) else {
        return Ok(Handled::Deferred);
    };
    let user = state::relation_user(relation.id);
    let auth_user = backend.auth_user()?;
    let password = pending_password(hook, relation.id)?;
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
    hook.update_app_bag(
        relation,
        [("database".to_string(), Some(request.database.to_string()))],
    )?;
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Deferred);
    };
    let shared = publish(hook, deps, &peers, &config)?;
    // Update pgbouncer config with updated connection information
    serve(hook, deps, &peers, Some(&shared))?;
    // Update relation databag with credentials and connection information, once
    // every unit serves the database (else the last acknowledgement does it).
    publish_credentials(hook, relation)?;
    Ok(Handled::Done)
}

/// The relation's password, kept in its (not yet granted) user secret between
/// the request and the hand-over, so that a retried request keeps it.
fn pending_password(hook: &mut Hook<'_>, relation_id: u64) -> anyhow::Result<String> {
    let label = state::user_secret_label(relation_id);
    if let Some(content) = hook.secret_by_label(&label, Revision::Peek)? {
        if let Some(p) = content.get("password") {
            return Ok(p.to_string());
        }
    }
    let password = postgres_admin::password::generate();
    let content = SecretContent::new()
        .with("username", state::relation_user(relation_id).as_str())
        .with("password", password.as_str());
    let meta = SecretMeta {
        label: Some(label),
        ..SecretMeta::default()
    };
    hook.add_secret(&content, SecretOwner::Application, &meta)?;
    Ok(password)
}

fn published(bag: &Databag) -> bool {
    bag.contains_key("secret-user") || bag.contains_key("username")
}

/// Leader: hands a created database's credentials to the client when every unit
/// serves it, in one write (the requirer's library needs them together); for a
/// relation already answered, refreshes the connection information.
pub fn publish_credentials(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
    let ours = hook.local_app_bag(relation)?.clone();
    let Some(database) = ours.get("database").cloned() else {
        return Ok(());
    };
    let Some(peers) = state::peers(hook)? else {
        return Ok(());
    };
    if !published(&ours) && !all_units_serve(hook, &peers)? {
        return Ok(());
    }
    let Some(request) = state::request(&hook.remote_app_bag(relation)?.clone(), relation.id)
        .ok()
        .flatten()
    else {
        return Ok(());
    };
    let Some(shared) = state::published_config(hook, &peers)? else {
        return Ok(());
    };
    let label = state::user_secret_label(relation.id);
    let Some(stored) = hook.secret_by_label(&label, Revision::Peek)? else {
        return Ok(());
    };
    let password = stored.get("password").unwrap_or_default().to_string();
    let user = state::relation_user(relation.id);
    let (rw, ro) = client_endpoints(hook, shared.listen_port())?;
    let db = DatabaseName::parse(&database)?;
    let readonly_db = format!("{db}_readonly");
    let mut fields: Vec<(&str, String)> = vec![
        ("username", user.to_string()),
        ("password", password.clone()),
        ("uris", format!("postgresql://{user}:{password}@{rw}/{db}")),
    ];
    if request.secret_fields.iter().any(|f| f == "read-only-uris") {
        fields.push((
            "read-only-uris",
            format!("postgresql://{user}:{password}@{ro}/{readonly_db}"),
        ));
    }
    let mut bag: Vec<(String, Option<String>)> = vec![
        ("database".into(), Some(database.clone())),
        ("endpoints".into(), Some(rw)),
        ("read-only-endpoints".into(), Some(ro)),
        ("tls".into(), Some("False".into())),
    ];
    if let Some(version) = backend_version(hook)? {
        bag.push(("version".into(), Some(version)));
    }
    let in_secret = request
        .secret_fields
        .iter()
        .any(|f| f == "username" || f == "password");
    if in_secret {
        let content: SecretContent = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let info = hook.secret_info(&SecretRef::Label(label))?;
        let id = info.id.ok_or_else(|| {
            anyhow::anyhow!("the user secret of relation {} has no id", relation.id)
        })?;
        if Some(&content)
            != hook
                .secret(&SecretRef::Id(id.clone(), None), Revision::Peek)
                .ok()
                .as_ref()
        {
            hook.set_secret(&id, Some(&content), &SecretMeta::default())?;
        }
        if !published(&ours) {
            hook.grant_secret(&id, relation, None)?;
        }
        bag.push(("secret-user".into(), Some(id.to_string())));
    } else {
        bag.extend(
            fields
                .into_iter()
                .filter(|(k, _)| USER_FIELDS.contains(k))
                .map(|(k, v)| (k.to_string(), Some(v))),
        );
    }
    hook.update_app_bag(relation, bag)?;
    Ok(())
}

/// The backend's version, as it published it.
fn backend_version(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    Ok(match state::backend(hook)? {
        state::BackendState::Ready(b) => b.version,
        _ => None,
    })
}

/// Leader: every created client gets its credentials (when due) or fresh
/// connection information; requests not handled yet are handled now.
pub fn refresh_all(hook: &mut Hook<'_>, deps: &Deps, issues: &mut Issues) -> anyhow::Result<()> {
    if !hook.is_leader()? {
        return Ok(());
    }
    for relation in hook.relations(state::DATABASE)? {
        if hook.local_app_bag(&relation)?.contains_key("database") {
            publish_credentials(hook, &relation)?;
        } else if hook.remote_app_bag(&relation)?.contains_key("database") {
            requested(hook, deps, issues, &relation)?;
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
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Done);
    };
    if hook
        .local_unit_bag(&peers)?
        .contains_key(&state::departing_key(relation))
    {
        return Ok(Handled::Done);
    }
    // Remove user and database from pgb config (relation-ids no longer lists this
    // relation, so the rebuilt configuration leaves it out), on every unit.
    let Ok(Ok(config)) = config(hook) else {
        return Ok(Handled::Deferred);
    };
    let database = hook.local_app_bag(relation)?.get("database").cloned();
    let shared: SharedConfig = publish(hook, deps, &peers, &config)?;
    serve(hook, deps, &peers, Some(&shared))?;
    // Delete user from backend charm (and the auth function, if no other client uses the database).
    let still_used = database.as_ref().is_some_and(|db| {
        shared
            .databases
            .iter()
            .any(|d| d.dbname.as_deref() == Some(db.as_str()))
    });
    let user = state::relation_user(relation.id);
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
            format!("relation {}: cannot remove user {user}: {e}", relation.id),
        )?;
        return Ok(Handled::Deferred);
    }
    if let Ok(info) = hook.secret_info(&SecretRef::Label(state::user_secret_label(relation.id))) {
        if let Some(id) = info.id {
            hook.remove_secret(&id, None)?;
        }
    }
    Ok(Handled::Done)
}

/// The first client request the charm refuses, for the status.
pub fn refused_request(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    for relation in hook.relations(state::DATABASE)? {
        if let Err(message) = state::request(&hook.remote_app_bag(&relation)?.clone(), relation.id)
        {
            return Ok(Some(message));
        }
    }
    Ok(None)
}
