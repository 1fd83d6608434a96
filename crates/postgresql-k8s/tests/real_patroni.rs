//! The rendered `patroni.yml` on Debian's Patroni 3.0.2, PostgreSQL 15 and
//! etcd: two members on their own loopback addresses sharing port numbers (as
//! units do on the local model) form a cluster through a real etcd, replicate
//! synchronously, take the charm's REST API calls and its SQL, and switch over;
//! each member's callbacks record Pebble custom notices on its own socket; the
//! charm's etcd adapter reads the keys Patroni wrote. Every option that sets a
//! parameter is set away from its default, and each member shows the value
//! (and whether it waits for a restart as the charm's table says).
//! Runs as root (the members run as `postgres`).

#![allow(clippy::unwrap_used)]

#[path = "support/options.rs"]
mod options;

use charm::SecretContent;
use postgres_admin::names::{ExtraRoles, RoleName};
use postgres_admin::{Connector, RealConnector};
use postgresql_k8s::config::table::{Kind, TUNING};
use postgresql_k8s::config::{CharmConfig, Resources, Synchronous};
use postgresql_k8s::dcs::Dcs;
use postgresql_k8s::dcs_keys::{is_down, DcsKeys, EtcdKeys};
use postgresql_k8s::patroni::client::HttpPatroni;
use postgresql_k8s::patroni::render::{dynamic_config, render, PatroniInput};
use postgresql_k8s::patroni::{ApiAccess, Cluster, Patroni, PatroniError};
use postgresql_k8s::postgres::operator_login;
use postgresql_k8s::state::{self, Passwords};
use postgresql_k8s::workload::{notify_script, Layout, ROLE_CHANGE_NOTICE};
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const ETCD: &str = "127.0.9.9";
const ADDRESSES: [&str; 2] = ["127.0.9.1", "127.0.9.2"];

/// Holds `127.0.9.0/24` for this process: another run of this test on the
/// machine waits for it (flock, released when the process ends, however).
fn claim_addresses() -> fs::File {
    use std::os::fd::AsRawFd;
    let lock = fs::File::create(std::env::temp_dir().join("postgresql-k8s-real-patroni.lock"))
        .expect("the lock file");
    // SAFETY: flock on a file descriptor we own; the lock goes with it.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "{}", std::io::Error::last_os_error());
    lock
}

