//! Test controls: what a test does to the model that a user of Juju cannot
//! ask for (or not so directly): move the clock, fail a unit's next hook,
//! kill a workload, remove a unit at once, or lose its machine.

use super::{Controller, ControllerError};
use pebble_api::Pebble;

impl Controller {
    /// Moves the model's clock ahead by `seconds` (a test control): secrets whose
    /// rotation or expiry falls due get their hooks.
    pub fn advance_clock(&mut self, seconds: u64) -> Result<(), ControllerError> {
        self.model.clock_offset += seconds;
        self.sync_clock();
        self.save()
    }

    /// Makes the unit's next hook fail (as if `dispatch` exited non-zero): nothing
    /// is committed and the unit is blocked until [`Controller::resolve`].
    pub fn fail_next_hook(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.unit_mut(unit)?.fail_next_hook = true;
        self.save()
    }

    /// Kills a workload service's processes with SIGKILL (Pebble then applies its
    /// on-failure policy).
    pub fn kill_workload(
        &mut self,
        unit: &str,
        container: &str,
        service: &str,
    ) -> Result<(), ControllerError> {
        let runtime = self
            .units
            .get(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?;
        let known = self
            .model
            .applications
            .get(charm::relation::app_of(unit))
            .is_some_and(|a| a.files.meta.containers.contains_key(container));
        if !known {
            return Err(ControllerError::NoContainer {
                unit: unit.into(),
                container: container.into(),
            });
        }
        let kill_error = |message: String| ControllerError::Kill {
            unit: unit.into(),
            container: container.into(),
            service: service.into(),
            message,
        };
        let mut client = runtime.pebble(container);
        let plan = client.plan().map_err(|e| kill_error(e.to_string()))?;
        if !plan.services.contains_key(service) {
            return Err(ControllerError::NoService {
                unit: unit.into(),
                container: container.into(),
                service: service.into(),
            });
        }
        client
            .send_signal("SIGKILL", &[service])
            .map_err(|e| kill_error(e.to_string()))
    }

    /// Removes a unit at once (`juju remove-unit --force --no-wait`): it runs
    /// no hooks, its workloads are stopped (SIGTERM, then SIGKILL after their
    /// kill delay, as when Kubernetes deletes a pod), the other units see it
    /// leave, and a new leader is chosen if it led.
    pub fn remove_unit_abruptly(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.unit_mut(unit)?.seen.removed = true;
        self.reap(unit);
        self.save()
    }

    /// Loses a unit's machine: every workload process is SIGKILLed at once,
    /// with no chance to clean up (a leader lock it held stays until it
    /// expires), then the unit goes as with [`Controller::remove_unit_abruptly`].
    pub fn crash_unit(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.units
            .get_mut(unit)
            .ok_or_else(|| ControllerError::NoUnit(unit.into()))?
            .crash();
        self.remove_unit_abruptly(unit)
    }
}
