//! TLS on the in-memory model: the `certificates` relation, the
//! `set-tls-private-key` action and `receive-ca-cert`.
//!
//! | node | test |
//! |---|---|
//! | created: key generated, kept in the unit secret, CSR published with the unit's names | `created_publishes_a_csr_and_keeps_the_key_in_a_unit_secret` |
//! | changed: certificate for our CSR installed, files 0400, `ssl`, the API's certificate, restart, Patroni over HTTPS | `an_issued_certificate_turns_tls_on_and_clients_are_told` |
//! | clients: `tls`/`tls-ca` in `secret-tls` once every unit serves TLS | `an_issued_certificate_turns_tls_on_and_clients_are_told`, `clients_get_tls_only_once_every_unit_serves_it` |
//! | changed: a renewed certificate → files rewritten, Patroni reloaded, no restart | `a_renewed_certificate_is_a_reload` |
//! | changed: revoked → new CSR; update-status: due for renewal → new CSR | `revoked_and_expiring_certificates_are_asked_for_again` |
//! | changed: certificate for another key ignored | `certificates_for_another_key_are_ignored` |
//! | changed: request refused / provider data invalid → status names it | `refusals_and_bad_provider_data_show_in_the_status` |
//! | broken: files and TLS lines go, restart, clients told `tls="False"`, the key stays | `broken_turns_tls_off_and_keeps_the_key` |
//! | set-tls-private-key: given key, generated key, bad key | `set_tls_private_key_replaces_the_key_or_fails_cleanly` |
//! | receive-ca-cert: the CA added to the CA file, removed on broken | `an_operator_ca_joins_the_ca_file_until_its_relation_goes` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::secret::SecretId;
use charm::{Event, Status};
use charm_testing::{event, Output, RelationState, ServiceOp, State};
use postgresql_k8s::flows::certificates::unit_subject;
use postgresql_k8s::state::{self, CERTIFICATES, RECEIVE_CA};
use postgresql_k8s::workload::{CONTAINER, SERVICE};
use serde_json::json;
use support::*;
use tls_certificates::testing::TestCa;
use tls_certificates::{self as tls, PrivateKey};

const TLS_ID: u64 = 20;
const CA_ID: u64 = 21;
const CLIENT: u64 = 5;
const PROVIDER: &str = "self-signed-certificates";
const CERT_FILE: &str = "/var/lib/postgresql/data/cert.pem";
const CA_FILE: &str = "/var/lib/postgresql/data/ca.pem";

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

fn file(state: &State, path: &str) -> Option<String> {
    state.container(CONTAINER).unwrap().file_text(path)
}

/// What the client was told about TLS, from its TLS secret.
fn told(state: &State) -> (Option<String>, Option<String>) {
    let bag = &state.relation(CLIENT).unwrap().local_app_data;
    let id = SecretId::parse(&bag["secret-tls"]).unwrap();
    let content = state.secret(&id).unwrap().latest_content().unwrap().clone();
    (
        content.get("tls").map(str::to_string),
        content.get("tls-ca").map(str::to_string),
    )
}

/// The leader of a one-unit cluster serving a client that asks for its TLS
/// fields as secrets, with the certificates relation created.
fn leader_with_client() -> (World, Output) {
    let w = World::new(&[(0, "leader", "running")]);
    let s = initialised(unit(0, true), &[0]).with_relation(client(CLIENT, "shop", &[]));
    let s = w
        .go(
            &s,
            event::relation_changed(s.relation(CLIENT).unwrap(), None),
        )
        .state;
    let s = w
        .go(
            &s,
            event::relation_changed(s.relation(PEER_ID).unwrap(), None),
        )
        .state;
    let s = with_tls_relation(s);
    let out = w.go(&s, event::relation_created(s.relation(TLS_ID).unwrap()));
    (w, out)
}

/// The leader with a certificate installed.
fn leader_with_tls(ca: &mut TestCa) -> (World, Output) {
    let (w, out) = leader_with_client();
    let s = out.state;
    let csr = published_csr(&s);
    let cert = ca.issue(&csr, 90);
    let s = answer(s, ca, &csr, &cert, false);
    let out = w.go(&s, tls_event(&s));
    (w, out)
}

#[test]
fn created_publishes_a_csr_and_keeps_the_key_in_a_unit_secret() {
    let (w, out) = leader_with_client();
    let s = &out.state;
    let csr = published_csr(s);
    let content = unit_secret(s);
    let key = PrivateKey::parse(content.get("key").unwrap()).unwrap();
    assert!(tls::csr_matches_key(&csr, &key));
    assert_eq!(content.get("csr"), Some(csr.as_str()));
    assert_eq!(content.get("cert"), None);
    let text = String::from_utf8(
        openssl::x509::X509Req::from_pem(csr.as_bytes())
            .unwrap()
            .to_text()
            .unwrap(),
    )
    .unwrap();
    assert!(
        text.contains("CN=postgresql-k8s-0.postgresql-k8s-endpoints"),
        "{text}"
    );
    assert!(text.contains("IP Address:127.0.1.1"), "{text}");
    for line in out.calls.lines() {
        assert!(
            !line.contains("PRIVATE KEY"),
            "the key is in no command line"
        );
    }
    // No certificate yet: TLS stays off, nothing restarted.
    assert!(w.patroni.cluster_state().restarts.is_empty());
    assert_eq!(told(s).0.as_deref(), Some("False"));
    let subject = unit_subject(APP, 0, "m", &addr(0));
    assert!(subject
        .dns
        .contains(&"postgresql-k8s-primary.m.svc.cluster.local".to_string()));
}

