//! URL → route parsing for the Kubernetes REST layout (pure, unit-tested).

use api_core::registry::{self, ResourceDef};

/// A request on a served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// The resource.
    pub res: &'static ResourceDef,
    /// Namespace from the URL (namespaced resources only; None = all namespaces).
    pub namespace: Option<String>,
    /// Object name, when the URL names one.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `binding`, `finalize`).
    pub sub: Option<String>,
    /// True for the legacy `/watch/` URL form.
    pub watch_path: bool,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`, `/livez`, `/readyz` (and their `/…/<check>` children).
    Health,
    /// `/version`.
    Version,
    /// `/metrics`.
    Metrics,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    Resources(String, String),
    /// `/openapi/v3`.
    OpenApiIndex,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`.
    OpenApiGroupVersion(String, String),
    /// A resource collection or object.
    Resource(ResourcePath),
    /// Nothing is served here.
    NotFound,
}

/// Parse a URL path (without query).
pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["version"] => Route::Version,
        ["metrics"] => Route::Metrics,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => {
            if registry::groups().iter().any(|(name, _)| name == g) {
                Route::Group((*g).to_string())
            } else {
                Route::NotFound
            }
        }
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", "api", v] => Route::OpenApiGroupVersion(String::new(), (*v).to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiGroupVersion((*g).to_string(), (*v).to_string()),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    if registry::in_group_version(group, version).next().is_none() {
        return Route::NotFound;
    }
    let (watch_path, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    if rest.is_empty() {
        return if watch_path {
            Route::NotFound
        } else {
            Route::Resources(group.to_string(), version.to_string())
        };
    }
    let lookup = |plural: &str| registry::by_plural(group, version, plural);
    let (namespace, rest): (Option<String>, &[&str]) = match rest {
        // namespaces/<ns>/<plural>/... addresses a namespaced resource; namespaces/<ns>[/<sub>] the namespace.
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|r| r.namespaced) => {
            let mut v = vec![*plural];
            v.extend_from_slice(tail);
            return finish(lookup(plural), Some((*ns).to_string()), &v, watch_path);
        }
        _ => (None, rest),
    };
    let plural = rest[0];
    finish(lookup(plural), namespace, rest, watch_path)
}

fn finish(res: Option<&'static ResourceDef>, namespace: Option<String>, rest: &[&str], watch_path: bool) -> Route {
    let Some(res) = res else {
        return Route::NotFound;
    };
    let (name, sub) = match rest {
        [_] => (None, None),
        [_, name] => (Some((*name).to_string()), None),
        [_, name, sub] => (Some((*name).to_string()), Some((*sub).to_string())),
        _ => return Route::NotFound,
    };
    if let Some(s) = &sub {
        let ok = res.subresources.contains(&s.as_str()) || (res.kind == "Namespace" && s == "finalize");
        if !ok || watch_path {
            return Route::NotFound;
        }
    }
    Route::Resource(ResourcePath {
        res,
        namespace,
        name,
        sub,
        watch_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_resource_paths() {
        let r = res("/api/v1/namespaces/default/pods/web-1/status");
        assert_eq!(
            (
                r.res.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web-1"), Some("status"))
        );
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.res.plural, r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let r = res("/api/v1/namespaces/x/finalize");
        assert_eq!((r.res.plural, r.sub.as_deref()), ("namespaces", Some("finalize")));
        let r = res("/apis/apps/v1/deployments");
        assert_eq!((r.res.kind, r.namespace), ("Deployment", None));
        let r = res("/api/v1/watch/namespaces/default/pods");
        assert!(r.watch_path);
        let r = res("/apis/apps/v1/namespaces/d/deployments/web/scale");
        assert_eq!(r.sub.as_deref(), Some("scale"));
    }

    #[test]
    fn rejects_unknown() {
        assert_eq!(parse("/api/v1/namespaces/default/widgets"), Route::NotFound);
        assert_eq!(parse("/apis/nope/v1/things"), Route::NotFound);
        assert_eq!(parse("/api/v1/namespaces/default/pods/a/exec2"), Route::NotFound);
        assert_eq!(parse("/apis/apps/v1/namespaces/d/daemonsets/x/scale"), Route::NotFound);
        assert_eq!(parse("/api/v2/pods"), Route::NotFound);
        assert_eq!(parse("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(parse("/api/v1"), Route::Resources(String::new(), "v1".into()));
        assert_eq!(
            parse("/openapi/v3/apis/apps/v1"),
            Route::OpenApiGroupVersion("apps".into(), "v1".into())
        );
    }
}
