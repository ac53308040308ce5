//! A queue flood: steps as fast as two threads can make them. Memory stays bounded by the
//! queue's capacity, every dropped record is counted (and the count reaches the database), and
//! the guard's flush at shutdown writes at most a queue's worth.

use crate::support::*;

/// Records per root step: its execution's start and end, the step's start and end.
const RECORDS_PER_STEP: u64 = 4;

#[test]
fn a_flood_of_100k_steps_stays_within_its_queue_and_counts_every_drop() {
    flood(50_000, 1024);
}

#[test]
#[ignore = "long: 1M steps (RELIABILITY.md)"]
fn a_flood_of_1m_steps_stays_within_its_queue_and_counts_every_drop() {
    flood(500_000, xray::DEFAULT_QUEUE_CAPACITY as u64);
}

fn flood(steps_per_thread: u64, queue: u64) {
    let (_dir, db) = scratch();
    let mut child = Child::spawn(command(
        &db,
        &[
            "--threads",
            "2",
            "--steps",
            &steps_per_thread.to_string(),
            "--queue",
            &queue.to_string(),
            "--progress-ms",
            "0",
        ],
    ));
    let ready = child.wait_for("the child is ready", |l| l.word == "ready");
    let exited = child.wait_exit();
    assert!(exited.status.success(), "{}", exited.stderr);
    let f = exited.final_line();
    let steps = f.u64("steps");
    assert_eq!(steps, 2 * steps_per_thread);

    // Drops are counted exactly: every record made was queued or dropped, and every record
    // queued was written.
    let (sent, dropped) = (f.u64("sent"), f.u64("dropped"));
    assert_eq!(sent + dropped, steps * RECORDS_PER_STEP, "{f:?}");
    assert!(dropped > 0, "the flood overflowed the queue: {f:?}");
    assert_eq!(f.u64("written"), sent);
    assert_eq!(f.u64("failed"), 0);
    // The shutdown flush finished within the guard's timeout: at most a queue's worth to write.
    assert_eq!(f.str("flushed"), "true");
    // The count of drops is stored where a reader (the viewer) sees it.
    assert_eq!(stored_counts(&db).dropped, dropped);
    assert_eq!(integrity(&db), "ok");
    let conn = rusqlite::Connection::open(&db).expect("open");
    let (runs_dropped, lost_steps): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT coalesce(sum(dropped_records), 0) FROM executions),
                    (SELECT count(*) FROM steps WHERE status = 'lost')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("query");
    assert!(runs_dropped as u64 <= dropped);

    // Memory: what the program had at start, SQLite's page cache (16 MiB), and at most 4 KiB
    // per queued record (a step record with ten evaluations takes ~1 KiB) with 32 MiB to
    // spare. Without the bound, the 400,000 records of the short flood alone take ~300 MiB.
    let hwm = f.u64("hwm_kb");
    let bound = ready.u64("rss_kb") + 16 * 1024 + 32 * 1024 + queue * 4;
    assert!(hwm < bound, "peak RSS {hwm} kB, bound {bound} kB");
    figure(
        &format!("flood-{}", steps),
        format_args!(
            "{steps} steps from 2 threads, queue {queue}: {sent} records written, {dropped} \
             dropped and counted ({runs_dropped} in runs, {lost_steps} steps marked lost); peak \
             RSS {hwm} kB (at start {} kB, bound {bound} kB); shutdown flush {} ms; step p50 {} \
             µs, p99 {} µs, p999 {} µs, max {} µs",
            ready.u64("rss_kb"),
            f.u64("shutdown_us") / 1000,
            f.u64("p50_us"),
            f.u64("p99_us"),
            f.u64("p999_us"),
            f.u64("max_us"),
        ),
    );
}
