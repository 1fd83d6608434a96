//! PgBouncer charm benchmarks:
//! - rendering the shared configuration and one process's file with 1, 100 and
//!   1,000 client databases (target: under 20 ms at 1,000);
//! - hook-tool calls for a `database` relation-changed that requests a database,
//!   on the in-memory model, with 0 and 50 clients already served (target: at
//!   most 20);
//! - the leader's own time for a `pgb-peers` relation-changed that changes
//!   nothing, with 100 and 1,000 clients served: every client is looked at, so
//!   it grows with them, but only linearly (target: 1,000 clients cost at most
//!   20 times what 100 do).
//!
//! Run: `cargo bench -p pgbouncer-k8s --bench pgbouncer`.

#![allow(clippy::unwrap_used)]

use charm::{SecretContent, SecretId};
use charm_testing::{event, run, ContainerState, Owner, RelationState, SecretState, State};
use client_interface::Endpoint;
use pgbouncer_k8s::config::CharmConfig;
use pgbouncer_k8s::flows::Deps;
use pgbouncer_k8s::pgb::ini::{
    render_process, BackendTarget, ClientDatabase, ProcessSpec, SharedConfig, SharedInput,
};
use pgbouncer_k8s::pgb::peering::Peering;
use pgbouncer_k8s::pgb::{Layout, PgbVersion};
use pgbouncer_k8s::workload::Workload;
use pgbouncer_k8s::PgBouncerCharm;
use postgres_admin::testing::FakeConnector;
use std::time::{Duration, Instant};

fn render_once(
    clients: &[ClientDatabase],
    config: &CharmConfig,
    backend: &BackendTarget,
    layout: &Layout,
) -> usize {
    let shared = SharedConfig::build(&SharedInput {
        config,
        app: "pgbouncer-k8s",
        backend: Some(backend),
        clients,
        readonly_dbs: &[],
        total_processes: 6,
        layout,
    });
    let cfg = shared.render();
    let parsed = SharedConfig::parse(&cfg).expect("reads back");
    let spec = ProcessSpec {
        index: 0,
        count: 2,
        version: PgbVersion::new(1, 24, 1),
        tls: false,
        listen_addr: "127.0.0.1",
        layout,
        peering: &Peering::default(),
    };
    cfg.len() + render_process(&parsed, &spec).len()
}

fn bench_render() {
    let config = CharmConfig::from_raw(&serde_json::Map::new()).unwrap();
    let layout = Layout::default();
    let backend = BackendTarget {
        primary: Endpoint::parse("10.0.1.1:5432").unwrap(),
        read_only: Endpoint::parse_list("10.0.1.2:5432,10.0.1.3:5432").unwrap(),
        auth_user: "pgbouncer_auth_relation_id_3".into(),
        verify_tls: false,
    };
    println!("rendering (build + cfg_file + parse it back + one process file), median of runs");
    for n in [1usize, 100, 1000] {
        let clients: Vec<ClientDatabase> = (0..n)
            .map(|i| ClientDatabase {
                relation_id: i as u64 + 10,
                name: format!("app_db_{i}"),
                privileged: i % 50 == 0,
            })
            .collect();
        let runs = if n >= 1000 { 50 } else { 200 };
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(render_once(&clients, &config, &backend, &layout));
                t.elapsed()
            })
            .collect();
        times.sort();
        let median = times[runs / 2];
        let verdict = if n == 1000 {
            if median < Duration::from_millis(20) {
                " (target under 20 ms: met)"
            } else {
                " (target under 20 ms: MISSED)"
            }
        } else {
            ""
        };
        println!(
            "  {n:>5} clients: {:>8.3} ms{verdict}",
            median.as_secs_f64() * 1000.0
        );
    }
}

/// A leader whose `existing` clients are all served; with `second_unit`, unit 1
/// has joined and serves the same configuration.
fn leader_with_clients(
    pg: &FakeConnector,
    existing: u64,
    second_unit: bool,
) -> (PgBouncerCharm, State) {
    let mut charm = PgBouncerCharm::new(Deps {
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
    });
    let secret = SecretId::parse("c0000000000000000b0c").unwrap();
    let mut state = State::new("pgbouncer-k8s/0")
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
        ));
    let created = event::relation_created(state.relation(1).unwrap());
    state = run(&mut charm, &state, created).unwrap().state;
    state = run(
        &mut charm,
        &state,
        event::relation_changed(state.relation(3).unwrap(), None),
    )
    .unwrap()
    .state;
    for i in 0..existing {
        let id = 100 + i;
        state = state.with_relation(
            RelationState::new("database", id, &format!("client-{i}")).remote_app_data(&[
                ("database", &format!("db_{i}")),
                ("requested-secrets", r#"["username","password"]"#),
            ]),
        );
        state = run(
            &mut charm,
            &state,
            event::relation_changed(state.relation(id).unwrap(), None),
        )
        .unwrap()
        .state;
    }
    if second_unit {
        let cfg = state.relation(1).unwrap().local_app_data["cfg_file"].clone();
        let digest = pgbouncer_k8s::state::digest(&cfg);
        let peers = state.relations.iter_mut().find(|r| r.id == 1).unwrap();
        peers.remote_units.insert(
            "pgbouncer-k8s/1".into(),
            charm_testing::bag(&[("cfg_hash", &digest), ("hostname", "10.0.0.11")]),
        );
    }
    (charm, state)
}

