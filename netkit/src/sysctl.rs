//! The few `/proc/sys/net` switches Keel needs. `/proc/sys/net` shows the network namespace of the thread that
//! opens it, so call these through [`crate::netns::run_in`] for another namespace.

use crate::{Error, Result};

fn write(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| Error::Io {
        what: format!("write {value} to {path}"),
        source,
    })
}

/// Enable IPv4 forwarding (`net.ipv4.ip_forward=1`), needed on a node that routes pod traffic.
pub fn enable_ipv4_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}
