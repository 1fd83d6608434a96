//! The controller: deploys applications, adds and removes units, relates
//! applications and runs every unit's hooks until nothing is due, the way a Juju
//! controller and its unit agents do. Each unit gets its own copy of the charm
//! directory, an address on loopback (127.N.X.Y, see [`crate::network`]), and a Pebble server per
//! container with its own root filesystem.
//!
//! The model is saved under the controller's root (`model.json`, see
//! [`crate::store`]) after every change and every committed hook, so
//! [`Controller::open`] carries on where a stopped or crashed controller left off.
//! `status.rs` renders what `juju status`, `show-unit` and `config` print
//! (`table.rs` lays out the status table);
//! `tasks.rs` runs actions and `juju exec` commands.

mod status;
mod table;
mod tasks;

pub use tasks::{Task, TaskError, TaskKind};

use crate::agent::{Agent, Executed, HookRun, Prepared};
use crate::model::{Application, End, Life, Model, NoticeRecord, RelationRecord, Unit};
use crate::network::Network;
use crate::store::{self, StoreError};
use charm::backend::JsonMap;
use charm::metadata::CharmFiles;
use charm::Event;
use pebble_api::{Layer, Pebble, PebbleClient};
use pebble_server::{PebbleServer, ServerConfig};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the controller refused to do.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("application {0:?} already exists")]
    Exists(String),
    #[error("no loopback address left for {0} (a model has 254 applications of 254 units)")]
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
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// What a unit has on this machine besides its place in the model.
struct UnitRuntime {
    charm_dir: PathBuf,
    containers_dir: PathBuf,
    /// Each container's, held for their lifetime: dropping one stops its services.
    pebbles: Vec<(String, PebbleServer)>,
}

/// A hook due on a unit, taken out of the controller to run without it
/// ([`Due::execute`]) and handed back to [`Controller::finish`].
pub struct Due {
    pub unit: String,
    work: DueWork,
    agent: Arc<Agent>,
}

enum DueWork {
    Run(Box<Prepared>),
    /// A failure injected by [`Controller::fail_next_hook`].
    Fail(Event),
}

/// What running a [`Due`] hook gave.
pub struct Ran(Option<std::io::Result<Executed>>);

impl Due {
    /// The hook's name.
    pub fn hook_name(&self) -> String {
        match &self.work {
            DueWork::Run(p) => p.event.hook_name(),
            DueWork::Fail(e) => e.hook_name(),
        }
    }

