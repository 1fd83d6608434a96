//! The `database` relation (`postgresql_client` v0, provider): each client gets
//! a user `relation_id_<id>` and its database on the primary, and the primary
//! and replicas as endpoints, in Juju secrets or the databag as it asks.

use super::{cluster_status, context, services, Ctx, Deps};
use crate::patroni::Cluster;
use crate::postgres;
use crate::state;
use charm::{Handled, Hook, LogLevel, Relation, RelationEvent, Status};
use client_interface::provider::{self, Answer, UriTarget};
use client_interface::request::{self, EntityKind, Refusal, Request, Resource};
use client_interface::serve::{self, Failure};
use client_interface::ClientEvent;
use client_interface::Tls;
use postgres_admin::names::{DatabaseName, Extension, ExtraRoles, RoleName};
use postgres_admin::{PgError, Postgres};

/// Where clients connect: the primary, and the replicas (the primary when
/// alone); on Kubernetes the Services name them instead ([`services::endpoints`]).
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
        database: request.resource.to_string(),
    }
}

/// What a client is told: its user's (or entity's) credentials, where to
/// connect, the server's version, TLS, and for a prefix the databases it
/// matched.
fn answer(
    relation_id: u64,
    request: &Request,
    (user, password): (&RoleName, String),
    (rw, ro): (String, String),
    version: Option<String>,
    prefix_databases: Option<Vec<String>>,
    tls: Tls,
) -> Answer {
    let read_only = read_only_uri(request, &ro);
    let mut answer = Answer {
        version,
        tls,
        ..Answer::new(relation_id, request, password, (rw, ro), read_only)
    };
    if let Some(entity) = &request.entity {
        let password = std::mem::take(&mut answer.password);
        answer = answer.for_entity(entity.kind, user.to_string(), password);
    }
    match prefix_databases {
        Some(databases) => answer.with_prefix_databases(databases),
        None => answer,
    }
}

/// PgBouncer's own database is no client's to reach by prefix; on
/// PostgreSQL every client database is.
fn no_exclusions(_: &str) -> bool {
    false
}

/// relation-changed (leader): a new request is served; an answered one gets
/// its endpoints (and a prefix its databases) refreshed.
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
        let tls = clients_tls(hook, &ctx)?;
        refresh(hook, deps, &ctx, relation, &request, None, (&tls, false))?;
        return Ok(Handled::Done);
    }
    requested(hook, deps, &ctx, relation, &request)
}

/// Who the client's credentials are for: the relation's user, or its entity
/// (the name it asked for in its secret, else the relation's user's name),
/// with the password (asked for, or generated; none for a group), and
/// whether the provider already keeps that entity's name (a retry).
fn grantee(
    hook: &mut Hook<'_>,
    relation: &Relation,
    request: &Request,
) -> anyhow::Result<Result<(RoleName, String, bool), Refusal>> {
    let generated = postgres_admin::password::generate;
    let Some(entity) = &request.entity else {
        return Ok(Ok((
            provider::relation_user(relation.id),
            generated(),
            false,
        )));
    };
    let asked = match serve::requested_entity(hook, relation.id, request)? {
        Ok(asked) => asked,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (role, password) = match asked {
        Some(asked) => match serve::entity_role(relation.id, &asked.name) {
            Ok(role) => (role, asked.password.unwrap_or_else(generated)),
            Err(refusal) => return Ok(Err(refusal)),
        },
        None => (provider::relation_user(relation.id), generated()),
    };
    let kept = provider::kept_entity_name(hook, state::DATABASE, relation.id, Some(relation))?;
    let ours = kept.as_deref() == Some(role.as_str());
    let password = match entity.kind {
        EntityKind::User => password,
        EntityKind::Group => String::new(),
    };
    Ok(Ok((role, password, ours)))
}

/// database-requested: what only the server can tell is checked (roles, an
/// entity's name), then the user (or entity), the database (or the
/// prefix's databases), then everything in one write.
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
    let (rw, ro) = services::endpoints(hook, &ctx.peers, members.len())?.unwrap_or((rw, ro));
    // Whose credentials: the relation's user, or the entity (its secret
    // granted? its name free?).
    let (user, password, ours) = match grantee(hook, relation, request)? {
        Ok(g) => g,
        Err(refusal) => return refused(hook, relation, &refusal),
    };
    let target = postgres::operator_login(
        &primary.host,
        primary.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let mut pg = match deps.connector.connect(&target) {
        Ok(pg) => pg,
        Err(e) => return cannot_create(hook, relation, request, &e.to_string()),
    };
    // Roles exist and may be handed out? The entity's name is free?
    match serve::check(pg.as_mut(), relation.id, request, &user, ours) {
        Ok(()) => {}
        Err(Failure::Refused(refusal)) => return refused(hook, relation, &refusal),
        Err(Failure::Backend(e)) => return cannot_create(hook, relation, request, &e.to_string()),
    }
    let endpoints = (rw, ro);
    if request.entity.is_some() {
        // The entity's name is kept from now on: a retry knows it is ours.
        let kept = answer(
            relation.id,
            request,
            (&user, password.clone()),
            endpoints.clone(),
            None,
            None,
            Tls::default(),
        );
        provider::keep(hook, state::DATABASE, relation, request, &kept)?;
    }
    // Create the user (or entity), the database (or grant the prefix's).
    let served = match serve::create(pg.as_mut(), request, (&user, &password), &no_exclusions) {
        Ok(served) => served,
        Err(e) => return cannot_create(hook, relation, request, &e.to_string()),
    };
    // The enabled plugins' extensions in its database.
    if let Resource::Database(db) = &request.resource {
        if let Err(e) = super::extensions::create_in(hook, deps, pg.as_mut(), db.as_str())? {
            return cannot_create(hook, relation, request, &e.to_string());
        }
    }
    let tls = clients_tls(hook, ctx)?;
    let answer = answer(
        relation.id,
        request,
        (&user, password),
        endpoints,
        Some(served.version),
        served.prefix_databases,
        tls,
    );
    provider::publish(hook, state::DATABASE, relation, request, &answer, None)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "relation {}: {} ready for {user}",
            relation.id, request.resource
        ),
    )?;
    Ok(Handled::Done)
}

