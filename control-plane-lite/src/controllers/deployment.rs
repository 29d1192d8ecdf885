//! The Deployment controller (kube-controller-manager's `deployment` controller).
//!
//! A Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`, one per distinct pod template: the hash
//! ([`template_hash`]) is added as the `pod-template-hash` label to the ReplicaSet's selector, labels and template,
//! so the ReplicaSets' pods never overlap. The ReplicaSet whose template equals the Deployment's (ignoring that
//! label, [`equal_ignore_hash`]) is the new one; `kubectl rollout undo` copies an old template back and so makes
//! that old ReplicaSet the new one again, which then gets the next revision.
//!
//! Each sync follows `syncDeployment`: claim ReplicaSets; a deleted Deployment only gets its status; a paused one
//! or a scaling event is scaled proportionally ([`proportional_sizes`]); otherwise the strategy rolls out:
//! RollingUpdate scales the new ReplicaSet up within `maxSurge` and old ones down within `maxUnavailable`
//! ([`resolve_fenceposts`], [`new_rs_new_replicas`], [`plan_cleanup_unhealthy`], [`plan_scale_down`]); Recreate
//! scales old ones to zero, waits until their pods are gone, then creates the new one. Finished rollouts keep
//! `revisionHistoryLimit` old empty ReplicaSets. Status and the `Progressing` / `Available` conditions are
//! computed by [`calculate_status`] and [`progress_condition`].
//!
//! Writes of ReplicaSets and of the Deployment's status carry the cached resourceVersion, as the Kubernetes
//! controller's updates do: decisions made on a stale cache are refused with a conflict and the key is synced
//! again when the informer has caught up.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use api_core::registry::ResourceDef;
use api_core::selector::LabelSelector;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tracing::Instrument;

use super::replicaset::{
    by_creation, claim, controller_key, controller_of, controller_ref, int_at, is_deleting, path, record_as,
    spec_replicas, time_at,
};
use super::{Informer, Informers, Queue, feed, key_of, res, run_worker};
use crate::api::Api;
use crate::api::error::ApiError;
use crate::api::object::{self as obj, format_time, labels, meta_str};
use crate::api::request::Query;

/// Event source of this controller.
const COMPONENT: &str = "deployment-controller";
/// The label distinguishing the ReplicaSets (and pods) of one Deployment's templates.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Revision of a ReplicaSet (and of its Deployment: the revision of the new ReplicaSet).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when it last sized the ReplicaSet.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment when it last sized the ReplicaSet.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Longest `revision-history` annotation kept (kube-controller-manager's default).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;
/// Deployment annotations not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// When to look again after a write found the cached object stale (the informer's event usually comes first).
const STALE_RETRY: Duration = Duration::from_millis(500);

