//! The agent: serves hook tools over a unix socket and runs hooks as processes.
//!
//! Each running hook has a context: a thread that owns the unit's view of the
//! model and answers that hook's tool calls through the interpreter (Juju's rules
//! from `juju_rules`). When `dispatch` exits 0 the view is committed to the
//! model; otherwise the unit is marked failed and nothing is committed.
//!
//! A run has three steps so that the model need not be held while the process
//! runs: [`Agent::prepare_hook`] (or `prepare_action`, `prepare_exec`) takes the
//! unit's view, [`Agent::execute`] runs the process against it, and
//! [`Agent::finish`] commits it. Actions and `juju exec` commands run in the same
//! kind of context; they commit when they exit 0 and never block the unit.
//! Each ends when its process exits, even if a child it started still holds
//! its stdout or stderr (what it printed before is kept).
//!
//! Hook processes run with umask 077: what a charm writes (its state in its
//! charm directory, files it hands to hook tools) is its owner's alone. The
//! agent's socket and tools directory are private too. A hook, action or
//! command dies with the controller (SIGKILL, `PR_SET_PDEATHSIG`): one that
//! outlived it would act on a model no one commits.

use crate::model::Model;
use crate::protocol::{Request, Response};
use crate::resolver;
use crate::tools::{Session, ToolRequest};
use crate::view::{commit, refresh_network, view};
use charm::backend::JsonMap;
use charm::event::ActionEvent;
use charm::{Context, Event};
use juju_rules::ActionOutput;
use juju_rules::{MemoryBackend, State};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Call = (Request, Sender<Response>);

/// Where the agent listens, and the live hook contexts.
pub struct Agent {
    socket: PathBuf,
    tools_dir: PathBuf,
    contexts: Arc<Mutex<HashMap<String, Sender<Call>>>>,
    counter: AtomicU64,
    /// The hook-tool shim, which also starts each hook process
    /// ([`enter_hook`]).
    shim: PathBuf,
    /// A hosts file hook processes see as `/etc/hosts` (a Kubernetes model's
    /// cluster names), through a mount namespace of their own.
    hosts: std::sync::OnceLock<PathBuf>,
}

/// What a prepared context runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// The hook the resolver chose (`dispatch`).
    Hook,
    /// An action (`dispatch`), with its parameters (defaults applied).
    Action(JsonMap),
    /// A `juju exec` command line, run by `sh -c`.
    Exec(String),
}

/// A hook, action or command ready to run: the unit's view and its environment.
pub struct Prepared {
    pub unit: String,
    pub event: Event,
    pub work: Work,
    before: State,
    /// What the unit will have been shown once the hook succeeds, as of the
    /// model when it started (hooks only).
    seen_after: Option<crate::model::Seen>,
    /// The rotated secret's latest revision when a secret-rotate hook
    /// started.
    rotated_from: u64,
    context: Context,
    env: Vec<(String, String)>,
}

impl Prepared {
    /// The unit's view of the model as the hook starts.
    pub fn view(&self) -> &State {
        &self.before
    }
}

/// What the process did; the view it left is committed by [`Agent::finish`].
pub struct Executed {
    after: State,
    pub stdout: String,
    pub stderr: String,
    /// The exit code (-1 when a signal ended it).
    pub code: i32,
    /// For actions: what `action-set`, `action-fail` and `action-log` said.
    pub action: ActionOutput,
    /// What running it cost.
    pub cost: HookCost,
}

/// What one hook's process cost, as the kernel counted it when the process
/// was reaped (`wait4`), and the hook-tool calls the agent answered for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookCost {
    /// CPU time, user and system, of the process and the children it waited for.
    pub cpu: Duration,
    /// The largest resident set of the process (or of a child it waited for), in
    /// KiB. The process is forked from the controller before `exec`, and the
    /// kernel's high-water mark keeps what the fork inherited: an upper bound,
    /// at least the controller's own size.
    pub peak_rss_kib: u64,
    /// Hook-tool calls answered.
    pub tool_calls: usize,
}

