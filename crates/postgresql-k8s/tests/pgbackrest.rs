//! pgBackRest's configuration, command lines and `info` output, as the
//! charm renders and reads them.

use postgresql_k8s::pgbackrest::{
    archive_command, backup_id, command, new_backup_label, parse_info, render, repository_error,
    standby_options, stanza, table, BackupType, Endpoint, EndpointError, Local, Remote, Server,
    TlsFiles,
};
use s3_interface::{parse, Parameters, S3Parameters};

const LOCAL: Local<'static> = Local {
    data_dir: "/var/lib/postgresql/data/pgdata",
    socket_dir: "/var/lib/postgresql/data",
    port: 5432,
    user: "backup",
    work_dir: "/var/lib/postgresql/data/pgbackrest",
};

fn s3(extra: &[(&str, &str)]) -> S3Parameters {
    let mut bag: charm::Databag = [
        ("bucket", "backups"),
        ("access-key", "AKIAEXAMPLE"),
        ("secret-key", "wJalrEXAMPLE"),
        ("endpoint", "https://s3.example.com"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    bag.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    match parse(&bag) {
        Ok(Parameters::Ready(p)) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_stanza_is_named_as_the_reference_charm_names_it() {
    assert_eq!(
        stanza("prod", "postgresql-k8s"),
        "prod.patroni-postgresql-k8s"
    );
}

#[test]
fn an_https_endpoint_gives_its_host_and_port() {
    assert_eq!(
        Endpoint::parse("https://s3.example.com"),
        Ok(Endpoint {
            host: "s3.example.com".into(),
            port: 443
        })
    );
    assert_eq!(
        Endpoint::parse("https://localhost:9000"),
        Ok(Endpoint {
            host: "localhost".into(),
            port: 9000
        })
    );
}

#[test]
fn an_endpoint_pgbackrest_cannot_use_is_refused_with_the_fix() {
    assert_eq!(
        Endpoint::parse("http://minio:9000"),
        Err(EndpointError::PlainHttp)
    );
    assert_eq!(
        Endpoint::parse("https://10.1.2.3:9000"),
        Err(EndpointError::Address)
    );
    assert_eq!(
        Endpoint::parse("https://[::1]:9000"),
        Err(EndpointError::Address)
    );
    for bad in [
        "https://host/prefix",
        "https://host:0",
        "https://host:x",
        "s3://h",
    ] {
        assert_eq!(Endpoint::parse(bad), Err(EndpointError::Shape), "{bad}");
    }
    assert!(EndpointError::PlainHttp
        .to_string()
        .contains("https endpoint"));
}

#[test]
fn the_configuration_names_the_repository_and_this_cluster() {
    let conf = render(
        &s3(&[
            ("endpoint", "https://localhost:9000"),
            ("path", "pg/prod"),
            ("s3-uri-style", "path"),
            ("delete-older-than-days", "7"),
        ]),
        "m.patroni-pg",
        &LOCAL,
        Some("/var/lib/postgresql/data/pgbackrest/ca.pem"),
        None,
    )
    .unwrap();
    assert!(!conf.contains("tls-server"), "no TLS server without TLS");
    for line in [
        "[global]",
        "repo1-type=s3",
        "repo1-path=/pg/prod",
        "repo1-s3-bucket=backups",
        "repo1-s3-endpoint=localhost",
        "repo1-storage-port=9000",
        "repo1-s3-region=us-east-1",
        "repo1-s3-uri-style=path",
        "repo1-s3-key=AKIAEXAMPLE",
        "repo1-s3-key-secret=wJalrEXAMPLE",
        "repo1-storage-ca-file=/var/lib/postgresql/data/pgbackrest/ca.pem",
        "repo1-retention-full-type=time",
        "repo1-retention-full=7",
        "[m.patroni-pg]",
        "pg1-path=/var/lib/postgresql/data/pgdata",
        "pg1-socket-path=/var/lib/postgresql/data",
        "pg1-port=5432",
        "pg1-user=backup",
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "{line} missing from:\n{conf}"
        );
    }
    let global = conf.find("[global]").unwrap();
    let section = conf.find("[m.patroni-pg]").unwrap();
    let key = conf.find("repo1-s3-key=").unwrap();
    assert!(global < key && key < section, "the repository is global");
}

#[test]
fn without_retention_or_ca_nothing_is_said_of_them() {
    let conf = render(
        &s3(&[("region", "eu-west-1")]),
        "m.patroni-pg",
        &LOCAL,
        None,
        None,
    )
    .unwrap();
    assert!(conf.contains("repo1-s3-region=eu-west-1\n"));
    assert!(!conf.contains("repo1-retention-full"));
    assert!(!conf.contains("ca-file"));
    assert!(conf.contains("repo1-storage-port=443\n"));
}

#[test]
fn a_plain_http_endpoint_renders_nothing() {
    assert_eq!(
        render(
            &s3(&[("endpoint", "http://h:9000")]),
            "s",
            &LOCAL,
            None,
            None
        ),
        Err(EndpointError::PlainHttp)
    );
}

const TLS: TlsFiles<'static> = TlsFiles {
    ca: "/p/tls-ca.pem",
    cert: "/p/tls-cert.pem",
    key: "/p/tls-key.pem",
};

#[test]
fn with_tls_the_unit_serves_its_stanza_to_the_other_units_alone() {
    let server = Server {
        address: "10.1.2.3",
        files: TLS,
        peers: vec!["pg-1.pg-endpoints".into(), "pg-2.pg-endpoints".into()],
    };
    let conf = render(&s3(&[]), "m.patroni-pg", &LOCAL, None, Some(&server)).unwrap();
    let section = conf.find("[m.patroni-pg]").unwrap();
    for line in [
        "tls-server-address=10.1.2.3",
        "tls-server-port=8432",
        "tls-server-ca-file=/p/tls-ca.pem",
        "tls-server-cert-file=/p/tls-cert.pem",
        "tls-server-key-file=/p/tls-key.pem",
        "tls-server-auth=pg-1.pg-endpoints=m.patroni-pg",
        "tls-server-auth=pg-2.pg-endpoints=m.patroni-pg",
    ] {
        let at = conf
            .find(&format!("{line}\n"))
            .unwrap_or_else(|| panic!("{line}:\n{conf}"));
        assert!(at < section, "{line} is global");
    }
}

#[test]
fn a_backup_from_a_standby_names_the_other_member_on_its_command_line() {
    let options = standby_options(&Remote {
        address: "10.1.2.4",
        local: &LOCAL,
        config: "/var/lib/postgresql/data/pgbackrest.conf",
        files: TLS,
    });
    for option in [
        "--backup-standby",
        "--pg2-host=10.1.2.4",
        "--pg2-host-type=tls",
        "--pg2-host-port=8432",
        "--pg2-host-config=/var/lib/postgresql/data/pgbackrest.conf",
        "--pg2-host-ca-file=/p/tls-ca.pem",
        "--pg2-host-cert-file=/p/tls-cert.pem",
        "--pg2-host-key-file=/p/tls-key.pem",
        "--pg2-path=/var/lib/postgresql/data/pgdata",
        "--pg2-socket-path=/var/lib/postgresql/data",
        "--pg2-port=5432",
        "--pg2-user=backup",
    ] {
        assert!(options.iter().any(|o| o == option), "{option}: {options:?}");
    }
}

#[test]
fn the_new_backups_label_is_read_from_the_console() {
    let console = "2026-12-06 21:21:11.001 P00   INFO: execute non-exclusive backup start\n\
                   2026-12-06 21:21:19.502 P00   INFO: new backup label = 20261206-212111F\n\
                   2026-12-06 21:21:19.600 P00   INFO: full backup size = 1.1GB\n";
    assert_eq!(
        new_backup_label(console).as_deref(),
        Some("20261206-212111F")
    );
    assert_eq!(new_backup_label("WARN: nothing\n"), None);
}

#[test]
fn command_lines_carry_no_key() {
    let argv = command("/conf", "m.patroni-pg", "backup", &["--type=diff"]);
    assert_eq!(
        argv,
        [
            "pgbackrest",
            "--config=/conf",
            "--stanza=m.patroni-pg",
            "backup",
            "--type=diff"
        ]
    );
    assert_eq!(
        archive_command("/conf", "m.patroni-pg"),
        "pgbackrest --config=/conf --stanza=m.patroni-pg archive-push %p"
    );
}

#[test]
fn backup_types_are_the_actions_words() {
    assert_eq!(BackupType::parse("full"), Ok(BackupType::Full));
    assert_eq!(
        BackupType::parse("differential").unwrap().pgbackrest(),
        "diff"
    );
    assert_eq!(
        BackupType::parse("incremental").unwrap().pgbackrest(),
        "incr"
    );
    assert_eq!(
        BackupType::parse("diff"),
        Err("Invalid backup type: diff. Possible values: full, differential, incremental.".into())
    );
}

/// `pgbackrest info --output=json` as pgBackRest 2.45 wrote it for a full
/// backup and a differential on top, with another cluster's stanza beside.
const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000005","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000003","stop":"000000010000000000000003"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":23066290,"repository":{"delta":2813854,"size":2813854},"size":23066290},"label":"20261206-025743F","lsn":{"start":"0/3000028","stop":"0/3000100"},"prior":null,"reference":null,"timestamp":{"start":1796525863,"stop":1796525872},"type":"full"},{"archive":{"start":"00000002000000000000000A","stop":"00000002000000000000000A"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":1024,"repository":{"delta":512,"size":512},"size":23066290},"label":"20261206-025743F_20261206-030000D","lsn":{"start":"0/A000028","stop":"0/A000100"},"prior":"20261206-025743F","reference":["20261206-025743F"],"timestamp":{"start":1796527200,"stop":1796527203},"type":"diff"}],"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7716018162804332722,"version":"15"}],"name":"m.patroni-pg","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}},{"archive":[],"backup":[],"cipher":"none","db":[],"name":"other.patroni-pg","repo":[],"status":{"code":1,"message":"missing stanza path"}}]"#;

