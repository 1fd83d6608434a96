//! The local model: runs charms on one machine the way a Juju controller does.
//!
//! [`model`] holds the state: applications, units, relations with versioned
//! databags, secrets. [`view`] gives one unit's view of it as a
//! `juju_rules::State`, so Juju's rules apply through `juju_rules::MemoryBackend`,
//! and commits a successful hook back. [`resolver`] picks each unit's next hook
//! the way Juju's uniter does. [`tools`] interprets Juju's hook-tool command lines
//! (flags, defaults from the hook context, output formats, error phrases)
//! against any [`charm::Backend`]. [`agent`] serves the tools to hook processes
//! (through the `hook-tool` shim and [`protocol`]) and runs `dispatch`.
//! [`controller`] runs a model's units (saved by [`store`] after every change);
//! [`daemon`] serves it to the `juju` CLI ([`cli`]) over [`api`], with each
//! container's Pebble a process of its own ([`pebbles`]) that outlives a
//! controller killed with SIGKILL; [`crash`] names the points where a test can
//! have it killed. A Kubernetes model also serves the Kubernetes API the
//! charms call and routes its Services ([`kube`]). `testing` (feature `testing`) helps tests run Python `ops`
//! charms on it.

pub mod agent;
pub mod api;
pub mod charm_archive;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod crash;
pub mod daemon;
pub mod kube;
pub mod model;
pub mod network;
pub mod pebble_cli;
pub mod pebbles;
pub mod protocol;
pub mod resolver;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tools;
pub mod view;
