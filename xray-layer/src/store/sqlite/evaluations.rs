//! One step's evaluations, a page at a time: filtered by verdict, check or candidate, sorted
//! by score or by a metric, with keyset cursors.

use super::read::{int, json_col, like, page, text, Filter};
use super::sqlite_error;
use super::write::SEP;
use crate::model::{Check, Evaluation};
use crate::store::cursor::Cursor;
use crate::store::query::*;
use crate::store::StoreError;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

const EVALUATION_COLUMNS: &str =
    "e.idx, e.candidate_id, e.label, e.passed, e.score, e.selected, e.checks, e.metrics, e.snapshot";

fn evaluation(row: &Row<'_>) -> rusqlite::Result<(i64, Evaluation)> {
    let checks: String = row.get(6)?;
    let metrics: Option<String> = row.get(7)?;
    Ok((
        row.get(0)?,
        Evaluation {
            candidate_id: row.get(1)?,
            label: row.get(2)?,
            passed: row.get(3)?,
            score: row.get(4)?,
            selected: row.get(5)?,
            checks: serde_json::from_str::<Vec<Check>>(&checks).unwrap_or_default(),
            metrics: metrics_of(metrics.as_deref()),
            snapshot: json_col(row.get(8)?),
        },
    ))
}

/// [`evaluation`], and the value the page is sorted on (column 9): a cursor is built from what
/// the database compared, not from the row as decoded.
fn evaluation_with_key(row: &Row<'_>) -> rusqlite::Result<(i64, Evaluation, Option<f64>)> {
    let (idx, e) = evaluation(row)?;
    Ok((idx, e, row.get(9)?))
}

