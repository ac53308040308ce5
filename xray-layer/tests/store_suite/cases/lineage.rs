//! Across steps: where a candidate went, and what changed between two steps.

use super::*;
use crate::fixtures::*;
use xray::model::{Evaluation, ExecutionEnd, Record, Status, StepRecord};
use xray::store::{CheckChange, Verdict};

/// One run of a pipeline that judges B01 in two steps (twice in the second on run 2), with its
/// steps: `(execution, [filter, rank, other])`.
fn run(store: &dyn Store, n: i64) -> (Uuid, [StepRecord; 3]) {
    let x = new_id();
    let at = T0 + n * 1_000;
    let mut filter = step(x, "filter", at + 10, 5);
    filter.kind = Some("filter".into());
    let mut b01 = eval("B01", n != 2);
    b01.label = Some(format!("Stand, run {n}"));
    b01.checks = vec![check("price", n != 2), check("rating", true)];
    b01.metrics = vec![("confidence".into(), 0.5 + n as f64 / 10.0)];
    b01.snapshot = Some(payload(
        serde_json::json!({ "rationale": format!("run {n}: category differs") }),
    ));
    filter.evaluations = vec![eval("B02", true), b01, eval("B03", false)];
    let mut rank = step(x, "rank", at + 20, 5);
    rank.kind = Some("rank".into());
    let scored = |id: &str, score: f64, selected: bool| {
        let mut e = eval(id, true);
        e.score = Some(score);
        e.selected = selected;
        e
    };
    rank.evaluations = vec![
        scored("B01", 0.5 + n as f64, n == 3),
        scored("B02", 0.1, false),
    ];
    if n == 2 {
        rank.evaluations.push(scored("B01", 9.0, false));
    }
    if n == 3 {
        rank.selection = vec![xray::model::Selection {
            candidate_id: "B01".into(),
            reason: "highest score of run 3".into(),
        }];
    }
    let mut other = step(x, "other", at + 30, 5);
    other.evaluations = vec![eval("C9", true)];
    write(
        store,
        &[
            begin(x, "pipeline", at),
            done(&filter),
            done(&rank),
            done(&other),
            Record::ExecutionFinished(ExecutionEnd {
                input: Some(payload(
                    serde_json::json!({ "seller": { "title": seller(n) } }),
                )),
                ..end(x, at + 50, Status::Ok)
            }),
        ],
    );
    (x, [filter, rank, other])
}

/// What run `n` was given: its seller's title.
fn seller(n: i64) -> String {
    format!("Seller {n}")
}

/// The lineage entry of `evaluation` (row of `step` in execution `x` started at `at`).
fn entry(x: Uuid, at: i64, step: &StepRecord, evaluation: &Evaluation) -> LineageEntry {
    LineageEntry {
        execution_id: x,
        execution_name: "pipeline".into(),
        execution_started_at: at,
        step_id: step.id,
        step_name: step.name.clone(),
        step_kind: step.kind.clone(),
        step_started_at: step.started_at,
        label: evaluation.label.clone(),
        passed: evaluation.passed,
        score: evaluation.score,
        selected: evaluation.selected,
        checks: evaluation.checks.clone(),
        metrics: evaluation.metrics.clone(),
        snapshot: evaluation.snapshot.clone(),
        selection_reason: step
            .selection
            .iter()
            .find(|s| evaluation.selected && s.candidate_id == evaluation.candidate_id)
            .map(|s| s.reason.clone()),
        // The run's input, which tells its runs apart (`run` is at T0 + n seconds).
        execution_input_preview: vec![("seller.title".into(), seller((at - T0) / 1_000))],
    }
}

