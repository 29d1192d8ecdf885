//! The node lifecycle controller, with the taint eviction controller beside it, as kube-controller-manager runs
//! them:
//!
//! - **Health.** A node's heartbeats are its Lease in `kube-node-lease` (`spec.renewTime`) and its Ready
//!   condition's `lastHeartbeatTime`. When neither has changed for the grace period (observed on this process's
//!   clock, as the real controller does), the node's Ready, MemoryPressure, DiskPressure and PIDPressure
//!   conditions become `Unknown` (`NodeStatusUnknown`, "Kubelet stopped posting node status."), its pods' Ready
//!   conditions become False, and `NodeNotReady` events are recorded. The kubelet sets Ready again when it is back.
//! - **Taints from conditions.** Ready False/Unknown put `node.kubernetes.io/not-ready` / `unreachable` with
//!   `NoSchedule` and `NoExecute` on the node; pressure conditions and `spec.unschedulable` (cordon) put their
//!   `NoSchedule` taints; each is removed when its condition clears.
//! - **Eviction.** A pod on a node with `NoExecute` taints it does not tolerate is deleted at once; one that
//!   tolerates them all is deleted after the smallest `tolerationSeconds` of the tolerations used (never when none
//!   is bounded). Before deletion the pod gets `DisruptionTarget=True` (`DeletionByTaintManager`) and a
//!   `TaintManagerEviction` event. Workload controllers then replace the pod elsewhere.
//!
//! Not done: zone-aware eviction rate limiting and the full-disruption mode.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::scheduler::{Readiness, Taint, Toleration, readiness};
use super::{Change, Informers, event, key_of, res};
use crate::api::Api;
use crate::api::object::{meta_str, now_rfc3339};
use crate::api::request::Query;
use crate::api::route::ResourcePath;

