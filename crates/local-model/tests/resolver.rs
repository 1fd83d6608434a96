//! Hook order as Juju's uniter produces it: startup, relation created, joined,
//! changed, departed and broken, the departing unit, no relation-changed to the
//! writer, many changes coalesced into one hook, and Pebble custom notices.

#![allow(clippy::unwrap_used)]

use charm::Databag;
use local_model::model::{Application, End, Life, Model, NoticeRecord, RelationRecord, Unit};
use local_model::resolver::{done, next_hook};
use std::collections::BTreeSet;

fn deploy(model: &mut Model, app: &str, units: u32, peer: Option<&str>) {
    let mut a = Application::default();
    for n in 0..units {
        let name = format!("{app}/{n}");
        a.units.insert(
            name,
            Unit {
                address: format!("127.0.1.{n}"),
                ..Unit::default()
            }
            .into(),
        );
    }
    a.leader = Some(format!("{app}/0"));
    a.next_unit = units;
    model.applications.insert(app.into(), a.into());
    if let Some(endpoint) = peer {
        let scope: BTreeSet<String> = (0..units).map(|n| format!("{app}/{n}")).collect();
        add_relation(
            model,
            vec![End {
                app: app.into(),
                endpoint: endpoint.into(),
            }],
            scope,
        );
    }
}

fn add_relation(model: &mut Model, ends: Vec<End>, scope: BTreeSet<String>) -> u64 {
    model.next_relation_id += 1;
    let id = model.next_relation_id;
    let record = RelationRecord {
        id,
        ends,
        scope,
        ..RelationRecord::default()
    };
    model.relations.push(record.into());
    id
}

fn integrate(model: &mut Model, a: (&str, &str), b: (&str, &str)) -> u64 {
    let scope = model.applications[a.0]
        .units
        .keys()
        .chain(model.applications[b.0].units.keys())
        .cloned()
        .collect();
    add_relation(
        model,
        vec![
            End {
                app: a.0.into(),
                endpoint: a.1.into(),
            },
            End {
                app: b.0.into(),
                endpoint: b.1.into(),
            },
        ],
        scope,
    )
}

/// Runs a unit's hooks (changing nothing) until it is up to date; returns them.
fn settle(model: &mut Model, unit: &str) -> Vec<String> {
    let mut hooks = Vec::new();
    while let Some(event) = next_hook(model, unit) {
        let mut name = event.hook_name();
        if let Some(r) = event.relation() {
            if let Some(u) = &r.remote_unit {
                name.push_str(&format!(" {u}"));
            }
            if let Some(d) = &r.departing_unit {
                name.push_str(&format!(" departing={d}"));
            }
        }
        hooks.push(name);
        done(model, unit, &event);
        assert!(hooks.len() < 100, "no end: {hooks:?}");
    }
    hooks
}

fn write_unit_bag(model: &mut Model, rel: u64, unit: &str, key: &str, value: &str) {
    let r = model.relations.iter_mut().find(|r| r.id == rel).unwrap();
    let bag = r.unit_bags.entry(unit.into()).or_default();
    let mut data: Databag = bag.data.clone();
    data.insert(key.into(), value.into());
    bag.set(data);
}

fn write_app_bag(model: &mut Model, rel: u64, app: &str, key: &str, value: &str) {
    let r = model.relations.iter_mut().find(|r| r.id == rel).unwrap();
    let bag = r.app_bags.entry(app.into()).or_default();
    let mut data: Databag = bag.data.clone();
    data.insert(key.into(), value.into());
    bag.set(data);
}

#[test]
fn startup_order_for_the_leader_and_a_follower() {
    let mut m = Model::default();
    deploy(&mut m, "pgb", 2, Some("pgb-peers"));
    m.unit_mut("pgb/0")
        .unwrap()
        .containers_up
        .insert("pgbouncer".into());
    assert_eq!(
        settle(&mut m, "pgb/0"),
        [
            "install",
            "pgb-peers-relation-created",
            "leader-elected",
            "pgbouncer-pebble-ready",
            "config-changed",
            "start",
            "pgb-peers-relation-joined pgb/1",
            "pgb-peers-relation-changed pgb/1",
        ]
    );
    assert_eq!(
        settle(&mut m, "pgb/1"),
        [
            "install",
            "pgb-peers-relation-created",
            "leader-settings-changed",
            "config-changed",
            "start",
            "pgb-peers-relation-joined pgb/0",
            "pgb-peers-relation-changed pgb/0",
        ]
    );
    m.status_tick += 1;
    assert_eq!(settle(&mut m, "pgb/0"), ["update-status"]);
    assert!(settle(&mut m, "pgb/0").is_empty());
}

