//! The hook-tool interpreter against the in-memory model's rules.
//!
//! The strongest check: charms run through the SDK's real adapter, whose command
//! lines the interpreter parses and whose output the SDK parses back, end in
//! exactly the state they reach when run on the model directly.

use charm::dispatch::{self, Charm};
use charm::hooktools::{HookTools, RawOutput, ToolRunner};
use charm::{Context, Event, SecretContent, SecretId, Status};
use charm_testing::event;
use juju_rules::{
    run, ContainerState, MemoryBackend, MemoryWorkloads, Owner, RelationState, SecretState, State,
};
use local_model::tools::{Session, ToolRequest, ToolResponse};
use std::path::PathBuf;

/// Hands each command to the interpreter, in-process.
struct Interpreted<'a, 's>(Session<'a, 's>);

impl ToolRunner for Interpreted<'_, '_> {
    fn run(&mut self, cmd: &charm::commands::Command) -> std::io::Result<RawOutput> {
        let response = self.0.run(&ToolRequest {
            tool: cmd.tool.clone(),
            args: cmd.args.clone(),
            stdin: cmd.stdin.clone().unwrap_or_default().into_bytes(),
        });
        Ok(RawOutput {
            stdout: response.stdout.into_bytes(),
            stderr: response.stderr.into_bytes(),
            code: response.code,
        })
    }
}

fn context(state: &State, event: &Event) -> Context {
    Context {
        unit: state.unit.clone(),
        app: state.app().to_string(),
        model_name: state.model_name.clone(),
        model_uuid: state.model_uuid.clone(),
        charm_dir: PathBuf::from("/var/lib/juju/charm"),
        juju_version: state.juju_version.clone(),
        event: event.clone(),
    }
}

