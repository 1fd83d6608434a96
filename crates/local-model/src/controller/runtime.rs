//! What a unit has on this machine besides its place in the model: its
//! directory (`units/<unit>/`) with a copy of the charm, and a Pebble server
//! per container (its socket under the unit's `containers/`, passed to charms
//! as `CHARM_CONTAINERS_DIR`; its root under `rootfs/`). The daemon runs each
//! server as a process of its own that outlives the controller
//! ([`crate::pebbles`]): a restarted controller carries on with the servers
//! that still answer. A server it starts afresh (a controller used as a
//! library runs them in process) first has whatever the container still runs
//! killed, then gets back the plan recorded in the model after the unit's
//! last hook. The custom notices the servers hold are copied into the model,
//! where the resolver finds them.
//!
//! Charms are copied into the model whole or not at all (a copy beside the
//! target, renamed into place), and what the charm writes at the top of its
//! directory (its deferred events, `ops`' state) is kept aside before each
//! hook, so a hook that a crash interrupts runs again from the same state.

use super::{io, Controller, ControllerError};
use crate::model::NoticeRecord;
use crate::pebbles::{self, Detached};
use pebble_api::{Layer, Notice, Pebble, PebbleClient, Plan};
use pebble_server::{PebbleServer, ServerConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A container's Pebble server: in this process, or a process of its own.
enum Server {
    InProcess(PebbleServer),
    Detached(Detached),
}

impl Server {
    fn custom_notices(&self) -> Vec<Notice> {
        match self {
            Server::InProcess(s) => s.custom_notices(),
            Server::Detached(d) => d.custom_notices(),
        }
    }

    fn crash(self) {
        match self {
            Server::InProcess(s) => s.crash(),
            Server::Detached(d) => d.crash(),
        }
    }
}

/// A unit's charm copy and running Pebble servers.
pub(super) struct UnitRuntime {
    charm_dir: PathBuf,
    containers_dir: PathBuf,
    /// Each container's, held for their lifetime: dropping one stops its services.
    pebbles: Vec<(String, Server)>,
}

impl UnitRuntime {
    /// A client of the container's Pebble.
    pub(super) fn pebble(&self, container: &str) -> PebbleClient {
        PebbleClient::new(pebble_socket(&self.containers_dir, container))
    }

    /// Kills every workload process at once (SIGKILL, no clean-up) and stops
    /// the Pebble servers.
    pub(super) fn crash(&mut self) {
        for (_, pebble) in self.pebbles.drain(..) {
            pebble.crash();
        }
    }

    /// Asks its detached servers to stop, without waiting (they are waited
    /// for when dropped), so that many units stop at once.
    pub(super) fn terminate(&self) {
        for (_, pebble) in &self.pebbles {
            if let Server::Detached(d) = pebble {
                d.terminate();
            }
        }
    }
}

/// Like [`io`], for an error that is not the system's.
fn failed<E: std::fmt::Display>(what: String) -> impl FnOnce(E) -> ControllerError {
    move |e| ControllerError::Io {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

/// Where a container's Pebble listens.
fn pebble_socket(containers_dir: &Path, container: &str) -> PathBuf {
    containers_dir.join(container).join("pebble.socket")
}

impl Controller {
    /// The unit's directory: `units/<app>-<n>` under the controller's root.
    pub(super) fn unit_home(&self, unit: &str) -> PathBuf {
        self.root.join("units").join(unit.replace('/', "-"))
    }

    /// Gives a unit of the model its charm copy and Pebble servers: those of
    /// a dead controller that still answer, else new ones with the plans
    /// they had.
    pub(super) fn start_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let home = self.unit_home(unit);
        let private = |d: &Path| {
            crate::store::private_dir(d).map_err(io(format!("creating {}", d.display())))
        };
        private(&home.join("rootfs"))?;
        let charm_dir = home.join("charm");
        let app = &self.model.applications[charm::relation::app_of(unit)];
        if !charm_dir.join("metadata.yaml").exists() {
            copy_dir_whole(&app.charm_dir, &charm_dir)
                .map_err(io(format!("copying the charm for {unit}")))?;
        }
        let containers: Vec<String> = app.files.meta.containers.keys().cloned().collect();
        let containers_dir = home.join("containers");
        let mut servers = Vec::new();
        for container in &containers {
            let root = home.join("rootfs").join(container);
            let image = self.container_image(charm::relation::app_of(unit), container);
            let socket = pebble_socket(&containers_dir, container);
            private(&containers_dir.join(container))?;
            let starting = format!("starting Pebble for {unit}'s {container}");
            let (server, fresh) = match &self.pebble_exe {
                Some(exe) => match Detached::adopt(&socket, &root) {
                    Some(d) => (Server::Detached(d), false),
                    None => {
                        pebbles::kill_leftovers(&root);
                        let spec = pebbles::Spec {
                            socket: socket.clone(),
                            root,
                            sandbox: self.sandbox,
                            image: image.clone(),
                            pebble_cli: Some(self.agent.shim().to_path_buf()),
                            hold: self.network.workloads_lock(),
                        };
                        let log = containers_dir.join(container).join("pebble.log");
                        let d = Detached::spawn(exe, &spec, &log).map_err(failed(starting))?;
                        (Server::Detached(d), true)
                    }
                },
                None => {
                    pebbles::kill_leftovers(&root);
                    let server = PebbleServer::start(ServerConfig {
                        socket: socket.clone(),
                        root,
                        sandbox: self.sandbox,
                        image: image.clone(),
                        pebble_cli: Some(self.agent.shim().to_path_buf()),
                    })
                    .map_err(failed(starting))?;
                    std::fs::set_permissions(&socket, Permissions::from_mode(0o600))
                        .map_err(io(format!("making {} private", socket.display())))?;
                    (Server::InProcess(server), true)
                }
            };
            servers.push((container.clone(), server));
            let plan = self
                .model
                .unit(unit)
                .and_then(|u| u.plans.get(container))
                .filter(|p| fresh && (!p.services.is_empty() || !p.checks.is_empty()));
            if let Some(plan) = plan {
                restore_plan(&socket, plan)
                    .map_err(failed(format!("restoring {unit}'s {container} plan")))?;
            }
        }
        if let Some(u) = self.model.unit_mut(unit) {
            u.containers_up = containers.into_iter().collect();
        }
        self.attach_storage(unit)?;
        self.units.insert(
            unit.to_string(),
            UnitRuntime {
                charm_dir,
                containers_dir,
                pebbles: servers,
            },
        );
        Ok(())
    }

    /// Attaches the storage a unit is waiting for (from deploy or
    /// `storage-add`): each instance gets the next number of its storage name
    /// and a directory, `storage/<name>/<n>` under the unit's; its
    /// storage-attached hook is then due.
    pub(super) fn attach_storage(&mut self, unit: &str) -> Result<(), ControllerError> {
        // Looked at before it is written: a unit written is its
        // application's own copy, saved again.
        if self
            .model
            .unit(unit)
            .is_none_or(|u| u.storage_pending.is_empty())
        {
            return Ok(());
        }
        let home = self.unit_home(unit);
        let app = charm::relation::app_of(unit);
        let Some(pending) = self
            .model
            .unit_mut(unit)
            .map(|u| std::mem::take(&mut u.storage_pending))
        else {
            return Ok(());
        };
        for (name, count) in pending {
            let kind = self.model.applications[app]
                .files
                .meta
                .storage
                .get(&name)
                .map_or_else(|| "filesystem".to_string(), |s| s.kind.clone());
            for _ in 0..count {
                let next = self.model.storage_numbers.entry(name.clone()).or_default();
                let id = format!("{name}/{next}");
                let location = home.join("storage").join(&name).join(next.to_string());
                *next += 1;
                std::fs::create_dir_all(&location)
                    .map_err(io(format!("making {unit}'s storage {id}")))?;
                if let Some(u) = self.model.unit_mut(unit) {
                    u.storage.insert(
                        id,
                        crate::model::StorageRecord {
                            kind: kind.clone(),
                            location: location.display().to_string(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Stops every unit's Pebble servers and their services (the state
    /// stays), all at once.
    pub fn stop_workloads(&mut self) {
        for runtime in self.units.values().chain(&self.doomed_units) {
            runtime.terminate();
        }
        self.units.clear();
        self.doomed_units.clear();
    }

    /// Removes from disk what the saved model no longer has: the charm
    /// copies of applications it forgot, and the directories (and Pebble
    /// servers, and whatever their containers run) of units it does not
    /// hold; what a controller that died between saving the model and
    /// removing them left, and half-made copies.
    pub(super) fn collect_garbage(&mut self) {
        let charms: BTreeSet<PathBuf> = self
            .model
            .applications
            .values()
            .map(|a| a.charm_dir.clone())
            .collect();
        for entry in std::fs::read_dir(self.root.join("charms"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !charms.contains(&entry.path()) {
                eprintln!(
                    "removing {}, which no application uses",
                    entry.path().display()
                );
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let homes: BTreeSet<PathBuf> = self
            .model
            .applications
            .values()
            .flat_map(|a| a.units.keys())
            .map(|u| self.unit_home(u))
            .collect();
        for entry in std::fs::read_dir(self.root.join("units"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !homes.contains(&entry.path()) {
                eprintln!("removing {}, which no unit uses", entry.path().display());
                remove_unit_dir(&entry.path());
            }
        }
    }

    /// Keeps aside what the charm wrote at the top of its directory (the
    /// files its source does not have), as it is before a hook runs.
    pub(super) fn keep_charm_state(&self, unit: &str) -> std::io::Result<()> {
        let Some((charm_dir, source)) = self.charm_dirs(unit) else {
            return Ok(());
        };
        let kept = self.unit_home(unit).join("charm-state");
        let files = charm_state_files(&charm_dir, &source);
        // Most charms write nothing there: what is kept, nothing, stays.
        if files.is_empty() && std::fs::read_dir(&kept).is_ok_and(|mut d| d.next().is_none()) {
            return Ok(());
        }
        let partial = self.unit_home(unit).join(".charm-state.partial");
        let _ = std::fs::remove_dir_all(&partial);
        crate::store::private_dir(&partial)?;
        for name in files {
            std::fs::copy(charm_dir.join(&name), partial.join(&name))?;
        }
        let _ = std::fs::remove_dir_all(&kept);
        std::fs::rename(&partial, &kept)
    }

    /// Puts back what the charm had written before the hook a crash
    /// interrupted ([`Controller::keep_charm_state`]): files it wrote since
    /// go, the ones kept come back.
    pub(super) fn restore_charm_state(&self, unit: &str) -> std::io::Result<()> {
        let Some((charm_dir, source)) = self.charm_dirs(unit) else {
            return Ok(());
        };
        let kept = self.unit_home(unit).join("charm-state");
        if !kept.is_dir() {
            return Ok(());
        }
        for name in charm_state_files(&charm_dir, &source) {
            if !kept.join(&name).exists() {
                std::fs::remove_file(charm_dir.join(&name))?;
            }
        }
        for entry in std::fs::read_dir(&kept)? {
            let name = entry?.file_name();
            let partial = charm_dir.join(format!(".{}.partial", name.to_string_lossy()));
            std::fs::copy(kept.join(&name), &partial)?;
            std::fs::rename(&partial, charm_dir.join(&name))?;
        }
        Ok(())
    }

    /// Replaces the unit's copy of the charm with its application's (after a
    /// refresh), keeping what the charm wrote at the top of its directory.
    pub(super) fn upgrade_unit_charm(&self, unit: &str) -> std::io::Result<()> {
        let Some((charm_dir, source)) = self.charm_dirs(unit) else {
            return Ok(());
        };
        let name = charm_dir.file_name().unwrap_or_default().to_string_lossy();
        let partial = charm_dir.with_file_name(format!(".{name}.upgrading"));
        let _ = std::fs::remove_dir_all(&partial);
        copy_dir(&source, &partial, &mut |_| {})?;
        for file in charm_state_files(&charm_dir, &source) {
            std::fs::copy(charm_dir.join(&file), partial.join(&file))?;
        }
        std::fs::remove_dir_all(&charm_dir)?;
        std::fs::rename(&partial, &charm_dir)
    }

    /// The unit's charm directory and its application's copy of the charm.
    fn charm_dirs(&self, unit: &str) -> Option<(PathBuf, PathBuf)> {
        let runtime = self.units.get(unit)?;
        let app = self.model.applications.get(charm::relation::app_of(unit))?;
        Some((runtime.charm_dir.clone(), app.charm_dir.clone()))
    }

    /// The unit's charm directory and the environment its hooks get.
    pub(super) fn unit_env(&self, unit: &str) -> Option<(PathBuf, Vec<(String, String)>)> {
        let runtime = self.units.get(unit)?;
        let mut env = vec![(
            "CHARM_CONTAINERS_DIR".to_string(),
            runtime.containers_dir.display().to_string(),
        )];
        env.extend(self.kubernetes_env(unit));
        Some((runtime.charm_dir.clone(), env))
    }

    /// Records each container's current plan in the model, for a restart.
    pub(super) fn snapshot_plans(&mut self, unit: &str) {
        let (Some(runtime), Some(u)) = (self.units.get(unit), self.model.unit(unit)) else {
            return;
        };
        let plans: BTreeMap<String, Plan> = u
            .containers_up
            .iter()
            .filter_map(|container| {
                Some((container.clone(), runtime.pebble(container).plan().ok()?))
            })
            .collect();
        if u.plans != plans {
            if let Some(u) = self.model.unit_mut(unit) {
                u.plans = plans;
            }
        }
    }

    /// Copies the custom notices each container's Pebble holds into the model
    /// (in process, no round trip), where the resolver finds those a unit has
    /// not been told about; so a notice makes a hook due at the next look.
    pub fn sync_notices(&mut self) {
        for (unit, runtime) in &self.units {
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
                // Looked at before it is written: a unit written is its
                // application's own copy, saved again.
                let Some(held) = self.model.unit(unit).map(|u| u.notices.get(container)) else {
                    continue;
                };
                if held.map_or(&[][..], Vec::as_slice) == notices.as_slice() {
                    continue;
                }
                let Some(u) = self.model.unit_mut(unit) else {
                    continue;
                };
                if notices.is_empty() {
                    u.notices.remove(container);
                } else {
                    u.notices.insert(container.clone(), notices);
                }
            }
        }
    }
}

/// Gives a restarted Pebble its plan back as one layer and starts the services
/// whose startup is enabled.
fn restore_plan(socket: &Path, plan: &Plan) -> Result<(), String> {
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

/// The regular files at the top of a unit's charm directory that the charm's
/// source lacks: what the charm wrote there.
fn charm_state_files(charm_dir: &Path, source: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(charm_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .filter(|name| !source.join(name).exists())
        .collect()
}

/// Stops what a unit directory still runs (its Pebble servers and their
/// containers' processes), detaches its mounts and removes it.
pub(super) fn remove_unit_dir(home: &Path) {
    pebbles::stop_unit(home);
    pebbles::unmount_all(home);
    let _ = std::fs::remove_dir_all(home);
}

/// Copies a charm directory to `to` whole or not at all: into a directory
/// beside it first, then renamed over it, so a crash never leaves a half
/// copy where a charm is looked for.
pub(super) fn copy_dir_whole(from: &Path, to: &Path) -> std::io::Result<()> {
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let partial = to.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    copy_dir(from, &partial, &mut |_| {
        crate::crash::point("copying", &to.display().to_string())
    })?;
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&partial, to)
}

/// Unpacks a charm archive over `to`, as [`copy_dir_whole`] copies a
/// directory: into a partial directory beside it (removed if unpacking
/// fails), then renamed in place of what was there.
pub(super) fn unpack_whole(
    archive: &Path,
    to: &Path,
) -> Result<(), crate::charm_archive::ArchiveError> {
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let partial = to.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    if let Err(e) = crate::charm_archive::unpack(archive, &partial) {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(to);
    Ok(std::fs::rename(&partial, to)?)
}

/// Copies a charm directory (files and subdirectories; symlinks as links),
/// private to its owner: directories 0700, files 0600 or 0700 when executable.
/// `copied` is told of each file once it is copied.
fn copy_dir(from: &Path, to: &Path, copied: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    crate::store::private_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target, copied)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            let mode = std::fs::metadata(&target)?.permissions().mode();
            std::fs::set_permissions(&target, Permissions::from_mode(mode & 0o700))?;
            copied(&target);
        }
    }
    Ok(())
}
