//! The EndpointSlice and Endpoints controllers (kube-controller-manager's `endpointslice` and `endpoints`).
//!
//! Every Service with a selector gets EndpointSlices named `<svc>-<random>`, one group per distinct port set and
//! address type with at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints each, and a legacy Endpoints object of the
//! Service's name. Both list the pods in the Service's namespace that match its selector and have an address.
//! Services without a selector (and ExternalName Services) are left to whoever manages their endpoints, as in
//! Kubernetes; that includes the `kubernetes` Service, which the API server maintains itself.
//!
//! The desired state is computed by pure functions ([`desired_port_sets`], [`plan_slices`], [`desired_subsets`])
//! from the informer caches; the two workers only diff and write, and write nothing when nothing differs. Pod,
//! Service, Node and slice changes are mapped to the Services they concern, so a readiness change reaches the
//! slices as soon as the pod's status is written. Slices written by this controller are tracked until the cache
//! shows them ([`Expectations`], the EndpointSliceTracker), so a reconcile never acts on a view that misses its own
//! previous writes (which would create duplicate slices).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_core::selector::LabelSelector;
use serde_json::{Map, Value, json};
use tracing::Instrument;

use super::{Change, Informer, Informers, Queue, event, key_of, res, run_worker};
use crate::api::Api;
use crate::api::error::ApiError;
use crate::api::object::{meta_str, revision};
use crate::api::request::Query;
use crate::api::route::ResourcePath;

/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Label on the slices and Endpoints of a headless Service.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Node label giving an endpoint's zone.
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Annotation on an Endpoints object whose addresses were cut to [`MAX_ENDPOINTS_ADDRESSES`].
const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Annotation of leader-election Endpoints, which are not leftovers of deleted Services.
const ANNOTATION_LEADER: &str = "control-plane.alpha.kubernetes.io/leader";
/// Most endpoints in one slice (kube-controller-manager's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Most addresses in one Endpoints object; more are truncated.
const MAX_ENDPOINTS_ADDRESSES: usize = 1000;
/// When to look again after finding the cache behind this controller's own writes, or a write conflict.
const CACHE_LAG_RETRY: Duration = Duration::from_millis(50);
/// How long a write may stay invisible in the cache before it is no longer waited for (someone else deleted or
/// replaced the object in between).
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Event source of the slice controller.
const SLICE_COMPONENT: &str = "endpointslice-controller";
/// Event source of the Endpoints controller.
const ENDPOINTS_COMPONENT: &str = "endpoint-controller";

// ---------------------------------------------------------------------------------------------------------------
// Pure logic: what a Service's slices and Endpoints should hold
// ---------------------------------------------------------------------------------------------------------------

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A list as stored: `null` when empty (the API's lists without `omitempty` read back as null when empty).
fn list_or_null(items: Vec<Value>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items)
    }
}

/// The Service's selector when this controller manages its endpoints: a non-empty `spec.selector` on a Service
/// that is not of type ExternalName.
pub fn managed_selector(svc: &Value) -> Option<LabelSelector> {
    if str_at(svc, "/spec/type") == "ExternalName" {
        return None;
    }
    let sel = svc.pointer("/spec/selector")?.as_object()?;
    (!sel.is_empty()).then(|| LabelSelector::from_map(sel))
}

/// `!IsServiceIPSet`: a Service without a cluster IP.
fn is_headless(svc: &Value) -> bool {
    matches!(str_at(svc, "/spec/clusterIP"), "" | "None")
}

/// `getAddressTypesForService`: the slice address types a Service gets, from `spec.ipFamilies`, else its cluster
/// IP, else (headless without families) both.
pub fn address_types(svc: &Value) -> Vec<&'static str> {
    let mut types: Vec<&'static str> = Vec::new();
    for f in arr(svc, "/spec/ipFamilies") {
        let t = match f.as_str() {
            Some("IPv4") => "IPv4",
            Some("IPv6") => "IPv6",
            _ => continue,
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if !types.is_empty() {
        return types;
    }
    if is_headless(svc) {
        return vec!["IPv4", "IPv6"];
    }
    match str_at(svc, "/spec/clusterIP").parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => vec!["IPv6"],
        _ => vec!["IPv4"],
    }
}

/// `IsPodReady`: the pod's `Ready` condition is `True`.
pub fn pod_ready(pod: &Value) -> bool {
    arr(pod, "/status/conditions")
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// The pod's address of one family (`IPv4` or `IPv6`), from `status.podIPs` then `status.podIP`.
fn pod_ip(pod: &Value, address_type: &str) -> Option<String> {
    let listed = arr(pod, "/status/podIPs").iter().map(|p| str_at(p, "/ip"));
    listed
        .chain(std::iter::once(str_at(pod, "/status/podIP")))
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .find(|ip| matches!((ip, address_type), (IpAddr::V4(_), "IPv4") | (IpAddr::V6(_), "IPv6")))
        .map(|ip| ip.to_string())
}

/// `ShouldPodBeInEndpoints`: not terminal, has an address, and (unless `include_terminating`) not being deleted.
fn should_be_in_endpoints(pod: &Value, include_terminating: bool) -> bool {
    if matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed") {
        return false;
    }
    if str_at(pod, "/status/podIP").is_empty() && arr(pod, "/status/podIPs").is_empty() {
        return false;
    }
    include_terminating || !terminating(pod)
}

/// `ShouldSetHostname`: the pod names a hostname and sits in the Service's subdomain.
fn should_set_hostname(pod: &Value, svc: &Value) -> bool {
    !str_at(pod, "/spec/hostname").is_empty()
        && str_at(pod, "/spec/subdomain") == str_at(svc, "/metadata/name")
        && str_at(pod, "/metadata/namespace") == str_at(svc, "/metadata/namespace")
}

fn protocol_of(port: &Value) -> &str {
    match str_at(port, "/protocol") {
        "" => "TCP",
        p => p,
    }
}

/// `FindPort`: the container port a Service port targets on a pod. A named `targetPort` is looked up among the
/// ports of the containers and sidecars (init containers with `restartPolicy: Always`) with the same protocol;
/// `None` when the pod has no such port.
pub fn find_port(pod: &Value, svc_port: &Value) -> Option<i64> {
    match svc_port.get("targetPort") {
        Some(Value::String(name)) => {
            let proto = protocol_of(svc_port);
            let sidecars = arr(pod, "/spec/initContainers")
                .iter()
                .filter(|c| str_at(c, "/restartPolicy") == "Always");
            arr(pod, "/spec/containers")
                .iter()
                .chain(sidecars)
                .flat_map(|c| arr(c, "/ports"))
                .find(|p| str_at(p, "/name") == name && protocol_of(p) == proto)
                .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
        }
        Some(Value::Number(n)) => n.as_i64(),
        _ => svc_port.get("port").and_then(Value::as_i64),
    }
}

