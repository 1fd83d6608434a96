//! The legacy `db` and `db-admin` relations (interface `pgsql`, provider),
//! through `client_interface::pgsql`: each client gets a user
//! `relation_id_<id>` (on `db-admin`, a superuser), its database with the
//! extensions it asks for, and `master` (the primary) and `standbys` (the
//! replicas) kept current through switchovers, failovers and scaling. The
//! flowcharts are in `docs/postgresql-flows.md` (legacy relations).

use super::database::ServedClient;
use super::{applicable_config, cluster_status, context, extensions, Ctx, Deps};
use crate::patroni::Cluster;
use crate::postgres;
use crate::state;
use charm::{BagChanges, Handled, Hook, LogLevel, Relation, RelationEvent, Status};
use client_interface::pgsql::{self, Allowed, Answer, Kind, Refusal, Request, Target};
use client_interface::provider;
use client_interface::ClientEvent;
use postgres_admin::names::{DatabaseName, Extension, ExtraRoles};
use postgres_admin::{PgError, Postgres};

/// A legacy relation's events: a request is served by the leader; a
/// departure marks a unit that leaves and refreshes who may connect; the end
/// of the relation drops the client's user.
pub fn handle(hook: &mut Hook<'_>, deps: &Deps, event: ClientEvent<'_>) -> anyhow::Result<Handled> {
    match event {
        ClientEvent::Request(relation) => changed(hook, deps, relation),
        ClientEvent::Departed(e) => departed(hook, deps, e),
        ClientEvent::Broken(e) => broken(hook, deps, e),
    }
}

/// The roles a legacy client's user gets: none on `db`, SUPERUSER on
/// `db-admin`, whatever the client asks.
pub fn roles(kind: Kind) -> ExtraRoles {
    match kind {
        Kind::Db => ExtraRoles::default(),
        Kind::DbAdmin => ExtraRoles::parse("SUPERUSER")
            .unwrap_or_else(|_| unreachable!("SUPERUSER is an allowed attribute")),
    }
}

/// Where a legacy client connects: the primary (`master`) and each replica
/// the charm counts as a member (`standbys`, none when the primary is alone).
fn targets(cluster: &Cluster, members: &[String], database: &str) -> Option<(Target, Vec<Target>)> {
    let target = |host: &str, port: u16| Target {
        host: host.to_string(),
        port,
        dbname: database.to_string(),
    };
    let primary = cluster.primary()?;
    let mut standbys: Vec<Target> = cluster
        .members
        .iter()
        .filter(|m| !m.is_leader() && members.contains(&m.host))
        .map(|m| target(&m.host, m.port))
        .collect();
    standbys.sort_by(|a, b| a.host.cmp(&b.host));
    Some((target(&primary.host, primary.port), standbys))
}

