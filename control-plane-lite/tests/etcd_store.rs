//! The etcd store against a real etcd (Debian `etcd-server`, 3.4) on loopback: the same behaviours the SQLite
//! store's unit tests check, plus what only a separate server can show (kill -9 and restart, reconnecting watches,
//! keys visible to stock `etcdctl`).

// Tests panic with a message when something they rely on fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control_plane_lite::store::etcd::EtcdStore;
use control_plane_lite::store::{Error, Event, Store, WatchStream};

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
/// How long etcd may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for one watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A free loopback port (bound, read, released; etcd binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// One etcd server in a temporary directory, killed (by pid) when dropped, even on panic.
struct EtcdServer {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdServer {
    /// Start etcd on free loopback ports with a fresh data dir and wait until it answers.
    async fn start() -> Self {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: install etcd-server (apt-get install etcd-server)"
        );
        let mut server = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        server.spawn().await;
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Start etcd on this server's data dir and ports, and wait (bounded) until it serves requests.
    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "etcd already running");
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open etcd log");
        let child = Command::new(ETCD)
            .arg("--name=default")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("poll etcd")) {
                panic!("etcd exited with {status} during start; log:\n{}", self.log_tail());
            }
            if let Ok(store) = EtcdStore::connect(&self.endpoints()).await
                && store.current_revision().await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer at {client} within {START_TIMEOUT:?}; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL etcd (no clean shutdown) and reap it.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 etcd");
            child.wait().expect("reap etcd");
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn store(&self) -> EtcdStore {
        EtcdStore::connect(&self.endpoints()).await.expect("connect to etcd")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The next watch item, failing the test if none comes in time.
async fn next(w: &mut WatchStream) -> Event {
    tokio::time::timeout(EVENT_TIMEOUT, w.recv())
        .await
        .expect("watch event in time")
        .expect("watch stream open")
        .expect("watch event, not an error")
}

#[tokio::test]
async fn crud_with_revisions_and_conflicts() {
    let etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    assert_eq!(s.backend_name(), "etcd");
    let r1 = s
        .create("/registry/pods/default/a", b"1".to_vec())
        .await
        .expect("create");
    assert!(matches!(
        s.create("/registry/pods/default/a", b"x".to_vec()).await,
        Err(Error::AlreadyExists(k)) if k == "/registry/pods/default/a"
    ));
    let r2 = s
        .update("/registry/pods/default/a", b"2".to_vec(), r1)
        .await
        .expect("update");
    assert!(r2 > r1);
    match s.update("/registry/pods/default/a", b"3".to_vec(), r1).await {
        Err(Error::Conflict { key, expected, actual }) => {
            assert_eq!((key.as_str(), expected, actual), ("/registry/pods/default/a", r1, r2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        s.update("/registry/pods/default/missing", b"3".to_vec(), 0).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.update("/registry/pods/default/missing", b"3".to_vec(), r1).await,
        Err(Error::NotFound(_))
    ));
    let kv = s.get("/registry/pods/default/a").await.expect("get").expect("present");
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"2"[..], r1, r2)
    );
    assert_eq!(
        s.get("/registry/pods/default/missing").await.expect("get missing"),
        None
    );
    s.create("/registry/pods/default/b", b"b".to_vec())
        .await
        .expect("create b");
    let rc = s
        .create("/registry/pods/other/c", b"c".to_vec())
        .await
        .expect("create c");
    assert_eq!(s.current_revision().await.expect("revision"), rc);

    let page = s.list("/registry/pods/default/", None, Some(1)).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].key, "/registry/pods/default/a");
    assert!(page.more);
    assert_eq!(page.revision, rc);
    let rest = s
        .list("/registry/pods/default/", Some(&page.items[0].key), None)
        .await
        .expect("list rest");
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].key, "/registry/pods/default/b");
    assert!(!rest.more);
    let all = s.list("/registry/pods/", None, None).await.expect("list all");
    let keys: Vec<&str> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/pods/default/a",
            "/registry/pods/default/b",
            "/registry/pods/other/c"
        ]
    );
    let exact = s
        .list("/registry/pods/default/", None, Some(2))
        .await
        .expect("list exact");
    assert_eq!((exact.items.len(), exact.more), (2, false));

    match s.delete("/registry/pods/default/b", Some(r1)).await {
        Err(Error::Conflict { expected, .. }) => assert_eq!(expected, r1),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let (prev, rd) = s.delete("/registry/pods/default/a", Some(r2)).await.expect("delete");
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"2"[..], r2));
    assert!(rd > rc);
    assert!(matches!(
        s.delete("/registry/pods/default/a", None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.delete("/registry/pods/default/a", Some(r2)).await,
        Err(Error::NotFound(_))
    ));
    // A re-created key starts a new life: new create revision.
    let r3 = s
        .create("/registry/pods/default/a", b"new".to_vec())
        .await
        .expect("re-create");
    let kv = s.get("/registry/pods/default/a").await.expect("get").expect("present");
    assert_eq!((kv.create_revision, kv.mod_revision), (r3, r3));
}

