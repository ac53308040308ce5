//! A batch's step rows ([`super::records`]): every new step inserted complete in one statement,
//! in the order of its first record, then the finished steps whose row already existed.

use super::pg_error;
use crate::model::{elimination, Json, StepRecord};
use crate::store::StoreError;
use postgres::types::ToSql;
use postgres::Transaction;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A step's row as its first record in the batch makes it (before a finished step's values are
/// filled in).
pub(super) struct StepRow<'a> {
    pub(super) id: Uuid,
    pub(super) execution_id: Uuid,
    pub(super) parent_id: Option<Uuid>,
    pub(super) name: &'a str,
    pub(super) kind: Option<&'a str>,
    pub(super) started_at: i64,
    pub(super) status: &'a str,
    pub(super) seq: i64,
}

/// The columns of `xray.steps` rows, one array each, to bind and unnest.
#[derive(Default)]
struct StepColumns<'a> {
    ids: Vec<Uuid>,
    executions: Vec<Uuid>,
    parents: Vec<Option<Uuid>>,
    names: Vec<&'a str>,
    kinds: Vec<Option<&'a str>>,
    started: Vec<i64>,
    ended: Vec<Option<i64>>,
    durations: Vec<Option<i64>>,
    statuses: Vec<&'a str>,
    errors: Vec<Option<&'a str>>,
    inputs: Vec<Option<&'a str>>,
    outputs: Vec<Option<&'a str>>,
    filters: Vec<Option<&'a str>>,
    summaries: Vec<Option<String>>,
    selections: Vec<Option<String>>,
    reasonings: Vec<Option<&'a str>>,
    metadata: Vec<&'a str>,
    candidates_in: Vec<Option<i64>>,
    candidates_out: Vec<Option<i64>>,
    eliminations: Vec<Option<f64>>,
    kept: Vec<i64>,
    logs_dropped: Vec<i64>,
    seqs: Vec<i64>,
}

/// The columns of [`StepColumns`], in the order of its parameters.
const STEP_COLUMNS: &str = "id, execution_id, parent_id, name, kind, started_at, ended_at,
    duration_us, status, error, input, output, filters, evaluations, selection, reasoning,
    metadata, candidates_in, candidates_out, elimination, evaluations_kept, logs_dropped, seq";

/// Their types, for `unnest`.
const STEP_TYPES: &str = "$1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int8[],
    $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
    $14::text[], $15::text[], $16::text[], $17::text[], $18::int8[], $19::int8[],
    $20::float8[], $21::int8[], $22::int8[], $23::int8[]";

impl<'a> StepColumns<'a> {
    /// A running step's row.
    fn push_running(&mut self, r: &StepRow<'a>) {
        self.ids.push(r.id);
        self.executions.push(r.execution_id);
        self.parents.push(r.parent_id);
        self.names.push(r.name);
        self.kinds.push(r.kind);
        self.started.push(r.started_at);
        self.ended.push(None);
        self.durations.push(None);
        self.statuses.push(r.status);
        self.errors.push(None);
        self.inputs.push(None);
        self.outputs.push(None);
        self.filters.push(None);
        self.summaries.push(None);
        self.selections.push(None);
        self.reasonings.push(None);
        self.metadata.push("{}");
        self.candidates_in.push(None);
        self.candidates_out.push(None);
        self.eliminations.push(None);
        self.kept.push(0);
        self.logs_dropped.push(0);
        self.seqs.push(r.seq);
    }

    /// A finished step's row.
    fn push_finished(&mut self, r: &'a StepRecord, seq: i64) {
        let json = |j: &'a Option<Json>| j.as_ref().map(Json::as_str);
        self.ids.push(r.id);
        self.executions.push(r.execution_id);
        self.parents.push(r.parent_id);
        self.names.push(&r.name);
        self.kinds.push(r.kind.as_deref());
        self.started.push(r.started_at);
        self.ended.push(r.ended_at);
        self.durations.push(r.duration_us());
        self.statuses.push(r.status.as_str());
        self.errors.push(r.error.as_deref());
        self.inputs.push(json(&r.input));
        self.outputs.push(json(&r.output));
        self.filters.push(json(&r.filters));
        self.summaries.push(
            r.summary
                .as_ref()
                .and_then(|s| serde_json::to_string(s).ok()),
        );
        self.selections.push(
            (!r.selection.is_empty())
                .then(|| serde_json::to_string(&r.selection).ok())
                .flatten(),
        );
        self.reasonings.push(r.reasoning.as_deref());
        self.metadata.push(r.metadata.as_str());
        self.candidates_in.push(r.candidates_in.map(|n| n as i64));
        self.candidates_out.push(r.candidates_out.map(|n| n as i64));
        self.eliminations
            .push(elimination(r.candidates_in, r.candidates_out));
        self.kept.push(r.evaluations.len() as i64);
        self.logs_dropped.push(r.logs_dropped as i64);
        self.seqs.push(seq);
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 23] {
        [
            &self.ids,
            &self.executions,
            &self.parents,
            &self.names,
            &self.kinds,
            &self.started,
            &self.ended,
            &self.durations,
            &self.statuses,
            &self.errors,
            &self.inputs,
            &self.outputs,
            &self.filters,
            &self.summaries,
            &self.selections,
            &self.reasonings,
            &self.metadata,
            &self.candidates_in,
            &self.candidates_out,
            &self.eliminations,
            &self.kept,
            &self.logs_dropped,
            &self.seqs,
        ]
    }
}