#[test]
fn a_new_relation_creates_then_joins_and_changes_each_remote_unit_in_order() {
    let mut m = Model::default();
    deploy(&mut m, "client", 1, None);
    deploy(&mut m, "pgb", 2, None);
    settle(&mut m, "client/0");
    let rel = integrate(&mut m, ("client", "database"), ("pgb", "database"));
    assert_eq!(
        settle(&mut m, "client/0"),
        [
            "database-relation-created",
            "database-relation-joined pgb/0",
            "database-relation-changed pgb/0",
            "database-relation-joined pgb/1",
            "database-relation-changed pgb/1",
        ]
    );
    // Two writes by pgb/0 before client/0 runs: one hook, showing the final data.
    write_unit_bag(&mut m, rel, "pgb/0", "a", "1");
    write_unit_bag(&mut m, rel, "pgb/0", "a", "2");
    write_app_bag(&mut m, rel, "pgb", "endpoints", "h:1");
    write_app_bag(&mut m, rel, "pgb", "endpoints", "h:2");
    assert_eq!(
        settle(&mut m, "client/0"),
        [
            "database-relation-changed",
            "database-relation-changed pgb/0"
        ]
    );
    // Rewriting the same content is no change.
    write_unit_bag(&mut m, rel, "pgb/0", "a", "2");
    assert!(settle(&mut m, "client/0").is_empty());
    // The writer hears nothing of its own writes.
    settle(&mut m, "pgb/0");
    write_unit_bag(&mut m, rel, "pgb/0", "b", "3");
    assert!(settle(&mut m, "pgb/0").is_empty());
}

#[test]
fn in_a_peer_relation_the_leader_does_not_hear_its_own_app_bag() {
    let mut m = Model::default();
    deploy(&mut m, "pgb", 2, Some("pgb-peers"));
    settle(&mut m, "pgb/0");
    settle(&mut m, "pgb/1");
    write_app_bag(&mut m, 1, "pgb", "cfg_file", "x");
    assert!(settle(&mut m, "pgb/0").is_empty());
    assert_eq!(settle(&mut m, "pgb/1"), ["pgb-peers-relation-changed"]);
}

#[test]
fn removing_a_relation_departs_each_member_then_breaks() {
    let mut m = Model::default();
    deploy(&mut m, "client", 1, None);
    deploy(&mut m, "pgb", 2, None);
    let rel = integrate(&mut m, ("client", "database"), ("pgb", "database"));
    settle(&mut m, "client/0");
    m.relations.iter_mut().find(|r| r.id == rel).unwrap().dying = true;
    assert_eq!(
        settle(&mut m, "client/0"),
        [
            "database-relation-departed pgb/0 departing=pgb/0",
            "database-relation-departed pgb/1 departing=pgb/1",
            "database-relation-broken",
        ]
    );
    // Once its broken hook has run, the relation is gone from the unit's
    // view, while the other side still has its own hooks to run.
    let listed = |m: &Model, unit: &str| {
        local_model::view::view(m, unit)
            .unwrap()
            .relations
            .iter()
            .any(|r| r.id == rel)
    };
    assert!(!listed(&m, "client/0"));
    assert!(listed(&m, "pgb/0"));
}

#[test]
fn a_dying_unit_departs_as_itself_breaks_stops_and_is_removed() {
    let mut m = Model::default();
    deploy(&mut m, "client", 1, None);
    deploy(&mut m, "pgb", 2, Some("pgb-peers"));
    integrate(&mut m, ("client", "database"), ("pgb", "database"));
    for u in ["client/0", "pgb/0", "pgb/1"] {
        settle(&mut m, u);
    }
    m.unit_mut("pgb/1").unwrap().life = Life::Dying;
    assert_eq!(
        settle(&mut m, "pgb/1"),
        [
            "pgb-peers-relation-departed pgb/0 departing=pgb/1",
            "database-relation-departed client/0 departing=pgb/1",
            "database-relation-broken",
            "stop",
            "remove",
        ]
    );
    // The others see it leave when it is out of scope.
    for r in &mut m.relations {
        r.scope.remove("pgb/1");
    }
    assert_eq!(
        settle(&mut m, "pgb/0"),
        ["pgb-peers-relation-departed pgb/1 departing=pgb/1"]
    );
    assert_eq!(
        settle(&mut m, "client/0"),
        ["database-relation-departed pgb/1 departing=pgb/1"]
    );
}

#[test]
fn a_new_leader_gets_leader_elected_and_a_failed_hook_blocks_the_unit() {
    let mut m = Model::default();
    deploy(&mut m, "pgb", 2, Some("pgb-peers"));
    settle(&mut m, "pgb/1");
    m.applications.get_mut("pgb").unwrap().leader = Some("pgb/1".into());
    assert_eq!(settle(&mut m, "pgb/1"), ["leader-elected"]);
    m.unit_mut("pgb/0").unwrap().failed = Some("install".into());
    assert!(next_hook(&m, "pgb/0").is_none());
}

#[test]
fn config_and_address_changes_run_config_changed_once() {
    let mut m = Model::default();
    deploy(&mut m, "pgb", 1, None);
    settle(&mut m, "pgb/0");
    let app = m.applications.get_mut("pgb").unwrap();
    app.config.insert("listen_port".into(), 7000.into());
    app.config.insert("pool_mode".into(), "transaction".into());
    assert_eq!(settle(&mut m, "pgb/0"), ["config-changed"]);
    m.unit_mut("pgb/0").unwrap().address = "127.0.1.9".into();
    assert_eq!(settle(&mut m, "pgb/0"), ["config-changed"]);
}

