//! Which hook a unit runs next, chosen from the model's state the way Juju's
//! uniter does: it compares what the unit's charm has seen with the model now,
//! in a fixed priority order, so many changes between two hooks collapse into
//! one. [`done`] records what a successful hook showed.

use crate::model::{
    Application, Life, Model, RelationRecord, SecretOwnerRecord, SecretRecord, Unit,
};
use charm::event::Notice;
use charm::relation::{app_of, Relation};
use charm::{Event, RelationEvent, SecretEvent, SecretId};
use std::collections::HashMap;

/// The model's relations and secrets by whom they concern, built once for a
/// pass over many units, so that each unit's look costs its own relations and
/// secrets, not the whole model's.
pub struct Index<'a> {
    /// Each application's relations, by id.
    relations: HashMap<&'a str, Vec<&'a RelationRecord>>,
    /// The secrets each unit consumes, in the model's order.
    consumed: HashMap<&'a str, Vec<&'a SecretRecord>>,
    /// The secrets each application or unit owns, with their place in the
    /// model's order.
    owned: HashMap<&'a str, Vec<(usize, &'a SecretRecord)>>,
}

impl<'a> Index<'a> {
    /// The index of `model` as it is.
    pub fn new(model: &'a Model) -> Index<'a> {
        let mut relations: HashMap<&str, Vec<&RelationRecord>> = HashMap::new();
        for r in &model.relations {
            let mut apps: Vec<&str> = r.ends.iter().map(|e| e.app.as_str()).collect();
            apps.dedup();
            for app in apps {
                relations.entry(app).or_default().push(r);
            }
        }
        for list in relations.values_mut() {
            list.sort_by_key(|r| r.id);
        }
        let mut consumed: HashMap<&str, Vec<&SecretRecord>> = HashMap::new();
        let mut owned: HashMap<&str, Vec<(usize, &SecretRecord)>> = HashMap::new();
        for (at, s) in model.secrets.iter().enumerate() {
            for unit in s.consumers.keys() {
                consumed.entry(unit).or_default().push(s);
            }
            let owner = match &s.owner {
                SecretOwnerRecord::App(a) => a.as_str(),
                SecretOwnerRecord::Unit(u) => u.as_str(),
            };
            owned.entry(owner).or_default().push((at, s));
        }
        Index {
            relations,
            consumed,
            owned,
        }
    }

    /// The relations of `app`, by id.
    fn relations_of(&self, app: &str) -> &[&'a RelationRecord] {
        self.relations.get(app).map_or(&[], Vec::as_slice)
    }

    /// The secrets `unit` consumes, in the model's order.
    fn consumed_by(&self, unit: &str) -> &[&'a SecretRecord] {
        self.consumed.get(unit).map_or(&[], Vec::as_slice)
    }

    /// The secrets `unit` owns, itself or (as its application's leader)
    /// through its application, in the model's order.
    fn owned_by(&self, unit: &str, leader: bool) -> Vec<&'a SecretRecord> {
        let mut owned: Vec<(usize, &SecretRecord)> =
            self.owned.get(unit).cloned().unwrap_or_default();
        if leader {
            owned.extend(self.owned.get(app_of(unit)).into_iter().flatten());
            owned.sort_by_key(|(at, _)| *at);
        }
        owned.into_iter().map(|(_, s)| s).collect()
    }
}

/// The number of unit `name` (`app/3` → 3).
fn unit_number(name: &str) -> u32 {
    name.rsplit_once('/')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// The digest config-changed is due on: the options, the unit's address and
/// the application's trust (`juju trust` is seen as config-changed).
pub fn config_digest(app: &Application, unit: &Unit) -> String {
    format!(
        "{}|{}{}",
        serde_json::Value::Object(app.effective_config()),
        unit.address,
        if app.trust { "|trusted" } else { "" }
    )
}

fn relation_event(
    r: &RelationRecord,
    app: &str,
    remote_unit: Option<&str>,
    departing: Option<&str>,
) -> RelationEvent {
    let end = r.end_of(app).expect("a relation of the application");
    RelationEvent {
        relation: Relation::new(&end.endpoint, r.id),
        remote_app: r.remote_app(app).unwrap_or(app).to_string(),
        remote_unit: remote_unit.map(str::to_string),
        departing_unit: departing.map(str::to_string),
    }
}

/// Remote members of a relation in scope, as a unit sees them (sorted).
fn members<'a>(
    r: &'a RelationRecord,
    app: &'a str,
    unit: &'a str,
) -> impl Iterator<Item = &'a String> + 'a {
    r.scope.iter().filter(move |u| is_member(r, app, unit, u))
}

/// Whether `member` is one of the units `unit` sees in the relation ([`members`]).
fn is_member(r: &RelationRecord, app: &str, unit: &str, member: &str) -> bool {
    let remote = r.remote_app(app).unwrap_or(app);
    member != unit && app_of(member) == remote && r.scope.contains(member)
}

