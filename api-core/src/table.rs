//! Server-side printing: the `meta.k8s.io/v1` Table that kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Columns and cells follow Kubernetes' printers (`pkg/printers/internalversion/printers.go`, v1.32) so that
//! `kubectl get` and `kubectl get -o wide` print what they print against a real cluster. Like the API server,
//! every row carries all columns, the wide ones (priority 1) included; kubectl hides those without `-o wide`.
//! Kinds without a printer get the API server's default convertor: `Name` and `Created At`.
//!
//! Objects are read as they travel on the wire (`serde_json::Value`); fields the API server would have defaulted
//! (replicas, protocol, service type) are read with those defaults when absent.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::registry::ResourceDef;
use crate::selector::LabelSelector;

/// Errors from table options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `includeObject` is not `None`, `Metadata` or `Object`; the message is the API server's.
    #[error("unrecognized includeObject value: \"{0}\"")]
    UnrecognizedIncludeObject(String),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One column definition of a meta.k8s.io/v1 Table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column title as Kubernetes spells it (`Name`, `Nominated Node`); kubectl upper-cases it.
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `date`.
    pub type_: &'static str,
    /// `name` for the column holding the object's name, else empty.
    pub format: &'static str,
    /// Human-readable description (the API field's documentation).
    pub description: &'static str,
    /// 0 for columns kubectl always shows, 1 for those shown only with `-o wide`.
    pub priority: i32,
}

impl Column {
    const fn new(name: &'static str, type_: &'static str, description: &'static str) -> Self {
        Self {
            name,
            type_,
            format: "",
            description,
            priority: 0,
        }
    }

    /// This column only appears with `-o wide`.
    const fn wide(self) -> Self {
        Self { priority: 1, ..self }
    }

    /// This column holds the object name.
    const fn name_format(self) -> Self {
        Self { format: "name", ..self }
    }

