//! The crate graph's rules (ARCHITECTURE.md, "Invariants"), checked on the
//! workspace's run-time dependency edges as `cargo metadata` reports them:
//! normal and build dependencies, followed transitively; dev-dependencies are
//! free. A forbidden edge fails the test with the path that breaks the rule.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The crates that use the SDK without being charms: they run or test charms.
/// Every other package that depends on `charm` is a charm.
const RUNS_CHARMS: &[&str] = &[
    "charm-testing",
    "e2e",
    "juju-rules",
    "local-model",
    "simulator",
];

/// What a charm must never need at run time.
const NOT_FOR_CHARMS: &[&str] = &[
    "charm-testing",
    "juju-rules",
    "local-model",
    "pebble-server",
    "simulator",
];

/// Crates that stand apart from the charm SDK.
const WITHOUT_SDK: &[&str] = &[
    "http-exchange",
    "k8s-incluster",
    "pebble-api",
    "pebble-server",
];

/// What the SDK itself may depend on inside the workspace.
const UNDER_SDK: &[&str] = &["http-exchange", "pebble-api"];

/// Each workspace package's run-time dependencies on other workspace packages.
fn workspace_edges() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let packages = metadata["packages"].as_array().expect("a package list");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("a package name").to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("a dependency list")
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .filter_map(|d| d["name"].as_str())
                .filter(|name| names.contains(*name))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// Every package `from` reaches through run-time edges, each with the path that
/// reaches it (`from -> ... -> it`).
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeMap<String, String> {
    let mut paths = BTreeMap::new();
    let mut todo = vec![(from.to_string(), from.to_string())];
    while let Some((package, path)) = todo.pop() {
        for dep in edges.get(&package).into_iter().flatten() {
            if !paths.contains_key(dep) {
                let path = format!("{path} -> {dep}");
                paths.insert(dep.clone(), path.clone());
                todo.push((dep.clone(), path));
            }
        }
    }
    paths
}

/// The paths by which `package` reaches any of `forbidden`.
fn violations(
    edges: &BTreeMap<String, BTreeSet<String>>,
    package: &str,
    forbidden: impl Fn(&str) -> bool,
) -> Vec<String> {
    reachable(edges, package)
        .into_iter()
        .filter(|(dep, _)| forbidden(dep))
        .map(|(_, path)| path)
        .collect()
}

#[test]
fn charms_never_depend_on_what_runs_or_tests_them() {
    let edges = workspace_edges();
    let charms: Vec<&String> = edges
        .iter()
        .filter(|(name, deps)| deps.contains("charm") && !RUNS_CHARMS.contains(&name.as_str()))
        .map(|(name, _)| name)
        .collect();
    assert!(
        charms.iter().any(|c| *c == "pgbouncer-k8s"),
        "the charms are found: {charms:?}"
    );
    let broken: Vec<String> = charms
        .iter()
        .flat_map(|charm| violations(&edges, charm, |dep| NOT_FOR_CHARMS.contains(&dep)))
        .collect();
    assert!(
        broken.is_empty(),
        "charms depend on {NOT_FOR_CHARMS:?}: {broken:?}"
    );
}

#[test]
fn charm_testing_is_a_dev_dependency_only() {
    let edges = workspace_edges();
    let broken: Vec<&String> = edges
        .iter()
        .filter(|(_, deps)| deps.contains("charm-testing"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        broken.is_empty(),
        "charm-testing is a run-time dependency of {broken:?}; take it in [dev-dependencies] \
         (the run-time model is juju-rules)"
    );
}

#[test]
fn pebble_and_kubernetes_crates_stand_apart_from_the_sdk() {
    let edges = workspace_edges();
    let broken: Vec<String> = WITHOUT_SDK
        .iter()
        .flat_map(|package| violations(&edges, package, |dep| dep == "charm"))
        .collect();
    assert!(broken.is_empty(), "these reach the charm SDK: {broken:?}");
}

#[test]
fn the_sdk_stands_on_pebble_api_and_http_exchange_alone() {
    let edges = workspace_edges();
    let broken = violations(&edges, "charm", |dep| !UNDER_SDK.contains(&dep));
    assert!(broken.is_empty(), "the SDK depends on {broken:?}");
}

#[test]
fn the_local_model_and_the_simulator_take_juju_rules_from_juju_rules() {
    let edges = workspace_edges();
    for package in ["local-model", "simulator"] {
        assert!(
            edges[package].contains("juju-rules"),
            "{package} depends on juju-rules"
        );
    }
}
