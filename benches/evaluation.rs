//! What one `xray::evaluate(..)…passed()` costs the application thread, beside a
//! `tracing::info!` event through a fmt layer.
//!
//! `cargo bench -p xray-benches --bench evaluation`
//!
//! | id | per iteration | subscriber |
//! |---|---|---|
//! | `xray_no_layer` | the evaluation below, with no subscriber at all (nothing recorded) | none |
//! | `xray_evaluate` | `evaluate(&id).label(&title).check_range(price).check_min(rating).check(category, ok, \|\| format!(..)).passed()` inside an entered step | `registry().with(xray)` |
//! | `xray_evaluate_passing` | the same, with candidates that pass every check (diagnostic: no reason is formatted) | `registry().with(xray)` |
//! | `xray_evaluate_format_args` | the same checks, the free check's reason given as `format_args!(..)` (the lazy form the docs recommend: formatted only on failure, no allocation) | `registry().with(xray)` |
//! | `xray_evaluate_one_check` | `evaluate(&id).check_min(rating).passed()`: the smallest evaluation that says why | `registry().with(xray)` |
//! | `fmt_event` | the same verdict, then `info!(candidate = %id, passed, "evaluated")` inside an entered span | `registry().with(fmt::layer().with_writer(io::sink))` |
//!
//! Candidates cycle through a deterministic 4,096-product catalog; about a fifth pass, and
//! most fail one or two checks, so reasons are formatted (the benchmark prints the shares). `xray_evaluate` enters a fresh step every 10,000 evaluations (the
//! default capture cap, so every row is kept, not sampled) inside an execution entered for the
//! sample; starting and ending those steps is not timed. The store is a [`NullStore`]: the
//! writer thread still decodes every step's evaluations and applies the capture policy on the
//! other core. To keep memory bounded the benchmark waits (not timed) for the writer whenever
//! more than 64 records are queued, and checks that nothing was dropped.

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;
use xray_benches::{
    catalog, evaluate, evaluate_format_args, evaluate_one_check, reference_query, Filter,
    NullStore, Product,
};

/// Evaluations per step.
const STEP_ROWS: u64 = 10_000;
/// Catalog size (a power of two: the index is masked).
const CATALOG: usize = 4096;

/// One X-Ray benchmark: `evaluate` on `products` (cycled) in steps of [`STEP_ROWS`].
fn xray_evaluate<E: Fn(&Product, &Filter) -> bool>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    products: &[Product],
    filter: &Filter,
    evaluate: E,
) {
    let store = Arc::new(NullStore::new());
    let (layer, guard) = xray::layer()
        .store(Arc::clone(&store) as Arc<dyn xray::store::Store>)
        .queue_capacity(1 << 20)
        .build()
        .expect("the layer builds");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut next = 0usize;
    let (mut evaluations, mut timed_total, mut waited) = (0u64, Duration::ZERO, Duration::ZERO);
    group.bench_function(name, |b| {
        tracing::dispatcher::with_default(&dispatch, || {
            b.iter_custom(|iters| {
                let run = xray::Execution::start("bench").enter();
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(STEP_ROWS);
                    let step = xray::Step::start("filter").kind("filter").enter();
                    let start = Instant::now();
                    for _ in 0..n {
                        let p = &products[next % CATALOG];
                        next += 1;
                        black_box(evaluate(black_box(p), filter));
                    }
                    timed += start.elapsed();
                    drop(step);
                    left -= n;
                    let stats = guard.stats();
                    if stats.sent - stats.written - stats.failed > 64 {
                        let start = Instant::now();
                        guard.flush_timeout(Duration::from_secs(60));
                        waited += start.elapsed();
                    }
                }
                drop(run);
                let start = Instant::now();
                assert!(
                    guard.flush_timeout(Duration::from_secs(60)),
                    "the writer did not catch up"
                );
                waited += start.elapsed();
                let stats = guard.stats();
                assert_eq!(stats.dropped, 0, "records were dropped: {stats:?}");
                assert_eq!(stats.failed, 0, "records failed: {stats:?}");
                evaluations += iters;
                timed_total += timed;
                timed
            })
        })
    });
    assert_eq!(
        store.evaluations(),
        evaluations,
        "every evaluation reached the store"
    );
    eprintln!(
        "  {name}: {evaluations} evaluations reached the null store; {:.2} s timed, plus \
         {:.2} s (not timed) waiting for the writer to decode and summarize them: \
         {:.0} ns per evaluation end to end",
        timed_total.as_secs_f64(),
        waited.as_secs_f64(),
        (timed_total + waited).as_nanos() as f64 / evaluations.max(1) as f64
    );
}

fn evaluation(c: &mut Criterion) {
    let products = catalog(CATALOG, 1);
    let filter = Filter::for_query(&reference_query());
    let kept = products.iter().filter(|p| filter.passes(p)).count();
    let fails = |check: fn(&Filter, &Product) -> bool| {
        products.iter().filter(|p| !check(&filter, p)).count() * 100 / CATALOG
    };
    eprintln!(
        "  catalog: {kept} of {CATALOG} candidates pass; {}% fail price, {}% rating, {}% category",
        fails(Filter::price_ok),
        fails(Filter::rating_ok),
        fails(Filter::category_ok)
    );
    let mut group = c.benchmark_group("evaluation");
    group.throughput(Throughput::Elements(1));

    let mut next = 0usize;
    group.bench_function("xray_no_layer", |b| {
        b.iter(|| {
            let p = &products[next % CATALOG];
            next += 1;
            evaluate(black_box(p), &filter)
        })
    });

    xray_evaluate(&mut group, "xray_evaluate", &products, &filter, evaluate);
    // Diagnostic: the same with candidates that pass every check, so no reason is formatted.
    let passing: Vec<Product> = catalog(CATALOG * 8, 3)
        .into_iter()
        .filter(|p| filter.passes(p))
        .take(CATALOG)
        .collect();
    assert_eq!(passing.len(), CATALOG);
    xray_evaluate(
        &mut group,
        "xray_evaluate_passing",
        &passing,
        &filter,
        evaluate,
    );
    xray_evaluate(
        &mut group,
        "xray_evaluate_format_args",
        &products,
        &filter,
        evaluate_format_args,
    );
    xray_evaluate(
        &mut group,
        "xray_evaluate_one_check",
        &products,
        &filter,
        evaluate_one_check,
    );

    let fmt = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    );
    group.bench_function("fmt_event", |b| {
        tracing::dispatcher::with_default(&fmt, || {
            let _span = tracing::info_span!("filter", kind = "filter").entered();
            b.iter(|| {
                let p = black_box(&products[next % CATALOG]);
                next += 1;
                let passed = filter.passes(p);
                tracing::info!(candidate = %p.asin, passed, "evaluated");
                passed
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = xray_benches::criterion_config();
    targets = evaluation
}
criterion_main!(benches);
