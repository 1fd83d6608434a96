//! Logs: every service of the workload container forwarded to each Loki unit
//! of the `logging` relation by Pebble log targets, and the leader's topology
//! in the relation, through `cos-interface`'s `logging`. Run on the
//! relation's events, when the container comes up (its plan may be new), and
//! on upgrade-charm, leader-elected and update-status. A provider unit whose
//! `endpoint` cannot be used changes nothing for that unit and is reported.

use super::metrics::CHARM_NAME;
use crate::workload::CONTAINER;
use charm::{Handled, Hook, LogLevel, Status};
use cos_interface::logging::{self, Endpoints};
use cos_interface::Topology;

/// Forwards the container's logs to the provider units as they stand.
pub fn forward(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    logging::publish(hook, CHARM_NAME)?;
    let endpoints: Endpoints = logging::endpoints(hook)?;
    for bad in &endpoints.malformed {
        hook.add_problem(Status::Active(format!(
            "logs not forwarded to {}: {}",
            bad.unit, bad.reason
        )))?;
    }
    let topology = Topology::of(hook, CHARM_NAME);
    let pebble = hook.container(CONTAINER);
    if !pebble.can_connect() {
        return Ok(Handled::Done);
    }
    if logging::forward_in(pebble, CONTAINER, &endpoints, &topology)? {
        let units: Vec<&str> = endpoints.urls.keys().map(String::as_str).collect();
        hook.log(
            LogLevel::Info,
            &format!("log forwarding now to [{}]", units.join(", ")),
        )?;
    }
    Ok(Handled::Done)
}
