//! The charm's flows (`docs/postgresql-flows.md`): `peers`, `database` (the
//! client relation), `legacy` (`db` and `db-admin`), `lifecycle`, `actions` and
//! `switchover` (a planned switchover the poolers pause for), `rolling_restart`
//! (members restarted one at a time for start-only parameters). This module
//! holds the steps they share: the unit's address, the cluster as Patroni
//! sees it, rendering and serving Patroni's configuration, and adding members.

pub mod actions;
pub mod backups;
pub mod certificates;
pub mod database;
pub mod extensions;
pub mod legacy;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod peers;
pub mod recovery;
pub mod restore;
pub mod rolling_restart;
pub mod services;
pub mod switchover;
pub mod takeover;

use crate::config::{
    needs_restart, set_preload, CharmConfig, ConfigError, Resources, Synchronous, DEFAULT_TIME_ZONE,
};
use crate::dcs::{self, Dcs, DcsState, Kubernetes};
use crate::dcs_keys::DcsKeys;
use crate::patroni::render::{self, PatroniInput};
use crate::patroni::{ApiAccess, Cluster, Health, Patroni, PatroniError};
use crate::pods::{member_labels, pod_name, Labelled, Pods};
use crate::state::{self, Passwords};

use crate::workload::{Workload, CONTAINER};
use charm::secret::{SecretMeta, SecretOwner};
use charm::{BagChanges, Hook, LogLevel, Relation, SecretContent, Status};
use postgres_admin::Connector;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// What the flows need besides the hook.
pub struct Deps {
    pub connector: Box<dyn Connector>,
    pub patroni: Box<dyn Patroni>,
    pub pods: Box<dyn Pods>,
    /// Patroni's keys in the DCS.
    pub dcs_keys: Box<dyn DcsKeys>,
    pub workload: Workload,
    /// Set when the unit runs on Kubernetes.
    pub kubernetes: Option<Kubernetes>,
    pub resources: Resources,
    /// How long a hook waits for Patroni to start PostgreSQL on this unit
    /// (and, up to two seconds of it, before taking a bootstrap for
    /// interrupted: `recovery::check`).
    pub start_timeout: Duration,
}

/// What the flows learnt in this dispatch, for the status.
#[derive(Debug, Default)]
pub struct Findings {
    /// This unit's member, when a flow asked Patroni.
    pub health: Option<Health>,
    /// This dispatch changed a parameter PostgreSQL reads only at start.
    pub restart_expected: bool,
}

/// The validated options, for this unit's machine.
pub fn config(
    hook: &mut Hook<'_>,
    deps: &Deps,
) -> anyhow::Result<Result<CharmConfig, ConfigError>> {
    Ok(CharmConfig::from_raw(hook.config_raw()?, &deps.resources))
}

