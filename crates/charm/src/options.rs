//! A charm's options as `config-get` printed them, read with validation: each
//! reader names the option in its error, fit for a blocked status, so that a
//! charm can refuse a bad value before it applies anything.

use crate::backend::JsonMap;
use serde_json::Value;

/// An option with a value the charm cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid config option {option}: {message}")]
pub struct ConfigError {
    /// The option's name.
    pub option: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl ConfigError {
    /// A refusal of `option`'s value.
    pub fn new(option: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            option,
            message: message.into(),
        }
    }
}

/// The options, read one by one; an unset option (absent or null) reads as `None`.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a>(pub &'a JsonMap);

impl<'a> Options<'a> {
    /// A whole number within `min..=max`.
    pub fn int(
        &self,
        option: &'static str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let Some(v) = self.value(option) else {
            return Ok(None);
        };
        let n = v
            .as_i64()
            .ok_or_else(|| ConfigError::new(option, format!("expected a whole number, got {v}")))?;
        if n < min || n > max {
            return Err(ConfigError::new(
                option,
                format!("must be between {min} and {max}, got {n}"),
            ));
        }
        Ok(Some(n))
    }

    /// A string.
    pub fn text(&self, option: &'static str) -> Result<Option<&'a str>, ConfigError> {
        match self.value(option) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ConfigError::new(
                option,
                format!("expected a string, got {v}"),
            )),
        }
    }

    /// A boolean.
    pub fn flag(&self, option: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.value(option) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ConfigError::new(
                option,
                format!("expected true or false, got {v}"),
            )),
        }
    }

    /// One of a fixed set of words (`default` when unset), as the value it names.
    pub fn choice<T: Copy>(
        &self,
        option: &'static str,
        default: &str,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let word = self.text(option)?.unwrap_or(default);
        if let Some((_, value)) = choices.iter().find(|(w, _)| *w == word) {
            return Ok(*value);
        }
        let names: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
        let listed = match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(ConfigError::new(
            option,
            format!("must be {listed}, got {word:?}"),
        ))
    }

    fn value(&self, option: &str) -> Option<&'a Value> {
        self.0.get(option).filter(|v| !v.is_null())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(v: Value) -> JsonMap {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn unset_options_read_as_none_and_bad_ones_are_named() {
        let raw = options(json!({"port": 80, "name": "x", "on": true, "gone": null}));
        let o = Options(&raw);
        assert_eq!(o.int("port", 1, 100), Ok(Some(80)));
        assert_eq!(o.int("gone", 1, 100), Ok(None));
        assert_eq!(o.text("name"), Ok(Some("x")));
        assert_eq!(o.flag("on"), Ok(Some(true)));
        assert_eq!(
            o.int("port", 1024, 65535).unwrap_err().to_string(),
            "invalid config option port: must be between 1024 and 65535, got 80"
        );
        assert_eq!(
            o.int("name", 0, 1).unwrap_err().message,
            "expected a whole number, got \"x\""
        );
        assert_eq!(
            o.text("port").unwrap_err().message,
            "expected a string, got 80"
        );
        assert_eq!(
            o.flag("name").unwrap_err().message,
            "expected true or false, got \"x\""
        );
    }

    #[test]
    fn a_choice_lists_what_it_accepts() {
        let raw = options(json!({"mode": "sessions"}));
        let o = Options(&raw);
        let modes = [("session", 1), ("transaction", 2), ("statement", 3)];
        assert_eq!(o.choice("other", "transaction", &modes), Ok(2));
        assert_eq!(
            o.choice("mode", "session", &modes).unwrap_err().message,
            "must be session, transaction or statement, got \"sessions\""
        );
        assert_eq!(
            o.choice("mode", "a", &[("a", 1), ("b", 2)])
                .unwrap_err()
                .message,
            "must be a or b, got \"sessions\""
        );
    }
}
