//! Log forwarding: the plan's `log-targets` (type `loki`) receive the output
//! of the services they name. Each service's output is the file its process
//! writes (`/var/log/pebble/<service>.log`); one thread reads what each file
//! gained since the last look, line by line, and queues each line for every
//! target that takes that service. A target's queue is pushed to its
//! `location` as Loki's JSON push body in batches, with a growing pause after
//! a failed push; it holds a bounded number of lines, dropping the oldest
//! (and counting them) while its receiver is away. Services never wait on
//! any of this: they write to their file as before.
//!
//! The same thread keeps each file bounded, as Pebble keeps a service's
//! output in a bounded buffer: a file past [`OUTPUT_LIMIT`] is copied to
//! `<service>.log.1` (replacing the copy before) and emptied in place, which
//! the service, writing in append mode, does not notice.

use pebble_api::{LogTarget, Plan};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the files are read.
const POLL: Duration = Duration::from_millis(250);
/// The most lines one push carries.
const BATCH: usize = 100;
/// How long a line may wait for a fuller batch.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// The most lines a target holds; older ones are dropped.
const BUFFER: usize = 1000;
/// The pause after a first failed push, doubled after each further one.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_LIMIT: Duration = Duration::from_secs(30);
/// How long connecting to a receiver, and each read and write, may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// A line longer than this is sent in pieces.
const MAX_LINE: usize = 64 * 1024;
/// The most bytes a service's output file holds before it is rotated.
pub(crate) const OUTPUT_LIMIT: u64 = 8 * 1024 * 1024;

/// One line of a service's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// When it was read, in nanoseconds since the epoch.
    pub nanos: u128,
    pub service: String,
    pub line: String,
}

/// Where a service's file was read up to, and the unfinished line after it.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// A tail that skips what `path` already holds.
    pub fn at_end(path: &Path) -> Tail {
        Tail {
            offset: std::fs::metadata(path).map_or(0, |m| m.len()),
            partial: Vec::new(),
        }
    }

    /// The complete lines `path` gained; a file that shrank was truncated
    /// and is read again from its start.
    pub fn read(&mut self, path: &Path) -> Vec<String> {
        let Ok(mut file) = File::open(path) else {
            return Vec::new();
        };
        let len = file.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            lines.push(String::from_utf8_lossy(line).into_owned());
        }
        while self.partial.len() > MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            let piece = std::mem::replace(&mut self.partial, rest);
            lines.push(String::from_utf8_lossy(&piece).into_owned());
        }
        lines
    }

    /// [`Tail::read`], then, when `path` holds more than `limit` bytes,
    /// copies it to `<path>.1` and empties it; the lines read on the way are
    /// returned, so nothing read is lost to the rotation.
    pub fn read_bounded(&mut self, path: &Path, limit: u64) -> Vec<String> {
        let mut lines = self.read(path);
        if std::fs::metadata(path).map_or(0, |m| m.len()) <= limit {
            return lines;
        }
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        if let Err(e) = std::fs::copy(path, &old) {
            eprintln!("rotating {}: {e}", path.display());
            return lines;
        }
        lines.extend(self.read(path));
        match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(file) => match file.set_len(0) {
                Ok(()) => self.offset = 0,
                Err(e) => eprintln!("emptying {}: {e}", path.display()),
            },
            Err(e) => eprintln!("emptying {}: {e}", path.display()),
        }
        lines
    }
}

