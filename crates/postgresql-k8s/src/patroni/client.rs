//! [`HttpPatroni`]: Patroni's REST API over HTTP/1.1 on TCP, or over TLS
//! verifying the member's certificate (its CA and its address) once this unit
//! serves TLS, with connect and read timeouts, and retries when a member does
//! not answer.

use super::{ApiAccess, Cluster, Health, Patroni, PatroniError, API_PORT};
use base64::Engine;
use http_exchange::{HttpError, Response};
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509VerifyResult, X509};
use serde::de::DeserializeOwned;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Patroni's phrase when a switchover candidate is not a sync standby.
const NOT_SYNC: &str = "candidate name does not match with sync_standby";

/// The real API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpPatroni {
    /// The API's port on every member ([`API_PORT`]).
    pub port: u16,
    /// Connect, read and write timeout of one request.
    pub timeout: Duration,
    /// How long calls that wait for PostgreSQL (switchover, restart) may take to answer.
    pub slow_timeout: Duration,
    /// Tries per call when the member does not answer (at least 1).
    pub attempts: u32,
    /// Wait between tries.
    pub pause: Duration,
}

impl Default for HttpPatroni {
    fn default() -> Self {
        HttpPatroni {
            port: API_PORT,
            timeout: Duration::from_secs(5),
            slow_timeout: Duration::from_secs(60),
            attempts: 3,
            pause: Duration::from_secs(2),
        }
    }
}

/// Runs `f` up to `attempts` times while it fails with
/// [`PatroniError::Unreachable`], sleeping `pause` between tries. Other errors
/// (an answer, even a bad one) end the retries.
pub fn retry<T>(
    attempts: u32,
    pause: Duration,
    mut f: impl FnMut() -> Result<T, PatroniError>,
) -> Result<T, PatroniError> {
    let mut last = PatroniError::Unreachable("no attempt made".into());
    for i in 0..attempts.max(1) {
        if i > 0 {
            std::thread::sleep(pause);
        }
        match f() {
            Err(PatroniError::Unreachable(why)) => last = PatroniError::Unreachable(why),
            other => return other,
        }
    }
    Err(last)
}

/// A connector that trusts exactly the certificates of `ca` (a PEM bundle) and
/// checks the name (or IP address) the member is called by.
fn connector(ca: &str) -> Result<SslConnector, PatroniError> {
    let bad_ca = |e: &dyn std::fmt::Display| PatroniError::Tls(format!("the CA bundle: {e}"));
    let certs = X509::stack_from_pem(ca.as_bytes()).map_err(|e| bad_ca(&e))?;
    if certs.is_empty() {
        return Err(bad_ca(&"no certificate in it"));
    }
    let mut store = X509StoreBuilder::new().map_err(|e| bad_ca(&e))?;
    for cert in certs {
        store.add_cert(cert).map_err(|e| bad_ca(&e))?;
    }
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| bad_ca(&e))?;
    builder.set_cert_store(store.build());
    builder.set_verify(SslVerifyMode::PEER);
    Ok(builder.build())
}

impl HttpPatroni {
    /// One request to a member's API; connection problems are `Unreachable`,
    /// a certificate that does not verify is [`PatroniError::Tls`].
    fn request(
        &self,
        api: &ApiAccess,
        host: &str,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<Response, PatroniError> {
        let authority = format!("{host}:{}", self.port);
        let unreachable =
            |e: &dyn std::fmt::Display| PatroniError::Unreachable(format!("{authority}: {e}"));
        let addr = (host, self.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(&e))?
            .next()
            .ok_or_else(|| unreachable(&"no address"))?;
        let stream =
            TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| unreachable(&e))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| unreachable(&e))?;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("patroni:{}", api.password));
        let authorization = format!("Basic {credentials}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![
            ("Authorization", authorization.as_str()),
            ("Accept", "application/json"),
        ];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let exchanged = match &api.ca {
            None => {
                http_exchange::exchange(stream, &authority, method, path, &headers, body.as_bytes())
            }
            Some(ca) => {
                let tls = connector(ca)?.connect(host, stream).map_err(|e| {
                    let verified = match &e {
                        HandshakeError::Failure(m) | HandshakeError::WouldBlock(m) => {
                            m.ssl().verify_result()
                        }
                        HandshakeError::SetupFailure(_) => X509VerifyResult::OK,
                    };
                    if verified == X509VerifyResult::OK {
                        unreachable(&format!("TLS handshake failed: {e}"))
                    } else {
                        PatroniError::Tls(format!("{authority}: {}", verified.error_string()))
                    }
                })?;
                http_exchange::exchange(tls, &authority, method, path, &headers, body.as_bytes())
            }
        };
        exchanged.map_err(|e| match e {
            HttpError::Io(e) => unreachable(&e),
            HttpError::Protocol(m) => PatroniError::Protocol(m),
        })
    }

    /// A request whose answer must be 2xx, retried while the member does not answer.
    fn call(
        &self,
        api: &ApiAccess,
        host: &str,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<Response, PatroniError> {
        retry(self.attempts, self.pause, || {
            let r = self.request(api, host, method, path, body, timeout)?;
            ok(r)
        })
    }
}

