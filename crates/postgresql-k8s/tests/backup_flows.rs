//! The backup repository's flow on the in-memory model (`docs/backups.md`):
//! the `s3-parameters` relation, pgBackRest's files, the primary's check of
//! the repository (pgBackRest's answers programmed in the container), the
//! leader's record and WAL archiving.
//!
//! | flow, branch | test |
//! |---|---|
//! | leader: asks for a bucket, once | `the_leader_asks_for_a_bucket_once` |
//! | parameters missing: nothing configured | `missing_parameters_configure_nothing` |
//! | a parameter invalid: blocked, the key named, nothing written | `an_invalid_parameter_blocks_naming_it_and_writes_nothing` |
//! | an endpoint pgBackRest cannot use: blocked with the fix | `a_plain_http_endpoint_blocks_with_the_fix` |
//! | a replica: the files written, no check | `a_replica_writes_the_configuration_and_checks_nothing` |
//! | the primary, an empty repository: stanza created, reported | `the_primary_creates_the_stanza_and_reports_it` |
//! | the primary, this stanza listed as missing: created | `a_stanza_listed_as_missing_is_created` |
//! | the primary, this cluster's repository: taken, not created | `a_repository_with_this_clusters_stanza_is_taken_not_created` |
//! | the primary, another cluster's repository: blocked, nothing written | `another_clusters_repository_blocks_and_is_not_written` |
//! | the primary, this stanza for another system: blocked | `this_stanza_name_for_another_system_blocks` |
//! | the primary, the repository unreadable (a missing bucket): blocked with S3's words | `a_missing_bucket_blocks_with_s3s_words` |
//! | a failed check: not retried on a peer change, retried on update-status | `a_failed_check_waits_for_the_relation_or_update_status` |
//! | the primary, pgBackRest fails: blocked with its words | `a_failing_stanza_creation_blocks_with_pgbackrests_words` |
//! | leader: records the primary's report, WAL archived there | `the_leader_records_the_stanza_and_wal_is_archived` |
//! | leader: a new primary that has not reported yet: the record stands, WAL still archived | `a_new_primary_not_reported_yet_leaves_wal_archived` |
//! | the relation gone: files removed, archiving stops | `the_relation_gone_stops_archiving_and_removes_the_files` |
//! | create-backup: no relation, parameters missing, no stanza | `create_backup_says_what_is_missing` |
//! | create-backup: an unknown type | `create_backup_refuses_an_unknown_type` |
//! | with TLS: the unit's pgBackRest server runs for the other units (stopped, its files gone, with the relation) | `with_tls_every_unit_serves_pgbackrest_to_the_others` |
//! | with TLS, alone: no server (no one to serve) | `a_unit_alone_serves_no_one` |
//! | create-backup on a replica without TLS: refused, how to back up said | `a_replica_without_tls_says_how_to_back_up` |
//! | create-backup on a replica with TLS: from its standby, the primary reached through its server | `a_replica_with_tls_takes_the_backup_from_its_standby` |
//! | create-backup on a replica, the primary's server not running: refused, try again | `a_replica_waits_for_the_primarys_server` |
//! | create-backup on the primary: from a standby that serves, else the primary alone | `the_primary_copies_from_a_standby_that_serves` |
//! | create-backup: the member not running | `a_member_that_is_not_running_takes_no_backup` |
//! | create-backup: a differential without a full | `a_differential_needs_a_full_backup` |
//! | create-backup: taken, its id answered | `create_backup_takes_a_backup_and_answers_its_id` |
//! | create-backup: pgBackRest fails | `a_failed_backup_fails_the_action_with_pgbackrests_words` |
//! | list-backups: the table | `list_backups_answers_the_table` |
//! | restore: neither or both parameters, a time that is not one | `restore_takes_exactly_one_valid_target` |
//! | restore: not the leader | `restore_runs_on_the_leader_only` |
//! | restore: no relation, no stanza | `restore_needs_the_repository` |
//! | restore: a backup id not in the repository | `restore_refuses_an_unknown_backup` |
//! | restore: more than one unit: scheduled (a second request refused meanwhile) | `restore_on_several_units_is_scheduled` |
//! | restore scheduled, another unit: its member stopped, its data moved aside, its word given (forgotten after) | `the_other_units_stop_their_members_and_move_their_data_aside` |
//! | restore scheduled, the leader: waits for every other unit, then restores as alone | `the_leader_waits_for_every_other_unit_then_restores` |
//! | restore scheduled, failed: done with, blocked; the action run again restores at once | `a_scheduled_restore_that_fails_is_retried_by_the_action_at_once` |
//! | restore: PostgreSQL running on the data directory: stopped at once (immediate), checked again after Patroni stops | `a_running_server_is_stopped_at_once_before_the_data_moves` |
//! | restore: a backup, restored (the system users given the passwords the charm holds); a new cluster generation starts | `restoring_a_backup_starts_a_new_cluster_generation` |
//! | restore into a new application: another cluster's repository, its one stanza restored, nothing written to it | `a_new_application_restores_another_clusters_backup` |
//! | restore into a new application: a repository of several clusters, or none | `a_new_application_needs_one_clusters_repository` |
//! | restore: the new cluster initialised before Patroni records its settings | `the_restored_cluster_is_initialised_before_patroni_records_its_settings` |
//! | restore: the cluster running: `check` first, the repository up to date; a failing check logged, the restore goes on | `a_running_cluster_is_archived_up_to_date_before_a_restore` |
//! | restore: a backup with nothing waiting to be archived: no check (a time is checked) | `a_backup_restored_with_nothing_waiting_to_be_archived_skips_the_check` |
//! | restore: a time, and the latest | `restoring_to_a_time_or_the_latest_gives_pgbackrest_the_target` |
//! | restore: the data directory cannot be moved: nothing changed, Patroni started again | `a_data_directory_that_cannot_move_leaves_the_cluster_as_it_was` |
//! | restore: pgBackRest fails (its console's words): blocked, data kept, Patroni stays stopped; retried | `a_failed_restore_blocks_keeps_the_data_and_is_retried` |
//! | restore: PostgreSQL's recovery fails (at start, or before it promotes): blocked with its words | `a_failed_recovery_blocks_with_postgresqls_words` |

#![allow(clippy::unwrap_used)]

mod support;

use charm::Status;
use charm_testing::{event, RelationState, State};
use pebble_api::ExecOutput;
use postgres_admin::testing::FIRST_CLUSTER;
use postgresql_k8s::flows::backups::{ANOTHER_CLUSTER, REPLICA_NEEDS_TLS};
use postgresql_k8s::pgbackrest;
use postgresql_k8s::state::{
    BACKUP_SERVER, CLUSTER_INITIALISED, ENDPOINTS, GENERATION, PRIMARY, RESTORE_ASIDE,
    RESTORE_FAILED, RESTORE_REQUEST, RESTORE_STOPPED, S3_PROBLEM, STANZA,
};
use postgresql_k8s::workload::{Layout, CONTAINER, DEBIAN_BIN_DIR, PGBACKREST_SERVER, SERVICE};
use s3_interface::S3_PARAMETERS;
use support::*;
use tls_certificates::testing::TestCa;

/// The application bag once the leader recorded the stanza.
fn recorded(mut state: State) -> State {
    peer_mut(&mut state)
        .local_app_data
        .insert(STANZA.into(), stanza());
    state
}

/// `info` of this cluster's stanza with backups `(label, type, start)`.
fn info_with(backups: &[(&str, &str, u64)]) -> String {
    let list: Vec<serde_json::Value> = backups
        .iter()
        .map(|(label, kind, start)| {
            serde_json::json!({
                "label": label, "type": kind, "prior": null, "error": false,
                "timestamp": {"start": start, "stop": start + 5},
                "archive": {"start": "000000010000000000000003"},
                "info": {"size": 1024, "repository": {"size": 512}},
            })
        })
        .collect();
    serde_json::to_string(&serde_json::json!([{
        "name": stanza(), "backup": list,
        "db": [{"system-id": FIRST_CLUSTER.parse::<u64>().unwrap()}],
        "status": {"code": 0, "message": "ok"},
    }]))
    .unwrap()
}

