//! A new cluster generation (see `docs/postgresql-flows.md`): the leader
//! finds that the cluster cannot come back as it was (every previous member
//! was lost, or its bootstrap was interrupted) and starts a new one under a
//! new Patroni scope, `patroni-<app>-gen<n>`, so that no member ever waits
//! on a stale cluster's keys. Each question below is one node of the chart;
//! the I/O that answers it is the adapters' (peer bags, Pebble, Patroni, the
//! DCS), the answer a small pure function.

use super::{api_hosts, ready_dcs, Ctx, Deps};
use crate::dcs_keys::{self, DcsKeysError, ScopeKeys};
use crate::patroni::{Cluster, Health};
use crate::state::{self, PeerUnit};
use crate::workload::{DataDir, CONTAINER};
use charm::{BagChanges, Hook, LogLevel};
use std::time::Duration;

/// The status while the leader bootstraps a cluster whose members were all lost.
pub const LOST: &str = "bootstrapping a new cluster: every previous member was lost";
/// The status while the leader bootstraps a cluster again after its first
/// bootstrap was interrupted.
pub const INTERRUPTED: &str = "bootstrapping a new cluster: the previous bootstrap was interrupted";

/// The status while the leader bootstraps a cluster because its scope holds
/// another one, abandoned.
pub const ABANDONED: &str =
    "bootstrapping a new cluster: the DCS holds an abandoned cluster of the same name";

/// Why the leader starts a new cluster generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewCluster {
    /// Every previous member departed, and none runs or left its data here.
    Lost,
    /// The bootstrap never finished and nothing can finish it.
    InterruptedBootstrap,
    /// Before this application founded anything, its scope already held a
    /// bootstrapped cluster with no leader and no member at work: what a
    /// removed application of the same name left in the DCS.
    Abandoned,
}

impl NewCluster {
    /// Its value in the peer application bag (`new-cluster`).
    pub fn key(self) -> &'static str {
        match self {
            NewCluster::Lost => "lost",
            NewCluster::InterruptedBootstrap => "interrupted-bootstrap",
            NewCluster::Abandoned => "abandoned",
        }
    }

    /// The value read back.
    pub fn parse(key: &str) -> Option<NewCluster> {
        match key {
            "lost" => Some(NewCluster::Lost),
            "interrupted-bootstrap" => Some(NewCluster::InterruptedBootstrap),
            "abandoned" => Some(NewCluster::Abandoned),
            _ => None,
        }
    }

    /// The status shown until the new cluster is initialised.
    pub fn message(self) -> &'static str {
        match self {
            NewCluster::Lost => LOST,
            NewCluster::InterruptedBootstrap => INTERRUPTED,
            NewCluster::Abandoned => ABANDONED,
        }
    }
}

/// "Does a unit in the relation hold a member of the current cluster?"
pub fn scope_held(scope: &str, own_member_of: Option<&str>, peers: &[PeerUnit]) -> bool {
    own_member_of == Some(scope) || peers.iter().any(|p| p.member_of.as_deref() == Some(scope))
}

/// "Did every previous member depart?": the members' list names some, and
/// none of them is the address of a unit still in the relation.
pub fn every_member_departed(previous: &[String], present: &[String]) -> bool {
    !previous.is_empty() && previous.iter().all(|m| !present.contains(m))
}

/// "Does this unit's member run PostgreSQL, or make one?": a member that does
/// not answer, or answers in a state where it does neither, does not.
pub fn at_work(health: Option<&Health>) -> bool {
    health.is_some_and(|h| !dcs_keys::is_down(&h.state))
}

/// "Does any member of the cluster run or make PostgreSQL?", as Patroni's
/// `/cluster` (when a member answers) and the DCS (when it can be read) see it.
pub fn cluster_at_work(cluster: Option<&Cluster>, keys: Option<&ScopeKeys>) -> bool {
    cluster.is_some_and(|c| c.members.iter().any(|m| !dcs_keys::is_down(&m.state)))
        || keys.is_some_and(|k| k.leader.is_some() || k.member_at_work())
}

/// "Has the cluster members other than this unit?": a bootstrap happens on
/// the founder alone, before anyone else is admitted.
pub fn founded_by_this_unit_alone(previous: &[String], address: &str) -> bool {
    previous.iter().all(|m| m == address)
}

