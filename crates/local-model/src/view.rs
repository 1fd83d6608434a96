//! One unit's view of the model, as a `juju_rules::State` (so that Juju's rules
//! in `juju_rules` and the hook-tool interpreter apply unchanged), and the
//! commit of a successful hook's changes back into the model.

use crate::model::{
    Consumer, Life, Model, RelationRecord, SecretOwnerRecord, SecretRecord, Shared,
};
use charm::relation::app_of;
use charm::{JujuVersion, SecretId};
use juju_rules::{Owner, PayloadState, RelationState, SecretState, State, StorageState};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The unit's view. Its secrets are those it has a part in: the ones it or
/// its application owns, those granted to it, and those it consumes (one no
/// longer granted is marked so and shown without content). The rest of the
/// model's secrets are not there: with a thousand clients, each hook of a
/// client would copy every one of them. New secrets take their ids from the
/// range the hook was given ([`Model::reserve_secret_numbers`]).
pub fn view(model: &Model, unit: &str) -> Option<State> {
    let app_name = app_of(unit);
    let app = model.applications.get(app_name)?;
    let me = app.units.get(unit)?;
    let mut state = State::new(unit).leader(app.leader.as_deref() == Some(unit));
    state.model_name = model.name.clone();
    state.model_uuid = model.uuid.clone();
    state.juju_version = model
        .juju_version
        .parse()
        .unwrap_or(JujuVersion::new(3, 6, 4));
    state.config = app.effective_config();
    state.address = me.address.clone();
    state.secret_numbers_from = model.next_secret;
    state.unit_status = me.status.clone();
    state.app_status = app.status.clone();
    state.workload_version = app.workload_version.clone();
    state.opened_ports = me.opened_ports.clone();
    state.leader_settings = app.leader_settings.clone();
    state.k8s_spec = app.k8s_spec.clone();
    state.k8s_raw_spec = app.k8s_raw_spec.clone();
    state.trusted = app.trust;
    state.charm_state = me.charm_state.clone();
    state.storage_declared = app
        .files
        .meta
        .storage
        .iter()
        .map(|(name, spec)| (name.clone(), spec.kind.clone()))
        .collect();
    state.storage = me
        .storage
        .iter()
        .map(|(id, s)| {
            let storage = StorageState {
                kind: s.kind.clone(),
                location: s.location.clone(),
            };
            (id.clone(), storage)
        })
        .collect();
    state.payloads = me
        .payloads
        .iter()
        .map(|(key, p)| {
            let payload = PayloadState {
                kind: p.kind.clone(),
                status: p.status.clone(),
                tags: p.tags.clone(),
            };
            (key.clone(), payload)
        })
        .collect();
    // Removing an application makes each of its units dying, as in Juju.
    state.dying_units = app
        .units
        .iter()
        .filter(|(_, u)| u.life == Life::Dying || app.dying)
        .map(|(n, _)| n.clone())
        .collect();
    // A relation the unit has seen broken is gone for it, as in Juju, even
    // while other units still have its hooks to run.
    let broken = |id: u64| me.seen.relations.get(&id).is_some_and(|s| s.broken);
    for r in model
        .relations_of(app_name)
        .filter(|r| !(r.dying && broken(r.id)))
    {
        let end = r.end_of(app_name).expect("relations_of");
        let remote_app = r.remote_app(app_name).unwrap_or(app_name).to_string();
        let mut rel = if r.is_peer() {
            RelationState::peer(&end.endpoint, r.id, app_name)
        } else {
            RelationState::new(&end.endpoint, r.id, &remote_app)
        };
        rel.local_app_data = r
            .app_bags
            .get(app_name)
            .map(|b| b.data.clone())
            .unwrap_or_default();
        rel.local_unit_data = r
            .unit_bags
            .get(unit)
            .map(|b| b.data.clone())
            .unwrap_or_default();
        if !r.is_peer() {
            rel.remote_app_data = r
                .app_bags
                .get(&remote_app)
                .map(|b| b.data.clone())
                .unwrap_or_default();
        }
        for member in r
            .scope
            .iter()
            .filter(|u| app_of(u) == remote_app && u.as_str() != unit)
        {
            rel.remote_units.insert(
                member.clone(),
                r.unit_bags
                    .get(member)
                    .map(|b| b.data.clone())
                    .unwrap_or_default(),
            );
        }
        state.relations.push(rel);
    }
    let related: HashSet<u64> = model.relations_of(app_name).map(|r| r.id).collect();
    state.secrets = model
        .secrets
        .iter()
        .filter_map(|s| secret_view(model, s, unit, &related))
        .collect();
    Some(state)
}

