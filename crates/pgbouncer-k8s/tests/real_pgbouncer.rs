//! Every rendering case, loaded by a real PgBouncer of its version: all the
//! processes of the case start on one port (`so_reuseport`, `[peers]` on 1.19+),
//! answer on their unix sockets, and stop cleanly. The TLS cases get a throwaway
//! self-signed certificate from `openssl`. `scripts/install-deps` installs
//! PgBouncer 1.18 (`/usr/sbin/pgbouncer`) and 1.24 (`/opt/pgbouncer/bin/pgbouncer`).

#![allow(clippy::unwrap_used)]

mod common;

use common::cases;
use pgbouncer_k8s::pgb::ini::{render_process, ProcessSpec};
use pgbouncer_k8s::pgb::peering::Peering;
use pgbouncer_k8s::pgb::userlist::Userlist;
use pgbouncer_k8s::pgb::{Layout, PgbVersion};
use postgres_admin::testing::{free_port, postgres_ids};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn binary(version: PgbVersion) -> PathBuf {
    let path = if version.has_peers() {
        "/opt/pgbouncer/bin/pgbouncer"
    } else {
        "/usr/sbin/pgbouncer"
    };
    let out = Command::new(path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{path}: {e}; run scripts/install-deps to install PgBouncer"));
    let found = PgbVersion::find(&out.stdout).expect("a version");
    assert_eq!(
        (found.major, found.minor >= version.minor, found.has_peers()),
        (version.major, true, version.has_peers()),
        "{path} is {found}"
    );
    PathBuf::from(path)
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A throwaway self-signed key and certificate, for the TLS cases.
fn write_tls(layout: &Layout) {
    let [key, ca, cert] = layout.tls_files();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-keyout", &key, "-out", &cert])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(&cert, &ca).unwrap();
}

fn write(path: &str, text: &str) {
    std::fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn every_rendered_case_starts_on_its_pgbouncer() {
    for case in cases() {
        let bin = binary(case.version);
        let scratch = TempDir::with_prefix(format!("pgb-real-{}-", case.name)).unwrap();
        let base = scratch.path().display().to_string();
        let layout = Layout {
            data_dir: format!("{base}/lib"),
            log_dir: format!("{base}/log"),
        };
        let mut shared = case.shared(&layout);
        let peering = case.peering();
        let port = free_port().unwrap();
        for (k, v) in &mut shared.settings {
            if k == "listen_port" {
                *v = port.to_string();
            }
        }
        let mut users = Userlist::default();
        users.set("pgbouncer_auth_relation_id_3", "plain-password");
        users.set(
            "pgbouncer_admin_pgbouncer_k8s",
            &postgres_admin::verifier::scram_sha_256_random_salt("admin-password"),
        );
        write(&layout.auth_file(), &users.render());
        if case.tls {
            write_tls(&layout);
        }
        for i in 0..case.processes {
            let spec = ProcessSpec {
                index: i,
                count: case.processes,
                version: case.version,
                tls: case.tls,
                listen_addr: "127.0.0.1",
                layout: &layout,
                peering: &peering,
            };
            write(&layout.ini_path(i), &render_process(&shared, &spec));
            std::fs::create_dir_all(layout.log_dir(i)).unwrap();
        }
        chown_postgres(scratch.path());
        let mut running = Running(Vec::new());
        let (uid, gid) = postgres_ids().unwrap();
        for i in 0..case.processes {
            let child = Command::new(&bin)
                .arg(layout.ini_path(i))
                .uid(uid)
                .gid(gid)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            running.0.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 0..case.processes {
            // Up once its socket exists and it has logged "process up" (a
            // moment after it starts listening).
            let socket = format!("{}/.s.PGSQL.{port}", layout.process_dir(i));
            loop {
                let log = std::fs::read_to_string(format!("{}/pgbouncer.log", layout.log_dir(i)))
                    .unwrap_or_default();
                if Path::new(&socket).exists() && log.contains("process up") {
                    break;
                }
                for c in &mut running.0 {
                    if let Some(status) = c.try_wait().unwrap() {
                        panic!("{} process {i} exited with {status}:\n{log}", case.name);
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "{} process {i} did not start:\n{log}",
                    case.name
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for i in 0..case.processes {
            let log =
                std::fs::read_to_string(format!("{}/pgbouncer.log", layout.log_dir(i))).unwrap();
            assert!(
                !log.contains("FATAL") && !log.contains(" ERROR "),
                "{} process {i}:\n{log}",
                case.name
            );
            assert!(
                log.contains("process up"),
                "{} process {i}:\n{log}",
                case.name
            );
        }
        for c in &mut running.0 {
            // SIGINT: PgBouncer's safe shutdown.
            send_signal(c.id(), "INT");
        }
        for c in &mut running.0 {
            let status = c.wait().unwrap();
            assert!(status.success(), "{} exited with {status}", case.name);
        }
        running.0.clear();
    }
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The charm's own TLS material on a real PgBouncer 1.24: a key and CSR made by
/// `tls`, signed by a test CA, written as the charm writes them and loaded with
/// the rendered TLS lines; `psql` then connects with `sslmode=verify-full`
/// against the CA (the unit's address is an IP SAN), and a client that trusts
/// another CA is turned away.
#[test]
fn a_certificate_for_the_charms_csr_serves_verified_clients() {
    use pgbouncer_k8s::flows::certificates::unit_subject;
    use pgbouncer_k8s::pgb::ini::SharedInput;
    use pgbouncer_k8s::pgb::SharedConfig;
    use tls_certificates::{self as tls, testing::TestCa, PrivateKey};

    let version = PgbVersion::new(1, 24, 0);
    let bin = binary(version);
    let scratch = TempDir::with_prefix("pgb-real-tls-").unwrap();
    let base = scratch.path().display().to_string();
    let layout = Layout {
        data_dir: format!("{base}/lib"),
        log_dir: format!("{base}/log"),
    };
    let key = PrivateKey::generate().unwrap();
    let csr = tls::csr(&key, &unit_subject("pgbouncer-k8s", 0, "test", "127.0.0.1")).unwrap();
    let mut ca = TestCa::new("test-ca");
    let cert = ca.issue(&csr, 30);
    assert!(tls::certificate_matches_key(&cert, &key));
    let [key_path, ca_path, cert_path] = layout.tls_files();
    write(&key_path, key.pem());
    write(&cert_path, &cert);
    write(&ca_path, &format!("{cert}\n{}", ca.pem()));
    let root = format!("{base}/root.pem");
    write(&root, &ca.pem());
    let stranger = format!("{base}/stranger.pem");
    write(&stranger, &TestCa::new("another-ca").pem());

    let config = pgbouncer_k8s::config::CharmConfig::from_raw(&serde_json::Map::new()).unwrap();
    let mut shared = SharedConfig::build(&SharedInput {
        config: &config,
        app: "pgbouncer-k8s",
        backend: None,
        clients: &[],
        readonly_dbs: &[],
        total_processes: 1,
        layout: &layout,
    });
    let port = free_port().unwrap();
    for (k, v) in &mut shared.settings {
        if k == "listen_port" {
            *v = port.to_string();
        }
    }
    let mut users = Userlist::default();
    users.set(
        "pgbouncer_admin_pgbouncer_k8s",
        &postgres_admin::verifier::scram_sha_256_random_salt("admin-password"),
    );
    write(&layout.auth_file(), &users.render());
    let spec = ProcessSpec {
        index: 0,
        count: 1,
        version,
        tls: true,
        listen_addr: "127.0.0.1",
        layout: &layout,
        peering: &Peering::default(),
    };
    let ini = render_process(&shared, &spec);
    assert!(ini.contains("client_tls_key_file"));
    write(&layout.ini_path(0), &ini);
    std::fs::create_dir_all(layout.log_dir(0)).unwrap();
    chown_postgres(scratch.path());
    let (uid, gid) = postgres_ids().unwrap();
    let mut running = Running(vec![Command::new(&bin)
        .arg(layout.ini_path(0))
        .uid(uid)
        .gid(gid)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()]);
    let socket = format!("{}/.s.PGSQL.{port}", layout.process_dir(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&socket).exists() {
        assert!(Instant::now() < deadline, "PgBouncer did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let psql = |rootcert: &str| {
        Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={port} dbname=pgbouncer user=pgbouncer_admin_pgbouncer_k8s \
                 sslmode=verify-full sslrootcert={rootcert}"
            ))
            .args(["-X", "-c", "\\conninfo", "-c", "SHOW VERSION"])
            .env("PGPASSWORD", "admin-password")
            .output()
            .unwrap()
    };
    let ok = psql(&root);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("SSL connection"), "{out}");
    assert!(out.contains("PgBouncer 1.2"), "{out}");
    let refused = psql(&stranger);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("certificate verify failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    send_signal(running.0[0].id(), "INT");
    assert!(running.0[0].wait().unwrap().success());
    running.0.clear();
}
