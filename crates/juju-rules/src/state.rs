//! The state a test builds for one unit, and gets back after a hook.

use charm::backend::{JsonMap, Port};
use charm::secret::{Rotate, SecretContent, SecretId};
use charm::{Databag, Event, JujuVersion, LogLevel, Relation, Status};
use pebble_api::{CheckInfo, Exec, ExecOutput, Layer, Notice, Notify, Service};
use std::collections::{BTreeMap, BTreeSet};

/// The model UUID every in-memory state uses unless told otherwise.
pub const MODEL_UUID: &str = "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13";

/// Everything Juju and the workload hold for one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// The unit's name (`app/0`).
    pub unit: String,
    /// The model's name.
    pub model_name: String,
    /// The model's UUID.
    pub model_uuid: String,
    /// The Juju version the unit's agent reports.
    pub juju_version: JujuVersion,
    /// Whether this unit is its application's leader.
    pub leader: bool,
    /// What `config-get` prints (defaults already applied).
    pub config: JsonMap,
    /// The relations the unit is in.
    pub relations: Vec<RelationState>,
    /// The secrets the unit sees: its own and its application's, and those granted to it.
    pub secrets: Vec<SecretState>,
    /// The workload containers, by name.
    pub containers: BTreeMap<String, ContainerState>,
    /// The unit's deferred-event queue.
    pub deferred: Vec<Event>,
    /// The unit's status.
    pub unit_status: Status,
    /// The application's status (the leader sets it).
    pub app_status: Status,
    /// What `application-version-set` last set.
    pub workload_version: String,
    /// The ports the unit opened.
    pub opened_ports: BTreeSet<Port>,
    /// This unit's address in `network-get`.
    pub address: String,
    /// Units of this application that are going away (`dying` in goal-state).
    pub dying_units: BTreeSet<String>,
    /// `juju-log` records.
    pub logs: Vec<(LogLevel, String)>,
    /// Where the numbers of new secret ids (`c` and 19 digits) start; 0 counts
    /// on from the secrets the unit sees. The local model gives each hook a
    /// range of its own, so hooks running at once never pick the same id.
    pub secret_numbers_from: u64,
    /// The application's leader settings (`leader-get`; the leader writes them).
    pub leader_settings: Databag,
    /// The unit's charm state (`state-get`, `state-set`, `state-delete`).
    pub charm_state: BTreeMap<String, String>,
    /// The storage the charm declares, by name, and each one's kind
    /// (`filesystem` or `block`).
    pub storage_declared: BTreeMap<String, String>,
    /// The storage instances attached to the unit, by id (`data/0`).
    pub storage: BTreeMap<String, StorageState>,
    /// What `storage-add` asked for in this hook: storage name to count,
    /// added once the hook commits.
    pub storage_added: BTreeMap<String, u64>,
    /// Whether the application was deployed with `--trust` (`credential-get`).
    pub trusted: bool,
    /// The application's `k8s-spec-set` (or `pod-spec-set`) spec.
    pub k8s_spec: Option<String>,
    /// The application's `k8s-raw-set` spec.
    pub k8s_raw_spec: Option<String>,
    /// The unit's payloads, by `<class>/<id>`.
    pub payloads: BTreeMap<String, PayloadState>,
}

/// A storage instance attached to the unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageState {
    /// `filesystem` or `block`.
    pub kind: String,
    /// Where it is mounted (a filesystem) or its device (a block).
    pub location: String,
}

/// A payload the unit registered (`payload-register`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadState {
    /// The payload's type (`docker`, `kvm`, ...).
    pub kind: String,
    /// Its status: `starting`, `running`, `stopping` or `stopped`.
    pub status: String,
    /// Its tags.
    pub tags: Vec<String>,
}

