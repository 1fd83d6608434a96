//! The requirer half, as PgBouncer's `backend-database` uses it: ask for a
//! database in the v0 form (which every provider, ours and Canonical's,
//! answers), and read the answer back.

use crate::endpoint::Endpoint;
use crate::provider::{secret_label, Tls};
use charm::secret::{Revision, SecretRef};
use charm::{BagChanges, Hook, Relation, SecretId};

/// What a requirer asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask<'a> {
    /// The database to create.
    pub database: &'a str,
    /// Its `extra-user-roles` (empty: none).
    pub extra_user_roles: &'a str,
    /// The fields to receive in secrets.
    pub requested_secrets: &'a [&'a str],
}

/// Leader: writes the request into this application's bag.
pub fn ask(hook: &mut Hook<'_>, relation: &Relation, ask: &Ask<'_>) -> crate::Result<()> {
    let roles = Some(ask.extra_user_roles.to_string()).filter(|r| !r.is_empty());
    let changes = BagChanges::new()
        .set("database", ask.database)
        .set_or_unset("extra-user-roles", roles)
        .set(
            "requested-secrets",
            serde_json::to_string(ask.requested_secrets)?,
        );
    hook.update_app_bag(relation, changes)?;
    Ok(())
}

/// The provider's answer, once it is complete. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The read-write endpoints, in the provider's order.
    pub endpoints: Vec<Endpoint>,
    /// The read-only endpoints.
    pub read_only: Vec<Endpoint>,
    /// The user created for this application.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The server's version, when told.
    pub version: Option<String>,
    /// Whether the endpoints serve TLS, and the CA to verify them with (from
    /// the `secret-tls` secret, or the databag's `tls` and `tls-ca`).
    pub tls: Tls,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("endpoints", &self.endpoints)
            .field("read_only", &self.read_only)
            .field("username", &self.username)
            .field("version", &self.version)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// How far the provider's answer has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answered {
    /// Not complete, or unusable; the reason is fit for a status.
    Waiting(String),
    /// Complete: at least one endpoint and credentials.
    Ready(Credentials),
}

/// Reads the provider's answer on `relation` of `endpoint`: endpoints, and
/// credentials from the `secret-user` secret or, from providers that do not
/// use secrets, the databag. A secret that cannot be read (the provider's
/// application removed it with itself, or has not granted it yet) is waited for.
pub fn answer(hook: &mut Hook<'_>, endpoint: &str, relation: &Relation) -> charm::Result<Answered> {
    let remote = hook.remote_app_bag(relation)?.clone();
    let waiting = |why: String| Ok(Answered::Waiting(why));
    let Some(rw) = remote.get("endpoints") else {
        return waiting("waiting for PostgreSQL to publish its endpoints".into());
    };
    let endpoints = match Endpoint::parse_list(rw) {
        Ok(list) if !list.is_empty() => list,
        _ => return waiting(format!("PostgreSQL published unusable endpoints {rw:?}")),
    };
    let read_only = match remote
        .get("read-only-endpoints")
        .map(|r| Endpoint::parse_list(r))
    {
        None => Vec::new(),
        Some(Ok(list)) => list,
        Some(Err(e)) => return waiting(e.to_string()),
    };
    let (username, password) = match remote.get("secret-user") {
        Some(uri) => {
            let Ok(id) = SecretId::parse(uri) else {
                return waiting("PostgreSQL published an invalid secret-user".into());
            };
            let label = secret_label(endpoint, relation.id, "user");
            let content =
                match hook.secret(&SecretRef::Id(id, Some(label)), Revision::Refresh) {
                    Ok(content) => content,
                    // Removed with its application, or not granted yet.
                    Err(
                        charm::Error::SecretNotFound { .. } | charm::Error::PermissionDenied { .. },
                    ) => return waiting(
                        "PostgreSQL's user secret cannot be read: it is gone or not granted yet"
                            .into(),
                    ),
                    Err(e) => return Err(e),
                };
            (
                content.get("username").map(str::to_string),
                content.get("password").map(str::to_string),
            )
        }
        None => (
            remote.get("username").cloned(),
            remote.get("password").cloned(),
        ),
    };
    let (Some(username), Some(password)) = (username, password) else {
        return waiting("waiting for PostgreSQL to publish credentials".into());
    };
    let (flag, ca) = match remote.get("secret-tls") {
        Some(uri) => {
            let Ok(id) = SecretId::parse(uri) else {
                return waiting("PostgreSQL published an invalid secret-tls".into());
            };
            let label = secret_label(endpoint, relation.id, "tls");
            match hook.secret(&SecretRef::Id(id, Some(label)), Revision::Refresh) {
                Ok(content) => (
                    content.get("tls").map(str::to_string),
                    content.get("tls-ca").map(str::to_string),
                ),
                Err(
                    charm::Error::SecretNotFound { .. } | charm::Error::PermissionDenied { .. },
                ) => {
                    return waiting(
                        "PostgreSQL's TLS secret cannot be read: it is gone or not granted yet"
                            .into(),
                    )
                }
                Err(e) => return Err(e),
            }
        }
        None => (remote.get("tls").cloned(), remote.get("tls-ca").cloned()),
    };
    let tls = Tls {
        enabled: flag.is_some_and(|f| f.eq_ignore_ascii_case("true")),
        ca: ca.filter(|c| !c.trim().is_empty()),
    };
    Ok(Answered::Ready(Credentials {
        endpoints,
        read_only,
        username,
        password,
        version: remote.get("version").cloned(),
        tls,
    }))
}
