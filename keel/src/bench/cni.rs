//! `keel bench cni`: in one run, (1) ADD and DEL latency of the `keel-cni` binary and of the reference `bridge` +
//! `host-local` plugins over the same number of pods, each plugin process timed from spawn to exit inside a node
//! network namespace; (2) TCP throughput pod-to-pod across two nodes (keel-cni pods, route sync host-gw) against
//! node-to-node throughput on the same underlay (the limit). Everything runs in namespaces this command makes and
//! removes. Needs root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_cni::routesync::{NodeInfo, RouteSync, Settings};
use keel_netkit::testing::{TestNetns, veth_between};
use keel_netkit::{Netlink, netns};
use serde_json::{Value, json};

use super::api::percentile;

use super::CniArgs;

/// Goal: keel-cni ADD p50 at most this fraction of the reference's.
const GOAL_ADD_RATIO: f64 = 0.2;
/// Goal: cross-node pod throughput at least this fraction of node-to-node.
const GOAL_TPUT_RATIO: f64 = 0.95;

/// One plugin under test.
struct Plugin<'a> {
    bin: &'a Path,
    cni_path: &'a str,
    config: &'a Value,
    /// CNI_IFNAME it uses in each pod (the two plugins share the pod namespaces).
    ifname: &'a str,
    tag: &'a str,
}

/// Run one plugin command inside `node`, timing the plugin process only (spawn to exit), in milliseconds.
fn run_plugin(node: &Path, p: &Plugin<'_>, cmd: &str, i: usize, pod: &Path) -> Result<f64> {
    let config = p.config.to_string();
    let id = format!("{}-{i}", p.tag);
    let (ms, out) = netns::run_in(node, || -> Result<(f64, std::process::Output)> {
        let start = Instant::now();
        let mut child = Command::new(p.bin)
            .env_clear()
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", &id)
            .env("CNI_NETNS", pod)
            .env("CNI_IFNAME", p.ifname)
            .env("CNI_PATH", p.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", p.bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(config.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok((start.elapsed().as_secs_f64() * 1e3, out))
    })??;
    if !out.status.success() {
        bail!(
            "{} {cmd} {id} failed: {}{}",
            p.bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(ms)
}

#[derive(Default)]
struct Latency {
    add: Vec<f64>,
    del: Vec<f64>,
}

/// ADD every pod with each plugin, alternating plugin by plugin so both see the same machine load, then DEL them
/// the same way.
fn measure(node: &Path, plugins: &[Plugin<'_>], pods: &[TestNetns]) -> Result<Vec<Latency>> {
    let mut lat: Vec<Latency> = plugins.iter().map(|_| Latency::default()).collect();
    for (i, pod) in pods.iter().enumerate() {
        for (p, l) in plugins.iter().zip(lat.iter_mut()) {
            l.add.push(run_plugin(node, p, "ADD", i, pod.path())?);
        }
    }
    for (i, pod) in pods.iter().enumerate() {
        for (p, l) in plugins.iter().zip(lat.iter_mut()) {
            l.del.push(run_plugin(node, p, "DEL", i, pod.path())?);
        }
    }
    Ok(lat)
}

/// Send for `secs` seconds from a socket made in `from` to a listener made in `to` at `ip`; bits per second as
/// counted by the receiver.
fn blast(from: &TestNetns, to: &TestNetns, ip: Ipv4Addr, secs: f64) -> Result<f64> {
    let listener: TcpListener = to
        .run(|| TcpListener::bind((ip, 0)))
        .with_context(|| format!("bind {ip}"))?;
    let addr: SocketAddr = listener.local_addr()?;
    let rx = std::thread::spawn(move || -> Result<f64> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        let mut start = None;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            start.get_or_insert_with(Instant::now);
            total += n as u64;
        }
        let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        Ok(if secs > 0.0 { total as f64 * 8.0 / secs } else { 0.0 })
    });
    let mut s = from
        .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
        .with_context(|| format!("connect {addr}"))?;
    let buf = vec![0x5au8; 256 * 1024];
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        s.write_all(&buf)?;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    rx.join().map_err(|_| anyhow::anyhow!("receiver thread panicked"))?
}

fn default_plugin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("keel-cni")))
        .unwrap_or_else(|| "keel-cni".into())
}

