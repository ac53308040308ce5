//! When a `#[xray::step]` function's step ends: as the function returns (or panics), with
//! everything it recorded, even when its span stays open after it; and what the body said
//! explicitly (`xray::input`, `xray::output`) wins over the arguments and the return value.

use std::future::Future;
use std::time::Duration;
use tracing_subscriber::prelude::*;
use xray::model::{Status, StepRecord};
use xray::store::{EvaluationQuery, ExecutionQuery, Store};

/// A filter step that judges `n` candidates on its own thread, and hands its span (a clone of
/// it, as code that keeps `Span::current()` does) to the caller, which keeps it open.
#[xray::step(kind = "filter", skip(keep))]
fn keeps_its_span_open(n: u32, keep: &mut Option<tracing::Span>) -> u32 {
    for i in 0..n {
        xray::evaluate(format!("B0{i}"))
            .check_min("rating", f64::from(i), 1.0)
            .passed();
    }
    *keep = Some(tracing::Span::current());
    n * 10
}

/// How many times an [`Answer`] was serialized.
static ANSWERS_SERIALIZED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A step's return value whose `Serialize` counts its calls.
#[derive(Debug, PartialEq)]
struct Answer(String);

impl serde::Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ANSWERS_SERIALIZED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.serialize(s)
    }
}

#[xray::step(kind = "llm")]
fn says_its_own_input_and_output(query: &str) -> Answer {
    xray::input(&serde_json::json!({ "rewritten": format!("{query}!") }));
    xray::output(&serde_json::json!({ "chosen": "B01" }));
    Answer(format!("raw answer to {query}"))
}

#[xray::step(kind = "llm")]
async fn says_its_own_output_async(query: String) -> Answer {
    xray::output(&serde_json::json!({ "chosen": "B02" }));
    Answer(format!("raw answer to {query}"))
}

#[xray::step(kind = "llm")]
fn answers(query: &str) -> Answer {
    Answer(format!("raw answer to {query}"))
}

/// A step that starts, says so, and ends when `go` says so.
#[xray::step(kind = "llm", skip(started, go))]
fn judges_when_told(
    started: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
) -> u32 {
    let _ = started.send(());
    let _ = go.recv();
    2
}

/// A root step that leaves a step under it running on another thread (a task it spawned and
/// did not wait for): the step under it starts before this one returns, and ends when `go`
/// says so.
#[xray::step(kind = "search", skip(go, done))]
fn fans_out(
    go: std::sync::mpsc::Receiver<()>,
    done: std::sync::mpsc::Sender<u32>,
) -> std::thread::JoinHandle<()> {
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let (started, wait_started) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            span.in_scope(|| {
                let _ = done.send(judges_when_told(started, go));
            });
        });
    });
    let _ = wait_started.recv();
    worker
}

#[xray::step(metadata(first = items[0]))]
fn records_the_first_of(items: Vec<u32>) -> u32 {
    items.len() as u32
}

#[xray::step]
fn panics_after_judging() -> u32 {
    xray::evaluate("B09")
        .check("stock", false, "out of stock")
        .passed();
    panic!("the model returned nothing");
}

/// The steps of the only run in `store`, by name.
fn steps(store: &dyn Store) -> Vec<StepRecord> {
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    let mut steps = Vec::new();
    for run in runs.items {
        let detail = store.execution(run.id).expect("query").expect("the run");
        for summary in detail.steps {
            steps.push(store.step(summary.id).expect("query").expect("the step"));
        }
    }
    steps
}

fn json(value: Option<&xray::model::Json>) -> serde_json::Value {
    serde_json::from_str(value.expect("recorded").as_str()).expect("JSON")
}

