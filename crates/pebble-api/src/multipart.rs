//! `multipart/form-data` bodies, as Pebble uses them for files: built and parsed
//! here for the client, and by `pebble-server` for the other direction.

use super::{PebbleError, PebbleResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One part of a multipart body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The form field name from `Content-Disposition`.
    pub name: String,
    /// The file name from `Content-Disposition`, for a file part.
    pub filename: Option<String>,
    /// The part's `Content-Type`.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub body: Vec<u8>,
}

/// Builds a body from `parts`; returns it with the boundary it uses.
pub fn encode(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = loop {
        let boundary = new_boundary();
        if parts
            .iter()
            .all(|p| find(&p.body, boundary.as_bytes(), 0).is_none())
        {
            break boundary;
        }
    };
    let mut body = Vec::new();
    for part in parts {
        let mut head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
            escape(&part.name)
        );
        if let Some(filename) = &part.filename {
            head.push_str(&format!("; filename=\"{}\"", escape(filename)));
        }
        if let Some(content_type) = &part.content_type {
            head.push_str(&format!("\r\nContent-Type: {content_type}"));
        }
        head.push_str("\r\n\r\n");
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(&part.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// The boundary of a `multipart/form-data` content type; `None` for other types.
pub fn boundary(content_type: &str) -> Option<String> {
    let media_type = content_type.split(';').next()?.trim();
    if !media_type.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    param(content_type, "boundary").filter(|b| !b.is_empty())
}

/// Splits a body into its parts.
pub fn decode(body: &[u8], boundary: &str) -> PebbleResult<Vec<Part>> {
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    // The first delimiter may open the body, without the CRLF before it.
    let mut pos = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        find(body, &delimiter, 0).ok_or_else(|| malformed("no opening boundary"))? + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or_else(|| malformed("bad boundary line"))?;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (head_len, headers) = match httparse::parse_headers(rest, &mut headers) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            _ => return Err(malformed("bad part headers")),
        };
        let header = |name: &str| {
            let header = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
            Some(String::from_utf8_lossy(header.value).into_owned())
        };
        let disposition = header("content-disposition").unwrap_or_default();
        let start = pos + 2 + head_len;
        let end = find(body, &delimiter, start).ok_or_else(|| malformed("part not terminated"))?;
        parts.push(Part {
            name: param(&disposition, "name").unwrap_or_default(),
            filename: param(&disposition, "filename"),
            content_type: header("content-type"),
            body: body[start..end].to_vec(),
        });
        pos = end + delimiter.len();
    }
}

/// The value of parameter `key` in a header value such as `form-data; name="files"`.
fn param(header: &str, key: &str) -> Option<String> {
    let mut rest = header.split_once(';')?.1;
    loop {
        let (name, value) = rest.split_once('=')?;
        let value = value.trim_start();
        let (value, tail) = match value.strip_prefix('"') {
            Some(quoted) => {
                let mut unquoted = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next()? {
                        (_, '\\') => unquoted.push(chars.next()?.1),
                        (i, '"') => break i + 1,
                        (_, c) => unquoted.push(c),
                    }
                };
                (unquoted, &quoted[end..])
            }
            None => {
                let end = value.find(';').unwrap_or(value.len());
                (value[..end].trim().to_string(), &value[end..])
            }
        };
        if name.trim().eq_ignore_ascii_case(key) {
            return Some(value);
        }
        rest = tail.split_once(';')?.1;
    }
}

/// A boundary unlikely to repeat: the time, the process id and a counter.
fn new_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("pebble-{nanos:x}-{:x}-{count:x}", std::process::id())
}

/// Escapes a quoted-string's backslashes and quotes.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Where `needle` first occurs in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn malformed(what: &str) -> PebbleError {
    PebbleError::Protocol(format!("malformed multipart body: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, filename: Option<&str>, body: &[u8]) -> Part {
        Part {
            name: name.into(),
            filename: filename.map(Into::into),
            content_type: Some("application/octet-stream".into()),
            body: body.to_vec(),
        }
    }

    #[test]
    fn round_trips_parts() {
        let parts = vec![
            part("request", None, b"{}"),
            part("files", Some("/a \"b\"\\c"), b"line\r\n--not-it\r\n\0\xff"),
            part("empty", Some("/e"), b""),
        ];
        let (boundary, body) = encode(&parts);
        assert_eq!(decode(&body, &boundary).unwrap(), parts);
    }

    #[test]
    fn boundary_avoids_content() {
        let first = encode(&[]).0;
        let second = encode(&[]).0;
        assert_ne!(first, second);
        let (boundary, _) = encode(&[part("files", None, first.as_bytes())]);
        assert_ne!(boundary, first);
    }

    #[test]
    fn parses_go_style_body() {
        let content_type = "multipart/form-data; charset=x; boundary=\"b;1\"";
        let boundary = super::boundary(content_type).unwrap();
        assert_eq!(boundary, "b;1");
        assert_eq!(super::boundary("application/json"), None);
        let body = b"ignored\r\n--b;1\r\nContent-Disposition: form-data; name=\"files\"; filename=\"/x\"\r\n\r\nhi\r\n--b;1\r\ncontent-disposition: form-data; name=response\r\nContent-Type: application/json\r\n\r\n{}\r\n--b;1--\r\n";
        let parts = decode(body, &boundary).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].filename.as_deref(), Some("/x"));
        assert_eq!(parts[0].body, b"hi");
        assert_eq!(parts[1].name, "response");
        assert_eq!(parts[1].content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn rejects_truncated_body() {
        let (boundary, body) = encode(&[part("files", None, b"data")]);
        for cut in [10, body.len() - 10] {
            assert!(matches!(
                decode(&body[..cut], &boundary),
                Err(PebbleError::Protocol(_))
            ));
        }
    }
}
