//! The writer: a full queue drops whole records and counts them; the guard persists what was
//! queued; `build()` reports a bad database instead of failing later in the background.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::prelude::*;
use xray::model::Record;
use xray::store::*;
use xray::{Backpressure, Error};

#[xray::step(kind = "filter")]
fn judge(batch: u32) -> u32 {
    for i in 0..10 {
        xray::evaluate(format_args!("{batch}-{i}"))
            .check("even", i % 2 == 0, "odd")
            .record();
    }
    batch
}

/// A store whose writes wait until the gate opens, so the queue fills up; then each write takes
/// `delay` at least (a slow disk).
struct GatedStore<S = MemoryStore> {
    inner: S,
    open: AtomicBool,
    delay: Duration,
    /// Its writes panic (a store of the user's with a bug).
    panics: bool,
    /// Its writes fail while this is set (a full disk).
    fails: AtomicBool,
}

impl<S> GatedStore<S> {
    fn new(inner: S) -> Self {
        GatedStore {
            inner,
            open: AtomicBool::new(true),
            delay: Duration::ZERO,
            panics: false,
            fails: AtomicBool::new(false),
        }
    }

    fn wait(&self) {
        while !self.open.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl<S: Store> Store for GatedStore<S> {
    fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        assert!(!self.panics, "the user's store panicked");
        self.wait();
        std::thread::sleep(self.delay);
        if self.fails.load(Ordering::Acquire) {
            return Err(StoreError::Io("No space left on device".into()));
        }
        self.inner.write(batch)
    }
    fn add_recorder_counts(&self, c: &RecorderCounts) -> Result<(), StoreError> {
        self.inner.add_recorder_counts(c)
    }
    fn recorder_counts(&self) -> Result<RecorderCounts, StoreError> {
        self.inner.recorder_counts()
    }
    fn list_executions(&self, q: &ExecutionQuery) -> Result<Page<ExecutionSummary>, StoreError> {
        self.inner.list_executions(q)
    }
    fn execution(&self, id: uuid::Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        self.inner.execution(id)
    }
    fn step(&self, id: uuid::Uuid) -> Result<Option<xray::model::StepRecord>, StoreError> {
        self.inner.step(id)
    }
    fn evaluations(
        &self,
        id: uuid::Uuid,
        q: &EvaluationQuery,
    ) -> Result<Page<xray::model::Evaluation>, StoreError> {
        self.inner.evaluations(id, q)
    }
    fn find_steps(&self, q: &StepQuery) -> Result<Page<StepSummary>, StoreError> {
        self.inner.find_steps(q)
    }
    fn candidate_lineage(
        &self,
        c: &str,
        q: &LineageQuery,
    ) -> Result<Page<LineageEntry>, StoreError> {
        self.inner.candidate_lineage(c, q)
    }
    fn step_stats(&self, q: &StatsQuery) -> Result<Vec<StepStats>, StoreError> {
        self.inner.step_stats(q)
    }
    fn update_execution(&self, id: uuid::Uuid, u: &ExecutionUpdate) -> Result<bool, StoreError> {
        self.inner.update_execution(id, u)
    }
    fn delete_executions(&self, ids: &[uuid::Uuid]) -> Result<u64, StoreError> {
        self.inner.delete_executions(ids)
    }
    fn delete_executions_before(&self, t: i64) -> Result<u64, StoreError> {
        self.inner.delete_executions_before(t)
    }
    fn changes_since(&self, seq: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.inner.changes_since(seq, limit)
    }
}

#[test]
fn a_full_queue_drops_whole_records_and_counts_every_one() {
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        open: AtomicBool::new(false),
        delay: Duration::ZERO,
        panics: false,
        fails: AtomicBool::new(false),
    });
    let (layer, guard) = xray::layer()
        .store(store.clone())
        .queue_capacity(64)
        .flush_interval(Duration::from_millis(5))
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    const PER_THREAD: u32 = 2_000;
    // Two threads flood the queue while the store is stuck; neither may block.
    std::thread::scope(|s| {
        for t in 0..2 {
            let dispatch = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..PER_THREAD {
                        assert_eq!(judge(t * PER_THREAD + i), t * PER_THREAD + i);
                    }
                })
            });
        }
    });
    let stats = guard.stats();
    // Each root step makes 4 records: execution start, step start, step end, execution end.
    let produced = u64::from(2 * PER_THREAD) * 4;
    assert_eq!(stats.sent + stats.dropped, produced, "{stats:?}");
    assert!(stats.dropped > 0, "the queue overflowed: {stats:?}");
    store.open.store(true, Ordering::Release);
    assert!(guard.flush());
    let stats = guard.stats();
    assert_eq!(
        stats.written, stats.sent,
        "everything accepted is written: {stats:?}"
    );
    assert_eq!(stats.failed, 0);
    // The count of dropped records is stored where a reader sees it.
    assert_eq!(
        store.recorder_counts().expect("counts").dropped,
        stats.dropped
    );
    // Whatever arrived is whole: every finished step has all ten evaluations.
    let steps = store
        .find_steps(&StepQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .expect("steps");
    assert!(!steps.items.is_empty());
    for s in steps.items.iter().filter(|s| s.ended_at.is_some()) {
        let summary = s.summary.as_ref().expect("summary");
        assert_eq!((summary.total, summary.kept), (10, 10), "step {}", s.name);
    }
    // A run that lost records says so.
    let runs = store
        .list_executions(&ExecutionQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .expect("runs");
    let total_dropped_in_runs: u64 = runs.items.iter().map(|r| r.dropped_records).sum();
    assert!(total_dropped_in_runs <= stats.dropped);
}

#[test]
fn blocking_backpressure_loses_nothing() {
    let (layer, guard, store) = xray::layer()
        .memory()
        .queue_capacity(8)
        .backpressure(Backpressure::Block)
        .build_with_store()
        .expect("build");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..500 {
            judge(i);
        }
    });
    assert!(guard.flush());
    assert_eq!(guard.stats().dropped, 0);
    let steps = store
        .find_steps(&StepQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .expect("steps");
    assert_eq!(steps.items.len(), 500);
}

