//! The provider half: answering a client's request on its relation.
//!
//! The answer is written in one hook, as the requirer libraries need it:
//! credentials and endpoints together. Credentials travel in an
//! application-owned secret granted to the relation when the client asked for
//! them as secrets (always in v1), else in the databag. The relation's user
//! secret is also where the provider keeps the client's password between
//! hooks: it exists, owned and not yet granted, from the moment the password
//! is chosen, so no password is ever kept in peer data.

use crate::request::{EntityKind, Refusal, Request, Wire};

/// The provider's statuses for a relation, in its application bag.
const STATUS: &str = "status";
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{
    BagChanges, Event, Hook, Relation, RelationEvent, SecretContent, SecretId, SecretOwner,
};
use postgres_admin::names::RoleName;
use serde_json::{json, Value};

/// A client relation's events, as a provider handles them.
#[derive(Clone, Copy, Debug)]
pub enum ClientEvent<'a> {
    /// The client's bag changed: a request, or a change to one. Only the
    /// leader is told, since only it may answer (write the application bag).
    Request(&'a Relation),
    /// A unit left the relation (perhaps this one).
    Departed(&'a RelationEvent),
    /// The relation is gone.
    Broken(&'a RelationEvent),
}

impl<'a> ClientEvent<'a> {
    /// The client relation event on `endpoint` that `event` is, if it is one
    /// this unit handles.
    pub fn of(
        hook: &mut Hook<'_>,
        endpoint: &str,
        event: &'a Event,
    ) -> charm::Result<Option<ClientEvent<'a>>> {
        Ok(match event {
            Event::RelationChanged(r) if r.relation.endpoint == endpoint => hook
                .is_leader()?
                .then_some(ClientEvent::Request(&r.relation)),
            Event::RelationDeparted(r) if r.relation.endpoint == endpoint => {
                Some(ClientEvent::Departed(r))
            }
            Event::RelationBroken(r) if r.relation.endpoint == endpoint => {
                Some(ClientEvent::Broken(r))
            }
            _ => None,
        })
    }
}

/// Everything a provider tells a client about its database.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    /// The database created for the client.
    pub database: String,
    /// The client's user.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Where to read and write: `host:port[,host:port]`.
    pub endpoints: String,
    /// Where to read only.
    pub read_only_endpoints: String,
    /// What the read-only URI names (the charms differ: PgBouncer sends
    /// clients to `<db>_readonly` on its units, PostgreSQL to a replica).
    pub read_only_uri: UriTarget,
    /// The database server's version, when known.
    pub version: Option<String>,
    /// Whether the endpoints serve TLS, and the CA to trust.
    pub tls: Tls,
    /// For an entity request: its kind; `username` and `password` are then
    /// the entity's name and password (none for a group), answered as
    /// `entity-name` and `entity-password`.
    pub entity: Option<EntityKind>,
    /// For a prefix request: the matching databases, sorted.
    pub prefix_databases: Option<Vec<String>>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("database", &self.database)
            .field("username", &self.username)
            .field("endpoints", &self.endpoints)
            .field("read_only_endpoints", &self.read_only_endpoints)
            .field("version", &self.version)
            .field("entity", &self.entity)
            .field("prefix_databases", &self.prefix_databases)
            .finish_non_exhaustive()
    }
}

/// The hosts and database a URI names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UriTarget {
    /// `host:port[,host:port]`.
    pub hosts: String,
    /// The database.
    pub database: String,
}

/// What clients are told about TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// Whether every endpoint serves TLS.
    pub enabled: bool,
    /// The CA bundle to verify them with.
    pub ca: Option<String>,
}

/// A client relation's user, as both charms name it: `relation_id_<id>`.
pub fn relation_user(relation_id: u64) -> RoleName {
    RoleName::parse(&format!("relation_id_{relation_id}"))
        .unwrap_or_else(|_| unreachable!("relation_id_<digits> is a valid role name"))
}

/// The label of a relation's secret of one group (`user` or `tls`): the
/// provider's own handle on it, whatever the wire version.
pub fn secret_label(endpoint: &str, relation_id: u64, group: &str) -> String {
    format!("{endpoint}.{relation_id}.{group}.secret")
}

/// A libpq URI (without a database when none is named).
fn uri(user: &str, password: &str, hosts: &str, database: &str) -> String {
    match database {
        "" => format!("postgresql://{user}:{password}@{hosts}"),
        db => format!("postgresql://{user}:{password}@{hosts}/{db}"),
    }
}

