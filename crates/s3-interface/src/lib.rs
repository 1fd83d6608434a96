//! The `s3` relation as the PostgreSQL charm requires it on `s3-parameters`,
//! in the form the published data-platform S3 library and the s3-integrator
//! charm speak (interface v0: every value in the provider's application bag,
//! the keys in clear text).
//!
//! The requirer's leader asks for a bucket ([`ask`]); the provider answers
//! with the bucket (its own, or the one asked for), the endpoint, region,
//! path, keys, URI style, CA chain and retention. [`parse`] reads that answer
//! into [`S3Parameters`]: values trimmed and defaulted as the reference charm
//! does, and anything that could not be written safely into a configuration
//! file (a control character, a malformed list, a number out of range)
//! refused with the key named. The parameters carry the keys; their `Debug`
//! hides them.

use charm::{BagChanges, Databag, Hook, Relation};

/// The PostgreSQL charm's endpoint for the `s3` interface.
pub const S3_PARAMETERS: &str = "s3-parameters";

/// The endpoint used when the provider gives none.
pub const DEFAULT_ENDPOINT: &str = "https://s3.amazonaws.com";

/// The longest retention the provider may set, in days.
pub const MAX_RETENTION_DAYS: u32 = 9_999_999;

/// The keys without which no repository can be configured.
pub const REQUIRED: [&str; 3] = ["bucket", "access-key", "secret-key"];

/// A value in the provider's bag that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("S3 parameter {key}: {reason}")]
pub struct Invalid {
    /// The bag's key.
    pub key: &'static str,
    /// Why, fit for a status (never the value itself: it may be a key).
    pub reason: String,
}

/// How the bucket is addressed: `https://bucket.host/` or `https://host/bucket/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriStyle {
    /// Virtual-hosted style, the default.
    Host,
    /// Path style, as most S3-compatible servers want it.
    Path,
}

impl UriStyle {
    /// The word pgBackRest and the provider use.
    pub fn as_str(self) -> &'static str {
        match self {
            UriStyle::Host => "host",
            UriStyle::Path => "path",
        }
    }
}

/// A repository's location and credentials, ready to configure.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Parameters {
    /// The bucket, without slashes.
    pub bucket: String,
    /// The endpoint URL, without a trailing slash.
    pub endpoint: String,
    /// The region, when the provider names one.
    pub region: Option<String>,
    /// The prefix inside the bucket: `/` followed by the provider's path
    /// without its outer slashes (`/` alone for none).
    pub path: String,
    /// The access key.
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
    /// How the bucket is addressed.
    pub uri_style: UriStyle,
    /// PEM certificates to trust for the endpoint, in the provider's order.
    pub tls_ca_chain: Vec<String>,
    /// Full backups older than this many days are expired.
    pub retention_days: Option<u32>,
}

impl std::fmt::Debug for S3Parameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Parameters")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path", &self.path)
            .field("uri_style", &self.uri_style)
            .field("tls_ca_chain", &self.tls_ca_chain.len())
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

/// What the provider's bag holds so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parameters {
    /// Some of [`REQUIRED`] are missing (named, in that order).
    Missing(Vec<&'static str>),
    /// Everything needed, checked.
    Ready(S3Parameters),
}

/// The bucket a requirer asks for when it has no name of its own, as the
/// library names it: `relation-<id>`.
pub fn requested_bucket(relation: &Relation) -> String {
    format!("relation-{}", relation.id)
}

/// Leader: asks the provider for a bucket, once; the provider answers with
/// every parameter it holds.
pub fn ask(hook: &mut Hook<'_>, relation: &Relation) -> charm::Result<()> {
    if hook.local_app_bag(relation)?.contains_key("bucket") {
        return Ok(());
    }
    let bucket = requested_bucket(relation);
    hook.update_app_bag(relation, BagChanges::new().set("bucket", bucket))?;
    Ok(())
}

/// The "Missing S3 parameters" text for the keys `missing` names.
pub fn missing_message(missing: &[&str]) -> String {
    format!("Missing S3 parameters: {}", missing.join(", "))
}

