//! [`Evaluation`]: the verdict of the current step on one candidate, check by check.

use super::arena::{EvalArena, NewCheck, Op, Text, NO_NAME, SET_SEP};
use super::current::{self, Begin, Local};
use super::state::StepRef;
use serde::Serialize;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Display, Write as _};
use std::ops::RangeInclusive;

/// The reason of a check: text, or a closure that builds it only when it is kept.
///
/// Reasons are kept for failed checks. A closure (`|| format!(..)`) is called only then, so a
/// check that passes costs no formatting; a `String` built eagerly is simply not stored.
pub trait Reason {
    /// Appends the reason to `out`.
    fn write_reason(self, out: &mut String);
}

impl Reason for &str {
    fn write_reason(self, out: &mut String) {
        out.push_str(self);
    }
}

impl Reason for String {
    fn write_reason(self, out: &mut String) {
        out.push_str(&self);
    }
}

impl Reason for &String {
    fn write_reason(self, out: &mut String) {
        out.push_str(self);
    }
}

impl Reason for Cow<'_, str> {
    fn write_reason(self, out: &mut String) {
        out.push_str(&self);
    }
}

impl Reason for fmt::Arguments<'_> {
    fn write_reason(self, out: &mut String) {
        // Its arguments' `Display` runs only because X-Ray records the check (see `unwind`).
        crate::unwind::write_guarded(out, "a reason", |out| out.write_fmt(self));
    }
}

impl<F, D> Reason for F
where
    F: FnOnce() -> D,
    D: Display,
{
    fn write_reason(self, out: &mut String) {
        // The closure runs only because X-Ray records the check: a panic in it must not reach
        // the program (see `unwind`).
        crate::unwind::write_guarded(out, "a reason", |out| {
            super::text::write_unguarded(out, self())
        });
    }
}

thread_local! {
    /// Reused to build the key of a `check_in` set.
    static SET_KEY: RefCell<String> = const { RefCell::new(String::new()) };
    /// Scratch arenas reused by builders on the slower path, so building an evaluation there
    /// allocates nothing either. Boxed: a builder holds one by pointer, to stay small.
    #[allow(clippy::vec_box)]
    static SCRATCH: RefCell<Vec<Box<Scratch>>> = const { RefCell::new(Vec::new()) };
}

/// The evaluation being built by a builder that cannot write into its thread's arena (a
/// [`StepHandle`](crate::StepHandle) on a worker thread, or a second builder open at once).
struct Scratch {
    step: Option<StepRef>,
    arena: EvalArena,
}

fn take_scratch(step: StepRef) -> Box<Scratch> {
    let mut scratch = SCRATCH
        .try_with(|pool| pool.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            Box::new(Scratch {
                step: None,
                arena: EvalArena::default(),
            })
        });
    scratch.step = Some(step);
    scratch
}

fn return_scratch(mut scratch: Box<Scratch>) {
    scratch.step = None;
    if scratch.arena.capacity_bytes() > 64 * 1024 {
        return; // an unusually large snapshot: let it go
    }
    scratch.arena.clear_rows();
    let _ = SCRATCH.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < 4 {
            pool.push(scratch);
        }
    });
}

/// Where a builder writes.
enum Target {
    /// Nothing is recorded (no step, or no layer).
    Off,
    /// The last row of the arena of this thread's entry `serial`, lent to the builder (the
    /// usual case: no lock, no reference count, no copy, no thread-local lookup per call).
    Local { serial: u64, local: Box<Local> },
    /// Its own scratch arena, appended to the step's under its lock when done.
    Scratch(Box<Scratch>),
}

