//! control-plane-lite: Keel's embedded Kubernetes API server and its store backends.
//!
//! - [`store`]: the revisioned key-value [`store::Store`] trait, SQLite and etcd backends.
//! - [`api`]: the Kubernetes REST API (routing, verbs, watch, discovery) over a store.
//! - [`controllers`]: informers, work queues and the controllers that run in-process on the API.
//! - [`server`]: HTTPS serving, credentials, bootstrap, graceful shutdown.

pub mod api;
pub mod controllers;
pub mod metrics;
pub mod pki;
pub mod server;
pub mod store;
