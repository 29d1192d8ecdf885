//! The scheduler and the node lifecycle controller, end to end: a real `keel server`, stand-in nodes
//! (`FakeNode`), and stock kubectl. Every wait is bounded; nothing asserts on wall-clock time.

use std::process::Command;
use std::time::{Duration, Instant};

use keel_tests::fake_node::{FakeNode, node_manifest};
use keel_tests::{Server, wait_for};
use serde_json::{Value, json};

/// Bound on waiting for the control plane to react (a hang guard, not a performance threshold).
const REACT: Duration = Duration::from_secs(60);
/// Polling step.
const STEP: Duration = Duration::from_millis(200);
/// The grace period the node-lifecycle test gives `keel server` (seconds), instead of 40. The stand-in renews its
/// Lease between kubectl calls, which take seconds each on a loaded machine: shorter periods make live nodes flap.
const TEST_GRACE_SECONDS: &str = "10";
/// The variable `keel server` reads its node monitor grace period from.
const GRACE_ENV: &str = "KEEL_NODE_MONITOR_GRACE_SECONDS";

fn server() -> Server {
    Server::start().unwrap_or_else(|e| panic!("starting keel server: {e:#}"))
}

/// A stand-in node labelled with its hostname plus `labels`.
fn node(s: &Server, name: &str, cpu: &str, labels: Value) -> FakeNode {
    let mut all = json!({"kubernetes.io/hostname": name});
    if let (Some(a), Some(extra)) = (all.as_object_mut(), labels.as_object()) {
        a.extend(extra.clone());
    }
    FakeNode::start_with(s, name, cpu, "8Gi", all)
}

/// A single-container pod with `spec` merged over the basics.
fn pod(name: &str, spec: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}});
    if let (Some(base), Some(extra)) = (p["spec"].as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    p
}

/// A container requesting `cpu`.
fn requesting(cpu: &str) -> Value {
    json!({"containers": [{"name": "app", "image": "busybox:1.36", "resources": {"requests": {"cpu": cpu}}}]})
}

fn create(s: &Server, obj: &Value) {
    create_all(s, std::slice::from_ref(obj));
}

