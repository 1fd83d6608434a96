//! A charm's declarations: `metadata.yaml` (endpoints, containers), `config.yaml`
//! (options with types and defaults), `actions.yaml` (parameters with defaults)
//! and, in a packed charm, `manifest.yaml` (the bases it was built for).
//! Juju applies defaults and types before a charm sees config or action parameters;
//! the in-memory and local models use these to do the same.

use crate::backend::JsonMap;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Why a charm file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file's name.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what Juju accepts.
    #[error("{file} is not valid: {detail}")]
    Invalid {
        /// The file's name.
        file: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// An endpoint declared under `provides`, `requires` or `peers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct EndpointSpec {
    /// The interface's name.
    pub interface: String,
    /// How many relations the endpoint takes, when limited.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Whether the charm works without it.
    #[serde(default)]
    pub optional: bool,
}

/// `metadata.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct CharmMeta {
    /// The charm's name.
    pub name: String,
    /// Endpoints this charm provides, by name.
    #[serde(default)]
    pub provides: BTreeMap<String, EndpointSpec>,
    /// Endpoints this charm requires, by name.
    #[serde(default)]
    pub requires: BTreeMap<String, EndpointSpec>,
    /// Peer endpoints, by name.
    #[serde(default)]
    pub peers: BTreeMap<String, EndpointSpec>,
    /// Workload containers, by name (their declarations as written).
    #[serde(default)]
    pub containers: BTreeMap<String, serde_json::Value>,
    /// Storage, by name.
    #[serde(default)]
    pub storage: BTreeMap<String, StorageSpec>,
    /// What the charm assumes of the model (`k8s-api`, `juju >= 3.1`, or an
    /// `any-of`/`all-of` map), as written; the local model checks none of it.
    #[serde(default)]
    pub assumes: Vec<serde_json::Value>,
    /// Resources, by name: for a Kubernetes charm, the OCI image of each
    /// workload container.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceSpec>,
}

impl CharmMeta {
    /// The resource a workload container's image comes from.
    pub fn container_resource(&self, container: &str) -> Option<&str> {
        self.containers.get(container)?.get("resource")?.as_str()
    }
}

/// A resource declared in `metadata.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ResourceSpec {
    /// `oci-image` or `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For an OCI image, the image deployed when none is given.
    #[serde(rename = "upstream-source", default)]
    pub upstream_source: Option<String>,
}

/// A storage declared in `metadata.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StorageSpec {
    /// `filesystem` or `block`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How many instances a unit may have (`multiple: {range: 2-}`); one when absent.
    #[serde(default)]
    pub multiple: Option<StorageRange>,
}

/// `multiple` of a storage declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StorageRange {
    /// `N`, `N-M`, `N-` or `N+`.
    pub range: String,
}

impl StorageSpec {
    /// How many instances each unit starts with: the range's minimum, or one.
    pub fn initial_count(&self) -> u64 {
        self.multiple
            .as_ref()
            .and_then(|m| {
                m.range
                    .trim_end_matches(['-', '+'])
                    .split('-')
                    .next()
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(1)
    }
}

impl CharmMeta {
    /// Whether `endpoint` is a peer endpoint.
    pub fn is_peer(&self, endpoint: &str) -> bool {
        self.peers.contains_key(endpoint)
    }

    /// The interface of an endpoint, whichever role declares it.
    pub fn interface(&self, endpoint: &str) -> Option<&str> {
        self.provides
            .get(endpoint)
            .or_else(|| self.requires.get(endpoint))
            .or_else(|| self.peers.get(endpoint))
            .map(|e| e.interface.as_str())
    }
}

/// The type of a config option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    /// A string.
    String,
    /// An integer.
    Int,
    /// A floating-point number.
    Float,
    /// A boolean.
    Boolean,
    /// A secret's URI (a user secret granted to the application).
    Secret,
}

/// One config option.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ConfigOption {
    /// The option's type.
    #[serde(rename = "type")]
    pub kind: OptionType,
    /// Its default, when it has one.
    #[serde(default)]
    pub default: Option<Value>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

/// `config.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ConfigSpec {
    /// The options, by name.
    #[serde(default)]
    pub options: BTreeMap<String, ConfigOption>,
}

