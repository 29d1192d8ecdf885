//! The REST verbs on objects: get, list, create, update, patch, delete, deletecollection, and the status, scale
//! and binding subresources. Every write goes: decode → admit (metadata, defaults, validation) → store with
//! optimistic concurrency. A rejected write stores nothing.

use api_core::registry::{self, ResourceDef};
use api_core::selector::{FieldSelector, LabelSelector};
use api_core::{defaults, strategic, table, validation};
use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use super::error::{ApiError, Result};
use super::object::{self as obj, from_kv, meta_str, set_meta};
use super::request::{FieldValidation, Query, Representation};
use super::route::ResourcePath;
use super::typed;
use super::{Api, Reply};
use crate::store;

/// Attempts for read-modify-write loops (patch, unconditional update) before answering 409.
const RETRIES: usize = 8;
/// Store page size when filtering a list.
const SCAN_PAGE: usize = 500;

fn ns_of(rp: &ResourcePath) -> Option<&str> {
    rp.namespace.as_deref().filter(|_| rp.res.namespaced)
}

fn name_of(rp: &ResourcePath) -> Result<&str> {
    rp.name.as_deref().ok_or_else(ApiError::method_not_allowed)
}

impl Api {
    /// Read one object (404 when absent).
    pub async fn read(&self, res: &'static ResourceDef, ns: Option<&str>, name: &str) -> Result<Value> {
        let kv = self
            .store
            .get(&obj::key(res, ns, name))
            .await
            .map_err(|e| ApiError::from_store(res, name, e))?
            .ok_or_else(|| ApiError::not_found(res, name))?;
        from_kv(&kv)
    }

    /// GET on an object or subresource.
    pub async fn get(&self, rp: &ResourcePath, repr: Representation, q: &Query) -> Result<Reply> {
        let name = name_of(rp)?;
        let current = self.read(rp.res, ns_of(rp), name).await?;
        match rp.sub.as_deref() {
            Some("scale") => return Ok(Reply::ok(scale_of(rp.res, &current)?)),
            Some("status") | None => {}
            Some(_) => return Err(ApiError::method_not_allowed()),
        }
        Ok(Reply::ok(self.render_one(rp.res, current, repr, q)))
    }

    fn render_one(&self, res: &ResourceDef, o: Value, repr: Representation, q: &Query) -> Value {
        match repr {
            Representation::Object => o,
            Representation::Metadata => partial_metadata(&o),
            Representation::Table => {
                let rv = meta_str(&o, "resourceVersion").unwrap_or("").to_string();
                table::table(
                    res,
                    &[o],
                    q.get("includeObject").unwrap_or("Metadata"),
                    &rv,
                    None,
                    jiff::Timestamp::now(),
                )
            }
        }
    }

