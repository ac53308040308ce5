//! The layer in a real subscriber: beside `fmt`, under per-layer filters, and costing nothing
//! (no serialization) when it is not installed.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};
use xray::store::{EvaluationQuery, ExecutionQuery, StepQuery};

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

/// A value whose `Serialize` counts its calls.
struct Counted(u32);

impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        s.serialize_u32(self.0)
    }
}

#[xray::step]
fn takes_counted(value: Counted) -> u32 {
    value.0
}

#[test]
fn without_the_layer_no_argument_is_serialized() {
    SERIALIZED.store(0, Ordering::SeqCst);
    // No subscriber at all.
    assert_eq!(takes_counted(Counted(1)), 1);
    // A subscriber with fmt only: the span is enabled, but X-Ray is not there.
    let fmt_only = tracing_subscriber::registry().with(fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(fmt_only, || assert_eq!(takes_counted(Counted(2)), 2));
    // X-Ray filtered off for this span by a per-layer filter.
    let (layer, _guard) = xray::layer().memory().build().expect("build");
    let filtered = tracing_subscriber::registry().with(layer.with_filter(EnvFilter::new("off")));
    tracing::subscriber::with_default(filtered, || assert_eq!(takes_counted(Counted(3)), 3));
    assert_eq!(SERIALIZED.load(Ordering::SeqCst), 0);
    // With the layer, the argument is serialized exactly once (the check above can fail).
    let (layer, _guard) = xray::layer().memory().build().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert_eq!(takes_counted(Counted(4)), 4)
    });
    assert_eq!(SERIALIZED.load(Ordering::SeqCst), 1);
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::ErrorKind::Other)?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

#[xray::step(kind = "filter", skip(ids))]
fn filter_many(ids: Vec<u32>) -> usize {
    tracing::info!(count = ids.len(), "filtering");
    ids.iter()
        .filter(|id| {
            xray::evaluate(id)
                .check_min("score", f64::from(**id % 10), 5.0)
                .passed()
        })
        .count()
}

#[xray::step(kind = "debug-only", level = "debug")]
fn chatty() -> u32 {
    7
}

#[test]
fn fmt_prints_steps_not_evaluations_and_filters_compose() {
    let out = Buffer::default();
    let writer = out.clone();
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let subscriber = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(EnvFilter::new("debug")),
        )
        .with(layer.with_filter(EnvFilter::new("info")));
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(filter_many((0..5_000).collect()), 2_500);
        assert_eq!(chatty(), 7);
    });
    assert!(guard.flush());
    let printed = out.text();
    let lines = printed.lines().count();
    assert!(lines < 10, "fmt printed {lines} lines:\n{printed}");
    assert!(
        printed.contains("filtering"),
        "the step's own event reaches fmt: {printed}"
    );

    // X-Ray kept all 5,000 evaluations and the log line…
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    assert_eq!(
        steps.items.len(),
        1,
        "the debug-level step is filtered out for X-Ray"
    );
    let step = &steps.items[0];
    assert_eq!(step.summary.as_ref().map(|s| s.total), Some(5_000));
    let rows = store
        .evaluations(
            step.id,
            &EvaluationQuery {
                limit: Some(1),
                passed: Some(false),
                ..Default::default()
            },
        )
        .expect("rows");
    assert_eq!(
        rows.items[0].checks[0].reason.as_deref(),
        Some("0 < 5 minimum")
    );
    let full = store.step(step.id).expect("q").expect("step");
    assert_eq!(full.logs.len(), 1);
    assert_eq!(full.logs[0].fields.to_value()["count"], 5000);
    // The debug-level step was filtered out for X-Ray only: one run, the info-level one.
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert_eq!(runs.items.len(), 1);
}

#[xray::step(kind = "llm", metadata(prompt_version = 3))]
fn secretive(api_key: &str, prompt: &str) -> String {
    format!("{prompt}: {}", "x".repeat(5_000))
}

