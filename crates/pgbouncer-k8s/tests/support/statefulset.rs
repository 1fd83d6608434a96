//! [`FakeStatefulSets`]: the application's StatefulSet in memory, recording the
//! partitions the charm set.

use k8s_incluster::{Error, StatefulSet};
use pgbouncer_k8s::statefulset::StatefulSets;
use std::cell::RefCell;
use std::rc::Rc;

/// One StatefulSet in memory, for tests.
#[derive(Clone)]
pub struct FakeStatefulSets {
    pub set: Rc<RefCell<StatefulSet>>,
    /// The partitions set, in order.
    pub patched: Rc<RefCell<Vec<u32>>>,
    /// When set, every call fails with this HTTP status.
    pub fail: Rc<RefCell<Option<u16>>>,
    /// When set, setting the partition fails with this HTTP status.
    pub fail_patch: Rc<RefCell<Option<u16>>>,
}

impl FakeStatefulSets {
    /// `replicas` pods, all at one revision, no partition.
    pub fn new(name: &str, replicas: u32) -> FakeStatefulSets {
        FakeStatefulSets {
            set: Rc::new(RefCell::new(StatefulSet {
                name: name.into(),
                replicas,
                strategy: "RollingUpdate".into(),
                partition: 0,
                current_revision: Some(format!("{name}-1")),
                update_revision: Some(format!("{name}-1")),
                updated_replicas: replicas,
                ready_replicas: replicas,
            })),
            patched: Rc::default(),
            fail: Rc::default(),
            fail_patch: Rc::default(),
        }
    }

    /// `juju refresh` happened: the pods at or above the partition run a new
    /// revision.
    pub fn refresh(&self) {
        let mut set = self.set.borrow_mut();
        set.update_revision = Some(format!("{}-2", set.name));
        set.updated_replicas = set.replicas - set.partition.min(set.replicas);
    }

    fn check(&self, action: &str, fail: Option<u16>) -> Result<(), Error> {
        let action = action.to_string();
        match fail.or(*self.fail.borrow()) {
            None => Ok(()),
            Some(status @ (401 | 403)) => Err(Error::Forbidden {
                action,
                status,
                message: "forbidden".into(),
            }),
            Some(404) => Err(Error::NotFound {
                action,
                message: "not found".into(),
            }),
            Some(status) => Err(Error::Api {
                action,
                status,
                message: "refused".into(),
            }),
        }
    }
}

impl StatefulSets for FakeStatefulSets {
    fn get(&self, name: &str) -> Result<StatefulSet, Error> {
        self.check(&format!("read StatefulSet {name} in namespace test"), None)?;
        Ok(self.set.borrow().clone())
    }

    fn set_partition(&self, name: &str, partition: u32) -> Result<(), Error> {
        self.check(
            &format!("set the rolling-update partition of StatefulSet {name} in namespace test"),
            *self.fail_patch.borrow(),
        )?;
        self.set.borrow_mut().partition = partition;
        self.patched.borrow_mut().push(partition);
        Ok(())
    }
}
