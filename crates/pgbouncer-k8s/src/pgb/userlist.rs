//! PgBouncer's auth file: one `"user" "secret"` line per user.
//!
//! It holds the auth user's password (PgBouncer logs in to PostgreSQL with it to
//! run the auth query, over SCRAM when the server asks) and SCRAM verifiers for the
//! admin and stats users of PgBouncer's console. Client passwords are never here:
//! PgBouncer looks those up with the auth query.

use std::fmt::Write as _;

/// The auth file's users, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Userlist {
    entries: Vec<(String, String)>,
}

/// The auth file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid auth file: {0}")]
pub struct UserlistError(pub String);

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Reads one quoted field, returning it and the rest of the line.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('"')?;
    let mut out = String::new();
    loop {
        let i = rest.find('"')?;
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        match rest.strip_prefix('"') {
            Some(r) => {
                out.push('"');
                rest = r;
            }
            None => return Some((out, rest)),
        }
    }
}

impl Userlist {
    /// Adds a user; a user already present gets the new secret.
    pub fn set(&mut self, user: &str, secret: &str) {
        match self.entries.iter_mut().find(|(u, _)| u == user) {
            Some(e) => e.1 = secret.to_string(),
            None => self.entries.push((user.to_string(), secret.to_string())),
        }
    }

    /// A user's secret.
    pub fn get(&self, user: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, s)| s.as_str())
    }

    /// The users, in order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(u, _)| u.as_str())
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (u, p) in &self.entries {
            let _ = writeln!(s, "{} {}", quote(u), quote(p));
        }
        s
    }

    /// Reads the file's text ("is a valid auth file?"). Values never name what is
    /// wrong with a line, since they hold secrets.
    pub fn parse(text: &str) -> Result<Userlist, UserlistError> {
        let mut list = Userlist::default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = || UserlistError(format!("line {} is not \"user\" \"secret\"", n + 1));
            let (user, rest) = unquote(line.trim()).ok_or_else(bad)?;
            let (secret, rest) = unquote(rest.trim_start()).ok_or_else(bad)?;
            if user.is_empty() || !rest.trim().is_empty() {
                return Err(bad());
            }
            list.set(&user, &secret);
        }
        if list.entries.is_empty() {
            return Err(UserlistError("no users".into()));
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_round_trip() {
        let mut u = Userlist::default();
        u.set("pgbouncer_auth_relation_id_7", "pa\"ss");
        u.set("pgbouncer_admin_app", "SCRAM-SHA-256$4096:c2FsdA==$a:b");
        let text = u.render();
        assert_eq!(
            text.lines().next().unwrap(),
            r#""pgbouncer_auth_relation_id_7" "pa""ss""#
        );
        assert_eq!(Userlist::parse(&text).unwrap(), u);
        u.set("pgbouncer_admin_app", "new");
        assert_eq!(u.users().count(), 2);
        assert_eq!(u.get("pgbouncer_admin_app"), Some("new"));
    }

    #[test]
    fn malformed_files_are_errors_that_do_not_echo_secrets() {
        for bad in [
            "",
            "user pass",
            "\"user\" pass",
            "\"user\" \"pass",
            "\"\" \"x\"",
            "\"u\" \"p\" extra",
        ] {
            let e = Userlist::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("pass") || bad.is_empty(), "{e}");
        }
    }
}
