//! What the model is made of: applications (deployed from a built charm,
//! their config and trust), their units (each with a loopback address, see
//! [`crate::network`]) and the relations between them, added and removed.
//! Removal runs its course through hooks: a unit that ran `remove` is
//! forgotten (a new leader is chosen if it led), a removed application goes
//! once its units are gone, a removed relation once every unit has seen it
//! broken.

use super::runtime::{copy_dir_whole, unpack_whole};
use super::{Controller, ControllerError};
use crate::charm_archive::{self, ArchiveError};
use crate::model::{Application, End, Life, RelationRecord, Unit};
use crate::network;
use charm::backend::JsonMap;
use charm::metadata::{CharmFiles, CharmMeta, EndpointSpec};
use std::path::{Path, PathBuf};

/// What `juju deploy` takes beyond the charm, name, units and config.
#[derive(Clone, Debug, Default)]
pub struct DeployOptions {
    /// `--trust`: on a Kubernetes model, what its service account may do.
    pub trust: bool,
    /// `--resource <name>=<dir>`: a workload image's root filesystem.
    pub resources: Vec<(String, PathBuf)>,
}

/// `app` or `app:endpoint`, split.
fn split_endpoint(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((app, endpoint)) => (app, Some(endpoint)),
        None => (spec, None),
    }
}

/// A charm's relation endpoints (peers aside), each with whether it provides.
fn endpoints(meta: &CharmMeta) -> impl Iterator<Item = (&String, &EndpointSpec, bool)> {
    let provides = meta.provides.iter().map(|(n, e)| (n, e, true));
    provides.chain(meta.requires.iter().map(|(n, e)| (n, e, false)))
}

/// Parses `k=v` settings against the charm's `config.yaml`.
fn parse_config(
    files: &CharmFiles,
    app: &str,
    pairs: &[(&str, &str)],
) -> Result<JsonMap, ControllerError> {
    let mut values = JsonMap::new();
    for (k, v) in pairs {
        let value = files
            .config
            .parse_value(k, v)
            .map_err(|message| ControllerError::Config {
                app: app.into(),
                message,
            })?;
        values.insert(k.to_string(), value);
    }
    Ok(values)
}

/// How to get a built charm, for an error about a charm that is not one.
const BUILD_IT: &str = "build the charm first (in this repository, scripts/build-charms packs \
                        each charm into target/charms/<name>_<base>-<arch>.charm) and deploy \
                        that file";

/// Reads a built charm's files: a charm directory or a `.charm` archive, with
/// an executable `dispatch` (without one, a directory is a charm's source).
/// Nothing is copied or unpacked.
pub fn read_built(charm: &Path) -> Result<CharmFiles, ControllerError> {
    let charm_error = |message: String| ControllerError::Charm {
        path: charm.display().to_string(),
        message,
    };
    if charm.is_dir() {
        if !is_executable(&charm.join("dispatch")) {
            return Err(charm_error(format!(
                "it has no executable `dispatch`, so it is a charm's source rather than a \
                 built charm: {BUILD_IT}"
            )));
        }
        return CharmFiles::load(charm).map_err(|e| charm_error(e.to_string()));
    }
    charm_archive::inspect(charm).map_err(|e| match e {
        ArchiveError::NoDispatch => charm_error(format!("{e}: {BUILD_IT}")),
        e => charm_error(e.to_string()),
    })
}

/// Brings a built charm (read with [`read_built`]) into the model's store at
/// `stored`, whole, replacing what was there: a directory copied, an archive
/// unpacked.
fn store_charm(charm: &Path, stored: &Path) -> Result<(), ControllerError> {
    let stored_whole = if charm.is_dir() {
        copy_dir_whole(charm, stored).map_err(|e| format!("cannot copy it: {e}"))
    } else {
        unpack_whole(charm, stored).map_err(|e| format!("cannot unpack it: {e}"))
    };
    stored_whole.map_err(|message| ControllerError::Charm {
        path: charm.display().to_string(),
        message,
    })
}

