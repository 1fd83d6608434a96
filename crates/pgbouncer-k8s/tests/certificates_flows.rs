//! The `certificates` relation, the actions and the wildcard's read-only
//! databases on the in-memory model.
//!
//! | node | test |
//! |---|---|
//! | created: key generated, kept in the unit secret, CSR published (wire format) | `created_publishes_a_csr_and_keeps_the_key_in_a_unit_secret` |
//! | changed: certificate for our CSR installed, files 0400, TLS lines, reload | `an_issued_certificate_is_installed_and_clients_are_told` |
//! | clients: `tls`/`tls-ca` in `secret-tls` when asked as secrets, else in the bag | `an_issued_certificate_is_installed_and_clients_are_told` |
//! | changed: certificate for another CSR or key ignored | `certificates_for_other_requests_are_ignored` |
//! | changed: revoked → new CSR, the old certificate served meanwhile | `revoked_and_expiring_certificates_are_renewed` |
//! | update-status: nine tenths through the validity → new CSR | `revoked_and_expiring_certificates_are_renewed` |
//! | changed: request refused / provider data invalid → status names it | `refusals_and_bad_provider_data_show_in_the_status` |
//! | broken: TLS lines and files go, clients get `tls="False"`, the key stays | `broken_turns_tls_off_and_keeps_the_key` |
//! | a unit is handed out once it serves TLS; TLS stays on meanwhile | `a_unit_joins_the_endpoints_once_it_serves_tls_and_tls_stays_on_meanwhile` |
//! | set-tls-private-key: PEM, base64, generated, bad key | `set_tls_private_key_replaces_the_key_or_fails_cleanly` |
//! | pre-upgrade-check: ready, and each failing check | `pre_upgrade_check_names_the_first_problem` |
//! | update-status: `readonly_dbs` collected when a wildcard and replicas exist | `the_wildcard_reaches_the_backends_other_databases_read_only` |

#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine as _;
use charm::{Event, Status};
use charm_testing::{event, run_action, Output, RelationState, State};
use client_interface::provider::secret_label;
use pgbouncer_k8s::flows::certificates::unit_subject;
use pgbouncer_k8s::state::{self, CERTIFICATES, DATABASE};
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::FakeConnector;
use serde_json::json;
use support::*;
use tls_certificates::testing::TestCa;
use tls_certificates::{self as tls, PrivateKey};

const TLS_ID: u64 = 20;
const PROVIDER: &str = "self-signed-certificates";

fn with_tls_relation(state: State) -> State {
    state.with_relation(
        RelationState::new(CERTIFICATES, TLS_ID, PROVIDER)
            .remote_unit(&format!("{PROVIDER}/0"), &[]),
    )
}

fn tls_event(state: &State) -> Event {
    event::relation_changed(state.relation(TLS_ID).unwrap(), None)
}

