//! How a service's process is launched: its user and group (looked up in the host's
//! `/etc/passwd` and `/etc/group`), its environment, and with the sandbox on, its own
//! mount namespace chrooted into the container's root, where the image's overlays
//! (see `image`) are already mounted, with `/dev` bound and `/proc` mounted. Everything the child does between fork and exec is
//! prepared beforehand, so the child only makes async-signal-safe system calls.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The base `PATH` of every process.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A user and group to switch to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub user: Option<String>,
    pub home: Option<String>,
}

/// A line of `/etc/passwd`: name, uid, gid and home.
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The accounts of a container: its `/etc/passwd` and `/etc/group` (the
/// image's, sandboxed; the host's otherwise).
#[derive(Clone, Debug)]
pub(crate) struct Accounts {
    etc: PathBuf,
}

impl Accounts {
    /// The accounts whose files are in `etc`.
    pub fn in_dir(etc: PathBuf) -> Accounts {
        Accounts { etc }
    }

    fn passwd(&self) -> Vec<PasswdEntry> {
        let text = std::fs::read_to_string(self.etc.join("passwd")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                Some(PasswdEntry {
                    name: f.first()?.to_string(),
                    uid: f.get(2)?.parse().ok()?,
                    gid: f.get(3)?.parse().ok()?,
                    home: f.get(5).unwrap_or(&"/").to_string(),
                })
            })
            .collect()
    }

    /// Lines of `group`: name, gid and members.
    fn groups(&self) -> Vec<(String, u32, Vec<String>)> {
        let text = std::fs::read_to_string(self.etc.join("group")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                let members = f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, members))
            })
            .collect()
    }

    /// The uid of a user name (or a number).
    #[cfg(test)]
    pub fn lookup_uid(&self, user: &str) -> Result<u32, String> {
        self.passwd()
            .into_iter()
            .find(|e| e.name == user)
            .map(|e| e.uid)
            .or_else(|| user.parse().ok())
            .ok_or_else(|| format!("unknown user {user:?}"))
    }

    /// The gid of a group name (or a number).
    pub fn lookup_gid(&self, group: &str) -> Result<u32, String> {
        self.groups()
            .into_iter()
            .find(|(name, ..)| name == group)
            .map(|(_, gid, _)| gid)
            .or_else(|| group.parse().ok())
            .ok_or_else(|| format!("unknown group {group:?}"))
    }

    /// The name of a uid, if it has one.
    pub fn user_name(&self, uid: u32) -> Option<String> {
        self.passwd()
            .into_iter()
            .find(|e| e.uid == uid)
            .map(|e| e.name)
    }

    /// The name of a gid, if it has one.
    pub fn group_name(&self, gid: u32) -> Option<String> {
        self.groups()
            .into_iter()
            .find(|(_, g, _)| *g == gid)
            .map(|(n, ..)| n)
    }

    /// The identity for a service's `user` and `group`; `None` to stay as we
    /// are (no user or group given, or we are not root and cannot switch).
    pub fn identity(&self, user: &str, group: &str) -> Result<Option<Identity>, String> {
        if (user.is_empty() && group.is_empty()) || !is_root() {
            return Ok(None);
        }
        let group_gid = if group.is_empty() {
            None
        } else {
            Some(self.lookup_gid(group)?)
        };
        if user.is_empty() {
            let gid = group_gid.unwrap_or(0);
            return Ok(Some(Identity {
                uid: 0,
                gid,
                groups: vec![gid],
                user: None,
                home: None,
            }));
        }
        let entry = match self.passwd().into_iter().find(|e| e.name == user) {
            Some(entry) => entry,
            None => {
                let uid: u32 = user.parse().map_err(|_| format!("unknown user {user:?}"))?;
                PasswdEntry {
                    name: user.to_string(),
                    uid,
                    gid: uid,
                    home: "/".into(),
                }
            }
        };
        let gid = group_gid.unwrap_or(entry.gid);
        let mut supplementary = vec![gid];
        for (_, g, members) in self.groups() {
            if members.contains(&entry.name) && !supplementary.contains(&g) {
                supplementary.push(g);
            }
        }
        Ok(Some(Identity {
            uid: entry.uid,
            gid,
            groups: supplementary,
            user: Some(entry.name),
            home: Some(entry.home),
        }))
    }
}

