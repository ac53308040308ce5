//! A step's rows: its start, and its end with its evaluations and logs.

use super::super::sqlite_error;
use super::{CountChange, Writer, SEP};
use crate::model::{elimination, Evaluation, Status, StepRecord, StepStart};
use crate::recorder::arena::{json_into, StepRows};
use crate::store::StoreError;
use rusqlite::{params, Transaction};

/// Writes a step's start row; its execution is known to exist (see `Writer::ensure_execution`).
/// A step already written (its start again, or its end first) is left as it is.
pub(super) fn step_started(
    tx: &Transaction<'_>,
    r: &StepStart,
    seq: i64,
) -> Result<CountChange, StoreError> {
    let inserted = tx.prepare_cached(
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
    Ok(CountChange {
        steps: inserted as i64,
        ..CountChange::default()
    })
}

/// The columns a step's end sets, as `?N` of the values [`Writer::step_finished`] binds; not
/// `created_at`, kept from the step's start row.
macro_rules! step_end_columns {
    () => {
        "parent_id = ?3, name = ?4, kind = ?5, started_at = ?6, ended_at = ?7, duration_us = ?8,
         status = ?9, error = ?10, input = ?11, output = ?12, filters = ?13, evaluations = ?14,
         selection = ?15, reasoning = ?16, metadata = ?17, candidates_in = ?18,
         candidates_out = ?19, elimination = ?20, evaluations_kept = ?21, logs_dropped = ?22,
         seq = ?23"
    };
}

/// A step's end, as a new row (most steps: their start is in the same batch).
const INSERT_STEP_END: &str =
    "INSERT INTO steps(id, execution_id, parent_id, name, kind, started_at,
        ended_at, duration_us, status, error, input, output, filters, evaluations, selection,
        reasoning, metadata, candidates_in, candidates_out, elimination, evaluations_kept,
        logs_dropped, created_at, seq)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
        ?19, ?20, ?21, ?22, ?6, ?23)
     ON CONFLICT(id) DO NOTHING";

/// A step's end over its start row, written by an earlier batch.
const UPDATE_RUNNING_STEP: &str = concat!(
    "UPDATE steps SET ",
    step_end_columns!(),
    " WHERE id = ?1 AND status = 'running'"
);

/// A step's end over a row that had its end already (written again), or was marked `lost`.
const UPDATE_ENDED_STEP: &str = concat!("UPDATE steps SET ", step_end_columns!(), " WHERE id = ?1");

impl Writer<'_> {
    /// Writes a step's end, with its evaluations and logs: a new row, or over the step's start
    /// row. Returns what it changed of its execution's step counts.
    pub(super) fn step_finished(
        &mut self,
        r: &StepRecord,
        rows: Option<&mut StepRows>,
        seq: i64,
    ) -> Result<CountChange, StoreError> {
        let tx = self.tx;
        let json = |j: &Option<crate::model::Json>| j.as_ref().map(|j| j.as_str().to_owned());
        let summary = r
            .summary
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok());
        let selection = (!r.selection.is_empty())
            .then(|| serde_json::to_string(&r.selection).ok())
            .flatten();
        let (id, execution_id) = (r.id.to_string(), r.execution_id.to_string());
        let parent_id = r.parent_id.map(|p| p.to_string());
        let (input, output, filters) = (json(&r.input), json(&r.output), json(&r.filters));
        let kept = rows
            .as_ref()
            .map_or(r.evaluations.len(), |rows| rows.kept_len()) as i64;
        let values = params![
            id,
            execution_id,
            parent_id,
            r.name,
            r.kind,
            r.started_at,
            r.ended_at,
            r.duration_us(),
            r.status.as_str(),
            r.error,
            input,
            output,
            filters,
            summary,
            selection,
            r.reasoning,
            r.metadata.as_str(),
            r.candidates_in.map(|n| n as i64),
            r.candidates_out.map(|n| n as i64),
            elimination(r.candidates_in, r.candidates_out),
            kept,
            r.logs_dropped as i64,
            seq
        ];
        // Whether the statement wrote the row. (Not `RETURNING sid`: SQLite keeps a statement
        // journal for a statement with `RETURNING`, a copy of every page it changes; the new
        // row's `sid` is `last_insert_rowid`, an existing row's is looked up.)
        let write = |sql: &str| -> Result<bool, StoreError> {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute(values))
                .map(|n| n == 1)
                .map_err(sqlite_error)
        };
        let sid_of = || -> Result<i64, StoreError> {
            tx.prepare_cached("SELECT sid FROM steps WHERE id = ?1")
                .and_then(|mut s| s.query_row([&id], |row| row.get(0)))
                .map_err(sqlite_error)
        };
        let (in_changed, out_changed) = crate::store::funnel_ends_moved_by(r);
        let funnel = CountChange {
            in_changed,
            out_changed,
            ..CountChange::default()
        };
        let errors = i64::from(r.status == Status::Error);
        let (sid, change) = if write(INSERT_STEP_END)? {
            let sid = tx.last_insert_rowid();
            // A new row: it has no evaluations or logs to replace.
            let change = CountChange {
                steps: 1,
                errors,
                ..funnel
            };
            (sid, change)
        } else {
            let change = if write(UPDATE_RUNNING_STEP)? {
                CountChange { errors, ..funnel }
            } else {
                // The insert found the row: it is there, in this transaction.
                write(UPDATE_ENDED_STEP)?;
                CountChange {
                    recount: true,
                    ..funnel
                }
            };
            let sid = sid_of()?;
            // Idempotent: a step written again replaces its rows.
            for sql in [
                "DELETE FROM evaluations WHERE step_sid = ?1",
                "DELETE FROM logs WHERE step_sid = ?1",
            ] {
                tx.prepare_cached(sql)
                    .and_then(|mut s| s.execute([sid]))
                    .map_err(sqlite_error)?;
            }
            (sid, change)
        };
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
        Ok(change)
    }
}

/// Writes an evaluation's checks as JSON (what `serde_json` writes for `Vec<Check>`, by hand:
/// no `Value` walk, no allocation) and its failed check names as `\x1fa\x1fb\x1f`.
pub(super) fn encode_checks(
    e: &Evaluation,
    checks: &mut String,
    failed: &mut String,
    scratch: &mut Vec<u8>,
) {
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
