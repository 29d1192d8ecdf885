//! The EndpointSlice and Endpoints controllers end to end: a real `keel server`, stock kubectl, and the stand-in
//! node reporting pods bound to it as Running and Ready with an address. Pods are bound by `spec.nodeName` in their
//! manifests, so these tests do not depend on the scheduler.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keel_tests::fake_node::FakeNode;
use keel_tests::{Server, wait_for};
use serde_json::{Value, json};

/// Bound on waiting for the controllers to converge after one change (a hang guard, not a performance threshold).
const CONVERGE: Duration = Duration::from_secs(90);
/// Bound on the stand-in node reporting 150 pods, one kubectl call each (a hang guard too).
const MANY_PODS: Duration = Duration::from_secs(400);
const POLL: Duration = Duration::from_millis(250);

fn server() -> Server {
    Server::start().unwrap_or_else(|e| panic!("starting keel server: {e:#}"))
}

/// The stand-in node `node-a`, in zone `zone-a`.
fn node(s: &Server) -> FakeNode {
    FakeNode::start_with(
        s,
        "node-a",
        "4",
        "8Gi",
        json!({"kubernetes.io/hostname": "node-a", "topology.kubernetes.io/zone": "zone-a"}),
    )
}

/// A pod bound to `node-a` with labels; with `named_port` its container declares port `web-http` (8080).
fn pod(name: &str, labels: Value, named_port: bool) -> Value {
    let ports = if named_port {
        json!([{"name": "web-http", "containerPort": 8080}])
    } else {
        json!([])
    };
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "nginx:1.27", "ports": ports}]}})
}

/// A multi-document manifest (a `kind: List` would send kubectl to client-side validation, which needs
/// `/openapi/v2`).
fn list(items: Vec<Value>) -> String {
    items.iter().map(Value::to_string).collect::<Vec<_>>().join("\n---\n")
}

/// Service `web`: port `http` targets the named container port, `metrics` the same number.
const WEB_SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {tier: front}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: web-http}
  - {name: metrics, port: 9090}
";

/// Poll `check` until it passes; panics with the last failure once `limit` is over.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let mut last = String::new();
    let done = wait_for(what, limit, POLL, || match check() {
        Ok(()) => true,
        Err(e) => {
            last = e;
            false
        }
    });
    if let Err(e) = done {
        panic!("{e}; last seen: {last}");
    }
}

