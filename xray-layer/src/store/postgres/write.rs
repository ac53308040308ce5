//! The write side: one transaction per batch; evaluations and logs by binary COPY; change
//! numbers taken last, in commit order (see the module documentation).

use super::{pg_error, CHANNEL};
use crate::model::{Json, Record, StepRecord};
use crate::store::{ExecutionUpdate, RecorderCounts, StoreError};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Writes `batch` in one transaction.
pub(super) fn write_batch(client: &mut Client, batch: &[Record]) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    // A step that ends in this batch is written once, complete (as in SQLite): with its last
    // record's rows, if it ends twice (its rows would otherwise be copied twice).
    let mut finished: Vec<&StepRecord> = Vec::new();
    let mut at: HashMap<Uuid, usize> = HashMap::new();
    for record in batch {
        if let Record::StepFinished(step) = record {
            match at.get(&step.id) {
                Some(&i) => finished[i] = step,
                None => {
                    at.insert(step.id, finished.len());
                    finished.push(step);
                }
            }
        }
    }
    let finished_ids: HashSet<Uuid> = at.into_keys().collect();
    if !finished.is_empty() {
        replace_rows(&mut tx, &finished)?;
    }

    // From here on, the counter row is locked until the commit: keep this part short.
    let mut seq = allocate_seq(&mut tx, batch.len() as i64 * 3)?;
    super::records::write_records(&mut tx, batch, &finished_ids, &mut seq)?;
    notify(&mut tx, seq.last())?;
    tx.commit().map_err(pg_error)
}

impl super::records::NextSeq for Seq {
    fn next_seq(&mut self) -> i64 {
        self.next()
    }
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
    // Only a step that has a row can have rows of its own (they are written together): look
    // those up by primary key first. The DELETE of thousands of new steps' ids would scan the
    // evaluations of the day for nothing (~90 ms a batch of 800 steps on a grown partition).
    let ids: Vec<Uuid> = steps.iter().map(|s| s.id).collect();
    let known: HashSet<Uuid> = tx
        .query("SELECT id FROM xray.steps WHERE id = ANY($1)", &[&ids])
        .map_err(pg_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let (ids, starts): (Vec<Uuid>, Vec<i64>) = steps
        .iter()
        .filter(|s| known.contains(&s.id))
        .map(|s| (s.id, s.started_at))
        .unzip();
    if !ids.is_empty() {
        tx.execute(
            "DELETE FROM xray.evaluations WHERE step_id = ANY($1) AND started_at = ANY($2)",
            &[&ids, &starts],
        )
        .map_err(pg_error)?;
        tx.execute("DELETE FROM xray.logs WHERE step_id = ANY($1)", &[&ids])
            .map_err(pg_error)?;
    }
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

pub(super) fn add_recorder_counts(
    client: &mut Client,
    counts: &RecorderCounts,
) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    for (key, n) in counts.keyed() {
        if n == 0 {
            continue;
        }
        // An upsert: a database made before a count was kept has no row for it yet.
        tx.execute(
            "INSERT INTO xray.meta(key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = xray.meta.value + excluded.value",
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
