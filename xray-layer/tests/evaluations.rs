//! Evaluations land in the right step with the right checks, however builders interleave:
//! two builders open at once, a builder kept across a nested step, a builder finished after
//! its step was exited, worker threads recording through a handle, async steps, a builder kept
//! across an `.await`.

use std::sync::Arc;
use tracing_subscriber::prelude::*;
use xray::model::Evaluation;
use xray::store::{EvaluationQuery, StepQuery, Store};

fn rows(store: &Arc<dyn Store>, step_name: &str) -> Vec<Evaluation> {
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    let step = steps
        .items
        .iter()
        .find(|s| s.name == step_name)
        .unwrap_or_else(|| panic!("no step {step_name}"));
    store
        .evaluations(
            step.id,
            &EvaluationQuery {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .expect("rows")
        .items
}

/// The record of the step named `step_name`.
fn step(store: &Arc<dyn Store>, step_name: &str) -> xray::model::StepRecord {
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    let id = steps
        .items
        .iter()
        .find(|s| s.name == step_name)
        .unwrap_or_else(|| panic!("no step {step_name}"))
        .id;
    store.step(id).expect("query").expect("the step")
}

type Checks<'a> = Vec<(&'a str, bool)>;

fn names(e: &Evaluation) -> Checks<'_> {
    e.checks
        .iter()
        .map(|c| (c.name.as_str(), c.passed))
        .collect()
}

#[xray::step(kind = "filter")]
fn inner(n: u32) -> bool {
    xray::evaluate(format!("inner-{n}"))
        .check("even", n % 2 == 0, "odd")
        .passed()
}

#[xray::step(kind = "filter")]
fn outer() -> u32 {
    // Two builders open at once: each keeps its own checks.
    let first = xray::evaluate("A").label("first").check("a1", true, "");
    let second = xray::evaluate("B")
        .check("b1", false, "no")
        .check_min("b2", 1.0, 2.0);
    let first = first.check_min("a2", 3.0, 2.0);
    assert!(!second.passed());
    assert!(first.passed());
    // A builder kept across a nested step: the nested step's evaluation goes to the nested step.
    let across = xray::evaluate("C").check("c1", true, "");
    assert!(!inner(3));
    assert!(!across
        .check("c2", false, "inside, after the nested step")
        .passed());
    // Dropped without passed(): still recorded.
    drop(xray::evaluate("D").check("d1", true, ""));
    7
}

#[test]
fn interleaved_and_nested_builders_keep_their_rows_apart() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert_eq!(outer(), 7);
    });
    assert!(guard.flush());
    let outer_rows = rows(&store, "outer");
    let mut by_id: Vec<(&str, Checks<'_>, bool)> = outer_rows
        .iter()
        .map(|e| (e.candidate_id.as_str(), names(e), e.passed))
        .collect();
    by_id.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        by_id,
        vec![
            ("A", vec![("a1", true), ("a2", true)], true),
            ("B", vec![("b1", false), ("b2", false)], false),
            ("C", vec![("c1", true), ("c2", false)], false),
            ("D", vec![("d1", true)], true),
        ]
    );
    let a = outer_rows
        .iter()
        .find(|e| e.candidate_id == "A")
        .expect("A");
    assert_eq!(a.label.as_deref(), Some("first"));
    let b = outer_rows
        .iter()
        .find(|e| e.candidate_id == "B")
        .expect("B");
    assert_eq!(b.checks[0].reason.as_deref(), Some("no"));
    assert_eq!(b.checks[1].reason.as_deref(), Some("1 < 2 minimum"));
    let inner_rows = rows(&store, "inner");
    assert_eq!(inner_rows.len(), 1);
    assert_eq!(inner_rows[0].candidate_id, "inner-3");
    assert_eq!(names(&inner_rows[0]), vec![("even", false)]);
}