/// Reads the provider's application bag. An empty value counts as absent,
/// as the provider writes a reset option.
pub fn parse(bag: &Databag) -> Result<Parameters, Invalid> {
    let value = |key: &'static str| -> Result<Option<String>, Invalid> {
        match bag.get(key).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) if v.chars().any(char::is_control) => Err(Invalid {
                key,
                reason: "contains a control character".into(),
            }),
            Some(v) => Ok(Some(v.to_string())),
        }
    };
    let missing: Vec<&'static str> = REQUIRED
        .into_iter()
        .filter(|key| bag.get(*key).is_none_or(|v| v.trim().is_empty()))
        .collect();
    if !missing.is_empty() {
        return Ok(Parameters::Missing(missing));
    }
    let required = |key: &'static str| -> Result<String, Invalid> {
        value(key)?.ok_or(Invalid {
            key,
            reason: "is empty".into(),
        })
    };

    let bucket = required("bucket")?.trim_matches('/').to_string();
    if bucket.is_empty() || bucket.contains('/') || bucket.contains(char::is_whitespace) {
        return Err(Invalid {
            key: "bucket",
            reason: "is not a bucket name".into(),
        });
    }
    let endpoint = match value("endpoint")? {
        None => DEFAULT_ENDPOINT.to_string(),
        Some(e) => endpoint(&e)?,
    };
    let path = format!("/{}", value("path")?.unwrap_or_default().trim_matches('/'));
    let uri_style = match value("s3-uri-style")?.as_deref() {
        None | Some("host") => UriStyle::Host,
        Some("path") => UriStyle::Path,
        Some(_) => {
            return Err(Invalid {
                key: "s3-uri-style",
                reason: "must be host or path".into(),
            })
        }
    };
    let tls_ca_chain = match bag.get("tls-ca-chain").map(|v| v.trim()) {
        None | Some("") => Vec::new(),
        Some(chain) => ca_chain(chain)?,
    };
    let retention_days = value("delete-older-than-days")?
        .map(|days| retention(&days))
        .transpose()?;
    Ok(Parameters::Ready(S3Parameters {
        bucket,
        endpoint,
        region: value("region")?,
        path,
        access_key: required("access-key")?,
        secret_key: required("secret-key")?,
        uri_style,
        tls_ca_chain,
        retention_days,
    }))
}

/// An `http` or `https` URL with a host, its trailing slashes removed.
fn endpoint(raw: &str) -> Result<String, Invalid> {
    let invalid = |reason: &str| Invalid {
        key: "endpoint",
        reason: reason.into(),
    };
    let url = raw.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("must be an http:// or https:// URL"))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) || rest.starts_with('/') {
        return Err(invalid("names no host"));
    }
    Ok(url.to_string())
}

/// A JSON list of PEM certificates (multi-line by nature: they are written
/// to a file of their own, never into a configuration line).
fn ca_chain(raw: &str) -> Result<Vec<String>, Invalid> {
    let invalid = |reason: &str| Invalid {
        key: "tls-ca-chain",
        reason: reason.into(),
    };
    let chain: Vec<String> =
        serde_json::from_str(raw).map_err(|_| invalid("is not a JSON list of strings"))?;
    for pem in &chain {
        let body = pem.trim();
        if !body.starts_with("-----BEGIN CERTIFICATE-----")
            || !body.ends_with("-----END CERTIFICATE-----")
        {
            return Err(invalid("holds something other than a PEM certificate"));
        }
    }
    Ok(chain
        .into_iter()
        .map(|pem| pem.trim().to_string())
        .collect())
}

