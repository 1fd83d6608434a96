//! A Kubernetes model: its API server and Service routes, started with the
//! controller and told the model's pods, StatefulSets and trust after every
//! save; each unit's hooks told where the API and their service account are.

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
        self.kubernetes = Some(kubernetes);
        Ok(())
    }

    pub(super) fn sync_kubernetes(&mut self) -> Result<(), ControllerError> {
        let Some(kubernetes) = &self.kubernetes else {
            return Ok(());
        };
        kubernetes
            .sync(self.cluster(), &self.root.join("units"))
            .map_err(io("keeping the model's Kubernetes objects"))
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
