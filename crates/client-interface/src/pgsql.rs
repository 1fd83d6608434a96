//! The legacy `pgsql` interface (endpoints `db` and `db-admin`), provider
//! side, as clients on the `ops-lib-pgsql` library speak it.
//!
//! - The client writes `database`, `roles` and `extensions` in its
//!   application bag (and mirrors them in its units' bags); Juju adds each
//!   unit's `egress-subnets`. [`parse`] reads the request from those bags
//!   and validates it: the database through [`DatabaseName`], extensions
//!   through [`Extension`]; roles are never acted on (they are refused).
//! - The provider answers with [`publish`] in its application bag and the
//!   leader's unit bag, the same content in both: `master` and `standbys`
//!   (libpq `key=value` strings, [`conninfo`]), `host`, `port`, `user`,
//!   `password`, `database`, `allowed-subnets`, `allowed-units`,
//!   `extensions` (echoed as the client wrote it), `version` and, when the
//!   provider says one, `state`.
//! - The client takes the answer only when it echoes its `database` (unless
//!   it asked for none), `roles` and `extensions` byte for byte, and when
//!   `allowed-subnets` names each of its unit's egress subnets.
//!
//! What differs between the charms (the user's name, where `master` points,
//! the standbys' database, `state`) is the caller's: the [`Answer`] it builds.
//! The wire contract in the project's words: `docs/legacy-pgsql.md`.

use crate::provider::secret_label;
use charm::secret::{Revision, SecretMeta};
use charm::{Bag, BagChanges, Databag, Hook, Relation, SecretContent, SecretOwner};
use postgres_admin::names::{DatabaseName, Extension};
use std::collections::BTreeSet;

/// The legacy endpoint for ordinary users.
pub const DB: &str = "db";
/// The legacy endpoint for superusers.
pub const DB_ADMIN: &str = "db-admin";
/// Both legacy endpoints.
pub const ENDPOINTS: [&str; 2] = [DB, DB_ADMIN];

/// The blocked text for a client that asks for roles (the reference charm's).
pub const ROLES_REQUESTED: &str =
    "roles requested through relation, use postgresql_client interface instead";

/// Every key the provider writes; [`clear`] removes them.
pub const KEYS: [&str; 12] = [
    "database",
    "user",
    "password",
    "host",
    "port",
    "master",
    "standbys",
    "allowed-subnets",
    "allowed-units",
    "extensions",
    "version",
    "state",
];

/// Which legacy endpoint a relation is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `db`: an ordinary login user.
    Db,
    /// `db-admin`: a superuser.
    DbAdmin,
}

impl Kind {
    /// The kind of the endpoint named, if it is a legacy one.
    pub fn of(endpoint: &str) -> Option<Kind> {
        match endpoint {
            DB => Some(Kind::Db),
            DB_ADMIN => Some(Kind::DbAdmin),
            _ => None,
        }
    }

    /// The endpoint's name.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::Db => DB,
            Kind::DbAdmin => DB_ADMIN,
        }
    }
}

/// A legacy client's validated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The database: the one asked for, or the client application's name
    /// when it left the choice to the provider (an empty `database`).
    pub database: DatabaseName,
    /// The extensions to have in the database, in the client's order.
    pub extensions: Vec<Extension>,
    /// `extensions` exactly as the client wrote it, for the echo.
    pub extensions_raw: String,
}

/// Why a legacy request is not served: the status text a user reads, naming
/// the relation as `<endpoint>:<id>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client asked for roles; only `postgresql_client` grants them.
    #[error("relation {relation}: {ROLES_REQUESTED}")]
    Roles {
        /// `<endpoint>:<id>`.
        relation: String,
    },
    /// A database or extension name that cannot be used.
    #[error("relation {relation}: {detail}")]
    Invalid {
        /// `<endpoint>:<id>`.
        relation: String,
        /// The name and the rule it breaks.
        detail: String,
    },
    /// Extensions the provider cannot give the client.
    #[error("relation {relation}: extensions requested through relation {why}: {}", .extensions.join(", "))]
    Extensions {
        /// `<endpoint>:<id>`.
        relation: String,
        /// The extensions' names.
        extensions: Vec<String>,
        /// Why, and what to do about it.
        why: String,
    },
    /// The provider does not serve this endpoint (the reason says what to
    /// relate to instead).
    #[error("relation {relation}: {why}")]
    NotServed {
        /// `<endpoint>:<id>`.
        relation: String,
        /// Why, and what to do about it.
        why: String,
    },
}

