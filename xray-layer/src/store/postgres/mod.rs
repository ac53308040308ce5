//! [`PostgresStore`]: X-Ray on PostgreSQL, for pipelines that run on many machines and servers
//! that run as several replicas (feature `postgres`).
//!
//! ```text
//!  app (xray layer) ──▶ xray-server ─┐                ┌─▶ xray-server ──▶ viewer
//!  app (xray layer) ──▶ xray-server ─┼─▶ PostgreSQL ──┼─▶ xray-server ──▶ viewer
//!  app (xray layer, .postgres(url)) ─┘   (schema xray) └─ LISTEN xray_changes
//! ```
//!
//! The store answers every [`Store`] query with the same results as [`SqliteStore`](super::SqliteStore)
//! (one test-suite runs against both). What differs is how it writes and tails:
//!
//! - **Ingest by binary COPY.** A batch's evaluation rows and log lines go in one `COPY ... FROM
//!   STDIN (FORMAT binary)` each, not row by row; steps and executions are upserted a whole
//!   batch per statement, their values bound as arrays ([`records`]).
//! - **Commit order.** Every write takes its change numbers (`seq`) from one counter row, as the
//!   last thing it does before it commits. The row stays locked until the commit, so numbers are
//!   handed out in commit order: when a reader sees change *n*, every change below *n* is
//!   committed and visible too. A live tail that reads `seq > cursor` therefore never skips a
//!   change, however many servers write at once. The bulk of a batch (the COPY) is written
//!   before the lock is taken, so writers only queue for the short end of their transaction.
//! - **Wake-ups.** Each write ends with `NOTIFY xray_changes, '<seq>'` (delivered at commit);
//!   every store listens on its own connection and fires its [`ChangeSignal`], so a viewer on
//!   one replica sees what was written through another at once. The notification is only a
//!   wake-up: the tail re-reads from its cursor, so one that is lost (a reconnect) costs a poll.
//! - **Retention** drops whole day partitions of `evaluations` (see [`schema`]).
//!
//! Connections come from a pool ([`DEFAULT_POOL_SIZE`]); TLS is not built in (`sslmode=disable`
//! or a local socket; put a TLS proxy such as PgBouncer in front for remote databases).

mod candidates;
mod evaluations;
mod read;
mod records;
mod schema;
mod step_rows;
mod write;

use super::query::*;
use super::{redact_password as redact, ChangeSignal, Store, StoreError};
use crate::model::{Evaluation, Record, StepRecord};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use uuid::Uuid;

