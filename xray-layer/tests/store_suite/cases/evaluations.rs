//! A step's evaluation rows: order, sorts, filters, pages, and values read back exactly.

use super::*;
use crate::fixtures::*;
use serde_json::json;
use xray::model::{Check, Evaluation, Status, StepRecord};
use xray::store::{CheckValue, CheckValues, CommonValues};

/// Writes one step of `evaluations` in a new execution; returns the step.
fn step_with(store: &dyn Store, evaluations: Vec<Evaluation>) -> StepRecord {
    let x = new_id();
    let mut s = step(x, "judge", T0 + 1, 10);
    s.candidates_in = Some(evaluations.len() as u64);
    s.evaluations = evaluations;
    write(
        store,
        &[
            begin(x, "run", T0),
            done(&s),
            finish(x, T0 + 20, Status::Ok),
        ],
    );
    s
}

/// Evaluations read back in the order they were made, every field as written.
pub fn evaluations_round_trip_in_recorded_order(store: &dyn Store) {
    let mut b01 = eval("B01", true);
    b01.label = Some("Laptop Stand \"Pro\"".into());
    b01.score = Some(0.93);
    b01.selected = true;
    b01.checks = vec![full_check(
        "price",
        true,
        None,
        Some(json!(24.99)),
        Some(json!([14.995, 59.98])),
        Some("range"),
    )];
    b01.metrics = vec![
        ("relevance".into(), 0.93),
        ("zeta".into(), -0.0),
        ("alpha".into(), 1e300),
        ("tiny".into(), 5e-324),
    ];
    b01.snapshot = Some(raw(
        r#"{"title":"Stand ☕","price":24.99,"zeta":1,"alpha":2}"#,
    ));
    let mut b02 = eval("B02", false);
    b02.checks = vec![check("price", false)];
    let mut b03 = eval("b03 ünïcødé ☕", false);
    b03.label = Some("名前 \u{1} \\ \"".into());
    b03.score = Some(-1.5);
    b03.checks = vec![check("rating", false), check("price", true)];
    b03.metrics = vec![("only".into(), 0.30000000000000004)];
    let mut b04 = eval("B04", true);
    b04.score = Some(0.30000000000000004);
    // The same candidate twice in one step is two rows.
    let mut b01_again = eval("B01", false);
    b01_again.score = Some(1e300);
    let evaluations = vec![b01, b02, b03, b04, b01_again];
    let s = step_with(store, evaluations.clone());
    let read = evaluations_of(store, s.id, EvaluationQuery::default());
    assert_eq!(read, evaluations);
    assert!(
        read[0].metrics[1].1.is_sign_negative(),
        "-0.0 keeps its sign"
    );
    assert_eq!(
        read[0]
            .snapshot
            .as_ref()
            .map(|j| compact(j.as_str()))
            .as_deref(),
        Some(r#"{"title":"Stand ☕","price":24.99,"zeta":1,"alpha":2}"#),
        "snapshots keep their keys' order"
    );
    assert!(
        evaluations_of(store, new_id(), EvaluationQuery::default()).is_empty(),
        "an unknown step has no evaluations"
    );
    let bare = step_with(store, Vec::new());
    assert!(evaluations_of(store, bare.id, EvaluationQuery::default()).is_empty());
}

/// The checks that exercise a JSON round trip: floats that are easy to mangle, integers at the
/// ends of their range, unicode, quotes, backslashes and control characters.
fn tricky_checks() -> Vec<Check> {
    vec![
        full_check(
            "price",
            false,
            Some("8.99 < 14.995 (range 14.995–59.98)"),
            Some(json!(8.99)),
            Some(json!([14.995, 59.98])),
            Some("range"),
        ),
        full_check(
            "rating",
            true,
            None,
            Some(json!(4.0)),
            Some(json!(3.8)),
            Some("min"),
        ),
        full_check(
            "cat\"egory\n",
            false,
            Some("Phone \"Cases\" \u{1} not in [a]"),
            Some(json!("Phone \"Cases\"")),
            Some(json!(["Laptop Stands", "Desks"])),
            Some("in"),
        ),
        full_check("free", false, Some(""), None, None, None),
        full_check(
            "big",
            false,
            None,
            Some(json!(1e300)),
            Some(json!(-0.0)),
            Some("max"),
        ),
        full_check(
            "tiny",
            true,
            Some("5e-324 is the least double"),
            Some(json!(5e-324)),
            Some(json!(0.30000000000000004)),
            Some("min"),
        ),
        full_check(
            "ints",
            true,
            None,
            Some(json!(u64::MAX)),
            Some(json!([i64::MIN, 0, -1])),
            Some("range"),
        ),
        full_check(
            "ünïcødé ☕ 名前",
            false,
            Some("emoji 🚀 \u{7f} \\ backslash / slash \u{1f} unit separator \t tab"),
            Some(json!({"nested": [1, {"k": "v"}], "empty": {}})),
            Some(json!(true)),
            None,
        ),
    ]
}

/// Checks read back exactly, through `evaluations`, `candidate_lineage` and `verdict_changes`:
/// the same JSON, number for number (`4.0` stays a float, `-0.0` keeps its sign).
pub fn checks_round_trip_exactly(store: &dyn Store) {
    let checks = tricky_checks();
    let mut a = eval("B01", false);
    a.checks = checks.clone();
    let mut only_last = eval("B02", true);
    only_last.checks = vec![checks[7].clone()];
    let s = step_with(store, vec![a.clone(), only_last.clone()]);
    let exact = |c: &[Check]| serde_json::to_string(c).expect("checks serialize");
    let read = evaluations_of(store, s.id, EvaluationQuery::default());
    assert_eq!(read, [a.clone(), only_last.clone()]);
    assert_eq!(exact(&read[0].checks), exact(&checks), "the same JSON");
    assert_eq!(exact(&read[1].checks), exact(&only_last.checks));
    let big = &read[0].checks[4];
    assert!(
        big.threshold
            .as_ref()
            .and_then(|t| t.as_f64())
            .is_some_and(|t| t == 0.0 && t.is_sign_negative()),
        "-0.0 keeps its sign: {:?}",
        big.threshold
    );
    assert!(read[0].checks[1]
        .observed
        .as_ref()
        .is_some_and(|o| o.is_f64()));

    // The same checks through the cross-step reads.
    let lineage = lineage_of(store, "B01", 10);
    assert_eq!(lineage.len(), 1);
    assert_eq!(exact(&lineage[0].checks), exact(&checks));
    let mut flipped = a.clone();
    flipped.passed = true;
    let other = step_with(store, vec![flipped]);
    let changes = changes_between(store, s.id, other.id, 10);
    assert_eq!(changes.len(), 1);
    assert_eq!(exact(&changes[0].a.checks), exact(&checks));
    assert_eq!(exact(&changes[0].b.checks), exact(&checks));
}

/// Candidate ids of `evaluations` sorted by `sort`, as every store must: scores high to low (or
/// low to high), missing scores last either way, ties in recorded order.
fn sorted_ids(evaluations: &[Evaluation], sort: EvaluationSort) -> Vec<String> {
    let mut rows: Vec<(usize, &Evaluation)> = evaluations.iter().enumerate().collect();
    rows.sort_by(|(i, a), (j, b)| {
        let by_score = match (a.score, b.score, sort) {
            (_, _, EvaluationSort::Recorded) => std::cmp::Ordering::Equal,
            (_, _, EvaluationSort::MetricDesc | EvaluationSort::MetricAsc) => {
                panic!("sorted_ids knows the score sorts only")
            }
            (Some(x), Some(y), EvaluationSort::ScoreDesc) => y.total_cmp(&x),
            (Some(x), Some(y), EvaluationSort::ScoreAsc) => x.total_cmp(&y),
            (Some(_), None, _) => std::cmp::Ordering::Less,
            (None, Some(_), _) => std::cmp::Ordering::Greater,
            (None, None, _) => std::cmp::Ordering::Equal,
        };
        by_score.then(i.cmp(j))
    });
    rows.into_iter()
        .map(|(_, e)| e.candidate_id.clone())
        .collect()
}

/// Sorting by score: highest (or lowest) first, ties in recorded order, evaluations without a
/// score last in both directions, whatever the scores (infinities, the largest doubles).
pub fn evaluations_sort_by_score_missing_last(store: &dyn Store) {
    let scores = [
        Some(3.0),
        None,
        Some(1.0),
        Some(5.0),
        None,
        Some(3.0),
        Some(-2.0),
        Some(f64::MAX),
        Some(-f64::MAX),
        Some(f64::NEG_INFINITY),
        Some(f64::INFINITY),
        Some(1e308),
        Some(-1e308),
        Some(0.0),
    ];
    let evaluations: Vec<Evaluation> = scores
        .iter()
        .enumerate()
        .map(|(i, score)| {
            let mut e = eval(&format!("c{i}"), true);
            e.score = *score;
            e
        })
        .collect();
    let s = step_with(store, evaluations.clone());
    let ids = |sort, limit| {
        candidates_of(
            store,
            s.id,
            EvaluationQuery {
                sort,
                limit: Some(limit),
                ..Default::default()
            },
        )
    };
    let c = |list: &[usize]| list.iter().map(|i| format!("c{i}")).collect::<Vec<_>>();
    assert_eq!(
        ids(EvaluationSort::ScoreDesc, 1000),
        c(&[10, 7, 11, 3, 0, 5, 2, 13, 6, 12, 8, 9, 1, 4]),
        "highest first, missing last"
    );
    assert_eq!(
        ids(EvaluationSort::ScoreAsc, 1000),
        c(&[9, 8, 12, 6, 13, 2, 0, 5, 3, 11, 7, 10, 1, 4]),
        "lowest first, missing last"
    );
    assert_eq!(
        ids(EvaluationSort::Recorded, 1000),
        c(&(0..14).collect::<Vec<_>>())
    );
    for sort in [
        EvaluationSort::Recorded,
        EvaluationSort::ScoreDesc,
        EvaluationSort::ScoreAsc,
    ] {
        assert_eq!(ids(sort, 1000), sorted_ids(&evaluations, sort), "{sort:?}");
        for limit in [1, 2, 3, 13] {
            assert_eq!(
                ids(sort, limit),
                sorted_ids(&evaluations, sort),
                "{sort:?} by pages of {limit}"
            );
        }
    }
    let read = evaluations_of(
        store,
        s.id,
        EvaluationQuery {
            sort: EvaluationSort::ScoreDesc,
            ..Default::default()
        },
    );
    assert_eq!(
        read[0].score,
        Some(f64::INFINITY),
        "infinite scores read back"
    );
    assert_eq!(read[1].score, Some(f64::MAX));
}

/// Sorting by a metric (an LLM judge's `confidence`): highest (or lowest) first, ties in
/// recorded order, evaluations without that metric last in both directions, through every page
/// size. Another metric of the same rows does not interfere; a metric named twice in one row
/// sorts by its first value; a value JSON cannot hold (NaN, stored as `null`) counts as
/// missing and does not hide the row's other metrics; the other filters still apply.
pub fn evaluations_sort_by_metric_missing_last(store: &dyn Store) {
    let metrics: [&[(&str, f64)]; 10] = [
        &[("confidence", 0.9), ("price", 10.0)],
        &[("price", 99.0)],
        &[("confidence", 0.2)],
        &[("price", 1.0), ("confidence", 0.9)],
        &[],
        &[("confidence", f64::MAX)],
        &[("confidence", -f64::MAX)],
        &[("confidence", 0.5), ("confidence", 0.1)],
        &[("confidence", 3.0)],
        &[("confidence", 0.7), ("broken", f64::NAN)],
    ];
    let evaluations: Vec<Evaluation> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut e = eval(&format!("c{i}"), i != 2 && i != 7);
            e.metrics = m.iter().map(|&(n, v)| (n.to_owned(), v)).collect();
            e
        })
        .collect();
    let s = step_with(store, evaluations);
    let query = |sort, metric: &str| EvaluationQuery {
        sort,
        metric: Some(metric.to_owned()),
        ..Default::default()
    };
    let ids = |q: EvaluationQuery, limit| {
        candidates_of(
            store,
            s.id,
            EvaluationQuery {
                limit: Some(limit),
                ..q
            },
        )
    };
    let c = |list: &[usize]| list.iter().map(|i| format!("c{i}")).collect::<Vec<_>>();
    for limit in [1, 2, 3, 8, 1000] {
        assert_eq!(
            ids(query(EvaluationSort::MetricDesc, "confidence"), limit),
            c(&[5, 8, 0, 3, 9, 7, 2, 6, 1, 4]),
            "highest confidence first, ties in recorded order, missing last (pages of {limit})"
        );
        assert_eq!(
            ids(query(EvaluationSort::MetricAsc, "confidence"), limit),
            c(&[6, 2, 7, 9, 0, 3, 8, 5, 1, 4]),
            "lowest confidence first, missing last (pages of {limit})"
        );
        assert_eq!(
            ids(query(EvaluationSort::MetricDesc, "price"), limit),
            c(&[1, 0, 3, 2, 4, 5, 6, 7, 8, 9]),
            "another metric of the same rows (pages of {limit})"
        );
        assert_eq!(
            ids(query(EvaluationSort::MetricAsc, "broken"), limit),
            c(&(0..10).collect::<Vec<_>>()),
            "a NaN is missing (pages of {limit})"
        );
    }
    assert_eq!(
        ids(query(EvaluationSort::MetricDesc, "no such metric"), 4),
        c(&(0..10).collect::<Vec<_>>()),
        "a metric no row has: all missing, in recorded order"
    );
    let read = evaluations_of(store, s.id, EvaluationQuery::default());
    let names: Vec<&str> = read[9].metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["confidence", "broken"], "the NaN hides no metric");
    assert_eq!(read[9].metrics[0].1, 0.7);
    assert!(read[9].metrics[1].1.is_nan());
    assert_eq!(
        ids(
            EvaluationQuery {
                passed: Some(false),
                ..query(EvaluationSort::MetricAsc, "confidence")
            },
            1
        ),
        c(&[2, 7]),
        "with a verdict filter: the failed ones, lowest confidence first"
    );
    let refused = |q: EvaluationQuery| invalid_field(store.evaluations(s.id, &q));
    assert_eq!(
        refused(EvaluationQuery {
            sort: EvaluationSort::MetricDesc,
            ..Default::default()
        }),
        "metric",
        "a metric sort without a metric"
    );
    assert_eq!(refused(query(EvaluationSort::MetricAsc, "  ")), "metric");
    assert_eq!(
        refused(query(EvaluationSort::ScoreDesc, "confidence")),
        "metric",
        "a metric without a metric sort"
    );
}

