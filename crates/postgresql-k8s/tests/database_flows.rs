//! The `database` relation (postgresql_client v0, provider) on the in-memory model.

#![allow(clippy::unwrap_used)]

mod support;

use charm::secret::SecretId;
use charm::{Event, Status};
use charm_testing::{event, Owner, State};
use postgresql_k8s::state;
use support::*;

const CLIENT: u64 = 5;

fn changed(s: &State) -> Event {
    event::relation_changed(s.relation(CLIENT).unwrap(), None)
}

/// Leader 0 of a two-unit initialised cluster with one client asking for `shop`.
fn two_units(extra: &[(&str, &str)]) -> (World, State) {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    w.pg.0.borrow_mut().admin_group = true;
    let s = initialised(with_peers(unit(0, true), &[1]), &[0, 1])
        .with_relation(client(CLIENT, "shop", extra));
    (w, s)
}

fn client_bag(s: &State) -> &charm::Databag {
    &s.relation(CLIENT).unwrap().local_app_data
}

#[test]
fn a_request_creates_the_user_and_database_and_hands_them_over_in_a_secret() {
    let (w, s) = two_units(&[]);
    let out = w.go(&s, changed(&s));
    let server = w.pg.server();
    assert!(server.databases.contains("shop"));
    assert!(server
        .grants
        .contains(&("shop".into(), "relation_id_5".into())));
    let password = server.users["relation_id_5"].0.clone();
    assert_eq!(server.sessions, [addr(0)], "on the primary");

    let bag = client_bag(&out.state);
    assert_eq!(bag["database"], "shop");
    assert_eq!(bag["endpoints"], "127.0.1.1:5432");
    assert_eq!(bag["read-only-endpoints"], "127.0.1.2:5432");
    assert_eq!(bag["version"], "15.18");
    // Asked for as secrets, the TLS fields travel in the relation's TLS secret.
    assert!(!bag.contains_key("tls"));
    let tls = out
        .state
        .secret(&SecretId::parse(&bag["secret-tls"]).unwrap())
        .unwrap();
    assert_eq!(tls.owner_label.as_deref(), Some("database.5.tls.secret"));
    assert!(tls.grants.contains(&(CLIENT, None)));
    assert_eq!(tls.latest_content().unwrap().get("tls"), Some("False"));
    assert!(!bag.contains_key("password") && !bag.contains_key("username"));
    let id = SecretId::parse(&bag["secret-user"]).unwrap();
    let secret = out.state.secret(&id).unwrap();
    assert_eq!(secret.owner, Owner::App);
    assert_eq!(
        secret.owner_label.as_deref(),
        Some("database.5.user.secret")
    );
    assert!(secret.grants.contains(&(CLIENT, None)));
    let content = secret.latest_content().unwrap();
    assert_eq!(content.get("username"), Some("relation_id_5"));
    assert_eq!(content.get("password"), Some(password.as_str()));
    assert_eq!(
        content.get("uris"),
        Some(format!("postgresql://relation_id_5:{password}@127.0.1.1:5432/shop").as_str())
    );
    assert_eq!(
        content.get("read-only-uris"),
        Some(format!("postgresql://relation_id_5:{password}@127.0.1.2:5432/shop").as_str())
    );
    assert!(out.state.logs.iter().all(|(_, m)| !m.contains(&password)));
}

#[test]
fn without_requested_secrets_the_credentials_go_in_the_databag() {
    let w = World::new(&[(0, "leader", "running")]);
    let mut relation = client(CLIENT, "shop", &[]);
    relation.remote_app_data.remove("requested-secrets");
    let s = initialised(unit(0, true), &[0]).with_relation(relation);
    let out = w.go(&s, changed(&s));
    let bag = client_bag(&out.state);
    assert_eq!(bag["username"], "relation_id_5");
    assert_eq!(bag["password"], w.pg.server().users["relation_id_5"].0);
    assert!(!bag.contains_key("secret-user"));
    // Alone, the primary serves reads too.
    assert_eq!(bag["read-only-endpoints"], "127.0.1.1:5432");
}

