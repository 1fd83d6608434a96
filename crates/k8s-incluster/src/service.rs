//! Services: what a charm asks for ([`ServiceSpec`]), what the API answers
//! ([`Service`]), and [`ensure`], which makes the API hold the wanted Service
//! through any [`ServiceApi`] (the [`crate::Client`], or a fake in tests).

use crate::Error;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The annotation in which a Service records the keys of the annotations its
/// charm set (comma-separated), so that a patch removes those the charm no
/// longer wants and leaves the ones others (controllers, users) added.
pub const MANAGED_ANNOTATIONS: &str = "k8s-incluster/managed-annotations";

/// How a Service is reached (`spec.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    /// A virtual address inside the cluster, named by the cluster DNS.
    ClusterIp,
    /// The cluster address, plus a port on every node.
    NodePort,
    /// A node port, plus an external load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The API's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }

    fn parse(s: &str) -> Option<ServiceType> {
        match s {
            "ClusterIP" => Some(ServiceType::ClusterIp),
            "NodePort" => Some(ServiceType::NodePort),
            "LoadBalancer" => Some(ServiceType::LoadBalancer),
            _ => None,
        }
    }
}

/// One TCP port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    /// The Service's port, also the pods' port (`targetPort`).
    pub port: u16,
    /// The port on every node (NodePort and LoadBalancer types; chosen by
    /// the API server, read back).
    pub node_port: Option<u16>,
}

/// The Service a charm wants: its type, ports, selector, labels and annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub service_type: ServiceType,
    pub ports: Vec<ServicePort>,
    /// The labels of the pods that serve it.
    pub selector: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// An address a load balancer gives a Service (`status.loadBalancer.ingress`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingress {
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

impl Ingress {
    /// The address: the IP, else the host name.
    pub fn address(&self) -> Option<&str> {
        self.ip
            .as_deref()
            .or(self.hostname.as_deref())
            .filter(|a| !a.is_empty())
    }
}

/// A Service as the API answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// Its spec; `annotations` holds every annotation but
    /// [`MANAGED_ANNOTATIONS`].
    pub spec: ServiceSpec,
    /// The annotation keys the charm set ([`MANAGED_ANNOTATIONS`]).
    pub managed_annotations: BTreeSet<String>,
    /// `spec.clusterIP`.
    pub cluster_ip: Option<String>,
    /// The load balancer's addresses, none until it has one.
    pub ingress: Vec<Ingress>,
}

