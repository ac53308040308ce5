//! The write side: idempotent batches, records that arrive split, late or never.

use super::*;
use crate::fixtures::*;
use serde_json::json;
use xray::model::{Record, Status, StepRecord};
use xray::store::{ExecutionQuery, StepQuery};

/// The same batch written twice (a retry, an ingest repeated) leaves one copy of everything.
pub fn write_twice_keeps_one_copy(store: &dyn Store) {
    let x = new_id();
    let mut s = step(x, "filter", T0 + 10, 50);
    s.kind = Some("filter".into());
    s.candidates_in = Some(3);
    s.candidates_out = Some(2);
    s.evaluations = vec![eval("A", true), eval("B", false), eval("C", true)];
    s.logs = vec![
        log(T0 + 11, "INFO", "first", json!({})),
        log(T0 + 12, "WARN", "second", json!({"n": 2})),
    ];
    let batch = [
        begin(x, "run", T0),
        done(&s),
        finish(x, T0 + 100, Status::Ok),
    ];
    write(store, &batch);
    let once = detail(store, x);
    write(store, &batch);
    let twice = detail(store, x);
    assert_eq!(
        without_seq(twice.clone()),
        without_seq(once),
        "a batch written again reads back the same"
    );
    assert_eq!(
        execution_ids(store, ExecutionQuery::default()),
        [x],
        "one execution"
    );
    assert_eq!(twice.steps.len(), 1, "one step");
    assert_eq!(twice.execution.step_count, 1);
    assert_eq!(
        evaluations_of(store, s.id, EvaluationQuery::default()),
        s.evaluations,
        "evaluations are not duplicated"
    );
    assert_eq!(step_of(store, s.id).logs, s.logs, "logs are not duplicated");

    // The step alone again, after the store's upkeep caught up with it: still one copy.
    maintain_until_idle(store);
    write(store, &[done(&s)]);
    assert_eq!(
        evaluations_of(store, s.id, EvaluationQuery::default()),
        s.evaluations
    );
    assert_eq!(step_of(store, s.id).logs, s.logs);
    assert_eq!(lineage_of(store, "A", 10).len(), 1, "one verdict on A");
    assert_eq!(step_ids(store, StepQuery::default()), [s.id]);
    assert_eq!(detail(store, x).execution.step_count, 1);

    // An empty batch writes nothing.
    let seq = latest(store);
    write(store, &[]);
    assert_eq!(latest(store), seq, "an empty batch is no change");
    assert_eq!(execution_ids(store, ExecutionQuery::default()), [x]);
}

/// A step's start and its end, in separate batches, are one step: running, then finished.
pub fn step_start_then_finish_is_one_finished_step(store: &dyn Store) {
    let x = new_id();
    let mut s = step(x, "search", T0 + 5, 20);
    s.kind = Some("search".into());
    s.candidates_out = Some(7);
    write(store, &[begin(x, "run", T0), started(&s)]);
    let d = detail(store, x);
    assert_eq!(d.steps.len(), 1);
    let running = &d.steps[0];
    assert_eq!(
        (
            running.id,
            running.status,
            running.started_at,
            running.ended_at,
            running.name.as_str(),
            running.kind.as_deref(),
            running.candidates_out,
        ),
        (
            s.id,
            Status::Running,
            T0 + 5,
            None,
            "search",
            Some("search"),
            None
        )
    );
    assert_eq!(d.execution.step_count, 1);
    let read = step_of(store, s.id);
    assert_eq!(
        (
            read.status,
            read.ended_at,
            read.input,
            read.evaluations.len()
        ),
        (Status::Running, None, None, 0),
        "a running step reads back as running, with nothing recorded yet"
    );
    let running_steps = StepQuery {
        status: Some(Status::Running),
        ..Default::default()
    };
    assert_eq!(step_ids(store, running_steps.clone()), [s.id]);

    write(store, &[done(&s)]);
    let d = detail(store, x);
    assert_eq!(d.steps.len(), 1, "the end replaces the start");
    assert_eq!(
        (d.steps[0].status, d.steps[0].ended_at),
        (Status::Ok, Some(T0 + 25))
    );
    assert_eq!(d.execution.step_count, 1);
    assert_eq!(
        step_of(store, s.id),
        s,
        "the finished step reads back whole"
    );
    assert!(step_ids(store, running_steps.clone()).is_empty());

    // A start delivered again after the end does not reopen the step.
    write(store, &[started(&s)]);
    assert_eq!(step_of(store, s.id), s, "a late start changes nothing");
    assert_eq!(detail(store, x).steps.len(), 1);

    // Start and end in one batch: one step, finished.
    let s2 = step(x, "rank", T0 + 30, 5);
    write(store, &[started(&s2), done(&s2)]);
    let d = detail(store, x);
    assert_eq!(
        d.steps.iter().map(|s| (s.id, s.status)).collect::<Vec<_>>(),
        [(s.id, Status::Ok), (s2.id, Status::Ok)]
    );
    assert_eq!(d.execution.step_count, 2);
}

