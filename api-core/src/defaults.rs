//! Server-side defaulting: what the Kubernetes v1.32 API server fills into an object between decoding a request and
//! storing it, so that `kubectl get -o yaml` on a Keel object prints what it would print against Kubernetes.
//!
//! Four sources of "defaults" are folded together here, because a client cannot tell them apart:
//!
//! 1. the `SetDefaults_*` functions of each group's `v1` package (`restartPolicy: Always`, `replicas: 1`, ...);
//! 2. the pure parts of each registry strategy's `PrepareForCreate` (a new Pod is `Pending` with a QoS class, a new
//!    Namespace carries the `kubernetes` finalizer, a Service's `clusterIPs` mirrors `clusterIP`, ...);
//! 3. the admission plugins every cluster runs that only add fields (ServiceAccount's `serviceAccountName: default`,
//!    Priority's `priority: 0`, DefaultTolerationSeconds' two `NoExecute` tolerations), for Pods only;
//! 4. what Go's JSON encoder prints for zero-valued struct fields that are not `omitempty`-able
//!    (`resources: {}`, `status: {}`, a pod template's `creationTimestamp: null`, `serviceName: ""`), and the
//!    canonical form `resource.Quantity` re-serialises to (`cpu: 0.5` comes back as `cpu: 500m`).
//!
//! Every rule only fills what is absent (or `null`), so [`apply`] is idempotent and safe to run on update as well as
//! create. The create-only rules therefore rely on the caller having reset what Kubernetes resets before them: a
//! kind's `status` on create when it has a status subresource, and the carried-over fields of [`prepare_for_update`]
//! on update. The Job's generated selector needs the object's UID, so it lives in [`job_selector`].

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::registry::ResourceDef;

/// `SetDefaults_PodSpec`'s `terminationGracePeriodSeconds`.
const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// File mode 0644, the default `defaultMode` of secret, configMap, downwardAPI and projected volumes.
const DEFAULT_VOLUME_MODE: i64 = 0o644;
/// `tolerationSeconds` of the tolerations the DefaultTolerationSeconds admission plugin adds.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;
/// `sessionAffinityConfig.clientIP.timeoutSeconds` default (3 hours).
const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: i64 = 10800;
/// The `kubernetes.io/metadata.name` label every Namespace carries.
const LABEL_METADATA_NAME: &str = "kubernetes.io/metadata.name";
/// Job labels and selector keys written by the Job registry's `generateSelector`.
const JOB_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// Apply the defaults the Kubernetes API server applies on create and update (`SetDefaults_*` plus the pure parts of
/// `PrepareForCreate` and of the mutating admission plugins that only add fields), in place.
///
/// Objects of kinds this module does not know, and objects that are not JSON objects, are left alone.
pub fn apply(res: &ResourceDef, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match res.kind {
        "Pod" => pod(obj),
        "Deployment" => deployment(obj),
        "ReplicaSet" => replica_set(obj),
        "StatefulSet" => stateful_set(obj),
        "DaemonSet" => daemon_set(obj),
        "Job" => job(obj),
        "Service" => service(obj),
        "Namespace" => namespace(obj),
        "Secret" => secret(obj),
        "Node" => node(obj),
        "Endpoints" => endpoints(obj),
        "EndpointSlice" => endpoint_slice(obj),
        "Event" => event(obj),
        "Lease" => {
            ensure_obj(obj, "spec");
        }
        "ControllerRevision" => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "revision", json!(0));
            }
        }
        _ => {}
    }
}

/// Carry over, from the stored object into an update, the fields Kubernetes' `PrepareForUpdate` and the Service
/// REST storage keep from the old object rather than take from the request. Call before [`apply`] on update.
///
/// * Namespace: `spec.finalizers` only changes through the `finalize` subresource.
/// * Service: an update that leaves `clusterIP`/`clusterIPs`/`nodePort`/`healthCheckNodePort` empty keeps the
///   allocated values (`patchAllocatedValues`), and `clusterIPs` is re-derived from `clusterIP` the way
///   `normalizeClusterIPs` does, so `validation::validate_update` sees what Kubernetes' validation sees.
///   A type change that no longer needs NodePorts drops the ones only carried over (`dropTypeDependentFields`).
/// * Job: a Job without `manualSelector: true` keeps its generated selector if the update dropped it.
pub fn prepare_for_update(res: &ResourceDef, old: &Value, new: &mut Value) {
    match res.kind {
        "Namespace" => {
            let old_finalizers = old.pointer("/spec/finalizers").cloned();
            if let Some(spec) = ensure_obj(new, "spec") {
                match old_finalizers {
                    Some(f) => {
                        spec.insert("finalizers".into(), f);
                    }
                    None => {
                        spec.remove("finalizers");
                    }
                }
            }
        }
        "Service" => {
            service_patch_allocated(old, new);
            drop_type_dependent_fields(old, new);
        }
        "Job" => {
            let manual = new.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
            let old_selector = old.pointer("/spec/selector").cloned();
            if let (false, Some(sel), Some(spec)) = (manual, old_selector, ensure_obj(new, "spec"))
                && is_unset(spec, "selector")
            {
                spec.insert("selector".into(), sel);
            }
        }
        _ => {}
    }
}

/// The DaemonSet strategy's template generation, which apps/v1 carries in the
/// `deprecated.daemonset.template.generation` annotation: at least 1 on create (`old` is None), and on update the
/// stored value, plus one when the pod template changed. Call after [`apply`], so templates compare defaulted.
pub fn daemon_set_template_generation(old: Option<&Value>, new: &mut Value) {
    const ANNOTATION: &str = "deprecated.daemonset.template.generation";
    let generation_of = |o: &Value| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let generation = match old {
        None => generation_of(new).max(1),
        Some(old) => {
            let stored = generation_of(old).max(1);
            if old.pointer("/spec/template") == new.pointer("/spec/template") {
                stored
            } else {
                stored + 1
            }
        }
    };
    if let Some(meta) = ensure_obj(new, "metadata")
        && let Some(annotations) = ensure_obj_in(meta, "annotations")
    {
        annotations.insert(ANNOTATION.into(), json!(generation.to_string()));
    }
}

/// The Job registry's `generateSelector`, run on create after the object got its UID: unless
/// `spec.manualSelector` is true, label the pod template with the job's name and UID (both the
/// `batch.kubernetes.io/` and the legacy unprefixed keys) and select on `batch.kubernetes.io/controller-uid`.
///
/// Also re-applies `SetDefaults_Job`'s "a Job without labels takes its template's labels", which Kubernetes sees a
/// second time when the stored object is decoded, so the Job itself carries the generated labels too.
pub fn job_selector(obj: &mut Value, uid: &str) {
    let name = str_at(obj, "/metadata/name").unwrap_or_default().to_string();
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let template_labels = {
        let Some(template) = ensure_obj_in(spec, "template") else {
            return;
        };
        let Some(meta) = ensure_obj_in(template, "metadata") else {
            return;
        };
        let Some(labels) = ensure_obj_in(meta, "labels") else {
            return;
        };
        for (key, value) in [
            (LEGACY_JOB_NAME, name.as_str()),
            (JOB_NAME, name.as_str()),
            (LEGACY_JOB_CONTROLLER_UID, uid),
            (JOB_CONTROLLER_UID, uid),
        ] {
            if !labels.contains_key(key) {
                labels.insert(key.into(), json!(value));
            }
        }
        labels.clone()
    };
    if let Some(selector) = ensure_obj_in(spec, "selector")
        && let Some(match_labels) = ensure_obj_in(selector, "matchLabels")
        && !match_labels.contains_key(JOB_CONTROLLER_UID)
    {
        match_labels.insert(JOB_CONTROLLER_UID.into(), json!(uid));
    }
    if let Some(meta) = ensure_obj(obj, "metadata") {
        let empty = meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty);
        if empty {
            meta.insert("labels".into(), Value::Object(template_labels));
        }
    }
}

