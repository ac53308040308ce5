//! What the layer keeps about a running execution or step.
//!
//! A step's state lives in an `Arc` stored in its span's extensions (as a [`Node`]). While the
//! span is entered on a thread, the same `Arc` is on that thread's stack ([`super::current`]). A
//! [`StepHandle`](crate::StepHandle) is a clone of it.

use super::arena::EvalArena;
use crate::capture::Capture;
use crate::model::{LogLine, Selection, Status};
use crate::tape::Tape;
use crate::writer::codec::StepHead;
use crate::writer::{Counters, Sink};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

/// A running execution: what its steps and its own code report, until its end record is
/// written (by the thread that ends it).
#[derive(Debug)]
pub(crate) struct ExecutionState {
    pub(crate) id: Uuid,
    /// Started implicitly by a step with no execution above it: ends with that step.
    pub(crate) implicit: bool,
    pub(crate) name: ExecutionName,
    pub(crate) tags: Vec<String>,
    pub(crate) started_at: i64,
    pub(crate) dropped: AtomicU64,
    pub(crate) outcome: Mutex<Outcome>,
    /// Its span has closed.
    pub(crate) ended: AtomicBool,
}

/// What the execution's own code reported: status, error, metadata, input and output.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) status: Option<Status>,
    pub(crate) error: Option<String>,
    pub(crate) metadata: Vec<(String, Tape)>,
    pub(crate) ended_at: Option<i64>,
    pub(crate) input: Option<Tape>,
    pub(crate) output: Option<Tape>,
}

/// An execution's name: its own, or (started by a root step) its step's.
#[derive(Debug)]
pub(crate) enum ExecutionName {
    Named(String),
    Step(Arc<SpanInfo>),
}

impl ExecutionName {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            ExecutionName::Named(name) => name,
            ExecutionName::Step(info) => &info.name,
        }
    }
}

impl ExecutionState {
    pub(crate) fn new(
        id: Uuid,
        implicit: bool,
        name: ExecutionName,
        tags: Vec<String>,
        started_at: i64,
    ) -> Self {
        ExecutionState {
            id,
            implicit,
            name,
            tags,
            started_at,
            dropped: AtomicU64::new(0),
            outcome: Mutex::new(Outcome::default()),
            ended: AtomicBool::new(false),
        }
    }

    /// Makes this state, which nothing else refers to, the state of a new implicit execution
    /// (started by a root step of `info`'s callsite): the memory of a root step's run is
    /// reused by the thread's next root step instead of being freed and allocated again.
    fn restart_implicit(&mut self, id: Uuid, info: &Arc<SpanInfo>, started_at: i64) {
        self.id = id;
        self.implicit = true;
        if !matches!(&self.name, ExecutionName::Step(own) if Arc::ptr_eq(own, info)) {
            self.name = ExecutionName::Step(Arc::clone(info));
        }
        self.tags.clear();
        self.started_at = started_at;
        *self.dropped.get_mut() = 0;
        *self.ended.get_mut() = false;
        let outcome = self
            .outcome
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        outcome.status = None;
        outcome.error = None;
        outcome.metadata.clear();
        outcome.ended_at = None;
        outcome.input = None;
        outcome.output = None;
    }

    pub(crate) fn outcome(&self) -> MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the execution's end record: its outcome, ended at `now` unless its code said
    /// when.
    pub(crate) fn end(&self, sink: &Sink, now: i64) {
        let mut outcome = self.outcome();
        outcome.ended_at.get_or_insert(now);
        sink.send(&self.dropped, 0, |encoder| {
            let dropped = self.dropped.load(Ordering::Relaxed);
            encoder.execution_end(self.id, self.started_at, &outcome, dropped);
        });
    }
}

/// A step's name, kind and capture policy: shared by every span of one callsite.
///
/// Aligned so that its fields never share a cache line with the `Arc`'s counts: the threads of
/// a program clone the `Arc` as their steps start while others read the name, and the two would
/// otherwise pass the line back and forth between cores.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct SpanInfo {
    pub(crate) name: String,
    pub(crate) kind: Option<String>,
    pub(crate) capture: Option<Capture>,
    /// Every span of its callsite has these values: its `xray.*` values are literals (the
    /// spans of `#[xray::step]`, marked by an `xray.constant` field), so a span of the same
    /// callsite needs no comparison of its fields.
    pub(crate) constant: bool,
}

