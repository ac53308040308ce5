//! Support for the code that `#[xray::step]` and `#[xray::execution]` generate. Not a public API:
//! names and signatures change without notice.
//!
//! What the attributes expand to (a sync step; async steps use [`StepFuture`]):
//!
//! ```text
//! let __xray = StepGuard::enter(span!(.., xray.step = "name", xray.kind = "filter", ..));
//! if __xray.is_recording() {
//!     let mut input = ObjectWriter::new();
//!     (&&&Arg(&arg)).__xray_arg_into(&mut input, "arg"); // Serialize, else Debug, else a compile error
//!     __xray.set_input(input);
//! }
//! match run::<Ret, _>(|| body) {                          // catches a panic to record it
//!     Ok(value) => { __xray.ok(|| (&&&Arg(&value)).__xray_output()); value }
//!     Err(panic) => { __xray.panicked(&*panic); resume_unwind(panic) }
//! }
//! ```
//!
//! Arguments are recorded with "autoref specialization": the method call resolves to the first
//! trait whose impl applies at the receiver's level of references: `Serialize` (JSON), then
//! `Debug` (a JSON string of the Debug text), then an impl whose method requires a trait with no
//! implementations, so the compiler reports, at the argument, that it cannot be recorded and how
//! to skip it.

#![allow(missing_docs)]

use crate::model::now_us;
use crate::recorder::current;
use crate::recorder::scope::node_of;
use crate::recorder::state::{Ending, Node};
use crate::tape::{ObjectTape, Tape};
use crate::unwind::Watch;
use serde::Serialize;
use std::any::Any;
use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tracing::span::EnteredSpan;
use tracing::Span;

pub use tracing;

/// What the generated code records into: the span's X-Ray node, if the layer records it.
/// [`StepGuard`] and [`AsyncStepGuard`] dereference to it.
pub struct Recording {
    node: Option<Node>,
    /// Started with the step: sees a panic in the `input = <expr>` value's `Serialize`.
    watch: Watch,
    /// The function returned or panicked (`ok`, `err` or `panicked` was called). An async
    /// step's guard dropped without it was cancelled.
    finished: AtomicBool,
}

impl Recording {
    /// Whether the X-Ray layer records this span. When `false`, nothing is serialized.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.node.is_some()
    }

    pub fn set_input(&self, input: ObjectWriter) {
        if let Some(node) = &self.node {
            let failed = input.watch.caught();
            node.set_input(input.finish());
            fail_if(node, failed);
        }
    }

    /// Records `input` as the whole input (the attributes' `input = <expr>` option), made
    /// right after the step began.
    pub fn set_input_json(&self, input: Tape) {
        if let Some(node) = &self.node {
            node.set_input(input);
            fail_if(node, self.watch.caught());
        }
    }

    pub fn set_metadata(&self, metadata: ObjectWriter) {
        if let Some(node) = &self.node {
            let failed = metadata.watch.caught();
            node.add_metadata(metadata.into_pairs());
            fail_if(node, failed);
        }
    }

    /// The function returned normally; `output` serializes its value (called only when recording).
    pub fn ok(&self, output: impl FnOnce() -> Option<Tape>) {
        self.finished.store(true, Ordering::Relaxed);
        if let Some(node) = &self.node {
            if node.output_set() {
                // The body's output is kept: the returned value is not serialized.
                return node.returned(None, None);
            }
            let watch = Watch::start();
            node.returned(output(), None);
            fail_if(node, watch.caught());
        }
    }

    /// The function returned an error.
    pub fn err(&self, error: String) {
        self.finished.store(true, Ordering::Relaxed);
        if let Some(node) = &self.node {
            node.end_without_result(error);
        }
    }

    /// The function panicked with `payload`.
    pub fn panicked(&self, payload: &(dyn Any + Send)) {
        self.finished.store(true, Ordering::Relaxed);
        if let Some(node) = &self.node {
            node.end_without_result(format!("panicked: {}", panic_message(payload)));
        }
    }
}

/// A sync step's handle: the span stays entered for the rest of the function.
///
/// A step's function ends on the thread it began on, with its span entered: the guard keeps
/// the arguments until then, and records them with the result and ends the step in one go,
/// before the span closes (`StepState::finish`).
/// The layer then has nothing left to do when the span closes.
///
/// The step's state is not cloned into the guard: it is this thread's innermost entry for the
/// span (the layer pushed it as the span was entered), where the guard finds it again.
pub struct StepGuard {
    /// What is recorded into an execution's node (an `#[xray::execution]`'s); a step's state
    /// stays on the thread's stack.
    recording: Recording,
    /// `None` once dropped.
    span: Option<EnteredSpan>,
    /// The span's id (0 when it has none).
    id: u64,
    /// The layer records a step for the span.
    step: bool,
    /// The arguments, recorded as the function began.
    input: Cell<Option<Tape>>,
    /// The step ended as the function returned or panicked.
    ended: Cell<bool>,
}

