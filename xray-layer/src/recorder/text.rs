//! The text of a user's `Display` value (a candidate's id, its label, a check's reason),
//! copied without `fmt` when the value is a string, an integer or a UUID.
//!
//! `xray::evaluate(&c.asin).label(&c.title)` runs once per candidate, thousands of times a step.
//! Through `write!`, copying a `&String` takes a `Formatter`, a virtual call and `pad`: about 150
//! instructions, most of an evaluation's cost after its checks, for a copy of a few bytes.
//! Stable Rust cannot specialize `Display`, so [`write_display`] compares the value's type,
//! lifetimes aside (the `typeid` crate), with the types that ids, labels and reasons usually
//! have, and writes those itself; any other type goes through its `Display`, with a panic there
//! caught ([`crate::unwind`]). The comparisons are between constants: once the function is
//! compiled for one type, all but the one that matches are gone.
//!
//! | type (and a reference to it) | written as |
//! |---|---|
//! | `str`, `String`, `Cow<str>`, `Box<str>`, `Arc<str>` | the string |
//! | `u64`, `u32`, `usize`, `i64`, `i32` | `itoa`'s digits (what `Display` prints) |
//! | `uuid::Uuid` | hyphenated, lower case (what `Display` prints) |

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

/// Writes `value` and returns `true` if its type is one of the table's; `false` (nothing
/// written) otherwise.
#[inline(always)]
fn write_known<T>(out: &mut String, value: &T) -> bool {
    /// `$v` is `value` as a `&$ty`, if `T` is `$ty`.
    macro_rules! when {
        ($ty:ty, |$v:ident| $write:expr) => {
            if same::<T, $ty>() {
                // SAFETY: `T` is `$ty` but for lifetimes (`typeid::of` compares types with their
                // lifetimes erased), so this reads `value` as its own type. Lifetimes are not
                // extended: what the cast type leaves unnamed is inferred from its use, which
                // is only within this call, while `value` (and whatever `T` borrows, which
                // outlives it) is borrowed.
                let $v: &$ty = unsafe { &*(value as *const T).cast::<$ty>() };
                $write;
                return true;
            }
        };
    }
    let mut text = |s: &str| out.push_str(s);
    when!(&str, |v| text(v));
    when!(String, |v| text(v));
    when!(&String, |v| text(v));
    when!(&&str, |v| text(v));
    when!(&&String, |v| text(v));
    when!(Cow<'_, str>, |v| text(v));
    when!(&Cow<'_, str>, |v| text(v));
    when!(Box<str>, |v| text(v));
    when!(Arc<str>, |v| text(v));
    when!(&Arc<str>, |v| text(v));
    macro_rules! integer {
        ($($int:ty),*) => {$(
            when!($int, |v| text(itoa::Buffer::new().format(*v)));
            when!(&$int, |v| text(itoa::Buffer::new().format(**v)));
        )*};
    }
    integer!(u64, u32, usize, i64, i32);
    when!(uuid::Uuid, |v| text(
        v.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
    ));
    when!(&uuid::Uuid, |v| text(
        v.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
    ));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write_display`'s text, and whether it took the copy (not `Display`).
    fn written<T: Display>(value: T) -> (String, bool) {
        let mut out = String::from(">");
        let known = write_known(&mut out, &value);
        if !known {
            write_display(&mut out, "Display", value);
        }
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
        // A type whose name looks like a copied one is still formatted by its own `Display`.
        assert_eq!(written(format_args!("{}", 5)), (">5".to_owned(), false));
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
