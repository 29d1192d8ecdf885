//! The DaemonSet controller, as kube-controller-manager's `daemonset` controller does it.
//!
//! - **Eligibility** (`NodeShouldRunDaemonPod`): the pod template, with the tolerations every daemon pod gets
//!   (`not-ready`/`unreachable` `NoExecute`; `disk-pressure`, `memory-pressure`, `pid-pressure`,
//!   `unschedulable` `NoSchedule`; `network-unavailable` `NoSchedule` with host networking), is checked against
//!   the node's name, `nodeSelector`, required node affinity and `NoSchedule`/`NoExecute` taints. A pod already
//!   on a node may stay while it tolerates the `NoExecute` taints.
//! - **Placement the Kubernetes way**: each pod is created unbound with its required node affinity replaced by
//!   `matchFields metadata.name In [<node>]` (`ReplaceDaemonSetPodNodeNameNodeAffinity`); the scheduler binds it.
//!   Pods are named `<ds>-<random>` and labelled `controller-revision-hash: <hash>` (and
//!   `pod-template-generation` when the DaemonSet carries `deprecated.daemonset.template.generation`).
//! - **Manage**: create a pod on each eligible node without one, delete finished pods (they are replaced), extra
//!   pods (the oldest scheduled one stays), pods on nodes that may no longer run them, and pods of nodes that no
//!   longer exist (without grace, as the pod garbage collector does).
//! - **RollingUpdate** (`maxSurge` 0): old pods are deleted while at most `maxUnavailable` (an integer or a
//!   percentage of the desired count, rounded up; at least 1) daemon pods are unavailable; unavailable old pods are
//!   always replaced. `OnDelete` leaves old pods alone. Template history lives in ControllerRevisions
//!   `<ds>-<hash>`.
//! - **Status**: desired/current/updated number scheduled, numberReady, numberAvailable, numberUnavailable,
//!   numberMisscheduled, observedGeneration, as `kubectl rollout status ds/<name>` reads them.
//!
//! Not done: `maxSurge` > 0 (pods are replaced delete-first), the back-off between re-creations of pods that keep
//! failing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use api_core::selector::LabelSelector;
use serde_json::{Value, json};
use tracing::Instrument;

use super::scheduler::{NodeAffinity, Taint, Toleration, tolerated};
use super::statefulset::owner_keys;
use super::statefulset::workload;
use super::{Change, Informers, Queue, event, feed, key_of, res, run_worker};
use crate::api::Api;
use crate::api::object::meta_str;
use crate::api::request::Query;

/// The DaemonSet annotation Kubernetes' API server keeps the template generation in.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The pod label carrying the template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Event source.
const COMPONENT: &str = "daemonset-controller";

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): key and effect, operator `Exists`.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added too when the pod uses the host network.
const HOST_NETWORK_TOLERATION: (&str, &str) = ("node.kubernetes.io/network-unavailable", "NoSchedule");

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let (queue, rx) = Queue::new();
    feed(&inf.daemonsets, queue.clone(), |c| {
        c.object().map(|o| key_of(o)).into_iter().collect()
    });
    feed(&inf.pods, queue.clone(), |c| owner_keys(c, "DaemonSet"));
    feed(&inf.controllerrevisions, queue.clone(), |c| owner_keys(c, "DaemonSet"));
    let daemonsets = inf.daemonsets.clone();
    feed(&inf.nodes, queue.clone(), move |c| {
        if node_changed(c) {
            daemonsets.list(None).iter().map(|d| key_of(d)).collect()
        } else {
            vec![]
        }
    });
    for d in inf.daemonsets.list(None) {
        queue.add(key_of(&d));
    }
    tokio::spawn(run_worker("daemonset", queue, rx, move |key| {
        let api = api.clone();
        let inf = inf.clone();
        async move {
            reconcile(&api, &inf, &key)
                .instrument(tracing::info_span!("daemonset", key = %key))
                .await
        }
    }));
}

/// Whether a node change can change where daemon pods belong (added, removed, labels, taints, unschedulable).
fn node_changed(c: &Change) -> bool {
    match (&c.old, &c.new) {
        (Some(o), Some(n)) => {
            o.pointer("/metadata/labels") != n.pointer("/metadata/labels")
                || o.pointer("/spec/taints") != n.pointer("/spec/taints")
                || o.pointer("/spec/unschedulable") != n.pointer("/spec/unschedulable")
        }
        _ => true,
    }
}