impl Answer {
    /// The answer to `request` on relation `relation_id`: its user
    /// `relation_id_<id>` with `password`, at `endpoints` and
    /// `read_only_endpoints`, its read-only URI naming `read_only_uri`; no
    /// version and no TLS until they are set.
    pub fn new(
        relation_id: u64,
        request: &Request,
        password: String,
        (endpoints, read_only_endpoints): (String, String),
        read_only_uri: UriTarget,
    ) -> Answer {
        Answer {
            database: request.resource.to_string(),
            username: relation_user(relation_id).to_string(),
            password,
            endpoints,
            read_only_endpoints,
            read_only_uri,
            version: None,
            tls: Tls::default(),
            entity: None,
            prefix_databases: None,
        }
    }

    /// The same answer for an entity: its name and password (empty for a
    /// group, which cannot log in) instead of the relation's user.
    pub fn for_entity(self, kind: EntityKind, name: String, password: String) -> Answer {
        Answer {
            username: name,
            password,
            entity: Some(kind),
            ..self
        }
    }

    /// The same answer for a prefix request: the matching databases (its
    /// URIs name the first, or no database while none matches).
    pub fn with_prefix_databases(self, databases: Vec<String>) -> Answer {
        let first = databases.first().cloned().unwrap_or_default();
        Answer {
            read_only_uri: UriTarget {
                database: first,
                ..self.read_only_uri
            },
            prefix_databases: Some(databases),
            ..self
        }
    }

    /// The database the URIs name.
    fn uri_database(&self) -> &str {
        match &self.prefix_databases {
            Some(list) => list.first().map(String::as_str).unwrap_or(""),
            None => &self.database,
        }
    }

    /// The `user` group: user, password and URIs (the read-only one when asked).
    fn user_fields(&self, request: &Request) -> SecretContent {
        let (user, password) = (&self.username, &self.password);
        let mut fields = SecretContent::new()
            .with("username", user.as_str())
            .with("password", password.as_str())
            .with(
                "uris",
                uri(user, password, &self.endpoints, self.uri_database()),
            );
        if request.wants_secret("read-only-uris") {
            let ro = &self.read_only_uri;
            fields.insert(
                "read-only-uris",
                uri(user, password, &ro.hosts, &ro.database),
            );
        }
        fields
    }

    /// The `entity` group: the entity's name, and its password (a user's).
    fn entity_fields(&self) -> SecretContent {
        let mut fields = SecretContent::new().with("entity-name", self.username.as_str());
        if !self.password.is_empty() {
            fields.insert("entity-password", self.password.as_str());
        }
        fields
    }

    /// The group the credentials travel in (`user`, or `entity` for an
    /// entity), its content, and whether the client wants it as a secret.
    fn credentials(&self, request: &Request) -> (&'static str, SecretContent, bool) {
        match self.entity {
            Some(_) => (
                "entity",
                self.entity_fields(),
                request.wants_secret_entity(),
            ),
            None => (
                "user",
                self.user_fields(request),
                request.wants_secret_credentials(),
            ),
        }
    }

    /// The `tls` group. v0 writes Python's `True`/`False`; v1 reads JSON.
    fn tls_fields(&self, wire: &Wire) -> SecretContent {
        let flag = match (wire, self.tls.enabled) {
            (Wire::V0 { .. }, true) => "True",
            (Wire::V0 { .. }, false) => "False",
            (Wire::V1 { .. }, true) => "true",
            (Wire::V1 { .. }, false) => "false",
        };
        let mut fields = SecretContent::new().with("tls", flag);
        if let Some(ca) = self.tls.ca.as_ref().filter(|c| !c.is_empty()) {
            fields.insert("tls-ca", ca.as_str());
        }
        fields
    }
}

/// What the provider has told a client so far, read back from its own bag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// The endpoints handed out.
    pub endpoints: Option<String>,
    /// The read-only endpoints handed out.
    pub read_only_endpoints: Option<String>,
    /// The user secret handed out (`secret-user`).
    pub secret_user: Option<String>,
    /// The entity secret handed out (`secret-entity`).
    pub secret_entity: Option<String>,
    /// The TLS secret handed out (`secret-tls`).
    pub secret_tls: Option<String>,
    /// Whether credentials (a user's or an entity's) were handed out in the databag.
    pub password_in_bag: bool,
    /// The server version the client was told.
    pub version: Option<String>,
    /// The databases a prefix request was told of.
    pub prefix_databases: Option<String>,
}

