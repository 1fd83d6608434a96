//! The API as a charm's hook reaches it: configured once from the pod's
//! environment and service account, a [`Client`] made for each call (the
//! token is read again each time: Kubernetes rotates it).

use crate::config::SERVICE_HOST;
use crate::service::{Service, ServiceApi, ServiceSpec};
use crate::{Client, Config, Error};
use std::path::Path;

/// The in-cluster API, or why it cannot be configured (each call reports it).
pub struct InCluster {
    config: Result<Config, String>,
}

impl InCluster {
    /// On Kubernetes (`KUBERNETES_SERVICE_HOST` set): the API as the pod's
    /// service account (in `account`) reaches it; `None` elsewhere.
    pub fn for_substrate(
        env: impl Fn(&str) -> Option<String>,
        account: &Path,
    ) -> Option<InCluster> {
        env(SERVICE_HOST)?;
        Some(InCluster {
            config: Config::from_env(env, account).map_err(|e| e.to_string()),
        })
    }

    /// A client for one call.
    pub fn client(&self) -> Result<Client, Error> {
        Client::new(self.config.clone().map_err(Error::Config)?)
    }

    /// The model's namespace.
    pub fn namespace(&self) -> Result<String, Error> {
        self.config
            .as_ref()
            .map(|c| c.namespace.clone())
            .map_err(|e| Error::Config(e.clone()))
    }
}

impl ServiceApi for InCluster {
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
    fn only_on_kubernetes_and_each_call_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        assert!(InCluster::for_substrate(|_| None, dir).is_none());
        let env = |k: &str| match k {
            "KUBERNETES_SERVICE_HOST" => Some("127.0.0.1".to_string()),
            "KUBERNETES_SERVICE_PORT" => Some("1".to_string()),
            "JUJU_MODEL_NAME" => Some("test".to_string()),
            _ => None,
        };
        let api = InCluster::for_substrate(env, dir).expect("on Kubernetes");
        assert_eq!(api.namespace().unwrap(), "test");
        let err = api.get_service("app-service").unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        let no_port = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "h".to_string());
        let api = InCluster::for_substrate(no_port, dir).unwrap();
        let err = api.delete_service("app-service").unwrap_err();
        assert!(err.to_string().contains("KUBERNETES_SERVICE_PORT"), "{err}");
        assert!(api.namespace().is_err());
    }
}
