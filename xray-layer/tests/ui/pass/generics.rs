//! Generic functions: bounds decide how an argument is recorded; `where` clauses, lifetimes,
//! const generics, `impl Trait` arguments (recorded through their bound, or skipped).

use serde::Serialize;
use std::fmt::Debug;

#[xray::step]
fn largest<T: PartialOrd + Copy + Serialize>(items: &[T]) -> Option<T> {
    items.iter().copied().fold(None, |best, x| match best {
        Some(b) if b >= x => Some(b),
        _ => Some(x),
    })
}

#[xray::step(skip(key))]
fn group<K, V>(values: Vec<V>, key: K) -> Vec<(String, V)>
where
    K: Fn(&V) -> String,
    V: Debug + Clone,
{
    values.iter().map(|v| (key(v), v.clone())).collect()
}

#[xray::step]
fn longest<'a, 'b: 'a>(a: &'a str, b: &'b str) -> &'a str {
    if a.len() >= b.len() {
        a
    } else {
        b
    }
}

#[xray::step]
fn window<const N: usize>(values: [u32; N]) -> u32 {
    values.iter().sum()
}

#[xray::step(skip(items))]
fn described(label: impl Debug, items: impl IntoIterator<Item = u32>) -> u32 {
    let _ = format!("{label:?}");
    items.into_iter().sum()
}

// An unbounded `T` can be neither recorded as an argument nor as the output.
#[xray::step(skip(value), output = false)]
fn unbounded<T>(value: T) -> T {
    value
}

fn main() {
    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(group(vec![1, 2], |v| v.to_string()).len(), 2);
    assert_eq!(longest("ab", "abc"), "abc");
    assert_eq!(window([1, 2, 3]), 6);
    assert_eq!(described("sum", vec![1, 2]), 3);
    assert_eq!(unbounded(String::from("x")), "x");
}