impl Published {
    /// Whether the client has its credentials (or its entity's).
    pub fn has_credentials(&self) -> bool {
        self.secret_user.is_some() || self.secret_entity.is_some() || self.password_in_bag
    }
}

/// Reads what this application has published on a client relation, in either
/// wire version.
pub fn published(hook: &mut Hook<'_>, relation: &Relation) -> charm::Result<Published> {
    let bag = hook.local_app_bag(relation)?;
    if let Some(raw) = bag.get("requests") {
        let first = serde_json::from_str::<Vec<Value>>(raw)
            .ok()
            .and_then(|list| list.into_iter().next())
            .unwrap_or(Value::Null);
        let text = |k: &str| first.get(k).and_then(Value::as_str).map(str::to_string);
        return Ok(Published {
            endpoints: text("endpoints"),
            read_only_endpoints: text("read-only-endpoints"),
            secret_user: text("secret-user"),
            secret_entity: text("secret-entity"),
            secret_tls: text("secret-tls"),
            password_in_bag: false,
            version: text("version"),
            prefix_databases: text("prefix-resources"),
        });
    }
    Ok(Published {
        endpoints: bag.get("endpoints").cloned(),
        read_only_endpoints: bag.get("read-only-endpoints").cloned(),
        secret_user: bag.get("secret-user").cloned(),
        secret_entity: bag.get("secret-entity").cloned(),
        secret_tls: bag.get("secret-tls").cloned(),
        password_in_bag: bag.contains_key("password") || bag.contains_key("entity-name"),
        version: bag.get("version").cloned(),
        prefix_databases: bag.get("prefix-databases").cloned(),
    })
}

/// Leader: the password kept for a client, if any: in its relation's user
/// (or entity) secret or, from an answer written without secrets, in the
/// databag. An entity group has none.
pub fn kept_password(
    hook: &mut Hook<'_>,
    endpoint: &str,
    relation: &Relation,
) -> crate::Result<Option<String>> {
    for (group, key) in [("user", "password"), ("entity", "entity-password")] {
        let label = secret_label(endpoint, relation.id, group);
        if let Some(stored) = hook.secret_by_label(&label, Revision::Peek)? {
            return Ok(stored.get(key).map(str::to_string));
        }
    }
    let bag = hook.local_app_bag(relation)?;
    Ok(bag
        .get("password")
        .or_else(|| bag.get("entity-password"))
        .cloned())
}

/// Leader: the name of the entity created for a client relation, if one
/// was: from its entity secret, or the databag. Readable after the relation
/// broke, so that its role can be dropped.
pub fn kept_entity_name(
    hook: &mut Hook<'_>,
    endpoint: &str,
    relation_id: u64,
    relation: Option<&Relation>,
) -> crate::Result<Option<String>> {
    let label = secret_label(endpoint, relation_id, "entity");
    if let Some(stored) = hook.secret_by_label(&label, Revision::Peek)? {
        return Ok(stored.get("entity-name").map(str::to_string));
    }
    match relation {
        Some(r) => Ok(hook.local_app_bag(r)?.get("entity-name").cloned()),
        None => Ok(None),
    }
}

/// Leader: keeps a new client's credentials in its relation's user (or
/// entity) secret, owned by the application and granted to no one yet,
/// until [`publish`] hands them over (possibly hooks later); returns the
/// secret's id.
pub fn keep(
    hook: &mut Hook<'_>,
    endpoint: &str,
    relation: &Relation,
    request: &Request,
    answer: &Answer,
) -> crate::Result<SecretId> {
    let (group, content, _) = answer.credentials(request);
    let label = secret_label(endpoint, relation.id, group);
    let meta = SecretMeta {
        label: Some(label.clone()),
        ..SecretMeta::default()
    };
    // A new client has no secret yet; should one be there after all, it is
    // brought up to date instead.
    match hook.add_secret(&content, SecretOwner::Application, &meta) {
        Ok(id) => Ok(id),
        Err(_) => ensure_secret(hook, &label, &content, None),
    }
}

