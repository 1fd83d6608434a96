//! Exec: commands run in the container for a client (`POST /v1/exec`), each
//! a change with one task, its I/O on the task's websockets
//! (`GET /v1/tasks/<id>/websocket/<name>`: `control`, `stdio` and, when the
//! client splits it, `stderr`), as Pebble serves them. The command starts
//! once `stdio` (and `stderr`) are connected; its standard input is read to
//! the stream's end first (clients send it whole, then the end), and its
//! output is streamed as it comes. No terminal, and no control commands
//! (signals, resizing): the `control` websocket is accepted and closed when
//! the command ends.

use crate::sandbox::{Launch, Sandbox};
use crate::services::Services;
use crate::timefmt::parse_go_duration;
use http_exchange::server::Request;
use pebble_api::websocket::{read_stream, write_stream};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// How long a command waits for its I/O websockets, as Pebble's does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a running command is checked for its end.
const POLL: Duration = Duration::from_millis(10);

/// `POST /v1/exec`'s body (user and group ids are not served: names only).
#[derive(Deserialize)]
pub(crate) struct Payload {
    command: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default, rename = "working-dir")]
    working_dir: String,
    #[serde(default)]
    timeout: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    terminal: bool,
    #[serde(default, rename = "split-stderr")]
    split_stderr: bool,
}

type Socket = WebSocket<UnixStream>;

/// A command's websockets, as they connect.
struct Pending {
    split_stderr: bool,
    sockets: BTreeMap<String, Socket>,
}

impl Pending {
    fn io_connected(&self) -> bool {
        self.sockets.contains_key("stdio")
            && (!self.split_stderr || self.sockets.contains_key("stderr"))
    }
}

/// The commands of one container.
pub(crate) struct Executions {
    sandbox: Sandbox,
    services: Arc<Services>,
    pending: Mutex<BTreeMap<u64, Pending>>,
    cond: Condvar,
}

