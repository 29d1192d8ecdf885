//! Node podCIDRs from `--cluster-cidr`, through stock kubectl: every node gets its own /24, a podCIDR set by the
//! node's creator is kept and claimed, a full range is reported with an Event, a deleted node's range goes to the
//! next waiting node, ranges survive a restart without being handed out twice, and bad flags are refused.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use keel_tests::{Server, Store, keel_bin, wait_for};
use serde_json::{Value, json};

/// Bound on waiting for the controller (a hang guard, not a performance threshold).
const REACT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_millis(200);

/// A /22: room for exactly four nodes.
const CLUSTER_CIDR: &str = "10.99.0.0/22";

fn node(name: &str, spec: Value) -> String {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}).to_string()
}

fn pod_cidrs(s: &Server) -> Vec<(String, String, Value)> {
    let list = s.get_json(&["nodes"]);
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                n["spec"]["podCIDR"].as_str().unwrap_or_default().to_string(),
                n["spec"]["podCIDRs"].clone(),
            )
        })
        .collect()
}

fn cidr_of(s: &Server, name: &str) -> String {
    pod_cidrs(s)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, c, _)| c)
        .unwrap_or_default()
}

fn wait_assigned(s: &Server, names: &[&str]) {
    wait_for("podCIDRs assigned", REACT, STEP, || {
        names.iter().all(|n| !cidr_of(s, n).is_empty())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", pod_cidrs(s)));
}

fn create(s: &Server, docs: &[String]) {
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&docs.join("\n---\n")));
    assert!(
        out.status.success(),
        "kubectl create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nodes_get_distinct_pod_cidrs_from_the_cluster_cidr() {
    let mut s = Server::start_args(Store::Sqlite, &["--cluster-cidr", CLUSTER_CIDR])
        .unwrap_or_else(|e| panic!("starting keel server: {e:#}"));
    // One node brings its own range; two more arrive in one request.
    create(
        &s,
        &[
            node("fixed", json!({"podCIDR": "10.99.2.0/24"})),
            node("a", json!({})),
            node("b", json!({})),
        ],
    );
    wait_assigned(&s, &["a", "b"]);
    let all = pod_cidrs(&s);
    let cidrs: BTreeSet<String> = all.iter().map(|(_, c, _)| c.clone()).collect();
    assert_eq!(cidrs.len(), 3, "every node has its own range: {all:?}");
    assert_eq!(
        cidr_of(&s, "fixed"),
        "10.99.2.0/24",
        "a podCIDR set by the creator is kept"
    );
    for (name, cidr, list) in &all {
        assert!(
            ["10.99.0.0/24", "10.99.1.0/24", "10.99.2.0/24", "10.99.3.0/24"].contains(&cidr.as_str()),
            "{name}: {cidr} is a /24 of {CLUSTER_CIDR}"
        );
        assert_eq!(*list, json!([cidr]), "{name}: podCIDRs mirrors podCIDR");
    }

    // The last free /24, then a node that finds the range full.
    create(&s, &[node("c", json!({}))]);
    wait_assigned(&s, &["c"]);
    create(&s, &[node("d", json!({}))]);
    wait_for("a CIDRNotAvailable event for node d", REACT, STEP, || {
        let ev = s.get_json(&["events", "-A", "--field-selector", "involvedObject.name=d"]);
        ev["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|e| e["reason"] == "CIDRNotAvailable"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cidr_of(&s, "d"),
        "",
        "no range is invented when the cluster CIDR is full"
    );

    // A podCIDR cannot be changed once set. As in Kubernetes, podCIDRs is the source of truth: a patch of podCIDR
    // alone is folded back to podCIDRs[0] (a no-op); a patch of podCIDRs is refused.
    let a = cidr_of(&s, "a");
    s.ok(&[
        "patch",
        "node",
        "a",
        "--type=merge",
        "-p",
        r#"{"spec":{"podCIDR":"10.99.9.0/24"}}"#,
    ]);
    assert_eq!(cidr_of(&s, "a"), a);
    let err = s.fails(&[
        "patch",
        "node",
        "a",
        "--type=merge",
        "-p",
        r#"{"spec":{"podCIDRs":["10.99.9.0/24"]}}"#,
    ]);
    assert!(
        err.contains("spec.podCIDRs") && err.contains("may not change podCIDR"),
        "{err}"
    );
    assert_eq!(cidr_of(&s, "a"), a);

    // Deleting a node frees its range for the node that was waiting.
    let freed = cidr_of(&s, "b");
    s.ok(&["delete", "node", "b"]);
    wait_assigned(&s, &["d"]);
    assert_eq!(cidr_of(&s, "d"), freed, "the freed range went to the waiting node");

    // After a restart the claims are still there: a new node finds the range full, nothing is handed out twice.
    let before = pod_cidrs(&s);
    s.kill();
    s.launch().unwrap_or_else(|e| panic!("restarting keel server: {e:#}"));
    wait_for("the API after restart", REACT, STEP, || {
        s.kubectl(&["get", "nodes"]).status.success()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    create(&s, &[node("e", json!({}))]);
    wait_for("a CIDRNotAvailable event for node e", REACT, STEP, || {
        let ev = s.get_json(&["events", "-A", "--field-selector", "involvedObject.name=e"]);
        ev["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|e| e["reason"] == "CIDRNotAvailable"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let after: Vec<_> = pod_cidrs(&s).into_iter().filter(|(n, _, _)| n != "e").collect();
    assert_eq!(after, before, "nodes keep their ranges across a restart");
    assert_eq!(cidr_of(&s, "e"), "");
}

#[test]
fn bad_cluster_cidr_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for (args, want) in [
        (vec!["--cluster-cidr", "10.42.0.0/25"], "--cluster-cidr"),
        (vec!["--cluster-cidr", "10.43.0.0/16"], "overlaps --service-cidr"),
        (vec!["--cluster-cidr", "nope"], "--cluster-cidr"),
        (vec!["--node-monitor-grace-period=-3"], "positive number of seconds"),
    ] {
        let out = Command::new(keel_bin())
            .args(["server", "--no-agent", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("running keel: {e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must be refused");
        assert!(err.contains(want), "{args:?}: the error names the problem: {err}");
    }
}
