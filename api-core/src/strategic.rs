//! Server-side application of Kubernetes strategic merge patches (`application/strategic-merge-patch+json`).
//!
//! [`apply`] follows `StrategicMergePatch(original, patch, schema)` from k8s.io/apimachinery's
//! `pkg/util/strategicpatch`, for the patches stock kubectl sends: the 3-way patches of `kubectl apply`, the 2-way
//! patches of `kubectl edit`, and the small patches of `kubectl patch`, `kubectl set image` and
//! `kubectl rollout restart|pause|resume`.
//!
//! How a field is patched depends on the Go struct tags of the built-in types (`patchStrategy`, `patchMergeKey`).
//! Those live in the small type table at the bottom of this file (`field`), resolved by path from the object
//! root: `spec.template.spec.containers` of a Deployment is a list of containers merged by `name`, whose `ports`
//! merge by `containerPort`, and so on. Fields without a tag keep the default: maps merge key by key, lists are
//! replaced whole. The table was checked field by field against kubectl v1.32's `kubectl patch --local`, which
//! runs the Go implementation with the compiled-in types.
//!
//! The result is the merged JSON; directive keys (`$patch`, `$retainKeys`, `$setElementOrder/…`,
//! `$deleteFromPrimitiveList/…`) never survive into it, and `null`s in the patch only ever delete. Element order
//! follows Go exactly, down to the live-list view its in-place slice edits leave behind (see `live_order`), so
//! `kubectl apply` produces the same container and env order as against Kubernetes.
//!
//! # Deliberate differences from the Go code
//!
//! Go relies on decoding the result into typed structs afterwards, which drops leftover directives and rejects
//! type errors. Nothing decodes here, so, for patches kubectl does not generate:
//! - a map, list or scalar sent where the object has another of these is [`Error::TypeMismatch`] (Go replaces and
//!   the decode fails); fields outside the table have no metadata (Go fails with "unable to find api field");
//! - values for fields the object lacks are merged into nothing, so every directive in them is processed (Go
//!   copies them, dropping any map that has a `$patch` key, even `replace`, and keeping the other directives);
//! - `$patch: merge` is accepted on maps and as a bare list marker, `$patch: replace` also in primitive merge lists,
//!   and `$patch` keys in atomic lists are dropped (Go rejects, or keeps them for the decode to drop);
//! - `$deleteFromPrimitiveList` always deletes (Go replaces an atomic list by the deletion list);
//! - merge key numbers compare by value, `80` matching `80.0` (Go's decode makes one an integer, one a float);
//! - `$setElementOrder` for a list that is empty on both sides is a no-op (Go: "no elements in any of the given
//!   slices"); ControllerRevision `data` (a `RawExtension`) is replaced whole (Go cannot merge into it);
//! - keys are applied in patch order, where Go's map iteration is random: a `$deleteFromPrimitiveList` and an
//!   addition of the same value can come out either way there (kubectl never sends both; it sorts keys, which
//!   puts deletions first).

use std::fmt;

use serde_json::{Map, Value};

/// `$patch`: `replace`, `merge` or `delete` on a map or as a list element.
const DIRECTIVE: &str = "$patch";
/// `$retainKeys`: the fields of a map to keep; the others are cleared before merging.
const RETAIN_KEYS: &str = "$retainKeys";
/// `$setElementOrder/<field>`: the order of the merged list `<field>`.
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
/// `$deleteFromPrimitiveList/<field>`: values to remove from the primitive list `<field>`.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Errors applying a strategic merge patch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kind has no built-in patch metadata (custom resources, unknown kinds).
    #[error(
        "strategic merge patch is not supported for kind {kind}; send a json merge patch \
         (application/merge-patch+json) or a json patch (application/json-patch+json) instead"
    )]
    UnsupportedKind {
        /// The kind that was asked for.
        kind: String,
    },
    /// The patch document is not a JSON object.
    #[error("strategic merge patch must be a json object, got {found}")]
    PatchNotObject {
        /// JSON type of the patch that was sent.
        found: &'static str,
    },
    /// The object being patched is not a JSON object.
    #[error("object to patch must be a json object, got {found}")]
    OriginalNotObject {
        /// JSON type of the stored object.
        found: &'static str,
    },
    /// The patch has a value of the wrong JSON type for a field, e.g. a list where a map is expected.
    #[error("{path}: expected {expected} in the patch, got {found}")]
    TypeMismatch {
        /// Field path from the object root.
        path: String,
        /// JSON type the field has in the object.
        expected: &'static str,
        /// JSON type the patch sent.
        found: &'static str,
    },
    /// An element of a list merged by key lacks the merge key.
    #[error("{path}: list element does not contain its merge key `{key}`")]
    MissingMergeKey {
        /// Path of the list element.
        path: String,
        /// The merge key, e.g. `name` for containers.
        key: &'static str,
    },
    /// A list of maps is declared as a merged set of primitives, so its elements cannot be matched.
    #[error("{path}: cannot merge a list of maps without a merge key; send primitive values")]
    NoMergeKey {
        /// Path of the list.
        path: String,
    },
    /// The elements of a merged list (original and patch together) are not all of one JSON type.
    #[error("{path}: list elements must all have the same type to be merged")]
    MixedElementTypes {
        /// Path of the list.
        path: String,
    },
    /// A merged list contains lists, which strategic merge patch cannot merge.
    #[error("{path}: lists of lists cannot be merged")]
    ListOfLists {
        /// Path of the list.
        path: String,
    },
    /// `$patch` has a value other than `replace`, `merge` or `delete`.
    #[error("{path}: unknown $patch value {value}; expected replace, merge or delete")]
    UnknownPatchDirective {
        /// Path of the map or list element carrying the directive.
        path: String,
        /// The value sent, as JSON.
        value: String,
    },
    /// `$patch: delete` inside a list of primitives, which has no merge key to match on.
    #[error("{path}: `$patch: delete` cannot be used in a list of primitives; use $deleteFromPrimitiveList/<field>")]
    DeleteInPrimitiveList {
        /// Path of the list.
        path: String,
    },
    /// A key starting with `$` that is not a known directive.
    #[error(
        "{path}: unknown patch directive `{key}`; known are $patch, $retainKeys, $setElementOrder/<field> and \
         $deleteFromPrimitiveList/<field>"
    )]
    UnknownDirective {
        /// Path of the map holding the key.
        path: String,
        /// The key sent.
        key: String,
    },
    /// `$retainKeys` is malformed or does not name every field the patch sets.
    #[error("{path}: invalid $retainKeys: {reason}")]
    BadRetainKeys {
        /// Path of the map holding `$retainKeys`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// `$setElementOrder/<field>` is malformed or contradicts the order of the patch list.
    #[error("{path}: invalid $setElementOrder: {reason}")]
    BadSetElementOrder {
        /// Path of the ordered list.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// `$deleteFromPrimitiveList/<field>` is not a list of primitive values.
    #[error("{path}: $deleteFromPrimitiveList must be a list of primitive values")]
    BadDeleteFromPrimitiveList {
        /// Path of the list values are removed from.
        path: String,
    },
}

/// Result of applying a strategic merge patch.
pub type Result<T> = std::result::Result<T, Error>;

/// Apply `patch` to `original` for an object of `kind` (e.g. "Deployment"), returning the patched object.
///
/// `original` is not modified. Kinds without built-in patch metadata get [`Error::UnsupportedKind`], as
/// Kubernetes answers 415 for strategic merge patches of custom resources.
pub fn apply(kind: &str, original: &Value, patch: &Value) -> Result<Value> {
    let root = root_type(kind).ok_or_else(|| Error::UnsupportedKind { kind: kind.to_string() })?;
    let Value::Object(patch) = patch else {
        return Err(Error::PatchNotObject {
            found: json_type(patch),
        });
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        other => {
            return Err(Error::OriginalNotObject {
                found: json_type(other),
            });
        }
    };
    merge_map(original, patch, root, &Path::Root).map(Value::Object)
}

// ---------------------------------------------------------------------------------------------------------------
// Merging
// ---------------------------------------------------------------------------------------------------------------

/// Merge a patch map into an original map of type `ty`, honouring a `$patch` directive on the map itself.
fn merge_map(
    original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
    path: &Path<'_>,
) -> Result<Map<String, Value>> {
    let original = match patch.get(DIRECTIVE) {
        None => original,
        Some(directive) => match directive.as_str() {
            // Go returns the patch as is; merging it into nothing also processes nested directives and nulls.
            Some("replace") => Map::new(),
            Some("delete") => return Ok(Map::new()),
            // Go rejects `$patch: merge` on a map; merging is what it asks for, so accept it.
            Some("merge") => original,
            _ => {
                return Err(Error::UnknownPatchDirective {
                    path: path.to_string(),
                    value: directive.to_string(),
                });
            }
        },
    };
    merge_fields(original, patch, ty, path)
}

/// Merge the fields of `patch` into `original` (the body of Go's `mergeMap` after the `$patch` check).
fn merge_fields(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
    path: &Path<'_>,
) -> Result<Map<String, Value>> {
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut original, patch, retain, path)?;
    }

    // Lists with `$setElementOrder` are merged and ordered first; the main loop then skips them.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, value) in patch {
        if let Some(name) = key.strip_prefix(SET_ELEMENT_ORDER)
            && apply_element_order(&mut original, patch, name, value, ty, path)?
        {
            ordered.push(name);
        }
    }

    for (key, patch_value) in patch {
        if key == DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with(SET_ELEMENT_ORDER)
            || ordered.contains(&key.as_str())
        {
            continue;
        }
        if let Some(name) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            delete_from_primitive_list(&mut original, name, patch_value, &Path::Field(path, name))?;
            continue;
        }
        if key.starts_with('$') {
            return Err(Error::UnknownDirective {
                path: path.to_string(),
                key: key.clone(),
            });
        }
        let field_path = Path::Field(path, key);
        if patch_value.is_null() {
            original.shift_remove(key);
            continue;
        }
        let meta = field(ty, key);
        match original.get_mut(key.as_str()) {
            Some(slot) if !slot.is_null() => {
                let current = std::mem::take(slot);
                *slot = merge_value(current, patch_value, meta, &field_path)?;
            }
            _ => {
                if let Some(value) = fresh_value(patch_value, meta, &field_path)? {
                    original.insert(key.clone(), value);
                }
            }
        }
    }
    Ok(original)
}

