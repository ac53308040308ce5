//! Where a candidate went: its verdicts across steps and runs (lineage), and the differences
//! between two runs' verdicts in the same step (the compare view's pages).

use super::evaluations::{cursor_idx, step_start};
use super::pg_error;
use super::read::{json_col, p, page, Filter};
use crate::store::cursor::Cursor;
use crate::store::preview::json_preview;
use crate::store::query::*;
use crate::store::StoreError;
use postgres::types::ToSql;
use postgres::{Client, Row};
use uuid::Uuid;

pub(super) fn candidate_lineage(
    client: &mut Client,
    candidate_id: &str,
    q: &LineageQuery,
) -> Result<Page<LineageEntry>, StoreError> {
    let limit = page_size(q.limit)?;
    let mut f = Filter::default();
    f.and("e.candidate_id = ?", vec![p(candidate_id.to_owned())]);
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 'l')?;
        let (sid, idx) = c
            .tiebreak
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i32>().ok()?)))
            .ok_or_else(|| StoreError::invalid("cursor", "not a cursor returned by this list"))?;
        let (at, sid, idx) = (f.param(c.key), f.param(sid), f.param(idx));
        f.and(
            &format!(
                "(s.started_at < {at} OR (s.started_at = {at} AND (s.sid < {sid} OR (s.sid = {sid} AND e.idx > {idx}))))"
            ),
            vec![],
        );
    }
    let sql = format!(
        "SELECT x.id, x.name, x.started_at, s.id, s.name, s.kind, s.started_at, s.sid,
                e.idx, e.label, e.passed, e.score, e.selected, e.checks, e.metrics, e.snapshot,
                CASE WHEN e.selected THEN s.selection END, left(x.input, 1000)
         FROM xray.evaluations e
         JOIN xray.steps s ON s.id = e.step_id AND s.started_at = e.started_at
         JOIN xray.executions x ON x.id = s.execution_id{}
         ORDER BY s.started_at DESC, s.sid DESC, e.idx LIMIT {}",
        f.sql,
        limit + 1
    );
    let page = page(
        client,
        &sql,
        &f.refs(),
        limit,
        |r| {
            let checks: String = r.try_get(13)?;
            Ok((
                r.try_get::<_, i64>(7)?,
                r.try_get::<_, i32>(8)?,
                LineageEntry {
                    execution_id: r.try_get(0)?,
                    execution_name: r.try_get(1)?,
                    execution_started_at: r.try_get(2)?,
                    step_id: r.try_get(3)?,
                    step_name: r.try_get(4)?,
                    step_kind: r.try_get(5)?,
                    step_started_at: r.try_get(6)?,
                    label: r.try_get(9)?,
                    passed: r.try_get(10)?,
                    score: r.try_get(11)?,
                    selected: r.try_get(12)?,
                    checks: serde_json::from_str(&checks).unwrap_or_default(),
                    metrics: metrics_of(r.try_get::<_, Option<String>>(14)?.as_deref()),
                    snapshot: json_col(r.try_get(15)?),
                    selection_reason: selection_reason(
                        r.try_get::<_, Option<String>>(16)?.as_deref(),
                        candidate_id,
                    ),
                    execution_input_preview: r
                        .try_get::<_, Option<String>>(17)?
                        .as_deref()
                        .map(json_preview)
                        .unwrap_or_default(),
                },
            ))
        },
        |(sid, idx, e)| Cursor::new('l', e.step_started_at, format!("{sid}:{idx}")),
    )?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, _, e)| e).collect(),
        next_cursor: page.next_cursor,
    })
}

