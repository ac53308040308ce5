//! The writer thread: drain, process, write in batches, count what failed.

use super::codec::{self, DecodedHead, Decoder, Side};
use super::lane::{LaneSet, Lanes, RawRecord, Records};
use super::repair::Repairs;
use super::Counters;
use crate::capture::{self, Capture};
use crate::layer::Defaults;
use crate::model::{
    Evaluation, ExecutionEnd, ExecutionStart, Json, Record, Status, StepRecord, StepStart,
};
use crate::processor::Pipeline;
use crate::recorder::arena::StepRows;
use crate::recorder::state::{object_of, StepBuffer};
use crate::recycle::Recycler;
use crate::store::SqliteStore;
use crate::store::{RecorderCounts, Store, StoreError};
use crossbeam_channel::{Receiver, TryRecvError};
use std::collections::{HashSet, VecDeque};
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
    /// The threads' lanes, where the records come from.
    pub(crate) lanes: Arc<Lanes>,
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
    /// What failed batches left to repair (see [`super::repair`]).
    pub(crate) repairs: Repairs,
}

/// What the writer holds on to until a batch is written, to reuse it then.
#[derive(Default)]
struct Reuse {
    /// Strings of written records: the writer makes its records' strings from these, so
    /// that its memory stays its own.
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
                start.service.take().map(&mut keep);
                start.host.take().map(&mut keep);
            }
            Record::StepFinished(step) => {
                if self.evaluations.len() < WRITER_SPARE_EVALUATIONS
                    && step.evaluations.capacity() > 0
                {
                    self.evaluations.push(std::mem::take(&mut step.evaluations));
                }
                for json in [&mut step.input, &mut step.output, &mut step.filters] {
                    if let Some(j) = json.take() {
                        keep(j.into_string());
                    }
                }
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

impl codec::Own for Reuse {
    fn string(&mut self, s: &str) -> String {
        self.copy(s)
    }

    fn json(&mut self, tape: &[u8]) -> Json {
        crate::tape::to_json(tape, self.spare.pop().unwrap_or_default().into_bytes())
    }
}

/// How long a batch that fails with "database is locked" is retried before it counts as failed.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(30);

/// Records read from the lanes and prepared, waiting to be written.
type Pending = VecDeque<(Record, Option<Box<StepRows>>)>;

impl Worker {
    pub(crate) fn run(mut self) {
        if self.pipeline.needs_decoded_evaluations() {
            self.native = None;
        }
        let mut lanes = LaneSet::default();
        let mut read = Read::default();
        let mut batch = Batch::default();
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.serve(&mut lanes, &mut read, &mut batch)
        }));
        if let Err(panic) = served {
            // The writer dies (a store of the user's panicked): nothing will read the lanes
            // again. They are closed, so that the threads count what they record as dropped
            // instead of filling lanes nobody reads (or, with `Backpressure::Block`, waiting
            // for room forever). The batch being written counts as failed, what was read and
            // not written yet as dropped, and so does what is left in the lanes.
            self.lanes.close();
            lanes.take_new(&self.lanes);
            self.lanes.keep_lost(&mut lanes);
            let app = &self.counters.app;
            let lost = self.lanes.count_lost() + (read.pending.len() + read.held.len()) as u64;
            app.dropped.fetch_add(lost, Ordering::Relaxed);
            let failed = (batch.records.len() - batch.repairs) as u64;
            self.counters
                .writer
                .failed
                .fetch_add(failed, Ordering::Relaxed);
            std::panic::resume_unwind(panic);
        }
    }

    /// The writer's rounds, until the guard asks it to stop (or is gone).
    fn serve(&mut self, lanes: &mut LaneSet, read: &mut Read, batch: &mut Batch) {
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
            if stop {
                // From here on a thread that publishes counts its record as dropped, and what
                // is published into a lane after the read below is counted by `count_lost`.
                self.lanes.close();
            }
            // A flush or a shutdown writes what is queued now (everything sent before it): the
            // lanes are read once, so that the request is answered, and the writer stops, even
            // while threads go on recording faster than it writes. Otherwise the round writes
            // until the lanes are empty, a request comes, or a flush interval has passed (so
            // that the counts are reported while threads record faster than the store writes).
            let request = stop || !answers.is_empty();
            let written = self.drain(lanes, read, batch, request);
            if stop {
                self.lanes.keep_lost(lanes);
                // What threads published after that read, counted now so that the database
                // has it too (what they publish from here on, only the stats count).
                let lost = self.lanes.count_lost();
                self.counters.app.dropped.fetch_add(lost, Ordering::Relaxed);
            }
            self.report(&mut reported);
            for ack in answers {
                let _ = ack.send(());
            }
            if stop {
                return;
            }
            backlog = !read.pending.is_empty() || !lanes.is_empty();
            // Idle for a whole interval: catch up on secondary indexes, a chunk at a time,
            // until records arrive. (Not right after a batch: more are likely on their way,
            // and a flush would wait for the chunk.)
            let was_idle = std::mem::replace(&mut idle, written == 0);
            while was_idle && idle && lanes.is_empty() && self.control.is_empty() {
                match self.store.maintain() {
                    Ok(true) => continue,
                    _ => break,
                }
            }
        }
    }

    /// Writes records in batches of `batch_size`, reading the lanes whenever fewer than a batch
    /// are pending: if `request` (a flush or a shutdown), what they held when it came, else
    /// until they are empty, a request is waiting, or a flush interval has passed.
    /// Returns the number of records written.
    fn drain(
        &mut self,
        lanes: &mut LaneSet,
        read: &mut Read,
        batch: &mut Batch,
        request: bool,
    ) -> usize {
        let started = Instant::now();
        let mut written = 0;
        let mut repair_failed = false;
        if request {
            lanes.take_new(&self.lanes);
            lanes.snapshot();
        }
        loop {
            if !request
                && written > 0
                && (!self.control.is_empty() || started.elapsed() >= self.flush_interval)
            {
                break;
            }
            if !self.batch_ready(read) {
                if !request {
                    lanes.take_new(&self.lanes);
                }
                let max = self.batch_size - read.pending.len();
                self.read(lanes, read, max);
            }
            // The starts held back from the last batch first (see `Read::held`).
            for record in read.held.drain(..) {
                batch.records.push(record);
                batch.rows.push(None);
            }
            let mut held = Vec::new();
            let ended = &mut read.ended;
            ended.clear();
            let mut rows = 0usize;
            while batch.records.len() < self.batch_size && rows < self.max_rows() {
                let Some((record, native)) = read.pending.pop_front() else {
                    break;
                };
                let n = rows_of(&record, native.as_deref());
                read.pending_rows = read.pending_rows.saturating_sub(n);
                rows += n;
                match &record {
                    Record::StepStarted(_) if !request => {
                        held.push(record);
                        continue;
                    }
                    Record::StepFinished(step) => {
                        ended.insert(step.id);
                    }
                    _ => {}
                }
                batch.records.push(record);
                batch.rows.push(native);
            }
            // A start whose end is in this batch goes with it (the store writes one whole row).
            for record in held {
                match &record {
                    Record::StepStarted(s) if ended.contains(&s.id) => {
                        batch.records.push(record);
                        batch.rows.push(None);
                    }
                    _ => read.held.push(record),
                }
            }
            if batch.records.is_empty() {
                // Nothing new. On a flush or a shutdown, the run ends that failed batches left
                // are sent again, a batch's share at a time, until they are written or a write
                // fails (otherwise they go with the next batches).
                if repair_failed || !(request && self.repairs.has_ends()) {
                    break;
                }
            }
            if !self.write(batch) {
                // What made it fail likely lasts: no repair-only write in this round.
                repair_failed = true;
            }
            written += batch.records.len() - batch.repairs;
            for record in batch.records.iter_mut() {
                read.reuse.harvest(record);
            }
            for rows in batch.rows.drain(..).flatten() {
                self.recycler.give_arena(rows.into_arena());
            }
            batch.records.clear();
            batch.repairs = 0;
        }
        lanes.unlimit();
        written
    }

    /// Reads up to `max` records from the lanes, and no more once a batch's worth waits, and
    /// prepares them (a record that does not decode, which only a bug makes, is counted as
    /// failed).
    fn read(&self, lanes: &mut LaneSet, read: &mut Read, max: usize) {
        let mut chunk = std::mem::take(&mut read.chunk);
        lanes.read(&self.lanes, &mut chunk, max, |record, side| {
            let mut records = codec::records_in(record.tag);
            match self.prepare(
                record,
                side,
                &mut read.reuse,
                &mut records,
                &mut read.pending,
            ) {
                Some(rows) => read.pending_rows += rows,
                None => {
                    self.counters
                        .writer
                        .failed
                        .fetch_add(records, Ordering::Relaxed);
                }
            }
            // Decoded evaluations take memory: no more than a batch's worth waits.
            !self.batch_ready(read)
        });
        read.chunk = chunk;
    }

    /// Evaluation rows per batch at most.
    fn max_rows(&self) -> usize {
        self.batch_size * 64
    }

    /// Whether a batch's worth of records (or of evaluation rows) is read and waiting.
    fn batch_ready(&self, read: &Read) -> bool {
        read.pending.len() >= self.batch_size || read.pending_rows >= self.max_rows()
    }

    /// Decodes a record (evaluations decoded, or kept in their arena for the native store),
    /// applies the capture policy and the processors, runs the hooks, and queues it `into` the
    /// pending records (a root step's with its run's). Returns the evaluation rows it queued.
    /// `records`: how many records it holds, set to its inner record's for a big one (what a
    /// failure counts).
    fn prepare(
        &self,
        raw: RawRecord<'_>,
        side: &mut dyn FnMut() -> Option<Side>,
        reuse: &mut Reuse,
        records: &mut u64,
        into: &mut Pending,
    ) -> Option<usize> {
        let mut d = Decoder::new(raw.fields);
        let (mut run_start, mut run_end, mut rows) = (None, None, None);
        let elided = raw.tag & codec::HEAD_OF_LAST_START != 0;
        let tag = raw.tag & !codec::HEAD_OF_LAST_START;
        let record = match tag {
            codec::BIG => {
                let Some(Side::Big(bytes)) = side() else {
                    return None;
                };
                let mut inner = Records::new(&bytes).next()?;
                inner.last_start = raw.last_start;
                *records = codec::records_in(inner.tag);
                return self.prepare(inner, side, reuse, records, into);
            }
            codec::STEP_START | codec::ROOT_STEP_START => {
                let head = d.step_head(reuse)?;
                if raw.tag == codec::ROOT_STEP_START {
                    // The run a root step starts: named after it, no tags.
                    let name = reuse.copy(&head.name);
                    run_start = Some(self.execution_started(
                        head.execution_id,
                        name,
                        head.started_at,
                        Vec::new(),
                        reuse,
                    ));
                }
                Record::StepStarted(StepStart {
                    id: head.id,
                    execution_id: head.execution_id,
                    parent_id: head.parent_id,
                    name: head.name,
                    kind: head.kind,
                    started_at: head.started_at,
                })
            }
            codec::EXECUTION_START => {
                let start = d.execution_start(reuse)?;
                self.execution_started(start.id, start.name, start.started_at, start.tags, reuse)
            }
            codec::EXECUTION_END => {
                let end = d.execution_end(reuse)?;
                Record::ExecutionFinished(ExecutionEnd {
                    id: end.id,
                    completed_at: end.completed_at,
                    status: end.status,
                    error: end.error,
                    metadata: object_of(&end.metadata),
                    input: end.input,
                    output: end.output,
                    dropped_records: end.dropped,
                })
            }
            codec::STEP_END | codec::ROOT_STEP_END => {
                let head = if elided {
                    d.head_of_last_start(raw.last_start, reuse)?
                } else {
                    d.step_head(reuse)?
                };
                let mut buffer = StepBuffer::default();
                let arena = || match side() {
                    Some(Side::Arena(arena)) => Some(arena),
                    _ => None,
                };
                let capture = d.step_end(reuse, &mut buffer, arena)?;
                let (record, native) = finish_step(
                    head,
                    capture,
                    buffer,
                    reuse,
                    &self.recycler,
                    self.native.is_some(),
                );
                if tag == codec::ROOT_STEP_END {
                    // The run a root step ends, as the step ended.
                    run_end = Some(Record::ExecutionFinished(ExecutionEnd {
                        id: record.execution_id,
                        completed_at: record.ended_at.unwrap_or(record.started_at),
                        status: record.status,
                        error: record.error.clone(),
                        metadata: None,
                        input: None,
                        output: None,
                        dropped_records: d.u64()?,
                    }));
                }
                rows = native.map(|mut rows| {
                    rows.snapshot_cap = self.pipeline.max_payload_bytes;
                    rows
                });
                Record::StepFinished(Box::new(record))
            }
            _ => return None,
        };
        // Queued where they are processed, each moved once (a record is 152 bytes, a step's
        // end 472 more in its box). A root step's run starts before the step, and ends after
        // it; in the order they are written, hooks see a step end before its run's.
        let mut push = |record: Record, rows: Option<Box<StepRows>>| {
            into.push_back((record, rows));
            match into.back_mut() {
                Some((record, rows)) => {
                    self.pipeline.process(record, &self.counters);
                    rows_of(record, rows.as_deref())
                }
                None => 0,
            }
        };
        if let Some(start) = run_start {
            push(start, None);
        }
        let rows = push(record, rows);
        if let Some(end) = run_end {
            push(end, None);
        }
        Some(rows)
    }

    /// An execution's start record, with this process's service, host and pid.
    fn execution_started(
        &self,
        id: uuid::Uuid,
        name: String,
        started_at: i64,
        tags: Vec<String>,
        reuse: &mut Reuse,
    ) -> Record {
        let defaults = &self.defaults;
        Record::ExecutionStarted(ExecutionStart {
            id,
            name,
            started_at,
            tags,
            metadata: Json::from_trusted(reuse.copy("{}")),
            // Copied into strings the writer made before (a run per root step: two
            // allocations and two frees a step, otherwise).
            service: defaults.service.as_deref().map(|s| reuse.copy(s)),
            host: defaults.host.as_deref().map(|s| reuse.copy(s)),
            pid: Some(defaults.pid),
        })
    }

    /// Writes `batch`, with the repairs that earlier failed batches left (see
    /// [`super::repair`]); counts its records as written or failed (repairs are not counted
    /// again). Returns whether it was written.
    fn write(&mut self, batch: &mut Batch) -> bool {
        let started = Instant::now();
        let mut delay = Duration::from_millis(10);
        batch.repairs = self.repairs.apply(&mut batch.records);
        batch.rows.resize_with(batch.records.len(), || None);
        let len = batch.records.len() - batch.repairs;
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
                    self.repairs.written(&batch.records);
                    return true;
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
                    if len > 0 {
                        self.pipeline.write_failed(&err, len);
                    }
                    self.repairs.failed(&batch.records);
                    return false;
                }
            }
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