impl Service {
    /// Reads a Service from the API's JSON.
    pub fn from_json(body: &[u8]) -> Result<Service, serde_json::Error> {
        let raw: RawService = serde_json::from_slice(body)?;
        let kind = raw.spec.kind.as_deref().unwrap_or("ClusterIP");
        let service_type = ServiceType::parse(kind)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown Service type {kind:?}")))?;
        let mut annotations = raw.metadata.annotations;
        let managed_annotations = annotations
            .remove(MANAGED_ANNOTATIONS)
            .map(|keys| {
                keys.split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Service {
            name: raw.metadata.name,
            managed_annotations,
            spec: ServiceSpec {
                service_type,
                ports: raw
                    .spec
                    .ports
                    .into_iter()
                    .map(|p| ServicePort {
                        name: p.name.unwrap_or_default(),
                        port: p.port,
                        node_port: p.node_port,
                    })
                    .collect(),
                selector: raw.spec.selector,
                labels: raw.metadata.labels,
                annotations,
            },
            cluster_ip: raw.spec.cluster_ip.filter(|ip| ip != "None"),
            ingress: raw
                .status
                .load_balancer
                .ingress
                .into_iter()
                .map(|i| Ingress {
                    ip: i.ip,
                    hostname: i.hostname,
                })
                .collect(),
        })
    }

    /// The first load balancer address, once there is one.
    pub fn load_balancer_address(&self) -> Option<&str> {
        self.ingress.iter().find_map(Ingress::address)
    }

    /// The node port serving `port`, once the API server chose one.
    pub fn node_port(&self, port: u16) -> Option<u16> {
        self.spec
            .ports
            .iter()
            .find(|p| p.port == port)
            .and_then(|p| p.node_port)
    }

    /// Whether the Service already is what `want` asks for: the same type,
    /// ports (node ports aside), selector, and `want`'s labels and annotations,
    /// with none left that the charm set and no longer wants (others'
    /// annotations do not count).
    pub fn satisfies(&self, want: &ServiceSpec) -> bool {
        let ports = |s: &ServiceSpec| -> Vec<(String, u16)> {
            s.ports.iter().map(|p| (p.name.clone(), p.port)).collect()
        };
        self.spec.service_type == want.service_type
            && ports(&self.spec) == ports(want)
            && self.spec.selector == want.selector
            && want
                .labels
                .iter()
                .all(|(k, v)| self.spec.labels.get(k) == Some(v))
            && want
                .annotations
                .iter()
                .all(|(k, v)| self.spec.annotations.get(k) == Some(v))
            && self.managed_annotations.iter().eq(want.annotations.keys())
    }
}

impl ServiceSpec {
    /// The body that creates Service `name`.
    pub fn to_object(&self, name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "labels": self.labels,
                "annotations": self.annotations_json(&BTreeSet::new()),
            },
            "spec": self.spec_json(),
        })
    }

    /// The annotations to send: the wanted ones, the record of their keys
    /// ([`MANAGED_ANNOTATIONS`]), and `null` for each key in `drop`
    /// that is no longer wanted.
    fn annotations_json(&self, drop: &BTreeSet<String>) -> Value {
        let mut map: Map<String, Value> = self
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for k in drop.iter().filter(|k| !self.annotations.contains_key(*k)) {
            map.insert(k.clone(), Value::Null);
        }
        let keys: Vec<&str> = self.annotations.keys().map(String::as_str).collect();
        map.insert(MANAGED_ANNOTATIONS.into(), Value::String(keys.join(",")));
        Value::Object(map)
    }

    /// The JSON merge patch (RFC 7386) that turns `current` into this spec.
    /// Maps merge: selector keys `current` has and this spec does not are set
    /// to `null` (removed), and so are the annotations the charm set
    /// (`current.managed_annotations`) and no longer wants; other annotations
    /// and labels stay. Lists replace: the ports are sent whole, without node
    /// ports (the API server keeps or chooses them as the type needs).
    pub fn merge_patch(&self, current: &Service) -> Value {
        let mut selector: Map<String, Value> = self
            .selector
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for k in current.spec.selector.keys() {
            if !self.selector.contains_key(k) {
                selector.insert(k.clone(), Value::Null);
            }
        }
        let mut spec = self.spec_json();
        spec["selector"] = Value::Object(selector);
        json!({
            "metadata": {
                "labels": self.labels,
                "annotations": self.annotations_json(&current.managed_annotations),
            },
            "spec": spec,
        })
    }

    fn spec_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| json!({"name": p.name, "protocol": "TCP", "port": p.port, "targetPort": p.port}))
            .collect();
        json!({
            "type": self.service_type.as_str(),
            "ports": ports,
            "selector": self.selector,
        })
    }
}

/// The Service calls, as the charms use them.
pub trait ServiceApi {
    /// Service `name`; `None` when there is none (404).
    fn get_service(&self, name: &str) -> Result<Option<Service>, Error>;
    /// Creates Service `name` (409 [`Error::Conflict`] when it exists).
    fn create_service(&self, name: &str, spec: &ServiceSpec) -> Result<Service, Error>;
    /// Patches Service `name` from `current` to `spec` ([`ServiceSpec::merge_patch`]).
    fn patch_service(
        &self,
        name: &str,
        spec: &ServiceSpec,
        current: &Service,
    ) -> Result<Service, Error>;
    /// Deletes Service `name`; `false` when there was none.
    fn delete_service(&self, name: &str) -> Result<bool, Error>;
}

/// What [`ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The Service was already as wanted.
    Kept(Service),
    Created(Service),
    Patched(Service),
    /// The API refused the patch as invalid (422): deleted and created anew.
    Replaced(Service),
}

impl Ensured {
    /// The Service as it now stands.
    pub fn service(&self) -> &Service {
        match self {
            Ensured::Kept(s) | Ensured::Created(s) | Ensured::Patched(s) | Ensured::Replaced(s) => {
                s
            }
        }
    }
}

