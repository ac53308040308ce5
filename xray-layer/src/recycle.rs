//! Memory that goes back to the application threads instead of being freed by the writer.
//!
//! A step's state, its JSON strings and its evaluation arena are allocated on the application
//! thread and read last on the writer thread. Freed there, each of them would cost the
//! application thread dearly: glibc's allocator then takes its arena lock from both threads
//! (futex waits), and the freed memory is not reused by the thread that allocates. DESIGN's
//! measured fact: ~0.5 µs per record with a 1 KB string. So the writer hands them back here once
//! a batch is written, and the application threads take them again:
//!
//! - a [`Recycler`] per layer, shared by the layer and its writer: the writer gives back a
//!   batch at a time (one lock), the application threads take a few at a time (one lock);
//! - a small cache per application thread in front of it, so most takes touch no lock at all.
//!
//! Everything is bounded: what does not fit is freed, and strings or arenas that grew unusually
//! large are freed rather than kept.

use crate::recorder::arena::EvalArena;
use crate::recorder::state::StepState;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

/// Strings larger than this are freed, not kept.
const MAX_STRING_CAPACITY: usize = 16 * 1024;
/// Strings smaller than this are freed, not kept: a JSON payload would have to grow them.
const MIN_STRING_CAPACITY: usize = 128;
/// Arenas larger than this are freed, not kept.
const MAX_ARENA_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of arenas a layer keeps for reuse. A writer that is behind holds the arenas of every
/// step queued; once it catches up they come back here, and the next steps reuse them instead
/// of page-faulting fresh memory in (~10% of an evaluation's cost on the application thread).
const POOLED_ARENA_BYTES: usize = 96 * 1024 * 1024;
/// Strings kept per thread.
const THREAD_CACHE: usize = 64;
/// Items moved from a layer's pool to a thread's cache at once.
const REFILL: usize = 32;

/// A bounded stack of reusable items, shared by the writer and the application threads.
#[derive(Debug)]
struct Pool<T> {
    items: Mutex<Vec<T>>,
    max: usize,
}

impl<T> Pool<T> {
    fn new(max: usize) -> Self {
        Pool {
            items: Mutex::new(Vec::new()),
            max,
        }
    }

    /// Keeps what fits of `items` (emptied); the rest is freed after the lock is released.
    fn give(&self, items: &mut Vec<T>) {
        if items.is_empty() {
            return;
        }
        let extra = {
            let mut pool = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            let room = self.max.saturating_sub(pool.len()).min(items.len());
            let extra = items.split_off(room);
            pool.append(items);
            extra
        };
        drop(extra);
    }

    /// Moves up to `n` items into `into`.
    fn take(&self, into: &mut Vec<T>, n: usize) {
        let mut pool = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let from = pool.len().saturating_sub(n);
        into.extend(pool.drain(from..));
    }
}

/// The pools of one layer.
#[derive(Debug)]
pub(crate) struct Recycler {
    steps: Pool<Arc<StepState>>,
    strings: Pool<String>,
    /// Arenas, and the bytes they hold.
    arenas: Mutex<(Vec<EvalArena>, usize)>,
}

impl Default for Recycler {
    fn default() -> Self {
        Recycler {
            steps: Pool::new(2048),
            strings: Pool::new(4096),
            arenas: Mutex::new((Vec::new(), 0)),
        }
    }
}

thread_local! {
    static STEPS: RefCell<Vec<Arc<StepState>>> = const { RefCell::new(Vec::new()) };
    static STRINGS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl Recycler {
    /// A step state that nothing else refers to, from this thread's cache or the pool.
    pub(crate) fn take_step(&self) -> Option<Arc<StepState>> {
        STEPS
            .try_with(|cache| {
                let mut cache = cache.borrow_mut();
                if cache.is_empty() {
                    self.steps.take(&mut cache, REFILL);
                }
                cache.pop()
            })
            .ok()
            .flatten()
    }

    /// Makes sure this thread's string cache is not empty, for [`take_string`].
    pub(crate) fn refill_strings(&self) {
        let _ = STRINGS.try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() < 4 {
                self.strings.take(&mut cache, REFILL);
            }
        });
    }

    /// Gives back step states (the writer, once their records are written). Those still
    /// referred to elsewhere (a [`StepHandle`](crate::StepHandle) kept by the program) are
    /// simply dropped.
    pub(crate) fn give_steps(&self, steps: &mut Vec<Arc<StepState>>) {
        steps.retain_mut(|step| Arc::get_mut(step).is_some());
        self.steps.give(steps);
    }

    /// Gives back strings (the writer), emptied; large ones are freed.
    pub(crate) fn give_strings(&self, strings: &mut Vec<String>) {
        strings.retain_mut(|s| {
            s.clear();
            (MIN_STRING_CAPACITY..=MAX_STRING_CAPACITY).contains(&s.capacity())
        });
        self.strings.give(strings);
    }
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

/// A string from this thread's cache (empty, with room for a small JSON payload), or a new one.
pub(crate) fn take_string() -> String {
    STRINGS
        .try_with(|cache| cache.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| String::with_capacity(2 * MIN_STRING_CAPACITY))
}

/// Keeps an unneeded string in this thread's cache (emptied), or frees it.
pub(crate) fn give_string(mut s: String) {
    if !(MIN_STRING_CAPACITY..=MAX_STRING_CAPACITY).contains(&s.capacity()) {
        return;
    }
    s.clear();
    let _ = STRINGS.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < THREAD_CACHE {
            cache.push(s);
        }
    });
}
