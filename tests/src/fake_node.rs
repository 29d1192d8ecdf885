//! A test stand-in for a node, for control-plane tests run without the real kubelet: it registers a Node with
//! capacity and a Ready condition, renews its Lease, and reports every pod bound to it as Running and Ready
//! (or as Succeeded when the pod's `keel.test/exit` annotation says so). It only reports status; nothing runs.
//! All traffic goes through stock kubectl against the test server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Server;

/// How often the stand-in reconciles pod status and renews its Lease.
const TICK: Duration = Duration::from_millis(300);
/// Upper bound on a stand-in's life, so a forgotten one cannot run forever.
const MAX_LIFE: Duration = Duration::from_secs(900);

/// A running stand-in node; stops (thread joined) on drop.
pub struct FakeNode {
    /// The node name.
    pub name: String,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn now() -> String {
    // RFC 3339 from the system clock via `date`, to avoid a time crate in the harness.
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The Node object a stand-in registers.
pub fn node_manifest(name: &str, cpu: &str, memory: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "192.0.2.1"}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "stand-in node is ready", "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-keel-standin", "containerRuntimeVersion": "standin://0",
                         "kernelVersion": "", "osImage": "stand-in", "operatingSystem": "linux", "architecture": "amd64",
                         "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
        }
    })
}

impl FakeNode {
    /// Register node `name` (4 CPUs, 8Gi) and start reporting.
    pub fn start(server: &Server, name: &str) -> Self {
        Self::start_with(server, name, "4", "8Gi", json!({"kubernetes.io/hostname": name}))
    }

    /// Register a node with the given capacity and labels, and start reporting.
    pub fn start_with(server: &Server, name: &str, cpu: &str, memory: &str, labels: Value) -> Self {
        let node = node_manifest(name, cpu, memory, labels);
        let out = server.kubectl_stdin(&["create", "-f", "-"], Some(&node.to_string()));
        assert!(
            out.status.success(),
            "registering stand-in node {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Status is ignored on create by some servers; set it through the status subresource too.
        let status = json!({"status": node["status"]}).to_string();
        let out = server.kubectl(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ]);
        assert!(
            out.status.success(),
            "setting stand-in node {name} status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(true));
        let kubeconfig = server.kubeconfig();
        let home = server.data_dir.join("home");
        let (n, s, r) = (name.to_string(), stop.clone(), ready.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut was_alive = true;
            while !s.load(Ordering::Relaxed) && started.elapsed() < MAX_LIFE {
                let alive = r.load(Ordering::Relaxed);
                if alive {
                    if !was_alive {
                        // Back from the dead: a kubelet reports its node Ready again on its next status update.
                        post_ready(&kubeconfig, &home, &n);
                    }
                    tick(&kubeconfig, &home, &n);
                }
                was_alive = alive;
                std::thread::sleep(TICK);
            }
        });
        Self {
            name: name.to_string(),
            stop,
            ready,
            thread: Some(thread),
        }
    }

    /// Stop heartbeats and status reports (as if the node died), or resume them.
    pub fn set_alive(&self, alive: bool) {
        self.ready.store(alive, Ordering::Relaxed);
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn kubectl(kubeconfig: &std::path::Path, home: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", home)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Set the node's Ready condition to True, as a kubelet's status update does.
fn post_ready(kubeconfig: &std::path::Path, home: &std::path::Path, node: &str) {
    let t = now();
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "stand-in node is ready", "lastHeartbeatTime": t, "lastTransitionTime": t}]}});
    let _ = kubectl(
        kubeconfig,
        home,
        &[
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=strategic",
            "-p",
            &patch.to_string(),
        ],
    );
}

fn tick(kubeconfig: &std::path::Path, home: &std::path::Path, node: &str) {
    let t = now();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": t.replace('Z', ".000000Z")}});
    let _ = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .env("HOME", home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut i) = c.stdin.take() {
                let _ = i.write_all(lease.to_string().as_bytes());
            }
            c.wait()
        });
    let selector = format!("spec.nodeName={node}");
    let Some(list) = kubectl(
        kubeconfig,
        home,
        &["get", "pods", "-A", "--field-selector", &selector, "-o", "json"],
    ) else {
        return;
    };
    let Ok(list) = serde_json::from_str::<Value>(&list) else {
        return;
    };
    for pod in list["items"].as_array().cloned().unwrap_or_default() {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        if pod["metadata"]["deletionTimestamp"].is_string() {
            // The kubelet confirms a graceful deletion once containers stopped: here, at once.
            let _ = kubectl(
                kubeconfig,
                home,
                &[
                    "delete",
                    "pod",
                    &name,
                    "-n",
                    &ns,
                    "--grace-period=0",
                    "--force",
                    "--wait=false",
                ],
            );
            continue;
        }
        let exit = pod["metadata"]["annotations"]["keel.test/exit"]
            .as_str()
            .map(str::to_string);
        let phase = match exit.as_deref() {
            Some("0") => "Succeeded",
            Some(_) => "Failed",
            None => "Running",
        };
        if pod["status"]["phase"] == phase && (phase != "Running" || pod_ready(&pod)) {
            continue;
        }
        let status = pod_status(&pod, phase, &t);
        let patch = json!({"status": status}).to_string();
        let _ = kubectl(
            kubeconfig,
            home,
            &[
                "patch",
                "pod",
                &name,
                "-n",
                &ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ],
        );
    }
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The status a kubelet would report for a pod whose containers all started (Running) or exited.
fn pod_status(pod: &Value, phase: &str, t: &str) -> Value {
    let running = phase == "Running";
    let ready = if running { "True" } else { "False" };
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let state = if running {
                json!({"running": {"startedAt": t}})
            } else {
                let code = if phase == "Succeeded" { 0 } else { 1 };
                json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": t, "finishedAt": t}})
            };
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": running, "started": running,
                   "restartCount": 0, "state": state})
        })
        .collect();
    // A distinct, stable address per pod, derived from its uid.
    let h = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let ip = format!("10.42.{}.{}", (h >> 8) % 250, h % 250 + 2);
    json!({
        "phase": phase,
        "hostIP": "192.0.2.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": t,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": t},
            {"type": "Ready", "status": ready, "lastTransitionTime": t},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
        ],
        "containerStatuses": statuses,
    })
}