/// Makes Service `name` what `spec` asks for: creates it when missing, keeps
/// it when it already is, patches it otherwise, and deletes and creates it
/// when the API refuses the patch as invalid (some type changes are).
pub fn ensure(api: &dyn ServiceApi, name: &str, spec: &ServiceSpec) -> Result<Ensured, Error> {
    let Some(current) = api.get_service(name)? else {
        return api.create_service(name, spec).map(Ensured::Created);
    };
    if current.satisfies(spec) {
        return Ok(Ensured::Kept(current));
    }
    match api.patch_service(name, spec, &current) {
        Ok(s) => Ok(Ensured::Patched(s)),
        Err(Error::Invalid { .. }) => {
            api.delete_service(name)?;
            api.create_service(name, spec).map(Ensured::Replaced)
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct RawService {
    metadata: RawMetadata,
    #[serde(default)]
    spec: RawServiceSpec,
    #[serde(default)]
    status: RawServiceStatus,
}

#[derive(Deserialize)]
struct RawMetadata {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServiceSpec {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    ports: Vec<RawPort>,
    #[serde(default)]
    selector: BTreeMap<String, String>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPort {
    name: Option<String>,
    port: u16,
    node_port: Option<u16>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServiceStatus {
    #[serde(default)]
    load_balancer: RawLoadBalancer,
}

#[derive(Default, Deserialize)]
struct RawLoadBalancer {
    #[serde(default)]
    ingress: Vec<RawIngress>,
}

#[derive(Deserialize)]
struct RawIngress {
    ip: Option<String>,
    hostname: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec(service_type: ServiceType, annotations: &[(&str, &str)]) -> ServiceSpec {
        ServiceSpec {
            service_type,
            ports: vec![ServicePort {
                name: "pgbouncer".into(),
                port: 6432,
                node_port: None,
            }],
            selector: labels(&[("app.kubernetes.io/name", "pgb")]),
            labels: labels(&[("app.kubernetes.io/name", "pgb")]),
            annotations: labels(annotations),
        }
    }

    /// A LoadBalancer Service as the API server answers it, its address given.
    const LOAD_BALANCER: &str = r#"{
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "pgb-service", "namespace": "prod", "uid": "0c1", "resourceVersion": "811",
            "labels": {"app.kubernetes.io/name": "pgb"},
            "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                "k8s-incluster/managed-annotations": "service.beta.kubernetes.io/aws-load-balancer-type",
                "metallb.universe.tf/ip-allocated-from-pool": "default"}},
        "spec": {"ports": [{"name": "pgbouncer", "protocol": "TCP", "port": 6432, "targetPort": 6432, "nodePort": 31877}],
            "selector": {"app.kubernetes.io/name": "pgb"}, "clusterIP": "10.152.183.54",
            "clusterIPs": ["10.152.183.54"], "type": "LoadBalancer", "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": true, "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}}
    }"#;

    #[test]
    fn reads_a_load_balancer_service_with_its_node_port_and_address() {
        let s = Service::from_json(LOAD_BALANCER.as_bytes()).unwrap();
        assert_eq!(s.name, "pgb-service");
        assert_eq!(s.spec.service_type, ServiceType::LoadBalancer);
        assert_eq!(s.node_port(6432), Some(31877));
        assert_eq!(s.node_port(5432), None);
        assert_eq!(s.cluster_ip.as_deref(), Some("10.152.183.54"));
        assert_eq!(s.load_balancer_address(), Some("203.0.113.10"));
        let want = spec(
            ServiceType::LoadBalancer,
            &[("service.beta.kubernetes.io/aws-load-balancer-type", "nlb")],
        );
        assert_eq!(
            s.managed_annotations,
            BTreeSet::from(["service.beta.kubernetes.io/aws-load-balancer-type".to_string()])
        );
        assert!(
            !s.spec.annotations.contains_key(MANAGED_ANNOTATIONS),
            "the record is not an annotation of the spec"
        );
        assert!(s.satisfies(&want), "another's annotation does not count");
        assert!(!s.satisfies(&spec(ServiceType::LoadBalancer, &[])));
        assert!(!s.satisfies(&spec(ServiceType::NodePort, &[])));
    }

    #[test]
    fn a_pending_load_balancer_has_no_address_and_a_hostname_counts() {
        let pending = r#"{"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 1, "nodePort": 30001}]}, "status": {"loadBalancer": {}}}"#;
        let s = Service::from_json(pending.as_bytes()).unwrap();
        assert_eq!(s.load_balancer_address(), None);
        let named = r#"{"metadata": {"name": "s"}, "spec": {}, "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}}"#;
        let s = Service::from_json(named.as_bytes()).unwrap();
        assert_eq!(s.spec.service_type, ServiceType::ClusterIp, "the default");
        assert_eq!(s.load_balancer_address(), Some("lb.example.com"));
        let odd = r#"{"metadata": {"name": "s"}, "spec": {"type": "ExternalName"}}"#;
        assert!(Service::from_json(odd.as_bytes()).is_err());
    }

    #[test]
    fn the_merge_patch_removes_what_the_charm_no_longer_wants_and_sends_ports_whole() {
        let current = Service::from_json(LOAD_BALANCER.as_bytes()).unwrap();
        let patch = spec(ServiceType::ClusterIp, &[]).merge_patch(&current);
        assert_eq!(
            patch,
            json!({
                "metadata": {
                    "labels": {"app.kubernetes.io/name": "pgb"},
                    "annotations": {
                        "service.beta.kubernetes.io/aws-load-balancer-type": null,
                        "k8s-incluster/managed-annotations": "",
                    },
                },
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"name": "pgbouncer", "protocol": "TCP", "port": 6432, "targetPort": 6432}],
                    "selector": {"app.kubernetes.io/name": "pgb"},
                }
            })
        );
    }

    /// Services in memory; `refuse_patch` answers every patch with 422.
    #[derive(Default)]
    struct Memory {
        services: RefCell<BTreeMap<String, Service>>,
        calls: RefCell<Vec<String>>,
        refuse_patch: bool,
    }

    impl Memory {
        fn store(&self, name: &str, spec: &ServiceSpec) -> Service {
            let service = Service {
                name: name.into(),
                managed_annotations: spec.annotations.keys().cloned().collect(),
                spec: spec.clone(),
                cluster_ip: Some("10.0.0.1".into()),
                ingress: Vec::new(),
            };
            self.services
                .borrow_mut()
                .insert(name.into(), service.clone());
            service
        }
    }

    impl ServiceApi for Memory {
        fn get_service(&self, name: &str) -> Result<Option<Service>, Error> {
            self.calls.borrow_mut().push("get".into());
            Ok(self.services.borrow().get(name).cloned())
        }
        fn create_service(&self, name: &str, spec: &ServiceSpec) -> Result<Service, Error> {
            self.calls.borrow_mut().push("create".into());
            Ok(self.store(name, spec))
        }
        fn patch_service(
            &self,
            name: &str,
            spec: &ServiceSpec,
            _: &Service,
        ) -> Result<Service, Error> {
            self.calls.borrow_mut().push("patch".into());
            if self.refuse_patch {
                return Err(Error::Invalid {
                    action: "patch".into(),
                    message: "spec.ports[0].nodePort: Forbidden".into(),
                });
            }
            Ok(self.store(name, spec))
        }
        fn delete_service(&self, name: &str) -> Result<bool, Error> {
            self.calls.borrow_mut().push("delete".into());
            Ok(self.services.borrow_mut().remove(name).is_some())
        }
    }

    #[test]
    fn ensure_creates_keeps_patches_and_replaces_when_the_patch_is_invalid() {
        let api = Memory::default();
        let cluster = spec(ServiceType::ClusterIp, &[]);
        assert!(matches!(
            ensure(&api, "s", &cluster).unwrap(),
            Ensured::Created(_)
        ));
        assert!(matches!(
            ensure(&api, "s", &cluster).unwrap(),
            Ensured::Kept(_)
        ));
        let node = spec(ServiceType::NodePort, &[]);
        let patched = ensure(&api, "s", &node).unwrap();
        assert!(matches!(patched, Ensured::Patched(_)));
        assert_eq!(patched.service().spec.service_type, ServiceType::NodePort);
        assert_eq!(
            *api.calls.borrow(),
            ["get", "create", "get", "get", "patch"]
        );

        let refusing = Memory {
            refuse_patch: true,
            ..Memory::default()
        };
        refusing.store("s", &node);
        let replaced = ensure(&refusing, "s", &cluster).unwrap();
        assert!(matches!(replaced, Ensured::Replaced(_)));
        assert_eq!(replaced.service().spec, cluster);
        assert_eq!(
            *refusing.calls.borrow(),
            ["get", "patch", "delete", "create"]
        );
    }
}
