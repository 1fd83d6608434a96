//! The example charm on the in-memory model: every part of the SDK, and the
//! model's own rules (permissions, rollback, deferral).

#![allow(clippy::unwrap_used)]

use charm::backend::{JsonMap, Port};
use charm::secret::SecretRef;
use charm::{
    BagChanges, Charm, Event, Handled, Hook, LogLevel, Relation, SecretContent, SecretOwner, Status,
};
use charm_testing::{
    event, run, run_action, CharmState, ContainerState, Owner, RelationState, SecretState,
    ServiceOp, State,
};
use example_charm::*;
use pebble_api::CheckInfo;
use serde_json::json;

fn config(port: i64) -> JsonMap {
    json!({"port": port, "greeting": "hello"})
        .as_object()
        .unwrap()
        .clone()
}

/// The charm directory (metadata.yaml, config.yaml, actions.yaml).
fn charm_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charm")
}

/// Unit 0 as Juju deploys it: default config, its peer relation, the container up.
fn base(leader: bool) -> State {
    State::from_charm_dir(charm_dir(), "example/0")
        .unwrap()
        .leader(leader)
}

fn db_relation() -> RelationState {
    RelationState::new(DB, 4, "client")
        .remote_app_data(&[("database", "client_db")])
        .remote_unit("client/0", &[])
}

fn with_admin_secret(state: State, password: &str) -> State {
    let out = run(&mut ExampleCharm, &state.leader(true), Event::LeaderElected).unwrap();
    let mut s = out.state;
    s.secrets[0]
        .revisions
        .insert(1, SecretContent::new().with("password", password));
    s
}

#[test]
fn install_sets_maintenance_and_logs() {
    let out = run(&mut ExampleCharm, &base(false), Event::Install).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Maintenance("installing".into())
    );
    assert_eq!(
        out.state.logs,
        vec![(LogLevel::Info, "installed".to_string())]
    );
    assert_eq!(
        out.calls.lines(),
        [
            "status-set --application=false maintenance -- installing",
            "juju-log --log-level INFO -- installed"
        ]
    );
}

#[test]
fn leader_creates_the_admin_secret_once_and_publishes_it() {
    let out = run(&mut ExampleCharm, &base(true), Event::LeaderElected).unwrap();
    let s = &out.state;
    assert_eq!(s.secrets.len(), 1);
    let secret = &s.secrets[0];
    assert_eq!(secret.owner, Owner::App);
    assert_eq!(secret.owner_label.as_deref(), Some(ADMIN_LABEL));
    let pw = secret.latest_content().unwrap().get("password").unwrap();
    assert_eq!(pw.len(), 24);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        s.relation(1).unwrap().local_app_data[ADMIN_KEY],
        secret.id.to_string()
    );
    assert_eq!(s.app_status, Status::Active(String::new()));
    assert!(
        !out.calls.lines().iter().any(|l| l.contains(pw)),
        "no password on any command line"
    );

    let again = run(&mut ExampleCharm, s, Event::LeaderElected).unwrap();
    assert_eq!(
        again.state.secrets, s.secrets,
        "no second secret, no new revision"
    );
    assert!(
        !again.calls.by_tool().contains_key("relation-set"),
        "unchanged data is not rewritten"
    );
}

