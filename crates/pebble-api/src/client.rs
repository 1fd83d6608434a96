//! [`PebbleClient`]: Pebble's HTTP API over its unix socket.

use super::http::{self, protocol};
use super::multipart::{self, Part};
use super::websocket::{read_stream, write_stream};
use super::{
    CheckInfo, Exec, ExecOutput, FileInfo, FileOptions, Layer, Notice, NoticeQuery, Notify, Pebble,
    PebbleError, PebbleResult, Plan, ServiceInfo, SystemInfo,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tungstenite::WebSocket;

/// How long each socket read or write may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for a change (start, stop, restart, replan) to finish.
const CHANGE_WAIT: Duration = Duration::from_secs(30);

/// A client of the Pebble listening on a unix socket; connects once per call.
#[derive(Clone, Debug)]
pub struct PebbleClient {
    socket: PathBuf,
}

impl PebbleClient {
    /// A client of the Pebble at `socket`; nothing is connected yet.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends a request with an optional JSON body and unwraps the JSON envelope.
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        timeout: Duration,
    ) -> PebbleResult<Envelope> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut headers = vec![("Accept", "application/json")];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let target = http::target(path, query);
        let response = http::send(&self.socket, timeout, method, &target, &headers, &body)?;
        Envelope::parse(response.status, &response.body)
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> PebbleResult<T> {
        self.request("GET", path, query, None, TIMEOUT)?.result()
    }

    fn post(&self, path: &str, body: Value) -> PebbleResult<Envelope> {
        self.request("POST", path, &[], Some(body), TIMEOUT)
    }

    /// Applies a service action and waits for the change it starts.
    fn change(&self, action: &str, names: &[&str]) -> PebbleResult<()> {
        let body = json!({"action": action, "services": names});
        let id = self.post("/v1/services", body)?.change.unwrap_or_default();
        if id.is_empty() {
            return Err(protocol(format!("no change id for {action}")));
        }
        let change = self.wait(&id, CHANGE_WAIT)?;
        if !change.err.is_empty() {
            Err(PebbleError::Change {
                change: id,
                err: change.err,
            })
        } else {
            Ok(())
        }
    }

    /// Waits up to `timeout` for change `id` to be ready.
    fn wait(&self, id: &str, timeout: Duration) -> PebbleResult<Change> {
        let path = format!("/v1/changes/{}/wait", http::percent_encode(id));
        let wait = format!("{}.000s", timeout.as_secs());
        let query = [("timeout", wait.as_str())];
        let change: Change = match self.request("GET", &path, &query, None, timeout + TIMEOUT) {
            Err(PebbleError::Api {
                status_code: 504, ..
            }) => return Err(PebbleError::Timeout(id.into())),
            response => response?.result()?,
        };
        if change.ready {
            Ok(change)
        } else {
            Err(PebbleError::Timeout(id.into()))
        }
    }

    /// Connects to websocket `name` of exec task `task`. Reads may take up
    /// to `read_timeout` (none: as long as the command runs).
    fn websocket(
        &self,
        task: &str,
        name: &str,
        read_timeout: Option<Duration>,
    ) -> PebbleResult<WebSocket<UnixStream>> {
        let stream = UnixStream::connect(&self.socket).map_err(|source| PebbleError::Connect {
            path: self.socket.display().to_string(),
            source,
        })?;
        stream.set_read_timeout(read_timeout)?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let url = format!(
            "ws://localhost/v1/tasks/{}/websocket/{name}",
            http::percent_encode(task)
        );
        let (ws, _) = tungstenite::client::client(url.as_str(), stream)
            .map_err(|e| protocol(format!("exec websocket {name}: {e}")))?;
        Ok(ws)
    }
}

/// A websocket failure during exec, as a [`PebbleError`].
fn ws_error(e: tungstenite::Error) -> PebbleError {
    match e {
        tungstenite::Error::Io(e) => PebbleError::Io(e),
        other => protocol(format!("exec websocket: {other}")),
    }
}

/// Pebble's JSON response envelope.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(rename = "status-code", default)]
    status_code: u16,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    change: Option<String>,
}

