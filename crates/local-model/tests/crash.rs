//! The controller killed at the worst moments, and what the next one makes of
//! it. Each test has the daemon kill itself with SIGKILL at a named point
//! (`LOCAL_MODEL_CRASH_AT`, see `local_model::crash`) or kills it from
//! outside, lets the next command start a new controller, and checks that
//! nothing is lost and the model converges: a deploy cut short is all there
//! or not there at all; a hook cut short (before its process, while it runs,
//! after it exits) runs again from the charm state it started from, and a hook
//! process dies with its controller; a relation's and a secret's changes made
//! by a hook cut short land once; the workloads outlive the controller, and
//! the next one carries on with them (or, when their Pebble died too, kills
//! what is left before it starts them again); what a removal left is
//! removed; and `destroy-model` and `kill-controller` clean up with no
//! controller running, finishing a destroy cut short.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The `juju` CLI on models under one home.
struct Cli {
    home: PathBuf,
    model: &'static str,
}

impl Cli {
    fn new(scratch: &TempDir, model: &'static str) -> Cli {
        Cli {
            home: scratch.path().join("home"),
            model,
        }
    }

    fn dir(&self) -> PathBuf {
        self.home.join(self.model)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_juju"));
        command
            .args(args)
            .env("LOCAL_MODEL_HOME", &self.home)
            .env("JUJU_MODEL", self.model)
            .env_remove("LOCAL_MODEL_CRASH_AT");
        command
    }

    /// Runs a command; when its controller hung up on it (killed), waits
    /// until that controller is gone, so the next command starts a new one
    /// rather than reaching the dying one's socket.
    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("the controller hung up") {
            if let Some(pid) = self.controller_pid() {
                assert!(wait_gone(pid), "the controller {pid} is still there");
            }
        }
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "juju {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.controller_log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn controller_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("controller.log")).unwrap_or_default()
    }

    /// How many times a controller of the model killed itself at a point.
    fn crashes(&self) -> usize {
        self.controller_log()
            .matches("killing the controller")
            .count()
    }

    fn controller_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir().join("controller.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills the running controller with SIGKILL (its workloads stay), and
    /// starts the next one with the crash point `at` armed.
    fn arm(&self, at: &str) {
        if let Some(pid) = self.controller_pid() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            assert!(wait_gone(pid), "the controller {pid} survived SIGKILL");
        }
        let out = self
            .command(&["status"])
            .env("LOCAL_MODEL_CRASH_AT", at)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", self.controller_log());
    }

    /// A command whose controller may be killed before it answers (a hook
    /// it sets off reaches the crash point): what it asked is saved first.
    fn send(&self, args: &[&str]) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("the controller hung up"),
            "juju {args:?}: {stderr}"
        );
    }

    /// Whether the controller log says, since the last crash, that the
    /// unit's hook was interrupted.
    fn interrupted(&self, unit: &str, hook: &str) -> bool {
        let log = self.controller_log();
        let since = log
            .rsplit("killing the controller")
            .next()
            .unwrap_or_default();
        since.contains(&format!(
            "{unit}'s {hook} hook was interrupted: it runs again"
        ))
    }

    /// `juju wait`, again after each controller crash (a command whose
    /// controller dies fails), until the model has converged.
    fn converge(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let out = self.run(&["wait", "--timeout", "120s"]);
            if out.status.success() {
                return;
            }
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(
                Instant::now() < deadline && !stderr.contains("units in error"),
                "{stderr}\n{}",
                self.controller_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format", "json"])).unwrap()
    }

    fn message(&self, unit: &str) -> String {
        let app = unit.split('/').next().unwrap();
        self.status()["applications"][app]["units"][unit]["workload-status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The hooks debug-log says ran on `unit`.
    fn hooks_ran(&self, unit: &str) -> Vec<String> {
        let prefix = format!("unit-{}: ", unit.replace('/', "-"));
        self.ok(&["debug-log", "--replay", "--no-tail"])
            .lines()
            .filter(|l| l.contains(&prefix))
            .filter_map(|l| l.split("ran \"").nth(1)?.split('"').next())
            .map(str::to_string)
            .collect()
    }

    fn unit_home(&self, unit: &str) -> PathBuf {
        self.dir().join("units").join(unit.replace('/', "-"))
    }

    fn model_json(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir().join("model.json")).unwrap()).unwrap()
    }
}

