//! The read side: the SQLite store's queries, in PostgreSQL's dialect. Parameterized only,
//! keyset pagination, an index behind each list a viewer opens.

use super::pg_error;
use crate::model::{elimination, EvaluationSummary, Json, LogLine, Selection, Status, StepRecord};
use crate::store::cursor::Cursor;
use crate::store::preview::{json_preview, INPUT_PREFIX_CHARS};
use crate::store::query::*;
use crate::store::{Change, StoreError};
use postgres::types::ToSql;
use postgres::{Client, Row};
use uuid::Uuid;

type Param = Box<dyn ToSql + Sync>;

/// A WHERE clause under construction, with its parameters (`$n` numbered as they are added).
#[derive(Default)]
pub(super) struct Filter {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
}

impl Filter {
    /// Adds the parameter `value`; returns its placeholder.
    pub(super) fn param(&mut self, value: impl ToSql + Sync + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// Adds `clause`, in which each `?` is replaced by the next of `values`.
    pub(super) fn and(&mut self, clause: &str, values: Vec<Param>) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        let mut values = values.into_iter();
        for (i, part) in clause.split('?').enumerate() {
            if i > 0 {
                match values.next() {
                    Some(v) => {
                        self.params.push(v);
                        self.sql.push_str(&format!("${}", self.params.len()));
                    }
                    None => self.sql.push('?'),
                }
            }
            self.sql.push_str(part);
        }
    }

    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| &**p as _).collect()
    }
}

pub(super) fn p(value: impl ToSql + Sync + 'static) -> Param {
    Box::new(value)
}

/// `%s%` for ILIKE, with `%`, `_` and `\` escaped (backslash is ILIKE's default escape).
pub(super) fn like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

fn status(s: &str) -> Status {
    Status::parse(s).unwrap_or(Status::Lost)
}

pub(super) fn json_col(s: Option<String>) -> Option<Json> {
    s.and_then(|s| Json::parse(&s))
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

/// The columns of an [`ExecutionSummary`], the last two prefixes of the input and the output
/// for their previews ([`INPUT_PREFIX_CHARS`] characters: the literal below).
const EXECUTION_COLUMNS: &str = "e.id, e.name, e.status, e.started_at, e.completed_at, e.tags, e.notes, e.error,
    e.step_count, e.error_steps, e.candidates_in, e.candidates_out, e.dropped_records, e.service, e.host, e.pid, e.seq,
    left(e.input, 1000), left(e.output, 1000)";

/// How many columns [`EXECUTION_COLUMNS`] has: what a query selects after them starts here.
const EXECUTION_COLUMN_COUNT: usize = 19;

const _: () = assert!(
    INPUT_PREFIX_CHARS == 1000,
    "EXECUTION_COLUMNS reads 1000 characters"
);

fn execution_summary(row: &Row) -> Result<ExecutionSummary, postgres::Error> {
    Ok(ExecutionSummary {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        status: status(row.try_get(2)?),
        started_at: row.try_get(3)?,
        completed_at: row.try_get(4)?,
        tags: row.try_get(5)?,
        notes: row.try_get(6)?,
        error: row.try_get(7)?,
        step_count: count(row.try_get(8)?),
        error_steps: count(row.try_get(9)?),
        candidates_in: row.try_get::<_, Option<i64>>(10)?.map(count),
        candidates_out: row.try_get::<_, Option<i64>>(11)?.map(count),
        dropped_records: count(row.try_get(12)?),
        service: row.try_get(13)?,
        host: row.try_get(14)?,
        pid: row.try_get::<_, Option<i64>>(15)?.map(|n| n as u32),
        seq: count(row.try_get(16)?),
        input_preview: row
            .try_get::<_, Option<String>>(17)?
            .as_deref()
            .map(json_preview)
            .unwrap_or_default(),
        output_preview: row
            .try_get::<_, Option<String>>(18)?
            .as_deref()
            .map(json_preview)
            .unwrap_or_default(),
    })
}

const STEP_COLUMNS: &str =
    "s.id, s.execution_id, x.name, s.parent_id, s.name, s.kind, s.status, s.error,
    s.started_at, s.ended_at, s.candidates_in, s.candidates_out, s.evaluations, s.seq";

fn step_summary(row: &Row) -> Result<StepSummary, postgres::Error> {
    let candidates_in = row.try_get::<_, Option<i64>>(10)?.map(count);
    let candidates_out = row.try_get::<_, Option<i64>>(11)?.map(count);
    let summary: Option<String> = row.try_get(12)?;
    Ok(StepSummary {
        id: row.try_get(0)?,
        execution_id: row.try_get(1)?,
        execution_name: row.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
        parent_id: row.try_get(3)?,
        name: row.try_get(4)?,
        kind: row.try_get(5)?,
        status: status(row.try_get(6)?),
        error: row.try_get(7)?,
        started_at: row.try_get(8)?,
        ended_at: row.try_get(9)?,
        candidates_in,
        candidates_out,
        elimination: elimination(candidates_in, candidates_out),
        summary: summary.and_then(|s| serde_json::from_str::<EvaluationSummary>(&s).ok()),
        seq: count(row.try_get(13)?),
    })
}

/// Runs `sql` (which must select `limit + 1` rows) and splits off the next cursor.
pub(super) fn page<T>(
    client: &mut Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    limit: usize,
    map: impl Fn(&Row) -> Result<T, postgres::Error>,
    cursor_of: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, StoreError> {
    let rows = client.query(sql, params).map_err(pg_error)?;
    let mut items = rows
        .iter()
        .map(map)
        .collect::<Result<Vec<T>, _>>()
        .map_err(pg_error)?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| cursor_of(last).encode())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// A cursor's tiebreak that must be a UUID.
fn cursor_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text)
        .map_err(|_| StoreError::invalid("cursor", "not a cursor returned by this list"))
}

