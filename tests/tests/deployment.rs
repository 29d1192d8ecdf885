//! Deployments and ReplicaSets end to end: stock kubectl (v1.32) against a real `keel server`, with a stand-in
//! node reporting bound pods Running and Ready. Checks what Kubernetes' deployment and replicaset controllers do:
//! rollouts within maxSurge/maxUnavailable, Recreate, pause/resume, history and undo, scaling, garbage
//! collection, adoption and release, and the API's refusal of invalid objects.
//!
//! Every wait is bounded ([`LIMIT`], a hang guard, not a performance threshold); nothing measures elapsed time.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_tests::fake_node::FakeNode;
use keel_tests::{Server, wait_for};
use serde_json::{Value, json};

/// Bound on any one wait (a hang guard).
const LIMIT: Duration = Duration::from_secs(120);
/// Poll interval of waits.
const STEP: Duration = Duration::from_millis(200);
/// The stand-in node's name.
const NODE: &str = "node-a";
/// Pin pod templates to [`NODE`] with `nodeName`, so pods are bound without a scheduler.
const PIN_NODE: bool = true;

fn start() -> (Server, FakeNode) {
    let server = Server::start().unwrap_or_else(|e| panic!("starting keel server: {e:#}"));
    let node = FakeNode::start(&server, NODE);
    (server, node)
}

fn wait(what: &str, f: impl FnMut() -> bool) {
    wait_for(what, LIMIT, STEP, f).unwrap_or_else(|e| panic!("{e}"));
}

/// A Deployment of `replicas` pods running `image`, labelled `app: <name>`.
fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    let mut pod_spec = json!({"containers": [{"name": "web", "image": image}]});
    if PIN_NODE {
        pod_spec["nodeName"] = json!(NODE);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        }
    })
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn terminating(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn hash(o: &Value) -> &str {
    o["metadata"]["labels"]["pod-template-hash"].as_str().unwrap_or("")
}

/// Pods, ReplicaSets and Deployments labelled `app=<app>`, in one consistent list.
fn snapshot(server: &Server, app: &str) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let all = items(&server.get_json(&["pods,rs,deploy", "-l", &format!("app={app}")]));
    let of = |kind: &str| all.iter().filter(|o| o["kind"] == kind).cloned().collect::<Vec<_>>();
    (of("Pod"), of("ReplicaSet"), of("Deployment"))
}

/// Pods of `app` that are not terminating.
fn live_pods(server: &Server, app: &str) -> Vec<Value> {
    items(&server.get_json(&["pods", "-l", &format!("app={app}")]))
        .into_iter()
        .filter(|p| !terminating(p))
        .collect()
}

fn replicasets(server: &Server, app: &str) -> Vec<Value> {
    items(&server.get_json(&["rs", "-l", &format!("app={app}")]))
}

fn rollout_status(server: &Server, deploy: &str) -> String {
    server.ok(&["rollout", "status", &format!("deploy/{deploy}"), "--timeout=60s"])
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn annotation<'a>(o: &'a Value, key: &str) -> &'a str {
    o["metadata"]["annotations"][key].as_str().unwrap_or("")
}

