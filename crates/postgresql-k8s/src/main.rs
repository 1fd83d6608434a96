//! The PostgreSQL charm's `dispatch` binary.

use postgres_admin::RealConnector;
use postgresql_k8s::config::Resources;
use postgresql_k8s::dcs::Kubernetes;
use postgresql_k8s::dcs_keys::EtcdKeys;
use postgresql_k8s::flows::Deps;
use postgresql_k8s::patroni::client::HttpPatroni;
use postgresql_k8s::pods;
use postgresql_k8s::workload::Workload;
use postgresql_k8s::PostgresqlCharm;
use std::time::Duration;

/// The machine's memory in bytes, from `/proc/meminfo` (1 GiB when unreadable).
fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(1 << 30)
}

fn main() -> std::process::ExitCode {
    let kubernetes = std::env::var_os("KUBERNETES_SERVICE_HOST").map(|_| Kubernetes {
        namespace: std::env::var("JUJU_MODEL_NAME").unwrap_or_default(),
    });
    let account = k8s_incluster::config::service_account_dir(|name| std::env::var(name).ok());
    let deps = Deps {
        connector: Box::new(RealConnector),
        patroni: Box::new(HttpPatroni::default()),
        pods: pods::for_substrate(|name| std::env::var(name).ok(), &account),
        dcs_keys: Box::new(EtcdKeys::default()),
        workload: Workload::default(),
        kubernetes,
        resources: Resources {
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_bytes: memory_bytes(),
        },
        start_timeout: Duration::from_secs(30),
    };
    let services =
        postgresql_k8s::services::for_substrate(|name| std::env::var(name).ok(), &account);
    charm::dispatch::main(PostgresqlCharm::new(deps).with_services(services))
}
