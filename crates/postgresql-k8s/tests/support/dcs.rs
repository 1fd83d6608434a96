//! [`FakeDcsKeys`]: Patroni's keys of each scope in memory, recording what
//! the charm deleted.

use postgresql_k8s::dcs::Dcs;
use postgresql_k8s::dcs_keys::{DcsKeys, DcsKeysError, ScopeKeys};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// What the fake DCS holds and was asked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeStore {
    /// Each scope's keys.
    pub scopes: BTreeMap<String, ScopeKeys>,
    /// Whether the DCS answers.
    pub down: bool,
    /// Deleted member keys: (scope, member).
    pub deleted_members: Vec<(String, String)>,
    /// Scopes whose keys were all deleted.
    pub deleted_clusters: Vec<String>,
}

/// A handle on a shared [`FakeStore`].
#[derive(Clone, Debug, Default)]
pub struct FakeDcsKeys(pub Rc<RefCell<FakeStore>>);

impl FakeDcsKeys {
    /// Sets a scope's keys.
    pub fn set(&self, scope: &str, keys: ScopeKeys) {
        self.0.borrow_mut().scopes.insert(scope.to_string(), keys);
    }

    /// A copy of the store.
    pub fn store(&self) -> FakeStore {
        self.0.borrow().clone()
    }

    fn check(&self, dcs: &Dcs) -> Result<(), DcsKeysError> {
        if matches!(dcs, Dcs::Kubernetes { .. }) {
            return Err(DcsKeysError::Unsupported("Kubernetes".into()));
        }
        if self.0.borrow().down {
            return Err(DcsKeysError::Unreachable("connection refused".into()));
        }
        Ok(())
    }
}

impl DcsKeys for FakeDcsKeys {
    fn read(&self, dcs: &Dcs, scope: &str) -> Result<ScopeKeys, DcsKeysError> {
        self.check(dcs)?;
        Ok(self
            .0
            .borrow()
            .scopes
            .get(scope)
            .cloned()
            .unwrap_or_default())
    }

    fn delete_member(&self, dcs: &Dcs, scope: &str, member: &str) -> Result<bool, DcsKeysError> {
        self.check(dcs)?;
        let mut store = self.0.borrow_mut();
        store
            .deleted_members
            .push((scope.to_string(), member.to_string()));
        Ok(store
            .scopes
            .get_mut(scope)
            .is_some_and(|k| k.members.remove(member).is_some()))
    }

    fn delete_cluster(&self, dcs: &Dcs, scope: &str) -> Result<u64, DcsKeysError> {
        self.check(dcs)?;
        let mut store = self.0.borrow_mut();
        store.deleted_clusters.push(scope.to_string());
        Ok(store.scopes.remove(scope).map_or(0, |k| {
            k.members.len() as u64
                + u64::from(k.initialize.is_some())
                + u64::from(k.leader.is_some())
        }))
    }
}
