//! `keel server`'s control plane: opens the store, prepares credentials, creates the default namespaces, and
//! serves the API over HTTPS until told to stop, then drains in-flight requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, Api, gc, request::Query, route::ResourcePath};
use crate::metrics::Metrics;
use crate::pki;
use crate::store::{self, Store};

/// Namespaces that exist from the start, as in Kubernetes.
pub const DEFAULT_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
/// History kept for watches to resume from, in revisions (kine keeps 1000; etcd in k8s keeps 5 minutes).
const KEEP_REVISIONS: i64 = 10_000;
const COMPACT_EVERY: Duration = Duration::from_secs(300);
/// How long in-flight requests get to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Credentials could not be prepared.
    #[error(transparent)]
    Pki(#[from] pki::Error),
    /// The store could not be opened.
    #[error("opening the {backend} store: {source}")]
    Store {
        /// `sqlite` or `etcd`.
        backend: &'static str,
        /// The cause.
        source: store::Error,
    },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A flag value is invalid.
    #[error("{flag} {value}: {why}")]
    Config {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong and what to do.
        why: &'static str,
    },
    /// Bootstrapping default objects failed.
    #[error("creating default {what}: {message}")]
    Bootstrap {
        /// The object.
        what: String,
        /// The API error.
        message: String,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Which store backend to use.
#[derive(Debug, Clone)]
pub enum Datastore {
    /// Embedded SQLite under the data dir.
    Sqlite,
    /// An etcd cluster.
    Etcd(Vec<String>),
}

/// Configuration of the control plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// State directory (`/var/lib/keel`).
    pub data_dir: PathBuf,
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// Store backend.
    pub datastore: Datastore,
    /// Service ClusterIP range, e.g. `10.43.0.0/16`.
    pub service_cidr: String,
    /// Pod network, e.g. `10.42.0.0/16`; every node gets a /24 of it.
    pub cluster_cidr: String,
    /// Node heartbeat grace period (40 s in Kubernetes).
    pub node_monitor_grace: std::time::Duration,
    /// Pod eviction timeout on unreachable/not-ready nodes; None keeps the defaulted 300 s tolerations.
    pub pod_eviction_timeout: Option<std::time::Duration>,
}

/// A started server: its address and the API state.
pub struct Server {
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
    /// The API state.
    pub api: Arc<Api>,
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    shutdown_tx: watch::Sender<bool>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Open the store named by `datastore`.
pub async fn open_store(data_dir: &std::path::Path, datastore: &Datastore) -> Result<Arc<dyn Store>> {
    Ok(match datastore {
        Datastore::Sqlite => {
            let dir = data_dir.join("db");
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            Arc::new(
                store::sqlite::SqliteStore::open(&dir.join("state.db")).map_err(|source| Error::Store {
                    backend: "sqlite",
                    source,
                })?,
            )
        }
        Datastore::Etcd(endpoints) => {
            Arc::new(
                store::etcd::EtcdStore::connect(endpoints)
                    .await
                    .map_err(|source| Error::Store {
                        backend: "etcd",
                        source,
                    })?,
            )
        }
    })
}

impl Server {
    /// Prepare everything and bind the listener; call [`Server::serve`] to answer requests.
    pub async fn start(cfg: Config) -> Result<Self> {
        let service_cidr = api::alloc::Cidr::parse(&cfg.service_cidr).ok_or_else(|| Error::Config {
            flag: "--service-cidr",
            value: cfg.service_cidr.clone(),
            why: "expected an IPv4 range with a prefix of /30 or shorter, e.g. 10.43.0.0/16",
        })?;
        let cluster_cidr = api::alloc::Cidr::parse(&cfg.cluster_cidr)
            .filter(|c| c.subnet_count(crate::controllers::nodeipam::NODE_MASK) > 0)
            .ok_or_else(|| Error::Config {
                flag: "--cluster-cidr",
                value: cfg.cluster_cidr.clone(),
                why: "expected an IPv4 range with a prefix of /24 or shorter (each node gets a /24), e.g. 10.42.0.0/16",
            })?;
        if cluster_cidr.covers(&service_cidr) || service_cidr.covers(&cluster_cidr) {
            return Err(Error::Config {
                flag: "--cluster-cidr",
                value: cfg.cluster_cidr.clone(),
                why: "overlaps --service-cidr: pod and Service addresses must come from separate ranges",
            });
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(io(format!("creating {}", cfg.data_dir.display())))?;
        let creds = pki::ensure(&cfg.data_dir, &[cfg.listen.ip()])?;
        let store = open_store(&cfg.data_dir, &cfg.datastore).await?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(io(format!("listening on {} (is another server running?)", cfg.listen)))?;
        let addr = listener.local_addr().map_err(io("reading the bound address"))?;
        let client_host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let url = if addr.is_ipv6() && !addr.ip().is_unspecified() {
            format!("https://[{client_host}]:{}", addr.port())
        } else {
            format!("https://{client_host}:{}", addr.port())
        };
        pki::write_private(
            &cfg.data_dir.join("kubeconfig.yaml"),
            pki::kubeconfig(&url, &creds).as_bytes(),
        )?;
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(pki::server_tls_config(&creds)?));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (gc_handle, gc_queue) = gc::Gc::new();
        let api = Arc::new(Api {
            store,
            admin_token: creds.admin_token,
            node_token: creds.node_token,
            server_address: format!("{client_host}:{}", addr.port()),
            metrics: Arc::new(Metrics::new()),
            gc: gc_handle,
            shutdown: shutdown_rx,
            service_cidr,
            cluster_cidr,
            node_monitor_grace: cfg.node_monitor_grace,
            pod_eviction_timeout: cfg.pod_eviction_timeout,
            ready: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(gc::run(Arc::downgrade(&api), gc_queue));
        bootstrap(&api).await?;
        api.repair_allocations().await;
        bootstrap_kubernetes_service(
            &api,
            if addr.ip().is_unspecified() {
                "127.0.0.1".parse().ok()
            } else {
                Some(addr.ip())
            },
            addr.port(),
        )
        .await?;
        gc::requeue_pending(&api).await;
        tokio::spawn(compactor(Arc::downgrade(&api)));
        crate::controllers::start(&api).await;
        api.ready.store(true, Ordering::Release);
        tracing::info!(%addr, store = api.store.backend_name(), "api server ready");
        Ok(Self {
            addr,
            api,
            listener,
            tls,
            shutdown_tx,
        })
    }

    /// Serve until `stop` resolves, then stop accepting, end watches, and drain in-flight requests.
    pub async fn serve(self, stop: impl std::future::Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        tokio::pin!(stop);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let _ = tcp.set_nodelay(true);
            let tls = self.tls.clone();
            let api = self.api.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let api = api.clone();
                    async move {
                        let req = req.map(axum::body::Body::new);
                        Ok::<_, std::convert::Infallible>(api.handle(req).await)
                    }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%peer, error = %e, "connection ended with error");
                }
            });
        }
        tracing::info!("shutting down: draining requests");
        let _ = self.shutdown_tx.send(true);
        drop(self.listener);
        if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
            tracing::warn!("some requests did not finish within {DRAIN:?}");
        }
        tracing::info!("api server stopped");
    }
}

