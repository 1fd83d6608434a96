//! Entity permissions (`entity-permissions` of the `postgresql_client`
//! interface): which privileges on which database, schema, table or
//! sequence, validated strictly before any GRANT is built.

use std::fmt;

use crate::names::{DatabaseName, NameError};

/// What a permission is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// A database (`CONNECT`, `CREATE`, `TEMPORARY`).
    Database,
    /// A schema of the request's database (`USAGE`, `CREATE`).
    Schema,
    /// A table of the request's database.
    Table,
    /// A sequence of the request's database (`USAGE`, `SELECT`, `UPDATE`).
    Sequence,
}

impl ResourceType {
    /// Every type, with its wire name and the privileges it takes (besides `ALL`).
    const ALL: [(ResourceType, &'static str, &'static [&'static str]); 4] = [
        (
            ResourceType::Database,
            "database",
            &["CONNECT", "CREATE", "TEMPORARY"],
        ),
        (ResourceType::Schema, "schema", &["USAGE", "CREATE"]),
        (
            ResourceType::Table,
            "table",
            &[
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "TRUNCATE",
                "REFERENCES",
                "TRIGGER",
            ],
        ),
        (
            ResourceType::Sequence,
            "sequence",
            &["USAGE", "SELECT", "UPDATE"],
        ),
    ];

    /// The SQL keyword of the object kind in a GRANT.
    pub fn keyword(self) -> &'static str {
        match self {
            ResourceType::Database => "DATABASE",
            ResourceType::Schema => "SCHEMA",
            ResourceType::Table => "TABLE",
            ResourceType::Sequence => "SEQUENCE",
        }
    }

    fn entry(self) -> (ResourceType, &'static str, &'static [&'static str]) {
        ResourceType::ALL
            .into_iter()
            .find(|(t, _, _)| *t == self)
            .unwrap_or_else(|| unreachable!("every type is listed"))
    }
}

/// One permission: privileges on one resource, as validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    resource_type: ResourceType,
    /// The schema (tables, sequences, schemas) or `None` (databases).
    schema: Option<String>,
    /// The database, schema, table or sequence name.
    name: String,
    privileges: Vec<&'static str>,
}

/// A permission refused, naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    /// The resource type is not one of `database`, `schema`, `table`, `sequence`.
    #[error("unknown resource_type {0:?}: allowed are database, schema, table, sequence")]
    ResourceType(String),
    /// A privilege that does not apply to the resource type.
    #[error("unknown privilege {privilege:?} on a {resource_type}: allowed are {allowed}")]
    Privilege {
        /// The privilege, as given.
        privilege: String,
        /// The resource type's wire name.
        resource_type: &'static str,
        /// The privileges it takes.
        allowed: String,
    },
    /// No privilege listed.
    #[error("no privileges listed for {0:?}")]
    NoPrivileges(String),
    /// The resource's name is not acceptable.
    #[error("invalid resource_name {name:?}: {rule}")]
    Name {
        /// The name, as given.
        name: String,
        /// The rule it breaks.
        rule: String,
    },
}

/// An identifier of a schema, table or sequence: 1 to 63 bytes of lowercase
/// ASCII letters, digits and `_`, starting with a letter or `_`, and no system
/// schema (`pg_*`, `information_schema`).
fn identifier(part: &str) -> Result<String, String> {
    if part.is_empty() || part.len() > crate::names::MAX_ROLE_NAME {
        return Err("each part must be 1 to 63 bytes".into());
    }
    if !part
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || !part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
    {
        return Err(
            "only lowercase ASCII letters, digits and '_', starting with a letter or '_'".into(),
        );
    }
    if part.starts_with("pg_") || part == "information_schema" {
        return Err("system schemas are not granted".into());
    }
    Ok(part.to_string())
}

