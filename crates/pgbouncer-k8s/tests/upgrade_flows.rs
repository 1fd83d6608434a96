//! The upgrade actions on the in-memory model, on Kubernetes (a fake
//! StatefulSet) and off it. Units upgrade from the highest number down; the
//! StatefulSet's rolling-update partition holds the others back.
//!
//! pre-upgrade-check (leader):
//!
//! | node or branch | test |
//! |---|---|
//! | checks fail → failure, partition untouched | `a_failed_check_leaves_the_partition_alone` |
//! | checks pass, on Kubernetes → partition = highest unit number, logged, in the results | `on_kubernetes_the_partition_goes_to_the_highest_unit` |
//! | an upgrade is already rolling out → failure, partition untouched | `pre_upgrade_check_refuses_while_an_upgrade_rolls_out` |
//! | the API refuses (403, other) → failure naming `--trust` / the error | `a_refused_partition_patch_fails_the_check` |
//! | checks pass, off Kubernetes → ready, and the log says there is no partition | `off_kubernetes_the_checks_run_and_the_partition_step_is_skipped` |
//!
//! resume-upgrade:
//!
//! | node or branch | test |
//! |---|---|
//! | not the leader → failure (the reference charm's message) | `resume_upgrade_runs_on_the_leader_only` |
//! | off Kubernetes → nothing to resume, said in the result, not a failure | `off_kubernetes_there_is_nothing_to_resume` |
//! | StatefulSet unreadable → failure | `resume_fails_when_the_statefulset_cannot_be_read` |
//! | partition 0 → nothing to resume, failure | `resume_without_a_partition_has_nothing_to_resume` |
//! | `juju refresh` not run (no new revision above the partition) → failure | `resume_before_the_refresh_fails` |
//! | an upgraded unit not active → failure | `resume_waits_for_the_upgraded_units_to_be_active` |
//! | an upgraded unit not serving the published configuration → failure | `resume_waits_for_the_upgraded_units_to_serve_the_configuration` |
//! | upgraded units without a version, on different versions, or another major → failure | `resume_checks_the_upgraded_units_pgbouncer_versions` |
//! | healthy → partition 0, "Upgrade will resume on unit N", logged | `resume_lowers_the_partition_once_the_upgraded_units_are_healthy` |
//! | the partition patch is refused → failure | `resume_reports_a_refused_patch` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::Status;
use charm_testing::{bag, event, run_action, Output, State};
use pgbouncer_k8s::state;
use postgres_admin::testing::FakeConnector;
use support::statefulset::FakeStatefulSets;
use support::*;

const VERSION: &str = "1.24.1";

/// Leader unit `n`, ready, with peers `others` that serve the published
/// configuration and run PgBouncer 1.24.1.
fn app(pg: &FakeConnector, n: u32, others: &[u32]) -> State {
    let state = with_backend(unit(n, true));
    let ev = event::relation_changed(state.relation(BACKEND_ID).unwrap(), None);
    let mut state = go(pg, &state, ev).state;
    let hash = state::digest(&peer_app(&state)[state::CFG_FILE]);
    assert_eq!(peer_unit(&state)[state::SERVING], hash);
    assert_eq!(peer_unit(&state)[state::PGB_VERSION], VERSION);
    let peers = state
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap();
    for o in others {
        peers.remote_units.insert(
            format!("{APP}/{o}"),
            bag(&[
                (state::SERVING, hash.as_str()),
                (state::PGB_VERSION, VERSION),
            ]),
        );
    }
    state
}

/// Sets a peer unit's key.
fn set_peer(state: &mut State, n: u32, key: &str, value: Option<&str>) {
    let peers = state
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap();
    let bag = peers.remote_units.get_mut(&format!("{APP}/{n}")).unwrap();
    match value {
        Some(v) => bag.insert(key.into(), v.into()),
        None => bag.remove(key),
    };
}

fn action(
    pg: &FakeConnector,
    sets: Option<&FakeStatefulSets>,
    state: &State,
    name: &str,
) -> Output {
    let sets = sets.map(|s| Box::new(s.clone()) as Box<_>);
    let mut charm = charm(pg).with_stateful_sets(sets);
    run_action(&mut charm, state, name, serde_json::Map::new()).unwrap_or_else(|f| panic!("{f}"))
}

/// A three-unit StatefulSet after pre-upgrade-check and `juju refresh`: the
/// pods from `partition` up run the new revision.
fn refreshed(partition: u32) -> FakeStatefulSets {
    let sets = FakeStatefulSets::new(APP, 3);
    sets.set.borrow_mut().partition = partition;
    sets.refresh();
    sets
}

#[test]
fn on_kubernetes_the_partition_goes_to_the_highest_unit() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = FakeStatefulSets::new(APP, 3);
    let out = action(&pg, Some(&sets), &app(&pg, 0, &[1, 2]), "pre-upgrade-check");
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["result"],
        "the application is ready to be upgraded"
    );
    assert_eq!(out.action.results["partition"], "2");
    assert_eq!(*sets.patched.borrow(), [2]);
    assert_eq!(
        out.action.logs,
        [format!(
            "rolling-update partition set to 2: `juju refresh` upgrades {APP}/2 first; \
             check it, then run resume-upgrade on the leader"
        )]
    );
}