/// Processes this test started, stopped with SIGTERM (Patroni then stops its
/// PostgreSQL) when dropped; then their scratch directory goes.
struct Processes {
    _dir: TempDir,
    children: Vec<Child>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn chown_postgres(path: &Path) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A notice a member's callback posted: `(key, action, role)`.
type Posted = (String, String, String);

/// Each member's notices, as posted to its Pebble socket (a stand-in that
/// answers every request with success).
#[derive(Clone, Default)]
struct Notices(Arc<Mutex<Vec<Vec<Posted>>>>);

impl Notices {
    /// Listens on `<dir>/pebble-<n>.socket` for member `n`; returns the path.
    fn listen(&self, dir: &Path, n: usize) -> PathBuf {
        let path = dir.join(format!("pebble-{n}.socket"));
        let listener = UnixListener::bind(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        self.0.lock().unwrap().push(Vec::new());
        let notices = self.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = Vec::new();
                let mut chunk = [0; 4096];
                let body = loop {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break None,
                        Ok(k) => request.extend_from_slice(&chunk[..k]),
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some((_, body)) = text.split_once("\r\n\r\n") {
                        if let Ok(v) = serde_json::from_str::<Value>(body) {
                            break Some(v);
                        }
                    }
                };
                let Some(v) = body else { continue };
                let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
                notices.0.lock().unwrap()[n].push((
                    field(&v["key"]),
                    field(&v["data"]["action"]),
                    field(&v["data"]["role"]),
                ));
                let reply =
                    r#"{"type":"sync","status-code":200,"status":"OK","result":{"id":"1"}}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        path
    }

    /// The callback actions member `n` reported, with roles.
    fn of(&self, n: usize) -> Vec<Posted> {
        self.0.lock().unwrap()[n].clone()
    }
}

/// A session as the charm's superuser on the member at `address`.
fn operator_session(address: &str, pw: &Passwords) -> postgres::Client {
    postgres_admin::ConnectInfo {
        host: address.into(),
        port: 5432,
        user: state::OPERATOR.into(),
        password: pw.get(state::OPERATOR).into(),
        dbname: "postgres".into(),
        connect_timeout: Duration::from_secs(5),
    }
    .connect()
    .unwrap()
}

fn passwords() -> Passwords {
    let mut content = SecretContent::new();
    for user in state::SECRET_USERS {
        content.insert(
            state::password_key(user),
            postgres_admin::password::generate(),
        );
    }
    Passwords::from(content)
}

fn layout(dir: &Path, n: usize) -> Layout {
    let storage = dir.join(format!("member-{n}"));
    Layout {
        storage_dir: storage.display().to_string(),
        data_dir: storage.join("pgdata").display().to_string(),
        socket_dir: storage.display().to_string(),
        ..Layout::default()
    }
}

fn write_config(dir: &Path, n: usize, passwords: &Passwords, members: &[String]) -> String {
    let layout = layout(dir, n);
    fs::create_dir_all(&layout.storage_dir).unwrap();
    fs::set_permissions(&layout.storage_dir, fs::Permissions::from_mode(0o750)).unwrap();
    let dcs = Dcs::Etcd {
        protocol: "http".into(),
        hosts: vec![format!("{ETCD}:2379")],
    };
    // The options' parameters (the testing profile: no large shared
    // buffers), every table option changed.
    let mut raw = options::for_a_running_cluster();
    raw.insert("profile".into(), "testing".into());
    raw.insert(
        "durability_synchronous_commit".into(),
        "remote_apply".into(),
    );
    raw.insert("memory_shared_buffers".into(), 16_384.into());
    let resources = Resources {
        cpu_cores: 2,
        memory_bytes: 1 << 30,
    };
    let parameters = CharmConfig::from_raw(&raw, &resources)
        .unwrap()
        .parameters(&resources);
    let text = render(&PatroniInput {
        scope: "patroni-pg",
        member: &format!("pg-{n}"),
        address: ADDRESSES[n],
        members,
        dcs: &dcs,
        passwords,
        parameters: &parameters,
        synchronous: Synchronous {
            mode: true,
            node_count: 1,
            strict: false,
        },
        maximum_lag_on_failover: 1_048_576,
        tls: false,
        layout: &layout,
    });
    let path = layout.config_path();
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let script = layout.notify_script();
    fs::write(&script, notify_script()).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    chown_postgres(Path::new(&layout.storage_dir));
    path
}

fn spawn_patroni(dir: &Path, n: usize, config: &str, socket: &Path) -> Child {
    let log = fs::File::create(dir.join(format!("patroni-{n}.log"))).unwrap();
    Command::new("setpriv")
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .args(["/usr/bin/patroni", config])
        .current_dir(dir)
        .env("HOME", dir)
        .env("PEBBLE_SOCKET", socket)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

/// Polls until `ok` holds for the cluster, or fails with the logs.
fn wait_for(
    api: &HttpPatroni,
    password: &ApiAccess,
    dir: &Path,
    what: &str,
    ok: impl Fn(&Cluster) -> bool,
) -> Cluster {
    let hosts: Vec<String> = ADDRESSES.iter().map(|a| a.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(c) = api.cluster(password, &hosts) {
            if ok(&c) {
                return c;
            }
        }
        if Instant::now() > deadline {
            let logs: String = (0..2)
                .map(|n| {
                    fs::read_to_string(dir.join(format!("patroni-{n}.log"))).unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("\n----\n");
            panic!("timed out waiting for {what}; logs:\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Each table option's parameter on the member at `address` has the value
/// the options gave, and waits for a restart exactly when the table says.
fn settings_are_the_options(address: &str, pw: &Passwords) {
    let mut sql = postgres_admin::ConnectInfo {
        host: address.into(),
        port: 5432,
        user: state::OPERATOR.into(),
        password: pw.get(state::OPERATOR).into(),
        dbname: "postgres".into(),
        connect_timeout: Duration::from_secs(5),
    }
    .connect()
    .unwrap();
    let raw = options::for_a_running_cluster();
    for t in TUNING {
        // SHOW's value without units (pg_settings.setting), and its context.
        let row = sql
            .query_opt(
                "SELECT setting, context FROM pg_settings WHERE lower(name) = lower($1)",
                &[&t.parameter],
            )
            .unwrap()
            .unwrap_or_else(|| panic!("{address}: PostgreSQL 15 has no {}", t.parameter));
        let (setting, context): (String, String) = (row.get(0), row.get(1));
        let shown: String = sql
            .query_one(&format!("SHOW \"{}\"", t.parameter), &[])
            .unwrap()
            .get(0);
        let value = &raw[t.option];
        let ok = match t.kind {
            Kind::Flag(_) => setting == if value == true { "on" } else { "off" },
            Kind::Int { .. } => setting.parse::<i64>().ok() == value.as_i64(),
            Kind::Float { .. } => {
                let (got, want) = (setting.parse::<f64>().unwrap(), value.as_f64().unwrap());
                (got - want).abs() <= want.abs() * 1e-5
            }
            Kind::Word { .. } | Kind::DateStyle(_) | Kind::TimeZone(_) => {
                shown == value.as_str().unwrap()
            }
        };
        assert!(
            ok,
            "{address}: {} = {setting:?} (SHOW {shown:?}), {} was {value}",
            t.parameter, t.option
        );
        assert_eq!(
            context == "postmaster",
            t.restart,
            "{address}: {} is {context}",
            t.parameter
        );
    }
    for (parameter, want) in [
        ("shared_buffers", "16384"),
        ("max_worker_processes", "4"),
        ("max_parallel_workers", "4"),
        ("track_functions", "pl"),
        ("shared_preload_libraries", "pg_stat_statements,pgaudit"),
    ] {
        let setting: String = sql
            .query_one(
                "SELECT setting FROM pg_settings WHERE name = $1",
                &[&parameter],
            )
            .unwrap()
            .get(0);
        assert_eq!(setting, want, "{address}: {parameter}");
    }
}

#[test]
fn two_members_form_a_synchronous_cluster_through_etcd() {
    let _addresses = claim_addresses();
    let scratch = TempDir::with_prefix("pg-real-patroni-").unwrap();
    let dir = scratch.path().to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let mut procs = Processes {
        _dir: scratch,
        children: Vec::new(),
    };
    let etcd_log = fs::File::create(dir.join("etcd.log")).unwrap();
    procs.children.push(
        Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.join("etcd"))
            .arg(format!("--listen-client-urls=http://{ETCD}:2379"))
            .arg(format!("--advertise-client-urls=http://{ETCD}:2379"))
            .arg(format!("--listen-peer-urls=http://{ETCD}:2380"))
            .arg(format!("--initial-advertise-peer-urls=http://{ETCD}:2380"))
            .arg(format!("--initial-cluster=test=http://{ETCD}:2380"))
            .stdout(Stdio::from(etcd_log.try_clone().unwrap()))
            .stderr(Stdio::from(etcd_log))
            .spawn()
            .unwrap(),
    );
    let notices = Notices::default();
    let sockets = [notices.listen(&dir, 0), notices.listen(&dir, 1)];
    let pw = passwords();
    let api_pw = ApiAccess::plain(pw.get(state::PATRONI));
    let api = HttpPatroni {
        timeout: Duration::from_secs(2),
        attempts: 1,
        ..HttpPatroni::default()
    };

    // The first member bootstraps the cluster.
    let first = [ADDRESSES[0].to_string()];
    let config = write_config(&dir, 0, &pw, &first);
    procs
        .children
        .push(spawn_patroni(&dir, 0, &config, &sockets[0]));
    let cluster = wait_for(&api, &api_pw, &dir, "a primary", |c| {
        c.primary().is_some_and(|p| p.is_ready())
    });
    let primary = cluster.primary().unwrap();
    assert_eq!(
        (primary.name.as_str(), primary.host.as_str()),
        ("pg-0", ADDRESSES[0])
    );
    let health = api.health(&api_pw, ADDRESSES[0]).unwrap();
    assert!(health.started(), "{health:?}");

    // The charm's initialisation SQL, as operator, over TCP on the member's address.
    let target = operator_login(ADDRESSES[0], 5432, pw.get(state::OPERATOR));
    let mut pg = RealConnector.connect(&target).unwrap();
    assert!(pg.server_version().unwrap().starts_with("15."));
    let mut sql = operator_session(ADDRESSES[0], &pw);
    let setting = |sql: &mut postgres::Client, name: &str| -> String {
        sql.query_one(&format!("SHOW {name}"), &[]).unwrap().get(0)
    };
    assert_eq!(setting(&mut sql, "synchronous_commit"), "remote_apply");
    assert_eq!(setting(&mut sql, "listen_addresses"), ADDRESSES[0]);
    assert_eq!(setting(&mut sql, "wal_level"), "logical");
    pg.create_user(
        &RoleName::parse(state::MONITORING).unwrap(),
        pw.get(state::MONITORING),
        &ExtraRoles::parse("pg_monitor").unwrap(),
    )
    .unwrap();
    assert!(pg.create_admin_group().unwrap());

    // The leader admits the second member: both configurations list it.
    let both: Vec<String> = ADDRESSES.iter().map(|a| a.to_string()).collect();
    write_config(&dir, 0, &pw, &both);
    let ok = Command::new("kill")
        .arg("-HUP")
        .arg(procs.children[1].id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    let config = write_config(&dir, 1, &pw, &both);
    procs
        .children
        .push(spawn_patroni(&dir, 1, &config, &sockets[1]));
    let cluster = wait_for(&api, &api_pw, &dir, "a synchronous standby", |c| {
        c.all_ready()
            && c.members
                .iter()
                .any(|m| m.name == "pg-1" && m.role == "sync_standby")
    });
    assert_eq!(cluster.members.len(), 2);
    for address in ADDRESSES {
        settings_are_the_options(address, &pw);
    }

    // Patroni's keys in etcd, as the charm's adapter reads them: a finished
    // bootstrap (the system identifier in `initialize`), the leader, and both
    // members at work.
    let dcs = Dcs::Etcd {
        protocol: "http".into(),
        hosts: vec![format!("{ETCD}:2379")],
    };
    let keys = EtcdKeys::default().read(&dcs, "patroni-pg").unwrap();
    assert_eq!(keys.leader.as_deref(), Some("pg-0"), "{keys:?}");
    assert!(
        keys.initialize.as_deref().is_some_and(|id| !id.is_empty()),
        "{keys:?}"
    );
    assert!(!keys.bootstrap_stalled());
    assert_eq!(
        keys.members.keys().map(String::as_str).collect::<Vec<_>>(),
        ["pg-0", "pg-1"]
    );
    assert!(keys.members.values().all(|s| !is_down(s)), "{keys:?}");

    // The cluster-wide settings the leader sends.
    let mut parameters = serde_json::Map::new();
    parameters.insert("max_connections".into(), 120.into());
    let strict = Synchronous {
        mode: true,
        node_count: 1,
        strict: true,
    };
    let patch = dynamic_config(&parameters, strict, 1_048_576);
    api.patch_config(&api_pw, &both, &patch).unwrap();
    // max_connections takes effect at a restart: each member says it waits
    // for one, and PostgreSQL names the parameter.
    for address in ADDRESSES {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !api.health(&api_pw, address).unwrap().pending_restart {
            assert!(Instant::now() < deadline, "{address}: no restart pending");
            std::thread::sleep(Duration::from_millis(500));
        }
        let target = operator_login(address, 5432, pw.get(state::OPERATOR));
        let pending = RealConnector
            .connect(&target)
            .unwrap()
            .pending_restart()
            .unwrap();
        assert_eq!(pending, ["max_connections"], "{address}");
    }

    // promote-to-primary on the sync standby: a switchover to it.
    api.switchover(&api_pw, ADDRESSES[0], "pg-0", Some("pg-1"))
        .unwrap();
    let cluster = wait_for(&api, &api_pw, &dir, "pg-1 to lead, pg-0 to follow", |c| {
        c.all_ready() && c.primary().is_some_and(|p| p.name == "pg-1")
    });
    assert_eq!(cluster.primary().unwrap().host, ADDRESSES[1]);
    // A candidate that is not a sync standby is refused with Patroni's phrase.
    let err = api
        .switchover(&api_pw, ADDRESSES[1], "pg-1", Some("pg-9"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PatroniError::Http { status: 412, .. } | PatroniError::NotSyncStandby
        ),
        "{err:?}"
    );
    // A restart through the API, once the old primary follows.
    wait_for(&api, &api_pw, &dir, "pg-0 to stream", |c| {
        c.members
            .iter()
            .any(|m| m.name == "pg-0" && m.is_ready() && !m.is_leader())
            && api.health(&api_pw, ADDRESSES[0]).is_ok_and(|h| h.started())
    });
    api.restart(&api_pw, ADDRESSES[0]).unwrap();

    // Each member's callbacks told its charm: the new primary of its promotion,
    // the old one of its demotion.
    let reported = |n: usize, action: &str, roles: &[&str]| {
        notices.of(n).iter().any(|(key, a, role)| {
            key == ROLE_CHANGE_NOTICE && a == action && roles.contains(&role.as_str())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(reported(1, "on_role_change", &["master", "primary"])
        && reported(0, "on_role_change", &["replica", "demoted"]))
    {
        assert!(
            Instant::now() < deadline,
            "notices: {:?} / {:?}",
            notices.of(0),
            notices.of(1)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        reported(0, "on_start", &["master", "primary"]),
        "{:?}",
        notices.of(0)
    );

    // Patroni read every setting as the string the charm wrote: none turned
    // into a YAML 1.1 boolean (`on` → True), which would have it "change" and
    // reload PostgreSQL on every loop.
    for n in 0..2 {
        let log = fs::read_to_string(dir.join(format!("patroni-{n}.log"))).unwrap();
        assert!(
            !log.contains(" to True") && !log.contains(" to False"),
            "pg-{n}: {log}"
        );
    }

    // The replica leaves a strict cluster: Patroni holds commits on the
    // primary (`*`) until a standby confirms them. The charm's settings for a
    // member alone turn synchronous replication off, and commits go through.
    let replica = &mut procs.children[1];
    Command::new("kill")
        .arg("-TERM")
        .arg(replica.id().to_string())
        .status()
        .unwrap();
    replica.wait().unwrap();
    let mut primary = operator_session(ADDRESSES[1], &pw);
    let deadline = Instant::now() + Duration::from_secs(60);
    while setting(&mut primary, "synchronous_standby_names") != "*" {
        assert!(Instant::now() < deadline, "no strict hold on the primary");
        std::thread::sleep(Duration::from_millis(500));
    }
    let resources = Resources {
        cpu_cores: 2,
        memory_bytes: 1 << 30,
    };
    let alone = CharmConfig::from_raw(&serde_json::Map::new(), &resources)
        .unwrap()
        .synchronous(1, 1);
    assert!(!alone.mode);
    let patch = dynamic_config(&parameters, alone, 1_048_576);
    api.patch_config(&api_pw, &[ADDRESSES[1].to_string()], &patch)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !setting(&mut primary, "synchronous_standby_names").is_empty() {
        assert!(Instant::now() < deadline, "the strict hold stayed");
        std::thread::sleep(Duration::from_millis(500));
    }
    primary
        .batch_execute("SET statement_timeout = '10s'; CREATE TABLE alone (v int); INSERT INTO alone VALUES (1)")
        .unwrap();
}
