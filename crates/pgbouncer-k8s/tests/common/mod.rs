//! The rendering cases shared by the snapshot tests and the real-PgBouncer tests.

#![allow(clippy::unwrap_used)]

use client_interface::Endpoint;
use pgbouncer_k8s::config::CharmConfig;
use pgbouncer_k8s::pgb::ini::{BackendTarget, ClientDatabase, SharedConfig, SharedInput};
use pgbouncer_k8s::pgb::peering::{Peering, RemoteUnit};
use pgbouncer_k8s::pgb::{Layout, PgbVersion};

pub const NEW: PgbVersion = PgbVersion::new(1, 24, 0);
pub const OLD: PgbVersion = PgbVersion::new(1, 18, 0);

/// One rendering case.
pub struct Case {
    pub name: &'static str,
    pub version: PgbVersion,
    pub processes: u32,
    pub units: u32,
    pub tls: bool,
    pub backend: bool,
    pub clients: Vec<ClientDatabase>,
    /// The backend's other databases (`readonly_dbs`).
    pub readonly_dbs: Vec<String>,
    pub config: serde_json::Value,
}

fn client(id: u64, name: &str, privileged: bool) -> ClientDatabase {
    ClientDatabase {
        relation_id: id,
        name: name.into(),
        privileged,
    }
}

impl Case {
    pub fn shared(&self, layout: &Layout) -> SharedConfig {
        let config = CharmConfig::from_raw(self.config.as_object().unwrap()).unwrap();
        let backend = BackendTarget {
            primary: Endpoint::parse("127.0.0.1:5432").unwrap(),
            read_only: Endpoint::parse_list("127.0.0.3:5432,127.0.0.2:5432").unwrap(),
            auth_user: "pgbouncer_auth_relation_id_3".into(),
            verify_tls: false,
        };
        SharedConfig::build(&SharedInput {
            config: &config,
            app: "pgbouncer-k8s",
            backend: self.backend.then_some(&backend),
            clients: &self.clients,
            readonly_dbs: &self.readonly_dbs,
            total_processes: self.processes * self.units,
            layout,
        })
    }

    /// The rendered unit's place among the peers: unit 1 when there are
    /// several units, each other unit on an address of its own.
    pub fn peering(&self) -> Peering {
        if self.units == 1 {
            return Peering::default();
        }
        Peering {
            unit: 1,
            remote: (0..self.units)
                .filter(|u| *u != 1)
                .map(|unit| RemoteUnit {
                    unit,
                    host: format!("10.1.0.{unit}"),
                    processes: self.processes,
                })
                .collect(),
        }
    }
}

/// The cases the issue asks for, on both versions where it matters.
pub fn cases() -> Vec<Case> {
    let base = |name, version| Case {
        name,
        version,
        processes: 2,
        units: 1,
        tls: false,
        backend: true,
        clients: vec![],
        readonly_dbs: vec![],
        config: serde_json::json!({}),
    };
    vec![
        Case {
            backend: false,
            ..base("no-backend", NEW)
        },
        base("no-databases", NEW),
        Case {
            clients: vec![client(4, "application_first_database", false)],
            ..base("one-database", NEW)
        },
        Case {
            clients: vec![client(4, "application_first_database", false)],
            ..base("one-database-1.18", OLD)
        },
        Case {
            clients: vec![
                client(4, "app_db", false),
                client(9, "admin_db", true),
                client(7, "other_db", true),
            ],
            readonly_dbs: vec!["reports".into(), "legacy".into()],
            ..base("wildcard", NEW)
        },
        Case {
            clients: vec![client(4, "app_db", false), client(9, "admin_db", true)],
            readonly_dbs: vec!["reports".into()],
            ..base("wildcard-1.18", OLD)
        },
        Case {
            processes: 4,
            units: 3,
            clients: vec![client(4, "app_db", false), client(5, "app_db", false)],
            config: serde_json::json!({"max_db_connections": 100, "pool_mode": "transaction", "listen_port": 7432}),
            ..base("three-units-four-processes", NEW)
        },
        Case {
            tls: true,
            clients: vec![client(4, "app_db", false)],
            ..base("tls", NEW)
        },
        Case {
            tls: true,
            clients: vec![client(4, "app_db", false)],
            ..base("tls-1.18", OLD)
        },
    ]
}
