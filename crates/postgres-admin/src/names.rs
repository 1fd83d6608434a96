//! Validated names: safe in SQL, in PgBouncer's ini file and in role names
//! derived from them, so hostile values from a relation are refused before any
//! statement is built.

use std::fmt;

/// Longest database name: `<db>_readonly` and derived role names must stay
/// within PostgreSQL's 63-byte identifier limit.
pub const MAX_DATABASE_NAME: usize = 49;
/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
pub const MAX_ROLE_NAME: usize = 63;

/// A name refused, with the value (escaped) and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {rule}")]
pub struct NameError {
    kind: &'static str,
    value: String,
    rule: String,
}

impl NameError {
    /// The refused value, as given.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The rules of one kind of name.
struct Rules {
    kind: &'static str,
    max: usize,
    allowed: fn(char) -> bool,
    allowed_text: &'static str,
    reserved: &'static [&'static str],
    /// Whether names starting with `pg_` are PostgreSQL's.
    pg_reserved: bool,
}

const DATABASE: Rules = Rules {
    kind: "database name",
    max: MAX_DATABASE_NAME,
    allowed: |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
    allowed_text: "ASCII letters, digits, '_' and '-'",
    reserved: &["postgres", "template0", "template1"],
    pg_reserved: true,
};

const ROLE: Rules = Rules {
    kind: "role name",
    max: MAX_ROLE_NAME,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
    allowed_text: "lowercase ASCII letters, digits and '_'",
    reserved: &["public", "none"],
    pg_reserved: true,
};

impl Rules {
    fn check(&self, value: &str) -> Result<String, NameError> {
        let fail = |rule: String| {
            let (kind, value) = (self.kind, value.to_string());
            Err(NameError { kind, value, rule })
        };
        let lower = value.to_ascii_lowercase();
        if value.is_empty() {
            return fail("must not be empty".into());
        }
        if value.len() > self.max {
            return fail(format!(
                "must be at most {} bytes (is {})",
                self.max,
                value.len()
            ));
        }
        if let Some(bad) = value.chars().find(|&c| !(self.allowed)(c)) {
            return fail(format!(
                "contains {bad:?}; only {} are allowed",
                self.allowed_text
            ));
        }
        if !value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return fail("must start with an ASCII letter or '_'".into());
        }
        if self.pg_reserved && lower.starts_with("pg_") {
            return fail("names starting with \"pg_\" are reserved".into());
        }
        if self.reserved.contains(&lower.as_str()) {
            return fail("is reserved".into());
        }
        Ok(value.to_string())
    }
}

/// The database name PgBouncer keeps for its admin console.
pub const PGBOUNCER_CONSOLE: &str = "pgbouncer";

/// A database name a client may ask for: 1 to 49 bytes of ASCII letters,
/// digits, `_` and `-`, starting with a letter or `_`, and not a system
/// database (`postgres`, `template0`, `template1`, `pg_*`, in any case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatabaseName(String);

