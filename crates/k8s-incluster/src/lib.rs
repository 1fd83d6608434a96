//! A small Kubernetes API client for charms running in a pod: in-cluster
//! configuration as client-go reads it ([`Config`]), HTTPS with OpenSSL that
//! trusts only the cluster's CA, and the few calls the charms make
//! ([`Client`]): read a pod, merge labels into it, read a StatefulSet, set its
//! rolling-update partition, and read, create, patch and delete Services
//! ([`service`], with [`service::ensure`] to converge one); [`InCluster`] is
//! what a charm's hook holds (configured from the pod, a client per call).
//! HTTP/1.1 is `http_exchange`.

pub mod client;
pub mod config;
pub mod error;
pub mod incluster;
pub mod objects;
pub mod service;

pub use client::Client;
pub use config::Config;
pub use error::Error;
pub use incluster::InCluster;
pub use objects::{Pod, StatefulSet};
pub use service::{Service, ServiceApi, ServicePort, ServiceSpec, ServiceType};
