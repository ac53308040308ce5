//! The recording calls: attach decision data to the current step.
//!
//! Inside a function marked `#[xray::step]` (or a [`Step`](crate::Step) scope), these free
//! functions record into that step. Outside any step, or when no X-Ray layer is installed, they do
//! nothing and serialize nothing; they never panic.
//!
//! | call | records |
//! |---|---|
//! | [`input`], [`output`] | replace the step's input / output (the arguments and return value by default) |
//! | [`filters`] | the filters the step applied (`{"price": [lo, hi], "min_rating": 3.8}`) |
//! | [`evaluate`] | the verdict on one candidate, check by check, with reasons |
//! | [`select`] | the candidate chosen, and why |
//! | [`reasoning`] | free text: an LLM's rationale |
//! | [`metadata`] | one key of the step's metadata object |
//! | [`candidates`] | the numbers of candidates in and out, when there are no evaluations to count |
//! | [`current_step`] | a `Send + Clone` handle for worker threads |
//!
//! Worker threads (rayon, spawned tasks) have no current step of their own: take a handle with
//! [`current_step`] first and record through it, or run the worker's code in
//! [`StepHandle::in_scope`].

pub(crate) mod arena;
pub(crate) mod current;
pub(crate) mod evaluation;
pub(crate) mod scope;
pub(crate) mod state;
pub(crate) mod text;

use crate::model::{Selection, Status};
use crate::tape::Tape;
use crate::unwind::Watch;
use serde::Serialize;
use state::StepRef;
use std::fmt::{self, Display};
use std::sync::atomic::{AtomicU64, Ordering};

pub use evaluation::{Evaluation, Reason};

/// Sets the current step's input (replacing the recorded arguments).
pub fn input<T: Serialize + ?Sized>(value: &T) {
    current_step().input(value);
}

/// Sets the current step's output: what the step records instead of the value its function returns.
pub fn output<T: Serialize + ?Sized>(value: &T) {
    current_step().output(value);
}

/// Records the filters the current step applies.
///
/// ```
/// # let (lo, hi) = (7.5, 30.0);
/// xray::filters(&serde_json::json!({ "price": [lo, hi], "min_rating": 3.8 }));
/// ```
pub fn filters<T: Serialize + ?Sized>(value: &T) {
    current_step().filters(value);
}

/// Starts the current step's verdict on one candidate. See [`Evaluation`].
#[inline]
pub fn evaluate(candidate_id: impl Display) -> Evaluation {
    Evaluation::current(candidate_id)
}

/// Records that the current step selected `candidate_id`, and why.
pub fn select(candidate_id: impl Display, reason: impl Display) {
    current_step().select(candidate_id, reason);
}

/// Records the current step's reasoning (appended, one paragraph per call).
pub fn reasoning(text: impl Display) {
    current_step().reasoning(text);
}

/// Sets one key of the current step's metadata.
pub fn metadata<T: Serialize + ?Sized>(key: &str, value: &T) {
    current_step().metadata(key, value);
}

/// Sets how many candidates the current step considered and kept, for steps that do not record
/// evaluations (a search that returns 5,000 hits). `None` leaves a count as it is.
pub fn candidates(candidates_in: Option<u64>, candidates_out: Option<u64>) {
    current_step().candidates(candidates_in, candidates_out);
}

/// Marks the current step as failed with `error`, even though it returns normally (a judge
/// that timed out and fell back to a default).
pub fn fail(error: impl Display) {
    current_step().fail(error);
}

/// A handle to the current step, for recording from other threads. Outside a step, or in a run
/// the layer's sampling leaves out, it is inert: everything recorded through it is ignored.
pub fn current_step() -> StepHandle {
    match current::innermost() {
        Some(state::Node::Step(step)) => StepHandle {
            step: Some(step),
            skipped: false,
        },
        // A step started in the handle's `in_scope` is left out with the run.
        Some(state::Node::Skipped) => StepHandle {
            step: None,
            skipped: true,
        },
        _ => StepHandle::default(),
    }
}

/// A `Send + Clone` handle to a step, for recording from worker threads.
///
/// ```
/// use rayon::prelude::*;
///
/// #[xray::step(kind = "filter", skip(ids))]
/// fn judge(ids: Vec<u32>) -> Vec<u32> {
///     let step = xray::current_step();
///     ids.into_par_iter()
///         .filter(|id| step.evaluate(id).check("even", id % 2 == 0, "odd").passed())
///         .collect()
/// }
/// # assert_eq!(judge(vec![1, 2, 3, 4]), vec![2, 4]);
/// ```
///
/// Records made through a handle after its step ended are not recorded; they are counted as
/// dropped ([`RecorderStats::dropped`](crate::RecorderStats), also written to the database and
/// shown by `xray-server`'s metrics).
#[derive(Clone, Default)]
pub struct StepHandle {
    step: Option<StepRef>,
    /// Taken in a run the layer's sampling leaves out.
    skipped: bool,
}

