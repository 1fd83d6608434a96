//! The HTTP API: routes, Pebble's JSON envelope, and each endpoint's arguments.

use crate::checks::Checks;
use crate::exec::{Executions, Payload};
use crate::files::{FileError, Files, Options};
use crate::logs::Forwarder;
use crate::notices::{self, Filter, Notices};
use crate::plan;
use crate::services::{signal_number, ServiceError, Services};
use crate::timefmt::{parse_go_duration, parse_rfc3339};
use http_exchange::server::{Request, Response};
use pebble_api::multipart::{self, Part};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The version `GET /v1/system-info` reports.
pub const VERSION: &str = "1.32.1-local";

/// Everything the API serves.
pub(crate) struct Api {
    pub services: Arc<Services>,
    pub executions: Arc<Executions>,
    pub checks: Checks,
    pub files: Files,
    pub notices: Notices,
    pub logs: Arc<Forwarder>,
}

/// The longest custom notice key.
const MAX_NOTICE_KEY: usize = 256;
/// The most a notice's data may take, as JSON.
const MAX_NOTICE_DATA: usize = 4 * 1024;

fn json_response(status: u16, value: &Value) -> Response {
    Response {
        status,
        content_type: "application/json".into(),
        body: value.to_string().into_bytes(),
    }
}

fn sync_value(result: Value) -> Value {
    json!({"type": "sync", "status-code": 200, "status": "OK", "result": result})
}

fn sync(result: Value) -> Response {
    json_response(200, &sync_value(result))
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}

fn error(status: u16, kind: &str, message: impl Into<String>) -> Response {
    let mut result = json!({"message": message.into()});
    if !kind.is_empty() {
        result["kind"] = kind.into();
    }
    json_response(
        status,
        &json!({"type": "error", "status-code": status, "status": status_text(status), "result": result}),
    )
}

/// An error envelope with `status` and `message`, for the server's own use.
pub(crate) fn error_response(status: u16, message: &str) -> Response {
    error(status, "", message)
}

fn bad_request(message: impl Into<String>) -> Response {
    error(400, "", message)
}

