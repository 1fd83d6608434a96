//! What a requirer asks for, read from its application bag in either wire
//! version and validated before anything is created.
//!
//! - v0 (the `data_interfaces` library): flat keys `database`,
//!   `extra-user-roles`, `requested-secrets`, ...
//! - v1 (`dpcharmlibs-interfaces`): `version: v1` and a JSON list `requests`,
//!   each with its `request-id` and `salt`, answered in kind.
//!
//! Fields the charms do not act on yet (group roles, entity requests, prefix
//! requests) are refused with a reason that names them, never misread.

use charm::Databag;
use postgres_admin::names::{DatabaseName, ExtraRoles};
use serde::Deserialize;

/// A validated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The database the client wants.
    pub database: DatabaseName,
    /// Its `extra-user-roles`.
    pub roles: ExtraRoles,
    /// How it asked, and so how it must be answered.
    pub wire: Wire,
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
}

/// Why a request is refused: the status message a user reads, naming the relation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The database name is invalid or reserved.
    #[error("relation {relation_id}: {detail}")]
    Database {
        /// The relation's id.
        relation_id: u64,
        /// What is wrong with the name.
        detail: String,
    },
    /// `extra-user-roles` names something not allowed.
    #[error("{INVALID_ROLES}: relation {relation_id}: {detail}")]
    Roles {
        /// The relation's id.
        relation_id: u64,
        /// Which roles, and why.
        detail: String,
    },
    /// A field the charm does not act on yet.
    #[error("relation {relation_id}: {what} not supported yet")]
    Unsupported {
        /// The relation's id.
        relation_id: u64,
        /// The field asked for.
        what: String,
    },
    /// The request cannot be read.
    #[error("relation {relation_id}: {detail}")]
    Malformed {
        /// The relation's id.
        relation_id: u64,
        /// What could not be read.
        detail: String,
    },
}

impl Refusal {
    /// The code the client is told the refusal by: fatal (`5xxx`) in the
    /// data-platform libraries' classes, since the request as it stands will
    /// never be served.
    pub fn code(&self) -> u32 {
        match self {
            Refusal::Database { .. } => 5001,
            Refusal::Roles { .. } => 5002,
            Refusal::Unsupported { .. } => 5003,
            Refusal::Malformed { .. } => 5004,
        }
    }
}

/// The status text for refused roles (the one Canonical's charms show).
pub const INVALID_ROLES: &str = "invalid role(s) for extra user roles";

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
    entity_permissions: Option<serde_json::Value>,
    secret_requested_entity: Option<String>,
    prefix_matching: Option<String>,
    secret_mtls: Option<String>,
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
    refuse_unsupported(
        relation_id,
        database,
        [
            ("extra-group-roles", field("extra-group-roles").is_some()),
            ("entity-type", field("entity-type").is_some()),
            ("entity-permissions", field("entity-permissions").is_some()),
            (
                "requested-entity-secret",
                field("requested-entity-secret").is_some(),
            ),
            ("prefix-matching", field("prefix-matching").is_some()),
        ],
    )?;
    let secret_fields = match remote.get("requested-secrets") {
        None => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<String>>(raw).map_err(|_| Refusal::Malformed {
            relation_id,
            detail: "requested-secrets is not a JSON list of field names".into(),
        })?,
    };
    let (database, roles) = validate(relation_id, database, field("extra-user-roles"))?;
    Ok(Some(Request {
        database,
        roles,
        wire: Wire::V0 { secret_fields },
    }))
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
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    refuse_unsupported(
        relation_id,
        database,
        [
            ("extra-group-roles", given(&request.extra_group_roles)),
            ("entity-type", given(&request.entity_type)),
            (
                "entity-permissions",
                request
                    .entity_permissions
                    .as_ref()
                    .is_some_and(|p| !p.is_null()),
            ),
            (
                "secret-requested-entity",
                given(&request.secret_requested_entity),
            ),
            ("prefix-matching", given(&request.prefix_matching)),
            ("secret-mtls", given(&request.secret_mtls)),
        ],
    )?;
    let (database, roles) = validate(
        relation_id,
        database,
        request
            .extra_user_roles
            .as_deref()
            .filter(|r| !r.is_empty()),
    )?;
    Ok(Some(Request {
        database,
        roles,
        wire: Wire::V1 {
            request_id: request_id.clone(),
            salt: request.salt.clone().unwrap_or_default(),
        },
    }))
}