impl Executions {
    pub fn new(sandbox: Sandbox, services: Arc<Services>) -> Arc<Executions> {
        Arc::new(Executions {
            sandbox,
            services,
            pending: Mutex::default(),
            cond: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the request, records its change and starts waiting for its
    /// websockets; returns the change's id and the result to answer with.
    /// An error is the request's fault (Pebble's 400).
    pub fn start(self: &Arc<Self>, payload: Payload) -> Result<(u64, Value), String> {
        let program = payload
            .command
            .first()
            .ok_or_else(|| "must specify command".to_string())?;
        let timeout = match payload.timeout.as_str() {
            "" => None,
            t => Some(parse_go_duration(t).map_err(|e| format!("invalid timeout: {e}"))?),
        };
        if payload.terminal {
            return Err("this Pebble runs commands without a terminal".into());
        }
        if self.sandbox.find_program(program).is_none() {
            return Err(format!("cannot find executable {program:?}"));
        }
        if !payload.working_dir.is_empty() && !self.sandbox.is_dir(&payload.working_dir) {
            return Err(format!(
                "cannot find working directory {:?}",
                payload.working_dir
            ));
        }
        let command = self.sandbox.command(&Launch {
            words: &payload.command,
            environment: &payload.environment,
            working_dir: &payload.working_dir,
            user: &payload.user,
            group: &payload.group,
        })?;
        let id = self
            .services
            .open_exec(format!("Execute command {program:?}"));
        self.lock().insert(
            id,
            Pending {
                split_stderr: payload.split_stderr,
                sockets: BTreeMap::new(),
            },
        );
        let executions = Arc::clone(self);
        let split = payload.split_stderr;
        std::thread::spawn(move || executions.run(id, command, timeout, split));
        let result = json!({
            "task-id": id.to_string(),
            "environment": payload.environment,
            "working-dir": payload.working_dir,
        });
        Ok((id, result))
    }

    /// Takes `stream`, on which `request` asked for websocket `name` of
    /// task `task`, and answers the handshake. `Err` is a status and a
    /// message, for a task or websocket that does not exist or is taken.
    pub fn connect(
        &self,
        task: &str,
        name: &str,
        mut stream: UnixStream,
        request: &Request,
    ) -> Result<(), (u16, String)> {
        let missing = || {
            (
                404,
                format!("cannot find websocket {name:?} of task {task:?}"),
            )
        };
        let id: u64 = task.parse().map_err(|_| missing())?;
        let key = request
            .header("Sec-WebSocket-Key")
            .ok_or((400, "not a websocket handshake".to_string()))?;
        let mut pending = self.lock();
        let entry = pending.get_mut(&id).ok_or_else(missing)?;
        let known = matches!(name, "control" | "stdio") || (name == "stderr" && entry.split_stderr);
        if !known {
            return Err(missing());
        }
        if entry.sockets.contains_key(name) {
            return Err((400, format!("websocket {name:?} already connected")));
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        write!(
            stream,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .map_err(|e| (500, e.to_string()))?;
        let _ = stream.set_read_timeout(None);
        entry.sockets.insert(
            name.to_string(),
            WebSocket::from_raw_socket(stream, Role::Server, None),
        );
        drop(pending);
        self.cond.notify_all();
        Ok(())
    }

    /// Waits for the I/O websockets, runs the command with its I/O on them,
    /// and records how it ended.
    fn run(&self, id: u64, command: Command, timeout: Option<Duration>, split: bool) {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut pending = self.lock();
        while !pending.get(&id).is_some_and(Pending::io_connected) {
            let now = Instant::now();
            if now >= deadline {
                pending.remove(&id);
                drop(pending);
                let err = format!("exec {id}: timeout waiting for websocket connections");
                self.services.close_exec(id, -1, Some(err));
                return;
            }
            pending = self
                .cond
                .wait_timeout(pending, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let mut sockets = pending
            .get_mut(&id)
            .map(|p| std::mem::take(&mut p.sockets))
            .unwrap_or_default();
        drop(pending);
        let stdio = sockets.remove("stdio");
        let stderr = if split {
            sockets.remove("stderr")
        } else {
            None
        };
        let (code, err) = match stdio {
            Some(stdio) => run_command(command, stdio, stderr, timeout),
            None => (-1, Some("stdio websocket gone".into())),
        };
        // The control websocket, if it came, closes with the command.
        let control = self.lock().remove(&id);
        for mut socket in sockets
            .into_values()
            .chain(control.into_iter().flat_map(|p| p.sockets.into_values()))
        {
            let _ = socket.close(None);
            let _ = socket.flush();
        }
        self.services.close_exec(id, code, err);
    }
}

/// Runs `command` with its input from `stdio`, its output to `stdio` and its
/// errors to `stderr` (or `stdio` too); returns its exit code, and why it
/// did not run to its end.
fn run_command(
    mut command: Command,
    mut stdio: Socket,
    stderr: Option<Socket>,
    timeout: Option<Duration>,
) -> (i32, Option<String>) {
    let input = read_stream(&mut stdio).unwrap_or_default();
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let stdio = Mutex::new(stdio);
            finish(&stdio);
            return (-1, Some(format!("cannot start command: {e}")));
        }
    };
    let stdio = Arc::new(Mutex::new(stdio));
    let stderr = stderr.map(|s| Arc::new(Mutex::new(s)));
    let mut pumps = Vec::new();
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    if let Some(out) = child.stdout.take() {
        let to = Arc::clone(&stdio);
        pumps.push(std::thread::spawn(move || pump(out, &to)));
    }
    if let Some(err) = child.stderr.take() {
        let to = Arc::clone(stderr.as_ref().unwrap_or(&stdio));
        pumps.push(std::thread::spawn(move || pump(err, &to)));
    }
    let deadline = timeout.map(|t| (Instant::now() + t, t));
    let mut timed_out = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if let Some((at, took)) = deadline {
            if timed_out.is_none() && Instant::now() >= at {
                // The command leads its own process group: end it all.
                // SAFETY: kill(2) on a process group id we started.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                timed_out = Some(format!("timed out after {took:?}"));
            }
        }
        std::thread::sleep(POLL);
    };
    for pump in pumps {
        let _ = pump.join();
    }
    finish(&stdio);
    if let Some(stderr) = &stderr {
        finish(stderr);
    }
    match (timed_out, status) {
        (Some(why), _) => (-1, Some(why)),
        (None, Some(status)) => (status.code().unwrap_or(-1), None),
        (None, None) => (-1, Some("lost the command".into())),
    }
}

/// Sends what `from` gives on `to`, until it ends.
fn pump(mut from: impl Read, to: &Mutex<Socket>) {
    let mut buf = vec![0; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut ws = to.lock().unwrap_or_else(|e| e.into_inner());
                if ws.send(Message::binary(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

/// Ends a stream and closes its websocket.
fn finish(socket: &Mutex<Socket>) {
    let mut ws = socket.lock().unwrap_or_else(|e| e.into_inner());
    let _ = write_stream(&mut ws, &[]);
    let _ = ws.close(None);
    let _ = ws.flush();
}
