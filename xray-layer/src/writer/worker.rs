//! The writer thread: drain, process, write in batches, count what failed.

use super::{Counters, Envelope};
use crate::capture;
use crate::model::{Evaluation, Json, Record, Status, StepRecord, StepStart};
use crate::processor::Pipeline;
use crate::recorder::state::{object_of, StepBuffer, StepState};
use crate::recycle::Recycler;
use crate::store::{RecorderCounts, Store, StoreError};
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request from the guard.
pub(crate) enum Control {
    /// Write everything queued before this request, then answer.
    Flush(crossbeam_channel::Sender<()>),
    /// Write everything queued, answer, and stop.
    Shutdown(crossbeam_channel::Sender<()>),
}

pub(crate) struct Worker {
    pub(crate) rx: Receiver<Envelope>,
    pub(crate) control: Receiver<Control>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) pipeline: Pipeline,
    pub(crate) counters: Arc<Counters>,
    pub(crate) wake_pending: Arc<AtomicBool>,
    pub(crate) flush_interval: Duration,
    pub(crate) batch_size: usize,
    pub(crate) recycler: Arc<Recycler>,
}

/// What the writer holds on to until a batch is written, to give it back for reuse then.
#[derive(Default)]
struct Reuse {
    /// States of the steps whose end is in the batch.
    steps: Vec<Arc<StepState>>,
    /// Clones of step states that came with start records: dropped after the batch, when the
    /// steps have usually ended, so the writer does not write their counts while they run.
    started: Vec<Arc<StepState>>,
    /// JSON strings the application threads made: they go back to them.
    strings: Vec<String>,
    /// Strings the writer made (names, kinds, metadata): they stay here, so that the
    /// application threads never write into memory the writer thread wrote last.
    spare: Vec<String>,
    /// Decoded evaluations of written steps: decoded into again, strings and all.
    evaluations: Vec<Vec<Evaluation>>,
}

/// Decoded steps' evaluations the writer keeps for reuse.
const WRITER_SPARE_EVALUATIONS: usize = 4;

/// Strings the writer keeps for its own records.
const WRITER_SPARE_STRINGS: usize = 4096;

impl Reuse {
    /// Takes the strings of a written record.
    fn harvest(&mut self, record: &mut Record) {
        let mut json = |j: &mut Option<Json>| {
            if let Some(j) = j.take() {
                self.strings.push(j.into_string());
            }
        };
        let spare = &mut self.spare;
        let mut keep = |mut s: String| {
            if spare.len() < WRITER_SPARE_STRINGS && s.capacity() > 0 {
                s.clear();
                spare.push(s);
            }
        };
        match record {
            Record::StepStarted(start) => {
                keep(std::mem::take(&mut start.name));
                start.kind.take().map(&mut keep);
            }
            Record::StepFinished(step) => {
                if self.evaluations.len() < WRITER_SPARE_EVALUATIONS
                    && step.evaluations.capacity() > 0
                {
                    self.evaluations.push(std::mem::take(&mut step.evaluations));
                }
                json(&mut step.input);
                json(&mut step.output);
                json(&mut step.filters);
                keep(std::mem::take(&mut step.name));
                step.kind.take().map(&mut keep);
                keep(std::mem::take(&mut step.metadata).into_string());
            }
            _ => {}
        }
    }

    /// A copy of `s` in a string the writer made before.
    fn copy(&mut self, s: &str) -> String {
        let mut out = self.spare.pop().unwrap_or_default();
        out.push_str(s);
        out
    }
}

/// How long a batch that fails with "database is locked" is retried before it counts as failed.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(30);

