//! The objects the model's Kubernetes API serves, in the API's own JSON
//! shapes: a pod per unit and a StatefulSet per application, as Juju makes
//! them (read from the model, [`Cluster`]), and what the charms make and
//! change through the API ([`Objects`]): Services, the labels on pods and
//! the StatefulSets' rolling-update partitions. Pure: the server
//! (`server.rs`) locks, answers and saves.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The label Juju puts on an application's pods, naming it.
pub const APP_LABEL: &str = "app.kubernetes.io/name";

/// The node ports a NodePort or LoadBalancer Service gets, as Kubernetes'
/// default range.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// What the model says Kubernetes runs: the namespace (the model's name),
/// the one node, each unit's pod and each application's StatefulSet, and
/// which applications are trusted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    pub namespace: String,
    /// The second octet of the model's addresses (`127.<octet>.0.0/16`).
    pub octet: u8,
    pub pods: BTreeMap<String, PodView>,
    /// Each application's charm revision.
    pub sets: BTreeMap<String, u64>,
    /// Applications deployed with `--trust` or given `juju trust`.
    pub trusted: BTreeSet<String>,
}

/// A unit's pod, as the model has it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub app: String,
    /// The unit's number, the pod's ordinal.
    pub ordinal: u32,
    /// The unit's address, the pod's IP.
    pub address: String,
    /// The charm revision the unit runs.
    pub revision: u64,
}

impl Cluster {
    /// The node's address (the API server's too): `127.<octet>.0.1`.
    pub fn node(&self) -> String {
        format!("127.{}.0.1", self.octet)
    }

    fn pod(&self, name: &str, stored: &Objects) -> Option<Value> {
        let view = self.pods.get(name)?;
        let labels = stored
            .pod_labels
            .get(name)
            .cloned()
            .unwrap_or_else(|| juju_labels(name, view));
        Some(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "uid": format!("pod-{name}"),
            },
            "spec": {
                "nodeName": "local",
                "serviceAccountName": view.app,
                "containers": [{"name": "charm"}],
            },
            "status": {
                "phase": "Running",
                "hostIP": self.node(),
                "podIP": view.address,
                "podIPs": [{"ip": view.address}],
            },
        }))
    }

    fn stateful_set(&self, name: &str, stored: &Objects) -> Option<Value> {
        let revision = *self.sets.get(name)?;
        let pods: Vec<&PodView> = self.pods.values().filter(|p| p.app == name).collect();
        let oldest = pods.iter().map(|p| p.revision).min().unwrap_or(revision);
        let updated = pods.iter().filter(|p| p.revision == revision).count();
        let partition = stored.partitions.get(name).copied().unwrap_or(0);
        Some(json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {APP_LABEL: name},
            },
            "spec": {
                "replicas": pods.len(),
                "selector": {"matchLabels": {APP_LABEL: name}},
                "serviceName": format!("{name}-endpoints"),
                "podManagementPolicy": "Parallel",
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"partition": partition},
                },
            },
            "status": {
                "replicas": pods.len(),
                "readyReplicas": pods.len(),
                "currentReplicas": pods.len() - updated,
                "updatedReplicas": updated,
                "currentRevision": format!("{name}-{oldest}"),
                "updateRevision": format!("{name}-{revision}"),
            },
        }))
    }

    /// Whether `pod`'s labels (as served) include every one of `selector`.
    fn selects(&self, stored: &Objects, selector: &Map<String, Value>, pod: &str) -> bool {
        let Some(labels) = self
            .pod(pod, stored)
            .map(|p| p["metadata"]["labels"].clone())
        else {
            return false;
        };
        !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The labels Juju gives a unit's pod.
fn juju_labels(name: &str, view: &PodView) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_LABEL.to_string(), view.app.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "juju".to_string(),
        ),
        (
            "apps.kubernetes.io/pod-index".to_string(),
            view.ordinal.to_string(),
        ),
        (
            "statefulset.kubernetes.io/pod-name".to_string(),
            name.to_string(),
        ),
    ])
}

