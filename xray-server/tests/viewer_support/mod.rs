//! What the browser tests share: a driven Chromium and the fixtures (databases written by the
//! real layer, real servers on ephemeral ports).

pub mod browser;
pub mod fixture;
#[path = "../support/verdicts.rs"]
pub mod verdicts;