/// The unit's next hook, or `None` when it is up to date (or blocked by a failed hook).
pub fn next_hook(model: &Model, unit_name: &str) -> Option<Event> {
    next_hook_in(model, &Index::new(model), unit_name)
}

/// [`next_hook`], with the model's [`Index`] already built.
pub fn next_hook_in(model: &Model, index: &Index<'_>, unit_name: &str) -> Option<Event> {
    let app_name = app_of(unit_name);
    let app = model.applications.get(app_name)?;
    let unit = app.units.get(unit_name)?;
    let seen = &unit.seen;
    if unit.failed.is_some() || seen.removed {
        return None;
    }
    // Storage attaches before install (what the unit starts with) and
    // whenever `storage-add` adds more.
    if let Some((id, storage)) = unit
        .storage
        .iter()
        .find(|(id, _)| !seen.storage.contains(*id))
    {
        return Some(Event::StorageAttached {
            storage: id.clone(),
            location: storage.location.clone(),
        });
    }
    if !seen.installed {
        return Some(Event::Install);
    }
    // A refreshed charm upgrades the unit before anything else, unless the
    // StatefulSet's partition holds it back (a unit numbered below it).
    if seen.charm_revision < app.charm_revision && unit_number(unit_name) >= app.partition {
        return Some(Event::UpgradeCharm);
    }
    let dying = unit.life == Life::Dying || app.dying;
    let relations = index.relations_of(app_name);
    if !dying {
        if let Some(r) = relations
            .iter()
            .find(|r| !r.dying && !seen.relations.get(&r.id).is_some_and(|s| s.created))
        {
            return Some(Event::RelationCreated(relation_event(
                r, app_name, None, None,
            )));
        }
        let leader = app.leader.as_deref() == Some(unit_name);
        let settings_changed = !leader && seen.leader_settings < app.leader_settings_version;
        if seen.leadership != Some(leader) || settings_changed {
            return Some(if leader {
                Event::LeaderElected
            } else {
                Event::LeaderSettingsChanged
            });
        }
    }
    if let Some(c) = unit
        .containers_up
        .iter()
        .find(|c| !seen.pebble_ready.contains(*c))
    {
        return Some(Event::PebbleReady {
            container: c.clone(),
        });
    }
    if let Some(event) = notice_due(unit) {
        return Some(event);
    }
    for s in index.consumed_by(unit_name) {
        let Some(consumer) = s.consumers.get(unit_name) else {
            continue;
        };
        let announced = seen.secret_revisions.get(&s.xid).copied().unwrap_or(0);
        if consumer.tracked.is_some_and(|t| t < s.latest()) && announced < s.latest() {
            let label = consumer.label.clone().or_else(|| {
                (s.owner_app() == app_name)
                    .then(|| s.owner_label.clone())
                    .flatten()
            });
            return Some(Event::SecretChanged(SecretEvent {
                id: SecretId::new(&model.uuid, &s.xid).expect("valid ids"),
                label,
                revision: None,
            }));
        }
    }
    // The owner (the leader, for an application secret) removes revisions that
    // are not the latest and that no unit tracks any more.
    let leader = app.leader.as_deref() == Some(unit_name);
    let owned = index.owned_by(unit_name, leader);
    for s in &owned {
        // Only a secret with revisions before its latest may have one to
        // remove (most have one revision): the others cost no set.
        if s.revisions.len() < 2 {
            continue;
        }
        let in_use = s.in_use(&model.reading);
        let obsolete = s.revisions.keys().find(|r| {
            **r < s.latest()
                && !in_use.contains(r)
                && !seen.secret_removals.contains(&(s.xid.clone(), **r))
        });
        if let Some(revision) = obsolete {
            return Some(Event::SecretRemove(SecretEvent {
                id: SecretId::new(&model.uuid, &s.xid).expect("valid ids"),
                label: s.owner_label.clone(),
                revision: Some(*revision),
            }));
        }
    }
    if !dying {
        if let Some(event) = secret_due(model, unit_name, &owned) {
            return Some(event);
        }
    }
    if !dying && seen.config.as_deref() != Some(config_digest(app, unit).as_str()) {
        return Some(Event::ConfigChanged);
    }
    if !dying && !seen.started {
        return Some(Event::Start);
    }
    for r in relations {
        let Some(rs) = seen.relations.get(&r.id).filter(|s| s.created && !s.broken) else {
            continue;
        };
        if dying || r.dying {
            if let Some(m) = rs.members.keys().next() {
                let departing = if dying { unit_name } else { m.as_str() };
                return Some(Event::RelationDeparted(relation_event(
                    r,
                    app_name,
                    Some(m),
                    Some(departing),
                )));
            }
            if !r.is_peer() {
                return Some(Event::RelationBroken(relation_event(
                    r, app_name, None, None,
                )));
            }
            continue;
        }
        let leader = app.leader.as_deref() == Some(unit_name);
        let remote_app = r.remote_app(app_name).unwrap_or(app_name);
        let app_version = r.app_bags.get(remote_app).map_or(0, |b| b.version);
        if !(r.is_peer() && leader) && app_version > rs.app_version {
            return Some(Event::RelationChanged(relation_event(
                r, app_name, None, None,
            )));
        }
        // A joined member's first relation-changed follows its relation-joined.
        if let Some(m) = rs.pending_changed.iter().next() {
            return Some(Event::RelationChanged(relation_event(
                r,
                app_name,
                Some(m),
                None,
            )));
        }
        let current = |m: &str| is_member(r, app_name, unit_name, m);
        if let Some(m) = members(r, app_name, unit_name).find(|m| !rs.members.contains_key(*m)) {
            return Some(Event::RelationJoined(relation_event(
                r,
                app_name,
                Some(m),
                None,
            )));
        }
        for (m, v) in &rs.members {
            if r.unit_bags.get(m).map_or(0, |b| b.version) > *v && current(m) {
                return Some(Event::RelationChanged(relation_event(
                    r,
                    app_name,
                    Some(m),
                    None,
                )));
            }
        }
        if let Some(m) = rs.members.keys().find(|m| !current(m)) {
            return Some(Event::RelationDeparted(relation_event(
                r,
                app_name,
                Some(m),
                Some(m),
            )));
        }
    }
    if dying {
        return Some(if seen.stopped {
            Event::Remove
        } else {
            Event::Stop
        });
    }
    if seen.status_tick < model.status_tick {
        return Some(Event::UpdateStatus);
    }
    None
}