#[test]
fn config_changed_defers_until_the_container_is_up_then_replays_first() {
    let state = base(false).with_container(CONTAINER, ContainerState::unreachable());
    let out = run(&mut ExampleCharm, &state, Event::ConfigChanged).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Waiting("waiting for the web container".into())
    );
    assert_eq!(out.state.deferred, vec![Event::ConfigChanged]);

    let again = run(&mut ExampleCharm, &out.state, Event::UpdateStatus).unwrap();
    assert_eq!(
        again.state.deferred,
        vec![Event::ConfigChanged],
        "still deferred, queued once"
    );

    let mut up = again.state.clone();
    up.containers
        .insert(CONTAINER.into(), ContainerState::ready());
    let out = run(&mut ExampleCharm, &up, event::pebble_ready(CONTAINER)).unwrap();
    assert!(out.state.deferred.is_empty());
    let web = out.state.container(CONTAINER).unwrap();
    assert_eq!(web.file_text(INDEX).unwrap(), "<h1>hello</h1>\n");
    assert_eq!(
        web.ops,
        vec![ServiceOp::Start(SERVICE.into())],
        "replayed config-changed starts it, pebble-ready changes nothing"
    );
    assert_eq!(
        web.current_plan().services[SERVICE].command,
        "python3 -m http.server 8080 --bind 192.0.2.10 --directory /srv"
    );
    assert!(out.state.opened_ports.contains(&Port::tcp(8080)));
    assert_eq!(out.state.workload_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        out.state.unit_status,
        Status::Active("serving on :8080".into())
    );
    let first_status_set = out
        .calls
        .lines()
        .iter()
        .position(|l| l.starts_with("status-set"))
        .unwrap();
    assert!(out.calls.lines()[..first_status_set]
        .iter()
        .any(|l| l.starts_with("config-get")));
}

#[test]
fn invalid_config_blocks_and_applies_nothing() {
    let state = base(false).with_config(config(80));
    let out = run(&mut ExampleCharm, &state, Event::ConfigChanged).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Blocked("invalid config: port must be 1024-65535, got 80".into())
    );
    assert!(out.state.opened_ports.is_empty());
    assert!(out.state.container(CONTAINER).unwrap().files.is_empty());
    assert!(out.state.container(CONTAINER).unwrap().layers.is_empty());
}

#[test]
fn a_port_change_restarts_the_service_and_moves_the_port() {
    let first = run(&mut ExampleCharm, &base(false), Event::ConfigChanged)
        .unwrap()
        .state;
    let moved = first.with_config(config(9090));
    let out = run(&mut ExampleCharm, &moved, Event::ConfigChanged).unwrap();
    assert_eq!(
        out.state.opened_ports.iter().collect::<Vec<_>>(),
        [&Port::tcp(9090)]
    );
    let ops = &out.state.container(CONTAINER).unwrap().ops;
    assert_eq!(ops.last(), Some(&ServiceOp::Restart(SERVICE.into())));
}

#[test]
fn the_admin_password_file_is_private() {
    let state = with_admin_secret(base(false), "pw-one");
    let out = run(
        &mut ExampleCharm,
        &state.leader(false),
        Event::ConfigChanged,
    )
    .unwrap();
    let f = &out.state.container(CONTAINER).unwrap().files[ADMIN_FILE];
    assert_eq!(
        (f.content.as_slice(), f.permissions),
        (b"pw-one".as_slice(), 0o600)
    );
}

#[test]
fn peers_share_their_address() {
    let mut state = base(false);
    state.relations[0] = state.relations[0].clone().remote_unit("example/1", &[]);
    let r = state.relations[0].clone();
    let out = run(
        &mut ExampleCharm,
        &state,
        event::relation_joined(&r, "example/1"),
    )
    .unwrap();
    assert_eq!(
        out.state.relations[0].local_unit_data["address"],
        "192.0.2.10"
    );
}

#[test]
fn the_leader_hands_credentials_in_a_granted_secret() {
    let state = base(true).with_relation(db_relation());
    let r = state.relation(4).unwrap().clone();
    let out = run(&mut ExampleCharm, &state, event::relation_changed(&r, None)).unwrap();
    let s = &out.state;
    let secret = s.secret_by_label(&user_secret_label(4)).unwrap();
    assert_eq!(
        secret.latest_content().unwrap().get("username"),
        Some("relation-4")
    );
    assert!(secret.grants.contains(&(4, None)));
    let app = &s.relation(4).unwrap().local_app_data;
    assert_eq!(app["secret-user"], secret.id.to_string());
    assert_eq!(app["endpoints"], "192.0.2.10:8080");
    assert_eq!(app["database"], "client_db");
    assert!(!app.contains_key("password"));
    assert!(out.calls.count() <= 12, "{:#?}", out.calls.lines());

    let again = run(
        &mut ExampleCharm,
        s,
        event::relation_changed(&r, Some("client/0")),
    )
    .unwrap();
    assert_eq!(again.state.secrets.len(), 1, "credentials are created once");
}

