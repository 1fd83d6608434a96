//! [`Hook`]: what a charm's handler uses to talk to Juju and its workloads during
//! one dispatch. It applies Juju's rules before asking (so a charm learns of a
//! mistake without a wasted call), caches what it read for the rest of the hook, and
//! sends each databag's net change once, when the hook is done ([`Hook::flush`]).

use crate::backend::{Backend, GoalState, JsonMap, Network, Port};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::relation::{self, Bag, Change, Databag, Relation};
use crate::secret::{
    Revision, SecretContent, SecretId, SecretInfo, SecretMeta, SecretOwner, SecretRef,
};
use crate::status::{LogLevel, Status, StatusCollector};
use pebble_api::{Pebble, Workloads};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};

/// One dispatch's view of Juju and the workloads.
pub struct Hook<'a> {
    context: &'a Context,
    backend: &'a mut dyn Backend,
    workloads: &'a mut dyn Workloads,
    cache: Cache,
    /// Bags this hook wrote, with their content before its first write.
    written: BTreeMap<(Relation, Bag), Databag>,
    /// The unit's candidate statuses for this dispatch.
    statuses: StatusCollector,
}

/// What Juju answered earlier in this hook. Relation ids, members and networks do
/// not change while a hook runs; databags and secrets change only through this
/// hook's own writes, which update or clear their entries.
#[derive(Default)]
struct Cache {
    leader: Option<bool>,
    config: Option<JsonMap>,
    relation_ids: HashMap<String, Vec<Relation>>,
    units: HashMap<Relation, Vec<String>>,
    remote_apps: HashMap<Relation, String>,
    bags: HashMap<(Relation, Bag), Databag>,
    networks: HashMap<(String, Option<u64>), Network>,
    secrets: HashMap<(String, Revision), SecretContent>,
}

/// A cache key for a secret lookup.
fn secret_key(secret: &SecretRef) -> String {
    match secret {
        SecretRef::Id(id, label) => format!("id:{}:{}", id.xid(), label.as_deref().unwrap_or("")),
        SecretRef::Label(l) => format!("label:{l}"),
    }
}

impl<'a> Hook<'a> {
    /// A hook for `context`, asking `backend` and the containers' Pebble in `workloads`.
    pub fn new(
        context: &'a Context,
        backend: &'a mut dyn Backend,
        workloads: &'a mut dyn Workloads,
    ) -> Self {
        Hook {
            context,
            backend,
            workloads,
            cache: Cache::default(),
            written: BTreeMap::new(),
            statuses: StatusCollector::new(),
        }
    }

    /// The hook's context (unit, app, model, Juju version, the event Juju sent).
    pub fn context(&self) -> &Context {
        self.context
    }

    /// This unit's name (`app/N`).
    pub fn unit(&self) -> &str {
        &self.context.unit
    }

    /// This unit's application.
    pub fn app(&self) -> &str {
        &self.context.app
    }

    /// Whether this unit leads its application (asked once per dispatch).
    pub fn is_leader(&mut self) -> Result<bool> {
        if let Some(l) = self.cache.leader {
            return Ok(l);
        }
        let l = self.backend.is_leader()?;
        self.cache.leader = Some(l);
        Ok(l)
    }

    fn require_leader(&mut self, tool: &str) -> Result<()> {
        if self.is_leader()? {
            Ok(())
        } else {
            Err(Error::NotLeader { tool: tool.into() })
        }
    }

    // ----- relations -----

    /// The live relations on an endpoint.
    pub fn relations(&mut self, endpoint: &str) -> Result<Vec<Relation>> {
        if let Some(ids) = self.cache.relation_ids.get(endpoint) {
            return Ok(ids.clone());
        }
        let ids = self.backend.relation_ids(endpoint)?;
        self.cache
            .relation_ids
            .insert(endpoint.to_string(), ids.clone());
        Ok(ids)
    }

    /// The relation on an endpoint that has at most one (a peer endpoint, or one
    /// with `limit: 1`): `None` when there is none, an error when there are several.
    pub fn relation(&mut self, endpoint: &str) -> Result<Option<Relation>> {
        let mut relations = self.relations(endpoint)?;
        match relations.len() {
            0 | 1 => Ok(relations.pop()),
            count => Err(Error::TooManyRelations {
                endpoint: endpoint.to_string(),
                count,
            }),
        }
    }

    /// The remote units in scope (for a peer relation: the other units).
    pub fn relation_units(&mut self, relation: &Relation) -> Result<Vec<String>> {
        if let Some(units) = self.cache.units.get(relation) {
            return Ok(units.clone());
        }
        let units = self.backend.relation_list(relation)?;
        self.cache.units.insert(relation.clone(), units.clone());
        Ok(units)
    }

