//! The CNI commands. Each takes the validated config and the runtime's environment and returns the JSON to print
//! (or nothing), or a [`CniError`]. Netlink goes through `keel-netkit`; addresses through [`crate::ipam`].
//!
//! Pod side: `CNI_IFNAME` (one end of a veth made directly inside the pod netns) with the pod's /32, a permanent
//! neighbour entry for the link-local gateway 169.254.1.1 pointing at the host end's MAC, and a default route via
//! that gateway (onlink). Host side: the other end, named `kc<hash of containerID and ifname>`, with a /32 route to
//! the pod and a permanent neighbour entry for the pod. No bridge, no ARP on either side, no proxy ARP sysctl.

use std::collections::HashSet;
use std::fs::File;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::Path;

use keel_netkit::{Addr, Link, Netlink, Route};
use serde_json::Value;
use tracing::{debug, info_span, warn};

use crate::config::{Command, Env, NetConf};
use crate::ipam::{self, Ipam, Owner};
use crate::spec::{self, Attachment, CniError, code};

/// The pod's gateway: link-local, answered by a static neighbour entry (as Calico does with proxy ARP).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Route protocol number on the host routes to pods (shown by `ip route` as `proto 75`).
pub const RTPROT_KEEL_POD: u8 = 75;

/// VXLAN encapsulation overhead (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// Prefix of host-side veth names.
pub const HOST_IF_PREFIX: &str = "kc";

/// The host veth name of an attachment: `kc` + 12 hex digits of its hash (14 characters, under IFNAMSIZ).
pub fn host_if_name(owner: &Owner) -> String {
    format!("{HOST_IF_PREFIX}{:012x}", owner.hash() >> 16)
}

fn kernel(what: &str) -> impl FnOnce(keel_netkit::Error) -> CniError + '_ {
    move |e| CniError::new(code::KERNEL, format!("{what} failed")).details(e.to_string())
}

fn ipam_err(e: ipam::Error) -> CniError {
    let c = match &e {
        ipam::Error::Exhausted(_) => code::RANGE_EXHAUSTED,
        ipam::Error::AlreadyReserved { .. } => code::NAME_COLLISION,
        ipam::Error::Io { .. } => code::IO_FAILURE,
    };
    CniError::new(c, e.to_string())
}

/// Run one command. `stdin` is the raw config (VERSION answers even when it is not a valid keel config).
pub fn run(env: &Env, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let cmd = env.command()?;
    if cmd == Command::Version {
        return Ok(Some(spec::version_result(&crate::config::version_of(stdin))));
    }
    let conf = crate::config::parse(stdin)?;
    let need = |min: &str| {
        if spec::at_least(&conf.cni_version, min) {
            Ok(())
        } else {
            Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "CNI_COMMAND {cmd:?} needs cniVersion {min} or newer; the config says {}",
                    conf.cni_version
                ),
            ))
        }
    };
    match cmd {
        Command::Check => need("0.4.0")?,
        Command::Gc | Command::Status => need("1.1.0")?,
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io() // netlink sockets only; no timers
        .build()
        .map_err(|e| CniError::new(code::IO_FAILURE, "cannot start the async runtime").details(e.to_string()))?;
    rt.block_on(async {
        match cmd {
            Command::Add => add(&conf, env).await.map(Some),
            Command::Del => del(&conf, env).await.map(|_| None),
            Command::Check => check(&conf, env).await.map(|_| None),
            Command::Gc => gc(&conf).await.map(|_| None),
            Command::Status => status(&conf).map(|_| None),
            Command::Version => Ok(None),
        }
    })
}

