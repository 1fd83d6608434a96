//! `BENCHMARKS.md`: the machine, the tables, each target met or missed.

use crate::changes;
use crate::model::{self, HookRow};
use crate::pooling::{self, Target, CLIENTS};
use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

/// What the figures were measured on.
pub struct Machine {
    rows: Vec<(String, String)>,
    load_before: String,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|e| format!("({program}: {e})"))
}

fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches([':', ' ', '\t']).trim().to_string())
        .unwrap_or_default()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    pub fn probe(open_files: u64) -> Machine {
        let kib: f64 = proc_field("/proc/meminfo", "MemTotal")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or(0.0);
        let ops = local_model::testing::PACKAGES
            .iter()
            .filter(|p| p.starts_with("ops==") || p.starts_with("postgresql-charms"))
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let rows = vec![
            ("CPU".into(), proc_field("/proc/cpuinfo", "model name")),
            ("Cores".into(), pooling::cores().to_string()),
            ("Memory".into(), format!("{:.1} GiB", kib / 1024.0 / 1024.0)),
            ("Kernel".into(), first_line("uname", &["-sr"])),
            ("PostgreSQL".into(), first_line("postgres", &["--version"])),
            ("pgbench".into(), first_line("pgbench", &["--version"])),
            (
                "PgBouncer".into(),
                first_line(pooling::PGBOUNCER, &["--version"]),
            ),
            ("Patroni".into(), first_line("patroni", &["--version"])),
            ("etcd".into(), first_line("etcd", &["--version"])),
            ("Python".into(), first_line("python3", &["--version"])),
            ("Python charms".into(), ops),
            ("Rust".into(), first_line("rustc", &["--version"])),
            ("Open files (soft limit)".into(), open_files.to_string()),
        ];
        Machine {
            rows,
            load_before: load(),
        }
    }

    /// Adds the load average at the end of the run.
    pub fn finish(mut self) -> Machine {
        self.rows.push((
            "Load average (1, 5, 15 min), start → end".into(),
            format!("{} → {}", self.load_before, load()),
        ));
        self
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**missed**"
    }
}

fn find<'a>(
    p: &'a pooling::Results,
    workload: &str,
    target: Target,
    clients: u32,
) -> &'a pooling::Run {
    &p.pooled
        .iter()
        .find(|r| r.workload == workload && r.target == target && r.clients == clients)
        .expect("every combination ran")
        .run
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::INFINITY
    }
}

fn times(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "∞ (direct did not run)".into()
    }
}