    /// List objects matching the selectors, one page at a time (`limit`/`continue`).
    pub async fn list(&self, rp: &ResourcePath, repr: Representation, q: &Query) -> Result<Reply> {
        if repr == Representation::Object {
            // Fast path: splice stored bytes into the response instead of parsing and re-encoding every object.
            let (kvs, revision, cont) = self.list_kvs(rp, q).await?;
            let mut meta = json!({"resourceVersion": revision.to_string()});
            if let Some(c) = &cont {
                meta["continue"] = json!(c);
            }
            let head =
                json!({"kind": format!("{}List", rp.res.kind), "apiVersion": rp.res.api_version(), "metadata": meta});
            let head = head.to_string();
            let mut out = Vec::with_capacity(kvs.iter().map(|kv| kv.value.len() + 40).sum::<usize>() + head.len() + 16);
            out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
            out.extend_from_slice(b",\"items\":[");
            for (i, kv) in kvs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                obj::write_with_revision(&mut out, &kv.value, kv.mod_revision);
            }
            out.extend_from_slice(b"]}");
            return Ok(Reply::raw(out));
        }
        let (items, revision, cont) = self.list_items(rp, q).await?;
        let rv = revision.to_string();
        let body = match repr {
            Representation::Table => table::table(
                rp.res,
                &items,
                q.get("includeObject").unwrap_or("Metadata"),
                &rv,
                cont.as_deref(),
                jiff::Timestamp::now(),
            ),
            Representation::Metadata => {
                let items: Vec<Value> = items.iter().map(partial_metadata).collect();
                let mut meta = json!({"resourceVersion": rv});
                if let Some(c) = &cont {
                    meta["continue"] = json!(c);
                }
                json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items})
            }
            Representation::Object => {
                let mut meta = json!({"resourceVersion": rv});
                if let Some(c) = &cont {
                    meta["continue"] = json!(c);
                }
                json!({"kind": format!("{}List", rp.res.kind), "apiVersion": rp.res.api_version(), "metadata": meta, "items": items})
            }
        };
        Ok(Reply::ok(body))
    }

    /// The matching objects of a list request, the store revision, and the continue token if more remain.
    pub async fn list_items(&self, rp: &ResourcePath, q: &Query) -> Result<(Vec<Value>, i64, Option<String>)> {
        let (kvs, rev, cont) = self.list_kvs(rp, q).await?;
        let items = kvs.iter().map(from_kv).collect::<Result<Vec<_>>>()?;
        Ok((items, rev, cont))
    }

    /// Like [`Api::list_items`], but the stored entries (objects are parsed only to apply selectors).
    pub async fn list_kvs(&self, rp: &ResourcePath, q: &Query) -> Result<(Vec<store::KeyValue>, i64, Option<String>)> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        fields
            .check_supported(rp.res)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let limit = match q.int("limit")? {
            Some(l) if l > 0 => Some(l as usize),
            _ => None,
        };
        let (mut start, mut revision) = match q.get("continue") {
            Some(token) => {
                let (key, rev) = decode_continue(token)?;
                (Some(key), Some(rev))
            }
            None => (None, None),
        };
        let prefix = obj::collection_prefix(rp.res, ns_of(rp));
        // A name pinned by the field selector is a point read.
        if let (Some(name), Some(ns)) = (fields.pinned_name(), ns_of(rp).or((!rp.res.namespaced).then_some(""))) {
            let key = obj::key(rp.res, Some(ns), name);
            let rev = self
                .store
                .current_revision()
                .await
                .map_err(|e| ApiError::from_store(rp.res, name, e))?;
            let items = match self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(rp.res, name, e))?
            {
                Some(kv) => {
                    let o = from_kv(&kv)?;
                    if labels.matches(&obj::labels(&o)) && fields.matches(rp.res, &o) {
                        vec![kv]
                    } else {
                        vec![]
                    }
                }
                None => vec![],
            };
            return Ok((items, rev, None));
        }
        let filtered = !labels.is_empty() || !fields.is_empty();
        let mut items = Vec::new();
        loop {
            let want = if filtered {
                Some(SCAN_PAGE)
            } else {
                limit.map(|l| l - items.len())
            };
            // Every page of one list, across requests too, reads the first page's snapshot.
            let page = self
                .store
                .list_at(&prefix, start.as_deref(), want, revision)
                .await
                .map_err(|e| match e {
                    store::Error::Compacted { .. } => ApiError::expired(CONTINUE_EXPIRED.to_string()),
                    e => ApiError::from_store(rp.res, "", e),
                })?;
            revision.get_or_insert(page.revision);
            let n = page.items.len();
            for (i, kv) in page.items.iter().enumerate() {
                let keep = if filtered {
                    let o = from_kv(kv)?;
                    labels.matches(&obj::labels(&o)) && fields.matches(rp.res, &o)
                } else {
                    true
                };
                if keep {
                    items.push(kv.clone());
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    let more = i + 1 < n || page.more;
                    let token = more.then(|| encode_continue(&kv.key, page.revision));
                    return Ok((items, page.revision, token));
                }
            }
            match page.items.last() {
                Some(last) if page.more => start = Some(last.key.clone()),
                _ => break,
            }
        }
        Ok((items, revision.unwrap_or(0), None))
    }

    /// POST on a collection (create) or on `pods/<name>/binding`.
    pub async fn create(&self, rp: &ResourcePath, body: Value, q: &Query) -> Result<Reply> {
        if rp.sub.as_deref() == Some("binding") {
            return self.bind(rp, body).await;
        }
        if rp.name.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let res = rp.res;
        let mut o = body;
        check_type(res, &mut o)?;
        let ns = self.admit_namespace(rp, &mut o, true).await?;
        let meta = obj::meta_mut(&mut o);
        let name = match meta.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(n) => n.to_string(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(prefix) => format!("{prefix}{}", random_suffix()),
                None => {
                    return Err(ApiError::invalid(
                        res,
                        "",
                        &[validation::FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            },
        };
        meta.insert("name".into(), json!(name));
        let uid = uuid::Uuid::new_v4().to_string();
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(obj::now_rfc3339()));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(f);
        }
        if res.has_spec() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        let warnings = strict_fields(res, &mut o, q)?;
        prepare_create(res, &mut o, &uid);
        defaults::apply(res, &mut o);
        if res.kind == "DaemonSet" {
            defaults::daemon_set_template_generation(None, &mut o);
        }
        let errs = validation::validate_create(res, &o);
        if !errs.is_empty() {
            return Err(ApiError::invalid(res, &name, &errs));
        }
        if q.dry_run()? {
            return Ok(Reply::created(o).warn(warnings));
        }
        let key = obj::key(res, ns.as_deref(), &name);
        if res.kind == "Service"
            && self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(res, &name, e))?
                .is_some()
        {
            // Answer AlreadyExists before allocating: the existing Service holds the addresses a retry would ask for.
            return Err(ApiError::already_exists(res, &name));
        }
        let claims = if res.kind == "Service" {
            Some(self.allocate(res, &mut o, None).await?.0)
        } else {
            None
        };
        let rev = match self.store.create(&key, obj::to_bytes(&o)).await {
            Ok(rev) => rev,
            Err(e) => {
                if let Some(c) = &claims {
                    self.release(c).await;
                }
                return Err(ApiError::from_store(res, &name, e));
            }
        };
        set_meta(&mut o, "resourceVersion", json!(rev.to_string()));
        Ok(Reply::created(o).warn(warnings))
    }

    /// Check the namespace in the body agrees with the URL, fill it in, and (on create) require that the
    /// namespace exists and is not terminating.
    async fn admit_namespace(&self, rp: &ResourcePath, o: &mut Value, creating: bool) -> Result<Option<String>> {
        if !rp.res.namespaced {
            obj::remove_meta(o, "namespace");
            return Ok(None);
        }
        let url_ns = rp.namespace.clone();
        let body_ns = meta_str(o, "namespace").filter(|s| !s.is_empty()).map(str::to_string);
        let ns = match (url_ns, body_ns) {
            (Some(u), Some(b)) if u != b => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(u), _) => u,
            (None, _) => {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced: send the request to /namespaces/<namespace>/{}",
                    rp.res.kind, rp.res.plural
                )));
            }
        };
        set_meta(o, "namespace", json!(ns));
        if creating {
            let nsres = namespaces();
            let nsobj = self.read(nsres, None, &ns).await?;
            if nsobj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
                return Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rp.res.plural,
                    meta_str(o, "name").unwrap_or("")
                )));
            }
        }
        Ok(Some(ns))
    }

    /// PUT on an object or its status/scale subresource.
    pub async fn update(&self, rp: &ResourcePath, body: Value, q: &Query) -> Result<Reply> {
        let name = name_of(rp)?.to_string();
        if rp.sub.as_deref() == Some("scale") {
            return self.write_scale(rp, &name, body, q.dry_run()?).await;
        }
        let mut o = body;
        check_type(rp.res, &mut o)?;
        match meta_str(&o, "name") {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => set_meta(&mut o, "name", json!(name)),
        }
        self.admit_namespace(rp, &mut o, false).await?;
        let warnings = strict_fields(rp.res, &mut o, q)?;
        let precondition = obj::revision(&o);
        let dry = q.dry_run()?;
        let sub = rp.sub.clone();
        let (reply, _) = self
            .modify(rp, &name, precondition, dry, move |_| Ok(o.clone()), sub.as_deref())
            .await?;
        Ok(reply.warn(warnings))
    }

    /// PATCH: apply a JSON patch, merge patch or strategic merge patch to the current object and store it.
    pub async fn patch(&self, rp: &ResourcePath, content_type: &str, raw: &[u8], q: &Query) -> Result<Reply> {
        let name = name_of(rp)?.to_string();
        let ct = content_type.split(';').next().unwrap_or("").trim().to_string();
        if raw.len() > super::request::MAX_BODY {
            return Err(ApiError::too_large(super::request::MAX_BODY));
        }
        let patch: Value = match ct.as_str() {
            "application/json-patch+json"
            | "application/merge-patch+json"
            | "application/strategic-merge-patch+json" => {
                serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
            }
            "application/apply-patch+yaml" => {
                return Err(ApiError::unsupported_media_type(
                    "server-side apply is not supported by keel yet: use client-side `kubectl apply` (without --server-side)",
                ));
            }
            other => {
                return Err(ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
                )));
            }
        };
        if ct == "application/json-patch+json" && !patch.is_array() {
            return Err(ApiError::bad_request("json patch must be a JSON array of operations"));
        }
        if ct != "application/json-patch+json" && !patch.is_object() {
            return Err(ApiError::bad_request("merge patch must be a JSON object"));
        }
        let dry = q.dry_run()?;
        let kind = if rp.sub.as_deref() == Some("scale") {
            "Scale"
        } else {
            rp.res.kind
        };
        let apply = move |current: &Value| -> Result<Value> {
            match ct.as_str() {
                "application/json-patch+json" => {
                    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                        .map_err(|e| ApiError::bad_request(format!("invalid json patch: {e}")))?;
                    let mut doc = current.clone();
                    json_patch::patch(&mut doc, &ops).map_err(|e| {
                        ApiError::new(
                            422,
                            "Invalid",
                            format!("the server rejected our request due to an error in our request: {e}"),
                        )
                    })?;
                    Ok(doc)
                }
                "application/merge-patch+json" => {
                    let mut doc = current.clone();
                    json_patch::merge(&mut doc, &patch);
                    Ok(doc)
                }
                _ => strategic::apply(kind, current, &patch).map_err(|e| ApiError::bad_request(e.to_string())),
            }
        };
        if rp.sub.as_deref() == Some("scale") {
            let current = self.read(rp.res, ns_of(rp), &name).await?;
            let scale = apply(&scale_of(rp.res, &current)?)?;
            return self.write_scale(rp, &name, scale, dry).await;
        }
        let sub = rp.sub.clone();
        let field_validation = q.field_validation()?;
        let res = rp.res;
        // Unknown fields are judged on the patched object before anything is written: under Strict the patch is
        // rejected and nothing changes.
        // Otherwise they are dropped, and the warnings of the attempt that was written are returned.
        let warned = std::sync::Mutex::new(Vec::new());
        let checked = |current: &Value| -> Result<Value> {
            let mut doc = apply(current)?;
            let w = unknown_field_warnings(res, &mut doc, field_validation)?;
            *warned.lock().unwrap_or_else(|p| p.into_inner()) = w;
            Ok(doc)
        };
        let (reply, _) = self.modify(rp, &name, None, dry, checked, sub.as_deref()).await?;
        let warnings = warned.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(reply.warn(warnings))
    }

    /// Read-modify-write with retries: `change` turns the current object into the desired one (body of a PUT, or a
    /// patched copy); then metadata is carried over, defaults and validation run, and the result is stored.
    async fn modify(
        &self,
        rp: &ResourcePath,
        name: &str,
        precondition: Option<i64>,
        dry: bool,
        change: impl Fn(&Value) -> Result<Value>,
        sub: Option<&str>,
    ) -> Result<(Reply, Option<Value>)> {
        let res = rp.res;
        let ns = ns_of(rp);
        let key = obj::key(res, ns, name);
        for _ in 0..RETRIES {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(res, name, e))?
                .ok_or_else(|| ApiError::not_found(res, name))?;
            let old = from_kv(&kv)?;
            if let Some(p) = precondition
                && p != kv.mod_revision
            {
                return Err(ApiError::conflict(res, name));
            }
            let requested = change(&old)?;
            let mut new = merge_update(res, &old, requested.clone(), sub)?;
            let uid = meta_str(&old, "uid").unwrap_or("").to_string();
            if sub.is_none() {
                defaults::prepare_for_update(res, &old, &mut new);
            }
            if res.kind == "Job" {
                defaults::job_selector(&mut new, &uid);
            }
            defaults::apply(res, &mut new);
            if res.kind == "DaemonSet" && sub.is_none() {
                defaults::daemon_set_template_generation(Some(&old), &mut new);
            }
            if res.has_spec() && obj::spec_part(&old) != obj::spec_part(&new) {
                let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                set_meta(&mut new, "generation", json!(generation + 1));
            }
            if res.kind == "Secret" {
                fold_string_data(&mut new);
            }
            let errs = validation::validate_update(res, &old, &new);
            if !errs.is_empty() {
                return Err(ApiError::invalid(res, name, &errs));
            }
            let new_bytes = obj::to_bytes(&new);
            if new_bytes == kv.value {
                // No change: Kubernetes does not write a new revision.
                return Ok((Reply::ok(old), Some(requested)));
            }
            if dry {
                return Ok((Reply::ok(new), Some(requested)));
            }
            // An object being deleted whose last finalizer was just removed is gone, unless its graceful
            // deletion is still running (a pod whose kubelet has not yet confirmed with grace period 0).
            let grace_running = new
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_some_and(|g| g > 0);
            if new.pointer("/metadata/deletionTimestamp").is_some()
                && obj::finalizers(&new).is_empty()
                && !grace_running
            {
                match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok((_, rev)) => {
                        set_meta(&mut new, "resourceVersion", json!(rev.to_string()));
                        if res.kind == "Service" {
                            self.release(&self.claims_of(&new)).await;
                        }
                        self.gc.owner_deleted(res, &new);
                        return Ok((Reply::ok(new), Some(requested)));
                    }
                    Err(store::Error::Conflict { .. }) if precondition.is_none() => continue,
                    Err(e) => return Err(ApiError::from_store(res, name, e)),
                }
            }
            let (fresh, dropped) = if res.kind == "Service" && sub.is_none() {
                self.allocate(res, &mut new, Some(&old)).await?
            } else {
                Default::default()
            };
            let new_bytes = obj::to_bytes(&new);
            match self.store.update(&key, new_bytes, kv.mod_revision).await {
                Ok(rev) => {
                    self.release(&dropped).await;
                    set_meta(&mut new, "resourceVersion", json!(rev.to_string()));
                    return Ok((Reply::ok(new), Some(requested)));
                }
                Err(store::Error::Conflict { .. }) if precondition.is_none() => {
                    self.release(&fresh).await;
                    continue;
                }
                Err(e) => {
                    self.release(&fresh).await;
                    return Err(ApiError::from_store(res, name, e));
                }
            }
        }
        Err(ApiError::conflict(res, name))
    }

    /// Unconditional read-modify-write used by internal follow-up work (finalizers, owner references).
    pub(crate) async fn modify_with(
        &self,
        rp: &ResourcePath,
        name: &str,
        change: impl Fn(&Value) -> Result<Value>,
    ) -> Result<()> {
        self.modify(rp, name, None, false, change, None).await.map(|_| ())
    }

    /// Like [`Api::modify_with`] for the status subresource: only `status` (and labels/annotations) of the
    /// returned object are kept.
    pub async fn modify_status_with(
        &self,
        rp: &ResourcePath,
        name: &str,
        change: impl Fn(&Value) -> Result<Value>,
    ) -> Result<Value> {
        let rp = ResourcePath {
            sub: Some("status".into()),
            ..rp.clone()
        };
        self.modify(&rp, name, None, false, change, Some("status"))
            .await
            .map(|(r, _)| r.body)
    }

    async fn write_scale(&self, rp: &ResourcePath, name: &str, scale: Value, dry: bool) -> Result<Reply> {
        if scale.get("kind").and_then(Value::as_str).is_some_and(|k| k != "Scale") {
            return Err(ApiError::bad_request(
                "the scale subresource takes an autoscaling/v1 Scale object",
            ));
        }
        let replicas = match scale.pointer("/spec/replicas") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ApiError::bad_request("spec.replicas must be an integer"))?,
        };
        let scale_res = ResourceDef {
            kind: "Scale",
            group: "autoscaling",
            ..*rp.res
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                &scale_res,
                name,
                &[validation::FieldError::invalid(
                    "spec.replicas",
                    json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let precondition = obj::revision(&scale);
        let (reply, _) = self
            .modify(
                rp,
                name,
                precondition,
                dry,
                move |current| {
                    let mut o = current.clone();
                    o["spec"]["replicas"] = json!(replicas);
                    Ok(o)
                },
                None,
            )
            .await?;
        Ok(Reply::ok(scale_of(rp.res, &reply.body)?))
    }

    async fn bind(&self, rp: &ResourcePath, body: Value) -> Result<Reply> {
        let name = name_of(rp)?.to_string();
        let target = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::invalid(rp.res, &name, &[validation::FieldError::required("target.name", "")]))?
            .to_string();
        let pod_rp = ResourcePath {
            sub: None,
            ..rp.clone()
        };
        let res = rp.res;
        let n = name.clone();
        let now = obj::now_rfc3339();
        // spec.nodeName and the PodScheduled condition are written together, in one revision.
        self.modify(
            &pod_rp,
            &name,
            None,
            false,
            move |current| {
                if let Some(node) = current
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    return Err(ApiError::conflict_with(
                        res,
                        &n,
                        &format!("pod {n} is already assigned to node \"{node}\""),
                    ));
                }
                if current.pointer("/metadata/deletionTimestamp").is_some() {
                    return Err(ApiError::conflict_with(
                        res,
                        &n,
                        "pod is being deleted, cannot be assigned to a host",
                    ));
                }
                let mut o = current.clone();
                o["spec"]["nodeName"] = json!(target);
                set_condition(
                    &mut o,
                    json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}),
                );
                Ok(o)
            },
            Some("binding"),
        )
        .await?;
        Ok(Reply::created(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    /// DELETE on an object: preconditions, graceful pod deletion, finalizers and propagation policy.
    pub async fn delete(&self, rp: &ResourcePath, options: Value, q: &Query) -> Result<Reply> {
        let name = name_of(rp)?.to_string();
        if rp.sub.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let res = rp.res;
        let opts = DeleteOptions::from(&options, q)?;
        let dry = q.dry_run()? || opts.dry_run;
        let key = obj::key(res, ns_of(rp), &name);
        for _ in 0..RETRIES {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(res, &name, e))?
                .ok_or_else(|| ApiError::not_found(res, &name))?;
            let mut current = from_kv(&kv)?;
            if let Some(uid) = &opts.uid
                && meta_str(&current, "uid") != Some(uid.as_str())
            {
                return Err(ApiError::conflict_with(
                    res,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&current, "uid").unwrap_or("")
                    ),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && meta_str(&current, "resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::conflict_with(
                    res,
                    &name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta_str(&current, "resourceVersion").unwrap_or("")
                    ),
                ));
            }
            if dry {
                return Ok(Reply::ok(current));
            }
            let grace = graceful_seconds(res, &current, opts.grace_period);
            let deleting = current.pointer("/metadata/deletionTimestamp").is_some();
            let mut fins = obj::finalizers(&current);
            let mut changed = false;
            if res.kind == "Namespace" {
                if !deleting {
                    set_meta(&mut current, "deletionTimestamp", json!(obj::now_rfc3339()));
                    set_meta(&mut current, "deletionGracePeriodSeconds", json!(0));
                    current["status"]["phase"] = json!("Terminating");
                    changed = true;
                }
            } else if grace > 0 {
                let old_grace = current
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if old_grace.is_none_or(|g| grace < g) {
                    let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                    set_meta(&mut current, "deletionTimestamp", json!(obj::format_time(when)));
                    set_meta(&mut current, "deletionGracePeriodSeconds", json!(grace));
                    changed = true;
                }
            } else {
                match opts.propagation.as_deref() {
                    Some("Orphan") if !fins.iter().any(|f| f == "orphan") => {
                        fins.push("orphan".into());
                        changed = true;
                    }
                    Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                        fins.push("foregroundDeletion".into());
                        changed = true;
                    }
                    _ => {}
                }
                let grace_left = current
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .is_some_and(|g| g > 0);
                if !fins.is_empty() && (!deleting || grace_left) {
                    // Immediate deletion waits only for the finalizers from now on.
                    set_meta(&mut current, "deletionTimestamp", json!(obj::now_rfc3339()));
                    set_meta(&mut current, "deletionGracePeriodSeconds", json!(0));
                    changed = true;
                }
                set_meta(&mut current, "finalizers", json!(fins));
                if fins.is_empty() {
                    obj::remove_meta(&mut current, "finalizers");
                }
            }
            let pending = res.kind == "Namespace" || grace > 0 || !fins.is_empty();
            if pending {
                if changed {
                    match self.store.update(&key, obj::to_bytes(&current), kv.mod_revision).await {
                        Ok(rev) => set_meta(&mut current, "resourceVersion", json!(rev.to_string())),
                        Err(store::Error::Conflict { .. }) => continue,
                        Err(e) => return Err(ApiError::from_store(res, &name, e)),
                    }
                }
                self.gc.deletion_pending(res, &current);
                return Ok(Reply::ok(current));
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok((_, rev)) => {
                    set_meta(&mut current, "resourceVersion", json!(rev.to_string()));
                    if res.kind == "Service" {
                        self.release(&self.claims_of(&current)).await;
                    }
                    self.gc.owner_deleted(res, &current);
                    return Ok(Reply::ok(current));
                }
                Err(store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(res, &name, e)),
            }
        }
        Err(ApiError::conflict(res, &name))
    }

    /// DELETE on a collection: delete every object matching the selectors.
    pub async fn delete_collection(&self, rp: &ResourcePath, options: Value, q: &Query) -> Result<Reply> {
        if rp.res.kind == "Namespace" {
            return Err(ApiError::method_not_allowed());
        }
        let (items, _, _) = self.list_items(rp, q).await?;
        let mut deleted = Vec::new();
        for o in items {
            let name = meta_str(&o, "name").unwrap_or("").to_string();
            let ns = meta_str(&o, "namespace").map(str::to_string);
            let one = ResourcePath {
                name: Some(name),
                namespace: ns,
                ..rp.clone()
            };
            match self.delete(&one, options.clone(), q).await {
                Ok(r) => deleted.push(r.body),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Reply::ok(json!({
            "kind": format!("{}List", rp.res.kind), "apiVersion": rp.res.api_version(),
            "metadata": {}, "items": deleted,
        })))
    }
}