fn open_netns(path: &str) -> Result<File, CniError> {
    let f = File::open(path).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("CNI_NETNS {path} does not exist; create the pod's network namespace first"),
            )
        } else {
            CniError::new(code::INVALID_ENV, format!("CNI_NETNS {path} cannot be opened")).details(e.to_string())
        }
    })?;
    // A pod end named CNI_IFNAME with a default route must never land in the node's own namespace.
    use std::os::unix::fs::MetadataExt;
    if let (Ok(target), Ok(own)) = (f.metadata(), std::fs::metadata("/proc/thread-self/ns/net"))
        && (target.dev(), target.ino()) == (own.dev(), own.ino())
    {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_NETNS {path} is the node's own network namespace; pass the pod's network namespace"),
        ));
    }
    Ok(f)
}

/// Refuse a podCIDR that overlaps an address range already on a node link (pods would shadow it).
fn check_overlap(addrs: &[Addr], conf: &NetConf) -> Result<(), CniError> {
    for a in addrs.iter().filter(|a| a.prefix < 32 && !a.ip.is_loopback()) {
        let net = crate::cidr::Ipv4Net::new(a.ip, a.prefix).unwrap_or(conf.pod_cidr);
        if net.overlaps(&conf.pod_cidr) {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "podCIDR {} overlaps {}/{} already on node interface index {}; give the node a podCIDR outside its link networks",
                    conf.pod_cidr, a.ip, a.prefix, a.index
                ),
            ));
        }
    }
    Ok(())
}

/// The default pod MTU: the uplink's MTU (the default route's link, else the smallest MTU among up links holding
/// an address of `addrs`) minus the VXLAN overhead, so pods fit whichever way route sync reaches a peer.
pub async fn default_mtu(host: &Netlink, addrs: &[Addr]) -> Result<u32, keel_netkit::Error> {
    // The route to an address outside any local network is the default route, if there is one.
    let default_oif = host.route_to(Ipv4Addr::new(192, 0, 2, 1)).await?.and_then(|r| r.oif);
    let uplink = match default_oif {
        Some(i) => host.link_by_index(i).await?.map(|l| l.mtu),
        None => None,
    };
    let uplink = match uplink {
        Some(m) => m,
        None => {
            let mut indexes: Vec<u32> = addrs
                .iter()
                .filter(|a| a.prefix < 32 && !a.ip.is_loopback())
                .map(|a| a.index)
                .collect();
            indexes.dedup();
            let mut best: Option<u32> = None;
            for i in indexes {
                if let Some(l) = host.link_by_index(i).await?
                    && l.up
                    && !l.loopback
                    && !l.name.starts_with(HOST_IF_PREFIX)
                {
                    best = Some(best.map_or(l.mtu, |b| b.min(l.mtu)));
                }
            }
            best.unwrap_or(1500)
        }
    };
    Ok(uplink.saturating_sub(VXLAN_OVERHEAD).max(576))
}

