//! Logs end to end: etcd, PostgreSQL and PgBouncer (its log files rotated
//! past 1 kB, one kept), with `log-provider` (a stand-in for Loki whose
//! `endpoint` is a push receiver this test runs on loopback) related to both
//! over `logging`. Every workload's output reaches the receiver through the
//! units' Pebble log targets, labelled with its unit and service: PgBouncer's
//! processes and exporter, Patroni, PostgreSQL (through Patroni's output) and
//! `postgres_exporter`; with the relation removed, PgBouncer's lines stop
//! coming. On the same deployment, and at the same time, PgBouncer's log
//! file driven past the rotation size rotates, PgBouncer writes on in a new
//! file, and a second rotation removes the first rotated file.

// The test's helpers: a failure there fails the test.
#![allow(clippy::unwrap_used)]

use e2e::{action, active, address, charm, controller, converge, postgresql_cluster, psql};
use e2e::{python_charm, Scratch};
use local_model::controller::Controller;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One line received: its stream's labels and its text.
type Line = (Value, String);

/// A Loki push receiver on loopback: every line pushed to it.
#[derive(Clone, Default)]
struct Receiver {
    lines: Arc<Mutex<Vec<Line>>>,
}

impl Receiver {
    /// Listens on a free loopback port; returns the receiver and its URL.
    fn start() -> (Receiver, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/loki/api/v1/push",
            listener.local_addr().unwrap().port()
        );
        let receiver = Receiver::default();
        let lines = Arc::clone(&receiver.lines);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let lines = Arc::clone(&lines);
                std::thread::spawn(move || {
                    if let Some(body) = read_push(stream) {
                        let mut lines = lines.lock().unwrap();
                        for stream in body["streams"].as_array().into_iter().flatten() {
                            for value in stream["values"].as_array().into_iter().flatten() {
                                let text = value[1].as_str().unwrap_or_default().to_string();
                                lines.push((stream["stream"].clone(), text));
                            }
                        }
                    }
                });
            }
        });
        (receiver, url)
    }

    /// The lines of `unit`'s `service` (a prefix of the service's name).
    fn of(&self, unit: &str, service: &str) -> Vec<Line> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(labels, _)| {
                labels["juju_unit"] == unit
                    && labels["pebble_service"]
                        .as_str()
                        .is_some_and(|s| s.starts_with(service))
            })
            .cloned()
            .collect()
    }

    /// Waits until a line of `unit`'s `service` contains `text`; returns it.
    fn wait_for(&self, unit: &str, service: &str, text: &str, timeout: Duration) -> Line {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .of(unit, service)
                .into_iter()
                .find(|(_, l)| l.contains(text))
            {
                return line;
            }
            let services: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .map(|(l, _)| format!("{} {}", l["juju_unit"], l["pebble_service"]))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert!(
                start.elapsed() < timeout,
                "no line of {unit} {service} with {text:?} after {timeout:?}; streams seen: {services:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Reads one push (its JSON body) and answers 204.
fn read_push(mut stream: TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    stream
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        .ok()?;
    if !request_line.starts_with("POST /loki/api/v1/push ") {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

/// A login refused, so the server logs a line naming `user`.
fn refused_login(host: &str, port: u16, user: &str) {
    let answer = psql(host, port, user, "wrong-password", "postgres", "SELECT 1");
    assert!(answer.is_err(), "{user} logged in: {answer:?}");
}

/// PgBouncer process 0's log directory in the unit's container.
fn log_dir(scratch: &Path) -> PathBuf {
    scratch.join("controller/units/pgbouncer-k8s-0/rootfs/pgbouncer/var/log/pgbouncer/instance_0")
}

/// The rotated files of PgBouncer process 0, by name.
fn rotated(scratch: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(log_dir(scratch))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgbouncer.log-"))
        .collect();
    names.sort();
    names
}

/// Every workload's lines reach the receiver, labelled; the provider got
/// both charms' topology; a removed relation stops PgBouncer's lines.
fn logs_reach_loki(c: &mut Controller, receiver: &Receiver, pgbouncer: &str, postgresql: &str) {
    let wait = Duration::from_secs(60);
    // Services started before the relation only forward what they write
    // later: the exporters write when they start, so they start again.
    c.kill_workload("pgbouncer-k8s/0", "pgbouncer", "metrics_server")
        .unwrap();
    c.kill_workload("postgresql-k8s/0", "postgresql", "metrics_server")
        .unwrap();
    refused_login(pgbouncer, 6432, "logs_e2e_pgbouncer");
    refused_login(postgresql, 5432, "logs_e2e_postgresql");

    let (labels, _) =
        receiver.wait_for("pgbouncer-k8s/0", "pgbouncer_", "logs_e2e_pgbouncer", wait);
    assert_eq!(labels["juju_application"], "pgbouncer-k8s");
    assert_eq!(labels["charm"], "pgbouncer-k8s");
    assert_eq!(labels["product"], "Juju");
    assert!(labels["juju_model_uuid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    receiver.wait_for(
        "pgbouncer-k8s/0",
        "metrics_server",
        "pgbouncer-exporter: serving",
        wait,
    );
    receiver.wait_for(
        "postgresql-k8s/0",
        "postgresql",
        "I am (postgresql-k8s-0)",
        wait,
    );
    let (labels, _) = receiver.wait_for(
        "postgresql-k8s/0",
        "postgresql",
        "logs_e2e_postgresql",
        wait,
    );
    assert_eq!(labels["charm"], "postgresql-k8s");
    receiver.wait_for("postgresql-k8s/0", "metrics_server", "level=", wait);

    let requirers = action(c, "log-provider/0", "requirers", serde_json::json!({}));
    let requirers: Value = serde_json::from_str(requirers["requirers"].as_str().unwrap()).unwrap();
    for app in ["pgbouncer-k8s", "postgresql-k8s"] {
        let metadata: Value =
            serde_json::from_str(requirers[app]["metadata"].as_str().unwrap()).unwrap();
        assert_eq!(metadata["application"], app, "{requirers:#}");
        assert_eq!(requirers[app]["alert_rules"], "{}");
    }

    // The relation removed: PgBouncer's targets are disabled.
    let id = c
        .remove_relation("log-provider:logging", "pgbouncer-k8s:logging")
        .unwrap();
    converge(c, Duration::from_secs(60), |c| {
        !c.model.relations.iter().any(|r| r.id == id)
    });
    refused_login(pgbouncer, 6432, "logs_e2e_after_removal");
    refused_login(postgresql, 5432, "logs_e2e_still_related");
    receiver.wait_for(
        "postgresql-k8s/0",
        "postgresql",
        "logs_e2e_still_related",
        wait,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !receiver
            .of("pgbouncer-k8s/0", "pgbouncer_")
            .iter()
            .any(|(_, l)| l.contains("logs_e2e_after_removal")),
        "PgBouncer's lines still forwarded after the relation went"
    );
}

/// PgBouncer's log driven past the rotation size (1 kB) rotates, twice:
/// PgBouncer writes on in a new file, and only the newest rotated file stays.
fn pgbouncer_logs_rotate(scratch: &Path, pgbouncer: &str) {
    let current = log_dir(scratch).join("pgbouncer.log");
    let mut seen = Vec::new();
    for round in 0..2 {
        let before = rotated(scratch);
        // Each refused login writes a line of about 150 bytes to every file
        // it touches; enough of them fill both processes' files.
        for i in 0..20 {
            refused_login(pgbouncer, 6432, &format!("rotation_round_{round}_{i}"));
        }
        let start = Instant::now();
        let after = loop {
            let now = rotated(scratch);
            if now != before && now.iter().any(|n| !seen.contains(n)) {
                break now;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "round {round}: no rotation after 90 s; files {now:?}, current {} bytes",
                std::fs::metadata(&current).map_or(0, |m| m.len())
            );
            std::thread::sleep(Duration::from_secs(1));
        };
        seen.extend(after.iter().cloned());
        assert_eq!(after.len(), 1, "round {round}: one file kept: {after:?}");
        // PgBouncer reopened its file: it writes to a new pgbouncer.log.
        refused_login(pgbouncer, 6432, &format!("after_rotation_{round}"));
        let start = Instant::now();
        while !std::fs::read_to_string(&current)
            .unwrap_or_default()
            .contains(&format!("after_rotation_{round}"))
        {
            // The login may have gone to the other process: try again.
            refused_login(pgbouncer, 6432, &format!("after_rotation_{round}"));
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "round {round}: PgBouncer does not write to its new file"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() >= 2, "two rotations seen: {seen:?}");
}

#[test]
fn every_workloads_logs_reach_loki_and_pgbouncer_logs_rotate() {
    let started = Instant::now();
    let scratch = Scratch::new("logs");
    let pgbouncer_charm = charm(scratch.path(), "pgbouncer-k8s");
    let provider = python_charm(scratch.path(), "log-provider");
    let (receiver, url) = Receiver::start();
    let mut c = controller(&scratch);

    postgresql_cluster(&mut c, scratch.path(), 1);
    c.deploy(
        &pgbouncer_charm,
        "pgbouncer-k8s",
        1,
        &[("log_rotation_size", "1"), ("log_rotation_files", "1")],
    )
    .unwrap();
    c.integrate("pgbouncer-k8s:backend-database", "postgresql-k8s:database")
        .unwrap();
    c.deploy(&provider, "log-provider", 1, &[("url", &url)])
        .unwrap();
    for app in ["pgbouncer-k8s", "postgresql-k8s"] {
        c.integrate("log-provider:logging", &format!("{app}:logging"))
            .unwrap();
    }
    converge(&mut c, Duration::from_secs(180), |c| {
        ["pgbouncer-k8s/0", "postgresql-k8s/0", "log-provider/0"]
            .iter()
            .all(|u| active(c, u).is_some())
    });
    println!("deployed in {:?}", started.elapsed());
    let pgbouncer = address(&c, "pgbouncer-k8s/0");
    let postgresql = address(&c, "postgresql-k8s/0");

    // Rotation needs no controller, only PgBouncer and its files: it runs
    // beside the forwarding checks, which wait on the logrotate service's
    // period otherwise.
    std::thread::scope(|s| {
        let rotation = s.spawn(|| {
            pgbouncer_logs_rotate(scratch.path(), &pgbouncer);
            println!("rotated by {:?}", started.elapsed());
        });
        logs_reach_loki(&mut c, &receiver, &pgbouncer, &postgresql);
        println!("forwarded by {:?}", started.elapsed());
        if let Err(panic) = rotation.join() {
            std::panic::resume_unwind(panic);
        }
    });
}
