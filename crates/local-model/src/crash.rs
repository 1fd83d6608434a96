//! Named crash points, for tests: the controller daemon kills itself with
//! SIGKILL when it reaches the point `LOCAL_MODEL_CRASH_AT` names, so a test
//! can lose the controller at an exact step of a deploy, a hook or a
//! destroy, and check what the next controller makes of it.
//!
//! The value is `<point>[:<filter>][@<n>]`: the `n`-th time (default the
//! first) the daemon reaches `point` with a detail containing `filter`. The
//! points and their details:
//!
//! | point | where | detail |
//! |---|---|---|
//! | `copying` | a charm copy into the model, after its first file | the destination |
//! | `charm-copied` | a deploy, the charm copied, the model not yet saved | the application |
//! | `deployed` | a deploy saved, its units' Pebble servers not yet started | the application |
//! | `hook-started` | a hook recorded as started, its process not yet run | `<unit> <hook>` |
//! | `hook-tool` | a hook's process calling a hook tool | `<context id> <tool>`, the id `<unit>-<hook>-<n>` |
//! | `hook-exited` | a hook's process exited, its results not yet committed | `<unit> <hook>` |
//! | `hook-committed` | a hook's results committed and saved | `<unit> <hook>` |
//! | `forgotten` | a unit or application forgotten and saved, its files and Pebble servers not yet removed | the model's directory |
//! | `destroying` | `destroy-model`, the model marked as being destroyed | the model's directory |
//!
//! Only the daemon arms it ([`arm_from_env`]); a controller used as a library
//! never crashes on purpose.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where to crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashAt {
    pub point: String,
    /// A detail must contain it (empty: any).
    pub filter: String,
    /// The occurrence that crashes (1 is the first).
    pub nth: u64,
}

impl CrashAt {
    /// Parses `<point>[:<filter>][@<n>]`.
    pub fn parse(spec: &str) -> Option<CrashAt> {
        let (rest, nth) = match spec.rsplit_once('@') {
            Some((rest, n)) => (rest, n.parse().ok().filter(|n| *n > 0)?),
            None => (spec, 1),
        };
        let (point, filter) = rest.split_once(':').unwrap_or((rest, ""));
        (!point.is_empty()).then(|| CrashAt {
            point: point.to_string(),
            filter: filter.to_string(),
            nth,
        })
    }
}

static ARMED: OnceLock<CrashAt> = OnceLock::new();
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Arms the crash point `LOCAL_MODEL_CRASH_AT` names, if any; says so on
/// stderr (the controller's log).
pub fn arm_from_env() {
    let Ok(spec) = std::env::var("LOCAL_MODEL_CRASH_AT") else {
        return;
    };
    match CrashAt::parse(&spec) {
        Some(at) => {
            eprintln!("crash point armed: {spec}");
            let _ = ARMED.set(at);
        }
        None => eprintln!("ignoring LOCAL_MODEL_CRASH_AT={spec:?}: not <point>[:<filter>][@<n>]"),
    }
}

/// Kills this process with SIGKILL if it is the armed point's turn.
pub fn point(name: &str, detail: &str) {
    let Some(at) = ARMED.get() else {
        return;
    };
    if at.point != name || !detail.contains(at.filter.as_str()) {
        return;
    }
    if SEEN.fetch_add(1, Ordering::SeqCst) + 1 != at.nth {
        return;
    }
    eprintln!("crash point {name} reached ({detail}): killing the controller");
    // SAFETY: kill and getpid have no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_point_is_a_point_a_filter_and_an_occurrence() {
        let at = |point: &str, filter: &str, nth| CrashAt {
            point: point.into(),
            filter: filter.into(),
            nth,
        };
        assert_eq!(
            CrashAt::parse("hook-exited"),
            Some(at("hook-exited", "", 1))
        );
        assert_eq!(
            CrashAt::parse("hook-exited:db/0 install@3"),
            Some(at("hook-exited", "db/0 install", 3))
        );
        assert_eq!(CrashAt::parse("deployed@2"), Some(at("deployed", "", 2)));
        assert_eq!(CrashAt::parse(""), None);
        assert_eq!(CrashAt::parse("hook-exited@0"), None);
        assert_eq!(CrashAt::parse("hook-exited@x"), None);
    }
}
