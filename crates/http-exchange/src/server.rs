//! The server's half, over any stream (the Pebble server's unix socket, the
//! local model's Kubernetes API over TLS): one request read (`Content-Length`
//! or chunked body), one response written with `Content-Length` and
//! `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};

/// The most a request's head may take.
const MAX_HEAD: usize = 64 * 1024;
/// The most a request's body may take.
const MAX_BODY: u64 = 1 << 32;

/// A request: method, path, decoded query, headers and body.
#[derive(Debug, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The decoded path, without the query.
    pub path: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, whole.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `key`.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Reads one request; `Ok(None)` when the peer closed before sending anything.
pub fn read_request(stream: impl Read) -> Result<Option<Request>, String> {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    let (head_len, mut request, length, chunked) = loop {
        let available = reader.fill_buf().map_err(|e| e.to_string())?;
        if available.is_empty() {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err("connection closed mid-request".into());
        }
        // Take what we have; what belongs to the body is handed back below.
        let n = available.len();
        buf.extend_from_slice(available);
        reader.consume(n);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        let status = parsed
            .parse(&buf)
            .map_err(|e| format!("bad request: {e}"))?;
        let httparse::Status::Complete(head_len) = status else {
            if buf.len() > MAX_HEAD {
                return Err("request head too long".into());
            }
            continue;
        };
        let target = parsed.path.unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut request = Request {
            method: parsed.method.unwrap_or_default().to_string(),
            path: percent_decode(path),
            query: parse_query(query),
            ..Request::default()
        };
        let (mut length, mut chunked) = (0u64, false);
        for header in parsed.headers.iter() {
            let value = String::from_utf8_lossy(header.value).into_owned();
            if header.name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| "bad Content-Length")?;
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
            request.headers.push((header.name.to_string(), value));
        }
        break (head_len, request, length, chunked);
    };
    let already = buf.split_off(head_len);
    let mut rest = std::io::Cursor::new(already).chain(reader);
    if chunked {
        request.body = read_chunked(&mut BufReader::new(rest))?;
    } else {
        if length > MAX_BODY {
            return Err("request body too large".into());
        }
        let mut body = Vec::with_capacity(length.min(1 << 20) as usize);
        (&mut rest)
            .take(length)
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        if body.len() as u64 != length {
            return Err("request body shorter than its Content-Length".into());
        }
        request.body = body;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            break;
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err("request body too large".into());
        }
        let read = reader
            .take(size)
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        if read as u64 != size || !read_line(reader)?.is_empty() {
            return Err("malformed chunk".into());
        }
    }
    while !read_line(reader)?.is_empty() {}
    Ok(body)
}

fn read_line(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    let line = line.strip_suffix(b"\n").ok_or("chunked body cut short")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// Writes the response and flushes it.
pub fn write_response(mut stream: impl Write, response: &Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        504 => "Gateway Timeout",
        _ => "Unknown",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as a space, for query strings).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_with_a_body() {
        let raw = b"POST /v1/files?action=read&path=%2Fa%20b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let request = read_request(&raw[..]).unwrap().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/files");
        assert_eq!(request.query("path"), Some("/a b"));
        assert_eq!(request.body, b"hello");
        assert_eq!(request.header("host"), Some("x"));
    }

    #[test]
    fn reads_a_chunked_body() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(read_request(&raw[..]).unwrap().unwrap().body, b"abcde");
    }

    #[test]
    fn rejects_short_bodies_and_accepts_eof() {
        assert!(read_request(&b"GET / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"[..]).is_err());
        assert!(read_request(&b""[..]).unwrap().is_none());
    }

    #[test]
    fn decodes_percent() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%C3%BC+x"), "ü x");
    }
}
