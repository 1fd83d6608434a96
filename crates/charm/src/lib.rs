//! A Rust SDK for Juju charms.
//!
//! A charm implements [`Charm`] and calls [`dispatch::main`] from its `dispatch`
//! binary. Juju's environment becomes a [`Context`] and an [`Event`]; the charm talks
//! to Juju through a [`Hook`], which applies Juju's rules and caches what it read,
//! over a [`Backend`] (the real hook tools, or the in-memory model in tests), and to
//! its workloads through [`pebble_api::Pebble`]. Handlers and [`Charm::collect_status`]
//! add candidate statuses to the hook, and the most pressing one is set
//! ([`StatusCollector`]).
//!
//! A charm that waits for its workload's container, then says it is ready,
//! run here on the in-memory model as its tests would run it (its `dispatch`
//! binary's `main` is `charm::dispatch::main(Greeter)`):
//!
//! ```
//! use charm::{Charm, Event, Handled, Hook, Status};
//! use charm_testing::{event, run, ContainerState, State};
//!
//! struct Greeter;
//!
//! impl Charm for Greeter {
//!     fn handle(&mut self, hook: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled> {
//!         if let Event::ConfigChanged = event {
//!             if !hook.container("app").can_connect() {
//!                 return Ok(Handled::Deferred); // runs again before the next event
//!             }
//!         }
//!         Ok(Handled::Done)
//!     }
//!
//!     fn collect_status(&mut self, hook: &mut Hook<'_>) -> anyhow::Result<()> {
//!         if !hook.container("app").can_connect() {
//!             hook.add_status(Status::Waiting("waiting for the app container".into()));
//!         }
//!         hook.add_status(Status::Active("ready".into()));
//!         Ok(())
//!     }
//! }
//!
//! let down = State::new("greeter/0").with_container("app", ContainerState::unreachable());
//! let out = run(&mut Greeter, &down, event::config_changed()).unwrap();
//! assert_eq!(out.state.deferred, [event::config_changed()]);
//! assert_eq!(out.state.unit_status, Status::Waiting("waiting for the app container".into()));
//!
//! let up = State::new("greeter/0").with_container("app", ContainerState::default());
//! let out = run(&mut Greeter, &up, event::config_changed()).unwrap();
//! assert_eq!(out.state.unit_status, Status::Active("ready".into()));
//! ```

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
pub mod options;
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
