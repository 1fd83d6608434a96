//! The hook tools the SDK does not call, under Juju's rules: leader settings,
//! the unit's charm state, storage, the cloud credential, Kubernetes specs,
//! payloads and metrics. Each is a [`MemoryBackend`] method; the local model's
//! interpreter reads their command lines and prints their answers.

use crate::backend::{juju_error, MemoryBackend};
use crate::state::{PayloadState, StorageState};
use charm::error::Result;
use charm::Databag;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The statuses `payload-status-set` accepts.
pub const PAYLOAD_STATUSES: [&str; 4] = ["starting", "running", "stopping", "stopped"];

impl MemoryBackend<'_> {
    /// `leader-get`: the application's leader settings (any unit may read them).
    pub fn leader_get(&mut self) -> Result<Databag> {
        Ok(self.state.leader_settings.clone())
    }

    /// `leader-set`: merges `changes` into the leader settings (an empty value
    /// deletes the key); only the leader may write them.
    pub fn leader_set(&mut self, changes: &Databag) -> Result<()> {
        if !self.state.leader {
            // Juju's whole phrase, which a `NotLeader` would shorten.
            return Err(charm::Error::Tool {
                tool: "leader-set".into(),
                code: 1,
                message: "cannot write leadership settings: cannot write settings: not the leader"
                    .into(),
            });
        }
        merge(&mut self.state.leader_settings, changes);
        Ok(())
    }

    /// `state-get`: the unit's charm state.
    pub fn state_get(&mut self) -> Result<BTreeMap<String, String>> {
        Ok(self.state.charm_state.clone())
    }

    /// `state-set`: merges `changes` into the charm state (an empty value deletes).
    pub fn state_set(&mut self, changes: &Databag) -> Result<()> {
        merge(&mut self.state.charm_state, changes);
        Ok(())
    }

    /// `state-delete <key>`.
    pub fn state_delete(&mut self, key: &str) -> Result<()> {
        self.state.charm_state.remove(key);
        Ok(())
    }

    /// `storage-list [<name>]`: the ids of the unit's storage instances.
    pub fn storage_list(&mut self, name: Option<&str>) -> Result<Vec<String>> {
        Ok(self
            .state
            .storage
            .keys()
            .filter(|id| name.is_none_or(|n| id.split_once('/').is_some_and(|(s, _)| s == n)))
            .cloned()
            .collect())
    }

    /// `storage-get -s <id>`: one storage instance of the unit.
    pub fn storage_get(&mut self, id: &str) -> Result<StorageState> {
        self.state
            .storage
            .get(id)
            .cloned()
            .ok_or_else(|| juju_error("storage-get", &format!("storage {id:?} not found")))
    }

    /// `storage-add <name>[=<count>]`: more instances of a declared storage,
    /// attached once the hook commits.
    pub fn storage_add(&mut self, name: &str, count: u64) -> Result<()> {
        if !self.state.storage_declared.contains_key(name) {
            return Err(juju_error(
                "storage-add",
                &format!("cannot add storage: charm storage {name:?} not found"),
            ));
        }
        *self
            .state
            .storage_added
            .entry(name.to_string())
            .or_default() += count;
        Ok(())
    }

    /// `credential-get`: the model's cloud specification, for a trusted
    /// application only. The local model's cloud is this machine, with Juju's
    /// `empty` credential.
    pub fn credential_get(&mut self) -> Result<Value> {
        if !self.state.trusted {
            return Err(juju_error(
                "credential-get",
                "cannot access cloud credentials: permission denied",
            ));
        }
        Ok(json!({
            "type": "local",
            "name": "localhost",
            "region": "localhost",
            "endpoint": "",
            "identity-endpoint": "",
            "storage-endpoint": "",
            "credential": {"auth-type": "empty", "attrs": {}, "redacted": []},
            "cacertificates": [],
            "skip-tls-verify": false,
            "is-controller-cloud": true,
        }))
    }

    /// `k8s-spec-set` (`pod-spec-set`), or with `raw` `k8s-raw-set`: the
    /// application's spec, set by the leader.
    pub fn k8s_spec_set(&mut self, tool: &str, raw: bool, spec: &str) -> Result<()> {
        if !self.state.leader {
            return Err(juju_error(tool, "this unit is not the leader"));
        }
        let slot = if raw {
            &mut self.state.k8s_raw_spec
        } else {
            &mut self.state.k8s_spec
        };
        *slot = Some(spec.to_string());
        Ok(())
    }

    /// `k8s-spec-get` (`pod-spec-get`), or with `raw` `k8s-raw-get`.
    pub fn k8s_spec_get(&mut self, raw: bool) -> Result<Option<String>> {
        Ok(if raw {
            self.state.k8s_raw_spec.clone()
        } else {
            self.state.k8s_spec.clone()
        })
    }

    /// `payload-register <type> <class> <id> [<tag>...]`.
    pub fn payload_register(
        &mut self,
        kind: &str,
        class: &str,
        id: &str,
        tags: &[String],
    ) -> Result<()> {
        self.state.payloads.insert(
            format!("{class}/{id}"),
            PayloadState {
                kind: kind.to_string(),
                status: "running".into(),
                tags: tags.to_vec(),
            },
        );
        Ok(())
    }

    /// `payload-status-set <class> <id> <status>`.
    pub fn payload_status_set(&mut self, class: &str, id: &str, status: &str) -> Result<()> {
        if !PAYLOAD_STATUSES.contains(&status) {
            return Err(juju_error(
                "payload-status-set",
                &format!(
                    "status {status:?} not supported; expected one of [{}]",
                    PAYLOAD_STATUSES.join(", ")
                ),
            ));
        }
        let payload = self
            .state
            .payloads
            .get_mut(&format!("{class}/{id}"))
            .ok_or_else(|| payload_not_found("payload-status-set", class, id))?;
        payload.status = status.to_string();
        Ok(())
    }

    /// `payload-unregister <class> <id>`.
    pub fn payload_unregister(&mut self, class: &str, id: &str) -> Result<()> {
        self.state
            .payloads
            .remove(&format!("{class}/{id}"))
            .map(|_| ())
            .ok_or_else(|| payload_not_found("payload-unregister", class, id))
    }

    /// `add-metric`: Juju 3.6 records metrics in no hook a charm runs.
    pub fn add_metric(&mut self) -> Result<()> {
        Err(juju_error(
            "add-metric",
            "metrics not allowed in this context",
        ))
    }
}

fn payload_not_found(tool: &str, class: &str, id: &str) -> charm::Error {
    juju_error(tool, &format!("payload \"{class}/{id}\" not found"))
}

fn merge(target: &mut BTreeMap<String, String>, changes: &Databag) {
    for (k, v) in changes {
        if v.is_empty() {
            target.remove(k);
        } else {
            target.insert(k.clone(), v.clone());
        }
    }
}

impl MemoryBackend<'_> {
    /// `unit-get private-address` or `public-address`: the unit's address.
    pub fn unit_address(&mut self) -> Result<String> {
        Ok(self.state.address.clone())
    }
}
