//! What a requirer asks for, read from its application bag in either wire
//! version and validated before anything is created.
//!
//! - v0 (the `data_interfaces` library): flat keys `database`,
//!   `extra-user-roles`, `extra-group-roles`, `entity-type`,
//!   `entity-permissions`, `requested-entity-secret`, `prefix-matching`,
//!   `requested-secrets`, ...
//! - v1 (`dpcharmlibs-interfaces`): `version: v1` and a JSON list `requests`,
//!   each with its `request-id` and `salt` and the same fields (the
//!   requested entity's secret as `secret-requested-entity`, the permissions
//!   as a JSON list), answered in kind.
//!
//! What only the server can tell (whether a role exists, whether a name is
//! taken) is checked when the request is served (`crate::serve`); fields the
//! charms do not act on (`secret-mtls`, several requests in one relation, an
//! unknown `prefix-matching`) are refused with a reason that names them.

use charm::Databag;
use postgres_admin::names::{DatabaseName, DatabasePrefix, ExtraRoles, MemberRole};
use postgres_admin::Permission;
use serde::Deserialize;
use serde_json::Value;

/// A validated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The database the client wants, or the prefix of the databases it wants.
    pub resource: Resource,
    /// Its `extra-user-roles`: attributes and roles for its user (or USER entity).
    pub roles: ExtraRoles,
    /// Its `extra-group-roles`: roles its user (or GROUP entity) joins.
    pub group_roles: Vec<MemberRole>,
    /// An entity request (`entity-type`), if it is one.
    pub entity: Option<Entity>,
    /// How it asked, and so how it must be answered.
    pub wire: Wire,
}

/// What a request's `database` (v1 `resource`) names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// One database, created for the client if missing.
    Database(DatabaseName),
    /// Every existing database whose name starts with the prefix (`app*`).
    Prefix(DatabasePrefix),
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Database(db) => write!(f, "{db}"),
            Resource::Prefix(prefix) => write!(f, "{prefix}"),
        }
    }
}

/// The kind of entity a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    /// A login role: its name and password are the answer.
    User,
    /// A group role (NOLOGIN): its name is the answer.
    Group,
}

/// An entity request: a role the client names (or the provider names for
/// it), given exactly the permissions listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    /// USER or GROUP.
    pub kind: EntityKind,
    /// `entity-permissions`, validated.
    pub permissions: Vec<Permission>,
    /// The id of the client's secret holding the name (and password) it
    /// wants (`requested-entity-secret`), if it chose one.
    pub secret: Option<String>,
}

/// The wire version of a request, with what answering it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Flat keys; the fields named in `requested-secrets` travel in secrets.
    V0 {
        /// The `requested-secrets` list (empty: everything in the databag).
        secret_fields: Vec<String>,
    },
    /// One entry of a `requests` list; credentials always travel in secrets.
    V1 {
        /// The requirer's id for the request, echoed in the answer.
        request_id: String,
        /// The requirer's salt, echoed in the answer.
        salt: String,
    },
}

impl Request {
    /// Whether the client wants `field` in a secret rather than the databag.
    pub fn wants_secret(&self, field: &str) -> bool {
        match &self.wire {
            Wire::V0 { secret_fields } => secret_fields.iter().any(|f| f == field),
            Wire::V1 { .. } => true,
        }
    }

    /// Whether the credentials (`username`, `password`) go in a secret.
    pub fn wants_secret_credentials(&self) -> bool {
        self.wants_secret("username") || self.wants_secret("password")
    }

    /// Whether the entity's name and password go in a secret.
    pub fn wants_secret_entity(&self) -> bool {
        self.wants_secret("entity-name") || self.wants_secret("entity-password")
    }

    /// The one database it names, unless it asks by prefix.
    pub fn database(&self) -> Option<&DatabaseName> {
        match &self.resource {
            Resource::Database(db) => Some(db),
            Resource::Prefix(_) => None,
        }
    }

