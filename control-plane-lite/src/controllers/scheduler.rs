//! The scheduler: binds pending pods (empty `spec.nodeName`, `schedulerName` `default-scheduler` or empty) to
//! nodes, as kube-scheduler's default profile does for the plugins Keel needs.
//!
//! - Filters, in kube-scheduler's order, stopping at the first that rejects a node: NodeUnschedulable
//!   (`spec.unschedulable` unless the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`), NodeName,
//!   TaintToleration (`NoSchedule`/`NoExecute` taints; a node whose Ready condition is False or Unknown counts as
//!   tainted `not-ready`/`unreachable` until the node lifecycle controller writes the taint), NodeAffinity
//!   (`nodeSelector` and required node affinity), NodeResourcesFit (requests against `status.allocatable`, pod
//!   count).
//! - Scores: least allocated cpu + memory (weight 1, non-zero default requests as kube-scheduler uses) and the
//!   spread of a workload's replicas (pods with the same controller owner) over nodes (weight 2); ties are broken
//!   at random.
//! - A single loop owns the cache of node usage and the queue. A chosen node is *assumed* (its usage bumped at
//!   once) and the binding is written in the background, so a burst of pending pods is scheduled back to back
//!   against an up-to-date view; an assumed pod is forgotten if its binding fails, and confirmed when the
//!   informer shows it bound.
//! - An unschedulable pod gets `PodScheduled=False` (reason `Unschedulable`, kube-scheduler's message) and a
//!   `FailedScheduling` Warning event, and waits until a node is added or changes in a way that matters, or a pod
//!   leaves a node; retries back off from 1 s to 10 s per pod, and every pod is retried after 5 minutes anyway.
//!
//! Not done: preemption (the message says what kube-scheduler's would find in a cluster where it cannot help),
//! inter-pod affinity, topology spread constraints, preferred node affinity, volumes, host ports.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::{Change, Informers, event, key_of, res};
use crate::api::Api;
use crate::api::error::ApiError;
use crate::api::object::{meta_str, now_rfc3339};
use crate::api::request::Query;
use crate::api::route::ResourcePath;

/// The scheduler name pods ask for (an empty `schedulerName` means this one too).
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Bindings and status writes in flight at once.
const WRITE_CONCURRENCY: usize = 32;
/// Events waiting to be written; more are dropped, as client-go's broadcaster drops on a full queue.
const EVENT_QUEUE: usize = 1000;
/// Events written at once.
const EVENT_CONCURRENCY: usize = 2;
/// kube-scheduler's podInitialBackoffSeconds.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// kube-scheduler's podMaxBackoffSeconds.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// kube-scheduler's podMaxInUnschedulablePodsDuration: an unschedulable pod is retried after this anyway.
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);
/// How often unschedulable pods are checked against [`MAX_UNSCHEDULABLE`].
const FLUSH_PERIOD: Duration = Duration::from_secs(30);
/// The cpu request assumed for scoring a container that sets none (kube-scheduler's DefaultMilliCPURequest).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory request assumed for scoring a container that sets none (DefaultMemoryRequest, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;
/// The highest score a scoring function gives a node.
const MAX_NODE_SCORE: i64 = 100;
/// Weight of the least-allocated score (NodeResourcesFit's weight in the default profile).
const LEAST_ALLOCATED_WEIGHT: i64 = 1;
/// Weight of the replica spread score (PodTopologySpread's weight in the default profile).
const SPREAD_WEIGHT: i64 = 2;

const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

// ---------------------------------------------------------------------------------------------------------------
// Quantities and resources (pure).

/// A resource quantity (`100m`, `1.5Gi`, `2e3`) as an exact decimal-times-binary number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// The value times `10^extra`, rounded up, saturating at the bounds of `i64` (Quantity.ScaledValue).
    fn scaled_ceil(&self, extra: i32) -> i64 {
        let mut n = self
            .mantissa
            .checked_mul(1i128 << self.exp2)
            .unwrap_or(if self.mantissa < 0 { i128::MIN } else { i128::MAX });
        let e = self.exp10 + extra;
        if e >= 0 {
            for _ in 0..e.min(40) {
                n = n.saturating_mul(10);
            }
        } else {
            match 10i128.checked_pow(e.unsigned_abs()) {
                Some(d) => {
                    let q = n / d;
                    n = if n % d != 0 && n > 0 { q + 1 } else { q };
                }
                None => n = i128::from(n > 0),
            }
        }
        i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
    }

    /// The value in thousandths, rounded up (`MilliValue`): cpu is counted in millicores.
    pub fn milli(&self) -> i64 {
        self.scaled_ceil(3)
    }

    /// The value in units, rounded up (`Value`): memory and storage are counted in bytes.
    pub fn value(&self) -> i64 {
        self.scaled_ceil(0)
    }
}

/// Parse a Kubernetes quantity: an optional sign, a decimal number, and a binary (`Ki`…`Ei`), decimal
/// (`n u m k M G T P E`) or exponent (`e3`) suffix. `None` when it is not one.
pub fn parse_quantity(s: &str) -> Option<Quantity> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return None;
    }
    let mut mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    if negative {
        mantissa = -mantissa;
    }
    let mut exp10 = -i32::try_from(frac_part.len()).ok()?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        s if s.starts_with(['e', 'E']) => exp10 = exp10.checked_add(s[1..].parse::<i32>().ok()?)?,
        _ => return None,
    }
    Some(Quantity { mantissa, exp10, exp2 })
}

/// Resource amounts: cpu in millicores, memory and ephemeral storage in bytes, and scalar resources (extended
/// resources, hugepages) in units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Bytes.
    pub ephemeral_storage: i64,
    /// Extended resources and hugepages, by name.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether kube-scheduler counts a resource name as a scalar resource: hugepages, attachable volumes, or an
/// extended resource (a domain-prefixed name outside `kubernetes.io/`, not a quota `requests.` name).
fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests."))
}

fn quantity_of(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => parse_quantity(&n.to_string()),
        _ => None,
    }
}

impl Resources {
    /// The amounts of a ResourceList (`{"cpu": "500m", "memory": "1Gi"}`); unknown names and bad quantities are
    /// skipped (validation has already refused them).
    pub fn from_list(list: &Value) -> Self {
        let mut r = Self::default();
        let Some(m) = list.as_object() else { return r };
        for (name, v) in m {
            let Some(q) = quantity_of(v) else { continue };
            match name.as_str() {
                "cpu" => r.milli_cpu = q.milli(),
                "memory" => r.memory = q.value(),
                "ephemeral-storage" => r.ephemeral_storage = q.value(),
                n if is_scalar_resource(n) => {
                    r.scalar.insert(n.to_string(), q.value());
                }
                _ => {}
            }
        }
        r
    }

    /// Add `o` to these amounts.
    pub fn add(&mut self, o: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtract `o` from these amounts.
    pub fn sub(&mut self, o: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_sub(*v);
        }
    }

    /// Raise each amount to at least `o`'s.
    pub fn max_with(&mut self, o: &Self) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

/// What a pod asks of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequest {
    /// The effective requests checked against allocatable.
    pub requests: Resources,
    /// Millicores for scoring: containers without a cpu request count [`DEFAULT_MILLI_CPU_REQUEST`].
    pub nonzero_milli_cpu: i64,
    /// Bytes for scoring: containers without a memory request count [`DEFAULT_MEMORY_REQUEST`].
    pub nonzero_memory: i64,
}

