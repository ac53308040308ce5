//! API errors: one JSON shape, a stable code, and the parameter at fault.
//!
//! ```json
//! {"error": {"code": "invalid_parameter", "message": "must be at most 1000", "field": "limit"}}
//! ```
//!
//! Bad input is always a 4xx that names what was wrong. A 5xx means the server or its database
//! failed, never that the request was malformed.

use crate::http::{json_response, Response};
use hyper::StatusCode;
use serde::Serialize;
use xray::export::ImportError;
use xray::store::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`invalid_parameter`, `not_found`, …).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The query parameter, path segment or body field at fault.
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A 400 for a request body that is not what the route accepts.
    pub fn invalid_body(field: Option<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_body",
            message: message.into(),
            field,
        }
    }

    /// A 404 for `what` (e.g. `execution`), naming the path segment.
    pub fn not_found(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A 404 for a path that is no route.
    pub fn no_route(path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no route {path}; see /api/v1/openapi.json"),
            field: None,
        }
    }

    /// A 405.
    pub fn method_not_allowed(method: &hyper::Method, allowed: &str) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: format!("{method} is not allowed here; allowed: {allowed}"),
            field: None,
        }
    }

    /// A 401.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "this server requires `Authorization: Bearer <token>`".into(),
            field: Some("Authorization".into()),
        }
    }

    /// A 403 for a cross-origin request from an origin that is not configured.
    pub fn forbidden_origin(origin: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden_origin",
            message: format!("origin {origin} is not allowed (see --cors-origin)"),
            field: Some("Origin".into()),
        }
    }

    /// A 413.
    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the request body is larger than {limit} bytes"),
            field: None,
        }
    }

    /// A 415 for a `Content-Encoding` the server does not decode.
    pub fn unsupported_encoding(encoding: &str) -> Self {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_encoding",
            message: format!(
                "Content-Encoding {encoding:?} is not supported; send gzip or identity"
            ),
            field: Some("Content-Encoding".into()),
        }
    }

    /// A 431 for a request head (request line and headers) larger than `limit` bytes.
    pub fn head_too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code: "header_too_large",
            message: format!("the request line and headers are larger than {limit} bytes"),
            field: None,
        }
    }

    /// A 429.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("too many requests; retry in {retry_after_s} s"),
            field: None,
        }
    }

    /// A 500 or 503 for a failure of the server or its database.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
            field: None,
        }
    }

    /// The JSON response.
    pub fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        json_response(self.status, &body)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidParameter { field, message } => ApiError::invalid(field, message),
            StoreError::Busy(m) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "busy",
                message: format!("the database is busy, retry: {m}"),
                field: None,
            },
            StoreError::Unsupported(q) => ApiError {
                status: StatusCode::NOT_IMPLEMENTED,
                code: "unsupported",
                message: format!("this server's store does not answer `{q}`"),
                field: None,
            },
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Invalid { field, message } => ApiError::invalid_body(Some(field), message),
            ImportError::Store(e) => e.into(),
        }
    }
}