/// A comma-separated list from every occurrence of a query parameter.
fn list_param(request: &Request, key: &str) -> Vec<String> {
    request
        .query
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_json<T: for<'de> Deserialize<'de>>(request: &Request) -> Result<T, Response> {
    serde_json::from_slice(&request.body)
        .map_err(|e| bad_request(format!("cannot decode request body: {e}")))
}

impl Api {
    /// Answers one request.
    pub fn handle(&self, request: &Request) -> Response {
        let method = request.method.as_str();
        let path = request.path.trim_end_matches('/');
        let result = match (method, path) {
            ("GET", "/v1/system-info") => Ok(sync(json!({"version": VERSION}))),
            ("GET", "/v1/health") => Ok(sync(json!({"healthy": true}))),
            ("POST", "/v1/layers") => self.add_layer(request),
            ("GET", "/v1/plan") => Ok(sync(plan::plan_yaml(&self.services.plan()).into())),
            ("GET", "/v1/services") => Ok(sync(self.services.infos(&list_param(request, "names")))),
            ("POST", "/v1/services") => self.service_action(request),
            ("GET", "/v1/files") => self.files_get(request),
            ("POST", "/v1/files") => self.files_post(request),
            ("POST", "/v1/signals") => self.signal(request),
            ("POST", "/v1/exec") => self.exec(request),
            ("GET", "/v1/checks") => Ok(sync(
                self.checks
                    .infos(request.query("level"), &list_param(request, "names")),
            )),
            ("GET", p) if p.starts_with("/v1/changes/") => self.change(request, &p[12..]),
            ("GET", "/v1/notices") => self.notices(request),
            ("POST", "/v1/notices") => self.notify(request),
            ("GET", p) if p.starts_with("/v1/notices/") => {
                let id = &p["/v1/notices/".len()..];
                self.notices
                    .get(id)
                    .map(|n| sync(json!(n)))
                    .ok_or_else(|| error(404, "", format!("cannot find notice with ID {id:?}")))
            }
            (
                _,
                "/v1/system-info" | "/v1/health" | "/v1/layers" | "/v1/plan" | "/v1/services"
                | "/v1/files" | "/v1/signals" | "/v1/checks" | "/v1/notices" | "/v1/exec",
            ) => Ok(error(405, "", "method not allowed")),
            _ => Ok(error(404, "", "not found")),
        };
        result.unwrap_or_else(|response| response)
    }

    fn add_layer(&self, request: &Request) -> Result<Response, Response> {
        #[derive(Deserialize)]
        struct Body {
            action: String,
            #[serde(default)]
            label: String,
            #[serde(default)]
            combine: bool,
            #[serde(default)]
            format: String,
            #[serde(default)]
            layer: String,
        }
        let body: Body = parse_json(request)?;
        if body.action != "add" {
            return Err(bad_request(format!("invalid action {:?}", body.action)));
        }
        if !matches!(body.format.as_str(), "" | "yaml") {
            return Err(bad_request(format!("invalid format {:?}", body.format)));
        }
        if body.label.is_empty() {
            return Err(bad_request("label must be set"));
        }
        let layer = plan::parse_layer(&body.layer).map_err(bad_request)?;
        let plan = self
            .services
            .add_layer(&body.label, layer, body.combine)
            .map_err(bad_request)?;
        self.checks.update(&plan.checks);
        self.logs.update(&plan);
        Ok(sync(true.into()))
    }

    fn service_action(&self, request: &Request) -> Result<Response, Response> {
        #[derive(Deserialize)]
        struct Body {
            action: String,
            #[serde(default)]
            services: Vec<String>,
        }
        let body: Body = parse_json(request)?;
        let id = self
            .services
            .submit(&body.action, body.services)
            .map_err(|e| bad_request(e.to_string()))?;
        Ok(json_response(
            202,
            &json!({"type": "async", "status-code": 202, "status": "Accepted", "change": id, "result": null}),
        ))
    }

    /// `POST /v1/exec`: the command's change, its task waiting for its websockets.
    fn exec(&self, request: &Request) -> Result<Response, Response> {
        let payload: Payload = parse_json(request)?;
        let (id, result) = self.executions.start(payload).map_err(bad_request)?;
        Ok(json_response(
            202,
            &json!({"type": "async", "status-code": 202, "status": "Accepted", "change": id.to_string(), "result": result}),
        ))
    }

    fn change(&self, request: &Request, rest: &str) -> Result<Response, Response> {
        let (id, wait) = match rest.strip_suffix("/wait") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        let missing = || error(404, "", format!("cannot find change with id {id:?}"));
        if wait {
            let timeout = match request.query("timeout") {
                Some(t) if !t.is_empty() => {
                    parse_go_duration(t).map_err(|e| bad_request(e.to_string()))?
                }
                _ => Duration::from_secs(3600),
            };
            match self.services.wait_change(id, timeout) {
                None => return Err(missing()),
                Some(false) => return Err(error(504, "", "timed out waiting for change")),
                Some(true) => {}
            }
        }
        let change = self.services.change(id).ok_or_else(missing)?;
        Ok(sync(change))
    }

    /// `GET /v1/notices`: filtered by `types`, `keys` and `after`; with `timeout`,
    /// waits that long for a match when there is none yet. Unknown types are ignored.
    fn notices(&self, request: &Request) -> Result<Response, Response> {
        let after = match request.query("after") {
            Some(a) if !a.is_empty() => Some(
                parse_rfc3339(a)
                    .map_err(|e| bad_request(format!("invalid \"after\" timestamp: {e}")))?,
            ),
            _ => None,
        };
        let types = list_param(request, "types");
        let known: Vec<String> = types
            .iter()
            .filter(|t| matches!(t.as_str(), "custom" | "change-update" | "warning"))
            .cloned()
            .collect();
        if !types.is_empty() && known.is_empty() {
            return Ok(sync(json!([])));
        }
        let filter = Filter {
            types: known,
            keys: list_param(request, "keys"),
            after,
        };
        let found = match request.query("timeout") {
            Some(t) if !t.is_empty() => {
                let timeout = parse_go_duration(t)
                    .map_err(|e| bad_request(format!("invalid timeout: {e}")))?;
                self.notices.wait(&filter, timeout)
            }
            _ => self.notices.list(&filter),
        };
        Ok(sync(json!(found)))
    }

    /// `POST /v1/notices`: records an occurrence of a custom notice.
    fn notify(&self, request: &Request) -> Result<Response, Response> {
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case")]
        struct Body {
            action: String,
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            key: String,
            #[serde(default)]
            repeat_after: String,
            #[serde(default)]
            data: Value,
        }
        let body: Body = parse_json(request)?;
        if body.action != "add" {
            return Err(bad_request(format!("invalid action {:?}", body.action)));
        }
        if body.kind != notices::CUSTOM {
            return Err(bad_request(format!(
                "invalid type {:?} (can only add \"custom\" notices)",
                body.kind
            )));
        }
        if !notices::valid_custom_key(&body.key) {
            return Err(bad_request(format!(
                "invalid key {:?} (must be in \"domain.com/key\" format)",
                body.key
            )));
        }
        if body.key.len() > MAX_NOTICE_KEY {
            return Err(bad_request(format!(
                "key must be {MAX_NOTICE_KEY} bytes or less"
            )));
        }
        let repeat_after = match body.repeat_after.as_str() {
            "" => Duration::ZERO,
            r => parse_go_duration(r)
                .map_err(|e| bad_request(format!("invalid repeat-after: {e}")))?,
        };
        if body.data.to_string().len() > MAX_NOTICE_DATA {
            return Err(bad_request(format!(
                "total size of data must be {MAX_NOTICE_DATA} bytes or less"
            )));
        }
        let data: BTreeMap<String, String> = match body.data {
            Value::Null => BTreeMap::new(),
            data => serde_json::from_value(data)
                .map_err(|e| bad_request(format!("cannot decode notice data: {e}")))?,
        };
        let id = self.notices.add(
            notices::CUSTOM,
            &body.key,
            data,
            repeat_after,
            SystemTime::now(),
        );
        Ok(sync(json!({"id": id})))
    }

    fn signal(&self, request: &Request) -> Result<Response, Response> {
        #[derive(Deserialize)]
        struct Body {
            signal: String,
            #[serde(default)]
            services: Vec<String>,
        }
        let body: Body = parse_json(request)?;
        let signal = signal_number(&body.signal)
            .ok_or_else(|| bad_request(format!("invalid signal name {:?}", body.signal)))?;
        if body.services.is_empty() {
            return Err(bad_request("must specify one or more services"));
        }
        match self.services.signal(signal, &body.services) {
            Ok(()) => Ok(sync(true.into())),
            Err(e @ ServiceError::NoService(_)) => Err(error(404, "", e.to_string())),
            Err(e) => Err(bad_request(e.to_string())),
        }
    }

    fn files_get(&self, request: &Request) -> Result<Response, Response> {
        match request.query("action").unwrap_or_default() {
            "read" => Ok(self.read_files(request)),
            "list" => {
                let path = request.query("path").unwrap_or_default();
                let pattern = request.query("pattern").filter(|p| !p.is_empty());
                let itself = request.query("itself") == Some("true");
                match self.files.list(path, pattern, itself) {
                    Ok(entries) => Ok(sync(Value::Array(entries))),
                    Err(e) => {
                        let status = if e.kind == "not-found" { 404 } else { 400 };
                        Err(error(status, e.kind, e.message))
                    }
                }
            }
            other => Err(bad_request(format!("invalid action {other:?}"))),
        }
    }

    /// A multipart answer: a `files` part per readable path, then the `response`.
    fn read_files(&self, request: &Request) -> Response {
        let mut parts = Vec::new();
        let mut results = Vec::new();
        for (_, path) in request.query.iter().filter(|(k, _)| k == "path") {
            match self.files.read(path) {
                Ok(content) => {
                    parts.push(Part {
                        name: "files".into(),
                        filename: Some(path.clone()),
                        content_type: Some("application/octet-stream".into()),
                        body: content,
                    });
                    results.push(json!({"path": path}));
                }
                Err(e) => results.push(json!({"path": path, "error": e.json()})),
            }
        }
        parts.push(Part {
            name: "response".into(),
            filename: None,
            content_type: Some("application/json".into()),
            body: sync_value(Value::Array(results)).to_string().into_bytes(),
        });
        let (boundary, body) = multipart::encode(&parts);
        Response {
            status: 200,
            content_type: format!("multipart/form-data; boundary={boundary}"),
            body,
        }
    }

    fn files_post(&self, request: &Request) -> Result<Response, Response> {
        let content_type = request.header("content-type").unwrap_or_default();
        if let Some(boundary) = multipart::boundary(content_type) {
            return self.write_files(request, &boundary);
        }
        #[derive(Deserialize)]
        struct Body {
            action: String,
            #[serde(default)]
            dirs: Vec<Entry>,
            #[serde(default)]
            paths: Vec<Entry>,
        }
        let body: Body = parse_json(request)?;
        let results: Vec<Value> = match body.action.as_str() {
            "make-dirs" => body
                .dirs
                .iter()
                .map(|d| {
                    outcome(
                        &d.path,
                        self.files.make_dir(&d.path, &d.options(d.make_parents)),
                    )
                })
                .collect(),
            "remove" => body
                .paths
                .iter()
                .map(|p| outcome(&p.path, self.files.remove(&p.path, p.recursive)))
                .collect(),
            other => return Err(bad_request(format!("invalid action {other:?}"))),
        };
        Ok(sync(Value::Array(results)))
    }

    fn write_files(&self, request: &Request, boundary: &str) -> Result<Response, Response> {
        #[derive(Deserialize)]
        struct Body {
            action: String,
            #[serde(default)]
            files: Vec<Entry>,
        }
        let parts =
            multipart::decode(&request.body, boundary).map_err(|e| bad_request(e.to_string()))?;
        let head = parts
            .iter()
            .find(|p| p.name == "request")
            .ok_or_else(|| bad_request("must include request field"))?;
        let body: Body = serde_json::from_slice(&head.body)
            .map_err(|e| bad_request(format!("cannot decode request field: {e}")))?;
        if body.action != "write" {
            return Err(bad_request(format!("invalid action {:?}", body.action)));
        }
        let results = body
            .files
            .iter()
            .map(|entry| {
                let content = parts
                    .iter()
                    .find(|p| p.name == "files" && p.filename.as_deref() == Some(&entry.path));
                let result = match content {
                    Some(part) => {
                        self.files
                            .write(&entry.path, &part.body, &entry.options(entry.make_dirs))
                    }
                    None => Err(FileError {
                        kind: "generic-file-error",
                        message: format!("no file content for path {:?}", entry.path),
                    }),
                };
                outcome(&entry.path, result)
            })
            .collect();
        Ok(sync(Value::Array(results)))
    }
}

/// One path of a files request.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Entry {
    path: String,
    #[serde(default)]
    make_dirs: bool,
    #[serde(default)]
    make_parents: bool,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    permissions: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    user_id: Option<u32>,
    #[serde(default)]
    group_id: Option<u32>,
}

impl Entry {
    fn options(&self, make_parents: bool) -> Options {
        Options {
            permissions: self.permissions.clone(),
            user: self.user.clone().or(self.user_id.map(|u| u.to_string())),
            group: self.group.clone().or(self.group_id.map(|g| g.to_string())),
            make_parents,
        }
    }
}

fn outcome(path: &str, result: Result<(), FileError>) -> Value {
    match result {
        Ok(()) => json!({"path": path}),
        Err(e) => json!({"path": path, "error": e.json()}),
    }
}
