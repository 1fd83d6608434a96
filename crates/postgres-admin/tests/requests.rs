//! What clients may ask beyond a database, against a real PostgreSQL 15
//! ([`TestCluster`]): roles checked before they are granted (missing, or
//! too powerful to hand out), the `charmed_*` roles, group roles, entity
//! permissions granted exactly, and databases matched by prefix.

#![allow(clippy::unwrap_used)]

use postgres::Client;
use postgres_admin::testing::TestCluster;
use postgres_admin::{
    Admin, AdminError, ConnectInfo, DatabaseName, DatabasePrefix, ExtraRoles, MemberRole,
    Permission, RoleIssue, RoleName,
};

fn role(name: &str) -> RoleName {
    RoleName::parse(name).unwrap()
}

fn member(name: &str) -> MemberRole {
    MemberRole::parse(name).unwrap()
}

fn login(
    cluster: &TestCluster,
    user: &str,
    password: &str,
    db: &str,
) -> Result<Client, AdminError> {
    ConnectInfo {
        user: user.into(),
        password: password.into(),
        ..cluster.connect_info(db)
    }
    .connect()
}

fn query_bool(client: &mut Client, sql: &str) -> bool {
    client.query_one(sql, &[]).unwrap().get(0)
}

/// The server's message for a failed statement.
fn denied(err: postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| err.to_string())
}

fn permission(name: &str, kind: &str, privileges: &[&str]) -> Permission {
    let privileges: Vec<String> = privileges.iter().map(|p| p.to_string()).collect();
    Permission::parse(name, kind, &privileges).unwrap()
}

#[test]
fn roles_are_checked_before_they_are_granted() {
    let cluster = TestCluster::start().unwrap();
    let mut admin = Admin::connect(&cluster.connect_info("postgres")).unwrap();
    let mut superuser = cluster.connect_info("postgres").connect().unwrap();

    // The charmed roles: created once, NOLOGIN, with their memberships.
    assert_eq!(
        admin.create_charmed_roles().unwrap(),
        ["charmed_stats", "charmed_read", "charmed_dml"]
    );
    assert!(admin.create_charmed_roles().unwrap().is_empty());
    assert!(query_bool(
        &mut superuser,
        "SELECT bool_and(NOT rolcanlogin AND NOT rolsuper) FROM pg_roles \
         WHERE rolname LIKE 'charmed\\_%'"
    ));
    assert!(query_bool(
        &mut superuser,
        "SELECT pg_has_role('charmed_stats', 'pg_monitor', 'MEMBER') \
         AND pg_has_role('charmed_read', 'pg_read_all_data', 'MEMBER') \
         AND pg_has_role('charmed_read', 'charmed_stats', 'MEMBER') \
         AND pg_has_role('charmed_dml', 'pg_write_all_data', 'MEMBER') \
         AND pg_has_role('charmed_dml', 'charmed_read', 'MEMBER') \
         AND NOT pg_has_role('charmed_read', 'pg_write_all_data', 'MEMBER')"
    ));

    // Roles an administrator made: a plain group, a group that is a member
    // of the superuser, one with CREATEROLE, and a login user.
    superuser
        .batch_execute(
            "CREATE ROLE team NOLOGIN; CREATE ROLE sneaky NOLOGIN; GRANT operator TO sneaky; \
             CREATE ROLE makers NOLOGIN CREATEROLE; CREATE ROLE someone LOGIN; \
             CREATE ROLE files NOLOGIN; GRANT pg_read_server_files TO files",
        )
        .unwrap();
    let asked = [
        "team",
        "charmed_read",
        "pg_monitor",
        "sneaky",
        "makers",
        "someone",
        "files",
        "operator",
        "nosuch",
    ]
    .map(member);
    let issues = admin.unusable_roles(&asked).unwrap();
    assert_eq!(
        issues,
        [
            (member("sneaky"), RoleIssue::TooPowerful),
            (member("makers"), RoleIssue::TooPowerful),
            (member("someone"), RoleIssue::TooPowerful),
            (member("files"), RoleIssue::TooPowerful),
            (member("operator"), RoleIssue::TooPowerful),
            (member("nosuch"), RoleIssue::Missing),
        ]
    );

    // create_user grants the good ones, and refuses the whole user for a bad one.
    let reader = role("reader");
    let roles = ExtraRoles::parse("charmed_read")
        .unwrap()
        .with_memberships(&[member("team")]);
    admin.create_user(&reader, "reader-pw", &roles).unwrap();
    assert!(query_bool(
        &mut superuser,
        "SELECT pg_has_role('reader', 'charmed_read', 'MEMBER') \
         AND pg_has_role('reader', 'team', 'MEMBER') \
         AND pg_has_role('reader', 'pg_read_all_data', 'MEMBER')"
    ));
    let bad = ExtraRoles::parse("sneaky").unwrap();
    let err = admin
        .create_user(&role("intruder"), "pw", &bad)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("grants more than a client may have"),
        "{err}"
    );
    assert!(!admin.role_exists(&role("intruder")).unwrap());

    // A charmed_read user reads every table but writes none.
    let db = DatabaseName::parse("shop").unwrap();
    admin.ensure_database(&db).unwrap();
    let mut in_shop = cluster.connect_info("shop").connect().unwrap();
    in_shop
        .batch_execute("CREATE TABLE items (n int); INSERT INTO items VALUES (1)")
        .unwrap();
    admin.grant_database(&db, &reader).unwrap();
    let mut as_reader = login(&cluster, "reader", "reader-pw", "shop").unwrap();
    let n: i64 = as_reader
        .query_one("SELECT count(*) FROM items", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let err = denied(
        as_reader
            .batch_execute("INSERT INTO items VALUES (2)")
            .unwrap_err(),
    );
    assert!(err.contains("permission denied"), "{err}");

    // Groups: created NOLOGIN with their memberships; a user's name is no group.
    let group = role("analysts");
    admin
        .create_group(&group, &[member("charmed_stats")])
        .unwrap();
    admin.create_group(&group, &[member("team")]).unwrap();
    assert!(query_bool(
        &mut superuser,
        "SELECT NOT rolcanlogin AND pg_has_role('analysts', 'charmed_stats', 'MEMBER') \
         AND pg_has_role('analysts', 'team', 'MEMBER') FROM pg_roles WHERE rolname = 'analysts'"
    ));
    let err = admin.create_group(&reader, &[]).unwrap_err();
    assert!(err.to_string().contains("can log in"), "{err}");
    let err = admin
        .create_group(&role("other"), &[member("nosuch")])
        .unwrap_err();
    assert!(err.to_string().contains("no such role"), "{err}");
    assert!(!admin.role_exists(&role("other")).unwrap());
}

