//! Logs: every service of the workload container forwarded to each Loki unit
//! of the `logging` relation by Pebble log targets, and the leader's topology
//! in the relation, through `cos-interface`'s `logging`. Run on the
//! relation's events, when the container comes up (its plan may be new), and
//! on upgrade-charm, leader-elected and update-status. A provider unit whose
//! `endpoint` cannot be used changes nothing for that unit and is reported.

use super::metrics::CHARM_NAME;
use crate::workload::CONTAINER;
use charm::{Handled, Hook};

/// Forwards the container's logs to the provider units as they stand.
pub fn forward(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    cos_interface::logging::forward(hook, CHARM_NAME, CONTAINER)?;
    Ok(Handled::Done)
}