#[test]
fn info_gives_the_backups_oldest_first_with_their_reference() {
    let info = parse_info(INFO, "m.patroni-pg")
        .unwrap()
        .expect("the stanza");
    assert_eq!(info.status, (0, "ok".into()));
    assert_eq!(info.system_id, Some(7716018162804332722));
    assert_eq!(info.other_stanzas, ["other.patroni-pg"]);
    let [full, diff] = info.backups.as_slice() else {
        panic!("{:?}", info.backups)
    };
    assert_eq!(full.id, backup_id(1796525863));
    assert_eq!(full.kind, BackupType::Full);
    assert_eq!(full.reference, None);
    assert_eq!(full.timeline, 1);
    assert_eq!(full.size, 23066290);
    assert_eq!(diff.kind, BackupType::Differential);
    assert_eq!(diff.reference.as_deref(), Some(full.id.as_str()));
    assert_eq!(diff.timeline, 2);
    assert_eq!(diff.repository_size, 512);
}

#[test]
fn info_without_this_stanza_is_none_and_garbage_is_an_error() {
    assert_eq!(parse_info(INFO, "absent").unwrap(), None);
    let missing = r#"[{"name":"m.patroni-pg","status":{"code":1,"message":"missing stanza path"},"backup":[],"db":[]}]"#;
    assert_eq!(
        parse_info(missing, "m.patroni-pg").unwrap(),
        None,
        "pgBackRest lists a stanza asked about as missing"
    );
    assert_eq!(parse_info("[]", "m.patroni-pg").unwrap(), None);
    assert!(parse_info("ERROR: [049]", "m.patroni-pg").is_err());
}

