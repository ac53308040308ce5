//! `/api/v1/executions`: the runs list, one run with its step tree and funnel, tags and notes,
//! bulk delete.

use super::{cacheable, json_body, ok, path};
use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::Response;
use crate::params::path_uuid;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;
use xray::model::{Json, Status};
use xray::store::{ExecutionQuery, ExecutionSummary, ExecutionUpdate, StepSummary, MAX_PAGE_SIZE};

/// `GET /executions`.
pub async fn list(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let p = &call.params;
    let query = ExecutionQuery {
        name: p.text("name"),
        status: p.status("status")?,
        tags: p.all("tag"),
        since: p.time("since")?,
        until: p.time("until")?,
        min_steps: p.count("min_steps")?,
        max_steps: p.count("max_steps")?,
        q: p.search("q")?,
        has_error: p.bool("has_error")?,
        limit: p.limit(MAX_PAGE_SIZE)?,
        cursor: p.text("cursor"),
    };
    let page = app.blocking(move |s| s.list_executions(&query)).await?;
    ok(&page)
}

/// One step in the tree: its summary, its depth and its children, in start order.
#[derive(Serialize)]
struct TreeStep {
    #[serde(flatten)]
    step: StepSummary,
    depth: u32,
    children: Vec<Uuid>,
    duration_us: Option<i64>,
}

/// One row of the funnel: candidates in and out of a step that counted them, and the loss
/// attributed to the check that rejected each candidate first.
#[derive(Serialize)]
struct FunnelRow {
    step_id: Uuid,
    name: String,
    kind: Option<String>,
    candidates_in: Option<u64>,
    candidates_out: Option<u64>,
    eliminated: Option<u64>,
    lost_to: Vec<CheckLoss>,
    /// The checks the step made that rejected no candidate at all, in the order it made them,
    /// when some other check of the step did: a filter that let everything through
    /// ("category" in a run that compared departments) is a finding too, and a silent one in
    /// `lost_to`. (Empty when no check rejected anything: the step's checks then only say
    /// what it saw, as a search's `keyword` does.)
    rejected_none: Vec<String>,
    /// The step's status: a step that failed counted only what it judged before it stopped.
    status: Status,
    error: Option<String>,
}

#[derive(Serialize)]
struct CheckLoss {
    check: String,
    /// Candidates this check was the first to fail.
    eliminated: u64,
    /// Candidates that failed it, first or not: what `top_reasons` count.
    failed: u64,
    top_reasons: Vec<(String, u64)>,
}

#[derive(Serialize, Default)]
struct Counts {
    steps: u64,
    running: u64,
    ok: u64,
    error: u64,
    lost: u64,
    evaluations: u64,
}

#[derive(Serialize)]
struct ExecutionView {
    #[serde(flatten)]
    execution: ExecutionSummary,
    metadata: Json,
    input: Option<Json>,
    output: Option<Json>,
    duration_us: Option<i64>,
    counts: Counts,
    funnel: Vec<FunnelRow>,
    /// Steps in tree order (each parent before its children), with depth.
    steps: Vec<TreeStep>,
}

/// `GET /executions/{id}`.
pub async fn get(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let id = path_uuid(path(&call, 0), "execution")?;
    let detail = app
        .blocking(move |s| s.execution(id))
        .await?
        .ok_or_else(|| ApiError::not_found("execution", format!("no execution {id}")))?;
    let running = detail.execution.status == Status::Running;
    let mut counts = Counts::default();
    for step in &detail.steps {
        counts.steps += 1;
        match step.status {
            Status::Running => counts.running += 1,
            Status::Ok => counts.ok += 1,
            Status::Error => counts.error += 1,
            Status::Lost => counts.lost += 1,
        }
        // Summaries may come from an ingested document: a total can be any u64.
        counts.evaluations = counts
            .evaluations
            .saturating_add(step.summary.as_ref().map_or(0, |s| s.total));
    }
    let steps = tree_order(detail.steps);
    let funnel = steps
        .iter()
        .filter(|t| t.step.candidates_in.is_some() || t.step.candidates_out.is_some())
        .map(|t| funnel_row(&t.step))
        .collect();
    let e = &detail.execution;
    let view = ExecutionView {
        duration_us: e.completed_at.map(|end| end.saturating_sub(e.started_at)),
        execution: detail.execution,
        metadata: detail.metadata,
        input: detail.input,
        output: detail.output,
        counts,
        funnel,
        steps,
    };
    if running || view.counts.running > 0 {
        ok(&view)
    } else {
        cacheable(&call, &view)
    }
}

