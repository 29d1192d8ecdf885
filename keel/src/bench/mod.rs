//! `keel bench ...`: benchmarks that print Keel's figure beside an anchor measured in the same run.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

mod api;
mod client;
mod workload;

/// Which benchmark to run.
#[derive(Subcommand)]
pub enum Which {
    /// The API server: RSS, create throughput, LIST latency, watch delivery latency, Deployment scheduling
    /// throughput, pod-ready → EndpointSlice latency; SQLite and etcd side by side.
    Api(ApiArgs),
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
    }
}
