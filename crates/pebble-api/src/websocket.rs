//! The websockets of Pebble's exec: each I/O stream is binary messages ended
//! by the text message `{"command":"end"}`; `control` carries commands such
//! as signals as text. Client and server halves share these helpers.

use std::io::{Read, Write};
use tungstenite::{Message, WebSocket};

/// The text message that ends a stream.
pub const END: &str = r#"{"command":"end"}"#;

/// Whether a text message is the end of the stream.
pub fn is_end(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v["command"] == "end")
}

/// Reads a stream to its end (or the socket's close), returning its bytes.
pub fn read_stream<S: Read + Write>(ws: &mut WebSocket<S>) -> Result<Vec<u8>, tungstenite::Error> {
    let mut out = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Binary(data)) => out.extend_from_slice(&data),
            Ok(Message::Text(text)) if is_end(&text) => return Ok(out),
            Ok(Message::Close(_))
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(out)
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends `data` (when there is any) and then the end of the stream.
pub fn write_stream<S: Read + Write>(
    ws: &mut WebSocket<S>,
    data: &[u8],
) -> Result<(), tungstenite::Error> {
    if !data.is_empty() {
        ws.send(Message::binary(data.to_vec()))?;
    }
    ws.send(Message::text(END))
}
