//! The PostgreSQL schema, its migrations, and the time partitions of `evaluations`.
//!
//! Everything lives in the schema `xray`, so X-Ray can share a database with the application's
//! own tables. The columns are SQLite's (see the SQLite store's schema), with PostgreSQL's types
//! where they serve a query better:
//!
//! - ids are `uuid`; tags are `text[]` with a GIN index (`tags @> ARRAY[..]`);
//! - `evaluations` is **partitioned by day** of its step's start (`started_at`, unix µs), one
//!   table per day, created by the writer before it writes into it. Retention drops a whole
//!   day's table instead of deleting its rows one by one.
//! - an evaluation's failed and passed check names are `text[]` columns, so "failed the rating
//!   check" is an array test, not a JSON parse per row;
//! - `evaluations(candidate_id)` is an ordinary index (per partition): PostgreSQL keeps it
//!   up during COPY at a cost the ingest bench measures, and "where did candidate X go?" is one
//!   index scan;
//! - payloads (JSON text) above ~2 KB are compressed by PostgreSQL itself (TOAST), and stored
//!   out of line, so a list of steps never reads them.
//!
//! Migrations run under an advisory lock: replicas started together migrate once.

use super::pg_error;
use crate::store::StoreError;
use postgres::Client;

/// The newest schema this build understands.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// The advisory lock key held while migrating ("XRAY" + 1).
const MIGRATION_LOCK: i64 = 0x5852_4159_0001;

/// A day, in µs: the span of one `evaluations` partition.
pub(crate) const PARTITION_US: i64 = 86_400_000_000;

const V1: &str = r#"
CREATE TABLE xray.meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO xray.meta(key, value) VALUES
    ('schema_version', 1), ('seq', 0), ('dropped', 0), ('failed', 0);

CREATE TABLE xray.executions (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    started_at      bigint NOT NULL,
    completed_at    bigint,
    status          text NOT NULL DEFAULT 'running',
    tags            text[] NOT NULL DEFAULT '{}',
    notes           text,
    metadata        text NOT NULL DEFAULT '{}',
    input           text,
    output          text,
    error           text,
    service         text,
    host            text,
    pid             bigint,
    step_count      bigint NOT NULL DEFAULT 0,
    error_steps     bigint NOT NULL DEFAULT 0,
    candidates_in   bigint,
    candidates_out  bigint,
    dropped_records bigint NOT NULL DEFAULT 0,
    seq             bigint NOT NULL
);
CREATE INDEX executions_started ON xray.executions(started_at, id);
CREATE INDEX executions_name    ON xray.executions(name, started_at, id);
CREATE INDEX executions_seq     ON xray.executions(seq);
CREATE INDEX executions_tags    ON xray.executions USING gin(tags);

CREATE TABLE xray.steps (
    sid               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                uuid PRIMARY KEY,
    execution_id      uuid NOT NULL,
    parent_id         uuid,
    name              text NOT NULL,
    kind              text,
    started_at        bigint NOT NULL,
    ended_at          bigint,
    duration_us       bigint,
    status            text NOT NULL,
    error             text,
    input             text,
    output            text,
    filters           text,
    evaluations       text,
    selection         text,
    reasoning         text,
    metadata          text NOT NULL DEFAULT '{}',
    candidates_in     bigint,
    candidates_out    bigint,
    elimination       double precision,
    evaluations_kept  bigint NOT NULL DEFAULT 0,
    logs_dropped      bigint NOT NULL DEFAULT 0,
    created_at        bigint NOT NULL,
    seq               bigint NOT NULL
);
CREATE INDEX steps_execution ON xray.steps(execution_id, started_at, sid);
CREATE INDEX steps_kind      ON xray.steps(kind, started_at, id);
CREATE INDEX steps_name      ON xray.steps(name, started_at, id);
CREATE INDEX steps_started   ON xray.steps(started_at, id);
CREATE INDEX steps_seq       ON xray.steps(seq);

