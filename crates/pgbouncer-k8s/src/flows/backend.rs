//! The `backend-database` relation: PgBouncer asks PostgreSQL for the `pgbouncer`
//! database with SUPERUSER, and uses those credentials to create its auth user and
//! install the auth function in every database clients reach.

use super::{config, database, publish, ready_backend, serve, Deps};
use crate::pgb::ini::{admin_user, stats_user};
use crate::pgb::userlist::Userlist;
use crate::postgres::BACKEND_DATABASE;
use crate::state::{self, BackendState};
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{Handled, Hook, RelationEvent, SecretContent, SecretOwner, Status};
use client_interface::requirer::{self, Ask};
use postgres_admin::names::ExtraRoles;
use postgres_admin::password;
use postgres_admin::verifier::scram_sha_256_random_salt;

/// What PgBouncer asks the backend for: its own database, as SUPERUSER (to
/// create clients' users and databases), with everything in secrets.
const ASK: Ask<'static> = Ask {
    database: BACKEND_DATABASE,
    extra_user_roles: "SUPERUSER",
    requested_secrets: &[
        "username",
        "password",
        "tls",
        "tls-ca",
        "uris",
        "read-only-uris",
    ],
};

/// relation-created: the leader asks for the `pgbouncer` database as SUPERUSER.
pub fn created(hook: &mut Hook<'_>, event: &RelationEvent) -> anyhow::Result<Handled> {
    if hook.is_leader()? {
        requirer::ask(hook, &event.relation, &ASK)?;
    }
    Ok(Handled::Done)
}

/// relation-changed (credentials arrived, or the endpoints changed): the leader
/// makes sure the auth user and function exist, then republishes the
/// configuration, which every unit renders; pending client requests proceed.
pub fn changed(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    if !matches!(state::backend(hook)?, BackendState::Ready(_)) {
        return Ok(Handled::Done);
    }
    if !ensure_auth(hook, deps)? {
        return Ok(Handled::Deferred);
    }
    let (Some(peers), Ok(config)) = (state::peers(hook)?, config(hook)?) else {
        return Ok(Handled::Done);
    };
    let shared = publish(hook, deps, &peers, &config)?;
    serve(hook, deps, &peers, Some(&shared))?;
    database::refresh_all(hook, deps)?;
    Ok(Handled::Done)
}

