//! Pebble over a [`ContainerState`]: layers merge into a plan, services start and
//! stop, files live in a map, and a container that is not up refuses to connect.

use crate::state::{ContainerState, FileState, ServiceOp};
use pebble_api::{
    CheckInfo, Exec, ExecOutput, FileInfo, FileOptions, Layer, Notice, NoticeQuery, Notify, Pebble,
    PebbleError, PebbleResult, Plan, Service, ServiceInfo, SystemInfo, Workloads,
};
use std::collections::BTreeMap;

fn api(status_code: u16, kind: &str, message: String) -> PebbleError {
    PebbleError::Api {
        status_code,
        kind: kind.into(),
        message,
    }
}

fn not_found(path: &str) -> PebbleError {
    PebbleError::Path {
        path: path.into(),
        message: format!("stat {path}: no such file or directory"),
    }
}

/// Overlays `upper` on `lower` as Pebble's `override: merge` does.
fn merge_service(lower: &mut Service, upper: &Service) {
    let text = |l: &mut String, u: &String| {
        if !u.is_empty() {
            *l = u.clone();
        }
    };
    text(&mut lower.summary, &upper.summary);
    text(&mut lower.command, &upper.command);
    text(&mut lower.startup, &upper.startup);
    text(&mut lower.user, &upper.user);
    text(&mut lower.group, &upper.group);
    text(&mut lower.working_dir, &upper.working_dir);
    text(&mut lower.on_success, &upper.on_success);
    text(&mut lower.on_failure, &upper.on_failure);
    text(&mut lower.backoff_delay, &upper.backoff_delay);
    text(&mut lower.backoff_limit, &upper.backoff_limit);
    text(&mut lower.kill_delay, &upper.kill_delay);
    lower.after.extend(upper.after.iter().cloned());
    lower.before.extend(upper.before.iter().cloned());
    lower.requires.extend(upper.requires.iter().cloned());
    lower.environment.extend(upper.environment.clone());
    if upper.backoff_factor.is_some() {
        lower.backoff_factor = upper.backoff_factor;
    }
}

fn combine(into: &mut Layer, layer: &Layer) {
    for (name, svc) in &layer.services {
        match into.services.get_mut(name) {
            Some(existing) if svc.r#override == "merge" => merge_service(existing, svc),
            _ => {
                into.services.insert(name.clone(), svc.clone());
            }
        }
    }
    for (name, check) in &layer.checks {
        into.checks.insert(name.clone(), check.clone());
    }
    pebble_api::merge_log_targets(&mut into.log_targets, &layer.log_targets);
}

impl ContainerState {
    fn connect(&self) -> PebbleResult<()> {
        if self.can_connect {
            Ok(())
        } else {
            Err(PebbleError::Connect {
                path: "pebble.socket".into(),
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            })
        }
    }

    /// The plan: every layer combined in order.
    pub fn current_plan(&self) -> Plan {
        let mut all = Layer::default();
        for (_, layer) in &self.layers {
            combine(&mut all, layer);
        }
        Plan {
            services: all.services,
            checks: all.checks,
            log_targets: all.log_targets,
        }
    }

    fn service_names(&self, names: &[&str]) -> PebbleResult<Vec<(String, Service)>> {
        let plan = self.current_plan();
        names
            .iter()
            .map(|n| {
                plan.services
                    .get(*n)
                    .map(|s| (n.to_string(), s.clone()))
                    .ok_or_else(|| api(400, "", format!("service {n:?} does not exist")))
            })
            .collect()
    }

    fn file_result(&mut self, path: &str, options: &FileOptions) -> PebbleResult<()> {
        let parent = match path.rsplit_once('/') {
            Some(("", _)) => "/",
            Some((p, _)) => p,
            None => {
                return Err(PebbleError::Path {
                    path: path.into(),
                    message: "paths must be absolute".into(),
                })
            }
        };
        if options.make_parents {
            self.add_parents(path);
        } else if !self.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        Ok(())
    }
}

