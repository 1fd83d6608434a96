//! The controller daemon: owns one model's [`Controller`], serves the `juju`
//! CLI on `<model dir>/controller.socket` ([`crate::api`]) and runs hooks in the
//! background until every unit is up to date, without holding the model while
//! a hook's process runs. As in Juju, units run their hooks at the same time
//! (up to `hooks_at_once`; one at a time while a seed fixes the order), and a
//! unit runs one thing at a time: an action, a `juju exec` command or an
//! abrupt removal waits until the unit's hook is done.
//!
//! It holds `<model dir>/controller.lock` for its life (a second daemon for the
//! same model refuses to start), writes its pid to `controller.pid` (every file
//! it makes is its owner's alone, see [`crate::store`]), marks
//! update-status due every `update_status_every`, and stops on SIGTERM or
//! SIGINT (workloads stopped, state kept) or on a `shutdown` request.
//!
//! Each container's Pebble server runs as a process of its own
//! ([`crate::pebbles`]): a daemon killed with SIGKILL leaves the workloads
//! running, and the next one carries on with them; its hooks die with it and
//! run again. `LOCAL_MODEL_CRASH_AT` makes it kill itself at a named point,
//! for tests ([`crate::crash`]).

use crate::api::{send, Reply, Request};
use crate::controller::{Controller, ControllerError, PreparedTask, ShowUnitFilter};
use crate::store;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model's directory.
    pub dir: PathBuf,
    /// The model's name, for a new model.
    pub name: String,
    /// The `hook-tool` shim.
    pub shim: PathBuf,
    /// Run workloads sandboxed (needs root).
    pub sandbox: bool,
    pub update_status_every: Duration,
    /// How many units may run hooks at once.
    pub hooks_at_once: usize,
    /// The `juju` binary, which runs each container's Pebble (`juju _pebble`).
    pub pebble_exe: PathBuf,
    /// Where deploy finds workload images by their `upstream-source`.
    pub images: Option<PathBuf>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("a controller already runs for {0}")]
    AlreadyRunning(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

struct Shared {
    controller: Mutex<Controller>,
    /// Signalled when the model changes or a hook finishes.
    changed: Condvar,
    /// Set on shutdown: no new hook starts.
    stopping: AtomicBool,
    dir: PathBuf,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Controller> {
        self.controller.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The controller, once `ready` holds of it (checked whenever the model
    /// changes or a hook finishes); the lock is held from then on, so nothing
    /// starts in between.
    fn lock_when(&self, ready: impl Fn(&Controller) -> bool) -> MutexGuard<'_, Controller> {
        let mut c = self.lock();
        while !ready(&c) {
            c = self
                .changed
                .wait_timeout(c, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        c
    }

    /// The controller, once none of `units` runs anything.
    fn lock_idle(&self, units: &[String]) -> MutexGuard<'_, Controller> {
        self.lock_when(|c| units.iter().all(|u| !c.busy(u)))
    }
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Runs the daemon until it is told to stop; does not return on a clean stop.
pub fn run(options: Options) -> Result<(), DaemonError> {
    let dir = options.dir.clone();
    let io = |what: &str| {
        let what = format!("{what} in {}", dir.display());
        move |source| DaemonError::Io { what, source }
    };
    store::private_dir(&dir).map_err(io("creating the model directory"))?;
    let lock = store::private_file(&dir.join("controller.lock")).map_err(io("locking"))?;
    // SAFETY: flock on a descriptor we own; held until the process exits.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(DaemonError::AlreadyRunning(dir.display().to_string()));
    }
    let pid_path = dir.join("controller.pid");
    store::write_private(&pid_path, std::process::id().to_string().as_bytes())
        .map_err(io("writing the pid"))?;
    crate::crash::arm_from_env();
    let mut controller = match Controller::open_detached(
        &dir,
        &options.shim,
        options.sandbox,
        &options.name,
        &options.pebble_exe,
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&pid_path);
            return Err(e.into());
        }
    };
    if let Some(images) = &options.images {
        controller.use_image_store(images);
    }
    let socket = store::socket_path(&dir);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(io("listening"))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io("making the socket private"))?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    eprintln!(
        "controller for {} started (pid {}), listening on {}",
        options.name,
        std::process::id(),
        socket.display()
    );
    let shared = Arc::new(Shared {
        controller: Mutex::new(controller),
        changed: Condvar::new(),
        stopping: AtomicBool::new(false),
        dir: dir.clone(),
    });
    {
        let shared = shared.clone();
        std::thread::spawn(move || {
            run_hooks(&shared, options.update_status_every, options.hooks_at_once)
        });
    }
    {
        let shared = shared.clone();
        std::thread::spawn(move || loop {
            if SIGNALLED.load(Ordering::SeqCst) {
                eprintln!("signalled: stopping");
                shutdown(&shared, false);
            }
            std::thread::sleep(Duration::from_millis(100));
        });
    }
    for stream in listener.incoming().flatten() {
        let shared = shared.clone();
        std::thread::spawn(move || serve(&shared, stream));
    }
    Ok(())
}

