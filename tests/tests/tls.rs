//! TLS end to end on the local model: etcd, PostgreSQL, two PgBouncer units, a
//! client on the v0 library, and a certificate authority on the published
//! `tls-certificates` library (`tests/charms/tls-provider`, like Canonical's
//! self-signed-certificates). Each PgBouncer unit gets a certificate for its
//! own address, the client is told `tls="True"` and the CA (in its `tls`
//! secret), and real `psql` verifies each unit's certificate against that CA.
//! That holds through a third unit coming and going (handed out only once it
//! serves TLS, clients never told to drop it meanwhile), the provider rotating
//! its CA (revoking what it issued), and a unit rotating its key; without the
//! relation, clients are told `tls="False"` and connect in plain, and relating
//! again brings TLS back. Then PostgreSQL gets its certificate from the same
//! provider: `psql` verifies it straight (`verify-full`), and PgBouncer
//! verifies it as its backend (`verify-full` with the CA PostgreSQL told it),
//! every unit's pooled sessions to it running over TLS; a CA rotation then
//! renews PostgreSQL's certificate with a reload, a session opened before it
//! staying open. Last, PostgreSQL made to serve a certificate no known CA
//! signed: PgBouncer refuses it and its units say so, until PostgreSQL's
//! charm puts its own certificate back.

#![allow(clippy::unwrap_used)]

use e2e::{
    action, active, address, charm, controller, converge, pgbouncer_logged, postgresql_cluster,
    psql_tls, python_charm, PsqlTls, Scratch,
};
use local_model::controller::Controller;
use local_model::model::RelationRecord;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PGB: &str = "pgbouncer-k8s";
const PG: &str = "postgresql-k8s";

fn relation<'a>(c: &'a Controller, app: &str, endpoint: &str) -> &'a RelationRecord {
    c.model
        .relations
        .iter()
        .find(|r| r.end_of(app).is_some_and(|e| e.endpoint == endpoint))
        .unwrap_or_else(|| panic!("the {app}:{endpoint} relation"))
}

/// The latest content of the secret whose id (any form) is `id`.
fn secret(c: &Controller, id: &str) -> charm::SecretContent {
    let xid = id.rsplit(['/', ':']).next().unwrap();
    let s = c
        .model
        .secrets
        .iter()
        .find(|s| s.xid == xid)
        .unwrap_or_else(|| panic!("the secret {id}"));
    s.revisions.values().last().unwrap().clone()
}

/// What PgBouncer told the client about TLS: `tls` and `tls-ca`, from the
/// `tls` secret when the client asked for them as secrets (as the v0 library
/// does), else from the bag.
fn client_tls(c: &Controller) -> (Option<String>, Option<String>) {
    let Some(bag) = relation(c, "client", "database").app_bags.get(PGB) else {
        return (None, None);
    };
    let bag = &bag.data;
    match bag.get("secret-tls") {
        Some(id) => {
            assert!(
                !bag.contains_key("tls") && !bag.contains_key("tls-ca"),
                "asked as secrets, the TLS fields stay out of the bag: {bag:?}"
            );
            let content = secret(c, id);
            (
                content.get("tls").map(str::to_string),
                content.get("tls-ca").map(str::to_string),
            )
        }
        None => (bag.get("tls").cloned(), bag.get("tls-ca").cloned()),
    }
}

/// The certificate the provider issued for the CSR `unit` published.
fn issued_for(c: &Controller, unit: &str) -> Option<Value> {
    let r = relation(c, PGB, "certificates");
    let requests: Value = serde_json::from_str(
        r.unit_bags
            .get(unit)?
            .data
            .get("certificate_signing_requests")?,
    )
    .unwrap();
    let csr = requests[0]["certificate_signing_request"].as_str()?;
    let issued: Value =
        serde_json::from_str(r.app_bags.get("tls-provider")?.data.get("certificates")?).unwrap();
    issued
        .as_array()?
        .iter()
        .find(|cert| cert["certificate_signing_request"].as_str() == Some(csr))
        .cloned()
}