#[test]
fn a_failed_check_leaves_the_partition_alone() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = FakeStatefulSets::new(APP, 3);
    let mut s = app(&pg, 0, &[1, 2]);
    set_peer(&mut s, 1, state::SERVING, Some("old"));
    let out = action(&pg, Some(&sets), &s, "pre-upgrade-check");
    assert_eq!(
        out.action.failure.as_deref(),
        Some(
            format!(
                "not ready to upgrade: not every unit serves the published configuration: {APP}/1"
            )
            .as_str()
        )
    );
    assert!(sets.patched.borrow().is_empty());
    let out = action(
        &pg,
        Some(&sets),
        &s.clone().leader(false),
        "pre-upgrade-check",
    );
    assert_eq!(
        out.action.failure.as_deref(),
        Some("not ready to upgrade: run this action on the leader unit")
    );
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn pre_upgrade_check_refuses_while_an_upgrade_rolls_out() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = refreshed(2);
    let out = action(&pg, Some(&sets), &app(&pg, 0, &[1, 2]), "pre-upgrade-check");
    let failure = out.action.failure.unwrap();
    assert!(
        failure.starts_with("not ready to upgrade: the cluster is already upgrading"),
        "{failure}"
    );
    assert!(failure.contains("run resume-upgrade"), "{failure}");
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn a_refused_partition_patch_fails_the_check() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = app(&pg, 0, &[1, 2]);
    let sets = FakeStatefulSets::new(APP, 3);
    *sets.fail.borrow_mut() = Some(403);
    let failure = action(&pg, Some(&sets), &s, "pre-upgrade-check")
        .action
        .failure
        .unwrap();
    assert!(
        failure.starts_with(
            "not ready to upgrade: forbidden: the Kubernetes API refused to read StatefulSet"
        ),
        "{failure}"
    );
    assert!(failure.contains("--trust"), "{failure}");

    *sets.fail.borrow_mut() = Some(500);
    let failure = action(&pg, Some(&sets), &s, "pre-upgrade-check")
        .action
        .failure
        .unwrap();
    assert!(failure.contains("HTTP 500: refused"), "{failure}");
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn off_kubernetes_the_checks_run_and_the_partition_step_is_skipped() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = app(&pg, 0, &[1, 2]);
    let out = action(&pg, None, &s, "pre-upgrade-check");
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["result"],
        "the application is ready to be upgraded"
    );
    assert!(!out.action.results.contains_key("partition"));
    assert_eq!(
        out.action.logs,
        ["not on Kubernetes: there is no StatefulSet partition, `juju refresh` upgrades every unit"]
    );
    // The checks still run.
    let mut blocked = s;
    blocked.unit_status = Status::Blocked("broken".into());
    let failure = action(&pg, None, &blocked, "pre-upgrade-check")
        .action
        .failure
        .unwrap();
    assert!(failure.contains("not every unit is active"), "{failure}");
}

#[test]
fn resume_upgrade_runs_on_the_leader_only() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let s = app(&pg, 2, &[0, 1]).leader(false);
    let sets = refreshed(2);
    for sets in [Some(&sets), None] {
        let out = action(&pg, sets, &s, "resume-upgrade");
        assert_eq!(
            out.action.failure.as_deref(),
            Some("Action must be ran on the Juju leader.")
        );
    }
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn off_kubernetes_there_is_nothing_to_resume() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let out = action(&pg, None, &app(&pg, 0, &[1, 2]), "resume-upgrade");
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["message"],
        "Nothing to resume: this unit does not run on Kubernetes"
    );
    assert_eq!(
        out.action.logs,
        ["not on Kubernetes: there is no StatefulSet partition, `juju refresh` upgrades every unit"]
    );
}

#[test]
fn resume_fails_when_the_statefulset_cannot_be_read() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = refreshed(2);
    *sets.fail.borrow_mut() = Some(404);
    let out = action(&pg, Some(&sets), &app(&pg, 2, &[0, 1]), "resume-upgrade");
    assert_eq!(
        out.action.failure.as_deref(),
        Some(
            format!("Cannot read the StatefulSet: cannot read StatefulSet {APP} in namespace test: not found")
                .as_str()
        )
    );
}

