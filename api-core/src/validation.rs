//! Field validation with the Kubernetes API server's messages (`field.Error`), on create and on update.
//!
//! Every rule here mirrors a check of the Kubernetes v1.32 API server (`pkg/apis/*/validation` plus the immutability
//! checks of the registry strategies), with the same field paths, error types and details, so that the message
//! [`FieldError::message`] prints is the one `kubectl` shows against Kubernetes. Objects arrive as JSON after
//! [`crate::defaults::apply`], which is also the state Kubernetes validates (after `SetDefaults_*`).
//!
//! Values are printed the way Go's `field.Error` prints them: strings quoted (`strconv.Quote`), numbers and booleans
//! bare, `map[string]string{"k":"v"}` for label maps and Go's `%#v` for the few structs Kubernetes puts in a message
//! (label selectors, `intstr.IntOrString`, ...). Where Kubernetes prints a large internal struct with pointer
//! addresses (a Job's immutable pod template) only its head is reproduced.
//!
//! Go iterates maps in random order; this module checks map keys in sorted order so that messages are stable.
//! Like `ErrorList.ToAggregate`, identical messages are reported once.
//!
//! Not covered (rare from `kubectl`): affinity terms, security contexts, Job pod failure and success policies beyond
//! their immutability, volume sources beyond their required names, and integer-only extended resources. Two
//! differences follow from Keel's server: a Pod's `spec.nodeName` may be set by update (binding goes through the
//! update path), and a Local LoadBalancer's `healthCheckNodePort` may still be unset (ports are allocated after
//! validation, Kubernetes allocates them before).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::defaults::quantity_value;
use crate::registry::{NameRule, ResourceDef};
use crate::selector::LabelSelector;

/// The type of a field error (Kubernetes' `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value`.
    NotSupported,
    /// `Duplicate value`.
    Duplicate,
    /// `Forbidden`.
    Forbidden,
    /// `Too long`.
    TooLong,
    /// `Too many`.
    TooMany,
    /// `Not found`.
    NotFound,
}

/// One field error, as in Kubernetes' `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The error type.
    pub kind: FieldErrorKind,
    /// The offending value, printed for Invalid/NotSupported/Duplicate/NotFound/TooMany; `None` omits it.
    pub value: Option<Value>,
    /// Explanation.
    pub detail: String,
    /// The offending value as Go's `%#v` prints it (`v1.LabelSelector{...}`), for values whose Go type decides how
    /// Kubernetes prints them; when set it is printed instead of [`FieldError::value`].
    pub go_value: Option<String>,
}

impl FieldError {
    fn new(field: &str, kind: FieldErrorKind, value: Option<Value>, detail: &str) -> Self {
        Self {
            field: field.to_string(),
            kind,
            value,
            detail: detail.to_string(),
            go_value: None,
        }
    }

    /// A `Required value` error.
    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(field, FieldErrorKind::Required, None, detail)
    }

    /// An `Invalid value` error.
    pub fn invalid(field: &str, value: Value, detail: &str) -> Self {
        Self::new(field, FieldErrorKind::Invalid, Some(value), detail)
    }

    /// An `Invalid value` error whose value Kubernetes prints with Go's `%#v` (`go_value`), e.g. a label selector;
    /// `value` keeps the JSON form.
    pub fn invalid_go(field: &str, value: Value, go_value: String, detail: &str) -> Self {
        let mut e = Self::new(field, FieldErrorKind::Invalid, Some(value), detail);
        e.go_value = Some(go_value);
        e
    }

    /// A `Forbidden` error.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// An `Unsupported value` error listing the supported values, as `field.NotSupported` does.
    pub fn not_supported(field: &str, value: Value, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(field, FieldErrorKind::NotSupported, Some(value), &detail)
    }

    /// A `Duplicate value` error.
    pub fn duplicate(field: &str, value: Value) -> Self {
        Self::new(field, FieldErrorKind::Duplicate, Some(value), "")
    }

    /// A `Not found` error.
    pub fn not_found(field: &str, value: Value) -> Self {
        Self::new(field, FieldErrorKind::NotFound, Some(value), "")
    }

    /// A `Too long` error (`field.TooLong`): `may not be more than <max> bytes`.
    pub fn too_long(field: &str, max_bytes: usize) -> Self {
        Self::new(
            field,
            FieldErrorKind::TooLong,
            None,
            &format!("may not be more than {max_bytes} bytes"),
        )
    }

    /// A `Too many` error (`field.TooMany`): `must have at most <max> items`.
    pub fn too_many(field: &str, actual: usize, max_items: usize) -> Self {
        Self::new(
            field,
            FieldErrorKind::TooMany,
            Some(Value::from(actual)),
            &format!("must have at most {max_items} items"),
        )
    }

    /// The `StatusCause` reason (`FieldValueRequired`, ...).
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::NotFound => "FieldValueNotFound",
        }
    }

    /// Kubernetes' message (`field.Error.Error()`), e.g. `spec.selector: Required value` or
    /// `metadata.name: Invalid value: "Foo": a lowercase RFC 1123 subdomain must consist of ...`.
    ///
    /// Required, Forbidden and TooLong never print the value; the others print it as Go does (see the module
    /// documentation), or nothing when it is `None`.
    pub fn message(&self) -> String {
        let label = match self.kind {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::NotFound => "Not found",
        };
        let mut s = format!("{}: {label}", self.field);
        let shows_value = !matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if shows_value {
            if let Some(g) = &self.go_value {
                s.push_str(": ");
                s.push_str(g);
            } else if let Some(v) = &self.value {
                s.push_str(": ");
                s.push_str(&go_render(v));
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------------------------
// How Go prints values
// ---------------------------------------------------------------------------------------------------------------

/// Go's `strconv.Quote`: double quotes, the usual backslash escapes, `\x..`/`\u....` for non-printable characters.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if ('\u{80}'..='\u{9f}').contains(&c) || c == '\u{ad}' || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How `field.Error` prints a JSON value: strings quoted, numbers and booleans bare, `nil` as `"null"`, a string
/// map as `map[string]string{...}`, a string list as `[]string{...}`; anything else as JSON.
fn go_render(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => go_quote("null"),
        Value::Object(m) if m.values().all(Value::is_string) => go_string_map(Some(v)),
        Value::Array(a) if a.iter().all(Value::is_string) => go_string_slice(Some(v)),
        other => other.to_string(),
    }
}

/// `%#v` of a `map[string]string` (keys sorted, as Go's fmt does); absent or null is the nil map.
fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let items: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(&scalar_text(v))))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// `%#v` of a `[]string`; absent or null is the nil slice.
fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a.iter().map(|x| go_quote(&scalar_text(x))).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// `%#v` of a `metav1.LabelSelector` (what `field.Invalid` prints for `spec.selector`).
fn go_label_selector(sel: &Value) -> String {
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_of(e, "key")),
                        go_quote(str_of(e, "operator")),
                        go_string_slice(e.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(sel.get("matchLabels"))
    )
}

/// `%#v` of an `intstr.IntOrString` (Type 0 is Int, 1 is String).
fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", go_quote(s)),
        Some(Value::Number(n)) => format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}"),
        _ => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_string(),
    }
}

/// `%#v` of a pointer field inside a struct: `(*T)(nil)` when unset, an address-like placeholder otherwise (Go
/// prints the pointer's address, which no client can rely on).
fn go_pointer(v: Option<&Value>, ty: &str) -> String {
    if is_unset(v) {
        format!("(*{ty})(nil)")
    } else {
        format!("(*{ty})(0xc000000000)")
    }
}

/// The text of a scalar: strings as they are, anything else as JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// JSON access and field paths
// ---------------------------------------------------------------------------------------------------------------

static NULL: Value = Value::Null;

/// A string field, or `""`.
fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A list field, or the empty list.
fn list_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// An object field.
fn map_of<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// A field, or `null`.
fn field_of<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