/// Every verdict on a candidate across executions and steps, newest step first (rows of one
/// step in recorded order), through pages, before and after the store's upkeep, while new runs
/// are written.
pub fn candidate_lineage_newest_first_across_executions(store: &dyn Store) {
    let (x1, [f1, r1, _]) = run(store, 1);
    let (x2, [f2, r2, _]) = run(store, 2);
    let (x3, [f3, r3, _]) = run(store, 3);
    let at = |n: i64| T0 + n * 1_000;
    let expected = vec![
        entry(x3, at(3), &r3, &r3.evaluations[0]),
        entry(x3, at(3), &f3, &f3.evaluations[1]),
        entry(x2, at(2), &r2, &r2.evaluations[0]),
        entry(x2, at(2), &r2, &r2.evaluations[2]),
        entry(x2, at(2), &f2, &f2.evaluations[1]),
        entry(x1, at(1), &r1, &r1.evaluations[0]),
        entry(x1, at(1), &f1, &f1.evaluations[1]),
    ];
    for limit in [1, 2, 3, 7, 1000] {
        assert_eq!(
            lineage_of(store, "B01", limit),
            expected,
            "pages of {limit}"
        );
    }
    assert_eq!(lineage_of(store, "C9", 10).len(), 3);
    assert!(lineage_of(store, "b01", 10).is_empty(), "ids are exact");
    assert!(lineage_of(store, "B0", 10).is_empty(), "ids are whole");
    assert!(lineage_of(store, "nobody", 10).is_empty());

    // The same after the store's upkeep.
    maintain_until_idle(store);
    for limit in [1, 3, 1000] {
        assert_eq!(
            lineage_of(store, "B01", limit),
            expected,
            "pages of {limit}"
        );
    }

    // Pages of 2 while new runs are written and the upkeep runs between pages: the newer runs
    // wait for a new listing, nothing is skipped or repeated.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut newer = Vec::new();
    for page_no in 0.. {
        assert!(page_no < 100, "pagination does not end");
        let page = store
            .candidate_lineage(
                "B01",
                &LineageQuery {
                    limit: Some(2),
                    cursor: cursor.take(),
                    check: None,
                },
            )
            .expect("lineage");
        seen.extend(page.items);
        newer.push(run(store, 10 + page_no).0);
        if page_no % 2 == 0 {
            store.maintain().expect("maintain");
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let everything = lineage_of(store, "B01", 5);
    assert_eq!(everything.len(), expected.len() + newer.len() * 2);
    assert_eq!(
        everything[0].execution_id,
        *newer.last().expect("a newer run"),
        "the newest run first"
    );
    assert_eq!(&everything[newer.len() * 2..], &expected[..]);
}

/// Two runs of "pipeline", each with one filter step that made `a` (and `b`): the steps
/// the cross-run comparisons compare.
fn two_filter_steps(
    store: &dyn Store,
    a: Vec<Evaluation>,
    b: Vec<Evaluation>,
) -> (StepRecord, StepRecord) {
    let (x, y) = (new_id(), new_id());
    let mut first = step(x, "filter", T0 + 1, 5);
    first.evaluations = a;
    let mut second = step(y, "filter", T0 + 101, 5);
    second.evaluations = b;
    write(
        store,
        &[
            begin(x, "pipeline", T0),
            done(&first),
            begin(y, "pipeline", T0 + 100),
            done(&second),
        ],
    );
    (first, second)
}

/// Two steps compared: the candidates both judged whose verdict differs (passed ↔ failed, or
/// selected in one only), in the first step's recorded order, through pages.
pub fn verdict_changes_between_two_steps(store: &dyn Store) {
    let verdict = |id: &str, passed: bool, selected: bool| {
        let mut e = eval(id, passed);
        e.selected = selected;
        e.label = Some(format!("{id} label"));
        e.score = selected.then_some(0.9);
        e.checks = vec![check("price", passed)];
        e
    };
    let (a, b) = two_filter_steps(
        store,
        vec![
            verdict("C1", true, false),
            verdict("C2", false, false),
            verdict("C3", true, true),
            verdict("C4", true, false),
            verdict("C5", false, false),
            verdict("C7", false, false),
        ],
        vec![
            verdict("C6", true, false),
            verdict("C4", true, false),
            verdict("C3", true, false),
            verdict("C2", true, false),
            verdict("C1", false, false),
            verdict("C7", false, true),
        ],
    );
    let of = |e: &Evaluation| Verdict {
        label: e.label.clone(),
        passed: e.passed,
        score: e.score,
        selected: e.selected,
        checks: e.checks.clone(),
    };
    let find = |s: &StepRecord, id: &str| {
        s.evaluations
            .iter()
            .find(|e| e.candidate_id == id)
            .map(of)
            .expect("judged")
    };
    let expected = |first: &StepRecord, second: &StepRecord, ids: &[&str]| {
        ids.iter()
            .map(|id| VerdictChange {
                candidate_id: id.to_string(),
                a: find(first, id),
                b: find(second, id),
            })
            .collect::<Vec<_>>()
    };
    let a_to_b = expected(&a, &b, &["C1", "C2", "C3", "C7"]);
    let b_to_a = expected(&b, &a, &["C3", "C2", "C1", "C7"]);
    for limit in [1, 2, 3, 4, 1000] {
        assert_eq!(
            changes_between(store, a.id, b.id, limit),
            a_to_b,
            "pages of {limit}"
        );
        assert_eq!(
            changes_between(store, b.id, a.id, limit),
            b_to_a,
            "the other way, pages of {limit}"
        );
    }
    // Counted as the pages list them, either way; nothing for unknown steps.
    let count = |x: Uuid, y: Uuid| store.count_verdict_changes(x, y).expect("a count");
    assert_eq!(count(a.id, b.id), 4);
    assert_eq!(count(b.id, a.id), 4);
    assert_eq!(count(a.id, a.id), 0);
    assert_eq!(count(a.id, new_id()), 0);
    assert!(
        changes_between(store, a.id, a.id, 10).is_empty(),
        "a step agrees with itself"
    );
    assert!(
        changes_between(store, a.id, new_id(), 10).is_empty(),
        "unknown step"
    );
    assert!(changes_between(store, new_id(), b.id, 10).is_empty());
    let no_rows = step(a.execution_id, "empty", T0 + 50, 1);
    write(store, &[done(&no_rows)]);
    assert!(changes_between(store, a.id, no_rows.id, 10).is_empty());
    maintain_until_idle(store);
    assert_eq!(changes_between(store, a.id, b.id, 2), a_to_b);

    // A candidate B's step judged twice, against one verdict in A: two changes with one index
    // in A, neither lost at a page's end.
    let (c, d) = two_filter_steps(
        store,
        vec![verdict("D1", false, false), verdict("D2", true, false)],
        vec![
            verdict("D1", true, false),
            verdict("D2", false, false),
            verdict("D1", true, true),
        ],
    );
    for limit in [1, 2, 1000] {
        let changes = changes_between(store, c.id, d.id, limit);
        let seen: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.candidate_id.as_str(), c.b.selected))
            .collect();
        assert_eq!(
            seen,
            [("D1", false), ("D1", true), ("D2", false)],
            "pages of {limit}: A's order, then B's"
        );
    }
    assert_eq!(count(c.id, d.id), 3, "a row per change, as listed");
}

