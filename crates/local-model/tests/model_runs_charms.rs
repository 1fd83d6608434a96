//! Charms run hook by hook on the model: each hook sees its unit's view, a
//! successful hook commits into the model, and the resolver picks what follows.
//! Data flows between units only through commits.

#![allow(clippy::unwrap_used)]

use charm::{Charm, Status};
use juju_rules::run;
use local_model::model::{Application, End, Model, RelationRecord, Unit};
use local_model::resolver::{done, next_hook};
use local_model::view::{commit, view};

fn model_with(app: &str, units: u32, peer: &str) -> Model {
    let mut m = Model {
        name: "test".into(),
        uuid: "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13".into(),
        juju_version: "3.6.4".into(),
        ..Model::default()
    };
    let mut a = Application::default();
    a.files.config = charm::metadata::parse_yaml(
        "options:\n  port: {type: int, default: 8080}\n  greeting: {type: string, default: hello}\n",
        "config.yaml",
    )
    .unwrap();
    for n in 0..units {
        a.units.insert(
            format!("{app}/{n}"),
            Unit {
                address: format!("127.0.1.{}", n + 1),
                ..Unit::default()
            }
            .into(),
        );
    }
    a.leader = Some(format!("{app}/0"));
    m.applications.insert(app.into(), a.into());
    m.next_relation_id = 1;
    let peers = RelationRecord {
        id: 1,
        ends: vec![End {
            app: app.into(),
            endpoint: peer.into(),
        }],
        scope: (0..units).map(|n| format!("{app}/{n}")).collect(),
        ..RelationRecord::default()
    };
    m.relations.push(peers.into());
    m
}

/// Runs the unit's hooks until it is up to date; returns the hooks run.
fn settle(model: &mut Model, unit: &str, charm: &mut dyn Charm) -> Vec<String> {
    let mut hooks = Vec::new();
    while let Some(event) = next_hook(model, unit) {
        let before = view(model, unit).unwrap();
        let out = run(charm, &before, event.clone())
            .unwrap_or_else(|f| panic!("{unit} {}: {f}", event.hook_name()));
        commit(model, unit, &before, &out.state);
        done(model, unit, &event);
        hooks.push(event.hook_name());
        assert!(hooks.len() < 50);
    }
    hooks
}

#[test]
fn units_share_peer_data_and_an_application_secret_through_the_model() {
    use example_charm::{ExampleCharm, ADMIN_KEY, ADMIN_LABEL};
    let mut m = model_with("example", 2, "replicas");
    let mut charm = ExampleCharm;
    settle(&mut m, "example/0", &mut charm);
    let peers = m.relation(1).unwrap();
    let uri = peers.app_bags["example"].data[ADMIN_KEY].clone();
    assert!(uri.starts_with("secret://6f1e3a5c"));
    assert_eq!(peers.unit_bags["example/0"].data["address"], "127.0.1.1");
    assert_eq!(m.secrets.len(), 1);
    assert_eq!(m.secrets[0].owner_label.as_deref(), Some(ADMIN_LABEL));

    // The follower sees the leader's writes, and reads the application secret.
    let hooks = settle(&mut m, "example/1", &mut charm);
    assert!(
        hooks.contains(&"replicas-relation-changed".to_string())
            || hooks.contains(&"replicas-relation-joined".to_string()),
        "{hooks:?}"
    );
    let follower = view(&m, "example/1").unwrap();
    assert_eq!(follower.relation(1).unwrap().local_app_data[ADMIN_KEY], uri);
    assert_eq!(
        follower.relation(1).unwrap().remote_units["example/0"]["address"],
        "127.0.1.1"
    );
    // Its address reached the leader, which hears of it.
    assert_eq!(
        settle(&mut m, "example/0", &mut charm),
        ["replicas-relation-changed"]
    );
    assert!(matches!(
        view(&m, "example/0").unwrap().app_status,
        Status::Active(_)
    ));
}

/// Two example units, settled, with the follower tracking revision 1 of the
/// admin secret (read through the charm's action, committed like a hook).
fn follower_tracking_the_admin_secret(charm: &mut example_charm::ExampleCharm) -> Model {
    let mut m = model_with("example", 2, "replicas");
    settle(&mut m, "example/0", charm);
    settle(&mut m, "example/1", charm);
    let before = view(&m, "example/1").unwrap();
    let out =
        juju_rules::run_action(charm, &before, "get-admin-password", Default::default()).unwrap();
    assert!(out.action.results.contains_key("password"));
    commit(&mut m, "example/1", &before, &out.state);
    assert_eq!(m.secrets[0].consumers["example/1"].tracked, Some(1));
    settle(&mut m, "example/0", charm);
    m
}

#[test]
fn a_new_secret_revision_reaches_the_units_that_track_it() {
    let mut charm = example_charm::ExampleCharm;
    let mut m = follower_tracking_the_admin_secret(&mut charm);
    let secret = &mut m.secrets[0];
    secret
        .revisions
        .insert(2, charm::SecretContent::new().with("password", "rotated"));
    assert_eq!(settle(&mut m, "example/1", &mut charm), ["secret-changed"]);
    assert_eq!(
        m.secrets[0].consumers["example/1"].tracked,
        Some(2),
        "the handler refreshed"
    );
    assert!(
        settle(&mut m, "example/1", &mut charm).is_empty(),
        "announced once"
    );
}

