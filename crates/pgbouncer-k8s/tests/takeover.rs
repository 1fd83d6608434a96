//! Taking over a deployment of the reference charm on upgrade-charm, on the
//! in-memory model: each unit starts from the peer bags, secrets and client
//! relation bags the reference charm leaves (`docs/takeover.md`).
//!
//! | branch | test |
//! |---|---|
//! | a `database` client answered in a secret: the secret adopted as its user secret | `every_client_keeps_its_user_password_and_database` |
//! | a `database` client answered in the bag: its password kept in a new user secret | `every_client_keeps_its_user_password_and_database` |
//! | a legacy `db` client: its password kept in its user secret, its extensions echoed | `every_client_keeps_its_user_password_and_database` |
//! | a `db-admin` client: its password kept, our flow refuses it and keeps its user | `a_db_admin_client_keeps_its_user_and_is_refused` |
//! | an older revision's password in the peer bag (`relation_id_<id>`) and plain stats password | `an_older_revisions_peer_bag_passwords_are_moved_into_secrets` |
//! | no password anywhere: blocked with what to do, the user untouched | `a_client_without_a_password_blocks_and_keeps_its_user` |
//! | the application secret behind `internal-secret` (older revisions): written under the label, the key removed | `an_application_secret_behind_internal_secret_is_taken_over` |
//! | `pgb_dbs_config` unreadable: taken over from the relations, the key kept, blocked | `an_unreadable_map_is_kept_and_the_clients_are_taken_over_from_their_bags` |
//! | the reference's keys removed once ours are written; the secret's leftovers dropped | `every_client_keeps_its_user_password_and_database` |
//! | a follower drops the reference's keys from its own bag, writes ours | `a_follower_drops_the_reference_unit_keys` |
//! | run again: nothing changes | `taking_over_twice_changes_nothing` |
//! | a deployment of ours: nothing taken over | `a_deployment_of_ours_is_left_alone` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, SecretContent, SecretId, Status};
use charm_testing::{Owner, RelationState, SecretState, State};
use client_interface::provider::secret_label;
use pgbouncer_k8s::flows::takeover;
use pgbouncer_k8s::state::{self, Clients, DATABASE};
use postgres_admin::testing::FakeConnector;
use support::*;

const SECRET_CLIENT: u64 = 4;
const BAG_CLIENT: u64 = 5;
const LEGACY_CLIENT: u64 = 6;
const ADMIN_CLIENT: u64 = 8;
const LEGACY_USER: &str = "pgbouncer_k8s_user_6_test";
const ADMIN_USER: &str = "pgbouncer_k8s_user_8_test";
const USER_SECRET: &str = "c0000000000000000a04";
const APP_SECRET: &str = "c0000000000000000a01";

/// The reference's map of client relations (a wildcard for a privileged one).
const MAP: &str = r#"{"4": {"name": "app_db", "legacy": false}, "5": {"name": "bag_db", "legacy": false}, "6": {"name": "legacy_db", "legacy": true}, "*": {"name": "*", "auth_dbname": "app_db", "legacy": false}}"#;

/// A PostgreSQL holding the reference's clients' users and databases.
fn backend() -> FakeConnector {
    let pg = FakeConnector::up_with(&["pgbouncer", "app_db", "bag_db", "legacy_db"]);
    {
        let mut server = pg.0.borrow_mut();
        for (user, password) in [
            ("relation_id_4", "pw-secret"),
            ("relation_id_5", "pw-bag"),
            (LEGACY_USER, "pw-legacy"),
            (ADMIN_USER, "pw-admin"),
            ("pgbouncer_auth_relation_id_3", "auth-pw"),
        ] {
            server
                .users
                .insert(user.into(), (password.into(), String::new()));
        }
    }
    pg
}

fn peers_mut(state: &mut State) -> &mut RelationState {
    state
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
}

