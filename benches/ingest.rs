//! How fast evaluations get into an SQLite file through the layer, beside the same rows
//! inserted directly with rusqlite.
//!
//! `cargo bench -p xray-benches --bench ingest`
//!
//! One iteration is one execution of 200 filter steps, each judging 50 candidates of a
//! deterministic catalog (10,000 evaluations, three checks each), written to a fresh file in a
//! temporary directory. Opening the file (schema creation) and closing it are not timed.
//!
//! | id | what is timed |
//! |---|---|
//! | `xray_layer` | from the first step to `guard.flush()` returning: the steps run under `registry().with(xray::layer().sqlite(..))`, the writer thread decodes, summarizes and writes them (one transaction per batch of up to 512 records, as the layer does) |
//! | `raw_rusqlite` | the same rows built and inserted on one thread with rusqlite into an equivalent schema (executions, steps, evaluations with the same columns that matter; WAL, `synchronous = NORMAL`; cached statements; one transaction per 512 records counted as the layer's `batch_size` counts them, a step with its evaluations being one record): step ids (UUID v7), input JSON, checks JSON, reasons, failed-check names and a per-step summary |
//! | `raw_rusqlite_txn_per_512_rows` | the same, committing every 512 rows instead (21 transactions instead of 1; shows how much the peer depends on transaction size) |
//!
//! Throughput is in evaluations.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing_subscriber::prelude::*;
use xray_benches::{catalog, evaluate, reference_query, Filter, Product, Query, CATEGORY};

const STEPS: usize = 200;
const PER_STEP: usize = 50;
const EVALUATIONS: usize = STEPS * PER_STEP;

// ---- through the layer ----

#[xray::step(kind = "filter", skip(candidates))]
fn apply_filters(query: &Query, candidates: &[Product]) -> usize {
    let f = Filter::for_query(query);
    candidates.iter().filter(|p| evaluate(p, &f)).count()
}

/// One iteration through the layer into a fresh file in `dir`; returns the timed part.
fn through_layer(dir: &Path, query: &Query, products: &[Product]) -> Duration {
    let (layer, guard) = xray::layer()
        .sqlite(dir.join("xray.db"))
        .build()
        .expect("the layer builds");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let elapsed = tracing::dispatcher::with_default(&dispatch, || {
        let start = Instant::now();
        {
            let _run = xray::Execution::start("ingest").enter();
            for chunk in products.chunks(PER_STEP) {
                black_box(apply_filters(query, chunk));
            }
        }
        assert!(
            guard.flush_timeout(Duration::from_secs(60)),
            "the writer did not finish"
        );
        start.elapsed()
    });
    let stats = guard.stats();
    let records = 2 + 2 * STEPS as u64;
    assert_eq!(
        (stats.written, stats.dropped, stats.failed),
        (records, 0, 0),
        "{stats:?}"
    );
    elapsed
}

// ---- directly with rusqlite ----

const RAW_SCHEMA: &str = "
CREATE TABLE executions (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    completed_at INTEGER,
    status       TEXT NOT NULL,
    tags         TEXT NOT NULL DEFAULT '[]',
    metadata     TEXT NOT NULL DEFAULT '{}',
    service      TEXT,
    host         TEXT,
    pid          INTEGER,
    step_count   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE steps (
    sid            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    execution_id   TEXT NOT NULL,
    parent_id      TEXT,
    name           TEXT NOT NULL,
    kind           TEXT,
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER,
    duration_us    INTEGER,
    status         TEXT NOT NULL,
    input          TEXT,
    output         TEXT,
    evaluations    TEXT,
    metadata       TEXT NOT NULL DEFAULT '{}',
    candidates_in  INTEGER,
    candidates_out INTEGER,
    created_at     INTEGER NOT NULL
);
CREATE INDEX steps_execution ON steps(execution_id, started_at);
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
";

/// Records per transaction, as the layer's default batch size counts them (below).
const RAW_BATCH: usize = 512;

/// What the raw peer's transactions hold at most [`RAW_BATCH`] of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Records as the layer counts them: an execution, or a step with all its evaluation rows
    /// (the layer's `batch_size`). This run's 202 records fit in one transaction.
    Records,
    /// Rows: every execution, step and evaluation row counts (21 transactions here).
    Rows,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Threshold {
    Min(f64),
    Range([f64; 2]),
}

#[derive(Serialize)]
struct CheckJson<'a> {
    name: &'static str,
    passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<Threshold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct CheckCounts {
    name: &'static str,
    passed: u64,
    failed: u64,
    first_failed: u64,
}

#[derive(Serialize)]
struct Summary<'a> {
    total: u64,
    passed: u64,
    failed: u64,
    kept: u64,
    sampled: bool,
    capture: &'static str,
    checks: &'a [CheckCounts; 3],
}

