//! [`Netlink`]: rtnetlink requests on a socket bound to one network namespace, with plain Rust types in and out.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};

use crate::{Error, Result, netns};

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MTU.
    pub mtu: u32,
    /// Hardware address (6 bytes for Ethernet-like links, empty for others).
    pub mac: Vec<u8>,
    /// Administratively up.
    pub up: bool,
    /// Link kind (`veth`, `vxlan`, `bridge`...), when it has one.
    pub kind: Option<String>,
    /// Loopback.
    pub loopback: bool,
}

/// An IPv4 address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    /// Interface index.
    pub index: u32,
    /// Address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// An IPv4 route in the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network address.
    pub dst: Ipv4Addr,
    /// Destination prefix length (0 for the default route).
    pub prefix: u8,
    /// Next hop, if any.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// The next hop is on the link even if no address says so.
    pub onlink: bool,
    /// Route protocol number (`RTPROT_*`); Keel marks its own routes with its own number.
    pub protocol: u8,
    /// Link scope (a directly reachable destination) rather than universe.
    pub link_scope: bool,
}

/// A neighbour (ARP or FDB) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    pub index: u32,
    /// IPv4 destination (ARP entry), or the remote VTEP of an FDB entry.
    pub ip: Option<Ipv4Addr>,
    /// Hardware address.
    pub mac: Vec<u8>,
    /// Permanent entry.
    pub permanent: bool,
}

/// A netlink route socket bound to one network namespace. Needs a tokio runtime (its connection runs as a task).
pub struct Netlink {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    move |source| {
        let errno = match &source {
            rtnetlink::Error::NetlinkError(m) => -m.raw_code(),
            _ => 0,
        };
        Error::Netlink {
            op: op.into(),
            errno,
            source,
        }
    }
}

fn connect() -> Result<Netlink> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| Error::Io {
        what: "open netlink route socket".into(),
        source,
    })?;
    let task = tokio::spawn(conn);
    Ok(Netlink { handle, task })
}

impl Netlink {
    /// Send a link creation request; `op` names it in the error.
    async fn link_add(&self, msg: LinkMessage, op: impl Into<String>) -> Result<()> {
        self.handle.link().add(msg).execute().await.map_err(nl_err(op))
    }

    /// Send a link change request; `op` names it in the error.
    async fn link_set(&self, msg: LinkMessage, op: impl Into<String>) -> Result<()> {
        self.handle.link().set(msg).execute().await.map_err(nl_err(op))
    }

    /// A socket in the calling thread's network namespace. Must be called inside a tokio runtime.
    pub fn current() -> Result<Self> {
        connect()
    }

    /// A socket inside the network namespace at `path`. Must be called inside a tokio runtime.
    pub fn in_netns(path: &Path) -> Result<Self> {
        let ns = netns::open(path)?;
        Self::in_netns_file(path, &ns)
    }

