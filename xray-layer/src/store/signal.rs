//! [`ChangeSignal`]: wakes a live tail when a store changed, whoever wrote the change.
//!
//! A live tail polls [`Store::changes_since`](super::Store::changes_since) on a timer; a store
//! that learns of changes as they commit (PostgreSQL's `LISTEN`/`NOTIFY`, fed by every process
//! that writes to the database) hands out a signal through
//! [`Store::change_signal`](super::Store::change_signal), so that the tail reads at once instead
//! of at its next tick. The signal carries no data: the tail always re-reads from its cursor, so
//! a missed or repeated wake-up costs a poll, never a change.
//!
//! It works with any async runtime ([`ChangeSignal::changed`] is a plain future) and from plain
//! threads ([`ChangeSignal::wait`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A counter of wake-ups, and who is waiting for the next one.
#[derive(Debug, Default)]
pub struct ChangeSignal {
    state: Mutex<State>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    wakers: Vec<Waker>,
}

impl ChangeSignal {
    /// A signal that has never fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times the signal fired so far: pass it to [`changed`](Self::changed) or
    /// [`wait`](Self::wait) to wait for the next one.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Fires: wakes everything waiting.
    pub fn notify(&self) {
        let wakers = {
            let mut state = self.lock();
            state.generation = state.generation.wrapping_add(1);
            std::mem::take(&mut state.wakers)
        };
        self.cond.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves, with the new generation, once the signal fired after `since`.
    pub fn changed(&self, since: u64) -> Changed<'_> {
        Changed {
            signal: self,
            since,
        }
    }

    /// Blocks until the signal fired after `since`, or `timeout` passed; returns the generation.
    pub fn wait(&self, since: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.generation == since {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .cond
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.generation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The future of [`ChangeSignal::changed`].
#[derive(Debug)]
pub struct Changed<'a> {
    signal: &'a ChangeSignal,
    since: u64,
}

impl Future for Changed<'_> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut state = self.signal.lock();
        if state.generation != self.since {
            return Poll::Ready(state.generation);
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_waiting_thread_wakes_on_notify_and_times_out_without() {
        let signal = Arc::new(ChangeSignal::new());
        let g = signal.generation();
        assert_eq!(signal.wait(g, Duration::from_millis(10)), g);
        let s = Arc::clone(&signal);
        let waiter = std::thread::spawn(move || s.wait(g, Duration::from_secs(30)));
        signal.notify();
        assert_eq!(waiter.join().ok(), Some(g + 1));
    }
}