/// The revisions `kubectl rollout history` lists.
fn history(server: &Server, deploy: &str) -> Vec<i64> {
    server
        .ok(&["rollout", "history", &format!("deploy/{deploy}")])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The image of the Deployment's first container.
fn image(server: &Server, deploy: &str) -> String {
    server.get_json(&["deploy", deploy])["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Wait until `kubectl describe <what>` prints `text`: events are recorded after the work they describe.
fn wait_described(server: &Server, what: &[&str], text: &str) -> String {
    let mut args = vec!["describe"];
    args.extend_from_slice(what);
    let mut out = String::new();
    wait_for(
        &format!("`kubectl describe {}` to show {text:?}", what.join(" ")),
        LIMIT,
        STEP,
        || {
            out = server.ok(&args);
            out.contains(text)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nlast output:\n{out}"));
    out
}

#[test]
fn deployment_becomes_available_and_scales() {
    let (server, _node) = start();
    let mut d = deployment("web", 3, "nginx:1.25");
    // Availability waits a second past readiness: the ReplicaSet must look again by itself.
    d["spec"]["minReadySeconds"] = json!(1);
    server.apply(&d.to_string());
    let out = rollout_status(&server, "web");
    assert!(out.contains("successfully rolled out"), "{out}");

    let dep = server.get_json(&["deploy", "web"]);
    let status = &dep["status"];
    for f in ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"] {
        assert_eq!(status[f], 3, "status.{f}: {status}");
    }
    assert_eq!(status["observedGeneration"], dep["metadata"]["generation"]);
    assert_eq!(annotation(&dep, "deployment.kubernetes.io/revision"), "1");
    let available = condition(&dep, "Available").expect("Available condition");
    assert_eq!(
        (available["status"].as_str(), available["reason"].as_str()),
        (Some("True"), Some("MinimumReplicasAvailable"))
    );
    let progressing = condition(&dep, "Progressing").expect("Progressing condition");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable", "{progressing}");

    let rses = replicasets(&server, "web");
    assert_eq!(rses.len(), 1, "{rses:?}");
    let rs = &rses[0];
    let h = hash(rs);
    assert_eq!(name(rs), format!("web-{h}"));
    assert_eq!(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"], h);
    assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"], h);
    assert_eq!(annotation(rs, "deployment.kubernetes.io/revision"), "1");
    assert_eq!(annotation(rs, "deployment.kubernetes.io/desired-replicas"), "3");
    // maxSurge 25% of 3 rounds up to 1.
    assert_eq!(annotation(rs, "deployment.kubernetes.io/max-replicas"), "4");
    let owner = &rs["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("Deployment"), Some("web"))
    );
    assert_eq!(
        (owner["controller"].as_bool(), owner["blockOwnerDeletion"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(rs["status"]["availableReplicas"], 3, "{}", rs["status"]);

    let pods = live_pods(&server, "web");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let suffix = name(p).strip_prefix(&format!("{}-", name(rs))).unwrap_or_default();
        assert_eq!(suffix.len(), 5, "pod {} is not named <rs>-<random5>", name(p));
        assert_eq!(hash(p), h);
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["name"].as_str()),
            (Some("ReplicaSet"), Some(name(rs)))
        );
        assert_eq!(owner["controller"], true);
    }

    server.ok(&["scale", "deploy/web", "--replicas=5"]);
    rollout_status(&server, "web");
    wait("5 available pods", || {
        let d = server.get_json(&["deploy", "web"]);
        d["status"]["availableReplicas"] == 5 && live_pods(&server, "web").len() == 5
    });
    // Scaling is not a rollout: still one ReplicaSet, revision 1.
    assert_eq!(replicasets(&server, "web").len(), 1);

    server.ok(&["scale", "deploy/web", "--replicas=2"]);
    wait("2 pods left", || {
        let d = server.get_json(&["deploy", "web"]);
        live_pods(&server, "web").len() == 2 && d["status"]["replicas"] == 2 && d["status"]["availableReplicas"] == 2
    });
    let rs_name = name(rs).to_string();
    let described = wait_described(
        &server,
        &["deploy", "web"],
        &format!("Scaled down replica set {rs_name} from 5 to 2"),
    );
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    assert!(
        described.contains(&format!("Scaled up replica set {rs_name} from 0 to 3")),
        "{described}"
    );
    assert!(
        described.contains(&format!("Scaled up replica set {rs_name} from 3 to 5")),
        "{described}"
    );
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("NewReplicaSet:") && l.ends_with(&format!("{rs_name} (2/2 replicas created)"))),
        "{described}"
    );
    wait_described(&server, &["rs", &rs_name], &format!("Created pod: {rs_name}-"));
    wait_described(&server, &["rs", &rs_name], &format!("Deleted pod: {rs_name}-"));
}

#[test]
fn rolling_update_keeps_availability_and_undo_restores_revisions() {
    let (server, _node) = start();
    let mut d = deployment("web", 4, "nginx:1.25");
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    server.apply(&d.to_string());
    rollout_status(&server, "web");
    let first_rs = replicasets(&server, "web")[0].clone();

    server.ok(&["set", "image", "deploy/web", "web=nginx:1.27"]);
    // Sample pods and ReplicaSets until the rollout is complete: available pods never fall below
    // replicas - maxUnavailable = 3, and the ReplicaSets never ask for more than replicas + maxSurge = 5.
    let mut samples = 0;
    let mut hashes_seen = BTreeSet::new();
    wait("the rollout to nginx:1.27 to finish", || {
        let (pods, rses, deps) = snapshot(&server, "web");
        samples += 1;
        let available = pods.iter().filter(|p| !terminating(p) && ready(p)).count();
        assert!(
            available >= 3,
            "{available} available pods during the rollout (sample {samples}): {pods:#?}"
        );
        let asked: i64 = rses.iter().map(|r| r["spec"]["replicas"].as_i64().unwrap_or(0)).sum();
        assert!(
            asked <= 5,
            "ReplicaSets ask for {asked} pods (sample {samples}): {rses:#?}"
        );
        hashes_seen.extend(pods.iter().map(|p| hash(p).to_string()));
        let Some(d) = deps.first() else { return false };
        let s = &d["status"];
        s["observedGeneration"] == d["metadata"]["generation"]
            && s["updatedReplicas"] == 4
            && s["replicas"] == 4
            && s["availableReplicas"] == 4
    });
    assert!(samples > 1, "the rollout finished before it could be sampled");
    rollout_status(&server, "web");
    let rses = replicasets(&server, "web");
    assert_eq!(rses.len(), 2, "{rses:#?}");
    let second_rs = rses
        .iter()
        .find(|r| name(r) != name(&first_rs))
        .expect("a new ReplicaSet")
        .clone();
    assert_eq!(annotation(&second_rs, "deployment.kubernetes.io/revision"), "2");
    assert_eq!(second_rs["spec"]["replicas"], 4);
    let old = rses
        .iter()
        .find(|r| name(r) == name(&first_rs))
        .expect("old ReplicaSet");
    assert_eq!(old["spec"]["replicas"], 0);
    assert!(hashes_seen.contains(hash(&second_rs)), "{hashes_seen:?}");
    for p in live_pods(&server, "web") {
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.27");
    }
    assert_eq!(history(&server, "web"), [1, 2]);
    let dep = server.get_json(&["deploy", "web"]);
    assert_eq!(annotation(&dep, "deployment.kubernetes.io/revision"), "2");
    wait_described(
        &server,
        &["deploy", "web"],
        &format!("Scaled up replica set {} from 0 to 1", name(&second_rs)),
    );

    // Undo: back to the first template, reusing the first ReplicaSet as revision 3.
    server.ok(&["rollout", "undo", "deploy/web"]);
    rollout_status(&server, "web");
    assert_eq!(image(&server, "web"), "nginx:1.25");
    wait("the first ReplicaSet to become revision 3 with all pods", || {
        let rses = replicasets(&server, "web");
        let first = rses.iter().find(|r| name(r) == name(&first_rs));
        rses.len() == 2
            && first.is_some_and(|r| {
                annotation(r, "deployment.kubernetes.io/revision") == "3"
                    && annotation(r, "deployment.kubernetes.io/revision-history") == "1"
                    && r["status"]["availableReplicas"] == 4
            })
    });
    assert_eq!(history(&server, "web"), [2, 3]);
    for p in live_pods(&server, "web") {
        assert_eq!(hash(&p), hash(&first_rs));
    }

    // Undo to a named revision.
    server.ok(&["rollout", "undo", "deploy/web", "--to-revision=2"]);
    rollout_status(&server, "web");
    assert_eq!(image(&server, "web"), "nginx:1.27");
    wait("the second ReplicaSet to become revision 4", || {
        replicasets(&server, "web")
            .iter()
            .any(|r| name(r) == name(&second_rs) && annotation(r, "deployment.kubernetes.io/revision") == "4")
    });
    assert_eq!(history(&server, "web"), [3, 4]);
    assert_eq!(replicasets(&server, "web").len(), 2);
    let dep = server.get_json(&["deploy", "web"]);
    assert_eq!(annotation(&dep, "deployment.kubernetes.io/revision"), "4");
}

#[test]
fn paused_deployment_scales_but_does_not_roll_out() {
    let (server, _node) = start();
    server.apply(&deployment("web", 2, "nginx:1.25").to_string());
    rollout_status(&server, "web");
    let first = replicasets(&server, "web")[0].clone();

    server.ok(&["rollout", "pause", "deploy/web"]);
    server.ok(&["set", "image", "deploy/web", "web=nginx:1.27"]);
    wait("the paused deployment's change to be observed", || {
        let d = server.get_json(&["deploy", "web"]);
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && condition(&d, "Progressing").is_some_and(|c| c["reason"] == "DeploymentPaused")
    });
    let d = server.get_json(&["deploy", "web"]);
    let progressing = condition(&d, "Progressing").expect("Progressing condition");
    assert_eq!(progressing["status"], "Unknown");
    assert_eq!(progressing["message"], "Deployment is paused");
    assert_eq!(
        replicasets(&server, "web").len(),
        1,
        "a paused deployment created a ReplicaSet"
    );

    // Scaling still happens while paused, on the ReplicaSet that has the pods.
    server.ok(&["scale", "deploy/web", "--replicas=4"]);
    wait("the old ReplicaSet to grow to 4 while paused", || {
        let rses = replicasets(&server, "web");
        rses.len() == 1 && rses[0]["spec"]["replicas"] == 4 && rses[0]["status"]["readyReplicas"] == 4
    });
    for p in live_pods(&server, "web") {
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.25");
    }

    server.ok(&["rollout", "resume", "deploy/web"]);
    rollout_status(&server, "web");
    wait("the rollout to finish after resuming", || {
        let d = server.get_json(&["deploy", "web"]);
        condition(&d, "Progressing").is_some_and(|c| c["reason"] == "NewReplicaSetAvailable")
            && d["status"]["updatedReplicas"] == 4
    });
    let rses = replicasets(&server, "web");
    assert_eq!(rses.len(), 2);
    let old = rses.iter().find(|r| name(r) == name(&first)).expect("old ReplicaSet");
    assert_eq!(old["spec"]["replicas"], 0);
    let pods = live_pods(&server, "web");
    assert_eq!(pods.len(), 4);
    for p in pods {
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1.27");
    }
}

#[test]
fn recreate_removes_old_pods_before_creating_new_ones() {
    let (server, _node) = start();
    let mut d = deployment("db", 3, "postgres:16");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    server.apply(&d.to_string());
    rollout_status(&server, "db");
    let old_hash = hash(&replicasets(&server, "db")[0]).to_string();

    server.ok(&["set", "image", "deploy/db", "web=postgres:17"]);
    let mut samples = 0;
    wait("the Recreate rollout to finish", || {
        let (pods, _, deps) = snapshot(&server, "db");
        samples += 1;
        let old = pods.iter().filter(|p| hash(p) == old_hash).count();
        let new = pods.len() - old;
        assert!(
            old == 0 || new == 0,
            "old and new pods exist together under Recreate (sample {samples}): {pods:#?}"
        );
        let Some(d) = deps.first() else { return false };
        let s = &d["status"];
        s["observedGeneration"] == d["metadata"]["generation"]
            && s["updatedReplicas"] == 3
            && s["availableReplicas"] == 3
    });
    rollout_status(&server, "db");
    let pods = live_pods(&server, "db");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(p["spec"]["containers"][0]["image"], "postgres:17");
        assert_ne!(hash(p), old_hash);
    }
    let described = wait_described(&server, &["deploy", "db"], "Scaled down replica set db-");
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("StrategyType:") && l.ends_with("Recreate")),
        "{described}"
    );
}

