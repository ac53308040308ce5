//! A batch's executions and steps, written set by set: one statement per kind of change for the
//! whole batch, its values bound as arrays and unnested in SQL, rather than one statement per
//! record. A batch of 240 four-step runs was ~2,400 round trips to the server; it is now about
//! ten, whatever its size.
//!
//! The result is the same as writing the records one by one, in order:
//!
//! - an execution's metadata is merged in Rust, record by record, from what was stored before
//!   the batch (read once, rows locked); every statement that writes it writes the final value;
//! - a row given twice in one batch (an ingest repeated) is written once, as the records one by
//!   one would leave it (an `ON CONFLICT DO UPDATE` may not touch a row twice): a finished
//!   step's last record wins, a running step's first; an execution keeps the first tags it was
//!   given;
//! - steps get their `sid`s (which order steps that start at the same microsecond) in the order
//!   of their first record in the batch, running or finished (see [`step_rows`]);
//! - statements run in the order the rows depend on: placeholder executions, execution starts,
//!   steps, execution ends, steps marked lost, and the executions' counts last.

use super::pg_error;
use super::step_rows::{self, CountChange, StepRow};
use crate::model::{ExecutionEnd, ExecutionStart, Json, Record, StepRecord};
use crate::store::metadata::merge;
use crate::store::StoreError;
use postgres::Transaction;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Hands out a batch's change numbers, in record order.
pub(super) trait NextSeq {
    fn next_seq(&mut self) -> i64;
}

/// The metadata an execution row has before the batch, as a placeholder does.
const EMPTY_METADATA: &str = "{}";

/// Writes the execution and step rows of `batch`. `finished` holds the ids of the steps that end
/// in the batch (their start records are not written). Returns nothing but errors: the caller
/// owns the transaction.
pub(super) fn write_records(
    tx: &mut Transaction<'_>,
    batch: &[Record],
    finished: &HashSet<Uuid>,
    seq: &mut impl NextSeq,
) -> Result<(), StoreError> {
    let plan = Plan::new(batch, finished, seq);
    let stored = stored_metadata(tx, &plan.execution_ids())?;
    let metadata = plan.final_metadata(&stored);
    placeholders(tx, &plan.placeholders)?;
    execution_starts(tx, &plan.starts, &metadata)?;
    let counts = step_rows::steps(tx, &plan.step_rows, &plan.step_ends, &plan.end_index)?;
    execution_ends(tx, &plan.ends, &metadata)?;
    lost_steps(tx, &plan.ends)?;
    refresh(tx, &plan.touched, &counts)
}

/// What a batch writes, one entry per row, in record order.
struct Plan<'a> {
    /// `(id, started_at, seq)` of executions that a step or an end refers to, with no start in
    /// the batch: made if they do not exist.
    placeholders: Vec<(Uuid, i64, i64)>,
    starts: Vec<Start<'a>>,
    /// Every step the batch writes, at its first record: a new one gets its `sid` here.
    step_rows: Vec<StepRow<'a>>,
    step_ends: Vec<(&'a StepRecord, i64)>,
    ends: Vec<End<'a>>,
    /// Starts and ends of executions, in record order, for the metadata merge.
    metadata_changes: Vec<MetadataChange<'a>>,
    /// Every execution the batch touched.
    touched: Vec<Touched>,
    /// Where each id is in `step_rows`, `step_ends` and `touched` (a batch holds up to
    /// thousands of steps: no linear search per record).
    seen_rows: HashSet<Uuid>,
    end_index: HashMap<Uuid, usize>,
    touched_index: HashMap<Uuid, usize>,
}

/// An execution the batch touched: the change number of its refresh, and whether its funnel
/// ends may have changed (see [`refresh`]).
struct Touched {
    id: Uuid,
    seq: i64,
    /// A step that counted the candidates it took in was written.
    in_changed: bool,
    /// A top-level step that counted the candidates it let out was written, or the
    /// execution's own record (its status).
    out_changed: bool,
}

/// An execution's start: the last start record's values, with the first tags given.
struct Start<'a> {
    record: &'a ExecutionStart,
    tags: &'a [String],
    seq: i64,
}

/// An execution's end: the last end record's values, and what several ends in one batch add up
/// to (the largest dropped count; the last input and output given).
struct End<'a> {
    record: &'a ExecutionEnd,
    input: Option<&'a Json>,
    output: Option<&'a Json>,
    dropped: u64,
    seq: i64,
}

