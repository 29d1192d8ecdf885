//! Deletion follow-up: dependents of deleted owners (ownerReferences; Background, Orphan and Foreground
//! propagation) and namespace termination. Work arrives on a channel from the verb handlers; on start the server
//! re-queues every object still marked for deletion, so a crash midway loses nothing.

use std::sync::{Arc, Weak};
use std::time::Duration;

use api_core::registry::{self, ResourceDef};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Api;
use super::object::{self as obj, meta_str};
use super::request::Query;
use super::route::ResourcePath;

/// How long a namespace or foreground deletion is retried before it is left for the next server start.
const MAX_WAIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(500);

/// One unit of deletion follow-up work.
#[derive(Debug)]
enum Task {
    /// An object is gone: collect its dependents.
    OwnerDeleted { uid: String, namespace: Option<String> },
    /// An object has a deletionTimestamp and finalizers (or is a terminating namespace).
    Pending { res: &'static ResourceDef, obj: Value },
}

/// Handle used by the verb handlers to queue deletion work.
#[derive(Clone)]
pub struct Gc {
    tx: mpsc::UnboundedSender<Task>,
}

impl Gc {
    /// A handle and the receiving end for [`run`].
    pub fn new() -> (Self, GcQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, GcQueue(rx))
    }

    /// `obj` of `res` was removed from the store.
    pub fn owner_deleted(&self, res: &ResourceDef, o: &Value) {
        if let Some(uid) = meta_str(o, "uid") {
            let namespace = if res.namespaced {
                meta_str(o, "namespace").map(str::to_string)
            } else {
                None
            };
            let _ = self.tx.send(Task::OwnerDeleted {
                uid: uid.to_string(),
                namespace,
            });
        }
    }

    /// `obj` of `res` is marked for deletion and waits on finalizers or (namespaces) on its contents.
    pub fn deletion_pending(&self, res: &'static ResourceDef, o: &Value) {
        let _ = self.tx.send(Task::Pending { res, obj: o.clone() });
    }
}

/// The receiving end of the GC queue.
pub struct GcQueue(mpsc::UnboundedReceiver<Task>);

/// Process deletion work until the API is dropped.
pub async fn run(api: Weak<Api>, mut queue: GcQueue) {
    while let Some(task) = queue.0.recv().await {
        let Some(api) = api.upgrade() else { return };
        // Each task may wait (namespaces, foreground); run them concurrently.
        tokio::spawn(async move {
            match task {
                Task::OwnerDeleted { uid, namespace } => collect_dependents(&api, &uid, namespace.as_deref()).await,
                Task::Pending { res, obj } => finish_pending(&api, res, obj).await,
            }
        });
    }
}

/// Re-queue objects left marked for deletion by a previous run.
pub async fn requeue_pending(api: &Arc<Api>) {
    for res in registry::RESOURCES {
        let rp = ResourcePath {
            res,
            namespace: None,
            name: None,
            sub: None,
            watch_path: false,
        };
        let Ok((items, _, _)) = api.list_items(&rp, &Query::internal()).await else {
            continue;
        };
        for o in items {
            let waits = !obj::finalizers(&o).is_empty() || res.kind == "Namespace";
            if o.pointer("/metadata/deletionTimestamp").is_some() && waits {
                api.gc.deletion_pending(res, &o);
            }
        }
    }
}