#[test]
fn entity_permissions_are_granted_exactly() {
    let cluster = TestCluster::start().unwrap();
    let mut admin = Admin::connect(&cluster.connect_info("postgres")).unwrap();
    let db = DatabaseName::parse("catalog").unwrap();
    assert!(admin.ensure_database(&db).unwrap());
    assert!(!admin.ensure_database(&db).unwrap());
    let mut owner = cluster.connect_info("catalog").connect().unwrap();
    owner
        .batch_execute(
            "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hello'); \
             CREATE TABLE secrets (body text); CREATE SCHEMA sales; \
             CREATE TABLE sales.orders (n int); CREATE SEQUENCE sales.ids",
        )
        .unwrap();
    let entity = role("report_user");
    admin
        .create_user(&entity, "entity-pw", &ExtraRoles::default())
        .unwrap();
    // Not even CONNECT before it is granted (PUBLIC's rights are revoked).
    assert!(login(&cluster, "report_user", "entity-pw", "catalog").is_err());
    let permissions = [
        permission("catalog", "database", &["CONNECT"]),
        permission("notes", "table", &["SELECT", "INSERT"]),
        permission("sales", "schema", &["USAGE"]),
        permission("sales.orders", "table", &["SELECT"]),
        permission("sales.ids", "sequence", &["USAGE"]),
    ];
    admin.grant_permissions(&entity, &db, &permissions).unwrap();
    let mut as_entity = login(&cluster, "report_user", "entity-pw", "catalog").unwrap();
    as_entity
        .batch_execute("INSERT INTO notes VALUES ('mine')")
        .unwrap();
    let n: i64 = as_entity
        .query_one("SELECT count(*) FROM notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    as_entity
        .batch_execute("SELECT * FROM sales.orders")
        .unwrap();
    as_entity
        .batch_execute("SELECT nextval('sales.ids')")
        .unwrap();
    for sql in [
        "DELETE FROM notes",
        "SELECT * FROM secrets",
        "INSERT INTO sales.orders VALUES (1)",
        "CREATE TABLE sales.mine (n int)",
    ] {
        let err = denied(as_entity.batch_execute(sql).unwrap_err());
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    drop(as_entity);

    // Granted again with less: what was held before goes.
    admin
        .grant_permissions(
            &entity,
            &db,
            &[
                permission("catalog", "database", &["CONNECT"]),
                permission("notes", "table", &["SELECT"]),
            ],
        )
        .unwrap();
    let mut as_entity = login(&cluster, "report_user", "entity-pw", "catalog").unwrap();
    as_entity.batch_execute("SELECT * FROM notes").unwrap();
    let err = denied(
        as_entity
            .batch_execute("INSERT INTO notes VALUES ('x')")
            .unwrap_err(),
    );
    assert!(err.contains("permission denied"), "{err}");

    // A table that is not there fails by name, and grants nothing.
    let err = admin
        .grant_permissions(&entity, &db, &[permission("missing", "table", &["SELECT"])])
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn databases_match_a_prefix_literally() {
    let cluster = TestCluster::start().unwrap();
    let mut admin = Admin::connect(&cluster.connect_info("postgres")).unwrap();
    for name in [
        "app_one",
        "app_two",
        "apple",
        "ap_x",
        "other_app",
        "app%x",
        "app_x",
    ] {
        admin
            .ensure_database(&DatabaseName::parse(name).unwrap_or_else(|_| {
                // '%' is no valid name: made by hand, to show it is matched literally.
                let mut c = cluster.connect_info("postgres").connect().unwrap();
                c.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .unwrap();
                DatabaseName::parse("app_x").unwrap()
            }))
            .unwrap();
    }
    let prefix = |p: &str| DatabasePrefix::parse(p).unwrap();
    assert_eq!(
        admin.databases_with_prefix(&prefix("app")).unwrap(),
        ["app%x", "app_one", "app_two", "app_x", "apple"]
    );
    assert_eq!(
        admin.databases_with_prefix(&prefix("app_")).unwrap(),
        ["app_one", "app_two", "app_x"]
    );
    assert!(admin
        .databases_with_prefix(&prefix("zzz"))
        .unwrap()
        .is_empty());
    assert_eq!(
        admin.databases_with_prefix(&prefix("pos")).unwrap(),
        ["postgres"]
    );
}