impl fmt::Debug for StepHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => f
                .debug_struct("StepHandle")
                .field("id", &step.id)
                .field("name", &step.info.name)
                .finish(),
            None if self.skipped => f.write_str("StepHandle(sampled out)"),
            None => f.write_str("StepHandle(inert)"),
        }
    }
}

static SCOPE_IDS: AtomicU64 = AtomicU64::new(0);

impl StepHandle {
    /// Whether the handle records anything (it is inert outside a step, and in a run the
    /// layer's sampling leaves out).
    pub fn is_recording(&self) -> bool {
        self.step.is_some()
    }

    /// The step's id, as stored.
    pub fn id(&self) -> Option<uuid::Uuid> {
        self.step.as_ref().map(|s| s.id)
    }

    /// The id of the step's execution.
    pub fn execution_id(&self) -> Option<uuid::Uuid> {
        self.step.as_ref().map(|s| s.execution_id)
    }

    /// Runs `f` with this step current on this thread, so the free functions
    /// ([`evaluate`], [`select`], …) record into it, and a step started in `f` (under a plain
    /// `tracing` span entered in `f` too) is a child of this step.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let node = match &self.step {
            Some(step) => state::Node::Step(step.clone()),
            // Steps started in `f` are left out with the run, not recorded as runs of their own.
            None if self.skipped => state::Node::Skipped,
            None => return f(),
        };
        // Ids from the top of the u64 range never collide with tracing span ids in practice.
        let id = u64::MAX - SCOPE_IDS.fetch_add(1, Ordering::Relaxed);
        current::push_scope(id, node);
        struct Pop(u64);
        impl Drop for Pop {
            fn drop(&mut self) {
                current::pop_current(self.0);
            }
        }
        let _pop = Pop(id);
        f()
    }

    /// See [`crate::evaluate`].
    pub fn evaluate(&self, candidate_id: impl Display) -> Evaluation {
        Evaluation::new(self.step.clone(), candidate_id)
    }

    /// See [`crate::input`].
    pub fn input<T: Serialize + ?Sized>(&self, value: &T) {
        self.record_json(value, |b, json| b.input = Some(json));
    }

    /// See [`crate::output`].
    pub fn output<T: Serialize + ?Sized>(&self, value: &T) {
        self.record_json(value, |b, json| b.output = Some(json));
        if let Some(step) = &self.step {
            step.note_output_set();
        }
    }

    /// See [`crate::filters`].
    pub fn filters<T: Serialize + ?Sized>(&self, value: &T) {
        self.record_json(value, |b, json| b.filters = Some(json));
    }

    /// Serializes `value` and keeps it with `keep`; a `Serialize` that panicked marks the step
    /// failed (unless it already failed for a reason of its own).
    fn record_json<T: Serialize + ?Sized>(
        &self,
        value: &T,
        keep: impl FnOnce(&mut state::StepBuffer, Tape),
    ) {
        if let Some(step) = &self.step {
            let watch = Watch::start();
            let json = Tape::of(value);
            let failed = watch.caught();
            step.record(|b| {
                keep(b, json);
                if let (Some(error), None) = (failed, &b.error) {
                    b.status = Some(Status::Error);
                    b.error = Some(error);
                }
            });
        }
    }

    /// See [`crate::select`].
    pub fn select(&self, candidate_id: impl Display, reason: impl Display) {
        if let Some(step) = &self.step {
            let selection = Selection {
                candidate_id: crate::unwind::display(candidate_id),
                reason: crate::unwind::display(reason),
            };
            step.record(|b| b.selection.push(selection));
        }
    }

    /// See [`crate::reasoning`].
    pub fn reasoning(&self, text: impl Display) {
        if let Some(step) = &self.step {
            let text = crate::unwind::display(text);
            step.record(|b| match &mut b.reasoning {
                Some(existing) => {
                    existing.push_str("\n\n");
                    existing.push_str(&text);
                }
                None => b.reasoning = Some(text),
            });
        }
    }

    /// See [`crate::metadata`].
    pub fn metadata<T: Serialize + ?Sized>(&self, key: &str, value: &T) {
        self.record_json(value, |b, json| b.metadata.push((key.to_owned(), json)));
    }

    /// See [`crate::candidates`].
    pub fn candidates(&self, candidates_in: Option<u64>, candidates_out: Option<u64>) {
        if let Some(step) = &self.step {
            step.record(|b| {
                if candidates_in.is_some() {
                    b.candidates_in = candidates_in;
                }
                if candidates_out.is_some() {
                    b.candidates_out = candidates_out;
                }
            });
        }
    }

    /// See [`crate::fail`].
    pub fn fail(&self, error: impl Display) {
        if let Some(step) = &self.step {
            let error = crate::unwind::display(error);
            step.record(|b| {
                b.status = Some(Status::Error);
                b.error = Some(error);
            });
        }
    }
}