impl StepGuard {
    /// Enters `span` for the rest of the function.
    pub fn enter(span: Span) -> Self {
        let span = span.entered();
        let id = span.id().map_or(0, |id| id.into_u64());
        let (step, node) = match current::entered(id) {
            current::Entered::Step => (true, None),
            current::Entered::Other(node) => (false, Some(node)),
            current::Entered::Nothing => (false, None),
        };
        StepGuard {
            span: Some(span),
            id,
            step,
            input: Cell::new(None),
            ended: Cell::new(false),
            recording: Recording {
                node,
                watch: Watch::start(),
                finished: AtomicBool::new(false),
            },
        }
    }

    /// The span.
    pub fn span(&self) -> &Span {
        // The span is taken only when the guard drops.
        static NONE: Span = Span::none();
        self.span.as_deref().unwrap_or(&NONE)
    }

    /// Whether the X-Ray layer records this span. When `false`, nothing is serialized.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.step || self.recording.is_recording()
    }

    /// Runs `f` with the span's node: a step's on this thread's stack, or the execution's.
    fn with_node(&self, f: impl FnOnce(&Node)) {
        if self.step {
            current::with_entered(self.id, f);
        } else if let Some(node) = &self.recording.node {
            f(node);
        }
    }

    /// Keeps the arguments until the function ends (a step's), or records them now.
    pub fn set_input(&self, input: ObjectWriter) {
        if !self.step {
            return self.recording.set_input(input);
        }
        match input.watch.caught() {
            None => self.input.set(Some(input.finish())),
            Some(failed) => self.with_node(|node| {
                node.set_input(input.finish());
                node.finish(None, Some(failed));
            }),
        }
    }

    /// The `input = <expr>` value, kept like the arguments (see [`StepGuard::set_input`]).
    pub fn set_input_json(&self, input: Tape) {
        if !self.step {
            return self.recording.set_input_json(input);
        }
        match self.recording.watch.caught() {
            None => self.input.set(Some(input)),
            Some(failed) => self.with_node(|node| {
                node.set_input(input);
                node.finish(None, Some(failed));
            }),
        }
    }

    /// The `metadata(..)` values of the attribute.
    pub fn set_metadata(&self, metadata: ObjectWriter) {
        if !self.step {
            return self.recording.set_metadata(metadata);
        }
        let failed = metadata.watch.caught();
        let pairs = metadata.into_pairs();
        self.with_node(|node| {
            node.add_metadata(pairs);
            fail_if(node, failed);
        });
    }

    /// The function returned normally; `output` serializes its value (called only when
    /// recording). A step ends here.
    pub fn ok(&self, output: impl FnOnce() -> Option<Tape>) {
        if !self.step {
            return self.recording.ok(output);
        }
        let mut output_set = false;
        current::with_entered(self.id, |node| output_set = node.output_set());
        if output_set {
            // The body's output is kept: the returned value is not serialized.
            return self.end(Ending::default());
        }
        let watch = Watch::start();
        let output = output();
        let error = watch.caught();
        self.end(Ending {
            output,
            error,
            ..Ending::default()
        });
    }

    /// The function returned an error.
    pub fn err(&self, error: String) {
        if !self.step {
            return self.recording.err(error);
        }
        self.end_without_result(error);
    }

    /// The function panicked with `payload`.
    pub fn panicked(&self, payload: &(dyn Any + Send)) {
        if !self.step {
            return self.recording.panicked(payload);
        }
        self.end_without_result(format!("panicked: {}", panic_message(payload)));
    }

    fn end_without_result(&self, error: String) {
        self.end(Ending {
            error: Some(error),
            no_result: true,
            ..Ending::default()
        });
    }

    /// Ends the step with `ending`, the arguments, and the evaluations this thread made in it.
    fn end(&self, mut ending: Ending) {
        self.recording.finished.store(true, Ordering::Relaxed);
        ending.input = self.input.take();
        let now = now_us();
        let mut run_open = false;
        let ended = current::end_entered_step(self.id, |step, local| {
            run_open = step.finish(now, ending, local);
        });
        // A run left to the span's close (a root step whose children may outlive it) needs
        // the layer's `on_close`.
        self.ended.set(ended && !run_open);
    }
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        if self.step && !self.recording.finished.load(Ordering::Relaxed) {
            // Neither returned nor panicked inside the function: an `input = ..` or
            // `metadata(..)` expression panicked before it ran (or the guard was leaked
            // into an unwind some other way). The step ends with what it has.
            let error = std::thread::panicking()
                .then(|| "panicked while its arguments were recorded".to_owned());
            self.end(Ending {
                no_result: error.is_some(),
                error,
                ..Ending::default()
            });
        }
        let span = self.span.take();
        if self.ended.get() {
            // The span's exit keeps the step's state for this thread's next step (it has
            // ended); its close has nothing left to do.
            current::closing_ended(self.id, || drop(span));
        } else {
            drop(span);
        }
    }
}

