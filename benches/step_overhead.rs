//! What a step costs the application thread, beside `#[tracing::instrument]` with a fmt layer.
//!
//! `cargo bench -p xray-benches --bench step_overhead`
//!
//! Every variant calls the same function body (a few arithmetic operations on a ~170-byte
//! [`Query`]); only its instrumentation differs:
//!
//! | id | instrumentation | subscriber |
//! |---|---|---|
//! | `bare` | none | none |
//! | `xray_no_layer` | `#[xray::step(kind = "filter")]` | none at all (the disabled case) |
//! | `instrument_disabled` | `#[tracing::instrument]` | none at all |
//! | `xray_step/root` | `#[xray::step]`, no execution open: 4 records (execution and step, start and end) | `registry().with(xray)` |
//! | `xray_step/nested` | `#[xray::step]` inside an entered `xray::Execution`: 2 records | `registry().with(xray)` |
//! | `instrument_fmt/root` | `#[tracing::instrument]` | `registry().with(fmt::layer().with_writer(io::sink))` |
//! | `instrument_fmt/nested` | the same, inside an entered `info_span!` | the same |
//!
//! The X-Ray layer writes to a [`NullStore`] (it discards batches) so that the writer thread,
//! which runs beside the benchmark on the other core as it would in a program, keeps up:
//! every sample ends with `guard.flush()` (not timed) and asserts that nothing was dropped, so
//! a full queue cannot make a step look cheaper than it is.
//!
//! The disabled variants run first: tracing caches a callsite's interest, and once a
//! subscriber has existed a callsite is no longer "never enabled".

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;
use xray_benches::{reference_query, NullStore, Query};

/// The body every variant runs.
#[inline(always)]
fn work(query: &Query) -> u64 {
    (query.price * 100.0) as u64 + query.keywords.len() as u64 + u64::from(query.max_results)
}

#[inline(never)]
fn bare(query: &Query) -> u64 {
    work(query)
}

#[xray::step(kind = "filter")]
#[inline(never)]
fn xray_filter(query: &Query) -> u64 {
    work(query)
}

#[tracing::instrument]
#[inline(never)]
fn instrumented_filter(query: &Query) -> u64 {
    work(query)
}

/// An X-Ray subscriber writing to a [`NullStore`], with its guard.
fn xray_dispatch() -> (tracing::Dispatch, xray::XRayGuard, Arc<NullStore>) {
    let store = Arc::new(NullStore::new());
    let (layer, guard) = xray::layer()
        .store(Arc::clone(&store) as Arc<dyn xray::store::Store>)
        .queue_capacity(1 << 20)
        .build()
        .expect("the layer builds");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    (dispatch, guard, store)
}

/// Times `iters` steps (inside an entered execution when `nested`), then (not timed) waits for
/// the writer and checks that nothing was dropped.
fn xray_sample(iters: u64, query: &Query, nested: bool, guard: &xray::XRayGuard) -> Duration {
    let run = nested.then(|| xray::Execution::start("bench").enter());
    let start = Instant::now();
    for _ in 0..iters {
        black_box(xray_filter(black_box(query)));
    }
    let elapsed = start.elapsed();
    drop(run);
    assert!(
        guard.flush_timeout(Duration::from_secs(60)),
        "the writer did not catch up"
    );
    let stats = guard.stats();
    assert_eq!(stats.dropped, 0, "records were dropped: {stats:?}");
    assert_eq!(stats.failed, 0, "records failed: {stats:?}");
    elapsed
}

fn step(c: &mut Criterion) {
    let query = reference_query();
    let mut group = c.benchmark_group("step");
    group.bench_function("bare", |b| b.iter(|| bare(black_box(&query))));
    // No subscriber has existed yet in this process: the disabled case is the real one.
    group.bench_function("xray_no_layer", |b| {
        b.iter(|| xray_filter(black_box(&query)))
    });
    group.bench_function("instrument_disabled", |b| {
        b.iter(|| instrumented_filter(black_box(&query)))
    });

    let fmt = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    );
    for (name, nested) in [("root", false), ("nested", true)] {
        let (dispatch, guard, store) = xray_dispatch();
        group.bench_function(BenchmarkId::new("xray_step", name), |b| {
            tracing::dispatcher::with_default(&dispatch, || {
                b.iter_custom(|iters| xray_sample(iters, &query, nested, &guard))
            })
        });
        let stats = guard.stats();
        eprintln!(
            "  xray_step/{name}: {} records sent, {} written to the null store, {} dropped",
            stats.sent,
            store.records(),
            stats.dropped
        );
        group.bench_function(BenchmarkId::new("instrument_fmt", name), |b| {
            tracing::dispatcher::with_default(&fmt, || {
                let _parent = nested.then(|| tracing::info_span!("bench").entered());
                b.iter(|| instrumented_filter(black_box(&query)))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = xray_benches::criterion_config();
    targets = step
}
criterion_main!(benches);