impl Worker {
    pub(crate) fn run(mut self) {
        let mut batch: Vec<Record> = Vec::with_capacity(self.batch_size);
        let mut reuse = Reuse::default();
        let mut reported = RecorderCounts::default();
        loop {
            std::thread::park_timeout(self.flush_interval);
            self.wake_pending.store(false, Ordering::Release);
            let mut answers = Vec::new();
            let mut stop = false;
            loop {
                match self.control.try_recv() {
                    Ok(Control::Flush(ack)) => answers.push(ack),
                    Ok(Control::Shutdown(ack)) => {
                        answers.push(ack);
                        stop = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    // The guard is gone: drain what is left, then stop.
                    Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                }
            }
            self.drain(&mut batch, &mut reuse);
            self.report(&mut reported);
            for ack in answers {
                let _ = ack.send(());
            }
            if stop {
                return;
            }
            // Idle: catch up on secondary indexes, a chunk at a time, until records arrive.
            while self.rx.is_empty() && self.control.is_empty() {
                match self.store.maintain() {
                    Ok(true) => continue,
                    _ => break,
                }
            }
        }
    }

    /// Writes everything in the channel now, in batches of `batch_size`.
    fn drain(&mut self, batch: &mut Vec<Record>, reuse: &mut Reuse) {
        loop {
            let mut rows = 0usize;
            while batch.len() < self.batch_size && rows < self.batch_size * 64 {
                match self.rx.try_recv() {
                    Ok(envelope) => {
                        let record = self.prepare(envelope, reuse);
                        if let Record::StepFinished(step) = &record {
                            rows += step.evaluations.len();
                        }
                        batch.push(record);
                    }
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            self.write(batch);
            for record in batch.iter_mut() {
                reuse.harvest(record);
            }
            batch.clear();
            reuse.started.clear();
            self.recycler.give_steps(&mut reuse.steps);
            self.recycler.give_strings(&mut reuse.strings);
        }
    }

    /// Decodes evaluations, applies the capture policy and the processors, runs the hooks.
    fn prepare(&self, envelope: Envelope, reuse: &mut Reuse) -> Record {
        let mut record = match envelope {
            Envelope::Record(record) => *record,
            Envelope::StepStarted(state) => {
                let start = StepStart {
                    id: state.id,
                    execution_id: state.execution_id,
                    parent_id: state.parent_id,
                    name: reuse.copy(&state.info.name),
                    kind: state.info.kind.as_deref().map(|k| reuse.copy(k)),
                    started_at: state.started_at,
                };
                reuse.started.push(state);
                Record::StepStarted(start)
            }
            Envelope::StepEnded(state) => {
                let pending = state.take();
                let record = finish_step(&pending.state, pending.buffer, reuse);
                reuse.steps.push(pending.state);
                Record::StepFinished(Box::new(record))
            }
        };
        self.pipeline.process(&mut record, &self.counters);
        record
    }

    fn write(&self, batch: &[Record]) {
        let started = Instant::now();
        let mut delay = Duration::from_millis(10);
        loop {
            match self.store.write(batch) {
                Ok(()) => {
                    self.counters
                        .writer
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(StoreError::Busy(_)) if started.elapsed() < BUSY_RETRY_FOR => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(err) => {
                    self.counters
                        .writer
                        .failed
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.pipeline.write_failed(&err, batch.len());
                    return;
                }
            }
        }
    }

    /// Persists the change in dropped/failed counts since the last report.
    fn report(&self, reported: &mut RecorderCounts) {
        let now = RecorderCounts {
            dropped: self.counters.app.dropped.load(Ordering::Relaxed),
            failed: self.counters.writer.failed.load(Ordering::Relaxed),
        };
        if now == *reported {
            return;
        }
        let delta = RecorderCounts {
            dropped: now.dropped - reported.dropped,
            failed: now.failed - reported.failed,
        };
        if self.store.add_recorder_counts(&delta).is_ok() {
            *reported = now;
        }
    }
}

/// Turns a pending step into its record: evaluations decoded, capture policy applied,
/// candidate counts derived when the step did not set them.
fn finish_step(state: &StepState, buffer: StepBuffer, reuse: &mut Reuse) -> StepRecord {
    let arena = buffer.evaluations;
    let capture = state.capture;
    let mut record = StepRecord {
        id: state.id,
        execution_id: state.execution_id,
        parent_id: state.parent_id,
        name: reuse.copy(&state.info.name),
        kind: state.info.kind.as_deref().map(|k| reuse.copy(k)),
        started_at: state.started_at,
        ended_at: buffer.ended_at,
        status: buffer.status.unwrap_or(Status::Ok),
        error: buffer.error,
        input: buffer.input,
        output: buffer.output,
        filters: buffer.filters,
        selection: buffer.selection,
        reasoning: buffer.reasoning,
        metadata: object_of(&buffer.metadata)
            .unwrap_or_else(|| Json::from_trusted(reuse.copy("{}"))),
        candidates_in: buffer.candidates_in,
        candidates_out: buffer.candidates_out,
        summary: None,
        evaluations: Vec::new(),
        logs: buffer.logs,
        logs_dropped: buffer.logs_dropped,
    };
    if !arena.is_empty() {
        let mut rows = reuse.evaluations.pop().unwrap_or_default();
        let mut summarizer = capture::Summarizer::default();
        arena.decode_into(&mut rows, |row| summarizer.add(row));
        state.recycler.give_arena(arena);
        let (kept, summary) = capture::keep(capture, rows, summarizer, &record.selection);
        record.candidates_in.get_or_insert(summary.total);
        // A step that selects keeps what it selected; a filter keeps what passed.
        let out = if record.selection.is_empty() {
            summary.passed
        } else {
            record.selection.len() as u64
        };
        record.candidates_out.get_or_insert(out);
        record.evaluations = kept;
        record.summary = Some(summary);
    } else if record.candidates_out.is_none() {
        // A step with no evaluations that returns a list: its length is what it let through.
        if let Some(output) = &record.output {
            record.candidates_out = top_level_array_len(output.as_str());
        }
    }
    record
}

/// The number of elements of a JSON array, without building it.
fn top_level_array_len(json: &str) -> Option<u64> {
    if !json.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(json)
        .ok()
        .map(|v| v.len() as u64)
}
