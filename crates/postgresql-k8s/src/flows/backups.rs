//! The backup repository (`docs/backups.md`): the `s3-parameters` relation.
//!
//! Every unit writes pgBackRest's configuration from the provider's
//! parameters (or removes it); the unit whose member is the primary checks
//! the repository and creates this cluster's stanza, and reports the outcome
//! in its peer bag; the leader records the primary's report for the
//! application, and once a stanza is recorded every member's PostgreSQL
//! archives its WAL there (`archive_command`, a reload). A repository that
//! holds another cluster's backups is never written to.

use super::{certificates, cluster_status, context, update_config, Ctx, Deps, Findings};
use crate::patroni::Cluster;
use crate::patroni::DB_PORT;
use crate::pgbackrest::{self, BackupType, Info, Local, Remote, Server, TlsFiles};
use crate::postgres::operator_login;
use crate::state::{self, BACKUP_SERVER, S3_PROBLEM, STANZA};
use crate::workload::Layout;
use crate::workload::CONTAINER;
use charm::{BagChanges, Handled, Hook, LogLevel, Relation};
use s3_interface::{Parameters, S3_PARAMETERS};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a backup may take before pgBackRest is stopped.
pub(super) const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The status of a repository that holds another cluster's backups.
pub const ANOTHER_CLUSTER: &str = "the S3 repository has backups from another cluster";
/// How long a repository check or stanza creation may take.
const PGBACKREST_TIMEOUT: Duration = Duration::from_secs(120);
/// The most of pgBackRest's own words a status carries.
const MAX_REASON: usize = 120;

/// What the repository holds, against this cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repository {
    /// Nothing of this cluster's yet: the stanza is to be created.
    Empty,
    /// This cluster's stanza.
    Ours,
    /// Another cluster's stanza, or this stanza name for another system.
    Another,
}

/// Decides from `info` (this cluster's stanza, if the repository has it)
/// and the repository's other stanzas whether it is this cluster's
/// (`system_id`: its `pg_control_system()` identifier).
pub fn judge(info: Option<&Info>, other_stanzas: &[String], system_id: &str) -> Repository {
    match info {
        _ if !other_stanzas.is_empty() => Repository::Another,
        None => Repository::Empty,
        Some(info) if info.system_id.map(|id| id.to_string()).as_deref() == Some(system_id) => {
            Repository::Ours
        }
        Some(_) => Repository::Another,
    }
}

/// What brought [`converge`] on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The `s3-parameters` relation's created, joined or changed.
    Relation,
    /// Its relation-broken.
    Gone,
    /// update-status: a failed repository check is tried again.
    UpdateStatus,
    /// The peer relation or a role change: what could not be done before
    /// (the cluster not ready, the primary elsewhere) is done; a check that
    /// failed waits for the relation's next change or update-status, since
    /// an unreachable repository can hold a hook for minutes.
    Peers,
}

