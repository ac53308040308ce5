//! [`SqliteStore`]: the embedded default store, one SQLite file in WAL mode.
//!
//! The file can be read by `xray-server` (or any SQLite client) while the program writes to it.
//! Writes go through one connection, one transaction per batch, with cached statements; reads
//! use a small pool of their own connections, so a reader never waits for a batch to commit.

mod candidates;
mod evaluations;
mod identity;
mod read;
mod schema;
mod write;

use identity::FileIdentity;

pub(crate) use write::SEP;

use super::query::*;
use super::{Store, StoreError};
use crate::model::{Evaluation, Record, StepRecord};
use crate::recorder::arena::StepRows;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use uuid::Uuid;

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections kept open.
const READERS: usize = 4;
/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 16 * 1024;
/// Evaluation rows indexed per call of [`Store::maintain`] (a short transaction between batches).
const INDEX_CHUNK: usize = 20_000;

/// The SQLite store. See the table above.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// In memory: there is one connection, and reads use it too.
    in_memory: bool,
    /// The file opened, checked before each write (see [`identity`]).
    identity: Option<FileIdentity>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    ///
    /// Fails with a clear error when the path cannot be created or written, when the file is not
    /// an X-Ray database, or when it was written by a newer X-Ray.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        use_wal(&conn, BUSY_TIMEOUT).map_err(|e| io_error(&path, e))?;
        // A batch of 10,000 evaluations is a few MB: with SQLite's default 2 MB cache the
        // transaction would spill pages to the WAL before it commits.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(|e| io_error(&path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| io_error(&path, e))?;
        schema::migrate(&mut conn)?;
        // Prove the file is writable now, not on the first batch in the background.
        conn.execute("UPDATE xray_meta SET value = value WHERE key = 'seq'", [])
            .map_err(|e| io_error(&path, e))?;
        Ok(SqliteStore {
            identity: FileIdentity::of(&path),
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            in_memory: false,
        })
    }

    /// A database in memory, with a single connection (see [`MemoryStore`](crate::store::MemoryStore)).
    pub(crate) fn open_memory() -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open_in_memory().map_err(sqlite_error)?;
        schema::migrate(&mut conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            path: PathBuf::from(":memory:"),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            in_memory: true,
            identity: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The write connection, once the path is known to still name the file it writes to.
    fn writable(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        if let Some(identity) = &self.identity {
            identity.check()?;
        }
        Ok(self.writer())
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.in_memory {
            return f(&self.writer());
        }
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?,
        };
        let result = f(&conn);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < READERS {
            readers.push(conn);
        }
        result
    }

    /// Writes a batch whose steps' evaluations may still be in their arenas (`rows[i]` for
    /// `batch[i]`): bound straight from there, without an owned `Evaluation` per row.
    pub(crate) fn write_with_rows(
        &self,
        batch: &[Record],
        rows: &mut [Option<Box<StepRows>>],
    ) -> Result<(), StoreError> {
        let mut conn = self.writable()?;
        write::write_batch(&mut conn, batch, rows).map_err(|e| with_os_error(&conn, e))
    }

    /// Indexes candidate ids of steps written since the last call (at most `limit` rows).
    /// The writer calls it after each batch; returns the number of rows indexed.
    pub fn index_candidates(&self, limit: usize) -> Result<usize, StoreError> {
        write::index_candidates(&mut *self.writable()?, limit)
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| io_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| io_error(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Puts the file in WAL mode, retrying for up to `timeout` while other processes open it too
/// (each attempt may itself wait in the busy handler, so the worst case is about twice that).
///
/// The switch to WAL takes an exclusive lock, and when another connection is switching the same
/// new file at that moment SQLite answers `SQLITE_BUSY` at once, without the busy handler (two
/// workers of one service started together saw "database is locked"). WAL is kept in the file,
/// so only the first opener switches; the others read the mode and go on.
pub(crate) fn use_wal(conn: &Connection, timeout: Duration) -> rusqlite::Result<()> {
    let mode = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, String>(0));
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let switched = mode("PRAGMA journal_mode").and_then(|current| {
            if current.eq_ignore_ascii_case("wal") {
                Ok(())
            } else {
                mode("PRAGMA journal_mode = WAL").map(drop)
            }
        });
        match switched {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

fn io_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            StoreError::NotXray(format!("{} is not an SQLite database", path.display()))
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Busy(format!("{}: {e}", path.display()))
        }
        _ => StoreError::Io(format!("{}: {e}", path.display())),
    }
}

/// Adds the operating system's reason to an I/O error ("disk I/O error" says little; "File too
/// large" or "No space left on device" says what to do).
fn with_os_error(conn: &Connection, e: StoreError) -> StoreError {
    let StoreError::Io(message) = e else {
        return e;
    };
    // SAFETY: `conn` is a live connection, borrowed (so not closed or used elsewhere) for the
    // duration of the call, and `sqlite3_system_errno` only reads the errno that the
    // connection's last failed file operation left.
    let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
    if errno == 0 {
        return StoreError::Io(message);
    }
    let os = std::io::Error::from_raw_os_error(errno);
    StoreError::Io(format!("{message} ({os})"))
}

