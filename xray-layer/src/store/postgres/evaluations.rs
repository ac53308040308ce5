//! One step's evaluations, a page at a time (the SQLite store's query, in PostgreSQL's
//! dialect): filtered by verdict, check or candidate, sorted by score or by a metric.

use super::pg_error;
use super::read::{json_col, like, p, page, Filter};
use crate::model::{Check, Evaluation};
use crate::store::cursor::Cursor;
use crate::store::query::*;
use crate::store::StoreError;
use postgres::{Client, Row};
use uuid::Uuid;

const EVALUATION_COLUMNS: &str =
    "e.idx, e.candidate_id, e.label, e.passed, e.score, e.selected, e.checks, e.metrics, e.snapshot";

fn evaluation(row: &Row) -> Result<(i64, Evaluation), postgres::Error> {
    let checks: String = row.try_get(6)?;
    let metrics: Option<String> = row.try_get(7)?;
    Ok((
        i64::from(row.try_get::<_, i32>(0)?),
        Evaluation {
            candidate_id: row.try_get(1)?,
            label: row.try_get(2)?,
            passed: row.try_get(3)?,
            score: row.try_get(4)?,
            selected: row.try_get(5)?,
            checks: serde_json::from_str::<Vec<Check>>(&checks).unwrap_or_default(),
            metrics: metrics_of(metrics.as_deref()),
            snapshot: json_col(row.try_get(8)?),
        },
    ))
}

/// [`evaluation`], and the value the page is sorted on (column 9): a cursor is built from what
/// the database compared, not from the row as decoded.
fn evaluation_with_key(row: &Row) -> Result<(i64, Evaluation, Option<f64>), postgres::Error> {
    let (idx, e) = evaluation(row)?;
    Ok((idx, e, row.try_get(9)?))
}

/// A step's start time (the partition key of its evaluations), if the step exists.
pub(super) fn step_start(client: &mut Client, id: Uuid) -> Result<Option<i64>, StoreError> {
    Ok(client
        .query_opt("SELECT started_at FROM xray.steps WHERE id = $1", &[&id])
        .map_err(pg_error)?
        .map(|r| r.get(0)))
}

/// An evaluation's position in a cursor (PostgreSQL's `integer`).
pub(super) fn cursor_idx(key: i64) -> Result<i32, StoreError> {
    i32::try_from(key)
        .map_err(|_| StoreError::invalid("cursor", "not a cursor returned by this list"))
}

