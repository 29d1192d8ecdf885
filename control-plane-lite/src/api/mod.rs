//! The Kubernetes REST API: authentication, routing, and the verbs over the store.
//!
//! One handler takes every request (Kubernetes paths are too regular and too many for a route table), parses the
//! path with [`route::parse`], and dispatches to the verb in [`verbs`] or [`watch`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch as tokio_watch;
use tokio_stream::wrappers::ReceiverStream;

use crate::metrics::Metrics;
use crate::store::Store;

pub mod alloc;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod object;
pub mod protobuf;
pub mod request;
pub mod route;
pub mod typed;
pub mod verbs;
pub mod watch;

use error::ApiError;
use request::Query;
use route::Route;

/// Shared state of the API server.
pub struct Api {
    /// The object store.
    pub store: Arc<dyn Store>,
    /// Bearer token with full access.
    pub admin_token: String,
    /// Token nodes use to join.
    pub node_token: String,
    /// Address clients use to reach the server (`host:port`), for `/api`.
    pub server_address: String,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Deletion follow-up queue.
    pub gc: gc::Gc,
    /// Flips to true on shutdown; ends watch streams.
    pub shutdown: tokio_watch::Receiver<bool>,
    /// The Service ClusterIP range.
    pub service_cidr: alloc::Cidr,
    /// The pod network; each node's podCIDR is carved from it.
    pub cluster_cidr: alloc::Cidr,
    /// How long a node may go without a heartbeat before it is marked Unknown (`--node-monitor-grace-period`).
    pub node_monitor_grace: std::time::Duration,
    /// When set, replaces the defaulted 300 s `tolerationSeconds` of the not-ready/unreachable tolerations
    /// (`--pod-eviction-timeout`).
    pub pod_eviction_timeout: Option<std::time::Duration>,
    /// False until startup (default namespaces) is complete.
    pub ready: std::sync::atomic::AtomicBool,
}

/// A successful response body with its status and warnings.
pub struct Reply {
    /// HTTP status.
    pub code: u16,
    /// JSON body.
    pub body: Value,
    /// Pre-encoded JSON body, sent instead of `body` when set (large lists).
    pub raw: Option<Vec<u8>>,
    /// `Warning` headers (unknown fields under fieldValidation=Warn).
    pub warnings: Vec<String>,
}

impl Reply {
    /// 200 OK.
    pub fn ok(body: Value) -> Self {
        Self {
            code: 200,
            body,
            raw: None,
            warnings: vec![],
        }
    }

    /// 201 Created.
    pub fn created(body: Value) -> Self {
        Self {
            code: 201,
            body,
            raw: None,
            warnings: vec![],
        }
    }

    /// 200 OK with an already encoded JSON body.
    pub fn raw(bytes: Vec<u8>) -> Self {
        Self {
            code: 200,
            body: Value::Null,
            raw: Some(bytes),
            warnings: vec![],
        }
    }

    /// Attach warnings.
    pub fn warn(mut self, w: Vec<String>) -> Self {
        self.warnings.extend(w);
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::OK);
        let body = match self.raw {
            Some(raw) => raw,
            None => self.body.to_string().into_bytes(),
        };
        let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        for w in self.warnings {
            if let Ok(v) = HeaderValue::from_str(&format!("299 - {}", json!(w))) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
        resp
    }
}

fn json_response(v: Value) -> Response {
    Reply::ok(v).into_response()
}

impl Api {
    fn authenticated(&self, headers: &http::HeaderMap) -> bool {
        let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(token) = auth.strip_prefix("Bearer ").map(str::trim) else {
            return false;
        };
        constant_time_eq(token.as_bytes(), self.admin_token.as_bytes())
            || constant_time_eq(token.as_bytes(), self.node_token.as_bytes())
    }

