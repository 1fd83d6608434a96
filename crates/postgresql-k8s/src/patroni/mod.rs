//! Patroni, which runs PostgreSQL on each unit: its REST API behind the
//! [`Patroni`] trait ([`client::HttpPatroni`] over HTTP or HTTPS; the tests keep a
//! cluster in memory behind it) and its configuration file ([`render`]).

pub mod client;
pub mod render;

use serde::Deserialize;

/// Patroni's REST API port.
pub const API_PORT: u16 = 8008;
/// PostgreSQL's port.
pub const DB_PORT: u16 = 5432;

/// `GET /cluster`: the members as Patroni sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Cluster {
    #[serde(default)]
    pub members: Vec<Member>,
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Member {
    /// The member's name (`<app>-<n>`).
    pub name: String,
    /// `leader`, `standby_leader`, `sync_standby` or `replica`.
    pub role: String,
    /// `running`, `streaming`, `starting`, `stopped`, ...
    pub state: String,
    /// PostgreSQL's connect address.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
}

impl Member {
    /// Whether PostgreSQL runs and serves (or replicates).
    pub fn is_ready(&self) -> bool {
        matches!(self.state.as_str(), "running" | "streaming")
    }

    /// Whether it is the primary.
    pub fn is_leader(&self) -> bool {
        matches!(self.role.as_str(), "leader" | "standby_leader")
    }

    /// `host:port` for clients.
    pub fn endpoint(&self) -> String {
        let port = if self.port == 0 { DB_PORT } else { self.port };
        format!("{}:{port}", self.host)
    }
}

impl Cluster {
    /// The primary, if there is one.
    pub fn primary(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.is_leader())
    }

    /// Every member runs and there is a primary (the reference charm's
    /// `are_all_members_ready`).
    pub fn all_ready(&self) -> bool {
        self.members.iter().all(Member::is_ready) && self.primary().is_some()
    }
}

/// `GET /health` of one member.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub state: String,
    /// `master`/`primary`, `replica`, `standby_leader`.
    #[serde(default)]
    pub role: String,
    /// PostgreSQL runs with old values of parameters it reads only at start.
    #[serde(default)]
    pub pending_restart: bool,
}

impl Health {
    /// Patroni and PostgreSQL have started on this member.
    pub fn started(&self) -> bool {
        matches!(self.state.as_str(), "running" | "streaming")
    }

    /// The member's role in the cluster.
    pub fn role(&self) -> Role {
        match self.role.as_str() {
            "master" | "primary" => Role::Primary,
            "standby_leader" => Role::StandbyLeader,
            _ => Role::Replica,
        }
    }
}

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    StandbyLeader,
    Replica,
}

/// A REST API call that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatroniError {
    /// No member answered (after the retries).
    #[error("Patroni's REST API did not answer: {0}")]
    Unreachable(String),
    /// A member answered with an error status.
    #[error("Patroni answered {status}: {body}")]
    Http { status: u16, body: String },
    /// A switchover's candidate is not a synchronous standby.
    #[error("the candidate is not a synchronous standby")]
    NotSyncStandby,
    /// The answer could not be read.
    #[error("unexpected answer from Patroni: {0}")]
    Protocol(String),
    /// The API's certificate does not verify with this unit's CA bundle (or
    /// the bundle holds no certificate).
    #[error("Patroni's REST API cannot be verified: {0}")]
    Tls(String),
}

/// How the charm reaches the REST API: the `patroni` user's password, and,
/// once this unit serves TLS, the CA bundle the API's certificate is verified
/// with (the API then speaks HTTPS only). Its `Debug` shows no password.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiAccess {
    pub password: String,
    pub ca: Option<String>,
}

impl std::fmt::Debug for ApiAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAccess")
            .field("https", &self.ca.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiAccess {
    /// Plain HTTP with this password.
    pub fn plain(password: &str) -> ApiAccess {
        ApiAccess {
            password: password.to_string(),
            ca: None,
        }
    }
}

/// The calls the charm makes to Patroni's REST API. `hosts`/`host` are member
/// addresses (the API port is [`API_PORT`]); `api` says how to reach them.
pub trait Patroni {
    /// `GET /cluster` from the first of `hosts` that answers.
    fn cluster(&self, api: &ApiAccess, hosts: &[String]) -> Result<Cluster, PatroniError>;
    /// `GET /health` of one member (its body also when PostgreSQL is down).
    fn health(&self, api: &ApiAccess, host: &str) -> Result<Health, PatroniError>;
    /// `PATCH /config` (the cluster-wide dynamic configuration) through the
    /// first of `hosts` that answers.
    fn patch_config(
        &self,
        api: &ApiAccess,
        hosts: &[String],
        patch: &serde_json::Value,
    ) -> Result<(), PatroniError>;
    /// `POST /switchover` from `leader` to `candidate` (any sync standby when `None`).
    fn switchover(
        &self,
        api: &ApiAccess,
        host: &str,
        leader: &str,
        candidate: Option<&str>,
    ) -> Result<(), PatroniError>;
    /// `POST /restart`: restarts PostgreSQL on that member.
    fn restart(&self, api: &ApiAccess, host: &str) -> Result<(), PatroniError>;
}
