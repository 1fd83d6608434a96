//! Which hook runs next, and what happens once it has run. Due hooks are
//! handed out in rounds: each unit at most once a round, in unit-name order
//! or, with a seed, in an order the seed fixes per round (the generator's
//! state is kept in the model, so a restarted controller carries on the same
//! sequence). A unit runs one hook, action or command at a time ([`busy`]);
//! different units may run theirs at once. A hook is prepared with the
//! controller ([`Due`]), runs without it ([`Due::execute`]), and comes back to
//! [`Controller::finish`], which commits it or leaves its unit in error until
//! [`Controller::resolve`]. Before its process runs, the hook is saved as the
//! unit's `hook_started`, with the charm's state kept aside; the save that
//! commits it clears that. A hook a crash interrupted is the unit's next
//! hook, as Juju re-runs one ([`Controller::interrupted`]).
//!
//! [`busy`]: Controller::busy

use super::{io, status, Controller, ControllerError};
use crate::agent::{Agent, Executed, HookRun, Prepared};
use crate::store;
use charm::Event;
use std::sync::Arc;

/// A hook due on a unit, taken out of the controller to run without it
/// ([`Due::execute`]) and handed back to [`Controller::finish`].
pub struct Due {
    pub unit: String,
    work: DueWork,
    agent: Arc<Agent>,
}

enum DueWork {
    Run(Box<Prepared>),
    /// A failure injected by [`Controller::fail_next_hook`].
    Fail(Event),
}

/// What running a [`Due`] hook gave.
pub struct Ran(Option<std::io::Result<Executed>>);

impl DueWork {
    fn event(&self) -> &Event {
        match self {
            DueWork::Run(p) => &p.event,
            DueWork::Fail(e) => e,
        }
    }
}

impl Due {
    /// The hook's name.
    pub fn hook_name(&self) -> String {
        self.work.event().hook_name()
    }

    /// Runs the hook's process (nothing for an injected failure).
    pub fn execute(&self) -> Ran {
        match &self.work {
            DueWork::Run(p) => Ran(Some(self.agent.execute(p))),
            DueWork::Fail(_) => Ran(None),
        }
    }
}

impl Controller {
    /// Brings the model up to what the controller can see in process: the
    /// clock, and the notices the containers' Pebble servers hold.
    fn look(&mut self) {
        self.sync_clock();
        self.sync_notices();
    }

    /// Marks update-status due on every unit.
    pub fn tick(&mut self) {
        self.model.status_tick += 1;
        let _ = self.save();
    }

    /// Fixes the order in which units' due hooks run (a different, repeatable
    /// order each round, kept in the model); `None` goes back to unit-name order.
    pub fn set_seed(&mut self, seed: Option<u64>) -> Result<(), ControllerError> {
        // xorshift never leaves zero.
        self.model.seed = seed.map(|s| if s == 0 { 0x9E37_79B9_7F4A_7C15 } else { s });
        self.round.clear();
        self.save()
    }

    /// The next hook to run, ready to run; `None` when every unit is up to
    /// date or busy. Units take turns in rounds: each unit in the round, one
    /// hook each, in name order or, with a seed, in the seed's order for that
    /// round. A unit already running something ([`Controller::busy`]) waits:
    /// several units may run hooks at once, a unit one thing at a time.
    pub fn next_due(&mut self) -> Option<Due> {
        self.look();
        // Which unit and hook, looked for with one index of the model, so
        // that a pass over every unit costs the model once, not once a unit.
        let (unit, event) = {
            let index = crate::resolver::Index::new(&self.model);
            let mut found = None;
            while let Some(unit) = self.round.pop_front() {
                if let Some(event) = self.event_due(&index, &unit) {
                    found = Some((unit, event));
                    break;
                }
            }
            if found.is_none() {
                let (order, seed) = self.round_order();
                for (i, unit) in order.iter().enumerate() {
                    if let Some(event) = self.event_due(&index, unit) {
                        self.model.seed = seed;
                        self.round = order[i + 1..].iter().cloned().collect();
                        found = Some((unit.clone(), event));
                        break;
                    }
                }
            }
            found?
        };
        self.start_due(&unit, event)
    }

