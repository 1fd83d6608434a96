//! Juju secrets: ids in their three forms, content that never prints, and metadata.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A secret's id. Juju prints `secret://<model-uuid>/<xid>`; tools also accept
/// `secret:<xid>` and a bare `<xid>`. Two ids name the same secret when their xids match.
#[derive(Clone, Debug, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SecretId {
    xid: String,
    model_uuid: Option<String>,
}

/// Why a string is not a secret id.
#[derive(Debug, thiserror::Error)]
#[error("invalid secret id {0:?}: expected secret://<model-uuid>/<id>, secret:<id> or a 20-character id")]
pub struct SecretIdError(pub String);

impl SecretId {
    /// Parses any of the three forms.
    pub fn parse(s: &str) -> Result<SecretId, SecretIdError> {
        let err = || SecretIdError(s.to_string());
        let (xid, model_uuid) = if let Some(rest) = s.strip_prefix("secret://") {
            let (uuid, xid) = rest.split_once('/').ok_or_else(err)?;
            if uuid.is_empty() {
                return Err(err());
            }
            (xid, Some(uuid.to_string()))
        } else if let Some(xid) = s.strip_prefix("secret:") {
            (xid, None)
        } else {
            (s, None)
        };
        if !is_xid(xid) {
            return Err(err());
        }
        Ok(SecretId {
            xid: xid.to_string(),
            model_uuid,
        })
    }

    /// Builds the long form from a model UUID and an xid.
    pub fn new(model_uuid: &str, xid: &str) -> Result<SecretId, SecretIdError> {
        SecretId::parse(&format!("secret://{model_uuid}/{xid}"))
    }

    /// The 20-character id that identifies the secret.
    pub fn xid(&self) -> &str {
        &self.xid
    }

    /// The model UUID, when the id carried one.
    pub fn model_uuid(&self) -> Option<&str> {
        self.model_uuid.as_deref()
    }
}

/// Juju's xids are 20 characters of `[0-9a-v]` (base32hex, lower case).
fn is_xid(s: &str) -> bool {
    s.len() == 20
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

impl PartialEq for SecretId {
    fn eq(&self, other: &Self) -> bool {
        self.xid == other.xid
    }
}

impl std::hash::Hash for SecretId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.xid.hash(state)
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.model_uuid {
            Some(uuid) => write!(f, "secret://{uuid}/{}", self.xid),
            None => write!(f, "secret:{}", self.xid),
        }
    }
}

impl From<SecretId> for String {
    fn from(id: SecretId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for SecretId {
    type Error = SecretIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SecretId::parse(&s)
    }
}

/// A secret's key/value content. Its `Debug` output shows the keys only, so that a
/// logged value never reveals what a secret holds.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretContent(BTreeMap<String, String>);

impl SecretContent {
    /// No keys.
    pub fn new() -> Self {
        SecretContent::default()
    }

    /// Adds a key; chainable.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    /// Whether it has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first key that Juju would refuse, if any (see [`valid_key`]).
    pub fn invalid_key(&self) -> Option<&str> {
        self.0.keys().find(|k| !valid_key(k)).map(String::as_str)
    }

    /// Juju's rules for content: at least one key, and every key valid.
    pub fn check(&self) -> Result<(), crate::Error> {
        if self.is_empty() {
            return Err(crate::Error::Invalid(
                "a secret needs at least one key".into(),
            ));
        }
        match self.invalid_key() {
            Some(bad) => Err(crate::Error::Invalid(format!(
                "invalid secret key {bad:?}: keys are 3 or more lowercase letters, digits and single dashes, starting with a letter"
            ))),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for SecretContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl FromIterator<(String, String)> for SecretContent {
    fn from_iter<T: IntoIterator<Item = (String, String)>>(iter: T) -> Self {
        SecretContent(iter.into_iter().collect())
    }
}

/// Juju's rule for secret keys: `^[a-z](-?[a-z0-9]){2,}$` (three or more characters).
pub fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_lowercase() {
        return false;
    }
    let mut prev_dash = false;
    let mut units = 0;
    for &c in &b[1..] {
        match c {
            b'-' if !prev_dash => prev_dash = true,
            b'a'..=b'z' | b'0'..=b'9' => {
                prev_dash = false;
                units += 1;
            }
            _ => return false,
        }
    }
    !prev_dash && units >= 2
}

/// Who owns a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretOwner {
    /// The application: managed by its leader, readable by all its units.
    Application,
    /// This unit alone.
    Unit,
}

impl SecretOwner {
    /// The name Juju's tools use (`application`, `unit`).
    pub fn as_str(self) -> &'static str {
        match self {
            SecretOwner::Application => "application",
            SecretOwner::Unit => "unit",
        }
    }
}

/// A rotation policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotate {
    /// No rotation.
    Never,
    /// Every hour.
    Hourly,
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Every three months.
    Quarterly,
    /// Every year.
    Yearly,
}