#[xray::step(kind = "filter", skip_all)]
fn parallel(ids: Vec<u32>) -> usize {
    let step = xray::current_step();
    let handles: Vec<_> = ids
        .chunks(25)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let step = step.clone();
            std::thread::spawn(move || {
                chunk
                    .iter()
                    .filter(|&&id| step.evaluate(id).check("even", id % 2 == 0, "odd").passed())
                    .count()
            })
        })
        .collect();
    // Meanwhile this thread evaluates too.
    let here = (1000..1010)
        .filter(|id| {
            xray::evaluate(id)
                .check("even", id % 2 == 0, "odd")
                .passed()
        })
        .count();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or(0))
        .sum::<usize>()
        + here
}

#[xray::step(kind = "filter", skip_all)]
fn in_scope_workers(ids: Vec<u32>) -> usize {
    let step = xray::current_step();
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(10)
            .map(|chunk| {
                let step = step.clone();
                s.spawn(move || {
                    step.in_scope(|| {
                        chunk
                            .iter()
                            .filter(|&&id| xray::evaluate(id).check_max("id", id, 15).passed())
                            .count()
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

#[test]
fn worker_threads_record_every_evaluation() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert_eq!(parallel((0..100).collect()), 55);
        assert_eq!(in_scope_workers((0..40).collect()), 16);
    });
    assert!(guard.flush());
    let mut ids: Vec<String> = rows(&store, "parallel")
        .into_iter()
        .map(|e| e.candidate_id)
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..100).chain(1000..1010).map(|i| i.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    let in_scope = rows(&store, "in_scope_workers");
    assert_eq!(in_scope.len(), 40);
    assert_eq!(in_scope.iter().filter(|e| e.passed).count(), 16);
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    let s = steps
        .items
        .iter()
        .find(|s| s.name == "in_scope_workers")
        .expect("step");
    assert_eq!((s.candidates_in, s.candidates_out), (Some(40), Some(16)));
}

#[xray::step(kind = "filter", skip_all)]
async fn async_filter(ids: Vec<u32>) -> usize {
    let mut kept = 0;
    for id in ids {
        if xray::evaluate(id)
            .check("small", id < 3, "too big")
            .passed()
        {
            kept += 1;
        }
        tokio::task::yield_now().await;
    }
    kept
}

/// Runs `step` as a task on a 2-thread tokio runtime, under a subscriber with `layer`: its polls
/// may run on either worker thread.
fn spawned_on_a_runtime(
    layer: xray::XRayLayer,
    step: impl std::future::Future<Output = usize> + Send + 'static,
) -> usize {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        runtime.block_on(async move {
            tokio::spawn(tracing::instrument::WithSubscriber::with_subscriber(
                step, dispatch,
            ))
            .await
            .unwrap_or(0)
        })
    })
}

#[test]
fn async_steps_keep_evaluations_made_between_awaits() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let kept = spawned_on_a_runtime(layer, async_filter((0..20).collect()));
    assert_eq!(kept, 3);
    assert!(guard.flush());
    let rows = rows(&store, "async_filter");
    let mut ids: Vec<u32> = rows
        .iter()
        .filter_map(|e| e.candidate_id.parse().ok())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
}

/// The judge pattern: a builder started before an `.await` (the model call) and finished after
/// it, when the verdict is known. Between polls the step is exited; the row must still be
/// recorded whole, with the verdict decided after the await.
#[xray::step(kind = "judge", skip_all)]
async fn judge(ids: Vec<u32>) -> usize {
    let mut kept = 0;
    for id in ids {
        let pending = xray::evaluate(id).check("in stock", true, "");
        tokio::task::yield_now().await; // the model call
        let relevant = id % 2 == 0;
        if pending
            .metric("confidence", 0.9)
            .check("relevant", relevant, "the judge said no")
            .verdict(relevant)
            .passed()
        {
            kept += 1;
        }
    }
    kept
}

#[test]
fn a_builder_kept_across_an_await_records_the_verdict_decided_after_it() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let kept = spawned_on_a_runtime(layer, judge((0..10).collect()));
    assert_eq!(kept, 5);
    assert!(guard.flush());
    let mut rows = rows(&store, "judge");
    rows.sort_by_key(|e| e.candidate_id.parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(rows.len(), 10, "one row per candidate");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.candidate_id, i.to_string());
        assert_eq!(row.passed, i % 2 == 0, "the verdict of {i}");
        assert_eq!(
            names(row),
            vec![("in stock", true), ("relevant", i % 2 == 0)],
            "the checks of {i}, before and after the await"
        );
        assert_eq!(row.metrics, vec![("confidence".to_owned(), 0.9)], "{row:?}");
    }
}

