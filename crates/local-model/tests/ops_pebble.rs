//! `ops.pebble.Client`, from the `ops` package, drives the Pebble server: system
//! info, a layer, a service started by replan, a file pushed and pulled, and a
//! signal that reaches the service.

mod common;

use common::venv;
use pebble_server::{PebbleServer, ServerConfig};
use std::process::Command;
use tempfile::TempDir;

const SCRIPT: &str = r#"
import sys, time
import ops.pebble as pebble

socket, root = sys.argv[1], sys.argv[2]
client = pebble.Client(socket_path=socket)
assert client.get_system_info().version
client.push("/trap.sh", f"trap 'echo hup >> {root}/hup.log' HUP\nwhile true; do sleep 0.1; done\n", make_dirs=True, permissions=0o755)
layer = {"summary": "test", "services": {"svc": {"override": "replace", "command": f"/bin/sh {root}/trap.sh", "startup": "enabled"}}}
client.add_layer("test", layer, combine=True)
assert "svc" in client.get_plan().services
client.replan_services()
assert client.get_services(["svc"])[0].is_running()
client.push("/data/x.txt", "hello\r\nworld", make_dirs=True, permissions=0o600)
assert client.pull("/data/x.txt").read() == "hello\r\nworld"
assert [f.name for f in client.list_files("/data")] == ["x.txt"]
client.send_signal("SIGHUP", ["svc"])
for _ in range(50):
    try:
        if "hup" in open(f"{root}/hup.log").read():
            break
    except FileNotFoundError:
        pass
    time.sleep(0.1)
else:
    raise SystemExit("the service never got SIGHUP")
client.stop_services(["svc"])
assert not client.get_services(["svc"])[0].is_running()
print("ok")
"#;

#[test]
fn ops_pebble_client_drives_the_server() {
    let python = venv();
    let scratch = TempDir::with_prefix("lm-ops-pebble-").unwrap();
    let socket = scratch.path().join("pebble.socket");
    let root = scratch.path().join("root");
    let _server = PebbleServer::start(ServerConfig {
        socket: socket.clone(),
        root: root.clone(),
        sandbox: false,
        image: None,
        pebble_cli: None,
    })
    .unwrap();
    let root = root.canonicalize().unwrap();
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&socket)
        .arg(&root)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("data/x.txt")).unwrap(),
        "hello\r\nworld"
    );
}
