//! Single-node tests of the keel-cni binary: concurrency, every bad input (each leaving the node as it was), and
//! the answers to callers of each spec version.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

use common::*;
use keel_netkit::testing::TestNetns;
use serde_json::{Value, json};

async fn one_node() -> (TestNetns, Node) {
    let (sw, mut nodes) = cluster_on_bridge(1).await;
    (sw, nodes.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_adds_get_distinct_addresses_and_dels_free_them() {
    let (_sw, node) = one_node().await;
    let pods: Vec<TestNetns> = (0..50).map(|_| TestNetns::new("kcc")).collect();
    let ids: Vec<String> = (0..50).map(|i| format!("concurrent-{i}")).collect();
    let cfg = node.config("1.1.0");
    let children: Vec<_> = pods
        .iter()
        .zip(&ids)
        .map(|(p, id)| {
            let call = Call {
                command: "ADD",
                container_id: id,
                netns: Some(p.path()),
                ifname: "eth0",
                cni_path: cni_path(),
            };
            spawn(node.ns.path(), plugin(), &call, &cfg)
        })
        .collect();
    let outs: Vec<Out> = children.into_iter().map(finish).collect();
    let ips: Vec<Ipv4Addr> = outs.iter().map(|o| pod_ip(&o.ok())).collect();
    let unique: HashSet<_> = ips.iter().collect();
    assert_eq!(unique.len(), 50, "duplicate addresses handed out: {ips:?}");
    assert_eq!(node.ipam_files().len(), 100);
    let nl = node.ns.netlink();
    let host_links = nl
        .links()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.name.starts_with("kc"))
        .count();
    assert_eq!(host_links, 50);

    let children: Vec<_> = pods
        .iter()
        .zip(&ids)
        .map(|(p, id)| {
            let call = Call {
                command: "DEL",
                container_id: id,
                netns: Some(p.path()),
                ifname: "eth0",
                cni_path: cni_path(),
            };
            spawn(node.ns.path(), plugin(), &call, &cfg)
        })
        .collect();
    for o in children.into_iter().map(finish) {
        o.ok();
    }
    assert!(node.ipam_files().is_empty(), "DEL left {:?}", node.ipam_files());
    assert!(!nl.links().await.unwrap().iter().any(|l| l.name.starts_with("kc")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_spec_errors_that_say_what_to_fix_and_leave_the_node_as_it_was() {
    let (_sw, node) = one_node().await;
    let keep = node.add_pod("already-there");
    let pod = Pod {
        ns: TestNetns::new("kbad"),
        id: "bad-1".into(),
        ip: Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    let before = node.snapshot().await;

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = node.config("1.1.0");
        f(&mut c);
        c
    };
    let cases: Vec<(&str, Value, u64, &str)> = vec![
        (
            "missing podCIDR",
            with(&|c| drop(c.as_object_mut().unwrap().remove("podCIDR"))),
            7,
            "podCIDR",
        ),
        (
            "invalid podCIDR",
            with(&|c| c["podCIDR"] = json!("10.42.1.0/40")),
            7,
            "podCIDR",
        ),
        (
            "podCIDR with host bits",
            with(&|c| c["podCIDR"] = json!("10.42.1.9/24")),
            7,
            "host bits",
        ),
        (
            "podCIDR overlapping the node's link network",
            with(&|c| c["podCIDR"] = json!("192.168.77.0/25")),
            7,
            "overlaps",
        ),
        (
            "unknown cniVersion",
            with(&|c| c["cniVersion"] = json!("2.0.0")),
            1,
            "cniVersion",
        ),
        ("wrong type", with(&|c| c["type"] = json!("bridge")), 7, "type"),
    ];
    for (what, cfg, code, words) in cases {
        let msg = node.cni("ADD", &pod, &cfg).err(code);
        assert!(msg.contains(words), "{what}: {msg:?} should mention {words:?}");
        assert_eq!(node.snapshot().await, before, "{what} changed the node");
    }

    let cfg = node.config("1.1.0");
    let missing = Call {
        command: "ADD",
        container_id: "bad-2",
        netns: Some(Path::new("/var/run/netns/keel-no-such-ns")),
        ifname: "eth0",
        cni_path: cni_path(),
    };
    let msg = exec(node.ns.path(), plugin(), &missing, &cfg).err(3);
    assert!(msg.contains("does not exist"), "{msg}");
    let own = Call {
        command: "ADD",
        container_id: "bad-own",
        netns: Some(node.ns.path()),
        ifname: "eth0",
        cni_path: cni_path(),
    };
    let msg = exec(node.ns.path(), plugin(), &own, &cfg).err(4);
    assert!(msg.contains("node's own network namespace"), "{msg}");
    let no_id = Call {
        command: "ADD",
        container_id: "",
        netns: Some(pod.ns.path()),
        ifname: "eth0",
        cni_path: cni_path(),
    };
    exec(node.ns.path(), plugin(), &no_id, &cfg).err(4);
    let bad_if = Call {
        command: "ADD",
        container_id: "bad-3",
        netns: Some(pod.ns.path()),
        ifname: "this-name-is-too-long",
        cni_path: cni_path(),
    };
    exec(node.ns.path(), plugin(), &bad_if, &cfg).err(4);
    let mut garbage = std::process::Command::new("nsenter");
    garbage
        .arg(format!("--net={}", node.ns.path().display()))
        .arg(plugin())
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "x")
        .env("CNI_NETNS", pod.ns.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path())
        .stdin(std::process::Stdio::null());
    let out = garbage.output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], 6, "empty stdin is a decode failure: {v}");
    assert_eq!(node.snapshot().await, before, "env errors changed the node");

    // Interface name collision: eth0 already exists in the pod netns.
    pod.ns.netlink().add_veth_local("eth0", "eth0peer").await.unwrap();
    let msg = node.cni("ADD", &pod, &cfg).err(101);
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(node.snapshot().await, before, "a name collision changed the node");
    // ADD of an attachment that already exists.
    let msg = node.cni("ADD", &keep, &cfg).err(101);
    assert!(msg.contains("DEL"), "{msg}");
    assert_eq!(node.snapshot().await, before);

    // Exhausted range: a /30 has two pod addresses.
    let small_dir = tempfile::tempdir().unwrap();
    let small = json!({"cniVersion": "1.1.0", "name": "small", "type": "keel-cni", "podCIDR": "10.99.0.0/30", "dataDir": small_dir.path()});
    let p1 = Pod {
        ns: TestNetns::new("kx"),
        id: "x1".into(),
        ip: Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    let p2 = Pod {
        ns: TestNetns::new("kx"),
        id: "x2".into(),
        ip: Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    let p3 = Pod {
        ns: TestNetns::new("kx"),
        id: "x3".into(),
        ip: Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    node.cni("ADD", &p1, &small).ok();
    node.cni("ADD", &p2, &small).ok();
    let full = node.snapshot().await;
    let files = std::fs::read_dir(small_dir.path().join("small")).unwrap().count();
    let msg = node.cni("ADD", &p3, &small).err(100);
    assert!(msg.contains("no free address"), "{msg}");
    assert_eq!(node.snapshot().await, full, "exhaustion changed the node");
    assert_eq!(
        std::fs::read_dir(small_dir.path().join("small")).unwrap().count(),
        files
    );
    assert!(p3.ns.netlink().link_by_name("eth0").await.unwrap().is_none());
    // STATUS says the plugin cannot serve ADDs while the range is full, and recovers after a DEL.
    let status = Call {
        command: "STATUS",
        container_id: "",
        netns: None,
        ifname: "",
        cni_path: cni_path(),
    };
    exec(node.ns.path(), plugin(), &status, &small).err(50);
    node.cni("DEL", &p1, &small).ok();
    exec(node.ns.path(), plugin(), &status, &small).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_each_version_get_their_format() {
    let (_sw, node) = one_node().await;
    let version = Call {
        command: "VERSION",
        container_id: "",
        netns: None,
        ifname: "",
        cni_path: cni_path(),
    };
    let v = exec(node.ns.path(), plugin(), &version, &json!({"cniVersion": "1.0.0"})).ok();
    assert_eq!(
        v,
        json!({"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );

    for (ver, has_version_field, has_mtu) in [("0.4.0", true, false), ("1.0.0", false, false), ("1.1.0", false, true)] {
        let pod = Pod {
            ns: TestNetns::new("kv"),
            id: format!("v{}", ver.replace('.', "")),
            ip: Ipv4Addr::UNSPECIFIED,
            result: Value::Null,
        };
        let r = node.cni("ADD", &pod, &node.config(ver)).ok();
        assert_eq!(r["cniVersion"], ver);
        assert_eq!(r["ips"][0].get("version").is_some(), has_version_field, "{ver}: {r}");
        assert_eq!(r["interfaces"][1].get("mtu").is_some(), has_mtu, "{ver}: {r}");
        assert_eq!(r["ips"][0]["interface"], 1);
        assert_eq!(r["routes"][0], json!({"dst": "0.0.0.0/0", "gw": "169.254.1.1"}));
        let mut chk = node.config(ver);
        chk["prevResult"] = r.clone();
        node.cni("CHECK", &pod, &chk).ok();
        node.cni("DEL", &pod, &node.config(ver)).ok();
    }
    // Commands newer than the caller's version are refused with code 1.
    let pod = Pod {
        ns: TestNetns::new("kv"),
        id: "old".into(),
        ip: Ipv4Addr::UNSPECIFIED,
        result: Value::Null,
    };
    node.cni("CHECK", &pod, &node.config("0.3.1")).err(1);
    let gc = Call {
        command: "GC",
        container_id: "",
        netns: None,
        ifname: "",
        cni_path: cni_path(),
    };
    let mut old = node.config("1.0.0");
    old["cni.dev/valid-attachments"] = json!([]);
    exec(node.ns.path(), plugin(), &gc, &old).err(1);
}