impl DatabaseName {
    /// Validates a database name.
    pub fn parse(value: &str) -> Result<DatabaseName, NameError> {
        DATABASE.check(value).map(DatabaseName)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is PgBouncer's admin console (in any case), which a client
    /// cannot have behind PgBouncer.
    pub fn is_pgbouncer_console(&self) -> bool {
        self.0.eq_ignore_ascii_case(PGBOUNCER_CONSOLE)
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role name the charms create (`relation_id_4`,
/// `pgbouncer_auth_relation_id_4`): 1 to 63 bytes of lowercase ASCII letters,
/// digits and `_`, starting with a letter or `_`, not `pg_*`, `public` or `none`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(String);

impl RoleName {
    /// Validates a role name.
    pub fn parse(value: &str) -> Result<RoleName, NameError> {
        ROLE.check(value).map(RoleName)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest extension or schema name (PostgreSQL's identifier limit).
pub const MAX_EXTENSION_NAME: usize = MAX_ROLE_NAME;

const EXTENSION: Rules = Rules {
    kind: "extension name",
    max: MAX_EXTENSION_NAME,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-',
    allowed_text: "lowercase ASCII letters, digits, '_' and '-'",
    reserved: &[],
    // `pg_trgm` and `pg_stat_statements` are extensions like any other.
    pg_reserved: false,
};

const SCHEMA: Rules = Rules {
    kind: "schema name",
    max: MAX_ROLE_NAME,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
    allowed_text: "lowercase ASCII letters, digits and '_'",
    reserved: &["information_schema"],
    pg_reserved: true,
};

/// An extension a client asks for (the legacy `pgsql` interface's
/// `name[:schema]`): a name of lowercase ASCII letters, digits, `_` and `-`
/// (`uuid-ossp`), and optionally the schema to create it in (lowercase
/// letters, digits and `_`, not `pg_*` nor `information_schema`). Neither is
/// ever written into SQL: the server looks the name up among its available
/// extensions and quotes both itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extension {
    name: String,
    schema: Option<String>,
}

impl Extension {
    /// Validates `name` or `name:schema`.
    pub fn parse(value: &str) -> Result<Extension, NameError> {
        let (name, schema) = match value.split_once(':') {
            Some((name, schema)) => (name, Some(SCHEMA.check(schema)?)),
            None => (value, None),
        };
        let name = EXTENSION.check(name)?;
        Ok(Extension { name, schema })
    }

    /// The extension's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema to create it in, when one was named.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{}:{schema}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A role attribute a client may ask for in `extra-user-roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// `SUPERUSER`.
    Superuser,
    /// `CREATEDB`.
    CreateDb,
    /// `CREATEROLE`.
    CreateRole,
}

impl Attribute {
    /// The SQL keyword granting the attribute (`NO` + it withholds it).
    pub fn keyword(self) -> &'static str {
        match self {
            Attribute::Superuser => "SUPERUSER",
            Attribute::CreateDb => "CREATEDB",
            Attribute::CreateRole => "CREATEROLE",
        }
    }

    /// Every attribute, in a fixed order.
    pub const ALL: [Attribute; 3] = [
        Attribute::Superuser,
        Attribute::CreateDb,
        Attribute::CreateRole,
    ];
}

/// The predefined `pg_*` roles a client may ask to join: data access,
/// monitoring and signals. The others (`pg_execute_server_program`,
/// `pg_read_server_files`, `pg_write_server_files`, ...) reach the server's
/// files and programs, as a superuser would, and are never granted.
pub const GRANTABLE_PREDEFINED: [&str; 8] = [
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_monitor",
    "pg_read_all_settings",
    "pg_read_all_stats",
    "pg_stat_scan_tables",
    "pg_signal_backend",
    "pg_checkpoint",
];

/// The roles the PostgreSQL charm creates at the cluster's initialisation,
/// each with what it is a member of (`charmed_stats` monitors,
/// `charmed_read` reads every table, `charmed_dml` writes them too).
pub const CHARMED_ROLES: [(&str, &[&str]); 3] = [
    ("charmed_stats", &["pg_monitor"]),
    ("charmed_read", &["pg_read_all_data", "charmed_stats"]),
    ("charmed_dml", &["pg_write_all_data", "charmed_read"]),
];

/// The name of an existing role a client asks its user (or entity) to join:
/// 1 to 63 bytes of lowercase ASCII letters, digits and `_` (the request is
/// lowercased first, as PostgreSQL folds unquoted names), starting with a
/// letter or `_`, not `public` or `none`, and `pg_*` only for the
/// [`GRANTABLE_PREDEFINED`] roles. Whether it exists, and is safe to join,
/// only the server can tell (`Admin::unusable_roles`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberRole(String);

impl MemberRole {
    /// Validates a role name asked for (any case).
    pub fn parse(value: &str) -> Result<MemberRole, NameError> {
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("pg_") {
            return match GRANTABLE_PREDEFINED.contains(&lower.as_str()) {
                true => Ok(MemberRole(lower)),
                false => Err(NameError {
                    kind: "role name",
                    value: value.to_string(),
                    rule: format!(
                        "of the predefined roles only {} may be granted",
                        GRANTABLE_PREDEFINED.join(", ")
                    ),
                }),
            };
        }
        ROLE.check(&lower).map(MemberRole).map_err(|e| NameError {
            value: value.to_string(),
            ..e
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `extra-user-roles` or `extra-group-roles` item that cannot name a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The item, as given, is neither an attribute nor a valid role name.
    #[error("{0}")]
    Invalid(NameError),
    /// An attribute where only roles may be named (`extra-group-roles`).
    #[error("{0:?} is an attribute, not a role: only roles may be named here")]
    Attribute(String),
}

/// The parsed `extra-user-roles` field of the `postgresql_client` interface:
/// attributes (`SUPERUSER`, `CREATEDB`, `CREATEROLE`) and roles to join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraRoles {
    attributes: Vec<Attribute>,
    memberships: Vec<MemberRole>,
}

impl ExtraRoles {
    /// Parses a comma-separated, case-insensitive list; blanks and duplicates
    /// are dropped, and the first invalid item is named in the error.
    pub fn parse(value: &str) -> Result<ExtraRoles, RoleError> {
        let mut roles = ExtraRoles::default();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let attribute = Attribute::ALL
                .into_iter()
                .find(|a| a.keyword().eq_ignore_ascii_case(item));
            match attribute {
                Some(a) if !roles.attributes.contains(&a) => roles.attributes.push(a),
                Some(_) => {}
                None => roles.add(MemberRole::parse(item).map_err(RoleError::Invalid)?),
            }
        }
        Ok(roles)
    }

    /// Parses a comma-separated list of roles only (`extra-group-roles`).
    pub fn parse_roles(value: &str) -> Result<Vec<MemberRole>, RoleError> {
        let parsed = ExtraRoles::parse(value)?;
        if let Some(a) = parsed.attributes.first() {
            return Err(RoleError::Attribute(a.keyword().to_ascii_lowercase()));
        }
        Ok(parsed.memberships)
    }

    /// The same, also joining `roles`.
    pub fn with_memberships(mut self, roles: &[MemberRole]) -> ExtraRoles {
        for role in roles {
            self.add(role.clone());
        }
        self
    }

    fn add(&mut self, role: MemberRole) {
        if !self.memberships.contains(&role) {
            self.memberships.push(role);
        }
    }

    /// The attributes asked for, in first-seen order.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// The roles to grant membership in, in first-seen order.
    pub fn memberships(&self) -> &[MemberRole] {
        &self.memberships
    }

    /// Whether this asks for more than data access: an attribute or `admin`.
    pub fn is_privileged(&self) -> bool {
        !self.attributes.is_empty() || self.memberships.iter().any(|m| m.as_str() == "admin")
    }
}

/// A database prefix a client may ask for (`database` = `<prefix>*`): at
/// least 3 bytes, each as in a [`DatabaseName`], and no system prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatabasePrefix(String);

/// The shortest prefix a client may ask for.
pub const MIN_PREFIX: usize = 3;

impl DatabasePrefix {
    /// Validates the part before the `*`.
    pub fn parse(value: &str) -> Result<DatabasePrefix, NameError> {
        if value.len() < MIN_PREFIX {
            return Err(NameError {
                kind: "database prefix",
                value: value.to_string(),
                rule: format!("Prefix too short: at least {MIN_PREFIX} characters"),
            });
        }
        let checked = DATABASE.check(value).map_err(|e| NameError {
            kind: "database prefix",
            ..e
        })?;
        Ok(DatabasePrefix(checked))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a database name starts with it.
    pub fn matches(&self, database: &str) -> bool {
        database.starts_with(&self.0)
    }
}

impl fmt::Display for DatabasePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}*", self.0)
    }
}
