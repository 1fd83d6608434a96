//! `example`: a small web-server charm that exercises every part of the charm SDK.
//!
//! Each event has one flow below; each flow reads top to bottom like a flowchart:
//! check, then act, returning [`Handled::Deferred`] where it must wait.

use anyhow::Context as _;
use charm::backend::Port;
use charm::secret::{Revision, SecretMeta, SecretRef};
use charm::{
    BagChanges, Charm, Event, Handled, Hook, LogLevel, RelationEvent, SecretContent, SecretEvent,
    SecretId, SecretOwner, Status,
};
use pebble_api::{FileOptions, Layer, Service};
use serde::Deserialize;

pub const CONTAINER: &str = "web";
pub const SERVICE: &str = "web";
pub const PEERS: &str = "replicas";
pub const DB: &str = "db";
/// The owner label of the application's admin-password secret.
pub const ADMIN_LABEL: &str = "example.admin";
/// The peer application-bag key holding the admin secret's id.
pub const ADMIN_KEY: &str = "admin-secret";
pub const INDEX: &str = "/srv/index.html";
pub const ADMIN_FILE: &str = "/etc/example/admin-password";
/// A hook Juju never runs, on which the charm panics (for the SDK's panic tests).
pub const PANIC_HOOK: &str = "test-panic";

/// The charm's options (config.yaml).
#[derive(Debug, Deserialize)]
pub struct Config {
    pub port: i64,
    pub greeting: String,
}

impl Config {
    /// The port, if it is in range.
    pub fn port(&self) -> Result<u16, String> {
        u16::try_from(self.port)
            .ok()
            .filter(|p| *p >= 1024)
            .ok_or_else(|| format!("invalid config: port must be 1024-65535, got {}", self.port))
    }
}

#[derive(Debug, Deserialize)]
struct SetGreeting {
    text: String,
    shout: bool,
}

/// The charm.
#[derive(Default)]
pub struct ExampleCharm;

