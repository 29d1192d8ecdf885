//! Durability of acknowledged writes: SIGKILL and SIGTERM of `keel server` on SQLite and on etcd lose nothing,
//! plus a stock-kubectl smoke test on etcd and a look at the keys Keel writes there with etcdctl.

mod common;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::process::Command;
use std::time::Duration;

use common::{all_versions, client, cm, create, namespace, rev, rv_of, within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use keel_tests::{Etcd, Server, Store};
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};

/// Objects written, all acknowledged, before each crash.
const OBJECTS: usize = 200;
/// A second burst of creates that the SIGKILL lands in the middle of.
const BURST: usize = 100;
/// Concurrent creates in flight, so several writes are pending in the server when it is killed.
const IN_FLIGHT: usize = 8;
/// Bound on a graceful stop (drain is 10 s in the server).
const STOP: Duration = Duration::from_secs(30);

fn start(store: Store) -> Server {
    Server::start_with(store).unwrap_or_else(|e| panic!("starting keel server: {e:#}"))
}

fn name(i: usize) -> String {
    format!("cm-{i:03}")
}

/// Create ConfigMaps `range`, [`IN_FLIGHT`] at a time; every one must be acknowledged. Returns name → rv.
async fn create_all(api: &Api<ConfigMap>, range: Range<usize>) -> HashMap<String, String> {
    let want = range.len();
    let acked: HashMap<String, String> = futures::stream::iter(range)
        .map(|i| {
            let api = api.clone();
            async move {
                let rv = create(&api, &name(i), &[]).await;
                (name(i), rv)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert_eq!(acked.len(), want);
    acked
}

/// Create ConfigMaps `range` and SIGKILL the server once `kill_after` of them are acknowledged, with more in
/// flight. Returns what was acknowledged (before the kill, or answered just before it).
async fn create_until_killed(
    api: &Api<ConfigMap>,
    s: &mut Server,
    range: Range<usize>,
    kill_after: usize,
) -> HashMap<String, String> {
    let mut burst = futures::stream::iter(range)
        .map(|i| {
            let api = api.clone();
            async move { (name(i), api.create(&PostParams::default(), &cm(&name(i), &[])).await) }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut acked = HashMap::new();
    let mut killed = false;
    while let Some((n, result)) = within("a create to finish", burst.next()).await {
        match result {
            Ok(o) => {
                acked.insert(n, rv_of(&o.metadata));
            }
            Err(_) if killed => {}
            Err(e) => panic!("creating {n} before the kill failed: {e}"),
        }
        if !killed && acked.len() >= kill_after {
            s.kill();
            killed = true;
        }
    }
    assert!(killed, "the burst ended before {kill_after} creates were acknowledged");
    acked
}

/// After a restart: every acknowledged object is there with its resourceVersion and data, nothing appeared that
/// was never sent (unacknowledged creates among the first `attempted` may or may not exist), and new writes get
/// revisions after all of them (the revision counter did not go back).
async fn assert_intact(s: &Server, ns: &str, acked: &HashMap<String, String>, attempted: usize) {
    let c = client(s).await;
    let api: Api<ConfigMap> = Api::namespaced(c, ns);
    let found = all_versions(&api).await;
    let mut missing: Vec<&String> = acked.keys().filter(|k| !found.contains_key(*k)).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} acknowledged objects lost: {missing:?}",
        missing.len()
    );
    let changed: Vec<(&String, &String, &String)> = acked
        .iter()
        .filter_map(|(k, v)| found.get(k).filter(|f| *f != v).map(|f| (k, v, f)))
        .collect();
    assert!(
        changed.is_empty(),
        "resourceVersions changed (name, acked, found): {changed:?}"
    );
    let sent: HashSet<String> = (0..attempted).map(name).collect();
    let unknown: Vec<&String> = found.keys().filter(|k| !sent.contains(*k)).collect();
    assert!(unknown.is_empty(), "objects nobody created: {unknown:?}");
    let sample = within("reading one object", api.get("cm-123"))
        .await
        .unwrap_or_else(|e| panic!("reading cm-123: {e}"));
    assert_eq!(
        sample.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("value of cm-123")
    );
    let newest = found.values().map(|v| rev(v)).max().unwrap_or(0);
    let next = create(&api, "after-restart", &[]).await;
    assert!(
        rev(&next) > newest,
        "a write after the restart got revision {next}, not after the newest stored {newest}"
    );
}

async fn kill_9_loses_nothing(store: Store) {
    let mut s = start(store);
    let c = client(&s).await;
    let api = namespace(&c, "durable").await;
    let mut acked = create_all(&api, 0..OBJECTS).await;
    acked.extend(create_until_killed(&api, &mut s, OBJECTS..OBJECTS + BURST, BURST / 2).await);
    s.launch_ready()
        .unwrap_or_else(|e| panic!("relaunching keel server: {e:#}"));
    assert_intact(&s, "durable", &acked, OBJECTS + BURST).await;
}

#[tokio::test]
async fn sqlite_kill_9_loses_no_acknowledged_write() {
    kill_9_loses_nothing(Store::Sqlite).await;
}

#[tokio::test]
async fn etcd_kill_9_loses_no_acknowledged_write() {
    let etcd = Etcd::start().unwrap_or_else(|e| panic!("starting etcd: {e:#}"));
    kill_9_loses_nothing(Store::Etcd(etcd.endpoint.clone())).await;
}

/// SIGTERM: the server ends open watches and exits 0 within [`STOP`]; with `restart`, a relaunch on the same
/// data finds every acknowledged write.
async fn sigterm_stops_cleanly(store: Store, restart: bool) {
    let mut s = start(store);
    let c = client(&s).await;
    let api = namespace(&c, "graceful").await;
    let acked = create_all(&api, 0..OBJECTS).await;
    // An open watch must be ended by the shutdown, not left hanging.
    let mut events = within("starting a watch", api.watch(&WatchParams::default().timeout(300), "0"))
        .await
        .unwrap_or_else(|e| panic!("starting a watch: {e}"))
        .boxed();
    match within("the first watch event", events.next()).await {
        Some(Ok(WatchEvent::Added(_))) => {}
        other => panic!("expected ADDED, got {other:?}"),
    }

    let proc = s.proc().unwrap_or_else(|| panic!("server not running"));
    proc.signal(libc::SIGTERM);
    let code = proc.wait_exit(STOP);
    let log = proc.log_tail();
    assert_eq!(
        code,
        Some(0),
        "keel server did not exit 0 within {STOP:?} of SIGTERM:\n{log}"
    );
    within("the watch to end on shutdown", async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    if !restart {
        return;
    }

    s.launch_ready()
        .unwrap_or_else(|e| panic!("relaunching keel server: {e:#}"));
    assert_intact(&s, "graceful", &acked, OBJECTS).await;
    let c = client(&s).await;
    let found = all_versions(&Api::<ConfigMap>::namespaced(c, "graceful")).await;
    assert_eq!(found.len(), OBJECTS + 1, "a clean stop kept exactly what was written");
}

#[tokio::test]
async fn sqlite_sigterm_exits_0_and_ends_watches() {
    sigterm_stops_cleanly(Store::Sqlite, false).await;
}

#[tokio::test]
async fn etcd_sigterm_exits_0_and_ends_watches() {
    let etcd = Etcd::start().unwrap_or_else(|e| panic!("starting etcd: {e:#}"));
    sigterm_stops_cleanly(Store::Etcd(etcd.endpoint.clone()), false).await;
}

#[tokio::test]
async fn sqlite_sigterm_then_restart_keeps_data() {
    sigterm_stops_cleanly(Store::Sqlite, true).await;
}

#[tokio::test]
async fn etcd_sigterm_then_restart_keeps_data() {
    let etcd = Etcd::start().unwrap_or_else(|e| panic!("starting etcd: {e:#}"));
    sigterm_stops_cleanly(Store::Etcd(etcd.endpoint.clone()), true).await;
}

fn etcd_keys(etcd: &Etcd, prefix: &str) -> Vec<String> {
    let out = Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.endpoint, "get", "--prefix", prefix, "--keys-only"])
        .output()
        .unwrap_or_else(|e| panic!("running /usr/bin/etcdctl: {e} (apt-get install etcd-client)"));
    assert!(
        out.status.success(),
        "etcdctl get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn kubectl_smoke_on_etcd_with_kubernetes_style_keys() {
    let etcd = Etcd::start().unwrap_or_else(|e| panic!("starting etcd: {e:#}"));
    let s = start(Store::Etcd(etcd.endpoint.clone()));
    let manifest = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
";
    assert_eq!(
        s.apply(manifest),
        "configmap/settings created\ndeployment.apps/web created\nservice/web created\n"
    );
    assert_eq!(
        s.ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"]),
        "fast"
    );
    assert_eq!(
        s.ok(&["get", "deploy,svc,cm", "-o", "name"]),
        "deployment.apps/web\nservice/kubernetes\nservice/web\nconfigmap/settings\n"
    );

    assert_eq!(
        etcd_keys(&etcd, "/registry/configmaps/"),
        ["/registry/configmaps/default/settings"]
    );
    assert_eq!(
        etcd_keys(&etcd, "/registry/deployments/"),
        ["/registry/deployments/default/web"]
    );
    assert_eq!(
        etcd_keys(&etcd, "/registry/services/specs/"),
        [
            "/registry/services/specs/default/kubernetes",
            "/registry/services/specs/default/web"
        ]
    );
    assert_eq!(
        etcd_keys(&etcd, "/registry/namespaces/"),
        [
            "/registry/namespaces/default",
            "/registry/namespaces/kube-node-lease",
            "/registry/namespaces/kube-public",
            "/registry/namespaces/kube-system"
        ]
    );

    let out = s.kubectl_stdin(&["delete", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap \"settings\" deleted\ndeployment.apps \"web\" deleted\nservice \"web\" deleted\n"
    );
    assert_eq!(
        s.fails(&["get", "configmap", "settings"]),
        "Error from server (NotFound): configmaps \"settings\" not found\n"
    );
    assert!(etcd_keys(&etcd, "/registry/configmaps/").is_empty());
    assert!(etcd_keys(&etcd, "/registry/deployments/").is_empty());
}
