//! Watch and paged list through kube-rs against `keel server`: initial ADDED events, exact resume from a
//! resourceVersion (also across a server restart), selector transitions, bookmarks, `kube::runtime::watcher`,
//! 410 Expired after compaction, and continue tokens.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{client, create, namespace, rev, rv_of, within, within_for};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use keel_tests::{Etcd, Server, Store};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

type Events = BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>;

fn server() -> Server {
    Server::start().unwrap_or_else(|e| panic!("starting keel server: {e:#}"))
}

/// Start a watch (at most 5 minutes long, so a stuck test cannot hold a server forever).
async fn watch(api: &Api<ConfigMap>, wp: WatchParams, from: &str) -> Events {
    within("starting a watch", api.watch(&wp.timeout(300), from))
        .await
        .unwrap_or_else(|e| panic!("starting a watch from {from:?}: {e}"))
        .boxed()
}

/// The next non-bookmark event as (type, name, resourceVersion).
async fn next(events: &mut Events, what: &str) -> (&'static str, String, String) {
    loop {
        match within(what, events.next()).await {
            Some(Ok(WatchEvent::Bookmark(_))) => continue,
            Some(Ok(ev)) => return summary(&ev),
            Some(Err(e)) => panic!("watch failed while waiting for {what}: {e}"),
            None => panic!("watch ended while waiting for {what}"),
        }
    }
}

fn summary(ev: &WatchEvent<ConfigMap>) -> (&'static str, String, String) {
    let (kind, o) = match ev {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        WatchEvent::Bookmark(b) => return ("BOOKMARK", String::new(), b.metadata.resource_version.clone()),
        WatchEvent::Error(s) => panic!("watch sent an ERROR event: {s:?}"),
    };
    (kind, o.name_any(), rv_of(&o.metadata))
}

async fn relabel(api: &Api<ConfigMap>, name: &str, labels: serde_json::Value) -> String {
    let patch = json!({"metadata": {"labels": labels}});
    let o = within(
        "patching labels",
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .unwrap_or_else(|e| panic!("patching {name}: {e}"));
    rv_of(&o.metadata)
}

async fn delete(api: &Api<ConfigMap>, name: &str) {
    within("deleting", api.delete(name, &DeleteParams::default()))
        .await
        .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
}

async fn list_rv(api: &Api<ConfigMap>) -> String {
    let list = within("listing", api.list(&ListParams::default()))
        .await
        .unwrap_or_else(|e| panic!("listing configmaps: {e}"));
    list.metadata
        .resource_version
        .unwrap_or_else(|| panic!("list without resourceVersion"))
}

#[tokio::test]
async fn watch_from_zero_starts_with_added_for_existing_objects() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "w0").await;
    create(&api, "a", &[]).await;
    create(&api, "b", &[]).await;
    let mut events = watch(&api, WatchParams::default(), "0").await;
    let mut initial = BTreeSet::new();
    for _ in 0..2 {
        let (kind, name, _) = next(&mut events, "initial ADDED events").await;
        assert_eq!(kind, "ADDED", "{name}");
        initial.insert(name);
    }
    assert_eq!(initial, BTreeSet::from(["a".to_string(), "b".to_string()]));
    let rv = create(&api, "c", &[]).await;
    assert_eq!(next(&mut events, "ADDED c").await, ("ADDED", "c".into(), rv));
}

#[tokio::test]
async fn watch_from_a_resource_version_replays_exactly_the_later_events_in_order() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "exact").await;
    create(&api, "early", &[]).await;
    let from = list_rv(&api).await;

    let rv_b = create(&api, "b", &[]).await;
    let rv_b2 = relabel(&api, "b", json!({"x": "1"})).await;
    delete(&api, "early").await;
    delete(&api, "b").await;

    let mut events = watch(&api, WatchParams::default(), &from).await;
    let got = [
        next(&mut events, "event 1").await,
        next(&mut events, "event 2").await,
        next(&mut events, "event 3").await,
        next(&mut events, "event 4").await,
    ];
    let kinds: Vec<(&str, &str)> = got.iter().map(|(k, n, _)| (*k, n.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("ADDED", "b"),
            ("MODIFIED", "b"),
            ("DELETED", "early"),
            ("DELETED", "b")
        ]
    );
    assert_eq!((got[0].2.as_str(), got[1].2.as_str()), (rv_b.as_str(), rv_b2.as_str()));
    let revs: Vec<i64> = got.iter().map(|(_, _, rv)| rev(rv)).collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "resourceVersions must increase: {revs:?}"
    );
    assert!(revs[0] > rev(&from), "{revs:?} must all be after {from}");

    // Nothing else was replayed: the next event is a new write.
    let rv_s = create(&api, "sentinel", &[]).await;
    assert_eq!(
        next(&mut events, "the sentinel").await,
        ("ADDED", "sentinel".into(), rv_s)
    );
}

