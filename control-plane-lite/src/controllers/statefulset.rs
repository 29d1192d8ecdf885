//! The StatefulSet controller, as kube-controller-manager's `statefulset` controller does it for the fields Keel
//! serves.
//!
//! - **Identity.** Pod `<sts>-<ordinal>` for ordinals `spec.ordinals.start ..+replicas`, with the template's labels
//!   plus `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and `controller-revision-hash`
//!   (the ControllerRevision name), `spec.hostname` = the pod name and `spec.subdomain` = `spec.serviceName`.
//! - **OrderedReady** (default): ordinal *i* is created only when every lower ordinal is Running and Ready (and
//!   available for `minReadySeconds`); scale-down removes the highest ordinal first, one at a time, and only while
//!   every other pod is healthy. **Parallel** creates and removes without waiting.
//! - **Updates.** The template history lives in ControllerRevisions `<sts>-<hash>`; `RollingUpdate` replaces pods
//!   from the highest ordinal down to `partition`, one at a time, each only once the one before is healthy again;
//!   `OnDelete` only uses the new revision for pods it (re)creates. Failed or Succeeded pods are replaced.
//! - **Status**: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas, current/update
//!   revision, collisionCount, observedGeneration, as `kubectl rollout status sts/<name>` reads them.
//!
//! Not done: `volumeClaimTemplates` (no PersistentVolumeClaims are created and pods get no claim volumes),
//! `maxUnavailable` for rolling updates (alpha in Kubernetes: one pod at a time, always), and status conditions.
//!
//! [`workload`] holds what the StatefulSet, DaemonSet and Job controllers share: pod predicates, ownership
//! (claiming), pods from templates and the ControllerRevision history.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use api_core::selector::LabelSelector;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{Change, Informers, Queue, event, feed, key_of, res, run_worker};
use crate::api::Api;
use crate::api::object::meta_str;
use crate::api::request::Query;
use workload::{Revisions, controller_ref};

/// The `statefulset.kubernetes.io/pod-name` label.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The `apps.kubernetes.io/pod-index` label.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label a StatefulSet's ControllerRevisions carry their hash in.
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// Event source.
const COMPONENT: &str = "statefulset-controller";

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let (queue, rx) = Queue::new();
    feed(&inf.statefulsets, queue.clone(), |c| {
        c.object().map(|o| key_of(o)).into_iter().collect()
    });
    feed(&inf.pods, queue.clone(), |c| owner_keys(c, "StatefulSet"));
    feed(&inf.controllerrevisions, queue.clone(), |c| {
        owner_keys(c, "StatefulSet")
    });
    for s in inf.statefulsets.list(None) {
        queue.add(key_of(&s));
    }
    tokio::spawn(run_worker("statefulset", queue, rx, move |key| {
        let api = api.clone();
        let inf = inf.clone();
        async move {
            reconcile(&api, &inf, &key)
                .instrument(tracing::info_span!("statefulset", key = %key))
                .await
        }
    }));
}