/// The QoS class Kubernetes computes for a pod (`qos.GetPodQOS`): `Guaranteed` when every container and init
/// container has non-zero CPU and memory limits and the summed requests equal the summed limits, `BestEffort` when
/// no container requests or limits any CPU or memory, `Burstable` otherwise.
pub fn pod_qos_class(pod_spec: &Value) -> &'static str {
    let mut requests: Vec<(&str, Dec)> = Vec::new();
    let mut limits: Vec<(&str, Dec)> = Vec::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|k| pod_spec.get(k).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let resources = c.get("resources");
        if let Some(reqs) = resources.and_then(|r| r.get("requests")).and_then(Value::as_object) {
            for (name, q) in reqs {
                add_positive(&mut requests, name, q);
            }
        }
        let mut found = (false, false);
        if let Some(lims) = resources.and_then(|r| r.get("limits")).and_then(Value::as_object) {
            for (name, q) in lims {
                if add_positive(&mut limits, name, q) {
                    match name.as_str() {
                        "cpu" => found.0 = true,
                        _ => found.1 = true,
                    }
                }
            }
        }
        if found != (true, true) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            let lim = limits.iter().find(|(n, _)| n == name).map(|(_, q)| q);
            if lim.is_none_or(|l| l.cmp(req) != Ordering::Equal) {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Add `q` to the running total for `name` when `name` is a QoS compute resource and `q` is positive; says whether
/// it was added.
fn add_positive<'a>(totals: &mut Vec<(&'a str, Dec)>, name: &'a str, q: &Value) -> bool {
    if name != "cpu" && name != "memory" {
        return false;
    }
    let Some(q) = quantity_value(q) else {
        return false;
    };
    if q.m <= 0 {
        return false;
    }
    match totals.iter_mut().find(|(n, _)| *n == name) {
        Some((_, total)) => *total = total.add(&q),
        None => totals.push((name, q)),
    }
    true
}

// ---------------------------------------------------------------------------------------------------------------
// Pods and pod templates
// ---------------------------------------------------------------------------------------------------------------

