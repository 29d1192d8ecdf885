//! keel-cni chained in a conflist with the reference `bandwidth` plugin (Debian containernetworking-plugins), driven
//! with libcni's call semantics written out here: plugins found by `type` on CNI_PATH, version picked from
//! `cniVersions` (the highest that every plugin's VERSION lists), each plugin's config built from the list's name
//! and version plus `prevResult`, ADD in order, CHECK in order and DEL in reverse with the cached result, GC and
//! STATUS only for lists at 1.1.0. What it proves: a real third-party plugin accepts keel-cni's result as its
//! prevResult and finds the host veth from it. It is not libcni itself (no Go here, Debian ships no cnitool).

// Test harness code: panics with a message are how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::*;
use keel_netkit::testing::TestNetns;
use serde_json::{Value, json};

/// A network configuration list, run the way libcni runs one.
struct ConfList {
    name: String,
    versions: Vec<String>,
    plugins: Vec<Value>,
}

impl ConfList {
    fn find(&self, kind: &str) -> PathBuf {
        cni_path()
            .split(':')
            .map(|d| PathBuf::from(d).join(kind))
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "plugin {kind} not on CNI_PATH {}: apt-get install containernetworking-plugins",
                    cni_path()
                )
            })
    }

    /// The highest of `cniVersions` that every plugin's VERSION lists.
    fn negotiate(&self, node: &Node) -> String {
        let mut common: Vec<String> = self.versions.clone();
        for p in &self.plugins {
            let call = Call {
                command: "VERSION",
                container_id: "",
                netns: None,
                ifname: "",
                cni_path: cni_path(),
            };
            let v = exec(
                node.ns.path(),
                &self.find(p["type"].as_str().unwrap()),
                &call,
                &json!({"cniVersion": "0.4.0"}),
            )
            .ok();
            let supported: Vec<String> = serde_json::from_value(v["supportedVersions"].clone()).unwrap();
            common.retain(|v| supported.contains(v));
        }
        common.sort_by_key(|v| v.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());
        common
            .pop()
            .unwrap_or_else(|| panic!("no common version among {:?}", self.versions))
    }

    fn plugin_config(&self, p: &Value, version: &str, prev: Option<&Value>) -> Value {
        let mut c = p.clone();
        c["name"] = json!(self.name);
        c["cniVersion"] = json!(version);
        if let Some(prev) = prev {
            c["prevResult"] = prev.clone();
        }
        c
    }

    fn call(&self, node: &Node, p: &Value, cmd: &str, pod: &Pod, cfg: &Value) -> Out {
        let call = Call {
            command: cmd,
            container_id: &pod.id,
            netns: Some(pod.ns.path()),
            ifname: "eth0",
            cni_path: cni_path(),
        };
        exec(node.ns.path(), &self.find(p["type"].as_str().unwrap()), &call, cfg)
    }

    fn add(&self, node: &Node, pod: &Pod, version: &str) -> Value {
        let mut prev: Option<Value> = None;
        for p in &self.plugins {
            let out = self.call(node, p, "ADD", pod, &self.plugin_config(p, version, prev.as_ref()));
            prev = Some(out.ok());
        }
        prev.unwrap()
    }

    fn check(&self, node: &Node, pod: &Pod, version: &str, cached: &Value) -> Vec<Out> {
        self.plugins
            .iter()
            .map(|p| self.call(node, p, "CHECK", pod, &self.plugin_config(p, version, Some(cached))))
            .collect()
    }

    fn del(&self, node: &Node, pod: &Pod, version: &str, cached: &Value) {
        for p in self.plugins.iter().rev() {
            self.call(node, p, "DEL", pod, &self.plugin_config(p, version, Some(cached)))
                .ok();
        }
    }
}

