//! PostgreSQL ingest: evaluation rows per second through binary COPY (what `PostgresStore`
//! does) against multi-row `INSERT … VALUES (…), (…)` (1,000 rows per statement), into the same
//! partitioned, indexed `xray.evaluations` table, in the same run, rounds interleaved. Then the
//! whole `PostgresStore::write` (steps upserted, rows replaced idempotently, change numbers,
//! NOTIFY) on the same batches. Last, many small runs (the latency benchmark's four-step runs)
//! through `PostgresStore::write`, beside `SqliteStore::write` of the same kind of batches.
//!
//! A load program (throughput, not latency); it needs a PostgreSQL server:
//!
//! ```sh
//! eval "$(bash .ci/postgres.sh start)"
//! XRAY_BENCH_POSTGRES_URL=$XRAY_TEST_POSTGRES_URL cargo bench -p xray-benches --bench pg_ingest
//! ```

use postgres::types::{ToSql, Type};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xray::model::{Check, Evaluation, Json, Record, Status, StepRecord};
use xray::store::{PostgresStore, SqliteStore, Store};
use xray_benches::runs::{run_records, EVALUATIONS_PER_FILTER};
use xray_benches::SplitMix64;

/// Evaluations per step, steps per batch: 10,000 rows per batch (a demo-sized filter step).
const PER_STEP: usize = 500;
const STEPS_PER_BATCH: usize = 20;
const ROUNDS: usize = 8;
const ROWS_PER_INSERT: usize = 1_000;

fn batch(rng: &mut SplitMix64) -> Vec<StepRecord> {
    let now = xray::model::now_us();
    (0..STEPS_PER_BATCH)
        .map(|_| StepRecord {
            id: Uuid::now_v7(),
            execution_id: Uuid::now_v7(),
            parent_id: None,
            name: "apply_filters".into(),
            kind: Some("filter".into()),
            started_at: now,
            ended_at: Some(now + 1_000),
            status: Status::Ok,
            error: None,
            input: None,
            output: None,
            filters: None,
            selection: vec![],
            reasoning: None,
            metadata: Json::from(serde_json::json!({})),
            candidates_in: Some(PER_STEP as u64),
            candidates_out: None,
            summary: None,
            evaluations: (0..PER_STEP)
                .map(|_| {
                    let price = 5.0 + rng.below(10_000) as f64 / 100.0;
                    let ok = (15.0..=60.0).contains(&price);
                    Evaluation {
                        candidate_id: format!("B0{:08}", rng.below(100_000_000)),
                        label: Some(format!("Product {}", rng.below(100_000))),
                        passed: ok,
                        score: Some(rng.below(1000) as f64 / 1000.0),
                        selected: false,
                        checks: vec![Check {
                            name: "price".into(),
                            passed: ok,
                            reason: (!ok).then(|| format!("${price:.2} outside $15.00–$60.00")),
                            observed: Some(price.into()),
                            threshold: None,
                            op: Some("range".into()),
                        }],
                        metrics: vec![],
                        snapshot: None,
                    }
                })
                .collect(),
            logs: vec![],
            logs_dropped: 0,
        })
        .collect()
}

/// The columns of one evaluation row, as the store writes them.
struct Row {
    step_id: Uuid,
    started_at: i64,
    idx: i32,
    candidate_id: String,
    label: Option<String>,
    passed: bool,
    score: Option<f64>,
    selected: bool,
    checks: String,
    failed: Vec<String>,
    passed_checks: Vec<String>,
}

fn rows(steps: &[StepRecord]) -> Vec<Row> {
    steps
        .iter()
        .flat_map(|s| {
            s.evaluations.iter().enumerate().map(|(i, e)| Row {
                step_id: s.id,
                started_at: s.started_at,
                idx: i as i32,
                candidate_id: e.candidate_id.clone(),
                label: e.label.clone(),
                passed: e.passed,
                score: e.score,
                selected: e.selected,
                checks: serde_json::to_string(&e.checks).unwrap_or_default(),
                failed: e
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name.clone())
                    .collect(),
                passed_checks: e
                    .checks
                    .iter()
                    .filter(|c| c.passed)
                    .map(|c| c.name.clone())
                    .collect(),
            })
        })
        .collect()
}

fn params(r: &Row) -> [&(dyn ToSql + Sync); 11] {
    [
        &r.step_id,
        &r.started_at,
        &r.idx,
        &r.candidate_id,
        &r.label,
        &r.passed,
        &r.score,
        &r.selected,
        &r.checks,
        &r.failed,
        &r.passed_checks,
    ]
}

const COLUMNS: &str = "step_id, started_at, idx, candidate_id, label, passed, score, selected, checks, failed_checks, passed_checks";

fn copy(client: &mut postgres::Client, rows: &[Row]) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let sink = tx.copy_in(&format!(
        "COPY xray.evaluations ({COLUMNS}) FROM STDIN (FORMAT binary)"
    ))?;
    let types = [
        Type::UUID,
        Type::INT8,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::BOOL,
        Type::FLOAT8,
        Type::BOOL,
        Type::TEXT,
        Type::TEXT_ARRAY,
        Type::TEXT_ARRAY,
    ];
    let mut writer = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
    for r in rows {
        writer.write(&params(r))?;
    }
    writer.finish()?;
    tx.commit()
}

