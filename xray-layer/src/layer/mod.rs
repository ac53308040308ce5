//! [`XRayLayer`]: a `tracing_subscriber::Layer` that turns X-Ray spans into executions and steps.
//!
//! The layer recognises its spans by their first field: `xray.step` (made by `#[xray::step]` and
//! [`Step`](crate::Step)) or `xray.execution` (made by `#[xray::execution]` and
//! [`Execution`](crate::Execution)). Any other span costs it one string comparison on creation and
//! a lookup on close. Because X-Ray spans are ordinary spans, `EnvFilter`, per-layer filters and
//! other layers (`fmt`, OpenTelemetry) see and filter them like any other; the heavy data
//! (payloads, evaluations) never travels as span fields or events, so a `fmt` layer in the same
//! subscriber prints one line per step at most, never one per candidate.
//!
//! | span event | what the layer does |
//! |---|---|
//! | new span | assigns a UUID v7, finds the enclosing step or execution (or starts an execution for a root step), queues a start record into the thread's lane |
//! | enter / exit | makes the step current on this thread, for [`evaluate`](crate::evaluate) and friends |
//! | event inside a step | keeps it as one of the step's log lines (level, message, fields; capped per step) |
//! | close | queues one complete record of the step, with everything it recorded, into the lane of the thread that closes it; for a `#[xray::step]` function's step, nothing: the function's guard ended the step as the function returned, before its span closed |

mod fields;

use crate::capture::Capture;
use crate::ids;
use crate::model::{now_us, LogLine};
use crate::recorder::current;
use crate::recorder::state::SpanInfo;
use crate::recorder::state::{
    ExecutionName, ExecutionState, NewStep, Node, Start, StepRun, StepState,
};
use crate::writer::Sink;
use fields::{EventFields, SameAs, XrayFields};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{PoisonError, RwLock};
use tracing_core::span::{Attributes, Id};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The X-Ray layer. Build it with [`xray::layer()`](crate::layer) and add it to your subscriber.
///
/// Install one per subscriber. A second X-Ray layer in the same subscriber does no harm, but
/// records nothing the first one records: a span is recorded by the innermost X-Ray layer that
/// sees it (a per-layer filter may leave some spans to the next one). To write to two places,
/// use two subscribers, or a [`Store`](crate::store::Store) that writes to both.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let (xray_layer, _guard) = xray::layer().memory().build()?;
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
///     .with(xray_layer);
/// tracing::subscriber::with_default(subscriber, || {
///     // instrumented code runs here
/// });
/// # Ok::<(), xray::Error>(())
/// ```
#[derive(Debug)]
pub struct XRayLayer {
    sink: Arc<Sink>,
    defaults: Arc<Defaults>,
    /// Step name, kind and capture per callsite (keyed by the address of its metadata).
    callsites: RwLock<HashMap<usize, Arc<SpanInfo>>>,
}

/// Settings the layer applies on the application thread.
#[derive(Debug)]
pub(crate) struct Defaults {
    pub(crate) capture: Capture,
    pub(crate) max_logs_per_step: usize,
    pub(crate) service: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) pid: u32,
    /// The share of executions recorded (`Builder::sample`), as a threshold on an id's random
    /// bits: an execution is recorded when they are below it.
    pub(crate) sample_below: u64,
}

/// The random bits of a UUID v7 (its last 62), compared with `Defaults::sample_below`.
const SAMPLE_BITS: u32 = 62;

/// `Defaults::sample_below` for a share of executions (`0.0..=1.0`).
pub(crate) fn sample_threshold(share: f64) -> u64 {
    // 2^62 fits an f64 exactly; the product is at most that.
    (share.clamp(0.0, 1.0) * (1u64 << SAMPLE_BITS) as f64) as u64
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Step,
    Execution,
}

impl XRayLayer {
    pub(crate) fn new(sink: Arc<Sink>, defaults: Arc<Defaults>) -> Self {
        XRayLayer {
            sink,
            defaults,
            callsites: RwLock::new(HashMap::new()),
        }
    }