#[test]
fn revision_history_limit_prunes_old_replica_sets() {
    let (server, _node) = start();
    let mut d = deployment("web", 1, "nginx:1");
    d["spec"]["revisionHistoryLimit"] = json!(1);
    server.apply(&d.to_string());
    rollout_status(&server, "web");
    for image in ["nginx:2", "nginx:3", "nginx:4"] {
        server.ok(&["set", "image", "deploy/web", &format!("web={image}")]);
        rollout_status(&server, "web");
    }
    wait("old ReplicaSets beyond the history limit to be deleted", || {
        replicasets(&server, "web").len() == 2
    });
    assert_eq!(history(&server, "web"), [3, 4]);
}

#[test]
fn deleting_a_deployment_removes_its_replicasets_and_pods() {
    let (server, _node) = start();
    server.apply(&deployment("web", 3, "nginx:1.25").to_string());
    rollout_status(&server, "web");
    assert_eq!(live_pods(&server, "web").len(), 3);
    server.ok(&["delete", "deploy", "web"]);
    wait("ReplicaSets and pods of the deleted deployment to be gone", || {
        let (pods, rses, deps) = snapshot(&server, "web");
        pods.is_empty() && rses.is_empty() && deps.is_empty()
    });
}

#[test]
fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let (server, _node) = start();
    let mut d = deployment("stuck", 1, "nginx:1.25");
    // Bound to a node nobody runs: the pod stays Pending.
    d["spec"]["template"]["spec"]["nodeName"] = json!("node-nowhere");
    d["spec"]["progressDeadlineSeconds"] = json!(2);
    server.apply(&d.to_string());
    wait("the Progressing condition to time out", || {
        let d = server.get_json(&["deploy", "stuck"]);
        condition(&d, "Progressing")
            .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded" && c["status"] == "False")
    });
    let d = server.get_json(&["deploy", "stuck"]);
    let available = condition(&d, "Available").expect("Available condition");
    assert_eq!(available["reason"], "MinimumReplicasUnavailable");
    assert_eq!(d["status"]["unavailableReplicas"], 1);
    let err = server.fails(&["rollout", "status", "deploy/stuck", "--timeout=60s"]);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
}

