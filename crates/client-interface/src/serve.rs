//! Serving a request in PostgreSQL, the part both charms share: what only
//! the server can tell is checked first (the roles asked for exist and may
//! be handed out, an entity's name is free), then the user (or entity), its
//! database (or the databases its prefix matches) and its grants are made.
//! Nothing is created for a request the server refuses.

use crate::request::{EntityKind, Refusal, Request, Resource};
use charm::secret::{Revision, SecretRef};
use charm::{Hook, SecretId};
use postgres_admin::names::{DatabaseName, DatabasePrefix, RoleName};
use postgres_admin::{PgError, Postgres};

/// Why a request was not served: the client's to change, or the server's
/// trouble (wait and try again).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The request is refused; the client is told why.
    #[error(transparent)]
    Refused(Refusal),
    /// PostgreSQL failed.
    #[error(transparent)]
    Backend(#[from] PgError),
}

/// What serving created, for the answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// The server's version.
    pub version: String,
    /// For a prefix request: the databases it matched, sorted.
    pub prefix_databases: Option<Vec<String>>,
}

/// Role names a client may not ask for as its entity's: the charms' system
/// users and the names the charms give their own roles.
pub const SYSTEM_USERS: [&str; 7] = [
    "operator",
    "replication",
    "rewind",
    "monitoring",
    "backup",
    "postgres",
    "admin",
];

/// Prefixes of the names the charms give roles they create (clients' users,
/// PgBouncer's users, the predefined roles).
pub const RESERVED_PREFIXES: [&str; 3] = ["relation_id_", "pgbouncer_", "charmed_"];

/// The name (and password) a client chose for its entity.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestedEntity {
    /// `entity-name`.
    pub name: String,
    /// `password`, for a user, if it chose one.
    pub password: Option<String>,
}

impl std::fmt::Debug for RequestedEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestedEntity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The entity a client asked to name itself, from the secret it granted
/// (`entity-name`, and `password` for a user), if it asked for one. A
/// secret not granted yet (or gone) is [`Refusal::MissingGrant`].
pub fn requested_entity(
    hook: &mut Hook<'_>,
    relation_id: u64,
    request: &Request,
) -> crate::Result<Result<Option<RequestedEntity>, Refusal>> {
    let Some(uri) = request.entity.as_ref().and_then(|e| e.secret.as_deref()) else {
        return Ok(Ok(None));
    };
    let missing = Refusal::MissingGrant { relation_id };
    let Ok(id) = SecretId::parse(uri) else {
        return Ok(Err(missing));
    };
    let content = match hook.secret(&SecretRef::Id(id, None), Revision::Peek) {
        Ok(c) => c,
        Err(e) if e.is_secret_not_found() || matches!(e, charm::Error::PermissionDenied { .. }) => {
            return Ok(Err(missing))
        }
        Err(e) => return Err(e.into()),
    };
    let Some(name) = content.get("entity-name").filter(|n| !n.is_empty()) else {
        return Ok(Err(Refusal::EntityName {
            relation_id,
            detail: "the requested entity secret names no entity-name".into(),
        }));
    };
    let password = content.get("password").filter(|p| !p.is_empty());
    Ok(Ok(Some(RequestedEntity {
        name: name.to_string(),
        password: password.map(str::to_string),
    })))
}

/// The role name for a requested entity: valid, and no system user's nor a
/// name the charms give their own roles.
pub fn entity_role(relation_id: u64, name: &str) -> Result<RoleName, Refusal> {
    let refuse = |detail: String| Refusal::EntityName {
        relation_id,
        detail,
    };
    let role = RoleName::parse(name).map_err(|e| refuse(e.to_string()))?;
    if SYSTEM_USERS.contains(&role.as_str())
        || RESERVED_PREFIXES
            .iter()
            .any(|p| role.as_str().starts_with(p))
    {
        return Err(refuse(format!("{role} is a system user's name")));
    }
    Ok(role)
}

/// Checks what only the server can tell before anything is created: the
/// roles asked for exist and may be handed out, and an entity's name asked
/// for is free (`entity_is_ours` when the provider already keeps that name:
/// a retry, not a clash).
pub fn check(
    pg: &mut dyn Postgres,
    relation_id: u64,
    request: &Request,
    user: &RoleName,
    entity_is_ours: bool,
) -> Result<(), Failure> {
    check_roles(pg, relation_id, request)?;
    let generated = *user == crate::provider::relation_user(relation_id);
    if request.entity.is_some() && !generated && !entity_is_ours && pg.role_exists(user)? {
        return Err(Failure::Refused(Refusal::EntityName {
            relation_id,
            detail: format!("{user} exists"),
        }));
    }
    Ok(())
}

/// Creates what a checked request asks for, as `user` with `password` (the
/// relation's user, or the entity): its user and database; or the entity,
/// the database (owned by the session's role) and exactly the permissions
/// listed; or its user and a grant on every database its prefix matches
/// (`exclude` leaves some out: PgBouncer's own).
pub fn create(
    pg: &mut dyn Postgres,
    request: &Request,
    (user, password): (&RoleName, &str),
    exclude: &dyn Fn(&str) -> bool,
) -> Result<Served, PgError> {
    let mut served = Served::default();
    match (&request.resource, &request.entity) {
        (Resource::Database(db), None) => {
            pg.create_user(user, password, &request.user_roles())?;
            pg.create_database(db, user)?;
            pg.grant_database(db, user)?;
        }
        (Resource::Database(db), Some(entity)) => {
            pg.ensure_database(db)?;
            match entity.kind {
                EntityKind::User => pg.create_user(user, password, &request.user_roles())?,
                EntityKind::Group => pg.create_group(user, &request.group_roles)?,
            }
            if !entity.permissions.is_empty() {
                pg.grant_permissions(user, db, &entity.permissions)?;
            }
        }
        (Resource::Prefix(prefix), _) => {
            pg.create_user(user, password, &request.user_roles())?;
            served.prefix_databases = Some(grant_prefix(pg, prefix, user, exclude)?);
        }
    }
    served.version = pg.server_version()?;
    Ok(served)
}

/// The roles asked for exist and may be handed out; else the refusal names
/// each that may not, and why.
fn check_roles(pg: &mut dyn Postgres, relation_id: u64, request: &Request) -> Result<(), Failure> {
    let asked = request.asked_roles();
    if asked.is_empty() {
        return Ok(());
    }
    let issues = pg.unusable_roles(&asked)?;
    if issues.is_empty() {
        return Ok(());
    }
    let detail = issues
        .iter()
        .map(|(role, issue)| format!("{:?}: {issue}", role.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Failure::Refused(Refusal::Roles {
        relation_id,
        detail,
    }))
}

/// The databases a prefix matches that a client may be given: valid client
/// database names (no system database), not excluded; sorted.
pub fn prefix_databases(
    pg: &mut dyn Postgres,
    prefix: &DatabasePrefix,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, PgError> {
    Ok(pg
        .databases_with_prefix(prefix)?
        .into_iter()
        .filter(|d| DatabaseName::parse(d).is_ok() && !exclude(d))
        .collect())
}

/// Grants `user` every database the prefix matches; returns them.
pub fn grant_prefix(
    pg: &mut dyn Postgres,
    prefix: &DatabasePrefix,
    user: &RoleName,
    exclude: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, PgError> {
    let databases = prefix_databases(pg, prefix, exclude)?;
    for name in &databases {
        let db = DatabaseName::parse(name).map_err(|e| PgError(e.to_string()))?;
        pg.grant_database(&db, user)?;
    }
    Ok(databases)
}
