//! Snapshot tests of the rendered files. Each case renders the shared
//! configuration (`cfg_file`) and every process's ini file, and compares them with
//! the files in `tests/snapshots/` with `expect-test`. `UPDATE_EXPECT=1` rewrites
//! the snapshots; review the diff before committing it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{cases, Case};
use pgbouncer_k8s::pgb::ini::{render_process, ProcessSpec, SharedConfig};
use pgbouncer_k8s::pgb::Layout;
use std::path::Path;

/// Compares `actual` with `tests/snapshots/<name>` (an absolute path, so that
/// `expect-test` need not guess the workspace's root).
fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    expect_test::expect_file![path].assert_eq(actual);
}

fn render_case(case: &Case) {
    let layout = Layout::default();
    let shared = case.shared(&layout);
    let peering = case.peering();
    let cfg = shared.render();
    check(&format!("{}.cfg", case.name), &cfg);
    assert_eq!(
        SharedConfig::parse(&cfg).unwrap(),
        shared,
        "cfg_file reads back"
    );
    for index in 0..case.processes {
        let spec = ProcessSpec {
            index,
            count: case.processes,
            version: case.version,
            tls: case.tls,
            listen_addr: "127.0.0.1",
            layout: &layout,
            peering: &peering,
        };
        check(
            &format!("{}.{index}.ini", case.name),
            &render_process(&shared, &spec),
        );
    }
}

#[test]
fn every_case_matches_its_snapshot() {
    for case in cases() {
        render_case(&case);
    }
}

#[test]
fn version_gating_is_visible_in_the_files() {
    let layout = Layout::default();
    for case in cases() {
        let shared = case.shared(&layout);
        let peering = case.peering();
        let spec = ProcessSpec {
            index: 0,
            count: case.processes,
            version: case.version,
            tls: case.tls,
            listen_addr: "127.0.0.1",
            layout: &layout,
            peering: &peering,
        };
        let ini = render_process(&shared, &spec);
        let new = case.version.has_peers();
        assert_eq!(ini.contains("[peers]"), new, "{}", case.name);
        assert_eq!(ini.contains("peer_id"), new, "{}", case.name);
        assert_eq!(
            ini.contains("max_prepared_statements"),
            case.version.has_prepared_statements()
        );
        if !new {
            assert!(!ini.contains("auth_dbname"), "{}", case.name);
        }
        assert_eq!(ini.contains("client_tls_cert_file"), case.tls);
        assert!(
            !ini.contains("host=0 "),
            "peers point at socket directories"
        );
    }
}
