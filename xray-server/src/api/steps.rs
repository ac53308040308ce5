//! `/api/v1/steps`: one step with everything it recorded, its candidates page by page, and the
//! cross-pipeline question "every run where the filter step eliminated more than 90%".

use super::{cacheable, ok, path};
use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::Response;
use crate::params::path_uuid;
use serde::Serialize;
use std::sync::Arc;
use xray::model::{Status, StepRecord};
use xray::store::{EvaluationQuery, EvaluationSort, StepQuery, MAX_PAGE_SIZE};

/// `GET /steps`.
pub async fn find(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let p = &call.params;
    let query = StepQuery {
        kind: p.text("kind"),
        name: p.text("name"),
        execution_name: p.text("execution_name"),
        min_elimination: p.ratio("min_elimination")?,
        status: p.status("status")?,
        since: p.time("since")?,
        until: p.time("until")?,
        limit: p.limit(MAX_PAGE_SIZE)?,
        cursor: p.text("cursor"),
    };
    let page = app.blocking(move |s| s.find_steps(&query)).await?;
    ok(&page)
}

#[derive(Serialize)]
struct StepView {
    #[serde(flatten)]
    step: StepRecord,
    duration_us: Option<i64>,
    elimination: Option<f64>,
    execution_name: Option<String>,
}

/// `GET /steps/{id}`: input, output, filters, selection, reasoning, metadata, logs, error,
/// timing, and the summary of its evaluations (the rows themselves are paged separately).
pub async fn get(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let id = path_uuid(path(&call, 0), "step")?;
    let step = app
        .blocking(move |s| s.step(id))
        .await?
        .ok_or_else(|| ApiError::not_found("step", format!("no step {id}")))?;
    let execution_id = step.execution_id;
    let execution_name = app
        .blocking(move |s| s.execution(execution_id))
        .await?
        .map(|e| e.execution.name);
    let running = step.status == Status::Running;
    let view = StepView {
        duration_us: step.duration_us(),
        elimination: step.elimination(),
        execution_name,
        step,
    };
    // The rows are under /evaluations; leave the empty list out rather than suggest "none".
    let mut value = serde_json::to_value(&view)
        .map_err(|e| ApiError::internal(format!("could not encode the step: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        object.remove("evaluations");
    }
    if running {
        ok(&value)
    } else {
        cacheable(&call, &value)
    }
}

/// `GET /steps/{id}/evaluations`: "all products that failed the rating filter".
pub async fn evaluations(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let id = path_uuid(path(&call, 0), "step")?;
    let p = &call.params;
    let sort = match p.text("sort").as_deref() {
        None | Some("recorded") => EvaluationSort::Recorded,
        Some("score") | Some("-score") | Some("score_desc") => EvaluationSort::ScoreDesc,
        Some("score_asc") | Some("+score") => EvaluationSort::ScoreAsc,
        Some("metric") | Some("metric_desc") => EvaluationSort::MetricDesc,
        Some("metric_asc") => EvaluationSort::MetricAsc,
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!(
                    "expected recorded, score (highest first), score_asc, metric (highest \
                     first, with metric=<name>) or metric_asc, got {other:?}"
                ),
            ))
        }
    };
    let query = EvaluationQuery {
        passed: p.bool("passed")?,
        check: p.text("check"),
        observed: p.text("observed"),
        q: p.search("q")?,
        sort,
        metric: p.text("metric"),
        limit: p.limit(MAX_PAGE_SIZE)?,
        cursor: p.text("cursor"),
    };
    if query.observed.is_some() && query.check.is_none() {
        return Err(ApiError::invalid(
            "observed",
            "observed is a value one check saw: name the check too (check=<name>)",
        ));
    }
    let first_page = query.cursor.is_none();
    let check = query.check.clone();
    let metric = query.metric.clone().filter(|_| query.sort.by_metric());
    let page = app.blocking(move |s| s.evaluations(id, &query)).await?;
    if let (Some(metric), true) = (metric, first_page) {
        // Rows with the metric sort first: a first row without it may mean a misspelled
        // name, which would otherwise read as "sorted" in recorded order.
        let has = |e: &xray::model::Evaluation| e.metrics.iter().any(|(name, _)| *name == metric);
        if page.items.first().is_some_and(|e| !has(e)) {
            unknown_metric(app, id, metric).await?;
        }
    }
    if page.items.is_empty() && first_page {
        // An empty first page: a step with no matching rows, no step at all, or a check the
        // step never made (a misspelled name must not read as "nothing failed it").
        let Some(step) = app.blocking(move |s| s.step(id)).await? else {
            return Err(ApiError::not_found("step", format!("no step {id}")));
        };
        if let Some(check) = check {
            known_check(&step, &check)?;
        }
    }
    ok(&page)
}