/// Brings the unit in line with the `s3-parameters` relation.
pub fn converge(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    trigger: Trigger,
) -> anyhow::Result<Handled> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(Handled::Done);
    };
    if trigger == Trigger::Gone {
        return forget(hook, deps, findings, &peers);
    }
    // Not related: whatever a relation left was removed when it went.
    let Some(relation) = hook.relation(S3_PARAMETERS)? else {
        return Ok(Handled::Done);
    };
    if hook.is_leader()? {
        s3_interface::ask(hook, &relation)?;
    }
    let bag = hook.remote_app_bag(&relation)?.clone();
    let s3 = match s3_interface::parse(&bag) {
        Ok(Parameters::Ready(s3)) => s3,
        Ok(Parameters::Missing(_)) => return forget(hook, deps, findings, &peers),
        Err(invalid) => return refuse(hook, deps, findings, &peers, &invalid.to_string()),
    };
    let layout = &deps.workload.layout;
    let stanza = pgbackrest::stanza(&hook.context().model_name, hook.app());
    let ca = (!s3.tls_ca_chain.is_empty()).then(|| s3.tls_ca_chain.join("\n") + "\n");
    let work_dir = layout.pgbackrest_dir();
    let local = local(layout, &work_dir);
    let ca_path = layout.pgbackrest_ca();
    // With TLS, every unit serves pgBackRest to the others, so that a backup
    // can be taken from a standby.
    let tls = state::tls_material(hook)?;
    let ctx = context(hook)?;
    let tls_files = layout.pgbackrest_tls();
    // Alone, a unit has no one to serve.
    let others = peer_names(hook, &peers)?;
    let serving = tls.is_some() && ctx.is_some() && !others.is_empty();
    let server = match &ctx {
        Some(ctx) if serving => Some(Server {
            address: &ctx.address,
            files: files(&tls_files),
            peers: others,
        }),
        _ => None,
    };
    let config = match pgbackrest::render(
        &s3,
        &stanza,
        &local,
        ca.as_ref().map(|_| ca_path.as_str()),
        server.as_ref(),
    ) {
        Ok(config) => config,
        Err(e) => return refuse(hook, deps, findings, &peers, &e.to_string()),
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(Handled::Done);
    }
    let changed = deps
        .workload
        .write_pgbackrest(hook.container(CONTAINER), Some((&config, ca.as_deref())))?;
    let serve = match (&tls, &ctx) {
        (Some(tls), Some(ctx)) if serving => Some((
            tls,
            ctx.passwords.get(state::OPERATOR),
            ctx.address.as_str(),
        )),
        _ => None,
    };
    serve_standby(hook, deps, &peers, serve, changed)?;
    let own = hook.local_unit_bag(&peers)?.clone();
    let reported = own.get(STANZA).cloned();
    let named_primary = hook.local_app_bag(&peers)?.get(state::PRIMARY).cloned()
        == Some(state::member_name(hook.unit()));
    let retry = trigger != Trigger::Peers || !own.contains_key(S3_PROBLEM);
    if named_primary && (changed || (retry && reported.as_deref() != Some(stanza.as_str()))) {
        // The peer bag names this unit's member; Patroni confirms it.
        let Some(ctx) = &ctx else {
            return Ok(Handled::Done);
        };
        if is_primary(hook, deps, ctx)? {
            initialise(hook, deps, ctx, &stanza)?;
        }
    } else if !named_primary && (changed || reported.is_some()) {
        // Only the primary reports on the repository.
        hook.update_unit_bag(&peers, BagChanges::new().unset(STANZA).unset(S3_PROBLEM))?;
    }
    record(hook, deps, findings)?;
    Ok(Handled::Done)
}

/// Leader: records the primary unit's report on the repository for the
/// application; when the stanza changes, every member's `archive_command`
/// follows (this unit's now, the others' on the peer change).
pub fn record(hook: &mut Hook<'_>, deps: &Deps, findings: &mut Findings) -> anyhow::Result<()> {
    if !hook.is_leader()? {
        return Ok(());
    }
    let Some(peers) = state::peers(hook)? else {
        return Ok(());
    };
    let primary = hook.local_app_bag(&peers)?.get(state::PRIMARY).cloned();
    let Some(primary_unit) = primary.as_deref().map(state::unit_of_member) else {
        return Ok(());
    };
    let report = if primary_unit == hook.unit() {
        hook.local_unit_bag(&peers)?.clone()
    } else {
        let bag = charm::Bag::Unit(primary_unit.clone());
        hook.bag(&peers, &bag)?.clone()
    };
    let app = hook.local_app_bag(&peers)?.clone();
    let (stanza, problem) = (report.get(STANZA), report.get(S3_PROBLEM));
    // A new primary (after a switchover or a failover) has not checked the
    // repository yet: the record stands, and WAL is still archived, until it
    // reports. Turning archiving off meanwhile would lose WAL from the
    // archive, and with it the point-in-time recovery across that gap.
    if stanza.is_none() && problem.is_none() {
        return Ok(());
    }
    if app.get(STANZA) == stanza && app.get(S3_PROBLEM) == problem {
        return Ok(());
    }
    let Some(ctx) = context(hook)? else {
        return Ok(());
    };
    hook.update_app_bag(
        &ctx.peers,
        BagChanges::new()
            .set_or_unset(STANZA, stanza.cloned())
            .set_or_unset(S3_PROBLEM, problem.cloned()),
    )?;
    if app.get(STANZA) != stanza {
        let what = match stanza {
            Some(s) => format!("backup repository ready (stanza {s}): WAL is archived there"),
            None => "no backup repository: WAL is no longer archived".into(),
        };
        hook.log(LogLevel::Info, &what)?;
        update_config(hook, deps, findings, &ctx)?;
    }
    Ok(())
}

