//! `loki_push_api`, the requirer's side, as the published library's Pebble
//! log forwarder (`LogForwarder`) speaks it: each provider (Loki) unit
//! publishes `endpoint`, JSON `{"url": "<push URL>"}`, in its unit bag; the
//! requirer's leader publishes its topology (`metadata`) and its LogQL alert
//! rules (`alert_rules`, `{}` when it has none) in the application bag. The
//! logs travel through Pebble: a layer `<container>-log-forwarding` with one
//! `loki` log target per provider unit (named after it), taking every
//! service, labelled with the topology; a unit that left keeps its target,
//! disabled (`services: [-all]`), since a layer cannot remove one.

use crate::{scrape, CosError, Topology};
use charm::{BagChanges, Hook, LogLevel, Status};
use pebble_api::{Layer, LogTarget, Pebble, PebbleResult};
use serde_json::Value;
use std::collections::BTreeMap;

/// The endpoint's name in both charms.
pub const LOGGING: &str = "logging";
/// Provider unit bag key: the push URL (JSON `{"url": ...}`).
pub const ENDPOINT: &str = "endpoint";
/// Requirer app bag key: the topology (JSON object).
pub const METADATA: &str = "metadata";
/// Requirer app bag key: the LogQL alert rules (JSON).
pub const ALERT_RULES: &str = "alert_rules";

/// A provider unit whose `endpoint` cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub unit: String,
    pub reason: String,
}

/// What the provider units publish: each usable push URL by unit name, and
/// the units whose `endpoint` is unusable. A unit that has not published yet
/// is in neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub urls: BTreeMap<String, String>,
    pub malformed: Vec<Malformed>,
}

/// The push URL in an `endpoint` value.
pub fn parse_endpoint(text: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("`endpoint` is not JSON ({e})"))?;
    let url = value
        .get("url")
        .and_then(Value::as_str)
        .ok_or("`endpoint` has no `url` string")?;
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.contains(char::is_whitespace)
    {
        return Err(format!("`endpoint` has no http(s) URL: {url:?}"));
    }
    Ok(url.to_string())
}

/// Every provider unit's endpoint, over every `logging` relation (Juju
/// hides a broken relation, and a departed unit, from this hook).
pub fn endpoints(hook: &mut Hook<'_>) -> Result<Endpoints, CosError> {
    let mut found = Endpoints::default();
    for relation in hook.relations(LOGGING)? {
        for unit in hook.relation_units(&relation)? {
            let bag = charm::Bag::Unit(unit.clone());
            let Some(text) = hook.bag(&relation, &bag)?.get(ENDPOINT).cloned() else {
                continue;
            };
            match parse_endpoint(&text) {
                Ok(url) => {
                    found.urls.insert(unit, url);
                }
                Err(reason) => found.malformed.push(Malformed { unit, reason }),
            }
        }
    }
    Ok(found)
}