/// A target's lines waiting to be pushed, at most `capacity` of them, each
/// numbered so that a push settles exactly the lines it carried.
#[derive(Debug)]
pub(crate) struct Queue {
    entries: VecDeque<(u64, Entry)>,
    capacity: usize,
    next: u64,
    /// Lines dropped since the last push that got through.
    pub dropped: u64,
    /// When the oldest waiting line was queued.
    since: Option<Instant>,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next: 0,
            dropped: 0,
            since: None,
        }
    }

    /// Queues `entry`, dropping the oldest line when full.
    pub fn push(&mut self, entry: Entry, now: Instant) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back((self.next, entry));
        self.next += 1;
        self.since.get_or_insert(now);
    }

    /// Whether a batch is due: a full one, or lines that waited long enough.
    pub fn due(&self, now: Instant) -> bool {
        self.entries.len() >= BATCH
            || self
                .since
                .is_some_and(|since| now.duration_since(since) >= FLUSH_AFTER)
    }

    /// The next batch, oldest first, and the number of its last line (it
    /// stays queued until [`Queue::settle`]).
    pub fn batch(&self) -> (Vec<Entry>, u64) {
        let batch: Vec<&(u64, Entry)> = self.entries.iter().take(BATCH).collect();
        let last = batch.last().map_or(0, |(n, _)| *n);
        (batch.into_iter().map(|(_, e)| e.clone()).collect(), last)
    }

    /// Forgets the lines up to number `last`, which were pushed (or refused
    /// for good).
    pub fn settle(&mut self, last: u64, now: Instant) {
        while self.entries.front().is_some_and(|(n, _)| *n <= last) {
            self.entries.pop_front();
        }
        self.since = (!self.entries.is_empty()).then_some(now);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Loki's JSON push body: one stream per service, labelled with the target's
/// labels and `pebble_service`, its values `[nanoseconds, line]`.
pub(crate) fn push_body(labels: &BTreeMap<String, String>, entries: &[Entry]) -> Value {
    let mut streams: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for entry in entries {
        streams
            .entry(&entry.service)
            .or_default()
            .push(json!([entry.nanos.to_string(), entry.line]));
    }
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|(service, values)| {
            let mut stream: Map<String, Value> =
                labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            stream.insert("pebble_service".into(), json!(service));
            json!({"stream": stream, "values": values})
        })
        .collect();
    json!({ "streams": streams })
}

/// An `http://host[:port]/path` location as host, port and request target.
pub(crate) fn parse_location(location: &str) -> Result<(String, u16, String), String> {
    let rest = location.strip_prefix("http://").ok_or_else(|| {
        format!("unsupported location {location:?}: only http:// is forwarded to")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("bad port in location {location:?}"))?;
            (host, port)
        }
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in location {location:?}"));
    }
    Ok((
        host.trim_start_matches('[').trim_end_matches(']').into(),
        port,
        path.into(),
    ))
}

/// How a push went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Accepted,
    /// Worth trying again later: no connection, a timeout, 429 or 5xx.
    Retry(String),
    /// Refused for good (another 4xx): the batch is dropped.
    Refused(String),
}

/// POSTs `body` to `location`.
fn push(location: &str, body: &Value) -> Pushed {
    let (host, port, target) = match parse_location(location) {
        Ok(parts) => parts,
        Err(e) => return Pushed::Refused(e),
    };
    let result = (|| {
        let addr = (host.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("cannot resolve {host}")))?;
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        http_exchange::exchange(
            stream,
            &format!("{host}:{port}"),
            "POST",
            &target,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .map_err(std::io::Error::other)
    })();
    match result {
        Ok(r) if (200..300).contains(&r.status) => Pushed::Accepted,
        Ok(r) if r.status == 429 || r.status >= 500 => {
            Pushed::Retry(format!("{location} answered {}", r.status))
        }
        Ok(r) => Pushed::Refused(format!(
            "{location} answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body).trim()
        )),
        Err(e) => Pushed::Retry(format!("{location}: {e}")),
    }
}

/// One target: its definition, its queue and its pause after failures.
struct Target {
    config: LogTarget,
    queue: Queue,
    retry_at: Option<Instant>,
    backoff: Option<Duration>,
}

/// A batch on its way: the target's location and the push body.
struct Due {
    target: String,
    location: String,
    body: Value,
    last: u64,
    count: usize,
}

impl Target {
    fn new(config: LogTarget) -> Target {
        Target {
            config,
            queue: Queue::new(BUFFER),
            retry_at: None,
            backoff: None,
        }
    }

    /// The batch to push now, if one is due and no pause is on.
    fn due(&self, name: &str, now: Instant) -> Option<Due> {
        if self.queue.len() == 0 || !self.queue.due(now) || self.retry_at.is_some_and(|at| now < at)
        {
            return None;
        }
        let (batch, last) = self.queue.batch();
        Some(Due {
            target: name.to_string(),
            location: self.config.location.clone(),
            body: push_body(&self.config.labels, &batch),
            last,
            count: batch.len(),
        })
    }

