//! A second pipeline, with other step names: rewrite a product listing's title.
//!
//! ```sh
//! cargo run -p xray-examples --example listing_optimization
//! ```
//!
//! `analyze_listing` (llm) → `generate_title_variants` (llm) → `check_policy` (filter: length,
//! banned words, brand first — a reason for each rejection) → `rank_titles` (rank, selects one).
//! Recorded into the same database as the demo (`XRAY_DB`, default `xray.db`), it gives the
//! cross-pipeline questions ("steps of kind filter that eliminated > 90%", the analytics view)
//! more than one pipeline to span: the step kinds are the shared vocabulary, the names are not.

use tracing_subscriber::prelude::*;
use xray_examples::catalog::{self, Catalog, Product};

/// The marketplace's title rules.
const MAX_TITLE_CHARS: usize = 80;
const BANNED: [&str; 4] = ["best", "#1", "cheapest", "guaranteed"];

#[xray::step(kind = "llm", metadata(model = "mock-writer-1"))]
fn analyze_listing(product: &Product) -> Vec<String> {
    let category = catalog::category(product.category);
    let title = product.title.to_lowercase();
    let missing: Vec<String> = category
        .map(|c| c.features)
        .unwrap_or_default()
        .iter()
        .filter(|f| !title.contains(&f.to_lowercase()))
        .map(|f| (*f).to_owned())
        .collect();
    xray::reasoning(format!(
        "The title lacks {} of the category's common features; adding one may help search.",
        missing.len()
    ));
    missing
}

#[xray::step(kind = "llm", metadata(model = "mock-writer-1", temperature = 0.9))]
fn generate_title_variants(product: &Product, features: &[String]) -> Vec<String> {
    let category = catalog::category(product.category);
    let adjectives = category.map(|c| c.adjectives).unwrap_or_default();
    let noun = category
        .and_then(|c| c.nouns.first())
        .copied()
        .unwrap_or("Product");
    let brand = product.title.split_whitespace().next().unwrap_or("Generic");
    let mut variants = Vec::new();
    for (i, adjective) in adjectives.iter().enumerate() {
        for feature in features.iter().take(3) {
            variants.push(format!("{brand} {adjective} {noun} {feature}"));
            variants.push(format!("{noun} by {brand}, {adjective}, {feature}"));
            if i % 2 == 0 {
                variants.push(format!("Best {adjective} {noun} {feature} - #1 Choice"));
                variants.push(format!(
                    "{brand} {adjective} {noun} {feature} for Home, Office, Travel, Gifts and Everyday Use"
                ));
            }
        }
    }
    xray::metadata(
        "tokens",
        &serde_json::json!({ "prompt": 120, "completion": variants.len() * 12 }),
    );
    variants
}

#[xray::step(kind = "filter", skip(variants))]
fn check_policy(brand: &str, variants: Vec<String>) -> Vec<String> {
    xray::filters(
        &serde_json::json!({ "max_chars": MAX_TITLE_CHARS, "banned": BANNED, "brand_first": true }),
    );
    variants
        .into_iter()
        .enumerate()
        .filter(|(i, title)| {
            let lower = title.to_lowercase();
            let banned: Vec<&str> = BANNED
                .iter()
                .copied()
                .filter(|b| lower.contains(b))
                .collect();
            xray::evaluate(format!("variant-{i:02}"))
                .label(title)
                .check_max(
                    "length",
                    title.chars().count() as f64,
                    MAX_TITLE_CHARS as f64,
                )
                .check("banned_words", banned.is_empty(), || {
                    format!("uses {}", banned.join(", "))
                })
                .check("brand_first", title.starts_with(brand), || {
                    format!(
                        "starts with {:?}, not the brand {brand:?}",
                        title.split(' ').next().unwrap_or("")
                    )
                })
                .passed()
        })
        .map(|(_, title)| title)
        .collect()
}

#[xray::step(kind = "rank", skip(titles))]
fn rank_titles(product: &Product, titles: Vec<String>) -> Option<String> {
    let keywords: Vec<String> = product
        .title
        .to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut best: Option<(f64, String)> = None;
    for (i, title) in titles.into_iter().enumerate() {
        let lower = title.to_lowercase();
        let coverage = keywords
            .iter()
            .filter(|k| lower.contains(k.as_str()))
            .count() as f64
            / keywords.len().max(1) as f64;
        let length = 1.0 - (title.len() as f64 - 60.0).abs() / 60.0;
        let ctr = 0.6 * coverage + 0.4 * length;
        xray::evaluate(format!("variant-{i:02}"))
            .label(&title)
            .score(ctr)
            .metric("keyword_coverage", coverage)
            .metric("length_fit", length)
            .record();
        if best.as_ref().is_none_or(|(b, _)| ctr > *b) {
            best = Some((ctr, title));
        }
    }
    let (ctr, title) = best?;
    xray::select(
        &title,
        format!("highest predicted click-through {ctr:.3} (coverage 60%, length 40%)"),
    );
    Some(title)
}

#[xray::execution(name = "listing_optimization", tags("example"))]
fn optimize(product: &Product) -> Option<String> {
    let features = analyze_listing(product);
    let variants = generate_title_variants(product, &features);
    let brand = product.title.split_whitespace().next().unwrap_or_default();
    let allowed = check_policy(brand, variants);
    rank_titles(product, allowed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (xray_layer, _guard) = xray::layer().with_default_env().build()?; // flushes on drop
    tracing_subscriber::registry().with(xray_layer).init();

    let catalog = Catalog::generate(7, catalog::DEFAULT_SIZE);
    for product in catalog
        .products
        .iter()
        .filter(|p| !p.is_part())
        .step_by(997)
        .take(6)
    {
        let title = optimize(product).unwrap_or_else(|| "(no variant passed the policy)".into());
        println!("{:<55} -> {title}", product.title);
    }
    Ok(())
}
