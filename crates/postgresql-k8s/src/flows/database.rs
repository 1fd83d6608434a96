//! The `database` relation (`postgresql_client` v0, provider): each client gets
//! a user `relation_id_<id>` and its database on the primary, and the primary
//! and replicas as endpoints, in Juju secrets or the databag as it asks.

use super::{cluster_status, context, Ctx, Deps};
use crate::patroni::Cluster;
use crate::postgres;
use crate::state;
use charm::{Handled, Hook, LogLevel, Relation, RelationEvent, Status};
use client_interface::provider::{self, Answer, UriTarget};
use client_interface::request::{self, Request};
use client_interface::ClientEvent;
use postgres_admin::names::{DatabaseName, Extension, ExtraRoles, RoleName};
use postgres_admin::{PgError, Postgres};

/// Where clients connect: the primary, and the replicas (the primary when alone).
pub fn client_endpoints(cluster: &Cluster, members: &[String]) -> Option<(String, String)> {
    let primary = cluster.primary()?;
    let mut replicas: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| !m.is_leader() && members.contains(&m.host))
        .map(|m| m.endpoint())
        .collect();
    replicas.sort();
    if replicas.is_empty() {
        replicas.push(primary.endpoint());
    }
    Some((primary.endpoint(), replicas.join(",")))
}

/// What a client's read-only URI names: the first replica, in its database.
fn read_only_uri(request: &Request, read_only_endpoints: &str) -> UriTarget {
    UriTarget {
        hosts: read_only_endpoints
            .split(',')
            .next()
            .unwrap_or(read_only_endpoints)
            .to_string(),
        database: request.database.to_string(),
    }
}

/// relation-changed (leader): a new request is served; an answered one gets
/// its endpoints refreshed.
fn changed(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation) -> anyhow::Result<Handled> {
    let remote = hook.remote_app_bag(relation)?.clone();
    let request = match request::parse(&remote, relation.id) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(Handled::Done),
        Err(refusal) => {
            // The client is told why; the status names every refusal.
            provider::refuse(hook, relation, &refusal)?;
            return Ok(Handled::Done);
        }
    };
    let Some(ctx) = context(hook)? else {
        return Ok(Handled::Deferred);
    };
    if provider::published(hook, relation)?.has_credentials() {
        refresh(hook, deps, &ctx, relation, &request, None)?;
        return Ok(Handled::Done);
    }
    requested(hook, deps, &ctx, relation, &request)
}

/// database-requested: the user, the database, then everything in one write.
fn requested(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    relation: &Relation,
    request: &Request,
) -> anyhow::Result<Handled> {
    // Defer unless the cluster is initialised and has a primary.
    if !state::initialised(hook, &ctx.peers)? {
        return Ok(Handled::Deferred);
    }
    let Some(cluster) = cluster_status(hook, deps, ctx)? else {
        return Ok(Handled::Deferred);
    };
    let members = state::members(hook, &ctx.peers)?;
    let (Some(primary), Some((rw, ro))) = (cluster.primary(), client_endpoints(&cluster, &members))
    else {
        return Ok(Handled::Deferred);
    };
    let target = postgres::operator_login(
        &primary.host,
        primary.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let user = provider::relation_user(relation.id);
    let password = postgres_admin::password::generate();
    let created = deps.connector.connect(&target).and_then(|mut pg| {
        pg.create_user(&user, &password, &request.roles)?;
        pg.create_database(&request.database, &user)?;
        pg.grant_database(&request.database, &user)?;
        pg.server_version()
    });
    let version = match created {
        Ok(v) => v,
        Err(e) => {
            let message = format!(
                "relation {}: cannot create database {}: {e}",
                relation.id, request.database
            );
            hook.add_problem(Status::Waiting(message))?;
            return Ok(Handled::Deferred);
        }
    };
    let read_only = read_only_uri(request, &ro);
    let answer = Answer {
        version: Some(version),
        ..Answer::new(relation.id, request, password, (rw, ro), read_only)
    };
    provider::publish(hook, state::DATABASE, relation, request, &answer, None)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "relation {}: database {} ready for {user}",
            relation.id, request.database
        ),
    )?;
    Ok(Handled::Done)
}

