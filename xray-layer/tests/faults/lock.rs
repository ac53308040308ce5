//! Another connection holds the database's write lock: the writer waits and retries, nothing is
//! lost, and the program's thread goes on stepping while the lock is held.

use crate::support::*;
use std::time::Duration;

#[test]
fn a_write_lock_held_for_2s_loses_nothing_and_the_program_keeps_stepping() {
    write_lock_held_for(Duration::from_secs(2));
}

#[test]
#[ignore = "long: a 5 s lock (RELIABILITY.md)"]
fn a_write_lock_held_for_5s_loses_nothing_and_the_program_keeps_stepping() {
    write_lock_held_for(Duration::from_secs(5));
}

fn write_lock_held_for(hold: Duration) {
    let (_dir, db) = scratch();
    // 1,000 steps/s make 4,000 records/s: the queue holds 8 s of them (its 8,192 slots for
    // the evaluations of steps; its 4 MiB of records would hold more).
    let mut child = Child::spawn(command(
        &db,
        &[
            "--pace-us",
            "1000",
            "--queue",
            "65536",
            "--progress-ms",
            "50",
        ],
    ));
    child.wait_for("the child is ready", |l| l.word == "ready");
    child.wait_progress("a first commit", |l| l.u64("written") > 0);

    // Another program takes the write lock (as `sqlite3 xray.db 'BEGIN IMMEDIATE'` would).
    let other = rusqlite::Connection::open(&db).expect("open");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let locked_at = unix_us();
    std::thread::sleep(hold);
    let released_at = unix_us();
    other.execute_batch("COMMIT").expect("release the lock");
    drop(other);

    // Writing resumes by itself.
    let mut held = 0;
    child.wait_progress("writing resumes after the lock", |l| {
        if l.u64("t_us") < released_at {
            held = held.max(l.u64("written"));
            return false;
        }
        l.u64("written") > held
    });
    let exited = child.stop();
    assert!(exited.status.success(), "{}", exited.stderr);

    // The lock was real: no batch committed while it was held…
    let inside: Vec<&Line> = exited
        .log
        .iter()
        .filter(|l| {
            l.word == "progress"
                && l.u64("t_us") > locked_at + 100_000
                && l.u64("t_us") + 100_000 < released_at
        })
        .collect();
    assert!(inside.len() >= 2, "progress lines while locked: {inside:?}");
    let first = inside[0];
    let last = inside[inside.len() - 1];
    assert_eq!(
        first.u64("written"),
        last.u64("written"),
        "the lock held the writer"
    );
    // …yet the program went on stepping, none of its records dropped.
    assert!(
        last.u64("steps") > first.u64("steps"),
        "the program stepped while the database was locked: {first:?} {last:?}"
    );
    let f = exited.final_line();
    assert_eq!(f.u64("dropped"), 0);
    assert_eq!(f.u64("failed"), 0);
    assert_eq!(f.u64("written"), f.u64("sent"));
    assert!(exited.last("write-error").is_none(), "{:#?}", exited.log);

    // Nothing is lost: every step the program made is in the database, whole.
    assert_eq!(integrity(&db), "ok");
    let steps = stored_steps(&db);
    assert_eq!(steps.len() as u64, f.u64("steps"));
    for (n, step) in steps.iter().enumerate() {
        assert_eq!((step.i, step.ended, step.evaluations), (n as u64, true, 10));
    }

    let slowest_locked = inside.iter().map(|l| l.u64("max_us")).max().unwrap_or(0);
    let slowest_unlocked = exited
        .log
        .iter()
        .filter(|l| l.word == "progress" && l.u64("t_us") < locked_at)
        .map(|l| l.u64("max_us"))
        .max()
        .unwrap_or(0);
    figure(
        "write-lock",
        format_args!(
            "lock held {} ms; {} steps made meanwhile; slowest step while locked {slowest_locked} \
             µs (before: {slowest_unlocked} µs); {} steps, 0 dropped, 0 failed",
            (released_at - locked_at) / 1000,
            last.u64("steps") - first.u64("steps"),
            f.u64("steps"),
        ),
    );
}

#[test]
fn a_program_that_exits_while_the_database_is_locked_exits_on_time_and_says_what_it_lost() {
    let (_dir, db) = scratch();
    let mut child = Child::spawn(command(
        &db,
        &[
            "--pace-us",
            "1000",
            "--progress-ms",
            "50",
            "--shutdown-ms",
            "300",
        ],
    ));
    child.wait_for("the child is ready", |l| l.word == "ready");
    child.wait_progress("a first commit", |l| l.u64("written") > 0);
    let other = rusqlite::Connection::open(&db).expect("open");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let locked_at = unix_us();
    child.wait_progress("steps queued behind the lock", |l| {
        l.u64("t_us") > locked_at && l.u64("sent") > l.u64("written") + 400
    });
    // The program ends while the lock is held: the guard waits its shutdown timeout, no more.
    let exited = child.stop();
    other.execute_batch("COMMIT").expect("release the lock");
    assert!(exited.status.success(), "{}", exited.stderr);
    assert_eq!(exited.final_line().str("flushed"), "false");
    let f = exited.final_line();
    let unwritten = f.u64("sent") - f.u64("written") - f.u64("failed");
    assert!(unwritten > 0);
    // Records lost at exit are not lost silently.
    let said = format!("X-Ray: {unwritten} records not written");
    assert!(exited.stderr.contains(&said), "{:?}", exited.stderr);
    assert_eq!(integrity(&db), "ok");
    figure(
        "exit-while-locked",
        format_args!(
            "{unwritten} records reported lost on stderr; flush + drop of the guard took {} ms \
             (shutdown timeout 300 ms each)",
            f.u64("shutdown_us") / 1000
        ),
    );
}
