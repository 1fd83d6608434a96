//! The files API on the container's root: container paths map to `<root>/...`;
//! reads, listings, atomic writes with mode and owner, directories and removal.

use crate::sandbox::{is_root, Accounts};
use crate::timefmt::rfc3339;
use serde_json::{json, Value};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One path's failure: Pebble's error kind and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileError {
    pub kind: &'static str,
    pub message: String,
}

impl FileError {
    fn generic(message: impl Into<String>) -> Self {
        Self {
            kind: "generic-file-error",
            message: message.into(),
        }
    }

    /// An I/O error on `op` of `path`, worded as Go words it.
    fn io(op: &str, path: &str, e: &io::Error) -> Self {
        let (kind, text) = match e.kind() {
            io::ErrorKind::NotFound => ("not-found", "no such file or directory".to_string()),
            io::ErrorKind::PermissionDenied => ("permission-denied", "permission denied".into()),
            io::ErrorKind::AlreadyExists => ("generic-file-error", "file exists".into()),
            _ => {
                let text = e.to_string();
                let text = text
                    .split(" (os error")
                    .next()
                    .unwrap_or(&text)
                    .to_lowercase();
                ("generic-file-error", text)
            }
        };
        Self {
            kind,
            message: format!("{op} {path}: {text}"),
        }
    }

    /// The JSON `error` object.
    pub fn json(&self) -> Value {
        json!({"message": self.message, "kind": self.kind})
    }
}

/// Mode and owner for a write or a new directory.
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    pub permissions: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// `make-dirs` for writes, `make-parents` for directories.
    pub make_parents: bool,
}

/// The files of one container.
pub(crate) struct Files {
    root: PathBuf,
    /// Whose names owners are given by and looked up in.
    accounts: Accounts,
}

impl Files {
    pub fn new(root: PathBuf, accounts: Accounts) -> Self {
        Self { root, accounts }
    }

