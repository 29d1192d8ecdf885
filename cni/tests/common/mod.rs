//! Shared helpers of the privileged keel-cni tests: nodes are network namespaces on an underlay, pods are network
//! namespaces, and the plugin binary is executed exactly as a runtime does (CNI_* env, config on stdin), inside the
//! node's namespace through `nsenter --net=`. Everything is removed on drop; each wait is bounded.

// Each test binary uses a different subset; helpers panic with a message by design.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_cni::routesync::{NodeInfo, Report, RouteSync, Settings};
use keel_netkit::Netlink;
use keel_netkit::testing::{TestNetns, attach_to_bridge};
use serde_json::{Value, json};

/// The plugin under test, built by cargo for this integration test.
pub fn plugin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keel-cni"))
}

/// What one plugin execution returned.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("plugin stdout is not JSON ({e}): {self:?}"))
    }

    /// Assert success and return the parsed result (Null for empty output).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "plugin failed: {self:?}");
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Assert a spec error with `code` and return its message.
    pub fn err(&self, code: u64) -> String {
        assert_ne!(self.code, 0, "plugin should have failed with code {code}: {self:?}");
        let v = self.json();
        assert_eq!(v["code"].as_u64(), Some(code), "wrong error code: {v}");
        assert!(
            v["cniVersion"].is_string() && v["details"].is_string(),
            "error object lacks spec fields: {v}"
        );
        v["msg"].as_str().unwrap_or_default().to_string()
    }
}

/// One CNI invocation.
pub struct Call<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub cni_path: String,
}

/// Spawn `binary` with the runtime's environment inside the node namespace `node` (not waiting).
pub fn spawn(node: &Path, binary: &Path, call: &Call<'_>, config: &Value) -> std::process::Child {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", node.display()))
        .arg(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_PATH", &call.cni_path)
        .env(
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=test",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = call.netns {
        cmd.env("CNI_NETNS", ns);
    }
    let mut child = cmd.spawn().expect("spawn nsenter (util-linux) with the plugin");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(config.to_string().as_bytes())
        .expect("write config to the plugin");
    drop(stdin);
    child
}

/// Wait for a child at most 60 s; kill it (by its pid) if it takes longer.
pub fn finish(mut child: std::process::Child) -> Out {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait for plugin") {
            Some(_) => break,
            None if start.elapsed() > Duration::from_secs(60) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("plugin did not finish within 60 s");
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().map(|mut s| s.read_to_string(&mut stdout));
    child.stderr.take().map(|mut s| s.read_to_string(&mut stderr));
    let code = child.wait().expect("exit status").code().unwrap_or(-1);
    Out { code, stdout, stderr }
}

/// Run `binary` and wait for it.
pub fn exec(node: &Path, binary: &Path, call: &Call<'_>, config: &Value) -> Out {
    finish(spawn(node, binary, call, config))
}

/// A node: a namespace on the underlay with a node IP, a podCIDR and an IPAM directory.
pub struct Node {
    pub ns: TestNetns,
    pub info: NodeInfo,
    pub data_dir: tempfile::TempDir,
}

impl Node {
    /// The keel-cni config for this node (version `v`).
    pub fn config(&self, v: &str) -> Value {
        json!({"cniVersion": v, "name": "keel", "type": "keel-cni", "podCIDR": self.info.pod_cidr.to_string(),
               "dataDir": self.data_dir.path()})
    }

    /// Run the plugin in this node for a pod.
    pub fn cni(&self, command: &str, pod: &Pod, config: &Value) -> Out {
        let call = Call {
            command,
            container_id: &pod.id,
            netns: Some(pod.ns.path()),
            ifname: "eth0",
            cni_path: cni_path(),
        };
        exec(self.ns.path(), plugin(), &call, config)
    }

    /// ADD a new pod and return it with its address.
    pub fn add_pod(&self, id: &str) -> Pod {
        let mut pod = Pod {
            ns: TestNetns::new("kp"),
            id: id.to_string(),
            ip: Ipv4Addr::UNSPECIFIED,
            result: Value::Null,
        };
        let r = self.cni("ADD", &pod, &self.config("1.1.0")).ok();
        pod.ip = pod_ip(&r);
        pod.result = r;
        pod
    }

    /// IPAM files of this node's network.
    pub fn ipam_files(&self) -> Vec<String> {
        let dir = self.data_dir.path().join("keel");
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.retain(|n| n != "lock" && n != "last_reserved_ip");
        v.sort();
        v
    }

    /// Everything a failed call must leave as it was: links, routes, neighbours, IPAM files.
    pub async fn snapshot(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let nl = self.ns.netlink();
        let mut links: Vec<String> = nl
            .links()
            .await
            .unwrap()
            .into_iter()
            .map(|l| format!("{} {}", l.name, l.up))
            .collect();
        links.sort();
        let mut routes: Vec<String> = nl.routes().await.unwrap().iter().map(|r| format!("{r:?}")).collect();
        routes.sort();
        (links, routes, self.ipam_files())
    }

    /// Run route sync for this node against `all` nodes.
    pub fn sync(&self, all: &[NodeInfo], cluster: &str) -> Report {
        let settings = Settings::new(cluster.parse().unwrap());
        let local = self.info.clone();
        let all = all.to_vec();
        self.ns.run(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let nl = Netlink::current().expect("netlink in node");
                RouteSync::new(nl, settings)
                    .sync(&local, &all)
                    .await
                    .unwrap_or_else(|e| panic!("route sync: {e}"))
            })
        })
    }
}

