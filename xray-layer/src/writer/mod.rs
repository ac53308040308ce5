//! From the application thread to the store, without making the application wait.
//!
//! The layer hands each finished record to a [`Sink`]: a bounded crossbeam channel. The writer
//! thread ([`worker`]) does not block in `recv()` (a send to a parked receiver costs the sender a
//! thread wake-up, ~3.4 µs on these machines); it sleeps for the flush interval and drains the
//! channel, and a sender wakes it only when the queue reaches a batch threshold. A full queue
//! drops the whole record and counts it (or blocks, with [`Backpressure::Block`]).
//!
//! The [`XRayGuard`] returned by `build()` flushes on drop, with a bounded wait.

mod guard;
pub(crate) mod worker;

pub use guard::{RecorderStats, XRayGuard};

use crate::model::Record;
use crate::recorder::state::{ExecutionState, StepBuffer, StepState};
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
    /// Wait for room. Use when losing a record is worse than slowing the application.
    Block,
}

/// A step that ended: its shared state and what it recorded, evaluations still compact. The
/// writer thread turns it into a [`StepRecord`](crate::model::StepRecord).
#[derive(Debug)]
pub(crate) struct PendingStep {
    pub(crate) state: Arc<StepState>,
    pub(crate) buffer: StepBuffer,
}

/// What travels through the channel.
#[derive(Debug)]
pub(crate) enum Envelope {
    Record(Record),
    /// A step began; the writer builds its start record from the shared state.
    StepStarted(Arc<StepState>),
    Step(Box<PendingStep>),
}

/// Counters shared by the senders, the writer and the guard.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) hook_panics: AtomicU64,
    /// Evaluation rows queued: the writer is woken early when they pile up, whatever the
    /// number of records.
    pub(crate) pending_rows: AtomicUsize,
}

/// Queued evaluation rows at which a sender wakes the writer early.
const WAKE_AT_ROWS: usize = 8_192;

/// The sending end, shared by every span of one layer.
#[derive(Debug)]
pub(crate) struct Sink {
    tx: Sender<Envelope>,
    backpressure: Backpressure,
    /// Queue length at which a sender wakes the writer early.
    wake_at: usize,
    wake_pending: Arc<AtomicBool>,
    writer: Thread,
    pub(crate) counters: Arc<Counters>,
}

impl Sink {
    pub(crate) fn new(
        tx: Sender<Envelope>,
        backpressure: Backpressure,
        wake_at: usize,
        wake_pending: Arc<AtomicBool>,
        writer: Thread,
        counters: Arc<Counters>,
    ) -> Self {
        Sink {
            tx,
            backpressure,
            wake_at: wake_at.max(1),
            wake_pending,
            writer,
            counters,
        }
    }

    /// Queues `envelope`; never blocks with [`Backpressure::Drop`].
    pub(crate) fn send(&self, envelope: Envelope, execution: &ExecutionState) {
        let rows = match &envelope {
            Envelope::Step(pending) => pending.buffer.evaluations.rows(),
            _ => 0,
        };
        // Counted before the send so the writer's subtraction never runs first.
        let queued_rows = self
            .counters
            .pending_rows
            .fetch_add(rows, Ordering::Relaxed)
            + rows;
        match self.tx.try_send(envelope) {
            Ok(()) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                if (self.tx.len() >= self.wake_at || queued_rows >= WAKE_AT_ROWS)
                    && !self.wake_pending.swap(true, Ordering::AcqRel)
                {
                    self.writer.unpark();
                }
            }
            Err(TrySendError::Full(envelope)) => match self.backpressure {
                Backpressure::Drop => {
                    self.counters
                        .pending_rows
                        .fetch_sub(rows, Ordering::Relaxed);
                    self.dropped(execution);
                }
                Backpressure::Block => {
                    self.writer.unpark();
                    if self.tx.send(envelope).is_ok() {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.counters
                            .pending_rows
                            .fetch_sub(rows, Ordering::Relaxed);
                        self.dropped(execution);
                    }
                }
            },
            Err(TrySendError::Disconnected(_)) => {
                self.counters
                    .pending_rows
                    .fetch_sub(rows, Ordering::Relaxed);
                self.dropped(execution);
            }
        }
    }

    fn dropped(&self, execution: &ExecutionState) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        execution.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