pub(super) fn list_executions(
    client: &mut Client,
    q: &ExecutionQuery,
) -> Result<Page<ExecutionSummary>, StoreError> {
    let limit = page_size(q.limit)?;
    let mut f = Filter::default();
    if let Some(name) = &q.name {
        f.and("e.name = ?", vec![p(name.clone())]);
    }
    if let Some(s) = q.status {
        f.and("e.status = ?", vec![p(s.as_str())]);
    }
    if !q.tags.is_empty() {
        f.and("e.tags @> ?", vec![p(q.tags.clone())]);
    }
    if let Some(t) = q.since {
        f.and("e.started_at >= ?", vec![p(t)]);
    }
    if let Some(t) = q.until {
        f.and("e.started_at < ?", vec![p(t)]);
    }
    if let Some(n) = q.min_steps {
        f.and("e.step_count >= ?", vec![p(n as i64)]);
    }
    if let Some(n) = q.max_steps {
        f.and("e.step_count <= ?", vec![p(n as i64)]);
    }
    if let Some(needle) = q.q.as_deref().filter(|s| !s.trim().is_empty()) {
        let at = f.param(like(needle.trim()));
        f.and(
            &format!(
                "(e.name ILIKE {at} OR e.id::text ILIKE {at} OR e.notes ILIKE {at}
                  OR e.input ILIKE {at} OR e.output ILIKE {at}
                  OR EXISTS (SELECT 1 FROM xray.steps s WHERE s.execution_id = e.id AND s.name ILIKE {at}))"
            ),
            vec![],
        );
    }
    match q.has_error {
        Some(true) => f.and("(e.status = 'error' OR e.error_steps > 0)", vec![]),
        Some(false) => f.and("(e.status <> 'error' AND e.error_steps = 0)", vec![]),
        None => {}
    }
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 'e')?;
        let id = cursor_uuid(&c.tiebreak)?;
        f.and("(e.started_at, e.id) < (?, ?)", vec![p(c.key), p(id)]);
    }
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM xray.executions e{} ORDER BY e.started_at DESC, e.id DESC LIMIT {}",
        f.sql,
        limit + 1
    );
    page(client, &sql, &f.refs(), limit, execution_summary, |e| {
        Cursor::new('e', e.started_at, e.id.to_string())
    })
}

pub(super) fn execution(
    client: &mut Client,
    id: Uuid,
) -> Result<Option<ExecutionDetail>, StoreError> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS}, e.metadata, e.input, e.output FROM xray.executions e WHERE e.id = $1"
    );
    let Some(row) = client.query_opt(&sql, &[&id]).map_err(pg_error)? else {
        return Ok(None);
    };
    let execution = execution_summary(&row).map_err(pg_error)?;
    let metadata: String = row.try_get(EXECUTION_COLUMN_COUNT).map_err(pg_error)?;
    let input = json_col(row.try_get(EXECUTION_COLUMN_COUNT + 1).map_err(pg_error)?);
    let output = json_col(row.try_get(EXECUTION_COLUMN_COUNT + 2).map_err(pg_error)?);
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM xray.steps s JOIN xray.executions x ON x.id = s.execution_id
         WHERE s.execution_id = $1 ORDER BY s.started_at, s.sid"
    );
    let steps = client
        .query(&sql, &[&id])
        .map_err(pg_error)?
        .iter()
        .map(step_summary)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pg_error)?;
    Ok(Some(ExecutionDetail {
        execution,
        metadata: Json::parse(&metadata).unwrap_or_default(),
        input,
        output,
        steps,
    }))
}

