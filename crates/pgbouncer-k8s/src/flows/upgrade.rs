//! Upgrades, as the reference charm's data-platform upgrade library does them
//! on Kubernetes. `pre-upgrade-check` (leader): the application is healthy and
//! every unit serves the same configuration; then the StatefulSet's
//! rolling-update partition goes to the highest unit number, so that
//! `juju refresh` upgrades that unit alone. `resume-upgrade` (leader): once
//! the upgraded units are healthy, the partition goes to 0 and Kubernetes
//! upgrades the others one at a time, from the top down. The StatefulSet is
//! the only state. Off Kubernetes there is no partition: Juju upgrades every
//! unit, and both actions say so.

use super::{config, ready_backend, Deps};
use crate::state;
use crate::statefulset::StatefulSets;
use crate::workload::CONTAINER;
use charm::{Handled, Hook, Status};
use std::collections::BTreeMap;

/// What the actions log off Kubernetes.
pub const NO_STATEFULSET: &str =
    "not on Kubernetes: there is no StatefulSet partition, `juju refresh` upgrades every unit";

/// Runs the checks and, on Kubernetes, raises the partition to the highest
/// unit; answers a result when ready, a failure naming the problem otherwise.
pub fn pre_upgrade_check(
    hook: &mut Hook<'_>,
    deps: &Deps,
    sets: Option<&dyn StatefulSets>,
) -> anyhow::Result<Handled> {
    if let Err(why) = check(hook, deps)? {
        hook.action_fail(&format!("not ready to upgrade: {why}"))?;
        return Ok(Handled::Done);
    }
    let mut results = vec![(
        "result",
        "the application is ready to be upgraded".to_string(),
    )];
    match sets {
        None => hook.action_log(NO_STATEFULSET)?,
        Some(sets) => match hold_back(hook, sets)? {
            Ok(top) => {
                hook.action_log(&format!(
                    "rolling-update partition set to {top}: `juju refresh` upgrades {}/{top} first; \
                     check it, then run resume-upgrade on the leader",
                    hook.app()
                ))?;
                results.push(("partition", top.to_string()));
            }
            Err(why) => {
                hook.action_fail(&format!("not ready to upgrade: {why}"))?;
                return Ok(Handled::Done);
            }
        },
    }
    hook.action_set(results)?;
    Ok(Handled::Done)
}

/// Sets the partition to the highest unit number, unless an upgrade is
/// already rolling out; answers the partition.
fn hold_back(hook: &mut Hook<'_>, sets: &dyn StatefulSets) -> anyhow::Result<Result<u32, String>> {
    let app = hook.app().to_string();
    let set = match sets.get(&app) {
        Ok(set) => set,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if set.rolling_out() {
        return Ok(Err(format!(
            "the cluster is already upgrading (StatefulSet {app} rolls out a new revision, \
             partition {}): run resume-upgrade to carry on",
            set.partition
        )));
    }
    let top = units(hook)?.keys().copied().max().unwrap_or_default();
    Ok(match sets.set_partition(&app, top) {
        Ok(()) => Ok(top),
        Err(e) => Err(format!("cannot set the rolling-update partition: {e}")),
    })
}

/// `resume-upgrade` (leader): once the units at or above the partition run
/// the new revision and are healthy, lowers the partition to 0.
pub fn resume_upgrade(
    hook: &mut Hook<'_>,
    sets: Option<&dyn StatefulSets>,
) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        hook.action_fail("Action must be ran on the Juju leader.")?;
        return Ok(Handled::Done);
    }
    let Some(sets) = sets else {
        hook.action_log(NO_STATEFULSET)?;
        hook.action_set([(
            "message",
            "Nothing to resume: this unit does not run on Kubernetes",
        )])?;
        return Ok(Handled::Done);
    };
    match resume(hook, sets)? {
        Ok(message) => hook.action_set([("message", message)])?,
        Err(why) => hook.action_fail(&why)?,
    }
    Ok(Handled::Done)
}

/// The checks and the patch; `Ok` is the result message.
fn resume(hook: &mut Hook<'_>, sets: &dyn StatefulSets) -> anyhow::Result<Result<String, String>> {
    let app = hook.app().to_string();
    let set = match sets.get(&app) {
        Ok(set) => set,
        Err(e) => return Ok(Err(format!("Cannot read the StatefulSet: {e}"))),
    };
    if set.partition == 0 {
        return Ok(Err("Nothing to resume: the rolling-update partition is 0 \
             (run pre-upgrade-check before juju refresh)"
            .into()));
    }
    let units = units(hook)?;
    let upgraded: Vec<&Unit> = units.range(set.partition..).map(|(_, u)| u).collect();
    if upgraded.is_empty() || !set.rolling_out() || (set.updated_replicas as usize) < upgraded.len()
    {
        return Ok(Err(format!(
            "Upgrade can be resumed only once after juju refresh is called: \
             {} of the units from {app}/{} up run the new revision",
            if set.rolling_out() {
                set.updated_replicas
            } else {
                0
            },
            set.partition
        )));
    }
    if let Err(why) = healthy(hook, &units, &upgraded)? {
        return Ok(Err(format!("Cannot resume the upgrade: {why}")));
    }
    if let Err(e) = sets.set_partition(&app, 0) {
        return Ok(Err(format!("Cannot set rolling update partition: {e}")));
    }
    hook.action_log(&format!(
        "rolling-update partition lowered from {} to 0: Kubernetes upgrades the other \
         units one at a time, from the highest number down",
        set.partition
    ))?;
    let next = units
        .range(..set.partition)
        .next_back()
        .map_or(0, |(n, _)| *n);
    Ok(Ok(format!("Upgrade will resume on unit {next}")))
}