/// Parsed DeleteOptions (body or query).
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

impl DeleteOptions {
    fn from(body: &Value, q: &Query) -> Result<Self> {
        let grace_period = match body.get("gracePeriodSeconds").filter(|v| !v.is_null()) {
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| ApiError::bad_request("gracePeriodSeconds must be an integer"))?,
            ),
            None => q.int("gracePeriodSeconds")?,
        };
        let mut propagation = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| q.get("propagationPolicy").map(str::to_string));
        if propagation.is_none() {
            match body
                .get("orphanDependents")
                .and_then(Value::as_bool)
                .or(q.get("orphanDependents").map(|v| v == "true"))
            {
                Some(true) => propagation = Some("Orphan".into()),
                Some(false) => propagation = Some("Background".into()),
                None => {}
            }
        }
        if let Some(p) = &propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            ));
        }
        if grace_period.is_some_and(|g| g < 0) {
            return Err(ApiError::new(
                422,
                "Invalid",
                "gracePeriodSeconds: Invalid value: must be >= 0",
            ));
        }
        let dry_run = match body.get("dryRun").and_then(Value::as_array) {
            Some(a) => a.iter().any(|v| v == "All"),
            None => false,
        };
        Ok(Self {
            grace_period,
            propagation,
            uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            resource_version: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            dry_run,
        })
    }
}

