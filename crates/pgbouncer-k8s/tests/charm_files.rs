//! The charm directory declares what the code uses, with the reference charm's
//! names and defaults.

use charm::metadata::CharmFiles;
use pgbouncer_k8s::config::{CharmConfig, Expose, PoolMode};
use pgbouncer_k8s::state::{BACKEND, CERTIFICATES, DATABASE, PEERS};
use pgbouncer_k8s::workload::CONTAINER;
use std::path::Path;

#[test]
fn metadata_and_config_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charms/pgbouncer-k8s");
    let files = CharmFiles::load(&dir).unwrap();
    assert_eq!(files.meta.name, "pgbouncer-k8s");
    assert_eq!(files.meta.interface(DATABASE), Some("postgresql_client"));
    assert_eq!(files.meta.interface(BACKEND), Some("postgresql_client"));
    assert_eq!(files.meta.requires[BACKEND].limit, Some(1));
    assert!(files.meta.is_peer(PEERS));
    let tls = &files.meta.requires[CERTIFICATES];
    assert_eq!(tls.interface, "tls-certificates");
    assert_eq!((tls.limit, tls.optional), (Some(1), true));
    assert!(files.meta.containers.contains_key(CONTAINER));
    assert_eq!(files.meta.assumes, [serde_json::json!("k8s-api")]);

    let defaults = files.config.defaults();
    files.config.check(&defaults).unwrap();
    let config = CharmConfig::from_raw(&defaults).unwrap();
    assert_eq!(config.listen_port, 6432);
    assert_eq!(config.pool_mode, PoolMode::Session);
    assert_eq!(
        (config.max_db_connections, config.max_prepared_statements),
        (100, 100)
    );
    assert_eq!(config.expose, Expose::No);
    assert_eq!(
        CharmConfig::from_raw(&defaults),
        CharmConfig::from_raw(&serde_json::Map::new()),
        "code and config.yaml agree"
    );
}

#[test]
fn actions_have_the_reference_names_and_parameters() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charms/pgbouncer-k8s");
    let files = CharmFiles::load(&dir).unwrap();
    let names: Vec<&str> = files.actions.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["pre-upgrade-check", "resume-upgrade", "set-tls-private-key"]
    );
    let key = &files.actions["set-tls-private-key"];
    assert_eq!(key.params["private-key"]["type"], "string");
    assert!(
        key.defaults().is_empty(),
        "no key is the default: one is generated"
    );
    assert!(files.actions["pre-upgrade-check"].params.is_empty());
    assert!(files.actions["resume-upgrade"].params.is_empty());
    // charmcraft packs the actions.yaml beside charmcraft.yaml, and the
    // exporter the charm pushes into its container beside `dispatch`.
    let packed = std::fs::read_to_string(dir.join("charmcraft.yaml")).unwrap();
    assert!(
        packed.contains("bin/pgbouncer-k8s: dispatch")
            && packed.contains("bin/pgbouncer-exporter: pgbouncer-exporter"),
        "{packed}"
    );
}
