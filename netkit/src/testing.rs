//! Test helpers (feature `testing`): named network namespaces and veth links between them, removed on drop, also
//! when the test panics. Names carry the test process id so parallel test processes never collide.

// Test helpers panic with a message by design: a test that cannot build its namespaces must fail loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::{Netlink, netns};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A named network namespace at `/var/run/netns/NAME` (usable with `nsenter --net=PATH` and `ip -n NAME`), with
/// loopback up. Dropping it unmounts and removes the name; the kernel frees the namespace and every interface
/// inside it once no process or socket holds it.
pub struct TestNetns {
    name: String,
    path: PathBuf,
}

impl TestNetns {
    /// Create a namespace named `PREFIX-PID-SEQ`. Panics with a message when it cannot (not root, no netns
    /// support).
    pub fn new(prefix: &str) -> Self {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = netns::named(&name);
        std::fs::create_dir_all(netns::NETNS_RUN_DIR)
            .unwrap_or_else(|e| panic!("create {}: {e} (tests need root)", netns::NETNS_RUN_DIR));
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e} (tests need root)", path.display()));
        let ns = TestNetns { name, path };
        let target = ns.path.clone();
        std::thread::spawn(move || -> nix::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .unwrap_or_else(|_| panic!("netns thread panicked"))
        .unwrap_or_else(|e| panic!("make network namespace {}: {e} (tests need root)", ns.name));
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A netlink socket inside this namespace (inside a tokio runtime).
    pub fn netlink(&self) -> Netlink {
        Netlink::in_netns(&self.path).unwrap_or_else(|e| panic!("netlink in {}: {e}", self.name))
    }

    /// Bring loopback up.
    pub async fn lo_up(&self) {
        let nl = self.netlink();
        let lo = nl
            .link_by_name("lo")
            .await
            .expect("get lo")
            .expect("no lo in a new netns");
        nl.set_up(lo.index).await.expect("set lo up");
    }

    /// Run `f` on a thread inside this namespace (sockets it creates stay in the namespace).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(&self.path, f).unwrap_or_else(|e| panic!("enter {}: {e}", self.name))
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH) {
            eprintln!("unmount {}: {e}", self.path.display());
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("remove {}: {e}", self.path.display());
        }
    }
}

/// Join `a` and `b` with a veth (`a_if` in `a`, `b_if` in `b`), give each end an address (`/prefix`) if asked,
/// and bring both up. The link dies with either namespace.
pub async fn veth_between(
    a: &TestNetns,
    a_if: &str,
    a_ip: Option<(Ipv4Addr, u8)>,
    b: &TestNetns,
    b_if: &str,
    b_ip: Option<(Ipv4Addr, u8)>,
) {
    let b_file = netns::open(b.path()).expect("open peer netns");
    let na = a.netlink();
    let nb = b.netlink();
    na.add_veth(a_if, b_if, 1500, &b_file, false)
        .await
        .unwrap_or_else(|e| panic!("veth {a_if} -- {b_if}: {e}"));
    for (nl, ifname, ip) in [(&na, a_if, a_ip), (&nb, b_if, b_ip)] {
        let link = nl
            .link_by_name(ifname)
            .await
            .expect("get veth")
            .expect("veth end missing");
        if let Some((ip, prefix)) = ip {
            nl.add_addr(link.index, ip, prefix)
                .await
                .unwrap_or_else(|e| panic!("address on {ifname}: {e}"));
        }
        nl.set_up(link.index)
            .await
            .unwrap_or_else(|e| panic!("up {ifname}: {e}"));
    }
}

/// Put `a` on the bridge `bridge` (created in `sw` when missing) through a veth: `a_if` in `a` (with `a_ip`),
/// `port` in `sw` attached to the bridge.
pub async fn attach_to_bridge(
    sw: &TestNetns,
    bridge: &str,
    port: &str,
    a: &TestNetns,
    a_if: &str,
    a_ip: (Ipv4Addr, u8),
) {
    let nsw = sw.netlink();
    let br = match nsw.link_by_name(bridge).await.expect("get bridge") {
        Some(l) => l,
        None => {
            nsw.add_bridge(bridge)
                .await
                .unwrap_or_else(|e| panic!("bridge {bridge}: {e}"));
            let l = nsw
                .link_by_name(bridge)
                .await
                .expect("get bridge")
                .expect("bridge missing after create");
            nsw.set_up(l.index).await.expect("bridge up");
            l
        }
    };
    veth_between(sw, port, None, a, a_if, Some(a_ip)).await;
    let p = nsw.link_by_name(port).await.expect("get port").expect("port missing");
    nsw.set_controller(p.index, br.index)
        .await
        .unwrap_or_else(|e| panic!("attach {port} to {bridge}: {e}"));
}
