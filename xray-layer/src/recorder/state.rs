//! What the layer keeps about a running execution or step, and which step is current on a thread.
//!
//! A step's state lives in an `Arc` stored in its span's extensions. While the span is entered on
//! a thread, the layer also pushes it on that thread's *current step* stack, so the recording
//! calls ([`crate::evaluate`], [`crate::select`], …) find their step with one thread-local read
//! instead of a registry lookup. A [`StepHandle`](crate::StepHandle) is a clone of the same `Arc`.

use super::arena::EvalArena;
use crate::capture::Capture;
use crate::model::{ExecutionEnd, Json, LogLine, Selection, Status};
use crate::recycle::Recycler;
use crate::writer::{Counters, Envelope, PendingStep, Sink};

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

/// A running execution. The writer builds its start and end records from here, so that
/// starting one (every root step starts one) allocates nothing but this on the application
/// thread.
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
    pub(crate) metadata: Vec<(String, Json)>,
    pub(crate) ended_at: Option<i64>,
    pub(crate) input: Option<Json>,
    pub(crate) output: Option<Json>,
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

    pub(crate) fn outcome(&self) -> MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The end record, from what was reported (a missing status means it ended normally).
    /// Built on the writer thread once the execution has ended.
    pub(crate) fn end_record(&self) -> ExecutionEnd {
        let outcome = self.outcome();
        ExecutionEnd {
            id: self.id,
            completed_at: outcome.ended_at.unwrap_or(self.started_at),
            status: outcome.status.unwrap_or(Status::Ok),
            error: outcome.error.clone(),
            metadata: object_of(&outcome.metadata),
            input: outcome.input.clone(),
            output: outcome.output.clone(),
            dropped_records: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// A step's name, kind and capture policy: shared by every span of one callsite.
///
/// Aligned so that its fields never share a cache line with the `Arc`'s counts: every step
/// clones the `Arc` on the application thread while the writer reads the name, and the two
/// would otherwise pass the line back and forth between cores on every step.
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
/// The writer thread reads what it needs (ids, times, name) from here and from the buffer, never
/// from the [`ExecutionState`], so that only the application threads write the execution's
/// counts. Once written, a step's state goes back to the application threads to be reused
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
    buffer: Mutex<StepBuffer>,
    pub(crate) capture: Capture,
    pub(crate) max_logs: usize,
    /// Where evaluation arenas come from (and go back to, once written).
    pub(crate) recycler: Arc<Recycler>,
    /// The layer's counters: what arrives after the step has ended is counted as dropped.
    counters: Arc<Counters>,
    /// Its span has closed (read without the buffer's lock).
    closed: AtomicBool,
}

/// What the step recorded so far.
#[derive(Debug, Default)]
#[repr(C)] // what every step records first
pub(crate) struct StepBuffer {
    pub(crate) closed: bool,
    pub(crate) status: Option<Status>,
    pub(crate) input: Option<Json>,
    pub(crate) output: Option<Json>,
    pub(crate) ended_at: Option<i64>,
    pub(crate) filters: Option<Json>,
    pub(crate) selection: Vec<Selection>,
    pub(crate) reasoning: Option<String>,
    pub(crate) metadata: Vec<(String, Json)>,
    pub(crate) error: Option<String>,
    pub(crate) candidates_in: Option<u64>,
    pub(crate) candidates_out: Option<u64>,
    pub(crate) evaluations: EvalArena,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) logs_dropped: u64,
}

/// A shared reference to a running step.
pub(crate) type StepRef = Arc<StepState>;

/// What a new step is made of.
pub(crate) struct NewStep<'a> {
    pub(crate) id: Uuid,
    pub(crate) execution: Arc<ExecutionState>,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) info: Arc<SpanInfo>,
    pub(crate) started_at: i64,
    pub(crate) capture: Capture,
    pub(crate) max_logs: usize,
    pub(crate) recycler: &'a Arc<Recycler>,
    pub(crate) counters: &'a Arc<Counters>,
}