/// The verdict of the current step on one candidate. Made by [`evaluate`](crate::evaluate) or
/// [`StepHandle::evaluate`](crate::StepHandle::evaluate).
///
/// Add checks, then call [`passed`](Self::passed): it records the evaluation and returns whether
/// every check passed (or the explicit [`verdict`](Self::verdict)), so it fits in a `filter`:
///
/// ```
/// # struct Product { asin: String, title: String, price: f64, rating: f64 }
/// # let candidates: Vec<Product> = vec![];
/// # let (lo, hi) = (10.0, 40.0);
/// let kept: Vec<Product> = candidates
///     .into_iter()
///     .filter(|c| {
///         xray::evaluate(&c.asin)
///             .label(&c.title)
///             .check_range("price", c.price, lo..=hi)
///             .check_min("rating", c.rating, 3.8)
///             .passed()
///     })
///     .collect();
/// ```
///
/// Outside a step, or with no X-Ray layer installed, nothing is recorded or formatted, and
/// `passed()` still returns the verdict. A builder dropped without `passed()` is still recorded.
///
/// An evaluation started with [`evaluate`](crate::evaluate) is written into its thread's own
/// arena for the step, which the builder holds while it is filled and gives back when it is
/// done; the arena is handed to the step when the thread exits it. A builder may be kept across
/// an `.await` (the step is exited between polls; the row is recorded whole, with the verdict
/// decided after the await) or finished on another thread: it then hands its rows to the step
/// itself. Finish it before its step *ends*: a builder returned out of its step carries the
/// rows its thread made since it last entered the step, and they are counted as dropped, not
/// recorded (the verdict is still returned). On worker threads, use [`StepHandle::evaluate`](crate::StepHandle::evaluate).
#[must_use = "call .passed() to record the evaluation and get its verdict"]
pub struct Evaluation {
    target: Target,
    all_passed: bool,
    verdict: Option<bool>,
}

impl fmt::Debug for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluation")
            .field("recording", &!matches!(self.target, Target::Off))
            .field("passed", &self.verdict.unwrap_or(self.all_passed))
            .finish()
    }
}

impl Evaluation {
    /// Starts an evaluation in the current step of this thread.
    #[inline]
    pub(crate) fn current(candidate_id: impl Display) -> Self {
        let target = match current::begin_local() {
            Begin::Local { serial, mut local } => {
                let id = local.arena.push_display(candidate_id);
                local.arena.begin_row(id);
                Target::Local { serial, local }
            }
            Begin::Busy(step) => Target::Scratch(Self::scratch(step, candidate_id)),
            Begin::None => Target::Off,
        };
        Evaluation {
            target,
            all_passed: true,
            verdict: None,
        }
    }

    /// Starts an evaluation in `step` (a handle's), with its own scratch arena.
    pub(crate) fn new(step: Option<StepRef>, candidate_id: impl Display) -> Self {
        let target = match step {
            Some(step) => Target::Scratch(Self::scratch(step, candidate_id)),
            None => Target::Off,
        };
        Evaluation {
            target,
            all_passed: true,
            verdict: None,
        }
    }

    fn scratch(step: StepRef, candidate_id: impl Display) -> Box<Scratch> {
        let mut scratch = take_scratch(step);
        let id = scratch.arena.push_display(candidate_id);
        scratch.arena.begin_row(id);
        scratch
    }

    /// Runs `f` on the arena of the row being built, if any.
    #[inline]
    fn with_arena(&mut self, f: impl FnOnce(&mut EvalArena)) {
        match &mut self.target {
            Target::Off => {}
            Target::Local { local, .. } => f(&mut local.arena),
            Target::Scratch(scratch) => f(&mut scratch.arena),
        }
    }

    /// Whether this evaluation will be recorded (a step is current and the layer is installed).
    #[inline]
    pub fn is_recording(&self) -> bool {
        !matches!(self.target, Target::Off)
    }

    /// A human label for the candidate (its title).
    #[inline]
    pub fn label(mut self, label: impl Display) -> Self {
        self.with_arena(|arena| {
            let t = arena.push_display(label);
            arena.set_label(t);
        });
        self
    }

