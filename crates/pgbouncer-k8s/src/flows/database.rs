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
use client_interface::serve::{self as serving, Failure};
use client_interface::{ClientEvent, Refusal, Request};
use postgres_admin::names::RoleName;

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
        Err(refusal) => return refused(hook, &peers, relation, &refusal),
    };
    let Ok(config) = config(hook)? else {
        return Ok(Handled::Deferred);
    };
    let Some(db) = request.database().cloned() else {
        return Ok(Handled::Done);
    };
    let auth_user = backend.auth_user()?;
    // Whose credentials: the relation's user, or its entity (kept once
    // chosen, so that a retry uses the same name and password).
    let kept = clients.get(&relation.id).and_then(|c| c.secret.clone());
    let (user, password, ours) = match &kept {
        Some(_) => {
            let user = kept_user(hook, relation, &request)?;
            (user, kept_password(hook, relation)?, true)
        }
        None => match grantee(hook, relation, &request)? {
            Ok((user, password)) => (user, password, false),
            Err(refusal) => return refused(hook, &peers, relation, &refusal),
        },
    };
    let mut pg = match deps.connector.connect(&backend.login) {
        Ok(pg) => pg,
        Err(e) => return cannot_create(hook, relation, &request, &e.to_string()),
    };
    // Roles exist and may be handed out? The entity's name is free?
    match serving::check(pg.as_mut(), relation.id, &request, &user, ours) {
        Ok(()) => {}
        Err(Failure::Refused(refusal)) => return refused(hook, &peers, relation, &refusal),
        Err(Failure::Backend(e)) => return cannot_create(hook, relation, &request, &e.to_string()),
    }
    if kept.is_none() {
        // Kept in the relation's user (or entity) secret from now on, so that
        // a retry uses the same password; handed over once every unit serves.
        let endpoints = client_endpoints(hook, config.listen_port)?.unwrap_or_default();
        let answer = answer(
            relation.id,
            &request,
            (&user, password.clone()),
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
    }
    // Create user and database
    let created = serving::create(pg.as_mut(), &request, (&user, &password), &|_| false)
        .and_then(|_| pg.install_auth_function(db.as_str(), &auth_user));
    if let Err(e) = created {
        return cannot_create(hook, relation, &request, &e.to_string());
    }
    // Add user to pgbouncer config and peer databag
    clients.insert(
        relation.id,
        ClientEntry {
            database: Some(db.to_string()),
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

/// A refused request: the client is told why, and the record keeps the
/// reason for every unit's status (a transitory one, such as a secret not
/// granted yet, waits and is asked again on the next hook).
fn refused(
    hook: &mut Hook<'_>,
    peers: &Relation,
    relation: &Relation,
    refusal: &Refusal,
) -> anyhow::Result<Handled> {
    provider::refuse(hook, relation, refusal)?;
    let mut clients = state::clients(hook, peers)?;
    let secret = clients.get(&relation.id).and_then(|c| c.secret.clone());
    clients.insert(
        relation.id,
        ClientEntry {
            refused: Some(refusal.to_string()),
            waiting: refusal.is_transitory(),
            secret,
            ..ClientEntry::default()
        },
    );
    state::save_clients(hook, peers, &clients)?;
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
    hook.add_problem(Status::Waiting(format!(
        "relation {}: cannot create database {}: {why}",
        relation.id, request.resource
    )))?;
    Ok(Handled::Deferred)
}

/// Who a new client's credentials are for: the relation's user, or its USER
/// entity (the name and password it asked for in its secret, else the
/// relation's user's name and a new password).
fn grantee(
    hook: &mut Hook<'_>,
    relation: &Relation,
    request: &Request,
) -> anyhow::Result<Result<(RoleName, String), Refusal>> {
    let generate = postgres_admin::password::generate;
    if request.entity.is_none() {
        return Ok(Ok((provider::relation_user(relation.id), generate())));
    }
    Ok(
        match serving::requested_entity(hook, relation.id, request)? {
            Err(refusal) => Err(refusal),
            Ok(None) => Ok((provider::relation_user(relation.id), generate())),
            Ok(Some(asked)) => serving::entity_role(relation.id, &asked.name)
                .map(|role| (role, asked.password.unwrap_or_else(generate))),
        },
    )
}

/// The role a served client's credentials are for, as kept: its entity's
/// name, or the relation's user.
fn kept_user(
    hook: &mut Hook<'_>,
    relation: &Relation,
    request: &Request,
) -> anyhow::Result<RoleName> {
    if request.entity.is_none() {
        return Ok(provider::relation_user(relation.id));
    }
    let name = provider::kept_entity_name(hook, state::DATABASE, relation.id, Some(relation))?;
    match name.map(|n| RoleName::parse(&n)) {
        Some(Ok(role)) => Ok(role),
        _ => anyhow::bail!("relation {}: no name kept for its entity", relation.id),
    }
}

/// The password kept in a client relation's user (or entity) secret.
fn kept_password(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<String> {
    provider::kept_password(hook, state::DATABASE, relation)?.ok_or_else(|| {
        anyhow::anyhow!(
            "relation {}: its user secret holds no password; remove the relation and add \
             it again to give the client new credentials",
            relation.id
        )
    })
}

/// What a client is told: its database through PgBouncer's units, and the
/// read-only twin `<db>_readonly` for its read-only URI; an entity's name
/// and password instead of the relation's user's.
fn answer(
    relation_id: u64,
    request: &Request,
    (user, password): (&RoleName, String),
    (rw, ro): (String, String),
    version: Option<String>,
    tls: &ClientTls,
) -> Answer {
    let read_only_uri = UriTarget {
        hosts: ro.clone(),
        database: format!("{}_readonly", request.resource),
    };
    let answer = Answer {
        version,
        tls: tls.for_clients(),
        ..Answer::new(relation_id, request, password, (rw, ro), read_only_uri)
    };
    match &request.entity {
        Some(entity) => {
            let password = answer.password.clone();
            answer.for_entity(entity.kind, user.to_string(), password)
        }
        None => answer,
    }
}

/// Leader: hands a created database's credentials to the client once every unit
/// serves it, all in one write (the requirer's library needs them together); for
/// a client already answered, rewrites what changed when the endpoints move.
pub fn publish_credentials(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
    let Some(mut publishing) = Publishing::read(hook)? else {
        return Ok(());
    };
    publishing.publish(hook, relation)?;
    publishing.save(hook)
}

/// [`publish_credentials`] for each of `relations`, in one pass: what they
/// share (the clients' record, the served configuration, the endpoints, the
/// TLS) is read once and the record written once, so that a hook that tells
/// every client costs one read of each, however many clients there are. One
/// client's trouble does not hold the others back: it is a problem of the
/// hook's status, and the others are told.
fn publish_to(hook: &mut Hook<'_>, relations: &[Relation]) -> anyhow::Result<()> {
    let Some(mut publishing) = Publishing::read(hook)? else {
        return Ok(());
    };
    for relation in relations {
        if let Err(e) = publishing.publish(hook, relation) {
            hook.add_problem(Status::Waiting(format!(
                "relation {}: cannot update its credentials: {e:#}",
                relation.id
            )))?;
        }
    }
    publishing.save(hook)
}

/// What telling the clients shares within one hook.
struct Publishing {
    peers: Relation,
    /// The live clients' record, as it is to be saved.
    clients: state::Clients,
    /// Whether `clients` changed since it was read.
    changed: bool,
    /// The configuration the leader published, if any.
    shared: Option<SharedConfig>,
    /// Where clients connect, once asked (`None` inside: nowhere reachable).
    endpoints: Option<Option<(String, String)>>,
    /// The TLS clients are told of, once asked.
    tls: Option<ClientTls>,
    /// Whether every unit serves the published configuration, once asked.
    all_serve: Option<bool>,
}

impl Publishing {
    /// The shared facts as they stand; `None` without the peer relation.
    fn read(hook: &mut Hook<'_>) -> anyhow::Result<Option<Publishing>> {
        let Some(peers) = state::peers(hook)? else {
            return Ok(None);
        };
        let clients = state::clients(hook, &peers)?;
        let shared = state::published_config(hook, &peers)?;
        Ok(Some(Publishing {
            peers,
            clients,
            changed: false,
            shared,
            endpoints: None,
            tls: None,
            all_serve: None,
        }))
    }

    /// Tells one client its credentials and connection information, when
    /// due and when they changed.
    fn publish(&mut self, hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
        let Some(entry) = self
            .clients
            .get(&relation.id)
            .filter(|e| e.legacy.is_none())
            .cloned()
        else {
            return Ok(());
        };
        let (Some(_), Some(shared)) = (entry.database.as_ref(), self.shared.as_ref()) else {
            return Ok(());
        };
        let endpoints = match &self.endpoints {
            Some(known) => known.clone(),
            None => {
                let found = client_endpoints(hook, shared.listen_port())?;
                self.endpoints = Some(found.clone());
                found
            }
        };
        let Some((rw, ro)) = endpoints else {
            return Ok(());
        };
        let tls = match &self.tls {
            Some(tls) => tls.clone(),
            None => {
                let tls = certificates::client_tls(hook, &self.peers)?;
                self.tls = Some(tls.clone());
                tls
            }
        };
        let both = format!("{rw} {ro}");
        if entry.published.as_deref() == Some(both.as_str())
            && entry.tls.as_deref() == Some(tls.digest().as_str())
        {
            return Ok(());
        }
        if entry.published.is_none() {
            let all_serve = match self.all_serve {
                Some(known) => known,
                None => {
                    let known = all_units_serve(hook, &self.peers)?;
                    self.all_serve = Some(known);
                    known
                }
            };
            if !all_serve {
                return Ok(());
            }
        }
        let remote = hook.remote_app_bag(relation)?.clone();
        let Ok(Some(request)) = state::client_request(&remote, relation.id) else {
            return Ok(());
        };
        let password = kept_password(hook, relation)?;
        let user = kept_user(hook, relation, &request)?;
        let version = match state::backend(hook)? {
            state::BackendState::Ready(b) => b.version,
            _ => provider::published(hook, relation)?.version,
        };
        let answer = answer(
            relation.id,
            &request,
            (&user, password),
            (rw, ro),
            version,
            &tls,
        );
        let kept = entry.secret.as_deref().map(SecretId::parse).transpose()?;
        provider::publish(
            hook,
            state::DATABASE,
            relation,
            &request,
            &answer,
            kept.as_ref(),
        )?;
        self.clients.insert(
            relation.id,
            ClientEntry {
                published: Some(both),
                tls: Some(tls.digest()),
                ..entry
            },
        );
        self.changed = true;
        Ok(())
    }

    /// Writes the clients' record, if a client was told something.
    fn save(self, hook: &mut Hook<'_>) -> anyhow::Result<()> {
        if self.changed {
            state::save_clients(hook, &self.peers, &self.clients)?;
        }
        Ok(())
    }
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
    let relations = hook.relations(state::DATABASE)?;
    let (created, pending): (Vec<Relation>, Vec<Relation>) = relations
        .into_iter()
        .partition(|r| clients.get(&r.id).is_some_and(|c| c.database.is_some()));
    publish_to(hook, &created)?;
    for relation in pending {
        match clients.get(&relation.id) {
            // A refused request is asked again: what the server lacked
            // (a role, a grant) may be there now.
            Some(c) if c.refused.is_some() => {
                requested(hook, deps, &relation)?;
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
        let others = hook.relations(state::DATABASE)?;
        publish_to(hook, &others)?;
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
    // A `database` client's entity with a name of its own goes too (its
    // name is kept in the relation's entity secret).
    let entity = match entry.legacy {
        None => provider::kept_entity_name(hook, state::DATABASE, relation_id, None)?
            .and_then(|name| RoleName::parse(&name).ok())
            .filter(|role| *role != user),
        Some(_) => None,
    };
    let auth_user = backend.auth_user()?;
    let dropped = deps.connector.connect(&backend.login).and_then(|mut pg| {
        pg.drop_user(&user)?;
        if let Some(role) = &entity {
            pg.drop_user(role)?;
        }
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
/// relation): the fatal ones block, the transitory ones wait.
pub fn refused_requests(hook: &mut Hook<'_>) -> anyhow::Result<Vec<Status>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Vec::new());
    };
    let (mut fatal, mut waiting) = (Vec::new(), Vec::new());
    for client in state::clients(hook, &peers)?.into_values() {
        match (client.refused, client.waiting) {
            (Some(why), true) => waiting.push(why),
            (Some(why), false) => fatal.push(why),
            (None, _) => {}
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
