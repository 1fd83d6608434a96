//! The controller: deploys applications, adds and removes units, relates
//! applications and runs every unit's hooks until nothing is due, the way a Juju
//! controller and its unit agents do.
//!
//! The model is saved under the controller's root (`model.json`, see
//! [`crate::store`]) after every change and every committed hook, so
//! [`Controller::open`] carries on where a stopped or crashed controller left off;
//! it refuses a state it cannot read, or one missing beside deployed charms and
//! units ([`ControllerError::BadState`]), rather than start an empty model, and
//! a model being destroyed ([`ControllerError::Destroying`]).
//!
//! A controller may die at any point (SIGKILL) without losing what it saved:
//! each change is saved whole before anything acts on it (a deploy with all
//! its units, once); a hook is recorded as started before its process runs
//! and cleared only in the save that commits it, so the next controller runs
//! an interrupted hook again, from the charm state it started from; files and
//! processes the saved model no longer has are removed only after the save
//! that drops them, and whatever such a removal left when the controller died
//! is removed by the next one ([`Controller::open`]).
//!
//! | module | concept |
//! |---|---|
//! | `topology.rs` | What the model is made of: applications (deploy, config, trust), their units and the relations between them, added and removed. |
//! | `runtime.rs` | What a unit has on this machine: its directory and charm copy, its Pebble servers (plans kept across restarts), its notices, its hooks' environment. |
//! | `schedule.rs` | Which hook runs next: rounds over the units (in name order or a seed's), one thing at a time per unit, committing what ran, settling, a failed hook blocking its unit until resolved. |
//! | `controls.rs` | Test controls: the clock, a failed hook on demand, a killed workload, a unit removed abruptly or its machine crashed. |
//! | `tasks.rs` | Actions and `juju exec` commands. |
//! | `kubernetes.rs` | A Kubernetes model's API and Service routes, kept in step with the model after each save. |
//! | `status.rs` | What `juju status`, `show-unit`, `config` and `debug-log` print, built from the model; a status's `since` from the stamps the model keeps. |
//! | `formatted.rs` | `juju status`'s structure in Juju 3.6's field order, shared by its JSON, YAML and table (`table.rs` lays out the columns): scale, grouped ports, what the agent is doing. |

mod controls;
mod formatted;
mod images;
mod kubernetes;
mod runtime;
mod schedule;
mod status;
mod table;
mod tasks;
mod topology;

pub use formatted::FullStatus;
pub use schedule::{Due, Ran};
pub use status::{ShowUnitFilter, UnitInfo};
pub use tasks::{PreparedTask, Task, TaskError, TaskKind};
pub use topology::{read_built, DeployOptions};

