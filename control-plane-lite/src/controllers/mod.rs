//! Controllers run in-process on the API: each watches informers, queues keys, and reconciles one key at a time by
//! reading caches and writing through the API's own verbs (so every write is admitted and validated as a client's).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_core::registry::{self, ResourceDef};
use tokio::sync::mpsc;

use crate::api::Api;

pub mod daemonset;
pub mod deployment;
pub mod endpointslice;
pub mod informer;
pub mod job;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod scheduler;
pub mod serviceaccounts;
pub mod statefulset;

pub use informer::{Change, Informer, key_of};

/// A de-duplicating work queue of object keys (`namespace/name`).
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashSet<String>>>,
}

/// The receiving end of a [`Queue`].
pub struct QueueRx {
    rx: mpsc::UnboundedReceiver<String>,
    pending: Arc<Mutex<HashSet<String>>>,
}

impl Queue {
    /// A new queue.
    pub fn new() -> (Self, QueueRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(HashSet::new()));
        (
            Self {
                tx,
                pending: pending.clone(),
            },
            QueueRx { rx, pending },
        )
    }

    /// Queue a key unless it is already waiting.
    pub fn add(&self, key: String) {
        if self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            let _ = self.tx.send(key);
        }
    }

    /// Queue a key after a delay.
    pub fn add_after(&self, key: String, delay: Duration) {
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }
}

impl QueueRx {
    /// The next key to work on.
    pub async fn next(&mut self) -> Option<String> {
        let key = self.rx.recv().await?;
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        Some(key)
    }
}

/// The resource definition of a kind; every kind controllers use is in the registry.
pub fn res(api_version: &str, kind: &str) -> &'static ResourceDef {
    registry::by_kind(api_version, kind).unwrap_or(&registry::RESOURCES[0])
}

/// Run `reconcile` for every queued key until the queue closes. An `Err` requeues the key with backoff (1 s
/// doubling to 60 s); `Ok(Some(d))` requeues after `d`.
pub async fn run_worker<F, Fut>(name: &'static str, queue: Queue, mut rx: QueueRx, reconcile: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<Duration>, String>>,
{
    let mut failures: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    while let Some(key) = rx.next().await {
        match reconcile(key.clone()).await {
            Ok(requeue) => {
                failures.remove(&key);
                if let Some(d) = requeue {
                    queue.add_after(key, d);
                }
            }
            Err(e) => {
                let n = failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let delay = Duration::from_secs(1u64 << (*n - 1).min(6)).min(Duration::from_secs(60));
                tracing::warn!(controller = name, key = %key, error = %e, retry_in = ?delay, "reconcile failed");
                queue.add_after(key, delay);
            }
        }
    }
}

/// Shared informers, started once and used by every controller.
pub struct Informers {
    /// Pods.
    pub pods: Arc<Informer>,
    /// Services.
    pub services: Arc<Informer>,
    /// EndpointSlices.
    pub endpointslices: Arc<Informer>,
    /// Endpoints (legacy).
    pub endpoints: Arc<Informer>,
    /// Namespaces.
    pub namespaces: Arc<Informer>,
    /// Nodes.
    pub nodes: Arc<Informer>,
    /// Leases (node heartbeats live in kube-node-lease).
    pub leases: Arc<Informer>,
    /// Deployments.
    pub deployments: Arc<Informer>,
    /// ReplicaSets.
    pub replicasets: Arc<Informer>,
    /// StatefulSets.
    pub statefulsets: Arc<Informer>,
    /// DaemonSets.
    pub daemonsets: Arc<Informer>,
    /// ControllerRevisions.
    pub controllerrevisions: Arc<Informer>,
    /// Jobs.
    pub jobs: Arc<Informer>,
    /// ServiceAccounts.
    pub serviceaccounts: Arc<Informer>,
}

impl Informers {
    /// Start the informers and wait until each has listed once.
    pub async fn start(api: &Arc<Api>) -> Arc<Self> {
        let s = Self {
            pods: Informer::spawn(api, res("v1", "Pod")),
            services: Informer::spawn(api, res("v1", "Service")),
            endpointslices: Informer::spawn(api, res("discovery.k8s.io/v1", "EndpointSlice")),
            endpoints: Informer::spawn(api, res("v1", "Endpoints")),
            namespaces: Informer::spawn(api, res("v1", "Namespace")),
            nodes: Informer::spawn(api, res("v1", "Node")),
            leases: Informer::spawn(api, res("coordination.k8s.io/v1", "Lease")),
            deployments: Informer::spawn(api, res("apps/v1", "Deployment")),
            replicasets: Informer::spawn(api, res("apps/v1", "ReplicaSet")),
            statefulsets: Informer::spawn(api, res("apps/v1", "StatefulSet")),
            daemonsets: Informer::spawn(api, res("apps/v1", "DaemonSet")),
            controllerrevisions: Informer::spawn(api, res("apps/v1", "ControllerRevision")),
            jobs: Informer::spawn(api, res("batch/v1", "Job")),
            serviceaccounts: Informer::spawn(api, res("v1", "ServiceAccount")),
        };
        for i in [
            &s.pods,
            &s.services,
            &s.endpointslices,
            &s.endpoints,
            &s.namespaces,
            &s.nodes,
            &s.leases,
            &s.deployments,
            &s.replicasets,
            &s.statefulsets,
            &s.daemonsets,
            &s.controllerrevisions,
            &s.jobs,
            &s.serviceaccounts,
        ] {
            i.synced().await;
        }
        Arc::new(s)
    }
}

/// Forward an informer's changes into a queue, mapping each change to the keys to reconcile.
pub fn feed(informer: &Informer, queue: Queue, keys: impl Fn(&Change) -> Vec<String> + Send + 'static) {
    let mut rx = informer.subscribe();
    tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            for k in keys(&change) {
                queue.add(k);
            }
        }
    });
}

