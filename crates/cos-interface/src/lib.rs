//! The observability relations both charms provide, as the published COS
//! libraries write them: `metrics-endpoint` (`prometheus_scrape`: scrape jobs,
//! scrape metadata and alert rules in the application bag, each unit's address
//! in its own bag) and `grafana-dashboard` (`grafana_dashboard`: the charm's
//! dashboards, xz-compressed and base64-encoded, in the application bag), and
//! the one they require, `logging` (`loki_push_api`: each Loki unit's push URL
//! read, the logs forwarded by Pebble log targets).
//!
//! [`scrape`] and [`dashboard`] are pure: they turn the charm's jobs, rule
//! files and dashboard files into the bags' values. [`publish`] writes them on
//! every relation of both endpoints. [`logging`] reads the provider units'
//! endpoints and makes the forwarding layer.

pub mod dashboard;
pub mod logging;
pub mod scrape;

use charm::{BagChanges, Hook};

/// The `prometheus_scrape` endpoint's name in both charms.
pub const METRICS_ENDPOINT: &str = "metrics-endpoint";
/// The `grafana_dashboard` endpoint's name in both charms.
pub const GRAFANA_DASHBOARD: &str = "grafana-dashboard";

/// Both endpoints.
pub const ENDPOINTS: [&str; 2] = [METRICS_ENDPOINT, GRAFANA_DASHBOARD];

/// A rule or dashboard file the charm embeds, or its contents.
#[derive(Debug, thiserror::Error)]
pub enum CosError {
    #[error("alert rule file {file}: {reason}")]
    Rules { file: String, reason: String },
    #[error("dashboard {file}: {reason}")]
    Dashboard { file: String, reason: String },
    #[error(transparent)]
    Hook(#[from] charm::Error),
    #[error(transparent)]
    Pebble(#[from] pebble_api::PebbleError),
}

/// Where the metrics come from: Juju's topology, as the libraries record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub model: String,
    pub model_uuid: String,
    pub application: String,
    pub unit: String,
    pub charm_name: String,
}

impl Topology {
    /// The topology of the unit running `hook`, for the charm `charm_name`.
    pub fn of(hook: &Hook<'_>, charm_name: &str) -> Topology {
        let ctx = hook.context();
        Topology {
            model: ctx.model_name.clone(),
            model_uuid: ctx.model_uuid.clone(),
            application: ctx.app.clone(),
            unit: ctx.unit.clone(),
            charm_name: charm_name.to_string(),
        }
    }

    /// `<model>_<first 8 characters of the model uuid>_<application>`: the
    /// prefix of every alert group name.
    pub fn identifier(&self) -> String {
        let short: String = self.model_uuid.chars().take(8).collect();
        format!("{}_{short}_{}", self.model, self.application)
    }
}

/// A file embedded in the charm: its path relative to the charm directory
/// and its text.
#[derive(Clone, Copy, Debug)]
pub struct CharmFile {
    pub path: &'static str,
    pub text: &'static str,
}

impl CharmFile {
    /// The file's name without its directory and last extension.
    pub fn stem(&self) -> &str {
        let name = self.path.rsplit('/').next().unwrap_or(self.path);
        name.split_once('.').map_or(name, |(stem, _)| stem)
    }
}

/// What a charm offers for observability.
#[derive(Clone, Debug)]
pub struct Observability<'a> {
    pub jobs: &'a [scrape::ScrapeJob],
    /// Alert rule files (`src/prometheus_alert_rules/*.rules`).
    pub rules: &'a [CharmFile],
    /// Dashboards (`src/grafana_dashboards/*.json`).
    pub dashboards: &'a [CharmFile],
}

/// Whether any `metrics-endpoint` or `grafana-dashboard` relation exists.
pub fn related(hook: &mut Hook<'_>) -> Result<bool, CosError> {
    for endpoint in ENDPOINTS {
        if !hook.relations(endpoint)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes the charm's observability offer on every `metrics-endpoint` and
/// `grafana-dashboard` relation: this unit's address and name in its own
/// bag, and (leader) the jobs, metadata, rules and dashboards in the
/// application bag. Bags already holding the same content are not written;
/// the dashboards' random `uuid` changes only with the dashboards.
pub fn publish(
    hook: &mut Hook<'_>,
    charm_name: &str,
    address: &str,
    offer: &Observability<'_>,
) -> Result<(), CosError> {
    let topology = Topology::of(hook, charm_name);
    let leader = hook.is_leader()?;
    let scrape_relations = hook.relations(METRICS_ENDPOINT)?;
    let dashboard_relations = hook.relations(GRAFANA_DASHBOARD)?;
    let unit = hook.unit().to_string();
    for relation in &scrape_relations {
        hook.update_unit_bag(relation, scrape::unit_bag(address, &unit))?;
    }
    if !leader {
        return Ok(());
    }
    if !scrape_relations.is_empty() {
        let bag = scrape::app_bag(&topology, offer.jobs, offer.rules)?;
        for relation in &scrape_relations {
            hook.update_app_bag(relation, bag.clone())?;
        }
    }
    if !dashboard_relations.is_empty() {
        let templates = dashboard::templates(&topology, offer.dashboards)?;
        for relation in &dashboard_relations {
            let current = hook.local_app_bag(relation)?.get(dashboard::KEY).cloned();
            if dashboard::same_templates(current.as_deref(), &templates) {
                continue;
            }
            let value = dashboard::bag_value(&templates);
            hook.update_app_bag(relation, BagChanges::new().set(dashboard::KEY, value))?;
        }
    }
    Ok(())
}