    /// Serve one HTTP request.
    pub async fn handle(self: Arc<Self>, req: http::Request<Body>) -> Response {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let route = route::parse(&path);
        let verb_label = match (&method, &route) {
            (&Method::GET, Route::Resource(_)) if req.uri().query().is_some_and(|q| q.contains("watch=")) => "WATCH",
            _ => method.as_str(),
        }
        .to_string();
        let resource = match &route {
            Route::Resource(rp) => rp.res.plural,
            _ => "",
        };
        let resp = match self.clone().dispatch(route, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        self.metrics
            .observe(&verb_label, resource, resp.status().as_u16(), started.elapsed());
        tracing::debug!(%method, %path, code = resp.status().as_u16(), "request");
        resp
    }

    async fn dispatch(self: Arc<Self>, route: Route, req: http::Request<Body>) -> error::Result<Response> {
        let public = matches!(route, Route::Health | Route::Version);
        if !public && !self.authenticated(req.headers()) {
            // Read (and drop) what the client is still sending, within the body limit and a short time: an
            // HTTP/2 answer sent while the request stream is open ends in a reset that some clients report
            // instead of the 401.
            let _ = tokio::time::timeout(UNAUTHENTICATED_DRAIN, read_body(req.into_body())).await;
            return Err(ApiError::unauthorized());
        }
        let method = req.method().clone();
        let get_only = |r: Response| {
            if method == Method::GET {
                Ok(r)
            } else {
                Err(ApiError::method_not_allowed())
            }
        };
        match route {
            Route::Health => {
                let ready = self.ready.load(std::sync::atomic::Ordering::Acquire);
                let live = req.uri().path().starts_with("/livez") || req.uri().path().starts_with("/healthz");
                if ready || live {
                    Ok((StatusCode::OK, "ok").into_response())
                } else {
                    Ok((StatusCode::SERVICE_UNAVAILABLE, "startup in progress").into_response())
                }
            }
            Route::Version => get_only(json_response(discovery::version())),
            Route::Metrics => get_only(
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    self.metrics.encode(),
                )
                    .into_response(),
            ),
            Route::CoreVersions => get_only(json_response(discovery::core_versions(&self.server_address))),
            Route::Groups => get_only(json_response(discovery::groups())),
            Route::Group(g) => get_only(json_response(
                discovery::group(&g).ok_or_else(ApiError::path_not_found)?,
            )),
            Route::Resources(g, v) => get_only(json_response(
                discovery::resources(&g, &v).ok_or_else(ApiError::path_not_found)?,
            )),
            Route::OpenApiIndex => get_only(json_response(discovery::openapi_index())),
            Route::OpenApiGroupVersion(g, v) => get_only(json_response(
                discovery::openapi_group_version(&g, &v).ok_or_else(ApiError::path_not_found)?,
            )),
            Route::NotFound => Err(ApiError::path_not_found()),
            Route::Resource(rp) => self.resource(rp, req).await,
        }
    }

    async fn resource(self: Arc<Self>, rp: route::ResourcePath, req: http::Request<Body>) -> error::Result<Response> {
        let (parts, body) = req.into_parts();
        let q = Query::parse(parts.uri.query())?;
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let repr = request::representation(accept);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let body = read_body(body).await?;
        let is_watch = rp.watch_path || q.flag("watch");
        let reply = match parts.method {
            Method::GET if is_watch => {
                if rp.sub.is_some() {
                    return Err(ApiError::method_not_allowed());
                }
                let rx = self.watch(&rp, repr, &q).await?;
                let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                return Ok(resp);
            }
            Method::GET if rp.name.is_some() => self.get(&rp, repr, &q).await?,
            Method::GET => self.list(&rp, repr, &q).await?,
            Method::POST => {
                self.create(&rp, request::decode_body(&content_type, &body)?, &q)
                    .await?
            }
            Method::PUT if rp.name.is_some() => {
                self.update(&rp, request::decode_body(&content_type, &body)?, &q)
                    .await?
            }
            Method::PATCH if rp.name.is_some() => self.patch(&rp, &content_type, &body, &q).await?,
            Method::DELETE => {
                let options = if body.iter().all(u8::is_ascii_whitespace) {
                    json!({})
                } else {
                    request::decode_body(&content_type, &body)?
                };
                if rp.name.is_some() {
                    self.delete(&rp, options, &q).await?
                } else {
                    self.delete_collection(&rp, options, &q).await?
                }
            }
            _ => return Err(ApiError::method_not_allowed()),
        };
        Ok(reply.into_response())
    }
}

/// How long a request without valid credentials may take to finish sending its body before the 401 goes out.
const UNAUTHENTICATED_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

async fn read_body(body: Body) -> error::Result<Bytes> {
    let limited = http_body_util::Limited::new(body, request::MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::too_large(request::MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
