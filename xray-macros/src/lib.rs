//! Attribute macros for X-Ray: `#[xray::step]` and `#[xray::execution]`.
//!
//! Use them through the `xray-layer` crate (library name `xray`), which re-exports them as
//! `xray::step` and `xray::execution`; the code they generate names `::xray::__private`, so this
//! crate cannot be used on its own.
//!
//! ```ignore
//! #[xray::execution(name = "competitor-selection", tags("nightly"))]
//! fn select(product: &Product) -> Option<Competitor> {
//!     let candidates = search(&product.title);
//!     let kept = filter(candidates, 4.0);
//!     rank(&kept).first().cloned()
//! }
//!
//! #[xray::step(kind = "filter", skip(candidates), metadata(min_rating = min_rating))]
//! fn filter(candidates: Vec<Competitor>, min_rating: f64) -> Vec<Competitor> {
//!     candidates.into_iter().filter(|c| c.rating >= min_rating).collect()
//! }
//! ```
//!
//! # What a step records
//!
//! - **Input**: a JSON object with one key per argument (the parameter's name; the names bound
//!   by a destructuring pattern such as `(a, b): (u32, u32)` each get their own key). A value
//!   is recorded with `serde::Serialize` when its type implements it, else as a JSON string of
//!   its `Debug` text. A type that implements neither is a compile error at that argument that
//!   says to `skip` it. `self` (`self`, `&self`, `&mut self`) is never recorded: use
//!   `input = ..` to record something from it. In a generic function the bounds decide: a
//!   `T: Serialize` argument is serialized, a `T: Debug` one is recorded as Debug text, and a
//!   `T` with neither bound must be skipped.
//! - **Output**: the return value, recorded like an argument. A function returning `()` or
//!   `impl Trait` records no output. A return type whose last path segment is `Result`
//!   (`Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`) records the `Ok` value as the
//!   output, and an `Err` marks the step failed with the error's `Display` text (else its
//!   `Debug` text, else its type's name).
//! - **A panic** marks the step failed with `panicked: <message>`, is recorded, and then
//!   continues to unwind.
//! - **A cancelled async step** (its future dropped at an `.await` by a timeout, a `select!`
//!   or an aborted task) is marked failed with `cancelled: …`, not recorded as a success.
//! - **A `Serialize` or `Debug` impl that panics** while X-Ray records an argument or the
//!   output never reaches the program (without X-Ray that code would not have run): the value
//!   is recorded as `"<not recorded: Serialize panicked: …>"` and the step is marked failed
//!   with `X-Ray could not record this step: …`.
//! - **Nothing is serialized** (no argument, no metadata, no output, no error text) unless the
//!   X-Ray layer records the span: with no layer installed, or the span disabled, a step costs
//!   what a disabled `tracing` span costs.
//!
//! # Options
//!
//! | option | `step` | `execution` | meaning |
//! |---|---|---|---|
//! | `name = "..."` | yes | yes | the name recorded (default: the function's name) |
//! | `kind = "..."` | yes | no | the step's kind, e.g. `"filter"`, `"rank"`, `"llm"` (default: none) |
//! | `skip(a, b)` | yes | yes | do not record these arguments (names bound by the parameters; `self` is accepted and never recorded anyway) |
//! | `skip_all` | yes | yes | record no argument |
//! | `input = <expr>` | yes | yes | record this expression as the whole input instead of the arguments; it may use the arguments and `self` |
//! | `output = false` | yes | yes | do not record the return value (an `Err` is still recorded) |
//! | `level = "..."` | yes | yes | the span's level: `"trace"`, `"debug"`, `"info"` (default), `"warn"` or `"error"` |
//! | `capture = ...` | yes | no | which evaluations this step keeps: `"all"`, `"summary"` (counts and reasons only) or a cap such as `capture = 500` (default: the layer's policy) |
//! | `metadata(key = <expr>, ..)` | yes | yes | metadata recorded when the step starts; a key is an identifier or a string literal (`"max-price" = limit`) |
//! | `tags("a", "b")` | no | yes | the execution's tags |
//!
//! Misspelled or repeated options, `skip` of a name that is not an argument, and values that
//! are not understood are compile errors spanned on the offending token.
//!
//! # Expansion
//!
//! The function keeps its signature (including `async`, generics, `where` clauses and
//! `impl Trait`); only its body is rewritten. For a sync function:
//!
//! ```text
//! fn f(a: A, b: B) -> R {
//!     let guard = StepGuard::enter(span!(target: module_path!(), Level::INFO, "f",
//!         xray.step = "f", xray.kind = "", xray.capture = "", xray.constant = Empty));
//!     if guard.is_recording() {
//!         let mut input = ObjectWriter::new();
//!         (&&&Arg(&a)).__xray_arg_into(&mut input, "a"); // Serialize, else Debug, else an error
//!         (&&&Arg(&b)).__xray_arg_into(&mut input, "b");
//!         guard.set_input(input);
//!     }
//!     match run::<R, _>(|| { /* the original body */ }) {
//!         Ok(value) => { guard.ok(|| Some((&&&Arg(&value)).__xray_output())); value }
//!         Err(panic) => { guard.panicked(&*panic); resume_unwind(panic) }
//!     }
//! }
//! ```
//!
//! The body runs in a closure, so `return` and `?` keep their meaning; the closure's return
//! type is pinned to the function's (with `_` in place of `impl Trait`). An `async fn` creates
//! its guard with `AsyncStepGuard::new` (a `StepGuard` that is `Send`) and awaits
//! `StepFuture::new(guard.span(), typed_future::<R, _>(async move { body }))`, which enters the
//! span on every poll and catches a panic. `#[xray::execution]` expands the same way around a
//! span with the fields `xray.execution` (its name) and `xray.tags` (a JSON array).
//!
//! A step span's `xray.*` values are literals. The empty `xray.constant` field tells the layer
//! so: it then reuses what it read from the first span of that callsite, without comparing the
//! fields of each span. Other layers do not print an empty field.
//!
//! A function that returns a future without being `async` (`fn f() -> impl Future`) is a
//! sync step: it records the creation of the future, not its execution.