impl StepState {
    /// A running step, in `recycled` when that state is free for reuse.
    pub(crate) fn start(step: NewStep<'_>, recycled: Option<Arc<StepState>>) -> Arc<StepState> {
        if let Some(mut state) = recycled {
            if let Some(s) = Arc::get_mut(&mut state) {
                s.id = step.id;
                s.execution_id = step.execution.id;
                s.execution = step.execution;
                s.parent_id = step.parent_id;
                s.info = step.info;
                s.started_at = step.started_at;
                s.capture = step.capture;
                s.max_logs = step.max_logs;
                if !Arc::ptr_eq(&s.recycler, step.recycler) {
                    s.recycler = Arc::clone(step.recycler);
                }
                if !Arc::ptr_eq(&s.counters, step.counters) {
                    s.counters = Arc::clone(step.counters);
                }
                let buffer = s.buffer.get_mut().unwrap_or_else(PoisonError::into_inner);
                // The writer left it empty (and closed) when it took what the step recorded.
                buffer.closed = false;
                *s.closed.get_mut() = false;
                return state;
            }
        }
        Arc::new(StepState {
            id: step.id,
            execution_id: step.execution.id,
            execution: step.execution,
            parent_id: step.parent_id,
            info: step.info,
            started_at: step.started_at,
            capture: step.capture,
            max_logs: step.max_logs,
            recycler: Arc::clone(step.recycler),
            counters: Arc::clone(step.counters),
            buffer: Mutex::new(StepBuffer::default()),
            closed: AtomicBool::new(false),
        })
    }