/// The template's pod spec with the daemon tolerations added (`AddOrUpdateTolerationInPodSpec`: an identical
/// toleration is kept once, others are appended).
pub fn with_daemon_tolerations(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let mut tols: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let extra = DAEMON_TOLERATIONS
        .iter()
        .chain(host_network.then_some(&HOST_NETWORK_TOLERATION));
    for (key, effect) in extra {
        let t = json!({"key": key, "operator": "Exists", "effect": effect});
        let same = |o: &Value| {
            o["key"] == t["key"]
                && o["operator"] == t["operator"]
                && o["effect"] == t["effect"]
                && o.get("value").and_then(Value::as_str).unwrap_or("").is_empty()
        };
        match tols.iter_mut().find(|o| same(o)) {
            Some(o) => *o = t,
            None => tols.push(t),
        }
    }
    spec["tolerations"] = json!(tols);
    spec
}

/// `NodeShouldRunDaemonPod` for a daemon pod spec (with the daemon tolerations): `(should_run,
/// should_continue_running)`.
pub fn node_should_run(node: &Value, pod_spec: &Value) -> (bool, bool) {
    let node_name = meta_str(node, "name").unwrap_or("");
    if let Some(n) = pod_spec
        .get("nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        && n != node_name
    {
        return (false, false);
    }
    let labels = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !NodeAffinity::of(pod_spec).matches(&labels, node_name) {
        return (false, false);
    }
    let tolerations = Toleration::list(pod_spec);
    let untolerated: Vec<Taint> = Taint::list(node)
        .into_iter()
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .filter(|t| !tolerated(&tolerations, t))
        .collect();
    if untolerated.is_empty() {
        return (true, true);
    }
    (false, !untolerated.iter().any(|t| t.effect == "NoExecute"))
}

/// The node a daemon pod is for: `spec.nodeName`, else the single name of its `matchFields metadata.name In`.
pub fn target_node(pod: &Value) -> Option<&str> {
    if let Some(n) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Some(n);
    }
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    terms.iter().find_map(|t| {
        t["matchFields"].as_array()?.iter().find_map(|r| {
            let values = r["values"].as_array()?;
            match (r["key"].as_str(), r["operator"].as_str(), values.as_slice()) {
                (Some("metadata.name"), Some("In"), [v]) => v.as_str(),
                _ => None,
            }
        })
    })
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the one node, by name.
pub fn pin_to_node(spec: &mut Value, node: &str) {
    let term = json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]);
    if !spec["affinity"].is_object() {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]["nodeAffinity"].is_object() {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!({"nodeSelectorTerms": term});
}

/// The daemon pod for `node` from the DaemonSet's current template.
pub fn new_pod(ds: &Value, hash: &str, node: &str) -> Value {
    let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut pod = workload::pod_from_template(&template, workload::owner_reference(ds, "apps/v1", "DaemonSet"));
    pod["metadata"]["generateName"] = json!(format!("{}-", meta_str(ds, "name").unwrap_or("")));
    pod["metadata"]["labels"][workload::CONTROLLER_REVISION_HASH] = json!(hash);
    if let Some(g) = ds
        .pointer(&format!(
            "/metadata/annotations/{}",
            TEMPLATE_GENERATION_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
    {
        pod["metadata"]["labels"][TEMPLATE_GENERATION_LABEL] = json!(g);
    }
    let mut spec = with_daemon_tolerations(&pod["spec"]);
    pin_to_node(&mut spec, node);
    pod["spec"] = spec;
    pod
}

/// `IsPodUpdated`: the pod carries the current hash (or the current template generation).
pub fn is_updated(ds: &Value, pod: &Value, hash: &str) -> bool {
    let labels = pod.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l[k].as_str());
    let generation = ds
        .pointer(&format!(
            "/metadata/annotations/{}",
            TEMPLATE_GENERATION_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    (!hash.is_empty() && label(workload::CONTROLLER_REVISION_HASH) == Some(hash))
        || (generation.is_some() && label(TEMPLATE_GENERATION_LABEL) == generation)
}

/// `intstr.GetScaledValueFromIntOrPercent`: an integer, or a percentage of `total` rounded up or down.
pub fn scaled_value(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = pct * total;
            if round_up {
                (x + 99).div_euclid(100)
            } else {
                x.div_euclid(100)
            }
        }
        _ => 0,
    }
}

/// One change to the DaemonSet's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a daemon pod for this node.
    Create {
        /// Node name.
        node: String,
    },
    /// Delete this pod.
    Delete {
        /// Pod name.
        name: String,
        /// Pod uid (a delete precondition).
        uid: String,
        /// Skip the grace period (the pod's node is gone).
        force: bool,
        /// Why, for the log.
        why: &'static str,
    },
}

