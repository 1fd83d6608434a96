//! `patroni.yml`: one unit's Patroni configuration (as the reference charm lays
//! it out), with the unit's own address for PostgreSQL and the REST API, and
//! the DCS the model offers.

use super::{API_PORT, DB_PORT};
use crate::config::Synchronous;
use crate::dcs::Dcs;
use crate::state::{self, Passwords};
use crate::workload::Layout;
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// Everything one unit's configuration depends on.
pub struct PatroniInput<'a> {
    /// The cluster's Patroni scope (`state::cluster_name`).
    pub scope: &'a str,
    /// This unit's member name.
    pub member: &'a str,
    /// This unit's address: PostgreSQL and the API listen there only.
    pub address: &'a str,
    /// The cluster members' addresses (replication is allowed from them).
    pub members: &'a [String],
    pub dcs: &'a Dcs,
    pub passwords: &'a Passwords,
    /// PostgreSQL parameters from the options.
    pub parameters: &'a Map<String, Value>,
    /// The synchronous settings a new cluster starts with (never strict).
    pub synchronous: Synchronous,
    pub maximum_lag_on_failover: u64,
    /// Whether PostgreSQL and the API serve TLS (the files are in the layout).
    pub tls: bool,
    pub layout: &'a Layout,
}

/// A pg_hba address: `/32` (or `/128`) for an IP, the name as is otherwise.
fn hba_address(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => format!("{address}/32"),
        Ok(IpAddr::V6(_)) => format!("{address}/128"),
        Err(_) => address.to_string(),
    }
}

/// The pg_hba rules: password logins for every user over TCP and the local
/// socket, replication only from the cluster's members. TCP rules are `host`,
/// with TLS on too: TLS is offered to every client, which chooses to verify
/// it (`sslmode`), and the charms' own sessions, which do not use TLS, keep
/// working.
pub fn pg_hba(address: &str, members: &[String]) -> Vec<String> {
    let host = "host";
    let mut lines = vec![
        "local all all scram-sha-256".to_string(),
        format!("{host} all all 0.0.0.0/0 scram-sha-256"),
        format!(
            "{host} replication {} 127.0.0.1/32 scram-sha-256",
            state::REPLICATION
        ),
    ];
    let mut sources: Vec<&str> = members.iter().map(String::as_str).collect();
    sources.push(address);
    sources.sort();
    sources.dedup();
    for source in sources {
        lines.push(format!(
            "{host} replication {} {} scram-sha-256",
            state::REPLICATION,
            hba_address(source)
        ));
    }
    lines
}

/// The DCS section: `(key, value)`.
fn dcs_section(input: &PatroniInput<'_>) -> (&'static str, Value) {
    match input.dcs {
        Dcs::Etcd { protocol, hosts } => ("etcd3", json!({"hosts": hosts, "protocol": protocol})),
        Dcs::Kubernetes { namespace } => (
            "kubernetes",
            json!({
                "namespace": namespace,
                "labels": {"application": "patroni", "cluster-name": input.scope},
                "leader_label_value": "primary",
                "use_endpoints": true,
                "bypass_api_service": true,
                "pod_ip": input.address,
            }),
        ),
    }
}