#[test]
fn every_refused_client_is_named_and_told_why() {
    let (w, s) = two_units(&[("extra-user-roles", "createdb,test")]);
    let s = s.with_relation(client(6, "shop*", &[("prefix-matching", "only-existing")]));
    let out = w.go(&s, changed(&s));
    let prefix = w.go(
        &out.state,
        event::relation_changed(out.state.relation(6).unwrap(), None),
    );
    let bag = &prefix.state.relation(6).unwrap().local_app_data;
    let status: serde_json::Value = serde_json::from_str(&bag["status"]).unwrap();
    assert_eq!(status[0]["code"], 5003);
    assert!(w.pg.server().users.is_empty());
    match &prefix.state.unit_status {
        Status::Blocked(m) => assert!(
            m.contains("relation 5: ") && m.contains("relation 6: ") && m.contains("prefix"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_extra_user_roles_block_and_create_nothing() {
    let (w, s) = two_units(&[("extra-user-roles", "createdb,test")]);
    let out = w.go(&s, changed(&s));
    assert!(w.pg.server().users.is_empty());
    // Nothing handed out; the client is told why, with a fatal code.
    let bag = client_bag(&out.state);
    assert_eq!(bag.keys().collect::<Vec<_>>(), ["status"], "{bag:?}");
    let status: serde_json::Value = serde_json::from_str(&bag["status"]).unwrap();
    assert_eq!(status[0]["code"], 5002);
    assert!(status[0]["message"].as_str().is_some_and(|m| m
        .starts_with("invalid role(s) for extra user roles")
        && m.contains("test")));
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(
            m.starts_with("invalid role(s) for extra user roles") && m.contains("test"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn valid_extra_user_roles_are_given_to_the_user() {
    let (w, s) = two_units(&[("extra-user-roles", "CREATEDB,admin")]);
    w.go(&s, changed(&s));
    let roles = w.pg.server().users["relation_id_5"].1.clone();
    assert!(
        roles.contains("CreateDb") && roles.contains("admin"),
        "{roles}"
    );
}

#[test]
fn a_request_waits_for_the_initialised_cluster() {
    let (w, mut s) = two_units(&[]);
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .remove(state::CLUSTER_INITIALISED);
    let out = w.go(&s, changed(&s));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(w.pg.server().users.is_empty());
}

#[test]
fn a_follower_leaves_requests_to_the_leader() {
    let (w, s) = two_units(&[]);
    let s = State { leader: false, ..s };
    let out = w.go(&s, changed(&s));
    assert!(out.state.deferred.is_empty());
    assert!(w.pg.server().users.is_empty());
}

#[test]
fn a_database_error_defers_and_says_why() {
    let (w, s) = two_units(&[]);
    w.pg.0.borrow_mut().down = Some("connection refused".into());
    let out = w.go(&s, changed(&s));
    assert_eq!(out.state.deferred.len(), 1);
    assert!(client_bag(&out.state).is_empty());
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(
            m.contains("cannot create database shop") && m.contains("connection refused"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn endpoints_follow_a_failover() {
    let (w, s) = two_units(&[]);
    let served = w.go(&s, changed(&s)).state;
    let id = SecretId::parse(&client_bag(&served)["secret-user"]).unwrap();
    w.set_members(&[(0, "sync_standby", "streaming"), (1, "leader", "running")]);
    let out = w.go(&served, Event::UpdateStatus);
    let bag = client_bag(&out.state);
    assert_eq!(bag["endpoints"], "127.0.1.2:5432");
    assert_eq!(bag["read-only-endpoints"], "127.0.1.1:5432");
    assert_eq!(bag["secret-user"], id.to_string(), "the same secret");
    let secret = out.state.secret(&id).unwrap();
    assert_eq!(secret.latest(), 2);
    assert!(secret
        .latest_content()
        .unwrap()
        .get("uris")
        .unwrap()
        .contains("@127.0.1.2:5432/shop"));
    assert_eq!(out.state.unit_status, Status::Active("Replica".into()));
}

#[test]
fn relation_broken_drops_the_user_and_keeps_the_database() {
    let (w, s) = two_units(&[]);
    let served = w.go(&s, changed(&s)).state;
    let event = event::relation_broken(served.relation(CLIENT).unwrap());
    let out = w.go(&served, event);
    let server = w.pg.server();
    assert!(!server.users.contains_key("relation_id_5"));
    assert!(server.databases.contains("shop"));
    assert!(out
        .state
        .secret_by_label("database.5.user.secret")
        .is_none());
}

#[test]
fn a_departing_leader_keeps_the_user() {
    let (w, s) = two_units(&[]);
    let served = w.go(&s, changed(&s)).state;
    let event = event::relation_departed(
        served.relation(CLIENT).unwrap(),
        "client-app/0",
        &unit_name(0),
    );
    let departed = w.go(&served, event).state;
    assert_eq!(peer_unit(&departed)[state::DEPARTING], "True");
    let event = event::relation_broken(departed.relation(CLIENT).unwrap());
    w.go(&departed, event);
    assert!(w.pg.server().users.contains_key("relation_id_5"));
}
