//! A Python `ops` charm, unmodified, on the local model: install, leader-elected,
//! config-changed, start, a peer relation and an application secret, over real
//! processes and the hook-tool shim. The test makes a venv with `ops` from PyPI.

mod common;

use common::Lab;

#[test]
fn an_ops_charm_runs_unmodified() {
    let mut lab = Lab::new("ops-peer");
    lab.deploy("ops-peer", "ops-peer", 2);
    let hooks = lab.settle();
    for expected in [
        "ops-peer/0 install",
        "ops-peer/0 leader-elected",
        "ops-peer/0 config-changed",
        "ops-peer/0 start",
        "ops-peer/1 leader-settings-changed",
    ] {
        assert!(
            hooks.contains(&expected.to_string()),
            "{expected} missing from {hooks:?}"
        );
    }
    let m = &lab.model;
    let peers = m.relation(1).unwrap();
    assert!(
        peers.app_bags["ops-peer"].data["token-id"].starts_with("secret:"),
        "{:?}",
        peers.app_bags
    );
    assert_eq!(peers.unit_bags["ops-peer/0"].data["greeting"], "hello");
    assert_eq!(
        peers.unit_bags["ops-peer/1"].data["token-seen"], "s3cret-token",
        "the follower read the app secret"
    );
    assert_eq!(
        m.applications["ops-peer"].status,
        charm::Status::Active("leading".into())
    );
    assert_eq!(
        m.unit("ops-peer/1").unwrap().status,
        charm::Status::Active("has the token".into())
    );
}
