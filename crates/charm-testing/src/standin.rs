//! Stand-in hook tools: a directory of scripts named like Juju's tools that record
//! each call (arguments, stdin, and the content of `key#file=` files) and answer
//! from fixtures. They prove the real adapter's command lines and parsing without
//! Juju.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SCRIPT: &str = r#"#!/bin/sh
# A stand-in hook tool: records the call, answers from fixtures.
tool=${0##*/}
dir=$(dirname "$0")/..
n=$(cat "$dir/seq" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$dir/seq"
call="$dir/calls/$(printf '%05d' "$n")"
mkdir -p "$call"
printf '%s' "$tool" > "$call/tool"
for a in "$@"; do printf '%s\n' "$a"; done > "$call/args"
for a in "$@"; do
  case "$a" in
    *'#file='*) cp "${a#*#file=}" "$call/file.${a%%#file=*}" ;;
  esac
done
cat > "$call/stdin"
key=$(printf '%s\n' "$@")
base="$dir/fixtures/$tool.default"
for f in "$dir/fixtures/$tool".*.args; do
  [ -e "$f" ] || continue
  if [ "$(cat "$f")" = "$key" ]; then base=${f%.args}; break; fi
done
[ -e "$base.out" ] && cat "$base.out"
[ -e "$base.err" ] && cat "$base.err" >&2
code=0
[ -e "$base.code" ] && code=$(cat "$base.code")
exit "$code"
"#;

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCall {
    /// The tool's name (`relation-get`, `status-set`, ...).
    pub tool: String,
    /// Its arguments, in order.
    pub args: Vec<String>,
    /// What it read on stdin.
    pub stdin: String,
    /// The content of each `key#file=<path>` argument's file, by key.
    pub files: BTreeMap<String, String>,
}

impl RecordedCall {
    /// The command line, arguments joined by spaces.
    pub fn line(&self) -> String {
        std::iter::once(self.tool.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A directory of stand-in tools, removed when dropped.
pub struct StandIn {
    root: PathBuf,
    fixtures: usize,
}

impl StandIn {
    /// Creates the tools in a fresh directory.
    pub fn new() -> std::io::Result<StandIn> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("charm-standin-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for sub in ["bin", "fixtures", "calls"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let script = root.join("bin/standin");
        std::fs::write(&script, SCRIPT)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        for tool in charm::commands::TOOLS {
            std::os::unix::fs::symlink("standin", root.join("bin").join(tool))?;
        }
        Ok(StandIn { root, fixtures: 0 })
    }

    /// The directory holding the tools.
    pub fn tools_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// A `PATH` with the tools first.
    pub fn path_var(&self) -> OsString {
        let mut p = OsString::from(self.tools_dir());
        p.push(":/usr/local/bin:/usr/bin:/bin");
        p
    }

    /// The fixture base for `tool` with `args`, emptied of any earlier answer.
    fn fixture(&mut self, tool: &str, args: Option<&[&str]>) -> PathBuf {
        let dir = self.root.join("fixtures");
        let base = match args {
            None => dir.join(format!("{tool}.default")),
            Some(args) => {
                let key = args.join("\n");
                let existing = (1..=self.fixtures)
                    .map(|n| dir.join(format!("{tool}.{n}")))
                    .find(|b| {
                        std::fs::read_to_string(Self::with_ext(b, "args")).is_ok_and(|k| k == key)
                    });
                existing.unwrap_or_else(|| {
                    self.fixtures += 1;
                    let base = dir.join(format!("{tool}.{}", self.fixtures));
                    std::fs::write(Self::with_ext(&base, "args"), key).expect("write fixture");
                    base
                })
            }
        };
        for ext in ["out", "err", "code"] {
            let _ = std::fs::remove_file(Self::with_ext(&base, ext));
        }
        base
    }

    fn with_ext(base: &Path, ext: &str) -> PathBuf {
        let mut p = base.as_os_str().to_owned();
        p.push(".");
        p.push(ext);
        PathBuf::from(p)
    }

    fn write(base: &Path, ext: &str, content: &str) {
        std::fs::write(Self::with_ext(base, ext), content).expect("write fixture");
    }

    /// `tool` prints `out` when called with exactly `args` (any arguments when `None`).
    pub fn answer(&mut self, tool: &str, args: Option<&[&str]>, out: &str) {
        let base = self.fixture(tool, args);
        Self::write(&base, "out", out);
    }

    /// `tool` fails with `stderr` and exit `code` when called with exactly `args`.
    pub fn fail(&mut self, tool: &str, args: Option<&[&str]>, code: i32, stderr: &str) {
        let base = self.fixture(tool, args);
        Self::write(&base, "err", stderr);
        Self::write(&base, "code", &code.to_string());
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.root.join("calls"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs.iter()
            .map(|d| {
                let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
                let mut files = BTreeMap::new();
                for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(key) = name.strip_prefix("file.") {
                        files.insert(key.to_string(), read(&name));
                    }
                }
                let args = read("args");
                RecordedCall {
                    tool: read("tool"),
                    args: args.lines().map(str::to_string).collect(),
                    stdin: read("stdin"),
                    files,
                }
            })
            .collect()
    }

    /// Forgets the calls made so far.
    pub fn clear_calls(&self) {
        let _ = std::fs::remove_dir_all(self.root.join("calls"));
        let _ = std::fs::create_dir_all(self.root.join("calls"));
        let _ = std::fs::remove_file(self.root.join("seq"));
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
