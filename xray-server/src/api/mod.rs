//! The handlers of API v1, one module per resource. Each is small: read the validated
//! parameters, ask the store (on the blocking pool), shape the answer.

pub mod candidates;
pub mod compare;
pub mod executions;
pub mod export;
pub mod meta;
pub mod records;
pub mod stats;
pub mod steps;

use crate::app::Call;
use crate::error::ApiError;
use crate::http::{bytes_response, empty_response, json_response, Response};
use hyper::header::{HeaderValue, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::{Hash, Hasher};

/// 200 with `value`, served fresh (lists, running things).
pub fn ok(value: &impl Serialize) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, value))
}

/// 200 with `value` and a strong ETag of its bytes; 304 when the client's `If-None-Match` has
/// it. For things that no longer change by themselves (finished executions and steps): clients
/// revalidate (`no-cache`) because tags and notes can still be edited.
pub fn cacheable(call: &Call, value: &impl Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::internal(format!("could not encode the response: {e}")))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let tag = format!("\"{:016x}-{:x}\"", hasher.finish(), body.len());
    let matches = call
        .headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == tag || t.trim() == "*");
    let mut response = if matches {
        empty_response(StatusCode::NOT_MODIFIED)
    } else {
        bytes_response(StatusCode::OK, "application/json", body)
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        headers.insert(ETAG, v);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The request body as `T`; a 400 naming the JSON path of the first problem.
pub fn json_body<T: DeserializeOwned>(call: &Call) -> Result<T, ApiError> {
    if call.body.is_empty() {
        return Err(ApiError::invalid_body(None, "a JSON body is required"));
    }
    let mut de = serde_json::Deserializer::from_slice(&call.body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // serde_path_to_error says "." for the whole body and "?" for a part of it where the
        // JSON itself did not parse (`records[0].?`): the field is what comes before the first
        // `?`, if anything does.
        let path = e.path().to_string();
        let path = match path.find('?') {
            Some(at) => path[..at].trim_end_matches('.').to_owned(),
            None => path,
        };
        let field = (!path.is_empty() && path != ".").then_some(path);
        ApiError::invalid_body(field, e.inner().to_string())
    })?;
    de.end()
        .map_err(|e| ApiError::invalid_body(None, e.to_string()))?;
    Ok(value)
}

/// The `n`th path parameter.
pub fn path(call: &Call, n: usize) -> &str {
    call.matched.path.get(n).map(String::as_str).unwrap_or("")
}