/// The client is told why its request is not served; one that has only to
/// wait (its secret not granted yet) is tried again on the next hook.
fn refused(hook: &mut Hook<'_>, relation: &Relation, refusal: &Refusal) -> anyhow::Result<Handled> {
    provider::refuse(hook, relation, refusal)?;
    Ok(match refusal.is_transitory() {
        true => Handled::Deferred,
        false => Handled::Done,
    })
}

/// PostgreSQL failed: the status says why, and the request waits.
fn cannot_create(
    hook: &mut Hook<'_>,
    relation: &Relation,
    request: &Request,
    why: &str,
) -> anyhow::Result<Handled> {
    let message = format!(
        "relation {}: cannot create database {}: {why}",
        relation.id, request.resource
    );
    hook.add_problem(Status::Waiting(message))?;
    Ok(Handled::Deferred)
}

/// Leader: rewrites a served client's endpoints (and URIs) when they moved,
/// a prefix request's databases when new ones match (granted first), and
/// everything when what clients are told about TLS changed (`tls`, with
/// whether it differs from what clients were last told). `members`
/// overrides the peer bag's list (during a departure).
fn refresh(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    relation: &Relation,
    request: &Request,
    members: Option<&[String]>,
    (tls, tls_changed): (&Tls, bool),
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
    let (rw, ro) = services::endpoints(hook, &ctx.peers, members.len())?.unwrap_or((rw, ro));
    let before = provider::published(hook, relation)?;
    let user = match &request.entity {
        Some(_) => {
            let name =
                provider::kept_entity_name(hook, state::DATABASE, relation.id, Some(relation))?;
            match name.map(|n| RoleName::parse(&n)) {
                Some(Ok(role)) => role,
                _ => anyhow::bail!("relation {}: no name kept for its entity", relation.id),
            }
        }
        None => provider::relation_user(relation.id),
    };
    let prefix_databases = match (&request.resource, cluster.primary()) {
        (Resource::Prefix(prefix), Some(primary)) => {
            let target = postgres::operator_login(
                &primary.host,
                primary.port,
                ctx.passwords.get(state::OPERATOR),
            );
            let granted = deps
                .connector
                .connect(&target)
                .and_then(|mut pg| serve::grant_prefix(pg.as_mut(), prefix, &user, &no_exclusions))
                .map_err(|e| {
                    anyhow::anyhow!("cannot list the databases of {}: {e}", request.resource)
                })?;
            Some(granted)
        }
        _ => None,
    };
    let prefix_text = prefix_databases.as_ref().map(|d| d.join(","));
    if !tls_changed
        && before.endpoints.as_ref() == Some(&rw)
        && before.read_only_endpoints.as_ref() == Some(&ro)
        && (prefix_text.is_none() || before.prefix_databases == prefix_text)
    {
        return Ok(());
    }
    let password = match (
        request.entity.as_ref().map(|e| e.kind),
        provider::kept_password(hook, state::DATABASE, relation)?,
    ) {
        (Some(EntityKind::Group), _) => String::new(),
        (_, Some(password)) => password,
        (_, None) => anyhow::bail!("relation {}: no password kept for its user", relation.id),
    };
    let answer = answer(
        relation.id,
        request,
        (&user, password),
        (rw.clone(), ro.clone()),
        before.version,
        prefix_databases,
        tls.clone(),
    );
    provider::publish(hook, state::DATABASE, relation, request, &answer, None)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "relation {}: endpoints now {rw} (read-only {ro}){}, TLS {}",
            relation.id,
            prefix_text
                .map(|p| format!(", databases {p}"))
                .unwrap_or_default(),
            if tls.enabled { "on" } else { "off" }
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
    let tls = clients_tls(hook, ctx)?;
    let told = state::digest(&format!(
        "{}\n{}",
        tls.enabled,
        tls.ca.as_deref().unwrap_or("")
    ));
    let tls_changed = hook.local_app_bag(&ctx.peers)?.get(state::CLIENTS_TLS) != Some(&told);
    let mut all_told = true;
    for relation in hook.relations(state::DATABASE)? {
        let remote = hook.remote_app_bag(&relation)?.clone();
        let Ok(Some(request)) = request::parse(&remote, relation.id) else {
            continue;
        };
        if !provider::published(hook, &relation)?.has_credentials() {
            // A request the server refused (a role missing, a secret not
            // granted) is asked again: what was missing may be there now.
            if provider::told_refusal(hook, &relation)?.is_some() {
                requested(hook, deps, ctx, &relation, &request)?;
            }
            continue;
        }
        if let Err(e) = refresh(
            hook,
            deps,
            ctx,
            &relation,
            &request,
            members,
            (&tls, tls_changed),
        ) {
            all_told = false;
            let message = format!(
                "relation {}: cannot update its endpoints: {e:#}",
                relation.id
            );
            hook.add_problem(Status::Waiting(message))?;
        }
    }
    if tls_changed && all_told {
        hook.update_app_bag(&ctx.peers, [(state::CLIENTS_TLS.to_string(), Some(told))])?;
    }
    // The legacy clients' `master` and `standbys` too.
    super::legacy::refresh_all(hook, deps, ctx, members)
}

