//! Names and `extra-user-roles` are refused before any SQL can be built from them.

#![allow(clippy::unwrap_used)]

use postgres_admin::{
    Attribute, DatabaseName, DatabasePrefix, ExtraRoles, MemberRole, RoleError, RoleName,
};

#[test]
fn pgbouncer_is_a_database_for_postgresql_and_the_console_for_pgbouncer() {
    for name in ["pgbouncer", "PgBouncer"] {
        let db = DatabaseName::parse(name).unwrap();
        assert!(db.is_pgbouncer_console(), "{name}");
    }
    assert!(!DatabaseName::parse("pgbouncer_app")
        .unwrap()
        .is_pgbouncer_console());
}

#[test]
fn hostile_database_names_are_refused_with_the_value_and_the_rule() {
    let long = "a".repeat(50);
    let cases: &[(&str, &str)] = &[
        ("", "must not be empty"),
        ("bob\"; DROP TABLE x; --", "contains '\"'"),
        ("it's", "contains '\\''"),
        ("a;b", "contains ';'"),
        ("my db", "contains ' '"),
        ("café", "contains 'é'"),
        ("line\nbreak", "contains '\\n'"),
        ("nul\0byte", "contains '\\0'"),
        (&long, "at most 49 bytes (is 50)"),
        ("1abc", "must start with"),
        ("-abc", "must start with"),
        ("postgres", "reserved"),
        ("template0", "reserved"),
        ("template1", "reserved"),
        ("pg_anything", "\"pg_\" are reserved"),
    ];
    for (value, rule) in cases {
        let err = DatabaseName::parse(value).expect_err(value);
        let message = err.to_string();
        assert_eq!(err.value(), *value);
        assert!(message.contains(&format!("{value:?}")), "{message}");
        assert!(message.contains(rule), "{message} lacks {rule}");
    }
    assert!(DatabaseName::parse("line\nbreak")
        .unwrap_err()
        .to_string()
        .contains("\"line\\nbreak\""));
}

#[test]
fn good_database_and_role_names_pass() {
    let longest = "d".repeat(49);
    for name in [
        "app",
        "my-app_2",
        "_private",
        "A",
        "Orders",
        longest.as_str(),
        "postgres_app",
    ] {
        assert_eq!(DatabaseName::parse(name).unwrap().to_string(), name);
    }
    let longest = "r".repeat(63);
    for name in [
        "relation_id_4",
        "pgbouncer_auth_relation_id_4",
        "_x",
        longest.as_str(),
    ] {
        assert_eq!(RoleName::parse(name).unwrap().as_str(), name);
    }
    let too_long = "r".repeat(64);
    for name in [
        "",
        "Upper",
        "with-dash",
        "9lives",
        "pg_monitor",
        "public",
        "a b",
        too_long.as_str(),
    ] {
        assert!(RoleName::parse(name).is_err(), "{name:?} accepted");
    }
}

#[test]
fn extra_roles_parse_case_insensitively_and_refuse_what_cannot_name_a_role() {
    let roles = ExtraRoles::parse(" CREATEDB, createrole ,, createdb,Pg_Monitor ").unwrap();
    assert_eq!(
        roles.attributes(),
        [Attribute::CreateDb, Attribute::CreateRole]
    );
    assert_eq!(roles.memberships(), [member("pg_monitor")]);
    assert!(roles.is_privileged());

    let roles = ExtraRoles::parse("pg_read_all_data,Charmed_Read,my_team").unwrap();
    assert!(roles.attributes().is_empty());
    assert_eq!(
        roles.memberships(),
        [
            member("pg_read_all_data"),
            member("charmed_read"),
            member("my_team")
        ]
    );
    assert!(!roles.is_privileged());
    assert!(ExtraRoles::parse("admin").unwrap().is_privileged());
    assert_eq!(ExtraRoles::parse("").unwrap(), ExtraRoles::default());
    let joined = ExtraRoles::parse("createdb,team_a")
        .unwrap()
        .with_memberships(&[member("team_a"), member("team_b")]);
    assert_eq!(joined.memberships(), [member("team_a"), member("team_b")]);

    for (value, item, phrase) in [
        (
            "createdb; drop table x",
            "createdb; drop table x",
            "contains",
        ),
        ("createdb, rolname'--", "rolname'--", "contains"),
        ("superuser, public, other", "public", "reserved"),
        (
            "pg_execute_server_program",
            "pg_execute_server_program",
            "of the predefined roles only",
        ),
        ("pg_read_server_files", "pg_read_server_files", "predefined"),
        ("1team", "1team", "must start"),
    ] {
        let err = ExtraRoles::parse(value).unwrap_err();
        assert!(
            matches!(&err, RoleError::Invalid(e) if e.value() == item),
            "{err:?}"
        );
        assert!(err.to_string().contains(phrase), "{err}");
    }
    assert_eq!(
        ExtraRoles::parse_roles("team_a, Team_B").unwrap(),
        [member("team_a"), member("team_b")]
    );
    let err = ExtraRoles::parse_roles("team_a,SUPERUSER").unwrap_err();
    assert_eq!(err, RoleError::Attribute("superuser".into()));
}

fn member(name: &str) -> MemberRole {
    MemberRole::parse(name).unwrap()
}

#[test]
fn prefixes_are_three_characters_at_least_and_valid_names() {
    let prefix = DatabasePrefix::parse("app").unwrap();
    assert_eq!(prefix.to_string(), "app*");
    assert!(prefix.matches("app_one") && prefix.matches("app") && !prefix.matches("ap"));
    for (value, phrase) in [
        ("ap", "Prefix too short"),
        ("", "Prefix too short"),
        ("pg_x", "reserved"),
        ("ab'c", "contains"),
    ] {
        let err = DatabasePrefix::parse(value).unwrap_err().to_string();
        assert!(err.contains(phrase), "{value:?}: {err}");
    }
}

#[test]
fn extensions_take_an_optional_schema_and_refuse_anything_else() {
    use postgres_admin::Extension;
    let plain = Extension::parse("uuid-ossp").unwrap();
    assert_eq!((plain.name(), plain.schema()), ("uuid-ossp", None));
    let placed = Extension::parse("pg_trgm:search").unwrap();
    assert_eq!(
        (placed.name(), placed.schema()),
        ("pg_trgm", Some("search"))
    );
    assert_eq!(placed.to_string(), "pg_trgm:search");
    for bad in [
        "",
        "citext; DROP TABLE x",
        "Citext",
        "cit\"ext",
        "citext:",
        "citext:pg_catalog",
        "citext:information_schema",
        "citext:a:b",
        "citext:Public",
        "1citext",
    ] {
        let err = Extension::parse(bad).unwrap_err();
        assert!(err.to_string().contains("invalid"), "{bad:?}: {err}");
    }
    assert!(Extension::parse(&"e".repeat(64)).is_err());
}
