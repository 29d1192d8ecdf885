//! `keel bench api`: real `keel server` processes (SQLite, and etcd with a real etcd) measured the same way,
//! side by side: idle RSS, create throughput with 1 and 8 clients, LIST latency over N pods, RSS holding them,
//! watch delivery latency to many concurrent watchers, and (in [`super::workload`]) how fast a large Deployment is
//! scheduled and how fast a pod's readiness reaches its EndpointSlice.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::ApiArgs;
use super::client::{Client, EventReader, Target};
use super::workload;

/// k3s server memory with a workload, as cited in the issue (k3s is not installable here, so it is not measured).
const K3S_RSS_MB: f64 = 1600.0;
/// Keel's goal for RSS while holding 10,000 pods.
const GOAL_RSS_MB: f64 = 50.0;

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(super) fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

pub(super) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx.min(s.len() - 1)]
}

struct Running {
    server: Killed,
    etcd: Option<Killed>,
    target: Target,
    _dir: tempfile::TempDir,
}

impl Running {
    fn rss(&self) -> (f64, f64) {
        (
            rss_mb(self.server.0.id()),
            self.etcd.as_ref().map_or(0.0, |e| rss_mb(e.0.id())),
        )
    }
}

fn wait_port(port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listened on 127.0.0.1:{port} within {limit:?}")
}

async fn start(store: &str) -> Result<Running> {
    let dir = tempfile::tempdir()?;
    let mut etcd = None;
    let mut extra: Vec<String> = vec![];
    if store == "etcd" {
        let bin = Path::new("/usr/bin/etcd");
        if !bin.exists() {
            bail!("/usr/bin/etcd is missing: apt-get install etcd-server (make deps installs it)");
        }
        let (client, peer) = (free_port()?, free_port()?);
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(bin)
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args([
                "--initial-cluster",
                &format!("bench={peer_url}"),
                "--quota-backend-bytes",
                "8589934592",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd")?;
        etcd = Some(Killed(child));
        wait_port(client, Duration::from_secs(30))?;
        extra = vec!["--datastore".into(), "etcd".into(), "--etcd-endpoints".into(), url];
    } else if store != "sqlite" {
        bail!("unknown store {store:?}: use sqlite or etcd");
    }
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let data = dir.path().join("keel");
    let child = Command::new(std::env::current_exe()?)
        .arg("server")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &addr, "--no-agent"])
        .args(&extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting keel server")?;
    let server = Killed(child);
    wait_port(port, Duration::from_secs(60))?;
    let target = Target::from_data_dir(&data, &addr)?;
    // Ready means the default namespaces exist.
    let mut c = target.connect().await?;
    let start = Instant::now();
    while c.call("GET", "/readyz", None).await.is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("keel server on {store} did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Running {
        server,
        etcd,
        target,
        _dir: dir,
    })
}

/// A pod for the storage measurements. It names a scheduler that does not exist, so Keel's scheduler leaves it
/// alone (the workload part registers nodes later, and these pods must not take their room).
fn pod(ns: &str, name: &str) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"schedulerName": "bench-unscheduled", "containers": [{"name": "web", "image": "localhost/keel/busybox:latest",
            "command": ["httpd", "-f", "-p", "8080"], "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
    .to_string()
    .into_bytes()
}

pub(super) async fn create_ns(c: &mut Client, ns: &str) -> Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string();
    c.call("POST", "/api/v1/namespaces", Some(body.into_bytes()))
        .await
        .map(|_| ())
}

/// Create pods `from..to` with `clients` connections; returns objects per second.
async fn create_pods(target: &Target, ns: &str, from: usize, to: usize, clients: usize) -> Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let target = target.clone();
        let ns = ns.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = target.connect().await?;
            let path = format!("/api/v1/namespaces/{ns}/pods");
            let mut i = from + k;
            while i < to {
                c.call("POST", &path, Some(pod(&ns, &format!("pod-{i:06}")))).await?;
                i += clients;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((to - from) as f64 / started.elapsed().as_secs_f64())
}

