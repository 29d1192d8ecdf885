//! The object store: a revisioned key-value store behind one trait, with two backends.
//!
//! Keys are etcd-style paths (`/registry/<resource>/<namespace>/<name>`); values are the JSON bytes of an object
//! without `metadata.resourceVersion` (the API layer sets that from `mod_revision` on every read, as Kubernetes does).
//! Every write gets a new cluster-wide revision; watches replay history from any revision that has not been
//! compacted and then follow live changes.

use futures::future::BoxFuture;
use tokio::sync::mpsc;

pub mod etcd;
pub mod sqlite;

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key already exists (create).
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key does not exist (update, delete).
    #[error("key {0} not found")]
    NotFound(String),
    /// The key's current revision differs from the one the caller read (optimistic concurrency).
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key written.
        key: String,
        /// The revision the caller expected.
        expected: i64,
        /// The revision found.
        actual: i64,
    },
    /// The requested revision has been compacted away; the caller must re-list.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The compaction point.
        compacted: i64,
    },
    /// The backend failed (SQLite error, etcd unreachable, ...).
    #[error("store backend: {0}")]
    Backend(String),
}

/// Result alias for store operations.
pub type Result<T> = std::result::Result<T, Error>;

/// One stored key with its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes (object JSON).
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
}

/// A change to a key, as delivered to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created (`prev` is None) or updated (`prev` is the value before).
    Put {
        /// The new state.
        kv: KeyValue,
        /// The state before, when the key existed.
        prev: Option<KeyValue>,
    },
    /// The key was deleted at `revision`; `prev` is its last state.
    Delete {
        /// The last state before deletion.
        prev: KeyValue,
        /// The revision of the deletion.
        revision: i64,
    },
}

impl Event {
    /// The revision at which this event happened.
    pub fn revision(&self) -> i64 {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key this event is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// A page of a range read.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Keys in lexical order.
    pub items: Vec<KeyValue>,
    /// The store revision the read reflects.
    pub revision: i64,
    /// True when more keys follow the last one returned.
    pub more: bool,
}

/// A watch stream: events in revision order. The stream ends (None) if the store stops; an `Err` item means the
/// watch cannot continue (for example it fell behind a compaction) and the client must re-list.
pub type WatchStream = mpsc::Receiver<Result<Event>>;

/// A revisioned key-value store. Implementations: [`sqlite::SqliteStore`] (embedded, default) and
/// [`etcd::EtcdStore`] (distributed).
pub trait Store: Send + Sync + 'static {
    /// Read one key.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>>;

    /// Read keys with `prefix`, in key order, starting strictly after `start_after` when given, at most `limit`,
    /// as they are now.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: Option<usize>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        self.list_at(prefix, start_after, limit, None)
    }

    /// Like [`Store::list`], as the keys were at `revision` when given (the page's revision is then `revision`):
    /// later pages of a paginated list read the first page's snapshot. A compacted `revision` is
    /// [`Error::Compacted`].
    fn list_at<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: Option<usize>,
        revision: Option<i64>,
    ) -> BoxFuture<'a, Result<ListPage>>;

    /// Create a key that must not exist; returns the new revision.
    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<i64>>;

    /// Replace a key whose current mod revision is `expected_revision`; returns the new revision.
    fn update<'a>(&'a self, key: &'a str, value: Vec<u8>, expected_revision: i64) -> BoxFuture<'a, Result<i64>>;

    /// Delete a key, if `expected_revision` is given only when it matches; returns the last state and the
    /// revision of the deletion.
    fn delete<'a>(&'a self, key: &'a str, expected_revision: Option<i64>) -> BoxFuture<'a, Result<(KeyValue, i64)>>;

    /// Watch keys with `prefix` for changes after `after_revision` (history first, then live changes).
    /// Fails with [`Error::Compacted`] when `after_revision` is older than the compaction point.
    fn watch<'a>(&'a self, prefix: &'a str, after_revision: i64) -> BoxFuture<'a, Result<WatchStream>>;

    /// The newest revision of the store.
    fn current_revision(&self) -> BoxFuture<'_, Result<i64>>;

    /// Drop history older than `revision` (current values are kept).
    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<()>>;

    /// A short name for logs and benchmarks (`sqlite`, `etcd`).
    fn backend_name(&self) -> &'static str;
}
