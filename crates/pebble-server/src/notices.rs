//! Notices, with Pebble's rules: one notice per type and key, whose id stays; each
//! occurrence counts and updates its data, and repeats the notice (moves its
//! last-repeated time) unless it comes within the notice's repeat-after. Lists
//! are ordered by last repeat; a notice expires a week after it last occurred.
//! Waiters wake when a notice is new or repeats.

use crate::timefmt::{go_duration, rfc3339};
use pebble_api::Notice;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long after its last occurrence a notice is dropped.
const EXPIRE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The notice type workloads record.
pub(crate) const CUSTOM: &str = "custom";

/// One notice as the server keeps it.
#[derive(Clone, Debug)]
struct Entry {
    id: u64,
    kind: String,
    key: String,
    first_occurred: SystemTime,
    last_occurred: SystemTime,
    last_repeated: SystemTime,
    occurrences: u64,
    last_data: BTreeMap<String, String>,
    repeat_after: Duration,
}

impl Entry {
    fn expired(&self, now: SystemTime) -> bool {
        self.last_occurred + EXPIRE_AFTER < now
    }

    fn notice(&self) -> Notice {
        Notice {
            id: self.id.to_string(),
            user_id: None,
            kind: self.kind.clone(),
            key: self.key.clone(),
            first_occurred: rfc3339(self.first_occurred),
            last_occurred: rfc3339(self.last_occurred),
            last_repeated: rfc3339(self.last_repeated),
            occurrences: self.occurrences,
            last_data: self.last_data.clone(),
            repeat_after: (!self.repeat_after.is_zero()).then(|| go_duration(self.repeat_after)),
            expire_after: Some(go_duration(EXPIRE_AFTER)),
        }
    }
}

/// Which notices a query selects; empty lists match everything.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub types: Vec<String>,
    pub keys: Vec<String>,
    /// Only notices last repeated strictly after this time.
    pub after: Option<SystemTime>,
}

impl Filter {
    fn matches(&self, e: &Entry) -> bool {
        (self.types.is_empty() || self.types.contains(&e.kind))
            && (self.keys.is_empty() || self.keys.contains(&e.key))
            && self.after.is_none_or(|a| e.last_repeated > a)
    }
}

#[derive(Default)]
struct State {
    last_id: u64,
    entries: Vec<Entry>,
}

/// The server's notices.
#[derive(Default)]
pub(crate) struct Notices {
    state: Mutex<State>,
    /// Signalled when a notice is new or repeats.
    repeated: Condvar,
}

impl Notices {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an occurrence of the notice `kind`/`key` at `now`; returns its id.
    pub fn add(
        &self,
        kind: &str,
        key: &str,
        data: BTreeMap<String, String>,
        repeat_after: Duration,
        now: SystemTime,
    ) -> String {
        let mut st = self.lock();
        st.entries.retain(|e| !e.expired(now));
        let repeated = match st
            .entries
            .iter_mut()
            .find(|e| e.kind == kind && e.key == key)
        {
            Some(e) => {
                e.occurrences += 1;
                let repeats = repeat_after.is_zero() || now > e.last_repeated + repeat_after;
                if repeats {
                    e.last_repeated = now;
                }
                e.last_occurred = now;
                e.last_data = data;
                e.repeat_after = repeat_after;
                let id = e.id;
                (id, repeats)
            }
            None => {
                st.last_id += 1;
                let id = st.last_id;
                st.entries.push(Entry {
                    id,
                    kind: kind.into(),
                    key: key.into(),
                    first_occurred: now,
                    last_occurred: now,
                    last_repeated: now,
                    occurrences: 1,
                    last_data: data,
                    repeat_after,
                });
                (id, true)
            }
        };
        if repeated.1 {
            self.repeated.notify_all();
        }
        repeated.0.to_string()
    }

    fn select(st: &State, filter: &Filter) -> Vec<Notice> {
        let now = SystemTime::now();
        let mut found: Vec<&Entry> = st
            .entries
            .iter()
            .filter(|e| !e.expired(now) && filter.matches(e))
            .collect();
        found.sort_by_key(|e| (e.last_repeated, e.id));
        found.into_iter().map(Entry::notice).collect()
    }

    /// The notices that match, oldest last repeat first.
    pub fn list(&self, filter: &Filter) -> Vec<Notice> {
        Self::select(&self.lock(), filter)
    }

    /// Like [`Notices::list`], but when none match, waits up to `timeout` for one
    /// to occur or repeat (an empty list when none does).
    pub fn wait(&self, filter: &Filter, timeout: Duration) -> Vec<Notice> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            let found = Self::select(&st, filter);
            let left = deadline.saturating_duration_since(Instant::now());
            if !found.is_empty() || left.is_zero() {
                return found;
            }
            st = self
                .repeated
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The notice with this id.
    pub fn get(&self, id: &str) -> Option<Notice> {
        let now = SystemTime::now();
        self.lock()
            .entries
            .iter()
            .find(|e| e.id.to_string() == id && !e.expired(now))
            .map(Entry::notice)
    }
}

