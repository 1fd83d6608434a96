//! The actions on the in-memory model.

mod support;

use charm_testing::State;
use postgresql_k8s::state;
use serde_json::json;
use support::*;

fn member_pair() -> World {
    let w = World::new(&[
        (0, "leader", "running"),
        (1, "sync_standby", "streaming"),
        (2, "replica", "streaming"),
    ]);
    {
        let users = &mut w.pg.0.borrow_mut().users;
        users.insert("operator".into(), ("operator-pw".into(), String::new()));
        users.insert(
            "replication".into(),
            ("replication-pw".into(), String::new()),
        );
    }
    w
}

fn cluster_unit(n: u32, leader: bool) -> State {
    let others: Vec<u32> = (0..3).filter(|m| *m != n).collect();
    initialised(with_peers(unit(n, leader), &others), &[0, 1, 2])
}

#[test]
fn get_password_returns_system_users_passwords_on_any_unit() {
    let w = member_pair();
    let s = cluster_unit(1, false);
    let out = w.action(&s, "get-password", json!({"username": "operator"}));
    assert_eq!(out.action.results["password"], "operator-pw");
    let out = w.action(&s, "get-password", json!({"username": "replication"}));
    assert_eq!(out.action.results["password"], "replication-pw");
    let out = w.action(&s, "get-password", json!({"username": "relation_id_5"}));
    assert!(out
        .action
        .failure
        .unwrap()
        .starts_with("The action can be run only for system users or Patroni"));
}

#[test]
fn set_password_is_for_the_leader_and_needs_a_system_user() {
    let w = member_pair();
    let out = w.action(
        &cluster_unit(1, false),
        "set-password",
        json!({"username": "operator"}),
    );
    assert_eq!(
        out.action.failure.as_deref(),
        Some("The action can be run only on leader unit")
    );
    let leader = cluster_unit(0, true);
    let out = w.action(&leader, "set-password", json!({"username": ""}));
    assert_eq!(
        out.action.failure.as_deref(),
        Some("The action requires a username")
    );
    let out = w.action(&leader, "set-password", json!({"username": "patroni"}));
    assert!(out
        .action
        .failure
        .unwrap()
        .starts_with("The action can be run only for system users"));
}

#[test]
fn set_password_changes_postgresql_the_secret_and_patroni_yml() {
    let w = member_pair();
    let s = cluster_unit(0, true);
    let out = w.action(
        &s,
        "set-password",
        json!({"username": "operator", "password": "new-operator-pw"}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(out.action.results["password"], "new-operator-pw");
    assert_eq!(w.pg.server().users["operator"].0, "new-operator-pw");
    let secret = out
        .state
        .secret_by_label(&state::app_secret_label(APP))
        .unwrap();
    assert_eq!(
        secret.latest_content().unwrap().get("operator-password"),
        Some("new-operator-pw")
    );
    assert_eq!(
        patroni_doc(&out.state)["postgresql"]["authentication"]["superuser"]["password"],
        "new-operator-pw"
    );
    // A generated password when none is given.
    let out = w.action(&s, "set-password", json!({"username": "replication"}));
    let generated = out.action.results["password"].clone();
    assert_eq!(generated.len(), 24);
    assert_eq!(w.pg.server().users["replication"].0, generated);
}

#[test]
fn set_password_refuses_while_a_member_is_not_ready() {
    let w = member_pair();
    w.set_members(&[
        (0, "leader", "running"),
        (1, "replica", "starting"),
        (2, "replica", "streaming"),
    ]);
    let out = w.action(
        &cluster_unit(0, true),
        "set-password",
        json!({"username": "operator", "password": "x"}),
    );
    assert_eq!(
        out.action.failure.as_deref(),
        Some("Failed changing the password: Not all members healthy or finished initial sync.")
    );
    assert_eq!(w.pg.server().users["operator"].0, "operator-pw");
}

#[test]
fn get_primary_names_the_leading_unit() {
    let w = member_pair();
    let out = w.action(&cluster_unit(2, false), "get-primary", json!({}));
    assert_eq!(out.action.results["primary"], "postgresql-k8s/0");
}

#[test]
fn promote_to_primary_switches_over_to_a_sync_standby() {
    let w = member_pair();
    let out = w.action(
        &cluster_unit(1, false),
        "promote-to-primary",
        json!({"scope": "unit"}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(
        w.patroni.cluster_state().switchovers,
        [(member(0), Some(member(1)))]
    );
    let out = w.action(&cluster_unit(2, false), "get-primary", json!({}));
    assert_eq!(out.action.results["primary"], "postgresql-k8s/1");
}

#[test]
fn promote_to_primary_refusals() {
    let w = member_pair();
    let replica = cluster_unit(2, false);
    for (params, failure) in [
        (json!({"scope": "unit"}), "Unit is not sync standby"),
        (
            json!({"scope": "unit", "force": true}),
            "Superfluous force flag with unit scope",
        ),
        (
            json!({"scope": "everything"}),
            "Scope should be either cluster or unit",
        ),
    ] {
        let out = w.action(&replica, "promote-to-primary", params);
        assert_eq!(out.action.failure.as_deref(), Some(failure));
    }
    let out = w.action(&replica, "promote-to-primary", json!({"scope": "cluster"}));
    assert!(out.action.failure.unwrap().contains("async replication"));
}
