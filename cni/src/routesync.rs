//! Node route sync, the library the node agent runs whenever the set of nodes changes: a route to each peer's
//! podCIDR via the peer's node IP when they share a link (host-gw), through a VXLAN device otherwise; routes,
//! neighbour and FDB entries of nodes that left are removed; pod traffic leaving the cluster CIDR is masqueraded
//! with nftables, pod-to-pod traffic never is.
//!
//! [`plan`] is pure (desired state from the node list and the node's connected networks); [`RouteSync::sync`]
//! diffs it against what the kernel has (routes marked with protocol [`RTPROT_KEEL_NODE`]) and applies the
//! difference, so it is idempotent and can run on every change.
//!
//! VXLAN: device `keel.vxlan` (VNI 1, UDP 8472, no learning) with address `<local podCIDR network>/32`; each peer is
//! reached through `<peer podCIDR network>` (onlink), whose neighbour entry is the peer's VTEP MAC, which is derived
//! from its node IP (`0e:4b:` + the 4 address bytes) so nodes need not exchange MACs; an FDB entry maps that MAC to
//! the peer's node IP.

use std::collections::HashSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use keel_netkit::{Netlink, Route};
use tracing::{debug, info};

use crate::cidr::Ipv4Net;

/// Route protocol number of node routes (`ip route` shows `proto 76`); sync removes only routes carrying it.
pub const RTPROT_KEEL_NODE: u8 = 76;

/// The nftables table that holds Keel's masquerade rule.
pub const NAT_TABLE: &str = "keel-nat";

/// A cluster node as route sync needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node IP (the underlay address).
    pub ip: Ipv4Addr,
    /// The node's podCIDR.
    pub pod_cidr: Ipv4Net,
}

/// Route sync settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cluster CIDR: pod traffic to destinations outside it is masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// VXLAN device name.
    pub vxlan_name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// VXLAN UDP port.
    pub vxlan_port: u16,
    /// Program the nftables masquerade rule.
    pub masquerade: bool,
}

impl Settings {
    /// Defaults for a cluster CIDR: `keel.vxlan`, VNI 1, port 8472, masquerade on.
    pub fn new(cluster_cidr: Ipv4Net) -> Self {
        Settings {
            cluster_cidr,
            vxlan_name: "keel.vxlan".into(),
            vni: 1,
            vxlan_port: 8472,
            masquerade: true,
        }
    }
}

/// How one peer is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPath {
    /// On a shared link: route via the node IP out of `oif`.
    Direct {
        /// Link index that holds the shared network.
        oif: u32,
    },
    /// Through VXLAN to the peer's node IP.
    Vxlan {
        /// The peer's VTEP MAC.
        mac: [u8; 6],
        /// Next hop on the VXLAN device: the peer podCIDR's network address.
        vtep: Ipv4Addr,
    },
}

/// One peer's desired route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRoute {
    /// The peer.
    pub node: NodeInfo,
    /// How it is reached.
    pub path: PeerPath,
}

/// The VTEP MAC of a node: locally administered, derived from its IP.
pub fn vtep_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0e, 0x4b, o[0], o[1], o[2], o[3]]
}

/// Desired peer routes. `connected` are the node's link networks with their link index. Peers with the local
/// node's name, IP or an overlapping podCIDR are skipped (the first such conflict is the caller's to fix).
pub fn plan(local: &NodeInfo, nodes: &[NodeInfo], connected: &[(Ipv4Net, u32)]) -> Vec<PeerRoute> {
    let mut out: Vec<PeerRoute> = Vec::new();
    for n in nodes {
        if n.name == local.name || n.ip == local.ip || n.pod_cidr.overlaps(&local.pod_cidr) {
            continue;
        }
        if out.iter().any(|p| p.node.pod_cidr.overlaps(&n.pod_cidr)) {
            continue;
        }
        let path = match connected.iter().find(|(net, _)| net.contains(n.ip)) {
            Some((_, oif)) => PeerPath::Direct { oif: *oif },
            None => PeerPath::Vxlan {
                mac: vtep_mac(n.ip),
                vtep: n.pod_cidr.network(),
            },
        };
        out.push(PeerRoute { node: n.clone(), path });
    }
    out
}

/// What a sync changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Peers reached directly (host-gw).
    pub direct: Vec<String>,
    /// Peers reached over VXLAN.
    pub vxlan: Vec<String>,
    /// Stale routes removed (destination prefixes).
    pub removed: Vec<Ipv4Net>,
}