#[xray::step(kind = "audit")]
fn audit(batch: u32) -> u32 {
    batch
}

/// A hook runs on the writer thread. Under a global subscriber, an instrumented function it
/// calls records through the same layer, into the writer's own queue: when that queue is full,
/// `Backpressure::Block` must not make the writer wait for room only it can make (the program
/// would then block on the full queue too).
#[test]
fn blocking_backpressure_never_blocks_the_writer_on_its_own_queue() {
    static DISPATCH: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    let (layer, guard, store) = xray::layer()
        .memory()
        .queue_capacity(1)
        .backpressure(Backpressure::Block)
        .on_step_end(|step| {
            if step.name == "judge" {
                if let Some(dispatch) = DISPATCH.get() {
                    // What a global subscriber gives the writer thread.
                    tracing::dispatcher::with_default(dispatch, || {
                        for i in 0..3 {
                            audit(i);
                        }
                    });
                }
            }
        })
        .build_with_store()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let _ = DISPATCH.set(dispatch.clone());
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..20 {
                judge(i);
            }
        });
        let flushed = guard.flush_timeout(Duration::from_secs(30));
        let _ = done.send((flushed, guard.stats()));
    });
    let (flushed, stats) = finished
        .recv_timeout(Duration::from_secs(90))
        .expect("the program and the writer went on");
    assert!(flushed, "{stats:?}");
    let judged = store
        .find_steps(&StepQuery {
            name: Some("judge".into()),
            limit: Some(100),
            ..Default::default()
        })
        .expect("steps");
    assert_eq!(judged.items.len(), 20, "the program's steps, all of them");
}

