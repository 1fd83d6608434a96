//! Pebble servers that outlive their controller, as a pod outlives a Juju
//! controller that goes down: the daemon runs each container's Pebble as a
//! process of its own (`juju _pebble`, in a session of its own), so a
//! controller killed with SIGKILL takes none of the workloads with it. The
//! next controller finds each server by its command line and socket and
//! carries on with it ([`Detached::adopt`]); where none answers, it first
//! kills whatever the container still runs ([`kill_leftovers`]), so no port
//! is held twice, then starts a new one and gives it its plan back.
//!
//! A detached server stops its services and exits on SIGTERM, and kills them
//! all at once on SIGUSR1 (a lost machine). While it runs it holds its model's
//! loopback slice (a shared lock, [`crate::network::workloads_lock`]), so no
//! new model takes the addresses its workloads listen on. With no controller
//! running, `destroy-model` and `kill-controller` stop them ([`stop_all`]).

use pebble_api::{Notice, NoticeQuery, Pebble, PebbleClient};
use pebble_server::{PebbleServer, ServerConfig};
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The hidden verb of the `juju` binary that serves one container.
pub const VERB: &str = "_pebble";

/// How long a server may take to stop its services before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(120);
/// How long a new server may take to answer.
const START_WAIT: Duration = Duration::from_secs(30);

/// Why a detached server could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum DetachedError {
    #[error("cannot run it: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("it exited: {0}")]
    Exited(String),
    #[error("it did not answer in {0}s")]
    NoAnswer(u64),
    #[error("cannot hold {path}: {source}")]
    Hold {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make {path} private: {source}")]
    Private {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Server(#[from] pebble_server::ServerError),
}

/// What a detached server serves.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Its socket.
    pub socket: PathBuf,
    /// The container's root.
    pub root: PathBuf,
    /// Run the services sandboxed.
    pub sandbox: bool,
    /// The root filesystem of the container's image (the host's when `None`).
    pub image: Option<PathBuf>,
    /// What the container runs as `/charm/bin/pebble` (the hook-tool shim).
    pub pebble_cli: Option<PathBuf>,
    /// The lock it holds, shared, while it runs.
    pub hold: PathBuf,
}

/// A detached Pebble server, started by this controller or adopted from a
/// dead one; dropping it stops it (SIGTERM, then SIGKILL after a while).
#[derive(Debug)]
pub struct Detached {
    pid: i32,
    /// Set when this process started it (and must reap it).
    child: Option<Child>,
    socket: PathBuf,
    root: PathBuf,
}

/// Whether a process is gone: no longer there, or a zombie (one no one has
/// reaped yet) all of whose threads have exited, so that it holds no file,
/// socket or lock any more.
pub fn gone(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let zombie = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_none_or(|state| state == "Z" || state == "X");
    zombie
        && std::fs::read_dir(format!("/proc/{pid}/task")).map_or(true, |tasks| tasks.count() <= 1)
}

/// The processes serving a Pebble of ours, each with its socket.
fn servers() -> Vec<(i32, PathBuf)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.get(1) != Some(&VERB.as_bytes()) {
                return None;
            }
            let at = args.iter().position(|a| *a == b"--socket")?;
            let socket = PathBuf::from(String::from_utf8_lossy(args.get(at + 1)?).into_owned());
            (!gone(pid)).then_some((pid, socket))
        })
        .collect()
}