/// Unit `n` as the reference leaves it: its peer unit bag, and on the leader
/// the peer application bag and application secret.
fn reference_unit(n: u32, leader: bool) -> State {
    let mut s = with_backend(unit(n, leader));
    let peers = peers_mut(&mut s);
    for (k, v) in [
        ("userlist_nonce", "Ab3dEf6hIj9kLm2nOp5qRs8t"),
        ("container_initialised", "True"),
        ("pgb_dbs", "3c1b3b0d2c5e4f1a9b8c7d6e5f4a3b2c"),
    ] {
        peers.local_unit_data.insert(k.into(), v.into());
    }
    peers
        .local_app_data
        .insert(takeover::PGB_DBS_CONFIG.into(), MAP.into());
    peers
        .local_app_data
        .insert("current_port".into(), "6432".into());
    s.with_secret(owned(
        APP_SECRET,
        &state::app_secret_label(APP),
        SecretContent::new()
            .with("auth-file", "\"pgbouncer_auth_relation_id_3\" \"md5abc\"\n")
            .with("admin-password", "admin-pw")
            .with("monitoring-password", "stats-pw")
            .with("cfg-file", "[pgbouncer]\n")
            .with("chain", takeover::DELETED),
    ))
}

/// A secret the application owns, labelled.
fn owned(id: &str, label: &str, content: SecretContent) -> SecretState {
    let mut secret = SecretState::new(SecretId::parse(id).unwrap(), Owner::App, content);
    secret.owner_label = Some(label.into());
    secret
}

/// A `database` client the reference answered in a secret (relation 4) and
/// one answered in the bag (relation 5).
fn with_database_clients(s: State) -> State {
    let mut user = owned(
        USER_SECRET,
        &secret_label(DATABASE, SECRET_CLIENT, "user"),
        SecretContent::new()
            .with("username", "relation_id_4")
            .with("password", "pw-secret")
            .with(
                "uris",
                "postgresql://relation_id_4:pw-secret@svc:6432/app_db",
            ),
    );
    user.grants.insert((SECRET_CLIENT, None));
    s.with_relation(
        client(SECRET_CLIENT, "app_db", &[("extra-user-roles", "admin")]).local_app_data(&[
            ("database", "app_db"),
            (
                "endpoints",
                "pgbouncer-k8s-service.test.svc.cluster.local:6432",
            ),
            ("secret-user", USER_SECRET),
            ("version", "15.18"),
        ]),
    )
    .with_secret(user)
    .with_relation(
        RelationState::new(DATABASE, BAG_CLIENT, "bag-app")
            .remote_app_data(&[("database", "bag_db")])
            .remote_unit("bag-app/0", &[])
            .local_app_data(&[
                ("database", "bag_db"),
                (
                    "endpoints",
                    "pgbouncer-k8s-service.test.svc.cluster.local:6432",
                ),
                ("username", "relation_id_5"),
                ("password", "pw-bag"),
            ]),
    )
}

/// A legacy client relation on `endpoint` that asked with `request` (its
/// unit mirrors it) and that the reference answered with `answered`.
fn legacy(
    endpoint: &str,
    id: u64,
    request: &[(&str, &str)],
    answered: &[(&str, &str)],
) -> RelationState {
    let mut unit = vec![("egress-subnets", "10.9.0.1/32")];
    unit.extend_from_slice(request);
    RelationState::new(endpoint, id, "waltz")
        .remote_app_data(request)
        .remote_unit("waltz/0", &unit)
        .local_app_data(answered)
}

/// A legacy `db` client the reference answered (relation 6).
fn with_legacy_client(s: State) -> State {
    s.with_relation(legacy(
        state::DB,
        LEGACY_CLIENT,
        &[("database", "legacy_db"), ("extensions", "citext")],
        &[
            ("database", "legacy_db"),
            ("user", LEGACY_USER),
            ("password", "pw-legacy"),
            ("extensions", "citext"),
            ("state", "master"),
        ],
    ))
}

