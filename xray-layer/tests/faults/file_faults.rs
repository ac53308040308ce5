//! The database file is deleted, made read-only or replaced by garbage while the program runs,
//! or was written by a newer X-Ray: clear errors, counted failures, no panic, no hang.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

const BATCH: u64 = xray::DEFAULT_BATCH_SIZE as u64;

/// Starts a paced child and waits for its first commit.
fn running(db: &Path) -> Child {
    let mut child = Child::spawn(command(db, &["--pace-us", "500", "--progress-ms", "50"]));
    child.wait_for("the child is ready", |l| l.word == "ready");
    child.wait_progress("a first commit", |l| l.u64("written") > 0);
    child
}

/// The program ran to its end as it would have without X-Ray.
fn exited_cleanly(exited: &Exited) {
    assert!(
        exited.status.success(),
        "{:?}\n{}",
        exited.status,
        exited.stderr
    );
    assert!(!exited.stderr.contains("panicked"), "{}", exited.stderr);
    assert!(
        exited.last("app").is_some(),
        "the program finished its work"
    );
}

/// Steps on for a while after `at` (unix µs), then stops; returns the progress line right
/// after `at` and what the child printed.
fn run_on_after(mut child: Child, at: u64) -> (Line, Exited) {
    let after = child.wait_progress("progress after the fault", |l| l.u64("t_us") > at);
    child.wait_progress("steps after the fault", |l| {
        l.u64("steps") > after.u64("steps") + 500
    });
    (after, child.stop())
}

/// A short run on an existing file.
fn restart(db: &Path) -> Exited {
    Child::spawn(command(db, &["--steps", "10", "--progress-ms", "0"])).wait_exit()
}

/// Records that could not reach the file are failed, not written: at most the batch that was
/// being written when the file went away counts as written after it.
fn failed_not_written(after: &Line, exited: &Exited) -> u64 {
    let f = exited.final_line();
    assert_eq!(f.u64("dropped"), 0);
    assert_eq!(f.u64("written") + f.u64("failed"), f.u64("sent"), "{f:?}");
    assert!(f.u64("failed") > 0, "{f:?}");
    let written_after = f.u64("written") - after.u64("written");
    assert!(
        written_after <= BATCH,
        "{written_after} records counted as written into a file no reader can see"
    );
    f.u64("failed")
}

#[test]
fn a_deleted_database_fails_every_later_batch_with_a_clear_error() {
    let (_dir, db) = scratch();
    let child = running(&db);
    std::fs::remove_file(&db).expect("delete the database");
    let (after, exited) = run_on_after(child, unix_us());
    exited_cleanly(&exited);
    let failed = failed_not_written(&after, &exited);
    let error = exited
        .last("write-error")
        .expect("a write error is reported");
    assert!(error.str("error").contains("was deleted"), "{error:?}");

    // The next run records into a new database at the same path.
    let again = restart(&db);
    exited_cleanly(&again);
    assert_eq!(again.final_line().u64("written"), 40);
    assert_eq!(integrity(&db), "ok");
    assert_eq!(stored_steps(&db).len(), 10);
    figure(
        "deleted",
        format_args!("{failed} records failed; error: {}", error.str("error")),
    );
}

