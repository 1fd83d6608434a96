//! The `restore` action (`docs/backups.md`): the cluster brought back to a
//! backup or a point in time from the S3 repository. On several units the
//! restore is scheduled ([`Scheduled`]): the other units stop their members
//! and move their data aside, then the leader restores as below, and they
//! join the restored cluster as new replicas.
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
use crate::state::{self, RESTORE_ASIDE, RESTORE_FAILED, RESTORE_REQUEST, RESTORE_STOPPED};
use crate::workload::{exists, DataDir, CONTAINER};
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
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

/// `restore`: checks the request, then restores at once on a cluster of
/// one unit, or schedules the restore on a cluster of several (see
/// [`progress`]).
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
    if let Some(pending) = scheduled(hook, &ctx.peers)? {
        return fail(
            hook,
            &format!(
                "a restore is scheduled already ({}): wait for it to finish",
                pending.target.describe()
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
    let (_, id) = recovery::free_generation(hook, deps, &ctx)?;
    let request = Scheduled {
        id,
        target,
        stanza,
        own,
    };
    let waiting = waiting_for(hook, &ctx, &request.id)?;
    if !waiting.is_empty() {
        return schedule(hook, &ctx, &request, &waiting);
    }
    let outcome = run(hook, deps, &ctx, &request)?;
    match outcome {
        Ok(results) => {
            hook.action_set(results)?;
            Ok(Handled::Done)
        }
        Err(message) => fail(hook, &message),
    }
}

/// A restore scheduled on a cluster of several units (the peer application
/// bag's `restore-request`): every other unit stops its member and moves its
/// data aside, then the leader restores, and the others join the restored
/// cluster as new replicas.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scheduled {
    /// The request's id: the scope the restored cluster is to start as.
    pub id: String,
    /// What is restored.
    pub target: Target,
    /// The stanza it is restored from.
    pub stanza: String,
    /// Whether the stanza is this cluster's own.
    pub own: bool,
}

/// The restore scheduled, if any. A request that cannot be read is none.
pub fn scheduled(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Option<Scheduled>> {
    Ok(hook
        .local_app_bag(peers)?
        .get(RESTORE_REQUEST)
        .and_then(|text| serde_json::from_str(text).ok()))
}

/// The other units that have not stopped their member for the restore `id`.
fn waiting_for(hook: &mut Hook<'_>, ctx: &Ctx, id: &str) -> anyhow::Result<Vec<String>> {
    let me = hook.unit().to_string();
    let mut waiting = Vec::new();
    for name in hook.relation_units(&ctx.peers)? {
        if name == me {
            continue;
        }
        let bag = hook.bag(&ctx.peers, &charm::Bag::Unit(name.clone()))?;
        if bag.get(RESTORE_STOPPED).map(String::as_str) != Some(id) {
            waiting.push(name);
        }
    }
    Ok(waiting)
}

/// The leader records the request; the action answers that it is scheduled.
fn schedule(
    hook: &mut Hook<'_>,
    ctx: &Ctx,
    request: &Scheduled,
    waiting: &[String],
) -> anyhow::Result<Handled> {
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new().set(RESTORE_REQUEST, serde_json::to_string(request)?),
    )?;
    let message = format!(
        "{} scheduled: the other units stop their members first ({}); this unit restores \
         then, and they copy the restored cluster (the status shows the progress)",
        request.target.describe(),
        waiting.join(", ")
    );
    hook.log(LogLevel::Warning, &message)?;
    hook.action_set([
        ("restore-status", "scheduled".to_string()),
        ("waiting-for", waiting.join(", ")),
        ("message", message),
    ])?;
    Ok(Handled::Done)
}

/// A scheduled restore, carried on by every hook of the peer relation and
/// update-status. A unit other than the leader stops its member, moves its
/// data aside and says so (`restore-stopped`); the leader, once every other
/// unit has, runs the restore. A unit forgets its word once no restore is
/// scheduled or failed.
pub fn progress(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<()> {
    let Some(ctx) = super::lifecycle::quiet_context(hook)? else {
        return Ok(());
    };
    let request = scheduled(hook, &ctx.peers)?;
    let stopped = hook
        .local_unit_bag(&ctx.peers)?
        .get(RESTORE_STOPPED)
        .cloned();
    let Some(request) = request else {
        if stopped.is_some() && failed(hook, &ctx.peers)?.is_none() {
            hook.update_unit_bag(&ctx.peers, BagChanges::new().unset(RESTORE_STOPPED))?;
        }
        return Ok(());
    };
    if !hook.is_leader()? {
        if stopped.as_deref() != Some(request.id.as_str()) {
            stop_for(hook, deps, &ctx, &request.id)?;
        }
        return Ok(());
    }
    if !waiting_for(hook, &ctx, &request.id)?.is_empty() {
        return Ok(());
    }
    match run(hook, deps, &ctx, &request)? {
        Ok(_) => hook.log(LogLevel::Info, "the scheduled restore finished")?,
        Err(message) => hook.log(LogLevel::Error, &message)?,
    }
    Ok(())
}

/// A unit other than the leader, for the restore `id`: its member stopped,
/// its data (a copy of the cluster the restore replaces) moved aside, kept,
/// and its word given. A data directory that cannot move blocks the unit
/// until a later hook moves it; the restore waits.
fn stop_for(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let w = &deps.workload;
    if let Err(why) = w.stop_postgresql(hook.container(CONTAINER))? {
        hook.add_problem(Status::Blocked(format!(
            "cannot stop for the scheduled restore: {why}"
        )))?;
        return Ok(());
    }
    if w.data_dir(hook.container(CONTAINER))? != DataDir::Empty {
        let aside = format!("{}.before-restore-{id}", w.layout.data_dir);
        if let Err(why) = w.move_data_aside(hook.container(CONTAINER), &aside)? {
            hook.add_problem(Status::Blocked(format!(
                "cannot stop for the scheduled restore: {why}"
            )))?;
            return Ok(());
        }
        hook.log(
            LogLevel::Warning,
            &format!("stopped for the restore: the data directory is moved aside to {aside} (kept, not deleted)"),
        )?;
    }
    hook.update_unit_bag(&ctx.peers, BagChanges::new().set(RESTORE_STOPPED, id))?;
    Ok(())
}

/// The status of a unit while a restore is scheduled: the leader names the
/// units it waits for; the others say that they stopped for it.
pub fn waiting(hook: &mut Hook<'_>) -> anyhow::Result<Option<Status>> {
    let Some(ctx) = super::lifecycle::quiet_context(hook)? else {
        return Ok(None);
    };
    let Some(request) = scheduled(hook, &ctx.peers)? else {
        return Ok(None);
    };
    let what = request.target.describe();
    if hook.is_leader()? {
        let waiting = waiting_for(hook, &ctx, &request.id)?;
        return Ok(Some(Status::Maintenance(format!(
            "{what} scheduled: waiting for {} to stop",
            waiting.join(", ")
        ))));
    }
    Ok(Some(Status::Maintenance(format!(
        "stopped for the restore ({what}); this unit copies the restored cluster after"
    ))))
}

/// Whether this unit keeps its member stopped for a scheduled restore: every
/// unit but the leader, which restores.
pub fn holds_member(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<bool> {
    Ok(!hook.is_leader()? && scheduled(hook, peers)?.is_some())
}

/// The restore itself, once checked: `Ok` with the action's results, or
/// `Err` with why it failed (recorded, and the unit blocked, when the data
/// had moved). The request, if one was scheduled, is done with either way.
fn run(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    request: &Scheduled,
) -> anyhow::Result<Result<Vec<(&'static str, String)>, String>> {
    let Scheduled {
        stanza,
        own,
        target,
        ..
    } = request;
    let what = target.describe();
    hook.set_status(Status::Maintenance(what.clone()))?;
    hook.log(LogLevel::Info, &what)?;
    let mut phases = Phases::start();
    let (next, scope) = recovery::free_generation(hook, deps, ctx)?;
    let w = &deps.workload;
    if *own {
        flush_archive(hook, deps, ctx, stanza, target)?;
        phases.lap("check");
    }
    if let Err(why) = w.stop_postgresql(hook.container(CONTAINER))? {
        return not_started(hook, deps, ctx, &why);
    }
    phases.lap("stop");
    // A restore failed before, or this unit stopped for the request while
    // another was leader: the cluster's data is where it was moved, and the
    // data directory holds what the failed restore left, or nothing.
    let mut earlier = hook.local_app_bag(&ctx.peers)?.get(RESTORE_ASIDE).cloned();
    let stopped = hook
        .local_unit_bag(&ctx.peers)?
        .get(RESTORE_STOPPED)
        .cloned();
    if earlier.is_none() && stopped.as_deref() == Some(request.id.as_str()) {
        let own_aside = format!("{}.before-restore-{}", w.layout.data_dir, request.id);
        if exists(hook.container(CONTAINER), &own_aside)? {
            earlier = Some(own_aside);
        }
    }
    let pebble = hook.container(CONTAINER);
    let retry = earlier.is_some();
    let (aside, emptied) = match earlier {
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
            // Nothing was moved: the cluster starts again as it was (the
            // other units, their data moved aside, copy it again).
            return not_started(hook, deps, ctx, &why);
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
    phases.lap("move aside");
    let restored =
        match backups::pgbackrest_run(hook, deps, ctx, stanza, "restore", &options, BACKUP_TIMEOUT)
        {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(backups::failed("pgBackRest's restore failed", &out)),
            Err(e) => Err(format!("pgBackRest could not run: {e}")),
        };
    phases.lap("pgBackRest restore");
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
    phases.lap("recovery");
    // The restored cluster starts as a new generation: Patroni finds its
    // scope empty in the DCS and takes the data directory as a new cluster.
    // The other units join it once the leader has initialised it.
    let founders = serde_json::to_string(std::slice::from_ref(&ctx.address))?;
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new()
            .set(state::GENERATION, next.to_string())
            .set(state::ENDPOINTS, founders)
            .unset(state::CLUSTER_INITIALISED)
            .unset(state::PRIMARY)
            .unset(RESTORE_FAILED)
            .unset(RESTORE_ASIDE)
            .unset(RESTORE_REQUEST),
    )?;
    hook.log(
        LogLevel::Warning,
        &format!(
            "restored: the cluster starts from the restored data as cluster {scope}; the data \
             directory from before is kept at {aside}"
        ),
    )?;
    update_config(hook, deps, &mut Findings::default(), ctx)?;
    phases.lap("Patroni started");
    hook.log(LogLevel::Info, &format!("restore took {phases}"))?;
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
    Ok(Ok(results))
}

/// How long each phase of a restore took, for the log.
struct Phases {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Phases {
        Phases {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Ends the phase `name`.
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: std::time::Duration = self.laps.iter().map(|(_, d)| *d).sum();
        write!(f, "{:.1} s:", total.as_secs_f64())?;
        for (i, (name, took)) in self.laps.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{name} {:.1} s", took.as_secs_f64())?;
        }
        Ok(())
    }
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
/// replay that cluster's WAL on top of it. A backup restored to its end
/// needs no WAL written after it (its own was archived before the backup
/// ended), so when nothing waits to be archived (no `.ready` file in
/// `pg_wal/archive_status`: every timeline history is in the repository)
/// the check is skipped. A failing check is logged: the restore goes on (a
/// cluster that does not run cannot be checked).
fn flush_archive(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    stanza: &str,
    target: &Target,
) -> anyhow::Result<()> {
    if !deps.workload.running(hook.container(CONTAINER))? {
        return Ok(());
    }
    if matches!(target, Target::Backup { .. }) && !archive_pending(hook, deps)? {
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

/// Whether PostgreSQL has files waiting to be archived (or the directory
/// that says so cannot be read).
fn archive_pending(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<bool> {
    let status = format!("{}/pg_wal/archive_status", deps.workload.layout.data_dir);
    Ok(hook
        .container(CONTAINER)
        .list_files(&status, Some("*.ready"))
        .map_or(true, |files| !files.is_empty()))
}

/// A restore given up before the data directory moved: the request is done
/// with and the cluster starts again as it was.
fn not_started(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    why: &str,
) -> anyhow::Result<Result<Vec<(&'static str, String)>, String>> {
    hook.update_app_bag(&ctx.peers, BagChanges::new().unset(RESTORE_REQUEST))?;
    update_config(hook, deps, &mut Findings::default(), ctx)?;
    Ok(Err(format!("restore not started: {why}")))
}

/// A restore failed after the data directory was moved aside: recorded (so
/// that Patroni stays stopped everywhere and the unit blocked), and the
/// message returned, both saying how to retry.
fn failure(
    hook: &mut Hook<'_>,
    ctx: &Ctx,
    aside: &str,
    why: &str,
) -> anyhow::Result<Result<Vec<(&'static str, String)>, String>> {
    let message = format!(
        "restore failed: {why}; the data from before is kept at {aside}: run the restore \
         action again"
    );
    hook.log(LogLevel::Error, &message)?;
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new()
            .set(RESTORE_FAILED, &message)
            .set(RESTORE_ASIDE, aside)
            .unset(RESTORE_REQUEST),
    )?;
    hook.set_status(Status::Blocked(message.clone()))?;
    Ok(Err(message))
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
