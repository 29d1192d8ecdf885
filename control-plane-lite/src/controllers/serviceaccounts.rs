//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount.

use std::sync::Arc;

use serde_json::json;

use super::{Informers, Queue, feed, res, run_worker};
use crate::api::Api;
use crate::api::object::meta_str;
use crate::api::request::Query;
use crate::api::route::ResourcePath;

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let (queue, rx) = Queue::new();
    feed(&inf.namespaces, queue.clone(), |c| {
        c.new
            .as_ref()
            .and_then(|n| meta_str(n, "name"))
            .map(str::to_string)
            .into_iter()
            .collect()
    });
    feed(&inf.serviceaccounts, queue.clone(), |c| match (&c.old, &c.new) {
        (Some(o), None) if meta_str(o, "name") == Some("default") => {
            meta_str(o, "namespace").map(str::to_string).into_iter().collect()
        }
        _ => vec![],
    });
    for ns in inf.namespaces.list(None) {
        if let Some(n) = meta_str(&ns, "name") {
            queue.add(n.to_string());
        }
    }
    tokio::spawn(run_worker("serviceaccounts", queue, rx, move |ns| {
        let api = api.clone();
        let inf = inf.clone();
        async move {
            let Some(nsobj) = inf.namespaces.get("", &ns) else {
                return Ok(None);
            };
            if nsobj.pointer("/status/phase").and_then(|v| v.as_str()) == Some("Terminating")
                || inf.serviceaccounts.get(&ns, "default").is_some()
            {
                return Ok(None);
            }
            let rp = ResourcePath {
                res: res("v1", "ServiceAccount"),
                namespace: Some(ns.clone()),
                name: None,
                sub: None,
                watch_path: false,
            };
            let body =
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
            match api.create(&rp, body, &Query::internal()).await {
                Ok(_) => Ok(None),
                Err(e) if e.code == 409 || e.code == 403 || e.code == 404 => Ok(None),
                Err(e) => Err(e.message),
            }
        }
    }));
}
