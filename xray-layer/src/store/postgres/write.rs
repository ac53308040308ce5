//! The write side: one transaction per batch; evaluations and logs by binary COPY; change
//! numbers taken last, in commit order (see the module documentation).

use super::{pg_error, CHANNEL};
use crate::model::{
    elimination, ExecutionEnd, ExecutionStart, Json, Record, StepRecord, StepStart,
};
use crate::store::metadata::merge;
use crate::store::{ExecutionUpdate, RecorderCounts, StoreError};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};
use std::collections::{BTreeSet, HashSet};
use uuid::Uuid;

/// Writes `batch` in one transaction.
pub(super) fn write_batch(client: &mut Client, batch: &[Record]) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    // A step that ends in this batch is written once, complete (as in SQLite).
    let finished: Vec<&StepRecord> = batch
        .iter()
        .filter_map(|r| match r {
            Record::StepFinished(step) => Some(&**step),
            _ => None,
        })
        .collect();
    let finished_ids: HashSet<Uuid> = finished.iter().map(|s| s.id).collect();
    if !finished.is_empty() {
        replace_rows(&mut tx, &finished)?;
    }

    // From here on, the counter row is locked until the commit: keep this part short.
    let mut seq = allocate_seq(&mut tx, batch.len() as i64 * 3)?;
    let mut ensured = HashSet::new();
    let mut touched = BTreeSet::new();
    for record in batch {
        match record {
            Record::ExecutionStarted(r) => {
                execution_started(&mut tx, r, seq.next())?;
                ensured.insert(r.id);
            }
            Record::ExecutionFinished(r) => {
                execution_finished(&mut tx, r, seq.next())?;
                ensured.insert(r.id);
            }
            Record::StepStarted(r) if finished_ids.contains(&r.id) => {}
            Record::StepStarted(r) => {
                if ensured.insert(r.execution_id) {
                    placeholder_execution(&mut tx, r.execution_id, r.started_at, seq.next())?;
                }
                step_started(&mut tx, r, seq.next())?;
            }
            Record::StepFinished(r) => {
                if ensured.insert(r.execution_id) {
                    placeholder_execution(&mut tx, r.execution_id, r.started_at, seq.next())?;
                }
                step_finished(&mut tx, r, seq.next())?;
            }
        }
        touched.insert(record.execution_id());
    }
    for id in touched {
        refresh_execution(&mut tx, id, seq.next())?;
    }
    notify(&mut tx, seq.last())?;
    tx.commit().map_err(pg_error)
}

/// Change numbers reserved for one transaction.
struct Seq {
    next: i64,
}

impl Seq {
    fn next(&mut self) -> i64 {
        self.next += 1;
        self.next
    }

    fn last(&self) -> i64 {
        self.next
    }
}

/// Reserves `n` change numbers. The counter row stays locked until the transaction ends, which
/// is what puts change numbers in commit order.
fn allocate_seq(tx: &mut Transaction<'_>, n: i64) -> Result<Seq, StoreError> {
    let end: i64 = tx
        .query_one(
            "UPDATE xray.meta SET value = value + $1 WHERE key = 'seq' RETURNING value",
            &[&n],
        )
        .map_err(pg_error)?
        .get(0);
    Ok(Seq { next: end - n })
}

/// Wakes every listener when the transaction commits (a notification is delivered only then).
fn notify(tx: &mut Transaction<'_>, seq: i64) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])
        .map_err(pg_error)?;
    Ok(())
}

/// Replaces the evaluation rows and log lines of finished steps: a step written again (an
/// ingest retried) keeps one copy. Two writers replacing the same step take turns on an
/// advisory lock per step, so the second one's DELETE sees the first one's rows.
fn replace_rows(tx: &mut Transaction<'_>, steps: &[&StepRecord]) -> Result<(), StoreError> {
    let mut keys: Vec<i64> = steps.iter().map(|s| step_lock_key(s.id)).collect();
    keys.sort_unstable();
    keys.dedup();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k",
        &[&keys],
    )
    .map_err(pg_error)?;
    let ids: Vec<Uuid> = steps.iter().map(|s| s.id).collect();
    let starts: Vec<i64> = steps.iter().map(|s| s.started_at).collect();
    tx.execute(
        "DELETE FROM xray.evaluations WHERE step_id = ANY($1) AND started_at = ANY($2)",
        &[&ids, &starts],
    )
    .map_err(pg_error)?;
    tx.execute("DELETE FROM xray.logs WHERE step_id = ANY($1)", &[&ids])
        .map_err(pg_error)?;
    if steps.iter().any(|s| !s.evaluations.is_empty()) {
        copy_evaluations(tx, steps)?;
    }
    if steps.iter().any(|s| !s.logs.is_empty()) {
        copy_logs(tx, steps)?;
    }
    Ok(())
}