/// The container's root and whether processes are chrooted into it.
#[derive(Clone, Debug)]
pub(crate) struct Sandbox {
    pub root: PathBuf,
    pub enabled: bool,
}

/// What a process runs: its words, environment, working directory and identity.
pub(crate) struct Launch<'a> {
    pub words: &'a [String],
    pub environment: &'a std::collections::BTreeMap<String, String>,
    pub working_dir: &'a str,
    pub user: &'a str,
    pub group: &'a str,
}

/// A bind mount the child makes.
struct Bind {
    source: CString,
    target: CString,
    read_only: bool,
}

/// Everything the child needs after fork, prepared in the parent.
struct ChildSetup {
    binds: Vec<Bind>,
    proc_target: Option<CString>,
    root: Option<CString>,
    working_dir: Option<CString>,
    identity: Option<Identity>,
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// `root` joined with an absolute host path such as `/usr`.
fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

impl Sandbox {
    /// The container's accounts: its own `/etc`'s when sandboxed, the host's
    /// otherwise (its processes are the host's then).
    pub fn accounts(&self) -> Accounts {
        Accounts::in_dir(if self.enabled {
            inside(&self.root, "/etc")
        } else {
            PathBuf::from("/etc")
        })
    }

    /// Where `program` is, as a process in the container would find it (a
    /// path, or a name looked up on the base `PATH`), seen from the host;
    /// `None` when it is not there.
    pub fn find_program(&self, program: &str) -> Option<PathBuf> {
        let at = |path: &str| {
            if self.enabled {
                inside(&self.root, path)
            } else {
                PathBuf::from(path)
            }
        };
        let candidates: Vec<PathBuf> = if program.contains('/') {
            vec![at(program)]
        } else {
            PATH.split(':')
                .map(|dir| at(&format!("{dir}/{program}")))
                .collect()
        };
        candidates.into_iter().find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }

    /// Whether `dir` is a directory in the container.
    pub fn is_dir(&self, dir: &str) -> bool {
        if self.enabled {
            inside(&self.root, dir).is_dir()
        } else {
            Path::new(dir).is_dir()
        }
    }

    /// Builds the command for `launch`, with its environment, identity and (with the
    /// sandbox on) its chroot; stdio is the caller's to set.
    pub fn command(&self, launch: &Launch) -> Result<Command, String> {
        let identity = self.accounts().identity(launch.user, launch.group)?;
        let (program, args) = launch
            .words
            .split_first()
            .ok_or_else(|| "empty command".to_string())?;
        let mut command = Command::new(program);
        command.args(args);
        command.env_clear();
        command.env("PATH", PATH);
        let home = match &identity {
            Some(Identity { home: Some(h), .. }) => h.clone(),
            Some(_) => "/root".into(),
            None if self.enabled => "/root".into(),
            None => std::env::var("HOME").unwrap_or_else(|_| "/".into()),
        };
        command.env("HOME", home);
        let socket = if self.enabled {
            PathBuf::from(crate::CONTAINER_SOCKETS[0])
        } else {
            inside(&self.root, crate::CONTAINER_SOCKETS[0])
        };
        command.env("PEBBLE_SOCKET", socket);
        if let Some(Identity { user: Some(u), .. }) = &identity {
            command.env("USER", u);
        }
        command.envs(launch.environment);
        command.process_group(0);
        let mut setup = ChildSetup {
            binds: Vec::new(),
            proc_target: None,
            root: None,
            working_dir: None,
            identity,
        };
        if self.enabled {
            self.prepare(&mut setup)
                .map_err(|e| format!("cannot prepare sandbox in {}: {e}", self.root.display()))?;
            if !launch.working_dir.is_empty() {
                setup.working_dir =
                    Some(cstring(Path::new(launch.working_dir)).map_err(|e| e.to_string())?);
            }
        } else if !launch.working_dir.is_empty() {
            command.current_dir(launch.working_dir);
        }
        // SAFETY: the closure only makes async-signal-safe system calls on data
        // prepared before the fork; it allocates nothing.
        unsafe {
            command.pre_exec(move || setup.run());
        }
        Ok(command)
    }