/// The CSR this unit published.
fn published_csr(state: &State) -> String {
    let raw = &state.relation(TLS_ID).unwrap().local_unit_data[tls::CSRS_KEY];
    let list: Vec<serde_json::Value> = serde_json::from_str(raw).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["ca"], false);
    list[0]["certificate_signing_request"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The provider answers `csr` with `certificate`, as the library writes it.
fn answer(mut state: State, ca: &TestCa, csr: &str, certificate: &str, revoked: bool) -> State {
    let mut entry = json!({
        "ca": ca.pem(),
        "certificate_signing_request": csr,
        "certificate": certificate,
        "chain": [certificate, ca.pem()],
    });
    if revoked {
        entry["revoked"] = json!(true);
    }
    let r = state.relations.iter_mut().find(|r| r.id == TLS_ID).unwrap();
    r.remote_app_data.insert(
        tls::CERTIFICATES_KEY.into(),
        serde_json::to_string(&[entry]).unwrap(),
    );
    state
}

fn unit_secret(state: &State) -> charm::SecretContent {
    state
        .secret_by_label(&state::unit_secret_label(APP))
        .expect("the unit secret")
        .latest_content()
        .unwrap()
        .clone()
}

/// A leader serving one client that asked for TLS fields as secrets, with the
/// certificates relation created.
fn leader_with_client(pg: &FakeConnector) -> Output {
    let s = ready_leader(pg).with_relation(client(4, "app_db", &[]));
    let s = go(
        pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state;
    let s = with_tls_relation(s);
    go(pg, &s, event::relation_created(s.relation(TLS_ID).unwrap()))
}

/// The leader with a certificate installed.
fn leader_with_tls(pg: &FakeConnector, ca: &mut TestCa) -> Output {
    let s = leader_with_client(pg).state;
    let csr = published_csr(&s);
    let cert = ca.issue(&csr, 90);
    let s = answer(s, ca, &csr, &cert, false);
    go(pg, &s, tls_event(&s))
}

#[test]
fn created_publishes_a_csr_and_keeps_the_key_in_a_unit_secret() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let out = leader_with_client(&pg);
    let s = &out.state;
    let csr = published_csr(s);
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----") && !csr.ends_with('\n'));
    let secret = s.secret_by_label(&state::unit_secret_label(APP)).unwrap();
    assert_eq!(secret.owner, charm_testing::Owner::Unit);
    let content = secret.latest_content().unwrap();
    let key = PrivateKey::parse(content.get("key").unwrap()).unwrap();
    assert!(tls::csr_matches_key(&csr, &key));
    assert_eq!(content.get("csr"), Some(csr.as_str()));
    assert_eq!(content.get("cert"), None);
    for line in out.calls.lines() {
        assert!(
            !line.contains("PRIVATE KEY"),
            "the key is in no command line"
        );
    }
    for r in &s.relations {
        for v in r.local_unit_data.values().chain(r.local_app_data.values()) {
            assert!(!v.contains("PRIVATE KEY"), "the key is in no databag");
        }
    }
    assert!(!ini(s, 0).contains("client_tls"));

    let again = go(&pg, s, tls_event(s));
    assert_eq!(published_csr(&again.state), csr, "the same request stands");
    assert_eq!(again.state.secrets, s.secrets);
}

#[test]
fn an_issued_certificate_is_installed_and_clients_are_told() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut ca = TestCa::new("test-ca");
    let before = leader_with_client(&pg).state;
    let out = leader_with_tls(&pg, &mut ca);
    let s = &out.state;
    let content = unit_secret(s);
    let cert = content.get("cert").unwrap().to_string();
    assert_eq!(content.get("cauth"), Some(ca.pem().as_str()));
    assert_eq!(
        content.get("chain"),
        Some(format!("{cert}\n{}", ca.pem()).as_str())
    );

    let container = s.container(CONTAINER).unwrap();
    for (file, text) in [
        ("key.pem", content.get("key").unwrap().to_string()),
        ("cert.pem", cert.clone()),
        ("ca.pem", format!("{cert}\n{}", ca.pem())),
    ] {
        let f = &container.files[&format!("/var/lib/pgbouncer/{file}")];
        assert_eq!(String::from_utf8_lossy(&f.content), text, "{file}");
        assert_eq!(
            (f.permissions, f.user.as_deref()),
            (0o400, Some("postgres"))
        );
    }
    for i in 0..2 {
        let ini = ini(s, i);
        assert!(ini.contains("client_tls_sslmode = prefer"), "{ini}");
        assert!(ini.contains("client_tls_cert_file = /var/lib/pgbouncer/cert.pem"));
    }
    let new_ops = &container.ops[before.container(CONTAINER).unwrap().ops.len()..];
    assert!(
        new_ops
            .iter()
            .all(|op| matches!(op, charm_testing::ServiceOp::Signal(sig, _) if sig == "SIGHUP")),
        "a reload, no restart: {new_ops:?}"
    );
    assert_eq!(
        peer_unit(s)[state::TLS_CA],
        format!("{cert}\n{}", ca.pem()),
        "the unit acknowledges what it serves"
    );
    let tls_secret = s
        .secret_by_label(&secret_label(DATABASE, 4, "tls"))
        .unwrap();
    let fields = tls_secret.latest_content().unwrap();
    assert_eq!(fields.get("tls"), Some("True"));
    assert_eq!(
        fields.get("tls-ca"),
        Some(format!("{cert}\n{}", ca.pem()).as_str())
    );
    assert_eq!(s.unit_status, Status::Active(String::new()));

    // A client that did not ask for TLS fields as secrets gets them in its bag.
    let plain = RelationState::new(state::DATABASE, 6, "plain-app")
        .remote_app_data(&[
            ("database", "plain_db"),
            ("requested-secrets", r#"["username","password"]"#),
        ])
        .remote_unit("plain-app/0", &[]);
    let s2 = s.clone().with_relation(plain);
    let out = go(
        &pg,
        &s2,
        event::relation_changed(s2.relation(6).unwrap(), None),
    );
    let bag = &out.state.relation(6).unwrap().local_app_data;
    assert_eq!(bag["tls"], "True");
    assert_eq!(bag["tls-ca"], format!("{cert}\n{}", ca.pem()));
    assert!(!bag.contains_key("secret-tls"));

    // The same answer again changes nothing.
    let again = go(&pg, s, tls_event(s));
    assert_eq!(again.state.secrets, s.secrets);
    assert_eq!(
        again.state.container(CONTAINER).unwrap().ops,
        s.container(CONTAINER).unwrap().ops
    );
}

#[test]
fn certificates_for_other_requests_are_ignored() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut ca = TestCa::new("ca");
    let s = leader_with_client(&pg).state;
    let stranger = PrivateKey::generate().unwrap();
    let subject = unit_subject(APP, 0, "m", "10.0.0.10");
    let their_csr = tls::csr(&stranger, &subject).unwrap();
    let their_cert = ca.issue(&their_csr, 90);
    let s1 = answer(s.clone(), &ca, &their_csr, &their_cert, false);
    let out = go(&pg, &s1, tls_event(&s1));
    assert_eq!(unit_secret(&out.state).get("cert"), None);
    // Our CSR, but a certificate for another key.
    let ours = published_csr(&s);
    let s2 = answer(s, &ca, &ours, &their_cert, false);
    let out = go(&pg, &s2, tls_event(&s2));
    assert_eq!(unit_secret(&out.state).get("cert"), None);
    assert!(!ini(&out.state, 0).contains("client_tls"));
}