/// How long each part of the run took, in the order they ran.
#[derive(Default)]
pub struct Sections(Vec<(&'static str, Duration)>);

impl Sections {
    /// Runs `part`, recording how long it took under `name`.
    pub fn time<T>(&mut self, name: &'static str, part: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = part();
        let took = started.elapsed();
        eprintln!("{name}: {:.1} minutes", took.as_secs_f64() / 60.0);
        self.0.push((name, took));
        out
    }

    fn total(&self) -> Duration {
        self.0.iter().map(|(_, d)| *d).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(name, d)| serde_json::json!({"section": name, "seconds": d.as_secs_f64()}))
            .collect()
    }
}

/// The whole run's time against its target (20 minutes on 2 cores).
fn run_time_target(sections: &Sections, m: &model::Results) -> String {
    const TARGET_MINUTES: f64 = 20.0;
    let minutes = sections.total().as_secs_f64() / 60.0;
    if minutes <= TARGET_MINUTES {
        return format!(
            "Target: the whole run within {TARGET_MINUTES:.0} minutes: {minutes:.1} → **met**."
        );
    }
    let units = model::SCALE_UNITS;
    let (Some(first), Some(last)) = (m.scale.first(), m.scale.last()) else {
        return format!(
            "Target: the whole run within {TARGET_MINUTES:.0} minutes: {minutes:.1} → **missed** \
             by {:.0}%.",
            (minutes / TARGET_MINUTES - 1.0) * 100.0
        );
    };
    // The tool calls of PgBouncer's hooks in the hook-cost section.
    let calls = m
        .hooks
        .iter()
        .filter(|h| h.charm == model::PGBOUNCER)
        .map(|h| h.tool_calls);
    let (fewest, most) = (calls.clone().min().unwrap_or(0), calls.max().unwrap_or(0));
    format!(
        "Target: the whole run within {TARGET_MINUTES:.0} minutes: {minutes:.1} → **missed** by \
         {:.0}%: the many-clients section alone took {:.1} minutes, relating every client \
         application to {units} PgBouncer units ({:.2} s a client up to {}, {:.2} s up to {}). \
         Each client costs PgBouncer's units {} hooks (each unit sees the relation created, \
         joined and changed twice) and the peer-relation hooks that carry each new \
         configuration and its acknowledgements, the leader's creating a role and a database \
         in PostgreSQL, and each hook is a process of its own that starts one more for each of \
         its hook-tool calls ({fewest} to {most} a hook in the hook-cost section), as under \
         Juju; that sets the cost of a client in a small model. What grows with the model is \
         the hooks' own work on a larger configuration and client record, and the local \
         model's for each hook ({:.1} ms a hook up to {}, {:.1} ms up to {}): the unit's \
         view of a thousand relations and secrets, and saving the model. {}",
        (minutes / TARGET_MINUTES - 1.0) * 100.0,
        m.scale_s / 60.0,
        first.batch_s_per_client,
        first.clients,
        last.batch_s_per_client,
        last.clients,
        4 * units,
        first.controller_ms_per_hook,
        first.clients,
        last.controller_ms_per_hook,
        last.clients,
        client_budget(minutes - m.scale_s / 60.0, first, last),
    )
}

/// What a client could cost for the run to end within its target: the time
/// the other parts leave, shared among the clients, against the cost of the
/// first ones, in the smallest model.
fn client_budget(other_minutes: f64, first: &model::ScaleRow, last: &model::ScaleRow) -> String {
    const TARGET_SECONDS: f64 = 20.0 * 60.0;
    let clients = last.clients as f64;
    let floor = first.batch_s_per_client * clients / 60.0;
    let left = TARGET_SECONDS - other_minutes * 60.0;
    let head = format!(
        "At the rate of the first {} clients, {} clients alone take {floor:.1} minutes; the \
         run's other parts took {other_minutes:.1}",
        first.clients, last.clients
    );
    if left <= 0.0 {
        return format!("{head}, more than the whole run's target.");
    }
    let budget = left / clients;
    format!(
        "{head}: within the target, a client could cost {budget:.2} s, {:.1}× less than the \
         first ones did.",
        first.batch_s_per_client / budget
    )
}

pub fn render(
    machine: &Machine,
    p: &pooling::Results,
    m: &model::Results,
    c: &changes::Results,
    sections: &Sections,
    counts: &[usize],
) -> String {
    let mut s = String::new();
    let w = &mut s;
    let minutes = |d: Duration| d.as_secs_f64() / 60.0;
    let parts: Vec<String> = sections
        .0
        .iter()
        .map(|(name, d)| format!("{name} {:.1}", minutes(*d)))
        .collect();
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `cargo bench -p e2e --bench report` (`tests/benches/report/`) in one run \
         of {:.1} minutes ({}; of the charms' part, many clients {:.1}), after its release \
         build; every comparison below is a ratio of figures measured in that same run. The \
         figures are also in [`docs/benchmarks/results.json`](docs/benchmarks/results.json).\n",
        minutes(sections.total()),
        parts.join(", "),
        m.scale_s / 60.0,
    );
    let _ = writeln!(w, "{}\n", run_time_target(sections, m));
    let _ = writeln!(
        w,
        "pgbench, PostgreSQL, PgBouncer and the local model share the machine's cores with \
         whatever else runs there (the load average below says how busy it was), so absolute \
         figures vary from run to run; ratios within the run are fairer than figures across \
         runs.\n"
    );
    let _ = writeln!(w, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in &machine.rows {
        let _ = writeln!(w, "| {k} | {v} |");
    }
    let _ = writeln!(
        w,
        "\n## Reproduce\n\n    scripts/install-deps      # as root: PostgreSQL, PgBouncer, Patroni, etcd\n    \
         cargo bench -p e2e --bench report\n\n\
         `REPORT_SECONDS` sets each pgbench run's length ({} s here); `REPORT_CLIENTS` the \
         client relation counts ({} here). The bench raises its open-file limit to the hard \
         limit itself (1,000 clients need more than 1,024 descriptors); pgbench, PostgreSQL \
         and PgBouncer inherit it.\n",
        p.seconds,
        counts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    pooling_section(w, p);
    setup_section(w, p);
    hooks_section(w, &m.hooks);
    credentials_section(w, m);
    scale_section(w, m, counts);
    let _ = writeln!(w, "\n{}", changes_section(c, false));
    s
}

fn pooling_section(w: &mut String, p: &pooling::Results) {
    let _ = writeln!(
        w,
        "## 1. Pooling\n\n\
         pgbench (`-n -j {cores} -T {secs}`, scale 10) as a SCRAM role, straight to PostgreSQL \
         {pg} and through PgBouncer in session and transaction modes. PostgreSQL and PgBouncer \
         run as plain processes on this machine, not on the local model: a throwaway cluster \
         (`max_connections = 1100` so that 1,000 clients can reach it directly, \
         `shared_buffers = 256MB`, `fsync`, `synchronous_commit` and `full_page_writes` off: \
         durability is not what is measured), and {n} PgBouncer processes on one port \
         (`so_reuseport`, as many as the charm runs on {cores} cores), each with the ini file \
         the charm's own code renders (`pgbouncer_k8s::pgb::ini`) with its default options \
         but `pool_mode`, logging in through its `auth_query` function. Latency percentiles \
         come from pgbench's per-transaction logs (`--log`), every transaction of the run. \
         pgbench's `-T` clock runs while its clients log in and its tps leaves that time \
         out, so runs of 100 and 1,000 clients last {extra100} and {extra1000} s longer: \
         1,000 SCRAM logins take several seconds on this machine (pgbench's initial \
         connection time, in `results.json`). \
         \"Aborted\" counts clients pgbench gave up (a connection refused or lost); \"failed\" \
         counts failed transactions.\n\n\
         ![Throughput](docs/benchmarks/pooling-tps.png)\n\n\
         ![p99 latency](docs/benchmarks/pooling-latency.png)\n",
        cores = pooling::cores(),
        secs = p.seconds,
        pg = p.postgres_version,
        n = p.processes,
        extra100 = pooling::connecting(100),
        extra1000 = pooling::connecting(1000),
    );
    let _ = writeln!(
        w,
        "| workload | target | clients | tps | × direct | p50 ms | p99 ms | failed | aborted clients |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &p.pooled {
        let direct = find(p, r.workload, Target::Direct, r.clients).tps;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {} | {} |",
            r.workload,
            r.target.name(),
            r.clients,
            r.run.tps,
            if r.target == Target::Direct {
                "1".to_string()
            } else {
                times(ratio(r.run.tps, direct))
            },
            r.run.p50_ms,
            r.run.p99_ms,
            r.run.failed,
            r.run.aborted
        );
    }
    let _ = writeln!(w, "\nTargets:\n");
    for workload in ["select-only", "tpcb-like"] {
        for target in [Target::Session, Target::Transaction] {
            let x = ratio(
                find(p, workload, target, CLIENTS[0]).tps,
                find(p, workload, Target::Direct, CLIENTS[0]).tps,
            );
            let _ = writeln!(
                w,
                "- {workload}, {}, 10 clients: {} direct, target ≥ 0.9×: {}{}",
                target.name(),
                times(x),
                verdict(x >= 0.9),
                if x >= 0.9 {
                    String::new()
                } else {
                    format!(
                        " by {:.0}% (each transaction crosses one more process and one more \
                         loopback hop; with {} cores shared by pgbench, PgBouncer and \
                         PostgreSQL, PgBouncer's CPU comes out of the others')",
                        (0.9 - x) / 0.9 * 100.0,
                        pooling::cores()
                    )
                }
            );
        }
        let x = ratio(
            find(p, workload, Target::Transaction, 1000).tps,
            find(p, workload, Target::Direct, 1000).tps,
        );
        let _ = writeln!(
            w,
            "- {workload}, transaction mode, 1,000 clients: {} direct, target ≥ 2×: {}{}",
            times(x),
            verdict(x >= 2.0),
            if x >= 2.0 {
                String::new()
            } else {
                format!(
                    " by {:.0}% (on {} cores pgbench's 1,000 clients, PgBouncer and \
                     PostgreSQL share the same CPUs: PgBouncer's own work comes out of \
                     what it saves PostgreSQL)",
                    (2.0 - x) / 2.0 * 100.0,
                    pooling::cores()
                )
            }
        );
    }
    let _ = writeln!(
        w,
        "\nSession mode holds a server connection per client for the client's whole life, \
         and the charm's default pool gives fewer than 100 server connections (each \
         process's pool is `default_pool_size` plus `reserve_pool_size`, in the \
         configuration below): at 1,000 clients more than 900 clients get none until \
         others disconnect at the end of the run. Their one transaction each is under 1% of \
         the run's transactions, beyond p99: read the session-mode row at 1,000 clients as \
         under 100 clients served and the rest starved, not as 1,000 served.\n\n\
         The rendered configuration (transaction mode, paths as in the container):\n\n```ini\n{}```\n",
        p.ini
    );
}

fn setup_section(w: &mut String, p: &pooling::Results) {
    let _ = writeln!(
        w,
        "## 2. Connection set-up\n\n\
         pgbench `-C -S -c 10` (a new connection for every transaction) for {} s. Direct: \
         once as a role PostgreSQL trusts (`trust` in `pg_hba.conf`: no authentication) and \
         once as a SCRAM role. Through PgBouncer (transaction mode, SCRAM between client and \
         PgBouncer as the charm renders it): once with the role's verifier in PgBouncer's \
         userlist, once looked up by `auth_query` (the charm's way: only the auth user is in \
         the userlist). PgBouncer keeps its server connections, so a client's connection \
         costs a SCRAM exchange with PgBouncer (and an `auth_query`, itself pooled) instead \
         of a PostgreSQL backend's fork and SCRAM.\n\n\
         ![Connection set-up](docs/benchmarks/connection-setup.png)\n\n\
         | how | connections (transactions)/s | × direct SCRAM | average connection ms | aborted clients |\n\
         |---|---:|---:|---:|---:|",
        p.seconds
    );
    let scram = p
        .setup
        .iter()
        .find(|s| s.what == "direct, SCRAM")
        .map_or(0.0, |s| s.run.tps);
    for s in &p.setup {
        let _ = writeln!(
            w,
            "| {} | {:.0} | {} | {:.2} | {} |",
            s.what,
            s.run.tps,
            times(ratio(s.run.tps, scram)),
            s.run.connection_ms,
            s.run.aborted
        );
    }
    let through = p
        .setup
        .iter()
        .find(|s| s.what.contains("auth_query"))
        .map_or(0.0, |s| s.run.tps);
    let x = ratio(through, scram);
    let _ = writeln!(
        w,
        "\nTarget: through PgBouncer (auth_query, as deployed) ≥ 3× direct SCRAM: {} → {}{}.\n",
        times(x),
        verdict(x >= 3.0),
        if x >= 3.0 {
            String::new()
        } else {
            format!(
                ", by {:.0}%: the client's own SCRAM work (PBKDF2, 4,096 iterations a \
                 connection) is the same either way and bounds the ratio; PgBouncer saves \
                 only PostgreSQL's side (a backend's fork and start-up), and on {} shared \
                 cores pgbench's PBKDF2 competes with both",
                (3.0 - x) / 3.0 * 100.0,
                pooling::cores()
            )
        }
    );
}

fn hooks_section(w: &mut String, rows: &[HookRow]) {
    let _ = writeln!(
        w,
        "## 3. Hook cost\n\n\
         The same client charm (`tests/charms/pg-client`, the published v0 requirer) related \
         {rounds} times to the PgBouncer charm and {rounds} times to `tests/charms/pg-provider` \
         (a Python `ops` charm answering `database_requested` with the published v0 \
         `DatabaseProvides`: credentials, endpoints, database, version), one unit each, on \
         the same local model, then the relation removed. Hooks run one at a time. Wall \
         time is from the hook's start to its exit, as the agent sees it; CPU (user + \
         system) and peak resident memory are the kernel's for the hook's process \
         (`wait4`); tool calls are those the agent answered. Medians per event. The peak \
         memory columns do not compare the charms: the agent forks the hook's process (it \
         sets it up before `exec`), and the kernel's high-water mark keeps the pages the \
         fork inherited from the controller, about 50 MiB here, for both; the Rust \
         dispatch's own peak is measured by `cargo bench -p example-charm --bench \
         dispatch` (2.5 MiB for an empty hook).\n\n\
         The PgBouncer charm does more than the Python one: on the request it creates the \
         role and the database in PostgreSQL (its wall time includes waiting for \
         PostgreSQL, whose CPU is not in the hook's), renders and reloads PgBouncer's \
         configuration, and when the relation goes drops the role; the Python provider only writes \
         relation data.\n\n\
         ![Hook cost](docs/benchmarks/hook-cost.png)\n\n\
         | event | PgBouncer wall ms | Python wall ms | Python ÷ PgBouncer | PgBouncer CPU ms | Python CPU ms | PgBouncer peak MiB | Python peak MiB | PgBouncer tool calls | Python tool calls | hooks (ours, Python) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        rounds = 3
    );
    let mut worst: Option<(f64, &str)> = None;
    for event in model::EVENTS {
        let ours = rows
            .iter()
            .find(|r| r.charm == model::PGBOUNCER && r.event == event);
        let py = rows
            .iter()
            .find(|r| r.charm == model::PYTHON_PROVIDER && r.event == event);
        let (Some(o), Some(p)) = (ours, py) else {
            continue;
        };
        let x = ratio(p.wall_ms, o.wall_ms);
        if o.hooks > 0 && p.hooks > 0 && worst.is_none_or(|(v, _)| x < v) {
            worst = Some((x, event));
        }
        let _ = writeln!(
            w,
            "| {event} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {}, {} |",
            o.wall_ms,
            p.wall_ms,
            times(x),
            o.cpu_ms,
            p.cpu_ms,
            o.peak_rss_mib,
            p.peak_rss_mib,
            o.tool_calls,
            p.tool_calls,
            o.hooks,
            p.hooks
        );
    }
    if let Some((x, event)) = worst {
        let _ = writeln!(
            w,
            "\nTarget: ≥ 50× less wall time per hook. Lowest ratio: {} ({event}) → {}{}.\n",
            times(x),
            verdict(x >= 50.0),
            if x >= 50.0 {
                String::new()
            } else {
                " — missed where the charm waits on PostgreSQL (creating or dropping a role \
                 and a database takes tens of milliseconds of server work that no \
                 Python provider without a database does); where both only touch relation \
                 data the ratio is the start-up cost of a Python interpreter with `ops` \
                 against a small static binary"
                    .to_string()
            }
        );
    }
}

fn credentials_section(w: &mut String, m: &model::Results) {
    let _ = writeln!(
        w,
        "## 4. Time to credentials\n\n\
         On the local model (etcd, PostgreSQL 15 under Patroni, deployed in {:.0} s), PgBouncer \
         with 1, 3 and 5 units; for each, 3 rounds of a new Python client \
         (`tests/charms/pg-client`) related to PgBouncer, hooks run as the local model's \
         daemon runs them (up to 4 units at once, each unit one hook at a time). Times from \
         `integrate`, less the bench's own checking; medians of the rounds. \"Usable\" is a \
         `psql` login with the published credentials through every PgBouncer unit, to the \
         database and its read-only twin.\n\n\
         PostgreSQL runs with `experimental_max_connections = 1000` here. With its default \
         (max(4 × cores, 100): 100 on this machine) a run stalled at 5 units: logins through \
         PgBouncer failed with \"server login has been failing, cached error: remaining \
         connection slots are reserved for non-replication superuser connections\". Every \
         PgBouncer process keeps `min_pool_size` server connections for each database and \
         user a client has logged in with, and the charm's `max_db_connections` (100 by \
         default) is split over the processes per database, not over the whole server: 5 \
         units × 2 processes × a few connections × each client database (and its read-only \
         twin) outgrow 100 after a dozen clients have logged in. That is a limit of the \
         charm's defaults worth knowing: size PostgreSQL's `max_connections` for units × \
         processes × databases × `min_pool_size`, or lower `max_db_connections`.\n\n\
         ![Time to credentials](docs/benchmarks/credentials.png)\n\n\
         | PgBouncer units | published s | usable through every unit s | client reports them s | hooks until usable |\n\
         |---:|---:|---:|---:|---:|",
        m.deploy_s
    );
    for r in &m.credentials {
        let _ = writeln!(
            w,
            "| {} | {:.2} | {:.2} | {:.2} | {} |",
            r.units, r.published_s, r.usable_s, r.client_active_s, r.hooks_until_usable
        );
    }
    if let Some(r) = m.credentials.iter().find(|r| r.units == 3) {
        let _ = writeln!(
            w,
            "\nTarget: usable under 1 s at 3 units: {:.2} s → {}{}.\n",
            r.usable_s,
            verdict(r.usable_s < 1.0),
            if r.usable_s < 1.0 {
                String::new()
            } else {
                format!(
                    " by {:.2} s: every unit must render and load the new database before the \
                     leader hands the credentials out, and each of those hooks is a process on \
                     a shared 2-core machine, queued behind the Python client's own hooks",
                    r.usable_s - 1.0
                )
            }
        );
    }
}

fn scale_section(w: &mut String, m: &model::Results, counts: &[usize]) {
    let _ = writeln!(
        w,
        "## 5. Many clients\n\n\
         {units} PgBouncer units related to {list} client applications. The clients are a \
         shell-script charm written by the bench (on `database` relation-created it sets \
         `database` and `requested-secrets` in its application bag, as the v0 requirer \
         does, and nothing else): Python clients would spend the time budget on their own \
         hooks. Clients are related ten at a time and the model settled; then one more is \
         related and measured: PgBouncer's hooks for it (how many, their total and longest \
         wall time), the configuration the leader publishes (`cfg_file`), and the time from \
         `integrate` until no hook is due on any unit, hooks run as the daemon runs them; \
         its credentials are then checked through every unit. The last column is the \
         controller's own time for each hook while the others were related (picking the \
         hook, preparing the unit's view of the model, committing what the hook changed \
         and saving the model), on the thread that starts and commits hooks: what grows \
         with the model on the local model's side.\n\n\
         ![Many clients](docs/benchmarks/scale.png)\n\n\
         | clients | PgBouncer hooks for the last | their total ms | longest ms | cfg_file bytes | integrate to converged s | s per client while relating the others | controller ms a hook meanwhile |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|",
        units = model::SCALE_UNITS,
        list = counts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in &m.scale {
        let _ = writeln!(w, "{}", r.table_row());
    }
    if !counts.contains(&1000) && m.scale.len() >= 2 {
        let a = &m.scale[m.scale.len() - 2];
        let b = &m.scale[m.scale.len() - 1];
        let per = |x: f64, y: f64| (y - x) / (b.clients - a.clients) as f64;
        let cfg = b.cfg_bytes as f64
            + per(a.cfg_bytes as f64, b.cfg_bytes as f64) * (1000 - b.clients) as f64;
        let hook = b.hook_max_ms + per(a.hook_max_ms, b.hook_max_ms) * (1000 - b.clients) as f64;
        let relate = b.batch_s_per_client * (1000 - b.clients) as f64;
        let _ = writeln!(
            w,
            "\n1,000 clients did not fit this run's time budget (relating the others took \
             {:.2} s a client at {} clients, so about {:.0} minutes more). Extrapolated \
             linearly from {} to {} clients (an estimate, not a measurement): `cfg_file` about \
             {:.0} KiB, the longest hook for the 1,000th client about {:.0} ms. The charm's \
             rendering alone at 1,000 clients is measured by `cargo bench -p pgbouncer-k8s \
             --bench pgbouncer` (milliseconds). Run `REPORT_CLIENTS=10,100,1000` to measure it.\n",
            b.batch_s_per_client,
            b.clients,
            relate / 60.0,
            a.clients,
            b.clients,
            cfg / 1024.0,
            hook
        );
    }
}

/// Where the changes section starts and ends in `BENCHMARKS.md`, so that
/// `REPORT_SECTIONS=changes` can measure it again alone.
pub const CHANGES_START: &str = "<!-- changes under load: start -->";
/// See [`CHANGES_START`].
pub const CHANGES_END: &str = "<!-- changes under load: end -->";

/// The changes section between its markers; `alone` when it was measured
/// apart from the rest of the file (`REPORT_SECTIONS=changes`).
pub fn changes_section(c: &changes::Results, measured_alone: bool) -> String {
    let alone = match measured_alone {
        true => {
            "This section was measured again alone (`REPORT_SECTIONS=changes`), apart from \
             the run the sections above come from.\n\n"
        }
        false => "",
    };
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "{CHANGES_START}\n## 6. Changes under load\n\n\
         The end-to-end test `under_load` (`cargo test -p e2e --test under_load`) run by the \
         report with its figures recorded: etcd, PostgreSQL with two units under Patroni (a \
         synchronous standby), PgBouncer with one unit in transaction mode, and a client on \
         the v0 library, on the local model. pgbench (TPC-B-like, 4 clients, `-P 1`) runs through PgBouncer while a \
         second client is related (PgBouncer reloads), while PgBouncer's charm is refreshed \
         with a new connection per transaction (`-C`; its processes restart one at a time, \
         each drained first), and while `promote-to-primary` switches over to the replica. \
         Then the primary's machine is lost while a writer inserts through PgBouncer, one \
         `psql` per row. The test asserts what the targets ask; the figures are recorded \
         before its assertions, so a miss is reported here too.\n\n\
         For the switchover, PgBouncer's units pause their pools before Patroni switches over \
         and resume once they serve the new primary, so clients wait instead of failing; in \
         session mode a client holds its server connection, the pause cannot finish, and such \
         a client is cut as it would be without the pause.\n\n\
         {alone}\
         Targets: no client dropped and no statement failed for each planned change; after \
         the unplanned failover, client errors stop within 2 s of Patroni's promotion and no \
         acknowledged write is lost.\n\n\
         | change | transactions | failed | clients aborted | longest stall s | slowest second (pgbench progress) | target |\n\
         |---|---:|---:|---:|---:|---|---|"
    );
    let number = |n: Option<u64>| n.map_or("–".to_string(), |n| n.to_string());
    for p in &c.planned {
        let met = p.failed == Some(0) && p.aborted == 0 && p.transactions.is_some_and(|n| n > 0);
        let _ = writeln!(
            w,
            "| pgbench {} | {} | {} | {} | {} | {} | {} |",
            p.change,
            number(p.transactions),
            number(p.failed),
            p.aborted,
            p.longest_stall_s,
            match p.slowest_second.trim() {
                "" => "– (no progress report)".to_string(),
                line => format!("`{line}`"),
            },
            verdict(met)
        );
    }
    if !c.planned.iter().any(|p| p.change.contains("switchover")) {
        let _ = writeln!(
            w,
            "| a planned switchover | – | – | – | – | not measured | {} |",
            verdict(false)
        );
    }
    match &c.failover {
        Some(f) => {
            let _ = writeln!(
                w,
                "\n| the primary's machine lost | |\n|---|---:|\n\
                 | inserts acknowledged | {} |\n| inserts failed | {} |\n\
                 | Patroni's promotion after the loss | {:.1} s |\n\
                 | new endpoints published after the promotion | {:.1} s |\n\
                 | last client error after the promotion | {} |\n\
                 | acknowledged rows missing on the new primary | {} |\n",
                f.acknowledged,
                f.failed,
                f.promoted_after_loss_s,
                f.published_after_promotion_s,
                f.errors_after_promotion_s
                    .map_or("none".to_string(), |s| format!("{s:.1} s")),
                f.lost
            );
            let stop = f.errors_after_promotion_s.unwrap_or(0.0);
            let _ = writeln!(
                w,
                "Target: client errors stop within 2 s of the promotion: {:.1} s → {}{}. \
                 No acknowledged write lost: {} → {}.\n",
                stop,
                verdict(stop <= 2.0),
                if stop <= 2.0 {
                    String::new()
                } else {
                    format!(
                        " by {:.1} s: PgBouncer learns the new primary from the endpoints \
                         PostgreSQL's leader publishes ({:.1} s after the promotion here: \
                         Patroni's callback raises a Pebble notice, the new primary's charm \
                         records the change in its peer bag, the leader's charm publishes), \
                         then reloads; until then it keeps answering with the old server's \
                         error",
                        stop - 2.0,
                        f.published_after_promotion_s
                    )
                },
                f.lost,
                verdict(f.lost == 0)
            );
        }
        None => {
            let _ = writeln!(w, "\nThe failover was not measured: {}.\n", verdict(false));
        }
    }
    if let Some(failure) = &c.failure {
        let _ = writeln!(w, "The test failed: `{}`\n", failure.replace('`', "'"));
    }
    let _ = writeln!(w, "{CHANGES_END}");
    s
}

/// `text` with its changes section replaced by `section` (appended when
/// it has none yet).
pub fn splice_changes(text: &str, section: &str) -> String {
    match (text.find(CHANGES_START), text.find(CHANGES_END)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{}{}",
            &text[..start],
            section.trim_end(),
            &text[end + CHANGES_END.len()..]
        ),
        _ => format!("{}\n\n{}", text.trim_end(), section),
    }
}