#[tokio::test]
async fn label_selector_watch_sees_objects_leave_and_enter() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "sel").await;
    create(&api, "x", &[("app", "a")]).await;
    let from = list_rv(&api).await;
    let mut events = watch(&api, WatchParams::default().labels("app=a"), &from).await;

    let rv = relabel(&api, "x", json!({"app": "b"})).await;
    assert_eq!(next(&mut events, "x leaving").await, ("DELETED", "x".into(), rv));
    create(&api, "other", &[("app", "b")]).await;
    let rv = relabel(&api, "x", json!({"app": "a"})).await;
    assert_eq!(next(&mut events, "x entering").await, ("ADDED", "x".into(), rv));
    let rv = relabel(&api, "x", json!({"app": "a", "more": "yes"})).await;
    assert_eq!(next(&mut events, "x changing").await, ("MODIFIED", "x".into(), rv));
    let rv = create(&api, "sentinel", &[("app", "a")]).await;
    assert_eq!(
        next(&mut events, "the sentinel (nothing for `other`)").await,
        ("ADDED", "sentinel".into(), rv)
    );
}

#[tokio::test]
async fn selector_transition_delete_carries_the_last_matching_state() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "sel").await;
    create(&api, "x", &[("app", "a")]).await;
    let from = list_rv(&api).await;
    let mut events = watch(&api, WatchParams::default().labels("app=a"), &from).await;
    let rv = relabel(&api, "x", json!({"app": "b"})).await;
    let ev = loop {
        match within("x leaving", events.next()).await {
            Some(Ok(WatchEvent::Bookmark(_))) => continue,
            Some(Ok(ev)) => break ev,
            other => panic!("watch ended or failed: {other:?}"),
        }
    };
    let WatchEvent::Deleted(o) = ev else {
        panic!("expected DELETED, got {ev:?}")
    };
    // Kubernetes' watch cache sends the previous object with the event's resourceVersion, so the object in a
    // DELETED event still matches the selector the client watches with.
    assert_eq!(o.labels().get("app").map(String::as_str), Some("a"), "{o:?}");
    assert_eq!(o.resource_version(), Some(rv));
}

#[tokio::test]
async fn bookmarks_arrive_when_allowed() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "bm").await;
    create(&api, "a", &[]).await;
    let from = list_rv(&api).await;
    // WatchParams::default() sets allowWatchBookmarks=true; Keel sends one every 15 s.
    let mut events = watch(&api, WatchParams::default(), &from).await;
    let bookmark = match within_for("a BOOKMARK", Duration::from_secs(40), events.next()).await {
        Some(Ok(WatchEvent::Bookmark(b))) => b,
        Some(Ok(ev)) => panic!("unexpected event before the bookmark: {:?}", summary(&ev)),
        other => panic!("watch ended or failed before a bookmark: {other:?}"),
    };
    assert_eq!(bookmark.types.kind, "ConfigMap");
    assert_eq!(bookmark.types.api_version, "v1");
    assert!(
        rev(&bookmark.metadata.resource_version) >= rev(&from),
        "bookmark {} is older than the watch start {from}",
        bookmark.metadata.resource_version
    );
    // The watch is still alive after a bookmark.
    let rv = create(&api, "after", &[]).await;
    assert_eq!(next(&mut events, "ADDED after").await, ("ADDED", "after".into(), rv));
}

#[tokio::test]
async fn watch_resumes_across_a_restart_and_replays_what_was_missed() {
    let mut s = server();
    let c = client(&s).await;
    let api = namespace(&c, "resume").await;
    create(&api, "a", &[]).await;
    let from = list_rv(&api).await;
    let mut events = watch(&api, WatchParams::default(), &from).await;
    let rv_b = create(&api, "b", &[]).await;
    let (_, _, last_seen) = next(&mut events, "ADDED b").await;
    assert_eq!(last_seen, rv_b);

    // Changes the client does not see: one before the crash, two after the restart.
    let rv_a = relabel(&api, "a", json!({"changed": "before-crash"})).await;
    s.kill();
    within("the broken watch to end", async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    s.launch_ready()
        .unwrap_or_else(|e| panic!("relaunching keel server: {e:#}"));
    let c = client(&s).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "resume");
    let rv_c = create(&api, "c", &[]).await;
    delete(&api, "b").await;

    let mut events = watch(&api, WatchParams::default(), &last_seen).await;
    let got = [
        next(&mut events, "missed event 1").await,
        next(&mut events, "missed event 2").await,
        next(&mut events, "missed event 3").await,
    ];
    let kinds: Vec<(&str, &str)> = got.iter().map(|(k, n, _)| (*k, n.as_str())).collect();
    assert_eq!(kinds, [("MODIFIED", "a"), ("ADDED", "c"), ("DELETED", "b")]);
    assert_eq!((got[0].2.as_str(), got[1].2.as_str()), (rv_a.as_str(), rv_c.as_str()));
    assert!(rev(&got[2].2) > rev(&rv_c));
}

