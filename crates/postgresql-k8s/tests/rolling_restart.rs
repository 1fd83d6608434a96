//! The rolling restart (`docs/postgresql-flows.md`, "Rolling restart"): the
//! leader's choice (`decide`) on its own, then the flow on the in-memory
//! model. Against real PostgreSQL, Patroni and PgBouncer under pgbench:
//! `tests/tests/under_load.rs`.
//!
//! | flowchart node or branch | test |
//! |---|---|
//! | a member waits for a restart? each unit reports it in its peer bag | `a_unit_reports_its_pending_restart_in_its_peer_bag` |
//! | a change to a start-only parameter not reported yet → the check's timer | `a_change_not_yet_reported_arms_the_check_timer` |
//! | no member waits → idle, the record cleared | `decide_idle_when_no_member_waits` |
//! | the granted step not reported done → wait | `decide_waits_for_the_holder`, `decide_takes_no_report_of_an_older_generation` |
//! | the holder gone → passed over | `decide_passes_over_a_holder_that_is_gone`, `the_leader_moves_on_when_the_holder_departs` |
//! | the holder not running after its restart → stopped (blocked), nothing else restarts | `decide_stops_at_a_holder_not_running_after_its_restart`, `a_member_that_does_not_come_back_stops_the_roll_with_what_to_do` |
//! | the stopped member runs again → the roll goes on | `decide_goes_on_once_the_stopped_member_runs` |
//! | another member not running → wait | `decide_waits_for_a_member_that_does_not_run` |
//! | no primary → wait | `decide_waits_for_a_primary` |
//! | a replica waits → restart it (asynchronous ones first), one at a time | `decide_grants_a_replica_first`, `decide_restarts_asynchronous_replicas_before_synchronous_standbys`, `decide_counts_a_completed_restart_and_grants_the_next`, `the_leader_grants_one_replica_and_it_restarts_and_reports` |
//! | only the primary waits → switchover to a restarted synchronous standby | `decide_switches_over_before_the_primary_restarts`, `the_candidate_switches_over_at_once_without_poolers`, `the_candidate_schedules_the_switchover_the_poolers_pause_for` |
//! | the candidate not yet a synchronous standby (Patroni refuses) → the timer tries again, the roll not stopped | `a_candidate_not_yet_a_synchronous_standby_tries_again` |
//! | the switchover made but not in effect yet → wait | `decide_waits_for_the_switchover_to_take_effect` |
//! | the old primary, now a replica → restarted | `decide_restarts_the_old_primary_after_the_switchover` |
//! | a single member → restarted in place | `decide_restarts_a_single_member_in_place`, `a_single_member_restarts_itself_at_once` |
//! | a new pending change mid-roll → the roll grows | `decide_takes_a_new_change_mid_roll` |
//! | the leader's status: progress | `the_leader_shows_the_progress` |
//! | leadership moves mid-roll → the new leader carries on from the record | `a_new_leader_carries_on_the_roll` |
//! | TLS turned on or off on a running member → it waits for its turn, then restarts and serves it | `turning_tls_on_waits_for_the_roll` |
//! | TLS turned on or off on the primary → a switchover first | `tls_on_the_primary_switches_over_first` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::{Event, Status};
use charm_testing::{event, RelationState, State};
use postgresql_k8s::flows::rolling_restart::{
    decide, Done, Grant, Halt, MemberView, Next, Roll, Step, CHECK_NOTICE, RECHECK_SECONDS,
    TIMER_SERVICE,
};
use postgresql_k8s::state::{
    self, DATABASE, PAUSE_ON_SWITCHOVER, RESTART_DONE, RESTART_PENDING, ROLLING_RESTART,
    SWITCHOVER_REQUEST,
};
use postgresql_k8s::status::RESTART_PENDING as PENDING_TEXT;
use postgresql_k8s::workload::{CONTAINER, SERVICE};
use serde_json::json;
use support::*;
use tls_certificates::testing::TestCa;

// The leader's choice, pure.

fn view(unit: &str, primary: bool, sync: bool, pending: bool) -> MemberView {
    MemberView {
        unit: unit.into(),
        primary,
        sync_standby: sync,
        running: true,
        pending,
        done: None,
    }
}

fn grant(unit: &str, step: Step) -> Grant {
    Grant {
        unit: unit.into(),
        step,
    }
}

