//! `/api/v1/executions/{id}/export` and `/api/v1/ingest`: one JSON shape out and in
//! ([`xray::export`]), so a run exported from one server can be ingested by another, and a process
//! on another machine can send its records.

use super::{json_body, ok, path};
use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::{bytes_response, Response};
use crate::params::path_uuid;
use hyper::header::{HeaderValue, CONTENT_DISPOSITION};
use hyper::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use xray::export::{ExportDocument, ExportedExecution};

/// `GET /executions/{id}/export?format=json|csv`: the run as one JSON document (the shape ingest
/// accepts), or its evaluations as CSV, one row per candidate per step.
pub async fn export(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let id = path_uuid(path(&call, 0), "execution")?;
    let format = call.params.text("format").unwrap_or_else(|| "json".into());
    if format != "json" && format != "csv" {
        return Err(ApiError::invalid(
            "format",
            format!("expected json or csv, got {format:?}"),
        ));
    }
    let run = app
        .blocking(move |s| ExportedExecution::read(s, id))
        .await?
        .ok_or_else(|| ApiError::not_found("execution", format!("no execution {id}")))?;
    let (body, content_type) = if format == "json" {
        let body = serde_json::to_vec(&ExportDocument::new(vec![run]))
            .map_err(|e| ApiError::internal(format!("could not encode the export: {e}")))?;
        (body, "application/json")
    } else {
        (csv(&run)?, "text/csv; charset=utf-8")
    };
    let mut response = bytes_response(StatusCode::OK, content_type, body);
    let disposition = format!("attachment; filename=\"xray-{id}.{format}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

const CSV_HEADER: [&str; 12] = [
    "execution_id",
    "step_id",
    "step_name",
    "step_kind",
    "candidate_id",
    "label",
    "passed",
    "selected",
    "score",
    "failed_checks",
    "reasons",
    "metrics",
];

fn csv(run: &ExportedExecution) -> Result<Vec<u8>, ApiError> {
    let fail = |e: csv::Error| ApiError::internal(format!("could not write CSV: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER).map_err(fail)?;
    let execution_id = run.id.to_string();
    for step in &run.steps {
        let step_id = step.id.to_string();
        for e in &step.evaluations {
            let failed: Vec<&str> = e
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.as_str())
                .collect();
            let reasons: Vec<String> = e
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.reason.as_deref().unwrap_or("failed")))
                .collect();
            let metrics = if e.metrics.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&e.metrics).unwrap_or_default()
            };
            out.write_record([
                execution_id.as_str(),
                step_id.as_str(),
                step.name.as_str(),
                step.kind.as_deref().unwrap_or(""),
                e.candidate_id.as_str(),
                e.label.as_deref().unwrap_or(""),
                if e.passed { "true" } else { "false" },
                if e.selected { "true" } else { "false" },
                &e.score.map(|s| s.to_string()).unwrap_or_default(),
                &failed.join(";"),
                &reasons.join("; "),
                &metrics,
            ])
            .map_err(fail)?;
        }
    }
    out.into_inner()
        .map_err(|e| ApiError::internal(format!("could not write CSV: {e}")))
}

#[derive(Serialize)]
struct Ingested {
    executions: usize,
    steps: usize,
    evaluations: usize,
}

/// `POST /ingest`: an [`ExportDocument`], written in one transaction; idempotent by id.
pub async fn ingest(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let document: ExportDocument = json_body(&call)?;
    document.validate()?;
    let counts = Ingested {
        executions: document.executions.len(),
        steps: document.executions.iter().map(|e| e.steps.len()).sum(),
        evaluations: document
            .executions
            .iter()
            .flat_map(|e| &e.steps)
            .map(|s| s.evaluations.len())
            .sum(),
    };
    app.queued(move |store| document.write_to(store)).await??;
    ok(&counts)
}