/// Condition reasons, as `kubectl` and users match on them.
pub mod reason {
    /// A new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// An existing ReplicaSet was found to be the new one.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// The rollout made progress.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// The rollout finished.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// No progress within `progressDeadlineSeconds`.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// The Deployment is paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// The Deployment was resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// Creating the new ReplicaSet failed.
    pub const RS_CREATE_ERROR: &str = "ReplicaSetCreateError";
    /// At least `replicas - maxUnavailable` pods are available.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Fewer than `replicas - maxUnavailable` pods are available.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

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
    /// The name of the new ReplicaSet is taken by one with another template; `status.collisionCount` was bumped
    /// so the next sync picks another name.
    #[error("replicaset {name} exists with a different pod template; bumped collisionCount of deployment {deployment}")]
    HashCollision {
        /// The Deployment, `namespace/name`.
        deployment: String,
        /// The ReplicaSet name that collided.
        name: String,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, Error>;

impl From<super::replicaset::Error> for Error {
    fn from(e: super::replicaset::Error) -> Self {
        match e {
            super::replicaset::Error::Api { what, source } => Self::Api { what, source },
            super::replicaset::Error::Stale { what } => Self::Stale { what },
        }
    }
}

fn api_error(what: String, source: ApiError) -> Error {
    if source.code == 409 && source.reason == "Conflict" {
        Error::Stale { what }
    } else {
        Error::Api { what, source }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Object accessors
// ---------------------------------------------------------------------------------------------------------------

fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn annotations_mut(o: &mut Value) -> &mut Map<String, Value> {
    let a = obj::meta_mut(o).entry("annotations").or_insert_with(|| json!({}));
    if !a.is_object() {
        *a = json!({});
    }
    let Value::Object(m) = a else {
        unreachable!("made an object just above")
    };
    m
}

fn name_of(o: &Value) -> &str {
    meta_str(o, "name").unwrap_or("")
}

fn is_rolling(d: &Value) -> bool {
    d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("RollingUpdate")
}

fn is_paused(d: &Value) -> bool {
    d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true)
}

fn available(rs: &Value) -> i64 {
    int_at(rs, "/status/availableReplicas")
}

/// The revision annotation as a number (0 when absent or not a number).
pub fn revision_of(rs: &Value) -> i64 {
    annotation(rs, REVISION).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn desired_annotation(rs: &Value) -> Option<i64> {
    annotation(rs, DESIRED_REPLICAS).and_then(|s| s.parse().ok())
}

/// `progressDeadlineSeconds`, unless unset or "no deadline" (MaxInt32).
fn progress_deadline(d: &Value) -> Option<i64> {
    d.pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64)
        .filter(|s| *s != i64::from(i32::MAX))
}

// ---------------------------------------------------------------------------------------------------------------
// Rollout arithmetic (pure)
// ---------------------------------------------------------------------------------------------------------------

/// An int-or-percent scaled against `total` (`intstr.GetScaledValueFromIntOrPercent`): percentages round up or
/// down as asked; absent is 0.
pub fn scaled_value(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(pct) => {
                let f = pct as f64 * total as f64 / 100.0;
                (if round_up { f.ceil() } else { f.floor() }) as i64
            }
            // Validation admits only integers and percentages; anything else counts as 0.
            None => 0,
        },
        _ => 0,
    }
}

/// `maxSurge` rounded up and `maxUnavailable` rounded down against `desired`; when both come to 0,
/// `maxUnavailable` is 1 so a rollout can always move (`ResolveFenceposts`).
pub fn resolve_fenceposts(max_surge: Option<&Value>, max_unavailable: Option<&Value>, desired: i64) -> (i64, i64) {
    let surge = scaled_value(max_surge, desired, true);
    let unavailable = scaled_value(max_unavailable, desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The resolved `maxSurge` of a RollingUpdate Deployment (0 for Recreate).
pub fn max_surge(d: &Value) -> i64 {
    if !is_rolling(d) {
        return 0;
    }
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    resolve_fenceposts(
        ru.and_then(|r| r.get("maxSurge")),
        ru.and_then(|r| r.get("maxUnavailable")),
        spec_replicas(d),
    )
    .0
}

/// The resolved `maxUnavailable` of a RollingUpdate Deployment, at most `spec.replicas` (0 for Recreate).
pub fn max_unavailable(d: &Value) -> i64 {
    let replicas = spec_replicas(d);
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let (_, u) = resolve_fenceposts(
        ru.and_then(|r| r.get("maxSurge")),
        ru.and_then(|r| r.get("maxUnavailable")),
        replicas,
    );
    u.min(replicas)
}

/// The size the new ReplicaSet may grow to now (`NewRSNewReplicas`): RollingUpdate adds up to `maxSurge` pods
/// over `spec.replicas` in total (`current_total` is the sum of all ReplicaSets' `spec.replicas`); Recreate
/// jumps to `spec.replicas`.
pub fn new_rs_new_replicas(d: &Value, current_total: i64, new_rs_replicas: i64) -> i64 {
    let replicas = spec_replicas(d);
    if !is_rolling(d) {
        return replicas;
    }
    let surge = scaled_value(d.pointer("/spec/strategy/rollingUpdate/maxSurge"), replicas, true);
    let max_total = replicas + surge;
    if current_total >= max_total {
        return new_rs_replicas;
    }
    let up = (max_total - current_total).min(replicas - new_rs_replicas);
    new_rs_replicas + up
}

/// How far old ReplicaSets may be scaled down in total (`reconcileOldReplicaSets`): what is above
/// `replicas - maxUnavailable`, not counting new pods that are not available yet.
pub fn max_scaled_down(all_total: i64, min_available: i64, new_spec: i64, new_available: i64) -> i64 {
    all_total - min_available - (new_spec - new_available)
}

/// Scale-downs of old ReplicaSets (oldest first, as `(spec, available)`) that remove only their unavailable pods,
/// at most `max` in total (`cleanupUnhealthyReplicas`). Returns `(index, new size)`.
pub fn plan_cleanup_unhealthy(olds: &[(i64, i64)], max: i64) -> Vec<(usize, i64)> {
    let mut plan = Vec::new();
    let mut total = 0;
    for (i, &(spec, avail)) in olds.iter().enumerate() {
        if total >= max {
            break;
        }
        if spec == 0 || spec == avail {
            continue;
        }
        let down = (max - total).min(spec - avail);
        plan.push((i, spec - down));
        total += down;
    }
    plan
}

/// Scale-downs of old ReplicaSets (oldest first, by `spec.replicas`) keeping `min_available` pods available
/// (`scaleDownOldReplicaSetsForRollingUpdate`). Returns `(index, new size)`.
pub fn plan_scale_down(olds: &[i64], available: i64, min_available: i64) -> Vec<(usize, i64)> {
    let mut plan = Vec::new();
    if available <= min_available {
        return plan;
    }
    let total = available - min_available;
    let mut done = 0;
    for (i, &spec) in olds.iter().enumerate() {
        if done >= total {
            break;
        }
        if spec == 0 {
            continue;
        }
        let down = spec.min(total - done);
        plan.push((i, spec - down));
        done += down;
    }
    plan
}

/// The share of `to_add` (positive or negative) that `rs` gets when a Deployment is resized mid-rollout
/// (`GetProportion` / `getReplicaSetFraction`): proportional to its size against the size the Deployment had
/// when the ReplicaSet was last sized (its max-replicas annotation), never more than what is left.
fn proportion(rs: &Value, d: &Value, to_add: i64, added: i64) -> i64 {
    let spec = spec_replicas(rs);
    if spec == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if spec_replicas(d) == 0 {
        -spec
    } else {
        let deployment_replicas = spec_replicas(d) + max_surge(d);
        let annotated = annotation(rs, MAX_REPLICAS)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or_else(|| int_at(d, "/status/replicas"));
        if annotated <= 0 {
            0
        } else {
            ((spec * deployment_replicas) as f64 / annotated as f64).round() as i64 - spec
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// New sizes for the active ReplicaSets of a RollingUpdate Deployment being resized mid-rollout (the
/// proportional branch of `scale`): the change is spread by [`proportion`], largest ReplicaSets first (newer
/// first when growing, older first when shrinking), leftovers to the first. Returns `(index into active, size)`.
pub fn proportional_sizes(d: &Value, active: &[&Value]) -> Vec<(usize, i64)> {
    let total: i64 = active.iter().map(|r| spec_replicas(r)).sum();
    let allowed = if spec_replicas(d) > 0 {
        spec_replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - total;
    let mut order: Vec<usize> = (0..active.len()).collect();
    match to_add.cmp(&0) {
        std::cmp::Ordering::Greater => order.sort_by(|&a, &b| {
            spec_replicas(active[b])
                .cmp(&spec_replicas(active[a]))
                .then_with(|| by_creation(active[b], active[a]))
        }),
        std::cmp::Ordering::Less => order.sort_by(|&a, &b| {
            spec_replicas(active[b])
                .cmp(&spec_replicas(active[a]))
                .then_with(|| by_creation(active[a], active[b]))
        }),
        std::cmp::Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<(usize, i64)> = Vec::with_capacity(order.len());
    for &i in &order {
        let rs = active[i];
        if to_add != 0 {
            let p = proportion(rs, d, to_add, added);
            sizes.push((i, spec_replicas(rs) + p));
            added += p;
        } else {
            sizes.push((i, spec_replicas(rs)));
        }
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

/// The one ReplicaSet to give all replicas to (`FindActiveOrLatest`): the only one with replicas, or, when none
/// has any, the new one or else the newest old one. `None` when several have replicas. `all` holds the old
/// ReplicaSets followed by the new one at `new_index`.
pub fn active_or_latest(all: &[Value], new_index: Option<usize>) -> Option<usize> {
    let active: Vec<usize> = (0..all.len()).filter(|&i| spec_replicas(&all[i]) > 0).collect();
    match active.len() {
        0 => new_index.or_else(|| {
            (0..all.len())
                .filter(|&i| Some(i) != new_index)
                .max_by(|&a, &b| by_creation(&all[a], &all[b]))
        }),
        1 => Some(active[0]),
        _ => None,
    }
}

/// The new ReplicaSet runs everything the Deployment wants, all available (`IsSaturated`).
fn is_saturated(d: &Value, rs: &Value) -> bool {
    let replicas = spec_replicas(d);
    desired_annotation(rs) == Some(replicas) && spec_replicas(rs) == replicas && available(rs) == replicas
}

// ---------------------------------------------------------------------------------------------------------------
// Templates: hash and equality
// ---------------------------------------------------------------------------------------------------------------

/// `v` without what Go's semantic equality ignores: null fields, empty strings and empty maps and lists.
fn normalized(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) => {
            let items: Vec<Value> = a.iter().map(|x| normalized(x).unwrap_or(Value::Null)).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let out: Map<String, Value> = keys
                .into_iter()
                .filter_map(|k| normalized(&m[k]).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// A template without the `pod-template-hash` label, normalized (keys sorted).
fn template_key(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        l.remove(HASH_LABEL);
    }
    normalized(&t).unwrap_or(Value::Null)
}

/// Whether two pod templates are the same apart from the `pod-template-hash` label (`EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    template_key(a) == template_key(b)
}

/// The `pod-template-hash` of a template (`ComputeHash`): FNV-32a of its normalized JSON (keys sorted, so the
/// same template always hashes the same), then of `collisionCount` when set, written in Kubernetes' safe
/// alphabet (no vowels, no confusable characters) from the decimal digits.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed_bytes = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    // Serialising a Value cannot fail (all keys are strings).
    feed_bytes(&serde_json::to_vec(&template_key(template)).unwrap_or_default());
    if let Some(c) = collision_count {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(c as u32).to_le_bytes());
        feed_bytes(&b);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// The ReplicaSet whose template is the Deployment's, oldest first if several (`FindNewReplicaSet`).
pub fn find_new_rs(d: &Value, rses: &[Value]) -> Option<usize> {
    let template = d.pointer("/spec/template").unwrap_or(&Value::Null);
    let mut order: Vec<usize> = (0..rses.len()).collect();
    order.sort_by(|&a, &b| by_creation(&rses[a], &rses[b]));
    order
        .into_iter()
        .find(|&i| equal_ignore_hash(rses[i].pointer("/spec/template").unwrap_or(&Value::Null), template))
}

// ---------------------------------------------------------------------------------------------------------------
// Annotations (pure)
// ---------------------------------------------------------------------------------------------------------------

/// Set the desired and max replicas annotations; true when they changed (`SetReplicasAnnotations`).
pub fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let mut changed = false;
    let a = annotations_mut(rs);
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k).and_then(Value::as_str) != Some(v.as_str()) {
            a.insert(k.to_string(), json!(v));
            changed = true;
        }
    }
    changed
}

fn replicas_annotations_need_update(rs: &Value, desired: i64, max: i64) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Bring the new ReplicaSet's annotations up to date (`SetNewReplicaSetAnnotations`): the Deployment's own
/// annotations except the controller's; the revision raised to `new_revision` if lower, remembering the old one
/// in `revision-history` when this is a rollback to an earlier ReplicaSet; and the replicas annotations on a
/// ReplicaSet about to be created. True when anything changed.
pub fn set_new_rs_annotations(d: &Value, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
    let own: Vec<(String, Value)> = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let a = annotations_mut(rs);
    let mut changed = false;
    for (k, v) in own {
        if a.get(&k) != Some(&v) {
            a.insert(k, v);
            changed = true;
        }
    }
    let old = a.get(REVISION).and_then(Value::as_str).map(str::to_string);
    let old_number = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        // An unparsable revision is left alone, as Kubernetes does.
        Some(Err(_)) => return changed,
    };
    if old_number < new_revision {
        a.insert(REVISION.into(), json!(new_revision.to_string()));
        changed = true;
        if let Some(old) = old {
            let history = a.get(REVISION_HISTORY).and_then(Value::as_str).unwrap_or("");
            let mut entries: Vec<&str> = if history.is_empty() {
                vec![]
            } else {
                history.split(',').collect()
            };
            entries.push(&old);
            // Drop the oldest entries until it fits.
            while entries.len() > 1 && entries.join(",").len() > MAX_REVISION_HISTORY_CHARS {
                entries.remove(0);
            }
            let joined = entries.join(",");
            a.insert(REVISION_HISTORY.into(), json!(joined));
        }
    }
    if !exists {
        let desired = spec_replicas(d);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge(d));
    }
    changed
}

/// Set the Deployment's revision annotation; true when it changed (`SetDeploymentRevision`).
fn set_deployment_revision(d: &mut Value, revision: &str) -> bool {
    let a = annotations_mut(d);
    if a.get(REVISION).and_then(Value::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION.into(), json!(revision));
    true
}

// ---------------------------------------------------------------------------------------------------------------
// Status and conditions (pure)
// ---------------------------------------------------------------------------------------------------------------

/// A Deployment condition stamped `now` (`NewDeploymentCondition`).
pub fn new_condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
           "reason": reason, "message": message})
}

/// The condition of `type_` in a status.
pub fn get_condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == type_)
}