/// One resolved port of an endpoint (`discovery/v1` EndpointPort and `v1` EndpointPort have the same shape).
fn endpoint_port(svc_port: &Value, number: i64) -> Value {
    let mut p = json!({"name": str_at(svc_port, "/name"), "port": number, "protocol": protocol_of(svc_port)});
    if let Some(ap) = svc_port.get("appProtocol").filter(|v| v.is_string()) {
        p["appProtocol"] = ap.clone();
    }
    p
}

/// `getEndpointPorts`: the Service's ports resolved on one pod, in the Service's order; ports the pod lacks are
/// left out.
fn endpoint_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    arr(svc, "/spec/ports")
        .iter()
        .filter_map(|sp| find_port(pod, sp).map(|n| endpoint_port(sp, n)))
        .collect()
}

/// An order-independent key of a port set: the slices of a Service are grouped by it.
pub fn port_key(ports: &[Value]) -> String {
    let mut items: Vec<String> = ports
        .iter()
        .map(|p| json!([str_at(p, "/name"), p.get("port"), protocol_of(p), p.get("appProtocol")]).to_string())
        .collect();
    items.sort();
    items.join(",")
}

/// The identity of an endpoint across reconciles: its pod's uid, else its first address.
fn endpoint_key(ep: &Value) -> String {
    match str_at(ep, "/targetRef/uid") {
        "" => arr(ep, "/addresses")
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        uid => uid.to_string(),
    }
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": str_at(pod, "/metadata/namespace"),
           "name": str_at(pod, "/metadata/name"), "uid": str_at(pod, "/metadata/uid")})
}

/// `podToEndpoint`: a pod as a slice endpoint. `serving` follows readiness; `ready` is also false while the pod
/// terminates (both true regardless with `publishNotReadyAddresses`).
fn pod_endpoint(pod: &Value, svc: &Value, ip: String, zone: Option<String>) -> Value {
    let publish = svc.pointer("/spec/publishNotReadyAddresses") == Some(&Value::Bool(true));
    let serving = publish || pod_ready(pod);
    let terminating = terminating(pod);
    let ready = publish || (serving && !terminating);
    let mut ep = json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": target_ref(pod),
    });
    let node = str_at(pod, "/spec/nodeName");
    if !node.is_empty() {
        ep["nodeName"] = json!(node);
    }
    if let Some(z) = zone {
        ep["zone"] = json!(z);
    }
    if should_set_hostname(pod, svc) {
        ep["hostname"] = json!(str_at(pod, "/spec/hostname"));
    }
    ep
}

/// The pods of `pods` that `selector` selects in the Service's namespace, by name.
fn selected<'a>(svc: &Value, selector: &LabelSelector, pods: &'a [Arc<Value>]) -> Vec<&'a Value> {
    let ns = str_at(svc, "/metadata/namespace");
    let mut out: Vec<&Value> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| str_at(p, "/metadata/namespace") == ns && selector.matches_object(p))
        .collect();
    out.sort_by(|a, b| str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")));
    out
}

/// The endpoints sharing one port set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortSet {
    /// The resolved ports, in the Service's order.
    pub ports: Vec<Value>,
    /// The endpoints, one per pod, by pod name.
    pub endpoints: Vec<Value>,
}

/// The endpoints a Service should have for one address type, grouped by [`port_key`]. `zone_of` gives a node's
/// `topology.kubernetes.io/zone`.
pub fn desired_port_sets(
    svc: &Value,
    selector: &LabelSelector,
    pods: &[Arc<Value>],
    address_type: &str,
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, PortSet> {
    let mut sets: BTreeMap<String, PortSet> = BTreeMap::new();
    for pod in selected(svc, selector, pods) {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ip(pod, address_type) else {
            continue;
        };
        let ports = endpoint_ports(svc, pod);
        let zone = zone_of(str_at(pod, "/spec/nodeName"));
        let set = sets.entry(port_key(&ports)).or_default();
        set.ports = ports;
        set.endpoints.push(pod_endpoint(pod, svc, ip, zone));
    }
    sets
}

/// `setEndpointSliceLabels`: the Service's labels (reserved keys dropped), the headless marker, and the Service
/// name and managing controller.
pub fn slice_labels(svc: &Value) -> Value {
    let reserved = [LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS];
    let mut labels: Map<String, Value> = svc
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !reserved.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), json!(""));
    }
    labels.insert(LABEL_SERVICE_NAME.into(), json!(str_at(svc, "/metadata/name")));
    labels.insert(LABEL_MANAGED_BY.into(), json!(MANAGED_BY));
    Value::Object(labels)
}

/// The controller reference from a slice to its Service.
fn owner_ref(svc: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "name": str_at(svc, "/metadata/name"),
           "uid": str_at(svc, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true})
}

/// `ownedBy`: the slice has an owner reference to this Service (by uid).
pub fn owned_by(slice: &Value, svc: &Value) -> bool {
    let uid = str_at(svc, "/metadata/uid");
    arr(slice, "/metadata/ownerReferences")
        .iter()
        .any(|r| r["kind"] == "Service" && r["apiVersion"] == "v1" && r["uid"] == uid)
}

/// Whether a slice is managed by this controller for the Service named `service`.
fn managed_for(slice: &Value, service: &str) -> bool {
    str_at(slice, "/metadata/labels/kubernetes.io~1service-name") == service
        && str_at(slice, "/metadata/labels/endpointslice.kubernetes.io~1managed-by") == MANAGED_BY
}

fn is_placeholder(slice: &Value) -> bool {
    arr(slice, "/endpoints").is_empty() && arr(slice, "/ports").is_empty()
}

/// The writes that bring one address type's slices of a Service to the desired state.
#[derive(Debug, Default)]
pub struct SlicePlan {
    /// New slices (with `generateName`).
    pub create: Vec<Value>,
    /// Changed slices: the cached object with new contents, its `resourceVersion` kept as a precondition.
    pub update: Vec<Value>,
    /// Slices to delete.
    pub delete: Vec<Arc<Value>>,
}

