//! User code that X-Ray runs on the program's threads only because it records (the `Serialize`
//! or `Debug` impl of an argument, a return value or a payload; the `Display` of a candidate
//! id, a label, a reason, a selection, the reasoning or an error) must not change what the program
//! does: without X-Ray that code would not have run at all. A panic there is caught, the value is
//! recorded as a JSON string that says so, and the step is marked failed (through a [`Watch`]).
//!
//! (The default panic hook still prints the panic's message to stderr, as for any caught panic.)

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Panics caught on this thread so far: read by every [`Watch`], so a plain cell (no
    /// destructor to register, no borrow flag).
    static CAUGHT: Cell<u64> = const { Cell::new(0) };
    /// The last one's message.
    static LAST_CAUGHT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` (a `what` impl of the user's); a panic is caught and counted, and its message
/// returned.
#[inline]
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) => Err(caught(format!(
            "{what} panicked: {}",
            panic_message(&*payload)
        ))),
    }
}

/// Counts a failure of a user's impl on this thread (for [`Watch`]) and returns its message.
fn caught(message: String) -> String {
    let _ = CAUGHT.try_with(|caught| caught.set(caught.get() + 1));
    let _ = LAST_CAUGHT.try_with(|last| last.borrow_mut().clone_from(&message));
    message
}

/// The text of a user's `Display` value (a selection's reason, a step's error), with a panic
/// in its `Display` caught: the text then says so.
pub(crate) fn display(value: impl std::fmt::Display) -> String {
    let mut out = String::new();
    crate::recorder::text::write_display(&mut out, "Display", value);
    out
}

/// The text `f` builds from a user's value, with a panic caught: the text then says so.
pub(crate) fn text(what: &str, f: impl FnOnce() -> String) -> String {
    guarded(what, f).unwrap_or_else(|panic| format!("<not recorded: {panic}>"))
}

/// Appends what `write` writes (a user's `Display`, through `write!`) to `out`. If it panics,
/// or returns an error (which `Display` must not do: `to_string()` panics on it), what it wrote
/// is taken back and `out` says the text was not recorded instead; either counts for a
/// [`Watch`].
#[inline]
pub(crate) fn write_guarded(
    out: &mut String,
    what: &str,
    write: impl FnOnce(&mut String) -> std::fmt::Result,
) {
    let len = out.len();
    let failed = match guarded(what, || write(&mut *out)) {
        Ok(Ok(())) => return,
        Ok(Err(std::fmt::Error)) => caught(format!("{what} returned an error")),
        Err(panic) => panic,
    };
    out.truncate(len);
    out.push_str("<not recorded: ");
    out.push_str(&failed);
    out.push('>');
}

/// Notices a panic caught by [`guarded`] on this thread after the watch started: the code that
/// records a step's payloads starts one, and marks the step failed if it saw one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Watch(u64);

impl Watch {
    pub(crate) fn start() -> Watch {
        Watch(CAUGHT.try_with(Cell::get).unwrap_or(0))
    }

    /// The error to record on the step, if a panic was caught since [`Watch::start`].
    pub(crate) fn caught(self) -> Option<String> {
        if CAUGHT.try_with(Cell::get).unwrap_or(0) == self.0 {
            return None;
        }
        let last = LAST_CAUGHT
            .try_with(|last| last.borrow().clone())
            .unwrap_or_default();
        Some(format!("X-Ray could not record this step: {last}"))
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