/// What the charms made through the API, kept across controller restarts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Objects {
    /// Services by name, as the API shows them.
    pub services: BTreeMap<String, Value>,
    /// The whole label set of each pod whose labels were patched.
    pub pod_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Each StatefulSet's rolling-update partition, where one was set.
    pub partitions: BTreeMap<String, u32>,
    /// Each application's service account token.
    pub tokens: BTreeMap<String, String>,
    /// The last `resourceVersion` handed out.
    pub resource_version: u64,
}

/// A request, as the API sees it.
#[derive(Clone, Debug, Default)]
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// An answer: the status code and the JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub code: u16,
    pub body: Value,
}

/// The content type of a JSON merge patch, the only patch served.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// What a path names.
struct Target<'a> {
    /// The resource's plural (`pods`, `services`, `statefulsets`).
    resource: &'a str,
    /// Its API group (`""` for the core group).
    group: &'a str,
    namespace: &'a str,
    name: Option<&'a str>,
}

fn target(path: &str) -> Option<Target<'_>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", "apps", "v1", rest @ ..] => ("apps", rest),
        _ => return None,
    };
    let (namespace, resource, name) = match rest {
        ["namespaces", ns, resource] => (*ns, *resource, None),
        ["namespaces", ns, resource, name] => (*ns, *resource, Some(*name)),
        _ => return None,
    };
    let known = matches!(
        (group, resource),
        ("", "pods") | ("", "services") | ("apps", "statefulsets")
    );
    known.then_some(Target {
        resource,
        group,
        namespace,
        name,
    })
}

/// A `Status` object, as the API answers a failure.
fn failure(code: u16, reason: &str, message: String, details: Option<(&str, &str)>) -> Answer {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some((name, kind)) = details {
        body["details"] = json!({"name": name, "kind": kind});
    }
    Answer { code, body }
}

fn not_found(resource: &str, name: &str) -> Answer {
    failure(
        404,
        "NotFound",
        format!("{resource} \"{name}\" not found"),
        Some((name, resource)),
    )
}

/// 422, as the API rejects an object: `<Kind> "<name>" is invalid: <causes>`.
fn invalid(kind: &str, resource: &str, name: &str, causes: &[String]) -> Answer {
    failure(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {}", causes.join(", ")),
        Some((name, resource)),
    )
}

fn ok(code: u16, body: Value) -> Answer {
    Answer { code, body }
}