impl SlicePlan {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// An existing slice being kept, with the endpoints it will hold.
struct Kept {
    slice: Arc<Value>,
    key: String,
    endpoints: Vec<Value>,
    changed: bool,
}

fn with_contents(slice: &Value, labels: &Value, ports: &[Value], endpoints: Vec<Value>) -> Value {
    let mut o = slice.clone();
    o["metadata"]["labels"] = labels.clone();
    o["ports"] = list_or_null(ports.to_vec());
    o["endpoints"] = list_or_null(endpoints);
    o
}

/// The reconciler of one address type (`reconcileByAddressType` / `reconcileByPortMapping`): existing slices keep
/// the endpoints they hold that are still wanted (updated in place) and are deleted when left empty or when their
/// port set is no longer wanted; new endpoints go first into slices already being updated, then into new slices of
/// at most [`MAX_ENDPOINTS_PER_SLICE`], except that a last partial batch goes into an unchanged slice with room for
/// it. A slice due for deletion is reused instead of creating one, and a Service without endpoints keeps one empty
/// placeholder slice. `existing` are the Service's own slices of this address type.
pub fn plan_slices(
    svc: &Value,
    address_type: &str,
    desired: &BTreeMap<String, PortSet>,
    existing: &[Arc<Value>],
) -> SlicePlan {
    let labels = slice_labels(svc);
    let wanted: HashMap<&str, HashMap<String, &Value>> = desired
        .iter()
        .map(|(k, set)| (k.as_str(), set.endpoints.iter().map(|e| (endpoint_key(e), e)).collect()))
        .collect();
    let mut existing: Vec<&Arc<Value>> = existing.iter().collect();
    existing.sort_by(|a, b| str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")));

    let mut placed: HashSet<String> = HashSet::new();
    let mut kept: Vec<Kept> = Vec::new();
    let mut delete: Vec<Arc<Value>> = Vec::new();
    for slice in existing {
        let ports = arr(slice, "/ports");
        let key = port_key(ports);
        let Some(by_key) = wanted.get(key.as_str()) else {
            delete.push(slice.clone());
            continue;
        };
        let mut endpoints = Vec::new();
        for ep in arr(slice, "/endpoints") {
            if endpoints.len() == MAX_ENDPOINTS_PER_SLICE {
                break;
            }
            let k = endpoint_key(ep);
            if let Some(want) = by_key.get(&k)
                && placed.insert(k)
            {
                endpoints.push((*want).clone());
            }
        }
        if endpoints.is_empty() {
            delete.push(slice.clone());
            continue;
        }
        let set_ports = desired.get(&key).map(|s| s.ports.as_slice()).unwrap_or(&[]);
        let changed = endpoints.as_slice() != arr(slice, "/endpoints")
            || ports != set_ports
            || slice.pointer("/metadata/labels") != Some(&labels);
        kept.push(Kept {
            slice: slice.clone(),
            key,
            endpoints,
            changed,
        });
    }

    let mut new_sets: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
    for (key, set) in desired {
        let mut left: Vec<Value> = set
            .endpoints
            .iter()
            .filter(|e| !placed.contains(&endpoint_key(e)))
            .cloned()
            .collect();
        for k in kept.iter_mut().filter(|k| k.changed && &k.key == key) {
            let n = MAX_ENDPOINTS_PER_SLICE
                .saturating_sub(k.endpoints.len())
                .min(left.len());
            k.endpoints.extend(left.drain(..n));
        }
        while !left.is_empty() {
            if left.len() < MAX_ENDPOINTS_PER_SLICE
                && let Some(k) = kept
                    .iter_mut()
                    .find(|k| &k.key == key && k.endpoints.len() + left.len() <= MAX_ENDPOINTS_PER_SLICE)
            {
                k.endpoints.append(&mut left);
                k.changed = true;
                break;
            }
            let n = left.len().min(MAX_ENDPOINTS_PER_SLICE);
            new_sets.push((set.ports.clone(), left.drain(..n).collect()));
        }
    }

    let mut plan = SlicePlan::default();
    if kept.is_empty() && new_sets.is_empty() {
        // No endpoints at all: one placeholder slice, so that consumers see the Service is handled.
        match delete.iter().position(|s| is_placeholder(s)) {
            Some(i) => {
                let p = delete.remove(i);
                if p.pointer("/metadata/labels") != Some(&labels) {
                    plan.update.push(with_contents(&p, &labels, &[], Vec::new()));
                }
            }
            None => new_sets.push((Vec::new(), Vec::new())),
        }
    }
    for k in kept.into_iter().filter(|k| k.changed) {
        let ports = desired.get(&k.key).map(|s| s.ports.as_slice()).unwrap_or(&[]);
        plan.update.push(with_contents(&k.slice, &labels, ports, k.endpoints));
    }
    delete.reverse();
    for (ports, endpoints) in new_sets {
        match delete.pop() {
            Some(old) => plan.update.push(with_contents(&old, &labels, &ports, endpoints)),
            None => plan.create.push(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {
                    "generateName": format!("{}-", str_at(svc, "/metadata/name")),
                    "namespace": str_at(svc, "/metadata/namespace"),
                    "labels": labels,
                    "ownerReferences": [owner_ref(svc)],
                },
                "addressType": address_type,
                "endpoints": list_or_null(endpoints),
                "ports": list_or_null(ports),
            })),
        }
    }
    delete.reverse();
    plan.delete = delete;
    plan
}

/// `podToEndpointAddressForService`: a pod as a legacy Endpoints address.
fn endpoint_address(pod: &Value, svc: &Value, ip: String) -> Value {
    let mut a = json!({"ip": ip, "targetRef": target_ref(pod)});
    let node = str_at(pod, "/spec/nodeName");
    if !node.is_empty() {
        a["nodeName"] = json!(node);
    }
    if should_set_hostname(pod, svc) {
        a["hostname"] = json!(str_at(pod, "/spec/hostname"));
    }
    a
}

/// Addresses offering one port set, keyed by (ip, pod uid), each with its readiness.
type AddressSet = BTreeMap<(String, String), (Value, bool)>;

