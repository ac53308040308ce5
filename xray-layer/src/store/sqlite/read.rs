//! The read side: parameterized queries only, keyset pagination, no full-table scans on the
//! paths a viewer uses.

use super::sqlite_error;
use crate::model::{elimination, EvaluationSummary, Json, LogLine, Selection, Status, StepRecord};
use crate::store::cursor::Cursor;
use crate::store::preview::{json_preview, INPUT_PREFIX_CHARS};
use crate::store::query::*;
use crate::store::StoreError;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use uuid::Uuid;

/// A WHERE clause under construction, with its parameters.
#[derive(Default)]
pub(super) struct Filter {
    pub(super) sql: String,
    pub(super) params: Vec<Value>,
}

impl Filter {
    pub(super) fn and(&mut self, clause: &str, values: impl IntoIterator<Item = Value>) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(clause);
        self.params.extend(values);
    }
}

pub(super) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

pub(super) fn int(n: i64) -> Value {
    Value::Integer(n)
}

/// `%s%` for LIKE, with `%`, `_` and `\` escaped.
pub(super) fn like(s: &str) -> Value {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    Value::Text(out)
}

pub(super) fn parse_uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap_or_default()
}

fn status(s: &str) -> Status {
    Status::parse(s).unwrap_or(Status::Lost)
}

pub(super) fn json_col(s: Option<String>) -> Option<Json> {
    s.and_then(|s| Json::parse(&s))
}

/// The columns of an [`ExecutionSummary`], the last two prefixes of the input and the output
/// for their previews ([`INPUT_PREFIX_CHARS`] characters: the literal below).
const EXECUTION_COLUMNS: &str = "e.id, e.name, e.status, e.started_at, e.completed_at, e.tags, e.notes, e.error,
    e.step_count, e.error_steps, e.candidates_in, e.candidates_out, e.dropped_records, e.service, e.host, e.pid, e.seq,
    substr(e.input, 1, 1000), substr(e.output, 1, 1000)";

/// How many columns [`EXECUTION_COLUMNS`] has: what a query selects after them starts here.
const EXECUTION_COLUMN_COUNT: usize = 19;

const _: () = assert!(
    INPUT_PREFIX_CHARS == 1000,
    "EXECUTION_COLUMNS reads 1000 characters"
);