#[test]
fn revoked_and_expiring_certificates_are_renewed() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut ca = TestCa::new("ca");
    let s = leader_with_tls(&pg, &mut ca).state;
    let csr = published_csr(&s);
    let cert = unit_secret(&s).get("cert").unwrap().to_string();

    let revoked = answer(s.clone(), &ca, &csr, &cert, true);
    let out = go(&pg, &revoked, tls_event(&revoked));
    let renewed = published_csr(&out.state);
    assert!(!tls::same_pem(&renewed, &csr), "a new request");
    assert_eq!(unit_secret(&out.state).get("csr"), Some(renewed.as_str()));
    assert_eq!(
        unit_secret(&out.state).get("cert"),
        Some(cert.as_str()),
        "served until the new one comes"
    );
    assert!(ini(&out.state, 0).contains("client_tls"));

    // A certificate nine tenths through its validity, found by update-status.
    let now = tls::now();
    let old = ca.sign(&csr, now - 95 * 86_400, now + 5 * 86_400);
    let s2 = answer(s.clone(), &ca, &csr, &old, false);
    let installed = go(&pg, &s2, tls_event(&s2)).state;
    assert_eq!(unit_secret(&installed).get("cert"), Some(old.as_str()));
    let out = go(&pg, &installed, Event::UpdateStatus);
    assert!(!tls::same_pem(&published_csr(&out.state), &csr));
    assert!(out
        .state
        .logs
        .iter()
        .any(|(_, m)| m.contains("due for renewal")));
}