CREATE TABLE xray.evaluations (
    step_id        uuid NOT NULL,
    started_at     bigint NOT NULL,
    idx            integer NOT NULL,
    candidate_id   text NOT NULL,
    label          text,
    passed         boolean NOT NULL,
    score          double precision,
    selected       boolean NOT NULL DEFAULT false,
    checks         text NOT NULL DEFAULT '[]',
    failed_checks  text[] NOT NULL DEFAULT '{}',
    passed_checks  text[] NOT NULL DEFAULT '{}',
    metrics        text,
    snapshot       text,
    PRIMARY KEY (step_id, idx, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX evaluations_candidate ON xray.evaluations(candidate_id);

CREATE TABLE xray.logs (
    step_id  uuid NOT NULL,
    idx      integer NOT NULL,
    at       bigint NOT NULL,
    level    text NOT NULL,
    target   text NOT NULL,
    message  text NOT NULL,
    fields   text NOT NULL DEFAULT '{}',
    PRIMARY KEY (step_id, idx)
);
"#;

/// Creates or upgrades the schema; refuses a database whose X-Ray schema is newer.
pub(crate) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_error)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('xray.meta') IS NOT NULL", &[])
        .map_err(pg_error)?
        .get(0);
    if !exists {
        tx.batch_execute("CREATE SCHEMA IF NOT EXISTS xray")
            .map_err(pg_error)?;
        tx.batch_execute(V1).map_err(pg_error)?;
        return tx.commit().map_err(pg_error);
    }
    let found: i64 = tx
        .query_opt(
            "SELECT value FROM xray.meta WHERE key = 'schema_version'",
            &[],
        )
        .map_err(pg_error)?
        .map(|row| row.get(0))
        .ok_or_else(|| {
            StoreError::NotXray("schema `xray` exists but has no schema version".into())
        })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: SCHEMA_VERSION as u32,
        });
    }
    tx.commit().map_err(pg_error)
}

/// The day partition that holds `started_at`: its name and bounds.
pub(crate) fn partition_of(started_at: i64) -> (String, i64, i64) {
    let day = started_at.div_euclid(PARTITION_US);
    let from = day * PARTITION_US;
    let name = if day < 0 {
        format!("evaluations_m{}", -day)
    } else {
        format!("evaluations_d{day}")
    };
    (name, from, from + PARTITION_US)
}

/// Creates the day partition holding `started_at` if it does not exist. Concurrent writers take
/// turns on an advisory lock (a bare `CREATE TABLE IF NOT EXISTS` can still fail when two race).
pub(crate) fn ensure_partition(client: &mut Client, started_at: i64) -> Result<(), StoreError> {
    let (name, from, to) = partition_of(started_at);
    let mut tx = client.transaction().map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_error)?;
    // `name` is made of ASCII letters and digits only, and the bounds are integers.
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS xray.{name} PARTITION OF xray.evaluations
         FOR VALUES FROM ({from}) TO ({to})"
    ))
    .map_err(pg_error)?;
    tx.commit().map_err(pg_error)
}

/// The day partitions that end at or before `before` (unix µs): the ones retention can drop.
pub(crate) fn partitions_before(
    client: &mut Client,
    before: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'xray.evaluations'::regclass",
            &[],
        )
        .map_err(pg_error)?;
    Ok(rows
        .iter()
        .map(|row| row.get::<_, String>(0))
        .filter(|name| {
            partition_day(name).is_some_and(|day| (day + 1).saturating_mul(PARTITION_US) <= before)
        })
        .collect())
}

/// The day number in a partition's name.
fn partition_day(name: &str) -> Option<i64> {
    if let Some(n) = name.strip_prefix("evaluations_d") {
        n.parse().ok()
    } else {
        name.strip_prefix("evaluations_m")
            .and_then(|n| n.parse::<i64>().ok())
            .map(|n| -n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_each_day_once_and_round_trip_their_name() {
        for t in [
            0,
            1,
            PARTITION_US - 1,
            PARTITION_US,
            -1,
            -PARTITION_US,
            1_764_000_000_000_000,
        ] {
            let (name, from, to) = partition_of(t);
            assert!(from <= t && t < to, "{t}");
            assert_eq!(partition_day(&name), Some(from / PARTITION_US), "{name}");
        }
    }
}