#[derive(Serialize)]
struct Input<'a> {
    query: &'a Query,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Opens a fresh database in `dir` with the raw schema (not timed).
fn raw_open(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join("raw.db")).expect("the file opens");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("NORMAL");
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(RAW_SCHEMA).expect("the schema");
    conn
}

/// Opens a transaction when needed and commits every [`RAW_BATCH`] units.
struct Batches {
    unit: Unit,
    count: usize,
}

impl Batches {
    /// Call before inserting an execution or a step, so that it lands in a transaction.
    fn record(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.count == RAW_BATCH {
            conn.execute_batch("COMMIT")?;
            self.count = 0;
        }
        if self.count == 0 {
            conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        self.count += 1;
        Ok(())
    }

    /// Call before inserting an evaluation row.
    fn row(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        match self.unit {
            Unit::Rows => self.record(conn),
            Unit::Records => Ok(()),
        }
    }

    fn finish(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.count > 0 {
            conn.execute_batch("COMMIT")?;
            self.count = 0;
        }
        Ok(())
    }
}

/// One iteration with rusqlite directly; returns the timed part.
fn raw_rusqlite(conn: &Connection, query: &Query, products: &[Product], unit: Unit) -> Duration {
    let start = Instant::now();
    let f = Filter::for_query(query);
    let execution_id = uuid::Uuid::now_v7().to_string();
    let mut tx = Batches { unit, count: 0 };
    let result = (|| -> rusqlite::Result<()> {
        tx.record(conn)?;
        conn.prepare_cached(
            "INSERT INTO executions(id, name, started_at, status, service, host, pid)
             VALUES (?1, 'ingest', ?2, 'running', 'ingest', 'bench', ?3)",
        )?
        .execute(params![execution_id, now_us(), std::process::id()])?;
        let mut failed = String::new();
        let mut reasons = [String::new(), String::new(), String::new()];
        for chunk in products.chunks(PER_STEP) {
            let started_at = now_us();
            let step_id = uuid::Uuid::now_v7().to_string();
            let input = serde_json::to_string(&Input { query }).expect("JSON");
            // Judge every candidate first, as the step does, keeping the rows to insert.
            let mut counts = [
                CheckCounts {
                    name: "price",
                    ..Default::default()
                },
                CheckCounts {
                    name: "rating",
                    ..Default::default()
                },
                CheckCounts {
                    name: "category",
                    ..Default::default()
                },
            ];
            let mut rows = Vec::with_capacity(chunk.len());
            for p in chunk {
                let ok = [f.price_ok(p), f.rating_ok(p), f.category_ok(p)];
                for r in &mut reasons {
                    r.clear();
                }
                if !ok[0] {
                    let (sign, bound) = if p.price < f.lo {
                        ('<', f.lo)
                    } else {
                        ('>', f.hi)
                    };
                    reasons[0] = format!("{} {sign} {bound} (range {}–{})", p.price, f.lo, f.hi);
                }
                if !ok[1] {
                    reasons[1] = format!("{} < {} minimum", p.rating, f.min_rating);
                }
                if !ok[2] {
                    reasons[2] = format!("{} is not {CATEGORY}", p.category);
                }
                let reason = |i: usize| (!ok[i]).then_some(reasons[i].as_str());
                let json = [
                    CheckJson {
                        name: "price",
                        passed: ok[0],
                        reason: reason(0),
                        observed: Some(p.price),
                        threshold: Some(Threshold::Range([f.lo, f.hi])),
                        op: Some("range"),
                    },
                    CheckJson {
                        name: "rating",
                        passed: ok[1],
                        reason: reason(1),
                        observed: Some(p.rating),
                        threshold: Some(Threshold::Min(f.min_rating)),
                        op: Some("min"),
                    },
                    CheckJson {
                        name: "category",
                        passed: ok[2],
                        reason: reason(2),
                        observed: None,
                        threshold: None,
                        op: None,
                    },
                ];
                let checks = serde_json::to_string(&json).expect("JSON");
                failed.clear();
                let mut first = true;
                for (i, c) in json.iter().enumerate() {
                    if c.passed {
                        counts[i].passed += 1;
                        continue;
                    }
                    counts[i].failed += 1;
                    if first {
                        counts[i].first_failed += 1;
                        failed.push('\u{1f}');
                        first = false;
                    }
                    failed.push_str(c.name);
                    failed.push('\u{1f}');
                }
                rows.push((p, ok.iter().all(|&o| o), checks, failed.clone()));
            }
            let passed = rows.iter().filter(|r| r.1).count() as u64;
            let summary = serde_json::to_string(&Summary {
                total: rows.len() as u64,
                passed,
                failed: rows.len() as u64 - passed,
                kept: rows.len() as u64,
                sampled: false,
                capture: "cap:10000",
                checks: &counts,
            })
            .expect("JSON");
            let ended_at = now_us();
            tx.record(conn)?;
            conn.prepare_cached(
                "INSERT INTO steps(id, execution_id, name, kind, started_at, ended_at, duration_us,
                    status, input, output, evaluations, candidates_in, candidates_out, created_at)
                 VALUES (?1, ?2, 'apply_filters', 'filter', ?3, ?4, ?5, 'ok', ?6, ?7, ?8, ?9, ?10, ?3)",
            )?
            .execute(params![
                step_id,
                execution_id,
                started_at,
                ended_at,
                ended_at - started_at,
                input,
                passed.to_string(),
                summary,
                rows.len() as i64,
                passed as i64
            ])?;
            let sid = conn.last_insert_rowid();
            for (idx, (p, passed, checks_json, failed_checks)) in rows.iter().enumerate() {
                tx.row(conn)?;
                conn.prepare_cached(
                    "INSERT INTO evaluations(step_sid, idx, candidate_id, label, passed, score,
                        selected, checks, failed_checks, metrics, snapshot)
                     VALUES (?1, ?2, ?3, ?4, ?5, NULL, 0, ?6, ?7, NULL, NULL)",
                )?
                .execute(params![
                    sid,
                    idx as i64,
                    p.asin,
                    p.title,
                    passed,
                    checks_json,
                    failed_checks
                ])?;
            }
        }
        tx.record(conn)?;
        conn.prepare_cached(
            "UPDATE executions SET completed_at = ?2, status = 'ok',
                step_count = (SELECT count(*) FROM steps WHERE execution_id = ?1)
             WHERE id = ?1",
        )?
        .execute(params![execution_id, now_us()])?;
        tx.finish(conn)
    })();
    result.expect("the raw inserts succeed");
    start.elapsed()
}