#[tokio::test]
async fn runtime_watcher_sees_existing_and_new_objects() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "rt").await;
    create(&api, "r0", &[]).await;
    let mut applied = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = within("the watcher's initial list", applied.try_next())
        .await
        .unwrap_or_else(|e| panic!("watcher failed: {e}"))
        .unwrap_or_else(|| panic!("watcher ended"));
    assert_eq!(first.name_any(), "r0");

    create(&api, "r1", &[]).await;
    create(&api, "r2", &[]).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let o = within("the watcher to see new objects", applied.try_next())
            .await
            .unwrap_or_else(|e| panic!("watcher failed: {e}"))
            .unwrap_or_else(|| panic!("watcher ended"));
        seen.push(o.name_any());
    }
    assert_eq!(seen, ["r1", "r2"]);
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_410_expired() {
    // Keel compacts its own SQLite history only every 5 minutes and keeps 10 000 revisions, which a test cannot
    // wait for; on the etcd backend the history can be compacted from outside with etcdctl.
    let etcd = Etcd::start().unwrap_or_else(|e| panic!("starting etcd: {e:#}"));
    let s = Server::start_with(Store::Etcd(etcd.endpoint.clone()))
        .unwrap_or_else(|e| panic!("starting keel server on etcd: {e:#}"));
    let c = client(&s).await;
    let api = namespace(&c, "old").await;
    let old = create(&api, "a", &[]).await;
    for i in 0..3 {
        relabel(&api, "a", json!({"n": i.to_string()})).await;
    }
    let now = list_rv(&api).await;
    let out = std::process::Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.endpoint, "compact", &now])
        .output()
        .unwrap_or_else(|e| panic!("running /usr/bin/etcdctl: {e} (apt-get install etcd-client)"));
    assert!(
        out.status.success(),
        "etcdctl compact: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut events = watch(&api, WatchParams::default(), &old).await;
    let status = match within("the ERROR event", events.next()).await {
        Some(Ok(WatchEvent::Error(s))) => s,
        Some(Err(kube::Error::Api(s))) => s,
        other => panic!("expected a 410 Expired, got {other:?}"),
    };
    assert_eq!(status.code, 410, "{status:?}");
    assert_eq!(status.reason, "Expired", "{status:?}");
    assert!(status.message.contains("too old resource version"), "{status:?}");

    // A watch from the compaction point itself still works.
    let mut events = watch(&api, WatchParams::default(), &now).await;
    let rv = create(&api, "b", &[]).await;
    assert_eq!(next(&mut events, "ADDED b").await, ("ADDED", "b".into(), rv));
}

#[tokio::test]
async fn list_pages_with_continue_tokens_until_exhausted() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "pages").await;
    for i in 1..=5 {
        create(&api, &format!("c{i}"), &[]).await;
    }
    let mut names = Vec::new();
    let mut sizes = Vec::new();
    let mut lp = ListParams::default().limit(2);
    loop {
        let page = within("a page", api.list(&lp))
            .await
            .unwrap_or_else(|e| panic!("listing a page: {e}"));
        sizes.push(page.items.len());
        names.extend(page.items.iter().map(ResourceExt::name_any));
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => lp = ListParams::default().limit(2).continue_token(&token),
            None => break,
        }
        assert!(sizes.len() < 10, "continue tokens never ran out: {names:?}");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(names, ["c1", "c2", "c3", "c4", "c5"]);

    let bad = within(
        "a bad token",
        api.list(&ListParams::default().limit(2).continue_token("garbage")),
    )
    .await
    .expect_err("a garbage continue token must be rejected");
    match bad {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}"),
        other => panic!("expected a 400 Status, got {other}"),
    }
}

#[tokio::test]
async fn continued_pages_are_a_consistent_snapshot() {
    let s = server();
    let c = client(&s).await;
    let api = namespace(&c, "snap").await;
    for i in 1..=5 {
        create(&api, &format!("c{i}"), &[]).await;
    }
    let first = within("page 1", api.list(&ListParams::default().limit(2)))
        .await
        .unwrap_or_else(|e| panic!("page 1: {e}"));
    let snapshot = first.metadata.resource_version.clone().unwrap_or_default();
    // Writes after the first page must not show up in later pages.
    create(&api, "c6", &[]).await;
    delete(&api, "c5").await;
    let mut names: Vec<String> = first.items.iter().map(ResourceExt::name_any).collect();
    let mut token = first.metadata.continue_.clone().unwrap_or_default();
    while !token.is_empty() {
        let page = within(
            "a page",
            api.list(&ListParams::default().limit(2).continue_token(&token)),
        )
        .await
        .unwrap_or_else(|e| panic!("listing a page: {e}"));
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(snapshot.as_str()),
            "every page is served at the first page's resourceVersion"
        );
        names.extend(page.items.iter().map(ResourceExt::name_any));
        token = page.metadata.continue_.clone().unwrap_or_default();
    }
    assert_eq!(names, ["c1", "c2", "c3", "c4", "c5"]);
}