/// Leader: the auth user exists in PostgreSQL with the auth function in every
/// database PgBouncer serves, and the application secret holds the auth file.
/// Returns false when PostgreSQL could not be reached (the reason is an issue).
pub fn ensure_auth(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<bool> {
    if ready_backend(hook)?.is_some() {
        return Ok(true);
    }
    let BackendState::Ready(backend) = state::backend(hook)? else {
        return Ok(false);
    };
    let auth_user = backend.auth_user()?;
    let existing = state::app_secret(hook)?;
    let keep = |key: &str| {
        existing
            .as_ref()
            .and_then(|c| c.get(key))
            .map(str::to_string)
    };
    let admin_password = keep(state::ADMIN_PASSWORD).unwrap_or_else(password::generate);
    let monitoring_password = keep(state::MONITORING_PASSWORD).unwrap_or_else(password::generate);
    let auth_password = password::generate();
    let databases: Vec<String> = ["pgbouncer".to_string(), "postgres".to_string()]
        .into_iter()
        .chain(state::client_databases(hook)?.into_iter().map(|c| c.name))
        .collect();
    let done = deps.connector.connect(&backend.login).and_then(|mut pg| {
        pg.create_user(&auth_user, &auth_password, &ExtraRoles::default())?;
        for db in &databases {
            pg.install_auth_function(db, &auth_user)?;
        }
        Ok(())
    });
    if let Err(e) = done {
        hook.add_problem(Status::Waiting(format!(
            "cannot set up PgBouncer's auth user in PostgreSQL: {e}"
        )))?;
        return Ok(false);
    }
    let app = hook.app().to_string();
    let mut users = Userlist::default();
    users.set(auth_user.as_str(), &auth_password);
    users.set(
        &admin_user(&app),
        &scram_sha_256_random_salt(&admin_password),
    );
    users.set(
        &stats_user(&app),
        &scram_sha_256_random_salt(&monitoring_password),
    );
    let content = SecretContent::new()
        .with(state::AUTH_FILE, users.render())
        .with(state::AUTH_USER, auth_user.as_str())
        .with(state::ADMIN_PASSWORD, admin_password)
        .with(state::MONITORING_PASSWORD, monitoring_password);
    let label = state::app_secret_label(&app);
    match existing {
        Some(_) => {
            let id = hook
                .secret_info(&SecretRef::Label(label))?
                .id
                .ok_or_else(|| anyhow::anyhow!("the application secret has no id"))?;
            hook.set_secret(&id, Some(&content), &SecretMeta::default())?;
        }
        None => {
            let meta = SecretMeta {
                label: Some(label),
                description: Some("PgBouncer's auth file and console passwords".into()),
                ..SecretMeta::default()
            };
            hook.add_secret(&content, SecretOwner::Application, &meta)?;
        }
    }
    Ok(true)
}

/// relation-departed: this unit leaving only marks itself; the leader cleans up
/// in PostgreSQL when the last PostgreSQL unit is gone from the relation (the
/// relation is being removed).
pub fn departed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    event: &RelationEvent,
) -> anyhow::Result<Handled> {
    if event.departing_unit.as_deref() == Some(hook.unit()) {
        if let Some(peers) = state::peers(hook)? {
            hook.update_unit_bag(
                &peers,
                [(state::departing_key(&event.relation), Some("true".into()))],
            )?;
        }
        return Ok(Handled::Done);
    }
    if !hook.is_leader()? || !hook.relation_units(&event.relation)?.is_empty() {
        return Ok(Handled::Done);
    }
    let Some((backend, _)) = ready_backend(hook)? else {
        return Ok(Handled::Done);
    };
    let auth_user = backend.auth_user()?;
    let mut databases = vec!["pgbouncer".to_string(), "postgres".to_string()];
    databases.extend(state::client_databases(hook)?.into_iter().map(|c| c.name));
    let cleaned = deps.connector.connect(&backend.login).and_then(|mut pg| {
        for db in &databases {
            pg.remove_auth_function(db, &auth_user)?;
        }
        pg.drop_user(&auth_user)?;
        Ok(())
    });
    if let Err(e) = cleaned {
        hook.add_problem(Status::Waiting(format!(
            "cannot remove PgBouncer's auth user from PostgreSQL: {e}"
        )))?;
    }
    Ok(Handled::Done)
}

/// relation-broken: PgBouncer has no backend any more. The leader forgets the
/// auth file and republishes a configuration without databases; every unit
/// renders it. The status then asks for a backend.
pub fn broken(hook: &mut Hook<'_>, deps: &Deps, event: &RelationEvent) -> anyhow::Result<Handled> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Done);
    };
    if hook
        .local_unit_bag(&peers)?
        .contains_key(&state::departing_key(&event.relation))
    {
        return Ok(Handled::Done);
    }
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    if let Some(secret) =
        hook.secret_by_label(&state::app_secret_label(hook.app()), Revision::Peek)?
    {
        let kept: SecretContent = secret
            .iter()
            .filter(|(k, _)| *k == state::ADMIN_PASSWORD || *k == state::MONITORING_PASSWORD)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let id = hook
            .secret_info(&SecretRef::Label(state::app_secret_label(hook.app())))?
            .id
            .ok_or_else(|| anyhow::anyhow!("the application secret has no id"))?;
        hook.set_secret(&id, Some(&kept), &SecretMeta::default())?;
    }
    if let Ok(config) = config(hook)? {
        let shared = publish(hook, deps, &peers, &config)?;
        serve(hook, deps, &peers, Some(&shared))?;
    }
    Ok(Handled::Done)
}