/// What clients are told about TLS: on once this unit and every other unit
/// serve it (each unit's CA bundle from its peer bag, [`state::TLS_CA`]).
fn clients_tls(hook: &mut Hook<'_>, ctx: &Ctx) -> anyhow::Result<Tls> {
    let mut cas = vec![hook.local_unit_bag(&ctx.peers)?.get(state::TLS_CA).cloned()];
    for unit in hook.relation_units(&ctx.peers)? {
        let bag = hook.bag(&ctx.peers, &charm::Bag::Unit(unit))?;
        cas.push(bag.get(state::TLS_CA).cloned());
    }
    let units: Vec<Option<&str>> = cas.iter().map(Option::as_deref).collect();
    Ok(super::certificates::client_tls(&units))
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
/// endpoint): what its user was given.
pub struct ServedClient {
    pub relation_id: u64,
    /// Its user, or its entity.
    pub user: RoleName,
    password: String,
    grant: Grant,
}

/// What a served client was given.
enum Grant {
    /// What a `database` relation asked for.
    Request(Request),
    /// A legacy client's database, its user's roles and its extensions.
    Legacy {
        database: DatabaseName,
        roles: ExtraRoles,
        extensions: Vec<Extension>,
    },
}

impl std::fmt::Debug for ServedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedClient")
            .field("relation_id", &self.relation_id)
            .field("user", &self.user)
            .field("resource", &self.resource())
            .finish_non_exhaustive()
    }
}

