//! The PgBouncer charm's `dispatch` binary.

use pgbouncer_k8s::flows::Deps;
use pgbouncer_k8s::pgb::pools::processes_for;
use pgbouncer_k8s::pgb::Layout;
use pgbouncer_k8s::statefulset;
use pgbouncer_k8s::workload::Workload;
use pgbouncer_k8s::PgBouncerCharm;
use postgres_admin::RealConnector;

fn main() -> std::process::ExitCode {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let deps = Deps {
        connector: Box::new(RealConnector),
        workload: Workload {
            layout: Layout::default(),
            processes: processes_for(cores),
            user: Some("postgres".into()),
            drain: pgbouncer_k8s::workload::DRAIN,
            pause_wait: pgbouncer_k8s::workload::PAUSE_WAIT,
            net_ipv4: pgbouncer_k8s::handover::NET_IPV4.into(),
        },
    };
    let account = k8s_incluster::config::service_account_dir(|name| std::env::var(name).ok());
    let sets = statefulset::for_substrate(|name| std::env::var(name).ok(), &account);
    let services = pgbouncer_k8s::service::for_substrate(|name| std::env::var(name).ok(), &account);
    charm::dispatch::main(
        PgBouncerCharm::new(deps)
            .with_stateful_sets(sets)
            .with_services(services),
    )
}
