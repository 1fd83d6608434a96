//! The `plugin_*_enable` options' extensions: the leader creates each enabled
//! plugin's extensions (with what they need) on the primary, in every client
//! database the charm created and in `template1` (so that new databases have
//! them), and drops a disabled plugin's extensions there unless other objects
//! depend on them. The flowchart is in `docs/postgresql-flows.md`
//! (configuration, "Plugins").

use super::{applicable_config, cluster_status, database, legacy, Ctx, Deps};
use crate::config::{table, CharmConfig};
use crate::postgres;
use crate::state;
use charm::{BagChanges, Hook, LogLevel, Status};
use postgres_admin::{PgError, Postgres};
use std::collections::BTreeSet;

/// The template new databases are copied from.
pub const TEMPLATE: &str = "template1";

/// How many dependants a blocked message names per extension.
const SHOWN_DEPENDANTS: usize = 3;

/// A disabled plugin's extension kept because objects depend on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The plugin option that is off.
    pub option: &'static str,
    pub extension: &'static str,
    /// Each database where objects depend on it, with those objects.
    pub dependants: Vec<(String, Vec<String>)>,
}

/// What one pass did, and what it could not do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// (database, extension) created.
    pub created: Vec<(String, &'static str)>,
    /// (database, extension) dropped.
    pub dropped: Vec<(String, &'static str)>,
    /// (option, extension) whose package the server lacks.
    pub missing: Vec<(&'static str, &'static str)>,
    /// Extensions whose library PostgreSQL loads only when it restarts.
    pub awaiting_restart: Vec<&'static str>,
    /// Disabled plugins' extensions that other objects still use.
    pub kept: Vec<Kept>,
}

impl Outcome {
    /// Whether everything the options ask for is done.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.awaiting_restart.is_empty() && self.kept.is_empty()
    }

    /// The blocked status's message, when the options cannot be honoured
    /// without the user's help.
    pub fn blocked(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let names: Vec<String> = self
                .missing
                .iter()
                .map(|(option, e)| format!("{e} ({option})"))
                .collect();
            parts.push(format!(
                "extensions not installed in the PostgreSQL image: {}; set those options to false",
                names.join(", ")
            ));
        }
        for k in &self.kept {
            let mut used = Vec::new();
            for (db, objects) in &k.dependants {
                let mut shown: Vec<&str> = objects
                    .iter()
                    .take(SHOWN_DEPENDANTS)
                    .map(String::as_str)
                    .collect();
                let more = objects.len().saturating_sub(SHOWN_DEPENDANTS);
                let more = (more > 0).then(|| format!("{more} more"));
                shown.extend(more.as_deref());
                used.push(format!("{} in database {db}", shown.join(", ")));
            }
            parts.push(format!(
                "cannot drop extension {} ({} is false): used by {}; drop or change those \
                 objects, or set {}=true",
                k.extension,
                k.option,
                used.join("; "),
                k.option
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Brings `databases` to what the plugin options ask for: each enabled
/// plugin's extensions created (`CASCADE`) where missing, each disabled
/// one's dropped where present, unless other objects depend on it (then it
/// is dropped nowhere). An extension whose package is missing, or whose
/// library is not loaded yet, is skipped and reported. The extensions an
/// enabled one needs stay, whatever their own option says.
pub fn reconcile(
    pg: &mut dyn Postgres,
    config: &CharmConfig,
    databases: &[String],
) -> Result<Outcome, PgError> {
    let available = pg.available_extensions()?;
    let preloaded = pg.preloaded_libraries()?;
    let wanted = config.plugin_extensions(true);
    let mut outcome = Outcome::default();
    // Which extensions to create: available? library loaded?
    let mut create = Vec::new();
    for (option, extension) in &wanted {
        if !available.iter().any(|a| a == extension) {
            outcome.missing.push((option, extension));
            continue;
        }
        let library = table::plugin_preload(table::plugin_name(option));
        if library.is_some_and(|l| !preloaded.iter().any(|p| p == l)) {
            outcome.awaiting_restart.push(extension);
            continue;
        }
        create.push(*extension);
    }
    // Create them where missing.
    let mut installed = Vec::new();
    for db in databases {
        let there = pg.installed_extensions(db)?;
        for extension in &create {
            if !there.iter().any(|t| t == extension) {
                pg.enable_extension(db, extension)?;
                outcome.created.push((db.clone(), extension));
            }
        }
        installed.push((db.clone(), there));
    }
    // Which to drop: the disabled plugins' extensions that no enabled one
    // needs, those that need others first.
    let keep: BTreeSet<&str> = wanted
        .iter()
        .flat_map(|(_, e)| std::iter::once(*e).chain(table::extension_requires(e).iter().copied()))
        .collect();
    let mut unwanted: Vec<(&'static str, &'static str)> = config
        .plugin_extensions(false)
        .into_iter()
        .filter(|(_, e)| !keep.contains(e))
        .collect();
    unwanted.sort_by_key(|(_, e)| table::extension_requires(e).is_empty());
    let mut dropping: BTreeSet<&str> = unwanted.iter().map(|(_, e)| *e).collect();
    // Does anything else depend on it, in any database? Yes: keep it
    // everywhere; no: drop it everywhere.
    for (option, extension) in unwanted {
        let holding: Vec<&String> = installed
            .iter()
            .filter(|(_, there)| there.iter().any(|t| t == extension))
            .map(|(db, _)| db)
            .collect();
        let mut dependants = Vec::new();
        for db in &holding {
            let objects: Vec<String> = pg
                .extension_dependants(db, extension)?
                .into_iter()
                .filter(|o| {
                    !o.strip_prefix("extension ")
                        .is_some_and(|e| dropping.contains(e))
                })
                .collect();
            if !objects.is_empty() {
                dependants.push(((*db).clone(), objects));
            }
        }
        if !dependants.is_empty() {
            dropping.remove(extension);
            outcome.kept.push(Kept {
                option,
                extension,
                dependants,
            });
            continue;
        }
        for db in holding {
            if pg.drop_extension(db, extension)? {
                outcome.dropped.push((db.clone(), extension));
            }
        }
    }
    Ok(outcome)
}

/// The databases the plugins' extensions belong in: every client database
/// the charm created (`database`, `db` and `db-admin` relations), and
/// [`TEMPLATE`], sorted.
pub fn client_databases(hook: &mut Hook<'_>) -> anyhow::Result<Vec<String>> {
    let mut out = database::client_databases(hook)?;
    out.extend(legacy::client_databases(hook)?);
    out.push(TEMPLATE.into());
    out.sort();
    out.dedup();
    Ok(out)
}

/// What a complete pass is recorded as: the extensions created and the
/// databases they are in.
fn fingerprint(config: &CharmConfig, databases: &[String]) -> String {
    let wanted: Vec<&str> = config
        .plugin_extensions(true)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    format!("{} in {}", wanted.join(","), databases.join(","))
}

/// Leader, once the cluster is initialised: a pass over the client databases
/// and `template1` on the primary, unless the last complete one was for the
/// same options and databases. A pass that cannot finish is recorded (the
/// status shows why) and the next hook tries again.
pub fn apply(hook: &mut Hook<'_>, deps: &Deps, ctx: &Ctx) -> anyhow::Result<()> {
    // Leader? Initialised? Valid options?
    if !hook.is_leader()? || !state::initialised(hook, &ctx.peers)? {
        return Ok(());
    }
    let Some(config) = applicable_config(hook, deps)? else {
        return Ok(());
    };
    // Changed since the last complete pass?
    let databases = client_databases(hook)?;
    let print = fingerprint(&config, &databases);
    let bag = hook.local_app_bag(&ctx.peers)?;
    if bag.get(state::EXTENSIONS_APPLIED) == Some(&print) {
        return Ok(());
    }
    // A primary?
    let Some(primary) = cluster_status(hook, deps, ctx)?
        .and_then(|c| c.primary().filter(|p| p.is_ready()).cloned())
    else {
        return Ok(());
    };
    let login = postgres::operator_login(
        &primary.host,
        primary.port,
        ctx.passwords.get(state::OPERATOR),
    );
    let outcome = match deps
        .connector
        .connect(&login)
        .and_then(|mut pg| reconcile(pg.as_mut(), &config, &databases))
    {
        Ok(outcome) => outcome,
        Err(e) => {
            hook.add_problem(Status::Waiting(format!(
                "cannot update the plugins' extensions: {e}"
            )))?;
            return Ok(());
        }
    };
    log(hook, &outcome)?;
    let changes = BagChanges::new()
        .set_or_unset(state::EXTENSIONS_BLOCKED, outcome.blocked())
        .set_or_unset(
            state::EXTENSIONS_APPLIED,
            outcome.complete().then_some(print),
        );
    hook.update_app_bag(&ctx.peers, changes)?;
    Ok(())
}

/// A client database just created: the enabled plugins' extensions in it
/// (what cannot be done there waits for the leader's next pass).
pub fn create_in(
    hook: &mut Hook<'_>,
    deps: &Deps,
    pg: &mut dyn Postgres,
    db: &str,
) -> anyhow::Result<Result<(), PgError>> {
    let Some(config) = applicable_config(hook, deps)? else {
        return Ok(Ok(()));
    };
    let outcome = match reconcile(pg, &config, &[db.to_string()]) {
        Ok(outcome) => outcome,
        Err(e) => return Ok(Err(e)),
    };
    log(hook, &outcome)?;
    Ok(Ok(()))
}

/// Logs what a pass changed, and what waits for a restart.
fn log(hook: &mut Hook<'_>, outcome: &Outcome) -> anyhow::Result<()> {
    for (db, extension) in &outcome.created {
        hook.log(
            LogLevel::Info,
            &format!("created extension {extension} in {db}"),
        )?;
    }
    for (db, extension) in &outcome.dropped {
        hook.log(
            LogLevel::Info,
            &format!("dropped extension {extension} from {db}"),
        )?;
    }
    if !outcome.awaiting_restart.is_empty() {
        hook.log(
            LogLevel::Info,
            &format!(
                "extensions {} wait for PostgreSQL to restart with their libraries loaded",
                outcome.awaiting_restart.join(", ")
            ),
        )?;
    }
    Ok(())
}

/// Leader: why the plugins' extensions are not as the options say, for the
/// status.
pub fn blocked(hook: &mut Hook<'_>) -> anyhow::Result<Option<String>> {
    let (true, Some(peers)) = (hook.is_leader()?, state::peers(hook)?) else {
        return Ok(None);
    };
    Ok(hook
        .local_app_bag(&peers)?
        .get(state::EXTENSIONS_BLOCKED)
        .cloned())
}

/// The legacy request's extensions that no enabled plugin creates (by name),
/// each with the option that would, when one does.
pub fn not_enabled<'a>(
    config: &CharmConfig,
    requested: impl IntoIterator<Item = &'a str>,
) -> Vec<(&'a str, Option<&'static str>)> {
    let enabled: Vec<&str> = config
        .plugin_extensions(true)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    requested
        .into_iter()
        .filter(|name| !enabled.contains(name))
        .map(|name| (name, table::plugin_option_of(name)))
        .collect()
}
