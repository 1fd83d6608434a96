//! Test controls, verbs only the local model has: `advance-clock`,
//! `set-seed`, `fail-next-hook` and `kill-workload`. (Removing a unit abruptly
//! is Juju's own `remove-unit --force --no-wait`.)

use super::{parse, CliError, Outcome, Target};
use crate::api::Request;
use crate::tools::Kind;

/// `juju advance-clock <duration>`: moves the model's clock ahead, so secret
/// rotations and expiries fall due.
pub fn advance_clock(args: &[String]) -> Outcome {
    let p = parse(args, &[])?;
    let [by] = p.positional.as_slice() else {
        return Err(CliError::Usage("expected a duration such as 2h".into()));
    };
    let seconds = crate::clock::parse_duration(by)
        .ok_or_else(|| CliError::Usage(format!("invalid duration {by:?}")))?;
    Target::from(&p)?.call(&Request::AdvanceClock { seconds })?;
    Ok(())
}

/// `juju set-seed <n>` fixes the order units run their due hooks in (the same
/// seed, the same order, also after a controller restart); `juju set-seed
/// --reset` goes back to unit-name order.
pub fn set_seed(args: &[String]) -> Outcome {
    let p = parse(args, &[(&["reset"], Kind::Bool)])?;
    let seed = match (p.positional.as_slice(), p.flag("reset")) {
        ([], true) => None,
        ([n], false) => Some(
            n.parse::<u64>()
                .map_err(|_| CliError::Usage(format!("invalid seed {n:?}: expected a number")))?,
        ),
        _ => return Err(CliError::Usage("expected a seed number or --reset".into())),
    };
    Target::from(&p)?.call(&Request::SetSeed { seed })?;
    Ok(())
}

/// `juju fail-next-hook <unit>`: the unit's next hook fails as if its charm
/// exited non-zero (nothing committed, the unit in error until `juju resolve`).
pub fn fail_next_hook(args: &[String]) -> Outcome {
    let p = parse(args, &[])?;
    let [unit] = p.positional.as_slice() else {
        return Err(CliError::Usage("expected one unit name".into()));
    };
    Target::from(&p)?.call(&Request::FailNextHook { unit: unit.clone() })?;
    Ok(())
}

/// `juju crash-unit <unit>`: the unit's machine is lost. Its workloads are
/// SIGKILLed at once (nothing they hold is released) and the unit goes
/// without running a hook.
pub fn crash_unit(args: &[String]) -> Outcome {
    let p = parse(args, &[])?;
    let [unit] = p.positional.as_slice() else {
        return Err(CliError::Usage("expected one unit name".into()));
    };
    Target::from(&p)?.call(&Request::CrashUnit { unit: unit.clone() })?;
    Ok(())
}

/// `juju kill-workload <unit> <container> <service>`: SIGKILLs the service's
/// processes; Pebble then applies the service's `on-failure` policy.
pub fn kill_workload(args: &[String]) -> Outcome {
    let p = parse(args, &[])?;
    let [unit, container, service] = p.positional.as_slice() else {
        return Err(CliError::Usage(
            "expected <unit> <container> <service>".into(),
        ));
    };
    Target::from(&p)?.call(&Request::KillWorkload {
        unit: unit.clone(),
        container: container.clone(),
        service: service.clone(),
    })?;
    Ok(())
}
