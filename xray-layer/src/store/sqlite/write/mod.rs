//! The write side: one transaction per batch, cached statements, idempotent by id.

use super::sqlite_error;
use crate::model::{
    elimination, Evaluation, ExecutionEnd, ExecutionStart, Record, StepRecord, StepStart,
};
use crate::recorder::arena::{json_into, StepRows};
use crate::store::{ExecutionUpdate, RecorderCounts, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::{BTreeSet, HashSet};
use uuid::Uuid;

/// Separator around failed check names in `evaluations.failed_checks`.
pub(crate) const SEP: char = '\u{1f}';

/// Writes `batch` in one transaction. `rows[i]`, when there is one, holds the evaluations of
/// `batch[i]` (a finished step) still in their arena.
pub(super) fn write_batch(
    conn: &mut Connection,
    batch: &[Record],
    rows: &mut [Option<Box<StepRows>>],
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    // Two per record (its placeholder execution, itself), and one per touched execution.
    let mut seq = allocate_seq(&tx, batch.len() as i64 * 3)?;
    let mut touched = BTreeSet::new();
    // A step that ends in this batch is written once, complete: its start row would be
    // replaced in the same transaction, so no reader could ever see it.
    let finished: HashSet<Uuid> = batch
        .iter()
        .filter_map(|r| match r {
            Record::StepFinished(step) => Some(step.id),
            _ => None,
        })
        .collect();
    let mut w = Writer {
        tx: &tx,
        ensured: HashSet::new(),
        checks: String::new(),
        failed: String::new(),
        metrics: String::new(),
        scratch: Vec::new(),
    };
    for (i, record) in batch.iter().enumerate() {
        match record {
            Record::ExecutionStarted(r) => {
                execution_started(&tx, r, seq.next())?;
                w.ensured.insert(r.id);
            }
            Record::ExecutionFinished(r) => {
                execution_finished(&tx, r, seq.next())?;
                w.ensured.insert(r.id);
            }
            Record::StepStarted(r) if finished.contains(&r.id) => {}
            Record::StepStarted(r) => {
                w.ensure_execution(r.execution_id, r.started_at, seq.next())?;
                step_started(&tx, r, seq.next())?;
            }
            Record::StepFinished(r) => {
                w.ensure_execution(r.execution_id, r.started_at, seq.next())?;
                let rows = rows.get_mut(i).and_then(Option::as_deref_mut);
                w.step_finished(r, rows, seq.next())?;
            }
        }
        touched.insert(record.execution_id());
    }
    for id in touched {
        refresh_execution(&tx, id, seq.next())?;
    }
    tx.commit().map_err(sqlite_error)
}

/// What one batch keeps at hand: the executions known to exist, and buffers reused row after
/// row.
struct Writer<'a> {
    tx: &'a Transaction<'a>,
    ensured: HashSet<Uuid>,
    checks: String,
    failed: String,
    metrics: String,
    scratch: Vec<u8>,
}

impl Writer<'_> {
    /// Makes sure the execution has a row (its start record may have been dropped), once per
    /// batch.
    fn ensure_execution(&mut self, id: Uuid, started_at: i64, seq: i64) -> Result<(), StoreError> {
        if self.ensured.insert(id) {
            placeholder_execution(self.tx, id, started_at, seq)?;
        }
        Ok(())
    }
}

/// Sequence numbers reserved for one batch.
struct Seq {
    next: i64,
}

impl Seq {
    fn next(&mut self) -> i64 {
        self.next += 1;
        self.next
    }
}

fn allocate_seq(tx: &Transaction<'_>, n: i64) -> Result<Seq, StoreError> {
    let end: i64 = tx
        .query_row(
            "UPDATE xray_meta SET value = value + ?1 WHERE key = 'seq' RETURNING value",
            [n],
            |r| r.get(0),
        )
        .map_err(sqlite_error)?;
    Ok(Seq { next: end - n })
}