    /// Creates `/dev`, `/proc` and `/tmp` in the root, and lists the mounts.
    fn prepare(&self, setup: &mut ChildSetup) -> io::Result<()> {
        let root = &self.root;
        std::fs::create_dir_all(root)?;
        let dev = inside(root, "/dev");
        std::fs::create_dir_all(&dev)?;
        setup.binds.push(Bind {
            source: cstring(Path::new("/dev"))?,
            target: cstring(&dev)?,
            read_only: false,
        });
        let proc_dir = inside(root, "/proc");
        std::fs::create_dir_all(&proc_dir)?;
        setup.proc_target = Some(cstring(&proc_dir)?);
        let tmp = inside(root, "/tmp");
        std::fs::create_dir_all(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
        setup.root = Some(cstring(root)?);
        Ok(())
    }
}

/// Fails with the last OS error when `result` is -1.
fn check(result: libc::c_int) -> io::Result<()> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl ChildSetup {
    /// Runs in the child between fork and exec: async-signal-safe calls only.
    fn run(&self) -> io::Result<()> {
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: every pointer is a NUL-terminated string owned by `self`, or null
        // where the call allows it.
        unsafe {
            if let Some(root) = &self.root {
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    null,
                    c"/".as_ptr(),
                    null,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for bind in &self.binds {
                    check(libc::mount(
                        bind.source.as_ptr(),
                        bind.target.as_ptr(),
                        null,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                    if bind.read_only {
                        check(libc::mount(
                            null,
                            bind.target.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                            std::ptr::null(),
                        ))?;
                    }
                }
                if let Some(proc_target) = &self.proc_target {
                    check(libc::mount(
                        c"proc".as_ptr(),
                        proc_target.as_ptr(),
                        c"proc".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ))?;
                }
                check(libc::chroot(root.as_ptr()))?;
                check(libc::chdir(c"/".as_ptr()))?;
                if let Some(dir) = &self.working_dir {
                    check(libc::chdir(dir.as_ptr()))?;
                }
            }
            if let Some(id) = &self.identity {
                check(libc::setgroups(id.groups.len() as _, id.groups.as_ptr()))?;
                check(libc::setgid(id.gid))?;
                check(libc::setuid(id.uid))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root() {
        let host = Accounts::in_dir("/etc".into());
        assert_eq!(host.lookup_uid("root").unwrap(), 0);
        assert_eq!(host.lookup_gid("root").unwrap(), 0);
        assert_eq!(host.lookup_uid("4242").unwrap(), 4242);
        assert!(host.lookup_uid("no-such-user-here").is_err());
        assert_eq!(host.user_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn a_sandboxed_container_has_its_own_accounts() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\npostgres:x:584788:584788::/var/lib/postgresql:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/group"),
            "root:x:0:\npostgres:x:584788:\n",
        )
        .unwrap();
        let sandbox = Sandbox {
            root: root.path().to_path_buf(),
            enabled: true,
        };
        let accounts = sandbox.accounts();
        assert_eq!(accounts.lookup_uid("postgres").unwrap(), 584788);
        assert_eq!(accounts.group_name(584788).as_deref(), Some("postgres"));
        let host = Sandbox {
            enabled: false,
            ..sandbox
        };
        assert!(host.accounts().user_name(584788).is_none());
    }
}
