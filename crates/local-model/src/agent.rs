//! The agent: serves hook tools over a unix socket and runs hooks as processes.
//!
//! Each running hook has a context: a thread that owns the unit's view of the
//! model and answers that hook's tool calls through the interpreter (Juju's rules
//! from the in-memory model). When `dispatch` exits 0 the view is committed to the
//! model; otherwise the unit is marked failed and nothing is committed.

use crate::model::Model;
use crate::protocol::{Request, Response};
use crate::resolver;
use crate::tools::{Session, ToolRequest};
use crate::view::{commit, view};
use charm::{Context, Event};
use charm_testing::{MemoryBackend, State};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

type Call = (Request, Sender<Response>);

/// Where the agent listens, and the live hook contexts.
pub struct Agent {
    socket: PathBuf,
    tools_dir: PathBuf,
    contexts: Arc<Mutex<HashMap<String, Sender<Call>>>>,
    counter: AtomicU64,
}

/// How a hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRun {
    pub event: Event,
    pub ok: bool,
    /// What `dispatch` printed (stdout then stderr).
    pub output: String,
    /// What the hook logged with `juju-log`, level and message.
    pub logs: Vec<(charm::LogLevel, String)>,
}

impl Agent {
    /// Listens on `socket` and links every tool name to `shim` in `tools_dir`.
    pub fn start(socket: &Path, tools_dir: &Path, shim: &Path) -> std::io::Result<Agent> {
        std::fs::create_dir_all(tools_dir)?;
        for tool in crate::tools::tool_names() {
            let link = tools_dir.join(tool);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(shim, &link)?;
        }
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let contexts: Arc<Mutex<HashMap<String, Sender<Call>>>> = Arc::default();
        let registry = contexts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let registry = registry.clone();
                std::thread::spawn(move || serve(stream, &registry));
            }
        });
        Ok(Agent {
            socket: socket.to_path_buf(),
            tools_dir: tools_dir.to_path_buf(),
            contexts,
            counter: AtomicU64::new(0),
        })
    }

    /// Runs the unit's next hook, if any: `dispatch` in `charm_dir` with Juju's
    /// environment; commits on success. `extra_env` is added to the environment
    /// (the local model points `CHARM_CONTAINERS_DIR` at the unit's Pebble sockets).
    pub fn run_next(
        &self,
        model: &mut Model,
        unit: &str,
        charm_dir: &Path,
        extra_env: &[(String, String)],
    ) -> std::io::Result<Option<HookRun>> {
        let Some(event) = resolver::next_hook(model, unit) else {
            return Ok(None);
        };
        let Some(before) = view(model, unit) else {
            return Ok(None);
        };
        let context = Context {
            unit: unit.to_string(),
            app: before.app().to_string(),
            model_name: model.name.clone(),
            model_uuid: model.uuid.clone(),
            charm_dir: charm_dir.to_path_buf(),
            juju_version: before.juju_version.clone(),
            event: event.clone(),
        };
        let id = format!(
            "{unit}-{}-{}",
            event.hook_name(),
            self.counter.fetch_add(1, Ordering::SeqCst)
        );
        let endpoints: Vec<String> = before
            .relations
            .iter()
            .map(|r| r.endpoint.clone())
            .collect();
        let (tx, rx) = channel::<Call>();
        self.contexts
            .lock()
            .expect("registry")
            .insert(id.clone(), tx);
        let hook_state = before.clone();
        let hook_context = context.clone();
        let worker = std::thread::spawn(move || {
            let mut state = hook_state;
            {
                let mut backend = MemoryBackend::new(&mut state, hook_context.event.clone(), None);
                let mut session = Session {
                    context: &hook_context,
                    endpoints: &endpoints,
                    backend: &mut backend,
                };
                for (request, reply) in rx {
                    let response = session.run(&ToolRequest {
                        tool: request.tool,
                        args: request.args,
                        stdin: request.stdin.into_bytes(),
                    });
                    let _ = reply.send(Response {
                        stdout: response.stdout,
                        stderr: response.stderr,
                        code: response.code,
                    });
                }
            }
            state
        });
        let mut command = Command::new(charm_dir.join("dispatch"));
        command
            .env_clear()
            .current_dir(charm_dir)
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.tools_dir.display()
                ),
            )
            .env("JUJU_AGENT_SOCKET_ADDRESS", &self.socket)
            .env("JUJU_AGENT_SOCKET_NETWORK", "unix")
            .env("JUJU_CONTEXT_ID", &id)
            .env("LANG", "C.UTF-8")
            .envs(context.env())
            .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        let output = command.output();
        self.contexts.lock().expect("registry").remove(&id);
        let after: State = worker.join().expect("the hook context thread");
        let output = output?;
        let ok = output.status.success();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if ok {
            commit(model, unit, &before, &after);
            resolver::done(model, unit, &event);
        } else if let Some(u) = model.unit_mut(unit) {
            u.failed = Some(event.hook_name());
            u.status = charm::Status::Error(format!("hook failed: {:?}", event.hook_name()));
        }
        let logs = after.logs[before.logs.len()..].to_vec();
        Ok(Some(HookRun {
            event,
            ok,
            output: text,
            logs,
        }))
    }
}

/// Answers one shim connection.
fn serve(stream: UnixStream, registry: &Mutex<HashMap<String, Sender<Call>>>) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response {
            stderr: format!("ERROR bad request: {e}\n"),
            code: 1,
            ..Response::default()
        },
        Ok(request) => {
            let sender = registry
                .lock()
                .expect("registry")
                .get(&request.context)
                .cloned();
            match sender {
                None => Response {
                    stderr: format!("ERROR no hook context {:?} is running\n", request.context),
                    code: 1,
                    ..Response::default()
                },
                Some(tx) => {
                    let (reply_tx, reply_rx) = channel();
                    let _ = tx.send((request, reply_tx));
                    reply_rx.recv().unwrap_or(Response {
                        stderr: "ERROR the hook ended\n".into(),
                        code: 1,
                        ..Response::default()
                    })
                }
            }
        }
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    let _ = (&stream).write_all(&out);
}
