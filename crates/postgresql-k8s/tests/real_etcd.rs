//! The etcd keys adapter (`dcs_keys::EtcdKeys`) against a real etcd (the
//! Debian package the local model runs): it reads a scope's keys as Patroni
//! lays them out, deletes one member's key and then a whole scope's, and
//! leaves every other key alone; a host that does not answer is passed over.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use postgresql_k8s::dcs::Dcs;
use postgresql_k8s::dcs_keys::{DcsKeys, DcsKeysError, EtcdKeys};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// An etcd on 127.0.0.1, on ports free when it starts; stopped when dropped.
struct Etcd {
    child: Child,
    client: String,
    _dir: TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    fn start() -> Etcd {
        let dir = TempDir::with_prefix("pg-real-etcd-").unwrap();
        let (client, peer) = (free_port(), free_port());
        let client = format!("127.0.0.1:{client}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg(format!("--listen-client-urls=http://{client}"))
            .arg(format!("--advertise-client-urls=http://{client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let etcd = Etcd {
            child,
            client,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while etcd.put_raw("/ready", "").is_err() {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    fn put_raw(&self, key: &str, value: &str) -> Result<(), String> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let body = serde_json::json!({"key": b64(key), "value": b64(value)}).to_string();
        let stream = TcpStream::connect(&self.client).map_err(|e| e.to_string())?;
        let r = http_exchange::exchange(
            stream,
            &self.client,
            "POST",
            "/v3/kv/put",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ))
        }
    }

    fn put(&self, key: &str, value: &str) {
        self.put_raw(key, value).unwrap();
    }

    /// The DCS as the charm sees it, with a host that does not answer first.
    fn dcs(&self) -> Dcs {
        Dcs::Etcd {
            protocol: "http".into(),
            hosts: vec![format!("127.0.0.1:{}", free_port()), self.client.clone()],
        }
    }
}

#[test]
fn the_adapter_reads_and_deletes_a_scopes_keys_and_nothing_else() {
    let etcd = Etcd::start();
    let scope = "patroni-pg-gen2";
    let member = |state: &str| {
        format!(
            r#"{{"conn_url":"postgres://127.0.9.1:5432/postgres","state":"{state}","role":"replica"}}"#
        )
    };
    etcd.put(&format!("/service/{scope}/initialize"), "");
    etcd.put(&format!("/service/{scope}/config"), "{}");
    etcd.put(
        &format!("/service/{scope}/members/pg-0"),
        &member("stopped"),
    );
    etcd.put(
        &format!("/service/{scope}/members/pg-1"),
        &member("starting"),
    );
    // Other clusters, one whose name the scope's is a prefix of.
    etcd.put("/service/patroni-pg-gen20/leader", "pg-7");
    etcd.put("/service/patroni-pg/initialize", "7301234567890123456");
    let keys = EtcdKeys {
        timeout: Duration::from_secs(2),
    };
    let dcs = etcd.dcs();

    let read = keys.read(&dcs, scope).unwrap();
    assert_eq!(read.initialize.as_deref(), Some(""));
    assert_eq!(read.leader, None);
    assert_eq!(read.members["pg-0"], "stopped");
    assert_eq!(read.members["pg-1"], "starting");
    assert!(read.bootstrap_unfinished());
    assert!(read.member_at_work(), "pg-1 is starting");

    assert!(keys.delete_member(&dcs, scope, "pg-1").unwrap());
    assert!(!keys.delete_member(&dcs, scope, "pg-1").unwrap(), "gone");
    let read = keys.read(&dcs, scope).unwrap();
    assert_eq!(read.members.keys().collect::<Vec<_>>(), ["pg-0"]);
    assert!(read.bootstrap_stalled());

    assert_eq!(keys.delete_cluster(&dcs, scope).unwrap(), 3);
    assert_eq!(keys.read(&dcs, scope).unwrap(), Default::default());
    assert_eq!(keys.delete_cluster(&dcs, scope).unwrap(), 0);
    let other = keys.read(&dcs, "patroni-pg-gen20").unwrap();
    assert_eq!(other.leader.as_deref(), Some("pg-7"));
    let legacy = keys.read(&dcs, "patroni-pg").unwrap();
    assert_eq!(legacy.initialize.as_deref(), Some("7301234567890123456"));
}

#[test]
fn no_etcd_answering_is_unreachable() {
    let keys = EtcdKeys {
        timeout: Duration::from_millis(500),
    };
    let dcs = Dcs::Etcd {
        protocol: "http".into(),
        hosts: vec![format!("127.0.0.1:{}", free_port())],
    };
    assert!(matches!(
        keys.read(&dcs, "s"),
        Err(DcsKeysError::Unreachable(m)) if m.contains("127.0.0.1:")
    ));
}