/// Refuses prefix requests (a database ending in `*`) and any field flagged as given.
fn refuse_unsupported<const N: usize>(
    relation_id: u64,
    database: &str,
    fields: [(&str, bool); N],
) -> Result<(), Refusal> {
    if database.ends_with('*') {
        return Err(Refusal::Unsupported {
            relation_id,
            what: format!("prefix requests (database {database:?}) are"),
        });
    }
    match fields.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(Refusal::Unsupported {
            relation_id,
            what: format!("{name} is"),
        }),
        None => Ok(()),
    }
}

fn validate(
    relation_id: u64,
    database: &str,
    roles: Option<&str>,
) -> Result<(DatabaseName, ExtraRoles), Refusal> {
    let database = DatabaseName::parse(database).map_err(|e| Refusal::Database {
        relation_id,
        detail: e.to_string(),
    })?;
    let roles = ExtraRoles::parse(roles.unwrap_or("")).map_err(|e| Refusal::Roles {
        relation_id,
        detail: e.to_string(),
    })?;
    Ok((database, roles))
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
                ("extra-user-roles", "CREATEDB,admin"),
                ("requested-secrets", r#"["username","password"]"#),
                ("external-node-connectivity", "true"),
            ]),
            4,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.database.as_str(), "app_db");
        assert!(r.roles.is_privileged());
        assert!(r.wants_secret("password") && !r.wants_secret("tls"));
        assert!(r.wants_secret_credentials());
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
        let roles = parse(&bag(&[("database", "ok"), ("extra-user-roles", "test")]), 7);
        assert!(matches!(&roles, Err(Refusal::Roles { .. })), "{roles:?}");
        let refusal = roles.unwrap_err();
        assert_eq!(refusal.code(), 5002);
        assert!(refusal
            .to_string()
            .starts_with("invalid role(s) for extra user roles: relation 7: "));
    }

    #[test]
    fn fields_not_acted_on_are_refused_by_name_in_both_versions() {
        for (pairs, phrase) in [
            (vec![("database", "app*")], "prefix requests"),
            (
                vec![("database", "app"), ("extra-group-roles", "g")],
                "extra-group-roles",
            ),
            (
                vec![("database", "app"), ("entity-type", "USER")],
                "entity-type",
            ),
            (
                vec![("database", "app"), ("entity-permissions", "[]")],
                "entity-permissions",
            ),
            (
                vec![("database", "app"), ("requested-entity-secret", "secret:x")],
                "requested-entity-secret",
            ),
            (
                vec![("database", "app"), ("prefix-matching", "all")],
                "prefix-matching",
            ),
        ] {
            let e = parse(&bag(&pairs), 3).unwrap_err();
            assert!(matches!(e, Refusal::Unsupported { .. }), "{e:?}");
            assert!(e.to_string().contains(phrase), "{e}");
        }
        for (field, value) in [
            ("entity-type", r#""GROUP""#),
            ("extra-group-roles", r#""g""#),
            ("prefix-matching", r#""all""#),
            ("secret-requested-entity", r#""secret:x""#),
        ] {
            let requests = format!(
                r#"[{{"resource": "app", "request-id": "r1", "salt": "s", "{field}": {value}}}]"#
            );
            let e = parse(&bag(&[("version", "v1"), ("requests", &requests)]), 3).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
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
        assert_eq!(r.database.as_str(), "app_db");
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
