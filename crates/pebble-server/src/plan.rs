//! Layers and the plan: parsing a layer, combining layers in order, validating the
//! result, and the command words a plan's commands are split into (its Go
//! durations are read by [`crate::timefmt`]).

use crate::timefmt::parse_go_duration;
use pebble_api::{Check, Layer, Plan, Service};
use std::time::Duration;

/// The layers added so far, in order, by label.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    layers: Vec<(String, Layer)>,
}

impl Layers {
    /// Adds `layer` under `label` (or, with `combine`, merges it into the layer with
    /// that label) and returns the new combined plan; nothing changes on an error.
    pub fn add(&mut self, label: &str, layer: Layer, combine: bool) -> Result<Plan, String> {
        check_overrides(label, &layer)?;
        let mut layers = self.layers.clone();
        match layers.iter_mut().find(|(l, _)| l == label) {
            Some(_) if !combine => return Err(format!("layer {label:?} already exists")),
            Some((_, existing)) => merge_layer(existing, layer),
            None => layers.push((label.to_string(), layer)),
        }
        let plan = combine_layers(layers.iter().map(|(_, l)| l));
        validate(&plan)?;
        self.layers = layers;
        Ok(plan)
    }
}

/// Parses a layer (YAML, so JSON too).
pub(crate) fn parse_layer(text: &str) -> Result<Layer, String> {
    if text.trim().is_empty() {
        return Ok(Layer::default());
    }
    yaml_serde::from_str(text).map_err(|e| format!("cannot parse layer YAML: {e}"))
}

/// The plan as YAML.
pub(crate) fn plan_yaml(plan: &Plan) -> String {
    yaml_serde::to_string(plan).unwrap_or_default()
}

/// Every service and check in a layer must say how it overrides.
fn check_overrides(label: &str, layer: &Layer) -> Result<(), String> {
    for (name, service) in &layer.services {
        match service.r#override.as_str() {
            "merge" | "replace" => {}
            "" => {
                return Err(format!(
                    "layer {label:?} must define \"override\" for service {name:?}"
                ))
            }
            other => {
                return Err(format!(
                    "layer {label:?} has invalid \"override\" value {other:?} for service {name:?}"
                ))
            }
        }
    }
    for (name, check) in &layer.checks {
        match check.r#override.as_str() {
            "merge" | "replace" => {}
            _ => {
                return Err(format!(
                    "layer {label:?} must define \"override\" (merge or replace) for check {name:?}"
                ))
            }
        }
    }
    for (name, target) in &layer.log_targets {
        match target.r#override.as_str() {
            "merge" | "replace" => {}
            "" => {
                return Err(format!(
                    "layer {label:?} must define \"override\" for log target {name:?}"
                ))
            }
            other => {
                return Err(format!(
                "layer {label:?} has invalid \"override\" value {other:?} for log target {name:?}"
            ))
            }
        }
        if let Some(key) = target.labels.keys().find(|k| k.starts_with("pebble_")) {
            return Err(format!(
                "log target {name:?}: label {key:?} uses reserved prefix \"pebble_\""
            ));
        }
    }
    Ok(())
}

/// Combines layers in order into a plan.
pub(crate) fn combine_layers<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Plan {
    let mut combined = Layer::default();
    for layer in layers {
        merge_layer(&mut combined, layer.clone());
    }
    Plan {
        services: combined.services,
        checks: combined.checks,
        log_targets: combined.log_targets,
    }
}

/// Merges `layer` on top of `base`, service by service and check by check.
fn merge_layer(base: &mut Layer, layer: Layer) {
    if !layer.summary.is_empty() {
        base.summary = layer.summary;
    }
    if !layer.description.is_empty() {
        base.description = layer.description;
    }
    for (name, service) in layer.services {
        match base.services.get_mut(&name) {
            Some(old) if service.r#override == "merge" => merge_service(old, service),
            _ => {
                base.services.insert(name, service);
            }
        }
    }
    for (name, check) in layer.checks {
        match base.checks.get_mut(&name) {
            Some(old) if check.r#override == "merge" => merge_check(old, check),
            _ => {
                base.checks.insert(name, check);
            }
        }
    }
    pebble_api::merge_log_targets(&mut base.log_targets, &layer.log_targets);
}

fn set(field: &mut String, value: String) {
    if !value.is_empty() {
        *field = value;
    }
}