fn ok(r: Response) -> Result<Response, PatroniError> {
    if (200..300).contains(&r.status) {
        Ok(r)
    } else {
        Err(PatroniError::Http {
            status: r.status,
            body: String::from_utf8_lossy(&r.body).trim().to_string(),
        })
    }
}

fn json<T: DeserializeOwned>(r: &Response) -> Result<T, PatroniError> {
    serde_json::from_slice(&r.body).map_err(|e| PatroniError::Protocol(e.to_string()))
}

/// The first of `hosts` for which `f` does not fail with `Unreachable`.
fn first_answer<T>(
    hosts: &[String],
    mut f: impl FnMut(&str) -> Result<T, PatroniError>,
) -> Result<T, PatroniError> {
    let mut last = PatroniError::Unreachable("no member address known".into());
    for host in hosts {
        match f(host) {
            Err(PatroniError::Unreachable(why)) => last = PatroniError::Unreachable(why),
            other => return other,
        }
    }
    Err(last)
}

impl Patroni for HttpPatroni {
    fn cluster(&self, api: &ApiAccess, hosts: &[String]) -> Result<Cluster, PatroniError> {
        first_answer(hosts, |host| {
            let r = self.request(api, host, "GET", "/cluster", None, self.timeout)?;
            json(&ok(r)?)
        })
    }

    fn health(&self, api: &ApiAccess, host: &str) -> Result<Health, PatroniError> {
        retry(self.attempts, self.pause, || {
            let r = self.request(api, host, "GET", "/health", None, self.timeout)?;
            // 503 means PostgreSQL is not running; the body still says its state.
            if r.status == 200 || r.status == 503 {
                json(&r)
            } else {
                ok(r).map(|_| unreachable!("only errors reach here"))
            }
        })
    }

    fn patch_config(
        &self,
        api: &ApiAccess,
        hosts: &[String],
        patch: &serde_json::Value,
    ) -> Result<(), PatroniError> {
        first_answer(hosts, |host| {
            self.call(api, host, "PATCH", "/config", Some(patch), self.timeout)
                .map(|_| ())
        })
    }

    fn switchover(
        &self,
        api: &ApiAccess,
        host: &str,
        leader: &str,
        candidate: Option<&str>,
    ) -> Result<(), PatroniError> {
        let body = serde_json::json!({"leader": leader, "candidate": candidate});
        let r = self.request(
            api,
            host,
            "POST",
            "/switchover",
            Some(&body),
            self.slow_timeout,
        )?;
        match ok(r) {
            Err(PatroniError::Http { status: 412, body }) if body.contains(NOT_SYNC) => {
                Err(PatroniError::NotSyncStandby)
            }
            other => other.map(|_| ()),
        }
    }

    fn restart(&self, api: &ApiAccess, host: &str) -> Result<(), PatroniError> {
        self.call(
            api,
            host,
            "POST",
            "/restart",
            Some(&serde_json::json!({})),
            self.slow_timeout,
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    #[test]
    fn retry_stops_at_an_answer_and_gives_up_after_the_attempts() {
        let mut calls = 0;
        let r: Result<u32, _> = retry(3, Duration::ZERO, || {
            calls += 1;
            Err(PatroniError::Unreachable(format!("try {calls}")))
        });
        assert_eq!(r, Err(PatroniError::Unreachable("try 3".into())));
        let mut calls = 0;
        let r: Result<(), _> = retry(3, Duration::ZERO, || {
            calls += 1;
            if calls < 2 {
                Err(PatroniError::Unreachable("down".into()))
            } else {
                Err(PatroniError::Http {
                    status: 500,
                    body: "no".into(),
                })
            }
        });
        assert_eq!(calls, 2);
        assert!(matches!(r, Err(PatroniError::Http { status: 500, .. })));
    }

    #[test]
    fn the_first_member_that_answers_wins() {
        let hosts = ["a", "b", "c"].map(String::from);
        let mut asked = Vec::new();
        let r = first_answer(&hosts, |h| {
            asked.push(h.to_string());
            if h == "a" {
                Err(PatroniError::Unreachable("a down".into()))
            } else {
                Ok(h.to_string())
            }
        });
        assert_eq!(r.unwrap(), "b");
        assert_eq!(asked, ["a", "b"]);
        assert!(matches!(
            first_answer(&[], |_| Ok(())),
            Err(PatroniError::Unreachable(_))
        ));
    }

    /// Reads a whole request: the head, then `Content-Length` bytes of body.
    fn read_request(s: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let n = s.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if body.len() >= length || n == 0 {
                    return text;
                }
            }
        }
    }

