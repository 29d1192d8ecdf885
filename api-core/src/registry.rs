//! The table of resources the API server serves: group, version, kind, plural, scope and subresources.
//!
//! Everything that needs to know "which kinds exist" (routing, discovery, OpenAPI, defaults, tables, selectors)
//! reads this one table, so adding a kind is one entry here plus its per-kind hooks.

/// One served resource (a group/version/plural triple).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group; empty for the core group (`/api/v1`).
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular name, lowercase kind.
    pub singular: &'static str,
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// kubectl short names, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Discovery categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Subresources served under `<name>/<sub>`: any of `status`, `scale`, `binding`.
    pub subresources: &'static [&'static str],
}

impl ResourceDef {
    /// `v1` for core, `apps/v1` otherwise: the value of `apiVersion` in objects of this kind.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Deployment.apps` / `Pod`: how Kubernetes names the kind in error messages (`qualifiedKind`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `deployments.apps` / `pods`: the group-qualified resource as used in NotFound/Conflict messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether this kind has `metadata.generation`, bumped when anything but metadata and status changes.
    pub fn has_spec(&self) -> bool {
        // As in Kubernetes v1.33: workloads track generation; pods, services, nodes and namespaces do not.
        matches!(
            self.kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job"
        )
    }

    /// Whether the main resource ignores `status` on create/update (true when a `status` subresource exists).
    pub fn has_status_subresource(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The `metadata.name` rule for this kind: DNS-1123 subdomain for most kinds, label for a few.
    pub fn name_rule(&self) -> NameRule {
        match self.kind {
            "Namespace" | "Service" => NameRule::Label,
            _ => NameRule::Subdomain,
        }
    }
}

/// The validation rule applied to `metadata.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253 characters.
    Subdomain,
    /// RFC 1123 label: lowercase alphanumerics and '-', at most 63 characters.
    Label,
}

const ALL: &[&str] = &["all"];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
        }
    };
}

/// Every resource served, in discovery order.
pub static RESOURCES: &[ResourceDef] = &[
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        &[],
        &["status"]
    ),
    res!("", "v1", "Node", "nodes", "node", false, &["no"], &[], &["status"]),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        ALL,
        &["status", "binding"]
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        ALL,
        &["status"]
    ),
    res!("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"], &[], &[]),
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        &[],
        &[]
    ),
    res!("", "v1", "Secret", "secrets", "secret", true, &[], &[], &[]),
    res!("", "v1", "Event", "events", "event", true, &["ev"], &[], &[]),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[],
        &[]
    ),
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        &["status", "scale"]
    ),
    res!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        &["status", "scale"]
    ),
    res!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        ALL,
        &["status", "scale"]
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        ALL,
        &["status"]
    ),
    res!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        &[],
        &[],
        &[]
    ),
    res!("batch", "v1", "Job", "jobs", "job", true, &[], ALL, &["status"]),
    res!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        &[],
        &[],
        &[]
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        &[],
        &[]
    ),
];

/// The API groups served (excluding core), in discovery order, with their single version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Look a resource up by URL parts.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Look a resource up by `apiVersion` and `kind` as written in an object.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// All resources of one group/version.
pub fn in_group_version(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    let group = group.to_string();
    let version = version.to_string();
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let d = by_plural("apps", "v1", "deployments").expect("deployments registered");
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(by_kind("apps/v1", "Deployment"), Some(d));
        assert_eq!(d.qualified_resource(), "deployments.apps");
        assert!(by_plural("", "v1", "deployments").is_none());
        assert_eq!(by_kind("v1", "Pod").map(|p| p.plural), Some("pods"));
    }

    #[test]
    fn plurals_are_unique_per_group() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(!(a.group == b.group && a.plural == b.plural), "{} twice", a.plural);
            }
        }
    }

    #[test]
    fn groups_listed_once() {
        let g = groups();
        assert_eq!(g.first(), Some(&("apps", "v1")));
        assert_eq!(g.len(), 4);
    }
}