#[test]
fn a_step_ends_when_its_function_returns_even_while_its_span_stays_open() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let subscriber = tracing_subscriber::registry().with(layer);
    let mut kept = None;
    tracing::subscriber::with_default(subscriber, || {
        let run = xray::Execution::start("kept").enter();
        assert_eq!(keeps_its_span_open(3, &mut kept), 30);
        let span = kept.as_ref().expect("the step's span");
        assert!(!span.is_disabled(), "the span is still open");
        // Recorded after the step ended, into its still open span: counted, not kept.
        span.in_scope(|| {
            xray::evaluate("B0late").check("late", true, "").passed();
        });
        run.finish();
        assert!(guard.flush_timeout(Duration::from_secs(10)));
        let steps = steps(&*store);
        assert_eq!(steps.len(), 1);
        let step = &steps[0];
        assert_eq!(step.status, Status::Ok, "ended, not running: {step:?}");
        assert!(step.ended_at.is_some());
        assert_eq!(json(step.input.as_ref()), serde_json::json!({ "n": 3 }));
        assert_eq!(json(step.output.as_ref()), serde_json::json!(30));
        let rows = store
            .evaluations(step.id, &EvaluationQuery::default())
            .expect("rows");
        let ids: Vec<&str> = rows.items.iter().map(|e| e.candidate_id.as_str()).collect();
        assert_eq!(ids, ["B00", "B01", "B02"], "the rows made in the function");
        assert_eq!(step.candidates_in, Some(3));
        assert_eq!(step.candidates_out, Some(2), "B00 is below the minimum");
        assert_eq!(guard.stats().dropped, 1, "the late row, counted");
        // Closing the span later records nothing more; the thread's next steps are whole.
        kept = None;
        let run = xray::Execution::start("next").enter();
        assert_eq!(keeps_its_span_open(2, &mut kept), 20);
        kept = None;
        run.finish();
    });
    assert!(guard.flush_timeout(Duration::from_secs(10)));
    let steps = steps(&*store);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps.iter().all(|s| s.status == Status::Ok));
    let mut outputs: Vec<_> = steps.iter().map(|s| json(s.output.as_ref())).collect();
    outputs.sort_by_key(|o| o.as_u64());
    assert_eq!(outputs, [serde_json::json!(20), serde_json::json!(30)]);
    let stats = guard.stats();
    assert_eq!((stats.dropped, stats.failed), (1, 0), "{stats:?}");
    drop(kept);
}

#[test]
fn what_the_body_records_as_input_and_output_wins_over_arguments_and_return_value() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let run = xray::Execution::start("explicit").enter();
        assert_eq!(
            says_its_own_input_and_output("stand").0,
            "raw answer to stand"
        );
        assert_eq!(answers("mount").0, "raw answer to mount");
        let mut future = std::pin::pin!(says_its_own_output_async("case".into()));
        let waker = std::task::Waker::noop();
        let answer = match future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(answer) => answer,
            std::task::Poll::Pending => panic!("the step does not wait"),
        };
        assert_eq!(answer.0, "raw answer to case");
        run.finish();
    });
    assert!(guard.flush_timeout(Duration::from_secs(10)));
    let steps = steps(&*store);
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in {steps:?}"))
    };
    let sync = step("says_its_own_input_and_output");
    assert_eq!(
        json(sync.input.as_ref()),
        serde_json::json!({ "rewritten": "stand!" })
    );
    assert_eq!(
        json(sync.output.as_ref()),
        serde_json::json!({ "chosen": "B01" })
    );
    let not_set = step("says_its_own_output_async");
    assert_eq!(
        json(not_set.input.as_ref()),
        serde_json::json!({ "query": "case" }),
        "the arguments, when the body sets no input"
    );
    assert_eq!(
        json(not_set.output.as_ref()),
        serde_json::json!({ "chosen": "B02" })
    );
    assert_eq!(
        json(step("answers").output.as_ref()),
        serde_json::json!("raw answer to mount"),
        "the returned value, when the body sets no output"
    );
    assert_eq!(
        ANSWERS_SERIALIZED.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a returned value the step does not keep (its body set the output) is not serialized"
    );
}