/// A subscriber with an X-Ray layer writing into a new SQLite file (its directory kept alive by
/// the returned `TempDir`), and the layer's guard; its writer `writer_nice` levels below the
/// test's threads.
fn sqlite_dispatch(
    flush_interval: Duration,
    writer_nice: u8,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    tracing::Dispatch,
    xray::XRayGuard,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xray.db");
    let (layer, guard) = xray::layer()
        .sqlite(&path)
        .flush_interval(flush_interval)
        // These tests check that every record is written or counted once the guard is gone: on
        // a loaded machine the writer may need longer than the default to finish.
        .shutdown_timeout(Duration::from_secs(120))
        .writer_nice(writer_nice)
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    (dir, path, dispatch, guard)
}

#[test]
fn dropping_the_guard_writes_everything_queued_before_it() {
    // The writer would not wake on its own before the test ends.
    let (_dir, path, dispatch, guard) =
        sqlite_dispatch(Duration::from_secs(3600), xray::DEFAULT_WRITER_NICE);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..300 {
            judge(i);
        }
    });
    drop(guard);
    let store = SqliteStore::open(&path).expect("open");
    let steps = store
        .find_steps(&StepQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .expect("steps");
    assert_eq!(steps.items.len(), 300);
    assert!(steps.items.iter().all(|s| s.ended_at.is_some()));
}

#[xray::step(kind = "filter")]
fn busy(i: u64) -> u64 {
    i
}

/// Two threads recording root steps (four records each) as fast as they go, under `dispatch`,
/// until `stop`; each counts its steps in its counter.
fn recording_threads(
    dispatch: &tracing::Dispatch,
    stop: &Arc<AtomicBool>,
) -> (Vec<Arc<AtomicU64>>, Vec<std::thread::JoinHandle<()>>) {
    let counts: Vec<_> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let threads = counts
        .iter()
        .map(|count| {
            let (dispatch, stop, count) = (dispatch.clone(), Arc::clone(stop), Arc::clone(count));
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    while !stop.load(Ordering::Relaxed) {
                        busy(count.fetch_add(1, Ordering::Relaxed));
                    }
                })
            })
        })
        .collect();
    (counts, threads)
}

/// Threads still recording while the guard is dropped: every record is written, or counted as
/// dropped (in the stats and, for what the writer saw before it stopped, in the database):
/// none is lost uncounted, not even one sent between the writer's last drain and its exit.
#[test]
fn records_sent_while_the_guard_drops_are_written_or_counted() {
    // Two threads keep both CPUs of a CI machine busy while the guard drops: below their
    // priority (the default) the writer gets a tenth of a CPU and its last flush takes ~25 s
    // instead of ~2 (which is what `writer_nice` documents). What is checked here is the count.
    let (_dir, path, dispatch, guard) = sqlite_dispatch(Duration::from_millis(5), 0);
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, threads) = recording_threads(&dispatch, &stop);
    // Both threads are recording when the guard drops.
    let started = std::time::Instant::now();
    while calls.iter().any(|c| c.load(Ordering::Relaxed) < 2_000) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the threads did not start"
        );
        std::thread::yield_now();
    }
    let counts = guard.stats_handle();
    drop(guard);
    let at_drop: u64 = calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    // And go on for a while after the writer has stopped.
    while calls.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>() < at_drop + 2_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the threads stopped"
        );
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a recording thread");
    }
    let total: u64 = calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let s = counts.stats();
    // A root step is four records: its run's start and end, its own start and end.
    assert_eq!(
        s.written + s.failed + s.dropped,
        4 * total,
        "every record written or counted: {s:?}, {total} steps"
    );
    assert!(
        s.dropped >= 4 * 2_000,
        "those sent after the writer stopped: {s:?}"
    );
    // The database has the counts as the writer last saw them: it stopped before the
    // threads did, so what they sent after is counted in the stats only.
    let store = SqliteStore::open(&path).expect("open");
    let persisted = store.recorder_counts().expect("recorder counts");
    assert!(persisted.dropped <= s.dropped, "{persisted:?} {s:?}");
    assert_eq!(persisted.failed, s.failed);
}