fn pod(obj: &mut Value) {
    let gated;
    {
        let Some(spec) = ensure_obj(obj, "spec") else {
            return;
        };
        pod_spec(spec);
        // SetDefaults_Pod: requests default to limits, on Pods only (not on templates).
        for list in ["containers", "initContainers"] {
            for c in objects_mut(spec, list) {
                requests_from_limits(c);
            }
        }
        set_default(spec, "enableServiceLinks", json!(true));
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            for list in ["containers", "initContainers"] {
                for c in objects_mut(spec, list) {
                    for p in objects_mut(c, "ports") {
                        if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0
                            && let Some(cp) = p.get("containerPort").cloned()
                        {
                            p.insert("hostPort".into(), cp);
                        }
                    }
                }
            }
        }
        // ServiceAccount admission.
        service_account_alias(spec, Some("default"));
        // Priority admission: the two built-in classes, else no class and no global default.
        let class = spec.get("priorityClassName").and_then(Value::as_str).unwrap_or("");
        let priority = match class {
            "" => Some(0),
            "system-cluster-critical" => Some(2_000_000_000),
            "system-node-critical" => Some(2_000_001_000),
            _ => None,
        };
        if let Some(p) = priority {
            set_default(spec, "priority", json!(p));
            set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        default_tolerations(spec);
        gated = spec
            .get("schedulingGates")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
    }
    let qos = obj.get("spec").map(pod_qos_class).unwrap_or("BestEffort");
    let Some(status) = ensure_obj(obj, "status") else {
        return;
    };
    set_default(status, "phase", json!("Pending"));
    set_default(status, "qosClass", json!(qos));
    if gated {
        let conditions = status.entry("conditions").or_insert_with(|| json!([]));
        if let Some(list) = conditions.as_array_mut()
            && !list
                .iter()
                .any(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
        {
            list.push(json!({
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
                "lastProbeTime": null,
                "lastTransitionTime": null,
            }));
        }
    }
    // v1 conversion keeps the singular and plural IP fields in step.
    for (single, plural) in [("podIP", "podIPs"), ("hostIP", "hostIPs")] {
        sync_ip_fields(status, single, plural);
    }
}

/// `podIP` ↔ `podIPs[0].ip`, as the v1 conversion of PodStatus does.
fn sync_ip_fields(status: &mut Map<String, Value>, single: &str, plural: &str) {
    let first = status
        .get(plural)
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|e| e.get("ip"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let one = status
        .get(single)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    match (one, first) {
        (Some(ip), None) => {
            status.insert(plural.into(), json!([{ "ip": ip }]));
        }
        (None, Some(ip)) => {
            status.insert(single.into(), json!(ip));
        }
        _ => {}
    }
}

/// DefaultTolerationSeconds admission: tolerate `not-ready` and `unreachable` `NoExecute` taints for 300s unless
/// the pod already tolerates them (a toleration with that key, or no key, and effect `NoExecute` or none).
fn default_tolerations(spec: &mut Map<String, Value>) {
    let tolerates = |tols: &[Value], key: &str| {
        tols.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    let Some(tols) = list.as_array_mut() else {
        return;
    };
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        if !tolerates(tols, key) {
            tols.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

/// `spec.serviceAccount` is the deprecated alias of `spec.serviceAccountName`: the name wins when both are set and
/// the alias is always printed equal to it. `default` is what the ServiceAccount admission plugin assigns.
fn service_account_alias(spec: &mut Map<String, Value>, default: Option<&str>) {
    let name = non_empty_str(spec, "serviceAccountName")
        .or_else(|| non_empty_str(spec, "serviceAccount"))
        .or(default.map(str::to_string));
    match name {
        Some(n) => {
            spec.insert("serviceAccountName".into(), json!(n));
            spec.insert("serviceAccount".into(), json!(n));
        }
        None => {
            spec.remove("serviceAccountName");
            spec.remove("serviceAccount");
        }
    }
}

/// `SetDefaults_PodSpec` and everything below a PodSpec (containers, probes, volumes), shared by Pods and pod
/// templates.
fn pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(
        spec,
        "terminationGracePeriodSeconds",
        json!(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS),
    );
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in objects_mut(spec, list) {
            container(c);
        }
    }
    for v in objects_mut(spec, "volumes") {
        volume(v);
    }
    if let Some(overhead) = spec.get_mut("overhead").and_then(Value::as_object_mut) {
        resource_list(overhead);
    }
    service_account_alias(spec, None);
}

/// Pod templates (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job): the PodSpec defaults without the Pod-only
/// ones, plus the `creationTimestamp: null` Go prints for the template's empty ObjectMeta.
fn pod_template(spec: &mut Map<String, Value>) {
    let Some(template) = ensure_obj_in(spec, "template") else {
        return;
    };
    if let Some(meta) = ensure_obj_in(template, "metadata") {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
    if let Some(pod_spec_map) = ensure_obj_in(template, "spec") {
        pod_spec(pod_spec_map);
    }
}

fn container(c: &mut Map<String, Value>) {
    if non_empty_str(c, "imagePullPolicy").is_none() {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    set_default_non_empty(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default_non_empty(c, "terminationMessagePolicy", json!("File"));
    if let Some(resources) = ensure_obj_in(c, "resources") {
        for key in ["limits", "requests"] {
            if let Some(list) = resources.get_mut(key).and_then(Value::as_object_mut) {
                resource_list(list);
            }
        }
    }
    for p in objects_mut(c, "ports") {
        set_default_non_empty(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            set_default_non_zero(p, "timeoutSeconds", 1);
            set_default_non_zero(p, "periodSeconds", 10);
            set_default_non_zero(p, "successThreshold", 1);
            set_default_non_zero(p, "failureThreshold", 3);
            handler(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lifecycle.get_mut(hook).and_then(Value::as_object_mut) {
                handler(h);
            }
        }
    }
    for env in objects_mut(c, "env") {
        if let Some(from) = env.get_mut("valueFrom").and_then(Value::as_object_mut) {
            field_selectors(from);
        }
    }
}

/// `SetDefaults_HTTPGetAction` and the `grpc.service` declarative default.
fn handler(h: &mut Map<String, Value>) {
    if let Some(get) = h.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default_non_empty(get, "path", json!("/"));
        set_default_non_empty(get, "scheme", json!("HTTP"));
    }
    if let Some(grpc) = h.get_mut("grpc").and_then(Value::as_object_mut) {
        set_default(grpc, "service", json!(""));
    }
}

/// `fieldRef.apiVersion: v1` and the `resourceFieldRef.divisor: "0"` a zero Quantity serialises to.
fn field_selectors(m: &mut Map<String, Value>) {
    if let Some(f) = m.get_mut("fieldRef").and_then(Value::as_object_mut) {
        set_default_non_empty(f, "apiVersion", json!("v1"));
    }
    if let Some(r) = m.get_mut("resourceFieldRef").and_then(Value::as_object_mut) {
        set_default(r, "divisor", json!("0"));
        canonicalize_at(r, "divisor", false);
    }
}

fn volume(v: &mut Map<String, Value>) {
    // SetDefaults_Volume: no source at all means an emptyDir.
    if !v.iter().any(|(k, val)| k != "name" && !val.is_null()) {
        v.insert("emptyDir".into(), json!({}));
    }
    for (source, mode_key) in [
        ("secret", "defaultMode"),
        ("configMap", "defaultMode"),
        ("downwardAPI", "defaultMode"),
        ("projected", "defaultMode"),
    ] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            set_default(s, mode_key, json!(DEFAULT_VOLUME_MODE));
        }
    }
    if let Some(d) = v.get_mut("downwardAPI").and_then(Value::as_object_mut) {
        for item in objects_mut(d, "items") {
            field_selectors(item);
        }
    }
    if let Some(p) = v.get_mut("projected").and_then(Value::as_object_mut) {
        for source in objects_mut(p, "sources") {
            if let Some(t) = source.get_mut("serviceAccountToken").and_then(Value::as_object_mut) {
                set_default(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = source.get_mut("downwardAPI").and_then(Value::as_object_mut) {
                for item in objects_mut(d, "items") {
                    field_selectors(item);
                }
            }
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(h, "type", json!(""));
    }
    if let Some(e) = v.get_mut("emptyDir").and_then(Value::as_object_mut) {
        canonicalize_at(e, "sizeLimit", false);
    }
    if let Some(i) = v.get_mut("iscsi").and_then(Value::as_object_mut) {
        set_default_non_empty(i, "iscsiInterface", json!("default"));
    }
    if let Some(r) = v.get_mut("rbd").and_then(Value::as_object_mut) {
        set_default_non_empty(r, "pool", json!("rbd"));
        set_default_non_empty(r, "user", json!("admin"));
        set_default_non_empty(r, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(t) = v.get_mut("ephemeral").and_then(Value::as_object_mut)
        && let Some(template) = t.get_mut("volumeClaimTemplate").and_then(Value::as_object_mut)
    {
        if let Some(meta) = ensure_obj_in(template, "metadata") {
            meta.entry("creationTimestamp").or_insert(Value::Null);
        }
        if let Some(spec) = ensure_obj_in(template, "spec") {
            pvc_spec(spec);
        }
    }
}

fn pvc_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "volumeMode", json!("Filesystem"));
    if let Some(resources) = spec.get_mut("resources").and_then(Value::as_object_mut) {
        for key in ["limits", "requests"] {
            if let Some(list) = resources.get_mut(key).and_then(Value::as_object_mut) {
                resource_list(list);
            }
        }
    }
}

/// SetDefaults_Pod: for each resource in `limits` that `requests` lacks, request the limit.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = ensure_obj_in(resources, "requests") else {
        return;
    };
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// The tag Kubernetes' `parsers.ParseImageName` finds in an image reference: the explicit tag, `latest` when the
/// reference has neither tag nor digest, and none when it only has a digest or does not parse.
fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if name.is_empty() {
        return None;
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    // Docker references require a lowercase repository path; anything else does not parse.
    let path_end = name.len() - last.len() + repo_last.len();
    let path = &name[..path_end];
    let first = path.split('/').next().unwrap_or("");
    let has_registry = path.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if has_registry { &path[first.len()..] } else { path };
    if repo.chars().any(|ch| ch.is_ascii_uppercase()) || repo_last.is_empty() {
        return None;
    }
    match (tag, digest) {
        (Some(t), _) if !t.is_empty() => Some(t.to_string()),
        (None, None) => Some("latest".to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------------------------

fn deployment(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        set_default(spec, "replicas", json!(1));
        if let Some(strategy) = ensure_obj_in(spec, "strategy") {
            set_default_non_empty(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = ensure_obj_in(strategy, "rollingUpdate")
            {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
        pod_template(spec);
    }
    ensure_obj(obj, "status");
}

fn replica_set(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        set_default(spec, "replicas", json!(1));
        pod_template(spec);
    }
    if let Some(status) = ensure_obj(obj, "status") {
        set_default(status, "replicas", json!(0));
    }
}

fn stateful_set(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        set_default_non_empty(spec, "podManagementPolicy", json!("OrderedReady"));
        if let Some(strategy) = ensure_obj_in(spec, "updateStrategy") {
            if non_empty_str(strategy, "type").is_none() {
                strategy.insert("type".into(), json!("RollingUpdate"));
                set_default(strategy, "rollingUpdate", json!({}));
            }
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut)
            {
                set_default(ru, "partition", json!(0));
            }
        }
        if let Some(policy) = ensure_obj_in(spec, "persistentVolumeClaimRetentionPolicy") {
            set_default_non_empty(policy, "whenDeleted", json!("Retain"));
            set_default_non_empty(policy, "whenScaled", json!("Retain"));
        }
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        // `serviceName` has no omitempty in v1.32, so an absent one prints as "".
        set_default(spec, "serviceName", json!(""));
        pod_template(spec);
        for pvc in objects_mut(spec, "volumeClaimTemplates") {
            set_default(pvc, "apiVersion", json!("v1"));
            set_default(pvc, "kind", json!("PersistentVolumeClaim"));
            if let Some(meta) = ensure_obj_in(pvc, "metadata") {
                meta.entry("creationTimestamp").or_insert(Value::Null);
            }
            if let Some(s) = ensure_obj_in(pvc, "spec") {
                pvc_spec(s);
            }
            if let Some(status) = ensure_obj_in(pvc, "status") {
                set_default_non_empty(status, "phase", json!("Pending"));
            }
        }
    }
    if let Some(status) = ensure_obj(obj, "status") {
        set_default(status, "replicas", json!(0));
        set_default(status, "availableReplicas", json!(0));
    }
}

fn daemon_set(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        if let Some(strategy) = ensure_obj_in(spec, "updateStrategy") {
            set_default_non_empty(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = ensure_obj_in(strategy, "rollingUpdate")
            {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        pod_template(spec);
    }
    if let Some(status) = ensure_obj(obj, "status") {
        for key in [
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ] {
            set_default(status, key, json!(0));
        }
    }
}

fn job(obj: &mut Value) {
    let mut template_labels = None;
    if let Some(spec) = ensure_obj(obj, "spec") {
        if is_unset(spec, "completions") && is_unset(spec, "parallelism") {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        if is_unset(spec, "backoffLimit") {
            let limit = if is_unset(spec, "backoffLimitPerIndex") {
                6
            } else {
                i64::from(i32::MAX)
            };
            spec.insert("backoffLimit".into(), json!(limit));
        }
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        let has_failure_policy = !is_unset(spec, "podFailurePolicy");
        if let Some(policy) = spec.get_mut("podFailurePolicy").and_then(Value::as_object_mut) {
            for rule in objects_mut(policy, "rules") {
                for pattern in objects_mut(rule, "onPodConditions") {
                    set_default_non_empty(pattern, "status", json!("True"));
                }
            }
        }
        let replacement = if has_failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        set_default(spec, "podReplacementPolicy", json!(replacement));
        pod_template(spec);
        template_labels = spec
            .get("template")
            .and_then(|t| t.get("metadata"))
            .and_then(|m| m.get("labels"))
            .filter(|l| l.is_object())
            .cloned();
    }
    if let (Some(labels), Some(meta)) = (template_labels, ensure_obj(obj, "metadata")) {
        let empty = meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty);
        if empty {
            meta.insert("labels".into(), labels);
        }
    }
    ensure_obj(obj, "status");
}

// ---------------------------------------------------------------------------------------------------------------
// Networking
// ---------------------------------------------------------------------------------------------------------------

fn service(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        set_default_non_empty(spec, "sessionAffinity", json!("None"));
        match spec.get("sessionAffinity").and_then(Value::as_str) {
            Some("None") => {
                spec.remove("sessionAffinityConfig");
            }
            Some("ClientIP") => {
                let has_timeout = spec
                    .get("sessionAffinityConfig")
                    .and_then(|c| c.get("clientIP"))
                    .and_then(|c| c.get("timeoutSeconds"))
                    .is_some_and(|t| !t.is_null());
                if !has_timeout {
                    spec.insert(
                        "sessionAffinityConfig".into(),
                        json!({ "clientIP": { "timeoutSeconds": DEFAULT_CLIENT_IP_AFFINITY_SECONDS } }),
                    );
                }
            }
            _ => {}
        }
        set_default_non_empty(spec, "type", json!("ClusterIP"));
        for p in objects_mut(spec, "ports") {
            set_default_non_empty(p, "protocol", json!("TCP"));
            let unset = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            };
            if unset && let Some(port) = p.get("port").cloned() {
                p.insert("targetPort".into(), port);
            }
        }
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let has_external_ips = spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let externally_accessible = ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
        if externally_accessible {
            set_default_non_empty(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        if ty != "ExternalName" {
            // normalizeClusterIPs on create: an old client sets only the singular field.
            if let Some(ip) = non_empty_str(spec, "clusterIP")
                && spec
                    .get("clusterIPs")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
            {
                spec.insert("clusterIPs".into(), json!([ip]));
            }
            // The Service REST storage's IP family initialisation for a single-stack IPv4 cluster.
            let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
            let has_selector = spec
                .get("selector")
                .and_then(Value::as_object)
                .is_some_and(|s| !s.is_empty());
            let policy = if headless && !has_selector {
                "RequireDualStack"
            } else {
                "SingleStack"
            };
            set_default(spec, "ipFamilyPolicy", json!(policy));
            if spec
                .get("ipFamilies")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                let family = match non_empty_str(spec, "clusterIP") {
                    Some(ip) if ip.contains(':') => "IPv6",
                    _ => "IPv4",
                };
                spec.insert("ipFamilies".into(), json!([family]));
            }
        }
    }
    let is_lb = obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    if let Some(status) = ensure_obj(obj, "status")
        && let Some(lb) = ensure_obj_in(status, "loadBalancer")
        && is_lb
    {
        for ingress in objects_mut(lb, "ingress") {
            if non_empty_str(ingress, "ip").is_some() {
                set_default(ingress, "ipMode", json!("VIP"));
            }
        }
    }
}

/// Whether a Service's type allocates NodePorts (NodePort and LoadBalancer).
pub fn service_needs_node_ports(svc: &Value) -> bool {
    matches!(
        svc.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    )
}

/// When an update changes a Service's type so it no longer needs NodePorts (or an external traffic policy), drop
/// the values it only carried over from the old object, as kube-apiserver's `dropTypeDependentFields` does.
fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    if service_needs_node_ports(new) || !service_needs_node_ports(old) {
        return;
    }
    let old_ports: Vec<Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            let same = old_ports
                .iter()
                .any(|o| o["port"] == p["port"] && o.get("nodePort") == p.get("nodePort"));
            if same && let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
    }
    if new.pointer("/spec/externalTrafficPolicy") == old.pointer("/spec/externalTrafficPolicy")
        && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("externalTrafficPolicy");
        spec.remove("healthCheckNodePort");
    }
}

/// The Service REST storage's `patchAllocatedValues` and `normalizeClusterIPs` for an update.
fn service_patch_allocated(old: &Value, new: &mut Value) {
    let old_ty = old.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let new_ty = new
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let Some(old_spec) = old.get("spec").and_then(Value::as_object) else {
        return;
    };
    let Some(spec) = ensure_obj(new, "spec") else {
        return;
    };
    let needs_cluster_ip = |ty: &str| ty != "ExternalName";
    if needs_cluster_ip(old_ty) && needs_cluster_ip(&new_ty) {
        let old_ip = old_spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let old_ips = old_spec.get("clusterIPs").cloned().unwrap_or(Value::Null);
        let new_ip_was = non_empty_str(spec, "clusterIP").unwrap_or_default();
        if new_ip_was.is_empty() {
            spec.insert("clusterIP".into(), json!(old_ip));
        }
        let new_ips_empty = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let old_ips_set = old_ips.as_array().is_some_and(|a| !a.is_empty());
        if new_ips_empty && old_ips_set {
            let new_ip = non_empty_str(spec, "clusterIP").unwrap_or_default();
            if new_ip == old_ip {
                spec.insert("clusterIPs".into(), old_ips.clone());
            }
        }
        // normalizeClusterIPs: a changed singular field with unchanged plural follows the singular.
        let new_ip = non_empty_str(spec, "clusterIP").unwrap_or_default();
        if new_ip != old_ip && !new_ip.is_empty() && spec.get("clusterIPs") == Some(&old_ips) {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
    let needs_node_port = |ty: &str| ty == "NodePort" || ty == "LoadBalancer";
    if needs_node_port(old_ty) && needs_node_port(&new_ty) {
        let old_ports: Vec<&Map<String, Value>> = old_spec
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default();
        for p in objects_mut(spec, "ports") {
            if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue;
            }
            let key = |m: &Map<String, Value>| {
                (
                    m.get("port").cloned(),
                    m.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string(),
                )
            };
            let wanted = key(p);
            if let Some(np) = old_ports
                .iter()
                .find(|o| key(o) == wanted)
                .and_then(|o| o.get("nodePort"))
            {
                p.insert("nodePort".into(), np.clone());
            }
        }
        if spec.get("healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0
            && let Some(hc) = old_spec
                .get("healthCheckNodePort")
                .filter(|v| v.as_i64().unwrap_or(0) != 0)
        {
            spec.insert("healthCheckNodePort".into(), hc.clone());
        }
    }
}

fn endpoints(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    for subset in objects_mut(m, "subsets") {
        for p in objects_mut(subset, "ports") {
            set_default_non_empty(p, "protocol", json!("TCP"));
        }
    }
}

fn endpoint_slice(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    // Neither list has omitempty: absent lists print as null.
    m.entry("endpoints").or_insert(Value::Null);
    m.entry("ports").or_insert(Value::Null);
    for p in objects_mut(m, "ports") {
        set_default(p, "name", json!(""));
        set_default(p, "protocol", json!("TCP"));
    }
    for e in objects_mut(m, "endpoints") {
        set_default(e, "conditions", json!({}));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Cluster and config kinds
// ---------------------------------------------------------------------------------------------------------------

fn namespace(obj: &mut Value) {
    let name = str_at(obj, "/metadata/name").unwrap_or_default().to_string();
    if !name.is_empty()
        && let Some(meta) = ensure_obj(obj, "metadata")
        && let Some(labels) = ensure_obj_in(meta, "labels")
    {
        labels.insert(LABEL_METADATA_NAME.into(), json!(name));
    }
    if let Some(spec) = ensure_obj(obj, "spec") {
        // PrepareForCreate adds the `kubernetes` finalizer; finalizers present at all were either carried over by
        // `prepare_for_update` or chosen on create, where Kubernetes appends `kubernetes` to them.
        match spec.get_mut("finalizers") {
            None | Some(Value::Null) => {
                spec.insert("finalizers".into(), json!(["kubernetes"]));
            }
            Some(_) => {}
        }
    }
    if let Some(status) = ensure_obj(obj, "status") {
        set_default_non_empty(status, "phase", json!("Active"));
    }
}

fn secret(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    set_default_non_empty(m, "type", json!("Opaque"));
    // The v1 conversion merges the write-only `stringData` into `data`, `stringData` winning.
    if let Some(Value::Object(string_data)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if data.is_null() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                if let Some(s) = v.as_str() {
                    data.insert(k, json!(base64_encode(s.as_bytes())));
                }
            }
        }
    }
}

fn node(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        // The v1 conversion keeps `podCIDR` and `podCIDRs[0]` in step; podCIDRs is the internal field, so it wins
        // when both are set and differ.
        let first = spec
            .get("podCIDRs")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string);
        match (non_empty_str(spec, "podCIDR"), first) {
            (Some(cidr), None) => {
                spec.insert("podCIDRs".into(), json!([cidr]));
            }
            (None, Some(cidr)) => {
                spec.insert("podCIDR".into(), json!(cidr));
            }
            (Some(single), Some(cidr)) if single != cidr => {
                spec.insert("podCIDR".into(), json!(cidr));
            }
            _ => {}
        }
    }
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(capacity) = status.get_mut("capacity").and_then(Value::as_object_mut) {
        resource_list(capacity);
    }
    if let Some(allocatable) = status.get_mut("allocatable").and_then(Value::as_object_mut) {
        resource_list(allocatable);
    }
    if is_unset(status, "allocatable")
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".into(), capacity);
    }
    if let Some(endpoints) = ensure_obj_in(status, "daemonEndpoints")
        && let Some(kubelet) = ensure_obj_in(endpoints, "kubeletEndpoint")
    {
        set_default(kubelet, "Port", json!(0));
    }
    if let Some(info) = ensure_obj_in(status, "nodeInfo") {
        for key in [
            "architecture",
            "bootID",
            "containerRuntimeVersion",
            "kernelVersion",
            "kubeProxyVersion",
            "kubeletVersion",
            "machineID",
            "operatingSystem",
            "osImage",
            "systemUUID",
        ] {
            set_default(info, key, json!(""));
        }
    }
}

fn event(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    set_default(m, "involvedObject", json!({}));
    set_default(m, "source", json!({}));
    for key in ["firstTimestamp", "lastTimestamp", "eventTime"] {
        m.entry(key).or_insert(Value::Null);
    }
    set_default(m, "reportingComponent", json!(""));
    set_default(m, "reportingInstance", json!(""));
}

// ---------------------------------------------------------------------------------------------------------------
// Quantities
// ---------------------------------------------------------------------------------------------------------------

/// An exact decimal `m × 10^e`, enough for the quantities the API carries (i128 holds 38 digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dec {
    /// Mantissa.
    pub(crate) m: i128,
    /// Power of ten.
    pub(crate) e: i32,
}

impl Dec {
    /// Both values on the smaller exponent; `None` if that overflows.
    fn aligned(&self, other: &Dec) -> Option<(i128, i128)> {
        let e = self.e.min(other.e);
        let a = self.m.checked_mul(pow10(self.e - e)?)?;
        let b = other.m.checked_mul(pow10(other.e - e)?)?;
        Some((a, b))
    }

    /// Sum, saturating at i128 range on overflow.
    pub(crate) fn add(&self, other: &Dec) -> Dec {
        match self.aligned(other) {
            Some((a, b)) => Dec {
                m: a.saturating_add(b),
                e: self.e.min(other.e),
            },
            None => {
                if self.cmp(other) == Ordering::Less {
                    *other
                } else {
                    *self
                }
            }
        }
    }

    /// Numeric comparison.
    pub(crate) fn cmp(&self, other: &Dec) -> Ordering {
        match self.aligned(other) {
            Some((a, b)) => a.cmp(&b),
            None => {
                // Overflow only happens with widely different exponents: compare by sign, then by magnitude.
                match self.m.signum().cmp(&other.m.signum()) {
                    Ordering::Equal => {
                        let mag = (self.e + digits(self.m)).cmp(&(other.e + digits(other.m)));
                        if self.m < 0 { mag.reverse() } else { mag }
                    }
                    o => o,
                }
            }
        }
    }
}

/// How a quantity was written, which decides how it is printed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuantityFormat {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// Parse a Kubernetes quantity (`500m`, `1.5Gi`, `1e3`, `2`) into its exact value and format.
fn parse_quantity(s: &str) -> Option<(Dec, QuantityFormat)> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (negative, digits_part) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (int_part, frac_part) = match digits_part.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits_part, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit()) || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all_digits = format!("{int_part}{frac_part}");
    let trimmed = all_digits.trim_start_matches('0');
    if trimmed.len() > 36 {
        return None;
    }
    let mut m: i128 = if trimmed.is_empty() { 0 } else { trimmed.parse().ok()? };
    let mut e = -i32::try_from(frac_part.len()).ok()?;
    let format = match suffix {
        "" => QuantityFormat::DecimalSi,
        "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
            e += match suffix {
                "n" => -9,
                "u" => -6,
                "m" => -3,
                "k" => 3,
                "M" => 6,
                "G" => 9,
                "T" => 12,
                "P" => 15,
                _ => 18,
            };
            QuantityFormat::DecimalSi
        }
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let shift = match suffix {
                "Ki" => 10,
                "Mi" => 20,
                "Gi" => 30,
                "Ti" => 40,
                "Pi" => 50,
                _ => 60,
            };
            m = m.checked_mul(1i128 << shift)?;
            QuantityFormat::BinarySi
        }
        _ => {
            let exp = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E'))?;
            let exp: i32 = exp.parse().ok()?;
            e = e.checked_add(exp)?;
            QuantityFormat::DecimalExponent
        }
    };
    if negative {
        m = -m;
    }
    Some((Dec { m, e }, format))
}