    /// The `columnDefinitions` entry.
    pub fn to_value(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

// Column descriptions: the API field documentation the Kubernetes printers use (`SwaggerDoc()`), or the
// printers' own literal text.
const D_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const D_CREATED: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const D_CONTAINERS: &str = "Names of each container in the template.";
const D_IMAGES: &str = "Images referenced by each container in the template.";
const D_POD_IP: &str =
    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const D_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const D_NOMINATED: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const D_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
const D_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const D_LABEL_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
const D_RS_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_DS_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_READY_PODS: &str = "Number of the pod with ready state";
const D_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses";

/// The Name column every printer starts with.
const NAME: Column = Column::new("Name", "string", D_NAME).name_format();
/// The Age column.
const AGE: Column = Column::new("Age", "string", D_CREATED);
/// The wide Containers column of workload printers.
const CONTAINERS: Column = Column::new("Containers", "string", D_CONTAINERS).wide();
/// The wide Images column of workload printers.
const IMAGES: Column = Column::new("Images", "string", D_IMAGES).wide();

/// The columns for this kind, as Kubernetes' printer for it defines them (the default convertor's `Name`,
/// `Created At` for kinds without a printer).
pub fn columns(res: &ResourceDef) -> Vec<Column> {
    let c = Column::new;
    match (res.group, res.kind) {
        ("", "Pod") => vec![
            NAME,
            c("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            c("Status", "string", "The aggregate status of the containers in this pod."),
            c(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            c("IP", "string", D_POD_IP).wide(),
            c("Node", "string", D_NODE_NAME).wide(),
            c("Nominated Node", "string", D_NOMINATED).wide(),
            c("Readiness Gates", "string", D_READINESS_GATES).wide(),
        ],
        ("apps", "Deployment") => vec![
            NAME,
            c("Ready", "string", D_READY_PODS),
            c(
                "Up-to-date",
                "string",
                "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
            ),
            c(
                "Available",
                "string",
                "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            c("Selector", "string", D_LABEL_SELECTOR).wide(),
        ],
        ("apps", "ReplicaSet") => vec![
            NAME,
            c(
                "Desired",
                "integer",
                "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
            ),
            c(
                "Current",
                "integer",
                "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
            ),
            c("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
            AGE,
            CONTAINERS,
            IMAGES,
            c("Selector", "string", D_RS_SELECTOR).wide(),
        ],
        ("apps", "StatefulSet") => vec![NAME, c("Ready", "string", D_READY_PODS), AGE, CONTAINERS, IMAGES],
        ("apps", "DaemonSet") => vec![
            NAME,
            c(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
            ),
            c(
                "Current",
                "integer",
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
            ),
            c(
                "Ready",
                "integer",
                "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
            ),
            c("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
            c(
                "Available",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            ),
            c("Node Selector", "string", D_NODE_SELECTOR),
            AGE,
            CONTAINERS,
            IMAGES,
            c("Selector", "string", D_DS_SELECTOR).wide(),
        ],
        ("apps", "ControllerRevision") => vec![
            NAME,
            c("Controller", "string", "Controller of the object"),
            c("Revision", "string", "Revision indicates the revision of the state represented by Data."),
            AGE,
        ],
        ("batch", "Job") => vec![
            NAME,
            c("Status", "string", "Status of the job."),
            c(
                "Completions",
                "string",
                "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
            ),
            c("Duration", "string", "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            c("Selector", "string", D_JOB_SELECTOR).wide(),
        ],
        ("", "Service") => vec![
            NAME,
            c(
                "Type",
                "string",
                "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer.",
            ),
            c("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
            c(
                "External-IP",
                "string",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
            ),
            c(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
            ),
            AGE,
            c(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
            )
            .wide(),
        ],
        ("", "Node") => vec![
            NAME,
            c("Status", "string", "The status of the node"),
            c("Roles", "string", "The roles of the node"),
            AGE,
            c("Version", "string", "Kubelet Version reported by the node."),
            c("Internal-IP", "string", D_ADDRESSES).wide(),
            c("External-IP", "string", D_ADDRESSES).wide(),
            c("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).")
                .wide(),
            c("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).")
                .wide(),
            c(
                "Container-Runtime",
                "string",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            )
            .wide(),
        ],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            NAME,
            c(
                "AddressType",
                "string",
                "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation.",
            ),
            c("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
            c(
                "Endpoints",
                "string",
                "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
            ),
            AGE,
        ],
        ("", "Endpoints") => vec![
            NAME,
            c(
                "Endpoints",
                "string",
                "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share.",
            ),
            AGE,
        ],
        ("", "Namespace") => vec![NAME, c("Status", "string", "The status of the namespace"), AGE],
        ("", "ConfigMap") => vec![
            NAME,
            c(
                "Data",
                "string",
                "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'.",
            ),
            AGE,
        ],
        ("", "Secret") => vec![
            NAME,
            c(
                "Type",
                "string",
                "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
            ),
            c(
                "Data",
                "string",
                "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'.",
            ),
            AGE,
        ],
        ("", "ServiceAccount") => vec![
            NAME,
            c(
                "Secrets",
                "string",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ],
        ("", "Event") => vec![
            c("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
            c("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
            c(
                "Reason",
                "string",
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            c("Object", "string", "The object that this event is about."),
            c(
                "Subobject",
                "string",
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
            )
            .wide(),
            c("Source", "string", "The component reporting this event. Should be a short machine understandable string.")
                .wide(),
            c("Message", "string", "A human-readable description of the status of this operation."),
            c("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)")
                .wide(),
            c("Count", "string", "The number of times this event has occurred.").wide(),
            NAME.wide(),
        ],
        ("coordination.k8s.io", "Lease") => vec![
            NAME,
            c("Holder", "string", "holderIdentity contains the identity of the holder of a current lease."),
            AGE,
        ],
        _ => vec![NAME, Column::new("Created At", "date", D_CREATED)],
    }
}

/// The cells of one row, in [`columns`] order (wide columns included), as JSON strings and integers the way
/// Kubernetes prints them. Ages are relative to `now`.
pub fn row(res: &ResourceDef, obj: &Value, now: Timestamp) -> Vec<Value> {
    let o = Obj(obj);
    let name = Value::from(o.str("/metadata/name"));
    let age = Value::from(since(o.time("/metadata/creationTimestamp"), now));
    match (res.group, res.kind) {
        ("", "Pod") => pod_row(o, name, age, now),
        ("apps", "Deployment") => {
            let (containers, images) = container_cells(o.arr("/spec/template/spec/containers"));
            let selector = match LabelSelector::from_object(o.get("/spec/selector").unwrap_or(&Value::Null)) {
                Ok(s) => s.to_string(),
                Err(_) => "<invalid>".to_string(),
            };
            vec![
                name,
                format!("{}/{}", o.int("/status/readyReplicas"), o.int_or("/spec/replicas", 1)).into(),
                o.int("/status/updatedReplicas").into(),
                o.int("/status/availableReplicas").into(),
                age,
                containers.into(),
                images.into(),
                selector.into(),
            ]
        }
        ("apps", "ReplicaSet") => {
            let (containers, images) = container_cells(o.arr("/spec/template/spec/containers"));
            vec![
                name,
                o.int_or("/spec/replicas", 1).into(),
                o.int("/status/replicas").into(),
                o.int("/status/readyReplicas").into(),
                age,
                containers.into(),
                images.into(),
                format_label_selector(o.get("/spec/selector")).into(),
            ]
        }
        ("apps", "StatefulSet") => {
            let (containers, images) = container_cells(o.arr("/spec/template/spec/containers"));
            vec![
                name,
                format!("{}/{}", o.int("/status/readyReplicas"), o.int_or("/spec/replicas", 1)).into(),
                age,
                containers.into(),
                images.into(),
            ]
        }
        ("apps", "DaemonSet") => {
            let (containers, images) = container_cells(o.arr("/spec/template/spec/containers"));
            vec![
                name,
                o.int("/status/desiredNumberScheduled").into(),
                o.int("/status/currentNumberScheduled").into(),
                o.int("/status/numberReady").into(),
                o.int("/status/updatedNumberScheduled").into(),
                o.int("/status/numberAvailable").into(),
                format_labels(o.get("/spec/template/spec/nodeSelector")).into(),
                age,
                containers.into(),
                images.into(),
                format_label_selector(o.get("/spec/selector")).into(),
            ]
        }
        ("apps", "ControllerRevision") => {
            vec![name, controller_of(o).into(), o.int("/revision").into(), age]
        }
        ("batch", "Job") => job_row(o, name, age, now),
        ("", "Service") => service_row(o, name, age),
        ("", "Node") => node_row(o, name, age),
        ("discovery.k8s.io", "EndpointSlice") => vec![
            name,
            o.str("/addressType").into(),
            slice_ports(o.arr("/ports")).into(),
            slice_endpoints(o.arr("/endpoints")).into(),
            age,
        ],
        ("", "Endpoints") => vec![name, format_endpoints(o.arr("/subsets")).into(), age],
        ("", "Namespace") => vec![name, o.str("/status/phase").into(), age],
        ("", "ConfigMap") => vec![name, (o.len("/data") + o.len("/binaryData")).into(), age],
        ("", "Secret") => vec![name, o.str("/type").into(), o.len("/data").into(), age],
        ("", "ServiceAccount") => vec![name, o.arr("/secrets").len().into(), age],
        ("", "Event") => event_row(o, name, now),
        ("coordination.k8s.io", "Lease") => vec![name, o.str("/spec/holderIdentity").into(), age],
        _ => {
            // The default table convertor prints the creation time itself, in RFC 3339 (Go's zero time if unset).
            let created = o
                .time("/metadata/creationTimestamp")
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            vec![name, created.into()]
        }
    }
}

/// Checks an `includeObject` query value: `None`, `Metadata`, `Object`, or empty (meaning `Metadata`).
pub fn check_include_object(include_object: &str) -> Result<()> {
    match include_object {
        "" | "None" | "Metadata" | "Object" => Ok(()),
        other => Err(Error::UnrecognizedIncludeObject(other.to_string())),
    }
}

/// A whole meta.k8s.io/v1 Table for `objs`. Each row's `object` follows `include_object`: `None` leaves it out,
/// `Object` embeds the full object, and `Metadata` (the default, also for any unchecked value; see
/// [`check_include_object`]) embeds a `PartialObjectMetadata`. `resource_version` and `continue_token` go in the
/// Table's `metadata` when non-empty.
pub fn table(
    res: &ResourceDef,
    objs: &[Value],
    include_object: &str,
    resource_version: &str,
    continue_token: Option<&str>,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|obj| {
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(row(res, obj, now)));
            if let Some(conditions) = row_conditions(res, obj) {
                r.insert("conditions".into(), conditions);
            }
            match include_object {
                "None" => {}
                "Object" => {
                    r.insert("object".into(), obj.clone());
                }
                _ => {
                    r.insert(
                        "object".into(),
                        json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                        }),
                    );
                }
            }
            Value::Object(r)
        })
        .collect();
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), token.into());
    }
    let columns: Vec<Value> = columns(res).iter().map(Column::to_value).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Kubernetes' human duration (`duration.HumanDuration`): `5s`, `2m30s`, `10m`, `3h4m`, `9h`, `2d5h`, `45d`,
/// `3y12d`, `9y`; used for ages.
pub fn human_duration(d: Duration) -> String {
    human_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// [`human_duration`] over signed nanoseconds: a little clock skew reads `0s`, more reads `<invalid>`.
fn human_nanos(nanos: i128) -> String {
    const SEC: i128 = 1_000_000_000;
    // Integer division truncates toward zero, like Go's int(d.Seconds()) and d / time.Minute.
    let seconds = nanos / SEC;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / (60 * SEC);
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / (3600 * SEC);
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// `translateTimestampSince`: the human age of a timestamp, `<unknown>` when it is unset.
fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_nanos(now.duration_since(t).as_nanos()),
        None => "<unknown>".to_string(),
    }
}

// --- per-kind rows -----------------------------------------------------------------------------------------------

/// `printPod`: READY counts regular plus sidecar (restartable init) containers; STATUS walks init containers, then
/// containers from last to first, then deletion; RESTARTS carries when the last restart happened.
fn pod_row(o: Obj<'_>, name: Value, age: Value, now: Timestamp) -> Vec<Value> {
    let phase = o.str("/status/phase");
    let mut reason = phase.to_string();
    let status_reason = o.str("/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    let conditions = o.arr("/status/conditions");
    if conditions
        .iter()
        .any(|c| field(c, "type") == "PodScheduled" && field(c, "reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = o.arr("/spec/initContainers");
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| field(c, "name") == name && field(c, "restartPolicy") == "Always")
    };
    let total = o.arr("/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| field(c, "restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut initializing = false;
    for (i, c) in o.arr("/status/initContainerStatuses").iter().enumerate() {
        let c = Obj(c);
        restarts += c.int("/restartCount");
        let finished = c.time("/lastState/terminated/finishedAt");
        last_restart = last_restart.max(finished);
        let sidecar = is_sidecar(c.str("/name"));
        if sidecar {
            sidecar_restarts += c.int("/restartCount");
            last_sidecar_restart = last_sidecar_restart.max(finished);
        }
        let terminated = c.get("/state/terminated").is_some();
        let waiting_reason = c.str("/state/waiting/reason");
        if terminated && c.int("/state/terminated/exitCode") == 0 {
            continue;
        } else if sidecar && c.get("/started").and_then(Value::as_bool) == Some(true) {
            if c.get("/ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        } else if terminated {
            let r = c.str("/state/terminated/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if c.int("/state/terminated/signal") != 0 {
                format!("Init:Signal:{}", c.int("/state/terminated/signal"))
            } else {
                format!("Init:ExitCode:{}", c.int("/state/terminated/exitCode"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .find(|c| field(c, "type") == "Initialized")
        .is_some_and(|c| field(c, "status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in o.arr("/status/containerStatuses").iter().rev() {
            let c = Obj(c);
            restarts += c.int("/restartCount");
            last_restart = last_restart.max(c.time("/lastState/terminated/finishedAt"));
            let waiting_reason = c.str("/state/waiting/reason");
            let terminated_reason = c.str("/state/terminated/reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if c.get("/state/terminated").is_some() {
                reason = if c.int("/state/terminated/signal") != 0 {
                    format!("Signal:{}", c.int("/state/terminated/signal"))
                } else {
                    format!("ExitCode:{}", c.int("/state/terminated/exitCode"))
                };
            } else if c.get("/ready").and_then(Value::as_bool) == Some(true) && c.get("/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A container that completed while another still runs: the pod as a whole is still running.
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| field(c, "type") == "Ready" && field(c, "status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    let deleting = o.get("/metadata/deletionTimestamp").is_some();
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let pod_ip = match o.str("/status/podIPs/0/ip") {
        // The v1 conversion fills podIPs from podIP for objects that only carry the latter.
        "" => o.str("/status/podIP"),
        ip => ip,
    };
    let gates = o.arr("/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| field(c, "type") == field(g, "conditionType"))
                    .is_some_and(|c| field(c, "status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name,
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age,
        or_none(pod_ip).into(),
        or_none(o.str("/spec/nodeName")).into(),
        or_none(o.str("/status/nominatedNodeName")).into(),
        readiness_gates.into(),
    ]
}

/// `printJob`: STATUS from the conditions, COMPLETIONS as `succeeded/completions` (or `/1 of N` for work queues),
/// DURATION from start to completion (or to now while running).
fn job_row(o: Obj<'_>, name: Value, age: Value, now: Timestamp) -> Vec<Value> {
    let succeeded = o.int("/status/succeeded");
    let completions = match o.get("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = o.int("/spec/parallelism");
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (o.time("/status/startTime"), o.time("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_nanos(end.duration_since(start).as_nanos()),
    };
    let conditions = o.arr("/status/conditions");
    // hasJobCondition: the first condition of the type decides.
    let has = |t: &str| {
        conditions
            .iter()
            .find(|c| field(c, "type") == t)
            .is_some_and(|c| field(c, "status") == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o.get("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = container_cells(o.arr("/spec/template/spec/containers"));
    vec![
        name,
        status.into(),
        completions.into(),
        duration.into(),
        age,
        containers.into(),
        images.into(),
        format_label_selector(o.get("/spec/selector")).into(),
    ]
}

/// `printService`: the first cluster IP, external IPs by type, ports as `80/TCP` or `80:30080/TCP`.
fn service_row(o: Obj<'_>, name: Value, age: Value) -> Vec<Value> {
    // The API server defaults type and protocol; read them that way when a stored object lacks them.
    let svc_type = match o.str("/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    // clusterIPs is always set alongside clusterIP by the API server; fall back for objects that lack it.
    let cluster_ip = match o.str("/spec/clusterIPs/0") {
        "" => o.str("/spec/clusterIP"),
        ip => ip,
    };
    let external_ips: Vec<&str> = o.arr("/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            // The API server prints tables as wide, so the load balancer list is not clipped.
            let lb: BTreeSet<&str> = o
                .arr("/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| match (field(i, "ip"), field(i, "hostname")) {
                    ("", "") => None,
                    ("", host) => Some(host),
                    (ip, _) => Some(ip),
                })
                .collect();
            let mut all: Vec<&str> = lb.into_iter().collect();
            if !external_ips.is_empty() {
                all.extend(external_ips);
                all.join(",")
            } else if !all.is_empty() {
                all.join(",")
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => o.str("/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = o
        .arr("/spec/ports")
        .iter()
        .map(|p| {
            let p = Obj(p);
            let protocol = match p.str("/protocol") {
                "" => "TCP",
                proto => proto,
            };
            let node_port = p.int("/nodePort");
            if node_port > 0 {
                format!("{}:{node_port}/{protocol}", p.int("/port"))
            } else {
                format!("{}/{protocol}", p.int("/port"))
            }
        })
        .collect();
    vec![
        name,
        svc_type.into(),
        or_none(cluster_ip).into(),
        external.into(),
        or_none(&ports.join(",")).into(),
        age,
        format_labels(o.get("/spec/selector")).into(),
    ]
}

/// `printNode`: `Ready`/`NotReady`/`Unknown` from the Ready condition plus `SchedulingDisabled`, roles from
/// `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node_row(o: Obj<'_>, name: Value, age: Value) -> Vec<Value> {
    // Later duplicates of a condition type win, as in the printer's map.
    let ready = o
        .arr("/status/conditions")
        .iter()
        .rfind(|c| field(c, "type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if field(c, "status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if o.get("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = o.get("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let role = match k.strip_prefix("node-role.kubernetes.io/") {
                Some(role) => role,
                None if k == "kubernetes.io/role" => v.as_str().unwrap_or(""),
                None => continue,
            };
            if !role.is_empty() {
                roles.insert(role);
            }
        }
    }
    let roles: Vec<&str> = roles.into_iter().collect();
    let address = |t: &str| {
        o.arr("/status/addresses")
            .iter()
            .find(|a| field(a, "type") == t)
            .map(|a| field(a, "address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        name,
        status.join(",").into(),
        or_none(&roles.join(",")).into(),
        age,
        o.str("/status/nodeInfo/kubeletVersion").into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        unknown(o.str("/status/nodeInfo/osImage")).into(),
        unknown(o.str("/status/nodeInfo/kernelVersion")).into(),
        unknown(o.str("/status/nodeInfo/containerRuntimeVersion")).into(),
    ]
}

/// `printEvent` (wide): times fall back from lastTimestamp to firstTimestamp to eventTime, series override
/// count and last seen, OBJECT is `kind/name` in lower case.
fn event_row(o: Obj<'_>, name: Value, now: Timestamp) -> Vec<Value> {
    let first = match o.time("/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(o.time("/eventTime"), now),
    };
    let mut last = match o.time("/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = o.int("/count");
    if o.get("/series").is_some_and(Value::is_object) {
        last = since(o.time("/series/lastObservedTime"), now);
        count = o.int("/series/count");
    } else if count == 0 {
        // Singleton events of the events.k8s.io API carry no count.
        count = 1;
    }
    let kind = o.str("/involvedObject/kind").to_lowercase();
    let target = match o.str("/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = first_non_empty(o.str("/source/component"), o.str("/reportingComponent"));
    let instance = first_non_empty(o.str("/source/host"), o.str("/reportingInstance"));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        o.str("/type").into(),
        o.str("/reason").into(),
        target.into(),
        o.str("/involvedObject/fieldPath").into(),
        source.into(),
        o.str("/message").trim().into(),
        first.into(),
        count.into(),
        name,
    ]
}

/// Row conditions the pod printer attaches: `Completed` for pods that succeeded or failed.
fn row_conditions(res: &ResourceDef, obj: &Value) -> Option<Value> {
    if !(res.group.is_empty() && res.kind == "Pod") {
        return None;
    }
    let (reason, message) = match Obj(obj).str("/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

// --- cell helpers ------------------------------------------------------------------------------------------------

/// `layoutContainerCells`: container names and images, each joined by `,`.
fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| field(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| field(c, "image")).collect();
    (names.join(","), images.join(","))
}

/// `metav1.FormatLabelSelector` of a `metav1.LabelSelector` object (`<error>` when it does not convert).
fn format_label_selector(v: Option<&Value>) -> String {
    match LabelSelector::from_object(v.unwrap_or(&Value::Null)) {
        Ok(s) => s.to_string_form(),
        Err(_) => "<error>".to_string(),
    }
}

/// `labels.FormatLabels` of a string map: `k=v` sorted by key, joined by `,`, `<none>` when empty.
fn format_labels(v: Option<&Value>) -> String {
    let Some(map) = v.and_then(Value::as_object) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<(&str, &str)> = map
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    pairs.sort_unstable();
    let s: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    or_none(&s.join(",")).to_string()
}

/// The controller owner as `kind.group/name` in lower case (`<none>` without a controller reference).
fn controller_of(o: Obj<'_>) -> String {
    let Some(owner) = o
        .arr("/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
    else {
        return "<none>".to_string();
    };
    let kind = field(owner, "kind");
    let name = field(owner, "name");
    let group = match field(owner, "apiVersion").split_once('/') {
        Some((group, _)) => group,
        None => "",
    };
    if kind.is_empty() && group.is_empty() {
        return name.to_string();
    }
    let group_kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    format!("{}/{name}", group_kind.to_lowercase())
}

/// `formatEndpoints`: up to three `ip:port` (or bare IPs for port-less subsets), then `+ N more...`.
fn format_endpoints(subsets: &[Value]) -> String {
    const MAX: usize = 3;
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let ss = Obj(ss);
        let addresses = ss.arr("/addresses");
        let ports = ss.arr("/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(field(a, "ip").to_string());
            }
            continue;
        }
        for port in ports {
            let port = Obj(port).int("/port");
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(field(a, "ip"), port));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

/// `net.JoinHostPort`: IPv6 hosts in brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatDiscoveryPorts`: port numbers, else names, else `*`; at most three.
fn slice_ports(ports: &[Value]) -> String {
    let items = ports.iter().map(|p| {
        match (
            p.get("port").and_then(Value::as_i64),
            p.get("name").and_then(Value::as_str),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        }
    });
    list_with_more(items.collect())
}

/// `formatDiscoveryEndpoints`: the endpoints' addresses; at most three.
fn slice_endpoints(endpoints: &[Value]) -> String {
    let items = endpoints
        .iter()
        .flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        })
        .map(|a| a.as_str().unwrap_or("").to_string());
    list_with_more(items.collect())
}

/// `listWithMoreString`: the first three joined by `,` and `+ N more...`, or `<unset>` when empty.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    let count = items.len();
    let ret = items.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// A string field of a JSON object, `""` when absent or not a string.
fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Read-only accessors over a wire object by JSON pointer; absent or mistyped fields read as zero values.
#[derive(Clone, Copy)]
struct Obj<'a>(&'a Value);

impl<'a> Obj<'a> {
    /// The value at a pointer, treating `null` as absent.
    fn get(self, ptr: &str) -> Option<&'a Value> {
        self.0.pointer(ptr).filter(|v| !v.is_null())
    }

    fn str(self, ptr: &str) -> &'a str {
        self.get(ptr).and_then(Value::as_str).unwrap_or("")
    }

    fn int(self, ptr: &str) -> i64 {
        self.int_or(ptr, 0)
    }

    fn int_or(self, ptr: &str, default: i64) -> i64 {
        self.get(ptr).and_then(Value::as_i64).unwrap_or(default)
    }

    fn arr(self, ptr: &str) -> &'a [Value] {
        self.get(ptr)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The number of entries of an object-valued field (`len(map)`).
    fn len(self, ptr: &str) -> usize {
        self.get(ptr).and_then(Value::as_object).map_or(0, Map::len)
    }

    /// An RFC 3339 timestamp; unset, unparsable and Go's zero time all read as `None` (`IsZero`).
    fn time(self, ptr: &str) -> Option<Timestamp> {
        const GO_ZERO_TIME: i64 = -62_135_596_800;
        self.get(ptr)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok())
            .filter(|t| t.as_second() != GO_ZERO_TIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::by_kind;

    fn res(api_version: &str, kind: &str) -> &'static ResourceDef {
        by_kind(api_version, kind).expect("kind registered")
    }

    fn now() -> Timestamp {
        "2025-01-01T12:00:00Z".parse().expect("valid timestamp")
    }

    /// The RFC 3339 time `secs` seconds before [`now`].
    fn ago(secs: i64) -> String {
        let t = now()
            .checked_sub(jiff::SignedDuration::from_secs(secs))
            .expect("in range");
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn names(res: &ResourceDef) -> Vec<&'static str> {
        columns(res).iter().map(|c| c.name).collect()
    }

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(300)},
            "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "busybox"}]},
            "status": status,
        })
    }

    fn pod_cells(p: &Value) -> Vec<Value> {
        let cells = row(res("v1", "Pod"), p, now());
        assert_eq!(cells.len(), columns(res("v1", "Pod")).len(), "one cell per column");
        cells
    }

    #[test]
    fn human_duration_boundaries() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 4 * 60, "3h4m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (53 * 3600, "2d5h"),
            (8 * 86400, "8d"),
            (45 * 86400, "45d"),
            (2 * 365 * 86400 - 1, "729d"),
            (2 * 365 * 86400, "2y"),
            (3 * 365 * 86400 + 12 * 86400, "3y12d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(human_nanos(-1_500_000_000), "0s");
        assert_eq!(human_nanos(-2_000_000_000), "<invalid>");
        assert_eq!(since(None, now()), "<unknown>");
    }

    #[test]
    fn pod_columns_and_running_pod() {
        assert_eq!(
            names(res("v1", "Pod")),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        let cols = columns(res("v1", "Pod"));
        assert_eq!((cols[0].format, cols[5].priority, cols[4].priority), ("name", 1, 0));
        let running = pod(json!({
            "phase": "Running",
            "podIP": "10.0.0.7",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "side", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}},
            ],
        }));
        let mut p = running.clone();
        p["spec"]["nodeName"] = json!("node-1");
        assert_eq!(
            pod_cells(&p),
            vec![
                json!("web"),
                json!("2/2"),
                json!("Running"),
                json!("2 (5m ago)"),
                json!("5m"),
                json!("10.0.0.7"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pod_status_reasons() {
        let status = |p: Value| pod_cells(&p)[2].clone();
        assert_eq!(status(pod(json!({"phase": "Pending"}))), "Pending");
        let crash = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},
            {"name": "side", "ready": true, "restartCount": 0, "state": {"running": {}}},
        ]}));
        let cells = pod_cells(&crash);
        assert_eq!(
            (cells[1].clone(), cells[2].clone(), cells[3].clone()),
            (json!("1/2"), json!("CrashLoopBackOff"), json!("5 (30s ago)"))
        );
        let completed = pod(json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        ]}));
        assert_eq!(status(completed.clone()), "Completed");
        let t = table(res("v1", "Pod"), &[completed], "None", "", None, now());
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
        assert!(t["rows"][0].get("object").is_none());
        let signal = pod(json!({"phase": "Failed", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}},
        ]}));
        assert_eq!(status(signal), "Signal:9");
        let mut init = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "init-a", "state": {"terminated": {"exitCode": 0}}},
            {"name": "init-b", "state": {"running": {}}},
        ]}));
        init["spec"]["initContainers"] = json!([{"name": "init-a"}, {"name": "init-b"}, {"name": "init-c"}]);
        assert_eq!(status(init.clone()), "Init:1/3");
        init["status"]["initContainerStatuses"][1]["state"] = json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert_eq!(status(init.clone()), "Init:ImagePullBackOff");
        init["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2}});
        assert_eq!(status(init), "Init:ExitCode:2");
        let mut terminating = pod(json!({"phase": "Running"}));
        terminating["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(status(terminating), "Terminating");
        let gated = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(status(gated), "SchedulingGated");
        let still_running = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": true, "state": {"running": {}}},
            {"name": "side", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        ]}));
        assert_eq!(status(still_running), "NotReady");
    }

    #[test]
    fn pod_with_sidecar_counts_it_ready() {
        let mut p = pod(
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
            "containerStatuses": [
                {"name": "app", "ready": true, "state": {"running": {}}},
                {"name": "side", "ready": true, "state": {"running": {}}},
            ]}),
        );
        p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        p["spec"]["readinessGates"] = json!([{"conditionType": "Ready"}, {"conditionType": "example.com/lb"}]);
        let cells = pod_cells(&p);
        assert_eq!(
            (cells[1].clone(), cells[2].clone(), cells[3].clone()),
            (json!("3/3"), json!("Running"), json!("1"))
        );
        assert_eq!(cells[8], "1/2");
    }

    #[test]
    fn deployment_row() {
        let d = res("apps/v1", "Deployment");
        assert_eq!(
            names(d),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let obj = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(3 * 86400)},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}},
            },
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            row(d, &obj, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3d"),
                json!("nginx,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web")
            ]
        );
    }

    #[test]
    fn node_port_service_row() {
        let s = res("v1", "Service");
        assert_eq!(
            names(s),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        let obj = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(90)},
            "spec": {
                "type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"tier": "front", "app": "web"},
            },
        });
        assert_eq!(
            row(s, &obj, now()),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("90s"),
                json!("app=web,tier=front")
            ]
        );
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        let cells = row(s, &headless, now());
        assert_eq!(
            (
                cells[1].clone(),
                cells[2].clone(),
                cells[4].clone(),
                cells[5].clone(),
                cells[6].clone()
            ),
            (
                json!("ClusterIP"),
                json!("None"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>")
            )
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}});
        assert_eq!(row(s, &lb, now())[3], "<pending>");
    }

