//! The writer thread's priority: below the application's by default (`writer/priority.rs`).
//!
//! A test binary of its own: the writer is found by its thread's name, and no other test's
//! writer may be running beside it.

/// The ids and nice values of this process's threads named `name`
/// (`/proc/self/task/*/stat`, field 19). A thread that ends while they are read is skipped.
#[cfg(target_os = "linux")]
fn threads_named(name: &str) -> Vec<(String, i32)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let nice = |dir: &std::path::Path| -> Option<i32> {
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() != name {
            return None;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(16)?.parse().ok()
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let dir = task.path();
            Some((task.file_name().to_string_lossy().into_owned(), nice(&dir)?))
        })
        .collect()
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
    // Each layer built on a thread of its own (the writer starts from that thread's nice
    // value); its writer is the thread named `xray-writer` that was not there before it (the
    // last layer's may not have left `/proc` yet).
    let writer_nice = |builder: xray::Builder| {
        std::thread::spawn(move || {
            let base = nice_of_this_thread();
            let before = threads_named("xray-writer");
            let (layer, guard) = builder.memory().build().expect("the layer builds");
            // The writer lowers its priority as it starts: a flush answered means it has.
            assert!(guard.flush(), "the writer answers");
            let new: Vec<i32> = threads_named("xray-writer")
                .into_iter()
                .filter(|(id, _)| !before.iter().any(|(old, _)| old == id))
                .map(|(_, nice)| nice)
                .collect();
            drop((layer, guard));
            assert_eq!(new.len(), 1, "one new writer thread: {new:?}");
            (base, new[0])
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