/// Create several objects with one kubectl (a multi-document stream).
fn create_all(s: &Server, objs: &[Value]) {
    let docs: Vec<String> = objs.iter().map(Value::to_string).collect();
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&docs.join("\n---\n")));
    let first: String = docs.first().map(|d| d.chars().take(400).collect()).unwrap_or_default();
    assert!(
        out.status.success(),
        "kubectl create of {} object(s) failed: {}\nfirst: {first}",
        objs.len(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get(s: &Server, kind: &str, name: &str) -> Value {
    s.get_json(&[kind, name])
}

/// Wait until `f` holds for the object, returning it; the failure message shows the last state.
fn wait_obj(s: &Server, kind: &str, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let r = wait_for(what, REACT, STEP, || {
        let out = s.kubectl(&["get", kind, name, "-o", "json"]);
        last = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        out.status.success() && f(&last)
    });
    if let Err(e) = r {
        panic!("{e}: {kind}/{name} is\n{last:#}");
    }
    last
}

/// Wait for a pod to be bound and return its node.
fn bound_node(s: &Server, pod: &str) -> String {
    let p = wait_obj(s, "pod", pod, &format!("pod {pod} to be scheduled"), |p| {
        p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty())
    });
    p["spec"]["nodeName"].as_str().unwrap_or_default().to_string()
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
}

/// Wait for a pod to be reported unschedulable and return the PodScheduled condition.
fn unschedulable(s: &Server, pod: &str) -> Value {
    let p = wait_obj(s, "pod", pod, &format!("pod {pod} to be marked unschedulable"), |p| {
        condition(p, "PodScheduled").is_some_and(|c| c["status"] == "False" && c["reason"] == "Unschedulable")
    });
    assert_eq!(p["spec"].get("nodeName"), None, "an unschedulable pod is not bound");
    assert_eq!(p["status"]["phase"], "Pending");
    condition(&p, "PodScheduled").cloned().unwrap_or_default()
}

fn taint_keys(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["key"].as_str().unwrap_or(""),
                        t["effect"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn replicas_of_a_workload_spread_over_three_nodes() {
    let s = server();
    let _nodes = ["n1", "n2", "n3"].map(|n| node(&s, n, "4", json!({})));
    // A real owner object, so garbage collection leaves the pods alone.
    create(
        &s,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}),
    );
    let uid = get(&s, "configmap", "owner")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let items: Vec<Value> = (0..6)
        .map(|i| {
            let mut p = pod(&format!("web-{i}"), json!({}));
            p["metadata"]["labels"] = json!({"app": "web"});
            p["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "controller": true}]);
            p
        })
        .collect();
    create_all(&s, &items);
    let mut per_node = std::collections::BTreeMap::new();
    for i in 0..6 {
        *per_node.entry(bound_node(&s, &format!("web-{i}"))).or_insert(0) += 1;
    }
    assert_eq!(
        per_node,
        [("n1".to_string(), 2), ("n2".to_string(), 2), ("n3".to_string(), 2)].into(),
        "six replicas spread two per node"
    );
    // The binding set PodScheduled=True and the Scheduled event says where.
    let p = get(&s, "pod", "web-0");
    assert_eq!(
        condition(&p, "PodScheduled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    let node = p["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
    let want = format!("Successfully assigned default/web-0 to {node}");
    wait_for("the Scheduled event", REACT, STEP, || {
        let d = s.ok(&["describe", "pod", "web-0"]);
        d.contains("Scheduled") && d.contains(&want) && d.contains("default-scheduler")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", s.ok(&["describe", "pod", "web-0"])));
    // The stand-in reports the pods Running on the node the scheduler chose.
    wait_obj(&s, "pod", "web-0", "web-0 to run", |p| {
        p["status"]["phase"] == "Running"
    });
}

#[test]
fn node_selector_and_required_node_affinity() {
    let s = server();
    let _n1 = node(&s, "n1", "4", json!({"disk": "ssd", "gen": "5"}));
    let _n2 = node(&s, "n2", "4", json!({"zone": "b", "gen": "3"}));
    let _n3 = node(&s, "n3", "4", json!({}));
    create(&s, &pod("selector", json!({"nodeSelector": {"disk": "ssd"}})));
    let affinity = |exprs: Value| {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    };
    create(
        &s,
        &pod(
            "in-zone-b",
            affinity(json!([{"key": "zone", "operator": "In", "values": ["b"]}])),
        ),
    );
    create(
        &s,
        &pod(
            "newer-than-4",
            affinity(json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])),
        ),
    );
    create(
        &s,
        &pod(
            "plain-node",
            affinity(
                json!([{"key": "disk", "operator": "DoesNotExist"}, {"key": "zone", "operator": "NotIn", "values": ["b"]}]),
            ),
        ),
    );
    let by_name = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}});
    create(&s, &pod("by-name", by_name));
    assert_eq!(bound_node(&s, "selector"), "n1");
    assert_eq!(bound_node(&s, "in-zone-b"), "n2");
    assert_eq!(bound_node(&s, "newer-than-4"), "n1");
    assert_eq!(bound_node(&s, "plain-node"), "n3");
    assert_eq!(bound_node(&s, "by-name"), "n2");

    // Nothing matches: Pending with kube-scheduler's message, until a node gets the label.
    create(&s, &pod("gpu", json!({"nodeSelector": {"accelerator": "a100"}})));
    let cond = unschedulable(&s, "gpu");
    assert_eq!(
        cond["message"],
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
    s.ok(&["label", "node", "n3", "accelerator=a100"]);
    assert_eq!(bound_node(&s, "gpu"), "n3", "relabelling a node retries the pod");
}

#[test]
fn taints_repel_pods_that_do_not_tolerate_them() {
    let s = server();
    let _n1 = node(&s, "n1", "4", json!({}));
    let _n2 = node(&s, "n2", "4", json!({}));
    s.ok(&["taint", "nodes", "n1", "dedicated=gpu:NoSchedule"]);
    wait_obj(&s, "node", "n1", "the taint", |n| {
        taint_keys(n).contains(&"dedicated:NoSchedule".to_string())
    });
    for i in 0..4 {
        create(&s, &pod(&format!("plain-{i}"), json!({})));
    }
    for i in 0..4 {
        assert_eq!(
            bound_node(&s, &format!("plain-{i}")),
            "n2",
            "plain-{i} avoids the tainted node"
        );
    }
    // Pinned to the tainted node without a toleration: unschedulable, and kube-scheduler says why.
    create(
        &s,
        &pod("pinned", json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}})),
    );
    let cond = unschedulable(&s, "pinned");
    assert_eq!(
        cond["message"],
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {dedicated: gpu}. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    );
    // With the toleration it goes there.
    create(
        &s,
        &pod(
            "tolerant",
            json!({"nodeSelector": {"kubernetes.io/hostname": "n1"},
                   "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        ),
    );
    assert_eq!(bound_node(&s, "tolerant"), "n1");
    // Removing the taint lets the pinned pod in.
    s.ok(&["taint", "nodes", "n1", "dedicated=gpu:NoSchedule-"]);
    assert_eq!(bound_node(&s, "pinned"), "n1");
}

#[test]
fn insufficient_cpu_waits_for_a_bigger_node() {
    let s = server();
    let _n1 = node(&s, "n1", "2", json!({}));
    let _n2 = node(&s, "n2", "2", json!({}));
    let _n3 = node(&s, "n3", "2", json!({}));
    s.ok(&["taint", "nodes", "n3", "key=value:NoSchedule"]);
    wait_obj(&s, "node", "n3", "the taint", |n| {
        taint_keys(n).contains(&"key:NoSchedule".to_string())
    });
    // Fill n1 and n2 half way.
    create(&s, &pod("filler-1", requesting("1")));
    create(&s, &pod("filler-2", requesting("1")));
    let mut filled = [bound_node(&s, "filler-1"), bound_node(&s, "filler-2")];
    filled.sort();
    assert_eq!(
        filled,
        ["n1".to_string(), "n2".to_string()],
        "least allocated puts one filler on each"
    );

    create(&s, &pod("big", requesting("1500m")));
    let cond = unschedulable(&s, "big");
    assert_eq!(
        cond["message"],
        "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu. \
         preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
         2 No preemption victims found for incoming pod.."
    );
    // kubectl shows it as Pending, and describe shows the FailedScheduling event from default-scheduler.
    let row = s.ok(&["get", "pod", "big", "--no-headers"]);
    assert!(row.contains("Pending"), "{row}");
    wait_for("the FailedScheduling event", REACT, STEP, || {
        let d = s.ok(&["describe", "pod", "big"]);
        d.contains("FailedScheduling") && d.contains("default-scheduler") && d.contains("2 Insufficient cpu")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", s.ok(&["describe", "pod", "big"])));
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=big",
        "-o",
        "json",
    ]);
    let events: Value = serde_json::from_str(&events).unwrap_or_default();
    let failed = events["items"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["reason"] == "FailedScheduling").cloned())
        .unwrap_or_default();
    assert_eq!(failed["type"], "Warning");
    assert_eq!(failed["message"], cond["message"]);

    // A bigger node arrives: the pod is retried and lands there.
    let _n4 = node(&s, "n4", "8", json!({}));
    assert_eq!(bound_node(&s, "big"), "n4");
    let p = get(&s, "pod", "big");
    assert_eq!(
        condition(&p, "PodScheduled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
}

#[test]
fn pods_leaving_a_node_free_room_for_waiting_pods() {
    let s = server();
    let _n1 = node(&s, "n1", "1", json!({}));
    create(&s, &pod("first", requesting("800m")));
    assert_eq!(bound_node(&s, "first"), "n1");
    create(&s, &pod("second", requesting("800m")));
    let cond = unschedulable(&s, "second");
    assert_eq!(
        cond["message"],
        "0/1 nodes are available: 1 Insufficient cpu. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
    );
    s.ok(&["delete", "pod", "first", "--wait=false"]);
    assert_eq!(bound_node(&s, "second"), "n1", "the deleted pod's room is reused");
}

#[test]
fn cordoned_nodes_are_avoided() {
    let s = server();
    let _n1 = node(&s, "n1", "4", json!({}));
    let _n2 = node(&s, "n2", "4", json!({}));
    s.ok(&["cordon", "n1"]);
    // The node lifecycle controller mirrors the cordon as a taint, as Kubernetes' does.
    wait_obj(&s, "node", "n1", "the unschedulable taint", |n| {
        taint_keys(n).contains(&"node.kubernetes.io/unschedulable:NoSchedule".to_string())
    });
    let row = s.ok(&["get", "node", "n1", "--no-headers"]);
    assert!(row.contains("SchedulingDisabled"), "{row}");
    for i in 0..4 {
        create(&s, &pod(&format!("p{i}"), json!({})));
    }
    for i in 0..4 {
        assert_eq!(bound_node(&s, &format!("p{i}")), "n2", "p{i} avoids the cordoned node");
    }
    create(
        &s,
        &pod("pinned", json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}})),
    );
    let cond = unschedulable(&s, "pinned");
    assert_eq!(
        cond["message"],
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) were unschedulable. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    );
    s.ok(&["uncordon", "n1"]);
    assert_eq!(bound_node(&s, "pinned"), "n1");
    wait_obj(&s, "node", "n1", "the unschedulable taint to go", |n| {
        !taint_keys(n)
            .iter()
            .any(|t| t.starts_with("node.kubernetes.io/unschedulable"))
    });
}

