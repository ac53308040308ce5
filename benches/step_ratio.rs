//! The step's cost as a ratio to `#[tracing::instrument]` + fmt, measured in interleaved rounds.
//!
//! `cargo bench -p xray-benches --bench step_ratio`
//!
//! On a shared 2-core machine, `step_overhead`'s figures for X-Ray and for its peer are taken
//! seconds apart, and the load moves them by ±20% in between: their ratio is noise-bound. Here
//! both run in alternating rounds of [`STEPS`] steps (X-Ray, then the peer, [`ROUNDS`] times), so
//! a burst of load falls on both; each round gives one ratio, and the program prints the
//! median ratio with its quartiles, and the median time per step of each.
//!
//! The variants are `step_overhead`'s: `nested` (inside an entered execution, or an entered
//! span for the peer) and `root` (a step with no execution above it). X-Ray writes to a
//! [`NullStore`]; between rounds (not timed) the writer catches up, and every round checks that
//! nothing was dropped. `XRAY_BENCH_ROUNDS` sets the number of rounds; `XRAY_BENCH_QUEUE` the
//! layer's queue capacity (default: the layer's own, [`xray::DEFAULT_QUEUE_CAPACITY`]).
//!
//! The program also prints the CPU time X-Ray's writer thread spent per step over the rounds
//! (turning the records into JSON and handing them to the store), which the ratio leaves out:
//! it is not the step's thread's time.
//!
//! Each round also times two floors of a step ([`xray_benches::floor`]): the same span with its
//! arguments' and output's JSON and two clock reads, nothing else, through the registry alone
//! (`floor`) and with a layer that keeps a value in the span's extensions (`floor+ext`). Their
//! ratios to the peer say how much of the goal is left for what a step does beyond that.
//!
//! Before and after each round, [`xray_benches::cores::probe`] asks where the host runs the
//! machine's two CPUs, and the program prints the median ratio of the rounds on two cores apart
//! from those on one core's two hyperthreads. On one core, X-Ray's writer (catching up beside
//! the flood of steps) takes part of the core the steps run on, which the peer, with no thread
//! of its own, never pays. `XRAY_BENCH_DEFER_WRITER=1` shows how much of a round that is: the
//! writer then runs only between rounds (lanes of 65,536 records, batches of 2^20, a flush
//! interval of 30 s; a diagnostic, not a setting to run with).
//!
//! Each round also times a prototype of a leaner recording ([`xray_benches::lean`]): start and
//! end records, ids, the parent link and the JSON written into blocks the thread owns, handed
//! to a writer thread a block at a time. Its ratio says whether the goal is reachable by a
//! layer built that way.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;
use xray_benches::cores::{self, Placement};
use xray_benches::floor::{floor_dispatch, floor_filter};
use xray_benches::lean::{lean_dispatch, lean_execution, lean_filter};
use xray_benches::{instrumented_filter, reference_query, timed_xray_steps, NullStore, Query};

/// Steps per round.
const STEPS: u32 = 2_000;
/// Rounds of each variant (each: X-Ray, then the peer).
const ROUNDS: usize = 300;

fn peer_round(query: &Query, nested: bool) -> Duration {
    let parent = nested.then(|| tracing::info_span!("bench").entered());
    let start = Instant::now();
    for _ in 0..STEPS {
        black_box(instrumented_filter(black_box(query)));
    }
    let elapsed = start.elapsed();
    drop(parent);
    elapsed
}

fn lean_round(query: &Query, nested: bool) -> Duration {
    let parent = nested.then(lean_execution);
    let start = Instant::now();
    for _ in 0..STEPS {
        black_box(lean_filter(black_box(query)));
    }
    let elapsed = start.elapsed();
    drop(parent);
    elapsed
}

fn floor_round(query: &Query, nested: bool) -> Duration {
    let parent = nested.then(|| tracing::info_span!("bench").entered());
    let start = Instant::now();
    for _ in 0..STEPS {
        black_box(floor_filter(black_box(query)));
    }
    let elapsed = start.elapsed();
    drop(parent);
    elapsed
}