/// Merge a patch value into an existing, non-null value.
fn merge_value(current: Value, patch: &Value, meta: Field, path: &Path<'_>) -> Result<Value> {
    if meta.ty == Ty::Opaque {
        return Ok(patch.clone());
    }
    // Go replaces on any type change and leaves the error to the typed decode that follows; there is no such
    // decode here, so a map/list/scalar mix-up is an error now.
    match (current, patch) {
        (Value::Object(current), Value::Object(patch)) => merge_map(current, patch, meta.ty, path).map(Value::Object),
        (Value::Array(current), Value::Array(patch)) => merge_list(current, patch, meta, path).map(Value::Array),
        (current @ (Value::Object(_) | Value::Array(_)), patch)
        | (current, patch @ (Value::Object(_) | Value::Array(_))) => Err(Error::TypeMismatch {
            path: path.to_string(),
            expected: json_type_article(&current),
            found: json_type_article(patch),
        }),
        (_, patch) => Ok(patch.clone()),
    }
}

/// The value stored for a field the original does not have: the patch value with its directives processed and its
/// nulls dropped (Go's `discardNullValuesFromPatch`). `None` for a map that deletes itself.
fn fresh_value(patch: &Value, meta: Field, path: &Path<'_>) -> Result<Option<Value>> {
    if meta.ty == Ty::Opaque {
        return Ok(Some(patch.clone()));
    }
    match patch {
        Value::Object(map) => {
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                return Ok(None);
            }
            merge_map(Map::new(), map, meta.ty, path).map(|m| Some(Value::Object(m)))
        }
        Value::Array(list) => merge_list(Vec::new(), list, meta, path).map(|l| Some(Value::Array(l))),
        scalar => Ok(Some(scalar.clone())),
    }
}

/// What a merged list holds, judged from its non-directive elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elements {
    /// No elements other than `$patch` markers.
    None,
    /// Maps.
    Maps,
    /// Primitive values (strings, numbers, booleans, nulls) of one JSON type.
    Primitives,
}

/// Merge a patch list into an existing list of a field described by `meta`.
fn merge_list(original: Vec<Value>, patch: &[Value], meta: Field, path: &Path<'_>) -> Result<Vec<Value>> {
    if !meta.strategy.merges_lists() {
        return atomic_list(patch, meta.ty, path);
    }
    match element_kind(&original, patch, path)? {
        Elements::Maps => merge_map_list(original, patch, meta, path),
        Elements::Primitives => merge_primitive_list(original, patch, path),
        Elements::None if meta.strategy.merge_key().is_some() => merge_map_list(original, patch, meta, path),
        Elements::None => merge_primitive_list(original, patch, path),
    }
}

