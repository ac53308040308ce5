//! `kill -9` mid-run: the database opens cleanly, what was committed is whole, and what was lost
//! is only what had not been committed yet (measured).

use crate::support::*;

/// Records per root step: its execution's start and end, the step's start and end.
const RECORDS_PER_STEP: u64 = 4;
const QUEUE: u64 = 4096;
const BATCH: u64 = xray::DEFAULT_BATCH_SIZE as u64;
const FLUSH_MS: u64 = 100;

#[test]
fn a_killed_program_leaves_a_database_that_opens_with_every_committed_step_whole() {
    let (_dir, db) = scratch();
    // Blocking backpressure: nothing is dropped, so every gap would be a loss.
    let mut child = Child::spawn(command(
        &db,
        &[
            "--pace-us",
            "250",
            "--print-each",
            "--block",
            "--queue",
            &QUEUE.to_string(),
            "--flush-ms",
            &FLUSH_MS.to_string(),
        ],
    ));
    child.wait_for("the child is ready", |l| l.word == "ready");
    // Let it commit a few batches, then kill it while it keeps stepping.
    child.wait_progress("a first commit", |l| l.u64("written") >= 2_000);
    child.wait_for("more steps", |l| {
        l.word == "done" && l.u64("i") % 1000 == 777
    });
    let killed_at = unix_us();
    let exited = child.kill();
    let last_done = exited
        .last("done")
        .expect("the child printed its steps")
        .u64("i");

    // The file opens with X-Ray (which recovers the WAL) and passes SQLite's own check.
    assert_eq!(integrity(&db), "ok");
    let steps = stored_steps(&db);
    assert!(!steps.is_empty(), "committed steps survive the kill");
    // What was committed is whole: a prefix of the steps made, each with all it recorded.
    for (n, step) in steps.iter().enumerate() {
        assert_eq!(step.i, n as u64, "no step is missing before a stored one");
        assert_eq!(step.status, "ok", "{step:?}");
        assert!(step.ended, "{step:?}");
        assert_eq!(
            step.evaluations, 10,
            "every evaluation of a stored step: {step:?}"
        );
    }
    // The loss is only what was still queued or in the batch being written.
    let committed = steps.len() as u64;
    let lost = (last_done + 1).saturating_sub(committed);
    assert!(
        lost * RECORDS_PER_STEP <= QUEUE + BATCH,
        "{lost} steps lost, more than the queue ({QUEUE} records) and a batch hold"
    );
    // X-Ray opens the same file again and records on.
    let again = Child::spawn(command(&db, &["--steps", "10", "--progress-ms", "0"])).wait_exit();
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(again.final_line().u64("written"), 10 * RECORDS_PER_STEP);
    assert_eq!(integrity(&db), "ok");

    let conn = rusqlite::Connection::open(&db).expect("open");
    let newest: i64 = conn
        .query_row(
            "SELECT max(ended_at) FROM steps WHERE json_extract(input, '$.i') = ?1",
            [committed as i64 - 1],
            |r| r.get(0),
        )
        .expect("the newest committed step");
    figure(
        "kill-9",
        format_args!(
            "{committed} steps committed, {lost} lost of {} made ({} ms of recording before the \
             kill; flush interval {FLUSH_MS} ms)",
            last_done + 1,
            (killed_at as i64 - newest) / 1000
        ),
    );
}