impl std::ops::Deref for StepGuard {
    type Target = Recording;
    fn deref(&self) -> &Recording {
        &self.recording
    }
}

/// An async step's handle. A [`StepGuard`] holds an entered span, which must not move to
/// another thread, so it is never `Send`; an async step keeps its handle across `.await`s, so
/// with a `StepGuard` no async step could be spawned on a multi-threaded runtime. This one holds
/// an idle span; [`StepFuture`] enters it on each poll.
pub struct AsyncStepGuard {
    // Dropped before the span (see `StepGuard`).
    recording: Recording,
    span: Span,
}

impl AsyncStepGuard {
    /// Keeps `span` without entering it.
    pub fn new(span: Span) -> Self {
        let node = node_of(&span);
        AsyncStepGuard {
            span,
            recording: Recording {
                node,
                watch: Watch::start(),
                finished: AtomicBool::new(false),
            },
        }
    }

    /// The span (to instrument the async body with).
    pub fn span(&self) -> &Span {
        &self.span
    }
}

impl std::ops::Deref for AsyncStepGuard {
    type Target = Recording;
    fn deref(&self) -> &Recording {
        &self.recording
    }
}

/// What a cancelled async step (or execution) records as its error.
pub const CANCELLED: &str =
    "cancelled: its future was dropped before it finished (a timeout, a select!, an aborted task)";

impl Drop for AsyncStepGuard {
    /// A future dropped at an `.await` (by a timeout, a `select!`, an aborted task) never
    /// returns: the step is marked failed as cancelled before its span closes, instead of
    /// ending as if it had succeeded.
    fn drop(&mut self) {
        if let Some(node) = &self.recording.node {
            if !self.recording.finished.load(Ordering::Relaxed) {
                node.end_without_result(CANCELLED.to_owned());
            }
        }
    }
}

/// Marks the step failed when recording it ran into a panic in the user's `Serialize`/`Debug`.
fn fail_if(node: &Node, error: Option<String>) {
    if error.is_some() {
        node.finish(None, error);
    }
}

pub use crate::unwind::panic_message;

/// Runs the function's body, catching a panic so the step can record it before it resumes.
#[inline]
pub fn run<R, F: FnOnce() -> R>(body: F) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(body))
}

/// Pins down an async body's output type, so `?` inside it infers like in the original function.
#[inline]
pub fn typed_future<R, F: Future<Output = R>>(body: F) -> F {
    body
}

pin_project_lite::pin_project! {
    /// An async step's body: entered on every poll, with a panic caught and returned.
    pub struct StepFuture<F> {
        span: Span,
        #[pin]
        inner: F,
    }
}

impl<F> StepFuture<F> {
    pub fn new(span: &Span, inner: F) -> Self {
        StepFuture {
            span: span.clone(),
            inner,
        }
    }
}

impl<F: Future> Future for StepFuture<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let inner = this.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Builds an object from recorded arguments, in one buffer.
pub struct ObjectWriter {
    object: ObjectTape,
    /// Sees a `Serialize` or `Debug` of an argument that panicked.
    watch: Watch,
}

impl Default for ObjectWriter {
    fn default() -> Self {
        ObjectWriter::new()
    }
}

impl ObjectWriter {
    pub fn new() -> Self {
        ObjectWriter {
            object: ObjectTape::new(),
            watch: Watch::start(),
        }
    }

    pub fn push(&mut self, name: &str, value: Tape) {
        self.object.push(name, &value);
        crate::recycle::give_buffer(value.into_bytes());
    }

    /// Records `value` as the entry `name`, in place.
    #[inline]
    fn push_serialize<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) {
        self.object.entry(name).push(value);
    }

    fn push_debug<T: Debug + ?Sized>(&mut self, name: &str, value: &T) {
        self.object.entry(name).push_debug(value);
    }

    fn finish(self) -> Tape {
        self.object.finish()
    }

    /// The keys and values, for metadata (merged key by key with later `xray::metadata` calls).
    fn into_pairs(self) -> Vec<(String, Tape)> {
        crate::tape::entries(self.finish().as_bytes()).unwrap_or_default()
    }
}

