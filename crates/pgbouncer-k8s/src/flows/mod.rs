//! The charm's flows: one module per relation (and one for the lifecycle), each
//! function a flowchart of `docs/pgbouncer-flows.md`. This module holds the
//! steps they share: building and publishing the shared configuration, serving
//! it on this unit, and telling clients where to connect.

pub mod backend;
pub mod certificates;
pub mod database;
pub mod expose;
pub mod legacy;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod peers;
pub mod switchover;
pub mod takeover;
pub mod upgrade;

use crate::config::{CharmConfig, ConfigError};
use crate::pgb::ini::{BackendTarget, SharedInput};
use crate::pgb::peering::{Peering, RemoteUnit};
use crate::pgb::{PgbVersion, SharedConfig};
use crate::state::{self, Backend, BackendState};
use crate::workload::{Serving, Workload, CONTAINER};
use charm::{BagChanges, Hook, Relation, SecretContent};
use client_interface::endpoint::{self, Endpoint};
use postgres_admin::Connector;

/// What the flows need besides the hook.
pub struct Deps {
    pub connector: Box<dyn Connector>,
    pub workload: Workload,
}

/// The validated options.
pub fn config(hook: &mut Hook<'_>) -> anyhow::Result<Result<CharmConfig, ConfigError>> {
    Ok(CharmConfig::from_raw(hook.config_raw()?))
}

/// The backend PgBouncer can act on: related, complete, initialised by the
/// leader, and with a PostgreSQL unit left in the relation.
pub fn ready_backend(hook: &mut Hook<'_>) -> anyhow::Result<Option<(Backend, SecretContent)>> {
    if state::backend_gone(hook)?.is_some() {
        return Ok(None);
    }
    initialised_backend(hook)
}

/// The backend PgBouncer serves: related, complete, and initialised by the
/// leader (the application secret holds the auth file for the backend's
/// current user), whether or not PostgreSQL units are left: while none is,
/// the configuration keeps its databases, and they serve again as the backend
/// returns.
pub fn initialised_backend(
    hook: &mut Hook<'_>,
) -> anyhow::Result<Option<(Backend, SecretContent)>> {
    let BackendState::Ready(backend) = state::backend(hook)? else {
        return Ok(None);
    };
    let Some(secret) = state::app_secret(hook)? else {
        return Ok(None);
    };
    let initialised = secret.get(state::AUTH_USER) == Some(backend.auth_user()?.as_str())
        && secret.get(state::AUTH_FILE).is_some();
    Ok(initialised.then_some((*backend, secret)))
}

/// Leader: the shared configuration as the state now stands.
pub fn build_shared(
    hook: &mut Hook<'_>,
    deps: &Deps,
    config: &CharmConfig,
) -> anyhow::Result<SharedConfig> {
    let target = match initialised_backend(hook)? {
        Some((b, _)) => Some(BackendTarget {
            auth_user: b.auth_user()?.to_string(),
            verify_tls: b.tls_ca.is_some(),
            primary: b.primary,
            read_only: b.read_only,
        }),
        None => None,
    };
    let clients = state::client_databases(hook)?;
    let mine = deps.workload.processes;
    let others: u32 = match state::peers(hook)? {
        Some(p) => state::peer_units(hook, &p)?
            .iter()
            .map(|u| u.processes.unwrap_or(mine))
            .sum(),
        None => 0,
    };
    let readonly_dbs = match state::peers(hook)? {
        Some(p) => state::readonly_dbs(hook, &p)?,
        None => Vec::new(),
    };
    let app = hook.app().to_string();
    Ok(SharedConfig::build(&SharedInput {
        config,
        app: &app,
        backend: target.as_ref(),
        clients: &clients,
        readonly_dbs: &readonly_dbs,
        total_processes: mine + others,
        layout: &deps.workload.layout,
    }))
}

/// This unit's address, as other units and clients reach it: what it recorded in
/// its peer bag (Juju runs config-changed when addresses change, and that
/// records it afresh), or Juju's answer.
pub fn own_address(hook: &mut Hook<'_>) -> anyhow::Result<String> {
    if let Some(peers) = state::peers(hook)? {
        if let Some(a) = hook.local_unit_bag(&peers)?.get(state::HOSTNAME) {
            return Ok(a.clone());
        }
    }
    Ok(hook.ingress_address(state::PEERS)?.unwrap_or_default())
}