#[test]
fn replicaset_adopts_releases_and_deletes_least_useful_pods_first() {
    let (server, _node) = start();
    // An orphan the ReplicaSet will adopt; bound to a node nobody runs, so it stays Pending.
    let orphan = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pending-orphan", "labels": {"app": "frontend"}},
        "spec": {"nodeName": "node-nowhere", "containers": [{"name": "c", "image": "nginx"}]}});
    server.apply(&orphan.to_string());
    let mut pod_spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
    if PIN_NODE {
        pod_spec["nodeName"] = json!(NODE);
    }
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "frontend", "labels": {"app": "frontend"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "frontend"}},
                 "template": {"metadata": {"labels": {"app": "frontend"}}, "spec": pod_spec}}});
    server.apply(&rs.to_string());
    wait("the ReplicaSet to adopt the orphan and create two pods", || {
        let pods = live_pods(&server, "frontend");
        let rs = server.get_json(&["rs", "frontend"]);
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p["metadata"]["ownerReferences"][0]["name"] == "frontend")
            && rs["status"]["readyReplicas"] == 2
            && rs["status"]["replicas"] == 3
    });
    let adopted = server.get_json(&["pod", "pending-orphan"]);
    let owner = &adopted["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("ReplicaSet"), Some(true))
    );
    assert_eq!(owner["blockOwnerDeletion"], true);
    let rs = server.get_json(&["rs", "frontend"]);
    let s = &rs["status"];
    assert_eq!(
        (s["fullyLabeledReplicas"].as_i64(), s["availableReplicas"].as_i64()),
        (Some(3), Some(2)),
        "{s}"
    );
    assert_eq!(s["observedGeneration"], rs["metadata"]["generation"]);
    for p in live_pods(&server, "frontend")
        .iter()
        .filter(|p| name(p) != "pending-orphan")
    {
        let suffix = name(p).strip_prefix("frontend-").unwrap_or_default();
        assert_eq!(suffix.len(), 5, "pod {} is not named frontend-<random5>", name(p));
    }

    // Scaling down deletes the pending pod first, not a running one.
    server.ok(&["scale", "rs/frontend", "--replicas=2"]);
    wait("the pending pod to be deleted", || {
        let pods = live_pods(&server, "frontend");
        pods.len() == 2 && pods.iter().all(|p| name(p) != "pending-orphan" && ready(p))
    });

    // A pod relabelled out of the selector is released and replaced.
    let victim = name(&live_pods(&server, "frontend")[0]).to_string();
    server.ok(&["label", "pod", &victim, "app=elsewhere", "--overwrite"]);
    wait("the relabelled pod to be released and replaced", || {
        let released = server.get_json(&["pod", &victim]);
        let pods = live_pods(&server, "frontend");
        released["metadata"]["ownerReferences"].is_null() && pods.len() == 2 && pods.iter().all(|p| name(p) != victim)
    });
    wait_described(&server, &["rs", "frontend"], "Deleted pod: pending-orphan");
    wait_described(&server, &["rs", "frontend"], "SuccessfulCreate");
}

