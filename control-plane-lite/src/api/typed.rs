//! Typed decoding with the standard Kubernetes types (k8s-openapi): catches wrongly typed fields and finds unknown
//! fields for `fieldValidation=Strict|Warn`.
//!
//! Unknown fields are found by decoding into the typed struct, encoding it again, and listing every input field
//! that did not survive the round trip (k8s-openapi drops fields it does not know).

use k8s_openapi::api::discovery::v1 as disc;
use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, coordination::v1 as coord, core::v1 as core};
use serde_json::Value;

/// Decode `obj` as the typed struct of `kind` and re-encode it.
/// Errors carry serde's message, for a 400 "cannot be handled as a <Kind>".
fn roundtrip(kind: &str, obj: &Value) -> Result<Option<Value>, String> {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Option<Value>, String> {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(&t).map(Some).map_err(|e| e.to_string())
    }
    match kind {
        "Namespace" => rt::<core::Namespace>(obj),
        "Node" => rt::<core::Node>(obj),
        "Pod" => rt::<core::Pod>(obj),
        "Service" => rt::<core::Service>(obj),
        "Endpoints" => rt::<core::Endpoints>(obj),
        "ConfigMap" => rt::<core::ConfigMap>(obj),
        "Secret" => rt::<core::Secret>(obj),
        "Event" => rt::<core::Event>(obj),
        "ServiceAccount" => rt::<core::ServiceAccount>(obj),
        "Binding" => rt::<core::Binding>(obj),
        "Deployment" => rt::<apps::Deployment>(obj),
        "ReplicaSet" => rt::<apps::ReplicaSet>(obj),
        "StatefulSet" => rt::<apps::StatefulSet>(obj),
        "DaemonSet" => rt::<apps::DaemonSet>(obj),
        "ControllerRevision" => rt::<apps::ControllerRevision>(obj),
        "Job" => rt::<batch::Job>(obj),
        "EndpointSlice" => rt::<disc::EndpointSlice>(obj),
        "Lease" => rt::<coord::Lease>(obj),
        "Scale" => rt::<k8s_openapi::api::autoscaling::v1::Scale>(obj),
        _ => Ok(None),
    }
}

fn unknown_fields(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    Some(ov) => unknown_fields(v, ov, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) if i.len() == o.len() => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                unknown_fields(iv, ov, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Remove from `input` every field that did not survive the round trip (the same fields [`unknown_fields`] lists).
fn drop_unknown(input: &mut Value, output: &Value) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            i.retain(|k, v| v.is_null() || o.contains_key(k));
            for (k, v) in i.iter_mut() {
                if let Some(ov) = o.get(k) {
                    drop_unknown(v, ov);
                }
            }
        }
        (Value::Array(i), Value::Array(o)) if i.len() == o.len() => {
            for (iv, ov) in i.iter_mut().zip(o) {
                drop_unknown(iv, ov);
            }
        }
        _ => {}
    }
}

/// Check `obj` decodes as `kind`; return the unknown field paths (e.g. `spec.replica`).
/// `Err` holds the decoding message when a field has the wrong type.
pub fn check(kind: &str, obj: &Value) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    if let Some(out) = roundtrip(kind, obj)? {
        unknown_fields(obj, &out, "", &mut unknown);
    }
    Ok(unknown)
}

/// Like [`check`], and drop the unknown fields from `obj`, as decoding into Kubernetes' Go types does when
/// validation is not strict. Everything else of `obj` stays exactly as sent.
pub fn check_and_prune(kind: &str, obj: &mut Value) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    if let Some(out) = roundtrip(kind, obj)? {
        unknown_fields(obj, &out, "", &mut unknown);
        if !unknown.is_empty() {
            drop_unknown(obj, &out);
        }
    }
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_and_type_errors() {
        let d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","labels":{}},
            "spec":{"replica":3,"selector":{"matchLabels":{"a":"b"}},
              "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","imagePullPolice":"x"}]}}}});
        let u = check("Deployment", &d).expect("decodes");
        assert_eq!(
            u,
            vec!["spec.replica", "spec.template.spec.containers[0].imagePullPolice"]
        );
        let bad =
            json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":"three"}});
        assert!(check("Deployment", &bad).is_err());
        let ok =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","annotations":null},"data":{"k":"v"}});
        assert!(check("ConfigMap", &ok).expect("decodes").is_empty());
    }

    #[test]
    fn pruning_drops_only_unknown_fields() {
        let mut d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","annotations":null},
            "spec":{"replica":3,"replicas":2,"selector":{"matchLabels":{"a":"b"}},
              "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","imagePullPolice":"x","resources":{"limits":{"cpu":"500m"}}}]}}}});
        let unknown = check_and_prune("Deployment", &mut d).expect("decodes");
        assert_eq!(unknown.len(), 2);
        assert!(d["spec"].get("replica").is_none());
        assert!(
            d["spec"]["template"]["spec"]["containers"][0]
                .get("imagePullPolice")
                .is_none()
        );
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "500m"
        );
        assert!(
            d["metadata"]["annotations"].is_null(),
            "known fields, null included, stay as sent"
        );
    }
}
