//! From the application thread to the store, without making the application wait.
//!
//! The layer hands each record to a [`Sink`], which writes it as bytes ([`codec`]) into the
//! recording thread's own lane ([`lane`]): a bounded single-producer ring that the writer
//! thread ([`worker`]) reads a chunk at a time. The writer never reads a step's shared state,
//! and the thread never waits for the writer: it does not block, and it wakes the writer only
//! every batch of records (or of evaluation rows, or half a lane), counted on its own lane (a
//! wake-up costs the sender ~3.4 µs on these machines). The writer otherwise sleeps for the
//! flush interval. A full lane drops the whole record and counts it (or waits, with
//! [`Backpressure::Block`]). Evaluation arenas the writer is done with go back to the threads
//! through the layer's [`Recycler`](crate::recycle::Recycler) instead of being freed on the
//! writer thread. A batch the store fails to write is counted as failed; what it leaves
//! half-stored (a run's end, a step's end) is repaired by the next batch written ([`repair`]).
//!
//! The [`XRayGuard`] returned by `build()` flushes on drop, with a bounded wait.

pub(crate) mod codec;
mod guard;
pub(crate) mod lane;
pub(crate) mod priority;
pub(crate) mod repair;
pub(crate) mod worker;

pub use guard::{RecorderStats, StatsHandle, XRayGuard};

use crate::recycle::Recycler;
use codec::Encoder;
use lane::{Lanes, Wake};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::Thread;

/// What to do when the queue to the writer is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backpressure {
    /// Drop the record and count it (the default: the application never waits for X-Ray).
    #[default]
    Drop,
    /// Wait for room. Use when losing a record is worse than slowing the application. (The
    /// writer thread itself never waits: a record made there, by an instrumented function a
    /// hook calls, is dropped and counted when the queue is full.)
    Block,
}

/// Counters shared by the senders, the writer and the guard.
///
/// The senders' counters and the writer's live on separate cache lines: on a machine where a
/// cache line takes ~0.2 µs to move between cores, a counter that both sides write on every
/// record would cost each step more than the rest of its bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) app: CachePadded<AppCounters>,
    pub(crate) writer: CachePadded<WriterCounters>,
}

/// Written by the application threads only.
#[derive(Debug, Default)]
pub(crate) struct AppCounters {
    pub(crate) dropped: AtomicU64,
    /// Executions the layer's sampling left out.
    pub(crate) sampled_out: AtomicU64,
}

/// Written by the writer thread only.
#[derive(Debug, Default)]
pub(crate) struct WriterCounters {
    pub(crate) written: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) hook_panics: AtomicU64,
    /// OTLP export (feature `otlp`): written by the writer (dropped) and the exporter thread.
    pub(crate) spans_exported: AtomicU64,
    pub(crate) spans_dropped: AtomicU64,
    pub(crate) spans_failed: AtomicU64,
}

/// A value alone on its cache lines (128 bytes: adjacent-line prefetchers pair lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Evaluation rows a lane publishes before it wakes the writer early.
const WAKE_AT_ROWS: usize = 8_192;

/// The sending end, shared by every span of one layer.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) lanes: Arc<Lanes>,
    backpressure: Backpressure,
    /// A lane wakes the writer every `wake_at` records.
    wake_at: u64,
    wake_pending: Arc<AtomicBool>,
    writer: Thread,
    pub(crate) counters: Arc<Counters>,
    /// Memory the writer gives back for reuse.
    pub(crate) recycler: Arc<Recycler>,
}

impl Sink {
    pub(crate) fn new(
        lanes: Arc<Lanes>,
        backpressure: Backpressure,
        wake_at: usize,
        wake_pending: Arc<AtomicBool>,
        writer: Thread,
        counters: Arc<Counters>,
        recycler: Arc<Recycler>,
    ) -> Self {
        Sink {
            lanes,
            backpressure,
            wake_at: wake_at.max(1) as u64,
            wake_pending,
            writer,
            counters,
            recycler,
        }
    }

    /// Queues one record, written by `encode` into this thread's lane: a step's or an
    /// execution's start or end, carrying `rows` evaluation rows. A record the queue has no
    /// room for (or sent after the writer stopped) is counted as dropped, in the layer's
    /// counts and in its execution's (`execution_dropped`), and `false` is returned.
    ///
    /// The writer is woken every `wake_at` records, [`WAKE_AT_ROWS`] rows or half a lane,
    /// counted by the lane on this thread: nothing shared is written per record (the lane's
    /// count of records sent is written by this thread alone).
    pub(crate) fn send(
        &self,
        execution_dropped: &AtomicU64,
        rows: usize,
        encode: impl FnOnce(&mut Encoder),
    ) -> bool {
        self.send_records(execution_dropped, 1, 1, rows, |encoder, _| {
            encode(encoder);
            None
        })
    }

    /// [`Sink::send`] for a step's start or end, which may be a record the writer makes
    /// `records` records of (a root step's, which starts or ends its run too): `records` are
    /// counted as sent, or `dropped_if_refused` as dropped (fewer when the caller sends part of
    /// it again alone). `encode` gets the id of the last step start the thread's lane carried,
    /// and returns the id of the step the record starts (see [`Lanes::publish`]).
    pub(crate) fn send_records(
        &self,
        execution_dropped: &AtomicU64,
        records: u64,
        dropped_if_refused: u64,
        rows: usize,
        encode: impl FnOnce(&mut Encoder, Option<uuid::Uuid>) -> Option<uuid::Uuid>,
    ) -> bool {
        let block = self.backpressure == Backpressure::Block
            // The writer itself (a hook that runs an instrumented function under a global
            // subscriber) would wait for room only it can make: it drops instead.
            && std::thread::current().id() != self.writer.id();
        let wait = || {
            if !block {
                return false;
            }
            self.wake();
            std::thread::sleep(std::time::Duration::from_micros(50));
            true
        };
        let wake_at = Wake {
            records: self.wake_at,
            rows: WAKE_AT_ROWS,
        };
        match self
            .lanes
            .publish(records, rows, encode, wait, &wake_at, || self.wake())
        {
            Ok(()) => true,
            Err(_) => {
                self.counters
                    .app
                    .dropped
                    .fetch_add(dropped_if_refused, Ordering::Relaxed);
                execution_dropped.fetch_add(dropped_if_refused, Ordering::Relaxed);
                false
            }
        }
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.writer.unpark();
        }
    }
}
