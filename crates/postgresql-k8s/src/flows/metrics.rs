//! What the `metrics-endpoint` and `grafana-dashboard` relations carry,
//! through `cos-interface`: the PostgreSQL exporter and Patroni's REST API
//! on every unit (Patroni's over `https` once the API serves TLS), the alert
//! rules and the dashboard. The exporter itself runs beside Patroni
//! (`Workload::apply_exporter`, from `update_config`).

use super::own_address;
use crate::patroni::API_PORT;
use crate::state;
use crate::workload::EXPORTER_PORT;
use charm::{Handled, Hook};
use cos_interface::scrape::ScrapeJob;
use cos_interface::{CharmFile, Observability};

/// The charm's name, as the libraries record it.
pub const CHARM_NAME: &str = "postgresql-k8s";

/// The alert rules, from the charm directory.
pub const RULES: &[CharmFile] = &[
    CharmFile {
        path: "src/prometheus_alert_rules/patroni.rules",
        text: include_str!(
            "../../../../charms/postgresql-k8s/src/prometheus_alert_rules/patroni.rules"
        ),
    },
    CharmFile {
        path: "src/prometheus_alert_rules/postgresql.rules",
        text: include_str!(
            "../../../../charms/postgresql-k8s/src/prometheus_alert_rules/postgresql.rules"
        ),
    },
];

/// The dashboards, from the charm directory.
pub const DASHBOARDS: &[CharmFile] = &[CharmFile {
    path: "src/grafana_dashboards/postgresql-metrics.json",
    text: include_str!(
        "../../../../charms/postgresql-k8s/src/grafana_dashboards/postgresql-metrics.json"
    ),
}];

/// The scrape jobs: the exporter, and Patroni's `/metrics` (its scheme
/// follows the API's TLS; the certificate is the unit's own).
pub fn jobs(tls: bool) -> [ScrapeJob; 2] {
    let mut patroni = ScrapeJob::new(API_PORT);
    patroni.scheme = Some(if tls { "https" } else { "http" });
    patroni.insecure_skip_verify = true;
    [ScrapeJob::new(EXPORTER_PORT), patroni]
}

/// `metrics-endpoint` and `grafana-dashboard`: this unit's address, and
/// (leader) the jobs, rules and dashboards.
pub fn publish(hook: &mut Hook<'_>) -> anyhow::Result<()> {
    if !cos_interface::related(hook)? {
        return Ok(());
    }
    let address = own_address(hook)?;
    let tls = state::tls_material(hook)?.is_some();
    let offer = Observability {
        jobs: &jobs(tls),
        rules: RULES,
        dashboards: DASHBOARDS,
    };
    cos_interface::publish(hook, CHARM_NAME, &address, &offer)?;
    Ok(())
}

/// A `metrics-endpoint` or `grafana-dashboard` relation event.
pub fn changed(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    publish(hook)?;
    Ok(Handled::Done)
}