/// Leader: rewrites a served client's endpoints (and URIs) when they moved.
/// `members` overrides the peer bag's list (during a departure).
fn refresh(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    relation: &Relation,
    request: &Request,
    members: Option<&[String]>,
) -> anyhow::Result<()> {
    let Some(cluster) = cluster_status(hook, deps, ctx)? else {
        return Ok(());
    };
    let members = match members {
        Some(m) => m.to_vec(),
        None => state::members(hook, &ctx.peers)?,
    };
    let Some((rw, ro)) = client_endpoints(&cluster, &members) else {
        return Ok(());
    };
    let before = provider::published(hook, relation)?;
    if before.endpoints.as_ref() == Some(&rw) && before.read_only_endpoints.as_ref() == Some(&ro) {
        return Ok(());
    }
    let Some(password) = provider::kept_password(hook, state::DATABASE, relation)? else {
        anyhow::bail!("relation {}: no password kept for its user", relation.id);
    };
    let endpoints = (rw.clone(), ro.clone());
    let answer = Answer {
        version: before.version,
        ..Answer::new(
            relation.id,
            request,
            password,
            endpoints,
            read_only_uri(request, &ro),
        )
    };
    provider::publish(hook, state::DATABASE, relation, request, &answer, None)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "relation {}: endpoints now {rw} (read-only {ro})",
            relation.id
        ),
    )?;
    Ok(())
}

/// Leader: refreshes every served client's endpoints, the legacy clients'
/// included. One client's trouble does not hold the others back.
pub fn refresh_all(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    members: Option<&[String]>,
) -> anyhow::Result<()> {
    if !hook.is_leader()? {
        return Ok(());
    }
    announce_primary(hook, deps, ctx)?;
    for relation in hook.relations(state::DATABASE)? {
        let remote = hook.remote_app_bag(&relation)?.clone();
        let Ok(Some(request)) = request::parse(&remote, relation.id) else {
            continue;
        };
        if !provider::published(hook, &relation)?.has_credentials() {
            continue;
        }
        if let Err(e) = refresh(hook, deps, ctx, &relation, &request, members) {
            let message = format!(
                "relation {}: cannot update its endpoints: {e:#}",
                relation.id
            );
            hook.add_problem(Status::Waiting(message))?;
        }
    }
    // The legacy clients' `master` and `standbys` too.
    super::legacy::refresh_all(hook, deps, ctx, members)
}