/// One container's requests; a resource with a limit but no request requests its limit (as API defaulting
/// does). With `nonzero`, a missing cpu or memory request counts the scoring default.
fn container_requests(c: &Value, nonzero: bool) -> Resources {
    let requests = c.pointer("/resources/requests");
    let mut list = requests.and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object) {
        for (k, v) in limits {
            list.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut r = Resources::from_list(&Value::Object(list.clone()));
    if nonzero {
        if !list.contains_key("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.contains_key("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// The pod-level aggregate: the sum of app containers and sidecars (init containers with `restartPolicy:
/// Always`), or the largest need while an init container runs (itself plus the sidecars started before it),
/// whichever is larger per resource; plus `spec.overhead`.
fn aggregate_requests(spec: &Value, nonzero: bool) -> Resources {
    let list = |k: &str| spec.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let mut total = Resources::default();
    for c in list("containers") {
        total.add(&container_requests(c, nonzero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in list("initContainers") {
        let r = container_requests(c, nonzero);
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut step = sidecars.clone();
            step.add(&r);
            init_max.max_with(&step);
        }
    }
    total.add(&sidecars);
    total.max_with(&init_max);
    if let Some(o) = spec.get("overhead") {
        total.add(&Resources::from_list(o));
    }
    total
}

/// A pod's requests from its spec.
pub fn pod_request(spec: &Value) -> PodRequest {
    let nonzero = aggregate_requests(spec, true);
    PodRequest {
        requests: aggregate_requests(spec, false),
        nonzero_milli_cpu: nonzero.milli_cpu,
        nonzero_memory: nonzero.memory,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Taints, tolerations, node affinity (pure).

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value (may be empty).
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    fn new(key: &str, value: &str, effect: &str) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        }
    }

    /// The taints in a node's `spec.taints`.
    pub fn list(node: &Value) -> Vec<Self> {
        node.pointer("/spec/taints")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|t| {
                        Self::new(
                            t["key"].as_str().unwrap_or(""),
                            t["value"].as_str().unwrap_or(""),
                            t["effect"].as_str().unwrap_or(""),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// Key; empty with `Exists` matches every key.
    pub key: String,
    /// `Equal` (or empty) or `Exists`.
    pub operator: String,
    /// Value for `Equal`.
    pub value: String,
    /// Effect; empty matches every effect.
    pub effect: String,
    /// For `NoExecute`: how long the pod stays after the taint appears (None = forever).
    pub seconds: Option<i64>,
}

impl Toleration {
    /// The tolerations in a pod's spec.
    pub fn list(spec: &Value) -> Vec<Self> {
        spec.get("tolerations")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|t| Self {
                        key: t["key"].as_str().unwrap_or("").into(),
                        operator: t["operator"].as_str().unwrap_or("").into(),
                        value: t["value"].as_str().unwrap_or("").into(),
                        effect: t["effect"].as_str().unwrap_or("").into(),
                        seconds: t["tolerationSeconds"].as_i64(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this toleration tolerates `taint` (ToleratesTaint).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == taint.value,
            "Exists" => true,
            _ => false,
        }
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// One requirement of a node selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: String,
    values: Vec<String>,
}

impl Requirement {
    fn parse(v: &Value) -> Self {
        Self {
            key: v["key"].as_str().unwrap_or("").into(),
            operator: v["operator"].as_str().unwrap_or("").into(),
            values: v["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }

    /// Match against one value (a label's, or the node name for `matchFields`), `None` when absent.
    fn matches(&self, actual: Option<&str>) -> bool {
        let single_int = || match self.values.as_slice() {
            [v] => v.parse::<i64>().ok(),
            _ => None,
        };
        match self.operator.as_str() {
            "In" => actual.is_some_and(|a| self.values.iter().any(|v| v == a)),
            "NotIn" => !actual.is_some_and(|a| self.values.iter().any(|v| v == a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            "Gt" => matches!((actual.and_then(|a| a.parse::<i64>().ok()), single_int()), (Some(a), Some(v)) if a > v),
            "Lt" => matches!((actual.and_then(|a| a.parse::<i64>().ok()), single_int()), (Some(a), Some(v)) if a < v),
            _ => false,
        }
    }
}

/// A node selector term: label expressions and field expressions, all of which must match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    expressions: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Term {
    fn matches(&self, labels: &Map<String, Value>, node_name: &str) -> bool {
        // A term with no requirements matches nothing.
        if self.expressions.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.expressions
            .iter()
            .all(|r| r.matches(labels.get(&r.key).and_then(Value::as_str)))
            && self.fields.iter().all(|r| match r.key.as_str() {
                "metadata.name" => r.matches(Some(node_name)),
                _ => false,
            })
    }
}

/// A pod's node placement constraints: `nodeSelector` and required node affinity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAffinity {
    selector: Vec<(String, String)>,
    /// None when the pod has no required node affinity; the terms are ORed.
    required: Option<Vec<Term>>,
}

impl NodeAffinity {
    /// The constraints in a pod's spec.
    pub fn of(spec: &Value) -> Self {
        let selector = spec
            .get("nodeSelector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let required = spec
            .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
            .filter(|r| r.is_object())
            .map(|r| {
                r["nodeSelectorTerms"]
                    .as_array()
                    .map(|terms| {
                        terms
                            .iter()
                            .map(|t| Term {
                                expressions: t["matchExpressions"]
                                    .as_array()
                                    .map(|a| a.iter().map(Requirement::parse).collect())
                                    .unwrap_or_default(),
                                fields: t["matchFields"]
                                    .as_array()
                                    .map(|a| a.iter().map(Requirement::parse).collect())
                                    .unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
        Self { selector, required }
    }

    /// Whether a node with these labels and name satisfies the constraints.
    pub fn matches(&self, labels: &Map<String, Value>, node_name: &str) -> bool {
        self.selector
            .iter()
            .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()))
            && self
                .required
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(labels, node_name)))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Nodes, pods and the filters (pure).

/// The status of a node's Ready condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `True`.
    Ready,
    /// `False`.
    NotReady,
    /// `Unknown`.
    Unknown,
    /// No Ready condition yet.
    Missing,
}

/// The status of a node's Ready condition.
pub fn readiness(node: &Value) -> Readiness {
    let cond = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    match cond.and_then(|c| c["status"].as_str()) {
        None => Readiness::Missing,
        Some("True") => Readiness::Ready,
        Some("False") => Readiness::NotReady,
        Some(_) => Readiness::Unknown,
    }
}

/// What the scheduler needs of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Labels.
    pub labels: Map<String, Value>,
    /// Taints, including the one standing for a Ready condition that is not True.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// `status.allocatable` (or capacity when allocatable is absent).
    pub allocatable: Resources,
    /// Allocatable pod count.
    pub allowed_pods: i64,
}

impl NodeInfo {
    /// Read a Node object.
    pub fn from_node(node: &Value) -> Self {
        let status = node.get("status");
        let alloc = status
            .and_then(|s| {
                s.get("allocatable")
                    .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
            })
            .or_else(|| status.and_then(|s| s.get("capacity")))
            .cloned()
            .unwrap_or(Value::Null);
        let mut taints = Taint::list(node);
        // kube-scheduler sees a node that is not Ready through the taint the node lifecycle controller (or the
        // kubelet, at registration) puts on it; stand in for the taint until it is there.
        // A node without a Ready condition is left alone, as kube-scheduler would (the lifecycle controller
        // taints it after the startup grace period).
        let implied = match readiness(node) {
            Readiness::Ready | Readiness::Missing => None,
            Readiness::Unknown => Some(TAINT_UNREACHABLE),
            Readiness::NotReady => Some(TAINT_NOT_READY),
        };
        if let Some(key) = implied
            && !taints.iter().any(|t| t.key == key)
        {
            taints.push(Taint::new(key, "", "NoSchedule"));
        }
        Self {
            name: meta_str(node, "name").unwrap_or("").to_string(),
            labels: crate::api::object::labels(node),
            taints,
            unschedulable: node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true),
            allocatable: Resources::from_list(&alloc),
            allowed_pods: alloc.get("pods").and_then(quantity_of).map_or(0, |q| q.value()),
        }
    }
}

/// What the scheduler needs of a pod, read once per attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `spec.nodeName` when set (NodeName filter).
    pub node_name: Option<String>,
    /// Requests.
    pub request: PodRequest,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Node selector and required node affinity.
    pub affinity: NodeAffinity,
    /// UID of the controlling owner (the workload whose replicas are spread).
    pub owner: Option<String>,
    /// `spec.priority`.
    pub priority: i64,
}

/// The uid of a pod's controlling owner reference.
fn controller_uid(pod: &Value) -> Option<String> {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
        .map(str::to_string)
}

impl PodInfo {
    /// Read a Pod object.
    pub fn from_pod(pod: &Value) -> Self {
        let spec = pod.get("spec").unwrap_or(&Value::Null);
        Self {
            node_name: spec["nodeName"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
            request: pod_request(spec),
            tolerations: Toleration::list(spec),
            affinity: NodeAffinity::of(spec),
            owner: controller_uid(pod),
            priority: spec["priority"].as_i64().unwrap_or(0),
        }
    }
}

/// What is already committed on a node: the sum over its non-terminal pods (bound or assumed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of requests.
    pub requested: Resources,
    /// Sum of non-zero cpu requests (for scoring).
    pub nonzero_milli_cpu: i64,
    /// Sum of non-zero memory requests (for scoring).
    pub nonzero_memory: i64,
    /// Pod count.
    pub pods: i64,
    /// Pods per controlling owner uid.
    pub owners: HashMap<String, u32>,
}

impl Usage {
    fn add(&mut self, p: &PodInfo) {
        self.requested.add(&p.request.requests);
        self.nonzero_milli_cpu += p.request.nonzero_milli_cpu;
        self.nonzero_memory += p.request.nonzero_memory;
        self.pods += 1;
        if let Some(o) = &p.owner {
            *self.owners.entry(o.clone()).or_insert(0) += 1;
        }
    }

    fn remove(&mut self, p: &PodInfo) {
        self.requested.sub(&p.request.requests);
        self.nonzero_milli_cpu -= p.request.nonzero_milli_cpu;
        self.nonzero_memory -= p.request.nonzero_memory;
        self.pods -= 1;
        if let Some(o) = &p.owner
            && let Some(n) = self.owners.get_mut(o)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owners.remove(o);
            }
        }
    }
}

/// Why a node was rejected: kube-scheduler's reasons, and whether evicting other pods could never help
/// (`UnschedulableAndUnresolvable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Reasons as kube-scheduler words them (`Insufficient cpu`, `node(s) were unschedulable`).
    pub reasons: Vec<String>,
    /// True when preemption could not make the node fit.
    pub unresolvable: bool,
}

impl Rejection {
    fn unresolvable(reason: String) -> Self {
        Self {
            reasons: vec![reason],
            unresolvable: true,
        }
    }
}

/// Run the filters for one pod on one node, in kube-scheduler's order, stopping at the first rejection.
pub fn filter(pod: &PodInfo, node: &NodeInfo, used: &Usage) -> Option<Rejection> {
    // NodeUnschedulable.
    if node.unschedulable && !tolerated(&pod.tolerations, &Taint::new(TAINT_UNSCHEDULABLE, "", "NoSchedule")) {
        return Some(Rejection::unresolvable("node(s) were unschedulable".into()));
    }
    // NodeName.
    if pod.node_name.as_ref().is_some_and(|n| *n != node.name) {
        return Some(Rejection::unresolvable(
            "node(s) didn't match the requested node name".into(),
        ));
    }
    // TaintToleration.
    if let Some(t) = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(&pod.tolerations, t))
    {
        return Some(Rejection::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key, t.value
        )));
    }
    // NodeAffinity.
    if !pod.affinity.matches(&node.labels, &node.name) {
        return Some(Rejection::unresolvable(
            "node(s) didn't match Pod's node affinity/selector".into(),
        ));
    }
    // NodeResourcesFit.
    fit(&pod.request.requests, node, used)
}

/// NodeResourcesFit: every insufficient resource is a reason; unresolvable when a request exceeds what the node
/// has in all.
fn fit(req: &Resources, node: &NodeInfo, used: &Usage) -> Option<Rejection> {
    let mut reasons = Vec::new();
    let mut unresolvable = false;
    if used.pods + 1 > node.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let alloc = &node.allocatable;
    let mut check = |name: &str, want: i64, have: i64, taken: i64| {
        if want > 0 && want > have.saturating_sub(taken) {
            reasons.push(format!("Insufficient {name}"));
            unresolvable |= want > have;
        }
    };
    check("cpu", req.milli_cpu, alloc.milli_cpu, used.requested.milli_cpu);
    check("memory", req.memory, alloc.memory, used.requested.memory);
    check(
        "ephemeral-storage",
        req.ephemeral_storage,
        alloc.ephemeral_storage,
        used.requested.ephemeral_storage,
    );
    for (name, want) in &req.scalar {
        check(
            name,
            *want,
            alloc.scalar.get(name).copied().unwrap_or(0),
            used.requested.scalar.get(name).copied().unwrap_or(0),
        );
    }
    (!reasons.is_empty()).then_some(Rejection { reasons, unresolvable })
}

/// `"<count> <reason>"` for each distinct reason, sorted as strings and joined (FitError's histogram).
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in reasons {
        *counts.entry(r).or_insert(0) += 1;
    }
    let mut lines: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    lines.sort();
    lines.join(", ")
}

/// kube-scheduler's message for a pod no node fits (FitError), with the note its default preemption adds.
/// Keel does not preempt; the note is what kube-scheduler finds when no lower-priority pod could make room.
pub fn fit_error_message(num_nodes: usize, rejections: &[Rejection]) -> String {
    if num_nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let filters = histogram(rejections.iter().flat_map(|r| r.reasons.iter().map(String::as_str)));
    let preemption = histogram(rejections.iter().map(|r| {
        if r.unresolvable {
            "Preemption is not helpful for scheduling"
        } else {
            "No preemption victims found for incoming pod"
        }
    }));
    format!(
        "0/{num_nodes} nodes are available: {filters}. preemption: 0/{num_nodes} nodes are available: {preemption}.."
    )
}

/// `(capacity - requested) * 100 / capacity`, 0 when over capacity or capacity is 0 (leastRequestedScore).
fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated over cpu and memory (equal weights), counting the pod's non-zero requests.
pub fn least_allocated_score(pod: &PodRequest, node: &NodeInfo, used: &Usage) -> i64 {
    let cpu = least_requested(
        used.nonzero_milli_cpu + pod.nonzero_milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = least_requested(used.nonzero_memory + pod.nonzero_memory, node.allocatable.memory);
    (cpu + mem) / 2
}

/// Spread scores for feasible nodes given how many replicas of the pod's workload each already runs: fewer is
/// better, `100 * (max - count) / max` (all 100 when none runs anywhere).
pub fn spread_scores(counts: &[u32]) -> Vec<i64> {
    let max = i64::from(counts.iter().copied().max().unwrap_or(0));
    counts
        .iter()
        .map(|&c| {
            if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max - i64::from(c)) / max
            }
        })
        .collect()
}

/// Choose a node for `pod` among `nodes` (each with its committed usage): the feasible node with the highest
/// weighted score, ties broken at random; or the rejection of every node.
pub fn select_node<'a>(
    pod: &PodInfo,
    nodes: &[(&'a NodeInfo, &Usage)],
    rng: &mut impl Rng,
) -> Result<&'a NodeInfo, Vec<Rejection>> {
    let mut feasible = Vec::new();
    let mut rejections = Vec::new();
    for (node, used) in nodes {
        match filter(pod, node, used) {
            None => feasible.push((*node, *used)),
            Some(r) => rejections.push(r),
        }
    }
    let counts: Vec<u32> = feasible
        .iter()
        .map(|(_, u)| pod.owner.as_ref().and_then(|o| u.owners.get(o)).copied().unwrap_or(0))
        .collect();
    let spread = spread_scores(&counts);
    let mut best: Option<(&NodeInfo, i64)> = None;
    let mut ties = 0u32;
    for ((node, used), s) in feasible.iter().zip(spread) {
        let score = LEAST_ALLOCATED_WEIGHT * least_allocated_score(&pod.request, node, used) + SPREAD_WEIGHT * s;
        match best {
            Some((_, b)) if score < b => {}
            Some((_, b)) if score == b => {
                // Reservoir sampling over the tied nodes, as kube-scheduler's selectHost.
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = Some((node, score));
                }
            }
            _ => {
                ties = 1;
                best = Some((node, score));
            }
        }
    }
    best.map(|(n, _)| n).ok_or(rejections)
}

// ---------------------------------------------------------------------------------------------------------------
// The scheduling queue (pure state; timers are the loop's).

/// Where a pending pod is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting in the active queue.
    Active,
    /// Tried and did not fit; waits for a cluster change.
    Unschedulable,
    /// Moved by a cluster change but still backing off; a timer activates it.
    Backoff,
}

#[derive(Debug, Clone)]
struct Pending {
    phase: Phase,
    priority: i64,
    seq: u64,
    attempts: u32,
    last_attempt: Option<Instant>,
}

/// Pending pods: an active heap ordered by priority then arrival, and the pods waiting for a change.
#[derive(Default)]
struct SchedQueue {
    pods: HashMap<String, Pending>,
    heap: BinaryHeap<(i64, Reverse<u64>, String)>,
    seq: u64,
}

/// The backoff after `attempts` failed attempts: 1 s doubling to 10 s.
fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(8);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

impl SchedQueue {
    fn activate(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(p) = self.pods.get_mut(key) {
            p.phase = Phase::Active;
            p.seq = seq;
            self.heap.push((p.priority, Reverse(seq), key.to_string()));
        }
    }

    /// A pending pod was added or changed: queue it if new, or retry it if it was waiting and its spec or
    /// labels changed.
    fn pod_pending(&mut self, key: &str, priority: i64, changed: bool, now: Instant) -> Option<Duration> {
        match self.pods.get_mut(key) {
            None => {
                self.pods.insert(
                    key.to_string(),
                    Pending {
                        phase: Phase::Active,
                        priority,
                        seq: 0,
                        attempts: 0,
                        last_attempt: None,
                    },
                );
                self.activate(key);
                None
            }
            Some(p) => {
                p.priority = priority;
                if changed && p.phase == Phase::Unschedulable {
                    self.wake(key, now)
                } else {
                    None
                }
            }
        }
    }

    /// Move an unschedulable pod on: to the active queue, or (still backing off) report how long until it may go.
    fn wake(&mut self, key: &str, now: Instant) -> Option<Duration> {
        let p = self.pods.get_mut(key)?;
        let ready_at = p.last_attempt.map(|t| t + backoff(p.attempts));
        match ready_at {
            Some(at) if at > now => {
                p.phase = Phase::Backoff;
                Some(at - now)
            }
            _ => {
                self.activate(key);
                None
            }
        }
    }

    /// Move every unschedulable pod on after a cluster change; returns the backoff timers to start.
    fn wake_all(&mut self, now: Instant) -> Vec<(String, Duration)> {
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| p.phase == Phase::Unschedulable)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.wake(&k, now).map(|d| (k, d)))
            .collect()
    }

    /// Unschedulable pods that have waited longer than `limit` since their last attempt.
    fn stale(&self, now: Instant, limit: Duration) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, p)| {
                p.phase == Phase::Unschedulable && p.last_attempt.is_some_and(|t| now.duration_since(t) >= limit)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A backoff timer fired.
    fn backoff_done(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|p| p.phase == Phase::Backoff) {
            self.activate(key);
        }
    }

    /// The next pod to try, highest priority first.
    fn pop(&mut self) -> Option<String> {
        while let Some((_, Reverse(seq), key)) = self.heap.pop() {
            if self
                .pods
                .get(&key)
                .is_some_and(|p| p.phase == Phase::Active && p.seq == seq)
            {
                return Some(key);
            }
        }
        None
    }

    /// An attempt failed: the pod waits for a change.
    fn failed(&mut self, key: &str, priority: i64, now: Instant) {
        let p = self.pods.entry(key.to_string()).or_insert(Pending {
            phase: Phase::Unschedulable,
            priority,
            seq: 0,
            attempts: 0,
            last_attempt: None,
        });
        p.phase = Phase::Unschedulable;
        p.attempts += 1;
        p.last_attempt = Some(now);
    }

    fn remove(&mut self, key: &str) -> Option<Pending> {
        self.pods.remove(key)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The cache of nodes and the pods on them.

/// A pod counted on a node.
struct Placed {
    node: String,
    info: PodInfo,
    /// True until the informer shows the binding.
    assumed: bool,
}

#[derive(Default)]
struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    usage: HashMap<String, Usage>,
    pods: HashMap<String, Placed>,
}

impl Cache {
    fn place(&mut self, key: &str, node: &str, info: PodInfo, assumed: bool) {
        self.forget(key);
        self.usage.entry(node.to_string()).or_default().add(&info);
        self.pods.insert(
            key.to_string(),
            Placed {
                node: node.to_string(),
                info,
                assumed,
            },
        );
    }

    fn forget(&mut self, key: &str) -> Option<Placed> {
        let p = self.pods.remove(key)?;
        if let Some(u) = self.usage.get_mut(&p.node) {
            u.remove(&p.info);
        }
        Some(p)
    }
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

fn is_ours(pod: &Value) -> bool {
    matches!(
        pod.pointer("/spec/schedulerName").and_then(Value::as_str),
        None | Some("") | Some(SCHEDULER_NAME)
    )
}

fn node_name(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether an update to a waiting pod could change where it fits (kube-scheduler ignores status-only updates).
fn spec_or_labels_changed(old: Option<&Value>, new: &Value) -> bool {
    old.is_none_or(|o| {
        o.get("spec") != new.get("spec") || o.pointer("/metadata/labels") != new.pointer("/metadata/labels")
    })
}

/// Set the PodScheduled condition to False/Unschedulable with `message` (a no-op when it already says so).
pub fn with_unschedulable_condition(pod: &Value, message: &str, now: &str) -> Value {
    let mut o = pod.clone();
    if node_name(pod).is_some() || pod.pointer("/metadata/deletionTimestamp").is_some() {
        return o;
    }
    if !o.get("status").is_some_and(Value::is_object) {
        o["status"] = json!({});
    }
    let conds = o["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else { return o };
    let existing = conds.iter().position(|c| c["type"] == "PodScheduled");
    let transition = existing
        .and_then(|i| (conds[i]["status"] == "False").then(|| conds[i]["lastTransitionTime"].clone()))
        .filter(|t| !t.is_null())
        .unwrap_or_else(|| json!(now));
    let cond = json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
        "lastTransitionTime": transition, "reason": "Unschedulable", "message": message});
    match existing {
        Some(i) => conds[i] = cond,
        None => conds.push(cond),
    }
    o
}

// ---------------------------------------------------------------------------------------------------------------
// The loop.

/// Work finished in the background, reported to the loop.
enum Msg {
    /// A binding was written (or refused).
    Bound {
        key: String,
        node: String,
        result: Result<(), ApiError>,
    },
    /// A pod's backoff is over.
    BackoffDone(String),
}

/// An event to record.
struct EventReq {
    involved: Arc<Value>,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

struct Scheduler {
    api: Arc<Api>,
    inf: Arc<Informers>,
    cache: Cache,
    queue: SchedQueue,
    writes: Arc<Semaphore>,
    msgs: mpsc::UnboundedSender<Msg>,
    events: mpsc::Sender<EventReq>,
    rng: rand::rngs::StdRng,
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

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

impl Scheduler {
    fn record(&self, involved: Arc<Value>, type_: &'static str, reason: &'static str, message: String) {
        if self
            .events
            .try_send(EventReq {
                involved,
                type_,
                reason,
                message,
            })
            .is_err()
        {
            tracing::debug!(reason, "event queue full: dropping event");
        }
    }

    fn start_timers(&self, timers: Vec<(String, Duration)>) {
        for (key, delay) in timers {
            let tx = self.msgs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Msg::BackoffDone(key));
            });
        }
    }

    /// Something that may let waiting pods fit happened.
    fn cluster_changed(&mut self) {
        let timers = self.queue.wake_all(Instant::now());
        self.start_timers(timers);
    }

    fn on_node(&mut self, c: &Change) {
        match &c.new {
            Some(n) => {
                let info = NodeInfo::from_node(n);
                let changed = self.cache.nodes.get(&info.name) != Some(&info);
                self.cache.nodes.insert(info.name.clone(), info);
                if changed {
                    self.cluster_changed();
                }
            }
            None => {
                if let Some(o) = &c.old {
                    self.cache.nodes.remove(meta_str(o, "name").unwrap_or(""));
                }
            }
        }
    }

    fn on_pod(&mut self, c: &Change) {
        match (&c.old, &c.new) {
            (old, Some(p)) => self.pod_upserted(old.as_deref(), p),
            (Some(o), None) => {
                let key = key_of(o);
                self.queue.remove(&key);
                if self.cache.forget(&key).is_some() {
                    self.cluster_changed();
                }
            }
            (None, None) => {}
        }
    }

    fn pod_upserted(&mut self, old: Option<&Value>, p: &Value) {
        let key = key_of(p);
        if let Some(node) = node_name(p) {
            self.queue.remove(&key);
            if is_terminal(p) {
                if self.cache.forget(&key).is_some() {
                    self.cluster_changed();
                }
            } else {
                self.cache.place(&key, node, PodInfo::from_pod(p), false);
            }
            return;
        }
        match self.cache.pods.get(&key) {
            // Our binding is being written: this is an older state of the pod.
            Some(placed) if placed.assumed => return,
            Some(_) => {
                self.cache.forget(&key);
            }
            None => {}
        }
        if !is_ours(p) || is_terminal(p) || p.pointer("/metadata/deletionTimestamp").is_some() {
            self.queue.remove(&key);
            return;
        }
        let priority = p.pointer("/spec/priority").and_then(Value::as_i64).unwrap_or(0);
        if let Some(d) = self
            .queue
            .pod_pending(&key, priority, spec_or_labels_changed(old, p), Instant::now())
        {
            self.start_timers(vec![(key, d)]);
        }
    }

    fn on_msg(&mut self, m: Msg) {
        match m {
            Msg::BackoffDone(key) => self.queue.backoff_done(&key),
            Msg::Bound { key, node, result } => {
                let Err(e) = result else { return };
                if self.cache.pods.get(&key).is_some_and(|p| p.assumed && p.node == node) {
                    self.cache.forget(&key);
                    self.cluster_changed();
                }
                if e.code == 404 || e.code == 409 {
                    // Gone, bound elsewhere or being deleted: the informer brings the outcome.
                    self.queue.remove(&key);
                    return;
                }
                tracing::warn!(pod = %key, node = %node, error = %e.message, "binding failed");
                let (ns, name) = split_key(&key);
                if let Some(pod) = self.inf.pods.get(ns, name) {
                    let priority = pod.pointer("/spec/priority").and_then(Value::as_i64).unwrap_or(0);
                    let now = Instant::now();
                    self.queue.failed(&key, priority, now);
                    if let Some(d) = self.queue.wake(&key, now) {
                        self.start_timers(vec![(key.clone(), d)]);
                    }
                    self.record(
                        pod,
                        "Warning",
                        "FailedScheduling",
                        format!("Binding rejected: {}", e.message),
                    );
                }
            }
        }
    }

    /// Try every pod in the active queue against the cache.
    fn schedule_active(&mut self) {
        while let Some(key) = self.queue.pop() {
            let (ns, name) = split_key(&key);
            let Some(pod) = self.inf.pods.get(ns, name) else {
                self.queue.remove(&key);
                continue;
            };
            if node_name(&pod).is_some()
                || !is_ours(&pod)
                || is_terminal(&pod)
                || pod.pointer("/metadata/deletionTimestamp").is_some()
                || self.cache.pods.contains_key(&key)
            {
                self.queue.remove(&key);
                continue;
            }
            self.schedule_one(key, pod);
        }
    }

    fn schedule_one(&mut self, key: String, pod: Arc<Value>) {
        let info = PodInfo::from_pod(&pod);
        let empty = Usage::default();
        let nodes: Vec<(&NodeInfo, &Usage)> = self
            .cache
            .nodes
            .values()
            .map(|n| (n, self.cache.usage.get(&n.name).unwrap_or(&empty)))
            .collect();
        let chosen = select_node(&info, &nodes, &mut self.rng).map(|n| n.name.clone());
        let num_nodes = nodes.len();
        match chosen {
            Ok(node) => {
                tracing::debug!(pod = %key, node = %node, "assumed");
                self.queue.remove(&key);
                self.cache.place(&key, &node, info, true);
                self.spawn_bind(key, node, pod);
            }
            Err(rejections) => {
                let message = fit_error_message(num_nodes, &rejections);
                tracing::debug!(pod = %key, %message, "unschedulable");
                self.queue.failed(&key, info.priority, Instant::now());
                self.spawn_unschedulable(key, pod, message);
            }
        }
    }

    fn spawn_bind(&self, key: String, node: String, pod: Arc<Value>) {
        let api = self.api.clone();
        let writes = self.writes.clone();
        let msgs = self.msgs.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let _permit = writes.acquire_owned().await;
            let (ns, name) = split_key(&key);
            let rp = ResourcePath {
                sub: Some("binding".into()),
                ..pod_path(ns, name)
            };
            let body = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
            let result = api.create(&rp, body, &Query::internal()).await.map(|_| ());
            if result.is_ok() {
                let message = format!("Successfully assigned {key} to {node}");
                let _ = events.try_send(EventReq {
                    involved: pod,
                    type_: "Normal",
                    reason: "Scheduled",
                    message,
                });
            }
            let _ = msgs.send(Msg::Bound { key, node, result });
        });
    }

    fn spawn_unschedulable(&self, key: String, pod: Arc<Value>, message: String) {
        let api = self.api.clone();
        let writes = self.writes.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let _permit = writes.acquire_owned().await;
            let (ns, name) = split_key(&key);
            let now = now_rfc3339();
            let written = api
                .modify_status_with(&pod_path(ns, name), name, |cur| {
                    Ok(with_unschedulable_condition(cur, &message, &now))
                })
                .await;
            match written {
                // Bound or being deleted meanwhile: nothing to report.
                Ok(now) if node_name(&now).is_some() || now.pointer("/metadata/deletionTimestamp").is_some() => {
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    if e.code != 404 {
                        tracing::warn!(pod = %key, error = %e.message, "recording unschedulable status failed");
                    }
                    return;
                }
            }
            let _ = events.try_send(EventReq {
                involved: pod,
                type_: "Warning",
                reason: "FailedScheduling",
                message,
            });
        });
    }
}