#[test]
fn an_issued_certificate_turns_tls_on_and_clients_are_told() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_tls(&mut ca);
    let s = &out.state;
    let content = unit_secret(s);
    let cert = content.get("cert").unwrap().to_string();
    assert_eq!(content.get("cauth"), Some(ca.pem().as_str()));
    let bundle = format!("{cert}\n{}", ca.pem());
    assert_eq!(content.get("chain"), Some(bundle.as_str()));
    assert_eq!(file(s, CERT_FILE).as_deref(), Some(cert.as_str()));
    assert_eq!(file(s, CA_FILE).as_deref(), Some(bundle.as_str()));
    let key_file = &s.container(CONTAINER).unwrap().files["/var/lib/postgresql/data/key.pem"];
    assert_eq!(key_file.permissions, 0o400);
    let doc = patroni_doc(s);
    assert_eq!(doc["postgresql"]["parameters"]["ssl"], "on");
    assert_eq!(doc["postgresql"]["parameters"]["ssl_ca_file"], CA_FILE);
    assert_eq!(doc["restapi"]["certfile"], CERT_FILE);
    assert_eq!(w.patroni.cluster_state().restarts, [addr(0)]);
    assert_eq!(
        w.patroni.cluster_state().last_ca.as_deref(),
        Some(bundle.as_str()),
        "the API is spoken to over HTTPS, verified with the CA bundle"
    );
    assert_eq!(peer_unit(s)[state::TLS], "enabled");
    assert_eq!(told(s), (Some("True".into()), Some(bundle)));
}

#[test]
fn clients_get_tls_only_once_every_unit_serves_it() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_tls(&mut ca);
    // A second unit joins, without TLS yet: clients are told TLS is off.
    w.set_members(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let s = initialised(with_peers(out.state, &[1]), &[0, 1]);
    let out = w.go(
        &s,
        event::relation_changed(s.relation(PEER_ID).unwrap(), None),
    );
    assert_eq!(told(&out.state).0.as_deref(), Some("False"));
    // It serves TLS with the same CA: on again.
    let mut s = out.state;
    let ca_bundle = peer_unit(&s)[state::TLS_CA].clone();
    let peers = s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap();
    let other = peers.remote_units.get_mut(&unit_name(1)).unwrap();
    other.insert(state::TLS.into(), "enabled".into());
    other.insert(state::TLS_CA.into(), ca_bundle.clone());
    let out = w.go(
        &s,
        event::relation_changed(s.relation(PEER_ID).unwrap(), None),
    );
    assert_eq!(told(&out.state), (Some("True".into()), Some(ca_bundle)));
}

#[test]
fn a_renewed_certificate_is_a_reload() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_tls(&mut ca);
    let s = out.state;
    let ops_before = s.container(CONTAINER).unwrap().ops.len();
    let csr = published_csr(&s);
    let renewed = ca.issue(&csr, 120);
    let s = answer(s, &ca, &csr, &renewed, false);
    let out = w.go(&s, tls_event(&s));
    assert_eq!(
        file(&out.state, CERT_FILE).as_deref(),
        Some(renewed.as_str())
    );
    let ops = &out.state.container(CONTAINER).unwrap().ops;
    assert_eq!(
        ops[ops_before..],
        [ServiceOp::Signal("SIGHUP".into(), SERVICE.into())]
    );
    assert_eq!(w.patroni.cluster_state().restarts.len(), 1, "no restart");
}

#[test]
fn revoked_and_expiring_certificates_are_asked_for_again() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_tls(&mut ca);
    let s = out.state;
    let csr = published_csr(&s);
    let cert = unit_secret(&s).get("cert").unwrap().to_string();
    let revoked = answer(s.clone(), &ca, &csr, &cert, true);
    let out = w.go(&revoked, tls_event(&revoked));
    assert_ne!(published_csr(&out.state), csr, "a new request");
    assert!(logged(&out.state, "the provider revoked the certificate"));
    // Nine tenths through its validity: update-status asks again.
    let now = tls::now();
    let due = ca.sign(&csr, now - 95 * 86_400, now + 5 * 86_400);
    let s = answer(s, &ca, &csr, &due, false);
    let s = w.go(&s, tls_event(&s)).state;
    let out = w.go(&s, Event::UpdateStatus);
    assert_ne!(published_csr(&out.state), csr);
    assert!(logged(&out.state, "the certificate is due for renewal"));
}

