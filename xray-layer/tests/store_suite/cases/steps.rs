//! One step, steps across executions, and per-name statistics.

use super::*;
use crate::fixtures::*;
use serde_json::json;
use xray::model::{elimination, CheckSummary, EvaluationSummary, Selection, Status, StepRecord};

/// A step reads back with every field it was written with (but its evaluation rows, which
/// `evaluations` pages): payloads keep their keys' order, logs their order.
pub fn step_round_trips_every_field(store: &dyn Store) {
    let x = new_id();
    let parent = step(x, "pipeline", T0 + 5, 2_000);
    let mut s = step(x, "rank_candidates", T0 + 10, 1_000);
    s.parent_id = Some(parent.id);
    s.kind = Some("llm".into());
    s.status = Status::Error;
    s.error = Some("rate limited: \"429\" — retry later".into());
    s.input = Some(raw(
        r#"{"prompt":"Pick the best ☕ stand","temperature":0.2,"zeta":1,"alpha":2}"#,
    ));
    s.output = Some(raw(r#"["B01","B02"]"#));
    s.filters = Some(raw(r#"{"price":[14.995,59.98],"min_rating":3.8}"#));
    s.selection = vec![
        Selection {
            candidate_id: "C1".into(),
            reason: "highest score".into(),
        },
        Selection {
            candidate_id: "C2".into(),
            reason: "runner-up — 次点".into(),
        },
    ];
    s.reasoning = Some("Because…\n\"quoted\"\ttab \u{1} end".into());
    s.metadata = raw(r#"{"model":"gpt","tokens":1234,"alpha":null}"#);
    s.candidates_in = Some(10);
    s.candidates_out = Some(2);
    s.summary = Some(EvaluationSummary {
        total: 10,
        passed: 2,
        failed: 8,
        kept: 3,
        sampled: true,
        capture: "cap:3".into(),
        checks: vec![
            CheckSummary {
                name: "price".into(),
                passed: 5,
                failed: 5,
                first_failed: 5,
                top_reasons: vec![("8.99 < 14.995".into(), 3), ("too expensive".into(), 2)],
            },
            CheckSummary {
                name: "rating".into(),
                passed: 2,
                failed: 3,
                first_failed: 3,
                top_reasons: vec![],
            },
        ],
    });
    s.evaluations = vec![eval("C1", true), eval("C2", true), eval("C3", false)];
    s.logs = vec![
        log(T0 + 11, "INFO", "starting", json!({"n": 10})),
        log(T0 + 12, "WARN", "slow \"model\" ☕", json!({})),
        log(
            T0 + 12,
            "DEBUG",
            "same µs, later line",
            json!({"x": [1, 2]}),
        ),
        log(
            T0 + 900,
            "ERROR",
            "gave up",
            json!({"attempt": 3, "ok": false}),
        ),
    ];
    s.logs_dropped = 7;
    write(
        store,
        &[
            begin(x, "run", T0),
            started(&parent),
            done(&s),
            done(&parent),
        ],
    );
    let read = step_of(store, s.id);
    assert_eq!(
        read,
        StepRecord {
            evaluations: Vec::new(),
            ..s.clone()
        }
    );
    assert_eq!(
        evaluations_of(store, s.id, EvaluationQuery::default()),
        s.evaluations
    );

    // A step that recorded nothing: every optional field empty.
    let bare = step(x, "bare", T0 + 3_000, 0);
    write(store, &[done(&bare)]);
    assert_eq!(step_of(store, bare.id), bare);
    assert_eq!(step_of(store, parent.id), parent);
    assert!(
        store.step(new_id()).expect("read").is_none(),
        "an unknown step is None"
    );
}

/// Seven steps in three executions:
///
/// | | execution | step | kind | started | status | in → out (elimination) |
/// |---|---|---|---|---|---|---|
/// | a1 | A search_pipeline | fetch | search | +10 | ok | |
/// | a2 | A | filter | filter | +20 | ok | 100 → 5 (0.95) |
/// | a3 | A | rank | rank | +30 | error | 5 → 5 (0) |
/// | b1 | B rank_pipeline | filter | filter | +110 | ok | 10 → 1 (0.9) |
/// | b2 | B | rank | llm | +120 | running | |
/// | c1 | C search_pipeline | filter | filter | +210 | ok | 4 → 4 (0) |
/// | c2 | C | filter | | +220 | ok | 0 → 0 (none) |
fn seven_steps(store: &dyn Store) -> [StepRecord; 7] {
    let (a, b, c) = (new_id(), new_id(), new_id());
    let mk = |x, name: &str, kind: Option<&str>, at: i64, counts: Option<(u64, u64)>| {
        let mut s = step(x, name, T0 + at, 3);
        s.kind = kind.map(Into::into);
        s.candidates_in = counts.map(|c| c.0);
        s.candidates_out = counts.map(|c| c.1);
        s
    };
    let a1 = mk(a, "fetch", Some("search"), 10, None);
    let a2 = mk(a, "filter", Some("filter"), 20, Some((100, 5)));
    let mut a3 = mk(a, "rank", Some("rank"), 30, Some((5, 5)));
    a3.status = Status::Error;
    a3.error = Some("boom".into());
    let b1 = mk(b, "filter", Some("filter"), 110, Some((10, 1)));
    let b2 = mk(b, "rank", Some("llm"), 120, None);
    let c1 = mk(c, "filter", Some("filter"), 210, Some((4, 4)));
    let c2 = mk(c, "filter", None, 220, Some((0, 0)));
    write(
        store,
        &[
            begin(a, "search_pipeline", T0),
            done(&a1),
            done(&a2),
            done(&a3),
            begin(b, "rank_pipeline", T0 + 100),
            done(&b1),
            started(&b2),
            begin(c, "search_pipeline", T0 + 200),
            done(&c1),
            done(&c2),
        ],
    );
    [a1, a2, a3, b1, b2, c1, c2]
}

/// Every filter of `find_steps`, alone and combined; newest first.
pub fn find_steps_filters_newest_first(store: &dyn Store) {
    let [a1, a2, a3, b1, b2, c1, c2] = seven_steps(store);
    let find = |q: StepQuery| step_ids(store, q);
    assert_eq!(
        find(StepQuery::default()),
        [c2.id, c1.id, b2.id, b1.id, a3.id, a2.id, a1.id],
        "newest first"
    );
    let kind = |k: &str| StepQuery {
        kind: Some(k.into()),
        ..Default::default()
    };
    assert_eq!(find(kind("filter")), [c1.id, b1.id, a2.id]);
    assert_eq!(find(kind("llm")), [b2.id]);
    assert_eq!(find(kind("FILTER")), NO_IDS, "kinds are exact");
    let name = |n: &str| StepQuery {
        name: Some(n.into()),
        ..Default::default()
    };
    assert_eq!(find(name("filter")), [c2.id, c1.id, b1.id, a2.id]);
    assert_eq!(find(name("filt")), NO_IDS, "names are whole");
    let execution_name = |n: &str| StepQuery {
        execution_name: Some(n.into()),
        ..Default::default()
    };
    assert_eq!(
        find(execution_name("search_pipeline")),
        [c2.id, c1.id, a3.id, a2.id, a1.id]
    );
    assert_eq!(find(execution_name("rank_pipeline")), [b2.id, b1.id]);
    let min = |m: f64| StepQuery {
        min_elimination: Some(m),
        ..Default::default()
    };
    assert_eq!(find(min(0.9)), [b1.id, a2.id], "at least: 0.9 is in");
    assert_eq!(find(min(0.91)), [a2.id]);
    assert_eq!(
        find(min(0.0)),
        [c1.id, b1.id, a3.id, a2.id],
        "steps that counted candidates (and had some)"
    );
    assert_eq!(find(min(1.0)), NO_IDS);
    let status = |s| StepQuery {
        status: Some(s),
        ..Default::default()
    };
    assert_eq!(find(status(Status::Error)), [a3.id]);
    assert_eq!(find(status(Status::Running)), [b2.id]);
    assert_eq!(
        find(status(Status::Ok)),
        [c2.id, c1.id, b1.id, a2.id, a1.id]
    );
    let between = |since: Option<i64>, until: Option<i64>| StepQuery {
        since: since.map(|t| T0 + t),
        until: until.map(|t| T0 + t),
        ..Default::default()
    };
    assert_eq!(
        find(between(Some(110), None)),
        [c2.id, c1.id, b2.id, b1.id],
        "since is inclusive"
    );
    assert_eq!(
        find(between(None, Some(110))),
        [a3.id, a2.id, a1.id],
        "until is exclusive"
    );
    assert_eq!(find(between(Some(20), Some(120))), [b1.id, a3.id, a2.id]);
    assert_eq!(
        find(StepQuery {
            name: Some("filter".into()),
            execution_name: Some("search_pipeline".into()),
            min_elimination: Some(0.5),
            ..Default::default()
        }),
        [a2.id]
    );

    // What a found step says.
    let found = steps_found(store, StepQuery::default());
    let b1_found = found.iter().find(|s| s.id == b1.id).expect("found");
    assert_eq!(
        b1_found,
        &StepSummary {
            id: b1.id,
            execution_id: b1.execution_id,
            execution_name: "rank_pipeline".into(),
            parent_id: None,
            name: "filter".into(),
            kind: Some("filter".into()),
            status: Status::Ok,
            error: None,
            started_at: T0 + 110,
            ended_at: Some(T0 + 113),
            candidates_in: Some(10),
            candidates_out: Some(1),
            elimination: elimination(Some(10), Some(1)),
            summary: None,
            seq: b1_found.seq,
        }
    );
    let b2_found = found.iter().find(|s| s.id == b2.id).expect("found");
    assert_eq!(
        (b2_found.status, b2_found.ended_at),
        (Status::Running, None)
    );
    let c2_found = found.iter().find(|s| s.id == c2.id).expect("found");
    assert_eq!(c2_found.elimination, None, "nothing to eliminate from");
    let a3_found = found.iter().find(|s| s.id == a3.id).expect("found");
    assert_eq!(
        (a3_found.error.as_deref(), a3_found.elimination),
        (Some("boom"), Some(0.0))
    );
}

/// `find_steps` pages (ties broken by id) skip and repeat nothing, while steps are written
/// between pages.
pub fn find_steps_paginates_while_steps_arrive(store: &dyn Store) {
    let x = new_id();
    write(store, &[begin(x, "run", T0)]);
    let mut rows = Vec::new();
    for i in 0..17i64 {
        let mut s = step(
            x,
            if i % 2 == 0 { "even" } else { "odd" },
            T0 + (i / 2) * 10,
            1,
        );
        s.kind = Some("k".into());
        write(store, &[done(&s)]);
        rows.push((s.started_at, s.id, s.name));
    }
    rows.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
    let expected: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
    let expected_odd: Vec<Uuid> = rows.iter().filter(|r| r.2 == "odd").map(|r| r.1).collect();
    for limit in [1, 2, 5, 16, 17, 1000] {
        assert_eq!(
            step_ids(
                store,
                StepQuery {
                    limit: Some(limit),
                    ..Default::default()
                }
            ),
            expected,
            "limit {limit}"
        );
        assert_eq!(
            step_ids(
                store,
                StepQuery {
                    name: Some("odd".into()),
                    limit: Some(limit),
                    ..Default::default()
                }
            ),
            expected_odd,
            "filtered, limit {limit}"
        );
    }
    // Pages of 5, with a newer and an older step written after each.
    let mut seen = Vec::new();
    let mut newer = Vec::new();
    let mut older = Vec::new();
    let mut cursor = None;
    for page_no in 0i64.. {
        assert!(page_no < 100, "pagination does not end");
        let page = store
            .find_steps(&StepQuery {
                kind: Some("k".into()),
                limit: Some(5),
                cursor: cursor.take(),
                ..Default::default()
            })
            .expect("find steps");
        seen.extend(page.items.iter().map(|s| s.id));
        let mut n = step(x, "new", T0 + 1_000_000 + page_no, 1);
        n.kind = Some("k".into());
        let mut o = step(x, "old", T0 - 1_000 - page_no, 1);
        o.kind = Some("k".into());
        write(store, &[done(&n), done(&o)]);
        newer.push(n.id);
        older.push(o.id);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected_seen = expected;
    expected_seen.extend(&older[..older.len() - 1]);
    assert_eq!(seen, expected_seen, "no step skipped or repeated");
    assert!(newer.iter().all(|n| !seen.contains(n)));
}

/// The percentile `p` of `sorted` as the stores compute it: nearest rank, the value at offset
/// `round((count - 1) * p)` (halves away from zero).
fn nearest_rank(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Per step name: finished steps, duration percentiles (nearest rank), error rate, mean
/// elimination over the steps that counted candidates, and the kind of the most recent step.
pub fn step_stats_percentiles_and_rates(store: &dyn Store) {
    assert!(
        stats(store, StatsQuery::default()).is_empty(),
        "an empty store has no statistics"
    );
    let x = new_id();
    let mut batch = vec![begin(x, "run", T0)];
    // "rank": 20 finished steps, 1 000 µs apart, lasting 10, 20, … 200 µs (not in time order);
    // three failed; four counted candidates (eliminations 0.5, 0.75, 0.25, 0.5); the most
    // recent one is of kind rank_v2.
    let mut rank_durations = Vec::new();
    for k in 0..20i64 {
        let duration = 10 * ((k * 7) % 20 + 1);
        let mut s = step(x, "rank", T0 + 1_000 * k, duration);
        s.kind = Some(if k == 19 { "rank_v2" } else { "rank" }.into());
        if k % 7 == 3 {
            s.status = Status::Error;
        }
        if k < 4 {
            s.candidates_in = Some(4);
            s.candidates_out = Some([2, 1, 3, 2][k as usize]);
        }
        rank_durations.push((s.started_at, duration));
        batch.push(done(&s));
    }
    // A running and a lost step of the same name are not counted.
    let running = step(x, "rank", T0 + 500, 1_000_000);
    batch.push(started(&running));
    // "fetch": one step. "pair": two. "four": four.
    let mut fetch = step(x, "fetch", T0 + 50_000, 42);
    fetch.kind = Some("search".into());
    batch.push(done(&fetch));
    for (i, d) in [100, 5].into_iter().enumerate() {
        batch.push(done(&step(x, "pair", T0 + 51_000 + i as i64, d)));
    }
    for (i, d) in [4, 1, 3, 2].into_iter().enumerate() {
        batch.push(done(&step(x, "four", T0 + 52_000 + i as i64, d)));
    }
    // Only running: no row at all.
    batch.push(started(&step(x, "unfinished", T0 + 53_000, 1)));
    write(store, &batch);

    let all_stats = stats(store, StatsQuery::default());
    assert_eq!(
        all_stats
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["fetch", "four", "pair", "rank"],
        "one row per name of finished steps, by name"
    );
    let rank = &all_stats[3];
    assert_eq!(
        rank,
        &StepStats {
            name: "rank".into(),
            kind: Some("rank_v2".into()),
            count: 20,
            p50_us: 110,
            p95_us: 190,
            error_rate: 3.0 / 20.0,
            mean_elimination: Some(0.5),
        }
    );
    assert_eq!(
        all_stats[0],
        StepStats {
            name: "fetch".into(),
            kind: Some("search".into()),
            count: 1,
            p50_us: 42,
            p95_us: 42,
            error_rate: 0.0,
            mean_elimination: None,
        }
    );
    assert_eq!(
        (all_stats[2].count, all_stats[2].p50_us, all_stats[2].p95_us),
        (2, 100, 100),
        "two durations: offset round(0.5) = 1 and round(0.95) = 1"
    );
    assert_eq!(
        (
            all_stats[1].count,
            all_stats[1].p50_us,
            all_stats[1].p95_us,
            all_stats[1].kind.clone()
        ),
        (4, 3, 4, None),
        "four durations: offset round(1.5) = 2 and round(2.85) = 3"
    );

    // Filters.
    assert_eq!(
        stats(
            store,
            StatsQuery {
                name: Some("rank".into()),
                ..Default::default()
            }
        ),
        std::slice::from_ref(rank)
    );
    assert_eq!(
        stats(
            store,
            StatsQuery {
                kind: Some("search".into()),
                ..Default::default()
            }
        ),
        [all_stats[0].clone()]
    );
    assert!(stats(
        store,
        StatsQuery {
            name: Some("nope".into()),
            ..Default::default()
        }
    )
    .is_empty());
    // The later half of the "rank" steps (and nothing else before T0 + 20 000).
    let window = stats(
        store,
        StatsQuery {
            since: Some(T0 + 10_000),
            until: Some(T0 + 20_000),
            ..Default::default()
        },
    );
    let mut later: Vec<i64> = rank_durations
        .iter()
        .filter(|(at, _)| (T0 + 10_000..T0 + 20_000).contains(at))
        .map(|&(_, d)| d)
        .collect();
    later.sort_unstable();
    assert_eq!(window.len(), 1);
    let errors_later = (10..20).filter(|k| k % 7 == 3).count();
    assert_eq!(
        (
            window[0].name.as_str(),
            window[0].count,
            window[0].p50_us,
            window[0].p95_us,
            window[0].error_rate,
            window[0].mean_elimination,
        ),
        (
            "rank",
            10,
            nearest_rank(&later, 0.5),
            nearest_rank(&later, 0.95),
            errors_later as f64 / 10.0,
            None
        ),
        "since is inclusive, until exclusive"
    );
    let mut all_rank: Vec<i64> = rank_durations.iter().map(|&(_, d)| d).collect();
    all_rank.sort_unstable();
    assert_eq!(
        (nearest_rank(&all_rank, 0.5), nearest_rank(&all_rank, 0.95)),
        (110, 190)
    );
}