#[test]
fn the_table_has_a_row_a_backup() {
    let info = parse_info(INFO, "m.patroni-pg").unwrap().unwrap();
    let text = table(&info.backups);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("backup-id"));
    assert!(lines[2].starts_with(&info.backups[0].id));
    assert!(lines[2].contains("| full "));
    assert!(lines[2].contains("22.0MB"));
    assert!(lines[3].contains("| differential "));
    assert!(lines[3].contains(&format!("| {} ", info.backups[0].id)));
}

#[test]
fn a_repository_that_cannot_be_read_says_why() {
    // As pgBackRest 2.45 answers `info` for a bucket that does not exist.
    let missing = r#"[{"archive":[],"backup":[],"db":[],"name":"[invalid]","repo":[{"key":1,"status":{"code":99,"message":"[ProtocolError] HTTP request failed with 404 (NOT FOUND):\n*** Response Content ***:\n<?xml version=\"1.0\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"}}],"status":{"code":99,"message":"other"}}]"#;
    assert_eq!(
        repository_error(missing).as_deref(),
        Some("NoSuchBucket: The specified bucket does not exist")
    );
    let refused = r#"[{"name":"[invalid]","repo":[{"status":{"code":99,"message":"[HostConnectError] unable to connect to 'localhost:1'\nmore"}}]}]"#;
    assert_eq!(
        repository_error(refused).as_deref(),
        Some("[HostConnectError] unable to connect to 'localhost:1'")
    );
    assert_eq!(repository_error("[]"), None);
    assert_eq!(repository_error(INFO), None);
}
