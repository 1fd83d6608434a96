//! Time as the model sees it: seconds since the epoch, Go durations and RFC 3339
//! timestamps (what `secret-add --expire` takes), and secret rotation intervals.

use charm::secret::Rotate;
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
    parse_duration(value)
        .map(|d| now + d)
        .or_else(|| parse_rfc3339(value))
}

/// A Go duration (`90s`, `1h30m`, `1.5h`) in whole seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    Some(total.round() as u64)
}

/// Days since the epoch of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 time (`2025-01-31T12:00:00Z`, fractions and offsets allowed).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if !time.contains(['+', '-']) {
        (time, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let clock = clock.split('.').next()?;
    let mut t = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs).ok()
}

/// The civil date of a day count since the epoch.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2025-01-31T12:00:00Z`.
pub fn format_rfc3339(secs: u64) -> String {
    let secs = secs as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}T{}Z", format_clock(secs as u64))
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
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01Z"), Some(86_401));
        assert_eq!(
            parse_rfc3339("2025-01-31T12:00:00+01:00"),
            Some(1_738_321_200)
        );
        assert_eq!(format_rfc3339(1_738_321_200), "2025-01-31T11:00:00Z");
        assert_eq!(expiry("10m", 100), Some(700));
        assert_eq!(expiry("2025-01-31T11:00:00Z", 0), Some(1_738_321_200));
    }
}
