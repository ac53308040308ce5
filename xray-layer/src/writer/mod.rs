//! From the application thread to the store, without making the application wait.
//!
//! The layer hands each finished record to a [`Sink`]: a bounded crossbeam channel. The writer
//! thread ([`worker`]) does not block in `recv()` (a send to a parked receiver costs the sender a
//! thread wake-up, ~3.4 µs on these machines); it sleeps for the flush interval and drains the
//! channel, and a sender wakes it only every batch of records (or of evaluation rows), counted
//! on the senders' side. A full queue drops the whole record and counts it (or blocks, with
//! [`Backpressure::Block`]). What the writer is done with goes back to the senders through the
//! layer's [`Recycler`](crate::recycle::Recycler) instead of being freed on the writer thread.
//!
//! The [`XRayGuard`] returned by `build()` flushes on drop, with a bounded wait.

mod guard;
pub(crate) mod worker;

pub use guard::{RecorderStats, StatsHandle, XRayGuard};

use crate::recorder::state::{ExecutionState, StepBuffer, StepState};
use crate::recycle::Recycler;
use crossbeam_channel::{Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// A step that ended: its shared state and what it recorded, evaluations still compact. The
/// writer thread takes it out of the step and turns it into a [`StepRecord`](crate::model::StepRecord).
#[derive(Debug)]
pub(crate) struct PendingStep {
    pub(crate) state: Arc<StepState>,
    pub(crate) buffer: StepBuffer,
}

/// What travels through the channel: one pointer, so a send writes as few bytes as possible
/// into memory the writer thread reads.
#[derive(Debug)]
pub(crate) enum Envelope {
    /// A step began; the writer builds its start record from the shared state.
    StepStarted(Arc<StepState>),
    /// A step ended; the writer takes what it recorded out of its buffer.
    StepEnded(Arc<StepState>),
    /// An execution began; the writer builds its start record from the shared state.
    ExecutionStarted(Arc<ExecutionState>),
    /// An execution ended (its end time is in its outcome).
    ExecutionEnded(Arc<ExecutionState>),
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
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Evaluation rows queued so far (only grows): a sender wakes the writer each time it
    /// crosses a multiple of [`WAKE_AT_ROWS`], whatever the number of records.
    pub(crate) rows: AtomicUsize,
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

/// Queued evaluation rows after which a sender wakes the writer early.
const WAKE_AT_ROWS: usize = 8_192;

/// The sending end, shared by every span of one layer.
#[derive(Debug)]
pub(crate) struct Sink {
    tx: Sender<Envelope>,
    backpressure: Backpressure,
    /// A sender wakes the writer every `wake_at` records.
    wake_at: u64,
    wake_pending: Arc<AtomicBool>,
    writer: Thread,
    pub(crate) counters: Arc<Counters>,
    /// Memory the writer gives back for reuse.
    pub(crate) recycler: Arc<Recycler>,
}

impl Sink {
    pub(crate) fn new(
        tx: Sender<Envelope>,
        backpressure: Backpressure,
        wake_at: usize,
        wake_pending: Arc<AtomicBool>,
        writer: Thread,
        counters: Arc<Counters>,
        recycler: Arc<Recycler>,
    ) -> Self {
        Sink {
            tx,
            backpressure,
            wake_at: wake_at.max(1) as u64,
            wake_pending,
            writer,
            counters,
            recycler,
        }
    }

    /// Queues a step's or an execution's start or end; `rows` is the number of evaluation rows
    /// it carries.
    pub(crate) fn send(&self, envelope: Envelope, rows: usize) {
        if let Err(envelope) = self.deliver(envelope, rows) {
            match &envelope {
                Envelope::StepStarted(step) | Envelope::StepEnded(step) => {
                    self.dropped(&step.execution)
                }
                Envelope::ExecutionStarted(execution) | Envelope::ExecutionEnded(execution) => {
                    self.dropped(execution)
                }
            }
        }
    }

    /// Sends, or hands the envelope back when the queue is full (and the policy is to drop) or
    /// the writer has stopped.
    ///
    /// The writer is woken every `wake_at` records and every [`WAKE_AT_ROWS`] rows, counted by
    /// the senders alone: asking the channel for its length would read the writer's cache line
    /// on every record.
    fn deliver(&self, envelope: Envelope, rows: usize) -> Result<(), Envelope> {
        match self.tx.try_send(envelope) {
            Ok(()) => {
                self.sent(rows);
                Ok(())
            }
            Err(TrySendError::Full(envelope)) => match self.backpressure {
                Backpressure::Drop => Err(envelope),
                // The writer itself (a hook that runs an instrumented function under a global
                // subscriber) would wait for room only it can make: it drops instead.
                Backpressure::Block if std::thread::current().id() == self.writer.id() => {
                    Err(envelope)
                }
                Backpressure::Block => {
                    self.writer.unpark();
                    match self.tx.send(envelope) {
                        Ok(()) => {
                            self.sent(rows);
                            Ok(())
                        }
                        Err(err) => Err(err.into_inner()),
                    }
                }
            },
            Err(TrySendError::Disconnected(envelope)) => Err(envelope),
        }
    }

    fn sent(&self, rows: usize) {
        let app = &self.counters.app;
        let sent = app.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let mut wake = sent % self.wake_at == 0;
        if rows > 0 {
            let before = app.rows.fetch_add(rows, Ordering::Relaxed);
            wake |= before / WAKE_AT_ROWS != (before + rows) / WAKE_AT_ROWS;
        }
        if wake && !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.writer.unpark();
        }
    }

    fn dropped(&self, execution: &ExecutionState) {
        self.counters.app.dropped.fetch_add(1, Ordering::Relaxed);
        execution.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