    /// The roles the client's user (or USER entity) gets: its
    /// `extra-user-roles` and its `extra-group-roles`.
    pub fn user_roles(&self) -> ExtraRoles {
        self.roles.clone().with_memberships(&self.group_roles)
    }

    /// Every role it asks to join, for checking against the server.
    pub fn asked_roles(&self) -> Vec<MemberRole> {
        self.user_roles().memberships().to_vec()
    }
}

/// Why a request is refused (or not served yet): the status message a user
/// reads, naming the relation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The database name (or prefix) is invalid or reserved.
    #[error("relation {relation_id}: {detail}")]
    Database {
        /// The relation's id.
        relation_id: u64,
        /// What is wrong with the name.
        detail: String,
    },
    /// `extra-user-roles` or `extra-group-roles` names something not allowed,
    /// or a role the server lacks or would not hand out.
    #[error("{INVALID_ROLES}: relation {relation_id}: {detail}")]
    Roles {
        /// The relation's id.
        relation_id: u64,
        /// Which roles, and why.
        detail: String,
    },
    /// A field the charm does not act on.
    #[error("relation {relation_id}: {what} not supported")]
    Unsupported {
        /// The relation's id.
        relation_id: u64,
        /// The field asked for.
        what: String,
    },
    /// A request this provider does not serve, though another may (PgBouncer
    /// cannot hand out what does not log in through it).
    #[error("relation {relation_id}: {detail}")]
    NotHere {
        /// The relation's id.
        relation_id: u64,
        /// Why, and where to ask instead.
        detail: String,
    },
    /// The request cannot be read.
    #[error("relation {relation_id}: {detail}")]
    Malformed {
        /// The relation's id.
        relation_id: u64,
        /// What could not be read.
        detail: String,
    },
    /// The entity name asked for is taken, or a system user's.
    #[error("relation {relation_id}: {EXISTING_USERNAME}: {detail}")]
    EntityName {
        /// The relation's id.
        relation_id: u64,
        /// Which name, and why.
        detail: String,
    },
    /// `entity-permissions` names an unknown resource type or privilege, or
    /// a resource the request may not reach.
    #[error("relation {relation_id}: invalid entity-permissions: {detail}")]
    Permissions {
        /// The relation's id.
        relation_id: u64,
        /// What is wrong.
        detail: String,
    },
    /// The client has not granted the secret naming its entity yet: not
    /// served until it does.
    #[error("relation {relation_id}: {MISSING_GRANT}")]
    MissingGrant {
        /// The relation's id.
        relation_id: u64,
    },
}

impl Refusal {
    /// The code the client is told the refusal by, in the data-platform
    /// libraries' classes: transitory (`4xxx`) while the client has only to
    /// wait or finish what it started (grant its secret), fatal (`5xxx`)
    /// when the request as it stands will never be served.
    pub fn code(&self) -> u32 {
        match self {
            Refusal::MissingGrant { .. } => 4001,
            Refusal::Database { .. } => 5001,
            Refusal::Roles { .. } => 5002,
            Refusal::Unsupported { .. } | Refusal::NotHere { .. } => 5003,
            Refusal::Malformed { .. } => 5004,
            Refusal::EntityName { .. } => 5005,
            Refusal::Permissions { .. } => 5006,
        }
    }

    /// Whether the client has only to wait (a transitory code).
    pub fn is_transitory(&self) -> bool {
        self.code() / 1000 == 4
    }

    /// What the client can do about it.
    pub fn resolution(&self) -> &'static str {
        match self {
            Refusal::MissingGrant { .. } => "grant the requested entity secret to the relation",
            _ => "change the request in the client application, or remove the relation",
        }
    }
}

/// The status text for refused roles (the one Canonical's charms show).
pub const INVALID_ROLES: &str = "invalid role(s) for extra user roles";
/// The status text for an entity name that is taken (Canonical's).
pub const EXISTING_USERNAME: &str = "Requesting an existing username";
/// The status text for a requested entity secret not granted (Canonical's).
pub const MISSING_GRANT: &str = "Missing grant to requested entity secret";

