//! Errors from asking Juju for something, typed after Juju's own error phrases.

/// What went wrong when a charm asked Juju for something.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The relation is unknown to this hook (gone, or never existed).
    #[error("{tool}: relation not found: {message}")]
    RelationNotFound {
        /// The tool that failed.
        tool: String,
        /// Juju's message.
        message: String,
    },
    /// Juju's rules forbid the access (for example a follower reading its own
    /// application databag on a non-peer relation).
    #[error("{tool}: permission denied: {message}")]
    PermissionDenied {
        /// The tool that failed.
        tool: String,
        /// Juju's message.
        message: String,
    },
    /// The secret, or the label, is unknown to this unit.
    #[error("{tool}: secret not found: {message}")]
    SecretNotFound {
        /// The tool that failed.
        tool: String,
        /// Juju's message.
        message: String,
    },
    /// Only the leader may do this.
    #[error("{tool}: this unit is not the leader")]
    NotLeader {
        /// The tool refused.
        tool: String,
    },
    /// An action tool was used outside an action.
    #[error("{tool}: not running an action")]
    NotInAction {
        /// The tool refused.
        tool: String,
    },
    /// Refused before asking Juju: the request breaks one of Juju's rules.
    #[error("{0}")]
    Invalid(String),
    /// One relation was asked for by endpoint, and the endpoint has several.
    #[error("endpoint {endpoint} has {count} relations: name one by its id")]
    TooManyRelations {
        /// The endpoint.
        endpoint: String,
        /// How many relations it has.
        count: usize,
    },
    /// Any other failure reported by a hook tool.
    #[error("{tool} failed (exit code {code}): {message}")]
    Tool {
        /// The tool that failed.
        tool: String,
        /// Its exit code.
        code: i32,
        /// Its stderr, without the `ERROR ` prefix.
        message: String,
    },
    /// The hook tool could not be started.
    #[error("cannot run {tool}: {source}")]
    Spawn {
        /// The tool.
        tool: String,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },
    /// The hook tool printed something this SDK cannot read.
    #[error("{tool} printed output that cannot be read: {detail}")]
    Output {
        /// The tool.
        tool: String,
        /// What could not be read.
        detail: String,
    },
}

impl Error {
    /// Maps a failed tool's stderr to an error, the way ops reads Juju's phrases.
    pub fn from_tool_failure(tool: &str, code: i32, stderr: &str) -> Error {
        let message = stderr
            .trim()
            .strip_prefix("ERROR ")
            .unwrap_or(stderr.trim())
            .to_string();
        let lower = message.to_lowercase();
        let tool_s = tool.to_string();
        let relation_tool = matches!(
            tool,
            "relation-ids"
                | "relation-list"
                | "relation-get"
                | "relation-set"
                | "relation-model-get"
                | "network-get"
        );
        if relation_tool && mentions_relation_not_found(&lower) {
            return Error::RelationNotFound {
                tool: tool_s,
                message,
            };
        }
        if tool.starts_with("secret-") && lower.contains("not found") {
            return Error::SecretNotFound {
                tool: tool_s,
                message,
            };
        }
        if lower.contains("not the leader") {
            return Error::NotLeader { tool: tool_s };
        }
        if lower.contains("not running an action") {
            return Error::NotInAction { tool: tool_s };
        }
        if lower.contains("permission denied")
            || lower.contains("access denied")
            || lower.contains("cannot write relation settings")
        {
            return Error::PermissionDenied {
                tool: tool_s,
                message,
            };
        }
        Error::Tool {
            tool: tool_s,
            code,
            message,
        }
    }

    /// The text Juju prints after `ERROR ` for this error (what a hook-tool
    /// emulator writes to stderr).
    pub fn juju_message(&self) -> String {
        match self {
            Error::RelationNotFound { message, .. }
            | Error::PermissionDenied { message, .. }
            | Error::SecretNotFound { message, .. }
            | Error::Tool { message, .. } => message.clone(),
            Error::NotLeader { .. } => "this unit is not the leader".into(),
            Error::NotInAction { .. } => "not running an action".into(),
            Error::Invalid(m) => m.clone(),
            Error::TooManyRelations { .. } | Error::Spawn { .. } | Error::Output { .. } => {
                self.to_string()
            }
        }
    }