impl State {
    /// A fresh unit: not the leader, no relations, Juju 3.6.4.
    pub fn new(unit: &str) -> State {
        State {
            unit: unit.to_string(),
            model_name: "test".into(),
            model_uuid: MODEL_UUID.into(),
            juju_version: JujuVersion::new(3, 6, 4),
            leader: false,
            config: JsonMap::new(),
            relations: Vec::new(),
            secrets: Vec::new(),
            containers: BTreeMap::new(),
            deferred: Vec::new(),
            unit_status: Status::default(),
            app_status: Status::default(),
            workload_version: String::new(),
            opened_ports: BTreeSet::new(),
            address: "192.0.2.10".into(),
            dying_units: BTreeSet::new(),
            logs: Vec::new(),
            secret_numbers_from: 0,
            leader_settings: Databag::new(),
            charm_state: BTreeMap::new(),
            storage_declared: BTreeMap::new(),
            storage: BTreeMap::new(),
            storage_added: BTreeMap::new(),
            trusted: false,
            k8s_spec: None,
            k8s_raw_spec: None,
            payloads: BTreeMap::new(),
        }
    }

    /// This unit's application.
    pub fn app(&self) -> &str {
        charm::relation::app_of(&self.unit)
    }

    /// The same unit, leader or not.
    pub fn leader(mut self, leader: bool) -> State {
        self.leader = leader;
        self
    }

    /// The same unit with this configuration.
    pub fn with_config(mut self, config: JsonMap) -> State {
        self.config = config;
        self
    }

    /// The same unit in one more relation.
    pub fn with_relation(mut self, relation: RelationState) -> State {
        self.relations.push(relation);
        self
    }

    /// The same unit seeing one more secret.
    pub fn with_secret(mut self, secret: SecretState) -> State {
        self.secrets.push(secret);
        self
    }

    /// The same unit with container `name`.
    pub fn with_container(mut self, name: &str, container: ContainerState) -> State {
        self.containers.insert(name.to_string(), container);
        self
    }

    /// The same unit with `event` at the end of its deferred queue.
    pub fn with_deferred(mut self, event: Event) -> State {
        self.deferred.push(event);
        self
    }

    /// The relation with this id.
    pub fn relation(&self, id: u64) -> Option<&RelationState> {
        self.relations.iter().find(|r| r.id == id)
    }

    /// The secret with this id (compared by xid).
    pub fn secret(&self, id: &SecretId) -> Option<&SecretState> {
        self.secrets.iter().find(|s| &s.id == id)
    }

    /// The secret that this unit knows by `label` (owner label first, then consumer label).
    pub fn secret_by_label(&self, label: &str) -> Option<&SecretState> {
        self.secrets
            .iter()
            .find(|s| !s.owner.is_remote() && s.owner_label.as_deref() == Some(label))
            .or_else(|| {
                self.secrets
                    .iter()
                    .find(|s| s.consumer_label.as_deref() == Some(label))
            })
    }

    /// The container with this name.
    pub fn container(&self, name: &str) -> Option<&ContainerState> {
        self.containers.get(name)
    }
}

/// A relation as one unit sees it: its own bags, and the remote side's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationState {
    /// The relation's id.
    pub id: u64,
    /// This unit's endpoint in it.
    pub endpoint: String,
    /// The other application (this application for a peer relation).
    pub remote_app: String,
    /// Whether it is a peer relation.
    pub peer: bool,
    /// This application's bag (for a peer relation, the one bag all units share).
    pub local_app_data: Databag,
    /// This unit's bag.
    pub local_unit_data: Databag,
    /// The remote application's bag (unused for a peer relation).
    pub remote_app_data: Databag,
    /// The remote units in scope (for a peer relation: the other units), with their bags.
    pub remote_units: BTreeMap<String, Databag>,
}

impl RelationState {
    /// A relation with another application.
    pub fn new(endpoint: &str, id: u64, remote_app: &str) -> RelationState {
        RelationState {
            id,
            endpoint: endpoint.into(),
            remote_app: remote_app.into(),
            peer: false,
            local_app_data: Databag::new(),
            local_unit_data: Databag::new(),
            remote_app_data: Databag::new(),
            remote_units: BTreeMap::new(),
        }
    }

    /// A peer relation of `app`.
    pub fn peer(endpoint: &str, id: u64, app: &str) -> RelationState {
        RelationState {
            peer: true,
            ..RelationState::new(endpoint, id, app)
        }
    }

    /// The handle hook tools use.
    pub fn handle(&self) -> Relation {
        Relation::new(&self.endpoint, self.id)
    }

