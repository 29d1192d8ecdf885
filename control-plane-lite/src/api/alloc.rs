//! ClusterIP and NodePort allocation for Services.
//!
//! Each allocated address or port is a key in the store (`/registry/ipaddresses/<ip>`,
//! `/registry/nodeports/<port>`), created with create-if-absent, so concurrent creates can never get the same one
//! and allocations survive restarts. Claims are made before the Service is stored and released if that fails; a
//! crash in between leaves a claim whose Service does not exist, which [`repair`] releases on start.

use std::net::Ipv4Addr;

use api_core::defaults::service_needs_node_ports;
use api_core::registry::ResourceDef;
use api_core::validation::FieldError;
use rand::Rng;
use serde_json::{Value, json};

use super::Api;
use super::error::{ApiError, Result};
use super::object::{self as obj, meta_str};
use crate::store;

const IP_PREFIX: &str = "/registry/ipaddresses/";
const PORT_PREFIX: &str = "/registry/nodeports/";
/// The NodePort range, as kube-apiserver's default `--service-node-port-range`.
pub const NODE_PORTS: (u16, u16) = (30000, 32767);

/// An IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    len: u8,
}

impl Cidr {
    /// Parse `10.43.0.0/16`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ip, len) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        if len > 30 {
            return None;
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        Some(Self {
            base: u32::from(ip) & mask,
            len,
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.len))
    }

    /// Whether `ip` is a usable address of this range (not the network or broadcast address).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size() - 1
    }

    /// The n-th address (1 = first usable).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// How many `/mask` subnets this range holds (0 when `mask` is shorter than the range's own prefix).
    pub fn subnet_count(&self, mask: u8) -> u32 {
        if mask < self.len || mask > 32 {
            return 0;
        }
        1u32.checked_shl(u32::from(mask - self.len)).unwrap_or(0)
    }

    /// The n-th `/mask` subnet (0-based); `n` must be below [`Cidr::subnet_count`].
    pub fn subnet(&self, n: u32, mask: u8) -> Self {
        let step = 1u32.checked_shl(32 - u32::from(mask)).unwrap_or(0);
        Self {
            base: self.base + n * step,
            len: mask,
        }
    }

    /// Whether `other` lies wholly inside this range.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.len >= self.len && other.base >= self.base && other.base - self.base < self.size()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.len)
    }
}

/// What a Service holds: its ClusterIP (if allocated from the range) and NodePorts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claims {
    ip: Option<Ipv4Addr>,
    ports: Vec<u16>,
}

fn owner(svc: &Value) -> String {
    format!(
        "{}/{}",
        meta_str(svc, "namespace").unwrap_or(""),
        meta_str(svc, "name").unwrap_or("")
    )
}

fn held(svc: &Value, range: &Cidr) -> Claims {
    let ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
        .filter(|ip| range.contains(*ip));
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p["nodePort"].as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    Claims { ip, ports }
}