/// The bag client's answer without its password (an older revision's, or lost).
fn without_bag_password(mut s: State) -> State {
    s.relations
        .iter_mut()
        .find(|r| r.id == BAG_CLIENT)
        .unwrap()
        .local_app_data
        .remove("password");
    s
}

fn reference_leader() -> State {
    with_legacy_client(with_database_clients(reference_unit(0, true)))
}

fn clients(s: &State) -> Clients {
    serde_json::from_str(&peer_app(s)[state::CLIENTS]).unwrap()
}

fn content(s: &State, label: &str) -> SecretContent {
    s.secret_by_label(label)
        .and_then(|x| x.latest_content())
        .cloned()
        .unwrap_or_else(|| panic!("no secret {label}"))
}

fn passwords(pg: &FakeConnector) -> Vec<(String, String)> {
    pg.server()
        .users
        .into_iter()
        .filter(|(u, _)| !u.starts_with("pgbouncer_auth_"))
        .map(|(u, (p, _))| (u, p))
        .collect()
}

#[test]
fn every_client_keeps_its_user_password_and_database() {
    let pg = backend();
    let before = passwords(&pg);
    let out = go(&pg, &reference_leader(), Event::UpgradeCharm);
    let s = &out.state;

    // Ours: every client recorded with its database, its password where ours keeps it.
    let records = clients(s);
    assert_eq!(records[&SECRET_CLIENT].database.as_deref(), Some("app_db"));
    assert!(records[&SECRET_CLIENT].privileged, "asked for admin");
    assert_eq!(
        records[&SECRET_CLIENT].secret.as_deref(),
        Some(SecretId::parse(USER_SECRET).unwrap().to_string().as_str()),
        "the reference's user secret is adopted"
    );
    assert_eq!(records[&BAG_CLIENT].database.as_deref(), Some("bag_db"));
    assert_eq!(
        content(s, &secret_label(DATABASE, BAG_CLIENT, "user")).get("password"),
        Some("pw-bag")
    );
    assert_eq!(records[&LEGACY_CLIENT].legacy.as_deref(), Some("db"));
    assert_eq!(
        records[&LEGACY_CLIENT].extensions.as_deref(),
        Some("citext")
    );
    assert_eq!(
        content(s, &secret_label("db", LEGACY_CLIENT, "user")).get("password"),
        Some("pw-legacy")
    );
    // Every user keeps its password; every database is served.
    assert_eq!(passwords(&pg), before);
    let ini = ini(s, 0);
    for db in ["app_db =", "bag_db =", "legacy_db ="] {
        assert!(ini.contains(db), "{db} missing:\n{ini}");
    }
    // The clients are told the same credentials, at our endpoints.
    let bag = &s.relation(BAG_CLIENT).unwrap().local_app_data;
    assert_eq!(bag["password"], "pw-bag");
    assert_eq!(bag["endpoints"], "10.0.0.10:6432");
    assert_eq!(
        content(s, &secret_label(DATABASE, SECRET_CLIENT, "user")).get("password"),
        Some("pw-secret")
    );
    let legacy = &s.relation(LEGACY_CLIENT).unwrap().local_app_data;
    assert!(
        legacy["master"].contains("password=pw-legacy"),
        "{legacy:?}"
    );
    assert!(legacy["master"].contains("user=pgbouncer_k8s_user_6_test"));
    // The reference's keys are gone; ours are there.
    let app = peer_app(s);
    assert!(!app.contains_key(takeover::PGB_DBS_CONFIG));
    assert!(!app.contains_key("current_port"));
    assert!(app.contains_key(state::BACKEND_CLUSTER));
    let own = peer_unit(s);
    for key in takeover::REFERENCE_UNIT_KEYS {
        assert!(!own.contains_key(key), "{key} left");
    }
    assert_eq!(own[state::HOSTNAME], "10.0.0.10");
    let secret = content(s, &state::app_secret_label(APP));
    assert_eq!(secret.get("cfg-file"), None);
    assert_eq!(secret.get("chain"), None);
    assert_eq!(secret.get(state::ADMIN_PASSWORD), Some("admin-pw"));
    assert_eq!(secret.get(state::MONITORING_PASSWORD), Some("stats-pw"));
    assert_eq!(
        secret.get(state::AUTH_USER),
        Some("pgbouncer_auth_relation_id_3")
    );
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
}

