//! The charm's state as Juju holds it: relation names, databag keys, secret
//! labels, and the readers that turn them into domain values.

use charm::secret::Revision;
use charm::{Hook, Relation, SecretContent};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tls_certificates::UnitTls;

/// The peer endpoint.
pub const PEERS: &str = "database-peers";
/// The client endpoint (`postgresql_client`, provides).
pub const DATABASE: &str = "database";
/// The DCS endpoint (`etcd`, requires, optional).
pub const ETCD: &str = "etcd";
/// The TLS endpoint (`tls-certificates` v4, requires, optional).
pub const CERTIFICATES: &str = "certificates";
/// The operator CA endpoint (`certificate_transfer`, requires, optional).
pub const RECEIVE_CA: &str = "receive-ca-cert";

/// Peer application bag: the cluster members' addresses, a JSON array (leader writes).
pub const ENDPOINTS: &str = "endpoints";
/// Peer application bag: `"True"` once the leader has initialised the cluster.
pub const CLUSTER_INITIALISED: &str = "cluster_initialised";
/// Peer unit bag: the unit's address.
pub const ADDRESS: &str = "private-address";
/// Peer unit bag: `"enabled"` when the unit's PostgreSQL runs with TLS.
pub const TLS: &str = "tls";
/// Peer unit bag: where this unit's pgBackRest TLS server listens
/// (`address:port`), absent when it runs none.
pub const BACKUP_SERVER: &str = "pgbackrest-server";
/// Peer unit bag: the CA bundle this unit's PostgreSQL serves TLS with,
/// written with [`TLS`] (absent without TLS).
pub const TLS_CA: &str = "tls-ca";
/// Peer application bag: the digest of what clients were last told about TLS
/// (leader writes); its change has every client's answer rewritten.
pub const CLIENTS_TLS: &str = "clients-tls";
/// Peer unit bag: `"True"` when this unit is leaving the client relations.
pub const DEPARTING: &str = "departing";
/// Peer unit bag: when this unit's member last reported a role change (the
/// notice's last repeat); its change wakes the leader.
pub const ROLE_CHANGED: &str = "role-changed";
/// Peer unit bag: the labels (JSON) the member last set on its own pod, on
/// Kubernetes.
pub const POD_LABELS: &str = "pod-labels";
/// Peer application bag: the member that leads the cluster, as the leader
/// last saw it; its change wakes every unit to name its new role.
pub const PRIMARY: &str = "primary";
/// Peer application bag: the cluster's generation (a number, leader writes);
/// absent for the first cluster of a deployment made before generations.
pub const GENERATION: &str = "cluster-generation";
/// Peer application bag: why the leader is bootstrapping a new cluster
/// generation (`lost`, `interrupted-bootstrap`, `abandoned`), until it is
/// initialised.
pub const NEW_CLUSTER: &str = "new-cluster";
/// Peer unit bag: the Patroni scope this unit's member belongs to, written
/// once the member has started in it.
pub const MEMBER_OF: &str = "member-of";
/// Peer application bag: why legacy (`db`, `db-admin`) relations are not
/// served, a JSON object from relation id to the status text (leader writes).
pub const LEGACY_REFUSALS: &str = "legacy-refusals";
/// Peer bags: the pgBackRest stanza the backup repository holds for this
/// cluster, once it is ready (the primary's unit reports it; the leader
/// records it for the application, and WAL is archived to it from then on).
pub const STANZA: &str = "stanza";
/// Peer bags: why the backup repository cannot be used, fit for a status
/// (the unit that found it reports it; the leader records the primary's).
pub const S3_PROBLEM: &str = "s3-initialization-block-message";
/// Peer application bag (leader): why the last `restore` failed, fit for a
/// status; Patroni stays stopped until a restore succeeds.
pub const RESTORE_FAILED: &str = "restore-failed";
/// Peer application bag (leader): where the data directory was moved aside
/// by a `restore` that has not succeeded yet (kept, never deleted).
pub const RESTORE_ASIDE: &str = "restore-moved-aside";
/// Peer application bag (leader): a restore scheduled on a cluster of
/// several units (JSON: its `id`, `target`, `stanza` and whether the stanza
/// is this cluster's `own`), until the leader has run it.
pub const RESTORE_REQUEST: &str = "restore-request";
/// Peer unit bag: the id of the scheduled restore this unit stopped its
/// member (and moved its data aside) for.
pub const RESTORE_STOPPED: &str = "restore-stopped";
/// `database`, a client's unit bag: `true` when the unit pauses its pools
/// for a planned switchover.
pub const PAUSE_ON_SWITCHOVER: &str = "pause-on-switchover";
/// `database`, the candidate's unit bag: the switchover it waits to make.
pub const SWITCHOVER_REQUEST: &str = "switchover-request";
/// `database`, a client's unit bag: the id of the request it paused for.
pub const SWITCHOVER_PAUSED: &str = "switchover-paused";