enum MetadataChange<'a> {
    /// A start: what is stored wins over its keys.
    Start(Uuid, &'a str),
    /// An end: its keys win over what is stored.
    End(Uuid, Option<&'a str>),
}

impl<'a> Plan<'a> {
    fn new(batch: &'a [Record], finished: &HashSet<Uuid>, seq: &mut impl NextSeq) -> Self {
        let started: HashSet<Uuid> = batch
            .iter()
            .filter_map(|r| match r {
                Record::ExecutionStarted(s) => Some(s.id),
                _ => None,
            })
            .collect();
        let mut plan = Plan {
            placeholders: Vec::new(),
            starts: Vec::new(),
            step_rows: Vec::new(),
            step_ends: Vec::new(),
            ends: Vec::new(),
            metadata_changes: Vec::new(),
            touched: Vec::new(),
            seen_rows: HashSet::new(),
            end_index: HashMap::new(),
            touched_index: HashMap::new(),
        };
        let mut placed = HashSet::new();
        let mut placeholder =
            |plan: &mut Plan<'a>, id: Uuid, at: i64, seq: &mut dyn FnMut() -> i64| {
                if !started.contains(&id) && placed.insert(id) {
                    plan.placeholders.push((id, at, seq()));
                }
            };
        for record in batch {
            let mut next = || seq.next_seq();
            match record {
                Record::ExecutionStarted(r) => {
                    let s = next();
                    match plan.starts.iter_mut().find(|x| x.record.id == r.id) {
                        Some(start) => {
                            start.record = r;
                            start.seq = s;
                            if start.tags.is_empty() {
                                start.tags = &r.tags;
                            }
                        }
                        None => plan.starts.push(Start {
                            record: r,
                            tags: &r.tags,
                            seq: s,
                        }),
                    }
                    plan.metadata_changes
                        .push(MetadataChange::Start(r.id, r.metadata.as_str()));
                }
                Record::ExecutionFinished(r) => {
                    placeholder(&mut plan, r.id, r.completed_at, &mut next);
                    let s = next();
                    match plan.ends.iter_mut().find(|e| e.record.id == r.id) {
                        Some(end) => {
                            end.record = r;
                            end.input = r.input.as_ref().or(end.input);
                            end.output = r.output.as_ref().or(end.output);
                            end.dropped = end.dropped.max(r.dropped_records);
                            end.seq = s;
                        }
                        None => plan.ends.push(End {
                            record: r,
                            input: r.input.as_ref(),
                            output: r.output.as_ref(),
                            dropped: r.dropped_records,
                            seq: s,
                        }),
                    }
                    plan.metadata_changes.push(MetadataChange::End(
                        r.id,
                        r.metadata.as_ref().map(Json::as_str),
                    ));
                }
                Record::StepStarted(r) if finished.contains(&r.id) => {}
                Record::StepStarted(r) => {
                    placeholder(&mut plan, r.execution_id, r.started_at, &mut next);
                    let s = next();
                    plan.step_row(StepRow {
                        id: r.id,
                        execution_id: r.execution_id,
                        parent_id: r.parent_id,
                        name: &r.name,
                        kind: r.kind.as_deref(),
                        started_at: r.started_at,
                        status: "running",
                        seq: s,
                    });
                }
                Record::StepFinished(r) => {
                    placeholder(&mut plan, r.execution_id, r.started_at, &mut next);
                    let s = next();
                    plan.step_row(StepRow {
                        id: r.id,
                        execution_id: r.execution_id,
                        parent_id: r.parent_id,
                        name: &r.name,
                        kind: r.kind.as_deref(),
                        started_at: r.started_at,
                        status: r.status.as_str(),
                        seq: s,
                    });
                    match plan.end_index.get(&r.id) {
                        Some(&i) => plan.step_ends[i] = (&**r, s),
                        None => {
                            plan.end_index.insert(r.id, plan.step_ends.len());
                            plan.step_ends.push((&**r, s));
                        }
                    }
                }
            }
            let id = record.execution_id();
            let at = *plan.touched_index.entry(id).or_insert_with(|| {
                plan.touched.push(Touched {
                    id,
                    seq: 0,
                    in_changed: false,
                    out_changed: false,
                });
                plan.touched.len() - 1
            });
            let (in_changed, out_changed) = match record {
                Record::ExecutionStarted(_) | Record::ExecutionFinished(_) => (false, true),
                Record::StepStarted(_) => (false, false),
                Record::StepFinished(r) => crate::store::funnel_ends_moved_by(r),
            };
            let t = &mut plan.touched[at];
            t.in_changed |= in_changed;
            t.out_changed |= out_changed;
        }
        for t in &mut plan.touched {
            t.seq = seq.next_seq();
        }
        plan
    }

    /// Adds a step's row unless the batch has already given that step one.
    fn step_row(&mut self, row: StepRow<'a>) {
        if self.seen_rows.insert(row.id) {
            self.step_rows.push(row);
        }
    }

    /// The executions whose metadata the batch sets.
    fn execution_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .metadata_changes
            .iter()
            .map(|c| match c {
                MetadataChange::Start(id, _) | MetadataChange::End(id, _) => *id,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Each execution's metadata once every start and end of the batch is applied, in order,
    /// to what was stored.
    fn final_metadata(&self, stored: &HashMap<Uuid, String>) -> HashMap<Uuid, String> {
        let mut current: HashMap<Uuid, Option<String>> = HashMap::new();
        for change in &self.metadata_changes {
            match change {
                MetadataChange::Start(id, own) => {
                    let slot = current
                        .entry(*id)
                        .or_insert_with(|| stored.get(id).cloned());
                    *slot = Some(match slot.as_deref() {
                        Some(base) => merge(own, base),
                        None => (*own).to_owned(),
                    });
                }
                MetadataChange::End(id, over) => {
                    let slot = current
                        .entry(*id)
                        .or_insert_with(|| stored.get(id).cloned());
                    let base = slot.as_deref().unwrap_or(EMPTY_METADATA);
                    *slot = Some(match over {
                        Some(over) => merge(base, over),
                        None => base.to_owned(),
                    });
                }
            }
        }
        current
            .into_iter()
            .filter_map(|(id, m)| Some((id, m?)))
            .collect()
    }
}

/// The stored metadata of the executions `ids` that have a row, locked until the commit.
fn stored_metadata(
    tx: &mut Transaction<'_>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT id, metadata FROM xray.executions WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .map_err(pg_error)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn placeholders(tx: &mut Transaction<'_>, rows: &[(Uuid, i64, i64)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let started: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.2).collect();
    tx.execute(
        "INSERT INTO xray.executions(id, name, started_at, status, seq)
         SELECT id, '(start record lost)', started_at, 'running', seq
         FROM unnest($1::uuid[], $2::int8[], $3::int8[]) AS u(id, started_at, seq)
         ON CONFLICT (id) DO NOTHING",
        &[&ids, &started, &seqs],
    )
    .map_err(pg_error)?;
    Ok(())
}

fn execution_starts(
    tx: &mut Transaction<'_>,
    starts: &[Start<'_>],
    metadata: &HashMap<Uuid, String>,
) -> Result<(), StoreError> {
    if starts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = starts.iter().map(|x| x.record.id).collect();
    let names: Vec<&str> = starts.iter().map(|x| x.record.name.as_str()).collect();
    let started: Vec<i64> = starts.iter().map(|x| x.record.started_at).collect();
    // One text[] per row cannot be bound as a column of a 2-D array: each goes as JSON.
    let tags: Vec<String> = starts
        .iter()
        .map(|x| serde_json::to_string(x.tags).unwrap_or_else(|_| "[]".into()))
        .collect();
    let meta: Vec<&str> = starts
        .iter()
        .map(|x| {
            metadata
                .get(&x.record.id)
                .map_or(x.record.metadata.as_str(), String::as_str)
        })
        .collect();
    let services: Vec<Option<&str>> = starts.iter().map(|x| x.record.service.as_deref()).collect();
    let hosts: Vec<Option<&str>> = starts.iter().map(|x| x.record.host.as_deref()).collect();
    let pids: Vec<Option<i64>> = starts.iter().map(|x| x.record.pid.map(i64::from)).collect();
    let seqs: Vec<i64> = starts.iter().map(|x| x.seq).collect();
    tx.execute(
        "INSERT INTO xray.executions(id, name, started_at, status, tags, metadata, service, host, pid, seq)
         SELECT id, name, started_at, 'running',
                ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)), metadata, service, host, pid, seq
         FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::int8[], $9::int8[])
              AS u(id, name, started_at, tags, metadata, service, host, pid, seq)
         ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, started_at = excluded.started_at,
            tags = CASE WHEN executions.tags = '{}' THEN excluded.tags ELSE executions.tags END,
            metadata = excluded.metadata,
            service = excluded.service, host = excluded.host, pid = excluded.pid, seq = excluded.seq",
        &[&ids, &names, &started, &tags, &meta, &services, &hosts, &pids, &seqs],
    )
    .map_err(pg_error)?;
    Ok(())
}