    /// Runs the hook's process (nothing for an injected failure).
    pub fn execute(&self) -> Ran {
        match &self.work {
            DueWork::Run(p) => Ran(Some(self.agent.execute(p))),
            DueWork::Fail(_) => Ran(None),
        }
    }
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
        let mut c = Controller::start(root, shim, sandbox, model)?;
        c.save()?;
        Ok(c)
    }

    /// The controller of the model kept under `root`: the saved model if there
    /// is one (each unit's charm copy kept, its Pebble servers started again and
    /// given their plans back, so services with `startup: enabled` come back),
    /// else a new model called `name`.
    pub fn open(
        root: &Path,
        shim: &Path,
        sandbox: bool,
        name: &str,
    ) -> Result<Controller, ControllerError> {
        std::fs::create_dir_all(root).map_err(io(format!("creating {}", root.display())))?;
        let model = match store::load(root)? {
            Some(m) => m,
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
        let mut c = Controller::start(root, shim, sandbox, model)?;
        for unit in units {
            c.start_unit(&unit)?;
        }
        c.save()?;
        Ok(c)
    }

    fn start(
        root: &Path,
        shim: &Path,
        sandbox: bool,
        model: Model,
    ) -> Result<Controller, ControllerError> {
        std::fs::create_dir_all(root).map_err(io(format!("creating {}", root.display())))?;
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
        };
        c.sync_clock();
        Ok(c)
    }

    /// Where the controller keeps its files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the model to disk (atomically).
    pub fn save(&mut self) -> Result<(), ControllerError> {
        Ok(store::save(&self.root, &self.model)?)
    }

    /// Moves the model's clock to the machine's (plus any test offset).
    pub fn sync_clock(&mut self) {
        self.model.now = crate::clock::system_now() + self.model.clock_offset;
    }

    /// Brings the model up to what the controller can see in process: the
    /// clock, and the notices the containers' Pebble servers hold.
    fn look(&mut self) {
        self.sync_clock();
        self.sync_notices();
    }

    /// Copies the custom notices each container's Pebble holds into the model
    /// (in process, no round trip), where the resolver finds those a unit has
    /// not been told about; so a notice makes a hook due at the next look.
    pub fn sync_notices(&mut self) {
        for (unit, runtime) in &self.units {
            let Some(u) = self.model.unit_mut(unit) else {
                continue;
            };
            for (container, server) in &runtime.pebbles {
                let notices: Vec<NoticeRecord> = server
                    .custom_notices()
                    .into_iter()
                    .map(|n| NoticeRecord {
                        id: n.id,
                        key: n.key,
                        last_repeated: n.last_repeated,
                    })
                    .collect();
                if notices.is_empty() {
                    u.notices.remove(container);
                } else {
                    u.notices.insert(container.clone(), notices);
                }
            }
        }
    }

    /// Moves the model's clock ahead by `seconds` (a test control): secrets whose
    /// rotation or expiry falls due get their hooks.
    pub fn advance_clock(&mut self, seconds: u64) -> Result<(), ControllerError> {
        self.model.clock_offset += seconds;
        self.sync_clock();
        self.save()
    }

    /// Fixes the order in which units' due hooks run (a different, repeatable
    /// order each round, kept in the model); `None` goes back to unit-name order.
    pub fn set_seed(&mut self, seed: Option<u64>) -> Result<(), ControllerError> {
        // xorshift never leaves zero.
        self.model.seed = seed.map(|s| if s == 0 { 0x9E37_79B9_7F4A_7C15 } else { s });
        self.round.clear();
        self.save()
    }

    /// Makes the unit's next hook fail (as if `dispatch` exited non-zero): nothing
    /// is committed and the unit is blocked until [`Controller::resolve`].
    pub fn fail_next_hook(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?
            .fail_next_hook = true;
        self.save()
    }

    fn unit(&self, unit: &str) -> Result<&Unit, ControllerError> {
        self.model
            .unit(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))
    }

    fn app_mut(&mut self, app: &str) -> Result<&mut Application, ControllerError> {
        self.model
            .applications
            .get_mut(app)
            .ok_or_else(|| ControllerError::NoApplication(app.into()))
    }

    /// Clears a unit's error, giving back the status the failure replaced.
    fn clear_error(&mut self, unit: &str) -> Result<String, ControllerError> {
        let u = self
            .model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        let hook = u
            .failed
            .take()
            .ok_or_else(|| ControllerError::NotInError(unit.into()))?;
        if let Some(s) = u.status_before_error.take() {
            u.status = s;
        }
        Ok(hook)
    }

    /// `juju resolve <unit>`: the failed hook runs again.
    pub fn resolve(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.clear_error(unit)?;
        self.save()
    }

    /// `juju resolve --no-retry <unit>`: the failed hook counts as done.
    pub fn resolve_no_retry(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.skip_failed(unit)?;
        self.save()
    }

    /// Clears the unit's error and counts the hook that failed as done.
    fn skip_failed(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.clear_error(unit)?;
        if let Some(event) = crate::resolver::next_hook(&self.model, unit) {
            crate::resolver::done(&mut self.model, unit, &event);
        }
        Ok(())
    }

    /// Kills a workload service's processes with SIGKILL (Pebble then applies its
    /// on-failure policy).
    pub fn kill_workload(
        &mut self,
        unit: &str,
        container: &str,
        service: &str,
    ) -> Result<(), ControllerError> {
        let runtime = self
            .units
            .get(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        let known = self
            .model
            .applications
            .get(charm::relation::app_of(unit))
            .is_some_and(|a| a.files.meta.containers.contains_key(container));
        if !known {
            return Err(ControllerError::NoContainer {
                unit: unit.into(),
                container: container.into(),
            });
        }
        let kill_error = |message: String| ControllerError::Kill {
            unit: unit.into(),
            container: container.into(),
            service: service.into(),
            message,
        };
        let mut client =
            PebbleClient::new(runtime.containers_dir.join(container).join("pebble.socket"));
        let plan = client.plan().map_err(|e| kill_error(e.to_string()))?;
        if !plan.services.contains_key(service) {
            return Err(ControllerError::NoService {
                unit: unit.into(),
                container: container.into(),
                service: service.into(),
            });
        }
        client
            .send_signal("SIGKILL", &[service])
            .map_err(|e| kill_error(e.to_string()))
    }

    /// Removes a unit at once (`juju remove-unit --force --no-wait`): it runs
    /// no hooks, its workloads are stopped (SIGTERM, then SIGKILL after their
    /// kill delay, as when Kubernetes deletes a pod), the other units see it
    /// leave, and a new leader is chosen if it led.
    pub fn remove_unit_abruptly(&mut self, unit: &str) -> Result<(), ControllerError> {
        let u = self
            .model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        u.seen.removed = true;
        self.reap(unit);
        self.save()
    }

    /// Loses a unit's machine: every workload process is SIGKILLed at once,
    /// with no chance to clean up (a leader lock it held stays until it
    /// expires), then the unit goes as with [`Controller::remove_unit_abruptly`].
    pub fn crash_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let runtime = self
            .units
            .get_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        for (_, pebble) in runtime.pebbles.drain(..) {
            pebble.crash();
        }
        self.remove_unit_abruptly(unit)
    }

    /// The units in the order a new round runs them, and the generator's state
    /// after shuffling them (kept only if the round runs something).
    fn round_order(&self) -> (Vec<String>, Option<u64>) {
        let mut units: Vec<String> = self.units.keys().cloned().collect();
        let mut seed = self.model.seed;
        if let Some(seed) = &mut seed {
            // xorshift64*, then Fisher-Yates: repeatable for a given seed.
            for i in (1..units.len()).rev() {
                *seed ^= *seed >> 12;
                *seed ^= *seed << 25;
                *seed ^= *seed >> 27;
                let r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
                units.swap(i, (r % (i as u64 + 1)) as usize);
            }
        }
        (units, seed)
    }

    /// `juju deploy <charm-dir> <app> -n <units> --config k=v ...`. The charm
    /// directory is copied into the model (`charms/<app>`).
    pub fn deploy(
        &mut self,
        charm_dir: &Path,
        app: &str,
        units: u32,
        config: &[(&str, &str)],
    ) -> Result<(), ControllerError> {
        if self.model.applications.contains_key(app) {
            return Err(ControllerError::Exists(app.into()));
        }
        let charm_error = |message: String| ControllerError::Charm {
            path: charm_dir.display().to_string(),
            message,
        };
        let files = CharmFiles::load(charm_dir).map_err(|e| charm_error(e.to_string()))?;
        let mut user_config = JsonMap::new();
        for (k, v) in config {
            let value =
                files
                    .config
                    .parse_value(k, v)
                    .map_err(|message| ControllerError::Config {
                        app: app.into(),
                        message,
                    })?;
            user_config.insert(k.to_string(), value);
        }
        let stored = self.root.join("charms").join(app);
        let _ = std::fs::remove_dir_all(&stored);
        copy_dir(charm_dir, &stored).map_err(|e| charm_error(format!("cannot copy it: {e}")))?;
        let subnet = self
            .model
            .last_subnet
            .checked_add(1)
            .filter(|s| *s < 255)
            .ok_or_else(|| ControllerError::NoAddress(format!("application {app:?}")))?;
        self.model.last_subnet = subnet;
        self.model.add_application(
            app,
            Application {
                charm_dir: stored,
                files,
                config: user_config,
                subnet,
                ..Application::default()
            },
        );
        for _ in 0..units {
            self.add_unit(app)?;
        }
        self.save()
    }

    /// `juju trust <app>` (or `deploy --trust`).
    pub fn set_trust(&mut self, app: &str, trust: bool) -> Result<(), ControllerError> {
        self.app_mut(app)?.trust = trust;
        self.save()
    }

    /// `juju add-unit <app>`: returns the new unit's name.
    pub fn add_unit(&mut self, app_name: &str) -> Result<String, ControllerError> {
        let app = self.app_mut(app_name)?;
        let (subnet, n) = (app.subnet, app.next_unit);
        if n >= 254 {
            return Err(ControllerError::NoAddress(format!("unit {app_name}/{n}")));
        }
        let address = self.network.address(subnet, n);
        let app = self.app_mut(app_name)?;
        app.next_unit += 1;
        let unit = format!("{app_name}/{n}");
        app.units.insert(
            unit.clone(),
            Unit {
                address: address.clone(),
                ..Unit::default()
            },
        );
        if app.leader.is_none() {
            app.leader = Some(unit.clone());
        }
        for r in self
            .model
            .relations
            .iter_mut()
            .filter(|r| r.end_of(app_name).is_some())
        {
            r.enter_scope(&unit, &address);
        }
        self.start_unit(&unit)?;
        self.save()?;
        Ok(unit)
    }

    /// Gives a unit of the model its charm copy and Pebble servers (with the
    /// plans they had, when the controller restarts).
    fn start_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let home = self.root.join("units").join(unit.replace('/', "-"));
        let charm_dir = home.join("charm");
        let app = &self.model.applications[charm::relation::app_of(unit)];
        if !charm_dir.join("metadata.yaml").exists() {
            copy_dir(&app.charm_dir, &charm_dir)
                .map_err(io(format!("copying the charm for {unit}")))?;
        }
        let containers: Vec<String> = app.files.meta.containers.keys().cloned().collect();
        let containers_dir = home.join("containers");
        let mut pebbles = Vec::new();
        for container in &containers {
            let root = home.join("rootfs").join(container);
            kill_leftovers(&root);
            let socket = containers_dir.join(container).join("pebble.socket");
            let server = PebbleServer::start(ServerConfig {
                socket: socket.clone(),
                root,
                sandbox: self.sandbox,
            })
            .map_err(|e| ControllerError::Io {
                what: format!("starting Pebble for {unit}'s {container}"),
                source: std::io::Error::other(e.to_string()),
            })?;
            pebbles.push((container.clone(), server));
            let plan = self
                .model
                .unit(unit)
                .and_then(|u| u.plans.get(container))
                .filter(|p| !p.services.is_empty() || !p.checks.is_empty());
            if let Some(plan) = plan {
                restore_plan(&socket, plan).map_err(|e| ControllerError::Io {
                    what: format!("restoring {unit}'s {container} plan"),
                    source: std::io::Error::other(e),
                })?;
            }
        }
        if let Some(u) = self.model.unit_mut(unit) {
            u.containers_up = containers.into_iter().collect();
        }
        self.units.insert(
            unit.to_string(),
            UnitRuntime {
                charm_dir,
                containers_dir,
                pebbles,
            },
        );
        Ok(())
    }

    /// Stops every unit's Pebble servers and their services (the state stays).
    pub fn stop_workloads(&mut self) {
        self.units.clear();
    }

    /// Records each container's current plan in the model, for a restart.
    fn snapshot_plans(&mut self, unit: &str) {
        let Some(runtime) = self.units.get(unit) else {
            return;
        };
        let mut plans = BTreeMap::new();
        let Some(u) = self.model.unit(unit) else {
            return;
        };
        for container in &u.containers_up {
            let mut client =
                PebbleClient::new(runtime.containers_dir.join(container).join("pebble.socket"));
            if let Ok(plan) = client.plan() {
                plans.insert(container.clone(), plan);
            }
        }
        if let Some(u) = self.model.unit_mut(unit) {
            u.plans = plans;
        }
    }

    /// `juju remove-unit <unit>`: the unit runs its leaving hooks.
    pub fn remove_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let u = self
            .model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        u.life = Life::Dying;
        self.save()
    }

    /// `juju remove-unit --force <unit>`: the unit runs its leaving hooks, but
    /// one that fails (or the one it is in error on) is skipped.
    pub fn force_remove_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let u = self
            .model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        u.life = Life::Dying;
        u.forced = true;
        if u.failed.is_some() {
            self.skip_failed(unit)?;
        }
        self.save()
    }

    /// `juju remove-unit <app> --num-units n`: the application's `n`
    /// highest-numbered units that are not already leaving.
    pub fn units_to_remove(&self, app: &str, count: usize) -> Result<Vec<String>, ControllerError> {
        let a = self
            .model
            .applications
            .get(app)
            .ok_or_else(|| ControllerError::NoApplication(app.into()))?;
        let mut alive: Vec<(u32, String)> = a
            .units
            .iter()
            .filter(|(_, u)| u.life == Life::Alive)
            .map(|(n, _)| {
                let number = n.rsplit('/').next().and_then(|x| x.parse().ok());
                (number.unwrap_or(0), n.clone())
            })
            .collect();
        alive.sort();
        Ok(alive
            .into_iter()
            .rev()
            .take(count)
            .map(|(_, n)| n)
            .collect())
    }

    /// `juju remove-application <app>`: its units leave, its relations end.
    pub fn remove_application(&mut self, app: &str) -> Result<(), ControllerError> {
        let a = self.app_mut(app)?;
        a.dying = true;
        let empty = a.units.is_empty();
        for r in self.model.relations.iter_mut() {
            if r.end_of(app).is_some() {
                r.dying = true;
            }
        }
        if empty {
            self.forget_application(app);
        }
        self.reap_relations();
        self.save()
    }

    /// Forgets an application, its secrets and its charm.
    fn forget_application(&mut self, app: &str) {
        self.model.applications.remove(app);
        self.model.secrets.retain(|s| s.owner_app() != app);
        let _ = std::fs::remove_dir_all(self.root.join("charms").join(app));
    }

    /// `juju integrate a[:endpoint] b[:endpoint]`.
    pub fn integrate(&mut self, a: &str, b: &str) -> Result<u64, ControllerError> {
        let (a_app, a_ep) = self.endpoint(a, b)?;
        let (b_app, b_ep) = self.endpoint(b, a)?;
        let what = format!("{a} and {b}");
        let iface = |app: &str, ep: &str| {
            self.model.applications[app]
                .files
                .meta
                .interface(ep)
                .map(str::to_string)
        };
        if iface(&a_app, &a_ep) != iface(&b_app, &b_ep) {
            return Err(ControllerError::Relate(
                what,
                "the interfaces differ".into(),
            ));
        }
        let exists = self.model.relations.iter().any(|r| {
            !r.dying
                && r.end_of(&a_app).is_some_and(|e| e.endpoint == a_ep)
                && r.end_of(&b_app).is_some_and(|e| e.endpoint == b_ep)
        });
        if exists {
            return Err(ControllerError::Relate(
                what,
                "relation already exists".into(),
            ));
        }
        let id = self.model.add_relation(vec![
            End {
                app: a_app,
                endpoint: a_ep,
            },
            End {
                app: b_app,
                endpoint: b_ep,
            },
        ]);
        self.save()?;
        Ok(id)
    }

    /// `juju remove-relation a[:endpoint] b[:endpoint]`: both sides depart and
    /// break, then the relation is gone.
    pub fn remove_relation(&mut self, a: &str, b: &str) -> Result<u64, ControllerError> {
        let split = |s: &str| match s.split_once(':') {
            Some((app, ep)) => (app.to_string(), Some(ep.to_string())),
            None => (s.to_string(), None),
        };
        let ((a_app, a_ep), (b_app, b_ep)) = (split(a), split(b));
        let matches = |r: &RelationRecord, app: &str, ep: &Option<String>| {
            r.end_of(app)
                .is_some_and(|e| ep.as_ref().is_none_or(|x| *x == e.endpoint))
        };
        let found: Vec<u64> = self
            .model
            .relations
            .iter()
            .filter(|r| !r.is_peer() && !r.dying)
            .filter(|r| matches(r, &a_app, &a_ep) && matches(r, &b_app, &b_ep))
            .map(|r| r.id)
            .collect();
        let id = match found.as_slice() {
            [one] => *one,
            [] => return Err(ControllerError::NoRelation(format!("{a} {b}"))),
            _ => {
                return Err(ControllerError::Relate(
                    format!("{a} and {b}"),
                    "more than one relation matches; name the endpoints".into(),
                ))
            }
        };
        if let Some(r) = self.model.relations.iter_mut().find(|r| r.id == id) {
            r.dying = true;
        }
        self.reap_relations();
        self.save()?;
        Ok(id)
    }

    /// Resolves `app` or `app:endpoint` against the other side's interfaces.
    fn endpoint(&self, spec: &str, other: &str) -> Result<(String, String), ControllerError> {
        let (app, ep) = match spec.split_once(':') {
            Some((a, e)) => (a, Some(e)),
            None => (spec, None),
        };
        let a = self
            .model
            .applications
            .get(app)
            .ok_or_else(|| ControllerError::NoApplication(app.into()))?;
        if let Some(e) = ep {
            if a.files.meta.interface(e).is_none() {
                return Err(ControllerError::Relate(
                    format!("{spec} and {other}"),
                    format!("application {app:?} has no {e:?} endpoint"),
                ));
            }
            return Ok((app.into(), e.into()));
        }
        let (other_app, other_ep) = match other.split_once(':') {
            Some((a, e)) => (a, Some(e)),
            None => (other, None),
        };
        let o = self
            .model
            .applications
            .get(other_app)
            .ok_or_else(|| ControllerError::NoApplication(other_app.into()))?;
        let mine = a
            .files
            .meta
            .provides
            .iter()
            .map(|(n, e)| (n, e, true))
            .chain(a.files.meta.requires.iter().map(|(n, e)| (n, e, false)));
        let theirs: Vec<(&str, bool)> = o
            .files
            .meta
            .provides
            .iter()
            .map(|(n, e)| (n, e, true))
            .chain(o.files.meta.requires.iter().map(|(n, e)| (n, e, false)))
            .filter(|(n, _, _)| other_ep.is_none_or(|x| x == n.as_str()))
            .map(|(_, e, provides)| (e.interface.as_str(), provides))
            .collect();
        let matching: Vec<&String> = mine
            .filter(|(_, e, provides)| theirs.contains(&(e.interface.as_str(), !provides)))
            .map(|(n, _, _)| n)
            .collect();
        match matching.as_slice() {
            [one] => Ok((app.into(), (*one).clone())),
            [] => Err(ControllerError::Relate(
                format!("{spec} and {other}"),
                "no endpoints match".into(),
            )),
            _ => Err(ControllerError::Relate(
                format!("{spec} and {other}"),
                "more than one endpoint matches; name it".into(),
            )),
        }
    }

    /// `juju config <app> k=v`.
    pub fn config(&mut self, app: &str, pairs: &[(&str, &str)]) -> Result<(), ControllerError> {
        let a = self.app_mut(app)?;
        let mut values = JsonMap::new();
        for (k, v) in pairs {
            let value =
                a.files
                    .config
                    .parse_value(k, v)
                    .map_err(|message| ControllerError::Config {
                        app: app.into(),
                        message,
                    })?;
            values.insert(k.to_string(), value);
        }
        a.config.extend(values);
        self.save()
    }

    /// `juju config <app> --reset k1,k2`: the options go back to their defaults.
    pub fn reset_config(&mut self, app: &str, keys: &[&str]) -> Result<(), ControllerError> {
        let a = self.app_mut(app)?;
        for k in keys {
            if !a.files.config.options.contains_key(*k) {
                return Err(ControllerError::Config {
                    app: app.into(),
                    message: format!("unknown option {k:?}"),
                });
            }
        }
        for k in keys {
            a.config.remove(*k);
        }
        self.save()
    }

    /// Marks update-status due on every unit.
    pub fn tick(&mut self) {
        self.model.status_tick += 1;
        let _ = self.save();
    }

    /// The next hook to run, ready to run; `None` when every unit is up to
    /// date or busy. Units take turns in rounds: each unit in the round, one
    /// hook each, in name order or, with a seed, in the seed's order for that
    /// round. A unit already running something ([`Controller::busy`]) waits:
    /// several units may run hooks at once, a unit one thing at a time.
    pub fn next_due(&mut self) -> Option<Due> {
        self.look();
        while let Some(unit) = self.round.pop_front() {
            if let Some(due) = self.due_on(&unit) {
                return Some(due);
            }
        }
        let (order, seed) = self.round_order();
        for (i, unit) in order.iter().enumerate() {
            if let Some(due) = self.due_on(unit) {
                self.model.seed = seed;
                self.round = order[i + 1..].iter().cloned().collect();
                return Some(due);
            }
        }
        None
    }

    /// Whether the unit is running a hook, action or command.
    pub fn busy(&self, unit: &str) -> bool {
        self.running.contains_key(unit)
    }

    /// How many units are running a hook, action or command.
    pub fn busy_units(&self) -> usize {
        self.running.len()
    }

    /// The unit's due hook, ready to run.
    fn due_on(&mut self, unit: &str) -> Option<Due> {
        if self.busy(unit) {
            return None;
        }
        let event = crate::resolver::next_hook(&self.model, unit)?;
        let inject = self
            .model
            .unit_mut(unit)
            .is_some_and(|u| std::mem::take(&mut u.fail_next_hook));
        let work = if inject {
            DueWork::Fail(event)
        } else {
            let (charm_dir, env) = self.unit_env(unit)?;
            DueWork::Run(Box::new(Agent::prepare_hook(
                &mut self.model,
                unit,
                &charm_dir,
                &env,
            )?))
        };
        let due = Due {
            unit: unit.to_string(),
            work,
            agent: self.agent.clone(),
        };
        self.running.insert(
            unit.to_string(),
            format!("running {} hook", due.hook_name()),
        );
        Some(due)
    }

    /// The unit's charm directory and the environment its hooks get.
    fn unit_env(&self, unit: &str) -> Option<(PathBuf, Vec<(String, String)>)> {
        let runtime = self.units.get(unit)?;
        let env = vec![(
            "CHARM_CONTAINERS_DIR".to_string(),
            runtime.containers_dir.display().to_string(),
        )];
        Some((runtime.charm_dir.clone(), env))
    }

    /// Commits a hook that ran (or records its failure), logs it, forgets a
    /// unit that ran `remove`, and saves the model.
    pub fn finish(&mut self, due: Due, ran: Ran) -> Result<HookRun, ControllerError> {
        let unit = due.unit;
        self.running.remove(&unit);
        let run = match (due.work, ran.0) {
            (DueWork::Fail(event), _) => {
                if let Some(u) = self.model.unit_mut(&unit) {
                    u.failed = Some(event.hook_name());
                    let error =
                        charm::Status::Error(format!("hook failed: {:?}", event.hook_name()));
                    u.status_before_error = Some(std::mem::replace(&mut u.status, error));
                }
                let output = "failure injected by the controller\n".to_string();
                HookRun {
                    event,
                    ok: false,
                    stderr: output.clone(),
                    output,
                    code: 1,
                    logs: Vec::new(),
                }
            }
            (DueWork::Run(prepared), ran) => {
                let executed = ran
                    .unwrap_or_else(|| Err(std::io::Error::other("the hook was not run")))
                    .map_err(io(format!("running a hook on {unit}")))?;
                Agent::finish(&mut self.model, *prepared, &executed)
            }
        };
        self.snapshot_plans(&unit);
        let mut log = status::log_lines(&unit, &run, self.model.now);
        if !run.ok && self.model.unit(&unit).is_some_and(|u| u.forced) {
            self.skip_failed(&unit)?;
        }
        if self.model.unit(&unit).is_some_and(|u| u.failed.is_some()) {
            log.push(status::awaiting_resolution(
                &unit,
                &run.event,
                self.model.now,
            ));
        }
        store::append_log(&self.root, &log);
        self.reap(&unit);
        self.save()?;
        Ok(run)
    }

    /// Runs every unit's due hooks, in rounds ([`Controller::next_due`]), until
    /// none is due (a failed hook blocks its unit); returns what ran.
    pub fn settle(&mut self) -> Result<Vec<(String, HookRun)>, ControllerError> {
        let mut ran = Vec::new();
        while let Some(due) = self.next_due() {
            let unit = due.unit.clone();
            let executed = due.execute();
            ran.push((unit, self.finish(due, executed)?));
        }
        Ok(ran)
    }

    /// Units with a hook due, and units in error with the hook that failed.
    /// It looks first as [`Controller::next_due`] does, so a notice a
    /// workload has just recorded, or a secret the clock has made due, counts.
    pub fn pending(&mut self) -> (Vec<String>, Vec<(String, String)>) {
        self.look();
        let mut due = Vec::new();
        let mut failed = Vec::new();
        for app in self.model.applications.values() {
            for (name, u) in &app.units {
                if let Some(h) = &u.failed {
                    failed.push((name.clone(), h.clone()));
                } else if crate::resolver::next_hook(&self.model, name).is_some() {
                    due.push(name.clone());
                }
            }
        }
        for unit in self.running.keys() {
            if !due.contains(unit) {
                due.push(unit.clone());
            }
        }
        (due, failed)
    }

    /// Forgets a unit that ran its remove hook; a new leader is chosen if it led.
    /// An application removed whose units are all gone goes too.
    fn reap(&mut self, unit: &str) {
        if self.model.unit(unit).is_some_and(|u| u.seen.removed) {
            self.units.remove(unit);
            let app_name = charm::relation::app_of(unit).to_string();
            for r in &mut self.model.relations {
                r.scope.remove(unit);
            }
            if let Some(app) = self.model.applications.get_mut(&app_name) {
                app.units.remove(unit);
                if app.leader.as_deref() == Some(unit) {
                    app.leader = app.units.keys().next().cloned();
                }
                if app.dying && app.units.is_empty() {
                    self.forget_application(&app_name);
                }
            }
            let _ = std::fs::remove_dir_all(self.root.join("units").join(unit.replace('/', "-")));
        }
        self.reap_relations();
    }

    /// Forgets dying relations that no remaining unit still takes part in.
    fn reap_relations(&mut self) {
        let model = &self.model;
        let gone: Vec<u64> = model
            .relations
            .iter()
            .filter(|r| r.dying)
            .filter(|r| {
                r.ends.iter().all(|e| {
                    model.applications.get(&e.app).is_none_or(|a| {
                        !r.is_peer()
                            && a.units.values().all(|u| {
                                u.seen
                                    .relations
                                    .get(&r.id)
                                    .is_none_or(|s| !s.created || s.broken)
                            })
                    })
                })
            })
            .map(|r| r.id)
            .collect();
        if gone.is_empty() {
            return;
        }
        self.model.relations.retain(|r| !gone.contains(&r.id));
        for app in self.model.applications.values_mut() {
            for u in app.units.values_mut() {
                u.seen.relations.retain(|id, _| !gone.contains(id));
            }
        }
    }
}

/// Gives a restarted Pebble its plan back as one layer and starts the services
/// whose startup is enabled.
fn restore_plan(socket: &Path, plan: &pebble_api::Plan) -> Result<(), String> {
    let mut client = PebbleClient::new(socket);
    let mut layer = Layer {
        summary: "restored by the local model's controller".into(),
        services: plan.services.clone(),
        checks: plan.checks.clone(),
        ..Layer::default()
    };
    for s in layer.services.values_mut() {
        s.r#override = "replace".into();
    }
    for c in layer.checks.values_mut() {
        c.r#override = "replace".into();
    }
    client
        .add_layer("restored", &layer, true)
        .map_err(|e| e.to_string())?;
    client.replan().map_err(|e| e.to_string())
}

/// Kills processes left running inside a container root by a controller that
/// died without stopping them (a sandboxed service's root is the container's).
fn kill_leftovers(root: &Path) {
    let Ok(root) = root.canonicalize() else {
        return;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if std::fs::read_link(entry.path().join("root")).is_ok_and(|r| r.starts_with(&root)) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Copies a charm directory (files and subdirectories; symlinks as links).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