impl Executed {
    /// What a charm run in this process left (a simulator's hook): the view
    /// it left, its output and its exit code.
    pub fn in_process(after: State, output: String, code: i32) -> Executed {
        Executed {
            after,
            stdout: output,
            stderr: String::new(),
            code,
            action: ActionOutput::default(),
            cost: HookCost::default(),
        }
    }
}

/// How a hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRun {
    pub event: Event,
    pub ok: bool,
    /// What `dispatch` printed (stdout then stderr).
    pub output: String,
    /// What it printed on stderr (the end of `output`).
    pub stderr: String,
    /// Its exit code (-1 when a signal ended it).
    pub code: i32,
    /// What the hook logged with `juju-log`, level and message.
    pub logs: Vec<(charm::LogLevel, String)>,
    /// What its process cost.
    pub cost: HookCost,
}

impl Agent {
    /// The hook-tool shim every tool name is linked to.
    pub fn shim(&self) -> &Path {
        &self.shim
    }

    /// Listens on `socket` and links every tool name to `shim` in `tools_dir`.
    pub fn start(socket: &Path, tools_dir: &Path, shim: &Path) -> std::io::Result<Agent> {
        crate::store::private_dir(tools_dir)?;
        for tool in crate::tools::tool_names() {
            let link = tools_dir.join(tool);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(shim, &link)?;
        }
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
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
            shim: shim.to_path_buf(),
            hosts: std::sync::OnceLock::new(),
        })
    }

    /// Has every later hook process see `file` as `/etc/hosts` (needs root,
    /// for the mount namespace). Set once; later calls change nothing.
    pub fn resolve_with(&self, file: &Path) {
        let _ = self.hosts.set(file.to_path_buf());
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
        let Some(prepared) = Agent::prepare_hook(model, unit, charm_dir, extra_env) else {
            return Ok(None);
        };
        let executed = self.execute(&prepared)?;
        Ok(Some(Agent::finish(model, prepared, &executed)))
    }

    /// The unit's next hook with its view, or `None` when none is due.
    pub fn prepare_hook(
        model: &mut Model,
        unit: &str,
        charm_dir: &Path,
        extra_env: &[(String, String)],
    ) -> Option<Prepared> {
        let event = resolver::next_hook(model, unit)?;
        prepare(model, unit, event, Work::Hook, charm_dir, extra_env)
    }

    /// `event` on the unit with its view (a hook a crash interrupted, run
    /// again), or `None` when the unit is gone.
    pub fn prepare_event(
        model: &mut Model,
        unit: &str,
        event: Event,
        charm_dir: &Path,
        extra_env: &[(String, String)],
    ) -> Option<Prepared> {
        prepare(model, unit, event, Work::Hook, charm_dir, extra_env)
    }

    /// An action with its parameters, to run on the unit.
    pub fn prepare_action(
        model: &mut Model,
        unit: &str,
        id: &str,
        name: &str,
        params: JsonMap,
        charm_dir: &Path,
        extra_env: &[(String, String)],
    ) -> Option<Prepared> {
        let event = Event::Action(ActionEvent {
            name: name.to_string(),
            id: id.to_string(),
        });
        prepare(
            model,
            unit,
            event,
            Work::Action(params),
            charm_dir,
            extra_env,
        )
    }

    /// A command to run in a hook context on the unit (`juju exec`).
    pub fn prepare_exec(
        model: &mut Model,
        unit: &str,
        command: &str,
        charm_dir: &Path,
        extra_env: &[(String, String)],
    ) -> Option<Prepared> {
        let event = Event::Other {
            hook: String::new(),
        };
        let work = Work::Exec(command.to_string());
        prepare(model, unit, event, work, charm_dir, extra_env)
    }

    /// Runs the prepared process, answering its tool calls from its view.
    pub fn execute(&self, prepared: &Prepared) -> std::io::Result<Executed> {
        let context = &prepared.context;
        let id = format!(
            "{}-{}-{}",
            prepared.unit,
            match &prepared.event {
                Event::Action(a) => a.name.clone(),
                Event::Other { .. } => "exec".to_string(),
                e => e.hook_name(),
            },
            self.counter.fetch_add(1, Ordering::SeqCst)
        );
        let endpoints: Vec<String> = prepared
            .before
            .relations
            .iter()
            .map(|r| r.endpoint.clone())
            .collect();
        let (tx, rx) = channel::<Call>();
        self.contexts
            .lock()
            .expect("registry")
            .insert(id.clone(), tx);
        let hook_state = prepared.before.clone();
        let hook_context = context.clone();
        let params = match &prepared.work {
            Work::Action(p) => Some(p.clone()),
            _ => None,
        };
        let worker = std::thread::spawn(move || {
            let mut state = hook_state;
            let action;
            let calls;
            {
                let mut backend =
                    MemoryBackend::new(&mut state, hook_context.event.clone(), params);
                {
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
                action = backend.take_action_output();
                calls = backend.tool_calls();
            }
            (state, action, calls)
        });
        // The shim starts the hook's process (`enter_hook`): a process
        // spawned without running code of the controller's in the child
        // (posix_spawn), so that starting a hook costs the same whatever
        // the controller's size.
        let mut command = Command::new(&self.shim);
        command.arg(std::process::id().to_string());
        if let Some(hosts) = self.hosts.get() {
            command.arg("--hosts").arg(hosts);
        }
        command.arg("--");
        match &prepared.work {
            Work::Exec(line) => command.args(["/bin/sh", "-c", line]),
            _ => command.arg(context.charm_dir.join("dispatch")),
        };
        let hook_env: Vec<(&str, String)> = match &prepared.work {
            Work::Exec(_) => context
                .env()
                .into_iter()
                .filter(|(k, _)| !matches!(*k, "JUJU_DISPATCH_PATH" | "JUJU_HOOK_NAME"))
                .collect(),
            _ => context.env(),
        };
        command
            .env_clear()
            .current_dir(&context.charm_dir)
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
            .envs(hook_env)
            .envs(prepared.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        let output = run_process(&mut command);
        self.contexts.lock().expect("registry").remove(&id);
        let (after, action, tool_calls) = worker.join().expect("the hook context thread");
        let (stdout, stderr, status, usage) = output?;
        Ok(Executed {
            after,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            code: status.code().unwrap_or(-1),
            action,
            cost: HookCost {
                tool_calls,
                ..usage
            },
        })
    }

    /// Commits what the process changed if it exited 0 and records what a hook
    /// showed the unit; a failed hook blocks the unit (a failed action or command
    /// only loses its changes).
    pub fn finish(model: &mut Model, prepared: Prepared, executed: &Executed) -> HookRun {
        let Prepared {
            unit,
            event,
            work,
            before,
            seen_after,
            rotated_from,
            ..
        } = prepared;
        model.reading.end(&unit);
        let ok = executed.code == 0;
        if ok {
            commit(model, &unit, &before, &executed.after);
            if work == Work::Hook && event == Event::ConfigChanged {
                refresh_network(model, &unit, &before, &executed.after);
            }
            if work == Work::Hook {
                if let (Some(seen), Some(u)) = (seen_after, model.unit_mut(&unit)) {
                    u.seen = seen;
                }
                resolver::after_hook(model, rotated_from, &event);
            }
        } else if work == Work::Hook {
            if let Some(u) = model.unit_mut(&unit) {
                u.failed = Some(event.hook_name());
                let error = charm::Status::Error(format!("hook failed: {:?}", event.hook_name()));
                u.status_before_error = Some(std::mem::replace(&mut u.status, error));
            }
        }
        let run = HookRun {
            event,
            ok,
            output: format!("{}{}", executed.stdout, executed.stderr),
            stderr: executed.stderr.clone(),
            code: executed.code,
            logs: executed.after.logs[before.logs.len()..].to_vec(),
            cost: executed.cost,
        };
        drop_aside(before);
        run
    }
}

/// Frees a hook's view on a thread of its own: a unit with a thousand
/// relations sees a thousand relations, and freeing them would otherwise
/// hold up the controller's next hook.
pub fn drop_aside<T: Send + 'static>(value: T) {
    std::thread::spawn(move || drop(value));
}

