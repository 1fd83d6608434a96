//! Services: the plan, each service's process and state, restarts with backoff, and
//! the changes (start, stop, restart, replan, autostart) that callers wait on.

use crate::plan::{self, duration_or, Layers};
use crate::sandbox::{Launch, Sandbox};
use crate::timefmt::rfc3339;
use pebble_api::{Layer, Plan, Service};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long a process must run for its start to count (Pebble's "okay delay").
const OKAY_DELAY: Duration = Duration::from_secs(1);
const DEFAULT_KILL_DELAY: Duration = Duration::from_secs(5);
const DEFAULT_BACKOFF_DELAY: Duration = Duration::from_millis(500);
const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;
const DEFAULT_BACKOFF_LIMIT: Duration = Duration::from_secs(30);
/// How many log lines a failed start quotes.
const LOG_TAIL_LINES: usize = 20;

/// A service's state as the API reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Status {
    #[default]
    Inactive,
    Active,
    Backoff,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Inactive => "inactive",
            Status::Active => "active",
            Status::Backoff => "backoff",
            Status::Error => "error",
        }
    }
}

/// One service's runtime state.
#[derive(Default)]
struct Svc {
    status: Status,
    /// The process (and process group) id while it runs.
    pid: Option<i32>,
    /// Bumped on every spawn and on stop, so stale waiters and timers back off.
    instance: u64,
    /// The definition the running (or restarting) process was started from.
    config: Option<Service>,
    started: Option<Instant>,
    /// Set while a start change waits for the okay delay.
    starting: bool,
    /// Set while a stop waits for the process to exit.
    stopping: bool,
    /// The last backoff delay used; `None` after a reset.
    backoff: Option<Duration>,
    /// An exit during the okay delay: (instance, message).
    quick_exit: Option<(u64, String)>,
    /// Where this instance's output starts in its log file.
    log_offset: u64,
}

/// A change's state.
struct Change {
    kind: String,
    summary: String,
    err: Option<String>,
    ready: bool,
    spawn_time: SystemTime,
    ready_time: Option<SystemTime>,
}

#[derive(Default)]
struct State {
    layers: Layers,
    plan: Plan,
    services: BTreeMap<String, Svc>,
    changes: BTreeMap<u64, Change>,
    next_change: u64,
    shutdown: bool,
}

/// The service manager of one container.
pub(crate) struct Services {
    sandbox: Sandbox,
    log_dir: PathBuf,
    state: Mutex<State>,
    cond: Condvar,
    /// Serialises changes.
    ops: Mutex<()>,
}

