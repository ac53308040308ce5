//! The SQLite store's own machinery: several processes open one new file together, and lineage
//! answers the same before, during and after the deferred candidate index catches up
//! (`SqliteStore::index_candidates`).
//!
//! What every store must do, SQLite or not (bad parameters, pagination, every query), is in the
//! store suite (`tests/store_suite/`), which runs on each engine.

use xray::model::{Check, Evaluation, ExecutionStart, Json, Record, Status, StepRecord};
use xray::store::{LineageQuery, SqliteStore, Store};

fn step(execution_id: uuid::Uuid, n: usize, started_at: i64) -> Record {
    let evaluations = (0..n)
        .map(|i| Evaluation {
            candidate_id: format!("C{i}"),
            label: Some(format!("candidate {i}")),
            passed: i % 2 == 0,
            score: None,
            selected: false,
            checks: vec![Check {
                name: "even".into(),
                passed: i % 2 == 0,
                reason: (i % 2 == 1).then(|| format!("{i} is odd")),
                observed: None,
                threshold: None,
                op: None,
            }],
            metrics: vec![],
            snapshot: None,
        })
        .collect();
    Record::StepFinished(Box::new(StepRecord {
        id: uuid::Uuid::now_v7(),
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
    }))
}

fn execution(id: uuid::Uuid, started_at: i64) -> Record {
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

#[test]
fn lineage_is_the_same_before_and_after_indexing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("x.db")).expect("open");
    for run in 0..3i64 {
        let id = uuid::Uuid::now_v7();
        store
            .write(&[execution(id, run * 100), step(id, 500, run * 100 + 1)])
            .expect("write");
    }
    let query = LineageQuery {
        limit: Some(2),
        ..Default::default()
    };
    let page_all = |store: &SqliteStore| {
        let mut out = Vec::new();
        let mut q = query.clone();
        loop {
            let page = store.candidate_lineage("C7", &q).expect("lineage");
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return out,
            }
        }
    };
    let before = page_all(&store);
    assert_eq!(
        before.len(),
        3,
        "one verdict per run, through the unindexed tail"
    );
    assert!(before
        .iter()
        .all(|l| !l.passed && l.checks[0].reason.as_deref() == Some("7 is odd")));
    assert!(
        before
            .windows(2)
            .all(|w| w[0].step_started_at >= w[1].step_started_at),
        "newest first"
    );
    assert_eq!(store.index_candidates(usize::MAX).expect("index"), 1_500);
    assert_eq!(
        page_all(&store),
        before,
        "the index changes speed, not answers"
    );
    // Half indexed: a new run after indexing is found through the tail again.
    let id = uuid::Uuid::now_v7();
    store
        .write(&[execution(id, 1_000), step(id, 10, 1_001)])
        .expect("write");
    let after = page_all(&store);
    assert_eq!(after.len(), 4);
    assert_eq!(after[0].execution_id, id);
}

/// Workers of one service (or a program and `xray-server`) started together open the same new
/// database file: every one of them opens it, none fails with "database is locked".
#[test]
fn processes_opening_one_new_database_together_all_open_it() {
    for round in 0..10 {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("xray.db");
        let start = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    SqliteStore::open(&path).map(drop)
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("the opener thread");
            assert!(opened.is_ok(), "round {round}: {opened:?}");
        }
    }
}
