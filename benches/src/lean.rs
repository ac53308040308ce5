//! A prototype of the leanest recording a step could have: how close to the floor a layer that
//! really records steps can get, to say whether the goal (0.8× `#[tracing::instrument]`
//! + fmt) is reachable at all before redesigning X-Ray's layer for it.
//!
//! [`LeanLayer`] does, on the calling thread, what any layer that records a step must do, in
//! the cheapest way this project knows:
//!
//! - a UUID v7 for the step (and for the run of a root step), from a thread-local generator;
//! - the parent link, from the top of a thread-local stack of entered X-Ray spans;
//! - its callsite, by the address of its `'static` metadata (the writer reads the name there);
//! - a value in the span's extensions (the step's ids), to find the step again on close;
//! - start and end records (and the run's, for a root step), and the arguments' and output's
//!   JSON, written straight into a block of bytes the thread owns;
//! - a full block (32 KiB) handed to a writer thread over a channel, which decodes its records
//!   and hands the block back empty for reuse.
//!
//! What it leaves out, because a prototype can: per-callsite capture settings (one pointer
//! comparison stands in for them), sampling, handles that record into a step from another
//! thread, log lines, evaluations, a step whose span is entered on another thread than the
//! one that created it (found through the extensions, not the stack: supported, not timed), and
//! backpressure (a block the writer has no room for is counted and dropped).

use serde::Serialize;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing_core::span::{Attributes, Id};
use tracing_core::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::floor::{step_span, Input};
use crate::{work, Query};

/// A block is handed to the writer once it holds this many bytes.
const BLOCK: usize = 32 * 1024;

const EXECUTION_START: u8 = 1;
const EXECUTION_END: u8 = 2;
const STEP_START: u8 = 3;
const STEP_END: u8 = 4;
const INPUT: u8 = 5;
const OUTPUT: u8 = 6;

/// An X-Ray span as the thread and the extensions know it.
#[derive(Clone, Copy)]
struct Frame {
    span: u64,
    /// The step's id, or 0 for an execution's span.
    step: u128,
    execution: u128,
    /// A root step: its run ends with it.
    implicit: bool,
}

