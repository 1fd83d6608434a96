//! Relations and their databags.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A relation's contents: string keys to string values, as Juju stores them.
pub type Databag = BTreeMap<String, String>;

/// A relation as hook tools name it: the local endpoint and the model-wide id
/// (`database:4` on the command line).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Relation {
    /// The endpoint's name in `metadata.yaml`.
    pub endpoint: String,
    /// The relation's id.
    pub id: u64,
}

impl Relation {
    /// The relation `id` on `endpoint`.
    pub fn new(endpoint: impl Into<String>, id: u64) -> Self {
        Relation {
            endpoint: endpoint.into(),
            id,
        }
    }

    /// Parses `endpoint:id` as printed by `relation-ids` and set in `JUJU_RELATION_ID`.
    pub fn parse(s: &str) -> Option<Relation> {
        let (endpoint, id) = s.rsplit_once(':')?;
        if endpoint.is_empty() {
            return None;
        }
        Some(Relation::new(endpoint, id.parse().ok()?))
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.endpoint, self.id)
    }
}

/// Which databag of a relation to read: an application's or a unit's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bag {
    /// An application's bag, by application name.
    App(String),
    /// A unit's bag, by unit name.
    Unit(String),
}

impl Bag {
    /// The application or unit name.
    pub fn name(&self) -> &str {
        match self {
            Bag::App(n) | Bag::Unit(n) => n,
        }
    }
}

/// The application part of a unit name (`pgbouncer-k8s/2` → `pgbouncer-k8s`).
pub fn app_of(unit: &str) -> &str {
    unit.rsplit_once('/').map_or(unit, |(app, _)| app)
}

/// A change to one key: `Some(value)` sets it, `None` deletes it.
pub type Change = (String, Option<String>);

/// Changes to one databag, built key by key and handed to
/// [`Hook::update_app_bag`](crate::Hook::update_app_bag) or
/// [`Hook::update_unit_bag`](crate::Hook::update_unit_bag):
///
/// ```
/// use charm::BagChanges;
/// let changes = BagChanges::new().set("hostname", "10.0.0.1").unset("stale");
/// assert_eq!(changes.len(), 2);
/// ```
///
/// A later change to the same key wins; setting an empty value deletes the key,
/// as `relation-set` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BagChanges(Vec<Change>);

impl BagChanges {
    /// No changes yet.
    pub fn new() -> BagChanges {
        BagChanges::default()
    }

    /// Sets `key` to `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> BagChanges {
        self.0.push((key.into(), Some(value.into())));
        self
    }

    /// Deletes `key`.
    pub fn unset(mut self, key: impl Into<String>) -> BagChanges {
        self.0.push((key.into(), None));
        self
    }

    /// Sets `key` to the value when there is one, deletes it otherwise.
    pub fn set_or_unset(mut self, key: impl Into<String>, value: Option<String>) -> BagChanges {
        self.0.push((key.into(), value));
        self
    }

    /// How many changes were added.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no change was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for BagChanges {
    type Item = Change;
    type IntoIter = std::vec::IntoIter<Change>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The keys of `changes` whose value differs from `current`, ready for `relation-set`
/// (an empty value deletes a key there). Returns an empty map when nothing changes.
pub fn diff(current: &Databag, changes: impl IntoIterator<Item = Change>) -> Databag {
    let mut out = Databag::new();
    for (key, value) in changes {
        match value {
            Some(v) if current.get(&key) != Some(&v) && !v.is_empty() => {
                out.insert(key, v);
            }
            Some(v) if v.is_empty() && current.contains_key(&key) => {
                out.insert(key, String::new());
            }
            None if current.contains_key(&key) => {
                out.insert(key, String::new());
            }
            _ => {
                out.remove(&key);
            }
        }
    }
    out
}

/// Applies `relation-set` semantics: merge, and an empty value deletes the key.
pub fn apply(bag: &mut Databag, changes: &Databag) {
    for (k, v) in changes {
        if v.is_empty() {
            bag.remove(k);
        } else {
            bag.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relation_ids() {
        assert_eq!(
            Relation::parse("database:4"),
            Some(Relation::new("database", 4))
        );
        assert_eq!(Relation::parse("a:b:7"), Some(Relation::new("a:b", 7)));
        assert_eq!(Relation::parse("database"), None);
        assert_eq!(Relation::parse(":4"), None);
        assert_eq!(Relation::new("pgb-peers", 2).to_string(), "pgb-peers:2");
    }

    #[test]
    fn diff_sends_only_real_changes() {
        let mut bag = Databag::new();
        bag.insert("a".into(), "1".into());
        bag.insert("b".into(), "2".into());
        let d = diff(
            &bag,
            [
                ("a".to_string(), Some("1".to_string())),
                ("b".to_string(), None),
                ("c".to_string(), Some("3".to_string())),
                ("d".to_string(), None),
                ("e".to_string(), Some(String::new())),
            ],
        );
        assert_eq!(d.len(), 2);
        assert_eq!(d["b"], "");
        assert_eq!(d["c"], "3");
        apply(&mut bag, &d);
        assert_eq!(bag.keys().collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn bag_changes_set_and_unset_in_order() {
        let mut bag = Databag::new();
        bag.insert("old".into(), "x".into());
        bag.insert("keep".into(), "1".into());
        let changes = BagChanges::new()
            .set("new", "v")
            .unset("old")
            .set("keep", String::from("1"))
            .set_or_unset("maybe", None)
            .set_or_unset("twice", Some("a".into()))
            .set("twice", "b");
        assert_eq!(changes.len(), 6);
        let d = diff(&bag, changes);
        assert_eq!(
            d,
            Databag::from([
                ("new".into(), "v".into()),
                ("old".into(), String::new()),
                ("twice".into(), "b".into()),
            ])
        );
        assert!(BagChanges::new().is_empty());
    }

    #[test]
    fn app_of_unit() {
        assert_eq!(app_of("pgbouncer-k8s/2"), "pgbouncer-k8s");
        assert_eq!(app_of("solo"), "solo");
    }
}
