//! `host:port` endpoints as the `postgresql_client` interface carries them.

use std::fmt;

/// One endpoint; the host is checked so that it is safe in PgBouncer's ini file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// A DNS name or an IP address.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// Why an endpoint string cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {0:?}: expected host:port with a DNS name or an IP address")]
pub struct EndpointError(pub String);

impl Endpoint {
    /// Parses `host:port` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let err = || EndpointError(s.to_string());
        let s = s.trim();
        let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| err())?;
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !ok || port == 0 {
            return Err(err());
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }

    /// Parses a comma-separated list; empty items are skipped.
    pub fn parse_list(s: &str) -> Result<Vec<Endpoint>, EndpointError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Endpoint::parse)
            .collect()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Joins endpoints the way the interface carries them.
pub fn join(endpoints: &[Endpoint]) -> String {
    endpoints
        .iter()
        .map(Endpoint::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ipv4_and_ipv6() {
        assert_eq!(
            Endpoint::parse("pg-0.pg-endpoints:5432").unwrap().host,
            "pg-0.pg-endpoints"
        );
        assert_eq!(Endpoint::parse("10.1.2.3:5432").unwrap().port, 5432);
        let v6 = Endpoint::parse("[fd00::1]:5432").unwrap();
        assert_eq!(v6.host, "fd00::1");
        assert_eq!(v6.to_string(), "[fd00::1]:5432");
        assert_eq!(Endpoint::parse_list("a:1, b:2,").unwrap().len(), 2);
        assert_eq!(join(&Endpoint::parse_list("a:1,b:2").unwrap()), "a:1,b:2");
    }

    #[test]
    fn rejects_what_could_break_the_ini_file() {
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:99999",
            ":5432",
            "a b:5432",
            "a\n:5432",
            "a=b:5432",
            "a;b:5432",
            "a'b:5432",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
