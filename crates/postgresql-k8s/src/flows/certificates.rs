//! TLS (see `docs/postgresql-flows.md`): the `certificates` relation
//! (`tls-certificates` v4, requirer, one certificate per unit), the
//! `set-tls-private-key` action, and `receive-ca-cert` (operator CAs added to
//! the CA file PostgreSQL and Patroni's API trust). Each keeps its state in
//! the unit secret, then runs the peer flow, which writes the files and
//! `patroni.yml`, reloads Patroni (a renewed certificate is a reload),
//! restarts PostgreSQL when TLS turns on or off, and has the leader tell
//! clients.

use super::{peers, Deps, Findings};
use crate::state::{self, UnitSecret};
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{BagChanges, Handled, Hook, LogLevel, Relation, RelationEvent, SecretOwner, Status};
use client_interface::Tls;
use tls_certificates::{self as tls, PrivateKey, Step, Subject, UnitTls};

/// certificates relation-created, -joined and -changed: [`refresh`], then
/// the peer flow serves what the unit secret holds.
pub fn changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    relation: &Relation,
) -> anyhow::Result<Handled> {
    refresh(hook, relation)?;
    peers::changed(hook, deps, findings)
}

/// A key and a CSR exist and the CSR is published; the provider's answer is
/// acted on (install, renew, refused) and the unit secret saved. Also run on
/// update-status, which then serves the result: a certificate due for
/// renewal is asked for again without a relation event.
pub fn refresh(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
    let before = state::unit_secret(hook)?;
    let mut after = before.clone();
    let tls = &mut after.tls;
    let remote = hook.remote_app_bag(relation)?.clone();
    match tls.advance(&remote, tls::now(), &mut |key| new_csr(hook, key))? {
        Step::Quiet => {}
        Step::Renewing(why) => hook.log(
            LogLevel::Info,
            &format!("requesting a new certificate: {why}"),
        )?,
        Step::Problem(why) => hook.add_problem(Status::Waiting(why))?,
    }
    publish_request(hook, relation, &after.tls)?;
    save(hook, &before, &after)
}

/// certificates relation-broken: the certificate goes (the key stays, for the
/// next relation); PostgreSQL and the API serve without TLS again.
pub fn broken(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    _event: &RelationEvent,
) -> anyhow::Result<Handled> {
    let before = state::unit_secret(hook)?;
    let after = UnitSecret {
        tls: UnitTls {
            key: before.tls.key.clone(),
            csr: None,
            installed: None,
        },
        received: before.received.clone(),
    };
    apply(hook, deps, findings, &before, &after)
}

/// The `set-tls-private-key` action: a key given (PEM or base64 of a PEM) or
/// a new one replaces the unit's key. A bad key fails the action and changes
/// nothing. The certificate for the old key is dropped (TLS is off until the
/// new one is issued), and a CSR for the new key is published when the
/// relation exists.
pub fn set_private_key(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
) -> anyhow::Result<Handled> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "private-key", default)]
        private_key: Option<String>,
    }
    let params: Params = hook.action_params()?;
    let key = match params.private_key.as_deref().map(str::trim) {
        None | Some("") => PrivateKey::generate()?,
        Some(given) => match PrivateKey::parse(given) {
            Ok(k) => k,
            Err(e) => {
                hook.action_fail(&e.to_string())?;
                return Ok(Handled::Done);
            }
        },
    };
    let before = state::unit_secret(hook)?;
    let after = UnitSecret {
        tls: UnitTls {
            csr: Some(new_csr(hook, &key)?),
            key: Some(key),
            installed: None,
        },
        received: before.received.clone(),
    };
    let relation = hook.relation(state::CERTIFICATES)?;
    if let Some(relation) = &relation {
        publish_request(hook, relation, &after.tls)?;
    }
    let requested = if relation.is_some() { "true" } else { "false" };
    hook.action_set([("certificate-requested", requested)])?;
    apply(hook, deps, findings, &before, &after)?;
    Ok(Handled::Done)
}

/// receive-ca-cert relation-changed: the operator CA each unit of the other
/// application publishes (`ca`, JSON-encoded or not) is kept as
/// `ca-<app>` in the unit secret and added to the CA file.
pub fn ca_changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    relation: &Relation,
) -> anyhow::Result<Handled> {
    if hook.is_leader()? {
        hook.update_app_bag(relation, [("version".to_string(), Some("0".to_string()))])?;
    }
    let mut cas: Vec<String> = Vec::new();
    for unit in hook.relation_units(relation)? {
        let bag = hook.bag(relation, &charm::Bag::Unit(unit))?;
        if let Some(ca) = bag.get("ca").and_then(|raw| received_pem(raw)) {
            if !cas.contains(&ca) {
                cas.push(ca);
            }
        }
    }
    let before = state::unit_secret(hook)?;
    let mut after = before.clone();
    let app = hook.remote_app(relation)?;
    let key = state::received_ca_key(&app);
    match cas.is_empty() {
        true => after.received.remove(&key),
        false => after.received.insert(key, cas.join("\n")),
    };
    apply(hook, deps, findings, &before, &after)
}

/// receive-ca-cert relation-broken: the operator CA goes.
pub fn ca_broken(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    event: &RelationEvent,
) -> anyhow::Result<Handled> {
    let before = state::unit_secret(hook)?;
    let mut after = before.clone();
    after
        .received
        .remove(&state::received_ca_key(&event.remote_app));
    apply(hook, deps, findings, &before, &after)
}