fn execution_summary(row: &Row<'_>) -> rusqlite::Result<ExecutionSummary> {
    let tags: String = row.get(5)?;
    Ok(ExecutionSummary {
        id: parse_uuid(&row.get::<_, String>(0)?),
        name: row.get(1)?,
        status: status(&row.get::<_, String>(2)?),
        started_at: row.get(3)?,
        completed_at: row.get(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        notes: row.get(6)?,
        error: row.get(7)?,
        step_count: row.get::<_, i64>(8)? as u64,
        error_steps: row.get::<_, i64>(9)? as u64,
        candidates_in: row.get::<_, Option<i64>>(10)?.map(|n| n as u64),
        candidates_out: row.get::<_, Option<i64>>(11)?.map(|n| n as u64),
        dropped_records: row.get::<_, i64>(12)? as u64,
        service: row.get(13)?,
        host: row.get(14)?,
        pid: row.get::<_, Option<i64>>(15)?.map(|n| n as u32),
        seq: row.get::<_, i64>(16)? as u64,
        input_preview: row
            .get::<_, Option<String>>(17)?
            .as_deref()
            .map(json_preview)
            .unwrap_or_default(),
        output_preview: row
            .get::<_, Option<String>>(18)?
            .as_deref()
            .map(json_preview)
            .unwrap_or_default(),
    })
}

const STEP_COLUMNS: &str =
    "s.id, s.execution_id, x.name, s.parent_id, s.name, s.kind, s.status, s.error,
    s.started_at, s.ended_at, s.candidates_in, s.candidates_out, s.evaluations, s.seq";

fn step_summary(row: &Row<'_>) -> rusqlite::Result<StepSummary> {
    let candidates_in = row.get::<_, Option<i64>>(10)?.map(|n| n as u64);
    let candidates_out = row.get::<_, Option<i64>>(11)?.map(|n| n as u64);
    let summary: Option<String> = row.get(12)?;
    Ok(StepSummary {
        id: parse_uuid(&row.get::<_, String>(0)?),
        execution_id: parse_uuid(&row.get::<_, String>(1)?),
        execution_name: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
        parent_id: row.get::<_, Option<String>>(3)?.map(|p| parse_uuid(&p)),
        name: row.get(4)?,
        kind: row.get(5)?,
        status: status(&row.get::<_, String>(6)?),
        error: row.get(7)?,
        started_at: row.get(8)?,
        ended_at: row.get(9)?,
        candidates_in,
        candidates_out,
        elimination: elimination(candidates_in, candidates_out),
        summary: summary.and_then(|s| serde_json::from_str::<EvaluationSummary>(&s).ok()),
        seq: row.get::<_, i64>(13)? as u64,
    })
}

/// Runs `sql` (which must select `limit + 1` rows) and splits off the next cursor.
pub(super) fn page<T>(
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
    limit: usize,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    cursor_of: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    let mut items = stmt
        .query_map(params_from_iter(params), |r| map(r))
        .map_err(sqlite_error)?
        .collect::<Result<Vec<T>, _>>()
        .map_err(sqlite_error)?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| cursor_of(last).encode())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub(super) fn list_executions(
    conn: &Connection,
    q: &ExecutionQuery,
) -> Result<Page<ExecutionSummary>, StoreError> {
    let limit = page_size(q.limit)?;
    let mut f = Filter::default();
    if let Some(name) = &q.name {
        f.and("e.name = ?", [text(name)]);
    }
    if let Some(s) = q.status {
        f.and("e.status = ?", [text(s.as_str())]);
    }
    for tag in &q.tags {
        f.and(
            "EXISTS (SELECT 1 FROM json_each(e.tags) WHERE json_each.value = ?)",
            [text(tag)],
        );
    }
    if let Some(t) = q.since {
        f.and("e.started_at >= ?", [int(t)]);
    }
    if let Some(t) = q.until {
        f.and("e.started_at < ?", [int(t)]);
    }
    if let Some(n) = q.min_steps {
        f.and("e.step_count >= ?", [int(n as i64)]);
    }
    if let Some(n) = q.max_steps {
        f.and("e.step_count <= ?", [int(n as i64)]);
    }
    if let Some(needle) = q.q.as_deref().filter(|s| !s.trim().is_empty()) {
        let p = like(needle.trim());
        f.and(
            "(e.name LIKE ? ESCAPE '\\' OR e.id LIKE ? ESCAPE '\\' OR e.notes LIKE ? ESCAPE '\\'
              OR e.input LIKE ? ESCAPE '\\' OR e.output LIKE ? ESCAPE '\\'
              OR EXISTS (SELECT 1 FROM steps s WHERE s.execution_id = e.id AND s.name LIKE ? ESCAPE '\\'))",
            [p.clone(), p.clone(), p.clone(), p.clone(), p.clone(), p],
        );
    }
    match q.has_error {
        Some(true) => f.and("(e.status = 'error' OR e.error_steps > 0)", []),
        Some(false) => f.and("(e.status != 'error' AND e.error_steps = 0)", []),
        None => {}
    }
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 'e')?;
        f.and(
            "(e.started_at < ? OR (e.started_at = ? AND e.id < ?))",
            [int(c.key), int(c.key), text(&c.tiebreak)],
        );
    }
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e{} ORDER BY e.started_at DESC, e.id DESC LIMIT {}",
        f.sql,
        limit + 1
    );
    page(conn, &sql, f.params, limit, execution_summary, |e| {
        Cursor::new('e', e.started_at, e.id.to_string())
    })
}

pub(super) fn execution(
    conn: &Connection,
    id: Uuid,
) -> Result<Option<ExecutionDetail>, StoreError> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS}, e.metadata, e.input, e.output FROM executions e WHERE e.id = ?1"
    );
    let found = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row([id.to_string()], |r| {
                Ok((
                    execution_summary(r)?,
                    r.get::<_, String>(EXECUTION_COLUMN_COUNT)?,
                    json_col(r.get(EXECUTION_COLUMN_COUNT + 1)?),
                    json_col(r.get(EXECUTION_COLUMN_COUNT + 2)?),
                ))
            })
            .optional()
        })
        .map_err(sqlite_error)?;
    let Some((execution, metadata, input, output)) = found else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM steps s JOIN executions x ON x.id = s.execution_id
         WHERE s.execution_id = ?1 ORDER BY s.started_at, s.sid"
    );
    let steps = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map([id.to_string()], step_summary)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_error)?;
    Ok(Some(ExecutionDetail {
        execution,
        metadata: Json::parse(&metadata).unwrap_or_default(),
        input,
        output,
        steps,
    }))
}

