//! `prometheus_scrape`, the provider's side, as the published library
//! (`MetricsEndpointProvider`) writes it: the application bag holds
//! `scrape_jobs` (each job the library's default updated with the charm's
//! keys; a `*:PORT` target stands for every unit of the application),
//! `scrape_metadata` (the topology) and `alert_rules` (the rule files'
//! groups, renamed and labelled with the topology, plus the generic
//! `HostHealth` group); each unit's bag holds its address and name.

use crate::{CharmFile, CosError, Topology};
use charm::BagChanges;
use serde_json::{json, Map, Value};

/// App bag key: the scrape jobs (JSON list).
pub const SCRAPE_JOBS: &str = "scrape_jobs";
/// App bag key: the topology (JSON object).
pub const SCRAPE_METADATA: &str = "scrape_metadata";
/// App bag key: the alert rules (JSON `{"groups": [...]}`).
pub const ALERT_RULES: &str = "alert_rules";
/// Unit bag key: the address Prometheus scrapes.
pub const UNIT_ADDRESS: &str = "prometheus_scrape_unit_address";
/// Unit bag key: the unit's name.
pub const UNIT_NAME: &str = "prometheus_scrape_unit_name";

/// One scrape job: every unit of the application, on `port` and `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeJob {
    pub port: u16,
    pub metrics_path: &'static str,
    /// `http` or `https`; `None` leaves Prometheus' default (`http`).
    pub scheme: Option<&'static str>,
    /// Whether Prometheus skips verifying the target's certificate.
    pub insecure_skip_verify: bool,
}

impl ScrapeJob {
    /// An `http` job on `port`, at `/metrics`.
    pub fn new(port: u16) -> ScrapeJob {
        ScrapeJob {
            port,
            metrics_path: "/metrics",
            scheme: None,
            insecure_skip_verify: false,
        }
    }

    /// The job as the library publishes it.
    pub fn to_json(&self) -> Value {
        let mut job = Map::new();
        job.insert("metrics_path".into(), json!(self.metrics_path));
        job.insert(
            "static_configs".into(),
            json!([{"targets": [format!("*:{}", self.port)]}]),
        );
        if let Some(scheme) = self.scheme {
            job.insert("scheme".into(), json!(scheme));
        }
        if self.insecure_skip_verify {
            job.insert("tls_config".into(), json!({"insecure_skip_verify": true}));
        }
        Value::Object(job)
    }
}

/// The unit bag: this unit's address and name.
pub fn unit_bag(address: &str, unit: &str) -> BagChanges {
    BagChanges::new()
        .set(UNIT_ADDRESS, address)
        .set(UNIT_NAME, unit)
}

/// The application bag: jobs, metadata and alert rules.
pub fn app_bag(
    topology: &Topology,
    jobs: &[ScrapeJob],
    rules: &[CharmFile],
) -> Result<BagChanges, CosError> {
    let jobs: Vec<Value> = jobs.iter().map(ScrapeJob::to_json).collect();
    Ok(BagChanges::new()
        .set(SCRAPE_JOBS, Value::Array(jobs).to_string())
        .set(SCRAPE_METADATA, metadata(topology).to_string())
        .set(ALERT_RULES, alert_rules(topology, rules)?.to_string()))
}

/// `scrape_metadata`: model, model_uuid, application, unit, charm_name.
pub fn metadata(t: &Topology) -> Value {
    json!({
        "model": t.model,
        "model_uuid": t.model_uuid,
        "application": t.application,
        "unit": t.unit,
        "charm_name": t.charm_name,
    })
}

/// The alert rules of `files` (Prometheus rule files: `groups` of rules),
/// each group renamed `<identifier>_<name>_rules` and each rule given the
/// topology labels it lacks (never `juju_unit`), then the generic
/// `HostHealth` group.
pub fn alert_rules(t: &Topology, files: &[CharmFile]) -> Result<Value, CosError> {
    let mut groups = Vec::new();
    for file in files {
        let bad = |reason: String| CosError::Rules {
            file: file.path.to_string(),
            reason,
        };
        let doc: Value = yaml_serde::from_str(file.text).map_err(|e| bad(e.to_string()))?;
        let list = doc["groups"]
            .as_array()
            .ok_or_else(|| bad("no `groups` list".into()))?;
        for group in list {
            let name = group["name"]
                .as_str()
                .ok_or_else(|| bad("a group without a name".into()))?;
            let rules = group["rules"]
                .as_array()
                .ok_or_else(|| bad(format!("group {name} has no `rules` list")))?;
            groups.push(labelled_group(t, name, rules));
        }
    }
    groups.push(labelled_group(t, "HostHealth", &host_health()));
    Ok(json!({ "groups": groups }))
}