/// The options, once the workload has confirmed what only it can (see
/// [`unconfirmed_option`]); `None` when they cannot be applied (invalid, or
/// not confirmed). The status names the option.
pub fn applicable_config(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Option<CharmConfig>> {
    let Ok(config) = config(hook, deps)? else {
        return Ok(None);
    };
    Ok(match unconfirmed_option(hook, deps, &config)? {
        Unconfirmed::No => Some(config),
        Unconfirmed::Refused(_) | Unconfirmed::CannotAsk => None,
    })
}

/// Whether the workload confirms the options only it can check.
pub enum Unconfirmed {
    /// Nothing to confirm, or confirmed.
    No,
    /// The workload refuses an option: a blocked status, like an invalid value.
    Refused(ConfigError),
    /// The container does not answer yet.
    CannotAsk,
}

/// Asks the container what only it knows: a time zone other than UTC must be
/// in its time zone database (PostgreSQL would not start with one it lacks).
pub fn unconfirmed_option(
    hook: &mut Hook<'_>,
    deps: &Deps,
    config: &CharmConfig,
) -> anyhow::Result<Unconfirmed> {
    let zone = config.time_zone();
    if zone == DEFAULT_TIME_ZONE {
        return Ok(Unconfirmed::No);
    }
    let pebble = hook.container(CONTAINER);
    if !pebble.can_connect() {
        return Ok(Unconfirmed::CannotAsk);
    }
    if deps.workload.has_time_zone(pebble, zone)? {
        return Ok(Unconfirmed::No);
    }
    Ok(Unconfirmed::Refused(ConfigError::new(
        "request_time_zone",
        format!("PostgreSQL's container has no time zone {zone:?}"),
    )))
}

/// This unit's address on the peer network (Juju's answer).
pub fn own_address(hook: &mut Hook<'_>) -> anyhow::Result<String> {
    hook.ingress_address(state::PEERS)?
        .ok_or_else(|| anyhow::anyhow!("Juju gave no address for {}", state::PEERS))
}

/// What every step that talks to the cluster needs.
pub struct Ctx {
    pub peers: Relation,
    pub address: String,
    pub passwords: Passwords,
    /// How Patroni's REST API is reached: HTTPS verified with this unit's CA
    /// bundle once the unit holds TLS material (its API then serves HTTPS).
    pub api: ApiAccess,
}

impl Ctx {
    /// How Patroni's REST API is reached.
    pub fn api(&self) -> &ApiAccess {
        &self.api
    }
}

/// The context, once the peer relation and the passwords exist. Publishes the
/// unit's address in its peer bag on the way.
pub fn context(hook: &mut Hook<'_>) -> anyhow::Result<Option<Ctx>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(None);
    };
    let address = own_address(hook)?;
    hook.update_unit_bag(&peers, BagChanges::new().set(state::ADDRESS, &address))?;
    let Some(passwords) = state::passwords(hook)? else {
        return Ok(None);
    };
    let api = api_access(hook, &passwords)?;
    Ok(Some(Ctx {
        peers,
        address,
        passwords,
        api,
    }))
}

/// How this unit reaches Patroni's REST API: HTTPS, verified with its CA
/// bundle, exactly when it holds TLS material (as its own API then serves).
pub fn api_access(hook: &mut Hook<'_>, passwords: &Passwords) -> charm::Result<ApiAccess> {
    Ok(ApiAccess {
        password: passwords.get(state::PATRONI).to_string(),
        ca: state::tls_material(hook)?.map(|t| t.ca),
    })
}

/// Leader: creates the system users' passwords that do not exist yet.
pub fn ensure_passwords(hook: &mut Hook<'_>) -> anyhow::Result<()> {
    let existing = state::app_secret(hook)?;
    let mut content = existing.clone().unwrap_or_default();
    let missing: Vec<String> = state::SECRET_USERS
        .iter()
        .map(|u| state::password_key(u))
        .filter(|k| content.get(k).is_none())
        .collect();
    // An initialised cluster holds its users' passwords: new ones would lock
    // the charm out (a charm taking over may not have found them).
    let initialised = match state::peers(hook)? {
        Some(peers) => state::initialised(hook, &peers)?,
        None => false,
    };
    if initialised && !missing.is_empty() {
        hook.add_problem(Status::Blocked(self::takeover::missing_passwords(
            hook.app(),
            &missing,
        )))?;
        return Ok(());
    }
    for user in state::SECRET_USERS {
        let key = state::password_key(user);
        if content.get(&key).is_none() {
            content.insert(key, postgres_admin::password::generate());
        }
    }
    save_app_secret(hook, existing.as_ref(), &content)
}

