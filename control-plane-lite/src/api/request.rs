//! Parsed request parts shared by the verb handlers: query parameters, content negotiation, body decoding.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use super::error::{ApiError, Result};

/// Largest request body accepted (Kubernetes' limit is 3 MiB for most objects).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Query parameters (last value wins, as in Go's `url.Values.Get`).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>, Origin);

/// Who sends a request: a client over HTTP, or the control plane itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A client: every body is checked against the Kubernetes types.
    #[default]
    Client,
    /// A controller inside this process, writing objects it built from stored (already checked) ones.
    Internal,
}

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Self(pairs.into_iter().collect(), Origin::Client))
    }

    /// No parameters, for a write by the control plane itself: its bodies are built from objects that were
    /// checked when clients wrote them, so the typed round trip (unknown and wrongly typed fields) is skipped.
    pub fn internal() -> Self {
        Self(HashMap::new(), Origin::Internal)
    }

    /// True for [`Query::internal`].
    pub fn is_internal(&self) -> bool {
        self.1 == Origin::Internal
    }

    /// A parameter, empty values treated as absent.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Remove a parameter.
    pub fn remove(&mut self, k: &str) {
        self.0.remove(k);
    }

    /// Set a parameter.
    pub fn set(&mut self, k: &str, v: String) {
        self.0.insert(k.to_string(), v);
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// An integer parameter; a malformed value is a 400 naming the parameter.
    pub fn int(&self, k: &str) -> Result<Option<i64>> {
        self.get(k)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid value for query parameter {k}: {v:?} is not an integer"
                    ))
                })
            })
            .transpose()
    }

    /// True when `dryRun=All`; any other value is rejected as Kubernetes does.
    pub fn dry_run(&self) -> Result<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {v}: supported values: \"All\""
            ))),
        }
    }

    /// The `fieldValidation` directive: `Strict`, `Warn` (the default) or `Ignore`.
    pub fn field_validation(&self) -> Result<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(v) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {v}: supported values: \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

/// How to treat unknown or duplicate fields in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request.
    Strict,
    /// Accept and return `Warning` headers.
    Warn,
    /// Accept silently.
    Ignore,
}

/// What representation the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The object(s) as stored.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Pick the first representation in `Accept` that is served (Kubernetes order: clients list preferences).
pub fn representation(accept: &str) -> Representation {
    for part in accept.split(',') {
        let part = part.trim();
        if part.contains("as=Table")
            && part.contains("g=meta.k8s.io")
            && part.contains("v=v1")
            && !part.contains("v=v1beta1")
        {
            return Representation::Table;
        }
        if part.contains("as=PartialObjectMetadata") && part.contains("v=v1") && !part.contains("v=v1beta1") {
            return Representation::Metadata;
        }
        if part.starts_with("application/json") && !part.contains("as=") || part.starts_with("*/*") || part.is_empty() {
            return Representation::Object;
        }
    }
    Representation::Object
}

/// Decode a request body as JSON or YAML (by Content-Type), rejecting empty and oversized bodies.
pub fn decode_body(content_type: &str, body: &Bytes) -> Result<Value> {
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty: send a JSON or YAML object",
        ));
    }
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(body);
    }
    let v: Value = if ct.ends_with("yaml") {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        serde_saphyr::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not valid JSON: {e} (send Content-Type application/yaml for YAML)"
            ))
        })?
    };
    if !v.is_object() && !v.is_array() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_kubectl() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(representation(kubectl), Representation::Table);
        assert_eq!(representation("application/json"), Representation::Object);
        assert_eq!(representation(""), Representation::Object);
        assert_eq!(
            representation("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"),
            Representation::Metadata
        );
    }

    #[test]
    fn rejects_bad_bodies() {
        assert_eq!(
            decode_body("application/json", &Bytes::from_static(b"{")).map_err(|e| e.code),
            Err(400)
        );
        assert_eq!(
            decode_body("application/json", &Bytes::from_static(b"  ")).map_err(|e| e.code),
            Err(400)
        );
        assert_eq!(
            decode_body("application/json", &Bytes::from_static(b"3")).map_err(|e| e.code),
            Err(400)
        );
        let big = Bytes::from(vec![b' '; MAX_BODY + 1]);
        assert_eq!(decode_body("application/json", &big).map_err(|e| e.code), Err(413));
        let y = decode_body("application/yaml", &Bytes::from_static(b"a: 1\nb: [x]\n")).expect("yaml");
        assert_eq!(y["b"][0], "x");
        let q = Query::parse(Some("limit=5&watch=true&dryRun=All")).expect("query");
        assert_eq!(q.int("limit").expect("int"), Some(5));
        assert!(q.flag("watch"));
        assert!(q.dry_run().expect("dry"));
        assert!(Query::parse(Some("limit=x")).expect("q").int("limit").is_err());
    }
}
