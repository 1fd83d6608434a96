//! The `backend-database` relation: PgBouncer asks PostgreSQL for the `pgbouncer`
//! database with SUPERUSER, and uses those credentials to create its auth user and
//! install the auth function in every database clients reach.

use super::{config, database, initialised_backend, publish, ready_backend, serve, Deps};
use crate::pgb::ini::{admin_user, stats_user};
use crate::pgb::userlist::Userlist;
use crate::postgres::BACKEND_DATABASE;
use crate::state::{self, BackendState};
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{
    BagChanges, Handled, Hook, LogLevel, Relation, RelationEvent, SecretContent, SecretOwner,
    Status,
};
use client_interface::provider;
use client_interface::requirer::{self, Ask};
use postgres_admin::names::{DatabaseName, ExtraRoles, RoleName};
use postgres_admin::password;
use postgres_admin::verifier::scram_sha_256_random_salt;
use postgres_admin::Postgres;

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

/// relation-changed (credentials arrived, the endpoints changed, a PostgreSQL
/// unit joined), node by node: the leader asks the backend which cluster it
/// is and sets up what that cluster lacks, then republishes the
/// configuration, which every unit renders; pending client requests proceed.
pub fn changed(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    // Is this unit the leader?
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    // Has PostgreSQL published endpoints and credentials?
    if !matches!(state::backend(hook)?, BackendState::Ready(_)) {
        return Ok(Handled::Done);
    }
    // Is a PostgreSQL unit left in the relation? (No: the status says so, and
    // nothing is asked of a backend that is gone.)
    if state::backend_gone(hook)?.is_some() {
        return Ok(Handled::Done);
    }
    // Which cluster is it? Set up what it lacks.
    let checked = ensure_cluster(hook, deps)?;
    // Could it all be done? If not: is the auth user set up for the backend's
    // user all the same? Then its new endpoints are published, and the check
    // is retried with the deferred event.
    let retry = match checked {
        true => Handled::Done,
        false => Handled::Deferred,
    };
    if !checked && initialised_backend(hook)?.is_none() {
        return Ok(retry);
    }
    let (Some(peers), Ok(config)) = (state::peers(hook)?, config(hook)?) else {
        return Ok(retry);
    };
    // Publish the configuration and serve it
    let shared = publish(hook, deps, &peers, &config)?;
    serve(hook, deps, &peers, Some(&shared))?;
    // Hand out due credentials and refresh every client's connection information
    database::refresh_all(hook, deps)?;
    Ok(retry)
}

