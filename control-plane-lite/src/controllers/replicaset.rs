//! The ReplicaSet controller (kube-controller-manager's `replicaset` controller).
//!
//! Each ReplicaSet keeps `spec.replicas` active pods (not terminating, not Succeeded/Failed): pods are created from
//! its template as `<rs>-<random5>` with a controller owner reference, orphans matching the selector are adopted,
//! owned pods that stop matching are released, and on scale-down the least useful pods go first
//! ([`deletion_key`], the `ActivePodsWithRanks` order). Status carries replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas (ready for `minReadySeconds`) and observedGeneration.
//!
//! Informer caches lag this controller's own writes, so pod creations and deletions in flight are tracked as
//! [`Expectations`] (client-go's `UIDTrackingControllerExpectations`): a ReplicaSet is not resized again until the
//! pod informer has shown the previous resize, or five minutes passed (`EXPECTATIONS_TIMEOUT`).
//!
//! The pure parts (pod ranking, status arithmetic, claim decisions, expectations) are plain functions with unit
//! tests; [`claim`] and the helpers on owner references are shared with the deployment controller.

use std::cmp::{Ordering, Reverse};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use api_core::registry::ResourceDef;
use api_core::selector::LabelSelector;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tracing::Instrument;

use super::{Change, Informer, Informers, Queue, event, feed, key_of, res, run_worker};
use crate::api::Api;
use crate::api::error::ApiError;
use crate::api::object::{labels, meta_str};
use crate::api::request::Query;
use crate::api::route::ResourcePath;