/// `RepackSubsets` and `SortSubsets`: one subset per group of addresses offering exactly the same ports, ready
/// ones in `addresses` and the others in `notReadyAddresses`, sorted by IP. `entries` are (port or `None` for a
/// headless Service without ports, address, ready).
fn repack(entries: Vec<(Option<Value>, Value, bool)>) -> Vec<Value> {
    let mut by_port: BTreeMap<String, (Option<Value>, AddressSet)> = BTreeMap::new();
    for (port, addr, ready) in entries {
        let pk = port
            .as_ref()
            .map(|p| port_key(std::slice::from_ref(p)))
            .unwrap_or_default();
        let key = (
            str_at(&addr, "/ip").to_string(),
            str_at(&addr, "/targetRef/uid").to_string(),
        );
        by_port
            .entry(pk)
            .or_insert_with(|| (port, BTreeMap::new()))
            .1
            .insert(key, (addr, ready));
    }
    let mut by_addrs: BTreeMap<String, (Vec<Value>, AddressSet)> = BTreeMap::new();
    for (port, addrs) in by_port.into_values() {
        let key = addrs
            .iter()
            .map(|((ip, uid), (_, ready))| format!("{ip}/{uid}/{ready}"))
            .collect::<Vec<_>>()
            .join(",");
        let group = by_addrs.entry(key).or_insert_with(|| (Vec::new(), addrs));
        group.0.extend(port);
    }
    let mut subsets: Vec<Value> = by_addrs
        .into_values()
        .map(|(mut ports, addrs)| {
            ports.sort_by_key(|p| port_key(std::slice::from_ref(p)));
            let (ready, not_ready): (Vec<_>, Vec<_>) = addrs.into_values().partition(|(_, r)| *r);
            let mut ss = Map::new();
            if !ready.is_empty() {
                ss.insert("addresses".into(), ready.into_iter().map(|(a, _)| a).collect());
            }
            if !not_ready.is_empty() {
                ss.insert(
                    "notReadyAddresses".into(),
                    not_ready.into_iter().map(|(a, _)| a).collect(),
                );
            }
            if !ports.is_empty() {
                ss.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(ss)
        })
        .collect();
    subsets.sort_by_key(|s| port_key(arr(s, "/ports")));
    subsets
}

/// `truncateEndpoints`: cut the addresses to [`MAX_ENDPOINTS_ADDRESSES`], keeping ready ones first and taking from
/// each subset in proportion to its size. Returns whether anything was cut.
fn truncate(subsets: &mut Vec<Value>) -> bool {
    let count = |ss: &Value, f: &str| arr(ss, &format!("/{f}")).len();
    let ready: usize = subsets.iter().map(|s| count(s, "addresses")).sum();
    let not_ready: usize = subsets.iter().map(|s| count(s, "notReadyAddresses")).sum();
    if ready + not_ready <= MAX_ENDPOINTS_ADDRESSES {
        return false;
    }
    let (field, total, max) = if ready > MAX_ENDPOINTS_ADDRESSES {
        ("addresses", ready, MAX_ENDPOINTS_ADDRESSES)
    } else {
        ("notReadyAddresses", not_ready, MAX_ENDPOINTS_ADDRESSES - ready)
    };
    let mut room = max;
    for ss in subsets.iter_mut() {
        if field == "addresses"
            && let Some(m) = ss.as_object_mut()
        {
            m.remove("notReadyAddresses");
        }
        let n = count(ss, field);
        let allowed = (n * max).div_ceil(total.max(1)).min(room).min(n);
        room -= allowed;
        if let Some(list) = ss.get_mut(field).and_then(Value::as_array_mut) {
            list.truncate(allowed);
            if list.is_empty()
                && let Some(m) = ss.as_object_mut()
            {
                m.remove(field);
            }
        }
    }
    subsets.retain(|ss| count(ss, "addresses") + count(ss, "notReadyAddresses") > 0);
    true
}

/// The legacy Endpoints `subsets` of a Service (the `endpoints` controller's `syncService`): selected pods with an
/// address of the Service's primary family, not terminating (unless `publishNotReadyAddresses`), with each Service
/// port the pod has. Returns the subsets and whether they were truncated.
pub fn desired_subsets(svc: &Value, selector: &LabelSelector, pods: &[Arc<Value>]) -> (Vec<Value>, bool) {
    let publish = svc.pointer("/spec/publishNotReadyAddresses") == Some(&Value::Bool(true));
    let family = address_types(svc).first().copied().unwrap_or("IPv4");
    let svc_ports = arr(svc, "/spec/ports");
    let mut entries = Vec::new();
    for pod in selected(svc, selector, pods) {
        if !should_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ip(pod, family) else {
            continue;
        };
        let addr = endpoint_address(pod, svc, ip);
        let ready = publish || pod_ready(pod);
        if svc_ports.is_empty() {
            if is_headless(svc) {
                entries.push((None, addr, ready));
            }
            continue;
        }
        for sp in svc_ports {
            if let Some(n) = find_port(pod, sp) {
                entries.push((Some(endpoint_port(sp, n)), addr.clone(), ready));
            }
        }
    }
    let mut subsets = repack(entries);
    let truncated = truncate(&mut subsets);
    (subsets, truncated)
}

/// The labels of a Service's Endpoints: the Service's, plus the headless marker when it has no cluster IP.
pub fn endpoints_labels(svc: &Value) -> Value {
    let mut labels = svc
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), json!(""));
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    Value::Object(labels)
}

/// Whether an Endpoints object already has the given contents (labels compared as a whole, annotations only for
/// the over-capacity marker).
fn endpoints_up_to_date(cur: &Value, subsets: &[Value], labels: &Value, truncated: bool) -> bool {
    let empty = json!({});
    let cur_labels = cur
        .pointer("/metadata/labels")
        .filter(|l| !l.is_null())
        .unwrap_or(&empty);
    let marked = cur
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_OVER_CAPACITY))
        .is_some();
    arr(cur, "/subsets") == subsets && cur_labels == labels && marked == truncated
}

/// Set an Endpoints object's subsets, labels and over-capacity annotation.
fn set_endpoints_contents(o: &mut Value, subsets: &[Value], labels: &Value, truncated: bool) {
    if let Some(m) = o.as_object_mut() {
        if subsets.is_empty() {
            m.remove("subsets");
        } else {
            m.insert("subsets".into(), Value::Array(subsets.to_vec()));
        }
    }
    o["metadata"]["labels"] = labels.clone();
    let annotations = o["metadata"]
        .as_object_mut()
        .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
    if let Some(a) = annotations {
        if !a.is_object() {
            *a = json!({});
        }
        if let Some(a) = a.as_object_mut() {
            if truncated {
                a.insert(ANNOTATION_OVER_CAPACITY.into(), json!("truncated"));
            } else {
                a.remove(ANNOTATION_OVER_CAPACITY);
            }
        }
    }
    if o.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
        && let Some(m) = o["metadata"].as_object_mut()
    {
        m.remove("annotations");
    }
}

/// What about a pod decides its endpoints; changes elsewhere (e.g. container statuses) concern no Service.
fn pod_projection(p: &Value) -> Value {
    json!([
        p.pointer("/metadata/labels"),
        p.pointer("/metadata/deletionTimestamp"),
        p.pointer("/spec/nodeName"),
        p.pointer("/spec/hostname"),
        p.pointer("/spec/subdomain"),
        p.pointer("/spec/containers"),
        p.pointer("/spec/initContainers"),
        p.pointer("/status/phase"),
        p.pointer("/status/podIP"),
        p.pointer("/status/podIPs"),
        pod_ready(p),
    ])
}

