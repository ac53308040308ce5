//! The writer thread's priority: below the application's, so that a step does not wait for the
//! writer on its own CPU.
//!
//! A thread that records wakes the writer (every batch of records). When other work holds the
//! machine's other CPUs, the scheduler runs the woken writer on the recording thread's CPU, and
//! at equal priority the step then waits while the writer turns records into JSON. On a 2-CPU
//! machine with one CPU's worth of other load, a root step measured 0.90–1.01× of
//! `#[tracing::instrument]` + fmt; with the writer at nice 10, 0.76–0.81×
//! (`benches/README.md`, session 18). So the writer lowers its own priority as it starts
//! ([`DEFAULT_WRITER_NICE`](crate::DEFAULT_WRITER_NICE) levels, or
//! [`Builder::writer_nice`](crate::Builder::writer_nice)).
//!
//! A nice value of 10 is a weight of 110 against an application thread's 1024: on a CPU that
//! both want, the writer still gets about a tenth of it, and the scheduler moves it to a CPU
//! that is free. On a machine that the application keeps busy on every CPU, the writer falls
//! behind; its queue then fills, and records are dropped and counted
//! ([`Backpressure::Drop`](crate::Backpressure::Drop)) or the threads wait for room
//! ([`Backpressure::Block`](crate::Backpressure::Block)), as when the store is slow.
//!
//! Linux only, where a thread has a nice value of its own (`setpriority(PRIO_PROCESS, 0, ..)`
//! changes the calling thread's). Elsewhere the writer keeps its priority: on macOS the call
//! would change the whole process's.

/// Lowers the calling thread's priority by `levels` nice levels (up to 19, the lowest).
/// Returns the thread's nice value after, or `None` when it could not be read or changed
/// (the thread then keeps the priority it has: nothing else depends on it).
pub(crate) fn lower_this_thread(levels: u8) -> Option<i32> {
    if levels == 0 {
        return None;
    }
    lower(levels)
}

#[cfg(target_os = "linux")]
fn lower(levels: u8) -> Option<i32> {
    // SAFETY: `getpriority` and `setpriority` take integers only and touch no memory of the
    // caller's. `__errno_location` returns a valid pointer to this thread's own `errno`, which
    // nothing else writes between our store and our read but these calls. `who == 0` is the
    // calling thread on Linux.
    unsafe {
        // -1 is also a valid nice value: errno tells an error apart.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        if now == -1 && *libc::__errno_location() != 0 {
            return None;
        }
        let target = (now + i32::from(levels)).min(19);
        (libc::setpriority(libc::PRIO_PROCESS, 0, target) == 0).then_some(target)
    }
}

#[cfg(not(target_os = "linux"))]
fn lower(_levels: u8) -> Option<i32> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// This thread's nice value, as the kernel shows it (`/proc/thread-self/stat`, field 19).
    fn nice_of_this_thread() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        let rest = &stat[stat.rfind(')').expect("comm") + 1..];
        rest.split_whitespace()
            .nth(16)
            .expect("nice")
            .parse()
            .expect("a number")
    }

    #[test]
    fn a_thread_lowers_its_own_priority_and_no_other() {
        let before = nice_of_this_thread();
        let (after, seen) = std::thread::spawn(|| (lower_this_thread(3), nice_of_this_thread()))
            .join()
            .expect("thread");
        let expected = (before + 3).min(19);
        assert_eq!(after, Some(expected));
        assert_eq!(seen, expected);
        assert_eq!(
            nice_of_this_thread(),
            before,
            "the spawning thread keeps its own"
        );
        assert_eq!(
            std::thread::spawn(|| lower_this_thread(0))
                .join()
                .expect("thread"),
            None
        );
    }
}
