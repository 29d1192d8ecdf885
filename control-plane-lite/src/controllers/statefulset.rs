//! The statefulset controller (being written).

use std::sync::Arc;

use super::Informers;
use crate::api::Api;

/// Start the controller.
pub fn spawn(api: Arc<Api>, inf: Arc<Informers>) {
    let _ = (api, inf);
}
