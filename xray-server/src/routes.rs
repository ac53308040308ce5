//! The route table: every API route with its method, path pattern and accepted parameters.
//!
//! The table is data, not code spread over handlers, so the OpenAPI document can be checked
//! against it (a test walks both ways) and the validation middleware knows each route's
//! parameters before a handler runs.

use crate::error::ApiError;
use hyper::Method;

/// What a route does; the dispatcher maps it to a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteId {
    /// `GET /api/v1/executions`
    ListExecutions,
    /// `DELETE /api/v1/executions`
    DeleteExecutions,
    /// `GET /api/v1/executions/{id}`
    GetExecution,
    /// `PATCH /api/v1/executions/{id}`
    PatchExecution,
    /// `GET /api/v1/executions/{id}/export`
    ExportExecution,
    /// `GET /api/v1/steps`
    FindSteps,
    /// `GET /api/v1/steps/{id}`
    GetStep,
    /// `GET /api/v1/steps/{id}/evaluations`
    StepEvaluations,
    /// `GET /api/v1/steps/{id}/check-values`
    StepCheckValues,
    /// `GET /api/v1/steps/{id}/only-in`
    StepOnlyIn,
    /// `GET /api/v1/steps/{id}/verdict-changes`
    StepVerdictChanges,
    /// `GET /api/v1/candidates/{candidate_id}`
    Candidate,
    /// `GET /api/v1/stats`
    Stats,
    /// `GET /api/v1/compare`
    Compare,
    /// `POST /api/v1/ingest`
    Ingest,
    IngestRecords,
    /// `GET /api/v1/live` (WebSocket)
    Live,
    /// `GET /api/v1/openapi.json`
    OpenApi,
    /// `GET /api/v1/health`
    Health,
    /// `GET /api/v1/metrics`
    Metrics,
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// What it does.
    pub id: RouteId,
    /// Its method.
    pub method: Method,
    /// Its path, with `{name}` for a path parameter.
    pub pattern: &'static str,
    /// The query parameters it accepts.
    pub params: &'static [&'static str],
    /// Those of `params` that may repeat.
    pub repeatable: &'static [&'static str],
    /// Whether a configured token is required (every route but `health`).
    pub needs_token: bool,
    /// Whether it reads a request body.
    pub has_body: bool,
}

const fn get(id: RouteId, pattern: &'static str, params: &'static [&'static str]) -> Route {
    Route {
        id,
        method: Method::GET,
        pattern,
        params,
        repeatable: &[],
        needs_token: true,
        has_body: false,
    }
}

const fn with_body(id: RouteId, method: Method, pattern: &'static str) -> Route {
    Route {
        id,
        method,
        pattern,
        params: &[],
        repeatable: &[],
        needs_token: true,
        has_body: true,
    }
}

impl Route {
    const fn repeatable(mut self, repeatable: &'static [&'static str]) -> Route {
        self.repeatable = repeatable;
        self
    }

    const fn public(mut self) -> Route {
        self.needs_token = false;
        self
    }
}

const PAGE: &[&str] = &["limit", "cursor"];

/// Every API route.
pub static ROUTES: &[Route] = &[
    get(
        RouteId::ListExecutions,
        "/api/v1/executions",
        &[
            "name",
            "status",
            "tag",
            "since",
            "until",
            "min_steps",
            "max_steps",
            "q",
            "has_error",
            "limit",
            "cursor",
        ],
    )
    .repeatable(&["tag"]),
    with_body(
        RouteId::DeleteExecutions,
        Method::DELETE,
        "/api/v1/executions",
    ),
    get(RouteId::GetExecution, "/api/v1/executions/{id}", &[]),
    with_body(
        RouteId::PatchExecution,
        Method::PATCH,
        "/api/v1/executions/{id}",
    ),
    get(
        RouteId::ExportExecution,
        "/api/v1/executions/{id}/export",
        &["format"],
    ),
    get(
        RouteId::FindSteps,
        "/api/v1/steps",
        &[
            "kind",
            "name",
            "execution_name",
            "min_elimination",
            "status",
            "since",
            "until",
            "limit",
            "cursor",
        ],
    ),
    get(RouteId::GetStep, "/api/v1/steps/{id}", &[]),
    get(
        RouteId::StepEvaluations,
        "/api/v1/steps/{id}/evaluations",
        &[
            "passed", "check", "observed", "q", "sort", "metric", "limit", "cursor",
        ],
    ),
    get(
        RouteId::StepCheckValues,
        "/api/v1/steps/{id}/check-values",
        &["check", "limit"],
    ),
    get(
        RouteId::StepOnlyIn,
        "/api/v1/steps/{id}/only-in",
        &["other", "limit", "cursor"],
    ),
    get(
        RouteId::StepVerdictChanges,
        "/api/v1/steps/{id}/verdict-changes",
        &["other", "check", "limit", "cursor"],
    ),
    get(
        RouteId::Candidate,
        "/api/v1/candidates/{candidate_id}",
        PAGE,
    ),
    get(
        RouteId::Stats,
        "/api/v1/stats",
        &["name", "kind", "since", "until"],
    ),
    get(RouteId::Compare, "/api/v1/compare", &["a", "b"]),
    with_body(RouteId::Ingest, Method::POST, "/api/v1/ingest"),
    with_body(
        RouteId::IngestRecords,
        Method::POST,
        "/api/v1/ingest/records",
    ),
    get(RouteId::Live, "/api/v1/live", &["execution", "since"]),
    get(RouteId::OpenApi, "/api/v1/openapi.json", &[]),
    get(RouteId::Health, "/api/v1/health", &[]).public(),
    get(RouteId::Metrics, "/api/v1/metrics", &[]),
];