#[test]
fn certificates_for_another_key_are_ignored() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_client();
    let s = out.state;
    let csr = published_csr(&s);
    let stranger = PrivateKey::generate().unwrap();
    let theirs = ca.issue(
        &tls::csr(&stranger, &unit_subject(APP, 0, "m", &addr(0))).unwrap(),
        90,
    );
    let s = answer(s, &ca, &csr, &theirs, false);
    let out = w.go(&s, tls_event(&s));
    assert_eq!(unit_secret(&out.state).get("cert"), None);
    assert_eq!(file(&out.state, CERT_FILE), None);
}

#[test]
fn refusals_and_bad_provider_data_show_in_the_status() {
    let (w, out) = leader_with_client();
    let mut s = out.state;
    let csr = published_csr(&s);
    let r = s.relations.iter_mut().find(|r| r.id == TLS_ID).unwrap();
    r.remote_app_data.insert(
        tls::ERRORS_KEY.into(),
        json!([{"csr": csr, "error": {"code": 102, "name": "DOMAIN_NOT_ALLOWED", "message": "no"}}])
            .to_string(),
    );
    let out = w.go(&s, tls_event(&s));
    assert!(
        matches!(&out.state.unit_status, Status::Waiting(m) if m.contains("DOMAIN_NOT_ALLOWED"))
    );
    let r = s.relations.iter_mut().find(|r| r.id == TLS_ID).unwrap();
    r.remote_app_data
        .insert(tls::CERTIFICATES_KEY.into(), "not json".into());
    let out = w.go(&s, tls_event(&s));
    assert!(
        matches!(&out.state.unit_status, Status::Waiting(m) if m.contains("certificates is not what the protocol says"))
    );
}

#[test]
fn broken_turns_tls_off_and_keeps_the_key() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_tls(&mut ca);
    let s = out.state;
    let key = unit_secret(&s).get("key").unwrap().to_string();
    let out = w.go(&s, event::relation_broken(s.relation(TLS_ID).unwrap()));
    let s = &out.state;
    assert_eq!(unit_secret(s).get("key"), Some(key.as_str()));
    assert_eq!(unit_secret(s).get("cert"), None);
    assert_eq!(file(s, CERT_FILE), None);
    let doc = patroni_doc(s);
    assert!(doc["postgresql"]["parameters"].get("ssl").is_none());
    assert!(doc["restapi"].get("certfile").is_none());
    assert_eq!(w.patroni.cluster_state().restarts.len(), 2, "on, then off");
    assert_eq!(w.patroni.cluster_state().last_ca, None, "plain HTTP again");
    assert!(!peer_unit(s).contains_key(state::TLS_CA));
    assert_eq!(told(s), (Some("False".into()), None));
}

#[test]
fn set_tls_private_key_replaces_the_key_or_fails_cleanly() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_tls(&mut ca);
    let s = out.state;
    let before = unit_secret(&s);
    let bad = w.action(
        &s,
        "set-tls-private-key",
        json!({"private-key": "not a key"}),
    );
    assert!(bad.action.failure.unwrap().contains("invalid private key"));
    assert_eq!(unit_secret(&bad.state), before, "nothing changed");
    let given = PrivateKey::generate().unwrap();
    let out = w.action(
        &s,
        "set-tls-private-key",
        json!({"private-key": given.pem()}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(out.action.results["certificate-requested"], "true");
    assert_eq!(unit_secret(&out.state).get("key"), Some(given.pem()));
    assert!(tls::csr_matches_key(&published_csr(&out.state), &given));
    assert_eq!(
        file(&out.state, CERT_FILE),
        None,
        "off until the new certificate"
    );
    let generated = w.action(&out.state, "set-tls-private-key", json!({}));
    assert_ne!(unit_secret(&generated.state).get("key"), Some(given.pem()));
}

#[test]
fn an_operator_ca_joins_the_ca_file_until_its_relation_goes() {
    let mut ca = TestCa::new("ca");
    let (w, out) = leader_with_tls(&mut ca);
    let operator = TestCa::new("operator").pem();
    let s = out.state.with_relation(
        RelationState::new(RECEIVE_CA, CA_ID, "operator-ca").remote_unit(
            "operator-ca/0",
            &[("ca", &serde_json::to_string(&operator).unwrap())],
        ),
    );
    let out = w.go(
        &s,
        event::relation_changed(s.relation(CA_ID).unwrap(), None),
    );
    let s = out.state;
    assert_eq!(
        unit_secret(&s).get("ca-operator-ca"),
        Some(operator.as_str())
    );
    assert!(file(&s, CA_FILE).unwrap().ends_with(&operator));
    assert!(file(&s, CA_FILE).unwrap().contains(&ca.pem()));
    assert_eq!(s.relation(CA_ID).unwrap().local_app_data["version"], "0");
    let out = w.go(&s, event::relation_broken(s.relation(CA_ID).unwrap()));
    assert_eq!(unit_secret(&out.state).get("ca-operator-ca"), None);
    assert!(!file(&out.state, CA_FILE).unwrap().contains(&operator));
}