/// While threads record faster than the store writes (the queue never empties), the drops are
/// still written to the store as they happen, for `xray-server` to report: the writer's rounds
/// end every flush interval even when the queue does not.
#[test]
fn drops_reach_the_store_during_a_flood_not_only_after_it() {
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        open: AtomicBool::new(true),
        // ~100,000 records a second at most: two recording threads make more.
        delay: Duration::from_millis(5),
        panics: false,
        fails: AtomicBool::new(false),
    });
    let (layer, guard) = xray::layer()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .queue_capacity(1024)
        .flush_interval(Duration::from_millis(10))
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let stop = Arc::new(AtomicBool::new(false));
    let (_, threads) = recording_threads(&dispatch, &stop);
    let started = std::time::Instant::now();
    let persisted = loop {
        let counts = store.recorder_counts().expect("recorder counts");
        if counts.dropped > 0 || started.elapsed() > Duration::from_secs(30) {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let flooding = guard.stats();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a recording thread");
    }
    assert!(flooding.dropped > 0, "the queue overflowed: {flooding:?}");
    assert!(
        persisted.dropped > 0,
        "drops written while the flood went on: {persisted:?}, {flooding:?}"
    );
}

/// Each recording thread has a queue of its own, and the writer reads them one after the other:
/// a step (and a run) that starts on one thread and ends on another has its start in one queue
/// and its end in the other, and the end may be read first. Thread B here records before A, so
/// its queue is read first: the ends arrive before the starts, and must not be undone by them.
#[test]
fn a_run_and_a_step_that_end_on_another_thread_are_stored_whole() {
    // Nothing is written before the flush: the writer reads both queues in one go.
    let (_dir, path, dispatch, guard) =
        sqlite_dispatch(Duration::from_secs(3600), xray::DEFAULT_WRITER_NICE);
    let (ready, b_recorded) = std::sync::mpsc::channel::<()>();
    let (give, spans) = std::sync::mpsc::channel::<(tracing::Span, tracing::Span)>();
    let b = {
        let dispatch = dispatch.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                busy(1); // B's queue is made first
                ready.send(()).expect("A waits");
                let (run, step) = spans.recv().expect("the spans A started");
                step.in_scope(|| xray::output(&"finished on B"));
                drop(step);
                drop(run);
            })
        })
    };
    tracing::dispatcher::with_default(&dispatch, || {
        b_recorded.recv().expect("B recorded");
        let run = tracing::info_span!("moved", xray.execution = "moved run");
        let step = run.in_scope(|| tracing::info_span!("moved", xray.step = "moved step"));
        give.send((run, step)).expect("B takes them");
    });
    b.join().expect("thread B");
    assert!(guard.flush());
    assert_eq!(guard.stats().dropped, 0);
    assert_eq!(guard.stats().failed, 0);

    let store = SqliteStore::open(&path).expect("open");
    let runs = store
        .list_executions(&ExecutionQuery::default())
        .expect("runs");
    let run = runs
        .items
        .iter()
        .find(|r| r.name == "moved run")
        .expect("the run has its name, from its start");
    assert_eq!(run.status, xray::model::Status::Ok, "{run:?}");
    assert!(run.completed_at.is_some(), "its end is kept: {run:?}");
    let detail = store.execution(run.id).expect("read").expect("the run");
    assert_eq!(detail.steps.len(), 1, "{:?}", detail.steps);
    let step = store
        .step(detail.steps[0].id)
        .expect("read")
        .expect("the step");
    assert_eq!(step.name, "moved step");
    assert_eq!(step.status, xray::model::Status::Ok);
    assert!(step.ended_at.is_some(), "its end is kept: {step:?}");
    assert_eq!(
        step.output.as_ref().map(|o| o.as_str()),
        Some("\"finished on B\"")
    );
}