    /// The application at the other end (this application for a peer relation).
    /// Told by the event, or by a remote unit's name when the relation's units
    /// were listed in this hook; asked of Juju otherwise.
    pub fn remote_app(&mut self, relation: &Relation) -> Result<String> {
        if let Some(r) = self.context.event.relation() {
            if &r.relation == relation && !r.remote_app.is_empty() {
                return Ok(r.remote_app.clone());
            }
        }
        if let Some(app) = self.cache.remote_apps.get(relation) {
            return Ok(app.clone());
        }
        let listed = self.cache.units.get(relation).and_then(|u| u.first());
        if let Some((app, _)) = listed.and_then(|unit| unit.split_once('/')) {
            return Ok(app.to_string());
        }
        let app = self.backend.relation_remote_app(relation)?;
        self.cache.remote_apps.insert(relation.clone(), app.clone());
        Ok(app)
    }

    /// Reads a databag. Juju answers `permission denied` when a follower reads its
    /// own application's bag on a non-peer relation.
    pub fn bag(&mut self, relation: &Relation, bag: &Bag) -> Result<&Databag> {
        let key = (relation.clone(), bag.clone());
        if !self.cache.bags.contains_key(&key) {
            let data = self.backend.relation_get(relation, bag)?;
            self.cache.bags.insert(key.clone(), data);
        }
        Ok(&self.cache.bags[&key])
    }

    /// This application's bag.
    pub fn local_app_bag(&mut self, relation: &Relation) -> Result<&Databag> {
        let bag = Bag::App(self.context.app.clone());
        self.bag(relation, &bag)
    }

    /// This unit's bag.
    pub fn local_unit_bag(&mut self, relation: &Relation) -> Result<&Databag> {
        let bag = Bag::Unit(self.context.unit.clone());
        self.bag(relation, &bag)
    }

    /// The remote application's bag.
    pub fn remote_app_bag(&mut self, relation: &Relation) -> Result<&Databag> {
        let app = self.remote_app(relation)?;
        self.bag(relation, &Bag::App(app))
    }

    /// Changes this application's bag (leader only), usually with a
    /// [`BagChanges`](crate::BagChanges). Only keys whose value changes are sent
    /// (with the hook's other writes, at [`Hook::flush`]); `None` deletes a key.
    /// Returns whether anything changed.
    pub fn update_app_bag(
        &mut self,
        relation: &Relation,
        changes: impl IntoIterator<Item = Change>,
    ) -> Result<bool> {
        self.require_leader("relation-set")?;
        let bag = Bag::App(self.context.app.clone());
        self.update(relation, bag, changes)
    }

    /// Changes this unit's bag, as [`Hook::update_app_bag`] does.
    pub fn update_unit_bag(
        &mut self,
        relation: &Relation,
        changes: impl IntoIterator<Item = Change>,
    ) -> Result<bool> {
        let bag = Bag::Unit(self.context.unit.clone());
        self.update(relation, bag, changes)
    }

    fn update(
        &mut self,
        relation: &Relation,
        bag: Bag,
        changes: impl IntoIterator<Item = Change>,
    ) -> Result<bool> {
        let current = self.bag(relation, &bag)?.clone();
        let diff = relation::diff(&current, changes);
        if diff.is_empty() {
            return Ok(false);
        }
        let key = (relation.clone(), bag);
        self.written.entry(key.clone()).or_insert(current);
        if let Some(cached) = self.cache.bags.get_mut(&key) {
            relation::apply(cached, &diff);
        }
        Ok(true)
    }

    /// Sends this hook's databag writes: one `relation-set` per bag, with the net
    /// change since the hook first wrote it. Juju applies them only when the hook
    /// succeeds, so sending them last changes nothing but the number of calls.
    pub fn flush(&mut self) -> Result<()> {
        for ((relation, bag), original) in std::mem::take(&mut self.written) {
            let now = &self.cache.bags[&(relation.clone(), bag.clone())];
            let removed = original
                .keys()
                .filter(|k| !now.contains_key(*k))
                .map(|k| (k.clone(), None));
            let set = now.iter().map(|(k, v)| (k.clone(), Some(v.clone())));
            let diff = relation::diff(&original, removed.chain(set));
            if !diff.is_empty() {
                self.backend
                    .relation_set(&relation, matches!(bag, Bag::App(_)), &diff)?;
            }
        }
        Ok(())
    }

    // ----- config, status, logs, ports, network -----

    /// The charm's configuration, read into the charm's own type.
    pub fn config<T: DeserializeOwned>(&mut self) -> Result<T> {
        let raw = self.config_raw()?.clone();
        serde_json::from_value(serde_json::Value::Object(raw)).map_err(|e| {
            Error::Invalid(format!(
                "configuration does not fit the charm's options: {e}"
            ))
        })
    }

