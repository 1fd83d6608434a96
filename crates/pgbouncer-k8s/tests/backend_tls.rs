//! PgBouncer verifying its backend's TLS on the in-memory model
//! (`docs/pgbouncer-flows.md`, backend-database).
//!
//! | node | test |
//! |---|---|
//! | the backend says `tls="True"` with a `tls-ca` (in `secret-tls`): the CA written, `verify-full` with `server_tls_ca_file`, the certificate checked | `a_backend_serving_tls_is_verified_with_its_ca` |
//! | its certificate does not verify → waiting, saying so; nothing recorded | `a_backend_that_does_not_verify_waits_and_says_so` |
//! | update-status, on every unit: a certificate that stopped verifying (replaced by one the CA did not sign) → waiting, saying so | `a_backend_certificate_that_stops_verifying_shows_on_update_status` |
//! | the backend turns TLS off → `prefer`, the CA file removed | `a_backend_without_tls_is_asked_for_it_unverified` |
//! | secret-changed on the backend's TLS secret: the leader republishes (`verify-full`), a follower writes the new CA | `a_change_of_the_backends_tls_secret_is_followed` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::secret::SecretId;
use charm::{SecretContent, Status};
use charm_testing::{event, Owner, SecretState, State};
use pgbouncer_k8s::state::BACKEND;
use pgbouncer_k8s::workload::CONTAINER;
use postgres_admin::testing::FakeConnector;
use support::*;

const TLS_SECRET: &str = "c0000000000000000b0d";
const CA: &str = "-----BEGIN CERTIFICATE-----\nBACKEND CA\n-----END CERTIFICATE-----";
const CA_FILE: &str = "/var/lib/pgbouncer/backend-ca.pem";

/// A leader whose backend publishes `tls` (and `tls-ca`) in its TLS secret.
fn leader_with_backend_tls(tls: &str, ca: Option<&str>) -> State {
    let id = SecretId::parse(TLS_SECRET).unwrap();
    let mut content = SecretContent::new().with("tls", tls);
    if let Some(ca) = ca {
        content.insert("tls-ca", ca);
    }
    let mut s = with_backend(unit(0, true)).with_secret(SecretState::new(
        id.clone(),
        Owner::Remote {
            app: "postgresql-k8s".into(),
            granted: true,
        },
        content,
    ));
    let backend = s
        .relations
        .iter_mut()
        .find(|r| r.endpoint == BACKEND)
        .unwrap();
    backend
        .remote_app_data
        .insert("secret-tls".into(), id.to_string());
    s
}

fn changed(pg: &FakeConnector, s: &State) -> State {
    go(
        pg,
        s,
        event::relation_changed(s.relation(BACKEND_ID).unwrap(), None),
    )
    .state
}

#[test]
fn a_backend_serving_tls_is_verified_with_its_ca() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = changed(&pg, &leader_with_backend_tls("True", Some(CA)));
    let ini = ini(&s, 0);
    assert!(ini.contains("server_tls_sslmode = verify-full\n"), "{ini}");
    assert!(
        ini.contains(&format!("server_tls_ca_file = {CA_FILE}\n")),
        "{ini}"
    );
    let file = &s.container(CONTAINER).unwrap().files[CA_FILE];
    assert_eq!(
        (file.content.as_slice(), file.permissions),
        (CA.as_bytes(), 0o400)
    );
    assert_eq!(
        pg.server().tls_checks,
        [("10.0.1.1".to_string(), CA.to_string())]
    );
    assert_eq!(s.unit_status, Status::Active(String::new()));
}

#[test]
fn a_backend_that_does_not_verify_waits_and_says_so() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    pg.0.borrow_mut().tls_unverified = Some("certificate verify failed".into());
    let s = changed(&pg, &leader_with_backend_tls("True", Some(CA)));
    assert!(
        matches!(&s.unit_status, Status::Waiting(m)
            if m.contains("its TLS certificate does not verify") && m.contains("certificate verify failed")),
        "{:?}",
        s.unit_status
    );
}

