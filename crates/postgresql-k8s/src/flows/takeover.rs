//! Taking over a deployment of the reference charm: the application was
//! upgraded in place from Canonical's `postgresql-k8s`. The system users'
//! passwords may sit under an older label (`<app>.app`), behind the URI an
//! older revision kept in the peer bag (`internal-secret`), or in the peer
//! bag itself (without Juju secrets); the members are listed by host name
//! (`<app>-<n>.<app>-endpoints`) where ours lists addresses; a legacy
//! client's password is in its relation's bag where ours keeps it in the
//! relation's user secret; and a few keys are the reference's alone.
//!
//! [`plan`] decides from what [`read`] finds; [`apply`] writes ours first,
//! then removes the reference's keys. Nothing is generated: a password that
//! cannot be found blocks, saying what to do, rather than being replaced
//! (the cluster knows the old one). Running it again changes nothing. The
//! mapping is `docs/takeover.md`.

use crate::state::{self, PEERS};
use charm::secret::{Revision, SecretMeta};
use charm::{Databag, Hook, LogLevel, Relation, SecretContent, Status};
use client_interface::peer;
pub use client_interface::peer::{DELETED, INTERNAL_SECRET};
use client_interface::pgsql;
use client_interface::provider;
use std::collections::BTreeMap;

/// Peer application bag keys only the reference writes that ours replaces:
/// the digest of its users map, the LDAP switch, async replication's counter,
/// its map of relation databases.
pub const REFERENCE_APP_KEYS: [&str; 4] = [
    "user_hash",
    "ldap_enabled",
    "promoted-cluster-counter",
    "rel_databases",
];
/// Peer unit bag keys only the reference writes that ours replaces.
pub const REFERENCE_UNIT_KEYS: [&str; 5] = [
    "user_hash",
    "config_hash",
    "connectivity",
    "authorisation-rules-observer-pid",
    "pg_hba_needs_update_timestamp",
];

/// The reference's state, as [`read`] finds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reference {
    /// The application secret under our label.
    pub secret: Option<SecretContent>,
    /// The application secret under an older label or URI.
    pub older_secret: Option<SecretContent>,
    /// The peer application bag.
    pub app_bag: Databag,
    /// Each unit's name and its peer bag's `private-address`.
    pub addresses: BTreeMap<String, String>,
    /// Legacy client relations with the password in their bag and none in
    /// their user secret.
    pub legacy_passwords: Vec<(Relation, Option<String>)>,
}

/// What to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The application secret's content, when it must be written.
    pub secret: Option<SecretContent>,
    /// The members' list, as addresses, when it changes.
    pub members: Option<Vec<String>>,
    /// Passwords to keep in each legacy relation's user secret.
    pub legacy_passwords: Vec<(Relation, String)>,
    /// Peer application bag keys to remove once ours are written.
    pub unset: Vec<String>,
    /// What cannot be taken over, with what the user can do.
    pub problems: Vec<String>,
}

/// The decision, pure.
pub fn plan(app: &str, reference: &Reference) -> Plan {
    let mut plan = Plan::default();
    let bag = &reference.app_bag;
    // The system users' passwords: ours, else the older secret's, else the
    // peer bag's; a deleted value counts as none.
    let mut content = reference
        .secret
        .as_ref()
        .map(peer::without_deleted)
        .unwrap_or_default();
    for (k, v) in reference.older_secret.iter().flat_map(|c| c.iter()) {
        if v != DELETED && content.get(k).is_none() {
            content.insert(k.as_str(), v.as_str());
        }
    }
    let mut plain = Vec::new();
    for user in state::SECRET_USERS {
        let key = state::password_key(user);
        if let Some(v) = bag.get(&key) {
            if content.get(&key).is_none() {
                content.insert(key.as_str(), v.as_str());
            }
            plain.push(key.clone());
        }
    }
    let missing: Vec<String> = state::SECRET_USERS
        .iter()
        .map(|u| state::password_key(u))
        .filter(|k| content.get(k).is_none())
        .collect();
    let initialised = bag.contains_key(state::CLUSTER_INITIALISED);
    if initialised && !missing.is_empty() {
        plan.problems.push(missing_passwords(app, &missing));
    }
    if reference.secret.as_ref() != Some(&content) && !content.is_empty() {
        plan.secret = Some(content);
    }
    plan.unset.extend(plain);
    if bag.contains_key(INTERNAL_SECRET) && reference.older_secret.is_some() {
        plan.unset.push(INTERNAL_SECRET.into());
    }
    plan.unset.extend(
        REFERENCE_APP_KEYS
            .iter()
            .filter(|k| bag.contains_key(**k))
            .map(|k| k.to_string()),
    );
    // Members by host name become addresses; a member whose unit is gone
    // is left out.
    if let Some(raw) = bag.get(state::ENDPOINTS) {
        if let Ok(listed) = serde_json::from_str::<Vec<String>>(raw) {
            let suffix = format!(".{app}-endpoints");
            if listed.iter().any(|m| m.ends_with(&suffix)) {
                let members = listed
                    .iter()
                    .filter_map(|m| match m.strip_suffix(&suffix) {
                        Some(pod) => reference
                            .addresses
                            .get(&state::unit_of_member(pod))
                            .cloned(),
                        None => Some(m.clone()),
                    })
                    .collect();
                plan.members = Some(members);
            }
        }
    }
    for (relation, password) in &reference.legacy_passwords {
        match password {
            Some(p) => plan.legacy_passwords.push((relation.clone(), p.clone())),
            None => plan.problems.push(format!(
                "{}: no password found for its user; remove the relation and add it \
                 again to give the client new credentials",
                pgsql::relation_name(relation)
            )),
        }
    }
    plan
}

