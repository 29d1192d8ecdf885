//! The workload part of `keel bench api`: how fast a 1,000-replica Deployment gets all its pods bound by the
//! scheduler, and how long a pod turning ready takes to show up as a ready endpoint in its Service's EndpointSlice.
//! Nodes are plain Node objects (with Leases) registered through the API, as a kubelet would register them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::api::create_ns;
use super::client::{Client, EventReader, Target};

/// The Kubernetes scalability SLO for scheduling throughput (pods/s), the anchor beside Keel's figure.
pub const SLO_PODS_PER_S: f64 = 30.0;
/// Keel's goal for scheduling throughput on this 2-core machine.
pub const GOAL_PODS_PER_S: f64 = 1000.0;

const NS: &str = "bench-sched";
const APP: &str = "bench-sched";
/// How long the whole Deployment may take to be bound before the benchmark gives up.
const BIND_LIMIT: Duration = Duration::from_secs(300);
/// How long one readiness change may take to reach the EndpointSlice before it counts as lost.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// What the workload benchmark measured.
pub struct Measured {
    /// Seconds from creating the Deployment to every pod bound to a node.
    pub bound_secs: f64,
    /// Pods bound per second over that time.
    pub pods_per_s: f64,
    /// Pod status turned Ready → endpoint ready in the EndpointSlice (ms), one sample per pod.
    pub ready_ms: Vec<f64>,
}

fn micro_time() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// Register `count` ready nodes with room for `pods_each` pods, each with a fresh Lease.
async fn register_nodes(c: &mut Client, count: usize, pods_each: usize) -> Result<()> {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for i in 0..count {
        let name = format!("bench-node-{i}");
        let status = json!({
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": pods_each.to_string()},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": pods_each.to_string()},
            "addresses": [{"type": "InternalIP", "address": format!("192.0.2.{}", i + 1)}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "bench node",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}],
        });
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}, "status": status});
        c.call("POST", "/api/v1/nodes", Some(node.to_string().into_bytes()))
            .await?;
        c.call_patch(
            &format!("/api/v1/nodes/{name}/status"),
            json!({"status": status}).to_string().into_bytes(),
        )
        .await?;
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_time()}});
        c.call(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            Some(lease.to_string().into_bytes()),
        )
        .await?;
    }
    Ok(())
}

fn list_rv(body: &[u8]) -> Result<(Value, String)> {
    let v: Value = serde_json::from_slice(body)?;
    let rv = v["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
    Ok((v, rv))
}

/// Create the Deployment and time until every one of its pods is bound.
async fn time_binding(target: &Target, c: &mut Client, replicas: usize) -> Result<f64> {
    let pods_path = format!("/api/v1/namespaces/{NS}/pods");
    let (_, rv) = list_rv(&c.call("GET", &pods_path, None).await?)?;
    let mut events = EventReader::new(
        target
            .connect()
            .await?
            .stream(&format!(
                "{pods_path}?watch=1&resourceVersion={rv}&allowWatchBookmarks=false"
            ))
            .await?,
    );
    let (done_tx, mut done_rx) = mpsc::channel(1);
    let watcher = tokio::spawn(async move {
        let mut bound = std::collections::HashSet::new();
        while let Some(ev) = events.next().await {
            let name = ev["object"]["metadata"]["name"].as_str().unwrap_or_default();
            let node = ev["object"]["spec"]["nodeName"].as_str().unwrap_or_default();
            if ev["type"] != "DELETED" && !node.is_empty() && bound.insert(name.to_string()) && bound.len() == replicas
            {
                let _ = done_tx.send(Instant::now()).await;
                return;
            }
        }
    });
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{"name": "web", "image": "localhost/keel/busybox:latest",
                    "command": ["httpd", "-f", "-p", "8080"], "ports": [{"name": "http", "containerPort": 8080}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}});
    let started = Instant::now();
    c.call(
        "POST",
        &format!("/apis/apps/v1/namespaces/{NS}/deployments"),
        Some(deployment.to_string().into_bytes()),
    )
    .await?;
    let done = tokio::time::timeout(BIND_LIMIT, done_rx.recv()).await;
    watcher.abort();
    match done {
        Ok(Some(at)) => Ok(at.duration_since(started).as_secs_f64()),
        _ => bail!("the {replicas} pods of deployment {NS}/{APP} were not all bound within {BIND_LIMIT:?}"),
    }
}

/// Names of the endpoints marked ready in an EndpointSlice.
fn ready_endpoints(slice: &Value) -> impl Iterator<Item = &str> {
    slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["conditions"]["ready"] == true)
        .filter_map(|e| e["targetRef"]["name"].as_str())
}

/// Turn `samples` pods ready one at a time and time each until its endpoint is ready in the EndpointSlice.
async fn time_readiness(target: &Target, c: &mut Client, samples: usize) -> Result<Vec<f64>> {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": NS},
        "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": "http"}]}});
    c.call(
        "POST",
        &format!("/api/v1/namespaces/{NS}/services"),
        Some(svc.to_string().into_bytes()),
    )
    .await?;
    let (pods, _) = list_rv(&c.call("GET", &format!("/api/v1/namespaces/{NS}/pods"), None).await?)?;
    let names: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .take(samples)
        .collect();
    let slices_path = format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices");
    let (_, rv) = list_rv(&c.call("GET", &slices_path, None).await?)?;
    let mut events = EventReader::new(
        target
            .connect()
            .await?
            .stream(&format!("{slices_path}?watch=1&resourceVersion={rv}"))
            .await?,
    );
    let pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let watching = pending.clone();
    let watcher = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            let arrived = Instant::now();
            let mut pending = watching.lock().unwrap_or_else(|p| p.into_inner());
            for name in ready_endpoints(&ev["object"]) {
                if let Some(sent) = pending.remove(name) {
                    let _ = seen_tx.send(arrived.duration_since(sent).as_secs_f64() * 1e3);
                }
            }
        }
    });
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let ip = format!("10.42.{}.{}", i / 250, i % 250 + 1);
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now,
            "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")]}});
        pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), Instant::now());
        c.call_patch(
            &format!("/api/v1/namespaces/{NS}/pods/{name}/status"),
            status.to_string().into_bytes(),
        )
        .await
        .with_context(|| format!("marking pod {NS}/{name} ready"))?;
        match tokio::time::timeout(READY_LIMIT, seen_rx.recv()).await {
            Ok(Some(ms)) => out.push(ms),
            _ => bail!("pod {NS}/{name} turned ready but its endpoint was not ready within {READY_LIMIT:?}"),
        }
    }
    watcher.abort();
    Ok(out)
}

/// Register nodes, roll out the Deployment, then time readiness → EndpointSlice.
pub async fn measure(target: &Target, nodes: usize, replicas: usize, samples: usize) -> Result<Measured> {
    let mut c = target.connect().await?;
    create_ns(&mut c, NS).await?;
    register_nodes(&mut c, nodes, replicas.div_ceil(nodes.max(1)) + 10).await?;
    let bound_secs = time_binding(target, &mut c, replicas).await?;
    let ready_ms = time_readiness(target, &mut c, samples.min(replicas)).await?;
    Ok(Measured {
        bound_secs,
        pods_per_s: replicas as f64 / bound_secs,
        ready_ms,
    })
}
