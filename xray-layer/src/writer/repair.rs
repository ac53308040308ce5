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
//!   queue was full. If the run's end was written already (a step that ended on another
//!   thread can be read after it), that end is sent again, with the count.
//! - **a run's end**: the run, and its steps with it, would stay `running` forever. A run's
//!   end is small, so the writer keeps a copy and sends it again with later batches until
//!   one is written; then the run shows how it really ended, and when.
//!
//! All of it is bounded: [`MAX_RUNS`] runs of each kind (the oldest are forgotten first), at
//! most [`MAX_PAYLOAD_BYTES`] of the kept ends' inputs, outputs and metadata (past that an end
//! is kept without them: the store keeps what it has), and [`MAX_PER_BATCH`] repairs a
//! batch. A repair is not a new record: it is counted neither as written nor as failed again.

use crate::capture::FxBuild;
use crate::model::{ExecutionEnd, Record};
use std::collections::{HashMap, VecDeque};
use uuid::Uuid;

/// Runs the writer keeps each kind of repair for, at most: ends to send again, runs with
/// step ends lost, and run ends written lately.
pub(crate) const MAX_RUNS: usize = 4096;
/// Bytes of input, output, metadata and error text the kept ends hold, at most (and, apart,
/// of error text the run ends written lately hold).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 8 << 20;
/// Repairs sent with one batch, at most (the rest go with the next).
pub(crate) const MAX_PER_BATCH: usize = 256;
/// An error text kept past [`MAX_PAYLOAD_BYTES`] is cut to this many bytes.
const CUT_ERROR_AT: usize = 1024;

/// Repairs waiting for a batch the store writes.
#[derive(Debug, Default)]
pub(crate) struct Repairs {
    /// Runs whose steps' end records failed: how many, to add to the run's dropped records.
    lost_step_ends: Fifo<u64>,
    /// Run ends that failed, to send again, oldest first.
    ends: VecDeque<ExecutionEnd>,
    /// Bytes of payload `ends` holds.
    payload_bytes: usize,
    /// Run ends written lately, without their payloads: sent again if a step end of the run
    /// fails after it.
    written: Fifo<ExecutionEnd>,
    /// Bytes of error text `written` holds.
    written_bytes: usize,
}

impl Repairs {
    /// Whether a run's end waits to be sent again (only a batch that is written helps it).
    pub(crate) fn has_ends(&self) -> bool {
        !self.ends.is_empty()
    }

    /// Prepares `records` (a batch about to be written): each run's end carries the step ends
    /// of that run that failed before, and run ends that failed before are appended.
    /// Returns how many were appended (they are at the end of `records`).
    pub(crate) fn apply(&mut self, records: &mut Vec<Record>) -> usize {
        if self.ends.is_empty() && self.lost_step_ends.is_empty() {
            return 0;
        }
        for record in records.iter_mut() {
            if let Record::ExecutionFinished(end) = record {
                self.add_lost(end);
            }
        }
        let appended = self.ends.len().min(MAX_PER_BATCH);
        for _ in 0..appended {
            let Some(mut end) = self.ends.pop_front() else {
                break;
            };
            self.payload_bytes = self.payload_bytes.saturating_sub(payload_bytes(&end));
            self.add_lost(&mut end);
            records.push(Record::ExecutionFinished(end));
        }
        appended
    }

    fn add_lost(&mut self, end: &mut ExecutionEnd) {
        if let Some(lost) = self.lost_step_ends.remove(&end.id) {
            end.dropped_records = end.dropped_records.saturating_add(lost);
        }
    }

    /// Remembers the run ends of `records`, a batch the store wrote, in case a step end of
    /// theirs fails later.
    pub(crate) fn written(&mut self, records: &[Record]) {
        for record in records {
            if let Record::ExecutionFinished(end) = record {
                let kept = ExecutionEnd {
                    id: end.id,
                    completed_at: end.completed_at,
                    status: end.status,
                    error: end.error.clone(),
                    metadata: None,
                    input: None,
                    output: None,
                    dropped_records: end.dropped_records,
                };
                self.written_bytes += error_bytes(&kept);
                if let Some(old) = self.written.insert(end.id, kept) {
                    self.written_bytes -= error_bytes(&old);
                }
                while self.written.len() > MAX_RUNS || self.written_bytes > MAX_PAYLOAD_BYTES {
                    let Some(oldest) = self.written.pop_oldest() else {
                        break;
                    };
                    self.written_bytes -= error_bytes(&oldest);
                }
            }
        }
    }