impl Charm for ExampleCharm {
    fn handle(&mut self, hook: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled> {
        match event {
            Event::Install => {
                hook.set_status(Status::Maintenance("installing".into()))?;
                hook.log(LogLevel::Info, "installed")?;
                Ok(Handled::Done)
            }
            Event::LeaderElected => ensure_admin_secret(hook),
            Event::ConfigChanged | Event::PebbleReady { .. } => configure(hook),
            Event::UpdateStatus => update_status(hook),
            Event::Stop => {
                if hook.container(CONTAINER).can_connect() {
                    hook.container(CONTAINER).stop(&[SERVICE])?;
                }
                Ok(Handled::Done)
            }
            Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == PEERS =>
            {
                share_address(hook, r)
            }
            Event::RelationChanged(r) if r.relation.endpoint == DB => provide_credentials(hook, r),
            Event::RelationDeparted(r) if r.relation.endpoint == DB => note_departure(hook, r),
            Event::RelationBroken(r) if r.relation.endpoint == DB => withdraw_credentials(hook, r),
            Event::SecretChanged(s) => admin_secret_changed(hook, s),
            Event::SecretRemove(s) => {
                hook.remove_secret(&s.id, s.revision)?;
                Ok(Handled::Done)
            }
            // Never run by Juju: the SDK's tests run it to see a panic logged.
            Event::Other { hook } if hook == PANIC_HOOK => {
                panic!("the {PANIC_HOOK} hook always panics")
            }
            Event::Action(a) => match a.name.as_str() {
                "get-admin-password" => get_admin_password(hook),
                "set-greeting" => set_greeting(hook),
                other => anyhow::bail!("unknown action {other}"),
            },
            _ => Ok(Handled::Done),
        }
    }
}

/// Leader: create the admin secret once and publish its id to the peers.
fn ensure_admin_secret(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    let Some(peers) = hook.relation(PEERS)? else {
        return Ok(Handled::Deferred);
    };
    let id = match admin_secret_id(hook)? {
        Some(id) => id,
        None => {
            let content = SecretContent::new().with("password", new_password()?);
            let meta = SecretMeta {
                label: Some(ADMIN_LABEL.into()),
                description: Some("admin password of the example application".into()),
                ..SecretMeta::default()
            };
            hook.add_secret(&content, SecretOwner::Application, &meta)?
        }
    };
    hook.update_app_bag(&peers, BagChanges::new().set(ADMIN_KEY, id.to_string()))?;
    hook.set_app_status(Status::Active(String::new()))?;
    Ok(Handled::Done)
}

/// The admin secret's id, from the peer application bag.
fn admin_secret_id(hook: &mut Hook<'_>) -> anyhow::Result<Option<SecretId>> {
    let Some(peers) = hook.relation(PEERS)? else {
        return Ok(None);
    };
    match hook.local_app_bag(&peers)?.get(ADMIN_KEY) {
        Some(raw) => Ok(Some(SecretId::parse(raw)?)),
        None => Ok(None),
    }
}

fn admin_password(hook: &mut Hook<'_>, revision: Revision) -> anyhow::Result<Option<String>> {
    let Some(id) = admin_secret_id(hook)? else {
        return Ok(None);
    };
    let content = hook.secret(&SecretRef::Id(id, Some(ADMIN_LABEL.into())), revision)?;
    Ok(content.get("password").map(str::to_string))
}

/// Validate config; wait for the container; write files; run the service; open the port.
fn configure(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    let config: Config = hook.config()?;
    let port = match config.port() {
        Ok(p) => p,
        Err(message) => {
            hook.set_status(Status::Blocked(message))?;
            return Ok(Handled::Done);
        }
    };
    if !hook.container(CONTAINER).can_connect() {
        hook.set_status(Status::Waiting("waiting for the web container".into()))?;
        return Ok(Handled::Deferred);
    }
    write_greeting(hook, &config.greeting)?;
    if let Some(password) = admin_password(hook, Revision::Tracked)? {
        write_admin_file(hook, &password)?;
    }
    // Listen on this unit's own address: units may share a machine.
    let address = hook
        .ingress_address(PEERS)?
        .unwrap_or_else(|| "0.0.0.0".into());
    let layer = service_layer(&address, port);
    let web = hook.container(CONTAINER);
    web.add_layer("example", &layer, true)?;
    web.replan()?;
    for old in hook.opened_ports()? {
        if old != Port::tcp(port) {
            hook.close_port(&old)?;
        }
    }
    hook.open_port(&Port::tcp(port))?;
    hook.set_workload_version(env!("CARGO_PKG_VERSION"))?;
    hook.set_status(Status::Active(format!("serving on :{port}")))?;
    Ok(Handled::Done)
}

/// The Pebble layer running the web server on `address`:`port`.
pub fn service_layer(address: &str, port: u16) -> Layer {
    let mut layer = Layer {
        summary: "example web server".into(),
        ..Layer::default()
    };
    layer.services.insert(
        SERVICE.into(),
        Service {
            r#override: "replace".into(),
            command: format!("python3 -m http.server {port} --bind {address} --directory /srv"),
            startup: "enabled".into(),
            ..Service::default()
        },
    );
    layer
}

fn write_greeting(hook: &mut Hook<'_>, greeting: &str) -> anyhow::Result<()> {
    push_file(
        hook,
        INDEX,
        format!("<h1>{greeting}</h1>\n").as_bytes(),
        0o644,
    )
}

fn write_admin_file(hook: &mut Hook<'_>, password: &str) -> anyhow::Result<()> {
    push_file(hook, ADMIN_FILE, password.as_bytes(), 0o600)
}

fn push_file(hook: &mut Hook<'_>, path: &str, content: &[u8], mode: u32) -> anyhow::Result<()> {
    let opts = FileOptions {
        permissions: Some(mode),
        make_parents: true,
        ..FileOptions::default()
    };
    hook.container(CONTAINER).push(path, content, &opts)?;
    Ok(())
}

/// Every unit publishes its address to its peers.
fn share_address(hook: &mut Hook<'_>, r: &RelationEvent) -> anyhow::Result<Handled> {
    let address = hook.ingress_address(PEERS)?.unwrap_or_default();
    hook.update_unit_bag(&r.relation, BagChanges::new().set("address", address))?;
    Ok(Handled::Done)
}

/// Leader: once the client names a database and the workload is up, hand it a
/// user and password in a secret granted to the relation.
fn provide_credentials(hook: &mut Hook<'_>, r: &RelationEvent) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    let Some(database) = hook.remote_app_bag(&r.relation)?.get("database").cloned() else {
        return Ok(Handled::Done);
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(Handled::Deferred);
    }
    if hook.local_app_bag(&r.relation)?.contains_key("secret-user") {
        return Ok(Handled::Done);
    }
    let content = SecretContent::new()
        .with("username", format!("relation-{}", r.relation.id))
        .with("password", new_password()?);
    let meta = SecretMeta {
        label: Some(user_secret_label(r.relation.id)),
        ..SecretMeta::default()
    };
    let id = hook.add_secret(&content, SecretOwner::Application, &meta)?;
    hook.grant_secret(&id, &r.relation, None)?;
    let config: Config = hook.config()?;
    let address = hook.ingress_address(DB)?.unwrap_or_default();
    hook.update_app_bag(
        &r.relation,
        BagChanges::new()
            .set("database", database)
            .set("endpoints", format!("{address}:{}", config.port))
            .set("secret-user", id.to_string()),
    )?;
    Ok(Handled::Done)
}

