//! Execution sampling (`Builder::sample`, `XRAY_SAMPLE`): a run is recorded whole or not at all,
//! and a run left out serializes nothing and sends nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;
use xray::store::{ExecutionQuery, ExecutionSummary, Page, StepQuery, Store};

/// A value whose `Serialize` counts its calls (one counter per test: tests run in parallel).
struct Counted<'a>(&'a AtomicUsize);

impl serde::Serialize for Counted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        s.serialize_str("counted")
    }
}

#[xray::step(kind = "filter")]
fn judge(items: &[u32], probe: &Counted<'_>) -> usize {
    tracing::info!(items = items.len(), "judging");
    let kept = items
        .iter()
        .filter(|&&i| {
            xray::evaluate(i)
                .check("even", i % 2 == 0, || format!("{i} is odd"))
                .passed()
        })
        .count();
    kept + pick(probe)
}

#[xray::step(kind = "select")]
fn pick(probe: &Counted<'_>) -> usize {
    let _ = probe;
    xray::select("2", "the first even one");
    xray::current_step().reasoning("no other was even");
    1
}

#[xray::execution(name = "sampled_run")]
fn run(i: u32, probe: &Counted<'_>) -> usize {
    judge(&[1, 2, 3, i], probe)
}

/// A layer that records `share` of the runs into memory, with its guard and store.
fn sampling(share: f64) -> (xray::XRayLayer, xray::XRayGuard, Arc<dyn Store>) {
    xray::layer()
        .memory()
        .sample(share)
        .build_with_store()
        .expect("build")
}

/// Every run `store` holds.
fn recorded_runs(store: &dyn Store) -> Vec<ExecutionSummary> {
    all(|cursor| {
        store
            .list_executions(&ExecutionQuery {
                cursor,
                ..Default::default()
            })
            .expect("runs")
    })
}

fn all<T>(mut next: impl FnMut(Option<String>) -> Page<T>) -> Vec<T> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = next(cursor);
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn sampling_nothing_records_and_serializes_nothing() {
    let calls = AtomicUsize::new(0);
    let (layer, guard, store) = sampling(0.0);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..50 {
            assert_eq!(run(i, &Counted(&calls)), 1 + usize::from(i % 2 == 0) + 1);
            // A step with no execution above it starts one of its own: left out too.
            judge(&[i], &Counted(&calls));
        }
    });
    assert!(guard.flush_timeout(Duration::from_secs(30)));
    let stats = guard.stats();
    assert_eq!(stats.sampled_out, 100, "{stats:?}");
    assert_eq!(stats.sent, 0, "{stats:?}");
    assert_eq!(stats.dropped, 0, "nothing counted as lost: {stats:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no argument serialized");
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    assert!(runs.items.is_empty(), "{:?}", runs.items);
    let steps = store.find_steps(&StepQuery::default()).expect("steps");
    assert!(steps.items.is_empty());
}

#[test]
fn a_sampled_run_is_recorded_whole_and_the_others_not_at_all() {
    let calls = AtomicUsize::new(0);
    let (layer, guard, store) = sampling(0.5);
    const RUNS: usize = 400;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..RUNS as u32 {
            run(i, &Counted(&calls));
        }
    });
    assert!(guard.flush_timeout(Duration::from_secs(30)));
    let runs = recorded_runs(&*store);
    let recorded = runs.len();
    // Binomial(400, 0.5): mean 200, standard deviation 10.
    assert!(
        (120..=280).contains(&recorded),
        "{recorded} of {RUNS} recorded"
    );
    let stats = guard.stats();
    assert_eq!(stats.sampled_out as usize, RUNS - recorded, "{stats:?}");
    // Each recorded run: its start and end, two steps' starts and ends. Nothing else sent.
    assert_eq!(stats.sent as usize, 6 * recorded, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    // The run's input, and each step's: serialized for the recorded runs only.
    assert_eq!(calls.load(Ordering::SeqCst), 3 * recorded);
    for summary in &runs {
        assert_eq!(summary.name, "sampled_run");
        let run = store
            .execution(summary.id)
            .expect("the run")
            .expect("it exists");
        let names: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["judge", "pick"], "the whole run");
        assert_eq!(run.steps[1].parent_id, Some(run.steps[0].id));
        assert!(run.input.is_some());
        let judge = store
            .step(run.steps[0].id)
            .expect("the step")
            .expect("it exists");
        assert_eq!(judge.logs.len(), 1, "its log line");
        assert_eq!(
            judge.summary.as_ref().map(|s| s.total),
            Some(4),
            "its evaluations"
        );
        let pick = store
            .step(run.steps[1].id)
            .expect("the step")
            .expect("it exists");
        assert_eq!(pick.selection.len(), 1);
        assert_eq!(pick.reasoning.as_deref(), Some("no other was even"));
    }
}