#[test]
fn processors_redact_cap_and_hooks_see_every_step() {
    let seen = Arc::new(AtomicUsize::new(0));
    let seen_in_hook = seen.clone();
    let (layer, guard, store) = xray::layer()
        .memory()
        .redact(["api_key"])
        .max_payload_bytes(Some(1_024))
        .on_step_end(move |step| {
            seen_in_hook.fetch_add(1, Ordering::SeqCst);
            assert_eq!(step.name, "secretive");
        })
        .on_execution_end(|_| panic!("a hook that panics is counted, not fatal"))
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        secretive("sk-live-123", "hello");
    });
    assert!(guard.flush());
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(guard.stats().hook_panics, 1);
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    let step = store.step(steps.items[0].id).expect("q").expect("step");
    let input = step.input.expect("input");
    assert!(!input.as_str().contains("sk-live-123"), "{input}");
    assert_eq!(input.to_value()["api_key"], "[redacted]");
    assert_eq!(input.to_value()["prompt"], "hello");
    let output = step.output.expect("output");
    assert!(output.truncated(), "5 KB output over a 1 KB cap is marked");
    assert!(output.len() <= 1_024);
    assert!(output.to_value()["value"]
        .as_str()
        .expect("text")
        .starts_with("hello: xxx"));
    assert_eq!(step.metadata.to_value()["prompt_version"], 3);
}

#[xray::execution]
fn secretive_run(api_key: &str, prompt: &str) -> String {
    format!("{prompt}: {}", "y".repeat(5_000))
}

#[test]
fn processors_redact_and_cap_an_executions_input_and_output_too() {
    let (layer, guard, store) = xray::layer()
        .memory()
        .redact(["api_key"])
        .max_payload_bytes(Some(1_024))
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        secretive_run("sk-live-456", "hi");
    });
    assert!(guard.flush());
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    let run = store
        .execution(runs.items[0].id)
        .expect("query")
        .expect("the run");
    let input = run.input.expect("the run's input");
    assert!(!input.as_str().contains("sk-live-456"), "{input}");
    assert_eq!(input.to_value()["api_key"], "[redacted]");
    assert_eq!(input.to_value()["prompt"], "hi");
    let output = run.output.expect("the run's output");
    assert!(output.truncated(), "5 KB output over a 1 KB cap is marked");
    assert!(output.len() <= 1_024, "{}", output.len());
}

#[xray::step(kind = "filter")]
fn logs_and_judges(n: u32) -> u32 {
    tracing::info!(n, "judging");
    (0..n)
        .filter(|i| xray::evaluate(i).check("even", i % 2 == 0, "odd").passed())
        .count() as u32
}

#[test]
fn a_second_xray_layer_in_the_same_subscriber_neither_panics_nor_doubles_anything() {
    let (inner, inner_guard, inner_store) =
        xray::layer().memory().build_with_store().expect("build");
    let (outer, outer_guard, outer_store) =
        xray::layer().memory().build_with_store().expect("build");
    let subscriber = tracing_subscriber::registry().with(inner).with(outer);
    let kept = tracing::subscriber::with_default(subscriber, || logs_and_judges(10));
    assert_eq!(kept, 5);
    assert!(inner_guard.flush() && outer_guard.flush());
    let steps = inner_store
        .find_steps(&StepQuery::default())
        .expect("steps");
    assert_eq!(
        steps.items.len(),
        1,
        "the innermost X-Ray layer records the step"
    );
    let step = inner_store
        .step(steps.items[0].id)
        .expect("query")
        .expect("the step");
    assert_eq!(
        step.logs.len(),
        1,
        "one log line, not one per layer: {:?}",
        step.logs
    );
    let rows = inner_store
        .evaluations(step.id, &EvaluationQuery::default())
        .expect("rows");
    assert_eq!(rows.items.len(), 10);
    let elsewhere = outer_store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert!(elsewhere.items.is_empty(), "{:?}", elsewhere.items);
}