fn execution_ends(
    tx: &mut Transaction<'_>,
    ends: &[End<'_>],
    metadata: &HashMap<Uuid, String>,
) -> Result<(), StoreError> {
    if ends.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = ends.iter().map(|e| e.record.id).collect();
    let completed: Vec<i64> = ends.iter().map(|e| e.record.completed_at).collect();
    let statuses: Vec<&str> = ends.iter().map(|e| e.record.status.as_str()).collect();
    let errors: Vec<Option<&str>> = ends.iter().map(|e| e.record.error.as_deref()).collect();
    let meta: Vec<&str> = ends
        .iter()
        .map(|e| {
            metadata
                .get(&e.record.id)
                .map_or(EMPTY_METADATA, String::as_str)
        })
        .collect();
    let inputs: Vec<Option<&str>> = ends.iter().map(|e| e.input.map(Json::as_str)).collect();
    let outputs: Vec<Option<&str>> = ends.iter().map(|e| e.output.map(Json::as_str)).collect();
    let dropped: Vec<i64> = ends.iter().map(|e| e.dropped as i64).collect();
    let seqs: Vec<i64> = ends.iter().map(|e| e.seq).collect();
    tx.execute(
        "UPDATE xray.executions e SET completed_at = u.completed_at, status = u.status,
            error = u.error, metadata = u.metadata,
            input = coalesce(u.input, e.input), output = coalesce(u.output, e.output),
            dropped_records = greatest(e.dropped_records, u.dropped), seq = u.seq
         FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::int8[], $9::int8[])
              AS u(id, completed_at, status, error, metadata, input, output, dropped, seq)
         WHERE e.id = u.id",
        &[
            &ids, &completed, &statuses, &errors, &meta, &inputs, &outputs, &dropped, &seqs,
        ],
    )
    .map_err(pg_error)?;
    Ok(())
}