pub(super) fn candidates_only_in(
    client: &mut Client,
    step: Uuid,
    other: Uuid,
    q: &LineageQuery,
) -> Result<OnlyIn, StoreError> {
    let limit = page_size(q.limit)?;
    let (Some(at_a), Some(at_b)) = (step_start(client, step)?, step_start(client, other)?) else {
        return Ok(OnlyIn::default());
    };
    let after = match &q.cursor {
        Some(c) => Cursor::decode(c, 'o')?.key,
        None => -1,
    };
    const ONLY: &str = "FROM xray.evaluations a
         WHERE a.step_id = $1 AND a.started_at = $2
           AND NOT EXISTS (SELECT 1 FROM xray.evaluations b
                           WHERE b.step_id = $3 AND b.started_at = $4
                             AND b.candidate_id = a.candidate_id)";
    let params: [&(dyn ToSql + Sync); 4] = [&step, &at_a, &other, &at_b];
    let total: i64 = client
        .query_one(&format!("SELECT count(*) {ONLY}"), &params)
        .and_then(|r| r.try_get(0))
        .map_err(pg_error)?;
    // Selected first, then passed, then in recorded order: one number, for the cursor.
    let rank = format!(
        "((CASE WHEN a.selected THEN 0 ELSE 1 END)::bigint * {ONLY_IN_SELECTED_BIT} \
         + (CASE WHEN a.passed THEN 0 ELSE 1 END)::bigint * {ONLY_IN_PASSED_BIT} + a.idx)"
    );
    let sql = format!(
        "SELECT {rank}, a.candidate_id, a.label, a.passed, a.score, a.selected, a.checks {ONLY}
           AND {rank} > $5
         ORDER BY 1 LIMIT {}",
        limit + 1
    );
    let page = page(
        client,
        &sql,
        &[&step, &at_a, &other, &at_b, &after],
        limit,
        |r| {
            Ok((
                r.try_get::<_, i64>(0)?,
                OnlyInEntry {
                    candidate_id: r.try_get(1)?,
                    verdict: verdict_at(r, 2)?,
                },
            ))
        },
        |(rank, _)| Cursor::new('o', *rank, ""),
    )?;
    Ok(OnlyIn {
        total: total.max(0) as u64,
        items: page.items.into_iter().map(|(_, e)| e).collect(),
        next_cursor: page.next_cursor,
    })
}

/// A verdict from five columns from `at`: label, passed, score, selected, checks.
fn verdict_at(r: &Row, at: usize) -> Result<Verdict, postgres::Error> {
    let checks: String = r.try_get(at + 4)?;
    Ok(Verdict {
        label: r.try_get(at)?,
        passed: r.try_get(at + 1)?,
        score: r.try_get(at + 2)?,
        selected: r.try_get(at + 3)?,
        checks: serde_json::from_str(&checks).unwrap_or_default(),
    })
}

/// [`verdict_changes`]' pairs, by the checks that failed on one side only.
pub(super) fn verdict_change_checks(
    client: &mut Client,
    step_a: Uuid,
    step_b: Uuid,
) -> Result<Vec<CheckChange>, StoreError> {
    let (Some(at_a), Some(at_b)) = (step_start(client, step_a)?, step_start(client, step_b)?)
    else {
        return Ok(Vec::new());
    };
    let rows = client
        .query(
            "SELECT a.failed_checks, b.failed_checks FROM xray.evaluations a
             JOIN xray.evaluations b ON b.step_id = $3 AND b.started_at = $4
                  AND b.candidate_id = a.candidate_id
             WHERE a.step_id = $1 AND a.started_at = $2
               AND (a.passed <> b.passed OR a.selected <> b.selected)
               AND a.failed_checks <> b.failed_checks",
            &[&step_a, &at_a, &step_b, &at_b],
        )
        .map_err(pg_error)?;
    let pairs = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(Vec<String>, Vec<String>)>, postgres::Error>>()
        .map_err(pg_error)?;
    Ok(CheckChange::tally(pairs.iter().map(|(a, b)| {
        (a.iter().map(String::as_str), b.iter().map(String::as_str))
    })))
}