/// Rows of a step read for the names of its metrics, when a request names one it lacks.
const METRIC_NAMES_FROM: usize = 200;

/// Fails, naming `metric` and the metrics the step did record, when no evaluation of step `id`
/// has `metric` (whatever the page's other filters).
async fn unknown_metric(app: &Arc<App>, id: uuid::Uuid, metric: String) -> Result<(), ApiError> {
    // The step's first row by the metric has it, if any row does.
    let probe = EvaluationQuery {
        sort: EvaluationSort::MetricDesc,
        metric: Some(metric.clone()),
        limit: Some(1),
        ..EvaluationQuery::default()
    };
    let name = metric.clone();
    let first = app.blocking(move |s| s.evaluations(id, &probe)).await?;
    if first
        .items
        .first()
        .is_some_and(|e| e.metrics.iter().any(|(n, _)| *n == name))
    {
        return Ok(());
    }
    // The names to suggest, from the step's first rows.
    let sample = EvaluationQuery {
        limit: Some(METRIC_NAMES_FROM),
        ..EvaluationQuery::default()
    };
    let rows = app.blocking(move |s| s.evaluations(id, &sample)).await?;
    let mut names: Vec<&str> = Vec::new();
    for e in &rows.items {
        for (name, _) in &e.metrics {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    Err(not_among(
        "metric",
        &format!("step {id} recorded"),
        &metric,
        &names,
    ))
}

/// Fails, naming `check` and the step's checks, when the step made no check of that name (a
/// misspelled name must not read as "nothing failed it"). A step without a summary of its
/// evaluations (still running, or it made none) has nothing to check against.
fn known_check(step: &StepRecord, check: &str) -> Result<(), ApiError> {
    let Some(summary) = &step.summary else {
        return Ok(());
    };
    let names: Vec<&str> = summary.checks.iter().map(|c| c.name.as_str()).collect();
    if names.contains(&check) {
        return Ok(());
    }
    Err(not_among(
        "check",
        &format!("step {} made", step.id),
        check,
        &names,
    ))
}

/// The 400 for a `field` (`check`, `metric`) naming something the step has none of: "step …
/// made no check named "categroy"; its checks: price, rating, category".
fn not_among(field: &str, subject: &str, name: &str, names: &[&str]) -> ApiError {
    ApiError::invalid(
        field,
        if names.is_empty() {
            format!("{subject} no {field}s, so none is named {name:?}")
        } else {
            format!(
                "{subject} no {field} named {name:?}; its {field}s: {}",
                names.join(", ")
            )
        },
    )
}

/// Values listed by `/check-values` when the request names no `limit`.
const DEFAULT_CHECK_VALUES: usize = 20;

/// `GET /steps/{id}/check-values?check=`: the values one check observed, the most frequent
/// first, each with how many passed and failed it ("keyword: phone case 1,405").
pub async fn check_values(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let id = path_uuid(path(&call, 0), "step")?;
    let p = &call.params;
    let check = p.text("check").filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::invalid("check", "required: the name of one of the step's checks")
    })?;
    let limit = p.limit(MAX_PAGE_SIZE)?.unwrap_or(DEFAULT_CHECK_VALUES);
    let step = app
        .blocking(move |s| s.step(id))
        .await?
        .ok_or_else(|| ApiError::not_found("step", format!("no step {id}")))?;
    known_check(&step, &check)?;
    let values = app
        .blocking(move |s| s.check_values(id, &check, limit))
        .await?;
    if step.status == Status::Running {
        ok(&values)
    } else {
        cacheable(&call, &values)
    }
}