fn zone_label(node: &Value) -> Option<&str> {
    node.pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_ZONE))
        .and_then(Value::as_str)
        .filter(|z| !z.is_empty())
}

// ---------------------------------------------------------------------------------------------------------------
// Expectations: waiting for the cache to show this controller's own writes
// ---------------------------------------------------------------------------------------------------------------

/// Slice writes of one Service not yet seen in the cache: name → revision written (`None` for a deletion).
struct Pending {
    writes: HashMap<String, Option<i64>>,
    since: Instant,
}

/// Per Service, the slice writes the cache has yet to show.
#[derive(Default)]
struct Expectations(Mutex<HashMap<String, Pending>>);

impl Expectations {
    /// Remember writes to the slices of Service `key`.
    fn record(&self, key: &str, writes: HashMap<String, Option<i64>>) {
        if writes.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            key.to_string(),
            Pending {
                writes,
                since: Instant::now(),
            },
        );
    }

    /// Whether the slice cache shows every recorded write for Service `key` (or they are too old to wait for).
    fn satisfied(&self, key: &str, ns: &str, slices: &Informer) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = map.get(key) else { return true };
        let seen = p.writes.iter().all(|(name, rev)| match (rev, slices.get(ns, name)) {
            (None, cached) => cached.is_none(),
            (Some(rev), Some(cached)) => revision(&cached).is_some_and(|r| r >= *rev),
            (Some(_), None) => false,
        });
        if seen || p.since.elapsed() > EXPECTATION_TIMEOUT {
            if !seen {
                tracing::debug!(svc = key, "slice writes never showed in the cache; no longer waiting");
            }
            map.remove(key);
            return true;
        }
        false
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The controllers
// ---------------------------------------------------------------------------------------------------------------

fn path(res_def: &'static api_core::registry::ResourceDef, ns: &str, name: Option<&str>) -> ResourcePath {
    ResourcePath {
        res: res_def,
        namespace: Some(ns.to_string()),
        name: name.map(str::to_string),
        sub: None,
        watch_path: false,
    }
}

fn slices_res() -> &'static api_core::registry::ResourceDef {
    res("discovery.k8s.io/v1", "EndpointSlice")
}

fn endpoints_res() -> &'static api_core::registry::ResourceDef {
    res("v1", "Endpoints")
}

/// The Services (keys) selecting a pod before or after a change that matters to endpoints.
fn services_for_pod(services: &Informer, c: &Change) -> Vec<String> {
    if let (Some(o), Some(n)) = (&c.old, &c.new)
        && pod_projection(o) == pod_projection(n)
    {
        return Vec::new();
    }
    let Some(ns) = c.object().and_then(|p| meta_str(p, "namespace")) else {
        return Vec::new();
    };
    services
        .list(Some(ns))
        .iter()
        .filter(|svc| {
            managed_selector(svc)
                .is_some_and(|sel| [&c.old, &c.new].into_iter().flatten().any(|p| sel.matches_object(p)))
        })
        .map(|svc| key_of(svc))
        .collect()
}

/// Forward an informer's changes to several queues.
fn feed_all(informer: &Informer, queues: Vec<Queue>, keys: impl Fn(&Change) -> Vec<String> + Send + 'static) {
    let mut rx = informer.subscribe();
    tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            for k in keys(&change) {
                for q in &queues {
                    q.add(k.clone());
                }
            }
        }
    });
}

/// Start the EndpointSlice and Endpoints controllers.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let (slices_q, slices_rx) = Queue::new();
    let (eps_q, eps_rx) = Queue::new();
    let both = vec![slices_q.clone(), eps_q.clone()];

    feed_all(&inf.services, both.clone(), |c| {
        c.object().map(|s| key_of(s)).into_iter().collect()
    });
    let services = inf.services.clone();
    feed_all(&inf.pods, both, move |c| services_for_pod(&services, c));
    feed_all(&inf.endpointslices, vec![slices_q.clone()], |c| {
        let mut keys: Vec<String> = [&c.old, &c.new]
            .into_iter()
            .flatten()
            .filter(|s| str_at(s, "/metadata/labels/endpointslice.kubernetes.io~1managed-by") == MANAGED_BY)
            .filter_map(|s| {
                let svc = str_at(s, "/metadata/labels/kubernetes.io~1service-name");
                (!svc.is_empty()).then(|| format!("{}/{svc}", str_at(s, "/metadata/namespace")))
            })
            .collect();
        keys.dedup();
        keys
    });
    // A deleted Endpoints object of a Service with a selector comes back.
    feed_all(&inf.endpoints, vec![eps_q.clone()], |c| match (&c.old, &c.new) {
        (Some(o), None) => vec![key_of(o)],
        _ => Vec::new(),
    });
    let services = inf.services.clone();
    feed_all(&inf.nodes, vec![slices_q.clone()], move |c| {
        let zone = |n: &Option<Arc<Value>>| n.as_deref().and_then(zone_label).map(str::to_string);
        if zone(&c.old) == zone(&c.new) {
            return Vec::new();
        }
        services
            .list(None)
            .iter()
            .filter(|s| managed_selector(s).is_some())
            .map(|s| key_of(s))
            .collect()
    });

    for svc in inf.services.list(None) {
        slices_q.add(key_of(&svc));
        eps_q.add(key_of(&svc));
    }
    // Leftovers of Services deleted while the server was down (`checkLeftoverEndpoints`).
    for ep in inf.endpoints.list(None) {
        let leader = ep
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION_LEADER))
            .is_some();
        let ns = meta_str(&ep, "namespace").unwrap_or("");
        if !leader && inf.services.get(ns, meta_str(&ep, "name").unwrap_or("")).is_none() {
            eps_q.add(key_of(&ep));
        }
    }
    for s in inf.endpointslices.list(None) {
        let svc = str_at(&s, "/metadata/labels/kubernetes.io~1service-name");
        let ns = meta_str(&s, "namespace").unwrap_or("");
        if !svc.is_empty() && managed_for(&s, svc) && inf.services.get(ns, svc).is_none() {
            slices_q.add(format!("{ns}/{svc}"));
        }
    }

    let expectations = Arc::new(Expectations::default());
    let (a, i) = (api.clone(), inf.clone());
    tokio::spawn(run_worker("endpointslice", slices_q.clone(), slices_rx, move |key| {
        let (api, inf, exp) = (a.clone(), i.clone(), expectations.clone());
        let span = tracing::debug_span!("endpointslice", svc = %key);
        async move { sync_slices(&api, &inf, &exp, &key).await }.instrument(span)
    }));
    tokio::spawn(run_worker("endpoints", eps_q.clone(), eps_rx, move |key| {
        let (api, inf) = (api.clone(), inf.clone());
        let span = tracing::debug_span!("endpoints", svc = %key);
        async move { sync_endpoints(&api, &inf, &key).await }.instrument(span)
    }));
}