impl Envelope {
    /// Parses an envelope, turning an error envelope (or status) into [`PebbleError::Api`].
    fn parse(status: u16, body: &[u8]) -> PebbleResult<Self> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| protocol(format!("HTTP {status} with an invalid JSON body: {e}")))?;
        if envelope.kind != "error" && status < 400 {
            return Ok(envelope);
        }
        let error: ApiError = serde_json::from_value(envelope.result).unwrap_or_default();
        Err(PebbleError::Api {
            status_code: if envelope.status_code == 0 {
                status
            } else {
                envelope.status_code
            },
            kind: error.kind,
            message: error.message,
        })
    }

    fn result<T: DeserializeOwned>(self) -> PebbleResult<T> {
        serde_json::from_value(self.result).map_err(|e| protocol(format!("unexpected result: {e}")))
    }
}

/// The result of an error envelope, or one path's error.
#[derive(Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    kind: String,
}

/// The part of a change that tells whether it finished well, and its
/// tasks' data (an exec task's exit code).
#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    err: String,
    #[serde(default)]
    tasks: Vec<Task>,
}

/// A change's task: only its data is read.
#[derive(Deserialize)]
struct Task {
    #[serde(default)]
    data: Value,
}

/// One path's outcome in a file operation.
#[derive(Deserialize)]
struct PathResult {
    path: String,
    #[serde(default)]
    error: Option<ApiError>,
}

/// The first per-path error, as [`PebbleError::Path`].
fn check_paths(results: Vec<PathResult>) -> PebbleResult<()> {
    match results.into_iter().find_map(|r| Some((r.path, r.error?))) {
        Some((path, error)) => Err(PebbleError::Path {
            path,
            message: error.message,
        }),
        None => Ok(()),
    }
}

/// A file or directory entry: the path, the `flag` (`make-dirs` or `make-parents`) and ownership.
fn file_entry(path: &str, flag: &str, options: &FileOptions) -> Value {
    let mut entry = Map::new();
    entry.insert("path".into(), path.into());
    entry.insert(flag.into(), options.make_parents.into());
    if let Some(mode) = options.permissions {
        entry.insert("permissions".into(), format!("{mode:03o}").into());
    }
    if let Some(user) = &options.user {
        entry.insert("user".into(), user.as_str().into());
    }
    if let Some(group) = &options.group {
        entry.insert("group".into(), group.as_str().into());
    }
    Value::Object(entry)
}

impl Pebble for PebbleClient {
    fn system_info(&mut self) -> PebbleResult<SystemInfo> {
        self.get("/v1/system-info", &[])
    }

    fn add_layer(&mut self, label: &str, layer: &Layer, combine: bool) -> PebbleResult<()> {
        let layer = serde_json::to_string(layer)
            .map_err(|e| protocol(format!("cannot serialize layer: {e}")))?;
        let body = json!({
            "action": "add", "label": label, "combine": combine, "format": "yaml", "layer": layer,
        });
        self.post("/v1/layers", body).map(drop)
    }

    fn plan(&mut self) -> PebbleResult<Plan> {
        let yaml: String = self.get("/v1/plan", &[("format", "yaml")])?;
        if yaml.trim().is_empty() {
            return Ok(Plan::default());
        }
        yaml_serde::from_str(&yaml).map_err(|e| protocol(format!("invalid plan YAML: {e}")))
    }

    fn services(&mut self, names: &[&str]) -> PebbleResult<Vec<ServiceInfo>> {
        let names = names.join(",");
        let mut query = Vec::new();
        if !names.is_empty() {
            query.push(("names", names.as_str()));
        }
        self.get("/v1/services", &query)
    }

    fn start(&mut self, names: &[&str]) -> PebbleResult<()> {
        self.change("start", names)
    }

    fn stop(&mut self, names: &[&str]) -> PebbleResult<()> {
        self.change("stop", names)
    }

    fn restart(&mut self, names: &[&str]) -> PebbleResult<()> {
        self.change("restart", names)
    }

    fn replan(&mut self) -> PebbleResult<()> {
        self.change("replan", &[])
    }