impl Pebble for ContainerState {
    fn system_info(&mut self) -> PebbleResult<SystemInfo> {
        self.connect()?;
        Ok(SystemInfo {
            version: "1.32.1".into(),
        })
    }

    fn add_layer(&mut self, label: &str, layer: &Layer, combine_layers: bool) -> PebbleResult<()> {
        self.connect()?;
        match self.layers.iter_mut().find(|(l, _)| l == label) {
            Some((_, existing)) if combine_layers => combine(existing, layer),
            Some(_) => return Err(api(400, "", format!("layer {label:?} already exists"))),
            None => self.layers.push((label.to_string(), layer.clone())),
        }
        Ok(())
    }

    fn plan(&mut self) -> PebbleResult<Plan> {
        self.connect()?;
        Ok(self.current_plan())
    }

    fn services(&mut self, names: &[&str]) -> PebbleResult<Vec<ServiceInfo>> {
        self.connect()?;
        let plan = self.current_plan();
        Ok(plan
            .services
            .iter()
            .filter(|(n, _)| names.is_empty() || names.contains(&n.as_str()))
            .map(|(n, s)| ServiceInfo {
                name: n.clone(),
                startup: if s.startup.is_empty() {
                    "disabled".into()
                } else {
                    s.startup.clone()
                },
                current: if self.running.contains_key(n) {
                    "active"
                } else {
                    "inactive"
                }
                .into(),
            })
            .collect())
    }

    fn start(&mut self, names: &[&str]) -> PebbleResult<()> {
        self.connect()?;
        for (n, svc) in self.service_names(names)? {
            if !self.running.contains_key(&n) {
                self.ops.push(ServiceOp::Start(n.clone()));
                self.running.insert(n, svc);
            }
        }
        Ok(())
    }

    fn stop(&mut self, names: &[&str]) -> PebbleResult<()> {
        self.connect()?;
        for (n, _) in self.service_names(names)? {
            if self.running.remove(&n).is_some() {
                self.ops.push(ServiceOp::Stop(n));
            }
        }
        Ok(())
    }

    fn restart(&mut self, names: &[&str]) -> PebbleResult<()> {
        self.connect()?;
        for (n, svc) in self.service_names(names)? {
            let op = if self.running.contains_key(&n) {
                ServiceOp::Restart(n.clone())
            } else {
                ServiceOp::Start(n.clone())
            };
            self.ops.push(op);
            self.running.insert(n, svc);
        }
        Ok(())
    }