#[test]
fn credentials_wait_for_leader_database_and_workload() {
    let follower = base(false).with_relation(db_relation());
    let r = follower.relation(4).unwrap().clone();
    let ev = event::relation_changed(&r, None);
    let out = run(&mut ExampleCharm, &follower, ev.clone()).unwrap();
    assert!(out.state.secrets.is_empty());
    assert_eq!(out.calls.lines(), ["is-leader --format=json"]);

    let no_db = base(true).with_relation(RelationState::new(DB, 4, "client"));
    let out = run(&mut ExampleCharm, &no_db, ev.clone()).unwrap();
    assert!(out.state.secrets.is_empty() && out.state.deferred.is_empty());

    let down = base(true)
        .with_relation(db_relation())
        .with_container(CONTAINER, ContainerState::unreachable());
    let out = run(&mut ExampleCharm, &down, ev.clone()).unwrap();
    assert!(out.state.secrets.is_empty());
    assert_eq!(out.state.deferred, vec![ev]);
}

#[test]
fn relation_broken_removes_credentials_unless_this_unit_departs() {
    let state = base(true).with_relation(db_relation());
    let r = state.relation(4).unwrap().clone();
    let provided = run(&mut ExampleCharm, &state, event::relation_changed(&r, None))
        .unwrap()
        .state;

    let departed = run(
        &mut ExampleCharm,
        &provided,
        event::relation_departed(&r, "client/0", "example/0"),
    )
    .unwrap();
    assert_eq!(
        departed.state.relation(1).unwrap().local_unit_data["departing-db-4"],
        "true"
    );
    let kept = run(
        &mut ExampleCharm,
        &departed.state,
        event::relation_broken(&r),
    )
    .unwrap();
    assert_eq!(
        kept.state.secrets.len(),
        1,
        "the departing leader leaves cleanup to the next one"
    );

    let other_left = run(
        &mut ExampleCharm,
        &provided,
        event::relation_departed(&r, "client/0", "client/0"),
    )
    .unwrap();
    assert!(!other_left
        .state
        .relation(1)
        .unwrap()
        .local_unit_data
        .contains_key("departing-db-4"));
    let broken = run(
        &mut ExampleCharm,
        &other_left.state,
        event::relation_broken(&r),
    )
    .unwrap();
    assert!(broken.state.secrets.is_empty());
    assert!(broken
        .calls
        .lines()
        .iter()
        .any(|l| l.starts_with("secret-revoke --relation 4 ")));
}

#[test]
fn a_new_admin_revision_is_refreshed_written_and_signalled() {
    let state = with_admin_secret(base(false), "old");
    let running = run(
        &mut ExampleCharm,
        &state.leader(false),
        Event::ConfigChanged,
    )
    .unwrap()
    .state;
    let mut changed = running.clone();
    changed.secrets[0]
        .revisions
        .insert(2, SecretContent::new().with("password", "new"));
    let ev = event::secret_changed(&changed.secrets[0]);
    let out = run(&mut ExampleCharm, &changed, ev).unwrap();
    let web = out.state.container(CONTAINER).unwrap();
    assert_eq!(web.files[ADMIN_FILE].content, b"new");
    assert_eq!(
        web.ops.last(),
        Some(&ServiceOp::Signal("SIGHUP".into(), SERVICE.into()))
    );
    assert_eq!(out.state.secrets[0].tracked, Some(2));
}

#[test]
fn secret_remove_drops_the_revision() {
    let mut state = with_admin_secret(base(true), "a");
    state.secrets[0]
        .revisions
        .insert(2, SecretContent::new().with("password", "b"));
    let ev = event::secret_remove(&state.secrets[0], 1);
    let out = run(&mut ExampleCharm, &state, ev).unwrap();
    assert_eq!(
        out.state.secrets[0].revisions.keys().collect::<Vec<_>>(),
        [&2]
    );
}

