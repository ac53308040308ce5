//! The X-Ray demo and focused examples; run them with `cargo run -p xray-examples --example <name>`.
//!
//! | example | shows |
//! |---|---|
//! | `competitor_selection` | the demo: a five-step pipeline over a 12,000-product catalog, recorded into `./xray.db`, with runs that go wrong (a phone case selected for a laptop stand, filters that eliminate > 90%, a judge that times out), and the viewer serving it live |
//! | `existing_subscriber` | X-Ray added to a subscriber that already has `fmt` and an `EnvFilter`, as a per-layer filter |
//! | `async_pipeline` | `async fn` steps on tokio, and spawned tasks recording into one step through `xray::current_step()` |
//! | `listing_optimization` | another pipeline (rewrite a listing's title: generate, score, select), so cross-pipeline queries span more than one |
//! | `product_categorization` | a third pipeline (classify products into categories with a confidence threshold) |
//! | `remote_ingest` | a process with no database of its own sending its runs to a server's `POST /api/v1/ingest` |
//!
//! The library holds what the examples share: the generated [`catalog`] and the demo's
//! [`competitor`] pipeline (a test runs it against the real store and server).

pub mod catalog;
pub mod competitor;