/// relation-changed on the leader (db-relation-changed), node by node.
fn changed(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation) -> anyhow::Result<Handled> {
    let kind = Kind::of(&relation.endpoint)
        .ok_or_else(|| anyhow::anyhow!("{} is no legacy endpoint", relation.endpoint))?;
    // Has the client asked (a database key)? Is the request valid? (roles,
    // database and extension names; no: record the refusal)
    let request = match pgsql::read(hook, relation)? {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(Handled::Done),
        Err(refusal) => {
            record_refusal(hook, relation, Some(&refusal))?;
            return Ok(Handled::Done);
        }
    };
    // Are the extensions enabled (their plugin options on)?
    let Some(config) = applicable_config(hook, deps)? else {
        return Ok(Handled::Deferred);
    };
    let disabled = extensions::not_enabled(&config, request.extensions.iter().map(Extension::name));
    if !disabled.is_empty() {
        let refusal = Refusal::Extensions {
            relation: pgsql::relation_name(relation),
            extensions: disabled.iter().map(|(e, _)| e.to_string()).collect(),
            why: not_enabled_why(&disabled),
        };
        record_refusal(hook, relation, Some(&refusal))?;
        return Ok(Handled::Done);
    }
    // Is the cluster initialised, with a primary?
    let Some(ctx) = context(hook)? else {
        return Ok(Handled::Deferred);
    };
    if !state::initialised(hook, &ctx.peers)? {
        return Ok(Handled::Deferred);
    }
    let Some(cluster) = cluster_status(hook, deps, &ctx)? else {
        return Ok(Handled::Deferred);
    };
    let members = state::members(hook, &ctx.peers)?;
    let Some((master, standbys)) = targets(&cluster, &members, request.database.as_str()) else {
        return Ok(Handled::Deferred);
    };
    let login = postgres::operator_login(
        &master.host,
        master.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let mut pg = match deps.connector.connect(&login) {
        Ok(pg) => pg,
        Err(e) => return cannot_serve(hook, relation, &request, &e),
    };
    // Are the extensions available?
    let missing = match missing_extensions(pg.as_mut(), &request.extensions) {
        Ok(missing) => missing,
        Err(e) => return cannot_serve(hook, relation, &request, &e),
    };
    if !missing.is_empty() {
        let refusal = Refusal::Extensions {
            relation: pgsql::relation_name(relation),
            extensions: missing,
            why: "not available on this server".into(),
        };
        record_refusal(hook, relation, Some(&refusal))?;
        return Ok(Handled::Done);
    }
    // Keep the password; create the user, the database and the extensions
    let password = pgsql::keep_password(hook, relation, postgres_admin::password::generate)?;
    let client = ServedClient::new(relation.id, password, request.database.clone(), roles(kind))
        .with_extensions(request.extensions.clone());
    let version = match client
        .create(pg.as_mut())
        .and_then(|()| pg.server_version())
    {
        Ok(version) => version,
        Err(e) => return cannot_serve(hook, relation, &request, &e),
    };
    // The enabled plugins' extensions in its database
    if let Err(e) = extensions::create_in(hook, deps, pg.as_mut(), request.database.as_str())? {
        return cannot_serve(hook, relation, &request, &e);
    }
    // Publish master, standbys and the rest in the application and unit
    // bags; forget a refusal
    let answer = Answer {
        database: request.database.to_string(),
        user: client.user.to_string(),
        password: client.password().to_string(),
        master,
        standbys,
        client_app: hook.remote_app(relation)?,
        allowed: Allowed::read(hook, relation)?,
        extensions: request.extensions_raw.clone(),
        version: Some(version),
        state: None,
    };
    pgsql::publish(hook, relation, &answer)?;
    record_refusal(hook, relation, None)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "relation {}: database {} ready for {}",
            pgsql::relation_name(relation),
            request.database,
            client.user
        ),
    )?;
    Ok(Handled::Done)
}

/// PostgreSQL could not do what a request needs: a problem, and a retry.
fn cannot_serve(
    hook: &mut Hook<'_>,
    relation: &Relation,
    request: &Request,
    error: &PgError,
) -> anyhow::Result<Handled> {
    hook.add_problem(Status::Waiting(format!(
        "relation {}: cannot create database {}: {error}",
        pgsql::relation_name(relation),
        request.database
    )))?;
    Ok(Handled::Deferred)
}

/// Why a legacy client's extensions are refused: the options to turn on,
/// and those no option creates.
fn not_enabled_why(disabled: &[(&str, Option<&'static str>)]) -> String {
    let options: Vec<String> = disabled
        .iter()
        .filter_map(|(_, o)| o.map(|o| format!("{o}=true")))
        .collect();
    let unknown: Vec<&str> = disabled
        .iter()
        .filter(|(_, o)| o.is_none())
        .map(|(e, _)| *e)
        .collect();
    let mut why = Vec::new();
    if !options.is_empty() {
        why.push(format!("set {}", options.join(", ")));
    }
    if !unknown.is_empty() {
        why.push(format!("no plugin option creates {}", unknown.join(", ")));
    }
    format!("that are disabled ({})", why.join("; "))
}

/// The extensions asked for that the server does not offer, by name.
fn missing_extensions(
    pg: &mut dyn Postgres,
    extensions: &[Extension],
) -> Result<Vec<String>, PgError> {
    if extensions.is_empty() {
        return Ok(Vec::new());
    }
    let available = pg.available_extensions()?;
    Ok(extensions
        .iter()
        .map(Extension::name)
        .filter(|name| !available.iter().any(|a| a == name))
        .map(str::to_string)
        .collect())
}

/// Leader: records why a legacy relation is not served (the status shows
/// it), or forgets it (`None`).
fn record_refusal(
    hook: &mut Hook<'_>,
    relation: &Relation,
    refusal: Option<&Refusal>,
) -> anyhow::Result<()> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(());
    };
    let mut refusals = state::legacy_refusals(hook, &peers)?;
    match refusal {
        Some(r) => refusals.insert(relation.id, r.to_string()),
        None => refusals.remove(&relation.id),
    };
    state::save_legacy_refusals(hook, &peers, &refusals)
}

