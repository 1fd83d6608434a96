//! The `restore` action (`docs/backups.md`): the cluster, of one member,
//! brought back to a backup or a point in time from the S3 repository.
//!
//! On the leader, once the request, the repository and the backup are
//! checked: the repository is brought up to date (`check`), Patroni stops,
//! the data directory is moved aside (kept), pgBackRest
//! restores into an empty one, PostgreSQL recovers to the target alone and
//! promotes, the system users get the passwords the charm holds, and Patroni
//! starts on the result under a new cluster generation (`recovery`), whose
//! empty scope in the DCS makes it take the data as a new cluster. A failure
//! keeps Patroni stopped and blocks the unit, naming the set-aside
//! directory, until the action is run again. A new application pointed at
//! another cluster's repository restores that cluster's backups the same
//! way, reading its stanza and writing nothing there.

use super::backups::{self, fail, BACKUP_TIMEOUT};
use super::{recovery, update_config, Ctx, Deps, Findings};
use crate::pgbackrest::Backup;
use crate::state::{self, RESTORE_ASIDE, RESTORE_FAILED};
use crate::workload::{exists, CONTAINER};
use charm::{BagChanges, Handled, Hook, LogLevel, Relation, Status};

/// How long `pgbackrest check` may take before a restore (its archive
/// timeout is a minute).
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What the user asked to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A backup, by the id `list-backups` shows.
    Backup(String),
    /// A time, as PostgreSQL reads `recovery_target_time`.
    Time(String),
    /// The end of the archived WAL.
    Latest,
}

/// What pgBackRest restores, the request resolved against the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A backup (its id and pgBackRest's label), up to its end.
    Backup { id: String, label: String },
    /// The newest backup before a time, then WAL up to that time.
    Time(String),
    /// The newest backup, then every archived WAL segment.
    Latest,
}

impl Target {
    /// The status while it is restored.
    pub fn describe(&self) -> String {
        match self {
            Target::Backup { id, .. } => format!("restoring backup {id}"),
            Target::Time(time) => format!("restoring to {time}"),
            Target::Latest => "restoring to the end of the archived WAL".into(),
        }
    }

    /// pgBackRest's `restore` options: a backup is recovered to its end
    /// (`immediate`), a time with PostgreSQL's target, the latest to the end
    /// of the archive (`default`); each then promotes.
    pub fn options(&self) -> Vec<String> {
        match self {
            Target::Backup { label, .. } => vec![
                format!("--set={label}"),
                "--type=immediate".into(),
                "--target-action=promote".into(),
            ],
            Target::Time(time) => vec![
                "--type=time".into(),
                format!("--target={time}"),
                "--target-action=promote".into(),
            ],
            Target::Latest => vec!["--type=default".into()],
        }
    }
}

/// The action's parameters read: exactly one of `backup-id` and
/// `restore-to-time` (an empty value is an absent one).
pub fn request(backup_id: Option<&str>, time: Option<&str>) -> Result<Request, String> {
    let given = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    match (given(backup_id), given(time)) {
        (Some(_), Some(_)) => Err("give either backup-id or restore-to-time, not both".into()),
        (None, None) => Err(
            "give backup-id (list-backups lists them) or restore-to-time (a time, or latest)"
                .into(),
        ),
        (Some(id), None) => Ok(Request::Backup(id)),
        (None, Some(t)) if t == "latest" => Ok(Request::Latest),
        (None, Some(t)) if is_time(&t) => Ok(Request::Time(t)),
        (None, Some(t)) => Err(format!(
            "restore-to-time {t:?} is not a time: give YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][Z|±HH[:MM]], \
             or latest"
        )),
    }
}

