//! The `plugin_*_enable` options' extensions on a real PostgreSQL 15
//! ([`TestCluster`]): the extensions step's pass (`flows::extensions::reconcile`)
//! run through the charm's adapter, with `pg_extension` read back in a client
//! database, in `template1` and in a database made after.

#![allow(clippy::unwrap_used)]

use postgres::Client;
use postgres_admin::testing::TestCluster;
use postgres_admin::{Admin, DatabaseName};
use postgresql_k8s::config::table::{plugin_extensions, plugin_name, PLUGINS};
use postgresql_k8s::config::{CharmConfig, Resources};
use postgresql_k8s::flows::extensions::{reconcile, TEMPLATE};
use postgresql_k8s::workload::Layout;
use serde_json::{json, Map};
use std::collections::BTreeSet;
use std::path::Path;

/// The plugin options whose extensions Debian bookworm does not package for
/// PostgreSQL 15, or whose packages `scripts/install-deps` leaves out (the
/// README says why): they block, naming the extension.
const NOT_PACKAGED: &[&str] = &[
    "plugin_address_standardizer_data_us_enable",
    "plugin_address_standardizer_enable",
    "plugin_debversion_enable",
    "plugin_postgis_enable",
    "plugin_postgis_raster_enable",
    "plugin_postgis_tiger_geocoder_enable",
    "plugin_postgis_topology_enable",
    "plugin_rdkit_enable",
    "plugin_timescaledb_enable",
    "plugin_vector_enable",
];

fn config(on: bool) -> CharmConfig {
    let mut raw = Map::new();
    for p in PLUGINS {
        raw.insert(p.to_string(), json!(on));
    }
    let machine = Resources {
        cpu_cores: 2,
        memory_bytes: 4 << 30,
    };
    CharmConfig::from_raw(&raw, &machine).unwrap()
}