    fn push(&mut self, path: &str, content: &[u8], options: &FileOptions) -> PebbleResult<()> {
        let request = json!({"action": "write", "files": [file_entry(path, "make-dirs", options)]});
        let (boundary, body) = multipart::encode(&[
            Part {
                name: "request".into(),
                filename: None,
                content_type: Some("application/json".into()),
                body: request.to_string().into_bytes(),
            },
            Part {
                name: "files".into(),
                filename: Some(path.into()),
                content_type: Some("application/octet-stream".into()),
                body: content.to_vec(),
            },
        ]);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let headers = [
            ("Accept", "application/json"),
            ("Content-Type", &content_type),
        ];
        let response = http::send(&self.socket, TIMEOUT, "POST", "/v1/files", &headers, &body)?;
        check_paths(Envelope::parse(response.status, &response.body)?.result()?)
    }

    fn pull(&mut self, path: &str) -> PebbleResult<Vec<u8>> {
        let target = http::target("/v1/files", &[("action", "read"), ("path", path)]);
        let headers = [("Accept", "multipart/form-data")];
        let response = http::send(&self.socket, TIMEOUT, "GET", &target, &headers, &[])?;
        let Some(boundary) = response
            .content_type
            .as_deref()
            .and_then(multipart::boundary)
        else {
            Envelope::parse(response.status, &response.body)?;
            return Err(protocol("file read answered without multipart"));
        };
        let mut parts = multipart::decode(&response.body, &boundary)?;
        let envelope = parts
            .iter()
            .find(|p| p.name == "response")
            .ok_or_else(|| protocol("file read answered without a response part"))?;
        check_paths(Envelope::parse(response.status, &envelope.body)?.result()?)?;
        let file = parts
            .iter()
            .position(|p| p.name == "files" && p.filename.as_deref() == Some(path))
            .ok_or_else(|| protocol(format!("file read answered without {path}")))?;
        Ok(parts.swap_remove(file).body)
    }

    fn list_files(&mut self, path: &str, pattern: Option<&str>) -> PebbleResult<Vec<FileInfo>> {
        let mut query = vec![("action", "list"), ("path", path)];
        query.extend(pattern.map(|p| ("pattern", p)));
        self.get("/v1/files", &query)
    }

    fn make_dir(&mut self, path: &str, options: &FileOptions) -> PebbleResult<()> {
        let body =
            json!({"action": "make-dirs", "dirs": [file_entry(path, "make-parents", options)]});
        check_paths(self.post("/v1/files", body)?.result()?)
    }

    fn remove_path(&mut self, path: &str, recursive: bool) -> PebbleResult<()> {
        let body = json!({"action": "remove", "paths": [{"path": path, "recursive": recursive}]});
        check_paths(self.post("/v1/files", body)?.result()?)
    }

    fn send_signal(&mut self, signal: &str, services: &[&str]) -> PebbleResult<()> {
        let body = json!({"signal": signal, "services": services});
        self.post("/v1/signals", body).map(drop)
    }

    fn checks(&mut self, level: Option<&str>, names: &[&str]) -> PebbleResult<Vec<CheckInfo>> {
        let names = names.join(",");
        let mut query = Vec::new();
        query.extend(level.map(|l| ("level", l)));
        if !names.is_empty() {
            query.push(("names", names.as_str()));
        }
        self.get("/v1/checks", &query)
    }

    fn notices(&mut self, query: &NoticeQuery) -> PebbleResult<Vec<Notice>> {
        let (types, keys) = (query.types.join(","), query.keys.join(","));
        let mut params = Vec::new();
        for (name, value) in [("types", &types), ("keys", &keys)] {
            if !value.is_empty() {
                params.push((name, value.as_str()));
            }
        }
        params.extend(query.after.as_deref().map(|a| ("after", a)));
        self.get("/v1/notices", &params)
    }

    fn notice(&mut self, id: &str) -> PebbleResult<Notice> {
        self.get(&format!("/v1/notices/{}", http::percent_encode(id)), &[])
    }

    fn notify(&mut self, notify: &Notify) -> PebbleResult<String> {
        #[derive(Deserialize)]
        struct Added {
            id: String,
        }
        let mut body = json!({"action": "add", "type": "custom", "key": notify.key});
        if !notify.data.is_empty() {
            body["data"] = json!(notify.data);
        }
        if let Some(after) = &notify.repeat_after {
            body["repeat-after"] = after.as_str().into();
        }
        let added: Added = self.post("/v1/notices", body)?.result()?;
        Ok(added.id)
    }