/// One v1 request as the requirer library writes it. Unknown keys are
/// allowed (the library adds fields over time); every key whose meaning the
/// charm cannot honour is named here so that it is refused, not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct V1Request {
    #[serde(alias = "database")]
    resource: Option<String>,
    request_id: Option<String>,
    salt: Option<String>,
    extra_user_roles: Option<String>,
    extra_group_roles: Option<String>,
    entity_type: Option<String>,
    entity_permissions: Option<Value>,
    #[serde(alias = "requested-entity-secret")]
    secret_requested_entity: Option<String>,
    prefix_matching: Option<String>,
    secret_mtls: Option<String>,
}

/// The fields of one request, whichever the wire version.
#[derive(Default)]
struct Fields<'a> {
    extra_user_roles: Option<&'a str>,
    extra_group_roles: Option<&'a str>,
    entity_type: Option<&'a str>,
    entity_permissions: Option<Value>,
    entity_secret: Option<&'a str>,
    prefix_matching: Option<&'a str>,
}

/// Reads a client's request from its application bag: `Ok(None)` when it has
/// not asked yet.
pub fn parse(remote: &Databag, relation_id: u64) -> Result<Option<Request>, Refusal> {
    match remote.get("version").map(String::as_str) {
        None | Some("") | Some("v0") => parse_v0(remote, relation_id),
        Some("v1") => parse_v1(remote, relation_id),
        Some(other) => Err(Refusal::Malformed {
            relation_id,
            detail: format!("unknown interface version {other:?}"),
        }),
    }
}

fn parse_v0(remote: &Databag, relation_id: u64) -> Result<Option<Request>, Refusal> {
    let Some(database) = remote.get("database") else {
        return Ok(None);
    };
    let field = |k: &str| remote.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let secret_fields = match remote.get("requested-secrets") {
        None => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<String>>(raw).map_err(|_| Refusal::Malformed {
            relation_id,
            detail: "requested-secrets is not a JSON list of field names".into(),
        })?,
    };
    let permissions = match field("entity-permissions") {
        None => None,
        Some(raw) => Some(serde_json::from_str(raw).map_err(|_| Refusal::Permissions {
            relation_id,
            detail: "not a JSON list".into(),
        })?),
    };
    let fields = Fields {
        extra_user_roles: field("extra-user-roles"),
        extra_group_roles: field("extra-group-roles"),
        entity_type: field("entity-type"),
        entity_permissions: permissions,
        entity_secret: field("requested-entity-secret"),
        prefix_matching: field("prefix-matching"),
    };
    let wire = Wire::V0 { secret_fields };
    build(relation_id, database, fields, wire).map(Some)
}

fn parse_v1(remote: &Databag, relation_id: u64) -> Result<Option<Request>, Refusal> {
    let malformed = |detail: String| Refusal::Malformed {
        relation_id,
        detail,
    };
    let Some(raw) = remote.get("requests") else {
        return Ok(None);
    };
    let requests: Vec<V1Request> = serde_json::from_str(raw)
        .map_err(|e| malformed(format!("requests is not a JSON list of requests: {e}")))?;
    let request = match requests.len() {
        0 => return Ok(None),
        1 => &requests[0],
        n => {
            return Err(Refusal::Unsupported {
                relation_id,
                what: format!("{n} resources in one relation are"),
            })
        }
    };
    let (Some(database), Some(request_id)) = (&request.resource, &request.request_id) else {
        return Err(malformed(
            "a request lacks its resource or request-id".into(),
        ));
    };
    if request
        .secret_mtls
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(Refusal::Unsupported {
            relation_id,
            what: "secret-mtls is".into(),
        });
    }
    fn text(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    let permissions = match &request.entity_permissions {
        None | Some(Value::Null) => None,
        // Some writers send the list as a JSON string, as v0 does.
        Some(Value::String(raw)) => {
            Some(serde_json::from_str(raw).map_err(|_| Refusal::Permissions {
                relation_id,
                detail: "not a JSON list".into(),
            })?)
        }
        Some(list) => Some(list.clone()),
    };
    let fields = Fields {
        extra_user_roles: text(&request.extra_user_roles),
        extra_group_roles: text(&request.extra_group_roles),
        entity_type: text(&request.entity_type),
        entity_permissions: permissions,
        entity_secret: text(&request.secret_requested_entity),
        prefix_matching: text(&request.prefix_matching),
    };
    let wire = Wire::V1 {
        request_id: request_id.clone(),
        salt: request.salt.clone().unwrap_or_default(),
    };
    build(relation_id, database, fields, wire).map(Some)
}