/// The checks behind two steps' verdict changes: for each check that a changed candidate
/// failed in one step only, how many in each direction; and the changes of one check, through
/// pages. A candidate whose verdict did not change counts for no check, whatever it failed.
pub fn verdict_changes_by_check(store: &dyn Store) {
    let judged = |id: &str, failed: &[&str], selected: bool| {
        let mut e = eval(id, failed.is_empty());
        e.selected = selected;
        e.checks = ["price", "rating", "category"]
            .iter()
            .map(|name| check(name, !failed.contains(name)))
            .collect();
        e
    };
    let (a, b) = two_filter_steps(
        store,
        vec![
            judged("E1", &["price"], false),
            judged("E2", &[], false),
            judged("E3", &["category", "price"], false),
            judged("E4", &["price", "rating"], false),
            judged("E5", &[], true),
            judged("E6", &[], false),
            judged("E7", &["price"], false),
        ],
        vec![
            judged("E6", &["category"], false),
            judged("E5", &[], false),
            judged("E4", &[], false),
            judged("E3", &["category"], false),
            judged("E2", &["category"], false),
            judged("E1", &[], false),
            judged("E7", &["category"], false),
        ],
    );
    let change = |check: &str, failed_in_a: u64, failed_in_b: u64| CheckChange {
        check: check.into(),
        failed_in_a,
        failed_in_b,
    };
    assert_eq!(
        store.verdict_change_checks(a.id, b.id).expect("by check"),
        [
            change("category", 0, 2),
            change("price", 2, 0),
            change("rating", 1, 0)
        ],
        "E3 and E7 failed in both runs and E5 was only deselected: no check changed them"
    );
    assert_eq!(
        store.verdict_change_checks(b.id, a.id).expect("by check"),
        [
            change("category", 2, 0),
            change("price", 0, 2),
            change("rating", 0, 1)
        ]
    );
    let ids = |changes: Vec<VerdictChange>| -> Vec<String> {
        changes.into_iter().map(|c| c.candidate_id).collect()
    };
    for limit in [1, 2, 1000] {
        let of = |check| ids(changes_of_check(store, a.id, b.id, check, limit));
        assert_eq!(of(Some("category")), ["E2", "E6"], "pages of {limit}");
        assert_eq!(of(Some("price")), ["E1", "E4"], "pages of {limit}");
        assert_eq!(of(Some("rating")), ["E4"], "pages of {limit}");
        assert!(
            of(Some("categ")).is_empty(),
            "a check's name, not a part of it"
        );
        assert_eq!(of(None), ["E1", "E2", "E4", "E5", "E6"], "pages of {limit}");
    }
    assert!(store
        .verdict_change_checks(a.id, new_id())
        .expect("unknown step")
        .is_empty());
    assert!(store
        .verdict_change_checks(a.id, a.id)
        .expect("a step agrees with itself")
        .is_empty());
}

