//! Charm archives: the `.charm` files `charmcraft pack` and
//! `scripts/build-charms` write, a charm directory zipped with each file's Unix
//! mode. The model reads an archive's charm files without unpacking it, then
//! unpacks it into its store as the charm's directory. An entry that is not a
//! path inside the charm (absolute, or through `..`) or that is a symbolic
//! link is refused, so that unpacking writes nowhere else.

use charm::metadata::{parse_yaml, CharmFiles, MetadataError};
use std::fs::{File, OpenOptions, Permissions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use zip::ZipArchive;

/// Why a charm archive cannot be read or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the archive or writing what it holds failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a zip archive, or a broken one.
    #[error("it is not a charm archive (a zip file): {0}")]
    Zip(#[from] zip::result::ZipError),
    /// An entry's name would put it outside the charm's directory.
    #[error("its entry {0:?} is not a path inside the charm (absolute, or through `..`)")]
    Escapes(String),
    /// An entry is a symbolic link, which `charmcraft pack` never writes.
    #[error("its entry {0:?} is a symbolic link, which a packed charm does not hold")]
    Link(String),
    /// Two entries have the same name.
    #[error("its entry {0:?} appears twice")]
    Twice(String),
    /// The archive has no executable `dispatch` at its root.
    #[error("it has no executable `dispatch`")]
    NoDispatch,
    /// The archive has no `metadata.yaml` at its root.
    #[error("it has no metadata.yaml")]
    NoMetadata,
    /// One of the charm's YAML files is not what Juju accepts.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// The charm files the model reads (`metadata.yaml` required).
const CHARM_FILES: [&str; 4] = [
    "metadata.yaml",
    "config.yaml",
    "actions.yaml",
    "manifest.yaml",
];

fn open(archive: &Path) -> Result<ZipArchive<File>, ArchiveError> {
    Ok(ZipArchive::new(File::open(archive)?)?)
}

/// An entry's name as a path inside the charm's directory (`None` for the
/// directory itself), or why it is not one.
fn inside(name: &str) -> Result<Option<PathBuf>, ArchiveError> {
    let mut path = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(ArchiveError::Escapes(name.into()))
            }
        }
    }
    Ok((!path.as_os_str().is_empty()).then_some(path))
}

/// Whether an entry's Unix mode lets someone execute it.
fn executable(mode: Option<u32>) -> bool {
    mode.is_some_and(|m| m & 0o111 != 0)
}

/// Reads a charm archive's charm files, checking every entry's name and that
/// it holds an executable `dispatch`, without unpacking anything.
pub fn inspect(archive: &Path) -> Result<CharmFiles, ArchiveError> {
    let mut zip = open(archive)?;
    let mut dispatch = false;
    let mut texts: [Option<String>; 4] = Default::default();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let name = entry.name().to_owned();
        let Some(path) = inside(&name)? else {
            continue;
        };
        if entry.is_symlink() {
            return Err(ArchiveError::Link(name));
        }
        if path == Path::new("dispatch") {
            dispatch = entry.is_file() && executable(entry.unix_mode());
        }
        if let Some(k) = CHARM_FILES.iter().position(|f| path == Path::new(f)) {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            texts[k] = Some(text);
        }
    }
    if !dispatch {
        return Err(ArchiveError::NoDispatch);
    }
    let [meta, config, actions, manifest] = texts;
    Ok(CharmFiles {
        meta: parse_yaml(&meta.ok_or(ArchiveError::NoMetadata)?, CHARM_FILES[0])?,
        config: optional(config.as_deref(), CHARM_FILES[1])?,
        actions: optional(actions.as_deref(), CHARM_FILES[2])?,
        manifest: optional(manifest.as_deref(), CHARM_FILES[3])?,
    })
}

/// An optional charm file's contents parsed, or its default when absent.
fn optional<T: for<'de> serde::Deserialize<'de> + Default>(
    text: Option<&str>,
    file: &str,
) -> Result<T, MetadataError> {
    text.map_or_else(|| Ok(T::default()), |t| parse_yaml(t, file))
}

/// Unpacks a charm archive into `into` (created), private to its owner as
/// the model's store is: directories 0700, files 0600, or 0700 when the
/// archive marks them executable. Refuses, before writing it, an entry that
/// is not a path inside the charm or that is a link; what was written before
/// is left for the caller to remove.
pub fn unpack(archive: &Path, into: &Path) -> Result<(), ArchiveError> {
    let mut zip = open(archive)?;
    crate::store::private_dir(into)?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let name = entry.name().to_owned();
        let Some(path) = inside(&name)? else {
            continue;
        };
        if entry.is_symlink() {
            return Err(ArchiveError::Link(name));
        }
        let target = into.join(&path);
        if entry.is_dir() {
            crate::store::create_dirs(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            crate::store::create_dirs(parent)?;
        }
        let mode = if executable(entry.unix_mode()) {
            0o700
        } else {
            0o600
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => ArchiveError::Twice(name.clone()),
                _ => ArchiveError::Io(e),
            })?;
        std::io::copy(&mut entry, &mut file)?;
        // The mode whatever the umask.
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    Ok(())
}
