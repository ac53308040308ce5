//! The X-Ray demo and focused examples; run them with `cargo run -p xray-examples --example <name>`.
//!
//! | example | shows |
//! |---|---|
//! | `competitor_selection` | the demo: a five-step pipeline recorded into `./xray.db`, one run that matches a phone case to a laptop stand, and the viewer serving it live |
