//! Test controls: what a test does to the model that a user of Juju cannot
//! ask for (or not so directly): move the clock, fail a unit's next hook,
//! kill a workload, remove a unit at once, or lose its machine.

use super::{Controller, ControllerError};

use pebble_api::Pebble;

/// Where Debian puts libfaketime (x86-64, then arm64).
const FAKETIME_LIBRARIES: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/// Where the machine's libfaketime is copied into a container: workload
/// images do not carry it.
const FAKETIME_IN_CONTAINER: &str = "/usr/local/lib/faketime/libfaketime.so.1";

impl Controller {
    /// Moves the model's clock ahead by `seconds` (a test control): secrets whose
    /// rotation or expiry falls due get their hooks.
    pub fn advance_clock(&mut self, seconds: u64) -> Result<(), ControllerError> {
        self.model.clock_offset += seconds;
        self.sync_clock();
        self.save()
    }

    /// Moves the clock that new processes in a unit's container see
    /// `seconds` ahead of the machine's (a test control: as if that much time
    /// had passed for the workload, for what it does by age, such as expiring
    /// backups). The machine's libfaketime is copied into the container and
    /// preloaded through its `/etc/ld.so.preload`, the offset in
    /// `/etc/faketimerc`; processes already running keep the real clock. `0`
    /// puts it back. Needs libfaketime on the machine.
    pub fn shift_workload_clock(
        &mut self,
        unit: &str,
        container: &str,
        seconds: u64,
    ) -> Result<(), ControllerError> {
        let runtime = self.container_runtime(unit, container)?;
        let error = |message: String| ControllerError::WorkloadClock {
            unit: unit.into(),
            container: container.into(),
            message,
        };
        if !self.sandbox {
            // Unsandboxed, the container's /etc is not what its processes read.
            return Err(error(
                "only sandboxed workloads have a clock of their own".into(),
            ));
        }
        let library = FAKETIME_LIBRARIES
            .iter()
            .find(|l| std::path::Path::new(l).exists())
            .ok_or_else(|| {
                error("libfaketime is not installed (apt-get install libfaketime)".into())
            })?;
        let library = std::fs::read(library).map_err(|e| error(format!("{library}: {e}")))?;
        let mut client = runtime.pebble(container);
        let files = [
            (FAKETIME_IN_CONTAINER, library, 0o755),
            (
                "/etc/faketimerc",
                format!("+{seconds}s\n").into_bytes(),
                0o644,
            ),
            (
                "/etc/ld.so.preload",
                format!("{FAKETIME_IN_CONTAINER}\n").into_bytes(),
                0o644,
            ),
        ];
        // The preload is written last and removed first: no process starts
        // with a preload of a library that is not there.
        let mut files = Vec::from(files);
        if seconds == 0 {
            files.reverse();
        }
        for (path, content, permissions) in files {
            let result = match seconds {
                0 => client.remove_path(path, false).or_else(|e| match e {
                    pebble_api::PebbleError::Path { .. } => Ok(()),
                    e => Err(e),
                }),
                _ => client.push(
                    path,
                    &content,
                    &pebble_api::FileOptions {
                        permissions: Some(permissions),
                        make_parents: true,
                        ..pebble_api::FileOptions::default()
                    },
                ),
            };
            result.map_err(|e| error(e.to_string()))?;
        }
        Ok(())
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
        let runtime = self.container_runtime(unit, container)?;
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

    /// The runtime of a unit that has `container`.
    fn container_runtime(
        &self,
        unit: &str,
        container: &str,
    ) -> Result<&super::runtime::UnitRuntime, ControllerError> {
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
        Ok(runtime)
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
