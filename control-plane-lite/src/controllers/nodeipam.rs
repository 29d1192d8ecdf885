//! The node IPAM controller: every Node gets a podCIDR (`spec.podCIDR` and `spec.podCIDRs`), a `/24` carved from
//! `--cluster-cidr`, as kube-controller-manager's range allocator does. Each handed-out range is a claim key in the
//! store (`/registry/podcidrs/<network>-<prefix>`, created if absent), so two nodes can never get the same one, even
//! from two servers; the claim is made before the Node is written and released when the Node is deleted. A claim
//! left by a crash between the two is picked up again for the same node, or released at startup if its node is gone.
//! A podCIDR set by the node's creator is claimed as it is; one already held by another node gets a warning Event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::replicaset::record_as;
use super::{Informers, Queue, feed, res, run_worker};
use crate::api::Api;
use crate::api::alloc::Cidr;
use crate::api::object::meta_str;
use crate::api::route::ResourcePath;

/// Store prefix of podCIDR claims.
pub const CLAIM_PREFIX: &str = "/registry/podcidrs/";
/// Size of each node's range.
pub const NODE_MASK: u8 = 24;
const COMPONENT: &str = "node-ipam-controller";
/// Retry when the cluster range is full (a node may be deleted meanwhile).
const FULL_RETRY: Duration = Duration::from_secs(30);

fn claim_key(cidr: &Cidr) -> String {
    format!("{CLAIM_PREFIX}{}", cidr.to_string().replace('/', "-"))
}

fn cidr_of_claim(key: &str) -> Option<Cidr> {
    Cidr::parse(&key.strip_prefix(CLAIM_PREFIX)?.replacen('-', "/", 1))
}

