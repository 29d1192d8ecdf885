//! control-plane-lite: Keel's embedded Kubernetes API server, its store backends, and (later) the scheduler and
//! controllers.

pub mod store;
