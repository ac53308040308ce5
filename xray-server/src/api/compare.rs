//! `/api/v1/compare?a=&b=`: two runs step by step — what differs, and which candidates got a
//! different verdict, with the reasons on each side.
//!
//! Steps are paired by name and occurrence (the second `score` step of A with the second of B),
//! which is what "the same step in another run" means for a pipeline whose shape is stable.
//!
//! `/api/v1/steps/{id}/only-in?other=`: the candidates one step judged and the other did not,
//! paged: the comparison lists the first [`MAX_ONLY_IN_ONE`] of each side with their number and
//! the cursor of the rest.

use super::{ok, path};
use crate::app::{App, Call};
use crate::error::ApiError;
use crate::http::Response;
use crate::params::path_uuid;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;
use xray::model::{Json, StepRecord};
use xray::store::{
    CheckChange, CommonValues, ExecutionSummary, LineageQuery, OnlyIn, StepSummary, StoreError,
    VerdictChange, MAX_PAGE_SIZE,
};

/// The verdict changes listed per step pair; `truncated` says when there are more, and
/// `verdict_changes_cursor` pages on through `/steps/{id}/verdict-changes`.
pub const MAX_CHANGES_PER_STEP: usize = 500;

/// The candidates listed per step pair that only one side judged (their number is exact; the
/// rest are paged through `/steps/{id}/only-in`).
pub const MAX_ONLY_IN_ONE: usize = 20;

#[derive(Serialize)]
struct Comparison {
    a: ExecutionSummary,
    b: ExecutionSummary,
    steps: Vec<StepPair>,
}

#[derive(Serialize)]
struct StepPair {
    name: String,
    occurrence: usize,
    a: Option<StepSummary>,
    b: Option<StepSummary>,
    input_differs: bool,
    output_differs: bool,
    /// Both inputs, when they differ.
    inputs: Option<[Option<Json>; 2]>,
    /// Both outputs, when they differ.
    outputs: Option<[Option<Json>; 2]>,
    /// The filters each step applied (`xray::filters`) differ: the rule that changed, often
    /// the answer to why their verdicts did.
    filters_differ: bool,
    /// Both filters, when they differ.
    filters: Option<[Option<Json>; 2]>,
    verdict_changes: Vec<VerdictChange>,
    /// The checks behind the verdict changes: for each, how many changed candidates failed it
    /// in A only and in B only, the most first (all changes, not only those listed; a change
    /// can count under several checks, one of selection alone under none). Page
    /// through one check's with `/steps/{a}/verdict-changes?other={b}&check=`.
    verdict_changes_by_check: Vec<CheckChange>,
    /// How many candidates were judged differently in all (as many as `verdict_changes` lists,
    /// unless `truncated`); `None` from a store that cannot count them.
    verdict_changes_total: Option<u64>,
    truncated: bool,
    /// Where the verdict changes go on (`GET /steps/{a}/verdict-changes?other={b}&cursor=`).
    verdict_changes_cursor: Option<String>,
    /// Candidates A's step judged and B's did not (none when a side has no such step).
    only_a: OnlyIn,
    /// Candidates B's step judged and A's did not.
    only_b: OnlyIn,
    /// What the candidates only A judged were: for each check of A's step, its values among
    /// them that are common (see [`only_in_values`]).
    only_a_values: Vec<CommonValues>,
    /// The same for the candidates only B judged ("category: Phone Cases 1,405").
    only_b_values: Vec<CommonValues>,
}

/// A value is named for the candidates only one side judged when at least this share of them
/// had it (a check with none that common, a price or a rating, is left out).
const COMMON_VALUE_SHARE: f64 = 0.2;

/// `GET /compare?a=&b=`.
pub async fn compare(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let a = call.params.required_uuid("a")?;
    let b = call.params.required_uuid("b")?;
    let run_a = app
        .blocking(move |s| s.execution(a))
        .await?
        .ok_or_else(|| ApiError::not_found("a", format!("no execution {a}")))?;
    let run_b = app
        .blocking(move |s| s.execution(b))
        .await?
        .ok_or_else(|| ApiError::not_found("b", format!("no execution {b}")))?;
    let mut pairs: Vec<(String, usize, Option<StepSummary>, Option<StepSummary>)> = Vec::new();
    let mut index: HashMap<(String, usize), usize> = HashMap::new();
    for (side, steps) in [(0, run_a.steps), (1, run_b.steps)] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for step in steps {
            let n = seen.entry(step.name.clone()).or_default();
            let key = (step.name.clone(), *n);
            *n += 1;
            let at = *index.entry(key.clone()).or_insert_with(|| {
                pairs.push((key.0, key.1, None, None));
                pairs.len() - 1
            });
            if side == 0 {
                pairs[at].2 = Some(step);
            } else {
                pairs[at].3 = Some(step);
            }
        }
    }
    let mut steps = Vec::with_capacity(pairs.len());
    for (name, occurrence, sa, sb) in pairs {
        steps.push(pair(app, name, occurrence, sa, sb).await?);
    }
    ok(&Comparison {
        a: run_a.execution,
        b: run_b.execution,
        steps,
    })
}

