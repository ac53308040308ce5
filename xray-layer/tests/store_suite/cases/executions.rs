//! Listing executions and reading one.

use super::*;
use crate::fixtures::*;
use xray::model::{elimination, CheckSummary, EvaluationSummary, Record, Status, StepRecord};
use xray::store::{ExecutionUpdate, StoreError};

/// Six executions to filter:
///
/// | | name | started | status | tags | steps | notes |
/// |---|---|---|---|---|---|---|
/// | e1 | search_pipeline | +100 | ok | nightly, demo | 2 | |
/// | e2 | search_pipeline | +200 | error "boom" | nightly | 1 | |
/// | e3 | rank_pipeline | +300 | ok | demo, `naïve "q"` | 3, `Rank_Candidates` failed | |
/// | e4 | rank_pipeline | +400 | running | | 0 | `Has a 100%_discount` |
/// | e5 | Weird%_Name | +500 | ok | | 1 `apply_filters` | |
/// | e6 | search_pipeline_v2 | +600 | ok | nightly, demo, extra | 0 | `C:\Temp\out` |
fn six_executions(store: &dyn Store) -> [Uuid; 6] {
    let ids = [new_id(), new_id(), new_id(), new_id(), new_id(), new_id()];
    let [e1, e2, e3, e4, e5, e6] = ids;
    let start = |id, name: &str, at: i64, tags: &[&str]| {
        let mut s = execution(id, name, T0 + at);
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        Record::ExecutionStarted(s)
    };
    let ok_step = |x, name: &str, at: i64| done(&step(x, name, T0 + at, 5));
    let mut failed = step(e3, "Rank_Candidates", T0 + 320, 5);
    failed.status = Status::Error;
    failed.error = Some("model timed out".into());
    let mut e2_end = end(e2, T0 + 250, Status::Error);
    e2_end.error = Some("boom".into());
    let mut e1_end = end(e1, T0 + 150, Status::Ok);
    e1_end.input = Some(payload(
        serde_json::json!({"reference": {"asin": "B0QUBI0001", "title": "Qubi Laptop Stand"}}),
    ));
    let mut e5_end = end(e5, T0 + 550, Status::Ok);
    e5_end.output = Some(payload(
        serde_json::json!({"selected": "B0C4SZXKIG", "title": "Slim Phone Case"}),
    ));
    write(
        store,
        &[
            start(e1, "search_pipeline", 100, &["nightly", "demo"]),
            ok_step(e1, "fetch", 110),
            ok_step(e1, "rank", 120),
            Record::ExecutionFinished(e1_end),
            start(e2, "search_pipeline", 200, &["nightly"]),
            ok_step(e2, "fetch", 210),
            Record::ExecutionFinished(e2_end),
            start(e3, "rank_pipeline", 300, &["demo", "naïve \"q\""]),
            ok_step(e3, "fetch", 310),
            done(&failed),
            ok_step(e3, "select", 330),
            finish(e3, T0 + 350, Status::Ok),
            start(e4, "rank_pipeline", 400, &[]),
            start(e5, "Weird%_Name", 500, &[]),
            ok_step(e5, "apply_filters", 510),
            Record::ExecutionFinished(e5_end),
            start(e6, "search_pipeline_v2", 600, &["nightly", "demo", "extra"]),
            finish(e6, T0 + 650, Status::Ok),
        ],
    );
    for (id, notes) in [(e4, "Has a 100%_discount"), (e6, "C:\\Temp\\out")] {
        let update = ExecutionUpdate {
            tags: None,
            notes: Some(notes.into()),
        };
        assert!(store.update_execution(id, &update).expect("update"));
    }
    ids
}