/// Eight evaluations to filter:
///
/// | | candidate | label | passed | checks |
/// |---|---|---|---|---|
/// | 0 | B01 | Laptop Stand | yes | price ✓ rating ✓ |
/// | 1 | B02 | Phone Case | no | price ✗ rating ✓ |
/// | 2 | B03 | | no | price ✓ rating ✗ |
/// | 3 | B04 | 100%_Cotton | no | price ✗ rating ✗ |
/// | 4 | X_05 | stand% | yes | (none) |
/// | 5 | B06 | Desk | yes | rating ✓ |
/// | 6 | B07 | Lamp | no | category ✗ |
/// | 7 | B08 | | no | price_max ✗ |
fn eight_evaluations() -> Vec<Evaluation> {
    let row = |id: &str, label: Option<&str>, passed, checks: &[(&str, bool)]| {
        let mut e = eval(id, passed);
        e.label = label.map(Into::into);
        e.checks = checks.iter().map(|&(n, p)| check(n, p)).collect();
        e
    };
    vec![
        row(
            "B01",
            Some("Laptop Stand"),
            true,
            &[("price", true), ("rating", true)],
        ),
        row(
            "B02",
            Some("Phone Case"),
            false,
            &[("price", false), ("rating", true)],
        ),
        row("B03", None, false, &[("price", true), ("rating", false)]),
        row(
            "B04",
            Some("100%_Cotton"),
            false,
            &[("price", false), ("rating", false)],
        ),
        row("X_05", Some("stand%"), true, &[]),
        row("B06", Some("Desk"), true, &[("rating", true)]),
        row("B07", Some("Lamp"), false, &[("category", false)]),
        row("B08", None, false, &[("price_max", false)]),
    ]
}

