//! Prometheus' text exposition format: metric families with their help,
//! type and samples.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One metric family and its samples (labels, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub help: &'static str,
    /// `gauge` or `counter`.
    pub kind: &'static str,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

/// A page of families by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    families: BTreeMap<&'static str, Family>,
}

impl Page {
    /// Adds a sample to the family `name` (made with `help` and `kind` the
    /// first time).
    pub fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: Vec<(String, String)>,
        value: f64,
    ) {
        self.families
            .entry(name)
            .or_insert_with(|| Family {
                help,
                kind,
                samples: Vec::new(),
            })
            .samples
            .push((labels, value));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: Page) {
        for (name, family) in other.families {
            match self.families.get_mut(name) {
                Some(mine) => mine.samples.extend(family.samples),
                None => {
                    self.families.insert(name, family);
                }
            }
        }
    }

    /// The family `name`, if any sample was added.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    /// The page in the text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (labels, value) in &family.samples {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", number(*value));
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_escaped_labels() {
        let mut page = Page::default();
        page.add("b_total", "B.", "counter", vec![], 3.0);
        page.add(
            "a",
            "A.",
            "gauge",
            vec![("db".into(), "x\"y\\z".into()), ("p".into(), "0".into())],
            0.5,
        );
        assert_eq!(
            page.render(),
            "# HELP a A.\n# TYPE a gauge\na{db=\"x\\\"y\\\\z\",p=\"0\"} 0.5\n\
             # HELP b_total B.\n# TYPE b_total counter\nb_total 3\n"
        );
    }
}