/// Create the default namespaces (idempotent).
async fn bootstrap(api: &Arc<Api>) -> Result<()> {
    let ns_res = api_core::registry::by_kind("v1", "Namespace").ok_or_else(|| Error::Bootstrap {
        what: "namespaces".into(),
        message: "namespace kind missing from registry".into(),
    })?;
    let rp = ResourcePath {
        res: ns_res,
        namespace: None,
        name: None,
        sub: None,
        watch_path: false,
    };
    for ns in DEFAULT_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match api.create(&rp, body, &Query::internal()).await {
            Ok(_) => tracing::info!(namespace = ns, "created default namespace"),
            Err(e) if e.code == 409 => {}
            Err(e) => {
                return Err(Error::Bootstrap {
                    what: format!("namespace {ns}"),
                    message: e.message,
                });
            }
        }
    }
    Ok(())
}

/// The `kubernetes` Service in `default` (first ClusterIP of the range) and its endpoints, pointing at this server.
async fn bootstrap_kubernetes_service(api: &Arc<Api>, ip: Option<std::net::IpAddr>, port: u16) -> Result<()> {
    let first = api.service_cidr.nth(1).to_string();
    let ip = ip.map(|i| i.to_string()).unwrap_or_else(|| "127.0.0.1".into());
    let objects = [
        (
            "v1",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": first, "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}),
        ),
        (
            "v1",
            "Endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
        ),
    ];
    // Endpoints may not point at loopback (as in Kubernetes): a server listening only on loopback gets the Service
    // without endpoints; in-cluster clients need the server on a routable address.
    let routable = ip
        .parse::<std::net::IpAddr>()
        .is_ok_and(|a| !a.is_loopback() && !a.is_unspecified());
    for (av, kind, body) in objects {
        if kind != "Service" && !routable {
            continue;
        }
        let Some(res) = api_core::registry::by_kind(av, kind) else {
            continue;
        };
        let rp = ResourcePath {
            res,
            namespace: Some("default".into()),
            name: None,
            sub: None,
            watch_path: false,
        };
        match api.create(&rp, body.clone(), &Query::internal()).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {
                // Keep the endpoints pointing at this server when its address or port changed.
                if kind != "Service" {
                    let one = ResourcePath {
                        name: Some("kubernetes".into()),
                        ..rp
                    };
                    let _ = api
                        .modify_with(&one, "kubernetes", move |cur| {
                            let mut o = body.clone();
                            o["metadata"] = cur["metadata"].clone();
                            Ok(o)
                        })
                        .await;
                }
            }
            Err(e) => {
                return Err(Error::Bootstrap {
                    what: format!("{kind} kubernetes"),
                    message: e.message,
                });
            }
        }
    }
    Ok(())
}

async fn compactor(api: std::sync::Weak<Api>) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(api) = api.upgrade() else { return };
        if *api.shutdown.borrow() {
            return;
        }
        match api.store.current_revision().await {
            Ok(rev) if rev > KEEP_REVISIONS => {
                if let Err(e) = api.store.compact(rev - KEEP_REVISIONS).await {
                    tracing::warn!(error = %e, "compaction failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading revision for compaction failed"),
        }
    }
}
