//! The sandbox: services chrooted into the container's root, as their user. Needs
//! root, as the project's machines and CI run; `scripts/install-deps` creates the
//! `postgres` user.

mod common;

use common::{wait_until, Harness};
use pebble_api::{FileOptions, Pebble};
use std::time::Duration;

fn postgres_uid() -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    line.split(':').nth(2)?.parse().ok()
}

#[test]
fn a_sandboxed_service_sees_the_container_root() {
    assert!(
        common::is_root(),
        "the sandbox needs root (run the tests as root, as CI does)"
    );
    let mut h = Harness::new(true);
    h.client
        .push(
            "/var/lib/app/x",
            b"pushed through the API\n",
            &FileOptions {
                make_parents: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        !std::path::Path::new("/var/lib/app/x").exists(),
        "not on the host"
    );
    h.layer(
        "base",
        "services:\n  reader:\n    override: replace\n    command: sh -c 'cat /var/lib/app/x; ls -d /proc/self /tmp; pwd; sleep 30'\n    working-dir: /var/lib/app\n",
        false,
    );
    h.client.start(&["reader"]).unwrap();
    assert!(wait_until(Duration::from_secs(3), || h
        .log("reader")
        .contains("/var/lib/app\n")));
    let log = h.log("reader");
    assert!(log.contains("pushed through the API"), "{log}");
    assert!(log.contains("/proc/self"), "{log}");
    let tmp = std::fs::metadata(h.host("/tmp")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    h.client.stop(&["reader"]).unwrap();
}

#[test]
fn the_image_is_the_hosts_system_with_the_containers_own_writes() {
    assert!(
        common::is_root(),
        "the image's overlays need root (run the tests as root, as CI does)"
    );
    let mut h = Harness::new(true);
    // The files API reads the host's system directories...
    let os_release = h.client.pull("/etc/os-release").unwrap();
    assert_eq!(os_release, std::fs::read("/etc/os-release").unwrap());
    // ...and writes land in the container's own layer, never on the host.
    let options = FileOptions {
        make_parents: true,
        ..Default::default()
    };
    h.client
        .push("/etc/app/app.conf", b"written by the charm\n", &options)
        .unwrap();
    assert!(!std::path::Path::new("/etc/app/app.conf").exists());
    h.layer(
        "base",
        "services:\n  reader:\n    override: replace\n    command: sh -c 'cat /etc/app/app.conf; head -1 /etc/os-release; echo x > /usr/local/written-by-service; sleep 30'\n",
        false,
    );
    h.client.start(&["reader"]).unwrap();
    assert!(wait_until(Duration::from_secs(3), || h
        .log("reader")
        .contains("written by the charm")));
    let first = String::from_utf8_lossy(&os_release)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        wait_until(Duration::from_secs(3), || h.log("reader").contains(&first)),
        "{}",
        h.log("reader")
    );
    // What the service writes, the files API sees; the host does not.
    assert!(wait_until(Duration::from_secs(3), || h
        .client
        .pull("/usr/local/written-by-service")
        .is_ok()));
    assert!(!std::path::Path::new("/usr/local/written-by-service").exists());
    let usr = h.host("/usr");
    h.stop_server();
    assert_eq!(
        std::fs::read_dir(usr).unwrap().count(),
        0,
        "the overlays are unmounted when the server stops"
    );
}

#[test]
fn a_service_runs_as_its_user() {
    assert!(
        common::is_root(),
        "switching users needs root (run the tests as root, as CI does)"
    );
    let uid = postgres_uid()
        .expect("a postgres user (scripts/install-deps installs PostgreSQL, which creates it)");
    for sandbox in [true, false] {
        let mut h = Harness::new(sandbox);
        h.layer(
            "base",
            "services:\n  who:\n    override: replace\n    command: sh -c 'echo uid=$(id -u) home=$HOME user=$USER; sleep 30'\n    user: postgres\n",
            false,
        );
        h.client.start(&["who"]).unwrap();
        let expected = format!("uid={uid} ");
        assert!(
            wait_until(Duration::from_secs(3), || h.log("who").contains(&expected)),
            "sandbox {sandbox}: {}",
            h.log("who")
        );
        assert!(h.log("who").contains("user=postgres"), "{}", h.log("who"));
    }
}