/// The extensions of the options given.
fn extensions_of(options: &[&'static str]) -> BTreeSet<&'static str> {
    options
        .iter()
        .flat_map(|o| plugin_extensions(plugin_name(o)))
        .collect()
}

fn installed(cluster: &TestCluster, db: &str) -> BTreeSet<String> {
    let mut client = cluster.connect_info(db).connect().unwrap();
    client
        .query("SELECT extname::text FROM pg_extension", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn sql(cluster: &TestCluster, db: &str) -> Client {
    cluster.connect_info(db).connect().unwrap()
}

fn names(pairs: &[(String, &'static str)], db: &str) -> BTreeSet<&'static str> {
    pairs
        .iter()
        .filter(|(d, _)| d == db)
        .map(|(_, e)| *e)
        .collect()
}

#[test]
fn every_plugin_is_created_and_dropped_or_named_missing() {
    // The server preloads what the options ask for and the image has, as
    // the charm's patroni.yml does.
    let on = config(true);
    let lib_dir = Layout::default().lib_dir();
    let present: Vec<&str> = on
        .preload_libraries()
        .into_iter()
        .filter(|l| Path::new(&format!("{lib_dir}/{l}.so")).exists())
        .collect();
    assert_eq!(
        present,
        ["pgaudit"],
        "the image has pgaudit, not timescaledb"
    );
    let mut parameters = Map::new();
    postgresql_k8s::config::set_preload(&mut parameters, &present);
    let preload = parameters["shared_preload_libraries"].as_str().unwrap();
    let cluster = TestCluster::start_with(&[("shared_preload_libraries", preload)], &[]).unwrap();
    sql(&cluster, "postgres")
        .batch_execute("CREATE DATABASE app")
        .unwrap();
    let databases = vec!["app".to_string(), TEMPLATE.to_string()];
    let mut pg = Admin::connect(&cluster.connect_info("postgres")).unwrap();

    // Every plugin on: each packaged one's extensions in the client database
    // and template1; the others named in the blocked message.
    let outcome = reconcile(&mut pg, &on, &databases).unwrap();
    let packaged: Vec<&'static str> = PLUGINS
        .iter()
        .copied()
        .filter(|p| !NOT_PACKAGED.contains(p))
        .collect();
    let want = extensions_of(&packaged);
    assert_eq!(want.len(), 46);
    let missing: BTreeSet<&str> = outcome.missing.iter().map(|(_, e)| *e).collect();
    assert_eq!(missing, extensions_of(NOT_PACKAGED));
    assert!(outcome.awaiting_restart.is_empty());
    assert!(outcome.kept.is_empty() && outcome.dropped.is_empty());
    let blocked = outcome.blocked().unwrap();
    for option in NOT_PACKAGED {
        assert!(blocked.contains(option), "{blocked}");
    }
    for db in [&databases[0], &databases[1]] {
        assert_eq!(names(&outcome.created, db), want, "{db}");
        let there = installed(&cluster, db);
        for e in &want {
            assert!(there.contains(*e), "{e} in {db}");
        }
    }
    // A database made now (by the session that holds template1) has them.
    pg.ensure_database(&DatabaseName::parse("later").unwrap())
        .unwrap();
    let later = installed(&cluster, "later");
    assert!(want.iter().all(|e| later.contains(*e)));
    // Idempotent: a second pass creates nothing.
    let again = reconcile(&mut pg, &on, &databases).unwrap();
    assert!(again.created.is_empty() && again.dropped.is_empty());

    // A table uses citext: turning every plugin off drops everything but
    // citext, which stays everywhere, named with its dependant.
    sql(&cluster, "app")
        .batch_execute("CREATE TABLE people (name citext PRIMARY KEY)")
        .unwrap();
    let off = config(false);
    let outcome = reconcile(&mut pg, &off, &databases).unwrap();
    assert!(outcome.created.is_empty() && outcome.missing.is_empty());
    assert_eq!(outcome.kept.len(), 1, "{:?}", outcome.kept);
    let kept = &outcome.kept[0];
    assert_eq!(
        (kept.option, kept.extension),
        ("plugin_citext_enable", "citext")
    );
    assert_eq!(kept.dependants[0].0, "app");
    assert!(
        kept.dependants[0]
            .1
            .iter()
            .any(|d| d.contains("table people")),
        "{:?}",
        kept.dependants
    );
    let blocked = outcome.blocked().unwrap();
    assert!(
        blocked.contains("cannot drop extension citext")
            && blocked.contains("table people")
            && blocked.contains("set plugin_citext_enable=true"),
        "{blocked}"
    );
    for db in [&databases[0], &databases[1]] {
        let there = installed(&cluster, db);
        assert_eq!(
            there,
            BTreeSet::from(["citext".to_string(), "plpgsql".to_string()]),
            "{db}"
        );
    }
    let mut people = sql(&cluster, "app");
    people
        .batch_execute("INSERT INTO people VALUES ('Ada')")
        .unwrap();
    let found: i64 = people
        .query_one("SELECT count(*) FROM people WHERE name = 'ADA'", &[])
        .unwrap()
        .get(0);
    assert_eq!(found, 1, "citext still compares without case");

    // The table gone, the next pass drops citext too.
    people.batch_execute("DROP TABLE people").unwrap();
    let outcome = reconcile(&mut pg, &off, &databases).unwrap();
    assert!(outcome.complete() && outcome.blocked().is_none());
    for db in [&databases[0], &databases[1]] {
        assert_eq!(
            installed(&cluster, db),
            BTreeSet::from(["plpgsql".to_string()])
        );
    }
}

#[test]
fn a_plugin_whose_library_is_not_loaded_waits_for_the_restart() {
    let cluster = TestCluster::start().unwrap();
    let mut pg = Admin::connect(&cluster.connect_info("postgres")).unwrap();
    assert_eq!(pg.preloaded_libraries().unwrap(), Vec::<String>::new());
    let mut raw = Map::new();
    raw.insert("plugin_hstore_enable".into(), json!(true));
    let machine = Resources {
        cpu_cores: 2,
        memory_bytes: 4 << 30,
    };
    let c = CharmConfig::from_raw(&raw, &machine).unwrap();
    assert!(c.plugins["audit"], "on by default");
    let databases = vec![TEMPLATE.to_string()];
    let outcome = reconcile(&mut pg, &c, &databases).unwrap();
    assert_eq!(outcome.awaiting_restart, ["pgaudit"]);
    assert!(!outcome.complete() && outcome.blocked().is_none());
    assert_eq!(outcome.created, [(TEMPLATE.to_string(), "hstore")]);
    let there = installed(&cluster, TEMPLATE);
    assert!(there.contains("hstore") && !there.contains("pgaudit"));
}
