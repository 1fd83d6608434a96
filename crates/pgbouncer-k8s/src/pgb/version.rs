//! The PgBouncer version a unit runs, and which settings it understands.

use std::fmt;

/// A PgBouncer release.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PgbVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl PgbVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        PgbVersion {
            major,
            minor,
            patch,
        }
    }

    /// The oldest version this charm renders for (Debian bookworm's).
    pub const OLDEST: PgbVersion = PgbVersion::new(1, 18, 0);

    /// Finds `PgBouncer X.Y[.Z]` in text: `pgbouncer --version` output, or the bytes
    /// of the binary, which embeds the same string.
    pub fn find(text: &[u8]) -> Option<PgbVersion> {
        const NEEDLE: &[u8] = b"pgbouncer ";
        let lower: Vec<u8> = text.iter().map(u8::to_ascii_lowercase).collect();
        let mut from = 0;
        while let Some(pos) = find_bytes(&lower[from..], NEEDLE) {
            let start = from + pos + NEEDLE.len();
            if let Some(v) = parse_numbers(&text[start..]) {
                return Some(v);
            }
            from = start;
        }
        None
    }

    /// Reads a version as [`fmt::Display`] writes it (`1.24.1`).
    pub fn parse(text: &str) -> Option<PgbVersion> {
        parse_numbers(text.trim().as_bytes())
    }

    /// Whether two versions read each other's cancel keys, so their processes
    /// can forward cancel requests to each other: 1.21 changed the encoding.
    pub fn shares_cancel_keys(self, other: PgbVersion) -> bool {
        let new_keys = |v: PgbVersion| v >= PgbVersion::new(1, 21, 0);
        self.has_peers() && other.has_peers() && new_keys(self) == new_keys(other)
    }

    /// `[peers]`, `peer_id` and `auth_dbname` arrived in 1.19.
    pub fn has_peers(self) -> bool {
        self >= PgbVersion::new(1, 19, 0)
    }

    /// `auth_dbname` in `[databases]` entries arrived in 1.19.
    pub fn has_auth_dbname(self) -> bool {
        self >= PgbVersion::new(1, 19, 0)
    }

    /// `max_prepared_statements` arrived in 1.21.
    pub fn has_prepared_statements(self) -> bool {
        self >= PgbVersion::new(1, 21, 0)
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads `X.Y` or `X.Y.Z` at the start of `s`.
fn parse_numbers(s: &[u8]) -> Option<PgbVersion> {
    let mut parts = [0u32; 3];
    let mut i = 0;
    for (n, part) in parts.iter_mut().enumerate() {
        let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 4 {
            return if n == 2 {
                Some(PgbVersion::new(parts[0], parts[1], 0))
            } else {
                None
            };
        }
        *part = std::str::from_utf8(&s[i..i + digits]).ok()?.parse().ok()?;
        i += digits;
        if n < 2 {
            if s.get(i) != Some(&b'.') {
                return if n == 1 {
                    Some(PgbVersion::new(parts[0], parts[1], 0))
                } else {
                    None
                };
            }
            i += 1;
        }
    }
    Some(PgbVersion::new(parts[0], parts[1], parts[2]))
}

impl fmt::Display for PgbVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_version_in_command_output_and_binaries() {
        assert_eq!(
            PgbVersion::find(b"PgBouncer 1.18.0\nlibevent 2.1.12-stable\nadns: c-ares 1.18.1\ntls: OpenSSL 3.0.11"),
            Some(PgbVersion::new(1, 18, 0))
        );
        assert_eq!(
            PgbVersion::find(b"\x7fELF\0\0pgbouncer\0PgBouncer 1.24.1\0"),
            Some(PgbVersion::new(1, 24, 1))
        );
        assert_eq!(
            PgbVersion::find(b"PgBouncer 1.21"),
            Some(PgbVersion::new(1, 21, 0))
        );
        assert_eq!(PgbVersion::find(b"pgbouncer.ini PgBouncer version"), None);
        assert_eq!(PgbVersion::find(b""), None);
    }

    #[test]
    fn gates_settings_by_version() {
        let old = PgbVersion::new(1, 18, 0);
        let new = PgbVersion::new(1, 24, 1);
        assert!(!old.has_peers() && !old.has_auth_dbname() && !old.has_prepared_statements());
        assert!(new.has_peers() && new.has_auth_dbname() && new.has_prepared_statements());
        assert!(!PgbVersion::new(1, 20, 1).has_prepared_statements());
        assert_eq!(new.to_string(), "1.24.1");
        assert_eq!(PgbVersion::parse("1.24.1"), Some(new));
    }

    #[test]
    fn cancel_keys_are_shared_on_one_side_of_1_21() {
        let v = |minor| PgbVersion::new(1, minor, 0);
        assert!(v(24).shares_cancel_keys(v(21)));
        assert!(v(19).shares_cancel_keys(v(20)));
        assert!(!v(20).shares_cancel_keys(v(21)));
        assert!(!v(18).shares_cancel_keys(v(18)), "no peering before 1.19");
    }
}