/// Leader: publishes the shared configuration and its own address to the peers.
pub fn publish(
    hook: &mut Hook<'_>,
    deps: &Deps,
    peers: &Relation,
    config: &CharmConfig,
) -> anyhow::Result<SharedConfig> {
    let shared = build_shared(hook, deps, config)?;
    let address = own_address(hook)?;
    hook.update_app_bag(
        peers,
        BagChanges::new()
            .set(state::CFG_FILE, shared.render())
            .set(state::LEADER_HOSTNAME, address),
    )?;
    Ok(shared)
}

/// Every unit: its address (asked of Juju) and process count, in its peer bag.
pub fn share_unit_data(hook: &mut Hook<'_>, deps: &Deps, peers: &Relation) -> anyhow::Result<()> {
    let address = hook.ingress_address(state::PEERS)?.unwrap_or_default();
    hook.update_unit_bag(
        peers,
        BagChanges::new()
            .set(state::HOSTNAME, address)
            .set(state::PROCESSES, deps.workload.processes.to_string()),
    )?;
    Ok(())
}

/// The PgBouncer version of this unit: recorded in its peer bag, or read from the
/// image (and recorded) when not known yet or when `fresh`.
pub fn pgbouncer_version(
    hook: &mut Hook<'_>,
    deps: &Deps,
    peers: &Relation,
    fresh: bool,
) -> anyhow::Result<Option<PgbVersion>> {
    if !fresh {
        if let Some(v) = state::recorded_version(hook, peers)? {
            return Ok(Some(v));
        }
    }
    let found = deps.workload.probe_version(hook.container(CONTAINER))?;
    if let Some(v) = found {
        hook.update_unit_bag(
            peers,
            BagChanges::new().set(state::PGB_VERSION, v.to_string()),
        )?;
    }
    Ok(found)
}

/// Writes the configuration (when given) and the auth file to this unit's
/// container, reloads what changed, and acknowledges the configuration it now
/// serves. Returns whether it could (the container must be up).
pub fn serve(
    hook: &mut Hook<'_>,
    deps: &Deps,
    peers: &Relation,
    shared: Option<&SharedConfig>,
) -> anyhow::Result<bool> {
    if !hook.container(CONTAINER).can_connect() {
        return Ok(false);
    }
    let Some(version) = pgbouncer_version(hook, deps, peers, false)? else {
        return Ok(false);
    };
    let secret = state::app_secret(hook)?;
    let userlist = secret
        .as_ref()
        .and_then(|c| c.get(state::AUTH_FILE).map(str::to_string));
    // Listen where clients are sent: on one machine, units share port numbers.
    let listen_addr = own_address(hook)?;
    let tls = certificates::installed_files(hook, peers)?;
    let backend_ca = match ready_backend(hook)? {
        Some((backend, _)) => backend.tls_ca,
        None => None,
    };
    let tls_changed = deps
        .workload
        .write_tls(hook.container(CONTAINER), tls.as_ref())?
        | deps
            .workload
            .write_backend_ca(hook.container(CONTAINER), backend_ca.as_deref())?;
    let peering = peering(hook, peers, version)?;
    let serving = Serving {
        version,
        tls: tls.is_some(),
        listen_addr: &listen_addr,
        peering: &peering,
    };
    let mut applied = deps.workload.apply(
        hook.container(CONTAINER),
        shared,
        userlist.as_deref(),
        &serving,
    )?;
    if tls_changed {
        deps.workload
            .reload_others(hook.container(CONTAINER), &mut applied)?;
    }
    for service in &applied.restarted {
        hook.log(charm::LogLevel::Info, &format!("restarted {service}"))?;
    }
    let monitoring = secret
        .as_ref()
        .and_then(|c| c.get(state::MONITORING_PASSWORD));
    if let (Some(shared), Some(password)) = (shared, monitoring) {
        metrics::serve_exporter(hook, deps, shared, &listen_addr, password)?;
    }
    if shared.is_some() {
        if let Ok(config) = config(hook)? {
            deps.workload
                .apply_log_rotation(hook.container(CONTAINER), &config.log_rotation)?;
        }
    }
    if let Some(shared) = shared {
        let ca = tls.map(|t| t.ca);
        hook.update_unit_bag(
            peers,
            BagChanges::new()
                .set(state::SERVING, state::digest(&shared.render()))
                .set_or_unset(state::TLS_CA, ca),
        )?;
    }
    Ok(true)
}