impl ConfigSpec {
    /// What `config-get` prints before anyone sets a value: the options that have defaults.
    pub fn defaults(&self) -> JsonMap {
        self.options
            .iter()
            .filter_map(|(k, o)| {
                o.default
                    .clone()
                    .filter(|d| !d.is_null())
                    .map(|d| (k.clone(), d))
            })
            .collect()
    }

    /// Reads `key=value` as `juju config` does: the value is typed by the option.
    pub fn parse_value(&self, key: &str, value: &str) -> Result<Value, String> {
        let opt = self
            .options
            .get(key)
            .ok_or_else(|| format!("unknown option {key:?}"))?;
        let bad = |t: &str| format!("option {key:?} expects {t}, got {value:?}");
        Ok(match opt.kind {
            OptionType::String | OptionType::Secret => Value::String(value.into()),
            OptionType::Int => Value::from(value.parse::<i64>().map_err(|_| bad("an integer"))?),
            OptionType::Float => Value::from(value.parse::<f64>().map_err(|_| bad("a number"))?),
            OptionType::Boolean => Value::Bool(match value {
                "true" | "True" | "TRUE" => true,
                "false" | "False" | "FALSE" => false,
                _ => return Err(bad("true or false")),
            }),
        })
    }

    /// Checks that every value belongs to an option and has its type.
    pub fn check(&self, values: &JsonMap) -> Result<(), String> {
        for (k, v) in values {
            let opt = self
                .options
                .get(k)
                .ok_or_else(|| format!("unknown option {k:?}"))?;
            let ok = match opt.kind {
                OptionType::String | OptionType::Secret => v.is_string(),
                OptionType::Int => v.is_i64() || v.is_u64(),
                OptionType::Float => v.is_number(),
                OptionType::Boolean => v.is_boolean(),
            };
            if !ok {
                return Err(format!("option {k:?} has the wrong type: {v}"));
            }
        }
        Ok(())
    }
}

/// One action's declaration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ActionSpec {
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Its parameters: a JSON schema per name.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

impl ActionSpec {
    /// The parameters' defaults (from each JSON-schema `default`).
    pub fn defaults(&self) -> JsonMap {
        self.params
            .iter()
            .filter_map(|(k, p)| p.get("default").map(|d| (k.clone(), d.clone())))
            .collect()
    }
}

/// `actions.yaml`: action name to declaration.
pub type ActionsSpec = BTreeMap<String, ActionSpec>;

fn read_yaml<T: for<'de> Deserialize<'de> + Default>(
    dir: &Path,
    file: &str,
    required: bool,
) -> Result<T, MetadataError> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(MetadataError::Read {
                file: path.display().to_string(),
                source,
            })
        }
    };
    parse_yaml(&text, file)
}

/// Parses one of the charm's YAML files (`file` names it in errors). An empty
/// document reads as the type's default.
pub fn parse_yaml<T: for<'de> Deserialize<'de> + Default>(
    text: &str,
    file: &str,
) -> Result<T, MetadataError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    yaml_serde::from_str(text).map_err(|e| MetadataError::Invalid {
        file: file.to_string(),
        detail: e.to_string(),
    })
}

/// One base a packed charm was built for, as `manifest.yaml` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ManifestBase {
    /// The distribution (`ubuntu`).
    pub name: String,
    /// Its release (`24.04`).
    pub channel: String,
    /// The architectures built for.
    #[serde(default)]
    pub architectures: Vec<String>,
}

/// `manifest.yaml`, which packing writes into a charm: the fields Juju reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// The bases the charm runs on (none for an unpacked directory).
    #[serde(default)]
    pub bases: Vec<ManifestBase>,
}