    /// Whether the layer whose counters these are records this step.
    pub(crate) fn recorded_by(&self, counters: &Arc<Counters>) -> bool {
        Arc::ptr_eq(&self.counters, counters)
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
        self.counters.app.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Ends the step and hands it to the writer, which takes what it recorded out of the buffer
    /// and builds the record (so the owned strings are allocated and freed on the same thread).
    /// Called once, from the layer's `on_close`; later records through handles are counted as
    /// dropped.
    pub(crate) fn close(self: Arc<Self>, now: i64, sink: &Sink) {
        let rows = {
            let mut buffer = self.buffer();
            if buffer.closed {
                return;
            }
            buffer.closed = true;
            self.closed.store(true, Ordering::Release);
            let ended_at = *buffer.ended_at.get_or_insert(now);
            if self.execution.implicit {
                let mut outcome = self.execution.outcome();
                outcome.status = Some(buffer.status.unwrap_or(Status::Ok));
                outcome.error.clone_from(&buffer.error);
                outcome.ended_at = Some(ended_at);
            }
            buffer.evaluations.rows()
        };
        sink.send(Envelope::StepEnded(self), rows);
    }

    /// Takes the evaluations a thread made while it had the step entered (`arena` is left
    /// empty). Counted as dropped if the step has ended.
    pub(crate) fn absorb(&self, arena: &mut EvalArena) {
        let mut buffer = self.buffer();
        if buffer.closed {
            drop(buffer);
            self.late(arena.rows() as u64);
            arena.clear_rows();
        } else if buffer.evaluations.is_empty() {
            std::mem::swap(&mut buffer.evaluations, arena);
        } else {
            buffer.evaluations.append(arena);
        }
    }

    /// What the step recorded, taken out on the writer thread once the step has ended. The
    /// buffer stays closed: later records through handles are counted as dropped.
    pub(crate) fn take(self: Arc<Self>) -> PendingStep {
        let buffer = {
            let mut buffer = self.buffer();
            let taken = std::mem::take(&mut *buffer);
            buffer.closed = true;
            taken
        };
        PendingStep {
            state: self,
            buffer,
        }
    }
}

/// Builds a JSON object from key/value pairs (later keys win), or `None` when there are none.
pub(crate) fn object_of(pairs: &[(String, Json)]) -> Option<Json> {
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

// ---- the current step of this thread ----

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
    fn is_closed(&self) -> bool {
        match self {
            Node::Execution(e) => e.ended.load(Ordering::Acquire),
            Node::Step(s) => s.closed.load(Ordering::Acquire),
            Node::Skipped => false,
        }
    }
}

/// A span entered on this thread: X-Ray's (with its node) or another layer's (`None`), so that
/// the stack mirrors the subscriber's and its top tells a new span's parent without a lookup.
struct Entry {
    span: u64,
    node: Option<Node>,
    /// Unique among all entries of all threads: names the entry for the evaluation builders
    /// that write into its arena.
    serial: u64,
    /// Evaluations made on this thread while the step is entered: appended here without a
    /// lock, and handed to the step in one piece when the span is exited (or, if a builder
    /// holds them then, by that builder when it is done).
    local: Option<Box<Local>>,
    /// `local` is lent to the evaluation builder being filled (see [`begin_local`]).
    lent: bool,
    /// Pushed by a handle's [`in_scope`](crate::StepHandle::in_scope), not by a span: the
    /// registry does not know it (see [`scope_parent`]).
    scope: bool,
}

/// A thread's own evaluation arena for one entered step.
///
/// While a builder fills a row, it holds the `Local` itself (the entry is marked `lent`), so its
/// calls write into the arena without a thread-local lookup; it gives the `Local` back when it
/// is done ([`end_local`]). Only one builder at a time: a second one started meanwhile takes the
/// slower path with its own scratch arena.
#[derive(Default)]
pub(crate) struct Local {
    pub(crate) arena: EvalArena,
    /// The step the rows belong to: a builder that finishes after the step was exited (or on
    /// another thread) hands its rows to it directly.
    step: Option<StepRef>,
}

struct ThreadState {
    stack: Vec<Entry>,
    /// This thread's number in the top 32 bits, a counter below.
    next_serial: u64,
    /// A `Local` kept from an exited step, for the next one.
    spare: Option<Box<Local>>,
    /// The X-Ray span this thread created last, with its node: the span is usually entered
    /// right away (`#[xray::step]` does), and its enter then needs no registry lookup.
    created: Option<(u64, Node)>,
}

impl ThreadState {
    fn serial(&mut self) -> u64 {
        if self.next_serial == 0 {
            static THREADS: AtomicU64 = AtomicU64::new(1);
            self.next_serial = THREADS.fetch_add(1, Ordering::Relaxed) << 32;
        }
        self.next_serial += 1;
        self.next_serial
    }
}

thread_local! {
    static CURRENT: RefCell<ThreadState> = const {
        RefCell::new(ThreadState {
            stack: Vec::new(),
            next_serial: 0,
            spare: None,
            created: None,
        })
    };
}

/// Marks `span` entered on this thread, with its node if it is an X-Ray span (the layer's
/// `on_enter`, or a handle's `in_scope`).
pub(crate) fn push_current(span: u64, node: Option<Node>) {
    push(span, node, false);
}

/// Makes `node` current on this thread for a handle's `in_scope`, under the made-up id `span`.
pub(crate) fn push_scope(span: u64, node: Node) {
    push(span, Some(node), true);
}

fn push(span: u64, node: Option<Node>, scope: bool) {
    let _ = CURRENT.try_with(|state| {
        let mut state = state.borrow_mut();
        let serial = state.serial();
        state.stack.push(Entry {
            span,
            node,
            serial,
            local: None,
            lent: false,
            scope,
        })
    });
}

/// Remembers the node of the span this thread just created.
pub(crate) fn set_created(span: u64, node: Node) {
    let _ = CURRENT.try_with(|state| state.borrow_mut().created = Some((span, node)));
}

/// Whether another X-Ray layer of the same subscriber recorded `span` as it was created (it is
/// the open span this thread created last). The layers of a subscriber see a new span one
/// after the other, innermost first; the first X-Ray layer records it, the others leave it.
pub(crate) fn claimed(span: u64) -> bool {
    CURRENT
        .try_with(|state| {
            matches!(&state.borrow().created, Some((id, node)) if *id == span && !node.is_closed())
        })
        .unwrap_or(false)
}

/// Enters `span` if it is the span this thread created last (and it is still open: span ids
/// are reused only once a span has closed). Returns `false` when the caller must look the
/// node up.
pub(crate) fn enter_created(span: u64) -> bool {
    CURRENT
        .try_with(|state| {
            let mut state = state.borrow_mut();
            match state.created.take() {
                Some((id, node)) if id == span && !node.is_closed() => {
                    let serial = state.serial();
                    state.stack.push(Entry {
                        span,
                        node: Some(node),
                        serial,
                        local: None,
                        lent: false,
                        scope: false,
                    });
                    true
                }
                _ => false,
            }
        })
        .unwrap_or(false)
}

/// Undoes [`push_current`] for `span` (the innermost entry with that id), handing the
/// evaluations made meanwhile on this thread to the step. If a builder holds them (the entry is
/// `lent`), the builder hands them over when it is done ([`end_local`]).
pub(crate) fn pop_current(span: u64) {
    let entry = CURRENT
        .try_with(|state| {
            let mut state = state.borrow_mut();
            let stack = &mut state.stack;
            if stack.last().is_some_and(|e| e.span == span) {
                stack.pop()
            } else {
                let i = stack.iter().rposition(|e| e.span == span)?;
                Some(stack.remove(i))
            }
        })
        .ok()
        .flatten();
    let Some(Entry {
        node,
        local: Some(mut local),
        ..
    }) = entry
    else {
        return;
    };
    if let Some(Node::Step(step)) = &node {
        if !local.arena.is_empty() {
            step.absorb(&mut local.arena);
        }
    }
    keep_spare(local);
}

/// Keeps an emptied `Local` for this thread's next step.
fn keep_spare(mut local: Box<Local>) {
    local.step = None;
    local.arena.clear_all();
    let _ = CURRENT.try_with(|state| {
        let mut state = state.borrow_mut();
        if state.spare.is_none() {
            state.spare = Some(local);
        }
    });
}

/// How a new evaluation starts on this thread.
pub(crate) enum Begin {
    /// In the innermost entered step's arena, lent to the builder until [`end_local`]: the
    /// builder's row is the arena's last. `serial` names the entry to give it back to.
    Local { serial: u64, local: Box<Local> },
    /// That arena is lent to another builder: the new evaluation builds its own (the step).
    Busy(StepRef),
    /// No step is current on this thread.
    None,
}

/// Lends the arena of the innermost step entered on this thread to a new evaluation builder,
/// which starts its row there. The row is written after the thread state is released: the
/// candidate's `Display` may itself record (it then finds the arena lent, and takes the slower
/// path).
pub(crate) fn begin_local() -> Begin {
    CURRENT
        .try_with(|state| {
            let mut state = state.borrow_mut();
            let state = &mut *state;
            let Some(entry) = state.stack.iter_mut().rev().find(|e| e.node.is_some()) else {
                return Begin::None;
            };
            let Some(Node::Step(step)) = &entry.node else {
                return Begin::None;
            };
            if entry.lent {
                return Begin::Busy(Arc::clone(step));
            }
            let local = entry.local.take().unwrap_or_else(|| {
                let mut local = state.spare.take().unwrap_or_default();
                if local.arena.capacity_bytes() == 0 {
                    if let Some(arena) = step.recycler.take_arena() {
                        local.arena = arena;
                    }
                }
                local.step = Some(Arc::clone(step));
                local
            });
            entry.lent = true;
            Begin::Local {
                serial: entry.serial,
                local,
            }
        })
        .unwrap_or(Begin::None)
}

/// Ends the last row of a lent `local` with its verdict and gives the arena back to entry
/// `serial`. When that entry is gone (the step was exited meanwhile, or the builder moved to
/// another thread), the rows go to the step directly; a step that has ended counts them as
/// dropped.
pub(crate) fn end_local(serial: u64, mut local: Box<Local>, passed: bool) {
    local.arena.set_passed(passed);
    let mut local = Some(local);
    let _ = CURRENT.try_with(|state| {
        let mut state = state.borrow_mut();
        if let Some(entry) = state.stack.iter_mut().rev().find(|e| e.serial == serial) {
            if entry.lent {
                entry.lent = false;
                entry.local = local.take();
            }
        }
    });
    let Some(mut local) = local else {
        return;
    };
    if let Some(step) = &local.step {
        step.absorb(&mut local.arena);
    }
    keep_spare(local);
}

/// Calls `f` with the current step of this thread, if any. Code that runs directly in an
/// execution (outside any step) has no current step.
pub(crate) fn with_current<R>(f: impl FnOnce(&StepRef) -> R) -> Option<R> {
    CURRENT
        .try_with(|state| {
            match state
                .borrow()
                .stack
                .iter()
                .rev()
                .find_map(|e| e.node.as_ref())
            {
                Some(Node::Step(step)) => Some(f(step)),
                _ => None,
            }
        })
        .ok()
        .flatten()
}

/// The X-Ray parent of a new span, read from this thread's stack when the stack can tell:
/// `parent` is the span the subscriber gives as parent (`None`: the current span), and it must
/// be the top of the stack, entered once, and an X-Ray span. `None` means "ask the registry".
pub(crate) fn parent_from_stack(parent: Option<u64>) -> Option<Node> {
    CURRENT
        .try_with(|state| {
            let state = state.borrow();
            let (top, below) = state.stack.split_last()?;
            if parent.is_some_and(|p| p != top.span) || below.iter().any(|e| e.span == top.span) {
                return None;
            }
            top.node.clone()
        })
        .ok()
        .flatten()
}

/// The X-Ray parent of a new span created in a handle's `in_scope` (on this thread, with the
/// scope still open) whose registry ancestors cannot tell: the registry does not know the scope,
/// so a span entered inside it (a plain `info_span!`) hides it. The scope's node is the parent,
/// unless the nearest X-Ray ancestor the registry found (span `found`) was entered inside the
/// scope: it is then nearer, and `None` is returned (the caller keeps it), as when this thread
/// is in no scope.
pub(crate) fn scope_parent(found: Option<u64>) -> Option<Node> {
    CURRENT
        .try_with(|state| {
            let state = state.borrow();
            let at = state.stack.iter().rposition(|e| e.scope)?;
            if let Some(found) = found {
                if state.stack[at + 1..].iter().any(|e| e.span == found) {
                    return None;
                }
            }
            state.stack[at].node.clone()
        })
        .ok()
        .flatten()
}

/// The innermost X-Ray node entered on this thread (a step, an execution, or a run sampling
/// left out), for a handle that must know which.
pub(crate) fn innermost() -> Option<Node> {
    CURRENT
        .try_with(|state| {
            state
                .borrow()
                .stack
                .iter()
                .rev()
                .find_map(|e| e.node.clone())
        })
        .ok()
        .flatten()
}

/// Forgets span `span` as the one this thread created last (it closed without being entered
/// here): a later span with the same id must not be taken for it.
pub(crate) fn forget_created(span: u64) {
    let _ = CURRENT.try_with(|state| {
        let mut state = state.borrow_mut();
        if state.created.as_ref().is_some_and(|(id, _)| *id == span) {
            state.created = None;
        }
    });
}

/// A clone of the current step of this thread.
pub(crate) fn current() -> Option<StepRef> {
    with_current(Arc::clone)
}

/// The innermost entered X-Ray node, if it belongs to span `span` and is recorded (not left
/// out by sampling: then nothing is serialized for it).
pub(crate) fn node_if(span: u64) -> Option<Node> {
    CURRENT
        .try_with(|state| {
            state
                .borrow()
                .stack
                .last()
                .filter(|e| e.span == span)
                .and_then(|e| e.node.clone())
                .filter(|node| !matches!(node, Node::Skipped))
        })
        .ok()
        .flatten()
}
