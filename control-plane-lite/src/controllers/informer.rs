//! Informers: an in-memory cache of one resource kept current by list + watch on the store, with change
//! notifications. A relist (start, or after the watch fails, e.g. 410 Gone) swaps the cache atomically and emits
//! the differences, so subscribers never miss a change and never see a half-built cache (kube-rs watcher's
//! init/init-done, done as a single swap).
//!
//! The cache holds each object's stored bytes, not parsed values: a parsed `serde_json::Value` costs ten times
//! its JSON size, and the control plane must hold 10,000 pods in a few tens of MB. Reads parse on demand, and
//! lists keep what they parsed for a few seconds after its last read ([`HOT_TTL`]): a controller that reads the same
//! thousand pods on every change of one of them (a ReplicaSet's status, a Service's EndpointSlices) parses each
//! pod once per change instead of once per read, and an idle control plane holds bytes only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use api_core::registry::ResourceDef;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::api::Api;
use crate::api::object::{self as obj, from_bytes, from_kv};
use crate::store::Event;

/// One change to a cached object.
#[derive(Debug, Clone)]
pub struct Change {
    /// State before (None for a creation).
    pub old: Option<Arc<Value>>,
    /// State after (None for a deletion).
    pub new: Option<Arc<Value>>,
}

impl Change {
    /// The object, preferring the new state.
    pub fn object(&self) -> Option<&Arc<Value>> {
        self.new.as_ref().or(self.old.as_ref())
    }
}

/// `namespace/name` (or `name` for cluster-scoped objects): the cache and work-queue key.
pub fn key_of(o: &Value) -> String {
    match obj::meta_str(o, "namespace") {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", obj::meta_str(o, "name").unwrap_or("")),
        _ => obj::meta_str(o, "name").unwrap_or("").to_string(),
    }
}

/// One cached object: stored bytes and the revision that wrote them.
#[derive(Clone, PartialEq, Eq)]
struct Cached {
    bytes: Arc<[u8]>,
    revision: i64,
}

impl Cached {
    fn parse(&self) -> Option<Arc<Value>> {
        from_bytes(&self.bytes, self.revision).ok().map(Arc::new)
    }
}

/// How long a parsed object stays after its last read.
pub const HOT_TTL: Duration = Duration::from_secs(5);

/// A parsed object kept for readers, valid while the cache holds the same revision.
struct Hot {
    revision: i64,
    value: Arc<Value>,
    used: Instant,
}

/// Recently read parsed objects by key, and when they were last swept.
struct HotSet {
    entries: HashMap<String, Hot>,
    swept: Instant,
}

impl HotSet {
    /// Drop entries unread for [`HOT_TTL`] (at most once a second).
    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept) < Duration::from_secs(1) {
            return;
        }
        self.swept = now;
        self.entries.retain(|_, h| now.duration_since(h.used) < HOT_TTL);
        if self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
    }
}

