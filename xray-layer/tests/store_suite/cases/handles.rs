//! Cases that need more than one handle on a database: what one handle writes, another reads,
//! and a database reopened is the database that was closed.

use super::*;
use crate::fixtures::*;
use serde_json::json;
use xray::model::Status;
use xray::store::{ExecutionUpdate, RecorderCounts};

/// Two handles on one database (a recorder and a server): each sees what the other wrote.
pub fn second_handle_sees_writes_of_the_first(db: &Db) {
    let writer = db.open();
    let reader = db.open();
    let x = new_id();
    let mut s = step(x, "filter", T0 + 1, 5);
    s.evaluations = vec![eval("B01", true)];
    s.logs = vec![log(T0 + 2, "INFO", "hello", json!({}))];
    write(&*writer, &[begin(x, "run", T0), done(&s)]);
    assert_eq!(execution_ids(&*reader, ExecutionQuery::default()), [x]);
    assert_eq!(
        step_of(&*reader, s.id),
        StepRecord {
            evaluations: Vec::new(),
            ..s.clone()
        }
    );
    assert_eq!(
        evaluations_of(&*reader, s.id, EvaluationQuery::default()),
        s.evaluations
    );
    assert_eq!(lineage_of(&*reader, "B01", 10).len(), 1);
    assert_eq!(latest(&*reader), latest(&*writer));

    // The reader's side edits; the writer's side sees the edit and goes on writing.
    assert!(reader
        .update_execution(
            x,
            &ExecutionUpdate {
                tags: Some(vec!["reviewed".into()]),
                notes: Some("fine".into()),
            }
        )
        .expect("update"));
    assert_eq!(detail(&*writer, x).execution.tags, ["reviewed"]);
    let since = latest(&*reader);
    write(&*writer, &[finish(x, T0 + 10, Status::Ok)]);
    let tail = changes(&*reader, since, 100);
    assert_eq!(tail.len(), 1, "the reader tails the writer's changes");
    assert_eq!(detail(&*reader, x).execution.status, Status::Ok);
    assert_eq!(detail(&*reader, x).execution.notes.as_deref(), Some("fine"));

    for (store, dropped) in [(&writer, 1), (&reader, 2)] {
        store
            .add_recorder_counts(&RecorderCounts {
                dropped,
                ..RecorderCounts::default()
            })
            .expect("add recorder counts");
    }
    for store in [&writer, &reader] {
        assert_eq!(
            store.recorder_counts().expect("recorder counts"),
            RecorderCounts {
                dropped: 3,
                ..RecorderCounts::default()
            },
            "counts of every recorder"
        );
    }
    writer.maintain().expect("maintain");
    assert_eq!(reader.delete_executions(&[x]).expect("delete"), 1);
    assert!(writer.execution(x).expect("read").is_none());
    assert!(lineage_of(&*writer, "B01", 10).is_empty());
}

/// A database closed and opened again answers the same, and its change sequence goes on from
/// where it was (a live tail started before the restart misses nothing).
pub fn reopened_store_keeps_everything(db: &Db) {
    let store = db.open();
    let x = new_id();
    let mut s = step(x, "filter", T0 + 1, 5);
    s.evaluations = vec![eval("C1", true), eval("C2", false)];
    write(&*store, &[begin(x, "run", T0), done(&s)]);
    let running = step(x, "llm", T0 + 10, 5);
    write(&*store, &[started(&running)]);
    store
        .add_recorder_counts(&RecorderCounts {
            dropped: 4,
            failed: 2,
            sampled_out: 6,
        })
        .expect("add recorder counts");
    let candidates = ["C1", "C2"];
    let before = snapshot(&*store, &candidates);
    let seq = latest(&*store);
    drop(store);

    let store = db.open();
    assert_eq!(snapshot(&*store, &candidates), before, "the same answers");
    write(&*store, &[done(&running)]);
    assert!(latest(&*store) > seq, "the sequence goes on");
    let tail = changes(&*store, seq, 100);
    assert_eq!(tail.len(), 2, "the step and its execution: {tail:?}");
    assert!(tail.iter().all(|c| c.seq() > seq));
    drop(store);
    let store = db.open();
    assert_eq!(step_of(&*store, running.id).status, Status::Ok);
}