#[xray::step(kind = "llm")]
fn score_one(x: u32) -> u32 {
    x * 2
}

#[xray::step(kind = "filter", skip_all)]
fn worker_side_step(handle: &xray::StepHandle) -> u32 {
    handle.in_scope(|| {
        let _chunk = tracing::info_span!("chunk").entered();
        score_one(5)
    })
}

/// Scores on a worker thread, through the handle, inside a plain `tracing` span; then again
/// from inside a step of the worker's own.
#[xray::step(kind = "rank")]
fn scores_on_a_worker() -> u32 {
    let handle = xray::current_step();
    // The worker runs under the same subscriber (a global one would do the same).
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    std::thread::scope(|s| {
        s.spawn(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                let plain = handle.in_scope(|| {
                    let _chunk = tracing::info_span!("chunk").entered();
                    score_one(3)
                });
                plain + worker_side_step(&handle)
            })
        })
        .join()
        .unwrap_or(0)
    })
}

#[test]
fn a_step_inside_a_handles_scope_is_a_child_of_the_handles_step() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let sum = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        scores_on_a_worker()
    });
    assert_eq!(sum, 16);
    assert!(guard.flush());
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    let run = |name: &str| {
        runs.items
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no run {name}: {:?}", runs.items))
    };
    // `worker_side_step` ran on the worker outside any step: a run of its own, with only
    // itself in it; what it scored in the handle's scope went to the handle's step.
    assert_eq!(runs.items.len(), 2, "{:?}", runs.items);
    assert_eq!(run("worker_side_step").step_count, 1);
    let steps = store
        .execution(run("scores_on_a_worker").id)
        .expect("query")
        .expect("the run")
        .steps;
    let id = |name: &str| {
        steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in {steps:?}"))
            .id
    };
    let scores: Vec<_> = steps.iter().filter(|s| s.name == "score_one").collect();
    assert_eq!(scores.len(), 2, "{steps:?}");
    for score in scores {
        assert_eq!(
            score.parent_id,
            Some(id("scores_on_a_worker")),
            "scored in the handle's scope: {steps:?}"
        );
    }
}

#[xray::step(kind = "llm", skip_all)]
fn chatty_workers(threads: usize, lines: usize) {
    let handle = xray::current_step();
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (handle, dispatch) = (&handle, &dispatch);
            s.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    handle.in_scope(|| {
                        for i in 0..lines {
                            tracing::info!(t, i, "batch judged");
                        }
                    })
                })
            });
        }
    });
}

#[test]
fn a_step_keeps_at_most_its_cap_of_log_lines_and_counts_the_rest_even_from_many_threads() {
    let (layer, guard, store) = xray::layer()
        .memory()
        .max_logs_per_step(5)
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        chatty_workers(8, 50);
    });
    assert!(guard.flush());
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    let step = store
        .step(steps.items[0].id)
        .expect("query")
        .expect("the step");
    assert_eq!(step.logs.len(), 5, "the cap");
    assert_eq!(step.logs_dropped, 8 * 50 - 5, "the rest, counted");
}

#[xray::step(kind = "llm")]
fn root_rank(n: u32) -> Result<u32, String> {
    if n % 3 == 1 {
        Err(format!("model timeout on {n}"))
    } else {
        Ok(n)
    }
}

#[xray::step(kind = "filter")]
fn root_filter(n: u32) -> u32 {
    n
}