/// Run the benchmark.
pub async fn run(args: CniArgs) -> Result<()> {
    let plugin = args.plugin.clone().unwrap_or_else(default_plugin);
    if !plugin.exists() {
        bail!(
            "keel-cni not found at {}: build it (cargo build -p keel-cni) or pass --plugin",
            plugin.display()
        );
    }
    let ref_dir = args.reference_dir.clone();
    for p in ["bridge", "host-local"] {
        if !ref_dir.join(p).exists() {
            bail!(
                "reference plugin {} missing: apt-get install containernetworking-plugins",
                ref_dir.join(p).display()
            );
        }
    }
    let plugin_dir = plugin.parent().map(Path::to_path_buf).unwrap_or_default();

    // Latency: one node namespace with an uplink, N pod namespaces reused by both plugins.
    let sw = TestNetns::new("kbench-sw");
    let node = TestNetns::new("kbench-node");
    node.lo_up().await;
    veth_between(
        &sw,
        "up0",
        Some((Ipv4Addr::new(192, 168, 201, 2), 24)),
        &node,
        "ul0",
        Some((Ipv4Addr::new(192, 168, 201, 1), 24)),
    )
    .await;
    eprintln!("creating {} pod namespaces", args.pods);
    let pods: Vec<TestNetns> = (0..args.pods).map(|_| TestNetns::new("kbench-pod")).collect();
    let data = tempfile::tempdir()?;
    let keel_cfg = json!({"cniVersion": "1.1.0", "name": "keel", "type": "keel-cni", "podCIDR": "10.60.0.0/16",
                          "dataDir": data.path().join("keel")});
    let ref_cfg = json!({"cniVersion": "1.0.0", "name": "ref", "type": "bridge", "bridge": "kbr0", "isGateway": true,
                         "ipMasq": false, "ipam": {"type": "host-local", "subnet": "10.61.0.0/16",
                         "dataDir": data.path().join("host-local")}});
    let ref_path = format!("{}", ref_dir.display());
    let keel_path = format!("{}", plugin_dir.display());
    let ref_bin = ref_dir.join("bridge");
    let plugins = [
        Plugin {
            bin: &plugin,
            cni_path: &keel_path,
            config: &keel_cfg,
            ifname: "eth0",
            tag: "k",
        },
        Plugin {
            bin: &ref_bin,
            cni_path: &ref_path,
            config: &ref_cfg,
            ifname: "eth1",
            tag: "r",
        },
    ];
    // Warm both up once (page cache, the reference's first bridge creation), then measure.
    let warm = TestNetns::new("kbench-warm");
    measure(node.path(), &plugins, std::slice::from_ref(&warm))?;
    eprintln!("{} ADDs then DELs with each plugin, alternating", args.pods);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut lat = measure(node.path(), &plugins, &pods)?.into_iter();
    let (keel, reference) = (lat.next().unwrap_or_default(), lat.next().unwrap_or_default());
    drop(pods);

    // Throughput: two nodes on a veth underlay, one keel-cni pod on each, host-gw routes from route sync.
    let n1 = TestNetns::new("kbench-n1");
    let n2 = TestNetns::new("kbench-n2");
    let (ip1, ip2) = (Ipv4Addr::new(192, 168, 202, 1), Ipv4Addr::new(192, 168, 202, 2));
    veth_between(&n1, "ul0", Some((ip1, 24)), &n2, "ul0", Some((ip2, 24))).await;
    n1.lo_up().await;
    n2.lo_up().await;
    let infos = vec![
        NodeInfo {
            name: "n1".into(),
            ip: ip1,
            pod_cidr: "10.62.1.0/24".parse()?,
        },
        NodeInfo {
            name: "n2".into(),
            ip: ip2,
            pod_cidr: "10.62.2.0/24".parse()?,
        },
    ];
    let mut pod_ips = Vec::new();
    let tp_pods = [TestNetns::new("kbench-tp1"), TestNetns::new("kbench-tp2")];
    for (i, (n, info)) in [(&n1, &infos[0]), (&n2, &infos[1])].into_iter().enumerate() {
        let (local, all) = (info.clone(), infos.clone());
        n.run(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let nl = Netlink::current()?;
                RouteSync::new(nl, Settings::new("10.62.0.0/16".parse()?))
                    .sync(&local, &all)
                    .await?;
                Ok(())
            })
        })?;
        let mut cfg = json!({"cniVersion": "1.1.0", "name": "keel", "type": "keel-cni",
                         "podCIDR": info.pod_cidr.to_string(), "dataDir": data.path().join(format!("tp{i}"))});
        if let Some(mtu) = args.pod_mtu {
            cfg["mtu"] = json!(mtu);
        }
        let out = netns::run_in(n.path(), || {
            let mut child = Command::new(&plugin)
                .env("CNI_COMMAND", "ADD")
                .env("CNI_CONTAINERID", format!("tp{i}"))
                .env("CNI_NETNS", tp_pods[i].path())
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", &keel_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(cfg.to_string().as_bytes())?;
            }
            child.wait_with_output()
        })??;
        let r: Value = serde_json::from_slice(&out.stdout).context("keel-cni ADD result")?;
        let ip = r["ips"][0]["address"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches("/32")
            .parse::<Ipv4Addr>();
        pod_ips.push(ip.with_context(|| format!("keel-cni ADD for the throughput pod failed: {r}"))?);
    }
    let mtu = {
        let nl = Netlink::in_netns(tp_pods[0].path())?;
        nl.link_by_name("eth0").await?.map_or(0, |l| l.mtu)
    };
    let (mut node_bps, mut pod_bps) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        eprintln!(
            "throughput round {}/{}: node-to-node and pod-to-pod, {:.1} s each",
            round + 1,
            args.rounds,
            args.seconds
        );
        // Alternate which goes first so neither always runs right after the other.
        if round % 2 == 0 {
            node_bps.push(blast(&n1, &n2, ip2, args.seconds)?);
            pod_bps.push(blast(&tp_pods[0], &tp_pods[1], pod_ips[1], args.seconds)?);
        } else {
            pod_bps.push(blast(&tp_pods[0], &tp_pods[1], pod_ips[1], args.seconds)?);
            node_bps.push(blast(&n1, &n2, ip2, args.seconds)?);
        }
    }
    // Each round's pair ran back to back under the same load: the median of per-round ratios is the figure.
    let ratios: Vec<f64> = pod_bps.iter().zip(&node_bps).map(|(p, n)| p / n).collect();
    let ratio = percentile(&ratios, 50.0);

    let (ka50, ka99, kd50, kd99) = (
        percentile(&keel.add, 50.0),
        percentile(&keel.add, 99.0),
        percentile(&keel.del, 50.0),
        percentile(&keel.del, 99.0),
    );
    let (ra50, ra99, rd50, rd99) = (
        percentile(&reference.add, 50.0),
        percentile(&reference.add, 99.0),
        percentile(&reference.del, 50.0),
        percentile(&reference.del, 99.0),
    );
    let node_g = percentile(&node_bps, 50.0) / 1e9;
    let pod_g = percentile(&pod_bps, 50.0) / 1e9;
    println!(
        "keel bench cni: {} pods, each plugin process timed spawn-to-exit inside a node netns",
        args.pods
    );
    println!(
        "(load average before: {}; plugins alternate pod by pod so both see the same load)",
        load.trim()
    );
    println!(
        "{:<10} {:>12} {:>20} {:>8}",
        "ms", "keel-cni", "bridge+host-local", "ratio"
    );
    for (name, k, r) in [
        ("ADD p50", ka50, ra50),
        ("ADD p99", ka99, ra99),
        ("DEL p50", kd50, rd50),
        ("DEL p99", kd99, rd99),
    ] {
        println!("{name:<10} {k:>12.2} {r:>20.2} {:>8.3}", k / r);
    }
    println!();
    println!(
        "TCP throughput, median of {} x {:.1} s (pod MTU {mtu}, host-gw):",
        args.rounds, args.seconds
    );
    println!("{:<28} {:>10.2} Gbit/s", "node-to-node (the limit)", node_g);
    println!("{:<28} {:>10.2} Gbit/s", "pod-to-pod across nodes", pod_g);
    println!(
        "{:<28} {:>10.3}   (median of per-round ratios; rounds: {:.3?})",
        "ratio pod / node", ratio, ratios
    );
    println!();
    let add_ok = ka50 <= GOAL_ADD_RATIO * ra50;
    let tput_ok = ratio >= GOAL_TPUT_RATIO;
    println!(
        "goal ADD p50 <= {GOAL_ADD_RATIO} x reference: {}",
        if add_ok { "met" } else { "NOT met" }
    );
    println!(
        "goal pod throughput >= {GOAL_TPUT_RATIO} x node-to-node: {}",
        if tput_ok { "met" } else { "NOT met" }
    );
    if let Some(path) = &args.json {
        let out = json!({
            "pods": args.pods,
            "loadavg": load.trim(),
            "keel_cni_ms": {"add_p50": ka50, "add_p99": ka99, "del_p50": kd50, "del_p99": kd99},
            "reference_ms": {"add_p50": ra50, "add_p99": ra99, "del_p50": rd50, "del_p99": rd99},
            "throughput_gbit": {"node_to_node": node_g, "pod_to_pod": pod_g, "ratio": ratio, "round_ratios": ratios,
                                "node_rounds": node_bps, "pod_rounds": pod_bps, "pod_mtu": mtu},
            "goals": {"add_p50_ratio_max": GOAL_ADD_RATIO, "add_met": add_ok,
                      "throughput_ratio_min": GOAL_TPUT_RATIO, "throughput_met": tput_ok},
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}
