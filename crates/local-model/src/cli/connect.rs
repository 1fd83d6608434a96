//! Which model a command is for, and reaching its controller (started in the
//! background when none runs).
//!
//! Any number of commands may find no controller at once: each takes
//! `<model dir>/start.lock` in turn, and only the first to find none answering
//! starts one; the others find it answering. A controller that cannot start
//! (its state is unreadable, say) says why in `controller.log`, and the command
//! shows that error.

use super::CliError;
use crate::api::{self, Request};
use crate::tools::Parsed;
use serde_json::Value;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The exit code of a `juju _daemon` that found the model held by another
/// controller.
pub(super) const ALREADY_RUNNING: u8 = 3;

/// The last `ERROR` line the controller wrote to its log after `offset`.
fn last_error(log: &Path, offset: u64) -> Option<String> {
    let text = std::fs::read(log).ok()?;
    let start = usize::try_from(offset).ok()?.min(text.len());
    String::from_utf8_lossy(&text[start..])
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ERROR ").map(str::to_string))
}

/// A model: its name and directory.
pub struct Target {
    pub name: String,
    pub dir: PathBuf,
}

/// The file naming the model `add-model` last switched to.
fn current_file() -> PathBuf {
    crate::store::home().join("current-model")
}

/// Records the model commands use when none is named.
pub fn switch(name: &str) -> Result<(), CliError> {
    let home = crate::store::home();
    crate::store::create_dirs(&home)
        .and_then(|_| crate::store::write_private(&current_file(), name.as_bytes()))
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", home.display())))
}

/// `[controller:][user/]model` to the bare model name.
fn bare(name: &str) -> String {
    let name = name.rsplit(':').next().unwrap_or(name);
    name.rsplit('/').next().unwrap_or(name).to_string()
}

impl Target {
    /// The model named by `--model`, `$JUJU_MODEL`, the current model, or `local`.
    pub fn from(p: &Parsed) -> Result<Target, CliError> {
        let name = p
            .value("m")
            .map(str::to_string)
            .or_else(|| std::env::var("JUJU_MODEL").ok().filter(|m| !m.is_empty()))
            .or_else(|| {
                std::fs::read_to_string(current_file())
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "local".into());
        Target::named(&name)
    }

    /// The model called `name`.
    pub fn named(name: &str) -> Result<Target, CliError> {
        let name = bare(name);
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(CliError::Usage(format!(
                "invalid model name {name:?}: use lowercase letters, digits and hyphens"
            )));
        }
        Ok(Target {
            dir: crate::store::home().join(&name),
            name,
        })
    }

    fn socket(&self) -> PathBuf {
        crate::store::socket_path(&self.dir)
    }

    /// Whether its controller answers.
    pub fn running(&self) -> bool {
        UnixStream::connect(self.socket()).is_ok()
    }

    /// Whether a controller process holds the model (answering or not: one
    /// starting, or stopping).
    pub fn controller_alive(&self) -> bool {
        let Ok(lock) = std::fs::File::open(self.dir.join("controller.lock")) else {
            return false;
        };
        // SAFETY: flock on a descriptor we own; closing it lets the lock go.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    }

    /// Does `work` on the model's directory with no controller running, none
    /// starting meanwhile (it holds `start.lock`, and the controller's lock).
    pub fn without_controller(
        &self,
        work: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<(), CliError> {
        let failed = |e: std::io::Error| {
            CliError::Failed(format!("cannot clean up {}: {e}", self.dir.display()))
        };
        let start_lock =
            crate::store::private_file(&self.dir.join("start.lock")).map_err(failed)?;
        let controller_lock =
            crate::store::private_file(&self.dir.join("controller.lock")).map_err(failed)?;
        // SAFETY: flock on descriptors we own, released when they are closed.
        let locked = unsafe {
            libc::flock(start_lock.as_raw_fd(), libc::LOCK_EX) == 0
                && libc::flock(controller_lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0
        };
        if !locked {
            return Err(CliError::Failed(format!(
                "a controller still runs for model {:?}; try again once it has stopped",
                self.name
            )));
        }
        work(&self.dir).map_err(failed)
    }

    /// Starts the model's controller in the background unless it runs, and
    /// waits for it to answer; commands starting it at the same time start one.
    pub fn ensure_running(&self) -> Result<(), CliError> {
        if self.running() {
            return Ok(());
        }
        let failed = |what: &str, path: &Path| {
            let what = format!("cannot {what} {}", path.display());
            move |e: std::io::Error| CliError::Failed(format!("{what}: {e}"))
        };
        crate::store::private_dir(&self.dir).map_err(failed("create", &self.dir))?;
        let lock_path = self.dir.join("start.lock");
        let start_lock =
            crate::store::private_file(&lock_path).map_err(failed("open", &lock_path))?;
        // SAFETY: flock on a descriptor we own; released when it is closed.
        if unsafe { libc::flock(start_lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(failed("lock", &lock_path)(std::io::Error::last_os_error()));
        }
        if self.running() {
            return Ok(());
        }
        let log_path = self.dir.join("controller.log");
        let log = crate::store::private_file(&log_path).map_err(failed("open", &log_path))?;
        let exe = super::this_binary()
            .map_err(|e| CliError::Failed(format!("cannot find the juju binary: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let logged = log.metadata().map(|m| m.len()).unwrap_or(0);
            let mut child = Command::new(&exe)
                .args(["_daemon", "--model", &self.name])
                .stdin(Stdio::null())
                .stdout(
                    log.try_clone()
                        .map_err(|e| CliError::Failed(e.to_string()))?,
                )
                .stderr(
                    log.try_clone()
                        .map_err(|e| CliError::Failed(e.to_string()))?,
                )
                .process_group(0)
                .spawn()
                .map_err(|e| CliError::Failed(format!("cannot start the controller: {e}")))?;
            let status = loop {
                if self.running() {
                    return Ok(());
                }
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            match status {
                Some(_) if self.running() => return Ok(()),
                // A controller holds the model without answering yet (one
                // stopping, or one started by hand): try again once it is gone.
                Some(s) if s.code() == Some(ALREADY_RUNNING.into()) => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Some(s) => {
                    return Err(CliError::Failed(
                        last_error(&log_path, logged).unwrap_or_else(|| {
                            format!("the controller exited ({s}); see {}", log_path.display())
                        }),
                    ))
                }
                None => break,
            }
        }
        Err(CliError::Failed(format!(
            "the controller did not start in 30s; see {}",
            log_path.display()
        )))
    }

    /// Sends a request (starting the controller if needed), printing progress
    /// lines on stderr.
    pub fn call(&self, request: &Request) -> Result<Value, CliError> {
        self.ensure_running()?;
        Ok(api::call(&self.socket(), request, |p| eprintln!("{p}"))?)
    }
}