/// Root steps one after another (a thread reuses the memory of its last root step's run for
/// the next): each gets a run of its own, named after it, with its own outcome, and nothing of
/// the run before.
#[test]
fn root_steps_one_after_another_each_get_a_run_of_their_own() {
    use xray::model::Status;
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for n in 0..6 {
            let _ = root_rank(n);
            root_filter(n);
            let _ = root_rank(n + 100);
        }
    });
    assert!(guard.flush());
    let runs = store
        .list_executions(&ExecutionQuery {
            limit: Some(100),
            ..Default::default()
        })
        .expect("runs");
    assert_eq!(runs.items.len(), 18);
    let ids: std::collections::HashSet<_> = runs.items.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 18, "a new run each time");
    let mut failed = 0;
    for run in &runs.items {
        let detail = store.execution(run.id).expect("query").expect("the run");
        assert_eq!(detail.steps.len(), 1, "{run:?}");
        let step = store
            .step(detail.steps[0].id)
            .expect("query")
            .expect("the step");
        assert_eq!(step.name, run.name, "the run is named after its step");
        assert_eq!(step.execution_id, run.id);
        let input: serde_json::Value =
            serde_json::from_str(step.input.as_ref().expect("input").as_str()).expect("json");
        let n = input["n"].as_u64().expect("n");
        let error =
            (run.name == "root_rank" && n % 3 == 1).then(|| format!("model timeout on {n}"));
        failed += usize::from(error.is_some());
        assert_eq!(run.error, error, "{}({n})", run.name);
        let status = if error.is_some() {
            Status::Error
        } else {
            Status::Ok
        };
        assert_eq!(run.status, status, "{}({n})", run.name);
        assert_eq!(step.status, status, "{}({n})", run.name);
        assert_eq!(run.started_at, step.started_at, "{}({n})", run.name);
        assert!(
            run.completed_at >= step.ended_at,
            "{}({n}): {run:?}",
            run.name
        );
        assert_eq!(run.dropped_records, 0);
    }
    assert_eq!(failed, 4, "root_rank(1), (4), (100) and (103)");
}

#[xray::step(kind = "llm")]
fn flaky_judge(n: u32) -> Result<u32, String> {
    Err(format!("model timeout on {n}"))
}

#[xray::step(kind = "rank")]
fn rank_with_fallback(n: u32) -> u32 {
    flaky_judge(n).unwrap_or(0)
}

/// The steps under a root step leave its run to it: the run ends once, when the root step
/// ends, with the root step's outcome (here ok, though a step under it failed).
#[test]
fn a_root_steps_run_ends_once_with_the_root_step_not_with_the_steps_under_it() {
    use std::sync::{Arc, Mutex};
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ends);
    let (layer, guard, store) = xray::layer()
        .memory()
        .on_execution_end(move |run| {
            let mut seen = seen.lock().expect("lock");
            seen.push((run.id, run.status.as_str().to_owned()));
        })
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        rank_with_fallback(7);
    });
    assert!(guard.flush());
    let ends = ends.lock().expect("lock").clone();
    assert_eq!(ends.len(), 1, "one end for the run: {ends:?}");
    let (run, status) = &ends[0];
    assert_eq!(status, "ok");
    let detail = store.execution(*run).expect("query").expect("the run");
    assert_eq!(detail.execution.status.as_str(), "ok");
    assert_eq!(detail.steps.len(), 2);
    let stats = guard.stats();
    assert_eq!((stats.sent, stats.written), (6, 6), "{stats:?}");
}

/// A root step's run ends with it (one record carries both ends): the hooks see the step's
/// end and then its run's, with the step's outcome, and the counts say two records each.
#[test]
fn a_root_steps_run_ends_right_after_it_in_the_hooks() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (steps, runs) = (Arc::clone(&seen), Arc::clone(&seen));
    let (layer, guard, _store) = xray::layer()
        .memory()
        .on_step_end(move |step| {
            let mut seen = steps.lock().expect("lock");
            seen.push(format!(
                "step {} {}",
                step.execution_id,
                step.status.as_str()
            ));
        })
        .on_execution_end(move |run| {
            let mut seen = runs.lock().expect("lock");
            seen.push(format!("run {} {}", run.id, run.status.as_str()));
        })
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for n in 0..3 {
            let _ = root_rank(n);
        }
    });
    assert!(guard.flush());
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 6, "{seen:?}");
    for (pair, status) in seen.chunks(2).zip(["ok", "error", "ok"]) {
        let step = pair[0].strip_prefix("step ").expect("a step first");
        let run = pair[1].strip_prefix("run ").expect("then its run");
        assert_eq!(step, run, "{seen:?}");
        assert!(run.ends_with(status), "{seen:?}");
    }
    let stats = guard.stats();
    assert_eq!((stats.sent, stats.written), (12, 12), "{stats:?}");
}