fn funnel_row(step: &StepSummary) -> FunnelRow {
    let mut lost_to: Vec<CheckLoss> = step
        .summary
        .iter()
        .flat_map(|s| &s.checks)
        .filter(|c| c.first_failed > 0)
        .map(|c| CheckLoss {
            check: c.name.clone(),
            eliminated: c.first_failed,
            failed: c.failed,
            top_reasons: c.top_reasons.iter().take(3).cloned().collect(),
        })
        .collect();
    lost_to.sort_by_key(|c| std::cmp::Reverse(c.eliminated));
    // Only beside checks that did reject some: a step none of whose checks rejects anything
    // (a search recording the keyword that found each candidate) uses them to say what it saw.
    let rejected_none = if lost_to.is_empty() {
        Vec::new()
    } else {
        step.summary
            .iter()
            .flat_map(|s| &s.checks)
            .filter(|c| c.failed == 0)
            .map(|c| c.name.clone())
            .collect()
    };
    FunnelRow {
        step_id: step.id,
        name: step.name.clone(),
        kind: step.kind.clone(),
        candidates_in: step.candidates_in,
        candidates_out: step.candidates_out,
        eliminated: match (step.candidates_in, step.candidates_out) {
            (Some(i), Some(o)) => Some(i.saturating_sub(o)),
            _ => None,
        },
        lost_to,
        rejected_none,
        status: step.status,
        error: step.error.clone(),
    }
}

/// Orders steps depth-first (children after their parent, siblings by start), with depths.
fn tree_order(steps: Vec<StepSummary>) -> Vec<TreeStep> {
    let ids: std::collections::HashSet<Uuid> = steps.iter().map(|s| s.id).collect();
    let mut children: HashMap<Option<Uuid>, Vec<StepSummary>> = HashMap::new();
    for step in steps {
        // A parent that is not in this execution (lost) makes the step a root.
        let parent = step.parent_id.filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(step);
    }
    let mut out = Vec::new();
    let mut stack: Vec<(StepSummary, u32)> = children
        .remove(&None)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .map(|s| (s, 0))
        .collect();
    while let Some((step, depth)) = stack.pop() {
        let kids = children.remove(&Some(step.id)).unwrap_or_default();
        let child_ids = kids.iter().map(|k| k.id).collect();
        stack.extend(kids.into_iter().rev().map(|k| (k, depth + 1)));
        out.push(TreeStep {
            duration_us: step.ended_at.map(|end| end.saturating_sub(step.started_at)),
            step,
            depth,
            children: child_ids,
        });
    }
    out
}

/// The body of `PATCH /executions/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    tags: Option<Vec<String>>,
    notes: Option<String>,
}

const MAX_TAGS: usize = 50;
const MAX_TAG_CHARS: usize = 100;
const MAX_NOTES_CHARS: usize = 10_000;

/// `PATCH /executions/{id}`: replace tags and/or notes.
pub async fn patch(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let id = path_uuid(path(&call, 0), "execution")?;
    let patch: Patch = json_body(&call)?;
    if let Some(tags) = &patch.tags {
        if tags.len() > MAX_TAGS {
            return Err(ApiError::invalid_body(
                Some("tags".into()),
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        if let Some(i) = tags
            .iter()
            .position(|t| t.trim().is_empty() || t.chars().count() > MAX_TAG_CHARS)
        {
            return Err(ApiError::invalid_body(
                Some(format!("tags[{i}]")),
                format!("a tag is 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
    }
    if patch
        .notes
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS)
    {
        return Err(ApiError::invalid_body(
            Some("notes".into()),
            format!("at most {MAX_NOTES_CHARS} characters"),
        ));
    }
    let update = ExecutionUpdate {
        tags: patch.tags,
        notes: patch.notes,
    };
    let found = app
        .blocking(move |s| s.update_execution(id, &update))
        .await?;
    if !found {
        return Err(ApiError::not_found(
            "execution",
            format!("no execution {id}"),
        ));
    }
    let detail = app
        .blocking(move |s| s.execution(id))
        .await?
        .ok_or_else(|| ApiError::not_found("execution", format!("no execution {id}")))?;
    ok(&detail.execution)
}

/// The body of `DELETE /executions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    ids: Vec<Uuid>,
}

#[derive(Serialize)]
struct Deleted {
    deleted: u64,
}

/// `DELETE /executions` with `{"ids": [...]}`: deletes runs with everything they recorded.
pub async fn delete(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let body: Delete = json_body(&call)?;
    if body.ids.is_empty() || body.ids.len() > MAX_PAGE_SIZE {
        return Err(ApiError::invalid_body(
            Some("ids".into()),
            format!("give 1 to {MAX_PAGE_SIZE} execution ids"),
        ));
    }
    let deleted = app
        .blocking(move |s| s.delete_executions(&body.ids))
        .await?;
    ok(&Deleted { deleted })
}