    /// The configuration as Juju prints it.
    pub fn config_raw(&mut self) -> Result<&JsonMap> {
        if self.cache.config.is_none() {
            self.cache.config = Some(self.backend.config_get()?);
        }
        Ok(self.cache.config.as_ref().expect("just set"))
    }

    /// Adds a candidate for this unit's status. Once the events are handled and
    /// [`Charm::collect_status`](crate::Charm::collect_status) has added its own,
    /// dispatch sets the highest ([`StatusCollector`]'s rule). Not applied after
    /// an action, nor when the hook fails.
    pub fn add_status(&mut self, status: Status) {
        self.statuses.add(status);
    }

    /// Logs a problem at WARNING and adds it as a candidate status: what a
    /// flow met that the user should see (and may have to act on).
    pub fn add_problem(&mut self, status: Status) -> Result<()> {
        self.log(LogLevel::Warning, status.message())?;
        self.add_status(status);
        Ok(())
    }

    /// The candidates added so far in this dispatch.
    pub fn statuses(&self) -> &StatusCollector {
        &self.statuses
    }

    /// Sets this unit's status now.
    pub fn set_status(&mut self, status: Status) -> Result<()> {
        check_settable(&status)?;
        self.backend.status_set(false, &status)
    }

    /// Sets the application's status (leader only).
    pub fn set_app_status(&mut self, status: Status) -> Result<()> {
        check_settable(&status)?;
        self.require_leader("status-set")?;
        self.backend.status_set(true, &status)
    }

    /// This unit's current status.
    pub fn status(&mut self) -> Result<Status> {
        Ok(self.backend.status_get(false)?.status)
    }

    /// Every unit's status by name, as the leader sees them
    /// (`status-get --application`).
    pub fn unit_statuses(&mut self) -> Result<BTreeMap<String, Status>> {
        self.require_leader("status-get")?;
        Ok(self.backend.status_get(true)?.units)
    }

    /// Writes to the unit's log in Juju.
    pub fn log(&mut self, level: LogLevel, message: &str) -> Result<()> {
        self.backend.juju_log(level, message)
    }

    /// Sets the workload version shown by `juju status`.
    pub fn set_workload_version(&mut self, version: &str) -> Result<()> {
        self.backend.application_version_set(version)
    }

    /// Opens a port.
    pub fn open_port(&mut self, port: &Port) -> Result<()> {
        self.backend.open_port(port)
    }

    /// Closes a port.
    pub fn close_port(&mut self, port: &Port) -> Result<()> {
        self.backend.close_port(port)
    }

    /// The ports this unit has opened.
    pub fn opened_ports(&mut self) -> Result<Vec<Port>> {
        self.backend.opened_ports()
    }

    /// The network of a binding (an endpoint name), optionally for one relation.
    pub fn network(&mut self, binding: &str, relation: Option<&Relation>) -> Result<Network> {
        let key = (binding.to_string(), relation.map(|r| r.id));
        if let Some(n) = self.cache.networks.get(&key) {
            return Ok(n.clone());
        }
        let network = self.backend.network_get(binding, key.1)?;
        self.cache.networks.insert(key, network.clone());
        Ok(network)
    }

    /// The address other applications reach this unit at through a binding.
    pub fn ingress_address(&mut self, binding: &str) -> Result<Option<String>> {
        Ok(self
            .network(binding, None)?
            .ingress_addresses
            .into_iter()
            .next())
    }

    /// Where Juju is taking the model.
    pub fn goal_state(&mut self) -> Result<GoalState> {
        self.backend.goal_state()
    }

    /// How many units this application will have once Juju is done.
    pub fn planned_units(&mut self) -> Result<usize> {
        Ok(self.backend.goal_state()?.planned_units())
    }

    // ----- actions -----

    fn require_action(&self, tool: &str) -> Result<()> {
        match self.context.event {
            Event::Action(_) => Ok(()),
            _ => Err(Error::NotInAction { tool: tool.into() }),
        }
    }