// ---- the benchmark ----

fn ingest(c: &mut Criterion) {
    let query = reference_query();
    let products = catalog(EVALUATIONS, 2);

    // Once, not timed: both paths store what they should.
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        through_layer(dir.path(), &query, &products);
        let conn = Connection::open(dir.path().join("xray.db")).expect("the file opens");
        let (steps, evaluations): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM steps WHERE status = 'ok'),
                        (SELECT count(*) FROM evaluations)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("counts");
        assert_eq!((steps, evaluations), (STEPS as i64, EVALUATIONS as i64));
        let raw = raw_open(dir.path());
        raw_rusqlite(&raw, &query, &products, Unit::Records);
        let (steps, evaluations): (i64, i64) = raw
            .query_row(
                "SELECT (SELECT count(*) FROM steps), (SELECT count(*) FROM evaluations)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("counts");
        assert_eq!((steps, evaluations), (STEPS as i64, EVALUATIONS as i64));
    }

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(EVALUATIONS as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("xray_layer", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    through_layer(dir.path(), &query, &products)
                })
                .sum()
        })
    });
    for (name, unit) in [
        ("raw_rusqlite", Unit::Records),
        ("raw_rusqlite_txn_per_512_rows", Unit::Rows),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let dir = tempfile::tempdir().expect("a temporary directory");
                        let conn = raw_open(dir.path());
                        raw_rusqlite(&conn, &query, &products, unit)
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = xray_benches::criterion_config();
    targets = ingest
}
criterion_main!(benches);