/// Errors of route sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] keel_netkit::Error),
    /// `nft` could not be run or refused the ruleset.
    #[error("nftables masquerade: {0}; install nftables (the `nft` command) or disable masquerade")]
    Nft(String),
    /// The local node is not usable.
    #[error("local node {0}")]
    Local(String),
}

/// Route sync result.
pub type Result<T> = std::result::Result<T, Error>;

/// Route sync for the node this process runs on (its netlink socket's namespace).
pub struct RouteSync {
    nl: Netlink,
    settings: Settings,
}

impl RouteSync {
    /// Route sync through `nl` (a socket in the node's network namespace).
    pub fn new(nl: Netlink, settings: Settings) -> Self {
        RouteSync { nl, settings }
    }

    /// Bring the node's routes in line with `nodes` (which may include the local node).
    pub async fn sync(&self, local: &NodeInfo, nodes: &[NodeInfo]) -> Result<Report> {
        let nl = &self.nl;
        let s = &self.settings;
        if !s.cluster_cidr.contains_net(&local.pod_cidr) {
            return Err(Error::Local(format!(
                "{}: podCIDR {} is outside the cluster CIDR {}",
                local.name, local.pod_cidr, s.cluster_cidr
            )));
        }
        keel_netkit::sysctl::enable_ipv4_forwarding()?;
        let links = nl.links().await?;
        let vx = links.iter().find(|l| l.name == s.vxlan_name).cloned();
        let addrs = nl.addrs().await?;
        let connected: Vec<(Ipv4Net, u32)> = addrs
            .iter()
            .filter(|a| a.prefix < 32 && Some(a.index) != vx.as_ref().map(|v| v.index) && !a.ip.is_loopback())
            .filter_map(|a| Ipv4Net::new(a.ip, a.prefix).map(|n| (n, a.index)))
            .collect();
        let uplink = addrs
            .iter()
            .find(|a| a.ip == local.ip)
            .ok_or_else(|| Error::Local(format!("{}: node IP {} is on no interface", local.name, local.ip)))?;
        let peers = plan(local, nodes, &connected);
        let mut report = Report::default();

        // VXLAN device: present exactly when some peer needs it.
        let need_vx = peers.iter().any(|p| matches!(p.path, PeerPath::Vxlan { .. }));
        let vx_index = match (&vx, need_vx) {
            (Some(v), true) => Some(v.index),
            (None, true) => {
                let mtu = links
                    .iter()
                    .find(|l| l.index == uplink.index)
                    .map(|l| l.mtu)
                    .unwrap_or(1500)
                    - 50;
                nl.add_vxlan(&s.vxlan_name, s.vni, local.ip, s.vxlan_port, mtu, vtep_mac(local.ip))
                    .await?;
                let v = nl.link_by_name(&s.vxlan_name).await?.ok_or_else(|| {
                    Error::Local(format!(
                        "{}: VXLAN device {} vanished after creation",
                        local.name, s.vxlan_name
                    ))
                })?;
                Some(v.index)
            }
            // Removed at the end, after its routes are reported as removed.
            (_, false) => None,
        };
        if let Some(vi) = vx_index {
            let local_vtep = local.pod_cidr.network();
            if !addrs.iter().any(|a| a.index == vi && a.ip == local_vtep) {
                nl.add_addr(vi, local_vtep, 32).await?;
            }
        }

        // Desired routes, neighbours and FDB entries.
        let mut want_routes = Vec::new();
        let mut want_vteps: HashSet<([u8; 6], Ipv4Addr, Ipv4Addr)> = HashSet::new();
        for p in &peers {
            let dst = p.node.pod_cidr;
            let r = match (&p.path, vx_index) {
                (PeerPath::Direct { oif }, _) => {
                    report.direct.push(p.node.name.clone());
                    Route {
                        dst: dst.network(),
                        prefix: dst.prefix(),
                        gateway: Some(p.node.ip),
                        oif: Some(*oif),
                        onlink: false,
                        protocol: RTPROT_KEEL_NODE,
                        link_scope: false,
                    }
                }
                (PeerPath::Vxlan { mac, vtep }, Some(vi)) => {
                    report.vxlan.push(p.node.name.clone());
                    want_vteps.insert((*mac, *vtep, p.node.ip));
                    Route {
                        dst: dst.network(),
                        prefix: dst.prefix(),
                        gateway: Some(*vtep),
                        oif: Some(vi),
                        onlink: true,
                        protocol: RTPROT_KEEL_NODE,
                        link_scope: false,
                    }
                }
                (PeerPath::Vxlan { .. }, None) => continue,
            };
            want_routes.push(r);
        }
        if let Some(vi) = vx_index {
            for (mac, vtep, node_ip) in &want_vteps {
                nl.add_neigh(vi, *vtep, mac, true).await?;
                nl.add_fdb(vi, mac, *node_ip).await?;
            }
            for n in nl.neighbours(vi).await? {
                if let Some(ip) = n.ip
                    && !want_vteps.iter().any(|(_, v, _)| *v == ip)
                {
                    nl.del_neigh(vi, ip).await?;
                }
            }
            for f in nl.fdb(vi).await? {
                if let Some(ip) = f.ip
                    && f.mac.len() == 6
                    && !want_vteps.iter().any(|(m, _, n)| m[..] == f.mac[..] && *n == ip)
                {
                    nl.del_fdb(vi, &f.mac, ip).await?;
                }
            }
        }
        for r in &want_routes {
            nl.add_route(r, true).await?;
        }
        for r in nl
            .routes()
            .await?
            .into_iter()
            .filter(|r| r.protocol == RTPROT_KEEL_NODE)
        {
            if !want_routes.iter().any(|w| w.dst == r.dst && w.prefix == r.prefix) {
                match nl.del_route(&r).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
                report.removed.extend(Ipv4Net::new(r.dst, r.prefix));
            }
        }
        if let (Some(v), false) = (&vx, need_vx) {
            nl.del_link(v.index).await?;
        }
        if s.masquerade {
            apply_nft(&masquerade_ruleset(local.pod_cidr, s.cluster_cidr))?;
        }
        info!(node = %local.name, direct = report.direct.len(), vxlan = report.vxlan.len(), removed = report.removed.len(), "routes synced");
        Ok(report)
    }
}

