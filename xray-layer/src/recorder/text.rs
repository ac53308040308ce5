//! The text of a user's `Display` value (a candidate's id, its label, a check's reason),
//! copied without `fmt` when the value is a string, an integer or a UUID.
//!
//! `xray::evaluate(&c.asin).label(&c.title)` runs once per candidate, thousands of times a step.
//! Through `write!`, copying a `&String` takes a `Formatter`, a virtual call and `pad`: about 150
//! instructions, most of an evaluation's cost after its checks, for a copy of a few bytes.
//! Stable Rust cannot specialize `Display`, so [`write_display`] compares the value's type,
//! lifetimes aside (the `typeid` crate), with the types that ids, labels and reasons usually
//! have, and writes those itself; any other type goes through its `Display`, with a panic there
//! caught ([`crate::unwind`]). The comparisons are between constants: in an optimized build,
//! once the function is compiled for one type, all but the one that matches are gone (a debug
//! build makes them all, a few dozen comparisons).
//!
//! | types copied | written as |
//! |---|---|
//! | `&str`, `&&str`, `String`, `&String`, `&&String`, `Cow<str>`, `&Cow<str>`, `Box<str>`, `Arc<str>`, `&Arc<str>` | the string |
//! | `u64`, `u32`, `usize`, `i64`, `i32`, and a reference to each | `itoa`'s digits (what `Display` prints) |
//! | `uuid::Uuid`, `&uuid::Uuid` | hyphenated, lower case (what `Display` prints) |

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};
use std::sync::Arc;

/// Appends what `value` displays as to `out`; `what` names it if its `Display` panics (the text
/// then says it was not recorded, see [`crate::unwind::write_guarded`]).
#[inline]
pub(crate) fn write_display<T: Display>(out: &mut String, what: &str, value: T) {
    if !write_known(out, &value) {
        crate::unwind::write_guarded(out, what, |out| write!(out, "{value}"));
    }
}

/// Appends what `value` displays as, through its `Display` only when its type is not one
/// [`write_known`] copies. Not guarded: the caller catches a panic.
#[inline]
pub(crate) fn write_unguarded<T: Display>(out: &mut String, value: T) -> fmt::Result {
    if write_known(out, &value) {
        Ok(())
    } else {
        write!(out, "{value}")
    }
}

/// Whether `T` is `U`, lifetimes aside.
#[inline(always)]
fn same<T, U>() -> bool {
    typeid::of::<T>() == typeid::of::<U>()
}

/// `value` read as a `U`, as a string borrowed no longer than `value` is.
///
/// # Safety
///
/// `T` must be `U` but for lifetimes ([`same`]).
#[inline(always)]
unsafe fn as_str<'v, T, U: AsRef<str> + 'v>(value: &'v T) -> &'v str {
    // SAFETY: the caller checked that `T` is `U` but for lifetimes, and lifetimes do not change
    // a type's layout, so this reads `value` as its own type, through a shared reference (none
    // of these types changes through one). The `&str` returned is tied to `'v`, the borrow of
    // `value`, which whatever `T` borrows outlives (`T: 'v`): nothing is extended.
    let value: &'v U = unsafe { &*(value as *const T).cast::<U>() };
    value.as_ref()
}

/// `value` read as a `U` (a number or a UUID: `Copy`, no lifetimes), copied out.
///
/// # Safety
///
/// `T` must be `U` ([`same`]).
#[inline(always)]
unsafe fn as_copy<T, U: Copy + 'static>(value: &T) -> U {
    // SAFETY: the caller checked that `T` is `U`, which has no lifetimes: the same type.
    unsafe { *(value as *const T).cast::<U>() }
}

