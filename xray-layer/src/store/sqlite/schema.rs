//! The SQLite schema and its migrations, by `PRAGMA user_version`.
//!
//! The seed's tables and column names are kept (`executions(id, name, started_at, completed_at,
//! tags, notes)`, `steps(id, execution_id, name, input, output, filters, evaluations, selection,
//! reasoning, metadata, created_at)`); what the features need is added beside them.
//!
//! Choices that matter for speed (see DESIGN's measured facts):
//! - `evaluations` is a `WITHOUT ROWID` table keyed by `(step_sid, idx)`: rows of one step are
//!   inserted in key order and a step's page of evaluations is one range read.
//! - No index on `evaluations.candidate_id`: keeping a random-order index up on every insert cuts
//!   ingest several-fold. "Where did candidate X go?" uses `candidate_index`, filled by the writer
//!   after each batch from the steps written since `indexed_seq`, in candidate order, plus a scan
//!   of the few steps not indexed yet.
//! - Failed check names are kept in `evaluations.failed_checks` as `\x1fname\x1f…`, so "failed the
//!   rating check" is a string test, not a JSON parse per row.
//! - `steps.sid` is `AUTOINCREMENT`, so a deleted step's number is never reused by a new one.

use super::sqlite_error;
use crate::store::StoreError;
use rusqlite::Connection;

/// The newest schema this build understands.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The `application_id` header of X-Ray databases ("XRAY").
pub(crate) const APPLICATION_ID: i32 = 0x5852_4159;

const V1: &str = r#"
CREATE TABLE xray_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO xray_meta(key, value) VALUES ('seq', 0), ('indexed_seq', 0), ('dropped', 0), ('failed', 0);

CREATE TABLE executions (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    status          TEXT NOT NULL DEFAULT 'running',
    tags            TEXT NOT NULL DEFAULT '[]',
    notes           TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    input           TEXT,
    output          TEXT,
    error           TEXT,
    service         TEXT,
    host            TEXT,
    pid             INTEGER,
    step_count      INTEGER NOT NULL DEFAULT 0,
    error_steps     INTEGER NOT NULL DEFAULT 0,
    candidates_in   INTEGER,
    candidates_out  INTEGER,
    dropped_records INTEGER NOT NULL DEFAULT 0,
    seq             INTEGER NOT NULL
);
CREATE INDEX executions_started ON executions(started_at, id);
CREATE INDEX executions_name    ON executions(name, started_at);
CREATE INDEX executions_seq     ON executions(seq);

CREATE TABLE steps (
    sid               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    execution_id      TEXT NOT NULL,
    parent_id         TEXT,
    name              TEXT NOT NULL,
    kind              TEXT,
    started_at        INTEGER NOT NULL,
    ended_at          INTEGER,
    duration_us       INTEGER,
    status            TEXT NOT NULL,
    error             TEXT,
    input             TEXT,
    output            TEXT,
    filters           TEXT,
    evaluations       TEXT,
    selection         TEXT,
    reasoning         TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}',
    candidates_in     INTEGER,
    candidates_out    INTEGER,
    elimination       REAL,
    evaluations_kept  INTEGER NOT NULL DEFAULT 0,
    logs_dropped      INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    seq               INTEGER NOT NULL
);
CREATE INDEX steps_execution ON steps(execution_id, started_at);
CREATE INDEX steps_kind      ON steps(kind, started_at);
CREATE INDEX steps_name      ON steps(name, started_at);
CREATE INDEX steps_started   ON steps(started_at);
CREATE INDEX steps_seq       ON steps(seq);

CREATE TABLE evaluations (
    step_sid      INTEGER NOT NULL,
    idx           INTEGER NOT NULL,
    candidate_id  TEXT NOT NULL,
    label         TEXT,
    passed        INTEGER NOT NULL,
    score         REAL,
    selected      INTEGER NOT NULL DEFAULT 0,
    checks        TEXT NOT NULL DEFAULT '[]',
    failed_checks TEXT NOT NULL DEFAULT '',
    metrics       TEXT,
    snapshot      TEXT,
    PRIMARY KEY (step_sid, idx)
) WITHOUT ROWID;

CREATE TABLE candidate_index (
    candidate_id TEXT NOT NULL,
    step_sid     INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    PRIMARY KEY (candidate_id, step_sid, idx)
) WITHOUT ROWID;

CREATE TABLE logs (
    step_sid INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    level    TEXT NOT NULL,
    target   TEXT NOT NULL,
    message  TEXT NOT NULL,
    fields   TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (step_sid, idx)
) WITHOUT ROWID;
"#;

/// Creates or upgrades the schema; refuses files that are not X-Ray databases or are newer.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(not_a_database)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(not_a_database)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        if app_id != APPLICATION_ID {
            return Err(StoreError::NotXray(
                "the file is an SQLite database of another application".into(),
            ));
        }
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let version: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_error)?;
    if version == 0 {
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(sqlite_error)?;
        if tables > 0 {
            return Err(StoreError::NotXray(
                "the file is an SQLite database with tables that X-Ray did not create".into(),
            ));
        }
        tx.execute_batch(V1).map_err(sqlite_error)?;
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)
}

fn not_a_database(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            StoreError::NotXray("the file is not an SQLite database".into())
        }
        _ => sqlite_error(e),
    }
}