/// Why this application's backups cannot go to the repository, for the
/// status: this unit's own finding, else the one the leader recorded.
pub fn problem(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    let Some(peers) = state::peers(hook)? else {
        return Ok(None);
    };
    if hook.relation(S3_PARAMETERS)?.is_none() {
        return Ok(None);
    }
    if let Some(own) = hook.local_unit_bag(&peers)?.get(S3_PROBLEM) {
        return Ok(Some(own.clone()));
    }
    Ok(hook.local_app_bag(&peers)?.get(S3_PROBLEM).cloned())
}

/// The stanza WAL is archived to, once the leader recorded one.
pub fn archiving_to(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Option<String>> {
    Ok(hook.local_app_bag(peers)?.get(STANZA).cloned())
}

/// No usable repository: the files go, and so do this unit's reports (and,
/// on the leader, the application's record, which stops archiving).
fn forget(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    peers: &Relation,
) -> anyhow::Result<Handled> {
    if hook.container(CONTAINER).can_connect() {
        serve_standby(hook, deps, peers, None, false)?;
        deps.workload
            .write_pgbackrest(hook.container(CONTAINER), None)?;
    }
    hook.update_unit_bag(peers, BagChanges::new().unset(STANZA).unset(S3_PROBLEM))?;
    if hook.is_leader()? {
        let app = hook.local_app_bag(peers)?.clone();
        if app.contains_key(STANZA) || app.contains_key(S3_PROBLEM) {
            hook.update_app_bag(peers, BagChanges::new().unset(STANZA).unset(S3_PROBLEM))?;
        }
        if app.contains_key(STANZA) {
            hook.log(
                LogLevel::Info,
                "no backup repository: WAL is no longer archived",
            )?;
            if let Some(ctx) = context(hook)? {
                update_config(hook, deps, findings, &ctx)?;
            }
        }
    }
    Ok(Handled::Done)
}

/// Runs pgBackRest's TLS server with `serve` (this unit's TLS material, the
/// password it logs in with and the unit's address), or stops it, and says
/// in the unit's peer bag where it serves, for the unit that takes a backup.
fn serve_standby(
    hook: &mut Hook<'_>,
    deps: &Deps,
    peers: &Relation,
    serve: Option<(&state::TlsMaterial, &str, &str)>,
    config_changed: bool,
) -> anyhow::Result<()> {
    let w = &deps.workload;
    let files = serve.map(|(tls, password, _)| (tls, password));
    // A server that does not start costs backups from a standby, not the
    // hook: the unit says it does not serve.
    let serving = match w.serve_pgbackrest(hook.container(CONTAINER), files, config_changed) {
        Ok(started) => {
            if started {
                hook.log(
                    LogLevel::Info,
                    "pgBackRest's TLS server started: backups can be taken from this unit's member",
                )?;
            }
            serve
        }
        Err(e) => {
            hook.log(
                LogLevel::Warning,
                &format!("pgBackRest's TLS server does not run: {e}"),
            )?;
            None
        }
    };
    let at = serving.map(|(_, _, address)| format!("{address}:{}", pgbackrest::SERVER_PORT));
    if hook.local_unit_bag(peers)?.get(BACKUP_SERVER) != at.as_ref() {
        hook.update_unit_bag(peers, BagChanges::new().set_or_unset(BACKUP_SERVER, at))?;
    }
    Ok(())
}

/// The TLS files pgBackRest uses between units, from their paths.
fn files(paths: &[String; 3]) -> TlsFiles<'_> {
    let [ca, cert, key] = paths;
    TlsFiles { ca, cert, key }
}

