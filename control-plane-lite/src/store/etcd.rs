//! The distributed store: an etcd v3 cluster, used the way the Kubernetes apiserver uses it.
//!
//! Keys are stored verbatim (`/registry/<resource>/<namespace>/<name>`), so `etcdctl get --prefix /registry` shows
//! them, and revisions are etcd's own: `create_revision`/`mod_revision` of a key and the header revision of a
//! response. Every conditional write is one etcd transaction (compare-and-put, compare-and-delete); when the
//! compare fails the same transaction reads the key, so the caller learns "not found" versus "conflict, now at
//! revision N" without a second round trip.
//!
//! A watch is an etcd watch on the prefix from `after_revision + 1` with `prev_kv`, forwarded into the
//! [`WatchStream`] by a task that lives as long as the receiver. If the connection breaks, the task re-creates the
//! watch from the last revision it delivered, with capped exponential backoff, and gives up (with an `Err` item)
//! only after [`WATCH_RETRY_FOR`] without success or when that revision has been compacted.
//!
//! Every request is bounded by [`REQUEST_TIMEOUT`], so an etcd that accepts connections but does not answer (no
//! leader, stopped process, black-holed network) fails the request with [`Error::Backend`] instead of hanging it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Error, Event, KeyValue, ListPage, Result, Store, WatchStream};

/// The etcd client's result (the crate does not export its alias).
type EtcdResult<T> = std::result::Result<T, etcd_client::Error>;

/// Upper bound on one etcd request (connecting included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on establishing a TCP connection to one endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 keep-alive ping interval and timeout, so a silently dead connection breaks the watch instead of hanging
/// it. etcd's default `--grpc-keepalive-min-time` is 5 s; pinging more often gets the connection closed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Events buffered per watch stream.
const WATCH_BUFFER: usize = 1024;
/// First delay before re-creating a broken watch; doubled on each failure up to [`WATCH_RETRY_MAX_DELAY`].
const WATCH_RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// Largest delay between attempts to re-create a broken watch.
const WATCH_RETRY_MAX_DELAY: Duration = Duration::from_secs(2);
/// How long a broken watch is retried before the stream ends with an error.
pub const WATCH_RETRY_FOR: Duration = Duration::from_secs(60);
/// How long to wait for etcd to report the compaction point after a compacted watch start.
const COMPACT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// gRPC status codes (`tonic::Code` as `i32`) that mean "etcd did not answer" rather than "etcd said no".
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

/// Fragments of etcd's error messages (`mvcc.ErrCompacted`, `mvcc.ErrFutureRev`).
const ERR_COMPACTED: &str = "required revision has been compacted";
const ERR_FUTURE_REV: &str = "required revision is a future revision";

/// etcd-backed [`Store`]. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// The endpoints as given, comma-separated, for error messages.
    endpoints: Arc<str>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The smallest key greater than every key starting with `prefix`, as etcd computes it (`clientv3.GetPrefixRangeEnd`):
/// `[0]` (no upper bound) when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The etcd `[key, range_end)` covering every key that starts with `prefix` (all keys for an empty prefix, since
/// etcd rejects an empty key).
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()))
    }
}

/// Where a page starts: the prefix itself, or just after `start_after` (`start_after + "\0"`) when that is later.
/// Keys per etcd range request when listing.
const RANGE_PAGE: usize = 1000;

fn list_start(prefix: &str, start_after: Option<&str>) -> Vec<u8> {
    let (from_prefix, _) = prefix_range(prefix);
    match start_after {
        Some(after) => {
            let mut next = after.as_bytes().to_vec();
            next.push(0);
            next.max(from_prefix)
        }
        None => from_prefix,
    }
}

/// True when `e` is an etcd error status whose message contains `fragment`.
fn status_says(e: &etcd_client::Error, fragment: &str) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains(fragment))
}