/// This unit's number and the other units its processes forward cancel
/// requests to: those that recorded their address, process count and a
/// PgBouncer version whose cancel keys match this unit's.
fn peering(hook: &mut Hook<'_>, peers: &Relation, version: PgbVersion) -> anyhow::Result<Peering> {
    let unit = Peering::unit_number(hook.unit()).unwrap_or_default();
    let remote = state::peer_units(hook, peers)?
        .into_iter()
        .filter(|u| u.version.is_some_and(|v| v.shares_cancel_keys(version)))
        .filter_map(|u| {
            Some(RemoteUnit {
                unit: Peering::unit_number(&u.name)?,
                host: u.hostname.filter(|h| !h.is_empty())?,
                processes: u.processes?,
            })
        })
        .collect();
    Ok(Peering { unit, remote })
}

/// The other units that serve clients as this unit (the leader) does: each
/// has served a published configuration, and serves TLS when this unit does.
pub fn client_facing_units(
    hook: &mut Hook<'_>,
    peers: &Relation,
) -> anyhow::Result<Vec<state::PeerUnit>> {
    let has = |v: Option<&String>| v.is_some_and(|v| !v.trim().is_empty());
    let own_tls = has(hook.local_unit_bag(peers)?.get(state::TLS_CA));
    Ok(state::peer_units(hook, peers)?
        .into_iter()
        .filter(|u| has(u.serving.as_ref()) && (!own_tls || has(u.tls_ca.as_ref())))
        .collect())
}

/// Whether this unit and every other live unit serve the published configuration.
pub fn all_units_serve(hook: &mut Hook<'_>, peers: &Relation) -> anyhow::Result<bool> {
    let Some(cfg) = hook.local_app_bag(peers)?.get(state::CFG_FILE).cloned() else {
        return Ok(false);
    };
    let want = state::digest(&cfg);
    if hook.local_unit_bag(peers)?.get(state::SERVING) != Some(&want) {
        return Ok(false);
    }
    Ok(state::peer_units(hook, peers)?
        .iter()
        .all(|u| u.serving.as_deref() == Some(want.as_str())))
}

/// Where clients connect: the leader for reads and writes, the other units for
/// reads (the leader too when it is alone). A unit joins them once it serves
/// clients as the leader does: it has served a published configuration and,
/// when the leader serves TLS, it serves TLS too. So a unit still waiting for
/// its certificate is not handed out, and clients are not told to drop TLS.
///
/// On Kubernetes, both are what the application's Service offers
/// ([`expose::Exposure`]), and `None` while it offers nothing reachable.
pub fn client_endpoints(
    hook: &mut Hook<'_>,
    port: u16,
) -> anyhow::Result<Option<(String, String)>> {
    if let Some(peers) = state::peers(hook)? {
        match expose::recorded(hook, &peers)? {
            Some(expose::Exposure::Reachable { endpoints }) => {
                return Ok(Some((endpoints.clone(), endpoints)))
            }
            Some(_) => return Ok(None),
            None => {}
        }
    }
    let leader = Endpoint {
        host: own_address(hook)?,
        port,
    };
    let mut others: Vec<Endpoint> = match state::peers(hook)? {
        Some(p) => client_facing_units(hook, &p)?
            .into_iter()
            .filter_map(|u| u.hostname.filter(|h| !h.is_empty()))
            .map(|host| Endpoint { host, port })
            .collect(),
        None => Vec::new(),
    };
    others.sort();
    if others.is_empty() {
        others.push(leader.clone());
    }
    Ok(Some((leader.to_string(), endpoint::join(&others))))
}
