//! [`FakePods`]: the pod API in memory, recording the labels the charm patched.

use postgresql_k8s::pods::{Labelled, Labels, Pods, PodsError};
use std::cell::RefCell;
use std::rc::Rc;

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