/// True when `e` means etcd could not be reached (as opposed to etcd refusing the request).
fn is_unreachable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        // A broken or refused connection reaches us as a status with code Unknown and this message.
        etcd_client::Error::GRpcStatus(s) => {
            matches!(s.code() as i32, GRPC_DEADLINE_EXCEEDED | GRPC_UNAVAILABLE) || s.message() == "transport error"
        }
        _ => false,
    }
}

/// Convert an etcd key-value; keys must be UTF-8 (Keel only writes UTF-8 paths).
fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = std::str::from_utf8(kv.key()).map_err(|_| {
        Error::Backend(format!(
            "etcd key {:?} is not UTF-8; keys under the watched or listed prefix must be UTF-8 paths",
            String::from_utf8_lossy(kv.key())
        ))
    })?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// Convert one etcd watch event.
fn to_event(ev: &etcd_client::Event) -> Result<Event> {
    let kv = ev
        .kv()
        .ok_or_else(|| Error::Backend("etcd sent a watch event without a key".to_string()))?;
    match ev.event_type() {
        EventType::Put => {
            // version 1 is a create: there is no previous state (etcd sends none either).
            let prev = if kv.version() == 1 {
                None
            } else {
                ev.prev_kv().map(to_kv).transpose()?
            };
            Ok(Event::Put { kv: to_kv(kv)?, prev })
        }
        EventType::Delete => {
            // The deleted key's mod_revision is the revision of the deletion.
            let revision = kv.mod_revision();
            let prev = match ev.prev_kv() {
                Some(p) => to_kv(p)?,
                None => {
                    // etcd omits prev_kv when the revision before the delete was already compacted.
                    let key = to_kv(kv)?.key;
                    tracing::warn!(%key, revision, "etcd delete event without previous value (compacted)");
                    KeyValue {
                        key,
                        value: Vec::new(),
                        create_revision: 0,
                        mod_revision: 0,
                    }
                }
            };
            Ok(Event::Delete { prev, revision })
        }
    }
}

/// The header revision of a response, or an error naming the request when etcd sent no header.
fn header_revision(header: Option<&etcd_client::ResponseHeader>, what: &str) -> Result<i64> {
    header
        .map(etcd_client::ResponseHeader::revision)
        .ok_or_else(|| Error::Backend(format!("etcd {what}: response without a header")))
}

/// The first (and only) operation response of a transaction.
fn single_op(resp: &etcd_client::TxnResponse, what: &str) -> Result<TxnOpResponse> {
    resp.op_responses()
        .into_iter()
        .next()
        .ok_or_else(|| Error::Backend(format!("etcd {what}: transaction returned no operation result")))
}

