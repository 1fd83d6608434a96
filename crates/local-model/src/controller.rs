//! The controller: deploys applications, adds and removes units, relates
//! applications and runs every unit's hooks until nothing is due, the way a Juju
//! controller and its unit agents do. Each unit gets its own copy of the charm
//! directory, an address on loopback (127.0.X.Y), and a Pebble server per
//! container with its own root filesystem.

use crate::agent::{Agent, HookRun};
use crate::model::{Application, End, Life, Model, RelationRecord, Unit};
use charm::backend::JsonMap;
use charm::metadata::CharmFiles;
use pebble_server::{PebbleServer, ServerConfig};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What the controller refused to do.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("application {0:?} already exists")]
    Exists(String),
    #[error("application {0:?} not found")]
    NoApplication(String),
    #[error("unit {0:?} not found")]
    NoUnit(String),
    #[error("cannot relate {0}: {1}")]
    Relate(String, String),
    #[error("invalid config for {app}: {message}")]
    Config { app: String, message: String },
    #[error("cannot read charm at {path}: {message}")]
    Charm { path: String, message: String },
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
    /// Held for their lifetime: dropping one stops its services.
    _pebbles: Vec<PebbleServer>,
}

/// The model and everything running for it.
pub struct Controller {
    pub model: Model,
    root: PathBuf,
    agent: Agent,
    units: BTreeMap<String, UnitRuntime>,
    sandbox: bool,
    /// When set, the order units run in each round comes from this seed.
    seed: Option<u64>,
    /// Units whose next hook is made to fail.
    failing: std::collections::BTreeSet<String>,
}

impl Controller {
    /// A controller keeping its files under `root`, with hook tools linked to `shim`.
    /// Workloads run sandboxed (chrooted, as their user) when `sandbox` is set.
    pub fn new(root: &Path, shim: &Path, sandbox: bool) -> Result<Controller, ControllerError> {
        std::fs::create_dir_all(root).map_err(io(format!("creating {}", root.display())))?;
        let agent = Agent::start(&root.join("agent.socket"), &root.join("tools"), shim)
            .map_err(io("starting the agent"))?;
        Ok(Controller {
            model: Model {
                name: "local".into(),
                uuid: "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13".into(),
                juju_version: "3.6.4".into(),
                ..Model::default()
            },
            root: root.to_path_buf(),
            agent,
            units: BTreeMap::new(),
            sandbox,
            seed: None,
            failing: Default::default(),
        })
    }

    /// Fixes the order in which units' due hooks run (a different, repeatable
    /// order each round); `None` goes back to unit-name order.
    pub fn set_seed(&mut self, seed: Option<u64>) {
        // xorshift never leaves zero.
        self.seed = seed.map(|s| if s == 0 { 0x9E37_79B9_7F4A_7C15 } else { s });
    }