#[test]
fn refusals_and_bad_provider_data_show_in_the_status() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = leader_with_client(&pg).state;
    let csr = published_csr(&s);
    let mut refused = s.clone();
    refused
        .relations
        .iter_mut()
        .find(|r| r.id == TLS_ID)
        .unwrap()
        .remote_app_data
        .insert(
            tls::ERRORS_KEY.into(),
            json!([{"csr": csr, "error": {"code": 102, "name": "DOMAIN_NOT_ALLOWED", "message": "domain not allowed"}}]).to_string(),
        );
    let out = go(&pg, &refused, tls_event(&refused));
    assert_eq!(
        out.state.unit_status,
        Status::Waiting(
            "the certificate request was refused (DOMAIN_NOT_ALLOWED): domain not allowed".into()
        )
    );

    let mut bad = s;
    bad.relations
        .iter_mut()
        .find(|r| r.id == TLS_ID)
        .unwrap()
        .remote_app_data
        .insert(tls::CERTIFICATES_KEY.into(), "not json".into());
    let out = go(&pg, &bad, tls_event(&bad));
    assert!(
        matches!(&out.state.unit_status, Status::Waiting(m) if m.contains("certificates")),
        "{:?}",
        out.state.unit_status
    );
}

#[test]
fn broken_turns_tls_off_and_keeps_the_key() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut ca = TestCa::new("ca");
    let s = leader_with_tls(&pg, &mut ca).state;
    let key = unit_secret(&s).get("key").unwrap().to_string();
    let event = event::relation_broken(s.relation(TLS_ID).unwrap());
    let mut gone = s.clone();
    gone.relations.retain(|r| r.id != TLS_ID);
    let out = go(&pg, &gone, event);
    let st = &out.state;
    let content = unit_secret(st);
    assert_eq!(content.get("key"), Some(key.as_str()));
    assert_eq!((content.get("cert"), content.get("csr")), (None, None));
    assert!(!ini(st, 0).contains("client_tls") && !ini(st, 1).contains("client_tls"));
    let container = st.container(CONTAINER).unwrap();
    assert!(!container.files.contains_key("/var/lib/pgbouncer/key.pem"));
    assert!(!peer_unit(st).contains_key(state::TLS_CA));
    let fields = st
        .secret_by_label(&secret_label(DATABASE, 4, "tls"))
        .unwrap()
        .latest_content()
        .unwrap()
        .clone();
    assert_eq!(fields.get("tls"), Some("False"));
    assert_eq!(fields.get("tls-ca"), None);

    // A new relation asks again with the same key.
    let again = with_tls_relation(st.clone());
    let out = go(
        &pg,
        &again,
        event::relation_created(again.relation(TLS_ID).unwrap()),
    );
    let k = PrivateKey::parse(&key).unwrap();
    assert!(tls::csr_matches_key(&published_csr(&out.state), &k));
}

