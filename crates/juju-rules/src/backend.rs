//! [`MemoryBackend`]: Juju's hook tools over a [`State`], with Juju's rules and
//! error phrases, recording each call's command line.

use crate::state::{Owner, SecretState, State};
use charm::backend::{
    Address, Backend, BindAddress, GoalState, GoalStatus, JsonMap, Network, Port, StatusInfo,
};
use charm::commands::{self, Command};
use charm::error::{Error, Result};
use charm::relation::{self, Bag, Databag, Relation};
use charm::secret::{
    Revision, SecretContent, SecretId, SecretInfo, SecretMeta, SecretOwner, SecretRef,
};
use charm::stats::ToolStats;
use charm::{Event, LogLevel, Status};
use std::collections::BTreeMap;
use std::time::Duration;

/// What an action produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionOutput {
    /// The `action-set` results, by dotted key.
    pub results: BTreeMap<String, String>,
    /// The `action-fail` message, when the action failed.
    pub failure: Option<String>,
    /// The `action-log` messages, in order.
    pub logs: Vec<String>,
}

/// Juju's hook tools over a state.
pub struct MemoryBackend<'s> {
    pub(crate) state: &'s mut State,
    event: Event,
    action_params: Option<JsonMap>,
    pub(crate) action: ActionOutput,
    pub(crate) calls: ToolStats,
}

/// Juju's answer for a failed tool: the same phrase the real tool prints on stderr.
pub(crate) fn juju_error(tool: &str, message: &str) -> Error {
    Error::from_tool_failure(tool, 1, &format!("ERROR {message}\n"))
}

impl<'s> MemoryBackend<'s> {
    /// The tools of one hook running `event` on `state` (with the action's
    /// parameters, for an action).
    pub fn new(state: &'s mut State, event: Event, action_params: Option<JsonMap>) -> Self {
        MemoryBackend {
            state,
            event,
            action_params,
            action: ActionOutput::default(),
            calls: ToolStats::default(),
        }
    }

    /// What the action has set, failed with and logged so far (taken out).
    pub fn take_action_output(&mut self) -> ActionOutput {
        std::mem::take(&mut self.action)
    }

    /// How many hook-tool calls were answered so far.
    pub fn tool_calls(&self) -> usize {
        self.calls.count()
    }

    fn record(&mut self, cmd: Command) {
        self.calls.record(&cmd, Duration::ZERO);
    }

    /// Relation-broken hides its relation from `relation-ids`.
    fn is_broken(&self, id: u64) -> bool {
        matches!(&self.event, Event::RelationBroken(r) if r.relation.id == id)
    }

    /// In relation-departed the departed unit is no longer listed.
    fn departed(&self, id: u64) -> Option<&str> {
        match &self.event {
            Event::RelationDeparted(r) if r.relation.id == id => r.remote_unit.as_deref(),
            _ => None,
        }
    }

    fn relation_index(&self, tool: &str, rel: &Relation) -> Result<usize> {
        self.state
            .relations
            .iter()
            .position(|r| r.id == rel.id && r.endpoint == rel.endpoint)
            .ok_or_else(|| juju_error(tool, &format!("relation {} not found", rel.id)))
    }

    fn in_action(&self, tool: &str) -> Result<()> {
        if self.action_params.is_some() {
            Ok(())
        } else {
            Err(juju_error(tool, "not running an action"))
        }
    }

    fn find_secret(&self, tool: &str, secret: &SecretRef) -> Result<usize> {
        let found = match secret {
            SecretRef::Id(id, _) => self.state.secrets.iter().position(|s| &s.id == id),
            SecretRef::Label(l) => self
                .state
                .secret_by_label(l)
                .and_then(|s| self.state.secrets.iter().position(|t| t.id == s.id)),
        };
        found.ok_or_else(|| match secret {
            SecretRef::Id(id, _) => juju_error(tool, &format!("secret {:?} not found", id.xid())),
            SecretRef::Label(l) => juju_error(tool, &format!("consumer label {l:?} not found")),
        })
    }