/// Waits until the process is gone, up to `timeout`.
fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !gone(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn signal(pid: i32, signal: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The last line a failed server wrote.
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .last()
        .unwrap_or("it exited")
        .to_string()
}

impl Detached {
    /// Starts a server for `spec` with `exe` (the `juju` binary), its output
    /// appended to `log`, and waits until it answers.
    pub fn spawn(exe: &Path, spec: &Spec, log: &Path) -> Result<Detached, DetachedError> {
        let output = crate::store::private_file(log).map_err(DetachedError::Spawn)?;
        let mut command = Command::new(exe);
        command
            .arg(VERB)
            .arg("--socket")
            .arg(&spec.socket)
            .arg("--root")
            .arg(&spec.root)
            .arg("--hold")
            .arg(&spec.hold)
            .args(spec.sandbox.then_some("--sandbox"))
            .args(
                spec.image
                    .iter()
                    .flat_map(|i| [OsStr::new("--image"), i.as_os_str()]),
            )
            .args(
                spec.pebble_cli
                    .iter()
                    .flat_map(|p| [OsStr::new("--pebble-cli"), p.as_os_str()]),
            )
            .stdin(Stdio::null())
            .stdout(output.try_clone().map_err(DetachedError::Spawn)?)
            .stderr(output);
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(DetachedError::Spawn)?;
        let deadline = Instant::now() + START_WAIT;
        loop {
            if UnixStream::connect(&spec.socket).is_ok() {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                return Err(DetachedError::Exited(last_line(log)));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DetachedError::NoAnswer(START_WAIT.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Detached {
            pid: child.id() as i32,
            child: Some(child),
            socket: spec.socket.clone(),
            root: spec.root.clone(),
        })
    }

    /// The server a dead controller left serving `socket` for the container
    /// at `root`, if one answers there. Any other process serving it (one
    /// that does not answer) is killed.
    pub fn adopt(socket: &Path, root: &Path) -> Option<Detached> {
        let mine: Vec<i32> = servers()
            .into_iter()
            .filter(|(_, s)| s == socket)
            .map(|(pid, _)| pid)
            .collect();
        let answers = PebbleClient::new(socket).system_info().is_ok();
        match mine.as_slice() {
            [pid] if answers => Some(Detached {
                pid: *pid,
                child: None,
                socket: socket.to_path_buf(),
                root: root.to_path_buf(),
            }),
            _ => {
                for pid in mine {
                    signal(pid, libc::SIGKILL);
                    wait_gone(pid, Duration::from_secs(5));
                }
                None
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Every custom notice the container has recorded, oldest last repeat first.
    pub fn custom_notices(&self) -> Vec<Notice> {
        PebbleClient::new(&self.socket)
            .notices(&NoticeQuery {
                types: vec!["custom".into()],
                ..NoticeQuery::default()
            })
            .unwrap_or_default()
    }

    /// Asks it to stop its services and exit (it is waited for when dropped).
    pub fn terminate(&self) {
        signal(self.pid, libc::SIGTERM);
    }

    /// Kills every service at once with SIGKILL (a lost machine), and waits
    /// until the server has gone.
    pub fn crash(mut self) {
        signal(self.pid, libc::SIGUSR1);
        if !self.wait(STOP_WAIT) {
            signal(self.pid, libc::SIGKILL);
        }
    }

    /// Waits until it has exited, reaping it if it is this process's child.
    fn wait(&mut self, timeout: Duration) -> bool {
        match &mut self.child {
            Some(child) => {
                let deadline = Instant::now() + timeout;
                loop {
                    match child.try_wait() {
                        Ok(Some(_)) | Err(_) => return true,
                        Ok(None) if Instant::now() >= deadline => return false,
                        Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
            None => wait_gone(self.pid, timeout),
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if self.wait(Duration::ZERO) {
            kill_leftovers(&self.root);
            return;
        }
        self.terminate();
        if !self.wait(STOP_WAIT) {
            signal(self.pid, libc::SIGKILL);
            self.wait(Duration::from_secs(5));
        }
        kill_leftovers(&self.root);
    }
}

/// Kills the processes still running in a container whose server is gone
/// (SIGKILL), and waits until they have: a sandboxed service's root is the
/// container's, and every service has the container's socket in its
/// `PEBBLE_SOCKET`. Then removes the pid files that name them
/// ([`remove_pid_files`]), so a workload started again does not take a
/// process that has since been given the same id for itself, still running.
pub fn kill_leftovers(root: &Path) {
    let Ok(root) = root.canonicalize() else {
        return;
    };
    let marker = format!(
        "PEBBLE_SOCKET={}",
        root.join(pebble_server::CONTAINER_SOCKETS[0].trim_start_matches('/'))
            .display()
    );
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let inside = |proc_dir: &Path| {
        std::fs::read_link(proc_dir.join("root")).is_ok_and(|r| r.starts_with(&root))
            || std::fs::read(proc_dir.join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
    };
    let killed: Vec<i32> = procs
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            (pid != std::process::id() as i32 && !gone(pid) && inside(&entry.path())).then_some(pid)
        })
        .collect();
    for pid in &killed {
        signal(*pid, libc::SIGKILL);
    }
    for pid in &killed {
        wait_gone(*pid, Duration::from_secs(5));
    }
    if !killed.is_empty() {
        remove_pid_files(&root, &killed);
    }
}

/// Removes the pid files (`*.pid`, a process id on their first line) under
/// a container's root that name one of `pids`, on the root's own file system
/// (not through the image's overlays).
pub fn remove_pid_files(root: &Path, pids: &[i32]) {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, device: u64, depth: usize, pids: &[i32]) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.dev() != device {
                continue;
            }
            if meta.is_dir() && depth > 0 {
                walk(&path, device, depth - 1, pids);
            } else if meta.is_file()
                && meta.len() <= 64
                && path.extension().is_some_and(|e| e == "pid")
            {
                let names_one = std::fs::read_to_string(&path).is_ok_and(|text| {
                    text.lines()
                        .next()
                        .and_then(|l| l.trim().parse::<i32>().ok())
                        .is_some_and(|pid| pids.contains(&pid))
                });
                if names_one && std::fs::remove_file(&path).is_ok() {
                    eprintln!("removed {}, which named a process killed", path.display());
                }
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(root) {
        walk(root, meta.dev(), 8, pids);
    }
}

/// Stops every Pebble server serving a container of the model in `dir` and
/// whatever its containers still run: what a controller that died leaves,
/// for `destroy-model` or `kill-controller` to end with no controller
/// running.
pub fn stop_all(dir: &Path) {
    let homes: Vec<PathBuf> = std::fs::read_dir(dir.join("units"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|unit| unit.path())
        .collect();
    stop_under(&homes);
}

/// [`stop_all`] for one unit's directory.
pub fn stop_unit(home: &Path) {
    stop_under(&[home.to_path_buf()]);
}

/// Stops the servers whose sockets are under one of `homes` (units'
/// directories), all at once, then kills what their containers still run.
fn stop_under(homes: &[PathBuf]) {
    let canonical: Vec<PathBuf> = homes.iter().filter_map(|h| h.canonicalize().ok()).collect();
    let pids: Vec<i32> = servers()
        .into_iter()
        .filter(|(_, socket)| {
            homes
                .iter()
                .chain(&canonical)
                .any(|h| socket.starts_with(h))
        })
        .map(|(pid, _)| pid)
        .collect();
    for pid in &pids {
        signal(*pid, libc::SIGTERM);
    }
    for pid in pids {
        if !wait_gone(pid, STOP_WAIT) {
            signal(pid, libc::SIGKILL);
            wait_gone(pid, Duration::from_secs(5));
        }
    }
    for roots in homes
        .iter()
        .filter_map(|home| std::fs::read_dir(home.join("rootfs")).ok())
    {
        for root in roots.flatten().filter(|r| r.path().is_dir()) {
            kill_leftovers(&root.path());
        }
    }
}

/// Detaches every mount under `dir` (a container image's overlays a server
/// killed with SIGKILL left), deepest first, so removing `dir` removes only
/// the model's own files.
pub fn unmount_all(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else {
        return;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut targets: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|target| PathBuf::from(unescape(target)))
        .filter(|target| target.starts_with(&dir) && *target != dir)
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.components().count()));
    for target in targets {
        if let Ok(c) = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()) {
            // SAFETY: `c` is a NUL-terminated path; a failure leaves it mounted.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// A mount point as `/proc/self/mountinfo` escapes it (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// Records the first signal (a crash asked for is not turned into a stop).
extern "C" fn on_signal(signal: libc::c_int) {
    let _ = SIGNALLED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

/// The body of `juju _pebble`: serves one container until SIGTERM (services
/// stopped) or SIGUSR1 (services killed at once), holding `spec.hold`.
pub fn serve(spec: &Spec) -> Result<(), DetachedError> {
    let hold = std::fs::File::create(&spec.hold).map_err(|source| DetachedError::Hold {
        path: spec.hold.display().to_string(),
        source,
    })?;
    // SAFETY: flock on a descriptor we own, held until the process exits; the
    // handlers only store to an atomic.
    unsafe {
        libc::flock(hold.as_raw_fd(), libc::LOCK_SH);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGUSR1, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let server = PebbleServer::start(ServerConfig {
        socket: spec.socket.clone(),
        root: spec.root.clone(),
        sandbox: spec.sandbox,
        image: spec.image.clone(),
        pebble_cli: spec.pebble_cli.clone(),
    })?;
    std::fs::set_permissions(&spec.socket, std::fs::Permissions::from_mode(0o600)).map_err(
        |source| DetachedError::Private {
            path: spec.socket.display().to_string(),
            source,
        },
    )?;
    eprintln!(
        "pebble {} serving {} on {}",
        std::process::id(),
        spec.root.display(),
        spec.socket.display()
    );
    loop {
        match SIGNALLED.load(Ordering::SeqCst) {
            libc::SIGTERM => {
                server.stop();
                eprintln!("pebble {} stopped", std::process::id());
                return Ok(());
            }
            libc::SIGUSR1 => {
                server.crash();
                eprintln!("pebble {} crashed on purpose", std::process::id());
                return Ok(());
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\"), "/odd\\");
    }

    #[test]
    fn only_the_pid_files_naming_a_killed_process_go() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("var/lib/app");
        std::fs::create_dir_all(&run).unwrap();
        let write = |name: &str, text: &str| std::fs::write(run.join(name), text).unwrap();
        write("killed.pid", "4242\n");
        write("postmaster.pid", "4343\n/var/lib/data\n");
        write("other.pid", "77\n");
        write("notes.txt", "4242\n");
        write("garbled.pid", "not a pid\n");
        remove_pid_files(root.path(), &[4242, 4343]);
        let mut left: Vec<String> = std::fs::read_dir(&run)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["garbled.pid", "notes.txt", "other.pid"]);
    }

    #[test]
    fn this_process_is_not_gone_and_a_made_up_one_is() {
        assert!(!gone(std::process::id() as i32));
        assert!(gone(i32::MAX));
    }
}
