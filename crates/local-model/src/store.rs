//! Where a model lives on disk, and its state saved there.
//!
//! Models live under a home directory (`$LOCAL_MODEL_HOME`, else
//! `$XDG_DATA_HOME/local-model`, else `~/.local/share/local-model`), one
//! directory per model name:
//!
//! ```text
//! <home>/<model>/model.json        the Model, rewritten atomically after every change
//! <home>/<model>/started.json      the hooks started since model.json was last saved
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

use crate::model::{Application, Model, RelationRecord, SecretRecord, Shared, Unit};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// The started hooks' file in a model directory.
fn started_path(dir: &Path) -> PathBuf {
    dir.join("started.json")
}

/// The JSON of each application, relation and secret as last saved, beside
/// the value it was made from: a save serialises again only the ones that
/// changed (with a thousand client applications, a hook changes a few of
/// them, and serialising the rest again was most of a hook's cost). It
/// relies on equal values serialising alike: the model's types derive their
/// equality (a secret id, equal to another by its xid, is saved as the model's
/// charms gave it first). Each value is a [`Shared`] the model holds too, so
/// one no hook touched is found unchanged by a pointer's comparison.
#[derive(Default)]
pub struct Serialised {
    /// Saves made with this cache.
    passes: u64,
    applications: HashMap<String, AppEntry>,
    relations: HashMap<u64, Entry<RelationRecord>>,
    secrets: HashMap<String, Entry<SecretRecord>>,
    /// The last save's JSON: its buffer serves the next.
    out: Vec<u8>,
    /// When a save last reached the disk (see [`SYNC_EVERY`]).
    synced: Option<Instant>,
}

/// How often at most a save waits for the disk. Every save reaches the
/// kernel at once, so a controller killed loses nothing; a power cut may lose
/// what the model went through in the last second, and finds a whole model
/// either way (each file is replaced by a rename).
const SYNC_EVERY: Duration = Duration::from_secs(1);

struct Entry<T> {
    value: Shared<T>,
    json: Vec<u8>,
    /// The last save that found its value in the model.
    pass: u64,
}

impl<T: serde::Serialize> Entry<T> {
    fn of(value: &Shared<T>, pass: u64) -> Entry<T> {
        Entry {
            value: value.clone(),
            json: serde_json::to_vec(value).expect("the model serialises"),
            pass,
        }
    }
}

/// An application's JSON as last saved, its units' apart: a hook changes
/// its own unit, and the others' (each with its record of every relation it
/// has seen) are kept as they were.
struct AppEntry {
    value: Shared<Application>,
    json: Vec<u8>,
    units: HashMap<String, Entry<Unit>>,
    /// The last save that found its value in the model.
    pass: u64,
}

impl AppEntry {
    fn of(app: &Shared<Application>, pass: u64) -> AppEntry {
        let mut entry = AppEntry {
            value: app.clone(),
            json: Vec::new(),
            units: HashMap::new(),
            pass,
        };
        entry.update(app, pass);
        entry
    }

    /// Brings the entry up to `app`: its own fields serialised again, its
    /// units refreshed one by one.
    fn update(&mut self, app: &Shared<Application>, pass: u64) {
        let units = app.units.iter().map(|(name, unit)| (name.as_str(), unit));
        refresh(&mut self.units, pass, units);
        // The units are shared, so this copy costs the application's own
        // fields only.
        let mut head = Application::clone(app);
        head.units.clear();
        let Ok(serde_json::Value::Object(head)) = serde_json::to_value(&head) else {
            unreachable!("an application serialises as an object")
        };
        let units = &self.units;
        self.json.clear();
        with_fields(&mut self.json, &head, |key, out| {
            if key != "units" {
                return false;
            }
            let names = app.units.keys();
            object(out, names.map(|name| (name, units[name].json.as_slice())));
            true
        });
        self.value = app.clone();
        self.pass = pass;
    }
}