fn granted(generation: u64, unit: &str, step: Step, restarted: u32, total: u32) -> Roll {
    Roll {
        generation,
        grant: Some(grant(unit, step)),
        restarted,
        total,
        halt: None,
    }
}

fn done(generation: u64, ok: bool) -> Option<Done> {
    Some(Done { generation, ok })
}

#[test]
fn decide_idle_when_no_member_waits() {
    let members = [
        view("pg/0", true, false, false),
        view("pg/1", false, true, false),
    ];
    let (next, record) = decide(&Roll::default(), &members);
    assert_eq!(next, Next::Idle);
    assert_eq!(record, Roll::default());
    // The last step of a roll done: the record keeps its generation only.
    let mut members = members;
    members[0].done = done(4, true);
    let (next, record) = decide(&granted(4, "pg/0", Step::Restart, 2, 3), &members);
    assert_eq!(next, Next::Idle);
    assert_eq!(
        record,
        Roll {
            generation: 4,
            ..Roll::default()
        }
    );
}

#[test]
fn decide_grants_a_replica_first() {
    let members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, true),
    ];
    let (next, record) = decide(&Roll::default(), &members);
    assert_eq!(next, Next::Grant(grant("pg/1", Step::Restart)));
    assert_eq!(record, granted(1, "pg/1", Step::Restart, 0, 2));
}

#[test]
fn decide_restarts_asynchronous_replicas_before_synchronous_standbys() {
    let members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, true),
        view("pg/2", false, false, true),
    ];
    let (next, _) = decide(&Roll::default(), &members);
    assert_eq!(next, Next::Grant(grant("pg/2", Step::Restart)));
}

#[test]
fn decide_waits_for_the_holder() {
    let members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, true),
        view("pg/2", false, true, true),
    ];
    let roll = granted(3, "pg/1", Step::Restart, 0, 3);
    let (next, record) = decide(&roll, &members);
    assert_eq!(next, Next::Wait(grant("pg/1", Step::Restart)));
    assert_eq!(record, roll);
}

#[test]
fn decide_takes_no_report_of_an_older_generation() {
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, true),
    ];
    members[1].done = done(2, true);
    let roll = granted(3, "pg/1", Step::Restart, 0, 2);
    let (next, _) = decide(&roll, &members);
    assert_eq!(next, Next::Wait(grant("pg/1", Step::Restart)));
}

#[test]
fn decide_counts_a_completed_restart_and_grants_the_next() {
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, false),
        view("pg/2", false, true, true),
    ];
    members[1].done = done(3, true);
    let (next, record) = decide(&granted(3, "pg/1", Step::Restart, 0, 3), &members);
    assert_eq!(next, Next::Grant(grant("pg/2", Step::Restart)));
    assert_eq!(record, granted(4, "pg/2", Step::Restart, 1, 3));
}

#[test]
fn decide_passes_over_a_holder_that_is_gone() {
    // pg/1 held the grant and left: pg/2 is next, pg/1 not counted.
    let members = [
        view("pg/0", true, false, true),
        view("pg/2", false, true, true),
    ];
    let (next, record) = decide(&granted(3, "pg/1", Step::Restart, 0, 3), &members);
    assert_eq!(next, Next::Grant(grant("pg/2", Step::Restart)));
    assert_eq!(record, granted(4, "pg/2", Step::Restart, 0, 2));
}

#[test]
fn decide_stops_at_a_holder_not_running_after_its_restart() {
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, false),
        view("pg/2", false, true, true),
    ];
    members[1].running = false;
    members[1].done = done(3, false);
    let roll = granted(3, "pg/1", Step::Restart, 0, 3);
    let (next, record) = decide(&roll, &members);
    assert_eq!(next, Next::Halted(Halt::Stopped("pg/1".into())));
    assert_eq!(record.grant, roll.grant, "the grant stays with pg/1");
    assert_eq!(record.generation, 3);
    assert_eq!(record.halt, Some(Halt::Stopped("pg/1".into())));
}

#[test]
fn decide_goes_on_once_the_stopped_member_runs() {
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, false),
        view("pg/2", false, true, true),
    ];
    members[1].done = done(3, true);
    let mut roll = granted(3, "pg/1", Step::Restart, 0, 3);
    roll.halt = Some(Halt::Stopped("pg/1".into()));
    let (next, record) = decide(&roll, &members);
    assert_eq!(next, Next::Grant(grant("pg/2", Step::Restart)));
    assert_eq!(record, granted(4, "pg/2", Step::Restart, 1, 3));
}