/// A model call that never answers: its caller gives up on it.
#[xray::step(kind = "llm")]
async fn slow_judge(candidate: u32) -> bool {
    std::future::pending::<()>().await;
    candidate > 0
}

#[xray::execution]
async fn slow_run(candidate: u32) -> bool {
    slow_judge(candidate).await
}

/// Polls `future` once (it starts, and stops at its first `.await`), then drops it, as a
/// timeout or a `select!` does.
fn poll_once_then_drop(future: impl std::future::Future) {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
}

#[test]
fn an_async_step_dropped_before_it_finished_is_recorded_as_cancelled() {
    use xray::model::Status;
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        poll_once_then_drop(slow_judge(7));
        poll_once_then_drop(slow_run(8));
    });
    assert!(guard.flush());
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert_eq!(
        runs.items.len(),
        2,
        "the implicit run of the root step, and slow_run"
    );
    for run in &runs.items {
        assert_eq!(run.status, Status::Error, "{}", run.name);
        assert!(
            run.error.as_deref().unwrap_or("").starts_with("cancelled"),
            "{}: {:?}",
            run.name,
            run.error
        );
        let detail = store.execution(run.id).expect("query").expect("the run");
        let judge = detail
            .steps
            .iter()
            .find(|s| s.name == "slow_judge")
            .expect("the judge step");
        let step = store.step(judge.id).expect("query").expect("the step");
        assert_eq!(step.status, Status::Error);
        assert_eq!(step.error.as_deref(), Some(xray::__private::CANCELLED));
        assert!(step.output.is_none(), "it returned nothing");
        let candidate = step.input.expect("its input").to_value()["candidate"].clone();
        assert!(candidate == 7 || candidate == 8, "{candidate}");
    }
}

#[xray::step(kind = "filter", capture = 100, skip_all)]
fn big_filter(n: u32) -> u32 {
    let step = xray::current_step();
    let mut kept = 0;
    for i in 0..n {
        if step
            .evaluate(i)
            .check_min("value", f64::from(i), f64::from(n - 3))
            .passed()
        {
            kept += 1;
        }
    }
    xray::select(n - 1, "the largest");
    kept
}

#[test]
fn capture_cap_samples_rows_but_keeps_counts_exact() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        assert_eq!(big_filter(20_000), 3);
    });
    assert!(guard.flush());
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    let s = &steps.items[0];
    let summary = s.summary.as_ref().expect("summary");
    assert_eq!(
        (summary.total, summary.passed, summary.kept, summary.sampled),
        (20_000, 3, 100, true)
    );
    assert_eq!(summary.capture, "cap:100");
    // A step that selects keeps what it selected.
    assert_eq!((s.candidates_in, s.candidates_out), (Some(20_000), Some(1)));
    let rows = store
        .evaluations(
            s.id,
            &EvaluationQuery {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .expect("rows");
    assert_eq!(rows.items.len(), 100);
    assert!(
        rows.items
            .iter()
            .any(|e| e.candidate_id == "19999" && e.selected),
        "the selected row is kept"
    );
    // Near misses (within 10% of the threshold) are kept before the random sample: with ~2,000
    // of them and 100 slots, every kept failure is a near miss.
    for e in rows.items.iter().filter(|e| !e.passed) {
        let observed = e.checks[0]
            .observed
            .as_ref()
            .and_then(|v| v.as_f64())
            .expect("observed");
        assert!(
            observed >= 0.9 * 19_997.0,
            "{} is not a near miss",
            e.candidate_id
        );
    }
}

/// A value whose `Serialize` and `Debug` panic: code that runs only because X-Ray records.
struct Explosive;

impl serde::Serialize for Explosive {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("boom in Serialize")
    }
}