/// Connections kept by one store (writes and reads share them).
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// How long a call waits for a free connection, or for the server to accept one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The channel every write notifies.
pub(crate) const CHANNEL: &str = "xray_changes";

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// The PostgreSQL store. See the module documentation.
pub struct PostgresStore {
    pool: Pool,
    /// The connection settings, for the listener's own connection.
    config: postgres::Config,
    /// Day partitions known to exist (by first µs).
    partitions: Mutex<std::collections::HashSet<i64>>,
    signal: Arc<ChangeSignal>,
    listening: Arc<AtomicBool>,
    /// Tells the listener thread to stop when the store is dropped.
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or the key=value form),
    /// creates or upgrades X-Ray's schema (`xray`), and starts listening for changes.
    ///
    /// Fails with a clear error when the URL is malformed, the server cannot be reached or
    /// refuses the login, or the database holds a newer X-Ray schema.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        Self::open_with_pool_size(url, DEFAULT_POOL_SIZE)
    }

    /// [`open`](Self::open) with at most `size` pooled connections.
    pub fn open_with_pool_size(url: &str, size: u32) -> Result<PostgresStore, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Io(format!("{}: {e}", redact(url))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("xray");
        }
        let manager = PostgresConnectionManager::new(config.clone(), NoTls);
        // Connect once by hand first: r2d2 retries until its timeout and then reports only
        // "timed out", where the server's own answer ("password authentication failed") is
        // what the user needs.
        let mut first = config
            .connect(NoTls)
            .map_err(|e| StoreError::Io(format!("{}: {}", redact(url), describe(&e))))?;
        schema::migrate(&mut first)?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(size.max(2))
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .build(manager)
            .map_err(|e| StoreError::Io(format!("{}: {e}", redact(url))))?;
        let store = PostgresStore {
            pool,
            config,
            partitions: Mutex::new(Default::default()),
            signal: Arc::new(ChangeSignal::new()),
            listening: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        store.listen();
        Ok(store)
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Io(format!("no database connection: {e}")))
    }

    /// Makes sure the day partitions for `started_at` values exist.
    fn ensure_partitions(
        &self,
        conn: &mut Conn,
        days: impl IntoIterator<Item = i64>,
    ) -> Result<(), StoreError> {
        for started_at in days {
            let (_, from, _) = schema::partition_of(started_at);
            if self
                .partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&from)
            {
                continue;
            }
            schema::ensure_partition(conn, started_at)?;
            self.partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(from);
        }
        Ok(())
    }

    /// Whether the change listener is connected (and wake-ups arrive).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Starts the thread that `LISTEN`s on its own connection and fires the signal on each
    /// notification; it reconnects with backoff, and fires once after reconnecting (changes may
    /// have been committed while it was away).
    fn listen(&self) {
        let config = self.config.clone();
        let signal = Arc::clone(&self.signal);
        let listening = Arc::clone(&self.listening);
        let stop = Arc::clone(&self.stop);
        let spawned = std::thread::Builder::new()
            .name("xray-pg-listen".into())
            .spawn(move || {
                let mut backoff = Duration::from_millis(100);
                while !stop.load(Ordering::Relaxed) {
                    match config.connect(NoTls) {
                        Ok(mut client) => {
                            if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_ok() {
                                listening.store(true, Ordering::Relaxed);
                                signal.notify();
                                backoff = Duration::from_millis(100);
                                listen_until_error(&mut client, &signal, &stop);
                            }
                            listening.store(false, Ordering::Relaxed);
                        }
                        Err(_) => {
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            });
        if spawned.is_err() {
            // No thread: live tails poll on their timer, as with SQLite.
            self.listening.store(false, Ordering::Relaxed);
        }
    }
}

/// Fires `signal` for each notification until the connection fails or `stop` is set.
fn listen_until_error(client: &mut postgres::Client, signal: &ChangeSignal, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let mut fired = false;
        {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_millis(500));
            loop {
                match postgres::fallible_iterator::FallibleIterator::next(&mut iter) {
                    Ok(Some(_)) => fired = true,
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
        if fired {
            signal.notify();
        }
        if client.is_closed() {
            return;
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The server's message when there is one ("password authentication failed for user …"),
/// else the client's.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// Maps a PostgreSQL error to the store's error kinds.
pub(crate) fn pg_error(e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or closed.
        return StoreError::Io(describe(&e));
    };
    let message = describe(&e);
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
    {
        StoreError::Busy(message)
    } else if *code == SqlState::DISK_FULL
        || *code == SqlState::INSUFFICIENT_RESOURCES
        || *code == SqlState::OUT_OF_MEMORY
        || *code == SqlState::INSUFFICIENT_PRIVILEGE
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        StoreError::Io(message)
    } else {
        StoreError::Engine(message)
    }
}

impl Store for PostgresStore {
    fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let days: std::collections::BTreeSet<i64> = batch
            .iter()
            .filter_map(|r| match r {
                Record::StepFinished(s) if !s.evaluations.is_empty() => Some(s.started_at),
                _ => None,
            })
            .map(|t| schema::partition_of(t).1)
            .collect();
        self.ensure_partitions(&mut conn, days)?;
        write::write_batch(&mut conn, batch)
    }

    fn add_recorder_counts(&self, counts: &RecorderCounts) -> Result<(), StoreError> {
        write::add_recorder_counts(&mut *self.conn()?, counts)
    }

    fn recorder_counts(&self) -> Result<RecorderCounts, StoreError> {
        read::recorder_counts(&mut *self.conn()?)
    }

    fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Page<ExecutionSummary>, StoreError> {
        read::list_executions(&mut *self.conn()?, query)
    }

    fn execution(&self, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        read::execution(&mut *self.conn()?, id)
    }

    fn step(&self, id: Uuid) -> Result<Option<StepRecord>, StoreError> {
        read::step(&mut *self.conn()?, id)
    }

    fn evaluations(
        &self,
        step_id: Uuid,
        query: &EvaluationQuery,
    ) -> Result<Page<Evaluation>, StoreError> {
        evaluations::evaluations(&mut *self.conn()?, step_id, query)
    }

    fn find_steps(&self, query: &StepQuery) -> Result<Page<StepSummary>, StoreError> {
        read::find_steps(&mut *self.conn()?, query)
    }

    fn candidate_lineage(
        &self,
        candidate_id: &str,
        query: &LineageQuery,
    ) -> Result<Page<LineageEntry>, StoreError> {
        candidates::candidate_lineage(&mut *self.conn()?, candidate_id, query)
    }

    fn verdict_changes(
        &self,
        step_a: Uuid,
        step_b: Uuid,
        query: &LineageQuery,
    ) -> Result<Page<VerdictChange>, StoreError> {
        candidates::verdict_changes(&mut *self.conn()?, step_a, step_b, query)
    }

    fn count_verdict_changes(&self, step_a: Uuid, step_b: Uuid) -> Result<u64, StoreError> {
        candidates::count_verdict_changes(&mut *self.conn()?, step_a, step_b)
    }

    fn verdict_change_checks(
        &self,
        step_a: Uuid,
        step_b: Uuid,
    ) -> Result<Vec<CheckChange>, StoreError> {
        candidates::verdict_change_checks(&mut *self.conn()?, step_a, step_b)
    }

    fn common_values_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        at_least: u64,
        per_check: usize,
    ) -> Result<Vec<CommonValues>, StoreError> {
        candidates::common_values_only_in(&mut *self.conn()?, step, other, at_least, per_check)
    }

    fn check_values(
        &self,
        step: Uuid,
        check: &str,
        limit: usize,
    ) -> Result<CheckValues, StoreError> {
        evaluations::check_values(&mut *self.conn()?, step, check, limit)
    }

    fn candidates_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        query: &LineageQuery,
    ) -> Result<OnlyIn, StoreError> {
        candidates::candidates_only_in(&mut *self.conn()?, step, other, query)
    }

    fn step_stats(&self, query: &StatsQuery) -> Result<Vec<StepStats>, StoreError> {
        read::step_stats(&mut *self.conn()?, query)
    }

    fn update_execution(&self, id: Uuid, update: &ExecutionUpdate) -> Result<bool, StoreError> {
        write::update_execution(&mut *self.conn()?, id, update)
    }

    fn delete_executions(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        write::delete_executions(&mut *self.conn()?, ids)
    }

    /// Drops the day partitions of `evaluations` that end before `before`, then deletes the
    /// executions (with their steps and remaining rows) that started before it.
    fn delete_executions_before(&self, before: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        for name in schema::partitions_before(&mut conn, before)? {
            write::drop_partition(&mut conn, &name)?;
            if let Some(day) = name
                .strip_prefix("evaluations_d")
                .and_then(|d| d.parse::<i64>().ok())
            {
                self.partitions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&(day * schema::PARTITION_US));
            }
        }
        let ids = read::execution_ids_before(&mut conn, before)?;
        let mut deleted = 0;
        for chunk in ids.chunks(500) {
            deleted += write::delete_executions(&mut conn, chunk)?;
        }
        Ok(deleted)
    }

    fn latest_seq(&self) -> Result<u64, StoreError> {
        read::latest_seq(&mut *self.conn()?)
    }

    fn changes_since(&self, seq: u64, limit: usize) -> Result<Vec<super::Change>, StoreError> {
        read::changes_since(&mut *self.conn()?, seq, limit)
    }

    fn change_signal(&self) -> Option<Arc<ChangeSignal>> {
        Some(Arc::clone(&self.signal))
    }
}