/// Days of retention, 1 to [`MAX_RETENTION_DAYS`].
fn retention(raw: &str) -> Result<u32, Invalid> {
    raw.parse::<u32>()
        .ok()
        .filter(|days| (1..=MAX_RETENTION_DAYS).contains(days))
        .ok_or(Invalid {
            key: "delete-older-than-days",
            reason: format!("must be a whole number of days from 1 to {MAX_RETENTION_DAYS}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";

    fn bag(pairs: &[(&str, &str)]) -> Databag {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn complete(extra: &[(&str, &str)]) -> Databag {
        let mut b = bag(&[
            ("bucket", "backups"),
            ("access-key", "AKIAEXAMPLE"),
            ("secret-key", "wJalrEXAMPLE"),
        ]);
        b.extend(bag(extra));
        b
    }

    fn ready(b: &Databag) -> S3Parameters {
        match parse(b) {
            Ok(Parameters::Ready(p)) => p,
            other => panic!("not ready: {other:?}"),
        }
    }

    fn refused(b: &Databag) -> Invalid {
        parse(b).expect_err("accepted")
    }

    #[test]
    fn missing_keys_are_named_in_order() {
        assert_eq!(
            parse(&bag(&[("access-key", "a"), ("secret-key", " ")])),
            Ok(Parameters::Missing(vec!["bucket", "secret-key"]))
        );
        assert_eq!(
            missing_message(&["bucket"]),
            "Missing S3 parameters: bucket"
        );
    }

    #[test]
    fn defaults_fill_what_the_provider_left_out() {
        let p = ready(&complete(&[]));
        assert_eq!(p.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(p.path, "/");
        assert_eq!(p.region, None);
        assert_eq!(p.uri_style, UriStyle::Host);
        assert!(p.tls_ca_chain.is_empty());
        assert_eq!(p.retention_days, None);
    }

    #[test]
    fn values_are_normalised() {
        let p = ready(&complete(&[
            ("bucket", " /backups/ "),
            ("endpoint", "http://127.0.0.1:9000//"),
            ("path", "/pg/prod/"),
            ("region", " eu-west-1 "),
            ("s3-uri-style", "path"),
            ("delete-older-than-days", "7"),
            ("tls-ca-chain", &serde_json::to_string(&[CERT]).unwrap()),
        ]));
        assert_eq!(p.bucket, "backups");
        assert_eq!(p.endpoint, "http://127.0.0.1:9000");
        assert_eq!(p.path, "/pg/prod");
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert_eq!(p.uri_style, UriStyle::Path);
        assert_eq!(p.retention_days, Some(7));
        assert_eq!(p.tls_ca_chain, vec![CERT.to_string()]);
    }

    #[test]
    fn a_number_stays_text() {
        let p = ready(&complete(&[("bucket", "2024"), ("path", "42")]));
        assert_eq!(p.bucket, "2024");
        assert_eq!(p.path, "/42");
    }

    #[test]
    fn a_control_character_is_refused_without_echoing_the_value() {
        let e = refused(&complete(&[("secret-key", "abc\nrepo1-path=/x")]));
        assert_eq!(e.key, "secret-key");
        assert!(!e.to_string().contains("repo1-path"), "{e}");
        assert_eq!(refused(&complete(&[("path", "a\rb")])).key, "path");
    }

    #[test]
    fn a_bad_endpoint_is_refused() {
        for bad in ["s3.amazonaws.com", "ftp://host", "https://", "https:// x"] {
            assert_eq!(
                refused(&complete(&[("endpoint", bad)])).key,
                "endpoint",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_bucket_is_refused() {
        for bad in ["a/b", "a b", "//"] {
            assert_eq!(
                refused(&complete(&[("bucket", bad)])).key,
                "bucket",
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unknown_uri_style_is_refused() {
        assert_eq!(
            refused(&complete(&[("s3-uri-style", "virtual")])).key,
            "s3-uri-style"
        );
    }

    #[test]
    fn retention_out_of_range_is_refused() {
        for bad in ["0", "-1", "10000000", "7.5", "seven"] {
            let e = refused(&complete(&[("delete-older-than-days", bad)]));
            assert_eq!(e.key, "delete-older-than-days", "{bad}");
        }
        let max = MAX_RETENTION_DAYS.to_string();
        assert_eq!(
            ready(&complete(&[("delete-older-than-days", &max)])).retention_days,
            Some(MAX_RETENTION_DAYS)
        );
    }

    #[test]
    fn a_malformed_ca_chain_is_refused() {
        for bad in ["not json", "[1, 2]", "[\"hello\"]", "{\"a\": 1}"] {
            let e = refused(&complete(&[("tls-ca-chain", bad)]));
            assert_eq!(e.key, "tls-ca-chain", "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_keys() {
        let shown = format!("{:?}", ready(&complete(&[])));
        assert!(shown.contains("backups"));
        assert!(!shown.contains("AKIAEXAMPLE") && !shown.contains("wJalrEXAMPLE"));
    }

    #[test]
    fn the_bucket_asked_for_names_the_relation() {
        let relation = Relation {
            endpoint: S3_PARAMETERS.into(),
            id: 12,
        };
        assert_eq!(requested_bucket(&relation), "relation-12");
    }
}
