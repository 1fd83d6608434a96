//! Where a model lives on disk, and its state saved there.
//!
//! Models live under a home directory (`$LOCAL_MODEL_HOME`, else
//! `$XDG_DATA_HOME/local-model`, else `~/.local/share/local-model`), one
//! directory per model name:
//!
//! ```text
//! <home>/<model>/model.json        the Model, rewritten atomically after every change
//! <home>/<model>/controller.socket the controller's API (see crate::api)
//! <home>/<model>/controller.log    the controller daemon's own output
//! <home>/<model>/controller.pid    its process id, while it runs
//! <home>/<model>/controller.lock   held by the running controller
//! <home>/<model>/start.lock        held by the command starting the controller
//! <home>/<model>/destroying        there while `destroy-model` removes the model
//! <home>/<model>/debug.log         juju-log lines and hook results (juju debug-log)
//! <home>/<model>/charms/<app>/     the deployed charm, copied at deploy
//! <home>/<model>/units/<unit>/     each unit's charm copy, Pebble sockets (and each
//!                                  server's pebble.log) and container roots, and its
//!                                  charm's state as it was before its last hook
//! ```
//!
//! The model holds secrets (their content is in `model.json`; charms write
//! credentials into their containers), so everything here is its owner's
//! alone: directories 0700 and files 0600 (0700 when executable), set
//! explicitly whatever the process umask ([`private_dir`], [`private_file`]);
//! [`tighten`] brings an older model's files into line when its controller
//! starts. A container's root keeps the modes its workloads need: its parent,
//! `units/<unit>/rootfs`, is 0700, so nobody else reaches into it.

use crate::model::Model;
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a model's state: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The directory that holds every model.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("LOCAL_MODEL_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("local-model");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".local/share/local-model")
}

/// The state file in a model directory.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("model.json")
}

/// The controller's socket in a model directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("controller.socket")
}

/// The mark of a model `destroy-model` has begun to remove: no controller
/// starts on it, and the next `destroy-model` finishes the job.
pub fn destroying_path(dir: &Path) -> PathBuf {
    dir.join("destroying")
}

/// The debug log in a model directory.
pub fn debug_log_path(dir: &Path) -> PathBuf {
    dir.join("debug.log")
}

/// Creates `path` and any missing parent as directories only their owner
/// can enter (0700), and makes `path` itself 0700 if it already existed (the
/// parents that existed keep their modes).
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    create_dirs(path)?;
    std::fs::set_permissions(path, Permissions::from_mode(0o700))
}

/// Creates `path` and any missing parent as directories only their owner can
/// enter (0700); one that exists keeps its mode (the home of every model may
/// be a directory the user chose).
pub fn create_dirs(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Opens `path` for appending (created if missing), readable and writable by
/// its owner alone (0600, also when it already existed).
pub fn private_file(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Opens `path` emptied (created if missing), readable and writable by its
/// owner alone.
fn create_private(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Replaces the content of `path` (created if missing), readable and writable
/// by its owner alone.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    create_private(path)?.write_all(content)
}

/// Takes group and other permissions off every file and directory of the model
/// directory `dir` (symbolic links are left as they are): directories become
/// 0700, files 0600 or 0700. The container roots under `units/<unit>/rootfs/`
/// keep their modes (their workloads' users need them), behind a 0700 `rootfs`.
pub fn tighten(dir: &Path) -> std::io::Result<()> {
    fn walk(path: &Path, units: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, Permissions::from_mode(mode & 0o700))?;
        }
        let container_roots = path.file_name().is_some_and(|n| n == "rootfs")
            && path.parent().and_then(Path::parent) == Some(units);
        if !meta.is_dir() || container_roots {
            return Ok(());
        }
        for entry in std::fs::read_dir(path)? {
            walk(&entry?.path(), units)?;
        }
        Ok(())
    }
    walk(dir, &dir.join("units"))
}

/// Writes the model to `<dir>/model.json` atomically: a temporary file (0600),
/// synced, then renamed over the old one.
pub fn save(dir: &Path, model: &Model) -> Result<(), StoreError> {
    let path = state_path(dir);
    let tmp = dir.join("model.json.tmp");
    let write = |source| StoreError::Write {
        path: path.display().to_string(),
        source,
    };
    // Compact: it is written after every hook (`jq` reads it for people).
    let body = serde_json::to_vec(model).expect("the model serialises");
    let mut file = create_private(&tmp).map_err(write)?;
    file.write_all(&body).map_err(write)?;
    file.sync_all().map_err(write)?;
    std::fs::rename(&tmp, &path).map_err(write)
}

/// Reads `<dir>/model.json`, or `None` when there is none yet. Each
/// application's charm files are read again from its charm directory.
pub fn load(dir: &Path) -> Result<Option<Model>, StoreError> {
    let path = state_path(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let mut model: Model = serde_json::from_slice(&text).map_err(|source| StoreError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    for app in model.applications.values_mut() {
        app.files =
            charm::metadata::CharmFiles::load(&app.charm_dir).map_err(|e| StoreError::Read {
                path: app.charm_dir.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
    }
    Ok(Some(model))
}

/// Appends lines to the model's debug log (0600).
pub fn append_log(dir: &Path, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let Ok(mut file) = private_file(&debug_log_path(dir)) else {
        return;
    };
    let mut text = lines.join("\n");
    text.push('\n');
    let _ = file.write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Application, Unit};

    #[test]
    fn a_model_survives_a_round_trip() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::create_dir(dir.join("charm")).unwrap();
        std::fs::write(dir.join("charm/metadata.yaml"), "name: x\n").unwrap();
        let mut model = Model {
            name: "m".into(),
            ..Model::default()
        };
        let mut app = Application {
            charm_dir: dir.join("charm"),
            ..Application::default()
        };
        let mut unit = Unit::default();
        unit.seen.secret_removals.insert(("xid".into(), 1));
        unit.seen.relations.entry(3).or_default().created = true;
        app.units.insert("x/0".into(), unit);
        model.applications.insert("x".into(), app);
        assert!(load(dir).unwrap().is_none());
        save(dir, &model).unwrap();
        let mut back = load(dir).unwrap().unwrap();
        back.applications.get_mut("x").unwrap().files = Default::default();
        assert_eq!(back, model);
    }
}