impl Drop for Cli {
    /// Destroys the model, whether or not a controller runs: its workloads
    /// stop with it.
    fn drop(&mut self) {
        if self.dir().exists() {
            let _ = self.run(&["destroy-model", self.model, "--no-prompt"]);
        }
    }
}

/// Whether the process is gone (or a zombie, nobody may reap it here, whose
/// threads have all exited).
fn gone(pid: i32) -> bool {
    local_model::pebbles::gone(pid)
}

fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A charm in shell: `metadata.yaml` (the name, then `meta`), `config.yaml`
/// and `dispatch`, which logs each run's start and end (with its pid) in the
/// unit's directory, beside the charm, and records each hook it finished in
/// `.ran`, charm state in its own directory.
fn shell_charm(scratch: &TempDir, name: &str, meta: &str, config: &str, body: &str) -> PathBuf {
    let dir = scratch.path().join("charms").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        format!("name: {name}\nsummary: a test charm\ndescription: {name}\n{meta}"),
    )
    .unwrap();
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let dispatch = format!(
        "#!/bin/sh\n\
         hook=${{JUJU_DISPATCH_PATH#hooks/}}\n\
         echo \"begin $hook $$\" >> ../hook-log\n\
         {body}\n\
         echo \"$hook\" >> .ran\n\
         echo \"end $hook $$\" >> ../hook-log\n"
    );
    std::fs::write(dir.join("dispatch"), dispatch).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("dispatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A charm whose install takes two seconds after its first hook tool, and
/// whose start sets it active.
fn steps_charm(scratch: &TempDir) -> PathBuf {
    shell_charm(
        scratch,
        "steps",
        "",
        "",
        "case \"$hook\" in\n\
         install) status-set maintenance installing; sleep 2 ;;\n\
         start) status-set active started ;;\n\
         esac",
    )
}

/// The hooks the unit's charm finished, from its own state.
fn finished(cli: &Cli, unit: &str) -> Vec<String> {
    std::fs::read_to_string(cli.unit_home(unit).join("charm/.ran"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The runs the unit's hook log shows: (begin or end, hook, pid).
fn runs(cli: &Cli, unit: &str) -> Vec<(String, String, i32)> {
    std::fs::read_to_string(cli.unit_home(unit).join("hook-log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            (words[0].into(), words[1].into(), words[2].parse().unwrap())
        })
        .collect()
}

const STEPS: [&str; 4] = ["install", "leader-elected", "config-changed", "start"];
/// A follower's first hooks.
const FOLLOWER_STEPS: [&str; 4] = [
    "install",
    "leader-settings-changed",
    "config-changed",
    "start",
];

#[test]
fn a_deploy_cut_short_is_there_whole_or_not_at_all() {
    let scratch = TempDir::with_prefix("lm-crash-deploy-").unwrap();
    let charm = steps_charm(&scratch);
    let charm = charm.to_str().unwrap();

    // Killed once the charm is copied in, before the deploy is saved: there
    // is no application, and no copy is left behind.
    let cli = Cli::new(&scratch, "before");
    cli.arm("charm-copied");
    assert!(!cli
        .run(&["deploy", charm, "app", "-n", "2"])
        .status
        .success());
    assert_eq!(cli.crashes(), 1);
    assert_eq!(cli.status()["applications"], serde_json::json!({}));
    let charms: Vec<_> = std::fs::read_dir(cli.dir().join("charms"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(charms.is_empty(), "{charms:?}");
    cli.ok(&["deploy", charm, "app", "-n", "2"]);
    cli.converge();
    assert_eq!(finished(&cli, "app/1"), FOLLOWER_STEPS);

    // Killed once the deploy is saved, before its units start: every unit
    // is there, and they converge.
    let cli = Cli::new(&scratch, "after");
    cli.arm("deployed");
    assert!(!cli
        .run(&["deploy", charm, "app", "-n", "3"])
        .status
        .success());
    assert_eq!(cli.crashes(), 1);
    let units = cli.status()["applications"]["app"]["units"].clone();
    assert_eq!(units.as_object().unwrap().len(), 3, "{units}");
    cli.converge();
    assert_eq!(finished(&cli, "app/0"), STEPS);
    for unit in ["app/0", "app/1", "app/2"] {
        if unit != "app/0" {
            assert_eq!(finished(&cli, unit), FOLLOWER_STEPS, "{unit}");
        }
        assert_eq!(cli.message(unit), "started");
    }

    // Killed halfway through copying the charm into a unit: the next
    // controller copies it whole.
    let cli = Cli::new(&scratch, "halfway");
    cli.arm("copying:units/app-1/");
    assert!(!cli
        .run(&["deploy", charm, "app", "-n", "2"])
        .status
        .success());
    assert_eq!(cli.crashes(), 1);
    cli.converge();
    assert_eq!(finished(&cli, "app/1"), FOLLOWER_STEPS);
    let copy = cli.unit_home("app/1").join("charm");
    assert!(copy.join("dispatch").exists() && copy.join("metadata.yaml").exists());
}

#[test]
fn a_hook_cut_short_runs_again_from_the_state_it_started_from() {
    let scratch = TempDir::with_prefix("lm-crash-hook-").unwrap();
    let charm = steps_charm(&scratch);
    let charm = charm.to_str().unwrap();

    // After it is saved as started, before its process runs.
    let cli = Cli::new(&scratch, "started");
    cli.arm("hook-started:app/0 install");
    cli.send(&["deploy", charm, "app"]);
    cli.converge();
    assert_eq!(cli.crashes(), 1);
    assert!(cli.interrupted("app/0", "install"));
    assert_eq!(finished(&cli, "app/0"), STEPS);
    let installs = runs(&cli, "app/0")
        .into_iter()
        .filter(|(_, hook, _)| hook == "install")
        .count();
    assert_eq!(installs, 2, "one run, begun and ended");

    // After its process exited 0, before its results are committed: it runs
    // again, from the charm state it had before (its `.ran` holds each hook
    // once), and debug-log tells of the run that was committed.
    let cli = Cli::new(&scratch, "exited");
    cli.arm("hook-exited:app/0 start");
    cli.send(&["deploy", charm, "app"]);
    cli.converge();
    assert_eq!(cli.crashes(), 1);
    assert!(cli.interrupted("app/0", "start"));
    assert_eq!(finished(&cli, "app/0"), STEPS);
    let starts: Vec<_> = runs(&cli, "app/0")
        .into_iter()
        .filter(|(_, hook, _)| hook == "start")
        .collect();
    assert_eq!(
        starts.len(),
        4,
        "two runs, each begun and ended: {starts:?}"
    );
    assert_eq!(cli.hooks_ran("app/0"), STEPS);
    assert_eq!(cli.message("app/0"), "started");
}

#[test]
fn a_hook_process_dies_with_its_controller() {
    let scratch = TempDir::with_prefix("lm-crash-tool-").unwrap();
    let charm = steps_charm(&scratch);
    let cli = Cli::new(&scratch, "tool");
    // Killed while install waits on its first hook tool: the process dies
    // too, so it never gets to the end of its run, and the hook runs again.
    cli.arm("hook-tool:app/0-install");
    cli.send(&["deploy", charm.to_str().unwrap(), "app"]);
    cli.converge();
    assert_eq!(cli.crashes(), 1);
    assert!(cli.interrupted("app/0", "install"));
    let runs = runs(&cli, "app/0");
    let (_, _, first) = runs[0].clone();
    assert_eq!(runs[0], ("begin".into(), "install".into(), first));
    assert!(gone(first));
    assert!(
        !runs.contains(&("end".into(), "install".into(), first)),
        "{runs:?}"
    );
    assert_eq!(finished(&cli, "app/0"), STEPS);
}

/// Two charms related over `db`: the giver's units write a token into their
/// bags when the taker joins, its leader one into the application bag; the
/// taker shows what it got.
fn giver_and_taker(scratch: &TempDir) -> (PathBuf, PathBuf) {
    let giver = shell_charm(
        scratch,
        "giver",
        "provides:\n  db:\n    interface: token\n",
        "",
        "case \"$hook\" in\n\
         db-relation-joined)\n\
         relation-set -r \"$JUJU_RELATION_ID\" token=\"from-$JUJU_UNIT_NAME\"\n\
         if [ \"$(is-leader)\" = True ]; then\n\
         relation-set -r \"$JUJU_RELATION_ID\" --app app-token=shared; fi ;;\n\
         esac",
    );
    let taker = shell_charm(
        scratch,
        "taker",
        "requires:\n  db:\n    interface: token\n",
        "",
        "case \"$hook\" in\n\
         db-relation-changed)\n\
         t=$(relation-get -r \"$JUJU_RELATION_ID\" token \"$JUJU_REMOTE_UNIT\")\n\
         a=$(relation-get -r \"$JUJU_RELATION_ID\" --app app-token \"$JUJU_REMOTE_APP\")\n\
         status-set active \"token $t app $a\" ;;\n\
         esac",
    );
    (giver, taker)
}

#[test]
fn a_relation_change_cut_short_lands_once_the_hook_runs_again() {
    let scratch = TempDir::with_prefix("lm-crash-relation-").unwrap();
    let (giver, taker) = giver_and_taker(&scratch);
    let cli = Cli::new(&scratch, "relation");
    cli.ok(&["deploy", giver.to_str().unwrap(), "giver"]);
    cli.ok(&["deploy", taker.to_str().unwrap(), "taker"]);
    cli.converge();
    cli.arm("hook-exited:giver/0 db-relation-joined");
    cli.send(&["integrate", "giver", "taker"]);
    cli.converge();
    assert_eq!(cli.crashes(), 1);
    assert!(cli.interrupted("giver/0", "db-relation-joined"));
    assert_eq!(cli.message("taker/0"), "token from-giver/0 app shared");
    let joined = |cli: &Cli| {
        cli.hooks_ran("giver/0")
            .into_iter()
            .filter(|h| h == "db-relation-joined")
            .count()
    };
    assert_eq!(joined(&cli), 1);
    let relations = &cli.status()["applications"]["giver"]["relations"]["db"];
    assert_eq!(relations[0]["related-application"], "taker");

    // Killed after the taker's hook is committed: it does not run again.
    cli.arm("hook-committed:taker/0 db-relation-changed");
    cli.send(&["add-unit", "giver"]);
    cli.converge();
    assert_eq!(cli.crashes(), 2);
    assert!(
        !cli.interrupted("taker/0", "db-relation-changed"),
        "{}",
        cli.controller_log()
    );
    let changed = |hooks: Vec<String>| hooks.iter().filter(|h| *h == "db-relation-changed").count();
    assert_eq!(
        changed(cli.hooks_ran("taker/0")),
        changed(finished(&cli, "taker/0")),
        "each committed once"
    );
    let bags: Value =
        serde_json::from_str(&cli.ok(&["show-unit", "taker/0", "--format", "json"])).unwrap();
    let related = &bags["taker/0"]["relation-info"][0]["related-units"];
    assert_eq!(related["giver/1"]["data"]["token"], "from-giver/1");
}

#[test]
fn a_secret_change_cut_short_makes_one_revision() {
    let scratch = TempDir::with_prefix("lm-crash-secret-").unwrap();
    let owner = shell_charm(
        &scratch,
        "owner",
        "provides:\n  db:\n    interface: token\n",
        "options:\n  value:\n    type: string\n    default: one\n    description: the secret's value\n",
        "case \"$hook\" in\n\
         config-changed)\n\
         id=$(secret-ids | sed -n \"s/^- //p\" | head -n 1)\n\
         if [ -n \"$id\" ]; then secret-set \"$id\" value=\"$(config-get value)\"\n\
         else secret-add --label token value=\"$(config-get value)\" >/dev/null; fi ;;\n\
         db-relation-joined)\n\
         id=$(secret-ids | sed -n \"s/^- //p\" | head -n 1)\n\
         secret-grant \"$id\" -r \"$JUJU_RELATION_ID\"\n\
         relation-set -r \"$JUJU_RELATION_ID\" --app secret-id=\"$id\" ;;\n\
         esac",
    );
    let consumer = shell_charm(
        &scratch,
        "consumer",
        "requires:\n  db:\n    interface: token\n",
        "",
        "case \"$hook\" in\n\
         db-relation-changed)\n\
         id=$(relation-get -r \"$JUJU_RELATION_ID\" --app secret-id \"$JUJU_REMOTE_APP\")\n\
         if [ -n \"$id\" ]; then status-set active \"secret $(secret-get \"$id\" value)\"; fi ;;\n\
         secret-changed)\n\
         status-set active \"secret $(secret-get --refresh \"$JUJU_SECRET_ID\" value)\" ;;\n\
         esac",
    );
    let cli = Cli::new(&scratch, "secret");
    cli.ok(&["deploy", owner.to_str().unwrap(), "owner"]);
    cli.ok(&["deploy", consumer.to_str().unwrap(), "consumer"]);
    cli.ok(&["integrate", "owner", "consumer"]);
    cli.converge();
    assert_eq!(cli.message("consumer/0"), "secret one");

    // The owner's config-changed sets a new revision, exits, and the
    // controller dies before committing it: the hook runs again and makes
    // one revision, which the consumer is told of.
    cli.arm("hook-exited:owner/0 config-changed");
    cli.send(&["config", "owner", "value=two"]);
    cli.converge();
    assert_eq!(cli.crashes(), 1);
    assert!(cli.interrupted("owner/0", "config-changed"));
    assert_eq!(cli.message("consumer/0"), "secret two");
    let secrets = cli.model_json()["secrets"].clone();
    assert_eq!(secrets.as_array().unwrap().len(), 1, "{secrets}");
    let revisions: Vec<&String> = secrets[0]["revisions"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(revisions, ["1", "2"]);
}

/// The example charm (its `web` container runs a Python web server on
/// `port`), built and packed in the scratch directory.
fn example_charm(scratch: &TempDir) -> PathBuf {
    let ok = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "example-charm",
            "--bin",
            "example-charm",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let charm = scratch.path().join("example-charm");
    std::fs::create_dir_all(&charm).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-charm/charm");
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        std::fs::copy(src.join(f), charm.join(f)).unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_hook-tool")).with_file_name("example-charm");
    std::fs::copy(&bin, charm.join("dispatch")).unwrap();
    charm
}

/// A free TCP port on the loopback.
fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

/// Processes whose root is inside `dir` (a sandboxed service's root), or
/// that serve it with Pebble (`juju _pebble --root <dir>`).
fn processes_in(dir: &Path) -> Vec<i32> {
    let dir = dir.canonicalize().unwrap();
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let root = std::fs::read_link(e.path().join("root")).ok()?;
            (root.starts_with(&dir) && !gone(pid)).then_some(pid)
        })
        .collect();
    pids.sort();
    pids
}

/// The Pebble servers serving containers under `dir`.
fn pebbles_in(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(" _pebble ")
                && cmdline.contains(&dir.display().to_string())
                && !gone(pid))
            .then_some(pid)
        })
        .collect();
    pids.sort();
    pids
}

/// Whether the web service answers on the unit's address.
fn serves(cli: &Cli, unit: &str, port: &str) -> bool {
    let address = cli.status()["applications"]["web"]["units"][unit]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(format!("{address}:{port}")).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn the_workloads_outlive_their_controller_and_go_with_their_model() {
    let scratch = TempDir::with_prefix("lm-crash-workloads-").unwrap();
    let charm = example_charm(&scratch);
    let port = free_port();
    let cli = Cli::new(&scratch, "web");
    cli.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "web",
        "-n",
        "2",
        "--config",
        &format!("port={port}"),
    ]);
    cli.converge();
    let root = cli.unit_home("web/0").join("rootfs/web");
    let services = processes_in(&root);
    let pebbles = pebbles_in(&cli.dir());
    assert!(!services.is_empty(), "the web service runs");
    assert_eq!(pebbles.len(), 2, "one Pebble per unit");

    // Killed with SIGKILL, the controller takes no workload with it: the
    // next one carries on with the same Pebble servers and services.
    let old = cli.controller_pid().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(old, libc::SIGKILL) };
    assert!(wait_gone(old));
    assert_eq!(processes_in(&root), services);
    cli.converge();
    assert_ne!(cli.controller_pid(), Some(old));
    assert_eq!(processes_in(&root), services);
    assert_eq!(pebbles_in(&cli.dir()), pebbles);
    assert!(serves(&cli, "web/0", &port));

    // A unit's Pebble killed as well (a lost node): the next controller
    // kills what its container still runs, then starts it again with its
    // plan, so the port is held once.
    let pebble = pebbles_in(&cli.unit_home("web/0"))[0];
    let old = cli.controller_pid().unwrap();
    for pid in [old, pebble] {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert!(wait_gone(pid));
    }
    assert_eq!(processes_in(&root), services, "orphaned, still running");
    // The service's pid file, as PostgreSQL and PgBouncer write theirs: it
    // goes with the process, another one stays.
    let run = root.join("var/run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("web.pid"), format!("{}\n", services[0])).unwrap();
    std::fs::write(run.join("other.pid"), "1\n").unwrap();
    cli.converge();
    assert!(!run.join("web.pid").exists());
    assert!(run.join("other.pid").exists());
    let now = processes_in(&root);
    assert!(
        !now.is_empty() && services.iter().all(|p| !now.contains(p)),
        "{services:?} then {now:?}"
    );
    assert!(serves(&cli, "web/0", &port));

    // kill-controller stops the workloads even with no controller running;
    // the next command starts them again.
    let old = cli.controller_pid().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(old, libc::SIGKILL) };
    assert!(wait_gone(old));
    cli.ok(&["kill-controller", "--no-prompt"]);
    assert!(processes_in(&root).is_empty());
    assert!(pebbles_in(&cli.dir()).is_empty());
    cli.converge();
    assert!(serves(&cli, "web/1", &port));

    // destroy-model with no controller running stops them and removes it.
    let old = cli.controller_pid().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(old, libc::SIGKILL) };
    assert!(wait_gone(old));
    let services = processes_in(&root);
    assert!(!services.is_empty());
    cli.ok(&["destroy-model", "web", "--no-prompt"]);
    assert!(services.iter().all(|p| gone(*p)));
    assert!(pebbles_in(&scratch.path().join("home")).is_empty());
    assert!(!cli.dir().exists());
}