/// Event source of this controller.
const COMPONENT: &str = "replicaset-controller";
/// Most pods created or deleted in one sync (kube-controller-manager's `burstReplicas`).
const BURST_REPLICAS: usize = 500;
/// Expectations older than this no longer hold a ReplicaSet back (client-go's `ExpectationsTimeout`).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// When to look again after a write found the cached object stale (the informer's event usually comes first).
const STALE_RETRY: Duration = Duration::from_millis(500);
/// Annotation ranking pods for deletion: lower cost goes first (`controller.kubernetes.io/pod-deletion-cost`).
const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done, naming the object.
        what: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
    /// An object changed since it was read from the cache; it is synced again once the cache has caught up.
    #[error("{what} changed since it was read from the cache")]
    Stale {
        /// The object, as `kind namespace/name`.
        what: String,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An API error, as [`Error::Stale`] when it is a write conflict (409 on an update).
    pub fn from_api(what: String, source: ApiError) -> Self {
        if source.code == 409 && source.reason == "Conflict" {
            Self::Stale { what }
        } else {
            Self::Api { what, source }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Object helpers shared with the deployment controller
// ---------------------------------------------------------------------------------------------------------------

/// An integer field at a JSON pointer (0 when absent).
pub fn int_at(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// `spec.replicas`, defaulting to 1 as the API does.
pub fn spec_replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

/// A timestamp field at a JSON pointer.
pub fn time_at(o: &Value, ptr: &str) -> Option<Timestamp> {
    o.pointer(ptr).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// Order by creation time, then name (`ReplicaSetsByCreationTimestamp`); a missing time sorts first.
pub fn by_creation(a: &Value, b: &Value) -> Ordering {
    let ta = time_at(a, "/metadata/creationTimestamp");
    let tb = time_at(b, "/metadata/creationTimestamp");
    ta.cmp(&tb).then_with(|| meta_str(a, "name").cmp(&meta_str(b, "name")))
}

/// The owner reference with `controller: true` (`metav1.GetControllerOf`).
pub fn controller_of(o: &Value) -> Option<&Value> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// `namespace/name` of the owner of kind `kind` that controls `o` (same namespace), if any.
pub fn controller_key(o: &Value, kind: &str) -> Option<String> {
    let r = controller_of(o)?;
    if r.get("kind").and_then(Value::as_str) != Some(kind) {
        return None;
    }
    let name = r.get("name").and_then(Value::as_str)?;
    Some(format!("{}/{name}", meta_str(o, "namespace").unwrap_or("")))
}

/// A controller owner reference to `owner` (`metav1.NewControllerRef`): controller and blockOwnerDeletion set.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(json!("apps/v1")),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": meta_str(owner, "name").unwrap_or(""),
        "uid": meta_str(owner, "uid").unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The request path of an object (or, without `name`, its collection) in `namespace`.
pub fn path(res: &'static ResourceDef, namespace: &str, name: Option<&str>, sub: Option<&str>) -> ResourcePath {
    ResourcePath {
        res,
        namespace: Some(namespace.to_string()),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
        watch_path: false,
    }
}

/// Record an Event in the background, so a reconcile never waits on (or fails because of) its bookkeeping.
pub fn record(api: &Arc<Api>, involved: &Value, type_: &'static str, reason: &'static str, message: String) {
    record_as(api, involved, type_, reason, message, COMPONENT);
}

/// [`record`] with an explicit event source.
pub fn record_as(
    api: &Arc<Api>,
    involved: &Value,
    type_: &'static str,
    reason: &'static str,
    message: String,
    component: &'static str,
) {
    let api = api.clone();
    let involved = involved.clone();
    tokio::spawn(async move { event(&api, &involved, type_, reason, &message, component).await });
}

// ---------------------------------------------------------------------------------------------------------------
// Pods: activity, readiness, availability
// ---------------------------------------------------------------------------------------------------------------

/// Not terminating and not Succeeded/Failed (`controller.IsPodActive`).
pub fn is_pod_active(p: &Value) -> bool {
    let phase = p.pointer("/status/phase").and_then(Value::as_str);
    !matches!(phase, Some("Succeeded" | "Failed")) && !is_deleting(p)
}

fn ready_condition(p: &Value) -> Option<&Value> {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

/// The Ready condition is True (`podutil.IsPodReady`).
pub fn is_pod_ready(p: &Value) -> bool {
    ready_condition(p).is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// When a ready pod became ready (the Ready condition's lastTransitionTime).
fn ready_since(p: &Value) -> Option<Timestamp> {
    if !is_pod_ready(p) {
        return None;
    }
    ready_condition(p).and_then(|c| time_at(c, "/lastTransitionTime"))
}

/// Ready for at least `min_ready_seconds` (`podutil.IsPodAvailable`; strictly longer, as Kubernetes compares).
pub fn is_pod_available(p: &Value, min_ready_seconds: i64, now: Timestamp) -> bool {
    if !is_pod_ready(p) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(p).is_some_and(|t| t + jiff::SignedDuration::from_secs(min_ready_seconds) < now)
}

/// How long until the next ready-but-not-yet-available pod becomes available (plus a second, as timestamps have
/// second precision), so the ReplicaSet is looked at again then.
pub fn next_available_in(pods: &[Arc<Value>], min_ready_seconds: i64, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready_seconds, now))
        .filter_map(|p| ready_since(p))
        .map(|t| (t + jiff::SignedDuration::from_secs(min_ready_seconds)).duration_since(now))
        .min()
        .map(|d| Duration::from_millis(d.as_millis().clamp(0, i64::MAX as i128) as u64) + Duration::from_secs(1))
}

// ---------------------------------------------------------------------------------------------------------------
// Which pods to delete first
// ---------------------------------------------------------------------------------------------------------------

/// `floor(log2(now - t))` in nanoseconds, -1 for times not in the past: the logarithmic buckets of
/// LogarithmicScaleDown, so pods of similar age compare equal and fall through to the next rule.
fn log_age(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.duration_since(t).as_nanos();
    if d <= 0 {
        -1
    } else {
        i64::from(127 - (d as u128).leading_zeros() as i32)
    }
}

fn max_restarts(p: &Value) -> i64 {
    p.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| int_at(c, "/restartCount")).max().unwrap_or(0))
        .unwrap_or(0)
}

/// The sort key putting pods preferred for deletion first, as `controller.ActivePodsWithRanks` orders them:
/// unassigned before assigned; Pending before Unknown before Running; not ready before ready; lower
/// `pod-deletion-cost` first; more colocated related pods (`rank`) first; ready for a shorter time first; more
/// container restarts first; newer first; then by uid. Times compare in logarithmic buckets
/// (LogarithmicScaleDown). A key rather than a comparator keeps the order total.
pub fn deletion_key(p: &Value, rank: usize, now: Timestamp) -> impl Ord + use<> {
    let assigned = p
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = match p.pointer("/status/phase").and_then(Value::as_str) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let ready = is_pod_ready(p);
    let cost: i64 = p
        .pointer(&format!(
            "/metadata/annotations/{}",
            POD_DELETION_COST.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<i32>().ok())
        .map_or(0, i64::from);
    // Pods ready (or created) at an unknown time come first, as `afterOrZero` puts zero times first.
    let ready_age = ready_since(p).map_or(i64::MIN, |t| log_age(t, now));
    let created_age = time_at(p, "/metadata/creationTimestamp").map_or(i64::MIN, |t| log_age(t, now));
    let uid = meta_str(p, "uid").unwrap_or("").to_string();
    (
        assigned,
        phase,
        ready,
        cost,
        Reverse(rank),
        ready_age,
        Reverse(max_restarts(p)),
        created_age,
        uid,
    )
}

/// The `n` pods to delete from `pods`, ranked by [`deletion_key`] where a pod's rank is the number of active
/// `related` pods (pods of ReplicaSets with the same controller) on its node (`getPodsToDelete`).
pub fn pods_to_delete(pods: &[Arc<Value>], related: &[Arc<Value>], n: usize, now: Timestamp) -> Vec<Arc<Value>> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_pod_active(p)) {
        *on_node
            .entry(p.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or(""))
            .or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Value>, usize)> = pods
        .iter()
        .map(|p| {
            let node = p.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            (p.clone(), on_node.get(node).copied().unwrap_or(0))
        })
        .collect();
    if n < ranked.len() {
        ranked.sort_by_cached_key(|(p, rank)| deletion_key(p, *rank, now));
    }
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------------------------

/// Set or clear a count that the API omits when zero.
fn set_count(status: &mut Map<String, Value>, field: &str, n: i64) {
    if n == 0 {
        status.remove(field);
    } else {
        status.insert(field.to_string(), json!(n));
    }
}

/// The status of `rs` given its active owned pods and the error of this sync's resize, if any
/// (`calculateStatus`). `observedGeneration` is left to the writer.
pub fn calculate_status(rs: &Value, pods: &[Arc<Value>], manage_error: Option<&str>, now: Timestamp) -> Value {
    let mut status = rs.get("status").and_then(Value::as_object).cloned().unwrap_or_default();
    let template_labels = rs
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let fully = LabelSelector::from_map(&template_labels);
    let min_ready = int_at(rs, "/spec/minReadySeconds");
    let fully_labeled = pods.iter().filter(|p| fully.matches(&labels(p))).count() as i64;
    let ready = pods.iter().filter(|p| is_pod_ready(p)).count() as i64;
    let available = pods.iter().filter(|p| is_pod_available(p, min_ready, now)).count() as i64;

    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c["type"] == "ReplicaFailure");
    match manage_error {
        Some(msg) if !has_failure => {
            let diff = pods.len() as i64 - spec_replicas(rs);
            let reason = match diff.cmp(&0) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            conditions.push(json!({"type": "ReplicaFailure", "status": "True",
                "lastTransitionTime": crate::api::object::format_time(now), "reason": reason, "message": msg}));
        }
        None if has_failure => conditions.retain(|c| c["type"] != "ReplicaFailure"),
        _ => {}
    }
    if conditions.is_empty() {
        status.remove("conditions");
    } else {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    status.insert("replicas".into(), json!(pods.len()));
    set_count(&mut status, "fullyLabeledReplicas", fully_labeled);
    set_count(&mut status, "readyReplicas", ready);
    set_count(&mut status, "availableReplicas", available);
    Value::Object(status)
}

// ---------------------------------------------------------------------------------------------------------------
// Claiming: adoption and release through controller references
// ---------------------------------------------------------------------------------------------------------------

/// What a controller does with one candidate object (`ControllerRefManager.ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Owned and matching: it is ours.
    Keep,
    /// An orphan that matches: take it.
    Adopt,
    /// Owned but no longer matching: let it go.
    Release,
    /// Someone else's, or not ours to take.
    Ignore,
}

/// Decide what the controller `owner_uid` does with `obj`, given whether the selector matches it.
pub fn claim_decision(owner_uid: &str, owner_deleting: bool, matches: bool, obj: &Value) -> Claim {
    match controller_of(obj) {
        Some(r) if r.get("uid").and_then(Value::as_str) != Some(owner_uid) => Claim::Ignore,
        Some(_) if matches => Claim::Keep,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !matches || is_deleting(obj) => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// Claim `candidates` (objects of `child_res` in the owner's namespace) for `owner` (of `owner_res`): keep the
/// owned ones that match `selector`, adopt matching orphans (after re-reading the owner, as `canAdopt` does, so a
/// deleted or replaced owner adopts nothing) and release owned ones that no longer match. Returns what is owned.
pub async fn claim(
    api: &Api,
    owner: &Value,
    owner_res: &'static ResourceDef,
    selector: &LabelSelector,
    candidates: Vec<Arc<Value>>,
    child_res: &'static ResourceDef,
) -> Result<Vec<Arc<Value>>> {
    let ns = meta_str(owner, "namespace").unwrap_or("");
    let owner_name = meta_str(owner, "name").unwrap_or("");
    let owner_uid = meta_str(owner, "uid").unwrap_or("").to_string();
    let owner_deleting = is_deleting(owner);
    let mut can_adopt: Option<bool> = None;
    let mut owned = Vec::new();
    for c in candidates {
        let matches = !selector.is_empty() && selector.matches(&labels(&c));
        let name = meta_str(&c, "name").unwrap_or("").to_string();
        let uid = meta_str(&c, "uid").unwrap_or("").to_string();
        let what = format!("{} {ns}/{name}", child_res.singular);
        match claim_decision(&owner_uid, owner_deleting, matches, &c) {
            Claim::Keep => owned.push(c),
            Claim::Ignore => {}
            Claim::Adopt => {
                let allowed = match can_adopt {
                    Some(a) => a,
                    None => {
                        let fresh = api.read(owner_res, Some(ns), owner_name).await.map_err(|e| {
                            Error::from_api(format!("re-reading {} {ns}/{owner_name}", owner_res.singular), e)
                        })?;
                        if meta_str(&fresh, "uid") != Some(owner_uid.as_str()) {
                            return Err(Error::Stale {
                                what: format!("{} {ns}/{owner_name}", owner_res.singular),
                            });
                        }
                        let a = !is_deleting(&fresh);
                        can_adopt = Some(a);
                        a
                    }
                };
                if !allowed {
                    continue;
                }
                let reference = controller_ref(owner);
                let res = child_res;
                let adopted = api
                    .modify_with(&path(child_res, ns, Some(&name), None), &name, |cur| {
                        if meta_str(cur, "uid") != Some(uid.as_str()) {
                            return Err(ApiError::not_found(res, &name));
                        }
                        if controller_of(cur).is_some() || is_deleting(cur) {
                            return Err(ApiError::conflict_with(
                                res,
                                &name,
                                "it has a controller or is being deleted",
                            ));
                        }
                        let mut o = cur.clone();
                        let refs = o["metadata"]
                            .as_object_mut()
                            .map(|m| m.entry("ownerReferences").or_insert_with(|| json!([])));
                        match refs {
                            Some(Value::Array(a)) => a.push(reference.clone()),
                            Some(other) => *other = json!([reference.clone()]),
                            None => {}
                        }
                        Ok(o)
                    })
                    .await;
                match adopted {
                    Ok(()) => {
                        tracing::debug!(child = %what, owner = owner_name, "adopted");
                        owned.push(c);
                    }
                    // Gone or taken by someone else meanwhile: not ours.
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => {
                        return Err(Error::Api {
                            what: format!("adopting {what}"),
                            source: e,
                        });
                    }
                }
            }
            Claim::Release => {
                let res = child_res;
                let released = api
                    .modify_with(&path(child_res, ns, Some(&name), None), &name, |cur| {
                        if meta_str(cur, "uid") != Some(uid.as_str()) {
                            return Err(ApiError::not_found(res, &name));
                        }
                        let mut o = cur.clone();
                        if let Some(m) = o["metadata"].as_object_mut() {
                            let left: Vec<Value> = m
                                .get("ownerReferences")
                                .and_then(Value::as_array)
                                .map(|a| a.iter().filter(|r| r["uid"] != owner_uid.as_str()).cloned().collect())
                                .unwrap_or_default();
                            if left.is_empty() {
                                m.remove("ownerReferences");
                            } else {
                                m.insert("ownerReferences".into(), Value::Array(left));
                            }
                        }
                        Ok(o)
                    })
                    .await;
                match released {
                    Ok(()) => tracing::debug!(child = %what, owner = owner_name, "released"),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(Error::from_api(format!("releasing {what}"), e)),
                }
            }
        }
    }
    Ok(owned)
}

// ---------------------------------------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------------------------------------

/// Pod creations and deletions a ReplicaSet waits to see in the pod informer before it is resized again.
#[derive(Default)]
pub struct Expectations(Mutex<HashMap<String, Pending>>);

/// What one ReplicaSet still waits for.
#[derive(Debug)]
struct Pending {
    /// Creations not yet seen.
    adds: i64,
    /// Names of pods whose deletion was not yet seen.
    dels: HashSet<String>,
    /// When these were set.
    since: Instant,
}

impl Expectations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Expect `adds` creations and the deletion of the pods named `dels` for ReplicaSet `key`.
    pub fn expect(&self, key: &str, adds: usize, dels: impl IntoIterator<Item = String>) {
        self.lock().insert(
            key.to_string(),
            Pending {
                adds: adds as i64,
                dels: dels.into_iter().collect(),
                since: Instant::now(),
            },
        );
    }

    /// One pod of `key` was seen created (or its creation failed).
    pub fn creation_observed(&self, key: &str) {
        if let Some(p) = self.lock().get_mut(key) {
            p.adds -= 1;
        }
    }

    /// Pod `pod` of `key` was seen deleted or terminating (or its deletion failed).
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(p) = self.lock().get_mut(key) {
            p.dels.remove(pod);
        }
    }

    /// Whether `key` may be resized: everything expected was seen, or nothing is expected, or it expired.
    pub fn satisfied(&self, key: &str) -> bool {
        self.satisfied_at(key, Instant::now())
    }

    fn satisfied_at(&self, key: &str, now: Instant) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(p) => (p.adds <= 0 && p.dels.is_empty()) || now.duration_since(p.since) > EXPECTATIONS_TIMEOUT,
        }
    }

    /// Drop what `key` waits for (the ReplicaSet is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The controller
// ---------------------------------------------------------------------------------------------------------------

/// The ReplicaSet whose controller reference `pod` carries, if it is a cached ReplicaSet with that uid
/// (`resolveControllerRef`).
fn owning_rs(rses: &Informer, pod: &Value) -> Option<String> {
    let r = controller_of(pod)?;
    if r.get("kind").and_then(Value::as_str) != Some("ReplicaSet") {
        return None;
    }
    let ns = meta_str(pod, "namespace").unwrap_or("");
    let name = r.get("name").and_then(Value::as_str)?;
    let rs = rses.get(ns, name)?;
    (meta_str(&rs, "uid") == r.get("uid").and_then(Value::as_str)).then(|| format!("{ns}/{name}"))
}

/// ReplicaSets in the pod's namespace whose (non-empty) selector matches it (`GetPodReplicaSets`).
fn matching_rses(rses: &Informer, pod: &Value) -> Vec<String> {
    let ns = meta_str(pod, "namespace").unwrap_or("");
    let pod_labels = labels(pod);
    rses.list(Some(ns))
        .iter()
        .filter(|rs| {
            rs.pointer("/spec/selector")
                .and_then(|s| LabelSelector::from_object(s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches(&pod_labels))
        })
        .map(|rs| key_of(rs))
        .collect()
}

/// The ReplicaSets to sync for a pod change, recording observed creations and deletions on the way (the pod
/// event handlers of the replicaset controller).
fn pod_change_keys(rses: &Informer, exp: &Expectations, c: &Change) -> Vec<String> {
    let deleted = |pod: &Value, keys: &mut Vec<String>| {
        if let Some(k) = owning_rs(rses, pod) {
            exp.deletion_observed(&k, meta_str(pod, "name").unwrap_or(""));
            keys.push(k);
        }
    };
    let mut keys = Vec::new();
    match (&c.old, &c.new) {
        (None, Some(pod)) => {
            if is_deleting(pod) {
                deleted(pod, &mut keys);
            } else if let Some(k) = owning_rs(rses, pod) {
                exp.creation_observed(&k);
                keys.push(k);
            } else if controller_of(pod).is_none() {
                keys.extend(matching_rses(rses, pod));
            }
        }
        (Some(old), Some(pod)) => {
            let labels_changed = old.pointer("/metadata/labels") != pod.pointer("/metadata/labels");
            if is_deleting(pod) {
                deleted(pod, &mut keys);
                if labels_changed {
                    deleted(old, &mut keys);
                }
            } else {
                let ref_changed = controller_of(old) != controller_of(pod);
                if ref_changed && let Some(k) = owning_rs(rses, old) {
                    keys.push(k);
                }
                if controller_of(pod).is_some() {
                    keys.extend(owning_rs(rses, pod));
                } else if labels_changed || ref_changed {
                    keys.extend(matching_rses(rses, pod));
                }
            }
        }
        (Some(pod), None) => deleted(pod, &mut keys),
        (None, None) => {}
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The controller's shared state.
struct Controller {
    api: Arc<Api>,
    inf: Arc<Informers>,
    exp: Arc<Expectations>,
    pods: &'static ResourceDef,
    rses: &'static ResourceDef,
}

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let (queue, rx) = Queue::new();
    let exp = Arc::new(Expectations::default());
    feed(&inf.replicasets, queue.clone(), |c| {
        c.object().map(|o| key_of(o)).into_iter().collect()
    });
    let (rses, e) = (inf.replicasets.clone(), exp.clone());
    feed(&inf.pods, queue.clone(), move |c| pod_change_keys(&rses, &e, c));
    for rs in inf.replicasets.list(None) {
        queue.add(key_of(&rs));
    }
    let ctl = Arc::new(Controller {
        api,
        inf,
        exp,
        pods: res("v1", "Pod"),
        rses: res("apps/v1", "ReplicaSet"),
    });
    tokio::spawn(run_worker("replicaset", queue, rx, move |key| {
        let ctl = ctl.clone();
        async move {
            let span = tracing::info_span!("sync_replicaset", key = %key);
            match ctl.sync(&key).instrument(span).await {
                Ok(requeue) => Ok(requeue),
                Err(Error::Stale { what }) => {
                    tracing::debug!(key = %key, %what, "stale cache; syncing again");
                    Ok(Some(STALE_RETRY))
                }
                Err(e) => Err(e.to_string()),
            }
        }
    }));
}

impl Controller {
    /// Reconcile one ReplicaSet (`syncReplicaSet`).
    async fn sync(&self, key: &str) -> Result<Option<Duration>> {
        let Some((ns, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(rs) = self.inf.replicasets.get(ns, name) else {
            self.exp.forget(key);
            return Ok(None);
        };
        let selector = match rs.pointer("/spec/selector").map(LabelSelector::from_object) {
            Some(Ok(s)) => s,
            other => {
                tracing::warn!(replicaset = key, error = ?other.map(|r| r.err()), "invalid selector; not syncing");
                return Ok(None);
            }
        };
        let needs_sync = self.exp.satisfied(key);
        let active: Vec<Arc<Value>> = self
            .inf
            .pods
            .list(Some(ns))
            .into_iter()
            .filter(|p| is_pod_active(p))
            .collect();
        let pods = claim(&self.api, &rs, self.rses, &selector, active, self.pods).await?;
        let managed = if needs_sync && !is_deleting(&rs) {
            self.manage_replicas(key, &rs, &pods).await
        } else {
            Ok(())
        };
        let now = Timestamp::now();
        let manage_error = match &managed {
            Err(e) => Some(e.to_string()),
            Ok(()) => None,
        };
        let status = calculate_status(&rs, &pods, manage_error.as_deref(), now);
        self.write_status(&rs, status).await?;
        managed?;
        Ok(next_available_in(&pods, int_at(&rs, "/spec/minReadySeconds"), now))
    }

    /// Create or delete pods so that `spec.replicas` are active (`manageReplicas`).
    async fn manage_replicas(&self, key: &str, rs: &Arc<Value>, pods: &[Arc<Value>]) -> Result<()> {
        let diff = pods.len() as i64 - spec_replicas(rs);
        match diff.cmp(&0) {
            Ordering::Equal => Ok(()),
            Ordering::Less => self.create_pods(key, rs, (-diff as usize).min(BURST_REPLICAS)).await,
            Ordering::Greater => {
                self.delete_pods(key, rs, pods, (diff as usize).min(BURST_REPLICAS))
                    .await
            }
        }
    }

    /// Create `n` pods in batches of 1, 2, 4, … stopping at the first batch with a failure (`slowStartBatch`), so
    /// a ReplicaSet whose pods are all refused does not flood the API.
    async fn create_pods(&self, key: &str, rs: &Arc<Value>, n: usize) -> Result<()> {
        let ns = meta_str(rs, "namespace").unwrap_or("");
        let name = meta_str(rs, "name").unwrap_or("");
        tracing::info!(replicaset = key, count = n, "creating pods");
        self.exp.expect(key, n, []);
        let collection = path(self.pods, ns, None, None);
        let mut remaining = n;
        let mut batch = 1;
        while remaining > 0 {
            let size = batch.min(remaining);
            let results = futures::future::join_all((0..size).map(|_| {
                let collection = &collection;
                async move {
                    self.api
                        .create(collection, pod_from_template(rs), &Query::internal())
                        .await
                }
            }))
            .await;
            remaining -= size;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(reply) => {
                        let pod = meta_str(&reply.body, "name").unwrap_or("");
                        record(
                            &self.api,
                            rs,
                            "Normal",
                            "SuccessfulCreate",
                            format!("Created pod: {pod}"),
                        );
                    }
                    Err(e) => {
                        self.exp.creation_observed(key);
                        // A terminating namespace refuses every create; that is not worth an event.
                        if !(e.code == 403 && e.message.contains("being terminated")) {
                            record(
                                &self.api,
                                rs,
                                "Warning",
                                "FailedCreate",
                                format!("Error creating: {}", e.message),
                            );
                        }
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                for _ in 0..remaining {
                    self.exp.creation_observed(key);
                }
                return Err(Error::Api {
                    what: format!("creating pods for replicaset {ns}/{name}"),
                    source: e,
                });
            }
            batch = size * 2;
        }
        Ok(())
    }

    /// Delete the `n` least useful pods.
    async fn delete_pods(&self, key: &str, rs: &Arc<Value>, pods: &[Arc<Value>], n: usize) -> Result<()> {
        let ns = meta_str(rs, "namespace").unwrap_or("");
        let related = self.related_pods(rs);
        let victims = pods_to_delete(pods, &related, n, Timestamp::now());
        let names: Vec<String> = victims
            .iter()
            .map(|p| meta_str(p, "name").unwrap_or("").to_string())
            .collect();
        tracing::info!(replicaset = key, pods = ?names, "deleting pods");
        self.exp.expect(key, 0, names.clone());
        let results = futures::future::join_all(names.iter().map(|pod| async move {
            self.api
                .delete(&path(self.pods, ns, Some(pod), None), json!({}), &Query::internal())
                .await
        }))
        .await;
        let mut first_error = None;
        for (pod, r) in names.iter().zip(results) {
            match r {
                Ok(_) => record(
                    &self.api,
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {pod}"),
                ),
                Err(e) => {
                    self.exp.deletion_observed(key, pod);
                    if e.code != 404 {
                        record(
                            &self.api,
                            rs,
                            "Warning",
                            "FailedDelete",
                            format!("Error deleting: {}", e.message),
                        );
                        first_error.get_or_insert(Error::Api {
                            what: format!("deleting pod {ns}/{pod}"),
                            source: e,
                        });
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Pods selected by any ReplicaSet that has the same controller as `rs` (`getIndirectlyRelatedPods`).
    fn related_pods(&self, rs: &Value) -> Vec<Arc<Value>> {
        let Some(owner_uid) = controller_of(rs).and_then(|r| r.get("uid")).and_then(Value::as_str) else {
            return vec![];
        };
        let ns = meta_str(rs, "namespace").unwrap_or("");
        let siblings: Vec<LabelSelector> = self
            .inf
            .replicasets
            .list(Some(ns))
            .iter()
            .filter(|o| controller_of(o).and_then(|r| r.get("uid")).and_then(Value::as_str) == Some(owner_uid))
            .filter_map(|o| {
                o.pointer("/spec/selector")
                    .and_then(|s| LabelSelector::from_object(s).ok())
            })
            .collect();
        self.inf
            .pods
            .list(Some(ns))
            .into_iter()
            .filter(|p| {
                let l = labels(p);
                siblings.iter().any(|s| s.matches(&l))
            })
            .collect()
    }

    /// Write `status` (with observedGeneration) unless it is what is stored. The write is refused as stale when
    /// the ReplicaSet's generation moved on: the status would describe a spec this sync did not act on.
    async fn write_status(&self, rs: &Value, mut status: Value) -> Result<()> {
        let generation = int_at(rs, "/metadata/generation");
        status["observedGeneration"] = json!(generation);
        if rs.get("status") == Some(&status) {
            return Ok(());
        }
        let ns = meta_str(rs, "namespace").unwrap_or("");
        let name = meta_str(rs, "name").unwrap_or("");
        let uid = meta_str(rs, "uid").unwrap_or("");
        let res = self.rses;
        let written = self
            .api
            .modify_status_with(&path(self.rses, ns, Some(name), None), name, |cur| {
                if meta_str(cur, "uid") != Some(uid) || int_at(cur, "/metadata/generation") != generation {
                    return Err(ApiError::conflict(res, name));
                }
                let mut o = cur.clone();
                o["status"] = status.clone();
                Ok(o)
            })
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(Error::from_api(format!("updating status of replicaset {ns}/{name}"), e)),
        }
    }
}

/// A pod for `rs` from its template (`GetPodFromTemplate`): the template's labels, annotations, finalizers and
/// spec, `generateName: <rs>-`, and a controller reference to the ReplicaSet.
pub fn pod_from_template(rs: &Value) -> Value {
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = Map::new();
    for f in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{f}")).filter(|v| !v.is_null()) {
            meta.insert(f.to_string(), v.clone());
        }
    }
    meta.insert(
        "generateName".into(),
        json!(format!("{}-", meta_str(rs, "name").unwrap_or(""))),
    );
    meta.insert("namespace".into(), json!(meta_str(rs, "namespace").unwrap_or("")));
    meta.insert("ownerReferences".into(), json!([controller_ref(rs)]));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2025-01-01T12:00:00Z".parse().expect("time")
    }

    fn pod(name: &str, node: &str, phase: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "namespace": "default",
                         "creationTimestamp": "2025-01-01T11:00:00Z", "labels": {"app": "web"}},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" },
                 "lastTransitionTime": "2025-01-01T11:00:00Z"}]},
        })
    }

    fn names(v: &[Arc<Value>]) -> Vec<&str> {
        v.iter().map(|p| meta_str(p, "name").unwrap_or("")).collect()
    }

    #[test]
    fn deletion_prefers_unassigned_then_pending_then_not_ready() {
        let pods: Vec<Arc<Value>> = vec![
            Arc::new(pod("running-ready", "n1", "Running", true)),
            Arc::new(pod("unassigned", "", "Pending", false)),
            Arc::new(pod("running-unready", "n1", "Running", false)),
            Arc::new(pod("pending", "n1", "Pending", false)),
            Arc::new(pod("unknown", "n1", "Unknown", false)),
        ];
        let order = pods_to_delete(&pods, &[], 4, now());
        assert_eq!(names(&order), ["unassigned", "pending", "unknown", "running-unready"]);
    }

    #[test]
    fn deletion_prefers_doubled_up_more_restarts_and_newer() {
        let mut a = pod("a", "n1", "Running", true);
        let b = pod("b", "n2", "Running", true);
        let c = pod("c", "n2", "Running", true);
        // a alone on n1; b and c share n2: one of those goes first.
        let all: Vec<Arc<Value>> = vec![Arc::new(a.clone()), Arc::new(b), Arc::new(c)];
        let first = pods_to_delete(&all, &all, 1, now());
        assert_ne!(names(&first), ["a"]);

        // Same node, same readiness age: more restarts first.
        a["status"]["containerStatuses"] = json!([{"name": "x", "restartCount": 3}]);
        let d = pod("d", "n1", "Running", true);
        let two: Vec<Arc<Value>> = vec![Arc::new(d), Arc::new(a.clone())];
        assert_eq!(names(&pods_to_delete(&two, &[], 1, now())), ["a"]);

        // Newer (by orders of magnitude) first.
        let mut young = pod("young", "n1", "Running", true);
        young["metadata"]["creationTimestamp"] = json!("2025-01-01T11:59:58Z");
        let old = pod("old", "n1", "Running", true);
        let two: Vec<Arc<Value>> = vec![Arc::new(old), Arc::new(young)];
        assert_eq!(names(&pods_to_delete(&two, &[], 1, now())), ["young"]);
    }

    #[test]
    fn deletion_cost_outranks_colocation() {
        let mut cheap = pod("cheap", "n1", "Running", true);
        cheap["metadata"]["annotations"] = json!({POD_DELETION_COST: "-10"});
        let dear = pod("dear", "n2", "Running", true);
        let extra = pod("extra", "n2", "Running", true);
        let pods: Vec<Arc<Value>> = vec![Arc::new(dear), Arc::new(cheap)];
        let related: Vec<Arc<Value>> = vec![pods[0].clone(), pods[1].clone(), Arc::new(extra)];
        assert_eq!(names(&pods_to_delete(&pods, &related, 1, now())), ["cheap"]);
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = pod("a", "n1", "Running", true);
        let ready_at: Timestamp = "2025-01-01T11:00:00Z".parse().expect("time");
        let s = jiff::SignedDuration::from_secs;
        assert!(is_pod_available(&p, 0, ready_at));
        assert!(!is_pod_available(&p, 10, ready_at + s(10)));
        assert!(is_pod_available(&p, 10, ready_at + s(11)));
        let pods = vec![Arc::new(p)];
        assert_eq!(
            next_available_in(&pods, 10, ready_at + s(4)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(next_available_in(&pods, 10, ready_at + s(20)), None);
        assert!(!is_pod_available(&pod("b", "n", "Running", false), 0, ready_at));
    }

    #[test]
    fn status_counts_and_failure_condition() {
        let rs = json!({"metadata": {"name": "web-1", "generation": 2},
            "spec": {"replicas": 3, "minReadySeconds": 0,
                     "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "1"}}}},
            "status": {"replicas": 0}});
        let mut full = pod("a", "n", "Running", true);
        full["metadata"]["labels"]["pod-template-hash"] = json!("1");
        let pods = vec![Arc::new(full), Arc::new(pod("b", "n", "Pending", false))];
        let s = calculate_status(&rs, &pods, None, now());
        assert_eq!(
            s,
            json!({"replicas": 2, "fullyLabeledReplicas": 1, "readyReplicas": 1, "availableReplicas": 1})
        );
        let s = calculate_status(&rs, &pods, Some("quota exceeded"), now());
        assert_eq!(s["conditions"][0]["reason"], "FailedCreate");
        let rs2 = json!({"spec": rs["spec"], "status": s});
        let cleared = calculate_status(&rs2, &pods, None, now());
        assert!(cleared.get("conditions").is_none());
    }

    #[test]
    fn claim_decisions() {
        let orphan = json!({"metadata": {"name": "p"}});
        let mine = json!({"metadata": {"name": "p", "ownerReferences": [{"uid": "me", "controller": true}]}});
        let theirs = json!({"metadata": {"name": "p", "ownerReferences": [{"uid": "x", "controller": true}]}});
        assert_eq!(claim_decision("me", false, true, &orphan), Claim::Adopt);
        assert_eq!(claim_decision("me", false, false, &orphan), Claim::Ignore);
        assert_eq!(claim_decision("me", true, true, &orphan), Claim::Ignore);
        assert_eq!(claim_decision("me", false, true, &mine), Claim::Keep);
        assert_eq!(claim_decision("me", false, false, &mine), Claim::Release);
        assert_eq!(claim_decision("me", true, false, &mine), Claim::Ignore);
        assert_eq!(claim_decision("me", false, true, &theirs), Claim::Ignore);
        let mut terminating = orphan.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert_eq!(claim_decision("me", false, true, &terminating), Claim::Ignore);
    }

    #[test]
    fn expectations_hold_until_observed_or_expired() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/a"));
        e.expect("ns/a", 2, []);
        assert!(!e.satisfied("ns/a"));
        e.creation_observed("ns/a");
        assert!(!e.satisfied("ns/a"));
        e.creation_observed("ns/a");
        assert!(e.satisfied("ns/a"));
        e.expect("ns/a", 0, ["p1".to_string()]);
        assert!(!e.satisfied("ns/a"));
        assert!(e.satisfied_at("ns/a", Instant::now() + EXPECTATIONS_TIMEOUT + Duration::from_secs(1)));
        e.deletion_observed("ns/a", "p1");
        assert!(e.satisfied("ns/a"));
    }

    #[test]
    fn pods_from_template_carry_owner_and_labels() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let p = pod_from_template(&rs);
        assert_eq!(p["metadata"]["generateName"], "web-abc-");
        assert_eq!(p["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(p["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(
            p["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(p["spec"]["containers"][0]["name"], "c");
    }
}
