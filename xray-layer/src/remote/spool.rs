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
//!
//! Several processes may share one spool file (workers of one service started in the same
//! directory use the default path): a sender **claims** the batch it sends for
//! [`CLAIM_LEASE_US`], so two senders never send the same batch, and a batch claimed by a
//! process that died is sent by another once the lease has run out. The counts waiting to be
//! reported are attached to the batch when it is first claimed, and travel with it (under its
//! id, which the server counts once) until it is accepted. The size bound is kept in the file,
//! so it holds across processes.

use crate::store::{RecorderCounts, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long a claim on a batch lasts (µs): a sender that neither removed nor re-claimed its
/// batch by then is taken to be gone, and another process may send the batch.
pub(crate) const CLAIM_LEASE_US: i64 = 60_000_000;
/// How long a spool call waits for another process's transaction on the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Who claims batches: this spool, in this process.
    owner: String,
}

fn error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Io(format!("spool {}: {e}", path.display()))
}

fn now_us() -> i64 {
    crate::model::now_us()
}

impl Spool {
    /// Opens (or creates) the spool at `path`.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Spool, StoreError> {
        let mut conn = Connection::open(path).map_err(|e| error(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| error(path, e))?;
        crate::store::sqlite::use_wal(&conn, BUSY_TIMEOUT).map_err(|e| error(path, e))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(|e| error(path, e))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| error(path, e))?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS batches (
                 seq           INTEGER PRIMARY KEY AUTOINCREMENT,
                 id            TEXT NOT NULL,
                 count         INTEGER NOT NULL,
                 records       TEXT NOT NULL,
                 claimed_by    TEXT,
                 claimed_until INTEGER,
                 dropped       INTEGER NOT NULL DEFAULT 0,
                 failed        INTEGER NOT NULL DEFAULT 0,
                 sampled_out   INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS counts (
                 k           INTEGER PRIMARY KEY CHECK (k = 0),
                 dropped     INTEGER NOT NULL,
                 failed      INTEGER NOT NULL,
                 sampled_out INTEGER NOT NULL DEFAULT 0
             );
             INSERT OR IGNORE INTO counts(k, dropped, failed) VALUES (0, 0, 0);
             CREATE TABLE IF NOT EXISTS size (
                 k     INTEGER PRIMARY KEY CHECK (k = 0),
                 bytes INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO size(k, bytes)
                 SELECT 0, COALESCE(SUM(LENGTH(CAST(records AS BLOB))), 0) FROM batches;",
        )
        .map_err(|e| error(path, e))?;
        // A spool written before batches were claimed: add the claim columns.
        let claimable: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info('batches') WHERE name = 'claimed_by'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| error(path, e))?;
        if !claimable {
            tx.execute_batch(
                "ALTER TABLE batches ADD COLUMN claimed_by TEXT;
                 ALTER TABLE batches ADD COLUMN claimed_until INTEGER;
                 ALTER TABLE batches ADD COLUMN dropped INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE batches ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;",
            )
            .map_err(|e| error(path, e))?;
        }
        // A spool written before sampled-out runs were counted: add their columns.
        for table in ["batches", "counts"] {
            let counted: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = 'sampled_out'",
                    [table],
                    |r| r.get(0),
                )
                .map_err(|e| error(path, e))?;
            if !counted {
                tx.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN sampled_out INTEGER NOT NULL DEFAULT 0;"
                ))
                .map_err(|e| error(path, e))?;
            }
        }
        tx.commit().map_err(|e| error(path, e))?;
        Ok(Spool {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            max_bytes,
            owner: format!("{}:{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Io(format!("spool {}: lock poisoned", self.path.display())))?;
        f(&mut conn).map_err(|e| error(&self.path, e))
    }

    /// Bytes of JSON waiting (from every process that shares the file).
    pub fn bytes(&self) -> u64 {
        self.with(|c| {
            c.query_row("SELECT bytes FROM size WHERE k = 0", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n.max(0) as u64)
        .unwrap_or(0)
    }

    /// Batches waiting.
    pub fn len(&self) -> Result<u64, StoreError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM batches", [], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
    }

    /// Appends a batch, or counts its records as dropped when the spool is full. Returns whether
    /// it was kept.
    pub fn push(&self, records: &str, count: u64) -> Result<bool, StoreError> {
        let len = records.len() as i64;
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let bytes: i64 =
                tx.query_row("SELECT bytes FROM size WHERE k = 0", [], |r| r.get(0))?;
            let kept = (bytes.max(0) as u64).saturating_add(len as u64) <= self.max_bytes;
            if kept {
                tx.execute(
                    "INSERT INTO batches(id, count, records) VALUES (?1, ?2, ?3)",
                    params![uuid::Uuid::now_v7().to_string(), count as i64, records],
                )?;
                tx.execute("UPDATE size SET bytes = bytes + ?1 WHERE k = 0", [len])?;
            } else {
                tx.execute(
                    "UPDATE counts SET dropped = dropped + ?1 WHERE k = 0",
                    [count as i64],
                )?;
            }
            tx.commit()?;
            Ok(kept)
        })
    }

    /// Adds to the counts that wait for the next accepted batch.
    pub fn add_counts(&self, counts: &RecorderCounts) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE counts SET dropped = dropped + ?1, failed = failed + ?2,
                 sampled_out = sampled_out + ?3 WHERE k = 0",
                params![
                    counts.dropped as i64,
                    counts.failed as i64,
                    counts.sampled_out as i64
                ],
            )
            .map(|_| ())
        })
    }

    /// Claims the oldest batch nobody else holds a live claim on (or this spool's own claim),
    /// attaching the counts waiting to be reported; returns it with those counts.
    pub fn oldest(&self) -> Result<Option<(Pending, RecorderCounts)>, StoreError> {
        self.with(|c| {
            let now = now_us();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let pending = tx
                .query_row(
                    "SELECT seq, id, records, count, claimed_by, dropped, failed, sampled_out
                     FROM batches
                     WHERE claimed_by IS NULL OR claimed_by = ?1 OR claimed_until < ?2
                     ORDER BY seq LIMIT 1",
                    params![self.owner, now],
                    |r| {
                        Ok((
                            Pending {
                                seq: r.get(0)?,
                                id: r.get(1)?,
                                records: r.get(2)?,
                                count: r.get::<_, i64>(3)?.max(0) as u64,
                            },
                            r.get::<_, Option<String>>(4)?,
                            RecorderCounts {
                                dropped: r.get::<_, i64>(5)?.max(0) as u64,
                                failed: r.get::<_, i64>(6)?.max(0) as u64,
                                sampled_out: r.get::<_, i64>(7)?.max(0) as u64,
                            },
                        ))
                    },
                )
                .optional()?;
            let Some((pending, claimed_by, mut counts)) = pending else {
                // No batch to carry the counts waiting (every later batch was dropped): they
                // go in a batch of their own, with no records.
                let counts = take_waiting_counts(&tx)?;
                if counts == RecorderCounts::default() {
                    return Ok(None);
                }
                let id = uuid::Uuid::now_v7().to_string();
                tx.execute(
                    "INSERT INTO batches(id, count, records, claimed_by, claimed_until, dropped,
                     failed, sampled_out) VALUES (?1, 0, '[]', ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        self.owner,
                        now + CLAIM_LEASE_US,
                        counts.dropped as i64,
                        counts.failed as i64,
                        counts.sampled_out as i64
                    ],
                )?;
                let seq = tx.last_insert_rowid();
                tx.execute("UPDATE size SET bytes = bytes + 2 WHERE k = 0", [])?;
                tx.commit()?;
                let pending = Pending {
                    seq,
                    id,
                    records: "[]".into(),
                    count: 0,
                };
                return Ok(Some((pending, counts)));
            };
            if claimed_by.is_none() {
                // First claim: the counts waiting go with this batch from now on.
                counts = take_waiting_counts(&tx)?;
            }
            tx.execute(
                "UPDATE batches SET claimed_by = ?2, claimed_until = ?3, dropped = ?4, failed = ?5,
                 sampled_out = ?6 WHERE seq = ?1",
                params![
                    pending.seq,
                    self.owner,
                    now + CLAIM_LEASE_US,
                    counts.dropped as i64,
                    counts.failed as i64,
                    counts.sampled_out as i64
                ],
            )?;
            tx.commit()?;
            Ok(Some((pending, counts)))
        })
    }

    /// Removes a batch the server accepted, with the counts reported with it.
    pub fn remove(&self, seq: i64) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let removed: Option<i64> = tx
                .query_row(
                    "DELETE FROM batches WHERE seq = ?1 RETURNING LENGTH(CAST(records AS BLOB))",
                    [seq],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute(
                "UPDATE size SET bytes = max(0, bytes - ?1) WHERE k = 0",
                [removed.unwrap_or(0)],
            )?;
            tx.commit()
        })
    }

    /// Removes a batch the server refused for good: its counts go back to wait for the next
    /// batch, with its own records counted as failed.
    pub fn refuse(
        &self,
        seq: i64,
        attached: &RecorderCounts,
        count: u64,
    ) -> Result<(), StoreError> {
        self.remove(seq)?;
        self.add_counts(&RecorderCounts {
            failed: attached.failed + count,
            ..*attached
        })
    }
}