/// Watch delivery: `watchers` streams on one ConfigMap; `updates` PATCHes stamped with their send time.
async fn watch_latency(target: &Target, watchers: usize, updates: usize) -> Result<Vec<f64>> {
    let mut c = target.connect().await?;
    create_ns(&mut c, "bench-watch").await?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w", "namespace": "bench-watch"}});
    let created: Value = serde_json::from_slice(
        &c.call(
            "POST",
            "/api/v1/namespaces/bench-watch/configmaps",
            Some(cm.to_string().into_bytes()),
        )
        .await?,
    )?;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(watchers * updates)));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let conn = target.connect().await?;
        let path = format!("/api/v1/namespaces/bench-watch/configmaps?watch=1&resourceVersion={rv}");
        let mut events = EventReader::new(conn.stream(&path).await?);
        let samples = samples.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < updates {
                let Some(ev) = events.next().await else { break };
                let arrived = now_ns();
                if ev["type"] != "MODIFIED" {
                    continue;
                }
                let sent = ev["object"]["metadata"]["annotations"]["bench/sent-ns"]
                    .as_str()
                    .and_then(|s| s.parse::<u128>().ok());
                if let Some(sent) = sent {
                    let ms = arrived.saturating_sub(sent) as f64 / 1e6;
                    samples.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
                    seen += 1;
                }
            }
        }));
    }
    // Give every watch time to be registered before the first update.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..updates {
        let patch = json!({"metadata": {"annotations": {"bench/sent-ns": now_ns().to_string()}}});
        c.call_patch(
            "/api/v1/namespaces/bench-watch/configmaps/w",
            patch.to_string().into_bytes(),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    for t in tasks {
        tokio::select! {
            _ = t => {}
            () = &mut deadline => break,
        }
    }
    let v = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(v)
}

struct Results {
    store: String,
    idle_rss: f64,
    idle_etcd_rss: f64,
    create_1: f64,
    create_8: f64,
    list_p50: f64,
    list_p99: f64,
    full_rss: f64,
    full_etcd_rss: f64,
    watch_p50: f64,
    watch_p99: f64,
    watch_samples: usize,
    sched: workload::Measured,
}

