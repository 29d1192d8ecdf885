//! Protobuf request bodies: what kubectl's typed clients send as `application/vnd.kubernetes.protobuf`, decoded into
//! the wire JSON the rest of the server works on.
//!
//! `kubectl create namespace|deployment|configmap|secret|service|job|serviceaccount` build a typed object and POST it
//! as protobuf, and client-go does not retry as JSON on a 415. A body is the magic `k8s\0` followed by a
//! `runtime.Unknown` envelope whose `typeMeta` names the kind and whose `raw` holds the object's own message. [`decode`]
//! unwraps that with the `k8s-pb` messages and prints the object the way the Kubernetes API server's JSON encoder
//! would print the same decoded Go object, so that what is stored does not depend on the wire format:
//!
//! * a Go value-type field (`string`, `int32`, `bool` with `omitempty`) is printed only when non-zero, because gogo
//!   protobuf always writes such fields, even when empty;
//! * a pointer field (`*int32`, `*bool`, `*string`, `*Struct`) is printed whenever it is set, even to its zero value
//!   (`automountServiceAccountToken: false` matters);
//! * a field without `omitempty` (`containers`, `containerPort`, ...) is always printed, its zero value when absent;
//! * a value-type struct (`metadata`, `status`, a container's `resources`, a Deployment's `strategy`) is always
//!   printed, as `{}` when empty, and a zero `metav1.Time` in one is `null` (`creationTimestamp: null`);
//! * `IntOrString` is a number or a string, `Quantity` its string, `[]byte` base64.
//!
//! The converters destructure every message exhaustively, so a field added to `k8s-pb` fails the build here rather
//! than being dropped. A field that is not converted (affinity, most volume sources, a Job's pod failure and success
//! policies, ...) answers 415 when set, naming the field and asking for JSON, instead of storing the object without
//! it. Fields newer than the `k8s-pb` release are skipped by prost as unknown fields; `k8s-pb` 0.9 follows a newer
//! Kubernetes than the kubectl v1.32 this server targets, so kubectl cannot send one.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::apps::v1 as appsv1;
use k8s_pb::api::batch::v1 as batchv1;
use k8s_pb::api::core::v1 as corev1;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as metav1;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

