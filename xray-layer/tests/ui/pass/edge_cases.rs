//! Less common function shapes: `&'a mut` returned through the body's closure, inner
//! attributes, `unsafe fn`, `extern "C" fn`, trait default methods (sync and async),
//! `self: Box<Self>`, moving an argument into a thread, `fn -> impl Future`, recursion.

use serde::Serialize;

#[derive(Serialize, Debug, Default)]
struct Basket {
    items: Vec<u32>,
}

#[xray::step]
fn first_mut<'a>(items: &'a mut Vec<u32>) -> &'a mut u32 {
    &mut items[0]
}

#[xray::step]
fn first_mut_elided(items: &mut [u32]) -> Option<&mut u32> {
    items.first_mut()
}

/// Outer attributes and doc comments stay on the function.
#[inline]
#[must_use]
#[xray::step]
fn inner_attributes(x: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = 3;
    x
}

/// # Safety
/// `p` must be valid for reads.
#[xray::step]
unsafe fn read(p: *const u32) -> u32 {
    unsafe { *p }
}

#[xray::step]
extern "C" fn ffi(x: u32) -> u32 {
    x + 1
}

trait Named {
    #[xray::step]
    fn name(&self) -> String {
        "default".to_owned()
    }

    #[xray::step]
    async fn later(&self, n: u32) -> u32 {
        n
    }
}

impl Named for Basket {}

impl Basket {
    #[xray::step]
    fn consume(self: Box<Self>) -> Vec<u32> {
        self.items
    }

    #[xray::step(metadata(before = self.items.len()))]
    async fn push(&mut self, x: u32) -> &mut Vec<u32> {
        self.items.push(x);
        &mut self.items
    }
}

#[xray::step]
fn spawn(message: String) -> usize {
    std::thread::spawn(move || message.len())
        .join()
        .unwrap_or(0)
}

#[xray::step]
fn ends_with_let(x: u32) {
    let _y = x;
}

#[xray::step]
fn make_future(x: u32) -> impl std::future::Future<Output = u32> {
    async move { x }
}

#[xray::step]
fn factorial(n: u64) -> u64 {
    if n == 0 {
        1
    } else {
        n * factorial(n - 1)
    }
}

fn main() {
    let mut items = vec![1, 2];
    *first_mut(&mut items) = 5;
    if let Some(first) = first_mut_elided(&mut items) {
        *first += 1;
    }
    assert_eq!(items, vec![6, 2]);
    assert_eq!(inner_attributes(1), 1);
    let n = 7u32;
    // SAFETY: `n` is a live u32.
    assert_eq!(unsafe { read(&n) }, 7);
    assert_eq!(ffi(1), 2);
    assert_eq!(Basket::default().name(), "default");
    assert_eq!(Box::new(Basket { items: vec![3] }).consume(), vec![3]);
    assert_eq!(spawn("abc".into()), 3);
    ends_with_let(1);
    assert_eq!(factorial(5), 120);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut basket = Basket::default();
        basket.push(1).await.push(2);
        assert_eq!(basket.items, vec![1, 2]);
        assert_eq!(basket.later(4).await, 4);
        assert_eq!(make_future(9).await, 9);
    });
}
