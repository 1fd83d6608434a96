//! What a user reads from the local model's `juju`, compared with what Juju
//! 3.6 prints: `status` as a table (with `--relations`), JSON and YAML, and
//! `--watch` ended by SIGINT; `show-unit` with its filters; `debug-log` with
//! its filters; and the CLI's errors and exit codes. One model of two shell
//! charms serves every check, so the whole file runs in seconds. Times and the
//! model's loopback octet are normalised before comparing.

#![allow(clippy::unwrap_used)]

use expect_test::expect;
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

struct Cli {
    home: PathBuf,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_juju"));
        c.args(args)
            .env("LOCAL_MODEL_HOME", &self.home)
            .env_remove("JUJU_MODEL");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "juju {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.home.join("local/controller.log")).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A command that must fail: its exit code and its stderr.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "juju {args:?} succeeded");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(self.home.join("local/controller.pid")) else {
            return;
        };
        let pid: i32 = pid.trim().parse().unwrap();
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..300 {
            // SAFETY: as above; signal 0 only checks the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// A charm in shell: its metadata and a dispatch script.
fn charm(root: &Path, name: &str, metadata: &str, dispatch: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        format!("name: {name}\nsummary: s\ndescription: d\n{metadata}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("dispatch"),
        format!("#!/bin/sh\nset -e\n{dispatch}"),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("dispatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `db` (two units, ports open, its app bag written by the leader) related to
/// `web` (one unit), settled.
fn model(scratch: &TempDir) -> Cli {
    let db = charm(
        scratch.path(),
        "db",
        "provides:\n  db:\n    interface: pgsql\npeers:\n  cluster:\n    interface: db-peers\n",
        r#"case "$JUJU_DISPATCH_PATH" in
  hooks/start) open-port 5432; open-port 5433; open-port 6432
    juju-log --log-level WARNING "started with care" ;;
  hooks/db-relation-changed|hooks/db-relation-joined)
    if [ "$(is-leader)" = True ]; then relation-set -r "$JUJU_RELATION_ID" --app endpoints=db:5432; fi ;;
esac
status-set active "serving"
"#,
    );
    let web = charm(
        scratch.path(),
        "web",
        "requires:\n  db:\n    interface: pgsql\n",
        r#"case "$JUJU_DISPATCH_PATH" in
  hooks/db-relation-joined) relation-set -r "$JUJU_RELATION_ID" database=shop ;;
esac
status-set waiting "for the database"
"#,
    );
    let cli = Cli {
        home: scratch.path().join("home"),
    };
    cli.ok(&["deploy", db.to_str().unwrap(), "db", "-n", "2"]);
    cli.ok(&["deploy", web.to_str().unwrap(), "web"]);
    cli.ok(&["integrate", "db", "web"]);
    cli.ok(&["wait", "--timeout", "120s"]);
    cli
}

/// The text with the model's loopback octet as `N`, each `since` time and the
/// table's timestamp replaced.
fn normalise(text: &str, status: &Value) -> String {
    let address = status["applications"]["db"]["units"]["db/0"]["address"]
        .as_str()
        .unwrap();
    let octet = address.split('.').nth(1).unwrap();
    let timestamp = status["controller"]["timestamp"].as_str().unwrap();
    let mut out = String::new();
    for line in text.replace(&format!("127.{octet}."), "127.N.").lines() {
        let line = match line.split_once("since: ") {
            Some((head, _)) => format!("{head}since: <since>"),
            None => line.to_string(),
        };
        out.push_str(&line.replace(timestamp, "<time>"));
        out.push('\n');
    }
    out
}

/// The JSON with every `since` and the timestamp replaced.
fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "since" => *v = Value::from("<since>"),
                    "timestamp" => *v = Value::from("<time>"),
                    _ => scrub(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// A status block's `since`, read back as Juju writes it (`24 Feb 2025 12:02:57Z`).
fn assert_since(block: &Value) {
    let since = block["since"].as_str().unwrap();
    let parts: Vec<&str> = since.split(' ').collect();
    assert_eq!(parts.len(), 4, "{since}");
    assert_eq!(parts[0].len(), 2, "{since}");
    assert!(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .contains(&parts[1]),
        "{since}"
    );
    assert!(parts[2].parse::<u32>().unwrap() >= 2024, "{since}");
    assert!(parts[3].ends_with('Z') && parts[3].len() == 9, "{since}");
}

#[test]
fn what_the_cli_prints_reads_like_juju() {
    let scratch = TempDir::with_prefix("lm-cli-output-").unwrap();
    let cli = model(&scratch);

    // JSON: Juju's structure, field by field.
    let status: Value = serde_json::from_str(&cli.ok(&["status", "--format", "json"])).unwrap();
    assert_since(&status["model"]["model-status"]);
    for app in ["db", "web"] {
        assert_since(&status["applications"][app]["application-status"]);
        for unit in status["applications"][app]["units"]
            .as_object()
            .unwrap()
            .values()
        {
            assert_since(&unit["workload-status"]);
            assert_since(&unit["juju-status"]);
        }
    }
    let mut scrubbed = status.clone();
    scrub(&mut scrubbed);
    let mut pretty = serde_json::to_string_pretty(&scrubbed).unwrap();
    pretty.push('\n');
    expect![[r#"
        {
          "applications": {
            "db": {
              "application-status": {
                "current": "active",
                "message": "serving",
                "since": "<since>"
              },
              "base": {
                "channel": "22.04",
                "name": "ubuntu"
              },
              "charm": "local:db-0",
              "charm-name": "db",
              "charm-origin": "local",
              "charm-rev": 0,
              "endpoint-bindings": {
                "": "alpha",
                "cluster": "alpha",
                "db": "alpha"
              },
              "exposed": false,
              "relations": {
                "cluster": [
                  {
                    "interface": "db-peers",
                    "related-application": "db",
                    "scope": "global"
                  }
                ],
                "db": [
                  {
                    "interface": "pgsql",
                    "related-application": "web",
                    "scope": "global"
                  }
                ]
              },
              "scale": 2,
              "units": {
                "db/0": {
                  "address": "127.N.1.1",
                  "juju-status": {
                    "current": "idle",
                    "since": "<since>",
                    "version": "3.6.4"
                  },
                  "leader": true,
                  "open-ports": [
                    "5432/tcp",
                    "5433/tcp",
                    "6432/tcp"
                  ],
                  "provider-id": "db-0",
                  "workload-status": {
                    "current": "active",
                    "message": "serving",
                    "since": "<since>"
                  }
                },
                "db/1": {
                  "address": "127.N.1.2",
                  "juju-status": {
                    "current": "idle",
                    "since": "<since>",
                    "version": "3.6.4"
                  },
                  "open-ports": [
                    "5432/tcp",
                    "5433/tcp",
                    "6432/tcp"
                  ],
                  "provider-id": "db-1",
                  "workload-status": {
                    "current": "active",
                    "message": "serving",
                    "since": "<since>"
                  }
                }
              }
            },
            "web": {
              "application-status": {
                "current": "waiting",
                "message": "for the database",
                "since": "<since>"
              },
              "base": {
                "channel": "22.04",
                "name": "ubuntu"
              },
              "charm": "local:web-0",
              "charm-name": "web",
              "charm-origin": "local",
              "charm-rev": 0,
              "endpoint-bindings": {
                "": "alpha",
                "db": "alpha"
              },
              "exposed": false,
              "relations": {
                "db": [
                  {
                    "interface": "pgsql",
                    "related-application": "db",
                    "scope": "global"
                  }
                ]
              },
              "scale": 1,
              "units": {
                "web/0": {
                  "address": "127.N.1.33",
                  "juju-status": {
                    "current": "idle",
                    "since": "<since>",
                    "version": "3.6.4"
                  },
                  "leader": true,
                  "provider-id": "web-0",
                  "workload-status": {
                    "current": "waiting",
                    "message": "for the database",
                    "since": "<since>"
                  }
                }
              }
            }
          },
          "controller": {
            "timestamp": "<time>"
          },
          "machines": {},
          "model": {
            "cloud": "local",
            "controller": "local",
            "model-status": {
              "current": "available",
              "since": "<since>"
            },
            "name": "local",
            "region": "localhost",
            "sla": "unsupported",
            "type": "caas",
            "version": "3.6.4"
          },
          "storage": {}
        }
    "#]]
    .assert_eq(&normalise(&pretty, &status));

    // YAML: the same, in Juju's order of fields.
    let yaml = cli.ok(&["status", "--format", "yaml"]);
    let head: String = yaml.lines().take(14).collect::<Vec<_>>().join("\n") + "\n";
    expect![[r#"
        model:
          name: local
          type: caas
          controller: local
          cloud: local
          region: localhost
          version: 3.6.4
          model-status:
            current: available
            since: <since>
          sla: unsupported
        machines: {}
        applications:
          db:
    "#]]
    .assert_eq(&normalise(&head, &status));
    let keys: Vec<&str> = yaml
        .lines()
        .skip_while(|l| *l != "applications:")
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(|l| l.trim().split(':').next().unwrap())
        .take(13)
        .collect();
    assert_eq!(
        keys,
        [
            "charm",
            "base",
            "charm-origin",
            "charm-name",
            "charm-rev",
            "scale",
            "exposed",
            "application-status",
            "relations",
            "units",
            "endpoint-bindings",
            "charm",
            "base"
        ],
        "{yaml}"
    );
    assert!(
        yaml.contains("\nstorage: {}\ncontroller:\n  timestamp: "),
        "{yaml}"
    );

    // The table, with the integrations section.
    let table = cli.ok(&["status", "--relations"]);
    let squeezed: String = normalise(&table, &status)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    expect![[r#"
        Model Controller Cloud/Region Version SLA Timestamp
        local local local/localhost 3.6.4 unsupported <time>

        App Version Status Scale Charm Channel Rev Address Exposed Message
        db active 2 db 0 no serving
        web waiting 1 web 0 no for the database

        Unit Workload Agent Address Ports Message
        db/0* active idle 127.N.1.1 5432-5433,6432/tcp serving
        db/1 active idle 127.N.1.2 5432-5433,6432/tcp serving
        web/0* waiting idle 127.N.1.33 for the database

        Integration provider Requirer Interface Type Message
        db:cluster db:cluster db-peers peer
        db:db web:db pgsql regular
    "#]]
    .assert_eq(&squeezed);
    // Columns line up under their headers.
    let units: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("Unit "))
        .take(4)
        .collect();
    for column in ["Workload", "Agent", "Address", "Ports", "Message"] {
        let at = units[0].find(column).unwrap();
        for row in &units[1..] {
            if column != "Ports" {
                assert_ne!(row.as_bytes()[at], b' ', "{column} in {row:?}");
            }
            assert_eq!(row.as_bytes()[at - 1], b' ', "{column} in {row:?}");
        }
    }

    // show-unit: Juju's fields in Juju's order.
    let shown = cli.ok(&["show-unit", "web/0"]);
    expect![[r#"
        web/0:
          opened-ports: []
          charm: local:web-0
          leader: true
          life: alive
          relation-info:
          - relation-id: 2
            endpoint: db
            related-endpoint: db
            application-data:
              endpoints: db:5432
            local-unit:
              in-scope: true
              data:
                database: shop
                egress-subnets: 127.N.1.33/32
                ingress-address: 127.N.1.33
                private-address: 127.N.1.33
            related-units:
              db/0:
                in-scope: true
                data:
                  egress-subnets: 127.N.1.1/32
                  ingress-address: 127.N.1.1
                  private-address: 127.N.1.1
              db/1:
                in-scope: true
                data:
                  egress-subnets: 127.N.1.2/32
                  ingress-address: 127.N.1.2
                  private-address: 127.N.1.2
          provider-id: web-0
          address: 127.N.1.33
    "#]]
    .assert_eq(&normalise(&shown, &status));
    let json: Value =
        serde_json::from_str(&cli.ok(&["show-unit", "db/1", "web/0", "--format", "json"])).unwrap();
    assert_eq!(json["db/1"]["leader"], false);
    assert_eq!(
        json["db/1"]["opened-ports"],
        serde_json::json!(["5432/tcp", "5433/tcp", "6432/tcp"])
    );
    let endpoints: Vec<&str> = json["db/1"]["relation-info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, ["cluster", "db"], "{json}");
    assert_eq!(json["web/0"]["relation-info"][0]["related-endpoint"], "db");
    let only: Value = serde_json::from_str(&cli.ok(&[
        "show-unit",
        "db/0",
        "--endpoint",
        "db",
        "--related-unit",
        "web/0",
        "--format",
        "json",
    ]))
    .unwrap();
    let info = only["db/0"]["relation-info"].as_array().unwrap();
    assert_eq!(info.len(), 1, "{only}");
    assert_eq!(
        info[0]["related-units"]["web/0"]["data"]["database"],
        "shop"
    );
    assert_eq!(info[0]["local-unit"]["data"], serde_json::json!({}));
    let app: Value =
        serde_json::from_str(&cli.ok(&["show-unit", "web/0", "--app", "--format", "json"]))
            .unwrap();
    let rel = &app["web/0"]["relation-info"][0];
    assert_eq!(rel["application-data"]["endpoints"], "db:5432");
    assert!(rel.get("related-units").is_none(), "{app}");

    // debug-log: by unit (three spellings), application, exclusion, level, count.
    let log = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["debug-log", "--replay", "--no-tail"];
        all.extend_from_slice(args);
        cli.ok(&all).lines().map(str::to_string).collect()
    };
    let everything = log(&[]);
    for line in &everything {
        let (tag, rest) = line.split_once(": ").unwrap();
        assert!(tag.starts_with("unit-"), "{line}");
        let fields: Vec<&str> = rest.splitn(4, ' ').collect();
        assert_eq!(fields[0].len(), 8, "{line}");
        assert!(
            ["DEBUG", "INFO", "WARNING", "ERROR"].contains(&fields[1]),
            "{line}"
        );
    }
    assert!(
        everything.iter().any(|l| l.starts_with("unit-db-0: ")
            && l.ends_with(
                " INFO juju.worker.uniter.operation ran \"start\" hook \
                 (via hook dispatching script: dispatch)"
            )),
        "{everything:?}"
    );
    for spelling in ["unit-db-0", "db/0"] {
        let lines = log(&["--include", spelling]);
        assert!(!lines.is_empty());
        assert!(
            lines.iter().all(|l| l.starts_with("unit-db-0: ")),
            "{lines:?}"
        );
    }
    let db = log(&["--include", "db"]);
    assert!(db.iter().any(|l| l.starts_with("unit-db-1: ")));
    assert!(db.iter().all(|l| l.starts_with("unit-db-")), "{db:?}");
    let not_db = log(&["--exclude", "db"]);
    assert!(!not_db.is_empty());
    assert!(
        not_db.iter().all(|l| l.starts_with("unit-web-0: ")),
        "{not_db:?}"
    );
    assert_eq!(db.len() + not_db.len(), everything.len());
    let mut warnings = log(&["--level", "WARNING"]);
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "unit-db-0: <t> WARNING unit.db/0.juju-log started with care",
            "unit-db-1: <t> WARNING unit.db/1.juju-log started with care",
        ]
        .iter()
        .zip(&warnings)
        .map(|(want, got)| want.replace("<t>", &got[11..19]))
        .collect::<Vec<_>>()
    );
    assert_eq!(log(&["-n", "2"]), everything, "--replay shows every line");
    let tail = &everything[everything.len() - 2..];
    let recent = cli.ok(&["debug-log", "--no-tail", "-n", "2"]);
    assert_eq!(recent.lines().collect::<Vec<_>>(), tail);
    let limited = cli.ok(&["debug-log", "--replay", "--limit", "3"]);
    assert_eq!(
        limited.lines().collect::<Vec<_>>(),
        everything[..3]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );

    // Errors as Juju words them, with its exit codes.
    let cases: [(&[&str], i32, &str); 8] = [
        (
            &["status", "--foo"],
            2,
            "ERROR option provided but not defined: --foo\n",
        ),
        (
            &["status", "-z"],
            2,
            "ERROR option provided but not defined: -z\n",
        ),
        (
            &["status", "--format", "toml"],
            2,
            "ERROR invalid value \"toml\" for option --format: unknown format \"toml\"\n",
        ),
        (
            &["config", "nosuch"],
            1,
            "ERROR application \"nosuch\" not found\n",
        ),
        (&["show-unit", "db/9"], 1, "ERROR unit \"db/9\" not found\n"),
        (&["show-unit", "db"], 2, "ERROR unit name db not valid\n"),
        (
            &["debug-log", "--level", "loud"],
            2,
            "ERROR level value \"loud\" is not one of \"TRACE\", \"DEBUG\", \"INFO\", \
             \"WARNING\", \"ERROR\", \"CRITICAL\"\n",
        ),
        (
            &["frobnicate"],
            2,
            "ERROR juju: \"frobnicate\" is not a juju command. See \"juju --help\".\n",
        ),
    ];
    for (args, code, stderr) in cases {
        assert_eq!(cli.fails(args), (code, stderr.to_string()), "juju {args:?}");
    }

    // --watch prints the status again and again until SIGINT, then succeeds.
    let mut watch = cli
        .command(&["status", "--watch", "100ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = watch.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("Model ").count() < 3 {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "--watch ended by itself: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    let status = watch.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen}");
    assert!(seen.contains("db/0*"), "{seen}");
}
