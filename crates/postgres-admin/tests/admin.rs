//! `Admin` against a real PostgreSQL 15 ([`TestCluster`]); each test groups
//! several checks on one cluster.

#![allow(clippy::unwrap_used)]

use postgres::Client;
use postgres_admin::testing::TestCluster;
use postgres_admin::{
    Admin, AdminError, ConnectInfo, Connector, DatabaseName, ExtraRoles, Postgres, RealConnector,
    RoleName,
};

fn role(name: &str) -> RoleName {
    RoleName::parse(name).unwrap()
}

fn roles(value: &str) -> ExtraRoles {
    ExtraRoles::parse(value).unwrap()
}

/// Logs in over TCP, where the cluster asks for SCRAM.
fn login(
    cluster: &TestCluster,
    user: &str,
    password: &str,
    db: &str,
) -> Result<Client, AdminError> {
    let info = ConnectInfo {
        user: user.into(),
        password: password.into(),
        ..cluster.connect_info(db)
    };
    info.connect()
}

fn query_bool(client: &mut Client, sql: &str) -> bool {
    client.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn users_and_databases() {
    let cluster = TestCluster::start().unwrap();
    let info = cluster.connect_info("postgres");
    assert!(!format!("{info:?}").contains(cluster.password()));
    let mut admin = Admin::connect(&info).unwrap();
    let mut superuser = info.connect().unwrap();

    let version = admin.server_version().unwrap();
    assert!(version.starts_with("15."), "{version}");
    assert!(
        version.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "{version}"
    );

    let (db, alice, bob) = (
        DatabaseName::parse("app-db").unwrap(),
        role("alice"),
        role("bob"),
    );
    admin
        .create_user(&alice, "alice's secret", &roles(""))
        .unwrap();
    assert!(admin.create_database(&db, &alice).unwrap());
    assert!(!admin.create_database(&db, &alice).unwrap());
    assert!(admin.database_exists("app-db").unwrap());
    assert_eq!(admin.databases().unwrap(), ["app-db", "postgres"]);
    admin.grant_database(&db, &alice).unwrap();

    // The password reached the server only as a SCRAM verifier, and logging in
    // with the plaintext over SCRAM works.
    let stored: String = superuser
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    assert!(login(&cluster, "alice", "wrong", "app-db").is_err());
    let mut as_alice = login(&cluster, "alice", "alice's secret", "app-db").unwrap();
    as_alice
        .batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hi')")
        .unwrap();

    // A second user granted the same database can use it; one not granted cannot connect.
    admin.create_user(&bob, "bob-pw", &roles("")).unwrap();
    admin.grant_database(&db, &bob).unwrap();
    let mut as_bob = login(&cluster, "bob", "bob-pw", "app-db").unwrap();
    as_bob
        .batch_execute("CREATE TABLE bobs (n int); INSERT INTO bobs VALUES (1)")
        .unwrap();
    let carol = role("carol");
    admin
        .create_user(
            &carol,
            "carol-pw",
            &roles("CREATEDB, createrole, pg_monitor"),
        )
        .unwrap();
    let Err(refused) = login(&cluster, "carol", "carol-pw", "app-db") else {
        panic!("carol connected to a database not granted to her");
    };
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );

    // Extra roles show in pg_roles, and updating the user withdraws them.
    let attrs = "SELECT rolcanlogin AND rolcreatedb AND rolcreaterole AND NOT rolsuper \
                 AND pg_has_role('carol', 'pg_monitor', 'MEMBER') FROM pg_roles WHERE rolname = 'carol'";
    assert!(query_bool(&mut superuser, attrs));
    admin.create_user(&carol, "carol-pw2", &roles("")).unwrap();
    let plain =
        "SELECT NOT rolcreatedb AND NOT rolcreaterole FROM pg_roles WHERE rolname = 'carol'";
    assert!(query_bool(&mut superuser, plain));
    login(&cluster, "carol", "carol-pw2", "postgres").unwrap();

    // A membership the cluster lacks fails by name and creates nothing.
    let dave = role("dave");
    let err = admin
        .create_user(&dave, "dave-secret", &roles("createdb, admin"))
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
    assert!(
        message.contains("\"admin\"") && !message.contains("dave-secret"),
        "{message}"
    );
    assert!(!admin.role_exists(&dave).unwrap());
    let err = admin.create_user(&dave, "", &roles("")).unwrap_err();
    assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");

    // Dropping a user keeps its database and data, now owned by the superuser.
    drop(as_alice);
    assert!(admin.drop_user(&alice).unwrap());
    assert!(!admin.role_exists(&alice).unwrap());
    assert!(admin.database_exists("app-db").unwrap());
    let mut in_db = cluster.connect_info("app-db").connect().unwrap();
    let owner: String = in_db
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'notes'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, cluster.superuser());
    let rows: i64 = in_db
        .query_one("SELECT count(*) FROM notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    let db_owner =
        "SELECT pg_get_userbyid(datdba) = current_user FROM pg_database WHERE datname = 'app-db'";
    assert!(query_bool(&mut in_db, db_owner));
    assert!(!admin.drop_user(&alice).unwrap());
    let err = admin.drop_user(&role(cluster.superuser())).unwrap_err();
    assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
}