/// Records of an execution whose start was lost (or is late) are kept under a placeholder
/// execution, which the start names when it arrives.
pub fn missing_execution_start_gets_a_placeholder(store: &dyn Store) {
    const LOST: &str = "(start record lost)";
    let x = new_id();
    let s = step(x, "rank", T0 + 40, 10);
    write(store, &[done(&s)]);
    let d = detail(store, x);
    assert_eq!(
        (
            d.execution.name.as_str(),
            d.execution.status,
            d.execution.started_at,
            d.execution.completed_at,
            d.execution.step_count,
        ),
        (LOST, Status::Running, T0 + 40, None, 1),
        "a placeholder starts when its first step does"
    );
    assert_eq!(d.steps.iter().map(|s| s.id).collect::<Vec<_>>(), [s.id]);
    assert_eq!(execution_ids(store, ExecutionQuery::default()), [x]);
    assert_eq!(
        steps_found(store, StepQuery::default())[0].execution_name,
        LOST
    );

    // The start arrives late: it names the execution; its steps stay.
    let mut start = execution(x, "pipeline", T0);
    start.tags = vec!["late".into()];
    write(store, &[Record::ExecutionStarted(start)]);
    let d = detail(store, x);
    assert_eq!(
        (
            d.execution.name.as_str(),
            d.execution.started_at,
            d.execution.status,
            d.execution.tags.clone(),
            d.execution.step_count,
        ),
        ("pipeline", T0, Status::Running, vec!["late".to_owned()], 1)
    );
    assert_eq!(
        steps_found(store, StepQuery::default())[0].execution_name,
        "pipeline"
    );

    // An execution whose first record is its end; then its start: the end is kept.
    let y = new_id();
    let mut e = end(y, T0 + 500, Status::Error);
    e.error = Some("boom".into());
    write(store, &[Record::ExecutionFinished(e)]);
    let d = detail(store, y);
    assert_eq!(
        (
            d.execution.name.as_str(),
            d.execution.started_at,
            d.execution.completed_at,
            d.execution.status,
            d.execution.error.as_deref(),
        ),
        (LOST, T0 + 500, Some(T0 + 500), Status::Error, Some("boom"))
    );
    write(store, &[begin(y, "late_start", T0 + 400)]);
    let d = detail(store, y);
    assert_eq!(
        (
            d.execution.name.as_str(),
            d.execution.started_at,
            d.execution.completed_at,
            d.execution.status,
            d.execution.error.as_deref(),
        ),
        (
            "late_start",
            T0 + 400,
            Some(T0 + 500),
            Status::Error,
            Some("boom")
        ),
        "a late start does not undo the end"
    );

    // A step's start alone.
    let z = new_id();
    let s3 = step(z, "fetch", T0 + 700, 1);
    write(store, &[started(&s3)]);
    let d = detail(store, z);
    assert_eq!(
        (
            d.execution.name.as_str(),
            d.execution.started_at,
            d.execution.status
        ),
        (LOST, T0 + 700, Status::Running)
    );
    assert_eq!(d.steps[0].status, Status::Running);
    assert_eq!(
        execution_ids(store, ExecutionQuery::default()),
        [z, y, x],
        "placeholders are listed like any execution"
    );
}