async fn pair(
    app: &Arc<App>,
    name: String,
    occurrence: usize,
    a: Option<StepSummary>,
    b: Option<StepSummary>,
) -> Result<StepPair, ApiError> {
    let (Some(sa), Some(sb)) = (&a, &b) else {
        return Ok(StepPair {
            name,
            occurrence,
            a,
            b,
            input_differs: false,
            output_differs: false,
            inputs: None,
            outputs: None,
            filters_differ: false,
            filters: None,
            verdict_changes: Vec::new(),
            verdict_changes_by_check: Vec::new(),
            verdict_changes_total: Some(0),
            truncated: false,
            verdict_changes_cursor: None,
            only_a: OnlyIn::default(),
            only_b: OnlyIn::default(),
            only_a_values: Vec::new(),
            only_b_values: Vec::new(),
        });
    };
    let (ia, ib) = (sa.id, sb.id);
    let full_a = load(app, ia).await?;
    let full_b = load(app, ib).await?;
    let input = |s: &Option<StepRecord>| s.as_ref().and_then(|s| s.input.clone());
    let output = |s: &Option<StepRecord>| s.as_ref().and_then(|s| s.output.clone());
    let (in_a, in_b) = (input(&full_a), input(&full_b));
    let (out_a, out_b) = (output(&full_a), output(&full_b));
    let filters = |s: &Option<StepRecord>| s.as_ref().and_then(|s| s.filters.clone());
    let (filters_a, filters_b) = (filters(&full_a), filters(&full_b));
    let input_differs = !same_json(&in_a, &in_b);
    let output_differs = !same_json(&out_a, &out_b);
    let filters_differ = !same_json(&filters_a, &filters_b);
    let query = LineageQuery {
        limit: Some(MAX_CHANGES_PER_STEP),
        ..LineageQuery::default()
    };
    let changes = app
        .blocking(move |s| s.verdict_changes(ia, ib, &query))
        .await?;
    // Counted only when the list is cut: otherwise the list is the count. A store of the
    // program's own that cannot count leaves it unknown ("500+"), not the comparison failed.
    let total = match changes.next_cursor {
        Some(_) => {
            app.blocking(move |s| match s.count_verdict_changes(ia, ib) {
                Ok(n) => Ok(Some(n)),
                Err(StoreError::Unsupported(_)) => Ok(None),
                Err(e) => Err(e),
            })
            .await?
        }
        None => Some(changes.items.len() as u64),
    };
    // A store of the program's own that cannot break them down leaves the list without it.
    let by_check = if changes.items.is_empty() {
        Vec::new()
    } else {
        app.blocking(move |s| match s.verdict_change_checks(ia, ib) {
            Err(StoreError::Unsupported(_)) => Ok(Vec::new()),
            other => other,
        })
        .await?
    };
    let first = || LineageQuery {
        limit: Some(MAX_ONLY_IN_ONE),
        ..LineageQuery::default()
    };
    let (qa, qb) = (first(), first());
    let only_a = app
        .blocking(move |s| s.candidates_only_in(ia, ib, &qa))
        .await?;
    let only_b = app
        .blocking(move |s| s.candidates_only_in(ib, ia, &qb))
        .await?;
    let only_a_values = only_in_values(app, sa, ib, only_a.total).await?;
    let only_b_values = only_in_values(app, sb, ia, only_b.total).await?;
    Ok(StepPair {
        name,
        occurrence,
        a,
        b,
        input_differs,
        output_differs,
        inputs: input_differs.then_some([in_a, in_b]),
        outputs: output_differs.then_some([out_a, out_b]),
        filters_differ,
        filters: filters_differ.then_some([filters_a, filters_b]),
        verdict_changes: changes.items,
        verdict_changes_by_check: by_check,
        verdict_changes_total: total,
        truncated: changes.next_cursor.is_some(),
        verdict_changes_cursor: changes.next_cursor,
        only_a,
        only_b,
        only_a_values,
        only_b_values,
    })
}

/// For each check of `step`, the values that at least [`COMMON_VALUE_SHARE`] of the `total`
/// candidates it judged and `other` did not had (three at most, the most common first), in the
/// order the step made its checks. One query per side; empty from a store that cannot tell.
async fn only_in_values(
    app: &Arc<App>,
    step: &StepSummary,
    other: Uuid,
    total: u64,
) -> Result<Vec<CommonValues>, ApiError> {
    let Some(summary) = step.summary.as_ref().filter(|_| total > 0) else {
        return Ok(Vec::new());
    };
    let order: Vec<String> = summary.checks.iter().map(|c| c.name.clone()).collect();
    let at_least = ((total as f64) * COMMON_VALUE_SHARE).ceil() as u64;
    let id = step.id;
    let mut found = app
        .blocking(
            move |s| match s.common_values_only_in(id, other, at_least, 3) {
                Err(StoreError::Unsupported(_)) => Ok(Vec::new()),
                other => other,
            },
        )
        .await?;
    found.sort_by_key(|c| {
        order
            .iter()
            .position(|n| *n == c.check)
            .unwrap_or(usize::MAX)
    });
    Ok(found)
}