/// A program that starts a thread per task: each thread that records gets a queue of its own,
/// and what a thread recorded just before it ended is written all the same.
#[test]
fn threads_that_come_and_go_lose_nothing() {
    let (layer, guard, store) = xray::layer()
        .memory()
        .flush_interval(Duration::from_millis(5))
        .build_with_store()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    for round in 0..20u32 {
        let threads: Vec<_> = (0..10u32)
            .map(|t| {
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || judge(round * 10 + t))
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a task thread");
        }
    }
    assert!(guard.flush());
    let stats = guard.stats();
    // Each root step: its run's start and end, its own start and end.
    assert_eq!(stats.sent, 200 * 4, "{stats:?}");
    assert_eq!((stats.written, stats.dropped), (stats.sent, 0), "{stats:?}");
    let steps = store
        .find_steps(&StepQuery {
            name: Some("judge".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .expect("steps");
    assert_eq!(steps.items.len(), 200);
    assert!(steps
        .items
        .iter()
        .all(|s| s.summary.as_ref().is_some_and(|s| s.total == 10)));
}

/// A store of the user's that panics kills the writer thread. The program goes on: its threads
/// do not wait for room nobody will make, even with `Backpressure::Block`, and every record is
/// still accounted for (here none is written: the first write panics).
#[test]
fn a_store_that_panics_stops_the_writer_and_the_program_goes_on() {
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        open: AtomicBool::new(true),
        delay: Duration::ZERO,
        panics: true,
        fails: AtomicBool::new(false),
    });
    let (layer, guard) = xray::layer()
        .store(store)
        .queue_capacity(16)
        .backpressure(Backpressure::Block)
        .flush_interval(Duration::from_millis(5))
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..500 {
                judge(i);
            }
        });
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the program went on after the writer died");
    let s = guard.stats();
    assert_eq!(s.written, 0, "{s:?}");
    // Each root step: its run's start and end, its own start and end.
    assert_eq!(s.written + s.failed + s.dropped, 500 * 4, "{s:?}");
    assert!(s.dropped > 0, "{s:?}");
}

/// A subscriber with an X-Ray layer writing into a new SQLite file through a store whose
/// writes fail while its `fails` is set (a full disk), and which writes only when the test
/// flushes; the file's directory is kept alive by the returned `TempDir`.
#[allow(clippy::type_complexity)]
fn failing_sqlite_dispatch() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Arc<GatedStore<SqliteStore>>,
    tracing::Dispatch,
    xray::XRayGuard,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xray.db");
    let store = Arc::new(GatedStore::new(SqliteStore::open(&path).expect("open")));
    let (layer, guard) = xray::layer()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .expect("build");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    (dir, path, store, dispatch, guard)
}

/// A batch the store fails to write (a full disk) leaves no step and no run `running` for
/// good. A step whose end was in it is marked lost once its run ends; a run whose end was in it
/// gets that end, as it was, with a later batch (here: the next flush).
#[test]
fn a_failed_batch_leaves_no_step_or_run_running_for_good() {
    let (_dir, path, store, dispatch, guard) = failing_sqlite_dispatch();
    let disk_full = |full: bool| store.fails.store(full, Ordering::Release);
    tracing::dispatcher::with_default(&dispatch, || {
        // "outlived": its step's start is written; the step's end fails; the run's end is
        // written later.
        let run = xray::Execution::start("outlived").enter();
        let step = xray::Step::start("long step").kind("filter").enter();
        assert!(guard.flush());
        disk_full(true);
        drop(step);
        assert!(guard.flush());
        disk_full(false);
        drop(run);
        // "cut": its step's start is written; the step's end and the run's end both fail.
        let run = xray::Execution::start("cut").enter();
        let step = xray::Step::start("long step").kind("filter").enter();
        assert!(guard.flush());
        disk_full(true);
        drop(step);
        drop(run);
        assert!(guard.flush());
        disk_full(false);
    });
    assert!(guard.flush());

    let reader = SqliteStore::open(&path).expect("open");
    let runs = reader
        .list_executions(&ExecutionQuery {
            limit: Some(10),
            ..Default::default()
        })
        .expect("runs");
    assert_eq!(runs.items.len(), 2, "{:?}", runs.items);
    for run in &runs.items {
        let detail = reader.execution(run.id).expect("read").expect("the run");
        // The run ended as it did (ok), with its end time, and says a record of it was lost.
        assert_eq!(run.status, xray::model::Status::Ok, "{}: {run:?}", run.name);
        assert!(run.completed_at.is_some(), "{}: {run:?}", run.name);
        assert_eq!(run.dropped_records, 1, "{}: {run:?}", run.name);
        // Its step, whose end never reached the store, is lost, not running.
        let statuses: Vec<_> = detail.steps.iter().map(|s| s.status).collect();
        assert_eq!(statuses, vec![xray::model::Status::Lost], "{}", run.name);
    }
    // Each record was written or counted as failed once: the run end sent again is a repair,
    // not a new record. Failed: two step ends and one run end.
    let s = guard.stats();
    assert_eq!(s.failed, 3, "{s:?}");
    assert_eq!(s.written + s.failed + s.dropped, s.sent, "{s:?}");
}

