//! The `certificates` relation (interface `tls-certificates`, requirer, one
//! certificate per unit): each unit keeps a private key and its CSR in its unit
//! secret, publishes the CSR in its unit bag, installs the certificate the
//! provider issues for it, and renews it when it is revoked, expired or nine
//! tenths through its validity. Clients are told `tls="True"` only once every
//! unit serves TLS (each unit acknowledges the CA bundle it serves in its peer
//! bag).

use super::{client_facing_units, database, serve, Deps};
use crate::state;
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{
    BagChanges, Handled, Hook, LogLevel, Relation, RelationEvent, SecretContent, SecretOwner,
    Status,
};
use client_interface::Tls;
use tls_certificates::{self as tls, PrivateKey, Step, Subject, UnitTls};

/// relation-created, -joined and -changed (and update-status, as a safety net
/// for renewals): make sure a key and a CSR exist and the CSR is published,
/// then act on the provider's answer.
pub fn changed(hook: &mut Hook<'_>, deps: &Deps, relation: &Relation) -> anyhow::Result<Handled> {
    let before = state::unit_tls(hook)?;
    let mut tls = before.clone();
    let remote = hook.remote_app_bag(relation)?.clone();
    match tls.advance(&remote, tls::now(), &mut |key| new_csr(hook, key))? {
        Step::Quiet => {}
        Step::Renewing(why) => hook.log(
            LogLevel::Info,
            &format!("requesting a new certificate: {why}"),
        )?,
        Step::Problem(why) => hook.add_problem(Status::Waiting(why))?,
    }
    publish_request(hook, relation, &tls)?;
    save(hook, &before, &tls)?;
    apply(hook, deps, &tls)?;
    Ok(Handled::Done)
}

/// relation-broken: the certificate goes (the key stays, for the next
/// relation); the TLS lines and files disappear and clients are told
/// `tls="False"`.
pub fn broken(hook: &mut Hook<'_>, deps: &Deps, _event: &RelationEvent) -> anyhow::Result<Handled> {
    let before = state::unit_tls(hook)?;
    let tls = UnitTls {
        key: before.key.clone(),
        csr: None,
        installed: None,
    };
    save(hook, &before, &tls)?;
    apply(hook, deps, &tls)?;
    Ok(Handled::Done)
}

/// The `set-tls-private-key` action: a key given (PEM or base64 of a PEM) or a
/// new one replaces the unit's key. A bad key fails the action and changes
/// nothing. The certificate for the old key is dropped, and a CSR for the new
/// key is published when the relation exists.
pub fn set_private_key(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
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
    let before = state::unit_tls(hook)?;
    let tls = UnitTls {
        csr: Some(new_csr(hook, &key)?),
        key: Some(key),
        installed: None,
    };
    let relation = hook.relation(state::CERTIFICATES)?;
    if let Some(relation) = &relation {
        publish_request(hook, relation, &tls)?;
    }
    save(hook, &before, &tls)?;
    apply(hook, deps, &tls)?;
    let requested = if relation.is_some() { "true" } else { "false" };
    hook.action_set([("certificate-requested", requested)])?;
    Ok(Handled::Done)
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

/// The subject of a unit's certificate (the reference charm's names, for a unit
/// reached by `address` as well as by its Kubernetes names): the pod's name
/// under the endpoints service as common name (the pod's name when that is too
/// long); the pod, endpoints, service and application names, short and fully
/// qualified; the address.
pub fn unit_subject(app: &str, unit_number: u32, model: &str, address: &str) -> Subject {
    let pod = format!("{app}-{unit_number}");
    let endpoints = format!("{app}-endpoints");
    let service = format!("{app}-service");
    let fq = |name: &str| format!("{name}.{model}.svc.cluster.local");
    let pod_under_endpoints = format!("{pod}.{endpoints}");
    let app_under_endpoints = format!("{app}.{endpoints}");
    let dns = vec![
        pod.clone(),
        pod_under_endpoints.clone(),
        fq(&pod_under_endpoints),
        endpoints.clone(),
        fq(&endpoints),
        service.clone(),
        fq(&service),
        app.to_string(),
        fq(app),
        app_under_endpoints.clone(),
        fq(&app_under_endpoints),
    ];
    let common_name = [pod_under_endpoints, pod]
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

/// Writes the unit secret when its content changed (creating it the first time).
fn save(hook: &mut Hook<'_>, before: &UnitTls, after: &UnitTls) -> anyhow::Result<()> {
    if before == after {
        return Ok(());
    }
    let label = state::unit_secret_label(hook.app());
    let content: SecretContent = after
        .fields()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if hook.secret_by_label(&label, Revision::Peek)?.is_some() {
        let id = hook
            .secret_info(&SecretRef::Label(label))?
            .id
            .ok_or_else(|| anyhow::anyhow!("the unit secret has no id"))?;
        hook.set_secret(&id, Some(&content), &SecretMeta::default())?;
    } else {
        let meta = SecretMeta {
            label: Some(label),
            description: Some("this unit's TLS key, request and certificate".into()),
            ..SecretMeta::default()
        };
        hook.add_secret(&content, SecretOwner::Unit, &meta)?;
    }
    Ok(())
}

/// The TLS files this unit serves. The unit secret is read only when the unit
/// has announced a certificate (its `tls_ca` in the peer bag, which this flow
/// sets before serving), so units without TLS spend no hook-tool call on it.
pub fn installed_files(
    hook: &mut Hook<'_>,
    peers: &Relation,
) -> anyhow::Result<Option<tls::TlsFiles>> {
    if !hook.local_unit_bag(peers)?.contains_key(state::TLS_CA) {
        return Ok(None);
    }
    Ok(state::unit_tls(hook)?.files())
}

/// Announces what the unit now holds and serves it (the configuration the
/// leader published, with or without the TLS lines); the leader then updates
/// its clients.
fn apply(hook: &mut Hook<'_>, deps: &Deps, tls: &UnitTls) -> anyhow::Result<()> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(());
    };
    let ca = tls.files().map(|f| f.ca);
    hook.update_unit_bag(&peers, BagChanges::new().set_or_unset(state::TLS_CA, ca))?;
    let shared = state::published_config(hook, &peers)?;
    serve(hook, deps, &peers, shared.as_ref())?;
    database::refresh_all(hook, deps)?;
    Ok(())
}

/// What clients are told about TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    pub enabled: bool,
    /// The distinct CA bundles the units serve with, joined (empty when off).
    pub ca: String,
}

