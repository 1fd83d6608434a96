//! The `postgresql_client` relation interface, both halves, both wire versions:
//! the Rust counterpart of the data-platform `data_interfaces` library.
//!
//! - [`request`]: what a client asks for, read from its application bag in
//!   the v0 form (flat keys) or the v1 form (`version: v1`, a `requests` list),
//!   validated (user and group roles, entities and their permissions,
//!   prefixes); what cannot be served gets a [`Refusal`] with its code.
//! - [`provider`]: answering it ([`provider::publish`] an [`Answer`]):
//!   credentials, endpoints, URIs, version and TLS, in the databag or in the
//!   `user` and `tls` secrets as the client asked; the relation's user secret
//!   also keeps the client's password between hooks ([`provider::kept_password`]).
//! - [`requirer`]: asking for a database and reading the answer, as
//!   PgBouncer does of PostgreSQL.
//! - [`serve`]: serving a request in PostgreSQL (roles checked against the
//!   server, the user or entity, its database or prefix matches, grants),
//!   shared by both charms.
//! - [`endpoint`]: `host:port` lists as the interface carries them.
//! - [`pgsql`]: the legacy `pgsql` interface (endpoints `db` and
//!   `db-admin`) that `ops-lib-pgsql` clients speak: their request, libpq
//!   connection strings, the answer in the application and leader unit bags.
//! - [`peer`]: what the reference charms' peer data left (the application
//!   secret's URI under `internal-secret`, removed fields valued `None`),
//!   read by both charms when they take over a deployment.
//!
//! The wire contracts are described in `docs/postgresql-client.md` and
//! `docs/legacy-pgsql.md`.
//!
//! ```
//! use charm::Databag;
//! use client_interface::request::{self, Wire};
//!
//! let mut bag = Databag::new();
//! bag.insert("database".into(), "shop".into());
//! bag.insert("requested-secrets".into(), r#"["username","password"]"#.into());
//! let request = request::parse(&bag, 7).unwrap().unwrap();
//! assert_eq!(request.resource.to_string(), "shop");
//! assert!(matches!(request.wire, Wire::V0 { .. }));
//! assert!(request.wants_secret_credentials());
//! ```

#![warn(missing_docs)]

pub mod endpoint;
pub mod peer;
pub mod pgsql;
pub mod provider;
pub mod request;
pub mod requirer;
pub mod serve;

pub use endpoint::Endpoint;
pub use provider::{Answer, ClientEvent, Tls, UriTarget};
pub use request::{Refusal, Request, Wire};

/// A hook tool failed while reading or answering a relation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Juju refused or failed a hook-tool call.
    #[error(transparent)]
    Juju(#[from] charm::Error),
    /// An owned secret has no id (Juju's answer was incomplete).
    #[error("Juju gave no id for secret {0}")]
    NoSecretId(String),
    /// A value could not be encoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A value cannot go into a libpq connection string.
    #[error(transparent)]
    ConnInfo(#[from] pgsql::ConnInfoError),
}

/// What this crate's operations return.
pub type Result<T> = std::result::Result<T, Error>;