    /// Records how the push of `due` went.
    fn settle(&mut self, due: &Due, pushed: Pushed, now: Instant) {
        let name = &due.target;
        match pushed {
            Pushed::Accepted => {
                if self.queue.dropped > 0 {
                    eprintln!(
                        "log target {name:?}: {} lines dropped while {} was unreachable",
                        self.queue.dropped, due.location
                    );
                    self.queue.dropped = 0;
                }
                self.queue.settle(due.last, now);
                self.retry_at = None;
                self.backoff = None;
            }
            Pushed::Retry(why) => {
                let delay = self
                    .backoff
                    .map_or(BACKOFF_FIRST, |d| (d * 2).min(BACKOFF_LIMIT));
                if self.backoff.is_none() {
                    eprintln!("log target {name:?}: {why}; trying again with backoff");
                }
                self.backoff = Some(delay);
                self.retry_at = Some(now + delay);
            }
            Pushed::Refused(why) => {
                eprintln!("log target {name:?}: {why}; {} lines dropped", due.count);
                self.queue.settle(due.last, now);
            }
        }
    }
}

/// What the forwarding thread works from.
#[derive(Default)]
struct Shared {
    /// Each service of the plan, and where its file was read up to.
    tails: BTreeMap<String, Tail>,
    targets: BTreeMap<String, Target>,
    stopping: bool,
}

