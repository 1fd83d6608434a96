//! Packed charms (`.charm` files, zips as `charmcraft pack` writes them) on the
//! controller: one deploys and refreshes as its directory does, unpacked with
//! its files' modes; one without an executable `dispatch`, or with an entry
//! outside the charm's directory or a link, is refused with nothing changed in
//! the model and nothing written outside it. And `scripts/pack-charm`, which
//! `scripts/build-charms` packs the charms with, lays an archive out as
//! charmcraft does (modes, manifest, name) and refuses a charm without an
//! executable `dispatch`.

#![allow(clippy::unwrap_used)]

use local_model::charm_archive::{self, ArchiveError};
use local_model::controller::Controller;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

fn controller(scratch: &TempDir) -> Controller {
    Controller::new(
        &scratch.path().join("controller"),
        Path::new(env!("CARGO_BIN_EXE_hook-tool")),
        true,
    )
    .unwrap()
}

/// An archive entry: its name, Unix mode and contents.
type Entry<'a> = (&'a str, u32, &'a str);

/// Writes a zip of `entries` at `path`, deflated, each with its Unix mode in
/// the entry's external attributes (as charmcraft's zips carry them).
fn zip(path: &Path, entries: &[Entry]) -> PathBuf {
    let mut zip = ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, mode, text) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(*mode);
        zip.start_file(*name, options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    path.to_path_buf()
}

const METADATA: &str = "name: packed\nsummary: A packed test charm\ndescription: packed\n";

/// A shell charm's `dispatch`: the unit's status says the charm's `version` file.
const DISPATCH: &str = "#!/bin/sh\nstatus-set active \"version $(cat version)\"\n";

