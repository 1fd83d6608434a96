//! A deterministic simulator for Rust charms.
//!
//! The local model decides which hook each unit runs next, as Juju's resolver
//! does ([`local_model::resolver`]); here the charms run in this process on the
//! in-memory backend ([`juju_rules::run`]) instead of as processes, so a
//! scenario of hundreds of hooks takes milliseconds. A seed picks which unit
//! with a due hook goes next, so each seed is one interleaving of the units'
//! hooks, and the same seed always gives the same one. Between steps a test may
//! change the world (relate, add a unit, move leadership, take a backend down)
//! and check its invariants after every hook.
//!
//! Applications are either simulated (their units run hooks through a charm) or
//! remote (their units never run hooks; a test writes their data, as a
//! PostgreSQL or a client application would have).

use charm::dispatch::Charm;
use charm::metadata::CharmFiles;
use juju_rules::{ContainerState, State};
use local_model::agent::{Agent, Executed};
use local_model::model::{Application, End, Life, Model, SecretOwnerRecord, SecretRecord, Unit};
use std::collections::BTreeMap;
use std::path::Path;

/// Makes the charm that runs one hook (each dispatch starts afresh, as a
/// process would).
pub type CharmMaker = Box<dyn FnMut() -> Box<dyn Charm>>;

/// A simulated application: its charm, and the containers its units start with.
struct Simulated {
    make: CharmMaker,
    containers: BTreeMap<String, ContainerState>,
}

/// What a unit keeps between hooks besides the model: its containers and its
/// deferred events.
#[derive(Default)]
struct Local {
    containers: BTreeMap<String, ContainerState>,
    deferred: Vec<charm::Event>,
}

/// One hook that ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub unit: String,
    pub hook: String,
    /// Whether it exited 0; a failed hook's error is in `output`.
    pub ok: bool,
    pub output: String,
}

/// A model whose simulated units run their hooks in an order a seed picks.
pub struct Simulation {
    pub model: Model,
    apps: BTreeMap<String, Simulated>,
    units: BTreeMap<String, Local>,
    rng: u64,
    /// Every hook that ran, in order.
    pub history: Vec<Step>,
}

