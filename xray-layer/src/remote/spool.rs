//! The spool: a bounded local SQLite file of batches waiting to be sent.
//!
//! The writer thread appends a batch (its records as one JSON array) and returns at once; the
//! sender thread reads the oldest batch, sends it, and removes it only once the server has
//! answered 2xx. Batches survive a restart of the program: what was not sent when it stopped is
//! sent when it starts again with the same spool file.
//!
//! The spool is bounded by the bytes of JSON it holds. A batch that does not fit is dropped and
//! its records are counted; the counts (with the writer's own dropped and failed counts) wait in
//! the spool too and go to the server with the next batch it accepts.

use crate::store::{RecorderCounts, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One batch waiting to be sent.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Its place in the spool.
    pub seq: i64,
    /// A UUID the server uses to count the batch's reported counts once.
    pub id: String,
    /// The records, as a JSON array.
    pub records: String,
    /// How many records.
    pub count: u64,
}

pub(crate) struct Spool {
    conn: Mutex<Connection>,
    path: PathBuf,
    max_bytes: u64,
    /// Bytes of JSON waiting: summed once at open, then kept up to date by `push` and `remove`
    /// (under the connection's lock), so a push does not scan the spool.
    bytes: AtomicU64,
}

fn error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Io(format!("spool {}: {e}", path.display()))
}

impl Spool {
    /// Opens (or creates) the spool at `path`.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Spool, StoreError> {
        let conn = Connection::open(path).map_err(|e| error(path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS batches (
                 seq     INTEGER PRIMARY KEY AUTOINCREMENT,
                 id      TEXT NOT NULL,
                 count   INTEGER NOT NULL,
                 records TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS counts (
                 k       INTEGER PRIMARY KEY CHECK (k = 0),
                 dropped INTEGER NOT NULL,
                 failed  INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO counts(k, dropped, failed) VALUES (0, 0, 0);",
        )
        .map_err(|e| error(path, e))?;
        let bytes: i64 = conn
            .query_row(
                "SELECT COALESCE(SUM(LENGTH(CAST(records AS BLOB))), 0) FROM batches",
                [],
                |r| r.get(0),
            )
            .map_err(|e| error(path, e))?;
        Ok(Spool {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            max_bytes,
            bytes: AtomicU64::new(bytes.max(0) as u64),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Io(format!("spool {}: lock poisoned", self.path.display())))?;
        f(&conn).map_err(|e| error(&self.path, e))
    }

    /// Bytes of JSON waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Batches waiting.
    pub fn len(&self) -> Result<u64, StoreError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM batches", [], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
    }

    /// Appends a batch, or counts its records as dropped when the spool is full. Returns whether
    /// it was kept.
    pub fn push(&self, records: &str, count: u64) -> Result<bool, StoreError> {
        let len = records.len() as u64;
        self.with(|c| {
            let kept = self.bytes().saturating_add(len) <= self.max_bytes;
            if kept {
                c.execute(
                    "INSERT INTO batches(id, count, records) VALUES (?1, ?2, ?3)",
                    params![uuid::Uuid::now_v7().to_string(), count as i64, records],
                )?;
                self.bytes.fetch_add(len, Ordering::Relaxed);
            } else {
                c.execute(
                    "UPDATE counts SET dropped = dropped + ?1 WHERE k = 0",
                    [count as i64],
                )?;
            }
            Ok(kept)
        })
    }

    /// Adds to the counts that wait for the next accepted batch.
    pub fn add_counts(&self, counts: &RecorderCounts) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE counts SET dropped = dropped + ?1, failed = failed + ?2 WHERE k = 0",
                params![counts.dropped as i64, counts.failed as i64],
            )
            .map(|_| ())
        })
    }

    /// The oldest batch and the counts waiting to be reported with it.
    pub fn oldest(&self) -> Result<Option<(Pending, RecorderCounts)>, StoreError> {
        self.with(|c| {
            let pending = c
                .query_row(
                    "SELECT seq, id, records, count FROM batches ORDER BY seq LIMIT 1",
                    [],
                    |r| {
                        Ok(Pending {
                            seq: r.get(0)?,
                            id: r.get(1)?,
                            records: r.get(2)?,
                            count: r.get::<_, i64>(3)?.max(0) as u64,
                        })
                    },
                )
                .optional()?;
            let counts =
                c.query_row("SELECT dropped, failed FROM counts WHERE k = 0", [], |r| {
                    Ok(RecorderCounts {
                        dropped: r.get::<_, i64>(0)?.max(0) as u64,
                        failed: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                })?;
            Ok(pending.map(|p| (p, counts)))
        })
    }

    /// Removes a batch the server accepted (or refused for good) and the counts reported with it.
    pub fn remove(&self, seq: i64, reported: &RecorderCounts) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let removed: Option<i64> = tx
                .query_row(
                    "DELETE FROM batches WHERE seq = ?1 RETURNING LENGTH(CAST(records AS BLOB))",
                    [seq],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute(
                "UPDATE counts SET dropped = dropped - ?1, failed = failed - ?2 WHERE k = 0",
                params![reported.dropped as i64, reported.failed as i64],
            )?;
            tx.commit()?;
            let removed = removed.unwrap_or(0).max(0) as u64;
            let _ = self
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(removed))
                });
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_spool_counts_what_it_drops_and_keeps_order() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let spool = Spool::open(&dir.path().join("spool.db"), 10).expect("the spool");
        assert!(spool.push("[1,2]", 2).expect("push"));
        assert!(spool.push("[3]", 1).expect("push"));
        assert!(
            !spool.push("[4,5,6,7]", 4).expect("push"),
            "9 + 9 bytes > 10"
        );
        let (first, counts) = spool.oldest().expect("read").expect("a batch");
        assert_eq!((first.records.as_str(), first.count), ("[1,2]", 2));
        assert_eq!(counts.dropped, 4);
        spool.remove(first.seq, &counts).expect("remove");
        let (second, counts) = spool.oldest().expect("read").expect("a batch");
        assert_eq!(second.records, "[3]");
        assert_eq!(counts.dropped, 0, "reported once");
        spool.remove(second.seq, &counts).expect("remove");
        assert!(spool.oldest().expect("read").is_none());
        assert_eq!(spool.len().expect("len"), 0);
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn batches_survive_reopening() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("spool.db");
        Spool::open(&path, 1 << 20)
            .expect("the spool")
            .push("[1]", 1)
            .expect("push");
        let spool = Spool::open(&path, 1 << 20).expect("reopened");
        assert_eq!(spool.len().expect("len"), 1);
        assert_eq!(spool.bytes(), 3, "the size is summed again at open");
    }
}
