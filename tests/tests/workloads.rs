//! StatefulSets, DaemonSets and Jobs end to end: stock kubectl (v1.32) against a real `keel server`, with stand-in
//! nodes reporting bound pods Running and Ready (or Succeeded/Failed by their `keel.test/exit` annotation). Checks
//! what Kubernetes' statefulset, daemonset and job controllers do: ordered creation and scale-down, rolling
//! updates from the highest ordinal, one daemon pod per eligible node, and Job completion and failure.
//!
//! Every wait is bounded ([`LIMIT`], a hang guard, not a performance threshold); nothing measures elapsed time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keel_tests::fake_node::FakeNode;
use keel_tests::{KubectlStream, Server, wait_for};
use serde_json::Value;

/// Bound on any one wait (a hang guard).
const LIMIT: Duration = Duration::from_secs(120);
/// Poll interval of waits.
const STEP: Duration = Duration::from_millis(200);
/// The stand-in node StatefulSet and Job pods run on.
const NODE: &str = "node-a";
/// Pin StatefulSet and Job pod templates to [`NODE`] with `nodeName`, so pods are bound without the scheduler.
/// DaemonSet pods are always placed by node affinity, as Kubernetes does, and bound by the scheduler.
const PIN_NODE: bool = true;

fn server() -> Server {
    Server::start().unwrap_or_else(|e| panic!("starting keel server: {e:#}"))
}

fn wait(what: &str, f: impl FnMut() -> bool) {
    wait_for(what, LIMIT, STEP, f).unwrap_or_else(|e| panic!("{e}"));
}

