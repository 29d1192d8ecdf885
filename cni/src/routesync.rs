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

use keel_netkit::{Addr, Link, Neighbour, Netlink, Route};
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

/// What route sync needs from the node's kernel: the netlink calls (as [`Netlink`] has them), IPv4 forwarding and
/// an nftables ruleset. [`Netlink`] implements it for real; the unit tests use an in-memory fake.
#[allow(async_fn_in_trait)] // Used with concrete types only; no Send bound needed.
pub trait NodeNet {
    /// All links.
    async fn links(&self) -> keel_netkit::Result<Vec<Link>>;
    /// A link by name.
    async fn link_by_name(&self, name: &str) -> keel_netkit::Result<Option<Link>>;
    /// IPv4 addresses.
    async fn addrs(&self) -> keel_netkit::Result<Vec<Addr>>;
    /// Add an address.
    async fn add_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> keel_netkit::Result<()>;
    /// Delete an address.
    async fn del_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> keel_netkit::Result<()>;
    /// Create the VXLAN device, up.
    async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
        mtu: u32,
        mac: [u8; 6],
    ) -> keel_netkit::Result<()>;
    /// Delete a link.
    async fn del_link(&self, index: u32) -> keel_netkit::Result<()>;
    /// Main-table IPv4 routes.
    async fn routes(&self) -> keel_netkit::Result<Vec<Route>>;
    /// Add or replace a route.
    async fn add_route(&self, r: &Route, replace: bool) -> keel_netkit::Result<()>;
    /// Delete a route.
    async fn del_route(&self, r: &Route) -> keel_netkit::Result<()>;
    /// Add or replace a permanent ARP entry.
    async fn add_neigh(&self, index: u32, ip: Ipv4Addr, mac: &[u8], replace: bool) -> keel_netkit::Result<()>;
    /// ARP entries of a link.
    async fn neighbours(&self, index: u32) -> keel_netkit::Result<Vec<Neighbour>>;
    /// Delete an ARP entry.
    async fn del_neigh(&self, index: u32, ip: Ipv4Addr) -> keel_netkit::Result<()>;
    /// Add or replace an FDB entry.
    async fn add_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> keel_netkit::Result<()>;
    /// FDB entries of a link.
    async fn fdb(&self, index: u32) -> keel_netkit::Result<Vec<Neighbour>>;
    /// Delete an FDB entry.
    async fn del_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> keel_netkit::Result<()>;
    /// Turn on IPv4 forwarding.
    fn enable_forwarding(&self) -> keel_netkit::Result<()>;
    /// Apply an `nft -f` script atomically.
    fn apply_nft(&self, script: &str) -> Result<()>;
}

impl NodeNet for Netlink {
    async fn links(&self) -> keel_netkit::Result<Vec<Link>> {
        Netlink::links(self).await
    }
    async fn link_by_name(&self, name: &str) -> keel_netkit::Result<Option<Link>> {
        Netlink::link_by_name(self, name).await
    }
    async fn addrs(&self) -> keel_netkit::Result<Vec<Addr>> {
        Netlink::addrs(self).await
    }
    async fn add_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> keel_netkit::Result<()> {
        Netlink::add_addr(self, index, ip, prefix).await
    }
    async fn del_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> keel_netkit::Result<()> {
        Netlink::del_addr(self, index, ip, prefix).await
    }
    async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
        mtu: u32,
        mac: [u8; 6],
    ) -> keel_netkit::Result<()> {
        Netlink::add_vxlan(self, name, vni, local, port, mtu, mac).await
    }
    async fn del_link(&self, index: u32) -> keel_netkit::Result<()> {
        Netlink::del_link(self, index).await
    }
    async fn routes(&self) -> keel_netkit::Result<Vec<Route>> {
        Netlink::routes(self).await
    }
    async fn add_route(&self, r: &Route, replace: bool) -> keel_netkit::Result<()> {
        Netlink::add_route(self, r, replace).await
    }
    async fn del_route(&self, r: &Route) -> keel_netkit::Result<()> {
        Netlink::del_route(self, r).await
    }
    async fn add_neigh(&self, index: u32, ip: Ipv4Addr, mac: &[u8], replace: bool) -> keel_netkit::Result<()> {
        Netlink::add_neigh(self, index, ip, mac, replace).await
    }
    async fn neighbours(&self, index: u32) -> keel_netkit::Result<Vec<Neighbour>> {
        Netlink::neighbours(self, index).await
    }
    async fn del_neigh(&self, index: u32, ip: Ipv4Addr) -> keel_netkit::Result<()> {
        Netlink::del_neigh(self, index, ip).await
    }
    async fn add_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> keel_netkit::Result<()> {
        Netlink::add_fdb(self, index, mac, dst).await
    }
    async fn fdb(&self, index: u32) -> keel_netkit::Result<Vec<Neighbour>> {
        Netlink::fdb(self, index).await
    }
    async fn del_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> keel_netkit::Result<()> {
        Netlink::del_fdb(self, index, mac, dst).await
    }
    /// Writes `/proc/sys/net/ipv4/ip_forward` of the calling thread's namespace (the node's, for the agent).
    fn enable_forwarding(&self) -> keel_netkit::Result<()> {
        keel_netkit::sysctl::enable_ipv4_forwarding()
    }
    fn apply_nft(&self, script: &str) -> Result<()> {
        apply_nft(script)
    }
}