/// The EndpointSlices of a Service (by the `kubernetes.io/service-name` label).
fn slices(s: &Server, svc: &str) -> Vec<Value> {
    let sel = format!("kubernetes.io/service-name={svc}");
    s.get_json(&["endpointslices", "-l", &sel])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn slice_names(slices: &[Value]) -> BTreeSet<String> {
    slices
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Every endpoint of the slices by pod name; panics if a pod is listed twice.
fn by_pod(slices: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for ep in slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
    {
        let name = ep["targetRef"]["name"].as_str().unwrap_or("").to_string();
        if let Some(dup) = out.insert(name.clone(), ep) {
            panic!("pod {name} is listed twice in the slices: {dup}\n{slices:#?}");
        }
    }
    out
}

fn ready(ep: &Value) -> bool {
    ep["conditions"]["ready"] == true
}

/// The Endpoints object, if any.
fn endpoints(s: &Server, name: &str) -> Option<Value> {
    let out = s.kubectl(&["get", "endpoints", name, "-o", "json", "--ignore-not-found"]);
    let text = String::from_utf8_lossy(&out.stdout);
    (out.status.success() && !text.trim().is_empty())
        .then(|| serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl printed invalid JSON: {e}\n{text}")))
}

/// Pod names in one address list of every subset.
fn addressed(ep: &Value, field: &str) -> BTreeSet<String> {
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ss| ss[field].as_array().cloned().unwrap_or_default())
        .map(|a| a["targetRef"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The row of a table whose first column is `name`, split into columns.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{out}"))
}

/// Wait until the slices of `svc` list exactly `pods`, all ready; returns the slices.
fn wait_ready(s: &Server, svc: &str, pods: &[&str]) -> Vec<Value> {
    let want = set(pods);
    let mut found = Vec::new();
    eventually(&format!("{svc} slices to list {pods:?} ready"), CONVERGE, || {
        found = slices(s, svc);
        let eps = by_pod(&found);
        let names: BTreeSet<String> = eps.keys().cloned().collect();
        if names == want && eps.values().all(ready) {
            Ok(())
        } else {
            Err(format!("{found:#?}"))
        }
    });
    found
}

#[test]
fn service_gets_slices_and_endpoints_of_its_pods() {
    let s = server();
    let _node = node(&s);
    s.apply(WEB_SERVICE);
    let pods = ["web-0", "web-1", "web-2"]
        .iter()
        .map(|n| pod(n, json!({"app": "web"}), true))
        .collect();
    s.apply(&list(pods));

    let found = wait_ready(&s, "web", &["web-0", "web-1", "web-2"]);
    assert_eq!(found.len(), 1, "one slice expected: {found:#?}");
    let slice = &found[0];
    let svc = s.get_json(&["service", "web"]);
    let name = slice["metadata"]["name"].as_str().unwrap_or("");
    let suffix = name
        .strip_prefix("web-")
        .unwrap_or_else(|| panic!("slice name {name} lacks the web- prefix"));
    assert_eq!(suffix.len(), 5, "slice name {name}");
    assert_eq!(slice["metadata"]["generateName"], "web-");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["metadata"]["labels"],
        json!({"tier": "front", "kubernetes.io/service-name": "web",
               "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": svc["metadata"]["uid"],
                "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}])
    );
    let web0 = s.get_json(&["pod", "web-0"]);
    let ep0 = &by_pod(&found)["web-0"];
    assert_eq!(
        ep0,
        &json!({"addresses": [web0["status"]["podIP"]],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-a", "zone": "zone-a",
                "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": web0["metadata"]["uid"]}})
    );

    // The legacy Endpoints object lists the same pods with the resolved ports.
    let mut ep = None;
    eventually("Endpoints web to list the three pods", CONVERGE, || {
        ep = endpoints(&s, "web");
        match &ep {
            Some(e) if addressed(e, "addresses") == set(&["web-0", "web-1", "web-2"]) => Ok(()),
            other => Err(format!("{other:#?}")),
        }
    });
    let ep = ep.unwrap_or_default();
    assert_eq!(ep["metadata"]["labels"], json!({"tier": "front"}));
    let subsets = ep["subsets"].as_array().cloned().unwrap_or_default();
    assert_eq!(subsets.len(), 1, "{ep:#}");
    assert_eq!(
        subsets[0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}])
    );
    assert!(subsets[0].get("notReadyAddresses").is_none(), "{ep:#}");
    let a0 = subsets[0]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["targetRef"]["name"] == "web-0")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        a0,
        json!({"ip": web0["status"]["podIP"], "nodeName": "node-a",
               "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": web0["metadata"]["uid"]}})
    );

    // kubectl prints them as it prints Kubernetes' (the columns of the server-side tables).
    let out = s.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
    let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    let ips: Vec<&str> = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["addresses"][0].as_str())
        .collect();
    let r = row(&out, name);
    assert_eq!(r[1..4], ["IPv4", "8080,9090", &ips.join(",")], "{out}");
    let out = s.ok(&["get", "endpoints", "web"]);
    let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "ENDPOINTS", "AGE"]);
    let ep_ips: Vec<String> = subsets[0]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}:8080", a["ip"].as_str().unwrap_or("")))
        .collect();
    // `formatEndpoints`: the first three ip:port pairs (port 8080 first), then how many more.
    let cols = row(&out, "web");
    assert_eq!(
        cols[1..5].join(" "),
        format!("{} + 3 more...", ep_ips.join(",")),
        "{out}"
    );

    // A pod without the named port only serves `metrics`: it goes to a slice of its own port set, and to its
    // own subset; the first slice is left as it was.
    s.apply(&pod("web-odd", json!({"app": "web"}), false).to_string());
    let first = slice["metadata"]["name"].clone();
    eventually("web-odd in a metrics-only slice", CONVERGE, || {
        let now = slices(&s, "web");
        let odd = now
            .iter()
            .find(|sl| by_pod(std::slice::from_ref(sl)).contains_key("web-odd"));
        match odd {
            Some(sl)
                if sl["ports"] == json!([{"name": "metrics", "port": 9090, "protocol": "TCP"}])
                    && now.len() == 2
                    && ready(&by_pod(&now)["web-odd"])
                    && now.iter().any(|x| {
                        x["metadata"]["name"] == first && x["endpoints"].as_array().map(Vec::len) == Some(3)
                    }) =>
            {
                Ok(())
            }
            _ => Err(format!("{now:#?}")),
        }
    });
    eventually("Endpoints web to split by port set", CONVERGE, || {
        let e = endpoints(&s, "web").unwrap_or_default();
        let subsets = e["subsets"].as_array().cloned().unwrap_or_default();
        let metrics = subsets
            .iter()
            .find(|ss| ss["ports"] == json!([{"name": "metrics", "port": 9090, "protocol": "TCP"}]));
        let http = subsets
            .iter()
            .find(|ss| ss["ports"] == json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
        let names = |ss: Option<&Value>| addressed(&json!({"subsets": [ss.cloned().unwrap_or_default()]}), "addresses");
        if subsets.len() == 2
            && names(metrics) == set(&["web-0", "web-1", "web-2", "web-odd"])
            && names(http) == set(&["web-0", "web-1", "web-2"])
        {
            Ok(())
        } else {
            Err(format!("{e:#}"))
        }
    });

    // Deleting the Service takes its slices and Endpoints with it.
    s.ok(&["delete", "service", "web"]);
    eventually("web's slices and Endpoints to go", CONVERGE, || {
        let left = slices(&s, "web");
        let ep = endpoints(&s, "web");
        if left.is_empty() && ep.is_none() {
            Ok(())
        } else {
            Err(format!("slices {left:#?}, endpoints {ep:#?}"))
        }
    });
}