/// An integer field.
fn int_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// Whether a value is absent or null (a nil pointer in Go).
fn is_unset(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

/// `parent.child`.
fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `parent[i]`.
fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `parent[key]`.
fn keyed(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

/// Sorted `(key, value)` pairs of an object field (Go checks maps in random order; sorted keeps messages stable).
fn sorted_entries(m: Option<&Map<String, Value>>) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = m.map(|m| m.iter().collect()).unwrap_or_default();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// `apiequality.Semantic.DeepEqual` on JSON: null, absent, empty strings, zero numbers, `false`, empty lists and
/// empty objects are all Go zero values and compare equal to each other.
fn sem_eq(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let n = normalize(x);
                if !is_zero(&n) {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Format checks (k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------------------------

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const HTTP_HEADER_MSG: &str = "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')";
const RELAXED_ENV_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const NONNEGATIVE_MSG: &str = "must be greater than or equal to 0";
const IMMUTABLE_MSG: &str = "field is immutable";
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
/// `TotalAnnotationSizeLimitB`: 256 KiB of annotation keys and values.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;
/// `core.MaxSecretSize`: 1 MiB of ConfigMap or Secret data.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Check an RFC 1123 label; returns Kubernetes' error details.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_label_chars(s) {
        errs.push(LABEL_MSG.to_string());
    }
    errs
}

/// Check an RFC 1123 subdomain; returns Kubernetes' error details.
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if s.is_empty() || !s.split('.').all(is_label_chars) {
        errs.push(SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Check an RFC 1035 label (a Service name); returns Kubernetes' error details.
pub fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_label_chars(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        errs.push(DNS1035_MSG.to_string());
    }
    errs
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Check a qualified name (a label key: optional DNS subdomain prefix and `/`, then a name); returns Kubernetes'
/// error details.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// Check a label value (at most 63 characters, may be empty); returns Kubernetes' error details.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// Check a ConfigMap or Secret data key; returns Kubernetes' error details.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    if value == "." {
        errs.push("must not be '.'".to_string());
    } else if value == ".." {
        errs.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// `IsValidPortName`: an IANA service name.
fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

fn is_valid_port_num(port: i64) -> bool {
    (1..=65535).contains(&port)
}

fn is_valid_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// `netutils.ParseIPSloppy`: like Go's `net.ParseIP`, but IPv4 octets may have leading zeros (read as decimal).
fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        return s.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// `validation.IsValidIP`.
fn validate_ip(path: &str, value: &str, errs: &mut Vec<FieldError>) -> bool {
    if parse_ip_sloppy(value).is_none() {
        errs.push(FieldError::invalid(path, Value::from(value), IP_MSG));
        return false;
    }
    true
}

/// `validation.IsValidCIDR`.
fn validate_cidr(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    let ok = value.split_once('/').is_some_and(|(ip, bits)| {
        let max = match parse_ip_sloppy(ip) {
            Some(IpAddr::V4(_)) => 32,
            Some(IpAddr::V6(_)) => 128,
            None => return false,
        };
        !bits.is_empty() && bits.bytes().all(|c| c.is_ascii_digit()) && bits.parse::<u32>().is_ok_and(|b| b <= max)
    });
    if !ok {
        errs.push(FieldError::invalid(path, Value::from(value), CIDR_MSG));
    }
}

/// `ValidateNonSpecialIP`: no unspecified, loopback or link-local addresses (Endpoints, external IPs).
fn validate_non_special_ip(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    let Some(ip) = parse_ip_sloppy(value) else {
        errs.push(FieldError::invalid(
            path,
            Value::from(value),
            "must be a valid IP address",
        ));
        return;
    };
    let (unspecified, loopback, link_local, link_local_mc) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                v4.is_unspecified(),
                v4.is_loopback(),
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (
                v6.is_unspecified(),
                v6.is_loopback(),
                s[0] & 0xffc0 == 0xfe80,
                s[0] & 0xff0f == 0xff02,
            )
        }
    };
    let v = || Value::from(value);
    if unspecified {
        errs.push(FieldError::invalid(
            path,
            v(),
            &format!("may not be unspecified ({value})"),
        ));
    }
    if loopback {
        errs.push(FieldError::invalid(
            path,
            v(),
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if link_local {
        errs.push(FieldError::invalid(
            path,
            v(),
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_mc {
        errs.push(FieldError::invalid(
            path,
            v(),
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Common field checks
// ---------------------------------------------------------------------------------------------------------------

/// `ValidateNonnegativeField`.
fn nonnegative(path: &str, value: Option<i64>, errs: &mut Vec<FieldError>) {
    if let Some(n) = value
        && n < 0
    {
        errs.push(FieldError::invalid(path, Value::from(n), NONNEGATIVE_MSG));
    }
}

/// `ValidateDNS1123Label` on a field.
fn dns1123_label_field(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    for m in is_dns1123_label(value) {
        errs.push(FieldError::invalid(path, Value::from(value), &m));
    }
}

/// `ValidateDNS1123Subdomain` on a field.
fn dns1123_subdomain_field(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    for m in is_dns1123_subdomain(value) {
        errs.push(FieldError::invalid(path, Value::from(value), &m));
    }
}

/// `ValidateQualifiedName` / `ValidateLabelName` on a field.
fn qualified_name_field(path: &str, value: &str, errs: &mut Vec<FieldError>) {
    for m in is_qualified_name(value) {
        errs.push(FieldError::invalid(path, Value::from(value), &m));
    }
}

/// `ValidateLabels`: keys are qualified names, values label values; errors name the map, not the key.
fn validate_labels(labels: Option<&Map<String, Value>>, path: &str, errs: &mut Vec<FieldError>) {
    for (k, v) in sorted_entries(labels) {
        qualified_name_field(path, k, errs);
        let v = scalar_text(v);
        for m in is_valid_label_value(&v) {
            errs.push(FieldError::invalid(path, Value::from(v.as_str()), &m));
        }
    }
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitively), total size at most 256 KiB.
fn validate_annotations(annotations: Option<&Map<String, Value>>, path: &str, errs: &mut Vec<FieldError>) {
    let mut total = 0usize;
    for (k, v) in sorted_entries(annotations) {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, Value::from(k.as_str()), &m));
        }
        total += k.len() + scalar_text(v).len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errs.push(FieldError::too_long(path, ANNOTATIONS_MAX_BYTES));
    }
}

/// A port given as a number or an IANA name (`ValidatePortNumOrName`).
fn validate_port_num_or_name(path: &str, port: Option<&Value>, errs: &mut Vec<FieldError>) {
    match port {
        Some(Value::String(s)) => {
            for m in is_valid_port_name(s) {
                errs.push(FieldError::invalid(path, Value::from(s.as_str()), &m));
            }
        }
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            if !is_valid_port_num(n) {
                errs.push(FieldError::invalid(path, Value::from(n), PORT_RANGE_MSG));
            }
        }
    }
}

/// `ValidatePositiveIntOrPercent` for rolling update parameters.
fn validate_int_or_percent(path: &str, v: Option<&Value>, errs: &mut Vec<FieldError>) {
    match v {
        Some(Value::String(s)) => {
            if !is_valid_percent(s) {
                errs.push(FieldError::invalid_go(
                    path,
                    Value::from(s.as_str()),
                    go_int_or_string(v),
                    PERCENT_MSG,
                ));
            }
        }
        other => nonnegative(path, Some(other.and_then(Value::as_i64).unwrap_or(0)), errs),
    }
}

/// `getIntOrPercentValue`: the percentage or the integer (an invalid string counts as its `Atoi`, usually 0).
fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => match s.strip_suffix('%') {
            Some(n) if is_valid_percent(s) => n.parse().unwrap_or(0),
            _ => s.parse().unwrap_or(0),
        },
        Some(other) => other.as_i64().unwrap_or(0),
        None => 0,
    }
}

/// `IsNotMoreThan100Percent`.
fn not_more_than_100_percent(path: &str, v: Option<&Value>, errs: &mut Vec<FieldError>) {
    if let Some(Value::String(s)) = v
        && is_valid_percent(s)
        && int_or_percent_value(v) > 100
    {
        errs.push(FieldError::invalid_go(
            path,
            Value::from(s.as_str()),
            go_int_or_string(v),
            "must not be greater than 100%",
        ));
    }
}

/// `ValidateLabelSelector` (strict label values).
fn validate_label_selector(sel: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if sel.is_null() {
        return;
    }
    validate_labels(map_of(sel, "matchLabels"), &child(path, "matchLabels"), errs);
    for (i, expr) in list_of(sel, "matchExpressions").iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values = list_of(expr, "values");
        match str_of(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                &child(&p, "operator"),
                Value::from(op),
                "not a valid selector operator",
            )),
        }
        qualified_name_field(&child(&p, "key"), str_of(expr, "key"), errs);
        for (j, v) in values.iter().enumerate() {
            let v = scalar_text(v);
            for m in is_valid_label_value(&v) {
                errs.push(FieldError::invalid(
                    &index(&child(&p, "values"), j),
                    Value::from(v.as_str()),
                    &m,
                ));
            }
        }
    }
}

/// Whether a `metav1.LabelSelector` has neither `matchLabels` nor `matchExpressions`.
fn selector_is_empty(sel: &Value) -> bool {
    map_of(sel, "matchLabels").is_none_or(Map::is_empty) && list_of(sel, "matchExpressions").is_empty()
}

/// `ValidateImmutableField` for a label selector: `Invalid value: v1.LabelSelector{...}: field is immutable`.
fn immutable_selector(path: &str, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    if !sem_eq(new, old) {
        if new.is_null() {
            errs.push(FieldError::invalid(path, Value::Null, IMMUTABLE_MSG));
        } else {
            errs.push(FieldError::invalid_go(
                path,
                new.clone(),
                go_label_selector(new),
                IMMUTABLE_MSG,
            ));
        }
    }
}

/// `ValidateImmutableField` for a scalar or string-map field.
fn immutable_field(path: &str, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    if !sem_eq(new, old) {
        errs.push(FieldError::invalid(path, new.clone(), IMMUTABLE_MSG));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Object metadata
// ---------------------------------------------------------------------------------------------------------------

/// How `metadata.name` is validated (`ValidateNameFunc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameCheck {
    Subdomain,
    Label,
    Dns1035,
}

/// The name rule Kubernetes applies to a kind: Services are DNS-1035 labels, Namespaces and StatefulSets DNS-1123
/// labels, everything else served here DNS-1123 subdomains.
fn name_check(res: &ResourceDef) -> NameCheck {
    match res.kind {
        "Service" => NameCheck::Dns1035,
        "StatefulSet" | "Namespace" => NameCheck::Label,
        _ => match res.name_rule() {
            NameRule::Label => NameCheck::Label,
            NameRule::Subdomain => NameCheck::Subdomain,
        },
    }
}

/// `NameIsDNS*(name, prefix)`: with `prefix` (a `generateName`) a trailing dash is masked first (`maskTrailingDash`).
fn name_errors(check: NameCheck, name: &str, prefix: bool) -> Vec<String> {
    let masked;
    let name = if prefix && name.len() > 1 && name.ends_with('-') {
        let bytes = name.as_bytes();
        masked = format!("{}a", String::from_utf8_lossy(&bytes[..bytes.len() - 2]));
        masked.as_str()
    } else {
        name
    };
    match check {
        NameCheck::Subdomain => is_dns1123_subdomain(name),
        NameCheck::Label => is_dns1123_label(name),
        NameCheck::Dns1035 => is_dns1035_label(name),
    }
}

const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// `ValidateObjectMeta` (plus core's finalizer name check).
fn validate_meta(res: &ResourceDef, obj: &Value, errs: &mut Vec<FieldError>) {
    let meta = field_of(obj, "metadata");
    let check = name_check(res);
    let generate_name = str_of(meta, "generateName");
    if !generate_name.is_empty() {
        for m in name_errors(check, generate_name, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                Value::from(generate_name),
                &m,
            ));
        }
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for m in name_errors(check, name, false) {
            errs.push(FieldError::invalid("metadata.name", Value::from(name), &m));
        }
    }
    let namespace = str_of(meta, "namespace");
    if res.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for m in is_dns1123_label(namespace) {
                errs.push(FieldError::invalid("metadata.namespace", Value::from(namespace), &m));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    nonnegative("metadata.generation", int_of(meta, "generation"), errs);
    validate_labels(map_of(meta, "labels"), "metadata.labels", errs);
    validate_annotations(map_of(meta, "annotations"), "metadata.annotations", errs);
    validate_owner_references(list_of(meta, "ownerReferences"), errs);
    let finalizers = list_of(meta, "finalizers");
    let names: Vec<String> = finalizers.iter().map(scalar_text).collect();
    for f in &names {
        qualified_name_field("metadata.finalizers", f, errs);
    }
    if names.iter().any(|f| f == "orphan") && names.iter().any(|f| f == "foregroundDeletion") {
        errs.push(FieldError::invalid(
            "metadata.finalizers",
            Value::from(names.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    if res.group != "coordination.k8s.io" {
        for (i, f) in names.iter().enumerate() {
            kube_finalizer_name(&index("metadata.finalizers", i), f, errs);
        }
    }
}

/// `validateKubeFinalizerName`: an unqualified finalizer must be one of the standard ones.
fn kube_finalizer_name(path: &str, name: &str, errs: &mut Vec<FieldError>) {
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(FieldError::invalid(
            path,
            Value::from(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

/// `ValidateOwnerReferences` (field paths name the list, not the entry, as Kubernetes does).
fn validate_owner_references(refs: &[Value], errs: &mut Vec<FieldError>) {
    let path = "metadata.ownerReferences";
    let mut controllers: Vec<String> = Vec::new();
    for r in refs {
        let api_version = str_of(r, "apiVersion");
        let version = match api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => *v,
            [_, v] => *v,
            _ => "",
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &child(path, "apiVersion"),
                Value::from(api_version),
                "version must not be empty",
            ));
        }
        for (key, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if str_of(r, key).is_empty() {
                errs.push(FieldError::invalid(
                    &child(path, key),
                    Value::from(""),
                    &format!("{what} must not be empty"),
                ));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!("{}/{}", str_of(r, "kind"), str_of(r, "name")));
        }
    }
    if controllers.len() > 1 {
        let detail = format!(
            "Only one reference can have Controller set to true. Found \"true\" in references for {} and {}",
            controllers[0], controllers[1]
        );
        errs.push(FieldError::invalid_go(
            path,
            Value::from(refs.to_vec()),
            "[]v1.OwnerReference{...}".to_string(),
            &detail,
        ));
    }
}

/// `ValidateObjectMetaUpdate` beyond what the server already carries over: no new finalizers once deleting.
fn validate_meta_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if is_unset(old.pointer("/metadata/deletionTimestamp")) {
        return;
    }
    let old_f: BTreeSet<String> = list_of(field_of(old, "metadata"), "finalizers")
        .iter()
        .map(scalar_text)
        .collect();
    let added: BTreeSet<String> = list_of(field_of(new, "metadata"), "finalizers")
        .iter()
        .map(scalar_text)
        .filter(|f| !old_f.contains(f))
        .collect();
    if !added.is_empty() {
        let list: Vec<String> = added.iter().map(|f| go_quote(f)).collect();
        errs.push(FieldError::forbidden(
            "metadata.finalizers",
            &format!(
                "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                list.join(", ")
            ),
        ));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------------------------

/// Validate an object (after defaults) for create.
pub fn validate_create(res: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_object(res, obj, None, &mut errs);
    if res.kind == "Pod" {
        validate_pod_create(obj, &mut errs);
    }
    dedup(errs)
}

/// Validate an update: everything [`validate_create`] checks plus immutable fields against `old`.
///
/// A Pod's `spec.nodeName` may go from empty to set here, because the server binds Pods (`pods/binding`) through
/// this same update path; Kubernetes only allows that through the binding subresource.
pub fn validate_update(res: &ResourceDef, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_meta_update(old, new, &mut errs);
    // Kubernetes checks these kinds' update rules before re-validating the object; the others after.
    let update_first = matches!(res.kind, "Service" | "ConfigMap" | "Secret" | "Node");
    let mut object_errs = Vec::new();
    validate_object(res, new, Some(old), &mut object_errs);
    if !update_first {
        errs.append(&mut object_errs);
    }
    match res.kind {
        "Pod" => validate_pod_update(old, new, &mut errs),
        "Deployment" | "ReplicaSet" | "DaemonSet" => {
            immutable_selector(
                "spec.selector",
                field_of(field_of(new, "spec"), "selector"),
                field_of(field_of(old, "spec"), "selector"),
                &mut errs,
            );
        }
        "StatefulSet" => validate_stateful_set_update(old, new, &mut errs),
        "ControllerRevision" if !sem_eq(field_of(new, "data"), field_of(old, "data")) => {
            errs.push(FieldError::invalid_go(
                "data",
                field_of(new, "data").clone(),
                "runtime.RawExtension{...}".to_string(),
                IMMUTABLE_MSG,
            ));
        }
        "Job" => validate_job_update(old, new, &mut errs),
        "Service" => validate_service_update(old, new, &mut errs),
        "ConfigMap" | "Secret" => validate_config_update(res.kind, old, new, &mut errs),
        "Node" => validate_node_update(old, new, &mut errs),
        "EndpointSlice" => immutable_field(
            "addressType",
            field_of(new, "addressType"),
            field_of(old, "addressType"),
            &mut errs,
        ),
        _ => {}
    }
    errs.append(&mut object_errs);
    dedup(errs)
}

/// Checks shared by create and update: metadata and the kind's own rules on one object (`old` on update).
fn validate_object(res: &ResourceDef, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if res.kind == "Event" {
        validate_event(obj, errs);
        return;
    }
    validate_meta(res, obj, errs);
    match res.kind {
        "Pod" => validate_pod(obj, errs),
        "Deployment" => validate_deployment(obj, errs),
        "ReplicaSet" => validate_replica_set(obj, errs),
        "StatefulSet" => validate_stateful_set(obj, errs),
        "DaemonSet" => validate_daemon_set(obj, errs),
        "ControllerRevision" => {
            if is_unset(obj.get("data")) {
                errs.push(FieldError::required("data", "data is mandatory"));
            }
            nonnegative("revision", int_of(obj, "revision"), errs);
        }
        "Job" => {
            // Jobs created before the `batch.kubernetes.io/` labels existed keep passing without them.
            let prefixed = old.is_none_or(|o| {
                o.pointer("/spec/template/metadata/labels")
                    .is_some_and(|l| l.get(JOB_CONTROLLER_UID).is_some())
            });
            validate_generated_selector(obj, prefixed, errs);
            validate_job(obj, errs);
        }
        "Service" => validate_service(obj, errs),
        "ConfigMap" => validate_config_map(obj, errs),
        "Secret" => validate_secret(obj, errs),
        "Namespace" => validate_namespace(obj, errs),
        "Node" => validate_node(obj, errs),
        "Endpoints" => validate_endpoints(obj, errs),
        "EndpointSlice" => validate_endpoint_slice(obj, errs),
        "Lease" => validate_lease(obj, errs),
        _ => {}
    }
}

/// `ErrorList.ToAggregate`: the same message is reported once.
fn dedup(errs: Vec<FieldError>) -> Vec<FieldError> {
    let mut seen = BTreeSet::new();
    errs.into_iter().filter(|e| seen.insert(e.message())).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Events, Leases and other small kinds
// ---------------------------------------------------------------------------------------------------------------

/// `legacyValidateEvent`: core/v1 Events skip ObjectMeta validation; the involved object's namespace must agree.
fn validate_event(obj: &Value, errs: &mut Vec<FieldError>) {
    let namespace = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let involved_ns = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            Value::from(involved_ns),
            "does not match event.namespace",
        )
    };
    if is_unset(obj.get("eventTime")) {
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(mismatch());
            }
        } else if namespace != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller = str_of(obj, "reportingComponent");
        if controller.is_empty() {
            errs.push(FieldError::required("reportingComponent", ""));
        }
        qualified_name_field("reportingComponent", controller, errs);
        let instance = str_of(obj, "reportingInstance");
        if instance.is_empty() {
            errs.push(FieldError::required("reportingInstance", ""));
        }
        if instance.len() > 128 {
            errs.push(FieldError::invalid(
                "reportingInstance",
                Value::from(""),
                "can have at most 128 characters",
            ));
        }
        let action = str_of(obj, "action");
        if action.is_empty() {
            errs.push(FieldError::required("action", ""));
        }
        if action.len() > 128 {
            errs.push(FieldError::invalid(
                "action",
                Value::from(""),
                "can have at most 128 characters",
            ));
        }
        let reason = str_of(obj, "reason");
        if reason.is_empty() {
            errs.push(FieldError::required("reason", ""));
        }
        if reason.len() > 128 {
            errs.push(FieldError::invalid(
                "reason",
                Value::from(""),
                "can have at most 128 characters",
            ));
        }
        if str_of(obj, "message").len() > 1024 {
            errs.push(FieldError::invalid(
                "message",
                Value::from(""),
                "can have at most 1024 characters",
            ));
        }
    }
    for m in is_dns1123_subdomain(namespace) {
        errs.push(FieldError::invalid("namespace", Value::from(namespace), &m));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Pod specs (pkg/apis/core/validation: ValidatePodSpec and what it calls)
// ---------------------------------------------------------------------------------------------------------------

/// Where a PodSpec sits: in a Pod (`ResourceIsPod`) or in a workload's pod template.
#[derive(Debug, Clone, Copy)]
struct PodOpts {
    is_pod: bool,
}

/// Volume sources in the order `validateVolumeSource` checks them, with the path segment it reports for a second
/// source (Kubernetes' own spelling, typos included).
const VOLUME_SOURCES: [(&str, &str); 30] = [
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// `ValidateVolumes`: returns the names of the volumes that validated (mounts may only name those).
fn validate_volumes(volumes: &[Value], path: &str, errs: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, vol) in volumes.iter().enumerate() {
        let p = index(path, i);
        let mut el = Vec::new();
        let mut count = 0;
        for (key, segment) in VOLUME_SOURCES {
            let Some(src) = vol.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            if count > 0 {
                el.push(FieldError::forbidden(
                    &child(&p, segment),
                    "may not specify more than 1 volume type",
                ));
                continue;
            }
            count += 1;
            let sp = child(&p, key);
            match key {
                "hostPath" if str_of(src, "path").is_empty() => {
                    el.push(FieldError::required(&child(&sp, "path"), ""));
                }
                "persistentVolumeClaim" if str_of(src, "claimName").is_empty() => {
                    el.push(FieldError::required(&child(&sp, "claimName"), ""));
                }
                "secret" if str_of(src, "secretName").is_empty() => {
                    el.push(FieldError::required(&child(&sp, "secretName"), ""));
                }
                "configMap" if str_of(src, "name").is_empty() => {
                    el.push(FieldError::required(&child(&sp, "name"), ""));
                }
                _ => {}
            }
        }
        if count == 0 {
            el.push(FieldError::required(&p, "must specify a volume type"));
        }
        let name = str_of(vol, "name");
        let name_path = child(&p, "name");
        if name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            dns1123_label_field(&name_path, name, &mut el);
        }
        if names.contains(name) {
            el.push(FieldError::duplicate(&name_path, Value::from(name)));
        }
        if el.is_empty() {
            names.insert(name.to_string());
        } else {
            errs.extend(el);
        }
    }
    names
}

const SUPPORTED_PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// `validateContainerPorts`.
fn validate_container_ports(ports: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid(&child(&p, "name"), Value::from(name), &m));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
            }
        }
        let container_port = int_of(port, "containerPort").unwrap_or(0);
        if container_port == 0 {
            errs.push(FieldError::required(&child(&p, "containerPort"), ""));
        } else if !is_valid_port_num(container_port) {
            errs.push(FieldError::invalid(
                &child(&p, "containerPort"),
                Value::from(container_port),
                PORT_RANGE_MSG,
            ));
        }
        let host_port = int_of(port, "hostPort").unwrap_or(0);
        if host_port != 0 && !is_valid_port_num(host_port) {
            errs.push(FieldError::invalid(
                &child(&p, "hostPort"),
                Value::from(host_port),
                PORT_RANGE_MSG,
            ));
        }
        protocol_field(&child(&p, "protocol"), str_of(port, "protocol"), errs);
    }
}

/// A required `protocol` of TCP, UDP or SCTP.
fn protocol_field(path: &str, protocol: &str, errs: &mut Vec<FieldError>) {
    if protocol.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !SUPPORTED_PROTOCOLS.contains(&protocol) {
        errs.push(FieldError::not_supported(
            path,
            Value::from(protocol),
            &SUPPORTED_PROTOCOLS,
        ));
    }
}

/// `IsRelaxedEnvVarName` (RelaxedEnvironmentVariableValidation is on by default in v1.32).
fn env_name_field(path: &str, name: &str, errs: &mut Vec<FieldError>) {
    if name.bytes().any(|c| !(0x20..0x7f).contains(&c) || c == b'=') || !name.is_ascii() {
        errs.push(FieldError::invalid(path, Value::from(name), RELAXED_ENV_MSG));
    }
}

const DOWNWARD_ENV_FIELDS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// The labels `ConvertDownwardAPIFieldLabel` accepts for v1 (besides subscripted labels/annotations).
const DOWNWARD_CONVERTIBLE: [&str; 15] = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
    "spec.host",
];
const RESOURCE_FIELD_REFS: [&str; 6] = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `ValidateEnv`.
fn validate_env(env: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, ev) in env.iter().enumerate() {
        let p = index(path, i);
        let name = str_of(ev, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&child(&p, "name"), ""));
        } else {
            env_name_field(&child(&p, "name"), name, errs);
        }
        let Some(from) = ev.get("valueFrom").filter(|v| !v.is_null()) else {
            continue;
        };
        let fp = child(&p, "valueFrom");
        let mut sources = 0;
        if let Some(fr) = from.get("fieldRef").filter(|v| !v.is_null()) {
            sources += 1;
            validate_field_ref(fr, &child(&fp, "fieldRef"), errs);
        }
        if let Some(rr) = from.get("resourceFieldRef").filter(|v| !v.is_null()) {
            sources += 1;
            let rp = child(&fp, "resourceFieldRef");
            let resource = str_of(rr, "resource");
            if resource.is_empty() {
                errs.push(FieldError::required(&child(&rp, "resource"), ""));
            } else if !RESOURCE_FIELD_REFS.contains(&resource)
                && !resource.starts_with("requests.hugepages-")
                && !resource.starts_with("limits.hugepages-")
            {
                errs.push(FieldError::not_supported(
                    &child(&rp, "resource"),
                    Value::from(resource),
                    &RESOURCE_FIELD_REFS,
                ));
            }
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(kr) = from.get(key).filter(|v| !v.is_null()) {
                sources += 1;
                let kp = child(&fp, key);
                let ref_name = str_of(kr, "name");
                for m in is_dns1123_subdomain(ref_name) {
                    errs.push(FieldError::invalid(&child(&kp, "name"), Value::from(ref_name), &m));
                }
                let k = str_of(kr, "key");
                if k.is_empty() {
                    errs.push(FieldError::required(&child(&kp, "key"), ""));
                } else {
                    for m in is_config_map_key(k) {
                        errs.push(FieldError::invalid(&child(&kp, "key"), Value::from(k), &m));
                    }
                }
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &fp,
                Value::from(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !str_of(ev, "value").is_empty() {
            errs.push(FieldError::invalid(
                &fp,
                Value::from(""),
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &fp,
                Value::from(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `validateObjectFieldSelector` for env vars.
fn validate_field_ref(fr: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if str_of(fr, "apiVersion").is_empty() {
        errs.push(FieldError::required(&child(path, "apiVersion"), ""));
        return;
    }
    let field_path = str_of(fr, "fieldPath");
    if field_path.is_empty() {
        errs.push(FieldError::required(&child(path, "fieldPath"), ""));
        return;
    }
    let subscripted = ["metadata.labels[", "metadata.annotations["]
        .iter()
        .any(|p| field_path.starts_with(p) && field_path.ends_with(']'));
    if subscripted {
        return;
    }
    if !DOWNWARD_CONVERTIBLE.contains(&field_path) {
        errs.push(FieldError::invalid(
            &child(path, "fieldPath"),
            Value::from(field_path),
            &format!("error converting fieldPath: field label not supported: {field_path}"),
        ));
        return;
    }
    let internal = if field_path == "spec.host" {
        "spec.nodeName"
    } else {
        field_path
    };
    if !DOWNWARD_ENV_FIELDS.contains(&internal) {
        errs.push(FieldError::not_supported(
            &child(path, "fieldPath"),
            Value::from(internal),
            &DOWNWARD_ENV_FIELDS,
        ));
    }
}

/// `ValidateEnvFrom`.
fn validate_env_from(env_from: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, ev) in env_from.iter().enumerate() {
        let p = index(path, i);
        let prefix = str_of(ev, "prefix");
        if !prefix.is_empty() {
            env_name_field(&child(&p, "prefix"), prefix, errs);
        }
        let mut sources = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = ev.get(key).filter(|v| !v.is_null()) {
                sources += 1;
                let np = child(&child(&p, key), "name");
                let name = str_of(r, "name");
                if name.is_empty() {
                    errs.push(FieldError::required(&np, ""));
                } else {
                    for m in name_errors(NameCheck::Subdomain, name, true) {
                        errs.push(FieldError::invalid(&np, Value::from(name), &m));
                    }
                }
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                path,
                Value::from(""),
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                path,
                Value::from(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `ValidateVolumeMounts` (name, mount path, uniqueness).
fn validate_volume_mounts(mounts: &[Value], volumes: &BTreeSet<String>, path: &str, errs: &mut Vec<FieldError>) {
    let mut paths = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = index(path, i);
        let name = str_of(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&child(&p, "name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::not_found(&child(&p, "name"), Value::from(name)));
        }
        let mount_path = str_of(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(&child(&p, "mountPath"), ""));
        }
        if !paths.insert(mount_path) {
            errs.push(FieldError::invalid(
                &child(&p, "mountPath"),
                Value::from(mount_path),
                "must be unique",
            ));
        }
        let sub_path_expr = str_of(m, "subPathExpr");
        if !sub_path_expr.is_empty() && !str_of(m, "subPath").is_empty() {
            errs.push(FieldError::invalid(
                &child(&p, "subPathExpr"),
                Value::from(sub_path_expr),
                "subPathExpr and subPath are mutually exclusive",
            ));
        }
    }
}

/// Resource names a container may request without a domain prefix (`IsStandardContainerResourceName`).
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// `IsStandardResourceName`: what a resource list may name without a domain prefix.
fn is_standard_resource(name: &str) -> bool {
    const STANDARD: [&str; 19] = [
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "requests.storage",
        "services.nodeports",
        "services.loadbalancers",
    ];
    STANDARD.contains(&name) || name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// `IsNativeResource`: unprefixed or `kubernetes.io/`-prefixed.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `IsOvercommitAllowed`: native resources other than huge pages may request less than their limit.
fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !name.starts_with("hugepages-")
}

/// `validateContainerResourceName`.
fn container_resource_name(name: &str, path: &str, errs: &mut Vec<FieldError>) {
    let before = errs.len();
    qualified_name_field(path, name, errs);
    if errs.len() > before {
        return;
    }
    if !name.contains('/') {
        if !is_standard_resource(name) {
            errs.push(FieldError::invalid(
                path,
                Value::from(name),
                "must be a standard resource type or fully qualified",
            ));
        }
        if !is_standard_container_resource(name) {
            errs.push(FieldError::invalid(
                path,
                Value::from(name),
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_qualified_name(&format!("requests.{name}")).is_empty() {
        errs.push(FieldError::invalid(
            path,
            Value::from(name),
            "doesn't follow extended resource name standard",
        ));
    }
}

/// `ValidateContainerResourceRequirements`: names, non-negative quantities, requests at most limits.
fn validate_resources(resources: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let limits = map_of(resources, "limits");
    for (name, q) in sorted_entries(limits) {
        let p = keyed(&lim_path, name);
        container_resource_name(name, &p, errs);
        negative_quantity(&p, q, errs);
    }
    for (name, q) in sorted_entries(map_of(resources, "requests")) {
        let p = keyed(&req_path, name);
        container_resource_name(name, &p, errs);
        negative_quantity(&p, q, errs);
        match limits.and_then(|l| l.get(name)) {
            Some(limit) => {
                let (Some(req), Some(lim)) = (quantity_value(q), quantity_value(limit)) else {
                    continue;
                };
                let ord = req.cmp(&lim);
                if ord != Ordering::Equal && !is_overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        Value::from(scalar_text(q)),
                        &format!("must be equal to {name} limit of {}", scalar_text(limit)),
                    ));
                } else if ord == Ordering::Greater {
                    errs.push(FieldError::invalid(
                        &req_path,
                        Value::from(scalar_text(q)),
                        &format!("must be less than or equal to {name} limit of {}", scalar_text(limit)),
                    ));
                }
            }
            None => {
                if !is_overcommit_allowed(name) {
                    errs.push(FieldError::required(
                        &lim_path,
                        "Limit must be set for non overcommitable resources",
                    ));
                }
            }
        }
    }
}

/// `ValidateNonnegativeQuantity`: the value is printed as the quantity's string.
fn negative_quantity(path: &str, q: &Value, errs: &mut Vec<FieldError>) {
    if quantity_value(q).is_some_and(|d| d.m < 0) {
        errs.push(FieldError::invalid(path, Value::from(scalar_text(q)), NONNEGATIVE_MSG));
    }
}

/// Probe and lifecycle handler kinds, in the order `validateHandler` checks them.
const PROBE_HANDLERS: [&str; 4] = ["exec", "httpGet", "tcpSocket", "grpc"];
const LIFECYCLE_HANDLERS: [&str; 4] = ["exec", "httpGet", "tcpSocket", "sleep"];

/// `validateHandler`: exactly one handler, each well-formed.
fn validate_handler(h: &Value, kinds: &[&str], grace: Option<i64>, path: &str, errs: &mut Vec<FieldError>) {
    let mut count = 0;
    for kind in kinds {
        let Some(x) = h.get(*kind).filter(|v| !v.is_null()) else {
            continue;
        };
        let p = child(path, kind);
        if count > 0 {
            errs.push(FieldError::forbidden(&p, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        match *kind {
            "exec" => {
                if list_of(x, "command").is_empty() {
                    errs.push(FieldError::required(&child(&p, "command"), ""));
                }
            }
            "httpGet" => {
                if str_of(x, "path").is_empty() {
                    errs.push(FieldError::required(&child(&p, "path"), ""));
                }
                validate_port_num_or_name(&child(&p, "port"), x.get("port"), errs);
                let scheme = str_of(x, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    errs.push(FieldError::not_supported(
                        &child(&p, "scheme"),
                        Value::from(scheme),
                        &["HTTP", "HTTPS"],
                    ));
                }
                for header in list_of(x, "httpHeaders") {
                    let name = str_of(header, "name");
                    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                        errs.push(FieldError::invalid(
                            &child(&p, "httpHeaders"),
                            Value::from(name),
                            HTTP_HEADER_MSG,
                        ));
                    }
                }
            }
            "tcpSocket" => validate_port_num_or_name(&child(&p, "port"), x.get("port"), errs),
            "grpc" => {
                let port = int_of(x, "port").unwrap_or(0);
                if !is_valid_port_num(port) {
                    errs.push(FieldError::invalid(
                        &child(&p, "port"),
                        Value::from(port),
                        PORT_RANGE_MSG,
                    ));
                }
            }
            _ => {
                let seconds = int_of(x, "seconds").unwrap_or(0);
                if let Some(g) = grace
                    && (seconds <= 0 || seconds > g)
                {
                    errs.push(FieldError::invalid(
                        &p,
                        Value::from(seconds),
                        &format!(
                            "must be greater than 0 and less than terminationGracePeriodSeconds ({g}). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."
                        ),
                    ));
                }
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

/// `validateLivenessProbe` / `validateReadinessProbe` / `validateStartupProbe`.
fn validate_probe(kind: &str, probe: Option<&Value>, grace: Option<i64>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(probe) = probe.filter(|v| !v.is_null()) else {
        return;
    };
    validate_handler(probe, &PROBE_HANDLERS, grace, path, errs);
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(&child(path, f), int_of(probe, f), errs);
    }
    let tgp = int_of(probe, "terminationGracePeriodSeconds");
    if let Some(t) = tgp
        && t <= 0
    {
        errs.push(FieldError::invalid(
            &child(path, "terminationGracePeriodSeconds"),
            Value::from(t),
            "must be greater than 0",
        ));
    }
    match kind {
        "readinessProbe" => {
            if let Some(t) = tgp {
                errs.push(FieldError::invalid(
                    &child(path, "terminationGracePeriodSeconds"),
                    Value::from(t),
                    "must not be set for readinessProbes",
                ));
            }
        }
        _ => {
            let st = int_of(probe, "successThreshold").unwrap_or(0);
            if st != 1 {
                errs.push(FieldError::invalid(
                    &child(path, "successThreshold"),
                    Value::from(st),
                    "must be 1",
                ));
            }
        }
    }
}

/// `validateLifecycle`.
fn validate_lifecycle(lc: &Value, grace: Option<i64>, path: &str, errs: &mut Vec<FieldError>) {
    for hook in ["postStart", "preStop"] {
        if let Some(h) = lc.get(hook).filter(|v| !v.is_null()) {
            validate_handler(h, &LIFECYCLE_HANDLERS, grace, &child(path, hook), errs);
        }
    }
}

/// `validateContainerCommon`: what regular, init and ephemeral containers share.
fn validate_container_common(c: &Value, volumes: &BTreeSet<String>, path: &str, errs: &mut Vec<FieldError>) {
    let name = str_of(c, "name");
    let name_path = child(path, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        dns1123_label_field(&name_path, name, errs);
    }
    if str_of(c, "image").is_empty() {
        errs.push(FieldError::required(&child(path, "image"), ""));
    }
    let tmp = str_of(c, "terminationMessagePolicy");
    match tmp {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(&child(path, "terminationMessagePolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &child(path, "terminationMessagePolicy"),
            Value::from(other),
            &["File", "FallbackToLogsOnError"],
        )),
    }
    validate_container_ports(list_of(c, "ports"), &child(path, "ports"), errs);
    validate_env(list_of(c, "env"), &child(path, "env"), errs);
    validate_env_from(list_of(c, "envFrom"), &child(path, "envFrom"), errs);
    validate_volume_mounts(list_of(c, "volumeMounts"), volumes, &child(path, "volumeMounts"), errs);
    match str_of(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(&child(path, "imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &child(path, "imagePullPolicy"),
            Value::from(other),
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    validate_resources(field_of(c, "resources"), &child(path, "resources"), errs);
}

/// `checkHostPortConflicts` across a list of containers.
fn host_port_conflicts(containers: &[Value], path: &str, seen: &mut BTreeSet<String>, errs: &mut Vec<FieldError>) {
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in list_of(c, "ports").iter().enumerate() {
            let host_port = int_of(port, "hostPort").unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!("{}/{}/{host_port}", str_of(port, "protocol"), str_of(port, "hostIP"));
            if !seen.insert(key.clone()) {
                let p = child(&index(&child(&index(path, ci), "ports"), pi), "hostPort");
                errs.push(FieldError::duplicate(&p, Value::from(key)));
            }
        }
    }
}

/// `validateContainers`: the regular containers of a PodSpec.
fn validate_containers(
    containers: &[Value],
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if containers.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = index(path, i);
        validate_container_common(c, volumes, &p, errs);
        let name = str_of(c, "name");
        if !names.insert(name) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        }
        if let Some(lc) = c.get("lifecycle").filter(|v| !v.is_null()) {
            validate_lifecycle(lc, grace, &child(&p, "lifecycle"), errs);
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            validate_probe(probe, c.get(probe), grace, &child(&p, probe), errs);
        }
        if !is_unset(c.get("restartPolicy")) {
            errs.push(FieldError::forbidden(
                &child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    host_port_conflicts(containers, path, &mut BTreeSet::new(), errs);
}

/// `validateInitContainers`.
fn validate_init_containers(
    inits: &[Value],
    regular: &[Value],
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut names: BTreeSet<&str> = regular.iter().map(|c| str_of(c, "name")).collect();
    for (i, c) in inits.iter().enumerate() {
        let p = index(path, i);
        validate_container_common(c, volumes, &p, errs);
        let mut restart_always = false;
        if let Some(rp) = c.get("restartPolicy").filter(|v| !v.is_null()) {
            let rp = scalar_text(rp);
            if rp == "Always" {
                restart_always = true;
            } else {
                errs.push(FieldError::not_supported(
                    &child(&p, "restartPolicy"),
                    Value::from(rp),
                    &["Always"],
                ));
            }
        }
        let name = str_of(c, "name");
        if names.contains(name) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        } else if !name.is_empty() {
            names.insert(name);
        }
        host_port_conflicts(std::slice::from_ref(c), path, &mut BTreeSet::new(), errs);
        if restart_always {
            if let Some(lc) = c.get("lifecycle").filter(|v| !v.is_null()) {
                validate_lifecycle(lc, grace, &child(&p, "lifecycle"), errs);
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                validate_probe(probe, c.get(probe), grace, &child(&p, probe), errs);
            }
        } else {
            for f in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
                if !is_unset(c.get(f)) {
                    errs.push(FieldError::forbidden(
                        &child(&p, f),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// `ValidateTolerations`.
fn validate_tolerations(tolerations: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let key = str_of(t, "key");
        let op = str_of(t, "operator");
        let effect = str_of(t, "effect");
        let value = str_of(t, "value");
        if !key.is_empty() {
            qualified_name_field(&child(&p, "key"), key, errs);
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &child(&p, "operator"),
                Value::from(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if !is_unset(t.get("tolerationSeconds")) && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &child(&p, "effect"),
                Value::from(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        &child(&p, "operator"),
                        Value::from(value),
                        &msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &child(&p, "operator"),
                        Value::from(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &child(&p, "operator"),
                Value::from(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            taint_effect(&child(&p, "effect"), effect, errs);
        }
    }
}

/// `validateTaintEffect` for a non-empty effect.
fn taint_effect(path: &str, effect: &str, errs: &mut Vec<FieldError>) {
    const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if !EFFECTS.contains(&effect) {
        errs.push(FieldError::not_supported(path, Value::from(effect), &EFFECTS));
    }
}

/// `validatePodDNSConfig`.
fn validate_dns_config(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let cfg = spec.get("dnsConfig").filter(|v| !v.is_null());
    if str_of(spec, "dnsPolicy") == "None" {
        match cfg {
            None => {
                errs.push(FieldError::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if list_of(c, "nameservers").is_empty() => {
                errs.push(FieldError::required(
                    &child(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else {
        return;
    };
    let nameservers = list_of(cfg, "nameservers");
    if nameservers.len() > 3 {
        errs.push(FieldError::invalid(
            &child(path, "nameservers"),
            field_of(cfg, "nameservers").clone(),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        validate_ip(&index(&child(path, "nameservers"), i), &scalar_text(ns), errs);
    }
    let searches = list_of(cfg, "searches");
    if searches.len() > 32 {
        errs.push(FieldError::invalid(
            &child(path, "searches"),
            field_of(cfg, "searches").clone(),
            "must not have more than 32 search paths",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = scalar_text(s);
        dns1123_subdomain_field(&index(&child(path, "searches"), i), s.trim_end_matches('.'), errs);
    }
    for (i, o) in list_of(cfg, "options").iter().enumerate() {
        if str_of(o, "name").is_empty() {
            errs.push(FieldError::required(
                &index(&child(path, "options"), i),
                "must not be empty",
            ));
        }
    }
}

/// `validateTopologySpreadConstraints` (the scalar parts).
fn validate_topology_spread(constraints: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, c) in constraints.iter().enumerate() {
        let p = index(path, i);
        let skew = int_of(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(FieldError::invalid(
                &child(&p, "maxSkew"),
                Value::from(skew),
                "must be greater than zero",
            ));
        }
        if str_of(c, "topologyKey").is_empty() {
            errs.push(FieldError::required(&child(&p, "topologyKey"), "can not be empty"));
        }
        let wu = str_of(c, "whenUnsatisfiable");
        if wu != "DoNotSchedule" && wu != "ScheduleAnyway" {
            errs.push(FieldError::not_supported(
                &child(&p, "whenUnsatisfiable"),
                Value::from(wu),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if let Some(sel) = c.get("labelSelector") {
            validate_label_selector(sel, &child(&p, "labelSelector"), errs);
        }
    }
}

/// `ValidatePodSpec`.
fn validate_pod_spec(spec: &Value, path: &str, opts: PodOpts, errs: &mut Vec<FieldError>) {
    let grace = int_of(spec, "terminationGracePeriodSeconds");
    if is_unset(spec.get("terminationGracePeriodSeconds")) {
        errs.push(FieldError::required(&child(path, "terminationGracePeriodSeconds"), ""));
    }
    let volumes = validate_volumes(list_of(spec, "volumes"), &child(path, "volumes"), errs);
    let containers = list_of(spec, "containers");
    validate_containers(containers, &volumes, grace, &child(path, "containers"), errs);
    validate_init_containers(
        list_of(spec, "initContainers"),
        containers,
        &volumes,
        grace,
        &child(path, "initContainers"),
        errs,
    );
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for (i, c) in containers.iter().enumerate() {
            for (j, port) in list_of(c, "ports").iter().enumerate() {
                let hp = int_of(port, "hostPort").unwrap_or(0);
                let cp = int_of(port, "containerPort").unwrap_or(0);
                if (opts.is_pod || hp != 0) && hp != cp {
                    let p = child(
                        &index(&child(&index(&child(path, "containers"), i), "ports"), j),
                        "hostPort",
                    );
                    errs.push(FieldError::invalid(
                        &p,
                        Value::from(hp),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    match str_of(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(&child(path, "restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &child(path, "restartPolicy"),
            Value::from(other),
            &["Always", "OnFailure", "Never"],
        )),
    }
    match str_of(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(&child(path, "dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &child(path, "dnsPolicy"),
            Value::from(other),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    validate_labels(map_of(spec, "nodeSelector"), &child(path, "nodeSelector"), errs);
    for (i, s) in list_of(spec, "imagePullSecrets").iter().enumerate() {
        if s.as_object().is_some_and(|m| m.keys().any(|k| k != "name")) {
            errs.push(FieldError::invalid_go(
                &index(&child(path, "imagePullSecrets"), i),
                s.clone(),
                format!("core.LocalObjectReference{{Name:{}}}", go_quote(str_of(s, "name"))),
                "only name may be set",
            ));
        }
    }
    validate_dns_config(spec, &child(path, "dnsConfig"), errs);
    for (i, g) in list_of(spec, "readinessGates").iter().enumerate() {
        qualified_name_field(
            &child(&index(&child(path, "readinessGates"), i), "conditionType"),
            str_of(g, "conditionType"),
            errs,
        );
    }
    let mut gates = BTreeSet::new();
    for (i, g) in list_of(spec, "schedulingGates").iter().enumerate() {
        let p = index(&child(path, "schedulingGates"), i);
        let name = str_of(g, "name");
        qualified_name_field(&p, name, errs);
        if !gates.insert(name) {
            errs.push(FieldError::duplicate(&p, Value::from(name)));
        }
    }
    validate_topology_spread(
        list_of(spec, "topologySpreadConstraints"),
        &child(path, "topologySpreadConstraints"),
        errs,
    );
    for (field, check) in [("serviceAccountName", true), ("nodeName", true)] {
        let v = str_of(spec, field);
        if check && !v.is_empty() {
            dns1123_subdomain_field(&child(path, field), v, errs);
        }
    }
    if let Some(ads) = int_of(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            &child(path, "activeDeadlineSeconds"),
            Value::from(ads),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for field in ["hostname", "subdomain"] {
        let v = str_of(spec, field);
        if !v.is_empty() {
            dns1123_label_field(&child(path, field), v, errs);
        }
    }
    validate_tolerations(list_of(spec, "tolerations"), &child(path, "tolerations"), errs);
    for (i, alias) in list_of(spec, "hostAliases").iter().enumerate() {
        let p = index(&child(path, "hostAliases"), i);
        validate_ip(&child(&p, "ip"), str_of(alias, "ip"), errs);
        for (j, h) in list_of(alias, "hostnames").iter().enumerate() {
            dns1123_subdomain_field(&index(&child(&p, "hostnames"), j), &scalar_text(h), errs);
        }
    }
    let pcn = str_of(spec, "priorityClassName");
    if !pcn.is_empty() {
        dns1123_subdomain_field(&child(path, "priorityClassName"), pcn, errs);
    }
    if let Some(rc) = spec.get("runtimeClassName").and_then(Value::as_str) {
        dns1123_subdomain_field(&child(path, "runtimeClassName"), rc, errs);
    }
    if let Some(pp) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(&child(path, "preemptionPolicy"), "")),
            other => errs.push(FieldError::not_supported(
                &child(path, "preemptionPolicy"),
                Value::from(other),
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(os) = spec.get("os").filter(|v| !v.is_null()) {
        match str_of(os, "name") {
            "" => errs.push(FieldError::required(
                &child(&child(path, "os"), "name"),
                "cannot be empty",
            )),
            "linux" | "windows" => {}
            other => errs.push(FieldError::not_supported(
                &child(path, "os"),
                Value::from(other),
                &["linux", "windows"],
            )),
        }
    }
}

/// `ValidatePodTemplateSpec`: a workload's pod template (`ResourceIsPod` false).
fn validate_pod_template(template: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let meta = field_of(template, "metadata");
    validate_labels(map_of(meta, "labels"), &child(path, "labels"), errs);
    validate_annotations(map_of(meta, "annotations"), &child(path, "annotations"), errs);
    let spec = field_of(template, "spec");
    validate_pod_spec(spec, &child(path, "spec"), PodOpts { is_pod: false }, errs);
    if !list_of(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            &child(&child(path, "spec"), "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `ValidatePodCreate` minus ObjectMeta.
fn validate_pod(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    validate_pod_spec(spec, "spec", PodOpts { is_pod: true }, errs);
    for list in ["containers", "initContainers"] {
        for (i, c) in list_of(spec, list).iter().enumerate() {
            let image = str_of(c, "image");
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    &child(&index(&child("spec", list), i), "image"),
                    Value::from(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
}

/// `ValidatePodCreate`'s create-only checks.
fn validate_pod_create(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    if !list_of(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    if !str_of(spec, "nodeName").is_empty() && !list_of(spec, "schedulingGates").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
}

/// The fields `ValidatePodUpdate` lets an update change, as its Forbidden message lists them.
const POD_UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`'s update rules: only images, `activeDeadlineSeconds` (down), tolerations (additions),
/// scheduling gates (removals) and, for gated pods, node selector additions may change.
fn validate_pod_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let old_spec = field_of(old, "spec");
    let new_spec = field_of(new, "spec");
    for list in ["containers", "initContainers"] {
        let (n, o) = (list_of(new_spec, list), list_of(old_spec, list));
        let p = child("spec", list);
        if n.len() != o.len() {
            errs.push(FieldError::forbidden(
                &p,
                "pod updates may not add or remove containers",
            ));
            return;
        }
        for (i, c) in n.iter().enumerate() {
            let image = str_of(c, "image");
            if image.is_empty() {
                errs.push(FieldError::required(&child(&index(&p, i), "image"), ""));
            }
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    &child(&index(&p, i), "image"),
                    Value::from(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    let ads_path = "spec.activeDeadlineSeconds";
    match (
        int_of(new_spec, "activeDeadlineSeconds"),
        int_of(old_spec, "activeDeadlineSeconds"),
    ) {
        (Some(n), old_ads) => {
            if !(0..=i64::from(i32::MAX)).contains(&n) {
                errs.push(FieldError::invalid(
                    ads_path,
                    Value::from(n),
                    "must be between 0 and 2147483647, inclusive",
                ));
                return;
            }
            if old_ads.is_some_and(|o| o < n) {
                errs.push(FieldError::invalid(
                    ads_path,
                    Value::from(n),
                    "must be less than or equal to previous value",
                ));
                return;
            }
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(
                ads_path,
                Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        (None, None) => {}
    }
    let new_tols = list_of(new_spec, "tolerations");
    let strip = |t: &Value| {
        let mut t = normalize(t);
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let kept = list_of(old_spec, "tolerations")
        .iter()
        .all(|o| new_tols.iter().any(|n| strip(n) == strip(o)));
    if !kept {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let old_gates: BTreeSet<&str> = list_of(old_spec, "schedulingGates")
        .iter()
        .map(|g| str_of(g, "name"))
        .collect();
    for (i, g) in list_of(new_spec, "schedulingGates").iter().enumerate() {
        let name = str_of(g, "name");
        if !old_gates.contains(name) {
            errs.push(FieldError::forbidden(
                &child(&index("spec.schedulingGates", i), "name"),
                &format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }
    if sem_eq(new_spec, old_spec) {
        return;
    }
    let mut munged = new_spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for (c, o) in cs.iter_mut().zip(list_of(old_spec, list)) {
                    if let Some(c) = c.as_object_mut() {
                        c.insert("image".into(), field_of(o, "image").clone());
                    }
                }
            }
        }
        for f in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            m.insert(f.into(), field_of(old_spec, f).clone());
        }
        let old_tgp = int_of(old_spec, "terminationGracePeriodSeconds");
        if old_tgp.is_some_and(|t| t < 0) && int_of(new_spec, "terminationGracePeriodSeconds") == Some(1) {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                field_of(old_spec, "terminationGracePeriodSeconds").clone(),
            );
        }
        // Binding goes through this path in Keel: an unbound pod may get its node.
        if str_of(old_spec, "nodeName").is_empty() {
            m.insert("nodeName".into(), field_of(old_spec, "nodeName").clone());
        }
        if !list_of(old_spec, "schedulingGates").is_empty() {
            let old_sel = map_of(old_spec, "nodeSelector");
            let new_sel = map_of(new_spec, "nodeSelector");
            let kept = old_sel
                .into_iter()
                .flatten()
                .all(|(k, v)| new_sel.and_then(|n| n.get(k)) == Some(v));
            if !kept {
                errs.push(FieldError::invalid(
                    "spec.nodeSelector",
                    field_of(new_spec, "nodeSelector").clone(),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                ));
            }
            m.insert("nodeSelector".into(), field_of(old_spec, "nodeSelector").clone());
            let old_na = old_spec
                .pointer("/affinity/nodeAffinity")
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(aff) = m.get_mut("affinity").and_then(Value::as_object_mut) {
                aff.insert("nodeAffinity".into(), old_na);
            } else if !old_na.is_null() {
                m.insert("affinity".into(), serde_json::json!({ "nodeAffinity": old_na }));
            }
        }
    }
    if !sem_eq(&munged, old_spec) {
        errs.push(FieldError::forbidden(
            "spec",
            &format!(
                "pod updates may not change fields other than {POD_UPDATABLE_FIELDS}\n{}",
                spec_diff("core.PodSpec", old_spec, &munged)
            ),
        ));
    }
}

/// A `cmp.Diff`-like rendering of the top-level fields that differ (Kubernetes appends `cmp.Diff`'s output, whose
/// exact spacing is deliberately unstable).
fn spec_diff(type_name: &str, old: &Value, new: &Value) -> String {
    let (o, n) = (normalize(old), normalize(new));
    let empty = Map::new();
    let om = o.as_object().unwrap_or(&empty);
    let nm = n.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = format!("  {type_name}{{\n");
    for k in keys {
        let (a, b) = (om.get(k), nm.get(k));
        if a == b {
            continue;
        }
        let mut chars = k.chars();
        let go_name: String = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
            .collect();
        if let Some(a) = a {
            out.push_str(&format!("- \t{go_name}: {a},\n"));
        }
        if let Some(b) = b {
            out.push_str(&format!("+ \t{go_name}: {b},\n"));
        }
    }
    out.push_str("  }\n");
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Workloads (pkg/apis/apps/validation)
// ---------------------------------------------------------------------------------------------------------------

/// The template labels as `field.Invalid` prints them with `` `selector` does not match template `labels` ``.
fn selector_mismatch(template: &Value, path: &str) -> FieldError {
    let labels = template.pointer("/metadata/labels").cloned().unwrap_or(Value::Null);
    FieldError::invalid_go(
        path,
        labels.clone(),
        go_string_map(Some(&labels).filter(|l| !l.is_null())),
        "`selector` does not match template `labels`",
    )
}

/// Whether the template's labels satisfy a selector (`LabelSelectorAsSelector` then `Matches`; `skip_empty` for the
/// callers that only compare when `!selector.Empty()`). `None` when the selector does not convert.
fn template_matches(sel: &Value, template: &Value, skip_empty: bool) -> Option<bool> {
    let s = LabelSelector::from_object(sel).ok()?;
    if skip_empty && s.is_empty() {
        return Some(true);
    }
    Some(s.matches_object(template))
}

/// The `spec.selector` checks of Deployments, ReplicaSets and StatefulSets: required, valid and non-empty.
fn required_selector(spec: &Value, kind_word: &str, errs: &mut Vec<FieldError>) {
    let sel = field_of(spec, "selector");
    if sel.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        validate_label_selector(sel, "spec.selector", errs);
        if selector_is_empty(sel) {
            errs.push(FieldError::invalid_go(
                "spec.selector",
                sel.clone(),
                go_label_selector(sel),
                &format!("empty selector is invalid for {kind_word}"),
            ));
        }
    }
}

/// `ValidateDeploymentSpec` / `ValidateReplicaSetSpec`'s selector and `ValidatePodTemplateSpecForReplicaSet`.
fn validate_replica_set_like(spec: &Value, errs: &mut Vec<FieldError>) {
    required_selector(spec, "deployment", errs);
    let sel = field_of(spec, "selector");
    let template = field_of(spec, "template");
    match template_matches(sel, template, true) {
        None => errs.push(FieldError::invalid_go(
            "spec.selector",
            sel.clone(),
            go_label_selector(sel),
            "invalid label selector",
        )),
        Some(matches) => {
            if !matches {
                errs.push(selector_mismatch(template, "spec.template.metadata.labels"));
            }
            validate_pod_template(template, "spec.template", errs);
            workload_restart_policy(template, "ReplicaSet", errs);
        }
    }
}

/// Workload templates must restart `Always` and have no `activeDeadlineSeconds`.
fn workload_restart_policy(template: &Value, kind: &str, errs: &mut Vec<FieldError>) {
    let spec = field_of(template, "spec");
    let rp = str_of(spec, "restartPolicy");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            Value::from(rp),
            &["Always"],
        ));
    }
    if !is_unset(spec.get("activeDeadlineSeconds")) {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// `ValidateDeploymentSpec`.
fn validate_deployment(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    nonnegative("spec.replicas", int_of(spec, "replicas"), errs);
    validate_replica_set_like(spec, errs);
    let strategy = field_of(spec, "strategy");
    let ru = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    match str_of(strategy, "type") {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                let mu_path = "spec.strategy.rollingUpdate.maxUnavailable";
                validate_int_or_percent(mu_path, mu, errs);
                validate_int_or_percent("spec.strategy.rollingUpdate.maxSurge", ms, errs);
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    errs.push(FieldError::invalid_go(
                        mu_path,
                        mu.cloned().unwrap_or(Value::Null),
                        go_int_or_string(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(mu_path, mu, errs);
            }
        },
        other => errs.push(FieldError {
            go_value: Some(format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                go_pointer(ru, "apps.RollingUpdateDeployment")
            )),
            ..FieldError::not_supported("spec.strategy", strategy.clone(), &["Recreate", "RollingUpdate"])
        }),
    }
    let min_ready = int_of(spec, "minReadySeconds");
    nonnegative("spec.minReadySeconds", min_ready, errs);
    nonnegative("spec.revisionHistoryLimit", int_of(spec, "revisionHistoryLimit"), errs);
    if let Some(pds) = int_of(spec, "progressDeadlineSeconds") {
        nonnegative("spec.progressDeadlineSeconds", Some(pds), errs);
        if pds <= min_ready.unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                Value::from(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

/// `ValidateReplicaSetSpec`.
fn validate_replica_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    nonnegative("spec.replicas", int_of(spec, "replicas"), errs);
    nonnegative("spec.minReadySeconds", int_of(spec, "minReadySeconds"), errs);
    validate_replica_set_like(spec, errs);
}

/// `ValidateDaemonSetSpec`.
fn validate_daemon_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    let sel = field_of(spec, "selector");
    let template = field_of(spec, "template");
    validate_label_selector(sel, "spec.selector", errs);
    if template_matches(sel, template, false) == Some(false) {
        errs.push(selector_mismatch(template, "spec.template.metadata.labels"));
    }
    if !sel.is_null() && selector_is_empty(sel) {
        errs.push(FieldError::invalid_go(
            "spec.selector",
            sel.clone(),
            go_label_selector(sel),
            "empty selector is invalid for daemonset",
        ));
    }
    validate_pod_template(template, "spec.template", errs);
    workload_restart_policy(template, "DaemonSet", errs);
    nonnegative("spec.minReadySeconds", int_of(spec, "minReadySeconds"), errs);
    let strategy = field_of(spec, "updateStrategy");
    let ru = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    match str_of(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match ru {
            None => errs.push(FieldError::required("spec.updateStrategy.rollingUpdate", "")),
            Some(ru) => {
                let (mu, ms) = (ru.get("maxUnavailable"), ru.get("maxSurge"));
                let mu_path = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                let ms_path = "spec.updateStrategy.rollingUpdate.maxSurge";
                validate_int_or_percent(mu_path, mu, errs);
                validate_int_or_percent(ms_path, ms, errs);
                not_more_than_100_percent(mu_path, mu, errs);
                not_more_than_100_percent(ms_path, ms, errs);
                let (has_mu, has_ms) = (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0);
                if has_mu && has_ms {
                    errs.push(FieldError::invalid_go(
                        ms_path,
                        ms.cloned().unwrap_or(Value::Null),
                        go_int_or_string(ms),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_mu && !has_ms {
                    errs.push(FieldError::required(mu_path, "cannot be 0 when maxSurge is 0"));
                }
            }
        },
        other => errs.push(FieldError {
            go_value: Some(format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                go_pointer(ru, "apps.RollingUpdateDaemonSet")
            )),
            ..FieldError::not_supported("spec.updateStrategy", strategy.clone(), &["RollingUpdate", "OnDelete"])
        }),
    }
    nonnegative("spec.revisionHistoryLimit", int_of(spec, "revisionHistoryLimit"), errs);
}

/// `ValidateStatefulSetSpec` (the pod template only gets label, annotation and selector checks, as in Kubernetes).
fn validate_stateful_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    match str_of(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            Value::from(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = field_of(spec, "updateStrategy");
    let ru = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    let go_ru = |ru: &Value| {
        format!(
            "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:{}}}",
            int_of(ru, "partition").unwrap_or(0),
            go_pointer(ru.get("maxUnavailable"), "intstr.IntOrString")
        )
    };
    match str_of(strategy, "type") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(ru) = ru {
                errs.push(FieldError::invalid_go(
                    "spec.updateStrategy.rollingUpdate",
                    ru.clone(),
                    go_ru(ru),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = ru {
                nonnegative(
                    "spec.updateStrategy.rollingUpdate.partition",
                    int_of(ru, "partition"),
                    errs,
                );
                let mu = ru.get("maxUnavailable").filter(|v| !v.is_null());
                if mu.is_some() {
                    let p = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                    validate_int_or_percent(p, mu, errs);
                    if int_or_percent_value(mu) == 0 {
                        errs.push(FieldError::invalid_go(
                            p,
                            mu.cloned().unwrap_or(Value::Null),
                            go_int_or_string(mu),
                            "cannot be 0",
                        ));
                    }
                    not_more_than_100_percent(p, mu, errs);
                }
            }
        }
        other => errs.push(FieldError::invalid_go(
            "spec.updateStrategy",
            strategy.clone(),
            format!(
                "apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                go_pointer(ru, "apps.RollingUpdateStatefulSetStrategy")
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = spec
        .get("persistentVolumeClaimRetentionPolicy")
        .filter(|v| !v.is_null())
    {
        for f in ["whenDeleted", "whenScaled"] {
            let v = str_of(policy, f);
            if v != "Retain" && v != "Delete" {
                errs.push(FieldError::not_supported(
                    &child("spec.persistentVolumeClaimRetentionPolicy", f),
                    Value::from(v),
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    nonnegative("spec.replicas", int_of(spec, "replicas"), errs);
    nonnegative("spec.minReadySeconds", int_of(spec, "minReadySeconds"), errs);
    if let Some(ordinals) = spec.get("ordinals").filter(|v| !v.is_null()) {
        nonnegative("spec.ordinals.start", int_of(ordinals, "start"), errs);
    }
    required_selector(spec, "statefulset", errs);
    let sel = field_of(spec, "selector");
    let template = field_of(spec, "template");
    match template_matches(sel, template, true) {
        None => errs.push(FieldError::invalid_go(
            "spec.selector",
            sel.clone(),
            go_label_selector(sel),
            "",
        )),
        Some(matches) => {
            if !matches {
                errs.push(selector_mismatch(template, "spec.template.metadata.labels"));
            }
            let meta = field_of(template, "metadata");
            validate_labels(map_of(meta, "labels"), "spec.template.labels", errs);
            validate_annotations(map_of(meta, "annotations"), "spec.template.annotations", errs);
        }
    }
    workload_restart_policy(template, "StatefulSet", errs);
}

/// `ValidateStatefulSetUpdate`: only replicas, ordinals, template, updateStrategy, the PVC retention policy and
/// minReadySeconds may change.
fn validate_stateful_set_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let old_spec = field_of(old, "spec");
    let mut munged = field_of(new, "spec").clone();
    if let Some(m) = munged.as_object_mut() {
        for f in [
            "replicas",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "ordinals",
            "persistentVolumeClaimRetentionPolicy",
        ] {
            m.insert(f.into(), field_of(old_spec, f).clone());
        }
    }
    if !sem_eq(&munged, old_spec) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Jobs (pkg/apis/batch/validation)
// ---------------------------------------------------------------------------------------------------------------

const JOB_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// `ValidateJobSpec` plus `ValidateJob`'s Indexed-hostname check; the caller checks the generated selector first.
fn validate_job(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(&child("spec", f), int_of(spec, f), errs);
    }
    if !is_unset(spec.get("maxFailedIndexes")) && is_unset(spec.get("backoffLimitPerIndex")) {
        errs.push(FieldError::required(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    if let Some(m) = mode {
        if m != "NonIndexed" && m != "Indexed" {
            errs.push(FieldError::not_supported(
                "spec.completionMode",
                Value::from(m),
                &["NonIndexed", "Indexed"],
            ));
        }
        if m == "Indexed" {
            if is_unset(spec.get("completions")) {
                errs.push(FieldError::required(
                    "spec.completions",
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = int_of(spec, "parallelism")
                && p > 100_000
            {
                errs.push(FieldError::invalid(
                    "spec.parallelism",
                    Value::from(p),
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
    }
    if mode.is_none_or(|m| m == "NonIndexed") {
        for f in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = int_of(spec, f) {
                errs.push(FieldError::invalid(
                    &child("spec", f),
                    Value::from(v),
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if !is_unset(spec.get("successPolicy")) && mode != Some("Indexed") {
        errs.push(FieldError::invalid_go(
            "spec.successPolicy",
            field_of(spec, "successPolicy").clone(),
            "batch.SuccessPolicy{...}".to_string(),
            "requires indexed completion mode",
        ));
    }
    if let Some(prp) = spec.get("podReplacementPolicy").and_then(Value::as_str)
        && prp != "Failed"
        && prp != "TerminatingOrFailed"
    {
        errs.push(FieldError::not_supported(
            "spec.podReplacementPolicy",
            Value::from(prp),
            &["Failed", "TerminatingOrFailed"],
        ));
    }
    let template = field_of(spec, "template");
    validate_pod_template(template, "spec.template", errs);
    let rp = template
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rp_path = "spec.template.spec.restartPolicy";
    if rp == "Always" || rp.is_empty() {
        errs.push(FieldError::required(rp_path, "valid values: \"OnFailure\", \"Never\""));
    } else if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            rp_path,
            Value::from(rp),
            &["OnFailure", "Never"],
        ));
    } else if !is_unset(spec.get("podFailurePolicy")) && rp != "Never" {
        errs.push(FieldError::invalid(
            rp_path,
            Value::from(rp),
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    let sel = field_of(spec, "selector");
    if sel.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        validate_label_selector(sel, "spec.selector", errs);
    }
    if template_matches(sel, template, false) == Some(false) {
        errs.push(selector_mismatch(template, "spec.template.metadata.labels"));
    }
    if mode == Some("Indexed")
        && let Some(c) = int_of(spec, "completions").filter(|c| *c > 0)
    {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let host = format!("{name}-{}", c - 1);
        if !is_dns1123_label(&host).is_empty() {
            errs.push(FieldError::invalid(
                "metadata.name",
                Value::from(name),
                &format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
}

/// `validateGeneratedSelector`: unless `manualSelector`, the template carries the generated labels and the selector
/// selects them.
fn validate_generated_selector(obj: &Value, prefixed: bool, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let sel = field_of(spec, "selector");
    if sel.is_null() {
        return;
    }
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let labels_value = spec
        .pointer("/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    let mut wanted = vec![(LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name)];
    if prefixed {
        wanted.extend([(JOB_CONTROLLER_UID, uid), (JOB_NAME, name)]);
    }
    for (key, want) in &wanted {
        let path = keyed("spec.template.metadata.labels", key);
        match labels_value.get(*key).map(scalar_text) {
            None => errs.push(FieldError::required(&path, &format!("must be '{want}'"))),
            Some(v) if v != *want => errs.push(FieldError::invalid_go(
                &path,
                labels_value.clone(),
                go_string_map(Some(&labels_value)),
                &format!("must be '{want}'"),
            )),
            Some(_) => {}
        }
    }
    let mut expected = Map::new();
    for (k, v) in wanted {
        expected.insert(k.to_string(), Value::from(v));
    }
    if let Ok(s) = LabelSelector::from_object(sel)
        && !s.matches(&expected)
    {
        errs.push(FieldError::invalid_go(
            "spec.selector",
            sel.clone(),
            go_label_selector(sel),
            "`selector` not auto-generated",
        ));
    }
}

/// `ValidateJobSpecUpdate`: the selector, the pod template (scheduling directives aside while suspended and never
/// started), completions (except an Indexed Job scaling with parallelism) and several policies are immutable.
fn validate_job_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (spec, old_spec) = (field_of(new, "spec"), field_of(old, "spec"));
    let completions = field_of(spec, "completions");
    if !sem_eq(completions, field_of(old_spec, "completions")) {
        let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
        if !indexed {
            immutable_field("spec.completions", completions, field_of(old_spec, "completions"), errs);
        } else if !completions.is_null() && int_of(spec, "completions") != int_of(spec, "parallelism") {
            errs.push(FieldError::invalid(
                "spec.completions",
                completions.clone(),
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    immutable_selector(
        "spec.selector",
        field_of(spec, "selector"),
        field_of(old_spec, "selector"),
        errs,
    );
    let mut old_template = field_of(old_spec, "template").clone();
    let template = field_of(spec, "template");
    let suspended = old_spec.get("suspend").and_then(Value::as_bool) == Some(true);
    let started = !is_unset(old.pointer("/status/startTime"));
    if suspended && !started {
        let new_na = template
            .pointer("/spec/affinity/nodeAffinity")
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(t) = old_template.as_object_mut() {
            let ot_spec = t.entry("spec").or_insert_with(|| Value::Object(Map::new()));
            if let Some(s) = ot_spec.as_object_mut() {
                for f in ["nodeSelector", "tolerations", "schedulingGates"] {
                    s.insert(f.into(), field_of(field_of(template, "spec"), f).clone());
                }
                let aff = s.entry("affinity").or_insert_with(|| Value::Object(Map::new()));
                if let Some(a) = aff.as_object_mut() {
                    a.insert("nodeAffinity".into(), new_na);
                }
            }
            let meta = t.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = meta.as_object_mut() {
                for f in ["labels", "annotations"] {
                    m.insert(
                        f.into(),
                        template
                            .pointer(&format!("/metadata/{f}"))
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
            }
        }
    }
    if !sem_eq(template, &old_template) {
        errs.push(FieldError::invalid_go(
            "spec.template",
            template.clone(),
            "core.PodTemplateSpec{...}".to_string(),
            IMMUTABLE_MSG,
        ));
    }
    immutable_field(
        "spec.completionMode",
        field_of(spec, "completionMode"),
        field_of(old_spec, "completionMode"),
        errs,
    );
    for (f, go) in [
        ("podFailurePolicy", "batch.PodFailurePolicy{...}"),
        ("successPolicy", "batch.SuccessPolicy{...}"),
    ] {
        if !sem_eq(field_of(spec, f), field_of(old_spec, f)) {
            errs.push(FieldError::invalid_go(
                &child("spec", f),
                field_of(spec, f).clone(),
                go.to_string(),
                IMMUTABLE_MSG,
            ));
        }
    }
    for f in ["backoffLimitPerIndex", "managedBy"] {
        immutable_field(&child("spec", f), field_of(spec, f), field_of(old_spec, f), errs);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------------------------------------------

/// `isHeadlessService`: `clusterIPs` is exactly `["None"]`.
fn is_headless(spec: &Value) -> bool {
    let ips = list_of(spec, "clusterIPs");
    ips.len() == 1 && ips[0].as_str() == Some("None")
}

/// `%#v` of the `core.ServicePort` key Kubernetes uses to find duplicate (protocol, port) pairs.
fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

/// `ValidateService`.
fn validate_service(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    let ty = str_of(spec, "type");
    let headless = is_headless(spec);
    let ports = list_of(spec, "ports");
    let cluster_ips = list_of(spec, "clusterIPs");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            cluster_ips[0].clone(),
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !cluster_ips.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !list_of(spec, "ipFamilies").is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if !is_unset(spec.get("ipFamilyPolicy")) {
                errs.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = str_of(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                dns1123_subdomain_field("spec.externalName", cname, errs);
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = str_of(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(&child(&p, "name"), ""));
        } else if !name.is_empty() {
            dns1123_label_field(&child(&p, "name"), name, errs);
            if !names.insert(name) {
                errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
            }
        }
        let num = int_of(port, "port").unwrap_or(0);
        if !is_valid_port_num(num) {
            errs.push(FieldError::invalid(
                &child(&p, "port"),
                Value::from(num),
                PORT_RANGE_MSG,
            ));
        }
        protocol_field(&child(&p, "protocol"), str_of(port, "protocol"), errs);
        validate_port_num_or_name(&child(&p, "targetPort"), port.get("targetPort"), errs);
        if let Some(ap) = port.get("appProtocol").and_then(Value::as_str) {
            qualified_name_field(&child(&p, "appProtocol"), ap, errs);
        }
    }
    if !is_unset(spec.get("selector")) {
        validate_labels(map_of(spec, "selector"), "spec.selector", errs);
    }
    let affinity = str_of(spec, "sessionAffinity");
    match affinity {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let cfg = spec.get("sessionAffinityConfig").filter(|v| !v.is_null());
            let client_ip = cfg.and_then(|c| c.get("clientIP")).filter(|v| !v.is_null());
            let timeout = client_ip.and_then(|c| c.get("timeoutSeconds")).filter(|v| !v.is_null());
            let detail = "when session affinity type is ClientIP";
            match (cfg, client_ip, timeout) {
                (None, _, _) => errs.push(FieldError::required("spec.sessionAffinityConfig", detail)),
                (_, None, _) => errs.push(FieldError::required("spec.sessionAffinityConfig.clientIP", detail)),
                (_, _, None) => {
                    errs.push(FieldError::required(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        detail,
                    ));
                }
                (_, _, Some(t)) => {
                    let t = t.as_i64().unwrap_or(0);
                    if t <= 0 || t > 86400 {
                        errs.push(FieldError::invalid(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            Value::from(t),
                            "must be greater than 0 and less than 86400",
                        ));
                    }
                }
            }
        }
        "None" => {
            if !is_unset(spec.get("sessionAffinityConfig")) {
                errs.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            Value::from(other),
            &["ClientIP", "None"],
        )),
    }
    if ty != "ExternalName" {
        validate_cluster_ips(spec, errs);
    }
    let external_ips = list_of(spec, "externalIPs");
    for (i, ip) in external_ips.iter().enumerate() {
        let p = index("spec.externalIPs", i);
        let ip = scalar_text(ip);
        if validate_ip(&p, &ip, errs) {
            validate_non_special_ip(&p, &ip, errs);
        }
    }
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if ty.is_empty() {
        errs.push(FieldError::required("spec.type", ""));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", Value::from(ty), &TYPES));
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_of(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    &child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = int_of(port, "nodePort").unwrap_or(0);
        if np != 0 && !node_ports.insert((str_of(port, "protocol"), np)) {
            errs.push(FieldError::duplicate(
                &child(&index("spec.ports", i), "nodePort"),
                Value::from(np),
            ));
        }
    }
    let mut pairs = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let (protocol, num) = (str_of(port, "protocol"), int_of(port, "port").unwrap_or(0));
        if !pairs.insert((protocol, num)) {
            errs.push(FieldError {
                go_value: Some(go_service_port_key(protocol, num)),
                ..FieldError::duplicate(
                    &index("spec.ports", i),
                    serde_json::json!({"protocol": protocol, "port": num}),
                )
            });
        }
    }
    let ranges = list_of(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                "spec.LoadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            validate_cidr(&index("spec.LoadBalancerSourceRanges", i), scalar_text(r).trim(), errs);
        }
    }
    let alloc = spec.get("allocateLoadBalancerNodePorts").filter(|v| !v.is_null());
    if alloc.is_some() && ty != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && alloc.is_none() {
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
    if let Some(class) = spec.get("loadBalancerClass").and_then(Value::as_str) {
        if ty == "LoadBalancer" {
            qualified_name_field("spec.loadBalancerClass", class, errs);
        } else {
            errs.push(FieldError::forbidden(
                "spec.loadBalancerClass",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
    let etp = str_of(spec, "externalTrafficPolicy");
    let accessible = ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && !external_ips.is_empty());
    if !accessible {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                Value::from(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            Value::from(etp),
            &["Cluster", "Local"],
        ));
    }
    // Kubernetes also requires a non-zero health check port for a Local LoadBalancer, but it allocates node ports
    // before validating; Keel's server allocates them after, so an unset port is not an error yet.
    let hc = int_of(spec, "healthCheckNodePort").unwrap_or(0);
    if !(ty == "LoadBalancer" && etp == "Local") {
        if hc != 0 {
            errs.push(FieldError::invalid(
                "spec.healthCheckNodePort",
                Value::from(hc),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc != 0 && !is_valid_port_num(hc) {
        errs.push(FieldError::invalid(
            "spec.healthCheckNodePort",
            Value::from(hc),
            PORT_RANGE_MSG,
        ));
    }
    match spec.get("internalTrafficPolicy").and_then(Value::as_str) {
        None => {
            if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") {
                errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
            }
        }
        Some("Cluster" | "Local") => {}
        Some(other) => errs.push(FieldError::not_supported(
            "spec.internalTrafficPolicy",
            Value::from(other),
            &["Cluster", "Local"],
        )),
    }
    if let Some(td) = spec.get("trafficDistribution").and_then(Value::as_str)
        && td != "PreferClose"
    {
        errs.push(FieldError::not_supported(
            "spec.trafficDistribution",
            Value::from(td),
            &["PreferClose"],
        ));
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips(spec: &Value, errs: &mut Vec<FieldError>) {
    let cluster_ip = str_of(spec, "clusterIP");
    let ips_value = field_of(spec, "clusterIPs");
    let ips: Vec<String> = list_of(spec, "clusterIPs").iter().map(scalar_text).collect();
    let ips_go = || Value::from(ips.clone());
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required("spec.clusterIPs", ""));
        } else if ips[0] != cluster_ip {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                ips_go(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            ips_value.clone(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let families: Vec<String> = list_of(spec, "ipFamilies").iter().map(scalar_text).collect();
    let mut seen = BTreeSet::new();
    for (i, f) in families.iter().enumerate() {
        let p = index("spec.ipFamilies", i);
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                &p,
                Value::from(f.as_str()),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f) {
            errs.push(FieldError::duplicate(&p, Value::from(f.as_str())));
        }
    }
    if let Some(policy) = spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        const POLICIES: [&str; 3] = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                Value::from(policy),
                &POLICIES,
            ));
        }
    }
    let mut invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                invalid = true;
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    ips_go(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        invalid |= !validate_ip(&index("spec.clusterIPs", i), ip, errs);
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            ips_go(),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return;
    }
    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| ip.contains(':')).count();
        if v6 != 1 || ips.len() != 2 {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                ips_go(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        for (i, (ip, family)) in ips.iter().zip(&families).enumerate() {
            let is_v6 = ip.contains(':');
            if family == "IPv4" && is_v6 {
                errs.push(FieldError::invalid(
                    &index("spec.clusterIPs", i),
                    Value::from(ip.as_str()),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == "IPv6" && !is_v6 {
                errs.push(FieldError::invalid(
                    &index("spec.clusterIPs", i),
                    Value::from(ip.as_str()),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// `ValidateServiceUpdate`'s update rules: allocated cluster IPs and IP families may not change (upgrades and
/// downgrades of dual-stack aside), nor a LoadBalancer's class or health check node port.
fn validate_service_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (spec, old_spec) = (field_of(new, "spec"), field_of(old, "spec"));
    let (ty, old_ty) = (str_of(spec, "type"), str_of(old_spec, "type"));
    if ty != "ExternalName" && old_ty != "ExternalName" {
        let ips = list_of(spec, "clusterIPs");
        let old_ips = list_of(old_spec, "clusterIPs");
        let value = || Value::Array(ips.to_vec());
        if !(is_headless(spec) && is_headless(old_spec)) {
            match ips.len().cmp(&old_ips.len()) {
                Ordering::Equal => {
                    for (i, (n, o)) in ips.iter().zip(old_ips).enumerate() {
                        if n != o {
                            errs.push(FieldError::invalid(
                                &index("spec.clusterIPs", i),
                                value(),
                                "may not change once set",
                            ));
                        }
                    }
                }
                Ordering::Less => {
                    if ips.is_empty() {
                        errs.push(FieldError::invalid(
                            "spec.clusterIPs[0]",
                            value(),
                            "primary clusterIP can not be unset",
                        ));
                    }
                    if !old_ips.is_empty() && !ips.is_empty() && ips[0] != old_ips[0] {
                        errs.push(FieldError::invalid(
                            "spec.clusterIPs[0]",
                            value(),
                            "may not change once set",
                        ));
                    }
                    if ips.len() == 1 && str_of(spec, "ipFamilyPolicy") != "SingleStack" {
                        errs.push(FieldError::invalid(
                            "spec.ipFamilyPolicy",
                            field_of(spec, "ipFamilyPolicy").clone(),
                            "must be set to 'SingleStack' when releasing the secondary clusterIP",
                        ));
                    }
                }
                Ordering::Greater => {
                    if !old_ips.is_empty() && ips[0] != old_ips[0] {
                        errs.push(FieldError::invalid(
                            "spec.clusterIPs[0]",
                            value(),
                            "may not change once set",
                        ));
                    }
                }
            }
        }
        if is_headless(spec) == is_headless(old_spec) && !is_headless(spec) {
            let fams = list_of(spec, "ipFamilies");
            let old_fams = list_of(old_spec, "ipFamilies");
            if fams.len() == old_fams.len() && fams != old_fams {
                for (n, o) in fams.iter().zip(old_fams) {
                    if n != o {
                        errs.push(FieldError::invalid(
                            "spec.ipFamilies[0]",
                            Value::Array(fams.to_vec()),
                            "may not change once set",
                        ));
                    }
                }
            } else if fams.len() != old_fams.len() && !fams.is_empty() && !old_fams.is_empty() && fams[0] != old_fams[0]
            {
                errs.push(FieldError::invalid(
                    "spec.ipFamilies[0]",
                    Value::Array(ips.to_vec()),
                    "may not change once set",
                ));
            }
        }
    }
    if ty == "LoadBalancer" && old_ty == "LoadBalancer" {
        let class = field_of(spec, "loadBalancerClass");
        if !sem_eq(class, field_of(old_spec, "loadBalancerClass")) {
            errs.push(FieldError::invalid(
                "spec.loadBalancerClass",
                class.clone(),
                "may not change once set",
            ));
        }
    }
    let needs_hc = |s: &Value| str_of(s, "type") == "LoadBalancer" && str_of(s, "externalTrafficPolicy") == "Local";
    if needs_hc(spec)
        && needs_hc(old_spec)
        && int_of(spec, "healthCheckNodePort") != int_of(old_spec, "healthCheckNodePort")
    {
        errs.push(FieldError::forbidden("spec.healthCheckNodePort", IMMUTABLE_MSG));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ConfigMaps and Secrets
// ---------------------------------------------------------------------------------------------------------------

/// The size of base64 data once decoded.
fn base64_decoded_len(s: &str) -> usize {
    let n = s.bytes().filter(|c| !c.is_ascii_whitespace()).count();
    let pad = s.bytes().rev().take_while(|c| *c == b'=').count();
    (n / 4 * 3
        + match n % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        })
    .saturating_sub(if n % 4 == 0 { pad } else { 0 })
}

/// Data keys are config keys (`IsConfigMapKey`); errors are keyed by the key.
fn config_keys(data: Option<&Map<String, Value>>, path: &str, errs: &mut Vec<FieldError>) {
    for (k, _) in sorted_entries(data) {
        for m in is_config_map_key(k) {
            errs.push(FieldError::invalid(&keyed(path, k), Value::from(k.as_str()), &m));
        }
    }
}

/// `ValidateConfigMap`.
fn validate_config_map(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = map_of(obj, "data");
    let binary = map_of(obj, "binaryData");
    let mut total = 0;
    for (k, v) in sorted_entries(data) {
        for m in is_config_map_key(k) {
            errs.push(FieldError::invalid(&keyed("data", k), Value::from(k.as_str()), &m));
        }
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(FieldError::invalid(
                &keyed("data", k),
                Value::from(k.as_str()),
                "duplicate of key present in binaryData",
            ));
        }
        total += scalar_text(v).len();
    }
    config_keys(binary, "binaryData", errs);
    total += sorted_entries(binary)
        .iter()
        .map(|(_, v)| base64_decoded_len(&scalar_text(v)))
        .sum::<usize>();
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
}

/// `ValidateSecret`: data keys, total size, and the keys each well-known type requires.
fn validate_secret(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = map_of(obj, "data");
    config_keys(data, "data", errs);
    let total: usize = sorted_entries(data)
        .iter()
        .map(|(_, v)| base64_decoded_len(&scalar_text(v)))
        .sum();
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let require = |k: &str, errs: &mut Vec<FieldError>| errs.push(FieldError::required(&keyed("data", k), ""));
    match str_of(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let sa = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if sa.is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => require(".dockercfg", errs),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => require(".dockerconfigjson", errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            require("username", errs);
            require("password", errs);
        }
        "kubernetes.io/ssh-auth" => {
            let key = data
                .and_then(|d| d.get("ssh-privatekey"))
                .map(scalar_text)
                .unwrap_or_default();
            if key.is_empty() {
                require("ssh-privatekey", errs);
            }
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    require(k, errs);
                }
            }
        }
        _ => {}
    }
}

/// `ValidateConfigMapUpdate` / `ValidateSecretUpdate`: a Secret's type never changes; once `immutable` is set,
/// neither it nor the data may change.
fn validate_config_update(kind: &str, old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if kind == "Secret" {
        immutable_field("type", field_of(new, "type"), field_of(old, "type"), errs);
    }
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        let fields: &[&str] = if kind == "Secret" {
            &["data"]
        } else {
            &["data", "binaryData"]
        };
        for f in fields {
            if !sem_eq(field_of(new, f), field_of(old, f)) {
                errs.push(FieldError::forbidden(f, "field is immutable when `immutable` is set"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Namespaces, Nodes, Endpoints, EndpointSlices, Leases
// ---------------------------------------------------------------------------------------------------------------

/// `ValidateNamespace`: finalizer names (the path names the list, as Kubernetes does on create).
fn validate_namespace(obj: &Value, errs: &mut Vec<FieldError>) {
    for f in list_of(field_of(obj, "spec"), "finalizers") {
        let f = scalar_text(f);
        qualified_name_field("spec.finalizers", &f, errs);
        kube_finalizer_name("spec.finalizers", &f, errs);
    }
}

/// `ValidateNode`: taints (reported under `metadata.taints`, as Kubernetes does) and pod CIDRs.
fn validate_node(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    let mut unique: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, t) in list_of(spec, "taints").iter().enumerate() {
        let p = index("metadata.taints", i);
        let key = str_of(t, "key");
        qualified_name_field(&child(&p, "key"), key, errs);
        let value = str_of(t, "value");
        let msgs = is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                &child(&p, "value"),
                Value::from(value),
                &msgs.join(";"),
            ));
        }
        let effect = str_of(t, "effect");
        if effect.is_empty() {
            errs.push(FieldError::required(&child(&p, "effect"), ""));
        } else {
            taint_effect(&child(&p, "effect"), effect, errs);
        }
        if !unique.insert((effect.to_string(), key.to_string())) {
            let go = format!(
                "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:{}}}",
                go_quote(key),
                go_quote(value),
                go_quote(effect),
                go_pointer(t.get("timeAdded"), "v1.Time")
            );
            errs.push(FieldError {
                go_value: Some(go),
                detail: "taints must be unique by key and effect pair".to_string(),
                ..FieldError::duplicate(&p, t.clone())
            });
        }
    }
    let cidrs = list_of(spec, "podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        validate_cidr(&index("spec.podCIDRs", i), &scalar_text(c), errs);
    }
    if cidrs.len() > 1 {
        let v6 = cidrs.iter().filter(|c| scalar_text(c).contains(':')).count();
        if v6 != 1 || cidrs.len() > 2 {
            errs.push(FieldError::invalid(
                "spec.podCIDRs",
                Value::Array(cidrs.to_vec()),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            let c = scalar_text(c);
            if !seen.insert(c.clone()) {
                errs.push(FieldError::duplicate(&index("spec.podCIDRs", i), Value::from(c)));
            }
        }
    }
}

/// `ValidateNodeUpdate`: pod CIDRs and the provider ID only go from unset to set.
fn validate_node_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (spec, old_spec) = (field_of(new, "spec"), field_of(old, "spec"));
    let old_cidrs = list_of(old_spec, "podCIDRs");
    let cidrs = list_of(spec, "podCIDRs");
    let msg = "node updates may not change podCIDR except from \"\" to valid";
    if !old_cidrs.is_empty() {
        if old_cidrs.len() != cidrs.len() {
            errs.push(FieldError::forbidden("spec.podCIDRs", msg));
        } else {
            for (o, n) in old_cidrs.iter().zip(cidrs) {
                if o != n {
                    errs.push(FieldError::forbidden("spec.podCIDRs", msg));
                }
            }
        }
    }
    let old_provider = str_of(old_spec, "providerID");
    if !old_provider.is_empty() && old_provider != str_of(spec, "providerID") {
        errs.push(FieldError::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
}

/// `ValidateEndpoints`.
fn validate_endpoints(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, ss) in list_of(obj, "subsets").iter().enumerate() {
        let p = index("subsets", i);
        let (addrs, not_ready) = (list_of(ss, "addresses"), list_of(ss, "notReadyAddresses"));
        if addrs.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (list_name, list) in [("addresses", addrs), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                let ap = index(&child(&p, list_name), j);
                let ip = str_of(a, "ip");
                validate_ip(&child(&ap, "ip"), ip, errs);
                let hostname = str_of(a, "hostname");
                if !hostname.is_empty() {
                    dns1123_label_field(&child(&ap, "hostname"), hostname, errs);
                }
                if let Some(node) = a.get("nodeName").and_then(Value::as_str) {
                    dns1123_subdomain_field(&child(&ap, "nodeName"), node, errs);
                }
                validate_non_special_ip(&child(&ap, "ip"), ip, errs);
            }
        }
        let ports = list_of(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&p, "ports"), j);
            let name = str_of(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(&child(&pp, "name"), ""));
            } else if !name.is_empty() {
                dns1123_label_field(&child(&pp, "name"), name, errs);
            }
            let num = int_of(port, "port").unwrap_or(0);
            if !is_valid_port_num(num) {
                errs.push(FieldError::invalid(
                    &child(&pp, "port"),
                    Value::from(num),
                    PORT_RANGE_MSG,
                ));
            }
            protocol_field(&child(&pp, "protocol"), str_of(port, "protocol"), errs);
            if let Some(ap) = port.get("appProtocol").and_then(Value::as_str) {
                qualified_name_field(&child(&pp, "appProtocol"), ap, errs);
            }
        }
    }
}

/// `ValidateEndpointSlice`.
fn validate_endpoint_slice(obj: &Value, errs: &mut Vec<FieldError>) {
    const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];
    let address_type = str_of(obj, "addressType");
    if address_type.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !ADDRESS_TYPES.contains(&address_type) {
        errs.push(FieldError::not_supported(
            "addressType",
            Value::from(address_type),
            &ADDRESS_TYPES,
        ));
    }
    let endpoints = list_of(obj, "endpoints");
    if endpoints.len() > 1000 {
        errs.push(FieldError::too_many("endpoints", endpoints.len(), 1000));
    } else {
        for (i, ep) in endpoints.iter().enumerate() {
            let p = index("endpoints", i);
            let ap = child(&p, "addresses");
            let addrs = list_of(ep, "addresses");
            if addrs.is_empty() {
                errs.push(FieldError::required(&ap, "must contain at least 1 address"));
            } else if addrs.len() > 100 {
                errs.push(FieldError::too_many(&ap, addrs.len(), 100));
            }
            for (j, a) in addrs.iter().enumerate() {
                let a = scalar_text(a);
                let aj = index(&ap, j);
                match address_type {
                    "IPv4" | "IPv6" => {
                        let ok = match parse_ip_sloppy(&a) {
                            Some(IpAddr::V4(_)) => address_type == "IPv4",
                            Some(IpAddr::V6(_)) => address_type == "IPv6",
                            None => false,
                        };
                        if ok {
                            validate_non_special_ip(&aj, &a, errs);
                        } else {
                            errs.push(FieldError::invalid(
                                &aj,
                                Value::from(a.as_str()),
                                &format!("must be a valid {address_type} address"),
                            ));
                        }
                    }
                    "FQDN" => {
                        let name = a.strip_suffix('.').unwrap_or(&a);
                        if name.is_empty() {
                            errs.push(FieldError::required(&aj, ""));
                        } else if !is_dns1123_subdomain(name).is_empty() {
                            errs.push(FieldError::invalid(
                                &aj,
                                Value::from(name),
                                &is_dns1123_subdomain(name).join(","),
                            ));
                        } else if name.split('.').count() < 2 {
                            errs.push(FieldError::invalid(
                                &aj,
                                Value::from(name),
                                "should be a domain with at least two segments separated by dots",
                            ));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(node) = ep.get("nodeName").and_then(Value::as_str) {
                dns1123_subdomain_field(&child(&p, "nodeName"), node, errs);
            }
            if let Some(h) = ep.get("hostname").and_then(Value::as_str) {
                dns1123_label_field(&child(&p, "hostname"), h, errs);
            }
        }
    }
    let ports = list_of(obj, "ports");
    if ports.len() > 20000 {
        errs.push(FieldError::too_many("ports", ports.len(), 20000));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("ports", i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            dns1123_label_field(&child(&p, "name"), name, errs);
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(&child(&p, "name"), Value::from(name)));
        }
        match port.get("protocol").and_then(Value::as_str) {
            None => errs.push(FieldError::required(&child(&p, "protocol"), "")),
            Some(proto) => {
                if !SUPPORTED_PROTOCOLS.contains(&proto) {
                    errs.push(FieldError::not_supported(
                        &child(&p, "protocol"),
                        Value::from(proto),
                        &SUPPORTED_PROTOCOLS,
                    ));
                }
            }
        }
        if let Some(ap) = port.get("appProtocol").and_then(Value::as_str) {
            qualified_name_field(&child(&p, "appProtocol"), ap, errs);
        }
    }
}

/// `ValidateLeaseSpec`.
fn validate_lease(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field_of(obj, "spec");
    if let Some(d) = int_of(spec, "leaseDurationSeconds")
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            Value::from(d),
            "must be greater than 0",
        ));
    }
    if let Some(t) = int_of(spec, "leaseTransitions")
        && t < 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            Value::from(t),
            NONNEGATIVE_MSG,
        ));
    }
    if let Some(s) = spec.get("strategy").and_then(Value::as_str)
        && s != "OldestEmulationVersion"
    {
        errs.push(FieldError::not_supported(
            "spec.strategy",
            Value::from(s),
            &["OldestEmulationVersion"],
        ));
    }
    let holder = spec.get("preferredHolder").and_then(Value::as_str).unwrap_or("");
    let strategy = spec.get("strategy").and_then(Value::as_str).unwrap_or("");
    if !holder.is_empty() && strategy.is_empty() {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::defaults;
    use crate::registry::RESOURCES;

    fn res(kind: &str) -> &'static ResourceDef {
        RESOURCES.iter().find(|r| r.kind == kind).expect("kind registered")
    }

    /// The object after server-side defaults, as the API server validates it.
    fn defaulted(kind: &str, mut obj: Value) -> Value {
        defaults::apply(res(kind), &mut obj);
        obj
    }

    fn create(kind: &str, obj: Value) -> Vec<String> {
        let obj = defaulted(kind, obj);
        validate_create(res(kind), &obj)
            .iter()
            .map(FieldError::message)
            .collect()
    }

    fn update(kind: &str, old: Value, new: Value) -> Vec<String> {
        let old = defaulted(kind, old);
        let new = defaulted(kind, new);
        validate_update(res(kind), &old, &new)
            .iter()
            .map(FieldError::message)
            .collect()
    }

    #[track_caller]
    fn assert_has(msgs: &[String], want: &str) {
        assert!(msgs.iter().any(|m| m == want), "missing {want:?} in {msgs:#?}");
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}
        })
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
                }
            }
        })
    }

    fn with(mut v: Value, pointer: &str, new: Value) -> Value {
        let (parent, last) = pointer.rsplit_once('/').expect("pointer has a parent");
        let target = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).expect("parent exists")
        };
        match target {
            Value::Object(m) => {
                m.insert(last.to_string(), new);
            }
            Value::Array(a) => {
                let i: usize = last.parse().expect("index");
                a[i] = new;
            }
            _ => panic!("cannot set {pointer}"),
        }
        v
    }

    fn without(mut v: Value, pointer: &str) -> Value {
        let (parent, last) = pointer.rsplit_once('/').expect("pointer has a parent");
        if let Some(Value::Object(m)) = v.pointer_mut(parent) {
            m.remove(last);
        }
        v
    }

    fn job(uid: &str) -> Value {
        let mut j = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": uid},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl"}]
            }}}
        });
        defaults::job_selector(&mut j, uid);
        j
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
        })
    }

    fn stateful_set() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "postgres"}]}
                }
            }
        })
    }

    fn daemon_set() -> Value {
        let d = deployment();
        with(with(d, "/kind", json!("DaemonSet")), "/metadata/name", json!("agent"))
    }

    // -----------------------------------------------------------------------------------------------------------
    // Messages
    // -----------------------------------------------------------------------------------------------------------

    #[test]
    fn messages_print_values_as_go_does() {
        assert_eq!(
            FieldError::required("spec.selector", "").message(),
            "spec.selector: Required value"
        );
        assert_eq!(
            FieldError::invalid("spec.replicas", json!(-1), "must be greater than or equal to 0").message(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            FieldError::invalid("x", json!("a\"b\n"), "d").message(),
            "x: Invalid value: \"a\\\"b\\n\": d"
        );
        assert_eq!(
            FieldError::invalid("x", Value::Null, "d").message(),
            "x: Invalid value: \"null\": d"
        );
        assert_eq!(
            FieldError::invalid("x", json!({"b": "2", "a": "1"}), "d").message(),
            "x: Invalid value: map[string]string{\"a\":\"1\", \"b\":\"2\"}: d"
        );
        assert_eq!(
            FieldError::invalid("x", json!(["10.0.0.1"]), "d").message(),
            "x: Invalid value: []string{\"10.0.0.1\"}: d"
        );
        assert_eq!(
            FieldError::not_supported("spec.type", json!("X"), &["A", "B"]).message(),
            "spec.type: Unsupported value: \"X\": supported values: \"A\", \"B\""
        );
        assert_eq!(
            FieldError::duplicate("a[1].name", json!("x")).message(),
            "a[1].name: Duplicate value: \"x\""
        );
        assert_eq!(
            FieldError::not_found("a.name", json!("v")).message(),
            "a.name: Not found: \"v\""
        );
        assert_eq!(
            FieldError::too_long("metadata.annotations", 262_144).message(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            FieldError::too_many("endpoints", 1001, 1000).message(),
            "endpoints: Too many: 1001: must have at most 1000 items"
        );
        assert_eq!(FieldError::forbidden("spec", "no").message(), "spec: Forbidden: no");
        assert_eq!(FieldError::forbidden("spec", "no").reason(), "FieldValueForbidden");
        assert_eq!(FieldError::not_found("a", json!("b")).reason(), "FieldValueNotFound");
        assert_eq!(go_quote("tab\there\u{1}é"), "\"tab\\there\\x01é\"");
    }

    #[test]
    fn go_structs_print_like_percent_hash_v() {
        assert_eq!(
            go_label_selector(&json!({"matchLabels": {"app": "x"}})),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_label_selector(&json!({"matchExpressions": [{"key": "k", "operator": "In", "values": ["a"]}]})),
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"k\", Operator:\"In\", Values:[]string{\"a\"}}}}"
        );
        assert_eq!(
            go_int_or_string(Some(&json!(0))),
            "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}"
        );
        assert_eq!(
            go_int_or_string(Some(&json!("25%"))),
            "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"25%\"}"
        );
    }

    #[test]
    fn identical_messages_are_reported_once() {
        let errs = dedup(vec![FieldError::required("a", ""), FieldError::required("a", "")]);
        assert_eq!(errs.len(), 1);
    }

    // -----------------------------------------------------------------------------------------------------------
    // Valid objects pass
    // -----------------------------------------------------------------------------------------------------------

    #[test]
    fn valid_defaulted_objects_have_no_errors() {
        let valid: Vec<(&str, Value)> = vec![
            ("Pod", pod()),
            ("Deployment", deployment()),
            ("ReplicaSet", with(deployment(), "/kind", json!("ReplicaSet"))),
            ("DaemonSet", daemon_set()),
            ("StatefulSet", stateful_set()),
            ("Job", job("0d5b7a4c-1c1e-4a37-9f55-0f0d6d4f9e11")),
            ("Service", service()),
            (
                "Service",
                json!({"metadata": {"name": "db", "namespace": "default"},
                       "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
            ),
            (
                "Service",
                json!({"metadata": {"name": "ext", "namespace": "default"},
                       "spec": {"type": "ExternalName", "externalName": "example.com."}}),
            ),
            (
                "Service",
                json!({"metadata": {"name": "lb", "namespace": "default"},
                       "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.9",
                                "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                          {"name": "https", "port": 443, "nodePort": 30443}]}}),
            ),
            (
                "ConfigMap",
                json!({"metadata": {"name": "cfg", "namespace": "default"},
                       "data": {"a.conf": "x", "KEY_1": "y"}, "binaryData": {"b.bin": "AAEC"}}),
            ),
            (
                "Secret",
                json!({"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls",
                       "data": {"tls.crt": "QQ==", "tls.key": "Qg=="}}),
            ),
            (
                "Namespace",
                json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}),
            ),
            (
                "Node",
                json!({"metadata": {"name": "node-1.example"},
                       "spec": {"podCIDRs": ["10.42.0.0/24"],
                                "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
            ),
            (
                "Endpoints",
                json!({"metadata": {"name": "web", "namespace": "default"},
                       "subsets": [{"addresses": [{"ip": "10.42.0.5", "nodeName": "node-1"}],
                                    "ports": [{"port": 80}]}]}),
            ),
            (
                "EndpointSlice",
                json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
                       "endpoints": [{"addresses": ["10.42.0.5"]}], "ports": [{"name": "http", "port": 80}]}),
            ),
            (
                "Lease",
                json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
                       "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
            ),
            (
                "ServiceAccount",
                json!({"metadata": {"name": "default", "namespace": "default"}}),
            ),
            (
                "ControllerRevision",
                json!({"metadata": {"name": "web-5d8f", "namespace": "default"}, "data": {}, "revision": 1}),
            ),
            (
                "Event",
                json!({"metadata": {"name": "web.17a", "namespace": "default"},
                       "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
                       "reason": "Scheduled", "message": "ok"}),
            ),
        ];
        for (kind, obj) in valid {
            assert_eq!(create(kind, obj.clone()), Vec::<String>::new(), "{kind} {obj}");
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Metadata
    // -----------------------------------------------------------------------------------------------------------

    #[test]
    fn names_follow_each_kinds_rule() {
        let m = create(
            "ConfigMap",
            json!({"metadata": {"name": "Foo", "namespace": "default"}}),
        );
        assert_eq!(
            m,
            vec![format!("metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_MSG}")]
        );
        let m = create("Service", with(service(), "/metadata/name", json!("1web")));
        assert_eq!(
            m,
            vec![format!("metadata.name: Invalid value: \"1web\": {DNS1035_MSG}")]
        );
        let m = create("Namespace", json!({"metadata": {"name": "a.b"}}));
        assert_has(&m, &format!("metadata.name: Invalid value: \"a.b\": {LABEL_MSG}"));
        let m = create("StatefulSet", with(stateful_set(), "/metadata/name", json!("db.1")));
        assert_has(&m, &format!("metadata.name: Invalid value: \"db.1\": {LABEL_MSG}"));
        let long = "a".repeat(64);
        let m = create("Namespace", json!({"metadata": {"name": long}}));
        assert_has(
            &m,
            &format!("metadata.name: Invalid value: \"{long}\": must be no more than 63 characters"),
        );
        let m = create("ConfigMap", json!({"metadata": {"namespace": "default"}}));
        assert_eq!(
            m,
            vec!["metadata.name: Required value: name or generateName is required"]
        );
    }

    #[test]
    fn generate_name_may_end_with_a_dash() {
        let ok = json!({"metadata": {"name": "web-x7k2q", "generateName": "web-", "namespace": "default"}});
        assert_eq!(create("ConfigMap", ok), Vec::<String>::new());
        let bad = json!({"metadata": {"name": "web-x7k2q", "generateName": "Web-", "namespace": "default"}});
        assert_eq!(
            create("ConfigMap", bad),
            vec![format!(
                "metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_MSG}"
            )]
        );
    }

    #[test]
    fn namespace_is_a_label_and_scope_is_enforced() {
        let m = create("ConfigMap", json!({"metadata": {"name": "c", "namespace": "Team.A"}}));
        assert_eq!(
            m,
            vec![format!("metadata.namespace: Invalid value: \"Team.A\": {LABEL_MSG}")]
        );
        let m = create("ConfigMap", json!({"metadata": {"name": "c"}}));
        assert_eq!(m, vec!["metadata.namespace: Required value"]);
        let m = create("Node", json!({"metadata": {"name": "n", "namespace": "default"}}));
        assert_eq!(m, vec!["metadata.namespace: Forbidden: not allowed on this type"]);
    }

    #[test]
    fn label_keys_and_values() {
        let obj = |labels: Value| json!({"metadata": {"name": "c", "namespace": "default", "labels": labels}});
        assert_eq!(
            create("ConfigMap", obj(json!({"example.com/app": "", "a_b.c": "X-1"}))),
            Vec::<String>::new()
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"-app": "x"}))),
            vec![format!(
                "metadata.labels: Invalid value: \"-app\": name part {QUALIFIED_NAME_MSG}"
            )]
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"Example.com/app": "x"}))),
            vec![format!(
                "metadata.labels: Invalid value: \"Example.com/app\": prefix part {SUBDOMAIN_MSG}"
            )]
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"/app": "x"}))),
            vec!["metadata.labels: Invalid value: \"/app\": prefix part must be non-empty"]
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"a/b/c": "x"}))),
            vec![format!(
                "metadata.labels: Invalid value: \"a/b/c\": a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        );
        let long = "v".repeat(64);
        assert_eq!(
            create("ConfigMap", obj(json!({"app": long}))),
            vec![format!(
                "metadata.labels: Invalid value: \"{long}\": must be no more than 63 characters"
            )]
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"app": "a b"}))),
            vec![format!("metadata.labels: Invalid value: \"a b\": {LABEL_VALUE_MSG}")]
        );
        let long_key = format!("k{}", "e".repeat(63));
        assert_eq!(
            create("ConfigMap", obj(json!({long_key.clone(): "x"}))),
            vec![format!(
                "metadata.labels: Invalid value: \"{long_key}\": name part must be no more than 63 characters"
            )]
        );
    }

    #[test]
    fn annotations_keys_and_total_size() {
        let obj = |a: Value| json!({"metadata": {"name": "c", "namespace": "default", "annotations": a}});
        assert_eq!(
            create("ConfigMap", obj(json!({"Example.COM/Key": "x"}))),
            Vec::<String>::new()
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"a b": "x"}))),
            vec![format!(
                "metadata.annotations: Invalid value: \"a b\": name part {QUALIFIED_NAME_MSG}"
            )]
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"big": "x".repeat(262_142)}))),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        assert_eq!(
            create("ConfigMap", obj(json!({"big": "x".repeat(262_141)}))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn finalizers_and_owner_references() {
        let m = create(
            "ConfigMap",
            json!({"metadata": {"name": "c", "namespace": "default", "finalizers": ["keel.dev/x", "custom"]}}),
        );
        assert_eq!(
            m,
            vec![
                "metadata.finalizers[1]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );
        let m = create(
            "ConfigMap",
            json!({"metadata": {"name": "c", "namespace": "default",
                                "ownerReferences": [{"apiVersion": "", "kind": "ReplicaSet", "name": "rs", "uid": ""}]}}),
        );
        assert_eq!(
            m,
            vec![
                "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty",
            ]
        );
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let old = json!({"metadata": {"name": "c", "namespace": "default", "deletionTimestamp": "2025-01-01T00:00:00Z",
                                      "finalizers": ["a.io/x"]}});
        let new = with(old.clone(), "/metadata/finalizers", json!(["a.io/x", "b.io/y"]));
        assert_eq!(
            update("ConfigMap", old.clone(), new),
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}"
            ]
        );
        let removed = with(old.clone(), "/metadata/finalizers", json!([]));
        assert_eq!(update("ConfigMap", old, removed), Vec::<String>::new());
    }

    // -----------------------------------------------------------------------------------------------------------
    // Pods
    // -----------------------------------------------------------------------------------------------------------

    #[test]
    fn pod_containers_are_required() {
        assert_eq!(
            create("Pod", with(pod(), "/spec/containers", json!([]))),
            vec!["spec.containers: Required value"]
        );
        assert_eq!(
            create("Pod", without(pod(), "/spec/containers")),
            vec!["spec.containers: Required value"]
        );
    }

    #[test]
    fn pod_container_name_and_image() {
        let p = with(
            pod(),
            "/spec/containers",
            json!([{"name": "Web", "image": "a"}, {"name": "x", "image": ""}, {"name": "x", "image": "b"}]),
        );
        let m = create("Pod", p);
        assert_has(
            &m,
            &format!("spec.containers[0].name: Invalid value: \"Web\": {LABEL_MSG}"),
        );
        assert_has(&m, "spec.containers[1].image: Required value");
        assert_has(&m, "spec.containers[2].name: Duplicate value: \"x\"");
        let m = create("Pod", with(pod(), "/spec/containers/0/image", json!(" nginx")));
        assert_eq!(
            m,
            vec!["spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace"]
        );
        let m = create("Pod", with(pod(), "/spec/containers/0/name", json!("")));
        assert_eq!(m, vec!["spec.containers[0].name: Required value"]);
        let inits = json!([{"name": "nginx", "image": "busybox"}]);
        let m = create("Pod", with(pod(), "/spec/initContainers", inits));
        assert_eq!(m, vec!["spec.initContainers[0].name: Duplicate value: \"nginx\""]);
    }

    #[test]
    fn pod_container_ports() {
        let ports = json!([
            {"containerPort": 0},
            {"containerPort": 70000},
            {"containerPort": 80, "protocol": "HTTP"},
            {"containerPort": 81, "hostPort": 99999},
            {"containerPort": 82, "name": "http"},
            {"containerPort": 83, "name": "http"},
            {"containerPort": 84, "name": "8080"}
        ]);
        let m = create("Pod", with(pod(), "/spec/containers/0/ports", ports));
        assert_eq!(
            m,
            vec![
                "spec.containers[0].ports[0].containerPort: Required value",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[2].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[3].hostPort: Invalid value: 99999: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[5].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[6].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
            ]
        );
    }

    #[test]
    fn pod_host_ports_must_not_collide() {
        let containers = json!([
            {"name": "a", "image": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "b", "image": "b", "ports": [{"containerPort": 81, "hostPort": 8080}]}
        ]);
        let m = create("Pod", with(pod(), "/spec/containers", containers));
        assert_eq!(
            m,
            vec!["spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\""]
        );
        let host_net = with(
            with(pod(), "/spec/hostNetwork", json!(true)),
            "/spec/containers/0/ports",
            json!([{"containerPort": 80, "hostPort": 81}]),
        );
        assert_eq!(
            create("Pod", host_net),
            vec![
                "spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is true"
            ]
        );
    }

    #[test]
    fn pod_policies() {
        assert_eq!(
            create("Pod", with(pod(), "/spec/restartPolicy", json!("Sometimes"))),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ]
        );
        assert_eq!(
            create("Pod", with(pod(), "/spec/dnsPolicy", json!("Google"))),
            vec![
                "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""
            ]
        );
        assert_eq!(
            create("Pod", with(pod(), "/spec/dnsPolicy", json!("None"))),
            vec!["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
        );
        assert_eq!(
            create(
                "Pod",
                with(pod(), "/spec/containers/0/imagePullPolicy", json!("Sometimes"))
            ),
            vec![
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
            ]
        );
        assert_eq!(
            create("Pod", with(pod(), "/spec/activeDeadlineSeconds", json!(0))),
            vec!["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]
        );
        assert_eq!(
            create("Pod", with(pod(), "/spec/nodeName", json!("Node_1"))),
            vec![format!("spec.nodeName: Invalid value: \"Node_1\": {SUBDOMAIN_MSG}")]
        );
        assert_eq!(
            create("Pod", with(pod(), "/spec/containers/0/restartPolicy", json!("Always"))),
            vec!["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]
        );
    }

    #[test]
    fn pod_resources_requests_at_most_limits() {
        let r = json!({"requests": {"cpu": "2", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}});
        assert_eq!(
            create("Pod", with(pod(), "/spec/containers/0/resources", r)),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
            ]
        );
        let r = json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "0.5"}});
        assert_eq!(
            create("Pod", with(pod(), "/spec/containers/0/resources", r)),
            Vec::<String>::new()
        );
        let r = json!({"limits": {"gpu": "1"}});
        assert_eq!(
            create("Pod", with(pod(), "/spec/containers/0/resources", r)),
            vec![
                "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                // SetDefaults_Pod copies limits into requests.
                "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            ]
        );
        let r = json!({"requests": {"example.com/dongle": "1"}});
        assert_eq!(
            create("Pod", with(pod(), "/spec/containers/0/resources", r)),
            vec![
                "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"
            ]
        );
        let r = json!({"requests": {"memory": "-1"}});
        assert_eq!(
            create("Pod", with(pod(), "/spec/containers/0/resources", r)),
            vec![
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0"
            ]
        );
    }

    #[test]
    fn pod_probes_need_exactly_one_handler() {
        let m = create(
            "Pod",
            with(pod(), "/spec/containers/0/livenessProbe", json!({"periodSeconds": 5})),
        );
        assert_eq!(
            m,
            vec!["spec.containers[0].livenessProbe: Required value: must specify a handler type"]
        );
        let probe = json!({"exec": {"command": ["true"]}, "httpGet": {"port": 80}});
        let m = create("Pod", with(pod(), "/spec/containers/0/readinessProbe", probe));
        assert_eq!(
            m,
            vec!["spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type"]
        );
        let probe = json!({"tcpSocket": {"port": 0}, "successThreshold": 2});
        let m = create("Pod", with(pod(), "/spec/containers/0/livenessProbe", probe));
        assert_eq!(
            m,
            vec![
                "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            ]
        );
        let probe = json!({"exec": {}});
        let m = create("Pod", with(pod(), "/spec/containers/0/startupProbe", probe));
        assert_eq!(m, vec!["spec.containers[0].startupProbe.exec.command: Required value"]);
        let hook = json!({"preStop": {"httpGet": {"port": "web", "scheme": "FTP"}}});
        let m = create("Pod", with(pod(), "/spec/containers/0/lifecycle", hook));
        assert_eq!(
            m,
            vec![
                "spec.containers[0].lifecycle.preStop.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\""
            ]
        );
        let inits = json!([{"name": "init", "image": "busybox", "livenessProbe": {"exec": {"command": ["true"]}}}]);
        let m = create("Pod", with(pod(), "/spec/initContainers", inits));
        assert_eq!(
            m,
            vec![
                "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"
            ]
        );
    }

    #[test]
    fn pod_env_and_mounts() {
        let env = json!([{"name": "A=B"}, {"name": "X", "valueFrom": {}}, {"name": "Y", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}}]);
        let m = create("Pod", with(pod(), "/spec/containers/0/env", env));
        assert_eq!(
            m,
            vec![
                format!("spec.containers[0].env[0].name: Invalid value: \"A=B\": {RELAXED_ENV_MSG}"),
                "spec.containers[0].env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`".to_string(),
                "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.foo\": error converting fieldPath: field label not supported: spec.foo".to_string(),
            ]
        );
        let p = with(
            with(
                pod(),
                "/spec/volumes",
                json!([{"name": "data", "emptyDir": {}}, {"name": "cfg"}]),
            ),
            "/spec/containers/0/volumeMounts",
            json!([{"name": "data", "mountPath": "/d"}, {"name": "logs", "mountPath": "/d"}]),
        );
        assert_eq!(
            create("Pod", p),
            vec![
                "spec.containers[0].volumeMounts[1].name: Not found: \"logs\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
            ]
        );
    }

    #[test]
    fn volumes_need_exactly_one_source() {
        // Defaults turn a source-less volume into an emptyDir, so this checks the raw list.
        let mut errs = Vec::new();
        let vols = [
            json!({"name": "a"}),
            json!({"name": "b", "emptyDir": {}, "configMap": {"name": "c"}}),
            json!({"name": "Bad", "hostPath": {}}),
            json!({"name": "d", "emptyDir": {}}),
            json!({"name": "d", "emptyDir": {}}),
        ];
        let names = validate_volumes(&vols, "spec.volumes", &mut errs);
        let m: Vec<String> = errs.iter().map(FieldError::message).collect();
        assert_eq!(
            m,
            vec![
                "spec.volumes[0]: Required value: must specify a volume type".to_string(),
                "spec.volumes[1].configMap: Forbidden: may not specify more than 1 volume type".to_string(),
                "spec.volumes[2].hostPath.path: Required value".to_string(),
                format!("spec.volumes[2].name: Invalid value: \"Bad\": {LABEL_MSG}"),
                "spec.volumes[4].name: Duplicate value: \"d\"".to_string(),
            ]
        );
        assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["d".to_string()]);
    }

    #[test]
    fn pod_tolerations() {
        let tols = json!([{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"}]);
        let m = create("Pod", with(pod(), "/spec/tolerations", tols));
        assert_has(
            &m,
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        );
        assert_has(
            &m,
            "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
        );
    }

    #[test]
    fn pod_ephemeral_containers_cannot_be_created() {
        let m = create(
            "Pod",
            with(
                pod(),
                "/spec/ephemeralContainers",
                json!([{"name": "debug", "image": "busybox"}]),
            ),
        );
        assert_eq!(m, vec!["spec.ephemeralContainers: Forbidden: cannot be set on create"]);
    }

    #[test]
    fn pod_updates_may_change_images_only() {
        assert_eq!(
            update(
                "Pod",
                pod(),
                with(pod(), "/spec/containers/0/image", json!("nginx:1.28"))
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            update("Pod", pod(), with(pod(), "/metadata/labels", json!({"a": "b"}))),
            Vec::<String>::new()
        );
        let m = update(
            "Pod",
            pod(),
            with(pod(), "/spec/containers/0/command", json!(["sleep"])),
        );
        assert_eq!(m.len(), 1);
        assert!(
            m[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n  core.PodSpec{"),
            "{m:?}"
        );
        let two = with(
            pod(),
            "/spec/containers",
            json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]),
        );
        assert_eq!(
            update("Pod", pod(), two),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
    }

    #[test]
    fn pod_update_fields_with_their_own_rules() {
        let old = with(pod(), "/spec/activeDeadlineSeconds", json!(30));
        assert_eq!(
            update(
                "Pod",
                old.clone(),
                with(pod(), "/spec/activeDeadlineSeconds", json!(10))
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            update(
                "Pod",
                old.clone(),
                with(pod(), "/spec/activeDeadlineSeconds", json!(60))
            ),
            vec!["spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"]
        );
        assert_eq!(
            update("Pod", old, pod()),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
            ]
        );
        let tol = json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]);
        let old = with(pod(), "/spec/tolerations", tol.clone());
        let mut more = tol.as_array().cloned().unwrap_or_default();
        more.push(json!({"key": "j", "operator": "Exists"}));
        assert_eq!(
            update("Pod", old.clone(), with(pod(), "/spec/tolerations", json!(more))),
            Vec::<String>::new()
        );
        let changed = with(
            pod(),
            "/spec/tolerations",
            json!([{"key": "k", "operator": "Exists", "effect": "NoExecute"}]),
        );
        assert_eq!(
            update("Pod", old, changed),
            vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
    }

    #[test]
    fn pod_binding_sets_the_node_once() {
        assert_eq!(
            update("Pod", pod(), with(pod(), "/spec/nodeName", json!("node-1"))),
            Vec::<String>::new()
        );
        let bound = with(pod(), "/spec/nodeName", json!("node-1"));
        let m = update("Pod", bound, with(pod(), "/spec/nodeName", json!("node-2")));
        assert!(
            m.len() == 1 && m[0].starts_with("spec: Forbidden: pod updates may not change fields"),
            "{m:?}"
        );
    }

    #[test]
    fn pod_scheduling_gates_may_only_be_removed() {
        let gated = with(pod(), "/spec/schedulingGates", json!([{"name": "example.com/wait"}]));
        assert_eq!(update("Pod", gated.clone(), pod()), Vec::<String>::new());
        let m = update("Pod", pod(), gated);
        assert_eq!(
            m,
            vec![
                "spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'example.com/wait'"
            ]
        );
    }

    // -----------------------------------------------------------------------------------------------------------
    // Deployments, ReplicaSets, DaemonSets, StatefulSets
    // -----------------------------------------------------------------------------------------------------------

    #[test]
    fn deployment_selector_required_and_matching() {
        let m = create("Deployment", without(deployment(), "/spec/selector"));
        assert_eq!(
            m,
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ]
        );
        let m = create(
            "Deployment",
            with(deployment(), "/spec/selector", json!({"matchLabels": {"app": "x"}})),
        );
        assert_eq!(
            m,
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );
        let m = create(
            "Deployment",
            with(deployment(), "/spec/selector", json!({"matchLabels": {}})),
        );
        assert_eq!(
            m,
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ]
        );
        let expr = json!({"matchExpressions": [{"key": "app", "operator": "Like", "values": ["web"]}]});
        let m = create("Deployment", with(deployment(), "/spec/selector", expr));
        assert_has(
            &m,
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Like\": not a valid selector operator",
        );
    }

    #[test]
    fn deployment_spec_fields() {
        assert_eq!(
            create("Deployment", with(deployment(), "/spec/replicas", json!(-1))),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            create(
                "Deployment",
                with(deployment(), "/spec/template/spec/restartPolicy", json!("OnFailure"))
            ),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""]
        );
        assert_eq!(
            create(
                "Deployment",
                with(deployment(), "/spec/template/spec/containers/0/image", json!(""))
            ),
            vec!["spec.template.spec.containers[0].image: Required value"]
        );
        assert_eq!(
            create(
                "Deployment",
                with(deployment(), "/spec/template/metadata/labels/Bad Key", json!("x"))
            ),
            vec![format!(
                "spec.template.labels: Invalid value: \"Bad Key\": name part {QUALIFIED_NAME_MSG}"
            )]
        );
        assert_eq!(
            create(
                "Deployment",
                with(deployment(), "/spec/progressDeadlineSeconds", json!(5))
            ),
            Vec::<String>::new()
        );
        let d = with(
            with(deployment(), "/spec/progressDeadlineSeconds", json!(5)),
            "/spec/minReadySeconds",
            json!(5),
        );
        assert_eq!(
            create("Deployment", d),
            vec!["spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"]
        );
    }

    #[test]
    fn deployment_strategy() {
        let recreate = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
        assert_eq!(
            create("Deployment", with(deployment(), "/spec/strategy", recreate)),
            vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
        );
        let zero = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
        assert_eq!(
            create("Deployment", with(deployment(), "/spec/strategy", zero)),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"
            ]
        );
        let pct = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "1x", "maxUnavailable": "150%"}});
        assert_eq!(
            create("Deployment", with(deployment(), "/spec/strategy", pct)),
            vec![
                format!("spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:\"1x\"}}: {PERCENT_MSG}"),
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%".to_string(),
            ]
        );
        assert_eq!(
            create(
                "Deployment",
                with(deployment(), "/spec/strategy", json!({"type": "BlueGreen"}))
            ),
            vec![
                "spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"BlueGreen\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\""
            ]
        );
    }

    #[test]
    fn workload_selectors_are_immutable() {
        let new_sel = json!({"matchLabels": {"app": "web2"}});
        let new = with(
            with(deployment(), "/spec/selector", new_sel),
            "/spec/template/metadata/labels",
            json!({"app": "web2"}),
        );
        assert_eq!(
            update("Deployment", deployment(), new.clone()),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
        let rs = |d: Value| with(d, "/kind", json!("ReplicaSet"));
        assert_eq!(update("ReplicaSet", rs(deployment()), rs(new.clone())).len(), 1);
        let ds = |d: Value| with(d, "/kind", json!("DaemonSet"));
        assert_eq!(update("DaemonSet", ds(deployment()), ds(new)).len(), 1);
        let scaled = with(deployment(), "/spec/replicas", json!(5));
        assert_eq!(update("Deployment", deployment(), scaled), Vec::<String>::new());
    }

    #[test]
    fn replica_set_and_daemon_set_selectors() {
        let rs = with(
            with(deployment(), "/kind", json!("ReplicaSet")),
            "/spec/selector",
            json!({}),
        );
        assert_eq!(
            create("ReplicaSet", rs),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ]
        );
        let ds = with(daemon_set(), "/spec/selector", json!({}));
        assert_eq!(
            create("DaemonSet", ds),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for daemonset"
            ]
        );
        let zero = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        assert_eq!(
            create("DaemonSet", with(daemon_set(), "/spec/updateStrategy", zero)),
            vec!["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]
        );
        assert_eq!(
            create(
                "DaemonSet",
                with(daemon_set(), "/spec/template/spec/restartPolicy", json!("Never"))
            ),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
    }

    #[test]
    fn stateful_set_rules() {
        let s = with(stateful_set(), "/spec/selector", json!({"matchExpressions": []}));
        assert_eq!(
            create("StatefulSet", s),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{}}: empty selector is invalid for statefulset"
            ]
        );
        assert_eq!(
            create(
                "StatefulSet",
                with(stateful_set(), "/spec/podManagementPolicy", json!("Random"))
            ),
            vec!["spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"]
        );
        // Kubernetes does not validate a StatefulSet's pod spec (only its labels and annotations).
        assert_eq!(
            create(
                "StatefulSet",
                with(stateful_set(), "/spec/template/spec/containers/0/image", json!(""))
            ),
            Vec::<String>::new()
        );
        let ok = with(
            with(stateful_set(), "/spec/replicas", json!(3)),
            "/spec/template/spec/containers/0/image",
            json!("postgres:17"),
        );
        assert_eq!(update("StatefulSet", stateful_set(), ok), Vec::<String>::new());
        let svc = with(stateful_set(), "/spec/serviceName", json!("other"));
        assert_eq!(
            update("StatefulSet", stateful_set(), svc),
            vec![
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
    }

    #[test]
    fn controller_revision_data() {
        let cr = json!({"metadata": {"name": "r", "namespace": "default"}, "revision": -1});
        assert_eq!(
            create("ControllerRevision", cr),
            vec![
                "data: Required value: data is mandatory",
                "revision: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        let old = json!({"metadata": {"name": "r", "namespace": "default"}, "data": {"a": 1}, "revision": 1});
        let new = with(old.clone(), "/data", json!({"a": 2}));
        assert_eq!(
            update("ControllerRevision", old, new),
            vec!["data: Invalid value: runtime.RawExtension{...}: field is immutable"]
        );
    }

    // -----------------------------------------------------------------------------------------------------------
    // Jobs
    // -----------------------------------------------------------------------------------------------------------

    const UID: &str = "0d5b7a4c-1c1e-4a37-9f55-0f0d6d4f9e11";

    #[test]
    fn job_restart_policy_and_counts() {
        let j = without(job(UID), "/spec/template/spec/restartPolicy");
        assert_eq!(
            create("Job", j),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        let j = with(job(UID), "/spec/template/spec/restartPolicy", json!("Sometimes"));
        assert_has(
            &create("Job", j),
            "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"",
        );
        let j = with(
            with(job(UID), "/spec/completions", json!(-1)),
            "/spec/backoffLimit",
            json!(-2),
        );
        assert_eq!(
            create("Job", j),
            vec![
                "spec.completions: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
            ]
        );
        let j = with(job(UID), "/spec/parallelism", json!(-1));
        assert_eq!(
            create("Job", j),
            vec!["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn job_generated_selector() {
        let j = with(job(UID), "/spec/template/metadata/labels", json!({"app": "pi"}));
        let m = create("Job", j);
        assert_has(
            &m,
            &format!("spec.template.metadata.labels[controller-uid]: Required value: must be '{UID}'"),
        );
        assert_has(
            &m,
            "spec.template.metadata.labels[batch.kubernetes.io/job-name]: Required value: must be 'pi'",
        );
        let manual = with(
            with(job(UID), "/spec/manualSelector", json!(true)),
            "/spec/selector",
            json!({"matchLabels": {"app": "pi"}}),
        );
        let manual = with(manual, "/spec/template/metadata/labels", json!({"app": "pi"}));
        assert_eq!(create("Job", manual), Vec::<String>::new());
    }

    #[test]
    fn job_selector_and_template_are_immutable() {
        let old = job(UID);
        let new = with(old.clone(), "/spec/selector/matchLabels/extra", json!("x"));
        assert_has(
            &update("Job", old.clone(), new),
            &format!(
                "spec.selector: Invalid value: v1.LabelSelector{{MatchLabels:map[string]string{{\"batch.kubernetes.io/controller-uid\":\"{UID}\", \"extra\":\"x\"}}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}: field is immutable"
            ),
        );
        let new = with(old.clone(), "/spec/template/spec/containers/0/image", json!("perl:5"));
        assert_eq!(
            update("Job", old.clone(), new),
            vec!["spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"]
        );
        let new = with(old.clone(), "/spec/completions", json!(3));
        assert_eq!(
            update("Job", old.clone(), new),
            vec!["spec.completions: Invalid value: 3: field is immutable"]
        );
        let suspended = with(old, "/spec/suspend", json!(true));
        let moved = with(
            suspended.clone(),
            "/spec/template/spec/nodeSelector",
            json!({"zone": "a"}),
        );
        assert_eq!(update("Job", suspended, moved), Vec::<String>::new());
    }

    // -----------------------------------------------------------------------------------------------------------
    // Services
    // -----------------------------------------------------------------------------------------------------------

    #[test]
    fn service_ports() {
        assert_eq!(
            create("Service", without(service(), "/spec/ports")),
            vec!["spec.ports: Required value"]
        );
        let ports = json!([{"port": 0}, {"name": "b", "port": 80, "protocol": "ICMP"}]);
        assert_eq!(
            create("Service", with(service(), "/spec/ports", ports)),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                // SetDefaults_Service copies the port into an unset targetPort.
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
        let ports = json!([{"name": "a", "port": 80}, {"name": "a", "port": 80, "targetPort": "Web"}]);
        assert_eq!(
            create("Service", with(service(), "/spec/ports", ports)),
            vec![
                "spec.ports[1].name: Duplicate value: \"a\"",
                "spec.ports[1].targetPort: Invalid value: \"Web\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ]
        );
        let p = with(service(), "/spec/ports/0/nodePort", json!(30080));
        assert_eq!(
            create("Service", p),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
    }

    #[test]
    fn service_types_and_cluster_ips() {
        assert_eq!(
            create("Service", with(service(), "/spec/type", json!("Internal"))),
            vec![
                "spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ]
        );
        let ext = json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName"}});
        assert_eq!(create("Service", ext), vec!["spec.externalName: Required value"]);
        assert_eq!(
            create("Service", with(service(), "/spec/clusterIP", json!("10.43.0.300"))),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"10.43.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            ]
        );
        let np = with(
            with(service(), "/spec/type", json!("NodePort")),
            "/spec/clusterIP",
            json!("None"),
        );
        assert_eq!(
            create("Service", np),
            vec!["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]
        );
        assert_eq!(
            create("Service", with(service(), "/spec/sessionAffinity", json!("Cookie"))),
            vec!["spec.sessionAffinity: Unsupported value: \"Cookie\": supported values: \"ClientIP\", \"None\""]
        );
        assert_eq!(
            create("Service", with(service(), "/spec/externalIPs", json!(["127.0.0.1"]))),
            vec![
                "spec.externalIPs[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
            ]
        );
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = with(service(), "/spec/clusterIP", json!("10.43.0.9"));
        let mut old_d = defaulted("Service", old.clone());
        let mut new_d = defaulted("Service", with(service(), "/spec/clusterIP", json!("10.43.0.10")));
        defaults::prepare_for_update(res("Service"), &old_d, &mut new_d);
        defaults::apply(res("Service"), &mut new_d);
        let m: Vec<String> = validate_update(res("Service"), &old_d, &new_d)
            .iter()
            .map(FieldError::message)
            .collect();
        assert_eq!(
            m,
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.10\"}: may not change once set"]
        );
        // Leaving the IP out keeps the allocated one.
        let mut kept = defaulted("Service", service());
        defaults::prepare_for_update(res("Service"), &old_d, &mut kept);
        defaults::apply(res("Service"), &mut kept);
        assert_eq!(validate_update(res("Service"), &old_d, &kept), Vec::new());
        old_d = with(old_d, "/spec/ports/0/port", json!(81));
        assert_eq!(validate_update(res("Service"), &old_d, &kept), Vec::new());
    }

    #[test]
    fn service_traffic_policies() {
        let lb = json!({"metadata": {"name": "lb", "namespace": "default"},
                        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}});
        // The health check port is allocated after validation in Keel.
        assert_eq!(create("Service", lb.clone()), Vec::<String>::new());
        let with_hc = with(lb, "/spec/healthCheckNodePort", json!(30500));
        assert_eq!(
            update(
                "Service",
                with_hc.clone(),
                with(with_hc, "/spec/healthCheckNodePort", json!(30501))
            ),
            vec!["spec.healthCheckNodePort: Forbidden: field is immutable"]
        );
        assert_eq!(
            create(
                "Service",
                with(service(), "/spec/externalTrafficPolicy", json!("Local"))
            ),
            vec![
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"
            ]
        );
        assert_eq!(
            create("Service", with(service(), "/spec/healthCheckNodePort", json!(30500))),
            vec![
                "spec.healthCheckNodePort: Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
            ]
        );
        assert_eq!(
            create("Service", with(service(), "/spec/internalTrafficPolicy", json!("Node"))),
            vec!["spec.internalTrafficPolicy: Unsupported value: \"Node\": supported values: \"Cluster\", \"Local\""]
        );
    }

    #[test]
    fn stateful_set_selector_change_is_a_forbidden_spec_update() {
        let new = with(
            with(stateful_set(), "/spec/selector", json!({"matchLabels": {"app": "db2"}})),
            "/spec/template/metadata/labels",
            json!({"app": "db2"}),
        );
        assert_eq!(
            update("StatefulSet", stateful_set(), new),
            vec![
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
    }

    #[test]
    fn indexed_job_pod_hostnames_must_be_labels() {
        let name = "j".repeat(62);
        let j = with(
            with(
                with(job(UID), "/metadata/name", json!(name.clone())),
                "/spec/completionMode",
                json!("Indexed"),
            ),
            "/spec/completions",
            json!(10),
        );
        let mut j = j;
        defaults::job_selector(&mut j, UID);
        assert_has(
            &create("Job", j),
            &format!(
                "metadata.name: Invalid value: \"{name}\": will not able to create pod with invalid DNS label: {name}-9"
            ),
        );
    }

    #[test]
    fn events_with_event_time_need_reporting_fields() {
        let ev = json!({"metadata": {"name": "e", "namespace": "default"}, "eventTime": "2025-01-01T00:00:00.000000Z",
                        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}});
        assert_eq!(
            create("Event", ev),
            vec![
                "reportingComponent: Required value".to_string(),
                "reportingComponent: Invalid value: \"\": name part must be non-empty".to_string(),
                format!("reportingComponent: Invalid value: \"\": name part {QUALIFIED_NAME_MSG}"),
                "reportingInstance: Required value".to_string(),
                "action: Required value".to_string(),
                "reason: Required value".to_string(),
            ]
        );
    }

    #[test]
    fn lease_preferred_holder_needs_a_strategy() {
        let lease = json!({"metadata": {"name": "l", "namespace": "default"}, "spec": {"preferredHolder": "a"}});
        assert_eq!(
            create("Lease", lease),
            vec!["spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"]
        );
    }

    // -----------------------------------------------------------------------------------------------------------
    // ConfigMaps and Secrets
    // -----------------------------------------------------------------------------------------------------------

    fn config_map(data: Value) -> Value {
        json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": data})
    }

    #[test]
    fn config_map_keys_and_size() {
        assert_eq!(
            create("ConfigMap", config_map(json!({"a/b": "x"}))),
            vec![format!("data[a/b]: Invalid value: \"a/b\": {CONFIG_KEY_MSG}")]
        );
        assert_eq!(
            create("ConfigMap", config_map(json!({"..x": "x"}))),
            vec!["data[..x]: Invalid value: \"..x\": must not start with '..'"]
        );
        assert_eq!(
            create("ConfigMap", config_map(json!({"big": "x".repeat(1024 * 1024 + 1)}))),
            vec![": Too long: may not be more than 1048576 bytes"]
        );
        let dup = with(config_map(json!({"a": "x"})), "/binaryData", json!({"a": "eA=="}));
        assert_eq!(
            create("ConfigMap", dup),
            vec!["data[a]: Invalid value: \"a\": duplicate of key present in binaryData"]
        );
    }

    #[test]
    fn immutable_config_maps_and_secrets() {
        let old = with(config_map(json!({"a": "1"})), "/immutable", json!(true));
        assert_eq!(
            update("ConfigMap", old.clone(), with(old.clone(), "/data/a", json!("2"))),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert_eq!(
            update("ConfigMap", old.clone(), with(old.clone(), "/immutable", json!(false))),
            vec!["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        assert_eq!(
            update(
                "ConfigMap",
                old.clone(),
                with(old, "/metadata/labels", json!({"a": "b"}))
            ),
            Vec::<String>::new()
        );
        let mutable = config_map(json!({"a": "1"}));
        assert_eq!(
            update("ConfigMap", mutable.clone(), with(mutable, "/data/a", json!("2"))),
            Vec::<String>::new()
        );

        let secret =
            json!({"metadata": {"name": "s", "namespace": "default"}, "data": {"a": "MQ=="}, "immutable": true});
        assert_eq!(
            update("Secret", secret.clone(), with(secret.clone(), "/data/a", json!("Mg=="))),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert_eq!(
            update(
                "Secret",
                secret.clone(),
                with(secret, "/type", json!("kubernetes.io/basic-auth"))
            ),
            vec![
                "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable",
                "data[username]: Required value",
                "data[password]: Required value",
            ]
        );
    }

    #[test]
    fn secret_keys_and_types() {
        let s = json!({"metadata": {"name": "s", "namespace": "default"}, "data": {"a b": "MQ=="}});
        assert_eq!(
            create("Secret", s),
            vec![format!("data[a b]: Invalid value: \"a b\": {CONFIG_KEY_MSG}")]
        );
        let tls = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "QQ=="}});
        assert_eq!(create("Secret", tls), vec!["data[tls.key]: Required value"]);
        assert_eq!(base64_decoded_len("QUJD"), 3);
        assert_eq!(base64_decoded_len("QUI="), 2);
        assert_eq!(base64_decoded_len("QQ=="), 1);
    }

    // -----------------------------------------------------------------------------------------------------------
    // Namespaces, Nodes, Endpoints, EndpointSlices, Leases, Events
    // -----------------------------------------------------------------------------------------------------------

    #[test]
    fn namespace_finalizers() {
        let ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes", "bad"]}});
        assert_eq!(
            create("Namespace", ns),
            vec![
                "spec.finalizers: Invalid value: \"bad\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );
    }

    #[test]
    fn node_taints_and_pod_cidrs() {
        let node = |spec: Value| json!({"metadata": {"name": "n1"}, "spec": spec});
        assert_eq!(
            create("Node", node(json!({"taints": [{"key": "k", "effect": "Sometimes"}]}))),
            vec![
                "metadata.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
            ]
        );
        assert_eq!(
            create(
                "Node",
                node(json!({"taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}]}))
            ),
            vec![
                "metadata.taints[1]: Duplicate value: core.Taint{Key:\"k\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair"
            ]
        );
        assert_eq!(
            create("Node", node(json!({"podCIDRs": ["10.42.0.0/33"]}))),
            vec![
                "spec.podCIDRs[0]: Invalid value: \"10.42.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            ]
        );
        let old = node(json!({"podCIDRs": ["10.42.0.0/24"]}));
        assert_eq!(
            update("Node", old.clone(), node(json!({"podCIDRs": ["10.42.1.0/24"]}))),
            vec!["spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"]
        );
        assert_eq!(update("Node", node(json!({})), old), Vec::<String>::new());
    }

    #[test]
    fn endpoints_subsets() {
        let ep = |subsets: Value| json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": subsets});
        assert_eq!(
            create("Endpoints", ep(json!([{"ports": [{"port": 80}]}]))),
            vec!["subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"]
        );
        assert_eq!(
            create("Endpoints", ep(json!([{"addresses": [{"ip": "nope"}]}]))),
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].addresses[0].ip: Invalid value: \"nope\": must be a valid IP address",
            ]
        );
        assert_eq!(
            create("Endpoints", ep(json!([{"addresses": [{"ip": "169.254.1.1"}]}]))),
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"169.254.1.1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)"
            ]
        );
    }

    #[test]
    fn endpoint_slice_address_type() {
        let slice = |t: Value| json!({"metadata": {"name": "s", "namespace": "default"}, "addressType": t});
        assert_eq!(
            create("EndpointSlice", slice(json!(""))),
            vec!["addressType: Required value"]
        );
        assert_eq!(
            create("EndpointSlice", slice(json!("IPX"))),
            vec!["addressType: Unsupported value: \"IPX\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""]
        );
        assert_eq!(
            update("EndpointSlice", slice(json!("IPv4")), slice(json!("IPv6"))),
            vec!["addressType: Invalid value: \"IPv6\": field is immutable"]
        );
        let bad = with(
            slice(json!("IPv4")),
            "/endpoints",
            json!([{"addresses": ["fd00::1"]}, {"addresses": []}]),
        );
        assert_eq!(
            create("EndpointSlice", bad),
            vec![
                "endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
                "endpoints[1].addresses: Required value: must contain at least 1 address",
            ]
        );
    }

    #[test]
    fn lease_durations() {
        let lease = json!({"metadata": {"name": "l", "namespace": "default"},
                           "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
        assert_eq!(
            create("Lease", lease),
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn event_namespace_must_match_involved_object() {
        let ev = json!({"metadata": {"name": "web.1", "namespace": "default"},
                        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"}});
        assert_eq!(
            create("Event", ev),
            vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
    }

    #[test]
    fn format_helpers() {
        assert!(is_dns1035_label("a-1").is_empty());
        assert_eq!(is_dns1035_label("1a"), vec![DNS1035_MSG.to_string()]);
        assert!(is_qualified_name("example.com/My_Name.1").is_empty());
        assert!(is_valid_label_value("").is_empty());
        assert!(is_config_map_key("a-b_c.d").is_empty());
        assert_eq!(
            parse_ip_sloppy("010.001.1.1"),
            Some(IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1)))
        );
        assert!(parse_ip_sloppy("1.2.3").is_none());
        assert!(sem_eq(&json!({"a": null, "b": [], "c": ""}), &json!({})));
        assert!(!sem_eq(&json!({"a": 1}), &json!({"a": 2})));
    }
}
