//! The PgBouncer charm on the local model before it has a backend: it finds the
//! PgBouncer in its image (the first on PATH) and says what it waits for.

use e2e::{charm, controller, converge, Scratch};
use std::time::Duration;

#[test]
fn pgbouncer_finds_its_binary_and_waits_for_a_backend() {
    let scratch = Scratch::new("pgbouncer-alone");
    let pgbouncer = charm(scratch.path(), "pgbouncer-k8s");
    let mut c = controller(&scratch);
    c.deploy(&pgbouncer, "pgbouncer-k8s", 2, &[]).unwrap();
    let blocked = |c: &local_model::controller::Controller, unit: &str| {
        c.model.unit(unit).is_some_and(|u| {
            u.status == charm::Status::Blocked("waiting for backend database relation".into())
        })
    };
    converge(&mut c, Duration::from_secs(30), |c| {
        blocked(c, "pgbouncer-k8s/0") && blocked(c, "pgbouncer-k8s/1")
    });
    let peers = c
        .model
        .relations
        .iter()
        .find(|r| r.is_peer())
        .expect("the peer relation");
    for unit in ["pgbouncer-k8s/0", "pgbouncer-k8s/1"] {
        let bag = &peers.unit_bags[unit].data;
        assert_eq!(bag["pgbouncer_version"], "1.24.1", "{unit}: {bag:?}");
        assert_eq!(bag["hostname"], c.model.unit(unit).unwrap().address);
    }
}