use crate::agent::Agent;
use crate::model::{Application, Model, Unit};
use crate::network::Network;
use crate::store::{self, StoreError};
use runtime::UnitRuntime;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the controller refused to do.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("application {0:?} already exists")]
    Exists(String),
    #[error(
        "no loopback address left for {0} (a model has 2,032 applications of 30 units at once)"
    )]
    NoAddress(String),
    #[error("application {0:?} not found")]
    NoApplication(String),
    #[error("unit {0:?} not found")]
    NoUnit(String),
    #[error("cannot relate {0}: {1}")]
    Relate(String, String),
    #[error("relation {0:?} not found")]
    NoRelation(String),
    #[error("invalid config for {app}: {message}")]
    Config { app: String, message: String },
    #[error("cannot deploy {app}: resource {message}")]
    Resource { app: String, message: String },
    #[error("cannot read charm at {path}: {message}")]
    Charm { path: String, message: String },
    #[error("unit {0:?} is not in an error state")]
    NotInError(String),
    #[error("unit {unit:?} has no container {container:?}")]
    NoContainer { unit: String, container: String },
    #[error("container {container:?} of unit {unit:?} has no service {service:?}")]
    NoService {
        unit: String,
        container: String,
        service: String,
    },
    #[error("cannot kill {service:?} in {unit}'s {container} container: {message}")]
    Kill {
        unit: String,
        container: String,
        service: String,
        message: String,
    },
    #[error("cannot move the clock of {unit}'s {container} container: {message}")]
    WorkloadClock {
        unit: String,
        container: String,
        message: String,
    },
    /// Several units failed at once (`juju show-unit a/0 b/1`), one line each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Each(Vec<ControllerError>),
    #[error("cannot write the answer as {format}: {message}")]
    Render { format: String, message: String },
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model's saved state is missing or unreadable while the model has
    /// units and charms on disk: starting it empty would lose them.
    #[error(
        "cannot start model {model:?}: {problem}. Put the state file back from a copy if \
         you have one, or start the model from scratch with `juju destroy-model {model} \
         --no-prompt`, which removes {dir}"
    )]
    BadState {
        model: String,
        problem: String,
        dir: String,
    },
    /// `destroy-model` began and did not finish (its controller died).
    #[error(
        "model {model:?} is being destroyed: finish with `juju destroy-model {model} \
         --no-prompt`, which removes {dir}"
    )]
    Destroying { model: String, dir: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControllerError {
    let what = what.into();
    move |source| ControllerError::Io { what, source }
}

/// The model and everything running for it.
pub struct Controller {
    pub model: Model,
    root: PathBuf,
    agent: Arc<Agent>,
    units: BTreeMap<String, UnitRuntime>,
    sandbox: bool,
    /// The units still to look at in this round of [`Controller::next_due`].
    round: VecDeque<String>,
    /// The units running a hook, action or command, and what.
    running: BTreeMap<String, String>,
    /// The model's slice of the loopback network, held while it runs.
    network: Network,
    /// The `juju` binary that runs each container's Pebble as a process of
    /// its own (`juju _pebble`), or `None` to run them in this process.
    pebble_exe: Option<PathBuf>,
    /// Units the model has forgotten, stopped once that is saved.
    doomed_units: Vec<UnitRuntime>,
    /// Directories of what the model has forgotten, removed once that is saved.
    doomed_dirs: Vec<PathBuf>,
    /// A Kubernetes model's API server and Service routes.
    kubernetes: Option<crate::kube::Kubernetes>,
    /// The hosts file each container last got (unit, container).
    hosts_pushed: BTreeMap<(String, String), String>,
    /// Where deploy finds workload images (see [`images`]).
    image_store: Option<PathBuf>,
    /// The last save's JSON of what did not change since.
    serialised: store::Serialised,
}

/// A model UUID from the system's random source.
fn new_uuid() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Whether the model directory holds deployed charms or units (a model that
/// had state).
fn has_deployments(root: &Path) -> bool {
    ["charms", "units"]
        .iter()
        .any(|d| std::fs::read_dir(root.join(d)).is_ok_and(|mut entries| entries.next().is_some()))
}

impl Controller {
    /// A controller for a new model named `local`, keeping its files under
    /// `root`, with hook tools linked to `shim`. Workloads run sandboxed
    /// (chrooted, as their user) when `sandbox` is set.
    pub fn new(root: &Path, shim: &Path, sandbox: bool) -> Result<Controller, ControllerError> {
        let model = Model {
            name: "local".into(),
            uuid: "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13".into(),
            juju_version: "3.6.4".into(),
            ..Model::default()
        };
        let mut c = Controller::start(root, shim, sandbox, model, None)?;
        c.save()?;
        Ok(c)
    }

    /// The controller of the model kept under `root`: the saved model if there
    /// is one (each unit's charm copy kept, its Pebble servers started again and
    /// given their plans back, so services with `startup: enabled` come back),
    /// else a new model called `name`. The Pebble servers run in this process.
    pub fn open(
        root: &Path,
        shim: &Path,
        sandbox: bool,
        name: &str,
    ) -> Result<Controller, ControllerError> {
        Controller::open_with(root, shim, sandbox, name, None)
    }

    /// [`Controller::open`], each container's Pebble server running as a
    /// process of its own (`pebble_exe _pebble`, see [`crate::pebbles`]) that
    /// outlives this controller: the servers a dead controller left that
    /// still answer are carried on with, their services untouched.
    pub fn open_detached(
        root: &Path,
        shim: &Path,
        sandbox: bool,
        name: &str,
        pebble_exe: &Path,
    ) -> Result<Controller, ControllerError> {
        Controller::open_with(root, shim, sandbox, name, Some(pebble_exe))
    }

    fn open_with(
        root: &Path,
        shim: &Path,
        sandbox: bool,
        name: &str,
        pebble_exe: Option<&Path>,
    ) -> Result<Controller, ControllerError> {
        if store::destroying_path(root).exists() {
            return Err(ControllerError::Destroying {
                model: name.into(),
                dir: root.display().to_string(),
            });
        }
        store::private_dir(root).map_err(io(format!("creating {}", root.display())))?;
        store::tighten(root).map_err(io(format!("making {} private", root.display())))?;
        let bad_state = |problem: String| ControllerError::BadState {
            model: name.into(),
            problem,
            dir: root.display().to_string(),
        };
        let model = match store::load(root).map_err(|e| bad_state(e.to_string()))? {
            Some(m) => m,
            None if has_deployments(root) => {
                return Err(bad_state(format!(
                    "{} holds units and charms but not their state, {}",
                    root.display(),
                    store::state_path(root).display()
                )))
            }
            None => Model {
                name: name.into(),
                uuid: new_uuid(),
                juju_version: "3.6.4".into(),
                ..Model::default()
            },
        };
        let units: Vec<String> = model
            .applications
            .values()
            .flat_map(|a| a.units.keys().cloned())
            .collect();
        let mut c = Controller::start(root, shim, sandbox, model, pebble_exe)?;
        c.collect_garbage();
        for unit in units {
            c.start_unit(&unit)?;
            if let Some(event) = c.model.unit(&unit).and_then(|u| u.hook_started.clone()) {
                eprintln!(
                    "{unit}'s {} hook was interrupted: it runs again",
                    event.hook_name()
                );
                c.restore_charm_state(&unit)
                    .map_err(io(format!("restoring {unit}'s charm state")))?;
            }
        }
        c.save()?;
        Ok(c)
    }

    fn start(
        root: &Path,
        shim: &Path,
        sandbox: bool,
        model: Model,
        pebble_exe: Option<&Path>,
    ) -> Result<Controller, ControllerError> {
        store::private_dir(root).map_err(io(format!("creating {}", root.display())))?;
        let mut model = model;
        let saved = (model.network != 0).then_some(model.network);
        let network = Network::claim(saved).map_err(io("claiming the model's addresses"))?;
        model.network = network.octet();
        let agent = Agent::start(&root.join("agent.socket"), &root.join("tools"), shim)
            .map_err(io("starting the agent"))?;
        let mut c = Controller {
            model,
            root: root.to_path_buf(),
            agent: Arc::new(agent),
            units: BTreeMap::new(),
            sandbox,
            round: VecDeque::new(),
            running: BTreeMap::new(),
            network,
            pebble_exe: pebble_exe.map(Path::to_path_buf),
            doomed_units: Vec::new(),
            doomed_dirs: Vec::new(),
            kubernetes: None,
            hosts_pushed: BTreeMap::new(),
            image_store: None,
            serialised: store::Serialised::default(),
        };
        c.sync_clock();
        if c.model.kubernetes {
            c.start_kubernetes()?;
        }
        Ok(c)
    }

    /// Where the controller keeps its files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the model to disk (atomically); then stops the units and
    /// removes the directories the saved model no longer has.
    pub fn save(&mut self) -> Result<(), ControllerError> {
        self.model.stamp_statuses();
        store::save(&self.root, &mut self.model, &mut self.serialised)?;
        self.sync_kubernetes()?;
        if !self.doomed_units.is_empty() || !self.doomed_dirs.is_empty() {
            crate::crash::point("forgotten", &self.root.display().to_string());
        }
        for runtime in &self.doomed_units {
            runtime.terminate();
        }
        self.doomed_units.clear();
        for dir in std::mem::take(&mut self.doomed_dirs) {
            runtime::remove_unit_dir(&dir);
        }
        Ok(())
    }

    /// Marks a unit's agent as running `what` (a hook, action or command), or
    /// idle again with `None`.
    fn set_running(&mut self, unit: &str, what: Option<String>) {
        match what {
            Some(what) => self.running.insert(unit.to_string(), what),
            None => self.running.remove(unit),
        };
        let now = self.model.now;
        if let Some(u) = self.model.unit_mut(unit) {
            u.agent_since = now;
        }
    }

    /// Moves the model's clock to the machine's (plus any test offset).
    pub fn sync_clock(&mut self) {
        self.model.now = crate::clock::system_now() + self.model.clock_offset;
    }

    fn unit(&self, unit: &str) -> Result<&Unit, ControllerError> {
        self.model
            .unit(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))
    }

    fn unit_mut(&mut self, unit: &str) -> Result<&mut Unit, ControllerError> {
        self.model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))
    }

    fn app(&self, app: &str) -> Result<&Application, ControllerError> {
        self.model
            .applications
            .get(app)
            .map(|a| &**a)
            .ok_or_else(|| ControllerError::NoApplication(app.into()))
    }

    fn app_mut(&mut self, app: &str) -> Result<&mut Application, ControllerError> {
        self.model
            .applications
            .get_mut(app)
            .map(|a| &mut **a)
            .ok_or_else(|| ControllerError::NoApplication(app.into()))
    }
}
