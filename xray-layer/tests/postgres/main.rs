//! What only the PostgreSQL store has to prove (the answers it shares with SQLite are proven by
//! `tests/store_suite`): a live tail that never skips or repeats a change while several
//! writers commit at once, wake-ups across stores, retention by partition, clear errors, and
//! the layer recording into it end to end.
#![cfg(feature = "postgres")]

#[path = "../support/pg.rs"]
mod pg;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;
use uuid::Uuid;
use xray::model::{Check, Evaluation, ExecutionStart, Json, Record, Status, StepRecord};
use xray::store::{
    Change, EvaluationQuery, ExecutionQuery, LineageQuery, PostgresStore, Store, StoreError,
};

const DAY_US: i64 = 86_400_000_000;

fn step(execution_id: Uuid, n: usize, started_at: i64) -> StepRecord {
    let evaluations = (0..n)
        .map(|i| Evaluation {
            candidate_id: format!("C{i}"),
            label: Some(format!("candidate {i}")),
            passed: i % 2 == 0,
            score: Some(i as f64 / 10.0),
            selected: i == 0,
            checks: vec![Check {
                name: "even".into(),
                passed: i % 2 == 0,
                reason: (i % 2 == 1).then(|| format!("{i} is odd")),
                observed: Some(serde_json::json!(i)),
                threshold: None,
                op: None,
            }],
            metrics: vec![],
            snapshot: None,
        })
        .collect();
    StepRecord {
        id: Uuid::now_v7(),
        execution_id,
        parent_id: None,
        name: "filter".into(),
        kind: Some("filter".into()),
        started_at,
        ended_at: Some(started_at + 10),
        status: Status::Ok,
        error: None,
        input: None,
        output: None,
        filters: None,
        selection: vec![],
        reasoning: None,
        metadata: Json::from(serde_json::json!({})),
        candidates_in: Some(n as u64),
        candidates_out: Some(n.div_ceil(2) as u64),
        summary: None,
        evaluations,
        logs: vec![],
        logs_dropped: 0,
    }
}

fn execution(id: Uuid, started_at: i64) -> Record {
    Record::ExecutionStarted(ExecutionStart {
        id,
        name: "run".into(),
        started_at,
        tags: vec![],
        metadata: Json::from(serde_json::json!({})),
        service: None,
        host: None,
        pid: None,
    })
}

fn now_us() -> i64 {
    xray::model::now_us()
}

/// Four writers (each its own store, as four servers would be) commit 50 batches each while a
/// tail reads `changes_since` as fast as it can: every step arrives exactly once, in increasing
/// `seq` order, although the writers' transactions overlap and commit out of start order.
#[test]
fn a_live_tail_sees_every_step_exactly_once_while_several_writers_commit() {
    let Some(url) = pg::fresh_database() else {
        return;
    };
    let reader = PostgresStore::open(&url).expect("open the reader");
    const WRITERS: usize = 4;
    const BATCHES: usize = 50;
    const STEPS: usize = 3;
    let done = Arc::new(AtomicBool::new(false));
    let tail = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut seen: HashMap<Uuid, u32> = HashMap::new();
            let mut cursor = 0u64;
            let mut last_round = false;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let changes = reader.changes_since(cursor, 500).expect("changes");
                for change in &changes {
                    assert!(change.seq() > cursor, "seq went backwards");
                    cursor = change.seq();
                    if let Change::Step { step, .. } = change {
                        *seen.entry(step.id).or_default() += 1;
                    }
                }
                if changes.is_empty() && last_round {
                    return seen;
                }
                // One more full read after the writers are done.
                last_round = finished;
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = PostgresStore::open(&url).expect("open a writer");
                let mut written = Vec::new();
                for b in 0..BATCHES {
                    let run = Uuid::now_v7();
                    let t = now_us();
                    let mut batch = vec![execution(run, t)];
                    for s in 0..STEPS {
                        // Uneven batches, so the writers' transactions overlap unevenly.
                        let step = step(run, 20 + (w * 37 + b * 11 + s * 5) % 300, t + s as i64);
                        written.push(step.id);
                        batch.push(Record::StepFinished(Box::new(step)));
                    }
                    store.write(&batch).expect("write a batch");
                }
                written
            })
        })
        .collect();
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.join().expect("a writer panicked"));
    }
    done.store(true, Ordering::SeqCst);
    let seen = tail.join().expect("the tail panicked");
    assert_eq!(written.len(), WRITERS * BATCHES * STEPS);
    let missed: Vec<_> = written.iter().filter(|id| !seen.contains_key(id)).collect();
    assert!(
        missed.is_empty(),
        "{} steps never reached the tail",
        missed.len()
    );
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "steps seen more than once: {repeated:?}"
    );
}

/// A write through one store wakes a live tail that waits on another store's signal (two
/// replicas over one database), through LISTEN/NOTIFY.
#[test]
fn a_write_through_one_store_wakes_the_other() {
    let Some(url) = pg::fresh_database() else {
        return;
    };
    let a = PostgresStore::open(&url).expect("open a");
    let b = PostgresStore::open(&url).expect("open b");
    let signal = b.change_signal().expect("PostgreSQL stores have a signal");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b.is_listening() {
        assert!(Instant::now() < deadline, "the listener never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = signal.generation();
    let run = Uuid::now_v7();
    a.write(&[execution(run, now_us())]).expect("write");
    let after = signal.wait(before, Duration::from_secs(20));
    assert_ne!(after, before, "no wake-up within 20 s");
    let changes = b.changes_since(0, 10).expect("changes");
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::Execution { execution, .. } if execution.id == run)));
}