fn labelled_group(t: &Topology, name: &str, rules: &[Value]) -> Value {
    let mut full = format!("{}_{name}", t.identifier());
    if !full.ends_with("_rules") {
        full.push_str("_rules");
    }
    let full: String = full
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                true => c,
                false => '_',
            },
        )
        .collect();
    let topology = [
        ("juju_model", &t.model),
        ("juju_model_uuid", &t.model_uuid),
        ("juju_application", &t.application),
        ("juju_charm", &t.charm_name),
    ];
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let mut rule = rule.clone();
            if let Some(obj) = rule.as_object_mut() {
                if let Some(expr) = obj.get("expr").and_then(Value::as_str) {
                    let expr = expr
                        .replace("%%juju_topology%%,", "")
                        .replace("%%juju_topology%%", "");
                    obj.insert("expr".into(), json!(expr));
                }
                let labels = obj.entry("labels").or_insert_with(|| json!({}));
                if let Some(labels) = labels.as_object_mut() {
                    for (k, v) in topology {
                        labels.entry(k).or_insert_with(|| json!(v));
                    }
                }
            }
            rule
        })
        .collect();
    json!({ "name": full, "rules": rules })
}

/// The library's generic rules: a target down, or no target at all.
fn host_health() -> Vec<Value> {
    vec![
        json!({
            "alert": "HostDown",
            "expr": "up < 1",
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Host '{{ $labels.instance }}' is down.",
                "description": "Host '{{ $labels.instance }}' is down, failed to scrape.\n  VALUE = {{ $value }}\n  LABELS = {{ $labels }}",
            },
        }),
        json!({
            "alert": "HostMetricsMissing",
            "expr": "absent(up)",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Metrics not received from host '{{ $labels.instance }}', failed to remote write.",
                "description": "Metrics not received from host '{{ $labels.instance }}', failed to remote write.\n  VALUE = {{ $value }}\n  LABELS = {{ $labels }}",
            },
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology {
            model: "prod".into(),
            model_uuid: "3f1c2a9b-1111-2222-3333-444455556666".into(),
            application: "postgresql-k8s".into(),
            unit: "postgresql-k8s/0".into(),
            charm_name: "postgresql-k8s".into(),
        }
    }

    #[test]
    fn jobs_are_the_librarys_default_updated() {
        let mut patroni = ScrapeJob::new(8008);
        patroni.scheme = Some("http");
        patroni.insecure_skip_verify = true;
        assert_eq!(
            ScrapeJob::new(9187).to_json(),
            json!({"metrics_path": "/metrics", "static_configs": [{"targets": ["*:9187"]}]})
        );
        assert_eq!(
            patroni.to_json(),
            json!({"metrics_path": "/metrics", "static_configs": [{"targets": ["*:8008"]}],
                   "scheme": "http", "tls_config": {"insecure_skip_verify": true}})
        );
    }

    #[test]
    fn groups_are_renamed_and_labelled() {
        let file = CharmFile {
            path: "src/prometheus_alert_rules/patroni.rules",
            text: "groups:\n- name: Patroni Health\n  rules:\n  - alert: NoPrimary\n    expr: sum(patroni_primary{%%juju_topology%%}) == 0\n    labels:\n      severity: critical\n      juju_charm: kept\n",
        };
        let rules = alert_rules(&topology(), &[file]).unwrap();
        let groups = rules["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0]["name"],
            "prod_3f1c2a9b_postgresql_k8s_Patroni_Health_rules"
        );
        let rule = &groups[0]["rules"][0];
        assert_eq!(rule["expr"], "sum(patroni_primary{}) == 0");
        assert_eq!(rule["labels"]["juju_model"], "prod");
        assert_eq!(rule["labels"]["juju_application"], "postgresql-k8s");
        assert_eq!(rule["labels"]["juju_charm"], "kept");
        assert!(rule["labels"].get("juju_unit").is_none());
        assert_eq!(
            groups[1]["name"],
            "prod_3f1c2a9b_postgresql_k8s_HostHealth_rules"
        );
        assert_eq!(groups[1]["rules"][0]["expr"], "up < 1");
    }

    #[test]
    fn a_broken_rule_file_is_named() {
        let file = CharmFile {
            path: "src/prometheus_alert_rules/x.rules",
            text: "rules: []",
        };
        let err = alert_rules(&topology(), &[file]).unwrap_err().to_string();
        assert!(err.contains("x.rules"), "{err}");
    }

    #[test]
    fn metadata_has_the_topology() {
        assert_eq!(
            metadata(&topology()),
            json!({"model": "prod", "model_uuid": "3f1c2a9b-1111-2222-3333-444455556666",
                   "application": "postgresql-k8s", "unit": "postgresql-k8s/0",
                   "charm_name": "postgresql-k8s"})
        );
    }
}
