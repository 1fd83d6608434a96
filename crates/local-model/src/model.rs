//! The model's state: applications, units, relations with versioned databags,
//! and secrets. It is plain data (saved as JSON by the controller); hooks change
//! it only through [`crate::view`], which commits a successful hook's changes.

use charm::backend::{JsonMap, Port};
use charm::metadata::CharmFiles;
use charm::secret::{Rotate, SecretContent};
use charm::{Databag, Status};
use pebble_api::Plan;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

/// A whole model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub uuid: String,
    pub juju_version: String,
    pub applications: BTreeMap<String, Shared<Application>>,
    pub relations: Vec<Shared<RelationRecord>>,
    pub secrets: Vec<Shared<SecretRecord>>,
    pub next_relation_id: u64,
    /// Where the last hook's range of new secret numbers starts: each hook,
    /// action or command gets the next [`SECRET_NUMBERS_PER_HOOK`] numbers,
    /// so hooks running at once never create the same secret id.
    pub next_secret: u64,
    /// Bumped each time update-status is due; units run it when behind.
    pub status_tick: u64,
    /// The model's clock in seconds since the epoch, as of the controller's
    /// last look; secret rotation and expiry are due against it.
    #[serde(default)]
    pub now: u64,
    /// How far the clock runs ahead of the machine's, in seconds (a test control).
    #[serde(default)]
    pub clock_offset: u64,
    /// The second octet of the model's addresses (`127.<network>.0.0/16`,
    /// see [`crate::network`]).
    #[serde(default)]
    pub network: u8,
    /// The third octet the last application deployed before address blocks
    /// got (`127.<network>.<subnet>.<unit + 1>`), in a model saved then.
    #[serde(default)]
    pub last_subnet: u8,
    /// The last application's address block (see [`crate::network`]).
    #[serde(default)]
    pub last_block: u16,
    /// The last task (action or exec) id handed out.
    #[serde(default)]
    pub next_task: u64,
    /// When a seed fixes the order units run in (`juju set-seed`), the state of
    /// the generator that shuffles each round; saved, so a restarted controller
    /// carries on the same sequence.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The last number each storage name's instances got (`data/0`, `data/1`, ...).
    #[serde(default)]
    pub storage_numbers: BTreeMap<String, u64>,
    /// When the model was first saved (its `model-status` since), by its clock.
    #[serde(default)]
    pub created: u64,
    /// A Kubernetes model: its charms find the Kubernetes API and its
    /// Services are routed (see [`crate::kube`]).
    #[serde(default)]
    pub kubernetes: bool,
    /// How many times the model was saved: the hooks recorded as started
    /// since the last save name it (see [`crate::store::save_started`]).
    #[serde(default)]
    pub saves: u64,
    /// What running hooks may read of each secret (by its xid). Not saved: a
    /// hook cut short runs again.
    #[serde(skip)]
    pub reading: Reading,
}

/// A deployed application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub charm_dir: PathBuf,
    #[serde(skip)]
    pub files: Shared<CharmFiles>,
    /// Options set by the user (defaults come from `files.config`).
    pub config: JsonMap,
    pub units: BTreeMap<String, Shared<Unit>>,
    pub leader: Option<String>,
    pub status: Status,
    pub workload_version: String,
    pub next_unit: u32,
    pub dying: bool,
    /// Deployed with `--trust`.
    #[serde(default)]
    pub trust: bool,
    /// Its block of the model's addresses, its own for as long as it lives
    /// (see [`crate::network`]); 0 for an application saved before blocks,
    /// whose units' third octet is `subnet`.
    #[serde(default)]
    pub block: u16,
    /// See `block`.
    #[serde(default)]
    pub subnet: u8,
    /// Leader settings (`leader-set`), and their version, bumped on each change.
    #[serde(default)]
    pub leader_settings: Databag,
    #[serde(default)]
    pub leader_settings_version: u64,
    /// The spec `k8s-spec-set` (or `pod-spec-set`) last set.
    #[serde(default)]
    pub k8s_spec: Option<String>,
    /// The spec `k8s-raw-set` last set.
    #[serde(default)]
    pub k8s_raw_spec: Option<String>,
    /// The status `juju status` shows as last stamped, and since when.
    #[serde(default)]
    pub status_since: Option<Since>,
    /// The charm's revision in the model: 0 as deployed, one more at each
    /// `juju refresh`.
    #[serde(default)]
    pub charm_revision: u64,
    /// On a Kubernetes model, its StatefulSet's rolling-update partition as
    /// the charm last set it through the API: units numbered below it keep
    /// their charm revision until it comes down.
    #[serde(default)]
    pub partition: u32,
    /// The root filesystem of each `oci-image` resource, as resolved at
    /// deploy; a container whose resource is not here runs on the host's
    /// system directories.
    #[serde(default)]
    pub images: BTreeMap<String, PathBuf>,
}

