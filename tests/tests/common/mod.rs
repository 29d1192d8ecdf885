//! Helpers shared by the kube-rs end-to-end tests (`watch.rs`, `durability.rs`): a client from the server's
//! kubeconfig, ConfigMap fixtures, and time-bounded waits so a hung server fails a test instead of stalling it.

// Each test crate includes this module and uses a different subset of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use keel_tests::Server;
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Bound on any single request or awaited event (a hang guard, not a performance threshold).
pub const STEP: Duration = Duration::from_secs(30);

/// Await `fut`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(what, STEP, fut).await
}

/// Await `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within_for<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// A kube-rs client built from the server's admin kubeconfig, as any Rust controller would.
pub async fn client(s: &Server) -> kube::Client {
    // kube's `rustls-tls` feature picks no crypto provider; install ring (the server's provider) once per process.
    // An error only means another test already installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = s.kubeconfig();
    let kc = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    kube::Client::try_from(cfg).unwrap_or_else(|e| panic!("building a kube client: {e}"))
}

/// A ConfigMap with one data key.
pub fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect()
            }),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), format!("value of {name}"))])),
        ..ConfigMap::default()
    }
}

/// Create namespace `name` and return the ConfigMap API in it.
pub async fn namespace(client: &kube::Client, name: &str) -> Api<ConfigMap> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    within(
        "creating a namespace",
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns),
    )
    .await
    .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    Api::namespaced(client.clone(), name)
}

/// Create a ConfigMap and return its resourceVersion.
pub async fn create(api: &Api<ConfigMap>, name: &str, labels: &[(&str, &str)]) -> String {
    let made = within(
        "creating a configmap",
        api.create(&PostParams::default(), &cm(name, labels)),
    )
    .await
    .unwrap_or_else(|e| panic!("creating configmap {name}: {e}"));
    rv_of(&made.metadata)
}

/// The resourceVersion in `meta` (panics when absent).
pub fn rv_of(meta: &ObjectMeta) -> String {
    meta.resource_version
        .clone()
        .unwrap_or_else(|| panic!("object without resourceVersion: {meta:?}"))
}

/// Every ConfigMap in `api`'s namespace, name → resourceVersion, listed in one request.
pub async fn all_versions(api: &Api<ConfigMap>) -> HashMap<String, String> {
    let list = within("listing configmaps", api.list(&ListParams::default()))
        .await
        .unwrap_or_else(|e| panic!("listing configmaps: {e}"));
    list.items
        .iter()
        .map(|c| (c.metadata.name.clone().unwrap_or_default(), rv_of(&c.metadata)))
        .collect()
}

/// The store revision of a resourceVersion (Keel's are integers, like etcd's).
pub fn rev(rv: &str) -> i64 {
    rv.parse()
        .unwrap_or_else(|_| panic!("resourceVersion {rv:?} is not an integer"))
}
