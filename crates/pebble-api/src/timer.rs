//! A one-shot timer that wakes a charm: a service that sleeps, then records a
//! Pebble custom notice (which runs the charm's
//! `<container>-pebble-custom-notice` hook) and exits. Arming it again
//! replaces the pending one.

use crate::{ensure_service, FileOptions, Layer, Pebble, PebbleResult, Service};

/// The timer's script (`<script> <seconds> <key> <id>`): sleeps, then records
/// the notice `key` with `id` as data, with Juju's `pebble` when the
/// container has it, else by a POST to the Pebble socket inside the
/// container. It holds no secret.
pub const SCRIPT: &str = r#"#!/bin/sh
# A one-shot timer: <seconds> <key> <id>. Records a Pebble custom notice, which
# runs the charm's pebble-custom-notice hook.
sleep "$1"
if [ -x /charm/bin/pebble ]; then
    exec /charm/bin/pebble notify "$2" id="$3"
fi
exec python3 - "$2" "$3" <<'EOF'
import json, os, socket, sys
key, ident = sys.argv[1:3]
body = json.dumps({"action": "add", "type": "custom", "key": key, "data": {"id": ident}}).encode()
head = "POST /v1/notices HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
sockets = [os.environ.get("PEBBLE_SOCKET"), "/charm/container/pebble.socket",
           "/var/lib/pebble/default/.pebble.socket"]
for path in filter(None, sockets):
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(head.encode() + body)
            if s.recv(4096).split(b" ", 2)[1:2] == [b"200"]:
                sys.exit(0)
    except OSError:
        pass
sys.exit("cannot record the notice " + key)
EOF
"#;

/// One timer: its service, where its script lives in the container, and the
/// notice it records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer<'a> {
    /// The service's name.
    pub service: &'a str,
    /// The script's path in the container.
    pub script: &'a str,
    /// The notice's key.
    pub key: &'a str,
}

impl Timer<'_> {
    /// The timer's layer: the service runs once (`ignore` on exit), not at
    /// startup; `id` (no spaces) comes back as the notice's `id`.
    pub fn layer(&self, seconds: u64, id: &str) -> Layer {
        let mut layer = Layer {
            summary: format!("timer {}", self.service),
            description: format!("records the notice {} once", self.key),
            ..Layer::default()
        };
        layer.services.insert(
            self.service.into(),
            Service {
                r#override: "replace".into(),
                summary: format!("records {} after a delay", self.key),
                command: format!("{} {seconds} {} {id}", self.script, self.key),
                startup: "disabled".into(),
                on_success: "ignore".into(),
                on_failure: "ignore".into(),
                ..Service::default()
            },
        );
        layer
    }

    /// Arms the timer: the notice is recorded with `id` in `seconds` (a timer
    /// still pending is replaced). Writes the script when it differs.
    pub fn arm(&self, pebble: &mut dyn Pebble, seconds: u64, id: &str) -> PebbleResult<()> {
        if pebble.read_text(self.script)?.as_deref() != Some(SCRIPT) {
            let options = FileOptions {
                permissions: Some(0o755),
                make_parents: true,
                ..FileOptions::default()
            };
            pebble.push(self.script, SCRIPT.as_bytes(), &options)?;
        }
        ensure_service(pebble, self.service, &self.layer(seconds, id), true)?;
        Ok(())
    }

    /// Disarms the timer: its service stopped if it still runs.
    pub fn disarm(&self, pebble: &mut dyn Pebble) -> PebbleResult<()> {
        if pebble.plan()?.services.contains_key(self.service)
            && pebble
                .services(&[self.service])?
                .iter()
                .any(|s| s.is_running())
        {
            pebble.stop(&[self.service])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_runs_the_script_once_with_its_arguments() {
        let timer = Timer {
            service: "t",
            script: "/x/timer",
            key: "example.com/k",
        };
        let layer = timer.layer(30, "42");
        let service = &layer.services["t"];
        assert_eq!(service.command, "/x/timer 30 example.com/k 42");
        assert_eq!(
            (service.on_success.as_str(), service.on_failure.as_str()),
            ("ignore", "ignore")
        );
        assert_eq!(service.startup, "disabled");
    }

    /// The script, run as the service runs it, sleeps and then posts the
    /// notice to the Pebble socket named by `PEBBLE_SOCKET`.
    #[test]
    fn the_script_records_the_notice_on_the_pebble_socket() {
        use std::io::{Read, Write};
        assert!(
            !std::path::Path::new("/charm/bin/pebble").exists(),
            "this test exercises the fallback without Juju's pebble"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("timer");
        std::fs::write(&script, SCRIPT).unwrap();
        let socket = dir.path().join("pebble.socket");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut chunk = [0; 4096];
            while !String::from_utf8_lossy(&request).contains("}}") {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "request cut short");
                request.extend_from_slice(&chunk[..n]);
            }
            let body = r#"{"type":"sync","status-code":200,"status":"OK","result":{"id":"1"}}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        let out = std::process::Command::new("sh")
            .arg(&script)
            .args(["0", "example.com/timer", "42"])
            .env("PEBBLE_SOCKET", &socket)
            .output()
            .unwrap();
        let request = server.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /v1/notices HTTP/1.1\r\n"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "action": "add", "type": "custom", "key": "example.com/timer",
                "data": {"id": "42"},
            })
        );
    }
}