/// Filters: the verdict, a check failed (or, with `passed`, made and passed), text in the
/// candidate id or label (case-insensitive, `%` and `_` literal).
pub fn evaluations_filter_by_verdict_check_and_text(store: &dyn Store) {
    let s = step_with(store, eight_evaluations());
    let find = |passed: Option<bool>, check: Option<&str>, q: Option<&str>| {
        candidates_of(
            store,
            s.id,
            EvaluationQuery {
                passed,
                check: check.map(Into::into),
                q: q.map(Into::into),
                ..Default::default()
            },
        )
    };
    assert_eq!(find(Some(true), None, None), ["B01", "X_05", "B06"]);
    assert_eq!(
        find(Some(false), None, None),
        ["B02", "B03", "B04", "B07", "B08"]
    );
    assert_eq!(
        find(None, Some("price"), None),
        ["B02", "B04"],
        "failed the price check (not price_max)"
    );
    assert_eq!(
        find(Some(false), Some("price"), None),
        ["B02", "B04"],
        "failed it"
    );
    assert_eq!(
        find(Some(true), Some("price"), None),
        ["B01", "B03"],
        "made the price check and passed it"
    );
    assert_eq!(find(None, Some("rating"), None), ["B03", "B04"]);
    assert_eq!(
        find(Some(true), Some("rating"), None),
        ["B01", "B02", "B06"]
    );
    assert_eq!(find(None, Some("price_max"), None), ["B08"]);
    assert_eq!(find(Some(true), Some("price_max"), None), NO_CANDIDATES);
    assert_eq!(
        find(None, Some("Price"), None),
        NO_CANDIDATES,
        "check names are exact"
    );
    assert_eq!(find(None, Some("nope"), None), NO_CANDIDATES);
    assert_eq!(find(Some(true), Some("nope"), None), NO_CANDIDATES);
    assert_eq!(
        find(None, None, Some("stand")),
        ["B01", "X_05"],
        "in the label, any case"
    );
    assert_eq!(
        find(None, None, Some("b0")),
        ["B01", "B02", "B03", "B04", "B06", "B07", "B08"],
        "in the candidate id, any case"
    );
    assert_eq!(
        find(None, None, Some("%")),
        ["B04", "X_05"],
        "`%` is literal"
    );
    assert_eq!(find(None, None, Some("x_")), ["X_05"]);
    assert_eq!(find(None, None, Some("_0")), ["X_05"], "`_` is literal");
    assert_eq!(find(None, None, Some("nothing")), Vec::<String>::new());
    assert_eq!(
        find(None, None, Some("  ")),
        find(None, None, None),
        "blank text is no filter"
    );
    assert_eq!(find(Some(false), None, Some("stand")), Vec::<String>::new());
    assert_eq!(find(Some(true), Some("rating"), Some("desk")), ["B06"]);
    // Filtered pages.
    for limit in [1, 2] {
        assert_eq!(
            candidates_of(
                store,
                s.id,
                EvaluationQuery {
                    passed: Some(false),
                    limit: Some(limit),
                    ..Default::default()
                }
            ),
            ["B02", "B03", "B04", "B07", "B08"],
            "limit {limit}"
        );
    }
}

