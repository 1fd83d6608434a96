//! The cluster's Kubernetes Services, through the API: the calls
//! [`flows::services`](crate::flows::services) makes. Off Kubernetes there
//! are none ([`for_substrate`]).

use k8s_incluster::{InCluster, ServiceApi};
use std::path::Path;

/// The Service API for where the unit runs: Kubernetes when
/// `KUBERNETES_SERVICE_HOST` is set (the rule the DCS choice follows), none
/// otherwise. `account` is the service account directory.
pub fn for_substrate(
    env: impl Fn(&str) -> Option<String>,
    account: &Path,
) -> Option<Box<dyn ServiceApi>> {
    InCluster::for_substrate(env, account).map(|api| Box::new(api) as Box<dyn ServiceApi>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_only_when_the_pod_says_so() {
        let dir = tempfile::tempdir().unwrap();
        assert!(for_substrate(|_| None, dir.path()).is_none());
        let host = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "h".to_string());
        assert!(for_substrate(host, dir.path()).is_some());
    }
}