/// Logs in as a new role whose password was set as `verifier`.
fn login_with_verifier(
    cluster: &TestCluster,
    superuser: &mut Client,
    user: &str,
    verifier: &str,
    password: &str,
) -> Result<Client, AdminError> {
    let sql = format!("CREATE ROLE \"{user}\" LOGIN PASSWORD '{verifier}'");
    superuser.batch_execute(&sql).unwrap();
    login(cluster, user, password, "postgres")
}

#[test]
fn each_cluster_has_its_own_system_identifier() {
    let (one, two) = (TestCluster::start().unwrap(), TestCluster::start().unwrap());
    let id = |cluster: &TestCluster| {
        let mut admin = Admin::connect(&cluster.connect_info("postgres")).unwrap();
        admin.system_identifier().unwrap()
    };
    let first = id(&one);
    assert!(first.parse::<u64>().is_ok_and(|n| n > 0), "{first}");
    assert_eq!(id(&one), first, "the same on every session");
    let mut other_db = cluster_session(&one, "template1");
    assert_eq!(
        other_db.system_identifier().unwrap(),
        first,
        "and in every database"
    );
    assert_ne!(id(&two), first, "another cluster, another identity");
}

/// A session through the `Postgres` trait, as the charms open one.
fn cluster_session(cluster: &TestCluster, db: &str) -> Box<dyn Postgres> {
    RealConnector.connect(&cluster.connect_info(db)).unwrap()
}

#[test]
fn scram_verifiers_log_in() {
    let cluster = TestCluster::start().unwrap();
    let mut superuser = cluster.connect_info("postgres").connect().unwrap();

    // A known verifier: the password `secret` with the salt bytes 1 to 16.
    let known = "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==\
                 $8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=\
                 :05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=";
    login_with_verifier(&cluster, &mut superuser, "known", known, "secret").unwrap();
    assert!(login(&cluster, "known", "Secret", "postgres").is_err());

    // Verifiers computed here log in; the client also checks the server's
    // signature, so both the stored key and the server key are right. A
    // non-ASCII password and one SASLprep changes (a Roman numeral nine to
    // "IX") are included.
    for (i, password) in ["secret", "p\u{e4} ss w\u{f6}rd", "\u{2168}"]
        .into_iter()
        .enumerate()
    {
        let verifier = postgres_admin::verifier::scram_sha_256_random_salt(password);
        let user = format!("user{i}");
        login_with_verifier(&cluster, &mut superuser, &user, &verifier, password)
            .unwrap_or_else(|e| panic!("password {password:?}: {e}"));
        assert!(login(&cluster, &user, "wrong", "postgres").is_err());
    }
}