/// The owner label of a relation's user secret.
pub fn user_secret_label(relation_id: u64) -> String {
    format!("{DB}.{relation_id}.user.secret")
}

fn departing_key(relation_id: u64) -> String {
    format!("departing-{DB}-{relation_id}")
}

/// Remember that this unit is the one leaving, for relation-broken.
fn note_departure(hook: &mut Hook<'_>, r: &RelationEvent) -> anyhow::Result<Handled> {
    if r.departing_unit.as_deref() == Some(hook.unit()) {
        if let Some(peers) = hook.relation(PEERS)? {
            hook.update_unit_bag(
                &peers,
                BagChanges::new().set(departing_key(r.relation.id), "true"),
            )?;
        }
    }
    Ok(Handled::Done)
}

/// Leader that stays: revoke and remove the relation's user secret.
fn withdraw_credentials(hook: &mut Hook<'_>, r: &RelationEvent) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        return Ok(Handled::Done);
    }
    if let Some(peers) = hook.relation(PEERS)? {
        if hook
            .local_unit_bag(&peers)?
            .contains_key(&departing_key(r.relation.id))
        {
            return Ok(Handled::Done);
        }
    }
    let label = user_secret_label(r.relation.id);
    match hook.secret_info(&SecretRef::Label(label)) {
        Ok(info) => {
            let id = info.id.context("secret-info-get gave no id")?;
            hook.revoke_secret(&id, &r.relation, None)?;
            hook.remove_secret(&id, None)?;
        }
        Err(e) if e.is_secret_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Handled::Done)
}

/// A new admin password: track it, rewrite the file and reload the service.
fn admin_secret_changed(hook: &mut Hook<'_>, s: &SecretEvent) -> anyhow::Result<Handled> {
    if s.label.as_deref() != Some(ADMIN_LABEL) {
        return Ok(Handled::Done);
    }
    let Some(password) = admin_password(hook, Revision::Refresh)? else {
        return Ok(Handled::Done);
    };
    if !hook.container(CONTAINER).can_connect() {
        return Ok(Handled::Deferred);
    }
    write_admin_file(hook, &password)?;
    let running = hook.container(CONTAINER).services(&[SERVICE])?;
    if running.iter().any(|s| s.is_running()) {
        hook.container(CONTAINER)
            .send_signal("SIGHUP", &[SERVICE])?;
    }
    Ok(Handled::Done)
}

/// Report the service's health and how many units are planned (as a candidate
/// status: dispatch sets it once the hook is done).
fn update_status(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    if !hook.container(CONTAINER).can_connect() {
        hook.add_status(Status::Waiting("waiting for the web container".into()));
        return Ok(Handled::Done);
    }
    let services = hook.container(CONTAINER).services(&[SERVICE])?;
    let failing: Vec<String> = hook
        .container(CONTAINER)
        .checks(Some("alive"), &[])?
        .into_iter()
        .filter(|c| c.status != "up")
        .map(|c| c.name)
        .collect();
    let planned = hook.planned_units()?;
    if !services.iter().any(|s| s.is_running()) {
        // Its checks fail too, for the same reason: this says why.
        hook.add_status(Status::Maintenance("web server is not running".into()));
        return Ok(Handled::Done);
    }
    if !failing.is_empty() {
        hook.add_status(Status::Blocked(format!(
            "failing checks: {}",
            failing.join(", ")
        )));
    }
    hook.add_status(Status::Active(format!(
        "serving; {planned} unit(s) planned"
    )));
    Ok(Handled::Done)
}

fn get_admin_password(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    match admin_password(hook, Revision::Tracked)? {
        Some(password) => hook.action_set([("password", password)])?,
        None => hook.action_fail("no admin password yet: the leader has not created it")?,
    }
    Ok(Handled::Done)
}

fn set_greeting(hook: &mut Hook<'_>) -> anyhow::Result<Handled> {
    let params: SetGreeting = hook.action_params()?;
    if params.text.trim().is_empty() {
        hook.action_fail("text must not be empty")?;
        return Ok(Handled::Done);
    }
    let text = if params.shout {
        params.text.to_uppercase()
    } else {
        params.text
    };
    hook.action_log("writing the greeting")?;
    write_greeting(hook, &text)?;
    hook.action_set([("greeting", text)])?;
    Ok(Handled::Done)
}

/// 24 random alphanumeric characters from the kernel's generator.
fn new_password() -> anyhow::Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    let mut f = std::fs::File::open("/dev/urandom").context("cannot open /dev/urandom")?;
    let mut buf = [0u8; 64];
    while out.len() < 24 {
        f.read_exact(&mut buf)?;
        // 248 is the largest multiple of 62 below 256: reject above it to stay unbiased.
        out.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHABET[(*b % 62) as usize] as char)
                .take(24 - out.len()),
        );
    }
    Ok(out)
}