/// The keys of the controllers of `kind` that own the object before or after a change.
pub(super) fn owner_keys(c: &Change, kind: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for o in [&c.old, &c.new].into_iter().flatten() {
        if let Some(r) = controller_ref(o).filter(|r| r["kind"] == kind)
            && let (Some(ns), Some(name)) = (meta_str(o, "namespace"), r["name"].as_str())
        {
            let k = format!("{ns}/{name}");
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys
}

/// The ordinal of a pod named `<parent>-<ordinal>`, if the name has that shape.
pub fn ordinal_of(parent: &str, pod_name: &str) -> Option<i64> {
    let digits = pod_name.strip_prefix(parent)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The ordinals a StatefulSet wants: `start .. start + replicas`.
pub fn wanted_ordinals(sts: &Value) -> std::ops::Range<i64> {
    let start = sts.pointer("/spec/ordinals/start").and_then(Value::as_i64).unwrap_or(0);
    let replicas = sts
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    start..start + replicas
}

/// Whether pods are created and deleted one at a time in ordinal order.
fn ordered(sts: &Value) -> bool {
    sts.pointer("/spec/podManagementPolicy").and_then(Value::as_str) != Some("Parallel")
}

fn rolling(sts: &Value) -> bool {
    sts.pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .is_none_or(|t| t == "RollingUpdate")
}

fn partition(sts: &Value) -> i64 {
    sts.pointer("/spec/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0)
}

fn min_ready_seconds(o: &Value) -> i64 {
    o.pointer("/spec/minReadySeconds").and_then(Value::as_i64).unwrap_or(0)
}

/// `newVersionedStatefulSetPod`'s choice: whether a pod (re)created at `ordinal` uses the current revision
/// rather than the update revision (ordinals below the partition keep the current one).
pub fn uses_current_revision(sts: &Value, ordinal: i64) -> bool {
    let start = wanted_ordinals(sts).start;
    let ru = sts
        .pointer("/spec/updateStrategy/rollingUpdate")
        .filter(|v| v.is_object());
    let current_replicas = sts
        .pointer("/status/currentReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    (rolling(sts) && ru.is_none() && ordinal < start + current_replicas)
        || (ru.is_some() && ordinal < start + partition(sts))
}

/// The pod for `ordinal` from a revision's template: identity labels, hostname and subdomain, owner reference.
pub fn new_pod(sts: &Value, template: &Value, revision_name: &str, ordinal: i64) -> Value {
    let name = meta_str(sts, "name").unwrap_or("");
    let pod_name = format!("{name}-{ordinal}");
    let mut pod = workload::pod_from_template(template, workload::owner_reference(sts, "apps/v1", "StatefulSet"));
    pod["metadata"]["name"] = json!(pod_name);
    pod["metadata"]["generateName"] = json!(format!("{name}-"));
    set_identity(&mut pod, sts, ordinal);
    pod["metadata"]["labels"][workload::CONTROLLER_REVISION_HASH] = json!(revision_name);
    pod
}

/// `updateIdentity` plus the identity labels: name labels, hostname, subdomain.
fn set_identity(pod: &mut Value, sts: &Value, ordinal: i64) {
    let name = format!("{}-{ordinal}", meta_str(sts, "name").unwrap_or(""));
    set_identity_labels(pod, sts, ordinal);
    pod["spec"]["hostname"] = json!(name);
    match sts.pointer("/spec/serviceName").and_then(Value::as_str) {
        Some(svc) if !svc.is_empty() => pod["spec"]["subdomain"] = json!(svc),
        _ => {
            if let Some(spec) = pod["spec"].as_object_mut() {
                spec.remove("subdomain");
            }
        }
    }
}

/// Whether a pod's identity labels are the ones its ordinal needs (`identityMatches`, labels only: a pod's
/// hostname cannot change after creation).
pub fn identity_labels_match(pod: &Value, sts: &Value, ordinal: i64) -> bool {
    let name = format!("{}-{ordinal}", meta_str(sts, "name").unwrap_or(""));
    let labels = pod.pointer("/metadata/labels");
    labels.and_then(|l| l[POD_NAME_LABEL].as_str()) == Some(name.as_str())
        && labels.and_then(|l| l[POD_INDEX_LABEL].as_str()) == Some(ordinal.to_string().as_str())
}

/// The revision (ControllerRevision name) a pod was created from.
fn pod_revision(pod: &Value) -> &str {
    pod.pointer("/metadata/labels")
        .and_then(|l| l[workload::CONTROLLER_REVISION_HASH].as_str())
        .unwrap_or("")
}

/// Running, Ready, available for `minReadySeconds` and not being deleted (`isHealthy` with availability).
fn healthy(pod: &Value, min_ready: i64, now: jiff::Timestamp) -> bool {
    workload::phase(pod) == "Running" && workload::is_available(pod, min_ready, now) && !workload::is_terminating(pod)
}

/// `computeReplicaStatus` + `completeRollingUpdate`: the status for these pods and revisions.
pub fn compute_status(sts: &Value, pods: &[Arc<Value>], current: &str, update: &str, collisions: i64) -> Value {
    let now = jiff::Timestamp::now();
    let min_ready = min_ready_seconds(sts);
    let (mut replicas, mut ready, mut available, mut current_n, mut updated) = (0, 0, 0, 0, 0);
    for p in pods {
        let created = !workload::phase(p).is_empty();
        if created {
            replicas += 1;
        }
        if workload::phase(p) == "Running" && workload::is_ready(p) {
            ready += 1;
            if workload::is_available(p, min_ready, now) {
                available += 1;
            }
        }
        if created && !workload::is_terminating(p) {
            if pod_revision(p) == current {
                current_n += 1;
            }
            if pod_revision(p) == update {
                updated += 1;
            }
        }
    }
    let mut current_rev = current.to_string();
    if rolling(sts) && updated == replicas && ready == replicas {
        current_n = updated;
        current_rev = update.to_string();
    }
    let mut status = sts.get("status").cloned().filter(Value::is_object).unwrap_or(json!({}));
    status["observedGeneration"] = sts.pointer("/metadata/generation").cloned().unwrap_or(json!(0));
    status["replicas"] = json!(replicas);
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(available);
    status["currentReplicas"] = json!(current_n);
    status["updatedReplicas"] = json!(updated);
    status["currentRevision"] = json!(current_rev);
    status["updateRevision"] = json!(update);
    status["collisionCount"] = json!(collisions);
    if let Some(m) = status.as_object_mut() {
        // The int32 counters without a pointer are omitempty in the v1 API.
        for k in ["readyReplicas", "currentReplicas", "updatedReplicas"] {
            if m.get(k) == Some(&json!(0)) {
                m.remove(k);
            }
        }
    }
    status
}

/// One step of the StatefulSet update algorithm, decided from the cached pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the pod for this ordinal (from the current revision if `current`).
    Create {
        /// Ordinal.
        ordinal: i64,
        /// Use the current revision (below the partition) rather than the update revision.
        current: bool,
    },
    /// Delete this pod (name, uid) and why.
    Delete {
        /// Pod name.
        name: String,
        /// Pod uid (a delete precondition).
        uid: String,
        /// Event reason detail.
        why: &'static str,
    },
    /// Fix a pod's identity labels.
    Relabel {
        /// Pod name.
        name: String,
        /// Ordinal.
        ordinal: i64,
    },
}

/// The next steps for a StatefulSet given its pods (`updateStatefulSet`): replace failed pods, create missing
/// ordinals, delete condemned ones from the top, then roll pods to the update revision from the top down to the
/// partition. OrderedReady stops at the first step that must be waited on; Parallel does all steps of a phase.
pub fn plan(sts: &Value, pods: &[Arc<Value>], update_revision: &str, now: jiff::Timestamp) -> Vec<Step> {
    let name = meta_str(sts, "name").unwrap_or("");
    let wanted = wanted_ordinals(sts);
    let monotonic = ordered(sts);
    let min_ready = min_ready_seconds(sts);
    let mut slots: BTreeMap<i64, &Arc<Value>> = BTreeMap::new();
    let mut condemned: Vec<(i64, &Arc<Value>)> = Vec::new();
    for p in pods {
        let Some(o) = meta_str(p, "name").and_then(|n| ordinal_of(name, n)) else {
            continue;
        };
        if wanted.contains(&o) {
            slots.insert(o, p);
        } else {
            condemned.push((o, p));
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    let mut steps = Vec::new();
    let delete = |p: &Value, why: &'static str| Step::Delete {
        name: meta_str(p, "name").unwrap_or("").to_string(),
        uid: meta_str(p, "uid").unwrap_or("").to_string(),
        why,
    };

    // Replicas: replace finished pods, create missing ones, wait for each in order.
    for ordinal in wanted.clone() {
        let Some(p) = slots.get(&ordinal) else {
            steps.push(Step::Create {
                ordinal,
                current: uses_current_revision(sts, ordinal),
            });
            if monotonic {
                return steps;
            }
            continue;
        };
        let finished = matches!(workload::phase(p), "Failed" | "Succeeded");
        if finished && !workload::is_terminating(p) {
            steps.push(delete(p, "finished"));
            if monotonic {
                return steps;
            }
            continue;
        }
        if workload::is_terminating(p) || finished {
            if monotonic {
                return steps;
            }
            continue;
        }
        if !identity_labels_match(p, sts, ordinal) {
            steps.push(Step::Relabel {
                name: meta_str(p, "name").unwrap_or("").to_string(),
                ordinal,
            });
        }
        if monotonic && !healthy(p, min_ready, now) {
            return steps;
        }
    }

    // Condemned pods, highest ordinal first; OrderedReady only while every other pod is healthy.
    let unhealthy: Vec<&str> = slots
        .values()
        .chain(condemned.iter().map(|(_, p)| p))
        .filter(|p| !healthy(p, min_ready, now))
        .filter_map(|p| meta_str(p, "name"))
        .collect();
    for (_, p) in &condemned {
        if workload::is_terminating(p) {
            if monotonic {
                return steps;
            }
            continue;
        }
        let me = meta_str(p, "name").unwrap_or("");
        if monotonic && unhealthy.iter().any(|u| *u != me) {
            return steps;
        }
        steps.push(delete(p, "condemned"));
        if monotonic {
            return steps;
        }
    }
    if !steps.is_empty() && !monotonic {
        return steps;
    }

    // Rolling update: from the highest ordinal down to the partition, one pod at a time.
    if !rolling(sts) {
        return steps;
    }
    let floor = wanted.start + partition(sts);
    for ordinal in wanted.rev() {
        if ordinal < floor {
            break;
        }
        let Some(p) = slots.get(&ordinal) else {
            continue;
        };
        if pod_revision(p) != update_revision && !workload::is_terminating(p) {
            steps.push(delete(p, "update"));
            return steps;
        }
        if !healthy(p, min_ready, now) {
            return steps;
        }
    }
    steps
}

async fn reconcile(api: &Arc<Api>, inf: &Informers, key: &str) -> Result<Option<Duration>, String> {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let Some(sts) = inf.statefulsets.get(ns, name) else {
        return Ok(None);
    };
    if sts.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(None);
    }
    let selector = match LabelSelector::from_object(sts.pointer("/spec/selector").unwrap_or(&Value::Null)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "statefulset has an invalid selector");
            return Ok(None);
        }
    };
    let owner = workload::owner_reference(&sts, "apps/v1", "StatefulSet");
    let uid = meta_str(&sts, "uid").unwrap_or("").to_string();
    // Only pods named like members are adopted (`isMemberOf`).
    let member = |p: &Value| meta_str(p, "name").and_then(|n| ordinal_of(name, n)).is_some();
    let pods = workload::claim(
        api,
        res("v1", "Pod"),
        inf.pods.list(Some(ns)),
        &selector,
        &member,
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
    let revs = workload::sync_revisions(api, inf, &sts, "StatefulSet", &revisions, REVISION_HASH_LABEL).await?;
    let current_name = meta_str(&revs.current, "name").unwrap_or("").to_string();
    let update_name = meta_str(&revs.update, "name").unwrap_or("").to_string();

    let status = compute_status(&sts, &pods, &current_name, &update_name, revs.collision_count);
    let rp = workload::path(res("apps/v1", "StatefulSet"), ns, name);
    if sts.get("status") != Some(&status) {
        api.modify_status_with(&rp, name, |cur| {
            let mut o = cur.clone();
            o["status"] = status.clone();
            Ok(o)
        })
        .await
        .map_err(|e| format!("updating status of statefulset {key}: {}", e.message))?;
    }

    let steps = plan(&sts, &pods, &update_name, jiff::Timestamp::now());
    for step in &steps {
        apply_step(api, inf, &sts, &revs, step).await?;
    }
    prune_history(api, &sts, &revisions, &pods, &revs).await;
    // Availability (minReadySeconds) changes with time alone.
    let min_ready = min_ready_seconds(&sts);
    let waiting_available = min_ready > 0
        && pods
            .iter()
            .any(|p| workload::is_ready(p) && !workload::is_available(p, min_ready, jiff::Timestamp::now()));
    Ok(waiting_available.then(|| Duration::from_secs(1)))
}

async fn apply_step(api: &Arc<Api>, inf: &Informers, sts: &Value, revs: &Revisions, step: &Step) -> Result<(), String> {
    let ns = meta_str(sts, "namespace").unwrap_or("default");
    let sts_name = meta_str(sts, "name").unwrap_or("");
    let pod_res = res("v1", "Pod");
    match step {
        Step::Create { ordinal, current } => {
            let rev = if *current { &revs.current } else { &revs.update };
            let template = workload::template_of_revision(rev).unwrap_or_else(|| sts["spec"]["template"].clone());
            let rev_name = meta_str(rev, "name").unwrap_or("");
            let pod = new_pod(sts, &template, rev_name, *ordinal);
            let pod_name = format!("{sts_name}-{ordinal}");
            match api
                .create(&workload::collection(pod_res, ns), pod, &Query::internal())
                .await
            {
                Ok(_) => {
                    tracing::info!(pod = %pod_name, revision = rev_name, "created pod");
                    let msg = format!("create Pod {pod_name} in StatefulSet {sts_name} successful");
                    event(api, sts, "Normal", "SuccessfulCreate", &msg, COMPONENT).await;
                    workload::await_cache(&inf.pods, ns, &pod_name, |p| p.is_some()).await;
                }
                // Not yet gone from a previous life, or created by a previous pass: the next pass sees it.
                Err(e) if e.code == 409 => {}
                Err(e) => {
                    let msg = format!(
                        "create Pod {pod_name} in StatefulSet {sts_name} failed error: {}",
                        e.message
                    );
                    event(api, sts, "Warning", "FailedCreate", &msg, COMPONENT).await;
                    return Err(msg);
                }
            }
        }
        Step::Delete { name, uid, why } => {
            workload::delete_pod(api, ns, name, uid, false).await?;
            tracing::info!(pod = %name, why, "deleted pod");
            let msg = format!("delete Pod {name} in StatefulSet {sts_name} successful");
            event(api, sts, "Normal", "SuccessfulDelete", &msg, COMPONENT).await;
            let uid = uid.clone();
            workload::await_cache(&inf.pods, ns, name, |p| {
                p.is_none_or(|p| workload::is_terminating(p) || meta_str(p, "uid") != Some(uid.as_str()))
            })
            .await;
        }
        Step::Relabel { name, ordinal } => {
            let rp = workload::path(pod_res, ns, name);
            api.modify_with(&rp, name, |cur| {
                let mut o = cur.clone();
                set_identity_labels(&mut o, sts, *ordinal);
                Ok(o)
            })
            .await
            .map_err(|e| format!("relabelling pod {ns}/{name}: {}", e.message))?;
        }
    }
    Ok(())
}

fn set_identity_labels(pod: &mut Value, sts: &Value, ordinal: i64) {
    let name = format!("{}-{ordinal}", meta_str(sts, "name").unwrap_or(""));
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"][POD_NAME_LABEL] = json!(name);
    pod["metadata"]["labels"][POD_INDEX_LABEL] = json!(ordinal.to_string());
}

/// `truncateHistory`: delete the oldest revisions beyond `revisionHistoryLimit`, never the current or update
/// revision nor one a pod still uses.
async fn prune_history(api: &Api, sts: &Value, revisions: &[Arc<Value>], pods: &[Arc<Value>], revs: &Revisions) {
    let mut live: HashSet<String> = pods.iter().map(|p| pod_revision(p).to_string()).collect();
    for r in [&revs.current, &revs.update] {
        live.insert(meta_str(r, "name").unwrap_or("").to_string());
    }
    let limit = sts
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    let ns = meta_str(sts, "namespace").unwrap_or("default");
    for name in workload::revisions_to_prune(revisions, &live, limit) {
        workload::delete_object(api, res("apps/v1", "ControllerRevision"), ns, &name).await;
    }
}

/// Shared by the workload controllers (StatefulSet, DaemonSet, Job): pod predicates, ownership, pods from
/// templates, ControllerRevision history, and the write helpers that wait for the informer to catch up.
pub(super) mod workload {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use api_core::registry::ResourceDef;
    use api_core::selector::LabelSelector;
    use serde_json::{Value, json};

    use super::super::{Informer, Informers, res};
    use crate::api::Api;
    use crate::api::object::meta_str;
    use crate::api::request::Query;
    use crate::api::route::ResourcePath;

    /// The pod label naming the revision a pod was made from (a ControllerRevision name for StatefulSets, a hash
    /// for DaemonSets).
    pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
    /// How long a write waits for the shared informer to show it, so the next pass does not act on a stale view.
    const CACHE_WAIT: Duration = Duration::from_secs(2);

    // ---- Pods -------------------------------------------------------------------------------------------------

    /// `status.phase`, empty when unset.
    pub fn phase(pod: &Value) -> &str {
        pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")
    }

    /// Marked for deletion.
    pub fn is_terminating(o: &Value) -> bool {
        o.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
    }

    /// Succeeded or Failed.
    pub fn is_terminal(pod: &Value) -> bool {
        matches!(phase(pod), "Succeeded" | "Failed")
    }

    fn ready_condition(pod: &Value) -> Option<&Value> {
        pod.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
    }

    /// The Ready condition is True (`podutil.IsPodReady`).
    pub fn is_ready(pod: &Value) -> bool {
        ready_condition(pod).is_some_and(|c| c["status"] == "True")
    }

    /// Ready for at least `min_ready_seconds` (`podutil.IsPodAvailable`).
    pub fn is_available(pod: &Value, min_ready_seconds: i64, now: jiff::Timestamp) -> bool {
        if !is_ready(pod) {
            return false;
        }
        if min_ready_seconds <= 0 {
            return true;
        }
        let since = ready_condition(pod)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .and_then(parse_time);
        since.is_some_and(|t| t + jiff::SignedDuration::from_secs(min_ready_seconds) <= now)
    }

    /// An RFC 3339 timestamp.
    pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
        s.parse().ok()
    }

    /// `metadata.creationTimestamp`, or the epoch.
    pub fn created_at(o: &Value) -> jiff::Timestamp {
        meta_str(o, "creationTimestamp")
            .and_then(parse_time)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    // ---- Ownership --------------------------------------------------------------------------------------------

    /// The owner reference with `controller: true`.
    pub fn controller_ref(o: &Value) -> Option<&Value> {
        o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|r| r["controller"] == true))
    }

    /// The uid of the controlling owner.
    pub fn controller_uid(o: &Value) -> Option<&str> {
        controller_ref(o).and_then(|r| r["uid"].as_str())
    }

    /// The controller owner reference pointing at `parent`.
    pub fn owner_reference(parent: &Value, api_version: &str, kind: &str) -> Value {
        json!({
            "apiVersion": api_version, "kind": kind,
            "name": meta_str(parent, "name").unwrap_or(""), "uid": meta_str(parent, "uid").unwrap_or(""),
            "controller": true, "blockOwnerDeletion": true,
        })
    }

    /// `ClaimObjects`: the objects `uid` controls, adopting orphans that its selector and `member` match and
    /// releasing owned ones the selector no longer matches (a failed adoption or release is retried next pass).
    pub async fn claim(
        api: &Api,
        resource: &'static ResourceDef,
        objects: Vec<Arc<Value>>,
        selector: &LabelSelector,
        member: &(dyn Fn(&Value) -> bool + Sync),
        uid: &str,
        owner: &Value,
    ) -> Vec<Arc<Value>> {
        let mut mine = Vec::new();
        for o in objects {
            let matches = selector.matches_object(&o);
            match controller_uid(&o) {
                Some(u) if u == uid => {
                    if matches {
                        mine.push(o);
                    } else if let Err(e) = set_owner(api, resource, &o, uid, None).await {
                        tracing::warn!(object = meta_str(&o, "name"), error = %e, "releasing object failed");
                    }
                }
                None if matches && member(&o) && !is_terminating(&o) => {
                    match set_owner(api, resource, &o, uid, Some(owner)).await {
                        Ok(()) => {
                            tracing::info!(object = meta_str(&o, "name"), kind = resource.kind, "adopted");
                            mine.push(o);
                        }
                        Err(e) => tracing::warn!(object = meta_str(&o, "name"), error = %e, "adopting object failed"),
                    }
                }
                _ => {}
            }
        }
        mine
    }

    /// Add (`Some`) or remove (`None`) the controller reference of `uid`, unless another controller took it.
    async fn set_owner(
        api: &Api,
        resource: &'static ResourceDef,
        o: &Value,
        uid: &str,
        owner: Option<&Value>,
    ) -> Result<(), String> {
        let ns = meta_str(o, "namespace").unwrap_or("");
        let name = meta_str(o, "name").unwrap_or("");
        let rp = path(resource, ns, name);
        let want_uid = meta_str(o, "uid").unwrap_or("").to_string();
        api.modify_with(&rp, name, |cur| {
            let mut c = cur.clone();
            if meta_str(cur, "uid") != Some(want_uid.as_str()) {
                return Ok(c);
            }
            let mut refs: Vec<Value> = cur
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            match owner {
                Some(r) if controller_ref(cur).is_none() => refs.push(r.clone()),
                Some(_) => return Ok(c),
                None => refs.retain(|r| r["uid"] != uid),
            }
            c["metadata"]["ownerReferences"] = json!(refs);
            if refs.is_empty()
                && let Some(m) = c["metadata"].as_object_mut()
            {
                m.remove("ownerReferences");
            }
            Ok(c)
        })
        .await
        .map_err(|e| e.message)
    }

    /// A pod from a pod template (`GetPodFromTemplate`): the template's labels, annotations, finalizers and spec,
    /// owned by `owner`.
    pub fn pod_from_template(template: &Value, owner: Value) -> Value {
        let mut meta = serde_json::Map::new();
        for f in ["labels", "annotations", "finalizers"] {
            if let Some(v) = template.pointer(&format!("/metadata/{f}")).filter(|v| !v.is_null()) {
                meta.insert(f.into(), v.clone());
            }
        }
        if !meta.contains_key("labels") {
            meta.insert("labels".into(), json!({}));
        }
        meta.insert("ownerReferences".into(), json!([owner]));
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": meta,
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        })
    }

    // ---- ControllerRevisions ----------------------------------------------------------------------------------

    /// 32-bit FNV-1a, the hash Kubernetes names revisions with.
    pub fn fnv32a(bytes: &[u8]) -> u32 {
        bytes
            .iter()
            .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
    }

    /// `rand.SafeEncodeString`: map each byte onto consonants and digits that cannot spell words.
    pub fn safe_encode(s: &str) -> String {
        const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        s.bytes()
            .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
            .collect()
    }

    /// `HashControllerRevision`: FNV-1a over the revision data and the collision count, safely encoded.
    pub fn hash_revision(data: &Value, collision_count: i64) -> String {
        let mut bytes = serde_json::to_vec(data).unwrap_or_default();
        bytes.extend_from_slice(collision_count.to_string().as_bytes());
        safe_encode(&fnv32a(&bytes).to_string())
    }

    /// The data a workload stores in a ControllerRevision (`getPatch`): its pod template, to replace on rollback.
    pub fn revision_data(template: &Value) -> Value {
        let mut t = template.clone();
        if let Some(m) = t.as_object_mut() {
            m.insert("$patch".into(), json!("replace"));
        }
        json!({"spec": {"template": t}})
    }

    /// The pod template stored in a ControllerRevision.
    pub fn template_of_revision(rev: &Value) -> Option<Value> {
        let mut t = rev.pointer("/data/spec/template")?.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("$patch");
        }
        Some(t)
    }

    /// A revision's number.
    pub fn revision_number(rev: &Value) -> i64 {
        rev.get("revision").and_then(Value::as_i64).unwrap_or(0)
    }

    /// Revisions in history order (`SortControllerRevisions`: number, then creation, then name).
    pub fn sorted(revisions: &[Arc<Value>]) -> Vec<Arc<Value>> {
        let mut v = revisions.to_vec();
        v.sort_by(|a, b| {
            revision_number(a)
                .cmp(&revision_number(b))
                .then_with(|| created_at(a).cmp(&created_at(b)))
                .then_with(|| meta_str(a, "name").cmp(&meta_str(b, "name")))
        });
        v
    }

    /// The names of the oldest revisions to delete so at most `limit` are kept besides the `live` ones.
    pub fn revisions_to_prune(revisions: &[Arc<Value>], live: &HashSet<String>, limit: i64) -> Vec<String> {
        let history: Vec<String> = sorted(revisions)
            .iter()
            .filter_map(|r| meta_str(r, "name"))
            .filter(|n| !live.contains(*n))
            .map(str::to_string)
            .collect();
        let excess = history.len().saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        history.into_iter().take(excess).collect()
    }

    /// The revisions a workload reconciles against.
    pub struct Revisions {
        /// The revision named in `status.currentRevision` (the update revision when there is none).
        pub current: Arc<Value>,
        /// The revision of the current template.
        pub update: Arc<Value>,
        /// `status.collisionCount` after any hash collision was resolved.
        pub collision_count: i64,
    }

    /// `getStatefulSetRevisions` / `constructHistory`: find or create the revision of the parent's current
    /// template (re-numbering an older equal one to be the newest), and find the current one. Revisions are named
    /// `<parent>-<hash>` and labelled with the template's labels plus `hash_label: <hash>`.
    pub async fn sync_revisions(
        api: &Api,
        inf: &Informers,
        parent: &Value,
        kind: &str,
        owned: &[Arc<Value>],
        hash_label: &str,
    ) -> Result<Revisions, String> {
        let ns = meta_str(parent, "namespace").unwrap_or("default");
        let name = meta_str(parent, "name").unwrap_or("");
        let history = sorted(owned);
        let data = revision_data(parent.pointer("/spec/template").unwrap_or(&Value::Null));
        let next = history.last().map_or(1, |r| revision_number(r) + 1);
        let mut collisions = parent
            .pointer("/status/collisionCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let equal: Vec<&Arc<Value>> = history.iter().filter(|r| r.get("data") == Some(&data)).collect();
        let cr_res = res("apps/v1", "ControllerRevision");
        let update: Arc<Value> = match (equal.last(), history.last()) {
            (Some(e), Some(last)) if meta_str(e, "name") == meta_str(last, "name") => (*e).clone(),
            (Some(e), _) => {
                let rev_name = meta_str(e, "name").unwrap_or("").to_string();
                api.modify_with(&path(cr_res, ns, &rev_name), &rev_name, |cur| {
                    let mut c = cur.clone();
                    c["revision"] = json!(next);
                    Ok(c)
                })
                .await
                .map_err(|err| format!("renumbering controllerrevision {ns}/{rev_name}: {}", err.message))?;
                let mut bumped: Value = Value::clone(e);
                bumped["revision"] = json!(next);
                Arc::new(bumped)
            }
            (None, _) => loop {
                let hash = hash_revision(&data, collisions);
                let rev_name = format!("{name}-{hash}");
                let mut labels = parent
                    .pointer("/spec/template/metadata/labels")
                    .cloned()
                    .filter(Value::is_object)
                    .unwrap_or(json!({}));
                labels[hash_label] = json!(hash);
                let body = json!({
                    "apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": rev_name, "namespace": ns, "labels": labels,
                                 "ownerReferences": [owner_reference(parent, "apps/v1", kind)]},
                    "data": data, "revision": next,
                });
                match api.create(&collection(cr_res, ns), body, &Query::internal()).await {
                    Ok(r) => {
                        tracing::info!(revision = %rev_name, number = next, "created controllerrevision");
                        await_cache(&inf.controllerrevisions, ns, &rev_name, |r| r.is_some()).await;
                        break Arc::new(r.body);
                    }
                    Err(e) if e.code == 409 => {
                        let existing = api
                            .read(cr_res, Some(ns), &rev_name)
                            .await
                            .map_err(|e| format!("reading controllerrevision {ns}/{rev_name}: {}", e.message))?;
                        let ours = controller_uid(&existing) == meta_str(parent, "uid");
                        if ours && existing.get("data") == Some(&data) {
                            break Arc::new(existing);
                        }
                        // A hash collision: another template (or another owner) has this name.
                        collisions += 1;
                        tracing::info!(revision = %rev_name, collisions, "controllerrevision name collision");
                    }
                    Err(e) => return Err(format!("creating controllerrevision {ns}/{rev_name}: {}", e.message)),
                }
            },
        };
        let current_name = parent.pointer("/status/currentRevision").and_then(Value::as_str);
        let current = history
            .iter()
            .find(|r| current_name.is_some() && meta_str(r, "name") == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok(Revisions {
            current,
            update,
            collision_count: collisions,
        })
    }

    // ---- Writes -----------------------------------------------------------------------------------------------

    /// The path of one object.
    pub fn path(resource: &'static ResourceDef, ns: &str, name: &str) -> ResourcePath {
        ResourcePath {
            res: resource,
            namespace: Some(ns.to_string()).filter(|_| resource.namespaced),
            name: Some(name.to_string()),
            sub: None,
            watch_path: false,
        }
    }

    /// The path of a namespace's collection.
    pub fn collection(resource: &'static ResourceDef, ns: &str) -> ResourcePath {
        ResourcePath {
            name: None,
            ..path(resource, ns, "")
        }
    }

    /// Delete a pod with background propagation, only if it still has `uid` (a re-created pod of the same name
    /// is left alone); already gone is fine. `force` skips the graceful period (for pods whose node is gone, as
    /// the pod garbage collector does).
    pub async fn delete_pod(api: &Api, ns: &str, name: &str, uid: &str, force: bool) -> Result<(), String> {
        let mut opts = json!({"propagationPolicy": "Background", "preconditions": {"uid": uid}});
        if force {
            opts["gracePeriodSeconds"] = json!(0);
        }
        match api
            .delete(&path(res("v1", "Pod"), ns, name), opts, &Query::internal())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(format!("deleting pod {ns}/{name}: {}", e.message)),
        }
    }

    /// Delete an object with background propagation; failures are logged (the next pass retries).
    pub async fn delete_object(api: &Api, resource: &'static ResourceDef, ns: &str, name: &str) {
        let opts = json!({"propagationPolicy": "Background"});
        match api.delete(&path(resource, ns, name), opts, &Query::internal()).await {
            Ok(_) => tracing::info!(kind = resource.kind, object = name, "deleted"),
            Err(e) if e.code == 404 => {}
            Err(e) => tracing::warn!(kind = resource.kind, object = name, error = %e.message, "delete failed"),
        }
    }

    /// Wait (briefly) until the informer's copy of `ns/name` satisfies `done`, so the next pass sees this pass's
    /// writes. This is what client-go's controller expectations achieve; a timeout is only logged.
    pub async fn await_cache(informer: &Informer, ns: &str, name: &str, done: impl Fn(Option<&Value>) -> bool) {
        let start = Instant::now();
        while start.elapsed() < CACHE_WAIT {
            if done(informer.get(ns, name).as_deref()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::debug!(
            kind = informer.res.kind,
            object = name,
            "informer did not catch up with a write"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 2},
               "spec": spec})
    }

    fn pod(name: &str, phase: &str, ready: bool, rev: &str) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"),
                         "labels": {"controller-revision-hash": rev,
                                    POD_NAME_LABEL: name,
                                    POD_INDEX_LABEL: name.rsplit('-').next().unwrap()}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    #[test]
    fn ordinals_parse_only_canonical_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-012"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-a"), None);
        assert_eq!(ordinal_of("web-1", "web-1-2"), Some(2));
        assert_eq!(
            wanted_ordinals(&sts(json!({"replicas": 3, "ordinals": {"start": 5}}))),
            5..8
        );
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time() {
        let s = sts(json!({"replicas": 3}));
        assert_eq!(
            plan(&s, &[], "r1", now()),
            vec![Step::Create {
                ordinal: 0,
                current: false
            }]
        );
        // web-0 exists but is not ready: wait.
        assert!(plan(&s, &[pod("web-0", "Pending", false, "r1")], "r1", now()).is_empty());
        let steps = plan(&s, &[pod("web-0", "Running", true, "r1")], "r1", now());
        assert_eq!(
            steps,
            vec![Step::Create {
                ordinal: 1,
                current: false
            }]
        );
    }

    #[test]
    fn parallel_creates_all_missing() {
        let s = sts(json!({"replicas": 3, "podManagementPolicy": "Parallel"}));
        let steps = plan(&s, &[pod("web-1", "Pending", false, "r1")], "r1", now());
        assert_eq!(steps.len(), 2);
        assert!(steps.contains(&Step::Create {
            ordinal: 0,
            current: false
        }));
        assert!(steps.contains(&Step::Create {
            ordinal: 2,
            current: false
        }));
    }

    #[test]
    fn scale_down_removes_highest_first_and_waits_for_health() {
        let s = sts(json!({"replicas": 1}));
        let pods = vec![
            pod("web-0", "Running", true, "r1"),
            pod("web-1", "Running", true, "r1"),
            pod("web-2", "Running", true, "r1"),
        ];
        let steps = plan(&s, &pods, "r1", now());
        assert!(matches!(steps.as_slice(), [Step::Delete { name, .. }] if name == "web-2"));
        // An unhealthy pod other than the one to delete blocks OrderedReady scale-down.
        let pods = vec![
            pod("web-0", "Running", false, "r1"),
            pod("web-1", "Running", true, "r1"),
        ];
        assert!(plan(&s, &pods, "r1", now()).is_empty());
    }

    #[test]
    fn rolling_update_goes_from_the_top_and_honours_partition() {
        let s =
            sts(json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}));
        let pods = vec![
            pod("web-0", "Running", true, "r1"),
            pod("web-1", "Running", true, "r1"),
            pod("web-2", "Running", true, "r1"),
        ];
        let steps = plan(&s, &pods, "r2", now());
        assert!(matches!(steps.as_slice(), [Step::Delete { name, why: "update", .. }] if name == "web-2"));
        // web-2 updated but not ready yet: wait.
        let pods2 = vec![pods[0].clone(), pods[1].clone(), pod("web-2", "Running", false, "r2")];
        assert!(plan(&s, &pods2, "r2", now()).is_empty());
        let pods3 = vec![pods[0].clone(), pods[1].clone(), pod("web-2", "Running", true, "r2")];
        let steps = plan(&s, &pods3, "r2", now());
        assert!(matches!(steps.as_slice(), [Step::Delete { name, .. }] if name == "web-1"));
        // Partition 2: only web-2 is updated.
        let p =
            sts(json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}));
        assert!(plan(&p, &pods3, "r2", now()).is_empty());
        assert!(uses_current_revision(&p, 1));
        assert!(!uses_current_revision(&p, 2));
        // OnDelete never deletes for an update.
        let o = sts(json!({"replicas": 3, "updateStrategy": {"type": "OnDelete"}}));
        assert!(plan(&o, &pods, "r2", now()).is_empty());
    }

    #[test]
    fn finished_pods_are_replaced() {
        let s = sts(json!({"replicas": 1}));
        let steps = plan(&s, &[pod("web-0", "Failed", false, "r1")], "r1", now());
        assert!(matches!(steps.as_slice(), [Step::Delete { name, why: "finished", .. }] if name == "web-0"));
    }

    #[test]
    fn new_pod_has_identity() {
        let s = sts(json!({"replicas": 1, "serviceName": "nginx"}));
        let template =
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let p = new_pod(&s, &template, "web-abc", 4);
        assert_eq!(p["metadata"]["name"], "web-4");
        assert_eq!(p["metadata"]["generateName"], "web-");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["labels"][POD_NAME_LABEL], "web-4");
        assert_eq!(p["metadata"]["labels"][POD_INDEX_LABEL], "4");
        assert_eq!(p["metadata"]["labels"]["controller-revision-hash"], "web-abc");
        assert_eq!(p["spec"]["hostname"], "web-4");
        assert_eq!(p["spec"]["subdomain"], "nginx");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert!(identity_labels_match(&p, &s, 4));
        assert!(!identity_labels_match(&p, &s, 3));
    }

    #[test]
    fn status_counts_and_completes_rollout() {
        let s = sts(json!({"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}}));
        let pods = vec![pod("web-0", "Running", true, "r1"), pod("web-1", "Running", true, "r2")];
        let st = compute_status(&s, &pods, "r1", "r2", 0);
        assert_eq!(st["replicas"], 2);
        assert_eq!(st["readyReplicas"], 2);
        assert_eq!(st["currentReplicas"], 1);
        assert_eq!(st["updatedReplicas"], 1);
        assert_eq!(st["currentRevision"], "r1");
        assert_eq!(st["observedGeneration"], 2);
        let pods = vec![pod("web-0", "Running", true, "r2"), pod("web-1", "Running", true, "r2")];
        let st = compute_status(&s, &pods, "r1", "r2", 0);
        assert_eq!(st["currentRevision"], "r2");
        assert_eq!(st["currentReplicas"], 2);
    }

    #[test]
    fn revision_hashes_are_stable_and_collision_sensitive() {
        assert_eq!(workload::fnv32a(b""), 0x811c_9dc5);
        assert_eq!(workload::fnv32a(b"a"), 0xe40c_292c);
        let d = workload::revision_data(&json!({"spec": {"containers": []}}));
        assert_eq!(d["spec"]["template"]["$patch"], "replace");
        assert_eq!(workload::hash_revision(&d, 0), workload::hash_revision(&d, 0));
        assert_ne!(workload::hash_revision(&d, 0), workload::hash_revision(&d, 1));
        let h = workload::hash_revision(&d, 0);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{h}");
        let rev = json!({"data": d});
        assert_eq!(
            workload::template_of_revision(&rev),
            Some(json!({"spec": {"containers": []}}))
        );
    }

    #[test]
    fn pruning_keeps_live_and_newest() {
        let r = |n: &str, v: i64| Arc::new(json!({"metadata": {"name": n}, "revision": v}));
        let revs = vec![r("a", 1), r("b", 2), r("c", 3), r("d", 4)];
        let live: HashSet<String> = ["d".to_string(), "a".to_string()].into();
        assert_eq!(workload::revisions_to_prune(&revs, &live, 1), vec!["b".to_string()]);
        assert!(workload::revisions_to_prune(&revs, &live, 10).is_empty());
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let t = jiff::Timestamp::now();
        let since = crate::api::object::format_time(t - jiff::SignedDuration::from_secs(5));
        let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]}});
        assert!(workload::is_available(&p, 0, t));
        assert!(workload::is_available(&p, 3, t));
        assert!(!workload::is_available(&p, 30, t));
    }
}
