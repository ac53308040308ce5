//! Execution sampling (`Builder::sample`, `XRAY_SAMPLE`): a run is recorded whole or not at all,
//! and a run left out serializes nothing and sends nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tracing_subscriber::prelude::*;
use xray::store::{ExecutionQuery, Page, StepQuery};

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
    let (layer, guard, store) = xray::layer()
        .memory()
        .sample(0.0)
        .build_with_store()
        .expect("build");
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
    let (layer, guard, store) = xray::layer()
        .memory()
        .sample(0.5)
        .build_with_store()
        .expect("build");
    const RUNS: usize = 400;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..RUNS as u32 {
            run(i, &Counted(&calls));
        }
    });
    assert!(guard.flush_timeout(Duration::from_secs(30)));
    let runs = all(|cursor| {
        store
            .list_executions(&ExecutionQuery {
                cursor,
                ..Default::default()
            })
            .expect("runs")
    });
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