/// `GET /steps/{id}/verdict-changes?other=&check=`: the candidates step `id` and step `other`
/// (the same step of another run) both judged, with a different verdict (or selection), paged
/// in `id`'s recorded order, with the reasons on both sides. With `check`, only those that
/// failed that check in one step and not in the other (a 400 names the checks when neither
/// step made it).
pub async fn verdict_changes(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let (step, other, mut query, loaded) = pair_query(app, &call).await?;
    query.check = call.params.text("check");
    if let (Some(check), Some(steps)) = (&query.check, &loaded) {
        known_to_either(steps, check)?;
        // A store of the program's own written before `check` existed would list every
        // change as the check's: one that cannot break the changes down by check is asked
        // nothing (its `Unsupported` answers 501).
        app.blocking(move |s| s.verdict_change_checks(step, other))
            .await?;
    }
    let page = app
        .blocking(move |s| s.verdict_changes(step, other, &query))
        .await?;
    ok(&page)
}

/// The two steps and the page of a `/steps/{id}/…?other=` request. The first page answers 404,
/// naming the parameter, for a step that does not exist (later pages carry a cursor the first
/// one gave, and skip the lookups).
///
/// On the first page it also gives the two steps, as loaded for those checks.
async fn pair_query(
    app: &Arc<App>,
    call: &Call,
) -> Result<(Uuid, Uuid, LineageQuery, Option<[StepRecord; 2]>), ApiError> {
    let step = path_uuid(path(call, 0), "step")?;
    let other = call.params.required_uuid("other")?;
    let query = LineageQuery {
        limit: call.params.limit(MAX_PAGE_SIZE)?,
        cursor: call.params.text("cursor"),
        ..LineageQuery::default()
    };
    if query.cursor.is_some() {
        return Ok((step, other, query, None));
    }
    let Some(first) = load(app, step).await? else {
        return Err(ApiError::not_found("step", format!("no step {step}")));
    };
    let Some(second) = load(app, other).await? else {
        return Err(not_a_step(app, other, &first.name).await?);
    };
    Ok((step, other, query, Some([first, second])))
}

/// A 400 naming the checks of both steps when neither made check `check` (a step with no
/// evaluation summary has no names to check against, and lets it through).
fn known_to_either(steps: &[StepRecord; 2], check: &str) -> Result<(), ApiError> {
    let mut names: Vec<&str> = Vec::new();
    for step in steps {
        let Some(summary) = &step.summary else {
            return Ok(());
        };
        for c in &summary.checks {
            if !names.contains(&c.name.as_str()) {
                names.push(&c.name);
            }
        }
    }
    if names.contains(&check) {
        return Ok(());
    }
    Err(ApiError::invalid(
        "check",
        if names.is_empty() {
            format!("neither step made a check, so none is named {check:?}")
        } else {
            format!(
                "neither step made a check named {check:?}; their checks: {}",
                names.join(", ")
            )
        },
    ))
}

/// The error for an `other` that is no step: a run's id (an easy mistake, from the runs list
/// or a compare URL) gets a 400 that names the step to give instead.
async fn not_a_step(app: &Arc<App>, other: Uuid, name: &str) -> Result<ApiError, ApiError> {
    let Some(run) = app.blocking(move |s| s.execution(other)).await? else {
        return Ok(ApiError::not_found("other", format!("no step {other}")));
    };
    let same: Vec<String> = run
        .steps
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.id.to_string())
        .collect();
    Ok(ApiError::invalid(
        "other",
        match same.as_slice() {
            [] => format!("{other} is a run, not a step, and it has no step named {name}"),
            [id] => format!("{other} is a run, not a step: its {name} step is {id}"),
            ids => format!(
                "{other} is a run, not a step: its {name} steps are {}",
                ids.join(", ")
            ),
        },
    ))
}

/// `GET /steps/{id}/only-in?other=`: the candidates step `id` judged and step `other` did not
/// (the same step of another run): their number and a page of them, selected, then passed,
/// first.
pub async fn only_in(app: &Arc<App>, call: Call) -> Result<Response, ApiError> {
    let (step, other, query, _) = pair_query(app, &call).await?;
    let page = app
        .blocking(move |s| s.candidates_only_in(step, other, &query))
        .await?;
    ok(&page)
}

async fn load(app: &Arc<App>, id: Uuid) -> Result<Option<StepRecord>, ApiError> {
    app.blocking(move |s| s.step(id)).await
}

/// Equal as JSON values (key order and spacing do not count).
fn same_json(a: &Option<Json>, b: &Option<Json>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.as_str() == b.as_str()
                || serde_json::from_str::<serde_json::Value>(a.as_str()).ok()
                    == serde_json::from_str::<serde_json::Value>(b.as_str()).ok()
        }
        _ => false,
    }
}
