//! The embedded store: SQLite in WAL mode, revisioned like kine.
//!
//! Every write appends a row to `log` (its rowid is the revision) and upserts `current` in one transaction, with
//! `synchronous=FULL`, so an acknowledged write survives `kill -9` and power loss. Writes go through one writer
//! thread that commits whatever has queued up together (group commit): each write runs in its own savepoint, so a
//! refused write (a conflict, say) leaves the others in the batch alone, and the batch costs one fsync. Replies and
//! live changes leave only after the commit. Live changes are fanned out on a broadcast channel under the write
//! lock, so they leave in revision order; a watcher that falls behind the channel re-reads the gap from `log`.
//! Compaction deletes `log` rows below a revision.

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Error, Event, KeyValue, ListPage, Result, Store, WatchStream};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key ON log(key, rev);
CREATE TABLE IF NOT EXISTS current (
    key TEXT PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// How many live events a slow watcher may trail before it falls back to reading `log`.
const BROADCAST_CAPACITY: usize = 8192;
/// Events buffered per watch stream.
const WATCH_BUFFER: usize = 1024;
/// Rows read from `log` per history query.
const HISTORY_BATCH: i64 = 1000;
/// Most writes committed in one transaction.
const MAX_GROUP: usize = 256;

/// SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// The writer thread's queue; the thread ends when the last clone of the store is dropped.
    writes: std::sync::mpsc::Sender<WriteOp>,
}

/// Decides, given the current state of a key, what to write: `Some(value)` puts, `None` deletes.
type Decide = Box<dyn FnOnce(Option<&KeyValue>) -> Result<Option<Vec<u8>>> + Send>;

/// One queued write.
struct WriteOp {
    key: String,
    decide: Decide,
    reply: oneshot::Sender<Result<Event>>,
}

struct Inner {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    events: broadcast::Sender<Event>,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| Error::Backend(format!("open {}: {e}", path.display())))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
    conn.pragma_update(None, "busy_timeout", 5000).map_err(backend)?;
    Ok(conn)
}

/// The smallest string greater than every string starting with `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    // Every byte was 0x7f or more (non-ASCII): no finite bound, use the highest char.
    "\u{10ffff}".to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves SQLite itself consistent (transactions roll back), so keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let writer = open_conn(path)?;
        writer.execute_batch(SCHEMA).map_err(backend)?;
        let reader = open_conn(path)?;
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let inner = Arc::new(Inner {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            events,
        });
        let (writes, queue) = std::sync::mpsc::channel();
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || thread_inner.write_loop(&queue))
            .map_err(|e| Error::Backend(format!("starting the SQLite writer thread: {e}")))?;
        Ok(Self { inner, writes })
    }

    /// Queue a write for the writer thread and wait until it is committed (or refused).
    async fn submit(&self, key: &str, decide: Decide) -> Result<Event> {
        let (reply, done) = oneshot::channel();
        self.writes
            .send(WriteOp {
                key: key.to_string(),
                decide,
                reply,
            })
            .map_err(|_| Error::Backend("the SQLite writer thread has stopped".into()))?;
        done.await
            .map_err(|_| Error::Backend("the SQLite writer thread dropped a write".into()))?
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::Backend(format!("store task failed: {e}")))?
    }
}

fn current_rev(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'log'", [], |r| r.get(0))
        .optional()
        .map_err(backend)
        .map(|v| v.unwrap_or(0))
}

fn compacted_rev(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| r.get(0))
        .optional()
        .map_err(backend)
        .map(|v| v.unwrap_or(0))
}