    /// The same relation with remote unit `unit` in scope, its bag `data`.
    pub fn remote_unit(mut self, unit: &str, data: &[(&str, &str)]) -> RelationState {
        self.remote_units.insert(unit.into(), bag(data));
        self
    }

    /// The same relation with the remote application's bag `data`.
    pub fn remote_app_data(mut self, data: &[(&str, &str)]) -> RelationState {
        self.remote_app_data = bag(data);
        self
    }

    /// The same relation with this application's bag `data`.
    pub fn local_app_data(mut self, data: &[(&str, &str)]) -> RelationState {
        self.local_app_data = bag(data);
        self
    }

    /// The same relation with this unit's bag `data`.
    pub fn local_unit_data(mut self, data: &[(&str, &str)]) -> RelationState {
        self.local_unit_data = bag(data);
        self
    }
}

/// Builds a databag from pairs.
pub fn bag(data: &[(&str, &str)]) -> Databag {
    data.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Who owns a secret, from this unit's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// This unit's application (managed by the leader).
    App,
    /// This unit.
    Unit,
    /// Another application, which may have granted this application access.
    Remote {
        /// The owning application.
        app: String,
        /// Whether it granted this unit's application access.
        granted: bool,
    },
}

impl Owner {
    /// Whether another application owns it.
    pub fn is_remote(&self) -> bool {
        matches!(self, Owner::Remote { .. })
    }

    /// Whether the unit may read its content: its own, or granted to it.
    pub fn may_read(&self) -> bool {
        !matches!(self, Owner::Remote { granted: false, .. })
    }
}

/// A secret as this unit sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretState {
    /// The secret's id.
    pub id: SecretId,
    /// Who owns it.
    pub owner: Owner,
    /// The label the owner gave it.
    pub owner_label: Option<String>,
    /// The label this unit gave it as a consumer.
    pub consumer_label: Option<String>,
    /// The owner's description.
    pub description: Option<String>,
    /// When it expires, as `secret-add --expire` was given it.
    pub expire: Option<String>,
    /// The rotation policy.
    pub rotate: Option<Rotate>,
    /// Revision number to content.
    pub revisions: BTreeMap<u64, SecretContent>,
    /// The revision this unit tracks (set by its first read).
    pub tracked: Option<u64>,
    /// Grants: relation id and, for a unit grant, the unit.
    pub grants: BTreeSet<(u64, Option<String>)>,
}

impl SecretState {
    /// A secret with one revision.
    pub fn new(id: SecretId, owner: Owner, content: SecretContent) -> SecretState {
        SecretState {
            id,
            owner,
            owner_label: None,
            consumer_label: None,
            description: None,
            expire: None,
            rotate: None,
            revisions: BTreeMap::from([(1, content)]),
            tracked: None,
            grants: BTreeSet::new(),
        }
    }

    /// The newest revision number.
    pub fn latest(&self) -> u64 {
        self.revisions.keys().next_back().copied().unwrap_or(0)
    }

    /// The newest content.
    pub fn latest_content(&self) -> Option<&SecretContent> {
        self.revisions.values().next_back()
    }
}

/// A file in a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    /// The file's bytes.
    pub content: Vec<u8>,
    /// Its mode bits (`0o644`).
    pub permissions: u32,
    /// Its owner, when the push named one.
    pub user: Option<String>,
    /// Its group, when the push named one.
    pub group: Option<String>,
}

/// What the charm did to a service, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceOp {
    /// A service started, by name.
    Start(String),
    /// A service stopped, by name.
    Stop(String),
    /// A service restarted, by name.
    Restart(String),
    /// A signal sent: the signal's name and the service's.
    Signal(String, String),
}

