//! Where Patroni keeps the cluster's state (its DCS), chosen from the model: a
//! related etcd, else Kubernetes when the unit runs on it.

use crate::state::ETCD;
use charm::Hook;

/// The etcd relation's remote application key with the client URLs.
pub const ETCD_ENDPOINTS: &str = "endpoints";

/// The DCS Patroni is told to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dcs {
    /// etcd v3: `host:port` of each member, and `http` or `https`.
    Etcd {
        protocol: String,
        hosts: Vec<String>,
    },
    /// Kubernetes Endpoints objects in the unit's namespace.
    Kubernetes { namespace: String },
}

/// How far the DCS has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DcsState {
    Ready(Dcs),
    /// Related, but not usable yet (why).
    Waiting(String),
    /// No etcd relation and not on Kubernetes.
    Missing,
}

/// The status message when no DCS is available.
pub const NO_DCS: &str = "waiting for a DCS: integrate with etcd";

/// The Kubernetes the unit runs on (when `KUBERNETES_SERVICE_HOST` is set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kubernetes {
    /// The model's namespace.
    pub namespace: String,
}

/// Parses etcd's client URLs (`http://10.0.0.1:2379,http://10.0.0.2:2379`).
pub fn parse_etcd_endpoints(raw: &str) -> Result<(String, Vec<String>), String> {
    let mut protocol = None;
    let mut hosts = Vec::new();
    for url in raw.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("etcd endpoint {url:?} has no scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "etcd endpoint {url:?}: scheme must be http or https"
            ));
        }
        if protocol.get_or_insert(scheme) != &scheme {
            return Err("etcd endpoints mix http and https".into());
        }
        let host = rest.trim_end_matches('/');
        let port_ok = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok || host.contains('/') {
            return Err(format!(
                "etcd endpoint {url:?} is not <scheme>://<host>:<port>"
            ));
        }
        hosts.push(host.to_string());
    }
    match protocol {
        Some(p) => Ok((p.to_string(), hosts)),
        None => Err("etcd published no endpoints".into()),
    }
}

/// Chooses the DCS: the etcd relation wins; without one, Kubernetes.
pub fn choose(hook: &mut Hook<'_>, kubernetes: Option<&Kubernetes>) -> anyhow::Result<DcsState> {
    if let Some(relation) = hook.relation(ETCD)? {
        let Some(raw) = hook.remote_app_bag(&relation)?.get(ETCD_ENDPOINTS).cloned() else {
            return Ok(DcsState::Waiting(
                "waiting for etcd to publish its endpoints".into(),
            ));
        };
        return Ok(match parse_etcd_endpoints(&raw) {
            Ok((protocol, hosts)) => DcsState::Ready(Dcs::Etcd { protocol, hosts }),
            Err(e) => DcsState::Waiting(e),
        });
    }
    Ok(match kubernetes {
        Some(k) => DcsState::Ready(Dcs::Kubernetes {
            namespace: k.namespace.clone(),
        }),
        None => DcsState::Missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_endpoints_parse_to_hosts() {
        assert_eq!(
            parse_etcd_endpoints("http://127.0.2.1:2379, http://127.0.2.2:2379/").unwrap(),
            (
                "http".to_string(),
                vec!["127.0.2.1:2379".to_string(), "127.0.2.2:2379".to_string()]
            )
        );
        for bad in [
            "",
            "127.0.0.1:2379",
            "ftp://h:1",
            "http://h",
            "http://h:0",
            "http://:2379",
            "http://a:1,https://b:2",
            "http://h:1/v3",
        ] {
            assert!(parse_etcd_endpoints(bad).is_err(), "{bad}");
        }
    }
}
