//! Taking over a deployment of the reference charm on upgrade-charm, on the
//! in-memory model: the leader starts from the peer bags and secrets the
//! reference charm leaves (`docs/takeover.md`).
//!
//! | branch | test |
//! |---|---|
//! | members by host name become addresses; the reference's keys go, ours stay | `members_passwords_and_legacy_clients_are_taken_over` |
//! | a deleted value (`None`) in the application secret is dropped | `members_passwords_and_legacy_clients_are_taken_over` |
//! | a legacy client's password moves from its bag to its user secret | `members_passwords_and_legacy_clients_are_taken_over` |
//! | the passwords under the older label `<app>.app` | `passwords_under_the_older_label_are_taken_over_not_generated` |
//! | the passwords behind `internal-secret` (a URI in the peer bag, no label): written under the label, the key removed | `passwords_behind_internal_secret_are_taken_over_and_the_key_removed` |
//! | the passwords as plain peer keys (no Juju secrets) | `plain_passwords_in_the_peer_bag_move_into_the_secret` |
//! | no passwords anywhere for an initialised cluster: blocked, none generated | `missing_passwords_block_and_none_are_generated` |
//! | a follower drops the reference's keys from its own bag | `a_follower_drops_the_reference_unit_keys` |
//! | run again: nothing changes | `taking_over_twice_changes_nothing` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, SecretContent, SecretId, Status};
use charm_testing::{Owner, RelationState, SecretState, State};
use client_interface::provider::secret_label;
use postgresql_k8s::flows::takeover;
use postgresql_k8s::state;
use support::*;

const LEGACY: u64 = 9;

fn peers_mut(s: &mut State) -> &mut RelationState {
    s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap()
}

