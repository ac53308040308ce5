//! `/api/v1/openapi.json`, `/api/v1/health`, `/api/v1/metrics`.

use super::ok;
use crate::app::App;
use crate::error::ApiError;
use crate::http::{bytes_response, Response};
use hyper::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use xray::store::RecorderCounts;

/// The OpenAPI 3 document of this API (a test checks it against the route table both ways).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub fn openapi() -> Response {
    bytes_response(StatusCode::OK, "application/json", OPENAPI)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    latest_seq: u64,
    websocket_clients: i64,
    /// What recorders lost, as stored in the database: records dropped (a full queue, or made
    /// after their step ended) and records they failed to write; and the executions their
    /// sampling left out. `null` when the store keeps no counts. The viewer warns when a loss
    /// is not zero, and says when runs were sampled out.
    recorder: Option<RecorderCounts>,
}

/// `GET /health`: 200 when the database answers, 503 (with the reason) when it does not.
pub async fn health(app: &Arc<App>) -> Result<Response, ApiError> {
    let latest_seq = app
        .blocking(|s| s.latest_seq())
        .await
        .map_err(|e| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: format!("the database does not answer: {}", e.message),
            field: None,
        })?;
    let recorder = app.blocking(|s| s.recorder_counts()).await.ok();
    ok(&Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        latest_seq,
        websocket_clients: app.metrics.websocket_clients.get(),
        recorder,
    })
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(app: &Arc<App>) -> Result<Response, ApiError> {
    let counts = app.blocking(|s| s.recorder_counts()).await?;
    Ok(bytes_response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        app.metrics.render(counts),
    ))
}