/// Leader: writes the answer to a request, creating, updating and granting
/// the relation's secrets as needed; only what changed reaches Juju. `kept`
/// is the credentials secret's id when the caller holds it from [`keep`]
/// (it saves a look-up).
pub fn publish(
    hook: &mut Hook<'_>,
    endpoint: &str,
    relation: &Relation,
    request: &Request,
    answer: &Answer,
    kept: Option<&SecretId>,
) -> crate::Result<()> {
    let before = published(hook, relation)?;
    let kept = kept.map(SecretId::to_string);
    let (group, credentials, as_secret) = answer.credentials(request);
    let tls = answer.tls_fields(&request.wire);
    // The groups the client reads from secrets (in v1, all), each granted to
    // it; the credentials secret also keeps the password when it is not
    // handed out.
    let label = secret_label(endpoint, relation.id, group);
    let handed_out = match group {
        "entity" => &before.secret_entity,
        _ => &before.secret_user,
    };
    let secret_credentials = if as_secret {
        Some(granted(
            hook,
            relation,
            &label,
            &credentials,
            handed_out,
            kept.as_deref(),
        )?)
    } else {
        ensure_secret(hook, &label, &credentials, kept.as_deref())?;
        None
    };
    let secret_key = format!("secret-{group}");
    let secret_tls = if request.wants_secret("tls") || request.wants_secret("tls-ca") {
        let tls_label = secret_label(endpoint, relation.id, "tls");
        Some(granted(
            hook,
            relation,
            &tls_label,
            &tls,
            &before.secret_tls,
            None,
        )?)
    } else {
        None
    };
    let prefix = answer.prefix_databases.as_ref().map(|list| list.join(","));
    let changes = match &request.wire {
        Wire::V0 { .. } => {
            let mut bag = BagChanges::new()
                .unset(STATUS)
                .set("database", answer.database.as_str())
                .set("endpoints", answer.endpoints.as_str())
                .set("read-only-endpoints", answer.read_only_endpoints.as_str())
                .set_or_unset("version", answer.version.clone())
                .set_or_unset("prefix-databases", prefix);
            // The requirer tells an entity's answer from a user's by the
            // provider's record of the request (`data`, a JSON map).
            if let Some(kind) = answer.entity {
                let data = json!({"database": answer.database, "entity-type": entity_type(kind)});
                bag = bag.set("data", data.to_string());
            }
            match secret_credentials {
                Some(id) => bag = bag.set(secret_key.as_str(), id),
                None => {
                    for (key, value) in credentials.iter() {
                        bag = bag.set(key.as_str(), value.as_str());
                    }
                }
            }
            match secret_tls {
                Some(id) => bag.set("secret-tls", id),
                None => bag
                    .set_or_unset("tls", tls.get("tls").map(str::to_string))
                    .set_or_unset("tls-ca", tls.get("tls-ca").map(str::to_string)),
            }
        }
        Wire::V1 { request_id, salt } => {
            let mut response = json!({
                "resource": answer.database,
                "request-id": request_id,
                "salt": salt,
                "endpoints": answer.endpoints,
                "read-only-endpoints": answer.read_only_endpoints,
                "secret-tls": secret_tls,
                "version": answer.version,
            });
            response[secret_key.as_str()] = json!(secret_credentials);
            if let Some(prefix) = prefix {
                response["prefix-resources"] = json!(prefix);
            }
            // The requirer diffs each response against the provider's record of
            // the request, keyed by its id; without it nothing fires.
            let data =
                json!({ request_id: v1_record(&answer.database, request_id, salt, answer.entity) });
            BagChanges::new()
                .unset(STATUS)
                .set("version", "v1")
                .set("requests", json!([response]).to_string())
                .set("data", data.to_string())
        }
    };
    hook.update_app_bag(relation, changes)?;
    Ok(())
}

/// The wire name of an entity kind.
fn entity_type(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "USER",
        EntityKind::Group => "GROUP",
    }
}

/// The provider's record of a v1 request, as the requirer reads it back.
fn v1_record(resource: &str, request_id: &str, salt: &str, entity: Option<EntityKind>) -> Value {
    let mut record = json!({
        "resource": resource,
        "request-id": request_id,
        "salt": salt,
    });
    if let Some(kind) = entity {
        record["entity-type"] = json!(entity_type(kind));
    }
    record
}

