//! The TLS check behind `Connector::verify_tls`: PostgreSQL's `SSLRequest`,
//! then a TLS handshake that verifies the server's certificate against a CA
//! bundle and the host's name or IP address.

use crate::session::PgError;
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509VerifyResult, X509};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The `SSLRequest` message: its length (8) and the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Verifies the server at `host:port` as `verify-full` does, within `timeout`
/// for each step.
pub fn verify(host: &str, port: u16, ca: &str, timeout: Duration) -> Result<(), PgError> {
    let fail = |why: String| PgError(format!("{host}:{port}: {why}"));
    let certs = X509::stack_from_pem(ca.as_bytes())
        .map_err(|e| fail(format!("the CA bundle cannot be read: {e}")))?;
    if certs.is_empty() {
        return Err(fail("the CA bundle holds no certificate".into()));
    }
    let mut store = X509StoreBuilder::new().map_err(|e| fail(e.to_string()))?;
    for cert in certs {
        store.add_cert(cert).map_err(|e| fail(e.to_string()))?;
    }
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| fail(e.to_string()))?;
    builder.set_cert_store(store.build());
    builder.set_verify(SslVerifyMode::PEER);
    let connector = builder.build();

    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(e.to_string()))?;
    tcp.set_read_timeout(Some(timeout))
        .and_then(|()| tcp.set_write_timeout(Some(timeout)))
        .and_then(|()| tcp.write_all(&SSL_REQUEST))
        .map_err(|e| fail(e.to_string()))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .map_err(|e| fail(e.to_string()))?;
    if answer[0] != b'S' {
        return Err(fail("the server does not serve TLS".into()));
    }
    match connector.connect(host, tcp) {
        Ok(_) => Ok(()),
        Err(HandshakeError::Failure(m)) | Err(HandshakeError::WouldBlock(m))
            if m.ssl().verify_result() != X509VerifyResult::OK =>
        {
            Err(fail(format!(
                "its certificate does not verify: {}",
                m.ssl().verify_result().error_string()
            )))
        }
        Err(e) => Err(fail(format!("the TLS handshake failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use tls_certificates::{testing::TestCa, Subject};

    /// A server that answers one `SSLRequest` per connection with `answer`
    /// and, on `S`, a TLS handshake with a certificate for 127.0.0.1 signed
    /// by `ca`. Returns its port.
    fn server(ca: &mut TestCa, answer: u8, connections: usize) -> u16 {
        let acceptor = ca.acceptor(&Subject::new("pg", vec![], "127.0.0.1"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let mut s = stream.unwrap();
                let mut request = [0u8; 8];
                s.read_exact(&mut request).unwrap();
                assert_eq!(request, SSL_REQUEST);
                s.write_all(&[answer]).unwrap();
                if answer == b'S' {
                    let _ = acceptor.accept(s);
                }
            }
        });
        port
    }

    #[test]
    fn a_server_is_verified_with_its_ca_and_address_only() {
        let mut ca = TestCa::new("pg-ca");
        let port = server(&mut ca, b'S', 3);
        let t = Duration::from_secs(5);
        verify("127.0.0.1", port, &ca.pem(), t).unwrap();
        let other = TestCa::new("another").pem();
        let e = verify("127.0.0.1", port, &other, t).unwrap_err();
        assert!(e.0.contains("does not verify"), "{e}");
        let e = verify("localhost", port, &ca.pem(), t).unwrap_err();
        assert!(e.0.contains("does not verify"), "the name is checked: {e}");
        let e = verify("127.0.0.1", port, "no pem", t).unwrap_err();
        assert!(e.0.contains("CA bundle"), "{e}");
    }

    #[test]
    fn a_server_without_tls_is_named() {
        let port = server(&mut TestCa::new("pg-ca"), b'N', 1);
        let e = verify(
            "127.0.0.1",
            port,
            &TestCa::new("x").pem(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.0.contains("does not serve TLS"), "{e}");
    }
}