mod args;
mod expand;

use args::Kind;
use proc_macro::TokenStream;

/// Records a function as an X-Ray step: its arguments as the input, its return value as the
/// output, an `Err` or a panic as a failure, and its duration.
///
/// Options: `name = ".."`, `kind = ".."`, `skip(a, b)`, `skip_all`, `input = <expr>`,
/// `output = false`, `level = ".."`, `capture = "all" | "summary" | N`,
/// `metadata(key = <expr>, ..)`. See the crate documentation for what each does.
///
/// ```ignore
/// #[xray::step(kind = "rank", skip(client), capture = "summary")]
/// async fn rank(client: &Client, candidates: Vec<Candidate>) -> Result<Vec<Candidate>, Error> {
///     /* ... */
/// }
/// ```
#[proc_macro_attribute]
pub fn step(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Step, attr.into(), item.into()).into()
}

/// Marks a function as the root of an X-Ray execution (one run of a pipeline): the steps it
/// calls are recorded under it.
///
/// Options: `name = ".."`, `tags("a", "b")`, `metadata(key = <expr>, ..)`, `skip(a, b)`,
/// `skip_all`, `input = <expr>`, `output = false`, `level = ".."`. Its arguments and return
/// value are recorded as the execution's input and output, like a step's.
///
/// ```ignore
/// #[xray::execution(name = "competitor-selection", tags("nightly", "eu"))]
/// fn run(product: &Product) -> Option<Competitor> {
///     /* ... */
/// }
/// ```
#[proc_macro_attribute]
pub fn execution(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Execution, attr.into(), item.into()).into()
}
