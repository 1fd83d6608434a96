//! What the `juju` CLI and the controller daemon say to each other over the
//! model's `controller.socket`: one JSON request line, then reply lines, each
//! `{"progress": "..."}` until the last, `{"done": <value>}` or
//! `{"error": "..."}`.

use charm::backend::JsonMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// A request to the controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Request {
    Deploy {
        charm: PathBuf,
        app: String,
        units: u32,
        config: Vec<(String, String)>,
        trust: bool,
        /// `--resource <name>=<dir>`: workload images.
        #[serde(default)]
        resources: Vec<(String, PathBuf)>,
    },
    AddUnit {
        app: String,
        units: u32,
    },
    /// `juju refresh <app> --path <charm>`: answers the new revision.
    Refresh {
        app: String,
        charm: PathBuf,
    },
    /// Units by name, or with `count` the application's highest-numbered units;
    /// `force` skips hooks that fail, `no_wait` (with `force`) runs none.
    RemoveUnit {
        names: Vec<String>,
        count: u32,
        #[serde(default)]
        force: bool,
        #[serde(default)]
        no_wait: bool,
    },
    /// `force` and `no_wait` apply to each unit, as for [`Request::RemoveUnit`].
    RemoveApplication {
        apps: Vec<String>,
        #[serde(default)]
        force: bool,
        #[serde(default)]
        no_wait: bool,
    },
    Integrate {
        a: String,
        b: String,
    },
    RemoveRelation {
        a: String,
        b: String,
    },
    /// Sets and resets options; answers the configuration as JSON.
    Config {
        app: String,
        set: Vec<(String, String)>,
        reset: Vec<String>,
    },
    /// The status as text in `format` (`tabular`, `json` or `yaml`), the table
    /// with its integrations section when `relations` is set.
    Status {
        format: String,
        relations: bool,
    },
    /// Units' details as text in `format` (`json` or `yaml`), their relations
    /// narrowed to an endpoint, a related unit or the application data.
    ShowUnit {
        units: Vec<String>,
        format: String,
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default)]
        related_unit: Option<String>,
        #[serde(default)]
        app_only: bool,
    },
    Resolve {
        unit: String,
        retry: bool,
    },
    /// Runs an action once the unit is installed (waiting up to `wait` seconds).
    Run {
        unit: String,
        action: String,
        params: JsonMap,
        wait: u64,
    },
    Exec {
        unit: String,
        command: String,
        wait: u64,
    },
    /// Units with hooks due (or running) and units in error.
    Pending,
    AdvanceClock {
        seconds: u64,
    },
    /// `juju trust`: what the application's service account may do.
    Trust {
        app: String,
        trusted: bool,
    },
    /// Makes an empty model a Kubernetes model (`add-model <name> <k8s cloud>`).
    UseKubernetes,
    /// Fixes the order units run in (`None`: unit-name order).
    SetSeed {
        seed: Option<u64>,
    },
    FailNextHook {
        unit: String,
    },
    /// SIGKILLs a workload service; answers the unit's name.
    KillWorkload {
        unit: String,
        container: String,
        service: String,
    },
    /// Loses a unit's machine: its workloads SIGKILLed, the unit gone without
    /// hooks; answers the unit's name.
    CrashUnit {
        unit: String,
    },
    /// Stops the controller and its workloads; `destroy` removes the model too.
    Shutdown {
        destroy: bool,
    },
}

/// One reply line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    Progress(String),
    Done(Value),
    Error(String),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach the controller at {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the controller hung up: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
}

/// Sends a request and reads its replies, handing each progress line to
/// `progress`; returns the final value.
pub fn call(
    socket: &Path,
    request: &Request,
    mut progress: impl FnMut(&str),
) -> Result<Value, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| CallError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    let mut line = serde_json::to_vec(request).expect("requests serialise");
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut answer = String::new();
        if reader.read_line(&mut answer)? == 0 {
            return Err(CallError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        match serde_json::from_str::<Reply>(&answer)
            .map_err(|e| CallError::Io(std::io::Error::other(e)))?
        {
            Reply::Progress(p) => progress(&p),
            Reply::Done(v) => return Ok(v),
            Reply::Error(e) => return Err(CallError::Refused(e)),
        }
    }
}

/// Writes one reply line; false when the client has gone.
pub fn send(mut stream: &UnixStream, reply: &Reply) -> bool {
    let mut line = serde_json::to_vec(reply).expect("replies serialise");
    line.push(b'\n');
    stream.write_all(&line).is_ok()
}