#[test]
fn invalid_deployments_are_refused_and_create_nothing() {
    let server = Server::start().unwrap_or_else(|e| panic!("starting keel server: {e:#}"));
    let mut mismatched = deployment("bad", 2, "nginx");
    mismatched["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let mut negative = deployment("bad", -1, "nginx");
    negative["metadata"]["name"] = json!("bad");
    let mut duplicate = deployment("bad", 1, "nginx");
    duplicate["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "web", "image": "nginx"}, {"name": "web", "image": "busybox"}]);
    let cases = [
        (
            mismatched,
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ),
        (negative, "spec.replicas", "must be greater than or equal to 0"),
        (
            duplicate,
            "spec.template.spec.containers[1].name",
            "Duplicate value: \"web\"",
        ),
    ];
    for (body, field, detail) in &cases {
        let reply = server.curl(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            true,
            Some(("application/json", body.to_string().as_bytes())),
        );
        assert_eq!(reply.code, 422, "{}", reply.body);
        let status = reply.json();
        assert_eq!(status["reason"], "Invalid");
        let message = status["message"].as_str().unwrap_or("");
        assert!(message.contains(field) && message.contains(detail), "{message}");
        assert!(
            status["details"]["causes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["field"] == *field)),
            "{status}"
        );
        let out = server.kubectl_stdin(&["apply", "-f", "-"], Some(&body.to_string()));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is invalid") && stderr.contains(field), "{stderr}");
    }
    let left = server.ok(&["get", "deploy,rs,pods", "-o", "name"]);
    assert!(left.trim().is_empty(), "objects were created: {left}");
}