/// A unit of the application as its peer bag shows it.
struct Unit {
    name: String,
    serving: Option<String>,
    version: Option<String>,
}

/// Every unit (this one and its peers) by number.
fn units(hook: &mut Hook<'_>) -> anyhow::Result<BTreeMap<u32, Unit>> {
    let mut out = BTreeMap::new();
    let mut names = vec![hook.unit().to_string()];
    let peers = state::peers(hook)?;
    if let Some(peers) = &peers {
        names.extend(hook.relation_units(peers)?);
    }
    for name in names {
        let Some(number) = name.rsplit_once('/').and_then(|(_, n)| n.parse().ok()) else {
            continue;
        };
        let bag = match &peers {
            Some(peers) if name == hook.unit() => hook.local_unit_bag(peers)?.clone(),
            Some(peers) => hook.bag(peers, &charm::Bag::Unit(name.clone()))?.clone(),
            None => Default::default(),
        };
        out.insert(
            number,
            Unit {
                serving: bag.get(state::SERVING).cloned(),
                version: bag.get(state::PGB_VERSION).cloned(),
                name,
            },
        );
    }
    Ok(out)
}

/// The upgraded units are active (as far as Juju shows them), serve the
/// published configuration, run one PgBouncer version, and that version's
/// major is the others' (the reference charm's `^1`).
fn healthy(
    hook: &mut Hook<'_>,
    units: &BTreeMap<u32, Unit>,
    upgraded: &[&Unit],
) -> anyhow::Result<Result<(), String>> {
    let statuses = hook.unit_statuses()?;
    for unit in upgraded {
        if let Some(status) = statuses.get(&unit.name) {
            if !matches!(status, Status::Active(_)) {
                return Ok(Err(format!(
                    "{} is {} ({})",
                    unit.name,
                    status.name(),
                    status.message()
                )));
            }
        }
    }
    let published = match state::peers(hook)? {
        Some(peers) => hook.local_app_bag(&peers)?.get(state::CFG_FILE).cloned(),
        None => None,
    };
    let Some(published) = published.map(|cfg| state::digest(&cfg)) else {
        return Ok(Err("no configuration has been published".into()));
    };
    if let Some(behind) = upgraded
        .iter()
        .find(|u| u.serving.as_deref() != Some(published.as_str()))
    {
        return Ok(Err(format!(
            "{} does not serve the published configuration",
            behind.name
        )));
    }
    let Some(version) = upgraded[0].version.as_deref() else {
        return Ok(Err(format!(
            "{} has not reported its PgBouncer version",
            upgraded[0].name
        )));
    };
    if let Some(other) = upgraded
        .iter()
        .find(|u| u.version.as_deref() != Some(version))
    {
        return Ok(Err(format!(
            "the upgraded units run different PgBouncer versions: {} {version}, {} {}",
            upgraded[0].name,
            other.name,
            other.version.as_deref().unwrap_or("unknown")
        )));
    }
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
    if let Some(old) = units.values().find(|u| {
        u.version
            .as_deref()
            .is_some_and(|v| major(v) != major(version))
    }) {
        return Ok(Err(format!(
            "PgBouncer {version} on {} cannot take over from {} on {}: another major version",
            upgraded[0].name,
            old.version.as_deref().unwrap_or_default(),
            old.name
        )));
    }
    Ok(Ok(()))
}

/// The checks, most basic first; `Err` names what is wrong.
fn check(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Result<(), String>> {
    if !hook.is_leader()? {
        return Ok(Err("run this action on the leader unit".into()));
    }
    if let Err(e) = config(hook)? {
        return Ok(Err(e.to_string()));
    }
    let Some((backend, _)) = ready_backend(hook)? else {
        return Ok(Err("the backend-database relation is not ready".into()));
    };
    if let Err(e) = deps
        .connector
        .connect(&backend.login)
        .and_then(|mut pg| pg.server_version())
    {
        return Ok(Err(format!("PostgreSQL cannot be reached: {e}")));
    }
    let Some(peers) = state::peers(hook)? else {
        return Ok(Err("the pgb-peers relation is not there yet".into()));
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(Err("the pgbouncer container cannot be reached".into()));
    }
    if let Some(stopped) = deps.workload.stopped(hook.container(CONTAINER))? {
        return Ok(Err(format!(
            "PgBouncer service {stopped} is not running on {}",
            hook.unit()
        )));
    }
    let not_active: Vec<String> = hook
        .unit_statuses()?
        .into_iter()
        .filter(|(_, s)| !matches!(s, Status::Active(_)))
        .map(|(unit, s)| format!("{unit} is {} ({})", s.name(), s.message()))
        .collect();
    if !not_active.is_empty() {
        return Ok(Err(format!(
            "not every unit is active: {}",
            not_active.join(", ")
        )));
    }
    let Some(cfg) = hook.local_app_bag(&peers)?.get(state::CFG_FILE).cloned() else {
        return Ok(Err("no configuration has been published yet".into()));
    };
    let want = state::digest(&cfg);
    let mut behind: Vec<String> = state::peer_units(hook, &peers)?
        .into_iter()
        .filter(|u| u.serving.as_deref() != Some(want.as_str()))
        .map(|u| u.name)
        .collect();
    if hook.local_unit_bag(&peers)?.get(state::SERVING) != Some(&want) {
        behind.insert(0, hook.unit().to_string());
    }
    if !behind.is_empty() {
        return Ok(Err(format!(
            "not every unit serves the published configuration: {}",
            behind.join(", ")
        )));
    }
    Ok(Ok(()))
}