    /// The units in the order a new round runs them, and the generator's state
    /// after shuffling them (kept only if the round runs something).
    fn round_order(&self) -> (Vec<String>, Option<u64>) {
        let mut units: Vec<String> = self.units.keys().cloned().collect();
        let mut seed = self.model.seed;
        if let Some(seed) = &mut seed {
            // xorshift64*, then Fisher-Yates: repeatable for a given seed.
            for i in (1..units.len()).rev() {
                *seed ^= *seed >> 12;
                *seed ^= *seed << 25;
                *seed ^= *seed >> 27;
                let r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
                units.swap(i, (r % (i as u64 + 1)) as usize);
            }
        }
        (units, seed)
    }

    /// Whether the unit is running a hook, action or command.
    pub fn busy(&self, unit: &str) -> bool {
        self.running.contains_key(unit)
    }

    /// How many units are running a hook, action or command.
    pub fn busy_units(&self) -> usize {
        self.running.len()
    }

    /// The hook a crash interrupted on the unit, if it still makes sense: the
    /// unit is neither gone nor in error, and the relation, secret or
    /// container it is about is still there.
    pub fn interrupted(&self, unit: &str) -> Option<Event> {
        let u = self.model.unit(unit)?;
        let event = u.hook_started.clone()?;
        if u.failed.is_some() || u.seen.removed {
            return None;
        }
        let secret =
            |s: &charm::SecretEvent| self.model.secrets.iter().any(|r| r.xid == s.id.xid());
        let current = match &event {
            Event::SecretChanged(s)
            | Event::SecretRemove(s)
            | Event::SecretRotate(s)
            | Event::SecretExpired(s) => secret(s),
            Event::PebbleReady { container } | Event::PebbleCustomNotice { container, .. } => {
                u.containers_up.contains(container)
            }
            e => e
                .relation()
                .is_none_or(|r| self.model.relation(r.relation.id).is_some()),
        };
        current.then_some(event)
    }

    /// The unit's due hook, ready to run: the one a crash interrupted, else
    /// the resolver's. It is saved as started, the charm's state kept aside.
    /// The hook due on `unit`, if it is not busy: the one a controller's
    /// death cut short, else the resolver's.
    fn event_due(&self, index: &crate::resolver::Index<'_>, unit: &str) -> Option<Event> {
        if self.busy(unit) {
            return None;
        }
        self.interrupted(unit)
            .or_else(|| crate::resolver::next_hook_in(&self.model, index, unit))
    }

    /// Starts `event` on `unit`: the hook to run, or the failure a test asked
    /// for.
    fn start_due(&mut self, unit: &str, event: Event) -> Option<Due> {
        let inject = self
            .model
            .unit_mut(unit)
            .is_some_and(|u| std::mem::take(&mut u.fail_next_hook));
        let work = if inject {
            DueWork::Fail(event)
        } else {
            if event == Event::UpgradeCharm {
                if let Err(e) = self.upgrade_unit_charm(unit) {
                    eprintln!("ERROR upgrading {unit}'s charm: {e}");
                }
            }
            let (charm_dir, env) = self.unit_env(unit)?;
            DueWork::Run(Box::new(Agent::prepare_event(
                &mut self.model,
                unit,
                event,
                &charm_dir,
                &env,
            )?))
        };
        let due = Due {
            unit: unit.to_string(),
            work,
            agent: self.agent.clone(),
        };
        self.set_running(unit, Some(format!("running {} hook", due.hook_name())));
        if let DueWork::Run(p) = &due.work {
            self.record_started(unit, &p.event);
        }
        Some(due)
    }

    /// Records that the hook starts on the unit ([`store::save_started`]),
    /// once the charm's state is kept aside for a run again
    /// ([`Controller::keep_charm_state`]).
    fn record_started(&mut self, unit: &str, event: &Event) {
        if let Err(e) = self.keep_charm_state(unit) {
            eprintln!("ERROR keeping {unit}'s charm state: {e}");
        }
        if let Some(u) = self.model.unit_mut(unit) {
            u.hook_started = Some(event.clone());
        }
        if let Err(e) = store::save_started(&self.root, &self.model, &mut self.serialised) {
            eprintln!("ERROR {e}");
        }
        crate::crash::point("hook-started", &format!("{unit} {}", event.hook_name()));
    }

