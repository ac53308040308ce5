//! The guard that keeps the writer alive and flushes it on drop.

use super::lane::Lanes;
use super::worker::Control;
use super::Counters;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Counts of what a layer recorded, wrote, dropped and failed to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Records queued for the writer. (Those queued after its last read at shutdown are
    /// counted in `dropped` too.)
    pub sent: u64,
    /// Records written to the store.
    pub written: u64,
    /// Records dropped because the queue was full, or sent while the writer stopped (queued
    /// after its last read, or sent after it closed the queues), or left when the writer died
    /// (a store that panicked), plus what arrived after its step had ended (each record
    /// through a handle, each evaluation).
    pub dropped: u64,
    /// Records the store failed to write.
    pub failed: u64,
    /// Panics caught in hooks and processors (the record was still written).
    pub hook_panics: u64,
    /// Executions not recorded because the layer samples them
    /// ([`Builder::sample`](crate::Builder::sample)): not a loss, a choice.
    pub sampled_out: u64,
    /// Spans accepted by the OTLP collector (feature `otlp`; 0 without an endpoint).
    pub spans_exported: u64,
    /// Spans dropped because the OTLP exporter's queue was full.
    pub spans_dropped: u64,
    /// Spans the OTLP collector refused, or that could not be sent after every retry.
    pub spans_failed: u64,
}

/// A layer's counts, apart from its guard: see [`XRayGuard::stats_handle`].
#[derive(Clone, Debug)]
pub struct StatsHandle {
    counters: Arc<Counters>,
    lanes: Arc<Lanes>,
}

impl StatsHandle {
    /// What was recorded, written, dropped and failed so far.
    pub fn stats(&self) -> RecorderStats {
        let c = &self.counters;
        // Records threads published after the writer's last read, once it stopped.
        let lost = self.lanes.count_lost();
        if lost > 0 {
            c.app.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        RecorderStats {
            sent: self.lanes.sent(),
            written: c.writer.written.load(Ordering::Relaxed),
            dropped: c.app.dropped.load(Ordering::Relaxed),
            failed: c.writer.failed.load(Ordering::Relaxed),
            hook_panics: c.writer.hook_panics.load(Ordering::Relaxed),
            sampled_out: c.app.sampled_out.load(Ordering::Relaxed),
            spans_exported: c.writer.spans_exported.load(Ordering::Relaxed),
            spans_dropped: c.writer.spans_dropped.load(Ordering::Relaxed),
            spans_failed: c.writer.spans_failed.load(Ordering::Relaxed),
        }
    }
}

/// Returned by [`Builder::build`](crate::Builder::build) beside the layer: keep it alive for as
/// long as the program records. Dropping it writes everything queued, waiting at most the
/// builder's `shutdown_timeout`, and stops the writer thread. If the writer cannot finish in
/// time (the database is locked by another program), the program is not held up: the guard
/// says on stderr how many records were not written, and leaves the writer to finish or to die
/// with the process.
///
/// ```
/// let (layer, guard) = xray::layer().memory().build()?;
/// # drop(layer);
/// guard.flush(); // write everything queued so far
/// assert_eq!(guard.stats().dropped, 0);
/// # Ok::<(), xray::Error>(())
/// ```
#[must_use = "dropping the guard stops the writer: keep it until the program ends"]
#[derive(Debug)]
pub struct XRayGuard {
    control: crossbeam_channel::Sender<Control>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    lanes: Arc<Lanes>,
    shutdown_timeout: Duration,
}

impl XRayGuard {
    pub(crate) fn new(
        control: crossbeam_channel::Sender<Control>,
        writer: JoinHandle<()>,
        counters: Arc<Counters>,
        lanes: Arc<Lanes>,
        shutdown_timeout: Duration,
    ) -> Self {
        XRayGuard {
            control,
            writer: Some(writer),
            counters,
            lanes,
            shutdown_timeout,
        }
    }

    /// Writes everything queued before this call; waits at most the shutdown timeout.
    /// Returns `false` if the writer did not finish in time (or has stopped).
    pub fn flush(&self) -> bool {
        self.flush_timeout(self.shutdown_timeout)
    }

