//! What a step costs the application thread, beside `#[tracing::instrument]` with a fmt layer
//! and with tracing-opentelemetry.
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
//! | `otel/root` | `#[tracing::instrument]` | `registry().with(tracing_opentelemetry::layer().with_tracer(tracer))`, the SDK tracer with a `SimpleSpanProcessor` and [`NullExporter`] |
//! | `otel/nested` | the same, inside an entered `info_span!` (the same trace) | the same |
//!
//! The OpenTelemetry peer keeps the layer's and the SDK's defaults (parent-based always-on
//! sampler, random ids, thread and code-location attributes, busy/idle times). Its
//! `SimpleSpanProcessor` exports each span as it ends, on the calling thread, to an exporter
//! that counts the spans and drops them there: no tokio runtime, no batch thread. So the whole
//! cost of an OpenTelemetry span, up to the hand-off to a real exporter, is on the timed thread.
//!
//! The X-Ray layer writes to a [`NullStore`] (it discards batches) so that the writer thread,
//! which runs beside the benchmark on the other core as it would in a program, keeps up:
//! every sample ends with `guard.flush()` (not timed) and asserts that nothing was dropped, so
//! a full queue cannot make a step look cheaper than it is.
//!
//! On one core's two hyperthreads (where the host puts this machine's two CPUs now and then,
//! see [`xray_benches::cores`]), that writer shares the benchmark's core, and `xray_step`
//! costs ~1.8× what it costs on two cores: the program prints where the CPUs were before and
//! after each `xray_step` variant. `step_ratio` splits its rounds by placement.
//!
//! The disabled variants run first: tracing caches a callsite's interest, and once a
//! subscriber has existed a callsite is no longer "never enabled".

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing_subscriber::prelude::*;
use xray_benches::cores::{self, Placement};
use xray_benches::{
    instrumented_filter, reference_query, timed_xray_steps, work, xray_filter, NullStore, Query,
};

#[inline(never)]
fn bare(query: &Query) -> u64 {
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

/// An OpenTelemetry span exporter that counts the spans it is given and drops them.
#[derive(Debug)]
struct NullExporter {
    spans: Arc<AtomicU64>,
}

impl SpanExporter for NullExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(batch);
        std::future::ready(Ok(()))
    }
}

/// A tracing-opentelemetry subscriber over the SDK tracer, exporting each span as it ends to a
/// [`NullExporter`]; with the provider and the exporter's span count.
fn otel_dispatch() -> (tracing::Dispatch, SdkTracerProvider, Arc<AtomicU64>) {
    let spans = Arc::new(AtomicU64::new(0));
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(NullExporter {
            spans: Arc::clone(&spans),
        })
        .build();
    let tracer = provider.tracer("xray-benches");
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
    );
    (dispatch, provider, spans)
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
        let before = Placement::of(cores::probe());
        group.bench_function(BenchmarkId::new("xray_step", name), |b| {
            tracing::dispatcher::with_default(&dispatch, || {
                b.iter_custom(|iters| timed_xray_steps(iters, &query, nested, &guard))
            })
        });
        let after = Placement::of(cores::probe());
        let stats = guard.stats();
        // (Nothing sent: a filter argument left this variant out.)
        if stats.sent > 0 {
            eprintln!(
                "  xray_step/{name}: {} records sent, {} written to the null store, {} dropped; \
                 the CPUs on {before} before, on {after} after",
                stats.sent,
                store.records(),
                stats.dropped
            );
        }
        group.bench_function(BenchmarkId::new("instrument_fmt", name), |b| {
            tracing::dispatcher::with_default(&fmt, || {
                let _parent = nested.then(|| tracing::info_span!("bench").entered());
                b.iter(|| instrumented_filter(black_box(&query)))
            })
        });
        let (otel, provider, spans) = otel_dispatch();
        group.bench_function(BenchmarkId::new("otel", name), |b| {
            tracing::dispatcher::with_default(&otel, || {
                let _parent = nested.then(|| tracing::info_span!("bench").entered());
                b.iter(|| instrumented_filter(black_box(&query)))
            })
        });
        drop(otel);
        provider
            .shutdown()
            .expect("the OpenTelemetry provider shuts down");
        eprintln!(
            "  otel/{name}: {} spans exported to the null exporter",
            spans.load(Ordering::Relaxed)
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = xray_benches::criterion_config();
    targets = step
}
criterion_main!(benches);
