//! Option values for the tests that set every option at once.

use postgresql_k8s::config::table::{Kind, TUNING};
use serde_json::{json, Map, Value};

/// A value other than the default for every row, within its range.
pub fn changed_values() -> Map<String, Value> {
    let mut raw = Map::new();
    for t in TUNING {
        let v = match t.kind {
            Kind::Flag(d) => json!(!d),
            Kind::Int { default, max, .. } if default < max => json!(default + 1),
            Kind::Int { default, .. } => json!(default - 1),
            Kind::Float { default, max, .. } if default + 0.5 <= max => json!(default + 0.5),
            Kind::Float { default, .. } => json!(default - 0.25),
            Kind::Word { default, words } => {
                json!(words.iter().find(|w| **w != default).unwrap_or(&default))
            }
            Kind::DateStyle(_) => json!("SQL, DMY"),
            Kind::TimeZone(_) => json!("Europe/Paris"),
        };
        raw.insert(t.option.into(), v);
    }
    // The two options that share track_functions cannot disagree.
    raw.insert("logging_track_functions".into(), json!("pl"));
    raw.insert("optimizer_track_functions".into(), json!("pl"));
    raw
}

/// [`changed_values`], except those a cluster under test cannot work with:
/// sessions ended on any error, read-only transactions, MD5 password hashes
/// (the users log in with SCRAM), backslashes in strings, timeouts of a
/// millisecond, debug messages to every client and a date style Patroni's
/// driver cannot read.
pub fn for_a_running_cluster() -> Map<String, Value> {
    let mut raw = changed_values();
    for (option, value) in [
        ("response_exit_on_error", json!(false)),
        ("request_default_transaction_read_only", json!(false)),
        ("instance_password_encryption", json!("scram-sha-256")),
        ("request_standard_conforming_strings", json!(true)),
        ("connection_statement_timeout", json!(600_000)),
        ("request_lock_timeout", json!(600_000)),
        (
            "session_idle_in_transaction_session_timeout",
            json!(600_000),
        ),
        ("logging_client_min_messages", json!("warning")),
        ("request_date_style", json!("ISO, DMY")),
        (
            "request_default_transaction_isolation",
            json!("repeatable read"),
        ),
    ] {
        raw.insert(option.into(), value);
    }
    raw
}