impl ServedClient {
    /// The legacy client of relation `relation_id`: its user
    /// `relation_id_<id>` with `password` and `roles`, and its database.
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
            grant: Grant::Legacy {
                database,
                roles,
                extensions: Vec::new(),
            },
        }
    }

    /// The same, with extensions to create in its database.
    pub fn with_extensions(mut self, extensions: Vec<Extension>) -> ServedClient {
        if let Grant::Legacy { extensions: e, .. } = &mut self.grant {
            *e = extensions;
        }
        self
    }

    /// Its password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// What it asked for: its database, or its prefix.
    pub fn resource(&self) -> String {
        match &self.grant {
            Grant::Request(request) => request.resource.to_string(),
            Grant::Legacy { database, .. } => database.to_string(),
        }
    }

    /// Makes (or brings up to date) its user (or entity), with the password
    /// it holds, its database, its grants and its extensions.
    pub fn create(&self, pg: &mut dyn Postgres) -> Result<(), PgError> {
        match &self.grant {
            Grant::Request(request) => {
                serve::create(pg, request, (&self.user, &self.password), &no_exclusions).map(|_| ())
            }
            Grant::Legacy {
                database,
                roles,
                extensions,
            } => {
                pg.create_user(&self.user, &self.password, roles)?;
                pg.create_database(database, &self.user)?;
                pg.grant_database(database, &self.user)?;
                for extension in extensions {
                    pg.create_extension(database, extension, &self.user)?;
                }
                Ok(())
            }
        }
    }
}

/// Leader: every client already handed its credentials, with the password
/// kept for it (its relation's user or entity secret): a new cluster
/// generation makes their users (or entities) and databases again, so their
/// credentials keep working.
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
        let kind = request.entity.as_ref().map(|e| e.kind);
        let password = match (
            kind,
            provider::kept_password(hook, state::DATABASE, &relation)?,
        ) {
            (Some(EntityKind::Group), _) => String::new(),
            (_, Some(password)) => password,
            (_, None) => anyhow::bail!("relation {}: no password kept for its user", relation.id),
        };
        let user = match kind {
            None => provider::relation_user(relation.id),
            Some(_) => {
                let name = provider::kept_entity_name(
                    hook,
                    state::DATABASE,
                    relation.id,
                    Some(&relation),
                )?;
                match name.map(|n| RoleName::parse(&n)) {
                    Some(Ok(role)) => role,
                    _ => anyhow::bail!("relation {}: no name kept for its entity", relation.id),
                }
            }
        };
        out.push(ServedClient {
            relation_id: relation.id,
            user,
            password,
            grant: Grant::Request(request),
        });
    }
    Ok(out)
}

/// Leader: the databases the charm created for the clients it answered
/// (not a prefix's), read from the relations alone.
pub fn client_databases(hook: &mut Hook<'_>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for relation in hook.relations(state::DATABASE)? {
        let remote = hook.remote_app_bag(&relation)?.clone();
        let Ok(Some(request)) = request::parse(&remote, relation.id) else {
            continue;
        };
        if let Resource::Database(db) = &request.resource {
            if provider::published(hook, &relation)?.has_credentials() {
                out.push(db.to_string());
            }
        }
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
    // An entity with a name of its own goes too (its name is kept in the
    // relation's entity secret).
    let entity = provider::kept_entity_name(hook, state::DATABASE, event.relation.id, None)?
        .and_then(|name| RoleName::parse(&name).ok())
        .filter(|role| *role != user);
    if let Err(e) = deps.connector.connect(&target).and_then(|mut pg| {
        pg.drop_user(&user)?;
        match &entity {
            Some(role) => pg.drop_user(role).map(|_| true),
            None => Ok(true),
        }
    }) {
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
            "relation {} broken: dropped {user}{}, kept its database",
            event.relation.id,
            entity.map(|e| format!(" and {e}")).unwrap_or_default()
        ),
    )?;
    Ok(Handled::Done)
}

/// Leader: what every client was told it is refused (or waits for), for
/// the status, each naming its relation: the fatal ones block, the
/// transitory ones wait.
pub fn refusals(hook: &mut Hook<'_>) -> anyhow::Result<Vec<Status>> {
    if !hook.is_leader()? {
        return Ok(Vec::new());
    }
    let (mut fatal, mut waiting) = (Vec::new(), Vec::new());
    for relation in hook.relations(state::DATABASE)? {
        match provider::told_refusal(hook, &relation)? {
            Some((code, message)) if code / 1000 == 4 => waiting.push(message),
            Some((_, message)) => fatal.push(message),
            None => {}
        }
    }
    let mut out = Vec::new();
    if !fatal.is_empty() {
        out.push(Status::Blocked(fatal.join("; ")));
    }
    if !waiting.is_empty() {
        out.push(Status::Waiting(waiting.join("; ")));
    }
    Ok(out)
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
