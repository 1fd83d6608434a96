//! What clients ask beyond a database, through PgBouncer (in memory): roles
//! checked against the backend (existing ones granted, unknown ones
//! refused), group roles, USER entities (their name, password and
//! permissions; PgBouncer pools their database), and what PgBouncer cannot
//! serve, refused with where to ask instead. Each test names the branch.
//!
//! | branch | test |
//! |---|---|
//! | roles exist: granted | `existing_roles_are_granted_through_the_backend` |
//! | a role is missing: refused, every unit says so | `an_unknown_role_is_refused_and_every_unit_says_why` |
//! | refused, then the role appears (update-status) | `a_refused_request_is_served_once_its_role_exists` |
//! | extra-group-roles | `extra_group_roles_make_the_user_a_member` |
//! | entity USER with a requested name | `an_entity_user_is_served_and_pooled` |
//! | its secret not granted: waits | `an_ungranted_entity_secret_waits` |
//! | the name exists | `an_existing_username_is_refused` |
//! | entity GROUP: nothing to pool | `an_entity_group_is_refused_as_nothing_to_pool` |
//! | prefix: not PgBouncer's | `a_prefix_request_is_refused_and_pointed_to_postgresql` |
//! | relation-broken with an entity | `broken_drops_the_entity_too` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::secret::SecretId;
use charm::{SecretContent, Status};
use charm_testing::{event, Owner, SecretState, State};
use pgbouncer_k8s::state;
use postgres_admin::testing::FakeConnector;
use support::*;

const CLIENT: u64 = 4;
const REQUESTED: &str = "c0000000000000000e01";

fn request(pg: &FakeConnector, state: &State) -> charm_testing::Output {
    go(
        pg,
        state,
        event::relation_changed(state.relation(CLIENT).unwrap(), None),
    )
}

fn leader_with(pg: &FakeConnector, database: &str, extra: &[(&str, &str)]) -> State {
    pg.add_group("charmed_read", &["pg_read_all_data"]);
    pg.add_group("charmed_stats", &["pg_monitor"]);
    ready_leader(pg).with_relation(client(CLIENT, database, extra))
}

fn client_bag(s: &State) -> &charm::Databag {
    &s.relation(CLIENT).unwrap().local_app_data
}

fn told(s: &State) -> (u64, String) {
    let status: serde_json::Value = serde_json::from_str(&client_bag(s)["status"]).unwrap();
    (
        status[0]["code"].as_u64().unwrap(),
        status[0]["message"].as_str().unwrap().to_string(),
    )
}

fn requested_secret(name: &str, granted: bool) -> SecretState {
    let content = SecretContent::new()
        .with("entity-name", name)
        .with("password", "chosen-pw");
    let owner = Owner::Remote {
        app: "client-app".into(),
        granted,
    };
    SecretState::new(SecretId::parse(REQUESTED).unwrap(), owner, content)
}

fn entity_leader(pg: &FakeConnector, granted: bool) -> State {
    let permissions =
        r#"[{"resource_name": "app_db", "resource_type": "database", "privileges": ["CONNECT"]}]"#;
    leader_with(
        pg,
        "app_db",
        &[
            ("entity-type", "USER"),
            ("extra-user-roles", "charmed_read"),
            ("entity-permissions", permissions),
            ("requested-entity-secret", &format!("secret:{REQUESTED}")),
            (
                "requested-secrets",
                r#"["username","password","entity-name","entity-password"]"#,
            ),
        ],
    )
    .with_secret(requested_secret("report_user", granted))
}

#[test]
fn existing_roles_are_granted_through_the_backend() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    pg.add_group("team_a", &[]);
    let s = leader_with(
        &pg,
        "app_db",
        &[("extra-user-roles", "charmed_read,team_a")],
    );
    let out = request(&pg, &s);
    assert!(client_bag(&out.state).contains_key("secret-user"));
    let roles = &pg.server().users["relation_id_4"].1;
    assert!(
        roles.contains("charmed_read") && roles.contains("team_a"),
        "{roles}"
    );
}

