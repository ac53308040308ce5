//! The floor of a step: what any design that records a step through a `tracing` span must
//! pay, with nothing else, to compare with X-Ray's step and its peer in the same run.
//!
//! X-Ray's issue set a goal of 0.8× `#[tracing::instrument]` + fmt for a step. A step is a
//! `tracing` span by design (so `EnvFilter`, per-layer filters and `fmt` see it), its
//! arguments become JSON, and it has a start and an end time. [`floor_filter`] does exactly
//! that and nothing more: the same span as `#[xray::step]`'s (same fields, entered, closed),
//! the arguments' and the output's JSON written into a buffer the thread keeps (warm in its
//! cache, never handed to another thread), and two clock reads. No ids, no parent link, no
//! per-step state, no record handed to a writer. Two subscribers run it:
//!
//! | subscriber | what is left out |
//! |---|---|
//! | [`floor_dispatch`]`(false)`: the registry alone | everything a layer does |
//! | [`floor_dispatch`]`(true)`: the registry and [`FloorLayer`] | all but keeping a value in the span's extensions, where a layer puts what it must find again when the span is entered or closed on another thread |
//!
//! Whatever such a floor costs, a real step costs more: the distance from the floor to the goal
//! is what ids, the parent link, the step's state and the hand-off to a writer may spend.

use serde::Serialize;
use std::cell::RefCell;
use tracing_core::span::{Attributes, Id};
use tracing_core::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::{work, Query};

thread_local! {
    /// The thread's JSON buffer: the cheapest place a step's JSON can go.
    static JSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The step's input, as `#[xray::step]` records it: an object keyed by parameter name.
#[derive(Serialize)]
pub(crate) struct Input<'a> {
    pub(crate) query: &'a Query,
}

/// The same span as [`crate::xray_filter`]'s: its name and `xray.*` fields.
#[inline(always)]
pub(crate) fn step_span() -> tracing::Span {
    tracing::span!(
        tracing::Level::INFO,
        "xray_filter",
        xray.step = "xray_filter",
        xray.kind = "filter",
        xray.capture = "",
        xray.constant = tracing::field::Empty
    )
}

/// [`crate::work`] under the same span as [`crate::xray_filter`]'s, with its arguments' and
/// output's JSON and two clock reads: the floor of a recorded step.
#[inline(never)]
pub fn floor_filter(query: &Query) -> u64 {
    let span = step_span().entered();
    let started = xray::model::now_us();
    let recording = !span.is_disabled();
    if recording {
        let _ = JSON.try_with(|json| {
            let mut json = json.borrow_mut();
            json.clear();
            serde_json::to_writer(&mut *json, &Input { query })
        });
    }
    let out = work(query);
    if recording {
        let _ = JSON.try_with(|json| serde_json::to_writer(&mut *json.borrow_mut(), &out));
    }
    let ended = xray::model::now_us();
    std::hint::black_box((started, ended));
    drop(span);
    out
}

/// The value [`FloorLayer`] keeps in a span's extensions.
struct FloorNode(#[allow(dead_code)] u64);

/// A layer that keeps one small value in each span's extensions and removes it on close: the
/// least a layer that must find its span's state again does.
pub struct FloorLayer;

impl<S> Layer<S> for FloorLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(FloorNode(id.into_u64()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            span.extensions_mut().remove::<FloorNode>();
        }
    }
}

/// The registry alone, or with [`FloorLayer`] (`extensions`).
pub fn floor_dispatch(extensions: bool) -> tracing::Dispatch {
    if extensions {
        tracing::Dispatch::new(tracing_subscriber::registry().with(FloorLayer))
    } else {
        tracing::Dispatch::new(tracing_subscriber::registry())
    }
}
