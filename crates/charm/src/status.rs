//! Unit and application status.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A workload status as `status-set` takes it and `juju status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "message", rename_all = "lowercase")]
pub enum Status {
    /// Running and serving, with a message (may be empty).
    Active(String),
    /// Needs a human to act (relate, configure, trust), and says what.
    Blocked(String),
    /// Busy with something that needs no human.
    Maintenance(String),
    /// Waiting for something outside the unit (another application, a peer).
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

    /// How pressing the status is when several compete, as ops ranks them:
    /// error, blocked, maintenance, waiting, active, unknown (highest first).
    pub fn priority(&self) -> u8 {
        match self {
            Status::Error(_) => 5,
            Status::Blocked(_) => 4,
            Status::Maintenance(_) => 3,
            Status::Waiting(_) => 2,
            Status::Active(_) => 1,
            Status::Unknown(_) => 0,
        }
    }
}

/// The candidate statuses of one dispatch, and the one that wins: the highest
/// [`Status::priority`], the first added among equals (ops' collect-status rule).
///
/// Handlers add to the hook's collector with [`Hook::add_status`] as they meet
/// problems, [`Charm::collect_status`] adds what the state as it now stands
/// says, and dispatch then sets the winner as the unit's status (nothing when
/// no status was added).
///
/// [`Hook::add_status`]: crate::Hook::add_status
/// [`Charm::collect_status`]: crate::Charm::collect_status
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCollector {
    statuses: Vec<Status>,
}

impl StatusCollector {
    /// An empty collector.
    pub fn new() -> StatusCollector {
        StatusCollector::default()
    }

    /// Adds a candidate.
    pub fn add(&mut self, status: Status) {
        self.statuses.push(status);
    }

    /// The winner: the highest priority, the first added among equals; `None`
    /// when nothing was added.
    pub fn highest(&self) -> Option<&Status> {
        self.statuses.iter().fold(None, |best, s| match best {
            Some(b) if b.priority() >= s.priority() => Some(b),
            _ => Some(s),
        })
    }

    /// Every candidate, in the order added.
    pub fn statuses(&self) -> &[Status] {
        &self.statuses
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
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
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARNING`.
    Warning,
    /// `ERROR`.
    Error,
    /// `CRITICAL`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(statuses: &[Status]) -> Option<Status> {
        let mut c = StatusCollector::new();
        for s in statuses {
            c.add(s.clone());
        }
        c.highest().cloned()
    }

    #[test]
    fn nothing_added_means_no_status() {
        assert_eq!(collect(&[]), None);
        assert!(StatusCollector::new().is_empty());
    }

    #[test]
    fn the_highest_priority_wins_in_ops_order() {
        let order = [
            Status::Error("e".into()),
            Status::Blocked("b".into()),
            Status::Maintenance("m".into()),
            Status::Waiting("w".into()),
            Status::Active("a".into()),
            Status::Unknown("u".into()),
        ];
        for (i, winner) in order.iter().enumerate() {
            // Every lower status, added before and after the winner.
            let lower = &order[i + 1..];
            let mut all: Vec<Status> = lower.to_vec();
            all.push(winner.clone());
            all.extend(lower.iter().rev().cloned());
            assert_eq!(collect(&all).as_ref(), Some(winner), "{all:?}");
        }
    }

    #[test]
    fn the_first_added_wins_a_tie() {
        let got = collect(&[
            Status::Active("ready".into()),
            Status::Waiting("first".into()),
            Status::Waiting("second".into()),
            Status::Maintenance("busy".into()),
            Status::Maintenance("later".into()),
        ]);
        assert_eq!(got, Some(Status::Maintenance("busy".into())));
        let got = collect(&[
            Status::Waiting("first".into()),
            Status::Waiting("second".into()),
        ]);
        assert_eq!(got, Some(Status::Waiting("first".into())));
    }

    #[test]
    fn candidates_keep_their_order() {
        let mut c = StatusCollector::new();
        c.add(Status::Waiting("w".into()));
        c.add(Status::Blocked("b".into()));
        assert_eq!(
            c.statuses(),
            [Status::Waiting("w".into()), Status::Blocked("b".into())]
        );
        assert!(!c.is_empty());
    }
}