/// A running step.
///
/// The writer thread never reads it: the step's start and end records are copied out of it
/// into the lane of the thread that makes them. Once the step has ended, the thread that ended
/// it keeps the state for its next step, unless a handle still refers to it
/// ([`crate::recycle`]).
#[derive(Debug)]
#[repr(C)] // what each step writes comes first, on as few cache lines as possible
pub(crate) struct StepState {
    pub(crate) id: Uuid,
    pub(crate) execution_id: Uuid,
    pub(crate) started_at: i64,
    pub(crate) info: Arc<SpanInfo>,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) execution: Arc<ExecutionState>,
    /// The address of its span's metadata: a state reused for a span of the same callsite
    /// keeps its `info`.
    pub(crate) callsite: usize,
    buffer: Mutex<StepBuffer>,
    pub(crate) capture: Capture,
    pub(crate) max_logs: usize,
    /// The layer's sending end: where the step's end goes, where evaluation arenas come from
    /// (and go back to, once written), and the counts of what arrives after the step ended.
    pub(crate) sink: Arc<Sink>,
    /// The step has ended (read without the buffer's lock): at its span's close, or earlier
    /// when its function returned ([`StepState::finish`]).
    closed: AtomicBool,
    /// A step started under it. The span of a step outlives those of the steps under it, but
    /// its function may return before they end (a task it spawned and did not wait for): a
    /// root step that its function ends then leaves its run's end to its span's close.
    has_children: AtomicBool,
    /// Its run's end is left to its span's close (see `has_children`).
    run_open: AtomicBool,
    /// Its body set its output ([`crate::output`]): the value its function returns is not
    /// serialized, as it would not be kept.
    output_set: AtomicBool,
}

/// What the step recorded so far: its values as [`Tape`]s. The writer reads a step's end into
/// a `StepBuffer<Json>`, the values replayed into JSON.
#[derive(Debug)]
#[repr(C)] // what every step records first
pub(crate) struct StepBuffer<V = Tape> {
    pub(crate) closed: bool,
    pub(crate) status: Option<Status>,
    pub(crate) input: Option<V>,
    pub(crate) output: Option<V>,
    pub(crate) ended_at: Option<i64>,
    pub(crate) filters: Option<V>,
    pub(crate) selection: Vec<Selection>,
    pub(crate) reasoning: Option<String>,
    pub(crate) metadata: Vec<(String, V)>,
    pub(crate) error: Option<String>,
    pub(crate) candidates_in: Option<u64>,
    pub(crate) candidates_out: Option<u64>,
    pub(crate) evaluations: EvalArena,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) logs_dropped: u64,
    /// The function ended without a result (returned an error, panicked, was cancelled): it let
    /// no candidate through, whatever it passed before. (`xray::fail` marks a step failed that
    /// still returns its result: not this.)
    pub(crate) no_result: bool,
}

impl SpanInfo {
    /// The info of a step whose callsite is unknown.
    fn unnamed() -> SpanInfo {
        SpanInfo {
            name: "step".to_owned(),
            kind: None,
            capture: None,
            constant: false,
        }
    }
}

impl<V> Default for StepBuffer<V> {
    fn default() -> Self {
        StepBuffer {
            closed: false,
            status: None,
            input: None,
            output: None,
            ended_at: None,
            filters: None,
            selection: Vec::new(),
            reasoning: None,
            metadata: Vec::new(),
            error: None,
            candidates_in: None,
            candidates_out: None,
            evaluations: EvalArena::default(),
            logs: Vec::new(),
            logs_dropped: 0,
            no_result: false,
        }
    }
}

impl StepBuffer {
    /// Empties what the step recorded, keeping the memory of its lists and its tapes (given
    /// back to this thread's cache) for the next step. It stays closed.
    fn empty(&mut self) {
        for tape in [&mut self.input, &mut self.output, &mut self.filters] {
            if let Some(tape) = tape.take() {
                crate::recycle::give_buffer(tape.into_bytes());
            }
        }
        self.status = None;
        self.ended_at = None;
        self.selection.clear();
        self.reasoning = None;
        self.metadata.clear();
        self.error = None;
        self.candidates_in = None;
        self.candidates_out = None;
        self.logs.clear();
        self.logs_dropped = 0;
        self.no_result = false;
    }
}

/// Where a new step's state comes from.
pub(crate) enum Start {
    /// A state this thread's last step left, of the same callsite: its info is kept.
    Reuse(Arc<StepState>),
    /// The callsite's info, and a state to reuse if this thread has one.
    Fresh(Arc<SpanInfo>, Option<Arc<StepState>>),
}

impl Start {
    pub(crate) fn info(&self) -> &Arc<SpanInfo> {
        match self {
            Start::Reuse(state) => &state.info,
            Start::Fresh(info, _) => info,
        }
    }

