//! Editing and deleting, the recorders' counters, the change feed, and the store's upkeep.

use super::*;
use crate::fixtures::*;
use serde_json::json;
use xray::model::{Record, Status, StepRecord};
use xray::store::{ExecutionUpdate, RecorderCounts};

/// Tags and notes are set by `update_execution`, each left alone when not given, and kept when
/// the execution's records are delivered again.
pub fn update_execution_sets_tags_and_notes(store: &dyn Store) {
    let x = new_id();
    let mut start = execution(x, "run", T0);
    start.tags = vec!["a".into()];
    write(store, &[Record::ExecutionStarted(start.clone())]);
    let row = |store: &dyn Store| detail(store, x).execution;
    let update = |tags: Option<&[&str]>, notes: Option<&str>| ExecutionUpdate {
        tags: tags.map(|t| t.iter().map(|s| s.to_string()).collect()),
        notes: notes.map(Into::into),
    };
    let before = latest(store);
    assert!(store
        .update_execution(x, &update(Some(&["b", "c"]), None))
        .expect("update"));
    assert!(latest(store) > before, "an update is a change");
    assert_eq!(
        (row(store).tags, row(store).notes),
        (vec!["b".to_owned(), "c".to_owned()], None)
    );
    assert!(store
        .update_execution(x, &update(None, Some("checked by Ana — ok ☕")))
        .expect("update"));
    assert_eq!(
        (row(store).tags, row(store).notes.as_deref()),
        (
            vec!["b".to_owned(), "c".to_owned()],
            Some("checked by Ana — ok ☕")
        ),
        "tags not given are left alone"
    );
    assert!(store
        .update_execution(x, &update(None, None))
        .expect("update"));
    assert_eq!(
        (row(store).tags, row(store).notes.as_deref()),
        (
            vec!["b".to_owned(), "c".to_owned()],
            Some("checked by Ana — ok ☕")
        ),
        "an empty update changes nothing"
    );
    assert!(
        !store
            .update_execution(new_id(), &update(Some(&["z"]), Some("n")))
            .expect("update"),
        "an unknown execution is not updated"
    );
    assert_eq!(execution_ids(store, ExecutionQuery::default()), [x]);
    let tagged = |tag: &str| ExecutionQuery {
        tags: vec![tag.into()],
        ..Default::default()
    };
    assert_eq!(execution_ids(store, tagged("c")), [x], "found by a new tag");
    assert!(
        execution_ids(store, tagged("a")).is_empty(),
        "tags are replaced"
    );
    assert_eq!(
        execution_ids(
            store,
            ExecutionQuery {
                q: Some("ANA".into()),
                ..Default::default()
            }
        ),
        [x],
        "found by its notes"
    );

    // The program's records delivered again do not undo what the user set.
    write(
        store,
        &[
            Record::ExecutionStarted(start),
            finish(x, T0 + 10, Status::Ok),
        ],
    );
    assert_eq!(
        (
            row(store).tags,
            row(store).notes.as_deref(),
            row(store).status
        ),
        (
            vec!["b".to_owned(), "c".to_owned()],
            Some("checked by Ana — ok ☕"),
            Status::Ok
        )
    );
    assert!(store
        .update_execution(x, &update(Some(&[]), Some("")))
        .expect("update"));
    assert_eq!(
        (row(store).tags, row(store).notes.as_deref()),
        (Vec::<String>::new(), Some("")),
        "tags and notes can be cleared"
    );
}

/// An execution with one step judging B01 and B02, with logs.
fn judged(store: &dyn Store, name: &str, at: i64) -> (Uuid, StepRecord) {
    let x = new_id();
    let mut s = step(x, "filter", at + 1, 5);
    s.kind = Some("filter".into());
    s.evaluations = vec![eval("B01", true), eval("B02", at % 2 == 0)];
    s.logs = vec![log(at + 2, "INFO", "judged", json!({}))];
    write(
        store,
        &[begin(x, name, at), done(&s), finish(x, at + 10, Status::Ok)],
    );
    (x, s)
}