/// The background loop: starts due hooks, each in a thread of its own, while
/// fewer than `at_once` units are busy (one at a time with a seed); when none
/// can start, waits for a change (or a second, for the clock).
fn run_hooks(shared: &Arc<Shared>, update_status_every: Duration, at_once: usize) {
    let mut last_tick = Instant::now();
    loop {
        let mut c = shared.lock();
        if last_tick.elapsed() >= update_status_every {
            c.tick();
            last_tick = Instant::now();
        }
        let limit = if c.model.seed.is_some() { 1 } else { at_once };
        let room = !shared.stopping.load(Ordering::SeqCst) && c.busy_units() < limit;
        match room.then(|| c.next_due()).flatten() {
            Some(due) => {
                drop(c);
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let ran = due.execute();
                    let result = shared.lock().finish(due, ran);
                    if let Err(e) = result {
                        eprintln!("ERROR {e}");
                    }
                    shared.changed.notify_all();
                });
            }
            None => {
                let _ = shared.changed.wait_timeout(c, Duration::from_secs(1));
            }
        }
    }
}

/// Stops every workload, removes the model if asked, and exits. A model to
/// remove is marked first, so that if this process dies on the way, no
/// controller starts on what is left and the next `destroy-model` finishes.
fn shutdown(shared: &Shared, destroy: bool) -> ! {
    shared.stopping.store(true, Ordering::SeqCst);
    let mut c = shared.lock_when(|c| c.busy_units() == 0);
    if destroy {
        let marked = store::write_private(&store::destroying_path(&shared.dir), b"");
        if let Err(e) = marked {
            eprintln!("ERROR marking the model as being destroyed: {e}");
        }
        crate::crash::point("destroying", &shared.dir.display().to_string());
    }
    c.stop_workloads();
    let _ = std::fs::remove_file(store::socket_path(&shared.dir));
    let _ = std::fs::remove_file(shared.dir.join("controller.pid"));
    if destroy {
        crate::pebbles::unmount_all(&shared.dir);
        let _ = std::fs::remove_dir_all(&shared.dir);
    }
    eprintln!("controller stopped");
    std::process::exit(0)
}

fn serve(shared: &Shared, stream: UnixStream) {
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(r) => r,
        Err(e) => {
            send(&stream, &Reply::Error(format!("bad request: {e}")));
            return;
        }
    };
    let reply = match handle(shared, &stream, request) {
        Ok(v) => Reply::Done(v),
        Err(e) => Reply::Error(e.to_string()),
    };
    shared.changed.notify_all();
    send(&stream, &reply);
}