/// A client error (400) or a server error (500).
#[derive(Debug)]
pub(crate) enum ServiceError {
    BadRequest(String),
    NotFound(String),
}

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
        let log_dir = sandbox.root.join("var/log/pebble");
        Arc::new(Self {
            sandbox,
            log_dir,
            state: Mutex::new(State {
                next_change: 1,
                ..State::default()
            }),
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

    /// Adds a layer; returns the new plan.
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

    /// Starts a change for `action` on `names`; returns its id.
    pub fn submit(
        self: &Arc<Self>,
        action: &str,
        names: Vec<String>,
    ) -> Result<String, ServiceError> {
        let mut st = self.lock();
        if st.shutdown {
            return Err(ServiceError::BadRequest("server is shutting down".into()));
        }
        for name in &names {
            if !st.plan.services.contains_key(name) {
                return Err(ServiceError::BadRequest(format!(
                    "service {name:?} does not exist"
                )));
            }
        }
        let (kind, summary) = match action {
            "start" | "stop" | "restart" => {
                if names.is_empty() {
                    return Err(ServiceError::BadRequest(format!(
                        "must specify services for {action} action"
                    )));
                }
                let verb = format!("{}{}", action[..1].to_uppercase(), &action[1..]);
                let plural = if names.len() == 1 { "" } else { "s" };
                (
                    action.to_string(),
                    format!("{verb} service{plural} {}", ordinal_list(&names)),
                )
            }
            "replan" => ("replan".to_string(), "Replan services".to_string()),
            "autostart" => {
                if !st.plan.services.values().any(|s| s.startup == "enabled") {
                    return Err(ServiceError::BadRequest("no default services".to_string()));
                }
                ("autostart".to_string(), "Autostart service(s)".to_string())
            }
            other => {
                return Err(ServiceError::BadRequest(format!(
                    "invalid action {other:?}"
                )))
            }
        };
        let id = st.next_change;
        st.next_change += 1;
        st.changes.insert(
            id,
            Change {
                kind,
                summary,
                err: None,
                ready: false,
                spawn_time: SystemTime::now(),
                ready_time: None,
            },
        );
        drop(st);
        let manager = Arc::clone(self);
        let action = action.to_string();
        std::thread::spawn(move || {
            let result = {
                let _ops = manager.ops.lock().unwrap_or_else(|e| e.into_inner());
                manager.run_action(&action, names)
            };
            let mut st = manager.lock();
            if let Some(change) = st.changes.get_mut(&id) {
                change.ready = true;
                change.ready_time = Some(SystemTime::now());
                change.err = result.err();
            }
            manager.cond.notify_all();
        });
        Ok(id.to_string())
    }

    fn run_action(self: &Arc<Self>, action: &str, names: Vec<String>) -> Result<(), String> {
        match action {
            "start" => self.start(&self.ordered(&names)),
            "stop" => {
                let mut order = self.ordered(&names);
                order.reverse();
                self.stop(&order)
            }
            "restart" => {
                let order = self.ordered(&names);
                let mut reverse = order.clone();
                reverse.reverse();
                self.stop(&reverse)?;
                self.start(&order)
            }
            "autostart" => {
                let enabled = self.enabled();
                self.start(&self.ordered(&enabled))
            }
            _ => self.replan(),
        }
    }

    /// The names of the plan's enabled services.
    fn enabled(&self) -> Vec<String> {
        let st = self.lock();
        st.plan
            .services
            .iter()
            .filter(|(_, s)| s.startup == "enabled")
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// `names` in start order: each after the services its `after` names (and before
    /// those its `before` names), among the ones given.
    fn ordered(&self, names: &[String]) -> Vec<String> {
        let st = self.lock();
        let plan = &st.plan;
        let deps = |name: &String| -> Vec<String> {
            let mut deps: Vec<String> = plan
                .services
                .get(name)
                .map(|s| s.after.clone())
                .unwrap_or_default();
            for (other, service) in &plan.services {
                if service.before.contains(name) {
                    deps.push(other.clone());
                }
            }
            deps.retain(|d| names.contains(d));
            deps
        };
        let mut sorted = names.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut out: Vec<String> = Vec::new();
        fn visit(
            name: &String,
            deps: &dyn Fn(&String) -> Vec<String>,
            out: &mut Vec<String>,
            visiting: &mut Vec<String>,
        ) {
            if out.contains(name) || visiting.contains(name) {
                return;
            }
            visiting.push(name.clone());
            for dep in deps(name) {
                visit(&dep, deps, out, visiting);
            }
            out.push(name.clone());
        }
        let mut visiting = Vec::new();
        for name in &sorted {
            visit(name, &deps, &mut out, &mut visiting);
        }
        out
    }

    /// Restarts running services whose definition changed, and starts enabled ones.
    fn replan(self: &Arc<Self>) -> Result<(), String> {
        let (restart, start) = {
            let st = self.lock();
            let mut restart = Vec::new();
            let mut start = Vec::new();
            for (name, service) in &st.plan.services {
                let svc = st.services.get(name);
                let running =
                    svc.is_some_and(|s| matches!(s.status, Status::Active | Status::Backoff));
                if running && svc.and_then(|s| s.config.as_ref()) != Some(service) {
                    restart.push(name.clone());
                    start.push(name.clone());
                } else if service.startup == "enabled"
                    && svc.is_none_or(|s| s.status != Status::Active)
                {
                    start.push(name.clone());
                }
            }
            (restart, start)
        };
        let mut reverse = self.ordered(&restart);
        reverse.reverse();
        self.stop(&reverse)?;
        self.start(&self.ordered(&start))
    }

    /// Starts the services and waits out the okay delay.
    fn start(self: &Arc<Self>, names: &[String]) -> Result<(), String> {
        let mut errors: Vec<(String, String, String)> = Vec::new();
        let mut started: Vec<(String, u64, Instant)> = Vec::new();
        {
            let mut st = self.lock();
            for name in names {
                let svc = st.services.entry(name.clone()).or_default();
                if svc.status == Status::Active {
                    continue;
                }
                svc.backoff = None;
                match self.spawn_locked(&mut st, name) {
                    Ok(instance) => {
                        let svc = st.services.get_mut(name).expect("spawned");
                        svc.starting = true;
                        started.push((name.clone(), instance, Instant::now()));
                    }
                    Err(e) => {
                        let svc = st.services.get_mut(name).expect("known");
                        svc.status = Status::Inactive;
                        errors.push((
                            name.clone(),
                            format!("cannot start service: {e}"),
                            String::new(),
                        ));
                    }
                }
            }
        }
        for (name, instance, at) in started {
            let mut st = self.lock();
            loop {
                let svc = st.services.get(&name).expect("started");
                if let Some((i, message)) = &svc.quick_exit {
                    if *i == instance {
                        let log = self.log_tail(&name, svc.log_offset);
                        errors.push((
                            name.clone(),
                            format!("cannot start service: {message}"),
                            log,
                        ));
                        break;
                    }
                }
                if svc.instance != instance || st.shutdown {
                    break;
                }
                let elapsed = at.elapsed();
                if elapsed >= OKAY_DELAY {
                    break;
                }
                st = self.wait_for(st, OKAY_DELAY - elapsed);
            }
            if let Some(svc) = st.services.get_mut(&name) {
                if svc.instance == instance {
                    svc.starting = false;
                }
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let mut message = String::from("cannot perform the following tasks:");
        for (name, error, _) in &errors {
            message.push_str(&format!("\n- Start service {name:?} ({error})"));
        }
        for (name, _, log) in &errors {
            if !log.is_empty() {
                message.push_str(&format!("\n----- Logs from {name:?} -----\n{log}\n-----"));
            }
        }
        Err(message)
    }

    /// Spawns the service's process; returns its instance number.
    fn spawn_locked(self: &Arc<Self>, st: &mut State, name: &str) -> Result<u64, String> {
        if st.shutdown {
            return Err("server is shutting down".into());
        }
        let service = st
            .plan
            .services
            .get(name)
            .cloned()
            .ok_or_else(|| format!("service {name:?} does not exist"))?;
        let words = plan::split_words(&service.command)?;
        let mut command = self.sandbox.command(&Launch {
            words: &words,
            environment: &service.environment,
            working_dir: &service.working_dir,
            user: &service.user,
            group: &service.group,
        })?;
        std::fs::create_dir_all(&self.log_dir)
            .map_err(|e| format!("cannot create {}: {e}", self.log_dir.display()))?;
        let log_path = self.log_dir.join(format!("{name}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err = log.try_clone().map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", words[0]))?;
        let pid = child.id() as i32;
        let svc = st.services.entry(name.to_string()).or_default();
        svc.instance += 1;
        let instance = svc.instance;
        svc.status = Status::Active;
        svc.pid = Some(pid);
        svc.config = Some(service);
        svc.started = Some(Instant::now());
        svc.stopping = false;
        svc.starting = false;
        svc.quick_exit = None;
        svc.log_offset = log_offset;
        let manager = Arc::clone(self);
        let name = name.to_string();
        std::thread::spawn(move || {
            let code = match child.wait() {
                Ok(status) => status.code().unwrap_or(-1),
                Err(_) => -1,
            };
            let mut st = manager.lock();
            manager.exited_locked(&mut st, &name, instance, code);
            manager.cond.notify_all();
        });
        Ok(instance)
    }

    /// A process ended: decide what happens to its service.
    fn exited_locked(self: &Arc<Self>, st: &mut State, name: &str, instance: u64, code: i32) {
        let shutdown = st.shutdown;
        let Some(svc) = st.services.get_mut(name) else {
            return;
        };
        if svc.instance != instance {
            return;
        }
        svc.pid = None;
        if svc.stopping || shutdown {
            svc.stopping = false;
            svc.status = Status::Inactive;
            return;
        }
        let config = svc.config.clone().unwrap_or_default();
        let action = if code == 0 {
            &config.on_success
        } else {
            &config.on_failure
        };
        let action = match action.as_str() {
            "" | "restart" => "restart",
            "ignore" => "ignore",
            _ => "shutdown",
        };
        if svc.starting {
            svc.quick_exit = Some((
                instance,
                format!("exited quickly with code {code}, will {action}"),
            ));
        }
        match action {
            "restart" => {
                let limit = duration_or(&config.backoff_limit, DEFAULT_BACKOFF_LIMIT);
                let ran = svc.started.map(|s| s.elapsed()).unwrap_or_default();
                if ran >= limit {
                    svc.backoff = None;
                }
                let delay = match svc.backoff {
                    None => duration_or(&config.backoff_delay, DEFAULT_BACKOFF_DELAY),
                    Some(last) => {
                        let factor = config.backoff_factor.unwrap_or(DEFAULT_BACKOFF_FACTOR);
                        last.mul_f64(factor.max(1.0)).min(limit)
                    }
                };
                svc.backoff = Some(delay);
                svc.status = Status::Backoff;
                self.schedule_restart(name.to_string(), instance, delay);
            }
            // Pebble cannot shut itself down here; the service just stays down.
            _ if code == 0 => svc.status = Status::Inactive,
            _ => svc.status = Status::Error,
        }
    }

    /// Respawns the service after `delay`, unless it was started or stopped meanwhile.
    fn schedule_restart(self: &Arc<Self>, name: String, instance: u64, delay: Duration) {
        let manager = Arc::clone(self);
        std::thread::spawn(move || {
            let deadline = Instant::now() + delay;
            let mut st = manager.lock();
            loop {
                let current = st.services.get(&name).map(|s| (s.instance, s.status));
                if st.shutdown || current != Some((instance, Status::Backoff)) {
                    return;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = manager.wait_for(st, deadline - now);
            }
            if manager.spawn_locked(&mut st, &name).is_err() {
                // Could not even run it: count it as another failure.
                if let Some(svc) = st.services.get_mut(&name) {
                    svc.instance += 1;
                    svc.started = Some(Instant::now());
                    let instance = svc.instance;
                    manager.exited_locked(&mut st, &name, instance, -1);
                }
            }
            manager.cond.notify_all();
        });
    }

    /// Stops the services: SIGTERM, then SIGKILL after each one's kill delay.
    fn stop(&self, names: &[String]) -> Result<(), String> {
        let mut waiting: Vec<(String, u64, i32, Duration)> = Vec::new();
        {
            let mut st = self.lock();
            for name in names {
                let Some(svc) = st.services.get_mut(name) else {
                    continue;
                };
                svc.backoff = None;
                match (svc.status, svc.pid) {
                    (Status::Active, Some(pid)) => {
                        svc.stopping = true;
                        let delay = svc
                            .config
                            .as_ref()
                            .map(|c| duration_or(&c.kill_delay, DEFAULT_KILL_DELAY))
                            .unwrap_or(DEFAULT_KILL_DELAY);
                        signal_group(pid, libc::SIGTERM);
                        waiting.push((name.clone(), svc.instance, pid, delay));
                    }
                    _ => {
                        svc.instance += 1;
                        svc.status = Status::Inactive;
                        svc.pid = None;
                    }
                }
            }
            self.cond.notify_all();
        }
        let mut failed = Vec::new();
        for (name, instance, pid, delay) in waiting {
            if !self.wait_exit(&name, instance, delay) {
                signal_group(pid, libc::SIGKILL);
                if !self.wait_exit(&name, instance, Duration::from_secs(5)) {
                    failed.push(name.clone());
                }
            }
            // Whatever the leader left behind in its group goes too.
            signal_group(pid, libc::SIGKILL);
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("cannot stop service(s) {}", ordinal_list(&failed)))
        }
    }

    /// Waits up to `timeout` for this instance's process to be gone.
    fn wait_exit(&self, name: &str, instance: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            match st.services.get(name) {
                Some(svc) if svc.instance == instance && svc.pid.is_some() => {}
                _ => return true,
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.wait_for(st, deadline - now);
        }
    }

    /// The last lines its process wrote since `offset`.
    fn log_tail(&self, name: &str, offset: u64) -> String {
        let mut text = Vec::new();
        if let Ok(mut file) = std::fs::File::open(self.log_dir.join(format!("{name}.log"))) {
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = file.read_to_end(&mut text);
            }
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Sends a signal to each service's process group; all must be running.
    pub fn signal(&self, signal: i32, names: &[String]) -> Result<(), ServiceError> {
        let st = self.lock();
        let mut pids = Vec::new();
        for name in names {
            if !st.plan.services.contains_key(name) && !st.services.contains_key(name) {
                return Err(ServiceError::NotFound(format!(
                    "service {name:?} does not exist"
                )));
            }
            match st.services.get(name).and_then(|s| s.pid) {
                Some(pid) => pids.push(pid),
                None => {
                    return Err(ServiceError::BadRequest(format!(
                        "cannot send signal to {name:?}: service is not running"
                    )))
                }
            }
        }
        for pid in pids {
            signal_group(pid, signal);
        }
        Ok(())
    }

    /// The change's JSON, if it exists.
    pub fn change(&self, id: &str) -> Option<Value> {
        let st = self.lock();
        let change = st.changes.get(&id.parse().ok()?)?;
        let status = match (change.ready, &change.err) {
            (false, _) => "Doing",
            (true, None) => "Done",
            (true, Some(_)) => "Error",
        };
        let mut value = json!({
            "id": id,
            "kind": change.kind,
            "summary": change.summary,
            "status": status,
            "tasks": [],
            "ready": change.ready,
            "spawn-time": rfc3339(change.spawn_time),
        });
        if let Some(err) = &change.err {
            value["err"] = err.clone().into();
        }
        if let Some(ready) = change.ready_time {
            value["ready-time"] = rfc3339(ready).into();
        }
        Some(value)
    }

    /// Waits up to `timeout` for the change to be ready: `None` if it does not exist,
    /// `Some(false)` on a timeout.
    pub fn wait_change(&self, id: &str, timeout: Duration) -> Option<bool> {
        let id: u64 = id.parse().ok()?;
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.changes.get(&id)?.ready {
                return Some(true);
            }
            let now = Instant::now();
            if now >= deadline || st.shutdown {
                return Some(false);
            }
            st = self.wait_for(st, deadline - now);
        }
    }

    /// Kills every service at once with SIGKILL, as a machine that loses
    /// power would: no SIGTERM, no time to clean up, no restart.
    pub fn crash(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        for svc in st.services.values_mut() {
            svc.backoff = None;
            if let Some(pid) = svc.pid {
                svc.stopping = true;
                signal_group(pid, libc::SIGKILL);
            }
        }
        self.cond.notify_all();
    }

    /// Stops every service for good.
    pub fn shutdown(&self) {
        let names: Vec<String> = {
            let mut st = self.lock();
            st.shutdown = true;
            self.cond.notify_all();
            st.services.keys().cloned().collect()
        };
        let _ = self.stop(&names);
    }
}

/// Sends `signal` to the process group `pid` leads.
fn signal_group(pid: i32, signal: i32) {
    if pid > 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// The number of a signal name such as `SIGHUP` or `HUP`.
pub(crate) fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "ALRM" => libc::SIGALRM,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}
