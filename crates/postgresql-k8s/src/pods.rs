//! Pod labels: on Kubernetes the charm labels each cluster member's pod
//! (`application=patroni`, `cluster-name=patroni-<app>`, reference §0.4); the
//! local model has no pods.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

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

/// The labels that make a pod a member of the application's Patroni cluster.
pub fn member_labels(app: &str) -> Labels {
    BTreeMap::from([
        ("application".to_string(), "patroni".to_string()),
        ("cluster-name".to_string(), crate::state::cluster_name(app)),
    ])
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

/// Records patches, for tests.
#[derive(Clone, Default)]
pub struct FakePods {
    /// (pod, labels) in order.
    pub patched: Rc<RefCell<Vec<(String, Labels)>>>,
    /// When set, every patch fails with this message.
    pub fail: Rc<RefCell<Option<String>>>,
}

impl Pods for FakePods {
    fn patch_labels(&self, pod: &str, labels: &Labels) -> Result<Labelled, PodsError> {
        if let Some(message) = self.fail.borrow().clone() {
            return Err(PodsError {
                pod: pod.into(),
                message,
            });
        }
        self.patched.borrow_mut().push((pod.into(), labels.clone()));
        Ok(Labelled::Patched)
    }
}
