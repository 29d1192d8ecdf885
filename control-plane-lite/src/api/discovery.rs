//! Discovery documents (`/api`, `/apis`, resource lists) and the OpenAPI v3 documents kubectl reads to learn that
//! the server validates fields itself (`fieldValidation`), all built from the resource registry.

use api_core::registry::{self, ResourceDef};
use serde_json::{Value, json};

/// The Kubernetes version Keel's API answers as (the k8s-openapi types it serves).
pub const KUBE_VERSION: (&str, &str) = ("1", "33");

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_VERSION.0,
        "minor": KUBE_VERSION.1,
        "gitVersion": format!("v{}.{}.0-keel", KUBE_VERSION.0, KUBE_VERSION.1),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `/apis`.
pub fn groups() -> Value {
    let groups: Vec<Value> = registry::groups().into_iter().map(|(g, v)| group_doc(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(group: &str) -> Option<Value> {
    registry::groups().into_iter().find(|(g, _)| *g == group).map(|(g, v)| {
        let mut doc = group_doc(g, v);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        doc
    })
}

fn verbs(res: &ResourceDef) -> Vec<&'static str> {
    vec![
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    .into_iter()
    .filter(|v| !(res.kind == "Namespace" && *v == "deletecollection"))
    .collect()
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resources(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in registry::in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for sub in r.subresources {
            let sub_entry = match *sub {
                "scale" => {
                    json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
                }
                "binding" => {
                    json!({"name": format!("{}/binding", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": "Binding", "verbs": ["create"]})
                }
                _ => json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            };
            list.push(sub_entry);
        }
        if r.kind == "Namespace" {
            list.push(
                json!({"name": "namespaces/finalize", "singularName": "", "namespaced": false,
                "kind": "Namespace", "verbs": ["update"]}),
            );
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs = vec![(String::new(), "v1".to_string())];
    gvs.extend(
        registry::groups()
            .into_iter()
            .map(|(g, v)| (g.to_string(), v.to_string())),
    );
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        let hash = format!(
            "{:016X}",
            fnv(openapi_group_version(&g, &v)
                .map(|d| d.to_string())
                .unwrap_or_default()
                .as_bytes())
        );
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_op(r: &ResourceDef, op_id: &str, sub_kind: Option<(&str, &str, &str)>, patch: bool) -> Value {
    let (g, v, k) = sub_kind.unwrap_or((r.group, r.version, r.kind));
    let mut content = serde_json::Map::new();
    let schema = json!({"schema": {"type": "object"}});
    if patch {
        // Strategic merge patch is deliberately not listed: kubectl then computes apply patches from its
        // built-in type metadata, which carries the full patch strategy of every field.
        for ct in ["application/json-patch+json", "application/merge-patch+json"] {
            content.insert(ct.to_string(), schema.clone());
        }
    } else {
        content.insert("application/json".to_string(), schema.clone());
    }
    json!({
        "operationId": op_id,
        "parameters": [param("dryRun", "query"), param("fieldManager", "query"), param("fieldValidation", "query")],
        "requestBody": {"content": content},
        "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}},
        "x-kubernetes-action": if patch { "patch" } else { "put" },
        "x-kubernetes-group-version-kind": {"group": g, "version": v, "kind": k},
    })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`.
pub fn openapi_group_version(group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let prefix = format!("/{}", gv_path(group, version));
    for r in registry::in_group_version(group, version) {
        let base = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let mut create = write_op(r, &format!("create{}", r.kind), None, false);
        create["x-kubernetes-action"] = json!("post");
        paths.insert(
            base.clone(),
            json!({
                "get": {"operationId": format!("list{}", r.kind), "x-kubernetes-action": "list",
                        "x-kubernetes-group-version-kind": gvk.clone(),
                        "responses": {"200": {"description": "OK"}}},
                "post": create,
            }),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": {"operationId": format!("read{}", r.kind), "x-kubernetes-action": "get",
                        "x-kubernetes-group-version-kind": gvk.clone(), "responses": {"200": {"description": "OK"}}},
                "put": write_op(r, &format!("replace{}", r.kind), None, false),
                "patch": write_op(r, &format!("patch{}", r.kind), None, true),
                "delete": {"operationId": format!("delete{}", r.kind), "x-kubernetes-action": "delete",
                           "x-kubernetes-group-version-kind": gvk.clone(), "responses": {"200": {"description": "OK"}}},
            }),
        );
        for sub in r.subresources {
            let sub_kind = match *sub {
                "scale" => Some(("autoscaling", "v1", "Scale")),
                "binding" => Some(("", "v1", "Binding")),
                _ => None,
            };
            let title = format!("{}{}", r.kind, capitalize(sub));
            paths.insert(
                format!("{base}/{{name}}/{sub}"),
                json!({
                    "put": write_op(r, &format!("replace{title}"), sub_kind, false),
                    "patch": write_op(r, &format!("patch{title}"), sub_kind, true),
                }),
            );
        }
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", KUBE_VERSION.0, KUBE_VERSION.1)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists_include_subresources() {
        let apps = resources("apps", "v1").expect("apps/v1");
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(names.contains(&"daemonsets/status"));
        assert!(!names.contains(&"daemonsets/scale"));
        assert!(resources("apps", "v2").is_none());
    }

    #[test]
    fn openapi_patch_ops_carry_gvk_and_field_validation() {
        let doc = openapi_group_version("apps", "v1").expect("doc");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let idx = openapi_index();
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .expect("url")
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
    }
}
