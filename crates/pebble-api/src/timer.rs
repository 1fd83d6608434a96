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
}
