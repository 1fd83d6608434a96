//! Taking over a deployment of the reference charm: the application was
//! upgraded in place from Canonical's `pgbouncer-k8s`, whose state differs
//! from ours in the peer relation (the `pgb_dbs_config` map instead of our
//! `clients` record, a few keys of its own in every bag, the application
//! secret behind a URI in the bag for old revisions) and in where a client's
//! password is kept (in the relation's bag, or in the peer bag for old
//! revisions, where ours keeps it in the relation's user secret).
//!
//! [`plan`] decides, from the reference's state as [`read`] finds it, what
//! to write in our layout; [`apply`] writes it, ours first, then removes the
//! reference's keys. It never removes a user or a database, never changes a
//! password, and takes over a client already recorded only once: running it
//! again changes nothing. The mapping is `docs/takeover.md`.

use crate::state::{self, ClientEntry, Clients, DATABASE, DB, DB_ADMIN, PEERS};
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{Databag, Hook, LogLevel, Relation, SecretContent, SecretOwner, Status};
use client_interface::peer;
pub use client_interface::peer::{DELETED, INTERNAL_SECRET};
use client_interface::provider;
use std::collections::BTreeMap;

/// Peer application bag: the reference's map of client relations to
/// databases (`{"<id>": {"name": <db>, "legacy": bool}}`, and `"*"`).
pub const PGB_DBS_CONFIG: &str = "pgb_dbs_config";
/// Peer application bag keys only the reference writes: the last applied
/// port, and what older revisions kept there: plain values (the auth file
/// and the stats user's password, later moved to the application secret)
/// and the application secret's URI.
pub const REFERENCE_APP_KEYS: [&str; 5] = [
    PGB_DBS_CONFIG,
    "current_port",
    "auth_file",
    "monitoring_password",
    INTERNAL_SECRET,
];
/// Peer unit bag keys only the reference writes: the auth file's name, the
/// container flag, and the digest of the `pgb_dbs_config` it rendered.
pub const REFERENCE_UNIT_KEYS: [&str; 3] = ["userlist_nonce", "container_initialised", "pgb_dbs"];
/// The application secret's key only the reference's older revisions wrote.
pub const REFERENCE_SECRET_KEY: &str = "cfg-file";
/// Older revisions kept a client's password in the peer application bag,
/// under its user's name (`relation_id_<id>`).
const PEER_PASSWORD_PREFIX: &str = "relation_id_";

/// One live client relation as the reference left it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferenceClient {
    pub relation: Option<Relation>,
    /// The database the reference's map names for it.
    pub mapped: Option<String>,
    /// What the reference wrote in the relation's application bag.
    pub answered: Databag,
    /// The password in the relation's user secret, if there is one.
    pub secret_password: Option<String>,
    /// The password older revisions kept in the peer bag.
    pub peer_password: Option<String>,
    /// Whether the client asked for privileges that reach every database.
    pub privileged: bool,
}

/// The reference's state, as [`read`] finds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reference {
    /// Client relations by id (live ones only).
    pub clients: BTreeMap<u64, ReferenceClient>,
    /// The reference's keys present in the peer application bag.
    pub app_keys: Databag,
    /// Why `pgb_dbs_config` could not be read, if it could not.
    pub unreadable_map: Option<String>,
    /// The application secret's content (found by our label, the
    /// reference's too).
    pub secret: Option<SecretContent>,
    /// The application secret behind the URI older revisions kept under
    /// `internal-secret`, read when none has the label.
    pub older_secret: Option<SecretContent>,
}

impl Reference {
    /// Whether anything of the reference's is left to take over.
    pub fn is_present(&self) -> bool {
        !self.app_keys.is_empty()
            || self.secret.as_ref().is_some_and(|s| {
                s.iter()
                    .any(|(k, v)| k == REFERENCE_SECRET_KEY || v == DELETED)
            })
    }
}

/// What to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Records to add to `clients`.
    pub records: Clients,
    /// Passwords to keep in each relation's user secret (none there yet).
    pub passwords: Vec<(Relation, String)>,
    /// Peer application bag keys to remove once ours are written.
    pub unset: Vec<String>,
    /// The application secret's new content, when it changes.
    pub secret: Option<SecretContent>,
    /// What cannot be taken over, each with what the user can do.
    pub problems: Vec<String>,
}

