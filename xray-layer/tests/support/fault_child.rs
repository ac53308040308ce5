//! `xray-fault-child`: the instrumented program that the fault tests (`tests/faults/`) run in a
//! child process, so that a fault (SIGKILL, a locked or full disk, a deleted file, a panic) hits a
//! real program with the real layer, SQLite file and writer thread. Not part of X-Ray's API.
//!
//! It records one step (`judge`: ten evaluations) in a loop and reports on stdout, one fact per
//! line, `word key=value …`:
//!
//! | line | when |
//! |---|---|
//! | `ready pid=… rss_kb=…` | the layer is installed (or `build-error message=…`, exit code 2) |
//! | `done i=…` | after every step, with `--print-each` |
//! | `progress t_us=… steps=… max_us=… sent=… written=… dropped=… failed=…` | every `--progress-ms` |
//! | `write-error records=… error=…` | the writer could not write a batch (`on_write_error`) |
//! | `app …` | what the program itself does, with or without X-Ray (the panic tests compare them) |
//! | `final steps=… sent=… written=… dropped=… failed=… hook_panics=… shutdown_us=… hwm_kb=…` | at exit |
//!
//! Options (`--name value`): `db` (path), `steps` (per thread; 0 runs until stdin says `stop` or
//! closes), `threads`, `pace-us` (time between a thread's steps; 0 is as fast as possible),
//! `queue`, `flush-ms`, `shutdown-ms`, `block` (blocking backpressure), `progress-ms` (0: no progress lines, and
//! a single thread runs on the main thread), `print-each`, `no-xray` (do not install the layer),
//! `panic` (`step`, `step-caught`, `hook`, `processor`, `serialize`) with `panic-at` (a step index).

use serde::{Serialize, Serializer};
use std::io::{BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing_subscriber::prelude::*;
use xray::XRayGuard;

/// Where a panic is injected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PanicIn {
    /// Inside the step's body; nothing catches it (the program dies, as it would without X-Ray).
    Step,
    /// Inside the step's body; the program catches it and goes on.
    StepCaught,
    /// In an `on_step_end` hook (writer thread).
    Hook,
    /// In a processor (writer thread).
    Processor,
    /// In the `Serialize` impl of the step's argument and return value.
    Serialize,
}