async fn measure(store: &str, args: &ApiArgs) -> Result<Results> {
    eprintln!("[{store}] starting server");
    let run = start(store).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, idle_etcd_rss) = run.rss();
    let mut c = run.target.connect().await?;
    create_ns(&mut c, "bench").await?;
    let n = args.creates;
    eprintln!("[{store}] creates: {n} with 1 client, {n} with 8 clients");
    let create_1 = create_pods(&run.target, "bench", 0, n, 1).await?;
    let create_8 = create_pods(&run.target, "bench", n, 2 * n, 8).await?;
    if args.pods > 2 * n {
        eprintln!("[{store}] filling to {} pods", args.pods);
        create_pods(&run.target, "bench", 2 * n, args.pods, 8).await?;
    }
    eprintln!("[{store}] LIST x{}", args.lists);
    let mut lat = Vec::new();
    for _ in 0..args.lists {
        let t = Instant::now();
        let body = c.call("GET", "/api/v1/namespaces/bench/pods", None).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        if lat.len() == 1 {
            let v: Value = serde_json::from_slice(&body)?;
            let got = v["items"].as_array().map_or(0, Vec::len);
            if got != args.pods.max(2 * n) {
                bail!("LIST returned {got} pods, expected {}", args.pods.max(2 * n));
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (full_rss, full_etcd_rss) = run.rss();
    eprintln!("[{store}] watch: {} watchers x {} updates", args.watchers, args.updates);
    let w = watch_latency(&run.target, args.watchers, args.updates).await?;
    eprintln!(
        "[{store}] scheduling: deployment of {} replicas on {} nodes, then {} pods turned ready",
        args.replicas, args.nodes, args.ready_samples
    );
    let sched = workload::measure(&run.target, args.nodes, args.replicas, args.ready_samples).await?;
    Ok(Results {
        store: store.to_string(),
        idle_rss,
        idle_etcd_rss,
        create_1,
        create_8,
        list_p50: percentile(&lat, 50.0),
        list_p99: percentile(&lat, 99.0),
        full_rss,
        full_etcd_rss,
        watch_p50: percentile(&w, 50.0),
        watch_p99: percentile(&w, 99.0),
        watch_samples: w.len(),
        sched,
    })
}

/// Run the API benchmark and print the table.
pub async fn run(args: ApiArgs) -> Result<()> {
    let mut all = Vec::new();
    for store in &args.stores {
        all.push(measure(store, &args).await?);
    }
    let pods = args.pods.max(2 * args.creates);
    println!(
        "\nkeel bench api ({pods} pods, {} watchers x {} updates)\n",
        args.watchers, args.updates
    );
    print!("{:<44}", "");
    for r in &all {
        print!("{:>18}", format!("keel/{}", r.store));
    }
    println!();
    type Row = (String, Box<dyn Fn(&Results) -> String>);
    let rows: Vec<Row> = vec![
        (
            "idle RSS, keel server (MB)".into(),
            Box::new(|r| format!("{:.1}", r.idle_rss)),
        ),
        (
            "idle RSS, etcd process (MB)".into(),
            Box::new(|r| format!("{:.1}", r.idle_etcd_rss)),
        ),
        ("creates/s, 1 client".into(), Box::new(|r| format!("{:.0}", r.create_1))),
        (
            "creates/s, 8 clients".into(),
            Box::new(|r| format!("{:.0}", r.create_8)),
        ),
        (
            format!("LIST {pods} pods p50 (ms)"),
            Box::new(|r| format!("{:.1}", r.list_p50)),
        ),
        (
            format!("LIST {pods} pods p99 (ms)"),
            Box::new(|r| format!("{:.1}", r.list_p99)),
        ),
        (
            format!("RSS holding {pods} pods, keel (MB)"),
            Box::new(|r| format!("{:.1}", r.full_rss)),
        ),
        (
            format!("RSS holding {pods} pods, etcd (MB)"),
            Box::new(|r| format!("{:.1}", r.full_etcd_rss)),
        ),
        (
            "watch delivery p50 (ms)".into(),
            Box::new(|r| format!("{:.2}", r.watch_p50)),
        ),
        (
            "watch delivery p99 (ms)".into(),
            Box::new(|r| format!("{:.2}", r.watch_p99)),
        ),
        ("watch events timed".into(), Box::new(|r| r.watch_samples.to_string())),
        (
            format!("deployment of {} -> all bound (s)", args.replicas),
            Box::new(|r| format!("{:.2}", r.sched.bound_secs)),
        ),
        (
            "pods scheduled+bound per s".into(),
            Box::new(|r| format!("{:.0}", r.sched.pods_per_s)),
        ),
        (
            "pod ready -> EndpointSlice p50 (ms)".into(),
            Box::new(|r| format!("{:.2}", percentile(&r.sched.ready_ms, 50.0))),
        ),
        (
            "pod ready -> EndpointSlice p99 (ms)".into(),
            Box::new(|r| format!("{:.2}", percentile(&r.sched.ready_ms, 99.0))),
        ),
    ];
    for (label, f) in &rows {
        print!("{label:<44}");
        for r in &all {
            print!("{:>18}", f(r));
        }
        println!();
    }
    println!("\nanchor (cited in the issue, not measurable here): k3s server ~{K3S_RSS_MB:.0} MB RSS with a workload");
    println!("goal: keel server under {GOAL_RSS_MB:.0} MB RSS holding 10,000 pods");
    println!(
        "anchor: Kubernetes scalability SLO {:.0} pods/s scheduled; goal: at least {:.0} pods/s on this machine",
        workload::SLO_PODS_PER_S,
        workload::GOAL_PODS_PER_S
    );
    if let Some(path) = &args.json {
        let out: Vec<Value> = all
            .iter()
            .map(|r| {
                json!({"store": r.store, "idle_rss_mb": r.idle_rss, "idle_etcd_rss_mb": r.idle_etcd_rss,
                    "creates_per_s_1": r.create_1, "creates_per_s_8": r.create_8, "pods": pods,
                    "list_p50_ms": r.list_p50, "list_p99_ms": r.list_p99, "rss_full_mb": r.full_rss,
                    "etcd_rss_full_mb": r.full_etcd_rss, "watch_p50_ms": r.watch_p50, "watch_p99_ms": r.watch_p99,
                    "watchers": args.watchers, "watch_samples": r.watch_samples,
                    "anchor_k3s_rss_mb_cited": K3S_RSS_MB, "goal_rss_mb": GOAL_RSS_MB,
                    "replicas": args.replicas, "deployment_bound_s": r.sched.bound_secs,
                    "pods_scheduled_per_s": r.sched.pods_per_s, "anchor_slo_pods_per_s": workload::SLO_PODS_PER_S,
                    "goal_pods_per_s": workload::GOAL_PODS_PER_S,
                    "ready_to_endpointslice_p50_ms": percentile(&r.sched.ready_ms, 50.0),
                    "ready_to_endpointslice_p99_ms": percentile(&r.sched.ready_ms, 99.0),
                    "ready_samples": r.sched.ready_ms.len()})
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}
