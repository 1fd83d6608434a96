//! A small Kubernetes API client for charms running in a pod: in-cluster
//! configuration as client-go reads it ([`Config`]), HTTPS with OpenSSL that
//! trusts only the cluster's CA, and the few calls the charms make
//! ([`Client`]): read a pod, merge labels into it, read a StatefulSet, set its
//! rolling-update partition. HTTP/1.1 is `http_exchange`.

pub mod client;
pub mod config;
pub mod error;
pub mod objects;

pub use client::Client;
pub use config::Config;
pub use error::Error;
pub use objects::{Pod, StatefulSet};
