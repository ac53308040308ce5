//! The time of records (unix microseconds), read in a few nanoseconds.
//!
//! Every step reads the time twice (its start and its end). Reading the system's wall clock,
//! `clock_gettime(CLOCK_REALTIME)`, costs ~27 ns on the benchmarks' VM (the kernel's paravirtual
//! clock page and a fenced read of the CPU's time-stamp counter): two per step were a tenth of
//! a step's cost. X-Ray instead reads the time-stamp counter itself, through
//! [`quanta`](https://docs.rs/quanta) (one unfenced `rdtsc`, ~10 ns; calibrated once per process
//! against the monotonic clock, in at most 200 ms, when the first layer is built), and adds it
//! to an **anchor**: a reading of the wall clock that each thread takes when it first needs the
//! time, and again once [`REANCHOR_AFTER_NS`] have passed on the counter.
//!
//! So a record's time is the wall clock's to within what the counter's rate drifts from it in
//! a second: the calibration's rate error (quanta stops calibrating once its mean error is
//! under 10 ns, after at least half a millisecond: up to ~10 µs per second) and the system
//! clock's own slewing by NTP (at most 500 µs per second, usually far less). Times read on one
//! thread never go back: a reading is at least the thread's last one, so a renewed anchor that
//! is behind makes the clock stand still for a moment instead. Where quanta finds no invariant
//! counter (and on targets without one), it reads the monotonic clock instead, and the anchors
//! work the same way.

use std::cell::Cell;
use std::sync::OnceLock;

/// How long an anchor serves, in nanoseconds of the counter: the wall clock is read again
/// after that (also if the counter reads earlier than the anchor: a thread moved to a core
/// whose counter lags).
pub const REANCHOR_AFTER_NS: u64 = 1_000_000_000;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

thread_local! {
    /// This thread's anchor, a counter reading and the wall clock's time then (0: none yet),
    /// and the last time it returned.
    static ANCHOR: Cell<(u64, i64, i64)> = const { Cell::new((0, 0, i64::MIN)) };
}

/// The process's counter, calibrated on first use.
fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the counter now (at most 200 ms, once per process), so that no step pays for it.
pub(crate) fn calibrate() {
    let _ = clock();
}

/// The current time in unix microseconds (see the [module documentation](self)).
#[inline]
pub fn now_us() -> i64 {
    let clock = clock();
    let raw = clock.raw();
    ANCHOR
        .try_with(|anchor| {
            let (mut at, mut at_us, last) = anchor.get();
            let since = clock.delta_as_nanos(at, raw);
            let now = if at != 0 && raw >= at && since < REANCHOR_AFTER_NS {
                // Below a second: the quotient fits an i64.
                at_us + (since / 1_000) as i64
            } else {
                at_us = wall_us();
                at = clock.raw().max(1);
                at_us
            };
            let now = now.max(last);
            anchor.set((at, at_us, now));
            now
        })
        .unwrap_or_else(|_| wall_us())
}

/// The system's wall clock in unix microseconds, read now.
pub fn wall_us() -> i64 {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec to write to, and CLOCK_REALTIME exists on every
        // unix; `clock_gettime` writes nothing else.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } == 0 {
            // `time_t` and `c_long` are 32 bits wide on some targets.
            #[allow(clippy::useless_conversion)]
            return i64::from(now.tv_sec) * 1_000_000 + i64::from(now.tv_nsec) / 1_000;
        }
    }
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_us() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_micros() as i64
    }

    /// The wall clock read straight from the system says what `SystemTime` says.
    #[test]
    fn the_wall_clock_is_the_systems_in_microseconds() {
        let before = system_us();
        let now = wall_us();
        let after = system_us();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }

    /// Read from the counter, on a fresh thread (its first reading anchors) and on one whose
    /// anchor has served a while, the time stays within a millisecond of the system's, and
    /// moves forward with it.
    #[test]
    fn the_time_from_the_counter_is_the_wall_clocks() {
        calibrate();
        std::thread::spawn(|| {
            let mut last = 0;
            let started = std::time::Instant::now();
            // Long enough to pass one anchor on to the next.
            while started.elapsed() < std::time::Duration::from_millis(1_300) {
                let before = system_us();
                let now = now_us();
                let after = system_us();
                assert!(
                    before - 1_000 <= now && now <= after + 1_000,
                    "{before} <= {now} <= {after}, within a millisecond"
                );
                assert!(now >= last, "{now} went back from {last}");
                last = now;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
        .join()
        .expect("the thread ran");
    }
}