pub(super) fn step(conn: &Connection, id: Uuid) -> Result<Option<StepRecord>, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT sid, id, execution_id, parent_id, name, kind, started_at, ended_at, status, error,
                input, output, filters, evaluations, selection, reasoning, metadata,
                candidates_in, candidates_out, logs_dropped
             FROM steps WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id.to_string()], |r| {
                let summary: Option<String> = r.get(13)?;
                let selection: Option<String> = r.get(14)?;
                let sid: i64 = r.get(0)?;
                Ok((
                    sid,
                    StepRecord {
                        id: parse_uuid(&r.get::<_, String>(1)?),
                        execution_id: parse_uuid(&r.get::<_, String>(2)?),
                        parent_id: r.get::<_, Option<String>>(3)?.map(|p| parse_uuid(&p)),
                        name: r.get(4)?,
                        kind: r.get(5)?,
                        started_at: r.get(6)?,
                        ended_at: r.get(7)?,
                        status: status(&r.get::<_, String>(8)?),
                        error: r.get(9)?,
                        input: json_col(r.get(10)?),
                        output: json_col(r.get(11)?),
                        filters: json_col(r.get(12)?),
                        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
                        selection: selection
                            .and_then(|s| serde_json::from_str::<Vec<Selection>>(&s).ok())
                            .unwrap_or_default(),
                        reasoning: r.get(15)?,
                        metadata: json_col(r.get(16)?).unwrap_or_default(),
                        candidates_in: r.get::<_, Option<i64>>(17)?.map(|n| n as u64),
                        candidates_out: r.get::<_, Option<i64>>(18)?.map(|n| n as u64),
                        evaluations: Vec::new(),
                        logs: Vec::new(),
                        logs_dropped: r.get::<_, i64>(19)? as u64,
                    },
                ))
            })
            .optional()
        })
        .map_err(sqlite_error)?;
    let Some((sid, mut step)) = found else {
        return Ok(None);
    };
    step.logs = conn
        .prepare_cached(
            "SELECT at, level, target, message, fields FROM logs WHERE step_sid = ?1 ORDER BY idx",
        )
        .and_then(|mut s| {
            s.query_map([sid], |r| {
                Ok(LogLine {
                    at: r.get(0)?,
                    level: r.get(1)?,
                    target: r.get(2)?,
                    message: r.get(3)?,
                    fields: json_col(r.get(4)?).unwrap_or_default(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_error)?;
    Ok(Some(step))
}

pub(super) fn find_steps(
    conn: &Connection,
    q: &StepQuery,
) -> Result<Page<StepSummary>, StoreError> {
    let limit = page_size(q.limit)?;
    let mut f = Filter::default();
    if let Some(kind) = &q.kind {
        f.and("s.kind = ?", [text(kind)]);
    }
    if let Some(name) = &q.name {
        f.and("s.name = ?", [text(name)]);
    }
    if let Some(name) = &q.execution_name {
        f.and("x.name = ?", [text(name)]);
    }
    if let Some(min) = q.min_elimination {
        if !(0.0..=1.0).contains(&min) {
            return Err(StoreError::invalid(
                "min_elimination",
                "must be between 0 and 1",
            ));
        }
        f.and("s.elimination >= ?", [Value::Real(min)]);
    }
    if let Some(s) = q.status {
        f.and("s.status = ?", [text(s.as_str())]);
    }
    if let Some(t) = q.since {
        f.and("s.started_at >= ?", [int(t)]);
    }
    if let Some(t) = q.until {
        f.and("s.started_at < ?", [int(t)]);
    }
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c, 's')?;
        f.and(
            "(s.started_at < ? OR (s.started_at = ? AND s.id < ?))",
            [int(c.key), int(c.key), text(&c.tiebreak)],
        );
    }
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM steps s JOIN executions x ON x.id = s.execution_id{}
         ORDER BY s.started_at DESC, s.id DESC LIMIT {}",
        f.sql,
        limit + 1
    );
    page(conn, &sql, f.params, limit, step_summary, |s| {
        Cursor::new('s', s.started_at, s.id.to_string())
    })
}

pub(super) fn step_stats(conn: &Connection, q: &StatsQuery) -> Result<Vec<StepStats>, StoreError> {
    let mut f = Filter::default();
    f.and("s.ended_at IS NOT NULL", []);
    if let Some(name) = &q.name {
        f.and("s.name = ?", [text(name)]);
    }
    if let Some(kind) = &q.kind {
        f.and("s.kind = ?", [text(kind)]);
    }
    if let Some(t) = q.since {
        f.and("s.started_at >= ?", [int(t)]);
    }
    if let Some(t) = q.until {
        f.and("s.started_at < ?", [int(t)]);
    }
    let sql = format!(
        "SELECT s.name, count(*), sum(s.status = 'error'), avg(s.elimination),
            (SELECT kind FROM steps k WHERE k.name = s.name ORDER BY k.started_at DESC LIMIT 1)
         FROM steps s{} GROUP BY s.name ORDER BY s.name",
        f.sql
    );
    let groups = conn
        .prepare(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(f.params.clone()), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_error)?;
    let percentile_sql = format!(
        "SELECT s.duration_us FROM steps s{} AND s.name = ? ORDER BY s.duration_us LIMIT 1 OFFSET ?",
        f.sql
    );
    let mut out = Vec::with_capacity(groups.len());
    for (name, count, errors, mean_elimination, kind) in groups {
        let at = |p: f64| -> Result<i64, StoreError> {
            let offset = ((count as f64 - 1.0) * p).round() as i64;
            let mut params = f.params.clone();
            params.extend([text(&name), int(offset)]);
            conn.prepare_cached(&percentile_sql)
                .and_then(|mut s| {
                    s.query_row(params_from_iter(params), |r| r.get::<_, Option<i64>>(0))
                })
                .map(|v| v.unwrap_or(0))
                .map_err(sqlite_error)
        };
        out.push(StepStats {
            p50_us: at(0.50)?,
            p95_us: at(0.95)?,
            name,
            kind,
            count: count as u64,
            error_rate: if count > 0 {
                errors as f64 / count as f64
            } else {
                0.0
            },
            mean_elimination,
        });
    }
    Ok(out)
}

pub(super) fn recorder_counts(conn: &Connection) -> Result<RecorderCounts, StoreError> {
    let get = |key: &str| -> Result<u64, StoreError> {
        conn.query_row(
            "SELECT value FROM xray_meta WHERE key = ?1",
            params![key],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map(|n| n.unwrap_or(0).max(0) as u64)
        .map_err(sqlite_error)
    };
    Ok(RecorderCounts {
        dropped: get("dropped")?,
        failed: get("failed")?,
        sampled_out: get("sampled_out")?,
    })
}

pub(super) fn execution_ids_before(
    conn: &Connection,
    before: i64,
) -> Result<Vec<Uuid>, StoreError> {
    conn.prepare_cached("SELECT id FROM executions WHERE started_at < ?1")
        .and_then(|mut s| {
            s.query_map([before], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map(|ids| ids.iter().map(|s| parse_uuid(s)).collect())
        .map_err(sqlite_error)
}

pub(super) fn latest_seq(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row("SELECT value FROM xray_meta WHERE key = 'seq'", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0) as u64)
    .map_err(sqlite_error)
}

pub(super) fn changes_since(
    conn: &Connection,
    seq: u64,
    limit: usize,
) -> Result<Vec<crate::store::Change>, StoreError> {
    use crate::store::Change;
    let limit = limit.clamp(1, 10_000) as i64;
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"
    );
    let mut changes: Vec<Change> = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params![seq as i64, limit], |r| {
                let e = execution_summary(r)?;
                Ok(Change::Execution {
                    seq: e.seq,
                    execution: e,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_error)?;
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM steps s JOIN executions x ON x.id = s.execution_id
         WHERE s.seq > ?1 ORDER BY s.seq LIMIT ?2"
    );
    let steps = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params![seq as i64, limit], |r| {
                let step = step_summary(r)?;
                Ok(Change::Step {
                    seq: step.seq,
                    step,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sqlite_error)?;
    changes.extend(steps);
    changes.sort_by_key(Change::seq);
    changes.truncate(limit as usize);
    Ok(changes)
}