/// How long a node may go without a heartbeat before it is marked Unknown (kube-controller-manager's
/// `--node-monitor-grace-period`).
pub const NODE_MONITOR_GRACE_PERIOD: Duration = Duration::from_secs(40);
/// How long a node that never posted a Ready condition gets (`--node-startup-grace-period`).
pub const NODE_STARTUP_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// The default `tolerationSeconds` of the `not-ready`/`unreachable` `NoExecute` tolerations that API defaulting
/// (DefaultTolerationSeconds) gives every pod: how long pods stay on a node that stopped reporting.
pub const POD_EVICTION_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest pause between health passes (`--node-monitor-period`).
const MAX_MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// Shortest pause between health passes.
const MIN_MONITOR_PERIOD: Duration = Duration::from_millis(100);
/// The Lease namespace of node heartbeats.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Event source of the health and taint work.
const NODE_CONTROLLER: &str = "node-controller";
/// Event source of evictions.
const EVICTION_CONTROLLER: &str = "taint-eviction-controller";
/// The conditions a silent node's are set to Unknown (the kubelet owns the rest).
const MONITORED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// The taints this controller adds and removes, by key and effect.
const MANAGED_TAINTS: [(&str, &str); 9] = [
    (NOT_READY, "NoSchedule"),
    (NOT_READY, "NoExecute"),
    (UNREACHABLE, "NoSchedule"),
    (UNREACHABLE, "NoExecute"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/network-unavailable", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// How often node health is checked for a grace period: an eighth of it, between 100 ms and 5 s.
pub fn monitor_period(grace: Duration) -> Duration {
    (grace / 8).clamp(MIN_MONITOR_PERIOD, MAX_MONITOR_PERIOD)
}

// ---------------------------------------------------------------------------------------------------------------
// Pure transformations.

fn conditions(o: &Value) -> &[Value] {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    conditions(o).iter().find(|c| c["type"] == type_)
}

fn heartbeat(node: &Value) -> Option<String> {
    condition(node, "Ready")
        .and_then(|c| c["lastHeartbeatTime"].as_str())
        .map(str::to_string)
}

/// A node whose kubelet went silent: the monitored conditions become Unknown (added as never updated when
/// missing); heartbeat times are kept. Unchanged when they already are.
pub fn with_unknown_conditions(node: &Value, now: &str) -> Value {
    let mut o = node.clone();
    if !o.get("status").is_some_and(Value::is_object) {
        o["status"] = json!({});
    }
    let created = node
        .pointer("/metadata/creationTimestamp")
        .cloned()
        .unwrap_or(Value::Null);
    let conds = o["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else { return o };
    for type_ in MONITORED_CONDITIONS {
        match conds.iter_mut().find(|c| c["type"] == type_) {
            Some(c) if c["status"] == "Unknown" => {}
            Some(c) => {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now);
            }
            None => conds.push(
                json!({"type": type_, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.", "lastHeartbeatTime": created,
                "lastTransitionTime": now}),
            ),
        }
    }
    o
}

/// The managed taints a node should carry given its conditions and `spec.unschedulable`.
pub fn desired_taints(node: &Value) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match condition(node, "Ready").and_then(|c| c["status"].as_str()) {
        Some("False") => out.extend([(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]),
        Some("True") | None => {}
        Some(_) => out.extend([(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]),
    }
    for (cond, key) in [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        ("NetworkUnavailable", "node.kubernetes.io/network-unavailable"),
    ] {
        if condition(node, cond).is_some_and(|c| c["status"] == "True") {
            out.push((key, "NoSchedule"));
        }
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        out.push(("node.kubernetes.io/unschedulable", "NoSchedule"));
    }
    out
}

/// The node with its managed taints brought in line with [`desired_taints`]: stale ones removed, missing ones
/// added with `timeAdded`; other taints are left alone. Unchanged when already in line.
pub fn with_controller_taints(node: &Value, now: &str) -> Value {
    let desired = desired_taints(node);
    let current = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key_effect = |t: &Value| {
        (
            t["key"].as_str().unwrap_or("").to_string(),
            t["effect"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut taints: Vec<Value> = current
        .into_iter()
        .filter(|t| {
            let (k, e) = key_effect(t);
            let managed = MANAGED_TAINTS.iter().any(|(mk, me)| *mk == k && *me == e);
            !managed || desired.iter().any(|(dk, de)| *dk == k && *de == e)
        })
        .collect();
    for (k, e) in &desired {
        if !taints
            .iter()
            .any(|t| key_effect(t) == ((*k).to_string(), (*e).to_string()))
        {
            taints.push(json!({"key": k, "effect": e, "timeAdded": now}));
        }
    }
    let mut o = node.clone();
    if taints.is_empty() {
        // An empty list and no list mean the same: leave whichever is there.
        if node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
            && let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.remove("taints");
        }
    } else {
        if !o.get("spec").is_some_and(Value::is_object) {
            o["spec"] = json!({});
        }
        o["spec"]["taints"] = json!(taints);
    }
    o
}

/// Set (or replace) a pod condition; `lastTransitionTime` moves only when the status changes. Unchanged when
/// the condition already says the same.
pub fn with_pod_condition(
    pod: &Value,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) -> Value {
    let mut o = pod.clone();
    if !o.get("status").is_some_and(Value::is_object) {
        o["status"] = json!({});
    }
    let conds = o["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else { return o };
    match conds.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] != status {
                c["status"] = json!(status);
                c["lastTransitionTime"] = json!(now);
            }
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            if let Some(m) = message {
                c["message"] = json!(m);
            }
        }
        None => {
            let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            if let Some(m) = message {
                c["message"] = json!(m);
            }
            conds.push(c);
        }
    }
    o
}

/// What to do with a pod on a node with `NoExecute` taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No NoExecute taint, or every one tolerated without a time limit.
    Stay,
    /// A taint is not tolerated.
    EvictNow,
    /// Evict once this long has passed since the taints were seen.
    EvictAfter(Duration),
}

/// Whether a toleration is exactly one API defaulting adds (DefaultTolerationSeconds).
fn is_defaulted(t: &Toleration) -> bool {
    (t.key == NOT_READY || t.key == UNREACHABLE)
        && t.operator == "Exists"
        && t.effect == "NoExecute"
        && t.seconds == i64::try_from(POD_EVICTION_TIMEOUT.as_secs()).ok()
}

/// The taint eviction decision (GetMatchingTolerations + getMinTolerationTime): every taint must be tolerated;
/// the pod stays for the smallest `tolerationSeconds` among the tolerations that match (0 or less: not at all),
/// forever when none is bounded. `override_default` replaces the seconds of defaulted tolerations.
pub fn verdict(taints: &[Taint], tolerations: &[Toleration], override_default: Option<Duration>) -> Verdict {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Verdict::Stay;
    }
    let mut min: Option<Duration> = None;
    for taint in no_execute {
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| t.tolerates(taint)).collect();
        if matching.is_empty() {
            return Verdict::EvictNow;
        }
        for t in matching {
            let secs = match (override_default, t.seconds) {
                (Some(d), Some(_)) if is_defaulted(t) => Some(d),
                (_, Some(s)) => Some(Duration::from_secs(u64::try_from(s).unwrap_or(0))),
                (_, None) => None,
            };
            if let Some(s) = secs {
                min = Some(min.map_or(s, |m| m.min(s)));
            }
        }
    }
    match min {
        None => Verdict::Stay,
        Some(d) if d.is_zero() => Verdict::EvictNow,
        Some(d) => Verdict::EvictAfter(d),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The controller.

/// What was last observed of a node.
struct Health {
    /// When a heartbeat was last seen to change.
    probe: Instant,
    heartbeat: Option<String>,
    renew: Option<String>,
    ready: Readiness,
}

/// A pending eviction.
struct Scheduled {
    uid: String,
    created: Instant,
    fire: Instant,
}

struct Lifecycle {
    api: Arc<Api>,
    inf: Arc<Informers>,
    grace: Duration,
    health: HashMap<String, Health>,
    evictions: HashMap<String, Scheduled>,
}

/// The API path of the Node `name`.
pub(super) fn node_path(name: &str) -> ResourcePath {
    ResourcePath {
        res: res("v1", "Node"),
        namespace: None,
        name: Some(name.to_string()),
        sub: None,
        watch_path: false,
    }
}

fn pod_path(ns: &str, name: &str) -> ResourcePath {
    ResourcePath {
        res: res("v1", "Pod"),
        namespace: Some(ns.to_string()),
        name: Some(name.to_string()),
        sub: None,
        watch_path: false,
    }
}

fn pod_node(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Lifecycle {
    fn pods_on(&self, node: &str) -> Vec<Arc<Value>> {
        self.inf
            .pods
            .list(None)
            .into_iter()
            .filter(|p| pod_node(p) == Some(node))
            .collect()
    }

    /// Check one node's heartbeats, conditions and taints.
    async fn reconcile_node(&mut self, name: &str, now: Instant) {
        let Some(node) = self.inf.nodes.get("", name) else {
            self.health.remove(name);
            return;
        };
        let beat = heartbeat(&node);
        let renew = self
            .inf
            .leases
            .get(LEASE_NAMESPACE, name)
            .and_then(|l| l.pointer("/spec/renewTime").and_then(Value::as_str).map(str::to_string));
        if !self.health.contains_key(name) {
            let msg = format!("Node {name} event: Registered Node {name} in Controller");
            event(&self.api, &node, "Normal", "RegisteredNode", &msg, NODE_CONTROLLER).await;
        }
        let h = self.health.entry(name.to_string()).or_insert_with(|| Health {
            probe: now,
            heartbeat: beat.clone(),
            renew: renew.clone(),
            ready: readiness(&node),
        });
        if h.heartbeat != beat || h.renew != renew {
            h.probe = now;
            h.heartbeat = beat.clone();
            h.renew = renew;
        }
        let limit = if condition(&node, "Ready").is_some() {
            self.grace
        } else {
            self.grace.max(NODE_STARTUP_GRACE_PERIOD)
        };
        let silent = now.duration_since(h.probe) > limit;
        let was = h.ready;
        let mut current = node.clone();
        let stamp = now_rfc3339();
        if silent && with_unknown_conditions(&node, &stamp) != *node {
            tracing::info!(node = name, silent_for = ?now.duration_since(h.probe), "node stopped posting status");
            let written = self
                .api
                .modify_status_with(&node_path(name), name, |cur| {
                    // The kubelet may have just posted: then it is not silent.
                    if heartbeat(cur) != beat {
                        return Ok(cur.clone());
                    }
                    Ok(with_unknown_conditions(cur, &stamp))
                })
                .await;
            match written {
                Ok(o) => current = Arc::new(o),
                Err(e) => tracing::warn!(node = name, error = %e.message, "marking node Unknown failed"),
            }
        }
        let is = readiness(&current);
        if let Some(h) = self.health.get_mut(name) {
            h.ready = is;
        }
        if was == Readiness::Ready && is != Readiness::Ready {
            let msg = format!("Node {name} status is now: NodeNotReady");
            event(&self.api, &current, "Normal", "NodeNotReady", &msg, NODE_CONTROLLER).await;
            self.mark_pods_not_ready(name).await;
        } else if was != Readiness::Ready && is == Readiness::Ready {
            let msg = format!("Node {name} status is now: NodeReady");
            event(&self.api, &current, "Normal", "NodeReady", &msg, NODE_CONTROLLER).await;
        }
        if with_controller_taints(&current, &stamp) != *current {
            let written = self
                .api
                .modify_with(&node_path(name), name, |cur| Ok(with_controller_taints(cur, &stamp)))
                .await;
            match written {
                Ok(()) => tracing::info!(node = name, taints = ?desired_taints(&current), "node taints updated"),
                Err(e) => tracing::warn!(node = name, error = %e.message, "updating node taints failed"),
            }
        }
    }

    /// MarkPodsNotReady: the pods of a node that stopped reporting are not Ready.
    async fn mark_pods_not_ready(&self, node: &str) {
        for pod in self.pods_on(node) {
            if !condition(&pod, "Ready").is_some_and(|c| c["status"] == "True") {
                continue;
            }
            let (ns, name) = (
                meta_str(&pod, "namespace").unwrap_or(""),
                meta_str(&pod, "name").unwrap_or(""),
            );
            let stamp = now_rfc3339();
            let written = self
                .api
                .modify_status_with(&pod_path(ns, name), name, |cur| {
                    if pod_node(cur) != Some(node) || !condition(cur, "Ready").is_some_and(|c| c["status"] == "True") {
                        return Ok(cur.clone());
                    }
                    Ok(with_pod_condition(cur, "Ready", "False", None, None, &stamp))
                })
                .await;
            match written {
                Ok(_) => {
                    event(
                        &self.api,
                        &pod,
                        "Warning",
                        "NodeNotReady",
                        "Node is not ready",
                        NODE_CONTROLLER,
                    )
                    .await
                }
                Err(e) if e.code == 404 => {}
                Err(e) => tracing::warn!(pod = %key_of(&pod), error = %e.message, "marking pod not ready failed"),
            }
        }
    }

    /// Decide, for one pod, whether and when it is evicted from its node.
    async fn process_pod(&mut self, pod: &Value, taints: &[Taint], now: Instant) {
        let key = key_of(pod);
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            self.evictions.remove(&key);
            return;
        }
        let uid = meta_str(pod, "uid").unwrap_or("").to_string();
        let tolerations = Toleration::list(pod.get("spec").unwrap_or(&Value::Null));
        match verdict(taints, &tolerations, self.api.pod_eviction_timeout) {
            Verdict::Stay => self.cancel(&key, pod).await,
            Verdict::EvictNow => self.schedule(key, uid, now, Duration::ZERO),
            Verdict::EvictAfter(d) => self.schedule(key, uid, now, d),
        }
    }

    fn schedule(&mut self, key: String, uid: String, now: Instant, after: Duration) {
        let created = match self.evictions.get(&key) {
            Some(s) if s.uid == uid => s.created,
            _ => now,
        };
        let fire = if after.is_zero() { now } else { created + after };
        tracing::debug!(pod = %key, in_ = ?fire.saturating_duration_since(now), "eviction scheduled");
        self.evictions.insert(key, Scheduled { uid, created, fire });
    }

    async fn cancel(&mut self, key: &str, pod: &Value) {
        if self.evictions.remove(key).is_some() {
            let msg = format!("Cancelling deletion of Pod {key}");
            event(
                &self.api,
                pod,
                "Normal",
                "TaintManagerEviction",
                &msg,
                EVICTION_CONTROLLER,
            )
            .await;
        }
    }

    /// Re-decide every pod on a node (its NoExecute taints changed, or it is new).
    async fn process_node_pods(&mut self, node: &str, now: Instant) {
        let taints = self
            .inf
            .nodes
            .get("", node)
            .map(|n| Taint::list(&n))
            .unwrap_or_default();
        for pod in self.pods_on(node) {
            self.process_pod(&pod, &taints, now).await;
        }
    }

    /// Evict every pod whose time has come.
    fn fire_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .evictions
            .iter()
            .filter(|(_, s)| s.fire <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(s) = self.evictions.remove(&key) else { continue };
            let api = self.api.clone();
            let inf = self.inf.clone();
            tokio::spawn(async move { evict(&api, &inf, &key, &s.uid).await });
        }
    }

    fn next_fire(&self) -> Option<Instant> {
        self.evictions.values().map(|s| s.fire).min()
    }
}

/// Delete a pod for a NoExecute taint: event, DisruptionTarget condition, then a graceful delete of that uid.
async fn evict(api: &Api, inf: &Informers, key: &str, uid: &str) {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let Some(pod) = inf.pods.get(ns, name) else { return };
    if meta_str(&pod, "uid") != Some(uid) {
        return;
    }
    tracing::info!(pod = %key, node = pod_node(&pod).unwrap_or(""), "evicting pod for NoExecute taint");
    let msg = format!("Marking for deletion Pod {key}");
    event(api, &pod, "Normal", "TaintManagerEviction", &msg, EVICTION_CONTROLLER).await;
    let rp = pod_path(ns, name);
    let stamp = now_rfc3339();
    let marked = api
        .modify_status_with(&rp, name, |cur| {
            Ok(with_pod_condition(
                cur,
                "DisruptionTarget",
                "True",
                Some("DeletionByTaintManager"),
                Some("Taint manager: deleting due to NoExecute taint"),
                &stamp,
            ))
        })
        .await;
    if let Err(e) = marked {
        if e.code != 404 {
            tracing::warn!(pod = %key, error = %e.message, "marking pod for eviction failed");
        }
        return;
    }
    let options = json!({"preconditions": {"uid": uid}});
    if let Err(e) = api.delete(&rp, options, &Query::internal()).await
        && e.code != 404
        && e.code != 409
    {
        tracing::warn!(pod = %key, error = %e.message, "evicting pod failed");
    }
}

/// Whether a pod change can change its eviction: it appeared, went, moved, or its tolerations changed.
fn pod_change_matters(c: &Change) -> bool {
    match (&c.old, &c.new) {
        (Some(o), Some(n)) => {
            pod_node(o) != pod_node(n)
                || o.pointer("/spec/tolerations") != n.pointer("/spec/tolerations")
                || o.pointer("/metadata/deletionTimestamp").is_some()
                    != n.pointer("/metadata/deletionTimestamp").is_some()
        }
        _ => true,
    }
}

fn no_execute(node: Option<&Arc<Value>>) -> Vec<Taint> {
    node.map(|n| Taint::list(n))
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let mut nodes_rx = inf.nodes.subscribe();
    let mut pods_rx = inf.pods.subscribe();
    let mut shutdown = api.shutdown.clone();
    let grace = api.node_monitor_grace;
    let period = monitor_period(grace);
    tracing::info!(grace = ?grace, period = ?period, eviction_override = ?api.pod_eviction_timeout, "node lifecycle controller");
    let mut lc = Lifecycle {
        api,
        inf,
        grace,
        health: HashMap::new(),
        evictions: HashMap::new(),
    };
    tokio::spawn(async move {
        let mut next_monitor = Instant::now();
        // Every node's pods are decided once at start; then on changes.
        let mut dirty_nodes: HashSet<String> = lc
            .inf
            .nodes
            .list(None)
            .iter()
            .filter_map(|n| meta_str(n, "name").map(str::to_string))
            .collect();
        let mut eviction_nodes = dirty_nodes.clone();
        let mut dirty_pods: HashSet<String> = HashSet::new();
        loop {
            let now = Instant::now();
            if now >= next_monitor {
                let names: Vec<String> = lc
                    .inf
                    .nodes
                    .list(None)
                    .iter()
                    .filter_map(|n| meta_str(n, "name").map(str::to_string))
                    .collect();
                dirty_nodes.extend(names);
                lc.health.retain(|n, _| lc.inf.nodes.get("", n).is_some());
                next_monitor = now + period;
            }
            for name in std::mem::take(&mut dirty_nodes) {
                lc.reconcile_node(&name, Instant::now()).await;
            }
            for name in std::mem::take(&mut eviction_nodes) {
                lc.process_node_pods(&name, Instant::now()).await;
            }
            for key in std::mem::take(&mut dirty_pods) {
                let (ns, name) = key.split_once('/').unwrap_or(("", &key));
                match lc.inf.pods.get(ns, name) {
                    Some(pod) => {
                        let taints = pod_node(&pod)
                            .and_then(|n| lc.inf.nodes.get("", n))
                            .map(|n| Taint::list(&n))
                            .unwrap_or_default();
                        lc.process_pod(&pod, &taints, Instant::now()).await;
                    }
                    None => {
                        lc.evictions.remove(&key);
                    }
                }
            }
            lc.fire_due(Instant::now());
            let wake = lc.next_fire().map_or(next_monitor, |f| f.min(next_monitor));
            let take_node = |c: Change, dirty: &mut HashSet<String>, evict: &mut HashSet<String>| {
                let Some(name) = c.object().and_then(|n| meta_str(n, "name")).map(str::to_string) else {
                    return;
                };
                if no_execute(c.old.as_ref()) != no_execute(c.new.as_ref()) {
                    evict.insert(name.clone());
                }
                dirty.insert(name);
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                c = nodes_rx.recv() => match c {
                    Some(c) => take_node(c, &mut dirty_nodes, &mut eviction_nodes),
                    None => return,
                },
                c = pods_rx.recv() => match c {
                    Some(c) => if pod_change_matters(&c) && let Some(p) = c.object() {
                        dirty_pods.insert(key_of(p));
                    },
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
            while let Ok(c) = nodes_rx.try_recv() {
                take_node(c, &mut dirty_nodes, &mut eviction_nodes);
            }
            while let Ok(c) = pods_rx.try_recv() {
                if pod_change_matters(&c)
                    && let Some(p) = c.object()
                {
                    dirty_pods.insert(key_of(p));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_period_is_an_eighth_of_the_grace_period_within_bounds() {
        assert_eq!(monitor_period(Duration::from_secs(40)), Duration::from_secs(5));
        assert_eq!(monitor_period(Duration::from_secs(3)), Duration::from_millis(375));
        assert_eq!(monitor_period(Duration::from_millis(200)), MIN_MONITOR_PERIOD);
    }

    fn node(conds: Value, spec: Value) -> Value {
        json!({"metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": spec,
            "status": {"conditions": conds}})
    }

    #[test]
    fn a_silent_node_has_unknown_conditions() {
        let n = node(
            json!([{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok",
                    "lastHeartbeatTime": "2024-01-01T00:00:05Z", "lastTransitionTime": "2024-01-01T00:00:05Z"},
                   {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"}]),
            json!({}),
        );
        let u = with_unknown_conditions(&n, "2024-01-01T00:01:00Z");
        let ready = condition(&u, "Ready").cloned().unwrap_or_default();
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["reason"], "NodeStatusUnknown");
        assert_eq!(ready["message"], "Kubelet stopped posting node status.");
        assert_eq!(ready["lastHeartbeatTime"], "2024-01-01T00:00:05Z", "heartbeat kept");
        assert_eq!(ready["lastTransitionTime"], "2024-01-01T00:01:00Z");
        assert_eq!(
            condition(&u, "MemoryPressure").map(|c| c["status"].clone()),
            Some(json!("Unknown"))
        );
        let disk = condition(&u, "DiskPressure").cloned().unwrap_or_default();
        assert_eq!(
            (&disk["status"], &disk["reason"]),
            (&json!("Unknown"), &json!("NodeStatusNeverUpdated"))
        );
        assert_eq!(with_unknown_conditions(&u, "2024-01-01T00:02:00Z"), u, "idempotent");
        assert_eq!(readiness(&u), Readiness::Unknown);
    }

    fn taint_keys(n: &Value) -> Vec<(String, String)> {
        Taint::list(n).into_iter().map(|t| (t.key, t.effect)).collect()
    }

    #[test]
    fn taints_follow_conditions_and_cordon() {
        let mut n = node(
            json!([{"type": "Ready", "status": "Unknown"}]),
            json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        n = with_controller_taints(&n, "T");
        assert_eq!(
            taint_keys(&n),
            vec![
                ("dedicated".into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoExecute".into()),
            ]
        );
        assert_eq!(n["spec"]["taints"][2]["timeAdded"], "T");
        assert_eq!(with_controller_taints(&n, "T2"), n, "already in line");
        n["status"]["conditions"][0]["status"] = json!("False");
        n = with_controller_taints(&n, "T3");
        assert_eq!(
            taint_keys(&n),
            vec![
                ("dedicated".into(), "NoSchedule".into()),
                (NOT_READY.into(), "NoSchedule".into()),
                (NOT_READY.into(), "NoExecute".into()),
            ]
        );
        n["status"]["conditions"][0]["status"] = json!("True");
        n["spec"]["unschedulable"] = json!(true);
        n = with_controller_taints(&n, "T4");
        assert_eq!(
            taint_keys(&n),
            vec![
                ("dedicated".into(), "NoSchedule".into()),
                ("node.kubernetes.io/unschedulable".into(), "NoSchedule".into()),
            ]
        );
        n["spec"]["unschedulable"] = json!(false);
        n["spec"]["taints"] = json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]);
        n = with_controller_taints(&n, "T5");
        assert_eq!(n["spec"].get("taints"), None, "last managed taint removed");
        let pressure = node(
            json!([{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "True"}]),
            json!({}),
        );
        assert_eq!(
            desired_taints(&pressure),
            vec![("node.kubernetes.io/disk-pressure", "NoSchedule")]
        );
    }

    fn tols(v: Value) -> Vec<Toleration> {
        Toleration::list(&json!({ "tolerations": v }))
    }

    #[test]
    fn eviction_waits_for_the_smallest_toleration() {
        let unreachable = [
            Taint {
                key: UNREACHABLE.into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            },
            Taint {
                key: UNREACHABLE.into(),
                value: String::new(),
                effect: "NoExecute".into(),
            },
        ];
        let defaulted = tols(json!([
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]));
        assert_eq!(
            verdict(&unreachable, &defaulted, None),
            Verdict::EvictAfter(Duration::from_secs(300))
        );
        assert_eq!(
            verdict(&unreachable, &defaulted, Some(Duration::from_secs(5))),
            Verdict::EvictAfter(Duration::from_secs(5))
        );
        let short = tols(
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
            {"operator": "Exists", "tolerationSeconds": 60}]),
        );
        assert_eq!(
            verdict(&unreachable, &short, Some(Duration::from_secs(5))),
            Verdict::EvictAfter(Duration::from_secs(2)),
            "the pod's own choice is kept"
        );
        assert_eq!(verdict(&unreachable, &[], None), Verdict::EvictNow);
        assert_eq!(
            verdict(&unreachable, &tols(json!([{"operator": "Exists"}])), None),
            Verdict::Stay
        );
        assert_eq!(
            verdict(
                &unreachable,
                &tols(json!([{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 0}])),
                None
            ),
            Verdict::EvictNow
        );
        assert_eq!(
            verdict(&unreachable[..1], &[], None),
            Verdict::Stay,
            "NoSchedule does not evict"
        );
        assert_eq!(verdict(&[], &[], None), Verdict::Stay);
    }

    #[test]
    fn pod_conditions_move_transition_time_only_on_change() {
        let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "A"}]}});
        let q = with_pod_condition(&p, "Ready", "False", None, None, "B");
        assert_eq!(q["status"]["conditions"][0]["status"], "False");
        assert_eq!(q["status"]["conditions"][0]["lastTransitionTime"], "B");
        assert_eq!(with_pod_condition(&q, "Ready", "False", None, None, "C"), q);
        let d = with_pod_condition(
            &q,
            "DisruptionTarget",
            "True",
            Some("DeletionByTaintManager"),
            Some("m"),
            "D",
        );
        let c = condition(&d, "DisruptionTarget").cloned().unwrap_or_default();
        assert_eq!(
            (&c["reason"], &c["message"], &c["lastTransitionTime"]),
            (&json!("DeletionByTaintManager"), &json!("m"), &json!("D"))
        );
    }
}
