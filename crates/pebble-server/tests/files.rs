//! The files API on the container's root, through `PebbleClient`.

#![allow(clippy::unwrap_used)]

mod common;

use common::Harness;
use pebble_api::{FileOptions, Pebble, PebbleError};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn push_and_pull_keep_bytes_and_modes() {
    let mut h = Harness::new(false);
    let content: Vec<u8> = b"line one\r\nline two\r\n--boundary-like\r\n\0\xff\xfe"
        .iter()
        .copied()
        .chain((0..=255u8).cycle().take(100_000))
        .collect();
    let options = FileOptions {
        permissions: Some(0o600),
        make_parents: true,
        ..Default::default()
    };
    h.client
        .push("/var/lib/app/data.bin", &content, &options)
        .unwrap();
    let host = h.host("/var/lib/app/data.bin");
    assert_eq!(
        std::fs::read(&host).unwrap(),
        content,
        "stored under the root"
    );
    assert_eq!(mode(&host), 0o600);
    assert_eq!(mode(&h.host("/var/lib/app")), 0o755, "parents made");
    assert_eq!(h.client.pull("/var/lib/app/data.bin").unwrap(), content);

    // Default mode, overwrite.
    h.client
        .push("/var/lib/app/data.bin", b"new", &FileOptions::default())
        .unwrap();
    assert_eq!(h.client.pull("/var/lib/app/data.bin").unwrap(), b"new");
    assert_eq!(mode(&host), 0o644);

    // No parent and no make-dirs: a per-path error.
    let err = h
        .client
        .push("/nope/x", b"x", &FileOptions::default())
        .unwrap_err();
    assert!(
        matches!(&err, PebbleError::Path { path, .. } if path == "/nope/x"),
        "{err}"
    );

    let err = h.client.pull("/var/lib/app/missing").unwrap_err();
    let PebbleError::Path { path, message } = &err else {
        panic!("{err}");
    };
    assert_eq!(path, "/var/lib/app/missing");
    assert!(message.contains("no such file"), "{message}");
    let err = h.client.pull("/var/lib/app").unwrap_err();
    assert!(matches!(err, PebbleError::Path { .. }), "{err}");
}

#[test]
fn paths_cannot_leave_the_root() {
    let mut h = Harness::new(false);
    let err = h
        .client
        .push("/../../escape.txt", b"x", &FileOptions::default())
        .unwrap_err();
    assert!(matches!(err, PebbleError::Path { .. }), "{err}");
    assert!(!h.dir.path().join("escape.txt").exists());
    assert!(!std::path::Path::new("/escape.txt").exists());
    let err = h.client.pull("/../../etc/passwd").unwrap_err();
    assert!(matches!(err, PebbleError::Path { .. }), "{err}");
    let err = h
        .client
        .push("relative", b"x", &FileOptions::default())
        .unwrap_err();
    assert!(matches!(err, PebbleError::Path { .. }), "{err}");
}

#[test]
fn list_make_dirs_and_remove() {
    let mut h = Harness::new(false);
    let parents = FileOptions {
        make_parents: true,
        ..Default::default()
    };
    for name in ["a.ini", "b.ini", "c.txt"] {
        h.client
            .push(&format!("/etc/app/{name}"), name.as_bytes(), &parents)
            .unwrap();
    }
    h.client
        .make_dir(
            "/etc/app/sub/deeper",
            &FileOptions {
                permissions: Some(0o700),
                make_parents: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(mode(&h.host("/etc/app/sub/deeper")), 0o700);
    // Without make-parents: an existing directory is an error, a missing parent too.
    assert!(h
        .client
        .make_dir("/etc/app/sub", &FileOptions::default())
        .is_err());
    assert!(h.client.make_dir("/x/y", &FileOptions::default()).is_err());
    h.client.make_dir("/etc/app/sub", &parents).unwrap();

    let all = h.client.list_files("/etc/app", None).unwrap();
    let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a.ini", "b.ini", "c.txt", "sub"]);
    let a = &all[0];
    assert_eq!(a.path, "/etc/app/a.ini");
    assert_eq!(a.kind, "file");
    assert_eq!(a.size, Some(5));
    assert_eq!(a.permissions, "644");
    let me = std::fs::metadata(h.host("/etc/app/a.ini")).unwrap().uid();
    if me == 0 {
        assert_eq!(a.user.as_deref(), Some("root"));
    }
    assert_eq!(all[3].kind, "directory");

    let ini = h.client.list_files("/etc/app", Some("*.ini")).unwrap();
    let names: Vec<&str> = ini.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a.ini", "b.ini"]);
    let one = h.client.list_files("/etc/app/c.txt", None).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].path, "/etc/app/c.txt");

    let err = h.client.list_files("/etc/none", None).unwrap_err();
    assert!(
        matches!(&err, PebbleError::Api { status_code: 404, kind, .. } if kind == "not-found"),
        "{err}"
    );

    // Removing a non-empty directory needs recursive.
    let err = h.client.remove_path("/etc/app", false).unwrap_err();
    assert!(matches!(err, PebbleError::Path { .. }), "{err}");
    h.client.remove_path("/etc/app/c.txt", false).unwrap();
    assert!(!h.host("/etc/app/c.txt").exists());
    h.client.remove_path("/etc/app", true).unwrap();
    assert!(!h.host("/etc/app").exists());
    let err = h.client.remove_path("/etc/app", false).unwrap_err();
    assert!(matches!(err, PebbleError::Path { .. }), "{err}");
}

#[test]
fn ownership_applies_when_root() {
    assert!(
        common::is_root(),
        "ownership needs root (run the tests as root, as CI does)"
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let uid: u32 = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .and_then(|l| l.split(':').nth(2)?.parse().ok())
        .expect("a postgres user (scripts/install-deps installs PostgreSQL, which creates it)");
    let mut h = Harness::new(false);
    let options = FileOptions {
        permissions: Some(0o400),
        user: Some("postgres".into()),
        group: Some("postgres".into()),
        make_parents: true,
    };
    h.client
        .push(
            "/var/lib/pgbouncer/instance_0/pgbouncer.ini",
            b"[pgbouncer]\n",
            &options,
        )
        .unwrap();
    let meta = std::fs::metadata(h.host("/var/lib/pgbouncer/instance_0/pgbouncer.ini")).unwrap();
    assert_eq!(meta.uid(), uid);
    assert_eq!(meta.permissions().mode() & 0o777, 0o400);
    assert_eq!(
        std::fs::metadata(h.host("/var/lib/pgbouncer"))
            .unwrap()
            .uid(),
        uid,
        "made parents get the owner too"
    );
    let listed = h
        .client
        .list_files("/var/lib/pgbouncer/instance_0", None)
        .unwrap();
    assert_eq!(listed[0].user.as_deref(), Some("postgres"));
    assert_eq!(listed[0].permissions, "400");
}