/// More runs ended while the disk was full than one batch sends again: a flush sends all of
/// them (a batch's share at a time), so none is left running when the program stops.
#[test]
fn a_flush_sends_every_run_end_a_failed_batch_left() {
    let (_dir, path, store, dispatch, guard) = failing_sqlite_dispatch();
    let runs = 600;
    tracing::dispatcher::with_default(&dispatch, || {
        let mut scopes: Vec<_> = (0..runs)
            .map(|i| xray::Execution::start(format!("run {i}")).enter())
            .collect();
        assert!(guard.flush(), "the runs' starts are written");
        store.fails.store(true, Ordering::Release);
        while let Some(scope) = scopes.pop() {
            drop(scope);
        }
        assert!(guard.flush());
        store.fails.store(false, Ordering::Release);
    });
    assert!(guard.flush());
    let stored = SqliteStore::open(&path)
        .expect("open")
        .list_executions(&ExecutionQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .expect("runs");
    assert_eq!(stored.items.len(), runs);
    let running: Vec<&str> = stored
        .items
        .iter()
        .filter(|r| r.status != xray::model::Status::Ok || r.completed_at.is_none())
        .map(|r| r.name.as_str())
        .collect();
    assert!(
        running.is_empty(),
        "{} runs not ended, among them {:?}",
        running.len(),
        &running[..running.len().min(5)]
    );
    let s = guard.stats();
    assert_eq!(s.failed, runs as u64, "{s:?}");
    assert_eq!(s.written + s.failed + s.dropped, s.sent, "{s:?}");
}

#[test]
fn build_reports_a_database_it_cannot_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A path whose parent is a file cannot be created (even by root).
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").expect("write");
    match xray::layer().sqlite(file.join("xray.db")).build() {
        Err(Error::Store(StoreError::Io(message))) => {
            assert!(message.contains("plain-file"), "{message}")
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // Not a database at all.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).expect("write");
    assert!(matches!(
        xray::layer().sqlite(&garbage).build(),
        Err(Error::Store(StoreError::NotXray(_)))
    ));
    // Another application's SQLite database.
    let other = dir.path().join("other.db");
    run_sql(
        &other,
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);",
    );
    assert!(matches!(
        xray::layer().sqlite(&other).build(),
        Err(Error::Store(StoreError::NotXray(_)))
    ));
    // A database from a newer X-Ray.
    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).expect("create"));
    set_user_version(&newer, 99);
    match xray::layer().sqlite(&newer).build() {
        Err(Error::Store(StoreError::NewerSchema { found, supported })) => {
            assert_eq!(found, 99);
            assert!(supported < 99);
        }
        other => panic!("expected a newer-schema error, got {other:?}"),
    }
    // The message a user sees names the problem.
    let err = xray::layer().sqlite(&newer).build().expect_err("error");
    assert!(err.to_string().contains("upgrade X-Ray"), "{err}");
}

fn set_user_version(path: &std::path::Path, v: u32) {
    run_sql(path, &format!("PRAGMA user_version = {v};"));
}

/// Runs SQL on a database file directly.
fn run_sql(path: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(sql).expect("sql");
}