    /// Like [`Netlink::in_netns`] with the namespace file already open.
    pub fn in_netns_file(path: &Path, ns: &File) -> Result<Self> {
        let rt = tokio::runtime::Handle::current();
        netns::run_in_file(path, ns, move || {
            let _guard = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| Error::Io {
                what: "open netlink route socket".into(),
                source,
            })?;
            Ok::<_, Error>((conn, handle))
        })?
        .map(|(conn, handle)| Netlink {
            handle,
            task: tokio::spawn(conn),
        })
    }

    /// Like [`Netlink::in_netns_file`], but switching the calling thread into the namespace and back instead of
    /// using a helper thread (see [`netns::run_here_in`]: only for single-threaded programs).
    pub fn in_netns_here(path: &Path, ns: &File) -> Result<Self> {
        netns::run_here_in(path, ns, || {
            rtnetlink::new_connection().map_err(|source| Error::Io {
                what: "open netlink route socket".into(),
                source,
            })
        })?
        .map(|(conn, handle, _)| Netlink {
            handle,
            task: tokio::spawn(conn),
        })
    }

    // ---- links ----

    /// All links.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl_err("list links"))?;
        Ok(msgs.iter().map(link_of).collect())
    }

    /// The link called `name`, if there is one.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let res: std::result::Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_collect()
            .await;
        match res {
            Ok(msgs) => Ok(msgs.first().map(link_of)),
            Err(e) => {
                let e = nl_err(format!("get link {name}"))(e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    /// The link with index `index`, if there is one.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let res: std::result::Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_collect()
            .await;
        match res {
            Ok(msgs) => Ok(msgs.first().map(link_of)),
            Err(e) => {
                let e = nl_err(format!("get link {index}"))(e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    /// Create a veth pair: `name` here, `peer` created directly inside the namespace `peer_ns` (so the peer's name
    /// may collide only there), both with `mtu`; `name` is created up when `up` (the peer cannot be: the kernel
    /// refuses to open a veth end before its pair is linked, ENOTCONN).
    pub async fn add_veth(&self, name: &str, peer: &str, mtu: u32, peer_ns: &File, up: bool) -> Result<()> {
        use std::os::fd::AsRawFd;
        let peer_msg = LinkUnspec::new_with_name(peer)
            .mtu(mtu)
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let mut b = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth);
        if up {
            b = b.up();
        }
        let msg = b
            .name(name)
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.link_add(msg, format!("add veth {name} peer {peer}")).await
    }

    /// Create a plain veth pair with both ends in this namespace.
    pub async fn add_veth_local(&self, name: &str, peer: &str) -> Result<()> {
        let msg = LinkVeth::new(name, peer).build();
        self.link_add(msg, format!("add veth {name} peer {peer}")).await
    }

    /// Create a bridge.
    pub async fn add_bridge(&self, name: &str) -> Result<()> {
        let msg = rtnetlink::LinkBridge::new(name).build();
        self.link_add(msg, format!("add bridge {name}")).await
    }

    /// Create a VXLAN device with VNI `vni`, local address `local`, UDP port `port`, no learning (Keel programs
    /// the FDB), the given `mtu` and hardware address, up.
    pub async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
        mtu: u32,
        mac: [u8; 6],
    ) -> Result<()> {
        let msg = LinkVxlan::new(name, vni)
            .local(local)
            .port(port)
            .learning(false)
            .mtu(mtu)
            .address(mac.to_vec())
            .up()
            .build();
        self.link_add(msg, format!("add vxlan {name} vni {vni}")).await
    }

    /// Bring a link up.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.link_set(msg, format!("set link {index} up")).await
    }

    /// Bring a link down.
    pub async fn set_down(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.link_set(msg, format!("set link {index} down")).await
    }

    /// Set a link's MTU.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.link_set(msg, format!("set link {index} mtu {mtu}")).await
    }

    /// Attach a link to a bridge.
    pub async fn set_controller(&self, index: u32, bridge: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).controller(bridge).build();
        self.link_set(msg, format!("set link {index} master {bridge}")).await
    }

    /// Move a link into the network namespace `ns`.
    pub async fn set_netns(&self, index: u32, ns: &File) -> Result<()> {
        use std::os::fd::AsRawFd;
        let msg = LinkUnspec::new_with_index(index).setns_by_fd(ns.as_raw_fd()).build();
        self.link_set(msg, format!("move link {index} to netns")).await
    }

    /// Delete a link (a veth's peer goes with it).
    pub async fn del_link(&self, index: u32) -> Result<()> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(nl_err(format!("delete link {index}")))
    }

    // ---- addresses ----

    /// All IPv4 addresses.
    pub async fn addrs(&self) -> Result<Vec<Addr>> {
        let mut req = self.handle.address().get();
        // Ask the kernel for IPv4 only: a node with many pods has an IPv6 link-local address per veth.
        req.message_mut().header.family = AddressFamily::Inet;
        let msgs: Vec<_> = req.execute().try_collect().await.map_err(nl_err("list addresses"))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.family == AddressFamily::Inet)
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                });
                let ip = ip.or_else(|| {
                    m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    })
                })?;
                Some(Addr {
                    index: m.header.index,
                    ip,
                    prefix: m.header.prefix_len,
                })
            })
            .collect())
    }

    /// Add an IPv4 address.
    pub async fn add_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(nl_err(format!("add address {ip}/{prefix} on link {index}")))
    }

    /// Delete an IPv4 address.
    pub async fn del_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut msg = rtnetlink::packet_route::address::AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        msg.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(nl_err(format!("delete address {ip}/{prefix} on link {index}")))
    }

    // ---- routes ----

    /// All IPv4 routes of the main table.
    pub async fn routes(&self) -> Result<Vec<Route>> {
        let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(req)
            .execute()
            .try_collect()
            .await
            .map_err(nl_err("list routes"))?;
        Ok(msgs
            .iter()
            .filter(|m| {
                m.header.address_family == AddressFamily::Inet && table_of(m) == RouteHeader::RT_TABLE_MAIN as u32
            })
            .filter(|m| m.header.kind == RouteType::Unicast)
            .map(route_of)
            .collect())
    }

    /// The route the kernel would use to reach `dst` (`ip route get`), or `None` when it has none.
    pub async fn route_to(&self, dst: Ipv4Addr) -> Result<Option<Route>> {
        let req = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, 32)
            .build();
        let res: std::result::Result<Vec<RouteMessage>, _> = self.handle.route().get(req).execute().try_collect().await;
        match res {
            Ok(msgs) => Ok(msgs.first().map(route_of)),
            Err(e) => {
                let e = nl_err(format!("get route to {dst}"))(e);
                if matches!(
                    e.errno(),
                    Some(nix::libc::ENETUNREACH | nix::libc::EHOSTUNREACH | nix::libc::ENOENT)
                ) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn route_msg(r: &Route) -> RouteMessage {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(r.dst, r.prefix)
            .protocol(RouteProtocol::from(r.protocol));
        if let Some(gw) = r.gateway {
            b = b.gateway(gw);
        }
        if let Some(oif) = r.oif {
            b = b.output_interface(oif);
        }
        if r.onlink {
            b = b.onlink();
        }
        if r.link_scope {
            b = b.scope(RouteScope::Link);
        }
        b.build()
    }

    /// Add a route; with `replace`, replace one to the same destination.
    pub async fn add_route(&self, r: &Route, replace: bool) -> Result<()> {
        let mut req = self.handle.route().add(Self::route_msg(r));
        if replace {
            req = req.replace();
        }
        req.execute()
            .await
            .map_err(nl_err(format!("add route {}/{}", r.dst, r.prefix)))
    }

    /// Delete a route.
    pub async fn del_route(&self, r: &Route) -> Result<()> {
        self.handle
            .route()
            .del(Self::route_msg(r))
            .execute()
            .await
            .map_err(nl_err(format!("delete route {}/{}", r.dst, r.prefix)))
    }

    // ---- neighbours and FDB ----

    /// Add (or with `replace`, replace) a permanent ARP entry `ip` → `mac` on link `index`.
    pub async fn add_neigh(&self, index: u32, ip: Ipv4Addr, mac: &[u8], replace: bool) -> Result<()> {
        let mut req = self
            .handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(mac);
        if replace {
            req = req.replace();
        }
        req.execute()
            .await
            .map_err(nl_err(format!("add neighbour {ip} on link {index}")))
    }

    /// IPv4 ARP entries (family inet) on link `index`.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<Neighbour>> {
        let msgs: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl_err("list neighbours"))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index && m.header.family == AddressFamily::Inet)
            .map(neigh_of)
            .collect())
    }

    /// Delete the ARP entry for `ip` on link `index`.
    pub async fn del_neigh(&self, index: u32, ip: Ipv4Addr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.handle
            .neighbours()
            .del(msg)
            .execute()
            .await
            .map_err(nl_err(format!("delete neighbour {ip} on link {index}")))
    }

    /// Add (or replace) a permanent FDB entry on a VXLAN device: frames to `mac` go to the VTEP at `dst`.
    pub async fn add_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> Result<()> {
        self.handle
            .neighbours()
            .add_bridge(index, mac)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .destination(IpAddr::V4(dst))
            .replace()
            .execute()
            .await
            .map_err(nl_err(format!("add fdb entry via {dst} on link {index}")))
    }

    /// FDB entries (family bridge) on link `index`.
    pub async fn fdb(&self, index: u32) -> Result<Vec<Neighbour>> {
        let msgs: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .map_err(nl_err("list fdb"))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index)
            .map(neigh_of)
            .collect())
    }

    /// Delete an FDB entry.
    pub async fn del_fdb(&self, index: u32, mac: &[u8], dst: Ipv4Addr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
        self.handle
            .neighbours()
            .del(msg)
            .execute()
            .await
            .map_err(nl_err(format!("delete fdb entry via {dst} on link {index}")))
    }
}