/// The advisory lock key of a step: 64 bits of its id.
fn step_lock_key(id: Uuid) -> i64 {
    let (hi, lo) = id.as_u64_pair();
    (hi ^ lo) as i64
}

fn copy_evaluations(tx: &mut Transaction<'_>, steps: &[&StepRecord]) -> Result<(), StoreError> {
    let sink = tx
        .copy_in(
            "COPY xray.evaluations (step_id, started_at, idx, candidate_id, label, passed, score,
                selected, checks, failed_checks, passed_checks, metrics, snapshot)
             FROM STDIN (FORMAT binary)",
        )
        .map_err(pg_error)?;
    let types = [
        Type::UUID,
        Type::INT8,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::BOOL,
        Type::FLOAT8,
        Type::BOOL,
        Type::TEXT,
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
        Type::TEXT,
        Type::TEXT,
    ];
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut failed: Vec<&str> = Vec::new();
    let mut passed: Vec<&str> = Vec::new();
    for step in steps {
        for (idx, e) in step.evaluations.iter().enumerate() {
            let checks = serde_json::to_string(&e.checks).unwrap_or_else(|_| "[]".into());
            failed.clear();
            passed.clear();
            for c in &e.checks {
                if c.passed {
                    passed.push(&c.name);
                } else {
                    failed.push(&c.name);
                }
            }
            let metrics = (!e.metrics.is_empty())
                .then(|| serde_json::to_string(&e.metrics).ok())
                .flatten();
            let idx = i32::try_from(idx).unwrap_or(i32::MAX);
            let snapshot = e.snapshot.as_ref().map(Json::as_str);
            // NaN is no score (as SQLite stores it): it would sort above every real score.
            let score = e.score.filter(|s| !s.is_nan());
            let row: [&(dyn ToSql + Sync); 13] = [
                &step.id,
                &step.started_at,
                &idx,
                &e.candidate_id,
                &e.label,
                &e.passed,
                &score,
                &e.selected,
                &checks,
                &failed,
                &passed,
                &metrics,
                &snapshot,
            ];
            writer.write(&row).map_err(pg_error)?;
        }
    }
    writer.finish().map_err(pg_error)?;
    Ok(())
}

fn copy_logs(tx: &mut Transaction<'_>, steps: &[&StepRecord]) -> Result<(), StoreError> {
    let sink = tx
        .copy_in(
            "COPY xray.logs (step_id, idx, at, level, target, message, fields)
             FROM STDIN (FORMAT binary)",
        )
        .map_err(pg_error)?;
    let types = [
        Type::UUID,
        Type::INT4,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ];
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for step in steps {
        for (idx, log) in step.logs.iter().enumerate() {
            let idx = i32::try_from(idx).unwrap_or(i32::MAX);
            let fields = log.fields.as_str();
            let row: [&(dyn ToSql + Sync); 7] = [
                &step.id,
                &idx,
                &log.at,
                &log.level,
                &log.target,
                &log.message,
                &fields,
            ];
            writer.write(&row).map_err(pg_error)?;
        }
    }
    writer.finish().map_err(pg_error)?;
    Ok(())
}

fn placeholder_execution(
    tx: &mut Transaction<'_>,
    id: Uuid,
    started_at: i64,
    seq: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO xray.executions(id, name, started_at, status, seq)
         VALUES ($1, '(start record lost)', $2, 'running', $3)
         ON CONFLICT (id) DO NOTHING",
        &[&id, &started_at, &seq],
    )
    .map_err(pg_error)?;
    Ok(())
}

/// The stored metadata of execution `id`, if it has a row (locked until the commit).
fn stored_metadata(tx: &mut Transaction<'_>, id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT metadata FROM xray.executions WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .map_err(pg_error)?
        .map(|row| row.get(0)))
}