/// Overlays the non-empty fields of `new`; lists and maps are extended.
fn merge_service(old: &mut Service, new: Service) {
    set(&mut old.r#override, new.r#override);
    set(&mut old.summary, new.summary);
    set(&mut old.command, new.command);
    set(&mut old.startup, new.startup);
    for (list, more) in [
        (&mut old.after, new.after),
        (&mut old.before, new.before),
        (&mut old.requires, new.requires),
    ] {
        for item in more {
            if !list.contains(&item) {
                list.push(item);
            }
        }
    }
    old.environment.extend(new.environment);
    set(&mut old.user, new.user);
    set(&mut old.group, new.group);
    set(&mut old.working_dir, new.working_dir);
    set(&mut old.on_success, new.on_success);
    set(&mut old.on_failure, new.on_failure);
    set(&mut old.backoff_delay, new.backoff_delay);
    if new.backoff_factor.is_some() {
        old.backoff_factor = new.backoff_factor;
    }
    set(&mut old.backoff_limit, new.backoff_limit);
    set(&mut old.kill_delay, new.kill_delay);
}

fn merge_check(old: &mut Check, new: Check) {
    set(&mut old.r#override, new.r#override);
    set(&mut old.level, new.level);
    set(&mut old.period, new.period);
    set(&mut old.timeout, new.timeout);
    if new.threshold.is_some() {
        old.threshold = new.threshold;
    }
    if let Some(tcp) = new.tcp {
        let host = tcp
            .host
            .clone()
            .or_else(|| old.tcp.as_ref().and_then(|t| t.host.clone()));
        old.tcp = Some(pebble_api::TcpCheck { host, ..tcp });
    }
    if new.http.is_some() {
        old.http = new.http;
    }
    if new.exec.is_some() {
        old.exec = new.exec;
    }
}

/// What a combined plan must satisfy before it is accepted.
fn validate(plan: &Plan) -> Result<(), String> {
    for (name, service) in &plan.services {
        if service.command.trim().is_empty() {
            return Err(format!("plan must define \"command\" for service {name:?}"));
        }
        split_words(&service.command)
            .map_err(|e| format!("cannot parse service {name:?} command: {e}"))?;
        if !matches!(service.startup.as_str(), "" | "enabled" | "disabled") {
            return Err(format!("invalid startup value {:?}", service.startup));
        }
        for action in [&service.on_success, &service.on_failure] {
            if !matches!(
                action.as_str(),
                "" | "restart" | "ignore" | "shutdown" | "success-shutdown" | "failure-shutdown"
            ) {
                return Err(format!("invalid action {action:?} for service {name:?}"));
            }
        }
        for duration in [
            &service.backoff_delay,
            &service.backoff_limit,
            &service.kill_delay,
        ] {
            if !duration.is_empty() {
                parse_go_duration(duration)
                    .map_err(|e| format!("invalid duration for service {name:?}: {e}"))?;
            }
        }
        for other in service.after.iter().chain(&service.before) {
            if !plan.services.contains_key(other) {
                return Err(format!(
                    "service {name:?} has dependency {other:?} which does not exist"
                ));
            }
        }
    }
    for (name, check) in &plan.checks {
        let kinds = [
            check.tcp.is_some(),
            check.http.is_some(),
            check.exec.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(format!(
                "plan must specify one of \"http\", \"tcp\" or \"exec\" for check {name:?}"
            ));
        }
        for duration in [&check.period, &check.timeout] {
            if !duration.is_empty() {
                parse_go_duration(duration)
                    .map_err(|e| format!("invalid duration for check {name:?}: {e}"))?;
            }
        }
        if let Some(exec) = &check.exec {
            split_words(&exec.command)
                .map_err(|e| format!("cannot parse check {name:?} command: {e}"))?;
        }
    }
    for (name, target) in &plan.log_targets {
        match target.kind.as_str() {
            "loki" => {}
            "" => {
                return Err(format!(
                    "plan must define \"type\" (\"loki\") for log target {name:?}"
                ))
            }
            other => {
                return Err(format!(
                    "log target {name:?} has unsupported type {other:?}, must be \"loki\""
                ))
            }
        }
        if target.location.is_empty() {
            return Err(format!(
                "plan must define \"location\" for log target {name:?}"
            ));
        }
        for word in &target.services {
            let service = word.strip_prefix('-').unwrap_or(word);
            if service != "all" && !plan.services.contains_key(service) {
                return Err(format!(
                    "log target {name:?} specifies unknown service {service:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The duration in `field`, or `default` when it is empty or invalid.
pub(crate) fn duration_or(field: &str, default: Duration) -> Duration {
    if field.is_empty() {
        return default;
    }
    parse_go_duration(field).unwrap_or(default)
}

/// Splits a command into words as a POSIX shell would, with quotes and backslashes
/// but no expansions.
pub(crate) fn split_words(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_words(r#"pgbouncer  /a\ b "c \"d\" $e" 'f\g' h"i"j"#).unwrap(),
            ["pgbouncer", "/a b", "c \"d\" $e", "f\\g", "hij"]
        );
        assert_eq!(split_words("x ''").unwrap(), ["x", ""]);
        assert!(split_words("a 'b").is_err());
        assert!(split_words("  ").is_err());
    }

    fn layer(yaml: &str) -> Layer {
        parse_layer(yaml).unwrap()
    }

    #[test]
    fn merges_and_replaces() {
        let mut layers = Layers::default();
        layers
            .add(
                "base",
                layer("services:\n  a:\n    override: replace\n    command: sleep 1\n    environment: {X: '1'}\n    after: [b]\n  b:\n    override: replace\n    command: b\n"),
                false,
            )
            .unwrap();
        let plan = layers
            .add(
                "top",
                layer(r#"{"services": {"a": {"override": "merge", "user": "u", "environment": {"Y": "2"}}, "b": {"override": "replace", "command": "c"}}}"#),
                false,
            )
            .unwrap();
        let a = &plan.services["a"];
        assert_eq!(a.command, "sleep 1");
        assert_eq!(a.user, "u");
        assert_eq!(a.environment.len(), 2);
        assert_eq!(plan.services["b"].command, "c");
        assert!(layers.add("top", Layer::default(), false).is_err());
        let err = layers
            .add("x", layer("services:\n  c:\n    command: x\n"), false)
            .unwrap_err();
        assert!(err.contains("override"), "{err}");
        let err = layers
            .add("x", layer("services:\n  c:\n    override: merge\n"), false)
            .unwrap_err();
        assert!(err.contains("command"), "{err}");
        let plan = layers
            .add(
                "top",
                layer("services:\n  b:\n    override: merge\n    startup: enabled\n"),
                true,
            )
            .unwrap();
        assert_eq!(plan.services["b"].startup, "enabled");
        assert_eq!(plan.services["b"].command, "c");
    }

    #[test]
    fn log_targets_merge_and_are_checked() {
        let mut layers = Layers::default();
        let base = "services:\n  a:\n    override: replace\n    command: sleep 1\nlog-targets:\n  loki/0:\n    override: replace\n    type: loki\n    location: http://l:3100/loki/api/v1/push\n    services: [all]\n    labels: {juju_unit: app/0}\n";
        layers.add("base", layer(base), false).unwrap();
        let plan = layers
            .add(
                "top",
                layer("log-targets:\n  loki/0:\n    override: merge\n    services: [-a]\n    labels: {product: Juju}\n"),
                false,
            )
            .unwrap();
        let t = &plan.log_targets["loki/0"];
        assert_eq!(t.location, "http://l:3100/loki/api/v1/push");
        assert_eq!(t.services, ["all", "-a"]);
        assert_eq!(t.labels.len(), 2);
        assert!(plan_yaml(&plan).contains("log-targets:"));
        let plan = layers
            .add(
                "top",
                layer("log-targets:\n  loki/0:\n    override: replace\n    type: loki\n    location: http://m/push\n    services: [-all]\n"),
                true,
            )
            .unwrap();
        assert_eq!(plan.log_targets["loki/0"].services, ["-all"]);
        assert!(plan.log_targets["loki/0"].labels.is_empty());

        for (bad, says) in [
            ("log-targets:\n  t:\n    type: loki\n    location: http://l/\n", "override"),
            ("log-targets:\n  t:\n    override: replace\n    location: http://l/\n", "type"),
            ("log-targets:\n  t:\n    override: replace\n    type: syslog\n    location: http://l/\n", "unsupported"),
            ("log-targets:\n  t:\n    override: replace\n    type: loki\n", "location"),
            ("log-targets:\n  t:\n    override: replace\n    type: loki\n    location: http://l/\n    services: [-nope]\n", "unknown service \"nope\""),
            ("log-targets:\n  t:\n    override: replace\n    type: loki\n    location: http://l/\n    labels: {pebble_service: x}\n", "reserved"),
        ] {
            let err = layers.add("bad", layer(bad), false).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(
            !layers.layers.iter().any(|(l, _)| l == "bad"),
            "nothing changed"
        );
    }
}