/// The counts waiting for a batch to carry them, reset to zero (they go with it from now on).
fn take_waiting_counts(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<RecorderCounts> {
    let counts = tx.query_row(
        "SELECT dropped, failed, sampled_out FROM counts WHERE k = 0",
        [],
        |r| {
            Ok(RecorderCounts {
                dropped: r.get::<_, i64>(0)?.max(0) as u64,
                failed: r.get::<_, i64>(1)?.max(0) as u64,
                sampled_out: r.get::<_, i64>(2)?.max(0) as u64,
            })
        },
    )?;
    tx.execute(
        "UPDATE counts SET dropped = 0, failed = 0, sampled_out = 0 WHERE k = 0",
        [],
    )?;
    Ok(counts)
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
        // Sent again (the server did not answer): the same counts go with the same batch.
        let (again, counts) = spool.oldest().expect("read").expect("a batch");
        assert_eq!((again.id.as_str(), counts.dropped), (first.id.as_str(), 4));
        spool.remove(first.seq).expect("remove");
        let (second, counts) = spool.oldest().expect("read").expect("a batch");
        assert_eq!(second.records, "[3]");
        assert_eq!(counts.dropped, 0, "reported once");
        // Dropped while the last batch is in flight: the counts get a batch of their own.
        assert!(!spool.push("[4,5,6,7,8,9,10]", 7).expect("push"));
        spool.remove(second.seq).expect("remove");
        let (carrier, counts) = spool.oldest().expect("read").expect("a batch");
        assert_eq!((carrier.records.as_str(), carrier.count), ("[]", 0));
        assert_eq!(counts.dropped, 7);
        spool.remove(carrier.seq).expect("remove");
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

    #[test]
    fn two_processes_sharing_a_spool_never_send_the_same_batch() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("spool.db");
        // Two handles: as two processes started in the same directory would have.
        let a = Spool::open(&path, 1 << 20).expect("a");
        let b = Spool::open(&path, 1 << 20).expect("b");
        a.push("[1]", 1).expect("push");
        b.push("[2]", 1).expect("push");
        a.add_counts(&RecorderCounts {
            dropped: 3,
            ..RecorderCounts::default()
        })
        .expect("counts");
        let (first, counts_a) = a.oldest().expect("read").expect("a batch");
        let (second, counts_b) = b.oldest().expect("read").expect("a batch");
        assert_ne!(first.seq, second.seq, "each sender claims its own batch");
        assert_eq!(counts_a.dropped + counts_b.dropped, 3, "counts go out once");
        assert!(b
            .oldest()
            .expect("read")
            .is_some_and(|(p, _)| p.seq == second.seq));
        assert_eq!(a.bytes(), 6, "the size is shared");
        a.remove(first.seq).expect("remove");
        assert_eq!(b.bytes(), 3);
    }

    #[test]
    fn processes_starting_together_all_open_one_new_spool() {
        // Workers of one service started at once open the same new file: none may fail with
        // "database is locked" (CI saw it when two recorders started together).
        for round in 0..20 {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path().join("spool.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        Spool::open(&path, 1 << 20).and_then(|s| s.push("[1]", 1))
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().expect("the opener thread");
                assert!(opened.is_ok(), "round {round}: {opened:?}");
            }
            let spool = Spool::open(&path, 1 << 20).expect("reopened");
            assert_eq!(spool.len().expect("len"), 8, "round {round}");
        }
    }

    #[test]
    fn a_spool_from_before_claims_is_upgraded_and_keeps_its_batches() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("spool.db");
        let old = Connection::open(&path).expect("old spool");
        old.execute_batch(
            "CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
                 count INTEGER NOT NULL, records TEXT NOT NULL);
             INSERT INTO batches(id, count, records) VALUES ('b1', 1, '[1]');",
        )
        .expect("old schema");
        drop(old);
        let spool = Spool::open(&path, 1 << 20).expect("upgraded");
        let (batch, _) = spool.oldest().expect("read").expect("the old batch");
        assert_eq!((batch.id.as_str(), batch.records.as_str()), ("b1", "[1]"));
    }

    #[test]
    fn a_spool_from_before_sampling_counts_keeps_its_counts_and_carries_the_new_one() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("spool.db");
        let old = Connection::open(&path).expect("old spool");
        old.execute_batch(
            "CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
                 count INTEGER NOT NULL, records TEXT NOT NULL, claimed_by TEXT,
                 claimed_until INTEGER, dropped INTEGER NOT NULL DEFAULT 0,
                 failed INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE counts (k INTEGER PRIMARY KEY CHECK (k = 0), dropped INTEGER NOT NULL,
                 failed INTEGER NOT NULL);
             INSERT INTO counts(k, dropped, failed) VALUES (0, 3, 2);
             INSERT INTO batches(id, count, records) VALUES ('b1', 1, '[1]');",
        )
        .expect("the schema before sampled-out counts");
        drop(old);
        let spool = Spool::open(&path, 1 << 20).expect("upgraded");
        spool
            .add_counts(&RecorderCounts {
                dropped: 1,
                failed: 0,
                sampled_out: 7,
            })
            .expect("add counts");
        let (batch, counts) = spool.oldest().expect("read").expect("the old batch");
        assert_eq!(batch.id, "b1");
        assert_eq!(
            counts,
            RecorderCounts {
                dropped: 4,
                failed: 2,
                sampled_out: 7
            },
            "the waiting counts, old and new, go with the first batch claimed"
        );
        // Claimed again (not yet accepted): the same counts, read back from the batch.
        let (_, again) = spool.oldest().expect("read").expect("the same batch");
        assert_eq!(again, counts);
        spool.remove(batch.seq).expect("accepted");
        assert!(spool.oldest().expect("read").is_none(), "reported once");
    }
}