async fn add(conf: &NetConf, env: &Env) -> Result<Value, CniError> {
    let cid = env.container_id()?;
    let ifname = env.ifname()?;
    let netns = env.netns()?;
    let _span = info_span!("add", container = cid, ifname, netns).entered();
    let ns_file = open_netns(netns)?;
    let host = Netlink::current().map_err(kernel("open netlink"))?;
    let pod = Netlink::in_netns_here(Path::new(netns), &ns_file).map_err(|e| {
        CniError::new(
            code::INVALID_ENV,
            format!("CNI_NETNS {netns} is not a network namespace"),
        )
        .details(e.to_string())
    })?;
    let addrs = host.addrs().await.map_err(kernel("list node addresses"))?;
    check_overlap(&addrs, conf)?;
    let owner = Owner::new(cid, ifname);
    let host_if = host_if_name(&owner);
    if pod
        .link_by_name(ifname)
        .await
        .map_err(kernel("look up CNI_IFNAME"))?
        .is_some()
    {
        return Err(CniError::new(
            code::NAME_COLLISION,
            format!(
                "interface {ifname} already exists in netns {netns}; use another CNI_IFNAME or DEL the attachment that made it"
            ),
        ));
    }
    if host
        .link_by_name(&host_if)
        .await
        .map_err(kernel("look up host veth"))?
        .is_some()
    {
        return Err(CniError::new(
            code::NAME_COLLISION,
            format!("attachment {cid}/{ifname} already exists on the node (host veth {host_if}); DEL it first"),
        ));
    }
    let mtu = match conf.mtu {
        Some(m) => m,
        None => default_mtu(&host, &addrs)
            .await
            .map_err(kernel("find the uplink MTU"))?,
    };
    let ipam = Ipam::new(&conf.data_dir, &conf.name, conf.pod_cidr);
    let ip = ipam.reserve(&owner).map_err(ipam_err)?;
    debug!(%ip, host_if, mtu, "reserved");
    match wire(&host, &pod, &ns_file, &host_if, ifname, ip, mtu).await {
        Ok((hl, pl)) => {
            let att = Attachment {
                host_if,
                host_mac: mac6(&hl.mac),
                pod_if: ifname.to_string(),
                pod_mac: mac6(&pl.mac),
                sandbox: netns.to_string(),
                mtu,
                ip,
                gateway: GATEWAY,
            };
            Ok(spec::add_result(&att, &conf.cni_version))
        }
        Err(e) => {
            // Undo everything this ADD made: the veth (its pod end and routes go with it) and the reservation.
            if let Ok(Some(l)) = host.link_by_name(&host_if).await
                && let Err(de) = host.del_link(l.index).await
            {
                warn!(host_if, error = %de, "cleanup after failed ADD could not delete the host veth");
            }
            if let Err(re) = ipam.release(&owner) {
                warn!(error = %re, "cleanup after failed ADD could not release the address");
            }
            Err(e)
        }
    }
}

fn mac6(m: &[u8]) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, b) in out.iter_mut().zip(m) {
        *o = *b;
    }
    out
}

async fn wire(
    host: &Netlink,
    pod: &Netlink,
    ns_file: &File,
    host_if: &str,
    ifname: &str,
    ip: Ipv4Addr,
    mtu: u32,
) -> Result<(Link, Link), CniError> {
    host.add_veth(host_if, ifname, mtu, ns_file, true).await.map_err(|e| {
        if e.is_exists() {
            CniError::new(
                code::NAME_COLLISION,
                format!("interface {ifname} or {host_if} appeared while adding; retry or pick another CNI_IFNAME"),
            )
            .details(e.to_string())
        } else {
            kernel("create the veth pair")(e)
        }
    })?;
    let missing = |what: &str| CniError::new(code::KERNEL, format!("{what} vanished right after it was created"));
    let hl = host
        .link_by_name(host_if)
        .await
        .map_err(kernel("look up host veth"))?
        .ok_or_else(|| missing(host_if))?;
    let pl = pod
        .link_by_name(ifname)
        .await
        .map_err(kernel("look up pod interface"))?
        .ok_or_else(|| missing(ifname))?;
    pod.add_addr(pl.index, ip, 32)
        .await
        .map_err(kernel("add the pod address"))?;
    pod.set_up(pl.index)
        .await
        .map_err(kernel("bring the pod interface up"))?;
    pod.add_neigh(pl.index, GATEWAY, &hl.mac, true)
        .await
        .map_err(kernel("add the gateway neighbour in the pod"))?;
    pod.add_route(&default_route(pl.index), true)
        .await
        .map_err(kernel("add the pod default route"))?;
    host.add_route(&host_route(ip, hl.index), true)
        .await
        .map_err(kernel("add the host route to the pod"))?;
    host.add_neigh(hl.index, ip, &pl.mac, true)
        .await
        .map_err(kernel("add the pod neighbour on the host"))?;
    Ok((hl, pl))
}

fn default_route(oif: u32) -> Route {
    Route {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
        gateway: Some(GATEWAY),
        oif: Some(oif),
        onlink: true,
        protocol: RTPROT_KEEL_POD,
        link_scope: false,
    }
}

