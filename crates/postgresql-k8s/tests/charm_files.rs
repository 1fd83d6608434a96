//! The charm directory declares what the code uses, with the reference charm's
//! names and defaults.

use charm::metadata::CharmFiles;
use postgresql_k8s::config::{CharmConfig, Profile, Resources, SyncNodeCount, SynchronousCommit};
use postgresql_k8s::state::{DATABASE, ETCD, PEERS};
use postgresql_k8s::workload::CONTAINER;
use std::path::Path;

const MACHINE: Resources = Resources {
    cpu_cores: 2,
    memory_bytes: 4 << 30,
};

#[test]
fn metadata_config_and_actions_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charms/postgresql-k8s");
    let files = CharmFiles::load(&dir).unwrap();
    assert_eq!(files.meta.name, "postgresql-k8s");
    assert!(files.meta.is_peer(PEERS));
    assert_eq!(files.meta.interface(DATABASE), Some("postgresql_client"));
    assert_eq!(files.meta.interface(ETCD), Some("etcd"));
    assert_eq!(files.meta.requires[ETCD].limit, Some(1));
    assert!(files.meta.containers.contains_key(CONTAINER));
    assert_eq!(files.meta.assumes, [serde_json::json!("k8s-api")]);

    let defaults = files.config.defaults();
    files.config.check(&defaults).unwrap();
    let config = CharmConfig::from_raw(&defaults, &MACHINE).unwrap();
    assert_eq!(config.synchronous_node_count, SyncNodeCount::All);
    assert!(config.synchronous_mode_strict);
    assert_eq!(config.synchronous_commit, SynchronousCommit::On);
    assert_eq!(config.profile, Profile::Production);
    assert_eq!(
        CharmConfig::from_raw(&defaults, &MACHINE),
        CharmConfig::from_raw(&serde_json::Map::new(), &MACHINE),
        "code and config.yaml agree"
    );

    for action in [
        "get-password",
        "set-password",
        "get-primary",
        "promote-to-primary",
    ] {
        assert!(files.actions.contains_key(action), "{action}");
    }
    assert_eq!(
        files.actions["get-password"].defaults()["username"],
        "operator"
    );
    assert!(files.actions["promote-to-primary"]
        .params
        .contains_key("force"));
}
