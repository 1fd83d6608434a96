//! [`FakePatroni`]: a cluster in memory for flow tests, recording what the
//! charm asked of it.

use postgresql_k8s::patroni::{ApiAccess, Cluster, Health, Member, Patroni, PatroniError, DB_PORT};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

/// What the fake cluster holds and what it was asked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeCluster {
    /// The members `/cluster` lists (their `host` is the member's address).
    pub members: Vec<Member>,
    /// Addresses whose API does not answer.
    pub down: BTreeSet<String>,
    /// The password the API accepts (any when `None`).
    pub password: Option<String>,
    /// `PATCH /config` bodies, in order.
    pub patches: Vec<serde_json::Value>,
    /// Switchovers: (leader, candidate).
    pub switchovers: Vec<(String, Option<String>)>,
    /// Members restarted, by address.
    pub restarts: Vec<String>,
    /// Addresses whose PostgreSQL waits for a restart.
    pub pending_restart: BTreeSet<String>,
    /// Addresses whose PostgreSQL does not come back from a restart.
    pub restart_fails: BTreeSet<String>,
    /// The CA bundle of the last call (HTTPS), `None` for plain HTTP.
    pub last_ca: Option<String>,
    /// The DCS holds no settings yet: `PATCH /config` answers 503.
    pub no_config: bool,
}

/// A handle on a shared [`FakeCluster`].
#[derive(Clone, Debug, Default)]
pub struct FakePatroni(pub Rc<RefCell<FakeCluster>>);

impl FakePatroni {
    /// A cluster of `(name, address, role, state)` members.
    pub fn with_members(members: &[(&str, &str, &str, &str)]) -> FakePatroni {
        let fake = FakePatroni::default();
        fake.set_members(members);
        fake
    }

    /// Replaces the members.
    pub fn set_members(&self, members: &[(&str, &str, &str, &str)]) {
        self.0.borrow_mut().members = members
            .iter()
            .map(|(name, host, role, state)| Member {
                name: name.to_string(),
                host: host.to_string(),
                port: DB_PORT,
                role: role.to_string(),
                state: state.to_string(),
            })
            .collect();
    }

    /// A copy of the cluster's state.
    pub fn cluster_state(&self) -> FakeCluster {
        self.0.borrow().clone()
    }

    /// Makes a member's PostgreSQL wait for a restart (until it restarts).
    pub fn set_pending_restart(&self, host: &str) {
        self.0.borrow_mut().pending_restart.insert(host.to_string());
    }

    /// Makes a member's PostgreSQL stay stopped after its next restarts.
    pub fn set_restart_fails(&self, host: &str) {
        self.0.borrow_mut().restart_fails.insert(host.to_string());
    }

    /// Makes a member's API stop (or start again) answering.
    pub fn set_down(&self, host: &str, down: bool) {
        let mut c = self.0.borrow_mut();
        if down {
            c.down.insert(host.to_string());
        } else {
            c.down.remove(host);
        }
    }

    fn check(&self, api: &ApiAccess, host: &str) -> Result<(), PatroniError> {
        self.0.borrow_mut().last_ca = api.ca.clone();
        let c = self.0.borrow();
        if c.down.contains(host) || !c.members.iter().any(|m| m.host == host) {
            return Err(PatroniError::Unreachable(format!(
                "{host}: connection refused"
            )));
        }
        if c.password.as_deref().is_some_and(|p| p != api.password) {
            return Err(PatroniError::Http {
                status: 401,
                body: "no auth header received".into(),
            });
        }
        Ok(())
    }

    fn first(&self, api: &ApiAccess, hosts: &[String]) -> Result<(), PatroniError> {
        let mut last = PatroniError::Unreachable("no member address known".into());
        for h in hosts {
            match self.check(api, h) {
                Err(PatroniError::Unreachable(why)) => last = PatroniError::Unreachable(why),
                other => return other,
            }
        }
        Err(last)
    }
}

impl Patroni for FakePatroni {
    fn cluster(&self, api: &ApiAccess, hosts: &[String]) -> Result<Cluster, PatroniError> {
        self.first(api, hosts)?;
        Ok(Cluster {
            members: self.0.borrow().members.clone(),
        })
    }

    fn health(&self, api: &ApiAccess, host: &str) -> Result<Health, PatroniError> {
        self.check(api, host)?;
        let c = self.0.borrow();
        let m = c.members.iter().find(|m| m.host == host).expect("checked");
        let role = match m.role.as_str() {
            "leader" => "master",
            "standby_leader" => "standby_leader",
            _ => "replica",
        };
        Ok(Health {
            state: m.state.clone(),
            role: role.into(),
            pending_restart: c.pending_restart.contains(host),
        })
    }

    fn patch_config(
        &self,
        api: &ApiAccess,
        hosts: &[String],
        patch: &serde_json::Value,
    ) -> Result<(), PatroniError> {
        self.first(api, hosts)?;
        if self.0.borrow().no_config {
            return Err(PatroniError::Http {
                status: 503,
                body: "Service Unavailable".into(),
            });
        }
        self.0.borrow_mut().patches.push(patch.clone());
        Ok(())
    }

    fn switchover(
        &self,
        api: &ApiAccess,
        host: &str,
        leader: &str,
        candidate: Option<&str>,
    ) -> Result<(), PatroniError> {
        self.check(api, host)?;
        let mut c = self.0.borrow_mut();
        c.switchovers
            .push((leader.to_string(), candidate.map(str::to_string)));
        let target = match candidate {
            Some(name) => c.members.iter().position(|m| m.name == name),
            None => c.members.iter().position(|m| m.role == "sync_standby"),
        };
        let Some(target) = target else {
            return Err(PatroniError::Http {
                status: 412,
                body: "no candidate".into(),
            });
        };
        if c.members[target].role != "sync_standby" {
            return Err(PatroniError::NotSyncStandby);
        }
        for m in c.members.iter_mut() {
            if m.name == leader {
                m.role = "sync_standby".into();
            }
        }
        c.members[target].role = "leader".into();
        Ok(())
    }

    fn restart(&self, api: &ApiAccess, host: &str) -> Result<(), PatroniError> {
        self.check(api, host)?;
        let mut c = self.0.borrow_mut();
        c.pending_restart.remove(host);
        c.restarts.push(host.to_string());
        if c.restart_fails.contains(host) {
            for m in c.members.iter_mut().filter(|m| m.host == host) {
                m.state = "stopped".into();
            }
        }
        Ok(())
    }
}