/// Runs one event through the SDK adapter and the interpreter.
fn run_interpreted(charm: &mut dyn Charm, state: &State, event: Event) -> State {
    let mut working = state.clone();
    let ctx = context(state, &event);
    let endpoints: Vec<String> = working
        .relations
        .iter()
        .map(|r| r.endpoint.clone())
        .collect();
    let mut workloads = MemoryWorkloads {
        containers: std::mem::take(&mut working.containers),
    };
    let deferred = working.deferred.clone();
    let queue = {
        let mut memory = MemoryBackend::new(&mut working, event, None);
        let session = Session {
            context: &ctx,
            endpoints: &endpoints,
            backend: &mut memory,
        };
        let mut tools = HookTools::with_runner(Interpreted(session));
        dispatch::run(charm, &ctx, &mut tools, &mut workloads, deferred)
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let declared: Vec<String> = state.containers.keys().cloned().collect();
    workloads.containers.retain(|n, _| declared.contains(n));
    working.containers = workloads.containers;
    working.deferred = queue;
    working
}

fn both(charm: &mut dyn Charm, state: &State, event: Event) -> State {
    let direct = run(charm, state, event.clone())
        .unwrap_or_else(|f| panic!("{f}"))
        .state;
    let interpreted = run_interpreted(charm, state, event.clone());
    assert_eq!(
        strip_secrets(&interpreted),
        strip_secrets(&direct),
        "{} differs through the interpreter",
        event.hook_name()
    );
    direct
}

#[test]
fn the_example_charm_ends_in_the_same_state_either_way() {
    use example_charm::*;
    let config = serde_json::json!({"port": 8080, "greeting": "hi"})
        .as_object()
        .unwrap()
        .clone();
    let mut s = State::new("example/0")
        .leader(true)
        .with_config(config)
        .with_relation(RelationState::peer(PEERS, 1, "example").remote_unit("example/1", &[]))
        .with_relation(
            RelationState::new(DB, 4, "client")
                .remote_app_data(&[("database", "db")])
                .remote_unit("client/0", &[]),
        )
        .with_container(CONTAINER, ContainerState::unreachable());
    let mut charm = ExampleCharm;
    for event in [Event::Install, Event::LeaderElected, Event::ConfigChanged] {
        s = both(&mut charm, &s, event);
    }
    s.containers
        .insert(CONTAINER.into(), ContainerState::ready());
    s = both(&mut charm, &s, event::pebble_ready(CONTAINER));
    s = both(
        &mut charm,
        &s,
        event::relation_changed(s.relation(4).unwrap(), None),
    );
    s = both(
        &mut charm,
        &s,
        event::relation_changed(s.relation(1).unwrap(), Some("example/1")),
    );
    s = both(&mut charm, &s, Event::UpdateStatus);
    assert!(s
        .relation(4)
        .unwrap()
        .local_app_data
        .contains_key("secret-user"));
    assert_eq!(
        s.unit_status,
        Status::Active("serving; 2 unit(s) planned".into())
    );
}

#[test]
fn the_pgbouncer_charm_ends_in_the_same_state_either_way() {
    use pgbouncer_k8s::flows::Deps;
    use pgbouncer_k8s::pgb::Layout;
    use pgbouncer_k8s::workload::Workload;
    use postgres_admin::testing::FakeConnector;
    // Two fakes with the same history: the direct and interpreted runs each talk to their own.
    let charm_for = |pg: &FakeConnector| {
        pgbouncer_k8s::PgBouncerCharm::new(Deps {
            connector: Box::new(pg.clone()),
            workload: Workload {
                layout: Layout::default(),
                processes: 2,
                user: Some("postgres".into()),
                drain: std::time::Duration::ZERO,
                pause_wait: std::time::Duration::ZERO,
                // No namespace settings: a rolling restart hands nothing over.
                net_ipv4: "/nonexistent/net/ipv4".into(),
            },
        })
    };
    let secret = SecretId::parse("c0000000000000000b0c").unwrap();
    let mut s = State::new("pgbouncer-k8s/0")
        .leader(true)
        .with_relation(RelationState::peer("pgb-peers", 1, "pgbouncer-k8s"))
        .with_container(
            "pgbouncer",
            ContainerState::ready().with_file("/usr/bin/pgbouncer", b"PgBouncer 1.24.1"),
        )
        .with_relation(
            RelationState::new("backend-database", 3, "postgresql-k8s")
                .remote_app_data(&[
                    ("endpoints", "10.0.1.1:5432"),
                    ("version", "15.18"),
                    ("secret-user", &secret.to_string()),
                ])
                .remote_unit("postgresql-k8s/0", &[]),
        )
        .with_secret(SecretState::new(
            secret,
            Owner::Remote {
                app: "postgresql-k8s".into(),
                granted: true,
            },
            SecretContent::new()
                .with("username", "relation_id_3")
                .with("password", "pw"),
        ))
        .with_relation(
            RelationState::new("database", 4, "client").remote_app_data(&[
                ("database", "app_db"),
                (
                    "requested-secrets",
                    r#"["username","password","uris","read-only-uris"]"#,
                ),
            ]),
        );
    // What the server holds after the events so far (the auth user, say).
    let history = FakeConnector::up_with(&["pgbouncer"]);
    for event in [
        event::relation_created(s.relation(1).unwrap()),
        event::relation_changed(s.relation(3).unwrap(), None),
        event::relation_changed(s.relation(4).unwrap(), None),
        Event::UpdateStatus,
    ] {
        let (a, b) = (FakeConnector::default(), FakeConnector::default());
        *a.0.borrow_mut() = history.server();
        *b.0.borrow_mut() = history.server();
        let direct = run(&mut charm_for(&a), &s, event.clone())
            .unwrap_or_else(|f| panic!("{f}"))
            .state;
        let interpreted = run_interpreted(&mut charm_for(&b), &s, event.clone());
        // Generated passwords differ between the two runs; everything else must not.
        assert_eq!(
            strip_secrets(&interpreted),
            strip_secrets(&direct),
            "{}",
            event.hook_name()
        );
        s = direct;
        *history.0.borrow_mut() = a.server();
    }
    assert!(s
        .relation(4)
        .unwrap()
        .local_app_data
        .contains_key("secret-user"));
}

/// The state with generated values (secret contents, values derived from them)
/// blanked, for comparing two runs that each generated their own.
fn strip_secrets(state: &State) -> State {
    let mut s = state.clone();
    for c in s.containers.values_mut() {
        c.files.retain(|p, _| !p.contains("admin-password"));
    }
    for secret in &mut s.secrets {
        for content in secret.revisions.values_mut() {
            *content = content.keys().map(|k| (k.clone(), String::new())).collect();
        }
    }
    for c in s.containers.values_mut() {
        c.files.retain(|p, _| !p.ends_with("userlist.txt"));
    }
    s
}

fn session_run(
    state: &mut State,
    event: Event,
    tool: &str,
    args: &[&str],
    stdin: &str,
) -> ToolResponse {
    let ctx = context(state, &event);
    let endpoints: Vec<String> = state.relations.iter().map(|r| r.endpoint.clone()).collect();
    let mut memory = MemoryBackend::new(state, event, None);
    let mut session = Session {
        context: &ctx,
        endpoints: &endpoints,
        backend: &mut memory,
    };
    session.run(&ToolRequest {
        tool: tool.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: stdin.as_bytes().to_vec(),
    })
}

#[test]
fn the_forms_ops_sends_and_what_it_reads_back() {
    let mut s = State::new("app/0")
        .leader(true)
        .with_config(
            serde_json::json!({"port": 80, "name": "x", "debug": true})
                .as_object()
                .unwrap()
                .clone(),
        )
        .with_relation(
            RelationState::new("db", 4, "client")
                .remote_app_data(&[("database", "d")])
                .remote_unit("client/0", &[("k", "v")]),
        );
    let ev = event::relation_changed(s.relation(4).unwrap(), Some("client/0"));
    let out = |s: &mut State, tool: &str, args: &[&str]| session_run(s, ev.clone(), tool, args, "");
    assert_eq!(
        out(&mut s, "is-leader", &["--format=json"]).stdout,
        "true\n"
    );
    assert_eq!(
        out(&mut s, "relation-ids", &["--format=json"]).stdout,
        "[\"db:4\"]\n",
        "defaults to the hook's endpoint"
    );
    assert_eq!(
        out(&mut s, "relation-get", &["--format=json", "-"]).stdout,
        "{\"k\":\"v\"}\n",
        "defaults to the remote unit"
    );
    assert_eq!(
        out(&mut s, "relation-get", &["-r", "4", "k", "client/0"]).stdout,
        "v\n",
        "a plain id and one key, smart"
    );
    assert_eq!(
        out(
            &mut s,
            "relation-get",
            &["--app", "--format=json", "-r", "db:4", "-", "client/0"]
        )
        .stdout,
        "{\"database\":\"d\"}\n"
    );
    assert_eq!(out(&mut s, "config-get", &["debug"]).stdout, "True\n");
    assert_eq!(
        out(&mut s, "config-get", &["port", "--format=json"]).stdout,
        "80\n"
    );
    assert_eq!(
        out(
            &mut s,
            "status-set",
            &[
                "--application=False",
                "maintenance",
                "--",
                "doing",
                "things"
            ]
        )
        .code,
        0
    );
    assert_eq!(
        out(
            &mut s,
            "status-get",
            &["--include-data", "--format=json", "--application=false"]
        )
        .stdout,
        "{\"message\":\"doing things\",\"status\":\"maintenance\",\"status-data\":{}}\n"
    );
    let app = out(
        &mut s,
        "status-get",
        &["--include-data", "--format=json", "--application=True"],
    )
    .stdout;
    assert!(
        app.contains("\"application-status\"") && app.contains("\"units\""),
        "{app}"
    );
    assert_eq!(out(&mut s, "open-port", &["6432"]).code, 0);
    assert_eq!(out(&mut s, "opened-ports", &[]).stdout, "6432/tcp\n");
    assert_eq!(
        out(&mut s, "network-get", &["db", "--ingress-address"]).stdout,
        "192.0.2.10\n"
    );

    let set = session_run(
        &mut s,
        ev.clone(),
        "relation-set",
        &["-r", "db:4", "--app", "--file", "-"],
        "endpoints: 'h:1'\nversion: 15\nold: null\n",
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    let bag = &s.relation(4).unwrap().local_app_data;
    assert_eq!(
        (bag["endpoints"].as_str(), bag["version"].as_str()),
        ("h:1", "15")
    );

    let added = out(
        &mut s,
        "secret-add",
        &[
            "--owner",
            "unit",
            "--label",
            "mine",
            "token=abc",
            "blob#base64=aGVsbG8=",
        ],
    );
    assert!(added.stdout.starts_with("secret://"), "{added:?}");
    let got = out(&mut s, "secret-get", &["--label", "mine", "--format=json"]);
    assert_eq!(got.stdout, "{\"blob\":\"hello\",\"token\":\"abc\"}\n");
    let info = out(
        &mut s,
        "secret-info-get",
        &["--label", "mine", "--format=json"],
    )
    .stdout;
    assert!(
        info.contains("\"revision\":1") && info.contains("\"owner\":\"unit\""),
        "{info}"
    );
}

#[test]
fn errors_carry_juju_phrases_and_exit_codes() {
    let mut s = State::new("app/1").with_relation(RelationState::new("db", 4, "client"));
    let ev = Event::UpdateStatus;
    let r = session_run(
        &mut s,
        ev.clone(),
        "relation-get",
        &["-r", "db:9", "-", "client/0"],
        "",
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR relation 9 not found\n")
    );
    let r = session_run(
        &mut s,
        ev.clone(),
        "relation-set",
        &["-r", "db:4", "--app", "k=v"],
        "",
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR cannot write relation settings\n")
    );
    let r = session_run(
        &mut s,
        ev.clone(),
        "relation-get",
        &["-r", "db:4", "--app", "-", "app"],
        "",
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR permission denied\n")
    );
    let r = session_run(&mut s, ev.clone(), "secret-get", &["--label", "nope"], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR consumer label \"nope\" not found\n")
    );
    let r = session_run(
        &mut s,
        ev.clone(),
        "status-set",
        &["--application", "active"],
        "",
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR this unit is not the leader\n")
    );
    let r = session_run(&mut s, ev.clone(), "action-get", &[], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "ERROR not running an action\n")
    );
    let r = session_run(&mut s, ev.clone(), "config-get", &["--bogus"], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "ERROR flag provided but not defined: -bogus\n")
    );
    let r = session_run(&mut s, ev.clone(), "status-set", &["error", "x"], "");
    assert_eq!(r.code, 2);
    let r = session_run(&mut s, ev, "relation-get", &["-"], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "ERROR no relation id specified\n")
    );
}