/// A list without a merge strategy: the patch list replaces the original.
///
/// Map elements get their directives and nulls processed like any new value. A `$patch` key means nothing in
/// such a list; Go keeps the element as sent when the field exists (the typed decode then drops the key) and drops
/// the element when the field is new. Here the key is dropped, and the element too if it held nothing else.
fn atomic_list(patch: &[Value], ty: Ty, path: &Path<'_>) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(patch.len());
    for (index, element) in patch.iter().enumerate() {
        let element_path = Path::Index(path, index);
        match element {
            Value::Object(map) => {
                if let Some(directive) = map.get(DIRECTIVE) {
                    check_directive(directive, &element_path)?;
                    if map.len() == 1 {
                        continue;
                    }
                }
                out.push(Value::Object(merge_fields(Map::new(), map, ty, &element_path)?));
            }
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

/// Merge a list of maps by its merge key (Go's `mergeSlice` for maps).
fn merge_map_list(mut original: Vec<Value>, patch: &[Value], meta: Field, path: &Path<'_>) -> Result<Vec<Value>> {
    let Some(key) = meta.strategy.merge_key() else {
        return Err(Error::NoMergeKey { path: path.to_string() });
    };

    // Special elements first: deletions apply to the original, `replace` discards it.
    let mut replace = false;
    let mut items: Vec<(usize, &Map<String, Value>)> = Vec::with_capacity(patch.len());
    for (index, element) in patch.iter().enumerate() {
        let Value::Object(map) = element else {
            return Err(Error::MixedElementTypes { path: path.to_string() });
        };
        let Some(directive) = map.get(DIRECTIVE) else {
            items.push((index, map));
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = map.get(key).ok_or_else(|| Error::MissingMergeKey {
                    path: Path::Index(path, index).to_string(),
                    key,
                })?;
                original.retain(|o| !has_key_value(o, key, value));
            }
            Some("replace") => replace = true,
            // A bare `{"$patch": "merge"}` marks the default; with fields it is an ordinary element (Go rejects both).
            Some("merge") if map.len() > 1 => items.push((index, map)),
            Some("merge") => {}
            _ => {
                return Err(Error::UnknownPatchDirective {
                    path: Path::Index(path, index).to_string(),
                    value: directive.to_string(),
                });
            }
        }
    }

    if replace {
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items {
            let value = item.get(key).ok_or_else(|| Error::MissingMergeKey {
                path: Path::Index(path, index).to_string(),
                key,
            })?;
            out.push(Value::Object(merge_map(
                Map::new(),
                item,
                meta.ty,
                &Path::Key(path, key, value),
            )?));
        }
        return Ok(out);
    }

    // The order of the live list, by merge key; every live element needs its key, as in Go.
    let mut server_order: Vec<Value> = Vec::with_capacity(original.len());
    for (index, element) in original.iter().enumerate() {
        let value = element.get(key).ok_or_else(|| Error::MissingMergeKey {
            path: Path::Index(path, index).to_string(),
            key,
        })?;
        server_order.push(value.clone());
    }

    let mut merged = original;
    let mut patch_keys: Vec<&Value> = Vec::with_capacity(items.len());
    for (index, item) in items {
        let value = item.get(key).ok_or_else(|| Error::MissingMergeKey {
            path: Path::Index(path, index).to_string(),
            key,
        })?;
        let item_path = Path::Key(path, key, value);
        match merged.iter().position(|o| has_key_value(o, key, value)) {
            Some(position) => {
                let current = match std::mem::take(&mut merged[position]) {
                    Value::Object(map) => map,
                    // Unreachable: `has_key_value` only matches maps.
                    _ => Map::new(),
                };
                merged[position] = Value::Object(merge_map(current, item, meta.ty, &item_path)?);
            }
            None => merged.push(Value::Object(merge_map(Map::new(), item, meta.ty, &item_path)?)),
        }
        patch_keys.push(value);
    }

    // Patch items take the patch's order; the rest keep the live order and are interleaved by it.
    let (mut in_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|e| e.get(key).is_some_and(|v| position_of(&patch_keys, v).is_some()));
    in_patch.sort_by_key(|e| e.get(key).and_then(|v| position_of(&patch_keys, v)));
    Ok(interleave(server_only, in_patch, |e| {
        e.get(key)
            .and_then(|v| server_order.iter().position(|o| scalar_eq(o, v)))
    }))
}

/// Merge a list of primitives as an ordered set (Go's `mergeSlice` for scalars).
fn merge_primitive_list(original: Vec<Value>, patch: &[Value], path: &Path<'_>) -> Result<Vec<Value>> {
    let mut replace = false;
    let mut items: Vec<&Value> = Vec::with_capacity(patch.len());
    for (index, element) in patch.iter().enumerate() {
        match element.as_object().and_then(|m| m.get(DIRECTIVE)) {
            None => items.push(element),
            // Go has no way to replace a merged primitive list; the marker works here as it does for maps.
            Some(directive) => match directive.as_str() {
                Some("replace") => replace = true,
                Some("merge") => {}
                Some("delete") => {
                    return Err(Error::DeleteInPrimitiveList { path: path.to_string() });
                }
                _ => {
                    return Err(Error::UnknownPatchDirective {
                        path: Path::Index(path, index).to_string(),
                        value: directive.to_string(),
                    });
                }
            },
        }
    }
    let patch_items = dedup(items.into_iter().cloned());
    if replace {
        return Ok(patch_items);
    }
    let server_only = dedup(
        original
            .iter()
            .filter(|v| position_of(&patch_items, v).is_none())
            .cloned(),
    );
    Ok(interleave(server_only, patch_items, |v| position_of(&original, v)))
}

/// Go's `mergeSortedSlice`: insert the server-only items (`left`) into the patch items (`right`), keeping the
/// relative order of each; a left item goes first only when both items are in the live list and it is earlier
/// there (`live_index`).
fn interleave(left: Vec<Value>, right: Vec<Value>, live_index: impl Fn(&Value) -> Option<usize>) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!((live_index(l), live_index(r)), (Some(li), Some(ri)) if li < ri),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Handle `$setElementOrder/<name>`: merge the list `<name>` now and order it as the directive says (Go's
/// `mergePatchIntoOriginal`). Returns whether the list was handled, so the main loop skips it.
fn apply_element_order(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    name: &str,
    order: &Value,
    ty: Ty,
    path: &Path<'_>,
) -> Result<bool> {
    let list_path = Path::Field(path, name);
    let Value::Array(order) = order else {
        return Err(Error::BadSetElementOrder {
            path: list_path.to_string(),
            reason: format!("expected a list, got {}", json_type_article(order)),
        });
    };
    let patch_list: &[Value] = match patch.get(name) {
        None => &[],
        Some(Value::Array(list)) => list,
        // Deleting the field wins over ordering it.
        Some(Value::Null) => return Ok(false),
        Some(other) => {
            return Err(Error::TypeMismatch {
                path: list_path.to_string(),
                expected: "a list",
                found: json_type_article(other),
            });
        }
    };
    let original_list: Option<Vec<Value>> = match original.get_mut(name) {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(std::mem::take(list)),
        Some(other) => {
            return Err(Error::TypeMismatch {
                path: list_path.to_string(),
                expected: json_type_article(other),
                found: "a list",
            });
        }
    };
    let meta = field(ty, name);
    if !meta.strategy.merges_lists() {
        // An atomic list is replaced by the patch list in the main loop; there is nothing to order.
        if let Some(list) = original_list {
            original.insert(name.to_string(), Value::Array(list));
        }
        return Ok(false);
    }
    let Some(original_list) = original_list else {
        if patch_list.is_empty() {
            // Neither side has the list: nothing to order (Go skips it too).
            return Ok(true);
        }
        let merged = merge_list(Vec::new(), patch_list, meta, &list_path)?;
        validate_element_order(patch_list, order, meta, &list_path)?;
        let ordered = order_by(merged, order, &[], meta, &list_path)?;
        original.insert(name.to_string(), Value::Array(ordered));
        return Ok(true);
    };

    let live = live_order(&original_list, patch_list, meta.strategy.merge_key());
    let merged = merge_list(original_list, patch_list, meta, &list_path)?;
    validate_element_order(patch_list, order, meta, &list_path)?;
    let ordered = order_by(merged, order, &live, meta, &list_path)?;
    original.insert(name.to_string(), Value::Array(ordered));
    Ok(true)
}

/// The identities (merge key values, or the values of a primitive list) that Go's `mergePatchIntoOriginal`
/// interleaves server-only items by.
///
/// Go passes the live list it handed to `mergeSlice`, whose backing array that call has changed in place: `$patch:
/// delete` compacts it (shifting later elements left and leaving the old tail behind), and new elements are then
/// appended over the freed slots. The view keeps the live list's length. This only matters when a patch both
/// deletes elements and leaves some server-only ones in place, but then it decides whether a new element goes
/// before or after them, so it is reproduced here to give the same order kubectl users see from Kubernetes.
fn live_order(original: &[Value], patch: &[Value], key: Option<&'static str>) -> Vec<Value> {
    let Some(key) = key.filter(|_| original.iter().any(Value::is_object)) else {
        return original.to_vec();
    };
    let live_len = original.len();
    let mut backing: Vec<Value> = original
        .iter()
        .map(|e| e.get(key).cloned().unwrap_or(Value::Null))
        .collect();
    let mut len = live_len;
    let mut replace = false;
    let directive = |e: &Value| e.get(DIRECTIVE).map(|d| d.as_str().unwrap_or_default().to_string());
    for element in patch {
        match directive(element).as_deref() {
            Some("delete") => {
                let Some(value) = element.get(key) else { continue };
                while let Some(at) = backing[..len].iter().position(|v| scalar_eq(v, value)) {
                    for i in at..len - 1 {
                        backing[i] = backing[i + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some("replace") => replace = true,
            _ => {}
        }
    }
    if !replace {
        for element in patch {
            if directive(element).is_some_and(|d| d != "merge") {
                continue;
            }
            let Some(value) = element.get(key) else { continue };
            if backing[..len].iter().any(|v| scalar_eq(v, value)) {
                continue;
            }
            if len < backing.len() {
                backing[len] = value.clone();
            } else {
                backing.push(value.clone());
            }
            len += 1;
        }
    }
    backing.truncate(live_len);
    backing
}

/// The identity of a list element: its merge key value for maps, the value itself for primitives.
fn identity<'v>(element: &'v Value, key: Option<&'static str>) -> Option<&'v Value> {
    match (element, key) {
        (Value::Object(map), Some(key)) => map.get(key),
        (Value::Object(_), None) => None,
        (value, _) => Some(value),
    }
}

/// Order a merged list by a `$setElementOrder` list: listed items in that order, the others interleaved by
/// their position in `live` (identities, see [`live_order`]).
fn order_by(merged: Vec<Value>, order: &[Value], live: &[Value], meta: Field, path: &Path<'_>) -> Result<Vec<Value>> {
    let key = meta.strategy.merge_key();
    let mut order_ids = Vec::with_capacity(order.len());
    for (index, entry) in order.iter().enumerate() {
        let id = identity(entry, key).ok_or_else(|| Error::BadSetElementOrder {
            path: path.to_string(),
            reason: format!(
                "entry {index} does not contain the merge key `{}`",
                key.unwrap_or_default()
            ),
        })?;
        order_ids.push(id);
    }
    let (listed, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|e| identity(e, key).is_some_and(|id| position_of(&order_ids, id).is_some()));
    let listed = go_sort(listed, |e| position_of(&order_ids, identity(e, key)?));
    let server_only = go_sort(server_only, |e| position_of(live, identity(e, key)?));
    Ok(interleave(server_only, listed, |e| {
        position_of(live, identity(e, key)?)
    }))
}

/// Go's `normalizeSliceOrder`: a stable sort by `index`, whose comparison calls an item "less" whenever either
/// item has no index. With every item indexed (all patches kubectl generates) this is an ordinary stable sort; the
/// odd case, an empty `$setElementOrder` list next to new elements, is reproduced with the insertion sort Go's
/// `sort.SliceStable` uses for short lists.
fn go_sort(items: Vec<Value>, index: impl Fn(&Value) -> Option<usize>) -> Vec<Value> {
    let mut keyed: Vec<(Option<usize>, Value)> = items.into_iter().map(|item| (index(&item), item)).collect();
    let less = |a: Option<usize>, b: Option<usize>| match (a, b) {
        (Some(a), Some(b)) => a < b,
        _ => true,
    };
    for i in 1..keyed.len() {
        let mut j = i;
        while j > 0 && less(keyed[j].0, keyed[j - 1].0) {
            keyed.swap(j, j - 1);
            j -= 1;
        }
    }
    keyed.into_iter().map(|(_, item)| item).collect()
}

/// Go's `validatePatchWithSetOrderList`: the patch list's items (deletions and markers aside) must appear in
/// `$setElementOrder` in the same relative order.
fn validate_element_order(patch: &[Value], order: &[Value], meta: Field, path: &Path<'_>) -> Result<()> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let key = meta.strategy.merge_key();
    let items: Vec<&Value> = patch
        .iter()
        .filter(|e| e.as_object().is_none_or(|m| !m.contains_key(DIRECTIVE)))
        .collect();
    let mut order_index = 0;
    for (index, item) in items.iter().enumerate() {
        let id = identity(item, key).ok_or_else(|| Error::MissingMergeKey {
            path: Path::Index(path, index).to_string(),
            key: key.unwrap_or_default(),
        })?;
        loop {
            let Some(entry) = order.get(order_index) else {
                return Err(Error::BadSetElementOrder {
                    path: path.to_string(),
                    reason: format!(
                        "the patch list item {} is missing from the order list or out of its order",
                        display_scalar(id)
                    ),
                });
            };
            order_index += 1;
            if identity(entry, key).is_some_and(|e| scalar_eq(e, id)) {
                break;
            }
        }
    }
    Ok(())
}

/// Handle `$deleteFromPrimitiveList/<name>`: remove the given values from the list `<name>`.
///
/// Go replaces a list without a merge strategy by the deletion list here (it only expects the directive on
/// merged lists); this deletes whatever the list's strategy.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    name: &str,
    values: &Value,
    path: &Path<'_>,
) -> Result<()> {
    let Value::Array(values) = values else {
        return Err(Error::BadDeleteFromPrimitiveList { path: path.to_string() });
    };
    if values.iter().any(|v| v.is_object() || v.is_array()) {
        return Err(Error::BadDeleteFromPrimitiveList { path: path.to_string() });
    }
    if let Some(Value::Array(list)) = original.get_mut(name) {
        list.retain(|v| position_of(values, v).is_none());
    }
    Ok(())
}

/// Handle `$retainKeys`: check it names every field the patch sets, then clear the original's other fields.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &Path<'_>,
) -> Result<()> {
    let bad = |reason: String| Error::BadRetainKeys {
        path: path.to_string(),
        reason,
    };
    let Value::Array(list) = retain else {
        return Err(bad(format!(
            "expected a list of field names, got {}",
            json_type_article(retain)
        )));
    };
    let mut keep: Vec<&str> = Vec::with_capacity(list.len());
    for entry in list {
        let Some(name) = entry.as_str() else {
            return Err(bad(format!("expected a list of field names, got entry {entry}")));
        };
        keep.push(name);
    }
    for (key, value) in patch {
        if value.is_null() || key.starts_with('$') {
            continue;
        }
        if !keep.contains(&key.as_str()) {
            return Err(bad(format!("the patch sets `{key}`, which is not in the list")));
        }
    }
    original.retain(|key, _| keep.contains(&key.as_str()));
    Ok(())
}

/// Check a `$patch` value found where it only marks (atomic lists): it must still be a known one.
fn check_directive(directive: &Value, path: &Path<'_>) -> Result<()> {
    match directive.as_str() {
        Some("replace" | "merge" | "delete") => Ok(()),
        _ => Err(Error::UnknownPatchDirective {
            path: path.to_string(),
            value: directive.to_string(),
        }),
    }
}

/// Classify the elements of a merged list (Go's `sliceElementType`), ignoring `$patch` marker maps.
fn element_kind(original: &[Value], patch: &[Value], path: &Path<'_>) -> Result<Elements> {
    let mut seen: Option<&'static str> = None;
    for element in original.iter().chain(patch) {
        if element.as_object().is_some_and(|m| m.contains_key(DIRECTIVE)) {
            continue;
        }
        if element.is_array() {
            return Err(Error::ListOfLists { path: path.to_string() });
        }
        let kind = json_type(element);
        match seen {
            None => seen = Some(kind),
            Some(previous) if previous != kind => {
                return Err(Error::MixedElementTypes { path: path.to_string() });
            }
            Some(_) => {}
        }
    }
    Ok(match seen {
        None => Elements::None,
        Some("map") => Elements::Maps,
        Some(_) => Elements::Primitives,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------------------------------------------

/// Equality as Go compares decoded JSON scalars: numbers by value (`80` equals `80.0`), the rest structurally.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// Index of the first item equal to `value`.
fn position_of<V: std::borrow::Borrow<Value>>(items: &[V], value: &Value) -> Option<usize> {
    items.iter().position(|item| scalar_eq(item.borrow(), value))
}

/// Whether `element` is a map whose `key` equals `value`.
fn has_key_value(element: &Value, key: &str, value: &Value) -> bool {
    element.get(key).is_some_and(|v| scalar_eq(v, value))
}

/// Drop repeated values, keeping the first of each.
fn dedup(values: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for value in values {
        if position_of(&out, &value).is_none() {
            out.push(value);
        }
    }
    out
}

/// The JSON type of a value, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// The JSON type of a value with an article, for messages.
fn json_type_article(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A scalar as it reads in a path: strings bare, everything else as JSON.
fn display_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where in the object a value sits, for error messages; built on the stack as the merge descends.
#[derive(Debug, Clone, Copy)]
enum Path<'a> {
    /// The object itself.
    Root,
    /// A field of a map.
    Field(&'a Path<'a>, &'a str),
    /// The element of a list whose merge key has this value.
    Key(&'a Path<'a>, &'static str, &'a Value),
    /// The element of a list at this index.
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("(root)"),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Key(parent, key, value) => write!(f, "{parent}[{key}={}]", display_scalar(value)),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Patch metadata: the Go struct tags of the built-in types
// ---------------------------------------------------------------------------------------------------------------

/// A field's Go `patchStrategy` / `patchMergeKey` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// No tag: maps merge key by key, lists are replaced whole.
    Default,
    /// `patchStrategy:"retainKeys"` on a struct: merged by default; clients send `$retainKeys` to clear the
    /// fields of a union they switch away from (e.g. Deployment `spec.strategy`).
    RetainKeys,
    /// `patchStrategy:"merge"` on a list of primitives: an ordered set union.
    MergeSet,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: a list of maps merged element by element.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge,retainKeys" patchMergeKey:"<key>"`: as `MergeByKey`; elements are unions that carry
    /// `$retainKeys` (e.g. pod `volumes`).
    MergeByKeyRetainKeys(&'static str),
}

impl Strategy {
    /// Whether a list under this strategy is merged rather than replaced.
    fn merges_lists(self) -> bool {
        match self {
            Strategy::Default | Strategy::RetainKeys => false,
            Strategy::MergeSet | Strategy::MergeByKey(_) | Strategy::MergeByKeyRetainKeys(_) => true,
        }
    }

    /// The merge key for lists of maps.
    fn merge_key(self) -> Option<&'static str> {
        match self {
            Strategy::MergeByKey(key) | Strategy::MergeByKeyRetainKeys(key) => Some(key),
            Strategy::Default | Strategy::RetainKeys | Strategy::MergeSet => None,
        }
    }
}

/// The Go types this module needs to tell apart: those holding tagged fields, and the path to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// A type without tagged fields below it.
    Unknown,
    /// `runtime.RawExtension` (ControllerRevision `data`): replaced whole, never interpreted.
    Opaque,
    /// Pod.
    Pod,
    /// Node.
    Node,
    /// Service.
    Service,
    /// Namespace.
    Namespace,
    /// ServiceAccount.
    ServiceAccount,
    /// Deployment.
    Deployment,
    /// ReplicaSet, StatefulSet, DaemonSet, Job: a spec with a pod `template`, a status with `conditions`.
    Workload,
    /// ControllerRevision.
    ControllerRevision,
    /// Kinds whose only tagged fields are in `metadata`.
    MetadataOnly,
    /// `metav1.ObjectMeta`.
    ObjectMeta,
    /// `PodTemplateSpec`.
    PodTemplateSpec,
    /// `PodSpec`.
    PodSpec,
    /// `Container` and `EphemeralContainer` (init, app and ephemeral containers share the tags).
    Container,
    /// `Volume`.
    Volume,
    /// `EphemeralVolumeSource`.
    EphemeralVolumeSource,
    /// `PersistentVolumeClaimTemplate`.
    VolumeClaimTemplate,
    /// `PodStatus`.
    PodStatus,
    /// `NodeSpec`.
    NodeSpec,
    /// `NodeStatus`.
    NodeStatus,
    /// `ServiceSpec`.
    ServiceSpec,
    /// `DeploymentSpec`.
    DeploymentSpec,
    /// `ReplicaSetSpec`, `StatefulSetSpec`, `DaemonSetSpec`, `JobSpec`.
    WorkloadSpec,
    /// A status whose `conditions` merge by `type` (Namespace, Service, Deployment, ReplicaSet, StatefulSet,
    /// DaemonSet, Job).
    ConditionsStatus,
}

/// Patch metadata of one field: its strategy, and the type of its value (of its elements, for lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    /// How the field merges.
    strategy: Strategy,
    /// What its value (or each element) is.
    ty: Ty,
}

/// The type at the root of an object of `kind`, or `None` for kinds without built-in metadata.
fn root_type(kind: &str) -> Option<Ty> {
    Some(match kind {
        "Pod" => Ty::Pod,
        "Node" => Ty::Node,
        "Service" => Ty::Service,
        "Namespace" => Ty::Namespace,
        "ServiceAccount" => Ty::ServiceAccount,
        "Deployment" => Ty::Deployment,
        "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => Ty::Workload,
        "ControllerRevision" => Ty::ControllerRevision,
        "ConfigMap" | "Secret" | "Event" | "Endpoints" | "EndpointSlice" | "Lease" => Ty::MetadataOnly,
        _ => return None,
    })
}

/// The patch metadata of field `name` in a value of type `ty`.
///
/// Transcribed from the `patchStrategy`/`patchMergeKey` tags of k8s.io/api v1.32 and verified with kubectl v1.32
/// (`kubectl patch --local`). Lists not named here have no strategy and are replaced whole; among them, as the Go
/// types say: Node `spec.taints`, pod `tolerations`, `readinessGates`, `envFrom`, `resizePolicy`,
/// `resources.claims`, `args`/`command`, `containerStatuses`, Namespace `spec.finalizers`, ServiceAccount
/// `imagePullSecrets`, Service `externalIPs`/`clusterIPs`/`ipFamilies`, Endpoints `subsets`, EndpointSlice
/// `endpoints`/`ports`, StatefulSet `volumeClaimTemplates`, label selector `matchExpressions`.
fn field(ty: Ty, name: &str) -> Field {
    use Strategy::{Default, MergeByKey, MergeByKeyRetainKeys, MergeSet, RetainKeys};
    let (strategy, ty) = match (ty, name) {
        (Ty::Opaque, _) => (Default, Ty::Opaque),

        // Object roots.
        (
            Ty::Pod
            | Ty::Node
            | Ty::Service
            | Ty::Namespace
            | Ty::ServiceAccount
            | Ty::Deployment
            | Ty::Workload
            | Ty::ControllerRevision
            | Ty::MetadataOnly
            | Ty::PodTemplateSpec
            | Ty::VolumeClaimTemplate,
            "metadata",
        ) => (Default, Ty::ObjectMeta),
        (Ty::Pod | Ty::PodTemplateSpec, "spec") => (Default, Ty::PodSpec),
        (Ty::Pod, "status") => (Default, Ty::PodStatus),
        (Ty::Node, "spec") => (Default, Ty::NodeSpec),
        (Ty::Node, "status") => (Default, Ty::NodeStatus),
        (Ty::Service, "spec") => (Default, Ty::ServiceSpec),
        (Ty::Deployment, "spec") => (Default, Ty::DeploymentSpec),
        (Ty::Workload, "spec") => (Default, Ty::WorkloadSpec),
        (Ty::Service | Ty::Namespace | Ty::Deployment | Ty::Workload, "status") => (Default, Ty::ConditionsStatus),
        (Ty::ServiceAccount, "secrets") => (MergeByKey("name"), Ty::Unknown),
        (Ty::ControllerRevision, "data") => (Default, Ty::Opaque),

        // metav1.ObjectMeta.
        (Ty::ObjectMeta, "finalizers") => (MergeSet, Ty::Unknown),
        (Ty::ObjectMeta, "ownerReferences") => (MergeByKey("uid"), Ty::Unknown),

        // Workloads.
        (Ty::DeploymentSpec | Ty::WorkloadSpec, "template") => (Default, Ty::PodTemplateSpec),
        (Ty::DeploymentSpec, "strategy") => (RetainKeys, Ty::Unknown),
        (Ty::ConditionsStatus, "conditions") => (MergeByKey("type"), Ty::Unknown),

        // core/v1 PodSpec and below.
        (Ty::PodSpec, "volumes") => (MergeByKeyRetainKeys("name"), Ty::Volume),
        (Ty::PodSpec, "initContainers" | "containers" | "ephemeralContainers") => (MergeByKey("name"), Ty::Container),
        (Ty::PodSpec, "imagePullSecrets" | "schedulingGates") => (MergeByKey("name"), Ty::Unknown),
        (Ty::PodSpec, "hostAliases") => (MergeByKey("ip"), Ty::Unknown),
        (Ty::PodSpec, "topologySpreadConstraints") => (MergeByKey("topologyKey"), Ty::Unknown),
        (Ty::PodSpec, "resourceClaims") => (MergeByKeyRetainKeys("name"), Ty::Unknown),
        (Ty::Container, "ports") => (MergeByKey("containerPort"), Ty::Unknown),
        (Ty::Container, "env") => (MergeByKey("name"), Ty::Unknown),
        (Ty::Container, "volumeMounts") => (MergeByKey("mountPath"), Ty::Unknown),
        (Ty::Container, "volumeDevices") => (MergeByKey("devicePath"), Ty::Unknown),
        (Ty::Volume, "ephemeral") => (Default, Ty::EphemeralVolumeSource),
        (Ty::EphemeralVolumeSource, "volumeClaimTemplate") => (Default, Ty::VolumeClaimTemplate),
        (Ty::PodStatus, "conditions") => (MergeByKey("type"), Ty::Unknown),
        (Ty::PodStatus, "podIPs" | "hostIPs") => (MergeByKey("ip"), Ty::Unknown),
        (Ty::PodStatus, "resourceClaimStatuses") => (MergeByKeyRetainKeys("name"), Ty::Unknown),

        // core/v1 Node and Service.
        (Ty::NodeSpec, "podCIDRs") => (MergeSet, Ty::Unknown),
        (Ty::NodeStatus, "conditions" | "addresses") => (MergeByKey("type"), Ty::Unknown),
        (Ty::ServiceSpec, "ports") => (MergeByKey("port"), Ty::Unknown),

        _ => (Default, Ty::Unknown),
    };
    Field { strategy, ty }
}

#[cfg(test)]
mod tests {
    //! Expected results were produced by kubectl v1.32 (`kubectl patch --local --type strategic`, which runs Go's
    //! `StrategicMergePatch` with the compiled-in types) from the same inputs, unless a test says it checks a
    //! deliberate difference. The apply and set-image patches are the bodies stock kubectl v1.32 sent to a
    //! recording server.

    use super::*;
    use serde_json::json;

    fn patched(kind: &str, original: Value, patch: Value) -> Value {
        apply(kind, &original, &patch).unwrap_or_else(|e| panic!("patch should apply, got: {e}"))
    }

    fn failed(kind: &str, original: Value, patch: Value) -> Error {
        match apply(kind, &original, &patch) {
            Ok(v) => panic!("patch should fail, got: {v}"),
            Err(e) => e,
        }
    }

    /// A live Deployment: last applied with containers app + sidecar, then a mutating webhook added `injected`
    /// and defaulting added `imagePullPolicy`.
    fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5", "generation": 1,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "app", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80}], "imagePullPolicy": "IfNotPresent"},
                    {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "3600"]},
                    {"name": "injected", "image": "mesh:1"}]}}},
            "status": {"replicas": 2}
        })
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}, "finalizers": ["a.io/one", "b.io/two"]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [
                {"name": "app", "image": "nginx", "args": ["--a", "--b"]},
                {"name": "sidecar", "image": "busybox"}]}}}
        })
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "https", "port": 443, "targetPort": 8443}]}
        })
    }

    fn pod_with_env() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x",
                "env": [{"name": "E1", "value": "1"}, {"name": "E2", "value": "2"}, {"name": "E3", "value": "3"}]}]}
        })
    }

    fn containers(object: &Value) -> &Value {
        &object["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn kubectl_apply_three_way_patch() {
        // The user changed image and replicas, added env C and args, removed the sidecar, switched to Recreate.
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}"}},
            "spec": {"replicas": 3,
                "strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"},
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}],
                    "containers": [
                        {"$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}], "args": ["--verbose"],
                         "env": [{"name": "C", "value": "3"}], "image": "nginx:1.27", "name": "app"},
                        {"$patch": "delete", "name": "sidecar"}]}}}
        });
        let expected = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5", "generation": 1,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "strategy": {"type": "Recreate"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "app", "image": "nginx:1.27", "args": ["--verbose"],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                     "ports": [{"containerPort": 80}], "imagePullPolicy": "IfNotPresent"},
                    {"name": "injected", "image": "mesh:1"}]}}},
            "status": {"replicas": 2}
        });
        let out = patched("Deployment", live_deployment(), patch);
        assert_eq!(out, expected);
        assert!(!out.to_string().contains('$'), "directives leaked: {out}");
    }

    #[test]
    fn kubectl_set_image_patch() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}, {"name": "injected"}],
            "containers": [{"image": "nginx:1.28", "name": "app"}]}}}});
        let out = patched("Deployment", live_deployment(), patch);
        let mut expected = live_deployment();
        expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        assert_eq!(out, expected);
    }

    #[test]
    fn kubectl_rollout_restart_pause_resume() {
        let restarted = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-25T15:54:58Z"}}}}}),
        );
        assert_eq!(
            restarted["spec"]["template"]["metadata"],
            json!({"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-25T15:54:58Z"}})
        );
        assert_eq!(containers(&restarted), containers(&deployment()));

        let paused = patched("Deployment", deployment(), json!({"spec": {"paused": true}}));
        assert_eq!(paused["spec"]["paused"], json!(true));
        let resumed = patched("Deployment", paused, json!({"spec": {"paused": null}}));
        assert_eq!(resumed, deployment());
    }

    #[test]
    fn set_element_order_reorders_merged_list() {
        let out = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}}}}),
        );
        assert_eq!(
            containers(&out),
            &json!([{"name": "sidecar", "image": "busybox"}, {"name": "app", "image": "nginx", "args": ["--a", "--b"]}])
        );
    }

    #[test]
    fn set_element_order_places_new_items_and_keeps_server_only_ones() {
        // `sidecar` is not in the order list: it keeps its place relative to `app`.
        let out = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "new"}, {"name": "app"}],
                "containers": [{"name": "new", "image": "x"}]}}}}),
        );
        assert_eq!(
            containers(&out),
            &json!([
                {"name": "new", "image": "x"},
                {"name": "app", "image": "nginx", "args": ["--a", "--b"]},
                {"name": "sidecar", "image": "busybox"}])
        );
    }

    #[test]
    fn deletion_and_addition_order_like_go() {
        // Without an order list a new element goes before the live ones...
        let out = patched(
            "Pod",
            pod_with_env(),
            json!({"spec": {"containers": [{"name": "c", "env": [{"$patch": "delete", "name": "E2"}, {"name": "E4", "value": "4"}]}]}}),
        );
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "E4", "value": "4"}, {"name": "E1", "value": "1"}, {"name": "E3", "value": "3"}])
        );
        // ...with one, Go compares against the live list its deletion rewrote in place, which puts it last.
        let out = patched(
            "Pod",
            pod_with_env(),
            json!({"spec": {"containers": [{"name": "c", "$setElementOrder/env": [{"name": "E4"}],
                "env": [{"$patch": "delete", "name": "E2"}, {"name": "E4", "value": "4"}]}]}}),
        );
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "E1", "value": "1"}, {"name": "E3", "value": "3"}, {"name": "E4", "value": "4"}])
        );
    }

    #[test]
    fn retain_keys_switches_deployment_strategy() {
        let original = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}});
        let out = patched(
            "Deployment",
            original.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // The null is not what clears it: without it, `$retainKeys` alone drops rollingUpdate.
        let out = patched(
            "Deployment",
            original,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn retain_keys_on_volume_source_and_merge_by_mount_path() {
        let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cm"}}, {"name": "tmp", "emptyDir": {}}]}});
        let patch = json!({"spec": {
            "containers": [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"$retainKeys": ["name", "secret"], "name": "cfg", "secret": {"secretName": "s"}}]}});
        let out = patched("Pod", original, patch);
        assert_eq!(
            out["spec"],
            json!({
                "containers": [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}]}],
                "volumes": [{"name": "cfg", "secret": {"secretName": "s"}}, {"name": "tmp", "emptyDir": {}}]})
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let out = patched(
            "Service",
            service(),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 8080, "name": "alt"}]}}),
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "https", "port": 443, "targetPort": 9443},
                {"name": "alt", "port": 8080}])
        );
        let out = patched(
            "Service",
            service(),
            json!({"spec": {"ports": [{"$patch": "delete", "port": 80}]}}),
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"name": "https", "port": 443, "targetPort": 8443}])
        );
    }

    #[test]
    fn merge_key_numbers_compare_by_value() {
        // Deliberate difference: Go decodes `80.0` as a float and `80` as an integer and appends a second port 80.
        let out = patched(
            "Service",
            service(),
            json!({"spec": {"ports": [{"port": 80.0, "targetPort": 81}]}}),
        );
        assert_eq!(out["spec"]["ports"].as_array().map(Vec::len), Some(2));
        assert_eq!(out["spec"]["ports"][0]["targetPort"], json!(81));
    }

    #[test]
    fn null_deletes_labels() {
        let out = patched(
            "Deployment",
            deployment(),
            json!({"metadata": {"labels": {"tier": null, "track": "canary", "absent": null}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "track": "canary"}));
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let out = patched(
            "Deployment",
            deployment(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/one"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b.io/two"]));

        let out = patched(
            "Deployment",
            deployment(),
            json!({"metadata": {"finalizers": ["c.io/three", "a.io/one"]}}),
        );
        assert_eq!(
            out["metadata"]["finalizers"],
            json!(["c.io/three", "a.io/one", "b.io/two"])
        );

        // What kubectl apply sends when one finalizer replaces another.
        let out = patched(
            "Deployment",
            deployment(),
            json!({"metadata": {
                "$deleteFromPrimitiveList/finalizers": ["a.io/one"],
                "$setElementOrder/finalizers": ["c.io/three", "b.io/two"],
                "finalizers": ["c.io/three"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c.io/three", "b.io/two"]));
    }

    #[test]
    fn node_lists() {
        let original = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "spec": {"podCIDRs": ["a", "b", "c"], "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n"}],
                "conditions": [{"type": "Ready", "status": "False"}]}});
        let patch = json!({
            "spec": {"taints": [{"key": "c", "effect": "NoExecute"}], "podCIDRs": ["c", "d", "a"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]}});
        let out = patched("Node", original, patch);
        assert_eq!(
            out["spec"],
            json!({"podCIDRs": ["b", "c", "d", "a"], "taints": [{"key": "c", "effect": "NoExecute"}]})
        );
        assert_eq!(
            out["status"],
            json!({"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n"}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]})
        );
    }

    #[test]
    fn patch_replace_on_map() {
        let out = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"app": "web2"}}}}),
        );
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"app": "web2"}}));
    }

    #[test]
    fn patch_delete_and_merge_on_map() {
        let out = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"selector": {"$patch": "delete"}}}),
        );
        assert_eq!(out["spec"]["selector"], json!({}));
        // Go rejects `$patch: merge` on a map; it is accepted here as the default it names.
        let out = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"selector": {"$patch": "merge", "matchLabels": {"x": "y"}}}}),
        );
        assert_eq!(
            out["spec"]["selector"],
            json!({"matchLabels": {"app": "web", "x": "y"}})
        );
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let out = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["--c"]}]}}}}),
        );
        assert_eq!(
            containers(&out)[0],
            json!({"name": "app", "image": "nginx", "args": ["--c"]})
        );
        assert_eq!(containers(&out)[1], json!({"name": "sidecar", "image": "busybox"}));
    }

    #[test]
    fn patch_replace_element_replaces_list() {
        let out = patched(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}}),
        );
        assert_eq!(containers(&out), &json!([{"name": "only", "image": "x"}]));
    }

    #[test]
    fn merged_elements_recurse_with_their_own_metadata() {
        // ports merge by containerPort inside a container merged by name, nulls delete inside elements.
        let out = patched(
            "Pod",
            json!({"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "x",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": null,
                "ports": [{"containerPort": 8080}, {"containerPort": 80, "name": "http"}],
                "resources": {"requests": {"cpu": "2", "memory": null}}}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c",
                "ports": [{"containerPort": 8080}, {"containerPort": 80, "protocol": "TCP", "name": "http"}],
                "resources": {"requests": {"cpu": "2"}}}])
        );
    }

    #[test]
    fn directives_never_reach_the_result() {
        // New subtrees are merged into nothing, so their directives and nulls are processed too. Deliberate
        // difference: Go drops every new map that has a `$patch` key, so `nodeSelector` and the `k` toleration
        // would vanish there.
        let out = patched(
            "Deployment",
            json!({"kind": "Deployment", "metadata": {"name": "d"}}),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [
                    {"name": "a", "image": "x", "$setElementOrder/env": [{"name": "E"}], "env": [{"name": "E", "value": "1"}]},
                    {"name": "b", "image": null},
                    {"$patch": "delete", "name": "c"}],
                "tolerations": [{"key": "k", "$patch": "delete"}, {"$patch": "replace"}],
                "nodeSelector": {"$patch": "replace", "disk": "ssd"},
                "affinity": {"$patch": "delete"}}}},
             "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "$setElementOrder/finalizers": ["y"]}}),
        );
        assert_eq!(
            out,
            json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}, {"name": "b"}],
                "tolerations": [{"key": "k"}],
                "nodeSelector": {"disk": "ssd"}}}}})
        );
    }

    #[test]
    fn controller_revision_data_is_opaque() {
        let original = json!({"kind": "ControllerRevision", "data": {"spec": {"template": {"$patch": "replace", "a": 1}}}, "revision": 1});
        let patch = json!({"data": {"spec": {"x": [1, 2]}}, "revision": 2});
        let out = patched("ControllerRevision", original, patch);
        assert_eq!(
            out,
            json!({"kind": "ControllerRevision", "data": {"spec": {"x": [1, 2]}}, "revision": 2})
        );
    }

    #[test]
    fn error_patch_not_object() {
        let err = failed("Deployment", deployment(), json!([1]));
        assert!(matches!(err, Error::PatchNotObject { found: "list" }), "{err:?}");
        assert_eq!(err.to_string(), "strategic merge patch must be a json object, got list");
        assert!(matches!(
            failed("Pod", json!("x"), json!({})),
            Error::OriginalNotObject { found: "string" }
        ));
    }

    #[test]
    fn error_unsupported_kind() {
        let err = failed("Widget", json!({}), json!({}));
        assert!(
            matches!(&err, Error::UnsupportedKind { kind } if kind == "Widget"),
            "{err:?}"
        );
        assert!(err.to_string().contains("application/merge-patch+json"));
    }

    #[test]
    fn error_type_mismatch() {
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": [{"name": "app"}]}}),
        );
        assert_eq!(
            err.to_string(),
            "spec.template: expected a map in the patch, got a list"
        );
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": {"name": "app"}}}}}),
        );
        assert_eq!(
            err.to_string(),
            "spec.template.spec.containers: expected a list in the patch, got a map"
        );
        let err = failed("Deployment", deployment(), json!({"spec": {"replicas": {"x": 1}}}));
        assert!(
            matches!(
                err,
                Error::TypeMismatch {
                    expected: "a number",
                    found: "a map",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn error_missing_merge_key() {
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"value": "1"}]}]}}}}),
        );
        assert!(matches!(&err, Error::MissingMergeKey { key: "name", .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "spec.template.spec.containers[name=app].env[0]: list element does not contain its merge key `name`"
        );
        let err = failed(
            "Service",
            service(),
            json!({"spec": {"ports": [{"$patch": "delete", "name": "http"}]}}),
        );
        assert_eq!(
            err.to_string(),
            "spec.ports[0]: list element does not contain its merge key `port`"
        );
    }

    #[test]
    fn error_unknown_patch_directive() {
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"$patch": "bogus"}}}),
        );
        assert_eq!(
            err.to_string(),
            "spec.template: unknown $patch value \"bogus\"; expected replace, merge or delete"
        );
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "$patch": "remove"}]}}}}),
        );
        assert!(
            matches!(&err, Error::UnknownPatchDirective { path, .. } if path == "spec.template.spec.containers[0]"),
            "{err:?}"
        );
        let err = failed(
            "Deployment",
            deployment(),
            json!({"metadata": {"finalizers": [{"$patch": "delete"}]}}),
        );
        assert!(matches!(err, Error::DeleteInPrimitiveList { .. }), "{err:?}");
    }

    #[test]
    fn error_unknown_directive_key() {
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"$retainkeys": ["replicas"]}}),
        );
        assert!(
            matches!(&err, Error::UnknownDirective { path, key } if path == "spec" && key == "$retainkeys"),
            "{err:?}"
        );
    }

    #[test]
    fn error_bad_retain_keys() {
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {"maxSurge": 2}}}}),
        );
        assert_eq!(
            err.to_string(),
            "spec.strategy: invalid $retainKeys: the patch sets `rollingUpdate`, which is not in the list"
        );
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        );
        assert!(matches!(err, Error::BadRetainKeys { .. }), "{err:?}");
    }

    #[test]
    fn error_bad_set_element_order() {
        // The patch list must follow the order list (Go: "doesn't match $setElementOrder list").
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "a"}, {"name": "sidecar", "image": "b"}]}}}}),
        );
        assert!(
            matches!(&err, Error::BadSetElementOrder { path, .. } if path == "spec.template.spec.containers"),
            "{err:?}"
        );
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "app"}}}}}),
        );
        assert!(matches!(err, Error::BadSetElementOrder { .. }), "{err:?}");
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "app"}]}}}}),
        );
        assert!(matches!(err, Error::BadSetElementOrder { .. }), "{err:?}");
    }

    #[test]
    fn error_bad_delete_from_primitive_list() {
        let err = failed(
            "Deployment",
            deployment(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a.io/one"}}),
        );
        assert!(
            matches!(&err, Error::BadDeleteFromPrimitiveList { path } if path == "metadata.finalizers"),
            "{err:?}"
        );
    }

    #[test]
    fn error_list_element_types() {
        let err = failed(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": ["app"]}}}}),
        );
        assert!(matches!(err, Error::MixedElementTypes { .. }), "{err:?}");
        let err = failed("Deployment", deployment(), json!({"metadata": {"finalizers": [["a"]]}}));
        assert!(matches!(err, Error::ListOfLists { .. }), "{err:?}");
        let err = failed(
            "Deployment",
            json!({"metadata": {"finalizers": []}}),
            json!({"metadata": {"finalizers": [{"name": "a"}]}}),
        );
        assert!(matches!(err, Error::NoMergeKey { .. }), "{err:?}");
    }

    #[test]
    fn original_is_not_modified_and_root_delete_empties() {
        let original = deployment();
        let out = patched("Deployment", original.clone(), json!({"$patch": "delete"}));
        assert_eq!(out, json!({}));
        assert_eq!(original, deployment());
    }
}