    /// The state it brings, if any, for when no step starts after all.
    pub(crate) fn into_state(self) -> Option<Arc<StepState>> {
        match self {
            Start::Reuse(state) => Some(state),
            Start::Fresh(_, state) => state,
        }
    }
}

/// A new implicit execution: the run of a root step of `info`'s callsite.
fn implicit_execution(id: Uuid, info: &Arc<SpanInfo>, now: i64) -> Arc<ExecutionState> {
    Arc::new(ExecutionState::new(
        id,
        true,
        ExecutionName::Step(Arc::clone(info)),
        Vec::new(),
        now,
    ))
}

/// A shared reference to a running step.
pub(crate) type StepRef = Arc<StepState>;

/// The run a new step belongs to.
#[derive(Clone, Copy)]
pub(crate) enum StepRun<'a> {
    /// The run of the step or execution above it.
    In(&'a Arc<ExecutionState>),
    /// A run of its own, with this id: an implicit execution named after the step, started by
    /// its start record and ended with it. The implicit execution of the root step the reused
    /// state ran last is restarted in place when nothing else refers to it.
    Root(Uuid),
}

/// What a new step is made of.
pub(crate) struct NewStep<'a> {
    pub(crate) id: Uuid,
    pub(crate) run: StepRun<'a>,
    pub(crate) parent_id: Option<Uuid>,
    /// The address of the span's metadata.
    pub(crate) callsite: usize,
    pub(crate) started_at: i64,
    pub(crate) capture: Capture,
    pub(crate) max_logs: usize,
    pub(crate) sink: &'a Arc<Sink>,
}

impl StepState {
    /// A running step, in the state `start` brings when that state is free for reuse.
    pub(crate) fn start(step: NewStep<'_>, start: Start) -> Arc<StepState> {
        let (mut info, recycled) = match start {
            Start::Reuse(state) => (None, Some(state)),
            Start::Fresh(info, recycled) => (Some(info), recycled),
        };
        if let Some(mut state) = recycled {
            if let Some(s) = Arc::get_mut(&mut state) {
                s.id = step.id;
                s.parent_id = step.parent_id;
                if let Some(info) = info {
                    s.info = info;
                }
                match step.run {
                    // A pipeline's steps follow one another in one execution: the execution
                    // already there is kept, without touching its count.
                    StepRun::In(execution) => {
                        if !Arc::ptr_eq(&s.execution, execution) {
                            s.execution = Arc::clone(execution);
                        }
                    }
                    StepRun::Root(id) => match Arc::get_mut(&mut s.execution) {
                        Some(last) if last.implicit => {
                            last.restart_implicit(id, &s.info, step.started_at);
                        }
                        _ => s.execution = implicit_execution(id, &s.info, step.started_at),
                    },
                }
                s.execution_id = s.execution.id;
                s.callsite = step.callsite;
                s.started_at = step.started_at;
                s.capture = step.capture;
                s.max_logs = step.max_logs;
                if !Arc::ptr_eq(&s.sink, step.sink) {
                    s.sink = Arc::clone(step.sink);
                }
                let buffer = s.buffer.get_mut().unwrap_or_else(PoisonError::into_inner);
                // Its last step left it empty (and closed) when it ended.
                buffer.closed = false;
                *s.closed.get_mut() = false;
                *s.has_children.get_mut() = false;
                *s.run_open.get_mut() = false;
                *s.output_set.get_mut() = false;
                return state;
            }
            info.get_or_insert_with(|| Arc::clone(&state.info));
        }
        let Some(info) = info else {
            // `Start::Reuse` always brings a state: not reached.
            return Arc::new(StepState::empty(step, Arc::new(SpanInfo::unnamed())));
        };
        Arc::new(StepState::empty(step, info))
    }

    fn empty(step: NewStep<'_>, info: Arc<SpanInfo>) -> StepState {
        let execution = match step.run {
            StepRun::In(execution) => Arc::clone(execution),
            StepRun::Root(id) => implicit_execution(id, &info, step.started_at),
        };
        StepState {
            id: step.id,
            execution_id: execution.id,
            execution,
            parent_id: step.parent_id,
            info,
            callsite: step.callsite,
            started_at: step.started_at,
            capture: step.capture,
            max_logs: step.max_logs,
            sink: Arc::clone(step.sink),
            buffer: Mutex::new(StepBuffer::default()),
            closed: AtomicBool::new(false),
            has_children: AtomicBool::new(false),
            run_open: AtomicBool::new(false),
            output_set: AtomicBool::new(false),
        }
    }

