//! The charm directory declares what the code uses, with the reference charm's
//! names and defaults.

use charm::metadata::CharmFiles;
use pgbouncer_k8s::config::{CharmConfig, Expose, PoolMode};
use pgbouncer_k8s::state::{BACKEND, DATABASE, PEERS};
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
    assert!(files.meta.containers.contains_key(CONTAINER));

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