/// Renders `patroni.yml`, written as JSON (which is YAML): Patroni reads it
/// with PyYAML, for which a bare `on`, `off`, `yes` or `no` is a boolean, and
/// JSON quotes every string, so `archive_mode: "on"` stays the string `on`.
pub fn render(input: &PatroniInput<'_>) -> String {
    let layout = input.layout;
    let (address, pw) = (input.address, input.passwords);
    let mut parameters = json!({
        "archive_mode": "on",
        "archive_command": crate::pgbackrest::NO_ARCHIVE,
        "wal_level": "logical",
        "password_encryption": "scram-sha-256",
        "log_destination": "stderr",
        "unix_socket_directories": layout.socket_dir,
    });
    let object = parameters.as_object_mut().expect("an object");
    object.extend(input.parameters.clone());
    if input.tls {
        object.insert("ssl".into(), json!("on"));
        object.insert("ssl_cert_file".into(), json!(layout.tls_cert()));
        object.insert("ssl_key_file".into(), json!(layout.tls_key()));
        object.insert("ssl_ca_file".into(), json!(layout.tls_ca()));
    }
    let mut restapi = json!({
        "listen": format!("{address}:{API_PORT}"),
        "connect_address": format!("{address}:{API_PORT}"),
        "authentication": {"username": state::PATRONI, "password": pw.get(state::PATRONI)},
    });
    if input.tls {
        let r = restapi.as_object_mut().expect("an object");
        r.insert("certfile".into(), json!(layout.tls_cert()));
        r.insert("keyfile".into(), json!(layout.tls_key()));
        r.insert("cafile".into(), json!(layout.tls_ca()));
    }
    let (dcs_key, dcs) = dcs_section(input);
    let mut doc = json!({
        "scope": input.scope,
        "name": input.member,
        "restapi": restapi,
        "bootstrap": {
            "dcs": {
                "failsafe_mode": true,
                "synchronous_mode": input.synchronous.mode,
                "synchronous_mode_strict": false,
                "synchronous_node_count": input.synchronous.node_count,
                "maximum_lag_on_failover": input.maximum_lag_on_failover,
                "max_timelines_history": 50,
                "postgresql": {
                    "use_pg_rewind": true,
                    "remove_data_directory_on_rewind_failure": false,
                    "remove_data_directory_on_diverged_timelines": false,
                    "parameters": parameters.clone(),
                },
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums", {"auth-host": "scram-sha-256"}, {"auth-local": "trust"}],
        },
        "postgresql": {
            "listen": format!("{address}:{DB_PORT}"),
            "connect_address": format!("{address}:{DB_PORT}"),
            "data_dir": layout.data_dir,
            "bin_dir": layout.bin_dir,
            "pgpass": layout.pgpass(),
            "use_unix_socket": true,
            "authentication": {
                "superuser": {"username": state::OPERATOR, "password": pw.get(state::OPERATOR)},
                "replication": {"username": state::REPLICATION, "password": pw.get(state::REPLICATION)},
                "rewind": {"username": state::REWIND, "password": pw.get(state::REWIND)},
            },
            "parameters": parameters,
            "pg_hba": pg_hba(address, input.members),
            // A new replica copies the primary with pg_basebackup, which first
            // waits for a checkpoint: a fast one, or a busy primary (databases
            // just created) keeps the replica waiting for minutes.
            "basebackup": [{"checkpoint": "fast"}],
            "callbacks": {
                "on_start": layout.notify_script(),
                "on_role_change": layout.notify_script(),
            },
        },
    });
    doc.as_object_mut()
        .expect("an object")
        .insert(dcs_key.into(), dcs);
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value renders");
    text.push('\n');
    text
}

/// The `scope` of a rendered `patroni.yml`.
pub fn scope_of(config: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(config).ok()?;
    doc["scope"].as_str().map(str::to_string)
}

/// The PostgreSQL parameters of a rendered `patroni.yml`.
pub fn parameters_of(config: &str) -> Option<Map<String, Value>> {
    let doc: Value = serde_json::from_str(config).ok()?;
    doc["postgresql"]["parameters"].as_object().cloned()
}

/// The etcd a rendered `patroni.yml` names, if it names one.
pub fn etcd_of(config: &str) -> Option<Dcs> {
    let doc: Value = serde_json::from_str(config).ok()?;
    let etcd = doc.get("etcd3")?;
    let hosts = etcd["hosts"]
        .as_array()?
        .iter()
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    let protocol = etcd["protocol"].as_str().unwrap_or("http").to_string();
    Some(Dcs::Etcd { protocol, hosts })
}

/// The cluster-wide settings the leader sends with `PATCH /config` once its
/// member runs, and on a departure.
pub fn dynamic_config(
    parameters: &Map<String, Value>,
    synchronous: Synchronous,
    maximum_lag_on_failover: u64,
) -> Value {
    json!({
        "synchronous_mode": synchronous.mode,
        "synchronous_node_count": synchronous.node_count,
        "synchronous_mode_strict": synchronous.strict,
        "maximum_lag_on_failover": maximum_lag_on_failover,
        "postgresql": {
            "remove_data_directory_on_rewind_failure": false,
            "remove_data_directory_on_diverged_timelines": false,
            "parameters": parameters,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use charm::SecretContent;

    #[test]
    fn replication_is_allowed_from_members_only() {
        let lines = pg_hba("127.0.1.2", &["127.0.1.1".into(), "127.0.1.2".into()]);
        assert_eq!(
            lines,
            [
                "local all all scram-sha-256",
                "host all all 0.0.0.0/0 scram-sha-256",
                "host replication replication 127.0.0.1/32 scram-sha-256",
                "host replication replication 127.0.1.1/32 scram-sha-256",
                "host replication replication 127.0.1.2/32 scram-sha-256",
            ]
        );
        let named = pg_hba("pg-0.pg-endpoints", &[]);
        assert_eq!(
            named[3],
            "host replication replication pg-0.pg-endpoints scram-sha-256"
        );
    }

    #[test]
    fn the_file_binds_to_the_unit_address_and_names_the_dcs() {
        let content = state::SECRET_USERS
            .iter()
            .fold(SecretContent::new(), |c, u| {
                c.with(state::password_key(u), format!("{u}-pw"))
            });
        let passwords = Passwords::from(content);
        let layout = Layout::default();
        let params = Map::new();
        let dcs = Dcs::Etcd {
            protocol: "http".into(),
            hosts: vec!["127.0.2.1:2379".into()],
        };
        let text = render(&PatroniInput {
            scope: "patroni-pg",
            member: "pg-1",
            address: "127.0.1.2",
            members: &["127.0.1.1".into()],
            dcs: &dcs,
            passwords: &passwords,
            parameters: &params,
            synchronous: Synchronous {
                mode: true,
                node_count: 2,
                strict: true,
            },
            maximum_lag_on_failover: 1_048_576,
            tls: false,
            layout: &layout,
        });
        let doc: Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(doc["scope"], "patroni-pg");
        assert_eq!(scope_of(&text).as_deref(), Some("patroni-pg"));
        assert_eq!(etcd_of(&text), Some(dcs.clone()));
        assert_eq!(doc["name"], "pg-1");
        assert_eq!(doc["restapi"]["listen"], "127.0.1.2:8008");
        assert_eq!(doc["restapi"]["authentication"]["password"], "patroni-pw");
        assert_eq!(doc["postgresql"]["listen"], "127.0.1.2:5432");
        assert_eq!(
            doc["postgresql"]["authentication"]["superuser"]["username"],
            "operator"
        );
        assert_eq!(doc["etcd3"]["hosts"][0], "127.0.2.1:2379");
        assert!(doc.get("kubernetes").is_none());
        assert_eq!(doc["bootstrap"]["dcs"]["synchronous_mode"], true);
        assert_eq!(doc["bootstrap"]["dcs"]["synchronous_node_count"], 2);
        // A new cluster never starts strict: its first member is alone.
        assert_eq!(doc["bootstrap"]["dcs"]["synchronous_mode_strict"], false);
        assert_eq!(doc["postgresql"]["bin_dir"], "/usr/lib/postgresql/15/bin");
        let script = "/var/lib/postgresql/data/notify-role-change";
        assert_eq!(doc["postgresql"]["callbacks"]["on_role_change"], script);
        assert_eq!(doc["postgresql"]["callbacks"]["on_start"], script);
        assert_eq!(
            doc["postgresql"]["basebackup"],
            serde_json::json!([{"checkpoint": "fast"}])
        );
    }
}