/// A cache of one resource across all namespaces.
pub struct Informer {
    /// The resource cached.
    pub res: &'static ResourceDef,
    cache: RwLock<HashMap<String, Cached>>,
    hot: Mutex<HotSet>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change>>>,
    synced: watch::Sender<bool>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Informer {
    /// Start list + watch for `res`; the task ends when the API shuts down.
    pub fn spawn(api: &Arc<Api>, res: &'static ResourceDef) -> Arc<Self> {
        let (synced, _) = watch::channel(false);
        let inf = Arc::new(Self {
            res,
            cache: RwLock::new(HashMap::new()),
            hot: Mutex::new(HotSet {
                entries: HashMap::new(),
                swept: Instant::now(),
            }),
            subscribers: Mutex::new(Vec::new()),
            synced,
        });
        tokio::spawn(run(Arc::downgrade(api), inf.clone()));
        inf
    }

    /// Receive every change from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    /// Wait until the first list has been loaded.
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// One object by namespace (empty for cluster-scoped) and name.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let key = if namespace.is_empty() {
            name.to_string()
        } else {
            format!("{namespace}/{name}")
        };
        let cached = read(&self.cache).get(&key).cloned()?;
        // A single read uses a remembered parse but does not add one: only bulk reads (lists) are worth keeping.
        let hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        match hot.entries.get(&key) {
            Some(h) if h.revision == cached.revision => Some(h.value.clone()),
            _ => {
                drop(hot);
                cached.parse()
            }
        }
    }

    /// All objects, or those of one namespace.
    pub fn list(&self, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let prefix = namespace.map(|ns| format!("{ns}/"));
        let picked: Vec<(String, Cached)> = read(&self.cache)
            .iter()
            .filter(|(k, _)| prefix.as_deref().is_none_or(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.parsed(picked)
    }

    /// The parsed objects of `picked`: from the hot set when it has the same revision, else parsed now (outside
    /// the lock) and remembered.
    fn parsed(&self, picked: Vec<(String, Cached)>) -> Vec<Arc<Value>> {
        let now = Instant::now();
        let mut out = Vec::with_capacity(picked.len());
        let mut missing = Vec::new();
        {
            let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
            for (key, cached) in picked {
                match hot.entries.get_mut(&key) {
                    Some(h) if h.revision == cached.revision => {
                        h.used = now;
                        out.push(h.value.clone());
                    }
                    _ => missing.push((key, cached)),
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        let fresh: Vec<(String, i64, Arc<Value>)> = missing
            .into_iter()
            .filter_map(|(key, cached)| cached.parse().map(|v| (key, cached.revision, v)))
            .collect();
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        for (key, revision, value) in fresh {
            out.push(value.clone());
            hot.entries.insert(
                key,
                Hot {
                    revision,
                    value,
                    used: now,
                },
            );
        }
        hot.sweep(now);
        out
    }

    /// Keep the hot set in step with a change: a newer state replaces a remembered one, a deletion drops it.
    fn refresh_hot(&self, key: &str, new: Option<(i64, &Arc<Value>)>) {
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        match new {
            Some((revision, value)) => {
                if let Some(h) = hot.entries.get_mut(key) {
                    h.revision = revision;
                    h.value = value.clone();
                }
            }
            None => {
                hot.entries.remove(key);
            }
        }
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        read(&self.cache).len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn emit(&self, change: Change) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|tx| tx.send(change.clone()).is_ok());
    }

    /// Replace the whole cache (after a list), emitting the differences.
    fn replace(&self, fresh: HashMap<String, Cached>) {
        let old = std::mem::replace(&mut *write(&self.cache), fresh.clone());
        for (k, v) in &fresh {
            match old.get(k) {
                Some(o) if o == v => {}
                o => self.emit(Change {
                    old: o.and_then(Cached::parse),
                    new: v.parse(),
                }),
            }
        }
        for (k, v) in old {
            if !fresh.contains_key(&k) {
                self.emit(Change {
                    old: v.parse(),
                    new: None,
                });
            }
        }
        self.synced.send_replace(true);
    }

    fn apply(&self, ev: Event) {
        let change = match ev {
            Event::Put { kv, .. } => {
                let Ok(v) = from_kv(&kv) else { return };
                let v = Arc::new(v);
                let key = key_of(&v);
                self.refresh_hot(&key, Some((kv.mod_revision, &v)));
                let cached = Cached {
                    bytes: kv.value.into(),
                    revision: kv.mod_revision,
                };
                let old = write(&self.cache).insert(key, cached);
                Change {
                    old: old.and_then(|o| o.parse()),
                    new: Some(v),
                }
            }
            Event::Delete { prev, revision } => {
                let Ok(v) = from_bytes(&prev.value, revision) else {
                    return;
                };
                let key = key_of(&v);
                self.refresh_hot(&key, None);
                let old = write(&self.cache).remove(&key);
                Change {
                    old: old.and_then(|o| o.parse()).or(Some(Arc::new(v))),
                    new: None,
                }
            }
        };
        self.emit(change);
    }
}

async fn run(api: std::sync::Weak<Api>, inf: Arc<Informer>) {
    let prefix = obj::collection_prefix(inf.res, None);
    loop {
        let Some(api) = api.upgrade() else { return };
        if *api.shutdown.borrow() {
            return;
        }
        // List every page at one consistent revision's view, then watch from it.
        let mut fresh = HashMap::new();
        let mut start: Option<String> = None;
        let mut revision = None;
        let listed = loop {
            match api.store.list_at(&prefix, start.as_deref(), Some(1000), revision).await {
                Ok(page) => {
                    revision.get_or_insert(page.revision);
                    for kv in &page.items {
                        if let Ok(v) = from_kv(kv) {
                            fresh.insert(
                                key_of(&v),
                                Cached {
                                    bytes: kv.value.clone().into(),
                                    revision: kv.mod_revision,
                                },
                            );
                        }
                    }
                    match page.items.last() {
                        Some(last) if page.more => start = Some(last.key.clone()),
                        _ => break true,
                    }
                }
                Err(e) => {
                    tracing::warn!(resource = inf.res.plural, error = %e, "informer list failed");
                    break false;
                }
            }
        };
        let mut stream = match (listed, revision) {
            (true, Some(rev)) => match api.store.watch(&prefix, rev).await {
                Ok(s) => {
                    inf.replace(fresh);
                    Some(s)
                }
                Err(e) => {
                    tracing::warn!(resource = inf.res.plural, error = %e, "informer watch failed");
                    None
                }
            },
            _ => None,
        };
        let mut shutdown = api.shutdown.clone();
        drop(api);
        if let Some(s) = stream.as_mut() {
            loop {
                tokio::select! {
                    ev = s.recv() => match ev {
                        Some(Ok(ev)) => inf.apply(ev),
                        Some(Err(e)) => {
                            tracing::info!(resource = inf.res.plural, error = %e, "informer relisting");
                            break;
                        }
                        None => break,
                    },
                    _ = shutdown.changed() => return,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
