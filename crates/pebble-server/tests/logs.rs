//! Log forwarding to Loki targets, against a real server and a push receiver
//! on loopback.

// The test's helpers: a failure there fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{wait_until, Harness};
use pebble_api::Pebble;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Loki push receiver: every body it was sent, answered 204.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn serve(listener: TcpListener) -> Receiver {
        let receiver = Receiver::default();
        let bodies = Arc::clone(&receiver.bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(body) = read_push(stream) {
                    bodies.lock().unwrap().push(body);
                }
            }
        });
        receiver
    }

    /// Every line received: (labels, line).
    fn lines(&self) -> Vec<(Value, String)> {
        let mut out = Vec::new();
        for body in self.bodies.lock().unwrap().iter() {
            for stream in body["streams"].as_array().unwrap() {
                for value in stream["values"].as_array().unwrap() {
                    let ns = value[0].as_str().unwrap();
                    assert!(ns.parse::<u128>().unwrap() > 1_600_000_000_000_000_000);
                    let line = value[1].as_str().unwrap().to_string();
                    out.push((stream["stream"].clone(), line));
                }
            }
        }
        out
    }

    fn has(&self, line: &str) -> bool {
        self.lines().iter().any(|(_, l)| l == line)
    }
}

/// Reads one POST and answers 204; `None` for anything else.
fn read_push(mut stream: TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    assert!(
        request_line.starts_with("POST /loki/api/v1/push "),
        "{request_line}"
    );
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    stream
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        .ok()?;
    serde_json::from_slice(&body).ok()
}

fn target_layer(name: &str, port: u16, services: &str) -> String {
    format!(
        "log-targets:\n  {name}:\n    override: replace\n    type: loki\n    location: http://127.0.0.1:{port}/loki/api/v1/push\n    services: {services}\n    labels: {{juju_unit: app/0, product: Juju}}\n"
    )
}

#[test]
fn each_services_lines_reach_the_targets_that_take_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::serve(listener);
    let mut h = Harness::new(false);
    h.layer(
        "svc",
        "services:\n  talker:\n    override: replace\n    command: sh -c 'echo out-line; echo err-line >&2; exec sleep 30'\n  quiet:\n    override: replace\n    command: sh -c 'echo not-forwarded; exec sleep 30'\n",
        false,
    );
    h.layer(
        "logs",
        &target_layer("loki/0", port, "[all, -quiet]"),
        false,
    );
    h.client.start(&["talker", "quiet"]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || receiver.has("out-line")
            && receiver.has("err-line")),
        "received: {:?}",
        receiver.lines()
    );
    let lines = receiver.lines();
    let (labels, _) = lines.iter().find(|(_, l)| l == "out-line").unwrap();
    assert_eq!(labels["pebble_service"], "talker");
    assert_eq!(labels["juju_unit"], "app/0");
    assert_eq!(labels["product"], "Juju");
    assert!(!receiver.has("not-forwarded"), "{lines:?}");

    // Disabled: later lines stay home.
    h.layer("logs", &target_layer("loki/0", port, "[-all]"), true);
    let before = receiver.lines().len();
    h.client.restart(&["talker"]).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.lines().len(), before, "{:?}", receiver.lines());
}

#[test]
fn a_target_that_is_away_gets_the_lines_once_it_is_back() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut h = Harness::new(false);
    h.layer(
        "svc",
        "services:\n  talker:\n    override: replace\n    command: sh -c 'echo while-away; exec sleep 30'\n",
        false,
    );
    h.layer("logs", &target_layer("loki/0", port, "[all]"), false);
    h.client.start(&["talker"]).unwrap();
    // The first pushes fail (nothing listens); the service runs on.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(h.current("talker"), "active");
    let receiver = Receiver::serve(TcpListener::bind(("127.0.0.1", port)).unwrap());
    assert!(
        wait_until(Duration::from_secs(15), || receiver.has("while-away")),
        "received: {:?}",
        receiver.lines()
    );
}

#[test]
fn the_last_lines_are_pushed_as_the_server_stops() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::serve(listener);
    let mut h = Harness::new(false);
    h.layer(
        "svc",
        "services:\n  talker:\n    override: replace\n    command: sh -c 'trap \"echo bye; exit 0\" TERM; echo hi; while :; do sleep 0.1; done'\n",
        false,
    );
    h.layer("logs", &target_layer("t", port, "[talker]"), false);
    h.client.start(&["talker"]).unwrap();
    // The service is up, its trap set, and forwarding runs: then only the
    // stop makes it say `bye`.
    assert!(
        wait_until(Duration::from_secs(15), || receiver.has("hi")),
        "received: {:?}",
        receiver.lines()
    );
    h.stop_server();
    assert!(receiver.has("bye"), "received: {:?}", receiver.lines());
}