/// Run this test binary's test `name` again in a child process with `vars` set, and require that it passed.
/// (`std::env::set_var` is unsafe, and unsafe code is forbidden here; the child's `keel server` inherits them.)
fn rerun_with_env(name: &str, vars: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("finding the test binary: {e}"));
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {name} again: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} with {vars:?} failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn silent_node_becomes_unknown_is_tainted_and_evicts_pods() {
    const NAME: &str = "silent_node_becomes_unknown_is_tainted_and_evicts_pods";
    if std::env::var_os(GRACE_ENV).is_none() {
        rerun_with_env(NAME, &[(GRACE_ENV, TEST_GRACE_SECONDS)]);
        return;
    }
    let s = server();
    let n1 = node(&s, "n1", "4", json!({}));
    let _n2 = node(&s, "n2", "4", json!({}));
    let on_n1 = |name: &str, tolerations: Value| {
        let mut p = pod(name, json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}}));
        if !tolerations.is_null() {
            p["spec"]["tolerations"] = tolerations;
        }
        p
    };
    let unreachable = |seconds: Value| {
        let mut t = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"});
        if !seconds.is_null() {
            t["tolerationSeconds"] = seconds;
        }
        json!([t])
    };
    create(&s, &on_n1("short", unreachable(json!(2))));
    create(&s, &on_n1("forever", unreachable(Value::Null)));
    create(&s, &on_n1("defaulted", Value::Null));
    for p in ["short", "forever", "defaulted"] {
        assert_eq!(bound_node(&s, p), "n1");
        wait_obj(&s, "pod", p, "the pod to be Ready", |p| {
            condition(p, "Ready").is_some_and(|c| c["status"] == "True")
        });
    }
    let defaulted = get(&s, "pod", "defaulted");
    assert!(
        defaulted["spec"]["tolerations"]
            .to_string()
            .contains("\"tolerationSeconds\":300"),
        "API defaulting adds 300 s tolerations: {}",
        defaulted["spec"]["tolerations"]
    );

    // Still Ready with all three pods before the stand-in stops (a slower stand-in would have flapped already).
    let before = get(&s, "node", "n1");
    assert_eq!(
        condition(&before, "Ready").map(|c| c["status"].clone()),
        Some(json!("True")),
        "n1 went NotReady while its stand-in was alive: Lease renewals slower than {TEST_GRACE_SECONDS} s"
    );
    // The stand-in dies: no more Lease renewals or status posts.
    n1.set_alive(false);
    let node = wait_obj(&s, "node", "n1", "n1 to become Unknown", |n| {
        condition(n, "Ready").is_some_and(|c| c["status"] == "Unknown")
    });
    let ready = condition(&node, "Ready").cloned().unwrap_or_default();
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    for c in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            condition(&node, c).map(|c| c["status"].clone()),
            Some(json!("Unknown")),
            "{c}"
        );
    }
    let node = wait_obj(&s, "node", "n1", "the unreachable taints", |n| {
        let t = taint_keys(n);
        t.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
            && t.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
    });
    assert!(node["spec"]["taints"][0]["timeAdded"].is_string(), "{node:#}");
    let row = s.ok(&["get", "node", "n1", "--no-headers"]);
    assert!(row.contains("NotReady"), "{row}");
    assert!(
        s.ok(&["get", "node", "n2", "--no-headers"]).contains(" Ready"),
        "the live node stays Ready"
    );
    wait_for("the NodeNotReady event", REACT, STEP, || {
        s.ok(&["get", "events", "--field-selector", "involvedObject.name=n1"])
            .contains("NodeNotReady")
    })
    .unwrap_or_else(|e| panic!("{e}:\n{}", s.ok(&["get", "events", "-A"])));

    // The pod tolerating the taint for 2 s is evicted; the others stay (forever, and 300 s).
    // Deleted gracefully: the pod stays Terminating while its node cannot confirm.
    let short = wait_obj(&s, "pod", "short", "short to be evicted (and still Terminating)", |p| {
        p["metadata"]["deletionTimestamp"].is_string()
    });
    let target = condition(&short, "DisruptionTarget").cloned().unwrap_or_default();
    assert_eq!(target["status"], "True", "{short:#}");
    assert_eq!(target["reason"], "DeletionByTaintManager");
    assert_eq!(target["message"], "Taint manager: deleting due to NoExecute taint");
    let d = s.ok(&["describe", "pod", "short"]);
    assert!(
        d.contains("TaintManagerEviction") && d.contains("Marking for deletion Pod default/short"),
        "{d}"
    );
    for p in ["forever", "defaulted"] {
        let p = get(&s, "pod", p);
        assert!(p["metadata"].get("deletionTimestamp").is_none(), "{p:#}");
        assert_eq!(
            condition(&p, "Ready").map(|c| c["status"].clone()),
            Some(json!("False")),
            "pods of a silent node are not Ready: {p:#}"
        );
    }
    // New pods stay off the unreachable node.
    create(
        &s,
        &pod("newcomer", json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}})),
    );
    let cond = unschedulable(&s, "newcomer");
    let msg = cond["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
        "{msg}"
    );

    // The stand-in comes back and, as a kubelet does, posts Ready again.
    n1.set_alive(true);
    let mut status = node_manifest("n1", "4", "8Gi", json!({}));
    let fresh = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    status["status"]["conditions"][0]["lastHeartbeatTime"] = json!(fresh);
    let patch = json!({"status": {"conditions": status["status"]["conditions"]}}).to_string();
    s.ok(&[
        "patch",
        "node",
        "n1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
    wait_obj(&s, "node", "n1", "n1 to be Ready without taints", |n| {
        condition(n, "Ready").is_some_and(|c| c["status"] == "True")
            && !taint_keys(n).iter().any(|t| t.starts_with("node.kubernetes.io/"))
    });
    // The evicted pod is gone (the stand-in confirmed the deletion); the others run on; the newcomer lands.
    wait_for("short to be gone", REACT, STEP, || {
        !s.kubectl(&["get", "pod", "short"]).status.success()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    wait_obj(&s, "pod", "forever", "forever to be Ready again", |p| {
        condition(p, "Ready").is_some_and(|c| c["status"] == "True")
    });
    assert_eq!(bound_node(&s, "newcomer"), "n1");
    wait_for("the NodeReady event", REACT, STEP, || {
        s.ok(&["get", "events", "--field-selector", "involvedObject.name=n1"])
            .contains("NodeReady")
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A burst of 1,000 pending pods bound once nodes appear. Prints the time (no threshold: the benchmark owns
/// performance goals).
#[test]
fn a_thousand_pending_pods_are_scheduled_in_a_burst() {
    const PODS: usize = 1000;
    let s = server();
    let items: Vec<Value> = (0..PODS)
        .map(|i| pod(&format!("burst-{i}"), requesting("10m")))
        .collect();
    create_all(&s, &items);
    // No nodes yet: every pod is tried and found unschedulable.
    let pending = || {
        s.ok(&[
            "get",
            "pods",
            "--no-headers",
            "-o",
            "custom-columns=N:.spec.nodeName,S:.status.conditions[0].reason",
        ])
    };
    wait_for(
        "every pod to be marked unschedulable",
        Duration::from_secs(180),
        STEP,
        || {
            let out = pending();
            out.lines().count() == PODS && out.lines().all(|l| l.contains("Unschedulable"))
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = get(&s, "pod", "burst-0");
    assert_eq!(
        condition(&p, "PodScheduled").map(|c| c["message"].clone()),
        Some(json!("no nodes available to schedule pods"))
    );
    // Let the first backoff (1 s) pass so the first node's arrival releases every pod at once (each node can
    // take them all: this measures the scheduler, not spreading).
    std::thread::sleep(Duration::from_secs(2));
    let nodes: Vec<Value> = (0..5)
        .map(|i| {
            let mut n = node_manifest(&format!("big-{i}"), "64", "256Gi", json!({}));
            n["status"]["allocatable"]["pods"] = json!("1100");
            n["status"]["capacity"]["pods"] = json!("1100");
            n
        })
        .collect();
    let start = Instant::now();
    create_all(&s, &nodes);
    wait_for(
        "every pod to be bound",
        Duration::from_secs(180),
        Duration::from_millis(100),
        || {
            let out = s.ok(&["get", "pods", "--no-headers", "-o", "custom-columns=N:.spec.nodeName"]);
            out.lines().count() == PODS && !out.lines().any(|l| l.contains("<none>"))
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    println!(
        "scheduled {PODS} pods in {took:?} ({:.0} pods/s, including kubectl and polling)",
        PODS as f64 / took.as_secs_f64()
    );
}
