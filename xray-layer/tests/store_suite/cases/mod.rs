//! The cases: plain functions that take a store (or, for [`handles`], a database to open handles
//! on), write records through [`Store::write`] and assert what a user of the store would see.
//! No case knows which engine it runs on.

mod evaluations;
mod executions;
mod handles;
mod lineage;
mod steps;
mod upkeep;
mod write;

pub use evaluations::*;
pub use executions::*;
pub use handles::*;
pub use lineage::*;
pub use steps::*;
pub use upkeep::*;
pub use write::*;

use crate::fixtures::all;
use uuid::Uuid;
use xray::model::{Evaluation, StepRecord};
use xray::store::{
    Change, EvaluationQuery, EvaluationSort, ExecutionDetail, ExecutionQuery, ExecutionSummary,
    LineageEntry, LineageQuery, RecorderCounts, StatsQuery, StepQuery, StepStats, StepSummary,
    Store, VerdictChange, DEFAULT_PAGE_SIZE,
};

/// No execution or step.
const NO_IDS: [Uuid; 0] = [];
/// No candidate.
const NO_CANDIDATES: [&str; 0] = [];

/// Every execution `query` lists, through its pages.
fn executions_of(store: &dyn Store, query: ExecutionQuery) -> Vec<ExecutionSummary> {
    all(query.limit.unwrap_or(DEFAULT_PAGE_SIZE), |cursor| {
        store
            .list_executions(&ExecutionQuery {
                cursor,
                ..query.clone()
            })
            .expect("list executions")
    })
}

/// The ids of [`executions_of`].
fn execution_ids(store: &dyn Store, query: ExecutionQuery) -> Vec<Uuid> {
    executions_of(store, query).iter().map(|e| e.id).collect()
}

/// An execution that exists.
fn detail(store: &dyn Store, id: Uuid) -> ExecutionDetail {
    store
        .execution(id)
        .expect("read an execution")
        .expect("the execution exists")
}

/// A step that exists.
fn step_of(store: &dyn Store, id: Uuid) -> StepRecord {
    store
        .step(id)
        .expect("read a step")
        .expect("the step exists")
}

/// Every evaluation of a step `query` returns, through its pages.
fn evaluations_of(store: &dyn Store, step: Uuid, query: EvaluationQuery) -> Vec<Evaluation> {
    all(query.limit.unwrap_or(DEFAULT_PAGE_SIZE), |cursor| {
        store
            .evaluations(
                step,
                &EvaluationQuery {
                    cursor,
                    ..query.clone()
                },
            )
            .expect("read evaluations")
    })
}

/// The candidate ids of [`evaluations_of`].
fn candidates_of(store: &dyn Store, step: Uuid, query: EvaluationQuery) -> Vec<String> {
    evaluations_of(store, step, query)
        .into_iter()
        .map(|e| e.candidate_id)
        .collect()
}

/// Every step `query` finds, through its pages.
fn steps_found(store: &dyn Store, query: StepQuery) -> Vec<StepSummary> {
    all(query.limit.unwrap_or(DEFAULT_PAGE_SIZE), |cursor| {
        store
            .find_steps(&StepQuery {
                cursor,
                ..query.clone()
            })
            .expect("find steps")
    })
}

/// The ids of [`steps_found`].
fn step_ids(store: &dyn Store, query: StepQuery) -> Vec<Uuid> {
    steps_found(store, query).iter().map(|s| s.id).collect()
}

/// Every verdict on `candidate`, `limit` a page.
fn lineage_of(store: &dyn Store, candidate: &str, limit: usize) -> Vec<LineageEntry> {
    all(limit, |cursor| {
        store
            .candidate_lineage(
                candidate,
                &LineageQuery {
                    limit: Some(limit),
                    cursor,
                    check: None,
                },
            )
            .expect("candidate lineage")
    })
}

/// Every verdict change between two steps, `limit` a page.
fn changes_between(store: &dyn Store, a: Uuid, b: Uuid, limit: usize) -> Vec<VerdictChange> {
    changes_of_check(store, a, b, None, limit)
}