/// The node's podCIDR, if it has one.
pub fn pod_cidr(node: &Value) -> Option<&str> {
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn node_path(name: &str) -> ResourcePath {
    ResourcePath {
        res: res("v1", "Node"),
        namespace: None,
        name: Some(name.to_string()),
        sub: None,
        watch_path: false,
    }
}

struct Allocator {
    api: Arc<Api>,
    inf: Arc<Informers>,
    range: Cidr,
    queue: Queue,
    /// Where the next search starts: ranges are handed out round-robin, so a freed one is not reused at once.
    next: AtomicU32,
}

impl Allocator {
    /// Every claim: (key, range, owning node).
    async fn claims(&self) -> Result<Vec<(String, Cidr, String)>, String> {
        let page = self
            .api
            .store
            .list(CLAIM_PREFIX, None, None)
            .await
            .map_err(|e| format!("listing podCIDR claims: {e}"))?;
        Ok(page
            .items
            .into_iter()
            .filter_map(|kv| {
                let owner = serde_json::from_slice::<Value>(&kv.value).ok()?["owner"]
                    .as_str()?
                    .to_string();
                let cidr = cidr_of_claim(&kv.key)?;
                Some((kv.key, cidr, owner))
            })
            .collect())
    }

    /// A range for `node`: one it already claimed (before a crash), else the next free one.
    async fn allocate(&self, node: &str) -> Result<Option<Cidr>, String> {
        if let Some((_, cidr, _)) = self.claims().await?.into_iter().find(|(_, _, o)| o == node) {
            return Ok(Some(cidr));
        }
        let count = self.range.subnet_count(NODE_MASK);
        let start = self.next.load(Ordering::Relaxed);
        for i in 0..count {
            let n = (start + i) % count;
            let cidr = self.range.subnet(n, NODE_MASK);
            if self.api.claim(claim_key(&cidr), node).await.map_err(|e| e.message)? {
                self.next.store((n + 1) % count, Ordering::Relaxed);
                return Ok(Some(cidr));
            }
        }
        Ok(None)
    }

    async fn release_all_of(&self, node: &str) -> Result<(), String> {
        for (key, _, owner) in self.claims().await? {
            if owner == node {
                self.api.unclaim(&key).await;
            }
        }
        Ok(())
    }

    async fn sync(&self, name: &str) -> Result<Option<Duration>, String> {
        let Some(node) = self.inf.nodes.get("", name) else {
            self.release_all_of(name).await?;
            // A range came free: nodes still waiting for one get another try now.
            for waiting in self.inf.nodes.list(None) {
                if pod_cidr(&waiting).is_none()
                    && let Some(n) = meta_str(&waiting, "name")
                {
                    self.queue.add(n.to_string());
                }
            }
            return Ok(None);
        };
        if let Some(set) = pod_cidr(&node) {
            // Set by the node's creator (or by us earlier): make sure it is claimed, so it is never handed out.
            if let Some(cidr) = Cidr::parse(set).filter(|c| c.prefix_len() == NODE_MASK && self.range.covers(c))
                && !self.api.claim(claim_key(&cidr), name).await.map_err(|e| e.message)?
            {
                let holder = self
                    .claims()
                    .await?
                    .into_iter()
                    .find(|(_, c, _)| *c == cidr)
                    .map(|(_, _, o)| o);
                if holder.as_deref().is_some_and(|h| h != name) {
                    record_as(
                        &self.api,
                        &node,
                        "Warning",
                        "CIDRNotAvailable",
                        format!(
                            "Node {name} has podCIDR {set}, which is already assigned to node {}",
                            holder.unwrap_or_default()
                        ),
                        COMPONENT,
                    );
                }
            }
            return Ok(None);
        }
        let Some(cidr) = self.allocate(name).await? else {
            record_as(
                &self.api,
                &node,
                "Warning",
                "CIDRNotAvailable",
                format!(
                    "Node {name} status is now: CIDRNotAvailable (no /{NODE_MASK} left in --cluster-cidr {}; widen it \
                     or delete unused nodes)",
                    self.range
                ),
                COMPONENT,
            );
            return Ok(Some(FULL_RETRY));
        };
        let value = cidr.to_string();
        let written = self
            .api
            .modify_with(&node_path(name), name, |current| {
                let mut o = current.clone();
                if pod_cidr(&o).is_none() {
                    o["spec"]["podCIDR"] = json!(value);
                    o["spec"]["podCIDRs"] = json!([value]);
                }
                Ok(o)
            })
            .await;
        match written {
            Ok(()) => {
                tracing::info!(node = name, pod_cidr = %cidr, "assigned podCIDR");
                Ok(None)
            }
            Err(e) if e.code == 404 => {
                self.api.unclaim(&claim_key(&cidr)).await;
                Ok(None)
            }
            Err(e) => Err(format!("writing podCIDR {cidr} to node {name}: {}", e.message)),
        }
    }

    /// Release claims whose node is gone or holds another range (left by a crash or by a deletion while down).
    async fn repair(&self) -> Result<(), String> {
        for (key, cidr, owner) in self.claims().await? {
            let keep = self
                .inf
                .nodes
                .get("", &owner)
                .is_some_and(|n| pod_cidr(&n).is_none_or(|c| c == cidr.to_string()));
            if !keep {
                tracing::info!(claim = %key, node = %owner, "releasing podCIDR of a node that no longer holds it");
                self.api.unclaim(&key).await;
            }
        }
        Ok(())
    }
}

/// Start the controller for `range` (the cluster CIDR).
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>, range: Cidr) {
    let (queue, rx) = Queue::new();
    feed(&inf.nodes, queue.clone(), |c| {
        c.object()
            .and_then(|n| meta_str(n, "name"))
            .map(str::to_string)
            .into_iter()
            .collect()
    });
    let alloc = Arc::new(Allocator {
        api,
        inf,
        range,
        queue: queue.clone(),
        next: AtomicU32::new(0),
    });
    tokio::spawn(async move {
        if let Err(e) = alloc.repair().await {
            tracing::warn!(error = %e, "podCIDR claim repair failed");
        }
        for n in alloc.inf.nodes.list(None) {
            if let Some(name) = meta_str(&n, "name") {
                queue.add(name.to_string());
            }
        }
        run_worker("nodeipam", queue, rx, move |name| {
            let alloc = alloc.clone();
            async move { alloc.sync(&name).await }
        })
        .await;
    });
}