/// Why an initialised cluster's system passwords are not taken over, and
/// what the user can do.
pub fn missing_passwords(app: &str, missing: &[String]) -> String {
    format!(
        "the system users' passwords ({}) cannot be found; restore the previous \
         charm's application secret (label {} or {app}.app), then run `juju refresh` again",
        missing.join(", "),
        state::app_secret_label(app)
    )
}

/// Whether any of the reference's state is left: the members by host name,
/// its keys, passwords outside our secret, a deleted value in it.
pub fn is_present(app: &str, reference: &Reference) -> bool {
    let bag = &reference.app_bag;
    let suffix = format!(".{app}-endpoints\"");
    bag.get(state::ENDPOINTS)
        .is_some_and(|e| e.contains(&suffix))
        || bag.contains_key(INTERNAL_SECRET)
        || REFERENCE_APP_KEYS.iter().any(|k| bag.contains_key(*k))
        || state::SECRET_USERS
            .iter()
            .any(|u| bag.contains_key(&state::password_key(u)))
        || reference.secret.is_none()
        || reference
            .secret
            .as_ref()
            .is_some_and(|c| c.iter().any(|(_, v)| v == DELETED))
}

/// Reads what the reference may have left (leader).
pub fn read(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Reference> {
    let app_bag = hook.local_app_bag(peers)?.clone();
    let secret = state::app_secret(hook)?;
    let older_secret = match secret {
        Some(_) => None,
        None => older_app_secret(hook, &app_bag)?,
    };
    let mut addresses = BTreeMap::new();
    if let Some(own) = hook.local_unit_bag(peers)?.get(state::ADDRESS).cloned() {
        addresses.insert(hook.unit().to_string(), own);
    }
    for unit in hook.relation_units(peers)? {
        let bag = hook.bag(peers, &charm::Bag::Unit(unit.clone()))?;
        if let Some(a) = bag.get(state::ADDRESS) {
            addresses.insert(unit, a.clone());
        }
    }
    let mut legacy_passwords = Vec::new();
    for endpoint in pgsql::ENDPOINTS {
        for relation in hook.relations(endpoint)? {
            if pgsql::has_kept_password(hook, &relation)? {
                continue;
            }
            let published = hook.local_app_bag(&relation)?.clone();
            if !published.contains_key("master") {
                continue;
            }
            let password = match published.get("password") {
                Some(p) => Some(p.clone()),
                None => hook.local_unit_bag(&relation)?.get("password").cloned(),
            };
            legacy_passwords.push((relation, password));
        }
    }
    Ok(Reference {
        secret,
        older_secret,
        app_bag,
        addresses,
        legacy_passwords,
    })
}

/// The application secret under the reference's older label, or behind the
/// URI older revisions kept in the peer bag.
fn older_app_secret(hook: &mut Hook<'_>, bag: &Databag) -> anyhow::Result<Option<SecretContent>> {
    let older = format!("{}.app", hook.app());
    match hook.secret_by_label(&older, Revision::Peek)? {
        Some(c) => Ok(Some(c)),
        None => Ok(peer::internal_secret(hook, bag)),
    }
}

/// Writes the plan (leader): the secrets and the members first, then the
/// reference's keys go; what cannot be taken over blocks.
pub fn apply(hook: &mut Hook<'_>, peers: &Relation, plan: &Plan) -> anyhow::Result<()> {
    if let Some(content) = &plan.secret {
        let existing = state::app_secret(hook)?;
        super::save_app_secret(hook, existing.as_ref(), content)?;
    }
    if let Some(members) = &plan.members {
        state::save_members(hook, peers, members)?;
    }
    for (relation, password) in &plan.legacy_passwords {
        let meta = SecretMeta {
            label: Some(provider::secret_label(
                &relation.endpoint,
                relation.id,
                "user",
            )),
            ..SecretMeta::default()
        };
        let content = SecretContent::new().with("password", password.as_str());
        hook.add_secret(&content, charm::SecretOwner::Application, &meta)?;
    }
    hook.update_app_bag(peers, plan.unset.iter().map(|k| (k.clone(), None)))?;
    for problem in &plan.problems {
        hook.add_problem(Status::Blocked(problem.clone()))?;
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
    let app = hook.app().to_string();
    if !is_present(&app, &reference) && reference.legacy_passwords.is_empty() {
        return Ok(());
    }
    let plan = plan(&app, &reference);
    apply(hook, &peers, &plan)?;
    hook.log(
        LogLevel::Info,
        "took over the previous charm's peer state and secrets",
    )?;
    Ok(())
}