    /// A free-form check: its name, whether the candidate passed, and why not. The reason is kept
    /// when the check fails; pass a closure to build it only then, or `format_args!`, which is
    /// as lazy and allocates nothing:
    ///
    /// ```
    /// let (category, wanted) = ("Phone Cases", "Laptop Stands");
    /// let passed = xray::evaluate("B0C4SZXKIG")
    ///     .check("category", category == wanted, format_args!("{category} is not {wanted}"))
    ///     .check("in stock", true, || format!("{} left", 0)) // built only on failure
    ///     .passed();
    /// assert!(!passed);
    /// ```
    #[inline]
    pub fn check(mut self, name: &str, passed: bool, reason: impl Reason) -> Self {
        self.all_passed &= passed;
        self.with_arena(|arena| {
            let reason = if passed {
                Text::NONE
            } else {
                arena.push_with(|out| reason.write_reason(out))
            };
            arena.push_check(check(name, passed, Op::Free), reason, NO_NAME);
        });
        self
    }

    /// Passes when `observed >= min`; otherwise the reason is `"3.2 < 3.8 minimum"`. The numbers
    /// are kept, so a threshold can be replayed later; the reason is written from them on the
    /// writer thread, so a structured check formats nothing here.
    #[inline]
    pub fn check_min(mut self, name: &str, observed: impl Into<f64>, min: impl Into<f64>) -> Self {
        let (observed, min) = (observed.into(), min.into());
        let passed = observed >= min;
        self.all_passed &= passed;
        self.with_arena(|arena| {
            let mut c = check(name, passed, Op::Min);
            (c.observed, c.lo) = (observed, min);
            arena.push_check(c, Text::NONE, NO_NAME);
        });
        self
    }

    /// Passes when `observed <= max`; otherwise the reason is `"1250 > 1000 maximum"`.
    #[inline]
    pub fn check_max(mut self, name: &str, observed: impl Into<f64>, max: impl Into<f64>) -> Self {
        let (observed, max) = (observed.into(), max.into());
        let passed = observed <= max;
        self.all_passed &= passed;
        self.with_arena(|arena| {
            let mut c = check(name, passed, Op::Max);
            (c.observed, c.hi) = (observed, max);
            arena.push_check(c, Text::NONE, NO_NAME);
        });
        self
    }

    /// Passes when `observed` is within `range`; otherwise `"8.99 < 14.99 (range 14.99–59.98)"`.
    #[inline]
    pub fn check_range(
        mut self,
        name: &str,
        observed: impl Into<f64>,
        range: RangeInclusive<f64>,
    ) -> Self {
        let observed = observed.into();
        let (lo, hi) = (*range.start(), *range.end());
        let passed = range.contains(&observed);
        self.all_passed &= passed;
        self.with_arena(|arena| {
            let mut c = check(name, passed, Op::Range);
            (c.observed, c.lo, c.hi) = (observed, lo, hi);
            arena.push_check(c, Text::NONE, NO_NAME);
        });
        self
    }

    /// Passes when `observed` is one of `allowed`; otherwise `"Phone Cases not in [Laptop Stands]"`.
    pub fn check_in<A: AsRef<str>>(mut self, name: &str, observed: &str, allowed: &[A]) -> Self {
        let passed = allowed.iter().any(|a| a.as_ref() == observed);
        self.all_passed &= passed;
        self.with_arena(|arena| {
            // The set is interned like a name: the same list costs a comparison, not a copy.
            let set = SET_KEY
                .try_with(|key| {
                    let mut key = key.borrow_mut();
                    key.clear();
                    for a in allowed {
                        key.push_str(a.as_ref());
                        key.push(SET_SEP);
                    }
                    arena.intern(&key)
                })
                .unwrap_or(NO_NAME);
            let mut c = check(name, passed, Op::In);
            c.observed_text = Some(observed);
            arena.push_check(c, Text::NONE, set);
        });
        self
    }

    /// The candidate's score (for ranking steps).
    #[inline]
    pub fn score(mut self, score: f64) -> Self {
        self.with_arena(|arena| arena.set_score(score));
        self
    }