/// Leader: brings an answered client's connection information up to date
/// (`master`, `standbys`, who may connect) without asking PostgreSQL.
/// `members` overrides the peer bag's list (during a departure).
fn refresh(
    hook: &mut Hook<'_>,
    cluster: &Cluster,
    members: &[String],
    relation: &Relation,
) -> anyhow::Result<()> {
    let published = hook.local_app_bag(relation)?.clone();
    let field = |k: &str| published.get(k).cloned().unwrap_or_default();
    let Some((master, standbys)) = targets(cluster, members, &field("database")) else {
        return Ok(());
    };
    let Some(password) = provider::kept_password(hook, &relation.endpoint, relation)? else {
        anyhow::bail!("no password kept for its user");
    };
    let answer = Answer {
        database: field("database"),
        user: provider::relation_user(relation.id).to_string(),
        password,
        master,
        standbys,
        client_app: hook.remote_app(relation)?,
        allowed: Allowed::read(hook, relation)?,
        extensions: field("extensions"),
        version: published.get("version").cloned(),
        state: None,
    };
    let before = published.get("master").cloned();
    pgsql::publish(hook, relation, &answer)?;
    if before.as_deref()
        != hook
            .local_app_bag(relation)?
            .get("master")
            .map(String::as_str)
    {
        hook.log(
            LogLevel::Info,
            &format!(
                "relation {}: master now on {}",
                pgsql::relation_name(relation),
                answer.master.host
            ),
        )?;
    }
    Ok(())
}

/// Leader: every answered legacy client gets fresh connection information
/// (the primary moved, a replica came or went: the peer flow's "standby
/// field" update), and every refused one is tried again (an extension may
/// have become available). One client's trouble does not hold the others
/// back.
pub fn refresh_all(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    members: Option<&[String]>,
) -> anyhow::Result<()> {
    if !hook.is_leader()? {
        return Ok(());
    }
    let mut relations = Vec::new();
    for endpoint in pgsql::ENDPOINTS {
        relations.extend(hook.relations(endpoint)?);
    }
    if relations.is_empty() {
        return Ok(());
    }
    let Some(cluster) = cluster_status(hook, deps, ctx)? else {
        return Ok(());
    };
    let members = match members {
        Some(m) => m.to_vec(),
        None => state::members(hook, &ctx.peers)?,
    };
    let refused = state::legacy_refusals(hook, &ctx.peers)?;
    for relation in relations {
        let outcome = if pgsql::answered(hook, &relation)? {
            refresh(hook, &cluster, &members, &relation)
        } else if refused.contains_key(&relation.id) {
            changed(hook, deps, &relation).map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = outcome {
            hook.add_problem(Status::Waiting(format!(
                "relation {}: cannot update its connection information: {e:#}",
                pgsql::relation_name(&relation)
            )))?;
        }
    }
    Ok(())
}

/// relation-departed: a unit leaving marks itself, so that its
/// relation-broken does not drop the client's user; when a client unit
/// leaves, the leader takes it out of `allowed-units` and `allowed-subnets`.
fn departed(hook: &mut Hook<'_>, deps: &Deps, event: &RelationEvent) -> anyhow::Result<Handled> {
    // Is this unit departing?
    if event.departing_unit.as_deref() == Some(hook.unit()) {
        // departing = True in the peer unit bag
        if let Some(peers) = state::peers(hook)? {
            hook.update_unit_bag(
                &peers,
                [(state::DEPARTING.to_string(), Some("True".into()))],
            )?;
        }
        return Ok(Handled::Done);
    }
    // Is this unit the leader, and the client answered?
    let relation = &event.relation;
    if !hook.is_leader()? || !pgsql::answered(hook, relation)? {
        return Ok(Handled::Done);
    }
    // Does Patroni answer? Yes: refresh the answer (where, and who may
    // connect); no: rewrite allowed-units and allowed-subnets
    let refreshed = match context(hook)? {
        Some(ctx) => match cluster_status(hook, deps, &ctx)? {
            Some(cluster) => {
                let members = state::members(hook, &ctx.peers)?;
                refresh(hook, &cluster, &members, relation).is_ok()
            }
            None => false,
        },
        None => false,
    };
    if !refreshed {
        let allowed = Allowed::read(hook, relation)?;
        let nonempty = |v: Vec<String>| (!v.is_empty()).then(|| v.join(","));
        let changes = BagChanges::new()
            .set_or_unset("allowed-units", nonempty(allowed.units))
            .set_or_unset("allowed-subnets", nonempty(allowed.subnets));
        hook.update_app_bag(relation, changes.clone())?;
        hook.update_unit_bag(relation, changes)?;
    }
    Ok(Handled::Done)
}

/// relation-broken, node by node: the leader, unless it is departing, drops
/// the client's user and forgets its password; the database and its data stay.
fn broken(hook: &mut Hook<'_>, deps: &Deps, event: &RelationEvent) -> anyhow::Result<Handled> {
    let relation = &event.relation;
    // Is this unit the leader, and not departing?
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Done);
    };
    if !hook.is_leader()? || hook.local_unit_bag(&peers)?.contains_key(state::DEPARTING) {
        return Ok(Handled::Done);
    }
    // Forget a refusal
    record_refusal(hook, relation, None)?;
    // Was a user made for it (a kept password)?
    if !pgsql::has_kept_password(hook, relation)? {
        return Ok(Handled::Done);
    }
    // Is there a primary? Drop the user
    let Some(ctx) = context(hook)? else {
        return Ok(Handled::Deferred);
    };
    let Some(primary) = cluster_status(hook, deps, &ctx)?.and_then(|c| c.primary().cloned()) else {
        return Ok(Handled::Deferred);
    };
    let login = postgres::operator_login(
        &primary.host,
        primary.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let user = provider::relation_user(relation.id);
    if let Err(e) = deps
        .connector
        .connect(&login)
        .and_then(|mut pg| pg.drop_user(&user))
    {
        hook.add_problem(Status::Waiting(format!(
            "relation {}: cannot drop {user}: {e}",
            pgsql::relation_name(relation)
        )))?;
        return Ok(Handled::Deferred);
    }
    // and remove its secret; the database stays
    provider::remove_secrets(hook, &relation.endpoint, relation.id)?;
    hook.log(
        LogLevel::Info,
        &format!(
            "relation {} broken: dropped {user}, kept its database",
            pgsql::relation_name(relation)
        ),
    )?;
    Ok(Handled::Done)
}