/// Every verdict change between two steps that check `check` made (failed on one side only),
/// or every change with no check named; `limit` a page.
fn changes_of_check(
    store: &dyn Store,
    a: Uuid,
    b: Uuid,
    check: Option<&str>,
    limit: usize,
) -> Vec<VerdictChange> {
    all(limit, |cursor| {
        store
            .verdict_changes(
                a,
                b,
                &LineageQuery {
                    limit: Some(limit),
                    cursor,
                    check: check.map(str::to_owned),
                },
            )
            .expect("verdict changes")
    })
}

fn stats(store: &dyn Store, query: StatsQuery) -> Vec<StepStats> {
    store.step_stats(&query).expect("step stats")
}

fn latest(store: &dyn Store) -> u64 {
    store.latest_seq().expect("latest seq")
}

fn changes(store: &dyn Store, since: u64, limit: usize) -> Vec<Change> {
    store.changes_since(since, limit).expect("changes since")
}

/// An execution detail with its change sequence numbers zeroed: what a reader sees, less where
/// the tail is.
fn without_seq(mut detail: ExecutionDetail) -> ExecutionDetail {
    detail.execution.seq = 0;
    for step in &mut detail.steps {
        step.seq = 0;
    }
    detail
}

/// Everything a reader can ask a store, read through every list's pages (small pages, so the
/// cursors are used): two snapshots are equal when no answer differs.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    executions: Vec<ExecutionSummary>,
    details: Vec<ExecutionDetail>,
    steps: Vec<StepRecord>,
    found: Vec<StepSummary>,
    evaluations: Vec<Vec<Evaluation>>,
    lineage: Vec<Vec<LineageEntry>>,
    verdict_changes: Vec<Vec<VerdictChange>>,
    stats: Vec<StepStats>,
    counts: RecorderCounts,
    latest_seq: u64,
    changes: Vec<Change>,
}

impl Snapshot {
    /// Whether the store holds nothing at all (whatever its sequence number: a store may use
    /// numbers on writes that turn out to change nothing).
    pub fn is_empty(&self) -> bool {
        *self
            == Snapshot {
                executions: Vec::new(),
                details: Vec::new(),
                steps: Vec::new(),
                found: Vec::new(),
                evaluations: Vec::new(),
                lineage: vec![Vec::new(); self.lineage.len()],
                verdict_changes: Vec::new(),
                stats: Vec::new(),
                counts: RecorderCounts::default(),
                latest_seq: self.latest_seq,
                changes: Vec::new(),
            }
    }
}

/// Reads a [`Snapshot`]; `candidates` are the ids whose lineage is read.
pub fn snapshot(store: &dyn Store, candidates: &[&str]) -> Snapshot {
    let executions = executions_of(
        store,
        ExecutionQuery {
            limit: Some(3),
            ..Default::default()
        },
    );
    let details = executions.iter().map(|e| detail(store, e.id)).collect();
    let found = steps_found(
        store,
        StepQuery {
            limit: Some(3),
            ..Default::default()
        },
    );
    let steps = found.iter().map(|s| step_of(store, s.id)).collect();
    let mut evaluations = Vec::new();
    for s in &found {
        for sort in [
            EvaluationSort::Recorded,
            EvaluationSort::ScoreDesc,
            EvaluationSort::ScoreAsc,
        ] {
            evaluations.push(evaluations_of(
                store,
                s.id,
                EvaluationQuery {
                    sort,
                    limit: Some(3),
                    ..Default::default()
                },
            ));
        }
    }
    let lineage = candidates.iter().map(|c| lineage_of(store, c, 2)).collect();
    let verdict_changes = found
        .windows(2)
        .map(|pair| changes_between(store, pair[0].id, pair[1].id, 2))
        .collect();
    Snapshot {
        executions,
        details,
        steps,
        found,
        evaluations,
        lineage,
        verdict_changes,
        stats: stats(store, StatsQuery::default()),
        counts: store.recorder_counts().expect("recorder counts"),
        latest_seq: latest(store),
        changes: changes(store, 0, 10_000),
    }
}
