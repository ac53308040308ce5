//! Shared fixtures of the X-Ray benchmarks (`cargo bench -p xray-benches`).
//!
//! - [`Query`]: the small argument a benchmarked step takes (~170 bytes of JSON, the size
//!   DESIGN's serde_json figure was measured at).
//! - [`catalog`]: a deterministic product catalog, the same on every run and every machine.
//! - [`Filter`]: the checks the benchmarks apply to a candidate, so that X-Ray and its peers
//!   compute the same verdicts.
//! - [`floor`]: the floor of a step (its span, its JSON, its clock reads and nothing else), to
//!   show what a step's goal leaves for everything else.
//! - [`NullStore`]: a [`Store`] that discards what it is given, for benchmarks of the
//!   application thread's cost that must not be throttled (or helped, by dropped records) by
//!   how fast SQLite writes.
//!
//! See `benches/README.md` for the numbers and how to reproduce them.

pub mod cores;
pub mod floor;
pub mod lean;
pub mod runs;

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;
use xray::model::{Evaluation, Record, StepRecord};
use xray::store::{
    Change, EvaluationQuery, ExecutionDetail, ExecutionQuery, ExecutionSummary, ExecutionUpdate,
    LineageEntry, LineageQuery, Page, RecorderCounts, StatsQuery, StepQuery, StepStats,
    StepSummary, Store, StoreError,
};

/// The category the benchmarks' filter keeps.
pub const CATEGORY: &str = "Laptop Stands";

/// The argument of the benchmarked step: what a filter step is asked to do.
#[derive(Clone, Debug, Serialize)]
pub struct Query {
    /// The reference product.
    pub asin: String,
    /// Its title.
    pub title: String,
    /// Its category.
    pub category: String,
    /// Its price.
    pub price: f64,
    /// The minimum rating a competitor must have.
    pub min_rating: f64,
    /// How many competitors to keep at most.
    pub max_results: u32,
    /// Search keywords.
    pub keywords: Vec<String>,
}

/// The body of every benchmarked step (a few arithmetic operations on the query), so that
/// the step benchmarks differ only in their instrumentation.
#[inline(always)]
pub fn work(query: &Query) -> u64 {
    (query.price * 100.0) as u64 + query.keywords.len() as u64 + u64::from(query.max_results)
}

/// The benchmarked step: [`work`] under `#[xray::step]`.
#[xray::step(kind = "filter")]
#[inline(never)]
pub fn xray_filter(query: &Query) -> u64 {
    work(query)
}

/// Its peer: [`work`] under `#[tracing::instrument]`.
#[tracing::instrument]
#[inline(never)]
pub fn instrumented_filter(query: &Query) -> u64 {
    work(query)
}

/// Steps timed in one go by [`timed_xray_steps`] before the writer is waited for (untimed).
///
/// Into a [`NullStore`] the application thread makes steps faster than the writer thread turns
/// their recorded values into JSON: a criterion sample of hundreds of thousands of steps in a
/// row would fill the queue and have records dropped, which would make a step look cheaper than
/// it is (a refused record costs less). Within a chunk the writer keeps up.
pub const STEP_CHUNK: u64 = 10_000;

/// Times `iters` calls of [`xray_filter`] (inside an entered execution when `nested`) under the
/// current subscriber, [`STEP_CHUNK`] at a time, waiting (untimed) for the writer behind
/// `guard` after each chunk; then checks that no record was dropped or failed, so that a full
/// queue cannot make a step look cheaper than it is.
pub fn timed_xray_steps(
    iters: u64,
    query: &Query,
    nested: bool,
    guard: &xray::XRayGuard,
) -> std::time::Duration {
    use std::hint::black_box;
    let mut elapsed = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(STEP_CHUNK);
        left -= chunk;
        let run = nested.then(|| xray::Execution::start("bench").enter());
        let start = std::time::Instant::now();
        for _ in 0..chunk {
            black_box(xray_filter(black_box(query)));
        }
        elapsed += start.elapsed();
        drop(run);
        assert!(
            guard.flush_timeout(std::time::Duration::from_secs(60)),
            "the writer did not catch up"
        );
    }
    let stats = guard.stats();
    assert_eq!(stats.dropped, 0, "records were dropped: {stats:?}");
    assert_eq!(stats.failed, 0, "records failed: {stats:?}");
    elapsed
}

