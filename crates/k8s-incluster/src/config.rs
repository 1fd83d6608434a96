//! In-cluster configuration, as client-go's `InClusterConfig` reads it: the API
//! server from `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, the service
//! account's token and CA from its directory, and the namespace from there too
//! (or Juju's model name, which is the namespace Juju deploys into).

use crate::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Kubernetes mounts the service account into every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Overrides [`SERVICE_ACCOUNT_DIR`] (the local model points it at each
/// unit's own service account).
pub const SERVICE_ACCOUNT_DIR_VAR: &str = "CHARM_SERVICE_ACCOUNT_DIR";

/// Where this process's service account is: [`SERVICE_ACCOUNT_DIR`] unless
/// [`SERVICE_ACCOUNT_DIR_VAR`] names another directory.
pub fn service_account_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    env(SERVICE_ACCOUNT_DIR_VAR)
        .filter(|d| !d.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR))
}

/// The environment variable that says the process runs in a pod.
pub const SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";

/// The API server's port, beside [`SERVICE_HOST`].
pub const SERVICE_PORT: &str = "KUBERNETES_SERVICE_PORT";

/// How long a connection, a write or a read may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API server is and how to authenticate to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The API server's host name or address.
    pub host: String,
    pub port: u16,
    /// The bearer token's file, read by each [`crate::Client::new`].
    pub token_file: PathBuf,
    /// The PEM bundle of the CA the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// The namespace the objects live in.
    pub namespace: String,
    /// The limit on connecting, and on each write and read.
    pub timeout: Duration,
}

impl Config {
    /// The configuration of the pod this process runs in.
    pub fn in_cluster() -> Result<Config, Error> {
        Config::from_env(|k| std::env::var(k).ok(), Path::new(SERVICE_ACCOUNT_DIR))
    }

    /// The configuration from these environment variables and this service
    /// account directory (`token`, `ca.crt`, `namespace`).
    pub fn from_env(env: impl Fn(&str) -> Option<String>, account: &Path) -> Result<Config, Error> {
        let set = |name| env(name).filter(|v: &String| !v.trim().is_empty());
        let (Some(host), Some(port)) = (set(SERVICE_HOST), set(SERVICE_PORT)) else {
            return Err(Error::NotInCluster);
        };
        let port = port
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::Config(format!("{SERVICE_PORT}={port:?} is not a port")))?;
        let namespace_file = account.join("namespace");
        let namespace = match std::fs::read_to_string(&namespace_file) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            _ => set("JUJU_MODEL_NAME").ok_or_else(|| {
                Error::Config(format!(
                    "no namespace: {} is missing and JUJU_MODEL_NAME is not set",
                    namespace_file.display()
                ))
            })?,
        };
        Ok(Config {
            host: host.trim().to_string(),
            port,
            token_file: account.join("token"),
            ca_file: account.join("ca.crt"),
            namespace,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// `host:port`, with an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tempfile::TempDir;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn account(namespace: Option<&str>) -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(ns) = namespace {
            std::fs::write(dir.path().join("namespace"), format!("{ns}\n")).unwrap();
        }
        dir
    }

    #[test]
    fn reads_the_pods_environment_and_service_account() {
        let dir = account(Some("prod"));
        let config = Config::from_env(
            env(&[(SERVICE_HOST, "10.152.183.1"), (SERVICE_PORT, "443")]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            config,
            Config {
                host: "10.152.183.1".into(),
                port: 443,
                token_file: dir.path().join("token"),
                ca_file: dir.path().join("ca.crt"),
                namespace: "prod".into(),
                timeout: DEFAULT_TIMEOUT,
            }
        );
        assert_eq!(config.authority(), "10.152.183.1:443");
        let v6 = Config {
            host: "fd00::1".into(),
            ..config
        };
        assert_eq!(v6.authority(), "[fd00::1]:443");
    }

    #[test]
    fn the_model_name_stands_in_for_a_missing_namespace_file() {
        let dir = account(None);
        let vars = [
            (SERVICE_HOST, "h"),
            (SERVICE_PORT, "6443"),
            ("JUJU_MODEL_NAME", "db"),
        ];
        assert_eq!(
            Config::from_env(env(&vars), dir.path()).unwrap().namespace,
            "db"
        );
        let err = Config::from_env(env(&vars[..2]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("no namespace"), "{err}");
    }

    #[test]
    fn outside_a_pod_or_with_a_bad_port_there_is_no_config() {
        let dir = account(Some("x"));
        for vars in [
            &[][..],
            &[(SERVICE_HOST, "h")],
            &[(SERVICE_PORT, "443")],
            &[(SERVICE_HOST, " "), (SERVICE_PORT, "443")],
        ] {
            assert!(matches!(
                Config::from_env(env(vars), dir.path()),
                Err(Error::NotInCluster)
            ));
        }
        for port in ["https", "0", "70000"] {
            let err = Config::from_env(
                env(&[(SERVICE_HOST, "h"), (SERVICE_PORT, port)]),
                dir.path(),
            )
            .unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
        }
    }
}