/// A part of the model shared, copy on write, by the model and the copy its
/// last save kept ([`crate::store::Serialised`]): while neither changed it,
/// comparing them costs a pointer's comparison. Changing it through
/// `DerefMut` gives this copy its own value first, so change only what does
/// change (look before you write): a value written alike compares equal
/// again, but by value.
#[derive(Debug, Default)]
pub struct Shared<T>(Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Shared<T> {
        Shared(Arc::new(value))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for Shared<T> {
    /// The value to change: this copy's own from now on.
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T> Shared<T> {
    /// Whether both are the very same value, not a copy.
    pub fn same(&self, other: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shared<T>, D::Error> {
        T::deserialize(deserializer).map(Shared::from)
    }
}

impl Application {
    /// The status `juju status` shows: the one the leader set, or if none was,
    /// its most severe unit's (as Juju derives it).
    pub fn shown_status(&self) -> Status {
        if !matches!(self.status, Status::Unknown(_)) {
            return self.status.clone();
        }
        let severity = |s: &Status| match s {
            Status::Error(_) => 6,
            Status::Blocked(_) => 5,
            Status::Maintenance(_) => 4,
            Status::Waiting(_) => 3,
            Status::Active(_) => 2,
            Status::Unknown(_) => 1,
        };
        self.units
            .values()
            .map(|u| u.status.clone())
            .max_by_key(severity)
            .unwrap_or_default()
    }
}

impl Application {
    /// What `config-get` prints: defaults overlaid with the user's options.
    pub fn effective_config(&self) -> JsonMap {
        let mut c = self.files.config.defaults();
        c.extend(self.config.clone());
        c
    }
}

/// Whether a unit is staying or going.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Life {
    #[default]
    Alive,
    Dying,
}

/// A unit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub address: String,
    pub life: Life,
    pub status: Status,
    pub opened_ports: BTreeSet<Port>,
    /// Containers whose Pebble is up.
    pub containers_up: BTreeSet<String>,
    /// What the unit's charm has seen (the resolver's memory).
    pub seen: Seen,
    /// The hook that failed, until it is retried or resolved.
    pub failed: Option<String>,
    /// The workload status the failure replaced, shown again once resolved.
    #[serde(default)]
    pub status_before_error: Option<Status>,
    /// Each container's Pebble plan as of the unit's last committed hook; a
    /// restarted controller gives it back to the container's new Pebble.
    #[serde(default)]
    pub plans: BTreeMap<String, Plan>,
    /// Its next hook is made to fail (`juju fail-next-hook`, a test control).
    #[serde(default)]
    pub fail_next_hook: bool,
    /// Removed with `--force`: a hook that fails is skipped rather than leaving
    /// the unit in error.
    #[serde(default)]
    pub forced: bool,
    /// The custom notices each container's Pebble holds, as of the controller's
    /// last look (each container's own, oldest last repeat first).
    #[serde(default)]
    pub notices: BTreeMap<String, Vec<NoticeRecord>>,
    /// The unit's charm state (`state-set`).
    #[serde(default)]
    pub charm_state: BTreeMap<String, String>,
    /// Its storage instances, by id (`data/0`).
    #[serde(default)]
    pub storage: BTreeMap<String, StorageRecord>,
    /// Storage asked for (at deploy or by `storage-add`) and not yet
    /// attached: storage name to count.
    #[serde(default)]
    pub storage_pending: BTreeMap<String, u64>,
    /// Its payloads (`payload-register`), by `<class>/<id>`.
    #[serde(default)]
    pub payloads: BTreeMap<String, PayloadRecord>,
    /// The workload status as last stamped and since when (`juju status`'s
    /// `since`), by the model's clock.
    #[serde(default)]
    pub status_since: Option<Since>,
    /// When its agent last went from idle to running something or back, by
    /// the model's clock (0: not since the unit was added).
    #[serde(default)]
    pub agent_since: u64,
    /// The hook it runs: saved before the hook's process starts and cleared
    /// in the save that commits its results (or records its failure), so a
    /// controller that finds it set after a crash runs that hook again.
    #[serde(default)]
    pub hook_started: Option<charm::Event>,
}

/// A storage instance of a unit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRecord {
    /// `filesystem` or `block`.
    pub kind: String,
    /// Its directory, under the unit's.
    pub location: String,
}

/// A payload a unit registered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRecord {
    pub kind: String,
    pub status: String,
    pub tags: Vec<String>,
}

