//! The wire format, as a client other than `PebbleClient` (such as Python's
//! `ops.pebble.Client`) may use it: chunked bodies, envelopes, change fields.

#![allow(clippy::unwrap_used)]

mod common;

use common::Harness;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// Sends raw bytes; returns the status and the body.
fn raw(h: &Harness, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = UnixStream::connect(h.client.socket()).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let body = response[split + 4..].to_vec();
    assert_eq!(body.len(), length);
    (status, body)
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn unknown_endpoints_answer_an_error_envelope() {
    let h = Harness::new(false);
    let (status, body) = raw(&h, b"GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404);
    let body = json(&body);
    assert_eq!(body["type"], "error");
    assert_eq!(body["status-code"], 404);
    assert!(body["result"]["message"].is_string());
    let (status, _) = raw(&h, b"DELETE /v1/plan HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405);
    let (status, body) = raw(&h, b"GET /v1/changes/999 HTTP/1.1\r\n\r\n");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn chunked_multipart_write_and_change_fields() {
    let h = Harness::new(false);
    let multipart = "--XYZ\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n{\"action\":\"write\",\"files\":[{\"path\":\"/a/b.txt\",\"make-dirs\":true,\"permissions\":\"640\",\"user-id\":null}]}\r\n--XYZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"/a/b.txt\"\r\n\r\nchunked\r\n--XYZ--\r\n";
    let (first, second) = multipart.split_at(40);
    let request = format!(
        "POST /v1/files HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=XYZ\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let (status, body) = raw(&h, request.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        json(&body)["result"],
        serde_json::json!([{"path": "/a/b.txt"}])
    );
    assert_eq!(std::fs::read(h.host("/a/b.txt")).unwrap(), b"chunked");

    let layer = r#"{"action":"add","label":"l","combine":false,"format":"yaml","layer":"services:\n  s:\n    override: replace\n    command: sleep 30\n"}"#;
    let request = format!(
        "POST /v1/layers HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{layer}",
        layer.len()
    );
    assert_eq!(raw(&h, request.as_bytes()).0, 200);
    let start = r#"{"action":"start","services":["s"]}"#;
    let request = format!(
        "POST /v1/services HTTP/1.1\r\nContent-Length: {}\r\n\r\n{start}",
        start.len()
    );
    let (status, body) = raw(&h, request.as_bytes());
    assert_eq!(status, 202);
    let body = json(&body);
    assert_eq!(body["type"], "async");
    let id = body["change"].as_str().unwrap().to_string();
    let (status, body) = raw(
        &h,
        format!("GET /v1/changes/{id} HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body)["result"]["status"], "Doing");
    let (status, body) = raw(
        &h,
        format!("GET /v1/changes/{id}/wait?timeout=1ms HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    let (_, body) = raw(
        &h,
        format!("GET /v1/changes/{id}/wait?timeout=5s HTTP/1.1\r\n\r\n").as_bytes(),
    );
    let change = &json(&body)["result"];
    assert_eq!(change["id"], id.as_str());
    assert_eq!(change["kind"], "start");
    assert_eq!(change["status"], "Done");
    assert_eq!(change["ready"], true);
    assert!(change["spawn-time"].as_str().unwrap().ends_with('Z'));
    assert!(change["ready-time"].is_string());
    assert!(change["tasks"].is_array());
}
