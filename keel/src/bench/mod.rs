//! `keel bench ...`: benchmarks that print Keel's figure beside an anchor measured in the same run.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

mod api;
mod client;
mod cni;
mod workload;

/// Which benchmark to run.
#[derive(Subcommand)]
pub enum Which {
    /// The API server: RSS, create throughput, LIST latency, watch delivery latency, Deployment scheduling
    /// throughput, pod-ready → EndpointSlice latency; SQLite and etcd side by side.
    Api(ApiArgs),
    /// keel-cni: ADD/DEL latency beside the reference bridge+host-local plugins, pod vs node TCP throughput.
    Cni(CniArgs),
}

/// Options of `keel bench cni`.
#[derive(Args, Clone)]
pub struct CniArgs {
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Pods attached and detached by each plugin.
    #[arg(long, default_value_t = 200)]
    pub pods: usize,
    /// The keel-cni binary (default: beside this keel binary).
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Directory of the reference plugins (bridge, host-local).
    #[arg(long, default_value = "/usr/lib/cni")]
    pub reference_dir: PathBuf,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 1.5)]
    pub seconds: f64,
    /// Throughput rounds (node-to-node and pod-to-pod alternate; medians are reported).
    #[arg(long, default_value_t = 8)]
    pub rounds: usize,
    /// `mtu` in the throughput pods' keel-cni config (default: keel-cni's own default, uplink minus VXLAN overhead).
    #[arg(long)]
    pub pod_mtu: Option<u32>,
}

/// Options of `keel bench api`.
#[derive(Args, Clone)]
pub struct ApiArgs {
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Pods stored before measuring LIST latency and RSS.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Creates timed per concurrency level (1 and 8 clients).
    #[arg(long, default_value_t = 2_000)]
    pub creates: usize,
    /// LIST requests timed.
    #[arg(long, default_value_t = 30)]
    pub lists: usize,
    /// Concurrent watchers.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Updates whose delivery to every watcher is timed.
    #[arg(long, default_value_t = 100)]
    pub updates: usize,
    /// Replicas of the Deployment whose pods are timed until all are bound.
    #[arg(long, default_value_t = 1_000)]
    pub replicas: usize,
    /// Nodes registered for the scheduling run.
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
    /// Pods turned ready one by one, each timed until its endpoint is ready in the EndpointSlice.
    #[arg(long, default_value_t = 200)]
    pub ready_samples: usize,
    /// Backends to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,etcd")]
    pub stores: Vec<String>,
}

/// Run a benchmark.
pub async fn run(which: Which) -> Result<()> {
    match which {
        Which::Api(args) => api::run(args).await,
        Which::Cni(args) => cni::run(args).await,
    }
}