/// A workload container and its Pebble.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerState {
    /// Whether Pebble answers.
    pub can_connect: bool,
    /// Layers by label, in the order they were added.
    pub layers: Vec<(String, Layer)>,
    /// Running services and the definition each was last started with.
    pub running: BTreeMap<String, Service>,
    /// Files, by absolute path.
    pub files: BTreeMap<String, FileState>,
    /// Directories made, by absolute path.
    pub dirs: BTreeSet<String>,
    /// The health checks and their state.
    pub checks: Vec<CheckInfo>,
    /// What the charm did to services, in order.
    pub ops: Vec<ServiceOp>,
    /// Notices recorded in the container, in id order (see [`ContainerState::with_notice`]).
    pub notices: Vec<Notice>,
    /// What exec answers, by command prefix: the longest prefix of a command
    /// that is here gives its output, several for one prefix in turn (see
    /// [`ContainerState::with_exec`]).
    pub execs: Vec<(Vec<String>, ExecOutput)>,
    /// The commands the charm ran, in order.
    pub executed: Vec<Exec>,
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState {
            can_connect: true,
            layers: Vec::new(),
            running: BTreeMap::new(),
            files: BTreeMap::new(),
            dirs: BTreeSet::from(["/".to_string()]),
            checks: Vec::new(),
            ops: Vec::new(),
            notices: Vec::new(),
            execs: Vec::new(),
            executed: Vec::new(),
        }
    }
}

impl ContainerState {
    /// A container whose Pebble is up.
    pub fn ready() -> ContainerState {
        ContainerState::default()
    }

    /// A container whose Pebble does not answer yet.
    pub fn unreachable() -> ContainerState {
        ContainerState {
            can_connect: false,
            ..ContainerState::default()
        }
    }

    /// Adds a file (and its parent directories).
    pub fn with_file(mut self, path: &str, content: &[u8]) -> ContainerState {
        self.add_parents(path);
        self.files.insert(
            path.to_string(),
            FileState {
                content: content.to_vec(),
                permissions: 0o644,
                user: None,
                group: None,
            },
        );
        self
    }

    pub(crate) fn add_parents(&mut self, path: &str) {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            let dir = if parent.is_empty() { "/" } else { parent };
            self.dirs.insert(dir.to_string());
            p = parent;
        }
    }

    /// Answers commands that start with `prefix` with `output`, as the
    /// workload would have run them.
    pub fn with_exec(mut self, prefix: &[&str], output: ExecOutput) -> ContainerState {
        self.execs
            .push((prefix.iter().map(|p| p.to_string()).collect(), output));
        self
    }

    /// Records an occurrence of the custom notice `key` with `data`, as a workload's
    /// `pebble notify` would.
    pub fn with_notice(mut self, key: &str, data: &[(&str, &str)]) -> ContainerState {
        self.record_notice(&Notify {
            key: key.into(),
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            repeat_after: None,
        });
        self
    }

    /// Records an occurrence of a custom notice with Pebble's rules (one notice per
    /// key; another occurrence counts and repeats it, unless `repeat_after` is set:
    /// occurrences here are instantaneous, so it holds the repeat back). Times come
    /// from a counter, fixed-width, so they order as strings do. Returns the id.
    pub fn record_notice(&mut self, notify: &Notify) -> String {
        let tick = self.notices.iter().map(|n| n.occurrences).sum::<u64>() + 1;
        let now = format!("2024-01-01T00:00:00.{tick:09}Z");
        if let Some(n) = self
            .notices
            .iter_mut()
            .find(|n| n.kind == "custom" && n.key == notify.key)
        {
            n.occurrences += 1;
            n.last_occurred = now.clone();
            if notify.repeat_after.is_none() {
                n.last_repeated = now;
            }
            n.last_data = notify.data.clone();
            n.repeat_after = notify.repeat_after.clone();
            return n.id.clone();
        }
        let id = (self.notices.len() + 1).to_string();
        self.notices.push(Notice {
            id: id.clone(),
            user_id: None,
            kind: "custom".into(),
            key: notify.key.clone(),
            first_occurred: now.clone(),
            last_occurred: now.clone(),
            last_repeated: now,
            occurrences: 1,
            last_data: notify.data.clone(),
            repeat_after: notify.repeat_after.clone(),
            expire_after: Some("168h0m0s".into()),
        });
        id
    }

    /// A file's content as text.
    pub fn file_text(&self, path: &str) -> Option<String> {
        self.files
            .get(path)
            .map(|f| String::from_utf8_lossy(&f.content).into_owned())
    }

    /// Whether a service is running.
    pub fn is_running(&self, service: &str) -> bool {
        self.running.contains_key(service)
    }
}