pub(super) fn evaluations(
    client: &mut Client,
    step_id: Uuid,
    q: &EvaluationQuery,
) -> Result<Page<Evaluation>, StoreError> {
    let limit = page_size(q.limit)?;
    let metric = q.sort_metric()?;
    let Some(started_at) = step_start(client, step_id)? else {
        return Ok(Page::empty());
    };
    let mut f = Filter::default();
    // A metric sort reads the step's rows with their metric's value (from the row's
    // `[["name", value], …]`) as `sort_key`, once per row (`OFFSET 0` keeps the planner from
    // pulling the subselect up into the order and the cursor, which would read it at each use).
    let from = match metric {
        Some(metric) => {
            let name = f.param(metric.to_owned());
            let (step, start) = (f.param(step_id), f.param(started_at));
            format!(
                "(SELECT e.*, (SELECT (m->>1)::float8 FROM jsonb_array_elements(e.metrics::jsonb) m \
                 WHERE m->>0 = {name} LIMIT 1) AS sort_key FROM xray.evaluations e \
                 WHERE e.step_id = {step} AND e.started_at = {start} OFFSET 0) e"
            )
        }
        None => {
            f.and(
                "e.step_id = ? AND e.started_at = ?",
                vec![p(step_id), p(started_at)],
            );
            "xray.evaluations e".to_owned()
        }
    };
    match (&q.check, &q.observed) {
        // A value the check saw: the check's own entry with that value passed (or failed) it,
        // as check-values counts each entry (a row may make a check twice, with two values).
        (Some(check), Some(observed)) => {
            let (string, other) = observed_forms(observed);
            f.and(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(e.checks::jsonb) c \
                 WHERE c->>'name' = ? \
                   AND (c->>'passed')::boolean = ? \
                   AND CASE jsonb_typeof(c->'observed') \
                       WHEN 'string' THEN c->>'observed' = ? \
                       WHEN 'null' THEN false \
                       ELSE c->'observed' = ?::text::jsonb END)",
                vec![
                    p(check.clone()),
                    p(q.passed == Some(true)),
                    p(string),
                    p(other),
                ],
            );
        }
        (Some(check), None) => {
            if q.passed == Some(true) {
                // Passed this check: it was made, and it is not among the failed ones.
                f.and("? = ANY(e.passed_checks)", vec![p(check.clone())]);
                f.and("NOT (? = ANY(e.failed_checks))", vec![p(check.clone())]);
            } else {
                f.and("? = ANY(e.failed_checks)", vec![p(check.clone())]);
            }
        }
        (None, _) => {
            if let Some(passed) = q.passed {
                f.and("e.passed = ?", vec![p(passed)]);
            }
        }
    }
    if let Some(needle) = q.q.as_deref().filter(|s| !s.trim().is_empty()) {
        let at = f.param(like(needle.trim()));
        f.and(
            &format!("(e.candidate_id ILIKE {at} OR e.label ILIKE {at})"),
            vec![],
        );
    }
    // Scores (and metrics) sort with missing ones last, whatever the direction and whatever
    // the values (as in SQLite: no stand-in number). A cursor's tiebreak is the last value, or
    // `null`.
    let key = match q.sort {
        EvaluationSort::Recorded => "NULL::float8",
        EvaluationSort::ScoreDesc | EvaluationSort::ScoreAsc => "e.score",
        EvaluationSort::MetricDesc | EvaluationSort::MetricAsc => "e.sort_key",
    };
    let (cmp, dir) = match q.sort {
        EvaluationSort::Recorded => ("", ""),
        EvaluationSort::ScoreDesc | EvaluationSort::MetricDesc => ("<", "DESC"),
        EvaluationSort::ScoreAsc | EvaluationSort::MetricAsc => (">", "ASC"),
    };
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 'v')?;
        let idx = cursor_idx(c.key)?;
        if cmp.is_empty() {
            f.and("e.idx > ?", vec![p(idx)]);
        } else if c.tiebreak == Cursor::NO_VALUE {
            f.and(&format!("({key} IS NULL AND e.idx > ?)"), vec![p(idx)]);
        } else {
            let value: f64 = c
                .tiebreak
                .parse()
                .map_err(|_| StoreError::invalid("cursor", "not a cursor returned by this list"))?;
            let at = f.param(value);
            f.and(
                &format!("({key} IS NULL OR {key} {cmp} {at} OR ({key} = {at} AND e.idx > ?))"),
                vec![p(idx)],
            );
        }
    }
    let order = if cmp.is_empty() {
        "e.idx".to_owned()
    } else {
        format!("{key} {dir} NULLS LAST, e.idx")
    };
    let sql = format!(
        "SELECT {EVALUATION_COLUMNS}, {key} FROM {from}{} ORDER BY {order} LIMIT {}",
        f.sql,
        limit + 1
    );
    let page = page(
        client,
        &sql,
        &f.refs(),
        limit,
        evaluation_with_key,
        |(idx, _, key)| Cursor::after_evaluation(*idx, *key),
    )?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, e, _)| e).collect(),
        next_cursor: page.next_cursor,
    })
}

/// See [`Store::check_values`](crate::store::Store::check_values): one pass over the step's
/// rows, the checks of each unpacked by `jsonb_array_elements`.
pub(super) fn check_values(
    client: &mut Client,
    step_id: Uuid,
    check: &str,
    limit: usize,
) -> Result<CheckValues, StoreError> {
    let limit = page_size(Some(limit))?;
    let Some(started_at) = step_start(client, step_id)? else {
        return Ok(CheckValues::default());
    };
    let rows = client
        .query(
            "SELECT v, passed, n FROM (
                SELECT NULLIF(c->'observed', 'null'::jsonb)::text AS v,
                       count(*) FILTER (WHERE (c->>'passed')::boolean) AS passed, count(*) AS n
                FROM xray.evaluations e, jsonb_array_elements(e.checks::jsonb) c
                WHERE e.step_id = $1 AND e.started_at = $2 AND c->>'name' = $3
                GROUP BY 1
             ) t ORDER BY n DESC, v IS NULL, v COLLATE \"C\"",
            &[&step_id, &started_at, &check],
        )
        .map_err(pg_error)?;
    let mut out = CheckValues::default();
    for row in &rows {
        let json: Option<String> = row.try_get(0).map_err(pg_error)?;
        let passed = row.try_get::<_, i64>(1).map_err(pg_error)?;
        let count = row.try_get::<_, i64>(2).map_err(pg_error)?;
        out.add(json.as_deref(), passed as u64, count as u64, limit);
    }
    Ok(out)
}