impl std::fmt::Debug for Explosive {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("boom in Debug")
    }
}

/// Only `Debug`.
struct DebugOnly(Explosive);

impl std::fmt::Debug for DebugOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[xray::step]
fn takes_explosive(_value: Explosive) -> u32 {
    1
}

#[xray::step]
fn takes_debug_only(_value: DebugOnly) -> u32 {
    2
}

#[xray::step(skip_all)]
fn records_explosive_payloads() -> u32 {
    xray::metadata("m", &Explosive);
    xray::evaluate("c")
        .snapshot(&Explosive)
        .check("ok", true, "")
        .record();
    3
}

#[xray::step(skip_all)]
fn lazy_reason_panics() -> bool {
    xray::evaluate("c")
        .check("price", false, || -> String { panic!("boom in a reason") })
        .passed()
}

#[test]
fn a_panicking_lazy_reason_never_reaches_the_program() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // Without X-Ray the closure never runs; with it, the program goes on the same.
        assert!(!lazy_reason_panics());
    });
    assert!(guard.flush());
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    let rows = store
        .evaluations(steps.items[0].id, &EvaluationQuery::default())
        .expect("evaluations");
    let reason = rows.items[0].checks[0].reason.clone().unwrap_or_default();
    assert_eq!(
        reason,
        "<not recorded: a reason panicked: boom in a reason>"
    );
}

#[test]
fn a_panicking_serialize_or_debug_never_reaches_the_program_and_fails_the_step() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // Without X-Ray these calls would return normally; with it they must too.
        assert_eq!(takes_explosive(Explosive), 1);
        assert_eq!(takes_debug_only(DebugOnly(Explosive)), 2);
        assert_eq!(records_explosive_payloads(), 3);
    });
    assert!(guard.flush());
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    assert_eq!(steps.items.len(), 3);
    for summary in &steps.items {
        let step = store.step(summary.id).expect("query").expect("step");
        let error = step.error.clone().unwrap_or_default();
        let expected = match step.name.as_str() {
            "takes_debug_only" => "Debug panicked: boom in Debug",
            _ => "Serialize panicked: boom in Serialize",
        };
        assert_eq!(step.status, xray::model::Status::Error, "{}", step.name);
        assert!(
            error.starts_with("X-Ray could not record this step"),
            "{error}"
        );
        assert!(error.contains(expected), "{error}");
    }
}

#[xray::step(kind = "rank")]
fn attributed(n: u32) -> u32 {
    n
}

#[test]
fn steps_named_at_run_time_keep_their_names_beside_attribute_steps() {
    // `xray::Step` spans share one callsite whatever their names; `#[xray::step]` spans are
    // marked constant and their fields are not compared span by span.
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _run = xray::Execution::start("names").enter();
        for i in 0..3u32 {
            let kind = if i % 2 == 0 { "filter" } else { "llm" };
            xray::Step::start(format!("dynamic_{i}"))
                .kind(kind)
                .enter()
                .finish();
            attributed(i);
        }
    });
    assert!(guard.flush());
    let steps = store
        .find_steps(&StepQuery {
            limit: Some(100),
            ..Default::default()
        })
        .expect("steps");
    let mut got: Vec<(String, Option<String>)> = steps
        .items
        .iter()
        .map(|s| (s.name.clone(), s.kind.clone()))
        .collect();
    got.sort();
    let want = |name: &str, kind: &str| (name.to_owned(), Some(kind.to_owned()));
    assert_eq!(
        got,
        [
            want("attributed", "rank"),
            want("attributed", "rank"),
            want("attributed", "rank"),
            want("dynamic_0", "filter"),
            want("dynamic_1", "llm"),
            want("dynamic_2", "filter"),
        ]
    );
}
