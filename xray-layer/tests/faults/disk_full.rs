//! The disk fills up (here: the program's file-size limit drops to zero, so every write to a file
//! fails as on a full disk): the program steps on at its speed, the records that cannot be
//! written are counted as failed and that count reaches the database, and writing resumes when
//! space returns.

use crate::support::*;
use std::os::unix::process::CommandExt;

/// Sets the child's file-size limit (soft; the hard limit stays unlimited).
fn set_file_size_limit(pid: i32, bytes: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `limit` is a valid rlimit for the call to read; the old value is not requested
    // (null is allowed); `pid` is our own child, alive until we wait for it.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn a_full_disk_counts_failed_records_and_writing_resumes_when_space_returns() {
    let (_dir, db) = scratch();
    let mut cmd = command(&db, &["--pace-us", "500", "--progress-ms", "50"]);
    // SAFETY: runs in the forked child before exec; `signal` is async-signal-safe. Ignoring
    // SIGXFSZ (kept across exec) makes a write past the limit fail with EFBIG, as a full disk
    // fails with ENOSPC, instead of killing the program.
    unsafe {
        cmd.pre_exec(|| {
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Child::spawn(cmd);
    child.wait_for("the child is ready", |l| l.word == "ready");
    let before = child.wait_progress("a first commit", |l| l.u64("written") > 0);

    set_file_size_limit(child.pid(), 0);
    let full_at = unix_us();
    let error = child.wait_for("a failed write", |l| l.word == "write-error");
    // The error says why, in the operating system's words (EFBIG here; ENOSPC on a full disk).
    assert!(error.str("error").contains("File too large"), "{error:?}");
    // The program steps on while nothing can be written.
    let first_failed = child.wait_progress("failures counted", |l| l.u64("failed") > 0);
    let during = child.wait_progress("steps while the disk is full", |l| {
        l.u64("steps") >= first_failed.u64("steps") + 1_000
    });
    assert_eq!(
        during.u64("written"),
        first_failed.u64("written"),
        "nothing was written while the disk was full: {during:?}"
    );

    set_file_size_limit(child.pid(), libc::RLIM_INFINITY);
    let freed_at = unix_us();
    let resumed = child.wait_progress("writing resumes", |l| {
        l.u64("t_us") > freed_at && l.u64("written") > during.u64("written")
    });
    // A few more steps, all written.
    let last_step = child
        .wait_progress("more steps after", |l| {
            l.u64("steps") > resumed.u64("steps") + 500
        })
        .u64("steps");
    let exited = child.stop();
    assert!(exited.status.success(), "{}", exited.stderr);
    let f = exited.final_line();
    let failed = f.u64("failed");
    assert!(failed > 0);
    // Every record accepted was written or counted as failed; none dropped.
    assert_eq!(f.u64("written") + failed, f.u64("sent"), "{f:?}");
    assert_eq!(f.u64("dropped"), 0);
    // The count of failed records reached the database once there was room again.
    assert_eq!(stored_counts(&db).failed, failed);
    assert_eq!(integrity(&db), "ok");

    // What is missing is accounted for: fewer missing steps than failed records, and none of
    // the steps made after the disk had room again.
    let steps = stored_steps(&db);
    let made = f.u64("steps");
    let stored: std::collections::HashSet<u64> = steps.iter().map(|s| s.i).collect();
    let missing: Vec<u64> = (0..made).filter(|i| !stored.contains(i)).collect();
    assert!(!missing.is_empty(), "the full disk lost some records");
    assert!(
        missing.len() as u64 <= failed,
        "{} missing, {failed} failed",
        missing.len()
    );
    assert!(
        missing.iter().all(|&i| i < last_step),
        "steps after recovery are written"
    );
    assert!(
        (last_step..made).all(|i| stored.contains(&i)),
        "every step after recovery is stored"
    );
    // A stored step is whole even if its start record was lost; one whose start was written
    // and whose end failed is marked lost (its run's end says a record was lost), not left
    // running for good.
    let whole = |s: &StoredStep| s.ended && s.evaluations == 10;
    let lost = |s: &StoredStep| !s.ended && s.status == "lost";
    assert!(
        steps.iter().all(|s| whole(s) || lost(s)),
        "{:?}",
        steps
            .iter()
            .filter(|s| !(whole(s) || lost(s)))
            .collect::<Vec<_>>()
    );
    let conn = rusqlite::Connection::open(&db).expect("the database opens");
    let running: i64 = conn
        .query_row(
            "SELECT count(*) FROM executions WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(running, 0, "no run is left running for good");

    let rate = |a: &Line, b: &Line| {
        (b.u64("steps") - a.u64("steps")) as f64 * 1e6 / (b.u64("t_us") - a.u64("t_us")) as f64
    };
    figure(
        "disk-full",
        format_args!(
            "{failed} records failed ({} steps missing) over {} ms without space; steps/s before \
             {:.0}, while full {:.0}; first error: {}",
            missing.len(),
            (freed_at - full_at) / 1000,
            rate(&before, &first_failed),
            rate(&first_failed, &during),
            error.str("error"),
        ),
    );
}