/// The common names of the other units' certificates.
fn peer_names(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<Vec<String>> {
    let me = hook.unit().to_string();
    let model = hook.context().model_name.clone();
    let app = hook.app().to_string();
    Ok(hook
        .relation_units(peers)?
        .into_iter()
        .filter(|unit| *unit != me)
        .filter_map(|unit| unit.rsplit_once('/').and_then(|(_, n)| n.parse().ok()))
        .map(|n| certificates::unit_subject(&app, n, &model, "").common_name)
        .collect())
}

/// Parameters that cannot be used: nothing is configured, and the unit
/// says why.
fn refuse(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    peers: &Relation,
    why: &str,
) -> anyhow::Result<Handled> {
    forget(hook, deps, findings, peers)?;
    hook.update_unit_bag(peers, BagChanges::new().set(S3_PROBLEM, why))?;
    Ok(Handled::Done)
}

/// Whether this unit's member is the cluster's running primary.
fn is_primary(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<bool> {
    if !state::initialised(hook, &ctx.peers)? {
        return Ok(false);
    }
    let me = state::member_name(hook.unit());
    Ok(cluster_status(hook, deps, ctx)?
        .and_then(|c| c.primary().cloned())
        .is_some_and(|p| p.name == me && p.is_ready()))
}

/// The primary's check of the repository: this cluster's stanza is made
/// when the repository holds nothing of anyone's, taken as it is when it is
/// this cluster's, and the repository refused when it is another's. The
/// outcome goes to the unit's peer bag.
fn initialise(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx, stanza: &str) -> anyhow::Result<()> {
    let report = |outcome: Result<&str, String>| match outcome {
        Ok(stanza) => BagChanges::new().set(STANZA, stanza).unset(S3_PROBLEM),
        Err(problem) => BagChanges::new().unset(STANZA).set(S3_PROBLEM, problem),
    };
    let outcome = check_repository(hook, deps, ctx, stanza)?;
    match &outcome {
        Ok(_) => hook.log(
            LogLevel::Info,
            &format!("backup repository checked: stanza {stanza} ready"),
        )?,
        Err(why) => hook.log(
            LogLevel::Warning,
            &format!("backup repository refused: {why}"),
        )?,
    }
    hook.update_unit_bag(&ctx.peers, report(outcome.as_deref().map_err(Clone::clone)))?;
    Ok(())
}

/// Runs pgBackRest's `info`, then `stanza-create` when the repository is
/// empty; `Err` is a status for the user. Creating the stanza proves that
/// the repository and the database can be reached; `check` would also
/// prove WAL archiving, which is not on until the stanza is recorded (every
/// backup proves it: pgBackRest waits for the backup's WAL in the
/// repository).
fn check_repository(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    stanza: &str,
) -> anyhow::Result<Result<String, String>> {
    let run = |hook: &mut Hook<'_>, command: &str, extra: &[&str]| {
        pgbackrest_run(hook, deps, ctx, stanza, command, extra, PGBACKREST_TIMEOUT)
    };
    let info = repository_info(hook, deps, ctx)?;
    if !info.success() {
        return Ok(Err(failed(
            "failed to access the S3 repository, check your S3 settings",
            &info,
        )));
    }
    if let Some(error) = pgbackrest::repository_error(&info.stdout_text()) {
        let error: String = error.chars().take(MAX_REASON).collect();
        return Ok(Err(format!(
            "failed to access the S3 repository, check your S3 settings: {error}"
        )));
    }
    let (ours, others) = match pgbackrest::parse_info(&info.stdout_text(), stanza) {
        Ok(Some(i)) => {
            let others = i.other_stanzas.clone();
            (Some(i), others)
        }
        Ok(None) => (None, all_stanzas(&info.stdout_text(), stanza)),
        Err(e) => return Ok(Err(format!("cannot read the S3 repository: {e}"))),
    };
    let target = operator_login(&ctx.address, DB_PORT, ctx.passwords.get(state::OPERATOR));
    let system_id = match deps
        .connector
        .connect(&target)
        .and_then(|mut pg| pg.system_identifier())
    {
        Ok(id) => id,
        Err(e) => return Ok(Err(format!("cannot read this cluster's identity: {e}"))),
    };
    match judge(ours.as_ref(), &others, &system_id) {
        Repository::Another => return Ok(Err(ANOTHER_CLUSTER.into())),
        Repository::Ours => {}
        Repository::Empty => {
            let created = run(hook, "stanza-create", &[])?;
            if !created.success() {
                return Ok(Err(failed(
                    "failed to initialize stanza, check your S3 settings",
                    &created,
                )));
            }
        }
    }
    Ok(Ok(stanza.to_string()))
}

/// The repository this unit can run pgBackRest against, or why not (the
/// action's failure message).
pub(super) fn usable_repository(
    hook: &mut Hook<'_>,
) -> anyhow::Result<Result<(Ctx, String), String>> {
    let Some(relation) = hook.relation(S3_PARAMETERS)? else {
        return Ok(Err(
            "Relation with s3-integrator charm missing, cannot create/restore backup.".into(),
        ));
    };
    let bag = hook.remote_app_bag(&relation)?.clone();
    match s3_interface::parse(&bag) {
        Ok(Parameters::Ready(_)) => {}
        Ok(Parameters::Missing(keys)) => return Ok(Err(s3_interface::missing_message(&keys))),
        Err(invalid) => return Ok(Err(invalid.to_string())),
    }
    let Some(ctx) = context(hook)? else {
        return Ok(Err("the cluster is not set up yet".into()));
    };
    if let Some(problem) = problem(hook)? {
        return Ok(Err(format!(
            "the backup repository cannot be used: {problem}"
        )));
    }
    match archiving_to(hook, &ctx.peers)? {
        Some(stanza) => Ok(Ok((ctx, stanza))),
        None => Ok(Err("Stanza was not initialised".into())),
    }
}

/// pgBackRest's `info` of the whole repository, every stanza in it.
fn repository_info(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
) -> anyhow::Result<pebble_api::ExecOutput> {
    let config = deps.workload.layout.pgbackrest_config();
    Ok(deps.workload.pgbackrest(
        hook.container(CONTAINER),
        pgbackrest::repository_info(&config),
        ctx.passwords.get(state::OPERATOR),
        PGBACKREST_TIMEOUT,
    )?)
}

/// The repository a restore reads, with its stanza and whether it is this
/// cluster's own, or why it cannot be read. A new application pointed at
/// another cluster's repository (which it never writes to) restores from
/// that cluster's stanza, when the repository holds that one alone.
pub(super) fn restore_source(
    hook: &mut Hook<'_>,
    deps: &Deps,
) -> anyhow::Result<Result<(Ctx, String, bool), String>> {
    let why = match usable_repository(hook)? {
        Ok((ctx, stanza)) => return Ok(Ok((ctx, stanza, true))),
        Err(why) => why,
    };
    if problem(hook)?.as_deref() != Some(ANOTHER_CLUSTER) {
        return Ok(Err(why));
    }
    let Some(ctx) = context(hook)? else {
        return Ok(Err(why));
    };
    let info = repository_info(hook, deps, &ctx)?;
    if !info.success() {
        return Ok(Err(failed("failed to read the S3 repository", &info)));
    }
    let own = pgbackrest::stanza(&hook.context().model_name, hook.app());
    Ok(match all_stanzas(&info.stdout_text(), &own).as_slice() {
        [other] => Ok((ctx, other.clone(), false)),
        [] => Err("the S3 repository holds no backups to restore".into()),
        several => Err(format!(
            "the S3 repository holds the backups of several clusters ({}): point this \
             application at one cluster's repository to restore it",
            several.join(", ")
        )),
    })
}

/// The parameters of `create-backup`.
/// Where a backup is taken from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The primary alone, on this unit (its member is the primary).
    Primary,
    /// A standby: pgBackRest copies the replicated files from `standby`'s
    /// member and starts and stops the backup on the primary; `remote` is
    /// the address of the other member's pgBackRest server (the primary's
    /// when this unit's member is the standby).
    Standby { standby: String, remote: String },
}