/// A status and when it was first seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Since {
    pub status: Status,
    pub at: u64,
}

impl Since {
    /// Whether `since` needs a new stamp: `status` is not the one it stamped.
    fn stale(since: &Option<Since>, status: &Status) -> bool {
        since.as_ref().is_none_or(|s| s.status != *status)
    }

    /// `since` carried over when `status` is unchanged, else a new stamp at `now`.
    fn stamp(since: &mut Option<Since>, status: &Status, now: u64) {
        if Since::stale(since, status) {
            *since = Some(Since {
                status: status.clone(),
                at: now,
            });
        }
    }
}

/// A custom notice in a container: what its hook is told, and when it last
/// repeated (RFC 3339, as the Pebble server writes it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    pub id: String,
    pub key: String,
    pub last_repeated: String,
}

/// What one unit's charm has been told so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub installed: bool,
    pub started: bool,
    pub removed: bool,
    pub stopped: bool,
    /// Leadership as of the last leader-elected or leader-settings-changed.
    pub leadership: Option<bool>,
    /// The configuration digest of the last config-changed.
    pub config: Option<String>,
    pub relations: BTreeMap<u64, RelationSeen>,
    pub pebble_ready: BTreeSet<String>,
    /// Secret xid to the revision last announced by secret-changed.
    pub secret_revisions: BTreeMap<String, u64>,
    /// Revisions (secret xid, revision) already announced by secret-remove.
    #[serde(default)]
    pub secret_removals: BTreeSet<(String, u64)>,
    /// Revisions (secret xid, revision) already announced by secret-expired.
    #[serde(default)]
    pub secret_expiries: BTreeSet<(String, u64)>,
    pub status_tick: u64,
    /// Per container, each notice id with the last repeat its
    /// pebble-custom-notice announced.
    #[serde(default)]
    pub notices: BTreeMap<String, BTreeMap<String, String>>,
    /// The version of the leader settings last announced by leader-elected or
    /// leader-settings-changed.
    #[serde(default)]
    pub leader_settings: u64,
    /// Storage instances announced by storage-attached.
    #[serde(default)]
    pub storage: BTreeSet<String>,
    /// The application's charm revision the unit runs: installed with, or
    /// last upgraded to by upgrade-charm.
    #[serde(default)]
    pub charm_revision: u64,
}

/// What a unit has seen of one relation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationSeen {
    pub created: bool,
    pub broken: bool,
    /// Remote members joined, with the version of their bag last seen.
    pub members: BTreeMap<String, u64>,
    /// Members joined whose first relation-changed is still due.
    pub pending_changed: BTreeSet<String>,
    /// The remote application bag's version last seen.
    pub app_version: u64,
}

/// A bag and its version (bumped only when its content changes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    pub data: Databag,
    pub version: u64,
}

impl Versioned {
    /// Replaces the content; bumps the version if it changed.
    pub fn set(&mut self, data: Databag) {
        if data != self.data {
            self.data = data;
            self.version += 1;
        }
    }
}

/// One side of a relation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct End {
    pub app: String,
    pub endpoint: String,
}

