//! The cluster's Kubernetes Services, through the API: the calls
//! [`flows::services`](crate::flows::services) makes. Off Kubernetes there
//! are none ([`for_substrate`]).

use k8s_incluster::config::SERVICE_HOST;
use k8s_incluster::{Client, Config, Error, Service, ServiceApi, ServiceSpec};
use std::path::Path;

/// The Service API for where the unit runs: Kubernetes when
/// `KUBERNETES_SERVICE_HOST` is set (the rule the DCS choice follows), none
/// otherwise. `account` is the service account directory.
pub fn for_substrate(
    env: impl Fn(&str) -> Option<String>,
    account: &Path,
) -> Option<Box<dyn ServiceApi>> {
    env(SERVICE_HOST)?;
    Some(Box::new(KubernetesServices {
        config: Config::from_env(env, account).map_err(|e| e.to_string()),
    }))
}

/// Services through the Kubernetes API, with the pod's in-cluster
/// configuration; each call reads the token again.
pub struct KubernetesServices {
    /// The configuration, or why there is none (reported by each call).
    pub config: Result<Config, String>,
}

impl KubernetesServices {
    fn client(&self) -> Result<Client, Error> {
        Client::new(self.config.clone().map_err(Error::Config)?)
    }
}

impl ServiceApi for KubernetesServices {
    fn get_service(&self, name: &str) -> Result<Option<Service>, Error> {
        self.client()?.get_service(name)
    }

    fn create_service(&self, name: &str, spec: &ServiceSpec) -> Result<Service, Error> {
        self.client()?.create_service(name, spec)
    }

    fn patch_service(
        &self,
        name: &str,
        spec: &ServiceSpec,
        current: &Service,
    ) -> Result<Service, Error> {
        self.client()?.patch_service(name, spec, current)
    }

    fn delete_service(&self, name: &str) -> Result<bool, Error> {
        self.client()?.delete_service(name)
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
        let err = for_substrate(env, dir)
            .expect("on Kubernetes")
            .get_service("pg-primary")
            .unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        let no_port = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "h".to_string());
        let err = for_substrate(no_port, dir)
            .unwrap()
            .delete_service("pg-primary")
            .unwrap_err();
        assert!(err.to_string().contains("KUBERNETES_SERVICE_PORT"), "{err}");
    }
}