impl EtcdStore {
    /// Connect to the etcd cluster at `endpoints` (`http://host:port` URLs) and check that it answers.
    ///
    /// Fails with [`Error::Backend`] naming the endpoints when none of them answers within [`REQUEST_TIMEOUT`].
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::Backend(
                "no etcd endpoints given; pass --etcd-endpoints http://HOST:2379[,...]".to_string(),
            ));
        }
        let shown: Arc<str> = endpoints.join(",").into();
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| Error::Backend(format!("etcd endpoints {shown}: {e}; use http://HOST:PORT URLs")))?;
        let store = Self {
            client,
            endpoints: shown,
        };
        // The client connects lazily: ask for something now so a wrong address fails here, not at first use.
        let revision = store.current_revision().await?;
        tracing::info!(endpoints = %store.endpoints, revision, "connected to etcd");
        Ok(store)
    }

    /// The endpoints this store talks to, comma-separated.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Map an etcd client error for request `what`.
    fn error(&self, what: &str, e: &etcd_client::Error) -> Error {
        if is_unreachable(e) {
            Error::Backend(format!(
                "etcd {what}: cannot reach etcd at {}: {e}; check that etcd is running there or fix --etcd-endpoints",
                self.endpoints
            ))
        } else {
            Error::Backend(format!("etcd {what} (at {}): {e}", self.endpoints))
        }
    }

    /// Run one etcd request with the request timeout; the outer error is the timeout, the inner one etcd's, for
    /// callers that treat some etcd errors as answers.
    async fn call_raw<T>(&self, what: &str, fut: impl Future<Output = EtcdResult<T>>) -> Result<EtcdResult<T>> {
        tokio::time::timeout(REQUEST_TIMEOUT, fut).await.map_err(|_| {
            Error::Backend(format!(
                "etcd {what}: no answer from {} within {REQUEST_TIMEOUT:?}; check that etcd is running there and \
                 has a leader, or fix --etcd-endpoints",
                self.endpoints
            ))
        })
    }

    /// Run one etcd request with the request timeout, mapping its error.
    async fn call<T>(&self, what: &str, fut: impl Future<Output = EtcdResult<T>>) -> Result<T> {
        self.call_raw(what, fut).await?.map_err(|e| self.error(what, &e))
    }

    /// Turn the failed branch of a conditional write (a read of `key`) into NotFound or Conflict.
    fn write_refused(&self, resp: &etcd_client::TxnResponse, key: &str, expected: i64, what: &str) -> Result<Error> {
        match single_op(resp, what)? {
            TxnOpResponse::Get(get) => Ok(match get.kvs().first() {
                None => Error::NotFound(key.to_string()),
                Some(kv) => Error::Conflict {
                    key: key.to_string(),
                    expected,
                    actual: kv.mod_revision(),
                },
            }),
            other => Err(Error::Backend(format!(
                "etcd {what}: unexpected transaction result {other:?}"
            ))),
        }
    }

    /// Check up front that history after `after_revision` is still there.
    ///
    /// A range read at a compacted revision fails with `ErrCompacted`, synchronously, whereas a watch only reports
    /// compaction later in its stream. Like the SQLite store, `after_revision` itself must not be compacted.
    async fn check_not_compacted(&self, prefix: &str, after_revision: i64) -> Result<()> {
        let (key, end) = prefix_range(prefix);
        let at = after_revision.max(1);
        let options = GetOptions::new().with_range(end).with_revision(at).with_count_only();
        let mut kv = self.client.kv_client();
        match self.call_raw("watch", kv.get(key, Some(options))).await? {
            Ok(_) => Ok(()),
            // Watching from a revision that does not exist yet is fine: it waits for it.
            Err(e) if status_says(&e, ERR_FUTURE_REV) => Ok(()),
            Err(e) if status_says(&e, ERR_COMPACTED) => Err(Error::Compacted {
                requested: after_revision,
                compacted: self.compaction_point(prefix, at).await,
            }),
            Err(e) => Err(self.error("watch", &e)),
        }
    }

    /// The compaction point, learnt from a watch at the compacted revision `at` (etcd cancels it and reports
    /// `compact_revision`); 0 when etcd does not say so in time.
    async fn compaction_point(&self, prefix: &str, at: i64) -> i64 {
        let (key, end) = prefix_range(prefix);
        let options = WatchOptions::new().with_range(end).with_start_revision(at);
        let mut watch = self.client.watch_client();
        let probe = async {
            let mut stream = watch.watch(key, Some(options)).await?;
            while let Some(resp) = stream.message().await? {
                if resp.compact_revision() > 0 {
                    return Ok(resp.compact_revision());
                }
                if resp.canceled() {
                    break;
                }
            }
            Ok::<_, etcd_client::Error>(0)
        };
        match tokio::time::timeout(COMPACT_PROBE_TIMEOUT, probe).await {
            Ok(Ok(rev)) => rev,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "could not learn the etcd compaction point");
                0
            }
            Err(_) => 0,
        }
    }

    /// Create an etcd watch on `prefix` from `start_revision` (inclusive) and wait until etcd confirms it.
    async fn open_watch(&self, prefix: &str, start_revision: i64) -> Result<etcd_client::WatchStream> {
        let (key, end) = prefix_range(prefix);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(start_revision)
            .with_prev_key()
            .with_progress_notify();
        let mut client = self.client.watch_client();
        let mut stream = self.call("watch", client.watch(key, Some(options))).await?;
        match self.call("watch", stream.message()).await? {
            Some(resp) if resp.compact_revision() > 0 => Err(Error::Compacted {
                requested: start_revision - 1,
                compacted: resp.compact_revision(),
            }),
            Some(resp) if resp.canceled() => Err(Error::Backend(format!(
                "etcd watch on {prefix}: canceled at creation: {}",
                resp.cancel_reason()
            ))),
            Some(resp) if resp.created() => Ok(stream),
            Some(resp) => Err(Error::Backend(format!(
                "etcd watch on {prefix}: expected a creation response, got {resp:?}"
            ))),
            None => Err(Error::Backend(format!(
                "etcd watch on {prefix}: etcd closed the stream before confirming the watch"
            ))),
        }
    }
}

