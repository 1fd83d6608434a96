//! The charm's state as Juju holds it: relation names and databag keys, and the
//! readers that turn databags and secrets into domain values. Nothing here writes.

use crate::pgb::ini::ClientDatabase;
use crate::pgb::{PgbVersion, SharedConfig};
use crate::postgres::backend_login;
use charm::secret::Revision;
use charm::{Databag, Hook, Relation, SecretContent};
use client_interface::request::{self, EntityKind, Refusal, Request, Resource};
use client_interface::requirer::{self, Answered};
use client_interface::Endpoint;
use postgres_admin::names::{Attribute, RoleName};
use postgres_admin::ConnectInfo;
use sha2::{Digest, Sha256};
use tls_certificates::UnitTls;

/// The client endpoint (`postgresql_client`, provides).
pub const DATABASE: &str = "database";
/// The legacy client endpoints (`pgsql`, provides).
pub use client_interface::pgsql::{DB, DB_ADMIN};
/// The PostgreSQL endpoint (`postgresql_client`, requires).
pub const BACKEND: &str = "backend-database";
/// The peer endpoint.
pub const PEERS: &str = "pgb-peers";
/// The TLS endpoint (`tls-certificates`, requires).
pub const CERTIFICATES: &str = "certificates";

/// Peer application bag: the shared configuration, written by the leader.
pub const CFG_FILE: &str = "cfg_file";
/// Peer application bag: the leader's address.
pub const LEADER_HOSTNAME: &str = "leader_hostname";
/// Peer application bag: the leader's record of client relations ([`Clients`]).
pub const CLIENTS: &str = "clients";
/// Peer application bag: the backend's other databases, for the wildcard's
/// read-only entries (a sorted JSON list of names).
pub const READONLY_DBS: &str = "readonly_dbs";
/// Peer application bag: the identity (`system_identifier`) of the backend
/// cluster the leader last set up: users, databases and auth function.
pub const BACKEND_CLUSTER: &str = "backend_cluster";
/// Peer unit bag: the unit's address.
pub const HOSTNAME: &str = "hostname";
/// Peer unit bag: how many PgBouncer processes the unit runs.
pub const PROCESSES: &str = "processes";
/// Peer unit bag: the PgBouncer version the unit runs.
pub const PGB_VERSION: &str = "pgbouncer_version";
/// Peer unit bag: the digest of the `cfg_file` the unit serves (its acknowledgement).
pub const SERVING: &str = "cfg_hash";
/// Peer unit bag: the CA bundle of the certificate the unit serves clients
/// with; empty without TLS.
pub const TLS_CA: &str = "tls_ca";

/// `backend-database`, each unit's bag: `true`, the unit pauses its pools
/// for a planned switchover.
pub const PAUSE_ON_SWITCHOVER: &str = "pause-on-switchover";
/// `backend-database`, a PostgreSQL unit's bag: the switchover it waits to
/// make (JSON: `id`, `candidate`, `primary`, `deadline`).
pub const SWITCHOVER_REQUEST: &str = "switchover-request";
/// `backend-database`, each unit's bag: the id of the request its pools are
/// paused for (its acknowledgement).
pub const SWITCHOVER_PAUSED: &str = "switchover-paused";
/// `backend-database`, each unit's bag: the endpoint of the primary the
/// paused unit waits to serve before it resumes.
pub const SWITCHOVER_PRIMARY: &str = "switchover-primary";

/// Keys of the application secret `pgb-peers.<app>.app`.
pub const AUTH_FILE: &str = "auth-file";
pub const AUTH_USER: &str = "auth-user";
/// The auth user of a backend relation that ended: dropped from the next
/// backend set up (on the same cluster, nothing logs in as it any more).
pub const FORMER_AUTH_USER: &str = "former-auth-user";
pub const ADMIN_PASSWORD: &str = "admin-password";
pub const MONITORING_PASSWORD: &str = "monitoring-password";

/// The application secret's label.
pub fn app_secret_label(app: &str) -> String {
    format!("{PEERS}.{app}.app")
}

/// The unit secret's label.
pub fn unit_secret_label(app: &str) -> String {
    format!("{PEERS}.{app}.unit")
}

/// The peer-unit-bag flag that says this unit is leaving a relation.
pub fn departing_key(relation: &Relation) -> String {
    format!("{}_{}_departing", relation.endpoint, relation.id)
}

/// The digest units acknowledge a `cfg_file` by.
pub fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The peer relation, once Juju has created it.
pub fn peers(hook: &mut Hook<'_>) -> charm::Result<Option<Relation>> {
    Ok(hook.relations(PEERS)?.into_iter().next())
}

