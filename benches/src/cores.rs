//! Where the host runs this machine's two CPUs, from inside the machine: on two physical
//! cores, or on the two hyperthreads of one.
//!
//! A virtual machine's CPUs are threads of the host, and the host moves them: on the shared
//! 2-CPU machines these benchmarks run on, the two CPUs are usually on cores of their own, and
//! now and then, for seconds at a time, on the two hyperthreads of one core. There, a thread
//! busy on one CPU takes part of the other's core: X-Ray's writer, catching up beside a flood of
//! steps, slows the steps' own thread (`step_ratio` reports its rounds by placement).
//!
//! [`probe`] tells the two apart the way a program can: it times a fixed loop alone, then
//! while a second thread runs the same loop, and returns the ratio. About 1.0: the second
//! thread had a core of its own. 1.3–1.4 (on these machines): the two threads shared one
//! core. About 2: they shared one CPU (something else held the other).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Iterations of the probe's loop (~1 ms on these machines).
const ITERATIONS: u64 = 400_000;

/// Where the host ran the two threads of a [`probe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On two cores: the second thread did not slow the first (below 1.15×).
    OwnCores,
    /// On one core's two hyperthreads (1.15× to 1.6×).
    OneCore,
    /// On one CPU, or beside other load (1.6× or more).
    Busy,
}

impl Placement {
    /// The placement a probe's slowdown says.
    pub fn of(slowdown: f64) -> Placement {
        if slowdown < 1.15 {
            Placement::OwnCores
        } else if slowdown < 1.6 {
            Placement::OneCore
        } else {
            Placement::Busy
        }
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Placement::OwnCores => "two cores",
            Placement::OneCore => "one core's two hyperthreads",
            Placement::Busy => "one CPU, or beside other load",
        })
    }
}

/// A loop of multiplications and loads from a 32 KiB table: the kind of work two
/// hyperthreads of one core share the units for.
fn spin(iterations: u64) -> u64 {
    let mut table = [0u64; 4096];
    let mut x = 1u64;
    for i in 0..iterations {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
        table[(x >> 52) as usize] ^= x;
    }
    black_box(table[7]) ^ x
}

fn timed() -> Duration {
    let start = Instant::now();
    black_box(spin(ITERATIONS));
    start.elapsed()
}

/// How much a second busy thread slows this one: the time of a fixed loop with that thread
/// running, over its time alone (the faster of two runs each).
pub fn probe() -> f64 {
    let alone = timed().min(timed());
    let stop = AtomicBool::new(false);
    let started = AtomicBool::new(false);
    let together = std::thread::scope(|scope| {
        scope.spawn(|| {
            started.store(true, Ordering::Release);
            while !stop.load(Ordering::Relaxed) {
                black_box(spin(10_000));
            }
        });
        while !started.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let together = timed().min(timed());
        stop.store(true, Ordering::Relaxed);
        together
    });
    together.as_secs_f64() / alone.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_split_at_the_documented_slowdowns() {
        assert_eq!(Placement::of(1.0), Placement::OwnCores);
        assert_eq!(Placement::of(1.37), Placement::OneCore);
        assert_eq!(Placement::of(2.0), Placement::Busy);
    }
}
