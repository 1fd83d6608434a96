//! [`FakeServices`]: the Kubernetes Service API in memory, playing the API
//! server's part: it chooses node ports, gives a load balancer its address
//! when told to, and refuses what it is told to refuse.

use k8s_incluster::{Error, Service, ServiceApi, ServiceSpec, ServiceType};
use pgbouncer_k8s::service::Services;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The node port the fake API server chooses.
pub const NODE_PORT: u16 = 31432;

/// Services in namespace `test`, for tests.
#[derive(Clone, Default)]
pub struct FakeServices {
    pub services: Rc<RefCell<BTreeMap<String, Service>>>,
    /// The calls, in order (`get`, `create`, `patch`, `delete`, `node`).
    pub calls: Rc<RefCell<Vec<String>>>,
    /// When set, every call fails with this HTTP status.
    pub fail: Rc<RefCell<Option<u16>>>,
    /// When set, patches are refused as invalid (422).
    pub refuse_patch: Rc<RefCell<bool>>,
    /// The load balancer's address, once it has one.
    pub load_balancer: Rc<RefCell<Option<String>>>,
    /// The node each pod runs on.
    pub nodes: Rc<RefCell<BTreeMap<String, String>>>,
}

impl FakeServices {
    /// The API as the charm sees it.
    pub fn boxed(&self) -> Option<Box<dyn Services>> {
        Some(Box::new(self.clone()))
    }

    /// Service `name`, if it exists.
    pub fn service(&self, name: &str) -> Option<Service> {
        self.services.borrow().get(name).cloned()
    }

    fn call(&self, what: &str, action: &str) -> Result<(), Error> {
        self.calls.borrow_mut().push(what.into());
        let action = action.to_string();
        let message = format!("refused with HTTP {:?}", *self.fail.borrow());
        match *self.fail.borrow() {
            None => Ok(()),
            Some(status @ (401 | 403)) => Err(Error::Forbidden {
                action,
                status,
                message,
            }),
            Some(404) => Err(Error::NotFound { action, message }),
            Some(409) => Err(Error::Conflict { action, message }),
            Some(422) => Err(Error::Invalid { action, message }),
            Some(status) => Err(Error::Api {
                action,
                status,
                message,
            }),
        }
    }

    /// The load balancer's addresses for a Service of this type.
    fn ingress(&self, service_type: ServiceType) -> Vec<k8s_incluster::service::Ingress> {
        match (service_type, self.load_balancer.borrow().clone()) {
            (ServiceType::LoadBalancer, Some(ip)) => vec![k8s_incluster::service::Ingress {
                ip: Some(ip),
                hostname: None,
            }],
            _ => Vec::new(),
        }
    }

    /// Stores `spec` as the API server would answer it.
    fn store(&self, name: &str, spec: &ServiceSpec) -> Service {
        let mut spec = spec.clone();
        let exposed = spec.service_type != ServiceType::ClusterIp;
        for p in &mut spec.ports {
            p.node_port = exposed.then_some(NODE_PORT);
        }
        let ingress = self.ingress(spec.service_type);
        let service = Service {
            name: name.into(),
            managed_annotations: spec.annotations.keys().cloned().collect(),
            spec,
            cluster_ip: Some("10.152.183.20".into()),
            ingress,
        };
        self.services
            .borrow_mut()
            .insert(name.into(), service.clone());
        service
    }
}

impl ServiceApi for FakeServices {
    fn get_service(&self, name: &str) -> Result<Option<Service>, Error> {
        self.call("get", &format!("read Service {name} in namespace test"))?;
        // A load balancer that got its address since.
        Ok(self.service(name).map(|mut current| {
            current.ingress = self.ingress(current.spec.service_type);
            self.services
                .borrow_mut()
                .insert(name.into(), current.clone());
            current
        }))
    }

    fn create_service(&self, name: &str, spec: &ServiceSpec) -> Result<Service, Error> {
        self.call(
            "create",
            &format!("create Service {name} in namespace test"),
        )?;
        if self.services.borrow().contains_key(name) {
            return Err(Error::Conflict {
                action: format!("create Service {name}"),
                message: format!("services \"{name}\" already exists"),
            });
        }
        Ok(self.store(name, spec))
    }

    fn patch_service(
        &self,
        name: &str,
        spec: &ServiceSpec,
        _current: &Service,
    ) -> Result<Service, Error> {
        self.call("patch", &format!("patch Service {name} in namespace test"))?;
        if *self.refuse_patch.borrow() {
            return Err(Error::Invalid {
                action: format!("patch Service {name}"),
                message: "spec.ports[0].nodePort: Forbidden".into(),
            });
        }
        Ok(self.store(name, spec))
    }

    fn delete_service(&self, name: &str) -> Result<bool, Error> {
        self.call(
            "delete",
            &format!("delete Service {name} in namespace test"),
        )?;
        Ok(self.services.borrow_mut().remove(name).is_some())
    }
}

impl Services for FakeServices {
    fn namespace(&self) -> Result<String, Error> {
        Ok("test".into())
    }

    fn node_address(&self, pod: &str) -> Result<Option<String>, Error> {
        self.call("node", &format!("read pod {pod} in namespace test"))?;
        Ok(self.nodes.borrow().get(pod).cloned())
    }
}