    #[test]
    fn node_row_shows_status_roles_and_addresses() {
        let n = res("v1", "Node");
        assert_eq!(
            names(n),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        let obj = json!({
            "metadata": {"name": "n1", "creationTimestamp": ago(10 * 86400),
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"},
            },
        });
        assert_eq!(
            row(n, &obj, now()),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,edge,worker"),
                json!("10d"),
                json!("v1.32.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0"),
                json!("containerd://1.7.0"),
            ]
        );
        let bare = row(
            n,
            &json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            now(),
        );
        assert_eq!(
            (bare[1].clone(), bare[2].clone(), bare[3].clone(), bare[7].clone()),
            (
                json!("NotReady"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>")
            )
        );
        assert_eq!(row(n, &json!({"metadata": {"name": "n3"}}), now())[1], "Unknown");
    }

    #[test]
    fn other_kinds() {
        let rs = json!({"metadata": {"name": "web-abc"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            row(res("apps/v1", "ReplicaSet"), &rs, now())[1..4],
            [json!(2), json!(2), json!(1)]
        );
        let job = json!({"metadata": {"name": "pi"}, "spec": {"completions": 1, "parallelism": 1},
            "status": {"succeeded": 1, "startTime": ago(100), "completionTime": ago(40), "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            names(res("batch/v1", "Job"))[..5],
            ["Name", "Status", "Completions", "Duration", "Age"]
        );
        assert_eq!(
            row(res("batch/v1", "Job"), &job, now())[1..4],
            [json!("Complete"), json!("1/1"), json!("60s")]
        );
        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Pulled", "message": " pulled \n",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": ago(600), "lastTimestamp": ago(60), "count": 3});
        assert_eq!(
            row(res("v1", "Event"), &ev, now()),
            vec![
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, n1"),
                json!("pulled"),
                json!("10m"),
                json!(3),
                json!("web.1")
            ]
        );
        let es = json!({"metadata": {"name": "web-x"}, "addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]}]});
        assert_eq!(
            row(res("discovery.k8s.io/v1", "EndpointSlice"), &es, now())[1..4],
            [
                json!("IPv4"),
                json!("80,dns"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...")
            ]
        );
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 8080}]}]});
        assert_eq!(
            row(res("v1", "Endpoints"), &ep, now())[1],
            "10.0.0.1:8080,[fd00::1]:8080"
        );
        assert_eq!(
            row(res("v1", "Endpoints"), &json!({"metadata": {"name": "x"}}), now())[1],
            "<none>"
        );
        let cr = json!({"metadata": {"name": "web-7d9", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "web", "controller": true}]}, "revision": 2});
        assert_eq!(
            row(res("apps/v1", "ControllerRevision"), &cr, now())[1..3],
            [json!("daemonset.apps/web"), json!(2)]
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": "Ag=="}});
        assert_eq!(row(res("v1", "ConfigMap"), &cm, now())[1], 2);
        let sec = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}});
        assert_eq!(row(res("v1", "Secret"), &sec, now())[1..3], [json!("Opaque"), json!(1)]);
        let ds = json!({"metadata": {"name": "d"}, "spec": {"selector": {}, "template": {"spec": {"containers": []}}}, "status": {"desiredNumberScheduled": 2}});
        let cells = row(res("apps/v1", "DaemonSet"), &ds, now());
        assert_eq!(
            (cells[1].clone(), cells[6].clone(), cells[10].clone()),
            (json!(2), json!("<none>"), json!("<none>"))
        );
        let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "kcm-1"}});
        assert_eq!(row(res("coordination.k8s.io/v1", "Lease"), &lease, now())[1], "kcm-1");
    }

    #[test]
    fn whole_table_shape() {
        let ns = res("v1", "Namespace");
        let objs = [json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "creationTimestamp": ago(7200), "resourceVersion": "5"}, "status": {"phase": "Active"}})];
        let t = table(ns, &objs, "Metadata", "42", Some("tok"), now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42", "continue": "tok"}));
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][1]["priority"], 0);
        assert_eq!(t["rows"][0]["cells"], json!(["default", "Active", "120m"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["resourceVersion"], "5");
        let full = table(ns, &objs, "Object", "", None, now());
        assert_eq!(full["rows"][0]["object"], objs[0]);
        assert_eq!(full["metadata"], json!({}));
        assert!(check_include_object("Object").is_ok());
        assert_eq!(
            check_include_object("All").expect_err("unknown value").to_string(),
            "unrecognized includeObject value: \"All\""
        );
        let empty = table(ns, &[], "", "1", None, now());
        assert_eq!(empty["rows"], json!([]));
    }
}
