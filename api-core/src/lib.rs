//! Pure Kubernetes API logic for Keel's control plane: no IO, no async, unit-testable without root.
//!
//! Everything here works on `serde_json::Value` objects as they travel over the wire, so the API server can
//! store, patch and print any served kind the same way.

pub mod defaults;
pub mod registry;
pub mod selector;
pub mod strategic;
pub mod table;
pub mod validation;
