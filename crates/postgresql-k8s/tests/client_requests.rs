//! What clients ask beyond a database, on the PostgreSQL charm (in memory):
//! roles checked against the server (existing ones granted, unknown or too
//! powerful ones refused), group roles, entities (USER, GROUP, a name of the
//! client's choosing, permissions), and prefixes. Each test names the branch.
//!
//! | branch | test |
//! |---|---|
//! | roles exist: granted | `existing_roles_are_granted` |
//! | a role is missing: refused (5002) | `an_unknown_role_is_refused_and_nothing_is_created` |
//! | a role can log in: refused | `a_role_that_can_log_in_is_refused` |
//! | refused, then the role appears | `a_refused_request_is_served_once_its_role_exists` |
//! | extra-group-roles | `extra_group_roles_make_the_user_a_member` |
//! | entity USER, secrets asked | `an_entity_user_gets_its_permissions_and_its_secret` |
//! | entity GROUP, no secrets | `an_entity_group_is_created_and_named_in_the_databag` |
//! | requested entity name | `a_requested_entity_name_and_password_come_from_the_clients_secret` |
//! | its secret not granted: waits (4001) | `an_ungranted_entity_secret_waits` |
//! | the name exists (5005) | `an_existing_username_is_refused` |
//! | a system user's name (5005) | `a_system_users_name_is_refused` |
//! | the name kept before (a retry) | `an_entity_kept_before_is_not_refused_as_taken` |
//! | relation-broken with an entity | `broken_drops_the_entity_and_keeps_the_database` |
//! | prefix | `a_prefix_request_gets_every_matching_database` |
//! | prefix, a new database matches | `new_matching_databases_are_granted_on_update_status_and_relation_changed` |
//! | prefix too short (5001) | `a_short_prefix_is_refused` |
//! | v1 entity | `a_v1_entity_request_is_answered_in_its_response` |
//! | v1 refusal | `a_v1_refusal_comes_with_a_response_so_the_client_reads_it` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::secret::SecretId;
use charm::{Event, SecretContent, Status};
use charm_testing::{event, Owner, SecretState, State};
use support::*;

const CLIENT: u64 = 5;
const REQUESTED: &str = "c0000000000000000e01";

fn changed(s: &State) -> Event {
    event::relation_changed(s.relation(CLIENT).unwrap(), None)
}

/// Leader 0 of a two-unit initialised cluster with one client asking for
/// `shop` with `extra`, the admin group and the charmed roles in place.
fn two_units(database: &str, extra: &[(&str, &str)]) -> (World, State) {
    let w = World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    w.pg.0.borrow_mut().admin_group = true;
    w.pg.add_group("charmed_stats", &["pg_monitor"]);
    w.pg.add_group("charmed_read", &["pg_read_all_data", "charmed_stats"]);
    w.pg.add_group("charmed_dml", &["pg_write_all_data", "charmed_read"]);
    let s = initialised(with_peers(unit(0, true), &[1]), &[0, 1])
        .with_relation(client(CLIENT, database, extra));
    (w, s)
}

fn client_bag(s: &State) -> &charm::Databag {
    &s.relation(CLIENT).unwrap().local_app_data
}

/// The status the client was told: (code, message).
fn told(s: &State) -> (u64, String) {
    let status: serde_json::Value = serde_json::from_str(&client_bag(s)["status"]).unwrap();
    (
        status[0]["code"].as_u64().unwrap(),
        status[0]["message"].as_str().unwrap().to_string(),
    )
}

fn blocked(s: &State) -> String {
    match &s.unit_status {
        Status::Blocked(m) => m.clone(),
        other => panic!("not blocked: {other:?}"),
    }
}

/// The client's secret naming the entity it wants, granted or not.
fn requested_secret(name: &str, password: Option<&str>, granted: bool) -> SecretState {
    let mut content = SecretContent::new().with("entity-name", name);
    if let Some(p) = password {
        content.insert("password", p);
    }
    let owner = Owner::Remote {
        app: "client-app".into(),
        granted,
    };
    SecretState::new(SecretId::parse(REQUESTED).unwrap(), owner, content)
}

fn secret_content(s: &State, id: &str) -> SecretContent {
    let secret = s.secret(&SecretId::parse(id).unwrap()).unwrap();
    assert!(
        secret.grants.contains(&(CLIENT, None)),
        "granted to the client"
    );
    secret.latest_content().unwrap().clone()
}

const PERMISSIONS: &str = r#"[{"resource_name": "shop", "resource_type": "database", "privileges": ["CONNECT"]},
    {"resource_name": "notes", "resource_type": "table", "privileges": ["SELECT"]}]"#;

