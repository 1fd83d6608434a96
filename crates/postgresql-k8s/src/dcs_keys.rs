//! Patroni's keys in the DCS: what one cluster (a Patroni scope) holds there,
//! and removing a departed member's key or a whole cluster's keys.
//! [`DcsKeys`] is what the flows call; [`EtcdKeys`] speaks etcd v3's HTTP/JSON
//! gateway (`/v3/kv/range`, `/v3/kv/deleterange`) with `http-exchange`. On
//! Kubernetes the keys are API objects this charm leaves alone: every call
//! answers [`DcsKeysError::Unsupported`].

use crate::dcs::Dcs;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Patroni's default namespace: a scope's keys are under `/service/<scope>/`.
pub const NAMESPACE: &str = "/service";

/// The member states in which Patroni runs no PostgreSQL and is making none:
/// any other state (`running`, `streaming`, `starting`, `initializing new
/// cluster`, `creating replica`, ...) counts as a member at work.
pub const DOWN_STATES: [&str; 6] = [
    "stopped",
    "crashed",
    "start failed",
    "stop failed",
    "initdb failed",
    "custom bootstrap failed",
];

/// Whether a Patroni member state means no PostgreSQL runs or is being made.
pub fn is_down(state: &str) -> bool {
    DOWN_STATES.contains(&state)
}

/// The prefix of a scope's keys: `/service/<scope>/`.
pub fn scope_prefix(scope: &str) -> String {
    format!("{NAMESPACE}/{scope}/")
}

/// A member's key: `/service/<scope>/members/<member>`.
pub fn member_key(scope: &str, member: &str) -> String {
    format!("{}members/{member}", scope_prefix(scope))
}

/// What one cluster holds in the DCS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeKeys {
    /// `initialize`: taken when a member starts bootstrapping the cluster,
    /// empty until the bootstrap finishes and then the system identifier.
    pub initialize: Option<String>,
    /// `leader`: the member holding the leader lock.
    pub leader: Option<String>,
    /// `members/<name>`: each registered member and its state (`unknown`
    /// when its value cannot be read).
    pub members: BTreeMap<String, String>,
}

impl ScopeKeys {
    /// A bootstrap began (`initialize` is there) and never finished (no
    /// system identifier in it).
    pub fn bootstrap_unfinished(&self) -> bool {
        self.initialize.as_deref() == Some("")
    }

    /// Whether a registered member runs PostgreSQL or is making one.
    pub fn member_at_work(&self) -> bool {
        self.members.values().any(|state| !is_down(state))
    }

    /// A bootstrap that never finished, with no leader and no member at
    /// work: nobody can finish it, and every member waits for a leader.
    pub fn bootstrap_stalled(&self) -> bool {
        self.bootstrap_unfinished() && self.leader.is_none() && !self.member_at_work()
    }

    /// Whether the scope holds nothing: no cluster was ever made under it.
    pub fn is_empty(&self) -> bool {
        self.initialize.is_none() && self.leader.is_none() && self.members.is_empty()
    }

    /// A bootstrapped cluster (a system identifier in `initialize`) with no
    /// leader and no member at work.
    pub fn abandoned(&self) -> bool {
        self.initialize.as_deref().is_some_and(|id| !id.is_empty())
            && self.leader.is_none()
            && !self.member_at_work()
    }

    /// Reads the keys under `prefix` (`(key, value)` pairs as etcd lists them).
    pub fn from_pairs(prefix: &str, pairs: &[(String, String)]) -> ScopeKeys {
        let mut keys = ScopeKeys::default();
        for (key, value) in pairs {
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
            match rest {
                "initialize" => keys.initialize = Some(value.clone()),
                "leader" => keys.leader = Some(value.clone()),
                _ => {
                    if let Some(name) = rest.strip_prefix("members/") {
                        keys.members.insert(name.to_string(), member_state(value));
                    }
                }
            }
        }
        keys
    }
}

/// A member key's `state` (its value is Patroni's JSON about the member).
fn member_state(value: &str) -> String {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// A DCS call that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DcsKeysError {
    /// This DCS's keys are not something the charm reads or removes.
    #[error("the charm does not manage Patroni's keys in {0}")]
    Unsupported(String),
    /// No DCS host answered.
    #[error("the DCS did not answer: {0}")]
    Unreachable(String),
    /// A host answered, with an error or an answer that cannot be read.
    #[error("unexpected answer from the DCS: {0}")]
    Protocol(String),
}