    /// A named number (`relevance`, `price_proximity`).
    #[inline]
    pub fn metric(mut self, name: &str, value: f64) -> Self {
        self.with_arena(|arena| arena.push_metric(name, value));
        self
    }

    /// A JSON snapshot of the candidate as this step saw it.
    pub fn snapshot<T: Serialize + ?Sized>(mut self, candidate: &T) -> Self {
        if self.is_recording() {
            // A `Serialize` that fails or panics leaves the evaluation without a snapshot.
            let json = crate::unwind::guarded("Serialize", || serde_json::to_string(candidate));
            if let Ok(Ok(json)) = json {
                self.with_arena(|arena| {
                    let t = arena.push_with(|out| out.push_str(&json));
                    arena.set_snapshot(t);
                });
            }
        }
        self
    }

    /// Sets the verdict explicitly (an LLM judge's decision), overriding "all checks passed".
    #[inline]
    pub fn verdict(mut self, passed: bool) -> Self {
        self.verdict = Some(passed);
        self
    }

    /// Records the evaluation and returns its verdict.
    #[inline]
    pub fn passed(mut self) -> bool {
        let verdict = self.commit();
        // Committed: its target is `Off` and holds nothing, so its `Drop` has nothing to do.
        std::mem::forget(self);
        verdict
    }

    /// Records the evaluation, ignoring the verdict.
    #[inline]
    pub fn record(mut self) {
        self.commit();
        std::mem::forget(self); // as in `passed`
    }

    #[inline]
    fn commit(&mut self) -> bool {
        let verdict = self.verdict.unwrap_or(self.all_passed);
        match std::mem::replace(&mut self.target, Target::Off) {
            Target::Off => {}
            Target::Local { serial, local } => current::end_local(serial, local, verdict),
            Target::Scratch(mut scratch) => {
                scratch.arena.set_passed(verdict);
                if let Some(step) = &scratch.step {
                    step.record(|buffer| buffer.evaluations.append(&scratch.arena));
                }
                return_scratch(scratch);
            }
        }
        verdict
    }
}

impl Drop for Evaluation {
    #[inline]
    fn drop(&mut self) {
        self.commit();
    }
}

#[inline(always)]
fn check(name: &str, passed: bool, op: Op) -> NewCheck<'_> {
    NewCheck {
        name,
        passed,
        op,
        observed: f64::NAN,
        observed_text: None,
        lo: f64::NAN,
        hi: f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use crate::recorder::arena::Num;

    #[test]
    fn numbers_read_like_a_person_wrote_them() {
        assert_eq!(Num(3.8).to_string(), "3.8");
        assert_eq!(Num(14.99).to_string(), "14.99");
        assert_eq!(Num(1000.0).to_string(), "1000");
        assert_eq!(Num(0.123456).to_string(), "0.1235");
        assert_eq!(Num(14.995).to_string(), "14.995");
        assert_eq!(Num(-2.5).to_string(), "-2.5");
        assert_eq!(Num(1e-7).to_string(), "0");
        assert_eq!(Num(123456789.123456).to_string(), "123456789.1235");
        assert_eq!(Num(f64::INFINITY).to_string(), "inf");
    }

    #[test]
    fn the_fast_path_prints_what_rounding_to_4_decimals_prints() {
        // Every value with at most 4 decimals in a wide range, and neighbours of each.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let scale = [1.0, 10.0, 100.0, 1000.0, 10000.0][(x % 5) as usize];
            let v = ((x >> 8) % 100_000_000) as f64 / scale * if x & 1 == 0 { 1.0 } else { -1.0 };
            for v in [
                v,
                f64::from_bits(v.to_bits() + 1),
                f64::from_bits(v.to_bits().saturating_sub(1)),
            ] {
                let slow = if v.fract() == 0.0 {
                    format!("{}", v as i64)
                } else {
                    let t = format!("{v:.4}");
                    t.trim_end_matches('0').trim_end_matches('.').to_owned()
                };
                assert_eq!(Num(v).to_string(), slow, "{v:e}");
            }
        }
    }
}
