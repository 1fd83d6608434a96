//! The client: one HTTPS connection per call, verified against the cluster's
//! CA alone, authenticated with the service account's bearer token.

use crate::service::{Service, ServiceApi, ServiceSpec};
use crate::{Config, Error, Pod, StatefulSet};
use http_exchange::{percent_encode, HttpError};
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use serde_json::json;
use std::collections::BTreeMap;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};

/// The content type of a JSON merge patch (RFC 7386).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// The most of a server's error message an [`Error::Api`] keeps.
const MAX_MESSAGE: usize = 300;

/// A Kubernetes API client for one namespace.
pub struct Client {
    config: Config,
    /// `Bearer <token>`; never formatted into anything but the request.
    authorization: String,
    token: String,
    tls: SslConnector,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with the token and CA read now from the config's files.
    pub fn new(config: Config) -> Result<Client, Error> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let token = String::from_utf8(read(&config.token_file)?)
            .map_err(|_| Error::Config("the service account token is not text".into()))?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(Error::Config("the service account token is empty".into()));
        }
        let ca_error = |e: openssl::error::ErrorStack| {
            Error::Config(format!("bad CA in {}: {e}", config.ca_file.display()))
        };
        let certs = X509::stack_from_pem(&read(&config.ca_file)?).map_err(ca_error)?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "no certificate in {}",
                config.ca_file.display()
            )));
        }
        let mut store = X509StoreBuilder::new().map_err(ca_error)?;
        for cert in certs {
            store.add_cert(cert).map_err(ca_error)?;
        }
        let mut tls = SslConnector::builder(SslMethod::tls_client()).map_err(ca_error)?;
        tls.set_cert_store(store.build());
        tls.set_verify(SslVerifyMode::PEER);
        Ok(Client {
            authorization: format!("Bearer {token}"),
            token,
            tls: tls.build(),
            config,
        })
    }

    /// The namespace the calls address.
    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// Reads pod `name`.
    pub fn get_pod(&self, name: &str) -> Result<Pod, Error> {
        let action = format!("read pod {name} in namespace {}", self.namespace());
        let body = self.call("GET", &self.pod_path(name), None, &action)?;
        Pod::from_json(&body).map_err(|e| protocol(&action, e))
    }

    /// Merges `labels` into pod `name`'s labels (a JSON merge patch: other
    /// labels stay); answers the patched pod.
    pub fn patch_pod_labels(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Pod, Error> {
        let action = format!(
            "patch the labels of pod {name} in namespace {}",
            self.namespace()
        );
        let patch = json!({ "metadata": { "labels": labels } });
        let body = self.call("PATCH", &self.pod_path(name), Some(&patch), &action)?;
        Pod::from_json(&body).map_err(|e| protocol(&action, e))
    }

    /// Reads StatefulSet `name`.
    pub fn get_stateful_set(&self, name: &str) -> Result<StatefulSet, Error> {
        let action = format!("read StatefulSet {name} in namespace {}", self.namespace());
        let body = self.call("GET", &self.stateful_set_path(name), None, &action)?;
        StatefulSet::from_json(&body).map_err(|e| protocol(&action, e))
    }

    /// Sets StatefulSet `name`'s `spec.updateStrategy.rollingUpdate.partition`;
    /// answers the patched StatefulSet.
    pub fn set_partition(&self, name: &str, partition: u32) -> Result<StatefulSet, Error> {
        let action = format!(
            "set the rolling-update partition of StatefulSet {name} in namespace {}",
            self.namespace()
        );
        let patch = json!({ "spec": { "updateStrategy": { "rollingUpdate": { "partition": partition } } } });
        let path = self.stateful_set_path(name);
        let body = self.call("PATCH", &path, Some(&patch), &action)?;
        StatefulSet::from_json(&body).map_err(|e| protocol(&action, e))
    }

    fn services_path(&self) -> String {
        format!(
            "/api/v1/namespaces/{}/services",
            percent_encode(self.namespace())
        )
    }

    fn service_path(&self, name: &str) -> String {
        format!("{}/{}", self.services_path(), percent_encode(name))
    }

    fn pod_path(&self, name: &str) -> String {
        format!(
            "/api/v1/namespaces/{}/pods/{}",
            percent_encode(self.namespace()),
            percent_encode(name)
        )
    }

    fn stateful_set_path(&self, name: &str) -> String {
        format!(
            "/apis/apps/v1/namespaces/{}/statefulsets/{}",
            percent_encode(self.namespace()),
            percent_encode(name)
        )
    }

    /// One exchange; a merge patch when `patch` is given. Answers the body of
    /// a 2xx response.
    fn call(
        &self,
        method: &str,
        path: &str,
        patch: Option<&serde_json::Value>,
        action: &str,
    ) -> Result<Vec<u8>, Error> {
        self.send(method, path, patch.map(|p| (MERGE_PATCH, p)), action)
    }

    /// One exchange with an optional body of the given content type.
    /// Answers the body of a 2xx response.
    fn send(
        &self,
        method: &str,
        path: &str,
        content: Option<(&str, &serde_json::Value)>,
        action: &str,
    ) -> Result<Vec<u8>, Error> {
        let address = self.config.authority();
        let unreachable = |message: String| Error::Connection {
            address: address.clone(),
            message,
        };
        let mut stream = self.connect().map_err(|e| unreachable(describe(&e)))?;
        let body = content.map(|(_, v)| v.to_string()).unwrap_or_default();
        let mut headers = vec![
            ("Authorization", self.authorization.as_str()),
            ("Accept", "application/json"),
            ("User-Agent", "rust-charm"),
        ];
        if let Some((content_type, _)) = content {
            headers.push(("Content-Type", content_type));
        }
        let response = http_exchange::exchange(
            &mut stream,
            &address,
            method,
            path,
            &headers,
            body.as_bytes(),
        )
        .map_err(|e| match e {
            HttpError::Io(e) => unreachable(describe(&e)),
            HttpError::Protocol(m) => protocol(action, m),
        })?;
        let action = action.to_string();
        if (200..=299).contains(&response.status) {
            return Ok(response.body);
        }
        let message = self.message(&response.body);
        Err(match response.status {
            401 | 403 => Error::Forbidden {
                action,
                status: response.status,
                message,
            },
            404 => Error::NotFound { action, message },
            409 => Error::Conflict { action, message },
            422 => Error::Invalid { action, message },
            status => Error::Api {
                action,
                status,
                message,
            },
        })
    }

    /// A verified TLS stream to the API server, with the config's timeouts.
    fn connect(&self) -> io::Result<openssl::ssl::SslStream<TcpStream>> {
        let timeout = self.config.timeout;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        let mut tcp = None;
        for addr in (self.config.host.as_str(), self.config.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or(last)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        self.tls
            .connect(&self.config.host, tcp)
            .map_err(|e| match e {
                HandshakeError::WouldBlock(_) => {
                    io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake from the server")
                }
                e => io::Error::other(format!("TLS handshake failed: {e}")),
            })
    }

    /// The server's message (a `Status` object's `message`, else the body),
    /// shortened, without the token.
    fn message(&self, body: &[u8]) -> String {
        let text = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        let text = text.replace(&self.token, "<token>");
        match text.char_indices().nth(MAX_MESSAGE) {
            Some((at, _)) => format!("{}...", &text[..at]),
            None => text,
        }
    }
}

/// Services, with JSON merge patches (RFC 7386) rather than strategic merge
/// patches: the patch is computed from the Service read just before
/// ([`ServiceSpec::merge_patch`]), so it names every key to remove, and
/// replaces the port list whole, which is what a type change needs.
impl ServiceApi for Client {
    fn get_service(&self, name: &str) -> Result<Option<Service>, Error> {
        let action = format!("read Service {name} in namespace {}", self.namespace());
        match self.call("GET", &self.service_path(name), None, &action) {
            Ok(body) => Service::from_json(&body)
                .map(Some)
                .map_err(|e| protocol(&action, e)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create_service(&self, name: &str, spec: &ServiceSpec) -> Result<Service, Error> {
        let action = format!("create Service {name} in namespace {}", self.namespace());
        let object = spec.to_object(name);
        let body = self.send(
            "POST",
            &self.services_path(),
            Some(("application/json", &object)),
            &action,
        )?;
        Service::from_json(&body).map_err(|e| protocol(&action, e))
    }

    fn patch_service(
        &self,
        name: &str,
        spec: &ServiceSpec,
        current: &Service,
    ) -> Result<Service, Error> {
        let action = format!("patch Service {name} in namespace {}", self.namespace());
        let patch = spec.merge_patch(current);
        let body = self.call("PATCH", &self.service_path(name), Some(&patch), &action)?;
        Service::from_json(&body).map_err(|e| protocol(&action, e))
    }

    fn delete_service(&self, name: &str) -> Result<bool, Error> {
        let action = format!("delete Service {name} in namespace {}", self.namespace());
        match self.call("DELETE", &self.service_path(name), None, &action) {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// An I/O error in words, timeouts named as such.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!("timed out ({e})"),
        _ => e.to_string(),
    }
}

fn protocol(action: &str, message: impl ToString) -> Error {
    Error::Protocol {
        action: action.to_string(),
        message: message.to_string(),
    }
}
