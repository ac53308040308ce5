//! Destructuring parameters: each identifier they bind is recorded under its own name.

use serde::Serialize;

#[derive(Serialize, Debug, Clone, Copy)]
struct Point {
    x: i32,
    y: i32,
}

struct Wrapper(u32, String);

#[xray::step]
fn tuple((a, b): (u32, u32), [first, ..]: [u8; 3]) -> u32 {
    a + b + u32::from(first)
}

#[xray::step(skip(y))]
fn strukt(Point { x, y }: Point, &reference: &i32) -> i32 {
    x + y + reference
}

#[xray::step(skip(label))]
fn tuple_struct(Wrapper(id, label): Wrapper, _: u8, mut counter: u32) -> u32 {
    counter += id;
    let _ = label;
    counter
}

#[xray::step]
fn renamed(whole @ Point { x: horizontal, .. }: Point) -> i32 {
    whole.y + horizontal
}

fn main() {
    assert_eq!(tuple((1, 2), [3, 4, 5]), 6);
    assert_eq!(strukt(Point { x: 1, y: 2 }, &3), 6);
    assert_eq!(tuple_struct(Wrapper(1, "l".into()), 0, 1), 2);
    assert_eq!(renamed(Point { x: 1, y: 2 }), 3);
}