#[test]
fn existing_roles_are_granted() {
    let (w, s) = two_units("shop", &[("extra-user-roles", "charmed_read,Team_A")]);
    w.pg.add_group("team_a", &[]);
    let out = w.go(&s, changed(&s));
    assert!(client_bag(&out.state).contains_key("secret-user"));
    let roles = &w.pg.server().users["relation_id_5"].1;
    assert!(
        roles.contains("charmed_read") && roles.contains("team_a"),
        "{roles}"
    );
}

#[test]
fn an_unknown_role_is_refused_and_nothing_is_created() {
    let (w, s) = two_units("shop", &[("extra-user-roles", "charmed_read,nosuch")]);
    let out = w.go(&s, changed(&s));
    let server = w.pg.server();
    assert!(server.users.is_empty() && !server.databases.contains("shop"));
    let (code, message) = told(&out.state);
    assert_eq!(code, 5002);
    assert!(message.contains("\"nosuch\": no such role"), "{message}");
    let status = blocked(&out.state);
    assert!(
        status.starts_with("invalid role(s) for extra user roles: relation 5: ")
            && status.contains("nosuch"),
        "{status}"
    );
    assert!(!client_bag(&out.state).contains_key("secret-user"));
}

#[test]
fn a_role_that_can_log_in_is_refused() {
    let (w, s) = two_units("shop", &[("extra-user-roles", "relation_id_9")]);
    w.pg.0
        .borrow_mut()
        .users
        .insert("relation_id_9".into(), ("pw".into(), String::new()));
    let out = w.go(&s, changed(&s));
    let (code, message) = told(&out.state);
    assert_eq!(code, 5002);
    assert!(
        message.contains("grants more than a client may have"),
        "{message}"
    );
    assert!(!w.pg.server().users.contains_key("relation_id_5"));
}

#[test]
fn a_refused_request_is_served_once_its_role_exists() {
    let (w, s) = two_units("shop", &[("extra-user-roles", "reporting")]);
    let refused = w.go(&s, changed(&s)).state;
    assert_eq!(told(&refused).0, 5002);
    w.pg.add_group("reporting", &["pg_read_all_data"]);
    let out = w.go(&refused, Event::UpdateStatus);
    let bag = client_bag(&out.state);
    assert!(bag.contains_key("secret-user") && !bag.contains_key("status"));
    assert_eq!(out.state.unit_status, Status::Active("Primary".into()));
}

#[test]
fn extra_group_roles_make_the_user_a_member() {
    let (w, s) = two_units("shop", &[("extra-group-roles", "charmed_stats,team_a")]);
    w.pg.add_group("team_a", &[]);
    w.go(&s, changed(&s));
    let roles = &w.pg.server().users["relation_id_5"].1;
    assert!(
        roles.contains("charmed_stats") && roles.contains("team_a"),
        "{roles}"
    );
}

#[test]
fn an_entity_user_gets_its_permissions_and_its_secret() {
    let (w, s) = two_units(
        "shop",
        &[
            ("entity-type", "USER"),
            ("extra-user-roles", "charmed_stats"),
            ("entity-permissions", PERMISSIONS),
            (
                "requested-secrets",
                r#"["username","password","tls","tls-ca","uris","read-only-uris","entity-name","entity-password"]"#,
            ),
        ],
    );
    let out = w.go(&s, changed(&s));
    let bag = client_bag(&out.state);
    // The entity's credentials, not a user's; the record says it is an entity.
    assert!(!bag.contains_key("secret-user"), "{bag:?}");
    let data: serde_json::Value = serde_json::from_str(&bag["data"]).unwrap();
    assert_eq!(data["entity-type"], "USER");
    let content = secret_content(&out.state, &bag["secret-entity"]);
    assert_eq!(content.get("entity-name"), Some("relation_id_5"));
    let server = w.pg.server();
    let (password, roles) = &server.users["relation_id_5"];
    assert_eq!(content.get("entity-password"), Some(password.as_str()));
    assert!(roles.contains("charmed_stats"), "{roles}");
    assert!(server.databases.contains("shop"));
    assert!(
        server.grants.is_empty(),
        "no database grant beyond the permissions"
    );
    let granted: Vec<&str> = server
        .permissions
        .iter()
        .map(|(_, _, p)| p.as_str())
        .collect();
    assert_eq!(
        granted,
        ["CONNECT on database shop", "SELECT on table public.notes"]
    );
    assert!(out
        .state
        .logs
        .iter()
        .all(|(_, m)| !m.contains(password.as_str())));
}