#[test]
fn an_unknown_role_is_refused_and_every_unit_says_why() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = leader_with(&pg, "app_db", &[("extra-user-roles", "nosuch")]);
    let before = pg.server().users.clone();
    let out = request(&pg, &s);
    assert_eq!(pg.server().users, before, "no user created");
    assert!(!pg.server().databases.contains("app_db"));
    let (code, message) = told(&out.state);
    assert_eq!(code, 5002);
    assert!(message.contains("\"nosuch\": no such role"), "{message}");
    // The record is shared: a follower names the refusal too.
    let follower = share_from_leader(&out.state, with_backend(unit(1, false)))
        .with_relation(client(CLIENT, "app_db", &[("extra-user-roles", "nosuch")]));
    let other = go(&pg, &follower, event::update_status());
    for state in [&out.state, &other.state] {
        match &state.unit_status {
            Status::Blocked(m) => assert!(
                m.starts_with("invalid role(s) for extra user roles: relation 4: "),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_refused_request_is_served_once_its_role_exists() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = leader_with(&pg, "app_db", &[("extra-user-roles", "reporting")]);
    let refused = request(&pg, &s).state;
    assert_eq!(told(&refused).0, 5002);
    pg.add_group("reporting", &[]);
    let out = go(&pg, &refused, event::update_status());
    let bag = client_bag(&out.state);
    assert!(
        bag.contains_key("secret-user") && !bag.contains_key("status"),
        "{bag:?}"
    );
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn extra_group_roles_make_the_user_a_member() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = leader_with(&pg, "app_db", &[("extra-group-roles", "charmed_stats")]);
    request(&pg, &s);
    assert!(pg.server().users["relation_id_4"]
        .1
        .contains("charmed_stats"));
}

#[test]
fn an_entity_user_is_served_and_pooled() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = entity_leader(&pg, true);
    let out = request(&pg, &s);
    let server = pg.server();
    let (password, roles) = &server.users["report_user"];
    assert_eq!(password, "chosen-pw");
    assert!(roles.contains("charmed_read"), "{roles}");
    assert!(!server.users.contains_key("relation_id_4"));
    assert!(server.permissions.contains(&(
        "report_user".into(),
        "app_db".into(),
        "CONNECT on database app_db".into()
    )));
    assert!(server
        .auth_functions
        .contains(&("app_db".into(), "pgbouncer_auth_relation_id_3".into())));
    let cfg = &peer_app(&out.state)[state::CFG_FILE];
    assert!(cfg.contains("app_db = host=10.0.1.1"), "{cfg}");
    let bag = client_bag(&out.state);
    assert!(!bag.contains_key("secret-user"), "{bag:?}");
    let secret = out
        .state
        .secret(&SecretId::parse(&bag["secret-entity"]).unwrap())
        .unwrap();
    assert!(secret.grants.contains(&(CLIENT, None)));
    let content = secret.latest_content().unwrap();
    assert_eq!(content.get("entity-name"), Some("report_user"));
    assert_eq!(content.get("entity-password"), Some("chosen-pw"));
    let data: serde_json::Value = serde_json::from_str(&bag["data"]).unwrap();
    assert_eq!(data["entity-type"], "USER");
}

#[test]
fn an_ungranted_entity_secret_waits() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = entity_leader(&pg, false);
    let out = request(&pg, &s);
    let (code, message) = told(&out.state);
    assert_eq!(code, 4001);
    assert!(message.contains("Missing grant to requested entity secret"));
    assert_eq!(out.state.deferred.len(), 1);
    match &out.state.unit_status {
        Status::Waiting(m) => assert!(m.contains("relation 4: Missing grant"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!pg.server().users.contains_key("report_user"));
}

#[test]
fn an_existing_username_is_refused() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = entity_leader(&pg, true);
    pg.0.borrow_mut()
        .users
        .insert("report_user".into(), ("theirs".into(), String::new()));
    let out = request(&pg, &s);
    let (code, message) = told(&out.state);
    assert_eq!(code, 5005);
    assert!(
        message.contains("Requesting an existing username"),
        "{message}"
    );
    assert_eq!(pg.server().users["report_user"].0, "theirs");
}

#[test]
fn an_entity_group_is_refused_as_nothing_to_pool() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = leader_with(
        &pg,
        "app_db",
        &[
            ("entity-type", "GROUP"),
            ("extra-group-roles", "charmed_stats"),
        ],
    );
    let before = pg.server();
    let out = request(&pg, &s);
    assert_eq!(pg.server(), before);
    let (code, message) = told(&out.state);
    assert_eq!(code, 5003);
    assert!(
        message.contains(state::PGBOUNCER_GROUP) && message.contains("PostgreSQL directly"),
        "{message}"
    );
}

#[test]
fn a_prefix_request_is_refused_and_pointed_to_postgresql() {
    let pg = FakeConnector::up_with(&["pgbouncer", "app_one"]);
    let s = leader_with(&pg, "app*", &[]);
    let before = pg.server();
    let out = request(&pg, &s);
    assert_eq!(pg.server(), before);
    let (code, message) = told(&out.state);
    assert_eq!(code, 5003);
    assert!(
        message.contains(state::PGBOUNCER_PREFIX) && message.contains("PostgreSQL directly"),
        "{message}"
    );
}

#[test]
fn broken_drops_the_entity_too() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = entity_leader(&pg, true);
    let served = request(&pg, &s).state;
    let out = go(
        &pg,
        &served,
        event::relation_broken(served.relation(CLIENT).unwrap()),
    );
    let server = pg.server();
    assert!(!server.users.contains_key("report_user"));
    assert!(server.databases.contains("app_db"));
    assert!(out
        .state
        .secret_by_label("database.4.entity.secret")
        .is_none());
}