#[test]
fn the_owner_removes_a_revision_once_nobody_tracks_it() {
    let mut charm = example_charm::ExampleCharm;
    let mut m = follower_tracking_the_admin_secret(&mut charm);
    m.secrets[0]
        .revisions
        .insert(2, charm::SecretContent::new().with("password", "rotated"));
    let early = settle(&mut m, "example/0", &mut charm);
    assert!(
        early.is_empty(),
        "example/1 still tracks revision 1: {early:?}"
    );
    assert_eq!(settle(&mut m, "example/1", &mut charm), ["secret-changed"]);
    assert_eq!(
        settle(&mut m, "example/0", &mut charm),
        ["secret-remove"],
        "the leader owns it"
    );
    assert_eq!(m.secrets[0].revisions.keys().collect::<Vec<_>>(), [&2]);
    assert!(settle(&mut m, "example/0", &mut charm).is_empty());
}

#[test]
fn a_revision_a_running_hook_may_come_to_track_is_not_removed_under_it() {
    use local_model::agent::{Agent, Executed};
    let mut charm = example_charm::ExampleCharm;
    let mut m = model_with("example", 2, "replicas");
    settle(&mut m, "example/0", &mut charm);
    settle(&mut m, "example/1", &mut charm);
    settle(&mut m, "example/0", &mut charm);
    assert_eq!(m.secrets[0].consumers.get("example/1"), None);

    // The follower's action reads the secret for the first time: it will
    // track revision 1 once the action commits.
    let dir = std::path::Path::new("/nonexistent");
    let prepared = Agent::prepare_action(
        &mut m,
        "example/1",
        "1",
        "get-admin-password",
        Default::default(),
        dir,
        &[],
    )
    .unwrap();
    let out = juju_rules::run_action(
        &mut charm,
        prepared.view(),
        "get-admin-password",
        Default::default(),
    )
    .unwrap();

    // Meanwhile the leader writes revision 2: revision 1 is not obsolete yet.
    m.secrets[0]
        .revisions
        .insert(2, charm::SecretContent::new().with("password", "rotated"));
    let leader = settle(&mut m, "example/0", &mut charm);
    assert!(
        leader.is_empty(),
        "revision 1 is being read, yet: {leader:?}"
    );

    Agent::finish(
        &mut m,
        prepared,
        &Executed::in_process(out.state, String::new(), 0),
    );
    assert_eq!(m.secrets[0].consumers["example/1"].tracked, Some(1));
    assert!(m.secrets[0].revisions.contains_key(&1));
    assert_eq!(settle(&mut m, "example/1", &mut charm), ["secret-changed"]);
    assert_eq!(
        settle(&mut m, "example/0", &mut charm),
        ["secret-remove"],
        "now nobody tracks revision 1"
    );
    assert_eq!(m.secrets[0].revisions.keys().collect::<Vec<_>>(), [&2]);
}

#[test]
fn a_view_holds_the_secrets_its_unit_has_a_part_in() {
    use local_model::model::{Consumer, SecretOwnerRecord, SecretRecord};
    let mut m = model_with("example", 2, "peers");
    let db = RelationRecord {
        id: 2,
        ends: vec![
            End {
                app: "example".into(),
                endpoint: "db".into(),
            },
            End {
                app: "db".into(),
                endpoint: "database".into(),
            },
        ],
        ..RelationRecord::default()
    };
    m.relations.push(db.into());
    let secret = |xid: &str, owner: SecretOwnerRecord| {
        let mut s = SecretRecord::new(xid.into(), owner);
        s.revisions
            .insert(1, charm::SecretContent::new().with("k", "v"));
        s
    };
    let app = secret(
        "c0000000000000000001",
        SecretOwnerRecord::App("example".into()),
    );
    let own = secret(
        "c0000000000000000002",
        SecretOwnerRecord::Unit("example/1".into()),
    );
    let other_unit = secret(
        "c0000000000000000003",
        SecretOwnerRecord::Unit("example/0".into()),
    );
    let mut granted = secret("c0000000000000000004", SecretOwnerRecord::App("db".into()));
    granted.grants.insert((2, None));
    let mut revoked = secret("c0000000000000000005", SecretOwnerRecord::App("db".into()));
    revoked.consumers.insert(
        "example/1".into(),
        Consumer {
            label: Some("old".into()),
            tracked: Some(1),
        },
    );
    let unrelated = secret("c0000000000000000006", SecretOwnerRecord::App("db".into()));
    for s in [app, own, other_unit, granted, revoked, unrelated] {
        m.secrets.push(s.into());
    }
    let v = view(&m, "example/1").unwrap();
    let shown: Vec<(&str, bool)> = v
        .secrets
        .iter()
        .map(|s| (s.id.xid(), !s.revisions[&1].is_empty()))
        .collect();
    assert_eq!(
        shown,
        [
            ("c0000000000000000001", true),
            ("c0000000000000000002", true),
            ("c0000000000000000004", true),
            ("c0000000000000000005", false),
        ],
        "its application's, its own and one granted, read; one it consumed but \
         may no longer read, without content; another unit's and an unrelated \
         application's, not at all"
    );
}