#[test]
fn an_entity_group_is_created_and_named_in_the_databag() {
    let (w, mut s) = two_units(
        "shop",
        &[
            ("entity-type", "GROUP"),
            ("extra-group-roles", "charmed_read"),
        ],
    );
    s.relations
        .iter_mut()
        .find(|r| r.id == CLIENT)
        .unwrap()
        .remote_app_data
        .remove("requested-secrets");
    let out = w.go(&s, changed(&s));
    let bag = client_bag(&out.state);
    assert_eq!(bag["entity-name"], "relation_id_5");
    assert!(!bag.contains_key("entity-password") && !bag.contains_key("password"));
    let server = w.pg.server();
    assert_eq!(server.groups["relation_id_5"], ["charmed_read"]);
    assert!(
        !server.users.contains_key("relation_id_5"),
        "a group cannot log in"
    );
}

fn requested_entity(granted: bool, name: &str) -> (World, State) {
    let (w, s) = two_units(
        "shop",
        &[
            ("entity-type", "USER"),
            ("requested-entity-secret", &format!("secret:{REQUESTED}")),
        ],
    );
    (
        w,
        s.with_secret(requested_secret(name, Some("chosen-pw"), granted)),
    )
}

#[test]
fn a_requested_entity_name_and_password_come_from_the_clients_secret() {
    let (w, s) = requested_entity(true, "report_user");
    let out = w.go(&s, changed(&s));
    assert_eq!(w.pg.server().users["report_user"].0, "chosen-pw");
    let bag = client_bag(&out.state);
    // Not asked for as secrets: in the databag.
    assert_eq!(bag["entity-name"], "report_user");
    assert_eq!(bag["entity-password"], "chosen-pw");
}