/// The backend relation as far as it has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub relation: Relation,
    /// How the charm logs in to the primary (`Debug` hides the password).
    pub login: ConnectInfo,
    pub primary: Endpoint,
    pub read_only: Vec<Endpoint>,
    pub version: Option<String>,
    /// The CA PgBouncer verifies the backend's certificate with, when the
    /// backend says it serves TLS and gives one.
    pub tls_ca: Option<String>,
}

impl Backend {
    /// The role PgBouncer logs in as for its auth query.
    pub fn auth_user(&self) -> Result<RoleName, postgres_admin::names::NameError> {
        RoleName::parse(&format!(
            "pgbouncer_auth_{}",
            self.login.user.replace('-', "_")
        ))
    }
}

/// Why the backend relation cannot be used yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendState {
    /// No `backend-database` relation.
    Missing,
    /// Related, but PostgreSQL has not published everything (or published something unusable).
    Incomplete(String),
    Ready(Box<Backend>),
}

/// Reads the backend relation: endpoints and credentials (from the `secret-user`
/// secret, or the databag when the backend does not use secrets).
pub fn backend(hook: &mut Hook<'_>) -> charm::Result<BackendState> {
    let Some(relation) = hook.relations(BACKEND)?.into_iter().next() else {
        return Ok(BackendState::Missing);
    };
    // Listed first: a unit's name also tells the remote application, which
    // saves asking Juju for it (see `backend_gone`).
    hook.relation_units(&relation)?;
    let credentials = match requirer::answer(hook, BACKEND, &relation)? {
        Answered::Waiting(why) => return Ok(BackendState::Incomplete(why)),
        Answered::Ready(c) => c,
    };
    let primary = credentials.endpoints[0].clone();
    let backend = Backend {
        relation,
        login: backend_login(&primary, &credentials),
        primary,
        read_only: credentials.read_only,
        version: credentials.version,
        tls_ca: credentials.tls.ca.filter(|_| credentials.tls.enabled),
    };
    if let Err(e) = backend.auth_user() {
        return Ok(BackendState::Incomplete(format!(
            "PostgreSQL published an unusable user: {e}"
        )));
    }
    Ok(BackendState::Ready(Box::new(backend)))
}

/// Why a related backend cannot serve whatever its data says: no PostgreSQL
/// unit is left in the relation (its units were removed, or have not joined).
pub fn backend_gone(hook: &mut Hook<'_>) -> charm::Result<Option<String>> {
    let Some(relation) = hook.relations(BACKEND)?.into_iter().next() else {
        return Ok(None);
    };
    if !hook.relation_units(&relation)?.is_empty() {
        return Ok(None);
    }
    let app = hook.remote_app(&relation)?;
    Ok(Some(format!("waiting for the backend: {app} has no units")))
}

/// The identity of the backend cluster the leader last set up, if recorded.
pub fn backend_cluster(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Option<String>> {
    Ok(hook
        .local_app_bag(peers)?
        .get(BACKEND_CLUSTER)
        .filter(|v| !v.is_empty())
        .cloned())
}

/// The application secret's content, when the leader has created it.
pub fn app_secret(hook: &mut Hook<'_>) -> charm::Result<Option<SecretContent>> {
    let label = app_secret_label(hook.app());
    hook.secret_by_label(&label, Revision::Refresh)
}

/// Reads a client's request (`Ok(None)` until it asks), with PgBouncer's own
/// rules on top of the interface's: what it hands out must log in through
/// its endpoints, so no superuser (the auth query never looks one up), no
/// GROUP entity (a group cannot log in: there is nothing to pool), and no
/// prefix request (PgBouncer serves the databases its configuration names,
/// one per client); its admin console's name is no database. PostgreSQL
/// serves all of these on its own endpoints.
pub fn client_request(remote: &Databag, relation_id: u64) -> Result<Option<Request>, Refusal> {
    let request = request::parse(remote, relation_id)?;
    let Some(r) = &request else {
        return Ok(None);
    };
    if r.roles.attributes().contains(&Attribute::Superuser) {
        return Err(Refusal::Roles {
            relation_id,
            detail: "SUPERUSER: a superuser cannot log in through PgBouncer; relate the \
                     application to PostgreSQL directly for one"
                .into(),
        });
    }
    if r.entity
        .as_ref()
        .is_some_and(|e| e.kind == EntityKind::Group)
    {
        return Err(Refusal::NotHere {
            relation_id,
            detail: format!(
                "{PGBOUNCER_GROUP}; relate the application to PostgreSQL directly for one"
            ),
        });
    }
    if let Resource::Prefix(prefix) = &r.resource {
        return Err(Refusal::NotHere {
            relation_id,
            detail: format!(
                "{PGBOUNCER_PREFIX} ({prefix}); relate the application to PostgreSQL directly \
                 for one"
            ),
        });
    }
    if let Some(db) = r.database().filter(|db| db.is_pgbouncer_console()) {
        return Err(Refusal::Database {
            relation_id,
            detail: format!(
                "invalid database name {:?}: PgBouncer keeps it for its admin console",
                db.as_str()
            ),
        });
    }
    Ok(request)
}

/// Why PgBouncer does not serve a prefix request.
pub const PGBOUNCER_PREFIX: &str =
    "PgBouncer pools the one database it names for a client, not every database of a prefix";

/// Why PgBouncer does not serve a GROUP entity.
pub const PGBOUNCER_GROUP: &str =
    "an entity GROUP cannot log in, so PgBouncer has nothing to pool for it";

/// What the leader knows of one client relation.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientEntry {
    /// The database created for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Whether it asked for privileges that reach every database.
    #[serde(default)]
    pub privileged: bool,
    /// Why its request was refused (or waits: a transitory refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Whether the refusal is transitory (the client has only to finish
    /// what it started, such as granting its entity secret).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
    /// The id of its user secret, where its password is kept (granted to the
    /// client at the hand-over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The endpoints it was last given (`<rw> <ro>`); `None` until its
    /// credentials are handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// The digest of the TLS fields it was last given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// The legacy endpoint (`db`, `db-admin`) of a `pgsql` client; none
    /// for a `database` client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<String>,
    /// A legacy client's `extensions`, as it asked for them and the leader
    /// found them in its database (echoed back to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<String>,
}