#[test]
fn a_unit_joins_the_endpoints_once_it_serves_tls_and_tls_stays_on_meanwhile() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut ca = TestCa::new("ca");
    let mut s = leader_with_tls(&pg, &mut ca).state;
    let tls_of = |st: &State| {
        st.secret_by_label(&secret_label(DATABASE, 4, "tls"))
            .unwrap()
            .latest_content()
            .unwrap()
            .get("tls")
            .map(str::to_string)
    };
    let read_only =
        |st: &State| st.relation(4).unwrap().local_app_data["read-only-endpoints"].clone();
    assert_eq!(tls_of(&s).as_deref(), Some("True"));
    let alone = read_only(&s);

    // Unit 1 serves the configuration but has no certificate yet: clients
    // are not sent to it, and are not told to drop TLS.
    let cfg_hash = peer_unit(&s)[state::SERVING].clone();
    let peers = s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap();
    peers.remote_units.insert(
        format!("{APP}/1"),
        charm_testing::bag(&[("hostname", "10.0.0.11"), ("cfg_hash", &cfg_hash)]),
    );
    let joined = event::relation_changed(s.relation(PEER_ID).unwrap(), Some(&format!("{APP}/1")));
    let out = go(&pg, &s, joined.clone());
    assert_eq!(tls_of(&out.state).as_deref(), Some("True"));
    assert_eq!(read_only(&out.state), alone, "unit 1 has no TLS yet");

    // Its certificate installed, it is handed out.
    let mut s = out.state;
    let ca_bundle = peer_unit(&s)[state::TLS_CA].clone();
    s.relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .remote_units
        .get_mut(&format!("{APP}/1"))
        .unwrap()
        .insert(state::TLS_CA.into(), ca_bundle);
    let out = go(&pg, &s, joined);
    assert_eq!(tls_of(&out.state).as_deref(), Some("True"));
    assert_eq!(read_only(&out.state), "10.0.0.11:6432");
}

#[test]
fn set_tls_private_key_replaces_the_key_or_fails_cleanly() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut ca = TestCa::new("ca");
    let s = leader_with_tls(&pg, &mut ca).state;
    let params = |v: serde_json::Value| v.as_object().unwrap().clone();

    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkcs1 = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pkcs1);
    for given in [pkcs1.clone(), b64] {
        let out = run_action(
            &mut charm(&pg),
            &s,
            "set-tls-private-key",
            params(json!({ "private-key": given })),
        )
        .unwrap();
        assert_eq!(out.action.failure, None);
        assert_eq!(out.action.results["certificate-requested"], "true");
        let content = unit_secret(&out.state);
        let key = PrivateKey::parse(content.get("key").unwrap()).unwrap();
        assert_eq!(key, PrivateKey::parse(&pkcs1).unwrap());
        assert!(tls::csr_matches_key(&published_csr(&out.state), &key));
        assert_eq!(
            content.get("cert"),
            None,
            "the old certificate is for the old key"
        );
        assert!(!ini(&out.state, 0).contains("client_tls"));
        for line in out.calls.lines() {
            assert!(!line.contains("PRIVATE KEY"));
        }
    }

    let out = run_action(
        &mut charm(&pg),
        &s,
        "set-tls-private-key",
        params(json!({})),
    )
    .unwrap();
    assert_eq!(out.action.failure, None);
    assert_ne!(
        unit_secret(&out.state).get("key"),
        unit_secret(&s).get("key")
    );

    for bad in [
        "garbage",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ] {
        let out = run_action(
            &mut charm(&pg),
            &s,
            "set-tls-private-key",
            params(json!({ "private-key": bad })),
        )
        .unwrap();
        let failure = out.action.failure.unwrap();
        assert!(failure.starts_with("invalid private key"), "{failure}");
        assert!(!failure.contains(bad));
        assert_eq!(out.state.secrets, s.secrets, "nothing changed");
        assert_eq!(out.state.relations, s.relations);
    }

    // Without the relation the key and CSR are only stored.
    let mut alone = s.clone();
    alone.relations.retain(|r| r.id != TLS_ID);
    let out = run_action(
        &mut charm(&pg),
        &alone,
        "set-tls-private-key",
        params(json!({})),
    )
    .unwrap();
    assert_eq!(out.action.results["certificate-requested"], "false");
    assert!(unit_secret(&out.state).get("csr").is_some());
}