    /// Answers one connection per canned response, and hands back the requests.
    fn serve(responses: Vec<(u16, &'static str)>) -> (HttpPatroni, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in responses {
                let (mut s, _) = listener.accept().unwrap();
                tx.send(read_request(&mut s)).unwrap();
                write!(
                    s,
                    "HTTP/1.0 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        let api = HttpPatroni {
            port,
            timeout: Duration::from_secs(2),
            attempts: 1,
            pause: Duration::ZERO,
            ..HttpPatroni::default()
        };
        (api, rx)
    }

    #[test]
    fn cluster_and_health_are_read_with_basic_auth() {
        let (api, rx) = serve(vec![
            (
                200,
                r#"{"members":[{"name":"pg-0","role":"leader","state":"running","host":"127.0.0.1","port":5432},{"name":"pg-1","role":"sync_standby","state":"streaming","host":"127.0.0.2","port":5432}],"scope":"patroni-pg"}"#,
            ),
            (503, r#"{"state":"starting","role":"replica"}"#),
        ]);
        let cluster = api
            .cluster(&ApiAccess::plain("pw"), &["127.0.0.1".to_string()])
            .unwrap();
        assert!(cluster.all_ready());
        assert_eq!(cluster.primary().unwrap().endpoint(), "127.0.0.1:5432");
        let request = rx.recv().unwrap();
        assert!(
            request.starts_with("GET /cluster HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Authorization: Basic cGF0cm9uaTpwdw==\r\n"),
            "{request}"
        );
        let health = api.health(&ApiAccess::plain("pw"), "127.0.0.1").unwrap();
        assert_eq!(health.state, "starting");
        assert!(!health.started());
    }

    #[test]
    fn patches_switchovers_and_restarts_send_json_and_map_errors() {
        let (api, rx) = serve(vec![
            (200, "{}"),
            (412, "candidate name does not match with sync_standby"),
            (503, "Switchover failed"),
            (200, "restarted"),
        ]);
        let patch = serde_json::json!({"synchronous_node_count": 1});
        api.patch_config(&ApiAccess::plain("pw"), &["127.0.0.1".to_string()], &patch)
            .unwrap();
        let request = rx.recv().unwrap();
        assert!(
            request.starts_with("PATCH /config HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.ends_with(r#"{"synchronous_node_count":1}"#),
            "{request}"
        );
        assert_eq!(
            api.switchover(&ApiAccess::plain("pw"), "127.0.0.1", "pg-0", Some("pg-1")),
            Err(PatroniError::NotSyncStandby)
        );
        assert!(rx
            .recv()
            .unwrap()
            .ends_with(r#"{"candidate":"pg-1","leader":"pg-0"}"#));
        assert!(matches!(
            api.switchover(&ApiAccess::plain("pw"), "127.0.0.1", "pg-0", None),
            Err(PatroniError::Http { status: 503, .. })
        ));
        rx.recv().unwrap();
        api.restart(&ApiAccess::plain("pw"), "127.0.0.1").unwrap();
        assert!(rx.recv().unwrap().starts_with("POST /restart "));
    }

    #[test]
    fn with_a_ca_the_api_is_spoken_to_over_verified_tls() {
        use tls_certificates::{testing::TestCa, Subject};
        let mut ca = TestCa::new("patroni-ca");
        let acceptor = ca.acceptor(&Subject::new("pg-0", vec!["pg-0".into()], "127.0.0.1"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = acceptor.accept(stream.unwrap()) else {
                    continue;
                };
                let mut buf = [0; 4096];
                let n = s.read(&mut buf).unwrap();
                tx.send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .unwrap();
                let body = r#"{"state":"running","role":"master"}"#;
                write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        let api = HttpPatroni {
            port,
            attempts: 1,
            ..HttpPatroni::default()
        };
        let trusted = ApiAccess {
            password: "pw".into(),
            ca: Some(ca.pem()),
        };
        assert!(api.health(&trusted, "127.0.0.1").unwrap().started());
        assert!(rx.recv().unwrap().starts_with("GET /health HTTP/1.1\r\n"));
        let stranger = ApiAccess {
            ca: Some(TestCa::new("another-ca").pem()),
            ..trusted.clone()
        };
        let e = api.health(&stranger, "127.0.0.1").unwrap_err();
        assert!(matches!(e, PatroniError::Tls(_)), "{e}");
        let garbage = ApiAccess {
            ca: Some("not a certificate".into()),
            ..trusted
        };
        assert!(matches!(
            api.health(&garbage, "127.0.0.1"),
            Err(PatroniError::Tls(_))
        ));
    }

    #[test]
    fn an_address_nobody_listens_on_is_unreachable() {
        let api = HttpPatroni {
            timeout: Duration::from_millis(200),
            attempts: 2,
            pause: Duration::ZERO,
            ..HttpPatroni::default()
        };
        // 192.0.2.0/24 is TEST-NET-1: never routed.
        let e = api
            .health(&ApiAccess::plain("pw"), "192.0.2.1")
            .unwrap_err();
        assert!(matches!(e, PatroniError::Unreachable(m) if m.contains("192.0.2.1:8008")));
    }
}
