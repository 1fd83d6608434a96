//! Command-line parsing the way Juju's tools do it (Go's `gnuflag`): flags may
//! come before or after positional arguments, `-x` and `--x` are the same,
//! `--name=value` and `--name value` both work, booleans take `--app` or
//! `--app=<bool>`, and `--` ends the flags.

use std::collections::BTreeMap;

/// Whether a flag takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Value,
}

/// A flag a tool accepts: its names (the first is canonical) and kind.
pub type Spec = (&'static [&'static str], Kind);

/// A parsed command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    values: BTreeMap<&'static str, Vec<String>>,
    pub positional: Vec<String>,
}

/// A command line the tool cannot take (exit code 2, like Juju).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl Parsed {
    /// Parses `args` against the tool's flags.
    pub fn parse(args: &[String], spec: &[Spec]) -> Result<Parsed, UsageError> {
        let mut out = Parsed::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg == "--" {
                out.positional.extend(args[i..].iter().cloned());
                break;
            }
            let Some(flag) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|f| !f.is_empty())
            else {
                out.positional.push(arg.clone());
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let Some((names, kind)) = spec.iter().find(|(names, _)| names.contains(&name)) else {
                return Err(UsageError(format!(
                    "flag provided but not defined: -{name}"
                )));
            };
            let value = match kind {
                Kind::Bool => match inline {
                    None => "true".to_string(),
                    Some(v) => {
                        let b = parse_bool(&v).ok_or_else(|| {
                            UsageError(format!("invalid boolean value {v:?} for -{name}"))
                        })?;
                        b.to_string()
                    }
                },
                Kind::Value => match inline {
                    Some(v) => v,
                    None => {
                        let v = args.get(i).ok_or_else(|| {
                            UsageError(format!("flag needs an argument: -{name}"))
                        })?;
                        i += 1;
                        v.clone()
                    }
                },
            };
            out.values.entry(names[0]).or_default().push(value);
        }
        Ok(out)
    }

    /// The last value of a flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value a repeatable flag was given, in order.
    pub fn values(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether a boolean flag is set.
    pub fn flag(&self, name: &str) -> bool {
        self.value(name) == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Spec] = &[
        (&["r", "relation"], Kind::Value),
        (&["app"], Kind::Bool),
        (&["format"], Kind::Value),
    ];

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        Parsed::parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            SPEC,
        )
    }

    #[test]
    fn accepts_every_form_juju_accepts() {
        for args in [
            &["-r", "db:3", "-", "app/0"][..],
            &["--relation=db:3", "-", "app/0"],
            &["-", "--relation", "db:3", "app/0"],
            &["-r=db:3", "-", "app/0"],
        ] {
            let parsed = p(args).unwrap();
            assert_eq!(parsed.value("r"), Some("db:3"), "{args:?}");
            assert_eq!(parsed.positional, ["-", "app/0"], "{args:?}");
        }
        assert!(p(&["--app"]).unwrap().flag("app"));
        assert!(p(&["--app=True"]).unwrap().flag("app"));
        assert!(!p(&["--app=False"]).unwrap().flag("app"));
        assert_eq!(p(&["--", "-r", "x"]).unwrap().positional, ["-r", "x"]);
    }

    #[test]
    fn refuses_what_juju_refuses() {
        assert_eq!(
            p(&["--bogus"]).unwrap_err().0,
            "flag provided but not defined: -bogus"
        );
        assert_eq!(p(&["-r"]).unwrap_err().0, "flag needs an argument: -r");
        assert!(p(&["--app=maybe"]).is_err());
    }
}