#[test]
fn what_arrives_after_its_step_ended_is_counted_as_dropped() {
    #[xray::step(skip_all)]
    fn start_one() -> xray::Evaluation {
        assert!(xray::evaluate("D").check("d1", true, "").passed());
        xray::evaluate("E").check("e1", true, "")
    }
    #[xray::step(skip_all)]
    fn keep_handle() -> xray::StepHandle {
        xray::current_step()
    }
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _run = xray::Execution::start("late").enter();
        let late = start_one();
        assert!(!late.check("e2", false, "after the step").passed());
        let handle = keep_handle();
        assert!(handle.evaluate("F").check("f1", true, "").passed());
    });
    assert!(guard.flush());
    // The step ended before the verdict was known: no row may claim a verdict the program did
    // not get (an earlier version kept "E" as passed, with only its first check). The builder
    // carried the thread's rows of the step ("D" and "E"): with the handle's "F", three are
    // counted as dropped, by the recorder and in the database.
    let rows = rows(&store, "start_one");
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(guard.stats().dropped, 3, "{:?}", guard.stats());
    drop(guard);
    assert_eq!(store.recorder_counts().expect("counts").dropped, 3);
    // Not a lost end record: the run and its steps are complete, none marked lost.
    let runs = store
        .list_executions(&Default::default())
        .expect("runs")
        .items;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].dropped_records, 0, "{:?}", runs[0]);
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    assert!(
        steps
            .items
            .iter()
            .all(|s| s.status == xray::model::Status::Ok),
        "{:?}",
        steps.items
    );
}

/// A candidate id or label whose `Display` panics: X-Ray formats it only because it records,
/// so the panic stays out of the program; the row is kept with a note, and later evaluations
/// of the step are recorded as usual.
#[test]
fn a_display_that_panics_does_not_reach_the_program() {
    struct Broken;
    impl std::fmt::Display for Broken {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("no id today")
        }
    }
    #[xray::step(kind = "filter", skip_all)]
    fn with_broken_ids() -> usize {
        let first = xray::evaluate(Broken).check("a", true, "").passed();
        let second = xray::evaluate("ok")
            .label(Broken)
            .check("b", false, "no")
            .passed();
        let third = xray::evaluate("after").check("c", true, "").passed();
        usize::from(first) + usize::from(second) + usize::from(third)
    }
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let kept =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            with_broken_ids()
        });
    assert_eq!(kept, 2);
    assert!(guard.flush());
    let rows = rows(&store, "with_broken_ids");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let broken = rows
        .iter()
        .find(|e| e.candidate_id.contains("no id today"))
        .expect("the row with the broken id");
    assert!(
        broken.candidate_id.starts_with("<not recorded:"),
        "{broken:?}"
    );
    let labelled = rows
        .iter()
        .find(|e| e.candidate_id == "ok")
        .expect("the row with the broken label");
    assert!(!labelled.passed);
    assert!(
        labelled
            .label
            .as_deref()
            .is_some_and(|l| l.contains("no id today")),
        "{labelled:?}"
    );
    assert!(rows.iter().any(|e| e.candidate_id == "after" && e.passed));
}