/// The labels of every line: the library's, with the topology.
pub fn labels(t: &Topology) -> BTreeMap<String, String> {
    BTreeMap::from(
        [
            ("product", "Juju".to_string()),
            ("charm", t.charm_name.clone()),
            ("juju_model", t.model.clone()),
            ("juju_model_uuid", t.model_uuid.clone()),
            ("juju_application", t.application.clone()),
            ("juju_unit", t.unit.clone()),
            ("job", format!("juju_{}", t.identifier())),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
}

/// The target towards one provider unit: every service, labelled.
pub fn target(url: &str, t: &Topology) -> LogTarget {
    LogTarget {
        r#override: "replace".into(),
        kind: "loki".into(),
        location: url.into(),
        services: vec!["all".into()],
        labels: labels(t),
    }
}

/// A target turned off: no service, no labels, its location kept.
pub fn disabled(location: &str) -> LogTarget {
    LogTarget {
        r#override: "replace".into(),
        kind: "loki".into(),
        location: location.into(),
        services: vec!["-all".into()],
        labels: BTreeMap::new(),
    }
}

/// The label of the forwarding layer in `container`.
pub fn layer_label(container: &str) -> String {
    format!("{container}-log-forwarding")
}

/// The layer that makes `current` (the plan's log targets) forward to
/// exactly the usable `endpoints`: a target for each new or moved provider
/// unit, and this unit's targets towards units no longer there disabled.
/// The targets of units whose endpoint is malformed stay as they are, and so
/// do targets this unit did not make. `None` when nothing changes.
pub fn forwarding_layer(
    current: &BTreeMap<String, LogTarget>,
    endpoints: &Endpoints,
    t: &Topology,
) -> Option<Layer> {
    let mut layer = Layer {
        summary: "log forwarding".into(),
        description: "the workload's logs pushed to each Loki unit of the logging relation".into(),
        ..Layer::default()
    };
    for (unit, url) in &endpoints.urls {
        let wanted = target(url, t);
        if current.get(unit) != Some(&wanted) {
            layer.log_targets.insert(unit.clone(), wanted);
        }
    }
    for (name, existing) in current {
        let ours = existing.labels.get("juju_unit") == Some(&t.unit);
        let kept = endpoints.urls.contains_key(name)
            || endpoints.malformed.iter().any(|m| &m.unit == name);
        if ours && !kept {
            layer
                .log_targets
                .insert(name.clone(), disabled(&existing.location));
        }
    }
    (!layer.log_targets.is_empty()).then_some(layer)
}

/// Makes `container` forward to exactly the usable `endpoints`
/// ([`forwarding_layer`] over its plan); returns whether its plan changed.
pub fn forward_in(
    pebble: &mut dyn Pebble,
    container: &str,
    endpoints: &Endpoints,
    t: &Topology,
) -> PebbleResult<bool> {
    let plan = pebble.plan()?;
    let Some(layer) = forwarding_layer(&plan.log_targets, endpoints, t) else {
        return Ok(false);
    };
    pebble.add_layer(&layer_label(container), &layer, true)?;
    Ok(true)
}

/// The whole of the requirer's step, as both charms run it: the leader
/// [`publish`]es; each unit reports the provider units whose `endpoint` it
/// cannot use (in its `active` message) and, when `container` is up, makes
/// it forward to the usable ones ([`forward_in`]), logging the change.
pub fn forward(hook: &mut Hook<'_>, charm_name: &str, container: &str) -> Result<(), CosError> {
    publish(hook, charm_name)?;
    let endpoints = endpoints(hook)?;
    for bad in &endpoints.malformed {
        hook.add_problem(Status::Active(format!(
            "logs not forwarded to {}: {}",
            bad.unit, bad.reason
        )))?;
    }
    let topology = Topology::of(hook, charm_name);
    let pebble = hook.container(container);
    if !pebble.can_connect() {
        return Ok(());
    }
    if forward_in(pebble, container, &endpoints, &topology)? {
        let units: Vec<&str> = endpoints.urls.keys().map(String::as_str).collect();
        hook.log(
            LogLevel::Info,
            &format!("log forwarding now to [{}]", units.join(", ")),
        )?;
    }
    Ok(())
}

/// Leader: the topology and the (empty) alert rules on every `logging`
/// relation, as the library's requirer publishes them.
pub fn publish(hook: &mut Hook<'_>, charm_name: &str) -> Result<(), CosError> {
    let relations = hook.relations(LOGGING)?;
    if relations.is_empty() || !hook.is_leader()? {
        return Ok(());
    }
    let topology = Topology::of(hook, charm_name);
    let bag = BagChanges::new()
        .set(METADATA, scrape::metadata(&topology).to_string())
        .set(ALERT_RULES, "{}");
    for relation in &relations {
        hook.update_app_bag(relation, bag.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology {
            model: "prod".into(),
            model_uuid: "3f1c2a9b-1111-2222-3333-444455556666".into(),
            application: "pgbouncer-k8s".into(),
            unit: "pgbouncer-k8s/0".into(),
            charm_name: "pgbouncer-k8s".into(),
        }
    }

    const URL: &str = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push";

    #[test]
    fn endpoints_are_json_with_an_http_url() {
        assert_eq!(
            parse_endpoint(&format!(r#"{{"url": "{URL}"}}"#)).unwrap(),
            URL
        );
        for (bad, says) in [
            ("http://loki:3100", "not JSON"),
            (r#"{"address": "x"}"#, "no `url`"),
            (r#"{"url": 3100}"#, "no `url`"),
            (r#"{"url": "loki:3100/push"}"#, "no http(s) URL"),
            (r#"{"url": "http://lo ki/push"}"#, "no http(s) URL"),
        ] {
            let err = parse_endpoint(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn targets_carry_the_topology() {
        let t = target(URL, &topology());
        assert_eq!(t.kind, "loki");
        assert_eq!(t.services, ["all"]);
        assert_eq!(t.labels["juju_unit"], "pgbouncer-k8s/0");
        assert_eq!(t.labels["charm"], "pgbouncer-k8s");
        assert_eq!(t.labels["product"], "Juju");
        assert_eq!(t.labels["job"], "juju_prod_3f1c2a9b_pgbouncer-k8s");
        assert_eq!(t.labels.len(), 7);
    }

    #[test]
    fn the_layer_adds_moves_and_disables_only_what_changed() {
        let t = topology();
        let mut endpoints = Endpoints::default();
        endpoints.urls.insert("loki/0".into(), URL.into());
        let layer = forwarding_layer(&BTreeMap::new(), &endpoints, &t).unwrap();
        assert_eq!(layer.log_targets["loki/0"], target(URL, &t));

        let mut current = layer.log_targets.clone();
        assert!(forwarding_layer(&current, &endpoints, &t).is_none());

        // loki/0 moves, loki/1 arrives, a foreign target is left alone.
        let foreign = target(
            "http://elsewhere/push",
            &Topology {
                unit: "x/0".into(),
                ..t.clone()
            },
        );
        current.insert("mine-not".into(), foreign);
        endpoints
            .urls
            .insert("loki/0".into(), "http://new:3100/loki/api/v1/push".into());
        endpoints.urls.insert("loki/1".into(), URL.into());
        let layer = forwarding_layer(&current, &endpoints, &t).unwrap();
        assert_eq!(layer.log_targets.len(), 2);
        assert_eq!(
            layer.log_targets["loki/0"].location,
            "http://new:3100/loki/api/v1/push"
        );

        // loki/0 leaves: disabled, its location kept; disabled twice is no change.
        let mut current = BTreeMap::from([("loki/0".to_string(), target(URL, &t))]);
        let gone = Endpoints::default();
        let layer = forwarding_layer(&current, &gone, &t).unwrap();
        assert_eq!(layer.log_targets["loki/0"], disabled(URL));
        current.insert("loki/0".into(), disabled(URL));
        assert!(forwarding_layer(&current, &gone, &t).is_none());
    }

    #[test]
    fn a_malformed_endpoint_changes_nothing_for_its_unit() {
        let t = topology();
        let current = BTreeMap::from([("loki/0".to_string(), target(URL, &t))]);
        let endpoints = Endpoints {
            urls: BTreeMap::new(),
            malformed: vec![Malformed {
                unit: "loki/0".into(),
                reason: "`endpoint` is not JSON".into(),
            }],
        };
        assert!(forwarding_layer(&current, &endpoints, &t).is_none());
        assert!(forwarding_layer(&BTreeMap::new(), &endpoints, &t).is_none());
    }
}
