//! The application's Kubernetes Service, through the API: the calls
//! [`flows::expose`](crate::flows::expose) makes, and the node a unit's pod
//! runs on (a NodePort Service is reached there). Off Kubernetes there is no
//! Service ([`for_substrate`]).

use k8s_incluster::{Error, InCluster, ServiceApi};
use std::path::Path;

/// The Service calls, the namespace they address, and pods' nodes.
pub trait Services: ServiceApi {
    /// The model's namespace, where the Service lives.
    fn namespace(&self) -> Result<String, Error>;
    /// The address of the node pod `pod` runs on; `None` until it is scheduled.
    fn node_address(&self, pod: &str) -> Result<Option<String>, Error>;
}

/// The Service API for where the unit runs: Kubernetes when
/// `KUBERNETES_SERVICE_HOST` is set, none otherwise. `account` is the service
/// account directory.
pub fn for_substrate(
    env: impl Fn(&str) -> Option<String>,
    account: &Path,
) -> Option<Box<dyn Services>> {
    InCluster::for_substrate(env, account).map(|api| Box::new(api) as Box<dyn Services>)
}

impl Services for InCluster {
    fn namespace(&self) -> Result<String, Error> {
        InCluster::namespace(self)
    }

    fn node_address(&self, pod: &str) -> Result<Option<String>, Error> {
        Ok(self.client()?.get_pod(pod)?.host_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_only_when_the_pod_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        assert!(for_substrate(|_| None, dir).is_none());
        let env = |k: &str| match k {
            "KUBERNETES_SERVICE_HOST" => Some("127.0.0.1".to_string()),
            "KUBERNETES_SERVICE_PORT" => Some("1".to_string()),
            "JUJU_MODEL_NAME" => Some("test".to_string()),
            _ => None,
        };
        let api = for_substrate(env, dir).expect("on Kubernetes");
        assert_eq!(api.namespace().unwrap(), "test");
        let err = api.node_address("pgbouncer-k8s-0").unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        let no_port = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "h".to_string());
        let api = for_substrate(no_port, dir).unwrap();
        let err = api.node_address("pgbouncer-k8s-0").unwrap_err();
        assert!(err.to_string().contains("KUBERNETES_SERVICE_PORT"), "{err}");
        assert!(api.namespace().is_err());
    }
}