fn get_current(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    conn.query_row(
        "SELECT create_rev, mod_rev, value FROM current WHERE key = ?1",
        params![key],
        |r| {
            Ok(KeyValue {
                key: key.to_string(),
                create_revision: r.get(0)?,
                mod_revision: r.get(1)?,
                value: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

/// One write inside the current transaction: `decide` says, given the current state of `key`, what to write.
fn apply_write(tx: &Connection, key: &str, decide: Decide) -> Result<Event> {
    let prev = get_current(tx, key)?;
    let new_value = decide(prev.as_ref())?;
    let rev_now = current_rev(tx)?;
    let rev = rev_now + 1;
    let event = match (new_value, prev) {
        (Some(value), prev) => {
            let create_rev = prev.as_ref().map_or(rev, |p| p.create_revision);
            let prev_rev = prev.as_ref().map_or(0, |p| p.mod_revision);
            tx.execute(
                "INSERT INTO log (rev, key, deleted, create_rev, prev_rev, value) VALUES (?1, ?2, 0, ?3, ?4, ?5)",
                params![rev, key, create_rev, prev_rev, value],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO current (key, create_rev, mod_rev, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO UPDATE SET mod_rev = excluded.mod_rev, value = excluded.value",
                params![key, create_rev, rev, value],
            )
            .map_err(backend)?;
            Event::Put {
                kv: KeyValue {
                    key: key.to_string(),
                    value,
                    create_revision: create_rev,
                    mod_revision: rev,
                },
                prev,
            }
        }
        (None, Some(prev)) => {
            tx.execute(
                "INSERT INTO log (rev, key, deleted, create_rev, prev_rev, value) VALUES (?1, ?2, 1, ?3, ?4, ?5)",
                params![rev, key, prev.create_revision, prev.mod_revision, prev.value],
            )
            .map_err(backend)?;
            tx.execute("DELETE FROM current WHERE key = ?1", params![key])
                .map_err(backend)?;
            Event::Delete { prev, revision: rev }
        }
        (None, None) => return Err(Error::NotFound(key.to_string())),
    };
    Ok(event)
}

impl Inner {
    /// The writer thread: take the next write, then everything queued behind it, and commit them together.
    fn write_loop(&self, queue: &std::sync::mpsc::Receiver<WriteOp>) {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.write_batch(batch);
        }
    }

    /// One transaction for the whole batch, one savepoint per write; replies and events after the commit.
    fn write_batch(&self, batch: Vec<WriteOp>) {
        let mut conn = lock(&self.writer);
        let mut tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                for op in batch {
                    let _ = op.reply.send(Err(backend(&e)));
                }
                return;
            }
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for op in batch {
            let outcome = tx.savepoint().map_err(backend).and_then(|sp| {
                let event = apply_write(&sp, &op.key, op.decide)?;
                sp.commit().map_err(backend)?;
                Ok(event)
            });
            outcomes.push((op.reply, outcome));
        }
        if let Err(e) = tx.commit() {
            for (reply, _) in outcomes {
                let _ = reply.send(Err(backend(&e)));
            }
            return;
        }
        for (reply, outcome) in outcomes {
            if let Ok(event) = &outcome {
                // No receivers is fine: nobody is watching.
                let _ = self.events.send(event.clone());
            }
            let _ = reply.send(outcome);
        }
    }

    /// History events for keys in `[prefix, end)` with revision in `(after, upto]`, in revision order.
    fn history(&self, prefix: &str, after: i64, upto: i64, limit: i64) -> Result<Vec<Event>> {
        let conn = lock(&self.reader);
        let compacted = compacted_rev(&conn)?;
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        let end = prefix_end(prefix);
        let mut stmt = conn
            .prepare_cached(
                "SELECT l.rev, l.key, l.deleted, l.create_rev, l.prev_rev, l.value, p.value
                 FROM log l LEFT JOIN log p ON p.rev = l.prev_rev
                 WHERE l.rev > ?1 AND l.rev <= ?2 AND l.key >= ?3 AND l.key < ?4
                 ORDER BY l.rev LIMIT ?5",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![after, upto, prefix, end, limit], |r| {
                let rev: i64 = r.get(0)?;
                let key: String = r.get(1)?;
                let deleted: bool = r.get(2)?;
                let create_rev: i64 = r.get(3)?;
                let prev_rev: i64 = r.get(4)?;
                let value: Vec<u8> = r.get(5)?;
                let prev_value: Option<Vec<u8>> = r.get(6)?;
                Ok((rev, key, deleted, create_rev, prev_rev, value, prev_value))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (rev, key, deleted, create_rev, prev_rev, value, prev_value) = row.map_err(backend)?;
            let event = if deleted {
                Event::Delete {
                    prev: KeyValue {
                        key,
                        value,
                        create_revision: create_rev,
                        mod_revision: prev_rev,
                    },
                    revision: rev,
                }
            } else {
                let prev = prev_value.filter(|_| prev_rev > 0).map(|v| KeyValue {
                    key: key.clone(),
                    value: v,
                    create_revision: create_rev,
                    mod_revision: prev_rev,
                });
                Event::Put {
                    kv: KeyValue {
                        key,
                        value,
                        create_revision: create_rev,
                        mod_revision: rev,
                    },
                    prev,
                }
            };
            out.push(event);
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        let key = key.to_string();
        self.blocking(move |inner| get_current(&lock(&inner.reader), &key))
            .boxed()
    }

    fn list_at<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: Option<usize>,
        at: Option<i64>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        self.blocking(move |inner| {
            let mut conn = lock(&inner.reader);
            // One read transaction so the items and the revision agree.
            let tx = conn.transaction().map_err(backend)?;
            let now = current_rev(&tx)?;
            let end = prefix_end(&prefix);
            let start = start_after.unwrap_or_default();
            let want = limit.map_or(-1, |l| l as i64 + 1);
            let row = |r: &rusqlite::Row<'_>| {
                Ok(KeyValue {
                    key: r.get(0)?,
                    create_revision: r.get(1)?,
                    mod_revision: r.get(2)?,
                    value: r.get(3)?,
                })
            };
            let (revision, mut items) = match at.filter(|r| *r < now) {
                None => {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT key, create_rev, mod_rev, value FROM current
                             WHERE key >= ?1 AND key < ?2 AND key > ?3 ORDER BY key LIMIT ?4",
                        )
                        .map_err(backend)?;
                    let rows = stmt
                        .query_map(params![prefix, end, start, want], row)
                        .map_err(backend)?;
                    (now, rows.collect::<std::result::Result<Vec<_>, _>>().map_err(backend)?)
                }
                Some(rev) => {
                    let compacted = compacted_rev(&tx)?;
                    if rev < compacted {
                        return Err(Error::Compacted {
                            requested: rev,
                            compacted,
                        });
                    }
                    // Each key's last log entry at or before `rev`, unless that entry is its deletion.
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT l.key, l.create_rev, l.rev, l.value FROM log l
                             WHERE l.key >= ?1 AND l.key < ?2 AND l.key > ?3 AND l.deleted = 0
                               AND l.rev = (SELECT MAX(m.rev) FROM log m WHERE m.key = l.key AND m.rev <= ?5)
                             ORDER BY l.key LIMIT ?4",
                        )
                        .map_err(backend)?;
                    let rows = stmt
                        .query_map(params![prefix, end, start, want, rev], row)
                        .map_err(backend)?;
                    (rev, rows.collect::<std::result::Result<Vec<_>, _>>().map_err(backend)?)
                }
            };
            let more = limit.is_some_and(|l| items.len() > l);
            if let Some(l) = limit {
                items.truncate(l);
            }
            Ok(ListPage { items, revision, more })
        })
        .boxed()
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<i64>> {
        let k = key.to_string();
        self.submit(
            key,
            Box::new(move |prev| match prev {
                Some(_) => Err(Error::AlreadyExists(k)),
                None => Ok(Some(value)),
            }),
        )
        .map(|r| r.map(|e| e.revision()))
        .boxed()
    }

    fn update<'a>(&'a self, key: &'a str, value: Vec<u8>, expected_revision: i64) -> BoxFuture<'a, Result<i64>> {
        let k = key.to_string();
        self.submit(
            key,
            Box::new(move |prev| match prev {
                None => Err(Error::NotFound(k)),
                Some(p) if p.mod_revision != expected_revision => Err(Error::Conflict {
                    key: k,
                    expected: expected_revision,
                    actual: p.mod_revision,
                }),
                Some(_) => Ok(Some(value)),
            }),
        )
        .map(|r| r.map(|e| e.revision()))
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str, expected_revision: Option<i64>) -> BoxFuture<'a, Result<(KeyValue, i64)>> {
        let k = key.to_string();
        let decide: Decide = Box::new(move |prev| match (prev, expected_revision) {
            (None, _) => Err(Error::NotFound(k)),
            (Some(p), Some(want)) if p.mod_revision != want => Err(Error::Conflict {
                key: k,
                expected: want,
                actual: p.mod_revision,
            }),
            (Some(_), _) => Ok(None),
        });
        async move {
            match self.submit(key, decide).await? {
                Event::Delete { prev, revision } => Ok((prev, revision)),
                Event::Put { .. } => Err(Error::Backend("delete wrote a value".into())),
            }
        }
        .boxed()
    }

    fn watch<'a>(&'a self, prefix: &'a str, after_revision: i64) -> BoxFuture<'a, Result<WatchStream>> {
        let prefix = prefix.to_string();
        async move {
            // Subscribe and read the revision under the write lock, so no event falls between history and live.
            let (mut live, snapshot) = {
                let conn = lock(&self.inner.writer);
                (self.inner.events.subscribe(), current_rev(&conn)?)
            };
            let inner = self.inner.clone();
            // Validate the starting point now, so the caller gets Compacted as an error rather than in-stream.
            {
                let p = prefix.clone();
                let i = inner.clone();
                tokio::task::spawn_blocking(move || i.history(&p, after_revision, after_revision, 1))
                    .await
                    .map_err(|e| Error::Backend(e.to_string()))??;
            }
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            tokio::spawn(async move {
                let mut last = after_revision;
                // Replay history (after, snapshot], then follow live events; on lag, re-read the gap.
                let mut catch_up_to = snapshot;
                loop {
                    while last < catch_up_to {
                        let (p, i, from, upto) = (prefix.clone(), inner.clone(), last, catch_up_to);
                        let batch = tokio::task::spawn_blocking(move || i.history(&p, from, upto, HISTORY_BATCH)).await;
                        let batch = match batch {
                            Ok(Ok(b)) => b,
                            Ok(Err(e)) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                            Err(e) => {
                                let _ = tx.send(Err(Error::Backend(e.to_string()))).await;
                                return;
                            }
                        };
                        if batch.len() < HISTORY_BATCH as usize {
                            last = upto;
                        }
                        for ev in batch {
                            last = last.max(ev.revision());
                            if tx.send(Ok(ev)).await.is_err() {
                                return;
                            }
                        }
                    }
                    match live.recv().await {
                        Ok(ev) => {
                            let rev = ev.revision();
                            if rev <= last {
                                continue;
                            }
                            last = rev;
                            if ev.key().starts_with(prefix.as_str()) && tx.send(Ok(ev)).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let conn_rev = {
                                let conn = lock(&inner.reader);
                                current_rev(&conn)
                            };
                            match conn_rev {
                                Ok(r) => catch_up_to = r,
                                Err(e) => {
                                    let _ = tx.send(Err(e)).await;
                                    return;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            Ok(rx)
        }
        .boxed()
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<i64>> {
        self.blocking(|inner| current_rev(&lock(&inner.reader))).boxed()
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<()>> {
        self.blocking(move |inner| {
            let mut conn = lock(&inner.writer);
            let tx = conn.transaction().map_err(backend)?;
            let current = current_rev(&tx)?;
            let revision = revision.min(current);
            if revision <= compacted_rev(&tx)? {
                return Ok(());
            }
            tx.execute("DELETE FROM log WHERE rev < ?1", params![revision])
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('compacted', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![revision],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .boxed()
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("state.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
        assert_eq!(prefix_end("a"), "b");
    }

    #[tokio::test]
    async fn crud_with_revisions_and_conflicts() {
        let (_d, s) = open();
        let r1 = s
            .create("/registry/pods/default/a", b"1".to_vec())
            .await
            .expect("create");
        assert!(matches!(
            s.create("/registry/pods/default/a", b"x".to_vec()).await,
            Err(Error::AlreadyExists(_))
        ));
        let r2 = s
            .update("/registry/pods/default/a", b"2".to_vec(), r1)
            .await
            .expect("update");
        assert!(r2 > r1);
        assert!(matches!(
            s.update("/registry/pods/default/a", b"3".to_vec(), r1).await,
            Err(Error::Conflict { .. })
        ));
        let kv = s.get("/registry/pods/default/a").await.expect("get").expect("present");
        assert_eq!(
            (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
            (&b"2"[..], r1, r2)
        );
        s.create("/registry/pods/default/b", b"b".to_vec())
            .await
            .expect("create b");
        s.create("/registry/pods/other/c", b"c".to_vec())
            .await
            .expect("create c");
        let page = s.list("/registry/pods/default/", None, Some(1)).await.expect("list");
        assert_eq!(page.items.len(), 1);
        assert!(page.more);
        let rest = s
            .list("/registry/pods/default/", Some(&page.items[0].key), None)
            .await
            .expect("list rest");
        assert_eq!(rest.items.len(), 1);
        assert!(!rest.more);
        let (prev, _) = s.delete("/registry/pods/default/a", None).await.expect("delete");
        assert_eq!(prev.value, b"2");
        assert!(matches!(
            s.delete("/registry/pods/default/a", None).await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn watch_replays_history_then_live_and_honours_compaction() {
        let (_d, s) = open();
        let r1 = s.create("/registry/cm/ns/a", b"1".to_vec()).await.expect("create");
        let r2 = s.update("/registry/cm/ns/a", b"2".to_vec(), r1).await.expect("update");
        s.create("/registry/other/x", b"x".to_vec()).await.expect("other");
        let mut w = s.watch("/registry/cm/", r1).await.expect("watch");
        let ev = w.recv().await.expect("event").expect("ok");
        match ev {
            Event::Put { kv, prev } => {
                assert_eq!(kv.mod_revision, r2);
                assert_eq!(prev.expect("prev").value, b"1");
            }
            other => panic!("unexpected {other:?}"),
        }
        let (_, r3) = s.delete("/registry/cm/ns/a", None).await.expect("delete");
        let ev = w.recv().await.expect("event").expect("ok");
        assert_eq!(ev.revision(), r3);
        assert!(matches!(ev, Event::Delete { .. }));
        s.compact(r3).await.expect("compact");
        assert!(matches!(
            s.watch("/registry/cm/", r1).await,
            Err(Error::Compacted { .. })
        ));
    }

    #[tokio::test]
    async fn list_at_reads_an_old_snapshot_until_it_is_compacted() {
        let (_dir, s) = open();
        for k in ["/p/a", "/p/b", "/p/c"] {
            s.create(k, b"v1".to_vec()).await.expect("create");
        }
        let snap = s.current_revision().await.expect("rev");
        let b = s.get("/p/b").await.expect("get").expect("b");
        s.update("/p/b", b"v2".to_vec(), b.mod_revision).await.expect("update");
        s.delete("/p/c", None).await.expect("delete");
        s.create("/p/d", b"v1".to_vec()).await.expect("create");
        let page = s
            .list_at("/p/", Some("/p/a"), Some(5), Some(snap))
            .await
            .expect("list at snapshot");
        assert_eq!(page.revision, snap);
        let got: Vec<(&str, &[u8])> = page
            .items
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
            .collect();
        assert_eq!(got, [("/p/b", &b"v1"[..]), ("/p/c", &b"v1"[..])]);
        assert_eq!(page.items[0].mod_revision, b.mod_revision);
        let now = s.list("/p/", None, None).await.expect("list now");
        let keys: Vec<&str> = now.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/p/a", "/p/b", "/p/d"]);
        s.compact(snap + 1).await.expect("compact");
        assert!(matches!(
            s.list_at("/p/", None, None, Some(snap)).await,
            Err(Error::Compacted { .. })
        ));
    }

    /// Writes queued together are committed together, but each is decided on its own: one refused write in a
    /// group leaves the others committed, and revisions stay distinct and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_writes_are_decided_one_by_one() {
        let (_dir, s) = open();
        let base = s.create("/race", b"0".to_vec()).await.expect("create");
        let mut live = s.watch("/", base).await.expect("watch");
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let fresh = s.create(&format!("/k/{i:02}"), b"v".to_vec()).await;
                let raced = s.update("/race", format!("{i}").into_bytes(), base).await;
                (fresh, raced)
            }));
        }
        let mut revisions = Vec::new();
        let mut winners = 0;
        for t in tasks {
            let (fresh, raced) = t.await.expect("task");
            revisions.push(fresh.expect("every create of a distinct key commits"));
            match raced {
                Ok(rev) => {
                    winners += 1;
                    revisions.push(rev);
                }
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(winners, 1, "exactly one update at the same expected revision wins");
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(revisions.len(), 51, "every committed write has its own revision");
        assert_eq!(
            s.current_revision().await.expect("rev"),
            *revisions.last().expect("some")
        );
        let mut seen = Vec::new();
        while seen.len() < 51 {
            let ev = tokio::time::timeout(std::time::Duration::from_secs(10), live.recv())
                .await
                .expect("event in time")
                .expect("stream open")
                .expect("event");
            seen.push(ev.revision());
        }
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "events leave in revision order: {seen:?}"
        );
        assert_eq!(seen, revisions);
    }

    #[tokio::test]
    async fn writes_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let rev = {
            let s = SqliteStore::open(&path).expect("open");
            s.create("/k", b"v".to_vec()).await.expect("create")
        };
        let s = SqliteStore::open(&path).expect("reopen");
        assert_eq!(s.current_revision().await.expect("rev"), rev);
        assert_eq!(s.get("/k").await.expect("get").expect("present").value, b"v");
        let r2 = s.create("/k2", b"v".to_vec()).await.expect("create after reopen");
        assert!(r2 > rev);
    }
}
