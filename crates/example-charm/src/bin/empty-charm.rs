//! A charm that handles every event by doing nothing: the floor of what a hook
//! costs, for benchmarks.

use charm::{Charm, Event, Handled, Hook};

struct Empty;

impl Charm for Empty {
    fn handle(&mut self, _: &mut Hook<'_>, _: &Event) -> anyhow::Result<Handled> {
        Ok(Handled::Done)
    }
}

fn main() -> std::process::ExitCode {
    charm::dispatch::main(Empty)
}
