//! `multipart/form-data`: parsed from file writes, built for file reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// One part of a multipart body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub body: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (media, _) = content_type.split_once(';')?;
    if !media.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    param(content_type, "boundary").filter(|b| !b.is_empty())
}

/// Splits a body into its parts.
pub(crate) fn decode(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut pos = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        find(body, &delimiter, 0).ok_or("malformed multipart body: no opening boundary")?
            + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart body: bad boundary line")?;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (head_len, headers) = match httparse::parse_headers(rest, &mut headers) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            _ => return Err("malformed multipart body: bad part headers".into()),
        };
        let disposition = headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-disposition"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .unwrap_or_default();
        let start = pos + 2 + head_len;
        let end =
            find(body, &delimiter, start).ok_or("malformed multipart body: part not terminated")?;
        parts.push(Part {
            name: param(&disposition, "name").unwrap_or_default(),
            filename: param(&disposition, "filename"),
            body: body[start..end].to_vec(),
        });
        pos = end + delimiter.len();
    }
}

/// Builds a body from parts (`files` parts as octet streams, others as JSON);
/// returns the boundary and the body.
pub(crate) fn encode(parts: &[Part]) -> (String, Vec<u8>) {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let boundary = loop {
        let candidate = format!(
            "pebble-server-{:x}-{:x}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        if parts
            .iter()
            .all(|p| find(&p.body, candidate.as_bytes(), 0).is_none())
        {
            break candidate;
        }
    };
    let mut body = Vec::new();
    for part in parts {
        let mut head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
            escape(&part.name)
        );
        let content_type = match &part.filename {
            Some(filename) => {
                head.push_str(&format!("; filename=\"{}\"", escape(filename)));
                "application/octet-stream"
            }
            None => "application/json",
        };
        head.push_str(&format!("\r\nContent-Type: {content_type}\r\n\r\n"));
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(&part.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
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

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let parts = vec![
            Part {
                name: "request".into(),
                filename: None,
                body: b"{}".to_vec(),
            },
            Part {
                name: "files".into(),
                filename: Some("/a \"b\"".into()),
                body: b"x\r\n--y\r\n\0\xff".to_vec(),
            },
        ];
        let (boundary, body) = encode(&parts);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        assert_eq!(super::boundary(&content_type).unwrap(), boundary);
        assert_eq!(decode(&body, &boundary).unwrap(), parts);
        assert!(decode(&body[..body.len() - 20], &boundary).is_err());
    }
}