/// A relation: two ends (one for a peer relation), and the bags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationRecord {
    pub id: u64,
    pub ends: Vec<End>,
    pub app_bags: BTreeMap<String, Versioned>,
    pub unit_bags: BTreeMap<String, Versioned>,
    /// Units that have entered scope.
    pub scope: BTreeSet<String>,
    pub dying: bool,
}

/// What Juju writes into a unit's bag of a relation when the unit enters its
/// scope, and again after each successful config-changed: its ingress address
/// as `ingress-address` and `private-address`, and `egress-subnets` (the
/// address as a /32 on the local model).
pub fn network_settings(address: &str) -> [(&'static str, String); 3] {
    [
        ("egress-subnets", format!("{address}/32")),
        ("ingress-address", address.to_string()),
        ("private-address", address.to_string()),
    ]
}

impl RelationRecord {
    /// Puts a unit in scope; its bag becomes [`network_settings`] (as Juju's
    /// `EnterScope` writes it), before any remote unit sees it join.
    pub fn enter_scope(&mut self, unit: &str, address: &str) {
        self.scope.insert(unit.to_string());
        let settings = network_settings(address)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        self.unit_bags
            .entry(unit.to_string())
            .or_default()
            .set(settings);
    }

    /// Whether this is a peer relation.
    pub fn is_peer(&self) -> bool {
        self.ends.len() == 1
    }

    /// This application's end.
    pub fn end_of(&self, app: &str) -> Option<&End> {
        self.ends.iter().find(|e| e.app == app)
    }

    /// The other application (the same one for peers).
    pub fn remote_app(&self, app: &str) -> Option<&str> {
        if self.is_peer() {
            return self.ends.first().map(|e| e.app.as_str());
        }
        self.ends
            .iter()
            .find(|e| e.app != app)
            .map(|e| e.app.as_str())
    }
}

/// Who owns a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretOwnerRecord {
    App(String),
    Unit(String),
}

/// A consumer's (or owner unit's) view of a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub label: Option<String>,
    pub tracked: Option<u64>,
}

/// A secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub xid: String,
    pub owner: SecretOwnerRecord,
    pub owner_label: Option<String>,
    pub description: Option<String>,
    pub expire: Option<String>,
    pub rotate: Option<Rotate>,
    pub revisions: BTreeMap<u64, SecretContent>,
    /// Unit name to what it tracks and calls the secret.
    pub consumers: BTreeMap<String, Consumer>,
    /// Relation id and, for a unit grant, the unit.
    pub grants: BTreeSet<(u64, Option<String>)>,
    /// When the owner is next told to rotate it (seconds since the epoch).
    #[serde(default)]
    pub next_rotate: Option<u64>,
    /// When each revision expires (seconds since the epoch).
    #[serde(default)]
    pub expiries: BTreeMap<u64, u64>,
}

/// What running hooks may read of the model's secrets ([`Model::reading`]):
/// by unit running a hook, the latest revision of each secret (by xid) its
/// view holds. A first `secret-get` or a `--refresh` there tracks that
/// revision once the hook commits, so it is not obsolete before then (Juju
/// records the read at once). Transient, it is not part of the model's
/// value: it is not saved, and models compare equal whatever it holds.
#[derive(Clone, Debug, Default)]
pub struct Reading(HashMap<String, HashMap<String, u64>>);

impl Reading {
    /// Marks `unit` as running a hook whose view holds `latest` of `xid`.
    pub fn mark(&mut self, xid: &str, unit: &str, latest: u64) {
        self.0
            .entry(unit.to_string())
            .or_default()
            .insert(xid.to_string(), latest);
    }

    /// Takes the marks of `unit`'s hook away, it has ended.
    pub fn end(&mut self, unit: &str) {
        self.0.remove(unit);
    }

    /// The revisions running hooks may track of `xid`.
    pub fn revisions<'a>(&'a self, xid: &'a str) -> impl Iterator<Item = u64> + 'a {
        self.0
            .values()
            .filter_map(move |held| held.get(xid).copied())
    }
}

impl PartialEq for Reading {
    fn eq(&self, _: &Reading) -> bool {
        true
    }
}

impl Eq for Reading {}