fn placeholder_execution(
    tx: &Transaction<'_>,
    id: Uuid,
    started_at: i64,
    seq: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO executions(id, name, started_at, status, seq)
         VALUES (?1, '(start record lost)', ?2, 'running', ?3)
         ON CONFLICT(id) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![id.to_string(), started_at, seq]))
    .map_err(sqlite_error)?;
    Ok(())
}

/// The stored metadata of execution `id`, if it has a row.
fn stored_metadata(tx: &Transaction<'_>, id: Uuid) -> Result<Option<String>, StoreError> {
    tx.prepare_cached("SELECT metadata FROM executions WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
        .map_err(sqlite_error)
}

fn execution_started(tx: &Transaction<'_>, r: &ExecutionStart, seq: i64) -> Result<(), StoreError> {
    let tags = serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into());
    // Written again (an ingest repeated, an end that arrived first): what is stored wins.
    let metadata = match stored_metadata(tx, r.id)? {
        Some(stored) => crate::store::metadata::merge(r.metadata.as_str(), &stored),
        None => r.metadata.as_str().to_owned(),
    };
    tx.prepare_cached(
        "INSERT INTO executions(id, name, started_at, status, tags, metadata, service, host, pid, seq)
         VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(id) DO UPDATE SET
            name = excluded.name, started_at = excluded.started_at,
            tags = CASE WHEN executions.tags = '[]' THEN excluded.tags ELSE executions.tags END,
            metadata = excluded.metadata,
            service = excluded.service, host = excluded.host, pid = excluded.pid, seq = excluded.seq",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.to_string(),
            r.name,
            r.started_at,
            tags,
            metadata,
            r.service,
            r.host,
            r.pid,
            seq
        ])
    })
    .map_err(sqlite_error)?;
    Ok(())
}

fn execution_finished(tx: &Transaction<'_>, r: &ExecutionEnd, seq: i64) -> Result<(), StoreError> {
    placeholder_execution(tx, r.id, r.completed_at, seq)?;
    let stored = stored_metadata(tx, r.id)?.unwrap_or_default();
    let metadata = match &r.metadata {
        Some(over) => crate::store::metadata::merge(&stored, over.as_str()),
        None => stored,
    };
    tx.prepare_cached(
        "UPDATE executions SET completed_at = ?2, status = ?3, error = ?4,
            metadata = ?5,
            input = coalesce(?6, input), output = coalesce(?7, output),
            dropped_records = max(dropped_records, ?8), seq = ?9
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.to_string(),
            r.completed_at,
            r.status.as_str(),
            r.error,
            metadata,
            r.input.as_ref().map(|m| m.as_str()),
            r.output.as_ref().map(|m| m.as_str()),
            r.dropped_records as i64,
            seq
        ])
    })
    .map_err(sqlite_error)?;
    if r.dropped_records > 0 {
        // A step whose end record was dropped will never finish: say so instead of "running".
        tx.prepare_cached(
            "UPDATE steps SET status = 'lost', seq = ?2 WHERE execution_id = ?1 AND status = 'running'",
        )
        .and_then(|mut s| s.execute(params![r.id.to_string(), seq]))
        .map_err(sqlite_error)?;
    }
    Ok(())
}

/// Writes a step's start row; its execution is known to exist (see `Writer::ensure_execution`).
fn step_started(tx: &Transaction<'_>, r: &StepStart, seq: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO steps(id, execution_id, parent_id, name, kind, started_at, status, created_at, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?6, ?7)
         ON CONFLICT(id) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.to_string(),
            r.execution_id.to_string(),
            r.parent_id.map(|p| p.to_string()),
            r.name,
            r.kind,
            r.started_at,
            seq
        ])
    })
    .map_err(sqlite_error)?;
    Ok(())
}