#[test]
fn update_status_reports_service_checks_and_planned_units() {
    let configured = run(&mut ExampleCharm, &base(false), Event::ConfigChanged)
        .unwrap()
        .state;
    let mut scaled = configured.clone();
    scaled.relations[0] = scaled.relations[0]
        .clone()
        .remote_unit("example/1", &[])
        .remote_unit("example/2", &[]);
    scaled.dying_units.insert("example/2".into());
    let out = run(&mut ExampleCharm, &scaled, Event::UpdateStatus).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Active("serving; 2 unit(s) planned".into())
    );

    let mut failing = configured.clone();
    failing
        .containers
        .get_mut(CONTAINER)
        .unwrap()
        .checks
        .push(CheckInfo {
            name: "http".into(),
            level: "alive".into(),
            status: "down".into(),
            failures: 3,
            threshold: 3,
        });
    let out = run(&mut ExampleCharm, &failing, Event::UpdateStatus).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Blocked("failing checks: http".into())
    );

    let out = run(&mut ExampleCharm, &base(false), Event::UpdateStatus).unwrap();
    assert_eq!(
        out.state.unit_status,
        Status::Maintenance("web server is not running".into())
    );
}

#[test]
fn actions_return_results_fail_with_a_message_and_log() {
    let state = with_admin_secret(base(false), "pw");
    let out = run_action(
        &mut ExampleCharm,
        &state.clone().leader(false),
        "get-admin-password",
        JsonMap::new(),
    )
    .unwrap();
    assert_eq!(out.action.results["password"], "pw");

    let none = run_action(
        &mut ExampleCharm,
        &base(false),
        "get-admin-password",
        JsonMap::new(),
    )
    .unwrap();
    assert!(none
        .action
        .failure
        .unwrap()
        .contains("no admin password yet"));

    let params = json!({"text": "hi there", "shout": true})
        .as_object()
        .unwrap()
        .clone();
    let out = run_action(&mut ExampleCharm, &base(false), "set-greeting", params).unwrap();
    assert_eq!(out.action.results["greeting"], "HI THERE");
    assert_eq!(out.action.logs, ["writing the greeting"]);
    assert_eq!(
        out.state
            .container(CONTAINER)
            .unwrap()
            .file_text(INDEX)
            .unwrap(),
        "<h1>HI THERE</h1>\n"
    );

    let empty = json!({"text": "  ", "shout": false})
        .as_object()
        .unwrap()
        .clone();
    let out = run_action(&mut ExampleCharm, &base(false), "set-greeting", empty).unwrap();
    assert_eq!(
        out.action.failure.as_deref(),
        Some("text must not be empty")
    );

    let missing = json!({"shout": false}).as_object().unwrap().clone();
    let err = run_action(&mut ExampleCharm, &base(false), "set-greeting", missing).unwrap_err();
    assert!(
        format!("{:#}", err.error).contains("invalid action parameters"),
        "{:#}",
        err.error
    );
}

