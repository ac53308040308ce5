//! Where records go and how they are read back.
//!
//! A [`Store`] has a write side, used by the writer thread in batches, and a read side, used by
//! `xray-server` and by tests. The trait is engine-neutral: no SQLite type crosses it, so a
//! PostgreSQL store can implement the same trait and the server does not change.
//!
//! Two stores ship with the SDK:
//!
//! | store | when |
//! |---|---|
//! | [`SqliteStore`] | the embedded default: one file, WAL, readable by `xray-server` while the program writes |
//! | [`MemoryStore`] | tests and short-lived tools: nothing touches the disk |
//! | `PostgresStore` (feature `postgres`) | many machines, several `xray-server` replicas: binary COPY ingest, day partitions, commit-ordered live tail |
//!
//! Every list is paginated by an opaque cursor ([`Page::next_cursor`]); passing it back continues
//! where the page ended, whatever was written in between.
//!
//! ```
//! use xray::store::{ExecutionQuery, MemoryStore, Store};
//!
//! let store = MemoryStore::new();
//! let page = store.list_executions(&ExecutionQuery::default())?;
//! assert!(page.items.is_empty());
//! # Ok::<(), xray::store::StoreError>(())
//! ```

mod cursor;
mod memory;
mod metadata;
#[cfg(feature = "postgres")]
mod postgres;
mod preview;
mod query;
mod signal;
pub(crate) mod sqlite;

pub use cursor::Cursor;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use preview::{MAX_PREVIEW_FIELDS, MAX_PREVIEW_PATH_CHARS, MAX_PREVIEW_VALUE_CHARS};
pub use query::*;
pub use signal::{ChangeSignal, Changed};
pub use sqlite::SqliteStore;

use crate::model::{Evaluation, Record, StepRecord};
use std::fmt;
use uuid::Uuid;

/// A store of executions, steps, evaluations and logs.
///
/// Implementations are shared between threads (`Send + Sync`): the writer thread calls
/// [`Store::write`], any number of readers call the query functions.
///
/// Only the write side is required. Every read has a default that answers
/// [`StoreError::Unsupported`], so a store that only receives records (a forwarder, a test double)
/// implements two methods; a store that `xray-server` reads implements them all.
#[allow(unused_variables)]
pub trait Store: Send + Sync + 'static {
    /// Writes a batch atomically (one transaction): all of it or none of it.
    ///
    /// Records are idempotent by id: writing the same batch twice leaves one copy.
    fn write(&self, batch: &[Record]) -> Result<(), StoreError>;

    /// Adds to the recorder counters kept in the store (records dropped on a full queue or made
    /// after their step had ended, records that failed to be written, executions the
    /// recorder's sampling left out), so a reader can show what was lost, and that runs were
    /// sampled.
    fn add_recorder_counts(&self, counts: &RecorderCounts) -> Result<(), StoreError>;

    /// Totals of [`Store::add_recorder_counts`] across every recorder that wrote here.
    fn recorder_counts(&self) -> Result<RecorderCounts, StoreError> {
        Err(StoreError::Unsupported("recorder_counts"))
    }

    /// Executions, newest first, filtered and paginated.
    fn list_executions(
        &self,
        query: &ExecutionQuery,
    ) -> Result<Page<ExecutionSummary>, StoreError> {
        Err(StoreError::Unsupported("list_executions"))
    }

    /// One execution, with its steps (payload-light, in start order).
    fn execution(&self, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        Err(StoreError::Unsupported("execution"))
    }

    /// One step with everything but its evaluation rows (see [`Store::evaluations`]).
    fn step(&self, id: Uuid) -> Result<Option<StepRecord>, StoreError> {
        Err(StoreError::Unsupported("step"))
    }

    /// A step's evaluation rows, in recorded order (or by score), filtered and paginated.
    fn evaluations(
        &self,
        step_id: Uuid,
        query: &EvaluationQuery,
    ) -> Result<Page<Evaluation>, StoreError> {
        Err(StoreError::Unsupported("evaluations"))
    }

    /// Steps across every execution, by kind, name, elimination ratio and time: "every run where
    /// the filter step eliminated more than 90% of candidates". Newest first.
    fn find_steps(&self, query: &StepQuery) -> Result<Page<StepSummary>, StoreError> {
        Err(StoreError::Unsupported("find_steps"))
    }

    /// Every evaluation of one candidate across steps and executions, newest first: "where did
    /// candidate X go?".
    fn candidate_lineage(
        &self,
        candidate_id: &str,
        query: &LineageQuery,
    ) -> Result<Page<LineageEntry>, StoreError> {
        Err(StoreError::Unsupported("candidate_lineage"))
    }

    /// Candidates that both steps judged, whose verdict differs (passed in one and failed in the
    /// other, or selected in one only), in the first step's recorded order: what changed between
    /// two runs of a pipeline. Unknown steps give an empty page.
    fn verdict_changes(
        &self,
        step_a: Uuid,
        step_b: Uuid,
        query: &LineageQuery,
    ) -> Result<Page<VerdictChange>, StoreError> {
        Err(StoreError::Unsupported("verdict_changes"))
    }

    /// How many candidates [`Store::verdict_changes`] lists in all for the two steps (rows, as
    /// it pages them): the number a comparison states before every page is listed. Unknown
    /// steps give 0.
    fn count_verdict_changes(&self, step_a: Uuid, step_b: Uuid) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported("count_verdict_changes"))
    }

    /// The checks behind [`Store::verdict_changes`]: for each check that some changed
    /// candidate failed in one step and not in the other, how many (see [`CheckChange`]). A
    /// check that failed on both sides, or on neither, did not change the verdict. Unknown
    /// steps give none.
    fn verdict_change_checks(
        &self,
        step_a: Uuid,
        step_b: Uuid,
    ) -> Result<Vec<CheckChange>, StoreError> {
        Err(StoreError::Unsupported("verdict_change_checks"))
    }

    /// The candidates `step` judged that `other` did not: how many, and a page of them
    /// (selected first, then passed, in recorded order; `query.limit` of them, from
    /// `query.cursor`). With [`Store::verdict_changes`], the whole difference between two
    /// runs' steps. Unknown steps give none.
    fn candidates_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        query: &LineageQuery,
    ) -> Result<OnlyIn, StoreError> {
        Err(StoreError::Unsupported("candidates_only_in"))
    }

    /// The values check `check` of step `step` observed, the `limit` most frequent with how
    /// many passed and failed: which keyword found the candidates, which categories a category
    /// check let through. Counts the rows kept (a sampled step's sample). An unknown step or
    /// check gives no values.
    fn check_values(
        &self,
        step: Uuid,
        check: &str,
        limit: usize,
    ) -> Result<CheckValues, StoreError> {
        Err(StoreError::Unsupported("check_values"))
    }

    /// What the candidates `step` judged and `other` did not were (those
    /// [`Store::candidates_only_in`] lists): for each check of `step`, the values at least
    /// `at_least` of them had, `per_check` at most, the most frequent first ("phone case" for
    /// 1,405 of them). Checks with no such value are left out; unknown steps give none.
    fn common_values_only_in(
        &self,
        step: Uuid,
        other: Uuid,
        at_least: u64,
        per_check: usize,
    ) -> Result<Vec<CommonValues>, StoreError> {
        Err(StoreError::Unsupported("common_values_only_in"))
    }

    /// Per step name: count, duration percentiles, error rate, mean elimination.
    fn step_stats(&self, query: &StatsQuery) -> Result<Vec<StepStats>, StoreError> {
        Err(StoreError::Unsupported("step_stats"))
    }

    /// Sets an execution's tags and/or notes. Returns whether the execution exists.
    fn update_execution(&self, id: Uuid, update: &ExecutionUpdate) -> Result<bool, StoreError> {
        Err(StoreError::Unsupported("update_execution"))
    }

    /// Deletes executions with their steps, evaluations and logs. Returns how many existed.
    fn delete_executions(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported("delete_executions"))
    }

    /// Deletes executions that started before `before` (unix µs). Returns how many.
    fn delete_executions_before(&self, before: i64) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported("delete_executions_before"))
    }

    /// The sequence number of the latest change (0 for an empty store): where a live tail starts.
    fn latest_seq(&self) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported("latest_seq"))
    }

    /// Changes after `seq`, in commit order, at most `limit`: for live tailing.
    fn changes_since(&self, seq: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        Err(StoreError::Unsupported("changes_since"))
    }

    /// Background upkeep (secondary indexes), called by the writer when its queue is empty.
    /// Returns whether work remains. Reads must be correct whether or not it has run.
    fn maintain(&self) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// A signal fired when changes are committed by any writer, this process or another (see
    /// [`ChangeSignal`]); `None` when the store has none and a live tail must poll.
    fn change_signal(&self) -> Option<std::sync::Arc<ChangeSignal>> {
        None
    }
}