/// Route sync for one node, through `N` (a [`Netlink`] socket in the node's network namespace).
pub struct RouteSync<N: NodeNet = Netlink> {
    nl: N,
    settings: Settings,
}

impl<N: NodeNet> RouteSync<N> {
    /// Route sync through `nl`.
    pub fn new(nl: N, settings: Settings) -> Self {
        RouteSync { nl, settings }
    }

    /// The kernel seam (tests inspect their fake through it).
    pub fn net(&self) -> &N {
        &self.nl
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
        nl.enable_forwarding()?;
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
        // A device made for another node IP (its MAC encodes the IP) is made again.
        let vx = match vx {
            Some(v) if need_vx && v.mac[..] != vtep_mac(local.ip)[..] => {
                nl.del_link(v.index).await?;
                None
            }
            other => other,
        };
        let vx_index = match (&vx, need_vx) {
            (Some(v), true) => Some(v.index),
            (None, true) => {
                let mtu = links
                    .iter()
                    .find(|l| l.index == uplink.index)
                    .map(|l| l.mtu)
                    .unwrap_or(1500)
                    .saturating_sub(crate::plugin::VXLAN_OVERHEAD)
                    .max(576);
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
            // A VTEP address left from an earlier podCIDR of this node.
            for a in addrs.iter().filter(|a| a.index == vi && a.ip != local_vtep) {
                nl.del_addr(vi, a.ip, a.prefix).await?;
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
            nl.apply_nft(&masquerade_ruleset(local.pod_cidr, s.cluster_cidr))?;
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

    /// An in-memory node: links, addresses, routes, ARP/FDB entries, forwarding and applied nft scripts, with the
    /// kernel's rules that matter here (EEXIST without replace, a deleted link takes its routes and entries along).
    #[derive(Default)]
    struct Fake {
        st: std::cell::RefCell<State>,
    }

    #[derive(Default)]
    struct State {
        links: Vec<Link>,
        addrs: Vec<Addr>,
        routes: Vec<Route>,
        neigh: Vec<Neighbour>,
        fdb: Vec<Neighbour>,
        forwarding: bool,
        nft: Vec<String>,
    }

    fn errno(e: i32) -> keel_netkit::Error {
        keel_netkit::Error::Io {
            what: "fake".into(),
            source: std::io::Error::from_raw_os_error(e),
        }
    }

    impl Fake {
        fn node(uplink_ip: &str, prefix: u8) -> Fake {
            let f = Fake::default();
            {
                let mut st = f.st.borrow_mut();
                let ul = Link {
                    index: 2,
                    name: "ul0".into(),
                    mtu: 1500,
                    mac: vec![2; 6],
                    up: true,
                    kind: Some("veth".into()),
                    loopback: false,
                };
                st.links.push(ul);
                st.addrs.push(Addr {
                    index: 2,
                    ip: uplink_ip.parse().unwrap(),
                    prefix,
                });
                // A route someone else owns: sync must leave it alone.
                st.routes.push(Route {
                    dst: "172.16.0.0".parse().unwrap(),
                    prefix: 12,
                    gateway: None,
                    oif: Some(2),
                    onlink: false,
                    protocol: 4,
                    link_scope: true,
                });
            }
            f
        }
        fn keel_routes(&self) -> Vec<Route> {
            self.st
                .borrow()
                .routes
                .iter()
                .filter(|r| r.protocol == RTPROT_KEEL_NODE)
                .copied()
                .collect()
        }
    }

    impl NodeNet for Fake {
        async fn links(&self) -> keel_netkit::Result<Vec<Link>> {
            Ok(self.st.borrow().links.clone())
        }
        async fn link_by_name(&self, name: &str) -> keel_netkit::Result<Option<Link>> {
            Ok(self.st.borrow().links.iter().find(|l| l.name == name).cloned())
        }
        async fn addrs(&self) -> keel_netkit::Result<Vec<Addr>> {
            Ok(self.st.borrow().addrs.clone())
        }
        async fn add_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> keel_netkit::Result<()> {
            let mut st = self.st.borrow_mut();
            if st.addrs.iter().any(|a| a.index == index && a.ip == ip) {
                return Err(errno(EEXIST));
            }
            st.addrs.push(Addr { index, ip, prefix });
            Ok(())
        }
        async fn del_addr(&self, index: u32, ip: Ipv4Addr, _prefix: u8) -> keel_netkit::Result<()> {
            self.st.borrow_mut().addrs.retain(|a| !(a.index == index && a.ip == ip));
            Ok(())
        }
        async fn add_vxlan(
            &self,
            name: &str,
            _vni: u32,
            _local: Ipv4Addr,
            _port: u16,
            mtu: u32,
            mac: [u8; 6],
        ) -> keel_netkit::Result<()> {
            let mut st = self.st.borrow_mut();
            if st.links.iter().any(|l| l.name == name) {
                return Err(errno(EEXIST));
            }
            let index = st.links.iter().map(|l| l.index).max().unwrap_or(1) + 1;
            st.links.push(Link {
                index,
                name: name.into(),
                mtu,
                mac: mac.to_vec(),
                up: true,
                kind: Some("vxlan".into()),
                loopback: false,
            });
            Ok(())
        }
        async fn del_link(&self, index: u32) -> keel_netkit::Result<()> {
            let mut st = self.st.borrow_mut();
            st.links.retain(|l| l.index != index);
            st.addrs.retain(|a| a.index != index);
            st.routes.retain(|r| r.oif != Some(index));
            st.neigh.retain(|n| n.index != index);
            st.fdb.retain(|n| n.index != index);
            Ok(())
        }
        async fn routes(&self) -> keel_netkit::Result<Vec<Route>> {
            Ok(self.st.borrow().routes.clone())
        }
        async fn add_route(&self, r: &Route, replace: bool) -> keel_netkit::Result<()> {
            let mut st = self.st.borrow_mut();
            if let Some(pos) = st.routes.iter().position(|x| x.dst == r.dst && x.prefix == r.prefix) {
                if !replace {
                    return Err(errno(EEXIST));
                }
                st.routes[pos] = *r;
            } else {
                st.routes.push(*r);
            }
            Ok(())
        }
        async fn del_route(&self, r: &Route) -> keel_netkit::Result<()> {
            let mut st = self.st.borrow_mut();
            let before = st.routes.len();
            st.routes.retain(|x| !(x.dst == r.dst && x.prefix == r.prefix));
            if st.routes.len() == before {
                Err(errno(3))
            } else {
                Ok(())
            }
        }
        async fn add_neigh(&self, index: u32, ip: Ipv4Addr, mac: &[u8], _replace: bool) -> keel_netkit::Result<()> {
            let mut st = self.st.borrow_mut();
            st.neigh.retain(|n| !(n.index == index && n.ip == Some(ip)));
            st.neigh.push(Neighbour {
                index,
                ip: Some(ip),
                mac: mac.to_vec(),
                permanent: true,
            });
            Ok(())
        }
        async fn neighbours(&self, index: u32) -> keel_netkit::Result<Vec<Neighbour>> {
            Ok(self
                .st
                .borrow()
                .neigh
                .iter()
                .filter(|n| n.index == index)
                .cloned()
                .collect())
        }
        async fn del_neigh(&self, index: u32, ip: Ipv4Addr) -> keel_netkit::Result<()> {
            self.st
                .borrow_mut()
                .neigh
                .retain(|n| !(n.index == index && n.ip == Some(ip)));
            Ok(())
        }
        async fn add_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> keel_netkit::Result<()> {
            let mut st = self.st.borrow_mut();
            st.fdb.retain(|n| !(n.index == index && n.mac == mac));
            st.fdb.push(Neighbour {
                index,
                ip: Some(dst),
                mac: mac.to_vec(),
                permanent: true,
            });
            Ok(())
        }
        async fn fdb(&self, index: u32) -> keel_netkit::Result<Vec<Neighbour>> {
            Ok(self
                .st
                .borrow()
                .fdb
                .iter()
                .filter(|n| n.index == index)
                .cloned()
                .collect())
        }
        async fn del_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> keel_netkit::Result<()> {
            self.st
                .borrow_mut()
                .fdb
                .retain(|n| !(n.index == index && n.mac == mac && n.ip == Some(dst)));
            Ok(())
        }
        fn enable_forwarding(&self) -> keel_netkit::Result<()> {
            self.st.borrow_mut().forwarding = true;
            Ok(())
        }
        fn apply_nft(&self, script: &str) -> Result<()> {
            self.st.borrow_mut().nft.push(script.to_string());
            Ok(())
        }
    }

    /// Linux's EEXIST.
    const EEXIST: i32 = 17;

    fn settings() -> Settings {
        Settings::new("10.42.0.0/16".parse().unwrap())
    }

    #[tokio::test]
    async fn host_gw_sync_adds_removes_and_is_idempotent_leaving_foreign_routes() {
        let local = node("n1", "192.168.1.1", "10.42.1.0/24");
        let all = vec![
            local.clone(),
            node("n2", "192.168.1.2", "10.42.2.0/24"),
            node("n3", "192.168.1.3", "10.42.3.0/24"),
        ];
        let rs = RouteSync::new(Fake::node("192.168.1.1", 24), settings());
        let r = rs.sync(&local, &all).await.unwrap();
        assert_eq!((r.direct.len(), r.vxlan.len(), r.removed.len()), (2, 0, 0));
        let routes = rs.net().keel_routes();
        assert_eq!(routes.len(), 2);
        assert!(routes.iter().any(|r| r.dst == "10.42.3.0".parse::<Ipv4Addr>().unwrap()
            && r.gateway == Some("192.168.1.3".parse().unwrap())
            && r.oif == Some(2)));
        assert!(rs.net().st.borrow().forwarding);
        assert!(rs.net().st.borrow().nft[0].contains("ip saddr 10.42.1.0/24 ip daddr != 10.42.0.0/16 masquerade"));
        assert_eq!(
            rs.sync(&local, &all).await.unwrap().removed,
            vec![],
            "a second sync changes nothing"
        );
        assert_eq!(rs.net().keel_routes(), routes);

        let r = rs.sync(&local, &all[..2]).await.unwrap();
        assert_eq!(r.removed, vec!["10.42.3.0/24".parse().unwrap()]);
        assert_eq!(rs.net().keel_routes().len(), 1);
        assert!(
            rs.net().st.borrow().routes.iter().any(|r| r.protocol == 4),
            "a route keel does not own stays"
        );
        assert!(
            rs.net()
                .st
                .borrow()
                .links
                .iter()
                .all(|l| l.kind.as_deref() != Some("vxlan"))
        );
    }

    #[tokio::test]
    async fn vxlan_peers_get_device_neighbours_and_fdb_which_go_when_they_leave() {
        let local = node("n1", "192.168.1.1", "10.42.1.0/24");
        let far = node("n9", "192.168.9.9", "10.42.9.0/24");
        let rs = RouteSync::new(Fake::node("192.168.1.1", 24), settings());
        let r = rs.sync(&local, &[local.clone(), far.clone()]).await.unwrap();
        assert_eq!(r.vxlan, vec!["n9".to_string()]);
        {
            let st = rs.net().st.borrow();
            let vx = st.links.iter().find(|l| l.name == "keel.vxlan").expect("vxlan device");
            assert_eq!((vx.mtu, vx.mac.clone()), (1450, vtep_mac(local.ip).to_vec()));
            assert!(
                st.addrs
                    .iter()
                    .any(|a| a.index == vx.index && a.ip == "10.42.1.0".parse::<Ipv4Addr>().unwrap() && a.prefix == 32)
            );
            let route = st.routes.iter().find(|r| r.protocol == RTPROT_KEEL_NODE).unwrap();
            assert_eq!(
                (route.gateway, route.oif, route.onlink),
                (Some("10.42.9.0".parse().unwrap()), Some(vx.index), true)
            );
            assert_eq!(
                st.neigh,
                vec![Neighbour {
                    index: vx.index,
                    ip: Some("10.42.9.0".parse().unwrap()),
                    mac: vtep_mac(far.ip).to_vec(),
                    permanent: true
                }]
            );
            assert_eq!(
                st.fdb,
                vec![Neighbour {
                    index: vx.index,
                    ip: Some(far.ip),
                    mac: vtep_mac(far.ip).to_vec(),
                    permanent: true
                }]
            );
        }
        rs.sync(&local, &[local.clone(), far.clone()]).await.unwrap();
        assert_eq!(rs.net().st.borrow().fdb.len(), 1, "idempotent");
        let r = rs.sync(&local, std::slice::from_ref(&local)).await.unwrap();
        assert_eq!(r.removed, vec!["10.42.9.0/24".parse().unwrap()]);
        let st = rs.net().st.borrow();
        assert!(st.links.iter().all(|l| l.name != "keel.vxlan") && st.neigh.is_empty() && st.fdb.is_empty());
    }

    #[tokio::test]
    async fn a_node_whose_ip_or_pod_cidr_changed_gets_its_vtep_remade() {
        let far = node("n9", "192.168.9.9", "10.42.9.0/24");
        let before = node("n1", "192.168.1.1", "10.42.1.0/24");
        let fake = Fake::node("192.168.1.1", 24);
        fake.st.borrow_mut().addrs.push(Addr {
            index: 2,
            ip: "192.168.1.7".parse().unwrap(),
            prefix: 24,
        });
        let rs = RouteSync::new(fake, settings());
        rs.sync(&before, &[before.clone(), far.clone()]).await.unwrap();
        let after = node("n1", "192.168.1.7", "10.42.5.0/24");
        rs.sync(&after, &[after.clone(), far.clone()]).await.unwrap();
        {
            let st = rs.net().st.borrow();
            let vx = st.links.iter().find(|l| l.name == "keel.vxlan").expect("vxlan device");
            assert_eq!(vx.mac, vtep_mac(after.ip).to_vec(), "remade for the new node IP");
            let vtep_addrs: Vec<Ipv4Addr> = st.addrs.iter().filter(|a| a.index == vx.index).map(|a| a.ip).collect();
            assert_eq!(vtep_addrs, vec!["10.42.5.0".parse::<Ipv4Addr>().unwrap()]);
        }
        let moved = node("n1", "192.168.1.7", "10.42.6.0/24");
        rs.sync(&moved, &[moved.clone(), far.clone()]).await.unwrap();
        let st = rs.net().st.borrow();
        let vx = st.links.iter().find(|l| l.name == "keel.vxlan").expect("vxlan device");
        let vtep_addrs: Vec<Ipv4Addr> = st.addrs.iter().filter(|a| a.index == vx.index).map(|a| a.ip).collect();
        assert_eq!(
            vtep_addrs,
            vec!["10.42.6.0".parse::<Ipv4Addr>().unwrap()],
            "the old podCIDR's VTEP address goes"
        );
    }

    #[tokio::test]
    async fn a_local_pod_cidr_outside_the_cluster_changes_nothing() {
        let local = node("n1", "192.168.1.1", "10.99.1.0/24");
        let mut s = settings();
        s.masquerade = false;
        let rs = RouteSync::new(Fake::node("192.168.1.1", 24), s);
        let e = rs
            .sync(&local, &[local.clone(), node("n2", "192.168.1.2", "10.42.2.0/24")])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("outside the cluster CIDR"), "{e}");
        let st = rs.net().st.borrow();
        assert!(!st.forwarding && st.nft.is_empty() && st.routes.len() == 1);
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