impl Rotate {
    /// The name Juju's tools use (`hourly`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Rotate::Never => "never",
            Rotate::Hourly => "hourly",
            Rotate::Daily => "daily",
            Rotate::Weekly => "weekly",
            Rotate::Monthly => "monthly",
            Rotate::Quarterly => "quarterly",
            Rotate::Yearly => "yearly",
        }
    }

    /// Parses the name Juju's tools use.
    pub fn parse(s: &str) -> Option<Rotate> {
        Some(match s {
            "never" => Rotate::Never,
            "hourly" => Rotate::Hourly,
            "daily" => Rotate::Daily,
            "weekly" => Rotate::Weekly,
            "monthly" => Rotate::Monthly,
            "quarterly" => Rotate::Quarterly,
            "yearly" => Rotate::Yearly,
            _ => return None,
        })
    }
}

/// Metadata given to `secret-add` and `secret-set`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretMeta {
    /// The owner's label.
    pub label: Option<String>,
    /// A description for humans.
    pub description: Option<String>,
    /// RFC 3339 expiry time.
    pub expire: Option<String>,
    /// The rotation policy.
    pub rotate: Option<Rotate>,
}

/// How to find a secret for `secret-get` and `secret-info-get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// By id; a label given with it is attached to the secret (consumer label,
    /// or owner label for the owner).
    Id(SecretId, Option<String>),
    /// By a label this unit or its application already attached.
    Label(String),
}

/// Which revision `secret-get` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Revision {
    /// The revision this unit tracks (the latest at its first read).
    #[default]
    Tracked,
    /// The latest, without moving tracking.
    Peek,
    /// The latest, and track it from now on.
    Refresh,
}

/// What `secret-info-get` tells an owner.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct SecretInfo {
    /// The secret's id: the key `secret-info-get` lists it under.
    #[serde(skip)]
    pub id: Option<SecretId>,
    /// The latest revision.
    pub revision: u64,
    /// The owner's label.
    #[serde(default)]
    pub label: Option<String>,
    /// Who owns it.
    pub owner: SecretOwner,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// When it expires (RFC 3339).
    #[serde(default)]
    pub expiry: Option<String>,
    /// Its rotation policy.
    #[serde(default)]
    pub rotation: Option<Rotate>,
    /// When it next rotates (RFC 3339).
    #[serde(default)]
    pub rotates: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const XID: &str = "d0rtp2cs1tj5qbo1s2ug";
    const UUID: &str = "6f1e3a5c-2b9e-4d7a-8a61-0c7f2e9b5d13";

    #[test]
    fn accepts_the_three_id_forms_and_compares_by_xid() {
        let long = SecretId::parse(&format!("secret://{UUID}/{XID}")).unwrap();
        let short = SecretId::parse(&format!("secret:{XID}")).unwrap();
        let bare = SecretId::parse(XID).unwrap();
        assert_eq!(long, short);
        assert_eq!(short, bare);
        assert_eq!(long.model_uuid(), Some(UUID));
        assert_eq!(long.to_string(), format!("secret://{UUID}/{XID}"));
        assert_eq!(bare.to_string(), format!("secret:{XID}"));
        assert_eq!(bare.xid(), XID);
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "secret:",
            "secret://",
            "secret:///d0rtp2cs1tj5qbo1s2ug",
            "secret://uuid",
            "d0rtp2cs1tj5qbo1s2u",
            "d0rtp2cs1tj5qbo1s2uz",
            "D0RTP2CS1TJ5QBO1S2UG",
        ] {
            assert!(SecretId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_keys_follow_juju_rule() {
        for ok in ["username", "tls-ca", "abc", "a1b", "auth-file"] {
            assert!(valid_key(ok), "{ok}");
        }
        for bad in ["ab", "1abc", "Abc", "a--b", "abc-", "a_b", "tls_ca", ""] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn content_debug_hides_values() {
        let c = SecretContent::new().with("password", "hunter2");
        let shown = format!("{c:?}");
        assert!(shown.contains("password"));
        assert!(!shown.contains("hunter2"));
    }
}