fn host_route(ip: Ipv4Addr, oif: u32) -> Route {
    Route {
        dst: ip,
        prefix: 32,
        gateway: None,
        oif: Some(oif),
        onlink: false,
        protocol: RTPROT_KEEL_POD,
        link_scope: true,
    }
}

async fn del(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let cid = env.container_id()?;
    let ifname = env.ifname()?;
    let _span = info_span!("del", container = cid, ifname).entered();
    let owner = Owner::new(cid, ifname);
    let host = Netlink::current().map_err(kernel("open netlink"))?;
    delete_host_link(&host, &host_if_name(&owner)).await?;
    Ipam::new(&conf.data_dir, &conf.name, conf.pod_cidr)
        .release(&owner)
        .map_err(ipam_err)?;
    Ok(())
}

async fn delete_host_link(host: &Netlink, name: &str) -> Result<(), CniError> {
    if let Some(l) = host.link_by_name(name).await.map_err(kernel("look up host veth"))? {
        match host.del_link(l.index).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(kernel("delete the host veth")(e)),
        }
    }
    Ok(())
}

async fn check(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let cid = env.container_id()?;
    let ifname = env.ifname()?;
    let netns = env.netns()?;
    let _span = info_span!("check", container = cid, ifname).entered();
    let owner = Owner::new(cid, ifname);
    let bad = |m: String| CniError::new(code::CHECK_FAILED, m);
    let ip = Ipam::new(&conf.data_dir, &conf.name, conf.pod_cidr)
        .find(&owner)
        .map_err(ipam_err)?
        .ok_or_else(|| bad(format!("attachment {cid}/{ifname} holds no address; ADD it again")))?;
    if let Some(prev) = &conf.prev_result {
        let want = format!("{ip}/32");
        let listed = prev
            .get("ips")
            .and_then(Value::as_array)
            .is_some_and(|ips| ips.iter().any(|i| i["address"] == want.as_str()));
        if !listed {
            return Err(bad(format!(
                "prevResult does not list {want}, the address this attachment holds"
            )));
        }
    }
    let ns_file = open_netns(netns)?;
    let host = Netlink::current().map_err(kernel("open netlink"))?;
    let pod = Netlink::in_netns_here(Path::new(netns), &ns_file).map_err(kernel("open netlink in the pod netns"))?;
    let host_if = host_if_name(&owner);
    let hl = host
        .link_by_name(&host_if)
        .await
        .map_err(kernel("look up host veth"))?
        .ok_or_else(|| bad(format!("host veth {host_if} is missing")))?;
    if !hl.up {
        return Err(bad(format!("host veth {host_if} is down")));
    }
    let routes = host.routes().await.map_err(kernel("list node routes"))?;
    if !routes
        .iter()
        .any(|r| r.dst == ip && r.prefix == 32 && r.oif == Some(hl.index))
    {
        return Err(bad(format!("node route {ip}/32 dev {host_if} is missing")));
    }
    let pl = pod
        .link_by_name(ifname)
        .await
        .map_err(kernel("look up pod interface"))?
        .ok_or_else(|| bad(format!("interface {ifname} is missing in netns {netns}")))?;
    if !pl.up {
        return Err(bad(format!("interface {ifname} in netns {netns} is down")));
    }
    if pl.mtu != hl.mtu {
        return Err(bad(format!(
            "interface {ifname} has MTU {} but the host veth has {}",
            pl.mtu, hl.mtu
        )));
    }
    let addrs = pod.addrs().await.map_err(kernel("list pod addresses"))?;
    if !addrs
        .iter()
        .any(|a| a.index == pl.index && a.ip == ip && a.prefix == 32)
    {
        return Err(bad(format!("interface {ifname} in netns {netns} lacks {ip}/32")));
    }
    let pod_routes = pod.routes().await.map_err(kernel("list pod routes"))?;
    if !pod_routes
        .iter()
        .any(|r| r.prefix == 0 && r.gateway == Some(GATEWAY) && r.oif == Some(pl.index))
    {
        return Err(bad(format!(
            "default route via {GATEWAY} dev {ifname} is missing in netns {netns}"
        )));
    }
    let neigh = pod.neighbours(pl.index).await.map_err(kernel("list pod neighbours"))?;
    if !neigh.iter().any(|n| n.ip == Some(GATEWAY) && n.mac == hl.mac) {
        return Err(bad(format!(
            "gateway neighbour {GATEWAY} on {ifname} does not point at {host_if}"
        )));
    }
    Ok(())
}