impl ClientTls {
    /// Decides from what each live unit acknowledged serving (`None` or empty:
    /// no TLS): on only when every unit serves TLS.
    pub fn decide(units: &[Option<&str>]) -> ClientTls {
        match tls::served_ca(units) {
            Some(ca) => ClientTls { enabled: true, ca },
            None => ClientTls::default(),
        }
    }

    /// What clients are told.
    pub fn for_clients(&self) -> Tls {
        Tls {
            enabled: self.enabled,
            ca: Some(self.ca.clone()).filter(|c| !c.is_empty()),
        }
    }

    /// The digest the client record keeps, to see when this changes.
    pub fn digest(&self) -> String {
        state::digest(&format!("{}\n{}", self.enabled, self.ca))
    }
}

/// Leader: what clients are told, from what this unit and the units handed
/// out with it ([`client_facing_units`]) acknowledged serving.
pub fn client_tls(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<ClientTls> {
    let own = hook.local_unit_bag(peers)?.get(state::TLS_CA).cloned();
    let others = client_facing_units(hook, peers)?;
    let mut units: Vec<Option<&str>> = vec![own.as_deref()];
    units.extend(others.iter().map(|u| u.tls_ca.as_deref()));
    Ok(ClientTls::decide(&units))
}

#[cfg(test)]
mod tests {
    use super::{unit_subject, ClientTls};
    use std::net::IpAddr;

    #[test]
    fn subjects_follow_the_reference_names() {
        let s = unit_subject("pgbouncer-k8s", 1, "prod", "10.1.2.3");
        assert_eq!(s.common_name, "pgbouncer-k8s-1.pgbouncer-k8s-endpoints");
        for name in [
            "pgbouncer-k8s-1",
            "pgbouncer-k8s-service",
            "pgbouncer-k8s-service.prod.svc.cluster.local",
            "pgbouncer-k8s-1.pgbouncer-k8s-endpoints.prod.svc.cluster.local",
            "pgbouncer-k8s-endpoints",
            "pgbouncer-k8s.prod.svc.cluster.local",
        ] {
            assert!(s.dns.contains(&name.to_string()), "{name}");
        }
        assert_eq!(s.ips, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        let named = unit_subject("a", 0, "m", "a-0.example");
        assert!(named.dns.contains(&"a-0.example".to_string()) && named.ips.is_empty());
        let long = unit_subject(&"x".repeat(40), 0, "m", "");
        assert_eq!(long.common_name, format!("{}-0", "x".repeat(40)));
    }

    #[test]
    fn clients_get_tls_only_when_every_unit_serves_it() {
        assert_eq!(ClientTls::decide(&[]), ClientTls::default());
        assert_eq!(ClientTls::decide(&[Some("A"), None]), ClientTls::default());
        assert_eq!(
            ClientTls::decide(&[Some("A"), Some("")]),
            ClientTls::default()
        );
        let on = ClientTls::decide(&[Some("A\n"), Some("A"), Some("B")]);
        assert_eq!(
            on,
            ClientTls {
                enabled: true,
                ca: "A\nB".into()
            }
        );
        assert_ne!(on.digest(), ClientTls::default().digest());
    }
}
