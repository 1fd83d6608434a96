//! `grafana_dashboard`, the provider's side, as the published library
//! (`GrafanaDashboardProvider`) writes it: one application bag key,
//! `dashboards`, holding `{"templates": {"file:<stem>": {...}}, "uuid": ...}`
//! where each template's `content` is the dashboard JSON, given its
//! path-derived `uid` and a `charm: <name>` tag, xz-compressed and
//! base64-encoded.

use crate::{CharmFile, CosError, Topology};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::Shake256;

/// The application bag key.
pub const KEY: &str = "dashboards";

/// The hex digest of SHAKE-256 over `text`, `bytes` long.
fn shake_hex(text: &str, bytes: usize) -> String {
    let mut hasher = Shake256::default();
    hasher.update(text.as_bytes());
    let mut out = vec![0u8; bytes];
    hasher.finalize_xof().read(&mut out);
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// The dashboard as sent: its `uid` the library's 40-hex digest of
/// `<charm>-<path>` (unless it already is 40 hex characters), and the tag
/// `charm: <charm>` added unless a `charm: ` tag is there.
pub fn prepared(charm: &str, file: &CharmFile) -> Result<Value, CosError> {
    let mut dashboard: Value =
        serde_json::from_str(file.text).map_err(|e| CosError::Dashboard {
            file: file.path.to_string(),
            reason: e.to_string(),
        })?;
    let obj = dashboard
        .as_object_mut()
        .ok_or_else(|| CosError::Dashboard {
            file: file.path.to_string(),
            reason: "not a JSON object".into(),
        })?;
    let has_uid = obj
        .get("uid")
        .and_then(Value::as_str)
        .is_some_and(|u| u.len() == 40 && u.bytes().all(|b| b.is_ascii_hexdigit()));
    if !has_uid {
        obj.insert(
            "uid".into(),
            json!(shake_hex(&format!("{charm}-{}", file.path), 20)),
        );
    }
    let tags = obj.entry("tags").or_insert_with(|| json!([]));
    if let Some(tags) = tags.as_array_mut() {
        let tagged = tags
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.starts_with("charm: ")));
        if !tagged {
            tags.push(json!(format!("charm: {charm}")));
        }
    }
    Ok(dashboard)
}

/// xz, then standard base64 with padding.
pub fn encode(dashboard: &Value) -> String {
    let text = dashboard.to_string();
    let mut xz = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = lzma_rs::xz_compress(&mut text.as_bytes(), &mut xz);
    base64::engine::general_purpose::STANDARD.encode(xz)
}

/// The templates for `files`, by id (`file:<stem>`).
pub fn templates(t: &Topology, files: &[CharmFile]) -> Result<Map<String, Value>, CosError> {
    let mut out = Map::new();
    for file in files {
        let id = format!("file:{}", file.stem());
        let content = encode(&prepared(&t.charm_name, file)?);
        out.insert(
            id.clone(),
            json!({
                "charm": t.charm_name,
                "content": content,
                "juju_topology": {
                    "model": t.model,
                    "model_uuid": t.model_uuid,
                    "application": t.application,
                    "unit": t.unit,
                },
                "inject_dropdowns": true,
                "dashboard_alt_uid": shake_hex(&format!("{}-{id}", t.charm_name), 8),
            }),
        );
    }
    Ok(out)
}

/// Whether the bag's current value holds these templates (the leader's unit
/// in `juju_topology` aside, so a new leader does not resend them).
pub fn same_templates(current: Option<&str>, templates: &Map<String, Value>) -> bool {
    let strip = |m: &Map<String, Value>| -> Map<String, Value> {
        m.iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                if let Some(top) = v.get_mut("juju_topology").and_then(Value::as_object_mut) {
                    top.remove("unit");
                }
                (k.clone(), v)
            })
            .collect()
    };
    current
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|v| v.get("templates").and_then(Value::as_object).map(strip))
        .is_some_and(|old| old == strip(templates))
}

/// The bag's value: the templates and a new random uuid, which tells the
/// consumer they changed.
pub fn bag_value(templates: &Map<String, Value>) -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        (bytes[8] & 0x3) | 0x8,
        &hex[17..20],
        &hex[20..32]
    );
    json!({"templates": templates, "uuid": uuid}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: CharmFile = CharmFile {
        path: "src/grafana_dashboards/pgbouncer-metrics.json",
        text: r#"{"title": "PgBouncer", "tags": ["pgbouncer"], "panels": []}"#,
    };

    fn topology() -> Topology {
        Topology {
            model: "prod".into(),
            model_uuid: "3f1c2a9b".into(),
            application: "pgbouncer-k8s".into(),
            unit: "pgbouncer-k8s/0".into(),
            charm_name: "pgbouncer-k8s".into(),
        }
    }

    #[test]
    fn uids_are_the_librarys() {
        let d = prepared("pgbouncer-k8s", &FILE).unwrap();
        assert_eq!(d["uid"], "2edd6e8110bfca03fc5cef1f0af8c3367c68d5d9");
        assert_eq!(d["tags"], json!(["pgbouncer", "charm: pgbouncer-k8s"]));
        let t = templates(&topology(), &[FILE]).unwrap();
        let template = &t["file:pgbouncer-metrics"];
        assert_eq!(template["dashboard_alt_uid"], "c1939a670b4fbf51");
        assert_eq!(template["inject_dropdowns"], true);
        assert_eq!(template["juju_topology"]["unit"], "pgbouncer-k8s/0");
    }

    #[test]
    fn content_is_xz_and_base64() {
        let t = templates(&topology(), &[FILE]).unwrap();
        let content = t["file:pgbouncer-metrics"]["content"].as_str().unwrap();
        let xz = base64::engine::general_purpose::STANDARD
            .decode(content)
            .unwrap();
        assert_eq!(&xz[..6], b"\xfd7zXZ\0");
        let mut json = Vec::new();
        lzma_rs::xz_decompress(&mut xz.as_slice(), &mut json).unwrap();
        let back: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(back["title"], "PgBouncer");
    }

    #[test]
    fn the_same_templates_are_not_resent() {
        let t = templates(&topology(), &[FILE]).unwrap();
        let value = bag_value(&t);
        assert!(same_templates(Some(&value), &t));
        let mut other = topology();
        other.unit = "pgbouncer-k8s/1".into();
        assert!(same_templates(
            Some(&value),
            &templates(&other, &[FILE]).unwrap()
        ));
        assert!(!same_templates(None, &t));
        assert!(!same_templates(Some(&bag_value(&Map::new())), &t));
        let parsed: Value = serde_json::from_str(&value).unwrap();
        assert_eq!(parsed["uuid"].as_str().unwrap().len(), 36);
    }
}