    /// Owners manage a secret: the unit for its own, the leader for its application's.
    fn check_manage(&self, tool: &str, s: &SecretState) -> Result<()> {
        match s.owner {
            Owner::Unit => Ok(()),
            Owner::App if self.state.leader => Ok(()),
            Owner::App => Err(juju_error(tool, "this unit is not the leader")),
            Owner::Remote { .. } => Err(juju_error(tool, "permission denied")),
        }
    }

    fn new_xid(&self) -> String {
        let mut n = (self.state.secrets.len() as u64 + 1).max(self.state.secret_numbers_from);
        loop {
            let xid = format!("c{n:019}");
            if !self.state.secrets.iter().any(|s| s.id.xid() == xid) {
                return xid;
            }
            n += 1;
        }
    }

    fn check_label_free(&self, tool: &str, label: &str, except: Option<&SecretId>) -> Result<()> {
        let taken = self.state.secrets.iter().any(|s| {
            !s.owner.is_remote() && s.owner_label.as_deref() == Some(label) && Some(&s.id) != except
        });
        if taken {
            return Err(juju_error(
                tool,
                &format!("secret with label {label:?} already exists"),
            ));
        }
        Ok(())
    }

    fn apply_meta(s: &mut SecretState, meta: &SecretMeta) {
        if let Some(l) = &meta.label {
            s.owner_label = Some(l.clone());
        }
        if let Some(d) = &meta.description {
            s.description = Some(d.clone());
        }
        if let Some(e) = &meta.expire {
            s.expire = Some(e.clone());
        }
        if let Some(r) = meta.rotate {
            s.rotate = Some(r);
        }
    }

    fn grant_change(
        &mut self,
        tool: &str,
        id: &SecretId,
        relation: u64,
        unit: Option<&str>,
        grant: bool,
    ) -> Result<()> {
        let i = self.find_secret(tool, &SecretRef::Id(id.clone(), None))?;
        self.check_manage(tool, &self.state.secrets[i])?;
        let rel = self
            .state
            .relation(relation)
            .ok_or_else(|| juju_error(tool, &format!("relation {relation} not found")))?;
        if let Some(u) = unit {
            if !rel.remote_units.contains_key(u) {
                return Err(juju_error(
                    tool,
                    &format!("unit {u:?} is not in relation {relation}"),
                ));
            }
        }
        let key = (relation, unit.map(str::to_string));
        let grants = &mut self.state.secrets[i].grants;
        if grant {
            grants.insert(key);
        } else {
            grants.remove(&key);
        }
        Ok(())
    }
}