#[test]
fn decide_waits_for_a_member_that_does_not_run() {
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, true),
        view("pg/2", false, true, false),
    ];
    members[2].running = false;
    let (next, record) = decide(&Roll::default(), &members);
    assert_eq!(next, Next::Halted(Halt::NotRunning("pg/2".into())));
    assert_eq!(record.grant, None);
    assert_eq!(record.halt, Some(Halt::NotRunning("pg/2".into())));
}

#[test]
fn decide_waits_for_a_primary() {
    let members = [
        view("pg/0", false, false, true),
        view("pg/1", false, false, true),
    ];
    let (next, _) = decide(&Roll::default(), &members);
    assert_eq!(next, Next::Halted(Halt::NoPrimary));
}

#[test]
fn decide_switches_over_before_the_primary_restarts() {
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, false),
        view("pg/2", false, false, false),
    ];
    members[2].done = done(5, true);
    let (next, record) = decide(&granted(5, "pg/2", Step::Restart, 1, 3), &members);
    // To the synchronous standby, not the asynchronous replica.
    assert_eq!(next, Next::Grant(grant("pg/1", Step::Switchover)));
    assert_eq!(record, granted(6, "pg/1", Step::Switchover, 2, 3));
}

#[test]
fn decide_waits_for_the_switchover_to_take_effect() {
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, false),
    ];
    members[1].done = done(6, true);
    let roll = granted(6, "pg/1", Step::Switchover, 1, 2);
    let (next, record) = decide(&roll, &members);
    assert_eq!(next, Next::Wait(grant("pg/1", Step::Switchover)));
    assert_eq!(record, roll);
}

#[test]
fn decide_restarts_the_old_primary_after_the_switchover() {
    let mut members = [
        view("pg/0", false, true, true),
        view("pg/1", true, false, false),
    ];
    members[1].done = done(6, true);
    let (next, record) = decide(&granted(6, "pg/1", Step::Switchover, 1, 2), &members);
    assert_eq!(next, Next::Grant(grant("pg/0", Step::Restart)));
    assert_eq!(record, granted(7, "pg/0", Step::Restart, 1, 2));
}

#[test]
fn decide_restarts_a_single_member_in_place() {
    let members = [view("pg/0", true, false, true)];
    let (next, record) = decide(&Roll::default(), &members);
    assert_eq!(next, Next::Grant(grant("pg/0", Step::Restart)));
    assert_eq!(record, granted(1, "pg/0", Step::Restart, 0, 1));
}

#[test]
fn decide_takes_a_new_change_mid_roll() {
    // pg/1 was restarted, then a new change needs another restart of every
    // member: pg/1 waits again, and the roll counts it again.
    let mut members = [
        view("pg/0", true, false, true),
        view("pg/1", false, true, true),
        view("pg/2", false, true, true),
    ];
    members[2].done = done(4, true);
    let (next, record) = decide(&granted(4, "pg/2", Step::Restart, 1, 3), &members);
    assert_eq!(next, Next::Grant(grant("pg/1", Step::Restart)));
    assert_eq!(record, granted(5, "pg/1", Step::Restart, 2, 5));
}

// The flow on the in-memory model.

/// A three-member cluster: 0 the primary, 1 a synchronous standby, 2 an
/// asynchronous replica.
fn cluster() -> World {
    World::new(&[
        (0, "leader", "running"),
        (1, "sync_standby", "streaming"),
        (2, "replica", "streaming"),
    ])
}

/// Unit `n` of the three, its Patroni running.
fn member_unit(n: u32, leader: bool) -> State {
    let others: Vec<u32> = (0..3).filter(|m| *m != n).collect();
    running(initialised(
        with_peers(unit(n, leader), &others),
        &[0, 1, 2],
    ))
}

fn running(mut s: State) -> State {
    let container = s.containers.get_mut(CONTAINER).unwrap();
    let mut layer = pebble_api::Layer::default();
    layer
        .services
        .insert(SERVICE.into(), pebble_api::Service::default());
    container.layers.push(("patroni".into(), layer));
    container
        .running
        .insert(SERVICE.into(), pebble_api::Service::default());
    s
}

