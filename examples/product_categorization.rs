//! A third pipeline: file products under the right category, with a confidence threshold.
//!
//! ```sh
//! cargo run -p xray-examples --example product_categorization
//! ```
//!
//! `extract_terms` (llm) → `propose_categories` (search: every category is a candidate, with a
//! similarity) → `apply_threshold` (filter: similarity ≥ 0.75; it usually keeps one category
//! of twelve, so it "eliminates > 90%" by design — which is why the cross-pipeline query is
//! best asked per step kind *and* name) → `assign_category` (select), whose reason says whether
//! the seller's own category agrees.

use tracing_subscriber::prelude::*;
use xray_examples::catalog::{self, Catalog, Product, CATEGORIES};

const THRESHOLD: f64 = 0.75;

#[xray::step(kind = "llm", metadata(model = "mock-classifier-1"))]
fn extract_terms(title: &str) -> Vec<String> {
    xray::reasoning("Lower-cased words of the title; the classifier matches them against category vocabularies.");
    title
        .to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[xray::step(kind = "search", output = false)]
fn propose_categories(terms: &[String]) -> Vec<(&'static str, f64)> {
    let proposals: Vec<(&'static str, f64)> = CATEGORIES
        .iter()
        .map(|c| {
            // The best share of a category noun's words found in the title, with a bonus for
            // longer nouns (more specific evidence).
            let best = c
                .nouns
                .iter()
                .map(|n| {
                    let words: Vec<String> = n
                        .to_lowercase()
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect();
                    let found = words.iter().filter(|w| terms.contains(w)).count();
                    found as f64 / words.len() as f64 + 0.01 * found as f64
                })
                .fold(0.0, f64::max);
            (c.name, best.min(1.0))
        })
        .collect();
    xray::output(&proposals);
    proposals
}

#[xray::step(kind = "filter", skip(proposals))]
fn apply_threshold(proposals: Vec<(&'static str, f64)>) -> Vec<(&'static str, f64)> {
    xray::filters(&serde_json::json!({ "min_similarity": THRESHOLD }));
    proposals
        .into_iter()
        .filter(|(name, similarity)| {
            xray::evaluate(name)
                .check_min("similarity", *similarity, THRESHOLD)
                .passed()
        })
        .collect()
}

#[xray::step(kind = "select", skip(kept))]
fn assign_category(product: &Product, kept: Vec<(&'static str, f64)>) -> Option<&'static str> {
    let (name, similarity) = kept.into_iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let note = if name == product.category {
        "agrees with the seller's category".to_owned()
    } else {
        format!("the seller filed it under {}", product.category)
    };
    xray::select(name, format!("highest similarity {similarity:.2}; {note}"));
    Some(name)
}

#[xray::execution(name = "product_categorization", tags("example"))]
fn categorize(product: &Product) -> Option<&'static str> {
    let terms = extract_terms(&product.title);
    let proposals = propose_categories(&terms);
    let kept = apply_threshold(proposals);
    assign_category(product, kept)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (xray_layer, _guard) = xray::layer().with_default_env().build()?; // flushes on drop
    tracing_subscriber::registry().with(xray_layer).init();

    let catalog = Catalog::generate(7, catalog::DEFAULT_SIZE);
    // Every 500th product, and a few replacement parts (filed by their sellers under the
    // category of the product they fit).
    let products = catalog
        .products
        .iter()
        .step_by(500)
        .chain(catalog.products.iter().filter(|p| p.is_part()).take(4));
    for product in products {
        let assigned = categorize(product).unwrap_or("(none above the threshold)");
        let mark = if assigned == product.category {
            ""
        } else {
            "   <- differs from the seller's"
        };
        println!(
            "{:<58} {:<15} -> {assigned}{mark}",
            product.title, product.category
        );
    }
    Ok(())
}