/// Whether `path` is a file someone may execute.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Controller {
    /// `juju deploy <charm> <app> -n <units> --config k=v ...`. The charm, a
    /// built charm directory or `.charm` archive with its `dispatch`, is copied
    /// or unpacked into the model (`charms/<app>`); one that is not built, or
    /// bad config, is refused with nothing changed.
    pub fn deploy(
        &mut self,
        charm: &Path,
        app: &str,
        units: u32,
        config: &[(&str, &str)],
    ) -> Result<(), ControllerError> {
        self.deploy_with(charm, app, units, config, &DeployOptions::default())
            .map(|_| ())
    }

    /// [`Controller::deploy`] with `--trust` and `--resource`; answers the
    /// units' names. The application is saved once, whole (charm, options,
    /// trust, images and units), before its units' Pebble servers start.
    pub fn deploy_with(
        &mut self,
        charm: &Path,
        app: &str,
        units: u32,
        config: &[(&str, &str)],
        options: &DeployOptions,
    ) -> Result<Vec<String>, ControllerError> {
        if self.model.applications.contains_key(app) {
            return Err(ControllerError::Exists(app.into()));
        }
        let files = read_built(charm)?;
        let user_config = parse_config(&files, app, config)?;
        let images = self.resolve_images(app, &files.meta, &options.resources)?;
        let stored = self.root.join("charms").join(app);
        store_charm(charm, &stored)?;
        crate::crash::point("charm-copied", app);
        // After the last block given, and after the /24s of applications
        // saved before blocks.
        let after_subnets = (u16::from(self.model.last_subnet) + 1) * 8;
        let block = (self.model.last_block + 1)
            .max(after_subnets)
            .max(network::FIRST_BLOCK);
        if block > network::LAST_BLOCK {
            return Err(ControllerError::NoAddress(format!("application {app:?}")));
        }
        self.model.last_block = block;
        self.model.add_application(
            app,
            Application {
                charm_dir: stored,
                files: files.into(),
                config: user_config,
                block,
                trust: options.trust,
                images,
                ..Application::default()
            },
        );
        let added = (0..units)
            .map(|_| self.new_unit(app))
            .collect::<Result<Vec<_>, _>>()?;
        self.save()?;
        crate::crash::point("deployed", app);
        for unit in &added {
            self.start_unit(unit)?;
        }
        self.save()?;
        Ok(added)
    }

    /// `juju refresh <app> --path <charm>`: the application's charm is
    /// replaced by this built charm, a directory or a `.charm` archive (copied
    /// or unpacked whole over `charms/<app>`; refused, with nothing changed,
    /// when it is not built), its
    /// revision goes up by one, and each unit runs upgrade-charm (then
    /// config-changed) with the new charm, copied into its directory when that
    /// hook starts. Answers the new revision.
    pub fn refresh(&mut self, app: &str, charm: &Path) -> Result<u64, ControllerError> {
        self.app_mut(app)?;
        let files = read_built(charm)?;
        let stored = self.root.join("charms").join(app);
        store_charm(charm, &stored)?;
        let a = self.app_mut(app)?;
        a.files = files.into();
        a.charm_dir = stored;
        a.charm_revision += 1;
        let revision = a.charm_revision;
        self.save()?;
        Ok(revision)
    }

    /// `juju trust <app>` (or `deploy --trust`): on a Kubernetes model, what
    /// the application's service account may do. The units see the change
    /// as config-changed.
    pub fn set_trust(&mut self, app: &str, trust: bool) -> Result<(), ControllerError> {
        self.app_mut(app)?.trust = trust;
        self.save()
    }

    /// `juju config <app> k=v`.
    pub fn config(&mut self, app: &str, pairs: &[(&str, &str)]) -> Result<(), ControllerError> {
        let a = self.app_mut(app)?;
        let values = parse_config(&a.files, app, pairs)?;
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

    /// `juju add-unit <app>`: returns the new unit's name. The unit is saved
    /// before its Pebble servers start.
    pub fn add_unit(&mut self, app_name: &str) -> Result<String, ControllerError> {
        let unit = self.new_unit(app_name)?;
        self.save()?;
        self.start_unit(&unit)?;
        self.save()?;
        Ok(unit)
    }

    /// A new unit of the application, in the model only (in scope of its
    /// relations, the leader if there is none).
    fn new_unit(&mut self, app_name: &str) -> Result<String, ControllerError> {
        let app = self.app_mut(app_name)?;
        let (subnet, block, n) = (app.subnet, app.block, app.next_unit);
        let no_address = || ControllerError::NoAddress(format!("unit {app_name}/{n}"));
        let address = match block {
            0 if n >= 254 => return Err(no_address()),
            0 => self.network.address(subnet, n),
            _ => {
                // The slots in turn from the unit's number, skipping those
                // the living units hold: a removed unit's address comes back
                // only after the block's others.
                let held: Vec<u32> = app
                    .units
                    .values()
                    .filter_map(|u| network::slot_of(&u.address, block))
                    .collect();
                let slot = (0..network::BLOCK_UNITS)
                    .map(|i| (n + i) % network::BLOCK_UNITS)
                    .find(|s| !held.contains(s))
                    .ok_or_else(no_address)?;
                self.network.block_address(block, slot)
            }
        };
        let app = self.app_mut(app_name)?;
        app.next_unit += 1;
        let unit = format!("{app_name}/{n}");
        let storage_pending = app
            .files
            .meta
            .storage
            .iter()
            .map(|(name, spec)| (name.clone(), spec.initial_count()))
            .filter(|(_, count)| *count > 0)
            .collect();
        app.units.insert(
            unit.clone(),
            Unit {
                address: address.clone(),
                storage_pending,
                ..Unit::default()
            }
            .into(),
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
        Ok(unit)
    }

    /// `juju remove-unit <unit>`: the unit runs its leaving hooks.
    pub fn remove_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.unit_mut(unit)?.life = Life::Dying;
        self.save()
    }

    /// `juju remove-unit --force <unit>`: the unit runs its leaving hooks, but
    /// one that fails (or the one it is in error on) is skipped.
    pub fn force_remove_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        let u = self.unit_mut(unit)?;
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
        let mut alive: Vec<(u32, String)> = self
            .app(app)?
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

    /// Forgets an application, its secrets and (once that is saved) its charm.
    fn forget_application(&mut self, app: &str) {
        self.model.applications.remove(app);
        self.model.secrets.retain(|s| s.owner_app() != app);
        self.doomed_dirs.push(self.root.join("charms").join(app));
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
        let ((a_app, a_ep), (b_app, b_ep)) = (split_endpoint(a), split_endpoint(b));
        let matches = |r: &RelationRecord, app: &str, ep: Option<&str>| {
            r.end_of(app)
                .is_some_and(|e| ep.is_none_or(|x| x == e.endpoint))
        };
        let found: Vec<u64> = self
            .model
            .relations
            .iter()
            .filter(|r| !r.is_peer() && !r.dying)
            .filter(|r| matches(r, a_app, a_ep) && matches(r, b_app, b_ep))
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
        let refused = |why: String| ControllerError::Relate(format!("{spec} and {other}"), why);
        let (app, ep) = split_endpoint(spec);
        let a = self.app(app)?;
        if let Some(e) = ep {
            if a.files.meta.interface(e).is_none() {
                return Err(refused(format!(
                    "application {app:?} has no {e:?} endpoint"
                )));
            }
            return Ok((app.into(), e.into()));
        }
        let (other_app, other_ep) = split_endpoint(other);
        let theirs: Vec<(&str, bool)> = endpoints(&self.app(other_app)?.files.meta)
            .filter(|(n, _, _)| other_ep.is_none_or(|x| x == n.as_str()))
            .map(|(_, e, provides)| (e.interface.as_str(), provides))
            .collect();
        let matching: Vec<&String> = endpoints(&a.files.meta)
            .filter(|(_, e, provides)| theirs.contains(&(e.interface.as_str(), !provides)))
            .map(|(n, _, _)| n)
            .collect();
        match matching.as_slice() {
            [one] => Ok((app.into(), (*one).clone())),
            [] => Err(refused("no endpoints match".into())),
            _ => Err(refused("more than one endpoint matches; name it".into())),
        }
    }

    /// Forgets a unit that ran its remove hook; a new leader is chosen if it led.
    /// An application removed whose units are all gone goes too. Its Pebble
    /// servers stop and its directory goes once the model is saved without it.
    pub(super) fn reap(&mut self, unit: &str) {
        if self.model.unit(unit).is_some_and(|u| u.seen.removed) {
            self.doomed_units.extend(self.units.remove(unit));
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
            self.doomed_dirs.push(self.unit_home(unit));
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
            let saw = |u: &crate::model::Unit| u.seen.relations.keys().any(|id| gone.contains(id));
            if !app.units.values().any(|u| saw(u)) {
                continue;
            }
            for u in app.units.values_mut().filter(|u| saw(u)) {
                u.seen.relations.retain(|id, _| !gone.contains(id));
            }
        }
    }
}