/// Deleted executions are gone with their steps, evaluations and logs from every read; the
/// count is of executions that existed.
pub fn delete_executions_removes_everything(store: &dyn Store) {
    let (x1, s1) = judged(store, "run", T0);
    let (x2, s2) = judged(store, "run", T0 + 100);
    let (x3, s3) = judged(store, "run", T0 + 201);
    maintain_until_idle(store);
    // One more after the upkeep caught up (not indexed yet, where a store indexes).
    let (x4, s4) = judged(store, "run", T0 + 300);
    assert_eq!(lineage_of(store, "B01", 10).len(), 4);
    assert_eq!(store.delete_executions(&[]).expect("delete"), 0);
    assert_eq!(
        store
            .delete_executions(&[x1, new_id(), x4, x1])
            .expect("delete"),
        2,
        "the executions that existed"
    );
    for (x, s) in [(x1, &s1), (x4, &s4)] {
        assert!(store.execution(x).expect("read").is_none());
        assert!(store.step(s.id).expect("read").is_none());
        assert!(evaluations_of(store, s.id, EvaluationQuery::default()).is_empty());
    }
    let remaining = [s3.id, s2.id];
    assert_eq!(execution_ids(store, ExecutionQuery::default()), [x3, x2]);
    assert_eq!(step_ids(store, StepQuery::default()), remaining);
    let lineage_steps = |store: &dyn Store| {
        lineage_of(store, "B01", 1)
            .iter()
            .map(|l| l.step_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lineage_steps(store),
        remaining,
        "lineage no longer lists them"
    );
    assert!(changes_between(store, s1.id, s2.id, 10).is_empty());
    assert_eq!(changes_between(store, s3.id, s2.id, 10).len(), 1);
    let filter_stats = stats(store, StatsQuery::default());
    assert_eq!(filter_stats.len(), 1);
    assert_eq!(filter_stats[0].count, 2);
    assert!(
        changes(store, 0, 10_000).iter().all(|c| match c {
            Change::Execution { execution, .. } => [x2, x3].contains(&execution.id),
            Change::Step { step, .. } => remaining.contains(&step.id),
        }),
        "the change feed has nothing of them"
    );
    assert_eq!(
        store.delete_executions(&[x1, x4]).expect("delete"),
        0,
        "already gone"
    );
    maintain_until_idle(store);
    assert_eq!(lineage_steps(store), remaining, "after the upkeep too");
    assert_eq!(detail(store, x2).steps.len(), 1, "the others are intact");
    assert_eq!(
        evaluations_of(store, s2.id, EvaluationQuery::default()),
        s2.evaluations
    );
    assert_eq!(step_of(store, s3.id).logs, s3.logs);

    // Written again after its deletion, an execution is back.
    write(store, &[begin(x1, "run", T0), done(&s1)]);
    assert_eq!(
        evaluations_of(store, s1.id, EvaluationQuery::default()),
        s1.evaluations
    );
    assert_eq!(lineage_of(store, "B01", 10).len(), 3);
}

/// `delete_executions_before` deletes the executions that started strictly before a time.
pub fn delete_executions_before_a_time(store: &dyn Store) {
    assert_eq!(
        store.delete_executions_before(T0).expect("delete"),
        0,
        "nothing to delete"
    );
    let (x, _) = judged(store, "run", T0);
    let (y, sy) = judged(store, "run", T0 + 10);
    let (z, _) = judged(store, "run", T0 + 20);
    assert_eq!(
        store.delete_executions_before(T0 + 10).expect("delete"),
        1,
        "strictly before"
    );
    assert_eq!(execution_ids(store, ExecutionQuery::default()), [z, y]);
    assert!(store.execution(x).expect("read").is_none());
    assert_eq!(store.delete_executions_before(T0 + 10).expect("delete"), 0);
    assert_eq!(
        lineage_of(store, "B01", 10)
            .iter()
            .map(|l| l.execution_id)
            .collect::<Vec<_>>(),
        [z, y]
    );
    assert_eq!(store.delete_executions_before(T0 + 21).expect("delete"), 2);
    assert!(execution_ids(store, ExecutionQuery::default()).is_empty());
    assert!(step_ids(store, StepQuery::default()).is_empty());
    assert!(store.step(sy.id).expect("read").is_none());
    assert!(lineage_of(store, "B01", 10).is_empty());
    assert!(stats(store, StatsQuery::default()).is_empty());
}

/// Recorder counters add up across calls.
pub fn recorder_counts_accumulate(store: &dyn Store) {
    let counts = |store: &dyn Store| store.recorder_counts().expect("recorder counts");
    assert_eq!(counts(store), RecorderCounts::default(), "zero at first");
    let add = |dropped, failed, sampled_out| {
        store
            .add_recorder_counts(&RecorderCounts {
                dropped,
                failed,
                sampled_out,
            })
            .expect("add recorder counts");
    };
    add(3, 1, 0);
    assert_eq!(
        counts(store),
        RecorderCounts {
            dropped: 3,
            failed: 1,
            sampled_out: 0
        }
    );
    add(2, 0, 9);
    add(0, 0, 0);
    add(0, 4, 1);
    assert_eq!(
        counts(store),
        RecorderCounts {
            dropped: 5,
            failed: 5,
            sampled_out: 10
        }
    );
    write(store, &[begin(new_id(), "run", T0)]);
    assert_eq!(
        counts(store),
        RecorderCounts {
            dropped: 5,
            failed: 5,
            sampled_out: 10
        },
        "records do not count"
    );
}

/// The ids a change is about, and whether each change carries the sequence number of its row.
fn about(changes: &[Change]) -> Vec<(char, Uuid)> {
    changes
        .iter()
        .map(|c| match c {
            Change::Execution { seq, execution } => {
                assert_eq!(*seq, execution.seq, "a change carries its row's seq");
                ('e', execution.id)
            }
            Change::Step { seq, step } => {
                assert_eq!(*seq, step.seq, "a change carries its row's seq");
                ('s', step.id)
            }
        })
        .collect()
}

/// Asserts `changes` are in strictly increasing seq order, all in `(after, upto]`.
fn in_order(changes: &[Change], after: u64, upto: u64) {
    let seqs: Vec<u64> = changes.iter().map(Change::seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "increasing seq: {seqs:?}"
    );
    assert!(
        seqs.iter().all(|&s| s > after && s <= upto),
        "{seqs:?} in ({after}, {upto}]"
    );
}

/// Every write is a change with a higher sequence number; `changes_since` returns each changed
/// execution and step once, as they are now, in sequence order, at most `limit`.
pub fn changes_since_tails_every_write(store: &dyn Store) {
    assert_eq!(latest(store), 0, "an empty store is at 0");
    assert!(changes(store, 0, 100).is_empty());

    let x = new_id();
    let s = step(x, "fetch", T0 + 1, 10);
    write(store, &[begin(x, "run", T0), started(&s)]);
    let l1 = latest(store);
    assert!(l1 > 0);
    let first = changes(store, 0, 100);
    in_order(&first, 0, l1);
    let mut ids = about(&first);
    ids.sort();
    assert_eq!(ids, [('e', x), ('s', s.id)], "each exactly once");
    for c in &first {
        match c {
            Change::Execution { execution, .. } => {
                assert_eq!(
                    (execution.status, execution.step_count),
                    (Status::Running, 1)
                );
            }
            Change::Step { step, .. } => {
                assert_eq!(
                    (step.status, step.execution_name.as_str()),
                    (Status::Running, "run")
                );
            }
        }
    }
    assert!(
        changes(store, l1, 100).is_empty(),
        "nothing after the latest"
    );

    write(store, &[done(&s), finish(x, T0 + 20, Status::Ok)]);
    let l2 = latest(store);
    assert!(l2 > l1, "a write moves the sequence on");
    let second = changes(store, l1, 100);
    in_order(&second, l1, l2);
    let mut ids = about(&second);
    ids.sort();
    assert_eq!(
        ids,
        [('e', x), ('s', s.id)],
        "the updated execution and step, once each"
    );
    for c in &second {
        match c {
            Change::Execution { execution, .. } => {
                assert_eq!(execution.status, Status::Ok, "as it is now");
                assert_eq!(execution, &detail(store, x).execution);
            }
            Change::Step { step, .. } => {
                assert_eq!(
                    (step.status, step.ended_at),
                    (Status::Ok, Some(T0 + 11)),
                    "as it is now"
                );
            }
        }
    }
    assert_eq!(
        about(&changes(store, 0, 100)),
        about(&second),
        "the old versions are not changes any more"
    );

    // A bigger write, read back whole and by limits.
    let y = new_id();
    let steps: Vec<StepRecord> = (0..3)
        .map(|i| step(y, &format!("s{i}"), T0 + 101 + i, 1))
        .collect();
    let mut batch = vec![begin(y, "run", T0 + 100)];
    batch.extend(steps.iter().map(done));
    write(store, &batch);
    let l3 = latest(store);
    assert!(l3 > l2);
    let third = changes(store, l2, 100);
    in_order(&third, l2, l3);
    let mut ids = about(&third);
    ids.sort();
    let mut expected = vec![('e', y)];
    expected.extend(steps.iter().map(|s| ('s', s.id)));
    expected.sort();
    assert_eq!(ids, expected);
    for limit in [1, 2, 3] {
        assert_eq!(
            changes(store, l2, limit),
            third[..limit],
            "at most {limit}, the first ones"
        );
    }
    // Tailing by twos reads the same changes.
    let mut tailed = Vec::new();
    let mut at = l2;
    loop {
        let next = changes(store, at, 2);
        assert!(next.len() <= 2);
        let Some(last) = next.last() else { break };
        at = last.seq();
        tailed.extend(next);
        assert!(tailed.len() <= 100, "tailing does not end");
    }
    assert_eq!(tailed, third);
    assert_eq!(changes(store, 0, 1).len(), 1);
    assert_eq!(
        changes(store, 0, 1)[0],
        changes(store, 0, 100)[0],
        "the oldest change first"
    );

    // A user's edit is a change of the execution only.
    assert!(store
        .update_execution(
            x,
            &ExecutionUpdate {
                tags: Some(vec!["seen".into()]),
                notes: None
            }
        )
        .expect("update"));
    let l4 = latest(store);
    assert!(l4 > l3);
    let fourth = changes(store, l3, 100);
    in_order(&fourth, l3, l4);
    assert_eq!(about(&fourth), [('e', x)]);
    let Change::Execution { execution, .. } = &fourth[0] else {
        panic!("an execution change")
    };
    assert_eq!(execution.tags, ["seen"]);
    assert!(changes(store, l4, 100).is_empty());
}

/// A data set with finished, running and nested steps across several executions.
fn a_bit_of_everything(store: &dyn Store, base: i64) -> Vec<StepRecord> {
    let mut written = Vec::new();
    for run in 0..3i64 {
        let x = new_id();
        let at = base + run * 1_000;
        let mut filter = step(x, "filter", at + 10, 20 + run);
        filter.kind = Some("filter".into());
        filter.candidates_in = Some(6);
        filter.candidates_out = Some(3);
        filter.evaluations = (0..6)
            .map(|i| {
                let mut e = eval(&format!("C{i}"), (i + run) % 2 == 0);
                e.score = (i != 3).then_some(i as f64 * 0.5);
                e.checks = vec![check("even", (i + run) % 2 == 0)];
                e
            })
            .collect();
        let mut rank = step(x, "rank", at + 40, 5);
        rank.parent_id = Some(filter.id);
        rank.evaluations = vec![eval("C0", true), eval("C2", run != 1)];
        let running = step(x, "llm", at + 50, 100);
        write(
            store,
            &[
                begin(x, "pipeline", at),
                done(&filter),
                done(&rank),
                started(&running),
            ],
        );
        written.extend([filter, rank, running]);
    }
    store
        .add_recorder_counts(&RecorderCounts {
            dropped: 2,
            failed: 1,
            sampled_out: 3,
        })
        .expect("add recorder counts");
    written
}

const CANDIDATES: [&str; 7] = ["C0", "C1", "C2", "C3", "C4", "C5", "nobody"];

/// `maintain` changes no answer, however often it is called and wherever it stops; it ends.
pub fn maintain_changes_no_answer(store: &dyn Store) {
    let written = a_bit_of_everything(store, T0);
    let before = snapshot(store, &CANDIDATES);
    store.maintain().expect("maintain");
    assert_eq!(snapshot(store, &CANDIDATES), before, "after one call");
    maintain_until_idle(store);
    assert_eq!(snapshot(store, &CANDIDATES), before, "after catching up");
    assert!(!store.maintain().expect("maintain"), "no work left");
    assert_eq!(snapshot(store, &CANDIDATES), before);

    // The running steps finish with evaluations, and more runs arrive.
    let mut batch = Vec::new();
    for running in written.iter().filter(|s| s.name == "llm") {
        let mut s = running.clone();
        s.evaluations = vec![eval("C1", false), eval("C5", true)];
        batch.push(done(&s));
    }
    write(store, &batch);
    a_bit_of_everything(store, T0 + 100_000);
    let after = snapshot(store, &CANDIDATES);
    assert_ne!(after, before);
    assert_eq!(
        lineage_of(store, "C5", 10).len(),
        3 + 3 + 3,
        "the filters of both data sets, and the finished steps' rows"
    );
    for _ in 0..3 {
        store.maintain().expect("maintain");
        assert_eq!(snapshot(store, &CANDIDATES), after);
    }
    maintain_until_idle(store);
    assert_eq!(snapshot(store, &CANDIDATES), after);
}

/// An empty store answers every read with nothing.
pub fn empty_store_answers_empty(store: &dyn Store) {
    let nobody = new_id();
    assert!(execution_ids(store, ExecutionQuery::default()).is_empty());
    assert!(store.execution(nobody).expect("read").is_none());
    assert!(store.step(nobody).expect("read").is_none());
    let page = store
        .evaluations(nobody, &EvaluationQuery::default())
        .expect("evaluations");
    assert_eq!((page.items.len(), page.next_cursor), (0, None));
    assert!(step_ids(store, StepQuery::default()).is_empty());
    let page = store
        .candidate_lineage("C1", &LineageQuery::default())
        .expect("lineage");
    assert_eq!((page.items.len(), page.next_cursor), (0, None));
    assert!(changes_between(store, nobody, nobody, 10).is_empty());
    assert!(stats(store, StatsQuery::default()).is_empty());
    assert_eq!(
        store.recorder_counts().expect("recorder counts"),
        RecorderCounts::default()
    );
    assert_eq!(latest(store), 0);
    assert!(changes(store, 0, 10).is_empty());
    assert!(!store
        .update_execution(nobody, &ExecutionUpdate::default())
        .expect("update"));
    assert_eq!(store.delete_executions(&[nobody]).expect("delete"), 0);
    assert_eq!(store.delete_executions_before(i64::MAX).expect("delete"), 0);
    maintain_until_idle(store);
    let empty = snapshot(store, &["C1"]);
    assert!(empty.is_empty(), "{empty:?}");
}