async fn gc(conf: &NetConf) -> Result<(), CniError> {
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "GC needs \"cni.dev/valid-attachments\" in the config (an empty list removes everything)",
        )
    })?;
    let _span = info_span!("gc", keep = valid.len()).entered();
    let keep: HashSet<Owner> = valid.iter().map(|v| Owner::new(&v.container_id, &v.ifname)).collect();
    let gone = Ipam::new(&conf.data_dir, &conf.name, conf.pod_cidr)
        .retain(&keep)
        .map_err(ipam_err)?;
    let host = Netlink::current().map_err(kernel("open netlink"))?;
    for owner in &gone {
        delete_host_link(&host, &host_if_name(owner)).await?;
    }
    Ok(())
}

fn status(conf: &NetConf) -> Result<(), CniError> {
    let ipam = Ipam::new(&conf.data_dir, &conf.name, conf.pod_cidr);
    match ipam.free() {
        Ok(0) => Err(CniError::new(
            code::NOT_AVAILABLE,
            format!(
                "no free address left in podCIDR {}; DEL unused pods or run GC",
                conf.pod_cidr
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(CniError::new(code::NOT_AVAILABLE, "IPAM store unreadable").details(e.to_string())),
    }
}

/// The whole plugin run: returns what to print on stdout and the exit code.
pub fn main_with(env: &Env, stdin: &[u8]) -> (String, i32) {
    match run(env, stdin) {
        Ok(Some(v)) => (v.to_string(), 0),
        Ok(None) => (String::new(), 0),
        Err(e) => (e.to_json(&crate::config::version_of(stdin)).to_string(), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_fit_ifnamsiz_and_are_stable_per_attachment() {
        let a = host_if_name(&Owner::new(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "eth0",
        ));
        assert_eq!(a.len(), 14);
        assert!(a.starts_with(HOST_IF_PREFIX));
        assert_eq!(
            a,
            host_if_name(&Owner::new(
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "eth0"
            ))
        );
        assert_ne!(
            a,
            host_if_name(&Owner::new(
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "eth1"
            ))
        );
    }

    #[test]
    fn commands_without_kernel_work_answer_on_stdout_with_exit_codes() {
        let env = |cmd: &str| Env {
            command: Some(cmd.into()),
            ..Default::default()
        };
        let (out, rc) = main_with(&env("VERSION"), br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(rc, 0);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        let (out, rc) = main_with(
            &env("ADD"),
            br#"{"cniVersion":"1.0.0","name":"k","podCIDR":"10.42.1.0/24"}"#,
        );
        assert_eq!(rc, 1);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v["code"].as_u64(), v["cniVersion"].as_str()),
            (Some(4), Some("1.0.0")),
            "{v}"
        );
        let (out, rc) = main_with(&Env::default(), b"");
        assert_eq!(rc, 1);
        assert!(out.contains("CNI_COMMAND is not set"), "{out}");
        let cfg = br#"{"cniVersion":"1.0.0","name":"k","podCIDR":"10.42.1.0/24"}"#;
        let (out, _) = main_with(&env("STATUS"), cfg);
        assert!(out.contains("\"code\":1"), "STATUS needs 1.1.0: {out}");
    }
}