impl SecretRecord {
    /// A new secret, with nothing set but its id and owner.
    pub fn new(xid: String, owner: SecretOwnerRecord) -> SecretRecord {
        SecretRecord {
            xid,
            owner,
            owner_label: None,
            description: None,
            expire: None,
            rotate: None,
            revisions: BTreeMap::new(),
            consumers: BTreeMap::new(),
            grants: Default::default(),
            next_rotate: None,
            expiries: BTreeMap::new(),
        }
    }

    pub fn latest(&self) -> u64 {
        self.revisions.keys().next_back().copied().unwrap_or(0)
    }

    /// Revisions a consumer tracks, or may track once a running hook commits.
    pub fn in_use(&self, reading: &Reading) -> BTreeSet<u64> {
        self.consumers
            .values()
            .filter_map(|c| c.tracked)
            .chain(reading.revisions(&self.xid))
            .collect()
    }

    /// The application that owns it.
    pub fn owner_app(&self) -> &str {
        match &self.owner {
            SecretOwnerRecord::App(a) => a,
            SecretOwnerRecord::Unit(u) => charm::relation::app_of(u),
        }
    }
}

/// How many secret ids a hook may create.
pub const SECRET_NUMBERS_PER_HOOK: u64 = 1 << 16;

impl Model {
    /// Records, at the model's clock, when each unit's and application's status
    /// (and the model itself) was first seen as it is now.
    pub fn stamp_statuses(&mut self) {
        let now = self.now;
        if self.created == 0 {
            self.created = now;
        }
        // Looked at before anything is written: an application written is
        // the model's own copy, saved again.
        for app in self.applications.values_mut() {
            let shown = app.shown_status();
            let units_stale = app
                .units
                .values()
                .any(|u| Since::stale(&u.status_since, &u.status));
            if !units_stale && !Since::stale(&app.status_since, &shown) {
                continue;
            }
            Since::stamp(&mut app.status_since, &shown, now);
            for u in app.units.values_mut() {
                if Since::stale(&u.status_since, &u.status) {
                    let u = &mut **u;
                    Since::stamp(&mut u.status_since, &u.status, now);
                }
            }
        }
    }

    /// Hands the next hook, action or command its range of secret numbers,
    /// which [`crate::view::view`] gives it.
    pub fn reserve_secret_numbers(&mut self) {
        self.next_secret = self.next_secret.saturating_add(SECRET_NUMBERS_PER_HOOK);
    }

    /// A unit by name.
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.applications
            .get(charm::relation::app_of(name))?
            .units
            .get(name)
            .map(|u| &**u)
    }

    /// A unit by name, to change.
    pub fn unit_mut(&mut self, name: &str) -> Option<&mut Unit> {
        self.applications
            .get_mut(charm::relation::app_of(name))?
            .units
            .get_mut(name)
            .map(|u| &mut **u)
    }

    /// Adds an application, with its peer relations.
    pub fn add_application(&mut self, name: &str, app: Application) {
        let peers: Vec<String> = app.files.meta.peers.keys().cloned().collect();
        self.applications.insert(name.to_string(), app.into());
        for endpoint in peers {
            self.add_relation(vec![End {
                app: name.to_string(),
                endpoint,
            }]);
        }
    }

    /// Adds a relation between `ends`, with every unit their applications
    /// have now in scope; answers its id.
    pub fn add_relation(&mut self, ends: Vec<End>) -> u64 {
        self.next_relation_id += 1;
        let mut relation = RelationRecord {
            id: self.next_relation_id,
            ends,
            ..RelationRecord::default()
        };
        for end in relation.ends.clone() {
            for (unit, u) in self
                .applications
                .get(&end.app)
                .into_iter()
                .flat_map(|a| &a.units)
            {
                relation.enter_scope(unit, &u.address);
            }
        }
        self.relations.push(relation.into());
        self.next_relation_id
    }

    /// A relation by id.
    pub fn relation(&self, id: u64) -> Option<&RelationRecord> {
        self.relations.iter().find(|r| r.id == id).map(|r| &**r)
    }

    /// The relations an application takes part in.
    pub fn relations_of<'a>(
        &'a self,
        app: &'a str,
    ) -> impl Iterator<Item = &'a RelationRecord> + 'a {
        self.relations
            .iter()
            .filter(move |r| r.end_of(app).is_some())
            .map(|r| &**r)
    }
}