/// Pages over every sort, with and without a filter, return every row exactly once.
pub fn evaluations_paginate_every_sort_exactly_once(store: &dyn Store) {
    let evaluations: Vec<Evaluation> = (0..23i64)
        .map(|i| {
            let mut e = eval(&format!("c{i:02}"), i % 3 != 0);
            e.score = (i % 5 != 0).then_some(((i * 7) % 6) as f64 / 2.0);
            e
        })
        .collect();
    let s = step_with(store, evaluations.clone());
    for sort in [
        EvaluationSort::Recorded,
        EvaluationSort::ScoreDesc,
        EvaluationSort::ScoreAsc,
    ] {
        let expected = sorted_ids(&evaluations, sort);
        let passed: Vec<Evaluation> = evaluations.iter().filter(|e| e.passed).cloned().collect();
        let expected_passed = sorted_ids(&passed, sort);
        for limit in [1, 2, 4, 5, 22, 23, 24, 1000] {
            let query = EvaluationQuery {
                sort,
                limit: Some(limit),
                ..Default::default()
            };
            let got = candidates_of(store, s.id, query.clone());
            assert_eq!(got, expected, "{sort:?}, pages of {limit}");
            let got = candidates_of(
                store,
                s.id,
                EvaluationQuery {
                    passed: Some(true),
                    ..query
                },
            );
            assert_eq!(got, expected_passed, "{sort:?}, passed, pages of {limit}");
        }
    }
}

