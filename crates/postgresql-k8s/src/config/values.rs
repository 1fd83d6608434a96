//! Reading one option's value by its [`Kind`]: a bad value is a
//! [`ConfigError`] that names the option and says why; a good one is the
//! parameter's value as Patroni writes it.

use super::table::{Kind, Tuning};
use charm::options::{ConfigError, Options};
use serde_json::{json, Value};

/// The parameter value `t`'s option gives (its default when unset).
pub fn read(o: &Options<'_>, t: &Tuning) -> Result<Value, ConfigError> {
    let name = t.option;
    Ok(match t.kind {
        Kind::Flag(default) => on_off(o.flag(name)?.unwrap_or(default)),
        Kind::Int { default, min, max } => json!(o.int(name, min, max)?.unwrap_or(default)),
        Kind::Float { default, min, max } => json!(number(o, name, min, max)?.unwrap_or(default)),
        Kind::Word { default, words } => {
            let word = o.text(name)?.unwrap_or(default);
            if !words.contains(&word) {
                return Err(ConfigError::new(
                    name,
                    format!("must be one of {}, got {word:?}", words.join(", ")),
                ));
            }
            json!(word)
        }
        Kind::DateStyle(default) => {
            let text = o.text(name)?.unwrap_or(default);
            date_style(text).map_err(|why| ConfigError::new(name, why))?;
            json!(text)
        }
        Kind::TimeZone(default) => {
            let text = o.text(name)?.unwrap_or(default);
            if !is_zone_name(text) {
                return Err(ConfigError::new(
                    name,
                    format!("must be a time zone name such as UTC or Europe/Paris, got {text:?}"),
                ));
            }
            json!(text)
        }
    })
}

/// `on` or `off`, as PostgreSQL writes booleans (a quoted string, so that
/// Patroni's YAML reader keeps it a string).
pub fn on_off(b: bool) -> Value {
    json!(if b { "on" } else { "off" })
}

/// A number (whole or not) within `min..=max`.
pub fn number(
    o: &Options<'_>,
    option: &'static str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, ConfigError> {
    let Some(v) = o.0.get(option).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let n = v
        .as_f64()
        .ok_or_else(|| ConfigError::new(option, format!("expected a number, got {v}")))?;
    if !(min..=max).contains(&n) {
        let max = if max == f64::MAX {
            "any".to_string()
        } else {
            max.to_string()
        };
        return Err(ConfigError::new(
            option,
            format!("must be between {min} and {max}, got {n}"),
        ));
    }
    Ok(Some(n))
}

/// Checks a `DateStyle` as PostgreSQL does: comma-separated words, at most
/// one output format (ISO, SQL, Postgres, German) and one field order (DMY,
/// MDY, YMD and their synonyms), none repeated differently.
pub fn date_style(text: &str) -> Result<(), String> {
    const FORMATS: &[&str] = &["iso", "sql", "postgres", "german"];
    const ORDERS: &[(&str, &str)] = &[
        ("dmy", "dmy"),
        ("euro", "dmy"),
        ("european", "dmy"),
        ("mdy", "mdy"),
        ("us", "mdy"),
        ("noneuro", "mdy"),
        ("noneuropean", "mdy"),
        ("ymd", "ymd"),
    ];
    let (mut format, mut order) = (None, None);
    for word in text.split(',').map(|w| w.trim().to_ascii_lowercase()) {
        if FORMATS.contains(&word.as_str()) {
            if format.is_some_and(|f| f != word) {
                return Err(format!("names two output formats: {text:?}"));
            }
            format = Some(word);
        } else if let Some((_, o)) = ORDERS.iter().find(|(w, _)| *w == word) {
            if order.is_some_and(|p| p != *o) {
                return Err(format!("names two field orders: {text:?}"));
            }
            order = Some(*o);
        } else {
            return Err(format!(
                "must be an output format (ISO, SQL, Postgres, German) and/or a field \
                 order (DMY, MDY, YMD), got {text:?}"
            ));
        }
    }
    Ok(())
}

/// A time zone name as the time zone database spells it: `/`-separated words
/// of letters, digits, `_`, `+` and `-`, each starting with a letter.
fn is_zone_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.split('/').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_styles_are_checked_like_postgresql() {
        for good in [
            "ISO, MDY",
            "iso",
            "SQL, DMY",
            "Postgres,YMD",
            "German, Euro",
            "US",
        ] {
            assert_eq!(date_style(good), Ok(()), "{good}");
        }
        for bad in ["", "ISO, SQL", "DMY, MDY", "Klingon", "ISO; MDY"] {
            assert!(date_style(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zone_names_have_the_database_spelling() {
        for good in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+3",
        ] {
            assert!(is_zone_name(good), "{good}");
        }
        for bad in ["", "../etc/passwd", "Europe/", "UTC; DROP", "+03"] {
            assert!(!is_zone_name(bad), "{bad}");
        }
    }
}