fn conditions_mut(status: &mut Value) -> Option<&mut Vec<Value>> {
    if !status.is_object() {
        *status = json!({});
    }
    let c = status.as_object_mut()?.entry("conditions").or_insert_with(|| json!([]));
    if !c.is_array() {
        *c = json!([]);
    }
    c.as_array_mut()
}

/// Put `cond` in place of the condition of its type unless status and reason are unchanged, keeping the
/// transition time when only the reason changed (`SetDeploymentCondition`).
pub fn set_condition(status: &mut Value, mut cond: Value) {
    if let Some(cur) = get_condition(status, cond["type"].as_str().unwrap_or("")) {
        if cur["status"] == cond["status"] && cur["reason"] == cond["reason"] {
            return;
        }
        if cur["status"] == cond["status"] {
            cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    if let Some(list) = conditions_mut(status) {
        list.retain(|c| c["type"] != cond["type"]);
        list.push(cond);
    }
}

/// Remove the condition of `type_`.
pub fn remove_condition(status: &mut Value, type_: &str) {
    if let Some(list) = conditions_mut(status) {
        list.retain(|c| c["type"] != type_);
        if list.is_empty()
            && let Some(m) = status.as_object_mut()
        {
            m.remove("conditions");
        }
    }
}

fn put_count(status: &mut Map<String, Value>, field: &str, n: i64) {
    if n != 0 {
        status.insert(field.to_string(), json!(n));
    }
}

/// The Deployment's status from its ReplicaSets (`calculateStatus`), with the Available condition; other
/// conditions are carried over. `all` holds every ReplicaSet of the Deployment, `new_rs` the new one.
pub fn calculate_status(d: &Value, all: &[&Value], new_rs: Option<&Value>, now: &str) -> Value {
    let available: i64 = all.iter().map(|r| self::available(r)).sum();
    let total: i64 = all.iter().map(|r| spec_replicas(r)).sum();
    let mut s = Map::new();
    put_count(&mut s, "observedGeneration", int_at(d, "/metadata/generation"));
    put_count(
        &mut s,
        "replicas",
        all.iter().map(|r| int_at(r, "/status/replicas")).sum(),
    );
    put_count(
        &mut s,
        "updatedReplicas",
        new_rs.map_or(0, |r| int_at(r, "/status/replicas")),
    );
    put_count(
        &mut s,
        "readyReplicas",
        all.iter().map(|r| int_at(r, "/status/readyReplicas")).sum(),
    );
    put_count(&mut s, "availableReplicas", available);
    put_count(&mut s, "unavailableReplicas", (total - available).max(0));
    if let Some(c) = d
        .pointer("/status/conditions")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        s.insert("conditions".into(), c.clone());
    }
    if let Some(c) = d.pointer("/status/collisionCount").filter(|c| !c.is_null()) {
        s.insert("collisionCount".into(), c.clone());
    }
    let mut status = Value::Object(s);
    let cond = if available >= spec_replicas(d) - max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            reason::MIN_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    } else {
        new_condition(
            "Available",
            "False",
            reason::MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    };
    set_condition(&mut status, cond);
    status
}

/// Everything updated, available and observed (`DeploymentComplete`).
pub fn deployment_complete(d: &Value, status: &Value) -> bool {
    let replicas = spec_replicas(d);
    int_at(status, "/updatedReplicas") == replicas
        && int_at(status, "/replicas") == replicas
        && int_at(status, "/availableReplicas") == replicas
        && int_at(status, "/observedGeneration") >= int_at(d, "/metadata/generation")
}

/// Something moved since the stored status (`DeploymentProgressing`).
pub fn deployment_progressing(d: &Value, status: &Value) -> bool {
    let old = d.get("status").unwrap_or(&Value::Null);
    let old_old = int_at(old, "/replicas") - int_at(old, "/updatedReplicas");
    let new_old = int_at(status, "/replicas") - int_at(status, "/updatedReplicas");
    int_at(status, "/updatedReplicas") > int_at(old, "/updatedReplicas")
        || new_old < old_old
        || int_at(status, "/readyReplicas") > int_at(old, "/readyReplicas")
        || int_at(status, "/availableReplicas") > int_at(old, "/availableReplicas")
}

/// No progress for `progressDeadlineSeconds` since the Progressing condition was last updated
/// (`DeploymentTimedOut`).
pub fn deployment_timed_out(d: &Value, status: &Value, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(cond) = get_condition(status, "Progressing") else {
        return false;
    };
    match cond["reason"].as_str() {
        Some(reason::NEW_RS_AVAILABLE) => false,
        Some(reason::TIMED_OUT) => true,
        _ => time_at(cond, "/lastUpdateTime").is_some_and(|t| t + jiff::SignedDuration::from_secs(deadline) < now),
    }
}

/// Update the Progressing condition of `status` (the new status of `d`) as `syncRolloutStatus` does: complete,
/// progressing (the transition time kept while it stays True), or timed out.
pub fn progress_condition(d: &Value, status: &mut Value, new_rs: Option<&Value>, now: Timestamp) {
    if progress_deadline(d).is_none() {
        remove_condition(status, "Progressing");
        return;
    }
    let now_s = format_time(now);
    let current = get_condition(d.get("status").unwrap_or(&Value::Null), "Progressing").cloned();
    let complete_already = int_at(status, "/replicas") == int_at(status, "/updatedReplicas")
        && current
            .as_ref()
            .is_some_and(|c| c["reason"] == reason::NEW_RS_AVAILABLE);
    if complete_already {
        return;
    }
    let subject = match new_rs {
        Some(rs) => format!("ReplicaSet \"{}\"", name_of(rs)),
        None => format!("Deployment \"{}\"", name_of(d)),
    };
    if deployment_complete(d, status) {
        let msg = format!("{subject} has successfully progressed.");
        set_condition(
            status,
            new_condition("Progressing", "True", reason::NEW_RS_AVAILABLE, &msg, &now_s),
        );
    } else if deployment_progressing(d, status) {
        let msg = format!("{subject} is progressing.");
        let mut cond = new_condition("Progressing", "True", reason::RS_UPDATED, &msg, &now_s);
        if let Some(cur) = &current {
            if cur["status"] == "True" {
                cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
            }
            remove_condition(status, "Progressing");
        }
        set_condition(status, cond);
    } else if deployment_timed_out(d, status, now) {
        let msg = format!("{subject} has timed out progressing.");
        set_condition(
            status,
            new_condition("Progressing", "False", reason::TIMED_OUT, &msg, &now_s),
        );
    }
}

/// Copy the ReplicaFailure condition of the new ReplicaSet (or else of any) into the Deployment's status, or
/// remove it (`getReplicaFailures`).
fn replica_failure_condition(status: &mut Value, all: &[&Value], new_rs: Option<&Value>) {
    let failure = |rs: &Value| -> Option<Value> {
        let c = get_condition(rs.get("status")?, "ReplicaFailure")?;
        Some(
            json!({"type": "ReplicaFailure", "status": c["status"], "lastUpdateTime": c["lastTransitionTime"],
                    "lastTransitionTime": c["lastTransitionTime"], "reason": c["reason"], "message": c["message"]}),
        )
    };
    match new_rs.and_then(failure).or_else(|| all.iter().find_map(|r| failure(r))) {
        Some(c) => set_condition(status, c),
        None => remove_condition(status, "ReplicaFailure"),
    }
}

/// When to look at a Deployment again to notice it missed its progress deadline (`requeueStuckDeployment`).
pub fn requeue_stuck(d: &Value, status: &Value, now: Timestamp) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cond = get_condition(d.get("status")?, "Progressing")?;
    if deployment_complete(d, status) || cond["reason"] == reason::TIMED_OUT {
        return None;
    }
    let updated = time_at(cond, "/lastUpdateTime")?;
    let after = (updated + jiff::SignedDuration::from_secs(deadline)).duration_since(now);
    let ms = after.as_millis();
    Some(if ms < 1000 {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(ms.min(i128::from(u32::MAX)) as u64)
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The controller
// ---------------------------------------------------------------------------------------------------------------

/// Deployments in `rs`'s namespace whose selector matches it (`getDeploymentsForReplicaSet`).
fn matching_deployments(deployments: &Informer, rs: &Value) -> Vec<String> {
    let ns = meta_str(rs, "namespace").unwrap_or("");
    let rs_labels = labels(rs);
    deployments
        .list(Some(ns))
        .iter()
        .filter(|d| {
            d.pointer("/spec/selector")
                .and_then(|s| LabelSelector::from_object(s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches(&rs_labels))
        })
        .map(|d| key_of(d))
        .collect()
}

/// The controller's shared state.
struct Controller {
    api: Arc<Api>,
    inf: Arc<Informers>,
    deployments: &'static ResourceDef,
    rses: &'static ResourceDef,
}

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let (queue, rx) = Queue::new();
    feed(&inf.deployments, queue.clone(), |c| {
        c.object().map(|o| key_of(o)).into_iter().collect()
    });
    let deployments = inf.deployments.clone();
    feed(&inf.replicasets, queue.clone(), move |c| {
        let mut keys: Vec<String> = [&c.old, &c.new]
            .into_iter()
            .flatten()
            .filter_map(|rs| controller_key(rs, "Deployment"))
            .collect();
        if let Some(rs) = &c.new
            && controller_of(rs).is_none()
        {
            keys.extend(matching_deployments(&deployments, rs));
        }
        keys.sort();
        keys.dedup();
        keys
    });
    // A Recreate rollout waits for old pods to be gone: a pod deletion may be what it waits for.
    let rses = inf.replicasets.clone();
    feed(&inf.pods, queue.clone(), move |c| match (&c.old, &c.new) {
        (Some(pod), None) => controller_key(pod, "ReplicaSet")
            .and_then(|k| {
                let (ns, name) = k.split_once('/')?;
                rses.get(ns, name)
            })
            .and_then(|rs| controller_key(&rs, "Deployment"))
            .into_iter()
            .collect(),
        _ => vec![],
    });
    for d in inf.deployments.list(None) {
        queue.add(key_of(&d));
    }
    let ctl = Arc::new(Controller {
        api,
        inf,
        deployments: res("apps/v1", "Deployment"),
        rses: res("apps/v1", "ReplicaSet"),
    });
    tokio::spawn(run_worker("deployment", queue, rx, move |key| {
        let ctl = ctl.clone();
        async move {
            let span = tracing::info_span!("sync_deployment", key = %key);
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

/// Index of the new ReplicaSet when it is appended to the old ones.
fn joined(olds: &[Value], new_rs: Option<&Value>) -> (Vec<Value>, Option<usize>) {
    let mut all = olds.to_vec();
    let idx = new_rs.map(|n| {
        all.push(n.clone());
        all.len() - 1
    });
    (all, idx)
}

impl Controller {
    /// Reconcile one Deployment (`syncDeployment`).
    async fn sync(&self, key: &str) -> Result<Option<Duration>> {
        let Some((ns, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(cached) = self.inf.deployments.get(ns, name) else {
            return Ok(None);
        };
        let mut d = (*cached).clone();
        let selector = match d.pointer("/spec/selector").map(LabelSelector::from_object) {
            Some(Ok(s)) => s,
            other => {
                tracing::warn!(deployment = key, error = ?other.map(|r| r.err()), "invalid selector; not syncing");
                return Ok(None);
            }
        };
        if selector.is_empty() {
            record_as(
                &self.api,
                &d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
                COMPONENT,
            );
            let generation = int_at(&d, "/metadata/generation");
            if int_at(&d, "/status/observedGeneration") < generation {
                d["status"]["observedGeneration"] = json!(generation);
                self.write_status(&mut d).await?;
            }
            return Ok(None);
        }
        let candidates = self.inf.replicasets.list(Some(ns));
        let claimed = claim(&self.api, &d, self.deployments, &selector, candidates, self.rses).await?;
        let mut rs_list: Vec<Value> = claimed.iter().map(|r| (**r).clone()).collect();

        if is_deleting(&d) {
            let (new_rs, olds) = self.all_rses(&mut d, &mut rs_list, false).await?;
            return self.sync_deployment_status(&mut d, &olds, new_rs.as_ref()).await;
        }
        self.check_paused_conditions(&mut d).await?;
        if is_paused(&d) || self.is_scaling_event(&mut d, &mut rs_list).await? {
            return self.sync_scale(&mut d, &mut rs_list).await;
        }
        match d.pointer("/spec/strategy/type").and_then(Value::as_str) {
            Some("Recreate") => self.rollout_recreate(&mut d, &mut rs_list, &selector).await,
            _ => self.rollout_rolling(&mut d, &mut rs_list).await,
        }
    }

    fn what(&self, o: &Value) -> String {
        format!(
            "{} {}/{}",
            o.get("kind").and_then(Value::as_str).unwrap_or("object").to_lowercase(),
            meta_str(o, "namespace").unwrap_or(""),
            name_of(o)
        )
    }

    /// Write the Deployment's status and annotations, conditional on its cached resourceVersion; `d` becomes the
    /// stored object.
    async fn write_status(&self, d: &mut Value) -> Result<()> {
        let ns = meta_str(d, "namespace").unwrap_or("").to_string();
        let name = name_of(d).to_string();
        let reply = self
            .api
            .update(
                &path(self.deployments, &ns, Some(&name), Some("status")),
                d.clone(),
                &Query::internal(),
            )
            .await
            .map_err(|e| api_error(format!("updating status of deployment {ns}/{name}"), e))?;
        *d = reply.body;
        Ok(())
    }

    /// Write a ReplicaSet, conditional on its cached resourceVersion; returns the stored object.
    async fn write_rs(&self, rs: Value) -> Result<Value> {
        let ns = meta_str(&rs, "namespace").unwrap_or("").to_string();
        let name = name_of(&rs).to_string();
        let what = self.what(&rs);
        let reply = self
            .api
            .update(&path(self.rses, &ns, Some(&name), None), rs, &Query::internal())
            .await
            .map_err(|e| api_error(format!("updating {what}"), e))?;
        Ok(reply.body)
    }

    /// Add a Progressing condition with reason Paused or Resumed when `spec.paused` flips, so time spent paused
    /// never counts against the progress deadline (`checkPausedConditions`).
    async fn check_paused_conditions(&self, d: &mut Value) -> Result<()> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let cond = get_condition(d.get("status").unwrap_or(&Value::Null), "Progressing");
        let reason_now = cond.and_then(|c| c["reason"].as_str()).unwrap_or("");
        if reason_now == reason::TIMED_OUT {
            return Ok(());
        }
        let paused_noted = reason_now == reason::PAUSED;
        let now = format_time(Timestamp::now());
        let cond = match (is_paused(d), paused_noted) {
            (true, false) => new_condition("Progressing", "Unknown", reason::PAUSED, "Deployment is paused", &now),
            (false, true) => new_condition("Progressing", "Unknown", reason::RESUMED, "Deployment is resumed", &now),
            _ => return Ok(()),
        };
        set_condition(&mut d["status"], cond);
        self.write_status(d).await
    }

    /// The new ReplicaSet (created when `create` and missing) and all old ones, with the revisions synced
    /// (`getAllReplicaSetsAndSyncRevision`). Updated ReplicaSets replace their entries in `rs_list`.
    async fn all_rses(
        &self,
        d: &mut Value,
        rs_list: &mut Vec<Value>,
        create: bool,
    ) -> Result<(Option<Value>, Vec<Value>)> {
        let new_idx = find_new_rs(d, rs_list);
        let olds: Vec<Value> = rs_list
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .map(|(_, r)| r.clone())
            .collect();
        let new_rs = self.new_rs(d, rs_list, new_idx, &olds, create).await?;
        Ok((new_rs, olds))
    }

    /// Find or create the new ReplicaSet (`getNewReplicaSet`).
    async fn new_rs(
        &self,
        d: &mut Value,
        rs_list: &mut Vec<Value>,
        existing: Option<usize>,
        olds: &[Value],
        create: bool,
    ) -> Result<Option<Value>> {
        let new_revision = olds.iter().map(revision_of).max().unwrap_or(0) + 1;
        let has_deadline = progress_deadline(d).is_some();
        let now = format_time(Timestamp::now());
        if let Some(i) = existing {
            let mut rs = rs_list[i].clone();
            let annotations_changed = set_new_rs_annotations(d, &mut rs, new_revision, true);
            let min_ready = d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0));
            let min_ready_changed = rs.pointer("/spec/minReadySeconds").unwrap_or(&json!(0)) != &min_ready;
            if annotations_changed || min_ready_changed {
                rs["spec"]["minReadySeconds"] = min_ready;
                let written = self.write_rs(rs).await?;
                rs_list[i] = written.clone();
                return Ok(Some(written));
            }
            let revision = annotation(&rs, REVISION).unwrap_or("").to_string();
            let mut needs_update = set_deployment_revision(d, &revision);
            if has_deadline && get_condition(d.get("status").unwrap_or(&Value::Null), "Progressing").is_none() {
                let msg = format!("Found new replica set \"{}\"", name_of(&rs));
                set_condition(
                    &mut d["status"],
                    new_condition("Progressing", "True", reason::FOUND_NEW_RS, &msg, &now),
                );
                needs_update = true;
            }
            if needs_update {
                self.write_status(d).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }

        let ns = meta_str(d, "namespace").unwrap_or("").to_string();
        let d_name = name_of(d).to_string();
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template, d.pointer("/status/collisionCount").and_then(Value::as_i64));
        let mut rs_template = template.clone();
        let mut rs_labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        rs_labels.insert(HASH_LABEL.into(), json!(hash));
        rs_template["metadata"]["labels"] = Value::Object(rs_labels.clone());
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        if !selector["matchLabels"].is_object() {
            selector["matchLabels"] = json!({});
        }
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let rs_name = format!("{d_name}-{hash}");
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": ns, "labels": rs_labels,
                         "ownerReferences": [controller_ref(d)]},
            "spec": {"replicas": 0, "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                     "selector": selector, "template": rs_template},
        });
        let current_total: i64 = olds.iter().map(spec_replicas).sum();
        let replicas = new_rs_new_replicas(d, current_total, 0);
        rs["spec"]["replicas"] = json!(replicas);
        set_new_rs_annotations(d, &mut rs, new_revision, false);

        let created = match self
            .api
            .create(&path(self.rses, &ns, None, None), rs, &Query::internal())
            .await
        {
            Ok(reply) => Some(reply.body),
            Err(e) if e.code == 409 => None,
            Err(e) => {
                let msg = format!("Failed to create new replica set \"{rs_name}\": {}", e.message);
                if has_deadline && !(e.code == 403 && e.message.contains("being terminated")) {
                    set_condition(
                        &mut d["status"],
                        new_condition("Progressing", "False", reason::RS_CREATE_ERROR, &msg, &now),
                    );
                    // The creation error is what matters; a failed status write changes nothing about it.
                    let _ = self.write_status(d).await;
                    record_as(&self.api, d, "Warning", reason::RS_CREATE_ERROR, msg, COMPONENT);
                }
                return Err(Error::Api {
                    what: format!("creating replicaset {ns}/{rs_name}"),
                    source: e,
                });
            }
        };
        let (rs, already_existed) = match created {
            Some(rs) => (rs, false),
            None => {
                // Taken: ours (a slow cache) or a hash collision.
                let current = self
                    .api
                    .read(self.rses, Some(&ns), &rs_name)
                    .await
                    .map_err(|e| api_error(format!("reading replicaset {ns}/{rs_name}"), e))?;
                let ours = controller_of(&current).and_then(|r| r["uid"].as_str()) == meta_str(d, "uid");
                if ours && equal_ignore_hash(current.pointer("/spec/template").unwrap_or(&Value::Null), &template) {
                    (current, true)
                } else {
                    let count = int_at(d, "/status/collisionCount") + 1;
                    d["status"]["collisionCount"] = json!(count);
                    self.write_status(d).await?;
                    tracing::info!(deployment = %d_name, replicaset = %rs_name, collision_count = count, "hash collision");
                    return Err(Error::HashCollision {
                        deployment: format!("{ns}/{d_name}"),
                        name: rs_name,
                    });
                }
            }
        };
        if !already_existed && replicas > 0 {
            record_as(
                &self.api,
                d,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {rs_name} from 0 to {replicas}"),
                COMPONENT,
            );
        }
        if !rs_list.iter().any(|r| meta_str(r, "uid") == meta_str(&rs, "uid")) {
            rs_list.push(rs.clone());
        }
        let mut needs_update = set_deployment_revision(d, &new_revision.to_string());
        if !already_existed && has_deadline {
            let msg = format!("Created new replica set \"{rs_name}\"");
            set_condition(
                &mut d["status"],
                new_condition("Progressing", "True", reason::NEW_RS_CREATED, &msg, &now),
            );
            needs_update = true;
        }
        if needs_update {
            self.write_status(d).await?;
        }
        Ok(Some(rs))
    }

    /// Whether an active ReplicaSet was sized for another `spec.replicas` (`isScalingEvent`).
    async fn is_scaling_event(&self, d: &mut Value, rs_list: &mut Vec<Value>) -> Result<bool> {
        let (new_rs, olds) = self.all_rses(d, rs_list, false).await?;
        let replicas = spec_replicas(d);
        Ok(olds
            .iter()
            .chain(new_rs.iter())
            .filter(|r| spec_replicas(r) > 0)
            .any(|r| desired_annotation(r).is_some_and(|want| want != replicas)))
    }

    /// Resize to `new_scale` and refresh the replicas annotations (`scaleReplicaSet`). Returns whether the size
    /// changed, and the stored ReplicaSet.
    async fn scale_rs(&self, d: &Value, rs: &Value, new_scale: i64) -> Result<(bool, Value)> {
        let desired = spec_replicas(d);
        let max = desired + max_surge(d);
        let old_scale = spec_replicas(rs);
        let size_changes = old_scale != new_scale;
        if !size_changes && !replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let mut copy = rs.clone();
        copy["spec"]["replicas"] = json!(new_scale);
        set_replicas_annotations(&mut copy, desired, max);
        let written = self.write_rs(copy).await?;
        if size_changes {
            let direction = if old_scale < new_scale { "up" } else { "down" };
            tracing::info!(
                replicaset = name_of(rs),
                from = old_scale,
                to = new_scale,
                "scaled replica set"
            );
            record_as(
                &self.api,
                d,
                "Normal",
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {old_scale} to {new_scale}",
                    name_of(rs)
                ),
                COMPONENT,
            );
        }
        Ok((size_changes, written))
    }

    /// [`Controller::scale_rs`] unless the size is already right (`scaleReplicaSetAndRecordEvent`).
    async fn scale_rs_if_needed(&self, d: &Value, rs: &Value, new_scale: i64) -> Result<(bool, Value)> {
        if spec_replicas(rs) == new_scale {
            return Ok((false, rs.clone()));
        }
        self.scale_rs(d, rs, new_scale).await
    }

    /// Scale for a paused Deployment or a changed `spec.replicas` (`sync`).
    async fn sync_scale(&self, d: &mut Value, rs_list: &mut Vec<Value>) -> Result<Option<Duration>> {
        let (new_rs, olds) = self.all_rses(d, rs_list, false).await?;
        let (all, new_idx) = joined(&olds, new_rs.as_ref());
        let all = self.scale(d, all, new_idx).await?;
        let olds: Vec<Value> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .map(|(_, r)| r.clone())
            .collect();
        let new_rs = new_idx.map(|i| all[i].clone());
        if is_paused(d) {
            self.cleanup(d, &olds).await?;
        }
        self.sync_deployment_status(d, &olds, new_rs.as_ref()).await
    }

    /// Bring the ReplicaSets' sizes to `spec.replicas` (`scale`). `all` holds the old ReplicaSets and the new one
    /// at `new_idx`; returns them updated.
    async fn scale(&self, d: &Value, mut all: Vec<Value>, new_idx: Option<usize>) -> Result<Vec<Value>> {
        let replicas = spec_replicas(d);
        if let Some(i) = active_or_latest(&all, new_idx) {
            if spec_replicas(&all[i]) != replicas {
                all[i] = self.scale_rs_if_needed(d, &all[i], replicas).await?.1;
            }
            return Ok(all);
        }
        if new_idx.is_some_and(|i| is_saturated(d, &all[i])) {
            for (i, rs) in all.iter_mut().enumerate() {
                if Some(i) != new_idx && spec_replicas(rs) > 0 {
                    *rs = self.scale_rs_if_needed(d, rs, 0).await?.1;
                }
            }
            return Ok(all);
        }
        if is_rolling(d) {
            let active: Vec<usize> = (0..all.len()).filter(|&i| spec_replicas(&all[i]) > 0).collect();
            let refs: Vec<&Value> = active.iter().map(|&i| &all[i]).collect();
            let sizes = proportional_sizes(d, &refs);
            for (k, size) in sizes {
                let i = active[k];
                all[i] = self.scale_rs(d, &all[i], size).await?.1;
            }
        }
        Ok(all)
    }

    /// Delete old ReplicaSets without pods beyond `revisionHistoryLimit`, lowest revisions first
    /// (`cleanupDeployment`).
    async fn cleanup(&self, d: &Value, olds: &[Value]) -> Result<()> {
        let Some(limit) = d.pointer("/spec/revisionHistoryLimit").and_then(Value::as_i64) else {
            return Ok(());
        };
        let mut cleanable: Vec<&Value> = olds.iter().filter(|r| !is_deleting(r)).collect();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| revision_of(a).cmp(&revision_of(b)).then_with(|| by_creation(a, b)));
        for rs in cleanable.into_iter().take(diff as usize) {
            if int_at(rs, "/status/replicas") != 0
                || spec_replicas(rs) != 0
                || int_at(rs, "/metadata/generation") > int_at(rs, "/status/observedGeneration")
            {
                continue;
            }
            let ns = meta_str(rs, "namespace").unwrap_or("");
            tracing::info!(replicaset = name_of(rs), "deleting old replica set");
            match self
                .api
                .delete(
                    &path(self.rses, ns, Some(name_of(rs)), None),
                    json!({}),
                    &Query::internal(),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(api_error(format!("deleting {}", self.what(rs)), e)),
            }
        }
        Ok(())
    }

    /// A RollingUpdate step (`rolloutRolling`).
    async fn rollout_rolling(&self, d: &mut Value, rs_list: &mut Vec<Value>) -> Result<Option<Duration>> {
        let (new_rs, mut olds) = self.all_rses(d, rs_list, true).await?;
        let Some(mut new_rs) = new_rs else {
            return Ok(None);
        };
        // Scale up, if we can.
        let replicas = spec_replicas(d);
        let new_spec = spec_replicas(&new_rs);
        if new_spec != replicas {
            let target = if new_spec > replicas {
                replicas
            } else {
                let total: i64 = olds.iter().map(spec_replicas).sum::<i64>() + new_spec;
                new_rs_new_replicas(d, total, new_spec)
            };
            let (scaled, updated) = self.scale_rs_if_needed(d, &new_rs, target).await?;
            new_rs = updated;
            if scaled {
                return self.sync_rollout_status(d, &olds, Some(&new_rs)).await;
            }
        }
        // Scale down, if we can.
        if self.reconcile_old_rses(d, &mut olds, &new_rs).await? {
            return self.sync_rollout_status(d, &olds, Some(&new_rs)).await;
        }
        if deployment_complete(d, d.get("status").unwrap_or(&Value::Null)) {
            self.cleanup(d, &olds).await?;
        }
        self.sync_rollout_status(d, &olds, Some(&new_rs)).await
    }

    /// Scale old ReplicaSets down as far as availability allows, unhealthy pods first
    /// (`reconcileOldReplicaSets`). Returns whether anything was scaled.
    async fn reconcile_old_rses(&self, d: &Value, olds: &mut [Value], new_rs: &Value) -> Result<bool> {
        let old_total: i64 = olds.iter().map(spec_replicas).sum();
        if old_total == 0 {
            return Ok(false);
        }
        let min_available = spec_replicas(d) - max_unavailable(d);
        let limit = max_scaled_down(
            old_total + spec_replicas(new_rs),
            min_available,
            spec_replicas(new_rs),
            available(new_rs),
        );
        if limit <= 0 {
            return Ok(false);
        }
        let mut order: Vec<usize> = (0..olds.len()).filter(|&i| spec_replicas(&olds[i]) > 0).collect();
        order.sort_by(|&a, &b| by_creation(&olds[a], &olds[b]));
        let mut scaled = false;
        let counts: Vec<(i64, i64)> = order
            .iter()
            .map(|&i| (spec_replicas(&olds[i]), available(&olds[i])))
            .collect();
        for (k, size) in plan_cleanup_unhealthy(&counts, limit) {
            let i = order[k];
            let (s, updated) = self.scale_rs_if_needed(d, &olds[i], size).await?;
            olds[i] = updated;
            scaled |= s;
        }
        // Available pods of a ReplicaSet never exceed its size once its controller caught up; counting at most
        // `spec.replicas` keeps a status that still counts pods being removed from allowing a deeper cut.
        let counted = |rs: &Value| available(rs).min(spec_replicas(rs));
        let available_now: i64 = order.iter().map(|&i| counted(&olds[i])).sum::<i64>() + counted(new_rs);
        let specs: Vec<i64> = order.iter().map(|&i| spec_replicas(&olds[i])).collect();
        for (k, size) in plan_scale_down(&specs, available_now, min_available) {
            let i = order[k];
            let (s, updated) = self.scale_rs_if_needed(d, &olds[i], size).await?;
            olds[i] = updated;
            scaled |= s;
        }
        Ok(scaled)
    }

    /// A Recreate step (`rolloutRecreate`): old ReplicaSets to zero, wait for their pods to be gone, then the new
    /// one to `spec.replicas`.
    async fn rollout_recreate(
        &self,
        d: &mut Value,
        rs_list: &mut Vec<Value>,
        selector: &LabelSelector,
    ) -> Result<Option<Duration>> {
        let (new_rs, mut olds) = self.all_rses(d, rs_list, false).await?;
        let mut scaled = false;
        for rs in olds.iter_mut() {
            if spec_replicas(rs) == 0 {
                continue;
            }
            let (s, updated) = self.scale_rs_if_needed(d, rs, 0).await?;
            *rs = updated;
            scaled |= s;
        }
        if scaled || self.old_pods_running(d, new_rs.as_ref(), &olds, selector) {
            return self.sync_rollout_status(d, &olds, new_rs.as_ref()).await;
        }
        let (new_rs, olds) = match new_rs {
            Some(n) => (n, olds),
            None => match self.all_rses(d, rs_list, true).await? {
                (Some(n), o) => (n, o),
                (None, _) => return Ok(None),
            },
        };
        let (_, new_rs) = self.scale_rs_if_needed(d, &new_rs, spec_replicas(d)).await?;
        if deployment_complete(d, d.get("status").unwrap_or(&Value::Null)) {
            self.cleanup(d, &olds).await?;
        }
        self.sync_rollout_status(d, &olds, Some(&new_rs)).await
    }

    /// Whether any old ReplicaSet still reports pods, or any pod of one is not yet gone or finished
    /// (`oldPodsRunning`).
    fn old_pods_running(&self, d: &Value, new_rs: Option<&Value>, olds: &[Value], selector: &LabelSelector) -> bool {
        if olds.iter().map(|r| int_at(r, "/status/replicas")).sum::<i64>() > 0 {
            return true;
        }
        let old_uids: HashSet<&str> = olds
            .iter()
            .filter_map(|r| meta_str(r, "uid"))
            .filter(|u| new_rs.and_then(|n| meta_str(n, "uid")) != Some(*u))
            .collect();
        let ns = meta_str(d, "namespace").unwrap_or("");
        self.inf.pods.list(Some(ns)).iter().any(|p| {
            selector.matches(&labels(p))
                && controller_of(p)
                    .and_then(|r| r["uid"].as_str())
                    .is_some_and(|u| old_uids.contains(u))
                && !matches!(
                    p.pointer("/status/phase").and_then(Value::as_str),
                    Some("Succeeded" | "Failed")
                )
        })
    }

    /// Write the status if it changed (`syncDeploymentStatus`).
    async fn sync_deployment_status(
        &self,
        d: &mut Value,
        olds: &[Value],
        new_rs: Option<&Value>,
    ) -> Result<Option<Duration>> {
        let all: Vec<&Value> = olds.iter().chain(new_rs).collect();
        let status = calculate_status(d, &all, new_rs, &format_time(Timestamp::now()));
        if d.get("status") == Some(&status) {
            return Ok(None);
        }
        d["status"] = status;
        self.write_status(d).await?;
        Ok(None)
    }

    /// Write the status with the rollout's conditions (`syncRolloutStatus`); when nothing changed, say when to
    /// look again for the progress deadline.
    async fn sync_rollout_status(
        &self,
        d: &mut Value,
        olds: &[Value],
        new_rs: Option<&Value>,
    ) -> Result<Option<Duration>> {
        let now = Timestamp::now();
        let all: Vec<&Value> = olds.iter().chain(new_rs).collect();
        let mut status = calculate_status(d, &all, new_rs, &format_time(now));
        progress_condition(d, &mut status, new_rs, now);
        replica_failure_condition(&mut status, &all, new_rs);
        if d.get("status") == Some(&status) {
            return Ok(requeue_stuck(d, &status, now));
        }
        d["status"] = status;
        self.write_status(d).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, surge: Value, unavailable: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "generation": 1},
               "spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
               "status": {}})
    }

    fn rs(name: &str, created: &str, replicas: i64, max_annotation: Option<i64>) -> Value {
        let mut r = json!({"metadata": {"name": name, "creationTimestamp": created, "annotations": {}},
                           "spec": {"replicas": replicas}, "status": {}});
        if let Some(m) = max_annotation {
            r["metadata"]["annotations"][MAX_REPLICAS] = json!(m.to_string());
        }
        r
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        assert_eq!(scaled_value(Some(&json!("25%")), 10, true), 3);
        assert_eq!(scaled_value(Some(&json!("25%")), 10, false), 2);
        assert_eq!(scaled_value(Some(&json!(2)), 10, false), 2);
        assert_eq!(scaled_value(None, 10, true), 0);
        // Both rounding to zero: one may be unavailable.
        assert_eq!(resolve_fenceposts(Some(&json!("0%")), Some(&json!("25%")), 3), (0, 1));
        assert_eq!(resolve_fenceposts(Some(&json!("25%")), Some(&json!("25%")), 3), (1, 0));
        let d = deploy(4, json!(1), json!(5));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 4));
        let mut recreate = deploy(4, json!(1), json!(1));
        recreate["spec"]["strategy"] = json!({"type": "Recreate"});
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deploy(4, json!(1), json!(1));
        // 4 old pods: one more may be created.
        assert_eq!(new_rs_new_replicas(&d, 4, 0), 1);
        // Already at 5 in total: no growth.
        assert_eq!(new_rs_new_replicas(&d, 5, 1), 1);
        // Never past spec.replicas.
        assert_eq!(new_rs_new_replicas(&d, 3, 3), 4);
        let d = deploy(10, json!("30%"), json!(0));
        assert_eq!(new_rs_new_replicas(&d, 10, 0), 3);
    }

    #[test]
    fn old_replica_sets_shrink_within_unavailability() {
        // 4 replicas, maxUnavailable 1: min 3 available. Old 4 (all available) + new 1 (not yet available).
        assert_eq!(max_scaled_down(5, 3, 1, 0), 1);
        assert_eq!(plan_cleanup_unhealthy(&[(4, 4)], 1), vec![]);
        assert_eq!(plan_scale_down(&[4], 4, 3), vec![(0, 3)]);
        // Unhealthy old pods go first, oldest ReplicaSet first, within the limit.
        assert_eq!(plan_cleanup_unhealthy(&[(2, 1), (3, 0)], 2), vec![(0, 1), (1, 2)]);
        // Nothing above the minimum: nothing goes.
        assert_eq!(plan_scale_down(&[2, 2], 3, 3), vec![]);
        assert_eq!(plan_scale_down(&[2, 0, 2], 6, 3), vec![(0, 0), (2, 1)]);
    }

    #[test]
    fn proportional_scaling_spreads_by_size() {
        // 10 replicas mid-rollout (maxSurge 3): old 8, new 5 = 13 = 10 + 3. Scale to 20 (maxSurge 5 at 25%).
        let mut d = deploy(20, json!("25%"), json!("25%"));
        d["status"]["replicas"] = json!(13);
        let old = rs("old", "2025-01-01T00:00:00Z", 8, Some(13));
        let new = rs("new", "2025-01-01T00:01:00Z", 5, Some(13));
        let sizes = proportional_sizes(&d, &[&old, &new]);
        // allowed 25, to add 12: old gets round(8*25/13)-8 = 7, new gets round(5*25/13)-5 = 5.
        let mut by_index: Vec<(usize, i64)> = sizes.clone();
        by_index.sort();
        assert_eq!(by_index, vec![(0, 15), (1, 10)]);
        assert_eq!(sizes[0].0, 0, "the larger ReplicaSet comes first");
        // Scaling down to 0 empties everything.
        let zero = deploy(0, json!("25%"), json!("25%"));
        let mut sizes = proportional_sizes(&zero, &[&old, &new]);
        sizes.sort();
        assert_eq!(sizes, vec![(0, 0), (1, 0)]);
    }

    #[test]
    fn active_or_latest_picks_the_single_active_one() {
        let a = rs("a", "2025-01-01T00:00:00Z", 0, None);
        let b = rs("b", "2025-01-01T00:05:00Z", 0, None);
        let c = rs("c", "2025-01-01T00:09:00Z", 3, None);
        assert_eq!(active_or_latest(&[a.clone(), b.clone()], None), Some(1));
        assert_eq!(active_or_latest(&[a.clone(), b.clone()], Some(0)), Some(0));
        assert_eq!(active_or_latest(&[a.clone(), c.clone()], Some(0)), Some(1));
        assert_eq!(active_or_latest(&[c.clone(), c], None), None);
        assert_eq!(active_or_latest(&[], None), None);
    }

    #[test]
    fn template_hash_ignores_hash_label_and_key_order() {
        let t1 = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        let t2 = json!({"spec": {"containers": [{"image": "a", "name": "c"}]},
                        "metadata": {"creationTimestamp": null, "labels": {"app": "web", HASH_LABEL: "xyz"}}});
        assert!(equal_ignore_hash(&t1, &t2));
        assert_eq!(template_hash(&t1, None), template_hash(&t2, None));
        let t3 = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "b"}]}});
        assert!(!equal_ignore_hash(&t1, &t3));
        assert_ne!(template_hash(&t1, None), template_hash(&t3, None));
        assert_ne!(template_hash(&t1, None), template_hash(&t1, Some(1)));
        let h = template_hash(&t1, None);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn revision_annotations_on_rollback_keep_history() {
        let mut d = deploy(3, json!(1), json!(1));
        d["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": "v1", REVISION: "2",
                                              "kubectl.kubernetes.io/last-applied-configuration": "{}"});
        let mut new = rs("web-1", "2025-01-01T00:00:00Z", 0, None);
        assert!(set_new_rs_annotations(&d, &mut new, 1, false));
        assert_eq!(annotation(&new, REVISION), Some("1"));
        assert_eq!(annotation(&new, "kubernetes.io/change-cause"), Some("v1"));
        assert_eq!(annotation(&new, DESIRED_REPLICAS), Some("3"));
        assert_eq!(annotation(&new, MAX_REPLICAS), Some("4"));
        assert_eq!(
            annotation(&new, "kubectl.kubernetes.io/last-applied-configuration"),
            None
        );
        // Nothing new: unchanged.
        assert!(!set_new_rs_annotations(&d, &mut new, 1, true));
        // Rolled back to: the next revision, the old one remembered.
        assert!(set_new_rs_annotations(&d, &mut new, 3, true));
        assert_eq!(annotation(&new, REVISION), Some("3"));
        assert_eq!(annotation(&new, REVISION_HISTORY), Some("1"));
        assert!(set_new_rs_annotations(&d, &mut new, 5, true));
        assert_eq!(annotation(&new, REVISION_HISTORY), Some("1,3"));
        // A lower revision never lowers it.
        assert!(!set_new_rs_annotations(&d, &mut new, 2, true));
        assert_eq!(revision_of(&new), 5);
    }

    #[test]
    fn conditions_keep_transition_time_when_status_holds() {
        let mut status = json!({});
        set_condition(
            &mut status,
            new_condition("Progressing", "True", reason::NEW_RS_CREATED, "a", "t1"),
        );
        set_condition(
            &mut status,
            new_condition("Progressing", "True", reason::RS_UPDATED, "b", "t2"),
        );
        let c = get_condition(&status, "Progressing").expect("condition");
        assert_eq!(
            (c["reason"].as_str(), c["lastTransitionTime"].as_str()),
            (Some(reason::RS_UPDATED), Some("t1"))
        );
        // Same status and reason: no change at all.
        set_condition(
            &mut status,
            new_condition("Progressing", "True", reason::RS_UPDATED, "c", "t3"),
        );
        assert_eq!(
            get_condition(&status, "Progressing").expect("condition")["message"],
            "b"
        );
        set_condition(
            &mut status,
            new_condition("Progressing", "False", reason::TIMED_OUT, "d", "t4"),
        );
        assert_eq!(
            get_condition(&status, "Progressing").expect("condition")["lastTransitionTime"],
            "t4"
        );
        remove_condition(&mut status, "Progressing");
        assert!(status.get("conditions").is_none());
    }

    #[test]
    fn status_and_progress() {
        let mut d = deploy(3, json!(1), json!(1));
        d["spec"]["progressDeadlineSeconds"] = json!(600);
        let mut new = rs("web-2", "2025-01-01T00:01:00Z", 3, None);
        new["status"] = json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        let mut old = rs("web-1", "2025-01-01T00:00:00Z", 0, None);
        old["status"] = json!({"replicas": 0});
        let now: Timestamp = "2025-01-01T01:00:00Z".parse().expect("time");
        let mut status = calculate_status(&d, &[&old, &new], Some(&new), "t");
        assert_eq!(status["replicas"], 3);
        assert_eq!(status["updatedReplicas"], 3);
        assert_eq!(status["availableReplicas"], 3);
        assert_eq!(status["observedGeneration"], 1);
        assert!(status.get("unavailableReplicas").is_none());
        assert_eq!(
            get_condition(&status, "Available").expect("available")["status"],
            "True"
        );
        assert!(deployment_complete(&d, &status));
        progress_condition(&d, &mut status, Some(&new), now);
        let p = get_condition(&status, "Progressing").expect("progressing");
        assert_eq!(p["reason"], reason::NEW_RS_AVAILABLE);
        assert_eq!(p["message"], "ReplicaSet \"web-2\" has successfully progressed.");

        // A stuck rollout times out once the deadline passed since the last update.
        let mut stuck = deploy(3, json!(1), json!(1));
        stuck["spec"]["progressDeadlineSeconds"] = json!(60);
        stuck["status"] = json!({"replicas": 3, "updatedReplicas": 3, "conditions": [new_condition("Progressing", "True", reason::RS_UPDATED, "m",
                                                               "2025-01-01T00:58:30Z")]});
        let mut pending = rs("web-3", "2025-01-01T00:58:00Z", 3, None);
        pending["status"] = json!({"replicas": 3});
        let mut status = calculate_status(&stuck, &[&pending], Some(&pending), "t");
        assert_eq!(
            get_condition(&status, "Available").expect("available")["reason"],
            reason::MIN_UNAVAILABLE
        );
        assert_eq!(
            requeue_stuck(&stuck, &status, "2025-01-01T00:59:00Z".parse().expect("time")),
            Some(Duration::from_secs(30))
        );
        progress_condition(&stuck, &mut status, Some(&pending), now);
        let p = get_condition(&status, "Progressing").expect("progressing");
        assert_eq!(
            (p["status"].as_str(), p["reason"].as_str()),
            (Some("False"), Some(reason::TIMED_OUT))
        );
    }

    #[test]
    fn new_replica_set_is_the_oldest_with_the_template() {
        let d = deploy(3, json!(1), json!(1));
        let mut a = rs("a", "2025-01-01T00:05:00Z", 0, None);
        a["spec"]["template"] = d["spec"]["template"].clone();
        a["spec"]["template"]["metadata"]["labels"][HASH_LABEL] = json!("h");
        let mut b = a.clone();
        b["metadata"]["name"] = json!("b");
        b["metadata"]["creationTimestamp"] = json!("2025-01-01T00:01:00Z");
        let mut other = rs("o", "2025-01-01T00:00:00Z", 0, None);
        other["spec"]["template"] = json!({"metadata": {"labels": {"app": "web"}}, "spec": {}});
        assert_eq!(find_new_rs(&d, &[other.clone(), a, b]), Some(2));
        assert_eq!(find_new_rs(&d, &[other]), None);
    }
}