/// The `nft -f` script that (re)defines table `ip keel-nat` atomically: pods' traffic to destinations outside the
/// cluster CIDR is masqueraded; pod-to-pod traffic (inside the cluster CIDR) is left alone.
pub fn masquerade_ruleset(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> String {
    format!(
        "table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\ntable ip {NAT_TABLE} {{\n  chain postrouting {{\n    \
         type nat hook postrouting priority srcnat; policy accept;\n    \
         ip saddr {pod_cidr} ip daddr != {cluster_cidr} masquerade\n  }}\n}}\n"
    )
}

/// Remove Keel's masquerade table (idempotent).
pub fn remove_masquerade() -> Result<()> {
    apply_nft(&format!("table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\n"))
}

/// Run `nft -f -` with `script` in the calling thread's network namespace.
fn apply_nft(script: &str) -> Result<()> {
    debug!(script, "nft -f -");
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nft(format!("cannot run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Nft(format!("write to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Nft(format!("wait for nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::Nft(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, cidr: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ip: ip.parse().unwrap(),
            pod_cidr: cidr.parse().unwrap(),
        }
    }

    #[test]
    fn shared_link_peers_are_direct_others_vxlan_and_self_or_conflicts_skipped() {
        let local = node("n1", "192.168.1.1", "10.42.1.0/24");
        let nodes = vec![
            local.clone(),
            node("n2", "192.168.1.2", "10.42.2.0/24"),
            node("n3", "192.168.9.3", "10.42.3.0/24"),
            node("dup", "192.168.1.4", "10.42.1.0/24"),
            node("n5", "192.168.1.5", "10.42.2.0/25"),
        ];
        let connected = vec![("192.168.1.0/24".parse().unwrap(), 7)];
        let p = plan(&local, &nodes, &connected);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].path, PeerPath::Direct { oif: 7 });
        assert_eq!(
            p[1].path,
            PeerPath::Vxlan {
                mac: [0x0e, 0x4b, 192, 168, 9, 3],
                vtep: "10.42.3.0".parse().unwrap()
            }
        );
    }

    #[test]
    fn masquerade_excludes_the_cluster_cidr() {
        let s = masquerade_ruleset("10.42.1.0/24".parse().unwrap(), "10.42.0.0/16".parse().unwrap());
        assert!(
            s.contains("ip saddr 10.42.1.0/24 ip daddr != 10.42.0.0/16 masquerade"),
            "{s}"
        );
        assert!(
            s.starts_with("table ip keel-nat\ndelete table ip keel-nat\n"),
            "redefinition must be idempotent"
        );
    }
}