#[test]
fn a_destroy_cut_short_is_finished_by_the_next_destroy_model() {
    let scratch = TempDir::with_prefix("lm-crash-destroy-").unwrap();
    let charm = example_charm(&scratch);
    let port = free_port();
    let config = format!("port={port}");
    let deploy = |cli: &Cli| {
        cli.ok(&[
            "deploy",
            charm.to_str().unwrap(),
            "web",
            "--config",
            &config,
        ]);
        cli.converge();
        processes_in(&cli.unit_home("web/0").join("rootfs/web"))
    };

    // The controller dies once the model is marked: the same command
    // finishes the job.
    let cli = Cli::new(&scratch, "marked");
    let services = deploy(&cli);
    cli.arm("destroying");
    let out = cli.run(&["destroy-model", "marked", "--no-prompt"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(
        "Finishing the removal of model \"marked\", which its controller left unfinished\n"
    ));
    assert!(services.iter().all(|p| gone(*p)));
    assert!(!cli.dir().exists());

    // A model left marked (the command was cut short too), its Pebble
    // servers killed with the controller, their services and images left
    // behind: no controller starts on it, and destroy-model finishes it.
    let cli = Cli::new(&scratch, "left");
    let services = deploy(&cli);
    let mounted = |dir: &Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&dir.display().to_string()))
            .count()
    };
    assert!(mounted(&cli.dir()) > 0, "the container's image is mounted");
    for pid in pebbles_in(&cli.dir())
        .into_iter()
        .chain(cli.controller_pid())
    {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert!(wait_gone(pid));
    }
    assert!(
        services.iter().all(|p| !gone(*p)),
        "orphaned, still running"
    );
    std::fs::write(cli.dir().join("destroying"), "").unwrap();
    let out = cli.run(&["status"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "ERROR model \"left\" is being destroyed: finish with `juju destroy-model left \
             --no-prompt`, which removes {}\n",
            cli.dir().display()
        )
    );
    let out = cli.run(&["destroy-model", "left", "--no-prompt"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("Finishing the removal"));
    assert!(services.iter().all(|p| gone(*p)));
    assert_eq!(mounted(&cli.dir()), 0);
    assert!(!cli.dir().exists());
}