#[test]
fn pgbouncer_auth_function() {
    let cluster = TestCluster::start().unwrap();
    let mut admin = Admin::connect(&cluster.connect_info("postgres")).unwrap();
    let mut superuser = cluster.connect_info("postgres").connect().unwrap();
    let db = DatabaseName::parse("shop").unwrap();
    let auth = role("pgbouncer_auth_relation_id_4");
    admin.create_user(&auth, "auth-secret", &roles("")).unwrap();
    admin.create_user(&auth, "auth-secret", &roles("")).unwrap();
    admin
        .create_user(&role("app"), "app-pw", &roles(""))
        .unwrap();
    admin.create_database(&db, &role("app")).unwrap();
    for database in [db.as_str(), "postgres"] {
        admin.install_auth_function(database, &auth).unwrap();
        admin.install_auth_function(database, &auth).unwrap();
    }
    superuser
        .batch_execute(
            "CREATE ROLE su LOGIN SUPERUSER PASSWORD 'x';
             CREATE ROLE repl LOGIN REPLICATION PASSWORD 'x';
             CREATE ROLE nologin NOLOGIN PASSWORD 'x';
             CREATE ROLE expired LOGIN PASSWORD 'x' VALID UNTIL '2000-01-01';
             CREATE ROLE valid LOGIN PASSWORD 'x' VALID UNTIL 'infinity';",
        )
        .unwrap();
    let stored = |client: &mut Client, name: &str| -> String {
        let sql = "SELECT rolpassword FROM pg_authid WHERE rolname = $1";
        client.query_one(sql, &[&name]).unwrap().get(0)
    };
    assert!(stored(&mut superuser, auth.as_str()).starts_with("SCRAM-SHA-256$"));
    let app_verifier = stored(&mut superuser, "app");

    // The auth user logs in over TCP with SCRAM, as PgBouncer does, and calls
    // the function.
    let call = "SELECT username, password FROM pgbouncer_auth_relation_id_4.get_auth($1)";
    for database in [db.as_str(), "postgres"] {
        let info = ConnectInfo {
            user: auth.to_string(),
            password: "auth-secret".into(),
            ..cluster.connect_info(database)
        };
        let mut as_auth = info.connect().unwrap();
        let rows = as_auth.query(call, &[&"app"]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), "app");
        assert_eq!(rows[0].get::<_, String>(1), app_verifier);
        assert_eq!(as_auth.query(call, &[&"valid"]).unwrap().len(), 1);
        for hidden in [
            cluster.superuser(),
            "su",
            "repl",
            "nologin",
            "expired",
            auth.as_str(),
            "nobody",
        ] {
            assert!(
                as_auth.query(call, &[&hidden]).unwrap().is_empty(),
                "{hidden} visible"
            );
        }
    }

    // PUBLIC cannot execute it: a login role with USAGE on the schema is refused.
    let public_acl = "SELECT NOT EXISTS (SELECT 1 FROM pg_proc, aclexplode(proacl) \
                      WHERE oid = 'pgbouncer_auth_relation_id_4.get_auth(text)'::regprocedure \
                      AND grantee = 0)";
    assert!(query_bool(&mut superuser, public_acl));
    let definer = "SELECT prosecdef AND proowner = 'operator'::regrole FROM pg_proc \
                   WHERE oid = 'pgbouncer_auth_relation_id_4.get_auth(text)'::regprocedure";
    assert!(query_bool(&mut superuser, definer));
    superuser
        .batch_execute("GRANT USAGE ON SCHEMA pgbouncer_auth_relation_id_4 TO app")
        .unwrap();
    let err = login(&cluster, "app", "app-pw", "postgres")
        .unwrap()
        .query(call, &[&"app"])
        .unwrap_err();
    let message = err.as_db_error().unwrap().message();
    assert_eq!(message, "permission denied for function get_auth");

    // Removal: once something, then nothing; a missing database is nothing to do.
    assert!(admin.remove_auth_function(db.as_str(), &auth).unwrap());
    assert!(!admin.remove_auth_function(db.as_str(), &auth).unwrap());
    assert!(!admin.remove_auth_function("no_such_db", &auth).unwrap());
    let mut in_db = cluster.connect_info(db.as_str()).connect().unwrap();
    let gone = "SELECT to_regnamespace('pgbouncer_auth_relation_id_4') IS NULL";
    assert!(query_bool(&mut in_db, gone));
}