/// Whether `key` is a valid custom notice key: `domain.com/path`, lowercase
/// letters and digits in dash-separated words (Pebble's pattern).
pub(crate) fn valid_custom_key(key: &str) -> bool {
    let words = |part: &str| {
        !part.is_empty()
            && part.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    let Some((domain, path)) = key.split_once('/') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2 && labels.iter().all(|l| words(l)) && path.split('/').all(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secs` after a base an hour ago (so nothing has expired).
    fn at(secs: u64) -> SystemTime {
        static BASE: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
        *BASE.get_or_init(|| SystemTime::now() - Duration::from_secs(3600))
            + Duration::from_secs(secs)
    }

    fn add(n: &Notices, key: &str, repeat_after: u64, secs: u64) -> String {
        let data = [("at".to_string(), secs.to_string())].into();
        n.add(
            CUSTOM,
            key,
            data,
            Duration::from_secs(repeat_after),
            at(secs),
        )
    }

    #[test]
    fn a_notice_counts_occurrences_and_repeats_outside_repeat_after() {
        let n = Notices::default();
        assert_eq!(add(&n, "example.com/a", 0, 0), "1");
        assert_eq!(add(&n, "example.com/b", 0, 1), "2");
        assert_eq!(add(&n, "example.com/a", 0, 2), "1");
        let all = Notices::select(&n.lock(), &Filter::default());
        let keys: Vec<(&str, u64)> = all
            .iter()
            .map(|x| (x.key.as_str(), x.occurrences))
            .collect();
        assert_eq!(keys, [("example.com/b", 1), ("example.com/a", 2)]);
        let a = &all[1];
        assert_eq!(a.first_occurred, rfc3339(at(0)));
        assert_eq!(a.last_repeated, rfc3339(at(2)));
        assert_eq!(a.last_data["at"], "2");
        // Within repeat-after: counted, data kept, not repeated.
        add(&n, "example.com/a", 10, 5);
        let a = &Notices::select(&n.lock(), &Filter::default())[1];
        assert_eq!(
            (a.occurrences, a.last_repeated.clone()),
            (3, rfc3339(at(2)))
        );
        assert_eq!(a.last_occurred, rfc3339(at(5)));
        assert_eq!(a.repeat_after.as_deref(), Some("10s"));
        // Past it: repeated.
        add(&n, "example.com/a", 10, 13);
        let a = n.get("1").unwrap();
        assert_eq!(a.last_repeated, rfc3339(at(13)));
    }

    #[test]
    fn filters_select_by_type_key_and_last_repeat() {
        let n = Notices::default();
        add(&n, "example.com/a", 0, 0);
        add(&n, "example.com/b", 0, 1);
        let by_key = Filter {
            keys: vec!["example.com/b".into()],
            ..Filter::default()
        };
        assert_eq!(Notices::select(&n.lock(), &by_key)[0].id, "2");
        let after = Filter {
            after: Some(at(0)),
            ..Filter::default()
        };
        assert_eq!(Notices::select(&n.lock(), &after).len(), 1);
        let other_type = Filter {
            types: vec!["warning".into()],
            ..Filter::default()
        };
        assert!(Notices::select(&n.lock(), &other_type).is_empty());
    }

    #[test]
    fn expired_notices_are_gone() {
        let n = Notices::default();
        let week_ago = SystemTime::now() - EXPIRE_AFTER - Duration::from_secs(1);
        n.add(
            CUSTOM,
            "example.com/a",
            BTreeMap::new(),
            Duration::ZERO,
            week_ago,
        );
        assert!(n.get("1").is_none());
        add(&n, "example.com/b", 0, 0);
        let listed = n.list(&Filter::default());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].expire_after.as_deref(), Some("168h0m0s"));
    }

    #[test]
    fn waiting_returns_once_a_notice_occurs() {
        let n = std::sync::Arc::new(Notices::default());
        let waiter = {
            let n = n.clone();
            std::thread::spawn(move || n.wait(&Filter::default(), Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(50));
        n.add(
            CUSTOM,
            "example.com/a",
            BTreeMap::new(),
            Duration::ZERO,
            SystemTime::now(),
        );
        assert_eq!(waiter.join().unwrap().len(), 1);
        let none = Filter {
            keys: vec!["example.com/none".into()],
            ..Filter::default()
        };
        assert!(n.wait(&none, Duration::from_millis(20)).is_empty());
    }

    #[test]
    fn custom_keys_look_like_domain_and_path() {
        for good in [
            "example.com/foo",
            "canonical.com/postgresql/role-change",
            "a-b.c1.io/x-1/y",
        ] {
            assert!(valid_custom_key(good), "{good}");
        }
        for bad in [
            "foo",
            "example/foo",
            "Example.com/foo",
            "example.com/",
            "example.com/a--b",
            "example..com/a",
            "-x.com/a",
            "example.com/a/",
            "example.com/a_b",
        ] {
            assert!(!valid_custom_key(bad), "{bad}");
        }
    }
}