/// The oldest custom notice, across the unit's containers that are up, that
/// is new or has repeated since its last pebble-custom-notice: one hook per
/// repeat, however often it occurred in between (Juju's notice watcher).
fn notice_due(unit: &Unit) -> Option<Event> {
    unit.containers_up
        .iter()
        .filter_map(|c| Some((c, unit.notices.get(c)?)))
        .flat_map(|(c, notices)| notices.iter().map(move |n| (c, n)))
        .filter(|(c, n)| {
            unit.seen.notices.get(*c).and_then(|s| s.get(&n.id)) != Some(&n.last_repeated)
        })
        .min_by(|a, b| a.1.last_repeated.cmp(&b.1.last_repeated))
        .map(|(c, n)| Event::PebbleCustomNotice {
            container: c.clone(),
            notice: Notice {
                id: n.id.clone(),
                kind: "custom".into(),
                key: n.key.clone(),
            },
        })
}

/// A secret the unit owns whose rotation is due (secret-rotate) or one of
/// whose revisions has expired (secret-expired), by the model's clock.
fn secret_due(model: &Model, unit_name: &str, owned: &[&SecretRecord]) -> Option<Event> {
    let seen = &model.unit(unit_name)?.seen;
    for s in owned {
        let id = || SecretId::new(&model.uuid, &s.xid).expect("valid ids");
        if s.next_rotate.is_some_and(|t| t <= model.now) {
            return Some(Event::SecretRotate(SecretEvent {
                id: id(),
                label: s.owner_label.clone(),
                revision: None,
            }));
        }
        let expired = s.expiries.iter().find(|(r, at)| {
            **at <= model.now
                && s.revisions.contains_key(r)
                && !seen.secret_expiries.contains(&(s.xid.clone(), **r))
        });
        if let Some((revision, _)) = expired {
            return Some(Event::SecretExpired(SecretEvent {
                id: id(),
                label: s.owner_label.clone(),
                revision: Some(*revision),
            }));
        }
    }
    None
}

/// What the controller does after a successful hook besides recording it: a
/// rotated secret's next rotation is due one interval later if the owner added a
/// revision, or after Juju's retry delay if it did not. `rotated_from` is
/// the secret's latest revision when the hook started ([`rotated_from`]).
pub fn after_hook(model: &mut Model, rotated_from: u64, event: &Event) {
    let Event::SecretRotate(s) = event else {
        return;
    };
    let now = model.now;
    if let Some(record) = model.secrets.iter_mut().find(|r| r.xid == s.id.xid()) {
        record.next_rotate = if record.latest() > rotated_from {
            record
                .rotate
                .and_then(crate::clock::rotate_interval)
                .map(|i| now + i)
        } else {
            Some(now + crate::clock::ROTATE_RETRY)
        };
    }
}

