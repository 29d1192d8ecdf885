//! `keel`: one binary, subcommands wiring the library crates together. Flags are parsed here; work is done in
//! the libraries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use control_plane_lite::server::{self, Datastore};

mod bench;

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "Kubernetes node agent, data plane and lean control plane"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum StoreKind {
    Sqlite,
    Etcd,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (Kubernetes API server on HTTPS).
    Server {
        /// State directory: database, certificates, kubeconfig.yaml, node-token.
        #[arg(long, default_value = "/var/lib/keel")]
        data_dir: PathBuf,
        /// HTTPS listen address.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Store backend.
        #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
        datastore: StoreKind,
        /// etcd client URLs, comma-separated (with --datastore etcd).
        #[arg(long, value_delimiter = ',')]
        etcd_endpoints: Vec<String>,
        /// Pod network of the cluster (per-node /24s are carved from it).
        #[arg(long, default_value = "10.42.0.0/16")]
        cluster_cidr: String,
        /// Service ClusterIP range.
        #[arg(long, default_value = "10.43.0.0/16")]
        service_cidr: String,
        /// Seconds a node may go without renewing its Lease before it is marked Unknown and tainted unreachable.
        #[arg(long, env = "KEEL_NODE_MONITOR_GRACE_SECONDS", default_value_t = 40.0, value_parser = positive_seconds)]
        node_monitor_grace_period: f64,
        /// Seconds pods stay on an unreachable or not-ready node before they are evicted (replaces the defaulted
        /// 300 s tolerationSeconds; a pod's own tolerationSeconds is kept).
        #[arg(long, env = "KEEL_POD_EVICTION_SECONDS", value_parser = positive_seconds)]
        pod_eviction_timeout: Option<f64>,
        /// Run only the control plane. The node agent is not built yet, so this is currently always the case.
        #[arg(long)]
        no_agent: bool,
    },
    /// Benchmarks, each printed beside its anchor measured in the same run.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Tune glibc malloc for a long-running server: cap its arenas at two. By default glibc gives each thread that allocates under contention its own
/// arena (up to 8 per core) and keeps freed memory in it: with SQLite calls on tokio's blocking threads, a server
/// holding 10,000 pods sat at ~210 MB RSS instead of ~40 MB (`keel bench api`).
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called first thing in main, before any other thread
    // exists, and M_ARENA_MAX with a positive value is a documented, always-valid parameter.
    // Also serve allocations of 1 MiB and more (LIST responses) with mmap, so they go back to the system when
    // freed; a fixed threshold turns off glibc's dynamic one, which grows up to 32 MiB and keeps them in the heap.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Server {
            data_dir,
            listen,
            datastore,
            etcd_endpoints,
            cluster_cidr,
            service_cidr,
            node_monitor_grace_period,
            pod_eviction_timeout,
            no_agent,
        } => {
            let datastore = match datastore {
                StoreKind::Sqlite => Datastore::Sqlite,
                StoreKind::Etcd if etcd_endpoints.is_empty() => {
                    bail!("--datastore etcd needs --etcd-endpoints, e.g. --etcd-endpoints http://127.0.0.1:2379")
                }
                StoreKind::Etcd => Datastore::Etcd(etcd_endpoints),
            };
            for (flag, cidr) in [("--cluster-cidr", &cluster_cidr), ("--service-cidr", &service_cidr)] {
                validate_cidr(cidr).with_context(|| format!("{flag} {cidr}"))?;
            }
            if !no_agent {
                tracing::warn!("the node agent is not part of this build yet: running the control plane only");
            }
            let srv = server::Server::start(server::Config {
                data_dir: data_dir.clone(),
                listen,
                datastore,
                service_cidr: service_cidr.clone(),
                cluster_cidr: cluster_cidr.clone(),
                node_monitor_grace: Duration::from_secs_f64(node_monitor_grace_period),
                pod_eviction_timeout: pod_eviction_timeout.map(Duration::from_secs_f64),
            })
            .await
            .context("starting keel server")?;
            println!(
                "keel server listening on https://{}\nkubectl --kubeconfig {} get nodes",
                srv.addr,
                data_dir.join("kubeconfig.yaml").display()
            );
            srv.serve(terminated()).await;
            Ok(())
        }
        Command::Bench { which } => bench::run(which).await,
    }
}

/// A positive number of seconds (fractions allowed), for clap.
fn positive_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds (e.g. 40 or 2.5)")),
    }
}

fn validate_cidr(cidr: &str) -> Result<()> {
    let (ip, len) = cidr
        .split_once('/')
        .context("expected ADDRESS/PREFIX, e.g. 10.42.0.0/16")?;
    let ip: std::net::IpAddr = ip.parse().context("the address part is not an IP address")?;
    let len: u8 = len.parse().context("the prefix length is not a number")?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        bail!("prefix length {len} exceeds {max}");
    }
    Ok(())
}
