//! A Kubernetes model: its API server and Service routes, started with the
//! controller and told the model's pods, StatefulSets and trust after every
//! save; each unit's hooks told where the API and their service account are.
//! Cluster DNS is a hosts file (sandboxed, that is as root): hook processes
//! see it as `/etc/hosts`, and each container gets it as its own.

use super::{io, Controller, ControllerError};
use crate::kube::objects::{Cluster, PodView};
use crate::kube::Kubernetes;

impl Controller {
    /// Makes this model a Kubernetes model (before anything is deployed):
    /// its charms find the Kubernetes API, and their Services are routed.
    pub fn use_kubernetes(&mut self) -> Result<(), ControllerError> {
        if self.model.kubernetes {
            return Ok(());
        }
        if !self.model.applications.is_empty() {
            return Err(ControllerError::Config {
                app: self.model.name.clone(),
                message: "a model becomes a Kubernetes model before anything is deployed".into(),
            });
        }
        self.model.kubernetes = true;
        self.start_kubernetes()?;
        self.save()
    }

    /// The model's Kubernetes, if it is a Kubernetes model.
    pub fn kubernetes(&self) -> Option<&Kubernetes> {
        self.kubernetes.as_ref()
    }

    pub(super) fn start_kubernetes(&mut self) -> Result<(), ControllerError> {
        let kubernetes = Kubernetes::start(&self.root, self.cluster())
            .map_err(io("starting the model's Kubernetes API"))?;
        if self.sandbox {
            self.agent
                .resolve_with(&self.root.join(crate::kube::HOSTS_FILE));
        }
        self.kubernetes = Some(kubernetes);
        Ok(())
    }

    pub(super) fn sync_kubernetes(&mut self) -> Result<(), ControllerError> {
        let Some(kubernetes) = &self.kubernetes else {
            return Ok(());
        };
        kubernetes
            .sync(self.cluster(), &self.root.join("units"))
            .map_err(io("keeping the model's Kubernetes objects"))?;
        // The partitions the charms set hold units back from a refresh; the
        // model keeps them from the next save on.
        for (app, partition) in kubernetes.partitions() {
            if let Some(a) = self.model.applications.get_mut(&app) {
                a.partition = partition;
            }
        }
        if self.sandbox {
            self.push_hosts();
        }
        Ok(())
    }

    /// Gives every container that is up the hosts file as it is now, where
    /// its copy differs. A container that cannot take it now gets it after
    /// a later save.
    fn push_hosts(&mut self) {
        let Some(kubernetes) = &self.kubernetes else {
            return;
        };
        let hosts = kubernetes.hosts();
        for (unit, runtime) in &self.units {
            let Some(u) = self.model.unit(unit) else {
                continue;
            };
            for container in &u.containers_up {
                let key = (unit.clone(), container.clone());
                if self.hosts_pushed.get(&key) == Some(&hosts) {
                    continue;
                }
                let options = pebble_api::FileOptions {
                    permissions: Some(0o644),
                    ..pebble_api::FileOptions::default()
                };
                let pushed = pebble_api::Pebble::push(
                    &mut runtime.pebble(container),
                    "/etc/hosts",
                    hosts.as_bytes(),
                    &options,
                );
                if pushed.is_ok() {
                    self.hosts_pushed.insert(key, hosts.clone());
                }
            }
        }
        self.hosts_pushed
            .retain(|(unit, _), _| self.units.contains_key(unit));
    }

    /// What Kubernetes runs for the model as it is now.
    fn cluster(&self) -> Cluster {
        let mut cluster = Cluster {
            namespace: self.model.name.clone(),
            octet: self.model.network,
            ..Cluster::default()
        };
        for (name, app) in &self.model.applications {
            cluster.sets.insert(name.clone(), app.charm_revision);
            if app.trust {
                cluster.trusted.insert(name.clone());
            }
            for (unit, u) in &app.units {
                let ordinal = unit
                    .rsplit_once('/')
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(0);
                cluster.pods.insert(
                    unit.replace('/', "-"),
                    PodView {
                        app: name.clone(),
                        ordinal,
                        address: u.address.clone(),
                        revision: u.seen.charm_revision,
                    },
                );
            }
        }
        cluster
    }

    /// The Kubernetes environment of a unit's hooks: none off Kubernetes.
    pub(super) fn kubernetes_env(&self, unit: &str) -> Vec<(String, String)> {
        match &self.kubernetes {
            Some(k) => k.env(&self.unit_home(unit)),
            None => Vec::new(),
        }
    }
}
