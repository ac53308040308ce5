//! Memory that is reused by the thread that allocated it instead of being freed elsewhere.
//!
//! Memory allocated on one thread and freed on another costs the allocating thread dearly:
//! glibc's allocator then takes its arena lock from both threads (futex waits), and the freed
//! memory is not reused by the thread that allocates. DESIGN's measured fact: ~0.5 µs per
//! record with a 1 KB string. So:
//!
//! - a step's state and its recorded values ([`crate::tape`]) never reach the writer (its records are copied into
//!   the thread's lane): the thread that ends a step keeps them in a small cache of its own
//!   and reuses them for its next step, still in its core's cache;
//! - evaluation arenas do reach the writer (moved, not copied: a step may judge thousands of
//!   candidates); it gives them back to the layer's [`Recycler`] once they are written, and
//!   the threads take them from there.
//!
//! Everything is bounded: what does not fit is freed, and strings or arenas that grew unusually
//! large are freed rather than kept.

use crate::recorder::arena::EvalArena;
use crate::recorder::state::StepState;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

/// Buffers larger than this are freed, not kept.
const MAX_BUFFER_CAPACITY: usize = 16 * 1024;
/// Buffers smaller than this are freed, not kept: a payload would have to grow them.
const MIN_BUFFER_CAPACITY: usize = 128;
/// Arenas larger than this are freed, not kept.
const MAX_ARENA_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of arenas a layer keeps for reuse. A writer that is behind holds the arenas of every
/// step queued; once it catches up they come back here, and the next steps reuse them instead
/// of page-faulting fresh memory in (~10% of an evaluation's cost on the application thread).
const POOLED_ARENA_BYTES: usize = 96 * 1024 * 1024;
/// Buffers kept per thread.
const THREAD_CACHE: usize = 64;

/// The pools of one layer.
#[derive(Debug, Default)]
pub(crate) struct Recycler {
    /// Arenas, and the bytes they hold.
    arenas: Mutex<(Vec<EvalArena>, usize)>,
}

/// Step states kept per thread.
const THREAD_STEPS: usize = 64;

thread_local! {
    static STEPS: RefCell<Vec<Arc<StepState>>> = const { RefCell::new(Vec::new()) };
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

impl Recycler {
    /// A step state from this thread's cache: the state of a step this thread ended, its
    /// memory still in this core's cache. Reuse it only if nothing else refers to it
    /// (`Arc::get_mut`): a handle the program kept, or the span of a step [`keep_step`] kept.
    pub(crate) fn take_step(&self) -> Option<Arc<StepState>> {
        STEPS
            .try_with(|cache| cache.borrow_mut().pop())
            .ok()
            .flatten()
    }

    /// Keeps the state of a step that ended on this thread for the next one, if nothing else
    /// refers to it (a [`StepHandle`](crate::StepHandle) kept by the program).
    pub(crate) fn give_step(&self, mut step: Arc<StepState>) {
        if Arc::get_mut(&mut step).is_none() {
            return;
        }
        keep_step(step);
    }
}

/// Keeps the state of a step that ended on this thread for the next one, before its span
/// (which refers to it too) has closed: the span closes right after, and [`Recycler::take_step`]'s
/// caller reuses the state only if nothing else refers to it by then (it asks `Arc::get_mut`,
/// as it must anyway to change it).
pub(crate) fn keep_step(step: Arc<StepState>) {
    let _ = STEPS.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        // Once is enough (two X-Ray layers in one subscriber both see the span's exit).
        if cache.last().is_some_and(|top| Arc::ptr_eq(top, &step)) {
            return;
        }
        if cache.len() < THREAD_STEPS {
            cache.push(step);
        }
    });
}

impl Recycler {
    /// An emptied arena with room from an earlier step, if one is pooled.
    pub(crate) fn take_arena(&self) -> Option<EvalArena> {
        let mut pool = self.arenas.lock().unwrap_or_else(PoisonError::into_inner);
        let arena = pool.0.pop()?;
        pool.1 = pool.1.saturating_sub(arena.capacity_bytes());
        Some(arena)
    }

    /// Gives back an arena (the writer, once its rows are written).
    pub(crate) fn give_arena(&self, mut arena: EvalArena) {
        let bytes = arena.capacity_bytes();
        if bytes == 0 || bytes > MAX_ARENA_BYTES {
            return;
        }
        arena.clear_all();
        let extra = {
            let mut pool = self.arenas.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.1 + bytes <= POOLED_ARENA_BYTES {
                pool.1 += bytes;
                pool.0.push(arena);
                None
            } else {
                Some(arena)
            }
        };
        drop(extra);
    }
}

/// A buffer from this thread's cache (empty, with room for a small payload), or a new one.
pub(crate) fn take_buffer() -> Vec<u8> {
    BUFFERS
        .try_with(|cache| cache.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(2 * MIN_BUFFER_CAPACITY))
}

/// Keeps an unneeded buffer in this thread's cache (emptied), or frees it.
pub(crate) fn give_buffer(mut s: Vec<u8>) {
    if !(MIN_BUFFER_CAPACITY..=MAX_BUFFER_CAPACITY).contains(&s.capacity()) {
        return;
    }
    s.clear();
    let _ = BUFFERS.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < THREAD_CACHE {
            cache.push(s);
        }
    });
}
