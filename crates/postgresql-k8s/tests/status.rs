//! The status collection: the flows' problems and the collection's checks are
//! candidates, and the most pressing one is shown (blocked over waiting over
//! active; the first met among equals).

mod support;

use charm::Status;
use charm_testing::event;
use support::*;

#[test]
fn a_refused_request_outranks_waiting_for_etcd() {
    let w = World::new(&[]);
    let mut s = unit(0, true).with_relation(client(5, "shop", &[("extra-user-roles", "te st")]));
    s.relations
        .iter_mut()
        .find(|r| r.id == ETCD_ID)
        .unwrap()
        .remote_app_data
        .clear();
    let out = w.go(&s, event::relation_changed(s.relation(5).unwrap(), None));
    match &out.state.unit_status {
        Status::Blocked(m) => assert!(m.starts_with("invalid role(s)"), "{m}"),
        other => panic!("{other:?}"),
    }
}