impl Backend for MemoryBackend<'_> {
    fn is_leader(&mut self) -> Result<bool> {
        self.record(commands::is_leader());
        Ok(self.state.leader)
    }

    fn relation_ids(&mut self, endpoint: &str) -> Result<Vec<Relation>> {
        self.record(commands::relation_ids(endpoint));
        let mut ids: Vec<Relation> = self
            .state
            .relations
            .iter()
            .filter(|r| r.endpoint == endpoint && !self.is_broken(r.id))
            .map(|r| r.handle())
            .collect();
        ids.sort_by_key(|r| r.to_string());
        Ok(ids)
    }

    fn relation_list(&mut self, relation: &Relation) -> Result<Vec<String>> {
        self.record(commands::relation_list(relation));
        let i = self.relation_index("relation-list", relation)?;
        let gone = self.departed(relation.id).map(str::to_string);
        Ok(self.state.relations[i]
            .remote_units
            .keys()
            .filter(|u| Some(*u) != gone.as_ref())
            .cloned()
            .collect())
    }

    fn relation_remote_app(&mut self, relation: &Relation) -> Result<String> {
        self.record(commands::relation_remote_app(relation));
        let i = self.relation_index("relation-list", relation)?;
        Ok(self.state.relations[i].remote_app.clone())
    }

    fn relation_get(&mut self, relation: &Relation, bag: &Bag) -> Result<Databag> {
        self.record(commands::relation_get(relation, bag));
        let i = self.relation_index("relation-get", relation)?;
        let (unit, app, leader) = (
            self.state.unit.clone(),
            self.state.app().to_string(),
            self.state.leader,
        );
        let r = &self.state.relations[i];
        let not_found = |what: &str| {
            juju_error(
                "relation-get",
                &format!(
                    "cannot read settings for {what} in relation {relation}: settings not found"
                ),
            )
        };
        match bag {
            Bag::Unit(u) if *u == unit => Ok(r.local_unit_data.clone()),
            Bag::Unit(u) => r
                .remote_units
                .get(u)
                .cloned()
                .ok_or_else(|| not_found(&format!("unit {u:?}"))),
            Bag::App(a) if *a == app => {
                if r.peer || leader {
                    Ok(r.local_app_data.clone())
                } else {
                    Err(juju_error("relation-get", "permission denied"))
                }
            }
            Bag::App(a) if *a == r.remote_app => Ok(r.remote_app_data.clone()),
            Bag::App(a) => Err(not_found(&format!("application {a:?}"))),
        }
    }

    fn relation_set(&mut self, relation: &Relation, app: bool, changes: &Databag) -> Result<()> {
        self.record(commands::relation_set(relation, app, changes));
        let i = self.relation_index("relation-set", relation)?;
        if app && !self.state.leader {
            return Err(juju_error("relation-set", "cannot write relation settings"));
        }
        if let Some(k) = changes
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains(char::is_whitespace))
        {
            return Err(juju_error("relation-set", &format!("invalid key {k:?}")));
        }
        let r = &mut self.state.relations[i];
        let bag = if app {
            &mut r.local_app_data
        } else {
            &mut r.local_unit_data
        };
        relation::apply(bag, changes);
        Ok(())
    }

    fn config_get(&mut self) -> Result<JsonMap> {
        self.record(commands::config_get());
        Ok(self.state.config.clone())
    }

    fn status_get(&mut self, app: bool) -> Result<StatusInfo> {
        self.record(commands::status_get(app));
        if app && !self.state.leader {
            return Err(juju_error("status-get", "this unit is not the leader"));
        }
        Ok(if app {
            StatusInfo {
                status: self.state.app_status.clone(),
                units: BTreeMap::from([(self.state.unit.clone(), self.state.unit_status.clone())]),
            }
        } else {
            StatusInfo {
                status: self.state.unit_status.clone(),
                units: BTreeMap::new(),
            }
        })
    }

    fn status_set(&mut self, app: bool, status: &Status) -> Result<()> {
        self.record(commands::status_set(app, status));
        if !status.settable() {
            return Err(juju_error(
                "status-set",
                &format!("invalid status {:?}", status.name()),
            ));
        }
        if app {
            if !self.state.leader {
                return Err(juju_error("status-set", "this unit is not the leader"));
            }
            self.state.app_status = status.clone();
        } else {
            self.state.unit_status = status.clone();
        }
        Ok(())
    }

    fn juju_log(&mut self, level: LogLevel, message: &str) -> Result<()> {
        self.record(commands::juju_log(level, message));
        self.state.logs.push((level, message.to_string()));
        Ok(())
    }

    fn application_version_set(&mut self, version: &str) -> Result<()> {
        self.record(commands::application_version_set(version));
        self.state.workload_version = version.to_string();
        Ok(())
    }

    fn open_port(&mut self, port: &Port) -> Result<()> {
        self.record(commands::open_port(port));
        self.state.opened_ports.insert(port.clone());
        Ok(())
    }

    fn close_port(&mut self, port: &Port) -> Result<()> {
        self.record(commands::close_port(port));
        self.state.opened_ports.remove(port);
        Ok(())
    }

    fn opened_ports(&mut self) -> Result<Vec<Port>> {
        self.record(commands::opened_ports());
        Ok(self.state.opened_ports.iter().cloned().collect())
    }

    fn network_get(&mut self, binding: &str, relation: Option<u64>) -> Result<Network> {
        self.record(commands::network_get(binding, relation));
        if let Some(id) = relation {
            if self.state.relation(id).is_none() {
                return Err(juju_error(
                    "network-get",
                    &format!("relation {id} not found"),
                ));
            }
        }
        let addr = self.state.address.clone();
        Ok(Network {
            bind_addresses: vec![BindAddress {
                mac_address: String::new(),
                interface_name: "eth0".into(),
                addresses: vec![Address {
                    hostname: String::new(),
                    value: addr.clone(),
                    cidr: format!("{addr}/32"),
                }],
            }],
            egress_subnets: vec![format!("{addr}/32")],
            ingress_addresses: vec![addr],
        })
    }

    fn goal_state(&mut self) -> Result<GoalState> {
        self.record(commands::goal_state());
        let mut units = BTreeMap::new();
        let peers = self.state.relations.iter().filter(|r| r.peer);
        let names = std::iter::once(self.state.unit.clone())
            .chain(peers.flat_map(|r| r.remote_units.keys().cloned()));
        for u in names {
            let status = if self.state.dying_units.contains(&u) {
                "dying"
            } else {
                "active"
            };
            units.insert(
                u,
                GoalStatus {
                    status: status.into(),
                    since: None,
                },
            );
        }
        Ok(GoalState {
            units,
            relations: BTreeMap::new(),
        })
    }

    fn action_get(&mut self) -> Result<JsonMap> {
        self.record(commands::action_get());
        self.in_action("action-get")?;
        Ok(self.action_params.clone().unwrap_or_default())
    }

    fn action_set(&mut self, results: &BTreeMap<String, String>) -> Result<()> {
        self.record(commands::action_set(results));
        self.in_action("action-set")?;
        self.action.results.extend(results.clone());
        Ok(())
    }

    fn action_fail(&mut self, message: &str) -> Result<()> {
        self.record(commands::action_fail(message));
        self.in_action("action-fail")?;
        self.action.failure = Some(message.to_string());
        Ok(())
    }

    fn action_log(&mut self, message: &str) -> Result<()> {
        self.record(commands::action_log(message));
        self.in_action("action-log")?;
        self.action.logs.push(message.to_string());
        Ok(())
    }

    fn secret_add(
        &mut self,
        content: &SecretContent,
        owner: SecretOwner,
        meta: &SecretMeta,
    ) -> Result<SecretId> {
        let files: Vec<(String, String)> = content
            .keys()
            .map(|k| (k.clone(), "<file>".into()))
            .collect();
        self.record(commands::secret_add(owner, meta, &files));
        if owner == SecretOwner::Application && !self.state.leader {
            return Err(juju_error("secret-add", "this unit is not the leader"));
        }
        if let Some(k) = content.invalid_key() {
            return Err(juju_error(
                "secret-add",
                &format!("invalid secret key {k:?}"),
            ));
        }
        if let Some(l) = &meta.label {
            self.check_label_free("secret-add", l, None)?;
        }
        let id = SecretId::new(&self.state.model_uuid, &self.new_xid())
            .expect("generated ids are valid");
        let owner = match owner {
            SecretOwner::Application => Owner::App,
            SecretOwner::Unit => Owner::Unit,
        };
        let mut s = SecretState::new(id.clone(), owner, content.clone());
        Self::apply_meta(&mut s, meta);
        self.state.secrets.push(s);
        Ok(id)
    }

    fn secret_get(&mut self, secret: &SecretRef, revision: Revision) -> Result<SecretContent> {
        self.record(commands::secret_get(secret, revision));
        let i = self.find_secret("secret-get", secret)?;
        let s = &mut self.state.secrets[i];
        if !s.owner.may_read() {
            return Err(juju_error("secret-get", "permission denied"));
        }
        if let SecretRef::Id(_, Some(label)) = secret {
            if s.owner.is_remote() {
                s.consumer_label = Some(label.clone());
            } else {
                s.owner_label = Some(label.clone());
            }
        }
        let latest = s.latest();
        let rev = match revision {
            Revision::Peek => latest,
            Revision::Refresh => {
                s.tracked = Some(latest);
                latest
            }
            Revision::Tracked => *s.tracked.get_or_insert(latest),
        };
        s.revisions
            .get(&rev)
            .cloned()
            .ok_or_else(|| juju_error("secret-get", &format!("secret revision {rev} not found")))
    }

    fn secret_info_get(&mut self, secret: &SecretRef) -> Result<SecretInfo> {
        self.record(commands::secret_info_get(secret));
        let i = self.find_secret("secret-info-get", secret)?;
        let s = &self.state.secrets[i];
        let owner = match s.owner {
            Owner::Unit => SecretOwner::Unit,
            Owner::App if self.state.leader => SecretOwner::Application,
            _ => {
                return Err(juju_error(
                    "secret-info-get",
                    &format!("secret {:?} not found", s.id.xid()),
                ))
            }
        };
        Ok(SecretInfo {
            id: Some(s.id.clone()),
            revision: s.latest(),
            label: s.owner_label.clone(),
            owner,
            description: s.description.clone(),
            expiry: s.expire.clone(),
            rotation: s.rotate,
            rotates: None,
        })
    }

    fn secret_set(
        &mut self,
        id: &SecretId,
        content: Option<&SecretContent>,
        meta: &SecretMeta,
    ) -> Result<()> {
        let files: Vec<(String, String)> = content
            .map(|c| c.keys().map(|k| (k.clone(), "<file>".into())).collect())
            .unwrap_or_default();
        self.record(commands::secret_set(id, meta, &files));
        let i = self.find_secret("secret-set", &SecretRef::Id(id.clone(), None))?;
        self.check_manage("secret-set", &self.state.secrets[i])?;
        if let Some(l) = &meta.label {
            self.check_label_free("secret-set", l, Some(id))?;
        }
        let idempotent = self.state.juju_version.has_idempotent_secret_set();
        let s = &mut self.state.secrets[i];
        if let Some(c) = content {
            if let Some(k) = c.invalid_key() {
                return Err(juju_error(
                    "secret-set",
                    &format!("invalid secret key {k:?}"),
                ));
            }
            if !(idempotent && s.latest_content() == Some(c)) {
                let next = s.latest() + 1;
                s.revisions.insert(next, c.clone());
            }
        }
        Self::apply_meta(s, meta);
        Ok(())
    }

    fn secret_grant(&mut self, id: &SecretId, relation: u64, unit: Option<&str>) -> Result<()> {
        self.record(commands::secret_grant(id, relation, unit));
        self.grant_change("secret-grant", id, relation, unit, true)
    }

    fn secret_revoke(&mut self, id: &SecretId, relation: u64, unit: Option<&str>) -> Result<()> {
        self.record(commands::secret_revoke(id, relation, unit));
        self.grant_change("secret-revoke", id, relation, unit, false)
    }

    fn secret_remove(&mut self, id: &SecretId, revision: Option<u64>) -> Result<()> {
        self.record(commands::secret_remove(id, revision));
        let i = self.find_secret("secret-remove", &SecretRef::Id(id.clone(), None))?;
        self.check_manage("secret-remove", &self.state.secrets[i])?;
        match revision {
            None => {
                self.state.secrets.remove(i);
            }
            Some(r) => {
                let s = &mut self.state.secrets[i];
                if s.revisions.remove(&r).is_none() {
                    return Err(juju_error(
                        "secret-remove",
                        &format!("secret revision {r} not found"),
                    ));
                }
                if s.revisions.is_empty() {
                    self.state.secrets.remove(i);
                }
            }
        }
        Ok(())
    }

    fn secret_ids(&mut self) -> Result<Vec<SecretId>> {
        self.record(commands::secret_ids());
        Ok(self
            .state
            .secrets
            .iter()
            .filter(|s| !s.owner.is_remote())
            .map(|s| s.id.clone())
            .collect())
    }
}
