//! The Juju agent version (`JUJU_VERSION`) and the features it gates.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A Juju version such as `3.6.4`, `3.6-beta1` or `3.6.4.1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JujuVersion {
    /// The major version.
    pub major: u32,
    /// The minor version.
    pub minor: u32,
    /// The patch version.
    pub patch: u32,
    /// Pre-release tag such as `beta1`; a tagged version sorts before the release.
    pub tag: Option<String>,
    /// The build number (`3.6.4.1`); 0 when there is none.
    pub build: u32,
}

impl JujuVersion {
    /// Builds a release version.
    pub fn new(major: u32, minor: u32, patch: u32) -> Self {
        JujuVersion {
            major,
            minor,
            patch,
            tag: None,
            build: 0,
        }
    }

    /// Juju secrets are usable from 3.0.3 on; before that the data-platform
    /// libraries fall back to plain databag fields.
    pub fn has_secrets(&self) -> bool {
        *self >= JujuVersion::new(3, 0, 3)
    }

    /// From 3.6 a `secret-set` with unchanged content creates no revision.
    pub fn has_idempotent_secret_set(&self) -> bool {
        *self >= JujuVersion::new(3, 6, 0)
    }
}

/// Why a `JUJU_VERSION` value could not be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid Juju version {0:?}: expected MAJOR.MINOR.PATCH[.BUILD] or MAJOR.MINOR-TAG[.BUILD]"
)]
pub struct VersionError(pub String);

impl FromStr for JujuVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError(s.to_string());
        let num = |p: &str| p.parse::<u32>().map_err(|_| err());
        let (major, rest) = s.split_once('.').ok_or_else(err)?;
        let major = num(major)?;
        // Either "MINOR-TAG[.BUILD]" or "MINOR.PATCH[.BUILD]".
        if let Some((minor, tagged)) = rest.split_once('-') {
            let minor = num(minor)?;
            let (tag, build) = match tagged.split_once('.') {
                Some((t, b)) => (t, num(b)?),
                None => (tagged, 0),
            };
            let letters = tag.trim_end_matches(|c: char| c.is_ascii_digit());
            if letters.is_empty() || !letters.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(err());
            }
            return Ok(JujuVersion {
                major,
                minor,
                patch: 0,
                tag: Some(tag.to_string()),
                build,
            });
        }
        let parts: Vec<&str> = rest.split('.').collect();
        let (minor, patch, build) = match parts.as_slice() {
            [m] => (num(m)?, 0, 0),
            [m, p] => (num(m)?, num(p)?, 0),
            [m, p, b] => (num(m)?, num(p)?, num(b)?),
            _ => return Err(err()),
        };
        Ok(JujuVersion {
            major,
            minor,
            patch,
            tag: None,
            build,
        })
    }
}

impl Ord for JujuVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.tag, &other.tag) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => a.cmp(b),
            })
            .then(self.build.cmp(&other.build))
    }
}

impl PartialOrd for JujuVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for JujuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{}.{}-{}", self.major, self.minor, tag)?,
            None => write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?,
        }
        if self.build > 0 {
            write!(f, ".{}", self.build)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> JujuVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_release_tagged_and_build_forms() {
        assert_eq!(v("3.6.4"), JujuVersion::new(3, 6, 4));
        assert_eq!(v("3.6-beta1").tag.as_deref(), Some("beta1"));
        assert_eq!(v("3.6.4.1").build, 1);
        assert_eq!(v("2.9").patch, 0);
        for bad in ["", "3", "x.y.z", "3.6.4.1.2", "3.6-", "3.6-BETA"] {
            assert!(bad.parse::<JujuVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn orders_pre_releases_before_releases() {
        assert!(v("3.6-beta1") < v("3.6.0"));
        assert!(v("3.6.0") < v("3.6.0.1"));
        assert!(v("3.0.2") < v("3.0.3"));
        assert_eq!(v("3.6.4.1").to_string(), "3.6.4.1");
        assert_eq!(v("3.6-rc2").to_string(), "3.6-rc2");
    }

    #[test]
    fn gates_features() {
        assert!(!v("3.0.2").has_secrets());
        assert!(v("3.0.3").has_secrets());
        assert!(!v("3.5.9").has_idempotent_secret_set());
        assert!(v("3.6.0").has_idempotent_secret_set());
    }
}
