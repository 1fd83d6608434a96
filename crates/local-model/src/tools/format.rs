//! Output in Juju's formats: `json`, `yaml`, and the default `smart` (strings
//! bare, booleans `True`/`False`, structures as YAML, nothing for null).

use serde_json::Value;

/// An output format a tool was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Smart,
    Json,
    Yaml,
}

impl Format {
    /// Reads `--format`; `None` for a format Juju does not know.
    pub fn parse(value: Option<&str>) -> Option<Format> {
        match value {
            None | Some("smart") => Some(Format::Smart),
            Some("json") => Some(Format::Json),
            Some("yaml") => Some(Format::Yaml),
            Some(_) => None,
        }
    }

    /// Renders a value, with the trailing newline Juju prints.
    pub fn render(self, value: &Value) -> String {
        match self {
            Format::Json => format!("{value}\n"),
            Format::Yaml => yaml(value),
            Format::Smart => match value {
                Value::Null => String::new(),
                Value::String(s) => format!("{s}\n"),
                Value::Bool(true) => "True\n".into(),
                Value::Bool(false) => "False\n".into(),
                Value::Number(n) => format!("{n}\n"),
                Value::Array(_) | Value::Object(_) => yaml(value),
            },
        }
    }
}

fn yaml(value: &Value) -> String {
    let mut s = yaml_serde::to_string(value).unwrap_or_default();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_each_format() {
        assert_eq!(Format::Json.render(&json!({"a": "b"})), "{\"a\":\"b\"}\n");
        assert_eq!(Format::Json.render(&Value::Null), "null\n");
        assert_eq!(Format::Smart.render(&json!("text")), "text\n");
        assert_eq!(Format::Smart.render(&json!(true)), "True\n");
        assert_eq!(Format::Smart.render(&Value::Null), "");
        assert_eq!(Format::Smart.render(&json!({"a": "b"})), "a: b\n");
        assert_eq!(Format::Yaml.render(&json!(["x"])), "- x\n");
        assert_eq!(Format::parse(Some("toml")), None);
    }
}