/// Leader: the auth user exists in PostgreSQL with the auth function in every
/// database PgBouncer serves, and the application secret holds the auth file.
/// Asks nothing of PostgreSQL once that is so for the backend's current user
/// and the backend cluster's identity is recorded; otherwise
/// [`ensure_cluster`]. Returns false when that could not be done (the reason
/// is a problem, or the status's: a backend without units).
pub fn ensure_auth(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<bool> {
    let recorded = match state::peers(hook)? {
        Some(peers) => state::backend_cluster(hook, &peers)?.is_some(),
        None => false,
    };
    if recorded && ready_backend(hook)?.is_some() {
        return Ok(true);
    }
    ensure_cluster(hook, deps)
}

/// Whether the backend's primary, when the backend serves TLS, presents a
/// certificate that verifies with the CA it published, as PgBouncer checks it
/// (`verify-full`). When it does not, PgBouncer refuses the backend's
/// connections: the status says so (waiting).
pub fn tls_verifies(
    hook: &mut Hook<'_>,
    deps: &Deps,
    backend: &state::Backend,
) -> anyhow::Result<bool> {
    let Some(ca) = &backend.tls_ca else {
        return Ok(true);
    };
    let primary = &backend.primary;
    match deps.connector.verify_tls(&primary.host, primary.port, ca) {
        Ok(()) => Ok(true),
        Err(e) => {
            hook.add_problem(Status::Waiting(format!(
                "waiting for the backend: its TLS certificate does not verify with the CA \
                 it published (verify-full): {e}"
            )))?;
            Ok(false)
        }
    }
}

/// Leader: asks the backend which cluster it is (`system_identifier`) and
/// compares it with the one recorded in the peer application bag
/// (`backend_cluster`):
/// - none recorded (the first backend, or a charm that recorded none): sets
///   up the auth user unless it is set up, and records the identity;
/// - the same: sets up the auth user only if it is not set up for the
///   backend's current user (the clients' users and databases are there);
/// - another: a different cluster took the backend's place (the old one
///   lost, or another related): sets up the auth user and recreates every
///   client's user, with the password it was given, and its database where
///   the cluster lacks them (logging that a database was recreated empty),
///   then records the identity.
///
/// Nothing is asked of a backend without units. Returns false when
/// PostgreSQL could not be reached or refused something (each a problem in
/// the status); the identity is then not recorded, so the next try starts
/// over.
pub fn ensure_cluster(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<bool> {
    let (BackendState::Ready(backend), Some(peers)) = (state::backend(hook)?, state::peers(hook)?)
    else {
        return Ok(false);
    };
    if state::backend_gone(hook)?.is_some() {
        return Ok(false);
    }
    // Which cluster is it?
    let recorded = state::backend_cluster(hook, &peers)?;
    let initialised = initialised_backend(hook)?.is_some();
    let mut pg = match deps.connector.connect(&backend.login) {
        Ok(pg) => pg,
        Err(e) => {
            hook.add_problem(Status::Waiting(format!(
                "waiting for the backend: cannot reach PostgreSQL: {e}"
            )))?;
            return Ok(false);
        }
    };
    // A backend that serves TLS must verify as PgBouncer will check it.
    if !tls_verifies(hook, deps, &backend)? {
        return Ok(false);
    }
    let identity = match pg.system_identifier() {
        Ok(identity) => identity,
        Err(e) => {
            hook.add_problem(Status::Waiting(format!(
                "waiting for the backend: cannot tell which cluster it is: {e}"
            )))?;
            return Ok(false);
        }
    };
    // Another than the one recorded: a new cluster
    let new_cluster = recorded.as_deref().is_some_and(|r| r != identity);
    if new_cluster {
        hook.log(
            LogLevel::Warning,
            &format!(
                "the backend is a new cluster (system identifier {identity}): setting up \
                 PgBouncer's auth user and its clients' users and databases again"
            ),
        )?;
    }
    // Recreate every client's user, with the password it has, and its
    // database where the cluster lacks them
    let missing = match new_cluster {
        true => recreate_clients(hook, pg.as_mut())?,
        false => Vec::new(),
    };
    let databases: Vec<String> = ["pgbouncer".to_string(), "postgres".to_string()]
        .into_iter()
        .chain(state::client_databases(hook)?.into_iter().map(|c| c.name))
        .filter(|db| !missing.contains(db))
        .collect();
    // Is the auth user set up for the backend's user? (A new cluster has none.)
    // No: set up the auth user and the auth file
    if (new_cluster || !initialised) && !set_up_auth(hook, pg.as_mut(), &backend, &databases)? {
        return Ok(false);
    }
    // Did PostgreSQL do all of it?
    if !missing.is_empty() {
        return Ok(false);
    }
    // Record the cluster's identity
    let mut changes = BagChanges::new().set(state::BACKEND_CLUSTER, identity);
    if new_cluster {
        // The old cluster's other databases; update-status lists the new one's.
        changes = changes.unset(state::READONLY_DBS);
    }
    hook.update_app_bag(&peers, changes)?;
    Ok(true)
}

/// Leader, on a new cluster: every live client's user, with the password it
/// was given (kept in its relation's user secret), and its database where the
/// cluster lacks it. A database created here is empty, and the log says so.
/// Returns the databases of the clients that could not be recreated (each a
/// problem); the others are recreated all the same.
fn recreate_clients(hook: &mut Hook<'_>, pg: &mut dyn Postgres) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    let Some(peers) = state::peers(hook)? else {
        return Ok(missing);
    };
    for (relation_id, entry) in state::clients(hook, &peers)? {
        let Some(name) = entry.database.clone() else {
            continue;
        };
        let relation = Relation::new(entry.endpoint(), relation_id);
        // A `database` client's request, or a legacy client's database.
        let wanted = match entry.legacy {
            None => {
                let remote = hook.remote_app_bag(&relation)?.clone();
                state::client_request(&remote, relation.id)
                    .ok()
                    .flatten()
                    .map(Wanted::Request)
            }
            Some(_) => DatabaseName::parse(&name).ok().map(Wanted::Legacy),
        };
        let Some(wanted) = wanted else {
            hook.log(
                LogLevel::Warning,
                &format!(
                    "relation {}: its request no longer reads; its user is not recreated",
                    relation.id
                ),
            )?;
            continue;
        };
        let Some(password) = provider::kept_password(hook, entry.endpoint(), &relation)? else {
            hook.add_problem(Status::Waiting(format!(
                "relation {}: no password kept for its user; it cannot be recreated",
                relation.id
            )))?;
            missing.push(name);
            continue;
        };
        // The relation's user, its entity (its name kept in its secret), or
        // the legacy client's user.
        let user = match &wanted {
            Wanted::Request(request) if request.entity.is_some() => {
                provider::kept_entity_name(hook, state::DATABASE, relation.id, Some(&relation))?
                    .and_then(|name| RoleName::parse(&name).ok())
            }
            _ => state::client_user(hook, relation.id, &entry).ok(),
        };
        let Some(user) = user else {
            hook.add_problem(Status::Waiting(format!(
                "relation {}: no name kept for its user; it cannot be recreated",
                relation.id
            )))?;
            missing.push(name);
            continue;
        };
        let recreated = pg.databases().and_then(|existing| {
            match &wanted {
                Wanted::Request(request) => {
                    client_interface::serve::create(pg, request, (&user, &password), &|_| false)?;
                }
                Wanted::Legacy(database) => {
                    pg.create_user(&user, &password, &ExtraRoles::default())?;
                    pg.create_database(database, &user)?;
                    pg.grant_database(database, &user)?;
                }
            }
            Ok(!existing.contains(&name))
        });
        match recreated {
            Ok(true) => hook.log(
                LogLevel::Warning,
                &format!("database {name} was recreated empty: the backend is a new cluster"),
            )?,
            Ok(false) => {}
            Err(e) => {
                hook.add_problem(Status::Waiting(format!(
                    "relation {}: cannot recreate user {user} and database {name} in the new \
                     cluster: {e}",
                    relation.id
                )))?;
                missing.push(name);
            }
        }
    }
    Ok(missing)
}

/// What a client relation was given, to give it again.
enum Wanted {
    /// A `database` client's request.
    Request(client_interface::Request),
    /// A legacy client's database.
    Legacy(DatabaseName),
}

/// Leader: creates the auth user `pgbouncer_auth_<backend user>` with a new
/// password, installs the auth function in `databases`, drops the auth user
/// of a backend relation that ended (and its function), and writes the
/// application secret (auth file, auth user, console passwords, which are
/// kept). Returns false when PostgreSQL refused (the reason is a problem).
fn set_up_auth(
    hook: &mut Hook<'_>,
    pg: &mut dyn Postgres,
    backend: &state::Backend,
    databases: &[String],
) -> anyhow::Result<bool> {
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
    let done = pg
        .create_user(&auth_user, &auth_password, &ExtraRoles::default())
        .and_then(|()| {
            databases
                .iter()
                .try_for_each(|db| pg.install_auth_function(db, &auth_user))
        });
    if let Err(e) = done {
        hook.add_problem(Status::Waiting(format!(
            "cannot set up PgBouncer's auth user in PostgreSQL: {e}"
        )))?;
        return Ok(false);
    }
    if let Some(former) = keep(state::FORMER_AUTH_USER).filter(|f| f != auth_user.as_str()) {
        drop_former_auth_user(hook, pg, &former, databases)?;
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

/// Drops the auth user of a backend relation that ended, with its auth
/// function in `databases`: a login role nothing uses would stay behind
/// otherwise. On another cluster there is none, and nothing is done; a
/// refusal is logged, and the name forgotten all the same.
fn drop_former_auth_user(
    hook: &mut Hook<'_>,
    pg: &mut dyn Postgres,
    former: &str,
    databases: &[String],
) -> anyhow::Result<()> {
    let role = RoleName::parse(former)?;
    let dropped = databases
        .iter()
        .try_for_each(|db| pg.remove_auth_function(db, &role).map(|_| ()))
        .and_then(|()| pg.drop_user(&role));
    match dropped {
        Ok(true) => hook.log(
            LogLevel::Info,
            &format!("dropped {former}, the auth user of a backend relation that ended"),
        )?,
        Ok(false) => {}
        Err(e) => hook.log(
            LogLevel::Warning,
            &format!("cannot drop {former}, the auth user of a backend relation that ended: {e}"),
        )?,
    }
    Ok(())
}

/// relation-departed: this unit leaving only marks itself. A PostgreSQL unit
/// leaving changes nothing here: with none left, the status waits for the
/// backend and nothing is asked of it. PgBouncer's auth user stays in the
/// cluster: with no unit left PgBouncer cannot tell a relation being removed
/// from a backend that went away, and a cluster that comes back needs it.
pub fn departed(hook: &mut Hook<'_>, event: &RelationEvent) -> anyhow::Result<Handled> {
    // Is this unit departing?
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

/// relation-broken: PgBouncer has no backend any more. The leader forgets the
/// auth file (keeping the auth user's name, to drop it from the next backend
/// set up) and republishes a configuration without databases; every unit
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
        let mut kept: SecretContent = secret
            .iter()
            .filter(|(k, _)| *k == state::ADMIN_PASSWORD || *k == state::MONITORING_PASSWORD)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The auth user goes with the relation's backend user, which
        // PostgreSQL drops: the next backend set up drops it too.
        if let Some(former) = secret
            .get(state::AUTH_USER)
            .or_else(|| secret.get(state::FORMER_AUTH_USER))
        {
            kept = kept.with(state::FORMER_AUTH_USER, former);
        }
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
