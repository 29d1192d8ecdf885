//! The network configuration keel-cni reads on stdin, and the runtime's environment. Pure parsing and validation.
//!
//! ```json
//! {"cniVersion":"1.1.0","name":"keel","type":"keel-cni","podCIDR":"10.42.1.0/24",
//!  "mtu":1450, "dataDir":"/var/lib/keel/cni"}
//! ```
//! `mtu` (default: the node's uplink MTU minus 50 bytes of VXLAN overhead) and `dataDir` (default
//! `/var/lib/keel/cni`) are optional. A conflist's `cniVersions` may stand in for `cniVersion`: the highest version
//! both sides speak is used. GC reads `cni.dev/valid-attachments`; CHECK reads `prevResult`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::cidr::Ipv4Net;
use crate::spec::{self, CniError, code};

/// Default IPAM directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/keel/cni";

/// One attachment named by GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct ValidAttachment {
    /// CNI_CONTAINERID of the attachment.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// CNI_IFNAME of the attachment.
    pub ifname: String,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "cniVersion")]
    cni_version: Option<String>,
    #[serde(rename = "cniVersions")]
    cni_versions: Option<Vec<String>>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    mtu: Option<u32>,
    #[serde(rename = "dataDir")]
    data_dir: Option<PathBuf>,
    #[serde(rename = "prevResult")]
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<ValidAttachment>>,
    #[serde(flatten)]
    _rest: BTreeMap<String, Value>,
}

/// A validated keel-cni configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// The spec version to answer in.
    pub cni_version: String,
    /// Network name (also the IPAM subdirectory).
    pub name: String,
    /// The node's pod range.
    pub pod_cidr: Ipv4Net,
    /// Explicit MTU, if configured.
    pub mtu: Option<u32>,
    /// IPAM directory.
    pub data_dir: PathBuf,
    /// CHECK/DEL: the previous result.
    pub prev_result: Option<Value>,
    /// GC: attachments to keep.
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

/// The version to answer a config in, before it is fully validated (for error objects and VERSION).
pub fn version_of(stdin: &[u8]) -> String {
    let v: Option<Value> = serde_json::from_slice(stdin).ok();
    let named = v
        .as_ref()
        .and_then(|v| v.get("cniVersion"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let offered: Option<Vec<String>> = v
        .as_ref()
        .and_then(|v| v.get("cniVersions"))
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    match (named, offered) {
        (Some(v), _) if spec::supported(&v) => v,
        (None, Some(list)) => spec::negotiate(&list).unwrap_or_else(|| spec::LATEST.into()),
        _ => spec::LATEST.into(),
    }
}

/// Parse and validate the config. Every error names the field and what to write instead.
pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let raw: Raw = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(code::DECODE, "network config on stdin is not valid JSON for keel-cni").details(e.to_string())
    })?;
    let cni_version = match (raw.cni_version, raw.cni_versions) {
        (Some(v), _) => {
            if !spec::supported(&v) {
                return Err(CniError::new(
                    code::INCOMPATIBLE_VERSION,
                    format!(
                        "cniVersion {v:?} is not supported by keel-cni; use one of {}",
                        spec::SUPPORTED_VERSIONS.join(", ")
                    ),
                ));
            }
            v
        }
        (None, Some(list)) => spec::negotiate(&list).ok_or_else(|| {
            CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "none of cniVersions {list:?} is supported by keel-cni; add one of {}",
                    spec::SUPPORTED_VERSIONS.join(", ")
                ),
            )
        })?,
        (None, None) => {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "network config has no cniVersion; set \"cniVersion\": \"{}\"",
                    spec::LATEST
                ),
            ));
        }
    };
    let invalid = |msg: String| CniError::new(code::INVALID_CONFIG, msg);
    let name = raw.name.filter(|n| !n.is_empty()).ok_or_else(|| {
        invalid("network config has no \"name\"; set it (for example \"keel\"), it names the IPAM directory".into())
    })?;
    if name.contains('/') || name == "." || name == ".." {
        return Err(invalid(format!(
            "network name {name:?} must not contain '/' or be '.' or '..'"
        )));
    }
    if raw.kind.as_deref().is_some_and(|k| k != "keel-cni") {
        return Err(invalid(format!(
            "network config \"type\" is {:?}; keel-cni only reads configs of type \"keel-cni\"",
            raw.kind
        )));
    }
    let cidr = raw.pod_cidr.ok_or_else(|| {
        invalid("network config has no \"podCIDR\"; set it to this node's pod range, e.g. \"10.42.1.0/24\"".into())
    })?;
    let pod_cidr: Ipv4Net = cidr.parse().map_err(|e| invalid(format!("podCIDR: {e}")))?;
    if pod_cidr.host_range().is_none() {
        return Err(invalid(format!(
            "podCIDR {pod_cidr} leaves no address for pods; use a /30 or larger range"
        )));
    }
    if let Some(mtu) = raw.mtu
        && !(576..=65535).contains(&mtu)
    {
        return Err(invalid(format!(
            "mtu {mtu} is out of range; use 576..65535 or leave it out for the default"
        )));
    }
    Ok(NetConf {
        cni_version,
        name,
        pod_cidr,
        mtu: raw.mtu,
        data_dir: raw.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        prev_result: raw.prev_result,
        valid_attachments: raw.valid_attachments,
    })
}

