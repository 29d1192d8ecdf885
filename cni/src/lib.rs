//! keel-cni: a CNI 1.1 plugin that routes pod IPs per node (point-to-point veths with host routes, no bridge), its
//! file-backed IPAM, and the node route sync library the node agent runs (host-gw routes, VXLAN otherwise,
//! nftables masquerade).

pub mod cidr;
pub mod config;
pub mod ipam;
pub mod plugin;
pub mod routesync;
pub mod spec;
