//! Pod labels: on Kubernetes the charm labels each cluster member's pod
//! (`application=patroni`, `cluster-name=<scope>`, and `role` when Patroni
//! does not) through the API (`InCluster`); off Kubernetes there are no
//! pods ([`NoPods`]). [`for_substrate`] chooses.

use k8s_incluster::InCluster;
use std::collections::BTreeMap;
use std::path::Path;

/// Pod labels by label name.
pub type Labels = BTreeMap<String, String>;

/// Labelling a pod failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot patch the labels of pod {pod}: {message}")]
pub struct PodsError {
    pub pod: String,
    pub message: String,
}

/// What labelling did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Labelled {
    Patched,
    /// The substrate has no pods (the reason, for the log).
    NoPods(String),
}

/// The pod API.
pub trait Pods {
    /// Merges `labels` into the pod's labels.
    fn patch_labels(&self, pod: &str, labels: &Labels) -> Result<Labelled, PodsError>;
}

/// The labels that make a pod a member of the Patroni cluster `scope`.
pub fn member_labels(scope: &str) -> Labels {
    BTreeMap::from([
        ("application".to_string(), "patroni".to_string()),
        ("cluster-name".to_string(), scope.to_string()),
    ])
}

/// The pod a unit runs in: Juju names it after the unit (`app/3` → `app-3`),
/// as Patroni names the member.
pub fn pod_name(unit: &str) -> String {
    unit.replace('/', "-")
}

/// The pod API for where the unit runs: Kubernetes when
/// `KUBERNETES_SERVICE_HOST` is set (the rule the DCS choice follows), none
/// otherwise. `account` is the service account directory.
pub fn for_substrate(env: impl Fn(&str) -> Option<String>, account: &Path) -> Box<dyn Pods> {
    match InCluster::for_substrate(env, account) {
        Some(api) => Box::new(api),
        None => Box::new(NoPods),
    }
}

/// Pods through the Kubernetes API.
impl Pods for InCluster {
    fn patch_labels(&self, pod: &str, labels: &Labels) -> Result<Labelled, PodsError> {
        self.client()
            .and_then(|client| client.patch_pod_labels(pod, labels))
            .map_err(|e| PodsError {
                pod: pod.into(),
                message: e.to_string(),
            })?;
        Ok(Labelled::Patched)
    }
}

/// A substrate without pods (the local model): nothing to label.
pub struct NoPods;

impl Pods for NoPods {
    fn patch_labels(&self, _: &str, _: &Labels) -> Result<Labelled, PodsError> {
        Ok(Labelled::NoPods(
            "this unit does not run on Kubernetes: there are no pods to label".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_is_named_after_the_unit_as_the_patroni_member() {
        assert_eq!(pod_name("postgresql-k8s/2"), "postgresql-k8s-2");
        assert_eq!(pod_name("pg/0"), crate::state::member_name("pg/0"));
    }

    #[test]
    fn off_kubernetes_there_are_no_pods() {
        let account = tempfile::tempdir().unwrap();
        let pods = for_substrate(|_| None, account.path());
        let labelled = pods
            .patch_labels("pg-1", &member_labels("patroni-pg"))
            .unwrap();
        assert!(matches!(labelled, Labelled::NoPods(_)), "{labelled:?}");
    }

    #[test]
    fn on_kubernetes_the_api_is_used_and_its_problems_are_reported() {
        // A pod's environment, but no service account token: the API is
        // chosen, and the patch fails naming the missing file.
        let account = tempfile::tempdir().unwrap();
        let env = |k: &str| match k {
            "KUBERNETES_SERVICE_HOST" => Some("127.0.0.1".to_string()),
            "KUBERNETES_SERVICE_PORT" => Some("1".to_string()),
            "JUJU_MODEL_NAME" => Some("test".to_string()),
            _ => None,
        };
        let err = for_substrate(env, account.path())
            .patch_labels("pg-1", &member_labels("patroni-pg"))
            .unwrap_err();
        assert_eq!(err.pod, "pg-1");
        assert!(err.message.contains("token"), "{err}");

        // Set but unusable (no port): still the API, which says why.
        let host_only = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "10.0.0.1".to_string());
        let err = for_substrate(host_only, account.path())
            .patch_labels("pg-1", &member_labels("patroni-pg"))
            .unwrap_err();
        assert!(err.message.contains("KUBERNETES_SERVICE_PORT"), "{err}");
    }
}