/// The forwarding of one container's service output.
pub(crate) struct Forwarder {
    log_dir: PathBuf,
    shared: Mutex<Shared>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Forwarder {
    /// Starts the thread that reads the files under `log_dir`.
    pub fn start(log_dir: PathBuf) -> Arc<Forwarder> {
        let forwarder = Arc::new(Forwarder {
            log_dir,
            shared: Mutex::new(Shared::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        });
        let worker = Arc::clone(&forwarder);
        let handle = std::thread::spawn(move || worker.run());
        *forwarder.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        forwarder
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, service: &str) -> PathBuf {
        self.log_dir.join(format!("{service}.log"))
    }

    /// Follows the plan: services new to it are read from their file's
    /// current end, targets are added, changed (keeping their queue) or
    /// removed.
    pub fn update(&self, plan: &Plan) {
        let mut shared = self.lock();
        shared
            .tails
            .retain(|name, _| plan.services.contains_key(name));
        for name in plan.services.keys() {
            if !shared.tails.contains_key(name) {
                let tail = Tail::at_end(&self.path(name));
                shared.tails.insert(name.clone(), tail);
            }
        }
        shared
            .targets
            .retain(|name, _| plan.log_targets.contains_key(name));
        for (name, config) in &plan.log_targets {
            match shared.targets.get_mut(name) {
                Some(target) => target.config.clone_from(config),
                None => {
                    shared
                        .targets
                        .insert(name.clone(), Target::new(config.clone()));
                }
            }
        }
    }

    /// Reads the files and pushes what is due; after `stop`, one last round.
    fn run(&self) {
        loop {
            let stopping = {
                let shared = self.lock();
                let (shared, _) = self
                    .wake
                    .wait_timeout(shared, POLL)
                    .unwrap_or_else(|e| e.into_inner());
                shared.stopping
            };
            self.round(stopping);
            if stopping {
                return;
            }
        }
    }

    /// Reads every service's new lines into the queues of the targets that
    /// take it, then pushes the batches that are due (all of them when
    /// `last`), without holding the lock while pushing.
    fn round(&self, last: bool) {
        let due: Vec<Due> = {
            let mut shared = self.lock();
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let now = Instant::now();
            let Shared { tails, targets, .. } = &mut *shared;
            for (service, tail) in tails.iter_mut() {
                let lines = tail.read_bounded(&self.path(service), OUTPUT_LIMIT);
                if lines.is_empty() {
                    continue;
                }
                for target in targets.values_mut() {
                    if target.config.kind != "loki" || !target.config.forwards(service) {
                        continue;
                    }
                    for line in &lines {
                        let entry = Entry {
                            nanos,
                            service: service.clone(),
                            line: line.clone(),
                        };
                        target.queue.push(entry, now);
                    }
                }
            }
            let at = if last { now + FLUSH_AFTER } else { now };
            targets
                .iter()
                .filter_map(|(name, target)| target.due(name, at))
                .collect()
        };
        for due in due {
            let pushed = push(&due.location, &due.body);
            let mut shared = self.lock();
            if let Some(target) = shared.targets.get_mut(&due.target) {
                target.settle(&due, pushed, Instant::now());
            }
        }
    }

    /// Stops the thread after a last round.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entry(service: &str, line: &str, nanos: u128) -> Entry {
        Entry {
            nanos,
            service: service.into(),
            line: line.into(),
        }
    }

    #[test]
    fn a_tail_reads_whole_lines_and_starts_again_after_a_truncation() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("svc.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut tail = Tail::at_end(&path);
        assert!(tail.read(&path).is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"one\r\ntwo\nthr").unwrap();
        assert_eq!(tail.read(&path), ["one", "two"]);
        file.write_all(b"ee\n").unwrap();
        assert_eq!(tail.read(&path), ["three"]);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(tail.read(&path), ["new"]);
        let missing = dir.path().join("none.log");
        assert!(Tail::at_end(&missing).read(&missing).is_empty());
    }

    #[test]
    fn a_file_past_the_limit_is_copied_aside_and_emptied_and_its_writer_carries_on() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("svc.log");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut tail = Tail::default();
        writer.write_all(b"one\ntwo\n").unwrap();
        assert_eq!(tail.read_bounded(&path, 16), ["one", "two"]);
        writer.write_all(b"three\nfour\n").unwrap();
        assert_eq!(tail.read_bounded(&path, 16), ["three", "four"]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let old = dir.path().join("svc.log.1");
        assert_eq!(
            std::fs::read_to_string(&old).unwrap(),
            "one\ntwo\nthree\nfour\n"
        );
        writer.write_all(b"five\n").unwrap();
        assert_eq!(tail.read_bounded(&path, 16), ["five"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "five\n");
    }

    #[test]
    fn an_endless_line_is_sent_in_pieces() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("svc.log");
        std::fs::write(&path, "x".repeat(MAX_LINE + 10)).unwrap();
        let mut tail = Tail::default();
        let lines = tail.read(&path);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_lines_and_counts_them() {
        let now = Instant::now();
        let mut queue = Queue::new(3);
        for i in 0..5 {
            queue.push(entry("a", &i.to_string(), i), now);
        }
        assert_eq!(queue.dropped, 2);
        let (batch, last) = queue.batch();
        let lines: Vec<String> = batch.into_iter().map(|e| e.line).collect();
        assert_eq!(lines, ["2", "3", "4"]);
        assert_eq!(last, 4);
        assert!(!queue.due(now));
        assert!(queue.due(now + FLUSH_AFTER));
        queue.push(entry("a", "5", 5), now);
        queue.push(entry("a", "6", 6), now);
        queue.settle(last, now);
        let (batch, _) = queue.batch();
        let lines: Vec<String> = batch.into_iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            ["5", "6"],
            "lines dropped during a push are not settled twice"
        );
        queue.settle(6, now);
        assert_eq!(queue.len(), 0);
        assert!(!queue.due(now + FLUSH_AFTER));
    }

    #[test]
    fn a_full_batch_is_due_at_once() {
        let now = Instant::now();
        let mut queue = Queue::new(BUFFER);
        for i in 0..BATCH {
            queue.push(entry("a", "x", i as u128), now);
        }
        assert!(queue.due(now));
        queue.push(entry("a", "y", 0), now);
        assert_eq!(queue.batch().0.len(), BATCH);
    }

    #[test]
    fn the_push_body_has_one_stream_per_service() {
        let labels = BTreeMap::from([("juju_unit".to_string(), "app/0".to_string())]);
        let body = push_body(
            &labels,
            &[
                entry("b", "1", 10),
                entry("a", "2", 11),
                entry("b", "3", 12),
            ],
        );
        assert_eq!(
            body,
            json!({"streams": [
                {"stream": {"juju_unit": "app/0", "pebble_service": "a"}, "values": [["11", "2"]]},
                {"stream": {"juju_unit": "app/0", "pebble_service": "b"}, "values": [["10", "1"], ["12", "3"]]},
            ]})
        );
    }

    #[test]
    fn locations_are_read_as_http_urls() {
        assert_eq!(
            parse_location("http://loki-0.svc:3100/loki/api/v1/push").unwrap(),
            ("loki-0.svc".into(), 3100, "/loki/api/v1/push".into())
        );
        assert_eq!(
            parse_location("http://127.0.0.1").unwrap(),
            ("127.0.0.1".into(), 80, "/".into())
        );
        assert_eq!(
            parse_location("http://[::1]:8080/x").unwrap(),
            ("::1".into(), 8080, "/x".into())
        );
        assert!(parse_location("https://loki/x").is_err());
        assert!(parse_location("http://host:port/x").is_err());
    }
}