    /// The name, kind and capture of a step span, shared by every span of its callsite: as is
    /// for a callsite marked constant (`#[xray::step]`'s), else after comparing the span's
    /// fields with it (a [`Step`](crate::Step) may be named at run time), built anew when
    /// they differ.
    fn step_info(&self, attrs: &Attributes<'_>) -> Arc<SpanInfo> {
        let key = std::ptr::from_ref(attrs.metadata()) as usize;
        // This thread's last step callsite, then the layer's table.
        let cached = LAST_INFO
            .try_with(|last| {
                let last = last.borrow();
                match &*last {
                    Some((k, info)) if *k == key => Some(Arc::clone(info)),
                    _ => None,
                }
            })
            .ok()
            .flatten()
            .or_else(|| {
                let info = self
                    .callsites
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&key)
                    .cloned()?;
                let _ = LAST_INFO.try_with(|last| {
                    *last.borrow_mut() = Some((key, Arc::clone(&info)));
                });
                Some(info)
            });
        if let Some(info) = cached.as_ref() {
            if info.constant {
                return Arc::clone(info);
            }
            let mut same = SameAs::new(info);
            attrs.record(&mut same);
            if same.same {
                return Arc::clone(info);
            }
        }
        let mut fields = XrayFields::default();
        attrs.record(&mut fields);
        let info = Arc::new(SpanInfo {
            name: fields
                .name
                .unwrap_or_else(|| attrs.metadata().name().to_owned()),
            kind: fields.kind,
            capture: fields.capture,
            constant: attrs.metadata().fields().field(CONSTANT).is_some(),
        });
        if cached.is_none() {
            self.callsites
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, Arc::clone(&info));
        }
        info
    }

    /// A new execution's id, or `None` when sampling leaves the execution out (counted).
    fn sampled_id(&self, now: i64) -> Option<uuid::Uuid> {
        let id = ids::new_id(now);
        let bytes = id.as_bytes();
        let mut random = [0u8; 8];
        random.copy_from_slice(&bytes[8..16]);
        let random = u64::from_be_bytes(random) & ((1u64 << SAMPLE_BITS) - 1);
        if random < self.defaults.sample_below {
            Some(id)
        } else {
            self.sink
                .counters
                .app
                .sampled_out
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        }
    }

    /// Starts an execution of its own (an `#[xray::execution]`, an [`crate::Execution`]) and
    /// queues its start record.
    fn start_execution(
        &self,
        id: uuid::Uuid,
        name: ExecutionName,
        tags: Vec<String>,
        now: i64,
    ) -> Arc<ExecutionState> {
        let execution = Arc::new(ExecutionState::new(id, false, name, tags, now));
        self.sink.send(&execution.dropped, 0, |encoder| {
            encoder.execution_start(
                execution.id,
                execution.started_at,
                execution.name.as_str(),
                &execution.tags,
            );
        });
        execution
    }

    /// The node of a new execution span under `parent`: a started execution, or `Skipped`
    /// when sampling leaves the run out. Sampling decides for a run that starts at the top; an
    /// execution started inside another run's span follows that run's decision, so the work one
    /// run does is recorded whole or not at all.
    fn execution_node(&self, attrs: &Attributes<'_>, parent: Option<&Node>, now: i64) -> Node {
        let execution_id = match parent {
            Some(Node::Skipped) => return Node::Skipped,
            Some(_) => ids::new_id(now),
            None => match self.sampled_id(now) {
                Some(id) => id,
                None => return Node::Skipped,
            },
        };
        let mut fields = XrayFields::default();
        attrs.record(&mut fields);
        let name = fields
            .name
            .take()
            .unwrap_or_else(|| attrs.metadata().name().to_owned());
        Node::Execution(self.start_execution(
            execution_id,
            ExecutionName::Named(name),
            fields.tags,
            now,
        ))
    }

    /// The node of a new step span under `parent`: a started step (with an execution of its
    /// own when it has no parent), or `Skipped` when its run is left out by sampling.
    ///
    /// The step's state is the one this thread's last step left, when there is one: in a
    /// pipeline's loop it usually has the same callsite and execution, and then neither is
    /// looked up nor cloned again.
    fn step_node(&self, attrs: &Attributes<'_>, parent: Option<&Node>, now: i64) -> Node {
        if let Some(Node::Skipped) = parent {
            // Inside a run sampling left out: left out too.
            return Node::Skipped;
        }
        let callsite = std::ptr::from_ref(attrs.metadata()) as usize;
        let start = match self.sink.recycler.take_step() {
            Some(state) if state.callsite == callsite && state.info.constant => Start::Reuse(state),
            recycled => Start::Fresh(self.step_info(attrs), recycled),
        };
        let capture = start.info().capture.unwrap_or(self.defaults.capture);
        let (run, parent_id) = match parent {
            Some(Node::Step(p)) => {
                p.add_child();
                (StepRun::In(&p.execution), Some(p.id))
            }
            Some(Node::Execution(e)) => (StepRun::In(e), None),
            Some(Node::Skipped) => return Node::Skipped,
            None => {
                let Some(execution_id) = self.sampled_id(now) else {
                    if let Some(state) = start.into_state() {
                        self.sink.recycler.give_step(state);
                    }
                    return Node::Skipped;
                };
                // Its implicit execution: started by the step's start record.
                (StepRun::Root(execution_id), None)
            }
        };
        let root = parent.is_none();
        let step = StepState::start(
            NewStep {
                id: ids::new_id(now),
                run,
                parent_id,
                callsite,
                started_at: now,
                capture,
                max_logs: self.defaults.max_logs_per_step,
                sink: &self.sink,
            },
            start,
        );
        // A root step's start starts its run too: two records, both lost if refused.
        let records = if root { 2 } else { 1 };
        self.sink.send_records(
            &step.execution.dropped,
            records,
            records,
            0,
            |encoder, _| {
                encoder.step_start(&step.head(), root);
                Some(step.id)
            },
        );
        Node::Step(step)
    }
}