/// Maps an SQLite error to the store's error kinds.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy(e.to_string()),
        Some(
            C::DiskFull | C::CannotOpen | C::ReadOnly | C::PermissionDenied | C::SystemIoFailure,
        ) => StoreError::Io(e.to_string()),
        Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::NotXray(e.to_string()),
        _ => StoreError::Engine(e.to_string()),
    }
}

impl Store for SqliteStore {
    fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        let mut conn = self.writable()?;
        write::write_batch(&mut conn, batch, &mut []).map_err(|e| with_os_error(&conn, e))
    }

    fn add_recorder_counts(&self, counts: &RecorderCounts) -> Result<(), StoreError> {
        write::add_recorder_counts(&mut *self.writable()?, counts)
    }

    fn recorder_counts(&self) -> Result<RecorderCounts, StoreError> {
        self.read(read::recorder_counts)
    }

    fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Page<ExecutionSummary>, StoreError> {
        self.read(|c| read::list_executions(c, query))
    }

    fn execution(&self, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        self.read(|c| read::execution(c, id))
    }

    fn step(&self, id: Uuid) -> Result<Option<StepRecord>, StoreError> {
        self.read(|c| read::step(c, id))
    }

    fn evaluations(
        &self,
        step_id: Uuid,
        query: &EvaluationQuery,
    ) -> Result<Page<Evaluation>, StoreError> {
        self.read(|c| evaluations::evaluations(c, step_id, query))
    }

    fn find_steps(&self, query: &StepQuery) -> Result<Page<StepSummary>, StoreError> {
        self.read(|c| read::find_steps(c, query))
    }

    fn candidate_lineage(
        &self,
        candidate_id: &str,
        query: &LineageQuery,
    ) -> Result<Page<LineageEntry>, StoreError> {
        self.read(|c| candidates::candidate_lineage(c, candidate_id, query))
    }

    fn verdict_changes(
        &self,
        step_a: Uuid,
        step_b: Uuid,
        query: &LineageQuery,
    ) -> Result<Page<VerdictChange>, StoreError> {
        self.read(|c| candidates::verdict_changes(c, step_a, step_b, query))
    }

    fn count_verdict_changes(&self, step_a: Uuid, step_b: Uuid) -> Result<u64, StoreError> {
        self.read(|c| candidates::count_verdict_changes(c, step_a, step_b))
    }

    fn verdict_change_checks(
        &self,
        step_a: Uuid,
        step_b: Uuid,
    ) -> Result<Vec<CheckChange>, StoreError> {
        self.read(|c| candidates::verdict_change_checks(c, step_a, step_b))
    }

    fn common_values_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        at_least: u64,
        per_check: usize,
    ) -> Result<Vec<CommonValues>, StoreError> {
        self.read(|c| candidates::common_values_only_in(c, step, other, at_least, per_check))
    }

    fn check_values(
        &self,
        step: Uuid,
        check: &str,
        limit: usize,
    ) -> Result<CheckValues, StoreError> {
        self.read(|c| evaluations::check_values(c, step, check, limit))
    }

    fn candidates_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        query: &LineageQuery,
    ) -> Result<OnlyIn, StoreError> {
        self.read(|c| candidates::candidates_only_in(c, step, other, query))
    }

    fn latest_seq(&self) -> Result<u64, StoreError> {
        self.read(read::latest_seq)
    }

    fn step_stats(&self, query: &StatsQuery) -> Result<Vec<StepStats>, StoreError> {
        self.read(|c| read::step_stats(c, query))
    }

    fn update_execution(&self, id: Uuid, update: &ExecutionUpdate) -> Result<bool, StoreError> {
        write::update_execution(&mut *self.writable()?, id, update)
    }

    fn delete_executions(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        write::delete_executions(&mut *self.writable()?, ids)
    }

    fn delete_executions_before(&self, before: i64) -> Result<u64, StoreError> {
        let ids = self.read(|c| read::execution_ids_before(c, before))?;
        let mut deleted = 0;
        for chunk in ids.chunks(500) {
            deleted += write::delete_executions(&mut *self.writable()?, chunk)?;
        }
        Ok(deleted)
    }

    fn changes_since(&self, seq: u64, limit: usize) -> Result<Vec<super::Change>, StoreError> {
        self.read(|c| read::changes_since(c, seq, limit))
    }

    /// Moves the candidate index forward by a chunk of rows (20,000). Lineage queries scan
    /// the steps not indexed yet, so they are complete whether or not this has caught up.
    fn maintain(&self) -> Result<bool, StoreError> {
        Ok(self.index_candidates(INDEX_CHUNK)? > 0)
    }
}