/// Whether `t` is `YYYY-MM-DD`, then optionally ` HH:MM[:SS[.f…]]` (or
/// `T…`), then optionally `Z` or an offset `±HH[:MM]`.
pub fn is_time(t: &str) -> bool {
    let b = t.as_bytes();
    let within = |from: usize, len: usize, range: std::ops::RangeInclusive<u32>| {
        b.get(from..from + len)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u32>().ok())
            .is_some_and(|n| range.contains(&n))
    };
    let number = |from: usize, len: usize, max: u32| within(from, len, 0..=max);
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let date = number(0, 4, 9999)
        && at(4, b'-')
        && within(5, 2, 1..=12)
        && at(7, b'-')
        && within(8, 2, 1..=31);
    if !date {
        return false;
    }
    let mut i = 10;
    if i < b.len() {
        if !(at(i, b' ') || at(i, b'T'))
            || !(number(11, 2, 23) && at(13, b':') && number(14, 2, 59))
        {
            return false;
        }
        i = 16;
        if at(i, b':') {
            if !number(17, 2, 59) {
                return false;
            }
            i = 19;
            if at(i, b'.') {
                let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    return false;
                }
                i += 1 + digits;
            }
        }
    }
    match b.get(i) {
        None => true,
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            number(i + 1, 2, 23)
                && (i + 3 == b.len()
                    || (at(i + 3, b':') && number(i + 4, 2, 59) && i + 6 == b.len()))
        }
        Some(_) => false,
    }
}

/// The request against the repository's backups: a backup id must be one
/// of them (its id, or pgBackRest's label), and a time or the latest needs
/// one to start from.
pub fn resolve(request: &Request, backups: &[Backup]) -> Result<Target, String> {
    match request {
        Request::Backup(id) => backups
            .iter()
            .find(|b| &b.id == id || &b.label == id)
            .map(|b| Target::Backup {
                id: b.id.clone(),
                label: b.label.clone(),
            })
            .ok_or_else(|| {
                format!("backup {id} is not in the repository (list-backups lists the backups)")
            }),
        _ if backups.is_empty() => {
            Err("the repository holds no backup to restore from: create-backup takes one".into())
        }
        Request::Time(time) => Ok(Target::Time(time.clone())),
        Request::Latest => Ok(Target::Latest),
    }
}