/// A secret as `unit` sees it, if it has a part in it; `related` holds the
/// ids of the relations its application is in, through which a grant
/// reaches it.
fn secret_view(
    model: &Model,
    s: &SecretRecord,
    unit: &str,
    related: &HashSet<u64>,
) -> Option<SecretState> {
    let app = app_of(unit);
    let owner = match &s.owner {
        SecretOwnerRecord::App(a) if a == app => Owner::App,
        SecretOwnerRecord::Unit(u) if u == unit => Owner::Unit,
        _ => Owner::Remote {
            app: s.owner_app().to_string(),
            granted: s
                .grants
                .iter()
                .any(|(rel, to)| related.contains(rel) && to.as_deref().is_none_or(|u| u == unit)),
        },
    };
    let consumer = s.consumers.get(unit);
    if matches!(owner, Owner::Remote { .. }) && !owner.may_read() && consumer.is_none() {
        return None;
    }
    let consumer = consumer.cloned().unwrap_or_default();
    // A secret the unit may not read is shown without its content.
    let revisions = if owner.may_read() {
        s.revisions.clone()
    } else {
        s.revisions
            .keys()
            .map(|r| (*r, charm::secret::SecretContent::default()))
            .collect()
    };
    let id = SecretId::new(&model.uuid, &s.xid).expect("model secrets have valid ids");
    Some(SecretState {
        id,
        owner_label: if matches!(owner, Owner::Remote { .. }) {
            None
        } else {
            s.owner_label.clone()
        },
        owner,
        consumer_label: consumer.label,
        description: s.description.clone(),
        expire: s.expire.clone(),
        rotate: s.rotate,
        revisions,
        tracked: consumer.tracked,
        grants: s.grants.clone(),
    })
}

/// Schedules rotation when the policy is set or changed, and expiry for the
/// latest revision when `--expire` changes.
fn schedule(record: &mut SecretRecord, s: &SecretState, now: u64) {
    if record.revisions.is_empty() || record.rotate != s.rotate {
        record.next_rotate = s
            .rotate
            .and_then(crate::clock::rotate_interval)
            .map(|i| now + i);
    }
    let latest = s.revisions.keys().next_back().copied().unwrap_or(0);
    if let Some(expire) = &s.expire {
        if record.expire.as_ref() != Some(expire) {
            if let Some(at) = crate::clock::expiry(expire, now) {
                record.expiries.insert(latest, at);
            }
        }
    }
    record.expiries.retain(|r, _| s.revisions.contains_key(r));
}

/// What a secret's owner sets.
type Owned<'a> = (
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<charm::secret::Rotate>,
    &'a BTreeMap<u64, charm::secret::SecretContent>,
    &'a std::collections::BTreeSet<(u64, Option<String>)>,
);

fn owned(s: &SecretState) -> Owned<'_> {
    (
        &s.owner_label,
        &s.description,
        &s.expire,
        &s.rotate,
        &s.revisions,
        &s.grants,
    )
}

