//! The PostgreSQL charm: a Patroni-managed PostgreSQL cluster.
//!
//! [`PostgresqlCharm`] routes each event to its flow in [`flows`]; the flows read
//! the model through [`state`], choose the DCS in [`dcs`] (Patroni's keys
//! there through [`dcs_keys`]), talk to Patroni through [`patroni`], to PostgreSQL through [`postgres`], to pods through
//! [`pods`], to the cluster's Services through [`services`] and to the
//! container through [`workload`]; [`status`] collects the unit's status once
//! per dispatch; [`role_change`] handles the notice Patroni's
//! callback records when this member starts or changes role.

pub mod config;
pub mod dcs;
pub mod dcs_keys;
pub mod flows;
pub mod patroni;
pub mod pgbackrest;
pub mod pods;
pub mod postgres;
pub mod role_change;
pub mod services;
pub mod state;
pub mod status;
pub mod workload;

use charm::{Charm, Event, Handled, Hook};
use client_interface::pgsql;
use client_interface::ClientEvent;
use flows::backups::{self, Trigger};
use flows::{
    actions, certificates, database, legacy, lifecycle, logging, metrics, peers, rolling_restart,
    Deps, Findings,
};
use state::{CERTIFICATES, DATABASE, ETCD, PEERS, RECEIVE_CA};

/// The charm: its dependencies, and what this dispatch found.
pub struct PostgresqlCharm {
    pub deps: Deps,
    /// The cluster's Services, on Kubernetes.
    pub services: Option<Box<dyn k8s_incluster::ServiceApi>>,
    findings: Findings,
}

impl PostgresqlCharm {
    pub fn new(deps: Deps) -> PostgresqlCharm {
        PostgresqlCharm {
            deps,
            services: None,
            findings: Findings::default(),
        }
    }

    /// The charm with the Service API (`None`: not on Kubernetes).
    pub fn with_services(
        mut self,
        services: Option<Box<dyn k8s_incluster::ServiceApi>>,
    ) -> PostgresqlCharm {
        self.services = services;
        self
    }
}