/// Every other place X-Ray formats a user's value only because it records: a selection, the
/// reasoning, a `format_args!` reason, an explicit failure, and a returned `Err`. A panic in
/// that `Display` stays out of the program there too, and the text says what happened.
#[test]
fn a_display_that_panics_in_a_selection_reasoning_reason_or_error_stays_out_of_the_program() {
    struct Broken;
    impl std::fmt::Display for Broken {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("cannot say")
        }
    }
    #[xray::step(kind = "rank", skip_all)]
    fn ranks_with_broken_text() -> usize {
        let passed = xray::evaluate("c1")
            .check("fit", false, format_args!("{}", Broken))
            .passed();
        xray::select(Broken, Broken);
        xray::reasoning(Broken);
        usize::from(passed)
    }
    #[xray::step(kind = "llm", skip_all)]
    fn fails_with_broken_text() -> Result<u32, Broken> {
        Err(Broken)
    }
    #[xray::step(kind = "llm", skip_all)]
    fn marks_itself_failed() -> u32 {
        xray::fail(Broken);
        3
    }
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let (kept, failed, marked) =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            (
                ranks_with_broken_text(),
                fails_with_broken_text().is_err(),
                marks_itself_failed(),
            )
        });
    assert_eq!(
        (kept, failed, marked),
        (0, true, 3),
        "the program ran as without X-Ray"
    );
    assert!(guard.flush());
    let said = |text: &str| text.starts_with("<not recorded: ") && text.contains("cannot say");
    let rank = step(&store, "ranks_with_broken_text");
    let rows = rows(&store, "ranks_with_broken_text");
    assert!(
        said(rows[0].checks[0].reason.as_deref().unwrap_or("")),
        "{rows:?}"
    );
    assert!(
        said(&rank.selection[0].candidate_id) && said(&rank.selection[0].reason),
        "{:?}",
        rank.selection
    );
    assert!(said(rank.reasoning.as_deref().unwrap_or("")), "{rank:?}");
    for name in ["fails_with_broken_text", "marks_itself_failed"] {
        let failed = step(&store, name);
        assert_eq!(failed.status, xray::model::Status::Error, "{name}");
        assert!(
            said(failed.error.as_deref().unwrap_or("")),
            "{name}: {failed:?}"
        );
    }
}

/// A candidate id whose `Display` records too: it logs (a tracing event the layer captures) and
/// evaluates another candidate. Neither may panic on the layer's thread state, and every row
/// lands.
#[test]
fn a_candidate_whose_display_records_is_recorded_without_a_panic() {
    struct Chatty(u32);
    impl std::fmt::Display for Chatty {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            tracing::info!(id = self.0, "formatting a candidate id");
            let inner = xray::evaluate(format!("inner-{}", self.0))
                .check("inner", true, "")
                .passed();
            write!(f, "chatty-{}-{inner}", self.0)
        }
    }
    #[xray::step(kind = "filter", skip_all)]
    fn chatty_filter() -> usize {
        (0..3)
            .filter(|&i| {
                xray::evaluate(Chatty(i))
                    .label(Chatty(i + 10))
                    .check("odd", i % 2 == 1, "even")
                    .passed()
            })
            .count()
    }
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let kept =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            chatty_filter()
        });
    assert_eq!(kept, 1);
    assert!(guard.flush());
    let rows = rows(&store, "chatty_filter");
    let mut ids: Vec<&str> = rows.iter().map(|e| e.candidate_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![
            "chatty-0-true",
            "chatty-1-true",
            "chatty-2-true",
            "inner-0",
            "inner-1",
            "inner-10",
            "inner-11",
            "inner-12",
            "inner-2",
        ]
    );
    let odd = rows
        .iter()
        .find(|e| e.candidate_id == "chatty-1-true")
        .expect("row 1");
    assert_eq!(odd.label.as_deref(), Some("chatty-11-true"));
    assert!(odd.passed);
}

/// A judge that times out half way: it passed some candidates before it failed.
#[xray::step(kind = "llm", skip_all)]
fn judge_that_times_out(ids: Vec<u32>, count_in: bool) -> Result<Vec<u32>, String> {
    if count_in {
        xray::candidates(Some(ids.len() as u64), None);
    }
    let mut kept = Vec::new();
    for &id in &ids {
        if id == 30 {
            return Err("judge timed out after 30 candidates".into());
        }
        if xray::evaluate(id)
            .check("relevant", id % 3 != 0, "not relevant")
            .passed()
        {
            kept.push(id);
        }
    }
    Ok(kept)
}

