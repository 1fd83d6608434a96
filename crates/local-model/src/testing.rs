//! For tests that run Python `ops` charms on the local model: a venv with `ops`,
//! the published data-platform libraries and the legacy `ops-lib-pgsql` from
//! PyPI (and moto with gunicorn, the tests' S3 server), and charm directories
//! packed the way charmcraft packs a Python charm.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the test charms need from PyPI, pinned.
pub const PACKAGES: &[&str] = &[
    "ops==3.9.0",
    "postgresql-charms-single-kernel==16.3.20",
    "dpcharmlibs-interfaces==1.2.2",
    "charmlibs-interfaces-tls-certificates==1.12.0",
    "jubilant==1.14.0",
    "ops-lib-pgsql==1.4",
    "pgconnstr==1.0.1",
    "moto[server]==5.2.6",
    "gunicorn==27.0.1",
];

/// The venv with [`PACKAGES`] under `dir` (made once; a file lock beside it keeps
/// test binaries that run at the same time from building it twice); returns its
/// python. Panics when PyPI cannot be reached: tests cannot go on without it.
pub fn venv(dir: &Path) -> PathBuf {
    let lock_path = dir.with_extension("lock");
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).expect("the venv's parent directory");
    }
    let lock = std::fs::File::create(&lock_path).expect("the venv's lock file");
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let want = PACKAGES.join(" ");
    if std::fs::read_to_string(dir.join(".ready")).ok().as_deref() != Some(&want) {
        let _ = std::fs::remove_dir_all(dir);
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir)
            .status()
            .expect("python3 runs");
        assert!(made.success(), "python3 -m venv {} failed", dir.display());
        let pip = Command::new(dir.join("bin/python3"))
            .args(["-m", "pip", "install", "-q"])
            .args(PACKAGES)
            .status()
            .expect("pip runs");
        assert!(
            pip.success(),
            "pip install {PACKAGES:?} failed (PyPI must be reachable)"
        );
        std::fs::write(dir.join(".ready"), &want).expect("the venv's marker");
    }
    dir.join("bin/python3")
}

/// Where the v0 data-platform library lives in the venv: the directory that
/// holds `charms/data_platform_libs/v0/data_interfaces.py`.
pub fn v0_lib_dir(python: &Path) -> PathBuf {
    let out = Command::new(python)
        .args([
            "-c",
            "import single_kernel_postgresql, os; \
             print(os.path.join(os.path.dirname(single_kernel_postgresql.__file__), 'lib'))",
        ])
        .output()
        .expect("the venv's python runs");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Packs the Python charm in `src` (its YAML files and `src/charm.py`) into
/// `dest`, with a `dispatch` like charmcraft's that runs it on `python` with
/// `pythonpath` added; returns `dest`.
pub fn pack_python(src: &Path, dest: &Path, python: &Path, pythonpath: &[PathBuf]) -> PathBuf {
    std::fs::create_dir_all(dest.join("src")).expect("the charm directory");
    for f in [
        "metadata.yaml",
        "config.yaml",
        "actions.yaml",
        "src/charm.py",
    ] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dest.join(f)).expect("a charm file");
        }
    }
    let mut path = String::from("lib:venv");
    for p in pythonpath {
        path.push(':');
        path.push_str(&p.display().to_string());
    }
    let dispatch = format!(
        "#!/bin/sh\nJUJU_DISPATCH_PATH=\"${{JUJU_DISPATCH_PATH:-$0}}\" PYTHONPATH={path} exec {} ./src/charm.py\n",
        python.display()
    );
    std::fs::write(dest.join("dispatch"), dispatch).expect("the dispatch script");
    std::fs::set_permissions(
        dest.join("dispatch"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("dispatch's mode");
    dest.to_path_buf()
}