/// Why the last restore failed, with the set-aside directory and how to
/// retry, while no restore has succeeded since; Patroni stays stopped.
pub fn failed(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Option<String>> {
    Ok(hook.local_app_bag(peers)?.get(RESTORE_FAILED).cloned())
}

/// The parameters of `restore`.
#[derive(serde::Deserialize)]
struct Params {
    #[serde(default, rename = "backup-id")]
    backup_id: Option<String>,
    #[serde(default, rename = "restore-to-time")]
    restore_to_time: Option<String>,
}

/// `restore`: checks the request, then restores (see the module's text).
pub fn restore(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    let params: Params = hook.action_params()?;
    let wanted = match request(
        params.backup_id.as_deref(),
        params.restore_to_time.as_deref(),
    ) {
        Ok(wanted) => wanted,
        Err(message) => return fail(hook, &message),
    };
    if !hook.is_leader()? {
        return fail(hook, "The action can be run only on leader unit");
    }
    let (ctx, stanza, own) = match backups::restore_source(hook, deps)? {
        Ok(found) => found,
        Err(message) => return fail(hook, &message),
    };
    let me = hook.unit().to_string();
    let others = state::peer_units(hook, &ctx.peers)?;
    let units = 1 + others.iter().filter(|u| u.name != me).count();
    let members = state::members(hook, &ctx.peers)?.len();
    let count = units.max(members);
    if count > 1 {
        return fail(
            hook,
            &format!(
                "the cluster has {count} units: scale it to one unit first (juju remove-unit), \
                 then restore, then add units again"
            ),
        );
    }
    let info = match backups::info(hook, deps, &ctx, &stanza)? {
        Ok(info) => info,
        Err(message) => return fail(hook, &message),
    };
    let target = match resolve(&wanted, &info.backups) {
        Ok(target) => target,
        Err(message) => return fail(hook, &message),
    };
    run(hook, deps, &ctx, (&stanza, own), &target)
}

/// The restore itself, once checked, from `stanza` (this cluster's own, or
/// another's).
fn run(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    (stanza, own): (&str, bool),
    target: &Target,
) -> anyhow::Result<Handled> {
    let what = target.describe();
    hook.set_status(Status::Maintenance(what.clone()))?;
    hook.log(LogLevel::Info, &what)?;
    let (next, scope) = recovery::free_generation(hook, deps, ctx)?;
    let w = &deps.workload;
    if own {
        flush_archive(hook, deps, ctx, stanza)?;
    }
    w.stop(hook.container(CONTAINER))?;
    let earlier = hook.local_app_bag(&ctx.peers)?.get(RESTORE_ASIDE).cloned();
    let pebble = hook.container(CONTAINER);
    let retry = earlier.is_some();
    let (aside, emptied) = match earlier {
        // A restore failed before: the cluster's data is where it moved it,
        // and the data directory holds what the failed restore left.
        Some(aside) => (aside, w.clear_failed_restore(pebble)?),
        None => {
            let aside = format!("{}.before-restore-{scope}", w.layout.data_dir);
            (aside.clone(), w.move_data_aside(pebble, &aside)?)
        }
    };
    let moved = retry || exists(hook.container(CONTAINER), &aside)?;
    match emptied {
        Ok(()) => {}
        Err(why) if moved => return failure(hook, ctx, &aside, &why),
        Err(why) => {
            // Nothing was moved: the cluster starts again as it was.
            update_config(hook, deps, &mut Findings::default(), ctx)?;
            return fail(hook, &format!("restore not started: {why}"));
        }
    }
    hook.log(
        LogLevel::Warning,
        &format!("the data directory is moved aside to {aside} (kept, not deleted)"),
    )?;
    // From here on, whatever fails is recorded with the set-aside directory.
    let mut options = target.options();
    if !own {
        // The configuration names this cluster's data directory for its
        // own stanza only.
        options.push(format!("--pg1-path={}", w.layout.data_dir));
    }
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let restored =
        match backups::pgbackrest_run(hook, deps, ctx, stanza, "restore", &options, BACKUP_TIMEOUT)
        {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(backups::failed("pgBackRest's restore failed", &out)),
            Err(e) => Err(format!("pgBackRest could not run: {e}")),
        };
    let recovered = match restored {
        Ok(()) => w
            .recover(
                hook.container(CONTAINER),
                BACKUP_TIMEOUT,
                &system_users(&ctx.passwords),
            )
            .unwrap_or_else(|e| Err(format!("PostgreSQL's recovery could not run: {e}"))),
        Err(why) => Err(why),
    };
    if let Err(why) = recovered {
        return failure(hook, ctx, &aside, &why);
    }
    // The restored cluster starts as a new generation: Patroni finds its
    // scope empty in the DCS and takes the data directory as a new cluster.
    let founders = serde_json::to_string(std::slice::from_ref(&ctx.address))?;
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new()
            .set(state::GENERATION, next.to_string())
            .set(state::ENDPOINTS, founders)
            .unset(state::CLUSTER_INITIALISED)
            .unset(state::PRIMARY)
            .unset(RESTORE_FAILED)
            .unset(RESTORE_ASIDE),
    )?;
    hook.log(
        LogLevel::Warning,
        &format!(
            "restored: the cluster starts from the restored data as cluster {scope}; the data \
             directory from before is kept at {aside}"
        ),
    )?;
    update_config(hook, deps, &mut Findings::default(), ctx)?;
    hook.set_status(Status::Maintenance(format!(
        "restored: starting cluster {scope}"
    )))?;
    let mut results = vec![
        ("restore-status", "restored".to_string()),
        ("previous-data", aside),
    ];
    if !own {
        hook.log(
            LogLevel::Warning,
            &format!(
                "restored from {stanza}, another cluster's backups: the repository stays that \
                 cluster's, so this one is not backed up until it is related to an S3 path or \
                 bucket of its own"
            ),
        )?;
        results.push(("restored-from", stanza.to_string()));
    }
    hook.action_set(results)?;
    Ok(Handled::Done)
}

/// The database users whose passwords the charm holds, with them: the
/// restored data gets these (the backup's may be older, or another
/// application's).
fn system_users(passwords: &state::Passwords) -> Vec<(&'static str, &str)> {
    [
        state::OPERATOR,
        state::REPLICATION,
        state::REWIND,
        state::MONITORING,
    ]
    .into_iter()
    .map(|user| (user, passwords.get(user)))
    .collect()
}