/// A packed shell charm whose `version` file (in a subdirectory's sibling,
/// beside a nested file) says `version`.
fn packed(scratch: &TempDir, version: &str) -> PathBuf {
    zip(
        &scratch.path().join(format!("packed-{version}.charm")),
        &[
            ("metadata.yaml", 0o644, METADATA),
            (
                "config.yaml",
                0o644,
                "options:\n  colour:\n    type: string\n",
            ),
            ("dispatch", 0o755, DISPATCH),
            ("version", 0o644, version),
            ("src/alert.rules", 0o644, "groups: []\n"),
        ],
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn unit_status(c: &Controller, unit: &str) -> charm::Status {
    c.model.unit(unit).unwrap().status.clone()
}

#[test]
fn a_packed_charm_deploys_and_refreshes_unpacked_with_its_modes() {
    let scratch = TempDir::with_prefix("lm-archive-deploy-").unwrap();
    let mut c = controller(&scratch);
    c.deploy(&packed(&scratch, "1"), "app", 1, &[("colour", "blue")])
        .unwrap();
    c.settle().unwrap();
    assert_eq!(
        unit_status(&c, "app/0"),
        charm::Status::Active("version 1".into())
    );

    let stored = scratch.path().join("controller/charms/app");
    assert_eq!(mode(&stored.join("dispatch")), 0o700);
    assert_eq!(mode(&stored.join("metadata.yaml")), 0o600);
    assert_eq!(mode(&stored.join("src")), 0o700);
    assert_eq!(
        std::fs::read_to_string(stored.join("src/alert.rules")).unwrap(),
        "groups: []\n"
    );
    assert!(!scratch
        .path()
        .join("controller/charms/.app.partial")
        .exists());

    assert_eq!(c.refresh("app", &packed(&scratch, "2")).unwrap(), 1);
    let ran: Vec<String> = c
        .settle()
        .unwrap()
        .into_iter()
        .map(|(u, r)| {
            assert!(r.ok, "{u}: {}", r.output);
            format!("{u} {}", r.event.hook_name())
        })
        .collect();
    assert_eq!(ran, ["app/0 upgrade-charm", "app/0 config-changed"]);
    assert_eq!(
        unit_status(&c, "app/0"),
        charm::Status::Active("version 2".into())
    );
}

#[test]
fn a_charm_without_an_executable_dispatch_is_refused_and_nothing_changes() {
    let scratch = TempDir::with_prefix("lm-archive-unbuilt-").unwrap();
    let mut c = controller(&scratch);
    let source = scratch.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("metadata.yaml"), METADATA).unwrap();
    let unbuilt = [
        zip(
            &scratch.path().join("none.charm"),
            &[("metadata.yaml", 0o644, METADATA)],
        ),
        zip(
            &scratch.path().join("not-executable.charm"),
            &[
                ("metadata.yaml", 0o644, METADATA),
                ("dispatch", 0o644, DISPATCH),
            ],
        ),
        source,
    ];
    for charm in &unbuilt {
        let refused = c.deploy(charm, "app", 1, &[]).unwrap_err().to_string();
        assert!(
            refused.contains(&charm.display().to_string())
                && refused.contains("no executable `dispatch`")
                && refused.contains("scripts/build-charms"),
            "{refused}"
        );
        assert!(c.model.applications.is_empty());
        assert!(!scratch.path().join("controller/charms/app").exists());
    }

    // Refreshed to one, the application keeps its charm.
    c.deploy(&packed(&scratch, "1"), "app", 1, &[]).unwrap();
    c.settle().unwrap();
    for charm in &unbuilt {
        let refused = c.refresh("app", charm).unwrap_err().to_string();
        assert!(refused.contains("no executable `dispatch`"), "{refused}");
    }
    assert_eq!(c.model.applications["app"].charm_revision, 0);
    let stored = scratch.path().join("controller/charms/app");
    assert_eq!(
        std::fs::read_to_string(stored.join("version")).unwrap(),
        "1"
    );
    assert!(c.settle().unwrap().is_empty(), "no upgrade-charm to run");
}

#[test]
fn an_entry_outside_the_charm_or_a_link_is_refused_and_nothing_is_written() {
    let scratch = TempDir::with_prefix("lm-archive-slip-").unwrap();
    let outside = scratch.path().join("escaped");
    let absolute = outside.display().to_string();
    let mut c = controller(&scratch);
    // Each name, unpacked into `controller/unpacked`, would be `escaped`.
    for name in ["../../escaped", "src/../../../escaped", absolute.as_str()] {
        let archive = zip(
            &scratch.path().join("slip.charm"),
            &[
                ("metadata.yaml", 0o644, METADATA),
                ("dispatch", 0o755, DISPATCH),
                (name, 0o644, "written outside"),
            ],
        );
        let refused = c.deploy(&archive, "app", 1, &[]).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("{name:?} is not a path inside the charm")),
            "{refused}"
        );
        // Unpacked straight (as the controller would, had it not looked
        // first), it stops at that entry too.
        let into = scratch.path().join("controller/unpacked");
        let unpacked = charm_archive::unpack(&archive, &into);
        assert!(
            matches!(&unpacked, Err(ArchiveError::Escapes(n)) if n == name),
            "{unpacked:?}"
        );
        std::fs::remove_dir_all(&into).unwrap();
        assert!(!outside.exists(), "{name} was written outside the charm");
        assert!(c.model.applications.is_empty());
        assert!(!scratch.path().join("controller/charms/app").exists());
    }

    let mut zip = ZipWriter::new(std::fs::File::create(scratch.path().join("link.charm")).unwrap());
    let options = SimpleFileOptions::default();
    zip.start_file("metadata.yaml", options.unix_permissions(0o644))
        .unwrap();
    zip.write_all(METADATA.as_bytes()).unwrap();
    zip.start_file("dispatch", options.unix_permissions(0o755))
        .unwrap();
    zip.write_all(DISPATCH.as_bytes()).unwrap();
    zip.add_symlink("src", "/", options).unwrap();
    zip.finish().unwrap();
    let refused = c
        .deploy(&scratch.path().join("link.charm"), "app", 1, &[])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("\"src\" is a symbolic link"), "{refused}");
    assert!(c.model.applications.is_empty());
}