impl ClientEntry {
    /// The endpoint of the client's relation.
    pub fn endpoint(&self) -> &str {
        self.legacy.as_deref().unwrap_or(DATABASE)
    }
}

/// A legacy client's backend user, as the reference charm names it:
/// `<app>_user_<relation id>_<model>`, every `-` made `_`. A name longer
/// than PostgreSQL's 63 bytes keeps its first 54 and ends with `_` and 8 hex
/// digits of its digest, so it stays unique instead of being cut short by
/// the server.
pub fn legacy_user(
    app: &str,
    relation_id: u64,
    model: &str,
) -> Result<RoleName, postgres_admin::NameError> {
    let full = format!("{app}_user_{relation_id}_{model}").replace('-', "_");
    let max = postgres_admin::names::MAX_ROLE_NAME;
    if full.len() <= max {
        return RoleName::parse(&full);
    }
    let hash = digest(&full);
    RoleName::parse(&format!("{}_{}", &full[..max - 9], &hash[..8]))
}

/// The backend user of a client relation: `relation_id_<id>` for a
/// `database` client, [`legacy_user`] for a legacy one.
pub fn client_user(
    hook: &Hook<'_>,
    relation_id: u64,
    entry: &ClientEntry,
) -> Result<RoleName, postgres_admin::NameError> {
    match entry.legacy {
        None => Ok(client_interface::provider::relation_user(relation_id)),
        Some(_) => legacy_user(hook.app(), relation_id, &hook.context().model_name),
    }
}

/// Client relations by id. Kept in the peer application bag so that a hook reads
/// one databag, not every client relation, and so that a new leader inherits it.
pub type Clients = std::collections::BTreeMap<u64, ClientEntry>;

/// Every record, live or not, as the peer application bag holds it.
fn all_clients(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Clients> {
    match hook.local_app_bag(peers)?.get(CLIENTS) {
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            anyhow::anyhow!("the {CLIENTS} record in the peer databag is not valid: {e}")
        }),
        None => Ok(Clients::new()),
    }
}

/// The ids of the live client relations among those `records` name: the
/// legacy endpoints are asked about only when a record is a legacy client's,
/// which saves two hook-tool calls in every hook of a model without one.
fn live_relations(
    hook: &mut Hook<'_>,
    records: &Clients,
) -> charm::Result<std::collections::BTreeSet<u64>> {
    let mut endpoints = vec![DATABASE];
    if records.values().any(|c| c.legacy.is_some()) {
        endpoints.extend([DB, DB_ADMIN]);
    }
    let mut live = std::collections::BTreeSet::new();
    for endpoint in endpoints {
        live.extend(hook.relations(endpoint)?.iter().map(|r| r.id));
    }
    Ok(live)
}