/// Which of its execution's funnel ends a finished step can move, `(in, out)`: the candidates
/// in come from the first step that counted the candidates it took in, the candidates out from
/// the last top-level step that counted those it let out. A store that keeps the funnel ends
/// up batch by batch looks them up again only when a batch holds such a step.
pub(crate) fn funnel_ends_moved_by(step: &StepRecord) -> (bool, bool) {
    (
        step.candidates_in.is_some(),
        step.candidates_out.is_some() && step.parent_id.is_none(),
    )
}

/// A database URL fit to print: its password replaced by `***`, in the URL form
/// (`postgres://user:secret@host/db`) and the key=value form (`host=db password=secret`).
pub fn redact_password(url: &str) -> String {
    if let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) {
        if at > scheme {
            if let Some((user, _)) = url[scheme + 3..at].split_once(':') {
                return format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]);
            }
        }
        return url.to_owned();
    }
    url.split(' ')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a store call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, created or written (path, permissions, disk full).
    Io(String),
    /// The file is not an X-Ray database, or is corrupt.
    NotXray(String),
    /// The database was written by a newer X-Ray; this version does not know its schema.
    NewerSchema {
        /// The schema version found in the file.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The database is locked by another writer for longer than the busy timeout.
    Busy(String),
    /// A query parameter is invalid; `field` names it.
    InvalidParameter {
        /// The parameter's name (`cursor`, `limit`, …).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Any other engine error.
    Engine(String),
    /// This store does not answer that query (it only receives records).
    Unsupported(&'static str),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        StoreError::InvalidParameter {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(m) => write!(f, "cannot use the database: {m}"),
            StoreError::NotXray(m) => write!(f, "not an X-Ray database: {m}"),
            StoreError::NewerSchema { found, supported } => write!(
                f,
                "the database has schema version {found}, newer than this X-Ray supports ({supported}); upgrade X-Ray"
            ),
            StoreError::Busy(m) => write!(f, "the database is locked: {m}"),
            StoreError::InvalidParameter { field, message } => write!(f, "invalid `{field}`: {message}"),
            StoreError::Engine(m) => write!(f, "database error: {m}"),
            StoreError::Unsupported(q) => write!(f, "this store does not answer `{q}`"),
        }
    }
}

impl std::error::Error for StoreError {}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_never_reach_what_is_printed() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_password("postgres://app@db/x"),
            "postgres://app@db/x"
        );
        assert_eq!(
            redact_password("host=db user=app password=s3cret"),
            "host=db user=app password=***"
        );
        assert_eq!(redact_password("xray.db"), "xray.db");
    }
}
