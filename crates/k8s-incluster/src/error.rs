//! What can go wrong talking to the Kubernetes API. No message ever carries
//! the service account token: the client never formats it, and it redacts it
//! from whatever the server answers.

use std::path::PathBuf;

/// A failed call, or a client that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process does not run in a pod.
    #[error("not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")]
    NotInCluster,
    /// The pod's configuration is unusable.
    #[error("invalid in-cluster configuration: {0}")]
    Config(String),
    /// A service account file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No answer: connecting, TLS (including an unverifiable server) or a timeout.
    #[error("cannot reach the Kubernetes API at {address}: {message}")]
    Connection { address: String, message: String },
    /// 401 or 403: the charm's service account may not do this (the
    /// server's message kept, not shown: the fix is the same).
    #[error("forbidden: the Kubernetes API refused to {action} (HTTP {status}); deploy the application with --trust, or run `juju trust <application> --scope=cluster`")]
    Forbidden {
        action: String,
        status: u16,
        message: String,
    },
    /// 404: the object does not exist.
    #[error("cannot {action}: not found")]
    NotFound { action: String, message: String },
    /// 409: the object already exists, or changed meanwhile.
    #[error("cannot {action}: conflict: {message}")]
    Conflict { action: String, message: String },
    /// 422: the API refuses the object or change as invalid.
    #[error("cannot {action}: invalid: {message}")]
    Invalid { action: String, message: String },
    /// Any other refusal, with the server's message.
    #[error("the Kubernetes API failed to {action}: HTTP {status}: {message}")]
    Api {
        action: String,
        status: u16,
        message: String,
    },
    /// An answer this client cannot read.
    #[error("cannot {action}: unexpected answer from the Kubernetes API: {message}")]
    Protocol { action: String, message: String },
}