/// The clients of live relations (entries of relations that are gone are left out).
pub fn clients(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Clients> {
    let mut map = all_clients(hook, peers)?;
    let live = live_relations(hook, &map)?;
    map.retain(|id, _| live.contains(id));
    Ok(map)
}

/// The records of client relations that are gone but whose user the leader
/// has not removed yet (the backend was down, or another unit led when the
/// relation broke).
pub fn departed_clients(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Clients> {
    let mut map = all_clients(hook, peers)?;
    let live = live_relations(hook, &map)?;
    map.retain(|id, _| !live.contains(id));
    Ok(map)
}

/// Leader: writes the record of the live clients (only what changed reaches
/// Juju). Records of departed relations stay until [`forget_client`].
pub fn save_clients(
    hook: &mut Hook<'_>,
    peers: &Relation,
    clients: &Clients,
) -> anyhow::Result<()> {
    let mut all = departed_clients(hook, peers)?;
    all.extend(clients.iter().map(|(id, c)| (*id, c.clone())));
    let json = serde_json::to_string(&all)?;
    hook.update_app_bag(peers, [(CLIENTS.to_string(), Some(json))])?;
    Ok(())
}

/// Leader: drops a departed relation's record, once its user is gone.
pub fn forget_client(
    hook: &mut Hook<'_>,
    peers: &Relation,
    relation_id: u64,
) -> anyhow::Result<()> {
    let mut all = all_clients(hook, peers)?;
    if all.remove(&relation_id).is_some() {
        let json = serde_json::to_string(&all)?;
        hook.update_app_bag(peers, [(CLIENTS.to_string(), Some(json))])?;
    }
    Ok(())
}

/// The client databases this application has created.
pub fn client_databases(hook: &mut Hook<'_>) -> anyhow::Result<Vec<ClientDatabase>> {
    let Some(peers) = peers(hook)? else {
        return Ok(Vec::new());
    };
    Ok(clients(hook, &peers)?
        .into_iter()
        .filter_map(|(relation_id, c)| {
            c.database.map(|name| ClientDatabase {
                relation_id,
                name,
                privileged: c.privileged,
            })
        })
        .collect())
}

/// One peer unit's published state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUnit {
    pub name: String,
    pub hostname: Option<String>,
    pub processes: Option<u32>,
    pub serving: Option<String>,
    /// The CA bundle it serves clients with (empty: no TLS).
    pub tls_ca: Option<String>,
    /// The PgBouncer version it runs.
    pub version: Option<PgbVersion>,
}

/// The other units in the peer relation.
pub fn peer_units(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Vec<PeerUnit>> {
    let mut out = Vec::new();
    for name in hook.relation_units(peers)? {
        let bag = hook.bag(peers, &charm::Bag::Unit(name.clone()))?;
        out.push(PeerUnit {
            hostname: bag.get(HOSTNAME).cloned(),
            processes: bag.get(PROCESSES).and_then(|p| p.parse().ok()),
            serving: bag.get(SERVING).cloned(),
            tls_ca: bag.get(TLS_CA).cloned(),
            version: bag.get(PGB_VERSION).and_then(|v| PgbVersion::parse(v)),
            name,
        });
    }
    Ok(out)
}

/// Reads the unit secret.
pub fn unit_tls(hook: &mut Hook<'_>) -> charm::Result<UnitTls> {
    let label = unit_secret_label(hook.app());
    let Some(c) = hook.secret_by_label(&label, Revision::Peek)? else {
        return Ok(UnitTls::default());
    };
    Ok(UnitTls::read(|k| c.get(k).map(str::to_string)))
}

/// The backend's other databases the leader recorded (`readonly_dbs`).
pub fn readonly_dbs(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Vec<String>> {
    Ok(hook
        .local_app_bag(peers)?
        .get(READONLY_DBS)
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default())
}

/// The shared configuration the leader published, if it is valid.
pub fn published_config(
    hook: &mut Hook<'_>,
    peers: &Relation,
) -> charm::Result<Option<SharedConfig>> {
    Ok(hook
        .local_app_bag(peers)?
        .get(CFG_FILE)
        .and_then(|text| SharedConfig::parse(text).ok()))
}

/// The PgBouncer version this unit recorded.
pub fn recorded_version(
    hook: &mut Hook<'_>,
    peers: &Relation,
) -> charm::Result<Option<PgbVersion>> {
    Ok(hook
        .local_unit_bag(peers)?
        .get(PGB_VERSION)
        .and_then(|v| PgbVersion::parse(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_users_are_named_as_the_reference_charm_names_them() {
        assert_eq!(
            legacy_user("pgbouncer-k8s", 7, "my-model")
                .unwrap()
                .as_str(),
            "pgbouncer_k8s_user_7_my_model"
        );
        let long = legacy_user("pgbouncer-k8s", 12, &"m".repeat(50)).unwrap();
        assert_eq!(long.as_str().len(), 63);
        assert!(long.as_str().starts_with("pgbouncer_k8s_user_12_mmm"));
        let other = legacy_user("pgbouncer-k8s", 12, &"m".repeat(51)).unwrap();
        assert_ne!(long, other, "kept apart by the digest");
    }

    #[test]
    fn digests_are_stable_and_short() {
        assert_eq!(digest("x"), digest("x"));
        assert_ne!(digest("x"), digest("y"));
        assert_eq!(digest("").len(), 32);
    }
}