#[tokio::test]
async fn watch_replays_history_then_live_and_honours_compaction() {
    let etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    let r1 = s.create("/registry/cm/ns/a", b"1".to_vec()).await.expect("create");
    let r2 = s.update("/registry/cm/ns/a", b"2".to_vec(), r1).await.expect("update");
    s.create("/registry/other/x", b"x".to_vec()).await.expect("other");

    let mut from_start = s
        .watch("/registry/cm/", r1 - 1)
        .await
        .expect("watch from before the create");
    match next(&mut from_start).await {
        Event::Put { kv, prev } => {
            assert_eq!((kv.key.as_str(), kv.mod_revision), ("/registry/cm/ns/a", r1));
            assert_eq!(prev, None, "a create has no previous value");
        }
        other => panic!("unexpected {other:?}"),
    }

    let mut w = s.watch("/registry/cm/", r1).await.expect("watch");
    match next(&mut w).await {
        Event::Put { kv, prev } => {
            assert_eq!(
                (kv.mod_revision, kv.create_revision, kv.value.as_slice()),
                (r2, r1, &b"2"[..])
            );
            let prev = prev.expect("an update carries the previous value");
            assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"1"[..], r1));
        }
        other => panic!("unexpected {other:?}"),
    }
    let (_, r3) = s.delete("/registry/cm/ns/a", None).await.expect("delete");
    match next(&mut w).await {
        Event::Delete { prev, revision } => {
            assert_eq!(revision, r3);
            assert_eq!(
                (prev.key.as_str(), prev.value.as_slice(), prev.mod_revision),
                ("/registry/cm/ns/a", &b"2"[..], r2)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Keys outside the prefix never show up; the next event is the next write under it.
    s.create("/registry/other/y", b"y".to_vec()).await.expect("other");
    let r4 = s.create("/registry/cm/ns/b", b"b".to_vec()).await.expect("create b");
    assert_eq!(next(&mut w).await.revision(), r4);

    s.compact(r3).await.expect("compact");
    s.compact(r3).await.expect("compacting again is a no-op");
    match s.watch("/registry/cm/", r1).await {
        Err(Error::Compacted { requested, compacted }) => assert_eq!((requested, compacted), (r1, r3)),
        other => panic!("expected Compacted, got {:?}", other.map(|_| "a stream")),
    }
    // From the compaction point on, history is still there.
    let mut after = s
        .watch("/registry/cm/", r3)
        .await
        .expect("watch from the compaction point");
    assert_eq!(next(&mut after).await.revision(), r4);
    // Compacting past the current revision clamps, as SQLite does.
    s.compact(i64::MAX).await.expect("compact to now");
}

#[tokio::test]
async fn keys_are_plain_etcd_keys() {
    let etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    s.create("/registry/pods/default/web", br#"{"kind":"Pod"}"#.to_vec())
        .await
        .expect("create");
    let out = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.endpoint(), "get", "--prefix", "/registry"])
        .output()
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/registry/pods/default/web\n{\"kind\":\"Pod\"}\n"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_watches_resume() {
    let mut etcd = EtcdServer::start().await;
    let s = etcd.store().await;
    let mut last = 0;
    for i in 0..20 {
        last = s
            .create(&format!("/registry/cm/ns/k{i:02}"), format!("v{i}").into_bytes())
            .await
            .expect("create");
    }
    let mut w = s.watch("/registry/cm/", last).await.expect("watch");

    etcd.kill9();
    let down = s.get("/registry/cm/ns/k00").await;
    match down {
        Err(Error::Backend(msg)) => assert!(msg.contains(&etcd.endpoint()), "message names the endpoint: {msg}"),
        other => panic!("expected a backend error while etcd is down, got {other:?}"),
    }
    etcd.spawn().await;

    // The same store (and its connection pool) works again, and every acknowledged write is there.
    assert_eq!(s.current_revision().await.expect("revision after restart"), last);
    let page = s
        .list("/registry/cm/ns/", None, None)
        .await
        .expect("list after restart");
    assert_eq!(page.items.len(), 20);
    for (i, kv) in page.items.iter().enumerate() {
        assert_eq!(kv.key, format!("/registry/cm/ns/k{i:02}"));
        assert_eq!(kv.value, format!("v{i}").into_bytes());
    }
    // The watch re-established itself from the last revision it had delivered.
    let r = s
        .create("/registry/cm/ns/after", b"a".to_vec())
        .await
        .expect("create after restart");
    let ev = next(&mut w).await;
    assert_eq!((ev.key(), ev.revision()), ("/registry/cm/ns/after", r));
    // A fresh store also sees the data.
    let fresh = etcd.store().await;
    assert_eq!(
        fresh
            .get("/registry/cm/ns/k19")
            .await
            .expect("get")
            .expect("present")
            .value,
        b"v19"
    );
}

#[tokio::test]
async fn unreachable_etcd_is_a_backend_error_naming_the_endpoint() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    match EtcdStore::connect(std::slice::from_ref(&endpoint)).await {
        Err(Error::Backend(msg)) => {
            assert!(msg.contains(&endpoint), "message names the endpoint: {msg}");
            assert!(msg.contains("etcd is running"), "message says what to do: {msg}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(matches!(EtcdStore::connect(&[]).await, Err(Error::Backend(_))));
}