impl Serialised {
    /// The model as compact JSON: its own fields, then each application,
    /// relation and secret from the last save's JSON when it is unchanged.
    fn model_json(&mut self, model: &mut Model) -> &[u8] {
        // The model's own fields, with its three collections empty for the
        // moment: they are written below, entry by entry.
        let applications = std::mem::take(&mut model.applications);
        let relations = std::mem::take(&mut model.relations);
        let secrets = std::mem::take(&mut model.secrets);
        let head = serde_json::to_value(&*model);
        model.applications = applications;
        model.relations = relations;
        model.secrets = secrets;
        let Ok(serde_json::Value::Object(head)) = head else {
            unreachable!("a model serialises as an object")
        };
        self.passes += 1;
        let pass = self.passes;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        with_fields(&mut out, &head, |key, out| {
            match key {
                "applications" => {
                    self.refresh_applications(pass, model);
                    let cache = &self.applications;
                    let names = model.applications.keys();
                    object(out, names.map(|name| (name, cache[name].json.as_slice())));
                }
                "relations" => {
                    let entries = model.relations.iter().map(|r| (&r.id, r));
                    refresh(&mut self.relations, pass, entries);
                    let cache = &self.relations;
                    list(out, model.relations.iter().map(|r| &cache[&r.id].json));
                }
                "secrets" => {
                    let entries = model.secrets.iter().map(|s| (s.xid.as_str(), s));
                    refresh(&mut self.secrets, pass, entries);
                    let cache = &self.secrets;
                    list(out, model.secrets.iter().map(|s| &cache[&s.xid].json));
                }
                _ => return false,
            }
            true
        });
        self.out = out;
        &self.out
    }

    /// Brings the applications' entries up to the model's, as [`refresh`]
    /// does for the other collections, but unit by unit inside each.
    fn refresh_applications(&mut self, pass: u64, model: &Model) {
        for (name, app) in &model.applications {
            match self.applications.get_mut(name) {
                Some(entry) if entry.value.same(app) => entry.pass = pass,
                Some(entry) => entry.update(app, pass),
                None => {
                    self.applications
                        .insert(name.clone(), AppEntry::of(app, pass));
                }
            }
        }
        if self.applications.len() > model.applications.len() {
            self.applications.retain(|_, entry| entry.pass == pass);
        }
    }

    /// Whether this save waits for the disk: the first, and one a second.
    fn sync_now(&mut self) -> bool {
        let due = self.synced.is_none_or(|at| at.elapsed() >= SYNC_EVERY);
        if due {
            self.synced = Some(Instant::now());
        }
        due
    }
}

/// Brings `cache` up to `current` in place, in pass number `pass`: an entry
/// whose value is the model's very value is kept as it is, as is one equal to
/// it (which then shares the model's value, for the next save's sake), a
/// changed or new one is serialised (again), and the entries of values gone
/// are dropped. Only new entries clone their key.
fn refresh<'a, K, Q, T>(
    cache: &mut HashMap<K, Entry<T>>,
    pass: u64,
    current: impl Iterator<Item = (&'a Q, &'a Shared<T>)>,
) where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: ToOwned<Owned = K> + std::hash::Hash + Eq + ?Sized + 'a,
    T: serde::Serialize + PartialEq + 'a,
{
    let mut count = 0;
    for (key, value) in current {
        count += 1;
        match cache.get_mut(key) {
            Some(entry) if entry.value.same(value) => entry.pass = pass,
            Some(entry) if entry.value == *value => {
                entry.value = value.clone();
                entry.pass = pass;
            }
            Some(entry) => *entry = Entry::of(value, pass),
            None => {
                cache.insert(key.to_owned(), Entry::of(value, pass));
            }
        }
    }
    if cache.len() > count {
        cache.retain(|_, entry| entry.pass == pass);
    }
}

/// Writes `head`'s fields as a JSON object: each one `field` writes (it
/// returns `true` once it has), the others as they are in `head`.
fn with_fields(
    out: &mut Vec<u8>,
    head: &serde_json::Map<String, serde_json::Value>,
    mut field: impl FnMut(&str, &mut Vec<u8>) -> bool,
) {
    out.push(b'{');
    for (i, (key, value)) in head.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("a key serialises");
        out.push(b':');
        if !field(key, out) {
            serde_json::to_writer(&mut *out, value).expect("a field serialises");
        }
    }
    out.push(b'}');
}

/// Writes a JSON object of already serialised values, by name.
fn object<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = (&'a String, &'a [u8])>) {
    out.push(b'{');
    for (i, (name, json)) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, name).expect("a name serialises");
        out.push(b':');
        out.extend_from_slice(json);
    }
    out.push(b'}');
}

/// Writes a JSON list of already serialised items.
fn list<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a Vec<u8>>) {
    out.push(b'[');
    for (i, json) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(json);
    }
    out.push(b']');
}