#[test]
fn headless_selectorless_and_empty_services() {
    let s = server();
    let _node = node(&s);
    s.apply(
        "\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
---
apiVersion: v1
kind: Service
metadata: {name: lonely}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec:
  ports: [{port: 80}]
",
    );
    let pods = ["db-0", "db-1"]
        .iter()
        .map(|n| pod(n, json!({"app": "db"}), false))
        .collect();
    s.apply(&list(pods));

    // Headless without ports: endpoints without ports, and the headless label.
    let found = wait_ready(&s, "db", &["db-0", "db-1"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["metadata"]["labels"]["service.kubernetes.io/headless"], "");
    assert!(found[0]["ports"].as_array().is_none_or(Vec::is_empty), "{:#}", found[0]);
    eventually("Endpoints db", CONVERGE, || {
        let e = endpoints(&s, "db").unwrap_or_default();
        let subsets = e["subsets"].as_array().cloned().unwrap_or_default();
        if subsets.len() == 1
            && subsets[0].get("ports").is_none()
            && addressed(&e, "addresses") == set(&["db-0", "db-1"])
            && e["metadata"]["labels"] == json!({"service.kubernetes.io/headless": ""})
        {
            Ok(())
        } else {
            Err(format!("{e:#}"))
        }
    });

    // A selector matching nothing: one empty placeholder slice and an Endpoints object without subsets.
    eventually("placeholder slice for lonely", CONVERGE, || {
        let found = slices(&s, "lonely");
        let e = endpoints(&s, "lonely");
        if found.len() == 1 && found[0]["endpoints"].as_array().is_none_or(Vec::is_empty) && e.is_some() {
            Ok(())
        } else {
            Err(format!("{found:#?} {e:#?}"))
        }
    });
    let out = s.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=lonely"]);
    let name = slice_names(&slices(&s, "lonely"))
        .into_iter()
        .next()
        .unwrap_or_default();
    assert_eq!(row(&out, &name)[1..4], ["IPv4", "<unset>", "<unset>"], "{out}");
    assert_eq!(row(&s.ok(&["get", "endpoints", "lonely"]), "lonely")[1], "<none>");

    // A matching pod fills the placeholder instead of replacing it.
    s.apply(&pod("loner", json!({"app": "nobody"}), false).to_string());
    let found = wait_ready(&s, "lonely", &["loner"]);
    assert_eq!(slice_names(&found), set(&[&name]));
    assert_eq!(found[0]["ports"], json!([{"name": "", "port": 80, "protocol": "TCP"}]));

    // Services without a selector are left alone: no slices, no Endpoints (the other Services, created together
    // with it, have converged by now).
    assert!(slices(&s, "external").is_empty());
    assert!(endpoints(&s, "external").is_none());
}

/// Whether pod `name`'s Ready condition is `True`.
fn pod_is_ready(s: &Server, name: &str) -> bool {
    s.get_json(&["pod", name])["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

#[test]
fn readiness_termination_and_deletion_reach_the_slices() {
    let s = server();
    let node = node(&s);
    s.apply(WEB_SERVICE);
    // web-1 carries a finalizer, so that it stays terminating after deletion whatever the stand-in does.
    let mut held = pod("web-1", json!({"app": "web"}), true);
    held["metadata"]["finalizers"] = json!(["keel.test/hold"]);
    s.apply(&list(vec![
        pod("web-0", json!({"app": "web"}), true),
        held,
        pod("web-2", json!({"app": "web"}), true),
    ]));
    let first = slice_names(&wait_ready(&s, "web", &["web-0", "web-1", "web-2"]));

    // The stand-in would report the pod Ready again: stop it, then mark web-0 not ready. A report already under
    // way when it stops may still undo the patch, so the patch is repeated until it holds.
    node.set_alive(false);
    eventually("web-0 not ready in its slice and Endpoints", CONVERGE, || {
        if pod_is_ready(&s, "web-0") {
            s.ok(&[
                "patch",
                "pod",
                "web-0",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
            ]);
        }
        let eps = by_pod(&slices(&s, "web"));
        let e = endpoints(&s, "web").unwrap_or_default();
        let c = &eps.get("web-0").cloned().unwrap_or_default()["conditions"];
        if *c == json!({"ready": false, "serving": false, "terminating": false})
            && addressed(&e, "notReadyAddresses") == set(&["web-0"])
            && addressed(&e, "addresses") == set(&["web-1", "web-2"])
        {
            Ok(())
        } else {
            Err(format!("{eps:#?}\n{e:#}"))
        }
    });

    // A graceful deletion: terminating, still serving (it is Ready), not ready; gone from Endpoints.
    s.ok(&["delete", "pod", "web-1", "--wait=false"]);
    eventually("web-1 terminating", CONVERGE, || {
        let eps = by_pod(&slices(&s, "web"));
        let e = endpoints(&s, "web").unwrap_or_default();
        let c = &eps.get("web-1").cloned().unwrap_or_default()["conditions"];
        if *c == json!({"ready": false, "serving": true, "terminating": true})
            && addressed(&e, "addresses") == set(&["web-2"])
        {
            Ok(())
        } else {
            Err(format!("{eps:#?}\n{e:#}"))
        }
    });

    // A pod deleted outright disappears.
    s.ok(&["delete", "pod", "web-2", "--grace-period=0", "--force"]);
    eventually("web-2 gone", CONVERGE, || {
        let eps = by_pod(&slices(&s, "web"));
        let e = endpoints(&s, "web").unwrap_or_default();
        if !eps.contains_key("web-2") && addressed(&e, "addresses").is_empty() {
            Ok(())
        } else {
            Err(format!("{eps:#?}\n{e:#}"))
        }
    });

    // web-1's deletion completes; the stand-in comes back and reports web-0 Ready again.
    s.ok(&[
        "patch",
        "pod",
        "web-1",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    node.set_alive(true);
    let now = wait_ready(&s, "web", &["web-0"]);
    assert_eq!(
        slice_names(&now),
        first,
        "the slice is updated in place, never recreated"
    );
    eventually("Endpoints web back to web-0 ready", CONVERGE, || {
        let e = endpoints(&s, "web").unwrap_or_default();
        if addressed(&e, "addresses") == set(&["web-0"]) && addressed(&e, "notReadyAddresses").is_empty() {
            Ok(())
        } else {
            Err(format!("{e:#}"))
        }
    });
}

#[test]
fn many_pods_are_split_into_slices_of_at_most_100() {
    let s = server();
    let _node = node(&s);
    s.apply(
        "\
apiVersion: v1
kind: Service
metadata: {name: big}
spec:
  selector: {app: big}
  ports: [{name: http, port: 80, targetPort: web-http}]
",
    );
    let names: Vec<String> = (0..150).map(|i| format!("big-{i:03}")).collect();
    let pods = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            pod(
                n,
                json!({"app": "big", "batch": if i < 30 { "first" } else { "rest" }}),
                true,
            )
        })
        .collect();
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&list(pods)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut found = Vec::new();
    eventually("150 ready endpoints", MANY_PODS, || {
        found = slices(&s, "big");
        let eps = by_pod(&found);
        let n = eps.values().filter(|e| ready(e)).count();
        if n == 150 {
            Ok(())
        } else {
            Err(format!("{n} ready endpoints in {} slices", found.len()))
        }
    });
    let sizes: Vec<usize> = found
        .iter()
        .map(|sl| sl["endpoints"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(found.len(), 2, "slice sizes {sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 100), "slice sizes {sizes:?}");
    assert_eq!(
        by_pod(&found).keys().cloned().collect::<Vec<_>>(),
        names,
        "every pod exactly once"
    );
    let before = slice_names(&found);
    eventually("Endpoints big with 150 addresses", CONVERGE, || {
        let e = endpoints(&s, "big").unwrap_or_default();
        let n = addressed(&e, "addresses").len();
        if n == 150 {
            Ok(())
        } else {
            Err(format!("{n} addresses"))
        }
    });

    // Removing pods updates the slices that held them; none is recreated.
    s.ok(&["delete", "pods", "-l", "batch=first", "--grace-period=0", "--force"]);
    eventually("120 endpoints", CONVERGE, || {
        found = slices(&s, "big");
        let n = by_pod(&found).len();
        if n == 120 {
            Ok(())
        } else {
            Err(format!("{n} endpoints"))
        }
    });
    assert!(
        slice_names(&found).is_subset(&before),
        "{:?} not within {before:?}",
        slice_names(&found)
    );
    assert!(
        found
            .iter()
            .all(|sl| sl["endpoints"].as_array().map_or(0, Vec::len) <= 100)
    );
    eventually("Endpoints big with 120 addresses", CONVERGE, || {
        let e = endpoints(&s, "big").unwrap_or_default();
        let n = addressed(&e, "addresses").len();
        if n == 120 {
            Ok(())
        } else {
            Err(format!("{n} addresses"))
        }
    });
}