/// How a refusal names its relation.
pub fn relation_name(relation: &Relation) -> String {
    format!("{}:{}", relation.endpoint, relation.id)
}

/// Reads a client's request from its bags: the application bag when it
/// holds `database`, else the first unit bag (by unit name) that does; the
/// request's `roles` and `extensions` come from the same bag. `Ok(None)`
/// until the client has written `database` (even empty). An empty
/// `database` asks for one named after the client application.
pub fn parse(
    relation: &Relation,
    client_app: &str,
    app: &Databag,
    units: &[(String, Databag)],
) -> Result<Option<Request>, Refusal> {
    let mut sorted: Vec<&(String, Databag)> = units.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let Some(bag) = std::iter::once(app)
        .chain(sorted.into_iter().map(|(_, b)| b))
        .find(|b| b.contains_key("database"))
    else {
        return Ok(None);
    };
    let name = relation_name(relation);
    let field = |k: &str| bag.get(k).map(String::as_str).unwrap_or_default();
    if !field("roles").trim().is_empty() {
        return Err(Refusal::Roles { relation: name });
    }
    let invalid = |detail: String| Refusal::Invalid {
        relation: name.clone(),
        detail,
    };
    let asked = field("database").trim();
    let database = match asked {
        "" => DatabaseName::parse(client_app),
        _ => DatabaseName::parse(asked),
    }
    .map_err(|e| invalid(e.to_string()))?;
    let extensions_raw = field("extensions").to_string();
    let extensions = extensions_raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(Extension::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Some(Request {
        database,
        extensions,
        extensions_raw,
    }))
}

/// Leader: reads a client's request from the relation ([`parse`]).
pub fn read(
    hook: &mut Hook<'_>,
    relation: &Relation,
) -> crate::Result<Result<Option<Request>, Refusal>> {
    let units = unit_bags(hook, relation)?;
    let client_app = hook.remote_app(relation)?;
    let app = hook.remote_app_bag(relation)?.clone();
    Ok(parse(relation, &client_app, &app, &units))
}

/// The client's units and their bags.
fn unit_bags(hook: &mut Hook<'_>, relation: &Relation) -> charm::Result<Vec<(String, Databag)>> {
    let mut out = Vec::new();
    for unit in hook.relation_units(relation)? {
        let bag = hook.bag(relation, &Bag::Unit(unit.clone()))?.clone();
        out.push((unit, bag));
    }
    Ok(out)
}

/// Who may connect: the client's units and their egress subnets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Unit names, sorted.
    pub units: Vec<String>,
    /// Each unit's `egress-subnets`, deduplicated and sorted.
    pub subnets: Vec<String>,
}

impl Allowed {
    /// From the client's unit bags (`egress-subnets` is comma-separated).
    pub fn of(units: &[(String, Databag)]) -> Allowed {
        let names: BTreeSet<String> = units.iter().map(|(u, _)| u.clone()).collect();
        let subnets: BTreeSet<String> = units
            .iter()
            .filter_map(|(_, b)| b.get("egress-subnets"))
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Allowed {
            units: names.into_iter().collect(),
            subnets: subnets.into_iter().collect(),
        }
    }

    /// The client's units in the relation now (during relation-departed, the
    /// departing unit is no longer listed).
    pub fn read(hook: &mut Hook<'_>, relation: &Relation) -> charm::Result<Allowed> {
        Ok(Allowed::of(&unit_bags(hook, relation)?))
    }
}

/// A value that cannot go into a libpq connection string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnInfoError {
    /// A key that is not a libpq keyword's shape.
    #[error("invalid connection string keyword {0:?}")]
    Key(String),
    /// A control character (a newline would split `standbys`).
    #[error("the value of {0} holds a control character")]
    Value(String),
}

/// Writes one libpq `key=value` connection string as `pgconnstr` does (and
/// libpq reads): keys sorted, one space between pairs, empty values left out,
/// `\` and `'` escaped with a backslash, a value holding whitespace quoted in
/// `'`. Control characters are refused: a newline would split `standbys`,
/// which clients read one string per line.
pub fn conninfo(pairs: &[(&str, &str)]) -> Result<String, ConnInfoError> {
    let mut sorted: Vec<&(&str, &str)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    sorted.sort_by_key(|(k, _)| *k);
    let mut out = Vec::with_capacity(sorted.len());
    for (key, value) in sorted {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConnInfoError::Key(key.to_string()));
        }
        if value.chars().any(char::is_control) {
            return Err(ConnInfoError::Value(key.to_string()));
        }
        let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
        if escaped.chars().any(char::is_whitespace) {
            out.push(format!("{key}='{escaped}'"));
        } else {
            out.push(format!("{key}={escaped}"));
        }
    }
    Ok(out.join(" "))
}

