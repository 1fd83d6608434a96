//! The local model: runs charms on one machine the way a Juju controller does.
//!
//! [`tools`] interprets Juju's hook-tool command lines (flags, defaults from the
//! hook context, output formats, error phrases) against any [`charm::Backend`]; the
//! model gives it each unit's view with Juju's rules.

pub mod tools;