    /// Makes the unit's next hook fail (as if `dispatch` exited non-zero): nothing
    /// is committed and the unit is blocked until [`Controller::resolve`].
    pub fn fail_next_hook(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.model
            .unit(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        self.failing.insert(unit.to_string());
        Ok(())
    }

    /// `juju resolve <unit>`: the failed hook runs again.
    pub fn resolve(&mut self, unit: &str) -> Result<(), ControllerError> {
        let u = self
            .model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        u.failed = None;
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
        use charm::pebble::Pebble;
        let runtime = self
            .units
            .get(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        let mut client = charm::pebble::PebbleClient::new(
            runtime.containers_dir.join(container).join("pebble.socket"),
        );
        client
            .send_signal("SIGKILL", &[service])
            .map_err(|e| ControllerError::Io {
                what: format!("killing {service} on {unit}"),
                source: std::io::Error::other(e.to_string()),
            })
    }

    /// Removes a unit at once, as when its machine is lost: it runs no hooks, its
    /// workloads stop, and the other units see it leave.
    pub fn remove_unit_abruptly(&mut self, unit: &str) -> Result<(), ControllerError> {
        let u = self
            .model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        u.seen.removed = true;
        self.reap(unit);
        Ok(())
    }

    /// The units in the order this round runs them.
    fn round_order(&mut self) -> Vec<String> {
        let mut units: Vec<String> = self.units.keys().cloned().collect();
        if let Some(seed) = &mut self.seed {
            // xorshift64*, then Fisher-Yates: repeatable for a given seed.
            for i in (1..units.len()).rev() {
                *seed ^= *seed >> 12;
                *seed ^= *seed << 25;
                *seed ^= *seed >> 27;
                let r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
                units.swap(i, (r % (i as u64 + 1)) as usize);
            }
        }
        units
    }

    /// `juju deploy <charm-dir> <app> -n <units> --config k=v ...`.
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
        let files = CharmFiles::load(charm_dir).map_err(|e| ControllerError::Charm {
            path: charm_dir.display().to_string(),
            message: e.to_string(),
        })?;
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
        let peers: Vec<String> = files.meta.peers.keys().cloned().collect();
        self.model.applications.insert(
            app.into(),
            Application {
                charm_dir: charm_dir.to_path_buf(),
                files,
                config: user_config,
                ..Application::default()
            },
        );
        for endpoint in peers {
            self.model.next_relation_id += 1;
            let id = self.model.next_relation_id;
            self.model.relations.push(RelationRecord {
                id,
                ends: vec![End {
                    app: app.into(),
                    endpoint,
                }],
                ..RelationRecord::default()
            });
        }
        for _ in 0..units {
            self.add_unit(app)?;
        }
        Ok(())
    }

    /// `juju add-unit <app>`: returns the new unit's name.
    pub fn add_unit(&mut self, app_name: &str) -> Result<String, ControllerError> {
        let app_index = self
            .model
            .applications
            .keys()
            .position(|a| a == app_name)
            .ok_or_else(|| ControllerError::NoApplication(app_name.into()))?;
        let app = self
            .model
            .applications
            .get_mut(app_name)
            .expect("found above");
        let n = app.next_unit;
        app.next_unit += 1;
        let unit = format!("{app_name}/{n}");
        let home = self.root.join("units").join(unit.replace('/', "-"));
        let charm_dir = home.join("charm");
        copy_dir(&app.charm_dir, &charm_dir)
            .map_err(io(format!("copying the charm for {unit}")))?;
        let containers_dir = home.join("containers");
        let mut pebbles = Vec::new();
        let mut up = std::collections::BTreeSet::new();
        for container in app.files.meta.containers.keys() {
            let server = PebbleServer::start(ServerConfig {
                socket: containers_dir.join(container).join("pebble.socket"),
                root: home.join("rootfs").join(container),
                sandbox: self.sandbox,
            })
            .map_err(|e| ControllerError::Io {
                what: format!("starting Pebble for {unit}'s {container}"),
                source: std::io::Error::other(e.to_string()),
            })?;
            pebbles.push(server);
            up.insert(container.clone());
        }
        app.units.insert(
            unit.clone(),
            Unit {
                address: format!("127.0.{}.{}", app_index + 1, n + 1),
                containers_up: up,
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
            r.scope.insert(unit.clone());
        }
        self.units.insert(
            unit.clone(),
            UnitRuntime {
                charm_dir,
                containers_dir,
                _pebbles: pebbles,
            },
        );
        Ok(unit)
    }

    /// `juju remove-unit <unit>`: the unit runs its leaving hooks at the next settle.
    pub fn remove_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let u = self
            .model
            .unit_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        u.life = Life::Dying;
        Ok(())
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
        let scope = self.model.applications[&a_app]
            .units
            .keys()
            .chain(self.model.applications[&b_app].units.keys())
            .cloned()
            .collect();
        self.model.next_relation_id += 1;
        let id = self.model.next_relation_id;
        self.model.relations.push(RelationRecord {
            id,
            ends: vec![
                End {
                    app: a_app,
                    endpoint: a_ep,
                },
                End {
                    app: b_app,
                    endpoint: b_ep,
                },
            ],
            scope,
            ..RelationRecord::default()
        });
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
            return Ok((app.into(), e.into()));
        }
        let other_app = other.split(':').next().unwrap_or(other);
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
            .chain(a.files.meta.requires.iter());
        let theirs: Vec<&str> = o
            .files
            .meta
            .provides
            .values()
            .chain(o.files.meta.requires.values())
            .map(|e| e.interface.as_str())
            .collect();
        let matching: Vec<&String> = mine
            .filter(|(_, e)| theirs.contains(&e.interface.as_str()))
            .map(|(n, _)| n)
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
        let a = self
            .model
            .applications
            .get_mut(app)
            .ok_or_else(|| ControllerError::NoApplication(app.into()))?;
        for (k, v) in pairs {
            let value =
                a.files
                    .config
                    .parse_value(k, v)
                    .map_err(|message| ControllerError::Config {
                        app: app.into(),
                        message,
                    })?;
            a.config.insert(k.to_string(), value);
        }
        Ok(())
    }