#[test]
fn taking_over_twice_changes_nothing() {
    let pg = backend();
    let once = go(&pg, &reference_leader(), Event::UpgradeCharm).state;
    let twice = go(&pg, &once, Event::UpgradeCharm).state;
    assert_eq!(twice.relations, once.relations);
    assert_eq!(twice.secrets, once.secrets);
}

#[test]
fn a_db_admin_client_keeps_its_user_and_is_refused() {
    let pg = backend();
    let s = reference_unit(0, true).with_relation(legacy(
        state::DB_ADMIN,
        ADMIN_CLIENT,
        &[("database", "admin_db")],
        &[
            ("database", "admin_db"),
            ("user", ADMIN_USER),
            ("password", "pw-admin"),
        ],
    ));
    let out = go(&pg, &s, Event::UpgradeCharm);
    assert_eq!(
        content(&out.state, &secret_label("db-admin", ADMIN_CLIENT, "user")).get("password"),
        Some("pw-admin")
    );
    assert!(clients(&out.state)[&ADMIN_CLIENT].refused.is_some());
    assert_eq!(pg.server().users[ADMIN_USER].0, "pw-admin");
    assert!(matches!(out.state.unit_status, Status::Blocked(_)));
}

#[test]
fn an_older_revisions_peer_bag_passwords_are_moved_into_secrets() {
    let pg = backend();
    let mut s = with_database_clients(reference_unit(0, true));
    // An older revision: the client's password and the stats user's in the
    // peer bag, nothing in the relation's bag, no stats password in the secret.
    let peers = peers_mut(&mut s);
    peers
        .local_app_data
        .insert("relation_id_5".into(), "pw-bag".into());
    peers
        .local_app_data
        .insert("monitoring_password".into(), "old-stats-pw".into());
    s = without_bag_password(s);
    let app_secret = s
        .secrets
        .iter_mut()
        .find(|x| x.owner == Owner::App)
        .unwrap();
    let mut c = app_secret.latest_content().unwrap().clone();
    c = c
        .iter()
        .filter(|(k, _)| *k != state::MONITORING_PASSWORD)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    app_secret.revisions.insert(1, c);

    let out = go(&pg, &s, Event::UpgradeCharm);
    assert_eq!(
        content(&out.state, &secret_label(DATABASE, BAG_CLIENT, "user")).get("password"),
        Some("pw-bag")
    );
    assert_eq!(
        content(&out.state, &state::app_secret_label(APP)).get(state::MONITORING_PASSWORD),
        Some("old-stats-pw")
    );
    let app = peer_app(&out.state);
    assert!(!app.contains_key("relation_id_5"));
    assert!(!app.contains_key("monitoring_password"));
    assert_eq!(pg.server().users["relation_id_5"].0, "pw-bag");
}

#[test]
fn a_client_without_a_password_blocks_and_keeps_its_user() {
    let pg = backend();
    let mut s = with_database_clients(reference_unit(0, true));
    s = without_bag_password(s);
    let out = go(&pg, &s, Event::UpgradeCharm);
    match &out.state.unit_status {
        Status::Blocked(m) => {
            assert!(m.contains("relation 5: no password found"), "{m}");
            assert!(m.contains("remove the relation and add it again"), "{m}");
        }
        other => panic!("not blocked: {other:?}"),
    }
    assert_eq!(pg.server().users["relation_id_5"].0, "pw-bag");
    assert_eq!(
        clients(&out.state)[&BAG_CLIENT].database.as_deref(),
        Some("bag_db"),
        "its database is still served"
    );
    assert!(ini(&out.state, 0).contains("bag_db ="));
}

