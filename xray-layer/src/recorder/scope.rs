//! Executions and steps for code that cannot take an attribute: [`Execution`] and [`Step`].

use super::current;
use super::state::{keep_first, Node};
use crate::model::Status;
use crate::tape::Tape;
use serde::Serialize;
use std::fmt::Display;
use tracing::span::EnteredSpan;
use tracing::Span;

impl Node {
    /// Sets the input (a step's, or an execution's).
    pub(crate) fn set_input(&self, json: Tape) {
        match self {
            Node::Step(step) => step.record(|b| b.input = Some(json)),
            Node::Execution(e) => e.outcome().input = Some(json),
            Node::Skipped => {}
        }
    }

    pub(crate) fn add_metadata(&self, pairs: Vec<(String, Tape)>) {
        match self {
            Node::Step(step) => step.record(|b| b.metadata.extend(pairs)),
            Node::Execution(e) => e.outcome().metadata.extend(pairs),
            Node::Skipped => {}
        }
    }

    /// Records that the function ended without a result, with `error` (it returned an error,
    /// panicked, or its future was dropped): a step that ends so lets no candidate through.
    pub(crate) fn end_without_result(&self, error: String) {
        self.mark_no_result();
        self.finish(None, Some(error));
    }

    /// Marks a step as ended without a result (see [`Node::end_without_result`]).
    fn mark_no_result(&self) {
        if let Node::Step(step) = self {
            step.record(|b| b.no_result = true);
        }
    }

    /// Records how the function ended. An error replaces one set earlier (by [`crate::fail`]);
    /// an output replaces one set earlier.
    ///
    /// A step's end time is read when its span closes, right after; an execution's likewise.
    pub(crate) fn finish(&self, output: Option<Tape>, error: Option<String>) {
        self.finish_with(output, error, false);
    }

    /// Whether it is a step whose body set its output ([`crate::output`]): the value its
    /// function returns would not be kept, and is not serialized.
    pub(crate) fn output_set(&self) -> bool {
        matches!(self, Node::Step(step) if step.output_set())
    }

    /// [`Node::finish`] for the value a step's function returned: an output its body set
    /// ([`crate::output`]) stays.
    pub(crate) fn returned(&self, output: Option<Tape>, error: Option<String>) {
        self.finish_with(output, error, true);
    }

    fn finish_with(&self, output: Option<Tape>, error: Option<String>, body_first: bool) {
        match self {
            Node::Step(step) => step.record(|b| {
                if body_first {
                    keep_first(&mut b.output, output);
                } else if output.is_some() {
                    b.output = output;
                }
                if let Some(error) = error {
                    b.status = Some(Status::Error);
                    b.error = Some(error);
                }
            }),
            Node::Execution(e) => {
                let mut outcome = e.outcome();
                if output.is_some() {
                    outcome.output = output;
                }
                if let Some(error) = error {
                    outcome.status = Some(Status::Error);
                    outcome.error = Some(error);
                }
            }
            Node::Skipped => {}
        }
    }
}

/// Finds the X-Ray node of `span` by entering it once (the layer pushes it on enter).
pub(crate) fn node_of(span: &Span) -> Option<Node> {
    let id = span.id()?;
    let _entered = span.enter();
    current::node_if(id.into_u64())
}

/// Starts an execution without an attribute.
///
/// ```
/// # let (layer, _guard) = xray::layer().memory().build()?;
/// # use tracing_subscriber::prelude::*;
/// # let _default = tracing_subscriber::registry().with(layer).set_default();
/// let run = xray::Execution::start("competitor_selection")
///     .tag("nightly")
///     .metadata("seller_asin", &"B0TEST")
///     .enter();
/// // … steps run here …
/// run.finish();
/// # Ok::<(), xray::Error>(())
/// ```
#[derive(Debug)]
pub struct Execution {
    name: String,
    tags: Vec<String>,
    metadata: Vec<(String, Tape)>,
}