    /// Marks update-status due on every unit.
    pub fn tick(&mut self) {
        self.model.status_tick += 1;
    }

    /// Runs every unit's due hooks, in rounds, until none is due (or a hook fails
    /// and blocks its unit); returns what ran.
    pub fn settle(&mut self) -> Result<Vec<(String, HookRun)>, ControllerError> {
        let mut ran = Vec::new();
        loop {
            let mut progressed = false;
            for unit in self.round_order() {
                if self.failing.contains(&unit) {
                    if let Some(event) = crate::resolver::next_hook(&self.model, &unit) {
                        self.failing.remove(&unit);
                        let u = self.model.unit_mut(&unit).expect("a unit of the model");
                        u.failed = Some(event.hook_name());
                        u.status =
                            charm::Status::Error(format!("hook failed: {:?}", event.hook_name()));
                        let run = HookRun {
                            event,
                            ok: false,
                            output: "failure injected by the controller\n".into(),
                            logs: Vec::new(),
                        };
                        ran.push((unit.clone(), run));
                        progressed = true;
                        continue;
                    }
                }
                let runtime = &self.units[&unit];
                let env = [(
                    "CHARM_CONTAINERS_DIR".to_string(),
                    runtime.containers_dir.display().to_string(),
                )];
                let charm_dir = runtime.charm_dir.clone();
                if let Some(run) = self
                    .agent
                    .run_next(&mut self.model, &unit, &charm_dir, &env)
                    .map_err(io(format!("running a hook on {unit}")))?
                {
                    progressed = true;
                    ran.push((unit.clone(), run));
                }
                self.reap(&unit);
            }
            if !progressed {
                return Ok(ran);
            }
        }
    }

    /// Forgets a unit that ran its remove hook; a new leader is chosen if it led.
    fn reap(&mut self, unit: &str) {
        if !self.model.unit(unit).is_some_and(|u| u.seen.removed) {
            return;
        }
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
        }
    }

    /// The model as `juju status` prints it.
    pub fn status(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<8} {:<11} {:<14} Version",
            "Model", "Controller", "Cloud/Region"
        );
        let _ = writeln!(
            s,
            "{:<8} {:<11} {:<14} {}\n",
            self.model.name, "local", "local/local", self.model.juju_version
        );
        let _ = writeln!(
            s,
            "{:<16} {:<9} {:<12} {:<6} Charm",
            "App", "Version", "Status", "Scale"
        );
        for (name, app) in &self.model.applications {
            let _ = writeln!(
                s,
                "{:<16} {:<9} {:<12} {:<6} {}",
                name,
                app.workload_version,
                app.status.name(),
                app.units.len(),
                app.files.meta.name
            );
        }
        let _ = writeln!(
            s,
            "\n{:<18} {:<12} {:<6} {:<12} {:<10} Message",
            "Unit", "Workload", "Agent", "Address", "Ports"
        );
        for app in self.model.applications.values() {
            for (unit, u) in &app.units {
                let marker = if app.leader.as_deref() == Some(unit) {
                    "*"
                } else {
                    ""
                };
                let agent = if u.failed.is_some() { "error" } else { "idle" };
                let ports: Vec<String> = u.opened_ports.iter().map(|p| p.to_string()).collect();
                let _ = writeln!(
                    s,
                    "{:<18} {:<12} {:<6} {:<12} {:<10} {}",
                    format!("{unit}{marker}"),
                    u.status.name(),
                    agent,
                    u.address,
                    ports.join(","),
                    u.status.message()
                );
            }
        }
        s
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
