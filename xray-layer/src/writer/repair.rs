//! What a batch the store failed to write leaves behind, and its repair in a later batch.
//!
//! A batch that fails (a full disk, a store that is down) is counted as failed, record by
//! record, and is not retried whole: it may hold thousands of evaluations, and whatever made
//! it fail may last. But two kinds of records in it would otherwise leave the runs that are
//! stored wrong for good, not just incomplete:
//!
//! - **a step's end**, when its start was written by an earlier batch: the step would stay
//!   `running` forever. The writer counts the end against its run, and when the run's end is
//!   written, its `dropped_records` includes the count. A run that ends with records dropped
//!   has its steps that never finished marked `lost` by the store, as when the application's
//!   queue was full.
//! - **a run's end**: the run, and its steps with it, would stay `running` forever. A run's
//!   end is small, so the writer keeps a copy and sends it again with every later batch until
//!   one is written; then the run shows how it really ended, and when.
//!
//! Both are bounded ([`MAX_RUNS`]): past that, a failed record is only counted as failed.
//! A repair is not a new record: it is counted neither as written nor as failed again.

use crate::model::{ExecutionEnd, Record};
use std::collections::HashMap;
use uuid::Uuid;

/// Runs the writer keeps repairs for, at most (ends to send again, and runs with step ends
/// lost). About 200 bytes each.
pub(crate) const MAX_RUNS: usize = 4096;

/// Repairs waiting for a batch the store writes.
#[derive(Debug, Default)]
pub(crate) struct Repairs {
    /// Runs whose steps' end records failed: how many, to add to the run's dropped records.
    lost_step_ends: HashMap<Uuid, u64>,
    /// Run ends that failed, to send again.
    ends: Vec<ExecutionEnd>,
}

impl Repairs {
    /// Whether a repair waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.lost_step_ends.is_empty()
    }

    /// Whether a run's end waits to be sent again (only a batch that is written helps it).
    pub(crate) fn has_ends(&self) -> bool {
        !self.ends.is_empty()
    }

    /// Prepares `records` (a batch about to be written): each run's end carries the step ends
    /// of that run that failed before, and the run ends that failed before are appended.
    /// Returns how many were appended (they are at the end of `records`).
    pub(crate) fn apply(&mut self, records: &mut Vec<Record>) -> usize {
        if self.is_empty() {
            return 0;
        }
        for record in records.iter_mut() {
            if let Record::ExecutionFinished(end) = record {
                self.add_lost(end);
            }
        }
        let mut ends = std::mem::take(&mut self.ends);
        for end in &mut ends {
            self.add_lost(end);
        }
        let appended = ends.len();
        records.extend(ends.into_iter().map(Record::ExecutionFinished));
        appended
    }

    fn add_lost(&mut self, end: &mut ExecutionEnd) {
        if let Some(lost) = self.lost_step_ends.remove(&end.id) {
            end.dropped_records = end.dropped_records.saturating_add(lost);
        }
    }

    /// Keeps what the failed batch `records` leaves to repair.
    pub(crate) fn failed(&mut self, records: &[Record]) {
        for record in records {
            match record {
                Record::StepFinished(step) => {
                    let known = self.lost_step_ends.len();
                    if let Some(lost) = self.lost_step_ends.get_mut(&step.execution_id) {
                        *lost += 1;
                    } else if known < MAX_RUNS {
                        self.lost_step_ends.insert(step.execution_id, 1);
                    }
                }
                Record::ExecutionFinished(end) if self.ends.len() < MAX_RUNS => {
                    self.ends.push(end.clone());
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Json, Status, StepRecord};

    fn end(id: Uuid) -> ExecutionEnd {
        ExecutionEnd {
            id,
            completed_at: 2,
            status: Status::Ok,
            error: None,
            metadata: None,
            input: None,
            output: None,
            dropped_records: 1,
        }
    }

    fn step_end(execution_id: Uuid) -> Record {
        Record::StepFinished(Box::new(StepRecord {
            id: Uuid::from_u128(u128::MAX),
            execution_id,
            parent_id: None,
            name: "filter".into(),
            kind: None,
            started_at: 1,
            ended_at: Some(2),
            status: Status::Ok,
            error: None,
            input: None,
            output: None,
            filters: None,
            selection: Vec::new(),
            reasoning: None,
            metadata: Json::from_trusted("{}".into()),
            candidates_in: None,
            candidates_out: None,
            summary: None,
            evaluations: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
        }))
    }

    #[test]
    fn lost_step_ends_go_with_their_runs_end_and_failed_run_ends_are_sent_again() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut repairs = Repairs::default();
        assert_eq!(repairs.apply(&mut Vec::new()), 0);
        // A batch with two of run a's step ends and run b's end fails.
        repairs.failed(&[step_end(a), step_end(a), Record::ExecutionFinished(end(b))]);
        assert!(repairs.has_ends());
        // The next batch holds run a's end: it carries the two lost step ends; b's end is
        // appended, as it was.
        let mut batch = vec![Record::ExecutionFinished(end(a))];
        assert_eq!(repairs.apply(&mut batch), 1);
        let ends: Vec<(Uuid, u64)> = batch
            .iter()
            .map(|r| match r {
                Record::ExecutionFinished(e) => (e.id, e.dropped_records),
                _ => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(ends, vec![(a, 3), (b, 1)]);
        assert!(repairs.is_empty());
        // That batch fails too: both ends wait again, their counts kept.
        repairs.failed(&batch);
        let mut next = Vec::new();
        assert_eq!(repairs.apply(&mut next), 2);
        assert!(
            matches!(&next[0], Record::ExecutionFinished(e) if e.id == a && e.dropped_records == 3)
        );
    }

    #[test]
    fn repairs_are_bounded() {
        let mut repairs = Repairs::default();
        let failed: Vec<Record> = (0..MAX_RUNS as u128 + 10)
            .flat_map(|i| {
                [
                    step_end(Uuid::from_u128(i)),
                    Record::ExecutionFinished(end(Uuid::from_u128(i))),
                ]
            })
            .collect();
        repairs.failed(&failed);
        assert_eq!(repairs.ends.len(), MAX_RUNS);
        assert_eq!(repairs.lost_step_ends.len(), MAX_RUNS);
    }
}