impl Api {
    /// Create the claim `key` for `owner`; false when someone holds it already.
    pub(crate) async fn claim(&self, key: String, owner: &str) -> Result<bool> {
        match self
            .store
            .create(&key, json!({"owner": owner}).to_string().into_bytes())
            .await
        {
            Ok(_) => Ok(true),
            Err(store::Error::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(ApiError::unavailable(format!("allocating {key}: {e}"))),
        }
    }

    /// Drop the claim `key` (absent is fine).
    pub(crate) async fn unclaim(&self, key: &str) {
        if let Err(e) = self.store.delete(key, None).await
            && !matches!(e, store::Error::NotFound(_))
        {
            tracing::warn!(key, error = %e, "releasing allocation failed");
        }
    }

    /// Release every claim in `c`.
    pub(crate) async fn release(&self, c: &Claims) {
        if let Some(ip) = c.ip {
            self.unclaim(&format!("{IP_PREFIX}{ip}")).await;
        }
        for p in &c.ports {
            self.unclaim(&format!("{PORT_PREFIX}{p}")).await;
        }
    }

    /// Allocate what a Service being created or updated needs, writing the results into `svc`. `old` is the
    /// stored Service on update. Returns the new claims (to release if the write fails) and the claims `old` held
    /// that `svc` no longer does (to release once the write succeeds).
    pub(crate) async fn allocate(
        &self,
        res: &ResourceDef,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<(Claims, Claims)> {
        let name = meta_str(svc, "name").unwrap_or("").to_string();
        let me = owner(svc);
        let range = self.service_cidr;
        let before = old.map(|o| held(o, &range)).unwrap_or_default();
        let mut fresh = Claims::default();
        let result = self
            .allocate_inner(res, svc, old, &name, &me, &range, &before, &mut fresh)
            .await;
        if let Err(e) = result {
            self.release(&fresh).await;
            return Err(e);
        }
        let after = held(svc, &range);
        let dropped = Claims {
            ip: before.ip.filter(|ip| after.ip != Some(*ip)),
            ports: before
                .ports
                .iter()
                .copied()
                .filter(|p| !after.ports.contains(p))
                .collect(),
        };
        Ok((fresh, dropped))
    }

    #[allow(clippy::too_many_arguments)] // One private step of `allocate`, split out for its early returns.
    async fn allocate_inner(
        &self,
        res: &ResourceDef,
        svc: &mut Value,
        old: Option<&Value>,
        name: &str,
        me: &str,
        range: &Cidr,
        before: &Claims,
        fresh: &mut Claims,
    ) -> Result<()> {
        let invalid = |field: &str, v: Value, detail: &str| {
            ApiError::invalid(res, name, &[FieldError::invalid(field, v, detail)])
        };
        let external = svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if external {
            if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut)
                && requested.is_empty()
            {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        } else if requested == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
        } else if requested.is_empty() {
            if let Some(ip) = old
                .and_then(|o| o.pointer("/spec/clusterIP"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                // Updates that omit clusterIP keep the allocated one, as kubectl apply expects.
                svc["spec"]["clusterIP"] = json!(ip);
                svc["spec"]["clusterIPs"] = json!([ip]);
            } else {
                let ip = self.allocate_ip(range, me).await?;
                fresh.ip = Some(ip);
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
        } else {
            let ip: Ipv4Addr = requested.parse().map_err(|_| {
                invalid(
                    "spec.clusterIPs[0]",
                    json!(requested),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            })?;
            if !range.contains(ip) {
                return Err(invalid(
                    "spec.clusterIPs[0]",
                    json!(requested),
                    &format!(
                        "failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {range}"
                    ),
                ));
            }
            if before.ip != Some(ip) {
                if !self.claim(format!("{IP_PREFIX}{ip}"), me).await? {
                    return Err(invalid(
                        "spec.clusterIPs[0]",
                        json!(requested),
                        &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    ));
                }
                fresh.ip = Some(ip);
            }
            svc["spec"]["clusterIPs"] = json!([requested]);
        }
        let wants_ports = service_needs_node_ports(svc);
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, p) in ports.iter_mut().enumerate() {
            let field = format!("spec.ports[{i}].nodePort");
            if !wants_ports {
                if p.get("nodePort").is_some_and(|v| !v.is_null() && v != 0) {
                    return Err(invalid(
                        &field,
                        p["nodePort"].clone(),
                        "may not be used when `type` is 'ClusterIP'",
                    ));
                }
                continue;
            }
            match p.get("nodePort").and_then(Value::as_i64).filter(|v| *v != 0) {
                Some(n) => {
                    let port = u16::try_from(n)
                        .ok()
                        .filter(|n| (NODE_PORTS.0..=NODE_PORTS.1).contains(n))
                        .ok_or_else(|| {
                            invalid(
                                &field,
                                json!(n),
                                &format!(
                                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                                    NODE_PORTS.0, NODE_PORTS.1
                                ),
                            )
                        })?;
                    if !before.ports.contains(&port) && !fresh.ports.contains(&port) {
                        if !self.claim(format!("{PORT_PREFIX}{port}"), me).await? {
                            return Err(invalid(&field, json!(n), "provided port is already allocated"));
                        }
                        fresh.ports.push(port);
                    }
                }
                None => {
                    let port = self.allocate_port(me).await?;
                    fresh.ports.push(port);
                    p["nodePort"] = json!(port);
                }
            }
        }
        Ok(())
    }

    async fn allocate_ip(&self, range: &Cidr, me: &str) -> Result<Ipv4Addr> {
        let usable = range.size() - 2;
        let start = rand::rng().random_range(0..usable);
        // Random start, then linear probe: at most one pass over the range.
        for i in 0..usable {
            let n = (start + i) % usable + 1;
            let ip = range.nth(n);
            if self.claim(format!("{IP_PREFIX}{ip}"), me).await? {
                return Ok(ip);
            }
        }
        Err(ApiError::internal(format!(
            "no ClusterIPs left in the service range {range}: widen --service-cidr"
        )))
    }

    async fn allocate_port(&self, me: &str) -> Result<u16> {
        let count = u32::from(NODE_PORTS.1 - NODE_PORTS.0) + 1;
        let start = rand::rng().random_range(0..count);
        for i in 0..count {
            let port = NODE_PORTS.0 + ((start + i) % count) as u16;
            if self.claim(format!("{PORT_PREFIX}{port}"), me).await? {
                return Ok(port);
            }
        }
        Err(ApiError::internal("no NodePorts left in 30000-32767"))
    }

    /// Claims held by a stored Service (released when it is deleted).
    pub(crate) fn claims_of(&self, svc: &Value) -> Claims {
        held(svc, &self.service_cidr)
    }

    /// Release claims whose Service is gone or no longer holds them (after a crash between claim and write).
    pub(crate) async fn repair_allocations(&self) {
        for prefix in [IP_PREFIX, PORT_PREFIX] {
            let Ok(page) = self.store.list(prefix, None, None).await else {
                continue;
            };
            for kv in page.items {
                let Ok(v) = serde_json::from_slice::<Value>(&kv.value) else {
                    continue;
                };
                let own = v["owner"].as_str().unwrap_or("");
                let Some((ns, name)) = own.split_once('/') else {
                    continue;
                };
                let Some(svc_res) = api_core::registry::by_kind("v1", "Service") else {
                    return;
                };
                let key = obj::key(svc_res, Some(ns), name);
                let still = match self.store.get(&key).await {
                    Ok(Some(s)) => obj::from_kv(&s)
                        .map(|svc| {
                            let h = held(&svc, &self.service_cidr);
                            let item = kv.key.rsplit('/').next().unwrap_or("");
                            h.ip.is_some_and(|ip| ip.to_string() == item)
                                || h.ports.iter().any(|p| p.to_string() == item)
                        })
                        .unwrap_or(true),
                    Ok(None) => false,
                    Err(_) => true,
                };
                if !still {
                    tracing::info!(key = %kv.key, owner = own, "releasing leaked allocation");
                    self.unclaim(&kv.key).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_bounds() {
        let c = Cidr::parse("10.43.0.0/16").expect("cidr");
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 43, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 43, 255, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 43, 0, 0)));
        assert!(!c.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert_eq!(c.to_string(), "10.43.0.0/16");
        assert!(Cidr::parse("10.43.0.0/31").is_none());
        assert!(Cidr::parse("nope").is_none());
    }

    #[test]
    fn subnets_of_a_range() {
        let c = Cidr::parse("10.42.0.0/16").expect("cidr");
        assert_eq!(c.subnet_count(24), 256);
        assert_eq!(c.subnet(0, 24).to_string(), "10.42.0.0/24");
        assert_eq!(c.subnet(255, 24).to_string(), "10.42.255.0/24");
        assert_eq!(c.subnet_count(8), 0);
        assert!(c.covers(&Cidr::parse("10.42.7.0/24").expect("cidr")));
        assert!(!c.covers(&Cidr::parse("10.43.0.0/24").expect("cidr")));
        assert!(!c.covers(&Cidr::parse("10.0.0.0/8").expect("cidr")));
        assert_eq!(Cidr::parse("10.42.0.0/24").expect("cidr").subnet_count(24), 1);
    }

    #[test]
    fn held_reads_ip_and_ports() {
        let c = Cidr::parse("10.43.0.0/16").expect("cidr");
        let svc = json!({"spec": {"clusterIP": "10.43.0.7", "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        assert_eq!(
            held(&svc, &c),
            Claims {
                ip: Some(Ipv4Addr::new(10, 43, 0, 7)),
                ports: vec![30080]
            }
        );
        let headless = json!({"spec": {"clusterIP": "None"}});
        assert_eq!(held(&headless, &c), Claims::default());
    }
}