/// The candidates one step judged and the other did not: how many, and a page of them,
/// selected first, then those that passed, in recorded order; every page, each once.
pub fn candidates_only_in_one_of_two_steps(store: &dyn Store) {
    let judged = |id: &str, passed: bool, selected: bool| {
        let mut e = eval(id, passed);
        e.selected = selected;
        e.checks = vec![check("category", passed)];
        e
    };
    let (a, b) = two_filter_steps(
        store,
        vec![
            judged("S1", true, false),
            judged("A1", false, false),
            judged("A2", true, false),
            judged("A3", true, true),
            judged("S2", false, false),
            judged("A4", true, false),
        ],
        vec![
            judged("S2", true, false),
            judged("B1", false, false),
            judged("S1", false, false),
            judged("S2", true, false),
        ],
    );
    let query = |limit: usize, cursor: Option<String>| LineageQuery {
        limit: Some(limit),
        cursor,
        check: None,
    };
    let only = |step: Uuid, other: Uuid, limit: usize| {
        let found = store
            .candidates_only_in(step, other, &query(limit, None))
            .expect("candidates only in one step");
        let ids: Vec<String> = found.items.iter().map(|e| e.candidate_id.clone()).collect();
        (found.total, ids)
    };
    // Every page, following the cursors: each candidate once, in the same order as one page.
    let paged = |step: Uuid, other: Uuid, limit: usize| {
        let (mut ids, mut cursor, mut pages) = (Vec::new(), None, 0);
        loop {
            let found = store
                .candidates_only_in(step, other, &query(limit, cursor))
                .expect("a page");
            assert_eq!(found.total, 4, "the total on every page");
            assert!(found.items.len() <= limit);
            ids.extend(found.items.into_iter().map(|e| e.candidate_id));
            pages += 1;
            assert!(pages <= 4, "a cursor that does not move on: {ids:?}");
            match found.next_cursor {
                Some(next) => cursor = Some(next),
                None => return (pages, ids),
            }
        }
    };
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(only(a.id, b.id, 10), (4, ids(&["A3", "A2", "A4", "A1"])));
    assert_eq!(
        only(a.id, b.id, 2),
        (4, ids(&["A3", "A2"])),
        "the first two"
    );
    for limit in [1, 3] {
        assert_eq!(
            paged(a.id, b.id, limit),
            (4usize.div_ceil(limit), ids(&["A3", "A2", "A4", "A1"])),
            "pages of {limit}"
        );
    }
    assert!(
        store
            .candidates_only_in(a.id, b.id, &query(10, None))
            .expect("one page")
            .next_cursor
            .is_none(),
        "no cursor after the last page"
    );
    let wrong = store
        .candidates_only_in(a.id, b.id, &query(10, Some("zz".into())))
        .expect_err("a cursor that is not one");
    assert!(wrong.to_string().contains("cursor"), "{wrong}");
    assert_eq!(only(b.id, a.id, 10), (1, ids(&["B1"])));
    let found = store
        .candidates_only_in(a.id, b.id, &query(1, None))
        .expect("query");
    assert_eq!(
        found.items[0].verdict,
        Verdict {
            label: None,
            passed: true,
            score: None,
            selected: true,
            checks: vec![check("category", true)],
        },
        "with its verdict"
    );
    assert_eq!(
        only(a.id, a.id, 10),
        (0, vec![]),
        "a step judged all its own"
    );
    assert_eq!(only(a.id, new_id(), 10), (0, vec![]), "unknown step");
    assert_eq!(only(new_id(), b.id, 10), (0, vec![]));
    maintain_until_idle(store);
    assert_eq!(only(a.id, b.id, 10), (4, ids(&["A3", "A2", "A4", "A1"])));
}