    /// [`flush`](Self::flush) with an explicit bound on the wait.
    pub fn flush_timeout(&self, timeout: Duration) -> bool {
        self.request(Control::Flush, timeout)
    }

    /// What was recorded, written, dropped and failed so far.
    pub fn stats(&self) -> RecorderStats {
        self.stats_handle().stats()
    }

    /// The layer's counts, readable after the guard is dropped (as `tracing-appender`'s
    /// `ErrorCounter` is). Threads still recording while the writer stops: what they queued
    /// before its last read is written, what they queue after is counted as dropped (in the
    /// database's counts too, if it came before the writer's final count; else only here).
    ///
    /// ```
    /// let (layer, guard) = xray::layer().memory().build()?;
    /// let counts = guard.stats_handle();
    /// drop(guard);
    /// assert_eq!(counts.stats().dropped, 0);
    /// # drop(layer);
    /// # Ok::<(), xray::Error>(())
    /// ```
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            counters: Arc::clone(&self.counters),
            lanes: Arc::clone(&self.lanes),
        }
    }

    fn request(
        &self,
        make: impl FnOnce(crossbeam_channel::Sender<()>) -> Control,
        timeout: Duration,
    ) -> bool {
        let Some(writer) = &self.writer else {
            return false;
        };
        let (ack, done) = crossbeam_channel::bounded(1);
        if self.control.send(make(ack)).is_err() {
            return false;
        }
        writer.thread().unpark();
        done.recv_timeout(timeout).is_ok()
    }
}

impl Drop for XRayGuard {
    fn drop(&mut self) {
        let finished = self.request(Control::Shutdown, self.shutdown_timeout);
        if let Some(writer) = self.writer.take() {
            if finished {
                let _ = writer.join();
                return;
            }
            // The writer is still busy (a locked database): leave it detached rather than hang
            // the program's exit, and say what it had not written (stderr is what is left to
            // say it on: the database is what it cannot reach). Or it had died (a store of the
            // user's panicked, which was reported then): say so, not that it timed out.
            let ended = writer.is_finished();
            if let Some(message) = unwritten(&self.stats(), ended, self.shutdown_timeout) {
                let _ = writeln!(std::io::stderr(), "{message}");
            }
            if ended {
                let _ = writer.join();
            }
        }
    }
}

/// What the guard says on stderr when the writer did not answer its shutdown: `ended` when its
/// thread had already stopped (it died), else it was still busy after `timeout`.
fn unwritten(s: &RecorderStats, ended: bool, timeout: Duration) -> Option<String> {
    if ended {
        return Some(format!(
            "X-Ray: the writer thread had stopped early (a panic, reported when it happened): \
             {} records were counted as dropped and {} as failed",
            s.dropped, s.failed
        ));
    }
    let unwritten = s.sent.saturating_sub(s.written + s.failed);
    (unwritten > 0).then(|| {
        format!(
            "X-Ray: {unwritten} records not written: the writer did not finish within the \
             shutdown timeout ({timeout:?})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_that_died_is_not_said_to_have_timed_out() {
        let s = RecorderStats {
            sent: 20,
            written: 0,
            dropped: 13,
            failed: 7,
            ..Default::default()
        };
        let timeout = Duration::from_secs(5);
        let died = unwritten(&s, true, timeout).unwrap_or_default();
        assert!(died.contains("stopped early"), "{died}");
        assert!(
            died.contains("13 records were counted as dropped and 7 as failed"),
            "{died}"
        );
        assert!(!died.contains("timeout"), "{died}");
        let busy = unwritten(&s, false, timeout).unwrap_or_default();
        assert!(busy.contains("13 records not written"), "{busy}");
        assert!(busy.contains("shutdown timeout (5s)"), "{busy}");
        let done = RecorderStats {
            sent: 20,
            written: 20,
            ..Default::default()
        };
        assert_eq!(unwritten(&done, false, timeout), None);
    }
}