/// Every filter of `list_executions`, alone and combined; newest first.
pub fn list_executions_filters(store: &dyn Store) {
    let [e1, e2, e3, e4, e5, e6] = six_executions(store);
    let list = |q: ExecutionQuery| execution_ids(store, q);
    let tags = |tags: &[&str]| ExecutionQuery {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(
        list(ExecutionQuery::default()),
        [e6, e5, e4, e3, e2, e1],
        "newest first"
    );
    let name = |n: &str| ExecutionQuery {
        name: Some(n.into()),
        ..Default::default()
    };
    assert_eq!(list(name("search_pipeline")), [e2, e1], "the exact name");
    assert_eq!(list(name("SEARCH_PIPELINE")), NO_IDS, "names are exact");
    assert_eq!(list(name("search")), NO_IDS, "not a prefix");
    let status = |s| ExecutionQuery {
        status: Some(s),
        ..Default::default()
    };
    assert_eq!(list(status(Status::Ok)), [e6, e5, e3, e1]);
    assert_eq!(list(status(Status::Error)), [e2]);
    assert_eq!(list(status(Status::Running)), [e4]);
    assert_eq!(list(status(Status::Lost)), NO_IDS);
    assert_eq!(list(tags(&["nightly", "demo"])), [e6, e1], "every tag");
    assert_eq!(list(tags(&["demo"])), [e6, e3, e1]);
    assert_eq!(list(tags(&["naïve \"q\""])), [e3], "tags are text");
    assert_eq!(list(tags(&["nightly", "nope"])), NO_IDS);
    assert_eq!(list(tags(&["nightl"])), NO_IDS, "tags are whole");
    assert_eq!(list(tags(&[])), [e6, e5, e4, e3, e2, e1]);
    let between = |since: Option<i64>, until: Option<i64>| ExecutionQuery {
        since: since.map(|t| T0 + t),
        until: until.map(|t| T0 + t),
        ..Default::default()
    };
    assert_eq!(
        list(between(Some(200), None)),
        [e6, e5, e4, e3, e2],
        "since is inclusive"
    );
    assert_eq!(
        list(between(None, Some(300))),
        [e2, e1],
        "until is exclusive"
    );
    assert_eq!(list(between(Some(200), Some(400))), [e3, e2]);
    assert_eq!(list(between(Some(601), None)), NO_IDS);
    let steps = |min: Option<u64>, max: Option<u64>| ExecutionQuery {
        min_steps: min,
        max_steps: max,
        ..Default::default()
    };
    assert_eq!(list(steps(Some(1), None)), [e5, e3, e2, e1]);
    assert_eq!(list(steps(None, Some(1))), [e6, e5, e4, e2]);
    assert_eq!(list(steps(Some(2), Some(2))), [e1]);
    assert_eq!(list(steps(Some(0), None)), [e6, e5, e4, e3, e2, e1]);
    assert_eq!(list(steps(None, Some(0))), [e6, e4]);
    let has_error = |b| ExecutionQuery {
        has_error: Some(b),
        ..Default::default()
    };
    assert_eq!(
        list(has_error(true)),
        [e3, e2],
        "the execution or one of its steps failed"
    );
    assert_eq!(list(has_error(false)), [e6, e5, e4, e1]);
    assert_eq!(
        list(ExecutionQuery {
            name: Some("search_pipeline".into()),
            status: Some(Status::Ok),
            ..Default::default()
        }),
        [e1]
    );
    assert_eq!(
        list(ExecutionQuery {
            tags: vec!["nightly".into()],
            has_error: Some(false),
            since: Some(T0 + 100),
            until: Some(T0 + 600),
            ..Default::default()
        }),
        [e1]
    );

    // What a list row says.
    let rows = executions_of(store, ExecutionQuery::default());
    let row = |id| rows.iter().find(|e| e.id == id).expect("listed");
    let e2_row = row(e2);
    assert_eq!(
        (
            e2_row.name.as_str(),
            e2_row.status,
            e2_row.started_at,
            e2_row.completed_at,
            e2_row.error.as_deref(),
            e2_row.tags.clone(),
            e2_row.step_count,
            e2_row.error_steps,
        ),
        (
            "search_pipeline",
            Status::Error,
            T0 + 200,
            Some(T0 + 250),
            Some("boom"),
            vec!["nightly".to_owned()],
            1,
            0
        )
    );
    let e3_row = row(e3);
    assert_eq!(
        (
            e3_row.status,
            e3_row.step_count,
            e3_row.error_steps,
            e3_row.tags.clone()
        ),
        (
            Status::Ok,
            3,
            1,
            vec!["demo".to_owned(), "naïve \"q\"".to_owned()]
        )
    );
    let e4_row = row(e4);
    assert_eq!(
        (
            e4_row.status,
            e4_row.completed_at,
            e4_row.notes.as_deref(),
            e4_row.step_count
        ),
        (Status::Running, None, Some("Has a 100%_discount"), 0)
    );
    for e in &rows {
        assert_eq!(
            e,
            &detail(store, e.id).execution,
            "a list row is the detail's summary"
        );
    }
}

/// `q` finds text in the name, the id, the notes, the input, the output or a step's name,
/// case-insensitively, with `%`, `_` and `\` taken literally.
/// A run's input, as its first values with their paths, in the list of runs: what tells apart
/// the runs of one pipeline. The list reads only the start of the input, however large it is.
pub fn list_executions_preview_their_input(store: &dyn Store) {
    let [e1, e2, _, _, e5, _] = six_executions(store);
    let (big, none) = (new_id(), new_id());
    let mut big_end = end(big, T0 + 900, Status::Ok);
    let candidates: Vec<String> = (0..20_000).map(|i| format!("B0{i:08}")).collect();
    big_end.input = Some(raw(&format!(
        r#"{{"query":"phone case","candidates":{},"after_the_candidates":"never shown"}}"#,
        serde_json::to_string(&candidates).expect("JSON")
    )));
    big_end.output = Some(raw(&format!(
        r#"{{"kept":{},"selected":"never shown"}}"#,
        serde_json::to_string(&candidates).expect("JSON")
    )));
    write(
        store,
        &[
            Record::ExecutionStarted(execution(big, "big_input", T0 + 800)),
            Record::ExecutionFinished(big_end),
            Record::ExecutionStarted(execution(none, "no_input", T0 + 810)),
            Record::ExecutionFinished(end(none, T0 + 820, Status::Ok)),
        ],
    );
    let runs = all(50, |cursor| {
        store
            .list_executions(&ExecutionQuery {
                cursor,
                ..Default::default()
            })
            .expect("the runs list")
    });
    let preview = |id: Uuid| {
        runs.iter()
            .find(|r| r.id == id)
            .map(|r| r.input_preview.clone())
            .expect("the run is listed")
    };
    let field = |path: &str, value: &str| (path.to_owned(), value.to_owned());
    assert_eq!(
        preview(e1),
        [
            field("reference.asin", "B0QUBI0001"),
            field("reference.title", "Qubi Laptop Stand")
        ]
    );
    assert!(preview(e2).is_empty(), "no input, no preview");
    assert!(preview(none).is_empty());
    let big_input = preview(big);
    assert_eq!(big_input.len(), 2, "{big_input:?}");
    assert_eq!(big_input[0], field("query", "phone case"));
    assert_eq!(big_input[1].0, "candidates");
    assert!(
        big_input[1].1.starts_with("B000000000, B000000001, ") && big_input[1].1.ends_with('…'),
        "{big_input:?}"
    );
    assert_eq!(
        big_input[1].1.chars().count(),
        xray::store::MAX_PREVIEW_VALUE_CHARS
    );
    // The run's own page has the whole input.
    let detail = store.execution(e1).expect("the run").expect("it exists");
    assert_eq!(detail.execution.input_preview, preview(e1));
    assert!(detail.input.is_some());

    // And what each run returned, the same way: a list shows what a run selected.
    let output = |id: Uuid| {
        runs.iter()
            .find(|r| r.id == id)
            .map(|r| r.output_preview.clone())
            .expect("the run is listed")
    };
    assert_eq!(
        output(e5),
        [
            field("selected", "B0C4SZXKIG"),
            field("title", "Slim Phone Case")
        ]
    );
    assert!(output(e1).is_empty(), "no output, no preview");
    let big_output = output(big);
    assert_eq!(
        big_output.len(),
        1,
        "only the start is read: {big_output:?}"
    );
    assert_eq!(big_output[0].0, "kept");
    let detail = store.execution(e5).expect("the run").expect("it exists");
    assert!(!output(e5).is_empty());
    assert_eq!(detail.execution.output_preview, output(e5));
}

pub fn list_executions_search_text(store: &dyn Store) {
    let [e1, e2, e3, e4, e5, e6] = six_executions(store);
    let q = |text: &str| {
        execution_ids(
            store,
            ExecutionQuery {
                q: Some(text.into()),
                ..Default::default()
            },
        )
    };
    assert_eq!(q("RANK_PIPE"), [e4, e3], "in the name, any case");
    assert_eq!(q("Rank_Pipeline"), [e4, e3]);
    assert_eq!(q("%_"), [e5, e4], "`%` and `_` are literal");
    assert_eq!(q("ran__pipeline"), NO_IDS, "`_` is no wildcard");
    assert_eq!(q("search%v2"), NO_IDS, "`%` is no wildcard");
    assert_eq!(q("_v2"), [e6]);
    assert_eq!(q("rank_candidates"), [e3], "in a step's name");
    assert_eq!(q("apply_"), [e5]);
    assert_eq!(q("DISCOUNT"), [e4], "in the notes");
    assert_eq!(
        q("qubi laptop"),
        [e1],
        "in the input (the run's reference product)"
    );
    assert_eq!(
        q("b0c4szxkig"),
        [e5],
        "in the output (what the run selected)"
    );
    assert_eq!(q("c:\\temp\\"), [e6], "`\\` is literal");
    let id = e3.to_string();
    assert_eq!(q(&id), [e3], "the whole id");
    assert_eq!(
        q(&id[24..].to_uppercase()),
        [e3],
        "part of the id, any case"
    );
    assert_eq!(q("nothing matches this"), NO_IDS);
    assert_eq!(
        q("   "),
        [e6, e5, e4, e3, e2, e1],
        "blank text is no filter"
    );
    assert_eq!(
        q(" rank_pipeline "),
        [e4, e3],
        "surrounding blanks are ignored"
    );
    assert_eq!(
        execution_ids(
            store,
            ExecutionQuery {
                q: Some("pipeline".into()),
                status: Some(Status::Ok),
                ..Default::default()
            }
        ),
        [e6, e3, e1]
    );
    assert!(q("'; DROP TABLE executions; --").is_empty());
    assert_eq!(q(""), [e6, e5, e4, e3, e2, e1], "the store is intact");
}

/// Keyset pagination: pages walked while executions are written in between skip and repeat
/// nothing; newer executions than the first page wait for a new listing, older ones appear in
/// their place.
pub fn list_executions_paginates_while_rows_arrive(store: &dyn Store) {
    // 23 runs, three by three at the same time (the id breaks ties), and 5 of another name.
    let mut originals = Vec::new();
    let mut others = Vec::new();
    for i in 0..23i64 {
        let id = new_id();
        let at = T0 + (i / 3) * 10;
        write(store, &[begin(id, "run", at)]);
        originals.push((at, id));
        if i % 5 == 0 {
            let other = new_id();
            write(store, &[begin(other, "other", at + 1)]);
            others.push((at + 1, other));
        }
    }
    let newest_first = |mut rows: Vec<(i64, Uuid)>| {
        rows.sort_by(|a, b| b.cmp(a));
        rows.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };
    let expected_runs = newest_first(originals.clone());
    let expected_others = newest_first(others.clone());
    let expected_all = newest_first(originals.into_iter().chain(others).collect());
    for limit in [1, 2, 4, 23, 28, 1000] {
        assert_eq!(
            execution_ids(
                store,
                ExecutionQuery {
                    limit: Some(limit),
                    ..Default::default()
                }
            ),
            expected_all,
            "limit {limit}"
        );
    }
    assert_eq!(
        execution_ids(
            store,
            ExecutionQuery {
                name: Some("other".into()),
                limit: Some(2),
                ..Default::default()
            }
        ),
        expected_others,
        "a filtered list pages through its rows only"
    );

    // Pages of 4 of the runs, with a newer and an older run written after each page.
    let mut seen = Vec::new();
    let mut newer = Vec::new();
    let mut older = Vec::new();
    let mut cursor = None;
    for page_no in 0i64.. {
        assert!(page_no < 100, "pagination does not end");
        let page = store
            .list_executions(&ExecutionQuery {
                name: Some("run".into()),
                limit: Some(4),
                cursor: cursor.take(),
                ..Default::default()
            })
            .expect("list executions");
        seen.extend(page.items.iter().map(|e| e.id));
        let (n, o) = (new_id(), new_id());
        write(
            store,
            &[
                begin(n, "run", T0 + 1_000_000 + page_no),
                begin(o, "run", T0 - 1_000 - page_no),
            ],
        );
        newer.push(n);
        older.push(o);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    // Every older run written before the last page was read is on it or before it.
    let mut expected = expected_runs;
    expected.extend(&older[..older.len() - 1]);
    assert_eq!(seen, expected, "no run skipped or repeated");
    assert!(newer.iter().all(|n| !seen.contains(n)));
}

/// One page of a list, read with `(limit, cursor)`: how many items it has.
type ReadPage<'a> = dyn Fn(Option<usize>, Option<String>) -> Result<usize, StoreError> + 'a;

/// Bad query parameters are errors that name the parameter, for every list; text that looks
/// like SQL is text.
pub fn bad_parameters_are_errors_naming_the_parameter(store: &dyn Store) {
    // Two of everything, so that each list has a second page and a cursor.
    let (x, y) = (new_id(), new_id());
    let mut s1 = step(x, "filter", T0 + 1, 5);
    s1.evaluations = vec![eval("C1", true), eval("C2", false)];
    let mut s2 = step(y, "filter", T0 + 11, 5);
    s2.evaluations = vec![eval("C1", false), eval("C2", true)];
    write(
        store,
        &[
            begin(x, "run", T0),
            done(&s1),
            begin(y, "run", T0 + 10),
            done(&s2),
        ],
    );
    let one = Some(1);
    let cursors = [
        store
            .list_executions(&ExecutionQuery {
                limit: one,
                ..Default::default()
            })
            .expect("list")
            .next_cursor,
        store
            .evaluations(
                s1.id,
                &EvaluationQuery {
                    limit: one,
                    ..Default::default()
                },
            )
            .expect("evaluations")
            .next_cursor,
        store
            .find_steps(&StepQuery {
                limit: one,
                ..Default::default()
            })
            .expect("find steps")
            .next_cursor,
        store
            .candidate_lineage(
                "C1",
                &LineageQuery {
                    limit: one,
                    cursor: None,
                    check: None,
                },
            )
            .expect("lineage")
            .next_cursor,
        store
            .verdict_changes(
                s1.id,
                s2.id,
                &LineageQuery {
                    limit: one,
                    cursor: None,
                    check: None,
                },
            )
            .expect("verdict changes")
            .next_cursor,
    ]
    .map(|c| c.expect("a first page of one has a next cursor"));

    // Each list with (limit, cursor).
    let lists: [(&str, Box<ReadPage>); 5] = [
        (
            "list_executions",
            Box::new(|limit, cursor| {
                store
                    .list_executions(&ExecutionQuery {
                        limit,
                        cursor,
                        ..Default::default()
                    })
                    .map(|p| p.items.len())
            }),
        ),
        (
            "evaluations",
            Box::new(|limit, cursor| {
                store
                    .evaluations(
                        s1.id,
                        &EvaluationQuery {
                            limit,
                            cursor,
                            ..Default::default()
                        },
                    )
                    .map(|p| p.items.len())
            }),
        ),
        (
            "find_steps",
            Box::new(|limit, cursor| {
                store
                    .find_steps(&StepQuery {
                        limit,
                        cursor,
                        ..Default::default()
                    })
                    .map(|p| p.items.len())
            }),
        ),
        (
            "candidate_lineage",
            Box::new(|limit, cursor| {
                store
                    .candidate_lineage(
                        "C1",
                        &LineageQuery {
                            limit,
                            cursor,
                            check: None,
                        },
                    )
                    .map(|p| p.items.len())
            }),
        ),
        (
            "verdict_changes",
            Box::new(|limit, cursor| {
                store
                    .verdict_changes(
                        s1.id,
                        s2.id,
                        &LineageQuery {
                            limit,
                            cursor,
                            check: None,
                        },
                    )
                    .map(|p| p.items.len())
            }),
        ),
    ];
    for (i, (list, read)) in lists.iter().enumerate() {
        assert_eq!(
            read(None, None).expect(list),
            2,
            "{list}: the default limit"
        );
        assert_eq!(read(Some(1000), None).expect(list), 2, "{list}: limit 1000");
        assert_eq!(
            read(Some(1), Some(cursors[i].clone())).expect(list),
            1,
            "{list}: its own cursor"
        );
        assert_eq!(
            invalid_field(read(Some(0), None)),
            "limit",
            "{list}: limit 0"
        );
        assert_eq!(
            invalid_field(read(Some(1001), None)),
            "limit",
            "{list}: limit 1001"
        );
        assert_eq!(
            invalid_field(read(Some(usize::MAX), None)),
            "limit",
            "{list}: a huge limit"
        );
        for garbage in ["zz", "not a cursor", "0123", "65"] {
            assert_eq!(
                invalid_field(read(None, Some(garbage.into()))),
                "cursor",
                "{list}: cursor {garbage:?}"
            );
        }
        for (j, other) in cursors.iter().enumerate() {
            if j != i {
                assert_eq!(
                    invalid_field(read(None, Some(other.clone()))),
                    "cursor",
                    "{list}: the cursor of {}",
                    lists[j].0
                );
            }
        }
    }
    for min in [1.5, -0.1, f64::NAN] {
        assert_eq!(
            invalid_field(store.find_steps(&StepQuery {
                min_elimination: Some(min),
                ..Default::default()
            })),
            "min_elimination",
            "min_elimination {min}"
        );
    }

    // Text that looks like SQL is just text.
    let sql = "'; DROP TABLE executions; --";
    assert!(store
        .list_executions(&ExecutionQuery {
            q: Some(sql.into()),
            name: Some(sql.into()),
            ..Default::default()
        })
        .expect("list")
        .items
        .is_empty());
    assert!(store
        .evaluations(
            s1.id,
            &EvaluationQuery {
                q: Some(sql.into()),
                check: Some(sql.into()),
                ..Default::default()
            }
        )
        .expect("evaluations")
        .items
        .is_empty());
    assert!(store
        .find_steps(&StepQuery {
            name: Some(sql.into()),
            kind: Some(sql.into()),
            execution_name: Some(sql.into()),
            ..Default::default()
        })
        .expect("find steps")
        .items
        .is_empty());
    assert!(store
        .candidate_lineage(sql, &LineageQuery::default())
        .expect("lineage")
        .items
        .is_empty());
    assert_eq!(
        execution_ids(store, ExecutionQuery::default()),
        [y, x],
        "the store is intact"
    );
}

/// One execution: its steps in start order (whatever order they were written in), its payloads,
/// and the counts a list row shows.
pub fn execution_detail_steps_payloads_and_funnel(store: &dyn Store) {
    let x = new_id();
    let mut start = execution(x, "checkout", T0);
    start.tags = vec!["a".into(), "b".into()];
    start.metadata = raw(r#"{"user":"u1","zeta":2,"alpha":[1,2]}"#);
    start.service = Some("svc".into());
    start.host = Some("host-1".into());
    start.pid = Some(4242);
    let top = |name: &str, kind: &str, at: i64, len: i64| {
        let mut s = step(x, name, T0 + at, len);
        s.kind = Some(kind.into());
        s
    };
    let counted = |mut s: StepRecord, i: u64, o: u64| {
        s.candidates_in = Some(i);
        s.candidates_out = Some(o);
        s
    };
    let s1 = top("load", "search", 10, 10);
    let mut s2 = counted(top("filter", "filter", 30, 30), 100, 40);
    s2.summary = Some(EvaluationSummary {
        total: 100,
        passed: 40,
        failed: 60,
        kept: 0,
        sampled: true,
        capture: "summary".into(),
        checks: vec![CheckSummary {
            name: "price".into(),
            passed: 40,
            failed: 60,
            first_failed: 60,
            top_reasons: vec![("too expensive".into(), 60)],
        }],
    });
    let mut s3 = counted(top("filter.price", "filter", 35, 15), 40, 10);
    s3.parent_id = Some(s2.id);
    let mut s4 = counted(top("rank", "rank", 70, 20), 40, 5);
    s4.status = Status::Error;
    s4.error = Some("rank failed".into());
    let mut s5 = counted(top("rank.llm", "llm", 75, 5), 5, 1);
    s5.parent_id = Some(s4.id);
    let s6 = top("select", "select", 95, 4);
    let mut e = end(x, T0 + 100, Status::Ok);
    e.input = Some(raw(r#"{"query":"laptop stand","limit":5}"#));
    e.output = Some(raw(r#"{"selected":"B01"}"#));
    // Written out of order, in two batches.
    write(
        store,
        &[
            done(&s4),
            done(&s2),
            Record::ExecutionStarted(start),
            done(&s5),
        ],
    );
    write(
        store,
        &[
            done(&s1),
            done(&s6),
            done(&s3),
            Record::ExecutionFinished(e),
        ],
    );

    let d = detail(store, x);
    let order = [&s1, &s2, &s3, &s4, &s5, &s6];
    assert_eq!(
        d.steps.iter().map(|s| s.id).collect::<Vec<_>>(),
        order.iter().map(|s| s.id).collect::<Vec<_>>(),
        "steps in start order"
    );
    for (got, want) in d.steps.iter().zip(order) {
        let expected = StepSummary {
            id: want.id,
            execution_id: x,
            execution_name: "checkout".into(),
            parent_id: want.parent_id,
            name: want.name.clone(),
            kind: want.kind.clone(),
            status: want.status,
            error: want.error.clone(),
            started_at: want.started_at,
            ended_at: want.ended_at,
            candidates_in: want.candidates_in,
            candidates_out: want.candidates_out,
            elimination: elimination(want.candidates_in, want.candidates_out),
            summary: want.summary.clone(),
            seq: got.seq,
        };
        assert_eq!(got, &expected, "step {}", want.name);
    }
    assert_eq!(d.steps[1].elimination, Some(0.6));
    let e = &d.execution;
    assert_eq!(
        (
            e.id,
            e.name.as_str(),
            e.status,
            e.started_at,
            e.completed_at,
            e.tags.clone(),
            e.notes.clone(),
            e.error.clone(),
        ),
        (
            x,
            "checkout",
            Status::Ok,
            T0,
            Some(T0 + 100),
            vec!["a".to_owned(), "b".to_owned()],
            None,
            None
        )
    );
    assert_eq!(
        (
            e.step_count,
            e.error_steps,
            e.candidates_in,
            e.candidates_out,
            e.dropped_records
        ),
        (6, 1, Some(100), Some(5), 0),
        "candidates in: the first step counting them; out: the last top-level step counting them"
    );
    assert_eq!(
        (e.service.as_deref(), e.host.as_deref(), e.pid),
        (Some("svc"), Some("host-1"), Some(4242))
    );
    assert_eq!(
        compact(d.metadata.as_str()),
        r#"{"user":"u1","zeta":2,"alpha":[1,2]}"#
    );
    assert_eq!(
        d.input.as_ref().map(|j| compact(j.as_str())).as_deref(),
        Some(r#"{"query":"laptop stand","limit":5}"#)
    );
    assert_eq!(
        d.output.as_ref().map(|j| compact(j.as_str())).as_deref(),
        Some(r#"{"selected":"B01"}"#)
    );
    assert_eq!(
        executions_of(store, ExecutionQuery::default()),
        std::slice::from_ref(&d.execution),
        "the list row is the detail's summary"
    );

    // Nothing recorded but the start.
    let y = new_id();
    write(store, &[begin(y, "bare", T0 + 1_000)]);
    let bare = detail(store, y);
    assert_eq!(
        (
            bare.input,
            bare.output,
            bare.steps.len(),
            bare.execution.candidates_in,
            bare.execution.candidates_out,
            bare.execution.step_count,
        ),
        (None, None, 0, None, None, 0)
    );
    assert_eq!(compact(bare.metadata.as_str()), "{}");
    assert!(
        store.execution(new_id()).expect("read").is_none(),
        "an unknown id is None"
    );
}

/// A run's funnel ends with its last top-level step that counted candidates; a run that failed
/// returned none, whatever a step let through before it failed.
pub fn a_run_that_failed_on_its_way_returns_no_candidates(store: &dyn Store) {
    // filter 1,080 -> 515, then a judge that fails (or is only marked failed) without a count.
    let run = |run_status: Status| {
        let x = new_id();
        let mut filter = step(x, "filter", T0 + 10, 5);
        (filter.candidates_in, filter.candidates_out) = (Some(1_080), Some(515));
        let mut judge = step(x, "judge", T0 + 20, 5);
        judge.candidates_in = Some(515);
        judge.status = Status::Error;
        judge.error = Some("judge timed out".into());
        write(
            store,
            &[
                begin(x, "pipeline", T0),
                done(&filter),
                done(&judge),
                finish(x, T0 + 50, run_status),
            ],
        );
        let run = store.execution(x).expect("read").expect("the run");
        (run.execution.candidates_in, run.execution.candidates_out)
    };
    assert_eq!(run(Status::Error), (Some(1_080), None));
    // The run went on (the judge's failure was caught, or only reported): the filter's count.
    assert_eq!(run(Status::Ok), (Some(1_080), Some(515)));
}