/// Leader: does the cluster need a new generation, and why? Follows the
/// chart "a new cluster generation?" node by node; `None` leaves the cluster
/// as it is.
pub fn check(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<Option<NewCluster>> {
    let peers = state::peer_units(hook, &ctx.peers)?;
    let scope = state::scope(hook, &ctx.peers)?;
    // Does a unit in the relation hold a member of the current cluster?
    let own = hook
        .local_unit_bag(&ctx.peers)?
        .get(state::MEMBER_OF)
        .cloned();
    if scope_held(&scope, own.as_deref(), &peers) {
        return Ok(None);
    }
    // Does this unit's data directory hold a whole cluster? Then Patroni
    // starts it; it is never moved aside.
    let data = deps.workload.data_dir(hook.container(CONTAINER))?;
    if data == DataDir::Complete {
        return Ok(None);
    }
    let previous = state::members(hook, &ctx.peers)?;
    let mut present = vec![ctx.address.clone()];
    present.extend(peers.iter().filter_map(|p| p.address.clone()));
    // Did every previous member depart?
    if every_member_departed(&previous, &present) {
        // Does any member of the cluster (this unit's too) still run or make
        // PostgreSQL?
        let keys = read_keys(hook, deps, &scope)?;
        let hosts = api_hosts(hook, ctx)?;
        let cluster = deps.patroni.cluster(ctx.api(), &hosts).ok();
        if cluster_at_work(cluster.as_ref(), keys.as_ref()) {
            return Ok(None);
        }
        return Ok(Some(NewCluster::Lost));
    }
    // Has the cluster been initialised, or admitted anyone but this unit?
    // Then its bootstrap finished.
    if state::initialised(hook, &ctx.peers)? || !founded_by_this_unit_alone(&previous, &ctx.address)
    {
        return Ok(None);
    }
    let keys = read_keys(hook, deps, &scope)?;
    // Has this application founded nothing yet, while its scope holds a
    // bootstrapped cluster that nobody leads or runs? Its members would wait
    // for that cluster's leader forever.
    if previous.is_empty() && keys.as_ref().is_some_and(ScopeKeys::abandoned) {
        return Ok(Some(NewCluster::Abandoned));
    }
    // Does the DCS hold a bootstrap that never finished, with no leader and
    // no member at work?
    if !keys.as_ref().is_some_and(ScopeKeys::bootstrap_stalled) {
        return Ok(None);
    }
    // Is this unit's member idle, a moment later? It must answer: a silent
    // member tells nothing. (A bootstrap that has just taken the `initialize`
    // key says it is at work within that moment.)
    std::thread::sleep(deps.start_timeout.min(CONFIRM_PAUSE));
    let health = deps.patroni.health(ctx.api(), &ctx.address).ok();
    if health.is_none() || at_work(health.as_ref()) {
        return Ok(None);
    }
    Ok(Some(NewCluster::InterruptedBootstrap))
}

/// The next generation whose scope the DCS holds nothing under, with that
/// scope: a generation another application of this name left behind (removed
/// and deployed again more than once) is skipped, never joined. A DCS that
/// cannot tell leaves the next generation as it is.
pub(super) fn free_generation(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
) -> anyhow::Result<(u32, String)> {
    let mut next = state::generation(hook, &ctx.peers)?.map_or(1, |n| n + 1);
    for _ in 0..MAX_SKIPPED {
        let scope = state::cluster_name(hook.app(), Some(next));
        match read_keys(hook, deps, &scope)? {
            Some(keys) if !keys.is_empty() => {
                hook.log(
                    LogLevel::Info,
                    &format!("cluster {scope} is taken in the DCS: skipping its generation"),
                )?;
                next += 1;
            }
            _ => return Ok((next, scope)),
        }
    }
    Ok((next, state::cluster_name(hook.app(), Some(next))))
}

/// How many taken generations [`free_generation`] skips at most.
const MAX_SKIPPED: u32 = 64;

/// How long the leader looks again before taking a bootstrap for interrupted.
const CONFIRM_PAUSE: Duration = Duration::from_secs(2);

/// The scope's keys, or `None` (logged) when the DCS cannot tell.
fn read_keys(hook: &mut Hook<'_>, deps: &Deps, scope: &str) -> anyhow::Result<Option<ScopeKeys>> {
    let Some(dcs) = ready_dcs(hook, deps)? else {
        return Ok(None);
    };
    match deps.dcs_keys.read(&dcs, scope) {
        Ok(keys) => Ok(Some(keys)),
        Err(DcsKeysError::Unsupported(_)) => Ok(None),
        Err(e) => {
            hook.log(
                LogLevel::Info,
                &format!("cannot read cluster {scope}'s keys: {e}"),
            )?;
            Ok(None)
        }
    }
}

/// Leader: "Start a new cluster generation": records generation `n + 1`
/// (its scope `patroni-<app>-gen<n+1>`) and why, founds it with this unit
/// alone, forgets the old cluster's initialisation and primary, and has the
/// launcher move a data directory that holds anything aside (renamed, never
/// deleted) before Patroni bootstraps the new cluster in it.
pub fn start_new_cluster(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    why: NewCluster,
) -> anyhow::Result<()> {
    let old_scope = state::scope(hook, &ctx.peers)?;
    let (next, new_scope) = free_generation(hook, deps, ctx)?;
    let pebble = hook.container(CONTAINER);
    let data = deps.workload.data_dir(pebble)?;
    let moved = if data == DataDir::Empty {
        None
    } else {
        let target = format!("{}.before-{new_scope}", deps.workload.layout.data_dir);
        deps.workload.request_move_aside(pebble, &target)?;
        Some(target)
    };
    let founders = serde_json::to_string(std::slice::from_ref(&ctx.address))?;
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new()
            .set(state::GENERATION, next.to_string())
            .set(state::NEW_CLUSTER, why.key())
            .set(state::ENDPOINTS, founders)
            .unset(state::CLUSTER_INITIALISED)
            .unset(state::PRIMARY),
    )?;
    let what = match why {
        NewCluster::Lost => format!(
            "every member of cluster {old_scope} was lost: bootstrapping cluster {new_scope}; \
             the data the old cluster held is gone, and clients' users and databases are \
             made again, empty, with the passwords the clients hold"
        ),
        NewCluster::InterruptedBootstrap => format!(
            "the bootstrap of cluster {old_scope} was interrupted and nothing can finish it: \
             bootstrapping cluster {new_scope}"
        ),
        NewCluster::Abandoned => format!(
            "the DCS holds cluster {old_scope}, bootstrapped before this application founded \
             anything, with no leader and no member at work (an application of the same name \
             removed): bootstrapping cluster {new_scope}"
        ),
    };
    hook.log(LogLevel::Warning, &what)?;
    if let Some(target) = moved {
        hook.log(
            LogLevel::Warning,
            &format!("this unit's data directory is moved aside to {target} (kept, not deleted)"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(member_of: Option<&str>) -> PeerUnit {
        PeerUnit {
            name: "pg/1".into(),
            address: Some("10.0.0.2".into()),
            member_of: member_of.map(str::to_string),
        }
    }

    #[test]
    fn a_scope_is_held_by_any_unit_that_started_in_it() {
        assert!(scope_held("s", Some("s"), &[]));
        assert!(scope_held("s", None, &[peer(Some("old")), peer(Some("s"))]));
        assert!(!scope_held("s", Some("old"), &[peer(None)]));
    }

    #[test]
    fn departed_means_every_listed_member_is_gone_and_one_was_listed() {
        let present = ["10.0.0.9".to_string()];
        assert!(every_member_departed(&["10.0.0.1".into()], &present));
        assert!(!every_member_departed(&[], &present));
        assert!(!every_member_departed(
            &["10.0.0.1".into(), "10.0.0.9".into()],
            &present
        ));
    }

    #[test]
    fn a_member_is_at_work_unless_it_is_down_or_silent() {
        let h = |state: &str| Health {
            state: state.into(),
            role: "replica".into(),
            pending_restart: false,
        };
        assert!(!at_work(None));
        assert!(!at_work(Some(&h("stopped"))));
        for busy in ["running", "initializing new cluster", "creating replica"] {
            assert!(at_work(Some(&h(busy))), "{busy}");
        }
    }

    #[test]
    fn only_the_founder_alone_bootstraps() {
        assert!(founded_by_this_unit_alone(&[], "a"));
        assert!(founded_by_this_unit_alone(&["a".into()], "a"));
        assert!(!founded_by_this_unit_alone(&["a".into(), "b".into()], "a"));
    }

    #[test]
    fn the_status_names_why_and_the_bag_value_reads_back() {
        for why in [NewCluster::Lost, NewCluster::InterruptedBootstrap] {
            assert_eq!(NewCluster::parse(why.key()), Some(why));
            assert!(why.message().starts_with("bootstrapping a new cluster: "));
        }
        assert_eq!(NewCluster::parse("other"), None);
    }
}
