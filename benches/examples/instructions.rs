//! Instruction counts of a step and of an evaluation, for `valgrind --tool=callgrind`: figures
//! that do not move with the load of a shared machine, where the criterion timings do.
//!
//! ```sh
//! cargo build --profile bench -p xray-benches --example instructions
//! for what in step step_root step_fmt step_fmt_root evaluation evaluation_format_args; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$what --toggle-collect='*measured*' \
//!     target/release/examples/instructions $what
//! done
//! ```
//!
//! Each mode runs the body of the criterion benchmark of the same name (`step_overhead`'s
//! nested step, `evaluation`'s `xray_evaluate`) in a loop, in a function whose name contains
//! `measured`; callgrind counts only inside it ("Collected"), and the program prints the
//! iterations to divide by.
//!
//! | mode | loop | subscriber |
//! |---|---|---|
//! | `step` | `#[xray::step]` inside an entered `xray::Execution` | `registry().with(xray)`, a [`NullStore`] |
//! | `step_sampled_out` | `#[xray::step]` inside an `xray::Execution` that `.sample(0.0)` leaves out | `registry().with(xray)`, a [`NullStore`] |
//! | `step_root` | `#[xray::step]` with no execution above it (each step starts and ends its own) | `registry().with(xray)`, a [`NullStore`] |
//! | `step_lean` | the lean prototype's step (`src/lean.rs`) inside its execution span | `registry().with(LeanLayer)` |
//! | `step_fmt` | `#[tracing::instrument]` inside an entered span | `registry().with(fmt::layer().with_writer(io::sink))` |
//! | `step_fmt_root` | `#[tracing::instrument]` with no span above it | `registry().with(fmt::layer().with_writer(io::sink))` |
//! | `evaluation` | `evaluate(id).label(..)` and three checks, inside an entered step | `registry().with(xray)`, a [`NullStore`] |
//! | `evaluation_format_args` | the same, the free check's reason as `format_args!` | `registry().with(xray)`, a [`NullStore`] |
//! | `evaluation_one_check` | `evaluate(id).check_min(..)` | `registry().with(xray)`, a [`NullStore`] |

use std::hint::black_box;
use std::sync::Arc;
use tracing_subscriber::prelude::*;
use xray_benches::{
    catalog, evaluate, evaluate_format_args, evaluate_one_check, instrumented_filter,
    reference_query, xray_filter, Filter, NullStore, Product, Query,
};

/// Iterations of each loop, unless `XRAY_ITERATIONS` says otherwise (for `perf stat`, which
/// wants seconds of work, where callgrind wants few).
const ITERATIONS: usize = 20_000;

fn iterations() -> usize {
    std::env::var("XRAY_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ITERATIONS)
}

/// Steps measured between two waits for the writer (not measured): under valgrind, which runs
/// one thread at a time, the writer falls behind the loop, and records it has no room for
/// would be refused, which costs less than recording them.
const CHUNK: usize = 1_000;

/// Runs `measured(n)` for [`iterations`] in all, [`CHUNK`] at a time, waiting for the writer
/// behind `guard` in between (outside the measured functions, so callgrind does not count it);
/// then checks that the writer dropped nothing.
fn in_chunks(guard: &xray::XRayGuard, mut measured: impl FnMut(usize) -> u64) -> u64 {
    let mut left = iterations();
    let mut sum = 0;
    while left > 0 {
        let n = left.min(CHUNK);
        left -= n;
        sum += measured(n);
        assert!(guard.flush(), "the writer caught up");
    }
    assert_eq!(guard.stats().dropped, 0, "{:?}", guard.stats());
    sum
}

#[inline(never)]
fn measured_steps(query: &Query, n: usize) -> u64 {
    (0..n).map(|_| xray_filter(black_box(query))).sum()
}

#[inline(never)]
fn measured_lean_steps(query: &Query) -> u64 {
    (0..iterations())
        .map(|_| xray_benches::lean::lean_filter(black_box(query)))
        .sum()
}

#[inline(never)]
fn measured_instrumented(query: &Query) -> u64 {
    (0..iterations())
        .map(|_| instrumented_filter(black_box(query)))
        .sum()
}

#[inline(never)]
fn measured_evaluations(
    products: &[Product],
    f: &Filter,
    evaluate: impl Fn(&Product, &Filter) -> bool,
) -> usize {
    (0..iterations())
        .filter(|i| evaluate(&products[i % products.len()], f))
        .count()
}

fn xray_dispatch() -> (tracing::Dispatch, xray::XRayGuard) {
    xray_dispatch_sampling(1.0)
}

fn xray_dispatch_sampling(share: f64) -> (tracing::Dispatch, xray::XRayGuard) {
    let (layer, guard) = xray::layer()
        .sample(share)
        .store(Arc::new(NullStore::new()) as Arc<dyn xray::store::Store>)
        .queue_capacity(1 << 20)
        .build()
        .expect("the layer builds");
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
    )
}