fn tc_qdisc(node: &Node, dev: &str) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", node.ns.path().display()))
        .args(["tc", "qdisc", "show", "dev", dev])
        .output()
        .expect("run tc (iproute2)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflist_with_reference_bandwidth_plugin_chains_on_keel_result() {
    let (_sw, mut nodes) = cluster_on_bridge(1).await;
    let node = nodes.remove(0);
    let keel = json!({"type": "keel-cni", "podCIDR": node.info.pod_cidr.to_string(), "dataDir": node.data_dir.path()});
    let bw = json!({"type": "bandwidth", "ingressRate": 8_000_000, "ingressBurst": 1_000_000,
                    "egressRate": 8_000_000, "egressBurst": 1_000_000});
    let list = ConfList {
        name: "keel".into(),
        versions: vec!["0.4.0".into(), "1.0.0".into(), "1.1.0".into()],
        plugins: vec![keel.clone(), bw],
    };
    let version = list.negotiate(&node);
    assert_eq!(
        version, "1.0.0",
        "bandwidth 1.1.1 speaks up to 1.0.0, keel-cni up to 1.1.0"
    );

    let pod = Pod {
        ns: TestNetns::new("krt"),
        id: "chained".into(),
        ip: std::net::Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    let result = list.add(&node, &pod, &version);
    assert_eq!(result["cniVersion"], "1.0.0");
    let host_if = result["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert!(
        host_if.starts_with("kc"),
        "bandwidth passes keel-cni's interfaces through: {result}"
    );
    let ifb = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i["name"].as_str().filter(|n| n.starts_with("bwp")));
    let ifb = ifb
        .unwrap_or_else(|| panic!("bandwidth added no ifb device to the result: {result}"))
        .to_string();
    let q = tc_qdisc(&node, &host_if);
    assert!(q.contains("tbf"), "bandwidth shaped the host veth keel-cni made: {q}");

    for o in list.check(&node, &pod, &version, &result) {
        o.ok();
    }
    list.del(&node, &pod, &version, &result);
    let nl = node.ns.netlink();
    assert!(nl.link_by_name(&host_if).await.unwrap().is_none());
    assert!(
        nl.link_by_name(&ifb).await.unwrap().is_none(),
        "bandwidth DEL removed its ifb"
    );
    assert!(node.ipam_files().is_empty());

    // A 1.1.0 list (keel-cni alone): libcni sends STATUS and GC only at 1.1.0.
    let solo = ConfList {
        name: "keel".into(),
        versions: vec!["1.1.0".into()],
        plugins: vec![keel.clone()],
    };
    let v11 = solo.negotiate(&node);
    assert_eq!(v11, "1.1.0");
    let a = Pod {
        ns: TestNetns::new("krt"),
        id: "gc-keep".into(),
        ip: std::net::Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    let b = Pod {
        ns: TestNetns::new("krt"),
        id: "gc-drop".into(),
        ip: std::net::Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    let ra = solo.add(&node, &a, &v11);
    let rb = solo.add(&node, &b, &v11);
    let status = Call {
        command: "STATUS",
        container_id: "",
        netns: None,
        ifname: "",
        cni_path: cni_path(),
    };
    exec(
        node.ns.path(),
        plugin(),
        &status,
        &solo.plugin_config(&keel, &v11, None),
    )
    .ok();
    let mut gc = solo.plugin_config(&keel, &v11, None);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-keep", "ifname": "eth0"}]);
    let gc_call = Call {
        command: "GC",
        container_id: "",
        netns: None,
        ifname: "",
        cni_path: cni_path(),
    };
    exec(node.ns.path(), plugin(), &gc_call, &gc).ok();
    let drop_if = rb["interfaces"][0]["name"].as_str().unwrap();
    assert!(
        nl.link_by_name(drop_if).await.unwrap().is_none(),
        "GC removed the stale attachment's veth"
    );
    for o in solo.check(&node, &a, &v11, &ra) {
        o.ok();
    }
    let msg = solo.check(&node, &b, &v11, &rb).remove(0).err(102);
    assert!(msg.contains("holds no address"), "{msg}");
}
