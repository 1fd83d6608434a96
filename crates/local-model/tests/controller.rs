//! The controller: deploy, add and remove units, relate, settle, and the status
//! table, with a Python ops charm and with the Rust example charm and its real
//! workload in a sandboxed Pebble container; and hooks of two units run at once,
//! each committing only what it changed.

#![allow(clippy::unwrap_used)]

mod common;

use common::{pack, shell_charm, v0_lib_dir, venv};
use local_model::controller::Controller;
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

fn controller(scratch: &TempDir) -> Controller {
    Controller::new(
        &scratch.path().join("controller"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
        true,
    )
    .unwrap()
}

#[test]
fn a_python_charm_scales_up_and_down_and_leadership_moves() {
    let scratch = TempDir::with_prefix("lm-ctl-ops-").unwrap();
    let python = venv();
    let charm = pack(
        scratch.path(),
        "ops-peer",
        "packed",
        &python,
        &[v0_lib_dir(&python)],
    );
    let mut c = controller(&scratch);
    c.deploy(&charm, "peer", 2, &[("greeting", "hi")]).unwrap();
    c.settle().unwrap();
    let status = c.status();
    assert!(status.contains("peer/0*"), "{status}");
    assert!(status.contains("has the token"), "{status}");
    let unit = c.add_unit("peer").unwrap();
    c.settle().unwrap();
    let peers = c.model.relation(1).unwrap();
    assert_eq!(peers.unit_bags[&unit].data["token-seen"], "s3cret-token");
    assert_eq!(peers.unit_bags[&unit].data["greeting"], "hi");

    c.remove_unit("peer/0").unwrap();
    let ran = c.settle().unwrap();
    for (unit, run) in &ran {
        assert!(
            run.ok,
            "{unit} {}: {}\n{:#?}",
            run.event.hook_name(),
            run.output,
            run.logs
        );
    }
    let hooks: Vec<String> = ran
        .iter()
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect();
    for expected in [
        "peer/0 stop",
        "peer/0 remove",
        "peer/1 leader-elected",
        "peer/1 replicas-relation-departed",
    ] {
        assert!(
            hooks.contains(&expected.to_string()),
            "{expected} missing: {hooks:#?}"
        );
    }
    assert!(c.model.unit("peer/0").is_none());
    assert!(c.status().contains("peer/1*"));
}

#[test]
fn the_rust_example_charm_serves_its_greeting_from_a_sandboxed_container() {
    // The example charm's dispatch binary, built by cargo like any charm.
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
    let bin = Path::new(env!("CARGO_BIN_EXE_hook-tool")).with_file_name("example-charm");
    let scratch = TempDir::with_prefix("lm-ctl-example-").unwrap();
    let charm = scratch.path().join("example-charm");
    std::fs::create_dir_all(&charm).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-charm/charm");
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        std::fs::copy(src.join(f), charm.join(f)).unwrap();
    }
    std::fs::copy(&bin, charm.join("dispatch")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = controller(&scratch);
    c.deploy(
        &charm,
        "web",
        1,
        &[
            ("port", &port.to_string()),
            ("greeting", "hello from the local model"),
        ],
    )
    .unwrap();
    let ran = c.settle().unwrap();
    for (unit, run) in &ran {
        assert!(
            run.ok,
            "{unit} {}: {}\n{:?}",
            run.event.hook_name(),
            run.output,
            run.logs
        );
    }
    let status = c.status();
    assert!(
        status.contains(&format!("serving on :{port}")),
        "{status}\n{ran:#?}"
    );
    assert!(status.contains(&format!("{port}/tcp")), "{status}");
    let host = c.model.unit("web/0").unwrap().address.clone();
    let body = http_get(&host, port);
    assert!(
        body.contains("<h1>hello from the local model</h1>"),
        "{body}"
    );

    // A killed workload is brought back by Pebble.
    c.kill_workload("web/0", "web", "web").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(http_get(&host, port).contains("hello from the local model"));

    // The clock the container's new processes see moves three days ahead,
    // then back.
    let seconds = || -> i64 {
        use pebble_api::Pebble;
        let socket = scratch
            .path()
            .join("controller/units/web-0/containers/web/pebble.socket");
        let out = pebble_api::PebbleClient::new(socket)
            .exec(&pebble_api::Exec {
                command: vec!["date".into(), "+%s".into()],
                ..pebble_api::Exec::default()
            })
            .unwrap();
        out.stdout_text().trim().parse().unwrap()
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    c.shift_workload_clock("web/0", "web", 3 * 86400).unwrap();
    let ahead = seconds() - now();
    assert!((3 * 86400 - 60..3 * 86400 + 60).contains(&ahead), "{ahead}");
    c.shift_workload_clock("web/0", "web", 0).unwrap();
    assert!((seconds() - now()).abs() < 60);

    // The workload records a notice with the `pebble` Juju gives every
    // container.
    {
        use pebble_api::Pebble;
        let socket = scratch
            .path()
            .join("controller/units/web-0/containers/web/pebble.socket");
        let mut pebble = pebble_api::PebbleClient::new(socket);
        let out = pebble
            .exec(&pebble_api::Exec {
                command: [
                    "/charm/bin/pebble",
                    "notify",
                    "example.com/woken",
                    "by=workload",
                ]
                .map(String::from)
                .to_vec(),
                ..pebble_api::Exec::default()
            })
            .unwrap();
        assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.stdout_text().starts_with("Recorded notice "),
            "{}",
            out.stdout_text()
        );
        let notice = pebble
            .notice(out.stdout_text().trim().rsplit(' ').next().unwrap())
            .unwrap();
        assert_eq!(notice.key, "example.com/woken");
        assert_eq!(notice.last_data["by"], "workload");
    }

    // A new greeting reaches the running workload.
    c.config("web", &[("greeting", "changed")]).unwrap();
    c.settle().unwrap();
    assert!(http_get(&host, port).contains("<h1>changed</h1>"));
}

fn http_get(host: &str, port: u16) -> String {
    use std::io::{Read, Write};
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect((host, port)) {
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            return body;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

fn peer_charm(scratch: &TempDir) -> std::path::PathBuf {
    let python = venv();
    pack(
        scratch.path(),
        "ops-peer",
        "packed",
        &python,
        &[v0_lib_dir(&python)],
    )
}

fn order_with(seed: Option<u64>) -> Vec<String> {
    let scratch = TempDir::with_prefix(format!("lm-ctl-seed-{seed:?}-")).unwrap();
    let charm = peer_charm(&scratch);
    let mut c = controller(&scratch);
    c.set_seed(seed).unwrap();
    c.deploy(&charm, "peer", 3, &[]).unwrap();
    c.settle()
        .unwrap()
        .into_iter()
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect()
}

#[test]
fn a_seed_fixes_the_order_units_run_in() {
    let a = order_with(Some(7));
    assert_eq!(a, order_with(Some(7)), "the same seed, the same order");
    assert_ne!(a, order_with(Some(8)), "another seed, another order");
    assert_ne!(a, order_with(None));
}

#[test]
fn an_injected_failure_blocks_one_unit_until_resolved_and_an_abrupt_removal_is_seen() {
    let scratch = TempDir::with_prefix("lm-ctl-faults-").unwrap();
    let charm = peer_charm(&scratch);
    let mut c = controller(&scratch);
    c.deploy(&charm, "peer", 3, &[]).unwrap();
    c.settle().unwrap();
    c.config("peer", &[("greeting", "new")]).unwrap();
    c.fail_next_hook("peer/1").unwrap();
    let ran = c.settle().unwrap();
    let failed: Vec<String> = ran
        .iter()
        .filter(|(_, r)| !r.ok)
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect();
    assert_eq!(failed, ["peer/1 config-changed"]);
    assert_eq!(
        c.model.unit("peer/1").unwrap().status,
        charm::Status::Error("hook failed: \"config-changed\"".into())
    );
    assert!(
        c.status()
            .lines()
            .any(|l| l.starts_with("peer/1 ") && l.contains(" error ")),
        "{}",
        c.status()
    );
    let peers = c.model.relation(1).unwrap();
    assert_eq!(peers.unit_bags["peer/0"].data["greeting"], "new");
    assert_ne!(
        peers.unit_bags["peer/1"].data["greeting"], "new",
        "nothing committed"
    );
    c.resolve("peer/1").unwrap();
    let ran = c.settle().unwrap();
    assert!(ran
        .iter()
        .any(|(u, r)| u == "peer/1" && r.ok && r.event.hook_name() == "config-changed"));
    assert_eq!(
        c.model.relation(1).unwrap().unit_bags["peer/1"].data["greeting"],
        "new"
    );

    c.remove_unit_abruptly("peer/2").unwrap();
    let ran = c.settle().unwrap();
    let hooks: Vec<String> = ran
        .iter()
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect();
    assert!(!hooks.iter().any(|h| h.starts_with("peer/2")), "{hooks:?}");
    for u in ["peer/0", "peer/1"] {
        assert!(
            hooks.contains(&format!("{u} replicas-relation-departed")),
            "{hooks:?}"
        );
    }
    assert!(c.model.unit("peer/2").is_none());

    // update-status, when due, runs once on every unit.
    c.tick();
    let ran = c.settle().unwrap();
    let hooks: Vec<String> = ran
        .iter()
        .map(|(u, r)| format!("{u} {}", r.event.hook_name()))
        .collect();
    assert_eq!(hooks, ["peer/0 update-status", "peer/1 update-status"]);
}

#[test]
fn secrets_rotate_and_expire_by_the_models_clock() {
    let scratch = TempDir::with_prefix("lm-ctl-rotate-").unwrap();
    let charm = peer_charm(&scratch);
    let mut c = controller(&scratch);
    c.deploy(&charm, "peer", 2, &[]).unwrap();
    c.settle().unwrap();
    let task = c
        .run_action("peer/leader", "rotate-token", Default::default())
        .unwrap();
    assert!(task.succeeded(), "{task:?}");
    assert!(
        c.settle().unwrap().is_empty(),
        "nothing due before the hour is up"
    );

    c.advance_clock(3601).unwrap();
    let ran = c.settle().unwrap();
    let hooks: Vec<String> = ran
        .iter()
        .map(|(u, r)| format!("{u} {} {}", r.event.hook_name(), r.ok))
        .collect();
    for expected in [
        "peer/0 secret-rotate true",
        "peer/0 secret-expired true",
        "peer/1 secret-changed true",
    ] {
        assert!(
            hooks.contains(&expected.to_string()),
            "{expected}: {hooks:?}"
        );
    }
    let bag = &c.model.relation(1).unwrap().app_bags["peer"].data;
    assert_eq!(bag["rotations"], "1");
    assert_eq!(bag["expired"], "1");
    // The next rotation is an hour after this one.
    assert!(c.settle().unwrap().is_empty());
    c.advance_clock(3600).unwrap();
    let ran = c.settle().unwrap();
    assert!(ran
        .iter()
        .any(|(u, r)| u == "peer/0" && r.event.hook_name() == "secret-rotate"));
    assert_eq!(
        c.model.relation(1).unwrap().app_bags["peer"].data["rotations"],
        "2"
    );
}

#[test]
fn actions_and_commands_run_in_a_hook_context() {
    let scratch = TempDir::with_prefix("lm-ctl-tasks-").unwrap();
    let charm = peer_charm(&scratch);
    let mut c = controller(&scratch);
    c.deploy(&charm, "peer", 1, &[("greeting", "hi")]).unwrap();
    c.settle().unwrap();
    let mut params = charm::backend::JsonMap::new();
    params.insert("name".into(), "you".into());
    let task = c.run_action("peer/0", "greet", params).unwrap();
    assert_eq!(task.results["greeting"], "hi you");
    assert_eq!(task.log, ["greeting you"]);
    let err = c
        .run_action("peer/0", "nope", Default::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "action \"nope\" not defined on unit \"peer/0\""
    );

    let task = c
        .exec("peer/0", "relation-set -r replicas:1 via=exec && is-leader")
        .unwrap();
    assert_eq!((task.code, task.stdout.as_str()), (0, "True\n"));
    assert_eq!(
        c.model.relation(1).unwrap().unit_bags["peer/0"].data["via"],
        "exec"
    );
    let task = c
        .exec("peer/0", "relation-set -r replicas:1 via=lost; exit 1")
        .unwrap();
    assert_eq!(task.code, 1);
    assert_eq!(
        c.model.relation(1).unwrap().unit_bags["peer/0"].data["via"],
        "exec"
    );
}

/// A charm in shell whose install hook creates a secret the unit owns.
fn secret_charm(scratch: &TempDir) -> std::path::PathBuf {
    shell_charm(
        scratch.path(),
        "secrets",
        "#!/bin/sh\n\
         if [ \"$JUJU_DISPATCH_PATH\" = hooks/install ]; then\n\
         \x20 secret-add --owner unit \"unit=$(echo $JUJU_UNIT_NAME | tr / -)\" >/dev/null\n\
         fi\n",
    )
}

/// Hooks of different units may run at once (the daemon starts them so):
/// each sees the model as it was when it started and commits only what it
/// changed. Two units that create secrets at once get different ids, and a
/// unit that leaves its application's secret alone does not undo a new
/// revision the leader made meanwhile.
#[test]
fn hooks_run_together_commit_without_undoing_each_other() {
    let scratch = TempDir::with_prefix("lm-ctl-together-").unwrap();
    let mut c = controller(&scratch);
    c.deploy(&secret_charm(&scratch), "secrets", 2, &[])
        .unwrap();
    let first = c.next_due().unwrap();
    let second = c.next_due().unwrap();
    assert_ne!(first.unit, second.unit);
    assert!(c.next_due().is_none(), "a unit runs one hook at a time");
    let (ran_first, ran_second) = (first.execute(), second.execute());
    assert!(c.finish(second, ran_second).unwrap().ok);
    assert!(c.finish(first, ran_first).unwrap().ok);
    assert_eq!(c.model.secrets.len(), 2, "two secrets, two ids");
    c.settle().unwrap();

    let leader = c.model.applications["secrets"].leader.clone().unwrap();
    let follower = c.model.applications["secrets"]
        .units
        .keys()
        .find(|u| **u != leader)
        .unwrap()
        .clone();
    let added = c
        .prepare_exec(&leader, "secret-add --label shared value=1")
        .unwrap();
    let out = added.execute();
    let done = c.finish_task(added, out).unwrap();
    assert_eq!(done.code, 0, "{}", done.stderr);
    let shared = |c: &Controller| {
        c.model
            .secrets
            .iter()
            .find(|s| s.owner_label.as_deref() == Some("shared"))
            .cloned()
            .unwrap()
    };
    let id = shared(&c).xid.clone();
    let set = c
        .prepare_exec(&leader, &format!("secret-set {id} value=2"))
        .unwrap();
    let idle = c.prepare_exec(&follower, "true").unwrap();
    let (ran_set, ran_idle) = (set.execute(), idle.execute());
    for (task, ran) in [(set, ran_set), (idle, ran_idle)] {
        let done = c.finish_task(task, ran).unwrap();
        assert_eq!(done.code, 0, "{}", done.stderr);
    }
    assert_eq!(shared(&c).latest(), 2, "the leader's new revision stays");
}

#[test]
fn a_refreshed_charm_upgrades_every_unit_and_keeps_the_charms_state() {
    let scratch = TempDir::with_prefix("lm-ctl-refresh-").unwrap();
    let hook = |version: &str| {
        format!(
            "#!/bin/sh\necho \"{version} $JUJU_DISPATCH_PATH\" >> .hooks\n\
             status-set active \"{version} ran $(tail -n 1 .hooks)\"\n"
        )
    };
    let old = shell_charm(&scratch.path().join("old"), "shell", &hook("v1"));
    let new = shell_charm(&scratch.path().join("new"), "shell", &hook("v2"));
    let mut c = controller(&scratch);
    c.deploy(&old, "app", 2, &[]).unwrap();
    c.settle().unwrap();
    assert!(c.status_json().to_string().contains("local:shell-0"));

    assert_eq!(c.refresh("app", &new).unwrap(), 1);
    let ran: Vec<String> = c
        .settle()
        .unwrap()
        .into_iter()
        .map(|(u, r)| {
            assert!(r.ok, "{u}: {}", r.output);
            format!("{u} {}", r.event.hook_name())
        })
        .collect();
    assert_eq!(
        ran,
        [
            "app/0 upgrade-charm",
            "app/1 upgrade-charm",
            "app/0 config-changed",
            "app/1 config-changed"
        ]
    );
    for unit in ["app/0", "app/1"] {
        let status = c.model.unit(unit).unwrap().status.clone();
        assert_eq!(
            status,
            charm::Status::Active("v2 ran v2 hooks/config-changed".into())
        );
        let dir = scratch
            .path()
            .join("controller/units")
            .join(unit.replace('/', "-"))
            .join("charm");
        let hooks = std::fs::read_to_string(dir.join(".hooks")).unwrap();
        assert!(hooks.starts_with("v1 hooks/install\n"), "{hooks}");
        assert!(hooks.contains("v2 hooks/upgrade-charm\n"), "{hooks}");
    }
    assert!(c.status_json().to_string().contains("local:shell-1"));

    // A unit added afterwards installs the new charm and never upgrades.
    let added = c.add_unit("app").unwrap();
    let hooks: Vec<String> = c
        .settle()
        .unwrap()
        .into_iter()
        .filter(|(u, _)| *u == added)
        .map(|(_, r)| r.event.hook_name())
        .collect();
    assert!(!hooks.iter().any(|h| h == "upgrade-charm"), "{hooks:?}");
    assert!(hooks.iter().any(|h| h == "install"), "{hooks:?}");
}

/// A charm that does nothing: `dispatch` exits at once.
fn idle_charm(scratch: &TempDir) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch.path().join("idle");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        "name: idle\nsummary: Nothing.\ndescription: Nothing.\n",
    )
    .unwrap();
    let dispatch = dir.join("dispatch");
    std::fs::write(&dispatch, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_model_holds_more_than_254_applications_and_reuses_a_gone_units_address() {
    let scratch = TempDir::with_prefix("lm-ctl-addresses-").unwrap();
    let charm = idle_charm(&scratch);
    let mut c = controller(&scratch);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..256 {
        let app = format!("idle{i}");
        c.deploy(&charm, &app, 1, &[]).unwrap();
        let address = c.model.unit(&format!("{app}/0")).unwrap().address.clone();
        assert!(seen.insert(address.clone()), "{address} given twice");
    }
    // An application holds 30 units at once; a gone unit's address is given
    // again once the block's others have been.
    let added: Vec<String> = (0..29).map(|_| c.add_unit("idle0").unwrap()).collect();
    assert_eq!(added.last().unwrap(), "idle0/29");
    let refused = c.add_unit("idle0").unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no loopback address left for unit idle0/30"),
        "{refused}"
    );
    let gone = c.model.unit("idle0/3").unwrap().address.clone();
    c.remove_unit_abruptly("idle0/3").unwrap();
    let again = c.add_unit("idle0").unwrap();
    assert_eq!(c.model.unit(&again).unwrap().address, gone);
}

/// A charm with a workload container whose image is the `workload-image`
/// resource, found in an image store as `workload:1.0`; `dispatch` exits at once.
fn imaged_charm(scratch: &TempDir) -> std::path::PathBuf {
    let dir = idle_charm(scratch);
    std::fs::write(
        dir.join("metadata.yaml"),
        "name: imaged\nsummary: Nothing.\ndescription: Nothing.\n\
         containers:\n  workload:\n    resource: workload-image\n\
         resources:\n  workload-image:\n    type: oci-image\n    \
         upstream-source: registry.example:5000/workload:1.0\n  \
         notes:\n    type: file\n    filename: notes.txt\n",
    )
    .unwrap();
    dir
}

/// A root filesystem for an image: `/etc` with an account of its own and a
/// file that says which image it is, and an empty `/usr`.
fn root_filesystem(dir: &Path, marker: &str) {
    std::fs::create_dir_all(dir.join("usr")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nimageuser:x:4711:4712::/home/imageuser:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nimagegroup:x:4712:\n").unwrap();
    std::fs::write(dir.join("etc/image"), marker).unwrap();
}

#[test]
fn a_container_runs_on_the_image_its_resource_names() {
    use local_model::controller::DeployOptions;
    use pebble_api::Pebble;
    let scratch = TempDir::with_prefix("lm-ctl-images-").unwrap();
    let charm = imaged_charm(&scratch);
    let store = scratch.path().join("images");
    let mut c = controller(&scratch);
    let refused = |c: &mut Controller, options: &DeployOptions| {
        let e = c
            .deploy_with(&charm, "imaged", 1, &[], options)
            .unwrap_err();
        assert!(c.model.applications.is_empty(), "{e}");
        e.to_string()
    };
    let given = |name: &str, dir: &Path| DeployOptions {
        resources: vec![(name.into(), dir.to_path_buf())],
        ..DeployOptions::default()
    };

    // A resource the charm lacks, one that is not an image, and a directory
    // with no root filesystem are refused, and nothing is deployed.
    let e = refused(&mut c, &given("other-image", scratch.path()));
    assert!(
        e.contains("the charm has no resource \"other-image\""),
        "{e}"
    );
    let e = refused(&mut c, &given("notes", scratch.path()));
    assert!(
        e.contains("\"notes\" is a file resource, not an image"),
        "{e}"
    );
    let e = refused(&mut c, &given("workload-image", scratch.path()));
    assert!(e.contains("holds no root filesystem"), "{e}");

    // With a store, the upstream source must be in it, at its tag.
    c.use_image_store(&store);
    let e = refused(&mut c, &DeployOptions::default());
    assert!(
        e.contains("no image workload:1.0 in") && e.contains("scripts/build-images workload"),
        "{e}"
    );
    root_filesystem(&store.join("workload/rootfs"), "from the store");
    std::fs::write(store.join("workload/tag"), "0.9\n").unwrap();
    let e = refused(&mut c, &DeployOptions::default());
    assert!(e.contains("no image workload:1.0 in"), "{e}");
    std::fs::write(store.join("workload/tag"), "1.0\n").unwrap();

    // Given on the command line, an image wins over the store's.
    let given_root = scratch.path().join("given");
    root_filesystem(&given_root, "given");
    c.deploy_with(
        &charm,
        "given",
        1,
        &[],
        &given("workload-image", &given_root),
    )
    .unwrap();
    c.deploy(&charm, "stored", 1, &[]).unwrap();

    let pebble = |unit: &str| {
        pebble_api::PebbleClient::new(
            scratch
                .path()
                .join("controller/units")
                .join(unit)
                .join("containers/workload/pebble.socket"),
        )
    };
    let mut stored = pebble("stored-0");
    assert_eq!(stored.pull("/etc/image").unwrap(), b"from the store");
    assert_eq!(pebble("given-0").pull("/etc/image").unwrap(), b"given");
    // The container shares the machine's network, and how it is named.
    assert_eq!(
        stored.pull("/etc/hosts").unwrap(),
        std::fs::read("/etc/hosts").unwrap()
    );
    // The container's accounts are the image's: a file owned by an account
    // only the image has.
    stored
        .push(
            "/srv/owned",
            b"x",
            &pebble_api::FileOptions {
                user: Some("imageuser".into()),
                group: Some("imagegroup".into()),
                make_parents: true,
                ..pebble_api::FileOptions::default()
            },
        )
        .unwrap();
    let owned = &stored.list_files("/srv/owned", None).unwrap()[0];
    assert_eq!(
        (owned.user.as_deref(), owned.group.as_deref()),
        (Some("imageuser"), Some("imagegroup"))
    );
    let on_disk = std::fs::metadata(
        scratch
            .path()
            .join("controller/units/stored-0/rootfs/workload/srv/owned"),
    )
    .unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((on_disk.uid(), on_disk.gid()), (4711, 4712));
    // What the container writes stays in it.
    stored
        .push(
            "/etc/image",
            b"changed",
            &pebble_api::FileOptions::default(),
        )
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(store.join("workload/rootfs/etc/image")).unwrap(),
        "from the store"
    );
}