/// Runs `f`, adding the time it took to `spent`.
fn timed<R>(spent: &mut std::time::Duration, f: impl FnOnce() -> R) -> R {
    let start = std::time::Instant::now();
    let result = f();
    *spent += start.elapsed();
    result
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let query = reference_query();
    // The measured loop's own time (not the program's start, nor the writer's final flush).
    let mut spent = std::time::Duration::ZERO;
    // The writer thread's CPU time, read after its last flush (before the guard stops it).
    let mut writer = None;
    match mode.as_str() {
        "step" => {
            let (dispatch, guard) = xray_dispatch();
            tracing::dispatcher::with_default(&dispatch, || {
                let _run = xray::Execution::start("bench").enter();
                black_box(in_chunks(&guard, |n| {
                    timed(&mut spent, || measured_steps(&query, n))
                }));
            });
            writer = xray_benches::writer_cpu();
        }
        "step_sampled_out" => {
            let (dispatch, guard) = xray_dispatch_sampling(0.0);
            tracing::dispatcher::with_default(&dispatch, || {
                let _run = xray::Execution::start("bench").enter();
                black_box(timed(&mut spent, || measured_steps(&query, iterations())));
            });
            assert!(guard.flush(), "the writer caught up");
            writer = xray_benches::writer_cpu();
            assert_eq!(guard.stats().sampled_out, 1, "{:?}", guard.stats());
        }
        "step_root" => {
            let (dispatch, guard) = xray_dispatch();
            tracing::dispatcher::with_default(&dispatch, || {
                black_box(in_chunks(&guard, |n| {
                    timed(&mut spent, || measured_steps(&query, n))
                }));
            });
            writer = xray_benches::writer_cpu();
        }
        "step_lean" => {
            let (dispatch, _counts) = xray_benches::lean::lean_dispatch();
            tracing::dispatcher::with_default(&dispatch, || {
                let _run = xray_benches::lean::lean_execution();
                black_box(timed(&mut spent, || measured_lean_steps(&query)));
            });
        }
        "step_fmt" | "step_fmt_root" => {
            let fmt = tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
            );
            tracing::dispatcher::with_default(&fmt, || {
                let _parent = (mode == "step_fmt").then(|| tracing::info_span!("bench").entered());
                black_box(timed(&mut spent, || measured_instrumented(&query)));
            });
        }
        "evaluation" | "evaluation_format_args" | "evaluation_one_check" => {
            let evaluate = match mode.as_str() {
                "evaluation" => evaluate,
                "evaluation_format_args" => evaluate_format_args,
                _ => evaluate_one_check,
            };
            let products = catalog(4096, 1);
            let filter = Filter::for_query(&query);
            let (dispatch, guard) = xray_dispatch();
            tracing::dispatcher::with_default(&dispatch, || {
                let _run = xray::Execution::start("bench").enter();
                let _step = xray::Step::start("filter").kind("filter").enter();
                black_box(timed(&mut spent, || {
                    measured_evaluations(&products, &filter, evaluate)
                }));
            });
            assert!(guard.flush(), "the writer caught up");
            writer = xray_benches::writer_cpu();
        }
        _ => {
            eprintln!(
                "usage: instructions step|step_root|step_sampled_out|step_lean|step_fmt|step_fmt_root|evaluation|evaluation_format_args|evaluation_one_check"
            );
            std::process::exit(2);
        }
    }
    let n = iterations();
    println!(
        "{mode}: {n} iterations, {:.0} ns each (the loop alone, timed; under callgrind, ignore it)",
        spent.as_nanos() as f64 / n as f64
    );
    if let Some(writer) = writer {
        println!(
            "  the writer thread's CPU time: {:.0} ns per iteration ({} ms in all, 10 ms ticks)",
            writer.as_nanos() as f64 / n as f64,
            writer.as_millis()
        );
    }
}
