//! On Kubernetes, the cluster's Services `<app>-primary` and `<app>-replicas`:
//! they select the members' pods by the labels the charm sets
//! (`application`, `cluster-name`) and the `role` label, which Patroni
//! writes when it keeps its state in Kubernetes and each member's charm
//! writes on its own pod when etcd is the DCS ([`label_pod`]), so they follow
//! a switchover or a failover. The leader creates and keeps them
//! ([`reconcile`]) and records the outcome in the peer application bag
//! ([`Recorded`]); once they are ready, clients are given the Services'
//! cluster DNS names ([`endpoints`]). Every unit opens the PostgreSQL port; the Services go
//! with the application ([`removed`]). The flowchart is in
//! `docs/postgresql-flows.md` (k8s-services).

use super::{context, database, Ctx, Deps, Findings};
use crate::dcs::{self, Dcs, DcsState};
use crate::patroni::{Role, DB_PORT};
use crate::pods::{member_labels, pod_name, Labelled};
use crate::state;
use charm::backend::Port;
use charm::{BagChanges, Event, Hook, LogLevel, Relation, Status};
use k8s_incluster::service::ensure;
use k8s_incluster::{Error, ServiceApi, ServicePort, ServiceSpec, ServiceType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The peer application bag key holding the [`Recorded`] outcome.
pub const SERVICES: &str = "k8s-services";

/// The label Juju puts on the application's pods.
pub const APP_LABEL: &str = "app.kubernetes.io/name";

/// The role labels Patroni writes (its `leader_label_value` is `primary`).
pub const ROLES: [(&str, &str); 2] = [("primary", "primary"), ("replicas", "replica")];

/// What the leader last found of the Services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Recorded {
    /// Both exist as wanted, in `namespace`.
    Ready { namespace: String },
    /// An API error to retry (at update-status or the next change).
    Waiting { message: String },
    /// The charm may not manage them: the message names the fix.
    Blocked { message: String },
}

/// The Service for the members of Patroni cluster `scope` with role label
/// `role`, on the PostgreSQL port.
pub fn wanted(app: &str, scope: &str, role: &str) -> ServiceSpec {
    let mut selector = member_labels(scope);
    selector.insert(APP_LABEL.into(), app.into());
    selector.insert("role".into(), role.into());
    ServiceSpec {
        service_type: ServiceType::ClusterIp,
        ports: vec![ServicePort {
            name: "database".into(),
            port: DB_PORT,
            node_port: None,
        }],
        selector,
        labels: BTreeMap::from([(APP_LABEL.to_string(), app.to_string())]),
        annotations: BTreeMap::new(),
    }
}

/// What an API refusal means for the user: a 403 (or 401) asks for trust;
/// anything else is retried.
pub fn refused(app: &str, error: &Error) -> Recorded {
    match error {
        Error::Forbidden { .. } => Recorded::Blocked {
            message: format!(
                "the Kubernetes API refuses to manage Services {app}-primary and {app}-replicas: run `juju trust {app} --scope=cluster`"
            ),
        },
        other => Recorded::Waiting {
            message: format!("cannot set up the Kubernetes Services of {app}: {other}"),
        },
    }
}

/// The recorded outcome; `None` off Kubernetes.
pub fn recorded(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<Option<Recorded>> {
    Ok(hook
        .local_app_bag(peers)?
        .get(SERVICES)
        .and_then(|v| serde_json::from_str(v).ok()))
}

/// Where clients connect on Kubernetes: `<app>-primary`, and
/// `<app>-replicas` when the cluster has other members (the primary when
/// alone), by their cluster DNS names. `None` (unit addresses, as off
/// Kubernetes) unless the Services are ready.
pub fn endpoints(
    hook: &mut Hook<'_>,
    peers: &Relation,
    members: usize,
) -> anyhow::Result<Option<(String, String)>> {
    let Some(Recorded::Ready { namespace }) = recorded(hook, peers)? else {
        return Ok(None);
    };
    let app = hook.app().to_string();
    let name = |suffix: &str| format!("{app}-{suffix}.{namespace}.svc.cluster.local:{DB_PORT}");
    let ro = if members > 1 {
        name("replicas")
    } else {
        name("primary")
    };
    Ok(Some((name("primary"), ro)))
}

/// Leader, on Kubernetes: makes both Services what the cluster's scope asks
/// for and records the outcome. Answers whether it changed (the caller then
/// refreshes the clients). No peer relation yet: nothing.
pub fn reconcile(hook: &mut Hook<'_>, deps: &Deps, api: &dyn ServiceApi) -> anyhow::Result<bool> {
    if !hook.is_leader()? {
        return Ok(false);
    }
    let Some(peers) = state::peers(hook)? else {
        return Ok(false);
    };
    let app = hook.app().to_string();
    let scope = state::scope(hook, &peers)?;
    let mut outcome = Recorded::Ready {
        namespace: deps
            .kubernetes
            .as_ref()
            .map(|k| k.namespace.clone())
            .unwrap_or_default(),
    };
    for (suffix, role) in ROLES {
        if let Err(e) = ensure(api, &format!("{app}-{suffix}"), &wanted(&app, &scope, role)) {
            outcome = refused(&app, &e);
            break;
        }
    }
    if recorded(hook, &peers)?.as_ref() == Some(&outcome) {
        return Ok(false);
    }
    hook.log(
        LogLevel::Info,
        &format!("Kubernetes Services of {app}: {outcome:?}"),
    )?;
    hook.update_app_bag(
        &peers,
        BagChanges::new().set(SERVICES, serde_json::to_string(&outcome)?),
    )?;
    Ok(true)
}

/// The `role` label of a member with `role`, as the Services select it.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Primary => ROLES[0].1,
        Role::StandbyLeader | Role::Replica => ROLES[1].1,
    }
}