/// For a secret-rotate hook, the secret's latest revision as it starts (0
/// otherwise), which [`after_hook`] compares with the one after.
pub fn rotated_from(model: &Model, event: &Event) -> u64 {
    let Event::SecretRotate(s) = event else {
        return 0;
    };
    model
        .secrets
        .iter()
        .find(|r| r.xid == s.id.xid())
        .map_or(0, |r| r.latest())
}

/// Records that `event` ran successfully on the unit.
pub fn done(model: &mut Model, unit_name: &str, event: &Event) {
    let app_name = app_of(unit_name).to_string();
    let (config, tick, leader_settings, charm_revision) = match model
        .applications
        .get(&app_name)
        .and_then(|a| a.units.get(unit_name).map(|u| (a, u)))
    {
        Some((a, u)) => (
            (*event == Event::ConfigChanged).then(|| config_digest(a, u)),
            model.status_tick,
            a.leader_settings_version,
            a.charm_revision,
        ),
        None => return,
    };
    let bag_version = |model: &Model, id: u64, owner: &str, app: bool| {
        model.relation(id).map_or(0, |r| {
            let bags = if app { &r.app_bags } else { &r.unit_bags };
            bags.get(owner).map_or(0, |b| b.version)
        })
    };
    let secret_latest = match event {
        Event::SecretChanged(s) => model
            .secrets
            .iter()
            .find(|r| r.xid == s.id.xid())
            .map(|r| r.latest()),
        _ => None,
    };
    let versions: Option<(u64, Option<(String, u64)>)> = event.relation().map(|r| {
        let remote_app_version = bag_version(model, r.relation.id, &r.remote_app, true);
        let unit_version = r
            .remote_unit
            .as_ref()
            .map(|m| (m.clone(), bag_version(model, r.relation.id, m, false)));
        (remote_app_version, unit_version)
    });
    let Some(unit) = model.unit_mut(unit_name) else {
        return;
    };
    if let Event::PebbleCustomNotice { container, notice } = event {
        let current = unit.notices.get(container).cloned().unwrap_or_default();
        let seen = unit.seen.notices.entry(container.clone()).or_default();
        seen.retain(|id, _| current.iter().any(|n| &n.id == id));
        if let Some(n) = current.iter().find(|n| n.id == notice.id) {
            seen.insert(n.id.clone(), n.last_repeated.clone());
        }
    }
    let seen = &mut unit.seen;
    match event {
        Event::Install => {
            seen.installed = true;
            seen.charm_revision = charm_revision;
        }
        // config-changed follows an upgrade, as Juju runs it.
        Event::UpgradeCharm => {
            seen.charm_revision = charm_revision;
            seen.config = None;
        }
        Event::LeaderElected => {
            seen.leadership = Some(true);
            seen.leader_settings = leader_settings;
        }
        Event::LeaderSettingsChanged => {
            seen.leadership = Some(false);
            seen.leader_settings = leader_settings;
        }
        Event::StorageAttached { storage, .. } => {
            seen.storage.insert(storage.clone());
        }
        Event::PebbleReady { container } => {
            seen.pebble_ready.insert(container.clone());
        }
        Event::SecretChanged(s) => {
            if let Some(latest) = secret_latest {
                seen.secret_revisions.insert(s.id.xid().to_string(), latest);
            }
        }
        Event::SecretRemove(s) => {
            if let Some(r) = s.revision {
                seen.secret_removals.insert((s.id.xid().to_string(), r));
            }
        }
        Event::SecretExpired(s) => {
            if let Some(r) = s.revision {
                seen.secret_expiries.insert((s.id.xid().to_string(), r));
            }
        }
        Event::ConfigChanged => seen.config = config,
        Event::Start => seen.started = true,
        Event::Stop => seen.stopped = true,
        Event::Remove => seen.removed = true,
        Event::UpdateStatus => seen.status_tick = tick,
        Event::RelationCreated(r) => {
            seen.relations.entry(r.relation.id).or_default().created = true
        }
        Event::RelationJoined(r) => {
            let rs = seen.relations.entry(r.relation.id).or_default();
            if let Some((m, _)) = versions.and_then(|v| v.1) {
                rs.members.insert(m.clone(), 0);
                rs.pending_changed.insert(m);
            }
        }
        Event::RelationChanged(r) => {
            let rs = seen.relations.entry(r.relation.id).or_default();
            match versions {
                Some((_, Some((m, v)))) => {
                    rs.members.insert(m.clone(), v);
                    rs.pending_changed.remove(&m);
                }
                Some((app_version, None)) => rs.app_version = app_version,
                None => {}
            }
        }
        Event::RelationDeparted(r) => {
            let rs = seen.relations.entry(r.relation.id).or_default();
            if let Some(m) = &r.remote_unit {
                rs.members.remove(m);
                rs.pending_changed.remove(m);
            }
        }
        Event::RelationBroken(r) => seen.relations.entry(r.relation.id).or_default().broken = true,
        _ => {}
    }
}
