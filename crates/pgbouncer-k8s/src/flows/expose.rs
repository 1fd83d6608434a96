//! On Kubernetes, the application's Service `<app>-service`: the leader
//! creates and keeps it as `expose-external` asks ([`wanted`]), records in
//! the peer application bag what clients can reach ([`Exposure`]), and the
//! client flows hand that out instead of unit addresses
//! ([`super::client_endpoints`]). Every unit opens the port it serves; the
//! Service goes when the application does ([`removed`]). Off Kubernetes
//! none of this runs and nothing is recorded. The flowchart is in
//! `docs/pgbouncer-flows.md` (k8s-service).

use super::{config, database, Deps};
use crate::config::{CharmConfig, Expose};
use crate::service::Services;
use crate::state;
use charm::backend::Port;
use charm::{BagChanges, Event, Hook, LogLevel, Relation, Status};
use k8s_incluster::service::ensure;
use k8s_incluster::{Error, Service, ServicePort, ServiceSpec, ServiceType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The peer application bag key holding the recorded [`Exposure`].
pub const EXPOSURE: &str = "k8s-service";

/// The label that names the application's pods (Juju sets it on each).
pub const APP_LABEL: &str = "app.kubernetes.io/name";

/// What clients can reach through the Service, as the leader last found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Exposure {
    /// Clients connect to `endpoints` (`host:port`, comma-separated).
    Reachable { endpoints: String },
    /// Not reachable yet (no load balancer address, no node port, an API
    /// error to retry); clients are told nothing new meanwhile.
    Waiting { message: String },
    /// The charm may not manage the Service: the message names the fix.
    Blocked { message: String },
}

/// The Service's name.
pub fn service_name(app: &str) -> String {
    format!("{app}-service")
}

/// The Service `expose-external` asks for: ClusterIP (`false`), NodePort or
/// LoadBalancer (with `loadbalancer-extra-annotations`, for it alone), one
/// port `pgbouncer` on `listen_port`, selecting the application's pods.
pub fn wanted(app: &str, config: &CharmConfig) -> ServiceSpec {
    let (service_type, annotations) = match config.expose {
        Expose::No => (ServiceType::ClusterIp, BTreeMap::new()),
        Expose::NodePort => (ServiceType::NodePort, BTreeMap::new()),
        Expose::LoadBalancer => (
            ServiceType::LoadBalancer,
            config.loadbalancer_annotations.clone(),
        ),
    };
    let name = BTreeMap::from([(APP_LABEL.to_string(), app.to_string())]);
    ServiceSpec {
        service_type,
        ports: vec![ServicePort {
            name: "pgbouncer".into(),
            port: config.listen_port,
            node_port: None,
        }],
        selector: name.clone(),
        labels: name,
        annotations,
    }
}

/// What a client can reach through `service`: its cluster DNS name for
/// ClusterIP; each node's address (of `nodes`, the nodes the units run on)
/// with the node port for NodePort; the load balancer's address for
/// LoadBalancer. Waiting while the API has not given what is needed.
pub fn reach(service: &Service, namespace: &str, port: u16, nodes: &[String]) -> Exposure {
    let waiting = |what: &str| Exposure::Waiting {
        message: format!("waiting for {what} of Kubernetes Service {}", service.name),
    };
    match service.spec.service_type {
        ServiceType::ClusterIp => Exposure::Reachable {
            endpoints: format!("{}.{namespace}.svc.cluster.local:{port}", service.name),
        },
        ServiceType::NodePort => {
            let Some(node_port) = service.node_port(port) else {
                return waiting("the node port");
            };
            let mut hosts: Vec<&String> = nodes.iter().filter(|n| !n.is_empty()).collect();
            hosts.sort();
            hosts.dedup();
            if hosts.is_empty() {
                return waiting("the nodes' addresses");
            }
            let endpoints: Vec<String> = hosts.iter().map(|h| format!("{h}:{node_port}")).collect();
            Exposure::Reachable {
                endpoints: endpoints.join(","),
            }
        }
        ServiceType::LoadBalancer => match service.load_balancer_address() {
            Some(address) => Exposure::Reachable {
                endpoints: format!("{address}:{port}"),
            },
            None => waiting("the load balancer address"),
        },
    }
}