/// On Kubernetes, a started member labels its own pod as a member of its
/// cluster (`application`, `cluster-name`: the founder and the first member
/// of a new cluster generation are labelled by no one else) and, with etcd
/// as the DCS (Patroni labels roles only when it keeps its state in
/// Kubernetes), with its role, so that the Services follow a switchover or
/// a failover as soon as the member's charm hears of it (Patroni's
/// role-change callback wakes it). What it last set is recorded in the
/// unit's peer bag, so the API is called only when that changes; a failure
/// is logged and tried again at the next hook.
pub fn label_pod(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &Findings,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let Some(health) = findings.health.as_ref().filter(|h| h.started()) else {
        return Ok(());
    };
    if deps.kubernetes.is_none() {
        return Ok(());
    }
    let mut labels = member_labels(&state::scope(hook, &ctx.peers)?);
    if matches!(
        dcs::choose(hook, deps.kubernetes.as_ref())?,
        DcsState::Ready(Dcs::Etcd { .. })
    ) {
        labels.insert("role".into(), role_label(health.role()).into());
    }
    let wanted = serde_json::to_string(&labels)?;
    let labelled = hook
        .local_unit_bag(&ctx.peers)?
        .get(state::POD_LABELS)
        .cloned();
    if labelled.as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let pod = pod_name(hook.unit());
    match deps.pods.patch_labels(&pod, &labels) {
        Ok(Labelled::Patched) => {
            hook.log(LogLevel::Info, &format!("labelled pod {pod}: {wanted}"))?;
            hook.update_unit_bag(&ctx.peers, BagChanges::new().set(state::POD_LABELS, wanted))?;
        }
        Ok(Labelled::NoPods(_)) => {}
        Err(e) => hook.log(
            LogLevel::Warning,
            &format!(
                "{e}; the Services may not reach this member as they should until the next hook"
            ),
        )?,
    }
    Ok(())
}

/// Before the event's flow: every unit opens the PostgreSQL port when
/// installed or upgraded; on Kubernetes, the leader reconciles the Services
/// when the options, the leadership, the charm or the DCS may have changed,
/// at update-status (to retry), and on any event while nothing is recorded;
/// on remove, the Services may go. When the record changed, every client's
/// endpoints are refreshed.
pub fn before(
    hook: &mut Hook<'_>,
    deps: &Deps,
    api: Option<&dyn ServiceApi>,
    event: &Event,
) -> anyhow::Result<()> {
    if matches!(event, Event::ConfigChanged | Event::UpgradeCharm) {
        open_ports(hook)?;
    }
    let Some(api) = api else {
        return Ok(());
    };
    let changed = match event {
        Event::Remove => removed(hook, api).map(|_| false),
        Event::ConfigChanged | Event::LeaderElected | Event::UpgradeCharm | Event::UpdateStatus => {
            reconcile(hook, deps, api)
        }
        _ => match state::peers(hook)? {
            Some(peers) if hook.is_leader()? && recorded(hook, &peers)?.is_none() => {
                reconcile(hook, deps, api)
            }
            _ => Ok(false),
        },
    }?;
    if changed {
        if let Some(ctx) = context(hook)? {
            database::refresh_all(hook, deps, &ctx, None)?;
        }
    }
    Ok(())
}

/// The unit's status while the Services cannot be managed.
pub fn status(hook: &mut Hook<'_>) -> anyhow::Result<Option<Status>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(None);
    };
    Ok(match recorded(hook, &peers)? {
        Some(Recorded::Waiting { message }) => Some(Status::Waiting(message)),
        Some(Recorded::Blocked { message }) => Some(Status::Blocked(message)),
        Some(Recorded::Ready { .. }) | None => None,
    })
}

/// remove, on Kubernetes: once the application is going (no unit planned),
/// both Services are deleted. A failure is logged, never fails the hook.
pub fn removed(hook: &mut Hook<'_>, api: &dyn ServiceApi) -> anyhow::Result<()> {
    if hook.planned_units()? > 0 {
        return Ok(());
    }
    let app = hook.app().to_string();
    for (suffix, _) in ROLES {
        let name = format!("{app}-{suffix}");
        let message = match api.delete_service(&name) {
            Ok(true) => format!("deleted Kubernetes Service {name}"),
            Ok(false) => format!("Kubernetes Service {name} was already gone"),
            Err(e) => format!("cannot delete Kubernetes Service {name}: {e}"),
        };
        hook.log(LogLevel::Info, &message)?;
    }
    Ok(())
}

/// Every unit: the PostgreSQL port is open.
pub fn open_ports(hook: &mut Hook<'_>) -> anyhow::Result<()> {
    let port = Port::tcp(DB_PORT);
    if !hook.opened_ports()?.contains(&port) {
        hook.open_port(&port)?;
    }
    Ok(())
}