impl Charm for PostgresqlCharm {
    fn handle(&mut self, hook: &mut Hook<'_>, event: &Event) -> anyhow::Result<Handled> {
        let (deps, findings) = (&self.deps, &mut self.findings);
        flows::services::before(hook, deps, self.services.as_deref(), event)?;
        if let Event::RelationChanged(r) = event {
            if r.relation.endpoint == DATABASE {
                // Any unit: a candidate may wait for its poolers.
                flows::switchover::progress(hook, deps)?;
            }
        }
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
            Event::PebbleReady { container } if container == workload::CONTAINER => {
                let handled = lifecycle::pebble_ready(hook, deps, findings)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::PebbleCustomNotice { container, notice }
                if role_change::is_role_change(container, notice) =>
            {
                let handled = role_change::changed(hook, deps, findings, notice)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                rolling_restart::converge(hook, deps, findings)?;
                Ok(handled)
            }
            Event::RelationBroken(r) if r.relation.endpoint == s3_interface::S3_PARAMETERS => {
                backups::converge(hook, deps, findings, Trigger::Gone)
            }
            Event::RelationCreated(r) | Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == s3_interface::S3_PARAMETERS =>
            {
                backups::converge(hook, deps, findings, Trigger::Relation)
            }
            Event::PebbleCustomNotice { container, notice }
                if rolling_restart::is_check(container, notice) =>
            {
                rolling_restart::converge(hook, deps, findings)?;
                Ok(Handled::Done)
            }
            Event::PebbleCustomNotice { container, notice }
                if flows::switchover::is_deadline(container, notice) =>
            {
                flows::switchover::progress(hook, deps)?;
                Ok(Handled::Done)
            }
            Event::RelationCreated(r) | Event::RelationJoined(r) | Event::RelationChanged(r)
                if cos_interface::ENDPOINTS.contains(&r.relation.endpoint.as_str()) =>
            {
                metrics::changed(hook)
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
                let handled = lifecycle::config_changed(hook, deps, findings)?;
                rolling_restart::converge(hook, deps, findings)?;
                metrics::publish(hook)?;
                Ok(handled)
            }
            Event::UpdateStatus => {
                if let Some(relation) = hook.relation(CERTIFICATES)? {
                    certificates::refresh(hook, &relation)?;
                }
                flows::switchover::progress(hook, deps)?;
                flows::restore::progress(hook, deps)?;
                let handled = lifecycle::update_status(hook, deps, findings)?;
                rolling_restart::converge(hook, deps, findings)?;
                backups::converge(hook, deps, findings, Trigger::UpdateStatus)?;
                metrics::publish(hook)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::UpgradeCharm => {
                flows::takeover::run(hook)?;
                let handled = lifecycle::update_status(hook, deps, findings)?;
                metrics::publish(hook)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::LeaderElected => {
                let handled = lifecycle::leader_elected(hook, deps, findings)?;
                rolling_restart::converge(hook, deps, findings)?;
                metrics::publish(hook)?;
                logging::forward(hook)?;
                Ok(handled)
            }
            Event::SecretChanged(_) => {
                let handled = peers::changed(hook, deps, findings)?;
                rolling_restart::converge(hook, deps, findings)?;
                metrics::publish(hook)?;
                Ok(handled)
            }
            Event::SecretRemove(s) => lifecycle::secret_remove(hook, s),
            Event::Stop => lifecycle::stop(hook, deps),
            Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == PEERS =>
            {
                flows::restore::progress(hook, deps)?;
                let handled = peers::changed(hook, deps, findings)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                rolling_restart::converge(hook, deps, findings)?;
                Ok(handled)
            }
            Event::RelationDeparted(r) if r.relation.endpoint == PEERS => {
                let handled = peers::departed(hook, deps, r)?;
                flows::restore::progress(hook, deps)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                rolling_restart::converge(hook, deps, findings)?;
                Ok(handled)
            }
            Event::RelationChanged(r) | Event::RelationBroken(r) if r.relation.endpoint == ETCD => {
                lifecycle::dcs_changed(hook, deps, findings)
            }
            Event::RelationCreated(r) | Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == CERTIFICATES =>
            {
                let handled = certificates::changed(hook, deps, findings, &r.relation)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                rolling_restart::converge(hook, deps, findings)?;
                metrics::publish(hook)?;
                Ok(handled)
            }
            Event::RelationBroken(r) if r.relation.endpoint == CERTIFICATES => {
                let handled = certificates::broken(hook, deps, findings, r)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                rolling_restart::converge(hook, deps, findings)?;
                metrics::publish(hook)?;
                Ok(handled)
            }
            Event::RelationCreated(r) | Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == RECEIVE_CA =>
            {
                let handled = certificates::ca_changed(hook, deps, findings, &r.relation)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                Ok(handled)
            }
            Event::RelationBroken(r) if r.relation.endpoint == RECEIVE_CA => {
                let handled = certificates::ca_broken(hook, deps, findings, r)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                Ok(handled)
            }
            Event::Action(a) if a.name == "set-tls-private-key" => {
                let handled = certificates::set_private_key(hook, deps, findings)?;
                backups::converge(hook, deps, findings, Trigger::Peers)?;
                rolling_restart::converge(hook, deps, findings)?;
                Ok(handled)
            }
            Event::Action(a) => actions::run(hook, deps, &a.name),
            _ => Ok(Handled::Done),
        }
    }

    fn collect_status(&mut self, hook: &mut Hook<'_>) -> anyhow::Result<()> {
        status::collect(hook, &self.deps, &self.findings)?;
        if hook.is_leader()? {
            let unit = hook.statuses().highest().cloned().unwrap_or_default();
            let app = status::application(hook, &unit)?;
            hook.set_app_status(app)?;
        }
        Ok(())
    }
}