fn failure(out: &charm_testing::Output) -> String {
    out.action.failure.clone().unwrap_or_default()
}

const S3_ID: u64 = 21;

fn stanza() -> String {
    pgbackrest::stanza("test", "postgresql-k8s")
}

fn s3_relation(extra: &[(&str, &str)]) -> RelationState {
    let mut data = vec![
        ("bucket", "backups"),
        ("access-key", "AKIAEXAMPLE"),
        ("secret-key", "wJalrEXAMPLE"),
        ("endpoint", "https://s3.example.com"),
    ];
    data.extend_from_slice(extra);
    RelationState::new(S3_PARAMETERS, S3_ID, "s3-integrator")
        .remote_app_data(&data)
        .remote_unit("s3-integrator/0", &[])
}

/// Unit `n` of an initialised cluster whose primary is unit 0, related to
/// the provider with `relation`.
fn related(n: u32, relation: RelationState) -> State {
    let mut state = initialised(with_peers(unit(n, n == 0), &[0, 1]), &[0, 1]);
    peer_mut(&mut state)
        .local_app_data
        .insert(PRIMARY.into(), member(0));
    state.with_relation(relation)
}

fn world() -> World {
    World::new(&[(0, "leader", "running"), (1, "sync_standby", "streaming")])
}

/// pgBackRest's `command` for this cluster, as the charm runs it.
fn command(what: &str) -> Vec<String> {
    pgbackrest::command(&Layout::default().pgbackrest_config(), &stanza(), what, &[])
}

/// pgBackRest failing with `code`, its error on standard output.
fn failing(code: i32, error: &str) -> ExecOutput {
    ExecOutput {
        exit_code: code,
        stdout: format!("{error}\n").into_bytes(),
        stderr: Vec::new(),
    }
}

fn ok(stdout: &str) -> ExecOutput {
    ExecOutput {
        exit_code: 0,
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    }
}

/// Programs pgBackRest's answer to `what` (`repository-info`: `info` of
/// every stanza).
fn answer(mut state: State, what: &str, output: ExecOutput) -> State {
    let prefix = match what {
        "repository-info" => pgbackrest::repository_info(&Layout::default().pgbackrest_config()),
        _ => command(what),
    };
    let container = state.containers.get_mut(CONTAINER).unwrap();
    container.execs.push((prefix, output));
    state
}

/// `info` listing `stanzas`, each with `system_id`.
fn info(stanzas: &[&str], system_id: &str) -> String {
    let all: Vec<serde_json::Value> = stanzas
        .iter()
        .map(|name| {
            serde_json::json!({
                "name": name, "backup": [], "archive": [],
                "db": [{"id": 1, "system-id": system_id.parse::<u64>().unwrap(), "version": "15"}],
                "status": {"code": 0, "message": "ok"},
            })
        })
        .collect();
    serde_json::to_string(&all).unwrap()
}

fn config_file(state: &State) -> Option<String> {
    state
        .container(CONTAINER)
        .unwrap()
        .file_text(&Layout::default().pgbackrest_config())
}

/// The primary, related to a provider whose repository is empty: the stanza
/// will be made.
fn empty_repository() -> State {
    let state = related(0, s3_relation(&[]));
    let state = answer(state, "repository-info", ok("[]"));
    answer(state, "stanza-create", ok(""))
}

fn changed(w: &World, state: &State) -> State {
    let ev = event::relation_changed(state.relation(S3_ID).unwrap(), Some("s3-integrator/0"));
    w.go(state, ev).state
}

#[test]
fn the_leader_asks_for_a_bucket_once() {
    let w = world();
    let state = related(0, RelationState::new(S3_PARAMETERS, S3_ID, "s3-integrator"));
    let out = w.go(
        &state,
        event::relation_created(state.relation(S3_ID).unwrap()),
    );
    let bag = &out.state.relation(S3_ID).unwrap().local_app_data;
    assert_eq!(bag.get("bucket").map(String::as_str), Some("relation-21"));
    let follower = related(1, RelationState::new(S3_PARAMETERS, S3_ID, "s3-integrator"));
    let out = w.go(
        &follower,
        event::relation_created(follower.relation(S3_ID).unwrap()),
    );
    assert!(out.state.relation(S3_ID).unwrap().local_app_data.is_empty());
}

#[test]
fn missing_parameters_configure_nothing() {
    let w = world();
    let relation = RelationState::new(S3_PARAMETERS, S3_ID, "s3-integrator")
        .remote_app_data(&[("bucket", "backups")]);
    let state = changed(&w, &related(0, relation));
    assert_eq!(config_file(&state), None);
    assert!(programs(&state).is_empty());
    assert!(!peer_unit(&state).contains_key(S3_PROBLEM));
}

