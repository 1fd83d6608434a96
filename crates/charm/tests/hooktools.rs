//! The real hook-tool adapter against stand-in tools: every tool's command line,
//! every output format Juju's hook tools use, and Juju's error phrases.

#![allow(clippy::unwrap_used)]

use charm::backend::{Backend, Port};
use charm::hooktools::HookTools;
use charm::secret::{Revision, Rotate, SecretMeta, SecretRef};
use charm::{Bag, Error, LogLevel, Relation, SecretContent, SecretId, SecretOwner, Status};
use charm_testing::standin::StandIn;
use std::collections::BTreeMap;

const UUID: &str = "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13";
const XID: &str = "d0rtp2cs1tj5qbo1s2ug";

fn setup() -> (StandIn, HookTools) {
    let s = StandIn::new().unwrap();
    let t = HookTools::in_dir(s.tools_dir());
    (s, t)
}

fn last_line(s: &StandIn) -> String {
    s.calls().last().unwrap().line()
}

#[test]
fn leadership_and_relation_tools() {
    let (mut s, mut t) = setup();
    let db = Relation::new("database", 4);
    s.answer("is-leader", None, "true\n");
    assert!(t.is_leader().unwrap());
    assert_eq!(last_line(&s), "is-leader --format=json");

    s.answer("relation-ids", None, r#"["database:4","database:12"]"#);
    assert_eq!(
        t.relation_ids("database").unwrap(),
        vec![db.clone(), Relation::new("database", 12)]
    );
    assert_eq!(last_line(&s), "relation-ids database --format=json");

    s.answer(
        "relation-list",
        Some(&["--format=json", "-r", "database:4"]),
        r#"["app/0","app/1"]"#,
    );
    s.answer(
        "relation-list",
        Some(&["--format=json", "--app", "-r", "database:4"]),
        r#""app""#,
    );
    assert_eq!(t.relation_list(&db).unwrap(), vec!["app/0", "app/1"]);
    assert_eq!(t.relation_remote_app(&db).unwrap(), "app");
    assert_eq!(
        last_line(&s),
        "relation-list --format=json --app -r database:4"
    );

    s.answer(
        "relation-get",
        Some(&["--format=json", "-r", "database:4", "--app", "-", "app"]),
        r#"{"database":"app_db","extra-user-roles":"CREATEDB"}"#,
    );
    s.answer(
        "relation-get",
        Some(&["--format=json", "-r", "database:4", "-", "app/0"]),
        r#"{"ingress-address":"10.1.2.3"}"#,
    );
    let app = t.relation_get(&db, &Bag::App("app".into())).unwrap();
    assert_eq!(app["database"], "app_db");
    let unit = t.relation_get(&db, &Bag::Unit("app/0".into())).unwrap();
    assert_eq!(unit["ingress-address"], "10.1.2.3");

    let changes = BTreeMap::from([
        ("username".to_string(), "relation_id_4".to_string()),
        ("gone".to_string(), String::new()),
    ]);
    t.relation_set(&db, true, &changes).unwrap();
    let call = s.calls().pop().unwrap();
    assert_eq!(call.line(), "relation-set -r database:4 --app --file -");
    let sent: BTreeMap<String, String> = serde_json::from_str(&call.stdin).unwrap();
    assert_eq!(sent, changes);
    t.relation_set(&db, false, &changes).unwrap();
    assert_eq!(last_line(&s), "relation-set -r database:4 --file -");
}

#[test]
fn config_status_log_version_and_ports() {
    let (mut s, mut t) = setup();
    s.answer(
        "config-get",
        None,
        r#"{"listen_port":6432,"pool_mode":"session","ratio":0.5,"debug":false}"#,
    );
    let c = t.config_get().unwrap();
    assert_eq!(c["listen_port"], 6432);
    assert_eq!(c["debug"], false);
    assert_eq!(last_line(&s), "config-get --format=json");

    s.answer(
        "status-get",
        Some(&["--include-data", "--format=json", "--application=false"]),
        r#"{"status":"waiting","message":"backend","status-data":{}}"#,
    );
    assert_eq!(
        t.status_get(false).unwrap().status,
        Status::Waiting("backend".into())
    );
    s.answer(
        "status-get",
        Some(&["--include-data", "--format=json", "--application=true"]),
        r#"{"application-status":{"status":"active","message":"","status-data":{},"units":{"a/0":{"status":"active","message":"","status-data":{}}}}}"#,
    );
    assert_eq!(t.status_get(true).unwrap().units.len(), 1);

    t.status_set(false, &Status::Blocked("unknown role \"x\"".into()))
        .unwrap();
    assert_eq!(
        s.calls().pop().unwrap().args,
        ["--application=false", "blocked", "--", "unknown role \"x\""]
    );
    t.status_set(true, &Status::Active(String::new())).unwrap();
    assert_eq!(
        s.calls().pop().unwrap().args,
        ["--application=true", "active", "--", ""]
    );

    t.juju_log(LogLevel::Warning, "--looks like a flag")
        .unwrap();
    assert_eq!(
        s.calls().pop().unwrap().args,
        ["--log-level", "WARNING", "--", "--looks like a flag"]
    );
    t.application_version_set("1.24.1").unwrap();
    assert_eq!(last_line(&s), "application-version-set -- 1.24.1");

    t.open_port(&Port::tcp(6432)).unwrap();
    assert_eq!(last_line(&s), "open-port 6432/tcp");
    t.close_port(&Port::Udp(8000, 8010)).unwrap();
    assert_eq!(last_line(&s), "close-port 8000-8010/udp");
    s.answer("opened-ports", None, r#"["6432/tcp","icmp"]"#);
    assert_eq!(t.opened_ports().unwrap(), vec![Port::tcp(6432), Port::Icmp]);
    assert_eq!(last_line(&s), "opened-ports --format=json");
}

#[test]
fn network_and_goal_state() {
    let (mut s, mut t) = setup();
    s.answer(
        "network-get",
        None,
        r#"{"bind-addresses":[{"mac-address":"","interface-name":"eth0","addresses":[{"hostname":"","value":"10.1.2.3","cidr":"10.1.2.0/24"}]}],"egress-subnets":["10.1.2.3/32"],"ingress-addresses":["10.1.2.3"]}"#,
    );
    let n = t.network_get("database", Some(4)).unwrap();
    assert_eq!(n.ingress_addresses, ["10.1.2.3"]);
    assert_eq!(n.bind_addresses[0].addresses[0].cidr, "10.1.2.0/24");
    assert_eq!(last_line(&s), "network-get --format=json -r 4 database");
    t.network_get("pgb-peers", None).unwrap();
    assert_eq!(last_line(&s), "network-get --format=json pgb-peers");
    s.fail(
        "network-get",
        Some(&["--format=json", "-r", "9", "database"]),
        1,
        "ERROR relation 9 not found\n",
    );
    assert!(t
        .network_get("database", Some(9))
        .unwrap_err()
        .is_relation_not_found());

    s.answer(
        "goal-state",
        None,
        r#"{"units":{"pgbouncer-k8s/0":{"status":"active","since":"2026-11-22 10:00:00Z"},"pgbouncer-k8s/1":{"status":"dying","since":"2026-11-22T10:00:00.5+00:00"}},"relations":{"database":{"app":{"status":"joined","since":"2026-11-22 10:00:00Z"}}}}"#,
    );
    let g = t.goal_state().unwrap();
    assert_eq!(g.planned_units(), 1);
    assert_eq!(g.relations["database"]["app"].status, "joined");
    assert_eq!(last_line(&s), "goal-state --format=json");
}

#[test]
fn action_tools() {
    let (mut s, mut t) = setup();
    s.answer(
        "action-get",
        None,
        r#"{"username":"operator","force":true}"#,
    );
    assert_eq!(t.action_get().unwrap()["force"], true);
    assert_eq!(last_line(&s), "action-get --format=json");
    let results = BTreeMap::from([
        ("password".to_string(), "a b".to_string()),
        ("tls.ca".to_string(), "x".to_string()),
    ]);
    t.action_set(&results).unwrap();
    assert_eq!(s.calls().pop().unwrap().args, ["password=a b", "tls.ca=x"]);
    t.action_fail("no such user").unwrap();
    assert_eq!(last_line(&s), "action-fail -- no such user");
    t.action_log("rotating").unwrap();
    assert_eq!(last_line(&s), "action-log -- rotating");
    s.fail(
        "action-log",
        Some(&["--", "x"]),
        1,
        "ERROR not running an action\n",
    );
    assert!(matches!(t.action_log("x"), Err(Error::NotInAction { .. })));
}

#[test]
fn secret_values_travel_in_files_never_on_the_command_line() {
    let (mut s, mut t) = setup();
    s.answer("secret-add", None, &format!("secret://{UUID}/{XID}\n"));
    let content = SecretContent::new()
        .with("username", "relation_id_4")
        .with("password", "s3cr3t-Value");
    let meta = SecretMeta {
        label: Some("database.4.user.secret".into()),
        description: Some("-starts with a dash".into()),
        expire: Some("2027-01-01T00:00:00Z".into()),
        rotate: Some(Rotate::Monthly),
    };
    let id = t
        .secret_add(&content, SecretOwner::Application, &meta)
        .unwrap();
    assert_eq!(id.xid(), XID);
    assert_eq!(id.model_uuid(), Some(UUID));
    let call = s.calls().pop().unwrap();
    assert_eq!(
        call.args[..5],
        [
            "--label=database.4.user.secret",
            "--description=-starts with a dash",
            "--expire=2027-01-01T00:00:00Z",
            "--rotate=monthly",
            "--owner=application",
        ]
    );
    assert!(call.args[5].starts_with("password#file=/"));
    assert!(call.args[6].starts_with("username#file=/"));
    assert!(!call.line().contains("s3cr3t-Value"), "{}", call.line());
    assert_eq!(call.files["password"], "s3cr3t-Value");
    assert_eq!(call.files["username"], "relation_id_4");
    let file = call.args[5].split_once("#file=").unwrap().1;
    assert!(
        !std::path::Path::new(file).exists(),
        "value files are removed after the call"
    );

    t.secret_set(
        &id,
        Some(&SecretContent::new().with("password", "n3w")),
        &SecretMeta::default(),
    )
    .unwrap();
    let call = s.calls().pop().unwrap();
    assert_eq!(call.args[0], format!("secret://{UUID}/{XID}"));
    assert_eq!(call.files["password"], "n3w");
    t.secret_set(
        &id,
        None,
        &SecretMeta {
            label: Some("new".into()),
            ..SecretMeta::default()
        },
    )
    .unwrap();
    assert_eq!(
        last_line(&s),
        format!("secret-set --label=new secret://{UUID}/{XID}")
    );

    let bad = SecretContent::new().with("pw", "x");
    assert!(matches!(
        t.secret_add(&bad, SecretOwner::Unit, &SecretMeta::default()),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn secret_get_forms_and_the_three_id_forms() {
    let (mut s, mut t) = setup();
    s.answer("secret-get", None, r#"{"username":"u","password":"p"}"#);
    for raw in [
        format!("secret://{UUID}/{XID}"),
        format!("secret:{XID}"),
        XID.to_string(),
    ] {
        let id = SecretId::parse(&raw).unwrap();
        let c = t
            .secret_get(&SecretRef::Id(id.clone(), None), Revision::Tracked)
            .unwrap();
        assert_eq!(c.get("password"), Some("p"));
        assert_eq!(
            s.calls().pop().unwrap().args,
            ["--format=json", &id.to_string()]
        );
    }
    let id = SecretId::parse(XID).unwrap();
    t.secret_get(
        &SecretRef::Id(id.clone(), Some("db.4.user.secret".into())),
        Revision::Refresh,
    )
    .unwrap();
    assert_eq!(
        s.calls().pop().unwrap().args,
        [
            "--format=json",
            &format!("secret:{XID}"),
            "--label=db.4.user.secret",
            "--refresh"
        ]
    );
    t.secret_get(&SecretRef::Label("db.4.user.secret".into()), Revision::Peek)
        .unwrap();
    assert_eq!(
        s.calls().pop().unwrap().args,
        ["--format=json", "--label=db.4.user.secret", "--peek"]
    );

    s.fail(
        "secret-get",
        Some(&["--format=json", "--label=nope"]),
        1,
        "ERROR consumer label \"nope\" not found\n",
    );
    assert!(t
        .secret_get(&SecretRef::Label("nope".into()), Revision::Tracked)
        .unwrap_err()
        .is_secret_not_found());
    s.fail(
        "secret-get",
        Some(&["--format=json", "--label=theirs"]),
        1,
        "ERROR permission denied\n",
    );
    assert!(matches!(
        t.secret_get(&SecretRef::Label("theirs".into()), Revision::Tracked),
        Err(Error::PermissionDenied { .. })
    ));
}

#[test]
fn secret_info_grants_removal_and_ids() {
    let (mut s, mut t) = setup();
    let id = SecretId::parse(&format!("secret://{UUID}/{XID}")).unwrap();
    s.answer(
        "secret-info-get",
        None,
        &format!(r#"{{"{XID}":{{"revision":2,"label":"pgb-peers.pgbouncer-k8s.app","owner":"application","rotation":"never"}}}}"#),
    );
    let info = t
        .secret_info_get(&SecretRef::Label("pgb-peers.pgbouncer-k8s.app".into()))
        .unwrap();
    assert_eq!((info.revision, info.owner), (2, SecretOwner::Application));
    assert_eq!(info.id.as_ref(), Some(&id));
    assert_eq!(
        last_line(&s),
        "secret-info-get --format=json --label=pgb-peers.pgbouncer-k8s.app"
    );
    t.secret_info_get(&SecretRef::Id(id.clone(), None)).unwrap();
    assert_eq!(last_line(&s), format!("secret-info-get --format=json {id}"));

    t.secret_grant(&id, 4, None).unwrap();
    assert_eq!(last_line(&s), format!("secret-grant --relation 4 {id}"));
    t.secret_grant(&id, 4, Some("app/1")).unwrap();
    assert_eq!(
        last_line(&s),
        format!("secret-grant --relation 4 --unit app/1 {id}")
    );
    t.secret_revoke(&id, 4, None).unwrap();
    assert_eq!(last_line(&s), format!("secret-revoke --relation 4 {id}"));
    t.secret_remove(&id, Some(3)).unwrap();
    assert_eq!(last_line(&s), format!("secret-remove {id} --revision 3"));
    t.secret_remove(&id, None).unwrap();
    assert_eq!(last_line(&s), format!("secret-remove {id}"));
    s.answer("secret-ids", None, &format!(r#"["{XID}"]"#));
    assert_eq!(t.secret_ids().unwrap(), vec![id]);
    assert_eq!(last_line(&s), "secret-ids --format=json");
}

#[test]
fn juju_error_phrases_become_typed_errors() {
    let (mut s, mut t) = setup();
    let db = Relation::new("database", 7);
    s.fail("relation-get", None, 1, "ERROR relation 7 not found\n");
    assert!(t
        .relation_get(&db, &Bag::Unit("a/0".into()))
        .unwrap_err()
        .is_relation_not_found());
    s.fail(
        "relation-set",
        None,
        1,
        "ERROR cannot write relation settings\n",
    );
    assert!(matches!(
        t.relation_set(&db, true, &BTreeMap::new()),
        Err(Error::PermissionDenied { .. })
    ));
    s.fail("status-set", None, 1, "ERROR this unit is not the leader\n");
    assert!(matches!(
        t.status_set(true, &Status::Active(String::new())),
        Err(Error::NotLeader { .. })
    ));
    s.fail(
        "config-get",
        None,
        2,
        "ERROR flag provided but not defined: --bogus\n",
    );
    match t.config_get() {
        Err(Error::Tool {
            code: 2, message, ..
        }) => assert_eq!(message, "flag provided but not defined: --bogus"),
        other => panic!("{other:?}"),
    }
    s.answer("is-leader", None, "maybe");
    assert!(matches!(t.is_leader(), Err(Error::Output { .. })));
    let mut missing = HookTools::in_dir("/nonexistent-tools");
    assert!(matches!(missing.is_leader(), Err(Error::Spawn { .. })));
}

#[test]
fn every_call_is_counted_and_timed() {
    let (mut s, mut t) = setup();
    s.answer("is-leader", None, "false");
    t.is_leader().unwrap();
    t.juju_log(LogLevel::Info, "x").unwrap();
    t.juju_log(LogLevel::Info, "y").unwrap();
    let stats = t.stats();
    assert_eq!(stats.count(), 3);
    assert_eq!(stats.by_tool()["juju-log"], 2);
    assert!(stats.calls.iter().all(|c| c.micros > 0));
    assert_eq!(stats.lines()[0], "is-leader --format=json");
}