#[test]
fn what_a_removal_left_is_removed_by_the_next_controller() {
    let scratch = TempDir::with_prefix("lm-crash-removal-").unwrap();
    let charm = example_charm(&scratch);
    let port = free_port();
    let cli = Cli::new(&scratch, "removal");
    cli.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "web",
        "-n",
        "2",
        "--config",
        &format!("port={port}"),
    ]);
    cli.converge();
    let home = cli.unit_home("web/1");
    let services = processes_in(&home.join("rootfs/web"));
    assert!(!services.is_empty());
    // The model forgets web/1 and is saved; the controller dies before its
    // directory and Pebble go: the next one removes them.
    cli.arm("forgotten");
    cli.send(&["remove-unit", "web/1"]);
    cli.converge();
    assert_eq!(cli.crashes(), 1);
    let units = cli.status()["applications"]["web"]["units"].clone();
    assert_eq!(
        units.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["web/0"]
    );
    assert!(!home.exists());
    assert!(services.iter().all(|p| gone(*p)));
    assert!(pebbles_in(&home).is_empty());
    assert!(serves(&cli, "web/0", &port));
}

#[test]
fn an_interrupted_hook_runs_first_while_what_it_is_about_is_still_there() {
    use charm::{Event, Relation, RelationEvent, SecretEvent, SecretId};
    use local_model::controller::Controller;
    let scratch = TempDir::with_prefix("lm-crash-interrupted-").unwrap();
    let (giver, taker) = giver_and_taker(&scratch);
    let mut c = Controller::new(
        &scratch.path().join("controller"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
        false,
    )
    .unwrap();
    c.deploy(&giver, "giver", 1, &[]).unwrap();
    c.deploy(&taker, "taker", 1, &[]).unwrap();
    let id = c.integrate("giver", "taker").unwrap();
    c.settle().unwrap();
    let changed = |id: u64| {
        Event::RelationChanged(RelationEvent {
            relation: Relation::new("db", id),
            remote_app: "taker".into(),
            remote_unit: Some("taker/0".into()),
            departing_unit: None,
        })
    };
    let started = |c: &mut Controller, event: Event| {
        c.model.unit_mut("giver/0").unwrap().hook_started = Some(event);
        c.interrupted("giver/0")
    };
    assert_eq!(started(&mut c, changed(id)), Some(changed(id)));
    assert_eq!(
        started(&mut c, changed(id + 7)),
        None,
        "the relation is gone"
    );
    let secret = Event::SecretChanged(SecretEvent {
        id: SecretId::new(&c.model.uuid, "d0000000000000000000").unwrap(),
        label: None,
        revision: None,
    });
    assert_eq!(started(&mut c, secret), None, "the secret is gone");
    let ready = Event::PebbleReady {
        container: "box".into(),
    };
    assert_eq!(started(&mut c, ready), None, "no such container");

    // The unit in error or gone: nothing runs again.
    started(&mut c, Event::UpdateStatus);
    c.model.unit_mut("giver/0").unwrap().failed = Some("start".into());
    assert_eq!(c.interrupted("giver/0"), None);
    c.model.unit_mut("giver/0").unwrap().failed = None;
    c.model.unit_mut("giver/0").unwrap().seen.removed = true;
    assert_eq!(c.interrupted("giver/0"), None);
    c.model.unit_mut("giver/0").unwrap().seen.removed = false;

    // A hook the resolver would not pick (update-status is not due) is due
    // and runs first; committing it clears the record.
    assert_eq!(c.interrupted("giver/0"), Some(Event::UpdateStatus));
    assert_eq!(c.pending().0, ["giver/0"]);
    let due = c.next_due().unwrap();
    assert_eq!(
        (due.unit.as_str(), due.hook_name()),
        ("giver/0", "update-status".into())
    );
    let ran = due.execute();
    assert!(c.finish(due, ran).unwrap().ok);
    assert_eq!(c.model.unit("giver/0").unwrap().hook_started, None);
    assert!(c.pending().0.is_empty());
}