#[test]
fn an_ungranted_entity_secret_waits() {
    let (w, s) = requested_entity(false, "report_user");
    let out = w.go(&s, changed(&s));
    let (code, message) = told(&out.state);
    assert_eq!(code, 4001);
    assert!(
        message.contains("Missing grant to requested entity secret"),
        "{message}"
    );
    assert_eq!(out.state.deferred.len(), 1, "asked again on the next hook");
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(m.contains("relation 5: Missing grant"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(w.pg.server().users.is_empty());
}

#[test]
fn an_existing_username_is_refused() {
    let (w, s) = requested_entity(true, "report_user");
    w.pg.0
        .borrow_mut()
        .users
        .insert("report_user".into(), ("theirs".into(), String::new()));
    let out = w.go(&s, changed(&s));
    let (code, message) = told(&out.state);
    assert_eq!(code, 5005);
    assert!(
        message.contains("Requesting an existing username"),
        "{message}"
    );
    assert_eq!(w.pg.server().users["report_user"].0, "theirs", "left alone");
    assert!(blocked(&out.state).contains("Requesting an existing username"));
}

#[test]
fn a_system_users_name_is_refused() {
    for name in ["operator", "relation_id_2", "charmed_dba"] {
        let (w, s) = requested_entity(true, name);
        let out = w.go(&s, changed(&s));
        let (code, message) = told(&out.state);
        assert_eq!(code, 5005, "{name}");
        assert!(
            message.contains("Requesting an existing username"),
            "{message}"
        );
        assert!(
            w.pg.server().sessions.is_empty(),
            "nothing asked of PostgreSQL"
        );
    }
}

#[test]
fn an_entity_kept_before_is_not_refused_as_taken() {
    let (w, s) = requested_entity(true, "report_user");
    // A first try created the role and kept its name, then failed.
    w.pg.0
        .borrow_mut()
        .users
        .insert("report_user".into(), ("chosen-pw".into(), String::new()));
    let mut kept = SecretState::new(
        SecretId::parse("c0000000000000000e02").unwrap(),
        Owner::App,
        SecretContent::new().with("entity-name", "report_user"),
    );
    kept.owner_label = Some("database.5.entity.secret".into());
    let s = s.with_secret(kept);
    let out = w.go(&s, changed(&s));
    assert_eq!(client_bag(&out.state)["entity-name"], "report_user");
    assert!(!client_bag(&out.state).contains_key("status"));
}

#[test]
fn broken_drops_the_entity_and_keeps_the_database() {
    let (w, s) = requested_entity(true, "report_user");
    let served = w.go(&s, changed(&s)).state;
    assert!(w.pg.server().users.contains_key("report_user"));
    let out = w.go(
        &served,
        event::relation_broken(served.relation(CLIENT).unwrap()),
    );
    let server = w.pg.server();
    assert!(!server.users.contains_key("report_user"));
    assert!(server.databases.contains("shop"));
    assert!(out
        .state
        .secret_by_label("database.5.entity.secret")
        .is_none());
}

#[test]
fn a_prefix_request_gets_every_matching_database() {
    let (w, s) = two_units("app*", &[]);
    for db in ["app_one", "app_two", "other", "ap"] {
        w.pg.0.borrow_mut().databases.insert(db.into());
    }
    let out = w.go(&s, changed(&s));
    let bag = client_bag(&out.state);
    assert_eq!(bag["database"], "app*");
    assert_eq!(bag["prefix-databases"], "app_one,app_two");
    let server = w.pg.server();
    assert!(server
        .grants
        .contains(&("app_one".into(), "relation_id_5".into())));
    assert!(server
        .grants
        .contains(&("app_two".into(), "relation_id_5".into())));
    assert!(!server.databases.contains("app*") && !server.databases.contains("app"));
    let content = secret_content(&out.state, &bag["secret-user"]);
    assert!(content.get("uris").unwrap().ends_with(":5432/app_one"));
}

#[test]
fn new_matching_databases_are_granted_on_update_status_and_relation_changed() {
    let (w, s) = two_units("app*", &[]);
    w.pg.0.borrow_mut().databases.insert("app_one".into());
    let served = w.go(&s, changed(&s)).state;
    w.pg.0.borrow_mut().databases.insert("app_two".into());
    let out = w.go(&served, Event::UpdateStatus);
    assert_eq!(
        client_bag(&out.state)["prefix-databases"],
        "app_one,app_two"
    );
    assert!(w
        .pg
        .server()
        .grants
        .contains(&("app_two".into(), "relation_id_5".into())));
    w.pg.0.borrow_mut().databases.insert("app_three".into());
    let out = w.go(&out.state, changed(&out.state));
    assert_eq!(
        client_bag(&out.state)["prefix-databases"],
        "app_one,app_three,app_two"
    );
}

#[test]
fn a_short_prefix_is_refused() {
    let (w, s) = two_units("ap*", &[]);
    let out = w.go(&s, changed(&s));
    let (code, message) = told(&out.state);
    assert_eq!(code, 5001);
    assert!(message.contains("Prefix too short"), "{message}");
    assert!(w.pg.server().users.is_empty());
}

fn v1(requests: &str) -> (World, State) {
    let (w, mut s) = two_units("unused", &[]);
    let relation = s.relations.iter_mut().find(|r| r.id == CLIENT).unwrap();
    relation.remote_app_data = charm_testing::bag(&[("version", "v1"), ("requests", requests)]);
    (w, s)
}

#[test]
fn a_v1_entity_request_is_answered_in_its_response() {
    let (w, s) = v1(
        r#"[{"resource": "shop", "request-id": "r1", "salt": "s1", "entity-type": "USER",
            "entity-permissions": [{"resource_name": "shop", "resource_type": "database", "privileges": ["CONNECT"]}]}]"#,
    );
    let out = w.go(&s, changed(&s));
    let bag = client_bag(&out.state);
    let response: serde_json::Value = serde_json::from_str(&bag["requests"]).unwrap();
    assert_eq!(response[0]["request-id"], "r1");
    assert!(response[0].get("secret-user").is_none());
    let content = secret_content(&out.state, response[0]["secret-entity"].as_str().unwrap());
    assert_eq!(content.get("entity-name"), Some("relation_id_5"));
    let data: serde_json::Value = serde_json::from_str(&bag["data"]).unwrap();
    assert_eq!(data["r1"]["entity-type"], "USER");
}

#[test]
fn a_v1_refusal_comes_with_a_response_so_the_client_reads_it() {
    let (w, s) = v1(
        r#"[{"resource": "shop", "request-id": "r1", "salt": "s1", "extra-user-roles": "nosuch"}]"#,
    );
    let out = w.go(&s, changed(&s));
    let bag = client_bag(&out.state);
    let response: serde_json::Value = serde_json::from_str(&bag["requests"]).unwrap();
    assert_eq!(
        response,
        serde_json::json!([{"resource": "shop", "request-id": "r1", "salt": "s1"}])
    );
    assert!(bag.contains_key("data"));
    assert_eq!(told(&out.state).0, 5002);
    // Served later, the response gains its credentials and the status goes.
    w.pg.add_group("nosuch", &[]);
    let out = w.go(&out.state, changed(&out.state));
    let bag = client_bag(&out.state);
    let response: serde_json::Value = serde_json::from_str(&bag["requests"]).unwrap();
    assert!(response[0]["secret-user"].is_string());
    assert!(!bag.contains_key("status"));
}