    /// Commits a hook that ran (or records its failure), logs it, forgets a
    /// unit that ran `remove`, and saves the model.
    pub fn finish(&mut self, due: Due, ran: Ran) -> Result<HookRun, ControllerError> {
        let unit = due.unit;
        let hook = format!("{unit} {}", due.work.event().hook_name());
        crate::crash::point("hook-exited", &hook);
        self.set_running(&unit, None);
        if let Some(u) = self.model.unit_mut(&unit) {
            u.hook_started = None;
        }
        let run = match (due.work, ran.0) {
            (DueWork::Fail(event), _) => {
                if let Some(u) = self.model.unit_mut(&unit) {
                    u.failed = Some(event.hook_name());
                    let error =
                        charm::Status::Error(format!("hook failed: {:?}", event.hook_name()));
                    u.status_before_error = Some(std::mem::replace(&mut u.status, error));
                }
                let output = "failure injected by the controller\n".to_string();
                HookRun {
                    event,
                    ok: false,
                    stderr: output.clone(),
                    output,
                    code: 1,
                    logs: Vec::new(),
                    cost: Default::default(),
                }
            }
            (DueWork::Run(prepared), ran) => {
                let executed = ran
                    .unwrap_or_else(|| Err(std::io::Error::other("the hook was not run")))
                    .map_err(io(format!("running a hook on {unit}")))?;
                let run = Agent::finish(&mut self.model, *prepared, &executed);
                crate::agent::drop_aside(executed);
                run
            }
        };
        self.attach_storage(&unit)?;
        self.snapshot_plans(&unit);
        let mut log = status::log_lines(&unit, &run, self.model.now);
        if !run.ok && self.model.unit(&unit).is_some_and(|u| u.forced) {
            self.skip_failed(&unit)?;
        }
        if self.model.unit(&unit).is_some_and(|u| u.failed.is_some()) {
            log.push(status::awaiting_resolution(
                &unit,
                &run.event,
                self.model.now,
            ));
        }
        store::append_log(&self.root, &log);
        self.reap(&unit);
        self.save()?;
        crate::crash::point("hook-committed", &hook);
        Ok(run)
    }

    /// Runs every unit's due hooks, in rounds ([`Controller::next_due`]), until
    /// none is due (a failed hook blocks its unit); returns what ran.
    pub fn settle(&mut self) -> Result<Vec<(String, HookRun)>, ControllerError> {
        let mut ran = Vec::new();
        while let Some(due) = self.next_due() {
            let unit = due.unit.clone();
            let executed = due.execute();
            ran.push((unit, self.finish(due, executed)?));
        }
        Ok(ran)
    }

    /// Units with a hook due, and units in error with the hook that failed.
    /// It looks first as [`Controller::next_due`] does, so a notice a
    /// workload has just recorded, or a secret the clock has made due, counts.
    pub fn pending(&mut self) -> (Vec<String>, Vec<(String, String)>) {
        self.look();
        let mut due = Vec::new();
        let mut failed = Vec::new();
        let index = crate::resolver::Index::new(&self.model);
        for app in self.model.applications.values() {
            for (name, u) in &app.units {
                if let Some(h) = &u.failed {
                    failed.push((name.clone(), h.clone()));
                } else if self.interrupted(name).is_some()
                    || crate::resolver::next_hook_in(&self.model, &index, name).is_some()
                {
                    due.push(name.clone());
                }
            }
        }
        for unit in self.running.keys() {
            if !due.contains(unit) {
                due.push(unit.clone());
            }
        }
        (due, failed)
    }

    /// `juju resolve <unit>`: the failed hook runs again.
    pub fn resolve(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.clear_error(unit)?;
        self.save()
    }

    /// `juju resolve --no-retry <unit>`: the failed hook counts as done.
    pub fn resolve_no_retry(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.skip_failed(unit)?;
        self.save()
    }

    /// Clears the unit's error and counts the hook that failed as done.
    pub(super) fn skip_failed(&mut self, unit: &str) -> Result<(), ControllerError> {
        self.clear_error(unit)?;
        if let Some(event) = crate::resolver::next_hook(&self.model, unit) {
            crate::resolver::done(&mut self.model, unit, &event);
        }
        Ok(())
    }

    /// Clears a unit's error, giving back the status the failure replaced.
    fn clear_error(&mut self, unit: &str) -> Result<String, ControllerError> {
        let u = self.unit_mut(unit)?;
        let hook = u
            .failed
            .take()
            .ok_or_else(|| ControllerError::NotInError(unit.into()))?;
        if let Some(s) = u.status_before_error.take() {
            u.status = s;
        }
        Ok(hook)
    }
}