#[derive(Debug)]
struct Options {
    db: String,
    steps: u64,
    threads: u64,
    pace_us: u64,
    queue: Option<usize>,
    flush_ms: Option<u64>,
    shutdown_ms: Option<u64>,
    block: bool,
    progress_ms: u64,
    print_each: bool,
    xray: bool,
    panic: Option<PanicIn>,
    panic_at: u64,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        db: "xray.db".into(),
        steps: 0,
        threads: 1,
        pace_us: 0,
        queue: None,
        flush_ms: None,
        shutdown_ms: None,
        block: false,
        progress_ms: 100,
        print_each: false,
        xray: true,
        panic: None,
        panic_at: u64::MAX,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--db" => o.db = value()?,
            "--steps" => o.steps = number(value()?)?,
            "--threads" => o.threads = number(value()?)?.max(1),
            "--pace-us" => o.pace_us = number(value()?)?,
            "--queue" => o.queue = Some(number(value()?)? as usize),
            "--flush-ms" => o.flush_ms = Some(number(value()?)?),
            "--shutdown-ms" => o.shutdown_ms = Some(number(value()?)?),
            "--progress-ms" => o.progress_ms = number(value()?)?,
            "--panic-at" => o.panic_at = number(value()?)?,
            "--block" => o.block = true,
            "--print-each" => o.print_each = true,
            "--no-xray" => o.xray = false,
            "--panic" => {
                o.panic = Some(match value()?.as_str() {
                    "step" => PanicIn::Step,
                    "step-caught" => PanicIn::StepCaught,
                    "hook" => PanicIn::Hook,
                    "processor" => PanicIn::Processor,
                    "serialize" => PanicIn::Serialize,
                    other => return Err(format!("unknown --panic {other}")),
                })
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// One line on stdout. Errors are ignored: the test may have stopped reading.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// A candidate batch whose `Serialize` panics for one step (with `--panic serialize`).
#[derive(Debug)]
struct Item {
    i: u64,
    panics: bool,
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.panics {
            panic!("Serialize of item {} panicked", self.i);
        }
        s.serialize_u64(self.i)
    }
}

#[xray::step(kind = "filter")]
fn judge(i: u64, item: Item, panics: bool) -> Item {
    if panics {
        panic!("step {i} panicked");
    }
    for c in 0..10u64 {
        xray::evaluate(format_args!("{i}-{c}"))
            .check("even", c % 2 == 0, "odd")
            .record();
    }
    item
}

/// Counters shared by the stepping threads and the reporter.
struct Shared {
    stop: AtomicBool,
    steps: AtomicU64,
    /// Slowest step since the last progress line, in ns.
    window_max_ns: AtomicU64,
    max_ns: AtomicU64,
    /// Step durations by power of two of ns.
    histogram: [AtomicU64; 48],
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            stop: AtomicBool::new(false),
            steps: AtomicU64::new(0),
            window_max_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            histogram: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Shared {
    fn percentile(&self, p: f64) -> u64 {
        let counts: Vec<u64> = self
            .histogram
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let target = (total as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (bucket, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= target && *n > 0 {
                // The bucket's upper bound, in µs.
                return (1u64 << bucket) / 1000;
            }
        }
        0
    }
}

fn run_steps(thread: u64, o: &Options, shared: &Shared) {
    let started = Instant::now();
    let mut k = 0u64;
    while (o.steps == 0 || k < o.steps) && !shared.stop.load(Ordering::Relaxed) {
        let i = k * o.threads + thread;
        let at = i == o.panic_at;
        let item = Item {
            i,
            panics: at && o.panic == Some(PanicIn::Serialize),
        };
        let panics = at && matches!(o.panic, Some(PanicIn::Step | PanicIn::StepCaught));
        let before = Instant::now();
        if o.panic == Some(PanicIn::StepCaught) {
            match catch_unwind(AssertUnwindSafe(|| judge(i, item, panics))) {
                Ok(out) => assert_eq!(out.i, i),
                Err(payload) => say(format_args!(
                    "app caught i={i} message={}",
                    payload.downcast_ref::<String>().map_or("?", String::as_str)
                )),
            }
        } else {
            let out = judge(i, item, panics);
            assert_eq!(out.i, i);
        }
        let ns = before.elapsed().as_nanos() as u64;
        shared.steps.fetch_add(1, Ordering::Relaxed);
        shared.window_max_ns.fetch_max(ns, Ordering::Relaxed);
        shared.max_ns.fetch_max(ns, Ordering::Relaxed);
        let bucket = (64 - ns.leading_zeros() as usize).min(47);
        shared.histogram[bucket].fetch_add(1, Ordering::Relaxed);
        if o.print_each {
            say(format_args!("done i={i}"));
        }
        k += 1;
        if o.pace_us > 0 {
            let next = started + Duration::from_micros(o.pace_us * k);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
}

fn unix_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// A line of `/proc/self/status` in kB (`VmHWM`, `VmRSS`).
fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn install(o: &Options) -> Result<XRayGuard, xray::Error> {
    let mut builder = xray::layer().sqlite(&o.db).on_write_error(|err, records| {
        say(format_args!("write-error records={records} error={err}"))
    });
    if let Some(q) = o.queue {
        builder = builder.queue_capacity(q);
    }
    if let Some(ms) = o.flush_ms {
        builder = builder.flush_interval(Duration::from_millis(ms));
    }
    if let Some(ms) = o.shutdown_ms {
        builder = builder.shutdown_timeout(Duration::from_millis(ms));
    }
    if o.block {
        builder = builder.backpressure(xray::Backpressure::Block);
    }
    let at = o.panic_at;
    let index = move |input: Option<&xray::model::Json>| {
        input.and_then(|j| j.to_value().get("i")?.as_u64()) == Some(at)
    };
    match o.panic {
        Some(PanicIn::Hook) => {
            builder = builder.on_step_end(move |step| {
                if index(step.input.as_ref()) {
                    panic!("on_step_end hook panicked at step {at}");
                }
            })
        }
        Some(PanicIn::Processor) => {
            struct Panicky(Box<dyn Fn(&xray::model::Record) -> bool + Send + Sync>);
            impl xray::Processor for Panicky {
                fn process(&self, record: &mut xray::model::Record) {
                    if (self.0)(record) {
                        panic!("processor panicked");
                    }
                }
            }
            builder = builder.processor(Panicky(Box::new(move |record| match record {
                xray::model::Record::StepFinished(step) => index(step.input.as_ref()),
                _ => false,
            })))
        }
        _ => {}
    }
    let (layer, guard) = builder.build()?;
    // Only a failure to install a global subscriber twice could fail here, and this program
    // installs one.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    Ok(guard)
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xray-fault-child: {e}");
            std::process::exit(64);
        }
    };
    let guard = if o.xray {
        match install(&o) {
            Ok(guard) => Some(Arc::new(guard)),
            Err(e) => {
                say(format_args!("build-error message={e}"));
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    say(format_args!(
        "ready pid={} rss_kb={}",
        std::process::id(),
        status_kb("VmRSS:")
    ));
    let shared = Arc::new(Shared::default());
    if o.steps == 0 {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(l) if l.trim() != "stop" => continue,
                    _ => break,
                }
            }
            shared.stop.store(true, Ordering::Relaxed);
        });
    }
    let o = Arc::new(o);
    if o.threads == 1 && o.progress_ms == 0 {
        // The panic tests: steps on the main thread, as a simple program runs them.
        run_steps(0, &o, &shared);
    } else {
        let workers: Vec<_> = (0..o.threads)
            .map(|t| {
                let (o, shared) = (Arc::clone(&o), Arc::clone(&shared));
                std::thread::spawn(move || run_steps(t, &o, &shared))
            })
            .collect();
        let weak = guard.as_ref().map(Arc::downgrade);
        while !workers.iter().all(|w| w.is_finished()) {
            if o.progress_ms == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            std::thread::sleep(Duration::from_millis(o.progress_ms));
            progress(&shared, weak.as_ref());
        }
        for w in workers {
            if w.join().is_err() {
                std::process::exit(101);
            }
        }
    }
    let steps = shared.steps.load(Ordering::Relaxed);
    say(format_args!("app finished steps={steps}"));
    let Some(guard) = guard else {
        return;
    };
    // What dropping the guard at exit does: write everything queued, then stop the writer.
    let started = Instant::now();
    let flushed = guard.flush();
    let s = guard.stats();
    drop(guard);
    let shutdown_us = started.elapsed().as_micros();
    say(format_args!(
        "final steps={steps} sent={} written={} dropped={} failed={} hook_panics={} \
         flushed={flushed} shutdown_us={shutdown_us} max_us={} p50_us={} p99_us={} p999_us={} \
         hwm_kb={}",
        s.sent,
        s.written,
        s.dropped,
        s.failed,
        s.hook_panics,
        shared.max_ns.load(Ordering::Relaxed) / 1000,
        shared.percentile(0.5),
        shared.percentile(0.99),
        shared.percentile(0.999),
        status_kb("VmHWM:"),
    ));
}

fn progress(shared: &Shared, guard: Option<&Weak<XRayGuard>>) {
    let t_us = unix_us();
    let s = guard
        .and_then(Weak::upgrade)
        .map(|g| g.stats())
        .unwrap_or_default();
    say(format_args!(
        "progress t_us={t_us} steps={} max_us={} sent={} written={} dropped={} failed={}",
        shared.steps.load(Ordering::Relaxed),
        shared.window_max_ns.swap(0, Ordering::Relaxed) / 1000,
        s.sent,
        s.written,
        s.dropped,
        s.failed
    ));
}