fn insert(client: &mut postgres::Client, rows: &[Row]) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let statement = |n: usize| {
        let values: Vec<String> = (0..n)
            .map(|i| {
                let p: Vec<String> = (1..=11).map(|c| format!("${}", i * 11 + c)).collect();
                format!("({})", p.join(","))
            })
            .collect();
        format!(
            "INSERT INTO xray.evaluations ({COLUMNS}) VALUES {}",
            values.join(",")
        )
    };
    let full = tx.prepare(&statement(ROWS_PER_INSERT))?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<&(dyn ToSql + Sync)> = chunk.iter().flat_map(params).collect();
        if chunk.len() == ROWS_PER_INSERT {
            tx.execute(&full, &values)?;
        } else {
            tx.execute(statement(chunk.len()).as_str(), &values)?;
        }
    }
    tx.commit()
}

/// Batches and runs per batch of the small-runs figure (200 runs: the 1,200 records a writer
/// batches at most by default).
const TINY_BATCHES: usize = 20;
const TINY_RUNS_PER_BATCH: usize = 200;

/// Runs per second that `store` and an SQLite store take the same batches of small runs at,
/// batches interleaved.
fn tiny_runs(store: &PostgresStore) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteStore::open(dir.path().join("xray.db"))?;
    let mut rng = SplitMix64(11);
    let mut at = xray::model::now_us();
    let mut batch = || {
        let mut records = Vec::new();
        for _ in 0..TINY_RUNS_PER_BATCH {
            records.extend(run_records(&mut rng, at).0);
            at += 10_000;
        }
        records
    };
    let (mut pg, mut lite) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..TINY_BATCHES {
        let records = batch();
        let t = Instant::now();
        store.write(&records)?;
        pg += t.elapsed();
        let records = batch();
        let t = Instant::now();
        sqlite.write(&records)?;
        lite += t.elapsed();
    }
    let runs = TINY_BATCHES * TINY_RUNS_PER_BATCH;
    Ok((rate(runs, pg), rate(runs, lite)))
}

fn rate(rows: usize, took: Duration) -> f64 {
    rows as f64 / took.as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let Some(server) = std::env::var("XRAY_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("XRAY_TEST_POSTGRES_URL"))
        .ok()
    else {
        eprintln!(
            "pg_ingest: set XRAY_BENCH_POSTGRES_URL to a PostgreSQL server (see the file's docs)"
        );
        return Ok(());
    };
    let mut admin = postgres::Client::connect(&server, postgres::NoTls)?;
    admin.batch_execute("DROP DATABASE IF EXISTS xray_bench_ingest")?;
    admin.batch_execute("CREATE DATABASE xray_bench_ingest")?;
    let url = match server.rfind('/') {
        Some(i) if i > server.find("://").map_or(0, |s| s + 2) => {
            format!("{}/xray_bench_ingest", &server[..i])
        }
        _ => format!("{server}/xray_bench_ingest"),
    };
    let store = PostgresStore::open(&url)?;
    let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
    let mut rng = SplitMix64(3);
    // Creates today's partition, and warms up.
    let warm = batch(&mut rng);
    store.write(
        &warm
            .into_iter()
            .map(|s| Record::StepFinished(Box::new(s)))
            .collect::<Vec<_>>(),
    )?;

    let (mut copied, mut inserted, mut stored) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let per_batch = PER_STEP * STEPS_PER_BATCH;
    for _ in 0..ROUNDS {
        let r = rows(&batch(&mut rng));
        let t = Instant::now();
        copy(&mut client, &r)?;
        copied += t.elapsed();
        let r = rows(&batch(&mut rng));
        let t = Instant::now();
        insert(&mut client, &r)?;
        inserted += t.elapsed();
        let records: Vec<Record> = batch(&mut rng)
            .into_iter()
            .map(|s| Record::StepFinished(Box::new(s)))
            .collect();
        let t = Instant::now();
        store.write(&records)?;
        stored += t.elapsed();
    }
    let n = per_batch * ROUNDS;
    let (c, i, s) = (rate(n, copied), rate(n, inserted), rate(n, stored));
    println!("\nPostgreSQL ingest, {ROUNDS} rounds of {per_batch} evaluation rows (one transaction each)\n");
    println!("| path | evaluations/s | vs multi-row INSERT |");
    println!("|---|---|---|");
    println!("| binary COPY | {c:.0} | {:.2}× |", c / i);
    println!("| multi-row INSERT ({ROWS_PER_INSERT} rows/statement) | {i:.0} | 1.00× |");
    println!(
        "| `PostgresStore::write` (COPY + steps, seq, NOTIFY) | {s:.0} | {:.2}× |",
        s / i
    );
    drop(client);

    // Many small runs: executions and steps, not evaluation rows, are most of the work.
    let (pg, sqlite) = tiny_runs(&store)?;
    println!(
        "\nMany small runs, {TINY_BATCHES} batches of {TINY_RUNS_PER_BATCH} runs (4 steps, \
         {EVALUATIONS_PER_FILTER} evaluations each), one transaction per batch\n"
    );
    println!("| store | runs/s | vs SQLite |");
    println!("|---|---|---|");
    println!("| `PostgresStore::write` | {pg:.0} | {:.2}× |", pg / sqlite);
    println!("| `SqliteStore::write` (a file in a temporary directory) | {sqlite:.0} | 1.00× |");
    drop(store);
    admin.batch_execute("DROP DATABASE IF EXISTS xray_bench_ingest WITH (FORCE)")?;
    Ok(())
}
