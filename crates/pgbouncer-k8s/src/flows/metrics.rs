//! Metrics: the Prometheus exporter beside PgBouncer (one scrape target per
//! unit, over every process's admin console, as the console's stats user),
//! and what the `metrics-endpoint` and `grafana-dashboard` relations carry,
//! through `cos-interface`.

use super::{own_address, Deps};
use crate::pgb::ini::stats_user;
use crate::pgb::SharedConfig;
use crate::workload::{Exporter, CONTAINER, EXPORTER_BINARY};
use charm::{Handled, Hook, LogLevel};
use cos_interface::scrape::ScrapeJob;
use cos_interface::{CharmFile, Observability};

/// The charm's name, as the libraries record it.
pub const CHARM_NAME: &str = "pgbouncer-k8s";
/// The exporter's port (the community exporter's).
pub const EXPORTER_PORT: u16 = 9127;

/// The alert rules, from the charm directory.
pub const RULES: &[CharmFile] = &[CharmFile {
    path: "src/prometheus_alert_rules/pgbouncer.rules",
    text: include_str!(
        "../../../../charms/pgbouncer-k8s/src/prometheus_alert_rules/pgbouncer.rules"
    ),
}];

/// The dashboards, from the charm directory.
pub const DASHBOARDS: &[CharmFile] = &[CharmFile {
    path: "src/grafana_dashboards/pgbouncer-metrics.json",
    text: include_str!(
        "../../../../charms/pgbouncer-k8s/src/grafana_dashboards/pgbouncer-metrics.json"
    ),
}];

/// The scrape jobs: the exporter of every unit.
pub fn jobs() -> [ScrapeJob; 1] {
    [ScrapeJob::new(EXPORTER_PORT)]
}

/// Runs the exporter beside this unit's processes, once the console's stats
/// user has its password: the binary the charm ships is pushed into the
/// container, the password into a file only the workload's user reads.
/// A charm without the binary serves no metrics.
pub fn serve_exporter(
    hook: &mut Hook<'_>,
    deps: &Deps,
    shared: &SharedConfig,
    address: &str,
    password: &str,
) -> anyhow::Result<()> {
    let binary = hook.context().charm_dir.join(EXPORTER_BINARY);
    let Ok(meta) = std::fs::metadata(&binary) else {
        return Ok(());
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let stamp = format!("{} {modified}", meta.len());
    let listen = format!("{address}:{EXPORTER_PORT}");
    let user = stats_user(hook.app());
    let exporter = Exporter {
        binary: &binary,
        stamp: &stamp,
        listen: &listen,
        pgbouncer_port: shared.listen_port(),
        user: &user,
        password,
    };
    if deps
        .workload
        .apply_exporter(hook.container(CONTAINER), &exporter)?
    {
        hook.log(LogLevel::Info, "started the PgBouncer exporter")?;
    }
    Ok(())
}

/// `metrics-endpoint` and `grafana-dashboard`: this unit's address, and
/// (leader) the jobs, rules and dashboards.
pub fn publish(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    if !cos_interface::related(hook)? {
        return Ok(Handled::Done);
    }
    let address = own_address(hook)?;
    let offer = Observability {
        jobs: &jobs(),
        rules: RULES,
        dashboards: DASHBOARDS,
    };
    cos_interface::publish(hook, CHARM_NAME, &address, &offer)?;
    Ok(Handled::Done)
}