/// relation-changed on a follower: nothing to do for PostgreSQL (pg_hba
/// admits every user by password, so no per-client rule is written), except
/// removing what this unit wrote to its unit bag when it led.
pub fn follower_changed(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<Handled> {
    pgsql::clear(hook, relation)?;
    Ok(Handled::Done)
}

/// Leader: why legacy relations are not served, for the status.
pub fn refusals(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    let (true, Some(peers)) = (hook.is_leader()?, state::peers(hook)?) else {
        return Ok(None);
    };
    let mut live = Vec::new();
    for endpoint in pgsql::ENDPOINTS {
        live.extend(hook.relations(endpoint)?.into_iter().map(|r| r.id));
    }
    let refused: Vec<String> = state::legacy_refusals(hook, &peers)?
        .into_iter()
        .filter(|(id, _)| live.contains(id))
        .map(|(_, why)| why)
        .collect();
    Ok((!refused.is_empty()).then(|| refused.join("; ")))
}

/// Leader: the databases of the legacy clients answered, read from what
/// their relations were told.
pub fn client_databases(hook: &mut Hook<'_>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for endpoint in pgsql::ENDPOINTS {
        for relation in hook.relations(endpoint)? {
            let published = hook.local_app_bag(&relation)?;
            if let (Some(db), true) = (published.get("database"), published.contains_key("master"))
            {
                out.push(db.clone());
            }
        }
    }
    Ok(out)
}

/// Leader: every legacy client already answered, with the password kept for
/// it, the database and extensions it was told of, and the roles of its
/// endpoint (a new cluster generation makes them again).
pub fn served_clients(hook: &mut Hook<'_>) -> anyhow::Result<Vec<ServedClient>> {
    let mut out = Vec::new();
    for endpoint in pgsql::ENDPOINTS {
        let kind = Kind::of(endpoint).unwrap_or(Kind::Db);
        for relation in hook.relations(endpoint)? {
            let published = hook.local_app_bag(&relation)?.clone();
            let Some(database) = published
                .get("database")
                .filter(|_| published.contains_key("master"))
                .and_then(|d| DatabaseName::parse(d).ok())
            else {
                continue;
            };
            let Some(password) = provider::kept_password(hook, endpoint, &relation)? else {
                anyhow::bail!(
                    "relation {}: no password kept for its user",
                    pgsql::relation_name(&relation)
                );
            };
            let extensions = published
                .get("extensions")
                .map(|raw| {
                    raw.split(',')
                        .filter_map(|e| Extension::parse(e.trim()).ok())
                        .collect()
                })
                .unwrap_or_default();
            out.push(
                ServedClient::new(relation.id, password, database, roles(kind))
                    .with_extensions(extensions),
            );
        }
    }
    Ok(out)
}