/// Retention drops the day partitions that lie wholly before the cutoff, deletes the runs that
/// started before it, and leaves newer ones whole.
#[test]
fn retention_drops_whole_day_partitions() {
    let Some(url) = pg::fresh_database() else {
        return;
    };
    let store = PostgresStore::open(&url).expect("open");
    let now = now_us();
    let (old_run, new_run) = (Uuid::now_v7(), Uuid::now_v7());
    let old_step = step(old_run, 40, now - 10 * DAY_US);
    let new_step = step(new_run, 40, now);
    let new_step_id = new_step.id;
    store
        .write(&[
            execution(old_run, now - 10 * DAY_US),
            Record::StepFinished(Box::new(old_step)),
            execution(new_run, now),
            Record::StepFinished(Box::new(new_step)),
        ])
        .expect("write");
    let partitions = || -> Vec<String> {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let mut names: Vec<String> = client
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'xray.evaluations'::regclass",
                &[],
            )
            .expect("partitions")
            .iter()
            .map(|r| r.get(0))
            .collect();
        names.sort();
        names
    };
    assert_eq!(partitions().len(), 2, "{:?}", partitions());
    let deleted = store
        .delete_executions_before(now - 5 * DAY_US)
        .expect("retention");
    assert_eq!(deleted, 1);
    assert_eq!(partitions().len(), 1, "{:?}", partitions());
    assert!(store.execution(old_run).expect("read").is_none());
    let rows = store
        .evaluations(new_step_id, &EvaluationQuery::default())
        .expect("evaluations");
    assert_eq!(rows.items.len(), 40);
    let lineage = store
        .candidate_lineage("C3", &LineageQuery::default())
        .expect("lineage");
    assert_eq!(lineage.items.len(), 1, "only the new run's verdict is left");
    // Writing into the dropped day again recreates its partition.
    let again = step(old_run, 5, now - 10 * DAY_US);
    store
        .write(&[Record::StepFinished(Box::new(again))])
        .expect("write into a dropped day");
    assert_eq!(partitions().len(), 2);
}

/// Bad URLs, unreachable servers and missing databases are errors from `open` that say what is
/// wrong, never a panic, and never print the password.
#[test]
fn opening_fails_clearly() {
    let Some(url) = pg::fresh_database() else {
        return;
    };
    let err = |url: &str| match PostgresStore::open(url) {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e,
    };
    let e = err("postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=2");
    assert!(matches!(e, StoreError::Io(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("hunter2"),
        "{text}"
    );
    let e = err("postgres://u@host:notaport/x");
    assert!(matches!(e, StoreError::Io(_)), "{e:?}");
    let missing = pg::with_database(&url, "xray_no_such_database");
    let text = err(&missing).to_string();
    assert!(text.contains("xray_no_such_database"), "{text}");
}

/// A database migrated by a newer X-Ray is refused, not misread.
#[test]
fn a_newer_schema_is_refused() {
    let Some(url) = pg::fresh_database() else {
        return;
    };
    drop(PostgresStore::open(&url).expect("create the schema"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client
        .execute(
            "UPDATE xray.meta SET value = 99 WHERE key = 'schema_version'",
            &[],
        )
        .expect("bump the version");
    match PostgresStore::open(&url) {
        Err(StoreError::NewerSchema { found: 99, .. }) => {}
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[xray::step(kind = "filter")]
fn keep_even(candidates: Vec<u32>) -> Vec<u32> {
    candidates
        .into_iter()
        .filter(|&c| {
            xray::evaluate(c)
                .check("even", c % 2 == 0, || format!("{c} is odd"))
                .passed()
        })
        .collect()
}

#[xray::execution(name = "pg-pipeline")]
fn pipeline() -> usize {
    keep_even((0..500).collect()).len()
}

/// `xray::layer().postgres(url)`: a program records into PostgreSQL, and the run reads back
/// with every verdict and reason.
#[test]
fn the_layer_records_into_postgres() {
    let Some(url) = pg::fresh_database() else {
        return;
    };
    let (layer, guard, store) = xray::layer()
        .postgres(&url)
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert_eq!(pipeline(), 250);
    });
    assert!(guard.flush());
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].name, "pg-pipeline");
    assert_eq!(runs.items[0].status, Status::Ok);
    let detail = store
        .execution(runs.items[0].id)
        .expect("read")
        .expect("the run");
    let filter = &detail.steps[0];
    assert_eq!(
        (filter.candidates_in, filter.candidates_out),
        (Some(500), Some(250))
    );
    let failed = store
        .evaluations(
            filter.id,
            &EvaluationQuery {
                passed: Some(false),
                limit: Some(3),
                ..Default::default()
            },
        )
        .expect("evaluations");
    assert_eq!(
        failed.items[0].checks[0].reason.as_deref(),
        Some("1 is odd")
    );
    assert!(failed.next_cursor.is_some());
}

/// An unreachable database is an error from `build()`, not a panic in the background.
#[test]
fn an_unreachable_database_is_an_error_from_build() {
    let result = xray::layer()
        .postgres("postgres://xray@127.0.0.1:1/xray?connect_timeout=2")
        .build();
    assert!(result.is_err());
}