impl Objects {
    /// Answers one call against `cluster`; `true` with it when something
    /// changed (to be saved, and the Services' routes looked at again).
    pub fn handle(&mut self, cluster: &Cluster, call: &Call<'_>) -> (Answer, bool) {
        let token = call
            .authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(app) = token.and_then(|t| {
            self.tokens
                .iter()
                .find(|(_, known)| known.as_str() == t)
                .map(|(app, _)| app.clone())
        }) else {
            return (
                failure(401, "Unauthorized", "Unauthorized".into(), None),
                false,
            );
        };
        let Some(target) = target(call.path) else {
            return (
                failure(
                    404,
                    "NotFound",
                    "the server could not find the requested resource".into(),
                    None,
                ),
                false,
            );
        };
        let verb = match (call.method, target.name) {
            ("GET", Some(_)) => "get",
            ("GET", None) => "list",
            ("POST", None) if target.resource == "services" => "create",
            ("PATCH", Some(_)) => "patch",
            ("DELETE", Some(_)) if target.resource == "services" => "delete",
            _ => {
                return (
                    failure(
                        405,
                        "MethodNotAllowed",
                        format!(
                        "the server does not allow this method on the requested resource ({} {})",
                        call.method, target.resource
                    ),
                        None,
                    ),
                    false,
                )
            }
        };
        if !cluster.trusted.contains(&app) || target.namespace != cluster.namespace {
            let what = match target.name {
                Some(name) => format!("{} \"{name}\"", target.resource),
                None => target.resource.to_string(),
            };
            return (
                failure(
                    403,
                    "Forbidden",
                    format!(
                        "{what} is forbidden: User \"system:serviceaccount:{ns}:{app}\" cannot \
                         {verb} resource \"{}\" in API group \"{}\" in the namespace \"{}\"",
                        target.resource,
                        target.group,
                        target.namespace,
                        ns = cluster.namespace,
                    ),
                    target.name.map(|n| (n, target.resource)),
                ),
                false,
            );
        }
        if verb == "patch" && call.content_type.map(str::trim) != Some(MERGE_PATCH) {
            return (
                failure(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types \
                         include: {MERGE_PATCH}"
                    ),
                    None,
                ),
                false,
            );
        }
        let body = || serde_json::from_slice::<Value>(call.body);
        let bad_body = |e: serde_json::Error| {
            (
                failure(
                    400,
                    "BadRequest",
                    format!("the body is not JSON: {e}"),
                    None,
                ),
                false,
            )
        };
        let name = target.name.unwrap_or_default();
        match (target.resource, verb) {
            ("pods", "get") => (self.read(cluster.pod(name, self), "pods", name), false),
            ("pods", "list") => (self.list(cluster, "PodList", pods), false),
            ("pods", "patch") => match body() {
                Ok(patch) => self.patch_pod(cluster, name, &patch),
                Err(e) => bad_body(e),
            },
            ("statefulsets", "get") => (
                self.read(cluster.stateful_set(name, self), "statefulsets.apps", name),
                false,
            ),
            ("statefulsets", "patch") => match body() {
                Ok(patch) => self.patch_stateful_set(cluster, name, &patch),
                Err(e) => bad_body(e),
            },
            ("services", "get") => (
                self.read(self.services.get(name).cloned(), "services", name),
                false,
            ),
            ("services", "list") => (
                self.list(cluster, "ServiceList", |o, _| {
                    o.services.values().cloned().collect()
                }),
                false,
            ),
            ("services", "create") => match body() {
                Ok(object) => self.create_service(cluster, &object),
                Err(e) => bad_body(e),
            },
            ("services", "patch") => match body() {
                Ok(patch) => self.patch_service(cluster, name, &patch),
                Err(e) => bad_body(e),
            },
            ("services", "delete") => match self.services.remove(name) {
                Some(_) => (
                    ok(
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Success", "details": {"name": name, "kind": "services"}}),
                    ),
                    true,
                ),
                None => (not_found("services", name), false),
            },
            _ => (
                failure(405, "MethodNotAllowed", "not allowed".into(), None),
                false,
            ),
        }
    }

    fn read(&self, object: Option<Value>, resource: &str, name: &str) -> Answer {
        match object {
            Some(o) => ok(200, o),
            None => not_found(resource, name),
        }
    }

    fn list(
        &self,
        cluster: &Cluster,
        kind: &str,
        items: impl Fn(&Objects, &Cluster) -> Vec<Value>,
    ) -> Answer {
        ok(
            200,
            json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": self.resource_version.to_string()}, "items": items(self, cluster)}),
        )
    }

    fn next_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// A merge patch of a pod: its labels may change, nothing else.
    fn patch_pod(&mut self, cluster: &Cluster, name: &str, patch: &Value) -> (Answer, bool) {
        let Some(before) = cluster.pod(name, self) else {
            return (not_found("pods", name), false);
        };
        let mut after = before.clone();
        merge_patch(&mut after, patch);
        let mut unchanged = after.clone();
        unchanged["metadata"]["labels"] = before["metadata"]["labels"].clone();
        if unchanged != before {
            let cause = "spec: Forbidden: pod updates may not change fields other than labels \
                         (the local model's pods take label patches only)"
                .to_string();
            return (invalid("Pod", "pods", name, &[cause]), false);
        }
        let mut labels = BTreeMap::new();
        let mut causes = Vec::new();
        for (key, value) in after["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            match value.as_str() {
                Some(v) if label_key_ok(&key) && label_value_ok(v) => {
                    labels.insert(key, v.to_string());
                }
                _ => causes.push(format!(
                    "metadata.labels: Invalid value: {value}: a label key must be a qualified \
                     name and its value 63 characters or fewer of alphanumerics, '-', '_' or \
                     '.', starting and ending with an alphanumeric"
                )),
            }
        }
        if !causes.is_empty() {
            return (invalid("Pod", "pods", name, &causes), false);
        }
        self.pod_labels.insert(name.to_string(), labels);
        self.next_version();
        let pod = cluster.pod(name, self).unwrap_or_default();
        (ok(200, pod), true)
    }

    /// A merge patch of a StatefulSet: its partition may change, nothing
    /// else (Juju owns the rest).
    fn patch_stateful_set(
        &mut self,
        cluster: &Cluster,
        name: &str,
        patch: &Value,
    ) -> (Answer, bool) {
        let Some(before) = cluster.stateful_set(name, self) else {
            return (not_found("statefulsets.apps", name), false);
        };
        let mut after = before.clone();
        merge_patch(&mut after, patch);
        let partition = after["spec"]["updateStrategy"]["rollingUpdate"]["partition"].clone();
        let mut unchanged = after.clone();
        unchanged["spec"]["updateStrategy"]["rollingUpdate"]["partition"] =
            before["spec"]["updateStrategy"]["rollingUpdate"]["partition"].clone();
        if unchanged != before {
            let cause = "spec: Forbidden: updates to statefulset spec for fields other than \
                         'updateStrategy.rollingUpdate.partition' are forbidden here (Juju owns \
                         the rest)"
                .to_string();
            return (
                invalid("StatefulSet.apps", "statefulsets.apps", name, &[cause]),
                false,
            );
        }
        let Some(partition) = partition.as_u64().and_then(|p| u32::try_from(p).ok()) else {
            let cause = format!(
                "spec.updateStrategy.rollingUpdate.partition: Invalid value: {partition}: must \
                 be greater than or equal to 0"
            );
            return (
                invalid("StatefulSet.apps", "statefulsets.apps", name, &[cause]),
                false,
            );
        };
        self.partitions.insert(name.to_string(), partition);
        self.next_version();
        let set = cluster.stateful_set(name, self).unwrap_or_default();
        (ok(200, set), true)
    }

    fn create_service(&mut self, cluster: &Cluster, object: &Value) -> (Answer, bool) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !dns_label_ok(&name) {
            let cause = format!(
                "metadata.name: Invalid value: {:?}: a DNS-1035 label must consist of lower case \
                 alphanumeric characters or '-', start with an alphabetic character, and end \
                 with an alphanumeric character",
                name
            );
            return (invalid("Service", "services", &name, &[cause]), false);
        }
        if self.services.contains_key(&name) {
            return (
                failure(
                    409,
                    "AlreadyExists",
                    format!("services \"{name}\" already exists"),
                    Some((&name, "services")),
                ),
                false,
            );
        }
        match self.admit(cluster, &name, object.clone(), None) {
            Ok(service) => {
                self.services.insert(name.clone(), service.clone());
                self.assign_load_balancers(cluster);
                (ok(201, service), true)
            }
            Err(causes) => (invalid("Service", "services", &name, &causes), false),
        }
    }

    fn patch_service(&mut self, cluster: &Cluster, name: &str, patch: &Value) -> (Answer, bool) {
        let Some(before) = self.services.get(name).cloned() else {
            return (not_found("services", name), false);
        };
        let mut after = before.clone();
        merge_patch(&mut after, patch);
        if after["metadata"]["name"] != before["metadata"]["name"] {
            let cause = "metadata.name: Invalid value: the name may not change".to_string();
            return (invalid("Service", "services", name, &[cause]), false);
        }
        match self.admit(cluster, name, after, Some(&before)) {
            Ok(service) => {
                let changed = service != before;
                self.services.insert(name.to_string(), service.clone());
                self.assign_load_balancers(cluster);
                (ok(200, service), changed)
            }
            Err(causes) => (invalid("Service", "services", name, &causes), false),
        }
    }

    /// Validates a Service as created or patched, with Kubernetes' defaults
    /// and allocations: a cluster IP, node ports for NodePort and
    /// LoadBalancer. `Err` with the causes of a 422.
    fn admit(
        &mut self,
        cluster: &Cluster,
        name: &str,
        mut service: Value,
        before: Option<&Value>,
    ) -> Result<Value, Vec<String>> {
        let mut causes = Vec::new();
        let kind = service["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_string();
        if !matches!(kind.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
            causes.push(format!(
                "spec.type: Unsupported value: {kind:?}: supported values: \"ClusterIP\", \
                 \"LoadBalancer\", \"NodePort\""
            ));
        }
        let taken: BTreeSet<u64> = self
            .services
            .iter()
            .filter(|(other, _)| other.as_str() != name)
            .flat_map(|(_, s)| node_ports(s))
            .collect();
        let mut ports = service["spec"]["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if ports.is_empty() {
            causes.push("spec.ports: Required value".into());
        }
        let mut mine = BTreeSet::new();
        for (i, port) in ports.iter_mut().enumerate() {
            let number = port["port"].as_u64().unwrap_or(0);
            if !(1..=65535).contains(&number) {
                causes.push(format!(
                    "spec.ports[{i}].port: Invalid value: {}: must be between 1 and 65535, \
                     inclusive",
                    port["port"]
                ));
            }
            match port["protocol"].as_str() {
                None => port["protocol"] = json!("TCP"),
                Some("TCP") => {}
                Some(other) => causes.push(format!(
                    "spec.ports[{i}].protocol: Unsupported value: {other:?}: the local model \
                     routes \"TCP\" only"
                )),
            }
            if port.get("targetPort").is_none_or(Value::is_null) {
                port["targetPort"] = json!(number);
            }
            match (kind.as_str(), port["nodePort"].as_u64()) {
                ("ClusterIP", Some(_)) => causes.push(format!(
                    "spec.ports[{i}].nodePort: Forbidden: may not be used when `type` is \
                     'ClusterIP'"
                )),
                ("ClusterIP", None) => {}
                (_, Some(n)) => {
                    let in_range = u16::try_from(n).is_ok_and(|n| NODE_PORTS.contains(&n));
                    if !in_range {
                        causes.push(format!(
                            "spec.ports[{i}].nodePort: Invalid value: {n}: provided port is not \
                             in the valid range. The range of valid ports is 30000-32767"
                        ));
                    } else if taken.contains(&n) || !mine.insert(n) {
                        causes.push(format!(
                            "spec.ports[{i}].nodePort: Invalid value: {n}: provided port is \
                             already allocated"
                        ));
                    }
                }
                (_, None) => {
                    let free = NODE_PORTS
                        .map(u64::from)
                        .find(|p| !taken.contains(p) && !mine.contains(p));
                    match free {
                        Some(p) => {
                            mine.insert(p);
                            port["nodePort"] = json!(p);
                        }
                        None => causes.push(format!(
                            "spec.ports[{i}].nodePort: Internal error: range is full"
                        )),
                    }
                }
            }
        }
        if multiple_unnamed(&ports) {
            causes.push("spec.ports[1].name: Required value".into());
        }
        let selector_ok = service["spec"]["selector"]
            .as_object()
            .is_none_or(|s| s.values().all(Value::is_string));
        if !selector_ok {
            causes.push("spec.selector: Invalid value: values must be strings".into());
        }
        let old_ip = before.and_then(|b| b["spec"]["clusterIP"].as_str().map(str::to_string));
        let asked_ip = service["spec"]["clusterIP"].as_str().map(str::to_string);
        let cluster_ip = match (&old_ip, &asked_ip) {
            (Some(old), Some(asked)) if old != asked => {
                causes.push(format!(
                    "spec.clusterIP: Invalid value: {asked:?}: field is immutable"
                ));
                old.clone()
            }
            (Some(old), _) => old.clone(),
            (None, _) => match self.free_cluster_ip(cluster) {
                Some(ip) => ip,
                None => {
                    causes.push("spec.clusterIP: Internal error: the range is full".into());
                    String::new()
                }
            },
        };
        if !causes.is_empty() {
            return Err(causes);
        }
        let now_version = self.next_version();
        let spec = &mut service["spec"];
        spec["type"] = json!(kind);
        spec["ports"] = Value::Array(ports);
        spec["clusterIP"] = json!(cluster_ip);
        spec["clusterIPs"] = json!([cluster_ip]);
        spec["sessionAffinity"] = json!("None");
        if kind != "LoadBalancer" || service["status"]["loadBalancer"].is_null() {
            service["status"] = json!({"loadBalancer": {}});
        }
        let metadata = &mut service["metadata"];
        metadata["namespace"] = json!(cluster.namespace);
        metadata["resourceVersion"] = json!(now_version);
        if metadata["uid"].is_null() {
            metadata["uid"] = json!(format!("service-{name}-{now_version}"));
        }
        service["apiVersion"] = json!("v1");
        service["kind"] = json!("Service");
        Ok(service)
    }

    /// The first cluster IP no Service has: `127.<octet>.0.10` to `.250`.
    fn free_cluster_ip(&self, cluster: &Cluster) -> Option<String> {
        let used: BTreeSet<&str> = self
            .services
            .values()
            .filter_map(|s| s["spec"]["clusterIP"].as_str())
            .collect();
        (10..=250)
            .map(|i| format!("127.{}.0.{i}", cluster.octet))
            .find(|ip| !used.contains(ip.as_str()))
    }

    /// The cloud's load balancer: every LoadBalancer Service without an
    /// address gets one of `127.<octet>.255.1` to `.254`. It is done after
    /// the create or patch has been answered, so the answer shows none, as
    /// a cloud's takes a moment; the next read shows it.
    fn assign_load_balancers(&mut self, cluster: &Cluster) {
        let used: BTreeSet<String> = self
            .services
            .values()
            .filter_map(load_balancer_ip)
            .collect();
        let mut free = (1..=254)
            .map(|i| format!("127.{}.255.{i}", cluster.octet))
            .filter(|ip| !used.contains(ip));
        for service in self.services.values_mut() {
            if service["spec"]["type"] == "LoadBalancer" && load_balancer_ip(service).is_none() {
                if let Some(ip) = free.next() {
                    service["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
                }
            }
        }
    }

    /// Where each Service is reached: every `(address, port)` a connection
    /// may come to (the cluster IP and port, the node and node port, the
    /// load balancer's address and port), with the Service's name and the
    /// pods' port behind it.
    pub fn routes(&self, cluster: &Cluster) -> Vec<Route> {
        let mut routes = Vec::new();
        for (name, service) in &self.services {
            let spec = &service["spec"];
            for port in spec["ports"].as_array().into_iter().flatten() {
                let (Some(number), Some(target)) = (port["port"].as_u64(), target_port(port))
                else {
                    continue;
                };
                let mut at = Vec::new();
                if let Some(ip) = spec["clusterIP"].as_str() {
                    at.push((ip.to_string(), number));
                }
                if let Some(node_port) = port["nodePort"].as_u64() {
                    at.push((cluster.node(), node_port));
                }
                if let Some(ip) = load_balancer_ip(service) {
                    at.push((ip, number));
                }
                for (address, port) in at {
                    routes.push(Route {
                        address,
                        port: port as u16,
                        service: name.clone(),
                        target,
                    });
                }
            }
        }
        routes
    }

    /// The addresses of the pods Service `name` selects, in ordinal order.
    pub fn backends(&self, cluster: &Cluster, name: &str) -> Vec<String> {
        let Some(selector) = self
            .services
            .get(name)
            .and_then(|s| s["spec"]["selector"].as_object())
        else {
            return Vec::new();
        };
        let mut pods: Vec<(&String, &PodView)> = cluster
            .pods
            .iter()
            .filter(|(pod, _)| cluster.selects(self, selector, pod))
            .collect();
        pods.sort_by_key(|(_, v)| (v.app.clone(), v.ordinal));
        pods.into_iter().map(|(_, v)| v.address.clone()).collect()
    }

    /// The cluster IP of the Service a cluster DNS name
    /// (`<service>.<namespace>.svc.cluster.local`, or shorter) names.
    pub fn resolve(&self, cluster: &Cluster, host: &str) -> Option<String> {
        let mut labels = host.trim_end_matches('.').split('.');
        let service = labels.next()?;
        let rest: Vec<&str> = labels.collect();
        let namespace_ok = match rest.as_slice() {
            [] => true,
            [ns, ..] => *ns == cluster.namespace,
        };
        let suffix_ok =
            rest.len() <= 1 || rest[1..] == ["svc", "cluster", "local"][..rest.len() - 1];
        if !(namespace_ok && suffix_ok) {
            return None;
        }
        self.services.get(service)?["spec"]["clusterIP"]
            .as_str()
            .map(str::to_string)
    }
}

/// Where connections to a Service arrive, and where they go.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub address: String,
    pub port: u16,
    pub service: String,
    /// The pods' port.
    pub target: u16,
}

