//! Health checks: one thread per check in the plan, running it every `period` with
//! its `timeout`; `down` after `threshold` failures in a row, `up` again on success.

use crate::plan::{duration_or, split_words};
use crate::sandbox::{Launch, Sandbox};
use pebble_api::Check;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_THRESHOLD: u32 = 3;

/// A check's running state, shared with its thread.
struct Runner {
    config: Check,
    /// Consecutive failures; `None` once stopped.
    failures: Mutex<Option<u32>>,
    wake: Condvar,
}

impl Runner {
    fn threshold(&self) -> u32 {
        self.config.threshold.unwrap_or(DEFAULT_THRESHOLD).max(1)
    }
}

/// The checks of one container.
pub(crate) struct Checks {
    sandbox: Sandbox,
    runners: Mutex<BTreeMap<String, Arc<Runner>>>,
}

impl Checks {
    pub fn new(sandbox: Sandbox) -> Self {
        Self {
            sandbox,
            runners: Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs the plan's checks: new and changed ones (re)start, removed ones stop.
    pub fn update(&self, checks: &BTreeMap<String, Check>) {
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<String> = runners
            .iter()
            .filter(|(name, r)| checks.get(*name) != Some(&r.config))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(runner) = runners.remove(&name) {
                stop(&runner);
            }
        }
        for (name, config) in checks {
            if runners.contains_key(name) {
                continue;
            }
            let runner = Arc::new(Runner {
                config: config.clone(),
                failures: Mutex::new(Some(0)),
                wake: Condvar::new(),
            });
            runners.insert(name.clone(), Arc::clone(&runner));
            let sandbox = self.sandbox.clone();
            std::thread::spawn(move || run(&runner, &sandbox));
        }
    }

    /// `GET /v1/checks`, filtered by level and names.
    pub fn infos(&self, level: Option<&str>, names: &[String]) -> Value {
        let runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        let infos: Vec<Value> = runners
            .iter()
            .filter(|(name, _)| names.is_empty() || names.contains(name))
            .filter(|(_, r)| level.is_none_or(|l| l.is_empty() || r.config.level == l))
            .map(|(name, runner)| {
                let failures = runner
                    .failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or(0);
                let threshold = runner.threshold();
                let status = if failures >= threshold { "down" } else { "up" };
                let mut info = json!({
                    "name": name,
                    "startup": "enabled",
                    "status": status,
                    "failures": failures,
                    "threshold": threshold,
                });
                // Pebble leaves an unset level out.
                if !runner.config.level.is_empty() {
                    info["level"] = runner.config.level.clone().into();
                }
                info
            })
            .collect();
        Value::Array(infos)
    }

    /// Stops every check.
    pub fn shutdown(&self) {
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        for (_, runner) in std::mem::take(&mut *runners) {
            stop(&runner);
        }
    }
}

fn stop(runner: &Runner) {
    *runner.failures.lock().unwrap_or_else(|e| e.into_inner()) = None;
    runner.wake.notify_all();
}

/// The check's loop: wait a period, run, record.
fn run(runner: &Runner, sandbox: &Sandbox) {
    let period = duration_or(&runner.config.period, DEFAULT_PERIOD).max(Duration::from_millis(10));
    let timeout = duration_or(&runner.config.timeout, DEFAULT_TIMEOUT);
    loop {
        let deadline = Instant::now() + period;
        let mut failures = runner.failures.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if failures.is_none() {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            failures = runner
                .wake
                .wait_timeout(failures, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(failures);
        let ok = perform(&runner.config, timeout, sandbox).is_ok();
        let mut failures = runner.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.as_mut() {
            None => return,
            Some(n) if ok => *n = 0,
            Some(n) => *n += 1,
        }
    }
}

/// Runs the check once.
fn perform(check: &Check, timeout: Duration, sandbox: &Sandbox) -> Result<(), String> {
    if let Some(tcp) = &check.tcp {
        let host = tcp
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost");
        return connect(host, tcp.port, timeout).map(drop);
    }
    if let Some(http) = &check.http {
        return http_get(&http.url, timeout);
    }
    if let Some(exec) = &check.exec {
        return exec_check(&exec.command, timeout, sandbox);
    }
    Err("no check".into())
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs = (host, port).to_socket_addrs().map_err(|e| e.to_string())?;
    let mut last = "no address".to_string();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// A plain-HTTP GET that must answer 2xx.
fn http_get(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported URL {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url:?}"))?),
        None => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = connect(host, port, timeout)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "bad HTTP response".to_string())?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP {code}"))
    }
}

/// Runs the command (in the sandbox, like a service) and requires exit code 0.
fn exec_check(command: &str, timeout: Duration, sandbox: &Sandbox) -> Result<(), String> {
    let words = split_words(command)?;
    let mut cmd = sandbox.command(&Launch {
        words: &words,
        environment: &BTreeMap::new(),
        working_dir: "",
        user: "",
        group: "",
    })?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("exit status {status}"))
            };
        }
        if Instant::now() >= deadline {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            return Err("timed out".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