/// What a batch's steps changed of one execution's counts (`step_count`, `error_steps`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CountChange {
    pub(super) steps: i64,
    pub(super) errors: i64,
}

impl CountChange {
    /// A step row written over `old` (its status before, `None` if it had no row) with
    /// status `new`.
    fn add(&mut self, old: Option<&str>, new: &str) {
        self.steps += i64::from(old.is_none());
        self.errors += i64::from(new == "error") - i64::from(old == Some("error"));
    }
}

/// Writes every step of the batch. First the rows of the steps that have none, in the order of
/// their first records (their `sid`s follow it), complete if finished; then, for finished steps
/// whose row already existed (written before, or by another writer meanwhile), their values,
/// by `ON CONFLICT DO UPDATE` (which sees rows committed after the statement began). Usually
/// every step is new and the second statement is not sent.
///
/// Returns what the rows changed of each execution's counts: the rows inserted, and the status
/// each row written over had before (read first, rows locked), so that the counts follow
/// without counting an execution's steps again.
pub(super) fn steps(
    tx: &mut Transaction<'_>,
    rows: &[StepRow<'_>],
    ends: &[(&StepRecord, i64)],
    end_index: &HashMap<Uuid, usize>,
) -> Result<HashMap<Uuid, CountChange>, StoreError> {
    let mut changes: HashMap<Uuid, CountChange> = HashMap::new();
    if rows.is_empty() {
        return Ok(changes);
    }
    let mut new = StepColumns::default();
    for row in rows {
        match end_index.get(&row.id) {
            Some(&i) => new.push_finished(ends[i].0, ends[i].1),
            None => new.push_running(row),
        }
    }
    let mut inserted = HashSet::new();
    for row in tx
        .query(
            &format!(
                "INSERT INTO xray.steps({STEP_COLUMNS}, created_at)
                 SELECT {STEP_COLUMNS}, started_at
                 FROM unnest({STEP_TYPES}) WITH ORDINALITY AS u({STEP_COLUMNS}, ord)
                 ORDER BY ord
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id, execution_id, status"
            ),
            &new.params(),
        )
        .map_err(pg_error)?
    {
        inserted.insert(row.get::<_, Uuid>(0));
        let status: &str = row.get(2);
        changes.entry(row.get(1)).or_default().add(None, status);
    }
    let mut known = StepColumns::default();
    for (r, seq) in ends.iter().filter(|(r, _)| !inserted.contains(&r.id)) {
        known.push_finished(r, *seq);
    }
    if known.ids.is_empty() {
        return Ok(changes);
    }
    // Their statuses before, rows locked until the commit (read in the statement that writes
    // them, a locking read would skip the rows that statement changes).
    let before: HashMap<Uuid, String> = tx
        .query(
            "SELECT id, status FROM xray.steps WHERE id = ANY($1::uuid[]) FOR UPDATE",
            &[&known.ids],
        )
        .map_err(pg_error)?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for row in tx
        .query(
            &format!(
                "INSERT INTO xray.steps({STEP_COLUMNS}, created_at)
                 SELECT {STEP_COLUMNS}, started_at
                 FROM unnest({STEP_TYPES}) AS u({STEP_COLUMNS})
                 ON CONFLICT (id) DO UPDATE SET
                    parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind,
                    started_at = excluded.started_at, ended_at = excluded.ended_at,
                    duration_us = excluded.duration_us, status = excluded.status, error = excluded.error,
                    input = excluded.input, output = excluded.output, filters = excluded.filters,
                    evaluations = excluded.evaluations, selection = excluded.selection,
                    reasoning = excluded.reasoning, metadata = excluded.metadata,
                    candidates_in = excluded.candidates_in, candidates_out = excluded.candidates_out,
                    elimination = excluded.elimination, evaluations_kept = excluded.evaluations_kept,
                    logs_dropped = excluded.logs_dropped, seq = excluded.seq
                 RETURNING id, execution_id, status"
            ),
            &known.params(),
        )
        .map_err(pg_error)?
    {
        let (id, status): (Uuid, &str) = (row.get(0), row.get(2));
        let old = before.get(&id).map(String::as_str);
        changes.entry(row.get(1)).or_default().add(old, status);
    }
    Ok(changes)
}