thread_local! {
    /// The last step callsite seen on this thread, with its info: a pipeline's step runs in a
    /// loop, so this skips the layer's lock and table most of the time. The info depends only on
    /// the span's fields, which are compared before it is used, so it serves every layer.
    static LAST_INFO: RefCell<Option<(usize, Arc<SpanInfo>)>> = const { RefCell::new(None) };
}

/// The field that marks a step span's `xray.*` values as literals of its callsite (the spans
/// of `#[xray::step]`). It is declared and never recorded, so other layers do not print it.
const CONSTANT: &str = "xray.constant";

fn role_of(metadata: &tracing_core::Metadata<'_>) -> Option<Role> {
    match metadata.fields().iter().next()?.name() {
        "xray.step" => Some(Role::Step),
        "xray.execution" => Some(Role::Execution),
        _ => None,
    }
}

impl<S> Layer<S> for XRayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(role) = role_of(attrs.metadata()) else {
            return;
        };
        if current::claimed(id.into_u64()) {
            return; // another X-Ray layer of this subscriber records it
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        // One clock read per span start (and one per end): the ids, the start record and the
        // implicit execution share it.
        let now = now_us();
        let make = |parent: Option<&Node>| match role {
            Role::Execution => self.execution_node(attrs, parent, now),
            Role::Step => self.step_node(attrs, parent, now),
        };
        // The parent is usually the span on top of this thread's stack; otherwise walk the
        // registry's scope. (Cloned out of the stack: making the node may run the user's
        // `Display` of an `xray.*` field, which may enter spans of its own.)
        let from_stack = if attrs.is_root() {
            None
        } else {
            current::parent_from_stack(attrs.parent().map(Id::into_u64))
        };
        let parent = from_stack.or_else(|| {
            if attrs.is_root() {
                return None;
            }
            let found = span.scope().skip(1).find_map(|s| {
                let node = s.extensions().get::<Node>().cloned()?;
                Some((s.id().into_u64(), node))
            });
            if attrs.is_contextual() {
                // Inside a handle's `in_scope`, which the registry does not see.
                current::scope_parent(found.as_ref().map(|(id, _)| *id))
                    .or(found.map(|(_, node)| node))
            } else {
                found.map(|(_, node)| node)
            }
        });
        let node = make(parent.as_ref());
        current::set_created(id.into_u64(), node.clone());
        span.extensions_mut().insert(node);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if current::enter_created(id.into_u64()) {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let node = span.extensions().get::<Node>().cloned();
        current::push_current(id.into_u64(), node);
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        current::pop_current(id.into_u64());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let step = if event.is_contextual() {
            current::current()
        } else {
            event.parent().and_then(|parent| {
                ctx.span(parent)?
                    .scope()
                    // The nearest step, unless sampling left out what the event is in.
                    .find_map(|s| match s.extensions().get::<Node>() {
                        Some(Node::Step(step)) => Some(Some(Arc::clone(step))),
                        Some(Node::Skipped) => Some(None),
                        _ => None,
                    })
                    .flatten()
            })
        };
        let Some(step) = step else {
            return;
        };
        if !step.recorded_by(&self.sink.counters) {
            return; // another X-Ray layer's step: that layer keeps the line
        }
        {
            let mut buffer = step.buffer();
            if buffer.closed {
                return;
            }
            if buffer.logs.len() >= step.max_logs {
                buffer.logs_dropped += 1;
                return;
            }
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let line = LogLine {
            at: now_us(),
            level: metadata.level().as_str().to_owned(),
            target: metadata.target().to_owned(),
            message: std::mem::take(&mut fields.message),
            fields: fields.finish(),
        };
        // The cap again: other threads may have logged into the step since the check above
        // (the fields are recorded without the lock, as they may log themselves).
        let max = step.max_logs;
        step.record(|buffer| {
            if buffer.logs.len() < max {
                buffer.logs.push(line);
            } else {
                buffer.logs_dropped += 1;
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if current::ended_by_guard(id.into_u64()) {
            // A `#[xray::step]` function's step, ended as it returned: nothing is left to do,
            // and its node goes with the span's extensions.
            return;
        }
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let node = span.extensions_mut().remove::<Node>();
        match node {
            // Reused by this thread's next step, unless a handle still refers to it.
            Some(Node::Step(step)) if step.end(now_us()) => self.sink.recycler.give_step(step),
            // Ended as its function returned; a root step that steps under it outlived
            // leaves its run's end to now.
            Some(Node::Step(step)) if step.take_open_run() => {
                step.execution.end(&self.sink, now_us());
            }
            Some(Node::Step(_)) => {}
            Some(Node::Execution(execution)) => {
                execution
                    .ended
                    .store(true, std::sync::atomic::Ordering::Release);
                execution.end(&self.sink, now_us());
            }
            // A skipped span holds nothing, and nothing tells it closed: forget it here.
            Some(Node::Skipped) => current::forget_created(id.into_u64()),
            None => {}
        }
    }
}
