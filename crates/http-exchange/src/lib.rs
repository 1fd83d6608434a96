//! A minimal HTTP/1.1 client, one request per connection, over any stream: the
//! Pebble client uses it on a unix socket, the PostgreSQL charm on TCP (Patroni's
//! REST API) and the Kubernetes client over TLS. [`server`] is the other half.

#![warn(missing_docs)]

pub mod server;

use std::io::{BufRead, BufReader, Cursor, Read, Write};

/// The most a response's status line and headers may take.
const MAX_HEAD: usize = 64 * 1024;

/// What went wrong in an exchange.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection broke or timed out.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is not HTTP this client can read.
    #[error("{0}")]
    Protocol(String),
}

/// A response: status code, content type and the whole body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, when there is one.
    pub content_type: Option<String>,
    /// The whole body, decoded from chunks when it came in chunks.
    pub body: Vec<u8>,
}

/// Sends one request on `stream` and reads the whole response.
///
/// `target` is the path with its query; `headers` come on top of `Host`,
/// `Connection: close` and `Content-Length`. Timeouts are the stream's.
pub fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    read_response(stream)
}

/// Reads a response: the head with `httparse`, then the body by `Content-Length`,
/// chunked, or up to the end of the stream.
pub fn read_response(mut stream: impl Read) -> Result<Response, HttpError> {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    let (head_len, status, content_type, chunked, length) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(protocol("connection closed before the response headers"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let status = response
            .parse(&buf)
            .map_err(|e| protocol(format!("bad response head: {e}")))?;
        let httparse::Status::Complete(head_len) = status else {
            if buf.len() > MAX_HEAD {
                return Err(protocol("response headers too long"));
            }
            continue;
        };
        let code = response.code.ok_or_else(|| protocol("no status code"))?;
        let (mut content_type, mut chunked, mut length) = (None, false, None);
        for header in response.headers.iter() {
            let value = String::from_utf8_lossy(header.value);
            if header.name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.into_owned());
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if header.name.eq_ignore_ascii_case("content-length") {
                let n = value.trim().parse::<u64>();
                length = Some(n.map_err(|_| protocol(format!("bad Content-Length {value:?}")))?);
            }
        }
        break (head_len, code, content_type, chunked, length);
    };
    let mut rest = BufReader::new(Cursor::new(buf.split_off(head_len)).chain(stream));
    let body = if chunked {
        read_chunked(&mut rest)?
    } else if let Some(length) = length {
        let mut body = Vec::new();
        rest.take(length).read_to_end(&mut body)?;
        if body.len() as u64 != length {
            return Err(protocol("response body shorter than its Content-Length"));
        }
        body
    } else {
        let mut body = Vec::new();
        rest.read_to_end(&mut body)?;
        body
    };
    Ok(Response {
        status,
        content_type,
        body,
    })
}

/// Decodes a chunked body, skipping chunk extensions and trailers.
fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| protocol(format!("bad chunk size {size:?}")))?;
        if size == 0 {
            break;
        }
        let read = reader.take(size).read_to_end(&mut body)?;
        if read as u64 != size || !read_line(reader)?.is_empty() {
            return Err(protocol("malformed chunk"));
        }
    }
    while !read_line(reader)?.is_empty() {}
    Ok(body)
}

/// Reads one CRLF-terminated line, without its terminator.
fn read_line(reader: &mut impl BufRead) -> Result<String, HttpError> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    let Some(line) = line.strip_suffix(b"\n") else {
        return Err(protocol("chunked body cut short"));
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8(line.to_vec()).map_err(|_| protocol("chunked body line is not UTF-8"))
}

/// `path`, followed by `?` and the percent-encoded query when there is one.
pub fn target(path: &str, query: &[(&str, &str)]) -> String {
    let query: Vec<String> = query
        .iter()
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An [`HttpError::Protocol`] with this message.
fn protocol(message: impl Into<String>) -> HttpError {
    HttpError::Protocol(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Response, HttpError> {
        read_response(Cursor::new(raw.to_vec()))
    }

    #[test]
    fn encodes_query() {
        assert_eq!(target("/v1/plan", &[]), "/v1/plan");
        assert_eq!(
            target("/v1/files", &[("path", "/a b/ü&=?"), ("x", "a-z_0.9~")]),
            "/v1/files?path=%2Fa%20b%2F%C3%BC%26%3D%3F&x=a-z_0.9~"
        );
    }

    #[test]
    fn reads_content_length_body() {
        let response = parse(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello, extra").unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.content_type.as_deref(), Some("text/plain"));
        assert_eq!(response.body, b"hello");
    }

    #[test]
    fn reads_body_until_eof() {
        let response = parse(b"HTTP/1.1 200 OK\r\n\r\nall of it\r\n").unwrap();
        assert_eq!(response.body, b"all of it\r\n");
    }

    #[test]
    fn decodes_chunks_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n4;ext=1\r\nab\r\n\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n";
        assert_eq!(parse(raw).unwrap().body, b"ab\r\n0123456789");
    }

    #[test]
    fn rejects_malformed_responses() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-",
            b"garbage\r\n\r\n",
        ] {
            let err = parse(raw).unwrap_err();
            assert!(matches!(err, HttpError::Protocol(_)), "{err:?}");
        }
    }
}
