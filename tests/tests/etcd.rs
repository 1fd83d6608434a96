//! The etcd charm on the local model runs a real etcd that answers on the
//! leader's own address and hands that address to a related application.

#![allow(clippy::unwrap_used)]

use e2e::{charm, controller, converge, Scratch};
use std::io::{Read, Write};
use std::time::Duration;

fn http_get(address: &str, port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect((address, port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn etcd_serves_on_the_leaders_address() {
    let scratch = Scratch::new("etcd");
    let etcd = charm(scratch.path(), "etcd");
    let mut c = controller(&scratch);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.deploy(&etcd, "etcd", 1, &[("client-port", &port.to_string())])
        .unwrap();
    converge(&mut c, Duration::from_secs(30), |c| {
        c.model
            .unit("etcd/0")
            .is_some_and(|u| matches!(&u.status, charm::Status::Active(m) if m.is_empty()))
    });
    let address = c.model.unit("etcd/0").unwrap().address.clone();
    let mut health = String::new();
    for _ in 0..50 {
        if std::net::TcpStream::connect((address.as_str(), port)).is_ok() {
            health = http_get(&address, port, "/health");
            if health.contains("\"health\":\"true\"") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(health.contains("\"health\":\"true\""), "{health}");
}