impl Simulation {
    /// An empty model; `seed` fixes every choice of which unit goes next.
    pub fn new(seed: u64) -> Simulation {
        Simulation {
            model: Model {
                name: "simulation".into(),
                uuid: "5e1c0a7d-3b2f-4c8e-9a14-7d6f0b2e8c31".into(),
                juju_version: "3.6.4".into(),
                ..Model::default()
            },
            apps: BTreeMap::new(),
            units: BTreeMap::new(),
            // splitmix64 wants a non-zero start; any seed gives one.
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            history: Vec::new(),
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Deploys `units` units of the charm whose files are in `charm_dir` as
    /// `app`, run by `make`, each unit starting with `containers` up.
    pub fn deploy(
        &mut self,
        charm_dir: &Path,
        app: &str,
        units: u32,
        containers: BTreeMap<String, ContainerState>,
        make: CharmMaker,
    ) {
        let files = CharmFiles::load(charm_dir).expect("the charm's metadata loads");
        self.add_application(app, files);
        self.apps
            .insert(app.to_string(), Simulated { make, containers });
        for _ in 0..units {
            self.add_unit(app);
        }
    }

    /// Adds an application whose units never run hooks; a test writes its
    /// relation data.
    pub fn deploy_remote(&mut self, app: &str, metadata: &str, units: u32) {
        let files = CharmFiles {
            meta: charm::metadata::parse_yaml(metadata, "metadata.yaml").expect("valid metadata"),
            ..CharmFiles::default()
        };
        self.add_application(app, files);
        for _ in 0..units {
            self.add_unit(app);
        }
    }

    fn add_application(&mut self, app: &str, files: CharmFiles) {
        let subnet = self.model.applications.len() as u8 + 1;
        self.model.add_application(
            app,
            Application {
                files: files.into(),
                subnet,
                ..Application::default()
            },
        );
    }

    /// Adds a unit to `app`: it enters every relation of its application, and
    /// the first unit leads. Answers its name.
    pub fn add_unit(&mut self, app: &str) -> String {
        let a = self
            .model
            .applications
            .get_mut(app)
            .expect("a deployed app");
        let unit = format!("{app}/{}", a.next_unit);
        a.next_unit += 1;
        let containers = self
            .apps
            .get(app)
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let address = format!("10.{}.0.{}", a.subnet, a.next_unit);
        a.units.insert(
            unit.clone(),
            Unit {
                address: address.clone(),
                containers_up: containers.keys().cloned().collect(),
                ..Unit::default()
            }
            .into(),
        );
        if a.leader.is_none() {
            a.leader = Some(unit.clone());
        }
        for r in &mut self.model.relations {
            if r.end_of(app).is_some() {
                r.enter_scope(&unit, &address);
            }
        }
        self.units.insert(
            unit.clone(),
            Local {
                containers,
                deferred: Vec::new(),
            },
        );
        unit
    }

    /// Relates `a:endpoint` with `b:endpoint`; answers the relation id.
    pub fn integrate(&mut self, a: (&str, &str), b: (&str, &str)) -> u64 {
        let end = |(app, endpoint): (&str, &str)| End {
            app: app.into(),
            endpoint: endpoint.into(),
        };
        self.model.add_relation(vec![end(a), end(b)])
    }

    /// Removes a unit as `juju remove-unit` does: it runs its leaving hooks,
    /// then leaves the model (a new leader is chosen if it led).
    pub fn remove_unit(&mut self, unit: &str) {
        self.model.unit_mut(unit).expect("a unit").life = Life::Dying;
    }

    /// Forgets a unit that ran its remove hook.
    fn reap(&mut self, unit: &str) {
        if !self.model.unit(unit).is_some_and(|u| u.seen.removed) {
            return;
        }
        self.units.remove(unit);
        for r in &mut self.model.relations {
            r.scope.remove(unit);
        }
        let app = self
            .model
            .applications
            .get_mut(charm::relation::app_of(unit))
            .expect("its application");
        app.units.remove(unit);
        if app.leader.as_deref() == Some(unit) {
            app.leader = app.units.keys().next().cloned();
        }
    }

    /// Removes a relation as `juju remove-relation` does: every unit in it
    /// runs its departed and broken hooks.
    pub fn remove_relation(&mut self, relation: u64) {
        if let Some(r) = self.model.relations.iter_mut().find(|r| r.id == relation) {
            r.dying = true;
        }
    }

    /// Hands `app`'s leadership to `unit`.
    pub fn set_leader(&mut self, app: &str, unit: &str) {
        self.model
            .applications
            .get_mut(app)
            .expect("a deployed app")
            .leader = Some(unit.to_string());
    }

    /// Writes a remote application's data into a relation, as its leader would.
    pub fn set_app_data(&mut self, relation: u64, app: &str, data: &[(&str, &str)]) {
        let r = self
            .model
            .relations
            .iter_mut()
            .find(|r| r.id == relation)
            .expect("the relation");
        let mut bag = r
            .app_bags
            .get(app)
            .map(|b| b.data.clone())
            .unwrap_or_default();
        for (k, v) in data {
            bag.insert(k.to_string(), v.to_string());
        }
        r.app_bags.entry(app.to_string()).or_default().set(bag);
    }

    /// An application secret of a remote application, granted over `relation`;
    /// answers its URI.
    pub fn add_remote_secret(
        &mut self,
        app: &str,
        relation: u64,
        content: charm::SecretContent,
    ) -> String {
        // A range of ids of its own, as a hook would get.
        self.model.reserve_secret_numbers();
        let xid = format!("c{:019}", self.model.next_secret);
        let record = SecretRecord {
            revisions: BTreeMap::from([(1, content)]),
            grants: [(relation, None)].into(),
            ..SecretRecord::new(xid.clone(), SecretOwnerRecord::App(app.to_string()))
        };
        self.model.secrets.push(record.into());
        format!("secret://{}/{xid}", self.model.uuid)
    }

    /// Makes update-status due on every unit, as Juju's timer does.
    pub fn tick(&mut self) {
        self.model.status_tick += 1;
    }

    /// A unit's container as its last hook left it.
    pub fn container(&self, unit: &str, name: &str) -> Option<&ContainerState> {
        self.units.get(unit)?.containers.get(name)
    }

    /// The simulated units with a hook due.
    pub fn due(&self) -> Vec<String> {
        self.units
            .keys()
            .filter(|u| {
                let app = charm::relation::app_of(u);
                self.apps.contains_key(app)
                    && self.model.unit(u).is_some_and(|x| x.failed.is_none())
                    && local_model::resolver::next_hook(&self.model, u).is_some()
            })
            .cloned()
            .collect()
    }

    /// Runs one due hook, of a unit the seed picks; `None` when none is due.
    pub fn step(&mut self) -> Option<Step> {
        let due = self.due();
        if due.is_empty() {
            return None;
        }
        let unit = due[(self.next_random() % due.len() as u64) as usize].clone();
        let prepared = Agent::prepare_hook(&mut self.model, &unit, Path::new("/"), &[])?;
        let local = self.units.get_mut(&unit).expect("a simulated unit");
        let mut state: State = prepared.view().clone();
        state.containers = local.containers.clone();
        state.deferred = local.deferred.clone();
        let app = charm::relation::app_of(&unit).to_string();
        let mut charm = (self.apps.get_mut(&app).expect("a simulated app").make)();
        let event = prepared.event.clone();
        let (executed, ok, output) = match juju_rules::run(charm.as_mut(), &state, event.clone()) {
            Ok(out) => {
                local.containers = out.state.containers.clone();
                local.deferred = out.state.deferred.clone();
                (
                    Executed::in_process(out.state, String::new(), 0),
                    true,
                    String::new(),
                )
            }
            Err(failure) => {
                let output = format!("{failure}");
                (
                    Executed::in_process(failure.state, output.clone(), 1),
                    false,
                    output,
                )
            }
        };
        Agent::finish(&mut self.model, prepared, &executed);
        self.reap(&unit);
        let step = Step {
            unit,
            hook: event.hook_name(),
            ok,
            output,
        };
        self.history.push(step.clone());
        Some(step)
    }

    /// Runs hooks until none is due, calling `check` after each; panics after
    /// `limit` hooks (a model that never settles) or on a failed hook, with
    /// the seed's history.
    pub fn settle(&mut self, limit: usize, mut check: impl FnMut(&Simulation)) -> usize {
        let mut ran = 0;
        while let Some(step) = self.step() {
            assert!(
                step.ok,
                "{} {} failed: {}\n{}",
                step.unit,
                step.hook,
                step.output,
                self.trace()
            );
            check(self);
            ran += 1;
            assert!(
                ran <= limit,
                "not settled after {limit} hooks\n{}",
                self.trace()
            );
        }
        ran
    }

    /// The hooks run so far, one per line.
    pub fn trace(&self) -> String {
        self.history
            .iter()
            .map(|s| format!("{} {}", s.unit, s.hook))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