/// `openssl <command> -noout` with `args` on a PEM certificate (`x509`) or
/// request (`req`).
fn openssl(command: &str, pem: &str, args: &[&str]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args([command, "-noout"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {command} {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client's credentials, as its own library reads them (get-credentials).
fn credentials(c: &mut Controller) -> serde_json::Map<String, Value> {
    action(c, "client/0", "get-credentials", json!({}))
}

/// Runs `sql` through `unit` as the client, retrying briefly (a reload may be
/// under way).
fn through(
    c: &Controller,
    unit: &str,
    creds: &serde_json::Map<String, Value>,
    sql: &str,
    tls: PsqlTls<'_>,
) -> Result<String, String> {
    let host = address(c, unit);
    let mut last = Err(String::new());
    for _ in 0..20 {
        last = psql_tls(
            &host,
            6432,
            creds["username"].as_str().unwrap(),
            creds["password"].as_str().unwrap(),
            creds["database"].as_str().unwrap(),
            sql,
            Some(tls),
        );
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    last
}

/// The peer bag's `tls_ca` of `unit`: the CA bundle it announced serving.
fn serving_tls(c: &Controller, unit: &str) -> bool {
    relation(c, PGB, "pgb-peers")
        .unit_bags
        .get(unit)
        .is_some_and(|b| b.data.get("tls_ca").is_some_and(|ca| !ca.is_empty()))
}

/// Every PgBouncer unit holds a certificate for its own address from `ca`,
/// the client is told to trust `ca`, and real `psql` verifies each unit.
fn assert_serves_tls(c: &mut Controller, scratch: &Path, ca: &str) {
    let units = pgbouncer_units(c);
    for unit in &units {
        let issued = issued_for(c, unit).unwrap_or_else(|| panic!("{unit}: no certificate"));
        assert_eq!(issued["ca"].as_str().unwrap().trim(), ca, "{unit}");
        let cert = issued["certificate"].as_str().unwrap();
        let csr = issued["certificate_signing_request"].as_str().unwrap();
        let n = unit.rsplit('/').next().unwrap();
        for (what, text) in [
            ("request", openssl("req", csr, &["-text"])),
            (
                "certificate",
                openssl("x509", cert, &["-ext", "subjectAltName"]),
            ),
        ] {
            assert!(
                text.contains(&format!("IP Address:{}", address(c, unit)))
                    && text.contains(&format!("DNS:{PGB}-{n}.{PGB}-endpoints")),
                "{unit}'s {what} names its address: {text}"
            );
        }
        let chain: Vec<&str> = issued["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().trim())
            .collect();
        assert_eq!(chain, [cert.trim(), ca], "{unit}: leaf first");
    }
    // No private key (the CA's or a unit's) is in any databag.
    for r in &c.model.relations {
        for bag in r.app_bags.values().chain(r.unit_bags.values()) {
            for (k, v) in &bag.data {
                assert!(!v.contains("PRIVATE KEY"), "relation {} key {k}", r.id);
            }
        }
    }

    // The client is told TLS is on, and which CA to trust; its library reads
    // the same from the secret it was granted.
    let (flag, tls_ca) = client_tls(c);
    assert_eq!(flag.as_deref(), Some("True"));
    let tls_ca = tls_ca.expect("tls-ca");
    assert!(tls_ca.contains(ca), "tls-ca holds the provider's CA");
    let creds = credentials(c);
    assert_eq!(creds["tls"], "True");
    assert_eq!(creds["tls-ca"].as_str(), Some(tls_ca.as_str()));

    // A real client verifies each unit's certificate, with the CA it was
    // given (verify-full: the address it dials is in the certificate) and
    // with the provider's own CA (verify-ca); a CA that signed nothing here
    // is refused.
    let given = scratch.join("tls-ca.pem");
    std::fs::write(&given, &tls_ca).unwrap();
    let root = scratch.join("ca.pem");
    std::fs::write(&root, ca).unwrap();
    let stranger = scratch.join("stranger.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", "/CN=stranger", "-days", "1", "-keyout"])
        .arg(scratch.join("stranger.key"))
        .arg("-out")
        .arg(&stranger)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "a stranger CA: {made:?}");
    for unit in &units {
        for (mode, file) in [("verify-full", &given), ("verify-ca", &root)] {
            let tls = PsqlTls {
                mode,
                root_cert: Some(file),
            };
            let db = through(c, unit, &creds, "SELECT current_database()", tls)
                .unwrap_or_else(|e| panic!("{unit} {mode}: {e}"));
            assert_eq!(db.trim(), "appdb", "{unit} {mode}");
            let info = through(c, unit, &creds, "\\conninfo", tls).unwrap();
            assert!(info.contains("SSL connection"), "{unit} {mode}: {info}");
        }
        let refused = once(
            c,
            unit,
            &creds,
            PsqlTls {
                mode: "verify-ca",
                root_cert: Some(&stranger),
            },
        );
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("certificate verify failed")),
            "{unit}: {refused:?}"
        );
    }
}

/// One `SELECT 1` through `unit` as the client.
fn once(
    c: &Controller,
    unit: &str,
    creds: &serde_json::Map<String, Value>,
    tls: PsqlTls<'_>,
) -> Result<String, String> {
    psql_tls(
        &address(c, unit),
        6432,
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap(),
        creds["database"].as_str().unwrap(),
        "SELECT 1",
        Some(tls),
    )
}

fn pgbouncer_units(c: &Controller) -> Vec<String> {
    e2e::units(c, PGB)
}

/// The PgBouncer addresses the client is sent to.
fn handed_out(c: &Controller) -> String {
    let bag = &relation(c, "client", "database").app_bags[PGB].data;
    format!(
        "{} {}",
        bag.get("endpoints").cloned().unwrap_or_default(),
        bag.get("read-only-endpoints").cloned().unwrap_or_default()
    )
}

/// The file `path` in `unit`'s container `container`, if it is there.
fn container_file(scratch: &Path, unit: &str, container: &str, path: &str) -> Option<String> {
    let dir = scratch
        .join("controller/units")
        .join(unit.replace('/', "-"))
        .join("rootfs")
        .join(container);
    std::fs::read_to_string(dir.join(path.trim_start_matches('/'))).ok()
}

/// PostgreSQL's only unit serves TLS (its peer bag says so, it is active) and
/// every PgBouncer unit's first process verifies it.
fn backend_verified(c: &Controller, scratch: &Path) -> bool {
    let pg_tls = relation(c, PG, "database-peers")
        .unit_bags
        .get(&format!("{PG}/0"))
        .is_some_and(|b| b.data.get("tls").map(String::as_str) == Some("enabled"));
    pg_tls
        && active(c, &format!("{PG}/0")).is_some()
        && pgbouncer_units(c).iter().all(|u| {
            container_file(
                scratch,
                u,
                "pgbouncer",
                "/var/lib/pgbouncer/instance_0/pgbouncer.ini",
            )
            .is_some_and(|ini| ini.contains("server_tls_sslmode = verify-full"))
        })
}

/// TLS is on for clients, and every PgBouncer unit serves it.
fn tls_on(c: &Controller) -> bool {
    client_tls(c).0.as_deref() == Some("True")
        && pgbouncer_units(c)
            .iter()
            .all(|u| active(c, u).is_some() && serving_tls(c, u))
}

#[test]
fn pgbouncer_serves_tls_with_the_providers_certificates_and_stops_when_removed() {
    let scratch = Scratch::new("tls");
    let pgbouncer = charm(scratch.path(), PGB);
    let client = python_charm(scratch.path(), "pg-client");
    let provider = python_charm(scratch.path(), "tls-provider");
    let mut c = controller(&scratch);
    let certificates = (format!("{PGB}:certificates"), "tls-provider:certificates");

    // Everything at once: the database, PgBouncer, a client and the CA.
    postgresql_cluster(&mut c, scratch.path(), 1);
    c.deploy(&pgbouncer, PGB, 2, &[]).unwrap();
    c.integrate(
        &format!("{PGB}:backend-database"),
        "postgresql-k8s:database",
    )
    .unwrap();
    c.deploy(&client, "client", 1, &[]).unwrap();
    c.integrate("client:database", &format!("{PGB}:database"))
        .unwrap();
    c.deploy(&provider, "tls-provider", 1, &[]).unwrap();
    c.integrate(&certificates.0, certificates.1).unwrap();
    converge(&mut c, Duration::from_secs(180), |c| {
        active(c, "client/0").is_some_and(|m| m.contains('@'))
            && active(c, "tls-provider/0").is_some()
            && tls_on(c)
    });
    println!("{}", c.status());

    // The provider's CA, as its action gives it.
    let ca = action(&mut c, "tls-provider/0", "get-ca-certificate", json!({}))["ca-certificate"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    assert!(openssl("x509", &ca, &["-subject"]).contains("tls-provider-ca"));
    assert_serves_tls(&mut c, scratch.path(), &ca);

    // A third unit gets its own certificate. Hook by hook, clients are never
    // told to drop TLS, and the new unit is handed out only once it serves
    // TLS. Removing it leaves TLS on.
    let third = c.add_unit(PGB).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        while let Some(due) = c.next_due() {
            let ran = due.execute();
            c.finish(due, ran).unwrap();
            assert_eq!(client_tls(&c).0.as_deref(), Some("True"), "{third} joining");
            if handed_out(&c).contains(&address(&c, &third)) {
                assert!(serving_tls(&c, &third), "{third} handed out without TLS");
            }
        }
        if tls_on(&c) && handed_out(&c).contains(&address(&c, &third)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{third} never handed out\n{}",
            c.status()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_serves_tls(&mut c, scratch.path(), &ca);
    c.remove_unit(&third).unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        pgbouncer_units(c).len() == 2 && tls_on(c)
    });
    assert_serves_tls(&mut c, scratch.path(), &ca);

    // The provider rotates its CA and revokes what it issued: each unit asks
    // again, and clients are told the new CA; the old one verifies nothing.
    action(&mut c, "tls-provider/0", "rotate-private-key", json!({}));
    let old_ca = ca;
    let ca = action(&mut c, "tls-provider/0", "get-ca-certificate", json!({}))["ca-certificate"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(ca, old_ca);
    converge(&mut c, Duration::from_secs(120), |c| {
        tls_on(c)
            && client_tls(c)
                .1
                .is_some_and(|t| t.contains(&ca) && !t.contains(&old_ca))
    });
    assert_serves_tls(&mut c, scratch.path(), &ca);
    let old = scratch.path().join("old-ca.pem");
    std::fs::write(&old, &old_ca).unwrap();
    let creds = credentials(&mut c);
    for unit in pgbouncer_units(&c) {
        let refused = once(
            &c,
            &unit,
            &creds,
            PsqlTls {
                mode: "verify-ca",
                root_cert: Some(&old),
            },
        );
        assert!(
            refused.is_err(),
            "{unit}: the old CA verifies nothing: {refused:?}"
        );
    }

    // A unit's own key rotated (set-tls-private-key): a new certificate for it.
    let unit = "pgbouncer-k8s/1";
    let before = issued_for(&c, unit).unwrap()["certificate"].clone();
    let asked = action(&mut c, unit, "set-tls-private-key", json!({}));
    assert_eq!(asked["certificate-requested"], "true");
    converge(&mut c, Duration::from_secs(120), |c| {
        tls_on(c) && issued_for(c, unit).is_some_and(|i| i["certificate"] != before)
    });
    assert_serves_tls(&mut c, scratch.path(), &ca);

    // Without the relation: clients are told TLS is off and connect in plain.
    c.remove_relation(&certificates.0, certificates.1).unwrap();
    converge(&mut c, Duration::from_secs(120), |c| {
        !c.model
            .relations
            .iter()
            .any(|r| r.end_of("tls-provider").is_some())
            && client_tls(c).0.as_deref() == Some("False")
    });
    let (flag, tls_ca) = client_tls(&c);
    assert_eq!(flag.as_deref(), Some("False"));
    assert!(tls_ca.is_none_or(|ca| ca.is_empty()), "no CA without TLS");
    let creds = credentials(&mut c);
    assert_eq!(creds["tls"], "False");
    assert_eq!(creds["tls-ca"], "");
    for unit in pgbouncer_units(&c) {
        assert!(!serving_tls(&c, &unit), "{unit}");
        let plain = PsqlTls {
            mode: "disable",
            root_cert: None,
        };
        let db = through(&c, &unit, &creds, "SELECT current_database()", plain)
            .unwrap_or_else(|e| panic!("{unit} plain: {e}"));
        assert_eq!(db.trim(), "appdb");
        let require = once(
            &c,
            &unit,
            &creds,
            PsqlTls {
                mode: "require",
                root_cert: None,
            },
        );
        assert!(require.is_err(), "{unit} no longer offers TLS: {require:?}");
    }

    // Related again: each unit asks anew (with the key it kept) and TLS is back.
    c.integrate(&certificates.0, certificates.1).unwrap();
    converge(&mut c, Duration::from_secs(120), tls_on);
    assert_serves_tls(&mut c, scratch.path(), &ca);

    // PostgreSQL takes a certificate from the same provider. Straight to it,
    // `psql` verifies it (the address it dials is in the certificate); every
    // PgBouncer unit verifies it as its backend with the CA PostgreSQL gave
    // it, and the client's pooled sessions reach PostgreSQL over TLS.
    let pg_certificates = (format!("{PG}:certificates"), "tls-provider:certificates");
    c.integrate(&pg_certificates.0, pg_certificates.1).unwrap();
    converge(&mut c, Duration::from_secs(180), |c| {
        tls_on(c) && backend_verified(c, scratch.path())
    });
    let root = scratch.path().join("ca.pem");
    std::fs::write(&root, &ca).unwrap();
    let verify_full = PsqlTls {
        mode: "verify-full",
        root_cert: Some(&root),
    };
    let operator = action(&mut c, &format!("{PG}/0"), "get-password", json!({}))["password"]
        .as_str()
        .unwrap()
        .to_string();
    let on_tls = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let direct = psql_tls(
        &address(&c, &format!("{PG}/0")),
        5432,
        "operator",
        &operator,
        "postgres",
        on_tls,
        Some(verify_full),
    )
    .unwrap_or_else(|e| panic!("PostgreSQL verify-full: {e}"));
    assert_eq!(direct.trim(), "t");
    let creds = credentials(&mut c);
    let given = scratch.path().join("tls-ca.pem");
    std::fs::write(&given, creds["tls-ca"].as_str().unwrap()).unwrap();
    for unit in pgbouncer_units(&c) {
        let ini = container_file(
            scratch.path(),
            &unit,
            "pgbouncer",
            "/var/lib/pgbouncer/instance_0/pgbouncer.ini",
        )
        .unwrap();
        assert!(
            ini.contains("server_tls_ca_file = /var/lib/pgbouncer/backend-ca.pem"),
            "{unit}: {ini}"
        );
        let backend_ca = container_file(
            scratch.path(),
            &unit,
            "pgbouncer",
            "/var/lib/pgbouncer/backend-ca.pem",
        )
        .unwrap();
        assert!(backend_ca.contains(&ca), "{unit}: the provider's CA");
        let tls = PsqlTls {
            mode: "verify-full",
            root_cert: Some(&given),
        };
        let pooled = through(&c, &unit, &creds, on_tls, tls)
            .unwrap_or_else(|e| panic!("{unit} verify-full to PgBouncer: {e}"));
        assert_eq!(
            pooled.trim(),
            "t",
            "{unit}: PgBouncer to PostgreSQL over TLS"
        );
    }

    // The provider rotates its CA again: PostgreSQL's new certificate is a
    // reload, so a session opened before (verify-full, straight to it) stays
    // open; PgBouncer verifies PostgreSQL with the new CA.
    let pg_host = address(&c, &format!("{PG}/0"));
    let mut session = Session::open(&pg_host, &operator, &root);
    let pid = session.query("SELECT pg_backend_pid()");
    action(&mut c, "tls-provider/0", "rotate-private-key", json!({}));
    let new_ca = action(&mut c, "tls-provider/0", "get-ca-certificate", json!({}))
        ["ca-certificate"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(new_ca, ca);
    converge(&mut c, Duration::from_secs(120), |c| {
        let pg_ca = relation(c, PG, "database-peers")
            .unit_bags
            .get(&format!("{PG}/0"))
            .and_then(|b| b.data.get("tls-ca"))
            .is_some_and(|t| t.contains(&new_ca));
        pg_ca
            && tls_on(c)
            && backend_verified(c, scratch.path())
            && pgbouncer_units(c).iter().all(|u| {
                container_file(
                    scratch.path(),
                    u,
                    "pgbouncer",
                    "/var/lib/pgbouncer/backend-ca.pem",
                )
                .is_some_and(|f| f.contains(&new_ca) && !f.contains(&ca))
            })
    });
    assert_eq!(
        session.query("SELECT pg_backend_pid()"),
        pid,
        "the session opened before the renewal is still open"
    );
    let new_root = scratch.path().join("new-ca.pem");
    std::fs::write(&new_root, &new_ca).unwrap();
    let renewed = PsqlTls {
        mode: "verify-full",
        root_cert: Some(&new_root),
    };
    let direct = psql_tls(
        &pg_host,
        5432,
        "operator",
        &operator,
        "postgres",
        on_tls,
        Some(renewed),
    )
    .unwrap_or_else(|e| panic!("PostgreSQL verify-full with the new CA: {e}"));
    assert_eq!(direct.trim(), "t");
    let creds = credentials(&mut c);
    std::fs::write(&given, creds["tls-ca"].as_str().unwrap()).unwrap();
    for unit in pgbouncer_units(&c) {
        let tls = PsqlTls {
            mode: "verify-full",
            root_cert: Some(&given),
        };
        let pooled = through(&c, &unit, &creds, on_tls, tls)
            .unwrap_or_else(|e| panic!("{unit} after the rotation: {e}"));
        assert_eq!(pooled.trim(), "t", "{unit}");
    }

    // PostgreSQL made to serve a certificate its CA did not sign (self-signed,
    // for its own address): PgBouncer refuses it as a backend, and says so on
    // update-status; the PostgreSQL charm's next hook puts its certificate
    // back, and every unit serves the client again.
    let pg_tls = || psql_verify(&pg_host, &operator, &new_root);
    impostor_certificate(scratch.path(), &pg_host);
    psql_tls(
        &pg_host,
        5432,
        "operator",
        &operator,
        "postgres",
        "SELECT pg_reload_conf()",
        Some(PsqlTls {
            mode: "require",
            root_cert: None,
        }),
    )
    .expect("PostgreSQL serves with any certificate");
    let err = pg_tls().expect_err("the impostor certificate does not verify");
    assert!(err.contains("certificate verify failed"), "{err}");
    // PgBouncer's server connections (as the client's user, and its auth
    // user) end: it must log in again, and verify.
    let dropped = psql_tls(
        &pg_host,
        5432,
        "operator",
        &operator,
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = '{}' OR usename LIKE 'pgbouncer_auth_%'",
            creds["username"].as_str().unwrap()
        ),
        None,
    )
    .unwrap();
    assert_ne!(dropped.trim(), "0", "PgBouncer held server connections");
    const REFUSED: &str = "certificate verify failed";
    for unit in pgbouncer_units(&c) {
        let before = pgbouncer_logged(scratch.path(), &unit, REFUSED);
        for _ in 0..3 {
            let tls = PsqlTls {
                mode: "verify-full",
                root_cert: Some(&given),
            };
            let refused = once(&c, &unit, &creds, tls);
            assert!(refused.is_err(), "{unit} used the impostor: {refused:?}");
        }
        assert!(
            pgbouncer_logged(scratch.path(), &unit, REFUSED) > before,
            "{unit}: PgBouncer logs why it refuses the backend"
        );
    }
    // update-status (PostgreSQL's own hook held back, failing): PgBouncer's
    // units say why; resolved, PostgreSQL's charm writes its certificate back
    // and reloads, and the next update-status clears PgBouncer's status.
    let pg_unit = format!("{PG}/0");
    c.fail_next_hook(&pg_unit).unwrap();
    c.tick();
    c.settle().unwrap();
    for unit in pgbouncer_units(&c) {
        let status = &c.model.unit(&unit).unwrap().status;
        assert!(
            matches!(status, charm::Status::Waiting(m)
                if m.contains("its TLS certificate does not verify")),
            "{unit}: {status:?}"
        );
    }
    c.resolve(&pg_unit).unwrap();
    c.settle().unwrap();
    pg_tls().expect("PostgreSQL serves its own certificate again");
    c.tick();
    converge(&mut c, Duration::from_secs(60), |c| {
        pgbouncer_units(c).iter().all(|u| active(c, u).is_some())
    });
    for unit in pgbouncer_units(&c) {
        let tls = PsqlTls {
            mode: "verify-full",
            root_cert: Some(&given),
        };
        let pooled = through(&c, &unit, &creds, on_tls, tls)
            .unwrap_or_else(|e| panic!("{unit} after PostgreSQL's certificate is back: {e}"));
        assert_eq!(pooled.trim(), "t", "{unit}");
    }
}

/// `SELECT 1` straight to PostgreSQL at `host` as `operator`, verifying its
/// certificate with `root` (verify-full).
fn psql_verify(host: &str, password: &str, root: &Path) -> Result<String, String> {
    psql_tls(
        host,
        5432,
        "operator",
        password,
        "postgres",
        "SELECT 1",
        Some(PsqlTls {
            mode: "verify-full",
            root_cert: Some(root),
        }),
    )
}

/// Replaces PostgreSQL's key and certificate (in its container) with a
/// self-signed pair for `host`: no CA the charms know signed it.
fn impostor_certificate(scratch: &Path, host: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch
        .join("controller/units")
        .join(format!("{PG}-0"))
        .join("rootfs/postgresql/var/lib/postgresql/data");
    let (key, cert) = (
        scratch.join("impostor-key.pem"),
        scratch.join("impostor.pem"),
    );
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=impostor", "-addext"])
        .arg(format!("subjectAltName=IP:{host}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    for (from, to) in [(&key, "key.pem"), (&cert, "cert.pem")] {
        let to = dir.join(to);
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
}

/// One `psql` session kept open, queried line by line through its input.
struct Session {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Session {
    /// Opens a session as `operator` straight to PostgreSQL at `host`,
    /// verifying its certificate with `root` (verify-full).
    fn open(host: &str, password: &str, root: &Path) -> Session {
        use std::process::Stdio;
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-h", host, "-p", "5432"])
            .args(["-U", "operator", "-d", "postgres"])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("psql runs");
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        Session {
            child,
            input,
            output,
        }
    }

    /// Runs one query whose answer is one line, and returns that line.
    fn query(&mut self, sql: &str) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.input, "{sql};").unwrap();
        self.input.flush().unwrap();
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        assert!(
            !line.is_empty(),
            "the session ended before answering {sql:?}"
        );
        line.trim().to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