impl Writer<'_> {
    fn step_finished(
        &mut self,
        r: &StepRecord,
        rows: Option<&mut StepRows>,
        seq: i64,
    ) -> Result<(), StoreError> {
        let tx = self.tx;
        let json = |j: &Option<crate::model::Json>| j.as_ref().map(|j| j.as_str().to_owned());
        let summary = r
            .summary
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok());
        let selection = (!r.selection.is_empty())
            .then(|| serde_json::to_string(&r.selection).ok())
            .flatten();
        let sid: i64 = tx
        .prepare_cached(
            "INSERT INTO steps(id, execution_id, parent_id, name, kind, started_at, ended_at, duration_us,
                status, error, input, output, filters, evaluations, selection, reasoning, metadata,
                candidates_in, candidates_out, elimination, evaluations_kept, logs_dropped, created_at, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                ?20, ?21, ?22, ?6, ?23)
             ON CONFLICT(id) DO UPDATE SET
                parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind,
                started_at = excluded.started_at, ended_at = excluded.ended_at,
                duration_us = excluded.duration_us, status = excluded.status, error = excluded.error,
                input = excluded.input, output = excluded.output, filters = excluded.filters,
                evaluations = excluded.evaluations, selection = excluded.selection,
                reasoning = excluded.reasoning, metadata = excluded.metadata,
                candidates_in = excluded.candidates_in, candidates_out = excluded.candidates_out,
                elimination = excluded.elimination, evaluations_kept = excluded.evaluations_kept,
                logs_dropped = excluded.logs_dropped, seq = excluded.seq
             RETURNING sid",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    r.id.to_string(),
                    r.execution_id.to_string(),
                    r.parent_id.map(|p| p.to_string()),
                    r.name,
                    r.kind,
                    r.started_at,
                    r.ended_at,
                    r.duration_us(),
                    r.status.as_str(),
                    r.error,
                    json(&r.input),
                    json(&r.output),
                    json(&r.filters),
                    summary,
                    selection,
                    r.reasoning,
                    r.metadata.as_str(),
                    r.candidates_in.map(|n| n as i64),
                    r.candidates_out.map(|n| n as i64),
                    elimination(r.candidates_in, r.candidates_out),
                    rows.as_ref().map_or(r.evaluations.len(), |rows| rows.kept_len()) as i64,
                    r.logs_dropped as i64,
                    seq
                ],
                |row| row.get(0),
            )
        })
        .map_err(sqlite_error)?;
        // Idempotent: a step written again replaces its rows.
        for sql in [
            "DELETE FROM evaluations WHERE step_sid = ?1",
            "DELETE FROM logs WHERE step_sid = ?1",
        ] {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute([sid]))
                .map_err(sqlite_error)?;
        }
        if let Some(rows) = rows {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO evaluations(step_sid, idx, candidate_id, label, passed, score,
                        selected, checks, failed_checks, metrics, snapshot)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(sqlite_error)?;
            let (checks, failed, metrics) = (&mut self.checks, &mut self.failed, &mut self.metrics);
            let kept: Vec<usize> = rows.kept().collect();
            for (idx, &i) in kept.iter().enumerate() {
                rows.write_checks(i, checks, failed);
                let has_metrics = rows.write_metrics(i, metrics);
                insert
                    .execute(params![
                        sid,
                        idx as i64,
                        rows.candidate(i),
                        rows.label(i),
                        rows.passed(i),
                        rows.score(i),
                        rows.selected(i),
                        checks.as_str(),
                        failed.as_str(),
                        has_metrics.then_some(metrics.as_str()),
                        rows.snapshot(i).as_deref()
                    ])
                    .map_err(sqlite_error)?;
            }
        } else if !r.evaluations.is_empty() {
            let mut insert = tx
            .prepare_cached(
                "INSERT INTO evaluations(step_sid, idx, candidate_id, label, passed, score, selected,
                    checks, failed_checks, metrics, snapshot)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(sqlite_error)?;
            let (checks, failed, scratch) = (&mut self.checks, &mut self.failed, &mut self.scratch);
            for (idx, e) in r.evaluations.iter().enumerate() {
                encode_checks(e, checks, failed, scratch);
                let metrics = (!e.metrics.is_empty())
                    .then(|| serde_json::to_string(&e.metrics).ok())
                    .flatten();
                insert
                    .execute(params![
                        sid,
                        idx as i64,
                        e.candidate_id,
                        e.label,
                        e.passed,
                        e.score,
                        e.selected,
                        checks.as_str(),
                        failed.as_str(),
                        metrics,
                        e.snapshot.as_ref().map(|s| s.as_str())
                    ])
                    .map_err(sqlite_error)?;
            }
        }
        if !r.logs.is_empty() {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO logs(step_sid, idx, at, level, target, message, fields)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sqlite_error)?;
            for (idx, log) in r.logs.iter().enumerate() {
                insert
                    .execute(params![
                        sid,
                        idx as i64,
                        log.at,
                        log.level,
                        log.target,
                        log.message,
                        log.fields.as_str()
                    ])
                    .map_err(sqlite_error)?;
            }
        }
        Ok(())
    }
}

