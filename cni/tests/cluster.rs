//! Multi-node tests: nodes are network namespaces on an underlay, pods are namespaces wired by the keel-cni binary
//! run as a runtime runs it, route sync programs each node, and TCP is checked between every pair of pods.

mod common;

use std::net::Ipv4Addr;

use common::*;
use keel_netkit::testing::{TestNetns, veth_between};
use keel_netkit::{Netlink, Route};
use serde_json::json;

fn all_pairs_talk(pods: &[(&Node, &Pod)]) {
    for (na, a) in pods {
        let echo = Echo::start(&a.ns, a.ip, pods.len() - 1);
        for (nb, b) in pods {
            if a.id == b.id {
                continue;
            }
            let seen = tcp_from(&b.ns, echo.addr).unwrap_or_else(|e| {
                panic!(
                    "pod {} on {} -> pod {} on {}: {e}",
                    b.id, nb.info.name, a.id, na.info.name
                )
            });
            assert_eq!(
                seen,
                b.ip.to_string(),
                "pod-to-pod traffic must keep the pod address (no masquerade)"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_pods_on_three_nodes_reach_each_other_then_check_del_gc() {
    let (sw, nodes) = cluster_on_bridge(3).await;
    let infos: Vec<_> = nodes.iter().map(|n| n.info.clone()).collect();
    for n in &nodes {
        let report = n.sync(&infos, "10.42.0.0/16");
        assert_eq!(report.direct.len(), 2, "peers on one bridge are host-gw: {report:?}");
        assert!(report.vxlan.is_empty());
    }
    let mut pods = Vec::new();
    for n in &nodes {
        for j in 0..2 {
            pods.push((n, n.add_pod(&format!("{}-pod{j}", n.info.name))));
        }
    }
    for (n, p) in &pods {
        assert!(
            n.info.pod_cidr.contains(p.ip),
            "{} got {} outside {}",
            p.id,
            p.ip,
            n.info.pod_cidr
        );
        assert_eq!(p.result["cniVersion"], "1.1.0");
        assert_eq!(p.result["interfaces"][1]["sandbox"], p.ns.path().to_str().unwrap());
        assert_eq!(
            p.result["interfaces"][1]["mtu"], 1450,
            "default MTU is the uplink's 1500 minus VXLAN overhead"
        );
    }
    let refs: Vec<(&Node, &Pod)> = pods.iter().map(|(n, p)| (*n, p)).collect();
    all_pairs_talk(&refs);

    // Masquerade: a destination outside the cluster CIDR sees the node address, not the pod's.
    let outside = TestNetns::new("kout");
    veth_between(
        &sw,
        "out0",
        Some((Ipv4Addr::new(192, 168, 78, 1), 24)),
        &outside,
        "eth0",
        Some((Ipv4Addr::new(192, 168, 78, 2), 24)),
    )
    .await;
    let out_nl = outside.netlink();
    let eth0 = out_nl.link_by_name("eth0").await.unwrap().unwrap();
    out_nl
        .add_route(
            &Route {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Some(Ipv4Addr::new(192, 168, 78, 1)),
                oif: Some(eth0.index),
                onlink: false,
                protocol: 4,
                link_scope: false,
            },
            false,
        )
        .await
        .unwrap();
    // The switch routes between the underlay and the outside network: give its bridge an address.
    let sw_nl = sw.netlink();
    let br = sw_nl.link_by_name("br0").await.unwrap().unwrap();
    sw_nl
        .add_addr(br.index, Ipv4Addr::new(192, 168, 77, 254), 24)
        .await
        .unwrap();
    sw.run(keel_netkit::sysctl::enable_ipv4_forwarding).unwrap();
    for n in &nodes {
        let nl = n.ns.netlink();
        let ul = nl.link_by_name("ul0").await.unwrap().unwrap();
        nl.add_route(
            &Route {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Some(Ipv4Addr::new(192, 168, 77, 254)),
                oif: Some(ul.index),
                onlink: false,
                protocol: 4,
                link_scope: false,
            },
            false,
        )
        .await
        .unwrap();
    }
    let echo = Echo::start(&outside, Ipv4Addr::new(192, 168, 78, 2), 1);
    let (n0, p0) = &pods[0];
    assert_eq!(
        tcp_from(&p0.ns, echo.addr).unwrap(),
        n0.info.ip.to_string(),
        "pod traffic leaving the cluster is masqueraded"
    );
    drop(echo);

    // CHECK: healthy, then broken (the pod's default route removed).
    let (n, p) = &pods[1];
    let mut cfg = n.config("1.1.0");
    cfg["prevResult"] = p.result.clone();
    n.cni("CHECK", p, &cfg).ok();
    let pnl = Netlink::in_netns(p.ns.path()).unwrap();
    let eth = pnl.link_by_name("eth0").await.unwrap().unwrap();
    let def = pnl
        .routes()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.prefix == 0 && r.oif == Some(eth.index))
        .unwrap();
    pnl.del_route(&def).await.unwrap();
    let msg = n.cni("CHECK", p, &cfg).err(102);
    assert!(msg.contains("default route"), "{msg}");

    // DEL: host veth, route and reservation gone; twice is fine; netns gone is fine.
    let host_if = p.result["interfaces"][0]["name"].as_str().unwrap().to_string();
    n.cni("DEL", p, &n.config("1.1.0")).ok();
    let nl = n.ns.netlink();
    assert!(nl.link_by_name(&host_if).await.unwrap().is_none());
    assert!(
        !nl.routes()
            .await
            .unwrap()
            .iter()
            .any(|r| r.dst == p.ip && r.prefix == 32)
    );
    assert!(!n.ipam_files().contains(&p.ip.to_string()));
    n.cni("DEL", p, &n.config("1.1.0")).ok();
    let call = Call {
        command: "DEL",
        container_id: &p.id,
        netns: Some(std::path::Path::new("/var/run/netns/keel-none")),
        ifname: "eth0",
        cni_path: cni_path(),
    };
    exec(n.ns.path(), plugin(), &call, &n.config("1.1.0")).ok();

    // GC on node 1 keeping only pod0: pod1's reservation (already deleted) stays gone, nothing else there.
    // GC on node 2 keeping nothing: both pods' host veths and reservations go.
    let (n2, _) = &pods[2];
    let mut gc = n2.config("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let before = n2.ipam_files();
    assert_eq!(before.len(), 4, "two pods: address + owner files each: {before:?}");
    let gc_call = Call {
        command: "GC",
        container_id: "",
        netns: None,
        ifname: "",
        cni_path: cni_path(),
    };
    exec(n2.ns.path(), plugin(), &gc_call, &gc).ok();
    assert!(n2.ipam_files().is_empty(), "GC left {:?}", n2.ipam_files());
    let n2l = n2.ns.netlink().links().await.unwrap();
    assert!(
        !n2l.iter().any(|l| l.name.starts_with("kc")),
        "GC left host veths: {n2l:?}"
    );
    let mut keep = n0.config("1.1.0");
    keep["cni.dev/valid-attachments"] = json!([{"containerID": p0.id, "ifname": "eth0"}]);
    exec(n0.ns.path(), plugin(), &gc_call, &keep).ok();
    assert_eq!(
        n0.ipam_files().len(),
        2,
        "GC kept the valid attachment: {:?}",
        n0.ipam_files()
    );
    let mut cfg0 = n0.config("1.1.0");
    cfg0["prevResult"] = p0.result.clone();
    n0.cni("CHECK", p0, &cfg0).ok();

    // A node leaves: its podCIDR route goes from the others.
    let remaining: Vec<_> = infos.iter().filter(|i| i.name != "node3").cloned().collect();
    let report = nodes[0].sync(&remaining, "10.42.0.0/16");
    assert_eq!(report.removed, vec!["10.42.3.0/24".parse().unwrap()], "{report:?}");
    let again = nodes[0].sync(&remaining, "10.42.0.0/16");
    assert!(again.removed.is_empty(), "sync is idempotent: {again:?}");
    let routes = nodes[0].ns.netlink().routes().await.unwrap();
    assert!(!routes.iter().any(|r| r.dst == Ipv4Addr::new(10, 42, 3, 0)));
    assert!(
        routes
            .iter()
            .any(|r| r.dst == Ipv4Addr::new(10, 42, 2, 0) && r.gateway == Some(Ipv4Addr::new(192, 168, 77, 2)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_between_nodes_behind_a_router() {
    let router = TestNetns::new("krt");
    router.run(keel_netkit::sysctl::enable_ipv4_forwarding).unwrap();
    let mut nodes = Vec::new();
    for i in 1..=2u8 {
        let ns = TestNetns::new(&format!("kvn{i}"));
        ns.lo_up().await;
        let ip = Ipv4Addr::new(192, 168, 10 * i, 1);
        let gw = Ipv4Addr::new(192, 168, 10 * i, 254);
        veth_between(&router, &format!("r{i}"), Some((gw, 24)), &ns, "ul0", Some((ip, 24))).await;
        let nl = ns.netlink();
        let ul = nl.link_by_name("ul0").await.unwrap().unwrap();
        nl.add_route(
            &Route {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Some(gw),
                oif: Some(ul.index),
                onlink: false,
                protocol: 4,
                link_scope: false,
            },
            false,
        )
        .await
        .unwrap();
        let info = keel_cni::routesync::NodeInfo {
            name: format!("node{i}"),
            ip,
            pod_cidr: format!("10.44.{i}.0/24").parse().unwrap(),
        };
        nodes.push(Node {
            ns,
            info,
            data_dir: tempfile::tempdir().unwrap(),
        });
    }
    let infos: Vec<_> = nodes.iter().map(|n| n.info.clone()).collect();
    for n in &nodes {
        let r = n.sync(&infos, "10.44.0.0/16");
        assert_eq!(
            (r.direct.len(), r.vxlan.len()),
            (0, 1),
            "nodes on different links use VXLAN: {r:?}"
        );
        let links = n.ns.netlink().links().await.unwrap();
        let vx = links.iter().find(|l| l.name == "keel.vxlan").expect("vxlan device");
        assert_eq!((vx.kind.as_deref(), vx.mtu), (Some("vxlan"), 1450));
    }
    let pods: Vec<_> = nodes
        .iter()
        .map(|n| (n, n.add_pod(&format!("{}-p", n.info.name))))
        .collect();
    let refs: Vec<(&Node, &Pod)> = pods.iter().map(|(n, p)| (*n, p)).collect();
    all_pairs_talk(&refs);

    // The peer leaves: the VXLAN device (with its FDB) goes, the route too.
    let r = nodes[0].sync(&infos[..1], "10.44.0.0/16");
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert!(
        nodes[0]
            .ns
            .netlink()
            .link_by_name("keel.vxlan")
            .await
            .unwrap()
            .is_none()
    );
}
