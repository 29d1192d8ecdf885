//! CNI spec types: versions, error codes and the error object, and the ADD result in each version's format.
//!
//! Written here rather than taken from a crate: `cni-plugin` stops at spec 1.0 (no GC/STATUS), and the result
//! Keel returns is small (one veth, one /32, one route), so the exact per-version JSON is clearer written out than
//! converted through a general type model.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

/// Spec versions this plugin answers, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest spec version (used when a caller names none, as VERSION allows).
pub const LATEST: &str = "1.1.0";

/// Well-known error codes of the CNI spec (0-99), and Keel's own (100+, which the spec leaves to plugins).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (the runtime need not clean up).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: available with limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// Keel: no free address left in podCIDR.
    pub const RANGE_EXHAUSTED: u32 = 100;
    /// Keel: the interface name is taken (in the pod netns, or the attachment already exists).
    pub const NAME_COLLISION: u32 = 101;
    /// Keel: CHECK found the attachment not as ADD left it.
    pub const CHECK_FAILED: u32 = 102;
    /// Keel: the kernel refused a netlink request.
    pub const KERNEL: u32 = 103;
}

/// A spec error: printed as `{cniVersion, code, msg, details}` on stdout, with a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// Spec or plugin error code.
    pub code: u32,
    /// Short message: what is wrong and what to do.
    pub msg: String,
    /// Longer detail (the underlying error), may be empty.
    pub details: String,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Add details.
    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = d.into();
        self
    }

    /// The JSON error object for a caller speaking `version`.
    pub fn to_json(&self, version: &str) -> Value {
        json!({"cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details})
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// Parse `MAJOR.MINOR.PATCH`.
fn triple(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let t = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(t)
}

/// Whether `v` is a version this plugin speaks.
pub fn supported(v: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&v)
}

/// Whether `v` is at least `min` (both `MAJOR.MINOR.PATCH`; unparsable compares as older).
pub fn at_least(v: &str, min: &str) -> bool {
    match (triple(v), triple(min)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

/// The highest version in `offered` (a conflist's `cniVersions`) that this plugin speaks.
pub fn negotiate(offered: &[String]) -> Option<String> {
    offered
        .iter()
        .filter(|v| supported(v))
        .max_by_key(|v| triple(v))
        .cloned()
}

/// The VERSION answer.
pub fn version_result(version: &str) -> Value {
    json!({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS})
}

/// What ADD made, independent of the output format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Host-side veth name.
    pub host_if: String,
    /// Host-side veth MAC.
    pub host_mac: [u8; 6],
    /// Pod-side interface name (CNI_IFNAME).
    pub pod_if: String,
    /// Pod-side MAC.
    pub pod_mac: [u8; 6],
    /// The pod netns path (CNI_NETNS).
    pub sandbox: String,
    /// MTU of both ends.
    pub mtu: u32,
    /// The pod's address (a /32).
    pub ip: Ipv4Addr,
    /// The link-local gateway.
    pub gateway: Ipv4Addr,
}

/// Format a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The ADD (or CHECK's prevResult) result in the format of `version`: 1.1.0 adds interface `mtu`; 0.3.x/0.4.0
/// carry `version` on each IP; 1.0.0 drops it.
pub fn add_result(a: &Attachment, version: &str) -> Value {
    let mut host = json!({"name": a.host_if, "mac": mac_string(&a.host_mac)});
    let mut pod = json!({"name": a.pod_if, "mac": mac_string(&a.pod_mac), "sandbox": a.sandbox});
    if at_least(version, "1.1.0") {
        host["mtu"] = json!(a.mtu);
        pod["mtu"] = json!(a.mtu);
    }
    let mut ip = json!({"address": format!("{}/32", a.ip), "gateway": a.gateway.to_string(), "interface": 1});
    if !at_least(version, "1.0.0") {
        ip["version"] = json!("4");
    }
    json!({
        "cniVersion": version,
        "interfaces": [host, pod],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": a.gateway.to_string()}],
        "dns": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att() -> Attachment {
        Attachment {
            host_if: "kc0123456789ab".into(),
            host_mac: [0xee; 6],
            pod_if: "eth0".into(),
            pod_mac: [0x0a, 0x58, 0, 0, 0, 1],
            sandbox: "/var/run/netns/p".into(),
            mtu: 1450,
            ip: Ipv4Addr::new(10, 42, 1, 7),
            gateway: Ipv4Addr::new(169, 254, 1, 1),
        }
    }

    #[test]
    fn result_format_follows_the_version() {
        let r11 = add_result(&att(), "1.1.0");
        assert_eq!(r11["interfaces"][1]["mtu"], 1450);
        assert_eq!(
            r11["ips"][0],
            json!({"address": "10.42.1.7/32", "gateway": "169.254.1.1", "interface": 1})
        );
        assert_eq!(r11["interfaces"][1]["mac"], "0a:58:00:00:00:01");
        let r10 = add_result(&att(), "1.0.0");
        assert!(r10["interfaces"][1].get("mtu").is_none());
        assert!(r10["ips"][0].get("version").is_none());
        let r04 = add_result(&att(), "0.4.0");
        assert_eq!(r04["ips"][0]["version"], "4");
        assert_eq!(r04["cniVersion"], "0.4.0");
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        let offered = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            negotiate(&offered(&["0.4.0", "1.1.0", "1.0.0"])).as_deref(),
            Some("1.1.0")
        );
        assert_eq!(negotiate(&offered(&["2.0.0", "1.0.0"])).as_deref(), Some("1.0.0"));
        assert_eq!(negotiate(&offered(&["0.2.0", "9.9.9"])), None);
        assert!(at_least("1.1.0", "1.0.0") && !at_least("0.4.0", "1.0.0") && !at_least("x", "0.1.0"));
    }

    #[test]
    fn error_object_has_the_spec_fields() {
        let e = CniError::new(code::INVALID_CONFIG, "bad").details("why");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "why"})
        );
    }
}
