//! Helpers on wire objects (`serde_json::Value`): metadata access, storage keys, (de)serialisation to store bytes.

use api_core::registry::ResourceDef;
use serde_json::{Map, Value, json};

use super::error::{ApiError, Result};
use crate::store::KeyValue;

/// The etcd key prefix Kubernetes uses for a resource (`/registry/<resource>/`).
pub fn storage_prefix(res: &ResourceDef) -> String {
    let resource = match res.plural {
        "services" => "services/specs",
        "endpoints" => "services/endpoints",
        "nodes" => "minions",
        other => other,
    };
    format!("/registry/{resource}/")
}

/// The key of one object.
pub fn key(res: &ResourceDef, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|_| res.namespaced) {
        Some(ns) => format!("{}{ns}/{name}", storage_prefix(res)),
        None => format!("{}{name}", storage_prefix(res)),
    }
}

/// The prefix of a collection (one namespace, or all).
pub fn collection_prefix(res: &ResourceDef, namespace: Option<&str>) -> String {
    match namespace.filter(|_| res.namespaced) {
        Some(ns) => format!("{}{ns}/", storage_prefix(res)),
        None => storage_prefix(res),
    }
}

/// Decode stored bytes, setting `metadata.resourceVersion` from the revision.
pub fn from_kv(kv: &KeyValue) -> Result<Value> {
    from_bytes(&kv.value, kv.mod_revision)
}

/// Decode stored bytes with an explicit resourceVersion.
pub fn from_bytes(bytes: &[u8], revision: i64) -> Result<Value> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not valid JSON: {e}")))?;
    set_meta(&mut v, "resourceVersion", json!(revision.to_string()));
    Ok(v)
}

/// Append stored object bytes to `out` with `metadata.resourceVersion` set, without parsing: objects are stored
/// by [`to_bytes`] with `metadata` as an object right after `apiVersion` and `kind`, so its opening brace is the
/// first `"metadata":{`. Falls back to parse-and-encode when the bytes do not look like that.
pub fn write_with_revision(out: &mut Vec<u8>, bytes: &[u8], revision: i64) {
    const KEY: &[u8] = b"\"metadata\":{";
    let pos = bytes.windows(KEY.len()).position(|w| w == KEY);
    match pos {
        Some(p) if bytes[..p].iter().filter(|b| **b == b'{').count() == 1 => {
            let split = p + KEY.len();
            out.extend_from_slice(&bytes[..split]);
            out.extend_from_slice(format!("\"resourceVersion\":\"{revision}\"").as_bytes());
            if bytes.get(split) != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(&bytes[split..]);
        }
        _ => match from_bytes(bytes, revision) {
            Ok(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Err(_) => out.extend_from_slice(b"{}"),
        },
    }
}

/// Encode for the store: everything but `metadata.resourceVersion`.
pub fn to_bytes(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&o).unwrap_or_default()
}

/// `metadata` as a mutable map, created when missing or not an object (the root too).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Value::Object(root) = obj else {
        unreachable!("made an object just above")
    };
    let m = root.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    let Value::Object(m) = m else {
        unreachable!("made an object just above")
    };
    m
}

/// Set a `metadata` field.
pub fn set_meta(obj: &mut Value, field: &str, v: Value) {
    meta_mut(obj).insert(field.to_string(), v);
}

/// Remove a `metadata` field.
pub fn remove_meta(obj: &mut Value, field: &str) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove(field);
    }
}

/// A string `metadata` field.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.labels` (empty when absent).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The resourceVersion as a store revision.
pub fn revision(obj: &Value) -> Option<i64> {
    meta_str(obj, "resourceVersion").and_then(|s| s.parse().ok())
}

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    format_time(jiff::Timestamp::now())
}

/// Format a timestamp as Kubernetes does.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Everything except metadata and status: what bumps `metadata.generation` when it changes.
pub fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_core::registry;

    #[test]
    fn keys_follow_kubernetes_layout() {
        let svc = registry::by_kind("v1", "Service").expect("svc");
        assert_eq!(key(svc, Some("default"), "web"), "/registry/services/specs/default/web");
        let node = registry::by_kind("v1", "Node").expect("node");
        assert_eq!(key(node, Some("ignored"), "n1"), "/registry/minions/n1");
        let dep = registry::by_kind("apps/v1", "Deployment").expect("dep");
        assert_eq!(collection_prefix(dep, None), "/registry/deployments/");
    }

    #[test]
    fn spliced_revision_matches_parsed() {
        for o in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"x": "{"}}, "spec": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"kind": "Pod", "spec": {"metadata": {"name": "inner"}}, "metadata": {"name": "b"}}),
        ] {
            let b = to_bytes(&o);
            let mut out = Vec::new();
            write_with_revision(&mut out, &b, 9);
            let spliced: Value = serde_json::from_slice(&out).expect("valid json");
            assert_eq!(spliced, from_bytes(&b, 9).expect("decode"));
        }
    }

    #[test]
    fn resource_version_is_not_stored() {
        let o = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let b = to_bytes(&o);
        let back = from_bytes(&b, 7).expect("decode");
        assert_eq!(back["metadata"]["resourceVersion"], "7");
        assert!(!String::from_utf8_lossy(&b).contains("resourceVersion"));
    }
}