pub(super) fn step(client: &mut Client, id: Uuid) -> Result<Option<StepRecord>, StoreError> {
    let Some(r) = client
        .query_opt(
            "SELECT id, execution_id, parent_id, name, kind, started_at, ended_at, status, error,
                input, output, filters, evaluations, selection, reasoning, metadata,
                candidates_in, candidates_out, logs_dropped
             FROM xray.steps WHERE id = $1",
            &[&id],
        )
        .map_err(pg_error)?
    else {
        return Ok(None);
    };
    let decode = |r: &Row| -> Result<StepRecord, postgres::Error> {
        let summary: Option<String> = r.try_get(12)?;
        let selection: Option<String> = r.try_get(13)?;
        Ok(StepRecord {
            id: r.try_get(0)?,
            execution_id: r.try_get(1)?,
            parent_id: r.try_get(2)?,
            name: r.try_get(3)?,
            kind: r.try_get(4)?,
            started_at: r.try_get(5)?,
            ended_at: r.try_get(6)?,
            status: status(r.try_get(7)?),
            error: r.try_get(8)?,
            input: json_col(r.try_get(9)?),
            output: json_col(r.try_get(10)?),
            filters: json_col(r.try_get(11)?),
            summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
            selection: selection
                .and_then(|s| serde_json::from_str::<Vec<Selection>>(&s).ok())
                .unwrap_or_default(),
            reasoning: r.try_get(14)?,
            metadata: json_col(r.try_get(15)?).unwrap_or_default(),
            candidates_in: r.try_get::<_, Option<i64>>(16)?.map(count),
            candidates_out: r.try_get::<_, Option<i64>>(17)?.map(count),
            evaluations: Vec::new(),
            logs: Vec::new(),
            logs_dropped: count(r.try_get(18)?),
        })
    };
    let mut step = decode(&r).map_err(pg_error)?;
    step.logs = client
        .query(
            "SELECT at, level, target, message, fields FROM xray.logs WHERE step_id = $1 ORDER BY idx",
            &[&id],
        )
        .map_err(pg_error)?
        .iter()
        .map(|r| {
            Ok(LogLine {
                at: r.try_get(0)?,
                level: r.try_get(1)?,
                target: r.try_get(2)?,
                message: r.try_get(3)?,
                fields: json_col(r.try_get(4)?).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(pg_error)?;
    Ok(Some(step))
}

pub(super) fn find_steps(
    client: &mut Client,
    q: &StepQuery,
) -> Result<Page<StepSummary>, StoreError> {
    let limit = page_size(q.limit)?;
    let mut f = Filter::default();
    if let Some(kind) = &q.kind {
        f.and("s.kind = ?", vec![p(kind.clone())]);
    }
    if let Some(name) = &q.name {
        f.and("s.name = ?", vec![p(name.clone())]);
    }
    if let Some(name) = &q.execution_name {
        f.and("x.name = ?", vec![p(name.clone())]);
    }
    if let Some(min) = q.min_elimination {
        if !(0.0..=1.0).contains(&min) {
            return Err(StoreError::invalid(
                "min_elimination",
                "must be between 0 and 1",
            ));
        }
        f.and("s.elimination >= ?", vec![p(min)]);
    }
    if let Some(s) = q.status {
        f.and("s.status = ?", vec![p(s.as_str())]);
    }
    if let Some(t) = q.since {
        f.and("s.started_at >= ?", vec![p(t)]);
    }
    if let Some(t) = q.until {
        f.and("s.started_at < ?", vec![p(t)]);
    }
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 's')?;
        let id = cursor_uuid(&c.tiebreak)?;
        f.and("(s.started_at, s.id) < (?, ?)", vec![p(c.key), p(id)]);
    }
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM xray.steps s JOIN xray.executions x ON x.id = s.execution_id{}
         ORDER BY s.started_at DESC, s.id DESC LIMIT {}",
        f.sql,
        limit + 1
    );
    page(client, &sql, &f.refs(), limit, step_summary, |s| {
        Cursor::new('s', s.started_at, s.id.to_string())
    })
}

pub(super) fn step_stats(
    client: &mut Client,
    q: &StatsQuery,
) -> Result<Vec<StepStats>, StoreError> {
    let mut f = Filter::default();
    f.and("s.ended_at IS NOT NULL", vec![]);
    if let Some(name) = &q.name {
        f.and("s.name = ?", vec![p(name.clone())]);
    }
    if let Some(kind) = &q.kind {
        f.and("s.kind = ?", vec![p(kind.clone())]);
    }
    if let Some(t) = q.since {
        f.and("s.started_at >= ?", vec![p(t)]);
    }
    if let Some(t) = q.until {
        f.and("s.started_at < ?", vec![p(t)]);
    }
    // The percentiles are nearest-rank at `round((count - 1) * p)` of the sorted durations, as
    // the SQLite store computes them (so both engines give the same figure).
    let sql = format!(
        "WITH chosen AS (SELECT s.name, s.status, s.elimination, s.duration_us FROM xray.steps s{}),
         ranked AS (
            SELECT name, duration_us,
                   row_number() OVER (PARTITION BY name ORDER BY duration_us) - 1 AS rank,
                   count(*) OVER (PARTITION BY name) AS n
            FROM chosen)
         SELECT c.name, count(*), count(*) FILTER (WHERE c.status = 'error'), avg(c.elimination),
            (SELECT kind FROM xray.steps k WHERE k.name = c.name ORDER BY k.started_at DESC LIMIT 1),
            (SELECT duration_us FROM ranked r WHERE r.name = c.name
                AND r.rank = round((r.n - 1) * 0.50::numeric)),
            (SELECT duration_us FROM ranked r WHERE r.name = c.name
                AND r.rank = round((r.n - 1) * 0.95::numeric))
         FROM chosen c GROUP BY c.name ORDER BY c.name",
        f.sql
    );
    let rows = client.query(&sql, &f.refs()).map_err(pg_error)?;
    rows.iter()
        .map(|r| {
            let count: i64 = r.try_get(1)?;
            let errors: i64 = r.try_get(2)?;
            Ok(StepStats {
                name: r.try_get(0)?,
                kind: r.try_get(4)?,
                count: count.max(0) as u64,
                p50_us: r.try_get::<_, Option<i64>>(5)?.unwrap_or(0),
                p95_us: r.try_get::<_, Option<i64>>(6)?.unwrap_or(0),
                error_rate: if count > 0 {
                    errors as f64 / count as f64
                } else {
                    0.0
                },
                mean_elimination: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(pg_error)
}

pub(super) fn recorder_counts(client: &mut Client) -> Result<RecorderCounts, StoreError> {
    let rows = client
        .query(
            "SELECT key, value FROM xray.meta WHERE key IN ('dropped', 'failed', 'sampled_out')",
            &[],
        )
        .map_err(pg_error)?;
    let mut counts = RecorderCounts::default();
    for row in rows {
        let (key, value): (String, i64) = (row.get(0), row.get(1));
        match key.as_str() {
            "dropped" => counts.dropped = count(value),
            "failed" => counts.failed = count(value),
            _ => counts.sampled_out = count(value),
        }
    }
    Ok(counts)
}

pub(super) fn execution_ids_before(
    client: &mut Client,
    before: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(client
        .query(
            "SELECT id FROM xray.executions WHERE started_at < $1",
            &[&before],
        )
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(super) fn latest_seq(client: &mut Client) -> Result<u64, StoreError> {
    Ok(count(
        client
            .query_one("SELECT value FROM xray.meta WHERE key = 'seq'", &[])
            .map_err(pg_error)?
            .get(0),
    ))
}

pub(super) fn changes_since(
    client: &mut Client,
    seq: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let limit = limit.clamp(1, 10_000) as i64;
    let after = i64::try_from(seq).unwrap_or(i64::MAX);
    // One snapshot for both reads: a change numbered below one that is seen is seen too.
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg_error)?;
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM xray.executions e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
    );
    let mut changes: Vec<Change> = tx
        .query(&sql, &[&after, &limit])
        .map_err(pg_error)?
        .iter()
        .map(|r| {
            let e = execution_summary(r)?;
            Ok(Change::Execution {
                seq: e.seq,
                execution: e,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(pg_error)?;
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM xray.steps s JOIN xray.executions x ON x.id = s.execution_id
         WHERE s.seq > $1 ORDER BY s.seq LIMIT $2"
    );
    let steps = tx
        .query(&sql, &[&after, &limit])
        .map_err(pg_error)?
        .iter()
        .map(|r| {
            let step = step_summary(r)?;
            Ok(Change::Step {
                seq: step.seq,
                step,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(pg_error)?;
    tx.commit().map_err(pg_error)?;
    changes.extend(steps);
    changes.sort_by_key(Change::seq);
    changes.truncate(limit as usize);
    Ok(changes)
}