/// The value at quantile `q` of sorted `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    values[((values.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, when given, picks a variant.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rounds = std::env::var("XRAY_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let query = reference_query();
    let store = Arc::new(NullStore::new());
    // The queue a layer has by default, unless `XRAY_BENCH_QUEUE` says otherwise (a round's
    // records fit in it: the writer catches up between rounds).
    let queue = std::env::var("XRAY_BENCH_QUEUE")
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or(xray::DEFAULT_QUEUE_CAPACITY);
    let mut builder = xray::layer()
        .store(Arc::clone(&store) as Arc<dyn xray::store::Store>)
        .queue_capacity(queue);
    let defer = std::env::var_os("XRAY_BENCH_DEFER_WRITER").is_some_and(|v| v == "1");
    if defer {
        // No wake-up within a round: a lane holds 4 MB, and a batch more than a round.
        builder = builder
            .queue_capacity(65_536)
            .batch_size(1 << 20)
            .flush_interval(Duration::from_secs(30));
    }
    let (layer, guard) = builder.build().expect("the layer builds");
    let xray = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let fmt = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
    );
    let floors = [floor_dispatch(false), floor_dispatch(true)];
    let (lean, lean_counts) = lean_dispatch();
    println!(
        "step_ratio: {rounds} rounds of {STEPS} steps each: X-Ray, #[instrument] + fmt, then \
         the two floors and the lean prototype{}",
        if defer {
            " (the writer deferred to between rounds)"
        } else {
            ""
        }
    );
    for (name, nested) in [("nested", true), ("root", false)] {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        // Warm up both (thread-locals, recycled memory, the registry's slab).
        for _ in 0..20 {
            tracing::dispatcher::with_default(&xray, || {
                timed_xray_steps(STEPS.into(), &query, nested, &guard)
            });
            tracing::dispatcher::with_default(&fmt, || peer_round(&query, nested));
            for floor in &floors {
                tracing::dispatcher::with_default(floor, || floor_round(&query, nested));
            }
            tracing::dispatcher::with_default(&lean, || lean_round(&query, nested));
        }
        let (mut ratios, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        let mut floor_ratios = [Vec::new(), Vec::new()];
        let mut lean_ratios = Vec::new();
        let writer_before = xray_benches::writer_cpu();
        let mut placed = Vec::new();
        for _ in 0..rounds {
            let before = Placement::of(cores::probe());
            let x = tracing::dispatcher::with_default(&xray, || {
                timed_xray_steps(STEPS.into(), &query, nested, &guard)
            });
            let p = tracing::dispatcher::with_default(&fmt, || peer_round(&query, nested));
            let (x, p) = (
                x.as_nanos() as f64 / f64::from(STEPS),
                p.as_nanos() as f64 / f64::from(STEPS),
            );
            for (floor, ratios) in floors.iter().zip(floor_ratios.iter_mut()) {
                let f = tracing::dispatcher::with_default(floor, || floor_round(&query, nested));
                ratios.push(f.as_nanos() as f64 / f64::from(STEPS) / p);
            }
            let l = tracing::dispatcher::with_default(&lean, || lean_round(&query, nested));
            lean_ratios.push(l.as_nanos() as f64 / f64::from(STEPS) / p);
            ratios.push(x / p);
            ours.push(x);
            theirs.push(p);
            let after = Placement::of(cores::probe());
            placed.push(((before == after).then_some(before), x / p));
        }
        // The writer's CPU time over the rounds (it catches up within each): what a step
        // costs besides its own thread's time, not in the ratio.
        let writer = writer_before
            .zip(xray_benches::writer_cpu())
            .map(|(before, after)| {
                (after - before).as_nanos() as f64 / (rounds as f64 * f64::from(STEPS))
            });
        let [floor, floor_ext] = &mut floor_ratios;
        for v in [
            &mut ratios,
            &mut ours,
            &mut theirs,
            floor,
            floor_ext,
            &mut lean_ratios,
        ] {
            v.sort_by(f64::total_cmp);
        }
        println!(
            "{name:>6}: X-Ray / instrument+fmt = {:.2}x (quartiles {:.2}..{:.2}); X-Ray {:.0} ns, \
             instrument+fmt {:.0} ns per step (medians)",
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
            quantile(&ours, 0.5),
            quantile(&theirs, 0.5),
        );
        for placement in [Placement::OwnCores, Placement::OneCore] {
            let mut these: Vec<f64> = placed
                .iter()
                .filter(|(p, _)| *p == Some(placement))
                .map(|(_, ratio)| *ratio)
                .collect();
            these.sort_by(f64::total_cmp);
            if these.is_empty() {
                println!("        rounds on {placement}: none");
            } else {
                println!(
                    "        rounds on {placement}: {} of {rounds}, ratio {:.2}x (quartiles \
                     {:.2}..{:.2})",
                    these.len(),
                    quantile(&these, 0.5),
                    quantile(&these, 0.25),
                    quantile(&these, 0.75),
                );
            }
        }
        if let Some(writer) = writer {
            println!(
                "        X-Ray's writer thread: {writer:.0} ns of CPU per step, off the step's \
                 thread (/proc, 10 ms ticks)"
            );
        }
        println!(
            "        floors / instrument+fmt: span + JSON + clock = {:.2}x (quartiles {:.2}..{:.2}); \
             the same + extensions = {:.2}x ({:.2}..{:.2})",
            quantile(floor, 0.5),
            quantile(floor, 0.25),
            quantile(floor, 0.75),
            quantile(floor_ext, 0.5),
            quantile(floor_ext, 0.25),
            quantile(floor_ext, 0.75),
        );
        println!(
            "        lean prototype (records into thread-owned blocks) / instrument+fmt = {:.2}x \
             (quartiles {:.2}..{:.2})",
            quantile(&lean_ratios, 0.5),
            quantile(&lean_ratios, 0.25),
            quantile(&lean_ratios, 0.75),
        );
    }
    println!("  ({} records written to the null store)", store.records());
    println!(
        "  (lean prototype: {} records decoded by its writer, {} blocks dropped)",
        lean_counts
            .records
            .load(std::sync::atomic::Ordering::Relaxed),
        lean_counts
            .dropped_blocks
            .load(std::sync::atomic::Ordering::Relaxed),
    );
}