/// The CPU time the writer thread (`xray-writer`) has used so far, from
/// `/proc/self/task/*/stat` (clock ticks, 10 ms each on Linux): what recording costs besides
/// the application thread's time. `None` where there is no such file or thread.
pub fn writer_cpu() -> Option<std::time::Duration> {
    // A thread that ends while the tasks are read is skipped, not the end of the search.
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = task.path();
        let is_writer = std::fs::read_to_string(dir.join("comm"))
            .is_ok_and(|comm| comm.trim() == "xray-writer");
        if !is_writer {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the command's closing parenthesis: the state is the 3rd field of the
        // line, utime the 14th and stime the 15th.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        return Some(std::time::Duration::from_millis(ticks * 10));
    }
    None
}

/// The verdict of the benchmarks' filter on `p`, recorded with `xray::evaluate`: the id, a
/// label, two structured checks and a free one whose reason is built only when it fails. Every
/// benchmark that evaluates candidates through X-Ray uses this one.
#[inline(always)]
pub fn evaluate(p: &Product, f: &Filter) -> bool {
    xray::evaluate(&p.asin)
        .label(&p.title)
        .check_range("price", p.price, f.lo..=f.hi)
        .check_min("rating", p.rating, f.min_rating)
        .check("category", f.category_ok(p), || {
            format!("{} is not {CATEGORY}", p.category)
        })
        .passed()
}

/// [`evaluate`]'s checks, with the free check's reason as `format_args!`.
#[inline(always)]
pub fn evaluate_format_args(p: &Product, f: &Filter) -> bool {
    xray::evaluate(&p.asin)
        .label(&p.title)
        .check_range("price", p.price, f.lo..=f.hi)
        .check_min("rating", p.rating, f.min_rating)
        .check(
            "category",
            f.category_ok(p),
            format_args!("{} is not {CATEGORY}", p.category),
        )
        .passed()
}

/// The smallest evaluation that says why: an id and one structured check.
#[inline(always)]
pub fn evaluate_one_check(p: &Product, f: &Filter) -> bool {
    xray::evaluate(&p.asin)
        .check_min("rating", p.rating, f.min_rating)
        .passed()
}

/// The reference query of every benchmark: its JSON is about 170 bytes.
pub fn reference_query() -> Query {
    Query {
        asin: "B0REF00042".into(),
        title: "Adjustable aluminium laptop stand".into(),
        category: CATEGORY.into(),
        price: 29.99,
        min_rating: 3.8,
        max_results: 50,
        keywords: vec![
            "laptop stand".into(),
            "aluminium".into(),
            "ergonomic".into(),
        ],
    }
}

/// A candidate product.
#[derive(Clone, Debug, Serialize)]
pub struct Product {
    /// Its id (an ASIN-like `B0` + 8 digits): unique within a catalog.
    pub asin: String,
    /// Its title.
    pub title: String,
    /// Its category.
    pub category: &'static str,
    /// Price, 5.00 to 80.00.
    pub price: f64,
    /// Rating, 2.5 to 5.0.
    pub rating: f64,
}

/// SplitMix64: a tiny deterministic generator (no dependency, same sequence everywhere).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A float in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// `n` products generated from `seed`: the same list for the same arguments, every time.
///
/// About 70% are in [`CATEGORY`]; prices are spread over 5–80 and ratings over 2.5–5, so the
/// reference filter ([`Filter::for_query`]) keeps roughly a third of them and every check fails
/// for some.
pub fn catalog(n: usize, seed: u64) -> Vec<Product> {
    const ADJECTIVES: [&str; 8] = [
        "Adjustable",
        "Foldable",
        "Portable",
        "Ergonomic",
        "Aluminium",
        "Wooden",
        "Ventilated",
        "Heavy-duty",
    ];
    const NOUNS: [&str; 6] = [
        "laptop stand",
        "notebook riser",
        "desk stand",
        "tablet holder",
        "cooling stand",
        "monitor riser",
    ];
    const OTHER: [&str; 3] = ["Phone Cases", "Desk Lamps", "Keyboards"];
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|i| {
            let category = if rng.unit() < 0.7 {
                CATEGORY
            } else {
                rng.pick(&OTHER)
            };
            let title = format!(
                "{} {} {}",
                rng.pick(&ADJECTIVES),
                rng.pick(&NOUNS),
                rng.next_u64() % 1000
            );
            Product {
                asin: format!(
                    "B0{:08}",
                    i as u64 + seed.wrapping_mul(1_000_003) % 90_000_000
                ),
                title,
                category,
                price: (500.0 + rng.unit() * 7500.0).round() / 100.0,
                rating: (25.0 + rng.unit() * 25.0).round() / 10.0,
            }
        })
        .collect()
}

/// The checks every benchmark applies to a candidate: price within half to twice the
/// reference's, a minimum rating, and the reference's category.
#[derive(Clone, Copy, Debug)]
pub struct Filter {
    /// Lowest price kept.
    pub lo: f64,
    /// Highest price kept.
    pub hi: f64,
    /// Lowest rating kept.
    pub min_rating: f64,
}