/// How long output is still read once the process has exited, from children
/// it left holding its stdout or stderr.
const OUTPUT_GRACE: Duration = Duration::from_millis(100);

/// The first step of a hook's process, run as the hook-tool shim
/// (`<shim> <controller pid> [--hosts <file>] -- <program> <args>...`): it
/// makes the files it creates private (umask 077), dies with the
/// controller (and refuses to start if the controller is gone already),
/// sees `file` as `/etc/hosts` through a mount namespace of its own when
/// asked, then becomes `program` with the environment it was given.
pub fn enter_hook(args: &[String]) -> std::process::ExitCode {
    use std::os::unix::process::CommandExt;
    let usage = || {
        eprintln!("usage: <controller pid> [--hosts <file>] -- <program> <args>...");
        std::process::ExitCode::from(2)
    };
    let Some(split) = args.iter().position(|a| a == "--") else {
        return usage();
    };
    let (options, program) = (&args[..split], &args[split + 1..]);
    let (Some(controller), Some(first)) = (
        options.first().and_then(|p| p.parse::<libc::pid_t>().ok()),
        program.first(),
    ) else {
        return usage();
    };
    let hosts = match &options[1..] {
        [] => None,
        [flag, file] if flag == "--hosts" => Some(file),
        _ => return usage(),
    };
    // SAFETY: umask, prctl and getppid take no pointers.
    let orphan = unsafe {
        libc::umask(0o077);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 || libc::getppid() != controller
    };
    if orphan {
        eprintln!("the controller that started this hook is gone");
        return std::process::ExitCode::from(1);
    }
    if let Some(file) = hosts {
        if let Err(e) = see_as_hosts(file) {
            eprintln!("cannot see {file} as /etc/hosts: {e}");
            return std::process::ExitCode::from(1);
        }
    }
    let e = Command::new(first).args(&program[1..]).exec();
    eprintln!("cannot run {first}: {e}");
    std::process::ExitCode::from(126)
}

