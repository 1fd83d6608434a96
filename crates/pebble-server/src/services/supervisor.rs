//! The supervisor: each service's process and state. It starts processes in
//! dependency order and waits out Pebble's okay delay, restarts one that exits
//! (after a backoff that grows up to its limit) or leaves it down as its
//! `on-success`/`on-failure` says, stops them with SIGTERM and then SIGKILL
//! after their kill delay, and signals their process groups.

use super::changes::ChangeError;
use super::{Action, Services, State};
use crate::plan::{self, duration_or};
use crate::sandbox::Launch;
use pebble_api::Service;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
pub(super) enum Status {
    #[default]
    Inactive,
    Active,
    Backoff,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Inactive => "inactive",
            Status::Active => "active",
            Status::Backoff => "backoff",
            Status::Error => "error",
        }
    }
}

/// What happens when a service's process exits (its `on-success` or
/// `on-failure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnExit {
    Restart,
    Ignore,
    /// Pebble itself would stop; here the service just stays down.
    Shutdown,
}

impl OnExit {
    /// The plan's value (`""` is restart; every kind of shutdown is one).
    fn from_plan(value: &str) -> Self {
        match value {
            "" | "restart" => OnExit::Restart,
            "ignore" => OnExit::Ignore,
            _ => OnExit::Shutdown,
        }
    }
}

impl fmt::Display for OnExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnExit::Restart => "restart",
            OnExit::Ignore => "ignore",
            OnExit::Shutdown => "shutdown",
        })
    }
}

/// One service's runtime state.
#[derive(Default)]
pub(super) struct Svc {
    pub status: Status,
    /// The process (and process group) id while it runs.
    pub pid: Option<i32>,
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
    /// An exit during the okay delay: the instance, its exit code and what follows.
    quick_exit: Option<(u64, i32, OnExit)>,
    /// Where this instance's output starts in its log file.
    log_offset: u64,
}

/// Why a service's process could not be run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("service {0:?} does not exist")]
    NoService(String),
    /// The command line, or the user and group to run it as, are refused.
    #[error("{0}")]
    Command(String),
    #[error("cannot create {path}: {source}")]
    LogDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Output(std::io::Error),
    #[error("cannot run {program:?}: {source}")]
    Run {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why a service did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot start service: {0}")]
    Spawn(#[from] SpawnError),
    #[error("cannot start service: exited quickly with code {code}, will {then}")]
    ExitedQuickly { code: i32, then: OnExit },
}

/// A service that did not start, and the last lines it wrote.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub service: String,
    pub error: StartError,
    pub log: String,
}

impl Services {
    /// Does `action` to the services (`names` for start, stop and restart).
    pub(super) fn run(
        self: &Arc<Self>,
        action: Action,
        names: Vec<String>,
    ) -> Result<(), ChangeError> {
        match action {
            Action::Start => self.start(&self.ordered(&names)),
            Action::Stop => self.stop(&reversed(self.ordered(&names))),
            Action::Restart => {
                let order = self.ordered(&names);
                self.stop(&reversed(order.clone()))?;
                self.start(&order)
            }
            Action::Autostart => {
                let enabled = self.enabled();
                self.start(&self.ordered(&enabled))
            }
            Action::Replan => self.replan(),
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
    fn replan(self: &Arc<Self>) -> Result<(), ChangeError> {
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
        self.stop(&reversed(self.ordered(&restart)))?;
        self.start(&self.ordered(&start))
    }

    /// Starts the services and waits out the okay delay.
    fn start(self: &Arc<Self>, names: &[String]) -> Result<(), ChangeError> {
        let mut failures: Vec<StartFailure> = Vec::new();
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
                        failures.push(StartFailure {
                            service: name.clone(),
                            error: e.into(),
                            log: String::new(),
                        });
                    }
                }
            }
        }
        for (name, instance, at) in started {
            let mut st = self.lock();
            loop {
                let svc = st.services.get(&name).expect("started");
                if let Some((i, code, then)) = svc.quick_exit {
                    if i == instance {
                        failures.push(StartFailure {
                            service: name.clone(),
                            error: StartError::ExitedQuickly { code, then },
                            log: self.log_tail(&name, svc.log_offset),
                        });
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
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ChangeError::Start(failures))
        }
    }

    /// Spawns the service's process; returns its instance number.
    fn spawn_locked(self: &Arc<Self>, st: &mut State, name: &str) -> Result<u64, SpawnError> {
        if st.shutdown {
            return Err(SpawnError::ShuttingDown);
        }
        let service = st
            .plan
            .services
            .get(name)
            .cloned()
            .ok_or_else(|| SpawnError::NoService(name.into()))?;
        let words = plan::split_words(&service.command).map_err(SpawnError::Command)?;
        let mut command = self
            .sandbox
            .command(&Launch {
                words: &words,
                environment: &service.environment,
                working_dir: &service.working_dir,
                user: &service.user,
                group: &service.group,
            })
            .map_err(SpawnError::Command)?;
        std::fs::create_dir_all(&self.log_dir).map_err(|source| SpawnError::LogDir {
            path: self.log_dir.display().to_string(),
            source,
        })?;
        let log_path = self.log_dir.join(format!("{name}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| SpawnError::Log {
                path: log_path.display().to_string(),
                source,
            })?;
        let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err = log.try_clone().map_err(SpawnError::Output)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        let mut child = command.spawn().map_err(|source| SpawnError::Run {
            program: words[0].clone(),
            source,
        })?;
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
        let then = OnExit::from_plan(if code == 0 {
            &config.on_success
        } else {
            &config.on_failure
        });
        if svc.starting {
            svc.quick_exit = Some((instance, code, then));
        }
        match then {
            OnExit::Restart => {
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
    fn stop(&self, names: &[String]) -> Result<(), ChangeError> {
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
            Err(ChangeError::Stop(failed))
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

/// A start order as a stop order.
fn reversed(mut order: Vec<String>) -> Vec<String> {
    order.reverse();
    order
}

/// Sends `signal` to the process group `pid` leads.
pub(super) fn signal_group(pid: i32, signal: i32) {
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