/// A charm that breaks rules on purpose, to test the model's enforcement.
/// A handler body.
type Body = fn(&mut Hook<'_>) -> anyhow::Result<Handled>;

struct RuleBreaker(Body);

impl Charm for RuleBreaker {
    fn handle(&mut self, hook: &mut Hook<'_>, _: &Event) -> anyhow::Result<Handled> {
        (self.0)(hook)
    }
}

fn db() -> Relation {
    Relation::new(DB, 4)
}

#[test]
fn juju_permission_rules_are_enforced() {
    let follower = base(false).with_relation(db_relation());
    let cases: Vec<(Body, &str)> = vec![
        (
            |h| {
                h.update_app_bag(&db(), BagChanges::new().set("k", "v"))?;
                Ok(Handled::Done)
            },
            "not the leader",
        ),
        (
            |h| {
                h.local_app_bag(&db())?;
                Ok(Handled::Done)
            },
            "permission denied",
        ),
        (
            |h| {
                h.set_app_status(Status::Active(String::new()))?;
                Ok(Handled::Done)
            },
            "not the leader",
        ),
        (
            |h| {
                h.add_secret(
                    &SecretContent::new().with("key", "v"),
                    SecretOwner::Application,
                    &Default::default(),
                )?;
                Ok(Handled::Done)
            },
            "not the leader",
        ),
        (
            |h| {
                h.bag(&Relation::new(DB, 99), &charm::Bag::Unit("x/0".into()))?;
                Ok(Handled::Done)
            },
            "relation not found",
        ),
        (
            |h| {
                h.secret(&SecretRef::Label("nope".into()), Default::default())?;
                Ok(Handled::Done)
            },
            "not found",
        ),
        (
            |h| {
                h.action_log("x")?;
                Ok(Handled::Done)
            },
            "not running an action",
        ),
        (
            |h| {
                h.set_status(Status::Error("x".into()))?;
                Ok(Handled::Done)
            },
            "only Juju sets it",
        ),
    ];
    for (f, phrase) in cases {
        let err = run(&mut RuleBreaker(f), &follower, Event::UpdateStatus).unwrap_err();
        assert!(
            format!("{:#}", err.error).contains(phrase),
            "{:#} lacks {phrase}",
            err.error
        );
    }
    let peer_read: Body = |h| {
        h.local_app_bag(&Relation::new(PEERS, 1))?;
        Ok(Handled::Done)
    };
    run(&mut RuleBreaker(peer_read), &follower, Event::UpdateStatus)
        .expect("any unit reads the peer app bag");
}

#[test]
fn remote_secrets_need_a_grant() {
    let id = charm::SecretId::parse("c0000000000000000042").unwrap();
    let secret = |granted| {
        SecretState::new(
            id.clone(),
            Owner::Remote {
                app: "other".into(),
                granted,
            },
            SecretContent::new().with("token", "t"),
        )
    };
    let read: Body = |h| {
        let id = charm::SecretId::parse("c0000000000000000042").unwrap();
        h.secret(&SecretRef::Id(id, Some("mine".into())), Default::default())?;
        Ok(Handled::Done)
    };
    let denied = run(
        &mut RuleBreaker(read),
        &base(false).with_secret(secret(false)),
        Event::UpdateStatus,
    )
    .unwrap_err();
    assert!(format!("{:#}", denied.error).contains("permission denied"));
    let ok = run(
        &mut RuleBreaker(read),
        &base(false).with_secret(secret(true)),
        Event::UpdateStatus,
    )
    .unwrap();
    assert_eq!(ok.state.secrets[0].consumer_label.as_deref(), Some("mine"));
    assert_eq!(ok.state.secrets[0].tracked, Some(1));
}

#[test]
fn a_failed_hook_rolls_back_data_but_keeps_status_and_logs() {
    let state = base(true)
        .with_relation(db_relation())
        .with_deferred(Event::Start);
    let fail: Body = |h| {
        h.update_app_bag(&db(), BagChanges::new().set("endpoints", "x:1"))?;
        h.update_unit_bag(&db(), BagChanges::new().set("k", "v"))?;
        h.add_secret(
            &SecretContent::new().with("key", "v"),
            SecretOwner::Unit,
            &Default::default(),
        )?;
        h.open_port(&Port::tcp(1234))?;
        h.set_status(Status::Maintenance("half way".into()))?;
        h.log(LogLevel::Debug, "about to fail")?;
        anyhow::bail!("boom")
    };
    let err = run(&mut RuleBreaker(fail), &state, Event::UpdateStatus).unwrap_err();
    assert!(err.to_string().contains("boom"));
    assert_eq!(err.state.relations, state.relations);
    assert_eq!(err.state.secrets, state.secrets);
    assert_eq!(err.state.opened_ports, state.opened_ports);
    assert_eq!(
        err.state.deferred,
        vec![Event::Start],
        "the queue is not saved"
    );
    assert_eq!(
        err.state.unit_status,
        Status::Maintenance("half way".into())
    );
    assert_eq!(err.state.logs.last().unwrap().1, "about to fail");
}

/// Records the order it sees events in, deferring the ones it is told to.
struct Recorder {
    seen: Vec<String>,
    defer: Vec<Event>,
}

impl Charm for Recorder {
    fn handle(&mut self, _: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled> {
        self.seen.push(event.hook_name());
        Ok(if self.defer.contains(event) {
            Handled::Deferred
        } else {
            Handled::Done
        })
    }
}

#[test]
fn deferred_events_replay_oldest_first_before_the_new_one() {
    let state = base(false)
        .with_deferred(Event::Start)
        .with_deferred(Event::ConfigChanged);
    let mut charm = Recorder {
        seen: vec![],
        defer: vec![Event::ConfigChanged, Event::UpdateStatus],
    };
    let out = run(&mut charm, &state, Event::UpdateStatus).unwrap();
    assert_eq!(charm.seen, ["start", "config-changed", "update-status"]);
    assert_eq!(
        out.state.deferred,
        vec![Event::ConfigChanged, Event::UpdateStatus]
    );

    let mut charm = Recorder {
        seen: vec![],
        defer: vec![],
    };
    let out = run(&mut charm, &out.state, Event::CollectMetrics).unwrap();
    assert_eq!(
        charm.seen,
        ["collect-metrics"],
        "no replay where Juju restricts the tools"
    );
    assert_eq!(out.state.deferred.len(), 2);

    let mut charm = Recorder {
        seen: vec![],
        defer: vec![event::action("a")],
    };
    let err = run_action(&mut charm, &base(false), "a", JsonMap::new()).unwrap_err();
    assert!(err.error.to_string().contains("cannot be deferred"));
}

#[test]
fn departed_and_broken_relations_look_as_juju_shows_them() {
    let state = base(false).with_relation(db_relation().remote_unit("client/1", &[("k", "v")]));
    let r = state.relation(4).unwrap().clone();
    let probe: Body = |h| {
        let units = h.relation_units(&db())?;
        let ids = h.relations(DB)?;
        let gone = h.bag(&db(), &charm::Bag::Unit("client/1".into()))?.clone();
        h.log(
            LogLevel::Info,
            &format!("{units:?} {} {}", ids.len(), gone.len()),
        )?;
        Ok(Handled::Done)
    };
    let departed = run(
        &mut RuleBreaker(probe),
        &state,
        event::relation_departed(&r, "client/1", "client/1"),
    )
    .unwrap();
    assert_eq!(
        departed.state.logs[0].1, "[\"client/0\"] 1 1",
        "the departed unit is unlisted but readable"
    );
    let broken = run(&mut RuleBreaker(probe), &state, event::relation_broken(&r)).unwrap();
    assert_eq!(
        broken.state.logs[0].1, "[\"client/0\", \"client/1\"] 0 1",
        "relation-ids hides the broken relation"
    );
}

#[test]
fn the_charm_files_declare_what_the_code_uses() {
    let files = charm::metadata::CharmFiles::load(&charm_dir()).unwrap();
    assert!(files.meta.containers.contains_key(CONTAINER));
    assert!(files.meta.is_peer(PEERS));
    assert_eq!(files.meta.interface(DB), Some("example_db"));

    let defaults = files.config.defaults();
    files.config.check(&defaults).unwrap();
    let typed: Config =
        serde_json::from_value(serde_json::Value::Object(defaults.clone())).unwrap();
    assert_eq!(
        (typed.port().unwrap(), typed.greeting.as_str()),
        (8080, "hello")
    );

    let mut params = files.actions["set-greeting"].defaults();
    assert_eq!(params["shout"], false);
    params.insert("text".into(), "hi".into());
    let state = base(false).with_config(defaults);
    let out = run_action(&mut ExampleCharm, &state, "set-greeting", params).unwrap();
    assert_eq!(out.action.results["greeting"], "hi");
    assert!(files.actions.contains_key("get-admin-password"));
}

/// Counts how often its status collection runs.
struct StatusCounter(u32);

impl Charm for StatusCounter {
    fn handle(&mut self, _: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled> {
        Ok(if *event == Event::Start {
            Handled::Deferred
        } else {
            Handled::Done
        })
    }

    fn collect_status(&mut self, hook: &mut Hook<'_>) -> anyhow::Result<()> {
        self.0 += 1;
        hook.set_status(Status::Active(format!("collected {}", self.0)))?;
        Ok(())
    }
}

#[test]
fn status_is_collected_once_per_dispatch_after_every_event_but_not_for_actions() {
    let mut charm = StatusCounter(0);
    let state = base(false)
        .with_deferred(Event::Start)
        .with_deferred(Event::Install);
    let out = run(&mut charm, &state, Event::UpdateStatus).unwrap();
    assert_eq!(out.state.unit_status, Status::Active("collected 1".into()));
    assert_eq!(out.calls.lines().len(), 1);
    run_action(&mut charm, &out.state, "get-admin-password", JsonMap::new()).unwrap();
    assert_eq!(charm.0, 1);
}

#[test]
fn a_hook_asks_juju_once_for_what_cannot_change_and_again_after_its_own_writes() {
    let body: Body = |h| {
        for _ in 0..3 {
            h.relations(DB)?;
            h.relation_units(&db())?;
            h.remote_app(&db())?;
            h.ingress_address(DB)?;
            h.secret(
                &SecretRef::Label("example.admin".into()),
                Default::default(),
            )?;
        }
        let id = h.secret_ids()?.remove(0);
        h.set_secret(
            &id,
            Some(&SecretContent::new().with("password", "new")),
            &Default::default(),
        )?;
        let after = h.secret(
            &SecretRef::Label("example.admin".into()),
            charm::secret::Revision::Peek,
        )?;
        anyhow::ensure!(after.get("password") == Some("new"));
        Ok(Handled::Done)
    };
    let state = with_admin_secret(base(true).with_relation(db_relation()), "old");
    let out = run(&mut RuleBreaker(body), &state, Event::UpdateStatus).unwrap();
    let by_tool = out.calls.by_tool();
    assert_eq!(by_tool["relation-ids"], 1);
    assert_eq!(
        by_tool["relation-list"], 1,
        "the units, whose names tell the remote app"
    );
    assert_eq!(by_tool["network-get"], 1);
    assert_eq!(
        by_tool["secret-get"], 2,
        "once before the write, once after"
    );
}

#[test]
fn a_relation_is_found_by_its_endpoint_when_there_is_at_most_one() {
    let lookup: Body = |h| {
        let peers = h.relation(PEERS)?;
        let db = h.relation(DB)?;
        h.log(LogLevel::Info, &format!("{peers:?} {db:?}"))?;
        Ok(Handled::Done)
    };
    let out = run(&mut RuleBreaker(lookup), &base(false), Event::UpdateStatus).unwrap();
    assert_eq!(
        out.state.logs[0].1,
        r#"Some(Relation { endpoint: "replicas", id: 1 }) None"#
    );
    let two = base(false)
        .with_relation(db_relation())
        .with_relation(RelationState::new(DB, 5, "other"));
    let err = run(&mut RuleBreaker(lookup), &two, Event::UpdateStatus).unwrap_err();
    assert!(
        format!("{:#}", err.error).contains("endpoint db has 2 relations"),
        "{:#}",
        err.error
    );
}

#[test]
fn bag_changes_go_out_once_per_bag_when_the_hook_is_done() {
    let write: Body = |h| {
        h.update_app_bag(&db(), BagChanges::new().set("a", "1").set("b", "2"))?;
        h.update_app_bag(&db(), BagChanges::new().unset("a").set("c", "3"))?;
        h.update_unit_bag(&db(), BagChanges::new().set("k", "v"))?;
        Ok(Handled::Done)
    };
    let state = base(true).with_relation(db_relation().local_app_data(&[("a", "0")]));
    let out = run(&mut RuleBreaker(write), &state, Event::UpdateStatus).unwrap();
    let relation = out.state.relation(4).unwrap();
    assert_eq!(
        relation.local_app_data,
        charm_testing::bag(&[("b", "2"), ("c", "3")])
    );
    assert_eq!(relation.local_unit_data, charm_testing::bag(&[("k", "v")]));
    assert_eq!(out.calls.by_tool()["relation-set"], 2);
}

/// Adds statuses while handling (`Body`) and in its status collection.
struct Collecting(Body, Vec<Status>);

impl Charm for Collecting {
    fn handle(&mut self, hook: &mut Hook<'_>, _: &Event) -> anyhow::Result<Handled> {
        (self.0)(hook)
    }

    fn collect_status(&mut self, hook: &mut Hook<'_>) -> anyhow::Result<()> {
        for status in &self.1 {
            hook.add_status(status.clone());
        }
        Ok(())
    }
}

#[test]
fn the_most_pressing_collected_status_is_set_once() {
    let waiting: Body = |h| {
        h.add_status(Status::Waiting("first".into()));
        h.add_status(Status::Waiting("second".into()));
        Ok(Handled::Done)
    };
    let nothing: Body = |_| Ok(Handled::Done);
    let cases: [(Body, Vec<Status>, Status); 3] = [
        (
            waiting,
            vec![Status::Active(String::new())],
            Status::Waiting("first".into()),
        ),
        (
            waiting,
            vec![Status::Maintenance("busy".into())],
            Status::Maintenance("busy".into()),
        ),
        (
            nothing,
            vec![Status::Active("ok".into()), Status::Active("later".into())],
            Status::Active("ok".into()),
        ),
    ];
    for (body, collected, want) in cases {
        let out = run(
            &mut Collecting(body, collected),
            &base(false),
            Event::UpdateStatus,
        )
        .unwrap();
        assert_eq!(out.state.unit_status, want);
        assert_eq!(out.calls.by_tool()["status-set"], 1);
    }

    let mut before = base(false);
    before.unit_status = Status::Blocked("as it was".into());
    let out = run(
        &mut Collecting(nothing, vec![]),
        &before,
        Event::UpdateStatus,
    )
    .unwrap();
    assert_eq!(
        out.state.unit_status, before.unit_status,
        "nothing collected"
    );
    assert!(!out.calls.by_tool().contains_key("status-set"));
    let out = run_action(
        &mut Collecting(waiting, vec![]),
        &before,
        "a",
        JsonMap::new(),
    )
    .unwrap();
    assert_eq!(
        out.state.unit_status, before.unit_status,
        "not after actions"
    );
}

#[test]
fn listed_units_tell_the_remote_application_without_asking_juju() {
    let body: Body = |h| {
        let units = h.relation_units(&db())?;
        let app = h.remote_app(&db())?;
        h.log(LogLevel::Info, &format!("{units:?} from {app}"))?;
        Ok(Handled::Done)
    };
    let out = run(
        &mut RuleBreaker(body),
        &base(true).with_relation(RelationState::new(DB, 4, "client").remote_unit("client/3", &[])),
        Event::UpdateStatus,
    )
    .unwrap();
    assert!(out
        .state
        .logs
        .iter()
        .any(|(_, m)| m == r#"["client/3"] from client"#));
    assert_eq!(
        out.calls.by_tool()["relation-list"],
        1,
        "{:?}",
        out.calls.lines()
    );

    // No unit to tell it: Juju is asked.
    let out = run(
        &mut RuleBreaker(body),
        &base(true).with_relation(RelationState::new(DB, 4, "client")),
        Event::UpdateStatus,
    )
    .unwrap();
    assert!(out.state.logs.iter().any(|(_, m)| m == "[] from client"));
    assert_eq!(out.calls.by_tool()["relation-list"], 2);
}