#[test]
fn an_application_secret_behind_internal_secret_is_taken_over() {
    let pg = backend();
    let mut s = reference_leader();
    // An older revision: the secret found by the URI in the peer bag, no label.
    s.secrets
        .iter_mut()
        .find(|x| x.owner_label.as_deref() == Some(state::app_secret_label(APP).as_str()))
        .map(|x| x.owner_label = None)
        .unwrap();
    let uri = SecretId::parse(APP_SECRET).unwrap().to_string();
    peers_mut(&mut s)
        .local_app_data
        .insert(takeover::INTERNAL_SECRET.into(), uri);

    let out = go(&pg, &s, Event::UpgradeCharm);
    let secret = content(&out.state, &state::app_secret_label(APP));
    assert_eq!(secret.get(state::ADMIN_PASSWORD), Some("admin-pw"));
    assert_eq!(secret.get(state::MONITORING_PASSWORD), Some("stats-pw"));
    assert_eq!(
        secret.get(state::AUTH_USER),
        Some("pgbouncer_auth_relation_id_3"),
        "the auth user named in the old secret's auth file is kept"
    );
    assert_eq!(secret.get("cfg-file"), None);
    assert!(!peer_app(&out.state).contains_key(takeover::INTERNAL_SECRET));
    assert_eq!(out.state.unit_status, Status::Active(String::new()));
    // Once taken over, nothing is left to do.
    let twice = go(&pg, &out.state, Event::UpgradeCharm).state;
    assert_eq!(twice.secrets, out.state.secrets);
}

#[test]
fn an_unreadable_map_is_kept_and_the_clients_are_taken_over_from_their_bags() {
    let pg = backend();
    let mut s = with_database_clients(reference_unit(0, true));
    peers_mut(&mut s)
        .local_app_data
        .insert(takeover::PGB_DBS_CONFIG.into(), "{not json".into());
    let out = go(&pg, &s, Event::UpgradeCharm);
    let records = clients(&out.state);
    assert_eq!(records[&SECRET_CLIENT].database.as_deref(), Some("app_db"));
    assert_eq!(records[&BAG_CLIENT].database.as_deref(), Some("bag_db"));
    assert!(peer_app(&out.state).contains_key(takeover::PGB_DBS_CONFIG));
    assert!(
        matches!(&out.state.unit_status, Status::Blocked(m) if m.contains("cannot read pgb_dbs_config"))
    );
}

#[test]
fn a_follower_drops_the_reference_unit_keys() {
    let pg = backend();
    let leader = go(&pg, &reference_leader(), Event::UpgradeCharm).state;
    let follower = share_from_leader(&leader, reference_unit(1, false));
    let out = go(&pg, &follower, Event::UpgradeCharm);
    let own = peer_unit(&out.state);
    for key in takeover::REFERENCE_UNIT_KEYS {
        assert!(!own.contains_key(key), "{key} left");
    }
    assert!(own.contains_key(state::SERVING), "it acknowledges: {own:?}");
    assert!(own.contains_key(state::HOSTNAME));
    assert!(ini(&out.state, 0).contains("bag_db ="));
}

#[test]
fn a_deployment_of_ours_is_left_alone() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let ours = ready_leader(&pg);
    let out = go(&pg, &ours, Event::UpgradeCharm);
    assert_eq!(
        out.state.relation(PEER_ID).unwrap().local_app_data,
        ours.relation(PEER_ID).unwrap().local_app_data
    );
    assert_eq!(out.state.secrets, ours.secrets);
}

#[test]
fn the_map_reads_relation_ids_and_names_and_leaves_the_wildcard_out() {
    let map = takeover::parse_map(MAP).unwrap();
    assert_eq!(map.len(), 3);
    assert_eq!(map[&6], "legacy_db");
    assert!(takeover::parse_map("[]").is_err());
}