fn execution_started(
    tx: &mut Transaction<'_>,
    r: &ExecutionStart,
    seq: i64,
) -> Result<(), StoreError> {
    // Written again (an ingest repeated, an end that arrived first): what is stored wins.
    let metadata = match stored_metadata(tx, r.id)? {
        Some(stored) => merge(r.metadata.as_str(), &stored),
        None => r.metadata.as_str().to_owned(),
    };
    let pid = r.pid.map(i64::from);
    tx.execute(
        "INSERT INTO xray.executions(id, name, started_at, status, tags, metadata, service, host, pid, seq)
         VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, started_at = excluded.started_at,
            tags = CASE WHEN executions.tags = '{}' THEN excluded.tags ELSE executions.tags END,
            metadata = excluded.metadata,
            service = excluded.service, host = excluded.host, pid = excluded.pid, seq = excluded.seq",
        &[&r.id, &r.name, &r.started_at, &r.tags, &metadata, &r.service, &r.host, &pid, &seq],
    )
    .map_err(pg_error)?;
    Ok(())
}

fn execution_finished(
    tx: &mut Transaction<'_>,
    r: &ExecutionEnd,
    seq: i64,
) -> Result<(), StoreError> {
    placeholder_execution(tx, r.id, r.completed_at, seq)?;
    let stored = stored_metadata(tx, r.id)?.unwrap_or_default();
    let metadata = match &r.metadata {
        Some(over) => merge(&stored, over.as_str()),
        None => stored,
    };
    let dropped = r.dropped_records as i64;
    tx.execute(
        "UPDATE xray.executions SET completed_at = $2, status = $3, error = $4, metadata = $5,
            input = coalesce($6, input), output = coalesce($7, output),
            dropped_records = greatest(dropped_records, $8), seq = $9
         WHERE id = $1",
        &[
            &r.id,
            &r.completed_at,
            &r.status.as_str(),
            &r.error,
            &metadata,
            &r.input.as_ref().map(Json::as_str),
            &r.output.as_ref().map(Json::as_str),
            &dropped,
            &seq,
        ],
    )
    .map_err(pg_error)?;
    if r.dropped_records > 0 {
        // A step whose end record was dropped will never finish: say so instead of "running".
        tx.execute(
            "UPDATE xray.steps SET status = 'lost', seq = $2
             WHERE execution_id = $1 AND status = 'running'",
            &[&r.id, &seq],
        )
        .map_err(pg_error)?;
    }
    Ok(())
}

fn step_started(tx: &mut Transaction<'_>, r: &StepStart, seq: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO xray.steps(id, execution_id, parent_id, name, kind, started_at, status, created_at, seq)
         VALUES ($1, $2, $3, $4, $5, $6, 'running', $6, $7)
         ON CONFLICT (id) DO NOTHING",
        &[&r.id, &r.execution_id, &r.parent_id, &r.name, &r.kind, &r.started_at, &seq],
    )
    .map_err(pg_error)?;
    Ok(())
}

fn step_finished(tx: &mut Transaction<'_>, r: &StepRecord, seq: i64) -> Result<(), StoreError> {
    let json = |j: &Option<Json>| j.as_ref().map(|j| j.as_str().to_owned());
    let summary = r
        .summary
        .as_ref()
        .and_then(|s| serde_json::to_string(s).ok());
    let selection = (!r.selection.is_empty())
        .then(|| serde_json::to_string(&r.selection).ok())
        .flatten();
    let candidates_in = r.candidates_in.map(|n| n as i64);
    let candidates_out = r.candidates_out.map(|n| n as i64);
    let kept = r.evaluations.len() as i64;
    let logs_dropped = r.logs_dropped as i64;
    tx.execute(
        "INSERT INTO xray.steps(id, execution_id, parent_id, name, kind, started_at, ended_at,
            duration_us, status, error, input, output, filters, evaluations, selection, reasoning,
            metadata, candidates_in, candidates_out, elimination, evaluations_kept, logs_dropped,
            created_at, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $6, $23)
         ON CONFLICT (id) DO UPDATE SET
            parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind,
            started_at = excluded.started_at, ended_at = excluded.ended_at,
            duration_us = excluded.duration_us, status = excluded.status, error = excluded.error,
            input = excluded.input, output = excluded.output, filters = excluded.filters,
            evaluations = excluded.evaluations, selection = excluded.selection,
            reasoning = excluded.reasoning, metadata = excluded.metadata,
            candidates_in = excluded.candidates_in, candidates_out = excluded.candidates_out,
            elimination = excluded.elimination, evaluations_kept = excluded.evaluations_kept,
            logs_dropped = excluded.logs_dropped, seq = excluded.seq",
        &[
            &r.id,
            &r.execution_id,
            &r.parent_id,
            &r.name,
            &r.kind,
            &r.started_at,
            &r.ended_at,
            &r.duration_us(),
            &r.status.as_str(),
            &r.error,
            &json(&r.input),
            &json(&r.output),
            &json(&r.filters),
            &summary,
            &selection,
            &r.reasoning,
            &r.metadata.as_str(),
            &candidates_in,
            &candidates_out,
            &elimination(r.candidates_in, r.candidates_out),
            &kept,
            &logs_dropped,
            &seq,
        ],
    )
    .map_err(pg_error)?;
    Ok(())
}

