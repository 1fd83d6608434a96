//! What a unit has on this machine besides its place in the model: its
//! directory (`units/<unit>/`) with a copy of the charm, and a Pebble server
//! per container (its socket under the unit's `containers/`, passed to charms
//! as `CHARM_CONTAINERS_DIR`; its root under `rootfs/`). Each container's plan
//! is recorded in the model after every hook, so a restarted controller gives
//! the servers their plans back; the custom notices they hold are copied into
//! the model, where the resolver finds them.

use super::{io, Controller, ControllerError};
use crate::model::NoticeRecord;
use pebble_api::{Layer, Pebble, PebbleClient, Plan};
use pebble_server::{PebbleServer, ServerConfig};
use std::collections::BTreeMap;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A unit's charm copy and running Pebble servers.
pub(super) struct UnitRuntime {
    charm_dir: PathBuf,
    containers_dir: PathBuf,
    /// Each container's, held for their lifetime: dropping one stops its services.
    pebbles: Vec<(String, PebbleServer)>,
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

    /// Gives a unit of the model its charm copy and Pebble servers (with the
    /// plans they had, when the controller restarts).
    pub(super) fn start_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let home = self.unit_home(unit);
        let private = |d: &Path| {
            crate::store::private_dir(d).map_err(io(format!("creating {}", d.display())))
        };
        private(&home.join("rootfs"))?;
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
            let socket = pebble_socket(&containers_dir, container);
            private(&containers_dir.join(container))?;
            let server = PebbleServer::start(ServerConfig {
                socket: socket.clone(),
                root,
                sandbox: self.sandbox,
            })
            .map_err(failed(format!("starting Pebble for {unit}'s {container}")))?;
            std::fs::set_permissions(&socket, Permissions::from_mode(0o600))
                .map_err(io(format!("making {} private", socket.display())))?;
            pebbles.push((container.clone(), server));
            let plan = self
                .model
                .unit(unit)
                .and_then(|u| u.plans.get(container))
                .filter(|p| !p.services.is_empty() || !p.checks.is_empty());
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
                pebbles,
            },
        );
        Ok(())
    }

    /// Attaches the storage a unit is waiting for (from deploy or
    /// `storage-add`): each instance gets the next number of its storage name
    /// and a directory, `storage/<name>/<n>` under the unit's; its
    /// storage-attached hook is then due.
    pub(super) fn attach_storage(&mut self, unit: &str) -> Result<(), ControllerError> {
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

    /// Stops every unit's Pebble servers and their services (the state stays).
    pub fn stop_workloads(&mut self) {
        self.units.clear();
    }

    /// The unit's charm directory and the environment its hooks get.
    pub(super) fn unit_env(&self, unit: &str) -> Option<(PathBuf, Vec<(String, String)>)> {
        let runtime = self.units.get(unit)?;
        let env = vec![(
            "CHARM_CONTAINERS_DIR".to_string(),
            runtime.containers_dir.display().to_string(),
        )];
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
        if let Some(u) = self.model.unit_mut(unit) {
            u.plans = plans;
        }
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

/// Copies a charm directory (files and subdirectories; symlinks as links),
/// private to its owner: directories 0700, files 0600 or 0700 when executable.
pub(super) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    crate::store::private_dir(to)?;
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
            let mode = std::fs::metadata(&target)?.permissions().mode();
            std::fs::set_permissions(&target, Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}