/// While the cluster runs, `pgbackrest check`: it switches WAL and waits
/// until the repository has it, so everything the cluster wrote is there
/// first, a failover's timeline history included. Otherwise the restore's
/// recovery could pick a timeline the repository is still to receive from
/// the running cluster, and Patroni, starting the restored data, would
/// replay that cluster's WAL on top of it. A failing check is logged: the
/// restore goes on (a cluster that does not run cannot be checked).
fn flush_archive(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx, stanza: &str) -> anyhow::Result<()> {
    if !deps.workload.running(hook.container(CONTAINER))? {
        return Ok(());
    }
    let checked = backups::pgbackrest_run(hook, deps, ctx, stanza, "check", &[], CHECK_TIMEOUT);
    let why = match checked {
        Ok(out) if out.success() => return Ok(()),
        Ok(out) => backups::failed("pgBackRest's check failed", &out),
        Err(e) => format!("pgBackRest could not run: {e}"),
    };
    hook.log(
        LogLevel::Warning,
        &format!("{why}; the restore goes on without the cluster's latest WAL archived"),
    )?;
    Ok(())
}

/// A restore failed after the data directory was moved aside: recorded (so
/// that Patroni stays stopped and the unit blocked), and the action fails,
/// both saying how to retry.
fn failure(hook: &mut Hook<'_>, ctx: &Ctx, aside: &str, why: &str) -> anyhow::Result<Handled> {
    let message = format!(
        "restore failed: {why}; the data from before is kept at {aside}: run the restore \
         action again"
    );
    hook.log(LogLevel::Error, &message)?;
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new()
            .set(RESTORE_FAILED, &message)
            .set(RESTORE_ASIDE, aside),
    )?;
    hook.set_status(Status::Blocked(message.clone()))?;
    fail(hook, &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgbackrest::BackupType;

    #[test]
    fn exactly_one_of_the_parameters() {
        assert!(request(None, None).is_err());
        assert!(request(Some(""), Some(" ")).is_err());
        assert!(request(Some("x"), Some("latest")).is_err());
        assert_eq!(
            request(Some("x"), Some("")),
            Ok(Request::Backup("x".into()))
        );
        assert_eq!(request(None, Some("latest")), Ok(Request::Latest));
    }

    #[test]
    fn times_in_postgresqls_iso_forms_only() {
        for good in [
            "2026-12-06",
            "2026-12-06 06:10",
            "2026-12-06T06:10:11",
            "2026-12-06 06:10:11.123456+00",
            "2026-12-06 06:10:11Z",
            "2026-12-06 06:10:11-05:30",
        ] {
            assert!(is_time(good), "{good}");
            assert_eq!(request(None, Some(good)), Ok(Request::Time(good.into())));
        }
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-00-01",
            "2026-12-06 25:00",
            "2026-12-06 06:10:11.",
            "2026-12-06 06:10:11+0",
            "2026-12-06 06:10:11Z'",
            "2026-12-06; rm",
        ] {
            assert!(!is_time(bad), "{bad}");
            assert!(request(None, Some(bad)).is_err(), "{bad}");
        }
    }

    fn backup(label: &str, id: &str) -> Backup {
        Backup {
            label: label.into(),
            id: id.into(),
            kind: BackupType::Full,
            reference: None,
            start: 0,
            stop: 0,
            size: 0,
            repository_size: 0,
            timeline: 1,
            error: false,
        }
    }

    #[test]
    fn a_backup_is_found_by_id_or_label_and_a_time_needs_one() {
        let backups = [backup("20261206-060000F", "2026-12-06T06:00:00Z")];
        let found = Target::Backup {
            id: "2026-12-06T06:00:00Z".into(),
            label: "20261206-060000F".into(),
        };
        for asked in ["2026-12-06T06:00:00Z", "20261206-060000F"] {
            assert_eq!(
                resolve(&Request::Backup(asked.into()), &backups),
                Ok(found.clone())
            );
        }
        assert!(resolve(&Request::Backup("other".into()), &backups).is_err());
        assert!(resolve(&Request::Latest, &[]).is_err());
        assert_eq!(resolve(&Request::Latest, &backups), Ok(Target::Latest));
        assert_eq!(
            found.options(),
            [
                "--set=20261206-060000F",
                "--type=immediate",
                "--target-action=promote"
            ]
        );
    }
}