/// Recomputes an execution's step counts and funnel ends after its steps changed.
fn refresh_execution(tx: &mut Transaction<'_>, id: Uuid, seq: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE xray.executions SET
            step_count = (SELECT count(*) FROM xray.steps WHERE execution_id = $1),
            error_steps = (SELECT count(*) FROM xray.steps WHERE execution_id = $1 AND status = 'error'),
            candidates_in = (SELECT candidates_in FROM xray.steps WHERE execution_id = $1
                             AND candidates_in IS NOT NULL ORDER BY started_at, sid LIMIT 1),
            candidates_out = (SELECT candidates_out FROM xray.steps WHERE execution_id = $1
                              AND candidates_out IS NOT NULL AND parent_id IS NULL
                              ORDER BY started_at DESC, sid DESC LIMIT 1),
            seq = $2
         WHERE id = $1",
        &[&id, &seq],
    )
    .map_err(pg_error)?;
    Ok(())
}

pub(super) fn add_recorder_counts(
    client: &mut Client,
    counts: &RecorderCounts,
) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    for (key, n) in [("dropped", counts.dropped), ("failed", counts.failed)] {
        tx.execute(
            "UPDATE xray.meta SET value = value + $2 WHERE key = $1",
            &[&key, &(n as i64)],
        )
        .map_err(pg_error)?;
    }
    tx.commit().map_err(pg_error)
}

pub(super) fn update_execution(
    client: &mut Client,
    id: Uuid,
    update: &ExecutionUpdate,
) -> Result<bool, StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    let seq = allocate_seq(&mut tx, 1)?.next();
    let n = tx
        .execute(
            "UPDATE xray.executions SET tags = coalesce($2, tags), notes = coalesce($3, notes), seq = $4
             WHERE id = $1",
            &[&id, &update.tags, &update.notes, &seq],
        )
        .map_err(pg_error)?;
    if n > 0 {
        notify(&mut tx, seq)?;
    }
    tx.commit().map_err(pg_error)?;
    Ok(n > 0)
}

pub(super) fn delete_executions(client: &mut Client, ids: &[Uuid]) -> Result<u64, StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    let ids = ids.to_vec();
    for sql in [
        "DELETE FROM xray.evaluations e USING xray.steps s
         WHERE s.execution_id = ANY($1) AND e.step_id = s.id AND e.started_at = s.started_at",
        "DELETE FROM xray.logs l USING xray.steps s WHERE s.execution_id = ANY($1) AND l.step_id = s.id",
        "DELETE FROM xray.steps WHERE execution_id = ANY($1)",
    ] {
        tx.execute(sql, &[&ids]).map_err(pg_error)?;
    }
    let deleted = tx
        .execute("DELETE FROM xray.executions WHERE id = ANY($1)", &[&ids])
        .map_err(pg_error)?;
    tx.commit().map_err(pg_error)?;
    Ok(deleted)
}

/// Drops one day partition of `evaluations` (retention).
pub(super) fn drop_partition(client: &mut Client, name: &str) -> Result<(), StoreError> {
    // `name` comes from `pg_inherits` and was checked to be `evaluations_[dm]<digits>`.
    if !name
        .strip_prefix("evaluations_")
        .is_some_and(|rest| rest.len() > 1 && rest[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(StoreError::Engine(format!(
            "not an X-Ray partition: {name}"
        )));
    }
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS xray.{name}"))
        .map_err(pg_error)
}