fn delete_step(p: &Value, force: bool, why: &'static str) -> Step {
    Step::Delete {
        name: meta_str(p, "name").unwrap_or("").to_string(),
        uid: meta_str(p, "uid").unwrap_or("").to_string(),
        force,
        why,
    }
}

/// `podByCreationTimestampAndPhase`: scheduled pods first, then the oldest, then by name.
fn sort_pods(pods: &mut [&Arc<Value>]) {
    pods.sort_by(|a, b| {
        let bound = |p: &Value| {
            p.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        };
        bound(b)
            .cmp(&bound(a))
            .then_with(|| workload::created_at(a).cmp(&workload::created_at(b)))
            .then_with(|| meta_str(a, "name").cmp(&meta_str(b, "name")))
    });
}

/// Pods by the node they are for, nodes in name order.
fn by_node(pods: &[Arc<Value>]) -> BTreeMap<&str, Vec<&Arc<Value>>> {
    let mut m: BTreeMap<&str, Vec<&Arc<Value>>> = BTreeMap::new();
    for p in pods {
        if let Some(n) = target_node(p) {
            m.entry(n).or_default().push(p);
        }
    }
    m
}

/// `manage` (`podsShouldBeOnNode` per node): the creations and deletions that put one daemon pod on each eligible
/// node and none elsewhere.
pub fn manage(ds: &Value, nodes: &[Arc<Value>], pods: &[Arc<Value>]) -> Vec<Step> {
    let spec = with_daemon_tolerations(ds.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    let mut on_node = by_node(pods);
    let mut steps = Vec::new();
    let mut names: Vec<&Arc<Value>> = nodes.iter().collect();
    names.sort_by(|a, b| meta_str(a, "name").cmp(&meta_str(b, "name")));
    for node in names {
        let name = meta_str(node, "name").unwrap_or("");
        let (should_run, should_continue) = node_should_run(node, &spec);
        let daemon_pods = on_node.remove(name).unwrap_or_default();
        let exists = !daemon_pods.is_empty();
        if should_run && !exists {
            steps.push(Step::Create { node: name.to_string() });
        } else if should_continue {
            let mut running: Vec<&Arc<Value>> = Vec::new();
            for p in daemon_pods {
                if workload::is_terminating(p) {
                    continue;
                }
                if workload::is_terminal(p) {
                    steps.push(delete_step(p, false, "finished"));
                } else {
                    running.push(p);
                }
            }
            sort_pods(&mut running);
            for p in running.iter().skip(1) {
                steps.push(delete_step(p, false, "extra"));
            }
        } else if exists {
            for p in daemon_pods.iter().filter(|p| !workload::is_terminating(p)) {
                steps.push(delete_step(p, false, "node not eligible"));
            }
        }
    }
    // Whatever is left is for nodes that no longer exist.
    for p in on_node.into_values().flatten() {
        if !workload::is_terminating(p) || p.pointer("/spec/nodeName").is_some() {
            steps.push(delete_step(p, true, "node gone"));
        }
    }
    steps
}

/// `rollingUpdate` without surge: the old pods to delete now.
pub fn rolling_update(
    ds: &Value,
    nodes: &[Arc<Value>],
    pods: &[Arc<Value>],
    hash: &str,
    now: jiff::Timestamp,
) -> Vec<Step> {
    if ds.pointer("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete") {
        return vec![];
    }
    let spec = with_daemon_tolerations(ds.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    let min_ready = ds.pointer("/spec/minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
    let eligible: HashSet<&str> = nodes
        .iter()
        .filter(|n| node_should_run(n, &spec).0)
        .filter_map(|n| meta_str(n, "name"))
        .collect();
    let mut max_unavailable = scaled_value(
        ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable"),
        i64::try_from(eligible.len()).unwrap_or(i64::MAX),
        true,
    );
    if max_unavailable <= 0 {
        max_unavailable = 1;
    }
    let mut unavailable = 0;
    let mut replace_now: Vec<Step> = Vec::new();
    let mut candidates: Vec<Step> = Vec::new();
    for (node, node_pods) in by_node(pods) {
        if !eligible.contains(node) {
            continue;
        }
        let mut new_pod = None;
        let mut old_pod = None;
        let mut several = false;
        for p in node_pods.into_iter().filter(|p| !workload::is_terminating(p)) {
            let slot = if is_updated(ds, p, hash) {
                &mut new_pod
            } else {
                &mut old_pod
            };
            several |= slot.replace(p).is_some();
        }
        if several {
            unavailable += 1;
            continue;
        }
        match (new_pod, old_pod) {
            (None, None) | (Some(_), Some(_)) => unavailable += 1,
            (Some(n), None) => {
                if !workload::is_available(n, min_ready, now) {
                    unavailable += 1;
                }
            }
            (None, Some(o)) => {
                if !workload::is_available(o, min_ready, now) {
                    replace_now.push(delete_step(o, false, "update (unavailable)"));
                } else if unavailable < max_unavailable {
                    candidates.push(delete_step(o, false, "update"));
                }
            }
        }
    }
    let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
    replace_now.extend(candidates.into_iter().take(room));
    replace_now
}

/// `updateDaemonSetStatus`: the counts over eligible nodes, judged on each node's first daemon pod.
pub fn compute_status(ds: &Value, nodes: &[Arc<Value>], pods: &[Arc<Value>], hash: &str, collisions: i64) -> Value {
    let now = jiff::Timestamp::now();
    let spec = with_daemon_tolerations(ds.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    let min_ready = ds.pointer("/spec/minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
    let counted: Vec<Arc<Value>> = pods
        .iter()
        .filter(|p| !(workload::is_terminating(p) && workload::is_terminal(p)))
        .cloned()
        .collect();
    let on_node = by_node(&counted);
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) = (0, 0, 0, 0, 0, 0);
    for node in nodes {
        let name = meta_str(node, "name").unwrap_or("");
        let (should_run, _) = node_should_run(node, &spec);
        let mut daemon_pods = on_node.get(name).cloned().unwrap_or_default();
        if !should_run {
            if !daemon_pods.is_empty() {
                misscheduled += 1;
            }
            continue;
        }
        desired += 1;
        sort_pods(&mut daemon_pods);
        let Some(first) = daemon_pods.first() else {
            continue;
        };
        current += 1;
        if workload::is_ready(first) {
            ready += 1;
            if workload::is_available(first, min_ready, now) {
                available += 1;
            }
        }
        if is_updated(ds, first, hash) {
            updated += 1;
        }
    }
    let mut status = json!({
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": ds.pointer("/metadata/generation").cloned().unwrap_or(json!(0)),
    });
    // The remaining int32 counters are omitempty in the v1 API.
    for (k, v) in [
        ("updatedNumberScheduled", updated),
        ("numberAvailable", available),
        ("numberUnavailable", desired - available),
    ] {
        if v != 0 {
            status[k] = json!(v);
        }
    }
    if collisions > 0 {
        status["collisionCount"] = json!(collisions);
    }
    if let Some(c) = ds.pointer("/status/conditions").filter(|c| !c.is_null()) {
        status["conditions"] = c.clone();
    }
    status
}

/// The hash a DaemonSet revision stands for (its `controller-revision-hash` label, else its name's suffix).
fn hash_of(ds: &Value, rev: &Value) -> String {
    rev.pointer("/metadata/labels")
        .and_then(|l| l[workload::CONTROLLER_REVISION_HASH].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let prefix = format!("{}-", meta_str(ds, "name").unwrap_or(""));
            meta_str(rev, "name")
                .and_then(|n| n.strip_prefix(&prefix))
                .unwrap_or("")
                .to_string()
        })
}

async fn reconcile(api: &Arc<Api>, inf: &Informers, key: &str) -> Result<Option<Duration>, String> {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let Some(ds) = inf.daemonsets.get(ns, name) else {
        return Ok(None);
    };
    if workload::is_terminating(&ds) {
        return Ok(None);
    }
    let selector = match LabelSelector::from_object(ds.pointer("/spec/selector").unwrap_or(&Value::Null)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "daemonset has an invalid selector");
            return Ok(None);
        }
    };
    let owner = workload::owner_reference(&ds, "apps/v1", "DaemonSet");
    let uid = meta_str(&ds, "uid").unwrap_or("").to_string();
    let pods = workload::claim(
        api,
        res("v1", "Pod"),
        inf.pods.list(Some(ns)),
        &selector,
        &|_| true,
        &uid,
        &owner,
    )
    .await;
    let revisions = workload::claim(
        api,
        res("apps/v1", "ControllerRevision"),
        inf.controllerrevisions.list(Some(ns)),
        &selector,
        &|_| true,
        &uid,
        &owner,
    )
    .await;
    let revs = workload::sync_revisions(
        api,
        inf,
        &ds,
        "DaemonSet",
        &revisions,
        workload::CONTROLLER_REVISION_HASH,
    )
    .await?;
    let hash = hash_of(&ds, &revs.update);
    let nodes = inf.nodes.list(None);

    let status = compute_status(&ds, &nodes, &pods, &hash, revs.collision_count);
    if ds.get("status") != Some(&status) {
        let rp = workload::path(res("apps/v1", "DaemonSet"), ns, name);
        api.modify_status_with(&rp, name, |cur| {
            let mut o = cur.clone();
            o["status"] = status.clone();
            Ok(o)
        })
        .await
        .map_err(|e| format!("updating status of daemonset {key}: {}", e.message))?;
    }

    let mut steps = manage(&ds, &nodes, &pods);
    if steps.is_empty() {
        steps = rolling_update(&ds, &nodes, &pods, &hash, jiff::Timestamp::now());
    }
    let mut first_error = None;
    for step in &steps {
        if let Err(e) = apply_step(api, inf, &ds, &hash, step).await {
            first_error.get_or_insert(e);
        }
    }
    prune_history(api, &ds, &revisions, &pods, &revs.update, &hash).await;
    if let Some(e) = first_error {
        return Err(e);
    }
    let min_ready = ds.pointer("/spec/minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
    let waiting_available = min_ready > 0
        && pods
            .iter()
            .any(|p| workload::is_ready(p) && !workload::is_available(p, min_ready, jiff::Timestamp::now()));
    Ok(waiting_available.then(|| Duration::from_secs(1)))
}

async fn apply_step(api: &Arc<Api>, inf: &Informers, ds: &Value, hash: &str, step: &Step) -> Result<(), String> {
    let ns = meta_str(ds, "namespace").unwrap_or("default");
    let ds_name = meta_str(ds, "name").unwrap_or("");
    match step {
        Step::Create { node } => {
            let pod = new_pod(ds, hash, node);
            match api
                .create(&workload::collection(res("v1", "Pod"), ns), pod, &Query::internal())
                .await
            {
                Ok(r) => {
                    let pod_name = meta_str(&r.body, "name").unwrap_or("").to_string();
                    tracing::info!(pod = %pod_name, node = %node, "created daemon pod");
                    event(
                        api,
                        ds,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {pod_name}"),
                        COMPONENT,
                    )
                    .await;
                    workload::await_cache(&inf.pods, ns, &pod_name, |p| p.is_some()).await;
                    Ok(())
                }
                Err(e) => {
                    let msg = format!("Error creating: {}", e.message);
                    event(api, ds, "Warning", "FailedCreate", &msg, COMPONENT).await;
                    Err(format!(
                        "creating a pod of daemonset {ns}/{ds_name} on {node}: {}",
                        e.message
                    ))
                }
            }
        }
        Step::Delete { name, uid, force, why } => {
            workload::delete_pod(api, ns, name, uid, *force).await?;
            tracing::info!(pod = %name, why, "deleted daemon pod");
            event(
                api,
                ds,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {name}"),
                COMPONENT,
            )
            .await;
            let uid = uid.clone();
            workload::await_cache(&inf.pods, ns, name, |p| {
                p.is_none_or(|p| workload::is_terminating(p) || meta_str(p, "uid") != Some(uid.as_str()))
            })
            .await;
            Ok(())
        }
    }
}

/// `cleanupHistory`: delete the oldest revisions beyond `revisionHistoryLimit` that no pod uses.
async fn prune_history(
    api: &Api,
    ds: &Value,
    revisions: &[Arc<Value>],
    pods: &[Arc<Value>],
    update: &Value,
    hash: &str,
) {
    let mut live_hashes: HashSet<&str> = pods
        .iter()
        .filter_map(|p| {
            p.pointer("/metadata/labels")
                .and_then(|l| l[workload::CONTROLLER_REVISION_HASH].as_str())
        })
        .collect();
    live_hashes.insert(hash);
    let mut live: HashSet<String> = revisions
        .iter()
        .filter(|r| live_hashes.contains(hash_of(ds, r).as_str()))
        .filter_map(|r| meta_str(r, "name").map(str::to_string))
        .collect();
    live.insert(meta_str(update, "name").unwrap_or("").to_string());
    let limit = ds
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    let ns = meta_str(ds, "namespace").unwrap_or("default");
    for name in workload::revisions_to_prune(revisions, &live, limit) {
        workload::delete_object(api, res("apps/v1", "ControllerRevision"), ns, &name).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
    }

    fn ds(spec: Value) -> Value {
        json!({"metadata": {"name": "agent", "namespace": "default", "uid": "u1", "generation": 1},
               "spec": {"template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}})
    }

    fn daemon_pod(name: &str, node: &str, hash: &str, ready: bool) -> Arc<Value> {
        let mut p = new_pod(&ds(json!({"containers": []})), hash, node);
        p["metadata"]["name"] = json!(name);
        p["metadata"]["uid"] = json!(format!("uid-{name}"));
        p["spec"]["nodeName"] = json!(node);
        p["status"] = json!({"phase": "Running",
                             "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]});
        Arc::new(p)
    }

    #[test]
    fn daemon_tolerations_are_added_once() {
        let s = with_daemon_tolerations(&json!({"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]}));
        let tols = s["tolerations"].as_array().unwrap();
        assert_eq!(tols.len(), 7);
        assert!(tols.iter().any(|t| t["key"] == "dedicated"));
        let s = with_daemon_tolerations(&json!({"hostNetwork": true}));
        assert!(
            s["tolerations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/network-unavailable")
        );
    }

    #[test]
    fn eligibility_follows_selector_affinity_and_taints() {
        let spec = with_daemon_tolerations(&json!({"nodeSelector": {"role": "edge"}}));
        assert_eq!(
            node_should_run(&node("a", json!({"role": "edge"}), json!([])), &spec),
            (true, true)
        );
        assert_eq!(
            node_should_run(&node("b", json!({"role": "core"}), json!([])), &spec),
            (false, false)
        );
        let plain = with_daemon_tolerations(&json!({}));
        let tainted = node(
            "c",
            json!({}),
            json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
        );
        assert_eq!(node_should_run(&tainted, &plain), (false, true));
        let evicting = node("d", json!({}), json!([{"key": "dedicated", "effect": "NoExecute"}]));
        assert_eq!(node_should_run(&evicting, &plain), (false, false));
        // The daemon tolerations cover an unschedulable or not-ready node.
        let cordoned = node(
            "e",
            json!({}),
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        );
        assert_eq!(node_should_run(&cordoned, &plain), (true, true));
        let aff = with_daemon_tolerations(
            &json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}),
        );
        assert!(node_should_run(&node("f", json!({"zone": "z1"}), json!([])), &aff).0);
        assert!(!node_should_run(&node("g", json!({"zone": "z2"}), json!([])), &aff).0);
    }

    #[test]
    fn pods_are_pinned_by_affinity() {
        let d = ds(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}),
        );
        let p = new_pod(&d, "h1", "node-a");
        assert_eq!(target_node(&p), Some("node-a"));
        assert!(p.pointer("/spec/nodeName").is_none());
        let terms = &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
        assert_eq!(terms.as_array().unwrap().len(), 1);
        assert_eq!(p["metadata"]["generateName"], "agent-");
        assert_eq!(p["metadata"]["labels"]["controller-revision-hash"], "h1");
        assert_eq!(p["metadata"]["labels"]["app"], "agent");
    }

    #[test]
    fn manage_creates_and_deletes_per_node() {
        let d = ds(json!({"containers": []}));
        let nodes = vec![
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node("t", json!({}), json!([{"key": "k", "effect": "NoExecute"}])),
        ];
        let pods = vec![
            daemon_pod("p1", "a", "h", true),
            daemon_pod("p2", "a", "h", true),
            daemon_pod("p3", "t", "h", true),
            daemon_pod("p4", "gone", "h", true),
        ];
        let steps = manage(&d, &nodes, &pods);
        assert!(steps.contains(&Step::Create { node: "b".into() }));
        let deleted: Vec<&str> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted.len(), 3, "{steps:?}");
        assert!(deleted.contains(&"p3") && deleted.contains(&"p4"));
        assert!(steps.contains(&Step::Delete {
            name: "p4".into(),
            uid: "uid-p4".into(),
            force: true,
            why: "node gone"
        }));
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let mut d = ds(json!({"containers": []}));
        d["spec"]["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}});
        let nodes = vec![
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node("c", json!({}), json!([])),
        ];
        let now = jiff::Timestamp::now();
        let old = vec![
            daemon_pod("pa", "a", "old", true),
            daemon_pod("pb", "b", "old", true),
            daemon_pod("pc", "c", "old", true),
        ];
        assert_eq!(rolling_update(&d, &nodes, &old, "new", now).len(), 1);
        // One node is already being replaced (new pod not ready): nothing more.
        let mid = vec![
            daemon_pod("pa", "a", "new", false),
            daemon_pod("pb", "b", "old", true),
            daemon_pod("pc", "c", "old", true),
        ];
        assert!(rolling_update(&d, &nodes, &mid, "new", now).is_empty());
        // 100%: all at once; an unready old pod is always replaced.
        d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!("100%");
        assert_eq!(rolling_update(&d, &nodes, &old, "new", now).len(), 3);
        d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(1);
        let unready = vec![
            daemon_pod("pa", "a", "new", false),
            daemon_pod("pb", "b", "old", false),
            daemon_pod("pc", "c", "old", true),
        ];
        let steps = rolling_update(&d, &nodes, &unready, "new", now);
        assert!(matches!(steps.as_slice(), [Step::Delete { name, .. }] if name == "pb"));
        d["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        assert!(rolling_update(&d, &nodes, &old, "new", now).is_empty());
    }

    #[test]
    fn scaled_values() {
        assert_eq!(scaled_value(Some(&json!(2)), 10, true), 2);
        assert_eq!(scaled_value(Some(&json!("25%")), 10, true), 3);
        assert_eq!(scaled_value(Some(&json!("25%")), 10, false), 2);
        assert_eq!(scaled_value(None, 10, true), 0);
    }

    #[test]
    fn status_counts() {
        let d = ds(json!({"containers": []}));
        let nodes = vec![
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node("t", json!({}), json!([{"key": "k", "effect": "NoSchedule"}])),
        ];
        let pods = vec![
            daemon_pod("pa", "a", "h", true),
            daemon_pod("pb", "b", "old", false),
            daemon_pod("pt", "t", "h", true),
        ];
        let s = compute_status(&d, &nodes, &pods, "h", 0);
        assert_eq!(s["desiredNumberScheduled"], 2);
        assert_eq!(s["currentNumberScheduled"], 2);
        assert_eq!(s["numberMisscheduled"], 1);
        assert_eq!(s["numberReady"], 1);
        assert_eq!(s["numberAvailable"], 1);
        assert_eq!(s["numberUnavailable"], 1);
        assert_eq!(s["updatedNumberScheduled"], 1);
        assert_eq!(s["observedGeneration"], 1);
    }
}