/// What the writer reads the lanes into.
#[derive(Default)]
struct Read {
    /// The bytes of one lane's read.
    chunk: Vec<u8>,
    pending: Pending,
    /// The evaluation rows of the pending records.
    pending_rows: usize,
    /// Step starts held back for one batch (written at the head of the next one, or with
    /// their end when it came in the same batch). A step's start and its end then never land
    /// in two batches unless the step outlasts a batch: if the later batch fails (a full
    /// disk), no start-only row of a step that ended is left behind, running forever. A
    /// running step shows in the viewer one batch (or one flush interval) later.
    held: Vec<Record>,
    /// The steps whose end is in the batch being made (kept for its memory).
    ended: HashSet<uuid::Uuid, crate::capture::FxBuild>,
    reuse: Reuse,
}

/// A batch: records, and for each the evaluations kept in their arena (native store only).
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    rows: Vec<Option<Box<StepRows>>>,
    /// Records at the end of `records` that repair earlier failed batches.
    repairs: usize,
}

/// The evaluation rows a record carries (decoded, or in its arena for the native store).
fn rows_of(record: &Record, native: Option<&StepRows>) -> usize {
    let decoded = match record {
        Record::StepFinished(step) => step.evaluations.len(),
        _ => 0,
    };
    decoded + native.map_or(0, StepRows::kept_len)
}

/// Turns a step's end into its record: evaluations decoded, capture policy applied,
/// candidate counts derived when the step did not set them.
fn finish_step(
    head: DecodedHead,
    capture: Capture,
    buffer: StepBuffer<Json>,
    reuse: &mut Reuse,
    recycler: &Recycler,
    native: bool,
) -> (StepRecord, Option<Box<StepRows>>) {
    let arena = buffer.evaluations;
    let no_result = buffer.no_result;
    let mut record = StepRecord {
        id: head.id,
        execution_id: head.execution_id,
        parent_id: head.parent_id,
        name: head.name,
        kind: head.kind,
        started_at: head.started_at,
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
            recycler.give_arena(arena);
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