#[test]
fn a_panicking_step_ends_failed_with_its_rows_and_its_arguments() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let panicked = std::panic::catch_unwind(panics_after_judging);
        assert!(panicked.is_err(), "the panic goes on to the caller");
    });
    assert!(guard.flush_timeout(Duration::from_secs(10)));
    let steps = steps(&*store);
    assert_eq!(steps.len(), 1);
    let step = &steps[0];
    assert_eq!(step.status, Status::Error);
    assert_eq!(
        step.error.as_deref(),
        Some("panicked: the model returned nothing")
    );
    let rows = store
        .evaluations(step.id, &EvaluationQuery::default())
        .expect("rows");
    assert_eq!(rows.items.len(), 1, "the row made before the panic");
    assert_eq!(step.candidates_in, Some(1));
    assert_eq!(
        step.candidates_out, None,
        "ended without a result: no count of what it let through"
    );
    assert_eq!(guard.stats().dropped, 0);
}

/// A root step's run ends with it, unless a step under it outlives its function: then the
/// run ends when the last of them has (its span's close), with the root step's status.
#[test]
fn a_root_steps_run_outlives_it_while_a_step_under_it_runs() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    let subscriber = tracing_subscriber::registry().with(layer);
    let (go, wait_go) = std::sync::mpsc::channel();
    let (done, wait_done) = std::sync::mpsc::channel();
    let dispatch = tracing::Dispatch::new(subscriber);
    let worker = tracing::dispatcher::with_default(&dispatch, || fans_out(wait_go, done));
    assert!(guard.flush_timeout(Duration::from_secs(10)));
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert_eq!(runs.items.len(), 1);
    let run = &runs.items[0];
    assert_eq!(run.completed_at, None, "still running: {run:?}");
    let root = steps(&*store)
        .into_iter()
        .find(|s| s.name == "fans_out")
        .expect("the root step");
    assert_eq!(
        root.status,
        Status::Ok,
        "the root step ended as it returned"
    );
    let _ = go.send(());
    assert_eq!(wait_done.recv_timeout(Duration::from_secs(10)), Ok(2));
    worker.join().expect("the worker ran");
    drop(dispatch);
    assert!(guard.flush_timeout(Duration::from_secs(10)));
    let run = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs")
        .items
        .remove(0);
    let steps = steps(&*store);
    let child = steps
        .iter()
        .find(|s| s.name == "judges_when_told")
        .expect("the step under it");
    assert_eq!(child.parent_id, Some(root.id));
    assert_eq!(child.execution_id, run.id);
    assert_eq!(run.status, Status::Ok, "{run:?}");
    let completed = run.completed_at.expect("ended");
    assert!(
        completed >= child.ended_at.expect("child ended"),
        "the run ends after the step under it: {run:?} {child:?}"
    );
    assert_eq!(guard.stats().dropped, 0);
}

/// An argument's `metadata(..)` expression that panics, before the function runs: the step
/// ends failed, with its arguments.
#[test]
fn a_step_whose_metadata_expression_panics_ends_failed_with_its_arguments() {
    let (layer, guard, store) = xray::layer().memory().build_with_store().expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let panicked = std::panic::catch_unwind(|| records_the_first_of(Vec::new()));
        assert!(panicked.is_err(), "items[0] of nothing");
        assert_eq!(records_the_first_of(vec![7, 8]), 2);
    });
    assert!(guard.flush_timeout(Duration::from_secs(10)));
    let steps = steps(&*store);
    assert_eq!(steps.len(), 2);
    let failed = steps
        .iter()
        .find(|s| s.status == Status::Error)
        .expect("the failed step");
    assert_eq!(
        failed.error.as_deref(),
        Some("panicked while its arguments were recorded")
    );
    assert_eq!(
        json(failed.input.as_ref()),
        serde_json::json!({ "items": [] })
    );
    let ok = steps
        .iter()
        .find(|s| s.status == Status::Ok)
        .expect("the other");
    assert_eq!(json(Some(&ok.metadata)), serde_json::json!({ "first": 7 }));
}