#[test]
fn pre_upgrade_check_names_the_first_problem() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = ready_leader(&pg);
    let check = |st: &State, pg: &FakeConnector| {
        run_action(
            &mut charm(pg),
            st,
            "pre-upgrade-check",
            serde_json::Map::new(),
        )
        .unwrap()
        .action
    };
    let ok = check(&s, &pg);
    assert_eq!(ok.failure, None);
    assert_eq!(
        ok.results["result"],
        "the application is ready to be upgraded"
    );

    let failure = |st: &State, pg: &FakeConnector| check(st, pg).failure.unwrap();
    assert_eq!(
        failure(&s.clone().leader(false), &pg),
        "not ready to upgrade: run this action on the leader unit"
    );
    let mut blocked = s.clone();
    blocked.unit_status = Status::Blocked("something".into());
    assert_eq!(
        failure(&blocked, &pg),
        format!("not ready to upgrade: not every unit is active: {APP}/0 is blocked (something)")
    );
    let mut behind = s.clone();
    behind
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .remote_units
        .insert(
            format!("{APP}/1"),
            charm_testing::bag(&[("cfg_hash", "old")]),
        );
    assert_eq!(
        failure(&behind, &pg),
        format!("not ready to upgrade: not every unit serves the published configuration: {APP}/1")
    );
    let mut stopped = s.clone();
    stopped
        .containers
        .get_mut(CONTAINER)
        .unwrap()
        .running
        .remove("pgbouncer_1");
    assert_eq!(
        failure(&stopped, &pg),
        format!("not ready to upgrade: PgBouncer service pgbouncer_1 is not running on {APP}/0")
    );
    let down = FakeConnector::up_with(&["pgbouncer"]);
    down.0.borrow_mut().down = Some("connection refused".into());
    assert_eq!(
        failure(&s, &down),
        "not ready to upgrade: PostgreSQL cannot be reached: PostgreSQL: connection refused"
    );
    let mut bad_config = s.clone();
    bad_config.config.insert("pool_mode".into(), json!("nope"));
    assert!(failure(&bad_config, &pg).contains("invalid config option pool_mode"));
    let mut no_backend = s.clone();
    no_backend.relations.retain(|r| r.id != BACKEND_ID);
    assert_eq!(
        failure(&no_backend, &pg),
        "not ready to upgrade: the backend-database relation is not ready"
    );
}

#[test]
fn the_wildcard_reaches_the_backends_other_databases_read_only() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s =
        ready_leader(&pg).with_relation(client(4, "admin_db", &[("extra-user-roles", "CREATEDB")]));
    let s = go(
        &pg,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    )
    .state;
    pg.0.borrow_mut()
        .databases
        .extend(["reports".to_string(), "legacy".to_string()]);
    let out = go(&pg, &s, Event::UpdateStatus);
    let st = &out.state;
    assert_eq!(peer_app(st)[state::READONLY_DBS], r#"["legacy","reports"]"#);
    let cfg = &peer_app(st)[state::CFG_FILE];
    assert!(
        cfg.contains("reports_readonly = host=10.0.1.2,10.0.1.3 port=5432 dbname=reports auth_dbname=admin_db"),
        "{cfg}"
    );
    assert!(ini(st, 0).contains("legacy_readonly = host=10.0.1.2,10.0.1.3"));
    assert!(!cfg.contains("postgres_readonly") && !cfg.contains("pgbouncer_readonly"));

    // PostgreSQL down: the last list stays.
    pg.0.borrow_mut().down = Some("gone".into());
    let out = go(&pg, st, Event::UpdateStatus);
    assert_eq!(
        peer_app(&out.state)[state::READONLY_DBS],
        r#"["legacy","reports"]"#
    );
    pg.0.borrow_mut().down = None;

    // Without a wildcard nobody asks PostgreSQL.
    let plain = ready_leader(&pg).with_relation(client(5, "app_db", &[]));
    let plain = go(
        &pg,
        &plain,
        event::relation_changed(plain.relation(5).unwrap(), None),
    )
    .state;
    let before = pg.server().sessions.len();
    let out = go(&pg, &plain, Event::UpdateStatus);
    assert_eq!(pg.server().sessions.len(), before);
    assert!(!peer_app(&out.state).contains_key(state::READONLY_DBS));
}
