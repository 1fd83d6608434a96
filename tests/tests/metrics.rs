//! Metrics end to end: etcd, a two-unit PostgreSQL cluster and two PgBouncer
//! units, with a consumer (`metrics-consumer`, a stand-in for Prometheus and
//! Grafana) related to both over `metrics-endpoint` and `grafana-dashboard`.
//! A real Prometheus (Debian's), configured from the scrape jobs the
//! consumer received, scrapes every unit of both charms: `pgbouncer_up`,
//! `pg_up` and Patroni's metrics are there for each unit; every alert rule
//! the charms publish passes `promtool check rules`, and every panel of
//! every dashboard returns data from that Prometheus.

// The test's helpers: a failure there fails the test.
#![allow(clippy::unwrap_used)]

use e2e::{action, active, charm, controller, converge, postgresql_cluster, python_charm, Scratch};
use local_model::controller::Controller;
use serde_json::Value;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus server the test started, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `prometheus` on a free loopback port with `config`, its
    /// storage under `dir`.
    fn start(dir: &Path, config: &Path) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus runs (scripts/install-deps installs it)");
        Prometheus { child, port }
    }

    /// The result vector of an instant query (`Err` with Prometheus' error).
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let stream =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let path = http_exchange::target("/api/v1/query", &[("query", expr)]);
        let answer = http_exchange::exchange(stream, "127.0.0.1", "GET", &path, &[], b"")
            .map_err(|e| format!("query: {e}"))?;
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(body.to_string());
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Waits until `expr` returns a non-empty vector; returns it.
    fn wait_for(&self, expr: &str, timeout: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let last = self.query(expr);
            if let Ok(v) = &last {
                if !v.is_empty() {
                    return v.clone();
                }
            }
            assert!(
                start.elapsed() < timeout,
                "no data for {expr} after {timeout:?}: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// An action's JSON result.
fn json_result(c: &mut Controller, name: &str, key: &str) -> Value {
    let results = action(c, "metrics-consumer/0", name, serde_json::json!({}));
    serde_json::from_str(results[key].as_str().expect("a JSON string")).unwrap()
}

/// The scrape configs, once they name `targets` targets.
fn scrape_configs(c: &mut Controller, targets: usize) -> Value {
    let start = Instant::now();
    loop {
        let configs = json_result(c, "scrape-config", "config");
        let count: usize = configs
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|job| {
                job["static_configs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .count();
        if count == targets {
            return configs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{count} targets, not {targets}: {configs:#}"
        );
        converge(c, Duration::from_secs(30), |_| true);
    }
}

#[test]
fn prometheus_scrapes_every_unit_and_the_rules_and_dashboards_hold() {
    let started = Instant::now();
    let scratch = Scratch::new("metrics");
    let pgbouncer = charm(scratch.path(), "pgbouncer-k8s");
    let consumer = python_charm(scratch.path(), "metrics-consumer");
    let mut c = controller(&scratch);

    postgresql_cluster(&mut c, scratch.path(), 2);
    c.deploy(&pgbouncer, "pgbouncer-k8s", 2, &[]).unwrap();
    c.integrate("pgbouncer-k8s:backend-database", "postgresql-k8s:database")
        .unwrap();
    c.deploy(&consumer, "metrics-consumer", 1, &[]).unwrap();
    for app in ["postgresql-k8s", "pgbouncer-k8s"] {
        for endpoint in ["metrics-endpoint", "grafana-dashboard"] {
            c.integrate(
                &format!("metrics-consumer:{endpoint}"),
                &format!("{app}:{endpoint}"),
            )
            .unwrap();
        }
    }
    converge(&mut c, Duration::from_secs(180), |c| {
        ["pgbouncer-k8s/0", "pgbouncer-k8s/1", "metrics-consumer/0"]
            .iter()
            .all(|u| active(c, u).is_some())
    });
    println!("deployed in {:?}", started.elapsed());

    // Two jobs on each PostgreSQL unit (the exporter, Patroni), one on each
    // PgBouncer unit.
    let configs = scrape_configs(&mut c, 6);
    let dir = scratch.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();

    // Every alert rule the charms publish, checked by promtool.
    let rules = json_result(&mut c, "alert-rules", "rules");
    let mut rule_files = Vec::new();
    for (app, groups) in rules.as_object().unwrap() {
        assert!(
            !groups["groups"].as_array().unwrap().is_empty(),
            "{app} sent no rules"
        );
        let file = dir.join(format!("{app}.rules.json"));
        std::fs::write(&file, groups.to_string()).unwrap();
        rule_files.push(file);
    }
    assert_eq!(rule_files.len(), 2, "{rules:#}");
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .args(&rule_files)
        .output()
        .expect("promtool runs");
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let config = serde_json::json!({
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"},
        "rule_files": rule_files,
        "scrape_configs": configs,
    });
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let prometheus = Prometheus::start(&dir, &config_file);

    // Every target up, and each unit's own metrics.
    let start = Instant::now();
    loop {
        let up = prometheus.query("up == 1").unwrap_or_default();
        if up.len() == 6 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "targets up: {up:#?}\n{}",
            prometheus
                .query("up")
                .map(|v| format!("{v:#?}"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for unit in ["pgbouncer-k8s/0", "pgbouncer-k8s/1"] {
        let up = prometheus.wait_for(
            &format!("pgbouncer_up{{juju_unit=\"{unit}\"}}"),
            Duration::from_secs(30),
        );
        assert!(up.iter().all(|s| s["value"][1] == "1"), "{unit}: {up:#?}");
    }
    for unit in ["postgresql-k8s/0", "postgresql-k8s/1"] {
        let up = prometheus.wait_for(
            &format!("pg_up{{juju_unit=\"{unit}\"}} == 1"),
            Duration::from_secs(60),
        );
        assert_eq!(up.len(), 1, "{unit}: {up:#?}");
        prometheus.wait_for(
            &format!("patroni_postgres_running{{juju_unit=\"{unit}\"}} == 1"),
            Duration::from_secs(30),
        );
    }
    let primaries = prometheus.wait_for("sum(patroni_primary)", Duration::from_secs(10));
    assert_eq!(primaries[0]["value"][1], "1", "{primaries:#?}");
    let durations = prometheus
        .query("max by (job) (scrape_duration_seconds)")
        .unwrap();
    for d in &durations {
        println!("scrape duration {}: {}s", d["metric"]["job"], d["value"][1]);
    }

    // Every panel of every dashboard returns data.
    let dashboards = json_result(&mut c, "dashboards", "dashboards");
    let dashboards = dashboards.as_object().unwrap();
    assert_eq!(dashboards.len(), 2, "{:?}", dashboards.keys());
    let mut exprs = 0;
    for (id, dashboard) in dashboards {
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                prometheus.wait_for(expr, Duration::from_secs(60));
                exprs += 1;
                println!("{id} {:?}: data", panel["title"]);
            }
        }
    }
    println!(
        "{exprs} dashboard queries answered; the whole test took {:?}",
        started.elapsed()
    );
}
