//! What clients ask beyond a database, end to end, with the published
//! libraries as requirers (v0 `data_interfaces`, v1 `dpcharmlibs-interfaces`)
//! on one deployment: etcd, one PostgreSQL unit, one PgBouncer unit, and a
//! client per kind of request. A `charmed_read` user reads but does not
//! write; a role an administrator made is granted; an unknown role is
//! refused, and the client reads why; a USER entity with a name of its own
//! logs in through PgBouncer with exactly the privileges it asked for; a
//! GROUP entity is made on PostgreSQL; a prefix request gets its databases,
//! connects to each, and gets a new one that matches once PostgreSQL
//! converges again.

#![allow(clippy::unwrap_used)]

use e2e::{
    action, active, address, blocked, charm, controller, converge, postgresql_cluster, psql,
    python_charm, Scratch,
};
use local_model::controller::Controller;
use serde_json::json;
use std::time::{Duration, Instant};

const PG: &str = "postgresql-k8s";
const PGB: &str = "pgbouncer-k8s";

/// The entity's permissions: connect to its database, read (only) `notes`.
const PERMISSIONS: &str = r#"[{"resource_name": "entdb", "resource_type": "database", "privileges": ["CONNECT"]}, {"resource_name": "public.notes", "resource_type": "table", "privileges": ["SELECT"]}]"#;

/// A client application: its name, its charm, the provider it relates to,
/// and its options (the request).
type Client<'a> = (
    &'a str,
    &'a std::path::Path,
    &'a str,
    Vec<(&'a str, &'a str)>,
);

/// The user and password a client was given (its entity's, for an entity).
fn credentials(c: &mut Controller, unit: &str) -> serde_json::Map<String, serde_json::Value> {
    action(c, unit, "get-credentials", json!({}))
}

fn text(map: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    map[key].as_str().unwrap_or_default().to_string()
}