impl Filter {
    /// The filter of `query`.
    pub fn for_query(query: &Query) -> Self {
        Filter {
            lo: query.price * 0.5,
            hi: query.price * 2.0,
            min_rating: query.min_rating,
        }
    }

    /// Whether `p` passes the price check.
    pub fn price_ok(&self, p: &Product) -> bool {
        (self.lo..=self.hi).contains(&p.price)
    }

    /// Whether `p` passes the rating check.
    pub fn rating_ok(&self, p: &Product) -> bool {
        p.rating >= self.min_rating
    }

    /// Whether `p` passes the category check.
    pub fn category_ok(&self, p: &Product) -> bool {
        p.category == CATEGORY
    }

    /// Whether `p` passes every check.
    pub fn passes(&self, p: &Product) -> bool {
        self.price_ok(p) && self.rating_ok(p) && self.category_ok(p)
    }
}

/// A store that discards every batch, counting records and evaluation rows. Its read queries
/// fail with [`StoreError::Engine`].
#[derive(Debug, Default)]
pub struct NullStore {
    records: AtomicU64,
    evaluations: AtomicU64,
}

impl NullStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Evaluation rows written so far.
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Relaxed)
    }
}

fn unsupported<T>() -> Result<T, StoreError> {
    Err(StoreError::Engine("NullStore keeps nothing to read".into()))
}

impl Store for NullStore {
    fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        let rows: usize = batch
            .iter()
            .map(|r| match r {
                Record::StepFinished(step) => step.evaluations.len(),
                _ => 0,
            })
            .sum();
        self.records
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.evaluations.fetch_add(rows as u64, Ordering::Relaxed);
        Ok(())
    }
    fn add_recorder_counts(&self, _: &RecorderCounts) -> Result<(), StoreError> {
        Ok(())
    }
    fn recorder_counts(&self) -> Result<RecorderCounts, StoreError> {
        Ok(RecorderCounts::default())
    }
    fn list_executions(&self, _: &ExecutionQuery) -> Result<Page<ExecutionSummary>, StoreError> {
        unsupported()
    }
    fn execution(&self, _: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        unsupported()
    }
    fn step(&self, _: Uuid) -> Result<Option<StepRecord>, StoreError> {
        unsupported()
    }
    fn evaluations(&self, _: Uuid, _: &EvaluationQuery) -> Result<Page<Evaluation>, StoreError> {
        unsupported()
    }
    fn find_steps(&self, _: &StepQuery) -> Result<Page<StepSummary>, StoreError> {
        unsupported()
    }
    fn candidate_lineage(
        &self,
        _: &str,
        _: &LineageQuery,
    ) -> Result<Page<LineageEntry>, StoreError> {
        unsupported()
    }
    fn step_stats(&self, _: &StatsQuery) -> Result<Vec<StepStats>, StoreError> {
        unsupported()
    }
    fn update_execution(&self, _: Uuid, _: &ExecutionUpdate) -> Result<bool, StoreError> {
        unsupported()
    }
    fn delete_executions(&self, _: &[Uuid]) -> Result<u64, StoreError> {
        unsupported()
    }
    fn delete_executions_before(&self, _: i64) -> Result<u64, StoreError> {
        unsupported()
    }
    fn changes_since(&self, _: u64, _: usize) -> Result<Vec<Change>, StoreError> {
        unsupported()
    }
}

/// The criterion settings every X-Ray benchmark uses (the machines have 2 shared cores: short
/// runs, few samples). `benches/README.md` quotes them.
pub fn criterion_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1))
        .sample_size(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_about_170_bytes_of_json() {
        let json = serde_json::to_string(&reference_query()).unwrap_or_default();
        assert!(
            (150..=200).contains(&json.len()),
            "{} bytes: {json}",
            json.len()
        );
    }

    #[test]
    fn the_catalog_is_deterministic_and_every_check_fails_somewhere() {
        let a = catalog(2000, 7);
        let b = catalog(2000, 7);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.asin == y.asin && x.price == y.price));
        let f = Filter::for_query(&reference_query());
        let kept = a.iter().filter(|p| f.passes(p)).count();
        assert!((300..1200).contains(&kept), "kept {kept}");
        assert!(a.iter().any(|p| !f.price_ok(p)));
        assert!(a.iter().any(|p| !f.rating_ok(p)));
        assert!(a.iter().any(|p| !f.category_ok(p)));
        let mut ids: Vec<&str> = a.iter().map(|p| p.asin.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), a.len());
    }
}
