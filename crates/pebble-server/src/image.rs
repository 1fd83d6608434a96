//! The container's image on this machine: the system directories of a root
//! filesystem (a workload image's, or the host's own), each seen under the
//! container's root through an overlay whose upper layer belongs to the
//! container. Services (chrooted into the root) and the files API read the same
//! files, the image's until the container writes its own; nothing the
//! container writes reaches the image.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The directories of a root filesystem that make up the image: the system
/// directories, and the package database, so that `dpkg` in the container
/// knows what the image holds. The rest of `/var` is the container's own.
const SYSTEM_DIRS: [&str; 8] = [
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc",
    "/opt",
    "/var/lib/dpkg",
];

/// The files that say how the machine's network is named: a container shares
/// the machine's network, so it gets the machine's copies, as a container on
/// its host's network does (an image's own name `localhost` otherwise, and
/// perhaps on an address nothing listens on).
const NETWORK_FILES: [&str; 2] = ["etc/hosts", "etc/resolv.conf"];

/// Copies the machine's network files into the container's `/etc` (its upper
/// layer), unless the container has its own already (written by it or by an
/// earlier start).
fn give_network_files(root: &Path, layers: &Path) -> io::Result<()> {
    for file in NETWORK_FILES {
        let host = Path::new("/").join(file);
        if !host.is_file() || layers.join("upper").join(file).exists() {
            continue;
        }
        let inside = root.join(file);
        // The image's may be a link (to a resolver's runtime file): the
        // container gets a file of its own instead.
        if std::fs::symlink_metadata(&inside).is_ok() {
            std::fs::remove_file(&inside)?;
        }
        std::fs::copy(&host, &inside)?;
    }
    Ok(())
}

/// The overlays mounted for one container; unmounted when dropped.
#[derive(Debug)]
pub(crate) struct Image {
    mounts: Vec<PathBuf>,
}

/// Where the upper and work layers of a container's overlays live: beside the root.
pub(crate) fn layers_dir(root: &Path) -> PathBuf {
    let mut name = root.file_name().unwrap_or_default().to_os_string();
    name.push(".layers");
    root.with_file_name(name)
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Detaches whatever is mounted at `target` (nothing is fine).
fn detach(target: &Path) {
    if let Ok(c) = cstring(target) {
        // SAFETY: `c` is a NUL-terminated path; failure (nothing mounted) is ignored.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

impl Image {
    /// Mounts an overlay of each system directory of `base` (a root
    /// filesystem: `/` for the host's) at the same path under `root` (a
    /// directory that is a symlink, as on a usrmerged system, gets the same
    /// link). Overlays left by an earlier run are replaced; the upper layers are
    /// kept, so what the container wrote survives a restart.
    pub fn mount(root: &Path, base: &Path) -> io::Result<Image> {
        let layers = layers_dir(root);
        let mut image = Image { mounts: Vec::new() };
        for system_dir in SYSTEM_DIRS {
            let name = system_dir.trim_start_matches('/');
            let dir = base.join(name);
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            let target = root.join(name);
            if meta.file_type().is_symlink() {
                if std::fs::symlink_metadata(&target).is_err() {
                    std::os::unix::fs::symlink(std::fs::read_link(&dir)?, &target)?;
                }
                continue;
            }
            detach(&target);
            let upper = layers.join("upper").join(name);
            let work = layers.join("work").join(name);
            for d in [&target, &upper, &work] {
                std::fs::create_dir_all(d)?;
            }
            // The overlay's top takes its mode from the upper layer: the host
            // directory's, whatever the umask.
            std::fs::set_permissions(&upper, meta.permissions())?;
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                dir.display(),
                upper.display(),
                work.display()
            );
            if [&dir, &upper, &work]
                .iter()
                .any(|p| p.to_string_lossy().contains([',', ':']))
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} cannot hold an overlay (',' or ':' in its path)",
                        root.display()
                    ),
                ));
            }
            let (target_c, options_c) = (cstring(&target)?, CString::new(options)?);
            // SAFETY: every pointer is a NUL-terminated string that outlives the call.
            let mounted = unsafe {
                libc::mount(
                    c"overlay".as_ptr(),
                    target_c.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    options_c.as_ptr().cast(),
                )
            };
            if mounted == -1 {
                let error = io::Error::last_os_error();
                image.unmount();
                return Err(io::Error::new(
                    error.kind(),
                    format!(
                        "cannot mount an overlay of {} at {}: {error}",
                        dir.display(),
                        target.display()
                    ),
                ));
            }
            image.mounts.push(target);
        }
        if base != Path::new("/") {
            give_network_files(root, &layers)?;
        }
        Ok(image)
    }

    /// Mounts `program` read-only at `/charm/bin/pebble` under `root`, as
    /// Juju mounts its Pebble into every workload container: what a workload
    /// runs to record a notice (`pebble notify`).
    pub fn mount_pebble_cli(&mut self, root: &Path, program: &Path) -> io::Result<()> {
        let target = root.join("charm/bin/pebble");
        detach(&target);
        // Every user in the container gets to it, whatever the umask.
        for dir in ["charm", "charm/bin"] {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        }
        if !target.exists() {
            std::fs::File::create(&target)?;
        }
        let (source_c, target_c) = (cstring(program)?, cstring(&target)?);
        // SAFETY: every pointer is a NUL-terminated string that outlives the
        // calls, or null where the call allows it.
        let mounted = unsafe {
            libc::mount(
                source_c.as_ptr(),
                target_c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) == 0
                && libc::mount(
                    std::ptr::null(),
                    target_c.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                ) == 0
        };
        if !mounted {
            let error = io::Error::last_os_error();
            detach(&target);
            return Err(io::Error::new(
                error.kind(),
                format!(
                    "cannot mount {} at {}: {error}",
                    program.display(),
                    target.display()
                ),
            ));
        }
        self.mounts.push(target);
        Ok(())
    }

    /// Detaches every overlay and mount.
    pub fn unmount(&mut self) {
        for target in self.mounts.drain(..).rev() {
            detach(&target);
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        self.unmount();
    }
}