#[test]
fn xray_sample_is_read_from_the_environment_and_checked() {
    let env =
        |value: &'static str| move |key: &str| (key == "XRAY_SAMPLE").then(|| value.to_owned());
    for bad in ["2", "-0.1", "half", "NaN"] {
        match xray::layer().memory().with_env(env(bad)).build() {
            Err(xray::Error::Env { var, .. }) => assert_eq!(var, "XRAY_SAMPLE", "{bad}"),
            other => panic!("XRAY_SAMPLE={bad} was accepted: {:?}", other.map(|_| ())),
        }
    }
    let calls = AtomicUsize::new(0);
    let (layer, guard) = xray::layer()
        .memory()
        .with_env(env("0"))
        .build()
        .expect("XRAY_SAMPLE=0 is valid");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        run(1, &Counted(&calls));
    });
    assert_eq!(guard.stats().sampled_out, 1, "read from the environment");
    // A NaN share in code records everything (the default), as documented.
    let (layer, guard) = xray::layer()
        .memory()
        .sample(f64::NAN)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        run(1, &Counted(&calls));
    });
    assert_eq!(guard.stats().sampled_out, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[xray::execution(name = "inner_run")]
fn inner_run(probe: &Counted<'_>) -> usize {
    plain_helper(probe)
}

/// A plain `tracing` span between a run and its step: the step's X-Ray parent is found through
/// the registry, not the thread's stack.
#[tracing::instrument(skip_all)]
fn plain_helper(probe: &Counted<'_>) -> usize {
    pick(probe)
}

#[xray::step(kind = "filter")]
fn outer_step(probe: &Counted<'_>) -> usize {
    let handle = xray::current_step();
    // A worker, as with rayon: its own thread, recording through the handle.
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let on_worker = std::thread::scope(|s| {
        s.spawn(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                (format!("{handle:?}"), handle.in_scope(|| pick(probe)))
            })
        })
        .join()
    });
    // On this thread, a run started inside the handle's scope.
    let nested = handle.in_scope(|| inner_run(probe));
    on_worker.map_or(0, |(_, n)| n) + nested
}

#[xray::execution(name = "outer_run")]
fn outer_run(probe: &Counted<'_>) -> usize {
    outer_step(probe)
}

/// A handle taken in a run left out is inert, and a step started in its `in_scope` (on a
/// worker thread, or under a run started there) is left out with the run: it is never recorded
/// as a run of its own, nor filed under another run's step. A run started inside another run
/// follows that run's sampling decision: the work of one run is recorded whole or not at all.
#[test]
fn steps_in_a_handles_scope_follow_the_run_they_are_in() {
    let calls = AtomicUsize::new(0);
    let (layer, guard, store) = sampling(0.5);
    const RUNS: usize = 200;
    let handle_debug = std::sync::Mutex::new(Vec::new());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..RUNS {
            outer_run(&Counted(&calls));
            let handle = xray::current_step();
            if let Ok(mut seen) = handle_debug.lock() {
                seen.push(format!("{handle:?}"));
            }
        }
    });
    assert!(guard.flush_timeout(Duration::from_secs(30)));
    let runs = recorded_runs(&*store);
    let (mut outer, mut inner) = (0, 0);
    for summary in &runs {
        let run = store
            .execution(summary.id)
            .expect("the run")
            .expect("it exists");
        let names: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
        match summary.name.as_str() {
            // The worker's `pick` is the outer step's child; the inner run's `pick` is not.
            "outer_run" => {
                outer += 1;
                assert_eq!(names, ["outer_step", "pick"], "{}", summary.id);
                assert_eq!(run.steps[1].parent_id, Some(run.steps[0].id));
            }
            "inner_run" => {
                inner += 1;
                assert_eq!(names, ["pick"], "{}", summary.id);
            }
            other => panic!("a run of its own: {other}"),
        }
    }
    // Outer runs recorded and left out (Binomial(200, 0.5)); each inner run with its outer one.
    assert!((50..=150).contains(&outer), "{outer} outer runs recorded");
    assert_eq!(
        inner, outer,
        "an inner run is recorded exactly when its outer run is"
    );
    // One decision per outer run, counted once: an inner run left out with it is not another.
    let stats = guard.stats();
    assert_eq!(stats.sampled_out as usize + outer, RUNS, "{stats:?}");
    assert!(
        handle_debug
            .lock()
            .map(|seen| seen.iter().all(|d| d == "StepHandle(inert)"))
            .unwrap_or(false),
        "outside any step the handle is inert"
    );
}

#[test]
fn a_handle_in_a_run_left_out_says_so() {
    let (layer, guard) = xray::layer().memory().sample(0.0).build().expect("build");
    let calls = AtomicUsize::new(0);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        #[xray::execution(name = "left_out")]
        fn left_out() -> String {
            let handle = xray::current_step();
            assert!(!handle.is_recording());
            format!("{handle:?}")
        }
        #[xray::step]
        fn step_in_left_out() -> String {
            let handle = xray::current_step();
            assert!(!handle.is_recording());
            format!("{handle:?}")
        }
        #[xray::execution(name = "left_out_with_a_step")]
        fn left_out_with_a_step() -> String {
            step_in_left_out()
        }
        assert_eq!(
            left_out(),
            "StepHandle(sampled out)",
            "in the run, outside its steps"
        );
        assert_eq!(left_out_with_a_step(), "StepHandle(sampled out)");
        // The worker pattern in a run left out: nothing recorded, and one run counted: the
        // run started in its step's scope is left out with it, not counted again.
        outer_run(&Counted(&calls));
    });
    let stats = guard.stats();
    assert_eq!(stats.sampled_out, 3, "{stats:?}");
    assert_eq!(stats.sent, 0, "{stats:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn the_runs_sampling_left_out_are_counted_in_the_database() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("xray.db");
    let calls = AtomicUsize::new(0);
    let (layer, guard) = xray::layer()
        .sqlite(&path)
        .sample(0.25)
        .build()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..200 {
            run(i, &Counted(&calls));
        }
    });
    let sampled_out = guard.stats().sampled_out;
    drop(guard); // flushes, and reports the counts
    assert!(sampled_out > 0, "some runs were left out");
    // Read back from the file, as the server does: the runs recorded and the count of the rest
    // add up to every run.
    let store = xray::store::SqliteStore::open(&path).expect("reopen");
    let counts = store.recorder_counts().expect("recorder counts");
    assert_eq!(counts.sampled_out, sampled_out, "{counts:?}");
    assert_eq!((counts.dropped, counts.failed), (0, 0), "{counts:?}");
    assert_eq!(
        recorded_runs(&store).len() as u64 + counts.sampled_out,
        200,
        "every run is recorded or counted"
    );
}