/// Where a connection string points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// A DNS name or an IP address.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The database to connect to there.
    pub dbname: String,
}

/// Everything a provider tells a legacy client.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    /// The database (echoed as `database`).
    pub database: String,
    /// The client's user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Where to read and write.
    pub master: Target,
    /// Where to read only (none: the key is removed).
    pub standbys: Vec<Target>,
    /// The client application's name (`fallback_application_name`).
    pub client_app: String,
    /// Who may connect.
    pub allowed: Allowed,
    /// `extensions` as the client wrote it.
    pub extensions: String,
    /// The server's version, when known.
    pub version: Option<String>,
    /// What `state` says, when the provider writes it.
    pub state: Option<String>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("database", &self.database)
            .field("user", &self.user)
            .field("master", &self.master)
            .field("standbys", &self.standbys)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// The connection string to `target`.
    pub fn conninfo(&self, target: &Target) -> Result<String, ConnInfoError> {
        conninfo(&[
            ("host", &target.host),
            ("port", &target.port.to_string()),
            ("dbname", &target.dbname),
            ("user", &self.user),
            ("password", &self.password),
            ("fallback_application_name", &self.client_app),
        ])
    }

    /// The bag's content, every key of [`KEYS`] set or removed.
    pub fn changes(&self) -> Result<BagChanges, ConnInfoError> {
        let standbys = self
            .standbys
            .iter()
            .map(|t| self.conninfo(t))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n");
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        Ok(BagChanges::new()
            .set("database", self.database.as_str())
            .set("user", self.user.as_str())
            .set("password", self.password.as_str())
            .set("host", self.master.host.as_str())
            .set("port", self.master.port.to_string())
            .set("master", self.conninfo(&self.master)?)
            .set_or_unset("standbys", nonempty(standbys))
            .set_or_unset("allowed-subnets", nonempty(self.allowed.subnets.join(",")))
            .set_or_unset("allowed-units", nonempty(self.allowed.units.join(",")))
            .set_or_unset("extensions", nonempty(self.extensions.clone()))
            .set_or_unset("version", self.version.clone())
            .set_or_unset("state", self.state.clone()))
    }
}

/// Leader: writes the answer to the application bag and this unit's bag
/// (clients written before application bags existed read the leader's unit
/// bag). Only what changed reaches Juju.
pub fn publish(hook: &mut Hook<'_>, relation: &Relation, answer: &Answer) -> crate::Result<()> {
    let changes = answer.changes()?;
    hook.update_app_bag(relation, changes.clone())?;
    hook.update_unit_bag(relation, changes)?;
    Ok(())
}

/// A unit that does not lead removes what it wrote while it led, so that no
/// client reads a stale copy in its unit bag.
pub fn clear(hook: &mut Hook<'_>, relation: &Relation) -> charm::Result<()> {
    let stale = KEYS
        .iter()
        .any(|k| matches!(hook.local_unit_bag(relation), Ok(b) if b.contains_key(*k)));
    if stale {
        hook.update_unit_bag(relation, KEYS.map(|k| (k.to_string(), None)))?;
    }
    Ok(())
}

/// Whether the provider has answered the relation (its application bag holds
/// `master`).
pub fn answered(hook: &mut Hook<'_>, relation: &Relation) -> charm::Result<bool> {
    Ok(hook.local_app_bag(relation)?.contains_key("master"))
}

/// Leader: keeps a client's password in its relation's user secret (owned by
/// the application, granted to no one: legacy clients read the databag), so
/// every hook answers with the same one; read it back with
/// [`crate::provider::kept_password`]. Returns the password kept: the one
/// already there, else `new`.
pub fn keep_password(
    hook: &mut Hook<'_>,
    relation: &Relation,
    new: impl FnOnce() -> String,
) -> crate::Result<String> {
    if let Some(kept) = crate::provider::kept_password(hook, &relation.endpoint, relation)? {
        return Ok(kept);
    }
    let password = new();
    let meta = SecretMeta {
        label: Some(secret_label(&relation.endpoint, relation.id, "user")),
        ..SecretMeta::default()
    };
    let content = SecretContent::new().with("password", password.as_str());
    hook.add_secret(&content, SecretOwner::Application, &meta)?;
    Ok(password)
}