/// `value` read as a `&U` (a reference to a number or a UUID), the `U` copied out.
///
/// # Safety
///
/// `T` must be `&U` but for its lifetime ([`same`]).
#[inline(always)]
unsafe fn as_deref_copy<'v, T, U: Copy + 'static>(value: &'v T) -> U {
    // SAFETY: the caller checked that `T` is `&'x U` for some `'x`; `T: 'v`, so `'x` outlives
    // `'v` and reading it as a `&'v U` only shortens it.
    unsafe { **(value as *const T).cast::<&'v U>() }
}

/// Writes `value` and returns `true` if its type is one of the table's; `false` (nothing
/// written) otherwise.
#[inline(always)]
fn write_known<T>(out: &mut String, value: &T) -> bool {
    macro_rules! strings {
        ($($ty:ty),*) => {$(
            if same::<T, $ty>() {
                // SAFETY: just checked.
                out.push_str(unsafe { as_str::<T, $ty>(value) });
                return true;
            }
        )*};
    }
    strings!(&str, &&str, String, &String, &&String);
    strings!(Cow<'_, str>, &Cow<'_, str>, Box<str>, Arc<str>, &Arc<str>);
    macro_rules! integers {
        ($($int:ty),*) => {$(
            if same::<T, $int>() {
                // SAFETY: just checked.
                out.push_str(itoa::Buffer::new().format(unsafe { as_copy::<T, $int>(value) }));
                return true;
            }
            if same::<T, &$int>() {
                // SAFETY: just checked.
                let n = unsafe { as_deref_copy::<T, $int>(value) };
                out.push_str(itoa::Buffer::new().format(n));
                return true;
            }
        )*};
    }
    integers!(u64, u32, usize, i64, i32);
    let uuid = if same::<T, uuid::Uuid>() {
        // SAFETY: just checked.
        unsafe { as_copy::<T, uuid::Uuid>(value) }
    } else if same::<T, &uuid::Uuid>() {
        // SAFETY: just checked.
        unsafe { as_deref_copy::<T, uuid::Uuid>(value) }
    } else {
        return false;
    };
    out.push_str(
        uuid.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `write_display` appends, and whether the type is one it copies (not `Display`).
    fn written<T: Display>(value: T) -> (String, bool) {
        let known = write_known(&mut String::new(), &value);
        let mut out = String::from(">");
        write_display(&mut out, "Display", value);
        (out, known)
    }

    fn check<T: Display>(value: T) {
        let expected = format!(">{value}");
        let (text, known) = written(value);
        assert!(known, "{expected} was formatted, not copied");
        assert_eq!(text, expected);
    }

    #[test]
    #[allow(clippy::needless_borrows_for_generic_args)] // each reference is a type under test
    fn strings_integers_and_uuids_are_copied_as_display_prints_them() {
        // Borrowed from a local (not 'static), as `&c.asin` is.
        let owned = String::from("B0C4SZXKIG");
        let borrowed: &str = &owned;
        check(borrowed);
        check(&owned);
        check(&&owned);
        check(&borrowed);
        check(owned.clone());
        check(Cow::Borrowed(borrowed));
        check(&Cow::<str>::Owned(owned.clone()));
        check(Box::<str>::from(borrowed));
        let shared: Arc<str> = Arc::from(borrowed);
        check(&shared);
        check(shared);
        for n in [0u64, 7, 1_234_567_890_123, u64::MAX] {
            check(n);
            check(&n);
        }
        check(u32::MAX);
        check(usize::MAX);
        check(i64::MIN);
        check(&-42i32);
        let id = uuid::Uuid::from_u128(0x0193_8f3a_7b2c_7d4e_8f00_1234_abcd_ef01);
        check(id);
        check(&id);
    }

    #[test]
    fn other_types_go_through_their_display() {
        struct Sku(u32);
        impl Display for Sku {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "SKU-{:05}", self.0)
            }
        }
        assert_eq!(written(Sku(42)), (">SKU-00042".to_owned(), false));
        let sku = Sku(7);
        let by_reference: &Sku = &sku;
        assert_eq!(written(by_reference), (">SKU-00007".to_owned(), false));
        assert_eq!(written(2.5f64), (">2.5".to_owned(), false));
        assert_eq!(written('x'), (">x".to_owned(), false));
        // Strings of types not in the table still print, through `Display`.
        let boxed: Box<str> = "boxed".into();
        assert_eq!(written(&boxed), (">boxed".to_owned(), false));
        assert_eq!(
            written(std::rc::Rc::<str>::from("rc")),
            (">rc".to_owned(), false)
        );
        assert_eq!(written(format_args!("{}", 5)), (">5".to_owned(), false));
        // A number as `{value}` prints it, whatever its type.
        assert_eq!(written(7u8), (">7".to_owned(), false));
    }

    #[test]
    fn a_reason_closure_writes_what_it_returns() {
        let mut out = String::new();
        write_unguarded(&mut out, String::from("8.99 < 14.99")).unwrap_or_default();
        write_unguarded(&mut out, " and ").unwrap_or_default();
        write_unguarded(&mut out, 3.5f64).unwrap_or_default();
        assert_eq!(out, "8.99 < 14.99 and 3.5");
    }

    #[test]
    fn a_display_that_returns_an_error_is_recorded_as_not_recorded_and_counted() {
        struct Failing;
        impl Display for Failing {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("half")?;
                Err(fmt::Error)
            }
        }
        let watch = crate::unwind::Watch::start();
        let (text, known) = written(Failing);
        assert!(!known);
        assert_eq!(text, "><not recorded: Display returned an error>");
        let caught = watch.caught().unwrap_or_default();
        assert!(caught.contains("Display returned an error"), "{caught}");
        assert_eq!(
            crate::unwind::display(Failing),
            "<not recorded: Display returned an error>"
        );
    }

    #[test]
    fn a_panicking_display_is_recorded_as_not_recorded() {
        struct Bad;
        impl Display for Bad {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("no text")
            }
        }
        let (text, known) = written(Bad);
        assert!(!known);
        assert!(
            text.starts_with("><not recorded: Display panicked: no text"),
            "{text}"
        );
    }
}