    fn replan(&mut self) -> PebbleResult<()> {
        self.connect()?;
        let plan = self.current_plan();
        for (n, svc) in plan.services {
            match self.running.get(&n) {
                Some(old) if *old != svc => {
                    self.ops.push(ServiceOp::Restart(n.clone()));
                    self.running.insert(n, svc);
                }
                None if svc.startup == "enabled" => {
                    self.ops.push(ServiceOp::Start(n.clone()));
                    self.running.insert(n, svc);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn push(&mut self, path: &str, content: &[u8], options: &FileOptions) -> PebbleResult<()> {
        self.connect()?;
        self.file_result(path, options)?;
        if self.dirs.contains(path) {
            return Err(PebbleError::Path {
                path: path.into(),
                message: "is a directory".into(),
            });
        }
        self.files.insert(
            path.to_string(),
            FileState {
                content: content.to_vec(),
                permissions: options.permissions.unwrap_or(0o644),
                user: options.user.clone(),
                group: options.group.clone(),
            },
        );
        Ok(())
    }

    fn pull(&mut self, path: &str) -> PebbleResult<Vec<u8>> {
        self.connect()?;
        self.files
            .get(path)
            .map(|f| f.content.clone())
            .ok_or_else(|| not_found(path))
    }

    fn list_files(&mut self, path: &str, pattern: Option<&str>) -> PebbleResult<Vec<FileInfo>> {
        self.connect()?;
        if let Some(f) = self.files.get(path) {
            return Ok(vec![file_info(path, "file", Some(f))]);
        }
        if !self.dirs.contains(path) {
            return Err(not_found(path));
        }
        let prefix = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let direct = |p: &String| {
            p.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
        };
        let matches =
            |p: &str| pattern.is_none_or(|pat| glob(pat, p.rsplit('/').next().unwrap_or(p)));
        let mut out: Vec<FileInfo> = self
            .dirs
            .iter()
            .filter(|d| direct(d) && matches(d))
            .map(|d| file_info(d, "directory", None))
            .collect();
        out.extend(
            self.files
                .iter()
                .filter(|(p, _)| direct(p) && matches(p))
                .map(|(p, f)| file_info(p, "file", Some(f))),
        );
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn make_dir(&mut self, path: &str, options: &FileOptions) -> PebbleResult<()> {
        self.connect()?;
        if self.files.contains_key(path) {
            return Err(PebbleError::Path {
                path: path.into(),
                message: "file exists".into(),
            });
        }
        self.file_result(path, options)?;
        self.dirs.insert(path.to_string());
        Ok(())
    }

    fn remove_path(&mut self, path: &str, recursive: bool) -> PebbleResult<()> {
        self.connect()?;
        if self.files.remove(path).is_some() {
            return Ok(());
        }
        if !self.dirs.contains(path) {
            return Err(not_found(path));
        }
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let has_children = self.files.keys().any(|p| p.starts_with(&prefix))
            || self.dirs.iter().any(|d| d.starts_with(&prefix));
        if has_children && !recursive {
            return Err(PebbleError::Path {
                path: path.into(),
                message: "directory not empty".into(),
            });
        }
        self.files.retain(|p, _| !p.starts_with(&prefix));
        self.dirs.retain(|d| !d.starts_with(&prefix) && d != path);
        Ok(())
    }

    fn send_signal(&mut self, signal: &str, services: &[&str]) -> PebbleResult<()> {
        self.connect()?;
        for s in services {
            if !self.running.contains_key(*s) {
                return Err(api(
                    500,
                    "",
                    format!("cannot send signal to {s:?}: service is not running"),
                ));
            }
        }
        for s in services {
            self.ops
                .push(ServiceOp::Signal(signal.to_string(), s.to_string()));
        }
        Ok(())
    }

    fn checks(&mut self, level: Option<&str>, names: &[&str]) -> PebbleResult<Vec<CheckInfo>> {
        self.connect()?;
        Ok(self
            .checks
            .iter()
            .filter(|c| level.is_none_or(|l| c.level == l))
            .filter(|c| names.is_empty() || names.contains(&c.name.as_str()))
            .cloned()
            .collect())
    }

    fn notices(&mut self, query: &NoticeQuery) -> PebbleResult<Vec<Notice>> {
        self.connect()?;
        let mut found: Vec<Notice> = self
            .notices
            .iter()
            .filter(|n| query.types.is_empty() || query.types.contains(&n.kind))
            .filter(|n| query.keys.is_empty() || query.keys.contains(&n.key))
            .filter(|n| query.after.as_ref().is_none_or(|a| n.last_repeated > *a))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.last_repeated.cmp(&b.last_repeated));
        Ok(found)
    }

    fn notice(&mut self, id: &str) -> PebbleResult<Notice> {
        self.connect()?;
        self.notices
            .iter()
            .find(|n| n.id == id)
            .cloned()
            .ok_or_else(|| api(404, "", format!("cannot find notice with ID {id:?}")))
    }

    fn notify(&mut self, notify: &Notify) -> PebbleResult<String> {
        self.connect()?;
        Ok(self.record_notice(notify))
    }

    /// Answers from [`ContainerState::execs`]: the longest prefix wins, and
    /// several answers for the same prefix are given in turn, the last one
    /// repeating. A command no prefix matches cannot be found, as Pebble
    /// says of a missing program.
    fn exec(&mut self, exec: &Exec) -> PebbleResult<ExecOutput> {
        self.connect()?;
        self.executed.push(exec.clone());
        let command = &exec.command;
        let longest = self
            .execs
            .iter()
            .filter(|(prefix, _)| command.starts_with(prefix))
            .map(|(prefix, _)| prefix.len())
            .max();
        let answers =
            |prefix: &Vec<String>| Some(prefix.len()) == longest && command.starts_with(prefix);
        let Some(turn) = self.execs.iter().position(|(p, _)| answers(p)) else {
            let program = command.first().map_or("", String::as_str);
            return Err(api(400, "", format!("cannot find executable {program:?}")));
        };
        let more = self.execs[turn + 1..].iter().any(|(p, _)| answers(p));
        Ok(match more {
            true => self.execs.remove(turn).1,
            false => self.execs[turn].1.clone(),
        })
    }
}

fn file_info(path: &str, kind: &str, file: Option<&FileState>) -> FileInfo {
    FileInfo {
        path: path.to_string(),
        name: path.rsplit('/').next().unwrap_or(path).to_string(),
        kind: kind.into(),
        size: file.map(|f| f.content.len() as u64),
        permissions: format!("{:o}", file.map_or(0o755, |f| f.permissions)),
        user: file.and_then(|f| f.user.clone()),
        group: file.and_then(|f| f.group.clone()),
    }
}

/// Shell-style matching with `*` and `?`.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// The containers of a state during one hook. A container the state does not
/// declare never connects.
pub struct MemoryWorkloads {
    /// Each container by name.
    pub containers: BTreeMap<String, ContainerState>,
}

impl Workloads for MemoryWorkloads {
    fn pebble(&mut self, container: &str) -> &mut dyn Pebble {
        self.containers
            .entry(container.to_string())
            .or_insert_with(ContainerState::unreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob("*.ini", "pgbouncer.ini"));
        assert!(glob("instance_?", "instance_0"));
        assert!(!glob("*.ini", "userlist.txt"));
    }

    #[test]
    fn merge_layers_overlay_and_replace() {
        let mut c = ContainerState::ready();
        let mut base = Layer::default();
        base.services.insert(
            "svc".into(),
            Service {
                command: "a".into(),
                startup: "enabled".into(),
                ..Service::default()
            },
        );
        c.add_layer("base", &base, false).unwrap();
        assert!(c.add_layer("base", &base, false).is_err());
        let mut over = Layer::default();
        over.services.insert(
            "svc".into(),
            Service {
                r#override: "merge".into(),
                command: "b".into(),
                ..Service::default()
            },
        );
        c.add_layer("over", &over, false).unwrap();
        let plan = c.plan().unwrap();
        assert_eq!(plan.services["svc"].command, "b");
        assert_eq!(plan.services["svc"].startup, "enabled");
        c.replan().unwrap();
        assert!(c.is_running("svc"));
        c.replan().unwrap();
        assert_eq!(c.ops, vec![ServiceOp::Start("svc".into())]);
    }

    #[test]
    fn files_need_parents_unless_asked_to_make_them() {
        let mut c = ContainerState::ready();
        let opts = FileOptions::default();
        assert!(matches!(
            c.push("/etc/app/x.ini", b"x", &opts),
            Err(PebbleError::Path { .. })
        ));
        let make = FileOptions {
            make_parents: true,
            permissions: Some(0o400),
            ..FileOptions::default()
        };
        c.push("/etc/app/x.ini", b"x", &make).unwrap();
        assert_eq!(c.pull("/etc/app/x.ini").unwrap(), b"x");
        let listed = c.list_files("/etc/app", Some("*.ini")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].permissions, "400");
        assert!(c.remove_path("/etc", false).is_err());
        c.remove_path("/etc", true).unwrap();
        assert!(c.pull("/etc/app/x.ini").is_err());
    }

    #[test]
    fn notices_count_occurrences_and_filter() {
        let mut c = ContainerState::ready()
            .with_notice("example.com/a", &[])
            .with_notice("example.com/b", &[("x", "1")]);
        let a = c.notify(&Notify {
            key: "example.com/a".into(),
            ..Notify::default()
        });
        assert_eq!(a.unwrap(), "1");
        let all = c.notices(&NoticeQuery::default()).unwrap();
        let order: Vec<&str> = all.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(order, ["example.com/b", "example.com/a"]);
        assert_eq!(all[1].occurrences, 2);
        let after = NoticeQuery {
            after: Some(all[0].last_repeated.clone()),
            ..NoticeQuery::default()
        };
        assert_eq!(c.notices(&after).unwrap(), vec![all[1].clone()]);
        let held = Notify {
            key: "example.com/b".into(),
            repeat_after: Some("1h".into()),
            ..Notify::default()
        };
        c.notify(&held).unwrap();
        let b = c.notice("2").unwrap();
        assert_eq!(
            (b.occurrences, &b.last_repeated),
            (2, &all[0].last_repeated)
        );
        assert!(b.last_data.is_empty());
        assert!(matches!(
            c.notice("9"),
            Err(PebbleError::Api {
                status_code: 404,
                ..
            })
        ));
    }

    #[test]
    fn unreachable_containers_refuse_everything() {
        let mut c = ContainerState::unreachable();
        assert!(matches!(c.system_info(), Err(PebbleError::Connect { .. })));
        assert!(matches!(c.pull("/x"), Err(PebbleError::Connect { .. })));
    }

    #[test]
    fn signals_need_a_running_service() {
        let mut c = ContainerState::ready();
        let mut l = Layer::default();
        l.services.insert("svc".into(), Service::default());
        c.add_layer("l", &l, false).unwrap();
        assert!(c.send_signal("SIGHUP", &["svc"]).is_err());
        c.start(&["svc"]).unwrap();
        c.send_signal("SIGHUP", &["svc"]).unwrap();
        assert_eq!(
            c.ops.last(),
            Some(&ServiceOp::Signal("SIGHUP".into(), "svc".into()))
        );
    }

    #[test]
    fn exec_answers_by_the_longest_prefix_and_records_the_command() {
        let ok = |text: &str| ExecOutput {
            exit_code: 0,
            stdout: text.as_bytes().to_vec(),
            stderr: Vec::new(),
        };
        let mut c = ContainerState::ready()
            .with_exec(&["pgbackrest"], ok("any"))
            .with_exec(&["pgbackrest", "--config=/c", "info"], ok("info"));
        let info = c
            .exec(&Exec::new(&[
                "pgbackrest",
                "--config=/c",
                "info",
                "--output=json",
            ]))
            .unwrap();
        assert_eq!(info.stdout_text(), "info");
        let other = c.exec(&Exec::new(&["pgbackrest", "check"])).unwrap();
        assert_eq!(other.stdout_text(), "any");
        let mut turns = ContainerState::ready()
            .with_exec(&["date"], ok("first"))
            .with_exec(&["date"], ok("then"));
        let said: Vec<String> = (0..3)
            .map(|_| turns.exec(&Exec::new(&["date"])).unwrap().stdout_text())
            .collect();
        assert_eq!(
            said,
            ["first", "then", "then"],
            "in turn, the last repeating"
        );
        assert_eq!(c.executed.len(), 2);
        assert_eq!(c.executed[1].command, ["pgbackrest", "check"]);
        match c.exec(&Exec::new(&["psql"])) {
            Err(PebbleError::Api {
                status_code,
                message,
                ..
            }) => {
                assert_eq!(status_code, 400);
                assert_eq!(message, "cannot find executable \"psql\"");
            }
            other => panic!("{other:?}"),
        }
        let mut down = ContainerState::unreachable();
        assert!(matches!(
            down.exec(&Exec::new(&["true"])),
            Err(PebbleError::Connect { .. })
        ));
    }
}
