//! The writer thread's priority: below the application's by default (`writer/priority.rs`).
//!
//! A test binary of its own: the writer is found by its thread's name, and no other test's
//! writer may be running beside it.

/// The nice value of this process's thread named `name` (`/proc/self/task/*/stat`, field 19).
#[cfg(target_os = "linux")]
fn nice_of_thread(name: &str) -> Option<i32> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        return rest.split_whitespace().nth(16)?.parse().ok();
    }
    None
}

/// This thread's nice value (the writer starts from the one of the thread that builds it).
#[cfg(target_os = "linux")]
fn nice_of_this_thread() -> i32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    rest.split_whitespace()
        .nth(16)
        .and_then(|n| n.parse().ok())
        .expect("a nice value")
}

#[cfg(target_os = "linux")]
#[test]
fn the_writer_runs_below_the_applications_priority_unless_told_otherwise() {
    // Each layer in a thread of its own, so that the writer found by name is this layer's.
    let writer_nice = |builder: xray::Builder| {
        std::thread::spawn(move || {
            let base = nice_of_this_thread();
            let (layer, guard) = builder.memory().build().expect("the layer builds");
            // The writer lowers its priority as it starts: a flush answered means it has.
            assert!(guard.flush(), "the writer answers");
            let nice = nice_of_thread("xray-writer").expect("the writer thread");
            drop((layer, guard));
            (base, nice)
        })
        .join()
        .expect("thread")
    };
    let (base, nice) = writer_nice(xray::layer());
    assert_eq!(nice, (base + i32::from(xray::DEFAULT_WRITER_NICE)).min(19));
    assert!(nice > base || base == 19, "{base} -> {nice}");
    let (base, nice) = writer_nice(xray::layer().writer_nice(0));
    assert_eq!(nice, base);
    let (base, nice) = writer_nice(xray::layer().writer_nice(3));
    assert_eq!(nice, (base + 3).min(19));
}