/// The metadata recorded while an execution ran is merged over its start's by top-level key:
/// a key set again is replaced in place, new keys are appended, `null` is a value.
pub fn execution_metadata_merges_start_and_finish(store: &dyn Store) {
    const MERGED: &str = r#"{"zeta":1,"b":{"y":null},"alpha":"three","d":null}"#;
    let start_of = |id| {
        let mut start = execution(id, "checkout", T0);
        start.metadata = raw(r#"{"zeta":1,"b":{"x":1},"alpha":"three"}"#);
        start.tags = vec!["nightly".into(), "demo".into()];
        start.service = Some("svc".into());
        start.host = Some("host-1".into());
        start.pid = Some(4242);
        Record::ExecutionStarted(start)
    };
    let end_of = |id| {
        let mut e = end(id, T0 + 100, Status::Ok);
        e.metadata = Some(raw(r#"{"b":{"y":null},"d":null}"#));
        e.input = Some(raw(r#"{"query":"laptop stand","limit":5}"#));
        e.output = Some(raw(r#"{"selected":"B01","zeta":[1,2],"alpha":null}"#));
        Record::ExecutionFinished(e)
    };

    // In one batch.
    let x = new_id();
    write(store, &[start_of(x), end_of(x)]);
    let d = detail(store, x);
    assert_eq!(compact(d.metadata.as_str()), MERGED);
    assert_eq!(
        compact(d.input.as_ref().expect("input").as_str()),
        r#"{"query":"laptop stand","limit":5}"#
    );
    assert_eq!(
        compact(d.output.as_ref().expect("output").as_str()),
        r#"{"selected":"B01","zeta":[1,2],"alpha":null}"#
    );
    assert_eq!(
        (
            d.execution.service.as_deref(),
            d.execution.host.as_deref(),
            d.execution.pid,
            d.execution.tags.clone(),
        ),
        (
            Some("svc"),
            Some("host-1"),
            Some(4242),
            vec!["nightly".to_owned(), "demo".to_owned()]
        )
    );
    // Written again: the same.
    write(store, &[start_of(x), end_of(x)]);
    assert_eq!(compact(detail(store, x).metadata.as_str()), MERGED);

    // In two batches.
    let y = new_id();
    write(store, &[start_of(y)]);
    assert_eq!(
        compact(detail(store, y).metadata.as_str()),
        r#"{"zeta":1,"b":{"x":1},"alpha":"three"}"#,
        "a running execution has its start's metadata"
    );
    write(store, &[end_of(y)]);
    assert_eq!(compact(detail(store, y).metadata.as_str()), MERGED);

    // An end without metadata keeps the start's.
    let z = new_id();
    write(
        store,
        &[
            start_of(z),
            Record::ExecutionFinished(end(z, T0 + 9, Status::Ok)),
        ],
    );
    assert_eq!(
        compact(detail(store, z).metadata.as_str()),
        r#"{"zeta":1,"b":{"x":1},"alpha":"three"}"#
    );

    // The end first, then the start: what was recorded while it ran still wins, keys in the
    // start's order, then the new ones.
    let w = new_id();
    let mut e = end(w, T0 + 50, Status::Ok);
    e.metadata = Some(raw(r#"{"k":1,"late":true}"#));
    write(store, &[Record::ExecutionFinished(e)]);
    assert_eq!(
        compact(detail(store, w).metadata.as_str()),
        r#"{"k":1,"late":true}"#
    );
    let mut start = execution(w, "late", T0);
    start.metadata = raw(r#"{"s":2,"k":0}"#);
    write(store, &[Record::ExecutionStarted(start)]);
    assert_eq!(
        compact(detail(store, w).metadata.as_str()),
        r#"{"s":2,"k":1,"late":true}"#
    );
}

/// An end that counts dropped records marks the steps still running as lost: their end will
/// never come.
pub fn dropped_records_mark_running_steps_lost(store: &dyn Store) {
    let x = new_id();
    let a = step(x, "fetch", T0 + 1, 100);
    let mut c = step(x, "fetch.page", T0 + 2, 10);
    c.parent_id = Some(a.id);
    let b = step(x, "rank", T0 + 3, 5);
    write(
        store,
        &[begin(x, "run", T0), started(&a), started(&c), done(&b)],
    );
    let mut e = end(x, T0 + 200, Status::Ok);
    e.dropped_records = 3;
    write(store, &[Record::ExecutionFinished(e.clone())]);
    let d = detail(store, x);
    assert_eq!(
        d.steps
            .iter()
            .map(|s| (s.id, s.status, s.ended_at))
            .collect::<Vec<_>>(),
        [
            (a.id, Status::Lost, None),
            (c.id, Status::Lost, None),
            (b.id, Status::Ok, Some(T0 + 8)),
        ]
    );
    assert_eq!(
        (
            d.execution.dropped_records,
            d.execution.status,
            d.execution.completed_at
        ),
        (3, Status::Ok, Some(T0 + 200))
    );
    assert_eq!(step_of(store, a.id).status, Status::Lost);
    assert_eq!(
        step_ids(
            store,
            StepQuery {
                status: Some(Status::Lost),
                ..Default::default()
            }
        ),
        [c.id, a.id]
    );
    // The end again, counting nothing this time: the count is kept.
    let mut again = e;
    again.dropped_records = 0;
    write(store, &[Record::ExecutionFinished(again)]);
    assert_eq!(detail(store, x).execution.dropped_records, 3);

    // Nothing dropped: a step still running at the end is still running.
    let y = new_id();
    let r = step(y, "fetch", T0 + 1_001, 5);
    write(
        store,
        &[
            begin(y, "run", T0 + 1_000),
            started(&r),
            finish(y, T0 + 1_100, Status::Ok),
        ],
    );
    assert_eq!(step_of(store, r.id).status, Status::Running);
    assert_eq!(detail(store, y).execution.dropped_records, 0);
}

/// An execution's counts of steps and of failed steps follow its steps as they arrive, batch
/// after batch: starts, ends over starts, ends without starts, ends written again, a late end
/// of a step marked lost.
pub fn execution_counts_follow_steps_across_batches(store: &dyn Store) {
    let x = new_id();
    let counts = |store: &dyn Store| {
        let d = detail(store, x);
        let listed = store
            .list_executions(&ExecutionQuery::default())
            .expect("list")
            .items
            .into_iter()
            .find(|e| e.id == x)
            .map(|e| (e.step_count, e.error_steps));
        assert_eq!(
            listed,
            Some((d.execution.step_count, d.execution.error_steps)),
            "the list says what the detail says"
        );
        (d.execution.step_count, d.execution.error_steps)
    };
    let failed = |mut s: StepRecord| {
        s.status = Status::Error;
        s.error = Some("the model timed out".into());
        s
    };
    let a = failed(step(x, "judge", T0 + 1, 10));
    write(store, &[begin(x, "run", T0), started(&a)]);
    assert_eq!(
        counts(store),
        (1, 0),
        "a running step counts, not as failed"
    );
    write(store, &[done(&a)]);
    assert_eq!(counts(store), (1, 1), "its end, in a later batch, failed");
    write(store, &[done(&a)]);
    assert_eq!(counts(store), (1, 1), "the same end again changes nothing");
    write(store, &[started(&a)]);
    assert_eq!(counts(store), (1, 1), "nor does a late start");

    let b = step(x, "rank", T0 + 20, 5);
    let c = failed(step(x, "select", T0 + 30, 5));
    write(store, &[started(&b), done(&b), done(&c)]);
    assert_eq!(
        counts(store),
        (3, 2),
        "a start and end in one batch, an end alone"
    );

    // The same step's end again, now passed: a batch that says otherwise wins.
    let mut c_passed = c.clone();
    c_passed.status = Status::Ok;
    c_passed.error = None;
    write(store, &[done(&c_passed)]);
    assert_eq!(counts(store), (3, 1));

    // A step marked lost when its run ended with records dropped, whose end comes late.
    let d = failed(step(x, "explain", T0 + 40, 5));
    write(store, &[started(&d)]);
    let mut e = end(x, T0 + 100, Status::Ok);
    e.dropped_records = 1;
    write(store, &[Record::ExecutionFinished(e)]);
    assert_eq!(step_of(store, d.id).status, Status::Lost);
    assert_eq!(counts(store), (4, 1), "a lost step counts, not as failed");
    write(store, &[done(&d)]);
    assert_eq!(counts(store), (4, 2), "its late end failed");
}

/// Many runs in one batch, as a writer that keeps up with thousands of tiny runs sends them,
/// with the oddities a batch can hold: a step's record given twice (the last one counts), an
/// execution's end before its start, steps that start at the same microsecond, a step left
/// running by a run that lost records. The result is what writing them one by one gives.
pub fn many_runs_in_one_batch_read_as_if_written_one_by_one(store: &dyn Store) {
    const RUNS: usize = 30;
    let mut batch = Vec::new();
    let mut runs = Vec::new();
    let mut first_steps = Vec::new();
    for i in 0..RUNS {
        let x = new_id();
        let t = T0 + i as i64 * 1_000;
        let mut start = execution(x, &format!("run-{i}"), t);
        start.metadata = raw(&format!(r#"{{"i":{i},"keep":"start"}}"#));
        start.tags = vec![format!("t{}", i % 3)];
        batch.push(Record::ExecutionStarted(start));
        let mut steps = Vec::new();
        for (n, name) in ["search", "filter", "rank", "select"].iter().enumerate() {
            // "rank" and "select" start at the same microsecond: their order is the batch's.
            let at = t + 10 * (n.min(2) as i64) + 1;
            let mut s = step(x, name, at, 5);
            s.candidates_in = Some(100 - 20 * n as u64);
            s.candidates_out = Some(80 - 20 * n as u64);
            if i == 7 && n == 2 {
                s.status = Status::Error;
                s.error = Some("judge timed out".into());
            }
            steps.push(s);
        }
        if i == 0 {
            // Finished twice below, the second time with other verdicts.
            steps[0].evaluations = vec![eval("Z", false)];
        }
        batch.push(started(&steps[0]));
        batch.extend(steps.iter().map(done));
        let mut e = end(x, t + 100, if i == 7 { Status::Error } else { Status::Ok });
        e.metadata = Some(raw(r#"{"keep":"end","done":true}"#));
        batch.push(Record::ExecutionFinished(e));
        first_steps.push(steps[0].clone());
        runs.push((x, steps));
    }
    // The first run's first step again, with an output and other verdicts: the last record of
    // a step wins, rows and all (copied once).
    let mut again = first_steps[0].clone();
    again.output = Some(raw(r#"{"kept":80}"#));
    again.evaluations = vec![eval("A", true), eval("B", false)];
    batch.push(done(&again));
    // Two steps that start at the same microsecond, the first finished and the second still
    // running: they are listed in the order they started in.
    let order = new_id();
    let a = step(order, "a", T0 + 97_001, 5);
    let mut b = step(order, "b", T0 + 97_001, 5);
    b.ended_at = None;
    b.status = Status::Running;
    // Started twice: the first tags given stay.
    let mut tagged = execution(order, "order", T0 + 97_000);
    tagged.tags = vec!["first".into()];
    batch.push(Record::ExecutionStarted(tagged));
    batch.extend([started(&a), done(&a), started(&b)]);
    batch.push(begin(order, "order", T0 + 97_000));
    // An execution whose end comes before its start.
    let late = new_id();
    let mut e = end(late, T0 + 90_000, Status::Ok);
    e.metadata = Some(raw(r#"{"k":1}"#));
    batch.push(Record::ExecutionFinished(e));
    let mut start = execution(late, "late", T0 + 89_000);
    start.metadata = raw(r#"{"s":2,"k":0}"#);
    batch.push(Record::ExecutionStarted(start));
    // A run that lost records: its step that never finished is lost, not running.
    let lossy = new_id();
    let stuck = step(lossy, "stuck", T0 + 95_001, 5);
    batch.push(begin(lossy, "lossy", T0 + 95_000));
    batch.push(started(&stuck));
    let mut e = end(lossy, T0 + 96_000, Status::Error);
    e.dropped_records = 1;
    batch.push(Record::ExecutionFinished(e));
    write(store, &batch);

    for (i, (x, steps)) in runs.iter().enumerate() {
        let d = detail(store, *x);
        let run = &d.execution;
        assert_eq!(run.name, format!("run-{i}"));
        assert_eq!(run.tags, [format!("t{}", i % 3)]);
        assert_eq!(run.completed_at, Some(T0 + i as i64 * 1_000 + 100));
        assert_eq!(run.step_count, 4, "run {i}");
        assert_eq!(run.error_steps, u64::from(i == 7), "run {i}");
        // The funnel runs from the first step to the last; the run that failed returned none.
        let out = if i == 7 { None } else { Some(20) };
        assert_eq!(
            (run.candidates_in, run.candidates_out),
            (Some(100), out),
            "run {i}"
        );
        assert_eq!(
            compact(d.metadata.as_str()),
            format!(r#"{{"i":{i},"keep":"end","done":true}}"#)
        );
        let names: Vec<&str> = d.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["search", "filter", "rank", "select"], "run {i}");
        let ids: Vec<Uuid> = d.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, steps.iter().map(|s| s.id).collect::<Vec<_>>());
        assert!(d.steps.iter().all(|s| s.ended_at.is_some()), "run {i}");
    }
    assert_eq!(
        step_of(store, first_steps[0].id)
            .output
            .map(|o| compact(o.as_str())),
        Some(r#"{"kept":80}"#.to_owned())
    );
    let verdicts = evaluations_of(store, first_steps[0].id, Default::default());
    assert_eq!(
        verdicts
            .iter()
            .map(|e| e.candidate_id.as_str())
            .collect::<Vec<_>>(),
        ["A", "B"]
    );
    let d = detail(store, order);
    assert_eq!(d.execution.tags, ["first"]);
    let listed: Vec<(&str, Status)> = d
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(listed, [("a", Status::Ok), ("b", Status::Running)]);
    let d = detail(store, late);
    assert_eq!(
        (
            d.execution.name.as_str(),
            d.execution.status,
            d.execution.completed_at
        ),
        ("late", Status::Ok, Some(T0 + 90_000))
    );
    assert_eq!(compact(d.metadata.as_str()), r#"{"s":2,"k":1}"#);
    let d = detail(store, lossy);
    assert_eq!(d.execution.dropped_records, 1);
    assert_eq!(d.steps.len(), 1);
    assert_eq!(d.steps[0].status, Status::Lost);
    assert_eq!(
        executions_of(store, ExecutionQuery::default()).len(),
        RUNS + 3
    );
}