    /// Whether the step has ended (its record is sent).
    pub(crate) fn has_ended(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the layer whose counters these are records this step.
    pub(crate) fn recorded_by(&self, counters: &Arc<Counters>) -> bool {
        Arc::ptr_eq(&self.sink.counters, counters)
    }

    /// Locks the buffer. A panic elsewhere while it was held leaves it usable.
    pub(crate) fn buffer(&self) -> MutexGuard<'_, StepBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the buffer unless the step has ended (then counts a dropped record).
    pub(crate) fn record(&self, f: impl FnOnce(&mut StepBuffer)) {
        let mut buffer = self.buffer();
        if buffer.closed {
            drop(buffer);
            self.late(1);
        } else {
            f(&mut buffer);
        }
    }

    /// Counts `n` records or evaluations made after the step ended as dropped, in the layer's
    /// counts (`RecorderStats::dropped`, written to the database). Not in the run's own
    /// `dropped_records`: there, a count means an end record was lost, and the store marks the
    /// run's running steps `lost`.
    fn late(&self, n: u64) {
        self.sink
            .counters
            .app
            .dropped
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Ends the step and queues its record: written here, on the thread that ends the step,
    /// into that thread's lane (so the writer never reads this state, and it can be reused as
    /// soon as nothing else refers to it). Called from the layer's `on_close`, or earlier by
    /// [`StepState::finish`]; once the step has ended, this does nothing, and later records
    /// through handles are counted as dropped.
    ///
    /// A root step's record ends its implicit execution too ([`codec::ROOT_STEP_END`]); the
    /// steps under it leave the run to it. Returns whether the step ended here.
    ///
    /// [`codec::ROOT_STEP_END`]: crate::writer::codec::ROOT_STEP_END
    pub(crate) fn end(&self, now: i64) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        self.end_locked(self.buffer(), now, true)
    }

    /// Notes that its body set its output (see `output_set`).
    pub(crate) fn note_output_set(&self) {
        self.output_set.store(true, Ordering::Relaxed);
    }

    /// Whether its body set its output: the value its function returns would not be kept.
    pub(crate) fn output_set(&self) -> bool {
        self.output_set.load(Ordering::Relaxed)
    }

    /// Notes that a step started under this one (see `has_children`).
    pub(crate) fn add_child(&self) {
        if !self.has_children.load(Ordering::Relaxed) {
            self.has_children.store(true, Ordering::Relaxed);
        }
    }

    /// Whether its run's end was left to its span's close, which is now: the caller sends it.
    /// `true` once.
    pub(crate) fn take_open_run(&self) -> bool {
        self.run_open.load(Ordering::Acquire) && self.run_open.swap(false, Ordering::AcqRel)
    }

    /// Records how the step's function ended, and ends the step, under one lock: what a
    /// `#[xray::step]` function does as it returns (or panics), before its span closes.
    /// `local`: the evaluations this thread made in the step, not handed over yet. Returns
    /// whether the step's run is left to end at its span's close (see `has_children`).
    pub(crate) fn finish(&self, now: i64, ending: Ending, local: Option<&mut EvalArena>) -> bool {
        let mut buffer = self.buffer();
        if buffer.closed {
            drop(buffer);
            let late = ending.input.is_some() as u64 + ending.output.is_some() as u64;
            let rows = local.map_or(0, |l| {
                let n = l.rows() as u64;
                l.clear_rows();
                n
            });
            self.late(late + rows);
            return false;
        }
        if let Some(local) = local {
            absorb_into(&mut buffer, local);
        }
        // What the body set (`xray::input`, `xray::output`) stays.
        keep_first(&mut buffer.input, ending.input);
        keep_first(&mut buffer.output, ending.output);
        if let Some(error) = ending.error {
            buffer.status = Some(Status::Error);
            buffer.error = Some(error);
        }
        buffer.no_result |= ending.no_result;
        self.end_locked(buffer, now, false);
        self.run_open.load(Ordering::Relaxed)
    }

    /// [`StepState::end`], the buffer locked. `at_close`: its span is closing (every step
    /// under it has ended), else its function returned.
    fn end_locked(&self, mut buffer: MutexGuard<'_, StepBuffer>, now: i64, at_close: bool) -> bool {
        if buffer.closed {
            return false;
        }
        buffer.closed = true;
        self.closed.store(true, Ordering::Release);
        let ended_at = *buffer.ended_at.get_or_insert(now);
        let rows = buffer.evaluations.rows();
        let capture = self.capture;
        let head = self.head();
        let sink = &*self.sink;
        // The root step of an implicit execution ends it (the steps under it do not), unless
        // steps under it may still run: then its span's close does.
        let root = self.execution.implicit && self.parent_id.is_none();
        let run_open = root && !at_close && self.has_children.load(Ordering::Relaxed);
        if run_open {
            let mut outcome = self.execution.outcome();
            outcome.status = Some(buffer.status.unwrap_or(Status::Ok));
            outcome.error.clone_from(&buffer.error);
            self.run_open.store(true, Ordering::Release);
        }
        let run_left = if root && !run_open {
            let dropped = self.execution.dropped.load(Ordering::Relaxed);
            // Two records; if refused, only the step's end is lost: the run's is sent again.
            let sent = sink.send_records(&self.execution.dropped, 2, 1, rows, |encoder, last| {
                encoder.step_end(&head, capture, &mut buffer, Some(dropped), last);
                None
            });
            if !sent {
                let mut outcome = self.execution.outcome();
                outcome.status = Some(buffer.status.unwrap_or(Status::Ok));
                outcome.error.clone_from(&buffer.error);
                outcome.ended_at = Some(ended_at);
            }
            !sent
        } else {
            sink.send_records(&self.execution.dropped, 1, 1, rows, |encoder, last| {
                encoder.step_end(&head, capture, &mut buffer, None, last);
                None
            });
            false
        };
        // The arena went with the record (or was dropped with it); the rest is emptied here,
        // its memory kept for the next step that reuses this state.
        buffer.evaluations = EvalArena::default();
        buffer.empty();
        drop(buffer);
        if run_left {
            // Its record was refused: the execution's end alone, which a lane with room for a
            // small record still takes.
            self.execution.end(sink, now);
        }
        true
    }

    /// The step's identity, as its records carry it.
    pub(crate) fn head(&self) -> StepHead<'_> {
        StepHead {
            id: self.id,
            execution_id: self.execution_id,
            parent_id: self.parent_id,
            started_at: self.started_at,
            name: &self.info.name,
            kind: self.info.kind.as_deref(),
        }
    }