/// Why a replica cannot take a backup without TLS between the units.
pub const REPLICA_NEEDS_TLS: &str = "Unit cannot perform backups from a replica without TLS \
    between the units (pgBackRest reaches the primary through its TLS server): relate a \
    certificates provider, or run the action on the primary's unit (the get-primary action \
    names it)";

/// Decides where this unit (its member `me`) takes a backup from, given the
/// cluster and where each member's pgBackRest server listens (`servers`,
/// by member name; this unit's own is there exactly when it serves, which
/// needs TLS): from a standby whenever one runs and both ends serve, else
/// from the primary on the primary's unit. `Err` is the action's message.
pub fn source(
    cluster: &Cluster,
    me: &str,
    servers: &BTreeMap<String, String>,
) -> Result<Source, String> {
    let Some(own) = cluster
        .members
        .iter()
        .find(|m| m.name == me && m.is_ready())
    else {
        return Err("Unit cannot perform backups as its member is not running".into());
    };
    let tls = servers.contains_key(me);
    if own.is_leader() {
        let standby = cluster
            .members
            .iter()
            .filter(|m| !m.is_leader() && m.is_ready())
            .find_map(|m| servers.get(&m.name).map(|at| (m, at)));
        return Ok(match standby {
            Some((m, at)) if tls => Source::Standby {
                standby: state::unit_of_member(&m.name),
                remote: at.clone(),
            },
            _ => Source::Primary,
        });
    }
    if !tls {
        return Err(REPLICA_NEEDS_TLS.into());
    }
    let Some(primary) = cluster.primary().filter(|p| p.is_ready()) else {
        return Err("Unit cannot perform backups as the cluster has no running primary".into());
    };
    match servers.get(&primary.name) {
        Some(at) => Ok(Source::Standby {
            standby: state::unit_of_member(me),
            remote: at.clone(),
        }),
        None => Err(format!(
            "Unit cannot perform backups yet: the pgBackRest server of the primary's unit ({}) \
             is not running; try again in a moment, or run the action on that unit",
            state::unit_of_member(&primary.name)
        )),
    }
}