/// Deterministic garbage.
fn garbage(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn a_database_replaced_by_another_file_fails_every_later_batch_with_a_clear_error() {
    let (dir, db) = scratch();
    let child = running(&db);
    // As `mv garbage xray.db` does: another file takes the name.
    let other = dir.path().join("garbage");
    std::fs::write(&other, garbage(64 * 1024)).expect("write garbage");
    std::fs::rename(&other, &db).expect("move it over the database");
    let (after, exited) = run_on_after(child, unix_us());
    exited_cleanly(&exited);
    let failed = failed_not_written(&after, &exited);
    let error = exited
        .last("write-error")
        .expect("a write error is reported");
    assert!(error.str("error").contains("was replaced"), "{error:?}");

    // The next start never panics; it refuses the file, or opens what SQLite rebuilds from
    // the old database's WAL (SQLite leaves a moved database's WAL in place on purpose).
    let next = next_start(&db);
    figure(
        "replaced",
        format_args!(
            "{failed} records failed; error: {}; next start: {next}",
            error.str("error")
        ),
    );
}

/// A short run on a damaged file: a clear refusal, or a database that passes SQLite's check.
fn next_start(db: &Path) -> String {
    let again = restart(db);
    assert!(!again.stderr.contains("panicked"), "{}", again.stderr);
    match again.last("build-error") {
        Some(e) => {
            assert_eq!(again.status.code(), Some(2), "{}", again.stderr);
            let message = e.str("message");
            assert!(
                message.contains("not an SQLite database") || message.contains("malformed"),
                "{message}"
            );
            message.to_owned()
        }
        None => {
            assert!(again.status.success(), "{}", again.stderr);
            assert_eq!(integrity(db), "ok");
            "opened (integrity_check ok)".to_owned()
        }
    }
}

#[test]
fn a_database_overwritten_in_place_never_panics_or_hangs_and_errors_are_clear() {
    let (_dir, db) = scratch();
    let child = running(&db);
    // As `cp garbage xray.db` does: the same file, truncated and rewritten.
    let len = std::fs::metadata(&db).expect("stat").len() as usize;
    std::fs::write(&db, garbage(len.max(64 * 1024))).expect("overwrite the database");
    let (_, exited) = run_on_after(child, unix_us());
    exited_cleanly(&exited);
    let f = exited.final_line();
    assert_eq!(f.u64("written") + f.u64("failed"), f.u64("sent"), "{f:?}");
    // SQLite notices a damaged page only when it reads one back; whatever it says is clear.
    for line in exited.log.iter().filter(|l| l.word == "write-error") {
        assert!(line.str("error").contains("malformed"), "{line:?}");
    }
    // A later start opens what the WAL restored or refuses the file, and says why.
    let next = next_start(&db);
    figure(
        "overwritten-in-place",
        format_args!(
            "{} records failed ({} write errors); next start: {next}",
            f.u64("failed"),
            exited
                .log
                .iter()
                .filter(|l| l.word == "write-error")
                .count()
        ),
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_database_made_read_only_while_open_keeps_recording_and_refuses_the_next_start_clearly() {
    let (dir, db) = scratch();
    chmod(dir.path(), 0o755);
    let child = running(&db);
    // The file, its -wal and -shm, and the directory.
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        chmod(&entry.expect("entry").path(), 0o444);
    }
    chmod(dir.path(), 0o555);
    let (_, exited) = run_on_after(child, unix_us());
    exited_cleanly(&exited);
    // The program's open file stays writable (as on any Unix): nothing is lost.
    let f = exited.final_line();
    assert_eq!((f.u64("dropped"), f.u64("failed")), (0, 0), "{f:?}");
    assert_eq!(f.u64("written"), f.u64("sent"));
    assert_eq!(stored_steps(&db).len() as u64, f.u64("steps"));

    // A new start cannot write, and says so. (Root ignores file modes: run it as `nobody`.)
    let mut cmd = command(&db, &["--steps", "10", "--progress-ms", "0"]);
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let again = Child::spawn(cmd).wait_exit();
    chmod(dir.path(), 0o755);
    assert_eq!(again.status.code(), Some(2), "{}", again.stderr);
    let message = again
        .last("build-error")
        .expect("a build error")
        .str("message");
    assert!(message.contains("readonly"), "{message}");
    figure(
        "read-only",
        format_args!("0 records lost while open; next start: {message}"),
    );
}

#[test]
fn a_database_from_a_newer_x_ray_is_refused_at_start_with_a_clear_error() {
    let (_dir, db) = scratch();
    let first = restart(&db);
    exited_cleanly(&first);
    let conn = rusqlite::Connection::open(&db).expect("open");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    conn.execute_batch(&format!("PRAGMA user_version = {}", version + 1))
        .expect("bump the schema version");
    drop(conn);

    let again = restart(&db);
    assert_eq!(again.status.code(), Some(2), "{}", again.stderr);
    assert!(!again.stderr.contains("panicked"), "{}", again.stderr);
    let message = again
        .last("build-error")
        .expect("a build error")
        .str("message");
    assert!(
        message.contains(&format!("schema version {}", version + 1))
            && message.contains("upgrade X-Ray"),
        "{message}"
    );
    // The file is left as it was.
    assert_eq!(integrity(&db), "ok");
    assert_eq!(stored_steps(&db).len(), 10);
    figure("newer-schema", format_args!("next start: {message}"));
}