/// The candidates of `step` whose check `check` observed `observed`, with verdict `passed`.
fn rows_observed(
    store: &dyn Store,
    step: Uuid,
    check: &str,
    observed: &str,
    passed: Option<bool>,
) -> Vec<String> {
    store
        .evaluations(
            step,
            &EvaluationQuery {
                check: Some(check.into()),
                observed: Some(observed.into()),
                passed,
                ..EvaluationQuery::default()
            },
        )
        .expect("evaluations")
        .items
        .into_iter()
        .map(|e| e.candidate_id)
        .collect()
}

/// How often each value was seen by one check, with its verdicts: text and numbers, most
/// frequent first (ties by value, no value last); other checks' values are not counted, a
/// limit keeps the most frequent, and an unknown check or step has none.
pub fn check_values_count_each_observed_value(store: &dyn Store) {
    let seen = |id: &str, keyword: Option<serde_json::Value>, passed: bool| {
        let mut e = eval(id, passed);
        e.checks = vec![
            Check {
                observed: Some(json!(4.5)),
                ..check("rating", true)
            },
            Check {
                observed: keyword,
                ..check("keyword", passed)
            },
        ];
        e
    };
    let s = step_with(
        store,
        vec![
            seen("A", Some(json!("phone case")), true),
            seen("B", Some(json!("laptop stand")), true),
            seen("C", Some(json!("phone case")), true),
            seen("D", None, false),
            seen("E", Some(json!("phone case")), false),
            seen("F", Some(json!(24)), false),
            seen("G", Some(json!("Phone \"Case\" é")), true),
            // JSON null is no value, like none at all.
            seen("H", Some(serde_json::Value::Null), false),
            // Arrays and large numbers read the same from either database.
            seen("I", Some(json!([1, "a"])), true),
            seen("J", Some(json!(1e21)), true),
        ],
    );
    // Another step's rows with the same check are not this step's.
    let other = step_with(store, vec![seen("A", Some(json!("phone case")), true)]);
    let value = |observed: Option<&str>, passed: u64, failed: u64| CheckValue {
        observed: observed.map(str::to_owned),
        passed,
        failed,
    };
    let all = store.check_values(s.id, "keyword", 10).expect("values");
    assert_eq!((all.evaluations, all.distinct), (10, 7));
    assert_eq!(
        &all.values[..4],
        [
            value(Some("phone case"), 2, 1),
            value(None, 0, 2),
            value(Some("Phone \"Case\" é"), 1, 0),
            value(Some("laptop stand"), 1, 0),
        ]
    );
    // The rest, once each: in an order of their JSON text that may differ between databases.
    let mut rest = all.values[4..].to_vec();
    rest.sort_by(|a, b| a.observed.cmp(&b.observed));
    assert_eq!(
        rest,
        [
            value(Some("1e+21"), 1, 0),
            value(Some("24"), 0, 1),
            value(Some("[1,\"a\"]"), 1, 0),
        ]
    );
    // Each value leads to its rows: those that passed the check with it, and those that
    // failed it, as many as the values say, in both databases' spelling of each.
    let with = |observed: &str, passed: Option<bool>| {
        rows_observed(store, s.id, "keyword", observed, passed)
    };
    for v in &all.values {
        let Some(observed) = &v.observed else {
            continue;
        };
        assert_eq!(with(observed, Some(true)).len() as u64, v.passed, "{v:?}");
        assert_eq!(with(observed, None).len() as u64, v.failed, "{v:?}");
    }
    assert_eq!(with("phone case", Some(true)), ["A", "C"]);
    assert_eq!(with("phone case", None), ["E"]);
    assert!(
        with("phone", Some(true)).is_empty(),
        "a whole value, not a part of it"
    );
    assert!(
        with("null", None).is_empty(),
        "no value is not the text null"
    );
    let rating = |observed: &str| rows_observed(store, s.id, "rating", observed, Some(true)).len();
    assert_eq!(rating("4.5"), 10, "a number, by its JSON");
    assert_eq!(rating("phone case"), 0, "another check's value");
    // A row that made one check twice, with two values and two verdicts: each value leads to
    // the row with its own verdict, as the values count them.
    let mut twice = eval("K", false);
    twice.checks = vec![
        Check {
            observed: Some(json!("phone case")),
            ..check("keyword", true)
        },
        Check {
            observed: Some(json!("laptop stand")),
            ..check("keyword", false)
        },
    ];
    let t = step_with(
        store,
        vec![twice, seen("L", Some(json!("phone case")), false)],
    );
    let of = |observed: &str, passed: bool| {
        rows_observed(store, t.id, "keyword", observed, Some(passed))
    };
    let counted = store.check_values(t.id, "keyword", 10).expect("values");
    assert_eq!(
        counted.values,
        [
            value(Some("phone case"), 1, 1),
            value(Some("laptop stand"), 0, 1)
        ]
    );
    assert_eq!(of("phone case", true), ["K"]);
    assert_eq!(of("phone case", false), ["L"]);
    assert_eq!(of("laptop stand", false), ["K"]);
    assert!(of("laptop stand", true).is_empty());
    // Common values count rows: one that saw a value twice is one candidate that had it.
    let mut again = eval("M", true);
    again.checks = vec![
        Check {
            observed: Some(json!("laptop stand")),
            ..check("keyword", true)
        },
        Check {
            observed: Some(json!("laptop stand")),
            ..check("keyword", true)
        },
    ];
    let u = step_with(store, vec![again]);
    assert_eq!(
        store
            .common_values_only_in(u.id, other.id, 1, 3)
            .expect("common values"),
        [CommonValues {
            check: "keyword".into(),
            values: vec![value(Some("laptop stand"), 1, 0)],
        }]
    );
    // What the candidates the other step did not judge (all but A) were: per check, the
    // values enough of them had, in one answer.
    let common = |step: Uuid, other: Uuid, at_least: u64, per_check: usize| {
        store
            .common_values_only_in(step, other, at_least, per_check)
            .expect("common values")
    };
    let of = |check: &str, values: Vec<CheckValue>| CommonValues {
        check: check.into(),
        values,
    };
    assert_eq!(
        common(s.id, other.id, 2, 3),
        [
            of("keyword", vec![value(Some("phone case"), 1, 1)]),
            of("rating", vec![value(Some("4.5"), 9, 0)]),
        ],
        "A is left out; no value recorded is no value"
    );
    let every = common(s.id, other.id, 1, 10);
    assert_eq!(every[0].values.len(), 6, "{every:?}");
    assert_eq!(common(s.id, other.id, 10, 3), [], "none as common as that");
    assert_eq!(common(s.id, s.id, 1, 3), [], "a step judged all it judged");
    assert_eq!(common(s.id, new_id(), 1, 3), [], "unknown step");
    let top = store.check_values(s.id, "keyword", 1).expect("values");
    assert_eq!((top.evaluations, top.distinct), (10, 7), "counted whole");
    assert_eq!(top.values, all.values[..1]);
    let rating = store.check_values(s.id, "rating", 10).expect("values");
    assert_eq!(rating.values, [value(Some("4.5"), 10, 0)]);
    assert_eq!(
        store.check_values(s.id, "colour", 10).expect("values"),
        CheckValues::default()
    );
    assert_eq!(
        store.check_values(new_id(), "keyword", 10).expect("values"),
        CheckValues::default()
    );
}