/// Where each unit's pgBackRest server listens (their peer bags), by
/// member name: the address alone.
fn servers(hook: &mut Hook<'_>, peers: &Relation) -> charm::Result<BTreeMap<String, String>> {
    let me = hook.unit().to_string();
    let mut found = BTreeMap::new();
    let mut units = hook.relation_units(peers)?;
    units.push(me.clone());
    for unit in units {
        let bag = match unit == me {
            true => hook.local_unit_bag(peers)?.clone(),
            false => hook.bag(peers, &charm::Bag::Unit(unit.clone()))?.clone(),
        };
        if let Some(at) = bag.get(BACKUP_SERVER) {
            let address = at.rsplit_once(':').map_or(at.as_str(), |(a, _)| a);
            found.insert(state::member_name(&unit), address.to_string());
        }
    }
    Ok(found)
}

/// Where this unit's PostgreSQL is, for pgBackRest (`work_dir`: its own
/// directory).
fn local<'a>(layout: &'a Layout, work_dir: &'a str) -> Local<'a> {
    Local {
        data_dir: &layout.data_dir,
        socket_dir: &layout.socket_dir,
        port: DB_PORT,
        user: state::OPERATOR,
        work_dir,
    }
}

#[derive(serde::Deserialize)]
struct CreateBackup {
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// `create-backup`: a full, differential or incremental backup of the
/// cluster, taken on this unit from a standby whenever one runs and the
/// units serve pgBackRest to each other (TLS), else on the primary's unit
/// from the primary ([`source`]).
pub fn create_backup(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    let params: CreateBackup = hook.action_params()?;
    let kind = match BackupType::parse(params.kind.as_deref().unwrap_or("full")) {
        Ok(kind) => kind,
        Err(message) => return fail(hook, &message),
    };
    let (ctx, stanza) = match usable_repository(hook)? {
        Ok(found) => found,
        Err(message) => return fail(hook, &message),
    };
    let me = state::member_name(hook.unit());
    let Some(cluster) = cluster_status(hook, deps, &ctx)? else {
        return fail(
            hook,
            "Unit cannot perform backups as the cluster's state cannot be read",
        );
    };
    let servers = servers(hook, &ctx.peers)?;
    let source = match source(&cluster, &me, &servers) {
        Ok(source) => source,
        Err(message) => return fail(hook, &message),
    };
    // A differential or an incremental needs a full backup to build on.
    if kind != BackupType::Full {
        let before = match info(hook, deps, &ctx, &stanza)? {
            Ok(info) => info,
            Err(message) => return fail(hook, &message),
        };
        if !before.backups.iter().any(|b| b.kind == BackupType::Full) {
            return fail(
                hook,
                &format!(
                    "Invalid backup type: {}. No previous full backup to reference.",
                    kind.describe()
                ),
            );
        }
    }
    let started = std::time::Instant::now();
    let layout = &deps.workload.layout;
    // pgBackRest names the new backup's label on its console at `info`.
    let mut options = vec![
        "--log-level-console=info".to_string(),
        format!("--type={}", kind.pgbackrest()),
    ];
    let taken_from = match &source {
        Source::Primary => format!("{} (primary)", hook.unit()),
        Source::Standby { standby, remote } => {
            let (work_dir, config, tls) = (
                layout.pgbackrest_dir(),
                layout.pgbackrest_config(),
                layout.pgbackrest_tls(),
            );
            options.extend(pgbackrest::standby_options(&Remote {
                address: remote,
                local: &local(layout, &work_dir),
                config: &config,
                files: files(&tls),
            }));
            format!("{standby} (replica)")
        }
    };
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let output = pgbackrest_run(
        hook,
        deps,
        &ctx,
        &stanza,
        "backup",
        &options,
        BACKUP_TIMEOUT,
    )?;
    if !output.success() {
        let why = failed("Failed to backup PostgreSQL", &output);
        hook.log(LogLevel::Warning, &why)?;
        return fail(hook, &why);
    }
    let after = match info(hook, deps, &ctx, &stanza)? {
        Ok(info) => info,
        Err(message) => return fail(hook, &message),
    };
    let label = pgbackrest::new_backup_label(&output.stdout_text());
    let Some(made) = after
        .backups
        .iter()
        .find(|b| Some(b.label.as_str()) == label.as_deref())
    else {
        return fail(hook, "pgBackRest finished but lists no new backup");
    };
    hook.log(
        LogLevel::Info,
        &format!(
            "{} backup {} taken from {taken_from} in {:.0} s",
            kind.describe(),
            made.id,
            started.elapsed().as_secs_f64()
        ),
    )?;
    hook.action_set([
        ("backup-status", "backup created".to_string()),
        ("backup-id", made.id.clone()),
        ("taken-from", taken_from),
    ])?;
    Ok(Handled::Done)
}

/// `list-backups`: the repository's backups of this cluster, as a table (in
/// a new application pointed at another cluster's repository, that
/// cluster's, which its `restore` reads, with the `stanza` named).
pub fn list_backups(hook: &mut Hook<'_>, deps: &Deps) -> anyhow::Result<Handled> {
    let (ctx, stanza, own) = match restore_source(hook, deps)? {
        Ok(found) => found,
        Err(message) => return fail(hook, &message),
    };
    match info(hook, deps, &ctx, &stanza)? {
        Ok(info) => {
            let mut results = vec![("backups", pgbackrest::table(&info.backups))];
            if !own {
                results.push(("stanza", stanza));
            }
            hook.action_set(results)?;
            Ok(Handled::Done)
        }
        Err(message) => fail(hook, &message),
    }
}

pub(super) fn fail(hook: &mut Hook<'_>, message: &str) -> anyhow::Result<Handled> {
    hook.action_fail(message)?;
    Ok(Handled::Done)
}

/// Runs pgBackRest's `command` for `stanza` in this unit's container.
pub(super) fn pgbackrest_run(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    stanza: &str,
    command: &str,
    extra: &[&str],
    timeout: Duration,
) -> anyhow::Result<pebble_api::ExecOutput> {
    let config = deps.workload.layout.pgbackrest_config();
    Ok(deps.workload.pgbackrest(
        hook.container(CONTAINER),
        pgbackrest::command(&config, stanza, command, extra),
        ctx.passwords.get(state::OPERATOR),
        timeout,
    )?)
}

/// What the repository holds of `stanza`; `Err` says why it cannot be read.
pub(super) fn info(
    hook: &mut Hook<'_>,
    deps: &Deps,
    ctx: &Ctx,
    stanza: &str,
) -> anyhow::Result<Result<Info, String>> {
    let output = pgbackrest_run(
        hook,
        deps,
        ctx,
        stanza,
        "info",
        &["--output=json"],
        PGBACKREST_TIMEOUT,
    )?;
    if !output.success() {
        return Ok(Err(failed("failed to read the S3 repository", &output)));
    }
    Ok(
        match pgbackrest::parse_info(&output.stdout_text(), stanza) {
            Ok(Some(info)) => Ok(info),
            Ok(None) => Err(format!("the S3 repository has no stanza {stanza}")),
            Err(e) => Err(e.to_string()),
        },
    )
}

/// The stanzas the repository's `info` lists besides `stanza`.
fn all_stanzas(info: &str, stanza: &str) -> Vec<String> {
    serde_json::from_str::<Vec<serde_json::Value>>(info)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .filter(|name| *name != stanza)
        .map(str::to_string)
        .collect()
}

/// An error or warning line of pgBackRest's console output, from its level
/// on: `ERROR: [075]: …`, bare or after the time and process
/// (`2024-05-02 10:11:12.345 P00  ERROR: …`).
fn logged_problem(line: &str) -> Option<&str> {
    let line = line.trim();
    ["ERROR:", "WARN:"].iter().find_map(|level| {
        if line.starts_with(level) {
            return Some(line);
        }
        let at = line.find(&format!(" {level}"))?;
        let process = line[..at].trim_end().rsplit(' ').next()?;
        let numbered = process.len() > 1
            && process.starts_with('P')
            && process[1..].chars().all(|c| c.is_ascii_digit());
        numbered.then(|| &line[at + 1..])
    })
}

/// `what`, with pgBackRest's own errors then warnings (it never prints the
/// keys), cut to a status's length.
pub(super) fn failed(what: &str, output: &pebble_api::ExecOutput) -> String {
    let text = format!("{}\n{}", output.stdout_text(), output.stderr_text());
    // Errors first: the cut keeps them.
    let (errors, warnings): (Vec<&str>, Vec<&str>) = text
        .lines()
        .filter_map(logged_problem)
        .partition(|line| line.starts_with("ERROR"));
    let mut reason = [errors, warnings].concat().join("; ");
    if reason.chars().count() > MAX_REASON {
        reason = reason.chars().take(MAX_REASON).collect();
    }
    match reason.is_empty() {
        true => what.to_string(),
        false => format!("{what}: {reason}"),
    }
}