#[test]
fn a_step_that_fails_half_way_lets_nothing_through() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert!(judge_that_times_out((0..50).collect(), true).is_err());
    });
    assert!(guard.flush());
    let judged = step(&store, "judge_that_times_out");
    assert_eq!(judged.status, xray::model::Status::Error);
    // 50 reached it (its own count), 30 were judged (20 passed), none left it.
    assert_eq!(
        (judged.candidates_in, judged.candidates_out),
        (Some(50), None)
    );
    let summary = judged
        .summary
        .as_ref()
        .expect("a summary of the 30 verdicts");
    assert_eq!((summary.total, summary.passed), (30, 20));
    assert_eq!(judged.elimination(), None, "no share eliminated is claimed");

    // Without a count of its own, what it judged is what reached it.
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert!(judge_that_times_out((0..50).collect(), false).is_err());
    });
    assert!(guard.flush());
    let judged = step(&store, "judge_that_times_out");
    assert_eq!(
        (judged.candidates_in, judged.candidates_out),
        (Some(30), None)
    );

    // Marked failed with `xray::fail` but returning what it kept: that is what it let through.
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert_eq!(judge_that_falls_back((0..50).collect()).len(), 33);
    });
    assert!(guard.flush());
    let judged = step(&store, "judge_that_falls_back");
    assert_eq!(judged.status, xray::model::Status::Error);
    assert_eq!(
        (judged.candidates_in, judged.candidates_out),
        (Some(50), Some(33))
    );
}

/// A judge that times out on some candidates, keeps them with a default verdict, and says so.
#[xray::step(kind = "llm", skip_all)]
fn judge_that_falls_back(ids: Vec<u32>) -> Vec<u32> {
    let kept: Vec<u32> = ids
        .into_iter()
        .filter(|&id| {
            xray::evaluate(id)
                .check("relevant", id % 3 != 0, "not relevant")
                .passed()
        })
        .collect();
    xray::fail("judge timed out on 10 candidates; kept them with the default verdict");
    kept
}

/// A manual step (`xray::Step`) marked failed: with no output it returned nothing and lets
/// nothing through; with an output (a fallback) it keeps the count of what it passed.
#[test]
fn a_manual_step_marked_failed_counts_out_only_what_it_returned() {
    let manual = |name: &str, returns: bool| {
        let step = xray::Step::start(name).kind("llm").enter();
        let kept: Vec<u32> = (0..4)
            .filter(|&id| {
                xray::evaluate(id)
                    .check("relevant", id != 0, "not relevant")
                    .passed()
            })
            .collect();
        step.fail("judge timed out");
        if returns {
            step.output(&kept);
        }
    };
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        manual("gave_up", false);
        manual("fell_back", true);
    });
    assert!(guard.flush());
    let gave_up = step(&store, "gave_up");
    assert_eq!(gave_up.status, xray::model::Status::Error);
    assert_eq!(
        (gave_up.candidates_in, gave_up.candidates_out),
        (Some(4), None)
    );
    let fell_back = step(&store, "fell_back");
    assert_eq!(fell_back.status, xray::model::Status::Error);
    assert_eq!(
        (fell_back.candidates_in, fell_back.candidates_out),
        (Some(4), Some(3))
    );
}

/// A judge that panics half way.
#[xray::step(kind = "llm", skip_all)]
fn judge_that_panics(ids: Vec<u32>) -> Vec<u32> {
    let mut kept = Vec::new();
    for id in ids {
        assert!(id < 30, "the model client panicked");
        if xray::evaluate(id)
            .check("relevant", id % 3 != 0, "not relevant")
            .passed()
        {
            kept.push(id);
        }
    }
    kept
}

#[test]
fn a_step_that_panics_half_way_lets_nothing_through() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let outcome = std::panic::catch_unwind(|| judge_that_panics((0..50).collect()));
        assert!(outcome.is_err());
    });
    assert!(guard.flush());
    let judged = step(&store, "judge_that_panics");
    assert_eq!(judged.status, xray::model::Status::Error);
    assert_eq!(
        (judged.candidates_in, judged.candidates_out),
        (Some(30), None)
    );
}
