//! The viewer's embedded files at `/`.
//!
//! Paths are percent-decoded and split into segments; `.` and `..` are refused, so no path can
//! walk out of the embedded set (which is not a directory on disk anyway). A path without a file
//! extension is a viewer route (`/runs/…`) and gets `index.html`, so every view has a URL that
//! reopens it. Files carry a strong ETag of their bytes.

use crate::error::ApiError;
use crate::http::{bytes_response, empty_response, Response};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use hyper::{Method, Request, StatusCode};
use std::hash::{Hash, Hasher};

/// Serves `request` from the embedded viewer.
pub fn serve(request: &Request<Incoming>) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response =
            ApiError::method_not_allowed(request.method(), "GET, HEAD").into_response();
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = request.uri().path();
    let Some(segments) = crate::routes::segments(path) else {
        return ApiError::no_route(path).into_response();
    };
    let joined = segments.join("/");
    let last = segments.last().map(String::as_str).unwrap_or("");
    let asset = if joined.is_empty() || !last.contains('.') {
        xray_viewer::asset("index.html")
    } else {
        xray_viewer::asset(&joined)
    };
    let Some(asset) = asset else {
        return ApiError::no_route(path).into_response();
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    asset.bytes.hash(&mut hasher);
    let tag = format!("\"{:016x}\"", hasher.finish());
    let fresh = request
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        empty_response(StatusCode::NOT_MODIFIED)
    } else if request.method() == Method::HEAD {
        bytes_response(StatusCode::OK, asset.content_type, Vec::new())
    } else {
        bytes_response(StatusCode::OK, asset.content_type, asset.bytes)
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        headers.insert(ETAG, v);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