/// Peer application bag: the rolling restart as the leader records it (a
/// JSON object: the `generation`, the `grant`ed `unit` and its `step`,
/// `restart` or `switchover`, how many members were `restarted` of the
/// `total`, and why it is halted, if it is).
pub const ROLLING_RESTART: &str = "rolling-restart";
/// Peer unit bag: `"true"` while this unit's PostgreSQL waits for a restart.
pub const RESTART_PENDING: &str = "restart-pending";
/// Peer unit bag: the last rolling-restart step this unit carried out (a
/// JSON object: its `generation`, and `ok`, whether its member runs after).
pub const RESTART_DONE: &str = "restart-done";
/// Peer unit bag: `"on"` or `"off"` while this unit's running PostgreSQL
/// waits for its turn in the rolling restart to turn TLS so ([`TLS`] says
/// how it runs until then).
pub const TLS_RESTART: &str = "tls-restart";

/// The charm's superuser.
/// Peer application key: the plugins' extensions and the databases they were
/// last brought to in full (a new pass runs when either differs).
pub const EXTENSIONS_APPLIED: &str = "extensions-applied";
/// Peer application key: why the last extensions pass could not finish (the
/// leader's status shows it).
pub const EXTENSIONS_BLOCKED: &str = "extensions-blocked";

pub const OPERATOR: &str = "operator";
pub const REPLICATION: &str = "replication";
pub const REWIND: &str = "rewind";
pub const MONITORING: &str = "monitoring";
/// The user of Patroni's REST API.
pub const PATRONI: &str = "patroni";
/// The users whose passwords live in the application secret.
pub const SECRET_USERS: [&str; 5] = [OPERATOR, REPLICATION, REWIND, MONITORING, PATRONI];
/// The users `set-password` may change.
pub const SETTABLE_USERS: [&str; 4] = [OPERATOR, REPLICATION, REWIND, MONITORING];

/// The application secret's key for a user's password.
pub fn password_key(user: &str) -> String {
    format!("{user}-password")
}

/// The application secret's label.
pub fn app_secret_label(app: &str) -> String {
    format!("{PEERS}.{app}.app")
}

/// The unit secret's label (TLS material: `key`, `csr`, `cert`, `cauth`,
/// `chain`, and `ca-<app>` for each operator CA received).
pub fn unit_secret_label(app: &str) -> String {
    format!("{PEERS}.{app}.unit")
}

/// The Patroni scope of an application's cluster: `patroni-<app>` for a
/// deployment without a recorded generation (as before generations),
/// `patroni-<app>-gen<n>` for generation `n`.
pub fn cluster_name(app: &str, generation: Option<u32>) -> String {
    match generation {
        None => format!("patroni-{app}"),
        Some(n) => format!("patroni-{app}-gen{n}"),
    }
}

/// A unit's Patroni member name (its pod name on Kubernetes): `app/3` → `app-3`.
pub fn member_name(unit: &str) -> String {
    unit.replace('/', "-")
}

/// The unit a Patroni member name stands for: `app-3` → `app/3`.
pub fn unit_of_member(member: &str) -> String {
    match member.rsplit_once('-') {
        Some((app, n)) => format!("{app}/{n}"),
        None => member.to_string(),
    }
}

/// The peer relation, once Juju has created it.
pub fn peers(hook: &mut Hook<'_>) -> charm::Result<Option<Relation>> {
    Ok(hook.relations(PEERS)?.into_iter().next())
}

/// The cluster members' addresses from the peer application bag.
pub fn members(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Vec<String>> {
    match hook.local_app_bag(peers)?.get(ENDPOINTS) {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_str(raw)
            .map_err(|e| anyhow::anyhow!("the peer {ENDPOINTS} list is not a JSON array: {e}")),
    }
}

/// Leader: writes the members' addresses.
pub fn save_members(
    hook: &mut Hook<'_>,
    peers: &Relation,
    members: &[String],
) -> anyhow::Result<()> {
    let json = serde_json::to_string(members)?;
    hook.update_app_bag(peers, [(ENDPOINTS.to_string(), Some(json))])?;
    Ok(())
}

/// Whether the leader has initialised the cluster.
pub fn initialised(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<bool> {
    Ok(hook.local_app_bag(peers)?.contains_key(CLUSTER_INITIALISED))
}

/// The cluster's generation, when one is recorded.
pub fn generation(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Option<u32>> {
    match hook.local_app_bag(peers)?.get(GENERATION) {
        None => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("the peer {GENERATION} {raw:?} is not a whole number")),
    }
}

/// Why legacy relations are not served, by relation id (gone relations'
/// entries included until the leader forgets them).
pub fn legacy_refusals(
    hook: &mut Hook<'_>,
    peers: &Relation,
) -> anyhow::Result<BTreeMap<u64, String>> {
    match hook.local_app_bag(peers)?.get(LEGACY_REFUSALS) {
        None => Ok(BTreeMap::new()),
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            anyhow::anyhow!("the peer {LEGACY_REFUSALS} record is not a JSON object: {e}")
        }),
    }
}

/// Leader: writes why legacy relations are not served (none: the key goes).
pub fn save_legacy_refusals(
    hook: &mut Hook<'_>,
    peers: &Relation,
    refusals: &BTreeMap<u64, String>,
) -> anyhow::Result<()> {
    let value = match refusals.is_empty() {
        true => None,
        false => Some(serde_json::to_string(refusals)?),
    };
    hook.update_app_bag(peers, [(LEGACY_REFUSALS.to_string(), value)])?;
    Ok(())
}

