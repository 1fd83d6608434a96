//! Pebble's HTTP/1.1 exchange over its unix socket: one connection per request.

use super::{PebbleError, PebbleResult};
use http_exchange::HttpError;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub(crate) use http_exchange::{percent_encode, target, Response};

impl From<HttpError> for PebbleError {
    fn from(e: HttpError) -> PebbleError {
        match e {
            HttpError::Io(e) => PebbleError::Io(e),
            HttpError::Protocol(m) => PebbleError::Protocol(m),
        }
    }
}

/// Sends one request to the server on `socket` and reads its whole response.
///
/// `target` is the path with its query; `headers` come on top of `Host`,
/// `Connection: close` and `Content-Length`. Each socket read and write may take
/// up to `timeout`.
pub(crate) fn send(
    socket: &Path,
    timeout: Duration,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> PebbleResult<Response> {
    let stream = UnixStream::connect(socket).map_err(|source| PebbleError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(http_exchange::exchange(
        stream,
        "localhost",
        method,
        target,
        headers,
        body,
    )?)
}

/// A [`PebbleError::Protocol`] with this message.
pub(crate) fn protocol(message: impl Into<String>) -> PebbleError {
    PebbleError::Protocol(message.into())
}