/// Prints a row; `target` applies to `database` relation-changed hooks only.
fn report(what: &str, calls: &charm::stats::ToolStats, target: bool) {
    let n = calls.count();
    let verdict = match (target, n <= 20) {
        (false, _) => "for reference",
        (true, true) => "target met",
        (true, false) => "target MISSED",
    };
    println!(
        "  {what:<52} {n:>3} calls ({verdict}) {:?}",
        calls.by_tool()
    );
}

fn bench_tool_calls() {
    println!("hook-tool calls per hook (target: at most 20 for a database relation-changed)");
    let request = |state: State| {
        state.with_relation(
            RelationState::new("database", 9, "new-client").remote_app_data(&[
                ("database", "new_db"),
                ("requested-secrets", r#"["username","password"]"#),
            ]),
        )
    };
    for existing in [0u64, 50] {
        let pg = FakeConnector::up_with(&["pgbouncer"]);
        let (mut charm, state) = leader_with_clients(&pg, existing, true);
        let state = request(state);
        let out = run(
            &mut charm,
            &state,
            event::relation_changed(state.relation(9).unwrap(), None),
        )
        .unwrap();
        report(
            &format!("request, two units, {existing} clients already"),
            &out.calls,
            true,
        );
        // Unit 1 acknowledges: the leader hands the credentials out.
        let mut acked = out.state;
        let cfg = acked.relation(1).unwrap().local_app_data["cfg_file"].clone();
        let digest = pgbouncer_k8s::state::digest(&cfg);
        let peers = acked.relations.iter_mut().find(|r| r.id == 1).unwrap();
        peers.remote_units.insert(
            "pgbouncer-k8s/1".into(),
            charm_testing::bag(&[("cfg_hash", &digest)]),
        );
        let out = run(
            &mut charm,
            &acked,
            event::relation_changed(acked.relation(1).unwrap(), Some("pgbouncer-k8s/1")),
        )
        .unwrap();
        assert!(
            out.state
                .relation(9)
                .unwrap()
                .local_app_data
                .contains_key("secret-user"),
            "handed out"
        );
        report(
            &format!("last acknowledgement (pgb-peers), {existing} clients"),
            &out.calls,
            false,
        );
    }
    let pg = FakeConnector::up_with(&["pgbouncer"]);
    let (mut charm, state) = leader_with_clients(&pg, 0, false);
    let state = request(state);
    let out = run(
        &mut charm,
        &state,
        event::relation_changed(state.relation(9).unwrap(), None),
    )
    .unwrap();
    assert!(
        out.state
            .relation(9)
            .unwrap()
            .local_app_data
            .contains_key("secret-user"),
        "handed out"
    );
    report("request and hand-out, one unit", &out.calls, true);
}

/// The charm's own time for a hook on the in-memory model: the median of `runs`.
fn hook_time(charm: &mut PgBouncerCharm, state: &State, event: &charm::Event) -> Duration {
    let runs = 5;
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            run(charm, state, event.clone()).unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn bench_refresh() {
    println!("the leader's pgb-peers relation-changed that changes nothing (target: linear)");
    let mut times = Vec::new();
    for clients in [100u64, 1000] {
        let pg = FakeConnector::up_with(&["pgbouncer"]);
        let (mut charm, state) = leader_with_clients(&pg, clients, true);
        let event = event::relation_changed(state.relation(1).unwrap(), Some("pgbouncer-k8s/1"));
        let took = hook_time(&mut charm, &state, &event);
        println!("  {clients:>5} clients: {took:.2?}");
        times.push(took);
    }
    let ratio = times[1].as_secs_f64() / times[0].as_secs_f64();
    let verdict = if ratio <= 20.0 {
        "target met"
    } else {
        "target MISSED"
    };
    println!("  1,000 clients cost {ratio:.1}x what 100 do ({verdict})");
}

fn main() {
    bench_render();
    bench_tool_calls();
    bench_refresh();
}