/// `nodeName: <NODE>` for a pod template at `indent` spaces, or nothing.
fn pin(indent: usize) -> String {
    if PIN_NODE {
        format!("{}nodeName: {NODE}\n", " ".repeat(indent))
    } else {
        String::new()
    }
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn terminating(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

fn pods(server: &Server, selector: &str) -> Vec<Value> {
    items(&server.get_json(&["pods", "-l", selector]))
}

fn image(pod: &Value) -> &str {
    pod["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

/// A `kubectl get pods -w --output-watch-events` line: (event, name, ready, status).
fn watch_row(line: &str) -> Option<(String, String, String, String)> {
    let c: Vec<&str> = line.split_whitespace().collect();
    match c.as_slice() {
        [ev, name, ready, status, ..] if *ev != "EVENT" => {
            Some(((*ev).into(), (*name).into(), (*ready).into(), (*status).into()))
        }
        _ => None,
    }
}

/// Read watch lines until `done` holds for one of them (every line stays in `seen()`).
fn read_until(watch: &mut KubectlStream, what: &str, done: impl Fn(&(String, String, String, String)) -> bool) {
    watch
        .wait_line(what, LIMIT, |l| watch_row(l).is_some_and(|r| done(&r)))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The index of the first watch row (from `from` on) matching `f`.
fn first_row(seen: &[String], from: usize, f: impl Fn(&(String, String, String, String)) -> bool) -> Option<usize> {
    seen.iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| watch_row(l).is_some_and(|r| f(&r)))
        .map(|(i, _)| i)
}

fn statefulset(name: &str, replicas: i64, image: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: {name}
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
{pin}      containers:
      - name: web
        image: {image}
",
        pin = pin(6)
    )
}

/// Wait until the StatefulSet's pods are exactly `names`, all Running and Ready and none terminating.
fn wait_sts_pods(server: &Server, app: &str, names: &[&str]) {
    let want: BTreeSet<String> = names.iter().map(|n| (*n).to_string()).collect();
    wait(&format!("pods {names:?} of statefulset {app} to be ready"), || {
        let ps = pods(server, &format!("app={app}"));
        let got: BTreeSet<String> = ps.iter().map(|p| name(p).to_string()).collect();
        got == want && ps.iter().all(|p| ready(p) && !terminating(p))
    });
}

#[test]
fn statefulset_creates_in_order_and_scales_down_from_the_top() {
    let s = server();
    let _node = FakeNode::start(&s, NODE);
    // kubectl prints nothing for an empty watch: a sentinel pod shows when the watch is established.
    s.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sentinel\n  labels: {{app: sentinel}}\nspec:\n{}  \
         containers:\n  - name: c\n    image: busybox:1.36\n",
        pin(2)
    ));
    let mut watch = s.kubectl_stream(&[
        "get",
        "pods",
        "-l",
        "app in (web,sentinel)",
        "-w",
        "--output-watch-events",
    ]);
    read_until(&mut watch, "the sentinel pod", |(_, n, _, _)| n == "sentinel");
    s.apply(&statefulset("web", 3, "nginx:1.25"));

    // OrderedReady: in every snapshot, web-i exists only if web-(i-1) is Running and Ready.
    wait("web-0, web-1 and web-2 to be ready, in order", || {
        let ps = pods(&s, "app=web");
        let by_name: BTreeMap<String, &Value> = ps.iter().map(|p| (name(p).to_string(), p)).collect();
        for i in 1..3 {
            if by_name.contains_key(&format!("web-{i}")) {
                let prev = by_name
                    .get(&format!("web-{}", i - 1))
                    .unwrap_or_else(|| panic!("web-{i} exists before web-{}: {ps:#?}", i - 1));
                assert!(
                    ready(prev) && prev["status"]["phase"] == "Running",
                    "web-{i} exists while web-{} is not Running and Ready: {prev:#}",
                    i - 1
                );
            }
        }
        ps.len() == 3 && ps.iter().all(ready)
    });
    read_until(&mut watch, "web-2 ready", |(_, n, r, _)| n == "web-2" && r == "1/1");
    let seen = watch.seen().to_vec();
    let added = |n: &str| {
        first_row(&seen, 0, |(ev, name, _, _)| ev == "ADDED" && name == n)
            .unwrap_or_else(|| panic!("no ADDED {n} in the watch:\n{}", seen.join("\n")))
    };
    assert!(
        added("web-0") < added("web-1") && added("web-1") < added("web-2"),
        "pods did not appear in ordinal order:\n{}",
        seen.join("\n")
    );
    let ps = pods(&s, "app=web");
    let created = |n: &str| {
        ps.iter()
            .find(|p| name(p) == n)
            .and_then(|p| p["metadata"]["creationTimestamp"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(created("web-0") <= created("web-1") && created("web-1") <= created("web-2"));

    // Identity.
    for p in &ps {
        let n = name(p);
        assert_eq!(
            p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"], n,
            "{p:#}"
        );
        assert_eq!(
            p["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
            n.trim_start_matches("web-"),
            "{p:#}"
        );
        assert_eq!(p["spec"]["hostname"], n);
        assert_eq!(p["spec"]["subdomain"], "web");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    }
    let sts = s.get_json(&["sts", "web"]);
    let rev = sts["status"]["updateRevision"].as_str().unwrap_or_default().to_string();
    assert!(rev.starts_with("web-"), "{sts:#}");
    assert!(
        ps.iter()
            .all(|p| p["metadata"]["labels"]["controller-revision-hash"] == rev.as_str()),
        "pods not labelled with revision {rev}"
    );
    s.get_json(&["controllerrevision", &rev]);
    let out = s.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(out.contains("roll out complete"), "{out}");
    let table = s.ok(&["get", "sts", "web"]);
    assert!(table.contains("3/3"), "{table}");

    // Scale down to 1: web-2 goes entirely before web-1 is touched.
    let from = watch.seen().len();
    s.ok(&["scale", "sts/web", "--replicas=1"]);
    wait_sts_pods(&s, "web", &["web-0"]);
    read_until(&mut watch, "web-1 deleted", |(ev, n, _, _)| {
        ev == "DELETED" && n == "web-1"
    });
    let seen = watch.seen().to_vec();
    let gone2 = first_row(&seen, from, |(ev, n, _, _)| ev == "DELETED" && n == "web-2");
    let touched1 = first_row(&seen, from, |(ev, n, _, st)| {
        n == "web-1" && (ev == "DELETED" || st == "Terminating")
    });
    assert!(
        matches!((gone2, touched1), (Some(a), Some(b)) if a < b),
        "web-1 was deleted before web-2 was gone:\n{}",
        seen[from..].join("\n")
    );
    wait("statefulset status to show 1 replica", || {
        let sts = s.get_json(&["sts", "web"]);
        sts["status"]["replicas"] == 1 && sts["status"]["readyReplicas"] == 1
    });
}

#[test]
fn statefulset_rolling_update_replaces_pods_from_the_highest_ordinal() {
    let s = server();
    let _node = FakeNode::start(&s, NODE);
    s.apply(&statefulset("db", 3, "nginx:1.25"));
    wait_sts_pods(&s, "db", &["db-0", "db-1", "db-2"]);
    s.ok(&["rollout", "status", "sts/db", "--timeout=60s"]);
    let old_rev = s.get_json(&["sts", "db"])["status"]["currentRevision"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let mut watch = s.kubectl_stream(&["get", "pods", "-l", "app=db", "-w", "--output-watch-events"]);
    read_until(&mut watch, "db-0 listed", |(_, n, _, _)| n == "db-0");
    let from = watch.seen().len();
    s.apply(&statefulset("db", 3, "nginx:1.27"));
    let out = s.ok(&["rollout", "status", "sts/db", "--timeout=120s"]);
    assert!(out.contains("roll out complete"), "{out}");
    wait_sts_pods(&s, "db", &["db-0", "db-1", "db-2"]);
    read_until(&mut watch, "the new db-0 ready", |(ev, n, r, _)| {
        ev != "DELETED" && n == "db-0" && r == "1/1"
    });

    let seen = watch.seen().to_vec();
    let touched = |n: &str| {
        first_row(&seen, from, |(ev, name, _, st)| {
            name == n && (ev == "DELETED" || st == "Terminating")
        })
        .unwrap_or_else(|| panic!("{n} was never replaced:\n{}", seen[from..].join("\n")))
    };
    let (t2, t1, t0) = (touched("db-2"), touched("db-1"), touched("db-0"));
    assert!(
        t2 < t1 && t1 < t0,
        "pods were not replaced from the highest ordinal down:\n{}",
        seen[from..].join("\n")
    );
    // Each replacement waited for the one before to be Ready again.
    let back = |n: &str, after: usize| {
        first_row(&seen, after, |(ev, name, _, _)| ev == "ADDED" && name == n)
            .and_then(|i| first_row(&seen, i, |(ev, name, r, _)| ev != "DELETED" && name == n && r == "1/1"))
            .unwrap_or_else(|| panic!("{n} did not come back ready:\n{}", seen[from..].join("\n")))
    };
    assert!(back("db-2", t2) < t1, "db-1 was replaced before db-2 was ready again");
    assert!(back("db-1", t1) < t0, "db-0 was replaced before db-1 was ready again");

    let sts = s.get_json(&["sts", "db"]);
    let new_rev = sts["status"]["updateRevision"].as_str().unwrap_or_default().to_string();
    assert_ne!(new_rev, old_rev);
    assert_eq!(sts["status"]["currentRevision"], new_rev.as_str(), "{sts:#}");
    assert_eq!(sts["status"]["updatedReplicas"], 3, "{sts:#}");
    for p in pods(&s, "app=db") {
        assert_eq!(image(&p), "nginx:1.27", "{p:#}");
        assert_eq!(p["metadata"]["labels"]["controller-revision-hash"], new_rev.as_str());
    }
    let revs: Vec<String> = items(&s.get_json(&["controllerrevisions"]))
        .iter()
        .map(|r| name(r).to_string())
        .collect();
    assert!(revs.contains(&old_rev) && revs.contains(&new_rev), "revisions {revs:?}");

    // History and undo work from the ControllerRevisions; the old revision comes back renumbered.
    let history = s.ok(&["rollout", "history", "sts/db"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    s.ok(&["rollout", "undo", "sts/db"]);
    s.ok(&["rollout", "status", "sts/db", "--timeout=120s"]);
    wait("every pod back on the old image", || {
        let ps = pods(&s, "app=db");
        ps.len() == 3
            && ps
                .iter()
                .all(|p| image(p) == "nginx:1.25" && ready(p) && !terminating(p))
    });
    let sts = s.get_json(&["sts", "db"]);
    assert_eq!(sts["status"]["updateRevision"], old_rev.as_str(), "{sts:#}");
    let back = s.get_json(&["controllerrevision", &old_rev]);
    assert_eq!(back["revision"], 3, "{back:#}");
}

fn daemonset(image: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {{app: agent}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {{maxUnavailable: 1}}
  template:
    metadata:
      labels: {{app: agent}}
    spec:
      containers:
      - name: agent
        image: {image}
"
    )
}

/// The daemon pods by the node they are bound to; every pod must be bound, Ready and not terminating.
fn daemon_pods_ready(server: &Server) -> Option<BTreeMap<String, Value>> {
    let ps = pods(server, "app=agent");
    let mut by_node = BTreeMap::new();
    for p in ps {
        let node = p["spec"]["nodeName"].as_str()?.to_string();
        if !ready(&p) || terminating(&p) || by_node.insert(node, p).is_some() {
            return None;
        }
    }
    Some(by_node)
}

fn nodes_of(m: &BTreeMap<String, Value>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn daemonset_runs_one_pod_per_eligible_node() {
    let s = server();
    let _a = FakeNode::start(&s, "node-a");
    let _b = FakeNode::start(&s, "node-b");
    let _c = FakeNode::start(&s, "node-c");
    let _t = FakeNode::start(&s, "node-t");
    s.ok(&["taint", "nodes", "node-t", "dedicated=infra:NoSchedule"]);
    s.apply(&daemonset("busybox:1.36"));

    let mut last = BTreeMap::new();
    wait("a ready daemon pod on node-a, node-b and node-c", || {
        last = daemon_pods_ready(&s).unwrap_or_default();
        nodes_of(&last) == ["node-a", "node-b", "node-c"]
    });
    let out = s.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    for (node, p) in &last {
        // Placed the Kubernetes way: required node affinity on the node's name, bound by the scheduler.
        let term = &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchFields"][0];
        assert_eq!(term["key"], "metadata.name", "{p:#}");
        assert_eq!(term["values"][0], node.as_str(), "{p:#}");
        let tolerations = p["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/disk-pressure",
            "node.kubernetes.io/memory-pressure",
            "node.kubernetes.io/pid-pressure",
            "node.kubernetes.io/unschedulable",
        ] {
            assert!(
                tolerations.iter().any(|t| t["key"] == key),
                "no {key} toleration: {p:#}"
            );
        }
        assert!(p["metadata"]["labels"]["controller-revision-hash"].is_string(), "{p:#}");
        assert_eq!(p["metadata"]["labels"]["pod-template-generation"], "1", "{p:#}");
    }
    let ds = s.get_json(&["ds", "agent"]);
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "1",
        "{ds:#}"
    );
    assert_eq!(ds["status"]["desiredNumberScheduled"], 3, "{ds:#}");
    assert_eq!(ds["status"]["currentNumberScheduled"], 3, "{ds:#}");
    assert_eq!(ds["status"]["numberReady"], 3, "{ds:#}");
    assert_eq!(ds["status"]["numberMisscheduled"], 0, "{ds:#}");

    // A fourth node gets a pod too; the tainted node still has none.
    let _d = FakeNode::start(&s, "node-d");
    wait("a ready daemon pod on node-d as well", || {
        last = daemon_pods_ready(&s).unwrap_or_default();
        nodes_of(&last) == ["node-a", "node-b", "node-c", "node-d"]
    });
    wait("daemonset status to count 4 nodes", || {
        let ds = s.get_json(&["ds", "agent"]);
        ds["status"]["desiredNumberScheduled"] == 4 && ds["status"]["numberAvailable"] == 4
    });
    let table = s.ok(&["get", "ds", "agent"]);
    assert!(table.split_whitespace().filter(|w| *w == "4").count() >= 4, "{table}");

    // Rolling update to a new image, at most one node without an available pod at a time.
    s.apply(&daemonset("busybox:1.37"));
    let ds = s.get_json(&["ds", "agent"]);
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "2",
        "a template change bumps the template generation: {ds:#}"
    );
    let out = s.ok(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait("every daemon pod to run the new image", || {
        last = daemon_pods_ready(&s).unwrap_or_default();
        nodes_of(&last) == ["node-a", "node-b", "node-c", "node-d"] && last.values().all(|p| image(p) == "busybox:1.37")
    });
    let revs = items(&s.get_json(&["controllerrevisions"]));
    assert_eq!(revs.len(), 2, "{revs:#?}");
}

fn job(name: &str, completions: i64, parallelism: i64, backoff_limit: i64, exit: &str) -> String {
    format!(
        "\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  completions: {completions}
  parallelism: {parallelism}
  backoffLimit: {backoff_limit}
  template:
    metadata:
      annotations: {{keel.test/exit: \"{exit}\"}}
    spec:
      restartPolicy: Never
{pin}      containers:
      - name: work
        image: busybox:1.36
",
        pin = pin(6)
    )
}

fn conditions(job: &Value) -> Vec<(String, String, String)> {
    job["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or("").to_string(),
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn job_runs_to_completion_within_parallelism() {
    let s = server();
    let _node = FakeNode::start(&s, NODE);
    s.apply(&job("pi", 3, 2, 6, "0"));
    // Never more than `parallelism` pods unfinished at once.
    wait("job pi to count 3 successes", || {
        let ps = pods(&s, "batch.kubernetes.io/job-name=pi");
        let running = ps
            .iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .count();
        assert!(running <= 2, "{running} pods active with parallelism 2: {ps:#?}");
        s.get_json(&["job", "pi"])["status"]["succeeded"] == 3
    });
    s.ok(&["wait", "--for=condition=complete", "job/pi", "--timeout=60s"]);
    let j = s.get_json(&["job", "pi"]);
    let conds = conditions(&j);
    for t in ["SuccessCriteriaMet", "Complete"] {
        assert!(
            conds
                .iter()
                .any(|(ty, st, reason)| ty == t && st == "True" && reason == "CompletionsReached"),
            "{conds:?}"
        );
    }
    assert!(j["status"]["completionTime"].is_string(), "{j:#}");
    assert!(j["status"]["startTime"].is_string(), "{j:#}");
    assert_eq!(j["status"]["ready"], 0, "{j:#}");
    assert!(
        j["status"].get("active").is_none() && j["status"].get("failed").is_none(),
        "{j:#}"
    );
    let ps = pods(&s, "batch.kubernetes.io/job-name=pi");
    assert_eq!(ps.len(), 3, "exactly one pod per completion: {ps:#?}");
    for p in &ps {
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert!(
            p["metadata"]["finalizers"].is_null(),
            "tracking finalizer left on {p:#}"
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    }
    let table = s.ok(&["get", "jobs"]);
    assert!(table.contains("Complete") && table.contains("3/3"), "{table}");
}

#[test]
fn job_fails_when_backoff_limit_is_exceeded() {
    let s = server();
    let _node = FakeNode::start(&s, NODE);
    s.apply(&job("bad", 1, 1, 1, "1"));
    s.ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=90s"]);
    let j = s.get_json(&["job", "bad"]);
    let conds = conditions(&j);
    for t in ["FailureTarget", "Failed"] {
        assert!(
            conds
                .iter()
                .any(|(ty, st, reason)| ty == t && st == "True" && reason == "BackoffLimitExceeded"),
            "{conds:?}"
        );
    }
    assert_eq!(j["status"]["failed"], 2, "backoffLimit 1 allows one retry: {j:#}");
    assert!(j["status"].get("completionTime").is_none(), "{j:#}");
    let ps = pods(&s, "batch.kubernetes.io/job-name=bad");
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert!(ps.iter().all(|p| p["status"]["phase"] == "Failed"), "{ps:#?}");
    let table = s.ok(&["get", "jobs"]);
    assert!(table.contains("Failed") && table.contains("0/1"), "{table}");
    let events = s.ok(&["get", "events", "--field-selector", "involvedObject.name=bad"]);
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
}