    fn exec(&mut self, exec: &Exec) -> PebbleResult<ExecOutput> {
        let mut body = json!({
            "command": exec.command,
            "environment": exec.environment,
            "split-stderr": true,
        });
        for (key, value) in [
            ("working-dir", &exec.working_dir),
            ("user", &exec.user),
            ("group", &exec.group),
        ] {
            if let Some(value) = value {
                body[key] = value.as_str().into();
            }
        }
        if let Some(timeout) = exec.timeout {
            body["timeout"] = format!("{}ms", timeout.as_millis()).into();
        }
        let envelope = self.post("/v1/exec", body)?;
        let change = envelope
            .change
            .clone()
            .ok_or_else(|| protocol("exec answered without a change"))?;
        let task = envelope.result["task-id"]
            .as_str()
            .ok_or_else(|| protocol("exec answered without a task id"))?
            .to_string();
        // Reads wait as long as the command may run, and a little more.
        let read_timeout = exec.timeout.map(|t| t + TIMEOUT);
        let mut control = self.websocket(&task, "control", read_timeout)?;
        let mut stdio = self.websocket(&task, "stdio", read_timeout)?;
        let mut errors = self.websocket(&task, "stderr", read_timeout)?;
        let (stdout, stderr) = std::thread::scope(|scope| {
            let stderr = scope.spawn(move || read_stream(&mut errors));
            let stdout =
                write_stream(&mut stdio, &exec.stdin).and_then(|()| read_stream(&mut stdio));
            let stderr = stderr
                .join()
                .unwrap_or_else(|_| Err(tungstenite::Error::ConnectionClosed));
            (stdout, stderr)
        });
        let _ = control.close(None);
        let (stdout, stderr) = (stdout.map_err(ws_error)?, stderr.map_err(ws_error)?);
        let done = self.wait(&change, CHANGE_WAIT)?;
        let exit_code = done
            .tasks
            .iter()
            .find_map(|t| t.data["exit-code"].as_i64())
            .unwrap_or(-1);
        if !done.err.is_empty() && exit_code == -1 {
            return Err(PebbleError::Change {
                change,
                err: done.err,
            });
        }
        Ok(ExecOutput {
            exit_code: i32::try_from(exit_code).unwrap_or(-1),
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Check, Service, TcpCheck};
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::JoinHandle;

    /// A request as the fake Pebble received it.
    struct Recorded {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Recorded {
        fn header(&self, name: &str) -> Option<&str> {
            let (_, value) = self
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
            Some(value)
        }

        fn json(&self) -> Value {
            assert_eq!(self.header("content-type"), Some("application/json"));
            serde_json::from_slice(&self.body).unwrap()
        }

        fn line(&self) -> String {
            format!("{} {}", self.method, self.target)
        }
    }

    /// A Pebble on a socket in a fresh temporary directory, answering from a script.
    struct FakePebble {
        dir: PathBuf,
        socket: PathBuf,
        server: Option<JoinHandle<Vec<Recorded>>>,
    }

    impl FakePebble {
        fn start(script: Vec<Vec<u8>>) -> Self {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("charm-pebble-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let socket = dir.join("pebble.socket");
            let listener = UnixListener::bind(&socket).unwrap();
            let server = std::thread::spawn(move || {
                let mut recorded = Vec::new();
                for response in script {
                    let (mut stream, _) = listener.accept().unwrap();
                    recorded.push(read_request(&mut stream));
                    stream.write_all(&response).unwrap();
                }
                recorded
            });
            Self {
                dir,
                socket,
                server: Some(server),
            }
        }

        fn client(&self) -> PebbleClient {
            PebbleClient::new(&self.socket)
        }

        /// The requests, once the whole script has been answered.
        fn finish(mut self) -> Vec<Recorded> {
            self.server.take().unwrap().join().unwrap()
        }
    }

    impl Drop for FakePebble {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn read_request(stream: &mut UnixStream) -> Recorded {
        let mut buf = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "request cut short");
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(len) = request.parse(&buf).unwrap() {
                let headers: Vec<(String, String)> = request
                    .headers
                    .iter()
                    .map(|h| (h.name.into(), String::from_utf8(h.value.to_vec()).unwrap()))
                    .collect();
                let (_, length) = headers.iter().find(|(n, _)| n == "Content-Length").unwrap();
                let length: usize = length.parse().unwrap();
                let method = request.method.unwrap().to_string();
                let target = request.path.unwrap().to_string();
                let mut body = buf.split_off(len);
                while body.len() < length {
                    let n = stream.read(&mut chunk).unwrap();
                    assert!(n > 0, "request body cut short");
                    body.extend_from_slice(&chunk[..n]);
                }
                assert_eq!(body.len(), length);
                return Recorded {
                    method,
                    target,
                    headers,
                    body,
                };
            }
        }
    }

    fn raw(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body].concat()
    }

    fn reply(status: u16, envelope: Value) -> Vec<u8> {
        raw(status, "application/json", envelope.to_string().as_bytes())
    }

    fn sync(result: Value) -> Vec<u8> {
        reply(
            200,
            json!({"type": "sync", "status-code": 200, "result": result}),
        )
    }

    fn accepted(change: &str) -> Vec<u8> {
        reply(
            202,
            json!({"type": "async", "status-code": 202, "change": change}),
        )
    }

    fn error(status: u16, kind: &str, message: &str) -> Vec<u8> {
        let result = json!({"message": message, "kind": kind});
        reply(
            status,
            json!({"type": "error", "status-code": status, "result": result}),
        )
    }

    fn change(id: &str, ready: bool, err: &str) -> Vec<u8> {
        sync(json!({"id": id, "kind": "start", "status": "Done", "ready": ready, "err": err}))
    }

    fn multipart_response(boundary: &str, file: Option<(&str, &[u8])>, result: Value) -> Vec<u8> {
        let mut body = b"\r\n".to_vec();
        if let Some((path, content)) = file {
            body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path}\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes());
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        let envelope = json!({"type": "sync", "status-code": 200, "result": result});
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"response\"\r\nContent-Type: application/json\r\n\r\n{envelope}\r\n--{boundary}--\r\n").into_bytes());
        raw(
            200,
            &format!("multipart/form-data; boundary={boundary}"),
            &body,
        )
    }

    const CONTENT: &[u8] = b"line one\r\nline two\r\n--b0undary\r\n\0\xff\xfe\r\n";

    #[test]
    fn system_info_sends_a_plain_get() {
        let pebble = FakePebble::start(vec![sync(json!({"version": "1.10.2", "boot-id": "x"}))]);
        let info = pebble.client().system_info().unwrap();
        assert_eq!(info.version, "1.10.2");
        let requests = pebble.finish();
        let up = FakePebble::start(vec![sync(json!({"version": "1.10.2"}))]);
        assert!(up.client().can_connect());
        up.finish();
        let request = &requests[0];
        assert_eq!(request.line(), "GET /v1/system-info");
        assert_eq!(request.header("host"), Some("localhost"));
        assert_eq!(request.header("connection"), Some("close"));
        assert_eq!(request.header("content-length"), Some("0"));
    }

    #[test]
    fn add_layer_sends_the_layer_as_yaml() {
        let mut layer = Layer {
            summary: "app".into(),
            ..Layer::default()
        };
        let service = Service {
            r#override: "replace".into(),
            command: "/bin/app --port 80".into(),
            startup: "enabled".into(),
            environment: [("PORT".into(), "80".into())].into(),
            ..Service::default()
        };
        layer.services.insert("app".into(), service);
        let check = Check {
            level: "alive".into(),
            tcp: Some(TcpCheck {
                port: 80,
                host: None,
            }),
            ..Check::default()
        };
        layer.checks.insert("up".into(), check);
        let pebble = FakePebble::start(vec![sync(json!(true))]);
        pebble.client().add_layer("charm", &layer, true).unwrap();
        let requests = pebble.finish();
        assert_eq!(requests[0].line(), "POST /v1/layers");
        let body = requests[0].json();
        assert_eq!(body["action"], "add");
        assert_eq!(body["label"], "charm");
        assert_eq!(body["combine"], true);
        assert_eq!(body["format"], "yaml");
        let sent: Layer = yaml_serde::from_str(body["layer"].as_str().unwrap()).unwrap();
        assert_eq!(sent, layer);
    }

    #[test]
    fn plan_parses_yaml() {
        let yaml = "services:\n  app:\n    override: replace\n    command: run\n    backoff-factor: 1.5\nchecks:\n  up:\n    level: ready\n    http:\n      url: http://localhost/\n";
        let pebble = FakePebble::start(vec![sync(json!(yaml)), sync(json!(""))]);
        let mut client = pebble.client();
        let plan = client.plan().unwrap();
        assert_eq!(plan.services["app"].command, "run");
        assert_eq!(plan.services["app"].backoff_factor, Some(1.5));
        assert_eq!(
            plan.checks["up"].http.as_ref().unwrap().url,
            "http://localhost/"
        );
        assert_eq!(client.plan().unwrap(), Plan::default());
        for request in pebble.finish() {
            assert_eq!(request.line(), "GET /v1/plan?format=yaml");
        }
    }

    #[test]
    fn services_reads_a_chunked_list() {
        let list = json!({"type": "sync", "status-code": 200, "result": [
            {"name": "app", "startup": "enabled", "current": "active", "current-since": "now"},
            {"name": "db", "startup": "disabled", "current": "inactive"},
        ]})
        .to_string();
        let (first, second) = list.split_at(list.len() / 2);
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x};x=y\r\n{second}\r\n0\r\nX-Done: 1\r\n\r\n",
            first.len(),
            second.len()
        );
        let pebble = FakePebble::start(vec![chunked.into_bytes(), sync(json!([]))]);
        let mut client = pebble.client();
        let services = client.services(&["app", "db"]).unwrap();
        assert_eq!(services.len(), 2);
        assert!(services[0].is_running());
        assert_eq!(services[1].startup, "disabled");
        assert!(client.services(&[]).unwrap().is_empty());
        let requests = pebble.finish();
        assert_eq!(requests[0].line(), "GET /v1/services?names=app%2Cdb");
        assert_eq!(requests[1].line(), "GET /v1/services");
    }

    #[test]
    fn service_actions_wait_for_their_changes() {
        let mut script = Vec::new();
        for id in ["1", "2", "3", "4"] {
            script.extend([accepted(id), change(id, true, "")]);
        }
        let pebble = FakePebble::start(script);
        let mut client = pebble.client();
        client.start(&["app"]).unwrap();
        client.stop(&["app", "db"]).unwrap();
        client.restart(&["db"]).unwrap();
        client.replan().unwrap();
        let requests = pebble.finish();
        let expected = [
            json!({"action": "start", "services": ["app"]}),
            json!({"action": "stop", "services": ["app", "db"]}),
            json!({"action": "restart", "services": ["db"]}),
            json!({"action": "replan", "services": []}),
        ];
        for (i, (pair, body)) in requests.chunks(2).zip(expected).enumerate() {
            assert_eq!(pair[0].line(), "POST /v1/services");
            assert_eq!(pair[0].json(), body);
            let wait = format!("GET /v1/changes/{}/wait?timeout=30.000s", i + 1);
            assert_eq!(pair[1].line(), wait);
        }
    }

    #[test]
    fn failed_and_unfinished_changes_are_errors() {
        let pebble = FakePebble::start(vec![
            accepted("5"),
            change("5", true, "cannot start service: exited quickly"),
            accepted("6"),
            error(504, "", "timed out waiting for change after 30s"),
            accepted("7"),
            change("7", false, ""),
        ]);
        let mut client = pebble.client();
        match client.start(&["app"]).unwrap_err() {
            PebbleError::Change { change, err } => {
                assert_eq!(change, "5");
                assert_eq!(err, "cannot start service: exited quickly");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(client.restart(&["app"]), Err(PebbleError::Timeout(id)) if id == "6"));
        assert!(matches!(client.replan(), Err(PebbleError::Timeout(id)) if id == "7"));
        assert_eq!(pebble.finish().len(), 6);
    }

    #[test]
    fn error_envelopes_and_garbage_are_errors() {
        let pebble = FakePebble::start(vec![
            error(404, "not-found", "stat /x: no such file or directory"),
            raw(502, "text/plain", b"bad gateway"),
        ]);
        let mut client = pebble.client();
        match client.list_files("/x", None).unwrap_err() {
            PebbleError::Api {
                status_code,
                kind,
                message,
            } => {
                assert_eq!(status_code, 404);
                assert_eq!(kind, "not-found");
                assert_eq!(message, "stat /x: no such file or directory");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            client.system_info(),
            Err(PebbleError::Protocol(_))
        ));
        pebble.finish();
    }

    #[test]
    fn pull_reads_multipart_content_and_errors() {
        let missing = json!([{"path": "/missing", "error": {"message": "stat /missing: no such file", "kind": "not-found"}}]);
        let pebble = FakePebble::start(vec![
            multipart_response(
                "b0undary-real",
                Some(("/etc/app.conf", CONTENT)),
                json!([{"path": "/etc/app.conf"}]),
            ),
            multipart_response("xyz", None, missing),
            error(403, "login-required", "access denied"),
        ]);
        let mut client = pebble.client();
        assert_eq!(client.pull("/etc/app.conf").unwrap(), CONTENT);
        match client.pull("/missing").unwrap_err() {
            PebbleError::Path { path, message } => {
                assert_eq!(path, "/missing");
                assert_eq!(message, "stat /missing: no such file");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            client.pull("/secret"),
            Err(PebbleError::Api { status_code: 403, kind, .. }) if kind == "login-required"
        ));
        let requests = pebble.finish();
        assert_eq!(
            requests[0].line(),
            "GET /v1/files?action=read&path=%2Fetc%2Fapp.conf"
        );
        assert_eq!(requests[0].header("accept"), Some("multipart/form-data"));
    }

    #[test]
    fn push_sends_a_multipart_request() {
        let missing = json!([{"path": "/ro/x", "error": {"message": "read-only file system", "kind": "permission-denied"}}]);
        let pebble = FakePebble::start(vec![
            sync(json!([{"path": "/etc/app.conf"}])),
            sync(missing),
        ]);
        let mut client = pebble.client();
        let options = FileOptions {
            permissions: Some(0o640),
            user: Some("app".into()),
            group: None,
            make_parents: true,
        };
        client.push("/etc/app.conf", CONTENT, &options).unwrap();
        let err = client
            .push("/ro/x", b"", &FileOptions::default())
            .unwrap_err();
        assert!(matches!(err, PebbleError::Path { path, .. } if path == "/ro/x"));
        let requests = pebble.finish();
        assert_eq!(requests[0].line(), "POST /v1/files");
        let content_type = requests[0].header("content-type").unwrap();
        let boundary = multipart::boundary(content_type).unwrap();
        let parts = multipart::decode(&requests[0].body, &boundary).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "request");
        assert_eq!(parts[0].content_type.as_deref(), Some("application/json"));
        let request: Value = serde_json::from_slice(&parts[0].body).unwrap();
        let file = json!({"path": "/etc/app.conf", "make-dirs": true, "permissions": "640", "user": "app"});
        assert_eq!(request, json!({"action": "write", "files": [file]}));
        assert_eq!(parts[1].name, "files");
        assert_eq!(parts[1].filename.as_deref(), Some("/etc/app.conf"));
        assert_eq!(parts[1].body, CONTENT);
    }

    #[test]
    fn file_signal_and_check_calls() {
        let entry = json!({"path": "/etc/a.conf", "name": "a.conf", "type": "file", "size": 3,
            "permissions": "644", "user": "root", "group": "root", "last-modified": "2024-01-01T00:00:00Z"});
        let failed = json!([{"path": "/d", "error": {"message": "directory not empty"}}]);
        let check = json!({"name": "up", "level": "ready", "status": "down", "failures": 2, "threshold": 3});
        let pebble = FakePebble::start(vec![
            sync(json!([entry])),
            sync(json!([{"path": "/d"}])),
            sync(failed),
            sync(json!(true)),
            sync(json!([check])),
            sync(json!([])),
        ]);
        let mut client = pebble.client();
        let files = client.list_files("/etc", Some("*.conf")).unwrap();
        assert_eq!(files[0].kind, "file");
        assert_eq!(files[0].size, Some(3));
        assert_eq!(files[0].user.as_deref(), Some("root"));
        let options = FileOptions {
            permissions: Some(0o1755),
            group: Some("g".into()),
            ..FileOptions::default()
        };
        client.make_dir("/d", &options).unwrap();
        let err = client.remove_path("/d", true).unwrap_err();
        assert_eq!(err.to_string(), "/d: directory not empty");
        client.send_signal("SIGHUP", &["app"]).unwrap();
        let checks = client.checks(Some("ready"), &["up", "down"]).unwrap();
        assert_eq!((checks[0].status.as_str(), checks[0].failures), ("down", 2));
        assert!(client.checks(None, &[]).unwrap().is_empty());
        let requests = pebble.finish();
        let lines: Vec<String> = requests.iter().map(Recorded::line).collect();
        assert_eq!(
            lines,
            [
                "GET /v1/files?action=list&path=%2Fetc&pattern=%2A.conf",
                "POST /v1/files",
                "POST /v1/files",
                "POST /v1/signals",
                "GET /v1/checks?level=ready&names=up%2Cdown",
                "GET /v1/checks",
            ]
        );
        let dir = json!({"path": "/d", "make-parents": false, "permissions": "1755", "group": "g"});
        assert_eq!(
            requests[1].json(),
            json!({"action": "make-dirs", "dirs": [dir]})
        );
        let remove = json!({"action": "remove", "paths": [{"path": "/d", "recursive": true}]});
        assert_eq!(requests[2].json(), remove);
        assert_eq!(
            requests[3].json(),
            json!({"signal": "SIGHUP", "services": ["app"]})
        );
    }

    #[test]
    fn notices_are_listed_fetched_and_recorded() {
        let notice = json!({
            "id": "3", "user-id": null, "type": "custom", "key": "example.com/a",
            "first-occurred": "2024-01-02T03:04:05.000000001Z",
            "last-occurred": "2024-01-02T03:04:06.000000001Z",
            "last-repeated": "2024-01-02T03:04:06.000000001Z",
            "occurrences": 2, "last-data": {"k": "v"}, "expire-after": "168h0m0s",
        });
        let pebble = FakePebble::start(vec![
            sync(json!([notice])),
            sync(notice.clone()),
            sync(json!({"id": "4"})),
            sync(json!([])),
        ]);
        let mut client = pebble.client();
        let query = NoticeQuery {
            types: vec!["custom".into()],
            keys: vec!["example.com/a".into(), "example.com/b".into()],
            after: Some("2024-01-01T00:00:00Z".into()),
        };
        let listed = client.notices(&query).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].occurrences, 2);
        assert_eq!(listed[0].last_data["k"], "v");
        assert_eq!(listed[0].user_id, None);
        assert_eq!(listed[0].expire_after.as_deref(), Some("168h0m0s"));
        assert_eq!(client.notice("3").unwrap(), listed[0]);
        let notify = Notify {
            key: "example.com/b".into(),
            data: [("x".into(), "1".into())].into(),
            repeat_after: Some("1h".into()),
        };
        assert_eq!(client.notify(&notify).unwrap(), "4");
        assert!(client.notices(&NoticeQuery::default()).unwrap().is_empty());
        let requests = pebble.finish();
        assert_eq!(
            requests[0].line(),
            "GET /v1/notices?types=custom&keys=example.com%2Fa%2Cexample.com%2Fb&after=2024-01-01T00%3A00%3A00Z"
        );
        assert_eq!(requests[1].line(), "GET /v1/notices/3");
        assert_eq!(requests[2].line(), "POST /v1/notices");
        assert_eq!(
            requests[2].json(),
            json!({"action": "add", "type": "custom", "key": "example.com/b", "data": {"x": "1"}, "repeat-after": "1h"})
        );
        assert_eq!(requests[3].line(), "GET /v1/notices");
    }

    #[test]
    fn a_missing_socket_is_a_connect_error() {
        let socket = std::env::temp_dir()
            .join(format!("charm-pebble-missing-{}", std::process::id()))
            .join("pebble.socket");
        let mut client = PebbleClient::new(&socket);
        assert_eq!(client.socket(), socket);
        assert!(!client.can_connect());
        match client.system_info().unwrap_err() {
            PebbleError::Connect { path, .. } => assert_eq!(path, socket.display().to_string()),
            other => panic!("{other:?}"),
        }
    }
}
