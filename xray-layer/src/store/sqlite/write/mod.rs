//! The write side: one transaction per batch, cached statements, idempotent by id.

mod counts;
mod steps;

use super::sqlite_error;
use crate::model::{ExecutionEnd, ExecutionStart, Record};
use crate::recorder::arena::StepRows;
use crate::store::{ExecutionUpdate, RecorderCounts, StoreError};
use counts::{refresh_execution, CountChange};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::{BTreeMap, HashSet};
#[cfg(test)]
use steps::encode_checks;
use steps::step_started;
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
    let mut touched: BTreeMap<Uuid, CountChange> = BTreeMap::new();
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
            Record::StepStarted(r) if finished.contains(&r.id) => continue,
            Record::StepStarted(r) => {
                w.ensure_execution(r.execution_id, r.started_at, seq.next())?;
                let change = step_started(&tx, r, seq.next())?;
                touched.entry(r.execution_id).or_default().add(change);
                continue;
            }
            Record::StepFinished(r) => {
                w.ensure_execution(r.execution_id, r.started_at, seq.next())?;
                let rows = rows.get_mut(i).and_then(Option::as_deref_mut);
                let change = w.step_finished(r, rows, seq.next())?;
                touched.entry(r.execution_id).or_default().add(change);
                continue;
            }
        }
        // The run's status decides its candidates out (none for a run that failed).
        touched
            .entry(record.execution_id())
            .or_default()
            .out_changed = true;
    }
    for (id, change) in touched {
        refresh_execution(&tx, id, &change, seq.next())?;
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
