//! The writer thread: drain, process, write in batches, count what failed.

use super::{Counters, Envelope};
use crate::capture;
use crate::layer::Defaults;
use crate::model::{Evaluation, ExecutionStart, Json, Record, Status, StepRecord, StepStart};
use crate::processor::Pipeline;
use crate::recorder::arena::StepRows;
use crate::recorder::state::{object_of, StepBuffer, StepState};
use crate::recycle::Recycler;
use crate::store::SqliteStore;
use crate::store::{RecorderCounts, Store, StoreError};
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request from the guard.
pub(crate) enum Control {
    /// Write everything queued when the writer reads this request (everything sent before
    /// it, at least), then answer.
    Flush(crossbeam_channel::Sender<()>),
    /// Write everything queued when the writer reads this request, close the queue (what is
    /// still in it, and what is sent after, is counted as dropped), answer, and stop.
    Shutdown(crossbeam_channel::Sender<()>),
}

pub(crate) struct Worker {
    pub(crate) rx: Receiver<Envelope>,
    /// A sender of the same channel, never used to send: once the writer has dropped `rx` at
    /// shutdown, its `len()` is what was sent after the last drain and will never be written.
    pub(crate) probe: crossbeam_channel::Sender<Envelope>,
    pub(crate) control: Receiver<Control>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) pipeline: Pipeline,
    pub(crate) counters: Arc<Counters>,
    pub(crate) wake_pending: Arc<AtomicBool>,
    pub(crate) flush_interval: Duration,
    pub(crate) batch_size: usize,
    pub(crate) recycler: Arc<Recycler>,
    /// The built-in SQLite store, when the writer may hand it evaluations still in their
    /// arenas (no processor or hook needs them decoded): rows are bound straight from the
    /// arena, with no owned `Evaluation` built and dropped per row.
    pub(crate) native: Option<Arc<SqliteStore>>,
    /// Service, host and pid, for execution start records.
    pub(crate) defaults: Arc<Defaults>,
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
            Record::ExecutionStarted(start) => {
                keep(std::mem::take(&mut start.name));
                keep(std::mem::take(&mut start.metadata).into_string());
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
        if self.pipeline.needs_decoded_evaluations() {
            self.native = None;
        }
        let mut batch = Batch::default();
        let mut reuse = Reuse::default();
        let mut reported = RecorderCounts::default();
        let mut idle = false;
        let mut backlog = false;
        loop {
            // Records left from the last round are written at once, without waiting.
            if !backlog {
                std::thread::park_timeout(self.flush_interval);
            }
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
            // A flush or a shutdown writes what is queued now (everything sent before it); what
            // arrives meanwhile waits, so that the request is answered, and the writer stops,
            // even while threads go on recording faster than it writes. Otherwise the round
            // writes until the queue is empty (so it ends between steps, not between a step's
            // start and its end), a request comes, or a flush interval has passed.
            let limit = (stop || !answers.is_empty()).then(|| self.rx.len());
            let written = self.drain(&mut batch, &mut reuse, limit);
            if stop {
                self.disconnect();
            }
            self.report(&mut reported);
            for ack in answers {
                let _ = ack.send(());
            }
            if stop {
                return;
            }
            backlog = !self.rx.is_empty();
            // Idle for a whole interval: catch up on secondary indexes, a chunk at a time,
            // until records arrive. (Not right after a batch: more are likely on their way,
            // and a flush would wait for the chunk.)
            let was_idle = std::mem::replace(&mut idle, written == 0);
            while was_idle && idle && self.rx.is_empty() && self.control.is_empty() {
                match self.store.maintain() {
                    Ok(true) => continue,
                    _ => break,
                }
            }
        }
    }

    /// Writes records from the channel in batches of `batch_size`: `limit` of them at most,
    /// or with no limit until the channel is empty, a request from the guard is waiting, or a
    /// flush interval has passed (so that the counts are reported while threads record faster
    /// than the store writes). Returns the number of records written.
    fn drain(&mut self, batch: &mut Batch, reuse: &mut Reuse, limit: Option<usize>) -> usize {
        let started = Instant::now();
        let mut written = 0;
        loop {
            if limit.is_none()
                && written > 0
                && (!self.control.is_empty() || started.elapsed() >= self.flush_interval)
            {
                return written;
            }
            let limit = limit.unwrap_or(usize::MAX);
            let mut rows = 0usize;
            while batch.records.len() < self.batch_size
                && rows < self.batch_size * 64
                && written + batch.records.len() < limit
            {
                match self.rx.try_recv() {
                    Ok(envelope) => {
                        let (record, native) = self.prepare(envelope, reuse);
                        if let Record::StepFinished(step) = &record {
                            rows += step.evaluations.len();
                        }
                        rows += native.as_ref().map_or(0, |rows| rows.kept_len());
                        batch.records.push(record);
                        batch.rows.push(native);
                    }
                    Err(_) => break,
                }
            }
            if batch.records.is_empty() {
                return written;
            }
            self.write(batch);
            written += batch.records.len();
            for record in batch.records.iter_mut() {
                reuse.harvest(record);
            }
            for rows in batch.rows.drain(..).flatten() {
                self.recycler.give_arena(rows.into_arena());
            }
            batch.records.clear();
            reuse.started.clear();
            self.recycler.give_steps(&mut reuse.steps);
            self.recycler.give_strings(&mut reuse.strings);
        }
    }

    /// Decodes evaluations (or keeps them in their arena for the native store), applies the
    /// capture policy and the processors, runs the hooks.
    fn prepare(&self, envelope: Envelope, reuse: &mut Reuse) -> (Record, Option<Box<StepRows>>) {
        let mut native = None;
        let mut record = match envelope {
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
            Envelope::ExecutionStarted(state) => {
                let defaults = &self.defaults;
                let start = ExecutionStart {
                    id: state.id,
                    name: reuse.copy(state.name.as_str()),
                    started_at: state.started_at,
                    tags: state.tags.clone(),
                    metadata: Json::from_trusted(reuse.copy("{}")),
                    service: defaults.service.clone(),
                    host: defaults.host.clone(),
                    pid: Some(defaults.pid),
                };
                Record::ExecutionStarted(start)
            }
            Envelope::ExecutionEnded(state) => Record::ExecutionFinished(state.end_record()),
            Envelope::StepEnded(state) => {
                let pending = state.take();
                let (record, rows) =
                    finish_step(&pending.state, pending.buffer, reuse, self.native.is_some());
                native = rows.map(|mut rows| {
                    rows.snapshot_cap = self.pipeline.max_payload_bytes;
                    rows
                });
                reuse.steps.push(pending.state);
                Record::StepFinished(Box::new(record))
            }
        };
        self.pipeline.process(&mut record, &self.counters);
        (record, native)
    }

    fn write(&self, batch: &mut Batch) {
        let started = Instant::now();
        let mut delay = Duration::from_millis(10);
        let len = batch.records.len();
        loop {
            let result = match &self.native {
                Some(sqlite) => sqlite.write_with_rows(&batch.records, &mut batch.rows),
                None => self.store.write(&batch.records),
            };
            match result {
                Ok(()) => {
                    self.counters
                        .writer
                        .written
                        .fetch_add(len as u64, Ordering::Relaxed);
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
                        .fetch_add(len as u64, Ordering::Relaxed);
                    self.pipeline.write_failed(&err, len);
                    return;
                }
            }
        }
    }

    /// Closes the channel at shutdown, after the last drain, and counts what it still holds
    /// as dropped: sent by threads still recording while the writer stopped, it will never be
    /// written. Exact: once the receiver is gone no send succeeds, and a send that had taken
    /// its slot before is in `len()`. Senders see the channel closed and count what they
    /// send from then on as dropped themselves.
    fn disconnect(&mut self) {
        drop(std::mem::replace(&mut self.rx, crossbeam_channel::never()));
        let lost = self.probe.len() as u64;
        if lost > 0 {
            self.counters.app.dropped.fetch_add(lost, Ordering::Relaxed);
        }
    }

    /// Persists the change in dropped, failed and sampled-out counts since the last report.
    fn report(&self, reported: &mut RecorderCounts) {
        let now = RecorderCounts {
            dropped: self.counters.app.dropped.load(Ordering::Relaxed),
            failed: self.counters.writer.failed.load(Ordering::Relaxed),
            sampled_out: self.counters.app.sampled_out.load(Ordering::Relaxed),
        };
        if now == *reported {
            return;
        }
        let delta = RecorderCounts {
            dropped: now.dropped - reported.dropped,
            failed: now.failed - reported.failed,
            sampled_out: now.sampled_out - reported.sampled_out,
        };
        if self.store.add_recorder_counts(&delta).is_ok() {
            *reported = now;
        }
    }
}

