//! What the hook-tool shim and the agent say to each other over the agent's unix
//! socket: one JSON request line, one JSON response line.

use serde::{Deserialize, Serialize};

/// A hook-tool call, from the shim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `JUJU_CONTEXT_ID` of the hook the tool runs in.
    pub context: String,
    pub tool: String,
    pub args: Vec<String>,
    pub stdin: String,
}

/// What the tool prints and its exit code, to the shim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}
