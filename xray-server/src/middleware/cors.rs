//! CORS for configured origins only.
//!
//! A request with no `Origin`, or from this server's own origin (the embedded viewer), passes
//! untouched. A request from a configured origin passes with `Access-Control-Allow-Origin` set to
//! it; its preflight is answered here. Any other origin is refused with 403 before anything runs,
//! so a page on another site can neither read the API nor make it write (or open the live
//! WebSocket, which browsers do not guard with CORS).

use crate::error::ApiError;
use crate::http::{empty_response, Response};
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, HOST, ORIGIN, VARY,
};
use hyper::{HeaderMap, Method, StatusCode};

/// What CORS decided for a request.
pub enum Decision {
    /// Not cross-origin: go on, add nothing.
    SameOrigin,
    /// A configured origin: go on, and allow it on the response.
    Allowed(HeaderValue),
    /// Answer now (a preflight, or a refusal).
    Respond(Response),
}

/// Decides for a request with `method` and `headers`, given the configured `origins`.
pub fn decide(method: &Method, headers: &HeaderMap, origins: &[String]) -> Decision {
    let Some(origin) = headers.get(ORIGIN) else {
        return Decision::SameOrigin;
    };
    let origin_text = origin.to_str().unwrap_or("");
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    if let Some(host) = host {
        let own = origin_text
            .strip_prefix("http://")
            .or_else(|| origin_text.strip_prefix("https://"));
        if own == Some(host) {
            return Decision::SameOrigin;
        }
    }
    if !origins.iter().any(|o| o == origin_text) {
        return Decision::Respond(ApiError::forbidden_origin(origin_text).into_response());
    }
    if *method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        let mut response = empty_response(StatusCode::NO_CONTENT);
        let h = response.headers_mut();
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PATCH, DELETE"),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, if-none-match"),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        allow(h, origin.clone());
        return Decision::Respond(response);
    }
    Decision::Allowed(origin.clone())
}

/// Marks a response as readable by `origin`.
pub fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("etag, retry-after, x-ratelimit-limit, x-ratelimit-remaining"),
    );
}