/// A charm directory's declarations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CharmFiles {
    /// `metadata.yaml`.
    pub meta: CharmMeta,
    /// `config.yaml` (empty when there is none).
    pub config: ConfigSpec,
    /// `actions.yaml` (empty when there is none).
    pub actions: ActionsSpec,
    /// `manifest.yaml` (empty when there is none).
    pub manifest: Manifest,
}

impl CharmFiles {
    /// Reads `metadata.yaml` (required), `config.yaml`, `actions.yaml` and
    /// `manifest.yaml` (optional).
    pub fn load(dir: &Path) -> Result<CharmFiles, MetadataError> {
        Ok(CharmFiles {
            meta: read_yaml(dir, "metadata.yaml", true)?,
            config: read_yaml(dir, "config.yaml", false)?,
            actions: read_yaml(dir, "actions.yaml", false)?,
            manifest: read_yaml(dir, "manifest.yaml", false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
options:
  listen_port: {type: int, default: 6432, description: port}
  pool_mode: {type: string, default: session}
  ratio: {type: float, default: 0.5}
  debug: {type: boolean, default: false}
  expose: {type: string}
"#;

    #[test]
    fn storage_starts_at_the_range_minimum() {
        let meta: CharmMeta = yaml_serde::from_str(
            "name: x\nstorage:\n  data: {type: filesystem}\n  logs: {type: filesystem, multiple: {range: 2-}}\n  none: {type: block, multiple: {range: 0-3}}\n",
        )
        .unwrap();
        let counts: Vec<u64> = meta
            .storage
            .values()
            .map(StorageSpec::initial_count)
            .collect();
        assert_eq!(counts, [1, 2, 0]);
        assert_eq!(meta.storage["none"].kind, "block");
    }

    #[test]
    fn assumptions_are_read_as_written() {
        let meta: CharmMeta = parse_yaml(
            "name: x\nassumes:\n  - k8s-api\n  - any-of:\n      - juju >= 3.4\n",
            "metadata.yaml",
        )
        .unwrap();
        assert_eq!(meta.assumes[0], "k8s-api");
        assert_eq!(meta.assumes[1]["any-of"][0], "juju >= 3.4");
        let none: CharmMeta = parse_yaml("name: x\n", "metadata.yaml").unwrap();
        assert!(none.assumes.is_empty());
    }

    #[test]
    fn config_defaults_and_typed_values() {
        let spec: ConfigSpec = parse_yaml(CONFIG, "config.yaml").unwrap();
        let d = spec.defaults();
        assert_eq!(d["listen_port"], 6432);
        assert!(!d.contains_key("expose"));
        assert_eq!(spec.parse_value("listen_port", "7000").unwrap(), 7000);
        assert_eq!(spec.parse_value("debug", "True").unwrap(), true);
        assert!(spec.parse_value("listen_port", "seven").is_err());
        assert!(spec.parse_value("nope", "1").is_err());
        assert!(spec.check(&d).is_ok());
        let mut bad = d.clone();
        bad.insert("listen_port".into(), "x".into());
        assert!(spec.check(&bad).unwrap_err().contains("listen_port"));
    }

    #[test]
    fn metadata_endpoints_and_actions() {
        let meta: CharmMeta = parse_yaml(
            "name: pgbouncer-k8s\nprovides: {database: {interface: postgresql_client}}\npeers: {pgb-peers: {interface: pgb_peers}}\n",
            "metadata.yaml",
        )
        .unwrap();
        assert!(meta.is_peer("pgb-peers"));
        assert_eq!(meta.interface("database"), Some("postgresql_client"));
        let actions: ActionsSpec = parse_yaml(
            "get-password:\n  params:\n    username: {type: string, default: operator}\n",
            "actions.yaml",
        )
        .unwrap();
        assert_eq!(actions["get-password"].defaults()["username"], "operator");
        assert!(parse_yaml::<CharmMeta>("name: [", "metadata.yaml").is_err());
    }
}