#[test]
fn resume_without_a_partition_has_nothing_to_resume() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = FakeStatefulSets::new(APP, 3);
    let out = action(&pg, Some(&sets), &app(&pg, 2, &[0, 1]), "resume-upgrade");
    let failure = out.action.failure.unwrap();
    assert!(failure.starts_with("Nothing to resume"), "{failure}");
    assert!(failure.contains("pre-upgrade-check"), "{failure}");
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn resume_before_the_refresh_fails() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = FakeStatefulSets::new(APP, 3);
    sets.set.borrow_mut().partition = 2;
    let out = action(&pg, Some(&sets), &app(&pg, 2, &[0, 1]), "resume-upgrade");
    assert_eq!(
        out.action.failure.as_deref(),
        Some(
            format!(
                "Upgrade can be resumed only once after juju refresh is called: \
                 0 of the units from {APP}/2 up run the new revision"
            )
            .as_str()
        )
    );
    // The pod of the upgraded unit is still being replaced.
    sets.refresh();
    sets.set.borrow_mut().updated_replicas = 0;
    let out = action(&pg, Some(&sets), &app(&pg, 2, &[0, 1]), "resume-upgrade");
    assert!(out
        .action
        .failure
        .unwrap()
        .starts_with("Upgrade can be resumed only once after juju refresh is called"));
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn resume_waits_for_the_upgraded_units_to_be_active() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = refreshed(2);
    let mut s = app(&pg, 2, &[0, 1]);
    s.unit_status = Status::Maintenance("upgrading unit".into());
    let out = action(&pg, Some(&sets), &s, "resume-upgrade");
    assert_eq!(
        out.action.failure.as_deref(),
        Some(
            format!("Cannot resume the upgrade: {APP}/2 is maintenance (upgrading unit)").as_str()
        )
    );
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn resume_waits_for_the_upgraded_units_to_serve_the_configuration() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    // Units 1 and 2 upgraded; 1 still serves an older configuration.
    let sets = refreshed(1);
    let mut s = app(&pg, 2, &[0, 1]);
    set_peer(&mut s, 1, state::SERVING, Some("old"));
    let out = action(&pg, Some(&sets), &s, "resume-upgrade");
    assert_eq!(
        out.action.failure.as_deref(),
        Some(
            format!(
                "Cannot resume the upgrade: {APP}/1 does not serve the published configuration"
            )
            .as_str()
        )
    );
    // No published configuration at all.
    let mut unpublished = app(&pg, 2, &[0, 1]);
    unpublished
        .relations
        .iter_mut()
        .find(|r| r.id == PEER_ID)
        .unwrap()
        .local_app_data
        .remove(state::CFG_FILE);
    let out = action(&pg, Some(&sets), &unpublished, "resume-upgrade");
    assert_eq!(
        out.action.failure.as_deref(),
        Some("Cannot resume the upgrade: no configuration has been published")
    );
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn resume_checks_the_upgraded_units_pgbouncer_versions() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = refreshed(1);
    let failure = |s: &State| {
        action(&pg, Some(&sets), s, "resume-upgrade")
            .action
            .failure
            .unwrap()
    };
    let mut unknown = app(&pg, 2, &[0, 1]);
    set_peer(&mut unknown, 1, state::PGB_VERSION, None);
    assert_eq!(
        failure(&unknown),
        format!("Cannot resume the upgrade: {APP}/1 has not reported its PgBouncer version")
    );
    let mut mixed = app(&pg, 2, &[0, 1]);
    set_peer(&mut mixed, 1, state::PGB_VERSION, Some("1.23.0"));
    assert_eq!(
        failure(&mixed),
        format!(
            "Cannot resume the upgrade: the upgraded units run different PgBouncer versions: \
             {APP}/1 1.23.0, {APP}/2 1.24.1"
        )
    );
    let mut major = app(&pg, 2, &[0, 1]);
    set_peer(&mut major, 0, state::PGB_VERSION, Some("2.0.0"));
    assert_eq!(
        failure(&major),
        format!(
            "Cannot resume the upgrade: PgBouncer 1.24.1 on {APP}/1 cannot take over from \
             2.0.0 on {APP}/0: another major version"
        )
    );
    assert!(sets.patched.borrow().is_empty());
}

#[test]
fn resume_lowers_the_partition_once_the_upgraded_units_are_healthy() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = refreshed(2);
    let out = action(&pg, Some(&sets), &app(&pg, 2, &[0, 1]), "resume-upgrade");
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["message"],
        "Upgrade will resume on unit 1"
    );
    assert_eq!(*sets.patched.borrow(), [0]);
    assert_eq!(
        out.action.logs,
        [
            "rolling-update partition lowered from 2 to 0: Kubernetes upgrades the other \
          units one at a time, from the highest number down"
        ]
    );
    // The leader need not be upgraded first: unit 0 leads, unit 2 is upgraded.
    let sets = refreshed(2);
    let out = action(&pg, Some(&sets), &app(&pg, 0, &[1, 2]), "resume-upgrade");
    assert_eq!(
        out.action.results["message"],
        "Upgrade will resume on unit 1"
    );
    assert_eq!(*sets.patched.borrow(), [0]);
}

#[test]
fn resume_reports_a_refused_patch() {
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let sets = refreshed(2);
    let s = app(&pg, 2, &[0, 1]);
    *sets.fail_patch.borrow_mut() = Some(403);
    let out = action(&pg, Some(&sets), &s, "resume-upgrade");
    let failure = out.action.failure.unwrap();
    assert!(
        failure.starts_with(&format!(
            "Cannot set rolling update partition: forbidden: the Kubernetes API refused to set \
             the rolling-update partition of StatefulSet {APP} in namespace test (HTTP 403)"
        )),
        "{failure}"
    );
    assert!(failure.contains("--trust"), "{failure}");
    assert_eq!(sets.set.borrow().partition, 2);
    assert!(sets.patched.borrow().is_empty());
}
