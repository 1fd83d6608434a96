//! The charm's options, validated. An invalid option blocks the charm with the
//! option's name, and nothing is applied.

use charm::backend::JsonMap;
pub use charm::options::ConfigError;
use charm::options::Options;
use std::collections::BTreeMap;

/// When PgBouncer returns a server connection to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
    Statement,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

/// How clients outside the model reach the units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expose {
    No,
    NodePort,
    LoadBalancer,
}

/// How each process's log file is rotated: past a size or daily, keeping a
/// number of old files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRotation {
    pub max_size_kb: u32,
    pub keep: u32,
}

/// The validated options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharmConfig {
    pub listen_port: u16,
    pub pool_mode: PoolMode,
    /// Across every process of every unit; 0 means no limit.
    pub max_db_connections: u32,
    pub max_prepared_statements: u32,
    pub expose: Expose,
    pub loadbalancer_annotations: BTreeMap<String, String>,
    pub log_rotation: LogRotation,
}

impl CharmConfig {
    /// Validates what `config-get` printed. The first bad option is reported.
    pub fn from_raw(raw: &JsonMap) -> Result<CharmConfig, ConfigError> {
        let o = Options(raw);
        let listen_port = o.int("listen_port", 1024, 65535)?.unwrap_or(6432) as u16;
        let pool_mode = o.choice(
            "pool_mode",
            "session",
            &[
                ("session", PoolMode::Session),
                ("transaction", PoolMode::Transaction),
                ("statement", PoolMode::Statement),
            ],
        )?;
        let max_db_connections = o.int("max_db_connections", 0, 100_000)?.unwrap_or(100) as u32;
        let max_prepared_statements =
            o.int("max_prepared_statements", 0, 1000)?.unwrap_or(100) as u32;
        let expose = o.choice(
            "expose-external",
            "false",
            &[
                ("false", Expose::No),
                ("nodeport", Expose::NodePort),
                ("loadbalancer", Expose::LoadBalancer),
            ],
        )?;
        let annotations = o.text("loadbalancer-extra-annotations")?.unwrap_or("{}");
        let loadbalancer_annotations = serde_json::from_str(annotations).map_err(|_| {
            ConfigError::new(
                "loadbalancer-extra-annotations",
                "must be a JSON object of string values",
            )
        })?;
        let log_rotation = LogRotation {
            max_size_kb: o.int("log_rotation_size", 1, 1 << 20)?.unwrap_or(10240) as u32,
            keep: o.int("log_rotation_files", 1, 100)?.unwrap_or(10) as u32,
        };
        Ok(CharmConfig {
            listen_port,
            pool_mode,
            max_db_connections,
            max_prepared_statements,
            expose,
            loadbalancer_annotations,
            log_rotation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(v: Value) -> Result<CharmConfig, ConfigError> {
        CharmConfig::from_raw(v.as_object().unwrap())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c.listen_port, 6432);
        assert_eq!(c.pool_mode, PoolMode::Session);
        assert_eq!(
            (c.max_db_connections, c.max_prepared_statements),
            (100, 100)
        );
        assert_eq!(c.expose, Expose::No);
        assert_eq!(
            c.log_rotation,
            LogRotation {
                max_size_kb: 10240,
                keep: 10
            }
        );
    }

    #[test]
    fn each_invalid_option_is_named() {
        let cases = [
            (json!({"listen_port": 0}), "listen_port"),
            (json!({"listen_port": 80}), "listen_port"),
            (json!({"listen_port": 70000}), "listen_port"),
            (json!({"listen_port": "6432"}), "listen_port"),
            (json!({"pool_mode": "sessions"}), "pool_mode"),
            (json!({"max_db_connections": -1}), "max_db_connections"),
            (
                json!({"max_prepared_statements": 1001}),
                "max_prepared_statements",
            ),
            (json!({"expose-external": "ingress"}), "expose-external"),
            (json!({"log_rotation_size": 0}), "log_rotation_size"),
            (json!({"log_rotation_files": 101}), "log_rotation_files"),
            (
                json!({"loadbalancer-extra-annotations": "[1]"}),
                "loadbalancer-extra-annotations",
            ),
            (
                json!({"loadbalancer-extra-annotations": "{\"a\": 1}"}),
                "loadbalancer-extra-annotations",
            ),
        ];
        for (raw, option) in cases {
            let e = parse(raw.clone()).unwrap_err();
            assert_eq!(e.option, option, "{raw}");
            assert!(e.to_string().contains(option));
        }
    }

    #[test]
    fn good_values_are_read() {
        let c = parse(json!({
            "listen_port": 7432, "pool_mode": "transaction", "max_db_connections": 0,
            "max_prepared_statements": 0, "expose-external": "nodeport",
            "loadbalancer-extra-annotations": "{\"x\": \"y\"}"
        }))
        .unwrap();
        assert_eq!(c.listen_port, 7432);
        assert_eq!(c.pool_mode, PoolMode::Transaction);
        assert_eq!(c.max_db_connections, 0);
        assert_eq!(c.expose, Expose::NodePort);
        assert_eq!(c.loadbalancer_annotations["x"], "y");
    }
}