/// How a failed write is handled: stale cache or a race (retry soon), nothing left to do, or an error.
enum WriteFailure {
    Retry,
    Stop,
    Fail(String),
}

fn classify(e: &ApiError) -> WriteFailure {
    match e.code {
        // Stale cache (conflict, or an object gone meanwhile): look again once the cache caught up.
        409 | 404 => WriteFailure::Retry,
        // The namespace is terminating: its content is being deleted anyway.
        403 => WriteFailure::Stop,
        _ => WriteFailure::Fail(e.message.clone()),
    }
}

/// Reconcile the EndpointSlices of Service `key` (`namespace/name`).
async fn sync_slices(api: &Api, inf: &Informers, exp: &Expectations, key: &str) -> Result<Option<Duration>, String> {
    let Some((ns, name)) = key.split_once('/') else {
        return Ok(None);
    };
    if !exp.satisfied(key, ns, &inf.endpointslices) {
        return Ok(Some(CACHE_LAG_RETRY));
    }
    let slices: Vec<Arc<Value>> = inf
        .endpointslices
        .list(Some(ns))
        .into_iter()
        .filter(|s| managed_for(s, name) && !terminating(s))
        .collect();
    let mut plan = SlicePlan::default();
    let svc = inf.services.get(ns, name);
    match &svc {
        // The garbage collector deletes slices owned by a deleted Service; this catches any created while the
        // Service was going away.
        None => plan.delete = slices,
        Some(svc) => {
            let Some(selector) = managed_selector(svc) else {
                return Ok(None);
            };
            let pods = inf.pods.list(Some(ns));
            let zone_of = |node: &str| inf.nodes.get("", node).and_then(|n| zone_label(&n).map(str::to_string));
            let types = address_types(svc);
            let (owned, foreign): (Vec<_>, Vec<_>) = slices
                .into_iter()
                .partition(|s| owned_by(s, svc) && types.contains(&str_at(s, "/addressType")));
            plan.delete = foreign;
            for t in types {
                let desired = desired_port_sets(svc, &selector, &pods, t, &zone_of);
                let existing: Vec<Arc<Value>> = owned
                    .iter()
                    .filter(|s| str_at(s, "/addressType") == t)
                    .cloned()
                    .collect();
                let p = plan_slices(svc, t, &desired, &existing);
                plan.create.extend(p.create);
                plan.update.extend(p.update);
                plan.delete.extend(p.delete);
            }
        }
    }
    if plan.is_empty() {
        return Ok(None);
    }
    tracing::debug!(
        create = plan.create.len(),
        update = plan.update.len(),
        delete = plan.delete.len(),
        "writing endpoint slices"
    );
    let mut writes = HashMap::new();
    let outcome = apply_slices(api, ns, plan, &mut writes).await;
    exp.record(key, writes);
    match outcome {
        Ok(()) => Ok(None),
        Err(WriteFailure::Retry) => Ok(Some(CACHE_LAG_RETRY)),
        Err(WriteFailure::Stop) => Ok(None),
        Err(WriteFailure::Fail(msg)) => {
            if let Some(svc) = &svc {
                let message = format!("Error updating Endpoint Slices for Service {key}: {msg}");
                event(
                    api,
                    svc,
                    "Warning",
                    "FailedToUpdateEndpointSlices",
                    &message,
                    SLICE_COMPONENT,
                )
                .await;
            }
            Err(msg)
        }
    }
}

/// Write a plan: creations, then updates, then deletions (so endpoints move before their old slice goes),
/// recording each write's revision. Stops at the first failure.
async fn apply_slices(
    api: &Api,
    ns: &str,
    plan: SlicePlan,
    writes: &mut HashMap<String, Option<i64>>,
) -> Result<(), WriteFailure> {
    let q = Query::internal();
    for body in plan.create {
        let reply = api
            .create(&path(slices_res(), ns, None), body, &q)
            .await
            .map_err(|e| classify(&e))?;
        let name = meta_str(&reply.body, "name").unwrap_or("").to_string();
        tracing::debug!(slice = %name, "created endpoint slice");
        writes.insert(name, revision(&reply.body));
    }
    for body in plan.update {
        let name = meta_str(&body, "name").unwrap_or("").to_string();
        let reply = api
            .update(&path(slices_res(), ns, Some(&name)), body, &q)
            .await
            .map_err(|e| classify(&e))?;
        tracing::debug!(slice = %name, "updated endpoint slice");
        writes.insert(name, revision(&reply.body));
    }
    for slice in plan.delete {
        let name = meta_str(&slice, "name").unwrap_or("").to_string();
        let uid = meta_str(&slice, "uid").unwrap_or("");
        let options = json!({"preconditions": {"uid": uid}});
        match api.delete(&path(slices_res(), ns, Some(&name)), options, &q).await {
            Ok(_) | Err(ApiError { code: 404, .. }) => {}
            // Another slice of that name replaced it: not ours to delete.
            Err(ApiError { code: 409, .. }) => continue,
            Err(e) => return Err(classify(&e)),
        }
        tracing::debug!(slice = %name, "deleted endpoint slice");
        writes.insert(name, None);
    }
    Ok(())
}