/// Validates one request's fields, whichever the wire version.
fn build(
    relation_id: u64,
    database: &str,
    fields: Fields<'_>,
    wire: Wire,
) -> Result<Request, Refusal> {
    let malformed = |detail: &str| Refusal::Malformed {
        relation_id,
        detail: detail.to_string(),
    };
    let resource =
        match database.strip_suffix('*') {
            Some(prefix) => {
                if !matches!(fields.prefix_matching, None | Some("all")) {
                    return Err(Refusal::Unsupported {
                        relation_id,
                        what: format!(
                            "prefix-matching {:?} is (only \"all\" is)",
                            fields.prefix_matching.unwrap_or_default()
                        ),
                    });
                }
                Resource::Prefix(
                    DatabasePrefix::parse(prefix).map_err(|e| Refusal::Database {
                        relation_id,
                        detail: e.to_string(),
                    })?,
                )
            }
            None => Resource::Database(DatabaseName::parse(database).map_err(|e| {
                Refusal::Database {
                    relation_id,
                    detail: e.to_string(),
                }
            })?),
        };
    let roles =
        ExtraRoles::parse(fields.extra_user_roles.unwrap_or("")).map_err(|e| Refusal::Roles {
            relation_id,
            detail: e.to_string(),
        })?;
    let group_roles =
        ExtraRoles::parse_roles(fields.extra_group_roles.unwrap_or("")).map_err(|e| {
            Refusal::Roles {
                relation_id,
                detail: format!("extra-group-roles: {e}"),
            }
        })?;
    let kind = match fields.entity_type {
        None => None,
        Some("USER") => Some(EntityKind::User),
        Some("GROUP") => Some(EntityKind::Group),
        Some(other) => {
            return Err(malformed(&format!(
                "entity-type {other:?} is neither USER nor GROUP"
            )))
        }
    };
    let Some(kind) = kind else {
        if fields.entity_permissions.is_some() || fields.entity_secret.is_some() {
            return Err(malformed(
                "entity-permissions and a requested entity secret need an entity-type",
            ));
        }
        return Ok(Request {
            resource,
            roles,
            group_roles,
            entity: None,
            wire,
        });
    };
    if matches!(resource, Resource::Prefix(_)) {
        return Err(Refusal::Unsupported {
            relation_id,
            what: "entity requests for a database prefix are".into(),
        });
    }
    match kind {
        EntityKind::User if !group_roles.is_empty() => {
            return Err(malformed(
                "a USER entity takes extra-user-roles, not extra-group-roles",
            ))
        }
        EntityKind::Group if roles != ExtraRoles::default() => {
            return Err(malformed(
                "a GROUP entity takes extra-group-roles, not extra-user-roles",
            ))
        }
        _ => {}
    }
    let permissions = match fields.entity_permissions {
        None => Vec::new(),
        Some(list) => permissions(relation_id, &resource, list)?,
    };
    Ok(Request {
        resource,
        roles,
        group_roles,
        entity: Some(Entity {
            kind,
            permissions,
            secret: fields.entity_secret.map(str::to_string),
        }),
        wire,
    })
}

/// One item of `entity-permissions`: exactly these keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionItem {
    resource_name: String,
    resource_type: String,
    privileges: Vec<String>,
}

