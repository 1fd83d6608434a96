//! Services: the service manager of one container. It holds the layers and the
//! plan they combine into, takes requests to start, stop, restart, replan or
//! autostart services as changes that callers wait on ([`changes`]), and runs
//! each change's work on the supervisor ([`supervisor`]): the processes, their
//! restarts with backoff, and their kill delays.

mod changes;
mod supervisor;

pub(crate) use supervisor::signal_number;

use crate::plan::Layers;
use crate::sandbox::Sandbox;
use changes::Changes;
use pebble_api::{Layer, Plan};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use supervisor::Svc;

/// What a caller asks of the services (`POST /v1/services`), by its name on
/// the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Start,
    Stop,
    Restart,
    /// Restart the running services whose definition changed, and start the
    /// enabled ones.
    Replan,
    /// Start the enabled services.
    Autostart,
}

impl Action {
    /// The name on the wire, which is also the change's kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Replan => "replan",
            Action::Autostart => "autostart",
        }
    }

    /// The summary of the change that does it to `names`.
    fn summary(self, names: &[String]) -> String {
        let verb = match self {
            Action::Start => "Start",
            Action::Stop => "Stop",
            Action::Restart => "Restart",
            Action::Replan => return "Replan services".into(),
            Action::Autostart => return "Autostart service(s)".into(),
        };
        let plural = if names.len() == 1 { "" } else { "s" };
        format!("{verb} service{plural} {}", ordinal_list(names))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ServiceError;

    fn from_str(s: &str) -> Result<Self, ServiceError> {
        Ok(match s {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "restart" => Action::Restart,
            "replan" => Action::Replan,
            "autostart" => Action::Autostart,
            other => return Err(ServiceError::InvalidAction(other.into())),
        })
    }
}

/// Why a request to the services was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error("invalid action {0:?}")]
    InvalidAction(String),
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("service {0:?} does not exist")]
    NoService(String),
    #[error("must specify services for {0} action")]
    NoServicesNamed(Action),
    #[error("no default services")]
    NoDefaultServices,
    #[error("cannot send signal to {0:?}: service is not running")]
    NotRunning(String),
}

/// Everything the manager guards with one lock.
#[derive(Default)]
struct State {
    layers: Layers,
    plan: Plan,
    services: BTreeMap<String, Svc>,
    changes: Changes,
    shutdown: bool,
}

/// Where each service's output goes (`<service>.log`), under the container's
/// root.
pub(crate) const LOG_DIR: &str = "var/log/pebble";

/// The service manager of one container.
pub(crate) struct Services {
    sandbox: Sandbox,
    log_dir: PathBuf,
    state: Mutex<State>,
    /// Signalled whenever a process, service or change moves on.
    cond: Condvar,
    /// Serialises changes.
    ops: Mutex<()>,
}

/// `"a"`, `"a" and "b"`, `"a", "b" and "c"`.
fn ordinal_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

impl Services {
    pub fn new(sandbox: Sandbox) -> Arc<Self> {
        let log_dir = sandbox.root.join(LOG_DIR);
        Arc::new(Self {
            sandbox,
            log_dir,
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            ops: Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits on the condition variable for at most `timeout`.
    fn wait_for<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.cond
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    pub fn plan(&self) -> Plan {
        self.lock().plan.clone()
    }

    /// Adds a layer; returns the new plan (or why the layer or the plan it
    /// makes is refused).
    pub fn add_layer(&self, label: &str, layer: Layer, combine: bool) -> Result<Plan, String> {
        let mut st = self.lock();
        let plan = st.layers.add(label, layer, combine)?;
        st.plan = plan.clone();
        Ok(plan)
    }

    /// `GET /v1/services`: the plan's services (only `names` when given).
    pub fn infos(&self, names: &[String]) -> Value {
        let st = self.lock();
        let infos: Vec<Value> = st
            .plan
            .services
            .iter()
            .filter(|(name, _)| names.is_empty() || names.contains(name))
            .map(|(name, service)| {
                let status = st.services.get(name).map(|s| s.status).unwrap_or_default();
                let startup = if service.startup == "enabled" {
                    "enabled"
                } else {
                    "disabled"
                };
                json!({"name": name, "startup": startup, "current": status.as_str()})
            })
            .collect();
        Value::Array(infos)
    }

    /// Starts a change for the action named `action` (see [`Action`]) on
    /// `names` (ignored by replan and autostart); returns its id. The name is
    /// read once the services named are known to exist, so a request wrong in
    /// both ways is told about the service.
    pub fn submit(
        self: &Arc<Self>,
        action: &str,
        names: Vec<String>,
    ) -> Result<String, ServiceError> {
        let mut st = self.lock();
        if st.shutdown {
            return Err(ServiceError::ShuttingDown);
        }
        if let Some(name) = names.iter().find(|n| !st.plan.services.contains_key(*n)) {
            return Err(ServiceError::NoService(name.clone()));
        }
        let action: Action = action.parse()?;
        match action {
            Action::Start | Action::Stop | Action::Restart if names.is_empty() => {
                return Err(ServiceError::NoServicesNamed(action))
            }
            Action::Autostart if !st.plan.services.values().any(|s| s.startup == "enabled") => {
                return Err(ServiceError::NoDefaultServices)
            }
            _ => {}
        }
        let id = st.changes.open(action.as_str(), action.summary(&names));
        drop(st);
        let manager = Arc::clone(self);
        std::thread::spawn(move || {
            let result = {
                let _ops = manager.ops.lock().unwrap_or_else(|e| e.into_inner());
                manager.run(action, names)
            };
            manager.lock().changes.close(id, result);
            manager.cond.notify_all();
        });
        Ok(id.to_string())
    }

    /// Sends a signal to each service's process group; all must be running.
    pub fn signal(&self, signal: i32, names: &[String]) -> Result<(), ServiceError> {
        let st = self.lock();
        let mut pids = Vec::new();
        for name in names {
            if !st.plan.services.contains_key(name) && !st.services.contains_key(name) {
                return Err(ServiceError::NoService(name.clone()));
            }
            match st.services.get(name).and_then(|s| s.pid) {
                Some(pid) => pids.push(pid),
                None => return Err(ServiceError::NotRunning(name.clone())),
            }
        }
        for pid in pids {
            supervisor::signal_group(pid, signal);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_from_and_name_themselves_on_the_wire() {
        for action in [
            Action::Start,
            Action::Stop,
            Action::Restart,
            Action::Replan,
            Action::Autostart,
        ] {
            assert_eq!(action.as_str().parse::<Action>().unwrap(), action);
        }
        let err = "nap".parse::<Action>().unwrap_err();
        assert_eq!(err.to_string(), "invalid action \"nap\"");
        assert_eq!(
            ServiceError::NoServicesNamed(Action::Restart).to_string(),
            "must specify services for restart action"
        );
    }

    #[test]
    fn summaries_name_the_services() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Action::Start.summary(&names(&["a"])), "Start service \"a\"");
        assert_eq!(
            Action::Stop.summary(&names(&["a", "b", "c"])),
            "Stop services \"a\", \"b\" and \"c\""
        );
        assert_eq!(Action::Replan.summary(&[]), "Replan services");
        assert_eq!(Action::Autostart.summary(&[]), "Autostart service(s)");
    }
}
