//! `kill -9` mid-run: the database opens cleanly, what was committed is whole, and what was lost
//! is only what had not been committed yet (measured).

use crate::support::*;
use std::time::Duration;

/// Records per root step: its execution's start and end, the step's start and end.
const RECORDS_PER_STEP: u64 = 4;
const QUEUE: u64 = 4096;
const BATCH: u64 = xray::DEFAULT_BATCH_SIZE as u64;
const FLUSH_MS: u64 = 100;

#[test]
fn a_killed_program_leaves_a_database_that_opens_with_every_committed_step_whole() {
    // Three kills at different moments of the writer's work.
    let loss = (1..3).fold(killed_mid_run(0), |_, n| killed_mid_run(n));
    // X-Ray opens the same file again and records on.
    let again = Child::spawn(command(&loss.db, &["--steps", "10", "--progress-ms", "0"]));
    let again = again.wait_exit();
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(again.final_line().u64("written"), 10 * RECORDS_PER_STEP);
    assert_eq!(integrity(&loss.db), "ok");
    figure(
        "kill-9",
        format_args!(
            "{} steps committed, {} lost of {} made: the last {} ms of recording (flush \
             interval {FLUSH_MS} ms)",
            loss.committed, loss.lost, loss.made, loss.window_ms
        ),
    );
}

#[test]
#[ignore = "long: 20 kills (RELIABILITY.md)"]
fn twenty_kills_at_random_moments_never_damage_what_was_committed() {
    let mut windows: Vec<i64> = (0..20).map(|n| killed_mid_run(n).window_ms).collect();
    windows.sort_unstable();
    figure(
        "kill-9-x20",
        format_args!(
            "recording lost per kill: median {} ms, max {} ms (flush interval {FLUSH_MS} ms)",
            windows[windows.len() / 2],
            windows[windows.len() - 1]
        ),
    );
}

struct Loss {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    made: u64,
    committed: u64,
    lost: u64,
    window_ms: i64,
}

/// Runs a child, kills it at a moment that depends on `n`, and checks what it left.
fn killed_mid_run(n: u64) -> Loss {
    let (dir, db) = scratch();
    // Blocking backpressure: nothing is dropped, so every gap would be a loss.
    let mut child = Child::spawn(command(
        &db,
        &[
            "--pace-us",
            "250",
            "--print-each",
            "--progress-ms",
            "20",
            "--block",
            "--queue",
            &QUEUE.to_string(),
            "--flush-ms",
            &FLUSH_MS.to_string(),
        ],
    ));
    child.wait_for("the child is ready", |l| l.word == "ready");
    child.wait_progress("a first commit", |l| l.u64("written") >= 2_000);
    // Not right after a line: at a moment unrelated to what the writer is doing. (This sleep
    // waits for nothing; it only places the kill.)
    std::thread::sleep(Duration::from_millis(17 * (n % 7) + 3 * (n % 5) + 5));
    let killed_at = unix_us();
    let exited = child.kill();
    let made = exited
        .last("done")
        .expect("the child printed its steps")
        .u64("i")
        + 1;
    let acknowledged = exited.last("progress").expect("progress").u64("written");

    // The file opens (SQLite recovers the WAL) and passes SQLite's own check.
    assert_eq!(integrity(&db), "ok");
    let steps = stored_steps(&db);
    // What was committed is whole: a prefix of the steps made, each with all it recorded…
    for (n, step) in steps.iter().enumerate() {
        assert_eq!(step.i, n as u64, "no step is missing before a stored one");
        assert_eq!(step.status, "ok", "{step:?}");
        assert!(step.ended, "{step:?}");
        assert_eq!(
            step.evaluations, 10,
            "every evaluation of a stored step: {step:?}"
        );
    }
    // …and holds everything the writer had reported written before the kill.
    let committed = steps.len() as u64;
    assert!(
        committed >= acknowledged / RECORDS_PER_STEP,
        "{committed} steps stored, {acknowledged} records were reported written"
    );
    // The loss is only what was still queued or in the batch being written.
    let lost = made.saturating_sub(committed);
    assert!(
        lost * RECORDS_PER_STEP <= QUEUE + BATCH,
        "{lost} steps lost, more than the queue ({QUEUE} records) and a batch hold"
    );
    let conn = rusqlite::Connection::open(&db).expect("open");
    let newest: i64 = conn
        .query_row("SELECT max(ended_at) FROM steps", [], |r| r.get(0))
        .expect("the newest committed step");
    Loss {
        _dir: dir,
        db,
        made,
        committed,
        lost,
        window_ms: (killed_at as i64 - newest) / 1000,
    }
}