/// Record a core/v1 Event about `involved` (type `Normal` or `Warning`), as `kubectl describe` shows them.
/// Repeats of the same reason and message on the same object bump `count` instead of creating a new Event.
pub async fn event(api: &Api, involved: &serde_json::Value, type_: &str, reason: &str, message: &str, component: &str) {
    use crate::api::object::meta_str;
    use crate::api::request::Query;
    use crate::api::route::ResourcePath;
    use serde_json::json;

    let ns = meta_str(involved, "namespace")
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    let name = meta_str(involved, "name").unwrap_or("").to_string();
    let uid = meta_str(involved, "uid").unwrap_or("").to_string();
    // Deterministic per (object, reason, message) so repeats aggregate, like client-go's EventCorrelator.
    let digest = {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in uid.bytes().chain(reason.bytes()).chain(message.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    };
    let ev_name = format!("{name}.{digest}");
    let now = crate::api::object::now_rfc3339();
    let ev_res = res("v1", "Event");
    let rp = ResourcePath {
        res: ev_res,
        namespace: Some(ns.clone()),
        name: Some(ev_name.clone()),
        sub: None,
        watch_path: false,
    };
    let bumped = api
        .modify_with(&rp, &ev_name, |cur| {
            let mut o = cur.clone();
            o["count"] = json!(cur["count"].as_i64().unwrap_or(1) + 1);
            o["lastTimestamp"] = json!(now);
            Ok(o)
        })
        .await;
    if bumped.is_ok() {
        return;
    }
    let body = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": ev_name, "namespace": ns},
        "involvedObject": {
            "apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": name, "namespace": ns,
            "uid": uid, "resourceVersion": meta_str(involved, "resourceVersion").unwrap_or(""),
        },
        "reason": reason, "message": message, "type": type_,
        "source": {"component": component}, "reportingComponent": component, "reportingInstance": "",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "eventTime": null,
    });
    let coll = ResourcePath { name: None, ..rp };
    if let Err(e) = api.create(&coll, body, &Query::internal()).await
        && e.code != 409
    {
        tracing::debug!(reason, error = %e.message, "recording event failed");
    }
}

/// Start every controller. Returns once the informers have synced.
pub async fn start(api: &Arc<Api>) -> Arc<Informers> {
    let inf = Informers::start(api).await;
    serviceaccounts::spawn(api.clone(), inf.clone());
    endpointslice::spawn(api.clone(), inf.clone());
    replicaset::spawn(api.clone(), inf.clone());
    deployment::spawn(api.clone(), inf.clone());
    statefulset::spawn(api.clone(), inf.clone());
    daemonset::spawn(api.clone(), inf.clone());
    job::spawn(api.clone(), inf.clone());
    scheduler::spawn(api.clone(), inf.clone());
    nodelifecycle::spawn(api.clone(), inf.clone());
    nodeipam::spawn(api.clone(), inf.clone(), api.cluster_cidr);
    inf
}
