//! Which model a command is for, and reaching its controller (started in the
//! background when none runs).

use super::CliError;
use crate::api::{self, Request};
use crate::tools::Parsed;
use serde_json::Value;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    std::fs::create_dir_all(&home)
        .and_then(|_| std::fs::write(current_file(), name))
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

    /// Starts the model's controller in the background unless it runs, and
    /// waits for it to answer.
    pub fn ensure_running(&self) -> Result<(), CliError> {
        if self.running() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", self.dir.display())))?;
        let log_path = self.dir.join("controller.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| CliError::Failed(format!("cannot open {}: {e}", log_path.display())))?;
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Failed(format!("cannot find the juju binary: {e}")))?;
        let mut child = Command::new(exe)
            .args(["_daemon", "--model", &self.name])
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| CliError::Failed(e.to_string()))?,
            )
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| CliError::Failed(format!("cannot start the controller: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.running() {
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                if self.running() {
                    return Ok(());
                }
                return Err(CliError::Failed(format!(
                    "the controller exited ({status}); see {}",
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
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
