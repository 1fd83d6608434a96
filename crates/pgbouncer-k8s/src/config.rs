//! The charm's options, validated. An invalid option blocks the charm with the
//! option's name, and nothing is applied.

use charm::backend::JsonMap;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

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
}

/// An option with a value the charm cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub option: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config option {}: {}", self.option, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn int(
    raw: &JsonMap,
    option: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let v = match raw.get(option) {
        None | Some(Value::Null) => return Ok(default),
        Some(v) => v,
    };
    let n = v.as_i64().ok_or_else(|| ConfigError {
        option,
        message: format!("expected a whole number, got {v}"),
    })?;
    if n < min || n > max {
        return Err(ConfigError {
            option,
            message: format!("must be between {min} and {max}, got {n}"),
        });
    }
    Ok(n)
}

fn text<'a>(
    raw: &'a JsonMap,
    option: &'static str,
    default: &'a str,
) -> Result<&'a str, ConfigError> {
    match raw.get(option) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(ConfigError {
            option,
            message: format!("expected a string, got {v}"),
        }),
    }
}

impl CharmConfig {
    /// Validates what `config-get` printed. The first bad option is reported.
    pub fn from_raw(raw: &JsonMap) -> Result<CharmConfig, ConfigError> {
        let listen_port = int(raw, "listen_port", 6432, 1024, 65535)? as u16;
        let pool_mode = match text(raw, "pool_mode", "session")? {
            "session" => PoolMode::Session,
            "transaction" => PoolMode::Transaction,
            "statement" => PoolMode::Statement,
            other => {
                return Err(ConfigError {
                    option: "pool_mode",
                    message: format!("must be session, transaction or statement, got {other:?}"),
                })
            }
        };
        let max_db_connections = int(raw, "max_db_connections", 100, 0, 100_000)? as u32;
        let max_prepared_statements = int(raw, "max_prepared_statements", 100, 0, 1000)? as u32;
        let expose = match text(raw, "expose-external", "false")? {
            "false" => Expose::No,
            "nodeport" => Expose::NodePort,
            "loadbalancer" => Expose::LoadBalancer,
            other => {
                return Err(ConfigError {
                    option: "expose-external",
                    message: format!("must be false, nodeport or loadbalancer, got {other:?}"),
                })
            }
        };
        let annotations = text(raw, "loadbalancer-extra-annotations", "{}")?;
        let loadbalancer_annotations =
            serde_json::from_str(annotations).map_err(|_| ConfigError {
                option: "loadbalancer-extra-annotations",
                message: "must be a JSON object of string values".into(),
            })?;
        Ok(CharmConfig {
            listen_port,
            pool_mode,
            max_db_connections,
            max_prepared_statements,
            expose,
            loadbalancer_annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
