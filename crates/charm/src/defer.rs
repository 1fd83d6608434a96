//! The deferred-event queue: events a handler put off, replayed oldest first before
//! the next event of the next dispatch. It lives in the charm directory, one per
//! unit, and is saved only when the dispatch succeeds.

use crate::event::Event;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The queue's file name in the charm directory.
pub const QUEUE_FILE: &str = ".deferred-events.json";

/// Why the queue could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue file could not be read.
    #[error("cannot read the deferred-event queue {path}: {source}")]
    Read {
        /// The queue file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The queue file is not a valid queue.
    #[error("the deferred-event queue {path} is not valid ({detail}); move it aside to continue, its events are lost")]
    Corrupt {
        /// The queue file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The queue file could not be written.
    #[error("cannot save the deferred-event queue {path}: {source}")]
    Write {
        /// The queue file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The queue file of a charm directory.
pub fn queue_path(charm_dir: &Path) -> PathBuf {
    charm_dir.join(QUEUE_FILE)
}

/// Loads the queue; a missing file is an empty queue.
pub fn load(charm_dir: &Path) -> Result<Vec<Event>, QueueError> {
    let path = queue_path(charm_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(QueueError::Read { path, source }),
    };
    serde_json::from_str(&text).map_err(|e| QueueError::Corrupt {
        path,
        detail: e.to_string(),
    })
}

/// Saves the queue atomically (write, then rename); an empty queue removes the file.
pub fn save(charm_dir: &Path, queue: &[Event]) -> Result<(), QueueError> {
    let path = queue_path(charm_dir);
    let write_err = |source| QueueError::Write {
        path: path.clone(),
        source,
    };
    if queue.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(write_err(e)),
            _ => Ok(()),
        };
    }
    let tmp = charm_dir.join(format!("{QUEUE_FILE}.tmp"));
    let json = serde_json::to_vec(queue).expect("events serialise");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err)?;
    f.write_all(&json).map_err(write_err)?;
    f.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)
}

/// Appends an event unless an identical one is already queued.
pub fn push(queue: &mut Vec<Event>, event: &Event) {
    if !queue.contains(event) {
        queue.push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(load(d).unwrap().is_empty());
        let q = vec![Event::Install, Event::UpdateStatus];
        save(d, &q).unwrap();
        assert_eq!(load(d).unwrap(), q);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(queue_path(d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        save(d, &[]).unwrap();
        assert!(!queue_path(d).exists());
    }

    #[test]
    fn a_corrupt_queue_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(queue_path(d), "{not json").unwrap();
        let e = load(d).unwrap_err();
        assert!(e.to_string().contains(QUEUE_FILE), "{e}");
    }

    #[test]
    fn identical_events_are_queued_once() {
        let mut q = Vec::new();
        push(&mut q, &Event::Start);
        push(&mut q, &Event::Start);
        push(&mut q, &Event::ConfigChanged);
        assert_eq!(q, vec![Event::Start, Event::ConfigChanged]);
    }
}