/// Whether the relation's user secret exists (the leader chose a password).
pub fn has_kept_password(hook: &mut Hook<'_>, relation: &Relation) -> charm::Result<bool> {
    let label = secret_label(&relation.endpoint, relation.id, "user");
    Ok(hook.secret_by_label(&label, Revision::Peek)?.is_some())
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

    /// libpq's reading of a `key=value` string (`conninfo_parse`): values
    /// unquoted up to whitespace or in `'`, a backslash escaping the next
    /// character in both.
    fn libpq_parse(s: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut chars = s.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                return out;
            }
            let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
            assert_eq!(chars.next(), Some('='), "{s}");
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                loop {
                    match chars.next().expect("a closing quote") {
                        '\\' => value.push(chars.next().expect("an escaped character")),
                        '\'' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    match c {
                        '\\' => value.push(chars.next().expect("an escaped character")),
                        c => value.push(c),
                    }
                }
            }
            out.push((key.trim().to_string(), value));
        }
    }

    #[test]
    fn connection_strings_sort_keys_and_leave_plain_values_alone() {
        let s = conninfo(&[
            ("user", "relation_id_7"),
            ("host", "10.1.2.3"),
            ("port", "5432"),
            ("password", "Xq3abc"),
            ("dbname", "waltz"),
            ("fallback_application_name", "finos-waltz"),
        ])
        .unwrap();
        assert_eq!(
            s,
            "dbname=waltz fallback_application_name=finos-waltz host=10.1.2.3 \
             password=Xq3abc port=5432 user=relation_id_7"
        );
        assert_eq!(
            conninfo(&[("host", "h"), ("password", "")]).unwrap(),
            "host=h"
        );
    }

    #[test]
    fn quotes_backslashes_and_spaces_read_back_as_written() {
        for value in [
            "sec'ret",
            "back\\slash",
            "two words",
            "quote' and space",
            "\\'",
            "'",
            "trailing\\",
            "ünïcödé",
        ] {
            let s = conninfo(&[("dbname", "db"), ("password", value)]).unwrap();
            assert_eq!(
                libpq_parse(&s),
                vec![
                    ("dbname".to_string(), "db".to_string()),
                    ("password".to_string(), value.to_string())
                ],
                "{value:?} as {s}"
            );
        }
        assert_eq!(
            conninfo(&[("password", "sec'ret")]).unwrap(),
            "password=sec\\'ret",
            "as pgconnstr writes it"
        );
        assert_eq!(conninfo(&[("password", "a b")]).unwrap(), "password='a b'");
    }

    #[test]
    fn control_characters_and_odd_keys_are_refused() {
        assert_eq!(
            conninfo(&[("password", "line\nbreak")]),
            Err(ConnInfoError::Value("password".into()))
        );
        assert_eq!(
            conninfo(&[("pass word", "x")]),
            Err(ConnInfoError::Key("pass word".into()))
        );
        assert!(conninfo(&[("a=b", "x")]).is_err());
        assert!(conninfo(&[("password", "tab\there")]).is_err());
    }

    fn db(id: u64) -> Relation {
        Relation::new(DB, id)
    }

    #[test]
    fn the_request_comes_from_the_app_bag_else_the_first_unit_bag() {
        assert_eq!(parse(&db(7), "waltz", &bag(&[]), &[]), Ok(None));
        let r = parse(
            &db(7),
            "waltz",
            &bag(&[
                ("database", "shop"),
                ("extensions", "citext,pg_trgm:search"),
            ]),
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.database.as_str(), "shop");
        assert_eq!(r.extensions_raw, "citext,pg_trgm:search");
        assert_eq!(
            r.extensions
                .iter()
                .map(|e| (e.name(), e.schema()))
                .collect::<Vec<_>>(),
            [("citext", None), ("pg_trgm", Some("search"))]
        );
        // An older client writes unit bags only; the first by name wins.
        let units = vec![
            ("waltz/1".to_string(), bag(&[("database", "second")])),
            ("waltz/0".to_string(), bag(&[("database", "first")])),
            (
                "waltz/2".to_string(),
                bag(&[("egress-subnets", "10.0.0.2/32")]),
            ),
        ];
        let r = parse(&db(7), "waltz", &bag(&[]), &units).unwrap().unwrap();
        assert_eq!(r.database.as_str(), "first");
        // An empty database leaves the name to the provider: the client's.
        let r = parse(&db(7), "finos-waltz", &bag(&[("database", "")]), &[])
            .unwrap()
            .unwrap();
        assert_eq!(r.database.as_str(), "finos-waltz");
        assert!(r.extensions.is_empty());
    }

    #[test]
    fn roles_and_bad_names_are_refused_naming_the_relation() {
        let roles = parse(
            &db(7),
            "app",
            &bag(&[("database", "shop"), ("roles", "reader")]),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            roles.to_string(),
            "relation db:7: roles requested through relation, use postgresql_client interface instead"
        );
        for (pairs, phrase) in [
            (
                vec![("database", "x'; DROP DATABASE y")],
                "invalid database name",
            ),
            (vec![("database", "postgres")], "\"postgres\""),
            (
                vec![("database", "ok"), ("extensions", "citext; DROP TABLE t")],
                "invalid extension name",
            ),
            (
                vec![("database", "ok"), ("extensions", "citext:pg_catalog")],
                "invalid schema name",
            ),
        ] {
            let e = parse(&Relation::new(DB_ADMIN, 9), "app", &bag(&pairs), &[]).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with("relation db-admin:9: ") && text.contains(phrase),
                "{text}"
            );
        }
        // A client application whose name is no database name says so.
        let e = parse(&db(7), &"a".repeat(60), &bag(&[("database", "")]), &[]).unwrap_err();
        assert!(e.to_string().contains("at most 49 bytes"), "{e}");
    }

    #[test]
    fn allowed_units_and_subnets_are_sorted_and_deduplicated() {
        let units = vec![
            (
                "app/1".to_string(),
                bag(&[("egress-subnets", "10.0.0.2/32,10.1.0.0/16")]),
            ),
            (
                "app/0".to_string(),
                bag(&[("egress-subnets", "10.0.0.1/32")]),
            ),
            (
                "app/2".to_string(),
                bag(&[("egress-subnets", " 10.1.0.0/16 ")]),
            ),
        ];
        let allowed = Allowed::of(&units);
        assert_eq!(allowed.units, ["app/0", "app/1", "app/2"]);
        assert_eq!(
            allowed.subnets,
            ["10.0.0.1/32", "10.0.0.2/32", "10.1.0.0/16"]
        );
    }

    #[test]
    fn the_answer_carries_every_key_and_one_standby_per_line() {
        let answer = Answer {
            database: "shop".into(),
            user: "relation_id_7".into(),
            password: "s3cr3t".into(),
            master: Target {
                host: "10.0.0.1".into(),
                port: 5432,
                dbname: "shop".into(),
            },
            standbys: vec![
                Target {
                    host: "10.0.0.2".into(),
                    port: 5432,
                    dbname: "shop".into(),
                },
                Target {
                    host: "10.0.0.3".into(),
                    port: 5432,
                    dbname: "shop".into(),
                },
            ],
            client_app: "app".into(),
            allowed: Allowed {
                units: vec!["app/0".into()],
                subnets: vec!["10.0.0.9/32".into()],
            },
            extensions: "citext".into(),
            version: Some("15.18".into()),
            state: None,
        };
        let mut written = Databag::new();
        charm::relation::apply(
            &mut written,
            &charm::relation::diff(&Databag::new(), answer.changes().unwrap()),
        );
        assert_eq!(
            written["master"],
            "dbname=shop fallback_application_name=app host=10.0.0.1 password=s3cr3t port=5432 user=relation_id_7"
        );
        assert_eq!(written["standbys"].lines().count(), 2);
        assert!(written["standbys"]
            .lines()
            .all(|l| l.contains("host=10.0.0.")));
        assert_eq!(written["host"], "10.0.0.1");
        assert_eq!(written["port"], "5432");
        assert_eq!(written["allowed-units"], "app/0");
        assert_eq!(written["allowed-subnets"], "10.0.0.9/32");
        assert_eq!(written["extensions"], "citext");
        assert_eq!(written["version"], "15.18");
        assert!(!written.contains_key("state"));
        assert!(
            !format!("{answer:?}").contains("s3cr3t"),
            "Debug hides the password"
        );
    }
}