/// What an API refusal means for the user: a 403 (or 401) asks for trust;
/// anything else is retried (at update-status, or the next change).
pub fn refused(app: &str, error: &Error) -> Exposure {
    match error {
        Error::Forbidden { .. } => Exposure::Blocked {
            message: format!(
                "the Kubernetes API refuses to manage Service {}: run `juju trust {app} --scope=cluster`",
                service_name(app)
            ),
        },
        other => Exposure::Waiting {
            message: format!("cannot set up Kubernetes Service {}: {other}", service_name(app)),
        },
    }
}

/// The recorded exposure; `None` off Kubernetes (or before the leader first
/// ran [`reconcile`]).
pub fn recorded(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Option<Exposure>> {
    Ok(hook
        .local_app_bag(peers)?
        .get(EXPOSURE)
        .and_then(|v| serde_json::from_str(v).ok()))
}

/// Leader, on Kubernetes: makes the Service what the options ask for, finds
/// what clients can reach, and records it; when that changed, every client
/// is refreshed ([`database::refresh_all`]). Invalid options or no peer
/// relation yet: nothing (the status says why, or the peers come first).
pub fn reconcile(hook: &mut Hook<'_>, deps: &Deps, api: &dyn Services) -> anyhow::Result<()> {
    if !hook.is_leader()? {
        return Ok(());
    }
    let Some(peers) = state::peers(hook)? else {
        return Ok(());
    };
    let Ok(config) = config(hook)? else {
        return Ok(());
    };
    let exposure = match find(hook, api, &peers, &config)? {
        Ok(e) => e,
        Err(e) => refused(hook.app(), &e),
    };
    if recorded(hook, &peers)?.as_ref() == Some(&exposure) {
        return Ok(());
    }
    hook.log(
        LogLevel::Info,
        &format!(
            "Kubernetes Service {}: {exposure:?}",
            service_name(hook.app())
        ),
    )?;
    hook.update_app_bag(
        &peers,
        BagChanges::new().set(EXPOSURE, serde_json::to_string(&exposure)?),
    )?;
    database::refresh_all(hook, deps)
}

/// Ensures the Service and reads what it offers; the API's refusal as the
/// inner error.
fn find(
    hook: &mut Hook<'_>,
    api: &dyn Services,
    peers: &Relation,
    config: &CharmConfig,
) -> anyhow::Result<Result<Exposure, Error>> {
    let app = hook.app().to_string();
    let service = match ensure(api, &service_name(&app), &wanted(&app, config)) {
        Ok(ensured) => ensured.service().clone(),
        Err(e) => return Ok(Err(e)),
    };
    let namespace = match api.namespace() {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    let mut nodes = Vec::new();
    if service.spec.service_type == ServiceType::NodePort {
        let mut units = vec![hook.unit().to_string()];
        units.extend(state::peer_units(hook, peers)?.into_iter().map(|u| u.name));
        for unit in units {
            match api.node_address(&unit.replace('/', "-")) {
                Ok(address) => nodes.extend(address),
                Err(e) => return Ok(Err(e)),
            }
        }
    }
    Ok(Ok(reach(&service, &namespace, config.listen_port, &nodes)))
}

/// Before the event's flow: every unit opens its port when the options may
/// have changed; on Kubernetes, the leader reconciles the Service when the
/// options, the leadership, the charm or the units may have changed, at
/// update-status (to retry and to see a new load balancer address), and on
/// any event while nothing is recorded yet; on remove, the Service may go.
pub fn before(
    hook: &mut Hook<'_>,
    deps: &Deps,
    api: Option<&dyn Services>,
    event: &Event,
) -> anyhow::Result<()> {
    if matches!(event, Event::ConfigChanged | Event::UpgradeCharm) {
        open_ports(hook)?;
    }
    let Some(api) = api else {
        return Ok(());
    };
    let peer_change = match event {
        Event::RelationJoined(r) | Event::RelationChanged(r) | Event::RelationDeparted(r) => {
            r.relation.endpoint == state::PEERS
        }
        _ => false,
    };
    match event {
        Event::Remove => removed(hook, api),
        Event::ConfigChanged | Event::LeaderElected | Event::UpgradeCharm | Event::UpdateStatus => {
            reconcile(hook, deps, api)
        }
        _ if peer_change => reconcile(hook, deps, api),
        _ => match state::peers(hook)? {
            Some(peers) if hook.is_leader()? && recorded(hook, &peers)?.is_none() => {
                reconcile(hook, deps, api)
            }
            _ => Ok(()),
        },
    }
}

/// The unit's status while the Service is not reachable.
pub fn status(hook: &mut Hook<'_>) -> anyhow::Result<Option<Status>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(None);
    };
    Ok(match recorded(hook, &peers)? {
        Some(Exposure::Waiting { message }) => Some(Status::Waiting(message)),
        Some(Exposure::Blocked { message }) => Some(Status::Blocked(message)),
        Some(Exposure::Reachable { .. }) | None => None,
    })
}

/// remove, on Kubernetes: once the application is going (no unit planned),
/// the Service is deleted. A failure is logged, never fails the hook: the
/// unit is going either way.
pub fn removed(hook: &mut Hook<'_>, api: &dyn Services) -> anyhow::Result<()> {
    if hook.planned_units()? > 0 {
        return Ok(());
    }
    let name = service_name(hook.app());
    let message = match api.delete_service(&name) {
        Ok(true) => format!("deleted Kubernetes Service {name}"),
        Ok(false) => format!("Kubernetes Service {name} was already gone"),
        Err(e) => format!("cannot delete Kubernetes Service {name}: {e}"),
    };
    hook.log(LogLevel::Info, &message)?;
    Ok(())
}

/// Every unit: the TCP port PgBouncer listens on is open, and no other.
pub fn open_ports(hook: &mut Hook<'_>) -> anyhow::Result<()> {
    let Ok(config) = config(hook)? else {
        return Ok(());
    };
    let want = Port::tcp(config.listen_port);
    let opened = hook.opened_ports()?;
    for port in opened.iter().filter(|p| **p != want) {
        hook.close_port(port)?;
    }
    if !opened.contains(&want) {
        hook.open_port(&want)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_incluster::service::Ingress;

    fn service(
        service_type: ServiceType,
        node_port: Option<u16>,
        ingress: Vec<Ingress>,
    ) -> Service {
        Service {
            name: "pgb-service".into(),
            spec: ServiceSpec {
                service_type,
                ports: vec![ServicePort {
                    name: "pgbouncer".into(),
                    port: 6432,
                    node_port,
                }],
                selector: BTreeMap::new(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
            },
            managed_annotations: Default::default(),
            cluster_ip: None,
            ingress,
        }
    }

    fn reachable(endpoints: &str) -> Exposure {
        Exposure::Reachable {
            endpoints: endpoints.into(),
        }
    }

    #[test]
    fn node_addresses_are_sorted_once_each_and_blank_ones_skipped() {
        let s = service(ServiceType::NodePort, Some(30001), Vec::new());
        let nodes = ["10.0.0.9", "", "10.0.0.2", "10.0.0.9"].map(String::from);
        assert_eq!(
            reach(&s, "ns", 6432, &nodes),
            reachable("10.0.0.2:30001,10.0.0.9:30001")
        );
        let no_port = service(ServiceType::NodePort, None, Vec::new());
        assert!(matches!(
            reach(&no_port, "ns", 6432, &nodes),
            Exposure::Waiting { .. }
        ));
    }

    #[test]
    fn a_load_balancer_named_by_host_is_reached_by_that_name() {
        let named = Ingress {
            ip: None,
            hostname: Some("lb.example.com".into()),
        };
        let s = service(ServiceType::LoadBalancer, Some(30001), vec![named]);
        assert_eq!(reach(&s, "ns", 6432, &[]), reachable("lb.example.com:6432"));
    }

    #[test]
    fn only_a_forbidden_answer_blocks() {
        let forbidden = Error::Forbidden {
            action: "create Service".into(),
            status: 403,
            message: "forbidden".into(),
        };
        assert!(
            matches!(refused("pgb", &forbidden), Exposure::Blocked { message } if message.contains("juju trust pgb --scope=cluster"))
        );
        let conflict = Error::Conflict {
            action: "create Service pgb-service".into(),
            message: "already exists".into(),
        };
        assert!(matches!(
            refused("pgb", &conflict),
            Exposure::Waiting { .. }
        ));
    }
}