/// Sets what a container's Pebble holds: (id, key, last repeat) per notice.
fn set_notices(model: &mut Model, unit: &str, container: &str, notices: &[(&str, &str, &str)]) {
    let records = notices
        .iter()
        .map(|(id, key, at)| NoticeRecord {
            id: id.to_string(),
            key: key.to_string(),
            last_repeated: format!("2024-01-01T00:00:{at}.000000000Z"),
        })
        .collect();
    let u = model.unit_mut(unit).unwrap();
    u.notices.insert(container.into(), records);
}

/// Each hook with the notice it announces (`JUJU_NOTICE_ID`, `JUJU_NOTICE_KEY`).
fn notice_hooks(model: &mut Model, unit: &str) -> Vec<String> {
    let mut hooks = Vec::new();
    while let Some(event) = next_hook(model, unit) {
        let env: std::collections::BTreeMap<_, _> = event.env().into_iter().collect();
        hooks.push(match env.get("JUJU_NOTICE_ID") {
            Some(id) => format!(
                "{} {} {id} {} {}",
                event.hook_name(),
                env["JUJU_WORKLOAD_NAME"],
                env["JUJU_NOTICE_TYPE"],
                env["JUJU_NOTICE_KEY"]
            ),
            None => event.hook_name(),
        });
        done(model, unit, &event);
        assert!(hooks.len() < 100, "no end: {hooks:?}");
    }
    hooks
}

#[test]
fn a_custom_notice_fires_once_per_repeat_oldest_first_after_pebble_ready() {
    let mut m = Model::default();
    deploy(&mut m, "pg", 1, None);
    let u = m.unit_mut("pg/0").unwrap();
    u.containers_up.insert("postgresql".into());
    u.containers_up.insert("backup".into());
    set_notices(
        &mut m,
        "pg/0",
        "postgresql",
        &[("2", "example.com/b", "05")],
    );
    set_notices(&mut m, "pg/0", "backup", &[("1", "example.com/a", "03")]);
    assert_eq!(
        notice_hooks(&mut m, "pg/0"),
        [
            "install",
            "leader-elected",
            "backup-pebble-ready",
            "postgresql-pebble-ready",
            "backup-pebble-custom-notice backup 1 custom example.com/a",
            "postgresql-pebble-custom-notice postgresql 2 custom example.com/b",
            "config-changed",
            "start",
        ]
    );
    // Occurring again without repeating changes nothing; repeating fires once,
    // however many times it occurred; a new key fires after it.
    set_notices(
        &mut m,
        "pg/0",
        "postgresql",
        &[("2", "example.com/b", "05")],
    );
    assert!(notice_hooks(&mut m, "pg/0").is_empty());
    set_notices(
        &mut m,
        "pg/0",
        "postgresql",
        &[("2", "example.com/b", "09"), ("3", "example.com/c", "10")],
    );
    assert_eq!(
        notice_hooks(&mut m, "pg/0"),
        [
            "postgresql-pebble-custom-notice postgresql 2 custom example.com/b",
            "postgresql-pebble-custom-notice postgresql 3 custom example.com/c",
        ]
    );
    // A restarted Pebble numbers its notices from 1 again: still new.
    set_notices(
        &mut m,
        "pg/0",
        "postgresql",
        &[("1", "example.com/b", "30")],
    );
    assert_eq!(
        notice_hooks(&mut m, "pg/0"),
        ["postgresql-pebble-custom-notice postgresql 1 custom example.com/b"]
    );
    assert_eq!(m.unit("pg/0").unwrap().seen.notices["postgresql"].len(), 1);
}

#[test]
fn older_model_files_load_without_notices() {
    let mut m = Model::default();
    deploy(&mut m, "pg", 1, None);
    let mut json = serde_json::to_value(&m).unwrap();
    let unit = &mut json["applications"]["pg"]["units"]["pg/0"];
    unit.as_object_mut().unwrap().remove("notices");
    unit["seen"].as_object_mut().unwrap().remove("notices");
    let back: Model = serde_json::from_value(json).unwrap();
    assert!(back.unit("pg/0").unwrap().notices.is_empty());
}

#[test]
fn a_refresh_upgrades_only_the_units_at_or_above_the_partition() {
    let mut m = Model::default();
    deploy(&mut m, "pgb", 3, None);
    for n in 0..3 {
        settle(&mut m, &format!("pgb/{n}"));
    }
    let app = m.applications.get_mut("pgb").unwrap();
    app.charm_revision = 1;
    app.partition = 2;
    assert_eq!(next_hook(&m, "pgb/2"), Some(charm::Event::UpgradeCharm));
    assert_eq!(next_hook(&m, "pgb/1"), None, "held back");
    assert_eq!(next_hook(&m, "pgb/0"), None, "held back");
    m.applications.get_mut("pgb").unwrap().partition = 0;
    assert_eq!(next_hook(&m, "pgb/0"), Some(charm::Event::UpgradeCharm));
}