/// Commits what a successful hook changed, comparing the view before and after.
/// Databag versions move only for bags whose content changed.
pub fn commit(model: &mut Model, unit: &str, before: &State, after: &State) {
    let app_name = app_of(unit).to_string();
    // Looked up by id, not searched: a unit of an application with a
    // thousand relations sees a thousand relations and secrets.
    let old_relations: HashMap<u64, &RelationState> =
        before.relations.iter().map(|r| (r.id, r)).collect();
    let mut records: HashMap<u64, &mut Shared<RelationRecord>> =
        model.relations.iter_mut().map(|r| (r.id, r)).collect();
    for rel in &after.relations {
        let (Some(old), Some(record)) = (old_relations.get(&rel.id), records.get_mut(&rel.id))
        else {
            continue;
        };
        if rel.local_unit_data != old.local_unit_data {
            record
                .unit_bags
                .entry(unit.to_string())
                .or_default()
                .set(rel.local_unit_data.clone());
        }
        if rel.local_app_data != old.local_app_data {
            record
                .app_bags
                .entry(app_name.clone())
                .or_default()
                .set(rel.local_app_data.clone());
        }
    }
    // Only the secrets the unit was shown are looked at, found by id.
    let kept: HashSet<&str> = after.secrets.iter().map(|s| s.id.xid()).collect();
    let removed: HashSet<&str> = before
        .secrets
        .iter()
        .map(|s| s.id.xid())
        .filter(|x| !kept.contains(x))
        .collect();
    if !removed.is_empty() {
        model.secrets.retain(|s| !removed.contains(s.xid.as_str()));
    }
    let mut at: HashMap<&str, usize> = model
        .secrets
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((*kept.get(s.xid.as_str())?, i)))
        .collect();
    let old_secrets: HashMap<&str, &SecretState> =
        before.secrets.iter().map(|s| (s.id.xid(), s)).collect();
    let mut created = false;
    for s in &after.secrets {
        let i = *at.entry(s.id.xid()).or_insert_with(|| {
            let owner = match s.owner {
                Owner::Unit => SecretOwnerRecord::Unit(unit.to_string()),
                _ => SecretOwnerRecord::App(app_name.clone()),
            };
            created = true;
            model
                .secrets
                .push(SecretRecord::new(s.id.xid().to_string(), owner).into());
            model.secrets.len() - 1
        });
        let record = &mut model.secrets[i];
        // Only what the hook changed: a unit that did not touch its
        // application's secret must not undo what the leader did meanwhile.
        let changed = old_secrets
            .get(s.id.xid())
            .is_none_or(|o| owned(o) != owned(s));
        if !matches!(s.owner, Owner::Remote { .. }) && changed {
            schedule(record, s, model.now);
            record.owner_label = s.owner_label.clone();
            record.description = s.description.clone();
            record.expire = s.expire.clone();
            record.rotate = s.rotate;
            record.revisions = s.revisions.clone();
            record.grants = s.grants.clone();
        }
        let consumer = Consumer {
            label: s.consumer_label.clone(),
            tracked: s.tracked,
        };
        // Looked at before it is written: a record written is the model's
        // own copy, saved again.
        if (s.tracked.is_some() || s.consumer_label.is_some())
            && record.consumers.get(unit) != Some(&consumer)
        {
            record.consumers.insert(unit.to_string(), consumer);
        }
    }
    if created {
        model.secrets.sort_by(|a, b| a.xid.cmp(&b.xid));
    }
    let leader = after.leader;
    if let Some(app) = model.applications.get_mut(&app_name) {
        if leader {
            app.status = after.app_status.clone();
            if after.leader_settings != before.leader_settings {
                app.leader_settings = after.leader_settings.clone();
                app.leader_settings_version += 1;
            }
            if after.k8s_spec != before.k8s_spec {
                app.k8s_spec = after.k8s_spec.clone();
            }
            if after.k8s_raw_spec != before.k8s_raw_spec {
                app.k8s_raw_spec = after.k8s_raw_spec.clone();
            }
        }
        app.workload_version = after.workload_version.clone();
        if let Some(u) = app.units.get_mut(unit) {
            u.status = after.unit_status.clone();
            u.opened_ports = after.opened_ports.clone();
            u.charm_state = after.charm_state.clone();
            for (name, count) in &after.storage_added {
                *u.storage_pending.entry(name.clone()).or_default() += count;
            }
            u.payloads = after
                .payloads
                .iter()
                .map(|(key, p)| {
                    let record = crate::model::PayloadRecord {
                        kind: p.kind.clone(),
                        status: p.status.clone(),
                        tags: p.tags.clone(),
                    };
                    (key.clone(), record)
                })
                .collect();
        }
    }
}

/// What Juju does after a successful config-changed: it writes the unit's
/// network settings ([`crate::model::network_settings`]) again into its bag of
/// every relation it is in scope of, in the same transaction as the hook's own
/// changes, which are applied last (so a key the hook wrote keeps its value).
pub fn refresh_network(model: &mut Model, unit: &str, before: &State, after: &State) {
    let Some(address) = model.unit(unit).map(|u| u.address.clone()) else {
        return;
    };
    for record in model.relations.iter_mut() {
        if !record.scope.contains(unit) {
            continue;
        }
        let written = |key: &str| {
            let value = |s: &State| {
                s.relation(record.id)
                    .and_then(|r| r.local_unit_data.get(key).cloned())
            };
            value(before) != value(after)
        };
        let mut bag = record
            .unit_bags
            .get(unit)
            .map(|b| b.data.clone())
            .unwrap_or_default();
        for (key, value) in crate::model::network_settings(&address) {
            if !written(key) {
                bag.insert(key.to_string(), value);
            }
        }
        record
            .unit_bags
            .entry(unit.to_string())
            .or_default()
            .set(bag);
    }
}
