//! The hook context: who and where this hook runs, read from Juju's environment.

use crate::event::{Event, EventError};
use crate::relation::app_of;
use crate::version::JujuVersion;
use std::path::PathBuf;

/// What Juju tells every hook process about the unit, its model and the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// `app/N`.
    pub unit: String,
    /// The application's name.
    pub app: String,
    /// The model's name.
    pub model_name: String,
    /// The model's UUID.
    pub model_uuid: String,
    /// The charm directory (also the working directory).
    pub charm_dir: PathBuf,
    /// The unit agent's Juju version.
    pub juju_version: JujuVersion,
    /// The event this dispatch was started for.
    pub event: Event,
}

impl Context {
    /// Reads the context from the process environment.
    pub fn from_env() -> Result<Context, EventError> {
        Context::from_vars(&|k| std::env::var(k).ok())
    }

    /// Reads the context through `lookup` (empty values count as unset).
    pub fn from_vars(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Context, EventError> {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let need = |k: &'static str| get(k).ok_or(EventError::Missing(k));
        let unit = need("JUJU_UNIT_NAME")?;
        if !unit.contains('/') {
            return Err(EventError::Invalid {
                var: "JUJU_UNIT_NAME",
                value: unit,
            });
        }
        let version = need("JUJU_VERSION")?;
        let juju_version = version.parse().map_err(|_| EventError::Invalid {
            var: "JUJU_VERSION",
            value: version,
        })?;
        let charm_dir = get("JUJU_CHARM_DIR")
            .or_else(|| get("CHARM_DIR"))
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .ok_or(EventError::Missing("JUJU_CHARM_DIR"))?;
        Ok(Context {
            app: app_of(&unit).to_string(),
            unit,
            model_name: need("JUJU_MODEL_NAME")?,
            model_uuid: need("JUJU_MODEL_UUID")?,
            charm_dir,
            juju_version,
            event: Event::from_vars(lookup)?,
        })
    }

    /// The variables Juju sets for this context's hook (common and event-specific).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("JUJU_UNIT_NAME", self.unit.clone()),
            ("JUJU_MODEL_NAME", self.model_name.clone()),
            ("JUJU_MODEL_UUID", self.model_uuid.clone()),
            ("JUJU_CHARM_DIR", self.charm_dir.display().to_string()),
            ("JUJU_VERSION", self.juju_version.to_string()),
        ];
        v.extend(self.event.env());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_and_writes_the_common_variables() {
        let vars: HashMap<&str, &str> = [
            ("JUJU_UNIT_NAME", "pgbouncer-k8s/1"),
            ("JUJU_MODEL_NAME", "test"),
            ("JUJU_MODEL_UUID", "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13"),
            ("JUJU_CHARM_DIR", "/var/lib/juju/charm"),
            ("JUJU_VERSION", "3.6.4"),
            ("JUJU_DISPATCH_PATH", "hooks/install"),
        ]
        .into_iter()
        .collect();
        let ctx = Context::from_vars(&|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(ctx.app, "pgbouncer-k8s");
        assert_eq!(ctx.event, Event::Install);
        let back: HashMap<&str, String> = ctx.env().into_iter().collect();
        assert_eq!(Context::from_vars(&|k| back.get(k).cloned()).unwrap(), ctx);
    }

    #[test]
    fn missing_version_is_an_error_not_a_silent_downgrade() {
        let vars: HashMap<&str, &str> = [
            ("JUJU_UNIT_NAME", "a/0"),
            ("JUJU_MODEL_NAME", "m"),
            ("JUJU_MODEL_UUID", "u"),
            ("JUJU_DISPATCH_PATH", "hooks/install"),
        ]
        .into_iter()
        .collect();
        let err = Context::from_vars(&|k| vars.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err, EventError::Missing("JUJU_VERSION"));
    }
}