#[test]
fn system_user_passwords_and_the_admin_group() {
    let cluster = TestCluster::start().unwrap();
    let mut admin = Admin::connect(&cluster.connect_info("postgres")).unwrap();
    let mut superuser = cluster.connect_info("postgres").connect().unwrap();

    // A new password keeps the role's attributes and memberships.
    let monitoring = role("monitoring");
    admin
        .create_user(&monitoring, "first", &roles("pg_monitor,createdb"))
        .unwrap();
    admin.set_password(&monitoring, "second").unwrap();
    assert!(login(&cluster, "monitoring", "first", "postgres").is_err());
    login(&cluster, "monitoring", "second", "postgres").unwrap();
    assert!(query_bool(
        &mut superuser,
        "SELECT rolcreatedb AND pg_has_role('monitoring', 'pg_monitor', 'MEMBER') \
         FROM pg_roles WHERE rolname = 'monitoring'"
    ));
    for (user, password) in [(role("nobody"), "x"), (monitoring.clone(), "")] {
        let err = admin.set_password(&user, password).unwrap_err();
        assert!(matches!(err, AdminError::Invalid(_)), "{err}");
    }

    // The admin group: created once, cannot log in, reads and writes data.
    assert!(admin.create_admin_group().unwrap());
    assert!(!admin.create_admin_group().unwrap());
    assert!(query_bool(
        &mut superuser,
        "SELECT NOT rolcanlogin AND pg_has_role('admin', 'pg_read_all_data', 'MEMBER') \
         AND pg_has_role('admin', 'pg_write_all_data', 'MEMBER') \
         AND has_database_privilege('admin', 'postgres', 'CONNECT') \
         FROM pg_roles WHERE rolname = 'admin'"
    ));
    let db = DatabaseName::parse("shop").unwrap();
    admin
        .create_user(&role("owner"), "owner-pw", &roles(""))
        .unwrap();
    admin.create_database(&db, &role("owner")).unwrap();
    admin.grant_database(&db, &role("owner")).unwrap();
    login(&cluster, "owner", "owner-pw", "shop")
        .unwrap()
        .batch_execute("CREATE TABLE items (n int); INSERT INTO items VALUES (1)")
        .unwrap();
    admin
        .create_user(&role("ops"), "ops-pw", &roles("admin"))
        .unwrap();
    admin.grant_database(&db, &role("ops")).unwrap();
    let mut as_ops = login(&cluster, "ops", "ops-pw", "shop").unwrap();
    as_ops
        .batch_execute("INSERT INTO items VALUES (2)")
        .unwrap();
    let count: i64 = as_ops
        .query_one("SELECT count(*) FROM items", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    // The connected superuser may change its own password last (this
    // connection's info still holds the old one) and stays superuser.
    let operator = role(cluster.superuser());
    admin.set_password(&operator, "new-operator-pw").unwrap();
    login(&cluster, cluster.superuser(), "new-operator-pw", "postgres").unwrap();
    assert!(query_bool(
        &mut superuser,
        "SELECT rolsuper FROM pg_roles WHERE rolname = 'operator'"
    ));
}

#[test]
fn extensions_are_listed_and_created_by_name_alone() {
    use postgres_admin::Extension;
    let cluster = TestCluster::start().unwrap();
    let mut pg = cluster_session(&cluster, "postgres");
    let available = pg.available_extensions().unwrap();
    for name in ["citext", "pg_trgm", "uuid-ossp", "earthdistance"] {
        assert!(available.iter().any(|a| a == name), "{name}: {available:?}");
    }
    let db = DatabaseName::parse("ext_db").unwrap();
    let owner = role("ext_owner");
    pg.create_user(&owner, "owner-pw", &ExtraRoles::default())
        .unwrap();
    assert_eq!(
        pg.installed_extensions("ext_db").unwrap(),
        Vec::<String>::new(),
        "no database yet: none"
    );
    pg.create_database(&db, &owner).unwrap();
    for asked in ["uuid-ossp", "pg_trgm:search", "earthdistance", "citext"] {
        pg.create_extension(&db, &Extension::parse(asked).unwrap(), &owner)
            .unwrap_or_else(|e| panic!("{asked}: {e}"));
    }
    // Again: nothing to do.
    pg.create_extension(&db, &Extension::parse("citext").unwrap(), &owner)
        .unwrap();
    let installed = pg.installed_extensions("ext_db").unwrap();
    for name in [
        "citext",
        "cube",
        "earthdistance",
        "pg_trgm",
        "plpgsql",
        "uuid-ossp",
    ] {
        assert!(installed.iter().any(|i| i == name), "{name}: {installed:?}");
    }
    // The schema named was made for the owner, and the extension lives there.
    let mut as_owner = login(&cluster, "ext_owner", "owner-pw", "ext_db").unwrap();
    let similarity: f32 = as_owner
        .query_one("SELECT search.similarity('word', 'words')", &[])
        .unwrap()
        .get(0);
    assert!(similarity > 0.5);
    as_owner
        .batch_execute("CREATE TABLE search.t (n int)")
        .unwrap();
    // An extension the server does not offer is refused, creating nothing.
    let err = pg
        .create_extension(&db, &Extension::parse("no_such_ext").unwrap(), &owner)
        .unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
    assert_eq!(pg.installed_extensions("ext_db").unwrap(), installed);
}

#[test]
fn plugin_extensions_are_created_checked_for_dependants_and_dropped() {
    let cluster = TestCluster::start().unwrap();
    let mut pg = cluster_session(&cluster, "postgres");
    assert_eq!(pg.preloaded_libraries().unwrap(), Vec::<String>::new());
    // In a template too; a name with a hyphen is quoted by the server.
    for name in ["uuid-ossp", "hstore", "earthdistance"] {
        pg.enable_extension("template1", name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    pg.enable_extension("template1", "hstore").unwrap();
    let installed = pg.installed_extensions("template1").unwrap();
    for name in ["cube", "earthdistance", "hstore", "uuid-ossp"] {
        assert!(installed.iter().any(|i| i == name), "{name}: {installed:?}");
    }
    // A name the server does not offer, whatever it holds, creates nothing.
    let err = pg
        .enable_extension("template1", "hstore; DROP TABLE x")
        .unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
    let err = pg.enable_extension("no_such_db", "hstore").unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    // A database made by the session holding template1 copies it.
    pg.ensure_database(&DatabaseName::parse("copied").unwrap())
        .unwrap();
    let copied = pg.installed_extensions("copied").unwrap();
    assert!(copied.iter().any(|i| i == "hstore"), "{copied:?}");
    // What depends on an extension, outside it: another extension, a column.
    assert_eq!(
        pg.extension_dependants("copied", "cube").unwrap(),
        ["extension earthdistance"]
    );
    assert_eq!(
        pg.extension_dependants("copied", "hstore").unwrap(),
        Vec::<String>::new(),
        "its own operator classes and functions do not count"
    );
    let mut sql = cluster.connect_info("copied").connect().unwrap();
    sql.batch_execute("CREATE TABLE kv (attrs hstore); CREATE INDEX ON kv USING gin (attrs)")
        .unwrap();
    let dependants = pg.extension_dependants("copied", "hstore").unwrap();
    assert!(
        dependants.contains(&"column attrs of table kv".to_string()),
        "{dependants:?}"
    );
    // The server refuses a drop something depends on, and keeps it.
    let err = pg.drop_extension("copied", "hstore").unwrap_err();
    assert!(err.to_string().contains("depend"), "{err}");
    sql.batch_execute("DROP TABLE kv").unwrap();
    assert!(pg.drop_extension("copied", "hstore").unwrap());
    assert!(!pg.drop_extension("copied", "hstore").unwrap(), "gone");
    assert!(pg.drop_extension("copied", "uuid-ossp").unwrap());
    assert_eq!(
        pg.extension_dependants("no_such_db", "hstore").unwrap(),
        Vec::<String>::new()
    );
    let left = pg.installed_extensions("copied").unwrap();
    assert!(!left.iter().any(|i| i == "hstore" || i == "uuid-ossp"));
}