/// The relation's secret labelled `label` holds `content` and the client may
/// read it (granted unless the databag already hands it out); returns its id.
/// `kept` is its id when the caller knows it.
fn granted(
    hook: &mut Hook<'_>,
    relation: &Relation,
    label: &str,
    content: &SecretContent,
    handed_out: &Option<String>,
    kept: Option<&str>,
) -> crate::Result<String> {
    let id = ensure_secret(hook, label, content, handed_out.as_deref().or(kept))?;
    let id_text = id.to_string();
    if handed_out.as_deref() != Some(id_text.as_str()) {
        hook.grant_secret(&id, relation, None)?;
    }
    Ok(id_text)
}

/// Leader: tells a client why its request is refused (or not served yet),
/// where the published requirer libraries read a provider's statuses for
/// the relation: `status`, a JSON list of `code`, `message` and
/// `resolution` (fatal `5xxx`, transitory `4xxx`); hands out nothing. A v1
/// requirer reads statuses only beside a response to its request, so one
/// without credentials (its id, salt and resource) is written first when
/// none was.
pub fn refuse(hook: &mut Hook<'_>, relation: &Relation, refusal: &Refusal) -> crate::Result<()> {
    let status = json!([{
        "code": refusal.code(),
        "message": refusal.to_string(),
        "resolution": refusal.resolution(),
    }]);
    let mut changes = BagChanges::new().set(STATUS, status.to_string());
    let remote = hook.remote_app_bag(relation)?.clone();
    let answered = hook.local_app_bag(relation)?.contains_key("requests");
    if remote.get("version").map(String::as_str) == Some("v1") && !answered {
        let requests: Vec<Value> = remote
            .get("requests")
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or_default();
        let text = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut responses = Vec::new();
        let mut data = serde_json::Map::new();
        for request in requests.iter().filter(|r| r.get("request-id").is_some()) {
            let (id, salt) = (text(request, "request-id"), text(request, "salt"));
            let resource = match text(request, "resource") {
                r if r.is_empty() => text(request, "database"),
                r => r,
            };
            responses.push(json!({"resource": resource, "request-id": id, "salt": salt}));
            data.insert(id.clone(), v1_record(&resource, &id, &salt, None));
        }
        if !responses.is_empty() {
            changes = changes
                .set("version", "v1")
                .set("requests", Value::Array(responses).to_string())
                .set("data", Value::Object(data).to_string());
        }
    }
    hook.update_app_bag(relation, changes)?;
    Ok(())
}

/// Leader: the refusal this application last told a client on the relation
/// (its `status`), as `(code, message)`.
pub fn told_refusal(
    hook: &mut Hook<'_>,
    relation: &Relation,
) -> charm::Result<Option<(u32, String)>> {
    let Some(raw) = hook.local_app_bag(relation)?.get(STATUS) else {
        return Ok(None);
    };
    let list: Vec<Value> = serde_json::from_str(raw).unwrap_or_default();
    Ok(list.first().and_then(|s| {
        let code = s.get("code")?.as_u64()?;
        let message = s.get("message")?.as_str()?;
        Some((u32::try_from(code).ok()?, message.to_string()))
    }))
}

/// Leader: removes a gone relation's secrets (user, entity and TLS), if any.
pub fn remove_secrets(hook: &mut Hook<'_>, endpoint: &str, relation_id: u64) -> charm::Result<()> {
    for group in ["user", "entity", "tls"] {
        let label = secret_label(endpoint, relation_id, group);
        if let Ok(Some(id)) = hook.secret_info(&SecretRef::Label(label)).map(|i| i.id) {
            hook.remove_secret(&id, None)?;
        }
    }
    Ok(())
}

/// The secret with this label holds `content`: created (owned by the
/// application) when missing, given a new revision only when it differs.
/// `known` is its id when the databag already carries it (saves a look-up).
fn ensure_secret(
    hook: &mut Hook<'_>,
    label: &str,
    content: &SecretContent,
    known: Option<&str>,
) -> crate::Result<SecretId> {
    match hook.secret_by_label(label, Revision::Peek)? {
        Some(stored) => {
            let id = match known.map(SecretId::parse) {
                Some(Ok(id)) => id,
                _ => hook
                    .secret_info(&SecretRef::Label(label.to_string()))?
                    .id
                    .ok_or_else(|| crate::Error::NoSecretId(label.to_string()))?,
            };
            if stored != *content {
                hook.set_secret(&id, Some(content), &SecretMeta::default())?;
            }
            Ok(id)
        }
        None => {
            let meta = SecretMeta {
                label: Some(label.to_string()),
                ..SecretMeta::default()
            };
            Ok(hook.add_secret(content, SecretOwner::Application, &meta)?)
        }
    }
}