/// Writes an evaluation's checks as JSON (what `serde_json` writes for `Vec<Check>`, by hand:
/// no `Value` walk, no allocation) and its failed check names as `\x1fa\x1fb\x1f`.
fn encode_checks(e: &Evaluation, checks: &mut String, failed: &mut String, scratch: &mut Vec<u8>) {
    checks.clear();
    failed.clear();
    checks.push('[');
    for (i, c) in e.checks.iter().enumerate() {
        if i > 0 {
            checks.push(',');
        }
        checks.push_str("{\"name\":");
        json_into(checks, scratch, c.name.as_str());
        checks.push_str(if c.passed {
            ",\"passed\":true"
        } else {
            ",\"passed\":false"
        });
        if let Some(reason) = &c.reason {
            checks.push_str(",\"reason\":");
            json_into(checks, scratch, reason.as_str());
        }
        if let Some(observed) = &c.observed {
            checks.push_str(",\"observed\":");
            json_into(checks, scratch, observed);
        }
        if let Some(threshold) = &c.threshold {
            checks.push_str(",\"threshold\":");
            json_into(checks, scratch, threshold);
        }
        if let Some(op) = &c.op {
            checks.push_str(",\"op\":");
            json_into(checks, scratch, op.as_str());
        }
        checks.push('}');
    }
    checks.push(']');
    for c in e.checks.iter().filter(|c| !c.passed) {
        if failed.is_empty() {
            failed.push(SEP);
        }
        failed.push_str(&c.name);
        failed.push(SEP);
    }
}

/// Recomputes an execution's step counts and funnel ends after its steps changed.
fn refresh_execution(tx: &Transaction<'_>, id: Uuid, seq: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE executions SET
            step_count = (SELECT count(*) FROM steps WHERE execution_id = ?1),
            error_steps = (SELECT count(*) FROM steps WHERE execution_id = ?1 AND status = 'error'),
            candidates_in = (SELECT candidates_in FROM steps WHERE execution_id = ?1
                             AND candidates_in IS NOT NULL ORDER BY started_at, sid LIMIT 1),
            -- A run that failed returned no candidates, whatever a step let through before.
            candidates_out = CASE WHEN status = 'error' THEN NULL ELSE
                             (SELECT candidates_out FROM steps WHERE execution_id = ?1
                              AND candidates_out IS NOT NULL AND parent_id IS NULL
                              ORDER BY started_at DESC, sid DESC LIMIT 1) END,
            seq = ?2
         WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![id.to_string(), seq]))
    .map_err(sqlite_error)?;
    Ok(())
}