pub(super) fn evaluations(
    conn: &Connection,
    step_id: Uuid,
    q: &EvaluationQuery,
) -> Result<Page<Evaluation>, StoreError> {
    let limit = page_size(q.limit)?;
    let metric = q.sort_metric()?;
    let sid: Option<i64> = conn
        .prepare_cached("SELECT sid FROM steps WHERE id = ?1")
        .and_then(|mut s| s.query_row([step_id.to_string()], |r| r.get(0)).optional())
        .map_err(sqlite_error)?;
    let Some(sid) = sid else {
        return Ok(Page::empty());
    };
    let mut f = Filter::default();
    // A metric sort reads the step's rows with their metric's value as `sort_key`, once per
    // row (`LIMIT -1` keeps SQLite from flattening the subselect into the order and the
    // cursor, which would read the value at each use). Its parameters come first, `?1` the
    // metric's name and `?2` the step; the filters' number on from them.
    let from = match metric {
        Some(metric) => {
            f.params.push(text(metric));
            f.params.push(int(sid));
            "(SELECT e.*, (SELECT json_extract(m.value, '$[1]') FROM json_each(e.metrics) m \
             WHERE json_extract(m.value, '$[0]') = ?1 LIMIT 1) AS sort_key \
             FROM evaluations e WHERE e.step_sid = ?2 LIMIT -1) e"
        }
        None => {
            f.and("e.step_sid = ?", [int(sid)]);
            "evaluations e"
        }
    };
    match (&q.check, &q.observed) {
        // A value the check saw: the check's own entry with that value passed (or failed) it,
        // as check-values counts each entry (a row may make a check twice, with two values).
        (Some(check), Some(observed)) => {
            let (string, other) = observed_forms(observed);
            f.and(
                "EXISTS (SELECT 1 FROM json_each(e.checks) c \
                 WHERE json_extract(c.value, '$.name') = ? \
                   AND json_extract(c.value, '$.passed') = ? \
                   AND CASE json_type(c.value, '$.observed') \
                       WHEN 'text' THEN json_extract(c.value, '$.observed') = ? \
                       WHEN 'null' THEN 0 \
                       ELSE c.value -> '$.observed' = ? END)",
                [
                    text(check),
                    int(i64::from(q.passed == Some(true))),
                    text(&string),
                    other.as_deref().map_or(Value::Null, text),
                ],
            );
        }
        (Some(check), None) => {
            let marker = text(&format!("{SEP}{check}{SEP}"));
            if q.passed == Some(true) {
                // Passed this check: it was made, and it is not among the failed ones.
                f.and("instr(e.failed_checks, ?) = 0", [marker]);
                f.and(
                    "EXISTS (SELECT 1 FROM json_each(e.checks) WHERE json_extract(json_each.value, '$.name') = ?)",
                    [text(check)],
                );
            } else {
                f.and("instr(e.failed_checks, ?) > 0", [marker]);
            }
        }
        (None, _) => {
            if let Some(passed) = q.passed {
                f.and("e.passed = ?", [int(i64::from(passed))]);
            }
        }
    }
    if let Some(needle) = q.q.as_deref().filter(|s| !s.trim().is_empty()) {
        let p = like(needle.trim());
        f.and(
            "(e.candidate_id LIKE ? ESCAPE '\\' OR e.label LIKE ? ESCAPE '\\')",
            [p.clone(), p],
        );
    }
    // Scores (and metrics) sort with missing ones last, whatever the direction and whatever
    // the values (`key IS NULL` first in the order: no stand-in number, which a real score such
    // as -inf or f64::MAX would sort on the wrong side of). A cursor's tiebreak is the last
    // value, or `null`.
    let (key, cmp, dir) = match q.sort {
        EvaluationSort::Recorded => ("NULL", "", ""),
        EvaluationSort::ScoreDesc => ("e.score", "<", "DESC"),
        EvaluationSort::ScoreAsc => ("e.score", ">", "ASC"),
        EvaluationSort::MetricDesc => ("e.sort_key", "<", "DESC"),
        EvaluationSort::MetricAsc => ("e.sort_key", ">", "ASC"),
    };
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 'v')?;
        if cmp.is_empty() {
            f.and("e.idx > ?", [int(c.key)]);
        } else if c.tiebreak == Cursor::NO_VALUE {
            f.and(&format!("({key} IS NULL AND e.idx > ?)"), [int(c.key)]);
        } else {
            let value: f64 = c
                .tiebreak
                .parse()
                .map_err(|_| StoreError::invalid("cursor", "not a cursor returned by this list"))?;
            f.and(
                &format!("({key} IS NULL OR {key} {cmp} ? OR ({key} = ? AND e.idx > ?))"),
                [Value::Real(value), Value::Real(value), int(c.key)],
            );
        }
    }
    let order = if cmp.is_empty() {
        "e.idx".to_owned()
    } else {
        format!("{key} IS NULL, {key} {dir}, e.idx")
    };
    let sql = format!(
        "SELECT {EVALUATION_COLUMNS}, {key} FROM {from}{} ORDER BY {order} LIMIT {}",
        f.sql,
        limit + 1
    );
    let page = page(
        conn,
        &sql,
        f.params,
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
/// rows, the checks of each unpacked by `json_each`.
pub(super) fn check_values(
    conn: &Connection,
    step_id: Uuid,
    check: &str,
    limit: usize,
) -> Result<CheckValues, StoreError> {
    let limit = page_size(Some(limit))?;
    let Some(sid) = conn
        .prepare_cached("SELECT sid FROM steps WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([step_id.to_string()], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map_err(sqlite_error)?
    else {
        return Ok(CheckValues::default());
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT CASE json_type(c.value, '$.observed') WHEN 'null' THEN NULL
                    ELSE c.value -> '$.observed' END AS v,
                    sum(json_extract(c.value, '$.passed')), count(*)
             FROM evaluations e, json_each(e.checks) c
             WHERE e.step_sid = ?1 AND json_extract(c.value, '$.name') = ?2
             GROUP BY v ORDER BY count(*) DESC, v IS NULL, v",
        )
        .map_err(sqlite_error)?;
    let mut rows = stmt.query(params![sid, check]).map_err(sqlite_error)?;
    let mut out = CheckValues::default();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        let json: Option<String> = row.get(0).map_err(sqlite_error)?;
        let passed = row
            .get::<_, Option<i64>>(1)
            .map_err(sqlite_error)?
            .unwrap_or(0);
        let count = row.get::<_, i64>(2).map_err(sqlite_error)?;
        out.add(json.as_deref(), passed as u64, count as u64, limit);
    }
    Ok(out)
}