/// Write queued events, a few at a time.
async fn write_events(api: Arc<Api>, mut rx: mpsc::Receiver<EventReq>) {
    let slots = Arc::new(Semaphore::new(EVENT_CONCURRENCY));
    while let Some(ev) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let api = api.clone();
        tokio::spawn(async move {
            event(&api, &ev.involved, ev.type_, ev.reason, &ev.message, SCHEDULER_NAME).await;
            drop(permit);
        });
    }
}

/// Start the scheduler.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    // Subscribe before reading the caches so nothing between the two is missed (handling is idempotent).
    let mut pods_rx = inf.pods.subscribe();
    let mut nodes_rx = inf.nodes.subscribe();
    let (msgs, mut msg_rx) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(write_events(api.clone(), events_rx));
    let mut shutdown = api.shutdown.clone();
    let mut s = Scheduler {
        api,
        inf: inf.clone(),
        cache: Cache::default(),
        queue: SchedQueue::default(),
        writes: Arc::new(Semaphore::new(WRITE_CONCURRENCY)),
        msgs,
        events,
        rng: rand::SeedableRng::from_os_rng(),
    };
    for n in inf.nodes.list(None) {
        s.on_node(&Change {
            old: None,
            new: Some(n),
        });
    }
    for p in inf.pods.list(None) {
        s.on_pod(&Change {
            old: None,
            new: Some(p),
        });
    }
    tokio::spawn(async move {
        let mut flush = tokio::time::interval(FLUSH_PERIOD);
        loop {
            s.schedule_active();
            tokio::select! {
                c = pods_rx.recv() => match c {
                    Some(c) => s.on_pod(&c),
                    None => return,
                },
                c = nodes_rx.recv() => match c {
                    Some(c) => s.on_node(&c),
                    None => return,
                },
                Some(m) = msg_rx.recv() => s.on_msg(m),
                _ = flush.tick() => {
                    for key in s.queue.stale(Instant::now(), MAX_UNSCHEDULABLE) {
                        s.queue.activate(&key);
                    }
                }
                _ = shutdown.changed() => return,
            }
            // Take in everything already waiting so the batch is scheduled against a current view.
            loop {
                let mut any = false;
                if let Ok(c) = nodes_rx.try_recv() {
                    s.on_node(&c);
                    any = true;
                }
                if let Ok(c) = pods_rx.try_recv() {
                    s.on_pod(&c);
                    any = true;
                }
                if let Ok(m) = msg_rx.try_recv() {
                    s.on_msg(m);
                    any = true;
                }
                if !any {
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn q(s: &str) -> Quantity {
        parse_quantity(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn quantities_in_every_notation() {
        assert_eq!(q("100m").milli(), 100);
        assert_eq!(q("1").milli(), 1000);
        assert_eq!(q("1.5").milli(), 1500);
        assert_eq!(q("0.1").milli(), 100);
        assert_eq!(q("2").value(), 2);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1Mi").value(), 1 << 20);
        assert_eq!(q("8Gi").value(), 8 << 30);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("1k").value(), 1000);
        assert_eq!(q("1M").value(), 1_000_000);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E3").value(), 1000);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("500u").milli(), 1, "rounded up");
        assert_eq!(q("1n").value(), 1, "rounded up");
        assert_eq!(q("100m").value(), 1, "a tenth of a byte is a byte");
        assert_eq!(q("0").milli(), 0);
        assert_eq!(q("-1").milli(), -1000);
        assert_eq!(q("+2").value(), 2);
        assert_eq!(q(".5").milli(), 500);
        assert_eq!(q("16Ei").value(), i64::MAX, "saturates");
        for bad in ["", "m", "1..2", "1x", "1Kb", "abc", "1e", "--1"] {
            assert_eq!(parse_quantity(bad), None, "{bad} should not parse");
        }
    }

    #[test]
    fn resource_lists_keep_scalar_resources() {
        let r = Resources::from_list(&json!({"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1Gi",
            "nvidia.com/gpu": "2", "hugepages-2Mi": "4Mi", "pods": "110", "example.kubernetes.io/x": "1"}));
        assert_eq!(r.milli_cpu, 250);
        assert_eq!(r.memory, 64 << 20);
        assert_eq!(r.ephemeral_storage, 1 << 30);
        assert_eq!(r.scalar.get("nvidia.com/gpu"), Some(&2));
        assert_eq!(r.scalar.get("hugepages-2Mi"), Some(&(4 << 20)));
        assert_eq!(
            r.scalar.len(),
            2,
            "pods and kubernetes.io names are not scalar resources: {r:?}"
        );
    }

    #[test]
    fn pod_requests_follow_the_init_container_max_rule() {
        // The doc example of computePodResourceRequest: init 2/1G and 2/3G, app 2/1G and 1/1G -> 3 cpu, 3G.
        let spec = json!({
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}},
            ],
            "containers": [
                {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}},
            ],
        });
        let r = pod_request(&spec);
        assert_eq!(r.requests.milli_cpu, 3000);
        assert_eq!(r.requests.memory, 3_000_000_000);
        assert_eq!(r.nonzero_milli_cpu, 3000);
    }

    #[test]
    fn pod_requests_count_sidecars_limits_overhead_and_scoring_defaults() {
        let spec = json!({
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "1"}}},
            ],
            "containers": [
                {"name": "app", "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}}},
                {"name": "bare"},
            ],
            "overhead": {"cpu": "10m"},
        });
        let r = pod_request(&spec);
        // max(app 200m + bare 0 + sidecar 500m, init 1 + sidecar 500m) + overhead 10m.
        assert_eq!(r.requests.milli_cpu, 1510);
        assert_eq!(r.requests.memory, 128 << 20);
        // Scoring: bare counts 100m/200Mi and the sidecar 200Mi of memory.
        assert_eq!(r.nonzero_milli_cpu, 1510);
        assert_eq!(r.nonzero_memory, (128 << 20) + 2 * DEFAULT_MEMORY_REQUEST);
        let empty = pod_request(&json!({"containers": [{"name": "a"}]}));
        assert_eq!(empty.requests, Resources::default());
        assert_eq!(
            (empty.nonzero_milli_cpu, empty.nonzero_memory),
            (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)
        );
    }

    fn taint(k: &str, v: &str, e: &str) -> Taint {
        Taint::new(k, v, e)
    }

    fn tols(v: Value) -> Vec<Toleration> {
        Toleration::list(&json!({ "tolerations": v }))
    }

    #[test]
    fn tolerations_match_as_kubernetes_does() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        assert!(tolerated(&tols(json!([{"key": "dedicated", "value": "gpu"}])), &t));
        assert!(tolerated(
            &tols(json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])),
            &t
        ));
        assert!(tolerated(
            &tols(json!([{"key": "dedicated", "operator": "Exists"}])),
            &t
        ));
        assert!(tolerated(&tols(json!([{"operator": "Exists"}])), &t), "match-all");
        assert!(!tolerated(&tols(json!([{"key": "dedicated", "value": "cpu"}])), &t));
        assert!(!tolerated(
            &tols(json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}])),
            &t
        ));
        assert!(!tolerated(&tols(json!([{"key": "other", "operator": "Exists"}])), &t));
        assert!(!tolerated(&[], &t));
    }

    fn node(name: &str, cpu: &str, mem: &str, labels: Value) -> NodeInfo {
        NodeInfo::from_node(&json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
    }

    fn pod(spec: Value) -> PodInfo {
        PodInfo::from_pod(&json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}))
    }

    fn small() -> Value {
        json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]})
    }

    #[test]
    fn node_affinity_operators_and_fields() {
        let n = node("n1", "4", "8Gi", json!({"zone": "a", "gen": "5", "ssd": "true"}));
        let aff = |terms: Value| {
            let mut s = small();
            s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": terms}}});
            pod(s)
        };
        let fits = |p: &PodInfo| filter(p, &n, &Usage::default()).is_none();
        let expr = |key: &str, op: &str, values: Value| {
            aff(json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]))
        };
        assert!(fits(&expr("zone", "In", json!(["a", "b"]))));
        assert!(!fits(&expr("zone", "In", json!(["b"]))));
        assert!(fits(&expr("zone", "NotIn", json!(["b"]))));
        assert!(fits(&expr("missing", "NotIn", json!(["b"]))));
        assert!(!fits(&expr("zone", "NotIn", json!(["a"]))));
        assert!(fits(&expr("ssd", "Exists", json!(null))));
        assert!(!fits(&expr("gpu", "Exists", json!(null))));
        assert!(fits(&expr("gpu", "DoesNotExist", json!(null))));
        assert!(fits(&expr("gen", "Gt", json!(["4"]))));
        assert!(!fits(&expr("gen", "Gt", json!(["5"]))));
        assert!(fits(&expr("gen", "Lt", json!(["6"]))));
        assert!(!fits(&expr("zone", "Lt", json!(["6"]))), "non-integer label");
        assert!(fits(&aff(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]))));
        assert!(!fits(&aff(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]))));
        // Terms are ORed; requirements in a term are ANDed; an empty term matches nothing.
        assert!(fits(&aff(json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        ]))));
        assert!(!fits(&aff(json!([{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "ssd", "operator": "DoesNotExist"},
        ]}]))));
        assert!(!fits(&aff(json!([{}]))));
        assert!(!fits(&aff(json!([]))));
        // nodeSelector.
        let mut s = small();
        s["nodeSelector"] = json!({"zone": "a"});
        assert!(fits(&pod(s.clone())));
        s["nodeSelector"] = json!({"zone": "b"});
        let r = filter(&pod(s), &n, &Usage::default());
        assert_eq!(
            r.map(|r| r.reasons),
            Some(vec!["node(s) didn't match Pod's node affinity/selector".to_string()])
        );
    }

    #[test]
    fn filters_run_in_order_and_say_why() {
        let mut n = node("n1", "1", "1Gi", json!({}));
        let p = pod(small());
        assert_eq!(filter(&p, &n, &Usage::default()), None);
        n.taints.push(taint("dedicated", "gpu", "NoSchedule"));
        n.taints.push(taint("soft", "", "PreferNoSchedule"));
        let r = filter(&p, &n, &Usage::default()).map(|r| r.reasons);
        assert_eq!(
            r,
            Some(vec!["node(s) had untolerated taint {dedicated: gpu}".to_string()])
        );
        let mut tolerant = small();
        tolerant["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
        assert_eq!(filter(&pod(tolerant.clone()), &n, &Usage::default()), None);
        n.unschedulable = true;
        let r = filter(&pod(tolerant.clone()), &n, &Usage::default()).map(|r| r.reasons);
        assert_eq!(r, Some(vec!["node(s) were unschedulable".to_string()]));
        tolerant["tolerations"] = json!([{"operator": "Exists"}]);
        assert_eq!(filter(&pod(tolerant), &n, &Usage::default()), None, "tolerates cordon");
        let mut named = small();
        named["nodeName"] = json!("other");
        let r = filter(&pod(named), &node("n2", "1", "1Gi", json!({})), &Usage::default()).map(|r| r.reasons);
        assert_eq!(
            r,
            Some(vec!["node(s) didn't match the requested node name".to_string()])
        );
    }

    #[test]
    fn not_ready_nodes_count_as_tainted() {
        let mut raw = json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
            "conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let r = filter(&pod(small()), &NodeInfo::from_node(&raw), &Usage::default()).map(|r| r.reasons);
        assert_eq!(
            r,
            Some(vec![
                "node(s) had untolerated taint {node.kubernetes.io/unreachable: }".to_string()
            ])
        );
        raw["status"]["conditions"][0]["status"] = json!("False");
        let r = filter(&pod(small()), &NodeInfo::from_node(&raw), &Usage::default()).map(|r| r.reasons);
        assert_eq!(
            r,
            Some(vec![
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_string()
            ])
        );
        raw["status"]["conditions"] = json!([]);
        assert_eq!(
            filter(&pod(small()), &NodeInfo::from_node(&raw), &Usage::default()),
            None,
            "no Ready condition yet: not tainted by the scheduler"
        );
        raw["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        let mut daemon = small();
        daemon["tolerations"] = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]);
        assert_eq!(
            filter(&pod(daemon), &NodeInfo::from_node(&raw), &Usage::default()),
            None
        );
    }

    #[test]
    fn resources_fit_against_allocatable_minus_requested() {
        let n = node("n1", "1", "1Gi", json!({}));
        let big = |cpu: &str, mem: &str| {
            pod(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}))
        };
        let mut used = Usage::default();
        used.add(&big("600m", "512Mi"));
        assert_eq!(filter(&big("400m", "512Mi"), &n, &used), None, "exactly full fits");
        let r = filter(&big("500m", "600Mi"), &n, &used);
        assert_eq!(
            r,
            Some(Rejection {
                reasons: vec!["Insufficient cpu".into(), "Insufficient memory".into()],
                unresolvable: false
            })
        );
        let r = filter(&big("2", "1Mi"), &n, &Usage::default());
        assert_eq!(
            r,
            Some(Rejection {
                reasons: vec!["Insufficient cpu".into()],
                unresolvable: true
            }),
            "more than the node has in all"
        );
        let full = Usage {
            pods: 110,
            ..Usage::default()
        };
        let r = filter(&pod(json!({"containers": [{"name": "a"}]})), &n, &full).map(|r| r.reasons);
        assert_eq!(r, Some(vec!["Too many pods".to_string()]));
        let gpu = pod(json!({"containers": [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}));
        let r = filter(&gpu, &n, &Usage::default()).map(|r| r.reasons);
        assert_eq!(r, Some(vec!["Insufficient nvidia.com/gpu".to_string()]));
        used.remove(&big("600m", "512Mi"));
        assert_eq!(used.requested, Resources::default());
        assert_eq!(used.pods, 0);
    }

    #[test]
    fn fit_error_messages_match_kube_scheduler() {
        let taint = Rejection::unresolvable("node(s) had untolerated taint {key: value}".into());
        let cpu = Rejection {
            reasons: vec!["Insufficient cpu".into()],
            unresolvable: false,
        };
        assert_eq!(
            fit_error_message(3, &[cpu.clone(), taint, cpu]),
            "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
             2 No preemption victims found for incoming pod.."
        );
        let both = Rejection {
            reasons: vec!["Insufficient cpu".into(), "Insufficient memory".into()],
            unresolvable: true,
        };
        assert_eq!(
            fit_error_message(1, &[both]),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. \
             preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
        );
        assert_eq!(fit_error_message(0, &[]), "no nodes available to schedule pods");
    }

    #[test]
    fn scores_prefer_free_nodes_and_spread_replicas() {
        let n = node("n", "4", "8Gi", json!({}));
        let p = PodRequest {
            requests: Resources::default(),
            nonzero_milli_cpu: 1000,
            nonzero_memory: 2 << 30,
        };
        assert_eq!(least_allocated_score(&p, &n, &Usage::default()), 75);
        let used = Usage {
            nonzero_milli_cpu: 3000,
            nonzero_memory: 6 << 30,
            ..Usage::default()
        };
        assert_eq!(least_allocated_score(&p, &n, &used), 0);
        assert_eq!(spread_scores(&[0, 0]), vec![100, 100]);
        assert_eq!(spread_scores(&[2, 1, 0]), vec![0, 50, 100]);
    }

    #[test]
    fn selection_spreads_a_workload_and_packs_by_free_space() {
        let nodes = [
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
            node("c", "4", "8Gi", json!({})),
        ];
        let mut usage: Vec<Usage> = vec![Usage::default(); 3];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut replica = PodInfo::from_pod(&json!({
            "metadata": {"name": "r", "ownerReferences": [{"uid": "rs-1", "controller": true}]},
            "spec": small(),
        }));
        replica.owner = Some("rs-1".into());
        for _ in 0..6 {
            let view: Vec<(&NodeInfo, &Usage)> = nodes.iter().zip(usage.iter()).collect();
            let chosen = select_node(&replica, &view, &mut rng).map(|n| n.name.clone());
            let Ok(chosen) = chosen else { panic!("a node fits") };
            let i = nodes.iter().position(|n| n.name == chosen).unwrap_or(0);
            usage[i].add(&replica);
        }
        assert!(usage.iter().all(|u| u.pods == 2), "replicas spread evenly: {usage:?}");
        // A lone pod goes to the emptiest node.
        usage[0].add(&pod(
            json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "3"}}}]}),
        ));
        usage[1].add(&pod(
            json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "2"}}}]}),
        ));
        let view: Vec<(&NodeInfo, &Usage)> = nodes.iter().zip(usage.iter()).collect();
        let chosen = select_node(&pod(small()), &view, &mut rng).map(|n| n.name.clone());
        assert_eq!(chosen.ok().as_deref(), Some("c"));
        // Nothing fits: one rejection per node.
        let huge = pod(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "64"}}}]}));
        let r = select_node(&huge, &view, &mut rng).err().map(|r| r.len());
        assert_eq!(r, Some(3));
    }

    /// Decisions alone for a burst: 1,000 pods over 100 nodes, assuming each as it is placed. Prints the time
    /// (performance goals live in the benchmark; this only shows the decision is not the bottleneck).
    #[test]
    fn a_burst_of_decisions_is_cheap() {
        let nodes: Vec<NodeInfo> = (0..100)
            .map(|i| node(&format!("n{i}"), "16", "64Gi", json!({"zone": format!("z{}", i % 3)})))
            .collect();
        let mut usage: HashMap<String, Usage> = HashMap::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut spec = small();
        spec["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300}]);
        spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z0", "z1"]}]}]}}});
        let raw =
            json!({"metadata": {"name": "p", "ownerReferences": [{"uid": "rs", "controller": true}]}, "spec": spec});
        let empty = Usage::default();
        let start = Instant::now();
        for _ in 0..1000 {
            let info = PodInfo::from_pod(&raw);
            let view: Vec<(&NodeInfo, &Usage)> = nodes
                .iter()
                .map(|n| (n, usage.get(&n.name).unwrap_or(&empty)))
                .collect();
            let chosen = select_node(&info, &view, &mut rng).map(|n| n.name.clone());
            let Ok(chosen) = chosen else { panic!("a node fits") };
            usage.entry(chosen).or_default().add(&info);
        }
        let took = start.elapsed();
        println!("1000 decisions over 100 nodes in {took:?}");
        assert_eq!(usage.values().map(|u| u.pods).sum::<i64>(), 1000);
        assert!(
            usage
                .keys()
                .all(|n| nodes.iter().any(|x| x.name == *n && x.labels["zone"] != "z2"))
        );
    }

    #[test]
    fn the_queue_orders_by_priority_and_backs_off() {
        let t0 = Instant::now();
        let mut q = SchedQueue::default();
        q.pod_pending("ns/low", 0, true, t0);
        q.pod_pending("ns/high", 100, true, t0);
        q.pod_pending("ns/low2", 0, true, t0);
        q.pod_pending("ns/low", 0, true, t0);
        assert_eq!(q.pop().as_deref(), Some("ns/high"));
        assert_eq!(q.pop().as_deref(), Some("ns/low"));
        assert_eq!(q.pop().as_deref(), Some("ns/low2"));
        assert_eq!(q.pop(), None, "no duplicates");
        // A failed pod waits; a status-only update does not move it; a cluster change after backoff does.
        q.failed("ns/low", 0, t0);
        assert_eq!(q.pod_pending("ns/low", 0, false, t0), None);
        assert_eq!(q.pop(), None);
        let timers = q.wake_all(t0 + Duration::from_millis(200));
        assert_eq!(timers, vec![("ns/low".to_string(), Duration::from_millis(800))]);
        assert_eq!(q.pop(), None, "still backing off");
        q.backoff_done("ns/low");
        assert_eq!(q.pop().as_deref(), Some("ns/low"));
        q.failed("ns/low", 0, t0);
        assert!(
            q.wake_all(t0 + Duration::from_secs(3)).is_empty(),
            "second backoff is 2 s"
        );
        assert_eq!(q.pop().as_deref(), Some("ns/low"));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
        q.failed("ns/low", 0, t0);
        assert_eq!(
            q.stale(t0 + MAX_UNSCHEDULABLE, MAX_UNSCHEDULABLE),
            vec!["ns/low".to_string()]
        );
        q.remove("ns/low");
        assert!(q.wake_all(t0 + MAX_UNSCHEDULABLE).is_empty());
    }

    #[test]
    fn the_unschedulable_condition_is_written_once() {
        let p = json!({"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending"}});
        let a = with_unschedulable_condition(&p, "0/1 nodes are available: x.", "2024-01-01T00:00:00Z");
        let c = &a["status"]["conditions"][0];
        assert_eq!(
            (&c["type"], &c["status"], &c["reason"]),
            (&json!("PodScheduled"), &json!("False"), &json!("Unschedulable"))
        );
        let b = with_unschedulable_condition(&a, "0/1 nodes are available: x.", "2024-01-01T00:00:09Z");
        assert_eq!(a, b, "same message, same transition time: no write");
        let c2 = with_unschedulable_condition(&a, "0/2 nodes are available: y.", "2024-01-01T00:00:09Z");
        assert_eq!(
            c2["status"]["conditions"][0]["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(c2["status"]["conditions"][0]["message"], "0/2 nodes are available: y.");
        let mut bound = p.clone();
        bound["spec"]["nodeName"] = json!("n");
        assert_eq!(with_unschedulable_condition(&bound, "m", "t"), bound);
    }
}