/// Runs `sql` as `user`, retrying briefly while the server (or PgBouncer)
/// may still be picking the role up.
fn as_user(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> Result<String, String> {
    let mut result = Err(String::new());
    for _ in 0..25 {
        result = psql(host, port, user, password, db, sql);
        if result.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    result.map(|out| out.trim().to_string())
}

#[test]
fn clients_ask_for_roles_entities_and_prefixes() {
    let start = Instant::now();
    let scratch = Scratch::new("client-requests");
    let pgbouncer = charm(scratch.path(), PGB);
    let v0 = python_charm(scratch.path(), "pg-client");
    let v1 = python_charm(scratch.path(), "pg-client-v1");
    let mut c = controller(&scratch);

    postgresql_cluster(&mut c, scratch.path(), 1);
    let pg_host = address(&c, &format!("{PG}/0"));
    let operator = text(
        &action(&mut c, &format!("{PG}/0"), "get-password", json!({})),
        "password",
    );
    let admin = |db: &str, sql: &str| psql(&pg_host, 5432, "operator", &operator, db, sql).unwrap();
    // What an administrator made beforehand: a role of the team's, the
    // databases a prefix will match, and the entity's database and tables.
    admin("postgres", "CREATE ROLE team_x NOLOGIN");
    for db in ["pfx_one", "pfx_two", "entdb"] {
        admin("postgres", &format!("CREATE DATABASE {db}"));
    }
    admin(
        "entdb",
        "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hello'); \
         CREATE TABLE private (n int)",
    );

    c.deploy(&pgbouncer, PGB, 1, &[]).unwrap();
    c.integrate(
        &format!("{PGB}:backend-database"),
        &format!("{PG}:database"),
    )
    .unwrap();
    let clients: [Client; 7] = [
        (
            "reader",
            &v0,
            PGB,
            vec![("database", "readdb"), ("extra-user-roles", "charmed_read")],
        ),
        (
            "team",
            &v1,
            PG,
            vec![("database", "teamdb"), ("extra-user-roles", "team_x")],
        ),
        (
            "stranger",
            &v1,
            PGB,
            vec![("database", "strangedb"), ("extra-user-roles", "nosuch")],
        ),
        (
            "stranger-v0",
            &v0,
            PG,
            vec![("database", "oddb"), ("extra-group-roles", "nosuch")],
        ),
        (
            "entity",
            &v0,
            PGB,
            vec![
                ("database", "entdb"),
                ("entity-type", "USER"),
                ("requested-entity-name", "report_user"),
                ("requested-entity-password", "chosen-Pa55word"),
                ("entity-permissions", PERMISSIONS),
            ],
        ),
        (
            "group",
            &v0,
            PG,
            vec![
                ("database", "grpdb"),
                ("entity-type", "GROUP"),
                ("extra-group-roles", "charmed_stats"),
            ],
        ),
        ("prefixed", &v0, PG, vec![("database", "pfx*")]),
    ];
    for (app, charm_dir, provider, config) in &clients {
        c.deploy(charm_dir, app, 1, config).unwrap();
        c.integrate(&format!("{app}:database"), &format!("{provider}:database"))
            .unwrap();
    }
    converge(&mut c, Duration::from_secs(120), |c| {
        let has = |unit: &str, what: &str| active(c, unit).is_some_and(|m| m.contains(what));
        let refused = |unit: &str| blocked(c, unit).is_some_and(|m| m.contains("no such role"));
        has("reader/0", "@")
            && has("team/0", "@")
            && has("entity/0", "entity report_user@")
            && has("group/0", "entity relation_id_")
            && has("prefixed/0", "prefix=pfx_one,pfx_two")
            && refused("stranger/0")
            && refused("stranger-v0/0")
    });
    println!("deployed and served in {:?}", start.elapsed());

    // Refused: each client reads the fatal code and the reason; the
    // providers' statuses name the relation; nothing is handed out.
    for unit in ["stranger/0", "stranger-v0/0"] {
        let message = blocked(&c, unit).unwrap();
        assert!(
            message.starts_with("5002: invalid role(s) for extra user roles: relation ")
                && message.contains("\"nosuch\": no such role"),
            "{unit}: {message}"
        );
        let task = c
            .run_action(unit, "get-credentials", Default::default())
            .unwrap();
        assert!(!task.succeeded(), "{unit} was handed credentials");
    }
    for unit in [format!("{PG}/0"), format!("{PGB}/0")] {
        let message = blocked(&c, &unit).unwrap_or_default();
        assert!(
            message.contains("no such role") && message.contains("relation "),
            "{unit}: {message}"
        );
    }

    // charmed_read, through PgBouncer: reads a table it does not own, writes none.
    let pgb_host = address(&c, &format!("{PGB}/0"));
    admin(
        "readdb",
        "CREATE TABLE shared (v text); INSERT INTO shared VALUES ('from the operator')",
    );
    let reader = credentials(&mut c, "reader/0");
    let (user, password) = (text(&reader, "username"), text(&reader, "password"));
    let read = as_user(
        &pgb_host,
        6432,
        &user,
        &password,
        "readdb",
        "SELECT v FROM shared",
    );
    assert_eq!(read.as_deref(), Ok("from the operator"));
    let write = psql(
        &pgb_host,
        6432,
        &user,
        &password,
        "readdb",
        "INSERT INTO shared VALUES ('x')",
    );
    assert!(
        write
            .as_ref()
            .is_err_and(|e| e.contains("permission denied")),
        "{write:?}"
    );

    // A role an administrator made, granted to the v1 client's user.
    let team = credentials(&mut c, "team/0");
    let member = as_user(
        &pg_host,
        5432,
        &text(&team, "username"),
        &text(&team, "password"),
        "teamdb",
        "SELECT pg_has_role(current_user, 'team_x', 'MEMBER')",
    );
    assert_eq!(member.as_deref(), Ok("t"));

    // The USER entity, through PgBouncer, with its own name and password and
    // exactly its permissions.
    let entity = credentials(&mut c, "entity/0");
    assert_eq!(text(&entity, "username"), "report_user");
    assert_eq!(text(&entity, "password"), "chosen-Pa55word");
    let login = |sql: &str| {
        psql(
            &pgb_host,
            6432,
            "report_user",
            "chosen-Pa55word",
            "entdb",
            sql,
        )
    };
    let read = as_user(
        &pgb_host,
        6432,
        "report_user",
        "chosen-Pa55word",
        "entdb",
        "SELECT body FROM notes",
    );
    assert_eq!(read.as_deref(), Ok("hello"));
    let privileges = login(
        "SELECT has_table_privilege('notes', 'SELECT'), has_table_privilege('notes', 'INSERT'), \
         has_table_privilege('notes', 'UPDATE'), has_table_privilege('notes', 'DELETE'), \
         has_table_privilege('private', 'SELECT'), has_database_privilege('entdb', 'CREATE'), \
         has_database_privilege('entdb', 'TEMPORARY'), has_schema_privilege('public', 'CREATE')",
    );
    assert_eq!(privileges.as_deref().map(str::trim), Ok("t|f|f|f|f|f|f|f"));
    for sql in ["INSERT INTO notes VALUES ('x')", "SELECT * FROM private"] {
        let denied = login(sql);
        assert!(
            denied
                .as_ref()
                .is_err_and(|e| e.contains("permission denied")),
            "{sql}: {denied:?}"
        );
    }
    let elsewhere = psql(
        &pgb_host,
        6432,
        "report_user",
        "chosen-Pa55word",
        "readdb",
        "SELECT 1",
    );
    assert!(
        elsewhere.is_err(),
        "the entity reached another database: {elsewhere:?}"
    );

    // The GROUP entity, made on PostgreSQL: no login, a member of its group role.
    let group = credentials(&mut c, "group/0");
    let name = text(&group, "username");
    let made = admin(
        "postgres",
        &format!(
            "SELECT NOT rolcanlogin AND pg_has_role(rolname, 'charmed_stats', 'MEMBER') \
             FROM pg_roles WHERE rolname = '{name}'"
        ),
    );
    assert_eq!(made.trim(), "t", "{name}");

    // The prefix: its databases, each reachable; a new one that matches is
    // granted and announced once PostgreSQL converges again.
    let prefixed = credentials(&mut c, "prefixed/0");
    assert_eq!(text(&prefixed, "prefix-databases"), "pfx_one,pfx_two");
    let (user, password) = (text(&prefixed, "username"), text(&prefixed, "password"));
    for db in ["pfx_one", "pfx_two"] {
        let here = as_user(
            &pg_host,
            5432,
            &user,
            &password,
            db,
            "SELECT current_database()",
        );
        assert_eq!(here.as_deref(), Ok(db));
    }
    admin("postgres", "CREATE DATABASE pfx_three");
    c.config(PG, &[("durability_maximum_lag_on_failover", "2097152")])
        .unwrap();
    converge(&mut c, Duration::from_secs(60), |c| {
        active(c, "prefixed/0").is_some_and(|m| m.contains("prefix=pfx_one,pfx_three,pfx_two"))
    });
    let here = as_user(
        &pg_host,
        5432,
        &user,
        &password,
        "pfx_three",
        "SELECT current_database()",
    );
    assert_eq!(here.as_deref(), Ok("pfx_three"));
    println!("done in {:?}", start.elapsed());
}