/// A pod: a namespace with an attachment made by keel-cni.
pub struct Pod {
    pub ns: TestNetns,
    pub id: String,
    pub ip: Ipv4Addr,
    pub result: Value,
}

/// CNI_PATH for the tests: the plugin's directory and the reference plugins'.
pub fn cni_path() -> String {
    format!("{}:/usr/lib/cni", plugin().parent().unwrap().display())
}

/// The pod address in an ADD result.
pub fn pod_ip(result: &Value) -> Ipv4Addr {
    let a = result["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips[0].address in {result}"));
    a.trim_end_matches("/32")
        .parse()
        .unwrap_or_else(|_| panic!("bad address {a}"))
}

/// An underlay switch (a bridge in its own namespace) with `n` nodes on 192.168.77.0/24, podCIDR 10.42.<i>.0/24.
pub async fn cluster_on_bridge(n: u8) -> (TestNetns, Vec<Node>) {
    let sw = TestNetns::new("ksw");
    let mut nodes = Vec::new();
    for i in 1..=n {
        let ns = TestNetns::new(&format!("kn{i}"));
        ns.lo_up().await;
        let ip = Ipv4Addr::new(192, 168, 77, i);
        attach_to_bridge(&sw, "br0", &format!("p{i}"), &ns, "ul0", (ip, 24)).await;
        let info = NodeInfo {
            name: format!("node{i}"),
            ip,
            pod_cidr: format!("10.42.{i}.0/24").parse().unwrap(),
        };
        nodes.push(Node {
            ns,
            info,
            data_dir: tempfile::tempdir().unwrap(),
        });
    }
    (sw, nodes)
}

/// A TCP echo server in a namespace, answering each connection with its peer address, for at most 30 s.
pub struct Echo {
    pub addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    pub fn start(ns: &TestNetns, ip: Ipv4Addr, connections: usize) -> Echo {
        let l: TcpListener = ns
            .run(|| TcpListener::bind((ip, 0)))
            .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut served = 0;
            while served < connections && start.elapsed() < Duration::from_secs(30) {
                match l.accept() {
                    Ok((mut s, peer)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut buf = [0u8; 4];
                        if s.read_exact(&mut buf).is_ok() {
                            let _ = s.write_all(peer.ip().to_string().as_bytes());
                        }
                        served += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Echo {
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from namespace `ns` to `addr`, send "ping", return the address the server saw us as.
pub fn tcp_from(ns: &TestNetns, addr: SocketAddr) -> Result<String, String> {
    ns.run(move || {
        let mut s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"ping").map_err(|e| format!("write: {e}"))?;
        let mut seen = String::new();
        s.read_to_string(&mut seen).map_err(|e| format!("read: {e}"))?;
        Ok(seen)
    })
}

/// Path of a fresh temp file name (not created).
pub fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}