    /// Keeps what the failed batch `records` leaves to repair.
    pub(crate) fn failed(&mut self, records: &[Record]) {
        for record in records {
            match record {
                Record::StepFinished(step) => self.count_lost(step.execution_id),
                Record::ExecutionFinished(end) => {
                    // Failed: it is not the run's end as stored.
                    self.forget_written(end.id);
                    self.keep_end(end.clone());
                }
                _ => {}
            }
        }
        // A run whose end was written before one of its steps' ends failed: its end again.
        for record in records {
            if let Record::StepFinished(step) = record {
                if let Some(end) = self.forget_written(step.execution_id) {
                    self.keep_end(end);
                }
            }
        }
    }

    fn forget_written(&mut self, run: Uuid) -> Option<ExecutionEnd> {
        let end = self.written.remove(&run)?;
        self.written_bytes -= error_bytes(&end);
        Some(end)
    }

    fn count_lost(&mut self, run: Uuid) {
        if let Some(lost) = self.lost_step_ends.get_mut(&run) {
            *lost += 1;
            return;
        }
        while self.lost_step_ends.len() >= MAX_RUNS {
            if self.lost_step_ends.pop_oldest().is_none() {
                break;
            }
        }
        self.lost_step_ends.insert(run, 1);
    }

    fn keep_end(&mut self, mut end: ExecutionEnd) {
        if self.ends.len() >= MAX_RUNS {
            if let Some(oldest) = self.ends.pop_front() {
                self.payload_bytes = self.payload_bytes.saturating_sub(payload_bytes(&oldest));
            }
        }
        if self.payload_bytes + payload_bytes(&end) > MAX_PAYLOAD_BYTES {
            // Kept without what the store keeps anyway (see the module's docs), and with its
            // error cut: the run's status and times are what matter here.
            (end.input, end.output, end.metadata) = (None, None, None);
            if let Some(error) = &mut end.error {
                if error.len() > CUT_ERROR_AT {
                    let mut at = CUT_ERROR_AT;
                    while !error.is_char_boundary(at) {
                        at -= 1;
                    }
                    error.truncate(at);
                    error.push('…');
                }
            }
        }
        self.payload_bytes += payload_bytes(&end);
        self.ends.push_back(end);
    }
}

/// Bytes of an end's input, output, metadata and error.
fn payload_bytes(end: &ExecutionEnd) -> usize {
    [&end.input, &end.output, &end.metadata]
        .iter()
        .map(|j| j.as_ref().map_or(0, |j| j.as_str().len()))
        .sum::<usize>()
        + error_bytes(end)
}

fn error_bytes(end: &ExecutionEnd) -> usize {
    end.error.as_ref().map_or(0, String::len)
}

/// A map by run that forgets its oldest runs first. An entry taken out and put back counts as
/// new: each carries the number of its insertion, and the order only evicts an entry whose
/// number it holds.
#[derive(Debug)]
struct Fifo<V> {
    map: HashMap<Uuid, (V, u64), FxBuild>,
    order: VecDeque<(Uuid, u64)>,
    next: u64,
}

impl<V> Default for Fifo<V> {
    fn default() -> Self {
        Fifo {
            map: HashMap::default(),
            order: VecDeque::new(),
            next: 0,
        }
    }
}

impl<V> Fifo<V> {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn get_mut(&mut self, run: &Uuid) -> Option<&mut V> {
        self.map.get_mut(run).map(|(v, _)| v)
    }

    fn remove(&mut self, run: &Uuid) -> Option<V> {
        self.map.remove(run).map(|(v, _)| v)
    }