#[test]
fn a_backend_certificate_that_stops_verifying_shows_on_update_status() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let leader = changed(&pg, &leader_with_backend_tls("True", Some(CA)));
    assert_eq!(leader.unit_status, Status::Active(String::new()));
    let mut follower = share_from_leader(
        &leader,
        leader_with_backend_tls("True", Some(CA)).leader(false),
    );
    follower.unit = format!("{APP}/1");
    pg.0.borrow_mut().tls_unverified = Some("self-signed certificate".into());
    for unit in [leader, follower] {
        let after = go(&pg, &unit, event::update_status()).state;
        assert!(
            matches!(&after.unit_status, Status::Waiting(m)
                if m.contains("its TLS certificate does not verify")
                    && m.contains("self-signed certificate")),
            "{}: {:?}",
            unit.unit,
            after.unit_status
        );
    }
    // Verifying again, the next update-status clears it.
    pg.0.borrow_mut().tls_unverified = None;
    let healed = changed(&pg, &leader_with_backend_tls("True", Some(CA)));
    let healed = go(&pg, &healed, event::update_status()).state;
    assert_eq!(healed.unit_status, Status::Active(String::new()));
}

#[test]
fn a_backend_without_tls_is_asked_for_it_unverified() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let on = changed(&pg, &leader_with_backend_tls("True", Some(CA)));
    let mut off = on.clone();
    let secret = off
        .secrets
        .iter_mut()
        .find(|s| s.id == SecretId::parse(TLS_SECRET).unwrap())
        .unwrap();
    let next = secret.latest() + 1;
    secret
        .revisions
        .insert(next, SecretContent::new().with("tls", "False"));
    let off = changed(&pg, &off);
    let text = ini(&off, 0);
    assert!(text.contains("server_tls_sslmode = prefer\n"), "{text}");
    assert!(!text.contains("server_tls_ca_file"), "{text}");
    assert!(!off
        .container(CONTAINER)
        .unwrap()
        .files
        .contains_key(CA_FILE));
    // Without a CA there is nothing to verify with: unverified too.
    let no_ca = changed(&pg, &leader_with_backend_tls("True", None));
    assert!(ini(&no_ca, 0).contains("server_tls_sslmode = prefer\n"));
}

/// A new revision of the backend's TLS secret in `state`.
fn new_tls_revision(state: &mut State, tls: &str, ca: &str) {
    let secret = state
        .secrets
        .iter_mut()
        .find(|s| s.id == SecretId::parse(TLS_SECRET).unwrap())
        .unwrap();
    let next = secret.latest() + 1;
    secret.revisions.insert(
        next,
        SecretContent::new().with("tls", tls).with("tls-ca", ca),
    );
}

#[test]
fn a_change_of_the_backends_tls_secret_is_followed() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let mut s = changed(&pg, &leader_with_backend_tls("False", None));
    assert!(ini(&s, 0).contains("server_tls_sslmode = prefer\n"));
    new_tls_revision(&mut s, "True", CA);
    let secret = s
        .secrets
        .iter()
        .find(|x| x.id == SecretId::parse(TLS_SECRET).unwrap())
        .unwrap()
        .clone();
    let on = go(&pg, &s, event::secret_changed(&secret)).state;
    assert!(ini(&on, 0).contains("server_tls_sslmode = verify-full\n"));
    assert_eq!(
        on.container(CONTAINER)
            .unwrap()
            .file_text(CA_FILE)
            .as_deref(),
        Some(CA)
    );
    // A follower serving the leader's configuration writes a rotated CA.
    let rotated = "-----BEGIN CERTIFICATE-----\nNEW CA\n-----END CERTIFICATE-----";
    let mut follower =
        share_from_leader(&on, leader_with_backend_tls("True", Some(CA)).leader(false));
    follower.unit = format!("{APP}/1");
    let follower = go(&pg, &follower, event::secret_changed(&secret)).state;
    assert_eq!(
        follower
            .container(CONTAINER)
            .unwrap()
            .file_text(CA_FILE)
            .as_deref(),
        Some(CA)
    );
    let mut later = follower.clone();
    new_tls_revision(&mut later, "True", rotated);
    let later = go(&pg, &later, event::secret_changed(&secret)).state;
    assert_eq!(
        later
            .container(CONTAINER)
            .unwrap()
            .file_text(CA_FILE)
            .as_deref(),
        Some(rotated)
    );
}