/// A matched route with its decoded path parameters, in pattern order.
#[derive(Debug)]
pub struct Matched {
    /// The route.
    pub route: &'static Route,
    /// Path parameters, percent-decoded.
    pub path: Vec<String>,
}

/// Finds the route for `method` and the percent-decoded `segments` of a path under `/api/`.
/// A path no route has is a 404; a path with routes for other methods is a 405 (with the methods
/// it allows).
pub fn find(method: &Method, segments: &[String]) -> Result<Matched, RouteError> {
    let mut allowed: Vec<&Method> = Vec::new();
    for route in ROUTES {
        let Some(path) = match_pattern(route.pattern, segments) else {
            continue;
        };
        if route.method == *method || (*method == Method::HEAD && route.method == Method::GET) {
            return Ok(Matched { route, path });
        }
        allowed.push(&route.method);
    }
    if allowed.is_empty() {
        Err(RouteError::NotFound)
    } else {
        let allowed = allowed
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(RouteError::MethodNotAllowed(allowed))
    }
}

/// Why no route matched.
#[derive(Debug)]
pub enum RouteError {
    /// No route has this path.
    NotFound,
    /// Routes have this path, with these methods.
    MethodNotAllowed(String),
}

impl RouteError {
    /// The API error for it.
    pub fn into_api(self, method: &Method, path: &str) -> ApiError {
        match self {
            RouteError::NotFound => ApiError::no_route(path),
            RouteError::MethodNotAllowed(allowed) => ApiError::method_not_allowed(method, &allowed),
        }
    }
}

fn match_pattern(pattern: &str, segments: &[String]) -> Option<Vec<String>> {
    let parts: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut captured = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') {
            if segment.is_empty() {
                return None;
            }
            captured.push(segment.clone());
        } else if part != segment {
            return None;
        }
    }
    Some(captured)
}

/// Splits a raw URI path into percent-decoded segments; `None` if a segment is not UTF-8 or is
/// `.`/`..` (never walked, whatever the route).
pub fn segments(path: &str) -> Option<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|raw| {
            let decoded = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()?
                .into_owned();
            (decoded != "." && decoded != "..").then_some(decoded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(path: &str) -> Vec<String> {
        segments(path).expect("accepted")
    }

    #[test]
    fn routes_match_by_method_and_pattern() {
        let m = find(&Method::GET, &seg("/api/v1/steps/abc/evaluations")).expect("accepted");
        assert_eq!(m.route.id, RouteId::StepEvaluations);
        assert_eq!(m.path, ["abc"]);
        let m = find(&Method::GET, &seg("/api/v1/candidates/B0%2F1")).expect("accepted");
        assert_eq!(m.path, ["B0/1"]);
        assert!(matches!(
            find(&Method::PUT, &seg("/api/v1/executions")),
            Err(RouteError::MethodNotAllowed(a)) if a == "GET, DELETE"
        ));
        assert!(matches!(
            find(&Method::GET, &seg("/api/v1/nothing")),
            Err(RouteError::NotFound)
        ));
    }

    #[test]
    fn dot_segments_are_refused() {
        assert!(segments("/api/v1/../etc").is_none());
        assert!(segments("/api/v1/%2e%2e/etc").is_none());
    }
}
