//! The application's StatefulSet on Kubernetes. Its rolling-update partition
//! holds units back during an upgrade: only pods whose ordinal is at or above
//! it get the new charm. Off Kubernetes there is none ([`for_substrate`]).

use k8s_incluster::{Error, InCluster, StatefulSet};
use std::path::Path;

/// Reading the StatefulSet and moving its partition.
pub trait StatefulSets {
    /// StatefulSet `name` in the model's namespace.
    fn get(&self, name: &str) -> Result<StatefulSet, Error>;
    /// Sets `name`'s `spec.updateStrategy.rollingUpdate.partition`.
    fn set_partition(&self, name: &str, partition: u32) -> Result<(), Error>;
}

/// The StatefulSet API for where the unit runs: Kubernetes when
/// `KUBERNETES_SERVICE_HOST` is set, none otherwise. `account` is the service
/// account directory.
pub fn for_substrate(
    env: impl Fn(&str) -> Option<String>,
    account: &Path,
) -> Option<Box<dyn StatefulSets>> {
    InCluster::for_substrate(env, account).map(|api| Box::new(api) as Box<dyn StatefulSets>)
}

impl StatefulSets for InCluster {
    fn get(&self, name: &str) -> Result<StatefulSet, Error> {
        self.client()?.get_stateful_set(name)
    }

    fn set_partition(&self, name: &str, partition: u32) -> Result<(), Error> {
        self.client()?.set_partition(name, partition).map(|_| ())
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
        let err = api.get("pgbouncer-k8s").unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        let no_port = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "h".to_string());
        let err = for_substrate(no_port, dir)
            .unwrap()
            .set_partition("pgbouncer-k8s", 1)
            .unwrap_err();
        assert!(err.to_string().contains("KUBERNETES_SERVICE_PORT"), "{err}");
    }
}