/// The value of a quantity as it appears in JSON (a string, or a bare number some clients send).
pub(crate) fn quantity_value(v: &Value) -> Option<Dec> {
    match v {
        Value::String(s) => parse_quantity(s).map(|(d, _)| d),
        Value::Number(n) => parse_quantity(&n.to_string()).map(|(d, _)| d),
        _ => None,
    }
}

/// `resource.Quantity`'s canonical string for `s`, after `SetDefaults_ResourceList`'s round-up to milli units when
/// `round_to_milli` is set; `None` when `s` is not a quantity.
pub(crate) fn canonical_quantity(s: &str, round_to_milli: bool) -> Option<String> {
    let (mut d, mut format) = parse_quantity(s)?;
    if round_to_milli && d.e < -3 {
        let factor = pow10(-3 - d.e)?;
        let q = d.m / factor;
        let r = d.m % factor;
        d = Dec {
            m: if r > 0 {
                q + 1
            } else if r < 0 {
                q - 1
            } else {
                q
            },
            e: -3,
        };
    }
    if d.m == 0 {
        return Some("0".to_string());
    }
    // Normalise: no trailing zeros in the mantissa.
    while d.m % 10 == 0 {
        d.m /= 10;
        d.e += 1;
    }
    if format == QuantityFormat::BinarySi {
        let as_int = if d.e >= 0 { d.m.checked_mul(pow10(d.e)?) } else { None };
        match as_int {
            Some(v) if v.unsigned_abs() >= 1024 => {
                let mut v = v;
                let mut k = 0;
                while k < 6 && v % 1024 == 0 {
                    v /= 1024;
                    k += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
                return Some(format!("{v}{suffix}"));
            }
            _ => format = QuantityFormat::DecimalSi,
        }
    }
    // The exponent must be a multiple of three; move the remainder into the mantissa.
    let r = d.e.rem_euclid(3);
    let m = d.m.checked_mul(pow10(r)?)?;
    let e = d.e - r;
    let suffix = match format {
        QuantityFormat::DecimalExponent => {
            if e == 0 {
                String::new()
            } else {
                format!("e{e}")
            }
        }
        _ => match e {
            -9 => "n".into(),
            -6 => "u".into(),
            -3 => "m".into(),
            0 => String::new(),
            3 => "k".into(),
            6 => "M".into(),
            9 => "G".into(),
            12 => "T".into(),
            15 => "P".into(),
            18 => "E".into(),
            _ => format!("e{e}"),
        },
    };
    Some(format!("{m}{suffix}"))
}

/// Rewrite every quantity of a `ResourceList` in canonical form, rounded up to milli units.
fn resource_list(list: &mut Map<String, Value>) {
    let keys: Vec<String> = list.keys().cloned().collect();
    for k in keys {
        canonicalize_at(list, &k, true);
    }
}

/// Rewrite the quantity at `m[key]` in canonical form, leaving values that do not parse alone (validation reports
/// them).
fn canonicalize_at(m: &mut Map<String, Value>, key: &str, round_to_milli: bool) {
    let text = match m.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return,
    };
    if let Some(c) = canonical_quantity(&text, round_to_milli) {
        m.insert(key.into(), json!(c));
    }
}