fn owner_uids(o: &Value) -> Vec<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r["uid"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Every object that lists `uid` as an owner, with its resource.
async fn dependents(api: &Api, uid: &str, namespace: Option<&str>) -> Vec<(&'static ResourceDef, Value)> {
    let mut out = Vec::new();
    for res in registry::RESOURCES {
        if namespace.is_some() && !res.namespaced {
            continue;
        }
        let rp = ResourcePath {
            res,
            namespace: namespace.map(str::to_string),
            name: None,
            sub: None,
            watch_path: false,
        };
        let Ok((items, _, _)) = api.list_items(&rp, &Query::internal()).await else {
            continue;
        };
        out.extend(
            items
                .into_iter()
                .filter(|o| owner_uids(o).iter().any(|u| u == uid))
                .map(|o| (res, o)),
        );
    }
    out
}

fn path_of(res: &'static ResourceDef, o: &Value) -> ResourcePath {
    ResourcePath {
        res,
        namespace: meta_str(o, "namespace").map(str::to_string),
        name: meta_str(o, "name").map(str::to_string),
        sub: None,
        watch_path: false,
    }
}

async fn collect_dependents(api: &Api, uid: &str, namespace: Option<&str>) {
    for (res, o) in dependents(api, uid, namespace).await {
        let rp = path_of(res, &o);
        let others = owner_uids(&o).into_iter().filter(|u| u != uid).count();
        let result = if others == 0 {
            api.delete(&rp, json!({"propagationPolicy": "Background"}), &Query::internal())
                .await
                .map(|_| ())
        } else {
            drop_owner_ref(api, &rp, uid).await
        };
        if let Err(e) = result
            && e.code != 404
        {
            tracing::warn!(owner = uid, kind = res.kind, name = ?rp.name, error = %e.message, "garbage collection of dependent failed");
        }
    }
}

async fn drop_owner_ref(api: &Api, rp: &ResourcePath, uid: &str) -> super::error::Result<()> {
    let uid = uid.to_string();
    let name = rp.name.clone().unwrap_or_default();
    api.modify_with(rp, &name, move |current| {
        let mut o = current.clone();
        if let Some(refs) = o.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
            refs.retain(|r| r["uid"] != uid.as_str());
        }
        Ok(o)
    })
    .await
}

async fn remove_finalizer(api: &Api, rp: &ResourcePath, finalizer: &str) -> super::error::Result<()> {
    let f = finalizer.to_string();
    let name = rp.name.clone().unwrap_or_default();
    api.modify_with(rp, &name, move |current| {
        let mut o = current.clone();
        if let Some(fins) = o.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
            fins.retain(|x| x != f.as_str());
        }
        Ok(o)
    })
    .await
}

async fn finish_pending(api: &Api, res: &'static ResourceDef, o: Value) {
    let rp = path_of(res, &o);
    let uid = meta_str(&o, "uid").unwrap_or("").to_string();
    let fins = obj::finalizers(&o);
    if res.kind == "Namespace" {
        terminate_namespace(api, &rp).await;
        return;
    }
    let ns = if res.namespaced { rp.namespace.clone() } else { None };
    if fins.iter().any(|f| f == "orphan") {
        for (dres, d) in dependents(api, &uid, ns.as_deref()).await {
            let _ = drop_owner_ref(api, &path_of(dres, &d), &uid).await;
        }
        let _ = remove_finalizer(api, &rp, "orphan").await;
    }
    if fins.iter().any(|f| f == "foregroundDeletion") {
        let start = tokio::time::Instant::now();
        while start.elapsed() < MAX_WAIT {
            let deps = dependents(api, &uid, ns.as_deref()).await;
            if deps.is_empty() {
                break;
            }
            for (dres, d) in deps {
                if d.pointer("/metadata/deletionTimestamp").is_none() {
                    let _ = api
                        .delete(
                            &path_of(dres, &d),
                            json!({"propagationPolicy": "Foreground"}),
                            &Query::internal(),
                        )
                        .await;
                }
            }
            tokio::time::sleep(POLL).await;
        }
        let _ = remove_finalizer(api, &rp, "foregroundDeletion").await;
    }
}

/// Delete everything in a terminating namespace, then the namespace itself (its `kubernetes` finalizer).
async fn terminate_namespace(api: &Api, rp: &ResourcePath) {
    let Some(ns) = rp.name.clone() else { return };
    let start = tokio::time::Instant::now();
    while start.elapsed() < MAX_WAIT {
        let mut remaining = 0;
        for res in registry::RESOURCES.iter().filter(|r| r.namespaced) {
            let coll = ResourcePath {
                res,
                namespace: Some(ns.clone()),
                name: None,
                sub: None,
                watch_path: false,
            };
            let Ok((items, _, _)) = api.list_items(&coll, &Query::internal()).await else {
                remaining += 1;
                continue;
            };
            remaining += items.len();
            for o in items
                .iter()
                .filter(|o| o.pointer("/metadata/deletionTimestamp").is_none())
            {
                let _ = api
                    .delete(
                        &path_of(res, o),
                        json!({"propagationPolicy": "Background"}),
                        &Query::internal(),
                    )
                    .await;
            }
        }
        if remaining == 0 {
            let key = obj::key(rp.res, None, &ns);
            if let Err(e) = api.store.delete(&key, None).await {
                tracing::warn!(namespace = %ns, error = %e, "removing terminated namespace failed");
            }
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(namespace = %ns, "namespace still has content; termination resumes on next server start");
}