/// A CA as the provider published it: PEM text, or a JSON string holding
/// one; anything else is ignored.
fn received_pem(raw: &str) -> Option<String> {
    let text = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string());
    let text = text.trim();
    text.starts_with("-----BEGIN CERTIFICATE-----")
        .then(|| text.to_string())
}

/// A CSR for this unit, as it is reached now.
fn new_csr(hook: &mut Hook<'_>, key: &PrivateKey) -> anyhow::Result<String> {
    let address = super::own_address(hook)?;
    let unit_number = hook
        .unit()
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let model = hook.context().model_name.clone();
    let subject = unit_subject(hook.app(), unit_number, &model, &address);
    Ok(tls::csr(key, &subject)?)
}

/// The subject of a unit's certificate (the reference charm's names): the
/// pod's name under the endpoints service as common name (the pod's name when
/// that is too long); the pod's name, short, under the endpoints service and
/// fully qualified; the primary and replicas services fully qualified; and the
/// unit's address, as an IP SAN and (as the reference charm has it) a DNS name.
pub fn unit_subject(app: &str, unit_number: u32, model: &str, address: &str) -> Subject {
    let pod = format!("{app}-{unit_number}");
    let under_endpoints = format!("{pod}.{app}-endpoints");
    let fq = |name: &str| format!("{name}.{model}.svc.cluster.local");
    let mut dns = vec![
        pod.clone(),
        under_endpoints.clone(),
        fq(&under_endpoints),
        fq(&format!("{app}-primary")),
        fq(&format!("{app}-replicas")),
    ];
    if !address.is_empty() {
        dns.push(address.to_string());
    }
    let common_name = [under_endpoints, pod]
        .into_iter()
        .find(|cn| cn.len() <= tls::MAX_CN)
        .unwrap_or_else(|| app.to_string());
    Subject::new(&common_name, dns, address)
}

/// Puts this unit's CSR (or none) in its bag of the relation.
fn publish_request(hook: &mut Hook<'_>, relation: &Relation, tls: &UnitTls) -> anyhow::Result<()> {
    let value = tls.csr.as_deref().map(tls::csr_list);
    hook.update_unit_bag(
        relation,
        BagChanges::new().set_or_unset(tls::CSRS_KEY, value),
    )?;
    Ok(())
}

/// Saves the unit secret when it changed, then runs the peer flow, which
/// serves what the secret now holds.
fn apply(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    before: &UnitSecret,
    after: &UnitSecret,
) -> anyhow::Result<Handled> {
    save(hook, before, after)?;
    peers::changed(hook, deps, findings)
}

/// Writes the unit secret when its content changed (creating it the first time).
fn save(hook: &mut Hook<'_>, before: &UnitSecret, after: &UnitSecret) -> anyhow::Result<()> {
    if before == after {
        return Ok(());
    }
    let label = state::unit_secret_label(hook.app());
    let content = after.content();
    if hook.secret_by_label(&label, Revision::Peek)?.is_some() {
        let id = hook
            .secret_info(&SecretRef::Label(label))?
            .id
            .ok_or_else(|| anyhow::anyhow!("the unit secret has no id"))?;
        hook.set_secret(&id, Some(&content), &SecretMeta::default())?;
    } else {
        let meta = SecretMeta {
            label: Some(label),
            description: Some("this unit's TLS key, request, certificate and CAs".into()),
            ..SecretMeta::default()
        };
        hook.add_secret(&content, SecretOwner::Unit, &meta)?;
    }
    Ok(())
}

/// What clients are told: TLS once every unit's PostgreSQL serves it (each
/// unit records the CA bundle it serves with, [`state::TLS_CA`]), with the
/// distinct bundles joined.
pub fn client_tls(units: &[Option<&str>]) -> Tls {
    match tls::served_ca(units) {
        Some(ca) => Tls {
            enabled: true,
            ca: Some(ca),
        },
        None => Tls::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn subjects_follow_the_reference_names() {
        let s = unit_subject("postgresql-k8s", 1, "prod", "10.1.2.3");
        assert_eq!(s.common_name, "postgresql-k8s-1.postgresql-k8s-endpoints");
        for name in [
            "postgresql-k8s-1",
            "postgresql-k8s-1.postgresql-k8s-endpoints",
            "postgresql-k8s-1.postgresql-k8s-endpoints.prod.svc.cluster.local",
            "postgresql-k8s-primary.prod.svc.cluster.local",
            "postgresql-k8s-replicas.prod.svc.cluster.local",
            "10.1.2.3",
        ] {
            assert!(s.dns.contains(&name.to_string()), "{name}");
        }
        assert_eq!(s.ips, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        let long = unit_subject(&"x".repeat(40), 0, "m", "");
        assert_eq!(long.common_name, format!("{}-0", "x".repeat(40)));
    }

    #[test]
    fn received_cas_are_pem_plain_or_json_encoded() {
        let pem = "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----";
        assert_eq!(received_pem(pem).as_deref(), Some(pem));
        let json = serde_json::to_string(pem).unwrap();
        assert_eq!(received_pem(&json).as_deref(), Some(pem));
        assert_eq!(received_pem("not a certificate"), None);
    }

    #[test]
    fn clients_get_tls_only_when_every_unit_serves_it() {
        assert_eq!(client_tls(&[Some("A"), None]), Tls::default());
        assert_eq!(
            client_tls(&[Some("A"), Some("A")]),
            Tls {
                enabled: true,
                ca: Some("A".into())
            }
        );
    }
}