    /// Whether the error says the relation is gone (reads of it return nothing).
    pub fn is_relation_not_found(&self) -> bool {
        matches!(self, Error::RelationNotFound { .. })
    }

    /// Whether the error says the secret or label is unknown.
    pub fn is_secret_not_found(&self) -> bool {
        matches!(self, Error::SecretNotFound { .. })
    }
}

/// Matches `relation (\d+ )?not found`, as ops does.
fn mentions_relation_not_found(lower: &str) -> bool {
    lower.match_indices("relation ").any(|(i, m)| {
        let rest = &lower[i + m.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let rest = if digits > 0 {
            match rest[digits..].strip_prefix(' ') {
                Some(r) => r,
                None => return false,
            }
        } else {
            rest
        };
        rest.starts_with("not found")
    })
}

/// A result of asking Juju.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_juju_phrases_to_typed_errors() {
        let e = Error::from_tool_failure("relation-get", 1, "ERROR relation 7 not found\n");
        assert!(e.is_relation_not_found());
        let e = Error::from_tool_failure("network-get", 1, "ERROR relation not found");
        assert!(e.is_relation_not_found());
        let e = Error::from_tool_failure(
            "relation-get",
            1,
            "ERROR permission denied reading application settings",
        );
        assert!(matches!(e, Error::PermissionDenied { .. }));
        let e = Error::from_tool_failure("relation-set", 1, "ERROR cannot write relation settings");
        assert!(matches!(e, Error::PermissionDenied { .. }));
        let e = Error::from_tool_failure(
            "secret-get",
            1,
            "ERROR consumer label \"db.4.user.secret\" not found",
        );
        assert!(e.is_secret_not_found());
        let e = Error::from_tool_failure(
            "secret-get",
            1,
            "ERROR secret \"d0rtp2cs1tj5qbo1s2ug\" not found",
        );
        assert!(e.is_secret_not_found());
        let e = Error::from_tool_failure("secret-add", 1, "ERROR this unit is not the leader");
        assert!(matches!(e, Error::NotLeader { .. }));
        let e = Error::from_tool_failure("status-set", 1, "ERROR this unit is not the leader");
        assert!(matches!(e, Error::NotLeader { .. }));
        let e = Error::from_tool_failure("action-get", 1, "ERROR not running an action");
        assert!(matches!(e, Error::NotInAction { .. }));
        let e =
            Error::from_tool_failure("config-get", 2, "ERROR flag provided but not defined: -x");
        match e {
            Error::Tool { code, message, .. } => {
                assert_eq!(code, 2);
                assert_eq!(message, "flag provided but not defined: -x");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn juju_messages_survive_the_round_trip() {
        for (tool, stderr) in [
            ("relation-get", "relation 7 not found"),
            ("relation-set", "cannot write relation settings"),
            ("secret-get", "consumer label \"x\" not found"),
            ("secret-add", "this unit is not the leader"),
            ("action-log", "not running an action"),
            ("config-get", "flag provided but not defined: -x"),
        ] {
            let e = Error::from_tool_failure(tool, 1, &format!("ERROR {stderr}\n"));
            assert_eq!(e.juju_message(), stderr);
        }
    }

    #[test]
    fn not_found_only_means_relation_for_relation_tools() {
        let e = Error::from_tool_failure("config-get", 1, "ERROR relation 3 not found");
        assert!(!e.is_relation_not_found());
        let e = Error::from_tool_failure("relation-get", 1, "ERROR relation 3x not found");
        assert!(!e.is_relation_not_found());
        let e = Error::from_tool_failure("relation-list", 1, "ERROR unit not found");
        assert!(!e.is_relation_not_found());
    }
}