fn pods(objects: &Objects, cluster: &Cluster) -> Vec<Value> {
    cluster
        .pods
        .keys()
        .filter_map(|p| cluster.pod(p, objects))
        .collect()
}

fn target_port(port: &Value) -> Option<u16> {
    port["targetPort"]
        .as_u64()
        .or_else(|| port["targetPort"].as_str()?.parse().ok())
        .and_then(|p| u16::try_from(p).ok())
}

fn node_ports(service: &Value) -> Vec<u64> {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64())
        .collect()
}

fn load_balancer_ip(service: &Value) -> Option<String> {
    service["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_string)
}

fn multiple_unnamed(ports: &[Value]) -> bool {
    ports.len() > 1
        && ports
            .iter()
            .any(|p| p["name"].as_str().is_none_or(str::is_empty))
}

/// RFC 7386: `patch` merged into `target`; `null` removes a key.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(fields) = target {
        for (key, value) in patch {
            if value.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A DNS-1035 label: what a Service's name must be.
fn dns_label_ok(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A label key: an optional DNS prefix and `/`, then a name of 63
/// characters or fewer.
fn label_key_ok(key: &str) -> bool {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return false;
            }
            name
        }
        None => key,
    };
    !name.is_empty() && label_value_ok(name)
}

/// A label value: empty, or 63 characters or fewer of alphanumerics, `-`,
/// `_` and `.`, starting and ending with an alphanumeric.
fn label_value_ok(value: &str) -> bool {
    let b = value.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "Bearer t0ken";

    fn world() -> (Objects, Cluster) {
        let mut objects = Objects::default();
        objects.tokens.insert("app".into(), "t0ken".into());
        objects.tokens.insert("other".into(), "0ther".into());
        let mut cluster = Cluster {
            namespace: "ns".into(),
            octet: 9,
            ..Cluster::default()
        };
        cluster.sets.insert("app".into(), 1);
        cluster.pods.insert(
            "app-0".into(),
            PodView {
                app: "app".into(),
                ordinal: 0,
                address: "127.9.1.1".into(),
                revision: 1,
            },
        );
        cluster.trusted.insert("app".into());
        (objects, cluster)
    }

    fn call<'a>(method: &'a str, path: &'a str, body: &'a str) -> Call<'a> {
        Call {
            method,
            path,
            authorization: Some(TOKEN),
            content_type: Some(if method == "PATCH" {
                MERGE_PATCH
            } else {
                "application/json"
            }),
            body: body.as_bytes(),
        }
    }

    const SERVICES: &str = "/api/v1/namespaces/ns/services";

    fn create(objects: &mut Objects, cluster: &Cluster, body: Value) -> Answer {
        objects
            .handle(cluster, &call("POST", SERVICES, &body.to_string()))
            .0
    }

    fn service(name: &str, kind: &str, port: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"type": kind, "ports": [port],
               "selector": {APP_LABEL: "app"}}})
    }

    #[test]
    fn a_service_gets_the_apis_defaults_and_allocations() {
        let (mut objects, cluster) = world();
        let made = create(
            &mut objects,
            &cluster,
            service("db", "NodePort", json!({"port": 5432})),
        );
        assert_eq!(made.code, 201, "{}", made.body);
        let spec = &made.body["spec"];
        assert_eq!(spec["clusterIP"], "127.9.0.10");
        assert_eq!(spec["ports"][0]["nodePort"], 30000);
        assert_eq!(spec["ports"][0]["targetPort"], 5432);
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(
            objects.routes(&cluster),
            vec![
                Route {
                    address: "127.9.0.10".into(),
                    port: 5432,
                    service: "db".into(),
                    target: 5432
                },
                Route {
                    address: "127.9.0.1".into(),
                    port: 30000,
                    service: "db".into(),
                    target: 5432
                },
            ]
        );
        assert_eq!(objects.backends(&cluster, "db"), ["127.9.1.1"]);
    }

    #[test]
    fn invalid_services_are_refused_with_the_causes() {
        let (mut objects, cluster) = world();
        create(
            &mut objects,
            &cluster,
            service("db", "NodePort", json!({"port": 5432, "nodePort": 30007})),
        );
        let cases = [
            (
                service("a", "ClusterIP", json!({"port": 1, "nodePort": 30001})),
                "may not be used when `type` is 'ClusterIP'",
            ),
            (
                service("a", "NodePort", json!({"port": 1, "nodePort": 30007})),
                "provided port is already allocated",
            ),
            (
                service("a", "NodePort", json!({"port": 1, "nodePort": 80})),
                "not in the valid range",
            ),
            (
                service("a", "ExternalName", json!({"port": 1})),
                "spec.type: Unsupported value",
            ),
            (
                service("a", "ClusterIP", json!({"port": 70000})),
                "must be between 1 and 65535",
            ),
            (
                service("a", "ClusterIP", json!({"port": 1, "protocol": "UDP"})),
                "routes \"TCP\" only",
            ),
            (service("A_b", "ClusterIP", json!({"port": 1})), "DNS-1035"),
        ];
        for (body, cause) in cases {
            let answer = create(&mut objects, &cluster, body.clone());
            assert_eq!(answer.code, 422, "{body}: {}", answer.body);
            assert_eq!(answer.body["reason"], "Invalid");
            let message = answer.body["message"].as_str().unwrap();
            assert!(message.contains(cause), "{message}");
        }
        let again = create(
            &mut objects,
            &cluster,
            service("db", "ClusterIP", json!({"port": 1})),
        );
        assert_eq!(again.code, 409);
        assert_eq!(again.body["reason"], "AlreadyExists");
        let path = format!("{SERVICES}/db");
        let (moved, changed) = objects.handle(
            &cluster,
            &call("PATCH", &path, r#"{"spec":{"clusterIP":"127.9.0.99"}}"#),
        );
        assert_eq!(moved.code, 422);
        assert!(!changed);
        assert!(moved.body["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable"));
        assert_eq!(objects.services.len(), 1);
    }

    #[test]
    fn requests_the_api_cannot_take() {
        let (mut objects, cluster) = world();
        let path = "/api/v1/namespaces/ns/pods/app-0";
        let mut patch = call("PATCH", path, r#"{"metadata":{"labels":{"a":"b"}}}"#);
        patch.content_type = Some("application/json-patch+json");
        assert_eq!(objects.handle(&cluster, &patch).0.code, 415);
        let spec_change = call("PATCH", path, r#"{"spec":{"nodeName":"x"}}"#);
        assert_eq!(objects.handle(&cluster, &spec_change).0.code, 422);
        let not_json = call("POST", SERVICES, "{");
        assert_eq!(objects.handle(&cluster, &not_json).0.code, 400);
        let delete_pod = call("DELETE", path, "");
        assert_eq!(objects.handle(&cluster, &delete_pod).0.code, 405);
        let unknown = call("GET", "/api/v1/namespaces/ns/configmaps/x", "");
        assert_eq!(objects.handle(&cluster, &unknown).0.code, 404);
        let mut stranger = call("GET", path, "");
        stranger.authorization = Some("Bearer nope");
        assert_eq!(objects.handle(&cluster, &stranger).0.code, 401);
        let mut untrusted = call("GET", path, "");
        untrusted.authorization = Some("Bearer 0ther");
        let (refused, _) = objects.handle(&cluster, &untrusted);
        assert_eq!(refused.code, 403);
        assert_eq!(refused.body["reason"], "Forbidden");
        let elsewhere = call("GET", "/api/v1/namespaces/kube-system/pods/app-0", "");
        assert_eq!(objects.handle(&cluster, &elsewhere).0.code, 403);
        let partition = call(
            "PATCH",
            "/apis/apps/v1/namespaces/ns/statefulsets/app",
            r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":-1}}}}"#,
        );
        assert_eq!(objects.handle(&cluster, &partition).0.code, 422);
        let replicas = call(
            "PATCH",
            "/apis/apps/v1/namespaces/ns/statefulsets/app",
            r#"{"spec":{"replicas":5}}"#,
        );
        assert_eq!(objects.handle(&cluster, &replicas).0.code, 422);
        assert!(objects.partitions.is_empty() && objects.pod_labels.is_empty());
    }

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut doc, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(doc, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }
}