/// The grace period of a deletion: only pods that are bound to a node and still running wait for the kubelet.
fn graceful_seconds(res: &ResourceDef, o: &Value, requested: Option<i64>) -> i64 {
    if res.kind != "Pod" {
        return 0;
    }
    let bound = o
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let terminal = matches!(
        o.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || terminal {
        return 0;
    }
    requested.unwrap_or_else(|| {
        o.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    })
}

/// Check `apiVersion`/`kind` in a body against the endpoint, filling them in when absent.
fn check_type(res: &ResourceDef, o: &mut Value) -> Result<()> {
    if !o.is_object() {
        return Err(ApiError::bad_request(format!("the body must be a {} object", res.kind)));
    }
    let av = res.api_version();
    match o.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({av})"
            )));
        }
        _ => o["apiVersion"] = json!(av),
    }
    match o.get("kind").and_then(Value::as_str) {
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
        _ => o["kind"] = json!(res.kind),
    }
    Ok(())
}

/// Decode with the typed structs; unknown fields are an error under `Strict` and warnings under `Warn`.
fn strict_fields(res: &ResourceDef, o: &mut Value, q: &Query) -> Result<Vec<String>> {
    let mode = q.field_validation()?;
    if q.is_internal() {
        return Ok(vec![]);
    }
    unknown_field_warnings(res, o, mode)
}

