//! Time as the model sees it: seconds since the epoch, Go durations and RFC 3339
//! timestamps (what `secret-add --expire` takes, read by
//! [`pebble_server::timefmt`]), and secret rotation intervals.

use charm::secret::Rotate;
use pebble_server::timefmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine's clock, in seconds since the epoch.
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long after a rotation (or after the secret's creation) the next is due.
pub fn rotate_interval(policy: Rotate) -> Option<u64> {
    const DAY: u64 = 24 * 3600;
    Some(match policy {
        Rotate::Never => return None,
        Rotate::Hourly => 3600,
        Rotate::Daily => DAY,
        Rotate::Weekly => 7 * DAY,
        Rotate::Monthly => 30 * DAY,
        Rotate::Quarterly => 90 * DAY,
        Rotate::Yearly => 365 * DAY,
    })
}

/// When a rotation that made no new revision is tried again (Juju's retry delay).
pub const ROTATE_RETRY: u64 = 5 * 60;

/// An expiry as `secret-add --expire` takes it: a Go duration from `now`, or an
/// RFC 3339 time.
pub fn expiry(value: &str, now: u64) -> Option<u64> {
    parse_duration(value).map(|d| now + d).or_else(|| {
        let at = timefmt::parse_rfc3339(value.trim()).ok()?;
        Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs())
    })
}

/// A Go duration (`90s`, `1h30m`, `1.5h`) in whole seconds, rounded.
pub fn parse_duration(s: &str) -> Option<u64> {
    let d = timefmt::parse_go_duration(s).ok()?;
    Some(d.as_secs_f64().round() as u64)
}

/// A Go duration (`2s`, `500ms`) in whole milliseconds, for intervals
/// shorter than a second (`juju status --watch`).
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let d = timefmt::parse_go_duration(s).ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// `12:00:00` (UTC), as `juju debug-log` prints a line's time.
pub fn format_clock(secs: u64) -> String {
    let s = secs % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_durations_and_times() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("1.5h"), Some(5400));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(expiry("1970-01-02T00:00:01Z", 0), Some(86_401));
        assert_eq!(expiry("2025-01-31T12:00:00+01:00", 0), Some(1_738_321_200));
        assert_eq!(expiry("10m", 100), Some(700));
        assert_eq!(expiry("2025-01-31T11:00:00Z", 0), Some(1_738_321_200));
    }
}
