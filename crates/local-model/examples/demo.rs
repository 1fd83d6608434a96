//! The main job, for now: deploys the example charm and the PgBouncer charm on the
//! local model, with real processes in sandboxed containers, shows each hook as it
//! runs, and prints the status the way `juju status` does.
//!
//! Run with `./scripts/run` (it builds the charms first).

use local_model::controller::Controller;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Packs a charm: its binary as `dispatch` beside its YAML files.
fn pack(out: &Path, name: &str, binary: &Path, files: &Path) -> std::io::Result<PathBuf> {
    let dir = out.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(binary, dir.join("dispatch"))?;
    for f in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        if files.join(f).exists() {
            std::fs::copy(files.join(f), dir.join(f))?;
        }
    }
    Ok(dir)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bins = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?
        .to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = std::env::temp_dir().join(format!("local-model-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let charms = root.join("charms");
    let example = pack(
        &charms,
        "example",
        &bins.join("example-charm"),
        &repo.join("crates/example-charm/charm"),
    )?;
    let pgbouncer = pack(
        &charms,
        "pgbouncer-k8s",
        &bins.join("pgbouncer-k8s"),
        &repo.join("charms/pgbouncer-k8s"),
    )?;
    // SAFETY: geteuid has no preconditions.
    let sandbox = unsafe { libc::geteuid() } == 0;
    let mut c = Controller::new(&root.join("controller"), &bins.join("hook-tool"), sandbox)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    println!("deploy example (1 unit, port {port}) and pgbouncer-k8s (2 units)");
    c.deploy(
        &example,
        "example",
        1,
        &[
            ("port", &port.to_string()),
            ("greeting", "hello from the local model"),
        ],
    )?;
    c.deploy(&pgbouncer, "pgbouncer-k8s", 2, &[])?;
    for (unit, run) in c.settle()? {
        let verdict = if run.ok { "ok" } else { "FAILED" };
        println!("  {unit:<18} {:<36} {verdict}", run.event.hook_name());
    }
    println!();
    print!("{}", c.status());
    let mut body = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        use std::io::Write;
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
        s.read_to_string(&mut body)?;
    }
    let served = body.lines().last().unwrap_or("(nothing)");
    println!("\nexample's workload answers on 127.0.0.1:{port}: {served}");
    drop(c);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