fn peer(s: &mut State) -> &mut RelationState {
    s.relations.iter_mut().find(|r| r.id == PEER_ID).unwrap()
}

/// Sets keys in unit `n`'s peer bag, as this unit sees it.
fn peer_bag(s: &mut State, n: u32, keys: &[(&str, &str)]) {
    let bag = peer(s).remote_units.get_mut(&unit_name(n)).unwrap();
    for (k, v) in keys {
        bag.insert(k.to_string(), v.to_string());
    }
}

fn set_roll(s: &mut State, roll: &Roll) {
    peer(s)
        .local_app_data
        .insert(ROLLING_RESTART.into(), serde_json::to_string(roll).unwrap());
}

fn roll_of(s: &State) -> Roll {
    serde_json::from_str(&peer_app(s)[ROLLING_RESTART]).unwrap()
}

fn own_done(s: &State) -> Done {
    serde_json::from_str(&peer_unit(s)[RESTART_DONE]).unwrap()
}

fn peers_changed(s: &State, n: u32) -> Event {
    event::relation_changed(s.relation(PEER_ID).unwrap(), Some(&unit_name(n)))
}

#[test]
fn a_unit_reports_its_pending_restart_in_its_peer_bag() {
    let w = cluster();
    w.patroni.set_pending_restart(&addr(2));
    w.pg.set_pending_restart(&["max_connections"]);
    let s = member_unit(2, false);
    let out = w.go(&s, event::update_status()).state;
    assert_eq!(
        peer_unit(&out).get(RESTART_PENDING).map(String::as_str),
        Some("true")
    );
    // Waiting for its turn: the status names the parameter; nothing restarted.
    assert_eq!(
        out.unit_status,
        Status::Active(format!("Replica; {PENDING_TEXT} for max_connections"))
    );
    assert!(w.patroni.cluster_state().restarts.is_empty());
    // Restarted (by anyone): the flag goes.
    w.patroni.0.borrow_mut().pending_restart.clear();
    let out = w.go(&out, event::update_status()).state;
    assert_eq!(peer_unit(&out).get(RESTART_PENDING), None);
}

#[test]
fn a_change_not_yet_reported_arms_the_check_timer() {
    let w = cluster();
    let s = member_unit(2, false);
    let s = w.go(&s, Event::ConfigChanged).state;
    // max_connections is read only at start; Patroni has not reported the
    // restart yet.
    let mut s = s;
    s.config
        .insert("experimental_max_connections".into(), json!(150));
    let out = w.go(&s, Event::ConfigChanged).state;
    assert!(logged(&out, "max_connections changed"));
    let timer = &out.container(CONTAINER).unwrap().running[TIMER_SERVICE];
    assert!(
        timer.command.contains(&format!(" 12 {CHECK_NOTICE} ")),
        "{}",
        timer.command
    );
    assert_eq!(peer_unit(&out).get(RESTART_PENDING), None);
}

#[test]
fn the_leader_grants_one_replica_and_it_restarts_and_reports() {
    let w = cluster();
    for n in 0..3 {
        w.patroni.set_pending_restart(&addr(n));
    }
    // The leader (the primary) hears of unit 1's report.
    let mut s = member_unit(0, true);
    peer_bag(&mut s, 1, &[(RESTART_PENDING, "true")]);
    let out = w.go(&s, peers_changed(&s, 1)).state;
    assert_eq!(
        roll_of(&out),
        granted(1, &unit_name(2), Step::Restart, 0, 3)
    );
    assert!(w.patroni.cluster_state().restarts.is_empty());
    assert_eq!(
        out.unit_status,
        Status::Maintenance("rolling restart: 0 of 3 members restarted".into())
    );
    // Unit 2 sees the grant: it restarts its own member and reports.
    let mut s2 = member_unit(2, false);
    set_roll(&mut s2, &roll_of(&out));
    let out2 = w.go(&s2, peers_changed(&s2, 0)).state;
    assert_eq!(w.patroni.cluster_state().restarts, [addr(2)]);
    assert_eq!(
        own_done(&out2),
        Done {
            generation: 1,
            ok: true
        }
    );
    assert_eq!(peer_unit(&out2).get(RESTART_PENDING), None);
    assert!(logged(&out2, "rolling restart: PostgreSQL restarted"));
    // Another event on unit 2 restarts nothing again.
    w.go(&out2, event::update_status());
    assert_eq!(w.patroni.cluster_state().restarts, [addr(2)]);
    // Unit 1 waits for its turn.
    let mut s1 = member_unit(1, false);
    set_roll(&mut s1, &roll_of(&out));
    w.go(&s1, peers_changed(&s1, 0));
    assert_eq!(w.patroni.cluster_state().restarts, [addr(2)]);
}

