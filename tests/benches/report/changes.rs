//! Changes under load: what clients see while the system changes. The
//! end-to-end test `under_load` is the one scenario (a client related while
//! pgbench runs through PgBouncer, PgBouncer's rolling restart, a planned
//! switchover, PostgreSQL's rolling restart, the primary's machine lost
//! under a writer); this runs it in
//! this build's profile and reads the figures it records before asserting.

use std::process::Command;

/// pgbench's figures for one planned change.
pub struct Planned {
    /// What changed, as the test names it.
    pub change: String,
    pub transactions: Option<u64>,
    pub failed: Option<u64>,
    pub aborted: u64,
    /// pgbench's progress line for its slowest second, when it reported one.
    pub slowest_second: String,
    /// The longest run of seconds without a transaction.
    pub longest_stall_s: u64,
}

/// The writer's figures across the loss of the primary's machine.
pub struct Failover {
    pub acknowledged: u64,
    pub failed: u64,
    pub promoted_after_loss_s: f64,
    pub published_after_promotion_s: f64,
    /// When the last client error came, after Patroni's promotion (none: no error).
    pub errors_after_promotion_s: Option<f64>,
    /// Acknowledged rows missing on the new primary.
    pub lost: u64,
}

/// What one run of the scenario gave.
pub struct Results {
    pub planned: Vec<Planned>,
    pub failover: Option<Failover>,
    /// The test's failure, when it failed: the figures above are those
    /// recorded up to that point.
    pub failure: Option<String>,
}

impl Results {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "planned": self.planned.iter().map(|p| serde_json::json!({
                "change": p.change,
                "transactions": p.transactions,
                "failed": p.failed,
                "aborted": p.aborted,
                "slowest_second": p.slowest_second,
                "longest_stall_s": p.longest_stall_s,
            })).collect::<Vec<_>>(),
            "failover": self.failover.as_ref().map(|f| serde_json::json!({
                "acknowledged": f.acknowledged,
                "failed": f.failed,
                "promoted_after_loss_s": f.promoted_after_loss_s,
                "published_after_promotion_s": f.published_after_promotion_s,
                "errors_after_promotion_s": f.errors_after_promotion_s,
                "lost": f.lost,
            })),
            "failure": self.failure,
        })
    }
}

/// Runs `cargo test -p e2e --test under_load` in this build's profile with
/// the figures recorded into a scratch file, and reads them.
pub fn run() -> Results {
    let figures = std::env::temp_dir().join(format!("under-load-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&figures);
    let out = Command::new(env!("CARGO"))
        .current_dir(e2e::workspace())
        .args(["test", "-q", "--locked", "--release", "-p", "e2e"])
        .args(["--test", "under_load", "--", "--nocapture"])
        .env("UNDER_LOAD_FIGURES", &figures)
        .output()
        .expect("cargo runs");
    let text = std::fs::read_to_string(&figures).unwrap_or_default();
    let _ = std::fs::remove_file(&figures);
    let mut results = Results {
        planned: Vec::new(),
        failover: None,
        failure: (!out.status.success()).then(|| {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let panicked = stdout
                .lines()
                .skip_while(|l| !l.contains("panicked at"))
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            if panicked.is_empty() {
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_string()
            } else {
                panicked
            }
        }),
    };
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let number = |k: &str| v[k].as_u64();
        if v.get("acknowledged").is_some() {
            results.failover = Some(Failover {
                acknowledged: number("acknowledged").unwrap_or(0),
                failed: number("failed").unwrap_or(0),
                promoted_after_loss_s: v["promoted_after_loss_s"].as_f64().unwrap_or(f64::NAN),
                published_after_promotion_s: v["published_after_promotion_s"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                errors_after_promotion_s: v["errors_after_promotion_s"].as_f64(),
                lost: number("lost").unwrap_or(0),
            });
        } else {
            results.planned.push(Planned {
                change: v["change"].as_str().unwrap_or_default().to_string(),
                transactions: number("transactions"),
                failed: number("failed"),
                aborted: number("aborted").unwrap_or(0),
                slowest_second: v["slowest_second"].as_str().unwrap_or_default().to_string(),
                longest_stall_s: number("longest_stall_s").unwrap_or(0),
            });
        }
    }
    results
}