/// What the candidates of step `step_a` that `step_b` did not judge were, every check at once.
pub(super) fn common_values_only_in(
    client: &mut Client,
    step_a: Uuid,
    step_b: Uuid,
    at_least: u64,
    per_check: usize,
) -> Result<Vec<CommonValues>, StoreError> {
    let (Some(at_a), Some(at_b)) = (step_start(client, step_a)?, step_start(client, step_b)?)
    else {
        return Ok(Vec::new());
    };
    let at_least = i64::try_from(at_least.max(1)).unwrap_or(i64::MAX);
    // Rows, not check entries: a row that made a check twice with one value counts once.
    let rows = client
        .query(
            "SELECT name, v, passed, n FROM (
             SELECT c->>'name' AS name, (c->'observed')::text AS v,
                    count(DISTINCT e.idx) FILTER (WHERE (c->>'passed')::boolean) AS passed,
                    count(DISTINCT e.idx) AS n
             FROM xray.evaluations e, jsonb_array_elements(e.checks::jsonb) c
             WHERE e.step_id = $1 AND e.started_at = $2
               AND jsonb_typeof(c->'observed') <> 'null'
               AND NOT EXISTS (SELECT 1 FROM xray.evaluations o
                               WHERE o.step_id = $3 AND o.started_at = $4
                                 AND o.candidate_id = e.candidate_id)
             GROUP BY 1, 2 HAVING count(DISTINCT e.idx) >= $5
             ) t ORDER BY name COLLATE \"C\", n DESC, v COLLATE \"C\"",
            &[&step_a, &at_a, &step_b, &at_b, &at_least],
        )
        .map_err(pg_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let passed: i64 = r.try_get(2).map_err(pg_error)?;
        let n: i64 = r.try_get(3).map_err(pg_error)?;
        out.push((
            r.try_get::<_, String>(0).map_err(pg_error)?,
            r.try_get::<_, Option<String>>(1).map_err(pg_error)?,
            passed.max(0) as u64,
            n.max(0) as u64,
        ));
    }
    Ok(CommonValues::group(out, per_check))
}

/// [`verdict_changes`]' rows, counted.
pub(super) fn count_verdict_changes(
    client: &mut Client,
    step_a: Uuid,
    step_b: Uuid,
) -> Result<u64, StoreError> {
    let (Some(at_a), Some(at_b)) = (step_start(client, step_a)?, step_start(client, step_b)?)
    else {
        return Ok(0);
    };
    let row = client
        .query_one(
            "SELECT count(*) FROM xray.evaluations a
             JOIN xray.evaluations b ON b.step_id = $3 AND b.started_at = $4
                  AND b.candidate_id = a.candidate_id
             WHERE a.step_id = $1 AND a.started_at = $2
               AND (a.passed <> b.passed OR a.selected <> b.selected)",
            &[&step_a, &at_a, &step_b, &at_b],
        )
        .map_err(pg_error)?;
    let n: i64 = row.try_get(0).map_err(pg_error)?;
    Ok(n.max(0) as u64)
}

pub(super) fn verdict_changes(
    client: &mut Client,
    step_a: Uuid,
    step_b: Uuid,
    q: &LineageQuery,
) -> Result<Page<VerdictChange>, StoreError> {
    let limit = page_size(q.limit)?;
    let (Some(at_a), Some(at_b)) = (step_start(client, step_a)?, step_start(client, step_b)?)
    else {
        return Ok(Page::empty());
    };
    let (after_a, after_b) = Cursor::change_position(q.cursor.as_deref())?;
    let (after_a, after_b) = (cursor_idx(after_a)?, cursor_idx(after_b)?);
    let sql = format!(
        "SELECT a.idx, a.candidate_id,
                a.label, a.passed, a.score, a.selected, a.checks,
                b.label, b.passed, b.score, b.selected, b.checks, b.idx
         FROM xray.evaluations a
         JOIN xray.evaluations b ON b.step_id = $3 AND b.started_at = $4
              AND b.candidate_id = a.candidate_id
         WHERE a.step_id = $1 AND a.started_at = $2 AND (a.idx > $5 OR (a.idx = $5 AND b.idx > $6))
           AND (a.passed <> b.passed OR a.selected <> b.selected)
           AND ($7::text IS NULL
                OR ($7::text = ANY(a.failed_checks)) <> ($7::text = ANY(b.failed_checks)))
         ORDER BY a.idx, b.idx LIMIT {}",
        limit + 1
    );
    let page = page(
        client,
        &sql,
        &[&step_a, &at_a, &step_b, &at_b, &after_a, &after_b, &q.check],
        limit,
        |r| {
            Ok((
                (
                    i64::from(r.try_get::<_, i32>(0)?),
                    i64::from(r.try_get::<_, i32>(12)?),
                ),
                VerdictChange {
                    candidate_id: r.try_get(1)?,
                    a: verdict_at(r, 2)?,
                    b: verdict_at(r, 7)?,
                },
            ))
        },
        |((a_idx, b_idx), _)| Cursor::after_change(*a_idx, *b_idx),
    )?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, c)| c).collect(),
        next_cursor: page.next_cursor,
    })
}