/// Waits until the unit has run its install hook, for up to `wait` seconds.
fn wait_installed(shared: &Shared, unit: &str, wait: u64) -> Result<(), ControllerError> {
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut c = shared.lock();
    loop {
        let name = c.unit_name(unit)?;
        if c.model.unit(&name).is_some_and(|u| u.seen.installed) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ControllerError::Io {
                what: format!("waiting for {unit}"),
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
        c = shared
            .changed
            .wait_timeout(c, Duration::from_millis(200))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Runs an action or command on a unit (`app/leader` names the leader) once
/// it is installed (waiting up to `wait` seconds) and idle: `prepare` gets the
/// controller and the unit's name, `started` is told once the controller is
/// let go, the task runs without it, and the result is `juju run`'s JSON for
/// the unit.
fn run_task(
    shared: &Shared,
    unit: &str,
    wait: u64,
    prepare: impl FnOnce(&mut Controller, &str) -> Result<PreparedTask, ControllerError>,
    started: impl FnOnce(&PreparedTask),
) -> Result<Value, ControllerError> {
    wait_installed(shared, unit, wait)?;
    let name = shared.lock().unit_name(unit)?;
    let task = prepare(&mut shared.lock_idle(std::slice::from_ref(&name)), &name)?;
    started(&task);
    let executed = task.execute();
    Ok(shared.lock().finish_task(task, executed)?.to_json())
}

/// `juju remove-unit [--force [--no-wait]]` on one unit.
fn remove_unit(
    c: &mut Controller,
    unit: &str,
    force: bool,
    no_wait: bool,
) -> Result<(), ControllerError> {
    match (force, no_wait) {
        (true, true) => c.remove_unit_abruptly(unit),
        (true, false) => c.force_remove_unit(unit),
        _ => c.remove_unit(unit),
    }
}

/// A status or unit details as `juju` prints them in `format` (`json` or
/// `yaml`), fields in the order Juju writes them.
fn render(format: &str, value: &impl serde::Serialize) -> Result<String, ControllerError> {
    let failed = |message: String| ControllerError::Render {
        format: format.into(),
        message,
    };
    match format {
        "json" => serde_json::to_string(value)
            .map(|s| s + "\n")
            .map_err(|e| failed(e.to_string())),
        "yaml" => yaml_serde::to_string(value).map_err(|e| failed(e.to_string())),
        other => Err(failed(format!("unknown format {other:?}"))),
    }
}

fn handle(
    shared: &Shared,
    stream: &UnixStream,
    request: Request,
) -> Result<Value, ControllerError> {
    match request {
        Request::Deploy {
            charm,
            app,
            units,
            config,
            trust,
            resources,
        } => {
            let pairs: Vec<(&str, &str)> = config
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let options = crate::controller::DeployOptions { trust, resources };
            let added = shared
                .lock()
                .deploy_with(&charm, &app, units, &pairs, &options)?;
            send(
                stream,
                &Reply::Progress(format!("Deployed {app:?} from {}", charm.display())),
            );
            for unit in added {
                send(stream, &Reply::Progress(format!("added unit {unit}")));
            }
            Ok(Value::Null)
        }
        Request::AddUnit { app, units } => {
            let mut c = shared.lock();
            let mut added = Vec::new();
            for _ in 0..units {
                let unit = c.add_unit(&app)?;
                send(stream, &Reply::Progress(format!("added unit {unit}")));
                added.push(unit);
            }
            Ok(json!(added))
        }
        Request::RemoveUnit {
            names,
            count,
            force,
            no_wait,
        } => {
            let names = {
                let c = shared.lock();
                if count > 0 {
                    let app = names.first().cloned().unwrap_or_default();
                    c.units_to_remove(&app, count as usize)?
                } else {
                    names
                        .iter()
                        .map(|n| c.unit_name(n))
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            // An abrupt removal must not land while one of its hooks runs.
            let mut c = if no_wait {
                shared.lock_idle(&names)
            } else {
                shared.lock()
            };
            for n in &names {
                remove_unit(&mut c, n, force, no_wait)?;
            }
            Ok(json!(names))
        }
        Request::RemoveApplication {
            apps,
            force,
            no_wait,
        } => {
            let units: Vec<String> = {
                let c = shared.lock();
                apps.iter()
                    .filter_map(|a| c.model.applications.get(a))
                    .flat_map(|x| x.units.keys().cloned())
                    .collect()
            };
            let mut c = if no_wait {
                shared.lock_idle(&units)
            } else {
                shared.lock()
            };
            for a in &apps {
                c.remove_application(a)?;
                let units: Vec<String> = c
                    .model
                    .applications
                    .get(a)
                    .map(|x| x.units.keys().cloned().collect())
                    .unwrap_or_default();
                if force {
                    for u in &units {
                        remove_unit(&mut c, u, force, no_wait)?;
                    }
                }
            }
            Ok(Value::Null)
        }
        Request::Refresh { app, charm } => Ok(json!(shared.lock().refresh(&app, &charm)?)),
        Request::Integrate { a, b } => Ok(json!(shared.lock().integrate(&a, &b)?)),
        Request::RemoveRelation { a, b } => Ok(json!(shared.lock().remove_relation(&a, &b)?)),
        Request::Config { app, set, reset } => {
            let mut c = shared.lock();
            if !set.is_empty() {
                let pairs: Vec<(&str, &str)> =
                    set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                c.config(&app, &pairs)?;
            }
            if !reset.is_empty() {
                let keys: Vec<&str> = reset.iter().map(String::as_str).collect();
                c.reset_config(&app, &keys)?;
            }
            c.config_json(&app)
        }
        Request::Status { format, relations } => {
            let status = shared.lock().full_status();
            Ok(json!(if format == "tabular" {
                status.tabular(relations)
            } else {
                render(&format, &status)?
            }))
        }
        Request::ShowUnit {
            units,
            format,
            endpoint,
            related_unit,
            app_only,
        } => {
            let c = shared.lock();
            let filter = ShowUnitFilter {
                endpoint,
                related_unit,
                app_only,
            };
            let mut shown = std::collections::BTreeMap::new();
            let mut missing = Vec::new();
            for unit in units {
                match c
                    .unit_name(&unit)
                    .and_then(|n| Ok((c.show_unit(&n, &filter)?, n)))
                {
                    Ok((info, name)) => {
                        shown.insert(name, info);
                    }
                    Err(e) => missing.push(e),
                }
            }
            if !missing.is_empty() {
                return Err(ControllerError::Each(missing));
            }
            Ok(json!(render(&format, &shown)?))
        }
        Request::Resolve { unit, retry } => {
            let mut c = shared.lock();
            if retry {
                c.resolve(&unit)?;
            } else {
                c.resolve_no_retry(&unit)?;
            }
            Ok(Value::Null)
        }
        Request::Run {
            unit,
            action,
            params,
            wait,
        } => run_task(
            shared,
            &unit,
            wait,
            |c, name| c.prepare_action(name, &action, params),
            |task| {
                let started = format!("Running operation on {}", task.unit());
                send(stream, &Reply::Progress(started));
            },
        ),
        Request::Exec {
            unit,
            command,
            wait,
        } => run_task(
            shared,
            &unit,
            wait,
            |c, name| c.prepare_exec(name, &command),
            |_| {},
        ),
        Request::Pending => {
            let (due, failed) = shared.lock().pending();
            Ok(json!({"due": due, "failed": failed}))
        }
        Request::AdvanceClock { seconds } => {
            shared.lock().advance_clock(seconds)?;
            Ok(Value::Null)
        }
        Request::Trust { app, trusted } => {
            shared.lock().set_trust(&app, trusted)?;
            Ok(Value::Null)
        }
        Request::UseKubernetes => {
            shared.lock().use_kubernetes()?;
            Ok(Value::Null)
        }
        Request::SetSeed { seed } => {
            shared.lock().set_seed(seed)?;
            Ok(Value::Null)
        }
        Request::FailNextHook { unit } => {
            let mut c = shared.lock();
            let name = c.unit_name(&unit)?;
            c.fail_next_hook(&name)?;
            Ok(json!(name))
        }
        Request::KillWorkload {
            unit,
            container,
            service,
        } => {
            let mut c = shared.lock();
            let name = c.unit_name(&unit)?;
            c.kill_workload(&name, &container, &service)?;
            Ok(json!(name))
        }
        Request::CrashUnit { unit } => {
            let mut c = shared.lock();
            let name = c.unit_name(&unit)?;
            c.crash_unit(&name)?;
            Ok(json!(name))
        }
        Request::Shutdown { destroy } => {
            send(stream, &Reply::Done(Value::Null));
            shutdown(shared, destroy)
        }
    }
}