/// Unit `n` of two, as the reference leaves it: members by host name, its
/// own peer keys, and on the leader a `db` client answered in the bag.
fn reference_unit(n: u32, leader: bool) -> State {
    let mut s = with_peers(unit(n, leader), &[1 - n]);
    s.secrets.clear();
    s = s.with_secret(app_secret());
    let peers = peers_mut(&mut s);
    let hosts: Vec<String> = (0..2)
        .map(|i| format!("{}.{APP}-endpoints", member(i)))
        .collect();
    for (k, v) in [
        (state::ENDPOINTS, serde_json::to_string(&hosts).unwrap()),
        (state::CLUSTER_INITIALISED, "True".into()),
        ("user_hash", "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
        ("ldap_enabled", "False".into()),
    ] {
        peers.local_app_data.insert(k.to_string(), v);
    }
    for (k, v) in [
        (state::ADDRESS, addr(n)),
        ("user_hash", "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
        ("config_hash", "aa".repeat(16)),
        ("connectivity", "on".into()),
    ] {
        peers.local_unit_data.insert(k.to_string(), v);
    }
    if leader {
        s = s.with_relation(
            RelationState::new("db", LEGACY, "waltz")
                .remote_app_data(&[("database", "waltz")])
                .remote_unit("waltz/0", &[("database", "waltz")])
                .local_app_data(&[
                    ("database", "waltz"),
                    ("user", "relation_id_9"),
                    ("password", "legacy-pw"),
                    (
                        "master",
                        "dbname=waltz host=old password=legacy-pw user=relation_id_9",
                    ),
                ]),
        );
    }
    s
}

fn world() -> World {
    World::new(&[(0, "leader", "running"), (1, "replica", "streaming")])
}

fn secret_content(s: &State, label: &str) -> SecretContent {
    s.secret_by_label(label)
        .and_then(|x| x.latest_content())
        .cloned()
        .unwrap_or_else(|| panic!("no secret {label}"))
}

#[test]
fn members_passwords_and_legacy_clients_are_taken_over() {
    let w = world();
    let mut s = reference_unit(0, true);
    let app = s
        .secrets
        .iter_mut()
        .find(|x| x.owner == Owner::App)
        .unwrap();
    let mut c = app.latest_content().unwrap().clone();
    c.insert("backup-password", takeover::DELETED);
    app.revisions.insert(1, c);
    let out = w.go(&s, Event::UpgradeCharm);

    assert_eq!(members(&out.state), [addr(0), addr(1)]);
    let app = peer_app(&out.state);
    assert!(!app.contains_key("user_hash") && !app.contains_key("ldap_enabled"));
    assert_eq!(app[state::CLUSTER_INITIALISED], "True");
    let own = peer_unit(&out.state);
    for key in takeover::REFERENCE_UNIT_KEYS {
        assert!(!own.contains_key(key), "{key} left");
    }
    let secret = secret_content(&out.state, &state::app_secret_label(APP));
    assert_eq!(secret.get("operator-password"), Some("operator-pw"));
    assert_eq!(secret.get("backup-password"), None);
    assert_eq!(
        secret_content(&out.state, &secret_label("db", LEGACY, "user")).get("password"),
        Some("legacy-pw")
    );
    let legacy = &out.state.relation(LEGACY).unwrap().local_app_data;
    assert!(
        legacy["master"].contains("password=legacy-pw"),
        "{legacy:?}"
    );
    assert!(!matches!(out.state.unit_status, Status::Blocked(_)));
}

#[test]
fn taking_over_twice_changes_nothing() {
    let w = world();
    let once = w.go(&reference_unit(0, true), Event::UpgradeCharm).state;
    let twice = w.go(&once, Event::UpgradeCharm).state;
    assert_eq!(twice.relations, once.relations);
    assert_eq!(twice.secrets, once.secrets);
}

#[test]
fn passwords_under_the_older_label_are_taken_over_not_generated() {
    let w = world();
    let mut s = reference_unit(0, true);
    s.secrets[0].owner_label = Some(format!("{APP}.app"));
    let out = w.go(&s, Event::UpgradeCharm);
    let secret = secret_content(&out.state, &state::app_secret_label(APP));
    for user in state::SECRET_USERS {
        assert_eq!(
            secret.get(&state::password_key(user)),
            Some(format!("{user}-pw").as_str())
        );
    }
}

#[test]
fn passwords_behind_internal_secret_are_taken_over_and_the_key_removed() {
    let w = world();
    let mut s = reference_unit(0, true);
    s.secrets[0].owner_label = None;
    let uri = s.secrets[0].id.to_string();
    peers_mut(&mut s)
        .local_app_data
        .insert(takeover::INTERNAL_SECRET.into(), uri);
    let out = w.go(&s, Event::UpgradeCharm);
    let secret = secret_content(&out.state, &state::app_secret_label(APP));
    for user in state::SECRET_USERS {
        assert_eq!(
            secret.get(&state::password_key(user)),
            Some(format!("{user}-pw").as_str())
        );
    }
    assert!(!peer_app(&out.state).contains_key(takeover::INTERNAL_SECRET));
    assert!(!matches!(out.state.unit_status, Status::Blocked(_)));
}

#[test]
fn plain_passwords_in_the_peer_bag_move_into_the_secret() {
    let w = world();
    let mut s = reference_unit(0, true);
    s.secrets.clear();
    let peers = peers_mut(&mut s);
    for user in state::SECRET_USERS {
        peers
            .local_app_data
            .insert(state::password_key(user), format!("{user}-pw"));
    }
    let out = w.go(&s, Event::UpgradeCharm);
    let secret = secret_content(&out.state, &state::app_secret_label(APP));
    assert_eq!(secret.get("operator-password"), Some("operator-pw"));
    assert_eq!(secret.get("patroni-password"), Some("patroni-pw"));
    let app = peer_app(&out.state);
    assert!(!app.contains_key("operator-password"), "moved, not copied");
}

#[test]
fn missing_passwords_block_and_none_are_generated() {
    let w = world();
    let mut s = reference_unit(0, true);
    s.secrets.clear();
    s = s.with_secret({
        let mut x = SecretState::new(
            SecretId::parse("c0000000000000000a09").unwrap(),
            Owner::App,
            SecretContent::new().with("unrelated", "x"),
        );
        x.owner_label = Some("something-else".into());
        x
    });
    let out = w.go(&s, Event::UpgradeCharm);
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(m.contains("cannot be found"), "{m}"),
        other => panic!("not blocked: {other:?}"),
    }
    assert!(out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .is_none());
    // Later hooks generate none either.
    let later = w.go(&out.state, Event::UpdateStatus);
    assert!(later
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .is_none());
    assert!(matches!(later.state.unit_status, Status::Blocked(_)));
}

#[test]
fn a_follower_drops_the_reference_unit_keys() {
    let w = world();
    let out = w.go(&reference_unit(1, false), Event::UpgradeCharm);
    let own = peer_unit(&out.state);
    for key in takeover::REFERENCE_UNIT_KEYS {
        assert!(!own.contains_key(key), "{key} left");
    }
    assert!(
        peer_app(&out.state).contains_key("user_hash"),
        "the application bag is the leader's"
    );
}
