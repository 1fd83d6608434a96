//! RFC 3339 timestamps and Go durations, as Pebble (and Juju, both written in
//! Go) write and read them. The local model reads its `--expire` times and
//! duration flags with these too, and the PostgreSQL charm names backups by
//! their start time ([`rfc3339_seconds`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Text that is not an RFC 3339 time or a Go duration.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not `2006-01-02T15:04:05[.frac](Z|±hh:mm)`.
    #[error("cannot parse {0:?} as an RFC 3339 time")]
    Rfc3339(String),
    /// Not a Go duration.
    #[error("invalid duration {0:?}")]
    Duration(String),
}

/// `time` in UTC as `2006-01-02T15:04:05.000000000Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// `time` in UTC to the second, as `2006-01-02T15:04:05Z`.
pub fn rfc3339_seconds(time: SystemTime) -> String {
    let full = rfc3339(time);
    format!("{}Z", &full[..19])
}

/// Parses an RFC 3339 timestamp (`2006-01-02T15:04:05[.frac](Z|±hh:mm)`).
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, ParseError> {
    let bad = || ParseError::Rfc3339(text.into());
    let b = text.as_bytes();
    let number = |from: usize, len: usize| -> Result<i64, ParseError> {
        let digits = text.get(from..from + len).ok_or_else(bad)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        digits.parse().map_err(|_| bad())
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let frac = &text[i + 1..i + 1 + digits.min(9)];
        nanos = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        i += 1 + digits;
    }
    let offset = match &text[i..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':' =>
        {
            let minutes = number(i + 1, 2)? * 60 + number(i + 4, 2)?;
            if zone.starts_with('-') {
                -minutes
            } else {
                minutes
            }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    let secs = u64::try_from(secs).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `d` as Go's `time.Duration.String` writes it (`168h0m0s`, `1.5s`, `20ms`).
pub fn go_duration(d: Duration) -> String {
    /// `n / unit` with the remainder as a trimmed decimal fraction.
    fn decimal(n: u128, unit: u128, width: usize) -> String {
        let (whole, rest) = (n / unit, n % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let frac = format!("{rest:0width$}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
    let ns = d.as_nanos();
    match ns {
        0 => "0s".into(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{}µs", decimal(ns, 1_000, 3)),
        1_000_000..=999_999_999 => format!("{}ms", decimal(ns, 1_000_000, 6)),
        _ => {
            let secs = decimal(ns % 60_000_000_000, 1_000_000_000, 9);
            let minutes = ns / 60_000_000_000;
            let (hours, minutes) = (minutes / 60, minutes % 60);
            if hours > 0 {
                format!("{hours}h{minutes}m{secs}s")
            } else if minutes > 0 {
                format!("{minutes}m{secs}s")
            } else {
                format!("{secs}s")
            }
        }
    }
}

/// A Go duration such as `500ms`, `1.5s`, `1m30s` or `0`.
pub fn parse_go_duration(text: &str) -> Result<Duration, ParseError> {
    let bad = || ParseError::Duration(text.into());
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Howard Hinnant's civil-to-days conversion (days since 1970-01-01).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_738_321_200);
        assert_eq!(rfc3339(t), "2025-01-31T11:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999);
        assert_eq!(rfc3339_seconds(t), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for t in [
            UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            UNIX_EPOCH + Duration::from_secs(951_782_400),
            UNIX_EPOCH,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339(t)).unwrap(), t);
        }
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.5Z").unwrap(), t);
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20.5+02:00").unwrap(), t);
        assert_eq!(parse_rfc3339("2023-11-14T21:13:20.5-01:00").unwrap(), t);
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(15), "15ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(20), "20ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(7 * 24 * 3600), "168h0m0s"),
        ];
        for (d, text) in cases {
            assert_eq!(go_duration(d), text);
        }
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("0.25s").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_go_duration("30.000s").unwrap(),
            Duration::from_secs(30)
        );
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("99999999999999999999999h").is_err());
    }
}
