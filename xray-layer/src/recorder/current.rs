//! Which X-Ray span is current on each thread: the thread's stack of entered spans.
//!
//! While a span is entered on a thread, the layer also pushes its [`Node`] on that thread's
//! stack, so the recording calls ([`crate::evaluate`], [`crate::select`], …) find their step with
//! one thread-local read instead of a registry lookup, and a new span finds its parent on top
//! of the stack. Each entered step also has the thread's own evaluation arena ([`Local`]):
//! evaluations are appended there without a lock and handed to the step when the thread exits
//! it.

use super::arena::EvalArena;
use super::state::{Node, StepRef};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    let Some(Entry { node, local, .. }) = entry else {
        return;
    };
    if let Some(mut local) = local {
        if let Some(Node::Step(step)) = &node {
            if !local.arena.is_empty() {
                step.absorb(&mut local.arena);
            }
        }
        keep_spare(local);
    }
    // A step its function ended (`#[xray::step]`'s guard): its span closes next, and the
    // state is kept for this thread's next step (reused once nothing else refers to it).
    if let Some(Node::Step(step)) = node {
        if step.has_ended() {
            crate::recycle::keep_step(step);
        }
    }
}

/// What this thread's innermost entry for span `span` holds, for a `#[xray::step]` guard.
pub(crate) enum Entered {
    /// A step the layer records: the guard finds it there again ([`with_entered`],
    /// [`end_entered_step`]).
    Step,
    /// An execution the layer records.
    Other(Node),
    /// Nothing recorded: no X-Ray span, or a run sampling leaves out.
    Nothing,
}

/// What the innermost entry for span `span` (the top of the stack) holds.
pub(crate) fn entered(span: u64) -> Entered {
    CURRENT
        .try_with(|state| {
            let state = state.borrow();
            match state.stack.last().filter(|e| e.span == span) {
                Some(Entry {
                    node: Some(Node::Step(_)),
                    ..
                }) => Entered::Step,
                Some(Entry {
                    node: Some(node @ Node::Execution(_)),
                    ..
                }) => Entered::Other(node.clone()),
                _ => Entered::Nothing,
            }
        })
        .unwrap_or(Entered::Nothing)
}

/// Runs `f` with the node of the innermost entry for span `span`, if there is one.
pub(crate) fn with_entered(span: u64, f: impl FnOnce(&Node)) {
    let _ = CURRENT.try_with(|state| {
        let state = state.borrow();
        if let Some(node) = state
            .stack
            .iter()
            .rev()
            .find(|e| e.span == span)
            .and_then(|e| e.node.as_ref())
        {
            f(node);
        }
    });
}

/// Runs `end` with the step of the innermost entry for span `span`, and the evaluations this
/// thread made in it (unless an evaluation builder holds them): for the step to end, with them,
/// before its span is exited. Returns whether there was such a step.
///
/// `end` runs with this thread's stack borrowed: it must not enter, exit or record into spans.
pub(crate) fn end_entered_step(
    span: u64,
    end: impl FnOnce(&StepRef, Option<&mut EvalArena>),
) -> bool {
    CURRENT
        .try_with(|state| {
            let mut state = state.borrow_mut();
            let Some(entry) = state.stack.iter_mut().rev().find(|e| e.span == span) else {
                return false;
            };
            let Some(Node::Step(step)) = &entry.node else {
                return false;
            };
            let local = match (&mut entry.local, entry.lent) {
                (Some(local), false) => Some(&mut local.arena),
                _ => None,
            };
            end(step, local);
            true
        })
        .unwrap_or(false)
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
                    if let Some(arena) = step.sink.recycler.take_arena() {
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

thread_local! {
    /// The span whose `#[xray::step]` guard is closing it on this thread, its step already
    /// ended (0: none). Set only while the guard drops the span, so that a later span with the
    /// same id is never taken for it.
    static ENDING: Cell<u64> = const { Cell::new(0) };
}

/// Runs `close` (the guard's drop of span `span`, whose step it ended) with `span` marked as
/// ended by its guard: the layer's `on_close` then has nothing to look up.
pub(crate) fn closing_ended(span: u64, close: impl FnOnce()) {
    /// Puts the mark back as it was, also if `close` unwinds (another layer panicking in its
    /// `on_exit` or `on_close`): a mark left behind would make a later span with the same id
    /// look ended.
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(before) = self.0 {
                let _ = ENDING.try_with(|e| e.set(before));
            }
        }
    }
    let _restore = Restore(ENDING.try_with(|e| e.replace(span)).ok());
    close();
}

/// Whether `span` is closing from its guard, which ended its step (see [`closing_ended`]).
pub(crate) fn ended_by_guard(span: u64) -> bool {
    ENDING.try_with(Cell::get).is_ok_and(|e| e == span)
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