fn table_of(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(m.header.table as u32)
}

fn route_of(m: &RouteMessage) -> Route {
    let mut r = Route {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix: m.header.destination_prefix_length,
        gateway: None,
        oif: None,
        onlink: m.header.flags.contains(RouteFlags::Onlink),
        protocol: m.header.protocol.into(),
        link_scope: m.header.scope == RouteScope::Link,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => r.dst = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => r.gateway = Some(*ip),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            _ => {}
        }
    }
    r
}

fn neigh_of(m: &NeighbourMessage) -> Neighbour {
    let mut n = Neighbour {
        index: m.header.ifindex,
        ip: None,
        mac: Vec::new(),
        permanent: m.header.state == NeighbourState::Permanent,
    };
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => n.ip = Some(*ip),
            // FDB entries (family bridge) carry the VTEP address undecoded.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                n.ip = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            NeighbourAttribute::LinkLayerAddress(mac) => n.mac = mac.clone(),
            _ => {}
        }
    }
    n
}

fn link_of(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        mtu: 0,
        mac: Vec::new(),
        up: m.header.flags.contains(LinkFlags::Up),
        kind: None,
        loopback: m.header.flags.contains(LinkFlags::Loopback),
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(mtu) => l.mtu = *mtu,
            LinkAttribute::Address(mac) => l.mac = mac.clone(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    l
}
