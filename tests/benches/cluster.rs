//! How fast the PostgreSQL charm converges on the local model, with real
//! Patroni, etcd and PostgreSQL:
//!
//! - from `deploy -n 3` (etcd already up) to every unit active with one
//!   primary, beside the time one bare PostgreSQL takes to `initdb` and start
//!   in the same run;
//! - from a switchover (`promote-to-primary`) to the new `endpoints` in a
//!   client relation;
//! - from losing the primary to the new `endpoints`, beside Patroni's leader
//!   TTL (how long a replica waits for a silent leader's lock to expire):
//!   once with its unit removed at once (Patroni stops cleanly and releases
//!   the lock), once with its machine lost (SIGKILL: the lock must expire).
//!   The primary goes only once a synchronous standby runs: before that
//!   Patroni rightly promotes nobody, as no replica is known to hold every
//!   committed transaction.
//!
//! Run with `cargo bench -p e2e --bench cluster`. Each figure is one run: each
//! takes tens of seconds of real cluster work.

#![allow(clippy::unwrap_used)]

use e2e::{
    action, active, address, charm, cluster_settled, controller, converge, converge_polling,
    primary, python_charm, synchronous_standby_runs, units, Scratch,
};
use local_model::controller::Controller;
use std::time::{Duration, Instant};

const APP: &str = "postgresql-k8s";
/// Patroni's `ttl` as the charm renders it.
const LEADER_TTL: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn client_endpoints(c: &Controller) -> String {
    c.model
        .relations
        .iter()
        .find(|r| r.end_of("client").is_some())
        .and_then(|r| r.app_bags.get(APP))
        .and_then(|b| b.data.get("endpoints").cloned())
        .unwrap_or_default()
}

fn endpoints_at(c: &Controller, unit: &str) -> bool {
    client_endpoints(c) == format!("{}:5432", address(c, unit))
}

/// Waits until a unit other than `gone` is the primary and the client's
/// `endpoints` point at it; answers that unit.
fn new_primary_with_endpoints(c: &mut Controller, gone: &str) -> String {
    converge_polling(c, Duration::from_secs(300), POLL, |c| {
        units(c, APP)
            .iter()
            .any(|u| endpoints_at(c, u) && active(c, u).as_deref() == Some("Primary"))
    });
    let primary = units(c, APP)
        .into_iter()
        .find(|u| active(c, u).as_deref() == Some("Primary"))
        .expect("a primary");
    assert_ne!(primary, gone);
    primary
}

fn main() {
    let scratch = Scratch::new("bench-cluster");
    let mut c = controller(&scratch);
    c.deploy(&charm(scratch.path(), "etcd"), "etcd", 1, &[])
        .unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        active(c, "etcd/0").is_some()
    });

    let baseline = Instant::now();
    let bare = postgres_admin::testing::TestCluster::start().expect("a bare PostgreSQL starts");
    let baseline = baseline.elapsed();
    drop(bare);

    let deploy = Instant::now();
    c.deploy(&charm(scratch.path(), APP), APP, 3, &[]).unwrap();
    c.integrate(&format!("{APP}:etcd"), "etcd:etcd").unwrap();
    converge_polling(&mut c, Duration::from_secs(300), POLL, |c| {
        cluster_settled(c, 3)
    });
    let deploy = deploy.elapsed();

    c.deploy(&python_charm(scratch.path(), "pg-client"), "client", 1, &[])
        .unwrap();
    c.integrate("client:database", &format!("{APP}:database"))
        .unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        active(c, "client/0").is_some_and(|m| m.contains('@'))
    });

    let old = primary(&mut c, &format!("{APP}/0"));
    let target = units(&c, APP).into_iter().find(|u| *u != old).unwrap();
    let switchover = Instant::now();
    action(
        &mut c,
        &target,
        "promote-to-primary",
        serde_json::json!({"scope": "unit"}),
    );
    converge_polling(&mut c, Duration::from_secs(120), POLL, |c| {
        endpoints_at(c, &target)
    });
    let switchover = switchover.elapsed();

    // Patroni promotes only a replica it knows to be synchronous: wait until
    // the new primary has named one, as it does within a loop or two.
    let synchronous = Instant::now();
    converge_polling(&mut c, Duration::from_secs(120), POLL, |c| {
        synchronous_standby_runs(c, &target)
    });
    let synchronous = synchronous.elapsed();

    // The primary's unit removed at once: Patroni stops cleanly and hands
    // the leader lock back.
    let removed = Instant::now();
    c.remove_unit_abruptly(&target).unwrap();
    let new_primary = new_primary_with_endpoints(&mut c, &target);
    let removed = removed.elapsed();

    // Then the new primary's machine is lost: nothing releases the lock, and
    // the last replica waits for it to expire.
    converge_polling(&mut c, Duration::from_secs(120), POLL, |c| {
        synchronous_standby_runs(c, &new_primary)
    });
    let crashed = Instant::now();
    c.crash_unit(&new_primary).unwrap();
    new_primary_with_endpoints(&mut c, &new_primary);
    let crashed = crashed.elapsed();

    let secs = |d: Duration| d.as_secs_f64();
    let line = |what: &str, d: Duration, beside: String| {
        println!("  {what:<48} {:>6.1} s  {beside}", secs(d));
    };
    let ttl = |d: Duration| {
        format!(
            "({:.2}x Patroni's leader TTL of {} s)",
            secs(d) / secs(LEADER_TTL),
            LEADER_TTL.as_secs()
        )
    };
    println!("PostgreSQL cluster on the local model (real Patroni 3, etcd 3.4, PostgreSQL 15)");
    line(
        "deploy -n 3 to all active:",
        deploy,
        format!(
            "({:.1}x one bare initdb + start: {:.1} s)",
            secs(deploy) / secs(baseline),
            secs(baseline)
        ),
    );
    line(
        "switchover to new client endpoints:",
        switchover,
        String::new(),
    );
    line(
        "then to a running sync standby:",
        synchronous,
        String::new(),
    );
    line(
        "primary's unit removed to new client endpoints:",
        removed,
        ttl(removed),
    );
    line(
        "primary's machine lost to new client endpoints:",
        crashed,
        ttl(crashed),
    );
}
