//! Sync steps: every option, a default-named step, an execution around them, `return` in a body.

use serde::Serialize;

#[derive(Serialize, Clone)]
struct Product {
    asin: String,
    price: f64,
}

#[xray::execution(
    name = "pipeline",
    tags("ui", "pass"),
    metadata(version = 2),
    level = "debug"
)]
fn pipeline(products: Vec<Product>, limit: f64) -> usize {
    let kept = filter(products.clone(), limit);
    let _ = unrecorded(&kept);
    count(&kept)
}

#[xray::step(
    name = "price_filter",
    kind = "filter",
    skip(products),
    output = true,
    level = "trace",
    capture = 500,
    metadata(limit = limit, "max-price" = limit * 2.0)
)]
fn filter(products: Vec<Product>, limit: f64) -> Vec<Product> {
    if products.is_empty() {
        return Vec::new();
    }
    products.into_iter().filter(|p| p.price <= limit).collect()
}

#[xray::step(capture = "summary", output = false, skip_all)]
fn unrecorded(products: &[Product]) -> usize {
    products.len()
}

#[xray::step(kind = "count", capture = "all", input = products.len())]
fn count(products: &[Product]) -> usize {
    products.len()
}

#[xray::step]
fn no_return(_unused: u8) {}

#[xray::step(level = "WARN")]
fn shadowing(__xray: u32, __xray_value: u32) -> u32 {
    // The generated locals are hygienic: arguments with the same names are the user's.
    __xray + __xray_value
}

#[xray::step]
fn r#type(r#type: u32, mut counter: u32) -> u32 {
    counter += r#type;
    counter
}

fn main() {
    let products = vec![
        Product {
            asin: "A".into(),
            price: 10.0,
        },
        Product {
            asin: "B".into(),
            price: 30.0,
        },
    ];
    assert_eq!(pipeline(products, 20.0), 1);
    no_return(1);
    assert_eq!(shadowing(1, 2), 3);
    assert_eq!(r#type(2, 3), 5);
    assert_eq!(filter(Vec::new(), 1.0).len(), 0);
}