/// Turns a pending step into its record: evaluations decoded, capture policy applied,
/// candidate counts derived when the step did not set them.
/// A batch: records, and for each the evaluations kept in their arena (native store only).
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    rows: Vec<Option<Box<StepRows>>>,
}

fn finish_step(
    state: &StepState,
    buffer: StepBuffer,
    reuse: &mut Reuse,
    native: bool,
) -> (StepRecord, Option<Box<StepRows>>) {
    let arena = buffer.evaluations;
    let no_result = buffer.no_result;
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
    let mut native_rows = None;
    if !arena.is_empty() {
        let summary = if native {
            let (rows, summary) = StepRows::new(arena, capture, &record.selection);
            native_rows = Some(Box::new(rows));
            summary
        } else {
            let mut rows = reuse.evaluations.pop().unwrap_or_default();
            let mut summarizer = capture::Summarizer::default();
            arena.decode_into(&mut rows, |row| summarizer.add(row));
            state.recycler.give_arena(arena);
            let (kept, summary) = capture::keep(capture, rows, summarizer, &record.selection);
            record.evaluations = kept;
            summary
        };
        record.candidates_in.get_or_insert(summary.total);
        // A step that selects keeps what it selected; a filter keeps what passed. A step
        // that ended without a result (returned an error, panicked) let nothing through,
        // whatever it had passed before (a judge that timed out half way): its own count, if
        // it set one, is kept. (One marked failed by `xray::fail` returned its result.)
        let out = if record.selection.is_empty() {
            summary.passed
        } else {
            record.selection.len() as u64
        };
        if !no_result {
            record.candidates_out.get_or_insert(out);
        }
        record.summary = Some(summary);
    } else if record.candidates_out.is_none() && !no_result {
        // A step with no evaluations that returns a list: its length is what it let through.
        if let Some(output) = &record.output {
            record.candidates_out = top_level_array_len(output.as_str());
        }
    }
    (record, native_rows)
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
