//! Changes: Pebble's record of each request to the services and of each
//! command run (its kind, summary, whether it is ready and why it failed; an
//! exec's one task with its exit code), which callers read
//! (`GET /v1/changes/<id>`) or wait on (`.../wait`).

use super::supervisor::StartFailure;
use super::{ordinal_list, Services};
use crate::timefmt::rfc3339;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// Why a change failed: its `err` on the wire.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    #[error("cannot perform the following tasks:{}", describe(.0))]
    Start(Vec<StartFailure>),
    #[error("cannot stop service(s) {}", ordinal_list(.0))]
    Stop(Vec<String>),
    /// A command that could not run to its end (not started, timed out).
    #[error("{0}")]
    Exec(String),
}

/// Each failed start's task line, then the logs of those that wrote any.
fn describe(failures: &[StartFailure]) -> String {
    let mut text = String::new();
    for f in failures {
        text.push_str(&format!("\n- Start service {:?} ({})", f.service, f.error));
    }
    for f in failures.iter().filter(|f| !f.log.is_empty()) {
        text.push_str(&format!(
            "\n----- Logs from {:?} -----\n{}\n-----",
            f.service, f.log
        ));
    }
    text
}

/// One change.
struct Change {
    /// Its kind on the wire: the service action's name, or `exec`.
    kind: &'static str,
    summary: String,
    /// An exec's exit code, once known.
    exit_code: Option<i32>,
    /// Set once it is ready: how it ended.
    outcome: Option<Result<(), ChangeError>>,
    spawn_time: SystemTime,
    ready_time: Option<SystemTime>,
}

/// Every change so far, by id (from 1, never reused).
#[derive(Default)]
pub(super) struct Changes {
    records: BTreeMap<u64, Change>,
}

impl Changes {
    /// Records a new change of `kind`, not ready yet; returns its id.
    pub fn open(&mut self, kind: &'static str, summary: String) -> u64 {
        let id = self.records.keys().next_back().map_or(1, |last| last + 1);
        let change = Change {
            kind,
            summary,
            exit_code: None,
            outcome: None,
            spawn_time: SystemTime::now(),
            ready_time: None,
        };
        self.records.insert(id, change);
        id
    }

    /// Marks the change ready, with how it ended.
    pub fn close(&mut self, id: u64, outcome: Result<(), ChangeError>) {
        if let Some(change) = self.records.get_mut(&id) {
            change.outcome = Some(outcome);
            change.ready_time = Some(SystemTime::now());
        }
    }

    /// Whether the change is ready; `None` if there is no such change.
    fn ready(&self, id: u64) -> Option<bool> {
        Some(self.records.get(&id)?.outcome.is_some())
    }

    /// The change as the API shows it (`id` as the caller wrote it).
    fn json(&self, id: &str) -> Option<Value> {
        let change = self.records.get(&id.parse().ok()?)?;
        let status = match &change.outcome {
            None => "Doing",
            Some(Ok(())) => "Done",
            Some(Err(_)) => "Error",
        };
        // An exec change has one task, numbered as its change, whose data
        // holds the command's exit code.
        let tasks = if change.kind == EXEC {
            let mut task = json!({
                "id": id, "kind": EXEC, "summary": change.summary, "status": status,
            });
            if let Some(code) = change.exit_code {
                task["data"] = json!({"exit-code": code});
            }
            json!([task])
        } else {
            json!([])
        };
        let mut value = json!({
            "id": id,
            "kind": change.kind,
            "summary": change.summary,
            "status": status,
            "tasks": tasks,
            "ready": change.outcome.is_some(),
            "spawn-time": rfc3339(change.spawn_time),
        });
        if let Some(Err(err)) = &change.outcome {
            value["err"] = err.to_string().into();
        }
        if let Some(ready) = change.ready_time {
            value["ready-time"] = rfc3339(ready).into();
        }
        Some(value)
    }
}

/// The kind of a change that runs a command.
pub(crate) const EXEC: &str = "exec";

impl Services {
    /// Records a change that runs a command; returns its id, which is also
    /// its task's.
    pub fn open_exec(&self, summary: String) -> u64 {
        self.lock().changes.open(EXEC, summary)
    }

    /// Marks an exec change ready with the command's exit code (-1 when it
    /// did not run to its end, with why in `err`).
    pub fn close_exec(&self, id: u64, exit_code: i32, err: Option<String>) {
        let mut st = self.lock();
        if let Some(change) = st.changes.records.get_mut(&id) {
            change.exit_code = Some(exit_code);
        }
        st.changes
            .close(id, err.map_or(Ok(()), |e| Err(ChangeError::Exec(e))));
        drop(st);
        self.cond.notify_all();
    }

    /// The change's JSON, if it exists.
    pub fn change(&self, id: &str) -> Option<Value> {
        self.lock().changes.json(id)
    }

    /// Waits up to `timeout` for the change to be ready: `None` if it does not exist,
    /// `Some(false)` on a timeout.
    pub fn wait_change(&self, id: &str, timeout: Duration) -> Option<bool> {
        let id: u64 = id.parse().ok()?;
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.changes.ready(id)? {
                return Some(true);
            }
            let now = Instant::now();
            if now >= deadline || st.shutdown {
                return Some(false);
            }
            st = self.wait_for(st, deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::supervisor::{OnExit, SpawnError, StartError};

    #[test]
    fn a_failed_start_lists_its_tasks_then_their_logs() {
        let err = ChangeError::Start(vec![
            StartFailure {
                service: "quick".into(),
                error: StartError::ExitedQuickly {
                    code: 3,
                    then: OnExit::Ignore,
                },
                log: "something broke".into(),
            },
            StartFailure {
                service: "gone".into(),
                error: SpawnError::NoService("gone".into()).into(),
                log: String::new(),
            },
        ]);
        assert_eq!(
            err.to_string(),
            "cannot perform the following tasks:\n\
             - Start service \"quick\" (cannot start service: exited quickly with code 3, will ignore)\n\
             - Start service \"gone\" (cannot start service: service \"gone\" does not exist)\n\
             ----- Logs from \"quick\" -----\nsomething broke\n-----"
        );
        assert_eq!(
            ChangeError::Stop(vec!["a".into(), "b".into()]).to_string(),
            "cannot stop service(s) \"a\" and \"b\""
        );
    }

    #[test]
    fn changes_are_numbered_from_one_and_shown_once_ready() {
        let mut changes = Changes::default();
        let first = changes.open("start", "Start service \"a\"".into());
        let second = changes.open("stop", "Stop service \"a\"".into());
        assert_eq!((first, second), (1, 2));
        assert_eq!(changes.ready(first), Some(false));
        assert_eq!(changes.json("1").unwrap()["status"], "Doing");
        changes.close(first, Err(ChangeError::Stop(vec!["a".into()])));
        let shown = changes.json("1").unwrap();
        assert_eq!(shown["kind"], "start");
        assert_eq!(shown["status"], "Error");
        assert_eq!(shown["err"], "cannot stop service(s) \"a\"");
        assert_eq!(changes.ready(3), None);
    }
}