    /// Inserts `value` as the newest entry; returns the value `run` had.
    fn insert(&mut self, run: Uuid, value: V) -> Option<V> {
        let n = self.next;
        self.next += 1;
        self.order.push_back((run, n));
        let old = self.map.insert(run, (value, n)).map(|(v, _)| v);
        // Entries of the order whose run left the map, or came back since: dropped once they
        // outnumber the live ones, so the order stays within twice the map.
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(run, n)| map.get(run).is_some_and(|(_, m)| m == n));
        }
        old
    }

    /// Takes out the oldest entry.
    fn pop_oldest(&mut self) -> Option<V> {
        while let Some((run, n)) = self.order.pop_front() {
            if self.map.get(&run).is_some_and(|(_, m)| *m == n) {
                return self.remove(&run);
            }
        }
        None
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
        Record::StepFinished(Box::new(StepRecord::ended_for_test(execution_id)))
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
        assert!(!repairs.has_ends() && repairs.lost_step_ends.is_empty());
        // That batch fails too: both ends wait again, their counts kept.
        repairs.failed(&batch);
        let mut next = Vec::new();
        assert_eq!(repairs.apply(&mut next), 2);
        assert!(
            matches!(&next[0], Record::ExecutionFinished(e) if e.id == a && e.dropped_records == 3)
        );
    }

    #[test]
    fn a_step_end_that_fails_after_its_runs_end_was_written_sends_that_end_again() {
        let a = Uuid::from_u128(1);
        let mut repairs = Repairs::default();
        let mut ended = end(a);
        ended.status = Status::Error;
        ended.error = Some("model timeout".into());
        ended.input = Some(Json::from_trusted("{\"q\":1}".into()));
        repairs.written(&[Record::ExecutionFinished(ended)]);
        repairs.failed(&[step_end(a)]);
        let mut batch = Vec::new();
        assert_eq!(repairs.apply(&mut batch), 1);
        match &batch[0] {
            // As it was written (its payloads stay as stored), with the lost step end counted.
            Record::ExecutionFinished(e) => {
                assert_eq!((e.id, e.status, e.dropped_records), (a, Status::Error, 2));
                assert_eq!(e.error.as_deref(), Some("model timeout"));
                assert!(e.input.is_none());
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn repairs_are_bounded_and_the_oldest_go_first() {
        let mut repairs = Repairs::default();
        let runs = MAX_RUNS as u128 + 10;
        let failed: Vec<Record> = (0..runs)
            .flat_map(|i| {
                let mut e = end(Uuid::from_u128(i));
                e.output = Some(Json::from_trusted(format!("\"{}\"", "x".repeat(4096))));
                [step_end(Uuid::from_u128(i)), Record::ExecutionFinished(e)]
            })
            .collect();
        repairs.failed(&failed);
        assert_eq!(repairs.ends.len(), MAX_RUNS);
        assert_eq!(repairs.lost_step_ends.len(), MAX_RUNS);
        assert!(repairs.payload_bytes <= MAX_PAYLOAD_BYTES);
        assert!(
            repairs.ends.iter().any(|e| e.output.is_none()),
            "past the payload budget, ends are kept without their payloads"
        );
        let oldest = Uuid::from_u128(0);
        assert!(
            !repairs.lost_step_ends.map.contains_key(&oldest),
            "the oldest went"
        );
        assert!(repairs.ends.iter().all(|e| e.id != oldest));
        assert!(repairs
            .lost_step_ends
            .map
            .contains_key(&Uuid::from_u128(runs - 1)));
        // A batch takes a bounded share of them.
        let mut batch = Vec::new();
        assert_eq!(repairs.apply(&mut batch), MAX_PER_BATCH);
        assert_eq!(batch.len(), MAX_PER_BATCH);
    }

    #[test]
    fn a_run_taken_out_and_put_back_is_the_newest() {
        let mut fifo = Fifo::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        fifo.insert(a, 1);
        fifo.insert(b, 2);
        assert_eq!(fifo.remove(&a), Some(1));
        fifo.insert(a, 3);
        // Its first place in the order does not make it the oldest.
        assert_eq!(fifo.pop_oldest(), Some(2));
        assert_eq!(fifo.pop_oldest(), Some(3));
        assert_eq!(fifo.pop_oldest(), None);
        // The order does not grow without bound while the same runs come and go.
        for i in 0..10_000 {
            fifo.insert(a, i);
            fifo.remove(&a);
        }
        assert!(
            fifo.order.len() <= 2 * fifo.len() + 65,
            "{}",
            fifo.order.len()
        );
    }

    #[test]
    fn an_end_kept_past_the_budget_keeps_its_status_and_a_cut_error() {
        let mut repairs = Repairs {
            payload_bytes: MAX_PAYLOAD_BYTES,
            ..Default::default()
        };
        let mut e = end(Uuid::from_u128(7));
        e.status = Status::Error;
        e.error = Some("é".repeat(4000));
        e.output = Some(Json::from_trusted("1".into()));
        repairs.failed(&[Record::ExecutionFinished(e)]);
        let kept = &repairs.ends[0];
        assert_eq!(kept.status, Status::Error);
        assert!(kept.output.is_none());
        let error = kept.error.as_deref().unwrap_or("");
        assert!(
            error.len() <= CUT_ERROR_AT + 3 && error.ends_with('…'),
            "{error}"
        );
    }
}