impl Execution {
    /// An execution named `name` (the pipeline's name).
    pub fn start(name: impl Into<String>) -> Self {
        Execution {
            name: name.into(),
            tags: Vec::new(),
            metadata: Vec::new(),
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets one key of the execution's metadata.
    pub fn metadata<T: Serialize + ?Sized>(mut self, key: &str, value: &T) -> Self {
        self.metadata.push((key.to_owned(), Tape::of(value)));
        self
    }

    /// The execution's span, not entered: for async code (`future.instrument(span)`).
    pub fn into_span(self) -> Span {
        let tags = serde_json::to_string(&self.tags).unwrap_or_default();
        let span = tracing::info_span!(
            "xray.execution",
            xray.execution = self.name.as_str(),
            xray.tags = tags.as_str()
        );
        if let Some(node) = node_of(&span) {
            node.add_metadata(self.metadata);
        }
        span
    }

    /// Enters the execution on this thread until the scope is finished or dropped.
    pub fn enter(self) -> Scope {
        Scope::new(self.into_span())
    }
}

/// Starts a step without an attribute.
///
/// ```
/// # let (layer, _guard) = xray::layer().memory().build()?;
/// # use tracing_subscriber::prelude::*;
/// # let _default = tracing_subscriber::registry().with(layer).set_default();
/// let step = xray::Step::start("apply_filters").kind("filter").enter();
/// xray::filters(&serde_json::json!({ "min_rating": 3.8 }));
/// let kept = xray::evaluate("B01").check_min("rating", 4.1, 3.8).passed();
/// step.output(&kept);
/// step.finish();
/// # Ok::<(), xray::Error>(())
/// ```
#[derive(Debug)]
pub struct Step {
    name: String,
    kind: Option<String>,
}

impl Step {
    /// A step named `name`.
    pub fn start(name: impl Into<String>) -> Self {
        Step {
            name: name.into(),
            kind: None,
        }
    }

    /// The step's kind (`llm`, `search`, `filter`, `rank`, `select`, or your own).
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// The step's span, not entered: for async code.
    pub fn into_span(self) -> Span {
        tracing::info_span!(
            "xray.step",
            xray.step = self.name.as_str(),
            xray.kind = self.kind.as_deref().unwrap_or("")
        )
    }

    /// Enters the step on this thread until the scope is finished or dropped.
    pub fn enter(self) -> Scope {
        Scope::new(self.into_span())
    }
}

/// An entered [`Execution`] or [`Step`]. Dropping it ends it: as failed if the thread is
/// panicking, otherwise as it was marked ([`fail`](Self::fail)) or ok.
///
/// A step marked failed that never set an [`output`](Self::output) returned nothing: its
/// candidates out are not counted from the candidates it passed before it failed. One that
/// failed and still set its output (a judge that fell back to a default) keeps that count.
#[derive(Debug)]
pub struct Scope {
    span: Option<EnteredSpan>,
    node: Option<Node>,
    failed: std::cell::Cell<bool>,
    returned: std::cell::Cell<bool>,
}

impl Scope {
    fn new(span: Span) -> Self {
        let span = span.entered();
        let node = span.id().and_then(|id| current::node_if(id.into_u64()));
        Scope {
            span: Some(span),
            node,
            failed: std::cell::Cell::new(false),
            returned: std::cell::Cell::new(false),
        }
    }

    /// Whether anything is recorded (an X-Ray layer is installed, the span is enabled, and the
    /// layer's sampling keeps the run).
    pub fn is_recording(&self) -> bool {
        self.node.is_some()
    }

    /// Sets the output.
    pub fn output<T: Serialize + ?Sized>(&self, value: &T) {
        self.returned.set(true);
        if let Some(node) = &self.node {
            let watch = crate::unwind::Watch::start();
            node.finish(Some(Tape::of(value)), None);
            if let Some(error) = watch.caught() {
                node.finish(None, Some(error));
            }
        }
    }

    /// Marks it failed with `error`.
    pub fn fail(&self, error: impl Display) {
        self.failed.set(true);
        if let Some(node) = &self.node {
            node.finish(None, Some(crate::unwind::display(error)));
        }
    }

    /// Ends it now.
    pub fn finish(self) {}
}

impl Drop for Scope {
    fn drop(&mut self) {
        // Taken, so that when the span closes below nothing else refers to the step's state.
        if let Some(node) = self.node.take() {
            if std::thread::panicking() {
                node.end_without_result("panicked".to_owned());
            } else {
                if self.failed.get() && !self.returned.get() {
                    node.mark_no_result();
                }
                node.finish(None, None);
            }
        }
        drop(self.span.take());
    }
}
