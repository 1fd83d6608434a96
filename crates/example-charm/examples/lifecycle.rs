//! Walks the example charm through a unit's life on the in-memory model and prints
//! each hook as it runs and the unit's status the way `juju status` shows it.
//!
//! Run: `cargo run -p example-charm --example lifecycle`.

use charm::backend::JsonMap;
use charm::Event;
use charm_testing::{event, run, run_action, CharmState, ContainerState, RelationState, State};
use example_charm::{ExampleCharm, CONTAINER, DB};

fn main() -> anyhow::Result<()> {
    let charm_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charm");
    let mut state = State::from_charm_dir(charm_dir, "example/0")?
        .leader(true)
        .with_container(CONTAINER, ContainerState::unreachable());
    let db = RelationState::new(DB, 4, "client")
        .remote_app_data(&[("database", "client_db")])
        .remote_unit("client/0", &[]);
    let db_changed = event::relation_changed(&db, None);

    println!(
        "{:<26} {:<12} {:<34} {:>8} {:>6}",
        "Hook", "Workload", "Message", "Deferred", "Tools"
    );
    let steps: Vec<(&str, Event)> = vec![
        ("install", Event::Install),
        ("leader-elected", Event::LeaderElected),
        ("config-changed", Event::ConfigChanged),
        ("start", Event::Start),
        ("(container comes up)", event::pebble_ready(CONTAINER)),
        ("(client relates)", db_changed),
        ("update-status", Event::UpdateStatus),
    ];
    for (label, event) in steps {
        match label {
            "(container comes up)" => {
                state
                    .containers
                    .insert(CONTAINER.into(), ContainerState::ready());
            }
            "(client relates)" => state.relations.push(db.clone()),
            _ => {}
        }
        let out =
            run(&mut ExampleCharm, &state, event.clone()).map_err(|f| anyhow::anyhow!("{f}"))?;
        state = out.state;
        println!(
            "{:<26} {:<12} {:<34} {:>8} {:>6}",
            event.hook_name(),
            state.unit_status.name(),
            state.unit_status.message(),
            state.deferred.len(),
            out.calls.count()
        );
    }
    let action = run_action(
        &mut ExampleCharm,
        &state,
        "get-admin-password",
        JsonMap::new(),
    )
    .map_err(|f| anyhow::anyhow!("{f}"))?;
    let shown = action.action.results.get("password").map_or(0, String::len);
    println!("\naction get-admin-password: ok ({shown}-character password returned)");

    println!(
        "\n{:<12} {:<10} {:<7} {:<12} {:<9} Message",
        "Unit", "Workload", "Agent", "Address", "Ports"
    );
    let ports: Vec<String> = state.opened_ports.iter().map(|p| p.to_string()).collect();
    println!(
        "{:<12} {:<10} {:<7} {:<12} {:<9} {}",
        format!("{}*", state.unit),
        state.unit_status.name(),
        "idle",
        state.address,
        ports.join(","),
        state.unit_status.message()
    );
    let client = state.relation(4).expect("related");
    println!(
        "\nclient relation databag: {}",
        client
            .local_app_data
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