/// Judge unknown fields by `mode`: Strict refuses them; Warn and Ignore drop them from `o` (Warn also returns
/// the warnings), as Kubernetes' decoding into its types does.
fn unknown_field_warnings(res: &ResourceDef, o: &mut Value, mode: FieldValidation) -> Result<Vec<String>> {
    let unknown = typed::check_and_prune(res.kind, o).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            res.kind, res.version, res.kind
        ))
    })?;
    if unknown.is_empty() || mode == FieldValidation::Ignore {
        return Ok(vec![]);
    }
    let msgs: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            res.kind,
            res.version,
            res.kind,
            msgs.join(", ")
        )));
    }
    Ok(msgs)
}

/// Reset what a create may not set, as the API server's PrepareForCreate does.
fn prepare_create(res: &ResourceDef, o: &mut Value, uid: &str) {
    match res.kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => {
            o["status"] = json!({});
        }
        "Service" => o["status"] = json!({"loadBalancer": {}}),
        "Pod" => {
            if let Some(m) = o.as_object_mut() {
                m.remove("status");
            }
        }
        "Namespace" => o["status"] = json!({"phase": "Active"}),
        "Secret" => fold_string_data(o),
        _ => {}
    }
    if res.kind == "Job" {
        defaults::job_selector(o, uid);
    }
    if res.kind == "Deployment" || res.kind == "ReplicaSet" || res.kind == "StatefulSet" || res.kind == "DaemonSet" {
        // status is owned by controllers; `{}` prints as Kubernetes does for a new object.
    }
}