/// Patroni's keys of a cluster, in the DCS the model offers.
pub trait DcsKeys {
    /// The keys of cluster `scope`.
    fn read(&self, dcs: &Dcs, scope: &str) -> Result<ScopeKeys, DcsKeysError>;
    /// Deletes `member`'s key in cluster `scope`; whether there was one.
    fn delete_member(&self, dcs: &Dcs, scope: &str, member: &str) -> Result<bool, DcsKeysError>;
    /// Deletes every key of cluster `scope`; how many there were.
    fn delete_cluster(&self, dcs: &Dcs, scope: &str) -> Result<u64, DcsKeysError>;
}

/// etcd v3 through its HTTP/JSON gateway, plain HTTP (as the etcd charm
/// serves it); the first host that answers is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdKeys {
    /// Connect, read and write timeout of one request.
    pub timeout: Duration,
}

impl Default for EtcdKeys {
    fn default() -> Self {
        EtcdKeys {
            timeout: Duration::from_secs(5),
        }
    }
}

/// The end of the range of keys that start with `prefix` (etcd's rule: the
/// prefix with its last byte plus one).
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Result<String, DcsKeysError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DcsKeysError::Protocol(format!("not base64: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `/v3/kv/range`'s answer.
#[derive(Deserialize)]
struct RangeAnswer {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

/// `/v3/kv/deleterange`'s answer (the gateway writes 64-bit numbers as strings
/// and leaves out zero).
#[derive(Deserialize)]
struct DeleteAnswer {
    #[serde(default)]
    deleted: Option<serde_json::Value>,
}

impl EtcdKeys {
    /// The etcd hosts, or why the keys cannot be reached this way.
    fn hosts(dcs: &Dcs) -> Result<&[String], DcsKeysError> {
        match dcs {
            Dcs::Etcd { protocol, hosts } if protocol == "http" => Ok(hosts),
            Dcs::Etcd { protocol, .. } => {
                Err(DcsKeysError::Unsupported(format!("etcd over {protocol}")))
            }
            Dcs::Kubernetes { .. } => Err(DcsKeysError::Unsupported("Kubernetes".into())),
        }
    }

    /// One POST to one host; connection problems are `Unreachable`.
    fn post(
        &self,
        host: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, DcsKeysError> {
        let unreachable =
            |e: &dyn std::fmt::Display| DcsKeysError::Unreachable(format!("{host}: {e}"));
        let addr = host
            .to_socket_addrs()
            .map_err(|e| unreachable(&e))?
            .next()
            .ok_or_else(|| unreachable(&"no address"))?;
        let stream =
            TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| unreachable(&e))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(|e| unreachable(&e))?;
        let body = body.to_string();
        let headers = [("Content-Type", "application/json")];
        let answer = http_exchange::exchange(stream, host, "POST", path, &headers, body.as_bytes())
            .map_err(|e| match e {
                http_exchange::HttpError::Io(e) => unreachable(&e),
                http_exchange::HttpError::Protocol(m) => DcsKeysError::Protocol(m),
            })?;
        if answer.status != 200 {
            return Err(DcsKeysError::Protocol(format!(
                "{host}{path} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body).trim()
            )));
        }
        Ok(answer.body)
    }

    /// The first host's answer that is not `Unreachable`.
    fn call(
        &self,
        dcs: &Dcs,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, DcsKeysError> {
        let mut last = DcsKeysError::Unreachable("no etcd host known".into());
        for host in Self::hosts(dcs)? {
            match self.post(host, path, body) {
                Err(DcsKeysError::Unreachable(why)) => last = DcsKeysError::Unreachable(why),
                other => return other,
            }
        }
        Err(last)
    }

    /// Deletes the keys from `key` to `end` (`None`: `key` alone).
    fn delete(&self, dcs: &Dcs, key: &str, end: Option<Vec<u8>>) -> Result<u64, DcsKeysError> {
        let mut body = serde_json::json!({"key": b64(key.as_bytes())});
        if let Some(end) = end {
            body["range_end"] = b64(&end).into();
        }
        let raw = self.call(dcs, "/v3/kv/deleterange", &body)?;
        let answer: DeleteAnswer =
            serde_json::from_slice(&raw).map_err(|e| DcsKeysError::Protocol(e.to_string()))?;
        Ok(match answer.deleted {
            None => 0,
            Some(serde_json::Value::String(n)) => n.parse().unwrap_or(0),
            Some(v) => v.as_u64().unwrap_or(0),
        })
    }
}

impl DcsKeys for EtcdKeys {
    fn read(&self, dcs: &Dcs, scope: &str) -> Result<ScopeKeys, DcsKeysError> {
        let prefix = scope_prefix(scope);
        let body = serde_json::json!({
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&range_end(&prefix)),
        });
        let raw = self.call(dcs, "/v3/kv/range", &body)?;
        let answer: RangeAnswer =
            serde_json::from_slice(&raw).map_err(|e| DcsKeysError::Protocol(e.to_string()))?;
        let mut pairs = Vec::new();
        for kv in answer.kvs {
            pairs.push((unb64(&kv.key)?, unb64(&kv.value)?));
        }
        Ok(ScopeKeys::from_pairs(&prefix, &pairs))
    }

    fn delete_member(&self, dcs: &Dcs, scope: &str, member: &str) -> Result<bool, DcsKeysError> {
        Ok(self.delete(dcs, &member_key(scope, member), None)? > 0)
    }

    fn delete_cluster(&self, dcs: &Dcs, scope: &str) -> Result<u64, DcsKeysError> {
        let prefix = scope_prefix(scope);
        let end = range_end(&prefix);
        self.delete(dcs, &prefix, Some(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_a_prefix_whose_range_ends_after_it() {
        assert_eq!(scope_prefix("patroni-pg"), "/service/patroni-pg/");
        assert_eq!(range_end("/service/patroni-pg/"), b"/service/patroni-pg0");
        assert_eq!(
            member_key("patroni-pg-gen2", "pg-1"),
            "/service/patroni-pg-gen2/members/pg-1"
        );
    }

    #[test]
    fn keys_are_read_into_initialize_leader_and_member_states() {
        let prefix = scope_prefix("s");
        let pair = |k: &str, v: &str| (format!("{prefix}{k}"), v.to_string());
        let keys = ScopeKeys::from_pairs(
            &prefix,
            &[
                pair("initialize", ""),
                pair("config", "{}"),
                pair("members/pg-0", r#"{"state":"stopped","role":"replica"}"#),
                pair("members/pg-1", "not json"),
            ],
        );
        assert!(keys.bootstrap_unfinished());
        assert_eq!(keys.leader, None);
        assert_eq!(keys.members["pg-0"], "stopped");
        assert_eq!(keys.members["pg-1"], "unknown");
        // A member whose state cannot be read counts as at work.
        assert!(keys.member_at_work());
        assert!(!keys.bootstrap_stalled());
    }

    #[test]
    fn only_an_unfinished_bootstrap_without_leader_or_working_member_is_stalled() {
        let stalled = ScopeKeys {
            initialize: Some(String::new()),
            leader: None,
            members: BTreeMap::from([("pg-0".into(), "stopped".into())]),
        };
        assert!(stalled.bootstrap_stalled());
        let finished = ScopeKeys {
            initialize: Some("7301234567890".into()),
            ..stalled.clone()
        };
        assert!(!finished.bootstrap_stalled());
        let led = ScopeKeys {
            leader: Some("pg-0".into()),
            ..stalled.clone()
        };
        assert!(!led.bootstrap_stalled());
        let initdb = ScopeKeys {
            members: BTreeMap::from([("pg-0".into(), "initializing new cluster".into())]),
            ..stalled.clone()
        };
        assert!(!initdb.bootstrap_stalled());
        assert!(!ScopeKeys::default().bootstrap_stalled());
    }

    #[test]
    fn kubernetes_and_https_are_not_managed() {
        let keys = EtcdKeys::default();
        let k8s = Dcs::Kubernetes {
            namespace: "m".into(),
        };
        assert!(matches!(
            keys.read(&k8s, "s"),
            Err(DcsKeysError::Unsupported(_))
        ));
        let https = Dcs::Etcd {
            protocol: "https".into(),
            hosts: vec!["127.0.0.1:2379".into()],
        };
        assert!(matches!(
            keys.delete_cluster(&https, "s"),
            Err(DcsKeysError::Unsupported(_))
        ));
    }
}