/// Moves `candidate_index` forward over steps written since `indexed_seq`, in candidate order.
pub(super) fn index_candidates(conn: &mut Connection, limit: usize) -> Result<usize, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let indexed: i64 = tx
        .query_row(
            "SELECT value FROM xray_meta WHERE key = 'indexed_seq'",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_error)?;
    // Steps written since, that are finished, in seq order, until `limit` rows are covered.
    let mut upto = indexed;
    let mut rows = 0usize;
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT seq, evaluations_kept FROM steps WHERE seq > ?1 AND status != 'running'
                 ORDER BY seq LIMIT 10000",
            )
            .map_err(sqlite_error)?;
        let mut cursor = stmt.query([indexed]).map_err(sqlite_error)?;
        while let Some(row) = cursor.next().map_err(sqlite_error)? {
            let seq: i64 = row.get(0).map_err(sqlite_error)?;
            let kept: i64 = row.get(1).map_err(sqlite_error)?;
            if rows > 0 && rows + kept as usize > limit {
                break;
            }
            rows += kept as usize;
            upto = seq;
        }
    }
    if upto == indexed {
        return Ok(0);
    }
    // A running step below `upto` is not indexed yet: stop just before the oldest one.
    let running: Option<i64> = tx
        .query_row(
            "SELECT min(seq) FROM steps WHERE seq > ?1 AND seq <= ?2 AND status = 'running'",
            [indexed, upto],
            |r| r.get(0),
        )
        .optional()
        .map_err(sqlite_error)?
        .flatten();
    if let Some(first_running) = running {
        upto = first_running - 1;
        if upto <= indexed {
            return Ok(0);
        }
    }
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO candidate_index(candidate_id, step_sid, idx)
             SELECT e.candidate_id, e.step_sid, e.idx
             FROM steps s JOIN evaluations e ON e.step_sid = s.sid
             WHERE s.seq > ?1 AND s.seq <= ?2
             ORDER BY e.candidate_id",
        )
        .and_then(|mut s| s.execute([indexed, upto]))
        .map_err(sqlite_error)?;
    tx.execute(
        "UPDATE xray_meta SET value = ?1 WHERE key = 'indexed_seq'",
        [upto],
    )
    .map_err(sqlite_error)?;
    tx.commit().map_err(sqlite_error)?;
    Ok(n)
}

pub(super) fn add_recorder_counts(
    conn: &mut Connection,
    counts: &RecorderCounts,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    for (key, n) in counts.keyed() {
        if n == 0 {
            continue;
        }
        // An upsert: a database made before a count was kept has no row for it yet.
        tx.execute(
            "INSERT INTO xray_meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            params![key, n as i64],
        )
        .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)
}

pub(super) fn update_execution(
    conn: &mut Connection,
    id: Uuid,
    update: &ExecutionUpdate,
) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let seq = allocate_seq(&tx, 1)?.next();
    let tags = update
        .tags
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into()));
    let n = tx
        .execute(
            "UPDATE executions SET tags = coalesce(?2, tags), notes = coalesce(?3, notes), seq = ?4
             WHERE id = ?1",
            params![id.to_string(), tags, update.notes, seq],
        )
        .map_err(sqlite_error)?;
    tx.commit().map_err(sqlite_error)?;
    Ok(n > 0)
}

pub(super) fn delete_executions(conn: &mut Connection, ids: &[Uuid]) -> Result<u64, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let mut deleted = 0u64;
    for id in ids {
        let id = id.to_string();
        for sql in [
            "DELETE FROM evaluations WHERE step_sid IN (SELECT sid FROM steps WHERE execution_id = ?1)",
            "DELETE FROM logs WHERE step_sid IN (SELECT sid FROM steps WHERE execution_id = ?1)",
            "DELETE FROM steps WHERE execution_id = ?1",
        ] {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute([&id]))
                .map_err(sqlite_error)?;
        }
        // candidate_index rows of deleted steps are left behind: lineage joins on steps, and
        // `steps.sid` is never reused, so they match nothing.
        deleted += tx
            .prepare_cached("DELETE FROM executions WHERE id = ?1")
            .and_then(|mut s| s.execute([&id]))
            .map_err(sqlite_error)? as u64;
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(deleted)
}

#[cfg(test)]
mod tests;