/// Why following an etcd watch stream stopped.
enum Stop {
    /// The receiver was dropped: nobody is listening any more.
    ReceiverGone,
    /// The watch cannot continue (compaction, undecodable event); the error goes to the receiver.
    Fatal(Error),
    /// The stream broke (connection lost, etcd restarted); re-create it from the last delivered revision.
    Broken(String),
}

/// Forward events from `stream` to `tx` until it stops; `last` is the revision of the last event delivered.
async fn follow(stream: &mut etcd_client::WatchStream, last: &mut i64, tx: &mpsc::Sender<Result<Event>>) -> Stop {
    loop {
        let message = tokio::select! {
            () = tx.closed() => return Stop::ReceiverGone,
            m = stream.message() => m,
        };
        let resp = match message {
            Ok(Some(resp)) => resp,
            Ok(None) => return Stop::Broken("etcd closed the watch stream".to_string()),
            Err(e) => return Stop::Broken(e.to_string()),
        };
        if resp.compact_revision() > 0 {
            return Stop::Fatal(Error::Compacted {
                requested: *last,
                compacted: resp.compact_revision(),
            });
        }
        if resp.canceled() {
            return Stop::Broken(format!("etcd canceled the watch: {}", resp.cancel_reason()));
        }
        if resp.events().is_empty() {
            // A progress notification: etcd only sends one to a watcher that has seen everything up to the header
            // revision, so a re-created watch may start after it (and need not replay, or fall into, old history).
            if let Some(h) = resp.header() {
                *last = (*last).max(h.revision());
            }
            continue;
        }
        // etcd never splits one revision across responses (fragmenting is off), so skipping revisions at or
        // below the last delivered one drops exactly the replay of a re-created watch.
        let floor = *last;
        for ev in resp.events() {
            let event = match to_event(ev) {
                Ok(event) => event,
                Err(e) => return Stop::Fatal(e),
            };
            let revision = event.revision();
            if revision <= floor {
                continue;
            }
            if tx.send(Ok(event)).await.is_err() {
                return Stop::ReceiverGone;
            }
            *last = (*last).max(revision);
        }
    }
}

