//! Watch: a chunked stream of `{"type":...,"object":...}` lines.
//!
//! resourceVersion semantics as Kubernetes: unset or "0" start with synthetic ADDED events for the current state,
//! an exact revision replays every change after it, and a compacted revision answers a single ERROR event with a
//! 410 Expired Status so the client re-lists. Selectors are applied to both the old and the new state, so an object
//! that stops matching is sent as DELETED and one that starts matching as ADDED.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use api_core::registry::ResourceDef;
use api_core::selector::{FieldSelector, LabelSelector};
use api_core::table;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Api;
use super::error::{ApiError, Result};
use super::object::{self as obj, from_bytes, from_kv};
use super::request::{Query, Representation};
use super::route::ResourcePath;
use super::verbs::partial_metadata;
use crate::store::{self, Event};

/// How often a watch with `allowWatchBookmarks` receives a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);
/// Upper bound on a watch's life when the client sets no timeout (Kubernetes picks 30-60 min).
const MAX_WATCH: Duration = Duration::from_secs(3600);

/// A watch stream body: chunks of JSON lines.
pub type Body = mpsc::Receiver<std::result::Result<Bytes, Infallible>>;

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    res: &'static ResourceDef,
}

impl Filter {
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(&obj::labels(o)) && self.fields.matches(self.res, o)
    }
}

struct Encoder {
    res: &'static ResourceDef,
    repr: Representation,
    include_object: String,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, o: Value) -> Bytes {
        let object = match self.repr {
            Representation::Object => o,
            Representation::Metadata => partial_metadata(&o),
            Representation::Table => {
                let rv = obj::meta_str(&o, "resourceVersion").unwrap_or("").to_string();
                let mut t = table::table(self.res, &[o], &self.include_object, &rv, None, jiff::Timestamp::now());
                if self.sent_columns
                    && let Some(m) = t.as_object_mut()
                {
                    m.remove("columnDefinitions");
                }
                self.sent_columns = true;
                t
            }
        };
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    fn bookmark(&self, revision: i64) -> Bytes {
        let (kind, api_version) = match self.repr {
            Representation::Object => (self.res.kind.to_string(), self.res.api_version()),
            Representation::Metadata => ("PartialObjectMetadata".to_string(), "meta.k8s.io/v1".to_string()),
            Representation::Table => ("Table".to_string(), "meta.k8s.io/v1".to_string()),
        };
        let mut line = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": revision.to_string()}}})
        .to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

fn error_event(e: &ApiError) -> Bytes {
    let mut line = json!({"type": "ERROR", "object": e.status()}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Translate one store event into a watch event for this filter, if any.
fn translate(ev: Event, filter: &Filter) -> Result<Option<(&'static str, Value)>> {
    Ok(match ev {
        Event::Put { kv, prev } => {
            let new = from_kv(&kv)?;
            let now = filter.matches(&new);
            let old = match &prev {
                Some(p) => Some(from_bytes(&p.value, kv.mod_revision)?),
                None => None,
            };
            let before = old.as_ref().map(|o| filter.matches(o));
            match (before, now) {
                (None, true) | (Some(false), true) => Some(("ADDED", new)),
                (Some(true), true) => Some(("MODIFIED", new)),
                // Leaving the selector: Kubernetes sends the last matching state at the new resourceVersion.
                (Some(true), false) => old.map(|o| ("DELETED", o)),
                (_, false) => None,
            }
        }
        Event::Delete { prev, revision } => {
            let last = from_bytes(&prev.value, revision)?;
            filter.matches(&last).then_some(("DELETED", last))
        }
    })
}

impl Api {
    /// Start a watch; the returned channel carries the response body.
    pub async fn watch(self: &Arc<Self>, rp: &ResourcePath, repr: Representation, q: &Query) -> Result<Body> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        fields
            .check_supported(rp.res)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        // A watch on a named object (`.../pods/<name>?watch=1`) is a watch with a name field selector.
        if let Some(name) = &rp.name {
            fields = FieldSelector::parse(&format!("metadata.name={name}"))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        let filter = Filter {
            labels,
            fields,
            res: rp.res,
        };
        let timeout = match q.int("timeoutSeconds")? {
            Some(t) if t > 0 => Duration::from_secs(t as u64).min(MAX_WATCH),
            _ => MAX_WATCH,
        };
        let bookmarks = q.flag("allowWatchBookmarks");
        let mut encoder = Encoder {
            res: rp.res,
            repr,
            include_object: q.get("includeObject").unwrap_or("Metadata").to_string(),
            sent_columns: false,
        };
        let ns = rp.namespace.as_deref().filter(|_| rp.res.namespaced);
        let prefix = obj::collection_prefix(rp.res, ns);
        let (tx, rx) = mpsc::channel(256);

        let requested = q.get("resourceVersion").unwrap_or("0");
        let (initial, start) = if requested == "0" {
            let list_rp = ResourcePath {
                name: None,
                ..rp.clone()
            };
            let mut list_q = q.clone();
            list_q.remove("limit");
            list_q.remove("continue");
            if let Some(name) = &rp.name {
                list_q.set("fieldSelector", format!("metadata.name={name}"));
            }
            let (items, rev, _) = self.list_items(&list_rp, &list_q).await?;
            (items, rev)
        } else {
            let rev: i64 = requested.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid resourceVersion {requested:?}: must be an integer from a previous response"
                ))
            })?;
            (vec![], rev)
        };
        let stream = match self.store.watch(&prefix, start).await {
            Ok(s) => s,
            Err(store::Error::Compacted { requested, compacted }) => {
                let e = ApiError::expired(format!("too old resource version: {requested} ({compacted})"));
                let _ = tx.send(Ok(error_event(&e))).await;
                return Ok(rx);
            }
            Err(e) => return Err(ApiError::from_store(rp.res, "", e)),
        };
        let mut shutdown = self.shutdown.clone();
        self.metrics.watchers_inc();
        let api = self.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let mut last = start;
            for o in initial {
                if tx.send(Ok(encoder.event("ADDED", o))).await.is_err() {
                    api.metrics.watchers_dec();
                    return;
                }
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut tick = tokio::time::interval(BOOKMARK_EVERY);
            tick.tick().await;
            loop {
                let chunk = tokio::select! {
                    ev = stream.recv() => match ev {
                        Some(Ok(ev)) => {
                            last = ev.revision();
                            match translate(ev, &filter) {
                                Ok(Some((kind, o))) => encoder.event(kind, o),
                                Ok(None) => continue,
                                Err(e) => error_event(&e),
                            }
                        }
                        Some(Err(e)) => {
                            let _ = tx.send(Ok(error_event(&ApiError::from_store(filter.res, "", e)))).await;
                            break;
                        }
                        None => break,
                    },
                    _ = tick.tick(), if bookmarks => encoder.bookmark(last),
                    _ = &mut deadline => break,
                    _ = shutdown.changed() => break,
                    _ = tx.closed() => break,
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            api.metrics.watchers_dec();
        });
        Ok(rx)
    }
}