fn pow10(n: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(n).ok()?)
}

fn digits(m: i128) -> i32 {
    let mut n = m.unsigned_abs();
    let mut d = 0;
    while n > 0 {
        n /= 10;
        d += 1;
    }
    d
}

// ---------------------------------------------------------------------------------------------------------------
// Small JSON helpers
// ---------------------------------------------------------------------------------------------------------------

/// The object at `parent[key]`, created (or replacing `null`) when absent; `None` when `parent` is not an object or
/// `parent[key]` holds something other than an object or null.
fn ensure_obj<'a>(parent: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    ensure_obj_in(parent.as_object_mut()?, key)
}

/// [`ensure_obj`] for a parent already known to be an object.
fn ensure_obj_in<'a>(parent: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = parent.entry(key).or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

/// Whether `m[key]` is absent or null.
fn is_unset(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_none_or(Value::is_null)
}

/// Set `m[key]` when absent or null.
fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(m, key) {
        m.insert(key.into(), value);
    }
}

/// Set `m[key]` when absent, null or the empty string (a Go string field's zero value).
fn set_default_non_empty(m: &mut Map<String, Value>, key: &str, value: Value) {
    if non_empty_str(m, key).is_none() && !m.get(key).is_some_and(|v| !v.is_null() && !v.is_string()) {
        m.insert(key.into(), value);
    }
}