use super::error::{ApiError, Result};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The `contentType` an envelope carries when `raw` is itself protobuf (empty means the same).
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// `time.Time{}.Unix()`: the seconds of Go's zero time, which `metav1.Time` prints as `null`.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Decode a Kubernetes protobuf request body (magic `k8s\0` + runtime.Unknown envelope) into wire JSON.
///
/// Answers 400 for a body that is not such an envelope or whose object does not decode, and 415 for a kind this
/// decoder does not know or an object that sets a field it does not convert.
pub fn decode(body: &[u8]) -> Result<Value> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(ApiError::bad_request(
            "the protobuf request body does not start with the Kubernetes magic prefix \"k8s\\x00\": \
             send a runtime.Unknown envelope, or send the object as JSON with Content-Type application/json",
        ));
    };
    let Unknown {
        type_meta,
        raw,
        content_encoding,
        content_type,
    } = Unknown::decode(envelope).map_err(|e| {
        ApiError::bad_request(format!(
            "the protobuf request body is not a valid runtime.Unknown envelope: {e}"
        ))
    })?;
    let TypeMeta { api_version, kind } = type_meta.unwrap_or_default();
    let api_version = api_version.unwrap_or_default();
    let kind = kind.unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "the protobuf request body names no apiVersion and kind in its runtime.Unknown typeMeta",
        ));
    }
    if let Some(enc) = content_encoding.filter(|e| !e.is_empty()) {
        return Err(ApiError::unsupported_media_type(format!(
            "protobuf content encoding {enc:?} is not supported by keel: send the object unencoded or as JSON"
        )));
    }
    if let Some(ct) = content_type.filter(|c| !c.is_empty() && c != PROTOBUF) {
        return Err(ApiError::unsupported_media_type(format!(
            "a protobuf envelope holding {ct:?} is not supported by keel: send the object as JSON"
        )));
    }
    let raw = raw.unwrap_or_default();
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(message(&raw, &kind)?)?,
        ("v1", "ConfigMap") => config_map(message(&raw, &kind)?)?,
        ("v1", "Secret") => secret(message(&raw, &kind)?)?,
        ("v1", "Service") => service(message(&raw, &kind)?)?,
        ("v1", "ServiceAccount") => service_account(message(&raw, &kind)?)?,
        ("apps/v1", "Deployment") => deployment(message(&raw, &kind)?)?,
        ("batch/v1", "Job") => job(message(&raw, &kind)?)?,
        _ => {
            return Err(ApiError::unsupported_media_type(format!(
                "protobuf bodies of kind {kind} in {api_version} are not supported by keel yet: \
                 send the object as JSON (kubectl create -f / apply -f)"
            )));
        }
    };
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    if let Value::Object(fields) = object {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// Decode the envelope's `raw` bytes as the message of `kind`.
fn message<T: Message + Default>(raw: &[u8], kind: &str) -> Result<T> {
    T::decode(raw).map_err(|e| ApiError::bad_request(format!("the protobuf body is not a valid {kind}: {e}")))
}

/// A JSON object built field by field with the rules Go's `encoding/json` applies to Kubernetes' struct tags.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    fn new() -> Self {
        Self::default()
    }

    /// Always print `key`.
    fn set(mut self, key: &str, v: Value) -> Self {
        self.0.insert(key.into(), v);
        self
    }

    /// Print `key` when there is a value (a converted pointer field).
    fn val(self, key: &str, v: Option<Value>) -> Self {
        match v {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// A pointer scalar (`*string`, `*int32`, `*bool`): printed whenever set, even to its zero value.
    fn opt<T: Into<Value>>(self, key: &str, v: Option<T>) -> Self {
        self.val(key, v.map(Into::into))
    }

    /// A value-type `string` with `omitempty`: printed unless empty.
    fn str(self, key: &str, v: Option<String>) -> Self {
        self.opt(key, v.filter(|s| !s.is_empty()))
    }

    /// A value-type `string` without `omitempty`: always printed, `""` when absent.
    fn req_str(self, key: &str, v: Option<String>) -> Self {
        self.set(key, Value::String(v.unwrap_or_default()))
    }

    /// A value-type integer with `omitempty`: printed unless zero.
    fn int<T: Into<i64>>(self, key: &str, v: Option<T>) -> Self {
        self.opt(key, v.map(Into::into).filter(|n| *n != 0))
    }

    /// A value-type integer without `omitempty`: always printed, `0` when absent.
    fn req_int<T: Into<i64>>(self, key: &str, v: Option<T>) -> Self {
        self.set(key, Value::from(v.map_or(0, Into::into)))
    }

    /// A value-type `bool` with `omitempty`: printed only when true.
    fn flag(self, key: &str, v: Option<bool>) -> Self {
        self.opt(key, v.filter(|b| *b))
    }

    /// A `[]string` with `omitempty`.
    fn strs(self, key: &str, v: Vec<String>) -> Self {
        self.list(key, v.into_iter().map(Value::String).collect())
    }

    /// A list of converted values with `omitempty`.
    fn list(self, key: &str, v: Vec<Value>) -> Self {
        if v.is_empty() {
            self
        } else {
            self.set(key, Value::Array(v))
        }
    }

    /// A list without `omitempty`: a nil slice prints as `null`.
    fn req_list(self, key: &str, v: Vec<Value>) -> Self {
        if v.is_empty() {
            self.set(key, Value::Null)
        } else {
            self.set(key, Value::Array(v))
        }
    }

    /// A `map[string]string` with `omitempty`.
    fn map(self, key: &str, v: BTreeMap<String, String>) -> Self {
        if v.is_empty() {
            return self;
        }
        self.set(
            key,
            Value::Object(v.into_iter().map(|(k, v)| (k, Value::String(v))).collect()),
        )
    }

    /// A `map[string][]byte` with `omitempty`: values in standard base64, as Go prints `[]byte`.
    fn bytes_map(self, key: &str, v: BTreeMap<String, Vec<u8>>) -> Self {
        if v.is_empty() {
            return self;
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        self.set(
            key,
            Value::Object(v.into_iter().map(|(k, v)| (k, Value::String(b64.encode(v)))).collect()),
        )
    }

    /// A `ResourceList` (`map[ResourceName]Quantity`) with `omitempty`.
    fn quantities(self, key: &str, v: BTreeMap<String, Quantity>) -> Self {
        if v.is_empty() {
            return self;
        }
        self.set(
            key,
            Value::Object(v.into_iter().map(|(k, q)| (k, quantity(q))).collect()),
        )
    }

    /// The finished object.
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// A converter from one message to JSON; the `&str` is the message's field path, for error messages.
type Convert<T> = fn(T, &str) -> Result<Value>;

/// The field path of `field` inside `path`.
fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Convert a pointer message field: `None` stays unprinted.
fn some<T>(v: Option<T>, path: &str, field: &str, f: Convert<T>) -> Result<Option<Value>> {
    v.map(|v| f(v, &join(path, field))).transpose()
}

/// Convert a value-type message field: always printed, its zero value when absent.
fn value<T: Default>(v: Option<T>, path: &str, field: &str, f: Convert<T>) -> Result<Value> {
    f(v.unwrap_or_default(), &join(path, field))
}

/// Convert a repeated message field.
fn each<T>(v: Vec<T>, path: &str, field: &str, f: Convert<T>) -> Result<Vec<Value>> {
    let at = join(path, field);
    v.into_iter()
        .enumerate()
        .map(|(i, item)| f(item, &format!("{at}[{i}]")))
        .collect()
}

/// Whether a protobuf field carries a value.
trait Present {
    /// True when the field was sent with a value.
    fn present(&self) -> bool;
}

impl<T> Present for Option<T> {
    fn present(&self) -> bool {
        self.is_some()
    }
}

impl<T> Present for Vec<T> {
    fn present(&self) -> bool {
        !self.is_empty()
    }
}

/// Refuse a field this decoder does not convert, when it is set, rather than drop it.
fn deny(path: &str, field: &str, v: &impl Present) -> Result<()> {
    if v.present() {
        return Err(ApiError::unsupported_media_type(format!(
            "protobuf field {} is not supported by keel yet: send the object as JSON (kubectl create -f / apply -f)",
            join(path, field)
        )));
    }
    Ok(())
}

// ---- apimachinery ----

/// `metav1.Time` in a value-type field: `null` when zero, else RFC 3339 at second precision in UTC.
fn time(t: Option<metav1::Time>, path: &str) -> Result<Value> {
    let metav1::Time { seconds, nanos } = t.unwrap_or_default();
    if seconds.is_none() && nanos.is_none() {
        return Ok(Value::Null);
    }
    // Go builds `time.Unix(seconds, nanos)`, which carries whole seconds out of `nanos`; JSON drops the rest.
    let secs = seconds
        .unwrap_or(0)
        .checked_add(i64::from(nanos.unwrap_or(0)).div_euclid(1_000_000_000));
    match secs {
        Some(GO_ZERO_TIME_UNIX) => Ok(Value::Null),
        Some(s) => match jiff::Timestamp::from_second(s) {
            Ok(ts) => Ok(Value::String(super::object::format_time(ts))),
            Err(e) => Err(ApiError::bad_request(format!(
                "protobuf field {path} is not a valid time: {e}"
            ))),
        },
        None => Err(ApiError::bad_request(format!(
            "protobuf field {path} is not a valid time"
        ))),
    }
}

/// `*metav1.Time`: unprinted when unset, `null` when set to the zero time.
fn opt_time(t: Option<metav1::Time>, path: &str) -> Result<Option<Value>> {
    t.map(|t| time(Some(t), path)).transpose()
}

/// `intstr.IntOrString`: a JSON number or string by its `type`.
fn int_or_string(v: IntOrString, path: &str) -> Result<Value> {
    let IntOrString {
        r#type,
        int_val,
        str_val,
    } = v;
    match r#type.unwrap_or(0) {
        0 => Ok(Value::from(int_val.unwrap_or(0))),
        1 => Ok(Value::String(str_val.unwrap_or_default())),
        t => Err(ApiError::bad_request(format!(
            "protobuf field {path} is an IntOrString of unknown type {t}"
        ))),
    }
}

/// `resource.Quantity`: its string form (Go's zero Quantity prints `"0"`).
fn quantity(q: Quantity) -> Value {
    let Quantity { string } = q;
    Value::String(string.filter(|s| !s.is_empty()).unwrap_or_else(|| "0".into()))
}

/// `*resource.Quantity` in a message field.
fn quantity_field(q: Quantity, _path: &str) -> Result<Value> {
    Ok(quantity(q))
}

/// `metav1.ObjectMeta`.
fn object_meta(m: metav1::ObjectMeta, path: &str) -> Result<Value> {
    let metav1::ObjectMeta {
        name,
        generate_name,
        namespace,
        self_link,
        uid,
        resource_version,
        generation,
        creation_timestamp,
        deletion_timestamp,
        deletion_grace_period_seconds,
        labels,
        annotations,
        owner_references,
        finalizers,
        managed_fields,
    } = m;
    Ok(Obj::new()
        .str("name", name)
        .str("generateName", generate_name)
        .str("namespace", namespace)
        .str("selfLink", self_link)
        .str("uid", uid)
        .str("resourceVersion", resource_version)
        .int("generation", generation)
        .set(
            "creationTimestamp",
            time(creation_timestamp, &join(path, "creationTimestamp"))?,
        )
        .val(
            "deletionTimestamp",
            opt_time(deletion_timestamp, &join(path, "deletionTimestamp"))?,
        )
        .opt("deletionGracePeriodSeconds", deletion_grace_period_seconds)
        .map("labels", labels)
        .map("annotations", annotations)
        .list(
            "ownerReferences",
            each(owner_references, path, "ownerReferences", owner_reference)?,
        )
        .strs("finalizers", finalizers)
        .list(
            "managedFields",
            each(managed_fields, path, "managedFields", managed_fields_entry)?,
        )
        .done())
}

/// `metav1.OwnerReference`.
fn owner_reference(r: metav1::OwnerReference, _path: &str) -> Result<Value> {
    let metav1::OwnerReference {
        api_version,
        kind,
        name,
        uid,
        controller,
        block_owner_deletion,
    } = r;
    Ok(Obj::new()
        .req_str("apiVersion", api_version)
        .req_str("kind", kind)
        .req_str("name", name)
        .req_str("uid", uid)
        .opt("controller", controller)
        .opt("blockOwnerDeletion", block_owner_deletion)
        .done())
}

/// `metav1.ManagedFieldsEntry`; `fieldsV1` is raw JSON.
fn managed_fields_entry(e: metav1::ManagedFieldsEntry, path: &str) -> Result<Value> {
    let metav1::ManagedFieldsEntry {
        manager,
        operation,
        api_version,
        time: at,
        fields_type,
        fields_v1,
        subresource,
    } = e;
    let fields = match fields_v1 {
        None => None,
        Some(metav1::FieldsV1 { raw }) => Some(match raw.filter(|r| !r.is_empty()) {
            None => Value::Null,
            Some(raw) => serde_json::from_slice(&raw)
                .map_err(|e| ApiError::bad_request(format!("protobuf field {path}.fieldsV1 is not valid JSON: {e}")))?,
        }),
    };
    Ok(Obj::new()
        .str("manager", manager)
        .str("operation", operation)
        .str("apiVersion", api_version)
        .val("time", opt_time(at, &join(path, "time"))?)
        .str("fieldsType", fields_type)
        .val("fieldsV1", fields)
        .str("subresource", subresource)
        .done())
}

/// `metav1.LabelSelector`.
fn label_selector(s: metav1::LabelSelector, path: &str) -> Result<Value> {
    let metav1::LabelSelector {
        match_labels,
        match_expressions,
    } = s;
    Ok(Obj::new()
        .map("matchLabels", match_labels)
        .list(
            "matchExpressions",
            each(match_expressions, path, "matchExpressions", label_selector_requirement)?,
        )
        .done())
}

/// `metav1.LabelSelectorRequirement`.
fn label_selector_requirement(r: metav1::LabelSelectorRequirement, _path: &str) -> Result<Value> {
    let metav1::LabelSelectorRequirement { key, operator, values } = r;
    Ok(Obj::new()
        .req_str("key", key)
        .req_str("operator", operator)
        .strs("values", values)
        .done())
}

/// `metav1.Condition`.
fn condition(c: metav1::Condition, path: &str) -> Result<Value> {
    let metav1::Condition {
        r#type,
        status,
        observed_generation,
        last_transition_time,
        reason,
        message,
    } = c;
    Ok(Obj::new()
        .req_str("type", r#type)
        .req_str("status", status)
        .int("observedGeneration", observed_generation)
        .set(
            "lastTransitionTime",
            time(last_transition_time, &join(path, "lastTransitionTime"))?,
        )
        .req_str("reason", reason)
        .req_str("message", message)
        .done())
}

// ---- core/v1 kinds ----

/// v1 `Namespace`.
fn namespace(n: corev1::Namespace) -> Result<Value> {
    let corev1::Namespace { metadata, spec, status } = n;
    Ok(Obj::new()
        .set("metadata", value(metadata, "", "metadata", object_meta)?)
        .set("spec", value(spec, "", "spec", namespace_spec)?)
        .set("status", value(status, "", "status", namespace_status)?)
        .done())
}

/// `NamespaceSpec`.
fn namespace_spec(s: corev1::NamespaceSpec, _path: &str) -> Result<Value> {
    let corev1::NamespaceSpec { finalizers } = s;
    Ok(Obj::new().strs("finalizers", finalizers).done())
}

/// `NamespaceStatus`.
fn namespace_status(s: corev1::NamespaceStatus, path: &str) -> Result<Value> {
    let corev1::NamespaceStatus { phase, conditions } = s;
    Ok(Obj::new()
        .str("phase", phase)
        .list("conditions", each(conditions, path, "conditions", namespace_condition)?)
        .done())
}

/// `NamespaceCondition`.
fn namespace_condition(c: corev1::NamespaceCondition, path: &str) -> Result<Value> {
    let corev1::NamespaceCondition {
        r#type,
        status,
        last_transition_time,
        reason,
        message,
    } = c;
    Ok(Obj::new()
        .req_str("type", r#type)
        .req_str("status", status)
        .set(
            "lastTransitionTime",
            time(last_transition_time, &join(path, "lastTransitionTime"))?,
        )
        .str("reason", reason)
        .str("message", message)
        .done())
}

/// v1 `ConfigMap`.
fn config_map(c: corev1::ConfigMap) -> Result<Value> {
    let corev1::ConfigMap {
        metadata,
        immutable,
        data,
        binary_data,
    } = c;
    Ok(Obj::new()
        .set("metadata", value(metadata, "", "metadata", object_meta)?)
        .opt("immutable", immutable)
        .map("data", data)
        .bytes_map("binaryData", binary_data)
        .done())
}

/// v1 `Secret`.
fn secret(s: corev1::Secret) -> Result<Value> {
    let corev1::Secret {
        metadata,
        immutable,
        data,
        string_data,
        r#type,
    } = s;
    Ok(Obj::new()
        .set("metadata", value(metadata, "", "metadata", object_meta)?)
        .opt("immutable", immutable)
        .bytes_map("data", data)
        .map("stringData", string_data)
        .str("type", r#type)
        .done())
}

/// v1 `ServiceAccount`.
fn service_account(s: corev1::ServiceAccount) -> Result<Value> {
    let corev1::ServiceAccount {
        metadata,
        secrets,
        image_pull_secrets,
        automount_service_account_token,
    } = s;
    Ok(Obj::new()
        .set("metadata", value(metadata, "", "metadata", object_meta)?)
        .list("secrets", each(secrets, "", "secrets", object_reference)?)
        .list(
            "imagePullSecrets",
            each(image_pull_secrets, "", "imagePullSecrets", local_object_reference)?,
        )
        .opt("automountServiceAccountToken", automount_service_account_token)
        .done())
}

/// `ObjectReference`.
fn object_reference(r: corev1::ObjectReference, _path: &str) -> Result<Value> {
    let corev1::ObjectReference {
        kind,
        namespace,
        name,
        uid,
        api_version,
        resource_version,
        field_path,
    } = r;
    Ok(Obj::new()
        .str("kind", kind)
        .str("namespace", namespace)
        .str("name", name)
        .str("uid", uid)
        .str("apiVersion", api_version)
        .str("resourceVersion", resource_version)
        .str("fieldPath", field_path)
        .done())
}

/// `LocalObjectReference`.
fn local_object_reference(r: corev1::LocalObjectReference, _path: &str) -> Result<Value> {
    let corev1::LocalObjectReference { name } = r;
    Ok(Obj::new().str("name", name).done())
}

/// The `name` of an inlined `LocalObjectReference`.
fn inline_name(r: Option<corev1::LocalObjectReference>) -> Option<String> {
    let corev1::LocalObjectReference { name } = r.unwrap_or_default();
    name
}

/// v1 `Service`.
fn service(s: corev1::Service) -> Result<Value> {
    let corev1::Service { metadata, spec, status } = s;
    Ok(Obj::new()
        .set("metadata", value(metadata, "", "metadata", object_meta)?)
        .set("spec", value(spec, "", "spec", service_spec)?)
        .set("status", value(status, "", "status", service_status)?)
        .done())
}

/// `ServiceSpec`.
fn service_spec(s: corev1::ServiceSpec, path: &str) -> Result<Value> {
    let corev1::ServiceSpec {
        ports,
        selector,
        cluster_ip,
        cluster_ips,
        r#type,
        external_ips,
        session_affinity,
        load_balancer_ip,
        load_balancer_source_ranges,
        external_name,
        external_traffic_policy,
        health_check_node_port,
        publish_not_ready_addresses,
        session_affinity_config,
        ip_families,
        ip_family_policy,
        allocate_load_balancer_node_ports,
        load_balancer_class,
        internal_traffic_policy,
        traffic_distribution,
    } = s;
    Ok(Obj::new()
        .list("ports", each(ports, path, "ports", service_port)?)
        .map("selector", selector)
        .str("clusterIP", cluster_ip)
        .strs("clusterIPs", cluster_ips)
        .str("type", r#type)
        .strs("externalIPs", external_ips)
        .str("sessionAffinity", session_affinity)
        .str("loadBalancerIP", load_balancer_ip)
        .strs("loadBalancerSourceRanges", load_balancer_source_ranges)
        .str("externalName", external_name)
        .str("externalTrafficPolicy", external_traffic_policy)
        .int("healthCheckNodePort", health_check_node_port)
        .flag("publishNotReadyAddresses", publish_not_ready_addresses)
        .val(
            "sessionAffinityConfig",
            some(
                session_affinity_config,
                path,
                "sessionAffinityConfig",
                session_affinity_config_of,
            )?,
        )
        .strs("ipFamilies", ip_families)
        .opt("ipFamilyPolicy", ip_family_policy)
        .opt("allocateLoadBalancerNodePorts", allocate_load_balancer_node_ports)
        .opt("loadBalancerClass", load_balancer_class)
        .opt("internalTrafficPolicy", internal_traffic_policy)
        .opt("trafficDistribution", traffic_distribution)
        .done())
}

/// `ServicePort`; `targetPort` is a value-type `IntOrString`, so Go prints `0` when it is unset.
fn service_port(p: corev1::ServicePort, path: &str) -> Result<Value> {
    let corev1::ServicePort {
        name,
        protocol,
        app_protocol,
        port,
        target_port,
        node_port,
    } = p;
    Ok(Obj::new()
        .str("name", name)
        .str("protocol", protocol)
        .opt("appProtocol", app_protocol)
        .req_int("port", port)
        .set("targetPort", value(target_port, path, "targetPort", int_or_string)?)
        .int("nodePort", node_port)
        .done())
}

/// `SessionAffinityConfig`.
fn session_affinity_config_of(c: corev1::SessionAffinityConfig, _path: &str) -> Result<Value> {
    let corev1::SessionAffinityConfig { client_ip } = c;
    let client_ip = client_ip.map(|c| {
        let corev1::ClientIpConfig { timeout_seconds } = c;
        Obj::new().opt("timeoutSeconds", timeout_seconds).done()
    });
    Ok(Obj::new().val("clientIP", client_ip).done())
}

/// `ServiceStatus`.
fn service_status(s: corev1::ServiceStatus, path: &str) -> Result<Value> {
    let corev1::ServiceStatus {
        load_balancer,
        conditions,
    } = s;
    Ok(Obj::new()
        .set(
            "loadBalancer",
            value(load_balancer, path, "loadBalancer", load_balancer_status)?,
        )
        .list("conditions", each(conditions, path, "conditions", condition)?)
        .done())
}

/// `LoadBalancerStatus`.
fn load_balancer_status(s: corev1::LoadBalancerStatus, path: &str) -> Result<Value> {
    let corev1::LoadBalancerStatus { ingress } = s;
    Ok(Obj::new()
        .list("ingress", each(ingress, path, "ingress", load_balancer_ingress)?)
        .done())
}

/// `LoadBalancerIngress`.
fn load_balancer_ingress(i: corev1::LoadBalancerIngress, path: &str) -> Result<Value> {
    let corev1::LoadBalancerIngress {
        ip,
        hostname,
        ip_mode,
        ports,
    } = i;
    Ok(Obj::new()
        .str("ip", ip)
        .str("hostname", hostname)
        .opt("ipMode", ip_mode)
        .list("ports", each(ports, path, "ports", port_status)?)
        .done())
}

/// `PortStatus`.
fn port_status(p: corev1::PortStatus, _path: &str) -> Result<Value> {
    let corev1::PortStatus { port, protocol, error } = p;
    Ok(Obj::new()
        .req_int("port", port)
        .req_str("protocol", protocol)
        .opt("error", error)
        .done())
}

// ---- pod templates ----

/// `PodTemplateSpec`.
fn pod_template_spec(t: corev1::PodTemplateSpec, path: &str) -> Result<Value> {
    let corev1::PodTemplateSpec { metadata, spec } = t;
    Ok(Obj::new()
        .set("metadata", value(metadata, path, "metadata", object_meta)?)
        .set("spec", value(spec, path, "spec", pod_spec)?)
        .done())
}

/// `PodSpec`.
fn pod_spec(s: corev1::PodSpec, path: &str) -> Result<Value> {
    let corev1::PodSpec {
        volumes,
        init_containers,
        containers,
        ephemeral_containers,
        restart_policy,
        termination_grace_period_seconds,
        active_deadline_seconds,
        dns_policy,
        node_selector,
        service_account_name,
        service_account,
        automount_service_account_token,
        node_name,
        host_network,
        host_pid,
        host_ipc,
        share_process_namespace,
        security_context,
        image_pull_secrets,
        hostname,
        subdomain,
        affinity,
        scheduler_name,
        tolerations,
        host_aliases,
        priority_class_name,
        priority,
        dns_config,
        readiness_gates,
        runtime_class_name,
        enable_service_links,
        preemption_policy,
        overhead,
        topology_spread_constraints,
        set_hostname_as_fqdn,
        os,
        host_users,
        scheduling_gates,
        resource_claims,
        resources,
        hostname_override,
        workload_ref,
    } = s;
    deny(path, "ephemeralContainers", &ephemeral_containers)?;
    deny(path, "affinity", &affinity)?;
    deny(path, "resourceClaims", &resource_claims)?;
    deny(path, "workloadRef", &workload_ref)?;
    let os = os.map(|o| {
        let corev1::PodOs { name } = o;
        Obj::new().req_str("name", name).done()
    });
    let readiness_gates = readiness_gates
        .into_iter()
        .map(|g| {
            let corev1::PodReadinessGate { condition_type } = g;
            Obj::new().req_str("conditionType", condition_type).done()
        })
        .collect();
    let scheduling_gates = scheduling_gates
        .into_iter()
        .map(|g| {
            let corev1::PodSchedulingGate { name } = g;
            Obj::new().req_str("name", name).done()
        })
        .collect();
    Ok(Obj::new()
        .list("volumes", each(volumes, path, "volumes", volume)?)
        .list(
            "initContainers",
            each(init_containers, path, "initContainers", container)?,
        )
        .req_list("containers", each(containers, path, "containers", container)?)
        .str("restartPolicy", restart_policy)
        .opt("terminationGracePeriodSeconds", termination_grace_period_seconds)
        .opt("activeDeadlineSeconds", active_deadline_seconds)
        .str("dnsPolicy", dns_policy)
        .map("nodeSelector", node_selector)
        .str("serviceAccountName", service_account_name)
        .str("serviceAccount", service_account)
        .opt("automountServiceAccountToken", automount_service_account_token)
        .str("nodeName", node_name)
        .flag("hostNetwork", host_network)
        .flag("hostPID", host_pid)
        .flag("hostIPC", host_ipc)
        .opt("shareProcessNamespace", share_process_namespace)
        .val(
            "securityContext",
            some(security_context, path, "securityContext", pod_security_context)?,
        )
        .list(
            "imagePullSecrets",
            each(image_pull_secrets, path, "imagePullSecrets", local_object_reference)?,
        )
        .str("hostname", hostname)
        .str("subdomain", subdomain)
        .str("schedulerName", scheduler_name)
        .list("tolerations", each(tolerations, path, "tolerations", toleration)?)
        .list("hostAliases", each(host_aliases, path, "hostAliases", host_alias)?)
        .str("priorityClassName", priority_class_name)
        .opt("priority", priority)
        .val("dnsConfig", some(dns_config, path, "dnsConfig", pod_dns_config)?)
        .list("readinessGates", readiness_gates)
        .opt("runtimeClassName", runtime_class_name)
        .opt("enableServiceLinks", enable_service_links)
        .opt("preemptionPolicy", preemption_policy)
        .quantities("overhead", overhead)
        .list(
            "topologySpreadConstraints",
            each(
                topology_spread_constraints,
                path,
                "topologySpreadConstraints",
                topology_spread_constraint,
            )?,
        )
        .opt("setHostnameAsFQDN", set_hostname_as_fqdn)
        .val("os", os)
        .opt("hostUsers", host_users)
        .list("schedulingGates", scheduling_gates)
        .val("resources", some(resources, path, "resources", resource_requirements)?)
        .opt("hostnameOverride", hostname_override)
        .done())
}

/// `Container` (also used for init containers).
fn container(c: corev1::Container, path: &str) -> Result<Value> {
    let corev1::Container {
        name,
        image,
        command,
        args,
        working_dir,
        ports,
        env_from,
        env,
        resources,
        resize_policy,
        restart_policy,
        restart_policy_rules,
        volume_mounts,
        volume_devices,
        liveness_probe,
        readiness_probe,
        startup_probe,
        lifecycle,
        termination_message_path,
        termination_message_policy,
        image_pull_policy,
        security_context,
        stdin,
        stdin_once,
        tty,
    } = c;
    deny(path, "restartPolicyRules", &restart_policy_rules)?;
    let resize_policy = resize_policy
        .into_iter()
        .map(|p| {
            let corev1::ContainerResizePolicy {
                resource_name,
                restart_policy,
            } = p;
            Obj::new()
                .req_str("resourceName", resource_name)
                .req_str("restartPolicy", restart_policy)
                .done()
        })
        .collect();
    let volume_devices = volume_devices
        .into_iter()
        .map(|d| {
            let corev1::VolumeDevice { name, device_path } = d;
            Obj::new()
                .req_str("name", name)
                .req_str("devicePath", device_path)
                .done()
        })
        .collect();
    Ok(Obj::new()
        .req_str("name", name)
        .str("image", image)
        .strs("command", command)
        .strs("args", args)
        .str("workingDir", working_dir)
        .list("ports", each(ports, path, "ports", container_port)?)
        .list("envFrom", each(env_from, path, "envFrom", env_from_source)?)
        .list("env", each(env, path, "env", env_var)?)
        .set("resources", value(resources, path, "resources", resource_requirements)?)
        .list("resizePolicy", resize_policy)
        .opt("restartPolicy", restart_policy)
        .list("volumeMounts", each(volume_mounts, path, "volumeMounts", volume_mount)?)
        .list("volumeDevices", volume_devices)
        .val("livenessProbe", some(liveness_probe, path, "livenessProbe", probe)?)
        .val("readinessProbe", some(readiness_probe, path, "readinessProbe", probe)?)
        .val("startupProbe", some(startup_probe, path, "startupProbe", probe)?)
        .val("lifecycle", some(lifecycle, path, "lifecycle", container_lifecycle)?)
        .str("terminationMessagePath", termination_message_path)
        .str("terminationMessagePolicy", termination_message_policy)
        .str("imagePullPolicy", image_pull_policy)
        .val(
            "securityContext",
            some(security_context, path, "securityContext", security_context_field)?,
        )
        .flag("stdin", stdin)
        .flag("stdinOnce", stdin_once)
        .flag("tty", tty)
        .done())
}

/// `ContainerPort`.
fn container_port(p: corev1::ContainerPort, _path: &str) -> Result<Value> {
    let corev1::ContainerPort {
        name,
        host_port,
        container_port,
        protocol,
        host_ip,
    } = p;
    Ok(Obj::new()
        .str("name", name)
        .int("hostPort", host_port)
        .req_int("containerPort", container_port)
        .str("protocol", protocol)
        .str("hostIP", host_ip)
        .done())
}

/// `EnvVar`.
fn env_var(e: corev1::EnvVar, path: &str) -> Result<Value> {
    let corev1::EnvVar {
        name,
        value,
        value_from,
    } = e;
    Ok(Obj::new()
        .req_str("name", name)
        .str("value", value)
        .val("valueFrom", some(value_from, path, "valueFrom", env_var_source)?)
        .done())
}

/// `EnvVarSource`.
fn env_var_source(s: corev1::EnvVarSource, path: &str) -> Result<Value> {
    let corev1::EnvVarSource {
        field_ref,
        resource_field_ref,
        config_map_key_ref,
        secret_key_ref,
        file_key_ref,
    } = s;
    deny(path, "fileKeyRef", &file_key_ref)?;
    let field_ref = field_ref.map(|f| {
        let corev1::ObjectFieldSelector {
            api_version,
            field_path,
        } = f;
        Obj::new()
            .str("apiVersion", api_version)
            .req_str("fieldPath", field_path)
            .done()
    });
    let config_map_key_ref = config_map_key_ref.map(|r| {
        let corev1::ConfigMapKeySelector {
            local_object_reference,
            key,
            optional,
        } = r;
        key_selector(local_object_reference, key, optional)
    });
    let secret_key_ref = secret_key_ref.map(|r| {
        let corev1::SecretKeySelector {
            local_object_reference,
            key,
            optional,
        } = r;
        key_selector(local_object_reference, key, optional)
    });
    Ok(Obj::new()
        .val("fieldRef", field_ref)
        .val(
            "resourceFieldRef",
            some(resource_field_ref, path, "resourceFieldRef", resource_field_selector)?,
        )
        .val("configMapKeyRef", config_map_key_ref)
        .val("secretKeyRef", secret_key_ref)
        .done())
}

/// `ConfigMapKeySelector` and `SecretKeySelector`, which share their JSON shape.
fn key_selector(r: Option<corev1::LocalObjectReference>, key: Option<String>, optional: Option<bool>) -> Value {
    Obj::new()
        .str("name", inline_name(r))
        .req_str("key", key)
        .opt("optional", optional)
        .done()
}

/// `ResourceFieldSelector`; `divisor` is a value-type Quantity, printed `"0"` when unset.
fn resource_field_selector(s: corev1::ResourceFieldSelector, _path: &str) -> Result<Value> {
    let corev1::ResourceFieldSelector {
        container_name,
        resource,
        divisor,
    } = s;
    Ok(Obj::new()
        .str("containerName", container_name)
        .req_str("resource", resource)
        .set("divisor", quantity(divisor.unwrap_or_default()))
        .done())
}

/// `EnvFromSource`.
fn env_from_source(s: corev1::EnvFromSource, _path: &str) -> Result<Value> {
    let corev1::EnvFromSource {
        prefix,
        config_map_ref,
        secret_ref,
    } = s;
    let config_map_ref = config_map_ref.map(|r| {
        let corev1::ConfigMapEnvSource {
            local_object_reference,
            optional,
        } = r;
        Obj::new()
            .str("name", inline_name(local_object_reference))
            .opt("optional", optional)
            .done()
    });
    let secret_ref = secret_ref.map(|r| {
        let corev1::SecretEnvSource {
            local_object_reference,
            optional,
        } = r;
        Obj::new()
            .str("name", inline_name(local_object_reference))
            .opt("optional", optional)
            .done()
    });
    Ok(Obj::new()
        .str("prefix", prefix)
        .val("configMapRef", config_map_ref)
        .val("secretRef", secret_ref)
        .done())
}

/// `ResourceRequirements`.
fn resource_requirements(r: corev1::ResourceRequirements, _path: &str) -> Result<Value> {
    let corev1::ResourceRequirements {
        limits,
        requests,
        claims,
    } = r;
    let claims = claims
        .into_iter()
        .map(|c| {
            let corev1::ResourceClaim { name, request } = c;
            Obj::new().req_str("name", name).str("request", request).done()
        })
        .collect();
    Ok(Obj::new()
        .quantities("limits", limits)
        .quantities("requests", requests)
        .list("claims", claims)
        .done())
}

/// `VolumeMount`.
fn volume_mount(m: corev1::VolumeMount, _path: &str) -> Result<Value> {
    let corev1::VolumeMount {
        name,
        read_only,
        recursive_read_only,
        mount_path,
        sub_path,
        mount_propagation,
        sub_path_expr,
    } = m;
    Ok(Obj::new()
        .req_str("name", name)
        .flag("readOnly", read_only)
        .opt("recursiveReadOnly", recursive_read_only)
        .req_str("mountPath", mount_path)
        .str("subPath", sub_path)
        .opt("mountPropagation", mount_propagation)
        .str("subPathExpr", sub_path_expr)
        .done())
}

/// `Probe`, with its `ProbeHandler` inlined.
fn probe(p: corev1::Probe, path: &str) -> Result<Value> {
    let corev1::Probe {
        handler,
        initial_delay_seconds,
        timeout_seconds,
        period_seconds,
        success_threshold,
        failure_threshold,
        termination_grace_period_seconds,
    } = p;
    let corev1::ProbeHandler {
        exec,
        http_get,
        tcp_socket,
        grpc,
    } = handler.unwrap_or_default();
    let grpc = grpc.map(|g| {
        let corev1::GrpcAction { port, service } = g;
        // `service` is a `*string` without omitempty: nil prints as null.
        Obj::new()
            .req_int("port", port)
            .set("service", service.map_or(Value::Null, Value::String))
            .done()
    });
    Ok(Obj::new()
        .val("exec", exec.map(exec_action))
        .val("httpGet", some(http_get, path, "httpGet", http_get_action)?)
        .val("tcpSocket", some(tcp_socket, path, "tcpSocket", tcp_socket_action)?)
        .val("grpc", grpc)
        .int("initialDelaySeconds", initial_delay_seconds)
        .int("timeoutSeconds", timeout_seconds)
        .int("periodSeconds", period_seconds)
        .int("successThreshold", success_threshold)
        .int("failureThreshold", failure_threshold)
        .opt("terminationGracePeriodSeconds", termination_grace_period_seconds)
        .done())
}

/// `ExecAction`.
fn exec_action(e: corev1::ExecAction) -> Value {
    let corev1::ExecAction { command } = e;
    Obj::new().strs("command", command).done()
}

/// `HTTPGetAction`.
fn http_get_action(a: corev1::HttpGetAction, path: &str) -> Result<Value> {
    let corev1::HttpGetAction {
        path: url_path,
        port,
        host,
        scheme,
        http_headers,
    } = a;
    let http_headers = http_headers
        .into_iter()
        .map(|h| {
            let corev1::HttpHeader { name, value } = h;
            Obj::new().req_str("name", name).req_str("value", value).done()
        })
        .collect();
    Ok(Obj::new()
        .str("path", url_path)
        .set("port", value(port, path, "port", int_or_string)?)
        .str("host", host)
        .str("scheme", scheme)
        .list("httpHeaders", http_headers)
        .done())
}

/// `TCPSocketAction`.
fn tcp_socket_action(a: corev1::TcpSocketAction, path: &str) -> Result<Value> {
    let corev1::TcpSocketAction { port, host } = a;
    Ok(Obj::new()
        .set("port", value(port, path, "port", int_or_string)?)
        .str("host", host)
        .done())
}

/// `Lifecycle`.
fn container_lifecycle(l: corev1::Lifecycle, path: &str) -> Result<Value> {
    let corev1::Lifecycle {
        post_start,
        pre_stop,
        stop_signal,
    } = l;
    Ok(Obj::new()
        .val("postStart", some(post_start, path, "postStart", lifecycle_handler)?)
        .val("preStop", some(pre_stop, path, "preStop", lifecycle_handler)?)
        .opt("stopSignal", stop_signal)
        .done())
}

/// `LifecycleHandler`.
fn lifecycle_handler(h: corev1::LifecycleHandler, path: &str) -> Result<Value> {
    let corev1::LifecycleHandler {
        exec,
        http_get,
        tcp_socket,
        sleep,
    } = h;
    let sleep = sleep.map(|s| {
        let corev1::SleepAction { seconds } = s;
        Obj::new().req_int("seconds", seconds).done()
    });
    Ok(Obj::new()
        .val("exec", exec.map(exec_action))
        .val("httpGet", some(http_get, path, "httpGet", http_get_action)?)
        .val("tcpSocket", some(tcp_socket, path, "tcpSocket", tcp_socket_action)?)
        .val("sleep", sleep)
        .done())
}

/// A container's `SecurityContext`.
fn security_context_field(s: corev1::SecurityContext, _path: &str) -> Result<Value> {
    let corev1::SecurityContext {
        capabilities,
        privileged,
        se_linux_options,
        windows_options,
        run_as_user,
        run_as_group,
        run_as_non_root,
        read_only_root_filesystem,
        allow_privilege_escalation,
        proc_mount,
        seccomp_profile,
        app_armor_profile,
    } = s;
    let capabilities = capabilities.map(|c| {
        let corev1::Capabilities { add, drop } = c;
        Obj::new().strs("add", add).strs("drop", drop).done()
    });
    Ok(Obj::new()
        .val("capabilities", capabilities)
        .opt("privileged", privileged)
        .val("seLinuxOptions", se_linux_options.map(se_linux))
        .val("windowsOptions", windows_options.map(windows))
        .opt("runAsUser", run_as_user)
        .opt("runAsGroup", run_as_group)
        .opt("runAsNonRoot", run_as_non_root)
        .opt("readOnlyRootFilesystem", read_only_root_filesystem)
        .opt("allowPrivilegeEscalation", allow_privilege_escalation)
        .opt("procMount", proc_mount)
        .val("seccompProfile", seccomp_profile.map(seccomp))
        .val("appArmorProfile", app_armor_profile.map(app_armor))
        .done())
}

/// `PodSecurityContext`.
fn pod_security_context(s: corev1::PodSecurityContext, _path: &str) -> Result<Value> {
    let corev1::PodSecurityContext {
        se_linux_options,
        windows_options,
        run_as_user,
        run_as_group,
        run_as_non_root,
        supplemental_groups,
        supplemental_groups_policy,
        fs_group,
        sysctls,
        fs_group_change_policy,
        seccomp_profile,
        app_armor_profile,
        se_linux_change_policy,
    } = s;
    let sysctls = sysctls
        .into_iter()
        .map(|s| {
            let corev1::Sysctl { name, value } = s;
            Obj::new().req_str("name", name).req_str("value", value).done()
        })
        .collect();
    Ok(Obj::new()
        .val("seLinuxOptions", se_linux_options.map(se_linux))
        .val("windowsOptions", windows_options.map(windows))
        .opt("runAsUser", run_as_user)
        .opt("runAsGroup", run_as_group)
        .opt("runAsNonRoot", run_as_non_root)
        .list(
            "supplementalGroups",
            supplemental_groups.into_iter().map(Value::from).collect(),
        )
        .opt("supplementalGroupsPolicy", supplemental_groups_policy)
        .opt("fsGroup", fs_group)
        .list("sysctls", sysctls)
        .opt("fsGroupChangePolicy", fs_group_change_policy)
        .val("seccompProfile", seccomp_profile.map(seccomp))
        .val("appArmorProfile", app_armor_profile.map(app_armor))
        .opt("seLinuxChangePolicy", se_linux_change_policy)
        .done())
}

/// `SELinuxOptions`.
fn se_linux(o: corev1::SeLinuxOptions) -> Value {
    let corev1::SeLinuxOptions {
        user,
        role,
        r#type,
        level,
    } = o;
    Obj::new()
        .str("user", user)
        .str("role", role)
        .str("type", r#type)
        .str("level", level)
        .done()
}

/// `WindowsSecurityContextOptions`.
fn windows(o: corev1::WindowsSecurityContextOptions) -> Value {
    let corev1::WindowsSecurityContextOptions {
        gmsa_credential_spec_name,
        gmsa_credential_spec,
        run_as_user_name,
        host_process,
    } = o;
    Obj::new()
        .opt("gmsaCredentialSpecName", gmsa_credential_spec_name)
        .opt("gmsaCredentialSpec", gmsa_credential_spec)
        .opt("runAsUserName", run_as_user_name)
        .opt("hostProcess", host_process)
        .done()
}

/// `SeccompProfile`.
fn seccomp(p: corev1::SeccompProfile) -> Value {
    let corev1::SeccompProfile {
        r#type,
        localhost_profile,
    } = p;
    Obj::new()
        .req_str("type", r#type)
        .opt("localhostProfile", localhost_profile)
        .done()
}

/// `AppArmorProfile`.
fn app_armor(p: corev1::AppArmorProfile) -> Value {
    let corev1::AppArmorProfile {
        r#type,
        localhost_profile,
    } = p;
    Obj::new()
        .req_str("type", r#type)
        .opt("localhostProfile", localhost_profile)
        .done()
}

/// `Volume`, with its `VolumeSource` inlined. Only emptyDir, configMap, secret, hostPath and persistentVolumeClaim
/// are converted; any other source answers 415.
fn volume(v: corev1::Volume, path: &str) -> Result<Value> {
    let corev1::Volume { name, volume_source } = v;
    let corev1::VolumeSource {
        host_path,
        empty_dir,
        gce_persistent_disk,
        aws_elastic_block_store,
        git_repo,
        secret,
        nfs,
        iscsi,
        glusterfs,
        persistent_volume_claim,
        rbd,
        flex_volume,
        cinder,
        cephfs,
        flocker,
        downward_api,
        fc,
        azure_file,
        config_map,
        vsphere_volume,
        quobyte,
        azure_disk,
        photon_persistent_disk,
        projected,
        portworx_volume,
        scale_io,
        storageos,
        csi,
        ephemeral,
        image,
    } = volume_source.unwrap_or_default();
    deny(path, "gcePersistentDisk", &gce_persistent_disk)?;
    deny(path, "awsElasticBlockStore", &aws_elastic_block_store)?;
    deny(path, "gitRepo", &git_repo)?;
    deny(path, "nfs", &nfs)?;
    deny(path, "iscsi", &iscsi)?;
    deny(path, "glusterfs", &glusterfs)?;
    deny(path, "rbd", &rbd)?;
    deny(path, "flexVolume", &flex_volume)?;
    deny(path, "cinder", &cinder)?;
    deny(path, "cephfs", &cephfs)?;
    deny(path, "flocker", &flocker)?;
    deny(path, "downwardAPI", &downward_api)?;
    deny(path, "fc", &fc)?;
    deny(path, "azureFile", &azure_file)?;
    deny(path, "vsphereVolume", &vsphere_volume)?;
    deny(path, "quobyte", &quobyte)?;
    deny(path, "azureDisk", &azure_disk)?;
    deny(path, "photonPersistentDisk", &photon_persistent_disk)?;
    deny(path, "projected", &projected)?;
    deny(path, "portworxVolume", &portworx_volume)?;
    deny(path, "scaleIO", &scale_io)?;
    deny(path, "storageos", &storageos)?;
    deny(path, "csi", &csi)?;
    deny(path, "ephemeral", &ephemeral)?;
    deny(path, "image", &image)?;
    let host_path = host_path.map(|h| {
        let corev1::HostPathVolumeSource { path: host, r#type } = h;
        Obj::new().req_str("path", host).opt("type", r#type).done()
    });
    let persistent_volume_claim = persistent_volume_claim.map(|c| {
        let corev1::PersistentVolumeClaimVolumeSource { claim_name, read_only } = c;
        Obj::new()
            .req_str("claimName", claim_name)
            .flag("readOnly", read_only)
            .done()
    });
    Ok(Obj::new()
        .req_str("name", name)
        .val("hostPath", host_path)
        .val("emptyDir", some(empty_dir, path, "emptyDir", empty_dir_source)?)
        .val("secret", some(secret, path, "secret", secret_volume_source)?)
        .val("persistentVolumeClaim", persistent_volume_claim)
        .val(
            "configMap",
            some(config_map, path, "configMap", config_map_volume_source)?,
        )
        .done())
}

/// `EmptyDirVolumeSource`.
fn empty_dir_source(e: corev1::EmptyDirVolumeSource, path: &str) -> Result<Value> {
    let corev1::EmptyDirVolumeSource { medium, size_limit } = e;
    Ok(Obj::new()
        .str("medium", medium)
        .val("sizeLimit", some(size_limit, path, "sizeLimit", quantity_field)?)
        .done())
}

/// `SecretVolumeSource`.
fn secret_volume_source(s: corev1::SecretVolumeSource, path: &str) -> Result<Value> {
    let corev1::SecretVolumeSource {
        secret_name,
        items,
        default_mode,
        optional,
    } = s;
    Ok(Obj::new()
        .str("secretName", secret_name)
        .list("items", each(items, path, "items", key_to_path)?)
        .opt("defaultMode", default_mode)
        .opt("optional", optional)
        .done())
}

/// `ConfigMapVolumeSource`.
fn config_map_volume_source(s: corev1::ConfigMapVolumeSource, path: &str) -> Result<Value> {
    let corev1::ConfigMapVolumeSource {
        local_object_reference,
        items,
        default_mode,
        optional,
    } = s;
    Ok(Obj::new()
        .str("name", inline_name(local_object_reference))
        .list("items", each(items, path, "items", key_to_path)?)
        .opt("defaultMode", default_mode)
        .opt("optional", optional)
        .done())
}

/// `KeyToPath`.
fn key_to_path(k: corev1::KeyToPath, _path: &str) -> Result<Value> {
    let corev1::KeyToPath { key, path, mode } = k;
    Ok(Obj::new()
        .req_str("key", key)
        .req_str("path", path)
        .opt("mode", mode)
        .done())
}

/// `Toleration`.
fn toleration(t: corev1::Toleration, _path: &str) -> Result<Value> {
    let corev1::Toleration {
        key,
        operator,
        value,
        effect,
        toleration_seconds,
    } = t;
    Ok(Obj::new()
        .str("key", key)
        .str("operator", operator)
        .str("value", value)
        .str("effect", effect)
        .opt("tolerationSeconds", toleration_seconds)
        .done())
}

/// `HostAlias`.
fn host_alias(a: corev1::HostAlias, _path: &str) -> Result<Value> {
    let corev1::HostAlias { ip, hostnames } = a;
    Ok(Obj::new().req_str("ip", ip).strs("hostnames", hostnames).done())
}

/// `PodDNSConfig`.
fn pod_dns_config(c: corev1::PodDnsConfig, _path: &str) -> Result<Value> {
    let corev1::PodDnsConfig {
        nameservers,
        searches,
        options,
    } = c;
    let options = options
        .into_iter()
        .map(|o| {
            let corev1::PodDnsConfigOption { name, value } = o;
            Obj::new().str("name", name).opt("value", value).done()
        })
        .collect();
    Ok(Obj::new()
        .strs("nameservers", nameservers)
        .strs("searches", searches)
        .list("options", options)
        .done())
}

/// `TopologySpreadConstraint`.
fn topology_spread_constraint(c: corev1::TopologySpreadConstraint, path: &str) -> Result<Value> {
    let corev1::TopologySpreadConstraint {
        max_skew,
        topology_key,
        when_unsatisfiable,
        label_selector: selector,
        min_domains,
        node_affinity_policy,
        node_taints_policy,
        match_label_keys,
    } = c;
    Ok(Obj::new()
        .req_int("maxSkew", max_skew)
        .req_str("topologyKey", topology_key)
        .req_str("whenUnsatisfiable", when_unsatisfiable)
        .val("labelSelector", some(selector, path, "labelSelector", label_selector)?)
        .opt("minDomains", min_domains)
        .opt("nodeAffinityPolicy", node_affinity_policy)
        .opt("nodeTaintsPolicy", node_taints_policy)
        .strs("matchLabelKeys", match_label_keys)
        .done())
}

// ---- apps/v1 ----

/// apps/v1 `Deployment`.
fn deployment(d: appsv1::Deployment) -> Result<Value> {
    let appsv1::Deployment { metadata, spec, status } = d;
    Ok(Obj::new()
        .set("metadata", value(metadata, "", "metadata", object_meta)?)
        .set("spec", value(spec, "", "spec", deployment_spec)?)
        .set("status", value(status, "", "status", deployment_status)?)
        .done())
}

/// `DeploymentSpec`.
fn deployment_spec(s: appsv1::DeploymentSpec, path: &str) -> Result<Value> {
    let appsv1::DeploymentSpec {
        replicas,
        selector,
        template,
        strategy,
        min_ready_seconds,
        revision_history_limit,
        paused,
        progress_deadline_seconds,
    } = s;
    Ok(Obj::new()
        .opt("replicas", replicas)
        .val("selector", some(selector, path, "selector", label_selector)?)
        .set("template", value(template, path, "template", pod_template_spec)?)
        .set("strategy", value(strategy, path, "strategy", deployment_strategy)?)
        .int("minReadySeconds", min_ready_seconds)
        .opt("revisionHistoryLimit", revision_history_limit)
        .flag("paused", paused)
        .opt("progressDeadlineSeconds", progress_deadline_seconds)
        .done())
}

/// `DeploymentStrategy`.
fn deployment_strategy(s: appsv1::DeploymentStrategy, path: &str) -> Result<Value> {
    let appsv1::DeploymentStrategy { r#type, rolling_update } = s;
    let rolling_update = match rolling_update {
        None => None,
        Some(appsv1::RollingUpdateDeployment {
            max_unavailable,
            max_surge,
        }) => {
            let at = join(path, "rollingUpdate");
            Some(
                Obj::new()
                    .val(
                        "maxUnavailable",
                        some(max_unavailable, &at, "maxUnavailable", int_or_string)?,
                    )
                    .val("maxSurge", some(max_surge, &at, "maxSurge", int_or_string)?)
                    .done(),
            )
        }
    };
    Ok(Obj::new()
        .str("type", r#type)
        .val("rollingUpdate", rolling_update)
        .done())
}

/// `DeploymentStatus`.
fn deployment_status(s: appsv1::DeploymentStatus, path: &str) -> Result<Value> {
    let appsv1::DeploymentStatus {
        observed_generation,
        replicas,
        updated_replicas,
        ready_replicas,
        available_replicas,
        unavailable_replicas,
        terminating_replicas,
        conditions,
        collision_count,
    } = s;
    Ok(Obj::new()
        .int("observedGeneration", observed_generation)
        .int("replicas", replicas)
        .int("updatedReplicas", updated_replicas)
        .int("readyReplicas", ready_replicas)
        .int("availableReplicas", available_replicas)
        .int("unavailableReplicas", unavailable_replicas)
        .opt("terminatingReplicas", terminating_replicas)
        .list(
            "conditions",
            each(conditions, path, "conditions", deployment_condition)?,
        )
        .opt("collisionCount", collision_count)
        .done())
}

/// `DeploymentCondition`.
fn deployment_condition(c: appsv1::DeploymentCondition, path: &str) -> Result<Value> {
    let appsv1::DeploymentCondition {
        r#type,
        status,
        last_update_time,
        last_transition_time,
        reason,
        message,
    } = c;
    Ok(Obj::new()
        .req_str("type", r#type)
        .req_str("status", status)
        .set("lastUpdateTime", time(last_update_time, &join(path, "lastUpdateTime"))?)
        .set(
            "lastTransitionTime",
            time(last_transition_time, &join(path, "lastTransitionTime"))?,
        )
        .str("reason", reason)
        .str("message", message)
        .done())
}

// ---- batch/v1 ----

/// batch/v1 `Job`.
fn job(j: batchv1::Job) -> Result<Value> {
    let batchv1::Job { metadata, spec, status } = j;
    Ok(Obj::new()
        .set("metadata", value(metadata, "", "metadata", object_meta)?)
        .set("spec", value(spec, "", "spec", job_spec)?)
        .set("status", value(status, "", "status", job_status)?)
        .done())
}

/// `JobSpec`. `podFailurePolicy` and `successPolicy` answer 415.
fn job_spec(s: batchv1::JobSpec, path: &str) -> Result<Value> {
    let batchv1::JobSpec {
        parallelism,
        completions,
        active_deadline_seconds,
        pod_failure_policy,
        success_policy,
        backoff_limit,
        backoff_limit_per_index,
        max_failed_indexes,
        selector,
        manual_selector,
        template,
        ttl_seconds_after_finished,
        completion_mode,
        suspend,
        pod_replacement_policy,
        managed_by,
    } = s;
    deny(path, "podFailurePolicy", &pod_failure_policy)?;
    deny(path, "successPolicy", &success_policy)?;
    Ok(Obj::new()
        .opt("parallelism", parallelism)
        .opt("completions", completions)
        .opt("activeDeadlineSeconds", active_deadline_seconds)
        .opt("backoffLimit", backoff_limit)
        .opt("backoffLimitPerIndex", backoff_limit_per_index)
        .opt("maxFailedIndexes", max_failed_indexes)
        .val("selector", some(selector, path, "selector", label_selector)?)
        .opt("manualSelector", manual_selector)
        .set("template", value(template, path, "template", pod_template_spec)?)
        .opt("ttlSecondsAfterFinished", ttl_seconds_after_finished)
        .opt("completionMode", completion_mode)
        .opt("suspend", suspend)
        .opt("podReplacementPolicy", pod_replacement_policy)
        .opt("managedBy", managed_by)
        .done())
}

/// `JobStatus`.
fn job_status(s: batchv1::JobStatus, path: &str) -> Result<Value> {
    let batchv1::JobStatus {
        conditions,
        start_time,
        completion_time,
        active,
        succeeded,
        failed,
        terminating,
        completed_indexes,
        failed_indexes,
        uncounted_terminated_pods,
        ready,
    } = s;
    let uncounted = uncounted_terminated_pods.map(|u| {
        let batchv1::UncountedTerminatedPods { succeeded, failed } = u;
        Obj::new().strs("succeeded", succeeded).strs("failed", failed).done()
    });
    Ok(Obj::new()
        .list("conditions", each(conditions, path, "conditions", job_condition)?)
        .val("startTime", opt_time(start_time, &join(path, "startTime"))?)
        .val(
            "completionTime",
            opt_time(completion_time, &join(path, "completionTime"))?,
        )
        .int("active", active)
        .int("succeeded", succeeded)
        .int("failed", failed)
        .opt("terminating", terminating)
        .str("completedIndexes", completed_indexes)
        .opt("failedIndexes", failed_indexes)
        .val("uncountedTerminatedPods", uncounted)
        .opt("ready", ready)
        .done())
}

/// `JobCondition`.
fn job_condition(c: batchv1::JobCondition, path: &str) -> Result<Value> {
    let batchv1::JobCondition {
        r#type,
        status,
        last_probe_time,
        last_transition_time,
        reason,
        message,
    } = c;
    Ok(Obj::new()
        .req_str("type", r#type)
        .req_str("status", status)
        .set("lastProbeTime", time(last_probe_time, &join(path, "lastProbeTime"))?)
        .set(
            "lastTransitionTime",
            time(last_transition_time, &join(path, "lastTransitionTime"))?,
        )
        .str("reason", reason)
        .str("message", message)
        .done())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Wrap `obj` the way client-go does: magic, then a `runtime.Unknown` with empty encoding and content type.
    fn body<T: Message>(api_version: &str, kind: &str, obj: &T) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(obj.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    /// ObjectMeta as gogo protobuf writes it from Go: every value-type field present, even when empty.
    fn meta(name: &str, labels: &[(&str, &str)]) -> metav1::ObjectMeta {
        metav1::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(metav1::Time::default()),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    /// A container as `kubectl create deployment|job` builds it, value-type fields present and empty.
    fn kubectl_container(name: &str, image: &str) -> corev1::Container {
        corev1::Container {
            name: Some(name.into()),
            image: Some(image.into()),
            working_dir: Some(String::new()),
            resources: Some(corev1::ResourceRequirements::default()),
            termination_message_path: Some(String::new()),
            termination_message_policy: Some(String::new()),
            image_pull_policy: Some(String::new()),
            stdin: Some(false),
            stdin_once: Some(false),
            tty: Some(false),
            ..Default::default()
        }
    }

    fn pod_spec(containers: Vec<corev1::Container>) -> corev1::PodSpec {
        corev1::PodSpec {
            containers,
            restart_policy: Some(String::new()),
            dns_policy: Some(String::new()),
            service_account_name: Some(String::new()),
            service_account: Some(String::new()),
            node_name: Some(String::new()),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            hostname: Some(String::new()),
            subdomain: Some(String::new()),
            scheduler_name: Some(String::new()),
            priority_class_name: Some(String::new()),
            ..Default::default()
        }
    }

    fn status_of(body: &[u8]) -> (u16, String) {
        match decode(body) {
            Ok(v) => panic!("expected an error, decoded {v}"),
            Err(e) => (e.code, e.message),
        }
    }

    #[test]
    fn deployment_like_kubectl_create() {
        // kubectl create deployment d1 --image=busybox --port=80 --replicas=2
        let mut c = kubectl_container("busybox", "busybox");
        c.ports = vec![corev1::ContainerPort {
            name: Some(String::new()),
            host_port: Some(0),
            container_port: Some(80),
            protocol: Some(String::new()),
            host_ip: Some(String::new()),
        }];
        let d = appsv1::Deployment {
            metadata: Some(meta("d1", &[("app", "d1")])),
            spec: Some(appsv1::DeploymentSpec {
                replicas: Some(2),
                selector: Some(metav1::LabelSelector {
                    match_labels: [("app".to_string(), "d1".to_string())].into(),
                    match_expressions: vec![],
                }),
                template: Some(corev1::PodTemplateSpec {
                    metadata: Some(meta("", &[("app", "d1")])),
                    spec: Some(pod_spec(vec![c])),
                }),
                strategy: Some(appsv1::DeploymentStrategy {
                    r#type: Some(String::new()),
                    rolling_update: None,
                }),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(appsv1::DeploymentStatus {
                observed_generation: Some(0),
                replicas: Some(0),
                updated_replicas: Some(0),
                ready_replicas: Some(0),
                available_replicas: Some(0),
                unavailable_replicas: Some(0),
                ..Default::default()
            }),
        };
        let got = decode(&body("apps/v1", "Deployment", &d)).unwrap();
        assert_eq!(
            got,
            json!({
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": {"name": "d1", "creationTimestamp": null, "labels": {"app": "d1"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "d1"}},
                    "template": {
                        "metadata": {"creationTimestamp": null, "labels": {"app": "d1"}},
                        "spec": {"containers": [
                            {"name": "busybox", "image": "busybox", "ports": [{"containerPort": 80}], "resources": {}}
                        ]}
                    },
                    "strategy": {}
                },
                "status": {}
            })
        );
        // Go prints kind and apiVersion first.
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys[..2], ["kind", "apiVersion"]);
    }

    #[test]
    fn deployment_pod_template_fields() {
        let mut c = kubectl_container("web", "nginx:1.27");
        c.command = vec!["nginx".into()];
        c.args = vec!["-g".into(), "daemon off;".into()];
        c.image_pull_policy = Some("IfNotPresent".into());
        c.env = vec![
            corev1::EnvVar {
                name: Some("A".into()),
                value: Some("1".into()),
                value_from: None,
            },
            corev1::EnvVar {
                name: Some("POD_IP".into()),
                value: Some(String::new()),
                value_from: Some(corev1::EnvVarSource {
                    field_ref: Some(corev1::ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: Some("status.podIP".into()),
                    }),
                    ..Default::default()
                }),
            },
            corev1::EnvVar {
                name: Some("PASS".into()),
                value: None,
                value_from: Some(corev1::EnvVarSource {
                    secret_key_ref: Some(corev1::SecretKeySelector {
                        local_object_reference: Some(corev1::LocalObjectReference { name: Some("s".into()) }),
                        key: Some("password".into()),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
            corev1::EnvVar {
                name: Some("CPU".into()),
                value: None,
                value_from: Some(corev1::EnvVarSource {
                    resource_field_ref: Some(corev1::ResourceFieldSelector {
                        container_name: Some(String::new()),
                        resource: Some("limits.cpu".into()),
                        divisor: None,
                    }),
                    ..Default::default()
                }),
            },
        ];
        c.env_from = vec![corev1::EnvFromSource {
            prefix: Some(String::new()),
            config_map_ref: Some(corev1::ConfigMapEnvSource {
                local_object_reference: Some(corev1::LocalObjectReference {
                    name: Some("cm".into()),
                }),
                optional: None,
            }),
            secret_ref: None,
        }];
        c.resources = Some(corev1::ResourceRequirements {
            limits: [(
                "memory".to_string(),
                Quantity {
                    string: Some("128Mi".into()),
                },
            )]
            .into(),
            requests: [(
                "cpu".to_string(),
                Quantity {
                    string: Some("100m".into()),
                },
            )]
            .into(),
            claims: vec![],
        });
        c.volume_mounts = vec![corev1::VolumeMount {
            name: Some("data".into()),
            read_only: Some(true),
            mount_path: Some("/data".into()),
            sub_path: Some(String::new()),
            sub_path_expr: Some(String::new()),
            ..Default::default()
        }];
        c.readiness_probe = Some(corev1::Probe {
            handler: Some(corev1::ProbeHandler {
                http_get: Some(corev1::HttpGetAction {
                    path: Some("/healthz".into()),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("http".into()),
                    }),
                    host: Some(String::new()),
                    scheme: Some("HTTP".into()),
                    http_headers: vec![],
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(0),
            timeout_seconds: Some(1),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            termination_grace_period_seconds: None,
        });
        c.liveness_probe = Some(corev1::Probe {
            handler: Some(corev1::ProbeHandler {
                tcp_socket: Some(corev1::TcpSocketAction {
                    port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    host: Some(String::new()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        c.security_context = Some(corev1::SecurityContext {
            capabilities: Some(corev1::Capabilities {
                add: vec![],
                drop: vec!["ALL".into()],
            }),
            run_as_non_root: Some(true),
            run_as_user: Some(1000),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        });
        let mut spec = pod_spec(vec![c]);
        spec.restart_policy = Some("Always".into());
        spec.termination_grace_period_seconds = Some(30);
        spec.dns_policy = Some("ClusterFirst".into());
        spec.node_selector = [("disk".to_string(), "ssd".to_string())].into();
        spec.service_account_name = Some("builder".into());
        spec.automount_service_account_token = Some(false);
        spec.tolerations = vec![corev1::Toleration {
            key: Some("node.kubernetes.io/not-ready".into()),
            operator: Some("Exists".into()),
            value: Some(String::new()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
        }];
        spec.volumes = vec![
            corev1::Volume {
                name: Some("data".into()),
                volume_source: Some(corev1::VolumeSource {
                    empty_dir: Some(corev1::EmptyDirVolumeSource {
                        medium: Some(String::new()),
                        size_limit: Some(Quantity {
                            string: Some("1Gi".into()),
                        }),
                    }),
                    ..Default::default()
                }),
            },
            corev1::Volume {
                name: Some("cfg".into()),
                volume_source: Some(corev1::VolumeSource {
                    config_map: Some(corev1::ConfigMapVolumeSource {
                        local_object_reference: Some(corev1::LocalObjectReference {
                            name: Some("cm".into()),
                        }),
                        items: vec![corev1::KeyToPath {
                            key: Some("a".into()),
                            path: Some("a.txt".into()),
                            mode: None,
                        }],
                        default_mode: Some(420),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
            corev1::Volume {
                name: Some("sec".into()),
                volume_source: Some(corev1::VolumeSource {
                    secret: Some(corev1::SecretVolumeSource {
                        secret_name: Some("s".into()),
                        items: vec![],
                        default_mode: Some(256),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
            },
            corev1::Volume {
                name: Some("host".into()),
                volume_source: Some(corev1::VolumeSource {
                    host_path: Some(corev1::HostPathVolumeSource {
                        path: Some("/var/log".into()),
                        r#type: Some(String::new()),
                    }),
                    ..Default::default()
                }),
            },
        ];
        let d = appsv1::Deployment {
            metadata: Some(metav1::ObjectMeta {
                creation_timestamp: Some(metav1::Time {
                    seconds: Some(1_704_067_200),
                    nanos: Some(0),
                }),
                ..meta("web", &[])
            }),
            spec: Some(appsv1::DeploymentSpec {
                selector: Some(metav1::LabelSelector {
                    match_labels: Default::default(),
                    match_expressions: vec![metav1::LabelSelectorRequirement {
                        key: Some("tier".into()),
                        operator: Some("In".into()),
                        values: vec!["web".into(), "edge".into()],
                    }],
                }),
                template: Some(corev1::PodTemplateSpec {
                    metadata: Some(meta("", &[("tier", "web")])),
                    spec: Some(spec),
                }),
                strategy: Some(appsv1::DeploymentStrategy {
                    r#type: Some("RollingUpdate".into()),
                    rolling_update: Some(appsv1::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            r#type: Some(1),
                            int_val: None,
                            str_val: Some("25%".into()),
                        }),
                        max_surge: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(1),
                            str_val: None,
                        }),
                    }),
                }),
                revision_history_limit: Some(0),
                ..Default::default()
            }),
            status: None,
        };
        let got = decode(&body("apps/v1", "Deployment", &d)).unwrap();
        assert_eq!(got["metadata"]["creationTimestamp"], json!("2024-01-01T00:00:00Z"));
        assert_eq!(
            got["spec"]["selector"],
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}]})
        );
        assert_eq!(
            got["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}})
        );
        // A pointer set to zero is kept; an absent status is still printed, as Go prints a value-type struct.
        assert_eq!(got["spec"]["revisionHistoryLimit"], json!(0));
        assert_eq!(got["status"], json!({}));
        let pod = &got["spec"]["template"]["spec"];
        assert_eq!(
            *pod,
            json!({
                "volumes": [
                    {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a", "path": "a.txt"}],
                                                  "defaultMode": 420}},
                    {"name": "sec", "secret": {"secretName": "s", "defaultMode": 256, "optional": true}},
                    {"name": "host", "hostPath": {"path": "/var/log", "type": ""}}
                ],
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "command": ["nginx"],
                    "args": ["-g", "daemon off;"],
                    "envFrom": [{"configMapRef": {"name": "cm"}}],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password", "optional": false}}},
                        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}}}
                    ],
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "volumeMounts": [{"name": "data", "readOnly": true, "mountPath": "/data"}],
                    "livenessProbe": {"tcpSocket": {"port": 8080}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                       "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                                       "failureThreshold": 3},
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": 1000, "runAsNonRoot": true,
                                        "allowPrivilegeEscalation": false}
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "nodeSelector": {"disk": "ssd"},
                "serviceAccountName": "builder",
                "automountServiceAccountToken": false,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": 300}]
            })
        );
    }

    #[test]
    fn service_nodeport_like_kubectl_create() {
        // kubectl create service nodeport s1 --tcp=80:8080, plus a named target port and a fixed node port
        let port = |name: &str, port: i32, target: IntOrString, node_port: i32| corev1::ServicePort {
            name: Some(name.into()),
            protocol: Some("TCP".into()),
            app_protocol: None,
            port: Some(port),
            target_port: Some(target),
            node_port: Some(node_port),
        };
        let s = corev1::Service {
            metadata: Some(meta("s1", &[("app", "s1")])),
            spec: Some(corev1::ServiceSpec {
                ports: vec![
                    port(
                        "80-8080",
                        80,
                        IntOrString {
                            r#type: Some(0),
                            int_val: Some(8080),
                            str_val: Some(String::new()),
                        },
                        0,
                    ),
                    port(
                        "https",
                        443,
                        IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("https".into()),
                        },
                        30443,
                    ),
                ],
                selector: [("app".to_string(), "s1".to_string())].into(),
                cluster_ip: Some(String::new()),
                r#type: Some("NodePort".into()),
                session_affinity: Some(String::new()),
                load_balancer_ip: Some(String::new()),
                external_name: Some(String::new()),
                external_traffic_policy: Some(String::new()),
                health_check_node_port: Some(0),
                publish_not_ready_addresses: Some(false),
                ..Default::default()
            }),
            status: Some(corev1::ServiceStatus {
                load_balancer: Some(corev1::LoadBalancerStatus::default()),
                conditions: vec![],
            }),
        };
        assert_eq!(
            decode(&body("v1", "Service", &s)).unwrap(),
            json!({
                "kind": "Service", "apiVersion": "v1",
                "metadata": {"name": "s1", "creationTimestamp": null, "labels": {"app": "s1"}},
                "spec": {
                    "ports": [
                        {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                        {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https", "nodePort": 30443}
                    ],
                    "selector": {"app": "s1"},
                    "type": "NodePort"
                },
                "status": {"loadBalancer": {}}
            })
        );
    }

    #[test]
    fn service_externalname_and_clusterip_none() {
        let s = corev1::Service {
            metadata: Some(meta("ext", &[])),
            spec: Some(corev1::ServiceSpec {
                r#type: Some("ExternalName".into()),
                external_name: Some("example.com".into()),
                cluster_ip: Some("None".into()),
                cluster_ips: vec!["None".into()],
                external_ips: vec!["10.0.0.9".into()],
                load_balancer_ip: Some("10.0.0.10".into()),
                ..Default::default()
            }),
            status: None,
        };
        let got = decode(&body("v1", "Service", &s)).unwrap();
        assert_eq!(
            got["spec"],
            json!({"type": "ExternalName", "externalName": "example.com", "clusterIP": "None",
                   "clusterIPs": ["None"], "externalIPs": ["10.0.0.9"], "loadBalancerIP": "10.0.0.10"})
        );
        assert_eq!(got["status"], json!({"loadBalancer": {}}));
    }

    #[test]
    fn secret_with_binary_data() {
        // kubectl create secret generic s1 --from-file=bin=... --from-literal=k=v
        let s = corev1::Secret {
            metadata: Some(meta("s1", &[])),
            immutable: None,
            data: [("bin".to_string(), vec![0u8, 255, 1]), ("k".to_string(), b"v".to_vec())].into(),
            string_data: Default::default(),
            r#type: Some("Opaque".into()),
        };
        assert_eq!(
            decode(&body("v1", "Secret", &s)).unwrap(),
            json!({
                "kind": "Secret", "apiVersion": "v1",
                "metadata": {"name": "s1", "creationTimestamp": null},
                "data": {"bin": "AP8B", "k": "dg=="},
                "type": "Opaque"
            })
        );
    }

    #[test]
    fn config_map_with_binary_data_and_immutable_false() {
        let c = corev1::ConfigMap {
            metadata: Some(metav1::ObjectMeta {
                namespace: Some("team-a".into()),
                annotations: [("note".to_string(), "x".to_string())].into(),
                ..meta("c1", &[])
            }),
            immutable: Some(false),
            data: [("a".to_string(), "1".to_string())].into(),
            binary_data: [("b".to_string(), vec![0xde, 0xad, 0xbe, 0xef])].into(),
        };
        assert_eq!(
            decode(&body("v1", "ConfigMap", &c)).unwrap(),
            json!({
                "kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "c1", "namespace": "team-a", "creationTimestamp": null,
                             "annotations": {"note": "x"}},
                "immutable": false,
                "data": {"a": "1"},
                "binaryData": {"b": "3q2+7w=="}
            })
        );
    }

    #[test]
    fn namespace_like_kubectl_create() {
        let n = corev1::Namespace {
            metadata: Some(meta("ns1", &[])),
            spec: Some(corev1::NamespaceSpec::default()),
            status: Some(corev1::NamespaceStatus {
                phase: Some(String::new()),
                conditions: vec![],
            }),
        };
        assert_eq!(
            decode(&body("v1", "Namespace", &n)).unwrap(),
            json!({"kind": "Namespace", "apiVersion": "v1",
                   "metadata": {"name": "ns1", "creationTimestamp": null}, "spec": {}, "status": {}})
        );
    }

    #[test]
    fn job_like_kubectl_create() {
        // kubectl create job j1 --image=busybox -- echo hi
        let mut c = kubectl_container("j1", "busybox");
        c.command = vec!["echo".into(), "hi".into()];
        let mut spec = pod_spec(vec![c]);
        spec.restart_policy = Some("Never".into());
        let j = batchv1::Job {
            metadata: Some(metav1::ObjectMeta {
                owner_references: vec![metav1::OwnerReference {
                    api_version: Some("batch/v1".into()),
                    kind: Some("CronJob".into()),
                    name: Some("cj".into()),
                    uid: Some("u-1".into()),
                    controller: Some(true),
                    block_owner_deletion: None,
                }],
                ..meta("j1", &[])
            }),
            spec: Some(batchv1::JobSpec {
                template: Some(corev1::PodTemplateSpec {
                    metadata: Some(meta("", &[])),
                    spec: Some(spec),
                }),
                ..Default::default()
            }),
            status: Some(batchv1::JobStatus {
                active: Some(0),
                succeeded: Some(0),
                failed: Some(0),
                completed_indexes: Some(String::new()),
                ..Default::default()
            }),
        };
        assert_eq!(
            decode(&body("batch/v1", "Job", &j)).unwrap(),
            json!({
                "kind": "Job", "apiVersion": "batch/v1",
                "metadata": {"name": "j1", "creationTimestamp": null, "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj", "uid": "u-1", "controller": true}
                ]},
                "spec": {"template": {
                    "metadata": {"creationTimestamp": null},
                    "spec": {
                        "containers": [{"name": "j1", "image": "busybox", "command": ["echo", "hi"], "resources": {}}],
                        "restartPolicy": "Never"
                    }
                }},
                "status": {}
            })
        );
    }

    #[test]
    fn service_account_keeps_a_false_pointer() {
        let sa = corev1::ServiceAccount {
            metadata: Some(metav1::ObjectMeta {
                generate_name: Some("sa-".into()),
                finalizers: vec!["example.com/keep".into()],
                ..meta("", &[])
            }),
            secrets: vec![],
            image_pull_secrets: vec![corev1::LocalObjectReference {
                name: Some("regcred".into()),
            }],
            automount_service_account_token: Some(false),
        };
        assert_eq!(
            decode(&body("v1", "ServiceAccount", &sa)).unwrap(),
            json!({
                "kind": "ServiceAccount", "apiVersion": "v1",
                "metadata": {"generateName": "sa-", "creationTimestamp": null, "finalizers": ["example.com/keep"]},
                "imagePullSecrets": [{"name": "regcred"}],
                "automountServiceAccountToken": false
            })
        );
    }

    #[test]
    fn decode_body_routes_protobuf_here() {
        let sa = corev1::ServiceAccount {
            metadata: Some(meta("sa1", &[])),
            ..Default::default()
        };
        let v = super::super::request::decode_body(
            "application/vnd.kubernetes.protobuf",
            &bytes::Bytes::from(body("v1", "ServiceAccount", &sa)),
        )
        .unwrap();
        assert_eq!(v["metadata"]["name"], json!("sa1"));
    }

    #[test]
    fn rejects_malformed_bodies_with_400() {
        let (code, msg) = status_of(b"{\"kind\":\"Namespace\"}");
        assert_eq!(code, 400);
        assert!(msg.contains("magic"), "{msg}");
        assert_eq!(status_of(b"").0, 400);

        let (code, msg) = status_of(b"k8s\0\x0a\xff\xff\xff");
        assert_eq!(code, 400);
        assert!(msg.contains("runtime.Unknown"), "{msg}");

        // A well-formed envelope whose object is garbage.
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Namespace".into()),
            }),
            raw: Some(vec![0x0a, 0x05, 0x01]),
            content_encoding: None,
            content_type: None,
        };
        let mut b = MAGIC.to_vec();
        b.extend(unknown.encode_to_vec());
        let (code, msg) = status_of(&b);
        assert_eq!(code, 400);
        assert!(msg.contains("not a valid Namespace"), "{msg}");

        // No kind in the envelope.
        let mut b = MAGIC.to_vec();
        b.extend(Unknown::default().encode_to_vec());
        assert_eq!(status_of(&b).0, 400);

        // An IntOrString of an unknown type.
        let s = corev1::Service {
            spec: Some(corev1::ServiceSpec {
                ports: vec![corev1::ServicePort {
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(7),
                        int_val: None,
                        str_val: None,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let (code, msg) = status_of(&body("v1", "Service", &s));
        assert_eq!(code, 400);
        assert!(msg.contains("spec.ports[0].targetPort"), "{msg}");
    }

    #[test]
    fn unsupported_kind_is_415_naming_it() {
        let (code, msg) = status_of(&body("v1", "Pod", &corev1::Pod::default()));
        assert_eq!(code, 415);
        assert!(msg.contains("Pod") && msg.contains("v1"), "{msg}");
        let (code, msg) = status_of(&body("apps/v1beta1", "Deployment", &appsv1::Deployment::default()));
        assert_eq!(code, 415);
        assert!(msg.contains("apps/v1beta1"), "{msg}");
    }

    #[test]
    fn unsupported_envelope_encoding_is_415() {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Namespace".into()),
            }),
            raw: Some(vec![]),
            content_encoding: Some("gzip".into()),
            content_type: None,
        };
        let mut b = MAGIC.to_vec();
        b.extend(unknown.encode_to_vec());
        assert_eq!(status_of(&b).0, 415);
    }

    #[test]
    fn set_but_unconverted_fields_are_415() {
        let mut spec = pod_spec(vec![kubectl_container("c", "busybox")]);
        spec.affinity = Some(corev1::Affinity::default());
        let d = appsv1::Deployment {
            spec: Some(appsv1::DeploymentSpec {
                template: Some(corev1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(spec),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (code, msg) = status_of(&body("apps/v1", "Deployment", &d));
        assert_eq!(code, 415);
        assert_eq!(
            msg,
            "protobuf field spec.template.spec.affinity is not supported by keel yet: \
             send the object as JSON (kubectl create -f / apply -f)"
        );

        let mut spec = pod_spec(vec![kubectl_container("c", "busybox")]);
        spec.volumes = vec![corev1::Volume {
            name: Some("n".into()),
            volume_source: Some(corev1::VolumeSource {
                nfs: Some(corev1::NfsVolumeSource::default()),
                ..Default::default()
            }),
        }];
        let j = batchv1::Job {
            spec: Some(batchv1::JobSpec {
                template: Some(corev1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(spec),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (code, msg) = status_of(&body("batch/v1", "Job", &j));
        assert_eq!(code, 415);
        assert!(msg.contains("spec.template.spec.volumes[0].nfs"), "{msg}");

        let j = batchv1::Job {
            spec: Some(batchv1::JobSpec {
                pod_failure_policy: Some(batchv1::PodFailurePolicy::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (code, msg) = status_of(&body("batch/v1", "Job", &j));
        assert_eq!(code, 415);
        assert!(msg.contains("spec.podFailurePolicy"), "{msg}");
    }

    #[test]
    fn times_follow_metav1_time() {
        let t = |seconds: Option<i64>, nanos: Option<i32>| time(Some(metav1::Time { seconds, nanos }), "t").unwrap();
        assert_eq!(t(None, None), Value::Null);
        assert_eq!(t(Some(GO_ZERO_TIME_UNIX), Some(0)), Value::Null);
        assert_eq!(t(Some(0), None), json!("1970-01-01T00:00:00Z"));
        assert_eq!(t(Some(1_704_067_200), Some(999_999_999)), json!("2024-01-01T00:00:00Z"));
        assert_eq!(time(None, "t").unwrap(), Value::Null);
        assert!(
            time(
                Some(metav1::Time {
                    seconds: Some(i64::MAX),
                    nanos: None
                }),
                "t"
            )
            .is_err()
        );
    }
}