    /// The action's parameters, read into the charm's own type.
    pub fn action_params<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.require_action("action-get")?;
        let raw = self.backend.action_get()?;
        serde_json::from_value(serde_json::Value::Object(raw))
            .map_err(|e| Error::Invalid(format!("invalid action parameters: {e}")))
    }

    /// Adds results to the action (keys may be dotted for nesting):
    /// `hook.action_set([("password", password)])`.
    pub fn action_set<K, V>(&mut self, results: impl IntoIterator<Item = (K, V)>) -> Result<()>
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.require_action("action-set")?;
        let results: BTreeMap<String, String> = results
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        if let Some(bad) = results.keys().find(|k| !valid_action_key(k)) {
            return Err(Error::Invalid(format!(
                "invalid action result key {bad:?}: use lowercase letters, digits, '-' and '.'"
            )));
        }
        self.backend.action_set(&results)
    }

    /// Marks the action failed with a message.
    pub fn action_fail(&mut self, message: &str) -> Result<()> {
        self.require_action("action-fail")?;
        self.backend.action_fail(message)
    }

    /// Reports progress of the action.
    pub fn action_log(&mut self, message: &str) -> Result<()> {
        self.require_action("action-log")?;
        self.backend.action_log(message)
    }

    // ----- secrets -----

    /// Creates a secret. Application secrets need leadership.
    pub fn add_secret(
        &mut self,
        content: &SecretContent,
        owner: SecretOwner,
        meta: &SecretMeta,
    ) -> Result<SecretId> {
        content.check()?;
        if owner == SecretOwner::Application {
            self.require_leader("secret-add")?;
        }
        let id = self.backend.secret_add(content, owner, meta)?;
        // A new secret changes no earlier read; what it holds is known.
        let mut refs = vec![SecretRef::Id(id.clone(), None)];
        refs.extend(meta.label.clone().map(SecretRef::Label));
        for r in refs {
            self.cache
                .secrets
                .insert((secret_key(&r), Revision::Peek), content.clone());
        }
        Ok(id)
    }

    /// Reads a secret's content (once per hook for the same lookup, until this
    /// hook changes a secret).
    pub fn secret(&mut self, secret: &SecretRef, revision: Revision) -> Result<SecretContent> {
        let key = (secret_key(secret), revision);
        if let Some(c) = self.cache.secrets.get(&key) {
            return Ok(c.clone());
        }
        let content = self.backend.secret_get(secret, revision)?;
        self.cache.secrets.insert(key, content.clone());
        Ok(content)
    }

    /// Reads a secret by label, or `None` when no secret has that label.
    pub fn secret_by_label(
        &mut self,
        label: &str,
        revision: Revision,
    ) -> Result<Option<SecretContent>> {
        match self.secret(&SecretRef::Label(label.into()), revision) {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_secret_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An owned secret's metadata.
    pub fn secret_info(&mut self, secret: &SecretRef) -> Result<SecretInfo> {
        self.backend.secret_info_get(secret)
    }

    /// Sets new content (a new revision when it differs) and/or metadata.
    pub fn set_secret(
        &mut self,
        id: &SecretId,
        content: Option<&SecretContent>,
        meta: &SecretMeta,
    ) -> Result<()> {
        if let Some(c) = content {
            c.check()?;
        }
        self.cache.secrets.clear();
        self.cache.secrets.clear();
        self.backend.secret_set(id, content, meta)
    }

    /// Lets the remote application of a relation (or one of its units) read a secret.
    pub fn grant_secret(
        &mut self,
        id: &SecretId,
        relation: &Relation,
        unit: Option<&str>,
    ) -> Result<()> {
        self.backend.secret_grant(id, relation.id, unit)
    }

    /// Takes a grant back.
    pub fn revoke_secret(
        &mut self,
        id: &SecretId,
        relation: &Relation,
        unit: Option<&str>,
    ) -> Result<()> {
        self.backend.secret_revoke(id, relation.id, unit)
    }

    /// Removes a secret, or one revision of it.
    pub fn remove_secret(&mut self, id: &SecretId, revision: Option<u64>) -> Result<()> {
        self.cache.secrets.clear();
        self.cache.secrets.clear();
        self.backend.secret_remove(id, revision)
    }

    /// The secrets this unit or its application owns.
    pub fn secret_ids(&mut self) -> Result<Vec<SecretId>> {
        self.backend.secret_ids()
    }

    // ----- workloads -----

    /// The Pebble of a container.
    pub fn container(&mut self, name: &str) -> &mut dyn Pebble {
        self.workloads.pebble(name)
    }
}

fn check_settable(status: &Status) -> Result<()> {
    if status.settable() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "a charm cannot set status {:?}; only Juju sets it",
            status.name()
        )))
    }
}

/// Juju's rule for action result keys: `^[a-z0-9](([a-z0-9-.]+)?[a-z0-9])?$`.
fn valid_action_key(key: &str) -> bool {
    let b = key.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match b {
        [] => false,
        [c] => edge(c),
        [first, middle @ .., last] => {
            edge(first) && edge(last) && middle.iter().all(|c| edge(c) || *c == b'-' || *c == b'.')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_action_key;

    #[test]
    fn action_keys_follow_juju_rule() {
        for ok in ["a", "password", "tls.ca", "x-1.y"] {
            assert!(valid_action_key(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.", "été"] {
            assert!(!valid_action_key(bad), "{bad}");
        }
    }
}