/// Writes `body` to `path` atomically: a temporary file (0600), synced to
/// the disk when `sync`, then renamed over the old one.
fn replace(path: &Path, body: &[u8], sync: bool) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    let write = |source| StoreError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = create_private(&tmp).map_err(write)?;
    file.write_all(body).map_err(write)?;
    if sync {
        file.sync_all().map_err(write)?;
    }
    std::fs::rename(&tmp, path).map_err(write)
}

/// Writes the model to `<dir>/model.json` atomically, counting the save in
/// [`Model::saves`]; `cache` keeps what did not change from the last save.
pub fn save(dir: &Path, model: &mut Model, cache: &mut Serialised) -> Result<(), StoreError> {
    model.saves += 1;
    let sync = cache.sync_now();
    // Compact: it is written after every hook (`jq` reads it for people).
    replace(&state_path(dir), cache.model_json(model), sync)
}

/// The hooks running when a save was made, as [`save_started`] records them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Started {
    /// The [`Model::saves`] of the model.json these hooks started after.
    after: u64,
    units: BTreeMap<String, charm::Event>,
}

/// Records the hooks the model's units have started (their
/// [`crate::model::Unit::hook_started`]) in `<dir>/started.json`: a small
/// file, where a whole save would write every application again. [`load`]
/// takes them while no save has come since.
pub fn save_started(dir: &Path, model: &Model, cache: &mut Serialised) -> Result<(), StoreError> {
    let units = model
        .applications
        .values()
        .flat_map(|a| &a.units)
        .filter_map(|(name, u)| Some((name.clone(), u.hook_started.clone()?)))
        .collect();
    let started = Started {
        after: model.saves,
        units,
    };
    let body = serde_json::to_vec(&started).expect("events serialise");
    replace(&started_path(dir), &body, cache.sync_now())
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
    take_started(dir, &mut model)?;
    for app in model.applications.values_mut() {
        let files =
            charm::metadata::CharmFiles::load(&app.charm_dir).map_err(|e| StoreError::Read {
                path: app.charm_dir.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        app.files = files.into();
    }
    Ok(Some(model))
}

/// Puts the hooks `<dir>/started.json` records as started into the model,
/// unless the model was saved since ([`save_started`]).
fn take_started(dir: &Path, model: &mut Model) -> Result<(), StoreError> {
    let path = started_path(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let started: Started = serde_json::from_slice(&text).map_err(|source| StoreError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    if started.after != model.saves {
        return Ok(());
    }
    for app in model.applications.values_mut() {
        for (name, unit) in &mut app.units {
            unit.hook_started = started.units.get(name).cloned();
        }
    }
    Ok(())
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
    use crate::model::{Application, End, RelationRecord, SecretOwnerRecord, Unit};

    /// A model with one application of one unit, one relation and one
    /// secret, its charm in `dir/charm`.
    fn small_model(dir: &Path) -> Model {
        std::fs::create_dir_all(dir.join("charm")).unwrap();
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
        app.units.insert("x/0".into(), unit.into());
        model.applications.insert("x".into(), app.into());
        model.relations.push(
            RelationRecord {
                id: 3,
                ends: vec![End {
                    app: "x".into(),
                    endpoint: "peers".into(),
                }],
                ..RelationRecord::default()
            }
            .into(),
        );
        model
            .secrets
            .push(SecretRecord::new("xid".into(), SecretOwnerRecord::App("x".into())).into());
        model
    }

    /// The model as `load` gives it back, without the charm files it reads.
    fn loaded(dir: &Path) -> Model {
        let mut back = load(dir).unwrap().unwrap();
        for app in back.applications.values_mut() {
            app.files = Default::default();
        }
        back
    }

    /// The small model, saved once, and the cache that save left.
    fn saved_once(dir: &Path) -> (Model, Serialised) {
        let mut model = small_model(dir);
        let mut cache = Serialised::default();
        save(dir, &mut model, &mut cache).unwrap();
        (model, cache)
    }

    #[test]
    fn a_model_survives_a_round_trip() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let mut model = small_model(dir);
        assert!(load(dir).unwrap().is_none());
        save(dir, &mut model, &mut Serialised::default()).unwrap();
        assert_eq!(model.saves, 1);
        assert_eq!(loaded(dir), model);
    }

    #[test]
    fn a_save_writes_what_changed_since_the_last_and_drops_what_went() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let (mut model, mut cache) = saved_once(dir);
        let unit = model.unit_mut("x/0").unwrap();
        unit.seen.relations.entry(3).or_default().app_version = 7;
        model.relations[0].dying = true;
        model.secrets.clear();
        let mut y = model.applications["x"].clone();
        y.units.clear();
        model.applications.insert("y".into(), y);
        save(dir, &mut model, &mut cache).unwrap();
        assert_eq!(loaded(dir), model);
        assert!(cache.secrets.is_empty(), "a secret gone leaves the cache");
        model.applications.remove("x");
        save(dir, &mut model, &mut cache).unwrap();
        assert_eq!(loaded(dir), model);
        assert_eq!(cache.applications.keys().collect::<Vec<_>>(), ["y"]);
    }

    #[test]
    fn a_save_shares_each_value_it_keeps_with_the_model() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let (mut model, mut cache) = saved_once(dir);
        assert!(cache.relations[&3].value.same(&model.relations[0]));
        let json = cache.relations[&3].json.clone();
        // Written alike: the model's own copy, equal, shared again once saved.
        model.relations[0].dying = false;
        assert!(!cache.relations[&3].value.same(&model.relations[0]));
        save(dir, &mut model, &mut cache).unwrap();
        assert!(cache.relations[&3].value.same(&model.relations[0]));
        assert_eq!(cache.relations[&3].json, json);
        // Changed: written again.
        model.relations[0].dying = true;
        save(dir, &mut model, &mut cache).unwrap();
        assert_ne!(cache.relations[&3].json, json);
        assert!(cache.relations[&3].value.same(&model.relations[0]));
        assert_eq!(loaded(dir), model);
    }

    #[test]
    fn a_save_writes_again_only_the_unit_that_changed() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let mut model = small_model(dir);
        let other = model.unit("x/0").unwrap().clone();
        let app = model.applications.get_mut("x").unwrap();
        app.units.insert("x/1".into(), other.into());
        let mut cache = Serialised::default();
        save(dir, &mut model, &mut cache).unwrap();
        let kept = |cache: &Serialised| cache.applications["x"].units["x/1"].json.as_ptr();
        let before = kept(&cache);
        let unit = model.unit_mut("x/0").unwrap();
        unit.seen.relations.entry(3).or_default().app_version = 7;
        save(dir, &mut model, &mut cache).unwrap();
        let units = &cache.applications["x"].units;
        assert!(units["x/0"]
            .value
            .same(&model.applications["x"].units["x/0"]));
        assert_eq!(kept(&cache), before, "the other unit's JSON is kept");
        assert_eq!(loaded(dir), model);
        model.applications.get_mut("x").unwrap().units.remove("x/1");
        save(dir, &mut model, &mut cache).unwrap();
        assert_eq!(cache.applications["x"].units.len(), 1, "a unit gone leaves");
        assert_eq!(loaded(dir), model);
    }

    #[test]
    fn what_running_hooks_read_is_not_saved() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let (mut model, mut cache) = saved_once(dir);
        model.reading.mark("xid", "x/0", 1);
        save(dir, &mut model, &mut cache).unwrap();
        assert!(
            cache.secrets["xid"].value.same(&model.secrets[0]),
            "a hook reading the secret leaves its record as it was"
        );
        assert_eq!(loaded(dir), model, "equal whatever hooks read");
        assert_eq!(model.secrets[0].in_use(&model.reading), [1].into());
        model.reading.end("x/0");
        assert!(model.secrets[0].in_use(&model.reading).is_empty());
    }

    #[test]
    fn hooks_recorded_as_started_count_until_the_next_save() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let (mut model, mut cache) = saved_once(dir);
        model.unit_mut("x/0").unwrap().hook_started = Some(charm::Event::Install);
        save_started(dir, &model, &mut cache).unwrap();
        let back = loaded(dir);
        assert_eq!(
            back.unit("x/0").unwrap().hook_started,
            Some(charm::Event::Install)
        );
        assert_eq!(back, model, "model.json and started.json make the model");
        model.unit_mut("x/0").unwrap().hook_started = None;
        save(dir, &mut model, &mut cache).unwrap();
        assert_eq!(
            loaded(dir).unit("x/0").unwrap().hook_started,
            None,
            "a save after the record supersedes it"
        );
    }
}