/// Validates `entity-permissions`: a JSON list of items with exactly
/// `resource_name`, `resource_type` and `privileges`; a database resource
/// must be the request's own database.
fn permissions(
    relation_id: u64,
    resource: &Resource,
    list: Value,
) -> Result<Vec<Permission>, Refusal> {
    let refuse = |detail: String| Refusal::Permissions {
        relation_id,
        detail,
    };
    let items: Vec<PermissionItem> = serde_json::from_value(list).map_err(|_| {
        refuse(
            "not a JSON list of {resource_name, resource_type, privileges} (exactly those keys)"
                .into(),
        )
    })?;
    let mut out = Vec::new();
    for item in items {
        let permission =
            Permission::parse(&item.resource_name, &item.resource_type, &item.privileges)
                .map_err(|e| refuse(e.to_string()))?;
        if permission.resource_type() == postgres_admin::ResourceType::Database
            && !matches!(resource, Resource::Database(db) if db.as_str() == permission.name())
        {
            return Err(refuse(format!(
                "database {:?} is not the database of this request",
                permission.name()
            )));
        }
        out.push(permission);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag(pairs: &[(&str, &str)]) -> Databag {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_v0_request_is_validated_and_names_its_relation() {
        assert_eq!(parse(&bag(&[]), 4), Ok(None));
        let r = parse(
            &bag(&[
                ("database", "app_db"),
                ("extra-user-roles", "CREATEDB,admin,charmed_read"),
                ("extra-group-roles", "team_a"),
                ("requested-secrets", r#"["username","password"]"#),
                ("external-node-connectivity", "true"),
            ]),
            4,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.database().map(DatabaseName::as_str), Some("app_db"));
        assert!(r.roles.is_privileged());
        assert_eq!(r.group_roles, [MemberRole::parse("team_a").unwrap()]);
        let asked: Vec<String> = r.asked_roles().iter().map(|m| m.to_string()).collect();
        assert_eq!(asked, ["admin", "charmed_read", "team_a"]);
        assert!(r.wants_secret("password") && !r.wants_secret("tls"));
        assert!(r.wants_secret_credentials() && !r.wants_secret_entity());
        assert_eq!(r.entity, None);
        for (pairs, phrase) in [
            (
                vec![("database", "x'; DROP DATABASE y; --")],
                "invalid database name",
            ),
            (vec![("database", "postgres")], "postgres"),
            (
                vec![
                    ("database", "ok"),
                    ("extra-user-roles", "createdb; DROP ROLE x"),
                ],
                "createdb; DROP ROLE x",
            ),
            (
                vec![("database", "ok"), ("extra-group-roles", "superuser")],
                "extra-group-roles",
            ),
            (
                vec![("database", "ok"), ("requested-secrets", "username")],
                "requested-secrets",
            ),
            (
                vec![("database", "ok"), ("requested-secrets", "[1]")],
                "requested-secrets",
            ),
        ] {
            let e = parse(&bag(&pairs), 7).unwrap_err().to_string();
            assert!(e.contains("relation 7: ") && e.contains(phrase), "{e}");
        }
        let roles = parse(
            &bag(&[
                ("database", "ok"),
                ("extra-user-roles", "pg_read_server_files"),
            ]),
            7,
        );
        let refusal = roles.unwrap_err();
        assert!(matches!(&refusal, Refusal::Roles { .. }), "{refusal:?}");
        assert_eq!(refusal.code(), 5002);
        assert!(refusal
            .to_string()
            .starts_with("invalid role(s) for extra user roles: relation 7: "));
    }

    #[test]
    fn a_prefix_request_is_three_characters_at_least() {
        let r = parse(&bag(&[("database", "app*"), ("prefix-matching", "all")]), 3)
            .unwrap()
            .unwrap();
        assert_eq!(r.resource.to_string(), "app*");
        assert_eq!(r.database(), None);
        for (pairs, phrase, code) in [
            (vec![("database", "ap*")], "Prefix too short", 5001),
            (vec![("database", "*")], "Prefix too short", 5001),
            (vec![("database", "pg_x*")], "reserved", 5001),
            (
                vec![("database", "app*"), ("prefix-matching", "only-existing")],
                "prefix-matching",
                5003,
            ),
            (
                vec![("database", "app*"), ("entity-type", "USER")],
                "entity requests for a database prefix",
                5003,
            ),
        ] {
            let e = parse(&bag(&pairs), 3).unwrap_err();
            assert!(e.to_string().contains(phrase), "{e}");
            assert_eq!(e.code(), code, "{e}");
        }
    }

    #[test]
    fn an_entity_request_is_validated_strictly() {
        let permissions = r#"[{"resource_name": "app", "resource_type": "database", "privileges": ["CONNECT"]},
            {"resource_name": "notes", "resource_type": "table", "privileges": ["SELECT"]}]"#;
        let r = parse(
            &bag(&[
                ("database", "app"),
                ("entity-type", "USER"),
                ("extra-user-roles", "charmed_read"),
                ("entity-permissions", permissions),
                ("requested-entity-secret", "secret:abc"),
                ("requested-secrets", r#"["entity-name","entity-password"]"#),
            ]),
            3,
        )
        .unwrap()
        .unwrap();
        let entity = r.entity.clone().unwrap();
        assert_eq!(entity.kind, EntityKind::User);
        assert_eq!(entity.secret.as_deref(), Some("secret:abc"));
        let listed: Vec<String> = entity.permissions.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            listed,
            ["CONNECT on database app", "SELECT on table public.notes"]
        );
        assert!(r.wants_secret_entity() && !r.wants_secret_credentials());
        let group = parse(
            &bag(&[
                ("database", "app"),
                ("entity-type", "GROUP"),
                ("extra-group-roles", "charmed_stats"),
            ]),
            3,
        )
        .unwrap()
        .unwrap();
        assert_eq!(group.entity.map(|e| e.kind), Some(EntityKind::Group));
        for (pairs, phrase, code) in [
            (
                vec![("entity-type", "ROBOT")],
                "neither USER nor GROUP",
                5004,
            ),
            (
                vec![("entity-type", "USER"), ("extra-group-roles", "g")],
                "a USER entity takes extra-user-roles",
                5004,
            ),
            (
                vec![
                    ("entity-type", "GROUP"),
                    ("extra-user-roles", "charmed_read"),
                ],
                "a GROUP entity takes extra-group-roles",
                5004,
            ),
            (
                vec![("entity-permissions", "[]")],
                "need an entity-type",
                5004,
            ),
            (
                vec![("requested-entity-secret", "secret:x")],
                "need an entity-type",
                5004,
            ),
            (
                vec![("entity-type", "USER"), ("entity-permissions", "{")],
                "not a JSON list",
                5006,
            ),
            (
                vec![
                    ("entity-type", "USER"),
                    (
                        "entity-permissions",
                        r#"[{"resource_name": "t", "resource_type": "table", "privileges": ["SELECT"], "grant": true}]"#,
                    ),
                ],
                "exactly those keys",
                5006,
            ),
            (
                vec![
                    ("entity-type", "USER"),
                    (
                        "entity-permissions",
                        r#"[{"resource_name": "t", "resource_type": "function", "privileges": ["EXECUTE"]}]"#,
                    ),
                ],
                "unknown resource_type",
                5006,
            ),
            (
                vec![
                    ("entity-type", "USER"),
                    (
                        "entity-permissions",
                        r#"[{"resource_name": "t", "resource_type": "table", "privileges": ["SUPERUSER"]}]"#,
                    ),
                ],
                "unknown privilege",
                5006,
            ),
            (
                vec![
                    ("entity-type", "USER"),
                    (
                        "entity-permissions",
                        r#"[{"resource_name": "other", "resource_type": "database", "privileges": ["CONNECT"]}]"#,
                    ),
                ],
                "not the database of this request",
                5006,
            ),
        ] {
            let mut pairs = pairs;
            pairs.push(("database", "app"));
            let e = parse(&bag(&pairs), 3).unwrap_err();
            assert!(e.to_string().contains(phrase), "{e}");
            assert_eq!(e.code(), code, "{e}");
        }
        let waiting = Refusal::MissingGrant { relation_id: 3 };
        assert!(waiting.is_transitory() && waiting.to_string().contains(MISSING_GRANT));
        assert_eq!(waiting.code(), 4001);
    }

    #[test]
    fn v1_requests_carry_the_same_fields() {
        let requests = r#"[{"resource": "app", "request-id": "r1", "salt": "s",
            "entity-type": "USER", "extra-user-roles": "charmed_dml",
            "entity-permissions": [{"resource_name": "app", "resource_type": "database", "privileges": ["CONNECT"]}],
            "secret-requested-entity": "secret:q"}]"#;
        let r = parse(&bag(&[("version", "v1"), ("requests", requests)]), 3)
            .unwrap()
            .unwrap();
        let entity = r.entity.unwrap();
        assert_eq!(entity.kind, EntityKind::User);
        assert_eq!(entity.permissions.len(), 1);
        assert_eq!(entity.secret.as_deref(), Some("secret:q"));
        let requests = r#"[{"resource": "app*", "request-id": "r1", "prefix-matching": "all",
            "extra-group-roles": "team_a"}]"#;
        let r = parse(&bag(&[("version", "v1"), ("requests", requests)]), 3)
            .unwrap()
            .unwrap();
        assert!(matches!(r.resource, Resource::Prefix(_)));
        assert_eq!(r.group_roles.len(), 1);
        let requests = r#"[{"resource": "app", "request-id": "r1", "secret-mtls": "secret:m"}]"#;
        let e = parse(&bag(&[("version", "v1"), ("requests", requests)]), 3).unwrap_err();
        assert!(e.to_string().contains("secret-mtls"), "{e}");
    }

    #[test]
    fn a_v1_request_keeps_its_id_and_salt() {
        let requests = r#"[{"resource": "app_db", "request-id": "f198750a5ef76eda", "salt": "AbCdEfGh12345678",
            "extra-user-roles": null, "extra-group-roles": null, "external-node-connectivity": false,
            "entity-type": null, "entity-permissions": null, "secret-mtls": null, "mtls-cert": null,
            "secret-requested-entity": null, "entity-name": null, "password": null,
            "prefix-matching": null, "entity-password": null}]"#;
        let r = parse(&bag(&[("version", "v1"), ("requests", requests)]), 5)
            .unwrap()
            .unwrap();
        assert_eq!(r.database().map(DatabaseName::as_str), Some("app_db"));
        assert_eq!(
            r.wire,
            Wire::V1 {
                request_id: "f198750a5ef76eda".into(),
                salt: "AbCdEfGh12345678".into()
            }
        );
        assert!(r.wants_secret("read-only-uris") && r.wants_secret_credentials());
        assert_eq!(
            parse(&bag(&[("version", "v1"), ("requests", "[]")]), 5),
            Ok(None)
        );
        assert_eq!(parse(&bag(&[("version", "v1")]), 5), Ok(None));
        for (requests, phrase) in [
            ("{}", "JSON list"),
            (r#"[{"resource": "a"}]"#, "request-id"),
            (
                r#"[{"resource": "a", "request-id": "1"}, {"resource": "b", "request-id": "2"}]"#,
                "2 resources",
            ),
            (
                r#"[{"resource": "a;b", "request-id": "1"}]"#,
                "invalid database name",
            ),
        ] {
            let e = parse(&bag(&[("version", "v1"), ("requests", requests)]), 5).unwrap_err();
            assert!(e.to_string().contains(phrase), "{e}");
        }
        let e = parse(&bag(&[("version", "v9"), ("database", "a")]), 5).unwrap_err();
        assert!(e.to_string().contains("unknown interface version"), "{e}");
    }
}