/// Leader: writes the application secret (creating it the first time).
pub fn save_app_secret(
    hook: &mut Hook<'_>,
    existing: Option<&SecretContent>,
    content: &SecretContent,
) -> anyhow::Result<()> {
    let label = state::app_secret_label(hook.app());
    match existing {
        None => {
            let meta = SecretMeta {
                label: Some(label),
                ..SecretMeta::default()
            };
            hook.add_secret(content, SecretOwner::Application, &meta)?;
        }
        Some(old) if old != content => {
            let info = hook.secret_info(&charm::secret::SecretRef::Label(label.clone()))?;
            let id = info
                .id
                .ok_or_else(|| anyhow::anyhow!("Juju gave no id for secret {label}"))?;
            hook.set_secret(&id, Some(content), &SecretMeta::default())?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// The addresses to ask Patroni at: this unit's first, then the members'.
pub fn api_hosts(hook: &mut Hook<'_>, ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let mut hosts = vec![ctx.address.clone()];
    for m in state::members(hook, &ctx.peers)? {
        if !hosts.contains(&m) {
            hosts.push(m);
        }
    }
    Ok(hosts)
}

/// The cluster as Patroni sees it, or `None` (logged) when no member answers.
pub fn cluster_status(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
) -> anyhow::Result<Option<Cluster>> {
    let hosts = api_hosts(hook, ctx)?;
    match deps.patroni.cluster(ctx.api(), &hosts) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            hook.log(
                LogLevel::Info,
                &format!("cannot read the cluster's state: {e}"),
            )?;
            Ok(None)
        }
    }
}

/// "Are all cluster members ready?": every member the charm counts has a
/// running Patroni member, and there is a running primary.
pub fn all_members_ready(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<bool> {
    let members = state::members(hook, &ctx.peers)?;
    let Some(cluster) = cluster_status(hook, deps, ctx)? else {
        return Ok(false);
    };
    let ready = |addr: &String| {
        cluster
            .members
            .iter()
            .any(|m| &m.host == addr && m.is_ready())
    };
    Ok(cluster.primary().is_some_and(|p| p.is_ready()) && members.iter().all(ready))
}

/// Records in this unit's peer bag that its member has started in the
/// current cluster (`member-of`), so that the leader never takes the cluster
/// for lost while this unit holds it.
pub fn record_membership(hook: &mut Hook<'_>, ctx: &Ctx) -> anyhow::Result<()> {
    let scope = state::scope(hook, &ctx.peers)?;
    hook.update_unit_bag(&ctx.peers, BagChanges::new().set(state::MEMBER_OF, &scope))?;
    Ok(())
}

/// "Have Patroni and PostgreSQL started in the current unit?", waiting up to
/// `timeout` for it; the member's health is kept for the status.
pub fn member_started(deps: &Deps, findings: &mut Findings, ctx: &Ctx, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let health = deps.patroni.health(ctx.api(), &ctx.address).ok();
        let started = health.as_ref().is_some_and(Health::started);
        findings.health = health;
        if started || Instant::now() >= deadline {
            return started;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The DCS, when ready.
pub fn ready_dcs(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Option<Dcs>> {
    Ok(match dcs::choose(hook, deps.kubernetes.as_ref())? {
        DcsState::Ready(d) => Some(d),
        DcsState::Waiting(_) | DcsState::Missing => None,
    })
}

/// The synchronous settings for the cluster as planned.
pub fn synchronous(
    hook: &mut Hook<'_>,
    config: &CharmConfig,
    members: usize,
) -> anyhow::Result<Synchronous> {
    let planned = hook.planned_units()?;
    Ok(config.synchronous(planned, members))
}

/// "Update Patroni and PostgreSQL config": renders `patroni.yml` and writes it
/// through Pebble, starts Patroni if it is not running, reloads it when the
/// file changed, and (leader) sends the cluster-wide settings to Patroni's API.
/// Returns `false` when it could not (invalid options, no DCS, no container).
pub fn update_config(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    ctx: &Ctx,
) -> anyhow::Result<bool> {
    let Some(config) = applicable_config(hook, deps)? else {
        return Ok(false);
    };
    let Some(dcs) = ready_dcs(hook, deps)? else {
        return Ok(false);
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(false);
    }
    // After a failed restore, the data directory holds no cluster to start.
    if restore::failed(hook, &ctx.peers)?.is_some() {
        return Ok(false);
    }
    // While a restore is scheduled, the units other than the leader keep
    // their members stopped.
    if restore::holds_member(hook, &ctx.peers)? {
        return Ok(false);
    }
    let members = state::members(hook, &ctx.peers)?;
    let synchronous = synchronous(hook, &config, members.len())?;
    let mut parameters = config.parameters(&deps.resources);
    // Explicit both ways: a patch of the cluster's settings leaves out what
    // it does not name.
    let archive = match backups::archiving_to(hook, &ctx.peers)? {
        Some(stanza) => {
            let config = deps.workload.layout.pgbackrest_config();
            crate::pgbackrest::archive_command(&config, &stanza)
        }
        None => crate::pgbackrest::NO_ARCHIVE.to_string(),
    };
    parameters.insert("archive_command".into(), archive.into());
    // A library the container lacks is not preloaded: PostgreSQL would not
    // start (the extensions step blocks, naming the plugin).
    let mut present = Vec::new();
    for library in config.preload_libraries() {
        if deps
            .workload
            .has_library(hook.container(CONTAINER), library)?
        {
            present.push(library);
        }
    }
    set_preload(&mut parameters, &present);
    let tls = state::tls_material(hook)?;
    let generation = state::generation(hook, &ctx.peers)?;
    let scope = state::cluster_name(hook.app(), generation);
    let member = state::member_name(hook.unit());
    let text = render::render(&PatroniInput {
        scope: &scope,
        member: &member,
        address: &ctx.address,
        members: &members,
        dcs: &dcs,
        passwords: &ctx.passwords,
        parameters: &parameters,
        synchronous,
        maximum_lag_on_failover: config.maximum_lag_on_failover,
        tls: tls.is_some(),
        layout: &deps.workload.layout,
    });
    let w = &deps.workload;
    let pebble = hook.container(CONTAINER);
    w.prepare(pebble)?;
    let files_changed = w.write_tls(pebble, tls.as_ref())?;
    let previous = w.configured(pebble)?;
    let before = previous.as_deref().and_then(render::scope_of);
    let changed = w.write_config(pebble, &text)?;
    let restart_changed = match previous.as_deref().and_then(render::parameters_of) {
        Some(previous) if changed => restart_changes(&previous, &parameters),
        _ => Vec::new(),
    };
    let started = w.start(pebble, &ctx.address, generation.is_some())?;
    if before.as_ref().is_some_and(|b| *b != scope) {
        // Patroni cannot reload another scope: a new cluster generation
        // restarts it (a new layer already has).
        if started || w.restart(pebble)? {
            hook.log(
                LogLevel::Info,
                &format!("Patroni restarted in cluster {scope}"),
            )?;
        }
    } else if changed && !started && w.reload(pebble)? {
        hook.log(LogLevel::Info, "patroni.yml changed: Patroni reloads it")?;
    } else if files_changed && !started && w.reload(pebble)? {
        // PostgreSQL and the API read the files again; sessions stay open.
        hook.log(
            LogLevel::Info,
            "the TLS files changed: Patroni reloads PostgreSQL and the API",
        )?;
    }
    findings.restart_expected |= !restart_changed.is_empty();
    for name in restart_changed {
        hook.log(
            LogLevel::Info,
            &format!(
                "{name} changed: PostgreSQL takes the new value when it restarts \
                 (the status names it while the restart is pending)"
            ),
        )?;
    }
    let monitoring = ctx.passwords.get(state::MONITORING);
    if w.apply_exporter(
        hook.container(CONTAINER),
        &ctx.address,
        tls.is_some(),
        monitoring,
    )? {
        hook.log(LogLevel::Info, "started the PostgreSQL exporter")?;
    }
    if hook.is_leader()? && member_started(deps, findings, ctx, Duration::ZERO) {
        let patch =
            render::dynamic_config(&parameters, synchronous, config.maximum_lag_on_failover);
        let hosts = api_hosts(hook, ctx)?;
        match deps.patroni.patch_config(ctx.api(), &hosts, &patch) {
            Ok(_) => {}
            // No settings in the DCS yet: a cluster Patroni took from a data
            // directory (a restore) records them one loop after it promotes,
            // from `patroni.yml`'s, which are these; a later hook patches.
            Err(PatroniError::Http { status: 503, .. }) => hook.log(
                LogLevel::Info,
                "the cluster's settings are not in the DCS yet: they are sent on a later hook",
            )?,
            Err(e) => {
                hook.add_problem(Status::Waiting(format!(
                    "cannot update the cluster's settings: {e}"
                )))?;
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The parameters PostgreSQL reads only at start whose value differs between
/// `previous` and `next`, sorted.
pub fn restart_changes(previous: &Map<String, Value>, next: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = next
        .iter()
        .filter(|(name, value)| needs_restart(name) && previous.get(*name) != Some(*value))
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

/// "Restart PostgreSQL if TLS is turned on/off": a running member whose TLS
/// was turned on or off waits for its turn in the rolling restart
/// ([`state::TLS_RESTART`], which the roll reads as a pending restart); a
/// member not running yet starts with it. Unchanged TLS restarts nothing: a
/// renewed certificate only updates `tls-ca` (the configuration step's
/// reload applied it).
pub fn restart_on_tls_change(
    hook: &mut Hook<'_>,
    findings: &Findings,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let wanted = state::tls_material(hook)?.is_some();
    let bag = hook.local_unit_bag(&ctx.peers)?;
    let running = bag.get(state::TLS).map(String::as_str) == Some("enabled");
    let waiting = bag.get(state::TLS_RESTART).cloned();
    let started = findings.health.as_ref().is_some_and(Health::started);
    if wanted == running || !started {
        tls_applied(hook, ctx)?;
        return Ok(());
    }
    let turn = if wanted { "on" } else { "off" };
    // Turned off, PostgreSQL's reload already stopped serving TLS: clients
    // are told at once (`tls-ca` gone), before the restart.
    let serves_ca = bag.contains_key(state::TLS_CA);
    if waiting.as_deref() != Some(turn) || (!wanted && serves_ca) {
        let mut changes = BagChanges::new().set(state::TLS_RESTART, turn);
        if !wanted {
            changes = changes.unset(state::TLS_CA);
        }
        hook.update_unit_bag(&ctx.peers, changes)?;
        hook.log(
            LogLevel::Info,
            &format!("TLS turned {turn}: PostgreSQL restarts in its turn of the rolling restart"),
        )?;
    }
    Ok(())
}

/// Records the TLS this unit's PostgreSQL now runs with (after a start or a
/// restart, or when it did not change): the `tls` flag and the CA bundle it
/// serves (`tls-ca`), no restart waiting. Whether anything changed.
pub fn tls_applied(hook: &mut Hook<'_>, ctx: &Ctx) -> anyhow::Result<bool> {
    let ca = state::tls_material(hook)?.map(|m| m.ca);
    let flag = if ca.is_some() { "enabled" } else { "" };
    let bag = hook.local_unit_bag(&ctx.peers)?;
    let unchanged = bag.get(state::TLS).map(String::as_str).unwrap_or("") == flag
        && bag.get(state::TLS_CA) == ca.as_ref()
        && !bag.contains_key(state::TLS_RESTART);
    if unchanged {
        return Ok(false);
    }
    hook.update_unit_bag(
        &ctx.peers,
        BagChanges::new()
            .set(state::TLS, flag)
            .set_or_unset(state::TLS_CA, ca)
            .unset(state::TLS_RESTART),
    )?;
    Ok(true)
}

/// Leader: the flowchart's loop "Are all the units part of the cluster? → Are
/// all cluster members ready? → Add unit to cluster → Patch pod labels of the
/// new cluster member". Returns `false` when members were not ready (the
/// flowchart's defer).
pub fn add_members(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<bool> {
    let mut units = vec![(hook.unit().to_string(), Some(ctx.address.clone()))];
    units.extend(
        state::peer_units(hook, &ctx.peers)?
            .into_iter()
            .map(|u| (u.name, u.address)),
    );
    loop {
        let mut members = state::members(hook, &ctx.peers)?;
        // Are all the units part of the cluster? (A unit that has not published
        // its address yet cannot be added; its publishing re-triggers this.)
        let Some((unit, address)) = units.iter().find_map(|(u, a)| match a {
            Some(a) if !members.contains(a) => Some((u.clone(), a.clone())),
            _ => None,
        }) else {
            return Ok(true);
        };
        // Are all cluster members ready?
        if !members.is_empty() && !all_members_ready(hook, deps, ctx)? {
            hook.log(
                LogLevel::Info,
                &format!("not adding {unit} yet: another member is starting or syncing"),
            )?;
            return Ok(false);
        }
        // Add unit to cluster
        members.push(address.clone());
        state::save_members(hook, &ctx.peers, &members)?;
        hook.log(
            LogLevel::Info,
            &format!("added {unit} ({address}) to the cluster"),
        )?;
        // Patch pod labels of the new cluster member
        let pod = pod_name(&unit);
        let scope = state::scope(hook, &ctx.peers)?;
        match deps.pods.patch_labels(&pod, &member_labels(&scope)) {
            Ok(Labelled::Patched) => hook.log(LogLevel::Info, &format!("labelled pod {pod}"))?,
            Ok(Labelled::NoPods(why)) => {
                hook.log(LogLevel::Info, &format!("pod labels for {unit}: {why}"))?
            }
            Err(e) => hook.add_problem(Status::Blocked(format!(
                "failed to patch pod with error {e}"
            )))?,
        }
    }
}