#[derive(Default)]
struct Local {
    block: Vec<u8>,
    stack: Vec<Frame>,
    /// The span this thread created last, entered next without a lookup.
    created: Option<Frame>,
    rng: u64,
    callsite: usize,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

impl Local {
    fn new_id(&mut self, now_us: i64) -> u128 {
        if self.rng == 0 {
            self.rng = (uuid::Uuid::now_v7().as_u128() as u64) | 1;
        }
        let mut random = 0u128;
        for _ in 0..2 {
            let mut x = self.rng;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.rng = x;
            random = (random << 64) | u128::from(x.wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
        let mut bytes = [0u8; 10];
        bytes.copy_from_slice(&random.to_le_bytes()[..10]);
        let millis = u64::try_from(now_us / 1000).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes)
            .into_uuid()
            .as_u128()
    }

    fn record(&mut self, tag: u8, id: u128, other: u128, third: u128, now: i64, callsite: usize) {
        self.block.push(tag);
        self.block.extend_from_slice(&id.to_le_bytes());
        self.block.extend_from_slice(&other.to_le_bytes());
        self.block.extend_from_slice(&third.to_le_bytes());
        self.block.extend_from_slice(&now.to_le_bytes());
        self.block
            .extend_from_slice(&(callsite as u64).to_le_bytes());
    }

    fn end(&mut self, tag: u8, id: u128, now: i64) {
        self.block.push(tag);
        self.block.extend_from_slice(&id.to_le_bytes());
        self.block.extend_from_slice(&now.to_le_bytes());
    }

    fn json(&mut self, tag: u8, value: &impl Serialize) {
        let Some(step) = self.stack.last().map(|f| f.step) else {
            return;
        };
        self.block.push(tag);
        self.block.extend_from_slice(&step.to_le_bytes());
        let at = self.block.len();
        self.block.extend_from_slice(&[0; 4]);
        if serde_json::to_writer(&mut self.block, value).is_err() {
            self.block.truncate(at - 17);
            return;
        }
        let len = (self.block.len() - at - 4) as u32;
        self.block[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// What the writer thread counted.
#[derive(Debug, Default)]
pub struct LeanCounts {
    /// Records decoded by the writer.
    pub records: AtomicU64,
    /// Blocks the writer had no room for.
    pub dropped_blocks: AtomicU64,
}

/// The prototype layer. Its writer thread runs until the layer is dropped.
pub struct LeanLayer {
    full: crossbeam_channel::Sender<Vec<u8>>,
    spare: crossbeam_channel::Receiver<Vec<u8>>,
    counts: Arc<LeanCounts>,
}

impl LeanLayer {
    /// The layer and the writer's counts.
    pub fn new() -> (Self, Arc<LeanCounts>) {
        let (full, blocks) = crossbeam_channel::bounded::<Vec<u8>>(64);
        let (give_back, spare) = crossbeam_channel::bounded::<Vec<u8>>(64);
        let counts = Arc::new(LeanCounts::default());
        let writer_counts = Arc::clone(&counts);
        std::thread::spawn(move || {
            for mut block in blocks {
                writer_counts
                    .records
                    .fetch_add(decode(&block), Ordering::Relaxed);
                block.clear();
                let _ = give_back.try_send(block);
            }
        });
        (
            LeanLayer {
                full,
                spare,
                counts: Arc::clone(&counts),
            },
            counts,
        )
    }

    fn flush(&self, local: &mut Local) {
        if local.block.len() < BLOCK {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK + 1024));
        let full = std::mem::replace(&mut local.block, next);
        if self.full.try_send(full).is_err() {
            self.counts.dropped_blocks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The number of records in a block (what the writer would turn into rows).
fn decode(block: &[u8]) -> u64 {
    let (mut at, mut n) = (0, 0);
    while at < block.len() {
        at += match block[at] {
            EXECUTION_START | STEP_START => 1 + 16 * 3 + 8 + 8,
            EXECUTION_END | STEP_END => 1 + 16 + 8,
            INPUT | OUTPUT => {
                let len = block
                    .get(at + 17..at + 21)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u32::from_le_bytes);
                1 + 16 + 4 + len as usize
            }
            _ => return n,
        };
        n += 1;
    }
    n
}

/// What the layer keeps in a span's extensions.
struct LeanNode(Frame);

impl<S> Layer<S> for LeanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        let step = match metadata.fields().iter().next().map(|f| f.name()) {
            Some("xray.step") => true,
            Some("xray.execution") => false,
            _ => return,
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let now = xray::model::now_us();
        let callsite = std::ptr::from_ref(metadata) as usize;
        let frame = LOCAL.try_with(|l| {
            let l = &mut *l.borrow_mut();
            if l.callsite != callsite {
                l.callsite = callsite; // a real layer looks its settings up here
            }
            let parent = if attrs.is_contextual() {
                l.stack.last().copied()
            } else {
                None
            };
            let own = l.new_id(now);
            let frame = if step {
                let (execution, implicit) = match parent {
                    Some(p) => (p.execution, false),
                    None => {
                        let execution = l.new_id(now);
                        l.record(EXECUTION_START, execution, 0, 0, now, callsite);
                        (execution, true)
                    }
                };
                let parent_step = parent.map_or(0, |p| p.step);
                l.record(STEP_START, own, parent_step, execution, now, callsite);
                Frame {
                    span: id.into_u64(),
                    step: own,
                    execution,
                    implicit,
                }
            } else {
                l.record(EXECUTION_START, own, 0, 0, now, callsite);
                Frame {
                    span: id.into_u64(),
                    step: 0,
                    execution: own,
                    implicit: false,
                }
            };
            l.created = Some(frame);
            frame
        });
        if let Ok(frame) = frame {
            span.extensions_mut().insert(LeanNode(frame));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let _ = LOCAL.try_with(|l| {
            let l = &mut *l.borrow_mut();
            let frame = match l.created.take() {
                Some(f) if f.span == id.into_u64() => Some(f),
                _ => ctx
                    .span(id)
                    .and_then(|s| s.extensions().get::<LeanNode>().map(|n| n.0)),
            };
            if let Some(frame) = frame {
                l.stack.push(frame);
            }
        });
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let _ = LOCAL.try_with(|l| {
            let l = &mut *l.borrow_mut();
            if l.stack.last().is_some_and(|f| f.span == id.into_u64()) {
                l.stack.pop();
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(LeanNode(frame)) = span.extensions_mut().remove::<LeanNode>() else {
            return;
        };
        let now = xray::model::now_us();
        let _ = LOCAL.try_with(|l| {
            let l = &mut *l.borrow_mut();
            if frame.step != 0 {
                l.end(STEP_END, frame.step, now);
            }
            if frame.step == 0 || frame.implicit {
                l.end(EXECUTION_END, frame.execution, now);
            }
            self.flush(l);
        });
    }
}

/// [`crate::work`] under the same span as [`crate::xray_filter`]'s, recorded by
/// [`LeanLayer`]: its input and output JSON go into the thread's block.
#[inline(never)]
pub fn lean_filter(query: &Query) -> u64 {
    let span = step_span().entered();
    let recording = !span.is_disabled();
    if recording {
        let _ = LOCAL.try_with(|l| l.borrow_mut().json(INPUT, &Input { query }));
    }
    let out = work(query);
    if recording {
        let _ = LOCAL.try_with(|l| l.borrow_mut().json(OUTPUT, &out));
    }
    drop(span);
    out
}

/// The registry with [`LeanLayer`], and the writer's counts.
pub fn lean_dispatch() -> (tracing::Dispatch, Arc<LeanCounts>) {
    let (layer, counts) = LeanLayer::new();
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        counts,
    )
}

/// The parent of a nested lean step: an execution span, as `xray::Execution` makes.
pub fn lean_execution() -> tracing::span::EnteredSpan {
    tracing::info_span!("bench", xray.execution = "bench").entered()
}
