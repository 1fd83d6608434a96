//! The parts of Kubernetes objects the charms read, from their JSON.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A pod: its name, labels, and the address of the node it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `status.hostIP`: the node's address, once the pod is scheduled.
    pub host_ip: Option<String>,
}

/// A StatefulSet's size, rolling-update partition and rollout progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatefulSet {
    pub name: String,
    /// `spec.replicas`.
    pub replicas: u32,
    /// `spec.updateStrategy.type` (`RollingUpdate` or `OnDelete`).
    pub strategy: String,
    /// `spec.updateStrategy.rollingUpdate.partition`: pods with an ordinal at
    /// or above it get the new revision (0 when unset).
    pub partition: u32,
    /// `status.currentRevision`: the revision of the pods below the partition.
    pub current_revision: Option<String>,
    /// `status.updateRevision`: the revision being rolled out.
    pub update_revision: Option<String>,
    /// `status.updatedReplicas`: pods at the update revision.
    pub updated_replicas: u32,
    /// `status.readyReplicas`.
    pub ready_replicas: u32,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawPod {
    metadata: Metadata,
    #[serde(default)]
    status: RawPodStatus,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodStatus {
    #[serde(rename = "hostIP")]
    host_ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStatefulSet {
    metadata: Metadata,
    #[serde(default)]
    spec: RawSpec,
    #[serde(default)]
    status: RawStatus,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    replicas: Option<u32>,
    #[serde(default)]
    update_strategy: RawStrategy,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStrategy {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    rolling_update: RawRollingUpdate,
}

#[derive(Default, Deserialize)]
struct RawRollingUpdate {
    partition: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    current_revision: Option<String>,
    update_revision: Option<String>,
    #[serde(default)]
    updated_replicas: u32,
    #[serde(default)]
    ready_replicas: u32,
}

impl Pod {
    /// Reads a pod from the API's JSON.
    pub fn from_json(body: &[u8]) -> Result<Pod, serde_json::Error> {
        let raw: RawPod = serde_json::from_slice(body)?;
        Ok(Pod {
            name: raw.metadata.name,
            labels: raw.metadata.labels,
            host_ip: raw.status.host_ip.filter(|ip| !ip.is_empty()),
        })
    }
}

impl StatefulSet {
    /// Reads a StatefulSet from the API's JSON, with the API's defaults
    /// (one replica, `RollingUpdate`, partition 0).
    pub fn from_json(body: &[u8]) -> Result<StatefulSet, serde_json::Error> {
        let raw: RawStatefulSet = serde_json::from_slice(body)?;
        let strategy = raw.spec.update_strategy;
        Ok(StatefulSet {
            name: raw.metadata.name,
            replicas: raw.spec.replicas.unwrap_or(1),
            strategy: strategy.kind.unwrap_or_else(|| "RollingUpdate".into()),
            partition: strategy.rolling_update.partition.unwrap_or(0),
            current_revision: raw.status.current_revision,
            update_revision: raw.status.update_revision,
            updated_replicas: raw.status.updated_replicas,
            ready_replicas: raw.status.ready_replicas,
        })
    }

    /// Whether a new revision is being rolled out (`updateRevision` differs
    /// from `currentRevision`).
    pub fn rolling_out(&self) -> bool {
        self.update_revision.is_some() && self.update_revision != self.current_revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_statefulset_with_and_without_optional_fields() {
        let full = br#"{"kind":"StatefulSet","metadata":{"name":"pgb","labels":{"a":"b"}},
            "spec":{"replicas":3,"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}},
            "status":{"currentRevision":"pgb-1","updateRevision":"pgb-2","updatedReplicas":1,"readyReplicas":3}}"#;
        let set = StatefulSet::from_json(full).unwrap();
        assert_eq!(
            set,
            StatefulSet {
                name: "pgb".into(),
                replicas: 3,
                strategy: "RollingUpdate".into(),
                partition: 2,
                current_revision: Some("pgb-1".into()),
                update_revision: Some("pgb-2".into()),
                updated_replicas: 1,
                ready_replicas: 3,
            }
        );
        assert!(set.rolling_out());
        let bare = StatefulSet::from_json(br#"{"metadata":{"name":"x"}}"#).unwrap();
        assert_eq!((bare.replicas, bare.partition), (1, 0));
        assert_eq!(bare.strategy, "RollingUpdate");
        assert!(!bare.rolling_out());
        assert!(StatefulSet::from_json(b"{}").is_err());
    }

    #[test]
    fn reads_a_pod() {
        let pod = Pod::from_json(
            br#"{"metadata":{"name":"pg-0","labels":{"role":"primary"}},"spec":{}}"#,
        )
        .unwrap();
        assert_eq!(pod.name, "pg-0");
        assert_eq!(pod.labels["role"], "primary");
        assert_eq!(pod.host_ip, None);
        let scheduled = Pod::from_json(
            br#"{"metadata":{"name":"p"},"status":{"hostIP":"10.0.0.7","phase":"Running"}}"#,
        )
        .unwrap();
        assert_eq!(scheduled.host_ip.as_deref(), Some("10.0.0.7"));
        assert!(Pod::from_json(br#"{"metadata":{"name":"p"}}"#)
            .unwrap()
            .labels
            .is_empty());
    }
}