/// Reconcile the legacy Endpoints of Service `key` (`namespace/name`).
async fn sync_endpoints(api: &Api, inf: &Informers, key: &str) -> Result<Option<Duration>, String> {
    let Some((ns, name)) = key.split_once('/') else {
        return Ok(None);
    };
    let rp = path(endpoints_res(), ns, Some(name));
    let q = Query::internal();
    let Some(svc) = inf.services.get(ns, name) else {
        // The Service is gone, and so are its endpoints. Deleted through the store rather than after looking in
        // the cache, which may not show one created a moment ago.
        return match api.delete(&rp, json!({}), &q).await {
            Ok(_) => {
                tracing::debug!("deleted endpoints of deleted service");
                Ok(None)
            }
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e.message),
        };
    };
    let Some(selector) = managed_selector(&svc) else {
        return Ok(None);
    };
    let pods = inf.pods.list(Some(ns));
    let (subsets, truncated) = desired_subsets(&svc, &selector, &pods);
    let labels = endpoints_labels(&svc);
    let current = inf.endpoints.get(ns, name);
    if let Some(cur) = &current
        && endpoints_up_to_date(cur, &subsets, &labels, truncated)
    {
        return Ok(None);
    }
    let result = match current {
        None => {
            let mut body = json!({"apiVersion": "v1", "kind": "Endpoints",
                                  "metadata": {"name": name, "namespace": ns}});
            set_endpoints_contents(&mut body, &subsets, &labels, truncated);
            api.create(&path(endpoints_res(), ns, None), body, &q).await.map(|_| ())
        }
        Some(_) => {
            api.modify_with(&rp, name, |cur| {
                let mut o = cur.clone();
                set_endpoints_contents(&mut o, &subsets, &labels, truncated);
                Ok(o)
            })
            .await
        }
    };
    match result {
        Ok(()) => {
            tracing::debug!(subsets = subsets.len(), truncated, "wrote endpoints");
            Ok(None)
        }
        Err(e) => match classify(&e) {
            WriteFailure::Retry => Ok(Some(CACHE_LAG_RETRY)),
            WriteFailure::Stop => Ok(None),
            WriteFailure::Fail(msg) => {
                let message = format!("Failed to update endpoint {key}: {msg}");
                event(
                    api,
                    &svc,
                    "Warning",
                    "FailedToUpdateEndpoint",
                    &message,
                    ENDPOINTS_COMPONENT,
                )
                .await;
                Err(msg)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ports: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "ports": ports}})
    }

    fn http_svc() -> Value {
        svc(
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
                   {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}]),
        )
    }

    fn pod(name: &str, ip: &str, ready: bool, named_port: bool) -> Arc<Value> {
        let ports = if named_port {
            json!([{"name": "web", "containerPort": 8080, "protocol": "TCP"}])
        } else {
            json!([])
        };
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
    }

    fn pods(n: usize) -> Vec<Arc<Value>> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.1.{}.{}", i / 200, i % 200 + 1),
                    true,
                    true,
                )
            })
            .collect()
    }

    fn sets(svc: &Value, pods: &[Arc<Value>]) -> BTreeMap<String, PortSet> {
        let sel = managed_selector(svc).unwrap();
        desired_port_sets(svc, &sel, pods, "IPv4", &|_: &str| Some("zone-a".to_string()))
    }

    /// What the API would store for a created slice: a name, a uid and a revision.
    fn stored(mut slice: Value, name: &str) -> Arc<Value> {
        slice["metadata"]["name"] = json!(name);
        slice["metadata"]["uid"] = json!(format!("uid-{name}"));
        slice["metadata"]["resourceVersion"] = json!("7");
        Arc::new(slice)
    }

    #[test]
    fn endpoints_carry_conditions_ports_and_references() {
        let s = http_svc();
        let mut ps = pods(2);
        ps.push(pod("unready", "10.2.0.1", false, true));
        let sets = sets(&s, &ps);
        assert_eq!(sets.len(), 1);
        let set = sets.values().next().unwrap();
        assert_eq!(
            set.ports,
            vec![
                json!({"name": "http", "port": 8080, "protocol": "TCP"}),
                json!({"name": "metrics", "port": 9090, "protocol": "TCP"})
            ]
        );
        assert_eq!(
            set.endpoints[0],
            json!({"addresses": ["10.1.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                   "targetRef": {"kind": "Pod", "namespace": "default", "name": "p000", "uid": "uid-p000"},
                   "nodeName": "node-a", "zone": "zone-a"})
        );
        assert_eq!(
            set.endpoints[2]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
    }

    #[test]
    fn terminating_pods_serve_but_are_not_ready_and_leave_endpoints() {
        let s = http_svc();
        let mut p = (*pod("p", "10.1.0.1", true, true)).clone();
        p["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        let ps = vec![Arc::new(p)];
        let set = sets(&s, &ps).into_values().next().unwrap();
        assert_eq!(
            set.endpoints[0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        let (subsets, _) = desired_subsets(&s, &managed_selector(&s).unwrap(), &ps);
        assert!(subsets.is_empty());
    }

    #[test]
    fn pods_without_the_named_port_form_their_own_port_set() {
        let s = http_svc();
        let ps = vec![pod("a", "10.1.0.1", true, true), pod("b", "10.1.0.2", true, false)];
        let sets = sets(&s, &ps);
        assert_eq!(sets.len(), 2);
        let lone = sets.values().find(|s| s.ports.len() == 1).unwrap();
        assert_eq!(lone.ports[0]["name"], "metrics");
        assert_eq!(lone.endpoints[0]["targetRef"]["name"], "b");
    }

    #[test]
    fn unselected_terminal_and_addressless_pods_are_left_out() {
        let s = http_svc();
        let mut other = (*pod("other", "10.1.0.9", true, true)).clone();
        other["metadata"]["labels"]["app"] = json!("db");
        let mut done = (*pod("done", "10.1.0.8", true, true)).clone();
        done["status"]["phase"] = json!("Succeeded");
        let mut pending = (*pod("pending", "", true, true)).clone();
        pending["status"]["podIPs"] = json!([]);
        let ps = vec![Arc::new(other), Arc::new(done), Arc::new(pending)];
        assert!(sets(&s, &ps).is_empty());
    }

    #[test]
    fn a_service_without_selector_is_not_managed() {
        let mut s = http_svc();
        s["spec"]["selector"] = json!({});
        assert!(managed_selector(&s).is_none());
        s["spec"].as_object_mut().unwrap().remove("selector");
        assert!(managed_selector(&s).is_none());
    }

    #[test]
    fn many_endpoints_split_into_slices_of_at_most_100() {
        let s = http_svc();
        let plan = plan_slices(&s, "IPv4", &sets(&s, &pods(250)), &[]);
        let sizes: Vec<usize> = plan.create.iter().map(|c| arr(c, "/endpoints").len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let c = &plan.create[0];
        assert_eq!(c["metadata"]["generateName"], "web-");
        assert_eq!(c["addressType"], "IPv4");
        assert_eq!(
            c["metadata"]["labels"],
            json!({"app": "web", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: MANAGED_BY})
        );
        assert_eq!(c["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(c["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
    }

    #[test]
    fn an_unchanged_state_plans_no_writes() {
        let s = http_svc();
        let desired = sets(&s, &pods(150));
        let plan = plan_slices(&s, "IPv4", &desired, &[]);
        let existing: Vec<_> = plan
            .create
            .into_iter()
            .enumerate()
            .map(|(i, c)| stored(c, &format!("web-{i}")))
            .collect();
        assert!(plan_slices(&s, "IPv4", &desired, &existing).is_empty());
    }

    #[test]
    fn changes_update_slices_in_place_and_empty_slices_go() {
        let s = http_svc();
        let all = pods(150);
        let plan = plan_slices(&s, "IPv4", &sets(&s, &all), &[]);
        let existing: Vec<_> = plan
            .create
            .into_iter()
            .enumerate()
            .map(|(i, c)| stored(c, &format!("web-{i}")))
            .collect();
        // Readiness of one pod flips: one update of the slice holding it, nothing created.
        let mut flipped = all.clone();
        flipped[3] = pod("p003", "10.1.0.4", false, true);
        let plan = plan_slices(&s, "IPv4", &sets(&s, &flipped), &existing);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0]["metadata"]["name"], "web-0");
        assert_eq!(plan.update[0]["metadata"]["resourceVersion"], "7");
        assert_eq!(plan.update[0]["endpoints"][3]["conditions"]["ready"], false);
        // The pods of the second slice go: it is deleted, the first is untouched.
        let plan = plan_slices(&s, "IPv4", &sets(&s, &all[..100]), &existing);
        assert!(plan.create.is_empty() && plan.update.is_empty());
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(meta_str(&plan.delete[0], "name"), Some("web-1"));
        // New pods fill the slice that has room instead of a new one.
        let plan = plan_slices(&s, "IPv4", &sets(&s, &pods(170)), &existing);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(arr(&plan.update[0], "/endpoints").len(), 70);
    }

    #[test]
    fn no_endpoints_means_one_placeholder_which_is_then_reused() {
        let s = http_svc();
        let plan = plan_slices(&s, "IPv4", &BTreeMap::new(), &[]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0]["endpoints"], Value::Null);
        assert_eq!(plan.create[0]["ports"], Value::Null);
        let placeholder = stored(plan.create[0].clone(), "web-abcde");
        assert!(plan_slices(&s, "IPv4", &BTreeMap::new(), std::slice::from_ref(&placeholder)).is_empty());
        let plan = plan_slices(&s, "IPv4", &sets(&s, &pods(3)), &[placeholder]);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update[0]["metadata"]["name"], "web-abcde");
        assert_eq!(arr(&plan.update[0], "/endpoints").len(), 3);
    }

    #[test]
    fn headless_services_are_labelled_and_may_have_no_ports() {
        let mut s = svc(json!([]));
        s["spec"]["clusterIP"] = json!("None");
        let ps = pods(2);
        let plan = plan_slices(&s, "IPv4", &sets(&s, &ps), &[]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0]["metadata"]["labels"][LABEL_HEADLESS], "");
        assert_eq!(plan.create[0]["ports"], Value::Null);
        assert_eq!(arr(&plan.create[0], "/endpoints").len(), 2);
        let (subsets, _) = desired_subsets(&s, &managed_selector(&s).unwrap(), &ps);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].get("ports").is_none());
        assert_eq!(arr(&subsets[0], "/addresses").len(), 2);
        assert_eq!(endpoints_labels(&s), json!({"app": "web", LABEL_HEADLESS: ""}));
    }

    #[test]
    fn subsets_group_addresses_by_port_set_and_readiness() {
        let s = http_svc();
        let sel = managed_selector(&s).unwrap();
        // Pods offering the same ports share one subset carrying both ports.
        let ps = vec![pod("a", "10.1.0.2", true, true), pod("b", "10.1.0.1", false, true)];
        let (subsets, truncated) = desired_subsets(&s, &sel, &ps);
        assert!(!truncated);
        assert_eq!(
            subsets,
            vec![json!({
                "addresses": [{"ip": "10.1.0.2", "nodeName": "node-a",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
                "notReadyAddresses": [{"ip": "10.1.0.1", "nodeName": "node-a",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                          {"name": "metrics", "port": 9090, "protocol": "TCP"}],
            })]
        );
        // A pod without the named port splits them: one subset per distinct address set.
        let ps = vec![ps[0].clone(), ps[1].clone(), pod("c", "10.1.0.3", true, false)];
        let (subsets, _) = desired_subsets(&s, &sel, &ps);
        assert_eq!(subsets.len(), 2);
        let ips = |ss: &Value, f: &str| {
            arr(ss, f)
                .iter()
                .map(|a| str_at(a, "/ip").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            subsets[0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(ips(&subsets[0], "/addresses"), ["10.1.0.2"]);
        assert_eq!(
            subsets[1]["ports"],
            json!([{"name": "metrics", "port": 9090, "protocol": "TCP"}])
        );
        assert_eq!(ips(&subsets[1], "/addresses"), ["10.1.0.2", "10.1.0.3"]);
        assert_eq!(ips(&subsets[1], "/notReadyAddresses"), ["10.1.0.1"]);
    }

    #[test]
    fn endpoints_are_truncated_at_1000_addresses() {
        let s = svc(json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]));
        let (subsets, truncated) = desired_subsets(&s, &managed_selector(&s).unwrap(), &pods(1100));
        assert!(truncated);
        assert_eq!(arr(&subsets[0], "/addresses").len(), 1000);
        let mut o = json!({"metadata": {"name": "web"}});
        set_endpoints_contents(&mut o, &subsets, &endpoints_labels(&s), truncated);
        assert_eq!(o["metadata"]["annotations"][ANNOTATION_OVER_CAPACITY], "truncated");
        assert!(endpoints_up_to_date(&o, &subsets, &endpoints_labels(&s), true));
        set_endpoints_contents(&mut o, &[], &endpoints_labels(&s), false);
        assert!(o.get("subsets").is_none() && o["metadata"].get("annotations").is_none());
    }

    #[test]
    fn sidecar_ports_resolve_named_target_ports() {
        let p = json!({"spec": {"containers": [{"name": "c"}],
            "initContainers": [{"name": "s", "restartPolicy": "Always", "ports": [{"name": "web", "containerPort": 81}]},
                               {"name": "i", "ports": [{"name": "init", "containerPort": 82}]}]}});
        assert_eq!(find_port(&p, &json!({"port": 80, "targetPort": "web"})), Some(81));
        assert_eq!(find_port(&p, &json!({"port": 80, "targetPort": "init"})), None);
        assert_eq!(
            find_port(&p, &json!({"port": 80, "targetPort": "web", "protocol": "UDP"})),
            None
        );
        assert_eq!(find_port(&p, &json!({"port": 80})), Some(80));
    }
}