/// Set the integer `m[key]` when absent, null or zero (a Go int field's zero value).
fn set_default_non_zero(m: &mut Map<String, Value>, key: &str, value: i64) {
    let zero = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(v) => v.as_i64() == Some(0),
    };
    if zero {
        m.insert(key.into(), json!(value));
    }
}

/// `m[key]` as a non-empty string.
fn non_empty_str(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The string at a JSON pointer.
fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The objects in the array `m[key]` (non-objects are skipped).
fn objects_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Standard base64 with padding (what Go's `[]byte` JSON encoding uses). Written out because the crate's
/// dependency set is owned elsewhere and this is the only place that needs it.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::by_kind;

    fn res(api_version: &str, kind: &str) -> &'static ResourceDef {
        by_kind(api_version, kind).unwrap_or_else(|| panic!("{api_version} {kind} is registered"))
    }

    fn defaulted(api_version: &str, kind: &str, mut obj: Value) -> Value {
        apply(res(api_version, kind), &mut obj);
        obj
    }

    /// `kubectl create deployment nginx --image=nginx` as Kubernetes v1.32 stores and prints it (metadata that the
    /// registry, not defaulting, fills in left out).
    #[test]
    fn minimal_deployment_matches_kubernetes() {
        let obj = defaulted(
            "apps/v1",
            "Deployment",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
                "spec": {
                    "selector": {"matchLabels": {"app": "nginx"}},
                    "template": {
                        "metadata": {"labels": {"app": "nginx"}},
                        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
                    }
                }
            }),
        );
        let want = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "nginx"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}},
                    "spec": {
                        "containers": [{
                            "image": "nginx",
                            "imagePullPolicy": "Always",
                            "name": "nginx",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"
                        }],
                        "dnsPolicy": "ClusterFirst",
                        "restartPolicy": "Always",
                        "schedulerName": "default-scheduler",
                        "securityContext": {},
                        "terminationGracePeriodSeconds": 30
                    }
                }
            },
            "status": {}
        });
        assert_eq!(obj, want);
    }

    /// `kubectl run nginx --image=nginx:1.27` as created (before the ServiceAccount admission's projected token
    /// volume, which Keel does not add).
    #[test]
    fn minimal_pod_matches_kubernetes() {
        let obj = defaulted(
            "v1",
            "Pod",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "nginx", "namespace": "default", "labels": {"run": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }),
        );
        let want = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"run": "nginx"}},
            "spec": {
                "containers": [{
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "name": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                }],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "preemptionPolicy": "PreemptLowerPriority",
                "priority": 0,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "serviceAccount": "default",
                "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
                "tolerations": [
                    {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists",
                     "tolerationSeconds": 300},
                    {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists",
                     "tolerationSeconds": 300}
                ]
            },
            "status": {"phase": "Pending", "qosClass": "BestEffort"}
        });
        assert_eq!(obj, want);
    }

    #[test]
    fn apply_is_idempotent() {
        for (av, kind, obj) in [
            (
                "v1",
                "Pod",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
            ),
            (
                "v1",
                "Service",
                json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            ),
            ("v1", "Namespace", json!({"metadata": {"name": "n"}})),
            (
                "batch/v1",
                "Job",
                json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {}}}}),
            ),
        ] {
            let once = defaulted(av, kind, obj);
            let twice = defaulted(av, kind, once.clone());
            assert_eq!(once, twice, "{kind} defaults changed on a second pass");
        }
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:v1", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("nginx:latest@sha256:abcd", "Always"),
            ("registry.k8s.io/pause:3.10", "IfNotPresent"),
        ] {
            let mut c = Map::new();
            c.insert("image".into(), json!(image));
            container(&mut c);
            assert_eq!(c["imagePullPolicy"], json!(want), "image {image}");
        }
    }

    #[test]
    fn pod_requests_default_to_limits_and_qos_follows() {
        let obj = defaulted(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "image": "i", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}
            ]}}),
        );
        assert_eq!(
            obj.pointer("/spec/containers/0/resources/requests"),
            Some(&json!({"cpu": "500m", "memory": "128Mi"}))
        );
        assert_eq!(obj.pointer("/status/qosClass"), Some(&json!("Guaranteed")));
    }

    #[test]
    fn templates_do_not_get_pod_only_defaults() {
        let obj = defaulted(
            "apps/v1",
            "ReplicaSet",
            json!({"metadata": {"name": "r"}, "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "i:1", "resources": {"limits": {"cpu": "1"}}}
            ]}}}}),
        );
        let spec = obj.pointer("/spec/template/spec").unwrap_or(&Value::Null);
        for key in ["enableServiceLinks", "priority", "tolerations", "serviceAccountName"] {
            assert!(spec.get(key).is_none(), "template got pod-only {key}");
        }
        assert!(
            obj.pointer("/spec/template/spec/containers/0/resources/requests")
                .is_none()
        );
        assert_eq!(obj.pointer("/status"), Some(&json!({"replicas": 0})));
    }

    #[test]
    fn qos_classes() {
        let spec = |containers: Value| json!({ "containers": containers });
        assert_eq!(pod_qos_class(&spec(json!([{"name": "a"}]))), "BestEffort");
        assert_eq!(
            pod_qos_class(&spec(
                json!([{"resources": {"requests": {"cpu": "0"}, "limits": {"memory": "0"}}}])
            )),
            "BestEffort"
        );
        assert_eq!(
            pod_qos_class(&spec(json!([{"resources": {"requests": {"cpu": "100m"}}}]))),
            "Burstable"
        );
        let full = json!({"cpu": "1", "memory": "1Gi"});
        assert_eq!(
            pod_qos_class(&spec(
                json!([{"resources": {"requests": full, "limits": {"cpu": "1000m", "memory": "1024Mi"}}}])
            )),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(&spec(json!([
                {"resources": {"requests": full, "limits": full}},
                {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}
            ]))),
            "Burstable",
            "a container without a memory limit makes the pod Burstable"
        );
        assert_eq!(
            pod_qos_class(&spec(
                json!([{"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": full}}])
            )),
            "Burstable"
        );
    }

    #[test]
    fn quantities_print_canonically() {
        for (input, want) in [
            ("500m", "500m"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("2", "2"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("0.0001", "1m"),
            ("0", "0"),
            ("-1", "-1"),
        ] {
            assert_eq!(
                canonical_quantity(input, true).as_deref(),
                Some(want),
                "quantity {input}"
            );
        }
        assert_eq!(canonical_quantity("100n", false).as_deref(), Some("100n"));
        assert_eq!(canonical_quantity("abc", true), None);
        let obj = defaulted(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "image": "i", "resources": {"requests": {"cpu": 0.5, "memory": "1024Mi"}}}
            ]}}),
        );
        assert_eq!(
            obj.pointer("/spec/containers/0/resources/requests"),
            Some(&json!({"cpu": "500m", "memory": "1Gi"}))
        );
    }

    #[test]
    fn statefulset_defaults() {
        let obj = defaulted(
            "apps/v1",
            "StatefulSet",
            json!({"metadata": {"name": "web"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }}),
        );
        let spec = &obj["spec"];
        assert_eq!(spec["podManagementPolicy"], json!("OrderedReady"));
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], json!(1));
        assert_eq!(spec["revisionHistoryLimit"], json!(10));
        assert_eq!(spec["serviceName"], json!(""));
        assert_eq!(
            spec["volumeClaimTemplates"][0],
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "www", "creationTimestamp": null},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                            "volumeMode": "Filesystem"},
                   "status": {"phase": "Pending"}})
        );
        assert_eq!(obj["status"], json!({"replicas": 0, "availableReplicas": 0}));
        // An explicit RollingUpdate without parameters stays that way.
        let obj = defaulted(
            "apps/v1",
            "StatefulSet",
            json!({"metadata": {"name": "web"}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}}),
        );
        assert_eq!(obj["spec"]["updateStrategy"], json!({"type": "RollingUpdate"}));
    }

    #[test]
    fn daemonset_defaults() {
        let obj = defaulted("apps/v1", "DaemonSet", json!({"metadata": {"name": "d"}, "spec": {}}));
        assert_eq!(
            obj["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(obj["spec"]["revisionHistoryLimit"], json!(10));
        let obj = defaulted(
            "apps/v1",
            "DaemonSet",
            json!({"metadata": {"name": "d"}, "spec": {"updateStrategy": {"type": "OnDelete"}}}),
        );
        assert_eq!(obj["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let mut obj = defaulted(
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {"template": {"spec": {
                "containers": [{"name": "pi", "image": "perl:5.34.0"}], "restartPolicy": "Never"}}}}),
        );
        job_selector(&mut obj, "863452e6-0000-4000-8000-000000000001");
        let uid = "863452e6-0000-4000-8000-000000000001";
        let labels = json!({
            "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
            "controller-uid": uid, "job-name": "pi"
        });
        assert_eq!(obj["metadata"]["labels"], labels);
        assert_eq!(obj["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(
            obj["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        );
        let spec = &obj["spec"];
        assert_eq!(spec["completions"], json!(1));
        assert_eq!(spec["parallelism"], json!(1));
        assert_eq!(spec["backoffLimit"], json!(6));
        assert_eq!(spec["completionMode"], json!("NonIndexed"));
        assert_eq!(spec["suspend"], json!(false));
        assert_eq!(spec["podReplacementPolicy"], json!("TerminatingOrFailed"));
        assert!(spec.get("manualSelector").is_none());
        // A manual selector is left alone.
        let mut manual = json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}}}});
        job_selector(&mut manual, uid);
        assert_eq!(manual["spec"]["selector"], json!({"matchLabels": {"a": "b"}}));
        // Template labels become the Job's labels when it has none.
        let obj = defaulted(
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3,
            "template": {"metadata": {"labels": {"app": "x"}}}}}),
        );
        assert_eq!(obj["metadata"]["labels"], json!({"app": "x"}));
        assert!(obj["spec"].get("completions").is_none());
    }

    #[test]
    fn service_defaults() {
        let obj = defaulted(
            "v1",
            "Service",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        );
        assert_eq!(
            obj["spec"],
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                   "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                   "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]})
        );
        assert_eq!(obj["status"], json!({"loadBalancer": {}}));
        let lb = defaulted(
            "v1",
            "Service",
            json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.9",
                "sessionAffinity": "ClientIP", "ports": [{"port": 443, "targetPort": "https"}]}}),
        );
        assert_eq!(lb["spec"]["externalTrafficPolicy"], json!("Cluster"));
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], json!(true));
        assert_eq!(lb["spec"]["clusterIPs"], json!(["10.43.0.9"]));
        assert_eq!(lb["spec"]["ports"][0]["targetPort"], json!("https"));
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let headless = defaulted(
            "v1",
            "Service",
            json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
        );
        assert_eq!(headless["spec"]["ipFamilyPolicy"], json!("RequireDualStack"));
        let external = defaulted(
            "v1",
            "Service",
            json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        for key in ["ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "clusterIPs"] {
            assert!(external["spec"].get(key).is_none(), "ExternalName got {key}");
        }
    }

    #[test]
    fn service_update_keeps_allocated_values() {
        let svc = res("v1", "Service");
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        prepare_for_update(svc, &old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], json!("10.43.0.9"));
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.9"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], json!(30080));
    }

    #[test]
    fn namespace_defaults() {
        let obj = defaulted("v1", "Namespace", json!({"metadata": {"name": "team-a"}}));
        assert_eq!(
            obj,
            json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
        let mut updated = json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["x.io/y"]}});
        prepare_for_update(res("v1", "Namespace"), &obj, &mut updated);
        assert_eq!(updated["spec"]["finalizers"], json!(["kubernetes"]));
    }

    #[test]
    fn secret_string_data_moves_into_data() {
        let obj = defaulted(
            "v1",
            "Secret",
            json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "yz"}}),
        );
        assert_eq!(
            obj,
            json!({"metadata": {"name": "s"}, "data": {"a": "eXo=", "b": "aGVsbG8="}, "type": "Opaque"})
        );
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
    }

    #[test]
    fn pod_spec_details() {
        let obj = defaulted(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {
                "serviceAccount": "builder",
                "hostNetwork": true,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 8080}],
                    "livenessProbe": {"httpGet": {"port": 8080}},
                    "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 5},
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}]}],
                "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}},
                            {"name": "tls", "secret": {"secretName": "tls"}}, {"name": "h", "hostPath": {"path": "/x"}}]
            }}),
        );
        let spec = &obj["spec"];
        assert_eq!(spec["serviceAccountName"], json!("builder"));
        assert_eq!(spec["serviceAccount"], json!("builder"));
        assert_eq!(
            spec["tolerations"],
            json!([{"operator": "Exists"}]),
            "a match-all toleration tolerates both taints"
        );
        let c = &spec["containers"][0];
        assert_eq!(
            c["ports"][0],
            json!({"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"})
        );
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["grpc"], json!({"port": 9090, "service": ""}));
        assert_eq!(c["readinessProbe"]["periodSeconds"], json!(5));
        assert_eq!(
            c["env"][0]["valueFrom"]["fieldRef"],
            json!({"fieldPath": "spec.nodeName", "apiVersion": "v1"})
        );
        assert_eq!(
            c["env"][1]["valueFrom"]["resourceFieldRef"],
            json!({"resource": "limits.memory", "divisor": "0"})
        );
        assert_eq!(spec["volumes"][0], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(
            spec["volumes"][1]["configMap"],
            json!({"name": "cfg", "defaultMode": 420})
        );
        assert_eq!(
            spec["volumes"][2]["secret"],
            json!({"secretName": "tls", "defaultMode": 420})
        );
        assert_eq!(spec["volumes"][3]["hostPath"], json!({"path": "/x", "type": ""}));
    }

    #[test]
    fn endpoint_slice_and_endpoints_defaults() {
        let obj = defaulted(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({"metadata": {"name": "e"}, "addressType": "IPv4",
                   "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}),
        );
        assert_eq!(obj["ports"], json!([{"port": 80, "name": "", "protocol": "TCP"}]));
        assert_eq!(obj["endpoints"][0]["conditions"], json!({}));
        let empty = defaulted(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({"metadata": {"name": "e"}, "addressType": "IPv4"}),
        );
        assert_eq!(empty["endpoints"], Value::Null);
        let ep = defaulted("v1", "Endpoints", json!({"subsets": [{"ports": [{"port": 80}]}]}));
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], json!("TCP"));
    }

    #[test]
    fn daemon_set_template_generation_starts_at_one_and_follows_the_template() {
        let mut ds =
            json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        daemon_set_template_generation(None, &mut ds);
        assert_eq!(
            ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
            "1"
        );
        let mut same = ds.clone();
        same["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        daemon_set_template_generation(Some(&ds), &mut same);
        assert_eq!(
            same["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
            "1"
        );
        let mut changed = ds.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
        changed["metadata"]["annotations"] = json!({});
        daemon_set_template_generation(Some(&ds), &mut changed);
        assert_eq!(
            changed["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
            "2"
        );
    }

    #[test]
    fn a_service_leaving_nodeport_drops_what_it_only_carried_over() {
        let res = by_kind("v1", "Service").expect("service");
        let old = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.43.0.9",
            "externalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 30081}]}});
        // kubectl sends the old object back with the type changed and one nodePort edited by hand.
        let mut new = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.9",
            "externalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 30999}]}});
        prepare_for_update(res, &old, &mut new);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none(), "{new}");
        assert_eq!(
            new["spec"]["ports"][1]["nodePort"], 30999,
            "a changed nodePort is left for validation"
        );
        assert!(new["spec"].get("externalTrafficPolicy").is_none(), "{new}");
        let mut still = old.clone();
        prepare_for_update(res, &old, &mut still);
        assert_eq!(
            still["spec"]["ports"][0]["nodePort"], 30080,
            "a NodePort Service keeps its ports"
        );
    }

    #[test]
    fn node_defaults() {
        let obj = defaulted(
            "v1",
            "Node",
            json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.0.0/24"},
                   "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        );
        assert_eq!(obj["spec"]["podCIDRs"], json!(["10.42.0.0/24"]));
        let mut both =
            json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.9.0/24", "podCIDRs": ["10.42.0.0/24"]}});
        node(&mut both);
        assert_eq!(both["spec"]["podCIDR"], "10.42.0.0/24", "podCIDRs wins");
        assert_eq!(
            obj["status"]["allocatable"],
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"})
        );
        assert_eq!(
            obj["status"]["daemonEndpoints"],
            json!({"kubeletEndpoint": {"Port": 0}})
        );
    }
}