    /// Takes the evaluations a thread made while it had the step entered (`arena` is left
    /// empty). Counted as dropped if the step has ended.
    pub(crate) fn absorb(&self, arena: &mut EvalArena) {
        let mut buffer = self.buffer();
        if buffer.closed {
            drop(buffer);
            self.late(arena.rows() as u64);
            arena.clear_rows();
        } else {
            absorb_into(&mut buffer, arena);
        }
    }
}

/// Sets `slot` to `value` unless it is set already (then `value`'s memory is kept for reuse).
pub(crate) fn keep_first(slot: &mut Option<Tape>, value: Option<Tape>) {
    match (slot.is_some(), value) {
        (false, value) => *slot = value,
        (true, Some(unused)) => crate::recycle::give_buffer(unused.into_bytes()),
        (true, None) => {}
    }
}

/// Moves the evaluations of `arena` into the step's `buffer` (`arena` is left empty).
fn absorb_into(buffer: &mut StepBuffer, arena: &mut EvalArena) {
    if buffer.evaluations.is_empty() {
        std::mem::swap(&mut buffer.evaluations, arena);
    } else {
        buffer.evaluations.append(arena);
    }
}

/// How a step's function ended, as [`StepState::finish`] records it.
#[derive(Default)]
pub(crate) struct Ending {
    /// Its arguments, recorded as it began (kept until now, to take one lock at the end).
    pub(crate) input: Option<Tape>,
    pub(crate) output: Option<Tape>,
    pub(crate) error: Option<String>,
    /// It returned an error, or panicked: it let no candidate through.
    pub(crate) no_result: bool,
}

/// Builds a JSON object from key/value pairs (later keys win), or `None` when there are none.
pub(crate) fn object_of(pairs: &[(String, crate::model::Json)]) -> Option<crate::model::Json> {
    use crate::model::Json;
    if pairs.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(64);
    out.push('{');
    let mut first = true;
    for (i, (key, value)) in pairs.iter().enumerate() {
        if pairs[i + 1..].iter().any(|(k, _)| k == key) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(Json::string(key).as_str());
        out.push(':');
        out.push_str(value.as_str());
    }
    out.push('}');
    Some(Json::from_trusted(out))
}

/// An X-Ray span's state: what the layer keeps in the span's extensions and on the thread's stack.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Execution(Arc<ExecutionState>),
    Step(StepRef),
    /// An execution the layer's sampling leaves out, or a step inside one: nothing of it is
    /// recorded, and the steps under it are left out too (they start no execution of their own).
    Skipped,
}

impl Node {
    /// Whether its span has closed.
    pub(super) fn is_closed(&self) -> bool {
        match self {
            Node::Execution(e) => e.ended.load(Ordering::Acquire),
            Node::Step(s) => s.closed.load(Ordering::Acquire),
            Node::Skipped => false,
        }
    }
}