/// A value to record, for autoref specialization.
pub struct Arg<'a, T: ?Sized>(pub &'a T);

/// Level 1: `Serialize` values are recorded through it.
pub trait ViaSerialize {
    fn __xray_arg(&self) -> Tape;
    fn __xray_arg_into(&self, object: &mut ObjectWriter, name: &str);
    fn __xray_output(&self) -> Tape;
}

impl<T: Serialize + ?Sized> ViaSerialize for &&Arg<'_, T> {
    #[inline]
    fn __xray_arg(&self) -> Tape {
        Tape::of(self.0)
    }
    #[inline]
    fn __xray_arg_into(&self, object: &mut ObjectWriter, name: &str) {
        object.push_serialize(name, self.0);
    }
    #[inline]
    fn __xray_output(&self) -> Tape {
        Tape::of(self.0)
    }
}

/// Level 2: `Debug` values become a string of their Debug text.
pub trait ViaDebug {
    fn __xray_arg(&self) -> Tape;
    fn __xray_arg_into(&self, object: &mut ObjectWriter, name: &str);
    fn __xray_output(&self) -> Tape;
}

impl<T: Debug + ?Sized> ViaDebug for &Arg<'_, T> {
    fn __xray_arg(&self) -> Tape {
        Tape::debug(self.0)
    }
    fn __xray_arg_into(&self, object: &mut ObjectWriter, name: &str) {
        object.push_debug(name, self.0);
    }
    fn __xray_output(&self) -> Tape {
        Tape::debug(self.0)
    }
}

/// A step argument's type that is neither `Serialize` nor `Debug`. Nothing implements it: the
/// bound exists to produce a helpful compile error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a step argument: it implements neither `serde::Serialize` nor `Debug`",
    label = "this argument cannot be recorded",
    note = "skip it with `skip(<argument>)` (or `skip_all`) in the `#[xray::step]` or `#[xray::execution]` attribute, or implement `Serialize` or `Debug` for the argument's type"
)]
pub trait RecordableArgument {}

/// A step return type that is neither `Serialize` nor `Debug`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a step's output: it implements neither `serde::Serialize` nor `Debug`",
    label = "the return value cannot be recorded",
    note = "add `output = false` to the `#[xray::step]` or `#[xray::execution]` attribute, or implement `Serialize` or `Debug` for the return type"
)]
pub trait RecordableOutput {}

/// Level 3: anything else is a compile error, reported at the argument.
pub trait ViaNothing<T: ?Sized> {
    fn __xray_arg(&self) -> Tape
    where
        T: RecordableArgument;
    fn __xray_arg_into(&self, object: &mut ObjectWriter, name: &str)
    where
        T: RecordableArgument;
    fn __xray_output(&self) -> Tape
    where
        T: RecordableOutput;
}

impl<T: ?Sized> ViaNothing<T> for Arg<'_, T> {
    fn __xray_arg(&self) -> Tape
    where
        T: RecordableArgument,
    {
        Tape::string(std::any::type_name::<T>())
    }
    fn __xray_arg_into(&self, object: &mut ObjectWriter, name: &str)
    where
        T: RecordableArgument,
    {
        object.push(name, Tape::string(std::any::type_name::<T>()));
    }
    fn __xray_output(&self) -> Tape
    where
        T: RecordableOutput,
    {
        Tape::string(std::any::type_name::<T>())
    }
}

/// An error value to describe, for autoref specialization: Display, else Debug, else its type.
pub struct ErrArg<'a, T: ?Sized>(pub &'a T);

pub trait ErrViaDisplay {
    fn __xray_error(&self) -> String;
}
impl<T: Display + ?Sized> ErrViaDisplay for &&ErrArg<'_, T> {
    fn __xray_error(&self) -> String {
        crate::unwind::display(self.0)
    }
}

pub trait ErrViaDebug {
    fn __xray_error(&self) -> String;
}
impl<T: Debug + ?Sized> ErrViaDebug for &ErrArg<'_, T> {
    fn __xray_error(&self) -> String {
        crate::unwind::text("Debug", || format!("{:?}", self.0))
    }
}

pub trait ErrViaType {
    fn __xray_error(&self) -> String;
}
impl<T: ?Sized> ErrViaType for ErrArg<'_, T> {
    fn __xray_error(&self) -> String {
        format!("error of type {}", std::any::type_name::<T>())
    }
}