/// Binds `file` over `/etc/hosts` in a mount namespace of this process's
/// own (needs root).
fn see_as_hosts(file: &str) -> std::io::Result<()> {
    let file = std::ffi::CString::new(file)?;
    let none = std::ptr::null();
    // SAFETY: the paths are NUL-terminated strings that outlive the calls.
    let failed = unsafe {
        libc::unshare(libc::CLONE_NEWNS) != 0
            || libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            || libc::mount(
                file.as_ptr(),
                c"/etc/hosts".as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs a hook's process and collects its stdout and stderr. It ends when
/// the process exits, as Juju's does: a child left holding the pipes (a
/// background writer) is read from a moment longer, then let go, keeping what
/// was already printed.
fn run_process(command: &mut Command) -> std::io::Result<(Vec<u8>, Vec<u8>, ExitStatus, HookCost)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut pipes: [(Option<File>, Vec<u8>); 2] = [
        (
            child.stdout.take().map(|p| File::from(OwnedFd::from(p))),
            Vec::new(),
        ),
        (
            child.stderr.take().map(|p| File::from(OwnedFd::from(p))),
            Vec::new(),
        ),
    ];
    let pid = child.id();
    let mut exited: Option<((ExitStatus, HookCost), Instant)> = None;
    let mut buf = [0u8; 65536];
    loop {
        if exited.is_none() {
            exited = reap(pid, false)?.map(|s| (s, Instant::now()));
        }
        let open: Vec<usize> = (0..2).filter(|i| pipes[*i].0.is_some()).collect();
        let timeout = match exited {
            _ if open.is_empty() => break,
            Some((_, at)) => match OUTPUT_GRACE.checked_sub(at.elapsed()) {
                Some(left) => left,
                None => break,
            },
            // No signal tells of the exit while the pipes stay open: look again soon.
            None => Duration::from_millis(20),
        };
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|i| libc::pollfd {
                fd: pipes[*i].0.as_ref().map_or(-1, File::as_raw_fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let millis = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(20);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for (fd, i) in fds.iter().zip(open) {
            if fd.revents == 0 {
                continue;
            }
            let (reader, collected) = &mut pipes[i];
            match reader.as_mut().map(|r| r.read(&mut buf)) {
                Some(Ok(n)) if n > 0 => collected.extend_from_slice(&buf[..n]),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => *reader = None,
            }
        }
    }
    let (status, cost) = match exited {
        Some((reaped, _)) => reaped,
        None => loop {
            if let Some(reaped) = reap(pid, true)? {
                break reaped;
            }
        },
    };
    let [(_, stdout), (_, stderr)] = pipes;
    Ok((stdout, stderr, status, cost))
}

/// Reaps the child `pid` if it has exited (waiting for it with `block`),
/// with what the kernel counted for it: its CPU time and peak memory.
fn reap(pid: u32, block: bool) -> std::io::Result<Option<(ExitStatus, HookCost)>> {
    let mut status = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: `status` and `usage` are valid for writes; the pid is our child's.
    let got = unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut usage) };
    if got == 0 {
        return Ok(None);
    }
    if got < 0 {
        let error = std::io::Error::last_os_error();
        return match error.kind() {
            std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(error),
        };
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(Some((
        ExitStatus::from_raw(status),
        HookCost {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            peak_rss_kib: usage.ru_maxrss as u64,
            tool_calls: 0,
        },
    )))
}

/// The process's view and context. Each hook, action or command gets its own
/// range of new secret ids, so those running at once never pick the same one.
fn prepare(
    model: &mut Model,
    unit: &str,
    event: Event,
    work: Work,
    charm_dir: &Path,
    extra_env: &[(String, String)],
) -> Option<Prepared> {
    model.reserve_secret_numbers();
    let before = view(model, unit)?;
    // The secrets the hook may read (the view also holds those the unit
    // consumes but may no longer read, marked so).
    let readable: HashMap<&str, u64> = before
        .secrets
        .iter()
        .filter(|s| s.owner.may_read())
        .map(|s| (s.id.xid(), s.latest()))
        .collect();
    for (xid, latest) in readable {
        model.reading.mark(xid, unit, latest);
    }
    // What the unit is shown now is recorded from the model as it is now,
    // without keeping a copy of the model for the hook's length.
    let seen_after = match work {
        Work::Hook => {
            let saved = model.unit(unit)?.seen.clone();
            resolver::done(model, unit, &event);
            let u = model.unit_mut(unit)?;
            Some(std::mem::replace(&mut u.seen, saved))
        }
        _ => None,
    };
    let rotated_from = resolver::rotated_from(model, &event);
    let model = &*model;
    let context = Context {
        unit: unit.to_string(),
        app: before.app().to_string(),
        model_name: model.name.clone(),
        model_uuid: model.uuid.clone(),
        charm_dir: charm_dir.to_path_buf(),
        juju_version: before.juju_version.clone(),
        event: event.clone(),
    };
    Some(Prepared {
        unit: unit.to_string(),
        event,
        work,
        before,
        seen_after,
        rotated_from,
        context,
        env: extra_env.to_vec(),
    })
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
            crate::crash::point(
                "hook-tool",
                &format!("{} {}", request.context, request.tool),
            );
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