#[test]
fn the_leader_shows_the_progress() {
    let w = cluster();
    for n in [0, 1] {
        w.patroni.set_pending_restart(&addr(n));
    }
    let mut s = member_unit(0, true);
    set_roll(&mut s, &granted(1, &unit_name(2), Step::Restart, 0, 3));
    peer_bag(
        &mut s,
        2,
        &[(RESTART_DONE, r#"{"generation":1,"ok":true}"#)],
    );
    let out = w.go(&s, peers_changed(&s, 2)).state;
    assert_eq!(
        roll_of(&out),
        granted(2, &unit_name(1), Step::Restart, 1, 3)
    );
    assert_eq!(
        out.unit_status,
        Status::Maintenance("rolling restart: 1 of 3 members restarted".into())
    );
    assert_eq!(
        out.app_status,
        Status::Maintenance("rolling restart: 1 of 3 members restarted".into())
    );
}

#[test]
fn the_candidate_switches_over_at_once_without_poolers() {
    let w = cluster();
    w.patroni.set_pending_restart(&addr(0));
    // The leader, the primary, alone waits: a switchover to unit 1 first.
    let mut s = member_unit(0, true);
    set_roll(&mut s, &granted(2, &unit_name(2), Step::Restart, 1, 3));
    peer_bag(
        &mut s,
        2,
        &[(RESTART_DONE, r#"{"generation":2,"ok":true}"#)],
    );
    let out = w.go(&s, peers_changed(&s, 2)).state;
    assert_eq!(
        roll_of(&out),
        granted(3, &unit_name(1), Step::Switchover, 2, 3)
    );
    assert!(out
        .unit_status
        .message()
        .contains("switching over to postgresql-k8s/1 before the primary restarts"));
    assert!(w.patroni.cluster_state().restarts.is_empty());
    // Unit 1 switches over to itself and reports.
    let mut s1 = member_unit(1, false);
    set_roll(&mut s1, &roll_of(&out));
    let out1 = w.go(&s1, peers_changed(&s1, 0)).state;
    assert_eq!(
        w.patroni.cluster_state().switchovers,
        [(member(0), Some(member(1)))]
    );
    assert_eq!(
        own_done(&out1),
        Done {
            generation: 3,
            ok: true
        }
    );
    // The leader, now a replica, restarts itself in the same hook.
    let mut s = out;
    peer_bag(
        &mut s,
        1,
        &[(RESTART_DONE, r#"{"generation":3,"ok":true}"#)],
    );
    let out = w.go(&s, peers_changed(&s, 1)).state;
    assert_eq!(w.patroni.cluster_state().restarts, [addr(0)]);
    assert_eq!(roll_of(&out).generation, 4);
    assert_eq!(roll_of(&out).grant, None, "the roll is over");
    assert!(!out.unit_status.message().contains("rolling restart"));
}

#[test]
fn a_candidate_not_yet_a_synchronous_standby_tries_again() {
    // Two members: the replica has just restarted, and Patroni has not named
    // it a synchronous standby again yet, so it refuses the switchover.
    let w = World::new(&[(0, "leader", "running"), (1, "replica", "streaming")]);
    let mut s1 = member_unit(1, false);
    set_roll(&mut s1, &granted(3, &unit_name(1), Step::Switchover, 1, 2));
    let out1 = w.go(&s1, peers_changed(&s1, 0)).state;
    assert!(
        !peer_unit(&out1).contains_key(RESTART_DONE),
        "not reported failed: the roll does not stop"
    );
    assert!(logged(
        &out1,
        "waiting for Patroni to make this member a synchronous standby"
    ));
    let timer = &out1.container(CONTAINER).unwrap().running[TIMER_SERVICE];
    assert!(
        timer
            .command
            .contains(&format!(" {RECHECK_SECONDS} {CHECK_NOTICE} ")),
        "{}",
        timer.command
    );
    // Patroni names it; the next look (the timer's, or a peer change's): the
    // switchover is made.
    w.set_members(&[(0, "leader", "running"), (1, "sync_standby", "streaming")]);
    let out1 = w.go(&out1, peers_changed(&out1, 0)).state;
    assert_eq!(
        w.patroni.cluster_state().switchovers.last(),
        Some(&(member(0), Some(member(1))))
    );
    assert_eq!(
        own_done(&out1),
        Done {
            generation: 3,
            ok: true
        }
    );
}

#[test]
fn the_candidate_schedules_the_switchover_the_poolers_pause_for() {
    let w = cluster();
    w.patroni.set_pending_restart(&addr(0));
    let mut s1 = member_unit(1, false).with_relation(
        RelationState::new(DATABASE, 5, "pgbouncer-k8s")
            .remote_app_data(&[("database", "pgbouncer")])
            .remote_unit("pgbouncer-k8s/0", &[(PAUSE_ON_SWITCHOVER, "true")]),
    );
    set_roll(&mut s1, &granted(3, &unit_name(1), Step::Switchover, 2, 3));
    let out1 = w.go(&s1, peers_changed(&s1, 0)).state;
    assert!(w.patroni.cluster_state().switchovers.is_empty());
    let request: serde_json::Value =
        serde_json::from_str(&out1.relation(5).unwrap().local_unit_data[SWITCHOVER_REQUEST])
            .unwrap();
    assert_eq!(request["candidate"], unit_name(1));
    assert_eq!(
        own_done(&out1),
        Done {
            generation: 3,
            ok: true
        }
    );
    assert_eq!(
        out1.unit_status,
        Status::Maintenance(
            "switchover to this unit: waiting for 1 of 1 pooler units to pause".into()
        )
    );
}

#[test]
fn a_member_that_does_not_come_back_stops_the_roll_with_what_to_do() {
    let w = cluster();
    for n in 0..3 {
        w.patroni.set_pending_restart(&addr(n));
    }
    w.patroni.set_restart_fails(&addr(2));
    let mut s2 = member_unit(2, false);
    set_roll(&mut s2, &granted(1, &unit_name(2), Step::Restart, 0, 3));
    let out2 = w.go(&s2, peers_changed(&s2, 0)).state;
    assert_eq!(
        own_done(&out2),
        Done {
            generation: 1,
            ok: false
        }
    );
    assert!(matches!(&out2.unit_status,
        Status::Blocked(m) if m.contains("not running after its restart") && m.contains("Patroni's log")));
    // The leader stops there: blocked, naming the unit, nothing else restarted.
    let mut s = member_unit(0, true);
    set_roll(&mut s, &granted(1, &unit_name(2), Step::Restart, 0, 3));
    peer_bag(
        &mut s,
        2,
        &[(RESTART_DONE, r#"{"generation":1,"ok":false}"#)],
    );
    let out = w.go(&s, peers_changed(&s, 2)).state;
    assert_eq!(w.patroni.cluster_state().restarts, [addr(2)]);
    assert!(matches!(&out.app_status,
        Status::Blocked(m) if m.starts_with("rolling restart stopped: postgresql-k8s/2's step failed")));
    // Once it runs again, unit 2 says so.
    w.set_members(&[
        (0, "leader", "running"),
        (1, "sync_standby", "streaming"),
        (2, "replica", "streaming"),
    ]);
    let out2 = w.go(&out2, event::update_status()).state;
    assert_eq!(
        own_done(&out2),
        Done {
            generation: 1,
            ok: true
        }
    );
    assert_eq!(w.patroni.cluster_state().restarts, [addr(2)]);
}

#[test]
fn the_leader_moves_on_when_the_holder_departs() {
    let w = cluster();
    for n in [0, 1] {
        w.patroni.set_pending_restart(&addr(n));
    }
    let mut s = member_unit(0, true);
    set_roll(&mut s, &granted(1, &unit_name(2), Step::Restart, 0, 3));
    peer(&mut s).remote_units.remove(&unit_name(2));
    let departed =
        event::relation_departed(s.relation(PEER_ID).unwrap(), &unit_name(2), &unit_name(2));
    let out = w.go(&s, departed).state;
    assert_eq!(
        roll_of(&out),
        granted(2, &unit_name(1), Step::Restart, 0, 2)
    );
}

#[test]
fn a_single_member_restarts_itself_at_once() {
    let w = World::new(&[(0, "leader", "running")]);
    w.patroni.set_pending_restart(&addr(0));
    let s = running(initialised(unit(0, true), &[0]));
    let out = w.go(&s, event::update_status()).state;
    assert_eq!(w.patroni.cluster_state().restarts, [addr(0)]);
    assert_eq!(roll_of(&out).grant, None);
    assert_eq!(out.unit_status, Status::Active("Primary".into()));
}

#[test]
fn a_new_leader_carries_on_the_roll() {
    let w = cluster();
    for n in [0, 1] {
        w.patroni.set_pending_restart(&addr(n));
    }
    // Unit 1 becomes the leader while unit 2, granted by the old leader, has
    // reported its restart done.
    let mut s = member_unit(1, true);
    set_roll(&mut s, &granted(1, &unit_name(2), Step::Restart, 0, 3));
    peer_bag(
        &mut s,
        2,
        &[(RESTART_DONE, r#"{"generation":1,"ok":true}"#)],
    );
    let out = w.go(&s, event::leader_elected()).state;
    // Unit 1 itself, a replica, is next: it restarts in the same hook, then
    // switches over to itself, and the old primary's restart is granted.
    let fake = w.patroni.cluster_state();
    assert_eq!(fake.restarts, [addr(1)]);
    assert_eq!(fake.switchovers, [(member(0), Some(member(1)))]);
    assert_eq!(
        roll_of(&out),
        granted(4, &unit_name(0), Step::Restart, 2, 3)
    );
}

#[test]
fn turning_tls_on_waits_for_the_roll() {
    let w = cluster();
    let mut ca = TestCa::new("ca");
    // Unit 2's certificate arrives: PostgreSQL reloads with it, and waits for
    // its turn to restart; nothing restarts yet.
    let s2 = with_certificate(member_unit(2, false), 2, &mut ca);
    let out2 = w.go(&s2, event::update_status()).state;
    assert!(w.patroni.cluster_state().restarts.is_empty());
    let bag = peer_unit(&out2);
    assert_eq!(bag.get(state::TLS_RESTART).map(String::as_str), Some("on"));
    assert_eq!(bag.get(RESTART_PENDING).map(String::as_str), Some("true"));
    assert_eq!(bag.get(state::TLS_CA), None, "not serving TLS yet");
    assert_eq!(
        out2.unit_status,
        Status::Active(format!("Replica; {PENDING_TEXT} to turn TLS on"))
    );
    // The leader hears of it and grants unit 2 the restart.
    let mut s0 = member_unit(0, true);
    peer_bag(
        &mut s0,
        2,
        &[(RESTART_PENDING, "true"), (state::TLS_RESTART, "on")],
    );
    let out0 = w.go(&s0, peers_changed(&s0, 2)).state;
    assert_eq!(
        roll_of(&out0),
        granted(1, &unit_name(2), Step::Restart, 0, 1)
    );
    // Unit 2 restarts and serves TLS from then on.
    let mut s2 = out2;
    set_roll(&mut s2, &roll_of(&out0));
    let out2 = w.go(&s2, peers_changed(&s2, 0)).state;
    assert_eq!(w.patroni.cluster_state().restarts, [addr(2)]);
    let bag = peer_unit(&out2);
    assert_eq!(bag.get(state::TLS).map(String::as_str), Some("enabled"));
    assert!(bag
        .get(state::TLS_CA)
        .is_some_and(|c| c.contains(&ca.pem())));
    assert_eq!(bag.get(state::TLS_RESTART), None);
    assert_eq!(bag.get(RESTART_PENDING), None);
    assert!(logged(&out2, "PostgreSQL serves the TLS it was given"));
    assert_eq!(out2.unit_status, Status::Active("Replica".into()));
}

#[test]
fn tls_on_the_primary_switches_over_first() {
    let w = cluster();
    let mut ca = TestCa::new("ca");
    let s0 = with_certificate(member_unit(0, true), 0, &mut ca);
    let out0 = w.go(&s0, event::update_status()).state;
    // The primary does not restart under its clients: the synchronous
    // standby is granted the switchover.
    assert!(w.patroni.cluster_state().restarts.is_empty());
    assert_eq!(
        roll_of(&out0),
        granted(1, &unit_name(1), Step::Switchover, 0, 1)
    );
    assert_eq!(
        peer_unit(&out0).get(state::TLS_RESTART).map(String::as_str),
        Some("on")
    );
}
