//! Unit and application status.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A workload status as `status-set` takes it and `juju status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "message", rename_all = "lowercase")]
pub enum Status {
    Active(String),
    Blocked(String),
    Maintenance(String),
    Waiting(String),
    /// Set by Juju only (before the charm sets anything).
    Unknown(String),
    /// Set by Juju only (a failed hook).
    Error(String),
}

impl Status {
    /// The status name as Juju prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Active(_) => "active",
            Status::Blocked(_) => "blocked",
            Status::Maintenance(_) => "maintenance",
            Status::Waiting(_) => "waiting",
            Status::Unknown(_) => "unknown",
            Status::Error(_) => "error",
        }
    }

    /// The message shown beside the status.
    pub fn message(&self) -> &str {
        match self {
            Status::Active(m)
            | Status::Blocked(m)
            | Status::Maintenance(m)
            | Status::Waiting(m)
            | Status::Unknown(m)
            | Status::Error(m) => m,
        }
    }

    /// Builds a status from Juju's name and message; `None` for an unknown name.
    pub fn from_parts(name: &str, message: impl Into<String>) -> Option<Status> {
        let m = message.into();
        Some(match name {
            "active" => Status::Active(m),
            "blocked" => Status::Blocked(m),
            "maintenance" => Status::Maintenance(m),
            "waiting" => Status::Waiting(m),
            "unknown" => Status::Unknown(m),
            "error" => Status::Error(m),
            _ => return None,
        })
    }

    /// Whether a charm may set this status (Juju rejects `unknown` and `error`).
    pub fn settable(&self) -> bool {
        !matches!(self, Status::Unknown(_) | Status::Error(_))
    }
}

impl Default for Status {
    fn default() -> Self {
        Status::Unknown(String::new())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message().is_empty() {
            f.write_str(self.name())
        } else {
            write!(f, "{}: {}", self.name(), self.message())
        }
    }
}

/// Log levels accepted by `juju-log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// The name `juju-log --log-level` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        }
    }
}
