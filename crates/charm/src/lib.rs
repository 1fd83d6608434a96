//! A Rust SDK for Juju charms.
//!
//! A charm implements [`Charm`] and calls [`dispatch::main`] from its `dispatch`
//! binary. Juju's environment becomes a [`Context`] and an [`Event`]; the charm talks
//! to Juju through a [`Hook`], which applies Juju's rules and caches what it read,
//! over a [`Backend`] (the real hook tools, or the in-memory model in tests), and to
//! its workloads through [`pebble_api::Pebble`]. Handlers and [`Charm::collect_status`]
//! add candidate statuses to the hook, and the most pressing one is set
//! ([`StatusCollector`]).

#![warn(missing_docs)]

pub mod backend;
pub mod commands;
pub mod context;
pub mod defer;
pub mod dispatch;
pub mod error;
pub mod event;
pub mod hook;
pub mod hooktools;
pub mod metadata;
pub mod relation;
pub mod secret;
pub mod stats;
pub mod status;
pub mod version;

pub use backend::Backend;
pub use context::Context;
pub use dispatch::{Charm, Handled};
pub use error::{Error, Result};
pub use event::{ActionEvent, Event, RelationEvent, SecretEvent};
pub use hook::Hook;
pub use relation::{Bag, BagChanges, Databag, Relation};
pub use secret::{SecretContent, SecretId, SecretOwner};
pub use status::{LogLevel, Status, StatusCollector};
pub use version::JujuVersion;