/// Leader: records the primary in the peer application bag when it changed,
/// so that every unit hears of it (a replica that saw no primary, or one
/// that used to lead, then names its role without waiting for update-status).
fn announce_primary(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<()> {
    if let Some(primary) = cluster_status(hook, deps, ctx)?.and_then(|c| c.primary().cloned()) {
        hook.update_app_bag(
            &ctx.peers,
            [(state::PRIMARY.to_string(), Some(primary.name))],
        )?;
    }
    Ok(())
}

/// A client already handed its credentials (on `database` or a legacy
/// endpoint): what its user and database are.
pub struct ServedClient {
    pub relation_id: u64,
    pub user: RoleName,
    password: String,
    pub database: DatabaseName,
    roles: ExtraRoles,
    extensions: Vec<Extension>,
}

impl std::fmt::Debug for ServedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedClient")
            .field("relation_id", &self.relation_id)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ServedClient {
    /// The client of relation `relation_id`: its user `relation_id_<id>`
    /// with `password` and `roles`, and its database.
    pub fn new(
        relation_id: u64,
        password: String,
        database: DatabaseName,
        roles: ExtraRoles,
    ) -> ServedClient {
        ServedClient {
            relation_id,
            user: provider::relation_user(relation_id),
            password,
            database,
            roles,
            extensions: Vec::new(),
        }
    }

    /// The same, with extensions to create in its database.
    pub fn with_extensions(self, extensions: Vec<Extension>) -> ServedClient {
        ServedClient { extensions, ..self }
    }

    /// Its password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Makes (or brings up to date) its user, with the password it holds,
    /// its database and its extensions.
    pub fn create(&self, pg: &mut dyn Postgres) -> Result<(), PgError> {
        pg.create_user(&self.user, &self.password, &self.roles)?;
        pg.create_database(&self.database, &self.user)?;
        pg.grant_database(&self.database, &self.user)?;
        for extension in &self.extensions {
            pg.create_extension(&self.database, extension, &self.user)?;
        }
        Ok(())
    }
}

/// Leader: every client already handed its credentials, with the password
/// kept for it (its relation's user secret): a new cluster generation makes
/// their users and databases again, so their credentials keep working.
pub fn served_clients(hook: &mut Hook<'_>) -> anyhow::Result<Vec<ServedClient>> {
    let mut out = Vec::new();
    for relation in hook.relations(state::DATABASE)? {
        let remote = hook.remote_app_bag(&relation)?.clone();
        let Ok(Some(request)) = request::parse(&remote, relation.id) else {
            continue;
        };
        if !provider::published(hook, &relation)?.has_credentials() {
            continue;
        }
        let Some(password) = provider::kept_password(hook, state::DATABASE, &relation)? else {
            anyhow::bail!("relation {}: no password kept for its user", relation.id);
        };
        out.push(ServedClient::new(
            relation.id,
            password,
            request.database,
            request.roles,
        ));
    }
    Ok(out)
}

/// relation-departed: a unit leaving marks itself, so that its relation-broken
/// does not drop the client's user.
fn departed(hook: &mut Hook<'_>, event: &RelationEvent) -> anyhow::Result<Handled> {
    if event.departing_unit.as_deref() == Some(hook.unit()) {
        if let Some(peers) = state::peers(hook)? {
            hook.update_unit_bag(
                &peers,
                [(state::DEPARTING.to_string(), Some("True".into()))],
            )?;
        }
    }
    Ok(Handled::Done)
}

/// relation-broken (leader, not departing): drops the client's user and its
/// secret; the database and its data stay.
fn broken(hook: &mut Hook<'_>, deps: &Deps, event: &RelationEvent) -> anyhow::Result<Handled> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Done);
    };
    if !hook.is_leader()? || hook.local_unit_bag(&peers)?.contains_key(state::DEPARTING) {
        return Ok(Handled::Done);
    }
    let Some(ctx) = context(hook)? else {
        return Ok(Handled::Deferred);
    };
    let Some(primary) = cluster_status(hook, deps, &ctx)?.and_then(|c| c.primary().cloned()) else {
        return Ok(Handled::Deferred);
    };
    let target = postgres::operator_login(
        &primary.host,
        primary.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let user = provider::relation_user(event.relation.id);
    if let Err(e) = deps
        .connector
        .connect(&target)
        .and_then(|mut pg| pg.drop_user(&user))
    {
        hook.add_problem(Status::Waiting(format!(
            "relation {}: cannot drop {user}: {e}",
            event.relation.id
        )))?;
        return Ok(Handled::Deferred);
    }
    provider::remove_secrets(hook, state::DATABASE, event.relation.id)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "relation {} broken: dropped {user}, kept its database",
            event.relation.id
        ),
    )?;
    Ok(Handled::Done)
}

/// Leader: every refused client request, for the status (each names its
/// relation).
pub fn refusals(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    if !hook.is_leader()? {
        return Ok(None);
    }
    let mut refused = Vec::new();
    for relation in hook.relations(state::DATABASE)? {
        let remote = hook.remote_app_bag(&relation)?.clone();
        if let Err(refusal) = request::parse(&remote, relation.id) {
            refused.push(refusal.to_string());
        }
    }
    Ok((!refused.is_empty()).then(|| refused.join("; ")))
}

/// A client relation's event: a request is served (the leader creates the
/// user and database, or refreshes the endpoints of one already served); a
/// departure marks a unit that leaves; the end of the relation drops its user.
pub fn handle(hook: &mut Hook<'_>, deps: &Deps, event: ClientEvent<'_>) -> anyhow::Result<Handled> {
    match event {
        ClientEvent::Request(relation) => changed(hook, deps, relation),
        ClientEvent::Departed(e) => departed(hook, e),
        ClientEvent::Broken(e) => broken(hook, deps, e),
    }
}