/// A step whose execution's end says records were dropped will never finish: it is marked lost
/// instead of "running".
fn lost_steps(tx: &mut Transaction<'_>, ends: &[End<'_>]) -> Result<(), StoreError> {
    let (ids, seqs): (Vec<Uuid>, Vec<i64>) = ends
        .iter()
        .filter(|e| e.dropped > 0)
        .map(|e| (e.record.id, e.seq))
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "UPDATE xray.steps s SET status = 'lost', seq = u.seq
         FROM unnest($1::uuid[], $2::int8[]) AS u(id, seq)
         WHERE s.execution_id = u.id AND s.status = 'running'",
        &[&ids, &seqs],
    )
    .map_err(pg_error)?;
    Ok(())
}

/// Brings the step counts and funnel ends of the executions the batch touched up to date: the
/// counts by what the batch's step rows changed (`counts`), not counted again over all of an
/// execution's steps (which cost a run of many steps more with every batch); the funnel ends
/// looked up only when the batch wrote what may change them.
fn refresh(
    tx: &mut Transaction<'_>,
    touched: &[Touched],
    counts: &HashMap<Uuid, CountChange>,
) -> Result<(), StoreError> {
    if touched.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = touched.iter().map(|t| t.id).collect();
    let seqs: Vec<i64> = touched.iter().map(|t| t.seq).collect();
    let change = |t: &Touched| counts.get(&t.id).copied().unwrap_or_default();
    let steps: Vec<i64> = touched.iter().map(|t| change(t).steps).collect();
    let errors: Vec<i64> = touched.iter().map(|t| change(t).errors).collect();
    let ins: Vec<bool> = touched.iter().map(|t| t.in_changed).collect();
    let outs: Vec<bool> = touched.iter().map(|t| t.out_changed).collect();
    tx.execute(
        "UPDATE xray.executions e SET
            step_count = e.step_count + u.steps,
            error_steps = e.error_steps + u.errors,
            candidates_in = CASE WHEN u.in_changed THEN
                             (SELECT candidates_in FROM xray.steps WHERE execution_id = e.id
                              AND candidates_in IS NOT NULL ORDER BY started_at, sid LIMIT 1)
                             ELSE e.candidates_in END,
            candidates_out = CASE WHEN e.status = 'error' THEN NULL WHEN u.out_changed THEN
                             (SELECT candidates_out FROM xray.steps WHERE execution_id = e.id
                              AND candidates_out IS NOT NULL AND parent_id IS NULL
                              ORDER BY started_at DESC, sid DESC LIMIT 1)
                             ELSE e.candidates_out END,
            seq = u.seq
         FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::bool[], $6::bool[])
              AS u(id, seq, steps, errors, in_changed, out_changed)
         WHERE e.id = u.id",
        &[&ids, &seqs, &steps, &errors, &ins, &outs],
    )
    .map_err(pg_error)?;
    Ok(())
}
