//! `etcd`: a single-member etcd for the PostgreSQL charm's Patroni, where there is
//! no Kubernetes API to serve as its DCS (the local model).
//!
//! The leader unit runs etcd; it publishes its client URL as `endpoints` in the
//! application bag of every `etcd` relation. Other units stand by: a one-member
//! store has nothing to replicate, and growing it needs member management this
//! charm does not do (the status says so).

use charm::{BagChanges, Charm, Event, Handled, Hook, Relation, Status};
use pebble_api::{Check, FileOptions, HttpCheck, Layer, Service};
use serde::Deserialize;

/// The workload container.
pub const CONTAINER: &str = "etcd";
/// The Pebble service running etcd.
pub const SERVICE: &str = "etcd";
/// The endpoint clients relate to.
pub const ETCD: &str = "etcd";
/// The application-bag key holding the client URLs, comma-separated.
pub const ENDPOINTS: &str = "endpoints";
/// Where etcd keeps its data, inside the container.
pub const DATA_DIR: &str = "/var/lib/etcd/data";
/// The system user etcd runs as.
pub const USER: &str = "etcd";

/// The charm's options (config.yaml), as Juju gives them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawConfig {
    client_port: i64,
    peer_port: i64,
}

/// Validated options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub client_port: u16,
    pub peer_port: u16,
}

impl Config {
    /// Reads and validates the options; the error names the option at fault.
    pub fn read(hook: &mut Hook<'_>) -> anyhow::Result<Result<Config, String>> {
        let raw: RawConfig = hook.config()?;
        Ok(Config::validate(raw.client_port, raw.peer_port))
    }

    /// Both ports in 1024-65535 and distinct.
    pub fn validate(client_port: i64, peer_port: i64) -> Result<Config, String> {
        let port = |name: &str, value: i64| {
            u16::try_from(value)
                .ok()
                .filter(|p| *p >= 1024)
                .ok_or_else(|| format!("invalid config: {name} must be 1024-65535, got {value}"))
        };
        let client_port = port("client-port", client_port)?;
        let peer_port = port("peer-port", peer_port)?;
        if client_port == peer_port {
            return Err(format!(
                "invalid config: peer-port must differ from client-port ({client_port})"
            ));
        }
        Ok(Config {
            client_port,
            peer_port,
        })
    }

    /// The URL clients reach etcd at on `address`.
    pub fn client_url(&self, address: &str) -> String {
        format!("http://{address}:{}", self.client_port)
    }
}

/// The member name etcd knows this unit by (`etcd/0` → `etcd-0`).
pub fn member_name(unit: &str) -> String {
    unit.replace('/', "-")
}

/// The Pebble layer running a one-member etcd on `address`, with a health check.
pub fn layer(unit: &str, address: &str, config: Config) -> Layer {
    let client = config.client_url(address);
    let peer = format!("http://{address}:{}", config.peer_port);
    let name = member_name(unit);
    let command = [
        "etcd".to_string(),
        format!("--name={name}"),
        format!("--data-dir={DATA_DIR}"),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster={name}={peer}"),
        "--initial-cluster-state=new".to_string(),
    ]
    .join(" ");
    let mut layer = Layer {
        summary: "etcd".into(),
        ..Layer::default()
    };
    layer.services.insert(
        SERVICE.into(),
        Service {
            r#override: "replace".into(),
            summary: "etcd key-value store".into(),
            command,
            startup: "enabled".into(),
            user: USER.into(),
            group: USER.into(),
            ..Service::default()
        },
    );
    layer.checks.insert(
        "etcd-health".into(),
        Check {
            r#override: "replace".into(),
            level: "ready".into(),
            period: "5s".into(),
            http: Some(HttpCheck {
                url: format!("{client}/health"),
            }),
            ..Check::default()
        },
    );
    layer
}

/// The charm.
#[derive(Default)]
pub struct EtcdCharm;

impl Charm for EtcdCharm {
    fn handle(&mut self, hook: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled> {
        match event {
            Event::PebbleReady { .. }
            | Event::ConfigChanged
            | Event::LeaderElected
            | Event::UpgradeCharm => configure(hook),
            Event::RelationJoined(r) | Event::RelationChanged(r) if r.relation.endpoint == ETCD => {
                publish(hook, &r.relation)?;
                Ok(Handled::Done)
            }
            Event::Stop => {
                if hook.container(CONTAINER).can_connect() {
                    hook.container(CONTAINER).stop(&[SERVICE])?;
                }
                Ok(Handled::Done)
            }
            _ => Ok(Handled::Done),
        }
    }

    fn collect_status(&mut self, hook: &mut Hook<'_>) -> anyhow::Result<()> {
        let status = status(hook)?;
        hook.add_status(status);
        Ok(())
    }
}

/// Leader: validate the options, run etcd on this unit's address, tell clients.
fn configure(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    let Ok(config) = Config::read(hook)? else {
        return Ok(Handled::Done);
    };
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    if !hook.container(CONTAINER).can_connect() {
        // pebble-ready follows when the container is up.
        return Ok(Handled::Done);
    }
    let address = address(hook)?;
    let unit = hook.unit().to_string();
    let etcd = hook.container(CONTAINER);
    etcd.make_dir(
        DATA_DIR,
        &FileOptions {
            permissions: Some(0o700),
            user: Some(USER.into()),
            group: Some(USER.into()),
            make_parents: true,
        },
    )?;
    etcd.add_layer("etcd", &layer(&unit, &address, config), true)?;
    etcd.replan()?;
    for relation in hook.relations(ETCD)? {
        publish(hook, &relation)?;
    }
    Ok(Handled::Done)
}

/// Leader: the client URL in the relation's application bag.
fn publish(hook: &mut Hook<'_>, relation: &Relation) -> anyhow::Result<()> {
    let Ok(config) = Config::read(hook)? else {
        return Ok(());
    };
    if !hook.is_leader()? {
        return Ok(());
    }
    let url = config.client_url(&address(hook)?);
    hook.update_app_bag(relation, BagChanges::new().set(ENDPOINTS, url))?;
    Ok(())
}

/// This unit's address, as clients reach it.
fn address(hook: &mut Hook<'_>) -> anyhow::Result<String> {
    hook.ingress_address(ETCD)?
        .ok_or_else(|| anyhow::anyhow!("Juju gave no address for the {ETCD} endpoint"))
}

/// The unit's status: each check needs the ones before it to pass.
fn status(hook: &mut Hook<'_>) -> anyhow::Result<Status> {
    if let Err(message) = Config::read(hook)? {
        return Ok(Status::Blocked(message));
    }
    if !hook.is_leader()? {
        return Ok(Status::Active(
            "standby: etcd runs on the leader unit".into(),
        ));
    }
    let etcd = hook.container(CONTAINER);
    if !etcd.can_connect() {
        return Ok(Status::Waiting("waiting for the etcd container".into()));
    }
    let running = etcd.services(&[SERVICE])?.iter().any(|s| s.is_running());
    if !running {
        return Ok(Status::Maintenance("etcd is not running".into()));
    }
    Ok(Status::Active(String::new()))
}