/// The Patroni scope of the current cluster generation.
pub fn scope(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<String> {
    let generation = generation(hook, peers)?;
    Ok(cluster_name(hook.app(), generation))
}

/// Why the leader is bootstrapping a new cluster generation, while it is.
pub fn new_cluster(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Option<String>> {
    Ok(hook.local_app_bag(peers)?.get(NEW_CLUSTER).cloned())
}

/// Another unit of the application, as the peer relation shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUnit {
    pub name: String,
    /// Its address, once it has published it.
    pub address: Option<String>,
    /// The scope its member has started in ([`MEMBER_OF`]).
    pub member_of: Option<String>,
}

/// The other units in the peer relation.
pub fn peer_units(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Vec<PeerUnit>> {
    let mut out = Vec::new();
    for name in hook.relation_units(peers)? {
        let bag = hook.bag(peers, &charm::Bag::Unit(name.clone()))?;
        out.push(PeerUnit {
            address: bag.get(ADDRESS).filter(|a| !a.is_empty()).cloned(),
            member_of: bag.get(MEMBER_OF).filter(|s| !s.is_empty()).cloned(),
            name,
        });
    }
    Ok(out)
}

/// The system users' passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct Passwords(SecretContent);

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords(<redacted>)")
    }
}

impl From<SecretContent> for Passwords {
    fn from(content: SecretContent) -> Passwords {
        Passwords(content)
    }
}

impl Passwords {
    /// The password of one of [`SECRET_USERS`].
    pub fn get(&self, user: &str) -> &str {
        self.0.get(&password_key(user)).unwrap_or_default()
    }
}

/// The application secret's content, when the leader has created it.
pub fn app_secret(hook: &mut Hook<'_>) -> charm::Result<Option<SecretContent>> {
    let label = app_secret_label(hook.app());
    hook.secret_by_label(&label, Revision::Refresh)
}

/// The system users' passwords, once every one of them exists.
pub fn passwords(hook: &mut Hook<'_>) -> charm::Result<Option<Passwords>> {
    Ok(app_secret(hook)?
        .filter(|c| {
            SECRET_USERS
                .iter()
                .all(|u| c.get(&password_key(u)).is_some())
        })
        .map(Passwords))
}

/// The unit secret's prefix of an operator CA received from application `app`.
pub fn received_ca_key(app: &str) -> String {
    format!("ca-{app}")
}

/// This unit's secret: its certificate's state, and the operator CAs it
/// received (`receive-ca-cert`), by secret key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitSecret {
    pub tls: UnitTls,
    pub received: BTreeMap<String, String>,
}

impl UnitSecret {
    /// The secret's content.
    pub fn content(&self) -> SecretContent {
        let mut c: SecretContent = self
            .tls
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (k, v) in &self.received {
            c.insert(k.as_str(), v.as_str());
        }
        c
    }

    /// What PostgreSQL and Patroni's API serve with, when a certificate for
    /// the key is installed: the CA file holds the certificate's CA bundle
    /// and every operator CA received (the CAs client certificates and the
    /// API's peers are checked against).
    pub fn material(&self) -> Option<TlsMaterial> {
        let files = self.tls.files()?;
        let mut ca = vec![files.ca.trim().to_string()];
        ca.extend(self.received.values().map(|c| c.trim().to_string()));
        ca.dedup();
        Some(TlsMaterial {
            key: files.key,
            cert: files.cert,
            ca: ca.join("\n"),
        })
    }
}

/// Reads this unit's secret (empty when it does not exist yet).
pub fn unit_secret(hook: &mut Hook<'_>) -> charm::Result<UnitSecret> {
    let label = unit_secret_label(hook.app());
    let Some(c) = hook.secret_by_label(&label, Revision::Peek)? else {
        return Ok(UnitSecret::default());
    };
    let received = c
        .iter()
        .filter(|(k, v)| k.starts_with("ca-") && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(UnitSecret {
        tls: UnitTls::read(|k| c.get(k).map(str::to_string)),
        received,
    })
}

/// TLS material for PostgreSQL and Patroni's API.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    pub key: String,
    pub cert: String,
    /// The CA file's content.
    pub ca: String,
}

/// The TLS material in this unit's secret, when its key and an installed
/// certificate are there (TLS is on exactly then).
pub fn tls_material(hook: &mut Hook<'_>) -> charm::Result<Option<TlsMaterial>> {
    Ok(unit_secret(hook)?.material())
}

/// The digest of a text, 32 hex digits (SHA-256's first half).
pub fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_and_unit_names_map_both_ways() {
        assert_eq!(member_name("postgresql-k8s/2"), "postgresql-k8s-2");
        assert_eq!(unit_of_member("postgresql-k8s-2"), "postgresql-k8s/2");
        assert_eq!(cluster_name("pg", None), "patroni-pg");
        assert_eq!(cluster_name("pg", Some(2)), "patroni-pg-gen2");
    }
}