/// The decision, pure: a record for every live client the reference served
/// and ours has not recorded, with its password kept where ours keeps it; the
/// reference's keys removed; the secret's leftovers dropped.
pub fn plan(reference: &Reference, ours: &Clients) -> Plan {
    let mut plan = Plan::default();
    for (id, client) in &reference.clients {
        let Some(relation) = &client.relation else {
            continue;
        };
        if ours.contains_key(id) {
            continue;
        }
        let database = client
            .mapped
            .clone()
            .or_else(|| client.answered.get("database").cloned())
            .filter(|d| !d.is_empty());
        let Some(database) = database else {
            // Never answered: ours serves its request as a new one.
            continue;
        };
        let legacy = (relation.endpoint != DATABASE).then(|| relation.endpoint.clone());
        let bag_password = client.answered.get("password").cloned();
        let password = match legacy {
            None => client
                .secret_password
                .clone()
                .or(bag_password)
                .or_else(|| client.peer_password.clone()),
            Some(_) => client.secret_password.clone().or(bag_password),
        };
        match (&password, &client.secret_password) {
            (Some(p), None) => plan.passwords.push((relation.clone(), p.clone())),
            (None, _) => plan.problems.push(format!(
                "relation {id}: no password found for its user; remove the relation and \
                 add it again to give the client new credentials"
            )),
            _ => {}
        }
        if let Some(p) = &client.peer_password {
            if password.as_ref() == Some(p) {
                plan.unset.push(format!("{PEER_PASSWORD_PREFIX}{id}"));
            }
        }
        // A db-admin client is left to our flow, which refuses it (a
        // superuser cannot log in through PgBouncer) and keeps its user.
        if relation.endpoint == DB_ADMIN {
            continue;
        }
        let entry = match legacy {
            None => ClientEntry {
                database: Some(database),
                privileged: client.privileged,
                ..ClientEntry::default()
            },
            Some(endpoint) => ClientEntry {
                database: Some(database),
                legacy: Some(endpoint),
                extensions: Some(
                    client
                        .answered
                        .get("extensions")
                        .cloned()
                        .unwrap_or_default(),
                ),
                ..ClientEntry::default()
            },
        };
        plan.records.insert(*id, entry);
    }
    // The URI goes once the secret is found by its label, or is written
    // there from what the URI holds.
    let labelled = reference.secret.is_some() || reference.older_secret.is_some();
    plan.unset.extend(
        reference
            .app_keys
            .keys()
            .filter(|k| !k.starts_with(PEER_PASSWORD_PREFIX))
            .filter(|k| labelled || *k != INTERNAL_SECRET)
            .cloned(),
    );
    if let Some(why) = &reference.unreadable_map {
        plan.unset.retain(|k| k != PGB_DBS_CONFIG);
        plan.problems.push(format!(
            "cannot read {PGB_DBS_CONFIG} left by the previous charm ({why}); the clients \
             were taken over from their relations' data, and the key is kept for inspection"
        ));
    }
    plan.unset.sort();
    plan.unset.dedup();
    plan.secret = secret_content(reference);
    plan
}

/// The application secret (the labelled one, else the one behind the URI)
/// without the reference's leftovers, with the stats user's password an
/// older revision kept in the peer bag; `None` when the labelled secret
/// already holds exactly that.
fn secret_content(reference: &Reference) -> Option<SecretContent> {
    let current = reference.secret.clone().unwrap_or_default();
    let source = reference
        .secret
        .as_ref()
        .or(reference.older_secret.as_ref());
    let mut content: SecretContent = source
        .map(peer::without_deleted)
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| *k != REFERENCE_SECRET_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if content.get(state::MONITORING_PASSWORD).is_none() {
        if let Some(p) = reference.app_keys.get("monitoring_password") {
            content.insert(state::MONITORING_PASSWORD, p.as_str());
        }
    }
    (content != current && !content.is_empty()).then_some(content)
}