#[test]
fn an_invalid_parameter_blocks_naming_it_and_writes_nothing() {
    let w = world();
    let state = changed(
        &w,
        &related(0, s3_relation(&[("delete-older-than-days", "0")])),
    );
    assert_eq!(config_file(&state), None);
    assert!(programs(&state).is_empty());
    match &state.unit_status {
        Status::Blocked(m) => assert!(m.contains("delete-older-than-days"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_plain_http_endpoint_blocks_with_the_fix() {
    let w = world();
    let state = changed(
        &w,
        &related(0, s3_relation(&[("endpoint", "http://minio:9000")])),
    );
    assert_eq!(config_file(&state), None);
    assert_eq!(
        state.unit_status,
        Status::Blocked(
            "pgBackRest reaches S3 over https only; give the s3-integrator an https endpoint"
                .into()
        )
    );
}

#[test]
fn a_replica_writes_the_configuration_and_checks_nothing() {
    let w = world();
    let state = changed(&w, &related(1, s3_relation(&[])));
    let config = config_file(&state).expect("pgbackrest.conf written");
    assert!(config.contains("repo1-s3-bucket=backups\n"), "{config}");
    assert!(config.contains(&format!("[{}]", stanza())));
    assert!(programs(&state).is_empty(), "only the primary checks");
    assert!(!peer_unit(&state).contains_key(STANZA));
}

#[test]
fn the_primary_creates_the_stanza_and_reports_it() {
    let w = world();
    let state = changed(&w, &empty_repository());
    assert_eq!(programs(&state), ["repository-info", "stanza-create"]);
    let executed = &state.container(CONTAINER).unwrap().executed[0];
    assert_eq!(executed.user.as_deref(), Some("postgres"));
    assert!(
        executed.command.iter().all(|a| !a.contains("wJalr")),
        "no key on a command line"
    );
    assert_eq!(
        peer_unit(&state).get(STANZA).map(String::as_str),
        Some(stanza().as_str())
    );
    assert!(!peer_unit(&state).contains_key(S3_PROBLEM));
}

#[test]
fn a_stanza_listed_as_missing_is_created() {
    let w = world();
    let state = related(0, s3_relation(&[]));
    let missing = serde_json::json!([{
        "name": stanza(), "backup": [], "db": [],
        "status": {"code": 1, "message": "missing stanza path"},
    }]);
    let state = answer(state, "repository-info", ok(&missing.to_string()));
    let state = answer(state, "stanza-create", ok(""));
    let state = changed(&w, &state);
    assert_eq!(programs(&state), ["repository-info", "stanza-create"]);
    assert_eq!(
        peer_unit(&state).get(STANZA).map(String::as_str),
        Some(stanza().as_str())
    );
}

#[test]
fn a_repository_with_this_clusters_stanza_is_taken_not_created() {
    let w = world();
    let state = related(0, s3_relation(&[]));
    let state = answer(
        state,
        "repository-info",
        ok(&info(&[&stanza()], FIRST_CLUSTER)),
    );
    let state = changed(&w, &state);
    assert_eq!(programs(&state), ["repository-info"]);
    assert_eq!(
        peer_unit(&state).get(STANZA).map(String::as_str),
        Some(stanza().as_str())
    );
}

#[test]
fn another_clusters_repository_blocks_and_is_not_written() {
    let w = world();
    let state = related(0, s3_relation(&[]));
    let state = answer(
        state,
        "repository-info",
        ok(&info(&["other.patroni-pg"], "42")),
    );
    let state = changed(&w, &state);
    assert_eq!(
        programs(&state),
        ["repository-info"],
        "nothing written to the repository"
    );
    assert_eq!(state.unit_status, Status::Blocked(ANOTHER_CLUSTER.into()));
    assert!(!peer_unit(&state).contains_key(STANZA));
}

#[test]
fn this_stanza_name_for_another_system_blocks() {
    let w = world();
    let state = related(0, s3_relation(&[]));
    let state = answer(state, "repository-info", ok(&info(&[&stanza()], "42")));
    let state = changed(&w, &state);
    assert_eq!(programs(&state), ["repository-info"]);
    assert_eq!(state.unit_status, Status::Blocked(ANOTHER_CLUSTER.into()));
}

#[test]
fn a_missing_bucket_blocks_with_s3s_words() {
    let w = world();
    let state = related(0, s3_relation(&[]));
    let invalid = serde_json::json!([{
        "name": "[invalid]", "backup": [], "db": [],
        "repo": [{"status": {"code": 99, "message":
            "[ProtocolError] HTTP request failed with 404 (NOT FOUND):\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"}}],
        "status": {"code": 99, "message": "other"},
    }]);
    let state = answer(state, "repository-info", ok(&invalid.to_string()));
    let state = changed(&w, &state);
    assert_eq!(programs(&state), ["repository-info"], "no stanza made");
    assert_eq!(
        state.unit_status,
        Status::Blocked(
            "failed to access the S3 repository, check your S3 settings: \
             NoSuchBucket: The specified bucket does not exist"
                .into()
        )
    );
}

#[test]
fn a_failed_check_waits_for_the_relation_or_update_status() {
    let w = world();
    let state = related(0, s3_relation(&[]));
    let state = answer(
        state,
        "repository-info",
        failing(
            49,
            "ERROR: [049]: unable to connect to 's3.example.com:443'",
        ),
    );
    let state = answer(state, "repository-info", ok("[]"));
    let state = answer(state, "stanza-create", ok(""));
    let state = changed(&w, &state);
    assert!(peer_unit(&state).contains_key(S3_PROBLEM));
    let peers = event::relation_changed(state.relation(PEER_ID).unwrap(), Some(&unit_name(1)));
    let state = w.go(&state, peers).state;
    assert_eq!(
        programs(&state),
        ["repository-info"],
        "a peer change does not retry"
    );
    let state = w.go(&state, event::update_status()).state;
    assert_eq!(
        programs(&state),
        ["repository-info", "repository-info", "stanza-create"]
    );
    assert!(!peer_unit(&state).contains_key(S3_PROBLEM));
    assert_eq!(
        peer_unit(&state).get(STANZA).map(String::as_str),
        Some(stanza().as_str())
    );
}

#[test]
fn a_failing_stanza_creation_blocks_with_pgbackrests_words() {
    let w = world();
    let state = related(0, s3_relation(&[]));
    let state = answer(state, "repository-info", ok("[]"));
    let state = answer(
        state,
        "stanza-create",
        failing(
            49,
            "ERROR: [049]: unable to connect to 's3.example.com:443'",
        ),
    );
    let state = changed(&w, &state);
    assert_eq!(
        state.unit_status,
        Status::Blocked(
            "failed to initialize stanza, check your S3 settings: \
             ERROR: [049]: unable to connect to 's3.example.com:443'"
                .into()
        )
    );
}

#[test]
fn the_leader_records_the_stanza_and_wal_is_archived() {
    let w = world();
    let state = changed(&w, &empty_repository());
    assert_eq!(
        peer_app(&state).get(STANZA).map(String::as_str),
        Some(stanza().as_str())
    );
    let doc = patroni_doc(&state);
    let archive = doc["postgresql"]["parameters"]["archive_command"]
        .as_str()
        .unwrap();
    assert_eq!(
        archive,
        pgbackrest::archive_command(&Layout::default().pgbackrest_config(), &stanza())
    );
    let patch = w.patroni.cluster_state().patches.last().cloned().unwrap();
    assert_eq!(
        patch["postgresql"]["parameters"]["archive_command"], archive,
        "the cluster's settings too"
    );
}

#[test]
fn a_new_primary_not_reported_yet_leaves_wal_archived() {
    // The primary moved to unit 1 (a switchover), which has not checked the
    // repository yet: the leader keeps the record, and WAL is archived.
    let w = world();
    let state = changed(&w, &empty_repository());
    w.set_members(&[(0, "sync_standby", "streaming"), (1, "leader", "running")]);
    let mut moved = state.clone();
    let peers = peer_mut(&mut moved);
    peers.local_app_data.insert(PRIMARY.into(), member(1));
    peers.local_unit_data.remove(STANZA);
    let out = w.go(&moved, peers_changed(&moved));
    assert_eq!(
        peer_app(&out.state).get(STANZA).map(String::as_str),
        Some(stanza().as_str()),
        "the record stands"
    );
    assert!(
        patroni_doc(&out.state)["postgresql"]["parameters"]["archive_command"]
            .as_str()
            .unwrap()
            .starts_with("pgbackrest ")
    );
    // Its report, when it comes, is recorded: here, a problem.
    let mut reported = out.state.clone();
    peer_mut(&mut reported)
        .remote_units
        .get_mut(&unit_name(1))
        .unwrap()
        .insert(S3_PROBLEM.into(), ANOTHER_CLUSTER.into());
    let out = w.go(&reported, peers_changed(&reported));
    assert_eq!(peer_app(&out.state).get(STANZA), None);
    assert_eq!(
        patroni_doc(&out.state)["postgresql"]["parameters"]["archive_command"],
        pgbackrest::NO_ARCHIVE
    );
}

#[test]
fn the_relation_gone_stops_archiving_and_removes_the_files() {
    let w = world();
    let state = changed(&w, &empty_repository());
    assert!(config_file(&state).is_some());
    let out = w.go(
        &state,
        event::relation_broken(state.relation(S3_ID).unwrap()),
    );
    let state = out.state;
    assert_eq!(config_file(&state), None, "the keys leave the container");
    assert!(!peer_app(&state).contains_key(STANZA));
    assert!(!peer_unit(&state).contains_key(STANZA));
    assert_eq!(
        patroni_doc(&state)["postgresql"]["parameters"]["archive_command"],
        pgbackrest::NO_ARCHIVE
    );
}

#[test]
fn create_backup_says_what_is_missing() {
    let w = world();
    let bare = initialised(with_peers(unit(0, true), &[0, 1]), &[0, 1]);
    let out = w.action(&bare, "create-backup", serde_json::json!({}));
    assert_eq!(
        failure(&out),
        "Relation with s3-integrator charm missing, cannot create/restore backup."
    );
    let relation = RelationState::new(S3_PARAMETERS, S3_ID, "s3-integrator")
        .remote_app_data(&[("access-key", "a"), ("secret-key", "s")]);
    let out = w.action(
        &related(0, relation),
        "create-backup",
        serde_json::json!({}),
    );
    assert_eq!(failure(&out), "Missing S3 parameters: bucket");
    let out = w.action(
        &related(0, s3_relation(&[])),
        "create-backup",
        serde_json::json!({}),
    );
    assert_eq!(failure(&out), "Stanza was not initialised");
}

#[test]
fn create_backup_refuses_an_unknown_type() {
    let w = world();
    let state = recorded(related(0, s3_relation(&[])));
    let out = w.action(
        &state,
        "create-backup",
        serde_json::json!({"type": "weekly"}),
    );
    assert_eq!(
        failure(&out),
        "Invalid backup type: weekly. Possible values: full, differential, incremental."
    );
}

#[test]
fn a_replica_without_tls_says_how_to_back_up() {
    let w = world();
    let state = changed(&w, &recorded(related(1, s3_relation(&[]))));
    assert!(!peer_unit(&state).contains_key(BACKUP_SERVER));
    let out = w.action(&state, "create-backup", serde_json::json!({}));
    assert_eq!(failure(&out), REPLICA_NEEDS_TLS);
    assert!(programs(&out.state).is_empty());
}

/// Unit `n` related to the repository, with TLS: its pgBackRest server runs.
fn serving(n: u32) -> State {
    let state = recorded(related(n, s3_relation(&[])));
    let state = with_certificate(state, n, &mut TestCa::new("ca"));
    let state = answer(state, "repository-info", ok("[]"));
    let state = answer(state, "stanza-create", ok(""));
    changed(&world(), &state)
}

/// `state` once unit `n`'s peer bag says its pgBackRest server runs.
fn other_serves(mut state: State, n: u32) -> State {
    peer_mut(&mut state)
        .remote_units
        .get_mut(&unit_name(n))
        .unwrap()
        .insert(BACKUP_SERVER.into(), format!("{}:8432", addr(n)));
    state
}

#[test]
fn with_tls_every_unit_serves_pgbackrest_to_the_others() {
    let state = serving(1);
    let config = config_file(&state).unwrap();
    let layout = Layout::default();
    let [ca, cert, key] = layout.pgbackrest_tls();
    for line in [
        format!("tls-server-address={}", addr(1)),
        format!("tls-server-cert-file={cert}"),
        format!("tls-server-auth={APP}-0.{APP}-endpoints={}", stanza()),
    ] {
        assert!(config.contains(&format!("{line}\n")), "{line}:\n{config}");
    }
    let container = state.container(CONTAINER).unwrap();
    assert!(container.is_running(PGBACKREST_SERVER));
    for file in [ca, cert, key] {
        assert!(container.file_text(&file).is_some(), "{file}");
    }
    let pgpass = container.file_text(&layout.pgbackrest_pgpass()).unwrap();
    assert!(pgpass.starts_with("*:*:*:operator:"));
    assert_eq!(
        peer_unit(&state).get(BACKUP_SERVER),
        Some(&format!("{}:8432", addr(1)))
    );

    // The relation gone: the server stops and its files go.
    let out = world().go(
        &state,
        event::relation_broken(state.relation(S3_ID).unwrap()),
    );
    let container = out.state.container(CONTAINER).unwrap();
    assert!(!container.is_running(PGBACKREST_SERVER));
    let (_, layer) = container.layers.last().unwrap();
    assert_eq!(
        layer.services[PGBACKREST_SERVER].startup, "disabled",
        "no replan starts it again"
    );
    assert_eq!(container.file_text(&layout.pgbackrest_pgpass()), None);
    assert!(!peer_unit(&out.state).contains_key(BACKUP_SERVER));
}

#[test]
fn a_unit_alone_serves_no_one() {
    let state = with_certificate(alone(), 0, &mut TestCa::new("ca"));
    let state = answer(state, "repository-info", ok("[]"));
    let state = answer(state, "stanza-create", ok(""));
    let out = world_alone().go(&state, event::update_status());
    let container = out.state.container(CONTAINER).unwrap();
    assert!(!container.is_running(PGBACKREST_SERVER));
    assert!(!config_file(&out.state).unwrap().contains("tls-server"));
    assert!(!peer_unit(&out.state).contains_key(BACKUP_SERVER));
}

/// The options of the `backup` command the action ran.
fn backup_options(out: &charm_testing::Output) -> Vec<String> {
    let executed = &out.state.container(CONTAINER).unwrap().executed;
    let backup = executed
        .iter()
        .find(|e| e.command.iter().any(|a| a == "backup"))
        .expect("a backup ran");
    backup.command.clone()
}

/// pgBackRest's console at `info` for a backup labelled `label`.
fn backup_console(label: &str) -> ExecOutput {
    ok(&format!(
        "2026-12-06 03:00:00.000 P00   INFO: backup command begin 2.45: --type=full\n\
         2026-12-06 03:00:05.000 P00   INFO: new backup label = {label}\n\
         2026-12-06 03:00:05.100 P00   INFO: backup command end: completed successfully\n"
    ))
}

fn one_backup(state: State) -> State {
    let state = answer(
        state,
        "info",
        ok(&info_with(&[("20261206-030000F", "full", 1796526000)])),
    );
    answer(state, "backup", backup_console("20261206-030000F"))
}

#[test]
fn a_replica_with_tls_takes_the_backup_from_its_standby() {
    let w = world();
    let state = one_backup(other_serves(serving(1), 0));
    let out = w.action(&state, "create-backup", serde_json::json!({}));
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["taken-from"],
        format!("{} (replica)", unit_name(1))
    );
    let options = backup_options(&out);
    for option in [
        "--backup-standby".to_string(),
        format!("--pg2-host={}", addr(0)),
        "--pg2-host-type=tls".into(),
    ] {
        assert!(options.contains(&option), "{option}: {options:?}");
    }
}

#[test]
fn a_replica_waits_for_the_primarys_server() {
    let w = world();
    let state = one_backup(serving(1));
    let out = w.action(&state, "create-backup", serde_json::json!({}));
    assert!(
        failure(&out).contains(&format!(
            "pgBackRest server of the primary's unit ({})",
            unit_name(0)
        )),
        "{}",
        failure(&out)
    );
    assert!(programs(&out.state).is_empty());
}

#[test]
fn the_primary_copies_from_a_standby_that_serves() {
    let w = world();
    let state = one_backup(other_serves(serving(0), 1));
    let out = w.action(&state, "create-backup", serde_json::json!({}));
    assert_eq!(out.action.failure, None);
    assert_eq!(
        out.action.results["taken-from"],
        format!("{} (replica)", unit_name(1))
    );
    assert!(backup_options(&out).contains(&format!("--pg2-host={}", addr(1))));

    // No standby serves: the primary alone.
    let state = one_backup(serving(0));
    let out = w.action(&state, "create-backup", serde_json::json!({}));
    assert_eq!(
        out.action.results["taken-from"],
        format!("{} (primary)", unit_name(0))
    );
    assert!(!backup_options(&out).iter().any(|o| o.starts_with("--pg2")));
}

#[test]
fn a_member_that_is_not_running_takes_no_backup() {
    let w = World::new(&[(0, "leader", "running"), (1, "replica", "stopped")]);
    let state = one_backup(other_serves(serving(1), 0));
    let out = w.action(&state, "create-backup", serde_json::json!({}));
    assert_eq!(
        failure(&out),
        "Unit cannot perform backups as its member is not running"
    );
}

#[test]
fn a_differential_needs_a_full_backup() {
    let w = world();
    let state = recorded(related(0, s3_relation(&[])));
    let state = answer(state, "info", ok(&info_with(&[])));
    let out = w.action(
        &state,
        "create-backup",
        serde_json::json!({"type": "differential"}),
    );
    assert_eq!(
        failure(&out),
        "Invalid backup type: differential. No previous full backup to reference."
    );
    assert_eq!(programs(&out.state), ["info"], "no backup attempted");
}

#[test]
fn create_backup_takes_a_backup_and_answers_its_id() {
    let w = world();
    let state = recorded(related(0, s3_relation(&[])));
    let state = answer(
        state,
        "info",
        ok(&info_with(&[("20261206-030000F", "full", 1796526000)])),
    );
    let state = answer(
        state,
        "info",
        ok(&info_with(&[
            ("20261206-030000F", "full", 1796526000),
            ("20261206-030000F_20261206-031000D", "diff", 1796526600),
        ])),
    );
    let state = answer(
        state,
        "backup",
        backup_console("20261206-030000F_20261206-031000D"),
    );
    let out = w.action(
        &state,
        "create-backup",
        serde_json::json!({"type": "differential"}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(out.action.results["backup-status"], "backup created");
    assert_eq!(
        out.action.results["backup-id"],
        pgbackrest::backup_id(1796526600)
    );
    let executed = &out.state.container(CONTAINER).unwrap().executed;
    assert_eq!(programs(&out.state), ["info", "backup", "info"]);
    assert_eq!(
        executed[1].command.last().map(String::as_str),
        Some("--type=diff")
    );
    assert!(executed[1].environment.contains_key("PGPASSWORD"));
}

#[test]
fn a_failed_backup_fails_the_action_with_pgbackrests_words() {
    let w = world();
    let state = recorded(related(0, s3_relation(&[])));
    let state = answer(state, "info", ok(&info_with(&[])));
    let state = answer(
        state,
        "backup",
        failing(
            82,
            "ERROR: [082]: WAL segment was not archived before the timeout",
        ),
    );
    let out = w.action(&state, "create-backup", serde_json::json!({}));
    assert_eq!(
        failure(&out),
        "Failed to backup PostgreSQL: ERROR: [082]: WAL segment was not archived before the timeout"
    );
}

#[test]
fn list_backups_answers_the_table() {
    let w = world();
    let state = recorded(related(1, s3_relation(&[])));
    let state = answer(
        state,
        "info",
        ok(&info_with(&[("20261206-030000F", "full", 1796526000)])),
    );
    let out = w.action(&state, "list-backups", serde_json::json!({}));
    assert_eq!(out.action.failure, None);
    let table = &out.action.results["backups"];
    assert!(table.starts_with("backup-id"), "{table}");
    assert!(
        table.contains(&pgbackrest::backup_id(1796526000)),
        "{table}"
    );
    assert!(table.contains("| full "), "{table}");
}

/// The leader of a one-unit cluster whose repository holds the stanza, with
/// one full backup listed by `info`.
fn alone() -> State {
    let mut state = initialised(unit(0, true), &[0]);
    let peers = peer_mut(&mut state);
    peers.local_app_data.insert(PRIMARY.into(), member(0));
    peers.local_unit_data.insert(STANZA.into(), stanza());
    let state = recorded(state.with_relation(s3_relation(&[])));
    answer(
        state,
        "info",
        ok(&info_with(&[("20261206-030000F", "full", 1796526000)])),
    )
}

fn world_alone() -> World {
    World::new(&[(0, "leader", "running")])
}

/// Programs the file moves and PostgreSQL's recovery to succeed.
fn restorable(state: State) -> State {
    let state = answer(state, "check", ok(""));
    let mut state = answer(state, "restore", ok(""));
    let container = state.containers.get_mut(CONTAINER).unwrap();
    *container = container.clone().with_file(
        &format!("{DATA_DIR}/patroni.dynamic.json"),
        br#"{"synchronous_mode_strict": true}"#,
    );
    for prefix in [
        vec!["mv".to_string()],
        vec!["rm".to_string()],
        pg_ctl(),
        psql(),
        vec![format!("{DEBIAN_BIN_DIR}/pg_isready")],
    ] {
        container.execs.push((prefix, ok("")));
    }
    // No PostgreSQL left running on the data directory once Patroni stops.
    let status = vec![
        format!("{DEBIAN_BIN_DIR}/pg_ctl"),
        "status".into(),
        "-D".into(),
        DATA_DIR.into(),
    ];
    container
        .execs
        .push((status, failing(3, "pg_ctl: no server running")));
    state
}

fn pg_ctl() -> Vec<String> {
    vec![format!("{DEBIAN_BIN_DIR}/pg_ctl")]
}

fn psql() -> Vec<String> {
    vec![format!("{DEBIAN_BIN_DIR}/psql")]
}

/// Every command the unit ran, by a word: pgBackRest's command (its `info` of
/// the whole repository is `repository-info`), `mv`, `rm`, `pg_ctl start`,
/// `pg_isready`, `psql` or `pg_ctl stop`.
fn programs(state: &State) -> Vec<String> {
    let executed = &state.container(CONTAINER).unwrap().executed;
    executed
        .iter()
        .map(|e| match e.command[0].as_str() {
            "pgbackrest" if e.command[2] == "info" => "repository-info".to_string(),
            "pgbackrest" => e.command[3].clone(),
            program if program.ends_with("/pg_ctl") => format!("pg_ctl {}", e.command[1]),
            program if program.ends_with("/psql") => "psql".to_string(),
            program if program.ends_with("/pg_isready") => "pg_isready".to_string(),
            program => program.to_string(),
        })
        .collect()
}

/// Where the first restore moves the data directory.
const ASIDE: &str = "/var/lib/postgresql/data/pgdata.before-restore-patroni-postgresql-k8s-gen1";

#[test]
fn restore_takes_exactly_one_valid_target() {
    let w = world_alone();
    let state = restorable(alone());
    for (params, expected) in [
        (serde_json::json!({}), "give backup-id"),
        (
            serde_json::json!({"backup-id": "2026-12-06T03:00:00Z", "restore-to-time": "latest"}),
            "not both",
        ),
        (
            serde_json::json!({"restore-to-time": "yesterday"}),
            "is not a time",
        ),
    ] {
        let out = w.action(&state, "restore", params);
        assert!(failure(&out).contains(expected), "{}", failure(&out));
        assert!(programs(&out.state).is_empty(), "nothing ran");
        assert!(!peer_app(&out.state).contains_key(RESTORE_FAILED));
    }
}

#[test]
fn restore_runs_on_the_leader_only() {
    let w = world_alone();
    let mut state = restorable(alone());
    state.leader = false;
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert_eq!(failure(&out), "The action can be run only on leader unit");
    assert!(programs(&out.state).is_empty());
}

#[test]
fn restore_needs_the_repository() {
    let w = world_alone();
    let bare = initialised(unit(0, true), &[0]);
    let out = w.action(
        &bare,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert_eq!(
        failure(&out),
        "Relation with s3-integrator charm missing, cannot create/restore backup."
    );
    let unrecorded = initialised(unit(0, true), &[0]).with_relation(s3_relation(&[]));
    let out = w.action(
        &unrecorded,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert_eq!(failure(&out), "Stanza was not initialised");
    assert!(programs(&out.state).is_empty());
}

#[test]
fn restore_refuses_an_unknown_backup() {
    let w = world_alone();
    let out = w.action(
        &restorable(alone()),
        "restore",
        serde_json::json!({"backup-id": "2020-01-01T00:00:00Z"}),
    );
    assert_eq!(
        failure(&out),
        "backup 2020-01-01T00:00:00Z is not in the repository (list-backups lists the backups)"
    );
    assert_eq!(programs(&out.state), ["info"], "nothing moved or restored");
}

/// The id of the first restore's request: the scope the restored cluster
/// starts as.
const FIRST_REQUEST: &str = "patroni-postgresql-k8s-gen1";

/// The peer application bag's request for the first restore, of the latest.
fn request_latest() -> String {
    serde_json::json!({
        "id": FIRST_REQUEST, "target": "latest", "stanza": stanza(), "own": true,
    })
    .to_string()
}

/// Unit `n` of the two-unit cluster of `related`, restorable, with the
/// restore of the latest scheduled and unit 1's word that it stopped when
/// `stopped`.
fn scheduled(n: u32, stopped: bool) -> State {
    let mut state = restorable(two_units(n));
    let peers = peer_mut(&mut state);
    peers
        .local_app_data
        .insert(RESTORE_REQUEST.into(), request_latest());
    if stopped {
        let bag = match n {
            1 => &mut peers.local_unit_data,
            _ => peers.remote_units.get_mut(&unit_name(1)).unwrap(),
        };
        bag.insert(RESTORE_STOPPED.into(), FIRST_REQUEST.into());
    }
    state
}

/// The state without the first `count` answers programmed for pgBackRest's
/// `what`.
fn without_answers(mut state: State, what: &str, count: usize) -> State {
    let prefix = command(what);
    let container = state.containers.get_mut(CONTAINER).unwrap();
    let mut left = count;
    container.execs.retain(|(p, _)| {
        let drop = *p == prefix && left > 0;
        left -= usize::from(drop);
        !drop
    });
    state
}

/// peer-relation-changed, from another unit of the relation.
fn peers_changed(state: &State) -> charm::Event {
    let peers = state.relation(PEER_ID).unwrap();
    let remote = peers.remote_units.keys().next().cloned();
    event::relation_changed(peers, remote.as_deref())
}

/// Unit `n` of the two-unit cluster of `related`, the repository ready
/// (the primary's report recorded), one full backup listed by `info`.
fn two_units(n: u32) -> State {
    let mut state = recorded(related(n, s3_relation(&[])));
    if n == 0 {
        peer_mut(&mut state)
            .local_unit_data
            .insert(STANZA.into(), stanza());
    }
    let listed = info_with(&[("20261206-030000F", "full", 1796526000)]);
    let state = answer(state, "repository-info", ok(&listed));
    answer(state, "info", ok(&listed))
}

#[test]
fn restore_on_several_units_is_scheduled() {
    let w = world();
    let state = restorable(two_units(0));
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(out.action.results["restore-status"], "scheduled");
    assert_eq!(out.action.results["waiting-for"], unit_name(1));
    assert_eq!(
        programs(&out.state),
        ["info"],
        "nothing stopped or moved yet"
    );
    let request: serde_json::Value =
        serde_json::from_str(&peer_app(&out.state)[RESTORE_REQUEST]).unwrap();
    assert_eq!(request["id"], FIRST_REQUEST);
    assert_eq!(request["target"], "latest");
    let next = w.go(&out.state, peers_changed(&out.state));
    assert_eq!(
        next.state.unit_status,
        Status::Maintenance(format!(
            "restoring to the end of the archived WAL scheduled: waiting for {} to stop",
            unit_name(1)
        ))
    );
    // A second request waits for the first.
    let again = w.action(
        &out.state,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert!(
        failure(&again).starts_with("a restore is scheduled already"),
        "{}",
        failure(&again)
    );
}

#[test]
fn the_other_units_stop_their_members_and_move_their_data_aside() {
    let w = world();
    let mut state = with_patroni_running(scheduled(1, false));
    state.leader = false;
    let out = w.go(&state, peers_changed(&state));
    let executed = &out.state.container(CONTAINER).unwrap().executed;
    let aside = format!("{DATA_DIR}.before-restore-{FIRST_REQUEST}");
    assert_eq!(executed[1].command, ["mv", DATA_DIR, aside.as_str()]);
    assert_eq!(
        peer_unit(&out.state)
            .get(RESTORE_STOPPED)
            .map(String::as_str),
        Some(FIRST_REQUEST)
    );
    assert!(
        !out.state
            .container(CONTAINER)
            .unwrap()
            .running
            .contains_key(SERVICE),
        "Patroni stopped, and not started again while the restore is scheduled"
    );
    assert!(matches!(
        &out.state.unit_status,
        Status::Maintenance(m) if m.starts_with("stopped for the restore")
    ));
    // Once the restore is done with, the unit forgets its word.
    let mut after = out.state.clone();
    peer_mut(&mut after).local_app_data.remove(RESTORE_REQUEST);
    let out = w.go(&after, peers_changed(&after));
    assert!(!peer_unit(&out.state).contains_key(RESTORE_STOPPED));
}

#[test]
fn the_leader_waits_for_every_other_unit_then_restores() {
    let w = world();
    let waiting = scheduled(0, false);
    let out = w.go(&waiting, peers_changed(&waiting));
    assert!(
        !programs(&out.state).iter().any(|p| p == "restore"),
        "{:?}",
        programs(&out.state)
    );
    assert!(peer_app(&out.state).contains_key(RESTORE_REQUEST));
    let ready = scheduled(0, true);
    let out = w.go(&ready, peers_changed(&ready));
    assert_eq!(
        programs(&out.state),
        [
            "pg_ctl status",
            "mv",
            "restore",
            "pg_ctl start",
            "pg_isready",
            "psql",
            "pg_ctl stop"
        ]
    );
    let app = peer_app(&out.state);
    assert_eq!(app.get(GENERATION).map(String::as_str), Some("1"));
    assert_eq!(
        app.get(ENDPOINTS).cloned(),
        Some(serde_json::to_string(&[addr(0)]).unwrap()),
        "the other unit joins the restored cluster when the leader admits it"
    );
    for gone in [RESTORE_REQUEST, RESTORE_FAILED] {
        assert!(!app.contains_key(gone), "{gone}");
    }
    assert!(logged(&out.state, "the scheduled restore finished"));
}

#[test]
fn a_scheduled_restore_that_fails_is_retried_by_the_action_at_once() {
    let w = world();
    let ready = answer(
        scheduled(0, true),
        "restore",
        failing(40, "ERROR: [040]: unable to find backup"),
    );
    // Answers come in turn: the succeeding one programmed first goes.
    let ready = without_answers(ready, "restore", 1);
    let out = w.go(&ready, peers_changed(&ready));
    let app = peer_app(&out.state);
    assert!(!app.contains_key(RESTORE_REQUEST), "done with");
    assert!(app[RESTORE_FAILED].contains("unable to find backup"));
    // The other unit keeps its word while the failure stands; the action,
    // run again, restores at once.
    let retry = restorable(without_answers(out.state.clone(), "restore", usize::MAX));
    let out = w.action(
        &retry,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(out.action.results["restore-status"], "restored");
}

#[test]
fn a_running_server_is_stopped_at_once_before_the_data_moves() {
    // PostgreSQL runs on the data directory: it is stopped in immediate
    // mode before Patroni, and checked again after.
    let w = world_alone();
    let mut state = restorable(alone());
    let container = state.containers.get_mut(CONTAINER).unwrap();
    let status = vec![
        format!("{DEBIAN_BIN_DIR}/pg_ctl"),
        "status".into(),
        "-D".into(),
        DATA_DIR.into(),
    ];
    // Running at first (its answer taken once), then stopped.
    container
        .execs
        .insert(0, (status, ok("pg_ctl: server is running")));
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"backup-id": pgbackrest::backup_id(1796526000)}),
    );
    assert_eq!(out.action.failure, None);
    let programs = programs(&out.state);
    assert_eq!(
        programs[..5],
        [
            "info",
            "pg_ctl status",
            "pg_ctl stop",
            "pg_ctl status",
            "mv"
        ],
        "{programs:?}"
    );
    let executed = &out.state.container(CONTAINER).unwrap().executed;
    assert_eq!(executed[2].command[4..], ["-m", "immediate", "-w"]);
}

#[test]
fn restoring_a_backup_starts_a_new_cluster_generation() {
    let w = world_alone();
    let id = pgbackrest::backup_id(1796526000);
    let out = w.action(
        &restorable(alone()),
        "restore",
        serde_json::json!({"backup-id": id}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(out.action.results["restore-status"], "restored");
    assert_eq!(out.action.results["previous-data"], ASIDE);
    assert!(
        logged(&out.state, "restore took"),
        "each phase's time logged"
    );
    assert!(
        logged(&out.state, &format!("restoring backup {id}")),
        "said while it runs (the status too)"
    );
    assert_eq!(
        programs(&out.state),
        [
            "info",
            "pg_ctl status",
            "mv",
            "restore",
            "pg_ctl start",
            "pg_isready",
            "psql",
            "pg_ctl stop"
        ]
    );
    let executed = &out.state.container(CONTAINER).unwrap().executed;
    assert_eq!(executed[2].command, ["mv", DATA_DIR, ASIDE]);
    // The system users get the passwords the charm holds, as SCRAM
    // verifiers on psql's standard input, logged in by peer authentication
    // with no statement logged; no password on any command line.
    let start = executed[4].command.join(" ");
    assert!(
        start.contains("hba_file=") && start.contains("log_statement=none"),
        "{start}"
    );
    let sql = String::from_utf8(executed[6].stdin.clone()).unwrap();
    // Not waiting on the synchronous standbys the backup's configuration may
    // name, which do not run.
    assert!(sql.starts_with("SET synchronous_commit = local;"), "{sql}");
    for user in ["operator", "replication", "rewind", "monitoring"] {
        assert!(
            sql.contains(&format!(
                "ALTER ROLE \"{user}\" PASSWORD 'SCRAM-SHA-256$4096:"
            )),
            "{sql}"
        );
        assert!(!sql.contains(&format!("{user}-pw")), "no password in clear");
    }
    for e in executed {
        assert!(
            !e.command.iter().any(|a| a.contains("-pw")),
            "{:?}",
            e.command
        );
    }
    let files = &out.state.container(CONTAINER).unwrap().files;
    assert!(
        !files.keys().any(|f| f.contains("recovery-hba")),
        "the recovery's access files removed"
    );
    assert_eq!(
        executed[3].command[4..],
        [
            "--set=20261206-030000F",
            "--type=immediate",
            "--target-action=promote"
        ]
    );
    assert_eq!(executed[4].user.as_deref(), Some("postgres"));
    assert!(executed[4]
        .command
        .iter()
        .any(|a| a.contains("hot_standby=off")));
    let app = peer_app(&out.state);
    assert_eq!(app.get(GENERATION).map(String::as_str), Some("1"));
    assert_eq!(
        app.get(ENDPOINTS).cloned(),
        Some(serde_json::to_string(&[addr(0)]).unwrap())
    );
    for gone in [CLUSTER_INITIALISED, PRIMARY, RESTORE_FAILED, RESTORE_ASIDE] {
        assert!(!app.contains_key(gone), "{gone}");
    }
    assert_eq!(
        patroni_doc(&out.state)["scope"],
        "patroni-postgresql-k8s-gen1",
        "Patroni finds the new scope empty and takes the restored data"
    );
    assert!(out
        .state
        .container(CONTAINER)
        .unwrap()
        .running
        .contains_key(SERVICE));
    assert_eq!(
        out.state.unit_status,
        Status::Maintenance("restored: starting cluster patroni-postgresql-k8s-gen1".into())
    );
}

/// The state with PostgreSQL's archive status: segment 2 archived, and 3
/// waiting to be when `pending`.
fn with_archive_status(mut state: State, pending: bool) -> State {
    let status = format!("{DATA_DIR}/pg_wal/archive_status");
    let container = state.containers.get_mut(CONTAINER).unwrap();
    let mut c = container
        .clone()
        .with_file(&format!("{status}/000000010000000000000002.done"), b"");
    if pending {
        c = c.with_file(&format!("{status}/000000010000000000000003.ready"), b"");
    }
    *container = c;
    state
}

fn with_archive_pending(state: State) -> State {
    with_archive_status(state, true)
}

#[test]
fn a_running_cluster_is_archived_up_to_date_before_a_restore() {
    let w = world_alone();
    let id = pgbackrest::backup_id(1796526000);
    let out = w.action(
        &with_patroni_running(with_archive_pending(restorable(alone()))),
        "restore",
        serde_json::json!({"backup-id": id}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(
        programs(&out.state)[..4],
        ["info", "check", "pg_ctl status", "mv"]
    );

    // A check that fails (answered before the one `restorable` programs).
    let timeout = "ERROR: [082]: WAL segment 000000010000000000000003 was not archived before \
                   the 60000ms timeout";
    let failing_check = answer(alone(), "check", failing(82, timeout));
    let out = w.action(
        &with_patroni_running(with_archive_pending(restorable(failing_check))),
        "restore",
        serde_json::json!({"backup-id": id}),
    );
    assert_eq!(out.action.results["restore-status"], "restored");
    assert!(logged(&out.state, "was not archived"), "the check's words");
    assert_eq!(
        programs(&out.state)[..5],
        ["info", "check", "pg_ctl status", "mv", "restore"]
    );
}

#[test]
fn a_backup_restored_with_nothing_waiting_to_be_archived_skips_the_check() {
    let w = world_alone();
    let id = pgbackrest::backup_id(1796526000);
    let archived = || with_patroni_running(with_archive_status(restorable(alone()), false));
    let out = w.action(&archived(), "restore", serde_json::json!({"backup-id": id}));
    assert_eq!(out.action.failure, None);
    assert_eq!(
        programs(&out.state)[..4],
        ["info", "pg_ctl status", "mv", "restore"]
    );

    // A time needs the WAL up to it: checked whatever waits.
    let out = w.action(
        &archived(),
        "restore",
        serde_json::json!({"restore-to-time": "2026-12-06 03:30:00+00"}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(programs(&out.state)[..2], ["info", "check"]);
}

/// The state with Patroni's service in the plan and running.
fn with_patroni_running(mut state: State) -> State {
    let container = state.containers.get_mut(CONTAINER).unwrap();
    let patroni = pebble_api::Service {
        startup: "enabled".into(),
        ..pebble_api::Service::default()
    };
    let mut layer = pebble_api::Layer::default();
    layer.services.insert(SERVICE.into(), patroni.clone());
    container.layers.push(("postgresql".into(), layer));
    container.running.insert(SERVICE.into(), patroni);
    state
}

#[test]
fn restoring_to_a_time_or_the_latest_gives_pgbackrest_the_target() {
    let w = world_alone();
    for (asked, options) in [
        (
            "2026-12-06 03:30:00+00",
            vec![
                "--type=time",
                "--target=2026-12-06 03:30:00+00",
                "--target-action=promote",
            ],
        ),
        ("latest", vec!["--type=default"]),
    ] {
        let out = w.action(
            &restorable(alone()),
            "restore",
            serde_json::json!({"restore-to-time": asked}),
        );
        assert_eq!(out.action.failure, None);
        let executed = &out.state.container(CONTAINER).unwrap().executed;
        assert_eq!(executed[3].command[4..], options[..], "{asked}");
    }
}

#[test]
fn a_failed_restore_blocks_keeps_the_data_and_is_retried() {
    let w = world_alone();
    let state = answer(
        alone(),
        "restore",
        failing(
            75,
            "2026-12-06 03:31:00.123 P00  ERROR: [075]: unable to find backup set with stop \
             time less than '2026-12-06'",
        ),
    );
    let state = restorable(state);
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"restore-to-time": "2026-12-06 03:30:00"}),
    );
    let message = format!(
        "restore failed: pgBackRest's restore failed: ERROR: [075]: unable to find backup set \
         with stop time less than '2026-12-06'; the data from before is kept at {ASIDE}: run \
         the restore action again"
    );
    assert_eq!(failure(&out), message);
    assert_eq!(out.state.unit_status, Status::Blocked(message.clone()));
    assert_eq!(
        programs(&out.state),
        ["info", "pg_ctl status", "mv", "restore"]
    );
    let app = peer_app(&out.state);
    assert_eq!(app.get(RESTORE_ASIDE).map(String::as_str), Some(ASIDE));
    assert_eq!(app.get(GENERATION), None, "no new cluster yet");

    // Until a restore succeeds, nothing starts Patroni (whose member is
    // gone), and the unit says why.
    w.set_members(&[]);
    let state = w.go(&out.state, event::update_status()).state;
    assert_eq!(state.unit_status, Status::Blocked(message));
    let container = state.container(CONTAINER).unwrap();
    assert!(!container.running.contains_key(SERVICE));

    // Run again: the failed restore's files go, the set-aside data stays.
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"restore-to-time": "2026-12-06 03:30:00"}),
    );
    assert_eq!(out.action.failure, None);
    assert_eq!(out.action.results["previous-data"], ASIDE);
    let executed = &out.state.container(CONTAINER).unwrap().executed;
    let retry: Vec<&Vec<String>> = executed[4..].iter().map(|e| &e.command).collect();
    assert_eq!(
        retry[2],
        &["rm", "-rf", DATA_DIR],
        "not mv: the data stays aside"
    );
    let app = peer_app(&out.state);
    assert!(!app.contains_key(RESTORE_FAILED));
    assert!(!app.contains_key(RESTORE_ASIDE));
    assert!(out
        .state
        .container(CONTAINER)
        .unwrap()
        .running
        .contains_key(SERVICE));
}

#[test]
fn a_failed_recovery_blocks_with_postgresqls_words() {
    let w = world_alone();
    let mut state = answer(alone(), "restore", ok(""));
    let log = "/var/lib/postgresql/data/restore-recovery.log";
    let container = state.containers.get_mut(CONTAINER).unwrap();
    container.execs.push((vec!["mv".into()], ok("")));
    container
        .execs
        .push((pg_ctl(), failing(1, "pg_ctl: could not start server")));
    let with_log = container.clone().with_file(
        log,
        b"LOG:  starting point-in-time recovery\n\
          FATAL:  recovery ended before configured recovery target was reached\n",
    );
    *container = with_log;
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert!(
        failure(&out).starts_with(
            "restore failed: PostgreSQL's recovery failed: recovery ended before configured \
             recovery target was reached"
        ),
        "{}",
        failure(&out)
    );
    assert!(peer_app(&out.state).contains_key(RESTORE_FAILED));

    // Started, then stopped before it promoted (`recovery.signal` still
    // there): the same.
    let mut state = answer(alone(), "restore", ok(""));
    let container = state.containers.get_mut(CONTAINER).unwrap();
    container.execs.push((vec!["mv".into()], ok("")));
    container.execs.push((pg_ctl(), ok("")));
    let mut status = pg_ctl();
    status.push("status".into());
    container
        .execs
        .push((status, failing(3, "pg_ctl: no server running")));
    *container = container
        .clone()
        .with_file(&format!("{DATA_DIR}/recovery.signal"), b"")
        .with_file(
            log,
            b"FATAL:  recovery ended before configured recovery target was reached\n",
        );
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert!(
        failure(&out).starts_with(
            "restore failed: PostgreSQL's recovery failed: recovery ended before configured \
             recovery target was reached"
        ),
        "{}",
        failure(&out)
    );
    assert_eq!(
        programs(&out.state),
        [
            "info",
            "pg_ctl status",
            "mv",
            "restore",
            "pg_ctl start",
            "pg_ctl status"
        ]
    );
}

#[test]
fn the_restored_cluster_is_initialised_before_patroni_records_its_settings() {
    let w = world_alone();
    let id = pgbackrest::backup_id(1796526000);
    // The primary checks the repository again: still this cluster's.
    let state = answer(
        restorable(alone()),
        "repository-info",
        ok(&info(&[&stanza()], FIRST_CLUSTER)),
    );
    let out = w.action(&state, "restore", serde_json::json!({"backup-id": id}));
    assert!(!peer_app(&out.state).contains_key(CLUSTER_INITIALISED));
    // Patroni promoted the restored data; its settings reach the DCS one
    // loop later, and its callback wakes the charm before that.
    w.patroni.0.borrow_mut().no_config = true;
    let state = w.go(&out.state, event::update_status()).state;
    assert!(peer_app(&state).contains_key(CLUSTER_INITIALISED));
    assert_eq!(state.unit_status, Status::Active("Primary".into()));
    assert!(logged(
        &state,
        "the cluster's settings are not in the DCS yet"
    ));
    assert_eq!(
        peer_app(&state).get(STANZA).map(String::as_str),
        Some(stanza().as_str()),
        "WAL still archived to the stanza"
    );
    let before = w.patroni.cluster_state().patches.len();
    w.patroni.0.borrow_mut().no_config = false;
    w.go(&state, event::update_status());
    assert_eq!(
        w.patroni.cluster_state().patches.len(),
        before + 1,
        "a later hook sends them"
    );
}

#[test]
fn a_data_directory_that_cannot_move_leaves_the_cluster_as_it_was() {
    let w = world_alone();
    let mut state = answer(alone(), "restore", ok(""));
    let container = state.containers.get_mut(CONTAINER).unwrap();
    container.execs.push((
        vec!["mv".into()],
        ExecOutput {
            exit_code: 1,
            stdout: Vec::new(),
            stderr: b"mv: cannot move: Device or resource busy\n".to_vec(),
        },
    ));
    let mut status = pg_ctl();
    status.push("status".into());
    container
        .execs
        .push((status, failing(3, "pg_ctl: no server running")));
    let out = w.action(
        &state,
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert_eq!(
        failure(&out),
        format!(
            "restore not started: cannot move {DATA_DIR} to {ASIDE}: mv: cannot move: Device or \
             resource busy"
        )
    );
    assert_eq!(
        programs(&out.state),
        ["info", "pg_ctl status", "mv"],
        "no restore"
    );
    let app = peer_app(&out.state);
    assert!(!app.contains_key(RESTORE_FAILED) && !app.contains_key(RESTORE_ASIDE));
    assert_eq!(app.get(GENERATION), None);
    assert!(out
        .state
        .container(CONTAINER)
        .unwrap()
        .running
        .contains_key(SERVICE));
}

/// The stanza of the cluster whose repository a new application restores.
const OLD: &str = "test.patroni-old";

/// Programs pgBackRest's answer to `what` for [`OLD`]'s stanza.
fn answer_for_old(mut state: State, what: &str, output: ExecOutput) -> State {
    let config = Layout::default().pgbackrest_config();
    let prefix = pgbackrest::command(&config, OLD, what, &[]);
    let container = state.containers.get_mut(CONTAINER).unwrap();
    container.execs.push((prefix, output));
    state
}

/// This application's leader, alone and new, related to a repository that
/// holds another cluster's backups: blocked, as its primary found it, with
/// `repository` as `info` of the whole repository.
fn new_application(repository: &str) -> State {
    let mut state = initialised(unit(0, true), &[0]);
    let peers = peer_mut(&mut state);
    peers.local_app_data.insert(PRIMARY.into(), member(0));
    peers
        .local_app_data
        .insert(S3_PROBLEM.into(), ANOTHER_CLUSTER.into());
    let state = state.with_relation(s3_relation(&[]));
    answer(state, "repository-info", ok(repository))
}

#[test]
fn a_new_application_restores_another_clusters_backup() {
    let w = world_alone();
    let id = pgbackrest::backup_id(1796526000);
    let listing = info_with(&[("20261206-030000F", "full", 1796526000)]).replace(&stanza(), OLD);
    let state = new_application(&listing);
    let state = answer_for_old(state, "info", ok(&listing));
    let state = answer_for_old(state, "restore", ok(""));
    let state = restorable(state);
    let out = w.action(&state, "restore", serde_json::json!({"backup-id": id}));
    assert_eq!(out.action.failure, None, "{:?}", out.action);
    assert_eq!(out.action.results["restored-from"], OLD);
    // Read from the other cluster's stanza into this one's data directory;
    // nothing written to the repository (no check, no stanza of its own).
    assert_eq!(
        programs(&out.state),
        [
            "repository-info",
            "info",
            "pg_ctl status",
            "mv",
            "restore",
            "pg_ctl start",
            "pg_isready",
            "psql",
            "pg_ctl stop"
        ]
    );
    let executed = &out.state.container(CONTAINER).unwrap().executed;
    let restore = &executed[4].command;
    assert!(restore.contains(&format!("--stanza={OLD}")), "{restore:?}");
    assert!(
        restore.contains(&format!("--pg1-path={DATA_DIR}")),
        "{restore:?}"
    );
    assert!(logged(
        &out.state,
        "not backed up until it is related to an S3 path"
    ));
    assert_eq!(
        peer_app(&out.state).get(GENERATION).map(String::as_str),
        Some("1")
    );

    // Its list-backups shows the other cluster's backups, naming it.
    let listed = answer_for_old(new_application(&listing), "info", ok(&listing));
    let out = w.action(&listed, "list-backups", serde_json::json!({}));
    assert_eq!(out.action.failure, None, "{:?}", out.action);
    assert_eq!(out.action.results["stanza"], OLD);
    assert!(
        out.action.results["backups"].contains(&id),
        "{:?}",
        out.action
    );
}

#[test]
fn a_new_application_needs_one_clusters_repository() {
    let w = world_alone();
    let several = info(&[OLD, "test.patroni-other"], FIRST_CLUSTER);
    let out = w.action(
        &new_application(&several),
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert!(
        failure(&out).contains("several clusters"),
        "{}",
        failure(&out)
    );
    let out = w.action(
        &new_application("[]"),
        "restore",
        serde_json::json!({"restore-to-time": "latest"}),
    );
    assert_eq!(
        failure(&out),
        "the S3 repository holds no backups to restore"
    );
    assert_eq!(programs(&out.state), ["repository-info"]);
}