/// The commands of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a pod.
    Add,
    /// Detach a pod (idempotent).
    Del,
    /// Verify an attachment.
    Check,
    /// Report supported versions.
    Version,
    /// Remove attachments not listed as valid.
    Gc,
    /// Report readiness.
    Status,
}

/// The runtime's environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// CNI_COMMAND.
    pub command: Option<String>,
    /// CNI_CONTAINERID.
    pub container_id: Option<String>,
    /// CNI_NETNS.
    pub netns: Option<String>,
    /// CNI_IFNAME.
    pub ifname: Option<String>,
    /// CNI_ARGS.
    pub args: Option<String>,
    /// CNI_PATH.
    pub path: Option<String>,
}

impl Env {
    /// Read from the process environment.
    pub fn from_process() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
            path: get("CNI_PATH"),
        }
    }

    /// The command, or an invalid-env error.
    pub fn command(&self) -> Result<Command, CniError> {
        match self.command.as_deref() {
            Some("ADD") => Ok(Command::Add),
            Some("DEL") => Ok(Command::Del),
            Some("CHECK") => Ok(Command::Check),
            Some("VERSION") => Ok(Command::Version),
            Some("GC") => Ok(Command::Gc),
            Some("STATUS") => Ok(Command::Status),
            Some(other) => Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_COMMAND {other:?} is unknown; use ADD, DEL, CHECK, VERSION, GC or STATUS"),
            )),
            None => Err(CniError::new(
                code::INVALID_ENV,
                "CNI_COMMAND is not set; set it to ADD, DEL, CHECK, VERSION, GC or STATUS",
            )),
        }
    }

    /// CNI_CONTAINERID, validated as the spec says (alphanumerics plus `_.-`, starting alphanumeric).
    pub fn container_id(&self) -> Result<&str, CniError> {
        let id = self
            .container_id
            .as_deref()
            .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_CONTAINERID is not set"))?;
        let ok = id.len() <= 255
            && id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!(
                    "CNI_CONTAINERID {id:?} is invalid; use letters, digits, '_', '.' and '-', starting with a letter or digit"
                ),
            ));
        }
        Ok(id)
    }

    /// CNI_IFNAME, validated as a Linux interface name.
    pub fn ifname(&self) -> Result<&str, CniError> {
        let n = self
            .ifname
            .as_deref()
            .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_IFNAME is not set"))?;
        let ok =
            n.len() <= 15 && n != "." && n != ".." && n.chars().all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
        if !ok {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!(
                    "CNI_IFNAME {n:?} is not a valid interface name; use at most 15 characters without '/', ':' or spaces"
                ),
            ));
        }
        Ok(n)
    }

    /// CNI_NETNS, required for ADD and CHECK.
    pub fn netns(&self) -> Result<&str, CniError> {
        self.netns.as_deref().ok_or_else(|| {
            CniError::new(
                code::INVALID_ENV,
                "CNI_NETNS is not set; set it to the pod's network namespace path",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<NetConf, CniError> {
        parse(s.as_bytes())
    }

    #[test]
    fn accepts_the_design_config_with_defaults() {
        let c = p(r#"{"cniVersion":"1.1.0","name":"keel","type":"keel-cni","podCIDR":"10.42.1.0/24"}"#).unwrap();
        assert_eq!(c.pod_cidr.to_string(), "10.42.1.0/24");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!((c.mtu, c.cni_version.as_str()), (None, "1.1.0"));
    }

    #[test]
    fn each_bad_field_gets_its_code_and_says_what_to_fix() {
        let cases = [
            (r#"{"cniVersion":"1.1.0","name":"k"}"#, 7, "podCIDR"),
            (
                r#"{"cniVersion":"1.1.0","name":"k","podCIDR":"10.42.1.0"}"#,
                7,
                "A.B.C.D/N",
            ),
            (
                r#"{"cniVersion":"1.1.0","name":"k","podCIDR":"10.42.1.3/24"}"#,
                7,
                "host bits",
            ),
            (
                r#"{"cniVersion":"1.1.0","name":"k","podCIDR":"10.42.1.0/31"}"#,
                7,
                "/30 or larger",
            ),
            (
                r#"{"cniVersion":"9.0.0","name":"k","podCIDR":"10.42.1.0/24"}"#,
                1,
                "use one of",
            ),
            (
                r#"{"cniVersions":["9.0.0"],"name":"k","podCIDR":"10.42.1.0/24"}"#,
                1,
                "none of cniVersions",
            ),
            (r#"{"name":"k","podCIDR":"10.42.1.0/24"}"#, 7, "no cniVersion"),
            (r#"{"cniVersion":"1.0.0","podCIDR":"10.42.1.0/24"}"#, 7, "name"),
            (
                r#"{"cniVersion":"1.0.0","name":"k","type":"bridge","podCIDR":"10.42.1.0/24"}"#,
                7,
                "type",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"k","podCIDR":"10.42.1.0/24","mtu":9}"#,
                7,
                "mtu",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"k","podCIDR":"10.42.1.0/24","mtu":"x"}"#,
                6,
                "JSON",
            ),
            ("not json", 6, "JSON"),
        ];
        for (input, want, words) in cases {
            let e = p(input).unwrap_err();
            assert_eq!(e.code, want, "{input}: {e}");
            assert!(
                e.msg.contains(words),
                "{input}: message {:?} should mention {words:?}",
                e.msg
            );
        }
    }

    #[test]
    fn cni_versions_are_negotiated_and_gc_fields_read() {
        let c = p(r#"{"cniVersions":["0.4.0","1.0.0"],"name":"k","podCIDR":"10.42.1.0/24",
            "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#)
        .unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        assert_eq!(
            c.valid_attachments.unwrap(),
            vec![ValidAttachment {
                container_id: "a".into(),
                ifname: "eth0".into()
            }]
        );
        assert_eq!(version_of(br#"{"cniVersions":["0.4.0"]}"#), "0.4.0");
        assert_eq!(version_of(b"junk"), spec::LATEST);
    }

    #[test]
    fn env_validation() {
        let mut e = Env {
            command: Some("ADD".into()),
            container_id: Some("abc-1".into()),
            ifname: Some("eth0".into()),
            ..Default::default()
        };
        assert_eq!(e.command().unwrap(), Command::Add);
        assert!(e.container_id().is_ok() && e.ifname().is_ok());
        assert_eq!(e.netns().unwrap_err().code, 4);
        e.container_id = Some("../x".into());
        assert_eq!(e.container_id().unwrap_err().code, 4);
        e.ifname = Some("a-name-longer-than-15".into());
        assert_eq!(e.ifname().unwrap_err().code, 4);
        e.command = Some("FROB".into());
        assert_eq!(e.command().unwrap_err().code, 4);
    }
}