    /// Where a container path lives on the host; `..` may not leave the root.
    pub fn host_path(&self, path: &str) -> Result<PathBuf, FileError> {
        if !path.starts_with('/') {
            return Err(FileError::generic(format!(
                "paths must be absolute, got {path:?}"
            )));
        }
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => parts.push(part),
                // `..` pops a level; with none left it would leave the root.
                Component::ParentDir if parts.pop().is_none() => {
                    return Err(FileError {
                        kind: "permission-denied",
                        message: format!("path {path:?} leaves the container's root"),
                    });
                }
                _ => {}
            }
        }
        let mut host = self.root.clone();
        host.extend(parts);
        Ok(host)
    }

    /// The whole content of a regular file.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, FileError> {
        let host = self.host_path(path)?;
        let meta = fs::metadata(&host).map_err(|e| FileError::io("stat", path, &e))?;
        if !meta.is_file() {
            return Err(FileError::generic(format!(
                "can only read a regular file: {path:?}"
            )));
        }
        fs::read(&host).map_err(|e| FileError::io("open", path, &e))
    }

    /// A directory's entries (those whose name matches `pattern`), or the path
    /// itself when it is not a directory or `itself` is set.
    pub fn list(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<Value>, FileError> {
        let host = self.host_path(path)?;
        let meta = fs::symlink_metadata(&host).map_err(|e| FileError::io("stat", path, &e))?;
        let name_of = |p: &str| {
            Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".into())
        };
        let follows_to_dir = meta.is_dir() || fs::metadata(&host).is_ok_and(|m| m.is_dir());
        if itself || !follows_to_dir {
            let name = name_of(path);
            if pattern.is_some_and(|p| !glob_match(p, &name)) {
                return Ok(Vec::new());
            }
            return Ok(vec![entry(path, &name, &meta, &self.accounts)]);
        }
        let mut entries = Vec::new();
        let dir = fs::read_dir(&host).map_err(|e| FileError::io("open", path, &e))?;
        for item in dir {
            let item = item.map_err(|e| FileError::io("readdir", path, &e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if pattern.is_some_and(|p| !glob_match(p, &name)) {
                continue;
            }
            let Ok(meta) = item.path().symlink_metadata() else {
                continue;
            };
            let full = format!("{}/{name}", path.trim_end_matches('/'));
            entries.push(entry(&full, &name, &meta, &self.accounts));
        }
        entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(entries)
    }

    /// Writes a file atomically, with its mode and owner.
    pub fn write(&self, path: &str, content: &[u8], options: &Options) -> Result<(), FileError> {
        let host = self.host_path(path)?;
        let mode = parse_mode(options.permissions.as_deref(), 0o644)?;
        let owner = owner(options, &self.accounts)?;
        let parent = host
            .parent()
            .ok_or_else(|| FileError::generic(format!("cannot write {path:?}")))?;
        if options.make_parents {
            make_dirs(parent, 0o755, owner).map_err(|e| FileError::io("mkdir", path, &e))?;
        } else if !parent.is_dir() {
            return Err(FileError {
                kind: "not-found",
                message: format!("parent directory not found for {path:?}"),
            });
        }
        if host.is_dir() {
            return Err(FileError::generic(format!("open {path}: is a directory")));
        }
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let name = host.file_name().unwrap_or_default().to_string_lossy();
        let temp = parent.join(format!(
            ".{name}.pebble-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(content)?;
            file.sync_all()?;
            fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
            chown(&temp, owner)?;
            fs::rename(&temp, &host)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(FileError::io("write", path, &e));
        }
        Ok(())
    }

    /// Makes a directory (and with `make_parents` its parents; existing is fine then).
    pub fn make_dir(&self, path: &str, options: &Options) -> Result<(), FileError> {
        let host = self.host_path(path)?;
        let mode = parse_mode(options.permissions.as_deref(), 0o755)?;
        let owner = owner(options, &self.accounts)?;
        let result = if options.make_parents {
            make_dirs(&host, mode, owner)
        } else {
            fs::create_dir(&host).and_then(|()| {
                fs::set_permissions(&host, fs::Permissions::from_mode(mode))?;
                chown(&host, owner)
            })
        };
        result.map_err(|e| FileError::io("mkdir", path, &e))
    }

    /// Removes a file or an empty directory, or with `recursive` a whole tree
    /// (a missing path is fine then).
    pub fn remove(&self, path: &str, recursive: bool) -> Result<(), FileError> {
        let host = self.host_path(path)?;
        if host == self.root {
            return Err(FileError::generic("cannot remove the root directory"));
        }
        let meta = match fs::symlink_metadata(&host) {
            Ok(meta) => meta,
            Err(e) if recursive && e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(FileError::io("remove", path, &e)),
        };
        let result = if meta.is_dir() {
            if recursive {
                fs::remove_dir_all(&host)
            } else {
                fs::remove_dir(&host)
            }
        } else {
            fs::remove_file(&host)
        };
        result.map_err(|e| FileError::io("remove", path, &e))
    }
}

/// A listing entry as Pebble writes it.
fn entry(path: &str, name: &str, meta: &fs::Metadata, accounts: &Accounts) -> Value {
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_file() {
        "file"
    } else {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_socket() {
            "socket"
        } else if ft.is_fifo() {
            "named-pipe"
        } else if ft.is_block_device() || ft.is_char_device() {
            "device"
        } else {
            "unknown"
        }
    };
    let mut value = json!({
        "path": path,
        "name": name,
        "type": kind,
        "permissions": format!("{:03o}", meta.mode() & 0o777),
        "last-modified": rfc3339(meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
        "user-id": meta.uid(),
        "group-id": meta.gid(),
    });
    if ft.is_file() {
        value["size"] = meta.len().into();
    }
    if let Some(user) = accounts.user_name(meta.uid()) {
        value["user"] = user.into();
    }
    if let Some(group) = accounts.group_name(meta.gid()) {
        value["group"] = group.into();
    }
    value
}

/// An octal permission string such as `644` or `0600`.
fn parse_mode(text: Option<&str>, default: u32) -> Result<u32, FileError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(t) => {
            let mode = (t.len() == 3 || t.len() == 4)
                .then(|| u32::from_str_radix(t, 8).ok())
                .flatten()
                .filter(|m| *m <= 0o7777);
            mode.ok_or_else(|| FileError::generic(format!("invalid permissions {t:?}")))
        }
    }
}

/// The uid and gid to give new files, when we are root and they were asked for.
fn owner(options: &Options, accounts: &Accounts) -> Result<Option<(u32, u32)>, FileError> {
    let user = options.user.as_deref().filter(|u| !u.is_empty());
    let group = options.group.as_deref().filter(|g| !g.is_empty());
    if (user.is_none() && group.is_none()) || !is_root() {
        return Ok(None);
    }
    let bad = |e: String| FileError::generic(e);
    let identity = match user {
        Some(u) => accounts.identity(u, group.unwrap_or("")).map_err(bad)?,
        None => None,
    };
    let uid = identity.as_ref().map(|i| i.uid).unwrap_or(u32::MAX);
    let gid = match (group, &identity) {
        (Some(g), _) => accounts.lookup_gid(g).map_err(bad)?,
        (None, Some(id)) => id.gid,
        (None, None) => u32::MAX,
    };
    Ok(Some((uid, gid)))
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    match owner {
        None => Ok(()),
        Some((uid, gid)) => {
            let uid = (uid != u32::MAX).then_some(uid);
            let gid = (gid != u32::MAX).then_some(gid);
            std::os::unix::fs::chown(path, uid, gid)
        }
    }
}

/// `mkdir -p`, giving each directory it creates `mode` and `owner`.
fn make_dirs(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        make_dirs(parent, mode, owner)?;
    }
    match fs::create_dir(path) {
        Ok(()) => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            chown(path, owner)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Shell-style matching of a whole name: `*`, `?`, `[a-z]`, `[!x]` and `\` escapes.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts just after '['; returns (matched, length consumed including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let lo = if p[i] == '\\' && i + 1 < p.len() {
                i += 1;
                p[i]
            } else {
                p[i]
            };
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                let hi = p[i + 2];
                matched |= lo <= c && c <= hi;
                i += 3;
            } else {
                matched |= lo == c;
                i += 1;
            }
        }
        None
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(&p[1..], *n.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, used))) => go(&p[1 + used..], &n[1..]),
                (Some(c), None) => *c == '[' && go(&p[1..], &n[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.ini", "pgbouncer.ini"));
        assert!(!glob_match("*.ini", "pgbouncer.ini.bak"));
        assert!(glob_match("instance_?", "instance_0"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn keeps_paths_inside_root() {
        let files = Files::new(PathBuf::from("/r"), Accounts::in_dir("/etc".into()));
        assert_eq!(files.host_path("/a/../b/./c").unwrap(), Path::new("/r/b/c"));
        assert_eq!(files.host_path("/").unwrap(), Path::new("/r"));
        assert!(files.host_path("/../etc").is_err());
        assert!(files.host_path("a/b").is_err());
    }

    #[test]
    fn parses_modes() {
        assert_eq!(parse_mode(Some("600"), 0).unwrap(), 0o600);
        assert_eq!(parse_mode(Some("1777"), 0).unwrap(), 0o1777);
        assert_eq!(parse_mode(None, 0o644).unwrap(), 0o644);
        assert!(parse_mode(Some("9"), 0).is_err());
        assert!(parse_mode(Some("abc"), 0).is_err());
    }
}