impl Permission {
    /// Validates one `{resource_name, resource_type, privileges}` item;
    /// privileges and the type are case-insensitive, `ALL` stands for every
    /// privilege of the type.
    pub fn parse(
        resource_name: &str,
        resource_type: &str,
        privileges: &[String],
    ) -> Result<Permission, PermissionError> {
        let (kind, wire, allowed) = ResourceType::ALL
            .into_iter()
            .find(|(_, wire, _)| wire.eq_ignore_ascii_case(resource_type))
            .ok_or_else(|| PermissionError::ResourceType(resource_type.to_string()))?;
        let bad_name = |rule: String| PermissionError::Name {
            name: resource_name.to_string(),
            rule,
        };
        let (schema, name) = match kind {
            ResourceType::Database => (
                None,
                DatabaseName::parse(resource_name)
                    .map_err(|e: NameError| bad_name(e.to_string()))?
                    .to_string(),
            ),
            ResourceType::Schema => (None, identifier(resource_name).map_err(bad_name)?),
            ResourceType::Table | ResourceType::Sequence => {
                let (schema, name) = resource_name
                    .split_once('.')
                    .unwrap_or(("public", resource_name));
                (
                    Some(identifier(schema).map_err(bad_name)?),
                    identifier(name).map_err(bad_name)?,
                )
            }
        };
        let mut chosen: Vec<&'static str> = Vec::new();
        for privilege in privileges {
            let upper = privilege.trim().to_ascii_uppercase();
            let found = match upper.as_str() {
                "ALL" | "ALL PRIVILEGES" => allowed.to_vec(),
                "TEMP" if kind == ResourceType::Database => vec!["TEMPORARY"],
                _ => allowed
                    .iter()
                    .find(|a| **a == upper)
                    .map(|a| vec![*a])
                    .ok_or_else(|| PermissionError::Privilege {
                        privilege: privilege.clone(),
                        resource_type: wire,
                        allowed: allowed.join(", "),
                    })?,
            };
            for p in found {
                if !chosen.contains(&p) {
                    chosen.push(p);
                }
            }
        }
        if chosen.is_empty() {
            return Err(PermissionError::NoPrivileges(resource_name.to_string()));
        }
        Ok(Permission {
            resource_type: kind,
            schema,
            name,
            privileges: chosen,
        })
    }

    /// What it is on.
    pub fn resource_type(&self) -> ResourceType {
        self.resource_type
    }

    /// The resource's name (a table's or sequence's without its schema).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema of a table or sequence.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The privileges, as SQL keywords.
    pub fn privileges(&self) -> &[&'static str] {
        &self.privileges
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, wire, _) = self.resource_type.entry();
        let privileges = self.privileges.join(",");
        match &self.schema {
            Some(schema) => write!(f, "{privileges} on {wire} {schema}.{}", self.name),
            None => write!(f, "{privileges} on {wire} {}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privileges(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn permissions_are_validated_strictly() {
        let p = Permission::parse("notes", "TABLE", &privileges(&["select", "Insert"])).unwrap();
        assert_eq!(p.to_string(), "SELECT,INSERT on table public.notes");
        let p = Permission::parse("app.seq", "sequence", &privileges(&["all"])).unwrap();
        assert_eq!(p.privileges(), ["USAGE", "SELECT", "UPDATE"]);
        let p = Permission::parse("shop", "database", &privileges(&["connect", "temp"])).unwrap();
        assert_eq!(p.to_string(), "CONNECT,TEMPORARY on database shop");
        for (name, kind, privs, phrase) in [
            ("t", "view", vec!["SELECT"], "unknown resource_type"),
            (
                "t",
                "table",
                vec!["CONNECT"],
                "unknown privilege \"CONNECT\"",
            ),
            ("t", "table", vec!["SELECT; DROP"], "unknown privilege"),
            ("t", "table", vec![], "no privileges"),
            (
                "x\"; DROP TABLE y",
                "table",
                vec!["SELECT"],
                "invalid resource_name",
            ),
            (
                "pg_catalog.pg_authid",
                "table",
                vec!["SELECT"],
                "system schemas",
            ),
            ("postgres", "database", vec!["CONNECT"], "reserved"),
            ("a.b.c", "table", vec!["SELECT"], "invalid resource_name"),
        ] {
            let err = Permission::parse(name, kind, &privileges(&privs)).unwrap_err();
            assert!(err.to_string().contains(phrase), "{name} {kind}: {err}");
        }
    }
}
