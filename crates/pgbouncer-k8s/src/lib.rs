//! The PgBouncer charm.
//!
//! [`PgBouncerCharm`] routes each event to its flow in [`flows`]; the flows read
//! the state through [`state`], talk to PostgreSQL through [`postgres`] and to the
//! container through [`workload`] (and hands connections over in a rolling
//! restart through [`handover`]) and, on Kubernetes, to the application's
//! StatefulSet through [`statefulset`] and to its Service through [`service`];
//! [`pgb`] knows PgBouncer's files;
//! [`status`] collects the unit's status once per dispatch (but in a
//! follower's hooks for a client relation, which leave it as it was).

pub mod config;
pub mod flows;
pub mod handover;
pub mod pgb;
pub mod postgres;
pub mod service;
pub mod state;
pub mod statefulset;
pub mod status;
pub mod workload;

use charm::{Charm, Event, Handled, Hook};
use client_interface::pgsql;
use client_interface::ClientEvent;
use flows::{
    backend, certificates, database, expose, legacy, lifecycle, logging, metrics, peers,
    switchover, upgrade, Deps,
};
use service::Services;
use state::{BACKEND, CERTIFICATES, DATABASE, PEERS};
use statefulset::StatefulSets;

/// The charm: its dependencies.
pub struct PgBouncerCharm {
    pub deps: Deps,
    /// The application's StatefulSet, on Kubernetes.
    pub stateful_sets: Option<Box<dyn StatefulSets>>,
    /// The application's Service, on Kubernetes.
    pub services: Option<Box<dyn Services>>,
    /// Whether an event handled since the last status collection may have
    /// changed the status ([`status::leaves_followers_status`]).
    status_due: bool,
}

impl PgBouncerCharm {
    /// The charm off Kubernetes.
    pub fn new(deps: Deps) -> PgBouncerCharm {
        PgBouncerCharm {
            deps,
            stateful_sets: None,
            services: None,
            status_due: false,
        }
    }

    /// The charm with the StatefulSet API (`None`: not on Kubernetes).
    pub fn with_stateful_sets(mut self, sets: Option<Box<dyn StatefulSets>>) -> PgBouncerCharm {
        self.stateful_sets = sets;
        self
    }

    /// The charm with the Service API (`None`: not on Kubernetes).
    pub fn with_services(mut self, services: Option<Box<dyn Services>>) -> PgBouncerCharm {
        self.services = services;
        self
    }
}

impl Charm for PgBouncerCharm {
    fn handle(&mut self, hook: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled> {
        if !status::leaves_followers_status(event) || hook.is_leader()? {
            self.status_due = true;
        }
        let deps = &self.deps;
        expose::before(hook, deps, self.services.as_deref(), event)?;
        if let Some(client) = ClientEvent::of(hook, DATABASE, event)? {
            return database::handle(hook, deps, client);
        }
        for endpoint in pgsql::ENDPOINTS {
            if let Some(client) = ClientEvent::of(hook, endpoint, event)? {
                return legacy::handle(hook, deps, client);
            }
        }
        match event {
            Event::RelationChanged(r) if pgsql::Kind::of(&r.relation.endpoint).is_some() => {
                legacy::follower_changed(hook, &r.relation)
            }
            Event::RelationCreated(r) | Event::RelationJoined(r) | Event::RelationChanged(r)
                if cos_interface::ENDPOINTS.contains(&r.relation.endpoint.as_str()) =>
            {
                metrics::publish(hook)
            }
            Event::RelationCreated(r)
            | Event::RelationJoined(r)
            | Event::RelationChanged(r)
            | Event::RelationDeparted(r)
            | Event::RelationBroken(r)
                if r.relation.endpoint == cos_interface::logging::LOGGING =>
            {
                logging::forward(hook)
            }
            Event::ConfigChanged => {
                let handled = lifecycle::config_changed(hook, deps)?;
                metrics::publish(hook)?;
                Ok(handled)
            }
            Event::PebbleReady { container } if container == workload::CONTAINER => {
                let handled = lifecycle::pebble_ready(hook, deps)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::UpdateStatus => {
                let handled = lifecycle::update_status(hook, deps)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::LeaderElected => {
                let handled = lifecycle::leader_elected(hook, deps)?;
                metrics::publish(hook)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::UpgradeCharm => {
                let handled = lifecycle::upgrade_charm(hook, deps)?;
                switchover::converge(hook, deps)?;
                metrics::publish(hook)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::PebbleCustomNotice { container, notice }
                if switchover::is_expiry(container, notice) =>
            {
                switchover::expired(hook, deps, notice)?;
                Ok(Handled::Done)
            }
            Event::SecretChanged(s) => lifecycle::secret_changed(hook, deps, s),
            Event::SecretRemove(s) => lifecycle::secret_remove(hook, s),
            Event::RelationCreated(r) if r.relation.endpoint == PEERS => {
                peers::created(hook, deps, &r.relation)
            }
            Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == PEERS =>
            {
                let handled = peers::changed(hook, deps, &r.relation)?;
                switchover::converge(hook, deps)?;
                Ok(handled)
            }
            Event::RelationDeparted(r) if r.relation.endpoint == PEERS => {
                peers::departed(hook, deps, &r.relation)
            }
            Event::RelationCreated(r) if r.relation.endpoint == BACKEND => {
                switchover::advertise(hook, &r.relation)?;
                backend::created(hook, r)
            }
            Event::RelationChanged(r) if r.relation.endpoint == BACKEND => {
                let handled = backend::changed(hook, deps)?;
                switchover::converge(hook, deps)?;
                Ok(handled)
            }
            Event::RelationDeparted(r) if r.relation.endpoint == BACKEND => {
                backend::departed(hook, r)
            }
            Event::RelationBroken(r) if r.relation.endpoint == BACKEND => {
                backend::broken(hook, deps, r)
            }
            Event::RelationCreated(r) | Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == CERTIFICATES =>
            {
                certificates::changed(hook, deps, &r.relation)
            }
            Event::RelationBroken(r) if r.relation.endpoint == CERTIFICATES => {
                certificates::broken(hook, deps, r)
            }
            Event::Action(a) if a.name == "set-tls-private-key" => {
                certificates::set_private_key(hook, deps)
            }
            Event::Action(a) if a.name == "pre-upgrade-check" => {
                upgrade::pre_upgrade_check(hook, deps, self.stateful_sets.as_deref())
            }
            Event::Action(a) if a.name == "resume-upgrade" => {
                upgrade::resume_upgrade(hook, self.stateful_sets.as_deref())
            }
            _ => Ok(Handled::Done),
        }
    }

    fn collect_status(&mut self, hook: &mut Hook<'_>) -> anyhow::Result<()> {
        // A follower's client relation hook keeps its status, unless a flow
        // met a problem the user should see.
        let due = std::mem::take(&mut self.status_due);
        if !due && hook.statuses().statuses().is_empty() {
            return Ok(());
        }
        status::collect(hook, &self.deps)
    }
}