#[test]
fn a_file_that_is_not_a_zip_is_refused_as_no_charm_archive() {
    let scratch = TempDir::with_prefix("lm-archive-notzip-").unwrap();
    let mut c = controller(&scratch);
    let file = scratch.path().join("notes.charm");
    std::fs::write(&file, "not a zip").unwrap();
    let refused = c.deploy(&file, "app", 1, &[]).unwrap_err().to_string();
    assert!(
        refused.contains("it is not a charm archive (a zip file)"),
        "{refused}"
    );
    assert!(c.model.applications.is_empty());
}

/// This machine's architecture as charmcraft names it.
fn charm_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64el",
        other => other,
    }
}

/// Runs `scripts/pack-charm` on a charm directory and its project directory.
fn pack_charm(charm: &Path, project: &Path, out: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pack-charm");
    std::process::Command::new("python3")
        .arg(script)
        .args([charm, project, out])
        .output()
        .unwrap()
}

#[test]
fn a_charm_packed_by_the_repositorys_packer_is_laid_out_as_charmcraft_lays_it_out_and_deploys() {
    let scratch = TempDir::with_prefix("lm-archive-packer-").unwrap();
    let arch = charm_architecture();
    let project = scratch.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("charmcraft.yaml"),
        format!("type: charm\nplatforms:\n  ubuntu@22.04:other:\n  ubuntu@24.04:{arch}:\n"),
    )
    .unwrap();
    let charm = scratch.path().join("packed");
    std::fs::create_dir_all(charm.join("src")).unwrap();
    std::fs::write(charm.join("metadata.yaml"), METADATA).unwrap();
    std::fs::write(charm.join("version"), "packed").unwrap();
    std::fs::write(charm.join("src/alert.rules"), "groups: []\n").unwrap();
    std::fs::write(charm.join("dispatch"), DISPATCH).unwrap();
    let out = scratch.path().join("out");

    // Not yet executable: refused, and no archive.
    let refused = pack_charm(&charm, &project, &out);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no executable dispatch"), "{stderr}");
    assert!(!out.exists());

    std::fs::set_permissions(
        charm.join("dispatch"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let packed = pack_charm(&charm, &project, &out);
    assert!(
        packed.status.success(),
        "{}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let archive = out.join(format!("packed_ubuntu@24.04-{arch}.charm"));
    assert_eq!(
        String::from_utf8(packed.stdout).unwrap().trim(),
        archive.display().to_string()
    );

    let mut zip = zip::ZipArchive::new(std::fs::File::open(&archive).unwrap()).unwrap();
    let mut names: Vec<String> = zip.file_names().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dispatch",
            "manifest.yaml",
            "metadata.yaml",
            "src/alert.rules",
            "version"
        ]
    );
    let dispatch = zip.by_name("dispatch").unwrap();
    assert_eq!(dispatch.unix_mode(), Some(0o100755));
    assert_eq!(dispatch.compression(), CompressionMethod::Deflated);
    drop(dispatch);
    let mut manifest = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("manifest.yaml").unwrap(), &mut manifest)
        .unwrap();
    let manifest: serde_json::Value = yaml_serde::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["bases"],
        serde_json::json!([{"name": "ubuntu", "channel": "24.04", "architectures": [arch]}])
    );
    assert!(manifest["charmcraft-version"].is_string());
    assert!(manifest["charmcraft-started-at"].is_string());
    assert_eq!(
        manifest["analysis"]["attributes"],
        serde_json::json!([
            {"name": "language", "result": "unknown"},
            {"name": "framework", "result": "unknown"}
        ])
    );

    let mut c = controller(&scratch);
    c.deploy(&archive, "app", 1, &[]).unwrap();
    c.settle().unwrap();
    assert_eq!(
        unit_status(&c, "app/0"),
        charm::Status::Active("version packed".into())
    );
    // `juju status` shows the base the manifest names.
    let base = &c.full_status().applications["app"].base;
    assert_eq!(
        (base.name.as_str(), base.channel.as_str()),
        ("ubuntu", "24.04")
    );
}
