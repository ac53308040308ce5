//! [`MemoryStore`]: a store that never touches the disk, for tests and short-lived tools.
//!
//! It is SQLite's in-memory engine behind the same queries as [`SqliteStore`], so what a test
//! reads from it is exactly what the file store would return: one query implementation, not two
//! that drift apart. (The trait stays engine-neutral for stores on other engines.)

use super::query::*;
use super::{Change, SqliteStore, Store, StoreError};
use crate::model::{Evaluation, Record, StepRecord};
use uuid::Uuid;

/// An in-memory store. Everything is lost when it is dropped.
#[derive(Debug)]
pub struct MemoryStore {
    inner: SqliteStore,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// # Panics
    ///
    /// Never in practice: opening an in-memory SQLite database only fails when memory is exhausted.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        MemoryStore {
            inner: SqliteStore::open_memory().expect("an in-memory SQLite database opens"),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Store for MemoryStore {
    fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        self.inner.write(batch)
    }
    fn add_recorder_counts(&self, counts: &RecorderCounts) -> Result<(), StoreError> {
        self.inner.add_recorder_counts(counts)
    }
    fn recorder_counts(&self) -> Result<RecorderCounts, StoreError> {
        self.inner.recorder_counts()
    }
    fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Page<ExecutionSummary>, StoreError> {
        self.inner.list_executions(query)
    }
    fn execution(&self, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        self.inner.execution(id)
    }
    fn step(&self, id: Uuid) -> Result<Option<StepRecord>, StoreError> {
        self.inner.step(id)
    }
    fn evaluations(
        &self,
        step_id: Uuid,
        query: &EvaluationQuery,
    ) -> Result<Page<Evaluation>, StoreError> {
        self.inner.evaluations(step_id, query)
    }
    fn find_steps(&self, query: &StepQuery) -> Result<Page<StepSummary>, StoreError> {
        self.inner.find_steps(query)
    }
    fn candidate_lineage(
        &self,
        candidate_id: &str,
        query: &LineageQuery,
    ) -> Result<Page<LineageEntry>, StoreError> {
        self.inner.candidate_lineage(candidate_id, query)
    }
    fn verdict_changes(
        &self,
        step_a: Uuid,
        step_b: Uuid,
        query: &LineageQuery,
    ) -> Result<Page<VerdictChange>, StoreError> {
        self.inner.verdict_changes(step_a, step_b, query)
    }

    fn verdict_change_checks(
        &self,
        step_a: Uuid,
        step_b: Uuid,
    ) -> Result<Vec<CheckChange>, StoreError> {
        self.inner.verdict_change_checks(step_a, step_b)
    }
    fn count_verdict_changes(&self, step_a: Uuid, step_b: Uuid) -> Result<u64, StoreError> {
        self.inner.count_verdict_changes(step_a, step_b)
    }
    fn candidates_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        query: &LineageQuery,
    ) -> Result<OnlyIn, StoreError> {
        self.inner.candidates_only_in(step, other, query)
    }

    fn common_values_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        at_least: u64,
        per_check: usize,
    ) -> Result<Vec<CommonValues>, StoreError> {
        self.inner
            .common_values_only_in(step, other, at_least, per_check)
    }

    fn check_values(
        &self,
        step: Uuid,
        check: &str,
        limit: usize,
    ) -> Result<CheckValues, StoreError> {
        self.inner.check_values(step, check, limit)
    }

    fn latest_seq(&self) -> Result<u64, StoreError> {
        self.inner.latest_seq()
    }

    fn step_stats(&self, query: &StatsQuery) -> Result<Vec<StepStats>, StoreError> {
        self.inner.step_stats(query)
    }
    fn update_execution(&self, id: Uuid, update: &ExecutionUpdate) -> Result<bool, StoreError> {
        self.inner.update_execution(id, update)
    }
    fn delete_executions(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        self.inner.delete_executions(ids)
    }
    fn delete_executions_before(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.delete_executions_before(before)
    }
    fn changes_since(&self, seq: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.inner.changes_since(seq, limit)
    }
    fn maintain(&self) -> Result<bool, StoreError> {
        self.inner.maintain()
    }
}