/// Re-create a broken watch from `last + 1`, retrying with capped backoff for [`WATCH_RETRY_FOR`].
/// `None` when the watch task should end (receiver gone, or the error was sent to it).
async fn rewatch(
    store: &EtcdStore,
    prefix: &str,
    last: i64,
    tx: &mpsc::Sender<Result<Event>>,
) -> Option<etcd_client::WatchStream> {
    let give_up_at = Instant::now() + WATCH_RETRY_FOR;
    let mut delay = WATCH_RETRY_MIN_DELAY;
    loop {
        tokio::select! {
            () = tx.closed() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        match store.open_watch(prefix, last + 1).await {
            Ok(stream) => {
                tracing::info!(last, "etcd watch re-established");
                return Some(stream);
            }
            Err(e @ Error::Compacted { .. }) => {
                // The receiver may be gone already; then there is nobody to tell.
                let _ = tx.send(Err(e)).await;
                return None;
            }
            Err(e) if Instant::now() >= give_up_at => {
                tracing::error!(error = %e, "giving up on the etcd watch");
                let _ = tx
                    .send(Err(Error::Backend(format!(
                        "etcd watch on {prefix} lost after revision {last} and not re-established within \
                         {WATCH_RETRY_FOR:?}: {e}; re-list and watch again"
                    ))))
                    .await;
                return None;
            }
            Err(e) => {
                tracing::debug!(error = %e, ?delay, "etcd watch not re-established yet");
                delay = (delay * 2).min(WATCH_RETRY_MAX_DELAY);
            }
        }
    }
}

/// The watch task: forward events, re-create the watch when the connection breaks, end when the receiver does.
async fn run_watch(
    store: EtcdStore,
    prefix: String,
    mut last: i64,
    mut stream: etcd_client::WatchStream,
    tx: mpsc::Sender<Result<Event>>,
) {
    loop {
        match follow(&mut stream, &mut last, &tx).await {
            Stop::ReceiverGone => return,
            Stop::Fatal(e) => {
                tracing::info!(error = %e, "etcd watch ended");
                let _ = tx.send(Err(e)).await;
                return;
            }
            Stop::Broken(reason) => {
                tracing::warn!(%reason, last, "etcd watch broke; re-creating it");
            }
        }
        match rewatch(&store, &prefix, last, &tx).await {
            Some(s) => stream = s,
            None => return,
        }
    }
}

impl Store for EtcdStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        async move {
            let mut kv = self.client.kv_client();
            let resp = self.call("get", kv.get(key, None)).await?;
            resp.kvs().first().map(to_kv).transpose()
        }
        .boxed()
    }

    fn list_at<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: Option<usize>,
        at: Option<i64>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        async move {
            let (_, end) = prefix_range(prefix);
            let mut start = list_start(prefix, start_after);
            // Read in ranges of at most RANGE_PAGE keys, all at the first range's revision (or `at`), so a large
            // list stays under gRPC's message size limit and is still one consistent snapshot.
            let mut items: Vec<KeyValue> = Vec::new();
            let mut revision: Option<i64> = at;
            loop {
                // One more than asked, to learn whether more follow.
                let want = limit.map_or(RANGE_PAGE, |l| (l + 1).saturating_sub(items.len()).min(RANGE_PAGE));
                let mut options = GetOptions::new()
                    .with_range(end.clone())
                    .with_limit(i64::try_from(want).unwrap_or(i64::MAX));
                if let Some(r) = revision {
                    options = options.with_revision(r);
                }
                let mut kv = self.client.kv_client();
                let resp = match self.call_raw("list", kv.get(start.clone(), Some(options))).await? {
                    Ok(resp) => resp,
                    Err(e) if status_says(&e, ERR_COMPACTED) => {
                        let requested = revision.unwrap_or(0);
                        return Err(Error::Compacted {
                            requested,
                            compacted: self.compaction_point(prefix, requested).await,
                        });
                    }
                    Err(e) => return Err(self.error("list", &e)),
                };
                let rev = match revision {
                    Some(r) => r,
                    None => header_revision(resp.header(), "list")?,
                };
                revision = Some(rev);
                for k in resp.kvs() {
                    items.push(to_kv(k)?);
                }
                let done = !resp.more() || limit.is_some_and(|l| items.len() > l);
                match items.last() {
                    Some(last) if !done => {
                        start = last.key.as_bytes().to_vec();
                        start.push(0);
                    }
                    _ => break,
                }
            }
            let revision = revision.unwrap_or(0);
            let more = limit.is_some_and(|l| items.len() > l);
            if let Some(l) = limit {
                items.truncate(l);
            }
            Ok(ListPage { items, revision, more })
        }
        .boxed()
    }

    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<i64>> {
        async move {
            let txn = Txn::new()
                .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
                .and_then(vec![TxnOp::put(key, value, None)]);
            let mut kv = self.client.kv_client();
            let resp = self.call("create", kv.txn(txn)).await?;
            if !resp.succeeded() {
                return Err(Error::AlreadyExists(key.to_string()));
            }
            header_revision(resp.header(), "create")
        }
        .boxed()
    }

    fn update<'a>(&'a self, key: &'a str, value: Vec<u8>, expected_revision: i64) -> BoxFuture<'a, Result<i64>> {
        async move {
            // `version > 0` keeps a missing key (mod_revision 0) from matching an expected revision of 0.
            let txn = Txn::new()
                .when(vec![
                    Compare::version(key, CompareOp::Greater, 0),
                    Compare::mod_revision(key, CompareOp::Equal, expected_revision),
                ])
                .and_then(vec![TxnOp::put(key, value, None)])
                .or_else(vec![TxnOp::get(key, None)]);
            let mut kv = self.client.kv_client();
            let resp = self.call("update", kv.txn(txn)).await?;
            if !resp.succeeded() {
                return Err(self.write_refused(&resp, key, expected_revision, "update")?);
            }
            header_revision(resp.header(), "update")
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str, expected_revision: Option<i64>) -> BoxFuture<'a, Result<(KeyValue, i64)>> {
        async move {
            let delete = vec![TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()))];
            // etcd-client wants when, and_then, or_else in this order.
            let txn = match expected_revision {
                None => Txn::new().and_then(delete),
                Some(want) => Txn::new()
                    .when(vec![
                        Compare::version(key, CompareOp::Greater, 0),
                        Compare::mod_revision(key, CompareOp::Equal, want),
                    ])
                    .and_then(delete)
                    .or_else(vec![TxnOp::get(key, None)]),
            };
            let mut kv = self.client.kv_client();
            let resp = self.call("delete", kv.txn(txn)).await?;
            if !resp.succeeded() {
                return Err(self.write_refused(&resp, key, expected_revision.unwrap_or_default(), "delete")?);
            }
            let prev = match single_op(&resp, "delete")? {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(to_kv).transpose()?,
                other => {
                    return Err(Error::Backend(format!(
                        "etcd delete: unexpected transaction result {other:?}"
                    )));
                }
            };
            let prev = prev.ok_or_else(|| Error::NotFound(key.to_string()))?;
            Ok((prev, header_revision(resp.header(), "delete")?))
        }
        .boxed()
    }

    fn watch<'a>(&'a self, prefix: &'a str, after_revision: i64) -> BoxFuture<'a, Result<WatchStream>> {
        async move {
            self.check_not_compacted(prefix, after_revision).await?;
            let stream = self.open_watch(prefix, after_revision + 1).await?;
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            let span = tracing::info_span!("etcd_watch", prefix, after_revision);
            tokio::spawn(run_watch(self.clone(), prefix.to_string(), after_revision, stream, tx).instrument(span));
            Ok(rx)
        }
        .boxed()
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<i64>> {
        async move {
            // A count of one key: the cheapest read that carries the store revision in its header.
            let mut kv = self.client.kv_client();
            let resp = self
                .call("read revision", kv.get("/", Some(GetOptions::new().with_count_only())))
                .await?;
            header_revision(resp.header(), "read revision")
        }
        .boxed()
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<()>> {
        async move {
            // etcd refuses a future revision; the SQLite store clamps, so do the same.
            let revision = revision.min(self.current_revision().await?);
            if revision <= 0 {
                return Ok(());
            }
            let mut kv = self.client.kv_client();
            // `physical` waits until the compaction is applied, so history below `revision` is really gone.
            let options = CompactionOptions::new().with_physical();
            match self.call_raw("compact", kv.compact(revision, Some(options))).await? {
                Ok(_) => {
                    tracing::info!(revision, "compacted etcd history");
                    Ok(())
                }
                // Already compacted at or past `revision`: nothing to do, as with SQLite.
                Err(e) if status_says(&e, ERR_COMPACTED) => Ok(()),
                Err(e) => Err(self.error("compact", &e)),
            }
        }
        .boxed()
    }

    fn backend_name(&self) -> &'static str {
        "etcd"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn list_starts_after_the_last_key_but_never_before_the_prefix() {
        assert_eq!(list_start("/r/p/", None), b"/r/p/");
        assert_eq!(list_start("/r/p/", Some("/r/p/a")), b"/r/p/a\0");
        assert_eq!(list_start("/r/p/", Some("/a")), b"/r/p/");
        assert_eq!(list_start("", None), b"\0");
    }
}