/// Secret `stringData` is write-only: fold it into base64 `data`.
fn fold_string_data(o: &mut Value) {
    let Some(sd) = o.get("stringData").and_then(Value::as_object).cloned() else {
        return;
    };
    if !o.get("data").is_some_and(Value::is_object) {
        o["data"] = json!({});
    }
    for (k, v) in sd {
        if let Some(s) = v.as_str() {
            o["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("stringData");
    }
}

/// Combine the requested object with the stored one as the update strategy says: server-owned metadata is kept;
/// the main resource cannot change status and the status subresource cannot change anything else.
fn merge_update(res: &ResourceDef, old: &Value, mut new: Value, sub: Option<&str>) -> Result<Value> {
    if !new.is_object() {
        return Err(ApiError::bad_request(format!("the body must be a {} object", res.kind)));
    }
    new["apiVersion"] = json!(res.api_version());
    new["kind"] = json!(res.kind);
    if sub == Some("binding") {
        // A binding sets the node and the PodScheduled condition; nothing else of the pod changes.
        let mut merged = old.clone();
        merged["spec"]["nodeName"] = new.pointer("/spec/nodeName").cloned().unwrap_or(Value::Null);
        merged["status"] = new.get("status").cloned().unwrap_or(json!({}));
        return Ok(merged);
    }
    if sub == Some("status") || sub == Some("finalize") {
        let mut merged = old.clone();
        if sub == Some("finalize") {
            merged["spec"]["finalizers"] = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
        } else {
            merged["status"] = new.get("status").cloned().unwrap_or(json!({}));
            // Labels and annotations may be changed through status, as Kubernetes allows.
            for f in ["labels", "annotations"] {
                match new.pointer(&format!("/metadata/{f}")) {
                    Some(v) => set_meta(&mut merged, f, v.clone()),
                    None => obj::remove_meta(&mut merged, f),
                }
            }
        }
        return Ok(merged);
    }
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old.pointer(&format!("/metadata/{f}")) {
            Some(v) => set_meta(&mut new, f, v.clone()),
            None => obj::remove_meta(&mut new, f),
        }
    }
    obj::remove_meta(&mut new, "resourceVersion");
    obj::remove_meta(&mut new, "selfLink");
    if res.has_status_subresource() {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    Ok(new)
}

/// Replace or add a condition by `type`, keeping lastTransitionTime when the status did not change.
fn set_condition(o: &mut Value, cond: Value) {
    if !o.get("status").is_some_and(Value::is_object) {
        o["status"] = json!({});
    }
    let conds = o["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    match conds.iter_mut().find(|c| c["type"] == cond["type"]) {
        Some(existing) if existing["status"] == cond["status"] => {}
        Some(existing) => *existing = cond,
        None => conds.push(cond),
    }
}

/// The autoscaling/v1 Scale view of a workload.
fn scale_of(res: &ResourceDef, o: &Value) -> Result<Value> {
    let selector = match o.pointer("/spec/selector") {
        Some(s) => LabelSelector::from_object(s)
            .map(|s| s.to_string_form())
            .unwrap_or_default(),
        None => String::new(),
    };
    let mut meta = json!({});
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = o.pointer(&format!("/metadata/{f}")) {
            meta[f] = v.clone();
        }
    }
    let _ = res;
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": o.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    }))
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
}

fn random_suffix() -> String {
    // Kubernetes' alphabet for generated names: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn encode_continue(key: &str, revision: i64) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Kubernetes' message for a continue token whose snapshot has been compacted away (410 Expired).
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You \
     can start a new list without the continue parameter.";

/// The key to start after and the snapshot revision of a continue token.
fn decode_continue(token: &str) -> Result<(String, i64)> {
    let bad =
        || ApiError::bad_request("continue key is not valid: send the continue value from the previous list response");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let rev = v.get("rv").and_then(Value::as_i64).filter(|r| *r > 0).ok_or_else(bad)?;
    Ok((start.to_string(), rev))
}

fn namespaces() -> &'static ResourceDef {
    // The registry always holds namespaces; fall back to the first entry (also namespaces) defensively.
    registry::by_kind("v1", "Namespace").unwrap_or(&registry::RESOURCES[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue("/registry/pods/default/a", 42);
        assert_eq!(
            decode_continue(&t).expect("decode"),
            ("/registry/pods/default/a".to_string(), 42)
        );
        assert_eq!(decode_continue("%%%").map_err(|e| e.code), Err(400));
    }

    #[test]
    fn generated_names_use_kubernetes_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn main_resource_update_keeps_status_and_server_fields() {
        let dep = registry::by_kind("apps/v1", "Deployment").expect("dep");
        let old = json!({"metadata": {"name": "a", "uid": "u1", "generation": 2, "creationTimestamp": "t"},
                         "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "a", "uid": "zzz"}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        let m = merge_update(dep, &old, new, None).expect("merge");
        assert_eq!(m["metadata"]["uid"], "u1");
        assert_eq!(m["status"]["replicas"], 1);
        assert_eq!(m["spec"]["replicas"], 3);
        let s = merge_update(
            dep,
            &old,
            json!({"spec": {"replicas": 7}, "status": {"replicas": 2}}),
            Some("status"),
        )
        .expect("status");
        assert_eq!(
            (s["spec"]["replicas"].clone(), s["status"]["replicas"].clone()),
            (json!(1), json!(2))
        );
    }

    #[test]
    fn pods_wait_for_kubelet_only_when_bound_and_running() {
        let pod = registry::by_kind("v1", "Pod").expect("pod");
        assert_eq!(graceful_seconds(pod, &json!({"spec": {}}), None), 0);
        assert_eq!(graceful_seconds(pod, &json!({"spec": {"nodeName": "n"}}), None), 30);
        assert_eq!(graceful_seconds(pod, &json!({"spec": {"nodeName": "n"}}), Some(0)), 0);
        assert_eq!(
            graceful_seconds(
                pod,
                &json!({"spec": {"nodeName": "n"}, "status": {"phase": "Failed"}}),
                None
            ),
            0
        );
    }
}