/// Reads the reference's state: the peer application bag's keys, the map,
/// each live client relation's bag and user secret, the application secret
/// (by label, else behind `internal-secret`).
pub fn read(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Reference> {
    let peer_bag = hook.local_app_bag(peers)?.clone();
    let mut reference = Reference {
        app_keys: peer_bag
            .iter()
            .filter(|(k, _)| {
                REFERENCE_APP_KEYS.contains(&k.as_str()) || k.starts_with(PEER_PASSWORD_PREFIX)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        secret: state::app_secret(hook)?,
        ..Reference::default()
    };
    if reference.secret.is_none() {
        reference.older_secret = peer::internal_secret(hook, &peer_bag);
    }
    let mapped: BTreeMap<u64, String> = match peer_bag.get(PGB_DBS_CONFIG) {
        None => BTreeMap::new(),
        Some(raw) => match parse_map(raw) {
            Ok(map) => map,
            Err(e) => {
                reference.unreadable_map = Some(e.to_string());
                BTreeMap::new()
            }
        },
    };
    if !reference.is_present() {
        return Ok(reference);
    }
    for endpoint in [DATABASE, DB, DB_ADMIN] {
        for relation in hook.relations(endpoint)? {
            let answered = hook.local_app_bag(&relation)?.clone();
            let label = provider::secret_label(endpoint, relation.id, "user");
            let secret_password = hook
                .secret_by_label(&label, Revision::Peek)?
                .and_then(|c| c.get("password").map(str::to_string))
                .filter(|p| p != DELETED);
            let privileged = match endpoint {
                DATABASE => {
                    let remote = hook.remote_app_bag(&relation)?.clone();
                    client_interface::request::parse(&remote, relation.id)
                        .ok()
                        .flatten()
                        .is_some_and(|r| r.roles.is_privileged())
                }
                _ => false,
            };
            reference.clients.insert(
                relation.id,
                ReferenceClient {
                    mapped: mapped.get(&relation.id).cloned(),
                    answered,
                    secret_password,
                    peer_password: peer_bag
                        .get(&format!("{PEER_PASSWORD_PREFIX}{}", relation.id))
                        .cloned(),
                    privileged,
                    relation: Some(relation),
                },
            );
        }
    }
    Ok(reference)
}

/// `pgb_dbs_config`'s relation ids and database names (the wildcard left out).
pub fn parse_map(raw: &str) -> Result<BTreeMap<u64, String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
    }
    let map: BTreeMap<String, Entry> = serde_json::from_str(raw)?;
    Ok(map
        .into_iter()
        .filter_map(|(id, e)| Some((id.parse().ok()?, e.name)))
        .collect())
}

/// Writes the plan (leader): the passwords in their secrets and the records
/// first, then the application secret, and only then the reference's keys
/// go. What cannot be taken over blocks, saying what to do.
pub fn apply(hook: &mut Hook<'_>, peers: &Relation, plan: &Plan) -> anyhow::Result<()> {
    let mut kept = BTreeMap::new();
    for (relation, password) in &plan.passwords {
        let label = provider::secret_label(&relation.endpoint, relation.id, "user");
        let mut content = SecretContent::new().with("password", password.as_str());
        if relation.endpoint == DATABASE {
            content.insert("username", provider::relation_user(relation.id).as_str());
        }
        let meta = SecretMeta {
            label: Some(label),
            ..SecretMeta::default()
        };
        let id = hook.add_secret(&content, SecretOwner::Application, &meta)?;
        kept.insert(relation.id, id.to_string());
    }
    let mut clients = state::clients(hook, peers)?;
    for (id, entry) in &plan.records {
        let mut entry = entry.clone();
        if entry.legacy.is_none() {
            entry.secret = match kept.get(id) {
                Some(secret) => Some(secret.clone()),
                None => {
                    let label = provider::secret_label(DATABASE, *id, "user");
                    // None for a client whose password was not found.
                    hook.secret_info(&SecretRef::Label(label))
                        .ok()
                        .and_then(|i| i.id)
                        .map(|id| id.to_string())
                }
            };
        }
        clients.entry(*id).or_insert(entry);
    }
    if !plan.records.is_empty() {
        state::save_clients(hook, peers, &clients)?;
    }
    if let Some(content) = &plan.secret {
        let label = state::app_secret_label(hook.app());
        match hook.secret_info(&SecretRef::Label(label.clone())) {
            Ok(info) => {
                let id = info
                    .id
                    .ok_or_else(|| anyhow::anyhow!("the application secret has no id"))?;
                hook.set_secret(&id, Some(content), &SecretMeta::default())?;
            }
            Err(_) => {
                let meta = SecretMeta {
                    label: Some(label),
                    ..SecretMeta::default()
                };
                hook.add_secret(content, SecretOwner::Application, &meta)?;
            }
        }
    }
    hook.update_app_bag(peers, plan.unset.iter().map(|k| (k.clone(), None)))?;
    for problem in &plan.problems {
        hook.add_problem(Status::Blocked(problem.clone()))?;
    }
    if !plan.records.is_empty() {
        hook.log(
            LogLevel::Info,
            &format!(
                "took over {} client relation(s) from the previous charm's state",
                plan.records.len()
            ),
        )?;
    }
    Ok(())
}

/// upgrade-charm: every unit drops the reference's keys from its own peer
/// bag; the leader takes over the application's state.
pub fn run(hook: &mut Hook<'_>) -> anyhow::Result<()> {
    let Some(peers) = hook.relations(PEERS)?.into_iter().next() else {
        return Ok(());
    };
    // Keys the bag lacks change nothing (the hook sends the net change).
    hook.update_unit_bag(&peers, REFERENCE_UNIT_KEYS.map(|k| (k.to_string(), None)))?;
    if !hook.is_leader()? {
        return Ok(());
    }
    let reference = read(hook, &peers)?;
    if !reference.is_present() {
        return Ok(());
    }
    let ours = state::clients(hook, &peers)?;
    apply(hook, &peers, &plan(&reference, &ours))
}
